package infer

import "testing"

// TestTapMajor: weight h of channel ch and tap t, stored at [ch][t], lands
// at [t][ch] in the packed halves.
func TestTapMajor(t *testing.T) {
	const c, taps = 16, 9
	kcrs := make([]byte, 2*c*taps)
	for ch := 0; ch < c; ch++ {
		for tp := 0; tp < taps; tp++ {
			v := uint16(ch*100 + tp)
			kcrs[2*(ch*taps+tp)], kcrs[2*(ch*taps+tp)+1] = byte(v), byte(v>>8)
		}
	}
	out := tapMajor(kcrs, c, taps)
	for tp := 0; tp < taps; tp++ {
		for ch := 0; ch < c; ch++ {
			i := tp*c + ch
			if got := uint16(uint32(out[i/2]) >> (16 * (i % 2))); got != uint16(ch*100+tp) {
				t.Fatalf("tap %d channel %d: %d, want %d", tp, ch, got, ch*100+tp)
			}
		}
	}
}
