package infer

// LetterboxYUV420 letterboxes a planar 8-bit 4:2:0 picture (y: w×h, u and
// v: (w+1)/2 × (h+1)/2), coded sideways by rot degrees clockwise, into dst
// (3×dstH×dstW float32) by the convention p. It computes what the GPU letterbox
// kernel (letterboxSource) computes, in the same order: each output pixel
// blends the RGB of its four source pixels bilinearly, each converted with
// BT.601 limited range from its own luma and its 2×2 block's chroma.
func LetterboxYUV420(y, u, v []byte, w, h, rot int, dst []float32, dstW, dstH int, p Preprocess) Letterbox {
	uw, uh := w, h
	if rot == 90 || rot == 270 {
		uw, uh = h, w
	}
	lb := FitLetterbox(uw, uh, dstW, dstH, p.Fit)
	plane := dstW * dstH
	fill(dst, plane, p.PadValues())
	a, b := p.Affine()
	pr, pg, pb := p.plane(0), p.plane(1), p.plane(2)
	// Each channel's plane offset and factors, out of the loop.
	or, og, ob := pr*plane, pg*plane, pb*plane
	mr, mg, mb, ar, ag, ab := a[pr], a[pg], a[pb], b[pr], b[pg], b[pb]
	cw := (w + 1) / 2
	rgb := func(ux, uy int) (float32, float32, float32) {
		sx, sy := ux, uy
		switch rot {
		case 90:
			sx, sy = uy, h-1-ux
		case 180:
			sx, sy = w-1-ux, h-1-uy
		case 270:
			sx, sy = w-1-uy, ux
		}
		Y := float32(y[sy*w+sx])
		ci := (sy>>1)*cw + sx>>1
		U, V := float32(u[ci]), float32(v[ci])
		c := 1.164383 * (Y - 16)
		return clamp(c+1.596027*(V-128), 0, 255),
			clamp(c-0.391762*(U-128)-0.812968*(V-128), 0, 255),
			clamp(c+2.017232*(U-128), 0, 255)
	}
	for oy := 0; oy < lb.NewH; oy++ {
		fy := max((float32(oy)+0.5)*float32(uh)/float32(lb.NewH)-0.5, 0)
		y0 := min(int(fy), uh-1)
		y1 := min(y0+1, uh-1)
		ay := fy - float32(y0)
		row := (lb.PadY+oy)*dstW + lb.PadX
		for ox := 0; ox < lb.NewW; ox++ {
			fx := max((float32(ox)+0.5)*float32(uw)/float32(lb.NewW)-0.5, 0)
			x0 := min(int(fx), uw-1)
			x1 := min(x0+1, uw-1)
			ax := fx - float32(x0)
			r0, g0, b0 := rgb(x0, y0)
			r1, g1, b1 := rgb(x1, y0)
			r2, g2, b2 := rgb(x0, y1)
			r3, g3, b3 := rgb(x1, y1)
			w00, w01, w10, w11 := (1-ax)*(1-ay), ax*(1-ay), (1-ax)*ay, ax*ay
			o := row + ox
			dst[or+o] = float32((r0*w00+r1*w01+r2*w10+r3*w11)*mr) + ar
			dst[og+o] = float32((g0*w00+g1*w01+g2*w10+g3*w11)*mg) + ag
			dst[ob+o] = float32((b0*w00+b1*w01+b2*w10+b3*w11)*mb) + ab
		}
	}
	return lb
}
