package infer

import (
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
)

// depthwiseSource is the depthwise convolution (groups = input channels =
// output channels) over NHWC fp16, eight channels a thread, with the
// convolution's epilogue in the same pass: y = act(conv(x) + bias) +
// residual. cuDNN's fp16 NHWC kernels run these shapes at a few percent of
// the memory bandwidth (YOLO12's 7×7 position encodings took a quarter of
// the network's time); they read little and compute little, so one thread
// per output pixel and channel group, taps read through L1, is near what
// the memory allows. Accumulation is fp32.
const depthwiseSource = kernelPrelude + `
// g: N, C, H, W, OH, OW, R, S, strH, strW, padH, padW, dilH, dilW, xpix,
// ypix, rpix (pixel strides in elements, multiples of 8); w: the weights
// as [R·S][C] fp16, eight channels of a tap in one 16-byte load.
extern "C" __global__ void dwconv_h8(const int* g, const uint4* x, const uint4* w, const float* bias, const uint4* res, uint4* y, int act, float alpha) {
	const int H = g[2], W = g[3], OH = g[4], OW = g[5], R = g[6], S = g[7];
	const int sh = g[8], sw = g[9], ph = g[10], pw = g[11], dh = g[12], dw = g[13];
	const long long xpix = g[14] >> 3, ypix = g[15] >> 3, rpix = g[16] >> 3;
	const unsigned C8 = g[1] >> 3;
	const unsigned n = (unsigned)g[0] * OH * OW * C8;
	for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		unsigned c8 = i % C8, r = i / C8;
		unsigned ox = r % OW; r /= OW;
		unsigned oy = r % OH, b = r / OH;
		float acc[8];
		const float4 b0 = *(const float4*)(bias + 8 * c8), b1 = *(const float4*)(bias + 8 * c8 + 4);
		acc[0] = b0.x; acc[1] = b0.y; acc[2] = b0.z; acc[3] = b0.w;
		acc[4] = b1.x; acc[5] = b1.y; acc[6] = b1.z; acc[7] = b1.w;
		for (int ky = 0; ky < R; ky++) {
			const int iy = (int)oy * sh - ph + ky * dh;
			if (iy < 0 || iy >= H) continue;
			const uint4* row = x + (long long)(b * H + iy) * W * xpix + c8;
			const uint4* wr = w + (long long)ky * S * C8 + c8;
			for (int kx = 0; kx < S; kx++) {
				const int ix = (int)ox * sw - pw + kx * dw;
				if (ix < 0 || ix >= W) continue;
				uint4 v = row[(long long)ix * xpix], k = wr[kx * C8];
				const unsigned* pv = (const unsigned*)&v;
				const unsigned* pk = (const unsigned*)&k;
#pragma unroll
				for (int j = 0; j < 4; j++) {
					acc[2 * j] += h2f((half_t)(pv[j] & 0xffff)) * h2f((half_t)(pk[j] & 0xffff));
					acc[2 * j + 1] += h2f((half_t)(pv[j] >> 16)) * h2f((half_t)(pk[j] >> 16));
				}
			}
		}
		const long long px = (long long)(b * OH + oy) * OW + ox;
		uint4 rv = make_uint4(0, 0, 0, 0);
		if (res) rv = res[px * rpix + c8];
		const unsigned* pr = (const unsigned*)&rv;
		uint4 o;
		unsigned* po = (unsigned*)&o;
#pragma unroll
		for (int j = 0; j < 4; j++) {
			float a = activate(acc[2 * j], act, alpha), bb = activate(acc[2 * j + 1], act, alpha);
			if (res) {
				a += h2f((half_t)(pr[j] & 0xffff));
				bb += h2f((half_t)(pr[j] >> 16));
			}
			po[j] = (unsigned)f2h(a) | ((unsigned)f2h(bb) << 16);
		}
		y[px * ypix + c8] = o;
	}
}
`

// depthwiseFits reports whether dwconv_h8 runs step s of prog: a
// depthwise convolution whose channels, pixel strides and offsets allow
// 16-byte access; it returns the input's, output's and residual's pixel
// strides.
func depthwiseFits(prog *graph.Program, s graph.Step) (xp, yp, rp int64, ok bool) {
	c := s.Conv
	if s.Kind != graph.KConv || c == nil || c.PostAct != graph.ActNone || c.Groups != c.C || c.K != c.C || c.C%8 != 0 || prog.Bufs[s.In[0].Buf].Space == graph.SpaceInputNHWC {
		return 0, 0, 0, false
	}
	xp, okx := graph.PixelStride(s.In[0])
	yp, oky := graph.PixelStride(s.Out)
	okr := true
	if c.Residual != nil {
		rp, okr = graph.PixelStride(*c.Residual)
		okr = okr && rp%8 == 0 && c.Residual.Off%8 == 0
	}
	ok = okx && oky && okr && xp%8 == 0 && yp%8 == 0 && s.In[0].Off%8 == 0 && s.Out.Off%8 == 0
	return xp, yp, rp, ok
}

// depthwise lowers step s onto dwconv_h8 where depthwiseFits, and reports
// whether it did; the others go to cuDNN.
func (e *GPUEngine) depthwise(p *gpuPlan, s graph.Step) bool {
	xp, yp, rp, ok := depthwiseFits(p.prog, s)
	if !ok {
		return false
	}
	c := s.Conv
	g := []int32{int32(c.N), int32(c.C), int32(c.H), int32(c.W), int32(c.OH), int32(c.OW), int32(c.R), int32(c.S),
		int32(c.StrH), int32(c.StrW), int32(c.PadH), int32(c.PadW), int32(c.DilH), int32(c.DilW), int32(xp), int32(yp), int32(rp)}
	var res gpu.DevicePtr
	if c.Residual != nil {
		res = e.addr(p, *c.Residual)
	}
	x, bias, y := e.addr(p, s.In[0]), p.consts[c.Bias], e.addr(p, s.Out)
	k, m, w, act, alpha := e.k.depthwise, p.param(g), p.param(tapMajor(p.prog.Bufs[c.Weight].Data, c.C, c.R*c.S)), int32(c.Act), c.Alpha
	threads := int64(c.N) * int64(c.OH*c.OW) * int64(c.C/8)
	e.stats.Depthwise++
	p.ops = append(p.ops, func(st gpu.Stream) error {
		return k.Launch(e.grid(threads), block, st, m(), x, w(), bias, res, y, act, alpha)
	})
	return true
}

// tapMajor reorders depthwise fp16 weights from the lowering's [C][taps]
// (KRSC with one channel a group) to [taps][C], packed two to an int32 as
// the launch parameters hold them.
func tapMajor(kcrs []byte, c, taps int) []int32 {
	out := make([]int32, (c*taps+1)/2)
	for ch := 0; ch < c; ch++ {
		for t := 0; t < taps; t++ {
			h := int32(kcrs[2*(ch*taps+t)]) | int32(kcrs[2*(ch*taps+t)+1])<<8
			i := t*c + ch
			out[i/2] |= h << (16 * (i % 2))
		}
	}
	return out
}
