package job

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	_ "github.com/marcboeker/go-duckdb/v2"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

const imgsz = 64

// testModel writes a v8-layout detector with 2 classes and 3 anchors at
// 64×64: anchor 0 is a class-0 box (22,27)-(42,37) whose score is
// 0.3 + 0.6 × mean(image); anchor 1 a class-1 box scored 0.1 (below the
// threshold); anchor 2 a class-1 box (0,0)-(64,64) scored 0.5.
func testModel(t testing.TB) (string, *infer.Model) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "det.onnx")
	if err := testDetector().Write(path); err != nil {
		t.Fatal(err)
	}
	m, err := infer.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, m
}

// testDetector is testModel's detector.
func testDetector() onnxtest.Detector {
	n := 3
	raw := make([]float32, 6*n)
	k := make([]float32, 6*n)
	set := func(row, a int, v float32) { raw[row*n+a] = v }
	for r, v := range []float32{32, 32, 20, 10, 0.3, 0} {
		set(r, 0, v)
	}
	k[4*n+0] = 0.6
	for r, v := range []float32{10, 10, 4, 4, 0, 0.1} {
		set(r, 1, v)
	}
	for r, v := range []float32{32, 32, 64, 64, 0, 0.5} {
		set(r, 2, v)
	}
	return onnxtest.Detector{Batch: 0, H: imgsz, W: imgsz, D1: 6, D2: n, Raw: raw, K: k, Names: []string{"person", "car"}}
}

type harness struct {
	t      *testing.T
	model  *infer.Model
	lib    string
	layout infer.Layout
}

func newHarness(t *testing.T) *harness {
	_, m := testModel(t)
	lib, err := onnxtest.ORTLib()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, model: m, lib: lib}
	e, err := infer.NewORT(m, imgsz, imgsz, infer.ORTOptions{Lib: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if h.layout, err = infer.ProbeLayout(context.Background(), e, infer.ProbeOptions{H: imgsz, W: imgsz, Names: len(m.Names), Input: infer.Ultralytics}); err != nil {
		t.Fatal(err)
	}
	if h.layout.Head != infer.HeadV8 || h.layout.Classes != 2 {
		t.Fatalf("layout %+v", h.layout)
	}
	return h
}

func (h *harness) options(out string, workers int) RunOptions {
	return RunOptions{
		Out: out,
		Settings: Settings{Model: "test", Engine: "onnxruntime-cpu", InputH: imgsz, InputW: imgsz, Head: "v8",
			Names: h.model.Names, Conf: 0.25, IoU: 0.45, MaxDet: 300, Stride: 1, Track: true, TrackBuffer: 1},
		Layout: h.layout,
		Post:   infer.PostOptions{Conf: 0.25, IoU: 0.45, MaxDet: 300},
		NewEngine: func(Worker, *gpu.CUDA) (infer.Engine, error) {
			return infer.NewORT(h.model, imgsz, imgsz, infer.ORTOptions{Lib: h.lib, Threads: 1})
		},
		Batch: 5, DecodeSessions: 2, Exporters: 2,
	}
}

func (h *harness) run(ctx context.Context, opts RunOptions, paths []string, workers int) (*Summary, error) {
	videos, err := ProbeAll(context.Background(), paths, ProbeOptions{Jobs: 2})
	if err != nil {
		h.t.Fatal(err)
	}
	plan := MakePlan(videos, Workers(nil, workers), Shard{})
	return Run(ctx, plan, videos, opts)
}

func mediaFiles(t *testing.T, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(media, n))
	}
	return out
}

