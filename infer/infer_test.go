package infer

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

func ortLib(t testing.TB) string {
	t.Helper()
	lib, err := onnxtest.ORTLib()
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

func writeModel(t testing.TB, d onnxtest.Detector) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := d.Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestORTEngineExactOutputs(t *testing.T) {
	raw := []float32{1, 2, 3, 4, 5, 6}
	k := []float32{0, 1, 0, 0, 0, -2}
	for _, batch := range []int64{0, 2} {
		path := writeModel(t, onnxtest.Detector{Batch: batch, H: 8, W: 8, D1: 2, D2: 3, Raw: raw, K: k, Names: []string{"a"}})
		m, err := ReadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.Names, []string{"a"}) || m.Input != "images" || m.Output != "output0" || m.Opset != 17 {
			t.Fatalf("model %+v", m)
		}
		e, err := NewORT(m, 8, 8, ORTOptions{Lib: ortLib(t), Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Three images of constant value 0.25, 0.5 and 1.
		in := make([]float32, 3*3*64)
		for i := range in {
			in[i] = []float32{0.25, 0.5, 1}[i/(3*64)]
		}
		out, shape, err := e.Infer(context.Background(), in, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(shape, []int64{3, 2, 3}) {
			t.Fatalf("batch %d: shape %v", batch, shape)
		}
		for b, mean := range []float32{0.25, 0.5, 1} {
			for i := range raw {
				if got, want := out[b*6+i], raw[i]+mean*k[i]; math.Abs(float64(got-want)) > 1e-6 {
					t.Fatalf("batch %d image %d value %d: %v, want %v", batch, b, i, got, want)
				}
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestORTMissingLibrary(t *testing.T) {
	path := writeModel(t, onnxtest.Detector{H: 8, W: 8, D1: 1, D2: 6, Raw: make([]float32, 6)})
	m, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	notLib := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(notLib, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewORT(m, 8, 8, ORTOptions{Lib: notLib})
	if !errors.Is(err, ErrNoORT) || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("wrong library: %v", err)
	}
	_, err = FindORT(filepath.Join(t.TempDir(), "missing.so"))
	if !errors.Is(err, ErrNoORT) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing library: %v", err)
	}
}

func TestReadModelErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := onnxtest.Detector{H: 8, W: 8, D1: 1, D2: 6, Raw: make([]float32, 6)}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"truncated.onnx": good[:len(good)/2],
		"text.onnx":      []byte("this is not a model\n"),
		"empty.onnx":     {},
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadModel(p)
		if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadModel(filepath.Join(dir, "missing.onnx")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: %v", err)
	}
}

func TestInputSize(t *testing.T) {
	m := &Model{Path: "m.onnx", InputShape: []int64{-1, 3, -1, -1}, Metadata: map[string]string{}}
	if _, _, err := m.InputSize(0); err == nil {
		t.Error("dynamic size without --imgsz accepted")
	}
	if h, w, err := m.InputSize(320); err != nil || h != 320 || w != 320 {
		t.Errorf("imgsz 320: %d %d %v", h, w, err)
	}
	if _, _, err := m.InputSize(300); err == nil {
		t.Error("imgsz 300 (not a multiple of 32) accepted")
	}
	m.Metadata["imgsz"] = "[384, 640]"
	if h, w, err := m.InputSize(0); err != nil || h != 384 || w != 640 {
		t.Errorf("metadata imgsz: %d %d %v", h, w, err)
	}
	m.InputShape = []int64{1, 3, 480, 640}
	if h, w, _ := m.InputSize(320); h != 480 || w != 640 {
		t.Errorf("static shape ignored: %d %d", h, w)
	}
}

func TestParseNamesDict(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"{0: 'person', 1: 'bicycle'}", []string{"person", "bicycle"}, false},
		{`{1: "car", 0: 'it\'s'}`, []string{"it's", "car"}, false},
		{"{0: 'traffic light',\n 1: 'stop sign'}", []string{"traffic light", "stop sign"}, false},
		{"{}", []string{}, false},
		{"{0: 'a', 2: 'c'}", nil, true},
		{"{0: 'a', 0: 'b'}", nil, true},
		{"[0, 1]", nil, true},
		{"{0: person}", nil, true},
		{"{0: 'open", nil, true},
		{"{x: 'a'}", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseNamesDict(tt.in)
		if (err != nil) != tt.err || !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseNamesDict(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func FuzzParseNamesDict(f *testing.F) {
	f.Add("{0: 'person', 1: 'bicycle'}")
	f.Add(`{1: "car", 0: 'it\'s'}`)
	f.Add("{0: '")
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseNamesDict(s)
		if err == nil {
			again, err := ParseNamesDict(onnxtest.NamesDict(names))
			if err == nil && len(again) != len(names) {
				t.Fatalf("round trip of %q lost names", s)
			}
		}
	})
}

func TestLetterboxGeometry(t *testing.T) {
	tests := []struct {
		w, h, dw, dh       int
		scale              float64
		nw, nh, padX, padY int
	}{
		{1920, 1080, 640, 640, 1.0 / 3, 640, 360, 0, 140},
		{320, 240, 640, 640, 2, 640, 480, 0, 80},
		{240, 320, 640, 640, 2, 480, 640, 80, 0},
		{1000, 1000, 640, 640, 0.64, 640, 640, 0, 0},
		{641, 481, 640, 640, 640.0 / 641, 640, 480, 0, 80},
	}
	for _, tt := range tests {
		lb := FitLetterbox(tt.w, tt.h, tt.dw, tt.dh, FitCentre)
		if math.Abs(lb.ScaleX-tt.scale) > 1e-9 || lb.NewW != tt.nw || lb.NewH != tt.nh || lb.PadX != tt.padX || lb.PadY != tt.padY {
			t.Errorf("%dx%d: %+v", tt.w, tt.h, lb)
		}
	}
}

func TestLetterboxPixels(t *testing.T) {
	// A 4×2 frame: left half red, right half blue, into 8×8.
	w, h := 4, 2
	rgb := make([]byte, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := 3 * (y*w + x)
			if x < 2 {
				rgb[o] = 255
			} else {
				rgb[o+2] = 255
			}
		}
	}
	dst := make([]float32, 3*64)
	lb := LetterboxRGB(rgb, w, h, dst, 8, 8, Ultralytics)
	if lb.PadY != 2 || lb.NewH != 4 || lb.NewW != 8 {
		t.Fatalf("%+v", lb)
	}
	at := func(c, x, y int) float32 { return dst[c*64+y*8+x] }
	pad := float32(114) / 255
	for x := 0; x < 8; x++ {
		for _, y := range []int{0, 1, 6, 7} {
			if at(0, x, y) != pad || at(1, x, y) != pad || at(2, x, y) != pad {
				t.Fatalf("padding at (%d,%d) is not 114/255", x, y)
			}
		}
	}
	if at(0, 0, 3) != 1 || at(2, 0, 3) != 0 || at(0, 7, 4) != 0 || at(2, 7, 4) != 1 {
		t.Errorf("resized content wrong: left R %v B %v, right R %v B %v", at(0, 0, 3), at(2, 0, 3), at(0, 7, 4), at(2, 7, 4))
	}
	// The column on the colour boundary is a blend.
	if v := at(0, 3, 3); v <= 0 || v >= 1 {
		t.Errorf("boundary column red %v, want a blend", v)
	}
	x1, y1, x2, y2 := lb.ToFrame(0, 2, 8, 6)
	if x1 != 0 || y1 != 0 || x2 != 4 || y2 != 2 {
		t.Errorf("ToFrame of the whole picture: %v %v %v %v", x1, y1, x2, y2)
	}
	if x1, y1, _, _ := lb.ToFrame(-5, 0, 0, 0); x1 != 0 || y1 != 0 {
		t.Error("boxes must be clipped to the frame")
	}
}

// Hand-computed parity for each head layout: two overlapping boxes of class
// 0 (the weaker suppressed), one of class 1 overlapping them (kept, class-aware),
// one below the threshold.
func TestDecodeHeads(t *testing.T) {
	type box struct{ cx, cy, w, h, s0, s1 float32 }
	boxes := []box{
		{100, 100, 40, 40, 0.9, 0.1},  // kept: class 0, (80,80)-(120,120)
		{102, 100, 40, 40, 0.8, 0.05}, // IoU 0.905 with the first: suppressed
		{101, 101, 40, 40, 0.2, 0.7},  // class 1: kept
		{300, 300, 10, 10, 0.1, 0.2},  // below 0.25
	}
	want := []Detection{
		{Class: 0, Score: 0.9, X1: 80, Y1: 80, X2: 120, Y2: 120},
		{Class: 1, Score: 0.7, X1: 81, Y1: 81, X2: 121, Y2: 121},
	}
	opts := PostOptions{Conf: 0.25, IoU: 0.45}
	n := len(boxes)

	v8 := make([]float32, 6*n) // [4+2, N]
	for a, b := range boxes {
		for r, v := range []float32{b.cx, b.cy, b.w, b.h, b.s0, b.s1} {
			v8[r*n+a] = v
		}
	}
	v8l := Layout{Head: HeadV8, D1: 6, D2: n, Classes: 2}
	if got := v8l.Decode(v8, opts, nil); !sameDetections(got, want) {
		t.Errorf("v8: %+v", got)
	}

	v5 := make([]float32, 0, n*7) // [N, 5+2], objectness 1 so scores match
	for _, b := range boxes {
		v5 = append(v5, b.cx, b.cy, b.w, b.h, 1, b.s0, b.s1)
	}
	v5l := Layout{Head: HeadV5, D1: n, D2: 7, Classes: 2}
	if got := v5l.Decode(v5, opts, nil); !sameDetections(got, want) {
		t.Errorf("v5: %+v", got)
	}
	// Objectness multiplies: box 0 drops to 0.5 × 0.9 = 0.45, so box 1
	// (0.8) now leads class 0 and suppresses it; box 2 gives 0.5 × 0.7.
	v5[4], v5[18] = 0.5, 0.5
	got := v5l.Decode(v5, opts, nil)
	wantObj := []Detection{
		{Class: 0, Score: 0.8, X1: 82, Y1: 80, X2: 122, Y2: 120},
		{Class: 1, Score: 0.35, X1: 81, Y1: 81, X2: 121, Y2: 121},
	}
	if !sameDetections(got, wantObj) {
		t.Errorf("v5 objectness: %+v", got)
	}

	e2e := []float32{80, 80, 120, 120, 0.9, 0, 81, 81, 121, 121, 0.7, 1, 0, 0, 5, 5, 0.1, 3}
	if got := (Layout{Head: HeadE2E, D1: 3, D2: 6}).Decode(e2e, opts, nil); !sameDetections(got, want) {
		t.Errorf("e2e: %+v", got)
	}

	agn := v8l.Decode(v8, PostOptions{Conf: 0.25, IoU: 0.45, ClassAgnostic: true}, nil)
	if len(agn) != 1 {
		t.Errorf("class-agnostic NMS kept %d boxes, want 1", len(agn))
	}
	if got := v8l.Decode(v8, PostOptions{Conf: 0.25, IoU: 0.45, MaxDet: 1}, nil); len(got) != 1 || got[0].Score != 0.9 {
		t.Errorf("max det 1: %+v", got)
	}
}

func sameDetections(a, b []Detection) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		d, e := a[i], b[i]
		if d.Class != e.Class || math.Abs(float64(d.Score-e.Score)) > 1e-6 ||
			math.Abs(float64(d.X1-e.X1)) > 1e-4 || math.Abs(float64(d.Y1-e.Y1)) > 1e-4 ||
			math.Abs(float64(d.X2-e.X2)) > 1e-4 || math.Abs(float64(d.Y2-e.Y2)) > 1e-4 {
			return false
		}
	}
	return true
}

func TestDetectHead(t *testing.T) {
	tests := []struct {
		d1, d2, classes, size int
		want                  Head
		err                   bool
	}{
		{84, 8400, 80, 640, HeadV8, false},
		{84, 8400, 0, 640, HeadV8, false},
		{25200, 85, 80, 640, HeadV5, false},
		{25200, 85, 0, 640, HeadV5, false},
		{300, 6, 80, 640, HeadE2E, false},
		{300, 6, 0, 640, HeadE2E, false},
		{6, 8400, 2, 640, HeadV8, false},
		{25200, 6, 1, 640, HeadV5, false},
		{3549, 85, 80, 416, HeadYOLOX, false}, // YOLOX-Nano: one row a cell
		{3549, 85, 0, 416, HeadYOLOX, false},
		{8400, 85, 0, 640, HeadYOLOX, false},
		{300, 84, 80, 640, HeadDETR, false}, // RT-DETR
		{300, 84, 0, 640, HeadDETR, false},
		{100, 96, 0, 640, HeadDETR, false},
		{300, 369, 365, 640, HeadDETR, false}, // Objects365: more columns than queries
		{252, 85, 0, 64, HeadV5, false},       // three anchors a cell at 64: not queries
		{5, 5, 0, 640, 0, true},
	}
	for _, tt := range tests {
		got, err := detectHead(tt.d1, tt.d2, tt.classes, anchorFreeCells(tt.size, tt.size, nil))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("detectHead(%d, %d, %d, %d) = %v, %v; want %v", tt.d1, tt.d2, tt.classes, tt.size, got, err, tt.want)
		}
	}
	for _, s := range []string{"v5", "v8", "v11", "e2e", "v10", "auto", "yolox", "detr", "rt-detr", "YOLO26"} {
		if _, err := ParseHead(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseHead("v3"); err == nil {
		t.Error("v3 accepted")
	}
}

func BenchmarkLetterbox1080p(b *testing.B) {
	rgb := make([]byte, 3*1920*1080)
	for i := range rgb {
		rgb[i] = byte(i)
	}
	dst := make([]float32, 3*640*640)
	b.SetBytes(int64(len(rgb)))
	for i := 0; i < b.N; i++ {
		LetterboxRGB(rgb, 1920, 1080, dst, 640, 640, Ultralytics)
	}
}
