package infer

import "math"

// PadValue is the grey that letterboxing fills borders with (Ultralytics').
const PadValue = 114

// Letterbox records how a frame was fitted into the model input, to map
// boxes back to frame pixels.
type Letterbox struct {
	SrcW, SrcH int     // frame size
	Scale      float64 // model pixels per frame pixel
	PadX, PadY int     // left and top padding in model pixels
	NewW, NewH int     // size of the resized frame inside the input
}

// FitLetterbox computes how a w×h frame fits into a dstW×dstH input, keeping
// the aspect ratio and centring it, as Ultralytics does.
func FitLetterbox(w, h, dstW, dstH int) Letterbox {
	r := math.Min(float64(dstH)/float64(h), float64(dstW)/float64(w))
	nw, nh := int(math.Round(float64(w)*r)), int(math.Round(float64(h)*r))
	dw, dh := float64(dstW-nw)/2, float64(dstH-nh)/2
	return Letterbox{SrcW: w, SrcH: h, Scale: r, NewW: nw, NewH: nh,
		PadX: int(math.Round(dw - 0.1)), PadY: int(math.Round(dh - 0.1))}
}

// LetterboxRGB resizes a packed RGB24 frame (w×h) bilinearly into dst, a
// planar 3×dstH×dstW float32 tensor in [0, 1], padding with PadValue.
func LetterboxRGB(rgb []byte, w, h int, dst []float32, dstW, dstH int) Letterbox {
	lb := FitLetterbox(w, h, dstW, dstH)
	plane := dstW * dstH
	pad := float32(PadValue) / 255
	for i := 0; i < 3*plane; i++ {
		dst[i] = pad
	}
	xs := bilinearTaps(w, lb.NewW)
	ys := bilinearTaps(h, lb.NewH)
	const inv = 1.0 / 255
	for dy, ty := range ys {
		row0 := rgb[ty.i0*3*w:]
		row1 := rgb[ty.i1*3*w:]
		off := (lb.PadY+dy)*dstW + lb.PadX
		for dx, tx := range xs {
			a, b := 3*tx.i0, 3*tx.i1
			for c := 0; c < 3; c++ {
				top := float32(row0[a+c])*(1-tx.f) + float32(row0[b+c])*tx.f
				bot := float32(row1[a+c])*(1-tx.f) + float32(row1[b+c])*tx.f
				dst[c*plane+off+dx] = (top*(1-ty.f) + bot*ty.f) * inv
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
	fx := func(x float32) float32 {
		return clamp((x-float32(lb.PadX))/float32(lb.Scale), 0, float32(lb.SrcW))
	}
	fy := func(y float32) float32 {
		return clamp((y-float32(lb.PadY))/float32(lb.Scale), 0, float32(lb.SrcH))
	}
	return fx(x1), fy(y1), fx(x2), fy(y2)
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
