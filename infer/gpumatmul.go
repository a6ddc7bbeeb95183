package infer

import (
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
)

// matmulMMASource is the fp32 product on tensor cores (Ampere and later):
// operands rounded to TF32 (10 bits of mantissa, as the fp16 convolutions
// keep, with fp32's range), products summed in fp32 by mma.sync m16n8k8.
// A block of four warps takes a 64×64 tile of y, each warp 32×32, K 16 at a
// time through shared memory; the next K tile is read into registers while
// the current one is multiplied. Operands, y and the epilogue as
// matmul_tiled_f takes them: row-major, a batch entry per grid z; it is
// compiled after kernelPrelude.
const matmulMMASource = `
// tf32 rounds f to TF32, to nearest with ties away from zero as
// cvt.rna.tf32.f32 does, in two integer operations (the conversion
// instruction has a quarter of their throughput).
__device__ __forceinline__ unsigned tf32(float f) {
	return (__float_as_uint(f) + 0x1000u) & 0xffffe000u;
}
__device__ __forceinline__ void mma1688(float* c, const unsigned* a, unsigned b0, unsigned b1) {
	asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
		: "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#define MM_T 64
#define MM_K 16

// g: dims[4] of the batch, a strides[4], b strides[4], M, N, K. 128 threads.
// Then mm_epi's epilogue (bias and res may be null).
extern "C" __global__ void __launch_bounds__(128) matmul_mma_f(const int* g, const float* a, const float* b, float* y, const float* bias,
		const float* res, int acts, float alpha) {
	// Padded so that the fragments' reads fall in distinct banks.
	__shared__ unsigned As[MM_T][MM_K + 4];
	__shared__ unsigned Bs[MM_K][MM_T + 8];
	const int M = g[12], N = g[13], K = g[14];
	long long oa, ob;
	mm_batch(g, blockIdx.z, &oa, &ob);
	const float* A = a + oa;
	const float* B = b + ob;
	const long long yo = (long long)blockIdx.z * M * N;
	float* Y = y + yo;
	const int t = threadIdx.x, warp = t >> 5, lane = t & 31, gr = lane >> 2, tq = lane & 3;
	const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
	const int m0 = blockIdx.y * MM_T, n0 = blockIdx.x * MM_T;
	float acc[2][4][4];
#pragma unroll
	for (int i = 0; i < 2; i++)
#pragma unroll
		for (int j = 0; j < 4; j++)
#pragma unroll
			for (int c = 0; c < 4; c++) acc[i][j][c] = 0.0f;
	// Each thread moves 8 of A's 64×16 and 8 of B's 16×64 a K tile.
	float ra[8], rb[8];
#pragma unroll
	for (int i = 0; i < 8; i++) {
		int l = t + i * 128, gm = m0 + (l >> 4), gk = l & 15, kb = l >> 6, gn = n0 + (l & 63);
		ra[i] = (gm < M && gk < K) ? A[(long long)gm * K + gk] : 0.0f;
		rb[i] = (kb < K && gn < N) ? B[(long long)kb * N + gn] : 0.0f;
	}
	for (int k0 = 0; k0 < K; k0 += MM_K) {
#pragma unroll
		for (int i = 0; i < 8; i++) {
			int l = t + i * 128;
			As[l >> 4][l & 15] = tf32(ra[i]);
			Bs[l >> 6][l & 63] = tf32(rb[i]);
		}
		__syncthreads();
		if (k0 + MM_K < K) {
			int k1 = k0 + MM_K;
#pragma unroll
			for (int i = 0; i < 8; i++) {
				int l = t + i * 128, gm = m0 + (l >> 4), gk = k1 + (l & 15), kb = k1 + (l >> 6), gn = n0 + (l & 63);
				ra[i] = (gm < M && gk < K) ? A[(long long)gm * K + gk] : 0.0f;
				rb[i] = (kb < K && gn < N) ? B[(long long)kb * N + gn] : 0.0f;
			}
		}
#pragma unroll
		for (int ks = 0; ks < MM_K; ks += 8) {
			unsigned af[2][4];
#pragma unroll
			for (int i = 0; i < 2; i++) {
				int row = wm + i * 16 + gr;
				af[i][0] = As[row][ks + tq];
				af[i][1] = As[row + 8][ks + tq];
				af[i][2] = As[row][ks + tq + 4];
				af[i][3] = As[row + 8][ks + tq + 4];
			}
#pragma unroll
			for (int j = 0; j < 4; j++) {
				int col = wn + j * 8 + gr;
				unsigned b0 = Bs[ks + tq][col], b1 = Bs[ks + tq + 4][col];
#pragma unroll
				for (int i = 0; i < 2; i++) mma1688(acc[i][j], af[i], b0, b1);
			}
		}
		__syncthreads();
	}
#pragma unroll
	for (int i = 0; i < 2; i++) {
#pragma unroll
		for (int j = 0; j < 4; j++) {
			int row = m0 + wm + i * 16 + gr, col = n0 + wn + j * 8 + tq * 2;
#pragma unroll
			for (int h = 0; h < 2; h++) {
				int m = row + h * 8;
				if (m >= M) continue;
				long long at = (long long)m * N + col;
				if (col < N) Y[at] = mm_epi(acc[i][j][2 * h], bias, res, yo + at, col, acts, alpha);
				if (col + 1 < N) Y[at + 1] = mm_epi(acc[i][j][2 * h + 1], bias, res, yo + at + 1, col + 1, acts, alpha);
			}
		}
	}
}
`

