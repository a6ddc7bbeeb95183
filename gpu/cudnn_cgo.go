package gpu

// cuDNN, opened by name at run time, and its legacy convolution API (kept
// in cuDNN 9's libcudnn_cnn); the graph API is in cudnngraph_cgo.go.

//#include "cudnn.h"
//
//typedef struct { int algo; int status; float time; size_t memory; int determinism; int mathType; int reserved[3]; } dsb_algo_perf;
//
//typedef struct { cudnnDesc x, w, conv, y; int algo, math; } dsb_conv;
//
//enum { NCHW = 0, NHWC = 1, FLOAT = 0, HALF = 2, CROSS_CORRELATION = 1 };
//
//#define SYM(f, name) if (!(d->f = dlsym(d->lib, name))) { dlclose(d->lib); free(d); return -2; }
//
//static int dsb_cudnn_open(dsb_cuda *c, const char *path, dsb_cudnn **out) {
//	dsb_cudnn *d = calloc(1, sizeof *d);
//	if (!(d->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL))) { free(d); return -1; }
//	SYM(create, "cudnnCreate") SYM(destroy, "cudnnDestroy") SYM(setStream, "cudnnSetStream")
//	SYM(version, "cudnnGetVersion") SYM(errstr, "cudnnGetErrorString")
//	SYM(createTensor, "cudnnCreateTensorDescriptor") SYM(setTensor, "cudnnSetTensor4dDescriptor")
//	SYM(destroyTensor, "cudnnDestroyTensorDescriptor") SYM(createFilter, "cudnnCreateFilterDescriptor")
//	SYM(setFilter, "cudnnSetFilter4dDescriptor") SYM(destroyFilter, "cudnnDestroyFilterDescriptor")
//	SYM(createConv, "cudnnCreateConvolutionDescriptor") SYM(setConv, "cudnnSetConvolution2dDescriptor")
//	SYM(setGroups, "cudnnSetConvolutionGroupCount") SYM(setMath, "cudnnSetConvolutionMathType")
//	SYM(destroyConv, "cudnnDestroyConvolutionDescriptor") SYM(outDim, "cudnnGetConvolution2dForwardOutputDim")
//	SYM(findEx, "cudnnFindConvolutionForwardAlgorithmEx") SYM(wsSize, "cudnnGetConvolutionForwardWorkspaceSize")
//	SYM(forward, "cudnnConvolutionForward")
//	SYM(beCreate, "cudnnBackendCreateDescriptor") SYM(beDestroy, "cudnnBackendDestroyDescriptor")
//	SYM(beFinalize, "cudnnBackendFinalize") SYM(beSet, "cudnnBackendSetAttribute")
//	SYM(beGet, "cudnnBackendGetAttribute") SYM(beExecute, "cudnnBackendExecute")
//	PUSH(c);
//	int r = d->create(&d->h);
//	POP(c);
//	if (r) { dlclose(d->lib); free(d); return r; }
//	*out = d;
//	return 0;
//}
//
//static void dsb_cudnn_close(dsb_cuda *c, dsb_cudnn *d) {
//	if (!d) return;
//	if (c->cu->cuCtxPushCurrent(c->ctx) == 0) { d->destroy(d->h); POP(c); }
//	dlclose(d->lib);
//	free(d);
//}
//
//static const char *dsb_cudnn_err(dsb_cudnn *d, int r) { return d->errstr(r); }
//static size_t dsb_cudnn_version(dsb_cudnn *d) { return d->version(); }
//
//static void dsb_conv_free(dsb_cudnn *d, dsb_conv *v) {
//	if (!v) return;
//	if (v->x) d->destroyTensor(v->x);
//	if (v->y) d->destroyTensor(v->y);
//	if (v->w) d->destroyFilter(v->w);
//	if (v->conv) d->destroyConv(v->conv);
//	free(v);
//}
//
//// dsb_conv_new describes an NHWC convolution with fp32 accumulation, of
//// fp16 tensors or, where g[18] is set, fp32 ones.
//static int dsb_conv_new(dsb_cudnn *d, const int *g, dsb_conv **out) {
//	// g: n c h w k r s padh padw strh strw dilh dilw groups oh ow xpix ypix f32
//	dsb_conv *v = calloc(1, sizeof *v);
//	int r, n, k, oh, ow, dt = g[18] ? FLOAT : HALF;
//	if ((r = d->createTensor(&v->x)) || (r = d->createTensor(&v->y)) || (r = d->createFilter(&v->w)) || (r = d->createConv(&v->conv))) goto fail;
//	if ((r = d->setTensor(v->x, NHWC, dt, g[0], g[1], g[2], g[3]))) goto fail;
//	if ((r = d->setFilter(v->w, dt, NHWC, g[4], g[1] / g[13], g[5], g[6]))) goto fail;
//	if ((r = d->setConv(v->conv, g[7], g[8], g[9], g[10], g[11], g[12], CROSS_CORRELATION, FLOAT))) goto fail;
//	if ((r = d->setGroups(v->conv, g[13]))) goto fail;
//	if ((r = d->outDim(v->conv, v->x, v->w, &n, &k, &oh, &ow))) goto fail;
//	if (n != g[0] || k != g[4] || oh != g[14] || ow != g[15]) { r = -3; goto fail; }
//	if ((r = d->setTensor(v->y, NHWC, dt, n, k, oh, ow))) goto fail;
//	*out = v;
//	return 0;
//fail:
//	dsb_conv_free(d, v);
//	return r;
//}
//
//// dsb_conv_find measures the algorithms with math type math: 2 (tensor
//// ops, fp32 converted to fp16 allowed) for fp16 tensors, 0 (TF32 on
//// Ampere and later, never fp16) for fp32 ones.
//static int dsb_conv_find(dsb_cuda *c, dsb_cudnn *d, dsb_conv *v, int math, CUdeviceptr x, CUdeviceptr w, CUdeviceptr y, CUdeviceptr ws, size_t wsSize, dsb_algo_perf *perf, int *found) {
//	PUSH(c);
//	d->setMath(v->conv, math);
//	int r = d->findEx(d->h, v->x, (void *)x, v->w, (void *)w, v->conv, v->y, (void *)y, 8, found, perf, (void *)ws, wsSize);
//	POP(c);
//	return r;
//}
//
//static int dsb_conv_use(dsb_cuda *c, dsb_cudnn *d, dsb_conv *v, int algo, int math, size_t *ws) {
//	PUSH(c);
//	v->algo = algo; v->math = math;
//	int r = d->setMath(v->conv, math);
//	if (!r) r = d->wsSize(d->h, v->x, v->w, v->conv, v->y, algo, ws);
//	POP(c);
//	return r;
//}
//
//static int dsb_conv_forward(dsb_cuda *c, dsb_cudnn *d, dsb_conv *v, CUstream s, CUdeviceptr x, CUdeviceptr w, CUdeviceptr y, CUdeviceptr ws, size_t wsSize) {
//	float one = 1, zero = 0;
//	PUSH(c);
//	int r = d->setStream(d->h, s);
//	if (!r) r = d->forward(d->h, &one, v->x, (void *)x, v->w, (void *)w, v->conv, v->algo, (void *)ws, wsSize, &zero, v->y, (void *)y);
//	POP(c);
//	return r;
//}
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// CUDNN is a cuDNN handle on one GPU.
type CUDNN struct {
	g       *CUDA
	d       *C.dsb_cudnn
	Version int // e.g. 91900 for 9.19.0
	// Legacy restricts convolutions to the legacy API's algorithms (set
	// before NewConv; for comparisons).
	Legacy bool
}

