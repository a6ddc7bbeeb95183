package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// yoloxGrid returns a YOLOX raw output for an h×w input with every cell's
// objectness 0.01 except the cells in objects, which carry a box (in
// model pixels) of class 1 and the given score (objectness 0.9). With
// decoded set the rows hold pixel boxes, as YOLOX exports with its decoding
// in the graph write them.
func yoloxGrid(h, w, nc int, decoded bool, objects map[int]Detection) []float32 {
	d2 := 5 + nc
	out := make([]float32, anchorFreeCells(h, w, nil)*d2)
	a := 0
	for _, s := range defaultStrides {
		gh, gw, fs := (h+s-1)/s, (w+s-1)/s, float32(s)
		for gy := 0; gy < gh; gy++ {
			for gx := 0; gx < gw; gx++ {
				row := out[a*d2 : (a+1)*d2]
				row[4] = 0.01
				row[0], row[1] = 0.5, 0.5
				if decoded {
					row[0], row[1], row[2], row[3] = (float32(gx)+0.5)*fs, (float32(gy)+0.5)*fs, fs, fs
				}
				if d, ok := objects[a]; ok {
					cx, cy := (d.X1+d.X2)/2, (d.Y1+d.Y2)/2
					row[0], row[1] = cx/fs-float32(gx), cy/fs-float32(gy)
					row[2], row[3] = float32(math.Log(float64((d.X2-d.X1)/fs))), float32(math.Log(float64((d.Y2-d.Y1)/fs)))
					row[4], row[5+1] = 0.9, d.Score/0.9
				}
				a++
			}
		}
	}
	return out
}

// TestYOLOX: YOLOX-Nano's shape ([1, 3549, 85] at 416; here [1, 189, 85]
// at 96) is detected as YOLOX from the row count, decoded on its grids
// with exp sizes and objectness × class, through ONNX Runtime; the same
// shape with pixel boxes (decoding in the graph) is read as YOLOv5's
// layout, and --head v5 still forces it.
func TestYOLOX(t *testing.T) {
	const size = 96 // grids 12×12, 6×6, 3×3: 189 cells
	// Cell 13 is (1, 1) of stride 8; cell 144+7 is (1, 1) of stride 16;
	// cell 180+4 is (1, 1) of stride 32.
	objects := map[int]Detection{
		13:      {X1: 4, Y1: 6, X2: 20, Y2: 18, Score: 0.8},
		144 + 7: {X1: 10, Y1: 12, X2: 40, Y2: 60, Score: 0.6},
		180 + 4: {X1: 20, Y1: 20, X2: 80, Y2: 90, Score: 0.45},
	}
	raw := yoloxGrid(size, size, 80, false, objects)
	decoded := yoloxGrid(size, size, 80, true, nil)
	for _, tt := range []struct {
		name string
		out  []float32
		head Head
		want Head
	}{
		{"raw", raw, 0, HeadYOLOX},
		{"decoded", decoded, 0, HeadV5},
		{"raw forced v5", raw, HeadV5, HeadV5},
	} {
		path := writeModel(t, onnxtest.Detector{Batch: 1, H: size, W: size, D1: len(tt.out) / 85, D2: 85, Raw: tt.out})
		m, err := ReadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewORT(m, size, size, ORTOptions{Lib: ortLib(t), Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: size, W: size, Head: tt.head, Input: YOLOX})
		if err != nil || l.Head != tt.want || l.Classes != 80 {
			t.Fatalf("%s: %+v, %v; want a %v layout of 80 classes", tt.name, l, err, tt.want)
		}
		if tt.want != HeadYOLOX {
			e.Close()
			continue
		}
		in := make([]float32, 2*3*size*size)
		out, _, err := e.Infer(context.Background(), in, 2)
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := l.Decode(out[:len(raw)], PostOptions{Conf: 0.25, IoU: 0.45}, nil)
		want := []Detection{
			{Class: 1, Score: 0.8, X1: 4, Y1: 6, X2: 20, Y2: 18},
			{Class: 1, Score: 0.6, X1: 10, Y1: 12, X2: 40, Y2: 60},
			{Class: 1, Score: 0.45, X1: 20, Y1: 20, X2: 80, Y2: 90},
		}
		if !sameDetections(got, want) {
			t.Errorf("%s: decoded %+v, want %+v", tt.name, got, want)
		}
	}
}

