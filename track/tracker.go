package track

import "math"

// Box is an axis-aligned box in pixels.
type Box struct{ X1, Y1, X2, Y2 float32 }

// wellFormed reports whether b's coordinates are finite and in order.
func (b Box) wellFormed() bool {
	return b.X2 >= b.X1 && b.Y2 >= b.Y1 && !math.IsInf(float64(b.X1+b.Y1+b.X2+b.Y2), 0) && !math.IsInf(float64(b.X2-b.X1), 0) && !math.IsInf(float64(b.Y2-b.Y1), 0)
}

// Detection is one detected object of a frame.
type Detection struct {
	Box   Box
	Score float32
	Class int
}

// Config tunes a Tracker. DefaultConfig gives ByteTrack's settings.
type Config struct {
	High           float32 // detections scoring this or more take part in the first association
	Low            float32 // detections from Low to High take part in the second only
	New            float32 // an unmatched detection scoring this or more starts a track
	MatchIoU       float64 // first association: least IoU with a track's predicted box
	SecondIoU      float64 // second association (low-score detections)
	UnconfirmedIoU float64 // a new track's second detection
	// BufferSeconds is how long a lost track may be found again.
	BufferSeconds float64
	// FrameRate is the rate of the frames given to Update: the video's
	// frame rate divided by the sampling stride.
	FrameRate float64
	// ClassAgnostic lets a track take detections of any class.
	ClassAgnostic bool
}

// DefaultConfig returns ByteTrack's settings for frames at frameRate.
func DefaultConfig(frameRate float64) Config {
	return Config{High: 0.5, Low: 0.1, New: 0.6, MatchIoU: 0.2, SecondIoU: 0.5, UnconfirmedIoU: 0.3,
		BufferSeconds: 1, FrameRate: frameRate}
}

type state int

const (
	tentative state = iota
	tracked
	lost
)

type trk struct {
	id        int64
	kf        *kalman
	class     int
	state     state
	lastFrame int
}

// Tracker assigns track IDs to the detections of one video, frame by frame.
// It is deterministic: the same detections give the same IDs.
type Tracker struct {
	cfg     Config
	tracks  []*trk
	nextID  int64
	frame   int
	maxLost int
	scratch scratch
}

// New returns a tracker for one video.
func New(cfg Config) *Tracker {
	fr := cfg.FrameRate
	if fr <= 0 {
		fr = 30
	}
	return &Tracker{cfg: cfg, nextID: 1, maxLost: max(1, int(math.Round(cfg.BufferSeconds*fr)))}
}

func measure(b Box) [4]float64 {
	w, h := float64(b.X2-b.X1), float64(b.Y2-b.Y1)
	if h <= 0 {
		h = 1e-3
	}
	return [4]float64{float64(b.X1) + w/2, float64(b.Y1) + h/2, w / h, h}
}

func (t *trk) box() Box {
	cx, cy, a, h := t.kf.x[0], t.kf.x[1], t.kf.x[2], t.kf.x[3]
	w := a * h
	return Box{float32(cx - w/2), float32(cy - h/2), float32(cx + w/2), float32(cy + h/2)}
}

// iou of two boxes.
func iou(a, b Box) float64 {
	// Apart on an axis: no overlap, which the general case below would
	// find at more cost (the common case in a crowd). NaN coordinates fail
	// these tests and take the general case.
	if a.X2 <= b.X1 || b.X2 <= a.X1 || a.Y2 <= b.Y1 || b.Y2 <= a.Y1 {
		return 0
	}
	iw := math.Min(float64(a.X2), float64(b.X2)) - math.Max(float64(a.X1), float64(b.X1))
	ih := math.Min(float64(a.Y2), float64(b.Y2)) - math.Max(float64(a.Y1), float64(b.Y1))
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	u := float64((a.X2-a.X1)*(a.Y2-a.Y1)+(b.X2-b.X1)*(b.Y2-b.Y1)) - inter
	if u <= 0 {
		return 0
	}
	return inter / u
}

