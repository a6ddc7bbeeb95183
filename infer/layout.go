package infer

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Head is the layout of a detector's output tensor.
type Head int

// Output layouts dsbatch decodes. Each is one entry of heads: adding a
// layout is a constant, an entry and its decoder, all in this file.
const (
	// HeadV5 is [B, N, 5+C]: cx, cy, w, h, objectness, C class scores
	// (YOLOv5 and v7 with three anchors a cell, YOLOX exported decoded).
	HeadV5 Head = iota + 1
	// HeadV8 is [B, 4+C, N]: cx, cy, w, h then C class scores, per anchor
	// (YOLOv8, v9, v11).
	HeadV8
	// HeadE2E is [B, K, 6]: x1, y1, x2, y2, score, class, already
	// deduplicated (YOLOv10, YOLO26 and other NMS-free exports).
	HeadE2E
	// HeadYOLOX is YOLOX's raw grid output [B, cells, 5+C]: per cell of
	// strides 8, 16 and 32 (row-major, finest first) dx, dy, log w, log h,
	// objectness and C class scores; cx = (dx + grid x) × stride and
	// w = exp(log w) × stride.
	HeadYOLOX
	// HeadDETR is [B, Q, 4+C]: per query a box (cx, cy, w, h normalised
	// to the input) and C class scores, probabilities or logits
	// (RT-DETR, RF-DETR, D-FINE, DEIM). The queries need no NMS.
	HeadDETR
	// HeadOne2One is [B, N, 4+C]: per anchor x1, y1, x2, y2 then C class
	// scores, of an NMS-free head (YOLOv10, YOLO26) whose exported top-k
	// was cut off (see Model.Cut): dsbatch keeps the max-det anchors of
	// best class score, then the max-det best (anchor, class) pairs among
	// them, as Ultralytics' export does, ties to the lower index.
	HeadOne2One
	// HeadPose is [B, 4+C+K×D, N]: YOLOv8's layout with a pose's K points
	// of D values (x, y and, for D = 3, visibility) after the class scores
	// (Ultralytics' pose models; K and D from their kpt_shape metadata).
	HeadPose
	// HeadOBB is [B, 4+C+1, N]: YOLOv8's layout of oriented boxes, the
	// angle in radians after the class scores (Ultralytics' OBB models,
	// told by their task metadata); NMS by the boxes' exact rotated IoU.
	HeadOBB
	// HeadNMS is [B, N, 4+C]: per anchor x1, y1, x2, y2 then C class
	// scores, of an nms=True export whose NMS was cut off (see Model.Cut);
	// dsbatch runs its NMS as for HeadV8.
	HeadNMS
)

// headFormat is what dsbatch knows about one output layout.
type headFormat struct {
	name    string
	aliases []string
	// classes is the number of classes a head of this layout scores in
	// an output [B, d1, d2]: 0 when the class is a value, negative when
	// the shape does not fit the layout.
	classes func(d1, d2 int) int
	decode  func(l Layout, out []float32, o PostOptions, dst []Detection) []Detection
}

var heads = [...]headFormat{
	HeadV5: {name: "v5", aliases: []string{"yolov5", "v7", "yolov7"},
		classes: func(d1, d2 int) int { return d2 - 5 }, decode: decodeV5},
	HeadV8: {name: "v8", aliases: []string{"v9", "v11", "yolov8", "yolo11"},
		classes: func(d1, d2 int) int { return d1 - 4 }, decode: decodeV8},
	HeadE2E: {name: "e2e", aliases: []string{"v10", "yolov10", "yolo26", "nms-free"},
		classes: e2eClasses, decode: decodeE2E},
	HeadYOLOX: {name: "yolox", classes: func(d1, d2 int) int { return d2 - 5 }, decode: decodeYOLOX},
	HeadDETR: {name: "detr", aliases: []string{"rt-detr", "rtdetr", "rf-detr", "d-fine", "deim"},
		classes: func(d1, d2 int) int { return d2 - 4 }, decode: decodeDETR},
	HeadOBB:     {name: "obb", classes: func(d1, d2 int) int { return d1 - 5 }, decode: decodeOBB},
	HeadPose:    {name: "pose", classes: func(d1, d2 int) int { return d1 - 4 }, decode: decodePose},
	HeadOne2One: {name: "one2one", aliases: []string{"e2e-topk"}, classes: func(d1, d2 int) int { return d2 - 4 }, decode: decodeOne2One},
	HeadNMS:     {name: "nms", aliases: []string{"xyxy"}, classes: func(d1, d2 int) int { return d2 - 4 }, decode: decodeNMS},
}

// e2eClasses is 0 for an end-to-end output of six columns: the class is a
// value.
func e2eClasses(d1, d2 int) int {
	if d2 >= 6 {
		return 0 // six, or six and a pose's keypoints (checked by ProbeLayout)
	}
	return -1
}

