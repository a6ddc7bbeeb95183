package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskFull runs with a file-size limit (RLIMIT_FSIZE, so writes fail
// with EFBIG as on a full disk), then again without it: the limited run
// says what failed, leaves nothing half-written, and the rerun completes
// with the rows of a run that never hit the limit.
func TestDiskFull(t *testing.T) {
	withORT(t)
	m := model(t)
	dir := t.TempDir()
	archive, _ := filepath.Abs(media)
	args := func(out string) []string {
		return []string{"run", "--no-cache", "--exclude", "bad/*", "--model", m, "--out", out, archive}
	}
	ref := filepath.Join(dir, "ref")
	if r := dsbatch(t, args(ref)...); r.code != 0 {
		t.Fatalf("reference run: exit %d\n%s", r.code, r.stderr)
	}
	var sizes []int64
	filepath.Walk(filepath.Join(ref, "detections"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			sizes = append(sizes, info.Size())
		}
		return nil
	})
	for _, s := range sizes {
		if s <= 2<<10 {
			t.Fatalf("detection files of %v bytes: the 2 KiB limit below would not bite", sizes)
		}
	}

	out := filepath.Join(dir, "out")
	limitKiB := "2"
	cmd := exec.Command("bash", append([]string{"-c", `ulimit -f "$1"; shift; exec "$@"`, "limit", limitKiB, bin}, args(out)...)...)
	b, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	t.Logf("limited run: exit %d\n%s", code, b)
	if code == 0 {
		t.Fatalf("a run past the file-size limit (%s KiB) exited 0", limitKiB)
	}
	if !strings.Contains(string(b), "file too large") {
		t.Errorf("the limited run does not say why it failed:\n%s", b)
	}
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), ".tmp") {
			t.Errorf("temporary file left visible: %s", p)
		}
		if err == nil && strings.HasSuffix(p, ".parquet") {
			duckInt(t, "select count(*) from read_parquet('"+p+"')") // fails the test if truncated
		}
		return nil
	})
	r := dsbatch(t, args(out)...)
	if r.code != 0 {
		t.Fatalf("rerun with space: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameRows(t, ref+"/detections/*.parquet", out+"/detections/*.parquet")
	sameRows(t, ref+"/tracks/*.parquet", out+"/tracks/*.parquet")
	sameVideos(t, ref, out)
}
