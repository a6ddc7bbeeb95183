// Package events turns the tracks of a run into events over lines and
// zones a user draws per camera: line crossings with their direction,
// zone entries and exits with the time spent inside. It is a package of its
// own because it is a stage after the run, over its stored tracks: lines
// and zones can be redrawn and the events recomputed in seconds, without
// decoding or inferring again.
package events

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Geometry is a zones file: lines and zones per camera.
type Geometry struct {
	Cameras []Camera `yaml:"cameras"`
}

// Camera is the lines and zones of the videos whose path matches Match.
type Camera struct {
	Name string `yaml:"name"`
	// Match is a glob on the video's path, or on its file name when it
	// has no slash ("cam03_*.mp4").
	Match string `yaml:"match"`
	// Normalized says that coordinates are fractions of the frame's width
	// and height, not pixels.
	Normalized bool   `yaml:"normalized"`
	Lines      []Line `yaml:"lines"`
	Zones      []Zone `yaml:"zones"`
	// RecordedAt is where the camera writes the recording's start in its
	// file names, in strftime's letters (%Y %m %d %H %M %S): events then
	// get a wall-clock time. Timezone names the clock's zone (default
	// UTC).
	RecordedAt string `yaml:"recorded_at"`
	Timezone   string `yaml:"timezone"`
	clock      *FileNameClock
}

// Start is the recording's start that path's file name says, by the
// camera's recorded_at pattern; ok is false without a pattern or a match.
func (c *Camera) Start(path string) (time.Time, bool) {
	if c.clock == nil {
		return time.Time{}, false
	}
	return c.clock.Start(path)
}

// FileNameClock reads when a recording started from its file name, as
// cameras and recorders name their files (cam03_20240501_080000.mp4).
type FileNameClock struct {
	re  *regexp.Regexp
	loc *time.Location
}

// ParseFileNameClock makes the clock of a pattern in strftime's letters
// (%Y %m %d, and %H %M %S when the names have them; other characters
// literal), in the time zone tz ("" for UTC).
func ParseFileNameClock(pattern, tz string) (*FileNameClock, error) {
	var re strings.Builder
	seen := map[byte]bool{}
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != '%' || i+1 == len(pattern) {
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			continue
		}
		i++
		digits, ok := map[byte]int{'Y': 4, 'm': 2, 'd': 2, 'H': 2, 'M': 2, 'S': 2}[pattern[i]]
		if !ok || seen[pattern[i]] {
			return nil, fmt.Errorf("recorded_at %q: %%%c: want each of %%Y %%m %%d %%H %%M %%S at most once", pattern, pattern[i])
		}
		seen[pattern[i]] = true
		fmt.Fprintf(&re, "(?P<%c>\\d{%d})", pattern[i], digits)
	}
	if !seen['Y'] || !seen['m'] || !seen['d'] {
		return nil, fmt.Errorf("recorded_at %q: want at least %%Y, %%m and %%d", pattern)
	}
	c := &FileNameClock{loc: time.UTC}
	var err error
	if c.re, err = regexp.Compile(re.String()); err != nil {
		return nil, fmt.Errorf("recorded_at %q: %w", pattern, err)
	}
	if tz != "" {
		if c.loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("timezone %q: %w", tz, err)
		}
	}
	return c, nil
}

// Start is the recording's start path's file name says; ok is false when
// the name does not match, or names no real date.
func (c *FileNameClock) Start(path string) (t time.Time, ok bool) {
	m := c.re.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return time.Time{}, false
	}
	v := map[string]int{"Y": 0, "m": 1, "d": 1, "H": 0, "M": 0, "S": 0}
	for i, name := range c.re.SubexpNames() {
		if name != "" {
			n, err := strconv.Atoi(m[i])
			if err != nil {
				return time.Time{}, false
			}
			v[name] = n
		}
	}
	t = time.Date(v["Y"], time.Month(v["m"]), v["d"], v["H"], v["M"], v["S"], 0, c.loc)
	if t.Month() != time.Month(v["m"]) || t.Day() != v["d"] || v["H"] > 23 || v["M"] > 59 || v["S"] > 59 {
		return time.Time{}, false // not a date: 2024-02-31
	}
	return t, true
}

// ParseCreationTime reads a container's creation_time tag (ISO 8601, as
// FFmpeg gives it); ok is false for an empty or unreadable one.
func ParseCreationTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil && t.Year() > 1970 {
			return t, true
		}
	}
	return time.Time{}, false
}