// TestDETR decodes DETR-style outputs: normalised cx, cy, w, h, then class
// probabilities, logits of sigmoids, or logits of a softmax with a last
// "no object" class; overlapping queries of one class are all kept (no
// NMS), best first, up to max-det.
func TestDETR(t *testing.T) {
	const size = 100
	type query struct {
		cx, cy, w, h float32
		class        int
		p            float32
	}
	queries := []query{
		{0.5, 0.5, 0.2, 0.4, 2, 0.7},
		{0.51, 0.5, 0.2, 0.4, 2, 0.9}, // overlaps the first: kept all the same
		{0.1, 0.1, 0.1, 0.1, 0, 0.3},
		{0.8, 0.8, 0.1, 0.1, 1, 0.1}, // below conf
	}
	want := []Detection{
		{Class: 2, Score: 0.9, X1: 41, Y1: 30, X2: 61, Y2: 70},
		{Class: 2, Score: 0.7, X1: 40, Y1: 30, X2: 60, Y2: 70},
		{Class: 0, Score: 0.3, X1: 5, Y1: 5, X2: 15, Y2: 15},
	}
	const nc = 3
	logit := func(p float32) float32 { return float32(math.Log(float64(p / (1 - p)))) }
	for _, tt := range []struct {
		scores Scores
		names  int
		cols   int
		value  func(q query, c int) float32
	}{
		{ScoresProb, 0, nc, func(q query, c int) float32 { return map[bool]float32{true: q.p, false: 0.01}[c == q.class] }},
		{ScoresSigmoid, 0, nc, func(q query, c int) float32 {
			return map[bool]float32{true: logit(q.p), false: -6}[c == q.class]
		}},
		// softmax over [class logits..., no object]: the class gets p.
		{ScoresSoftmax, nc, nc + 1, func(q query, c int) float32 {
			switch {
			case c == q.class:
				return float32(math.Log(float64(q.p)))
			case c == nc:
				return float32(math.Log(float64(1 - q.p)))
			}
			return -30
		}},
	} {
		d2 := 4 + tt.cols
		out := make([]float32, len(queries)*d2)
		for i, q := range queries {
			row := out[i*d2:]
			row[0], row[1], row[2], row[3] = q.cx, q.cy, q.w, q.h
			for c := 0; c < tt.cols; c++ {
				row[4+c] = tt.value(q, c)
			}
		}
		e := &constEngine{out: out, shape: []int64{1, int64(len(queries)), int64(d2)}}
		l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: size, W: size, Names: tt.names, Head: HeadDETR, Input: Ultralytics})
		if err != nil || l.Scores != tt.scores || l.Classes != nc {
			t.Fatalf("%v: layout %+v, %v; want scores %v and %d classes", tt.scores, l, err, tt.scores, nc)
		}
		got := l.Decode(out, PostOptions{Conf: 0.25, IoU: 0.1}, nil)
		if !sameDetections(got, want) {
			t.Errorf("%v: %+v, want %+v", tt.scores, got, want)
		}
		if got := l.Decode(out, PostOptions{Conf: 0.25, MaxDet: 1}, nil); len(got) != 1 || got[0].Score < 0.89 {
			t.Errorf("%v: max det 1: %+v", tt.scores, got)
		}
	}
}

// constEngine returns the same output for every image.
type constEngine struct {
	out   []float32
	shape []int64
}

func (e *constEngine) Infer(ctx context.Context, input []float32, n int) ([]float32, []int64, error) {
	var out []float32
	for i := 0; i < n; i++ {
		out = append(out, e.out...)
	}
	shape := append([]int64{int64(n)}, e.shape[1:]...)
	return out, shape, nil
}
func (e *constEngine) Name() string { return "const" }
func (e *constEngine) Close() error { return nil }

