package main

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/dsbatch/dsbatch/events"
)

// trackColor gives each track a stable, distinct colour (grey: no track).
func trackColor(id int64) color.RGBA {
	if id < 0 {
		return color.RGBA{200, 200, 200, 255}
	}
	h := math.Mod(float64(id)*0.618033988749895, 1) * 6
	x := uint8(255 * (1 - math.Abs(math.Mod(h, 2)-1)))
	switch int(h) {
	case 0:
		return color.RGBA{255, x, 0, 255}
	case 1:
		return color.RGBA{x, 255, 0, 255}
	case 2:
		return color.RGBA{0, 255, x, 255}
	case 3:
		return color.RGBA{0, x, 255, 255}
	case 4:
		return color.RGBA{x, 0, 255, 255}
	}
	return color.RGBA{255, 0, x, 255}
}

func setPx(img *image.RGBA, x, y int, c color.RGBA) {
	if image.Pt(x, y).In(img.Rect) {
		img.SetRGBA(x, y, c)
	}
}

// drawRect draws a rectangle outline two pixels wide.
func drawRect(img *image.RGBA, x1, y1, x2, y2 int, c color.RGBA) {
	for t := 0; t < 2; t++ {
		for x := x1; x <= x2; x++ {
			setPx(img, x, y1+t, c)
			setPx(img, x, y2-t, c)
		}
		for y := y1; y <= y2; y++ {
			setPx(img, x1+t, y, c)
			setPx(img, x2-t, y, c)
		}
	}
}

// drawLine draws a line with Bresenham's algorithm.
func drawLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		setPx(img, x0, y0, c)
		setPx(img, x0+1, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// trailFrames is how far back a trail reaches.
const trailFrames = 90

// drawTrail joins the track's box centres over the frames up to frame.
func drawTrail(img *image.RGBA, points map[int64][2]float32, frame int64, s float32, c color.RGBA) {
	var frames []int64
	for f := range points {
		if f <= frame && f > frame-trailFrames {
			frames = append(frames, f)
		}
	}
	sort.Slice(frames, func(i, j int) bool { return frames[i] < frames[j] })
	for i := 1; i < len(frames); i++ {
		a, b := points[frames[i-1]], points[frames[i]]
		drawLine(img, int(a[0]*s), int(a[1]*s), int(b[0]*s), int(b[1]*s), c)
	}
}

// drawLabel writes text on a filled box above (or inside) the point.
func drawLabel(img *image.RGBA, x, y int, text string, bg color.RGBA) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, text).Ceil() + 4
	h := 14
	top := y - h
	if top < 0 {
		top = y
	}
	for yy := top; yy < top+h; yy++ {
		for xx := x; xx < x+w; xx++ {
			setPx(img, xx, yy, bg)
		}
	}
	d := font.Drawer{Dst: img, Src: image.NewUniform(color.RGBA{0, 0, 0, 255}), Face: face,
		Dot: fixed.P(x+2, top+11)}
	d.DrawString(text)
}

// contactSheet lays tiles out in a grid with a caption above each.
func contactSheet(tiles []tile) *image.RGBA {
	cols := int(math.Ceil(math.Sqrt(float64(len(tiles)))))
	rows := (len(tiles) + cols - 1) / cols
	tw, th := 0, 0
	for _, t := range tiles {
		tw, th = max(tw, t.img.Rect.Dx()), max(th, t.img.Rect.Dy())
	}
	const pad, caption = 6, 16
	sheet := image.NewRGBA(image.Rect(0, 0, cols*(tw+pad)+pad, rows*(th+caption+pad)+pad))
	for i := range sheet.Pix {
		sheet.Pix[i] = 32
		if i%4 == 3 {
			sheet.Pix[i] = 255
		}
	}
	for i, t := range tiles {
		x := pad + (i%cols)*(tw+pad)
		y := pad + (i/cols)*(th+caption+pad)
		d := font.Drawer{Dst: sheet, Src: image.NewUniform(color.RGBA{230, 230, 230, 255}), Face: basicfont.Face7x13, Dot: fixed.P(x, y+12)}
		d.DrawString(t.label)
		r := t.img.Rect.Add(image.Pt(x, y+caption))
		for yy := 0; yy < t.img.Rect.Dy(); yy++ {
			copy(sheet.Pix[sheet.PixOffset(r.Min.X, r.Min.Y+yy):], t.img.Pix[t.img.PixOffset(0, yy):t.img.PixOffset(0, yy)+4*t.img.Rect.Dx()])
		}
	}
	return sheet
}

// drawPolygon draws the closed outline through points (an oriented box's
// corners), scaled by s.
func drawPolygon(img *image.RGBA, points [][2]float32, s float32, c color.RGBA) {
	for i, p := range points {
		q := points[(i+1)%len(points)]
		drawLine(img, int(p[0]*s), int(p[1]*s), int(q[0]*s), int(q[1]*s), c)
	}
}

