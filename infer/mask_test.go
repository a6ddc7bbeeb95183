package infer

import (
	"context"
	"math/rand"
	"slices"
	"testing"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// segModel is a segmentation detector shaped as Ultralytics exports one
// (outputs of symbolic sizes, task metadata): a 64×64 input, one class, two
// mask prototypes on a 16×16 grid. Anchor 0 scores 0.9 with box 8..32 and
// takes prototype 0, positive on the grid's left four columns (input x
// below 16); anchor 1 scores 0.8 with box 36..52 and takes prototype 1,
// positive everywhere.
func segModel(t *testing.T) string {
	const anchors, rows = 84, 4 + 1 + 2
	raw := make([]float32, rows*anchors)
	set := func(a int, v ...float32) {
		for r, x := range v {
			raw[r*anchors+a] = x
		}
	}
	set(0, 20, 20, 24, 24, 0.9, 1, 0)
	set(1, 44, 44, 16, 16, 0.8, 0, 1)
	protos := make([]float32, 2*16*16)
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			protos[y*16+x] = -1
			if x < 4 {
				protos[y*16+x] = 1
			}
			protos[256+y*16+x] = 1
		}
	}
	return writeModel(t, onnxtest.Detector{H: 64, W: 64, D1: rows, D2: anchors, Raw: raw, Names: []string{"thing"},
		Protos: protos, ProtoShape: [3]int64{2, 16, 16}, Symbolic: true, Metadata: map[string]string{"task": "segment"}})
}

// decodeRLE turns COCO's uncompressed counts over a w×h frame back into
// pixels, column by column, as pycocotools does.
func decodeRLE(t *testing.T, counts []int32, w, h int) []bool {
	t.Helper()
	px := make([]bool, 0, w*h)
	for i, c := range counts {
		if c < 0 || (i > 0 && c == 0) {
			t.Fatalf("run %d of length %d", i, c)
		}
		for j := int32(0); j < c; j++ {
			px = append(px, i%2 == 1)
		}
	}
	if len(px) != w*h {
		t.Fatalf("runs cover %d pixels of %d", len(px), w*h)
	}
	return px
}