func (h Head) format() (headFormat, bool) {
	if h <= 0 || int(h) >= len(heads) {
		return headFormat{}, false
	}
	return heads[h], true
}

func (h Head) String() string {
	if f, ok := h.format(); ok {
		return f.name
	}
	return fmt.Sprintf("Head(%d)", int(h))
}

func headNames() string {
	var s []string
	for _, f := range heads[1:] {
		s = append(s, f.name)
	}
	return strings.Join(s, ", ")
}

// ParseHead parses a layout's name or alias ("v5", "v8", "e2e", "yolox",
// "detr", ...) or "auto" (0).
func ParseHead(s string) (Head, error) {
	s = strings.ToLower(s)
	if s == "" || s == "auto" {
		return 0, nil
	}
	for h, f := range heads {
		if f.name != "" && (s == f.name || slices.Contains(f.aliases, s)) {
			return Head(h), nil
		}
	}
	return 0, fmt.Errorf("--head %q: want auto, %s", s, headNames())
}

// maxQueries bounds the rows of heads that list detections or queries
// (end-to-end and DETR-style) rather than anchors.
const maxQueries = 1000

// detectHead infers the layout from the output shape [B, d1, d2], the
// number of classes (0 when unknown) and the number of grid cells.
func detectHead(d1, d2, classes, cells int) (Head, error) {
	switch {
	case d1 == cells && d2 > 5 && (classes == 0 || d2 == 5+classes):
		// One row per grid cell: YOLOX (raw, or decoded: ProbeLayout
		// tells them apart by the values).
		return HeadYOLOX, nil
	case classes > 0 && d1 == 4+classes && d2 != 5+classes:
		return HeadV8, nil
	case classes > 0 && d2 == 5+classes && d1 != 4+classes:
		return HeadV5, nil
	case d2 == 6 && classes != 1 && d1 < maxQueries:
		return HeadE2E, nil
	case classes > 0 && d2 == 4+classes && d1 <= maxQueries:
		return HeadDETR, nil
	case classes == 0 && d1 < d2 && d1 > 4:
		return HeadV8, nil
	case classes == 0 && d2 > 4 && d2 < d1 && d1 <= maxQueries && d1 != 3*cells:
		return HeadDETR, nil
	case classes == 0 && d2 < d1 && d2 > 5:
		return HeadV5, nil
	}
	return 0, fmt.Errorf("cannot tell the head layout of output [B, %d, %d] with %d classes: give --head (%s)", d1, d2, classes, headNames())
}

// Scores says what a DETR-style head's class columns hold.
type Scores int

// Kinds of class scores.
const (
	// ScoresProb are probabilities, used as they are.
	ScoresProb Scores = iota
	// ScoresSigmoid are logits of independent classes (RT-DETR, RF-DETR).
	ScoresSigmoid
	// ScoresSoftmax are logits of one distribution whose last class is
	// "no object" (the original DETR).
	ScoresSoftmax
)

// Layout is what a model's output looks like, learnt from a first run.
type Layout struct {
	Head    Head
	D1, D2  int // output [B, D1, D2]
	Classes int // classes the head scores (0 for end-to-end heads)
	// InputH and InputW are the model's input size, which grid and
	// normalised layouts decode against.
	InputH, InputW int
	Scores         Scores // DETR-style heads only
	// Strides are the grids' strides of YOLOX-style heads, finest first
	// (nil: 8, 16 and 32).
	Strides []int
	// Keypoints and KeypointDims are a pose head's points per detection
	// and values per point.
	Keypoints, KeypointDims int
	// Masks is a segmentation model's mask coefficients per detection
	// (after the class scores, or after the class of an end-to-end head),
	// and MaskH×MaskW its prototypes' grid, whose values follow the
	// D1×D2 of each image's output (see mask.go); 0 for other models.
	Masks, MaskH, MaskW int
}

func (l Layout) strides() []int {
	if len(l.Strides) == 0 {
		return defaultStrides
	}
	return l.Strides
}

// String names the layout as --head spells it, with the kind of scores
// where it has a choice ("detr/sigmoid") and strides that are not the
// default.
func (l Layout) String() string {
	s := l.Head.String()
	switch {
	case l.Head == HeadDETR && l.Scores == ScoresSigmoid:
		s += "/sigmoid"
	case l.Head == HeadDETR && l.Scores == ScoresSoftmax:
		s += "/softmax"
	}
	if l.Keypoints > 0 {
		s += fmt.Sprintf("/%dx%d", l.Keypoints, l.KeypointDims)
	}
	if l.Masks > 0 {
		s += fmt.Sprintf("/seg%d", l.Masks)
	}
	if l.Head == HeadYOLOX && len(l.Strides) > 0 && !slices.Equal(l.Strides, defaultStrides) {
		s += fmt.Sprintf("/strides=%v", l.Strides)
	}
	return s
}

