package decode

import (
	"math"

	"github.com/asticode/go-astiav"
)

// frameClock gives decoded frames their presentation times and indices. The
// CPU decoder and NVDEC both use it, fed the same facts (each frame's own
// packet timestamp, the decode timestamps of the packets read in order, the
// count of frames out), so that a file gets the same times on either,
// however far ahead of its output a decoder reads. The first packet decides
// how the file is timed:
//
//   - when it has a presentation timestamp (MP4, MKV, MPEG-TS and -PS, …),
//     a frame whose packet has one keeps it;
//   - when it has only a decode timestamp (AVI and others that store decode
//     order), frame i takes the decode timestamp of packet i: in display
//     order these are the frames' times, B-frames included, and gaps (a
//     camera's skipped ticks) are kept;
//   - a frame left without a time, as in raw .h264/.hevc streams, which
//     carry no timestamp at all, comes one frame period (1/fps) after the
//     frame before, the first at zero.
//
// Times taken from decode timestamps or the frame period never go back.
type frameClock struct {
	tb   float64 // stream time base, seconds
	t0   int64   // stream start, time-base units
	step float64 // one frame period, seconds (0: unknown)
	last float64 // time of the previous frame (-Inf before the first)
	n    int64   // frames out so far
	mode clockMode
	dts  []int64 // decode timestamps of the packets not yet matched to a frame, in order
}

// clockMode is what a file's frames are timed by, from its first packet.
type clockMode int

const (
	modeUnknown clockMode = iota // no packet yet
	modePTS                      // packets' presentation timestamps
	modeDTS                      // packets' decode timestamps, in order
)

// maxPendingDTS bounds the decode timestamps a clock holds for frames not
// yet out: packets that yield no frame (corrupt ones, say) would otherwise
// pile up. A decoder holds a few dozen frames at most.
const maxPendingDTS = 4096

func newFrameClock(in *input, assumeFPS float64) frameClock {
	c := frameClock{tb: in.stream.TimeBase().Float64(), last: math.Inf(-1)}
	if c.tb > 0 {
		// From the probe's facts, which NVDEC may open with instead of
		// FFmpeg's stream analysis (which MPEG-TS needs for its start).
		c.t0 = int64(math.Round(in.info.StartTime / c.tb))
	}
	// A frame without a timestamp of its own comes one period after the
	// frame before, by the average rate (the base rate is a guess from the
	// timestamps that such streams lack: MPEG-PS H.264 with a timestamp
	// every fourth frame stated 6.25 frames/s for 25).
	rate := in.info.AvgFPS
	if rate <= 0 || math.IsInf(rate, 0) {
		rate = in.info.RealFPS
	}
	if assumeFPS > 0 && in.info.Raw {
		rate = assumeFPS
	}
	if rate > 0 {
		c.step = 1 / rate
	}
	return c
}

// packet records a packet given to the decoder, in decode order.
func (c *frameClock) packet(pts, dts int64) {
	if c.mode == modeUnknown {
		c.mode = modeDTS
		if pts != astiav.NoPtsValue {
			c.mode = modePTS
		}
	}
	if c.mode != modeDTS {
		return
	}
	if len(c.dts) == maxPendingDTS {
		c.dts = c.dts[1:]
	}
	c.dts = append(c.dts, dts)
}

// frame returns the index and time of the next frame out of the decoder,
// whose own packet had presentation timestamp pts (astiav.NoPtsValue if
// none).
func (c *frameClock) frame(pts int64) (int64, float64) {
	var t float64
	switch {
	case c.mode == modePTS && pts != astiav.NoPtsValue:
		t = float64(pts-c.t0) * c.tb
	case c.mode == modeDTS && len(c.dts) > 0 && c.dts[0] != astiav.NoPtsValue:
		if t = float64(c.dts[0]-c.t0) * c.tb; t <= c.last {
			t = c.next()
		}
	default:
		t = c.next()
	}
	if c.mode == modeDTS && len(c.dts) > 0 {
		c.dts = c.dts[1:]
	}
	idx := c.n
	c.n++
	c.last = t
	return idx, t
}

// next is the earliest time a frame without a timestamp of its own may
// take: one period after the previous frame, or zero for the first.
func (c *frameClock) next() float64 {
	if math.IsInf(c.last, -1) {
		return 0
	}
	return c.last + c.step
}
