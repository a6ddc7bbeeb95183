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

// clipPolygon appends to dst the part of the convex polygon p on the left
// of the edge a→b (Sutherland–Hodgman, one edge) and returns it.
func clipPolygon(dst, p [][2]float64, a, b [2]float64) [][2]float64 {
	side := func(q [2]float64) float64 { return (b[0]-a[0])*(q[1]-a[1]) - (b[1]-a[1])*(q[0]-a[0]) }
	for i := range p {
		cur, next := p[i], p[(i+1)%len(p)]
		sc, sn := side(cur), side(next)
		if sc >= 0 {
			dst = append(dst, cur)
		}
		if (sc >= 0) != (sn >= 0) {
			t := sc / (sc - sn)
			dst = append(dst, [2]float64{cur[0] + t*(next[0]-cur[0]), cur[1] + t*(next[1]-cur[1])})
		}
	}
	return dst
}

// quad is an oriented box as its IoU reads it: the corners in float64,
// counter-clockwise (clipPolygon keeps the left), and their area.
type quad struct {
	p    [4][2]float64
	area float64
}

func newQuad(r *RotatedBox) quad {
	var q quad
	for i, c := range r.Corners {
		q.p[i] = [2]float64{float64(c[0]), float64(c[1])}
	}
	signed := 0.0
	for i := range q.p {
		j := (i + 1) % 4
		signed += q.p[i][0]*q.p[j][1] - q.p[j][0]*q.p[i][1]
	}
	if signed < 0 {
		q.p[1], q.p[3] = q.p[3], q.p[1]
	}
	q.area = area(q.p[:])
	return q
}

// iou is the intersection over union of two oriented boxes, exactly: their
// intersection polygon's area over the union's. The polygons are clipped
// in two fixed buffers (a convex quadrilateral cut by four edges has at
// most eight corners).
func (a *quad) iou(b *quad) float32 {
	var buf [2][9][2]float64
	inter := append(buf[0][:0], a.p[:]...)
	for i := range b.p {
		if len(inter) == 0 {
			break
		}
		inter = clipPolygon(buf[(i+1)%2][:0], inter, b.p[i], b.p[(i+1)%4])
	}
	ai := 0.0
	if len(inter) >= 3 {
		ai = area(inter)
	}
	u := a.area + b.area - ai
	if u <= 0 {
		return 0
	}
	return float32(ai / u)
}

// RotatedIoU is the intersection over union of two oriented boxes,
// exactly: their intersection polygon's area over the union's.
func RotatedIoU(a, b *RotatedBox) float32 {
	qa, qb := newQuad(a), newQuad(b)
	return qa.iou(&qb)
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
	// Indices are sorted, not the Detections (large structs moved by
	// reflection): sort.SliceStable makes the same comparisons of the same
	// scores either way, so the order is the one sorting c gives, NaN
	// scores included.
	idx := bestFirst(len(c), func(i int) float32 { return c[i].Score }, topK)
	s := make([]Detection, len(idx))
	for k, i := range idx {
		s[k] = c[i]
	}
	return suppress(s, iou, maxDet, agnostic)
}

// bestFirst returns the indices of the topK best of n scores, best first,
// equal scores in index order: the order sort.SliceStable gives the
// scores themselves, NaN included.
func bestFirst(n int, score func(int) float32, topK int) []int32 {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.SliceStable(idx, func(i, j int) bool { return score(int(idx[i])) > score(int(idx[j])) })
	return idx[:min(len(idx), topK)]
}

// suppress is greedy NMS over s, sorted best first: it keeps a box unless
// a kept one of its class (any class when agnostic) overlaps it by more
// than iou, up to maxDet boxes.
func suppress(s []Detection, iou float32, maxDet int, agnostic bool) []Detection {
	// Oriented boxes: corners and areas once per box, not per pair, and a
	// pair whose axis-aligned bounds (X1..Y2, the corners' bounds) are
	// apart has no overlap. Apart means by a float32 gap, far more than
	// the clipping's float64 rounding, so the polygons' intersection is
	// empty and the decision the same, for any threshold of at least
	// 1e-3.
	var quads []quad
	if len(s) > 0 && s[0].Rotated != nil {
		quads = make([]quad, len(s))
		for i := range s {
			if s[i].Rotated != nil {
				quads[i] = newQuad(s[i].Rotated)
			}
		}
	}
	overlaps := func(i, j int) bool {
		a, b := &s[i], &s[j]
		if quads == nil || a.Rotated == nil || b.Rotated == nil {
			return overlap(*a, *b) > iou
		}
		if iou >= 1e-3 && (a.X2 < b.X1 || b.X2 < a.X1 || a.Y2 < b.Y1 || b.Y2 < a.Y1) {
			return false
		}
		return quads[i].iou(&quads[j]) > iou
	}
	keep := make([]Detection, 0, min(len(s), maxDet))
	dropped := make([]bool, len(s))
	for i := range s {
		if dropped[i] {
			continue
		}
		keep = append(keep, s[i])
		if len(keep) == maxDet {
			break
		}
		for j := i + 1; j < len(s); j++ {
			if !dropped[j] && (agnostic || s[j].Class == s[i].Class) && overlaps(i, j) {
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
