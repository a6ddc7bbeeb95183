package track

import "math"

// Summary describes one track of a video.
type Summary struct {
	ID                  int64
	Class               int
	FirstFrame          int64
	LastFrame           int64
	FirstPTS, LastPTS   float64
	Detections          int64
	MeanScore, MaxScore float32
	First, Last         Box
	PathLength          float64 // pixels travelled by the box centre
}

// MeanSpeed is the path length over the time between the first and last
// detections, in pixels per second (0 for a single instant).
func (s *Summary) MeanSpeed() float64 {
	if d := s.LastPTS - s.FirstPTS; d > 0 {
		return s.PathLength / d
	}
	return 0
}

// Summaries accumulates the detections of each track of one video.
type Summaries struct {
	byID  map[int64]*Summary
	order []int64
	sum   map[int64]float64
}

// Add records a tracked detection; frames must come in order.
func (s *Summaries) Add(id int64, class int, frame int64, pts float64, b Box, score float32) {
	if s.byID == nil {
		s.byID, s.sum = map[int64]*Summary{}, map[int64]float64{}
	}
	t := s.byID[id]
	if t == nil {
		t = &Summary{ID: id, Class: class, FirstFrame: frame, FirstPTS: pts, First: b}
		s.byID[id] = t
		s.order = append(s.order, id)
	} else {
		cx0, cy0 := center(t.Last)
		cx1, cy1 := center(b)
		t.PathLength += math.Hypot(cx1-cx0, cy1-cy0)
	}
	t.LastFrame, t.LastPTS, t.Last = frame, pts, b
	t.Detections++
	s.sum[id] += float64(score)
	t.MeanScore = float32(s.sum[id] / float64(t.Detections))
	t.MaxScore = max(t.MaxScore, score)
}

// All returns the tracks in the order they started.
func (s *Summaries) All() []Summary {
	out := make([]Summary, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.byID[id])
	}
	return out
}

func center(b Box) (float64, float64) {
	return float64(b.X1+b.X2) / 2, float64(b.Y1+b.Y2) / 2
}
