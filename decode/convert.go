package decode

import (
	"fmt"

	"github.com/asticode/go-astiav"
)

// PixelFormat is the layout of Frame.Data.
type PixelFormat int

// Output pixel formats.
const (
	// RGB24 is packed 8-bit R,G,B; row stride is 3×Width.
	RGB24 PixelFormat = iota
	// NV12 is an 8-bit Y plane (stride Width) followed by interleaved U,V
	// at half resolution (stride Width rounded up to even). Width and Height
	// are rounded up to even in the chroma plane only.
	NV12
	// YUV420P is 8-bit planar Y (Width×Height), then U and V at half
	// resolution ((Width+1)/2 × (Height+1)/2 each), as decoded: no colour
	// conversion, which infer.LetterboxYUV420 does the way the GPU does.
	YUV420P
)

func (f PixelFormat) String() string {
	switch f {
	case RGB24:
		return "rgb24"
	case NV12:
		return "nv12"
	case YUV420P:
		return "yuv420p"
	}
	return fmt.Sprintf("PixelFormat(%d)", int(f))
}

func (f PixelFormat) av() astiav.PixelFormat {
	switch f {
	case NV12:
		return astiav.PixelFormatNv12
	case YUV420P:
		return astiav.PixelFormatYuv420P
	}
	return astiav.PixelFormatRgb24
}

// frameSize returns the bytes a w×h frame of format f occupies in Data.
func frameSize(f PixelFormat, w, h int) int {
	if f == NV12 || f == YUV420P {
		cw, ch := (w+1)/2, (h+1)/2
		return w*h + 2*cw*ch
	}
	return 3 * w * h
}

// converter turns decoded frames of any size and format into packed f,
// recreating its scaler when the input changes (resolution changes
// mid-stream) and rotating the result upright.
type converter struct {
	out      PixelFormat
	rotation int
	sws      *astiav.SoftwareScaleContext
	dst      *astiav.Frame
	w, h     int
	in       astiav.PixelFormat
	scratch  []byte
}

func (c *converter) close() {
	if c.sws != nil {
		c.sws.Free()
		c.sws = nil
	}
	if c.dst != nil {
		c.dst.Free()
		c.dst = nil
	}
}

// convert writes src into out (reusing its Data capacity).
func (c *converter) convert(src *astiav.Frame, out *Frame) error {
	w, h, pf := src.Width(), src.Height(), src.PixelFormat()
	if c.out == YUV420P && (pf == astiav.PixelFormatYuv420P || pf == astiav.PixelFormatYuvj420P) {
		return c.pack(src, w, h, out)
	}
	if c.sws == nil || w != c.w || h != c.h || pf != c.in {
		c.close()
		sws, err := astiav.CreateSoftwareScaleContext(w, h, pf, w, h, c.out.av(),
			astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagBilinear))
		if err != nil {
			return fmt.Errorf("scaler %dx%d %s to %s: %w", w, h, pf.Name(), c.out, err)
		}
		c.sws, c.w, c.h, c.in = sws, w, h, pf
		c.dst = astiav.AllocFrame()
	}
	if err := c.sws.ScaleFrame(src, c.dst); err != nil {
		return fmt.Errorf("convert %dx%d %s to %s: %w", w, h, pf.Name(), c.out, err)
	}
	return c.pack(c.dst, w, h, out)
}

// pack copies frame f (already in the output format) into out, rotated.
func (c *converter) pack(f *astiav.Frame, w, h int, out *Frame) error {
	n := frameSize(c.out, w, h)
	if c.rotation == 0 {
		out.Data = grow(out.Data, n)
		out.Width, out.Height = w, h
		return packPlanes(f, out.Data)
	}
	c.scratch = grow(c.scratch, n)
	if err := packPlanes(f, c.scratch); err != nil {
		return err
	}
	out.Data = grow(out.Data, n)
	out.Width, out.Height = rotate(c.out, c.scratch, w, h, c.rotation, out.Data)
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// packPlanes copies the scaler's output (padded line sizes) into dst with
// tight strides, the layout PixelFormat documents.
func packPlanes(f *astiav.Frame, dst []byte) error {
	_, err := f.ImageCopyToBuffer(dst, 1)
	return err
}

// rotate writes src (w×h, format pf, tight strides) rotated clockwise by deg
// into dst and returns the new size.
func rotate(pf PixelFormat, src []byte, w, h, deg int, dst []byte) (int, int) {
	switch pf {
	case RGB24:
		return rotatePlane(src, w, h, 3, deg, dst)
	case NV12:
		rotatePlane(src[:w*h], w, h, 1, deg, dst)
		cw, ch := (w+1)/2, (h+1)/2
		rotatePlane(src[w*h:], cw, ch, 2, deg, dst[w*h:])
		return rotatedSize(w, h, deg)
	case YUV420P:
		rotatePlane(src[:w*h], w, h, 1, deg, dst)
		cw, ch := (w+1)/2, (h+1)/2
		rotatePlane(src[w*h:w*h+cw*ch], cw, ch, 1, deg, dst[w*h:])
		rotatePlane(src[w*h+cw*ch:], cw, ch, 1, deg, dst[w*h+cw*ch:])
		return rotatedSize(w, h, deg)
	}
	return w, h
}

func rotatedSize(w, h, deg int) (int, int) {
	if deg == 90 || deg == 270 {
		return h, w
	}
	return w, h
}

// rotatePlane rotates a plane of w×h pixels of bpp bytes clockwise by deg.
func rotatePlane(src []byte, w, h, bpp, deg int, dst []byte) (int, int) {
	switch deg {
	case 90:
		// dst is h wide, w tall: dst(x', y') = src(x=y', y=h-1-x')
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				s := (y*w + x) * bpp
				d := (x*h + (h - 1 - y)) * bpp
				copy(dst[d:d+bpp], src[s:s+bpp])
			}
		}
		return h, w
	case 180:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				s := (y*w + x) * bpp
				d := ((h-1-y)*w + (w - 1 - x)) * bpp
				copy(dst[d:d+bpp], src[s:s+bpp])
			}
		}
		return w, h
	case 270:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				s := (y*w + x) * bpp
				d := ((w-1-x)*h + y) * bpp
				copy(dst[d:d+bpp], src[s:s+bpp])
			}
		}
		return h, w
	}
	copy(dst, src[:w*h*bpp])
	return w, h
}