func TestSegmentation(t *testing.T) {
	m, err := ReadModel(segModel(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Masks.Name != "output1" || m.Masks.Shape != [3]int64{2, -1, -1} {
		t.Fatalf("masks %+v", m.Masks)
	}
	e, err := NewORT(m, 64, 64, ORTOptions{Lib: ortLib(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: 64, W: 64, Names: 1, Masks: m.Masks, Task: "segment"})
	if err != nil || l.Head != HeadV8 || l.Classes != 1 || l.Masks != 2 || l.MaskH != 16 || l.String() != "v8/seg2" {
		t.Fatalf("layout %v (%+v), %v", l, l, err)
	}
	out, shape, err := e.Infer(context.Background(), make([]float32, 2*3*64*64), 2)
	if err != nil || !l.Fits(shape) {
		t.Fatalf("shape %v, %v", shape, err)
	}
	res := l.DecodeBatch(out, 2, PostOptions{Conf: 0.25, IoU: 0.45})
	// The frame is 128×128: model pixels are half frame pixels.
	lb := FitLetterbox(128, 128, 64, 64, FitCentre)
	for i, dets := range res {
		if len(dets) != 2 || dets[0].Mask == nil || dets[1].Mask == nil {
			t.Fatalf("image %d: %+v", i, dets)
		}
		for k, want := range []struct {
			x0, y0, w, h int
			area         int64
		}{
			{16, 16, 48, 48, 16 * 48}, // box 16..64; the mask left of frame x 32
			{72, 72, 32, 32, 32 * 32}, // box 72..104, all of it
		} {
			d := dets[k]
			x1, y1, x2, y2 := lb.ToFrame(d.X1, d.Y1, d.X2, d.Y2)
			fm := d.Mask.Frame(lb, x1, y1, x2, y2)
			if fm.X0 != want.x0 || fm.Y0 != want.y0 || fm.W != want.w || fm.H != want.h || fm.Area() != want.area {
				t.Errorf("image %d detection %d: mask at %d,%d %dx%d of area %d, want %+v", i, k, fm.X0, fm.Y0, fm.W, fm.H, fm.Area(), want)
			}
			px := decodeRLE(t, fm.RLE(128, 128), 128, 128)
			for x := 0; x < 128; x++ {
				for y := 0; y < 128; y++ {
					in := x >= fm.X0 && x < fm.X0+fm.W && y >= fm.Y0 && y < fm.Y0+fm.H && fm.Bits[(x-fm.X0)*fm.H+y-fm.Y0]
					if px[x*128+y] != in {
						t.Fatalf("detection %d: RLE pixel %d,%d is %v, the mask's %v", k, x, y, px[x*128+y], in)
					}
				}
			}
		}
		if x := dets[0].Mask; x.Frame(lb, 16, 16, 64, 64).Bits[15*48] != true || x.Frame(lb, 16, 16, 64, 64).Bits[16*48] != false {
			t.Errorf("the mask's edge is not at frame x 32")
		}
	}
}

// TestRLE checks the run-length encoding of random masks placed anywhere
// in a frame, edges included, against the pixels.
func TestRLE(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		w, h := 1+r.Intn(9), 1+r.Intn(9)
		fm := FrameMask{X0: r.Intn(w), Y0: r.Intn(h)}
		fm.W, fm.H = r.Intn(w-fm.X0+1), r.Intn(h-fm.Y0+1)
		fm.Bits = make([]bool, fm.W*fm.H)
		for j := range fm.Bits {
			fm.Bits[j] = r.Intn(2) == 0
		}
		px := decodeRLE(t, fm.RLE(w, h), w, h)
		n := int64(0)
		for x := 0; x < w; x++ {
			for y := 0; y < h; y++ {
				in := x >= fm.X0 && x < fm.X0+fm.W && y >= fm.Y0 && y < fm.Y0+fm.H && fm.Bits[(x-fm.X0)*fm.H+y-fm.Y0]
				if px[x*h+y] != in {
					t.Fatalf("case %d (%dx%d, %+v): pixel %d,%d", i, w, h, fm, x, y)
				}
				if in {
					n++
				}
			}
		}
		if fm.Area() != n {
			t.Fatalf("case %d: area %d, %d pixels", i, fm.Area(), n)
		}
		if counts, area := fm.Encode(w, h); area != n || !slices.Equal(counts, fm.RLE(w, h)) {
			t.Fatalf("case %d: Encode's area %d (%d pixels) or runs %v differ from RLE's", i, area, n, counts)
		}
	}
}

// TestEndToEndSegmentation: YOLO26's end-to-end seg output [B, 300, 6+M]
// with prototypes joined gives its detections masks.
func TestEndToEndSegmentation(t *testing.T) {
	const q, m = 300, 2
	out := make([]float32, q*(6+m)+m*16*16)
	copy(out, []float32{8, 8, 32, 32, 0.9, 3, 1, 0})
	for i := q*(6+m) + 16*16; i < len(out); i++ {
		out[i] = 1 // prototype 1: positive everywhere; 0 negative
	}
	for i := q * (6 + m); i < q*(6+m)+16*16; i++ {
		out[i] = -1
	}
	e := &constEngine{out: out, shape: []int64{1, 1, int64(len(out))}}
	mo := MaskOutput{Name: "output1", Shape: [3]int64{m, -1, -1}, Head: []int64{-1, -1, -1}}
	l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: 64, W: 64, Names: 4, Masks: mo})
	if err != nil || l.Head != HeadE2E || l.Masks != m || l.D1 != q || l.D2 != 6+m {
		t.Fatalf("layout %+v, %v", l, err)
	}
	got := l.Decode(out, PostOptions{Conf: 0.25}, nil)
	lb := FitLetterbox(64, 64, 64, 64, FitCentre)
	if len(got) != 1 || got[0].Class != 3 || got[0].Mask == nil || got[0].Mask.Frame(lb, 8, 8, 32, 32).Area() != 0 {
		t.Fatalf("coefficients (1, 0) on a negative prototype: %+v", got)
	}
	out[6], out[7] = 0, 1
	got = l.Decode(out, PostOptions{Conf: 0.25}, nil)
	if a := got[0].Mask.Frame(lb, 8, 8, 32, 32).Area(); a != 24*24 {
		t.Fatalf("coefficients (0, 1): area %d, want %d", a, 24*24)
	}
}

// TestCutSegmentation: a YOLO26-seg export whose top-k is in the graph is
// cut before it, as detectors are, and keeps its prototypes.
func TestCutSegmentation(t *testing.T) {
	const anchors, cols = 84, 4 + 2 + 2
	raw := make([]float32, anchors*cols)
	copy(raw[5*cols:], []float32{8, 8, 32, 32, 0.1, 0.7, 0, 1})
	protos := make([]float32, 2*16*16)
	for i := 256; i < len(protos); i++ {
		protos[i] = 1
	}
	m, err := ReadModel(writeModel(t, onnxtest.Detector{H: 64, W: 64, D1: anchors, D2: cols, Raw: raw, TopK: 10, Names: []string{"a", "b"},
		Protos: protos, ProtoShape: [3]int64{2, 16, 16}, Metadata: map[string]string{"task": "segment"}}))
	if err != nil || m.Cut == "" || m.Head != HeadOne2One || m.Masks.Name != "output1" {
		t.Fatalf("model %+v, %v", m, err)
	}
	e, err := NewORT(m, 64, 64, ORTOptions{Lib: ortLib(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: 64, W: 64, Names: 2, Head: m.Head, Masks: m.Masks})
	if err != nil || l.Head != HeadOne2One || l.Classes != 2 || l.Masks != 2 || l.D1 != anchors || l.D2 != cols {
		t.Fatalf("layout %+v, %v", l, err)
	}
	out, _, err := e.Infer(context.Background(), make([]float32, 3*64*64), 1)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Decode(out, PostOptions{Conf: 0.25}, nil)
	lb := FitLetterbox(64, 64, 64, 64, FitCentre)
	if len(got) != 1 || got[0].Class != 1 || got[0].Mask == nil || got[0].Mask.Frame(lb, 8, 8, 32, 32).Area() != 24*24 {
		t.Fatalf("%+v", got)
	}
}
