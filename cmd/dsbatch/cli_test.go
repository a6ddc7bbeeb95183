package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/dsbatch/dsbatch/job"
)

// bin is the dsbatch binary built once for the end-to-end tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dsbatch-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "dsbatch")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building dsbatch:", err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const media = "../../testdata/media"

type result struct {
	stdout, stderr string
	code           int
}

func dsbatch(t *testing.T, args ...string) result {
	t.Helper()
	return dsbatchAs(t, nil, args...)
}

func dsbatchAs(t *testing.T, cred *syscall.Credential, args ...string) result {
	t.Helper()
	return dsbatchCmd(t, cred, nil, args...)
}

// dsbatchEnv runs dsbatch with extra environment variables.
func dsbatchEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return dsbatchCmd(t, nil, env, args...)
}

func dsbatchCmd(t *testing.T, cred *syscall.Credential, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func probeJSON(t *testing.T, r result) map[string]job.Video {
	t.Helper()
	out := map[string]job.Video{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var v job.Video
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		out[filepath.Base(v.Path)] = v
	}
	return out
}

func TestProbeGoodFiles(t *testing.T) {
	cache := t.TempDir()
	r := dsbatch(t, "probe", "--cache-dir", cache, "--exclude", "bad/*", media)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
	}
	for _, want := range []string{"h264.mp4", "hevc10.mkv", "Main 10", "yuv420p10le", "vp9.webm", "mpeg4.avi", "resize.ts", "mpegts"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "bad/") {
		t.Error("--exclude bad/* did not exclude")
	}
	if !strings.Contains(r.stderr, "10 files: 10 readable, 0 failed (0 from the cache)") {
		t.Errorf("summary: %s", r.stderr)
	}
	r = dsbatch(t, "probe", "--cache-dir", cache, "--exclude", "bad/*", media)
	if !strings.Contains(r.stderr, "(10 from the cache)") {
		t.Errorf("second probe not cached: %s", r.stderr)
	}
}

func TestProbeJSONAndBadFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "gone.mp4"), filepath.Join(dir, "broken.mp4")); err != nil {
		t.Fatal(err)
	}
	r := dsbatch(t, "probe", "--json", "--no-cache", media, dir)
	if r.code != exitPartial {
		t.Fatalf("exit %d, want %d when some files fail; stderr %s", r.code, exitPartial, r.stderr)
	}
	vs := probeJSON(t, r)
	if len(vs) != 17 {
		t.Fatalf("%d JSON objects, want 17", len(vs))
	}
	rot := vs["rotated.mp4"]
	if rot.Rotation != 90 || rot.Width != 320 || rot.Height != 240 || rot.Frames != 20 || rot.Estimated || rot.Codec != "h264" || rot.Profile != "High" {
		t.Errorf("rotated.mp4: %+v", rot)
	}
	if hv := vs["hevc.mkv"]; !hv.Estimated || hv.Frames != 40 || hv.Container != "matroska" {
		t.Errorf("hevc.mkv: %+v", hv)
	}
	wantErr := map[string]string{
		"empty.mp4":         "empty file",
		"random.mp4":        "not a readable media file",
		"truncated.mp4":     "not a readable media file",
		"audio-only.mkv":    "no video stream: streams are audio/pcm_s16le",
		"unknown-codec.mkv": "unsupported video codec",
		"broken.mp4":        "broken symbolic link",
	}
	for name, want := range wantErr {
		v := vs[name]
		if !strings.Contains(v.Error, want) || !strings.Contains(v.Error, name) {
			t.Errorf("%s: error %q, want it to name the file and say %q", name, v.Error, want)
		}
	}
}

func TestProbeCountFrames(t *testing.T) {
	r := dsbatch(t, "probe", "--json", "--no-cache", "--count-frames", filepath.Join(media, "vfr.mkv"))
	v := probeJSON(t, r)["vfr.mkv"]
	if v.Frames != 40 || v.Estimated {
		t.Errorf("vfr.mkv counted %d frames (estimated %v), want 40", v.Frames, v.Estimated)
	}
}

