package infer

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"
)

// The post-processing as it was before it was made faster (2026-12-02):
// the oracle the faster one must equal exactly (TestNMSMatchesReference).

func areaRef(p [][2]float64) float64 {
	a := 0.0
	for i := range p {
		j := (i + 1) % len(p)
		a += p[i][0]*p[j][1] - p[j][0]*p[i][1]
	}
	return math.Abs(a) / 2
}

func clipPolygonRef(p [][2]float64, a, b [2]float64) [][2]float64 {
	side := func(q [2]float64) float64 { return (b[0]-a[0])*(q[1]-a[1]) - (b[1]-a[1])*(q[0]-a[0]) }
	var out [][2]float64
	for i := range p {
		cur, next := p[i], p[(i+1)%len(p)]
		sc, sn := side(cur), side(next)
		if sc >= 0 {
			out = append(out, cur)
		}
		if (sc >= 0) != (sn >= 0) {
			t := sc / (sc - sn)
			out = append(out, [2]float64{cur[0] + t*(next[0]-cur[0]), cur[1] + t*(next[1]-cur[1])})
		}
	}
	return out
}

func rotatedIoURef(a, b *RotatedBox) float32 {
	poly := func(r *RotatedBox) [][2]float64 {
		p := make([][2]float64, 4)
		for i, c := range r.Corners {
			p[i] = [2]float64{float64(c[0]), float64(c[1])}
		}
		signed := 0.0
		for i := range p {
			j := (i + 1) % 4
			signed += p[i][0]*p[j][1] - p[j][0]*p[i][1]
		}
		if signed < 0 {
			p[1], p[3] = p[3], p[1] // counter-clockwise, as clipPolygon keeps the left
		}
		return p
	}
	pa, pb := poly(a), poly(b)
	inter := pa
	for i := range pb {
		if len(inter) == 0 {
			break
		}
		inter = clipPolygonRef(inter, pb[i], pb[(i+1)%len(pb)])
	}
	ai := 0.0
	if len(inter) >= 3 {
		ai = areaRef(inter)
	}
	u := areaRef(pa) + areaRef(pb) - ai
	if u <= 0 {
		return 0
	}
	return float32(ai / u)
}

func nmsRef(c []Detection, iou float32, maxDet, topK int, agnostic bool) []Detection {
	sort.SliceStable(c, func(i, j int) bool { return c[i].Score > c[j].Score })
	if len(c) > topK {
		c = c[:topK]
	}
	keep := make([]Detection, 0, min(len(c), maxDet))
	dropped := make([]bool, len(c))
	for i := range c {
		if dropped[i] {
			continue
		}
		keep = append(keep, c[i])
		if len(keep) == maxDet {
			break
		}
		for j := i + 1; j < len(c); j++ {
			if !dropped[j] && (agnostic || c[j].Class == c[i].Class) && overlapRef(c[i], c[j]) > iou {
				dropped[j] = true
			}
		}
	}
	return keep
}

func overlapRef(a, b Detection) float32 {
	if a.Rotated != nil && b.Rotated != nil {
		return rotatedIoURef(a.Rotated, b.Rotated)
	}
	return IoU(a, b)
}

