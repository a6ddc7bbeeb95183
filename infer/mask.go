package infer

import (
	"fmt"
	"math"
)

// Instance masks of segmentation models (Ultralytics' -seg, YOLO26's
// end-to-end seg). Such a model gives each detection M mask coefficients
// beside its box, and each image M prototypes of mh×mw cells (a quarter
// of the input's resolution). A detection's mask is the sum of the
// prototypes weighed by its coefficients: a logit per cell, sampled
// bilinearly at each frame pixel's centre, cropped to the box and
// thresholded at 0 (a probability of one half), as Ultralytics' retina
// masks are.

// Mask is a detection's mask as the model gives it: the logits of its
// weighed prototypes over the window of prototype cells round its box.
type Mask struct {
	X0, Y0, W, H int       // the window, in cells of the prototype grid
	Logits       []float32 // H×W, row-major
	// GridW and GridH are the prototype grid's size, CellW and CellH a
	// cell's size in model-input pixels.
	GridW, GridH int
	CellW, CellH float32
}

// FrameMask is a mask in frame pixels: which pixels of the box's
// rectangle X0, Y0, W×H it covers, column by column.
type FrameMask struct {
	X0, Y0, W, H int
	Bits         []bool // W×H, column-major: pixel (X0+x, Y0+y) is Bits[x×H+y]
}

// Area is the pixels the mask covers.
func (m FrameMask) Area() int64 {
	n := int64(0)
	for _, b := range m.Bits {
		if b {
			n++
		}
	}
	return n
}

// RLE is the mask as COCO's uncompressed run-length encoding over a frame
// of w×h pixels: lengths of alternate runs of 0s and 1s, starting with
// 0s, the pixels taken column by column (pycocotools' frPyObjects reads
// {"size": [h, w], "counts": RLE}).
func (m FrameMask) RLE(w, h int) []int32 {
	counts, _ := m.Encode(w, h)
	return counts
}

// Encode is RLE and the mask's area in one pass over its pixels.
func (m FrameMask) Encode(w, h int) (counts []int32, area int64) {
	run, cur := m.X0*h+m.Y0, false
	for x := 0; x < m.W; x++ {
		bits := m.Bits[x*m.H : (x+1)*m.H]
		for i := 0; i < len(bits); {
			// The rest of the current run in this column, then a flip.
			j := i
			for j < len(bits) && bits[j] == cur {
				j++
			}
			run += j - i
			if cur {
				area += int64(j - i)
			}
			if j < len(bits) {
				counts = append(counts, int32(run))
				run, cur = 0, !cur
			}
			i = j
		}
		gap := h - m.H
		if x == m.W-1 {
			gap = h - m.Y0 - m.H + (w-m.X0-m.W)*h
		}
		if gap > 0 && cur {
			counts = append(counts, int32(run))
			run, cur = 0, !cur
		}
		run += gap
	}
	if m.W == 0 {
		run = w * h
	}
	return append(counts, int32(run)), area
}

// Frame rasterises the mask in frame pixels: the pixels whose centres lie
// in the box x1, y1 to x2, y2 (frame pixels) and where the logit,
// sampled bilinearly at the centre's place in the prototype grid, is
// above 0.
func (m *Mask) Frame(lb Letterbox, x1, y1, x2, y2 float32) FrameMask {
	return m.FrameInto(nil, lb, x1, y1, x2, y2)
}

// FrameInto is Frame rasterising into scratch when it has room (its
// contents are overwritten; the result's Bits alias it until the next
// call), so that an exporter allocates no mask a detection: a 1080p
// frame of large masks is tens of megabytes.
func (m *Mask) FrameInto(scratch []bool, lb Letterbox, x1, y1, x2, y2 float32) FrameMask {
	rs := m.raster(lb, x1, y1, x2, y2)
	fm := rs.fm
	if fm.W == 0 {
		return fm
	}
	if n := fm.W * fm.H; cap(scratch) >= n {
		fm.Bits = scratch[:n]
		clear(fm.Bits)
	} else {
		fm.Bits = make([]bool, n)
	}
	for x := 0; x < fm.W; x++ {
		rs.column(m, lb, x)
		bits := fm.Bits[x*fm.H : (x+1)*fm.H]
		for _, sp := range rs.spans {
			a, b := rs.col[sp.r], rs.col[min(sp.r+1, m.H-1)]
			switch {
			case a >= minLogit && b >= minLogit:
				for y := sp.y0; y < sp.y1; y++ {
					bits[y] = true
				}
			case a <= 0 && b <= 0:
				// false, as made
			default:
				for y := sp.y0; y < sp.y1; y++ {
					bits[y] = a*(1-rs.rowW[y])+b*rs.rowW[y] > 0
				}
			}
		}
	}
	return fm
}