// cudnnLibs are the cuDNN libraries tried, in order, after $DSBATCH_CUDNN_LIB.
var cudnnLibs = []string{"libcudnn.so.9", "/usr/lib/x86_64-linux-gnu/libcudnn.so.9", "/usr/local/cuda/lib64/libcudnn.so.9"}

// OpenCUDNN loads cuDNN and creates a handle on this GPU.
func (g *CUDA) OpenCUDNN() (*CUDNN, error) {
	libs := cudnnLibs
	if p := os.Getenv("DSBATCH_CUDNN_LIB"); p != "" {
		libs = append([]string{p}, libs...)
	}
	for _, l := range libs {
		cl := C.CString(l)
		var d *C.dsb_cudnn
		r := C.dsb_cudnn_open(g.c, cl, &d)
		C.free(unsafe.Pointer(cl))
		switch {
		case r == 0:
			return &CUDNN{g: g, d: d, Version: int(C.dsb_cudnn_version(d))}, nil
		case r == -2:
			return nil, fmt.Errorf("%w: %s lacks the convolution API", ErrNoCUDA, l)
		case r > 0:
			return nil, fmt.Errorf("cudnnCreate: status %d", int(r))
		}
	}
	return nil, fmt.Errorf("%w: cuDNN not found (tried %s; set DSBATCH_CUDNN_LIB)", ErrNoCUDA, strings.Join(libs, ", "))
}