func openDuck(t *testing.T) *sql.DB {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryInts(t *testing.T, db *sql.DB, q string) []int64 {
	t.Helper()
	var out []int64
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestRunEndToEnd(t *testing.T) {
	h := newHarness(t)
	out := t.TempDir()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	opts := h.options(out, 2)
	opts.Mem = mem
	files := mediaFiles(t, "h264.mp4", "rotated.mp4", "resize.ts", "hevc10.mkv", "vp9.webm", "bad/empty.mp4", "bad/random.mp4")
	sum, err := h.run(context.Background(), opts, files, 2)
	if err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
	if sum.Done != 5 || len(sum.Failed) != 2 || sum.Frames != 50+20+50+20+30 {
		t.Fatalf("summary %+v", sum)
	}
	checkProfile(t, sum, 2, 2)
	db := openDuck(t)
	det := filepath.Join(out, "detections", "*.parquet")
	// Two detections per frame: anchor 0 (person) and anchor 2 (car).
	got := queryInts(t, db, fmt.Sprintf("select count(*) from read_parquet('%s') group by video_path order by video_path", det))
	want := []int64{100, 2 * 20, 2 * 50, 2 * 20, 2 * 30} // h264, hevc10, resize, rotated, vp9
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows per video %v, want %v", got, want)
	}
	// Boxes mapped back to frame pixels for each frame size and rotation.
	type box struct{ x1, y1, x2, y2 float64 }
	checkBox := func(video string, where string, want box) {
		t.Helper()
		q := fmt.Sprintf(`select distinct x1, y1, x2, y2 from read_parquet('%s') where class_name = 'person' and video_path like '%%%s' %s`, det, video, where)
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var b box
			rows.Scan(&b.x1, &b.y1, &b.x2, &b.y2)
			if math.Abs(b.x1-want.x1) > 1e-3 || math.Abs(b.y1-want.y1) > 1e-3 || math.Abs(b.x2-want.x2) > 1e-3 || math.Abs(b.y2-want.y2) > 1e-3 {
				t.Errorf("%s %s: box %+v, want %+v", video, where, b, want)
			}
			n++
		}
		if n != 1 {
			t.Errorf("%s %s: %d distinct boxes", video, where, n)
		}
	}
	// 320×240 into 64×64: scale 0.2, 64×48 with 8 rows of padding on top.
	checkBox("h264.mp4", "", box{110, 95, 210, 145})
	// Upright 240×320: scale 0.2, 48×64 with 8 columns of padding.
	checkBox("rotated.mp4", "", box{70, 135, 170, 185})
	// 160×120: scale 0.4.
	checkBox("hevc10.mkv", "", box{55, 47.5, 105, 72.5})
	checkBox("resize.ts", "and frame_index < 25", box{110, 95, 210, 145})
	checkBox("resize.ts", "and frame_index >= 25", box{55, 47.5, 105, 72.5})
	// The full-input car box clips to the frame.
	checkBox2 := queryInts(t, db, fmt.Sprintf(`select count(*) from read_parquet('%s') where class_name = 'car' and (x1 <> 0 or y1 <> 0 or x2 <> 320 or y2 <> 240) and video_path like '%%h264.mp4'`, det))
	if checkBox2[0] != 0 {
		t.Errorf("%d car boxes of h264.mp4 not clipped to 0,0,320,240", checkBox2[0])
	}
	// Scores follow each frame's own pixels: the moving box makes frames
	// differ, and a frame mixed up with another in a batch would show.
	scores := queryInts(t, db, fmt.Sprintf(`select count(distinct score) from read_parquet('%s') where class_name = 'person' and video_path like '%%h264.mp4'`, det))
	if scores[0] < 10 {
		t.Errorf("only %d distinct person scores over 50 frames", scores[0])
	}
	checkScores(t, db, det, filepath.Join(media, "h264.mp4"))

	// Tracking ran, but no detection here scores the 0.6 that starts a
	// track (person ≈ 0.57, car 0.5): no row may carry one.
	if n := queryInts(t, db, fmt.Sprintf(`select count(*) from read_parquet('%s') where track_id is not null`, det)); n[0] != 0 {
		t.Errorf("%d rows tracked although no detection may start a track", n[0])
	}

	// videos.parquet lists every input with its status.
	vids := filepath.Join(out, "videos.parquet")
	st := queryInts(t, db, fmt.Sprintf(`select count(*) from read_parquet('%s') group by status order by status`, vids))
	if fmt.Sprint(st) != "[5 2]" {
		t.Errorf("videos by status (done, failed): %v", st)
	}
	var errText string
	if err := db.QueryRow(fmt.Sprintf(`select error from read_parquet('%s') where path like '%%empty.mp4'`, vids)).Scan(&errText); err != nil || !strings.Contains(errText, "empty file") {
		t.Errorf("empty.mp4 error %q (%v)", errText, err)
	}
	inf := queryInts(t, db, fmt.Sprintf(`select frames_inferred from read_parquet('%s') where status = 'done' order by path`, vids))
	if fmt.Sprint(inf) != "[50 20 50 20 30]" {
		t.Errorf("frames inferred per video %v", inf)
	}
	assertNoTemps(t, out)
}

