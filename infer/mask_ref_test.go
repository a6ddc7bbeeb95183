package infer

import (
	"math"
	"math/rand"
	"slices"
	"testing"
)

// frameRef is Mask.Frame as it was before it skipped the pixels of rows
// whose two logits agree in sign (2026-12-02): the oracle of
// TestFrameMatchesReference.
func (m *Mask) frameRef(lb Letterbox, x1, y1, x2, y2 float32) FrameMask {
	first := func(v float32, n int) int { return min(max(int(math.Ceil(float64(v)-0.5)), 0), n) }
	fx0, fx1 := first(x1, lb.SrcW), first(x2, lb.SrcW)
	fy0, fy1 := first(y1, lb.SrcH), first(y2, lb.SrcH)
	fm := FrameMask{X0: fx0, Y0: fy0, W: max(fx1-fx0, 0), H: max(fy1-fy0, 0)}
	if fm.W == 0 || fm.H == 0 || m.W == 0 || m.H == 0 {
		fm.W, fm.H = 0, 0
		return fm
	}
	fm.Bits = make([]bool, fm.W*fm.H)
	// tap places a frame pixel's centre in the window: the cell before it
	// and the weight of the next.
	tap := func(f int, scale float64, pad int, cell float32, origin, grid, size int) (int, float32) {
		in := (float64(f)+0.5)*scale + float64(pad)
		u := min(max(in/float64(cell)-0.5, 0), float64(grid-1)) - float64(origin)
		u = min(max(u, 0), float64(size-1))
		i := min(int(u), size-1)
		return i, float32(u - float64(i))
	}
	rows := make([]int, fm.H)
	rowW := make([]float32, fm.H)
	for y := range rows {
		rows[y], rowW[y] = tap(fy0+y, lb.ScaleY, lb.PadY, m.CellH, m.Y0, m.GridH, m.H)
	}
	col := make([]float32, m.H)
	for x := 0; x < fm.W; x++ {
		c, f := tap(fx0+x, lb.ScaleX, lb.PadX, m.CellW, m.X0, m.GridW, m.W)
		c1 := min(c+1, m.W-1)
		for r := range col {
			col[r] = m.Logits[r*m.W+c]*(1-f) + m.Logits[r*m.W+c1]*f
		}
		bits := fm.Bits[x*fm.H : (x+1)*fm.H]
		for y, r := range rows {
			r1 := min(r+1, m.H-1)
			bits[y] = col[r]*(1-rowW[y])+col[r1]*rowW[y] > 0
		}
	}
	return fm
}

// TestFrameMatchesReference: the rasterised masks equal the reference's,
// pixel for pixel, for smooth and speckled logits, zeros, tiny values and
// NaN, boxes inside and across the frame.
func TestFrameMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	lb := FitLetterbox(1920, 1080, 640, 640, FitCentre)
	var scratch []bool
	for trial := 0; trial < 200; trial++ {
		m := &Mask{X0: r.Intn(100), Y0: r.Intn(100), W: 1 + r.Intn(60), H: 1 + r.Intn(60), GridW: 160, GridH: 160, CellW: 4, CellH: 4}
		m.Logits = make([]float32, m.W*m.H)
		for i := range m.Logits {
			switch k := trial % 4; {
			case k == 0: // speckled
				m.Logits[i] = r.Float32()*2 - 1
			case k == 1: // smooth: a blob
				x, y := float64(i%m.W)/float64(m.W)-0.5, float64(i/m.W)/float64(m.H)-0.5
				m.Logits[i] = float32(0.2 - x*x - y*y)
			case k == 2: // zeros, tiny values, NaN among them
				m.Logits[i] = []float32{0, 1e-30, -1e-30, 1e-21, 3, -3, float32(math.NaN())}[r.Intn(7)]
			default: // all positive
				m.Logits[i] = 0.5 + r.Float32()
			}
		}
		x1, y1 := r.Float32()*2100-100, r.Float32()*1200-100
		x2, y2 := x1+r.Float32()*1200, y1+r.Float32()*700
		want := m.frameRef(lb, x1, y1, x2, y2)
		got := m.Frame(lb, x1, y1, x2, y2)
		// Into a scratch buffer that earlier masks filled: the same.
		into := m.FrameInto(scratch, lb, x1, y1, x2, y2)
		if cap(into.Bits) > cap(scratch) {
			scratch = into.Bits
		}
		for _, g := range []FrameMask{got, into} {
			if g.X0 != want.X0 || g.Y0 != want.Y0 || g.W != want.W || g.H != want.H || !slices.Equal(g.Bits, want.Bits) {
				t.Fatalf("trial %d: mask at %d,%d %dx%d differs from the reference's", trial, g.X0, g.Y0, g.W, g.H)
			}
		}
		// Encoded without the pixels: the reference's runs and area.
		counts, area := m.EncodeFrame(lb, x1, y1, x2, y2)
		wantCounts, wantArea := want.Encode(lb.SrcW, lb.SrcH)
		if !slices.Equal(counts, wantCounts) || area != wantArea {
			t.Fatalf("trial %d: EncodeFrame gives %d runs and %d pixels, the reference %d and %d", trial, len(counts), area, len(wantCounts), wantArea)
		}
	}
}

