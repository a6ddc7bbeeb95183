// The CUDA context shared by this package's cgo files: the driver's
// functions (the ffnvcodec loader, plus the few it lacks, looked up in the
// same library) and the GPU's primary context.
#ifndef DSB_CUDA_H
#define DSB_CUDA_H
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <ffnvcodec/dynlink_loader.h>

typedef void *dsb_graph_t;
typedef void *dsb_exec_t;

typedef struct {
	CudaFunctions *cu;
	CUdevice dev;
	CUcontext ctx;
	void *lib; // libcuda.so.1, for the functions the loader lacks
	CUresult (*beginCapture)(CUstream, int);
	CUresult (*endCapture)(CUstream, dsb_graph_t *);
	CUresult (*instantiate)(dsb_exec_t *, dsb_graph_t, unsigned long long);
	CUresult (*graphLaunch)(dsb_exec_t, CUstream);
	CUresult (*execDestroy)(dsb_exec_t);
	CUresult (*graphDestroy)(dsb_graph_t);
	CUresult (*memAllocHost)(void **, size_t);
	CUresult (*memFreeHost)(void *);
	CUresult (*streamCreatePrio)(CUstream *, unsigned int, int);
	CUresult (*prioRange)(int *, int *);
	CUresult (*memGetInfo)(size_t *, size_t *);
} dsb_cuda;

#define PUSH(c) CUresult r_; if ((r_ = (c)->cu->cuCtxPushCurrent((c)->ctx)) != 0) return (int)r_
#define POP(c) (c)->cu->cuCtxPopCurrent(NULL)
#endif
