package infer

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand"
	"testing"
	"unsafe"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// obbCase is nms_obb's input: n images of up to k sorted candidate rows
// (cx, cy, w, h, score, class, 1 + the row, the angle) and its options.
type obbCase struct {
	n, k     int
	rows     []float32
	ndet     []int32
	thr      float32
	maxDet   int
	agnostic bool
}

// obbCandidates makes candidates that test the decisions at their edges:
// clusters of boxes a little moved, turned and resized from one another,
// so that many IoUs lie near the threshold; equal boxes and scores; three
// classes; angles from exact multiples of π/4 to 10⁶ radians. Image 1 has
// a NaN angle and a zero-sized box, image 2 an angle of 2³⁰ radians (Go
// reduces it by Payne–Hanek, which the device does not port: the host
// decides that image).
func obbCandidates(n, k int, seed int64) obbCase {
	rng := rand.New(rand.NewSource(seed))
	c := obbCase{n: n, k: k, rows: make([]float32, n*k*(detRow+1)), ndet: make([]int32, n), thr: 0.45, maxDet: 300}
	row := detRow + 1
	for b := 0; b < n; b++ {
		m := k - rng.Intn(k/4)
		c.ndet[b] = int32(m)
		score := float32(1)
		var cx, cy, w, h, a float32
		for i := 0; i < m; i++ {
			r := c.rows[(b*k+i)*row:][:row]
			if i%12 == 0 { // a new cluster
				cx, cy = 40+rng.Float32()*560, 40+rng.Float32()*560
				w, h = 4+rng.Float32()*150, 4+rng.Float32()*150
				switch rng.Intn(6) {
				case 0:
					a = float32(rng.Intn(9)) * math.Pi / 4
				case 1:
					a = rng.Float32() * 1e6
				default:
					a = (rng.Float32() - 0.5) * 7
				}
			}
			jit := func(v, s float32) float32 { return v + (rng.Float32()-0.5)*s }
			r[0], r[1], r[2], r[3], r[detRow] = jit(cx, 8), jit(cy, 8), jit(w, 10), jit(h, 10), jit(a, 0.2)
			if rng.Intn(10) == 0 && i > 0 { // an equal box
				copy(r[:4], c.rows[(b*k+i-1)*row:][:4])
				r[detRow] = c.rows[(b*k+i-1)*row+detRow]
			}
			if rng.Intn(3) > 0 {
				score -= rng.Float32() * 1e-3
			}
			r[4], r[5], r[6] = score, float32(rng.Intn(3)), float32(i+1)
		}
		switch b {
		case 1:
			c.rows[(b*k+3)*row+detRow] = float32(math.NaN())
			c.rows[(b*k+5)*row+2] = 0
		case 2:
			c.rows[(b*k+7)*row+detRow] = 1 << 30
		}
	}
	return c
}

// want is suppress over each image's candidates, built as the device path
// builds them: the kept rows' indices, nil for an image the host must
// decide (an angle past the device's range).
func (c obbCase) want() [][]int {
	row := detRow + 1
	out := make([][]int, c.n)
	for b := 0; b < c.n; b++ {
		dets := make([]Detection, c.ndet[b])
		far := false
		for i := range dets {
			r := c.rows[(b*c.k+i)*row:]
			far = far || math.Abs(float64(r[detRow])) >= 1<<29
			d := Detection{Score: r[4], Class: int(r[5]), src: int32(i + 1), Rotated: newRotated(r[0], r[1], r[2], r[3], r[detRow])}
			d.X1, d.Y1, d.X2, d.Y2 = d.Rotated.bounds()
			dets[i] = d
		}
		if far {
			continue
		}
		for _, d := range suppress(dets, c.thr, c.maxDet, c.agnostic) {
			out[b] = append(out[b], int(d.src-1))
		}
		if out[b] == nil {
			out[b] = []int{}
		}
	}
	return out
}