// Decode turns one image's raw output (D1×D2 values) into detections in
// model-input pixels, appending to dst. Detections with a score or a
// coordinate that is not a finite number (a model's overflow) are dropped.
func (l Layout) Decode(out []float32, o PostOptions, dst []Detection) []Detection {
	f, ok := l.Head.format()
	if !ok {
		return dst
	}
	n := len(dst)
	dst = f.decode(l, out, o, dst)
	if l.Masks > 0 {
		l.attachMasks(out, dst[n:])
	}
	return append(dst[:n], dropNonFinite(dst[n:])...)
}

// Fits reports whether an engine's output of shape [n, a, b] holds this
// layout's values: [n, D1, D2], or [n, 1, Values()] with masks joined.
func (l Layout) Fits(shape []int64) bool {
	if len(shape) != 3 {
		return false
	}
	if l.Masks > 0 {
		return shape[1] == 1 && int(shape[2]) == l.Values()
	}
	return int(shape[1]) == l.D1 && int(shape[2]) == l.D2
}

// Values is the number of values of one image's output: D1×D2, and a
// segmentation model's prototypes.
func (l Layout) Values() int { return l.D1*l.D2 + l.protoValues() }

// NonFiniteError reports a network output holding NaN or ±Inf: a network
// that overflowed, whose detections would silently be missing. Engines
// return it instead of an image's detections.
type NonFiniteError struct {
	Image   int    // the image of the batch
	Anchors int    // the anchors (the GPU engine: candidates, or kept detections whose keypoints or oriented box are not finite) or values (on the host) not finite
	Engine  string // the engine's name
}

func (e *NonFiniteError) Error() string {
	what := "values"
	if e.Engine == "gpu" {
		what = "anchors"
	}
	msg := fmt.Sprintf("%s engine: image %d of the batch: %d %s of the network's output are not finite (NaN or ±Inf)", e.Engine, e.Image, e.Anchors, what)
	if e.Engine == "gpu" {
		return msg + ": the network overflows the GPU engine's fp16 (values beyond ±65504); run this model with --engine onnxruntime"
	}
	return msg + ": the model itself yields them on this input"
}

// checkFinite returns a NonFiniteError for the first of the n images held
// one after the other in out whose output holds NaN or ±Inf.
func (l Layout) checkFinite(out []float32, n int, engine string) error {
	per := l.Values()
	for i := range n {
		bad := 0
		for _, v := range out[i*per : (i+1)*per] {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				bad++
			}
		}
		if bad > 0 {
			return &NonFiniteError{Image: i, Anchors: bad, Engine: engine}
		}
	}
	return nil
}

// nonFiniteParts counts the detections of ds whose keypoints or oriented
// box hold a NaN or an infinity: what the device's selection, which
// counts boxes and scores, does not see (the host checks the whole
// output before decoding).
func nonFiniteParts(ds []Detection) int {
	bad := func(vs ...float32) bool {
		for _, v := range vs {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return true
			}
		}
		return false
	}
	n := 0
	for _, d := range ds {
		hit := false
		for _, k := range d.Keypoints {
			hit = hit || bad(k.X, k.Y, k.Score)
		}
		if r := d.Rotated; r != nil {
			hit = hit || bad(r.CX, r.CY, r.W, r.H, r.Angle)
		}
		if hit {
			n++
		}
	}
	return n
}

// dropNonFinite removes, in place, the detections of ds with a score or a
// coordinate that is NaN or infinite.
func dropNonFinite(ds []Detection) []Detection {
	out := ds[:0]
	for _, d := range ds {
		if v := float64(d.Score + d.X1 + d.Y1 + d.X2 + d.Y2); !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, d)
		}
	}
	return out
}

// DecodeBatch decodes the raw outputs of n images held one after the
// other in out, in parallel: post-processing on the host (NMS of
// thousands of candidates) costs milliseconds an image.
func (l Layout) DecodeBatch(out []float32, n int, o PostOptions) [][]Detection {
	per := l.Values()
	res := make([][]Detection, n)
	parallel(n, func(i int) { res[i] = l.Decode(out[i*per:(i+1)*per], o, nil) })
	return res
}

