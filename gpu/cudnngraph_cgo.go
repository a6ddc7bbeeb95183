package gpu

// cuDNN's graph ("backend") API for one convolution: the operation graph,
// the engine configurations its heuristics propose, and execution plans.
// The legacy API reaches only a few of cuDNN's kernels; this one reaches the
// Hopper kernels PyTorch's benchmark mode picks.

//#include "cudnn.h"
//
//enum {
//	T_HANDLE = 0, T_DATA_TYPE = 1, T_INT64 = 3, T_FLOAT = 4, T_VOID_PTR = 6, T_CONV_MODE = 7, T_HEUR_MODE = 8,
//	T_NUMERICAL_NOTE = 11, T_DESC = 15, T_BEHAVIOR_NOTE = 19,
//	D_CONV = 1, D_ENGINE = 2, D_ENGINECFG = 3, D_HEUR = 4, D_PLAN = 5, D_OP_CONV = 10, D_GRAPH = 15,
//	D_PACK = 16, D_TENSOR = 17,
//	A_CONV_COMP = 100, A_CONV_MODE = 101, A_CONV_DIL = 102, A_CONV_STRIDES = 103, A_CONV_POST = 104,
//	A_CONV_PRE = 105, A_CONV_DIMS = 106,
//	A_HEUR_MODE = 200, A_HEUR_GRAPH = 201, A_HEUR_RESULTS = 202,
//	A_CFG_ENGINE = 300,
//	A_PLAN_HANDLE = 400, A_PLAN_CFG = 401, A_PLAN_WS = 402,
//	A_OP_ALPHA = 700, A_OP_BETA = 701, A_OP_CONV = 702, A_OP_W = 703, A_OP_X = 704, A_OP_Y = 705,
//	A_GRAPH_HANDLE = 800, A_GRAPH_OPS = 801,
//	A_T_ALIGN = 900, A_T_TYPE = 901, A_T_DIMS = 902, A_T_STRIDES = 903, A_T_UID = 906,
//	A_PACK_UIDS = 1000, A_PACK_PTRS = 1001, A_PACK_WS = 1003,
//	A_ENGINE_INDEX = 1301, A_ENGINE_NUMERICAL = 1303, A_ENGINE_BEHAVIOR = 1305,
//	NOTE_DOWN_CONVERT = 1, NOTE_REDUCED_REDUCTION = 2,
//	DT_FLOAT = 0, DT_HALF = 2, XCORR = 1,
//};
//
//#define DSB_MAX_CFGS 64
//
//typedef struct {
//	cudnnDesc x, w, y, conv, op, graph;
//	int n;
//	cudnnDesc cfgs[DSB_MAX_CFGS];
//} dsb_gconv;
//
//static void dsb_gconv_free(dsb_cudnn *d, dsb_gconv *v) {
//	if (!v) return;
//	cudnnDesc *all[] = {&v->graph, &v->op, &v->conv, &v->x, &v->w, &v->y};
//	for (int i = 0; i < 6; i++) if (*all[i]) d->beDestroy(*all[i]);
//	for (int i = 0; i < v->n; i++) d->beDestroy(v->cfgs[i]);
//	free(v);
//}
//
//// tensor describes an NCHW-ordered tensor of type dt by its dims and strides.
//static int tensor(dsb_cudnn *d, cudnnDesc *t, int64_t uid, int dt, const int64_t *dims, const int64_t *strides) {
//	int r;
//	int64_t align = 16;
//	if ((r = d->beCreate(D_TENSOR, t))) return r;
//	if ((r = d->beSet(*t, A_T_TYPE, T_DATA_TYPE, 1, &dt))) return r;
//	if ((r = d->beSet(*t, A_T_DIMS, T_INT64, 4, dims))) return r;
//	if ((r = d->beSet(*t, A_T_STRIDES, T_INT64, 4, strides))) return r;
//	if ((r = d->beSet(*t, A_T_UID, T_INT64, 1, &uid))) return r;
//	if ((r = d->beSet(*t, A_T_ALIGN, T_INT64, 1, &align))) return r;
//	return d->beFinalize(*t);
//}
//
//// dsb_gconv_new builds the operation graph of one NHWC convolution with
//// fp32 accumulation; g as for dsb_conv_new: the geometry, the pixel
//// strides of x and y, then whether the tensors are fp32 (else fp16).
//static int dsb_gconv_new(dsb_cuda *c, dsb_cudnn *d, const int *g, dsb_gconv **out) {
//	int64_t n = g[0], ch = g[1], h = g[2], w = g[3], k = g[4], rr = g[5], s = g[6], cg = g[1] / g[13], oh = g[14], ow = g[15];
//	int64_t xp = g[16], yp = g[17]; // pixel strides: ch and k when packed
//	int64_t xd[4] = {n, ch, h, w}, xs[4] = {h * w * xp, 1, w * xp, xp};
//	int64_t wd[4] = {k, cg, rr, s}, wst[4] = {rr * s * cg, 1, s * cg, cg};
//	int64_t yd[4] = {n, k, oh, ow}, ys[4] = {oh * ow * yp, 1, ow * yp, yp};
//	int64_t pad[2] = {g[7], g[8]}, str[2] = {g[9], g[10]}, dil[2] = {g[11], g[12]}, dims = 2;
//	int comp = DT_FLOAT, mode = XCORR, dt = g[18] ? DT_FLOAT : DT_HALF, r;
//	float one = 1, zero = 0;
//	PUSH(c);
//	dsb_gconv *v = calloc(1, sizeof *v);
//	if ((r = tensor(d, &v->x, 1, dt, xd, xs)) || (r = tensor(d, &v->w, 2, dt, wd, wst)) || (r = tensor(d, &v->y, 3, dt, yd, ys))) goto fail;
//	if ((r = d->beCreate(D_CONV, &v->conv))) goto fail;
//	if ((r = d->beSet(v->conv, A_CONV_COMP, T_DATA_TYPE, 1, &comp)) || (r = d->beSet(v->conv, A_CONV_MODE, T_CONV_MODE, 1, &mode)) ||
//	    (r = d->beSet(v->conv, A_CONV_DIMS, T_INT64, 1, &dims)) || (r = d->beSet(v->conv, A_CONV_DIL, T_INT64, 2, dil)) ||
//	    (r = d->beSet(v->conv, A_CONV_STRIDES, T_INT64, 2, str)) || (r = d->beSet(v->conv, A_CONV_PRE, T_INT64, 2, pad)) ||
//	    (r = d->beSet(v->conv, A_CONV_POST, T_INT64, 2, pad)) || (r = d->beFinalize(v->conv))) goto fail;
//	if ((r = d->beCreate(D_OP_CONV, &v->op))) goto fail;
//	if ((r = d->beSet(v->op, A_OP_X, T_DESC, 1, &v->x)) || (r = d->beSet(v->op, A_OP_W, T_DESC, 1, &v->w)) ||
//	    (r = d->beSet(v->op, A_OP_Y, T_DESC, 1, &v->y)) || (r = d->beSet(v->op, A_OP_CONV, T_DESC, 1, &v->conv)) ||
//	    (r = d->beSet(v->op, A_OP_ALPHA, T_FLOAT, 1, &one)) || (r = d->beSet(v->op, A_OP_BETA, T_FLOAT, 1, &zero)) ||
//	    (r = d->beFinalize(v->op))) goto fail;
//	if ((r = d->beCreate(D_GRAPH, &v->graph)) || (r = d->beSet(v->graph, A_GRAPH_HANDLE, T_HANDLE, 1, &d->h)) ||
//	    (r = d->beSet(v->graph, A_GRAPH_OPS, T_DESC, 1, &v->op)) || (r = d->beFinalize(v->graph))) goto fail;
//	POP(c);
//	*out = v;
//	return 0;
//fail:
//	POP(c);
//	dsb_gconv_free(d, v);
//	return r;
//}
//
//// dsb_gconv_heur asks the heuristics (mode) for engine configurations.
//static int dsb_gconv_heur(dsb_cuda *c, dsb_cudnn *d, dsb_gconv *v, int mode) {
//	cudnnDesc heur = NULL;
//	int64_t count = 0, got = 0;
//	int r, made = 0;
//	PUSH(c);
//	for (int i = 0; i < v->n; i++) d->beDestroy(v->cfgs[i]);
//	v->n = 0;
//	if ((r = d->beCreate(D_HEUR, &heur)) || (r = d->beSet(heur, A_HEUR_GRAPH, T_DESC, 1, &v->graph)) ||
//	    (r = d->beSet(heur, A_HEUR_MODE, T_HEUR_MODE, 1, &mode)) || (r = d->beFinalize(heur)) ||
//	    (r = d->beGet(heur, A_HEUR_RESULTS, T_DESC, 0, &count, NULL))) goto done;
//	if (count > DSB_MAX_CFGS) count = DSB_MAX_CFGS;
//	for (; made < count; made++) if ((r = d->beCreate(D_ENGINECFG, &v->cfgs[made]))) goto done;
//	if ((r = d->beGet(heur, A_HEUR_RESULTS, T_DESC, count, &got, v->cfgs))) goto done;
//	v->n = (int)(got < count ? got : count);
//done:
//	for (int i = v->n; i < made; i++) d->beDestroy(v->cfgs[i]);
//	if (heur) d->beDestroy(heur);
//	POP(c);
//	return r;
//}
//
//// dsb_gconv_engine reads configuration i's engine: its global index,
//// whether it compiles kernels at run time, and whether it computes in less
//// than its tensors' precision (inputs converted down, or sums in it).
//static int dsb_gconv_engine(dsb_cudnn *d, dsb_gconv *v, int i, int64_t *index, int *runtime, int *lossy) {
//	cudnnDesc eng = NULL;
//	int64_t n = 0;
//	int notes[16], r;
//	*runtime = 0, *lossy = 0;
//	if ((r = d->beCreate(D_ENGINE, &eng))) return r;
//	if (!(r = d->beGet(v->cfgs[i], A_CFG_ENGINE, T_DESC, 1, &n, &eng)) &&
//	    !(r = d->beGet(eng, A_ENGINE_INDEX, T_INT64, 1, &n, index)) &&
//	    !(r = d->beGet(eng, A_ENGINE_BEHAVIOR, T_BEHAVIOR_NOTE, 16, &n, notes))) {
//		for (int j = 0; j < n; j++) if (notes[j] == 0) *runtime = 1;
//		if (!(r = d->beGet(eng, A_ENGINE_NUMERICAL, T_NUMERICAL_NOTE, 16, &n, notes)))
//			for (int j = 0; j < n; j++) if (notes[j] == NOTE_DOWN_CONVERT || notes[j] == NOTE_REDUCED_REDUCTION) *lossy = 1;
//	}
//	d->beDestroy(eng);
//	return r;
//}
//
//// dsb_gconv_plan finalizes configuration i as an execution plan.
//static int dsb_gconv_plan(dsb_cuda *c, dsb_cudnn *d, dsb_gconv *v, int i, cudnnDesc *plan, int64_t *ws) {
//	int64_t n;
//	int r;
//	PUSH(c);
//	*plan = NULL;
//	if (!(r = d->beCreate(D_PLAN, plan)) && !(r = d->beSet(*plan, A_PLAN_HANDLE, T_HANDLE, 1, &d->h)) &&
//	    !(r = d->beSet(*plan, A_PLAN_CFG, T_DESC, 1, &v->cfgs[i])) && !(r = d->beFinalize(*plan)))
//		r = d->beGet(*plan, A_PLAN_WS, T_INT64, 1, &n, ws);
//	if (r && *plan) { d->beDestroy(*plan); *plan = NULL; }
//	POP(c);
//	return r;
//}
//
//static void dsb_gconv_plan_free(dsb_cudnn *d, cudnnDesc plan) { if (plan) d->beDestroy(plan); }
//
//// dsb_gconv_exec queues y = conv(x, w) with a finalized plan on s.
//static int dsb_gconv_exec(dsb_cuda *c, dsb_cudnn *d, cudnnDesc plan, CUstream s, CUdeviceptr x, CUdeviceptr w, CUdeviceptr y, CUdeviceptr ws) {
//	cudnnDesc pack = NULL;
//	int64_t uids[3] = {1, 2, 3};
//	void *ptrs[3] = {(void *)x, (void *)w, (void *)y}, *wsp = (void *)ws;
//	int r;
//	PUSH(c);
//	if (!(r = d->setStream(d->h, s)) && !(r = d->beCreate(D_PACK, &pack)) &&
//	    !(r = d->beSet(pack, A_PACK_UIDS, T_INT64, 3, uids)) && !(r = d->beSet(pack, A_PACK_PTRS, T_VOID_PTR, 3, ptrs)) &&
//	    !(r = d->beSet(pack, A_PACK_WS, T_VOID_PTR, 1, &wsp)) && !(r = d->beFinalize(pack)))
//		r = d->beExecute(d->h, plan, pack);
//	if (pack) d->beDestroy(pack);
//	POP(c);
//	return r;
//}
import "C"

