package gpu

// The CUDA driver (through the ffnvcodec dlopen loader) and NVRTC (dlopen
// here) behind a few C functions. Each call makes the device's context
// current for its own duration (push/pop), so Go may run it on any thread.

//#cgo LDFLAGS: -ldl
//#include "cuda.h"
//
//static const char *dsb_cu_name(dsb_cuda *c, CUresult r) {
//	const char *s = NULL;
//	if (c && c->cu && c->cu->cuGetErrorName) c->cu->cuGetErrorName(r, &s);
//	return s ? s : "CUDA_ERROR";
//}
//
//static int dsb_cuda_open(const unsigned char *uuid, dsb_cuda **out, int *major, int *minor, int *sms) {
//	dsb_cuda *c = calloc(1, sizeof *c);
//	int count = 0; CUresult r;
//	if (cuda_load_functions(&c->cu, NULL) < 0) { free(c); return -1; }
//	if ((r = c->cu->cuInit(0)) != 0) goto fail;
//	if ((r = c->cu->cuDeviceGetCount(&count)) != 0) goto fail;
//	c->dev = -1;
//	for (int i = 0; i < count; i++) {
//		CUdevice d; CUuuid u;
//		if (c->cu->cuDeviceGet(&d, i) == 0 && c->cu->cuDeviceGetUuid(&u, d) == 0 && memcmp(u.bytes, uuid, 16) == 0) { c->dev = d; break; }
//	}
//	if (c->dev < 0) { r = (CUresult)101 /* CUDA_ERROR_INVALID_DEVICE */; goto fail; }
//	if ((r = c->cu->cuDevicePrimaryCtxRetain(&c->ctx, c->dev)) != 0) goto fail;
//	c->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
//	if (c->lib) {
//		c->beginCapture = dlsym(c->lib, "cuStreamBeginCapture_v2");
//		c->endCapture = dlsym(c->lib, "cuStreamEndCapture");
//		c->instantiate = dlsym(c->lib, "cuGraphInstantiateWithFlags");
//		c->graphLaunch = dlsym(c->lib, "cuGraphLaunch");
//		c->execDestroy = dlsym(c->lib, "cuGraphExecDestroy");
//		c->graphDestroy = dlsym(c->lib, "cuGraphDestroy");
//		c->memAllocHost = dlsym(c->lib, "cuMemAllocHost_v2");
//		c->memFreeHost = dlsym(c->lib, "cuMemFreeHost");
//		c->streamCreatePrio = dlsym(c->lib, "cuStreamCreateWithPriority");
//		c->prioRange = dlsym(c->lib, "cuCtxGetStreamPriorityRange");
//		c->memGetInfo = dlsym(c->lib, "cuMemGetInfo_v2");
//	}
//	c->cu->cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->dev);
//	c->cu->cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->dev);
//	c->cu->cuDeviceGetAttribute(sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, c->dev);
//	*out = c;
//	return 0;
//fail:
//	cuda_free_functions(&c->cu);
//	free(c);
//	return (int)r;
//}
//
//static void dsb_cuda_close(dsb_cuda *c) {
//	if (!c) return;
//	if (c->ctx) c->cu->cuDevicePrimaryCtxRelease(c->dev);
//	if (c->lib) dlclose(c->lib);
//	cuda_free_functions(&c->cu);
//	free(c);
//}
//
//static int dsb_alloc(dsb_cuda *c, size_t n, CUdeviceptr *p) { PUSH(c); CUresult r = c->cu->cuMemAlloc(p, n); POP(c); return r; }
//static int dsb_free(dsb_cuda *c, CUdeviceptr p) { PUSH(c); CUresult r = c->cu->cuMemFree(p); POP(c); return r; }
//static int dsb_dtoh(dsb_cuda *c, void *dst, CUdeviceptr src, size_t n, CUstream s) {
//	PUSH(c); CUresult r = c->cu->cuMemcpyDtoHAsync(dst, src, n, s); if (!r) r = c->cu->cuStreamSynchronize(s); POP(c); return r;
//}
//static int dsb_htod(dsb_cuda *c, CUdeviceptr dst, const void *src, size_t n) { PUSH(c); CUresult r = c->cu->cuMemcpyHtoD(dst, src, n); POP(c); return r; }
//static int dsb_stream(dsb_cuda *c, CUstream *s) { PUSH(c); CUresult r = c->cu->cuStreamCreate(s, CU_STREAM_NON_BLOCKING); POP(c); return r; }
//static int dsb_stream_urgent(dsb_cuda *c, CUstream *s) {
//	if (!c->streamCreatePrio || !c->prioRange) return dsb_stream(c, s);
//	PUSH(c);
//	int least = 0, greatest = 0;
//	CUresult r = c->prioRange(&least, &greatest);
//	if (!r) r = c->streamCreatePrio(s, CU_STREAM_NON_BLOCKING, greatest);
//	POP(c);
//	return r;
//}
//static int dsb_mem_info(dsb_cuda *c, size_t *free, size_t *total) {
//	if (!c->memGetInfo) return 500; // CUDA_ERROR_NOT_FOUND
//	PUSH(c); CUresult r = c->memGetInfo(free, total); POP(c); return r;
//}
//static int dsb_stream_destroy(dsb_cuda *c, CUstream s) { PUSH(c); CUresult r = c->cu->cuStreamDestroy(s); POP(c); return r; }
//static int dsb_sync(dsb_cuda *c, CUstream s) { PUSH(c); CUresult r = c->cu->cuStreamSynchronize(s); POP(c); return r; }
//static int dsb_module(dsb_cuda *c, const void *image, CUmodule *m) { PUSH(c); CUresult r = c->cu->cuModuleLoadData(m, image); POP(c); return r; }
//static int dsb_unload(dsb_cuda *c, CUmodule m) { PUSH(c); CUresult r = c->cu->cuModuleUnload(m); POP(c); return r; }
//static int dsb_function(dsb_cuda *c, CUmodule m, const char *name, CUfunction *f) { PUSH(c); CUresult r = c->cu->cuModuleGetFunction(f, m, name); POP(c); return r; }
//static int dsb_launch(dsb_cuda *c, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, CUstream s, void **args) {
//	PUSH(c); CUresult r = c->cu->cuLaunchKernel(f, gx, gy, gz, bx, by, bz, 0, s, args, NULL); POP(c); return r;
//}
//
//// NVRTC, loaded by name. Returns 0 and a malloc'd CUBIN, or a negative step
//// with the compiler log in log (malloc'd) when there is one.
//typedef int (*nvrtcCreateProgram_t)(void **, const char *, const char *, int, const char **, const char **);
//typedef int (*nvrtcCompileProgram_t)(void *, int, const char **);
//typedef int (*nvrtcGetSize_t)(void *, size_t *);
//typedef int (*nvrtcGet_t)(void *, char *);
//typedef int (*nvrtcDestroyProgram_t)(void **);
//typedef int (*nvrtcVersion_t)(int *, int *);
//
//static void *dsb_nvrtc_open(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
//static void dsb_nvrtc_close(void *h) { if (h) dlclose(h); }
//static int dsb_nvrtc_version(void *h, int *major, int *minor) {
//	nvrtcVersion_t v = (nvrtcVersion_t)dlsym(h, "nvrtcVersion");
//	return v ? v(major, minor) : -1;
//}
//static int dsb_nvrtc_compile(void *h, const char *src, const char *name, const char *arch, char **bin, size_t *binlen, char **log) {
//	nvrtcCreateProgram_t create = (nvrtcCreateProgram_t)dlsym(h, "nvrtcCreateProgram");
//	nvrtcCompileProgram_t compile = (nvrtcCompileProgram_t)dlsym(h, "nvrtcCompileProgram");
//	nvrtcGetSize_t logsize = (nvrtcGetSize_t)dlsym(h, "nvrtcGetProgramLogSize");
//	nvrtcGet_t getlog = (nvrtcGet_t)dlsym(h, "nvrtcGetProgramLog");
//	nvrtcGetSize_t cubinsize = (nvrtcGetSize_t)dlsym(h, "nvrtcGetCUBINSize");
//	nvrtcGet_t getcubin = (nvrtcGet_t)dlsym(h, "nvrtcGetCUBIN");
//	nvrtcDestroyProgram_t destroy = (nvrtcDestroyProgram_t)dlsym(h, "nvrtcDestroyProgram");
//	if (!create || !compile || !logsize || !getlog || !cubinsize || !getcubin || !destroy) return -1;
//	void *prog = NULL;
//	if (create(&prog, src, name, 0, NULL, NULL) != 0) return -2;
//	char archopt[64]; snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
//	const char *opts[] = { archopt, "--std=c++17", "-default-device", "--use_fast_math" };
//	int rc = compile(prog, 4, opts);
//	size_t n = 0;
//	if (logsize(prog, &n) == 0 && n > 1) { *log = malloc(n); getlog(prog, *log); }
//	if (rc != 0) { destroy(&prog); return -3; }
//	if (cubinsize(prog, binlen) != 0) { destroy(&prog); return -4; }
//	*bin = malloc(*binlen);
//	getcubin(prog, *bin);
//	destroy(&prog);
//	return 0;
//}
import "C"

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

