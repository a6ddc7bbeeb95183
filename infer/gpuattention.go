package infer

import (
	"fmt"
	"slices"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
)

// attentionSource is the fused attention kernel (graph.KAttention):
// FlashAttention's online softmax on tensor cores. A block of four warps
// (128 threads, which the kernel assumes) takes 64 queries of one matrix,
// each warp 16; keys and values come in tiles of 64, prefetched into
// registers, through shared memory as fp16; scores, softmax statistics
// and the output accumulate in fp32 registers (mma.sync m16n8k16), so the
// [N, M] scores never reach memory. Operands are fp32 or fp16 in memory,
// read and written through strides; a kernel is compiled for each key and
// value size and element types a program uses (attentionKernel).
const attentionSource = `
typedef unsigned short half_t;
__device__ __forceinline__ float h2f(half_t h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ half_t f2h(float f) { half_t h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ unsigned pack2(float lo, float hi) { return (unsigned)f2h(lo) | ((unsigned)f2h(hi) << 16); }
__device__ __forceinline__ float ldf(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ldf(const half_t* p, long long i) { return h2f(p[i]); }
__device__ __forceinline__ void stf(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void stf(half_t* p, long long i, float v) { p[i] = f2h(v); }
// Eight consecutive elements as fp16, one 16-byte value.
__device__ __forceinline__ uint4 load8(const half_t* p) { return *(const uint4*)p; }
__device__ __forceinline__ uint4 load8(const float* p) {
	float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
	return make_uint4(pack2(a.x, a.y), pack2(a.z, a.w), pack2(b.x, b.y), pack2(b.z, b.w));
}
__device__ __forceinline__ unsigned smem(const void* p) {
	unsigned a;
	asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
	return a;
}
__device__ __forceinline__ void mma16816(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
		: "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

#define AT_Q 64
#define AT_K 64

// g: dims[4] of the batch, outermost first; then six strides for each of
// Q, K, V and O: the four batch dimensions, the row and the column (Q:
// query, channel; K: channel, key; V: channel, key; O: channel, query);
// then N (queries) and M (keys). O = V softmax(scale Q K)^T. With VEC,
// K and V have their channels contiguous and every other stride and
// offset a multiple of 8: a tile is read eight channels at a time, V kept
// key-major in shared memory and read transposed by ldmatrix.
template <int DK, int DV, typename TI, typename TO, bool VEC>
__device__ __forceinline__ void attention_t(const int* g, const TI* q, const TI* k, const TI* v, TO* o, float scale) {
	__shared__ __align__(16) half_t sk[AT_K][DK + 8];
	__shared__ __align__(16) half_t sv[VEC ? AT_K : DV][VEC ? DV + 8 : AT_K + 8];
	const int N = g[28], M = g[29];
	long long bq = 0, bk = 0, bv = 0, bo = 0;
	unsigned r = blockIdx.y;
	for (int d = 3; d >= 0; d--) {
		unsigned qd = r / g[d], idx = r - qd * g[d];
		r = qd;
		bq += (long long)idx * g[4 + d];
		bk += (long long)idx * g[10 + d];
		bv += (long long)idx * g[16 + d];
		bo += (long long)idx * g[22 + d];
	}
	const long long qr = g[8], qc = g[9], kr = g[14], kc = g[15], vr = g[20], vc = g[21], orow = g[26], ocol = g[27];
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tq = lane & 3;
	const int i0 = blockIdx.x * AT_Q + warp * 16;
	const float ninf = __int_as_float(0xff800000);

	// This warp's 16 queries as A fragments: registers h = 0..3 hold rows
	// gr (+8 for odd h) and channels 2tq, 2tq+1 (+8 for h >= 2).
	unsigned qf[DK / 16][4];
#pragma unroll
	for (int c = 0; c < DK / 16; c++) {
#pragma unroll
		for (int h = 0; h < 4; h++) {
			int row = i0 + gr + (h & 1) * 8, col = c * 16 + tq * 2 + (h >> 1) * 8;
			float x0 = 0.0f, x1 = 0.0f;
			if (row < N) {
				const TI* p = q + bq + row * qr + col * qc;
				x0 = ldf(p, 0);
				x1 = ldf(p, qc);
			}
			qf[c][h] = pack2(x0, x1);
		}
	}
	float acc[DV / 8][4];
#pragma unroll
	for (int n = 0; n < DV / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
	float mx[2] = {ninf, ninf}, sum[2] = {0.0f, 0.0f};
	const float sl = scale * 1.4426950408889634f; // exp(x) = exp2(x log2 e)

	// This thread's share of a tile of keys and values (64 keys, 128
	// threads), loaded into registers while the tile before is computed.
	float kreg[VEC ? 1 : DK / 2], vreg[VEC ? 1 : DV / 2];
	uint4 k8[VEC ? DK / 16 : 1], v8[VEC ? DV / 16 : 1];
	auto kat = [&](int i, int& j, int& c) {
		int e = threadIdx.x + i * 128;
		if (kc == 1) { j = e % AT_K; c = e / AT_K; } else { c = e % DK; j = e / DK; }
	};
	auto vat = [&](int i, int& j, int& c) {
		int e = threadIdx.x + i * 128;
		if (vc == 1) { j = e % AT_K; c = e / AT_K; } else { c = e % DV; j = e / DV; }
	};
	auto fetch = [&](int j0) {
		if constexpr (VEC) {
#pragma unroll
			for (int i = 0; i < DK / 16; i++) {
				int e = threadIdx.x + i * 128, j = e / (DK / 8), c = (e % (DK / 8)) * 8;
				k8[i] = j0 + j < M ? load8(k + bk + c + (long long)(j0 + j) * kc) : make_uint4(0, 0, 0, 0);
			}
#pragma unroll
			for (int i = 0; i < DV / 16; i++) {
				int e = threadIdx.x + i * 128, j = e / (DV / 8), c = (e % (DV / 8)) * 8;
				v8[i] = j0 + j < M ? load8(v + bv + c + (long long)(j0 + j) * vc) : make_uint4(0, 0, 0, 0);
			}
		} else {
#pragma unroll
			for (int i = 0; i < DK / 2; i++) {
				int j, c;
				kat(i, j, c);
				kreg[i] = j0 + j < M ? ldf(k, bk + c * kr + (long long)(j0 + j) * kc) : 0.0f;
			}
#pragma unroll
			for (int i = 0; i < DV / 2; i++) {
				int j, c;
				vat(i, j, c);
				vreg[i] = j0 + j < M ? ldf(v, bv + c * vr + (long long)(j0 + j) * vc) : 0.0f;
			}
		}
	};
	fetch(0);
	for (int j0 = 0; j0 < M; j0 += AT_K) {
		__syncthreads();
		if constexpr (VEC) {
#pragma unroll
			for (int i = 0; i < DK / 16; i++) {
				int e = threadIdx.x + i * 128;
				*(uint4*)&sk[e / (DK / 8)][(e % (DK / 8)) * 8] = k8[i];
			}
#pragma unroll
			for (int i = 0; i < DV / 16; i++) {
				int e = threadIdx.x + i * 128;
				*(uint4*)&sv[e / (DV / 8)][(e % (DV / 8)) * 8] = v8[i];
			}
		} else {
#pragma unroll
			for (int i = 0; i < DK / 2; i++) {
				int j, c;
				kat(i, j, c);
				sk[j][c] = f2h(kreg[i]);
			}
#pragma unroll
			for (int i = 0; i < DV / 2; i++) {
				int j, c;
				vat(i, j, c);
				sv[c][j] = f2h(vreg[i]);
			}
		}
		__syncthreads();
		if (j0 + AT_K < M) fetch(j0 + AT_K);

		// Scores of 16 queries × 64 keys: accumulator h holds row gr (+8
		// for h >= 2), key nb*8 + 2tq + (h & 1).
		float s[AT_K / 8][4];
#pragma unroll
		for (int nb = 0; nb < AT_K / 8; nb++) {
			s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
			for (int c = 0; c < DK / 16; c++) {
				unsigned b0 = *(const unsigned*)&sk[nb * 8 + gr][c * 16 + tq * 2];
				unsigned b1 = *(const unsigned*)&sk[nb * 8 + gr][c * 16 + tq * 2 + 8];
				mma16816(s[nb], qf[c][0], qf[c][1], qf[c][2], qf[c][3], b0, b1);
			}
		}
		float tmax[2] = {ninf, ninf};
#pragma unroll
		for (int nb = 0; nb < AT_K / 8; nb++) {
#pragma unroll
			for (int h = 0; h < 4; h++) {
				float x = j0 + nb * 8 + tq * 2 + (h & 1) < M ? s[nb][h] * sl : ninf;
				s[nb][h] = x;
				tmax[h >> 1] = fmaxf(tmax[h >> 1], x);
			}
		}
		float alpha[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
		for (int i = 0; i < 2; i++) {
			tmax[i] = fmaxf(tmax[i], __shfl_xor_sync(0xffffffff, tmax[i], 1));
			tmax[i] = fmaxf(tmax[i], __shfl_xor_sync(0xffffffff, tmax[i], 2));
			float m = fmaxf(mx[i], tmax[i]);
			alpha[i] = exp2f(mx[i] - m);
			mx[i] = m;
		}
#pragma unroll
		for (int nb = 0; nb < AT_K / 8; nb++) {
#pragma unroll
			for (int h = 0; h < 4; h++) {
				float p = exp2f(s[nb][h] - mx[h >> 1]);
				s[nb][h] = p;
				rs[h >> 1] += p;
			}
		}
		sum[0] = sum[0] * alpha[0] + rs[0];
		sum[1] = sum[1] * alpha[1] + rs[1];
#pragma unroll
		for (int n = 0; n < DV / 8; n++) {
			acc[n][0] *= alpha[0];
			acc[n][1] *= alpha[0];
			acc[n][2] *= alpha[1];
			acc[n][3] *= alpha[1];
		}
		// O += P V^T: the score accumulators of two key blocks are the A
		// fragment of 16 keys.
#pragma unroll
		for (int kk = 0; kk < AT_K / 16; kk++) {
			unsigned a0 = pack2(s[2 * kk][0], s[2 * kk][1]), a1 = pack2(s[2 * kk][2], s[2 * kk][3]);
			unsigned a2 = pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]), a3 = pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
			for (int n = 0; n < DV / 8; n++) {
				unsigned b0, b1;
				if constexpr (VEC) {
					// Rows: keys kk*16 + 0..15 (lanes 0-15), channels n*8..+7.
					unsigned a = smem(&sv[kk * 16 + (lane & 15)][n * 8]);
					asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];" : "=r"(b0), "=r"(b1) : "r"(a));
				} else {
					b0 = *(const unsigned*)&sv[n * 8 + gr][kk * 16 + tq * 2];
					b1 = *(const unsigned*)&sv[n * 8 + gr][kk * 16 + tq * 2 + 8];
				}
				mma16816(acc[n], a0, a1, a2, a3, b0, b1);
			}
		}
	}
#pragma unroll
	for (int i = 0; i < 2; i++) {
		sum[i] += __shfl_xor_sync(0xffffffff, sum[i], 1);
		sum[i] += __shfl_xor_sync(0xffffffff, sum[i], 2);
	}
#pragma unroll
	for (int n = 0; n < DV / 8; n++) {
#pragma unroll
		for (int h = 0; h < 4; h++) {
			int row = i0 + gr + (h >> 1) * 8, c = n * 8 + tq * 2 + (h & 1);
			if (row < N) stf(o, bo + c * orow + row * ocol, acc[n][h] / sum[h >> 1]);
		}
	}
}

`

