package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/job"
)

// movingBox is where internal/mkmedia draws its yellow box in frame idx of
// a 320×240 clip: x from (idx·4) mod 256, y from 80, 64×48.
func movingBox(idx int64) [4]float32 {
	x := float32((idx * 4) % (320 - 64))
	return [4]float32{x, 80, x + 64, 128}
}

// writeOutput makes out an output folder holding video's detections dets
// as a run leaves it: it writes them in the layout before parts (a file
// per video and its record), which dsbatch compact converts.
func writeOutput(t *testing.T, out, video string, opts export.DetectionOptions, dets []export.Detection) {
	t.Helper()
	id := job.VideoID(video)
	w, err := export.NewDetectionWriter(filepath.Join(out, "detections", fmt.Sprintf("%016x.parquet", id)), memory.NewGoAllocator(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dets {
		if err := w.Append(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(export.Video{VideoID: id, Path: video, Status: "done", FramesInferred: 50, Detections: int64(len(dets))})
	os.MkdirAll(filepath.Join(out, ".dsbatch", "videos"), 0o755)
	os.WriteFile(filepath.Join(out, ".dsbatch", "settings.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(out, ".dsbatch", "videos", fmt.Sprintf("%016x.json", id)), rec, 0o644)
	if r := dsbatch(t, "compact", out); r.code != 0 || !strings.Contains(r.stdout, "1 videos gathered into 1 parts (1 converted") {
		t.Fatalf("compact: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestPreview draws detections that follow the moving box of h264.mp4.
func TestPreview(t *testing.T) {
	out := t.TempDir()
	video := filepath.Join(media, "h264.mp4")
	var dets []export.Detection
	for i := int64(0); i < 50; i++ {
		b := movingBox(i)
		dets = append(dets, export.Detection{VideoID: job.VideoID(video), VideoPath: video, FrameIndex: i, PTS: float64(i) / 25,
			ClassName: "box", Score: 0.9, X1: b[0], Y1: b[1], X2: b[2], Y2: b[3], TrackID: 1})
	}
	writeOutput(t, out, video, export.DetectionOptions{}, dets)
	sheet := filepath.Join(out, "sheet.png")
	if r := dsbatch(t, "preview", out, "--video", video, "--frames", "0:50:10", "--to", sheet); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	img := readPNG(t, sheet)
	// 5 tiles of 320×240 in 3 columns and 2 rows, 6 px apart, 16 px captions.
	if b := img.Bounds(); b.Dx() != 3*326+6 || b.Dy() != 2*(240+16+6)+6 {
		t.Fatalf("sheet is %v", b)
	}
	col := trackColor(1)
	for k, frame := range []int64{0, 10, 20, 30, 40} {
		b := movingBox(frame)
		ox, oy := 6+(k%3)*326, 6+(k/3)*262+16
		// Left edge of the box, halfway down: the track's colour.
		r, g, bl, _ := img.At(ox+int(b[0]), oy+104).RGBA()
		if uint8(r>>8) != col.R || uint8(g>>8) != col.G || uint8(bl>>8) != col.B {
			t.Errorf("frame %d: box edge is %d,%d,%d, want the track colour %v", frame, r>>8, g>>8, bl>>8, col)
		}
	}
	if os.Getenv("DSBATCH_KEEP_PREVIEW") != "" {
		data, _ := os.ReadFile(sheet)
		os.WriteFile(os.Getenv("DSBATCH_KEEP_PREVIEW"), data, 0o644)
	}
	// A clip: every frame, at the video's rate.
	clip := filepath.Join(out, "clip.mp4")
	if r := dsbatch(t, "preview", out, "--video", video, "--frames", "0:50:1", "--to", clip); r.code != 0 {
		t.Fatalf("clip: exit %d %s", r.code, r.stderr)
	}
	info, err := decode.Probe(context.Background(), clip, decode.ProbeOptions{CountFrames: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Frames != 50 || math.Abs(info.AvgFPS-25) > 0.01 || info.Width != 320 || info.Height != 240 {
		t.Errorf("clip: %+v", info)
	}
	if os.Getenv("DSBATCH_KEEP_CLIP") != "" {
		data, _ := os.ReadFile(filepath.Join(out, "clip.mp4"))
		os.WriteFile(os.Getenv("DSBATCH_KEEP_CLIP"), data, 0o644)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// One frame by time, and clear errors.
	one := filepath.Join(out, "one.png")
	if r := dsbatch(t, "preview", out, "--video", video, "--at", "1.02s", "--to", one); r.code != 0 {
		t.Fatalf("--at: exit %d %s", r.code, r.stderr)
	}
	if cfg, err := decodePNGConfig(one); err != nil || cfg.Width != 326+6 {
		t.Errorf("--at gave %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{"preview", out, "--video", video, "--to", filepath.Join(out, "x.gif")},
		{"preview", out, "--video", filepath.Join(media, "hevc.mkv"), "--to", one},
		{"preview", out, "--video", video, "--frames", "9:3", "--to", one},
	} {
		if r := dsbatch(t, args...); r.code != exitFailed || !strings.Contains(r.stderr, "preview") && !strings.Contains(r.stderr, "--") {
			t.Errorf("%v: exit %d %s", args, r.code, r.stderr)
		}
	}
}

func decodePNGConfig(path string) (image.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, err
	}
	defer f.Close()
	return png.DecodeConfig(f)
}

// TestPreviewPoseAndOBB draws an oriented box along its turned edges (not
// its bounds) and a pose's keypoints as white dots and limbs.
func TestPreviewPoseAndOBB(t *testing.T) {
	video := filepath.Join(media, "h264.mp4")
	id := job.VideoID(video)
	for _, tt := range []struct {
		name string
		opts export.DetectionOptions
		det  export.Detection
		on   [][2]int // pixels that must take the colour
		off  [][2]int // pixels that must not
		col  color.RGBA
		limb [][2]int // pixels of a limb: the detection's colour
	}{
		{
			name: "obb",
			opts: export.DetectionOptions{Oriented: true},
			// A diamond: a 40×40 square turned 45° about (160, 120).
			det: export.Detection{X1: 132, Y1: 92, X2: 188, Y2: 148, Oriented: &export.OrientedBox{CX: 160, CY: 120, W: 40, H: 40, Angle: math.Pi / 4,
				Corners: [4][2]float32{{160, 92}, {188, 120}, {160, 148}, {132, 120}}}},
			on:  [][2]int{{174, 106}, {146, 134}}, // midpoints of two edges
			off: [][2]int{{132, 92}, {188, 148}},  // corners of the bounds
			col: trackColor(-1),
		},
		{
			name: "pose",
			opts: export.DetectionOptions{Keypoints: 17},
			det:  export.Detection{X1: 100, Y1: 50, X2: 200, Y2: 200, Keypoints: poseKeypoints()},
			on:   [][2]int{{130, 150}, {150, 150}}, // both hips
			col:  color.RGBA{255, 255, 255, 255},
			limb: [][2]int{{140, 150}}, // the limb between
		},
	} {
		out := t.TempDir()
		d := tt.det
		d.VideoID, d.VideoPath, d.ClassName, d.Score, d.TrackID = id, video, "x", 0.9, -1
		writeOutput(t, out, video, tt.opts, []export.Detection{d})
		png1 := filepath.Join(out, "one.png")
		if r := dsbatch(t, "preview", out, "--video", video, "--frames", "0:1:1", "--to", png1); r.code != 0 {
			t.Fatalf("%s: exit %d %s", tt.name, r.code, r.stderr)
		}
		img := readPNG(t, png1)
		is := func(p [2]int, c color.RGBA) bool {
			r, g, b, _ := img.At(6+p[0], 6+16+p[1]).RGBA()
			return uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B
		}
		for _, p := range tt.on {
			if !is(p, tt.col) {
				t.Errorf("%s: pixel %v not drawn", tt.name, p)
			}
		}
		for _, p := range tt.limb {
			if !is(p, trackColor(-1)) {
				t.Errorf("%s: limb pixel %v not drawn", tt.name, p)
			}
		}
		for _, p := range tt.off {
			if is(p, tt.col) {
				t.Errorf("%s: pixel %v drawn: the axis-aligned bounds, not the turned box", tt.name, p)
			}
		}
	}
}

// poseKeypoints puts COCO's hips (11, 12) at (150, 150) and (130, 150),
// every other point invisible.
func poseKeypoints() []export.Keypoint {
	kp := make([]export.Keypoint, 17)
	kp[11] = export.Keypoint{X: 150, Y: 150, Score: 0.9}
	kp[12] = export.Keypoint{X: 130, Y: 150, Score: 0.9}
	return kp
}

// readPNG decodes the PNG file at path.
func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPreviewMask tints a segmentation mask's pixels (read back from the
// mask_rle column) towards the detection's colour, and no others.
func TestPreviewMask(t *testing.T) {
	video := filepath.Join(media, "h264.mp4")
	info, err := decode.Probe(context.Background(), video, decode.ProbeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, h := info.Width, info.Height
	// The mask: x 40..79, y 30..59, as COCO's RLE column by column.
	var counts []int32
	run, cur := int32(0), false
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			if in := x >= 40 && x < 80 && y >= 30 && y < 60; in != cur {
				counts, run, cur = append(counts, run), 0, in
			}
			run++
		}
	}
	counts = append(counts, run)
	render := func(mask *export.Mask) image.Image {
		out := t.TempDir()
		d := export.Detection{VideoID: job.VideoID(video), VideoPath: video, ClassName: "x", Score: 0.9, TrackID: 3,
			X1: 20, Y1: 20, X2: 120, Y2: 100, Mask: mask}
		writeOutput(t, out, video, export.DetectionOptions{Masks: true}, []export.Detection{d})
		p := filepath.Join(out, "one.png")
		if r := dsbatch(t, "preview", out, "--video", video, "--frames", "0:1:1", "--to", p); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		return readPNG(t, p)
	}
	with := render(&export.Mask{Area: 40 * 30, Height: int32(h), Width: int32(w), Counts: counts})
	without := render(nil)
	col := trackColor(3)
	at := func(img image.Image, x, y int) [3]float64 {
		r, g, b, _ := img.At(6+x, 6+16+y).RGBA()
		return [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
	}
	for _, p := range [][2]int{{60, 50}, {45, 35}, {75, 55}} {
		got, orig := at(with, p[0], p[1]), at(without, p[0], p[1])
		want := [3]float64{orig[0]*0.55 + float64(col.R)*0.45, orig[1]*0.55 + float64(col.G)*0.45, orig[2]*0.55 + float64(col.B)*0.45}
		for k := range got {
			if math.Abs(got[k]-want[k]) > 2 {
				t.Errorf("mask pixel %v: %v, want %v (frame %v tinted by %v)", p, got, want, orig, col)
				break
			}
		}
	}
	for _, p := range [][2]int{{90, 50}, {60, 70}, {150, 150}} {
		if at(with, p[0], p[1]) != at(without, p[0], p[1]) {
			t.Errorf("pixel %v outside the mask tinted", p)
		}
	}
}
