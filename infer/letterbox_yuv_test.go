package infer

import (
	"context"
	"errors"
	"io"
	"math"
	"path/filepath"
	"testing"

	"github.com/dsbatch/dsbatch/decode"
)

// TestLetterboxYUVTracksRGB compares the YUV letterbox (the GPU's math) with
// the RGB one (swscale's conversion) on every frame of real 8-bit 4:2:0
// clips, rotated ones included: they differ only by the two YUV→RGB
// roundings, since swscale's 8-bit converter also takes each 2×2 block's own
// chroma. (For 10-bit input swscale interpolates chroma between rows, which
// moves colour edges by a pixel; the YUV path keeps the GPU's siting.)
//
// It holds in every input convention, measured in pixel values.
func TestLetterboxYUVTracksRGB(t *testing.T) {
	const size = 96
	a := make([]float32, 3*size*size)
	b := make([]float32, 3*size*size)
	for _, name := range []string{"h264.mp4", "rotated.mp4", "vp9.webm", "mpeg4.avi"} {
		path := filepath.Join("../testdata/media", name)
		yd, err := decode.Open(context.Background(), path, decode.Options{Format: decode.YUV420P, NoAutoRotate: true})
		if err != nil {
			t.Fatal(err)
		}
		rd, err := decode.Open(context.Background(), path, decode.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var yf, rf decode.Frame
		worst, n := 0.0, 0
		for {
			e1, e2 := yd.Next(context.Background(), &yf), rd.Next(context.Background(), &rf)
			if errors.Is(e1, io.EOF) && errors.Is(e2, io.EOF) {
				break
			}
			if e1 != nil || e2 != nil {
				t.Fatalf("%s: %v %v", name, e1, e2)
			}
			y, u, v := yf.Planes()
			for _, p := range testConventions(t) {
				la := LetterboxYUV420(y, u, v, yf.Width, yf.Height, yf.Rotation, a, size, size, p)
				lb := LetterboxRGB(rf.Data, rf.Width, rf.Height, b, size, size, p)
				if la != lb {
					t.Fatalf("%s frame %d, input %s: geometry %+v vs %+v", name, n, p, la, lb)
				}
				worst = math.Max(worst, maxPixelDiff(a, b, p, size*size)/255)
			}
			n++
		}
		yd.Close()
		rd.Close()
		t.Logf("%s: %d frames, max |yuv−rgb| = %.2f/255", name, n, worst*255)
		if worst > 4.0/255 {
			t.Errorf("%s: YUV and RGB letterboxes differ by %.2f/255", name, worst*255)
		}
	}
}

func BenchmarkLetterboxYUV1080p(b *testing.B) {
	w, h := 1920, 1080
	buf := make([]byte, w*h*3/2)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	dst := make([]float32, 3*640*640)
	for i := 0; i < b.N; i++ {
		LetterboxYUV420(buf[:w*h], buf[w*h:w*h+w*h/4], buf[w*h+w*h/4:], w, h, 0, dst, 640, 640, Ultralytics)
	}
}
