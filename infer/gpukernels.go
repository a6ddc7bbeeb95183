package infer

import (
	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
)

// The CUDA C of the GPU engine's kernels (everything but the
// convolutions, which are cuDNN's), in two sources that NVRTC compiles
// side by side on a cold start. fp16 values are stored as raw 16-bit
// words and converted with PTX, so no CUDA header is needed; all
// arithmetic is fp32. Index arithmetic is 32-bit: the engine refuses
// tensors of 2^31 elements or more.

// kernelPrelude is what both sources share: fp16 conversion, loads and
// stores of either element type, activations and strided indexing.
const kernelPrelude = `
typedef unsigned short half_t;
__device__ __forceinline__ float h2f(half_t h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ half_t f2h(float f) { half_t h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }

template <typename T> __device__ __forceinline__ float ld(const T* p, long long i);
template <> __device__ __forceinline__ float ld<float>(const float* p, long long i) { return p[i]; }
template <> __device__ __forceinline__ float ld<half_t>(const half_t* p, long long i) { return h2f(p[i]); }
template <typename T> __device__ __forceinline__ void st(T* p, long long i, float v);
template <> __device__ __forceinline__ void st<float>(float* p, long long i, float v) { p[i] = v; }
template <> __device__ __forceinline__ void st<half_t>(half_t* p, long long i, float v) { p[i] = f2h(v); }

__device__ __forceinline__ float activate(float v, int act, float alpha) {
	switch (act) {
	case 1: return fmaxf(v, 0.0f);                     // ReLU
	case 2: return v / (1.0f + __expf(-v));             // SiLU
	case 3: return v < 0.0f ? v * alpha : v;            // LeakyReLU
	case 4: return 1.0f / (1.0f + __expf(-v));          // Sigmoid
	// graph.UnaryExp and the others, in fp32 with the full-precision
	// functions (not the fast intrinsics): boxes are decoded with them.
	case 16: return expf(v);
	case 17: return logf(v);
	case 18: return sqrtf(v);
	case 19: return tanhf(v);
	case 20: return erff(v);
	case 21: return cosf(v);
	case 22: return sinf(v);
	case 23: return -v;
	case 24: return fabsf(v);
	case 25: return 1.0f / v;
	case 26: return log1pf(expf(v));
	case 27: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
	case 28: return v * fminf(fmaxf(v / 6.0f + 0.5f, 0.0f), 1.0f);
	case 29: return v * tanhf(log1pf(expf(v)));
	case 30: return v == 0.0f ? 1.0f : 0.0f;           // graph.UnaryNot
	case 31: return truncf(v);                         // UnaryTrunc
	case 32: return v != 0.0f ? 1.0f : 0.0f;           // UnaryBool
	}
	return v;
}

// mm_epi is a product's epilogue (graph.MatMulStep) for y[i], column n:
// the bias row, act (acts' low byte), the residual, then post (above).
__device__ __forceinline__ float mm_epi(float v, const float* bias, const float* res, long long i, int n, int acts, float alpha) {
	if (bias) v += bias[n];
	v = activate(v, acts & 255, alpha);
	if (res) v += res[i];
	return activate(v, acts >> 8, alpha);
}

// mm_batch gives a product's operand offsets for batch entry r: g holds
// the batch's dims[4], then a's strides[4] and b's strides[4].
__device__ __forceinline__ void mm_batch(const int* g, unsigned r, long long* oa, long long* ob) {
	*oa = 0, *ob = 0;
	for (int d = 3; d >= 0; d--) {
		unsigned q = r / g[d], idx = r - q * g[d];
		r = q;
		*oa += (long long)idx * g[4 + d];
		*ob += (long long)idx * g[8 + d];
	}
}

// Up to 6 dimensions; meta holds dims[6], then one stride set of 6 per
// operand. Callers copy meta into registers first (loadMeta): read from
// global memory inside the loop, every element pays for it again.
template <int SETS>
__device__ __forceinline__ void loadMeta(const int* meta, int* m) {
#pragma unroll
	for (int k = 0; k < 6 + 6 * SETS; k++) m[k] = meta[k];
}
template <int SETS>
__device__ __forceinline__ void offsets(unsigned i, const int* m, long long* off) {
#pragma unroll
	for (int s = 0; s < SETS; s++) off[s] = 0;
#pragma unroll
	for (int d = 5; d >= 0; d--) {
		unsigned n = (unsigned)m[d];
		if (n == 1) continue;
		unsigned q = i / n, r = i - q * n;
		i = q;
#pragma unroll
		for (int s = 0; s < SETS; s++) off[s] += (long long)r * m[6 + 6 * s + d];
	}
}
`

