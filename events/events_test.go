package events

import (
	"reflect"
	"strings"
	"testing"
)

// walk is a track whose anchor (bottom centre) visits the points given,
// one a frame at 10 frames/s: a 10×10 box standing on each.
func walk(track int64, class string, points ...[2]float32) []Observation {
	var out []Observation
	for i, p := range points {
		out = append(out, Observation{Track: track, Class: class, Frame: int64(i), PTS: float64(i) / 10,
			Box: Box{X1: p[0] - 5, Y1: p[1] - 10, X2: p[0] + 5, Y2: p[1]}})
	}
	return out
}

// gap moves the observations from index i on by n frames: the track was
// lost and found again (the tracker kept its ID).
func gap(obs []Observation, i int, n int64) []Observation {
	for k := i; k < len(obs); k++ {
		obs[k].Frame += n
		obs[k].PTS += float64(n) / 10
	}
	return obs
}

func geometry(t *testing.T, y string) *Geometry {
	t.Helper()
	g, err := ParseGeometry([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// brief is an event as the tests compare it.
type brief struct {
	Kind, Name, Direction string
	Track, Frame          int64
	Dwell                 float64
	Open                  bool
}

func briefs(evs []Event) []brief {
	var out []brief
	for _, e := range evs {
		out = append(out, brief{e.Kind, e.Name, e.Direction, e.Track, e.Frame, e.Dwell, e.Open})
	}
	return out
}

func TestLineCrossings(t *testing.T) {
	g := geometry(t, `
cameras:
  - match: "*.mp4"
    lines:
      - {name: stop, from: [0, 100], to: [200, 100], positive: south, negative: north, hysteresis: 3}
      - {name: cars, from: [0, 300], to: [200, 300], classes: [car]}
`)
	cam := g.Camera("/a/cam1.mp4")
	for _, tt := range []struct {
		name string
		obs  []Observation
		want []brief
	}{
		{"down across", walk(1, "person", [2]float32{50, 80}, [2]float32{50, 99}, [2]float32{50, 120}),
			[]brief{{"line_cross", "stop", "south", 1, 2, 0, false}}},
		{"down then up", walk(2, "person", [2]float32{50, 80}, [2]float32{50, 120}, [2]float32{60, 70}),
			[]brief{{"line_cross", "stop", "south", 2, 1, 0, false}, {"line_cross", "stop", "north", 2, 2, 0, false}}},
		{"dithering on the line counts once", walk(3, "person", [2]float32{50, 90}, [2]float32{50, 101}, [2]float32{50, 99},
			[2]float32{50, 102}, [2]float32{50, 98.5}, [2]float32{50, 110}),
			[]brief{{"line_cross", "stop", "south", 3, 5, 0, false}}},
		{"past the end of the segment", walk(4, "person", [2]float32{250, 80}, [2]float32{250, 120}), nil},
		{"touching the line and going back", walk(5, "person", [2]float32{50, 80}, [2]float32{50, 100}, [2]float32{50, 80}), nil},
		{"a class the line does not count", walk(6, "person", [2]float32{50, 280}, [2]float32{50, 320}), nil},
		{"lost after crossing, found again past the line: once", gap(walk(8, "person", [2]float32{50, 80}, [2]float32{50, 120}, [2]float32{50, 130}), 2, 40),
			[]brief{{"line_cross", "stop", "south", 8, 1, 0, false}}},
		{"a class it counts, across both lines", walk(7, "car", [2]float32{50, 50}, [2]float32{50, 200}, [2]float32{50, 350}),
			[]brief{{"line_cross", "stop", "south", 7, 1, 0, false}, {"line_cross", "cars", "positive", 7, 2, 0, false}}},
	} {
		if got := briefs(cam.Compute(tt.obs, 640, 480)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestZoneVisits(t *testing.T) {
	g := geometry(t, `
cameras:
  - match: "cam*"
    normalized: true
    zones:
      - {name: counter, polygon: [[0.25, 0.25], [0.5, 0.25], [0.5, 0.5], [0.25, 0.5]]}
`)
	cam := g.Camera("/x/cam7.mp4")
	// 400×400 frame: the zone is 100..200 on both axes.
	obs := walk(9, "person", [2]float32{50, 150}, [2]float32{150, 150}, [2]float32{160, 150}, [2]float32{250, 150},
		[2]float32{150, 150}, [2]float32{150, 160})
	want := []brief{
		{"zone_enter", "counter", "", 9, 1, 0, false},
		{"zone_exit", "counter", "", 9, 3, 0.2, false},
		{"zone_enter", "counter", "", 9, 4, 0, false},
		{"zone_exit", "counter", "", 9, 5, 0.1, true}, // still inside at the track's end
	}
	got := briefs(cam.Compute(obs, 400, 400))
	for i := range got {
		got[i].Dwell = float64(int(got[i].Dwell*1000+0.5)) / 1000
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%+v\nwant %+v", got, want)
	}
	if g.Camera("/x/other.mp4") != nil {
		t.Error("a video no glob matches got a camera")
	}
}

func TestParseGeometryErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{`cameras: []`, "no cameras"},
		{`cameras: [{name: a}]`, "no match glob"},
		{`cameras: [{match: "[", lines: []}]`, "syntax error"},
		{`cameras: [{match: "*", lines: [{name: l, from: [1, 1], to: [1, 1]}]}]`, "one point"},
		{`cameras: [{match: "*", lines: [{name: l, from: [0, 0], to: [1, 1]}, {name: l, from: [0, 0], to: [2, 1]}]}]`, "a name of its own"},
		{`cameras: [{match: "*", zones: [{name: z, polygon: [[0, 0], [1, 1]]}]}]`, "three points"},
		{`cameras: [{match: "*", zones: [{name: z, anchor: feet, polygon: [[0, 0], [1, 1], [0, 1]]}]}]`, "anchor"},
		{`cameras: [{match: "*", lnes: []}]`, "lnes"},
	} {
		if _, err := ParseGeometry([]byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.yaml, err, tt.want)
		}
	}
}

func TestRecordedAt(t *testing.T) {
	g := geometry(t, `
cameras:
  - {name: utc, match: "a*", recorded_at: "_%Y%m%d_%H%M%S"}
  - {name: paris, match: "b*", recorded_at: "%Y-%m-%d", timezone: Europe/Paris}
`)
	for _, tt := range []struct {
		path string
		want string // RFC 3339 in UTC, "" for none
	}{
		{"/x/a_cam03_20240501_080000.mp4", "2024-05-01T08:00:00Z"},
		{"/x/a_cam03_20240231_080000.mp4", ""}, // no such day
		{"/x/a_cam03.mp4", ""},
		{"/x/b_2024-07-14.mp4", "2024-07-13T22:00:00Z"},
	} {
		start, ok := g.Camera(tt.path).Start(tt.path)
		got := ""
		if ok {
			got = start.UTC().Format("2006-01-02T15:04:05Z07:00")
		}
		if got != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, got, tt.want)
		}
	}
	for _, bad := range []string{"%Y%Q", "%H%M", "%Y%m%d%Y"} {
		if _, err := ParseGeometry([]byte("cameras: [{match: a, recorded_at: \"" + bad + "\"}]")); err == nil {
			t.Errorf("recorded_at %q accepted", bad)
		}
	}
}

// FuzzParseGeometry feeds arbitrary zones files to the parser, and what it
// accepts to the event computation and the file-name clock: they refuse or
// work, never crash or hang.
func FuzzParseGeometry(f *testing.F) {
	for _, seed := range []string{
		"cameras: [{match: \"*\", lines: [{name: l, from: [0, 1], to: [9, 1]}]}]",
		"cameras: [{match: \"cam*\", normalized: true, recorded_at: \"_%Y%m%d_%H%M%S\", timezone: UTC, zones: [{name: z, polygon: [[0, 0], [1, 0], [1, 1]]}]}]",
		"cameras: [{match: \"*\", lines: [{name: l, from: [.nan, 1], to: [.inf, 1], hysteresis: 1e300}]}]",
		"", "{", "cameras: 3",
	} {
		f.Add([]byte(seed))
	}
	obs := walk(1, "car", [2]float32{0, 0}, [2]float32{5, 5}, [2]float32{1e30, -1e30}, [2]float32{0.5, 0.5})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGeometry(b)
		if err != nil {
			return
		}
		for _, c := range g.Cameras {
			c.Compute(obs, 640, 480)
			c.Start("/x/cam_20240501_080000.mp4")
		}
	})
}