import (
	"fmt"
	"slices"
	"time"
	"unsafe"
)

// Heuristic modes of cuDNN's graph API that Find consults.
const (
	heurModeFallback = 2
	heurModeA        = 3
)

// graphConv is a convolution described through the graph API.
type graphConv struct {
	d    *CUDNN
	v    *C.dsb_gconv
	mode int // heuristic mode whose configurations v.cfgs holds (0: none)
	plan C.cudnnDesc
	// exact refuses engines that compute below the tensors' precision:
	// an fp32 convolution's inputs converted to fp16 would lose fp32's
	// range, the reason its tensors are fp32.
	exact bool
}

func (d *CUDNN) newGraphConv(g *C.int, exact bool) (*graphConv, error) {
	gc := &graphConv{d: d, exact: exact}
	if err := d.err("cuDNN operation graph", C.dsb_gconv_new(d.g.c, d.d, g, &gc.v)); err != nil {
		return nil, err
	}
	return gc, nil
}

// heuristics loads the configurations of one heuristic mode.
func (gc *graphConv) heuristics(mode int) (int, error) {
	if gc.mode != mode {
		if err := gc.d.err("cuDNN heuristics", C.dsb_gconv_heur(gc.d.g.c, gc.d.d, gc.v, C.int(mode))); err != nil {
			return 0, err
		}
		gc.mode = mode
	}
	return int(gc.v.n), nil
}