// benchMask is the benchmarks' mask: a window of 90×60 prototype cells
// round a 1,000×600 box of a 1080p frame, its logits smooth (a blob, as a
// trained model gives) or speckled (as random weights give).
func benchMask(kind string) *Mask {
	r := rand.New(rand.NewSource(1))
	m := &Mask{X0: 40, Y0: 50, W: 90, H: 60, GridW: 160, GridH: 160, CellW: 4, CellH: 4}
	m.Logits = make([]float32, m.W*m.H)
	for i := range m.Logits {
		x, y := float64(i%m.W)/float64(m.W)-0.5, float64(i/m.W)/float64(m.H)-0.5
		m.Logits[i] = float32(0.15 - x*x - y*y)
		if kind == "speckled" {
			m.Logits[i] = r.Float32()*2 - 1
		}
	}
	return m
}

// BenchmarkMaskFrame rasterises one large mask in a 1080p frame (a
// 1,000×600 box), smooth as a trained model's or speckled as random
// weights make them.
func BenchmarkMaskFrame(b *testing.B) {
	lb := FitLetterbox(1920, 1080, 640, 640, FitCentre)
	for _, kind := range []string{"smooth", "speckled"} {
		b.Run(kind, func(b *testing.B) {
			m := benchMask(kind)
			for b.Loop() {
				m.Frame(lb, 500, 300, 1500, 900)
			}
		})
	}
}

// BenchmarkMaskExport is what an exporter does with each mask (a
// 1,000×600 box in a 1080p frame, smooth or speckled logits): rasterise
// into a scratch buffer, then count and encode the pixels (pixels), or
// encode the runs directly (runs, EncodeFrame).
func BenchmarkMaskExport(b *testing.B) {
	lb := FitLetterbox(1920, 1080, 640, 640, FitCentre)
	for _, kind := range []string{"smooth", "speckled"} {
		m := benchMask(kind)
		b.Run(kind+"/pixels", func(b *testing.B) {
			var scratch []bool
			for b.Loop() {
				fm := m.FrameInto(scratch, lb, 500, 300, 1500, 900)
				scratch = fm.Bits
				_, _ = fm.Encode(1920, 1080)
			}
		})
		b.Run(kind+"/runs", func(b *testing.B) {
			for b.Loop() {
				_, _ = m.EncodeFrame(lb, 500, 300, 1500, 900)
			}
		})
	}
}

// BenchmarkAttachMasks weighs the prototypes for 100 detections of a
// yolo11n-seg image (32 prototypes of 160×160), boxes of 200×150 input
// pixels: what the host does for each image of a seg model.
func BenchmarkAttachMasks(b *testing.B) {
	l := Layout{Head: HeadV8, D1: 4 + 80 + 32, D2: 8400, Classes: 80, Masks: 32, MaskH: 160, MaskW: 160, InputH: 640, InputW: 640}
	r := rand.New(rand.NewSource(2))
	out := make([]float32, l.D1*l.D2+l.protoValues())
	for i := range out {
		out[i] = r.Float32() - 0.5
	}
	dets := make([]Detection, 100)
	for i := range dets {
		x, y := r.Float32()*440, r.Float32()*490
		dets[i] = Detection{X1: x, Y1: y, X2: x + 200, Y2: y + 150, src: int32(1 + r.Intn(l.D2))}
	}
	for b.Loop() {
		l.attachMasks(out, dets)
	}
}
