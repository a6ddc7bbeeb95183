package infer

import (
	"math"
	"sort"
)

// Detection is one detected object, in model-input pixels until mapped.
type Detection struct {
	Class          int
	Score          float32
	X1, Y1, X2, Y2 float32
	// Keypoints are a pose model's points of this detection, in the
	// model's order (nil for other models).
	Keypoints []Keypoint
	// Rotated is an oriented-box model's box (nil for other models); X1
	// to Y2 then bound its corners.
	Rotated *RotatedBox
	// Mask is a segmentation model's mask of this detection (nil for
	// other models), in model-input pixels: Mask.Frame maps it.
	Mask *Mask
	// src is 1 + the output row or anchor the detection was read from,
	// for the mask coefficients beside it (0: none).
	src int32
}

// RotatedBox is an oriented box: centre, size and the angle in radians by
// which it is turned clockwise (image y pointing down), and its corners.
type RotatedBox struct {
	CX, CY, W, H, Angle float32
	// Corners are the box's corners, starting from the one at (−w/2, −h/2)
	// before turning, in order round the box.
	Corners [4][2]float32
}

// newRotated makes the oriented box of centre, size and angle, and sets
// its corners.
func newRotated(cx, cy, w, h, angle float32) *RotatedBox {
	r := &RotatedBox{CX: cx, CY: cy, W: w, H: h, Angle: angle}
	c, s := float32(math.Cos(float64(angle))), float32(math.Sin(float64(angle)))
	for i, p := range [4][2]float32{{-w / 2, -h / 2}, {w / 2, -h / 2}, {w / 2, h / 2}, {-w / 2, h / 2}} {
		r.Corners[i] = [2]float32{cx + p[0]*c - p[1]*s, cy + p[0]*s + p[1]*c}
	}
	return r
}

// bounds is the axis-aligned box of r's corners.
func (r *RotatedBox) bounds() (x1, y1, x2, y2 float32) {
	x1, y1, x2, y2 = r.Corners[0][0], r.Corners[0][1], r.Corners[0][0], r.Corners[0][1]
	for _, p := range r.Corners[1:] {
		x1, y1, x2, y2 = min(x1, p[0]), min(y1, p[1]), max(x2, p[0]), max(y2, p[1])
	}
	return
}

// area is the area of a convex polygon.
func area(p [][2]float64) float64 {
	a := 0.0
	for i := range p {
		j := (i + 1) % len(p)
		a += p[i][0]*p[j][1] - p[j][0]*p[i][1]
	}
	return math.Abs(a) / 2
}

// clipPolygon is the part of the convex polygon p on the left of the
// edge a→b (Sutherland–Hodgman, one edge).
func clipPolygon(p [][2]float64, a, b [2]float64) [][2]float64 {
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

// RotatedIoU is the intersection over union of two oriented boxes,
// exactly: their intersection polygon's area over the union's.
func RotatedIoU(a, b *RotatedBox) float32 {
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
		inter = clipPolygon(inter, pb[i], pb[(i+1)%len(pb)])
	}
	ai := 0.0
	if len(inter) >= 3 {
		ai = area(inter)
	}
	u := area(pa) + area(pb) - ai
	if u <= 0 {
		return 0
	}
	return float32(ai / u)
}

// Keypoint is one point of a pose: where it is (model-input pixels until
// mapped, like boxes) and the model's confidence that it is visible (1
// when the model gives none).
type Keypoint struct {
	X, Y, Score float32
}

// PostOptions control Decode.
type PostOptions struct {
	Conf          float32 // minimum score
	IoU           float32 // NMS overlap above which the lower-scored box goes
	MaxDet        int     // detections kept per image (0: 300)
	ClassAgnostic bool    // NMS across classes
	// TopK bounds the candidates per image that enter NMS, best first
	// (0: DefaultTopK). The GPU engine selects them on the device.
	TopK int
}

// DefaultTopK is the number of candidates per image NMS considers unless
// PostOptions.TopK says otherwise.
const DefaultTopK = 1024

func (o PostOptions) topK() int {
	if o.TopK <= 0 {
		return DefaultTopK
	}
	return o.TopK
}

func (o PostOptions) maxDet() int {
	if o.MaxDet <= 0 {
		return 300
	}
	return o.MaxDet
}

// nms keeps the best-scored boxes among the topK best, dropping any box
// that overlaps a kept box of the same class (any class when agnostic) by
// more than iou. Equal scores keep their order in c.
func nms(c []Detection, iou float32, maxDet, topK int, agnostic bool) []Detection {
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
			if !dropped[j] && (agnostic || c[j].Class == c[i].Class) && overlap(c[i], c[j]) > iou {
				dropped[j] = true
			}
		}
	}
	return keep
}

// overlap is the IoU NMS uses: of the oriented boxes where both have one.
func overlap(a, b Detection) float32 {
	if a.Rotated != nil && b.Rotated != nil {
		return RotatedIoU(a.Rotated, b.Rotated)
	}
	return IoU(a, b)
}

// IoU returns the intersection over union of two boxes.
func IoU(a, b Detection) float32 {
	iw := min(a.X2, b.X2) - max(a.X1, b.X1)
	ih := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := (a.X2-a.X1)*(a.Y2-a.Y1) + (b.X2-b.X1)*(b.Y2-b.Y1) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}