// engine reports configuration i's engine index, whether it compiles at
// run time and whether it computes below the tensors' precision.
func (gc *graphConv) engine(i int) (index int64, runtime, lossy bool, err error) {
	var idx C.int64_t
	var rt, lo C.int
	if err := gc.d.err("cuDNN engine", C.dsb_gconv_engine(gc.d.d, gc.v, C.int(i), &idx, &rt, &lo)); err != nil {
		return 0, false, false, err
	}
	return int64(idx), rt != 0, lo != 0, nil
}

// finalize makes configuration i the plan Forward runs.
func (gc *graphConv) finalize(i int) (int64, error) {
	var plan C.cudnnDesc
	var ws C.int64_t
	if err := gc.d.err("cuDNN execution plan", C.dsb_gconv_plan(gc.d.g.c, gc.d.d, gc.v, C.int(i), &plan, &ws)); err != nil {
		return 0, err
	}
	C.dsb_gconv_plan_free(gc.d.d, gc.plan)
	gc.plan = plan
	return int64(ws), nil
}

func (gc *graphConv) forward(s Stream, x, w, y, ws DevicePtr) error {
	return gc.d.err("cudnnBackendExecute", C.dsb_gconv_exec(gc.d.g.c, gc.d.d, gc.plan, C.CUstream(unsafe.Pointer(s)),
		C.CUdeviceptr(x), C.CUdeviceptr(w), C.CUdeviceptr(y), C.CUdeviceptr(ws)))
}