// TestBoxCheckCatchesMisreadLayouts: layouts read wrongly give boxes that
// a BoxCheck refuses (a DETR output read as YOLOv5's: sub-pixel boxes; a
// YOLOX raw output forced to v5: boxes at the origin), while the right
// reading of the same outputs passes.
func TestBoxCheckCatchesMisreadLayouts(t *testing.T) {
	const size = 96
	objects := map[int]Detection{}
	for a := 0; a < 40; a++ {
		gx, gy := a%12, a/12
		objects[a] = Detection{X1: float32(gx * 8), Y1: float32(gy * 8), X2: float32(gx*8 + 16), Y2: float32(gy*8 + 12), Score: 0.8}
	}
	raw := yoloxGrid(size, size, 80, false, objects)
	detr := make([]float32, 300*84)
	for q := 0; q < 300; q++ {
		row := detr[q*84:]
		row[0], row[1], row[2], row[3] = float32(q%10)/10+0.05, float32(q/30)/10+0.05, 0.1, 0.1
		row[4], row[4+q%80] = 0.9, 0.9
	}
	for _, tt := range []struct {
		name string
		head Head
		out  []float32
		d1   int
		bad  bool
	}{
		{"yolox as yolox", HeadYOLOX, raw, 189, false},
		{"yolox as v5", HeadV5, raw, 189, true},
		{"detr as detr", HeadDETR, detr, 300, false},
		{"detr as v5", HeadV5, detr, 300, true},
	} {
		d2 := len(tt.out) / tt.d1
		l, err := NewLayout(tt.head, ScoresProb, tt.d1, d2, size, size)
		if err != nil {
			t.Fatal(err)
		}
		c := BoxCheck{Layout: l}
		dets := l.Decode(tt.out, PostOptions{Conf: 0.25, IoU: 1, MaxDet: 300}, nil)
		var cerr error
		for i := 0; i < 4 && cerr == nil; i++ {
			cerr = c.Add(dets)
		}
		if tt.bad != (cerr != nil) || (cerr != nil && (!errors.Is(cerr, ErrBadModel) || !strings.Contains(cerr.Error(), "--head"))) {
			t.Errorf("%s: %d boxes, check says %v", tt.name, len(dets), cerr)
		}
	}
	var few BoxCheck
	few.Layout = Layout{InputW: size, InputH: size}
	if err := few.Add([]Detection{{X1: 0, Y1: 0, X2: 0.1, Y2: 0.1}}); err != nil {
		t.Errorf("one box judged: %v", err)
	}
}

// TestYOLOXStrides: a YOLOX-P6 output (grids of strides 8 to 64) is
// detected and decoded with the strides given, and refused without them.
func TestYOLOXStrides(t *testing.T) {
	const size = 128
	strides := []int{8, 16, 32, 64}
	cells := anchorFreeCells(size, size, strides) // 256+64+16+4
	out := make([]float32, cells*6)
	// The one cell of stride 64 at (1, 1): the last row.
	row := out[(cells-1)*6:]
	row[0], row[1], row[2], row[3], row[4], row[5] = 0.5, 0.5, float32(math.Log(0.5)), 0, 0.9, 0.9
	e := &constEngine{out: out, shape: []int64{1, int64(cells), 6}}
	l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: size, W: size, Names: 1, Strides: strides})
	if err != nil || l.Head != HeadYOLOX || l.String() != "yolox/strides=[8 16 32 64]" {
		t.Fatalf("layout %v (%+v), %v", l, l, err)
	}
	got := l.Decode(out, PostOptions{Conf: 0.25, IoU: 0.5}, nil)
	want := []Detection{{Class: 0, Score: 0.81, X1: 96 - 16, Y1: 96 - 32, X2: 96 + 16, Y2: 96 + 32}}
	if !sameDetections(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
	if _, err := ProbeLayout(context.Background(), e, ProbeOptions{H: size, W: size, Names: 1, Head: HeadYOLOX}); err == nil || !strings.Contains(err.Error(), "strides [8 16 32]") {
		t.Errorf("default strides: %v", err)
	}
}

// TestDETRTwoOutputs: boxes [B, Q, 4] and logits [B, Q, C] as separate
// outputs (logits listed first, as Hugging Face exports them) are joined
// into one [B, Q, 4+C], boxes first, read as a DETR head with sigmoid
// scores, and decoded through ONNX Runtime.
func TestDETRTwoOutputs(t *testing.T) {
	for _, nc := range []int{3, 2} { // two classes: six columns, as an end-to-end head has
		testDETRTwoOutputs(t, nc)
	}
}