func cudaErr(c *C.dsb_cuda, op string, r C.int) error {
	if r == 0 {
		return nil
	}
	if r == 2 { // CUDA_ERROR_OUT_OF_MEMORY
		return fmt.Errorf("%s: %w (%s)", op, ErrOutOfMemory, C.GoString(C.dsb_cu_name(c, C.CUresult(r))))
	}
	return fmt.Errorf("%s: %s (%d)", op, C.GoString(C.dsb_cu_name(c, C.CUresult(r))), int(r))
}

// ErrOutOfMemory means the GPU had not the memory an allocation asked
// for (CUDA_ERROR_OUT_OF_MEMORY, or cuDNN failing to allocate).
var ErrOutOfMemory = errors.New("out of GPU memory")

// ErrNoCUDA means the CUDA driver could not be loaded or has no such GPU.
var ErrNoCUDA = errors.New("CUDA unavailable")

// DevicePtr is an address in GPU memory.
type DevicePtr uint64

// Stream is a CUDA stream (nil is the legacy default stream).
type Stream unsafe.Pointer

// CUDA is a GPU's primary context, opened through the driver API.
type CUDA struct {
	c      *C.dsb_cuda
	UUID   string
	Arch   int // compute capability × 10: 90 for an H100
	SMs    int
	mu     sync.Mutex
	nvrtc  unsafe.Pointer
	module map[string]*module
	kernel map[string]*Kernel
}

