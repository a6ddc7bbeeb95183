package infer

import (
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
)

// The GPU engine's steps of DETR-style exports: selection (Where), gathers
// at run-time indices, top-k and grid sampling, all in fp32. Each decides
// as its graph counterpart does (the reference, the lowering machine):
// top-k in topKBefore's order, gathers wrapping negative indices and
// reading 0 out of range, grid sampling as sampleGrid.

const indexSource = kernelPrelude + `
extern "C" __global__ void where_f(unsigned n, const int* meta, const float* c, const float* a, const float* b, float* y) {
	int m[30];
	loadMeta<4>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		long long o[4];
		offsets<4>(i, m, o);
		y[o[3]] = c[o[0]] != 0.0f ? a[o[1]] : b[o[2]];
	}
}

// y[i] = x[i + k·stride], k the index at i (integral floats), negative
// ones wrapped, out of [-dim, dim) (or NaN) reading 0.
extern "C" __global__ void gather_f(unsigned n, const int* meta, int dim, long long stride, const float* x, const float* idx, float* y) {
	int m[24];
	loadMeta<3>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		long long o[3];
		offsets<3>(i, m, o);
		float v = idx[o[1]];
		float r = 0.0f;
		if (v >= (float)-dim && v < (float)dim) {
			int k = (int)v;
			if (k < 0) k += dim;
			r = x[o[0] + (long long)k * stride];
		}
		y[o[2]] = r;
	}
}

// graph.topKBefore: larger first (smaller unless largest), NaN above every
// number, ties by the lower index.
__device__ __forceinline__ bool topk_before(float a, unsigned ia, float b, unsigned ib, int largest) {
	bool an = a != a, bn = b != b;
	if (an || bn) {
		if (an != bn) return an == (largest != 0);
	} else if (a != b) {
		return (a > b) == (largest != 0);
	}
	return ia < ib;
}

// Rows of x [outer, dim, inner]: each element's rank is the number of the
// row's elements before it; the first k ranks write their index to y
// [outer, k, inner]. Blocks of 256 elements of a row (grid x) read the row
// through shared memory 256 at a time; grid y walks the rows.
extern "C" __global__ void topk_f(unsigned rows, unsigned dim, unsigned inner, unsigned k, int largest, const float* x, float* y) {
	__shared__ float tile[256];
	for (unsigned row = blockIdx.y; row < rows; row += gridDim.y) {
		unsigned o = row / inner, in = row - o * inner;
		const float* base = x + (long long)o * dim * inner + in;
		unsigned i = blockIdx.x * 256 + threadIdx.x;
		float v = i < dim ? base[(long long)i * inner] : 0.0f;
		unsigned rank = 0;
		for (unsigned t0 = 0; t0 < dim; t0 += 256) {
			unsigned j = t0 + threadIdx.x;
			tile[threadIdx.x] = j < dim ? base[(long long)j * inner] : 0.0f;
			__syncthreads();
			unsigned cnt = min(256u, dim - t0);
			if (i < dim)
				for (unsigned q = 0; q < cnt; q++) rank += topk_before(tile[q], t0 + q, v, i, largest);
			__syncthreads();
		}
		if (i < dim && rank < k) y[((long long)o * k + rank) * inner + in] = (float)i;
	}
}

// topk_key maps a float to an unsigned key whose order is topk_before's:
// a larger key first, NaN above every number (last when smallest), -0 as 0.
__device__ __forceinline__ unsigned topk_key(float v, int largest) {
	if (v != v) return largest ? 0xffffffffu : 0u;
	unsigned u = v == 0.0f ? 0u : __float_as_uint(v);
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return largest ? u : ~u;
}

#define TOPK_MAX 1024

// topk_select_f is topk_f for long rows and k ≤ TOPK_MAX, a block a row:
// a radix select of the k-th key (four passes of 8 bits over the row),
// then the row's keys above it and, in index order, as many equal to it
// as k leaves, ranked among themselves. y as topk_f's.
extern "C" __global__ void topk_select_f(unsigned rows, unsigned dim, unsigned inner, unsigned k, int largest,
		const float* x, float* y) {
	__shared__ unsigned hist[256], ck[TOPK_MAX], ci[TOPK_MAX], warpEq[16];
	__shared__ unsigned sPrefix, sLeft, sCount, sEqBase;
	const unsigned t = threadIdx.x, lane = t & 31, warp = t >> 5, warps = blockDim.x >> 5;
	for (unsigned row = blockIdx.x; row < rows; row += gridDim.x) {
		unsigned o = row / inner, in = row - o * inner;
		const float* base = x + (long long)o * dim * inner + in;
		unsigned prefix = 0, mask = 0;
		if (t == 0) sLeft = k;
		for (int shift = 24; shift >= 0; shift -= 8) {
			for (unsigned b = t; b < 256; b += blockDim.x) hist[b] = 0;
			__syncthreads();
			for (unsigned i = t; i < dim; i += blockDim.x) {
				unsigned key = topk_key(base[(long long)i * inner], largest);
				if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
			}
			__syncthreads();
			if (t == 0) {
				// The digit of the k-th key: from the top, the first bin
				// that holds what is left of k.
				unsigned left = sLeft, b = 255;
				for (; b > 0 && hist[b] < left; b--) left -= hist[b];
				sPrefix = prefix | (b << shift), sLeft = left;
			}
			__syncthreads();
			prefix = sPrefix, mask |= 255u << shift;
		}
		// prefix is the k-th key; take, in index order, the first take
		// keys equal to it.
		const unsigned take = sLeft;
		if (t == 0) sCount = 0, sEqBase = 0;
		__syncthreads();
		for (unsigned b0 = 0; b0 < dim; b0 += blockDim.x) {
			unsigned i = b0 + t;
			unsigned key = i < dim ? topk_key(base[(long long)i * inner], largest) : 0u;
			bool gt = i < dim && key > prefix, eq = i < dim && key == prefix;
			unsigned bal = __ballot_sync(0xffffffffu, eq);
			if (lane == 0) warpEq[warp] = __popc(bal);
			__syncthreads();
			unsigned before = sEqBase + __popc(bal & ((1u << lane) - 1u));
			for (unsigned w = 0; w < warp; w++) before += warpEq[w];
			if (gt || (eq && before < take)) {
				unsigned at = atomicAdd(&sCount, 1u);
				ck[at] = key, ci[at] = i;
			}
			__syncthreads();
			if (t == 0)
				for (unsigned w = 0; w < warps; w++) sEqBase += warpEq[w];
			__syncthreads();
		}
		for (unsigned a = t; a < k; a += blockDim.x) {
			unsigned ka = ck[a], ia = ci[a], r = 0;
			for (unsigned b = 0; b < k; b++) r += ck[b] > ka || (ck[b] == ka && ci[b] < ia);
			y[((long long)o * k + r) * inner + in] = (float)ia;
		}
		__syncthreads();
	}
}

// graph.gridCoord and sampleGrid. g: N C H W Ho Wo, x strides [4], grid
// strides [4], y strides [4]; mode: graph's Grid* bits.
__device__ __forceinline__ float grid_coord(int mode, float g, int size) {
	float p = (mode & 4) ? (g + 1.0f) / 2.0f * (float)(size - 1) : ((g + 1.0f) * (float)size - 1.0f) / 2.0f;
	if (mode & 2) p = fminf(fmaxf(p, 0.0f), (float)(size - 1));
	return p;
}
extern "C" __global__ void grid_sample_f(unsigned n, const int* g, int mode, const float* x, const float* grid, float* y) {
	const int C = g[1], H = g[2], W = g[3], Ho = g[4], Wo = g[5];
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned wo = i % Wo, r = i / Wo;
		unsigned ho = r % Ho; r /= Ho;
		unsigned c = r % C, b = r / C;
		const float* gp = grid + (long long)b * g[10] + (long long)ho * g[11] + (long long)wo * g[12];
		float px = grid_coord(mode, gp[0], W), py = grid_coord(mode, gp[g[13]], H);
		const float* xp = x + (long long)b * g[6] + (long long)c * g[7];
		float v = 0.0f;
		if (px > -1.0f && py > -1.0f && px < (float)W && py < (float)H) {
			if (mode & 1) {
				int xi = (int)rintf(px), yi = (int)rintf(py);
				if (xi >= 0 && xi < W && yi >= 0 && yi < H) v = xp[(long long)yi * g[8] + (long long)xi * g[9]];
			} else {
				float fx = floorf(px), fy = floorf(py);
				float ax = px - fx, ay = py - fy;
				int x0 = (int)fx, y0 = (int)fy;
				float w[4] = {(1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax};
#pragma unroll
				for (int q = 0; q < 4; q++) {
					int yy = y0 + (q >> 1), xx = x0 + (q & 1);
					if (yy >= 0 && yy < H && xx >= 0 && xx < W) v += w[q] * xp[(long long)yy * g[8] + (long long)xx * g[9]];
				}
			}
		}
		y[(long long)b * g[14] + (long long)c * g[15] + (long long)ho * g[16] + (long long)wo * g[17]] = v;
	}
}
`

