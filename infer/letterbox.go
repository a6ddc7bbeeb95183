package infer

import "math"

// Letterbox records how a frame was fitted into the model input, to map
// boxes back to frame pixels.
type Letterbox struct {
	SrcW, SrcH int // frame size
	// ScaleX and ScaleY are model pixels per frame pixel (equal unless
	// the frame was stretched).
	ScaleX, ScaleY float64
	PadX, PadY     int // left and top padding in model pixels
	NewW, NewH     int // size of the resized frame inside the input
}

// FitLetterbox computes how a w×h frame fits into a dstW×dstH input:
// keeping the aspect ratio and centring it, as Ultralytics does, or at the
// top-left, or stretched to the input.
func FitLetterbox(w, h, dstW, dstH int, fit Fit) Letterbox {
	if fit == FitStretch {
		return Letterbox{SrcW: w, SrcH: h, ScaleX: float64(dstW) / float64(w), ScaleY: float64(dstH) / float64(h), NewW: dstW, NewH: dstH}
	}
	r := math.Min(float64(dstH)/float64(h), float64(dstW)/float64(w))
	nw, nh := int(math.Round(float64(w)*r)), int(math.Round(float64(h)*r))
	lb := Letterbox{SrcW: w, SrcH: h, ScaleX: r, ScaleY: r, NewW: nw, NewH: nh}
	if fit == FitCentre {
		dw, dh := float64(dstW-nw)/2, float64(dstH-nh)/2
		lb.PadX, lb.PadY = int(math.Round(dw-0.1)), int(math.Round(dh-0.1))
	}
	return lb
}

// fill sets every value of a planar tensor to its plane's pad value.
func fill(dst []float32, plane int, pad [3]float32) {
	for c := 0; c < 3; c++ {
		p := dst[c*plane : (c+1)*plane]
		for i := range p {
			p[i] = pad[c]
		}
	}
}

// LetterboxRGB resizes a packed RGB24 frame (w×h) bilinearly into dst, a
// planar 3×dstH×dstW float32 tensor, by the convention p.
func LetterboxRGB(rgb []byte, w, h int, dst []float32, dstW, dstH int, p Preprocess) Letterbox {
	lb := FitLetterbox(w, h, dstW, dstH, p.Fit)
	plane := dstW * dstH
	fill(dst, plane, p.PadValues())
	a, b := p.Affine()
	// Channel c's plane offset and factors, out of the loop.
	var off3 [3]int
	var mul, add [3]float32
	for c := range off3 {
		off3[c], mul[c], add[c] = p.plane(c)*plane, a[p.plane(c)], b[p.plane(c)]
	}
	xs := bilinearTaps(w, lb.NewW)
	ys := bilinearTaps(h, lb.NewH)
	for dy, ty := range ys {
		row0 := rgb[ty.i0*3*w:]
		row1 := rgb[ty.i1*3*w:]
		off := (lb.PadY+dy)*dstW + lb.PadX
		for dx, tx := range xs {
			i0, i1 := 3*tx.i0, 3*tx.i1
			for c := 0; c < 3; c++ {
				top := float32(row0[i0+c])*(1-tx.f) + float32(row0[i1+c])*tx.f
				bot := float32(row1[i0+c])*(1-tx.f) + float32(row1[i1+c])*tx.f
				dst[off3[c]+off+dx] = float32((top*(1-ty.f)+bot*ty.f)*mul[c]) + add[c]
			}
		}
	}
	return lb
}

type tap struct {
	i0, i1 int
	f      float32
}

// bilinearTaps maps each of n output samples to its two source samples and
// weight, with pixel centres aligned (OpenCV's INTER_LINEAR).
func bilinearTaps(src, n int) []tap {
	t := make([]tap, n)
	scale := float64(src) / float64(n)
	for i := range t {
		s := (float64(i)+0.5)*scale - 0.5
		if s < 0 {
			s = 0
		}
		i0 := int(s)
		if i0 > src-1 {
			i0 = src - 1
		}
		i1 := i0 + 1
		if i1 > src-1 {
			i1 = src - 1
		}
		t[i] = tap{i0: i0, i1: i1, f: float32(s - float64(i0))}
	}
	return t
}

// ToFrame maps a box from model-input pixels to frame pixels, clipped to
// the frame.
func (lb Letterbox) ToFrame(x1, y1, x2, y2 float32) (float32, float32, float32, float32) {
	x1, y1 = lb.PointToFrame(x1, y1)
	x2, y2 = lb.PointToFrame(x2, y2)
	return x1, y1, x2, y2
}

// PointToFrame maps a point from model-input pixels to frame pixels,
// clipped to the frame.
func (lb Letterbox) PointToFrame(x, y float32) (float32, float32) {
	x, y = lb.Unmap(x, y)
	return clamp(x, 0, float32(lb.SrcW)), clamp(y, 0, float32(lb.SrcH))
}

// Unmap maps a point from model-input pixels to frame pixels, unclipped.
func (lb Letterbox) Unmap(x, y float32) (float32, float32) {
	return (x - float32(lb.PadX)) / float32(lb.ScaleX), (y - float32(lb.PadY)) / float32(lb.ScaleY)
}

// RotatedToFrame maps an oriented box from model-input pixels to frame
// pixels: its centre and corners as points (unclipped: a corner may lie
// outside the frame), its size by the scales. With a stretched frame
// (scales differing) the angle and size are those of the box as the
// model saw it.
func (lb Letterbox) RotatedToFrame(r RotatedBox) RotatedBox {
	r.CX, r.CY = lb.Unmap(r.CX, r.CY)
	r.W, r.H = r.W/float32(lb.ScaleX), r.H/float32(lb.ScaleY)
	for i, p := range r.Corners {
		r.Corners[i][0], r.Corners[i][1] = lb.Unmap(p[0], p[1])
	}
	return r
}

func clamp(v, lo, hi float32) float32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
