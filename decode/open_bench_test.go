package decode

import (
	"context"
	"os"
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