// checkScores recomputes the expected person score of every frame of path
// (0.3 + 0.6 × mean of its letterboxed tensor) and compares.
func checkScores(t *testing.T, db *sql.DB, det, path string) {
	t.Helper()
	want := expectedScores(t, path)
	rows, err := db.Query(fmt.Sprintf(`select frame_index, score from read_parquet('%s') where class_name = 'person' and video_path = '%s' order by frame_index`, det, path))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var idx int64
		var s float64
		rows.Scan(&idx, &s)
		if math.Abs(s-want[idx]) > 1e-4 {
			t.Fatalf("frame %d score %v, want %v", idx, s, want[idx])
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("%d scored frames, want %d", n, len(want))
	}
}

func assertNoTemps(t *testing.T, out string) {
	t.Helper()
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestRunResumeSettingsAndLock(t *testing.T) {
	h := newHarness(t)
	out := t.TempDir()
	files := mediaFiles(t, "h264.mp4", "vp9.webm", "bad/empty.mp4")
	opts := h.options(out, 1)
	if _, err := h.run(context.Background(), opts, files, 1); err != nil {
		t.Fatal(err)
	}
	parts := func() map[string]string {
		m := map[string]string{}
		for _, dir := range []string{"detections", "tracks"} {
			fs, _ := filepath.Glob(filepath.Join(out, dir, "*.parquet"))
			for _, f := range fs {
				b, _ := os.ReadFile(f)
				m[f] = string(b)
			}
		}
		return m
	}
	before := parts()
	if len(before) == 0 || len(before)%2 != 0 {
		t.Fatalf("parts after one run of two videos: %d files, want parts of detections, each beside its part of tracks", len(before))
	}

	// Same settings: everything is already done.
	sum, err := h.run(context.Background(), opts, files, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 2 || sum.Done != 0 || sum.Frames != 0 {
		t.Errorf("resume redid work: %+v", sum)
	}
	if after := parts(); !reflect.DeepEqual(before, after) {
		t.Error("a finished part was rewritten, or another written")
	}

	// Other settings are refused, then accepted with Force.
	other := opts
	other.Settings.Conf = 0.5
	other.Post.Conf = 0.5
	if _, err := h.run(context.Background(), other, files, 1); err == nil || !strings.Contains(err.Error(), "conf 0.25, now 0.5") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("other settings: %v", err)
	}
	other.Force = true
	sum, err = h.run(context.Background(), other, files, 1)
	if err != nil || sum.Done != 2 {
		t.Fatalf("forced: %+v %v", sum, err)
	}

	// A second run into the same folder at once is refused.
	held, err := openOut(out)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.run(context.Background(), other, files, 1)
	held.close()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("concurrent run: %v", err)
	}
}