// stridedSource holds the kernels that walk tensors through strides:
// copies, elementwise steps.
const stridedSource = kernelPrelude + `
template <typename S, typename D>
__device__ void copy_t(unsigned n, const int* meta, const S* src, D* dst) {
	int m[18];
	loadMeta<2>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		long long o[2];
		offsets<2>(i, m, o);
		st<D>(dst, o[1], ld<S>(src, o[0]));
	}
}
extern "C" __global__ void copy_ff(unsigned n, const int* m, const float* s, float* d) { copy_t<float, float>(n, m, s, d); }
extern "C" __global__ void copy_hh(unsigned n, const int* m, const half_t* s, half_t* d) { copy_t<half_t, half_t>(n, m, s, d); }
extern "C" __global__ void copy_hf(unsigned n, const int* m, const half_t* s, float* d) { copy_t<half_t, float>(n, m, s, d); }
extern "C" __global__ void copy_fh(unsigned n, const int* m, const float* s, half_t* d) { copy_t<float, half_t>(n, m, s, d); }
// 16-byte elements: 8 halves or 4 floats moved at once.
extern "C" __global__ void copy_v16(unsigned n, const int* meta, const uint4* src, uint4* dst) {
	int m[18];
	loadMeta<2>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		long long o[2];
		offsets<2>(i, m, o);
		dst[o[1]] = src[o[0]];
	}
}

// binop is a binary step's operation (graph's Op codes, in their order).
__device__ __forceinline__ float binop(float x, float z, int op) {
	switch (op) {
	case 0: return x + z;
	case 1: return x - z;
	case 2: return x * z;
	case 3: return x / z;
	case 4: return powf(x, z);
	// graph.OpMax and the others of binaryValue, in its order.
	case 5: return (x >= z || x != x) ? x : z;
	case 6: return (x <= z || x != x) ? x : z;
	case 7: return x == z;
	case 8: return x < z;
	case 9: return x > z;
	case 10: return x <= z;
	case 11: return x >= z;
	case 12: return x != 0.0f && z != 0.0f;
	case 13: return x != 0.0f || z != 0.0f;
	case 14: return (x != 0.0f) != (z != 0.0f);
	case 15: return truncf(x / z);
	}
	return __int_as_float(0x7fc00000);
}
template <typename T>
__device__ void binary_t(unsigned n, const int* meta, const T* a, const T* b, T* y, int op) {
	int m[24];
	loadMeta<3>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		long long o[3];
		offsets<3>(i, m, o);
		st<T>(y, o[2], binop(ld<T>(a, o[0]), ld<T>(b, o[1]), op));
	}
}
extern "C" __global__ void binary_f(unsigned n, const int* m, const float* a, const float* b, float* y, int op) { binary_t<float>(n, m, a, b, y, op); }
extern "C" __global__ void binary_h(unsigned n, const int* m, const half_t* a, const half_t* b, half_t* y, int op) { binary_t<half_t>(n, m, a, b, y, op); }
// binary4_f is binary_f four elements a thread, for rows whose length is
// a multiple of 4, contiguous in y: each operand contiguous along them
// (vec bit 0 for a, 1 for b; its rows 16-byte aligned) or the same number
// along the row (stride 0).
extern "C" __global__ void binary4_f(unsigned n4, const int* meta, const float* a, const float* b, float* y, int op, int vec) {
	int m[24];
	loadMeta<3>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += gridDim.x * blockDim.x) {
		long long o[3];
		offsets<3>(4 * i, m, o);
		float4 x = (vec & 1) ? *(const float4*)(a + o[0]) : make_float4(a[o[0]], a[o[0]], a[o[0]], a[o[0]]);
		float4 z = (vec & 2) ? *(const float4*)(b + o[1]) : make_float4(b[o[1]], b[o[1]], b[o[1]], b[o[1]]);
		*(float4*)(y + o[2]) = make_float4(binop(x.x, z.x, op), binop(x.y, z.y, op), binop(x.z, z.z, op), binop(x.w, z.w, op));
	}
}

template <typename T>
__device__ void unary_t(unsigned n, const T* x, T* y, int act, float alpha) {
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
		st<T>(y, i, activate(ld<T>(x, i), act, alpha));
}
extern "C" __global__ void unary_f(unsigned n, const float* x, float* y, int act, float alpha) { unary_t<float>(n, x, y, act, alpha); }
extern "C" __global__ void unary_h(unsigned n, const half_t* x, half_t* y, int act, float alpha) { unary_t<half_t>(n, x, y, act, alpha); }
// The same through strides (meta as for copies): a tensor read inside a
// Split's input or written inside a Concat's output.
template <typename T>
__device__ void unary_st(unsigned n, const int* meta, const T* x, T* y, int act, float alpha) {
	int m[18];
	loadMeta<2>(meta, m);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		long long o[2];
		offsets<2>(i, m, o);
		st<T>(y, o[1], activate(ld<T>(x, o[0]), act, alpha));
	}
}
extern "C" __global__ void unary_sf(unsigned n, const int* m, const float* x, float* y, int act, float alpha) { unary_st<float>(n, m, x, y, act, alpha); }
extern "C" __global__ void unary_sh(unsigned n, const int* m, const half_t* x, half_t* y, int act, float alpha) { unary_st<half_t>(n, m, x, y, act, alpha); }
`