// TestNMSMatchesReference: the faster NMS keeps exactly the reference's
// detections, in its order: oriented boxes (random centres, sizes and
// angles, many overlapping and many apart) and axis-aligned ones with tied
// and NaN scores, at several thresholds, class-aware and agnostic.
func TestNMSMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for trial := 0; trial < 60; trial++ {
		n := 1 + r.Intn(900)
		c := make([]Detection, n)
		rotated := trial%2 == 0
		for i := range c {
			cx, cy := r.Float32()*640, r.Float32()*640
			w, h := 2+r.Float32()*150, 2+r.Float32()*150
			d := Detection{Class: r.Intn(3), Score: float32(r.Intn(40)) / 40}
			if rotated {
				d.Rotated = newRotated(cx, cy, w, h, r.Float32()*7-3.5)
				d.X1, d.Y1, d.X2, d.Y2 = d.Rotated.bounds()
			} else {
				d.X1, d.Y1, d.X2, d.Y2 = cx-w/2, cy-h/2, cx+w/2, cy+h/2
				if r.Intn(50) == 0 {
					d.Score = float32(math.NaN())
				}
			}
			c[i] = d
		}
		for _, iou := range []float32{0, 0.001, 0.45, 0.7} {
			for _, agnostic := range []bool{false, true} {
				maxDet, topK := 1+r.Intn(400), 1+r.Intn(1100)
				want := nmsRef(append([]Detection(nil), c...), iou, maxDet, topK, agnostic)
				got := nms(append([]Detection(nil), c...), iou, maxDet, topK, agnostic)
				if len(got) != len(want) {
					t.Fatalf("trial %d (rotated %v) iou %v agnostic %v: %d kept, reference %d", trial, rotated, iou, agnostic, len(got), len(want))
				}
				for i := range want {
					if !sameDetection(got[i], want[i]) {
						t.Fatalf("trial %d (rotated %v) iou %v: detection %d %+v, reference %+v", trial, rotated, iou, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// sameDetection compares two detections field by field, NaN equal to NaN.
func sameDetection(a, b Detection) bool {
	eq := func(x, y float32) bool { return x == y || x != x && y != y }
	return a.Class == b.Class && eq(a.Score, b.Score) && eq(a.X1, b.X1) && eq(a.Y1, b.Y1) && eq(a.X2, b.X2) && eq(a.Y2, b.Y2) && a.Rotated == b.Rotated
}

func decodeColumnsRef(l Layout, out []float32, o PostOptions, dst []Detection, nc int, more func(a int, d *Detection)) []Detection {
	var cand []Detection
	n := l.D2
	for a := 0; a < n; a++ {
		best, bc := float32(-1), -1
		for c := 0; c < nc; c++ {
			if s := out[(4+c)*n+a]; s > best {
				best, bc = s, c
			}
		}
		if best < o.Conf {
			continue
		}
		cx, cy, w, hh := out[a], out[n+a], out[2*n+a], out[3*n+a]
		d := Detection{Class: bc, Score: best, X1: cx - w/2, Y1: cy - hh/2, X2: cx + w/2, Y2: cy + hh/2}
		if more != nil {
			more(a, &d)
		}
		cand = append(cand, d)
	}
	return append(dst, nmsRef(cand, o.IoU, o.maxDet(), o.topK(), o.ClassAgnostic)...)
}

// TestDecodeColumnsMatchesReference: decoding YOLOv8-style columns (plain
// and oriented boxes) gives exactly the reference's detections, with tied
// scores (quantised) and NaN and infinite values in the output.
func TestDecodeColumnsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	const n, nc = 2100, 5
	for trial := 0; trial < 20; trial++ {
		out := make([]float32, (5+nc)*n)
		for a := 0; a < n; a++ {
			out[a], out[n+a] = r.Float32()*640, r.Float32()*640
			out[2*n+a], out[3*n+a] = 2+r.Float32()*100, 2+r.Float32()*100
			for c := 0; c < nc; c++ {
				out[(4+c)*n+a] = float32(r.Intn(30)) / 30
			}
			out[(4+nc)*n+a] = r.Float32() * 3
		}
		for k := 0; k < 20; k++ {
			out[r.Intn(len(out))] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}[k%3]
		}
		for _, o := range []PostOptions{{Conf: 0.25, IoU: 0.7}, {Conf: 0.1, IoU: 0.45, TopK: 300, MaxDet: 100, ClassAgnostic: true}, {Conf: 0.5, IoU: 0, TopK: 50}} {
			obb := func(a int, d *Detection) {
				d.Rotated = newRotated(out[a], out[n+a], out[2*n+a], out[3*n+a], out[(4+nc)*n+a])
				d.X1, d.Y1, d.X2, d.Y2 = d.Rotated.bounds()
			}
			l := Layout{D1: 5 + nc, D2: n}
			for _, more := range []func(int, *Detection){nil, obb} {
				want := decodeColumnsRef(l, out, o, nil, nc, more)
				got := decodeColumns(l, out, o, nil, nc, more)
				if len(got) != len(want) {
					t.Fatalf("trial %d %+v (oriented %v): %d detections, reference %d", trial, o, more != nil, len(got), len(want))
				}
				for i := range want {
					g, w := got[i], want[i]
					if g.Rotated != nil && w.Rotated != nil && fmt.Sprint(*g.Rotated) == fmt.Sprint(*w.Rotated) { // NaN-aware
						g.Rotated = w.Rotated
					}
					if !sameDetection(g, w) {
						t.Fatalf("trial %d %+v (oriented %v): detection %d %+v, reference %+v", trial, o, more != nil, i, g, w)
					}
				}
			}
		}
	}
}

// TestFirstK: firstK leaves the k first elements of a total order at the
// front, for every k, on random, sorted and reversed input.
func TestFirstK(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for trial := 0; trial < 300; trial++ {
		n := r.Intn(200)
		s := r.Perm(n)
		switch trial % 3 {
		case 1:
			sort.Ints(s)
		case 2:
			sort.Sort(sort.Reverse(sort.IntSlice(s)))
		}
		k := r.Intn(n + 2)
		got := firstK(append([]int(nil), s...), k, func(a, b int) int { return a - b })
		sort.Ints(got)
		want := min(k, n)
		if len(got) != want {
			t.Fatalf("n %d k %d: %d elements", n, k, len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("n %d k %d: %v are not the %d smallest", n, k, got, want)
			}
		}
	}
}
