package job

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/decode"
)

const hostile = "../testdata/hostile"

// cp copies src to dst.
func cp(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, mustRead(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunHostileInputs runs one job over the reliability corpus
// (testdata/hostile, written by `go run ./internal/mkmedia -hostile`),
// files with awkward names, and files that change between probing and
// decoding. Every file is processed correctly or fails with its own clear
// error; the job goes on and boxes stay inside their frames.
func TestRunHostileInputs(t *testing.T) {
	runHostile(t, Workers(nil, 2))
}

// TestRunHostileInputsGPU runs the same job on a GPU worker: NVDEC decodes
// what it can and hands the rest to the CPU, with the same outcome per
// file. It skips on machines without a GPU; the device run proves it.
func TestRunHostileInputsGPU(t *testing.T) {
	devs := gpuDevices(t)
	runHostile(t, Workers(devs[:1], 0))
}

func runHostile(t *testing.T, workers []Worker) {
	h := newHarness(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(hostile)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		cp(t, filepath.Join(hostile, e.Name()), filepath.Join(dir, e.Name()))
	}
	names := []string{"with space.mp4", "ünïcødé 日本.mp4", "new\nline.mp4", "-leading-dash.mp4", "tab\there.mp4"}
	for _, n := range names {
		cp(t, filepath.Join(media, "h264.mp4"), filepath.Join(dir, n))
	}
	// Changed after probing: one deleted, two cut short, one grown
	// (a transport stream that gets a second segment).
	cp(t, filepath.Join(media, "h264.mp4"), filepath.Join(dir, "vanishes.mp4"))
	cp(t, filepath.Join(media, "h264-faststart.mp4"), filepath.Join(dir, "shrinks.mp4"))
	cp(t, filepath.Join(media, "h264-faststart.mp4"), filepath.Join(dir, "loses-first-frame.mp4"))
	cp(t, filepath.Join(media, "h264-faststart.mp4"), filepath.Join(dir, "cut-in-last-packet.mp4"))
	ts, err := os.ReadFile(filepath.Join(hostile, "backwards.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "grows.ts"), ts[:len(ts)/2], 0o644); err != nil {
		t.Fatal(err)
	}

	found, err := Discover(context.Background(), []string{dir}, DiscoverOptions{})
	if err != nil || len(found.Errors) > 0 {
		t.Fatalf("discover: %v %v", err, found.Errors)
	}
	videos, err := ProbeAll(context.Background(), found.Files, ProbeOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "vanishes.mp4")); err != nil {
		t.Fatal(err)
	}
	size := int64(len(mustRead(t, filepath.Join(media, "h264-faststart.mp4"))))
	if err := os.Truncate(filepath.Join(dir, "shrinks.mp4"), size*2/3); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "loses-first-frame.mp4"), size/3); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "cut-in-last-packet.mp4"), size-20); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "grows.ts"), ts, 0o644); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	opts := h.options(out, len(workers))
	opts.KernelCache = t.TempDir()
	sum, err := Run(context.Background(), MakePlan(videos, workers, Shard{}), videos, opts)
	if err != nil {
		t.Fatal(err)
	}
	assertNoTemps(t, out)

	db := openDuck(t)
	type row struct {
		status, errText string
		frames          int64
	}
	got := map[string]row{}
	rows, err := db.Query(fmt.Sprintf(`select path, status, coalesce(error, ''), frames_inferred, coalesce(decoder, ''), coalesce(decoder_note, '')
		from read_parquet('%s')`, filepath.Join(out, "videos.parquet")))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var path, dec, note string
		var r row
		if err := rows.Scan(&path, &r.status, &r.errText, &r.frames, &dec, &note); err != nil {
			t.Fatal(err)
		}
		got[filepath.Base(path)] = r
		t.Logf("%q: %s, %d frames, decoder %s %s", filepath.Base(path), r.status, r.frames, dec, note)
	}
	rows.Close()
	want := map[string]row{
		"tiny16.mp4":         {"done", "", 10},
		"odd-99x67.mkv":      {"done", "", 10},
		"8k.mp4":             {"done", "", 2},
		"backwards.ts":       {"done", "", 20}, // timestamps go back halfway: every frame still inferred once
		"picture.png.mp4":    {"done", "", 1},  // FFmpeg reads a PNG as a one-frame video
		"subtitles-only.mkv": {"failed", "no video stream", 0},
		"vanishes.mp4":       {"failed", "no such file or directory", 0},
		"shrinks.mp4":        {"done", "", 25}, // the frames before the cut
		// Cut inside the first packet, the key frame: nothing to decode.
		"loses-first-frame.mp4":  {"failed", "no frame could be decoded", 0},
		"cut-in-last-packet.mp4": {"done", "", 49}, // the last frame, cut short, is lost
		"grows.ts":               {"done", "", 20}, // probed with 10 frames: the 10 added are inferred too
		// Playlists are refused, not followed: the loop would open itself
		// until file descriptors ran out, the HLS list would read tiny16.mp4.
		"playlist-loop.mp4": {"failed", decode.ErrPlaylist.Error() + " (concat)", 0},
		"playlist-hls.mp4":  {"failed", decode.ErrPlaylist.Error() + " (hls)", 0},
	}
	for _, n := range names {
		want[n] = row{"done", "", 50}
	}
	// The static build (what runs on the GPU machine) has neither FFV1 nor
	// PNG: a clear error per file instead.
	if !decode.HasDecoder("ffv1", "matroska") {
		want["odd-99x67.mkv"] = row{"failed", `no decoder for "ffv1" in this build`, 0}
	}
	if !decode.HasDecoder("png", "png_pipe") {
		want["picture.png.mp4"] = row{"failed", "not a readable media file", 0}
	}
	// The static build has no playlist demuxers: FFmpeg knows no such format.
	if !decode.HasDecoder("h264", "concat") {
		want["playlist-loop.mp4"] = row{"failed", "not a readable media file", 0}
		want["playlist-hls.mp4"] = row{"failed", "not a readable media file", 0}
	}
	if len(got) != len(want) || sum.Videos != len(want) {
		t.Errorf("%d videos recorded (summary %d), want %d", len(got), sum.Videos, len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%q: not in videos.parquet", name)
		case g.status != w.status || g.frames != w.frames || !strings.Contains(g.errText, w.errText):
			t.Errorf("%q: %s, %d frames, error %q; want %s, %d frames, error containing %q", name, g.status, g.frames, g.errText, w.status, w.frames, w.errText)
		case w.status == "failed" && !strings.Contains(g.errText, filepath.Join(dir, name)):
			t.Errorf("%q: error %q does not name the file", name, g.errText)
		}
	}
	// Every box inside its frame, frame indices distinct within a video.
	det := filepath.Join(out, "detections", "*.parquet")
	outside := queryInts(t, db, fmt.Sprintf(`select count(*) from read_parquet('%s') d join read_parquet('%s') v using (video_id)
		where d.x1 < 0 or d.y1 < 0 or d.x2 > v.width or d.y2 > v.height or d.x1 > d.x2 or d.y1 > d.y2`, det, filepath.Join(out, "videos.parquet")))
	if outside[0] != 0 {
		t.Errorf("%d boxes outside their frames", outside[0])
	}
	dup := queryInts(t, db, fmt.Sprintf(`select count(*) from (select video_id, frame_index, class_id from read_parquet('%s') group by all having count(*) > 1)`, det))
	if dup[0] != 0 {
		t.Errorf("%d (video, frame, class) repeated", dup[0])
	}
	checkPaths(t, db, out, dir, names)
}

