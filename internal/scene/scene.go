// Package scene makes synthetic per-frame detections for tracking tests and
// the post-inference benchmarks: realistic crowds that move and churn, and
// adversarial noise. It exists so that the track package's tests and the
// job package's benchmarks are fed the same scenes.
package scene

import "math/rand"

// Box is one detection: corners in pixels, score and class.
type Box struct {
	X1, Y1, X2, Y2 float32
	Score          float32
	Class          int
}

// Churn is a realistic dense scene on a 1920×1080 frame: n objects in view
// at any time, moving, each staying 1 to 8 seconds at 25 frames/s and
// replaced by a new one when it leaves, with jitter, 5% missed detections
// and scores from 0.3 to 1.
func Churn(n, frames int, seed int64) [][]Box {
	rng := rand.New(rand.NewSource(seed))
	type obj struct {
		x, y, vx, vy, w, h float64
		left, class        int
	}
	spawn := func() obj {
		h := 40 + rng.Float64()*120
		return obj{x: rng.Float64() * 1800, y: rng.Float64() * 1000, vx: rng.NormFloat64() * 3, vy: rng.NormFloat64() * 2,
			w: h * (0.3 + rng.Float64()*0.5), h: h, left: 25 + rng.Intn(175), class: rng.Intn(3)}
	}
	objs := make([]obj, n)
	for i := range objs {
		objs[i] = spawn()
	}
	out := make([][]Box, frames)
	for f := range out {
		for i := range objs {
			o := &objs[i]
			if o.left--; o.left <= 0 {
				*o = spawn()
			}
			o.x, o.y = o.x+o.vx, o.y+o.vy
			if rng.Float64() < 0.05 {
				continue
			}
			j := func() float32 { return float32(rng.NormFloat64() * 2) }
			out[f] = append(out[f], Box{X1: float32(o.x) + j(), Y1: float32(o.y) + j(), X2: float32(o.x+o.w) + j(), Y2: float32(o.y+o.h) + j(),
				Score: float32(0.3 + 0.7*rng.Float64()), Class: o.class})
		}
	}
	return out
}

// Noise is the adversarial scene: n independent random boxes of about
// size pixels each frame, three classes, scores from 0.1 to 1.
func Noise(n, frames int, size float64, seed int64) [][]Box {
	rng := rand.New(rand.NewSource(seed))
	out := make([][]Box, frames)
	for f := range out {
		for i := 0; i < n; i++ {
			x, y := rng.Float64()*1920, rng.Float64()*1080
			w, h := size*(0.3+rng.Float64()), size*(0.3+rng.Float64())
			out[f] = append(out[f], Box{X1: float32(x), Y1: float32(y), X2: float32(x + w), Y2: float32(y + h),
				Score: float32(0.1 + 0.9*rng.Float64()), Class: rng.Intn(3)})
		}
	}
	return out
}
