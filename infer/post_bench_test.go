package infer

import (
	"math/rand"
	"testing"
)

// BenchmarkDecodeOBB decodes one image of an oriented-box head as
// yolo11n-obb writes it at 640 (8,400 anchors, 15 classes), scores as
// random weights give them: most anchors candidates, NMS over the top-k
// with rotated IoU: what the GPU engine leaves the host for OBB models.
func BenchmarkDecodeOBB(b *testing.B) {
	const n, nc = 8400, 15
	r := rand.New(rand.NewSource(1))
	out := make([]float32, (5+nc)*n)
	for a := 0; a < n; a++ {
		out[a] = r.Float32() * 640
		out[n+a] = r.Float32() * 640
		out[2*n+a] = 10 + r.Float32()*120
		out[3*n+a] = 10 + r.Float32()*120
		for c := 0; c < nc; c++ {
			out[(4+c)*n+a] = r.Float32()
		}
		out[(4+nc)*n+a] = r.Float32() * 3.14
	}
	l, err := NewLayout(HeadOBB, ScoresProb, 5+nc, n, 640, 640)
	if err != nil {
		b.Fatal(err)
	}
	o := PostOptions{Conf: 0.25, IoU: 0.7}
	var dets []Detection
	for b.Loop() {
		dets = l.Decode(out, o, dets[:0])
	}
	b.ReportMetric(float64(len(dets)), "detections")
}
