package decode

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProbe writes arbitrary bytes to a .mp4 file and probes and decodes
// it: every outcome must be a frame or a *FileError, never a panic or a hang.
// Seeds are the test clips, good, bad and hostile; testdata/fuzz/FuzzProbe
// adds an ffconcat list naming "in.mp4", the name this target writes: it
// opened itself 20,000 deep before playlists were refused.
func FuzzProbe(f *testing.F) {
	for _, p := range []string{"h264.mp4", "hevc.mkv", "mpeg4.avi", "vp9.webm", "resize.ts", "bad/truncated-mid.mp4", "bad/random.mp4",
		"../hostile/backwards.ts", "../hostile/odd-99x67.mkv", "../hostile/picture.png.mp4", "../hostile/subtitles-only.mkv", "../hostile/tiny16.mp4",
		"../hostile/playlist-loop.mp4", "../hostile/playlist-hls.mp4"} {
		b, err := os.ReadFile(filepath.Join(media, p))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 8192 {
			b = b[:8192]
		}
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "in.mp4")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := Probe(ctx, path, ProbeOptions{CountFrames: true}); err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("probe error %v is not a *FileError", err)
			}
			return
		}
		d, err := Open(ctx, path, Options{})
		if err != nil {
			return
		}
		defer d.Close()
		var fr Frame
		for i := 0; i < 100; i++ {
			if err := d.Next(ctx, &fr); err != nil {
				if !errors.Is(err, io.EOF) {
					var fe *FileError
					if !errors.As(err, &fe) {
						t.Fatalf("decode error %v is not a *FileError", err)
					}
				}
				return
			}
		}
	})
}