// TestProbePermissionDenied runs dsbatch as an unprivileged user, since root
// reads any file.
func TestProbePermissionDenied(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	locked := filepath.Join(dir, "locked.mp4")
	b, err := os.ReadFile(filepath.Join(media, "h264.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(locked, b, 0o000); err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody
	}
	r := dsbatchAs(t, cred, "probe", "--json", "--no-cache", locked)
	if r.code != exitPartial {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	if v := probeJSON(t, r)["locked.mp4"]; !strings.Contains(v.Error, "permission denied") || !strings.Contains(v.Error, locked) {
		t.Errorf("error %q", v.Error)
	}
}

func TestProbeErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"probe"}, "give at least one file or folder"},
		{[]string{"probe", "/nonexistent/archive"}, "/nonexistent/archive: no such file or directory"},
		{[]string{"probe", "--include", "[", media}, "bad glob"},
		{[]string{"plan", "--shard", "3/3", media}, "want i/n"},
		{[]string{"plan", "--gpus", "2", media}, "--gpus 2"},
	}
	for _, tt := range tests {
		r := dsbatch(t, tt.args...)
		if r.code != exitFailed || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

func readPlan(t *testing.T, path string) *job.Plan {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p job.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestPlan(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	r := dsbatch(t, "plan", "--no-cache", "--gpus", "0", "--cpu-workers", "3", "-o", a, media)
	if r.code != exitPartial { // the bad files are skipped and listed
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"WORKER", "imbalance", "11 videos", "5 skipped", "plan written to"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "skipped probe "+filepath.Join(media, "bad/empty.mp4")) {
		t.Errorf("skipped files not listed: %s", r.stderr)
	}
	dsbatch(t, "plan", "--gpus", "0", "--cpu-workers", "3", "-o", b, "--cache-dir", dir, media)
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Error("the same input gave two different plans")
	}
	p := readPlan(t, a)
	if len(p.Workers) != 3 || p.Videos != 11 || len(p.Skipped) != 5 {
		t.Fatalf("plan: %d workers, %d videos, %d skipped", len(p.Workers), p.Videos, len(p.Skipped))
	}
	for _, w := range p.Workers {
		if w.Kind != "cpu" || len(w.Videos) == 0 {
			t.Errorf("worker %+v", w.Worker)
		}
	}
}

func TestPlanShards(t *testing.T) {
	dir := t.TempDir()
	var all []string
	for i := 0; i < 3; i++ {
		out := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		dsbatch(t, "plan", "--no-cache", "--exclude", "bad/*", "--shard", fmt.Sprintf("%d/3", i), "-o", out, media)
		p := readPlan(t, out)
		if p.Shard.Index != i || p.Shard.Count != 3 {
			t.Errorf("shard recorded as %+v", p.Shard)
		}
		for _, w := range p.Workers {
			for _, v := range w.Videos {
				all = append(all, v.Path)
			}
		}
	}
	sort.Strings(all)
	if len(all) != 10 {
		t.Fatalf("3 shards hold %d videos, want the 10 good ones once each: %v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("%s in two shards", all[i])
		}
	}
}

func TestPlanStdout(t *testing.T) {
	r := dsbatch(t, "plan", "--no-cache", "-o", "-", filepath.Join(media, "h264.mp4"))
	var p job.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.Videos != 1 {
		t.Fatalf("stdout is not the plan: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "imbalance") {
		t.Errorf("summary should go to stderr with -o -: %s", r.stderr)
	}
}

func TestGPUsWithoutGPU(t *testing.T) {
	r := dsbatch(t, "gpus")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.HasPrefix(r.stdout, "no GPU") {
		t.Skipf("no GPU here (%s); the device run covers the GPU path", strings.TrimSpace(r.stdout))
	}
	if !strings.Contains(r.stdout, "NVDEC") {
		t.Errorf("gpus output: %s", r.stdout)
	}
}

// TestProbeRawStreams: raw .h264 and .hevc streams are found without --ext,
// their frames counted (they state no duration), and --assume-fps times
// them.
func TestProbeRawStreams(t *testing.T) {
	corpus := "../../testdata/corpus"
	r := dsbatch(t, "probe", "--json", "--no-cache", corpus)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	vs := probeJSON(t, r)
	for _, name := range []string{"raw.h264", "raw.hevc"} {
		v, ok := vs[name]
		if !ok || !v.Raw || v.Frames != 40 || v.Estimated || v.AvgFPS != 25 || v.Duration != 1.6 {
			t.Errorf("%s: found %v, %+v", name, ok, v)
		}
	}
	r = dsbatch(t, "probe", "--json", "--no-cache", "--assume-fps", "10", filepath.Join(corpus, "raw.h264"), filepath.Join(corpus, "h264.mov"))
	vs = probeJSON(t, r)
	if v := vs["raw.h264"]; v.AvgFPS != 10 || v.Duration != 4 {
		t.Errorf("raw.h264 at --assume-fps 10: %+v", v)
	}
	if v := vs["h264.mov"]; v.AvgFPS != 25 {
		t.Errorf("--assume-fps changed a container's rate: %+v", v)
	}
}

// TestRunStartEndChecked: --end before --start is refused before any work.
func TestRunStartEndChecked(t *testing.T) {
	r := dsbatch(t, "run", "--model", "x.onnx", "--out", t.TempDir(), "--start", "2s", "--end", "1s", media)
	if r.code != exitFailed || !strings.Contains(r.stderr, "want 0 <= start < end") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
