package infer

import (
	"context"
	"fmt"
	"math"

	"github.com/dsbatch/dsbatch/gpu"
)

// detectSource is the CUDA C of post-processing on the device for heads
// laid out as [B, 4+C, N] (YOLOv8 and later: score threshold, top-k and
// greedy NMS) and for one2one heads [B, N, 4+C] (the NMS-free YOLOv10 and
// YOLO26 with their exported top-k cut off: two top-k), computed exactly
// as Layout.Decode computes them on the host (the same float32
// operations, no contractions; ties broken by index).
const detectSource = `
typedef unsigned long long u64;

// Scores become keys that order as unsigned integers, best first when
// sorted descending; the low half holds the complement of the anchor, so
// equal scores order by anchor.
__device__ __forceinline__ unsigned orderable(float f) {
	unsigned u = __float_as_uint(f);
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float unorder(unsigned u) {
	return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

// select_v8: one thread per anchor (grid.y = image) keeps the anchors whose
// best class scores at least conf; an image is rows of n (4 + nc, and a
// pose's keypoint or a seg model's coefficient rows after the classes),
// img floats apart (more than the rows where a seg model's prototypes
// follow them).
// An anchor whose box or class scores are not all finite (a network that
// overflowed) counts in bad[b] and is not selected.
extern "C" __global__ void select_v8(const float* out, int n, int nc, long long img, float conf, unsigned* count, unsigned* bad, u64* keys) {
	int a = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
	if (a >= n) return;
	const float* p = out + (long long)b * img;
	float best = -1.0f;
	bool finite = true;
	for (int c = 0; c < 4; c++) finite &= isfinite(p[(long long)c * n + a]);
	for (int c = 0; c < nc; c++) {
		float s = p[(long long)(4 + c) * n + a];
		finite &= isfinite(s);
		if (s > best) best = s;
	}
	if (!finite) { atomicAdd(&bad[b], 1u); return; }
	if (!(best >= conf)) return;
	unsigned slot = atomicAdd(&count[b], 1u);
	keys[(long long)b * n + slot] = ((u64)orderable(best) << 32) | (0xffffffffu - (unsigned)a);
}

#define TOPK_MAX 1024
// A detection row: x1, y1, x2, y2, score, class, 1 + the anchor it was read
// from, then a pose's keypoints or a seg model's mask coefficients.
#define ROW 7

__device__ __forceinline__ float iou(float4 a, float4 b) {
	float iw = __fsub_rn(fminf(a.z, b.z), fmaxf(a.x, b.x));
	float ih = __fsub_rn(fminf(a.w, b.w), fmaxf(a.y, b.y));
	if (iw <= 0.0f || ih <= 0.0f) return 0.0f;
	float inter = __fmul_rn(iw, ih);
	float ua = __fmul_rn(__fsub_rn(a.z, a.x), __fsub_rn(a.w, a.y));
	float ub = __fmul_rn(__fsub_rn(b.z, b.x), __fsub_rn(b.w, b.y));
	float uni = __fsub_rn(__fadd_rn(ua, ub), inter);
	if (uni <= 0.0f) return 0.0f;
	return __fdiv_rn(inter, uni);
}

// topk leaves in key[0..m) the m = min(c, k) largest of the c unique keys
// at ck, sorted descending, and returns m (k at most TOPK_MAX). The whole
// block calls it; hist, prefix, kept and need are its shared scratch.
__device__ int topk(const u64* ck, unsigned c, int k, u64* key, unsigned* hist, u64* prefix, unsigned* kept, unsigned* need) {
	int t = threadIdx.x, bs = blockDim.x;
	if (t == 0) { *prefix = 0; *kept = 0; *need = k; }
	__syncthreads();
	if (c > (unsigned)k) {
		// The k-th largest key, eight bits at a time; keys are unique.
		u64 mask = 0;
		for (int shift = 56; shift >= 0; shift -= 8) {
			for (int i = t; i < 256; i += bs) hist[i] = 0;
			__syncthreads();
			u64 pre = *prefix;
			for (unsigned i = t; i < c; i += bs) {
				u64 v = ck[i];
				if ((v & mask) == pre) atomicAdd(&hist[(v >> shift) & 255], 1u);
			}
			__syncthreads();
			if (t == 0) {
				unsigned r = *need;
				for (int d = 255; d >= 0; d--) {
					if (hist[d] >= r) { *prefix = pre | ((u64)d << shift); break; }
					r -= hist[d];
				}
				*need = r;
			}
			mask |= (u64)255 << shift;
			__syncthreads();
		}
	}
	u64 lo = c > (unsigned)k ? *prefix : 0;
	for (unsigned i = t; i < c; i += bs) {
		u64 v = ck[i];
		if (v >= lo) { unsigned s = atomicAdd(kept, 1u); if (s < TOPK_MAX) key[s] = v; }
	}
	__syncthreads();
	int m = min((int)*kept, k), pw = 1;
	while (pw < m) pw <<= 1;
	for (int i = m + t; i < pw; i += bs) key[i] = 0;
	__syncthreads();
	for (int size = 2; size <= pw; size <<= 1) {
		for (int stride = size >> 1; stride > 0; stride >>= 1) {
			for (int i = t; i < pw; i += bs) {
				int j = i ^ stride;
				if (j > i) {
					bool desc = (i & size) == 0;
					u64 x = key[i], y = key[j];
					if (desc ? x < y : x > y) { key[i] = y; key[j] = x; }
				}
			}
			__syncthreads();
		}
	}
	return m;
}

// detect_v8: one block of 1024 threads per image takes the k best of the
// selected anchors (radix select when more than k), sorts them, and runs
// greedy NMS; it writes up to maxDet rows (row floats apart) of x1, y1, x2,
// y2, score, class, 1 + the anchor, then the extra rows after the classes
// of the detection's anchor (a pose's keypoints, a seg model's mask
// coefficients); images img floats apart, as for select_v8. With raw, a
// row holds the anchor's cx, cy, w, h as the output has them instead of
// the corners (an oriented box's, whose NMS the host does with thr 2: the
// sorted top-k candidates).
extern "C" __global__ void detect_v8(const float* out, int n, int nc, long long img, int extra, int row, const unsigned* count, const u64* keys,
		int k, float thr, int maxDet, int agnostic, int raw, float* dets, int* ndet) {
	__shared__ u64 key[TOPK_MAX];
	__shared__ float4 box[TOPK_MAX];
	__shared__ int cls[TOPK_MAX];
	__shared__ int keep[TOPK_MAX];
	__shared__ unsigned char drop[TOPK_MAX];
	__shared__ unsigned hist[256];
	__shared__ u64 prefix;
	__shared__ unsigned kept, need;
	int b = blockIdx.x, t = threadIdx.x, bs = blockDim.x;
	const float* p = out + (long long)b * img;
	unsigned c = min(count[b], (unsigned)n);
	int m = topk(keys + (long long)b * n, c, k, key, hist, &prefix, &kept, &need);
	for (int i = t; i < m; i += bs) {
		int a = (int)(0xffffffffu - (unsigned)key[i]);
		float best = -1.0f; int bc = -1;
		for (int q = 0; q < nc; q++) {
			float s = p[(long long)(4 + q) * n + a];
			if (s > best) { best = s; bc = q; }
		}
		float cx = p[a], cy = p[n + a], w = __fmul_rn(p[2 * n + a], 0.5f), h = __fmul_rn(p[3 * n + a], 0.5f);
		box[i] = make_float4(__fsub_rn(cx, w), __fsub_rn(cy, h), __fadd_rn(cx, w), __fadd_rn(cy, h));
		cls[i] = bc;
		drop[i] = 0;
	}
	__syncthreads();
	int nk = 0;
	float* o = dets + (long long)b * maxDet * row;
	for (int i = 0; i < m && nk < maxDet; i++) {
		if (drop[i]) continue;
		if (t == 0) {
			float4 q = box[i];
			float* r = o + nk * row;
			if (raw) {
				int a = (int)(0xffffffffu - (unsigned)key[i]);
				q = make_float4(p[a], p[n + a], p[2 * n + a], p[3 * n + a]);
			}
			r[0] = q.x; r[1] = q.y; r[2] = q.z; r[3] = q.w;
			r[4] = unorder((unsigned)(key[i] >> 32)); r[5] = (float)cls[i];
			r[6] = (float)(1 + (int)(0xffffffffu - (unsigned)key[i]));
			keep[nk] = i;
		}
		nk++;
		if (nk == maxDet) break;
		float4 q = box[i];
		int qc = cls[i];
		for (int j = i + 1 + t; j < m; j += bs)
			if (!drop[j] && (agnostic || cls[j] == qc) && iou(q, box[j]) > thr) drop[j] = 1;
		__syncthreads();
	}
	__syncthreads();
	for (int x = t; x < nk * extra; x += bs) {
		int j = x / extra, e = x - j * extra;
		int a = (int)(0xffffffffu - (unsigned)key[keep[j]]);
		o[j * row + ROW + e] = p[(long long)(4 + nc + e) * n + a];
	}
	if (t == 0) ndet[b] = nk;
}

// select_o2o: select_v8 for a one2one head's [B, n, d2] rows (box, then nc
// class scores), non-finite anchors counted in bad[b] as there.
extern "C" __global__ void select_o2o(const float* out, int n, int d2, int nc, float conf, unsigned* count, unsigned* bad, u64* keys) {
	int a = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
	if (a >= n) return;
	const float* p = out + ((long long)b * n + a) * d2 + 4;
	float best = -1.0f;
	bool finite = true;
	for (int c = -4; c < 0; c++) finite &= isfinite(p[c]);
	for (int c = 0; c < nc; c++) { finite &= isfinite(p[c]); best = fmaxf(best, p[c]); }
	if (!finite) { atomicAdd(&bad[b], 1u); return; }
	if (!(best >= conf)) return;
	unsigned slot = atomicAdd(&count[b], 1u);
	keys[(long long)b * n + slot] = ((u64)orderable(best) << 32) | (0xffffffffu - (unsigned)a);
}

// detect_o2o: as Layout.Decode reads a one2one head, one block per image:
// the maxDet anchors of best class score, then the maxDet best (anchor,
// class) pairs among them scoring at least conf, ties to the lower index;
// no NMS. pairs holds maxDet × nc keys an image.
extern "C" __global__ void detect_o2o(const float* out, int n, int d2, int nc, const unsigned* count, const u64* keys,
		int maxDet, float conf, u64* pairs, float* dets, int* ndet) {
	__shared__ u64 key[TOPK_MAX];
	__shared__ int anchor[TOPK_MAX];
	__shared__ unsigned hist[256];
	__shared__ u64 prefix;
	__shared__ unsigned kept, need, npairs;
	int b = blockIdx.x, t = threadIdx.x, bs = blockDim.x;
	const float* p = out + (long long)b * n * d2;
	unsigned c = min(count[b], (unsigned)n);
	int m = topk(keys + (long long)b * n, c, maxDet, key, hist, &prefix, &kept, &need);
	for (int i = t; i < m; i += bs) anchor[i] = (int)(0xffffffffu - (unsigned)key[i]);
	if (t == 0) npairs = 0;
	__syncthreads();
	u64* pk = pairs + (long long)b * maxDet * nc;
	for (int i = t; i < m * nc; i += bs) {
		int r = i / nc, q = i - r * nc;
		float s = p[(long long)anchor[r] * d2 + 4 + q];
		if (s >= conf) {
			unsigned slot = atomicAdd(&npairs, 1u);
			pk[slot] = ((u64)orderable(s) << 32) | (0xffffffffu - (unsigned)i);
		}
	}
	__syncthreads();
	int mp = topk(pk, npairs, maxDet, key, hist, &prefix, &kept, &need);
	float* o = dets + (long long)b * maxDet * ROW;
	for (int i = t; i < mp; i += bs) {
		unsigned pi = 0xffffffffu - (unsigned)key[i];
		int a = anchor[pi / nc];
		const float* row = p + (long long)a * d2;
		float* r = o + i * ROW;
		r[0] = row[0]; r[1] = row[1]; r[2] = row[2]; r[3] = row[3];
		r[4] = unorder((unsigned)(key[i] >> 32)); r[5] = (float)(pi % nc); r[6] = (float)(a + 1);
	}
	if (t == 0) ndet[b] = mp;
}
`