// graphCandidates bounds how many configurations of each heuristic mode
// find measures: mode A's list is ranked, so its first few hold the
// fastest; the fallback list adds engines mode A may lack. More cost build
// time (each is finalized and run) for rarely better choices.
var graphCandidates = []struct{ mode, max int }{{heurModeA, 6}, {heurModeFallback, 2}}

// find measures the first configurations of each heuristic mode that need
// no run-time compilation, fit the workspace and, where exact, keep the
// tensors' precision, and returns the fastest.
func (gc *graphConv) find(s Stream, x, w, y, ws DevicePtr, wsSize int64) (ConvAlgo, error) {
	best := ConvAlgo{Algo: -1}
	for _, hc := range graphCandidates {
		mode, max := hc.mode, hc.max
		n, err := gc.heuristics(mode)
		if err != nil {
			continue
		}
		tried := 0
		for i := 0; i < n && tried < max; i++ {
			index, runtime, lossy, err := gc.engine(i)
			if err != nil || runtime || lossy && gc.exact {
				continue
			}
			need, err := gc.finalize(i)
			if err != nil || need > wsSize {
				continue
			}
			tried++
			ms, err := gc.time(s, x, w, y, ws)
			if err != nil {
				continue
			}
			if best.Algo < 0 || ms < best.Millis {
				best = ConvAlgo{Graph: true, Mode: mode, Algo: i, Engine: index, Workspace: need, Millis: ms}
			}
		}
	}
	if best.Algo < 0 {
		return best, fmt.Errorf("cuDNN's graph API has no engine for this convolution")
	}
	return best, nil
}