func TestRunInterruptedThenResumed(t *testing.T) {
	h := newHarness(t)
	files := mediaFiles(t, "h264.mp4", "h264-faststart.mp4", "hevc.mkv", "mpeg4.avi", "vp9.webm", "vfr.mkv", "resize.ts")

	ref := t.TempDir()
	if _, err := h.run(context.Background(), h.options(ref, 2), files, 2); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	opts := h.options(out, 2)
	c := &Counters{}
	opts.Counters = c
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for c.FramesDone.Load() < 60 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := h.run(ctx, opts, files, 2)
	if err == nil || !sum.Interrupted {
		t.Fatalf("interrupted run: %+v, %v", sum, err)
	}
	assertNoTemps(t, out)
	if _, err := h.run(context.Background(), h.options(out, 2), files, 2); err != nil {
		t.Fatal(err)
	}
	db := openDuck(t)
	q := `select count(*) from (select * from read_parquet('%s') except all select * from read_parquet('%s'))`
	a := filepath.Join(ref, "detections", "*.parquet")
	b := filepath.Join(out, "detections", "*.parquet")
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		if n := queryInts(t, db, fmt.Sprintf(q, pair[0], pair[1])); n[0] != 0 {
			t.Errorf("%d rows differ between the uninterrupted and the resumed run", n[0])
		}
	}
	total := queryInts(t, db, fmt.Sprintf("select count(*) from read_parquet('%s')", b))
	if total[0] == 0 {
		t.Error("no rows")
	}
}