// deviceTopKMax is the most candidates per image detect_v8 takes.
const deviceTopKMax = 1024

// detRow is the floats of a detection row the device writes (ROW).
const detRow = 7

// detectBuffers are the device and host memory of post-processing on the
// device, sized for the engine's largest batch at one output layout.
type detectBuffers struct {
	anchors, rows, pairs int // per image: anchors, floats of detection rows, one2one pair keys
	count, keys          gpu.DevicePtr
	bad                  gpu.DevicePtr // per image: anchors whose values are not finite
	pairKeys             gpu.DevicePtr // one2one: maxDet × classes keys an image
	dets, ndet           gpu.DevicePtr
	host                 *gpu.HostBuffer // dets, ndet, then bad
	// Oriented boxes' NMS (nms_obb), for obb candidates an image: their
	// quads, the kept rows' indices and their number, and those on the host.
	obb                int
	quads, keep, nkeep gpu.DevicePtr
	keepHost           *gpu.HostBuffer // keep then nkeep
}

// DeviceDetects reports whether the GPU engine post-processes on the GPU
// for this layout and these options (otherwise it copies the raw output to
// the host and decodes there): selection, top-k and NMS (for oriented
// boxes, rotated NMS over the sorted top-k: nms_obb).
func DeviceDetects(l Layout, o PostOptions) bool {
	switch l.Head {
	case HeadV8, HeadPose:
		return o.topK() <= deviceTopKMax && o.maxDet() <= deviceTopKMax
	case HeadOBB:
		return o.topK() <= deviceTopKMax
	case HeadOne2One:
		return l.Masks == 0 && l.Keypoints == 0 && o.maxDet() <= deviceTopKMax
	}
	return false
}

