package decode

import (
	"math"

	"github.com/asticode/go-astiav"
)

// frameClock gives decoded frames their presentation times and indices,
// the same way on the CPU and on NVDEC, so that a file gets the same frames
// and times on either however far ahead of its output a decoder reads. The
// first packet decides what the file is timed by:
//
//   - a presentation timestamp (MP4, MKV, MPEG-TS, …): each frame has its
//     packet's;
//   - a decode timestamp only (AVI and other containers that store decode
//     order): frame i takes packet i's, which in display order are the
//     frames' times, B-frames included, skipped ticks kept;
//   - neither (raw .h264/.hevc streams): frames are one frame period
//     (1/fps) apart, the first at zero.
//
// A frame left without a time comes one period after the frame before, and
// times from decode timestamps or the period never go back.
//
// NVDEC's parser hands timestamps back in display order by sorting those it
// was given, not by picture: fed the presentation (or decode) timestamps of
// the packets, it returns what the CPU decoder's frames carry. A packet
// lacking the kind of timestamp its file's first packet had would be put out
// of place, so NVDEC leaves such a file to the CPU (packet's ok).
type frameClock struct {
	tb   float64 // stream time base, seconds
	t0   int64   // stream start, time-base units
	step float64 // one frame period, seconds (0: unknown)
	last float64 // time of the previous frame (-Inf before the first)
	n    int64   // frames out so far
	mode clockMode
	dts  []int64 // modeDTS: decode timestamps of packets not yet matched to a frame, in order
}

// clockMode is what a file's frames are timed by, from its first packet.
type clockMode int

const (
	modeUnknown clockMode = iota // no packet yet
	modePTS                      // packets' presentation timestamps
	modeDTS                      // packets' decode timestamps, in order
	modeNone                     // no timestamps: the frame period
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

// packet records a packet given to the decoder, in decode order. It
// returns the timestamp that stands for the packet in the file's mode
// (astiav.NoPtsValue in modeNone), and whether the packet has one.
func (c *frameClock) packet(pts, dts int64) (ts int64, ok bool) {
	if c.mode == modeUnknown {
		switch {
		case pts != astiav.NoPtsValue:
			c.mode = modePTS
		case dts != astiav.NoPtsValue:
			c.mode = modeDTS
		default:
			c.mode = modeNone
		}
	}
	switch c.mode {
	case modePTS:
		return pts, pts != astiav.NoPtsValue
	case modeDTS:
		if len(c.dts) == maxPendingDTS {
			c.dts = c.dts[1:]
		}
		c.dts = append(c.dts, dts)
		return dts, dts != astiav.NoPtsValue
	}
	return astiav.NoPtsValue, true
}

// decoded returns the timestamp, in the file's mode, of the next frame out
// of FFmpeg's decoder, whose own packet had presentation timestamp pts.
func (c *frameClock) decoded(pts int64) int64 {
	switch c.mode {
	case modePTS:
		return pts
	case modeDTS:
		if len(c.dts) == 0 {
			return astiav.NoPtsValue
		}
		ts := c.dts[0]
		c.dts = c.dts[1:]
		return ts
	}
	return astiav.NoPtsValue
}

// frame returns the index and time of the next frame, whose timestamp in
// the file's mode is ts (astiav.NoPtsValue if it has none).
func (c *frameClock) frame(ts int64) (int64, float64) {
	var t float64
	switch {
	case c.mode == modeNone || ts == astiav.NoPtsValue:
		t = c.next()
	case c.mode == modePTS:
		t = float64(ts-c.t0) * c.tb
	default:
		if t = float64(ts-c.t0) * c.tb; t <= c.last {
			t = c.next() // a decode timestamp that does not advance
		}
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

// tsUnwrap keeps the timestamps given to NVDEC's parser increasing across
// a jump back (transport streams cut and joined, a camera's clock reset),
// which the parser's sorting would otherwise mix with the frames around
// it, and maps the parser's timestamps back. A jump is a keyframe earlier
// than a frame before it (no frame after a keyframe is shown before the
// frames before it), or any fall of more than a second.
type tsUnwrap struct {
	gap  int64 // 1 s in the time base
	max  int64 // the largest timestamp given so far
	have bool
	segs []tsSegment // from the first jump on
}

// tsSegment is a run of timestamps given from start on, raised by off.
type tsSegment struct{ start, off int64 }

func newTSUnwrap(tb float64) tsUnwrap {
	u := tsUnwrap{gap: 1}
	if tb > 0 {
		u.gap = max(int64(1/tb), 1)
	}
	return u
}

// in returns the timestamp to give the parser for ts, a keyframe's when
// key is set.
func (u *tsUnwrap) in(ts int64, key bool) int64 {
	off := int64(0)
	if n := len(u.segs); n > 0 {
		off = u.segs[n-1].off
	}
	v := ts + off
	if u.have && (v < u.max-u.gap || key && v <= u.max) {
		off += u.max + u.gap - v
		v = ts + off
		u.segs = append(u.segs, tsSegment{start: v, off: off})
	}
	if !u.have || v > u.max {
		u.max, u.have = v, true
	}
	return v
}

// out maps a timestamp from the parser back to the file's.
func (u *tsUnwrap) out(v int64) int64 {
	for i := len(u.segs) - 1; i >= 0; i-- {
		if v >= u.segs[i].start {
			return v - u.segs[i].off
		}
	}
	return v
}