// Close destroys the handle and unloads cuDNN; nil-safe.
func (d *CUDNN) Close() error {
	if d == nil || d.d == nil {
		return nil
	}
	C.dsb_cudnn_close(d.g.c, d.d)
	d.d = nil
	return nil
}

func (d *CUDNN) err(op string, r C.int) error {
	if r == 0 {
		return nil
	}
	if r < 0 {
		return fmt.Errorf("%s: step %d", op, int(r))
	}
	msg := C.GoString(C.dsb_cudnn_err(d.d, r))
	if strings.Contains(msg, "ALLOC") {
		return fmt.Errorf("%s: %w (%s)", op, ErrOutOfMemory, msg)
	}
	return fmt.Errorf("%s: %s", op, msg)
}

// ConvShape is a 2-D convolution over NHWC fp16 tensors.
type ConvShape struct {
	N, C, H, W, K, R, S                        int
	PadH, PadW, StrH, StrW, DilH, DilW, Groups int
	OH, OW                                     int
	// XPix and YPix are the element strides between neighbouring pixels
	// of x and y when they are views inside wider tensors (a Concat's
	// channels); 0 means packed (C and K). Strided convolutions run only
	// on the graph API.
	XPix, YPix int `json:",omitempty"`
	// Float makes x, w and y fp32 (products on TF32 tensor cores where
	// cuDNN picks them), not fp16: a linear layer as a 1×1 convolution.
	Float bool `json:",omitempty"`
}

// strided reports whether x or y is a view inside a wider tensor.
func (s ConvShape) strided() bool {
	return (s.XPix != 0 && s.XPix != s.C) || (s.YPix != 0 && s.YPix != s.K)
}

// ConvAlgo is a cuDNN algorithm choice for one convolution.
type ConvAlgo struct {
	// Graph marks a choice made through cuDNN's graph API: configuration
	// Algo of heuristic mode Mode, whose engine is Engine. Otherwise Algo
	// and Math are the legacy API's algorithm and math type.
	Graph      bool  `json:",omitempty"`
	Mode       int   `json:",omitempty"`
	Engine     int64 `json:",omitempty"`
	Algo, Math int
	Workspace  int64
	Millis     float32 // measured time of one run
}

// Conv is a described convolution, ready to run once an algorithm is chosen.
type Conv struct {
	d     *CUDNN
	v     *C.dsb_conv
	gc    *graphConv
	graph bool // Forward runs gc's plan
	Shape ConvShape
}

// NewConv describes a convolution; cuDNN checks the geometry.
func (d *CUDNN) NewConv(s ConvShape) (*Conv, error) {
	xp, yp := s.XPix, s.YPix
	if xp == 0 {
		xp = s.C
	}
	if yp == 0 {
		yp = s.K
	}
	f32 := C.int(0)
	if s.Float {
		f32 = 1
	}
	g := [19]C.int{C.int(s.N), C.int(s.C), C.int(s.H), C.int(s.W), C.int(s.K), C.int(s.R), C.int(s.S),
		C.int(s.PadH), C.int(s.PadW), C.int(s.StrH), C.int(s.StrW), C.int(s.DilH), C.int(s.DilW), C.int(s.Groups), C.int(s.OH), C.int(s.OW),
		C.int(xp), C.int(yp), f32}
	cg := (*C.int)(C.malloc(C.size_t(len(g)) * C.size_t(unsafe.Sizeof(C.int(0)))))
	defer C.free(unsafe.Pointer(cg))
	copy(unsafe.Slice(cg, len(g)), g[:])
	c := &Conv{d: d, Shape: s}
	if s.strided() {
		// Only the graph API describes tensors with these strides.
		if d.Legacy {
			return nil, fmt.Errorf("convolution %+v: strided tensors need cuDNN's graph API", s)
		}
		gc, err := d.newGraphConv(cg, s.Float)
		if err != nil {
			return nil, fmt.Errorf("convolution %+v: %w", s, err)
		}
		c.gc = gc
		return c, nil
	}
	if err := d.err(fmt.Sprintf("convolution %+v", s), C.dsb_conv_new(d.d, cg, &c.v)); err != nil {
		return nil, err
	}
	if !d.Legacy {
		// A geometry the graph API cannot describe runs on the legacy API.
		c.gc, _ = d.newGraphConv(cg, s.Float)
	}
	return c, nil
}

