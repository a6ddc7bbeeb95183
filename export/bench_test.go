package export

import (
	"context"
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
		w, err := NewDetectionWriter(filepath.Join(dir, "a.parquet"), mem, DetectionOptions{})
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

// BenchmarkCountClasses2M counts the class_name column of a 2,000,000-row
// detections file: what inspect does per file.
func BenchmarkCountClasses2M(b *testing.B) {
	mem := memory.NewGoAllocator()
	path := filepath.Join(b.TempDir(), "big.parquet")
	w, err := NewDetectionWriter(path, mem, DetectionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"person", "car", "bus", "bicycle"}
	for i := 0; i < 2_000_000; i++ {
		w.Append(Detection{VideoID: 1, VideoPath: "x.mp4", FrameIndex: int64(i / 20), ClassName: names[i%4], Score: 0.5, TrackID: int64(i % 50)})
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		counts := map[string]int64{}
		if err := CountStrings(context.Background(), path, "class_name", mem, counts); err != nil {
			b.Fatal(err)
		}
		if counts["person"] != 500_000 {
			b.Fatalf("counts %v", counts)
		}
	}
}
