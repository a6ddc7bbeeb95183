package infer

import (
	"fmt"
	"math"

	"github.com/dsbatch/dsbatch/gpu"
)

// maskSource is the CUDA C of a segmentation model's masks on the device:
// each kept detection's prototypes weighed by its coefficients over the
// window of cells round its box, as Layout.weighMask computes them on the
// host (the same window, the coefficients summed in the same order, each
// operation rounded on its own), so that only the windows' logits cross
// to the host, not every image's prototypes.
const maskSource = `
#define ROW 7

// go_int is Go's int(f) on amd64: CVTTSD2SQ, the lowest int64 for NaN and
// values out of range.
__device__ __forceinline__ long long go_int(double f) {
	return (f >= -9223372036854775808.0 && f < 9223372036854775808.0) ? (long long)f : (long long)0x8000000000000000ULL;
}
// cell is weighMask's cell: the one whose centre is at or before v.
__device__ __forceinline__ int cell(float v, float size, int n) {
	long long c = go_int(floor((double)__fsub_rn(__fdiv_rn(v, size), 0.5f)));
	return (int)min(max(c, 0LL), (long long)(n - 1));
}

// weigh_masks: one block per kept detection (grid.x: its row, grid.y: the
// image) weighs the m prototypes of mh×mw cells (at proto, img floats
// apart) by the detection's coefficients (after its row's first ROW
// floats; rows of row floats, maxDet an image, ndet of them kept) over
// its window, into logits at an offset it takes from used. win gets the
// window: x0, y0, w, h and the offset (w and h 0 for an empty window, the
// offset past capacity where the logits did not fit).
extern "C" __global__ void weigh_masks(const float* proto, long long img, int m, int mh, int mw, float cw, float ch,
		const float* dets, int row, int maxDet, const int* ndet, float* logits, unsigned* used, unsigned capacity, int* win) {
	__shared__ int x0, y0, w, h;
	__shared__ unsigned off;
	int j = blockIdx.x, b = blockIdx.y, t = threadIdx.x, bs = blockDim.x;
	if (j >= ndet[b]) return;
	const float* r = dets + ((long long)b * maxDet + j) * row;
	if (t == 0) {
		int a = cell(r[0], cw, mw), c = min(cell(r[2], cw, mw) + 1, mw - 1);
		int d = cell(r[1], ch, mh), e = min(cell(r[3], ch, mh) + 1, mh - 1);
		x0 = a; y0 = d; w = c - a + 1; h = e - d + 1;
		if (w <= 0 || h <= 0) { w = 0; h = 0; }
		unsigned need = (unsigned)(w * h);
		off = atomicAdd(used, need);
		int* o = win + ((long long)b * maxDet + j) * 5;
		o[0] = x0; o[1] = y0; o[2] = w; o[3] = h; o[4] = (int)off;
	}
	__syncthreads();
	unsigned n = (unsigned)(w * h);
	if (n == 0 || off > capacity || capacity - off < n) return;
	const float* p = proto + (long long)b * img;
	const float* coef = r + ROW;
	long long plane = (long long)mh * mw;
	for (unsigned i = t; i < n; i += bs) {
		int y = i / w, x = i - y * w;
		const float* q = p + (long long)(y0 + y) * mw + x0 + x;
		float acc = 0.0f;
		for (int k = 0; k < m; k++) acc = __fadd_rn(acc, __fmul_rn(coef[k], q[k * plane]));
		logits[off + i] = acc;
	}
}
`

// maskBuffers are the device and host memory of masks weighed on the
// device, for the engine's largest batch: room for as many logits as the
// batch's prototypes hold, which the windows of a few dozen full-image
// masks an image fill (more fall back on the host's weighing).
type maskBuffers struct {
	capacity   int // logits
	maxDet     int // windows an image
	logits     gpu.DevicePtr
	used, win  gpu.DevicePtr
	host       *gpu.HostBuffer // logits, made as they need
	hostWindow *gpu.HostBuffer // used, then windows
}

// maskBuffers returns the buffers of masks weighed on the device for
// layout l and maxDet detections an image, made on first use.
func (e *GPUEngine) maskBuffers(l Layout, maxDet int) (*maskBuffers, error) {
	capacity := l.protoValues() * e.opts.Batch
	if e.maskRoom > 0 {
		capacity = e.maskRoom
	}
	if m := e.masks; m != nil && m.capacity == capacity && m.maxDet == maxDet {
		return m, nil
	}
	e.freeMasks()
	m := &maskBuffers{capacity: capacity, maxDet: maxDet}
	e.masks = m
	var err error
	if m.logits, err = e.cuda.Alloc(4 * capacity); err != nil {
		return nil, err
	}
	if m.used, err = e.cuda.Alloc(4); err != nil {
		return nil, err
	}
	if m.win, err = e.cuda.Alloc(20 * maxDet * e.opts.Batch); err != nil {
		return nil, err
	}
	if m.hostWindow, err = e.cuda.AllocHost(4 + 20*maxDet*e.opts.Batch); err != nil {
		return nil, err
	}
	return m, nil
}