// whereStep: a select with three operands, broadcast through strides.
func (e *GPUEngine) whereStep(p *gpuPlan, s graph.Step) error {
	c, a, b := s.In[0], s.In[1], s.In[2]
	shape, st, err := collapse(s.Out.Shape, c.Stride, a.Stride, b.Stride, s.Out.Stride)
	if err != nil {
		return err
	}
	n := int64(graph.Len(s.Out.Shape))
	k, m := e.k.where, p.param(meta6(shape, st...))
	pc, pa, pb, out := e.addr(p, c), e.addr(p, a), e.addr(p, b), e.addr(p, s.Out)
	p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(e.grid(n), block, st, uint32(n), m(), pc, pa, pb, out) })
	return nil
}

// gatherStep: elements at run-time indices along one axis.
func (e *GPUEngine) gatherStep(p *gpuPlan, s graph.Step) error {
	x, idx := s.In[0], s.In[1]
	shape, st, err := collapse(s.Out.Shape, x.Stride, idx.Stride, s.Out.Stride)
	if err != nil {
		return err
	}
	n := int64(graph.Len(s.Out.Shape))
	k, m := e.k.gather, p.param(meta6(shape, st...))
	dim, stride := int32(s.Gather.Dim), s.Gather.Stride
	px, pi, out := e.addr(p, x), e.addr(p, idx), e.addr(p, s.Out)
	p.ops = append(p.ops, func(st gpu.Stream) error {
		return k.Launch(e.grid(n), block, st, uint32(n), m(), dim, stride, px, pi, out)
	})
	return nil
}

