package gpu

// CUDA graphs, pinned host memory and asynchronous copies: driver functions beyond the codec loader's, looked up when the
// context opens.

//#include "cuda.h"
//
//#define NEED(c, f) if (!(c)->f) return 500 /* CUDA_ERROR_NOT_FOUND */
//
//static int dsb_begin_capture(dsb_cuda *c, CUstream s) {
//	NEED(c, beginCapture); PUSH(c); CUresult r = c->beginCapture(s, 2 /* relaxed */); POP(c); return r;
//}
//static int dsb_end_capture(dsb_cuda *c, CUstream s, dsb_exec_t *exec) {
//	NEED(c, endCapture); NEED(c, instantiate); PUSH(c);
//	dsb_graph_t g = NULL;
//	CUresult r = c->endCapture(s, &g);
//	if (!r) r = c->instantiate(exec, g, 0);
//	if (g) c->graphDestroy(g);
//	POP(c); return r;
//}
//static int dsb_graph_launch(dsb_cuda *c, dsb_exec_t e, CUstream s) { PUSH(c); CUresult r = c->graphLaunch(e, s); POP(c); return r; }
//static int dsb_graph_destroy(dsb_cuda *c, dsb_exec_t e) { PUSH(c); CUresult r = c->execDestroy(e); POP(c); return r; }
//static int dsb_alloc_host(dsb_cuda *c, void **p, size_t n) { NEED(c, memAllocHost); PUSH(c); CUresult r = c->memAllocHost(p, n); POP(c); return r; }
//static int dsb_free_host(dsb_cuda *c, void *p) { PUSH(c); CUresult r = c->memFreeHost(p); POP(c); return r; }
//static int dsb_memset_async(dsb_cuda *c, CUdeviceptr p, size_t n, CUstream s) { PUSH(c); CUresult r = c->cu->cuMemsetD8Async(p, 0, n, s); POP(c); return r; }
//static int dsb_dtod_async(dsb_cuda *c, CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) { PUSH(c); CUresult r = c->cu->cuMemcpyDtoDAsync(dst, src, n, s); POP(c); return r; }
//static int dsb_dtoh_async(dsb_cuda *c, void *dst, CUdeviceptr src, size_t n, CUstream s) { PUSH(c); CUresult r = c->cu->cuMemcpyDtoHAsync(dst, src, n, s); POP(c); return r; }
import "C"

import (
	"unsafe"
)

// Graph is an instantiated CUDA graph: a captured sequence of launches
// replayed with one call.
type Graph struct {
	g    *CUDA
	exec C.dsb_exec_t
}

// BeginCapture starts recording the work queued on s into a graph.
func (g *CUDA) BeginCapture(s Stream) error {
	return cudaErr(g.c, "cuStreamBeginCapture", C.dsb_begin_capture(g.c, C.CUstream(unsafe.Pointer(s))))
}

// EndCapture stops recording on s and instantiates the graph.
func (g *CUDA) EndCapture(s Stream) (*Graph, error) {
	gr := &Graph{g: g}
	if err := cudaErr(g.c, "cuStreamEndCapture", C.dsb_end_capture(g.c, C.CUstream(unsafe.Pointer(s)), &gr.exec)); err != nil {
		return nil, err
	}
	return gr, nil
}

// Launch queues the graph's work on s.
func (gr *Graph) Launch(s Stream) error {
	return cudaErr(gr.g.c, "cuGraphLaunch", C.dsb_graph_launch(gr.g.c, gr.exec, C.CUstream(unsafe.Pointer(s))))
}

// Close destroys the graph; nil-safe.
func (gr *Graph) Close() error {
	if gr == nil || gr.exec == nil {
		return nil
	}
	err := cudaErr(gr.g.c, "cuGraphExecDestroy", C.dsb_graph_destroy(gr.g.c, gr.exec))
	gr.exec = nil
	return err
}

// HostBuffer is page-locked host memory, which copies reach at full speed
// and asynchronously.
type HostBuffer struct {
	g   *CUDA
	ptr unsafe.Pointer
	n   int
}

// AllocHost allocates n bytes of page-locked host memory.
func (g *CUDA) AllocHost(n int) (*HostBuffer, error) {
	var p unsafe.Pointer
	if err := cudaErr(g.c, "cuMemAllocHost", C.dsb_alloc_host(g.c, &p, C.size_t(n))); err != nil {
		return nil, err
	}
	return &HostBuffer{g: g, ptr: p, n: n}, nil
}

// Floats is the buffer's memory as float32 values.
func (h *HostBuffer) Floats() []float32 { return unsafe.Slice((*float32)(h.ptr), h.n/4) }

// Free releases the buffer; nil-safe.
func (h *HostBuffer) Free() error {
	if h == nil || h.ptr == nil {
		return nil
	}
	err := cudaErr(h.g.c, "cuMemFreeHost", C.dsb_free_host(h.g.c, h.ptr))
	h.ptr = nil
	return err
}

// ZeroAsync queues the zeroing of n bytes at p on s.
func (g *CUDA) ZeroAsync(p DevicePtr, n int64, s Stream) error {
	return cudaErr(g.c, "cuMemsetD8Async", C.dsb_memset_async(g.c, C.CUdeviceptr(p), C.size_t(n), C.CUstream(unsafe.Pointer(s))))
}

// DownloadAsync queues a copy of n bytes from src to host buffer h (at
// offset off) on s.
func (g *CUDA) DownloadAsync(h *HostBuffer, off int, src DevicePtr, n int, s Stream) error {
	return cudaErr(g.c, "cuMemcpyDtoHAsync", C.dsb_dtoh_async(g.c, unsafe.Add(h.ptr, off), C.CUdeviceptr(src), C.size_t(n), C.CUstream(unsafe.Pointer(s))))
}

// CopyDeviceAsync queues a copy of n bytes from src to dst, both on this
// GPU, on s.
func (g *CUDA) CopyDeviceAsync(dst, src DevicePtr, n int, s Stream) error {
	return cudaErr(g.c, "cuMemcpyDtoDAsync", C.dsb_dtod_async(g.c, C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(n), C.CUstream(unsafe.Pointer(s))))
}
