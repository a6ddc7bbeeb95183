package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChaosSIGKILL kills dsbatch run with SIGKILL at random moments, 20
// times, reruns it until it finishes, and checks that the dataset equals an
// uninterrupted run's: no lost rows, no duplicates, no temporary files.
func TestChaosSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped with -short")
	}
	withORT(t)
	m := model(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	os.Mkdir(archive, 0o755)
	clips := []string{"h264.mp4", "hevc.mkv", "vp9.webm", "mpeg4.avi", "rotated.mp4", "resize.ts", "vfr.mkv"}
	for i := 0; i < 28; i++ {
		src, _ := filepath.Abs(filepath.Join(media, clips[i%len(clips)]))
		os.Symlink(src, filepath.Join(archive, fmt.Sprintf("v%02d%s", i, filepath.Ext(src))))
	}
	os.Symlink(filepath.Join(dir, "gone.mp4"), filepath.Join(archive, "broken.mp4")) // fails every time
	cache := filepath.Join(dir, "cache")
	args := func(out string) []string {
		return []string{"run", "--cache-dir", cache, "--batch", "2", "--decoders", "2", "--model", m, "--out", out, archive}
	}

	ref := filepath.Join(dir, "ref")
	if r := dsbatch(t, args(ref)...); r.code != exitPartial {
		t.Fatalf("reference run: exit %d %s", r.code, r.stderr)
	}

	out := filepath.Join(dir, "out")
	rng := rand.New(rand.NewSource(42))
	kills := 0
	for kills < 20 {
		cmd := exec.Command(bin, args(out)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			// Finished before the kill: start over from a fresh folder so
			// every kill lands on a run with work left.
			os.RemoveAll(out)
			continue
		case <-time.After(time.Duration(50+rng.Intn(600)) * time.Millisecond):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		kills++
	}
	r := dsbatch(t, args(out)...)
	if r.code != exitPartial || !strings.Contains(r.stdout, "1 failed") {
		t.Fatalf("final run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, table := range []string{"detections", "tracks"} {
		a := fmt.Sprintf("read_parquet('%s/%s/*.parquet')", ref, table)
		b := fmt.Sprintf("read_parquet('%s/%s/*.parquet')", out, table)
		for _, pair := range [][2]string{{a, b}, {b, a}} {
			if n := duckInt(t, fmt.Sprintf("select count(*) from (select * from %s except all select * from %s)", pair[0], pair[1])); n != 0 {
				t.Errorf("%s: %d rows of %s are not in %s", table, n, pair[0], pair[1])
			}
		}
	}
	if n, want := duckInt(t, fmt.Sprintf("select count(*) from read_parquet('%s/videos.parquet') where status = 'done'", out)), int64(28); n != want {
		t.Errorf("%d videos done, want %d", n, want)
	}
	for _, d := range []string{out, cache} {
		filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error {
			if strings.Contains(filepath.Base(p), ".tmp") || strings.HasPrefix(filepath.Base(p), ".probe-cache-") {
				t.Errorf("temporary file left after %d kills: %s", kills, p)
			}
			return nil
		})
	}
}