// Rows of at least topKSelectDim elements, of which at most topKSelectMax
// (the kernel's TOPK_MAX) are kept, take topk_select_f: topk_f ranks every
// element against the whole row, quadratic in its length (DETR's 8,400
// anchors: 1.9 ms a batch of 64 on an H200).
const (
	topKSelectDim = 1024
	topKSelectMax = 1024
)

// topKStep: the indices of each row's k first elements.
func (e *GPUEngine) topKStep(p *gpuPlan, s graph.Step) error {
	rows, dim, inner := uint32(s.Outer*s.Inner), uint32(s.Dim), uint32(s.Inner)
	kk := uint32(graph.Len(s.Out.Shape)) / rows
	largest := int32(s.Code)
	x, out := e.addr(p, s.In[0]), e.addr(p, s.Out)
	if dim >= topKSelectDim && kk <= topKSelectMax && kk <= dim {
		k, grid := e.k.topKSelect, [3]uint32{min(rows, 65535), 1, 1}
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return k.Launch(grid, [3]uint32{512, 1, 1}, st, rows, dim, inner, kk, largest, x, out)
		})
		return nil
	}
	grid := [3]uint32{(dim + 255) / 256, min(rows, 65535), 1}
	k := e.k.topK
	p.ops = append(p.ops, func(st gpu.Stream) error {
		return k.Launch(grid, block, st, rows, dim, inner, kk, largest, x, out)
	})
	return nil
}

// gridSampleStep: bilinear or nearest sampling at a grid of points.
func (e *GPUEngine) gridSampleStep(p *gpuPlan, s graph.Step) error {
	x, g := s.In[0], s.In[1]
	o := s.Out
	meta := []int32{int32(x.Shape[0]), int32(x.Shape[1]), int32(x.Shape[2]), int32(x.Shape[3]), int32(o.Shape[2]), int32(o.Shape[3])}
	for _, st := range [][]int64{x.Stride, g.Stride, o.Stride} {
		for _, v := range st {
			meta = append(meta, int32(v))
		}
	}
	n := int64(graph.Len(o.Shape))
	k, m, mode := e.k.gridSample, p.param(meta), int32(s.Code)
	px, pg, out := e.addr(p, x), e.addr(p, g), e.addr(p, o)
	p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(e.grid(n), block, st, uint32(n), m(), mode, px, pg, out) })
	return nil
}