// check compares nms_obb's kept indices (nkeep, keep) and quads with the
// host's, image by image.
func (c obbCase) check(t *testing.T, nkeep, keep []int32, quads []float64) {
	t.Helper()
	want := c.want()
	row := detRow + 1
	total := 0
	for b := 0; b < c.n; b++ {
		if want[b] == nil {
			if nkeep[b] != -1 {
				t.Errorf("image %d: %d kept on the device, want it left to the host", b, nkeep[b])
			}
			continue
		}
		got := keep[b*c.k : b*c.k+max(int(nkeep[b]), 0)]
		if int(nkeep[b]) != len(want[b]) {
			t.Errorf("image %d: %d kept on the device, %d on the host", b, nkeep[b], len(want[b]))
		}
		for i := range min(len(got), len(want[b])) {
			if int(got[i]) != want[b][i] {
				t.Errorf("image %d: kept box %d is row %d on the device, %d on the host", b, i, got[i], want[b][i])
				break
			}
		}
		total += len(want[b])
		for i := 0; i < int(c.ndet[b]); i++ {
			r := c.rows[(b*c.k+i)*row:]
			rot := newRotated(r[0], r[1], r[2], r[3], r[detRow])
			q := newQuad(rot)
			x1, y1, x2, y2 := rot.bounds()
			w := []float64{q.p[0][0], q.p[1][0], q.p[2][0], q.p[3][0], q.p[0][1], q.p[1][1], q.p[2][1], q.p[3][1], q.area,
				float64(x1), float64(y1), float64(x2), float64(y2)}
			g := quads[(b*c.k+i)*obbQuad:][:obbQuad]
			for j := range w {
				if math.Float64bits(w[j]) != math.Float64bits(g[j]) && !(math.IsNaN(w[j]) && math.IsNaN(g[j])) {
					t.Errorf("image %d row %d (angle %v): quad value %d is %v on the device, %v on the host", b, i, r[detRow], j, g[j], w[j])
					break
				}
			}
		}
	}
	t.Logf("%d images, %d boxes kept, equal", c.n, total)
}