func testDETRTwoOutputs(t *testing.T, nc int) {
	const size, q = 64, 5
	raw := make([]float32, q*(4+nc))
	for i := range raw {
		raw[i] = -5 // logits of nothing
	}
	row := raw[2*(4+nc):]
	row[0], row[1], row[2], row[3] = 0.5, 0.25, 0.5, 0.25 // 16-48 × 8-24 px
	row[4+1] = 2                                          // class 1, sigmoid 0.881
	path := writeModel(t, onnxtest.Detector{H: size, W: size, D1: q, D2: 4 + nc, Raw: raw, BoxColumns: 4, Names: []string{"a", "b", "c"}[:nc]})
	m, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Joined) != 2 || m.Joined[0] != "pred_boxes" || m.Joined[1] != "logits" || m.OutputShape[2] != int64(4+nc) || m.Head != HeadDETR {
		t.Fatalf("joined %v, output %s %v", m.Joined, m.Output, m.OutputShape)
	}
	e, err := NewORT(m, size, size, ORTOptions{Lib: ortLib(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: size, W: size, Names: len(m.Names), Head: m.Head, Input: Ultralytics})
	if err != nil || l.Head != HeadDETR || l.Scores != ScoresSigmoid || l.Classes != nc {
		t.Fatalf("layout %+v, %v", l, err)
	}
	out, _, err := e.Infer(context.Background(), make([]float32, 2*3*size*size), 2)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Decode(out[q*(4+nc):], PostOptions{Conf: 0.25}, nil)
	want := []Detection{{Class: 1, Score: float32(1 / (1 + math.Exp(-2))), X1: 16, Y1: 8, X2: 48, Y2: 24}}
	if !sameDetections(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
}

// TestEndToEndTopKCut: a model with an end-to-end export's top-k in its
// graph is cut before it (Model.Cut) and read as a one2one head, whose
// decode gives the rows the graph gives, in their order, ties included;
// the cut model compiles for the GPU engine, the uncut one does not.
func TestEndToEndTopKCut(t *testing.T) {
	const size, n, nc, k = 64, 30, 4, 7
	r := rand.New(rand.NewSource(4))
	raw := make([]float32, n*(4+nc))
	for a := 0; a < n; a++ {
		row := raw[a*(4+nc):]
		row[0], row[1] = r.Float32()*40, r.Float32()*40
		row[2], row[3] = row[0]+5+r.Float32()*20, row[1]+5+r.Float32()*20
		for c := 0; c < nc; c++ {
			row[4+c] = float32(r.Intn(20)) / 20 // ties on purpose
		}
	}
	d := onnxtest.Detector{H: size, W: size, D1: n, D2: 4 + nc, Raw: raw, TopK: k, ConvMean: true}
	path := writeModel(t, d)
	m, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cut != "preds" || m.Head != HeadOne2One {
		t.Fatalf("cut %q, head %v", m.Cut, m.Head)
	}
	full := *m
	if full.onnx, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	full.Output = "output0"
	lib := ortLib(t)
	run := func(m *Model) ([]float32, []int64) {
		e, err := NewORT(m, size, size, ORTOptions{Lib: lib, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		out, shape, err := e.Infer(context.Background(), make([]float32, 3*size*size), 1)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), out...), shape
	}
	cut, cs := run(m)
	want, ws := run(&full)
	if fmt.Sprint(cs) != fmt.Sprint([]int64{1, n, 4 + nc}) || fmt.Sprint(ws) != fmt.Sprint([]int64{1, k, 6}) {
		t.Fatalf("shapes: cut %v, full %v", cs, ws)
	}
	l, err := NewLayout(HeadOne2One, ScoresProb, n, 4+nc, size, size)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Decode(cut, PostOptions{MaxDet: k}, nil)
	if len(got) != k {
		t.Fatalf("%d rows, want %d", len(got), k)
	}
	for i, g := range got {
		row := want[i*6 : (i+1)*6]
		if g.X1 != row[0] || g.Y1 != row[1] || g.X2 != row[2] || g.Y2 != row[3] || g.Score != row[4] || float32(g.Class) != row[5] {
			t.Errorf("row %d: %+v, the graph's %v", i, g, row)
		}
	}
	if _, err := GPUMemoryPerImage(m, size, size); err != nil {
		t.Errorf("cut model does not compile: %v", err)
	}
	if _, err := GPUMemoryPerImage(&full, size, size); err == nil {
		t.Error("the graph's TopK compiled: the test no longer shows the cut's use")
	}
}

// TestDecodeDropsNonFinite: boxes a model's overflow makes (NaN, ±Inf)
// are no detections; finite ones beside them stay.
func TestDecodeDropsNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	out := []float32{
		10, 10, 20, 20, 0.9, 0,
		nan, 10, 20, 20, 0.8, 0,
		10, 10, inf, 20, 0.7, 1,
		10, 10, 20, 20, nan, 1,
		30, 30, 40, 40, 0.6, 1,
	}
	got := (Layout{Head: HeadE2E, D1: 5, D2: 6}).Decode(out, PostOptions{Conf: 0.25}, nil)
	want := []Detection{{Class: 0, Score: 0.9, X1: 10, Y1: 10, X2: 20, Y2: 20}, {Class: 1, Score: 0.6, X1: 30, Y1: 30, X2: 40, Y2: 40}}
	if !sameDetections(got, want) {
		t.Errorf("%+v, want %+v", got, want)
	}
}

