// The cuDNN library as this package's cgo files share it: the legacy
// convolution API and the graph ("backend") API, looked up by name at run
// time. Declarations are written out so that no cuDNN header is needed.
#ifndef DSB_CUDNN_H
#define DSB_CUDNN_H
#include <stdint.h>
#include "cuda.h"

typedef void *cudnnH;
typedef void *cudnnDesc;

typedef struct {
	void *lib;
	cudnnH h;
	int (*create)(cudnnH *);
	int (*destroy)(cudnnH);
	int (*setStream)(cudnnH, CUstream);
	size_t (*version)(void);
	const char *(*errstr)(int);
	// Legacy convolution API.
	int (*createTensor)(cudnnDesc *);
	int (*setTensor)(cudnnDesc, int, int, int, int, int, int);
	int (*destroyTensor)(cudnnDesc);
	int (*createFilter)(cudnnDesc *);
	int (*setFilter)(cudnnDesc, int, int, int, int, int, int);
	int (*destroyFilter)(cudnnDesc);
	int (*createConv)(cudnnDesc *);
	int (*setConv)(cudnnDesc, int, int, int, int, int, int, int, int);
	int (*setGroups)(cudnnDesc, int);
	int (*setMath)(cudnnDesc, int);
	int (*destroyConv)(cudnnDesc);
	int (*outDim)(cudnnDesc, cudnnDesc, cudnnDesc, int *, int *, int *, int *);
	int (*findEx)(cudnnH, cudnnDesc, const void *, cudnnDesc, const void *, cudnnDesc, cudnnDesc, void *, int, int *, void *, void *, size_t);
	int (*wsSize)(cudnnH, cudnnDesc, cudnnDesc, cudnnDesc, cudnnDesc, int, size_t *);
	int (*forward)(cudnnH, const void *, cudnnDesc, const void *, cudnnDesc, const void *, cudnnDesc, int, void *, size_t, const void *, cudnnDesc, void *);
	// Graph API.
	int (*beCreate)(int, cudnnDesc *);
	int (*beDestroy)(cudnnDesc);
	int (*beFinalize)(cudnnDesc);
	int (*beSet)(cudnnDesc, int, int, int64_t, const void *);
	int (*beGet)(cudnnDesc, int, int, int64_t, int64_t *, void *);
	int (*beExecute)(cudnnH, cudnnDesc, cudnnDesc);
} dsb_cudnn;
#endif