// match associates tracks with detections (indices into dets) by IoU and
// returns the matched pairs and what is left of each side. It is the
// optimal assignment on the full cost matrix (1 − IoU, pairs of another
// class or below minIoU excluded), solved on the pairs within the gate only
// (candidates, assignSparse), so that crowds and tracks lost by the
// hundred cost about the number of boxes.
func (t *Tracker) match(tracks []*trk, dets []Detection, idx []int, minIoU float64) (pairs [][2]int, restT []*trk, restD []int) {
	if len(tracks) == 0 || len(idx) == 0 {
		return nil, tracks, idx
	}
	tb, tc := make([]Box, len(tracks)), make([]int, len(tracks))
	for i, tr := range tracks {
		tb[i], tc[i] = tr.box(), tr.class
	}
	db, dc := make([]Box, len(idx)), make([]int, len(idx))
	for j, d := range idx {
		db[j], dc[j] = dets[d].Box, dets[d].Class
	}
	maxCost := 1 - minIoU
	usedT := make([]bool, len(tracks))
	usedD := make([]bool, len(idx))
	for _, p := range assignSparse(&t.scratch, len(tracks), len(idx), candidates(&t.scratch, tb, tc, db, dc, t.cfg.ClassAgnostic, maxCost)) {
		pairs = append(pairs, [2]int{p[0], idx[p[1]]})
		usedT[p[0]], usedD[p[1]] = true, true
	}
	for i, tr := range tracks {
		if !usedT[i] {
			restT = append(restT, tr)
		}
	}
	for j, d := range idx {
		if !usedD[j] {
			restD = append(restD, d)
		}
	}
	return pairs, restT, restD
}

// Update takes the detections of the next frame and returns each one's
// track ID, or -1 when it belongs to no confirmed track (a new object is
// confirmed by its second detection, as in ByteTrack).
func (t *Tracker) Update(dets []Detection) []int64 {
	t.frame++
	ids := make([]int64, len(dets))
	for i := range ids {
		ids[i] = -1
	}
	var confirmed, unconfirmed []*trk
	for _, tr := range t.tracks {
		tr.kf.predict()
		if tr.state == tentative {
			unconfirmed = append(unconfirmed, tr)
		} else {
			confirmed = append(confirmed, tr)
		}
	}
	var high, low []int
	for i, d := range dets {
		switch {
		case !d.Box.wellFormed():
			// Not a place: a model's overflow or inverted box, which no
			// track may take or start from.
		case d.Score >= t.cfg.High:
			high = append(high, i)
		case d.Score >= t.cfg.Low:
			low = append(low, i)
		}
	}
	take := func(tr *trk, d int) {
		tr.kf.update(measure(dets[d].Box))
		tr.lastFrame = t.frame
		if tr.state != tentative {
			tr.state = tracked
			ids[d] = tr.id
		}
	}
	// 1. Confirmed and lost tracks against high-score detections.
	pairs, restT, restHigh := t.match(confirmed, dets, high, t.cfg.MatchIoU)
	for _, p := range pairs {
		take(confirmed[p[0]], p[1])
	}
	// 2. Tracks still followed (not lost ones) against low-score detections.
	var following []*trk
	for _, tr := range restT {
		if tr.state == tracked {
			following = append(following, tr)
		}
	}
	pairs, rest2, _ := t.match(following, dets, low, t.cfg.SecondIoU)
	for _, p := range pairs {
		take(following[p[0]], p[1])
	}
	for _, tr := range rest2 {
		tr.state = lost
	}
	// 3. New tracks against the high-score detections left.
	pairs, restU, restHigh := t.match(unconfirmed, dets, restHigh, t.cfg.UnconfirmedIoU)
	for _, p := range pairs {
		tr := unconfirmed[p[0]]
		tr.state = tracked
		take(tr, p[1])
	}
	dead := map[*trk]bool{}
	for _, tr := range restU {
		dead[tr] = true
	}
	// 4. Unmatched confident detections start tracks; on the first frame
	// they are confirmed at once.
	for _, d := range restHigh {
		if dets[d].Score < t.cfg.New {
			continue
		}
		tr := &trk{id: t.nextID, kf: newKalman(measure(dets[d].Box)), class: dets[d].Class, lastFrame: t.frame}
		t.nextID++
		if t.frame == 1 {
			tr.state = tracked
			ids[d] = tr.id
		}
		t.tracks = append(t.tracks, tr)
	}
	// 5. Forget tracks lost for longer than the buffer.
	kept := t.tracks[:0]
	for _, tr := range t.tracks {
		if dead[tr] || (tr.state == lost && t.frame-tr.lastFrame > t.maxLost) {
			continue
		}
		kept = append(kept, tr)
	}
	t.tracks = kept
	return ids
}