// TestGPURotatedNMS runs nms_obb on candidates made to sit at its
// decisions' edges and checks every kept box, and every corner, bound
// and area, against the host's suppress bit for bit.
func TestGPURotatedNMS(t *testing.T) {
	uuid := firstGPU(t)
	m, err := ReadModel(onnxtest.WriteMiniYOLOv8(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewGPU(m, 32, 32, GPUOptions{UUID: uuid, Batch: 1, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, c := range obbCases() {
		nkeep, keep, quads := runNMSOBB(t, e, c)
		c.check(t, nkeep, keep, quads)
	}
}

// obbCases are the rotated NMS tests' inputs: full top-ks at IoU 0.45,
// agnostic at 0.1, and max-det 20 at 0.7.
func obbCases() []obbCase {
	b, c := obbCandidates(8, 512, 2), obbCandidates(8, 256, 3)
	b.thr, b.agnostic = 0.1, true
	c.thr, c.maxDet = 0.7, 20
	return []obbCase{obbCandidates(16, 1024, 1), b, c}
}

// cpuHarness is the C++ main of TestRotatedNMSKernelOnCPU: it reads an
// obbCase, runs nms_obb block by block on one thread and writes nkeep,
// keep and the quads.
const cpuHarness = `
int main(int argc, char** argv) {
	FILE* f = fopen(argv[1], "rb");
	int h[6];
	if (!f || fread(h, 4, 6, f) != 6) return 1;
	int n = h[0], k = h[1], row = h[2], maxDet = h[3], agnostic = h[5];
	float thr; memcpy(&thr, &h[4], 4);
	float* dets = new float[(size_t)n * k * row]; int* ndet = new int[n];
	if (fread(ndet, 4, n, f) != (size_t)n || fread(dets, 4, (size_t)n * k * row, f) != (size_t)n * k * row) return 1;
	fclose(f);
	double* quads = new double[(size_t)n * k * QUAD]; int* keep = new int[(size_t)n * k]; int* nkeep = new int[n];
	for (int b = 0; b < n; b++) { blockIdx.x = b; nms_obb(dets, row, k, ndet, maxDet, thr, agnostic, quads, keep, nkeep); }
	FILE* o = fopen(argv[2], "wb");
	fwrite(nkeep, 4, n, o); fwrite(keep, 4, (size_t)n * k, o); fwrite(quads, 8, (size_t)n * k * QUAD, o);
	return fclose(o) != 0;
}
`

// TestRotatedNMSKernelOnCPU compiles nms_obb as C++ (testdata/cudashim.h:
// each block on one thread, every operation rounded on its own) and runs
// TestGPURotatedNMS's cases through it on the CPU: the kernel's logic and
// its port of Go's sine and cosine checked in make test, before a device
// run.
func TestRotatedNMSKernelOnCPU(t *testing.T) {
	run := kernelOnCPU(t, obbSource, cpuHarness)
	for _, c := range obbCases() {
		var buf bytes.Buffer
		agnostic := int32(0)
		if c.agnostic {
			agnostic = 1
		}
		for _, v := range []any{[]int32{int32(c.n), int32(c.k), detRow + 1, int32(c.maxDet)}, c.thr, agnostic, c.ndet, c.rows} {
			binary.Write(&buf, binary.LittleEndian, v)
		}
		r := bytes.NewReader(run(buf.Bytes()))
		nkeep, keep, quads := make([]int32, c.n), make([]int32, c.n*c.k), make([]float64, c.n*c.k*obbQuad)
		for _, v := range []any{nkeep, keep, quads} {
			if err := binary.Read(r, binary.LittleEndian, v); err != nil {
				t.Fatal(err)
			}
		}
		c.check(t, nkeep, keep, quads)
	}
}

// runNMSOBB runs nms_obb over c on e's GPU.
func runNMSOBB(t *testing.T, e *GPUEngine, c obbCase) (nkeep, keep []int32, quads []float64) {
	t.Helper()
	row := detRow + 1
	var ptrs []gpu.DevicePtr
	alloc := func(n int) gpu.DevicePtr {
		p, err := e.cuda.Alloc(n)
		if err != nil {
			t.Fatal(err)
		}
		ptrs = append(ptrs, p)
		return p
	}
	defer func() {
		for _, p := range ptrs {
			e.cuda.Free(p)
		}
	}()
	dets, ndet := alloc(4*len(c.rows)), alloc(4*c.n)
	qd, kd, nd := alloc(8*obbQuad*c.k*c.n), alloc(4*c.k*c.n), alloc(4*c.n)
	bytes := func(p unsafe.Pointer, n int) []byte { return unsafe.Slice((*byte)(p), n) }
	if err := e.cuda.CopyToDevice(dets, bytes(unsafe.Pointer(&c.rows[0]), 4*len(c.rows))); err != nil {
		t.Fatal(err)
	}
	if err := e.cuda.CopyToDevice(ndet, bytes(unsafe.Pointer(&c.ndet[0]), 4*c.n)); err != nil {
		t.Fatal(err)
	}
	agnostic := int32(0)
	if c.agnostic {
		agnostic = 1
	}
	if err := e.k.nmsOBB.Launch([3]uint32{uint32(c.n), 1, 1}, [3]uint32{256, 1, 1}, e.stream, dets, int32(row), int32(c.k), ndet,
		int32(c.maxDet), c.thr, agnostic, qd, kd, nd); err != nil {
		t.Fatal(err)
	}
	nkeep, keep, quads = make([]int32, c.n), make([]int32, c.k*c.n), make([]float64, obbQuad*c.k*c.n)
	for _, cp := range []struct {
		dst []byte
		src gpu.DevicePtr
	}{
		{bytes(unsafe.Pointer(&nkeep[0]), 4*len(nkeep)), nd},
		{bytes(unsafe.Pointer(&keep[0]), 4*len(keep)), kd},
		{bytes(unsafe.Pointer(&quads[0]), 8*len(quads)), qd},
	} {
		if err := e.cuda.CopyBytesToHost(cp.dst, cp.src, e.stream); err != nil {
			t.Fatal(err)
		}
	}
	return nkeep, keep, quads
}