// Forward runs the network on the n images in its input memory and waits
// for it, leaving the output on the GPU: the engine's own pace, for
// benchmarks.
func (e *GPUEngine) Forward(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := e.planFor(n)
	if err != nil {
		return err
	}
	if err := e.run(p); err != nil {
		return err
	}
	return e.cuda.Sync(e.stream)
}

// InputFrames are the addresses of the first n images of the engine's
// input memory: frames written there (as the benchmarks do) are read in
// place, without a copy.
func (e *GPUEngine) InputFrames(n int) []gpu.DevicePtr {
	img := gpu.DevicePtr(3 * e.h * e.w * 4)
	srcs := make([]gpu.DevicePtr, n)
	for i := range srcs {
		srcs[i] = e.input + gpu.DevicePtr(i)*img
	}
	return srcs
}

// detect runs f's images and returns each one's detections in model-input
// pixels, as Layout.Decode would. Host frames are uploaded; device frames
// are copied into the input memory on the engine's stream. Score
// threshold, top-k and NMS run on the GPU when DeviceDetects allows, so
// that only the kept boxes cross to the host (for oriented boxes, the
// sorted top-k candidates and which of them the rotated NMS kept).
func (e *GPUEngine) detect(ctx context.Context, f Frames, l Layout, o PostOptions) ([][]Detection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := f.N
	if n < 1 || n > e.opts.Batch {
		return nil, fmt.Errorf("infer: %d images, the engine was built for batches of 1 to %d", n, e.opts.Batch)
	}
	if f.Device != nil {
		img := 3 * e.h * e.w * 4
		for i, src := range f.Device {
			dst := e.input + gpu.DevicePtr(i*img)
			if src == dst {
				continue
			}
			if err := e.cuda.CopyDeviceAsync(dst, src, img, e.stream); err != nil {
				return nil, err
			}
		}
	} else if err := e.upload(f.Host, n); err != nil {
		return nil, err
	}
	if !DeviceDetects(l, o) {
		out, shape, err := e.inferDevice(n)
		if err != nil {
			return nil, err
		}
		if !l.Fits(shape) {
			return nil, fmt.Errorf("gpu engine: output %v does not fit the %s head's [%d, %d, %d]", shape, l, n, l.D1, l.D2)
		}
		if err := l.checkFinite(out, n, "gpu"); err != nil {
			return nil, err
		}
		return l.DecodeBatch(out, n, o), nil
	}
	p, err := e.planFor(n)
	if err != nil {
		return nil, err
	}
	outV := p.prog.Outputs[0]
	shape := make([]int64, len(outV.Shape))
	for i, d := range outV.Shape {
		shape[i] = int64(d)
	}
	if !l.Fits(shape) {
		return nil, fmt.Errorf("gpu engine: output %v does not match layout [B, %d, %d]", outV.Shape, l.D1, l.D2)
	}
	// An oriented-box head's rotated NMS runs over the sorted top-k
	// candidates detect_v8 writes (raw boxes, the angle beside): nms_obb.
	maxDet, thr, raw := o.maxDet(), o.IoU, int32(0)
	if l.Head == HeadOBB {
		maxDet, thr, raw = o.topK(), 2, 1
	}
	anchors, nc, pairs, extra, img := l.D2, l.D1-4, 0, 0, int64(l.Values())
	switch {
	case l.Head == HeadOne2One:
		anchors, nc = l.D1, l.oneToOneClasses()
		pairs = maxDet * nc
	case l.Head == HeadPose:
		nc, extra = l.Classes, l.Keypoints*l.KeypointDims
	case l.Masks > 0:
		nc, extra = l.Classes, l.Masks
	case l.Head == HeadOBB:
		nc, extra = l.D1-5, 1
	}
	row := detRow + extra
	obb := 0
	if l.Head == HeadOBB {
		obb = maxDet
	}
	d, err := e.detectBuffers(anchors, maxDet*row, pairs, obb)
	if err != nil {
		return nil, err
	}
	if err := e.run(p); err != nil {
		return nil, err
	}
	st := e.stream
	if err := e.cuda.ZeroAsync(d.count, int64(4*n), st); err != nil {
		return nil, err
	}
	if err := e.cuda.ZeroAsync(d.bad, int64(4*n), st); err != nil {
		return nil, err
	}
	grid := [3]uint32{uint32((anchors + 255) / 256), uint32(n), 1}
	images, threads := [3]uint32{uint32(n), 1, 1}, [3]uint32{1024, 1, 1}
	if l.Head == HeadOne2One {
		if err := e.k.selectO2O.Launch(grid, [3]uint32{256, 1, 1}, st, e.addr(p, outV), int32(anchors), int32(l.D2), int32(nc), o.Conf, d.count, d.bad, d.keys); err != nil {
			return nil, err
		}
		if err := e.k.detectO2O.Launch(images, threads, st, e.addr(p, outV), int32(anchors), int32(l.D2), int32(nc),
			d.count, d.keys, int32(maxDet), o.Conf, d.pairKeys, d.dets, d.ndet); err != nil {
			return nil, err
		}
	} else {
		if err := e.k.selectV8.Launch(grid, [3]uint32{256, 1, 1}, st, e.addr(p, outV), int32(anchors), int32(nc), img, o.Conf, d.count, d.bad, d.keys); err != nil {
			return nil, err
		}
		agnostic := int32(0)
		if o.ClassAgnostic {
			agnostic = 1
		}
		if err := e.k.detectV8.Launch(images, threads, st, e.addr(p, outV), int32(anchors), int32(nc), img, int32(extra), int32(row),
			d.count, d.keys, int32(o.topK()), thr, int32(maxDet), agnostic, raw, d.dets, d.ndet); err != nil {
			return nil, err
		}
	}
	if l.Head == HeadOBB {
		agnostic := int32(0)
		if o.ClassAgnostic {
			agnostic = 1
		}
		if err := e.k.nmsOBB.Launch(images, [3]uint32{256, 1, 1}, st, d.dets, int32(row), int32(maxDet), d.ndet, int32(o.maxDet()), o.IoU, agnostic,
			d.quads, d.keep, d.nkeep); err != nil {
			return nil, err
		}
		if err := e.cuda.DownloadAsync(d.keepHost, 0, d.keep, 4*maxDet*n, st); err != nil {
			return nil, err
		}
		if err := e.cuda.DownloadAsync(d.keepHost, 4*maxDet*e.opts.Batch, d.nkeep, 4*n, st); err != nil {
			return nil, err
		}
	}
	rows := 4 * row * maxDet * n
	if err := e.cuda.DownloadAsync(d.host, 0, d.dets, rows, st); err != nil {
		return nil, err
	}
	if err := e.cuda.DownloadAsync(d.host, 4*row*maxDet*e.opts.Batch, d.ndet, 4*n, st); err != nil {
		return nil, err
	}
	if err := e.cuda.DownloadAsync(d.host, 4*(row*maxDet+1)*e.opts.Batch, d.bad, 4*n, st); err != nil {
		return nil, err
	}
	var masks *maskBuffers
	if l.Masks > 0 {
		if masks, err = e.weighMasks(e.addr(p, outV), l, n, d.dets, d.ndet, row, maxDet); err != nil {
			return nil, err
		}
	}
	if err := e.cuda.Sync(st); err != nil {
		return nil, fmt.Errorf("gpu engine: %w", err)
	}
	rowsOut := d.host.Floats()
	counts := rowsOut[row*maxDet*e.opts.Batch:]
	for i, c := range rowsOut[(row*maxDet+1)*e.opts.Batch:][:n] {
		if bad := math.Float32bits(c); bad > 0 {
			return nil, &NonFiniteError{Image: i, Anchors: int(bad), Engine: "gpu"}
		}
	}
	res := make([][]Detection, n)
	// hostNMS marks the oriented-box images whose NMS the device left to
	// the host (see obbSource).
	var hostNMS []bool
	for i := range res {
		k := int(math.Float32bits(counts[i]))
		if k < 0 || k > maxDet {
			return nil, fmt.Errorf("gpu engine: image %d: %d detections from the device, at most %d expected", i, k, maxDet)
		}
		// The rows kept: every row, or those nms_obb kept, in order.
		kept := func(j int) int { return j }
		if l.Head == HeadOBB {
			ki := d.keepHost.Floats()
			nk := int(int32(math.Float32bits(ki[maxDet*e.opts.Batch+i])))
			switch {
			case nk == -1:
				if hostNMS == nil {
					hostNMS = make([]bool, n)
				}
				hostNMS[i] = true
			case nk < 0 || nk > k:
				return nil, fmt.Errorf("gpu engine: image %d: %d oriented boxes kept of %d candidates", i, nk, k)
			default:
				k = nk
				kept = func(j int) int { return int(math.Float32bits(ki[i*maxDet+j])) }
			}
		}
		dets := make([]Detection, k)
		for j := range dets {
			r := rowsOut[(i*maxDet+kept(j))*row:]
			dets[j] = Detection{X1: r[0], Y1: r[1], X2: r[2], Y2: r[3], Score: r[4], Class: int(r[5])}
			if l.Head == HeadOBB { // as decodeOBB makes it
				dets[j].Rotated = newRotated(r[0], r[1], r[2], r[3], r[detRow])
				dets[j].X1, dets[j].Y1, dets[j].X2, dets[j].Y2 = dets[j].Rotated.bounds()
			}
			if l.Head == HeadOne2One || l.Masks > 0 {
				dets[j].src = int32(r[6]) // where the host's decode keeps it
			}
			if l.Head == HeadPose {
				dets[j].Keypoints = l.keypointsOf(r[detRow : detRow+extra])
			}
		}
		if bad := nonFiniteParts(dets); bad > 0 {
			return nil, &NonFiniteError{Image: i, Anchors: bad, Engine: "gpu"}
		}
		res[i] = dets
	}
	if hostNMS != nil {
		parallel(n, func(i int) {
			if hostNMS[i] {
				res[i] = suppress(res[i], o.IoU, o.maxDet(), o.ClassAgnostic)
			}
		})
	}
	if masks != nil {
		weighed, err := e.deviceMasks(masks, l, res, maxDet)
		if err != nil {
			return nil, err
		}
		if !weighed {
			e.hostWeighed++
			if err := e.weighOnHost(e.addr(p, outV), l, res, rowsOut, row, maxDet); err != nil {
				return nil, err
			}
		}
	}
	for i := range res {
		res[i] = dropNonFinite(res[i])
	}
	return res, nil
}