// EncodeFrame is Encode of FrameInto's mask over the frame lb maps to,
// without the pixels in between: runs grow a span at a time where the
// span is filled or empty, a pixel at a time elsewhere. The exporters'
// form of a mask.
func (m *Mask) EncodeFrame(lb Letterbox, x1, y1, x2, y2 float32) (counts []int32, area int64) {
	w, h := lb.SrcW, lb.SrcH
	rs := m.raster(lb, x1, y1, x2, y2)
	fm := rs.fm
	if fm.W == 0 {
		return []int32{int32(w * h)}, 0
	}
	run, cur := fm.X0*h+fm.Y0, false
	push := func(v bool, n int) {
		if v != cur {
			counts = append(counts, int32(run))
			run, cur = 0, v
		}
		run += n
		if v {
			area += int64(n)
		}
	}
	for x := 0; x < fm.W; x++ {
		rs.column(m, lb, x)
		for _, sp := range rs.spans {
			a, b := rs.col[sp.r], rs.col[min(sp.r+1, m.H-1)]
			switch {
			case a >= minLogit && b >= minLogit:
				push(true, sp.y1-sp.y0)
			case a <= 0 && b <= 0:
				push(false, sp.y1-sp.y0)
			default: // push pixel by pixel, written out: the speckled masks' hot loop
				for _, rw := range rs.rowW[sp.y0:sp.y1] {
					v := a*(1-rw)+b*rw > 0
					if v != cur {
						counts = append(counts, int32(run))
						run, cur = 0, v
					}
					run++
					if v {
						area++
					}
				}
			}
		}
		gap := h - fm.H
		if x == fm.W-1 {
			gap = h - fm.Y0 - fm.H + (w-fm.X0-fm.W)*h
		}
		if gap > 0 {
			push(false, gap)
		}
	}
	return append(counts, int32(run)), area
}

// minLogit is the least logit of a filled span: a convex blend of two
// positives of at least this cannot round to 0.
const minLogit = 1e-20

// raster is a mask's rasterisation over a box of frame pixels: the box
// (fm, without bits), each pixel row's cell row and weight, the spans of
// rows between the same two cell rows, and one column's logits.
type raster struct {
	fm    FrameMask
	rows  []int
	rowW  []float32
	spans []span
	col   []float32
}

// span is the pixel rows y0 to y1 between cell rows r and r+1.
type span struct{ y0, y1, r int }

// raster prepares the rasterisation of m in the box x1, y1 to x2, y2
// (frame pixels): the pixels whose centres lie in the box. An empty box
// or mask gives fm.W = 0.
//
// Pixels between the same two cell rows form a span: where its two logits
// agree in sign, so does every pixel's convex blend of them (a positive
// pair of at least minLogit cannot round to 0), and the span is filled
// without evaluating each pixel. Mixed pairs, tiny values and NaN take
// the per-pixel formula.
func (m *Mask) raster(lb Letterbox, x1, y1, x2, y2 float32) raster {
	first := func(v float32, n int) int { return min(max(int(math.Ceil(float64(v)-0.5)), 0), n) }
	fx0, fx1 := first(x1, lb.SrcW), first(x2, lb.SrcW)
	fy0, fy1 := first(y1, lb.SrcH), first(y2, lb.SrcH)
	fm := FrameMask{X0: fx0, Y0: fy0, W: max(fx1-fx0, 0), H: max(fy1-fy0, 0)}
	if fm.W == 0 || fm.H == 0 || m.W == 0 || m.H == 0 {
		fm.W, fm.H = 0, 0
		return raster{fm: fm}
	}
	rs := raster{fm: fm, rows: make([]int, fm.H), rowW: make([]float32, fm.H), col: make([]float32, m.H)}
	for y := range rs.rows {
		rs.rows[y], rs.rowW[y] = cellTap(fy0+y, lb.ScaleY, lb.PadY, m.CellH, m.Y0, m.GridH, m.H)
	}
	for y := 0; y < fm.H; {
		e := y + 1
		for e < fm.H && rs.rows[e] == rs.rows[y] {
			e++
		}
		rs.spans = append(rs.spans, span{y, e, rs.rows[y]})
		y = e
	}
	return rs
}

// column puts the logits of the box's pixel column x, blended between
// its two cell columns, in rs.col.
func (rs *raster) column(m *Mask, lb Letterbox, x int) {
	c, f := cellTap(rs.fm.X0+x, lb.ScaleX, lb.PadX, m.CellW, m.X0, m.GridW, m.W)
	c1 := min(c+1, m.W-1)
	for r := range rs.col {
		rs.col[r] = m.Logits[r*m.W+c]*(1-f) + m.Logits[r*m.W+c1]*f
	}
}

// cellTap places a frame pixel's centre in the window: the cell before it and
// the weight of the next.
func cellTap(f int, scale float64, pad int, cell float32, origin, grid, size int) (int, float32) {
	in := (float64(f)+0.5)*scale + float64(pad)
	u := min(max(in/float64(cell)-0.5, 0), float64(grid-1)) - float64(origin)
	u = min(max(u, 0), float64(size-1))
	i := min(int(u), size-1)
	return i, float32(u - float64(i))
}

