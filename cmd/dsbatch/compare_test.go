package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
	"github.com/dsbatch/dsbatch/job"
)

func TestMatchBoxes(t *testing.T) {
	b := func(class int32, score, x1, y1, x2, y2 float32) box {
		return box{class: class, score: score, d: infer.Detection{X1: x1, Y1: y1, X2: x2, Y2: y2}}
	}
	a := []box{b(0, 0.9, 0, 0, 10, 10), b(0, 0.8, 1, 1, 11, 11), b(1, 0.7, 50, 50, 60, 60), b(2, 0.6, 80, 80, 90, 90)}
	bb := []box{
		b(0, 0.85, 1, 1, 11, 11), // each class-0 box of a finds its exact twin
		b(0, 0.5, 0, 0, 10, 10),
		b(1, 0.7, 50, 50, 60, 60),
		b(3, 0.6, 80, 80, 90, 90), // another class
	}
	n, sum, ds := matchBoxes(a, bb, 0.5, nil)
	if n != 3 {
		t.Errorf("%d pairs, want 3", n)
	}
	if sum != 3 || ds < 0.39 || ds > 0.41 {
		t.Errorf("IoU sum %v, score difference %v", sum, ds)
	}
	if n, _, _ := matchBoxes(a, nil, 0.5, nil); n != 0 {
		t.Errorf("%d pairs with nothing", n)
	}
	// Boxes clipped flat at the frame's edge, found by both runs, agree;
	// a flat box and another do not.
	flat := []box{b(0, 0.9, 0, 5, 0, 40), b(0, 0.8, 640, 0, 640, 0)}
	if n, sum, _ := matchBoxes(flat, flat, 0.5, nil); n != 2 || sum != 2 {
		t.Errorf("flat boxes: %d pairs, IoU sum %v; want 2, 2", n, sum)
	}
	if n, _, _ := matchBoxes(flat[:1], []box{b(0, 0.9, 0, 5, 0, 41)}, 0.5, nil); n != 0 {
		t.Errorf("different flat boxes matched")
	}
}

