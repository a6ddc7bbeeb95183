package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/marcboeker/go-duckdb/v2"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
	"github.com/dsbatch/dsbatch/job"
)

// model writes a 64×64 v8-layout detector: every frame gets one "person"
// box at model (22,27)-(42,37) with score 0.8.
func model(t *testing.T) string {
	t.Helper()
	n := 2
	raw := []float32{
		32, 0, // cx
		32, 0, // cy
		20, 0, // w
		10, 0, // h
		0.8, 0, // person
		0, 0.1, // car
	}
	path := filepath.Join(t.TempDir(), "det.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: 6, D2: n, Raw: raw, Names: []string{"person", "car"}}).Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func withORT(t *testing.T) {
	t.Helper()
	lib, err := onnxtest.ORTLib()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DSBATCH_ORT_LIB", lib)
}

func duckInt(t *testing.T, q string) int64 {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestRunCLI(t *testing.T) {
	withORT(t)
	m := model(t)
	out := filepath.Join(t.TempDir(), "out")
	r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, media)
	if r.code != exitPartial {
		t.Fatalf("exit %d, want 3 (bad files); stdout %s stderr %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"videos: 11 done, 5 failed, 0 already done (of 16)", "frames/s", "peak memory", "failed: probe " + filepath.Join(media, "bad", "empty.mp4") + ": empty file"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	rows := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/detections/*.parquet')", out))
	inferred := duckInt(t, fmt.Sprintf("select sum(frames_inferred) from read_parquet('%s/videos.parquet')", out))
	if rows == 0 || rows != inferred {
		t.Errorf("%d detections for %d inferred frames, want one per frame", rows, inferred)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/detections/*.parquet') where class_name <> 'person' or score <> 0.8::float", out)); n != 0 {
		t.Errorf("%d unexpected rows", n)
	}
	// Tracking is on by default: one steady box per video is one track, on
	// every row (it is there from the first frame). In resize.ts the frame
	// halves at frame 25 and the box's pixels with it: a second track starts
	// there, confirmed by its second detection.
	notResize := fmt.Sprintf("read_parquet('%s/detections/*.parquet') where video_path not like '%%resize.ts'", out)
	if n := duckInt(t, "select count(*) from "+notResize+" and track_id is null"); n != 0 {
		t.Errorf("%d rows without a track", n)
	}
	if n := duckInt(t, "select max(c) from (select count(distinct track_id) c from "+notResize+" group by video_id)"); n != 1 {
		t.Errorf("up to %d tracks in one video, want 1", n)
	}
	resize := fmt.Sprintf("read_parquet('%s/detections/*.parquet') where video_path like '%%resize.ts'", out)
	if n := duckInt(t, "select count(distinct track_id) from "+resize); n != 2 {
		t.Errorf("resize.ts: %d tracks, want 2", n)
	}
	if n := duckInt(t, "select count(*) from "+resize+" and track_id is null and frame_index = 25"); n != 1 {
		t.Errorf("resize.ts: frame 25 (first at the new size) should be the one untracked row")
	}
	// tracks: one row per track, its detections counted, a steady box still.
	tracks := fmt.Sprintf("read_parquet('%s/tracks/*.parquet')", out)
	if n, want := duckInt(t, "select count(*) from "+tracks), duckInt(t, fmt.Sprintf("select count(distinct (video_id, track_id)) from read_parquet('%s/detections/*.parquet') where track_id is not null", out)); n != want || n == 0 {
		t.Errorf("%d track rows for %d tracks", n, want)
	}
	if n, want := duckInt(t, "select sum(detections) from "+tracks), duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/detections/*.parquet') where track_id is not null", out)); n != want {
		t.Errorf("tracks count %d detections, detections hold %d tracked", n, want)
	}
	if n := duckInt(t, "select count(*) from "+tracks+" where path_length <> 0 or mean_speed <> 0 or first_x1 <> last_x1 or class_name <> 'person'"); n != 0 {
		t.Errorf("%d tracks of a steady person box moved", n)
	}
	var run struct {
		Version  string                  `json:"dsbatch_version"`
		Model    struct{ SHA256 string } `json:"model"`
		Settings struct {
			Conf  float64  `json:"conf"`
			Names []string `json:"class_names"`
		} `json:"settings"`
		Summary struct {
			Done    int   `json:"done"`
			PeakRSS int64 `json:"peak_rss_bytes"`
		} `json:"summary"`
	}
	b, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatal(err)
	}
	sha, _ := fileSHA256(m)
	if run.Model.SHA256 != sha || run.Settings.Conf != 0.25 || len(run.Settings.Names) != 2 || run.Summary.Done != 11 || run.Summary.PeakRSS == 0 {
		t.Errorf("run.json: %s", b)
	}

	// Rerun: finished videos are skipped, the bad ones fail again.
	r = dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, media)
	if r.code != exitPartial || !strings.Contains(r.stdout, "0 done, 5 failed, 11 already done") {
		t.Errorf("rerun: exit %d\n%s", r.code, r.stdout)
	}
	// Other settings are refused.
	r = dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, "--conf", "0.5", media)
	if r.code != exitFailed || !strings.Contains(r.stderr, "--force") {
		t.Errorf("other settings: exit %d %s", r.code, r.stderr)
	}
	// Only good files: exit 0.
	r = dsbatch(t, "run", "--no-cache", "--model", m, "--out", filepath.Join(t.TempDir(), "o2"), "--exclude", "bad/*", media)
	if r.code != 0 {
		t.Errorf("good files only: exit %d %s", r.code, r.stderr)
	}
}

func TestRunConfigFile(t *testing.T) {
	withORT(t)
	m := model(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "job.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("model: %s\nout: %s\nconf: 0.7\nstride: 5\nexclude: [\"bad/*\", \"*.ts\"]\nbatch: 4\n", m, filepath.Join(dir, "out"))), 0o644)
	r := dsbatch(t, "run", "--no-cache", "--config", cfg, "--stride", "10", media)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "out", "run.json"))
	var run struct {
		Settings struct {
			Conf   float64 `json:"conf"`
			Stride int     `json:"stride"`
		} `json:"settings"`
	}
	json.Unmarshal(b, &run)
	if run.Settings.Conf < 0.69 || run.Settings.Conf > 0.71 || run.Settings.Stride != 10 {
		t.Errorf("settings from config and flags: %+v (want conf 0.7 from the file, stride 10 from the flag)", run.Settings)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/videos.parquet') where path like '%%.ts'", filepath.Join(dir, "out"))); n != 0 {
		t.Error("the config's exclude list was ignored")
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/detections/*.parquet') where frame_index %% 10 <> 0", filepath.Join(dir, "out"))); n != 0 {
		t.Errorf("%d rows off the stride", n)
	}
	os.WriteFile(cfg, []byte("modle: x.onnx\n"), 0o644)
	if r := dsbatch(t, "run", "--config", cfg, media); r.code != exitFailed || !strings.Contains(r.stderr, `unknown setting "modle"`) {
		t.Errorf("unknown key: exit %d %s", r.code, r.stderr)
	}
}

// TestRunModelDescription: a YAML file beside the model (det.yaml for
// det.onnx) holds its settings in run's vocabulary; flags and --config
// win over it, and a setting that is not the model's is refused.
func TestRunModelDescription(t *testing.T) {
	withORT(t)
	m := model(t)
	desc := strings.TrimSuffix(m, ".onnx") + ".yaml"
	os.WriteFile(desc, []byte("classes: [walker, vehicle]\nconf: 0.7\ninput: bgr,pad=0\nhead: v8\n"), 0o644)
	video := filepath.Join(media, "h264.mp4")
	settings := func(out string) (s struct {
		Conf  float64  `json:"conf"`
		Input string   `json:"input"`
		Head  string   `json:"head"`
		Names []string `json:"class_names"`
	}) {
		b, _ := os.ReadFile(filepath.Join(out, "run.json"))
		var run struct {
			Settings json.RawMessage `json:"settings"`
		}
		json.Unmarshal(b, &run)
		json.Unmarshal(run.Settings, &s)
		return s
	}
	out := filepath.Join(t.TempDir(), "a")
	r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, video)
	if r.code != 0 || !strings.Contains(r.stderr, "from "+desc+": classes, conf, head, input") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	s := settings(out)
	if s.Conf < 0.69 || s.Conf > 0.71 || s.Input != "bgr,scale=1/255,fit=centre,pad=0" || s.Head != "v8" || strings.Join(s.Names, ",") != "walker,vehicle" {
		t.Errorf("settings from the description: %+v", s)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/detections/*.parquet') where class_name = 'walker'", out)); n == 0 {
		t.Error("no detection named by the description's classes")
	}
	names := filepath.Join(t.TempDir(), "names.txt")
	os.WriteFile(names, []byte("a\nb\n"), 0o644)
	out = filepath.Join(t.TempDir(), "b")
	if r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, "--conf", "0.5", "--classes", names, video); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if s := settings(out); s.Conf != 0.5 || strings.Join(s.Names, ",") != "a,b" || s.Input == "" {
		t.Errorf("flags over the description: %+v", s)
	}
	os.WriteFile(desc, []byte("stride: 4\n"), 0o644)
	if r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", filepath.Join(t.TempDir(), "c"), video); r.code != exitFailed ||
		!strings.Contains(r.stderr, desc) || !strings.Contains(r.stderr, `"stride" is not a setting of the model`) {
		t.Errorf("run setting in the description: exit %d %s", r.code, r.stderr)
	}
}

func TestRunModelErrorsBeforeWork(t *testing.T) {
	withORT(t)
	dir := t.TempDir()
	good, _ := os.ReadFile(model(t))
	trunc := filepath.Join(dir, "trunc.onnx")
	os.WriteFile(trunc, good[:len(good)/2], 0o644)
	text := filepath.Join(dir, "text.onnx")
	os.WriteFile(text, []byte("hello"), 0o644)
	for _, m := range []string{trunc, text, filepath.Join(dir, "missing.onnx")} {
		out := filepath.Join(dir, "out-"+filepath.Base(m))
		r := dsbatch(t, "run", "--model", m, "--out", out, media)
		if r.code != exitFailed || !strings.Contains(r.stderr, m) {
			t.Errorf("%s: exit %d %s", m, r.code, r.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: output folder created before the model was checked", m)
		}
	}
	r := dsbatch(t, "run", "--model", filepath.Join(dir, "x.onnx"), media)
	if r.code != exitFailed || !strings.Contains(r.stderr, "--model and --out are required") {
		t.Errorf("missing --out: %s", r.stderr)
	}
	r = dsbatch(t, "run", "--model", trunc, "--out", dir, "--ort-lib", filepath.Join(dir, "nope.so"), media)
	if r.code != exitFailed {
		t.Errorf("bad model with bad lib: exit %d", r.code)
	}
	m := model(t)
	r = dsbatch(t, "run", "--model", m, "--out", filepath.Join(dir, "o"), "--ort-lib", filepath.Join(dir, "nope.so"), media)
	if r.code != exitFailed || !strings.Contains(r.stderr, "nope.so") {
		t.Errorf("missing library: exit %d %s", r.code, r.stderr)
	}
}

// TestRunSIGINT interrupts a run, checks that nothing half-written is
// visible, and that a rerun completes with one row per frame.
func TestRunSIGINT(t *testing.T) {
	withORT(t)
	m := model(t)
	dir := t.TempDir()
	src, _ := filepath.Abs(filepath.Join(media, "h264.mp4"))
	archive := filepath.Join(dir, "archive")
	os.Mkdir(archive, 0o755)
	for i := 0; i < 40; i++ {
		os.Symlink(src, filepath.Join(archive, fmt.Sprintf("clip%02d.mp4", i)))
	}
	out := filepath.Join(dir, "out")
	// Parts of two videos (50 detections each), so that parts are written
	// as the run goes.
	cmd := exec.Command(bin, "run", "--no-cache", "--batch", "1", "--decoders", "1", "--part-rows", "100", "--model", m, "--out", out, archive)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if files, _ := filepath.Glob(filepath.Join(out, "detections", "*.parquet")); len(files) >= 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code != exitFailed || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("after SIGINT: exit %d, stderr %s", code, stderr.String())
	}
	done := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/videos.parquet') where status = 'done'", out))
	if done == 0 || done == 40 {
		t.Logf("interrupted with %d of 40 videos done", done)
	}
	filepath.Walk(out, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file visible after SIGINT: %s", p)
		}
		return nil
	})
	r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, archive)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("%d already done", done)) {
		t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/detections/*.parquet')", out)); n != 40*50 {
		t.Errorf("%d rows after resume, want %d (40 videos × 50 frames, no duplicates)", n, 40*50)
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from (select video_id, frame_index from read_parquet('%s/detections/*.parquet') group by all having count(*) > 1)", out)); n != 0 {
		t.Errorf("%d duplicated frames", n)
	}
}

// TestRunPose: a pose model (Ultralytics' layout, kpt_shape in its
// metadata) gets its keypoints in the detections table, named as COCO's,
// in frame pixels mapped as its boxes are.
func TestRunPose(t *testing.T) {
	withORT(t)
	const k, rows = 17, 4 + 1 + 17*3
	raw := make([]float32, rows*2) // [rows, 2 anchors]
	set := func(r, a int, v float32) { raw[r*2+a] = v }
	set(0, 0, 32)
	set(1, 0, 32)
	set(2, 0, 20)
	set(3, 0, 10)
	set(4, 0, 0.8) // person; anchor 1 scores nothing
	for i := 0; i < k; i++ {
		set(5+3*i, 0, float32(24+i))
		set(5+3*i+1, 0, 30)
		set(5+3*i+2, 0, 0.9)
	}
	m := filepath.Join(t.TempDir(), "pose.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: rows, D2: 2, Raw: raw, Names: []string{"person"},
		Metadata: map[string]string{"kpt_shape": "[17, 3]", "task": "pose"}}).Write(m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, filepath.Join(media, "h264.mp4"))
	if r.code != 0 || !strings.Contains(r.stderr, "pose/17x3 head") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	dets := fmt.Sprintf("read_parquet('%s/detections/*.parquet')", out)
	n := duckInt(t, "select count(*) from "+dets)
	if n == 0 || duckInt(t, "select count(*) from "+dets+" where len(json_keys(to_json(keypoints))) = 17 and "+
		"json_keys(to_json(keypoints))[1] = 'nose' and json_keys(to_json(keypoints))[17] = 'right_ankle'") != n {
		t.Fatalf("%d detections, not all with 17 named keypoints", n)
	}
	// Points map as boxes do: keypoint i is 2+i model pixels right of the
	// box's left edge and 3 of its 10 pixels down.
	bad := duckInt(t, "select count(*) from (select x1, y1, y2, point, p, "+
		"list_position(['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', "+
		"'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle'], point) i "+
		"from (unpivot (select x1, y1, y2, unnest(keypoints) from "+dets+") on columns(* exclude (x1, y1, y2)) into name point value p)) "+
		"where i is null or abs((p.x - x1) / ((y2 - y1) / 10) - (2 + i - 1)) > 0.01 or abs((p.y - y1) / (y2 - y1) - 0.3) > 0.001 or p.score <> 0.9::float")
	if bad != 0 {
		t.Errorf("%d keypoints not where the model put them", bad)
	}
	if w := duckInt(t, "SELECT count(*) FROM "+dets+" WHERE keypoints.left_wrist.score > 0.5"); w != n {
		t.Errorf("keypoints.left_wrist finds %d left wrists for %d detections", w, n)
	}
	// inspect: every point seen on every detection, in COCO's order.
	var in job.Inspection
	if r := dsbatch(t, "inspect", "--json", out); r.code != 0 || json.Unmarshal([]byte(r.stdout), &in) != nil {
		t.Fatalf("inspect: exit %d %s", r.code, r.stderr)
	}
	if len(in.Keypoints) != 17 || in.Keypoints[0].Name != "nose" || in.Keypoints[16].Name != "right_ankle" ||
		in.Keypoints[9].Detections != n || in.Keypoints[9].Share != 1 {
		t.Errorf("inspect's keypoints: %+v", in.Keypoints)
	}
	if r := dsbatch(t, "inspect", out); !strings.Contains(r.stdout, "left_wrist") || !strings.Contains(r.stdout, "100.0%") {
		t.Errorf("inspect prints no keypoint table:\n%s", r.stdout)
	}
	// A folder a pose run wrote before keypoints were named fields (its
	// settings without keypoint_columns) is not resumed into: its parts
	// hold lists of named points, which new parts cannot join.
	path := filepath.Join(out, ".dsbatch", "settings.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var settings map[string]any
	if err := json.Unmarshal(b, &settings); err != nil || settings["keypoint_columns"] != "fields" {
		t.Fatalf("settings %s: %v", b, err)
	}
	delete(settings, "keypoint_columns")
	if b, err = json.Marshal(settings); err != nil || os.WriteFile(path, b, 0o644) != nil {
		t.Fatal(err)
	}
	if r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, filepath.Join(media, "h264.mp4")); r.code == 0 || !strings.Contains(r.stderr, "keypoint columns") {
		t.Errorf("a pose run into an older pose run's folder: exit %d: %s", r.code, r.stderr)
	}
}

// TestSchemaPoseQueries runs docs/SCHEMA.md's pose queries on the run of
// a pose model whose person raises the left wrist above the nose, while a
// second one holds both wrists below it with the left one's out of sight
// above: each sql-pose query finds the first only; the sql-pose-points
// query gives each person's 17 points a row each, and sql-pose-visible
// every point seen but the left wrist, seen on one person of two.
func TestSchemaPoseQueries(t *testing.T) {
	withORT(t)
	blocks := schemaBlocks(t, "sql-pose", 2)
	const k, rows = 17, 4 + 1 + 17*3
	raw := make([]float32, rows*2) // [rows, 2 anchors]: two people side by side
	set := func(r, a int, v float32) { raw[r*2+a] = v }
	for a, x := range []float32{16, 48} {
		set(0, a, x)
		set(1, a, 32)
		set(2, a, 12)
		set(3, a, 40)
		set(4, a, 0.8)
		for i := 0; i < k; i++ {
			set(5+3*i, a, x)
			set(5+3*i+1, a, 30)
			set(5+3*i+2, a, 0.9)
		}
	}
	set(5+3*9+1, 0, 20)  // person 0's left wrist above the nose (30)
	set(5+3*9+1, 1, 20)  // person 1's too, but out of sight:
	set(5+3*9+2, 1, 0.1) //
	set(5+3*10+1, 1, 40) // and the right one below
	m := filepath.Join(t.TempDir(), "pose.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: rows, D2: 2, Raw: raw, Names: []string{"person"},
		Metadata: map[string]string{"kpt_shape": "[17, 3]", "task": "pose"}}).Write(m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if r := dsbatch(t, "run", "--no-cache", "--no-track", "--model", m, "--out", out, filepath.Join(media, "h264.mp4")); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	frames := duckInt(t, fmt.Sprintf("select count(distinct frame_index) from read_parquet('%s/detections/*.parquet')", out))
	points, visible := schemaBlocks(t, "sql-pose-points", 1), schemaBlocks(t, "sql-pose-visible", 1)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(out); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		q := strings.TrimSuffix(b, ";")
		n := duckInt(t, "select count(*) from ("+q+")")
		if frames == 0 || n != frames {
			t.Errorf("%d rows over %d frames (one person a frame) from\n%s", n, frames, q)
		}
	}
	for _, b := range points {
		q := strings.TrimSuffix(b, ";")
		if n := duckInt(t, "select count(*) from ("+q+") where point = 'left_wrist' and p.score > 0.5"); n != frames {
			t.Errorf("%d left wrists seen over %d frames (one a frame) from\n%s", n, frames, q)
		}
		if n := duckInt(t, "select count(*) from ("+q+")"); n != 2*k*frames {
			t.Errorf("%d points over %d frames (%d a frame) from\n%s", n, frames, 2*k, q)
		}
	}
	for _, b := range visible {
		q := strings.TrimSuffix(b, ";")
		if n := duckInt(t, "select count(*) from ("+q+") where visible = 1 or (point = 'left_wrist' and visible = 0.5)"); n != k {
			t.Errorf("%d of %d points seen as the model sees them from\n%s", n, k, q)
		}
	}
}

// TestRunOBB: an oriented-box model (task obb in its metadata) gets its
// boxes' centre, size, angle and corners in the detections table, and
// x1..y2 bound the turned box.
func TestRunOBB(t *testing.T) {
	withORT(t)
	raw := []float32{ // [4+1+1, 2 anchors]: a 20×10 box turned a quarter turn
		32, 0, 32, 0, 20, 0, 10, 0, 0.8, 0.1, math.Pi / 2, 0,
	}
	m := filepath.Join(t.TempDir(), "obb.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: 6, D2: 2, Raw: raw, Names: []string{"plane"}, Metadata: map[string]string{"task": "obb"}}).Write(m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, filepath.Join(media, "h264.mp4")); r.code != 0 || !strings.Contains(r.stderr, "obb head") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	dets := fmt.Sprintf("read_parquet('%s/detections/*.parquet')", out)
	n := duckInt(t, "select count(*) from "+dets)
	ok := duckInt(t, "select count(*) from "+dets+" where abs(obb.angle - pi()/2) < 1e-5 and abs(obb.w / obb.h - 2) < 1e-4 "+
		"and abs((x2 - x1) / (y2 - y1) - 0.5) < 1e-3 and len(corners) = 4 "+
		"and abs(list_min(list_transform(corners, c -> c.x)) - x1) < 1e-3 and abs(list_max(list_transform(corners, c -> c.y)) - y2) < 1e-3 "+
		"and abs(obb.cx - (x1 + x2) / 2) < 1e-3")
	if n == 0 || ok != n {
		t.Errorf("%d of %d detections with the oriented box the model gave", ok, n)
	}
}

// TestRunPoseNamesFromDescription: a pose model of points COCO does not
// name takes their names from its description file; a count that does not
// fit the model is refused.
func TestRunPoseNamesFromDescription(t *testing.T) {
	withORT(t)
	const rows = 4 + 1 + 2*3
	raw := make([]float32, rows*2)
	for r, v := range []float32{32, 32, 20, 10, 0.8, 30, 30, 0.9, 34, 34, 0.9} {
		raw[r*2] = v
	}
	m := filepath.Join(t.TempDir(), "hand.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: rows, D2: 2, Raw: raw, Names: []string{"hand"}, Metadata: map[string]string{"kpt_shape": "[2, 3]"}}).Write(m); err != nil {
		t.Fatal(err)
	}
	desc := strings.TrimSuffix(m, ".onnx") + ".yaml"
	os.WriteFile(desc, []byte("keypoints: [wrist, thumb_tip]\n"), 0o644)
	out := filepath.Join(t.TempDir(), "out")
	if r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", out, filepath.Join(media, "h264.mp4")); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	dets := fmt.Sprintf("read_parquet('%s/detections/*.parquet')", out)
	if n, all := duckInt(t, "select count(*) from "+dets+" where json_keys(to_json(keypoints)) = ['wrist', 'thumb_tip']"), duckInt(t, "select count(*) from "+dets); n == 0 || n != all {
		t.Errorf("%d of %d detections with the description's point names", n, all)
	}
	os.WriteFile(desc, []byte("keypoints: [wrist]\n"), 0o644)
	if r := dsbatch(t, "run", "--no-cache", "--model", m, "--out", filepath.Join(t.TempDir(), "o2"), filepath.Join(media, "h264.mp4")); r.code != exitFailed || !strings.Contains(r.stderr, "1 keypoint names for a model of 2 points") {
		t.Errorf("wrong count: exit %d %s", r.code, r.stderr)
	}
}

// segDetector is a segmentation model of a 64×64 input as Ultralytics
// exports one (sizes symbolic, task metadata, two outputs): a car, box
// 8..32, whose mask (prototype 0, positive left of input x 16) covers the
// box's left third, and a person, box 36..52, whose mask (prototype 1,
// positive everywhere) covers all of it.
func segDetector(t *testing.T) string {
	const anchors, rows = 84, 4 + 2 + 2
	raw := make([]float32, rows*anchors)
	for a, v := range [][]float32{{20, 20, 24, 24, 0.9, 0, 1, 0}, {44, 44, 16, 16, 0, 0.8, 0, 1}} {
		for r, x := range v {
			raw[r*anchors+a] = x
		}
	}
	protos := make([]float32, 2*16*16)
	for i := range 256 {
		protos[i] = -1
		if i%16 < 4 {
			protos[i] = 1
		}
		protos[256+i] = 1
	}
	m := filepath.Join(t.TempDir(), "seg.onnx")
	if err := (onnxtest.Detector{H: 64, W: 64, D1: rows, D2: anchors, Raw: raw, Names: []string{"car", "person"}, Symbolic: true,
		Protos: protos, ProtoShape: [3]int64{2, 16, 16}, Metadata: map[string]string{"task": "segment"}}).Write(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunSeg: a segmentation model's detections carry their masks, as
// COCO run-lengths over the frame that decode to the pixels the model
// gave, and docs/SCHEMA.md's mask queries (its sql-seg blocks) run on
// them.
func TestRunSeg(t *testing.T) {
	withORT(t)
	out := filepath.Join(t.TempDir(), "out")
	r := dsbatch(t, "run", "--no-cache", "--recorded-at", "container", "--model", segDetector(t), "--out", out, filepath.Join(media, "h264.mp4"))
	if r.code != 0 || !strings.Contains(r.stderr, "v8/seg2 head") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	dets := fmt.Sprintf("read_parquet('%s/detections/*.parquet')", out)
	videos := fmt.Sprintf("read_parquet('%s/videos.parquet')", out)
	n := duckInt(t, "select count(*) from "+dets)
	frames := duckInt(t, "select count(distinct frame_index) from "+dets)
	if n == 0 || n != 2*frames {
		t.Fatalf("%d detections over %d frames, want two a frame", n, frames)
	}
	// Every mask's runs cover the frame; the first run of 0s ends at its
	// first pixel, inside the box (column-major: x × height + y).
	if bad := duckInt(t, "select count(*) from "+dets+", "+videos+" v where mask_rle.size <> [v.height, v.width] or list_sum(mask_rle.counts) <> v.width * v.height "+
		"or len(mask_rle.counts) % 2 <> 1 or mask_rle.counts[1] // v.height < floor(x1) or mask_rle.counts[1] % v.height < floor(y1)"); bad != 0 {
		t.Errorf("%d masks whose runs do not fit the frame and box", bad)
	}
	// The car's mask covers its box's left third, the person's all of its
	// box, to the pixel at each edge.
	for _, c := range []struct {
		class string
		share float64
	}{{"car", 1.0 / 3}, {"person", 1}} {
		q := fmt.Sprintf("select count(*) from %s where class_name = '%s' and abs(mask_area - %g * (x2 - x1) * (y2 - y1)) > (x2 - x1) + (y2 - y1) + 1", dets, c.class, c.share)
		if bad := duckInt(t, q); bad != 0 {
			t.Errorf("%d %s masks not of %.2f of the box", bad, c.class, c.share)
		}
	}
	// The run-lengths decode (as pycocotools would) to mask_area pixels,
	// each of them in the box.
	bad := duckInt(t, "with r as (select frame_index, class_id, x1, y1, x2, y2, mask_area, v.height h, unnest(mask_rle.counts) c, generate_subscripts(mask_rle.counts, 1) i from "+dets+", "+videos+" v), "+
		"s as (select *, sum(c) over (partition by frame_index, class_id order by i) - c as start from r) "+
		"select count(*) from s where i % 2 = 0 and (start // h < floor(x1) or (start + c - 1) // h > ceil(x2) or start % h < floor(y1) or (start + c - 1) % h > ceil(y2))")
	if bad != 0 {
		t.Errorf("%d runs of mask pixels outside their box", bad)
	}
	if got := duckInt(t, "with r as (select mask_area, list_sum(list_filter(mask_rle.counts, (c, i) -> i % 2 = 0)) s from "+dets+") select count(*) from r where s <> mask_area"); got != 0 {
		t.Errorf("%d masks whose runs of 1s do not add up to mask_area", got)
	}
	// inspect: mask areas by class, as DuckDB sums them.
	var in job.Inspection
	if r := dsbatch(t, "inspect", "--json", out); r.code != 0 || json.Unmarshal([]byte(r.stdout), &in) != nil {
		t.Fatalf("inspect: exit %d %s", r.code, r.stderr)
	}
	if len(in.Masks) != 2 || in.Masks[0].Class != "car" || in.Masks[0].Detections != frames ||
		in.Masks[0].Mean != float64(duckInt(t, "select sum(mask_area) from "+dets+" where class_name = 'car'"))/float64(frames) || in.Masks[1].Empty != 0 {
		t.Errorf("inspect's masks: %+v", in.Masks)
	}
	if r := dsbatch(t, "inspect", out); !strings.Contains(r.stdout, "MASKS OF CLASS") {
		t.Errorf("inspect prints no mask table:\n%s", r.stdout)
	}
	blocks := schemaBlocks(t, "sql-seg", 2)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(out); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		q := strings.TrimSuffix(b, ";")
		if got := duckInt(t, "select count(*) from ("+q+")"); got != 1 {
			t.Errorf("%d rows, want one (cars, in one hour), from\n%s", got, q)
		}
	}
}
