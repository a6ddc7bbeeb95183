package export

import (
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// BenchmarkSmallFile writes and commits a 50-row detections file: the
// fixed cost every video pays.
func BenchmarkSmallFile(b *testing.B) {
	dir := b.TempDir()
	mem := memory.NewGoAllocator()
	for i := 0; i < b.N; i++ {
		w, err := NewDetectionWriter(filepath.Join(dir, "a.parquet"), mem)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 50; j++ {
			w.Append(Detection{VideoID: 1, VideoPath: "x.mp4", FrameIndex: int64(j), ClassName: "person", TrackID: -1})
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