// module is one compiled source, loaded once; ready closes when mod or
// err is set, so callers asking for the same source wait for one compile
// while other sources compile beside it.
type module struct {
	ready chan struct{}
	mod   C.CUmodule
	err   error
}

// OpenCUDA retains the primary context of the GPU with this NVML UUID.
func OpenCUDA(uuid string) (*CUDA, error) {
	raw, err := uuidBytes(uuid)
	if err != nil {
		return nil, err
	}
	craw := C.CBytes(raw)
	defer C.free(craw)
	var c *C.dsb_cuda
	var major, minor, sms C.int
	if r := C.dsb_cuda_open((*C.uchar)(craw), &c, &major, &minor, &sms); r != 0 {
		if r == -1 {
			return nil, fmt.Errorf("%w: cannot load libcuda.so.1", ErrNoCUDA)
		}
		return nil, fmt.Errorf("%w: GPU %s: CUresult %d", ErrNoCUDA, uuid, int(r))
	}
	return &CUDA{c: c, UUID: uuid, Arch: int(major)*10 + int(minor), SMs: int(sms), module: map[string]*module{}, kernel: map[string]*Kernel{}}, nil
}

func uuidBytes(uuid string) ([]byte, error) {
	raw, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(uuid, "GPU-"), "-", ""))
	if err != nil || len(raw) != 16 {
		return nil, fmt.Errorf("bad GPU UUID %q", uuid)
	}
	return raw, nil
}

