package main

// picture draws frame idx of a w×h test video as packed RGB24: a gradient,
// a box moving right, a red 16×16 marker in the top-left corner (to check
// rotation) and the frame index as an 8-bit code in 8×8 blocks along the
// bottom-left edge, white for 1, most significant bit first (to check
// sampling and timestamps after decoding).
func picture(idx, w, h int) []byte {
	pix := make([]byte, 3*w*h)
	set := func(x, y int, r, g, b byte) {
		if x >= w || y >= h {
			return // the index code is wider than the tiniest pictures
		}
		o := 3 * (y*w + x)
		pix[o], pix[o+1], pix[o+2] = r, g, b
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			set(x, y, byte(60+x*100/w), byte(60+y*100/h), 110)
		}
	}
	bw, bh := w/5, h/5
	bx := (idx * 4) % (w - bw)
	for y := h / 3; y < h/3+bh; y++ {
		for x := bx; x < bx+bw; x++ {
			set(x, y, 230, 230, 40)
		}
	}
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			set(x, y, 230, 20, 20)
		}
	}
	for bit := 0; bit < 8; bit++ {
		v := byte(16)
		if idx&(1<<(7-bit)) != 0 {
			v = 235
		}
		for y := h - 8; y < h; y++ {
			for x := bit * 8; x < bit*8+8; x++ {
				set(x, y, v, v, v)
			}
		}
	}
	return pix
}

// rotateCCW turns packed RGB24 w×h a quarter turn counter-clockwise, giving
// an h×w picture: what a camera held sideways stores.
func rotateCCW(src []byte, w, h int) []byte {
	dst := make([]byte, len(src))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			s := 3 * (y*w + x)
			d := 3 * ((w-1-x)*h + y)
			copy(dst[d:d+3], src[s:s+3])
		}
	}
	return dst
}