// weigh adds c·p to row, element by element (len(p) == len(row)), four at
// a time: the inner loop of a mask's weighed prototypes.
func weigh(row, p []float32, c float32) {
	p = p[:len(row)]
	i := 0
	for ; i+4 <= len(row); i += 4 {
		r, q := row[i:i+4:i+4], p[i:i+4:i+4]
		r[0] += c * q[0]
		r[1] += c * q[1]
		r[2] += c * q[2]
		r[3] += c * q[3]
	}
	for ; i < len(row); i++ {
		row[i] += c * p[i]
	}
}

// maskGeometry works out a segmentation output's parts from the values
// per image (l, joined by joinMasks: the detection output's d1×d2, then
// the prototypes' M×mh×mw) and the shapes the model declares (-1 where
// dynamic): prototypes at a quarter of the h×w input and detections over
// the anchor-free grid of strides 8, 16 and 32 where not declared, as
// Ultralytics exports them.
func maskGeometry(l int, mo MaskOutput, head Head, h, w int) (d1, d2, m, mh, mw int, err error) {
	m, mh, mw = int(mo.Shape[0]), int(mo.Shape[1]), int(mo.Shape[2])
	if m <= 0 {
		m = 32
	}
	if mh <= 0 || mw <= 0 {
		mh, mw = h/4, w/4
	}
	dets := l - m*mh*mw
	if len(mo.Head) == 3 {
		d1, d2 = int(mo.Head[1]), int(mo.Head[2])
	}
	anchors := anchorFreeCells(h, w, nil)
	switch {
	case d1 > 0 && d2 > 0:
	case d1 > 0 && dets%d1 == 0:
		d2 = dets / d1
	case d2 > 0 && dets%d2 == 0:
		d1 = dets / d2
	case head == HeadOne2One && dets%anchors == 0:
		d1, d2 = anchors, dets/anchors // [B, anchors, 4+C+M]
	case dets%anchors == 0 && dets/anchors > 4+m:
		d1, d2 = dets/anchors, anchors // [B, 4+C+M, anchors]
	case dets%300 == 0 && dets/300 == 6+m:
		d1, d2 = 300, dets/300 // end to end: [B, 300, 6+M]
	}
	if d1 <= 0 || d2 <= 0 || d1*d2 != dets {
		return 0, 0, 0, 0, 0, fmt.Errorf("%w: a segmentation output of %d values an image does not split into detections %v and %d prototypes of %dx%d: "+
			"export the model with a fixed input size", ErrBadModel, l, mo.Head, m, mw, mh)
	}
	return d1, d2, m, mh, mw, nil
}

// protoValues is the values of an image's prototypes after its
// detection output.
func (l Layout) protoValues() int { return l.Masks * l.MaskH * l.MaskW }

// coefficient returns coefficient k of the mask of the detection from row
// or anchor src.
func (l Layout) coefficient(out []float32, src, k int) float32 {
	switch l.Head {
	case HeadV8:
		return out[(4+l.Classes+k)*l.D2+src] // [4+C+M, N]
	case HeadE2E:
		return out[src*l.D2+6+k] // [K, 6+M]
	default:
		return out[src*l.D2+4+l.Classes+k] // one2one: [N, 4+C+M]
	}
}

// attachMasks gives each detection its mask from the image's output out
// (detections, then prototypes), with the coefficients of the row or
// anchor it was read from.
func (l Layout) attachMasks(out []float32, dets []Detection) {
	protos := out[l.D1*l.D2:]
	coef := make([]float32, l.Masks)
	for i := range dets {
		d := &dets[i]
		if d.src < 1 {
			continue
		}
		for k := range coef {
			coef[k] = l.coefficient(out, int(d.src-1), k)
		}
		d.Mask = l.weighMask(protos, coef, d)
	}
}

// weighMask is the mask of detection d (its box in model-input pixels):
// the logits of the image's prototypes weighed by its coefficients over
// the cells round its box.
func (l Layout) weighMask(protos, coef []float32, d *Detection) *Mask {
	plane := l.MaskH * l.MaskW
	cw, ch := float32(l.InputW)/float32(l.MaskW), float32(l.InputH)/float32(l.MaskH)
	cell := func(v, size float32, n int) int { // the cell whose centre is at or before v
		return min(max(int(math.Floor(float64(v/size-0.5))), 0), n-1)
	}
	x0, x1 := cell(d.X1, cw, l.MaskW), min(cell(d.X2, cw, l.MaskW)+1, l.MaskW-1)
	y0, y1 := cell(d.Y1, ch, l.MaskH), min(cell(d.Y2, ch, l.MaskH)+1, l.MaskH-1)
	m := &Mask{X0: x0, Y0: y0, W: x1 - x0 + 1, H: y1 - y0 + 1, GridW: l.MaskW, GridH: l.MaskH, CellW: cw, CellH: ch}
	if m.W <= 0 || m.H <= 0 { // an inverted box: an empty mask
		m.W, m.H = 0, 0
	}
	m.Logits = make([]float32, m.W*m.H)
	for r := 0; r < m.H; r++ {
		row := m.Logits[r*m.W : (r+1)*m.W]
		for k, c := range coef {
			at := k*plane + (y0+r)*l.MaskW + x0
			weigh(row, protos[at:at+len(row)], c)
		}
	}
	return m
}
