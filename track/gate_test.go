package track

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	scenes "github.com/dsbatch/dsbatch/internal/scene"
)

// denseMatch is the matcher before gating: the optimal assignment on the
// full tracks × detections matrix.
func denseMatch(tb []Box, tc []int, db []Box, dc []int, agnostic bool, maxCost float64) [][2]int {
	cost := make([][]float64, len(tb))
	for i := range tb {
		cost[i] = make([]float64, len(db))
		for j := range db {
			if !agnostic && dc[j] != tc[i] {
				cost[i][j] = 2
				continue
			}
			cost[i][j] = 1 - iou(tb[i], db[j])
		}
	}
	pairs := assign(cost, maxCost)
	slices.SortFunc(pairs, func(a, b [2]int) int { return a[0] - b[0] })
	return pairs
}

func randomBoxes(rng *rand.Rand, n int, w, h, size float64) ([]Box, []int) {
	bs, cs := make([]Box, n), make([]int, n)
	for i := range bs {
		x, y := rng.Float64()*w, rng.Float64()*h
		bw, bh := size*(0.3+rng.Float64()), size*(0.3+rng.Float64())
		bs[i], cs[i] = Box{float32(x), float32(y), float32(x + bw), float32(y + bh)}, rng.Intn(3)
	}
	return bs, cs
}

// TestSparseMatchesDense: gated, component-wise matching gives exactly the
// pairs of the full assignment, on crowds of every density, huge boxes,
// classes mixed or not, for each association's gate.
func TestSparseMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 3000; trial++ {
		nt, nd := rng.Intn(120), rng.Intn(120)
		size := []float64{8, 40, 150, 900}[trial%4] // sparse to packed, and boxes larger than grid spans
		tb, tc := randomBoxes(rng, nt, 1920, 1080, size)
		db, dc := randomBoxes(rng, nd, 1920, 1080, size)
		// Detections near tracks, as in video: jittered copies of some.
		for j := 0; j < nd && j < nt; j += 2 {
			d := float32(rng.NormFloat64() * size / 10)
			db[j] = Box{tb[j].X1 + d, tb[j].Y1 - d, tb[j].X2 + d, tb[j].Y2}
			dc[j] = tc[j]
		}
		agnostic := trial%3 == 0
		maxCost := 1 - []float64{0.2, 0.5, 0.3}[trial%3]
		want := denseMatch(tb, tc, db, dc, agnostic, maxCost)
		got := assignSparse(nil, nt, nd, candidates(nil, tb, tc, db, dc, agnostic, maxCost))
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d tracks, %d detections, size %g): sparse %v, dense %v", trial, nt, nd, size, got, want)
		}
	}
}

// frames turns a scene into the tracker's detections.
func frames(sc [][]scenes.Box) [][]Detection {
	out := make([][]Detection, len(sc))
	for f, bs := range sc {
		for _, b := range bs {
			out[f] = append(out[f], Detection{Box: Box{b.X1, b.Y1, b.X2, b.Y2}, Score: b.Score, Class: b.Class})
		}
	}
	return out
}

// BenchmarkUpdateDense tracks realistic churning crowds and adversarial noise at 25,
// 100 and 300 boxes per frame.
func BenchmarkUpdateDense(b *testing.B) {
	for _, kind := range []string{"churn", "noise"} {
		for _, n := range []int{25, 100, 300} {
			b.Run(fmt.Sprintf("%s-%d", kind, n), func(b *testing.B) {
				dets := frames(scenes.Churn(n, 250, 3))
				if kind == "noise" {
					dets = frames(scenes.Noise(n, 250, 100, 3))
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					tr := New(DefaultConfig(25))
					for _, d := range dets {
						tr.Update(d)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dets)), "ns/frame")
			})
		}
	}
}

// TestMalformedBoxes: boxes a broken or random-weight model gives (not
// finite, inverted, of huge coordinates) neither crash the tracker nor
// change what well-formed boxes beside them match.
func TestMalformedBoxes(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	bad := []Box{{nan, 0, 10, 10}, {0, 0, inf, 10}, {-inf, -inf, inf, inf}, {50, 50, 10, 10}, {1e30, 1e30, 2e30, 2e30}, {nan, nan, nan, nan}}
	good := []Box{{100, 100, 140, 160}, {300, 120, 330, 170}}
	for _, tt := range [][]Box{bad, append(append([]Box(nil), bad...), good...)} {
		tr := New(DefaultConfig(25))
		for f := 0; f < 5; f++ {
			dets := make([]Detection, len(tt))
			for i, b := range tt {
				dets[i] = Detection{Box: b, Score: 0.9}
			}
			ids := tr.Update(dets)
			if len(ids) != len(dets) {
				t.Fatalf("%d ids for %d detections", len(ids), len(dets))
			}
			if f > 0 && len(tt) > len(bad) {
				for i := len(bad); i < len(tt); i++ {
					if ids[i] < 0 {
						t.Errorf("frame %d: well-formed box %d untracked beside malformed ones", f, i)
					}
				}
			}
		}
	}
}

// TestSparseMatchesDenseCrowd: frames like a random-weight model's at a
// low threshold (300 boxes a frame, most as large as a fifth of the frame
// or more, two classes: one group of about 150 × 150 per class), matched
// with one scratch reused from frame to frame as a tracker does, give
// exactly the pairs of the full assignment.
func TestSparseMatchesDenseCrowd(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	var s scratch
	for trial := 0; trial < 40; trial++ {
		nt, nd := 150+rng.Intn(200), 150+rng.Intn(150)
		size := []float64{250, 500, 800}[trial%3]
		tb, tc := randomBoxes(rng, nt, 1920, 1080, size)
		db, dc := randomBoxes(rng, nd, 1920, 1080, size)
		for k := range tc {
			tc[k] %= 2
		}
		for k := range dc {
			dc[k] %= 2
		}
		for j := 0; j < nd && j < nt; j += 3 {
			d := float32(rng.NormFloat64() * size / 20)
			db[j] = Box{tb[j].X1 + d, tb[j].Y1 - d, tb[j].X2 + d, tb[j].Y2}
			dc[j] = tc[j]
		}
		agnostic := trial%4 == 0
		maxCost := 1 - []float64{0.2, 0.5, 0.3}[trial%3]
		want := denseMatch(tb, tc, db, dc, agnostic, maxCost)
		got := assignSparse(&s, nt, nd, candidates(&s, tb, tc, db, dc, agnostic, maxCost))
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d tracks, %d detections, size %g): sparse %v, dense %v", trial, nt, nd, size, got, want)
		}
		if len(want) < 20 {
			t.Fatalf("trial %d: %d pairs, not a crowd", trial, len(want))
		}
	}
}