// time runs the current plan once to warm up, then returns the median of
// three synchronised runs in milliseconds.
func (gc *graphConv) time(s Stream, x, w, y, ws DevicePtr) (float32, error) {
	var ts [3]float32
	for r := -1; r < len(ts); r++ {
		t0 := time.Now()
		if err := gc.forward(s, x, w, y, ws); err != nil {
			return 0, err
		}
		if err := gc.d.g.Sync(s); err != nil {
			return 0, err
		}
		if r >= 0 {
			ts[r] = float32(time.Since(t0).Seconds() * 1e3)
		}
	}
	slices.Sort(ts[:])
	return ts[len(ts)/2], nil
}

// use rebuilds a configuration chosen earlier, checking that the heuristics
// still propose the same engine at the same place.
func (gc *graphConv) use(a ConvAlgo) (int64, error) {
	n, err := gc.heuristics(a.Mode)
	if err != nil {
		return 0, err
	}
	if a.Algo >= n {
		return 0, fmt.Errorf("cuDNN heuristics propose %d configurations, the cached choice is number %d", n, a.Algo)
	}
	index, _, _, err := gc.engine(a.Algo)
	if err != nil {
		return 0, err
	}
	if index != a.Engine {
		return 0, fmt.Errorf("cuDNN heuristics propose engine %d where the cached choice has %d", index, a.Engine)
	}
	return gc.finalize(a.Algo)
}

func (gc *graphConv) close() {
	if gc == nil || gc.v == nil {
		return
	}
	C.dsb_gconv_plan_free(gc.d.d, gc.plan)
	C.dsb_gconv_free(gc.d.d, gc.v)
	gc.v, gc.plan = nil, nil
}