// matmulMMA is the tensor-core product's kernel, compiled on first use;
// nil where the GPU has no TF32 tensor cores (before Ampere), whose
// products take matmul_tiled_f.
func (e *GPUEngine) matmulMMA() (*gpu.Kernel, error) {
	if e.cuda.Arch < 80 {
		return nil, nil
	}
	return e.cuda.Kernel(kernelPrelude+matmulMMASource, "matmul_mma_f", e.opts.CacheDir)
}

// linearMinRows is the fewest stacked rows a linear layer needs to run on
// cuDNN, whose plan and separate epilogue pass a small product may not
// repay. Chosen, not measured at the boundary: the DETR-style models
// measured have 19,200 rows or more in every linear layer.
const linearMinRows = 2048

// linear runs a linear layer, the stacked rows of a ([images, rows/images,
// k] row-major) by one constant [k, cols] weight, as a 1×1 convolution on
// cuDNN's graph API, fp32 tensors on TF32 tensor cores where cuDNN picks
// them, then mm_epi's epilogue (when the step has one) as a pass in place.
// It reports false, having added nothing, where the product does not
// qualify or cuDNN has no engine for it: the engine's own kernel runs it.
func (e *GPUEngine) linear(p *gpuPlan, s graph.Step, images, rows, cols, k int, bias, res gpu.DevicePtr, acts int32, alpha float32) (bool, error) {
	a, b := s.In[0], s.In[1]
	wb := p.prog.Bufs[b.Buf]
	r := len(b.Stride)
	if e.opts.KernelProducts || rows < linearMinRows || images < 1 || rows%images != 0 || k%4 != 0 || cols%4 != 0 ||
		a.Off%4 != 0 || s.Out.Off%4 != 0 || wb.Space != graph.SpaceConst || b.Elem != graph.F32 {
		return false, nil
	}
	// cuDNN's filter is [cols, k]: the weight transposed, read through
	// the view's strides.
	wt := make([]byte, 4*cols*k)
	for n := range cols {
		for kk := range k {
			at := 4 * (b.Off + int64(kk)*b.Stride[r-2] + int64(n)*b.Stride[r-1])
			copy(wt[4*(n*k+kk):], wb.Data[at:at+4])
		}
	}
	w, err := e.cuda.Alloc(len(wt))
	if err != nil {
		return false, err
	}
	p.owned = append(p.owned, w)
	if err := e.cuda.CopyToDevice(w, wt); err != nil {
		return false, err
	}
	h := rows / images
	shape := gpu.ConvShape{N: images, C: k, H: h, W: 1, K: cols, R: 1, S: 1, StrH: 1, StrW: 1, DilH: 1, DilW: 1, Groups: 1,
		OH: h, OW: 1, Float: true}
	x, y := e.addr(p, a), e.addr(p, s.Out)
	conv, err := e.convFor(p, shape, x, w, y)
	if err != nil {
		return false, nil
	}
	e.stats.Linear++
	ws, wsBytes := e.ws, e.wsBytes
	p.ops = append(p.ops, func(st gpu.Stream) error { return conv.Forward(st, x, w, y, ws, wsBytes) })
	p.stepLabels = append(p.stepLabels, "linear (cuDNN)", "linear epilogue")
	if s.MatMul != nil {
		kern, n4 := e.k.matmulEpi, int64(rows)*int64(cols)/4
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n4), block, st, uint32(n4), int32(cols), y, bias, res, acts, alpha)
		})
	}
	return true, nil
}