// attentionKernel returns the attention kernel for keys of dk, values of
// dv, inputs of element type in and output of out, compiled on first use
// (and cached on disk by the CUDA layer).
func (e *GPUEngine) attentionKernel(dk, dv int, in, out graph.Elem, vec bool) (*gpu.Kernel, error) {
	ctype := map[graph.Elem]string{graph.F32: "float", graph.F16: "half_t"}
	letter := map[graph.Elem]string{graph.F32: "f", graph.F16: "h"}
	name := fmt.Sprintf("attention_%d_%d_%s%s", dk, dv, letter[in], letter[out])
	if vec {
		name += "_v8"
	}
	code := attentionSource + fmt.Sprintf("extern \"C\" __global__ void %s(const int* g, const %s* q, const %s* k, const %s* v, %s* o, float scale) "+
		"{ attention_t<%d, %d, %s, %s, %v>(g, q, k, v, o, scale); }\n", name, ctype[in], ctype[in], ctype[in], ctype[out], dk, dv, ctype[in], ctype[out], vec)
	return e.cuda.Kernel(code, name, e.opts.CacheDir)
}

// attentionVec reports whether the K and V views allow the kernel's
// eight-channel loads: channels contiguous, every other stride and the
// offset a multiple of 8.
func attentionVec(views ...graph.View) bool {
	for _, w := range views {
		r := len(w.Shape)
		if w.Stride[r-2] != 1 || w.Off%8 != 0 {
			return false
		}
		for d, st := range w.Stride {
			if d != r-2 && st%8 != 0 {
				return false
			}
		}
	}
	return true
}

