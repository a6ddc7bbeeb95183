package export

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// BenchmarkPosePart gathers 200,000 detections of a pose model (17 named
// keypoints each) into a part, as a compactor does: the costliest rows a
// detector writes but for masks.
func BenchmarkPosePart(b *testing.B) {
	mem := memory.NewGoAllocator()
	dir := b.TempDir()
	names := make([]string, 17)
	for k := range names {
		names[k] = fmt.Sprintf("point_%d", k)
	}
	o := DetectionOptions{Keypoints: 17, KeypointNames: names}
	w := StageDetections(filepath.Join(dir, "stage"), mem, o, 1<<30)
	for i := 0; i < 200000; i++ {
		d := Detection{VideoID: 1, VideoPath: "/v/a.mp4", FrameIndex: int64(i / 100), ClassName: "person", Score: 0.5, X1: 1, Y1: 2, X2: 3, Y2: 4}
		for k := 0; k < 17; k++ {
			d.Keypoints = append(d.Keypoints, Keypoint{X: float32(i%640) + float32(k), Y: float32(k * 3), Score: 0.5})
		}
		if err := w.Append(d); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	s := w.Staged()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pw := NewPartWriter(filepath.Join(dir, "p.parquet"), DetectionsTable, mem)
		if err := pw.Append(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		if err := pw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