func TestWorkQueueSteals(t *testing.T) {
	q := newWorkQueue([][]PlannedVideo{
		{{Path: "a1", Cost: 5}, {Path: "a2", Cost: 3}, {Path: "a3", Cost: 1}},
		{{Path: "b1", Cost: 4}},
	})
	var got []string
	take := func(w int) {
		v, ok := q.next(w)
		if ok {
			got = append(got, fmt.Sprintf("%d:%s", w, v.Path))
		} else {
			got = append(got, fmt.Sprintf("%d:-", w))
		}
	}
	take(1) // own
	take(1) // steals the smallest of worker 0's queue
	take(0)
	take(1) // worker 0 has one left: not stolen
	take(0)
	take(0)
	want := "[1:b1 1:a3 0:a1 1:- 0:a2 0:-]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

// checkProfile checks that the summary's profile accounts for the run: one
// entry per worker, frames adding up, times within the wall time.
func checkProfile(t *testing.T, sum *Summary, workers, sessions int) {
	t.Helper()
	if len(sum.Profile) != workers {
		t.Fatalf("%d worker profiles, want %d", len(sum.Profile), workers)
	}
	if sum.FirstBatchSeconds <= 0 || sum.FirstBatchSeconds > sum.WallSeconds || sum.SteadyFPS <= 0 {
		t.Errorf("first batch at %.3fs of %.3fs, then %.1f frames/s", sum.FirstBatchSeconds, sum.WallSeconds, sum.SteadyFPS)
	}
	var frames int64
	for _, p := range sum.Profile {
		frames += p.Frames
		wall := p.EndSeconds - p.StartSeconds
		if wall <= 0 || p.EndSeconds > sum.WallSeconds {
			t.Errorf("worker %d: from %.3fs to %.3fs of a %.3fs run", p.Worker, p.StartSeconds, p.EndSeconds, sum.WallSeconds)
		}
		if p.Frames > 0 && (p.FirstBatchSeconds < p.StartSeconds || p.FirstBatchSeconds > p.EndSeconds || p.MeanBatch <= 0 || p.MeanBatch > 5) {
			t.Errorf("worker %d: first batch at %.3fs, mean batch %.2f", p.Worker, p.FirstBatchSeconds, p.MeanBatch)
		}
		if p.Decode.Goroutines != sessions || p.Infer.Goroutines != 1 || p.Export.Goroutines != 4 { // the harness's two exporters, each tracking and writing
			t.Errorf("worker %d: goroutines %d/%d/%d", p.Worker, p.Decode.Goroutines, p.Infer.Goroutines, p.Export.Goroutines)
		}
		for name, s := range map[string]StageProfile{"decode": p.Decode, "infer": p.Infer, "export": p.Export} {
			// Busy and waiting never exceed the time the stage's goroutines had.
			if s.Busy <= 0 || s.BusyShare <= 0 || s.Busy+s.WaitInput+s.WaitOutput > wall*float64(s.Goroutines)*1.01 {
				t.Errorf("worker %d %s: %+v over %.3fs", p.Worker, name, s, wall)
			}
		}
		if p.Bound != "decode" && p.Bound != "inference" && p.Bound != "export" {
			t.Errorf("worker %d: bound %q", p.Worker, p.Bound)
		}
	}
	if frames != sum.Frames {
		t.Errorf("profiles count %d frames, the summary %d", frames, sum.Frames)
	}
}

// cappedEngine takes at most max images per call, as the GPU engine does
// after backing off from a batch that did not fit in GPU memory.
type cappedEngine struct {
	infer.Engine
	max   int
	calls atomic.Int64
}

func (e *cappedEngine) MaxBatch() int { return e.max }

func (e *cappedEngine) Infer(ctx context.Context, in []float32, n int) ([]float32, []int64, error) {
	if n > e.max {
		return nil, nil, fmt.Errorf("%d images, at most %d", n, e.max)
	}
	e.calls.Add(1)
	return e.Engine.Infer(ctx, in, n)
}

// TestRunEngineBatchLimit runs batches of 5 through an engine that takes 2
// images at a time: the pipeline splits each batch, and the rows equal a
// run whose engine takes whole batches.
func TestRunEngineBatchLimit(t *testing.T) {
	h := newHarness(t)
	files := mediaFiles(t, "h264.mp4", "rotated.mp4", "resize.ts")
	ref, out := t.TempDir(), t.TempDir()
	if _, err := h.run(context.Background(), h.options(ref, 1), files, 1); err != nil {
		t.Fatal(err)
	}
	opts := h.options(out, 1)
	var engines []*cappedEngine
	opts.NewEngine = func(w Worker, cuda *gpu.CUDA) (infer.Engine, error) {
		e, err := h.options(out, 1).NewEngine(w, cuda)
		if err != nil {
			return nil, err
		}
		c := &cappedEngine{Engine: e, max: 2}
		engines = append(engines, c)
		return c, nil
	}
	sum, err := h.run(context.Background(), opts, files, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != 1 || sum.Frames != 120 || engines[0].calls.Load() < 60 {
		t.Fatalf("%d frames in %d engine calls", sum.Frames, engines[0].calls.Load())
	}
	db := openDuck(t)
	q := `select count(*) from (select * from read_parquet('%s') except all select * from read_parquet('%s'))`
	a, b := filepath.Join(ref, "detections", "*.parquet"), filepath.Join(out, "detections", "*.parquet")
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		if n := queryInts(t, db, fmt.Sprintf(q, pair[0], pair[1])); n[0] != 0 {
			t.Errorf("%d rows differ between whole and split batches", n[0])
		}
	}
}

// TestRunRefusesNonFinite: a model whose output holds NaN (a network that
// overflowed) stops the run with an error naming the video and the frame,
// and no video is marked done: a later run with a sound model does them.
func TestRunRefusesNonFinite(t *testing.T) {
	h := newHarness(t)
	d := testDetector()
	d.Raw[1] = float32(math.NaN()) // anchor 1's cx
	path := filepath.Join(t.TempDir(), "nan.onnx")
	if err := d.Write(path); err != nil {
		t.Fatal(err)
	}
	bad, err := infer.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	files := mediaFiles(t, "h264.mp4")
	out := t.TempDir()
	opts := h.options(out, 1)
	opts.NewEngine = func(Worker, *gpu.CUDA) (infer.Engine, error) {
		return infer.NewORT(bad, imgsz, imgsz, infer.ORTOptions{Lib: h.lib, Threads: 1})
	}
	_, err = h.run(context.Background(), opts, files, 1)
	if err == nil || !strings.Contains(err.Error(), files[0]) || !strings.Contains(err.Error(), "not finite") {
		t.Fatalf("run with a NaN output: %v, want an error naming %s and the values", err, files[0])
	}
	t.Log(err)
	sum, err := h.run(context.Background(), h.options(out, 1), files, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Frames == 0 {
		t.Errorf("the video was marked done by the failed run: %+v", sum)
	}
}
