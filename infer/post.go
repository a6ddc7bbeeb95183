package infer

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Head is the layout of a detector's output tensor.
type Head int

// Output layouts of the YOLO family.
const (
	// HeadV5 is [B, N, 5+C]: cx, cy, w, h, objectness, C class scores.
	HeadV5 Head = iota + 1
	// HeadV8 is [B, 4+C, N]: cx, cy, w, h then C class scores, per anchor
	// (YOLOv8, v9, v11).
	HeadV8
	// HeadE2E is [B, K, 6]: x1, y1, x2, y2, score, class, already
	// deduplicated (YOLOv10 and other NMS-free exports).
	HeadE2E
)

func (h Head) String() string {
	switch h {
	case HeadV5:
		return "v5"
	case HeadV8:
		return "v8"
	case HeadE2E:
		return "e2e"
	}
	return fmt.Sprintf("Head(%d)", int(h))
}

// ParseHead parses "v5", "v8" (also v9, v11), "e2e" (also v10) or "auto" (0).
func ParseHead(s string) (Head, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return 0, nil
	case "v5", "yolov5":
		return HeadV5, nil
	case "v8", "v9", "v11", "yolov8", "yolo11":
		return HeadV8, nil
	case "e2e", "v10", "yolov10", "nms-free":
		return HeadE2E, nil
	}
	return 0, fmt.Errorf("--head %q: want auto, v5, v8 or e2e", s)
}

// DetectHead infers the layout from the output shape [B, d1, d2] and the
// number of classes (0 when unknown).
func DetectHead(d1, d2, classes int) (Head, error) {
	switch {
	case classes > 0 && d1 == 4+classes && d2 != 5+classes:
		return HeadV8, nil
	case classes > 0 && d2 == 5+classes && d1 != 4+classes:
		return HeadV5, nil
	case d2 == 6 && (classes == 0 || classes != 1) && d1 < 1000:
		return HeadE2E, nil
	case classes == 0 && d1 < d2 && d1 > 4:
		return HeadV8, nil
	case classes == 0 && d2 < d1 && d2 > 5 && d2 != 6:
		return HeadV5, nil
	}
	return 0, fmt.Errorf("cannot tell the head layout of output [B, %d, %d] with %d classes: give --head v5, v8 or e2e", d1, d2, classes)
}

// Classes returns the number of classes a head of this layout carries in
// an output [B, d1, d2] (0 for end-to-end heads, whose class is a value).
func (h Head) Classes(d1, d2 int) int {
	switch h {
	case HeadV5:
		return d2 - 5
	case HeadV8:
		return d1 - 4
	}
	return 0
}

// Detection is one detected object, in model-input pixels until mapped.
type Detection struct {
	Class          int
	Score          float32
	X1, Y1, X2, Y2 float32
}

// PostOptions control Decode.
type PostOptions struct {
	Conf          float32 // minimum score
	IoU           float32 // NMS overlap above which the lower-scored box goes
	MaxDet        int     // detections kept per image (0: 300)
	ClassAgnostic bool    // NMS across classes
	// TopK bounds the candidates per image that enter NMS, best first
	// (0: DefaultTopK). The GPU engine selects them on the device.
	TopK int
}

// DefaultTopK is the number of candidates per image NMS considers unless
// PostOptions.TopK says otherwise.
const DefaultTopK = 1024

func (o PostOptions) topK() int {
	if o.TopK <= 0 {
		return DefaultTopK
	}
	return o.TopK
}

func (o PostOptions) maxDet() int {
	if o.MaxDet <= 0 {
		return 300
	}
	return o.MaxDet
}

// Decode turns one image's raw output (d1×d2 values) into detections in
// model-input pixels, appending to dst.
func (h Head) Decode(out []float32, d1, d2 int, o PostOptions, dst []Detection) []Detection {
	maxDet := o.maxDet()
	var cand []Detection
	switch h {
	case HeadV8:
		n, nc := d2, d1-4
		for a := 0; a < n; a++ {
			best, bc := float32(-1), -1
			for c := 0; c < nc; c++ {
				if s := out[(4+c)*n+a]; s > best {
					best, bc = s, c
				}
			}
			if best < o.Conf {
				continue
			}
			cx, cy, w, hh := out[a], out[n+a], out[2*n+a], out[3*n+a]
			cand = append(cand, Detection{Class: bc, Score: best, X1: cx - w/2, Y1: cy - hh/2, X2: cx + w/2, Y2: cy + hh/2})
		}
	case HeadV5:
		n, nc := d1, d2-5
		for a := 0; a < n; a++ {
			row := out[a*d2 : (a+1)*d2]
			obj := row[4]
			if obj < o.Conf {
				continue
			}
			best, bc := float32(-1), -1
			for c := 0; c < nc; c++ {
				if s := row[5+c]; s > best {
					best, bc = s, c
				}
			}
			score := obj * best
			if score < o.Conf {
				continue
			}
			cx, cy, w, hh := row[0], row[1], row[2], row[3]
			cand = append(cand, Detection{Class: bc, Score: score, X1: cx - w/2, Y1: cy - hh/2, X2: cx + w/2, Y2: cy + hh/2})
		}
	case HeadE2E:
		for k := 0; k < d1; k++ {
			row := out[k*d2 : (k+1)*d2]
			if row[4] < o.Conf {
				continue
			}
			dst = append(dst, Detection{Class: int(row[5]), Score: row[4], X1: row[0], Y1: row[1], X2: row[2], Y2: row[3]})
			if k+1 >= maxDet {
				break
			}
		}
		return dst
	}
	return append(dst, nms(cand, o.IoU, maxDet, o.topK(), o.ClassAgnostic)...)
}