// parallel calls f(0) to f(n-1) on up to GOMAXPROCS goroutines and waits:
// a batch's images, post-processed side by side.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < min(n, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// decodeColumns decodes the layouts of YOLOv8's family, [B, 4+C+E, N]:
// per anchor (a column) cx, cy, w, h, C class scores, then E values that
// more, when given, reads into the detection (a pose's points, an
// oriented box's angle); then NMS.
func decodeColumns(l Layout, out []float32, o PostOptions, dst []Detection, nc int, more func(a int, d *Detection)) []Detection {
	// Candidates stay (score, class, anchor) until the top-k is known:
	// only those become detections (an oriented box's corners, a pose's
	// points), not every anchor over the threshold.
	type candidate struct {
		score         float32
		class, anchor int32
	}
	var cand []candidate
	n := l.D2
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
		cand = append(cand, candidate{best, int32(bc), int32(a)})
	}
	// Best first, equal scores in anchor order: a total order (no score is
	// NaN: best only ever takes a greater value), so an unstable sort
	// gives what a stable one would.
	order := func(x, y candidate) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return cmp.Compare(x.anchor, y.anchor)
	}
	cand = firstK(cand, o.topK(), order)
	slices.SortFunc(cand, order)
	s := make([]Detection, len(cand))
	for k, c := range cand {
		a := int(c.anchor)
		cx, cy, w, hh := out[a], out[n+a], out[2*n+a], out[3*n+a]
		s[k] = Detection{Class: int(c.class), Score: c.score, X1: cx - w/2, Y1: cy - hh/2, X2: cx + w/2, Y2: cy + hh/2}
		if more != nil {
			more(a, &s[k])
		}
	}
	return append(dst, suppress(s, o.IoU, o.maxDet(), o.ClassAgnostic)...)
}

// firstK moves the k first of s by the total order cmp to its front, in
// no particular order, and returns them (all of s when it has no more):
// quickselect, so that only those k need sorting.
func firstK[T any](s []T, k int, cmp func(a, b T) int) []T {
	if k >= len(s) {
		return s
	}
	lo, hi := 0, len(s)-1
	for lo < hi {
		// Median of three as the pivot, moved to hi.
		mid := lo + (hi-lo)/2
		if cmp(s[mid], s[lo]) < 0 {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if cmp(s[hi], s[lo]) < 0 {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if cmp(s[mid], s[hi]) < 0 {
			s[mid], s[hi] = s[hi], s[mid]
		}
		p := lo
		for i := lo; i < hi; i++ {
			if cmp(s[i], s[hi]) < 0 {
				s[i], s[p] = s[p], s[i]
				p++
			}
		}
		s[p], s[hi] = s[hi], s[p]
		switch {
		case p == k:
			return s[:k]
		case p < k:
			lo = p + 1
		default:
			hi = p - 1
		}
	}
	return s[:k]
}

func decodeV8(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	if l.Masks > 0 {
		return decodeColumns(l, out, o, dst, l.Classes, func(a int, d *Detection) { d.src = int32(a + 1) })
	}
	return decodeColumns(l, out, o, dst, l.D1-4, nil)
}

func decodePose(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	n, nc := l.D2, l.Classes
	return decodeColumns(l, out, o, dst, nc, func(a int, d *Detection) {
		d.Keypoints = make([]Keypoint, l.Keypoints)
		for k := range d.Keypoints {
			r := 4 + nc + k*l.KeypointDims
			d.Keypoints[k] = Keypoint{X: out[r*n+a], Y: out[(r+1)*n+a], Score: 1}
			if l.KeypointDims == 3 {
				d.Keypoints[k].Score = out[(r+2)*n+a]
			}
		}
	})
}

func decodeOBB(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	n, nc := l.D2, l.D1-5
	return decodeColumns(l, out, o, dst, nc, func(a int, d *Detection) {
		d.Rotated = newRotated(out[a], out[n+a], out[2*n+a], out[3*n+a], out[(4+nc)*n+a])
		d.X1, d.Y1, d.X2, d.Y2 = d.Rotated.bounds()
	})
}

func decodeNMS(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	var cand []Detection
	for a := 0; a < l.D1; a++ {
		row := out[a*l.D2 : (a+1)*l.D2]
		best, bc := float32(-1), -1
		for c, s := range row[4:] {
			if s > best {
				best, bc = s, c
			}
		}
		if best < o.Conf {
			continue
		}
		cand = append(cand, Detection{Class: bc, Score: best, X1: row[0], Y1: row[1], X2: row[2], Y2: row[3]})
	}
	return append(dst, nms(cand, o.IoU, o.maxDet(), o.topK(), o.ClassAgnostic)...)
}

// decodeOne2One selects as an end-to-end export's graph does: the k
// anchors of best class score (k = max-det), then the k best of their
// (anchor, class) pairs, each index ranked before a higher one of the same
// score. Candidates under conf are dropped first, which selects the same
// boxes: they rank below every box kept.
func decodeOne2One(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	type cand struct {
		score float32
		i     int
	}
	k, nc := o.maxDet(), l.oneToOneClasses()
	var anchors []cand
	for a := 0; a < l.D1; a++ {
		row := out[a*l.D2+4 : a*l.D2+4+nc]
		best := row[0]
		for _, s := range row[1:] {
			best = max(best, s)
		}
		if best >= o.Conf {
			anchors = append(anchors, cand{best, a})
		}
	}
	sort.SliceStable(anchors, func(i, j int) bool { return anchors[i].score > anchors[j].score })
	anchors = anchors[:min(k, len(anchors))]
	var pairs []cand
	for r, a := range anchors {
		for c, s := range out[a.i*l.D2+4 : a.i*l.D2+4+nc] {
			if s >= o.Conf {
				pairs = append(pairs, cand{s, r*nc + c})
			}
		}
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].score > pairs[j].score })
	for _, p := range pairs[:min(k, len(pairs))] {
		row := out[anchors[p.i/nc].i*l.D2 : (anchors[p.i/nc].i+1)*l.D2]
		dst = append(dst, Detection{Class: p.i % nc, Score: p.score, X1: row[0], Y1: row[1], X2: row[2], Y2: row[3],
			Keypoints: l.keypointsOf(row[4+nc:]), src: int32(anchors[p.i/nc].i + 1)})
	}
	return dst
}