// TestCompareCLI compares runs of one model (everything agrees), and of
// models whose boxes differ (agreement 0, exit 4 under --min).
func TestCompareCLI(t *testing.T) {
	withORT(t)
	dir := t.TempDir()
	other := filepath.Join(dir, "moved.onnx")
	// The same box moved by its width: no overlap.
	raw := []float32{12, 0, 32, 0, 20, 0, 10, 0, 0.8, 0, 0, 0.1}
	if err := (onnxtest.Detector{H: 64, W: 64, D1: 6, D2: 2, Raw: raw, Names: []string{"person", "car"}}).Write(other); err != nil {
		t.Fatal(err)
	}
	m := model(t)
	videos := []string{filepath.Join(media, "h264.mp4"), filepath.Join(media, "vp9.webm")}
	run := func(model, out string) {
		r := dsbatch(t, append([]string{"run", "--no-cache", "--model", model, "--out", out}, videos...)...)
		if r.code != 0 {
			t.Fatalf("run: exit %d: %s", r.code, r.stderr)
		}
	}
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	run(m, a)
	run(m, b)
	run(other, c)
	r := dsbatch(t, "compare", "--json", "--min", "1", a, b)
	var ag agreement
	if err := json.Unmarshal([]byte(r.stdout), &ag); err != nil || r.code != 0 {
		t.Fatalf("compare a b: exit %d, %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	if ag.Videos != 2 || ag.A == 0 || ag.Matched != ag.A || ag.A != ag.B || ag.Agreement != 1 || ag.MeanIoU < 0.999 {
		t.Errorf("same runs: %+v", ag)
	}
	r = dsbatch(t, "compare", "--min", "0.5", a, c)
	if r.code != exitDiffer || !strings.Contains(r.stdout, "0.00%") || !strings.Contains(r.stderr, "below --min") {
		t.Errorf("different runs: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := dsbatch(t, "compare", a); r.code != exitFailed {
		t.Errorf("one folder: exit %d", r.code)
	}
}

func TestRLEIoU(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b []int32
		want float64
	}{
		{"equal", []int32{0, 4}, []int32{0, 4}, 1},
		{"half", []int32{0, 4}, []int32{2, 2}, 0.5},
		{"both empty", []int32{5}, []int32{5}, 1},
		{"one empty", []int32{5}, []int32{0, 5}, 0},
		{"runs of none", []int32{0, 0, 2, 3}, []int32{2, 3}, 1},
		{"two runs and one", []int32{1, 2, 1, 2}, []int32{0, 6}, 4.0 / 6},
		{"disjoint", []int32{0, 2, 4}, []int32{3, 3}, 0},
	} {
		if got := rleIoU(c.a, c.b); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if got := rleIoU(c.b, c.a); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s, swapped: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCompareSegCLI: two runs of one segmentation model agree mask for
// mask (IoU 1 for every matched box).
func TestCompareSegCLI(t *testing.T) {
	withORT(t)
	dir, m := t.TempDir(), segDetector(t)
	video := filepath.Join(media, "h264.mp4")
	for _, out := range []string{"a", "b"} {
		if r := dsbatch(t, "run", "--no-cache", "--no-track", "--model", m, "--out", filepath.Join(dir, out), video); r.code != 0 {
			t.Fatalf("run: exit %d: %s", r.code, r.stderr)
		}
	}
	r := dsbatch(t, "compare", "--json", filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	var ag agreement
	if err := json.Unmarshal([]byte(r.stdout), &ag); err != nil || r.code != 0 {
		t.Fatalf("compare: exit %d, %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	if ag.Matched == 0 || ag.Masks != ag.Matched || ag.MaskMeanIoU != 1 || ag.MaskMinIoU != 1 || ag.Keypoints != 0 {
		t.Errorf("same seg runs: %+v", ag)
	}
}

// TestComparePoseCLI: two runs of one pose model agree point for point
// (distance 0); a model whose points all lie one model pixel to the right
// matches the same boxes, every point one frame pixel per model pixel's
// scale away.
func TestComparePoseCLI(t *testing.T) {
	withORT(t)
	dir := t.TempDir()
	const k, rows = 17, 4 + 1 + 17*3
	pose := func(name string, dx float32) string {
		raw := make([]float32, rows*2)
		set := func(r int, v float32) { raw[r*2] = v }
		set(0, 32)
		set(1, 32)
		set(2, 20)
		set(3, 10)
		set(4, 0.8)
		for i := 0; i < k; i++ {
			set(5+3*i, float32(24+i)+dx)
			set(5+3*i+1, 30)
			set(5+3*i+2, 0.9)
		}
		m := filepath.Join(dir, name)
		if err := (onnxtest.Detector{H: 64, W: 64, D1: rows, D2: 2, Raw: raw, Names: []string{"person"},
			Metadata: map[string]string{"kpt_shape": "[17, 3]", "task": "pose"}}).Write(m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	video := filepath.Join(media, "h264.mp4")
	outs := map[string]string{}
	for name, m := range map[string]string{"a": pose("a.onnx", 0), "b": pose("b.onnx", 0), "moved": pose("moved.onnx", 1)} {
		outs[name] = filepath.Join(dir, name)
		if r := dsbatch(t, "run", "--no-cache", "--no-track", "--model", m, "--out", outs[name], video); r.code != 0 {
			t.Fatalf("run %s: exit %d: %s", name, r.code, r.stderr)
		}
	}
	compare := func(a, b string) agreement {
		r := dsbatch(t, "compare", "--json", outs[a], outs[b])
		var ag agreement
		if err := json.Unmarshal([]byte(r.stdout), &ag); err != nil || r.code != 0 {
			t.Fatalf("compare %s %s: exit %d, %v: %s %s", a, b, r.code, err, r.stdout, r.stderr)
		}
		return ag
	}
	same := compare("a", "b")
	if same.Matched == 0 || same.Agreement != 1 || same.Keypoints != k*same.Matched || same.KeypointsMean != 0 || same.KeypointsMax != 0 {
		t.Errorf("same pose runs: %+v", same)
	}
	moved := compare("a", "moved")
	if moved.Agreement != 1 || moved.Keypoints != k*moved.Matched || moved.KeypointsMean <= 0 ||
		math.Abs(moved.KeypointsMax-moved.KeypointsMean) > 1e-3*moved.KeypointsMean {
		t.Errorf("points moved by one model pixel: %+v", moved)
	}
	if r := dsbatch(t, "compare", outs["a"], outs["moved"]); !strings.Contains(r.stdout, "points: mean distance") {
		t.Errorf("compare prints no points line:\n%s", r.stdout)
	}
}

// TestCheckCLI: check says what the model is and how dsbatch reads it,
// counts its boxes on a video's frames, times ONNX Runtime, and fails on
// a layout whose boxes are implausible.
func TestCheckCLI(t *testing.T) {
	withORT(t)
	m := model(t)
	r := dsbatch(t, "check", "--duration", "100ms", "--frames", "4", "--video", filepath.Join(media, "h264.mp4"), m)
	if r.code != 0 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"model ", "batch dynamic", "v8 head, 2 classes", "person, car", "rgb,scale=1/255,fit=centre,pad=114",
		"GPU engine", "4 on 4 frames of h264.mp4", "img/s (CPU, batch 8)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check says no %q:\n%s", want, r.stdout)
		}
	}
	h, err := gpu.Open()
	switch {
	case err != nil && !strings.Contains(r.stdout, "not compared: no GPU"):
		t.Errorf("without a GPU, check must say the engines were not compared:\n%s", r.stdout)
	case err == nil && !strings.Contains(r.stdout, "engines agree") && !strings.Contains(r.stdout, "not compared"):
		t.Errorf("with a GPU, check must compare the engines or say why not:\n%s", r.stdout)
	}
	if err == nil {
		h.Close()
	}
	// 300 queries of normalised boxes read as YOLOv5's: sub-pixel boxes.
	raw := make([]float32, 300*84)
	for q := 0; q < 300; q++ {
		row := raw[q*84:]
		row[0], row[1], row[2], row[3], row[4], row[5] = float32(q%20)/20+0.025, float32(q/20)/15+0.03, 0.04, 0.04, 0.9, 0.9
	}
	detr := filepath.Join(t.TempDir(), "detr.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: 300, D2: 84, Raw: raw}).Write(detr); err != nil {
		t.Fatal(err)
	}
	r = dsbatch(t, "check", "--duration", "100ms", "--frames", "2", "--head", "v5", detr)
	if r.code != exitFailed || !strings.Contains(r.stdout, "layout check  FAILED") || !strings.Contains(r.stderr, "implausible") {
		t.Errorf("misread layout: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := dsbatch(t, "check", "--duration", "100ms", "--frames", "2", detr); r.code != 0 || !strings.Contains(r.stdout, "detr head") {
		t.Errorf("the same model read as DETR-style: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestEventsCLI: events needs its zones file and says which file is wrong.
func TestEventsCLI(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "zones.yaml")
	os.WriteFile(bad, []byte("cameras: [{match: \"*\", lines: [{name: l, from: [1, 1], to: [1, 1]}]}]\n"), 0o644)
	if r := dsbatch(t, "events", dir); r.code != exitFailed || !strings.Contains(r.stderr, "zones") {
		t.Errorf("no --zones: exit %d %s", r.code, r.stderr)
	}
	if r := dsbatch(t, "events", "--zones", bad, dir); r.code != exitFailed || !strings.Contains(r.stderr, bad) || !strings.Contains(r.stderr, "one point") {
		t.Errorf("bad zones: exit %d %s", r.code, r.stderr)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("cameras: [{match: \"*\", lines: [{name: l, from: [0, 1], to: [9, 1]}]}]\n"), 0o644)
	missing := filepath.Join(dir, "typo")
	if r := dsbatch(t, "events", "--zones", good, missing); r.code != exitFailed || !strings.Contains(r.stderr, "not the --out of a dsbatch run") {
		t.Errorf("a folder that is no output: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("events created the folder it was wrongly given")
	}
}

// TestRunZonesInspectPreview: run --zones writes the events of the run's
// tracks (the test model's steady box sits in a zone: one visit, open at
// the end), inspect counts them, and preview --zones draws the zone.
func TestRunZonesInspectPreview(t *testing.T) {
	withORT(t)
	dir := t.TempDir()
	zones := filepath.Join(dir, "zones.yaml")
	os.WriteFile(zones, []byte(`cameras:
  - {match: "h264.mp4", normalized: true, zones: [{name: desk, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}],
     lines: [{name: far, from: [0, 0.02], to: [1, 0.02]}]}
`), 0o644)
	out := filepath.Join(dir, "out")
	video := filepath.Join(media, "h264.mp4")
	r := dsbatch(t, "run", "--no-cache", "--model", model(t), "--out", out, "--zones", zones, video)
	if r.code != 0 || !strings.Contains(r.stdout, "events: 2 in 1 videos") {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r = dsbatch(t, "inspect", "--json", out)
	var in job.Inspection
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Events) != 1 || in.Events[0].Kind != "visits" || in.Events[0].Name != "desk" || in.Events[0].Count != 1 || in.Events[0].MeanDwell < 1.9 {
		t.Errorf("inspect's events: %+v", in.Events)
	}
	sheet := filepath.Join(dir, "one.png")
	if r := dsbatch(t, "preview", out, "--video", video, "--frames", "0:1:1", "--zones", zones, "--to", sheet); r.code != 0 {
		t.Fatalf("preview: exit %d %s", r.code, r.stderr)
	}
	img := readPNG(t, sheet)
	// The line at 2% of 240 px (4.8, drawn at 4), halfway across 320: yellow.
	if r, g, b, _ := img.At(6+160, 6+16+4).RGBA(); r>>8 != 255 || g>>8 != 230 || b>>8 != 0 {
		t.Errorf("the line is not drawn: %d,%d,%d", r>>8, g>>8, b>>8)
	}
	if r := dsbatch(t, "preview", out, "--video", filepath.Join(media, "vp9.webm"), "--frames", "0:1:1", "--zones", zones, "--to", sheet); r.code != exitFailed || !strings.Contains(r.stderr, "no camera matches") {
		t.Errorf("a video no camera matches: exit %d %s", r.code, r.stderr)
	}
}

// TestRunRecordedAt: --recorded-at with a file-name pattern gives every
// detection its wall-clock time (the recording's start plus its time in
// the video) and the videos table the start; events then have times too.
func TestRunRecordedAt(t *testing.T) {
	withORT(t)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(media, "h264.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(dir, "cam1_20240501_080000.mp4")
	os.WriteFile(video, src, 0o644)
	out := filepath.Join(dir, "out")
	if r := dsbatch(t, "run", "--no-cache", "--model", model(t), "--out", out, "--recorded-at", "_%Y%m%d_%H%M%S", "--timezone", "Europe/Paris", video); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	dets := fmt.Sprintf("read_parquet('%s/detections/*.parquet')", out)
	// 08:00 in Paris is 06:00 UTC; each row's time is the start plus its
	// pts, to the microsecond.
	if n := duckInt(t, "select count(*) from "+dets+" where epoch_us(recorded_at) <> epoch_us(TIMESTAMPTZ '2024-05-01 06:00:00+00') + round(pts_seconds * 1e6)::bigint"); n != 0 {
		t.Errorf("%d detections off their wall-clock time", n)
	}
	if n := duckInt(t, "select count(*) from "+dets+" where recorded_at is null"); n != 0 {
		t.Errorf("%d detections without a time", n)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/videos.parquet') where recorded_at = TIMESTAMPTZ '2024-05-01 06:00:00+00'", out)); n != 1 {
		t.Errorf("videos.parquet's recorded_at: %d rows", n)
	}
	// A camera with no pattern of its own takes the run's times.
	zones := filepath.Join(dir, "zones.yaml")
	os.WriteFile(zones, []byte("cameras: [{match: \"cam1_*\", normalized: true, zones: [{name: all, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]\n"), 0o644)
	if r := dsbatch(t, "events", "--zones", zones, out); r.code != 0 {
		t.Fatalf("events: exit %d %s", r.code, r.stderr)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/events/*.parquet') where recorded_at >= TIMESTAMPTZ '2024-05-01 06:00:00+00'", out)); n != 2 {
		t.Errorf("%d events with the run's time, want 2", n)
	}
}

func TestLiveCounts(t *testing.T) {
	evs := []previewEvent{
		{1, "line_cross", "gate", "in"}, {2, "zone_enter", "hall", ""}, {3, "line_cross", "gate", "in"},
		{4, "zone_enter", "hall", ""}, {5, "zone_exit", "hall", ""}, {6, "line_cross", "gate", "out"},
	}
	c, in := liveCounts(evs, 4)
	if c["gate"]["in"] != 2 || c["gate"]["out"] != 0 || in["hall"] != 2 {
		t.Errorf("at frame 4: %v %v", c, in)
	}
	c, in = liveCounts(evs, 9)
	if c["gate"]["in"] != 2 || c["gate"]["out"] != 1 || in["hall"] != 1 {
		t.Errorf("at frame 9: %v %v", c, in)
	}
}