// Line is a counting line: a segment crossed by tracks' anchor points.
type Line struct {
	Name string     `yaml:"name"`
	From [2]float64 `yaml:"from"`
	To   [2]float64 `yaml:"to"`
	// Positive and Negative name the directions (default "positive" and
	// "negative"): positive is a crossing to the right-hand side of the
	// line walked from From to To, in image coordinates (y down).
	Positive string `yaml:"positive"`
	Negative string `yaml:"negative"`
	// Hysteresis is how far, in pixels, an anchor must be past the line
	// to count as on the other side (default 2): a track dithering on the
	// line crosses once.
	Hysteresis float64 `yaml:"hysteresis"`
	Filter     `yaml:",inline"`
}

// Zone is a polygon tracks' anchor points enter and leave.
type Zone struct {
	Name    string       `yaml:"name"`
	Polygon [][2]float64 `yaml:"polygon"`
	Filter  `yaml:",inline"`
}

// Filter is what lines and zones share: the classes they count and the
// point of a box that counts.
type Filter struct {
	// Classes are the class names counted (empty: all).
	Classes []string `yaml:"classes"`
	// Anchor is the box's point that crosses and enters: bottom-center
	// (default: where objects stand), center or top-center.
	Anchor string `yaml:"anchor"`
}

// ParseGeometry reads a zones file and checks it.
func ParseGeometry(b []byte) (*Geometry, error) {
	var g Geometry
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		return nil, err
	}
	if len(g.Cameras) == 0 {
		return nil, fmt.Errorf("no cameras")
	}
	for i := range g.Cameras {
		c := &g.Cameras[i]
		if c.Match == "" {
			return nil, fmt.Errorf("camera %d (%s): no match glob", i, c.Name)
		}
		if _, err := filepath.Match(c.Match, "x"); err != nil {
			return nil, fmt.Errorf("camera %s: match %q: %w", c.Name, c.Match, err)
		}
		if c.Name == "" {
			c.Name = c.Match
		}
		if c.RecordedAt != "" {
			var err error
			if c.clock, err = ParseFileNameClock(c.RecordedAt, c.Timezone); err != nil {
				return nil, fmt.Errorf("camera %s: %w", c.Name, err)
			}
		}
		names := map[string]bool{}
		for j := range c.Lines {
			l := &c.Lines[j]
			if l.Name == "" || names[l.Name] {
				return nil, fmt.Errorf("camera %s: line %d: want a name of its own", c.Name, j)
			}
			names[l.Name] = true
			if l.From == l.To {
				return nil, fmt.Errorf("camera %s: line %s: its ends are one point", c.Name, l.Name)
			}
			if l.Positive == "" {
				l.Positive = "positive"
			}
			if l.Negative == "" {
				l.Negative = "negative"
			}
			if l.Hysteresis < 0 {
				return nil, fmt.Errorf("camera %s: line %s: negative hysteresis", c.Name, l.Name)
			}
			if l.Hysteresis == 0 {
				l.Hysteresis = 2
			}
			if err := l.Filter.check(); err != nil {
				return nil, fmt.Errorf("camera %s: line %s: %w", c.Name, l.Name, err)
			}
		}
		for j := range c.Zones {
			z := &c.Zones[j]
			if z.Name == "" || names[z.Name] {
				return nil, fmt.Errorf("camera %s: zone %d: want a name of its own", c.Name, j)
			}
			names[z.Name] = true
			if len(z.Polygon) < 3 {
				return nil, fmt.Errorf("camera %s: zone %s: a polygon needs three points", c.Name, z.Name)
			}
			if err := z.Filter.check(); err != nil {
				return nil, fmt.Errorf("camera %s: zone %s: %w", c.Name, z.Name, err)
			}
		}
	}
	return &g, nil
}

func (f *Filter) check() error {
	switch f.Anchor {
	case "":
		f.Anchor = "bottom-center"
	case "bottom-center", "center", "top-center":
	default:
		return fmt.Errorf("anchor %q: want bottom-center, center or top-center", f.Anchor)
	}
	return nil
}

func (f Filter) counts(class string) bool {
	return len(f.Classes) == 0 || slices.Contains(f.Classes, class)
}

func (f Filter) point(b Box) [2]float64 {
	cx := float64(b.X1+b.X2) / 2
	switch f.Anchor {
	case "center":
		return [2]float64{cx, float64(b.Y1+b.Y2) / 2}
	case "top-center":
		return [2]float64{cx, float64(b.Y1)}
	}
	return [2]float64{cx, float64(b.Y2)}
}

// Camera returns the camera whose glob matches path, first in the file
// first, or nil.
func (g *Geometry) Camera(path string) *Camera {
	for i := range g.Cameras {
		c := &g.Cameras[i]
		name := path
		if !strings.Contains(c.Match, "/") {
			name = filepath.Base(path)
		}
		if ok, _ := filepath.Match(c.Match, name); ok {
			return c
		}
	}
	return nil
}

// Box is a detection's box in frame pixels.
type Box struct{ X1, Y1, X2, Y2 float32 }

// Observation is one detection of a track.
type Observation struct {
	Track int64
	Class string
	Frame int64
	PTS   float64
	Box   Box
}

