package job

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/infer"
)

// corpus is internal/mkmedia -corpus's folder: every file holds 40 frames
// at 25 frames/s of video time, in another container or timestamp kind.
const corpus = "../testdata/corpus"

// sampling is one way of choosing the frames a run infers.
type sampling struct {
	name string
	set  func(*Settings)
	// want is the indices of the corpus's frames (frame i at i/25 s) that
	// the run infers.
	want []int64
}

var samplings = []sampling{
	{"every frame", func(*Settings) {}, span(0, 40, 1)},
	{"--stride 10", func(s *Settings) { s.Stride = 10 }, []int64{0, 10, 20, 30}},
	// One frame per half second: the first at or after each grid point.
	{"--fps 2", func(s *Settings) { s.FPS = 2 }, []int64{0, 13, 25, 38}},
	{"--start 0.5s --end 1.2s", func(s *Settings) { s.Start, s.End = 0.5, 1.2 }, span(13, 30, 1)},
}

func span(from, to, step int64) []int64 {
	var s []int64
	for i := from; i < to; i += step {
		s = append(s, i)
	}
	return s
}

// corpusFiles lists the corpus.
func corpusFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(corpus, "*"))
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	return files
}

// videoFrames reads, per video path, the run's status, frames decoded and
// inferred, and the (frame index, pts) of its detections.
type videoFrames struct {
	status            string
	decoded, inferred int64
	frames            []int64   // distinct frame indices with detections, ascending
	pts               []float64 // their timestamps
}

func readVideoFrames(t *testing.T, db *sql.DB, out string) map[string]videoFrames {
	t.Helper()
	got := map[string]videoFrames{}
	rows, err := db.Query(fmt.Sprintf(`select path, status, frames_decoded, frames_inferred from read_parquet('%s')`, filepath.Join(out, "videos.parquet")))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		var v videoFrames
		if err := rows.Scan(&p, &v.status, &v.decoded, &v.inferred); err != nil {
			t.Fatal(err)
		}
		got[p] = v
	}
	rows.Close()
	dets, err := filepath.Glob(filepath.Join(out, "detections", "*.parquet"))
	if err != nil || len(dets) == 0 {
		return got
	}
	rows, err = db.Query(fmt.Sprintf(`select distinct video_path, frame_index, pts_seconds from read_parquet('%s') order by 1, 2`, filepath.Join(out, "detections", "*.parquet")))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var idx int64
		var pts float64
		if err := rows.Scan(&p, &idx, &pts); err != nil {
			t.Fatal(err)
		}
		v := got[p]
		v.frames, v.pts = append(v.frames, idx), append(v.pts, pts)
		got[p] = v
	}
	return got
}