// Context returns the CUcontext, for packages that call other CUDA
// libraries (NVDEC) on the same GPU.
func (g *CUDA) Context() unsafe.Pointer { return unsafe.Pointer(g.c.ctx) }

// Close unloads kernels and releases the context.
func (g *CUDA) Close() error {
	g.mu.Lock()
	ms := make([]*module, 0, len(g.module))
	for _, m := range g.module {
		ms = append(ms, m)
	}
	g.mu.Unlock()
	for _, m := range ms {
		<-m.ready // a compile still running loads into this context first
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range ms {
		if m.err == nil {
			C.dsb_unload(g.c, m.mod)
		}
	}
	g.module, g.kernel = nil, nil
	if g.nvrtc != nil {
		C.dsb_nvrtc_close(g.nvrtc)
		g.nvrtc = nil
	}
	C.dsb_cuda_close(g.c)
	g.c = nil
	return nil
}

// Alloc allocates n bytes of GPU memory.
func (g *CUDA) Alloc(n int) (DevicePtr, error) {
	var p C.CUdeviceptr
	if err := cudaErr(g.c, fmt.Sprintf("cuMemAlloc(%d)", n), C.dsb_alloc(g.c, C.size_t(n), &p)); err != nil {
		return 0, err
	}
	return DevicePtr(p), nil
}

// MemInfo returns the GPU's free and total memory, in bytes.
func (g *CUDA) MemInfo() (free, total uint64, err error) {
	var f, t C.size_t
	if err := cudaErr(g.c, "cuMemGetInfo", C.dsb_mem_info(g.c, &f, &t)); err != nil {
		return 0, 0, err
	}
	return uint64(f), uint64(t), nil
}

// Free releases memory from Alloc.
func (g *CUDA) Free(p DevicePtr) error {
	if p == 0 {
		return nil
	}
	return cudaErr(g.c, "cuMemFree", C.dsb_free(g.c, C.CUdeviceptr(p)))
}

// CopyToHost copies len(dst) float32 values from src, after the work queued
// on s, and waits for the copy.
func (g *CUDA) CopyToHost(dst []float32, src DevicePtr, s Stream) error {
	if len(dst) == 0 {
		return nil
	}
	return cudaErr(g.c, "cuMemcpyDtoH", C.dsb_dtoh(g.c, unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(4*len(dst)), C.CUstream(unsafe.Pointer(s))))
}

// CopyBytesToHost copies len(dst) bytes from src.
func (g *CUDA) CopyBytesToHost(dst []byte, src DevicePtr, s Stream) error {
	if len(dst) == 0 {
		return nil
	}
	return cudaErr(g.c, "cuMemcpyDtoH", C.dsb_dtoh(g.c, unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(len(dst)), C.CUstream(unsafe.Pointer(s))))
}

// CopyToDevice copies src to dst.
func (g *CUDA) CopyToDevice(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return cudaErr(g.c, "cuMemcpyHtoD", C.dsb_htod(g.c, C.CUdeviceptr(dst), unsafe.Pointer(&src[0]), C.size_t(len(src))))
}

// CopyFloatsToDevice copies the float32 values of src to dst.
func (g *CUDA) CopyFloatsToDevice(dst DevicePtr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	return g.CopyToDevice(dst, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), 4*len(src)))
}

// NewStream creates a non-blocking stream.
func (g *CUDA) NewStream() (Stream, error) {
	var s C.CUstream
	if err := cudaErr(g.c, "cuStreamCreate", C.dsb_stream(g.c, &s)); err != nil {
		return nil, err
	}
	return Stream(unsafe.Pointer(s)), nil
}

// NewUrgentStream creates a non-blocking stream of the highest priority
// the device offers: its kernels are scheduled ahead of those of ordinary
// streams, so small latency-bound work (a decoder's frames) is not queued
// behind an engine's large kernels. Where the driver has no priorities it
// is an ordinary stream.
func (g *CUDA) NewUrgentStream() (Stream, error) {
	var s C.CUstream
	if err := cudaErr(g.c, "cuStreamCreateWithPriority", C.dsb_stream_urgent(g.c, &s)); err != nil {
		return nil, err
	}
	return Stream(unsafe.Pointer(s)), nil
}