// Event is a crossing of a line or an entry into or exit from a zone.
type Event struct {
	Kind      string // "line_cross", "zone_enter", "zone_exit"
	Name      string // the line's or zone's
	Direction string // a crossing's; empty otherwise
	Track     int64
	Class     string
	Frame     int64
	PTS       float64
	X, Y      float64 // the anchor point
	// Dwell is an exit's time since its entry, in seconds.
	Dwell float64
	// Open marks an exit made up at the track's last detection: the
	// object was still inside when the video or the track ended.
	Open bool
}

// Compute returns the events of one video's observations for camera c in
// a frame of w×h pixels (for normalised coordinates), in time order (then
// by track and the line's or zone's order in the file).
func (c *Camera) Compute(obs []Observation, w, h int) []Event {
	scale := func(p [2]float64) [2]float64 {
		if c.Normalized {
			return [2]float64{p[0] * float64(w), p[1] * float64(h)}
		}
		return p
	}
	byTrack := map[int64][]Observation{}
	for _, o := range obs {
		if o.Track >= 0 {
			byTrack[o.Track] = append(byTrack[o.Track], o)
		}
	}
	ids := make([]int64, 0, len(byTrack))
	for id := range byTrack {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var out []Event
	for _, id := range ids {
		t := byTrack[id]
		sort.SliceStable(t, func(i, j int) bool { return t[i].Frame < t[j].Frame })
		for _, l := range c.Lines {
			out = append(out, l.crossings(t, scale(l.From), scale(l.To))...)
		}
		for _, z := range c.Zones {
			poly := make([][2]float64, len(z.Polygon))
			for i, p := range z.Polygon {
				poly[i] = scale(p)
			}
			out = append(out, z.visits(t, poly)...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Frame != out[j].Frame {
			return out[i].Frame < out[j].Frame
		}
		return out[i].Track < out[j].Track
	})
	return out
}

// crossings follows a track's anchor across the line a→b: its side changes
// when it gets further than the hysteresis past the line, and a change
// counts where the anchor then lies along the segment (not beyond its
// ends).
func (l Line) crossings(t []Observation, a, b [2]float64) []Event {
	dx, dy := b[0]-a[0], b[1]-a[1]
	length := math.Hypot(dx, dy)
	side := 0 // +1 right of a→b (y down), -1 left, 0 not yet known
	var out []Event
	for _, o := range t {
		if !l.counts(o.Class) {
			continue
		}
		p := l.point(o.Box)
		// Signed distance: positive on the right-hand side in image
		// coordinates.
		d := (dx*(p[1]-a[1]) - dy*(p[0]-a[0])) / length
		if math.Abs(d) <= l.Hysteresis {
			continue
		}
		s := 1
		if d < 0 {
			s = -1
		}
		if side != 0 && s != side {
			along := ((p[0]-a[0])*dx + (p[1]-a[1])*dy) / (length * length)
			if along >= 0 && along <= 1 {
				dir := l.Positive
				if s < 0 {
					dir = l.Negative
				}
				out = append(out, Event{Kind: "line_cross", Name: l.Name, Direction: dir, Track: o.Track, Class: o.Class,
					Frame: o.Frame, PTS: o.PTS, X: p[0], Y: p[1]})
			}
		}
		side = s
	}
	return out
}

// visits follows a track's anchor into and out of the polygon.
func (z Zone) visits(t []Observation, poly [][2]float64) []Event {
	var out []Event
	in, since := false, 0.0
	var last Observation
	for _, o := range t {
		if !z.counts(o.Class) {
			continue
		}
		last = o
		p := z.point(o.Box)
		inside := contains(poly, p)
		switch {
		case inside && !in:
			out = append(out, Event{Kind: "zone_enter", Name: z.Name, Track: o.Track, Class: o.Class, Frame: o.Frame, PTS: o.PTS, X: p[0], Y: p[1]})
			since = o.PTS
		case !inside && in:
			out = append(out, Event{Kind: "zone_exit", Name: z.Name, Track: o.Track, Class: o.Class, Frame: o.Frame, PTS: o.PTS, X: p[0], Y: p[1], Dwell: o.PTS - since})
		}
		in = inside
	}
	if in {
		p := z.point(last.Box)
		out = append(out, Event{Kind: "zone_exit", Name: z.Name, Track: last.Track, Class: last.Class, Frame: last.Frame, PTS: last.PTS,
			X: p[0], Y: p[1], Dwell: last.PTS - since, Open: true})
	}
	return out
}

// contains reports whether p lies inside poly (even-odd rule).
func contains(poly [][2]float64, p [2]float64) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0]-a[0])*(p[1]-a[1])/(b[1]-a[1])+a[0] {
			in = !in
		}
	}
	return in
}