// freeMasks releases the mask buffers; nil-safe.
func (e *GPUEngine) freeMasks() {
	m := e.masks
	if m == nil {
		return
	}
	for _, p := range []gpu.DevicePtr{m.logits, m.used, m.win} {
		if p != 0 {
			e.cuda.Free(p)
		}
	}
	m.host.Free()
	m.hostWindow.Free()
	e.masks = nil
}

// weighMasks queues the weighing of the kept detections' masks of n
// images on the engine's stream: the joined output at out (l's layout),
// their rows at dets (row floats, maxDet an image), their number at ndet.
// Its result, after the stream's work, is read by deviceMasks.
func (e *GPUEngine) weighMasks(out gpu.DevicePtr, l Layout, n int, dets, ndet gpu.DevicePtr, row, maxDet int) (*maskBuffers, error) {
	m, err := e.maskBuffers(l, maxDet)
	if err != nil {
		return nil, err
	}
	st := e.stream
	if err := e.cuda.ZeroAsync(m.used, 4, st); err != nil {
		return nil, err
	}
	cw, ch := float32(l.InputW)/float32(l.MaskW), float32(l.InputH)/float32(l.MaskH)
	proto := out + gpu.DevicePtr(4*l.D1*l.D2)
	if err := e.k.weighMasks.Launch([3]uint32{uint32(maxDet), uint32(n), 1}, [3]uint32{256, 1, 1}, st, proto, int64(l.Values()),
		int32(l.Masks), int32(l.MaskH), int32(l.MaskW), cw, ch, dets, int32(row), int32(maxDet), ndet, m.logits, m.used, uint32(m.capacity), m.win); err != nil {
		return nil, err
	}
	if err := e.cuda.DownloadAsync(m.hostWindow, 0, m.used, 4, st); err != nil {
		return nil, err
	}
	if err := e.cuda.DownloadAsync(m.hostWindow, 4, m.win, 20*maxDet*n, st); err != nil {
		return nil, err
	}
	return m, nil
}

// deviceMasks gives the detections res (image by image, detection j of
// image i from its row j) the masks weighMasks weighed, once the
// stream's work is done. It reports false, changing nothing, where their
// logits did not fit: the caller then weighs on the host.
func (e *GPUEngine) deviceMasks(m *maskBuffers, l Layout, res [][]Detection, maxDet int) (bool, error) {
	hw := m.hostWindow.Floats()
	used := int(math.Float32bits(hw[0]))
	if used > m.capacity {
		return false, nil
	}
	if used > 0 && (m.host == nil || len(m.host.Floats()) < used) {
		// Page-locked as the windows need it, not for the worst case.
		m.host.Free()
		m.host = nil
		h, err := e.cuda.AllocHost(4 * min(max(2*used, 1<<20), m.capacity))
		if err != nil {
			return false, fmt.Errorf("gpu engine: host memory for masks: %w", err)
		}
		m.host = h
	}
	if used > 0 {
		if err := e.cuda.DownloadAsync(m.host, 0, m.logits, 4*used, e.stream); err != nil {
			return false, err
		}
		if err := e.cuda.Sync(e.stream); err != nil {
			return false, fmt.Errorf("gpu engine: %w", err)
		}
	}
	var logits []float32
	if used > 0 {
		logits = m.host.Floats()[:used]
	}
	cw, ch := float32(l.InputW)/float32(l.MaskW), float32(l.InputH)/float32(l.MaskH)
	for i := range res {
		for j := range res[i] {
			w := hw[1+(i*maxDet+j)*5:][:5]
			x0, y0 := int(int32(math.Float32bits(w[0]))), int(int32(math.Float32bits(w[1])))
			mw, mh, off := int(int32(math.Float32bits(w[2]))), int(int32(math.Float32bits(w[3]))), int(math.Float32bits(w[4]))
			if mw < 0 || mh < 0 || off+mw*mh > used {
				return false, fmt.Errorf("gpu engine: image %d detection %d: mask window %dx%d at %d of %d logits", i, j, mw, mh, off, used)
			}
			mk := &Mask{X0: x0, Y0: y0, W: mw, H: mh, GridW: l.MaskW, GridH: l.MaskH, CellW: cw, CellH: ch, Logits: make([]float32, mw*mh)}
			copy(mk.Logits, logits[off:])
			res[i][j].Mask = mk
		}
	}
	return true, nil
}