// DestroyStream destroys s.
func (g *CUDA) DestroyStream(s Stream) error {
	return cudaErr(g.c, "cuStreamDestroy", C.dsb_stream_destroy(g.c, C.CUstream(unsafe.Pointer(s))))
}

// Sync waits for the work queued on s.
func (g *CUDA) Sync(s Stream) error {
	return cudaErr(g.c, "cuStreamSynchronize", C.dsb_sync(g.c, C.CUstream(unsafe.Pointer(s))))
}

// Kernel is a compiled GPU function.
type Kernel struct {
	g  *CUDA
	fn C.CUfunction
}

// nvrtcLibs are the NVRTC libraries tried, in order, after $DSBATCH_NVRTC_LIB.
var nvrtcLibs = []string{
	"libnvrtc.so.13", "libnvrtc.so.12", "/usr/local/cuda/lib64/libnvrtc.so.13", "/usr/local/cuda/lib64/libnvrtc.so.12",
	"/usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so.13",
}

func (g *CUDA) openNVRTC() error {
	if g.nvrtc != nil {
		return nil
	}
	h, err := openNVRTC()
	if err != nil {
		return err
	}
	g.nvrtc = h
	return nil
}

// openNVRTC opens the first NVRTC library found: $DSBATCH_NVRTC_LIB, then
// nvrtcLibs.
func openNVRTC() (unsafe.Pointer, error) {
	libs := nvrtcLibs
	if p := os.Getenv("DSBATCH_NVRTC_LIB"); p != "" {
		libs = append([]string{p}, libs...)
	}
	for _, l := range libs {
		cl := C.CString(l)
		h := C.dsb_nvrtc_open(cl)
		C.free(unsafe.Pointer(cl))
		if h != nil {
			return h, nil
		}
	}
	return nil, fmt.Errorf("%w: NVRTC not found (tried %s; set DSBATCH_NVRTC_LIB)", ErrNoCUDA, strings.Join(libs, ", "))
}

// CheckSource compiles the CUDA C source src with NVRTC for compute
// capability arch (90 for Hopper) and returns the compiler's error, if
// any. It needs NVRTC but neither a GPU nor its driver, so kernels can be
// checked on a machine without one; ErrNoCUDA when NVRTC is missing.
func CheckSource(src string, arch int) error {
	h, err := openNVRTC()
	if err != nil {
		return err
	}
	defer C.dsb_nvrtc_close(h)
	_, err = nvrtcCompile(h, src, "check", arch)
	return err
}

// Kernel compiles the CUDA C source src with NVRTC for this GPU and returns
// its function name. Compiled code is cached in cacheDir (when not empty)
// keyed by the source, the NVRTC version and the GPU architecture, so later
// runs load it without compiling; each source is compiled once however
// many of its functions are asked for, and different sources compile
// concurrently.
func (g *CUDA) Kernel(src, name, cacheDir string) (*Kernel, error) {
	h := sha256.Sum256([]byte(src))
	key := fmt.Sprintf("%s-sm%d", hex.EncodeToString(h[:12]), g.Arch)
	g.mu.Lock()
	if k, ok := g.kernel[key+"/"+name]; ok {
		g.mu.Unlock()
		return k, nil
	}
	m, ok := g.module[key]
	if !ok {
		m = &module{ready: make(chan struct{})}
		g.module[key] = m
		g.mu.Unlock()
		m.mod, m.err = g.load(src, key, cacheDir)
		close(m.ready)
		if m.err != nil {
			g.mu.Lock()
			delete(g.module, key) // the next call tries again
			g.mu.Unlock()
		}
	} else {
		g.mu.Unlock()
		<-m.ready
	}
	if m.err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, m.err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if k, ok := g.kernel[key+"/"+name]; ok {
		return k, nil
	}
	k := &Kernel{g: g}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := cudaErr(g.c, "cuModuleGetFunction", C.dsb_function(g.c, m.mod, cname, &k.fn)); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	g.kernel[key+"/"+name] = k
	return k, nil
}