// weighOnHost weighs the masks of res on the host, images side by side:
// the prototypes of the joined output at out downloaded, with the
// coefficients the device copied beside each detection's row (in rowsOut).
// The fallback where the windows' logits outgrow the device's room.
func (e *GPUEngine) weighOnHost(out gpu.DevicePtr, l Layout, res [][]Detection, rowsOut []float32, row, maxDet int) error {
	n := len(res)
	protos, err := e.downloadPrototypes(out, l, n)
	if err != nil {
		return err
	}
	per := l.protoValues()
	parallel(n, func(i int) {
		for j := range res[i] {
			r := rowsOut[(i*maxDet+j)*row:]
			d := &res[i][j]
			d.Mask = l.weighMask(protos[i*per:(i+1)*per], r[detRow:detRow+l.Masks], d)
		}
	})
	return nil
}

// downloadPrototypes copies the prototypes of the first n images of a seg
// model's joined output at out (each image's detection rows, then its
// prototypes) into host memory, and returns them, image after image.
func (e *GPUEngine) downloadPrototypes(out gpu.DevicePtr, l Layout, n int) ([]float32, error) {
	per, img := l.protoValues(), l.Values()
	if e.protos == nil {
		h, err := e.cuda.AllocHost(4 * per * e.opts.Batch)
		if err != nil {
			return nil, fmt.Errorf("gpu engine: host memory for mask prototypes: %w", err)
		}
		e.protos = h
	}
	for i := 0; i < n; i++ {
		src := out + gpu.DevicePtr(4*(i*img+l.D1*l.D2))
		if err := e.cuda.DownloadAsync(e.protos, 4*i*per, src, 4*per, e.stream); err != nil {
			return nil, err
		}
	}
	if err := e.cuda.Sync(e.stream); err != nil {
		return nil, fmt.Errorf("gpu engine: %w", err)
	}
	return e.protos.Floats()[:n*per], nil
}