// nms keeps the best-scored boxes among the topK best, dropping any box
// that overlaps a kept box of the same class (any class when agnostic) by
// more than iou. Equal scores keep their order in c.
func nms(c []Detection, iou float32, maxDet, topK int, agnostic bool) []Detection {
	sort.SliceStable(c, func(i, j int) bool { return c[i].Score > c[j].Score })
	if len(c) > topK {
		c = c[:topK]
	}
	keep := make([]Detection, 0, min(len(c), maxDet))
	dropped := make([]bool, len(c))
	for i := range c {
		if dropped[i] {
			continue
		}
		keep = append(keep, c[i])
		if len(keep) == maxDet {
			break
		}
		for j := i + 1; j < len(c); j++ {
			if !dropped[j] && (agnostic || c[j].Class == c[i].Class) && IoU(c[i], c[j]) > iou {
				dropped[j] = true
			}
		}
	}
	return keep
}

// IoU returns the intersection over union of two boxes.
func IoU(a, b Detection) float32 {
	iw := min(a.X2, b.X2) - max(a.X1, b.X1)
	ih := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := (a.X2-a.X1)*(a.Y2-a.Y1) + (b.X2-b.X1)*(b.Y2-b.Y1) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Layout is what a model's output looks like, learnt from a first run.
type Layout struct {
	Head    Head
	D1, D2  int // output [B, D1, D2]
	Classes int // classes the head scores (0 for end-to-end heads)
}

// ProbeLayout runs one blank image through e and works out the output
// layout, using head when given and the number of class names otherwise.
func ProbeLayout(ctx context.Context, e Engine, h, w, names int, head Head) (Layout, error) {
	in := make([]float32, 3*h*w)
	for i := range in {
		in[i] = PadValue / 255.0
	}
	_, shape, err := e.Infer(ctx, in, 1)
	if err != nil {
		return Layout{}, err
	}
	if len(shape) != 3 || shape[0] != 1 {
		return Layout{}, fmt.Errorf("%w: output shape %v, want [batch, a, b]", ErrBadModel, shape)
	}
	d1, d2 := int(shape[1]), int(shape[2])
	if head == 0 {
		if head, err = DetectHead(d1, d2, names); err != nil {
			return Layout{}, err
		}
		if cells := anchorFreeCells(h, w); head == HeadV5 && d1 == cells {
			// YOLOv5 has three anchors a cell; one row a cell is YOLOX's
			// anchor-free layout (grid offsets and log sizes, or boxes
			// already decoded), which read as YOLOv5's gives boxes that
			// look like detections and are not.
			return Layout{}, fmt.Errorf("%w: output [B, %d, %d] has one row per cell of strides 8, 16 and 32 at %dx%d: "+
				"YOLOX's anchor-free layout, not YOLOv5's (three anchors a cell: %d rows), and dsbatch does not decode YOLOX yet "+
				"(--head v5 reads it as YOLOv5 all the same)", ErrBadModel, d1, d2, w, h, 3*cells)
		}
	}
	l := Layout{Head: head, D1: d1, D2: d2, Classes: head.Classes(d1, d2)}
	if l.Classes < 0 || (head == HeadE2E && d2 != 6) {
		return Layout{}, fmt.Errorf("%w: output [B, %d, %d] does not fit a %s head", ErrBadModel, d1, d2, head)
	}
	if names > 0 && l.Classes > 0 && names != l.Classes {
		return Layout{}, fmt.Errorf("%w: %d class names for a head with %d classes", ErrBadModel, names, l.Classes)
	}
	return l, nil
}

// anchorFreeCells is the number of grid cells of strides 8, 16 and 32 over
// an h×w input: the rows of an anchor-free head (YOLOX; YOLOv8 transposed).
func anchorFreeCells(h, w int) int {
	n := 0
	for _, s := range []int{8, 16, 32} {
		n += ((h + s - 1) / s) * ((w + s - 1) / s)
	}
	return n
}
