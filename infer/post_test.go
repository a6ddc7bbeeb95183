package infer

import (
	"math"
	"testing"
)

func TestRotatedIoU(t *testing.T) {
	for _, tt := range []struct {
		name string
		a, b *RotatedBox
		want float64
	}{
		{"same", newRotated(10, 10, 4, 2, 0.3), newRotated(10, 10, 4, 2, 0.3), 1},
		{"axis-aligned, half shifted", newRotated(0, 0, 2, 2, 0), newRotated(1, 0, 2, 2, 0), 1.0 / 3},
		{"a square turned 90°", newRotated(0, 0, 2, 2, 0), newRotated(0, 0, 2, 2, math.Pi/2), 1},
		{"a bar across a bar", newRotated(0, 0, 4, 1, 0), newRotated(0, 0, 4, 1, math.Pi/2), 1.0 / 7},
		{"apart", newRotated(0, 0, 2, 2, 0.5), newRotated(10, 0, 2, 2, 0.5), 0},
		// Two 2×2 squares at 45° share an octagon of area 8(√2−1).
		{"a square turned 45° in a square", newRotated(0, 0, 2, 2, 0), newRotated(0, 0, 2, 2, math.Pi/4), 8 * (math.Sqrt2 - 1) / (8 - 8*(math.Sqrt2-1))},
	} {
		if got := float64(RotatedIoU(tt.a, tt.b)); math.Abs(got-tt.want) > 1e-5 {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	r := newRotated(10, 20, 4, 2, math.Pi/2)
	if x1, y1, x2, y2 := r.bounds(); math.Abs(float64(x1-9)) > 1e-5 || math.Abs(float64(y1-18)) > 1e-5 || math.Abs(float64(x2-11)) > 1e-5 || math.Abs(float64(y2-22)) > 1e-5 {
		t.Errorf("bounds %v %v %v %v", x1, y1, x2, y2)
	}
}

// TestOBBDecodeRotatedNMS: two thin bars crossing at right angles share
// their axis-aligned bounds (IoU 1) but little area: an OBB head keeps
// both, a bar on top of one of them goes.
func TestOBBDecodeRotatedNMS(t *testing.T) {
	const n = 3
	out := make([]float32, 6*n) // [4+1+1, 3]
	set := func(r, a int, v float32) { out[r*n+a] = v }
	for a, v := range [][6]float32{
		{50, 50, 40, 4, 0.9, math.Pi / 4},
		{50, 50, 40, 4, 0.8, -math.Pi / 4},
		{50, 50, 39, 4, 0.7, math.Pi / 4}, // almost the first
	} {
		for r := range v {
			set(r, a, v[r])
		}
	}
	l, err := NewLayout(HeadOBB, ScoresProb, 6, n, 100, 100)
	if err != nil || l.Classes != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	got := l.Decode(out, PostOptions{Conf: 0.25, IoU: 0.5}, nil)
	if len(got) != 2 || got[0].Score != 0.9 || got[1].Score != 0.8 || got[0].Rotated == nil {
		t.Fatalf("%+v", got)
	}
	if d := got[0]; math.Abs(float64(d.X2-d.X1-d.Y2+d.Y1)) > 1e-3 || d.X2-d.X1 < 28 {
		t.Errorf("bounds of a bar at 45°: %+v", d)
	}
}