// oneToOneClasses is the class columns of a one2one row: all after the
// box, but a pose's keypoints.
func (l Layout) oneToOneClasses() int {
	if l.Classes > 0 {
		return l.Classes
	}
	return l.D2 - 4
}

// keypointsOf reads a pose's points from v (x, y[, visibility] each), nil
// for layouts without keypoints.
func (l Layout) keypointsOf(v []float32) []Keypoint {
	if l.Keypoints == 0 || len(v) < l.Keypoints*l.KeypointDims {
		return nil
	}
	kp := make([]Keypoint, l.Keypoints)
	for i := range kp {
		q := v[i*l.KeypointDims:]
		kp[i] = Keypoint{X: q[0], Y: q[1], Score: 1}
		if l.KeypointDims == 3 {
			kp[i].Score = q[2]
		}
	}
	return kp
}

func decodeV5(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	var cand []Detection
	for a := 0; a < l.D1; a++ {
		if d, ok := objectness(out[a*l.D2:(a+1)*l.D2], o.Conf); ok {
			cx, cy, w, hh := d.X1, d.Y1, d.X2, d.Y2
			d.X1, d.Y1, d.X2, d.Y2 = cx-w/2, cy-hh/2, cx+w/2, cy+hh/2
			cand = append(cand, d)
		}
	}
	return append(dst, nms(cand, o.IoU, o.maxDet(), o.topK(), o.ClassAgnostic)...)
}

// objectness scores a row of objectness and class scores after its four
// box values (returned in X1..Y2 as they are): objectness × the best
// class's score, when both pass conf.
func objectness(row []float32, conf float32) (Detection, bool) {
	obj := row[4]
	if obj < conf {
		return Detection{}, false
	}
	best, bc := float32(-1), -1
	for c, s := range row[5:] {
		if s > best {
			best, bc = s, c
		}
	}
	score := obj * best
	if score < conf {
		return Detection{}, false
	}
	return Detection{Class: bc, Score: score, X1: row[0], Y1: row[1], X2: row[2], Y2: row[3]}, true
}

func decodeE2E(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	maxDet := o.maxDet()
	for k := 0; k < l.D1; k++ {
		row := out[k*l.D2 : (k+1)*l.D2]
		if row[4] < o.Conf {
			continue
		}
		dst = append(dst, Detection{Class: int(row[5]), Score: row[4], X1: row[0], Y1: row[1], X2: row[2], Y2: row[3],
			Keypoints: l.keypointsOf(row[6:]), src: int32(k + 1)})
		if k+1 >= maxDet {
			break
		}
	}
	return dst
}

// defaultStrides are the strides of YOLOX's three grids, finest first.
var defaultStrides = []int{8, 16, 32}

// anchorFreeCells is the number of grid cells of the strides (nil: 8, 16
// and 32) over an h×w input: the rows of an anchor-free head (YOLOX;
// YOLOv8 transposed).
func anchorFreeCells(h, w int, strides []int) int {
	if len(strides) == 0 {
		strides = defaultStrides
	}
	n := 0
	for _, s := range strides {
		n += ((h + s - 1) / s) * ((w + s - 1) / s)
	}
	return n
}

func decodeYOLOX(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	var cand []Detection
	a := 0
	for _, s := range l.strides() {
		gh, gw, fs := (l.InputH+s-1)/s, (l.InputW+s-1)/s, float32(s)
		for gy := 0; gy < gh; gy++ {
			for gx := 0; gx < gw; gx++ {
				row := out[a*l.D2 : (a+1)*l.D2]
				a++
				d, ok := objectness(row, o.Conf)
				if !ok {
					continue
				}
				cx, cy := (row[0]+float32(gx))*fs, (row[1]+float32(gy))*fs
				w := float32(math.Exp(float64(row[2]))) * fs
				h := float32(math.Exp(float64(row[3]))) * fs
				d.X1, d.Y1, d.X2, d.Y2 = cx-w/2, cy-h/2, cx+w/2, cy+h/2
				cand = append(cand, d)
			}
		}
	}
	return append(dst, nms(cand, o.IoU, o.maxDet(), o.topK(), o.ClassAgnostic)...)
}