// TestEndToEndPose: YOLO26's end-to-end pose output ([B, 300, 6+17×3]:
// box, score, class, points) and a one2one head with a pose's points after
// the class scores give each detection its keypoints.
func TestEndToEndPose(t *testing.T) {
	const q, k = 300, 17
	e2e := make([]float32, q*(6+3*k))
	row := e2e[:6+3*k]
	copy(row, []float32{10, 20, 50, 80, 0.9, 0})
	for i := 0; i < k; i++ {
		row[6+3*i], row[6+3*i+1], row[6+3*i+2] = float32(11+i), 30, 0.8
	}
	e := &constEngine{out: e2e, shape: []int64{1, q, 6 + 3*k}}
	l, err := ProbeLayout(context.Background(), e, ProbeOptions{H: 640, W: 640, Names: 1, KeypointShape: [2]int{k, 3}})
	if err != nil || l.Head != HeadE2E || l.Keypoints != k || l.String() != "e2e/17x3" {
		t.Fatalf("layout %v (%+v), %v", l, l, err)
	}
	got := l.Decode(e2e, PostOptions{Conf: 0.25}, nil)
	if len(got) != 1 || len(got[0].Keypoints) != k || got[0].Keypoints[16] != (Keypoint{X: 27, Y: 30, Score: 0.8}) {
		t.Fatalf("%+v", got)
	}

	const n, nc = 5, 2
	o2o := make([]float32, n*(4+nc+3*k))
	r := o2o[3*(4+nc+3*k) : 4*(4+nc+3*k)]
	copy(r, []float32{1, 2, 3, 4, 0.1, 0.7})
	r[4+nc], r[4+nc+1], r[4+nc+2] = 5, 6, 0.5
	e = &constEngine{out: o2o, shape: []int64{1, n, int64(4 + nc + 3*k)}}
	l, err = ProbeLayout(context.Background(), e, ProbeOptions{H: 640, W: 640, Names: nc, Head: HeadOne2One, KeypointShape: [2]int{k, 3}})
	if err != nil || l.Classes != nc || l.Keypoints != k {
		t.Fatalf("one2one layout %+v, %v", l, err)
	}
	got = l.Decode(o2o, PostOptions{Conf: 0.25}, nil)
	if len(got) != 1 || got[0].Class != 1 || got[0].Score != 0.7 || got[0].Keypoints[0] != (Keypoint{X: 5, Y: 6, Score: 0.5}) {
		t.Fatalf("one2one: %+v", got)
	}
}

// TestNonFiniteParts: a detection counts once however many of its
// keypoints or oriented box's values are NaN or infinite; finite ones and
// detections without either do not count.
func TestNonFiniteParts(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name string
		ds   []Detection
		want int
	}{
		{"plain boxes", []Detection{{X1: 1, X2: 2, Score: 0.5}, {}}, 0},
		{"finite points", []Detection{{Keypoints: []Keypoint{{1, 2, 0.5}, {3, 4, 1}}}}, 0},
		{"a NaN point", []Detection{{Keypoints: []Keypoint{{1, 2, 0.5}, {nan, 4, 1}}}, {Keypoints: []Keypoint{{1, 2, 3}}}}, 1},
		{"two bad points, one detection", []Detection{{Keypoints: []Keypoint{{inf, 2, 0.5}, {1, 4, nan}}}}, 1},
		{"an infinite angle", []Detection{{Rotated: &RotatedBox{CX: 1, CY: 1, W: 2, H: 2, Angle: inf}}, {Rotated: &RotatedBox{W: 1, H: 1}}}, 1},
	} {
		if got := nonFiniteParts(c.ds); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
