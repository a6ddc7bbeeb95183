package decode

import (
	"math"
	"slices"
	"testing"

	"github.com/asticode/go-astiav"
)

const none = astiav.NoPtsValue

// TestFrameClock times frames in each mode from the packets' timestamps, as
// the CPU decoder feeds it (time base 1/25 s).
func TestFrameClock(t *testing.T) {
	for _, tt := range []struct {
		name     string
		pts, dts []int64 // per packet, decode order
		frames   []int64 // frame pts out of the decoder, display order
		want     []float64
	}{
		{"presentation timestamps, B-frames", []int64{0, 3, 1, 2}, []int64{-1, 0, 1, 2}, []int64{0, 1, 2, 3}, []float64{0, 0.04, 0.08, 0.12}},
		{"a frame without one", []int64{0, 1, none, 3}, []int64{0, 1, none, 3}, []int64{0, 1, none, 3}, []float64{0, 0.04, 0.08, 0.12}},
		{"decode order only, ticks skipped", []int64{none, none, none}, []int64{0, 2, 6}, []int64{none, none, none}, []float64{0, 0.08, 0.24}},
		{"decode order, a timestamp that does not advance", []int64{none, none, none}, []int64{0, 1, 1}, []int64{none, none, none}, []float64{0, 0.04, 0.08}},
		{"decode order wins over a few presentation timestamps", []int64{none, 4, none}, []int64{0, 1, 2}, []int64{none, 4, none}, []float64{0, 0.04, 0.08}},
		{"raw stream", []int64{none, none, none}, []int64{none, none, none}, []int64{none, none, none}, []float64{0, 0.04, 0.08}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := frameClock{tb: 1.0 / 25, step: 1.0 / 25, last: math.Inf(-1)}
			var got []float64
			for i := range tt.pts {
				c.packet(tt.pts[i], tt.dts[i])
			}
			for i, p := range tt.frames {
				idx, pts := c.frame(c.decoded(p))
				if idx != int64(i) {
					t.Errorf("frame %d has index %d", i, idx)
				}
				got = append(got, pts)
			}
			if !closeTo(got, tt.want) {
				t.Errorf("times %v, want %v", got, tt.want)
			}
		})
	}
}

func closeTo(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > 1e-9 || d < -1e-9 {
			return false
		}
	}
	return true
}

// TestClockPacketModes: the first packet decides the mode, and a packet
// lacking its kind of timestamp is reported (NVDEC leaves the file to the
// CPU).
func TestClockPacketModes(t *testing.T) {
	for _, tt := range []struct {
		name     string
		pts, dts []int64
		ok       []bool
	}{
		{"pts", []int64{0, none}, []int64{0, 1}, []bool{true, false}},
		{"dts", []int64{none, 5}, []int64{0, none}, []bool{true, false}},
		{"none", []int64{none, 5}, []int64{none, 5}, []bool{true, true}},
	} {
		var c frameClock
		for i := range tt.pts {
			if _, ok := c.packet(tt.pts[i], tt.dts[i]); ok != tt.ok[i] {
				t.Errorf("%s: packet %d ok = %v", tt.name, i, ok)
			}
		}
	}
}

// TestTSUnwrap: timestamps given to NVDEC's parser keep increasing across
// a jump back, reordering within a segment is kept, and the parser's sorted
// output maps back to the file's timestamps in display order.
func TestTSUnwrap(t *testing.T) {
	u := newTSUnwrap(1.0 / 25) // gap: 25 ticks
	// Two segments of B-framed video (decode order), the second starting
	// at 0 again.
	in := []int64{0, 3, 1, 2, 6, 4, 5, 0, 3, 1, 2, 6, 4, 5}
	var fed []int64
	for i, ts := range in {
		fed = append(fed, u.in(ts, i == 0 || i == 7))
	}
	if fed[7] <= slices.Max(fed[:7]) {
		t.Fatalf("after the jump back the parser gets %d, not above %d: %v", fed[7], slices.Max(fed[:7]), fed)
	}
	sorted := slices.Clone(fed)
	slices.Sort(sorted)
	var got []int64
	for _, v := range sorted {
		got = append(got, u.out(v))
	}
	if want := []int64{0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("display order %v, want %v", got, want)
	}
	// Without keyframes, a fall of more than a second is a jump; a smaller
	// one is reordering.
	u = newTSUnwrap(1.0 / 25)
	if a, b, c := u.in(100, false), u.in(90, false), u.in(50, false); b != 90 || c <= a {
		t.Errorf("100, 90, 50 given as %d, %d, %d", a, b, c)
	}
}