func decodeDETR(l Layout, out []float32, o PostOptions, dst []Detection) []Detection {
	var cand []Detection
	fw, fh := float32(l.InputW), float32(l.InputH)
	for q := 0; q < l.D1; q++ {
		row := out[q*l.D2 : (q+1)*l.D2]
		best, bc := l.bestClass(row[4:])
		if best < o.Conf {
			continue
		}
		cx, cy, w, h := row[0]*fw, row[1]*fh, row[2]*fw, row[3]*fh
		cand = append(cand, Detection{Class: bc, Score: best, X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2})
	}
	// Queries are distinct objects: no NMS, the best maxDet, ties in
	// query order.
	sort.SliceStable(cand, func(i, j int) bool { return cand[i].Score > cand[j].Score })
	return append(dst, cand[:min(len(cand), o.maxDet())]...)
}

// bestClass returns a DETR-style row's best class among l.Classes and its
// probability.
func (l Layout) bestClass(s []float32) (float32, int) {
	best, bc := float32(math.Inf(-1)), -1
	for c, v := range s[:l.Classes] {
		if v > best {
			best, bc = v, c
		}
	}
	switch l.Scores {
	case ScoresSigmoid:
		best = float32(1 / (1 + math.Exp(-float64(best))))
	case ScoresSoftmax:
		top := float64(best)
		for _, v := range s {
			top = math.Max(top, float64(v))
		}
		sum := 0.0
		for _, v := range s {
			sum += math.Exp(float64(v) - top)
		}
		best = float32(math.Exp(float64(best)-top) / sum)
	}
	return best, bc
}

// NewLayout describes an output [B, d1, d2] of a model with h×w inputs
// read as head, with scores of the kind given (DETR-style heads only).
func NewLayout(head Head, scores Scores, d1, d2, h, w int) (Layout, error) {
	return newLayout(head, scores, d1, d2, h, w, nil)
}

func newLayout(head Head, scores Scores, d1, d2, h, w int, strides []int) (Layout, error) {
	f, ok := head.format()
	if !ok {
		return Layout{}, fmt.Errorf("head %v unknown", head)
	}
	for _, s := range strides {
		if s < 1 {
			return Layout{}, fmt.Errorf("strides %v: want positive strides", strides)
		}
	}
	l := Layout{Head: head, D1: d1, D2: d2, InputH: h, InputW: w, Scores: scores, Classes: f.classes(d1, d2), Strides: strides}
	if head != HeadDETR {
		l.Scores = ScoresProb
	}
	if l.Scores == ScoresSoftmax {
		l.Classes-- // the last is "no object"
	}
	if l.Classes < 0 || (head == HeadYOLOX && d1 != anchorFreeCells(h, w, strides)) {
		return Layout{}, fmt.Errorf("%w: output [B, %d, %d] does not fit a %s head at %dx%d with strides %v", ErrBadModel, d1, d2, head, w, h, l.strides())
	}
	return l, nil
}

// ProbeOptions say what is known of a model before ProbeLayout runs it.
type ProbeOptions struct {
	H, W  int // input size
	Names int // class names known (0: none)
	// KeypointShape is a pose model's points and values per point
	// (Model.KeypointShape; zero for other models).
	KeypointShape [2]int
	// Task is the model's task as its metadata says ("obb", "detect"…).
	Task    string
	Head    Head       // the layout, when the user gave it (0: detect)
	Input   Preprocess // the input convention: the blank image is its pad
	Strides []int      // grid strides of YOLOX-style heads (nil: 8, 16, 32)
	// Masks is a segmentation model's prototype output (Model.Masks),
	// joined after its detections.
	Masks MaskOutput
}