// cocoSkeleton joins COCO's 17 keypoints into limbs (Ultralytics'
// pairs, from 0).
var cocoSkeleton = [][2]int{{15, 13}, {13, 11}, {16, 14}, {14, 12}, {11, 12}, {5, 11}, {6, 12}, {5, 6}, {5, 7}, {6, 8},
	{7, 9}, {8, 10}, {1, 2}, {0, 1}, {0, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6}}

// keypointShown is the visibility above which a keypoint is drawn.
const keypointShown = 0.5

// drawSkeleton draws a pose's visible keypoints as dots and, for COCO's
// 17, the limbs between them, scaled by s.
func drawSkeleton(img *image.RGBA, points [][3]float32, s float32, c color.RGBA) {
	if len(points) == 17 {
		for _, l := range cocoSkeleton {
			a, b := points[l[0]], points[l[1]]
			if a[2] > keypointShown && b[2] > keypointShown {
				drawLine(img, int(a[0]*s), int(a[1]*s), int(b[0]*s), int(b[1]*s), c)
			}
		}
	}
	for _, p := range points {
		if p[2] <= keypointShown {
			continue
		}
		x, y := int(p[0]*s), int(p[1]*s)
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				setPx(img, x+dx, y+dy, color.RGBA{255, 255, 255, 255})
			}
		}
	}
}

// drawGeometry draws a camera's lines (with an arrow tick towards their
// positive side) and zones over a frame of w×h pixels shown at scale s,
// labelled with the crossings and the objects inside so far.
func drawGeometry(img *image.RGBA, cam *events.Camera, w, h int, s float32, crossings map[string]map[string]int, inside map[string]int) {
	if cam == nil {
		return
	}
	px := func(p [2]float64) [2]float32 {
		if cam.Normalized {
			return [2]float32{float32(p[0] * float64(w)), float32(p[1] * float64(h))}
		}
		return [2]float32{float32(p[0]), float32(p[1])}
	}
	yellow, cyan := color.RGBA{255, 230, 0, 255}, color.RGBA{0, 230, 255, 255}
	for _, l := range cam.Lines {
		a, b := px(l.From), px(l.To)
		drawLine(img, int(a[0]*s), int(a[1]*s), int(b[0]*s), int(b[1]*s), yellow)
		// The tick: from the middle, a little towards the positive side
		// (the right-hand side of from→to on screen).
		mx, my := (a[0]+b[0])/2, (a[1]+b[1])/2
		dx, dy := b[0]-a[0], b[1]-a[1]
		n := float32(math.Hypot(float64(dx), float64(dy)))
		tx, ty := mx-dy/n*12/s, my+dx/n*12/s
		drawLine(img, int(mx*s), int(my*s), int(tx*s), int(ty*s), yellow)
		label := l.Name
		if c := crossings[l.Name]; c != nil || len(inside) > 0 || len(crossings) > 0 {
			label = fmt.Sprintf("%s: %s %d, %s %d", l.Name, l.Positive, c[l.Positive], l.Negative, c[l.Negative])
		}
		drawLabel(img, int(a[0]*s), int(a[1]*s), label, yellow)
	}
	for _, z := range cam.Zones {
		pts := make([][2]float32, len(z.Polygon))
		for i, p := range z.Polygon {
			pts[i] = px(p)
		}
		drawPolygon(img, pts, s, cyan)
		label := z.Name
		if len(inside) > 0 || len(crossings) > 0 {
			label = fmt.Sprintf("%s: %d inside", z.Name, inside[z.Name])
		}
		drawLabel(img, int(pts[0][0]*s), int(pts[0][1]*s), label, cyan)
	}
}

// drawMask tints the pixels of d's mask with c at 45%: the RLE's runs of
// frame pixels (column by column) are marked at the image's scale s, then
// each marked pixel is blended once.
func drawMask(img *image.RGBA, d previewDet, s float32, c color.RGBA) {
	if d.mask == nil || d.maskH <= 0 {
		return
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	mark := make([]bool, w*h)
	p, total := 0, d.maskH*d.maskW
	for k, n := range d.mask {
		if n < 0 {
			return
		}
		end := min(p+int(n), total)
		if k%2 == 1 {
			for q := p; q < end; q++ {
				x, y := int(float32(q/d.maskH)*s), int(float32(q%d.maskH)*s)
				if x < w && y < h {
					mark[y*w+x] = true
				}
			}
		}
		p = end
	}
	const a = 0.45
	for i, m := range mark {
		if !m {
			continue
		}
		o := i * 4
		img.Pix[o] = uint8(float32(img.Pix[o])*(1-a) + float32(c.R)*a)
		img.Pix[o+1] = uint8(float32(img.Pix[o+1])*(1-a) + float32(c.G)*a)
		img.Pix[o+2] = uint8(float32(img.Pix[o+2])*(1-a) + float32(c.B)*a)
	}
}
