package decode

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpen1080p opens a 1080p H.264 MP4 and closes it: the fixed cost
// of each video before decoding (set DSBATCH_BENCH_1080P to the file).
func BenchmarkOpen1080p(b *testing.B) {
	path := os.Getenv("DSBATCH_BENCH_1080P")
	if path == "" {
		b.Skip("DSBATCH_BENCH_1080P not set (go run ./internal/mkmedia -gpu-bench DIR writes one)")
	}
	for i := 0; i < b.N; i++ {
		in, err := openInput(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		in.close()
	}
}

// BenchmarkProbe probes a small H.264 MP4 from testdata: the per-file cost
// of `dsbatch probe` and of planning, before any cache.
func BenchmarkProbe(b *testing.B) {
	path := filepath.Join(media, "h264.mp4")
	for i := 0; i < b.N; i++ {
		if _, err := Probe(context.Background(), path, ProbeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