// ProbeLayout runs one blank image (the pad grey of the input convention)
// through e and works out the output layout, from o.Head when given, else
// from the output's shape and values and the number of class names.
func ProbeLayout(ctx context.Context, e Engine, o ProbeOptions) (Layout, error) {
	h, w, names, head := o.H, o.W, o.Names, o.Head
	in := make([]float32, 3*h*w)
	pad := o.Input.PadValues()
	for c := 0; c < 3; c++ {
		for i := c * h * w; i < (c+1)*h*w; i++ {
			in[i] = pad[c]
		}
	}
	out, shape, err := e.Infer(ctx, in, 1)
	if err != nil {
		return Layout{}, err
	}
	if len(shape) != 3 || shape[0] != 1 {
		return Layout{}, fmt.Errorf("%w: output shape %v, want [batch, a, b]", ErrBadModel, shape)
	}
	d1, d2 := int(shape[1]), int(shape[2])
	if o.Masks.Name != "" {
		return probeMasks(d1, d2, o)
	}
	auto := head == 0
	kp := o.KeypointShape[0] * o.KeypointShape[1]
	switch {
	case auto && kp > 0 && d2 == 6+kp && d1 < maxQueries:
		head = HeadE2E // YOLO26's end-to-end pose: box, score, class, points
	case auto && kp > 0 && d1 > 4+kp && (names == 0 || d1 == 4+names+kp):
		head = HeadPose
	case auto && o.Task == "obb" && d1 > 5 && (names == 0 || d1 == 5+names):
		head = HeadOBB
	case auto:
		if head, err = detectHead(d1, d2, names, anchorFreeCells(h, w, o.Strides)); err != nil {
			return Layout{}, err
		}
	}
	if auto && head == HeadYOLOX && yoloxDecoded(out, d2, h, w, o.Strides) {
		// YOLOX exported with its decoding in the graph writes boxes in
		// pixels: YOLOv5's layout, one row per cell.
		head = HeadV5
	}
	scores := ScoresProb
	if head == HeadDETR {
		scores = detrScores(out, d1, d2, names)
	}
	l, err := newLayout(head, scores, d1, d2, h, w, o.Strides)
	if err != nil {
		return Layout{}, err
	}
	switch {
	case head == HeadE2E && (kp > 0 && d2 != 6+kp || kp == 0 && d2 != 6):
		return Layout{}, fmt.Errorf("%w: output [B, %d, %d] does not fit an end-to-end head (6 columns, and %d of keypoints)", ErrBadModel, d1, d2, kp)
	case head == HeadE2E && kp > 0:
		l.Keypoints, l.KeypointDims = o.KeypointShape[0], o.KeypointShape[1]
	case head == HeadOne2One && kp > 0 && d2 > 4+kp:
		l.Keypoints, l.KeypointDims, l.Classes = o.KeypointShape[0], o.KeypointShape[1], d2-4-kp
	}
	if head == HeadPose {
		if kp == 0 {
			return Layout{}, fmt.Errorf("%w: a pose head needs the points per detection: the model has no kpt_shape metadata", ErrBadModel)
		}
		l.Keypoints, l.KeypointDims, l.Classes = o.KeypointShape[0], o.KeypointShape[1], d1-4-kp
		if l.Classes < 1 {
			return Layout{}, fmt.Errorf("%w: output [B, %d, %d] has no room for classes beside %d keypoints of %d values", ErrBadModel, d1, d2, o.KeypointShape[0], o.KeypointShape[1])
		}
	}
	if names > 0 && l.Classes > 0 && names != l.Classes {
		return Layout{}, fmt.Errorf("%w: %d class names for a %s head with %d classes", ErrBadModel, names, l, l.Classes)
	}
	return l, nil
}

// probeMasks works out the layout of a segmentation model's output
// [1, 1, d2], detections and prototypes joined (see maskGeometry): YOLOv8's
// layout with the mask coefficients after the class scores, an
// end-to-end head's [K, 6+M], or a one2one head's [N, 4+C+M].
func probeMasks(d1, d2 int, o ProbeOptions) (Layout, error) {
	if d1 != 1 {
		return Layout{}, fmt.Errorf("%w: segmentation output [1, %d, %d], want detections and prototypes joined in [1, 1, n]", ErrBadModel, d1, d2)
	}
	head := o.Head
	d1, d2, m, mh, mw, err := maskGeometry(d2, o.Masks, head, o.H, o.W)
	if err != nil {
		return Layout{}, err
	}
	switch {
	case head != 0:
	case d2 == 6+m && d1 < maxQueries:
		head = HeadE2E
	case d1 > 4+m && (o.Names == 0 || d1 == 4+o.Names+m):
		head = HeadV8
	default:
		return Layout{}, fmt.Errorf("%w: cannot tell the layout of segmentation output [B, %d, %d] with %d mask coefficients and %d class names", ErrBadModel, d1, d2, m, o.Names)
	}
	l, err := newLayout(head, ScoresProb, d1, d2, o.H, o.W, nil)
	if err != nil {
		return Layout{}, err
	}
	l.Masks, l.MaskH, l.MaskW = m, mh, mw
	switch head {
	case HeadV8:
		l.Classes = d1 - 4 - m
	case HeadOne2One:
		l.Classes = d2 - 4 - m
	case HeadE2E:
		if d2 != 6+m {
			return Layout{}, fmt.Errorf("%w: end-to-end segmentation output [B, %d, %d], want 6 + %d columns", ErrBadModel, d1, d2, m)
		}
	default:
		return Layout{}, fmt.Errorf("%w: a %s head has no mask coefficients dsbatch reads: segmentation needs a v8, e2e or one2one head", ErrBadModel, head)
	}
	if l.Classes < 0 || (head != HeadE2E && l.Classes < 1) {
		return Layout{}, fmt.Errorf("%w: output [B, %d, %d] has no room for classes beside %d mask coefficients", ErrBadModel, d1, d2, m)
	}
	if o.Names > 0 && l.Classes > 0 && o.Names != l.Classes {
		return Layout{}, fmt.Errorf("%w: %d class names for a %s head with %d classes", ErrBadModel, o.Names, l, l.Classes)
	}
	return l, nil
}