// layoutSource holds the kernels with a layout of their own: transposes,
// the network input, convolution epilogues, softmax, reductions, pooling,
// resizing, matrix products.
const layoutSource = kernelPrelude + `
// A batched transpose through shared memory, both sides coalesced:
// y[b, p, q] = x[b, p, q] where x is contiguous along p and y along q.
// g: P Q xB xQ yB yP. Blocks of 32×8 threads, a 32×32 tile each.
template <typename S, typename D>
__device__ void transpose_t(const int* g, const S* x, D* y) {
	__shared__ float tile[32][33];
	int P = g[0], Q = g[1];
	long long b = blockIdx.z;
	int p0 = blockIdx.y * 32, q0 = blockIdx.x * 32;
	for (int j = threadIdx.y; j < 32; j += 8) {
		int p = p0 + threadIdx.x, q = q0 + j;
		if (p < P && q < Q) tile[j][threadIdx.x] = ld<S>(x, b * g[2] + p + (long long)q * g[3]);
	}
	__syncthreads();
	for (int j = threadIdx.y; j < 32; j += 8) {
		int p = p0 + j, q = q0 + threadIdx.x;
		if (p < P && q < Q) st<D>(y, b * g[4] + (long long)p * g[5] + q, tile[threadIdx.x][j]);
	}
}
extern "C" __global__ void transpose_ff(const int* g, const float* x, float* y) { transpose_t<float, float>(g, x, y); }
extern "C" __global__ void transpose_hh(const int* g, const half_t* x, half_t* y) { transpose_t<half_t, half_t>(g, x, y); }
extern "C" __global__ void transpose_hf(const int* g, const half_t* x, float* y) { transpose_t<half_t, float>(g, x, y); }
extern "C" __global__ void transpose_fh(const int* g, const float* x, half_t* y) { transpose_t<float, half_t>(g, x, y); }

// The network input, planar fp32 [n, c, hw] to NHWC fp16 with 8 channels
// (c ≤ 8, the rest zero): one pixel per thread, one 16-byte store.
extern "C" __global__ void input_nhwc8(unsigned pixels, unsigned hw, int c, const float* x, uint4* y) {
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += gridDim.x * blockDim.x) {
		unsigned b = i / hw, p = i - b * hw;
		const float* src = x + (long long)b * c * hw + p;
		unsigned w[4] = {0, 0, 0, 0};
		for (int k = 0; k < c; k++) w[k >> 1] |= (unsigned)f2h(src[(long long)k * hw]) << (16 * (k & 1));
		y[i] = make_uint4(w[0], w[1], w[2], w[3]);
	}
}

// The convolution's epilogue over its NHWC output y (m pixels of k
// channels, ypix elements apart: k when packed, more inside a Concat):
// y = post(act(src + bias) + residual), where src is what cuDNN wrote (y
// itself, or a packed tensor, its pixels spix apart) and the residual's
// pixels are rpix apart; acts holds act in its low byte, post above.
// Two channels per thread.
extern "C" __global__ void epilogue(unsigned pairs, int k, int ypix, half_t* y, const half_t* src, int spix, const float* bias, const half_t* res, int rpix, int acts, float alpha) {
	const int act = acts & 255, post = acts >> 8;
	for (unsigned p = blockIdx.x * blockDim.x + threadIdx.x; p < pairs; p += gridDim.x * blockDim.x) {
		unsigned i = 2 * p;
		unsigned c = i % (unsigned)k, px = i / (unsigned)k;
		half_t* yp = y + (long long)px * ypix + c;
		unsigned v = *(const unsigned*)(src + (long long)px * spix + c);
		float a = h2f((half_t)(v & 0xffff)) + bias[c];
		float b = h2f((half_t)(v >> 16)) + bias[c + 1];
		a = activate(a, act, alpha);
		b = activate(b, act, alpha);
		if (res) {
			unsigned r = *(const unsigned*)(res + (long long)px * rpix + c);
			a = activate(a + h2f((half_t)(r & 0xffff)), post, alpha);
			b = activate(b + h2f((half_t)(r >> 16)), post, alpha);
		}
		*(unsigned*)yp = (unsigned)f2h(a) | ((unsigned)f2h(b) << 16);
	}
}
// The same, eight channels (16 bytes) per thread, for k, ypix and rpix
// multiples of 8.
extern "C" __global__ void epilogue8(unsigned groups, int k, int ypix, half_t* y, const half_t* src, int spix, const float* bias, const half_t* res, int rpix, int acts, float alpha) {
	const int act = acts & 255, post = acts >> 8;
	for (unsigned g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
		unsigned c = (8 * g) % (unsigned)k, px = (8 * g) / (unsigned)k;
		uint4* yp = (uint4*)(y + (long long)px * ypix + c);
		uint4 v = *(const uint4*)(src + (long long)px * spix + c);
		uint4 r = make_uint4(0, 0, 0, 0);
		if (res) r = *(const uint4*)(res + (long long)px * rpix + c);
		unsigned* pv = (unsigned*)&v;
		const unsigned* pr = (const unsigned*)&r;
		const float4 b0 = *(const float4*)(bias + c), b1 = *(const float4*)(bias + c + 4);
		float bb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
		for (int j = 0; j < 4; j++) {
			float a = activate(h2f((half_t)(pv[j] & 0xffff)) + bb[2 * j], act, alpha);
			float b = activate(h2f((half_t)(pv[j] >> 16)) + bb[2 * j + 1], act, alpha);
			if (res) {
				a = activate(a + h2f((half_t)(pr[j] & 0xffff)), post, alpha);
				b = activate(b + h2f((half_t)(pr[j] >> 16)), post, alpha);
			}
			pv[j] = (unsigned)f2h(a) | ((unsigned)f2h(b) << 16);
		}
		*yp = v;
	}
}
// The same, eight channels per thread, with a DepthToSpace of block b
// (DCR order): src is the convolution's packed output, m pixels of k
// channels over rows of ow pixels; channel (i*b+j)*q + c of pixel (r, x),
// q = k/(b*b) a multiple of 8, goes to channel c of pixel (r*b+i, x*b+j)
// of y, packed with q channels. No residual.
extern "C" __global__ void epilogue_d2s(unsigned groups, int k, int b, int ow, half_t* y, const half_t* src, const float* bias, int act, float alpha) {
	const unsigned q = (unsigned)(k / (b * b));
	for (unsigned g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
		unsigned c = (8 * g) % (unsigned)k, px = (8 * g) / (unsigned)k;
		unsigned blk = c / q, o = c - blk * q, i = blk / (unsigned)b, j = blk - i * (unsigned)b;
		unsigned x = px % (unsigned)ow, r = px / (unsigned)ow;
		long long to = ((long long)(r * b + i) * (ow * b) + x * b + j) * q + o;
		uint4 v = *(const uint4*)(src + (long long)px * k + c);
		unsigned* pv = (unsigned*)&v;
		const float4 b0 = *(const float4*)(bias + c), b1 = *(const float4*)(bias + c + 4);
		float bb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
		for (int t = 0; t < 4; t++) {
			float a = activate(h2f((half_t)(pv[t] & 0xffff)) + bb[2 * t], act, alpha);
			float e = activate(h2f((half_t)(pv[t] >> 16)) + bb[2 * t + 1], act, alpha);
			pv[t] = (unsigned)f2h(a) | ((unsigned)f2h(e) << 16);
		}
		*(uint4*)(y + to) = v;
	}
}
// The same, one channel per thread, for odd k.
extern "C" __global__ void epilogue1(unsigned n, int k, int ypix, half_t* y, const half_t* src, int spix, const float* bias, const half_t* res, int rpix, int acts, float alpha) {
	const int act = acts & 255, post = acts >> 8;
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned c = i % (unsigned)k, px = i / (unsigned)k;
		half_t* yp = y + (long long)px * ypix + c;
		float a = activate(h2f(src[(long long)px * spix + c]) + bias[c], act, alpha);
		if (res) a = activate(a + h2f(res[(long long)px * rpix + c]), post, alpha);
		*yp = f2h(a);
	}
}

extern "C" __global__ void softmax_f(unsigned outer, unsigned dim, unsigned inner, const float* x, float* y) {
	unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
	if (t >= outer * inner) return;
	unsigned o = t / inner, k = t - o * inner;
	long long base = (long long)o * dim * inner + k;
	float m = __int_as_float(0xff800000);
	for (unsigned d = 0; d < dim; d++) m = fmaxf(m, x[base + (long long)d * inner]);
	float s = 0.0f;
	for (unsigned d = 0; d < dim; d++) s += __expf(x[base + (long long)d * inner] - m);
	float r = 1.0f / s;
	for (unsigned d = 0; d < dim; d++) y[base + (long long)d * inner] = __expf(x[base + (long long)d * inner] - m) * r;
}

// softmax_rows_f: softmax_f for inner 1 (attention's rows of dim
// contiguous floats), one warp a row, so that the warp's reads coalesce.
extern "C" __global__ void softmax_rows_f(unsigned rows, unsigned dim, const float* x, float* y) {
	unsigned row = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
	if (row >= rows) return; // the whole warp
	const float* r = x + (long long)row * dim;
	float* o = y + (long long)row * dim;
	float m = __int_as_float(0xff800000);
	for (unsigned d = lane; d < dim; d += 32) m = fmaxf(m, r[d]);
	for (int s = 16; s > 0; s >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, s));
	float sum = 0.0f;
	for (unsigned d = lane; d < dim; d += 32) sum += __expf(r[d] - m);
	for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
	float inv = 1.0f / sum;
	for (unsigned d = lane; d < dim; d += 32) o[d] = __expf(r[d] - m) * inv;
}

// layernorm_rows_f: graph.KLayerNorm, one warp a row of dim contiguous
// floats: the mean, then the variance of the centred values (two passes,
// as the definition), then each value normalised, scaled and shifted
// (bias may be null).
extern "C" __global__ void layernorm_rows_f(unsigned rows, unsigned dim, const float* x, const float* scale, const float* bias, float* y, float eps) {
	unsigned row = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
	if (row >= rows) return; // the whole warp
	const float* r = x + (long long)row * dim;
	float* o = y + (long long)row * dim;
	float sum = 0.0f;
	for (unsigned d = lane; d < dim; d += 32) sum += r[d];
	for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
	const float mean = sum / (float)dim;
	float sq = 0.0f;
	for (unsigned d = lane; d < dim; d += 32) { float c = r[d] - mean; sq += c * c; }
	for (int s = 16; s > 0; s >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, s);
	const float inv = 1.0f / sqrtf(sq / (float)dim + eps);
	for (unsigned d = lane; d < dim; d += 32) {
		float v = (r[d] - mean) * inv * scale[d];
		o[d] = bias ? v + bias[d] : v;
	}
}

// mode: graph.ReduceSum 0, ReduceMean 1, ReduceMax 2, ReduceMin 3; the
// arg reductions 4 to 7 (ReduceArgMax, ReduceArgMaxLast, ReduceArgMin,
// ReduceArgMinLast) write the index, deciding as graph's argBetter.
extern "C" __global__ void reduce_f(unsigned outer, unsigned dim, unsigned inner, const float* x, float* y, int mode) {
	unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
	if (t >= outer * inner) return;
	unsigned o = t / inner, k = t - o * inner;
	long long base = (long long)o * dim * inner + k;
	if (mode >= 4) {
		float best = x[base];
		unsigned at = 0;
		for (unsigned d = 1; d < dim; d++) {
			float v = x[base + (long long)d * inner];
			bool take = best != best ? false : v != v ? true
				: mode == 4 ? v > best : mode == 5 ? v >= best : mode == 6 ? v < best : v <= best;
			if (take) { best = v; at = d; }
		}
		y[t] = (float)at;
		return;
	}
	float s = mode == 2 ? __int_as_float(0xff800000) : mode == 3 ? __int_as_float(0x7f800000) : 0.0f;
	for (unsigned d = 0; d < dim; d++) {
		float v = x[base + (long long)d * inner];
		s = mode == 2 ? fmaxf(s, v) : mode == 3 ? fminf(s, v) : s + v;
	}
	y[t] = mode == 1 ? s / dim : s;
}

// NHWC fp16 pooling; g: N C H W OH OW inN inH inW outN outH outW kh kw sh sw dh dw pt pl mode pb pr
// (mode 0 maximum, 1 average of the taps inside the input, 2 average over the taps inside the
// padded input: a ceil_mode window's overhang past the end padding does not count).
extern "C" __global__ void maxpool_h(const int* g, const half_t* x, half_t* y) {
	unsigned n = (unsigned)(g[0] * g[1] * g[4] * g[5]);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned c = i % g[1], r = i / g[1];
		unsigned ox = r % g[5]; r /= g[5];
		unsigned oy = r % g[4], b = r / g[4];
		float m = __int_as_float(0xff800000), sum = 0.0f;
		int taps = 0, padded = 0;
		for (int ky = 0; ky < g[12]; ky++) {
			int iy = (int)oy * g[14] - g[18] + ky * g[16];
			for (int kx = 0; kx < g[13]; kx++) {
				int ix = (int)ox * g[15] - g[19] + kx * g[17];
				if (iy < g[2] + g[21] && ix < g[3] + g[22]) padded++;
				if (iy < 0 || iy >= g[2] || ix < 0 || ix >= g[3]) continue;
				float v = h2f(x[(long long)b * g[6] + (long long)iy * g[7] + (long long)ix * g[8] + c]);
				m = fmaxf(m, v);
				sum += v;
				taps++;
			}
		}
		if (g[20]) m = sum / (float)max(g[20] == 2 ? padded : taps, 1);
		y[(long long)b * g[9] + (long long)oy * g[10] + (long long)ox * g[11] + c] = f2h(m);
	}
}

// The same, eight channels (16 bytes) per thread, for C, strides and
// offsets multiples of 8 (strides in g are still in halves).
extern "C" __global__ void maxpool_h8(const int* g, const uint4* x, uint4* y) {
	const int C8 = g[1] >> 3, H = g[2], W = g[3], OH = g[4], OW = g[5];
	const long long xn = g[6] >> 3, xh = g[7] >> 3, xw = g[8] >> 3, yn = g[9] >> 3, yh = g[10] >> 3, yw = g[11] >> 3;
	const int kh = g[12], kw = g[13], sh = g[14], sw = g[15], dh = g[16], dw = g[17], pt = g[18], pl = g[19], mode = g[20];
	const int pb = g[21], pr = g[22];
	const unsigned n = (unsigned)(g[0] * C8 * OH * OW);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned c = i % C8, r = i / C8;
		unsigned ox = r % OW; r /= OW;
		unsigned oy = r % OH, b = r / OH;
		float m[8], sum[8];
		int taps = 0, padded = 0;
#pragma unroll
		for (int j = 0; j < 8; j++) { m[j] = __int_as_float(0xff800000); sum[j] = 0.0f; }
		for (int ky = 0; ky < kh; ky++) {
			int iy = (int)oy * sh - pt + ky * dh;
			for (int kx = 0; kx < kw; kx++) {
				int ix = (int)ox * sw - pl + kx * dw;
				if (iy < H + pb && ix < W + pr) padded++;
				if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
				uint4 v = x[b * xn + iy * xh + ix * xw + c];
				const unsigned* pv = (const unsigned*)&v;
				taps++;
#pragma unroll
				for (int j = 0; j < 4; j++) {
					float lo = h2f((half_t)(pv[j] & 0xffff)), hi = h2f((half_t)(pv[j] >> 16));
					m[2 * j] = fmaxf(m[2 * j], lo);
					m[2 * j + 1] = fmaxf(m[2 * j + 1], hi);
					sum[2 * j] += lo;
					sum[2 * j + 1] += hi;
				}
			}
		}
		if (mode) {
			float d = (float)max(mode == 2 ? padded : taps, 1);
#pragma unroll
			for (int j = 0; j < 8; j++) m[j] = sum[j] / d;
		}
		uint4 o;
		unsigned* po = (unsigned*)&o;
#pragma unroll
		for (int j = 0; j < 4; j++) po[j] = (unsigned)f2h(m[2 * j]) | ((unsigned)f2h(m[2 * j + 1]) << 16);
		y[b * yn + oy * yh + ox * yw + c] = o;
	}
}

// NHWC fp16 resize through a table of (i0, i1, weight) per output row, then column.
// g: N C H W OH OW inN inH inW outN outH outW.
extern "C" __global__ void resize_h(const int* g, const float* tab, const half_t* x, half_t* y) {
	unsigned n = (unsigned)(g[0] * g[1] * g[4] * g[5]);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned c = i % g[1], r = i / g[1];
		unsigned ox = r % g[5]; r /= g[5];
		unsigned oy = r % g[4], b = r / g[4];
		const float* ty = tab + 3 * oy;
		const float* tx = tab + 3 * (g[4] + ox);
		int y0 = (int)ty[0], y1 = (int)ty[1], x0 = (int)tx[0], x1 = (int)tx[1];
		float ay = ty[2], ax = tx[2];
		const half_t* p = x + (long long)b * g[6] + c;
		float v00 = h2f(p[(long long)y0 * g[7] + (long long)x0 * g[8]]);
		float v = v00;
		if (ay != 0.0f || ax != 0.0f) {
			float v01 = h2f(p[(long long)y0 * g[7] + (long long)x1 * g[8]]);
			float v10 = h2f(p[(long long)y1 * g[7] + (long long)x0 * g[8]]);
			float v11 = h2f(p[(long long)y1 * g[7] + (long long)x1 * g[8]]);
			v = (1 - ay) * ((1 - ax) * v00 + ax * v01) + ay * ((1 - ax) * v10 + ax * v11);
		}
		y[(long long)b * g[9] + (long long)oy * g[10] + (long long)ox * g[11] + c] = f2h(v);
	}
}

// The same, eight channels (16 bytes) per thread, for C, strides and
// offsets multiples of 8 (strides in g are still in halves).
extern "C" __global__ void resize_h8(const int* g, const float* tab, const uint4* x, uint4* y) {
	const int C8 = g[1] >> 3, OH = g[4], OW = g[5];
	const long long xn = g[6] >> 3, xh = g[7] >> 3, xw = g[8] >> 3, yn = g[9] >> 3, yh = g[10] >> 3, yw = g[11] >> 3;
	const unsigned n = (unsigned)(g[0] * C8 * OH * OW);
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned c = i % C8, r = i / C8;
		unsigned ox = r % OW; r /= OW;
		unsigned oy = r % OH, b = r / OH;
		const float* ty = tab + 3 * oy;
		const float* tx = tab + 3 * (OH + ox);
		int y0 = (int)ty[0], y1 = (int)ty[1], x0 = (int)tx[0], x1 = (int)tx[1];
		float ay = ty[2], ax = tx[2];
		const uint4* p = x + b * xn + c;
		uint4 o = p[y0 * xh + x0 * xw];
		if (ay != 0.0f || ax != 0.0f) {
			uint4 v01 = p[y0 * xh + x1 * xw], v10 = p[y1 * xh + x0 * xw], v11 = p[y1 * xh + x1 * xw];
			unsigned* q00 = (unsigned*)&o;
			const unsigned *q01 = (const unsigned*)&v01, *q10 = (const unsigned*)&v10, *q11 = (const unsigned*)&v11;
#pragma unroll
			for (int j = 0; j < 4; j++) {
				unsigned w = 0;
#pragma unroll
				for (int h = 0; h < 2; h++) {
					int sh = 16 * h;
					float a = h2f((half_t)(q00[j] >> sh)), b01 = h2f((half_t)(q01[j] >> sh));
					float b10 = h2f((half_t)(q10[j] >> sh)), b11 = h2f((half_t)(q11[j] >> sh));
					float v = (1 - ay) * ((1 - ax) * a + ax * b01) + ay * ((1 - ax) * b10 + ax * b11);
					w |= (unsigned)f2h(v) << sh;
				}
				q00[j] = w;
			}
		}
		y[b * yn + oy * yh + ox * yw + c] = o;
	}
}

// The same product in 64×64 tiles of y through shared memory, K 16 at a
// time, each of 256 threads summing 4×4 outputs: the product of
// transformer layers (a [tokens, d] by [d, d'] weight). One batch entry
// per grid z; y packed.
extern "C" __global__ void matmul_tiled_f(const int* g, const float* a, const float* b, float* y, const float* bias, const float* res, int acts, float alpha) {
	__shared__ __align__(16) float As[16][68];
	__shared__ __align__(16) float Bs[16][64];
	const int M = g[12], N = g[13], K = g[14];
	long long oa, ob;
	mm_batch(g, blockIdx.z, &oa, &ob);
	const float* A = a + oa;
	const float* B = b + ob;
	const long long yo = (long long)blockIdx.z * M * N;
	float* Y = y + yo;
	const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
	const int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
	float acc[4][4];
#pragma unroll
	for (int i = 0; i < 4; i++)
#pragma unroll
		for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
	for (int k0 = 0; k0 < K; k0 += 16) {
		for (int l = threadIdx.x; l < 1024; l += 256) {
			int mm = l >> 4, kk = l & 15, gm = m0 + mm, gk = k0 + kk;
			As[kk][mm] = (gm < M && gk < K) ? A[(long long)gm * K + gk] : 0.0f;
			int kb = l >> 6, nb = l & 63, gkb = k0 + kb, gn = n0 + nb;
			Bs[kb][nb] = (gkb < K && gn < N) ? B[(long long)gkb * N + gn] : 0.0f;
		}
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < 16; kk++) {
			// 16-byte loads: a quarter warp's reads of Bs fall in distinct banks.
			const float4 a4 = *(const float4*)&As[kk][ty * 4], b4 = *(const float4*)&Bs[kk][tx * 4];
			const float av[4] = {a4.x, a4.y, a4.z, a4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
			for (int i = 0; i < 4; i++)
#pragma unroll
				for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
		}
		__syncthreads();
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int m = m0 + ty * 4 + i;
		if (m >= M) continue;
#pragma unroll
		for (int j = 0; j < 4; j++) {
			int n = n0 + tx * 4 + j;
			long long at = (long long)m * N + n;
			if (n < N) Y[at] = mm_epi(acc[i][j], bias, res, yo + at, n, acts, alpha);
		}
	}
}

// Batched row-major fp32 matrix product; g: dims[4] of the batch, a
// strides[4], b strides[4], M, N, K; then mm_epi's epilogue (bias and res
// may be null).
extern "C" __global__ void matmul_f(const int* g, const float* a, const float* b, float* y, const float* bias, const float* res, int acts, float alpha) {
	unsigned M = g[12], N = g[13], K = g[14];
	unsigned total = (unsigned)(g[0] * g[1] * g[2] * g[3]) * M * N;
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
		unsigned j = i % N, r = i / N;
		unsigned m = r % M;
		long long oa, ob;
		mm_batch(g, r / M, &oa, &ob);
		float s = 0.0f;
		for (unsigned k = 0; k < K; k++) s += a[oa + (long long)m * K + k] * b[ob + (long long)k * N + j];
		y[i] = mm_epi(s, bias, res, i, j, acts, alpha);
	}
}

// matmul_epi_f applies mm_epi in place to a row-major y of N columns
// (N a multiple of 4), four elements at a time: the epilogue of a product
// that cuDNN computed.
extern "C" __global__ void matmul_epi_f(unsigned n4, int N, float4* y, const float* bias, const float* res, int acts, float alpha) {
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += gridDim.x * blockDim.x) {
		long long at = 4LL * i;
		int c = (int)(at % N);
		float4 v = y[i];
		v.x = mm_epi(v.x, bias, res, at, c, acts, alpha);
		v.y = mm_epi(v.y, bias, res, at + 1, c + 1, acts, alpha);
		v.z = mm_epi(v.z, bias, res, at + 2, c + 2, acts, alpha);
		v.w = mm_epi(v.w, bias, res, at + 3, c + 3, acts, alpha);
		y[i] = v;
	}
}
`

