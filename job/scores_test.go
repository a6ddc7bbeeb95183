package job

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/infer"
)

// expectedScores decodes path and computes, for each frame index, the
// score testModel gives its person box: 0.3 + 0.6 × mean(letterboxed).
func expectedScores(t *testing.T, path string) map[int64]float64 {
	t.Helper()
	d, err := decode.Open(context.Background(), path, decode.Options{Format: decode.YUV420P, NoAutoRotate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := map[int64]float64{}
	tensor := make([]float32, 3*imgsz*imgsz)
	var f decode.Frame
	for {
		err := d.Next(context.Background(), &f)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		y, u, v := f.Planes()
		infer.LetterboxYUV420(y, u, v, f.Width, f.Height, f.Rotation, tensor, imgsz, imgsz, infer.Ultralytics)
		var sum float64
		for _, v := range tensor {
			sum += float64(v)
		}
		out[f.Index] = 0.3 + 0.6*sum/float64(len(tensor))
	}
}