// yoloxDecoded reports whether a YOLOX output of one row per grid cell
// holds boxes in pixels (decoded in the graph) rather than grid offsets:
// most rows' cx then lie within two strides of their cell's centre.
func yoloxDecoded(out []float32, d2, h, w int, strides []int) bool {
	near, a := 0, 0
	if len(strides) == 0 {
		strides = defaultStrides
	}
	for _, s := range strides {
		gh, gw := (h+s-1)/s, (w+s-1)/s
		for gy := 0; gy < gh; gy++ {
			for gx := 0; gx < gw; gx++ {
				cx, cy := float64(out[a*d2]), float64(out[a*d2+1])
				if math.Abs(cx-(float64(gx)+0.5)*float64(s)) <= 2*float64(s) && math.Abs(cy-(float64(gy)+0.5)*float64(s)) <= 2*float64(s) {
					near++
				}
				a++
			}
		}
	}
	return near*2 > a
}

// detrScores tells what a DETR-style output's class columns hold: values
// outside [0, 1] are logits, of a softmax when there is one column more
// than class names (the "no object" class), of sigmoids otherwise.
func detrScores(out []float32, d1, d2, names int) Scores {
	if names > 0 && d2-4 == names+1 {
		return ScoresSoftmax
	}
	for q := 0; q < d1; q++ {
		for _, v := range out[q*d2+4 : (q+1)*d2] {
			if v < 0 || v > 1 {
				return ScoresSigmoid
			}
		}
	}
	return ScoresProb
}

// BoxCheck watches the first detections of a run for the signs of a
// misread layout (boxes of under a pixel, of absurd size, or wholly
// outside the input), so that a run stops with an error instead of
// writing wrong boxes that look like results.
type BoxCheck struct {
	Layout Layout
	// Off skips the check (random-weight models in benchmarks, whose
	// boxes are as arbitrary as a misread layout's).
	Off     bool
	n, bad  int
	example Detection
	done    bool
}

// boxCheckSample is how many boxes BoxCheck judges a layout on.
const boxCheckSample = 32

// Add looks at one image's detections in model-input pixels. It returns
// an error, once, when most of the first boxes are implausible.
func (c *BoxCheck) Add(dets []Detection) error {
	if c.done || c.Off {
		return nil
	}
	W, H := float32(c.Layout.InputW), float32(c.Layout.InputH)
	for _, d := range dets {
		c.n++
		w, h := d.X2-d.X1, d.Y2-d.Y1
		finite := !math.IsNaN(float64(w+h+d.X1+d.Y1)) && !math.IsInf(float64(w+h+d.X1+d.Y1), 0)
		if !finite || !(w >= 1) || !(h >= 1) || w > 4*W || h > 4*H || d.X2 <= 0 || d.Y2 <= 0 || d.X1 >= W || d.Y1 >= H {
			c.bad++
			c.example = d
		}
	}
	if c.n < boxCheckSample {
		return nil
	}
	return c.verdict()
}

// Finish judges on the boxes seen when fewer than the sample came (a few
// frames looked at, as dsbatch check does), at least eight of them.
func (c *BoxCheck) Finish() error {
	if c.done || c.Off || c.n < 8 {
		return nil
	}
	return c.verdict()
}

func (c *BoxCheck) verdict() error {
	c.done = true
	if c.bad*2 <= c.n {
		return nil
	}
	l, d := c.Layout, c.example
	return fmt.Errorf("%w: %d of the first %d boxes are implausible for a %dx%d input (for example %.3g,%.3g to %.3g,%.3g): "+
		"the output [B, %d, %d] was read as a %s head, and that looks wrong: give --head (%s) or check the input convention (--input); "+
		"--no-box-check runs it all the same (a model of random weights)",
		ErrBadModel, c.bad, c.n, l.InputW, l.InputH, d.X1, d.Y1, d.X2, d.Y2, l.D1, l.D2, l, headNames())
}

// cocoKeypoints are the names of COCO's 17 body keypoints, in the order
// of pose models trained on COCO (Ultralytics' among them).
var cocoKeypoints = []string{"nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
	"left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"}

// KeypointNames names the points of a pose layout: COCO's for 17 points,
// else none (the tables then say kp0, kp1, ...).
func (l Layout) KeypointNames() []string {
	if l.Keypoints == len(cocoKeypoints) {
		return slices.Clone(cocoKeypoints)
	}
	return nil
}
