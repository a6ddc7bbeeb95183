package decode

import "math"

// sampler decides which decoded frames are kept: every Stride-th decoded
// frame, at most FPS frames per second of video, and only frames inside
// [Start, End).
type sampler struct {
	stride     int64
	fps        float64
	start, end float64
	next       float64 // next PTS (seconds) at which an FPS sample is due
	kept       bool    // whether any frame has been kept (anchors the FPS grid)
}

func newSampler(o Options) sampler {
	s := sampler{stride: int64(o.Stride), fps: o.FPS, start: o.Start, end: o.End}
	if s.stride < 1 {
		s.stride = 1
	}
	return s
}

// keep reports whether the frame with decode index idx and timestamp pts
// (seconds) is wanted. pastEnd is true once frames are beyond End, so the
// caller can stop decoding.
func (s *sampler) keep(idx int64, pts float64) (keep, pastEnd bool) {
	if s.end > 0 && pts >= s.end {
		return false, true
	}
	if pts < s.start {
		return false, false
	}
	if idx%s.stride != 0 {
		return false, false
	}
	if s.fps > 0 {
		// Allow half a microsecond of slack for timestamps that land on the
		// grid only after rounding from the stream's time base.
		if s.kept && pts+5e-7 < s.next {
			return false, false
		}
		s.next = (math.Floor(pts*s.fps+5e-7) + 1) / s.fps
	}
	s.kept = true
	return true, false
}