// detectBuffers returns buffers for anchors keys, rows floats of
// detection rows and pairs one2one keys per image, reallocating when any
// changes.
func (e *GPUEngine) detectBuffers(anchors, rows, pairs, obb int) (*detectBuffers, error) {
	if d := e.det; d != nil && d.anchors == anchors && d.rows == rows && d.pairs == pairs && d.obb == obb {
		return d, nil
	}
	e.freeDetect()
	d := &detectBuffers{anchors: anchors, rows: rows, pairs: pairs, obb: obb}
	e.det = d
	var err error
	b := e.opts.Batch
	if d.count, err = e.cuda.Alloc(4 * b); err != nil {
		return nil, err
	}
	if d.keys, err = e.cuda.Alloc(8 * anchors * b); err != nil {
		return nil, err
	}
	if pairs > 0 {
		if d.pairKeys, err = e.cuda.Alloc(8 * pairs * b); err != nil {
			return nil, err
		}
	}
	if d.dets, err = e.cuda.Alloc(4 * rows * b); err != nil {
		return nil, err
	}
	if d.ndet, err = e.cuda.Alloc(4 * b); err != nil {
		return nil, err
	}
	if d.bad, err = e.cuda.Alloc(4 * b); err != nil {
		return nil, err
	}
	if d.host, err = e.cuda.AllocHost(4*rows*b + 8*b); err != nil {
		return nil, err
	}
	if obb > 0 {
		if d.quads, err = e.cuda.Alloc(8 * obbQuad * obb * b); err != nil {
			return nil, err
		}
		if d.keep, err = e.cuda.Alloc(4 * obb * b); err != nil {
			return nil, err
		}
		if d.nkeep, err = e.cuda.Alloc(4 * b); err != nil {
			return nil, err
		}
		if d.keepHost, err = e.cuda.AllocHost(4*obb*b + 4*b); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// freeDetect releases the post-processing buffers; nil-safe.
func (e *GPUEngine) freeDetect() {
	d := e.det
	if d == nil {
		return
	}
	for _, p := range []gpu.DevicePtr{d.count, d.keys, d.bad, d.pairKeys, d.dets, d.ndet, d.quads, d.keep, d.nkeep} {
		if p != 0 {
			e.cuda.Free(p)
		}
	}
	d.host.Free()
	d.keepHost.Free()
	e.det = nil
}
