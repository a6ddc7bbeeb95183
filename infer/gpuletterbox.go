package infer

import (
	"fmt"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/gpu"
)

// letterboxSource is the CUDA C of the GPU letterbox. Each thread makes one
// output pixel: it finds the four source pixels around it (after rotation),
// converts each from YUV to RGB as FFmpeg's swscale does for the CPU path
// (BT.601 limited range, chroma of the pixel's 2×2 block), blends them
// bilinearly and writes the planar tensor, each plane scaled by a and
// offset by b (rounded as the CPU path rounds them: no contraction);
// outside the picture it writes the pad values.
const letterboxSource = `
__device__ __forceinline__ void yuv(const unsigned char* y, const unsigned char* uv, int pitch, int x, int yy, int wide,
                                    float* r, float* g, float* b) {
	float Y, U, V;
	if (wide) {
		const unsigned short* y16 = (const unsigned short*)(y + yy * pitch);
		const unsigned short* c16 = (const unsigned short*)(uv + (yy >> 1) * pitch);
		Y = y16[x] * (1.0f / 256.0f);
		U = c16[(x >> 1) * 2] * (1.0f / 256.0f);
		V = c16[(x >> 1) * 2 + 1] * (1.0f / 256.0f);
	} else {
		Y = y[yy * pitch + x];
		U = uv[(yy >> 1) * pitch + (x >> 1) * 2];
		V = uv[(yy >> 1) * pitch + (x >> 1) * 2 + 1];
	}
	float c = 1.164383f * (Y - 16.0f);
	*r = fminf(fmaxf(c + 1.596027f * (V - 128.0f), 0.0f), 255.0f);
	*g = fminf(fmaxf(c - 0.391762f * (U - 128.0f) - 0.812968f * (V - 128.0f), 0.0f), 255.0f);
	*b = fminf(fmaxf(c + 2.017232f * (U - 128.0f), 0.0f), 255.0f);
}

// src(x, y) of the upright picture at (ux, uy), for a picture of coded size sw×sh.
__device__ __forceinline__ void source(int ux, int uy, int sw, int sh, int rot, int* sx, int* sy) {
	switch (rot) {
	case 90:  *sx = uy;          *sy = sh - 1 - ux; break;
	case 180: *sx = sw - 1 - ux; *sy = sh - 1 - uy; break;
	case 270: *sx = sw - 1 - uy; *sy = ux;          break;
	default:  *sx = ux;          *sy = uy;
	}
}

extern "C" __global__ void letterbox_yuv420(
	const unsigned char* y, const unsigned char* uv, int pitch, int sw, int sh, int rot, int wide,
	float* dst, int dw, int dh, int nw, int nh, int padx, int pady,
	int pr, int pg, int pb, float a0, float a1, float a2, float b0, float b1, float b2, float q0, float q1, float q2) {
	int x = blockIdx.x * blockDim.x + threadIdx.x;
	int yy = blockIdx.y * blockDim.y + threadIdx.y;
	if (x >= dw || yy >= dh) return;
	int plane = dw * dh, o = yy * dw + x;
	int ox = x - padx, oy = yy - pady;
	if (ox < 0 || oy < 0 || ox >= nw || oy >= nh) {
		dst[o] = q0; dst[plane + o] = q1; dst[2 * plane + o] = q2;
		return;
	}
	int uw = (rot == 90 || rot == 270) ? sh : sw;
	int uh = (rot == 90 || rot == 270) ? sw : sh;
	float fx = fmaxf((ox + 0.5f) * uw / nw - 0.5f, 0.0f);
	float fy = fmaxf((oy + 0.5f) * uh / nh - 0.5f, 0.0f);
	int x0 = min((int)fx, uw - 1), y0 = min((int)fy, uh - 1);
	int x1 = min(x0 + 1, uw - 1), y1 = min(y0 + 1, uh - 1);
	float ax = fx - x0, ay = fy - y0;
	float r[4], g[4], b[4];
	int px[4] = {x0, x1, x0, x1}, py[4] = {y0, y0, y1, y1};
	for (int i = 0; i < 4; i++) {
		int sx, sy;
		source(px[i], py[i], sw, sh, rot, &sx, &sy);
		yuv(y, uv, pitch, sx, sy, wide, &r[i], &g[i], &b[i]);
	}
	float w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
	float a[3] = {a0, a1, a2}, c[3] = {b0, b1, b2};
	dst[pr * plane + o] = __fadd_rn(__fmul_rn(r[0] * w00 + r[1] * w01 + r[2] * w10 + r[3] * w11, a[pr]), c[pr]);
	dst[pg * plane + o] = __fadd_rn(__fmul_rn(g[0] * w00 + g[1] * w01 + g[2] * w10 + g[3] * w11, a[pg]), c[pg]);
	dst[pb * plane + o] = __fadd_rn(__fmul_rn(b[0] * w00 + b[1] * w01 + b[2] * w10 + b[3] * w11, a[pb]), c[pb]);
}
`

// GPULetterbox letterboxes decoded GPU frames into a batch tensor in GPU
// memory, in one kernel per frame.
type GPULetterbox struct {
	k          *gpu.Kernel
	dstW, dstH int
	p          Preprocess
}

// NewGPULetterbox compiles (or loads from cacheDir) the letterbox kernel
// for dstW×dstH inputs of the convention p.
func NewGPULetterbox(g *gpu.CUDA, dstW, dstH int, p Preprocess, cacheDir string) (*GPULetterbox, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	k, err := g.Kernel(letterboxSource, "letterbox_yuv420", cacheDir)
	if err != nil {
		return nil, err
	}
	return &GPULetterbox{k: k, dstW: dstW, dstH: dstH, p: p}, nil
}

// Run queues the letterbox of f into dst, which points at one image's
// 3×dstH×dstW float32 slot, on stream s, and returns the geometry.
func (l *GPULetterbox) Run(f *decode.GPUFrame, dst gpu.DevicePtr, s gpu.Stream) (Letterbox, error) {
	uw, uh := f.Width, f.Height
	if f.Rotation == 90 || f.Rotation == 270 {
		uw, uh = uh, uw
	}
	lb := FitLetterbox(uw, uh, l.dstW, l.dstH, l.p.Fit)
	wide := int32(0)
	if f.Format == decode.GPUP016 {
		wide = 1
	}
	a, b := l.p.Affine()
	q := l.p.PadValues()
	grid := [3]uint32{uint32((l.dstW + 31) / 32), uint32((l.dstH + 7) / 8), 1}
	err := l.k.Launch(grid, [3]uint32{32, 8, 1}, s,
		gpu.DevicePtr(f.Ptr), gpu.DevicePtr(f.ChromaAt), int32(f.Pitch), int32(f.Width), int32(f.Height), int32(f.Rotation), wide,
		dst, int32(l.dstW), int32(l.dstH), int32(lb.NewW), int32(lb.NewH), int32(lb.PadX), int32(lb.PadY),
		int32(l.p.plane(0)), int32(l.p.plane(1)), int32(l.p.plane(2)), a[0], a[1], a[2], b[0], b[1], b[2], q[0], q[1], q[2])
	if err != nil {
		return lb, fmt.Errorf("letterbox kernel: %w", err)
	}
	return lb, nil
}