// Find measures cuDNN's algorithms on real buffers, on s, and returns the
// fastest that fits the workspace: the graph API's engines where it has
// any, else the legacy API's algorithms.
func (c *Conv) Find(s Stream, x, w, y, ws DevicePtr, wsSize int64) (ConvAlgo, error) {
	if c.gc != nil {
		a, err := c.gc.find(s, x, w, y, ws, wsSize)
		if err == nil {
			return a, nil
		}
		if c.v == nil {
			return ConvAlgo{}, fmt.Errorf("convolution %+v: %w", c.Shape, err)
		}
	}
	perf := (*C.dsb_algo_perf)(C.malloc(8 * C.size_t(unsafe.Sizeof(C.dsb_algo_perf{}))))
	defer C.free(unsafe.Pointer(perf))
	var found C.int
	math := C.int(2)
	if c.Shape.Float {
		math = 0
	}
	r := C.dsb_conv_find(c.d.g.c, c.d.d, c.v, math, C.CUdeviceptr(x), C.CUdeviceptr(w), C.CUdeviceptr(y), C.CUdeviceptr(ws), C.size_t(wsSize), perf, &found)
	if err := c.d.err("cudnnFindConvolutionForwardAlgorithmEx", r); err != nil {
		return ConvAlgo{}, err
	}
	for _, p := range unsafe.Slice(perf, int(found)) {
		if p.status == 0 && !(c.Shape.Float && p.mathType == 2) {
			return ConvAlgo{Algo: int(p.algo), Math: int(p.mathType), Workspace: int64(p.memory), Millis: float32(p.time)}, nil
		}
	}
	return ConvAlgo{}, fmt.Errorf("cuDNN has no algorithm for convolution %+v", c.Shape)
}

// Use sets the algorithm Forward runs and returns the workspace it needs.
func (c *Conv) Use(a ConvAlgo) (int64, error) {
	if a.Graph {
		if c.gc == nil {
			return 0, fmt.Errorf("convolution %+v: a graph-API choice with the graph API off", c.Shape)
		}
		need, err := c.gc.use(a)
		if err != nil {
			return 0, fmt.Errorf("convolution %+v: %w", c.Shape, err)
		}
		c.graph = true
		return need, nil
	}
	if c.v == nil {
		return 0, fmt.Errorf("convolution %+v: a legacy-API choice for strided tensors", c.Shape)
	}
	var ws C.size_t
	if err := c.d.err("cudnnGetConvolutionForwardWorkspaceSize", C.dsb_conv_use(c.d.g.c, c.d.d, c.v, C.int(a.Algo), C.int(a.Math), &ws)); err != nil {
		return 0, err
	}
	c.graph = false
	return int64(ws), nil
}

// Forward queues y = conv(x, w) on s.
func (c *Conv) Forward(s Stream, x, w, y, ws DevicePtr, wsSize int64) error {
	if c.graph {
		return c.gc.forward(s, x, w, y, ws)
	}
	return c.d.err("cudnnConvolutionForward", C.dsb_conv_forward(c.d.g.c, c.d.d, c.v, C.CUstream(unsafe.Pointer(s)),
		C.CUdeviceptr(x), C.CUdeviceptr(w), C.CUdeviceptr(y), C.CUdeviceptr(ws), C.size_t(wsSize)))
}

// Close frees the descriptors and plans; nil-safe.
func (c *Conv) Close() {
	if c == nil {
		return
	}
	c.gc.close()
	c.gc = nil
	if c.v != nil {
		C.dsb_conv_free(c.d.d, c.v)
		c.v = nil
	}
}