// load compiles src (or reads it from the cache) and loads the module.
func (g *CUDA) load(src, key, cacheDir string) (C.CUmodule, error) {
	g.mu.Lock()
	err := g.openNVRTC()
	nvrtc := g.nvrtc
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var vmaj, vmin C.int
	C.dsb_nvrtc_version(nvrtc, &vmaj, &vmin)
	cachePath := ""
	if cacheDir != "" {
		cachePath = filepath.Join(cacheDir, fmt.Sprintf("%s-nvrtc%d.%d.cubin", key, vmaj, vmin))
	}
	image, err := os.ReadFile(cachePath)
	if cachePath == "" || err != nil {
		if image, err = nvrtcCompile(nvrtc, src, key, g.Arch); err != nil {
			return nil, err
		}
		if cachePath != "" {
			// A cache: a failed write costs a compilation next time.
			atomicfile.Write(cachePath, func(w io.Writer) error { _, err := w.Write(image); return err })
		}
	}
	cimg := C.CBytes(image)
	defer C.free(cimg)
	var mod C.CUmodule
	if err := cudaErr(g.c, "cuModuleLoadData", C.dsb_module(g.c, cimg, &mod)); err != nil {
		return nil, err
	}
	return mod, nil
}

// nvrtcCompile compiles src with the NVRTC library h for sm_<arch> and
// returns the cubin.
func nvrtcCompile(h unsafe.Pointer, src, name string, arch int) ([]byte, error) {
	csrc, cname := C.CString(src), C.CString(name+".cu")
	carch := C.CString(fmt.Sprintf("sm_%d", arch))
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(carch))
	var bin, log *C.char
	var n C.size_t
	rc := C.dsb_nvrtc_compile(h, csrc, cname, carch, &bin, &n, &log)
	msg := ""
	if log != nil {
		msg = C.GoString(log)
		C.free(unsafe.Pointer(log))
	}
	if rc != 0 {
		return nil, fmt.Errorf("NVRTC compiling %s (step %d): %s", name, int(rc), strings.TrimSpace(msg))
	}
	defer C.free(unsafe.Pointer(bin))
	return C.GoBytes(unsafe.Pointer(bin), C.int(n)), nil
}

// Launch queues the kernel on s. Arguments may be DevicePtr, int32,
// uint32, float32 or int64 values, passed by value as CUDA expects.
func (k *Kernel) Launch(grid, block [3]uint32, s Stream, args ...any) error {
	n := len(args)
	sp, pp := C.malloc(C.size_t(8*max(n, 1))), C.malloc(C.size_t(8*max(n, 1)))
	defer C.free(sp)
	defer C.free(pp)
	store := (*[1 << 20]uint64)(sp)[:n:n]
	ptrs := (*[1 << 20]unsafe.Pointer)(pp)[:n:n]
	for i, a := range args {
		var b [8]byte
		switch v := a.(type) {
		case DevicePtr:
			binary.LittleEndian.PutUint64(b[:], uint64(v))
		case int32:
			binary.LittleEndian.PutUint32(b[:], uint32(v))
		case uint32:
			binary.LittleEndian.PutUint32(b[:], v)
		case int64:
			binary.LittleEndian.PutUint64(b[:], uint64(v))
		case float32:
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		default:
			return fmt.Errorf("kernel argument %d: unsupported type %T", i, a)
		}
		store[i] = binary.LittleEndian.Uint64(b[:])
		ptrs[i] = unsafe.Pointer(&store[i])
	}
	var argv *unsafe.Pointer
	if n > 0 {
		argv = &ptrs[0]
	}
	return cudaErr(k.g.c, "cuLaunchKernel", C.dsb_launch(k.g.c, k.fn, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]),
		C.uint(block[0]), C.uint(block[1]), C.uint(block[2]), C.CUstream(unsafe.Pointer(s)), argv))
}