// kernels are the engine's NVRTC kernels, a typed field each. Families
// chosen by element type are indexed by elem (0: float32, 1: float16);
// copies and transposes by the input's type, then the output's.
type kernels struct {
	copy, transpose                     [2][2]*gpu.Kernel
	copyV16                             *gpu.Kernel
	binary, unary, unaryStrided         [2]*gpu.Kernel
	binary4                             *gpu.Kernel
	epilogue, epilogue1, epilogue8      *gpu.Kernel
	epilogueD2S                         *gpu.Kernel
	inputNHWC8, softmax, reduce, matmul *gpu.Kernel
	matmulTiled, matmulEpi, softmaxRows *gpu.Kernel
	layerNorm                           *gpu.Kernel
	maxpool, maxpool8, resize, resize8  *gpu.Kernel // float16
	selectV8, detectV8, depthwise       *gpu.Kernel
	selectO2O, detectO2O                *gpu.Kernel
	nmsOBB, weighMasks                  *gpu.Kernel
	where, gather, topK, gridSample     *gpu.Kernel
	topKSelect                          *gpu.Kernel
}

// elem indexes a kernel family by element type.
func elem(e graph.Elem) int {
	if e == graph.F16 {
		return 1
	}
	return 0
}

// kernelSource is a CUDA source and the kernels it defines, by name, with
// the field each is loaded into.
type kernelSource struct {
	code  string
	names []string
	into  []**gpu.Kernel
}