// runSampled runs files through workers with one sampling.
func runSampled(t *testing.T, h *harness, videos []Video, workers []Worker, s sampling) string {
	t.Helper()
	out := t.TempDir()
	opts := h.options(out, len(workers))
	opts.KernelCache = filepath.Join(out, ".kernels")
	s.set(&opts.Settings)
	if _, err := Run(context.Background(), MakePlan(videos, workers, Shard{}), videos, opts); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunCorpusSampling runs the timestamp corpus through a CPU worker
// with each sampling: every file, whatever its container stores, gets
// exactly the frames the sampling picks from 40 frames at 25 frames/s,
// with their indices and times (the model finds two boxes in every frame).
func TestRunCorpusSampling(t *testing.T) {
	h := newHarness(t)
	files := corpusFiles(t)
	videos, err := ProbeAll(context.Background(), files, ProbeOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	db := openDuck(t)
	for _, s := range samplings {
		t.Run(s.name, func(t *testing.T) {
			got := readVideoFrames(t, db, runSampled(t, h, videos, Workers(nil, 1), s))
			for _, f := range files {
				v := got[f]
				wantPTS := make([]float64, len(s.want))
				for i, idx := range s.want {
					wantPTS[i] = float64(idx) / 25
				}
				if v.status != "done" || v.inferred != int64(len(s.want)) || !slices.Equal(v.frames, s.want) || !closeAll(v.pts, wantPTS, 1e-6) {
					t.Errorf("%s: %s, %d decoded, %d inferred, frames %v at %v; want %v", filepath.Base(f), v.status, v.decoded, v.inferred, v.frames, v.pts, s.want)
				}
			}
		})
	}
}

func closeAll(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > tol || d < -tol {
			return false
		}
	}
	return true
}

// TestRunGPUMatchesCPUCorpus is the GPU-machine check of issue 17: every
// file of the timestamp corpus, of testdata/media and testdata/hostile (but
// the damaged ones), and of DSBATCH_PARITY_DIR when set (real recordings),
// through a GPU worker
// (NVDEC) and a CPU worker, with each sampling. Frames decoded and inferred,
// and the frame indices and times of the detections, must be equal. It
// prints one table (go test -v) and skips without a GPU.
func TestRunGPUMatchesCPUCorpus(t *testing.T) {
	devs := gpuDevices(t)
	h := newHarness(t)
	files := corpusFiles(t)
	for _, dir := range []string{media, hostile, os.Getenv("DSBATCH_PARITY_DIR")} {
		if dir == "" {
			continue
		}
		more, err := Discover(context.Background(), []string{dir}, DiscoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range more.Files {
			// Damaged bitstreams are left out: NVDEC drops what FFmpeg
			// conceals, so the two decoders differ on them by design (the
			// hostile-input tests cover them).
			if !strings.Contains(f, "/bad/") && filepath.Base(f) != "corrupt.mkv" {
				files = append(files, f)
			}
		}
	}
	videos, err := ProbeAll(context.Background(), files, ProbeOptions{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	var ok []Video
	for _, v := range videos {
		if v.OK() {
			ok = append(ok, v)
		}
	}
	db := openDuck(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%-28s %-24s %-7s %9s %9s %9s %9s  %s\n", "file", "sampling", "decoder", "cpu dec", "gpu dec", "cpu inf", "gpu inf", "frames and pts")
	bad := 0
	for _, s := range samplings {
		cpu := readVideoFrames(t, db, runSampled(t, h, ok, Workers(nil, 1), s))
		gpuOut := runSampled(t, h, ok, Workers(devs[:1], 0), s)
		gpu := readVideoFrames(t, db, gpuOut)
		dec := map[string]string{}
		rows, err := db.Query(fmt.Sprintf(`select path, decoder from read_parquet('%s')`, filepath.Join(gpuOut, "videos.parquet")))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var p, d string
			rows.Scan(&p, &d)
			dec[p] = d
		}
		rows.Close()
		for _, v := range ok {
			c, g := cpu[v.Path], gpu[v.Path]
			same := c.status == g.status && c.decoded == g.decoded && c.inferred == g.inferred &&
				slices.Equal(c.frames, g.frames) && closeAll(c.pts, g.pts, 1e-9)
			verdict := "same"
			if !same {
				verdict = fmt.Sprintf("DIFFER: cpu %s %v %v, gpu %s %v %v", c.status, c.frames, c.pts, g.status, g.frames, g.pts)
				bad++
			}
			fmt.Fprintf(&table, "%-28s %-24s %-7s %9d %9d %9d %9d  %s\n", filepath.Base(v.Path), s.name, dec[v.Path], c.decoded, g.decoded, c.inferred, g.inferred, verdict)
		}
	}
	t.Logf("GPU worker against CPU worker, %d files × %d samplings:\n%s", len(ok), len(samplings), table.String())
	if bad > 0 {
		t.Errorf("%d of %d (file, sampling) pairs differ", bad, len(ok)*len(samplings))
	}
}

// TestRunCorruptIsReproducible runs a folder holding a corrupt H.264 file
// three times with frame-threaded decoding: the file is decoded again on
// one thread, says so, and every run writes the same rows.
func TestRunCorruptIsReproducible(t *testing.T) {
	h := newHarness(t)
	files := mediaFiles(t, "corrupt.mkv", "h264.mp4")
	videos, err := ProbeAll(context.Background(), files, ProbeOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	db := openDuck(t)
	var first string
	for run := 0; run < 3; run++ {
		out := t.TempDir()
		opts := h.options(out, 1)
		opts.DecodeThreads = 4
		if _, err := Run(context.Background(), MakePlan(videos, Workers(nil, 1), Shard{}), videos, opts); err != nil {
			t.Fatal(err)
		}
		var note string
		if err := db.QueryRow(fmt.Sprintf(`select decoder_note from read_parquet('%s') where path like '%%corrupt.mkv'`, filepath.Join(out, "videos.parquet"))).Scan(&note); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(note, "one thread") {
			t.Errorf("corrupt.mkv's note %q does not say it was decoded again on one thread", note)
		}
		var rows string
		if err := db.QueryRow(fmt.Sprintf(`select string_agg(concat_ws(',', video_path, frame_index, class_id, score, x1, y1, x2, y2, track_id), ';' order by video_path, frame_index, class_id)
			from read_parquet('%s')`, filepath.Join(out, "detections", "*.parquet"))).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			first = rows
		} else if rows != first {
			t.Errorf("run %d wrote other rows than run 0", run)
		}
	}
}

// TestUnexplainedEmpty: a video whose frames decoded but none reached the
// detector fails, unless --start or --end explain it.
func TestUnexplainedEmpty(t *testing.T) {
	for _, tt := range []struct {
		name        string
		start, end  float64
		first, last float64
		decoded     int64
		fails       bool
	}{
		{"nothing explains it", 0, 0, -9.2e12, -9.2e12, 145, true},
		{"start past the end", 10, 0, 0, 8, 200, false},
		{"start inside", 4, 0, 0, 8, 200, true},
		{"end before the start", 0, 2, 3, 8, 200, false},
		{"no frame at all", 0, 0, 0, 0, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &pipeline{opts: &RunOptions{Settings: Settings{Stride: 1, Start: tt.start, End: tt.end}}}
			v := &video{planned: PlannedVideo{Path: "cam1.h264"}}
			v.stats.Decoded, v.stats.FirstPTS, v.stats.LastPTS = tt.decoded, tt.first, tt.last
			err := p.unexplainedEmpty(v)
			if (err != nil) != tt.fails {
				t.Fatalf("error %v, want failure %v", err, tt.fails)
			}
			if err != nil && !strings.Contains(err.Error(), "cam1.h264") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestSafeTrackIDsRecovers: a panic while tracking (here, a tracker map
// that cannot take the video's tracker) fails that video with an error
// naming it and the frame, instead of the whole run.
func TestSafeTrackIDsRecovers(t *testing.T) {
	p := &pipeline{opts: &RunOptions{Settings: Settings{Track: true, TrackBuffer: 1}}}
	v := &video{id: 7, planned: PlannedVideo{Path: "cam1.mp4"}}
	it := &item{index: 42, dets: []infer.Detection{{X1: 1, Y1: 1, X2: 5, Y2: 5, Score: 0.9}}}
	_, _, err := p.safeTrackIDs(nil, v, it)
	if err == nil || !strings.Contains(err.Error(), "cam1.mp4") || !strings.Contains(err.Error(), "frame 42") {
		t.Fatalf("err = %v", err)
	}
	ids, _, err := p.safeTrackIDs(map[int64]*videoTracks{}, v, it)
	if err != nil || len(ids) != 1 {
		t.Fatalf("%v %v", ids, err)
	}
}