// checkPaths checks that awkward names come back byte for byte.
func checkPaths(t *testing.T, db *sql.DB, out, dir string, names []string) {
	t.Helper()
	for _, n := range names {
		var c int64
		if err := db.QueryRow(fmt.Sprintf(`select count(*) from read_parquet('%s') where path = ? and status = 'done'`, filepath.Join(out, "videos.parquet")), filepath.Join(dir, n)).Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c != 1 {
			t.Errorf("%q: %d done rows with that exact path", n, c)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOutputNamesStayInOut: whatever the input path, the files written for
// it are named by the hash of the path and stay inside --out.
func TestOutputNamesStayInOut(t *testing.T) {
	out := t.TempDir()
	o := &outDir{root: out}
	for _, p := range []string{"../../../etc/passwd", "/abs/../../x.mp4", "..", "a/../../b.mp4", "-rf", "x\x00y.mp4", "new\nline.mp4", strings.Repeat("long/", 500) + "v.mp4"} {
		id := VideoID(p)
		for _, f := range []string{o.stagePath(id, detectionsDir), o.stagePath(id, tracksDir), o.recordPath(id)} {
			rel, err := filepath.Rel(out, f)
			if err != nil || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) || len(filepath.Base(f)) > 34 {
				t.Errorf("%q: writes %s", p, f)
			}
		}
	}
}