// sources lists the engine's kernel sources and binds each kernel's name
// to its field of k: the one place that knows kernels by name.
func (k *kernels) sources() []kernelSource {
	src := func(code string, pairs ...any) kernelSource {
		ks := kernelSource{code: code}
		for i := 0; i < len(pairs); i += 2 {
			ks.names = append(ks.names, pairs[i].(string))
			ks.into = append(ks.into, pairs[i+1].(**gpu.Kernel))
		}
		return ks
	}
	return []kernelSource{
		src(stridedSource, "copy_ff", &k.copy[0][0], "copy_hh", &k.copy[1][1], "copy_hf", &k.copy[1][0], "copy_fh", &k.copy[0][1],
			"copy_v16", &k.copyV16, "binary_f", &k.binary[0], "binary_h", &k.binary[1], "binary4_f", &k.binary4, "unary_f", &k.unary[0], "unary_h", &k.unary[1],
			"unary_sf", &k.unaryStrided[0], "unary_sh", &k.unaryStrided[1]),
		src(layoutSource, "epilogue", &k.epilogue, "epilogue1", &k.epilogue1, "epilogue8", &k.epilogue8,
			"epilogue_d2s", &k.epilogueD2S,
			"transpose_ff", &k.transpose[0][0], "transpose_hh", &k.transpose[1][1], "transpose_hf", &k.transpose[1][0], "transpose_fh", &k.transpose[0][1],
			"input_nhwc8", &k.inputNHWC8, "softmax_f", &k.softmax, "softmax_rows_f", &k.softmaxRows, "layernorm_rows_f", &k.layerNorm, "reduce_f", &k.reduce, "maxpool_h", &k.maxpool, "maxpool_h8", &k.maxpool8,
			"resize_h", &k.resize, "resize_h8", &k.resize8, "matmul_f", &k.matmul, "matmul_tiled_f", &k.matmulTiled,
			"matmul_epi_f", &k.matmulEpi),
		src(detectSource, "select_v8", &k.selectV8, "detect_v8", &k.detectV8, "select_o2o", &k.selectO2O, "detect_o2o", &k.detectO2O),
		src(depthwiseSource, "dwconv_h8", &k.depthwise),
		src(obbSource, "nms_obb", &k.nmsOBB),
		src(maskSource, "weigh_masks", &k.weighMasks),
		src(indexSource, "where_f", &k.where, "gather_f", &k.gather, "topk_f", &k.topK, "topk_select_f", &k.topKSelect, "grid_sample_f", &k.gridSample),
	}
}

// loadKernels compiles (or reads from the cache) and loads the engine's
// NVRTC kernels, its sources side by side: on a cold start compiling is
// most of the engine's set-up.
func (e *GPUEngine) loadKernels() error {
	srcs := e.k.sources()
	var g errgroup.Group
	for _, src := range srcs {
		g.Go(func() error {
			for i, name := range src.names {
				k, err := e.cuda.Kernel(src.code, name, e.opts.CacheDir)
				if err != nil {
					return err
				}
				*src.into[i] = k
			}
			return nil
		})
	}
	return g.Wait()
}