// attentionStep lowers a KAttention step: one block of 128 threads per 64
// queries of each matrix of the batch.
func (e *GPUEngine) attentionStep(p *gpuPlan, s graph.Step) error {
	q, k, v, o := s.In[0], s.In[1], s.In[2], s.Out
	r := len(q.Shape)
	n, m, dk, dv := q.Shape[r-2], k.Shape[r-1], q.Shape[r-1], v.Shape[r-2]
	batch := q.Shape[:r-2]
	if !slices.Contains(graph.AttentionSizes[:], dk) || !slices.Contains(graph.AttentionSizes[:], dv) || r > 6 || graph.Len(batch) > 65535 ||
		k.Elem != q.Elem || v.Elem != q.Elem {
		return fmt.Errorf("attention with keys of %d, values of %d, batch %v (the kernel takes %v, rank up to 6, 65,535 matrices, one input type): %w",
			dk, dv, batch, graph.AttentionSizes, graph.ErrUnsupported)
	}
	kern, err := e.attentionKernel(dk, dv, q.Elem, o.Elem, attentionVec(k, v))
	if err != nil {
		return err
	}
	g := make([]int32, 30)
	for i := 0; i < 4; i++ {
		g[i] = 1
	}
	for j, w := range []graph.View{q, k, v, o} {
		for i := range batch {
			g[4+6*j+4-len(batch)+i] = int32(w.Stride[i])
		}
		g[4+6*j+4], g[4+6*j+5] = int32(w.Stride[r-2]), int32(w.Stride[r-1])
	}
	for i, d := range batch {
		g[4-len(batch)+i] = int32(d)
	}
	g[28], g[29] = int32(n), int32(m)
	grid := [3]uint32{uint32((n + 63) / 64), uint32(graph.Len(batch)), 1}
	pq, pk, pv, po := e.addr(p, q), e.addr(p, k), e.addr(p, v), e.addr(p, o)
	meta, scale := p.param(g), s.Alpha
	p.ops = append(p.ops, func(st gpu.Stream) error {
		return kern.Launch(grid, [3]uint32{128, 1, 1}, st, meta(), pq, pk, pv, po, scale)
	})
	return nil
}
