package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/events"
	"github.com/dsbatch/dsbatch/export"
)

// TestWriteEvents computes events from an output folder's stored tracks:
// read back with DuckDB, replaced when the lines change, removed for
// videos no camera matches any more, the same when rerun.
func TestWriteEvents(t *testing.T) {
	dir := t.TempDir()
	o, err := openOut(dir)
	if err != nil {
		t.Fatal(err)
	}
	var vs []export.Video
	for i, name := range []string{"cam1_20240501_0800.mp4", "cam1_20240501_0900.mp4", "lobby.mp4"} {
		vs = append(vs, export.Video{VideoID: int64(100 + i), Path: "/archive/" + name, Status: "done", Width: 400, Height: 300, FramesInferred: 30})
	}
	stageVideos(t, o, vs, true, func(v export.Video, w *export.DetectionWriter) {
		id, path := v.VideoID, v.Path
		// Track 1 walks down across y = 150 at frame 10; track 2 never
		// crosses; an untracked detection is ignored.
		for f := int64(0); f < 30; f++ {
			y := float32(100 + 4*f)
			for _, d := range []export.Detection{
				{TrackID: 1, X1: 95, Y1: y - 20, X2: 105, Y2: y},
				{TrackID: 2, X1: 295, Y1: 10, X2: 305, Y2: 30},
				{TrackID: -1, X1: 95, Y1: 300 - y, X2: 105, Y2: 320 - y},
			} {
				d.VideoID, d.VideoPath, d.FrameIndex, d.PTS, d.ClassName, d.Score = id, path, f, float64(f)/10, "person", 0.9
				if err := w.Append(d); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	o.close()
	geo := func(y string) *events.Geometry {
		g, err := events.ParseGeometry([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := geo(`
cameras:
  - {name: cam1, match: "cam1_*", recorded_at: "cam1_%Y%m%d_%H%M", lines: [{name: door, from: [0, 150], to: [400, 150], positive: in, negative: out}],
     zones: [{name: hall, polygon: [[0, 162], [400, 162], [400, 300], [0, 300]]}]}
  - {name: lobby, match: "lobby.mp4", normalized: true, lines: [{name: mid, from: [0, 0.5], to: [1, 0.5]}]}
`)
	sum, err := WriteEvents(context.Background(), dir, g, 2)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Videos != 3 || sum.Counts["line_cross door in"] != 2 || sum.Counts["line_cross mid positive"] != 1 || sum.Counts["zone_enter hall "] != 2 {
		t.Errorf("summary %+v", sum)
	}
	db := openDuck(t)
	evs := fmt.Sprintf("read_parquet('%s/events/*.parquet')", dir)
	// The anchor's y is 100 + 4f: 152 at f = 13 is within the 2 px of
	// hysteresis past the door at 150, 156 at f = 14 is across.
	if got := queryInts(t, db, "select frame_index from "+evs+" where camera = 'cam1' and kind = 'line_cross' order by video_id"); fmt.Sprint(got) != "[14 14]" {
		t.Errorf("door crossings at frames %v, want [14 14]", got)
	}
	// Into the hall (y > 162) at f = 16, still in at the track's end (f = 29):
	// an open exit after 1.3 s.
	if got := queryInts(t, db, "select count(*) from "+evs+" where kind = 'zone_exit' and open and abs(dwell_seconds - 1.3) < 1e-9 and direction is null"); fmt.Sprint(got) != "[2]" {
		t.Errorf("open exits: %v", got)
	}
	// Wall-clock time from the file names, the crossing 1.4 s in; none
	// for the lobby, whose camera states no pattern.
	if got := queryInts(t, db, "select hour(recorded_at) * 10000 + minute(recorded_at) * 100 + second(recorded_at) from "+evs+
		" where kind = 'line_cross' and camera = 'cam1' order by 1"); fmt.Sprint(got) != "[80001 90001]" {
		t.Errorf("recorded_at of the crossings: %v", got)
	}
	if got := queryInts(t, db, "select count(*) from "+evs+" where camera = 'lobby' and recorded_at is not null"); fmt.Sprint(got) != "[0]" {
		t.Errorf("lobby events with a time: %v", got)
	}
	// docs/SCHEMA.md's queries over events, in the output folder.
	doc, err := os.ReadFile("../docs/SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql-events\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) != 4 {
		t.Fatalf("%d events queries in docs/SCHEMA.md, want 4", len(blocks))
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	var results []string
	for _, b := range blocks {
		rows, err := db.Query(b[1])
		if err != nil {
			os.Chdir(wd)
			t.Fatalf("%s: %v", b[1], err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			v := make([]any, len(cols))
			p := make([]any, len(cols))
			for i := range v {
				p[i] = &v[i]
			}
			rows.Scan(p...)
			var f []string
			for _, x := range v {
				if fl, ok := x.(float64); ok {
					x = fmt.Sprintf("%.3g", fl)
				}
				f = append(f, fmt.Sprint(x))
			}
			results = append(results, strings.Join(f, " "))
		}
		rows.Close()
	}
	os.Chdir(wd)
	want := []string{"door in 0 2", "mid positive 0 1", "cam1 door in 8 1", "cam1 door in 9 1", "hall 1.3 2", "/archive/cam1_20240501_0800.mp4 hall 1", "/archive/cam1_20240501_0900.mp4 hall 1"}
	if fmt.Sprint(results) != fmt.Sprint(want) {
		t.Errorf("SCHEMA.md's queries give %q, want %q", results, want)
	}
	// Not while a run holds the folder.
	held, err := openOut(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteEvents(context.Background(), dir, g, 1); !errors.Is(err, ErrLocked) {
		t.Errorf("events beside a run: %v, want ErrLocked", err)
	}
	held.close()
	// Another drawing of the lines: cam1's door moves, the lobby matches no
	// camera any more and loses its file.
	g = geo(`
cameras:
  - {name: cam1, match: "cam1_*", lines: [{name: door, from: [0, 200], to: [400, 200]}]}
`)
	for run := 0; run < 2; run++ {
		if sum, err = WriteEvents(context.Background(), dir, g, 0); err != nil {
			t.Fatal(err)
		}
		if sum.Videos != 2 || sum.Unmatched != 1 {
			t.Errorf("rerun %d: %+v", run, sum)
		}
		if got := queryInts(t, db, "select frame_index from "+evs+" order by video_id"); fmt.Sprint(got) != "[26 26]" {
			t.Errorf("rerun %d: %v", run, got)
		}
	}
	if got := queryInts(t, db, "select count(*) from "+evs+" where video_id = 102"); fmt.Sprint(got) != "[0]" {
		t.Errorf("the lobby's events outlived its camera: %v rows", got)
	}
	// A drawing no video matches: the events files go.
	if sum, err = WriteEvents(context.Background(), dir, geo("cameras: [{match: nowhere, lines: [{name: l, from: [0, 0], to: [1, 1]}]}]"), 0); err != nil || sum.Videos != 0 {
		t.Fatalf("%+v, %v", sum, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, eventsDir, "*.parquet")); len(left) != 0 {
		t.Errorf("events files of no matched video: %v", left)
	}
}

// BenchmarkWriteEvents computes the events of an output of 1,000 videos,
// each of 250 frames of four tracks walking across a line and through a
// zone (1M detections), as dsbatch events does.
func BenchmarkWriteEvents(b *testing.B) {
	dir := b.TempDir()
	o, err := openOut(dir)
	if err != nil {
		b.Fatal(err)
	}
	var vs []export.Video
	for v := 0; v < 1000; v++ {
		vs = append(vs, export.Video{VideoID: int64(v + 1), Path: fmt.Sprintf("/archive/cam%d_%04d.mp4", v%4, v), Status: "done", Width: 1920, Height: 1080, Detections: 1000})
	}
	stageVideos(b, o, vs, true, func(v export.Video, w *export.DetectionWriter) {
		id, path := v.VideoID, v.Path
		for f := int64(0); f < 250; f++ {
			for k := int64(0); k < 4; k++ {
				x, y := float32(200+300*k), float32(4*f)
				w.Append(export.Detection{VideoID: id, VideoPath: path, FrameIndex: f, PTS: float64(f) / 25, ClassName: "car", Score: 0.9,
					X1: x, Y1: y, X2: x + 80, Y2: y + 60, TrackID: k + 1})
			}
		}
	})
	o.close()
	g, err := events.ParseGeometry([]byte(`
cameras:
  - {match: "cam*", normalized: true, lines: [{name: l, from: [0, 0.5], to: [1, 0.5]}],
     zones: [{name: z, polygon: [[0, 0.2], [1, 0.2], [1, 0.4], [0, 0.4]]}]}
`))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var sum *EventsSummary
	for i := 0; i < b.N; i++ {
		if sum, err = WriteEvents(context.Background(), dir, g, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sum.Events), "events")
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/run")
}

// TestStartClock: when a recording started, from its container's
// creation_time or a file-name pattern; unknown where neither says.
func TestStartClock(t *testing.T) {
	for _, tt := range []struct {
		s    Settings
		v    Video
		want string
	}{
		{Settings{RecordedAt: "container"}, Video{Path: "/a/x.mp4", Info: decode.Info{CreationTime: "2024-05-01T08:00:00.000000Z"}}, "2024-05-01T08:00:00Z"},
		{Settings{RecordedAt: "container"}, Video{Path: "/a/x.mp4"}, ""},
		{Settings{RecordedAt: "_%Y%m%d_%H%M%S", Timezone: "Europe/Paris"}, Video{Path: "/a/cam_20240501_080000.mp4"}, "2024-05-01T06:00:00Z"},
		{Settings{RecordedAt: "_%Y%m%d_%H%M%S"}, Video{Path: "/a/cam.mp4", Info: decode.Info{CreationTime: "2024-05-01T08:00:00Z"}}, ""},
	} {
		start, err := tt.s.startClock()
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if at, ok := start(&tt.v); ok {
			got = at.UTC().Format(time.RFC3339)
		}
		if got != tt.want {
			t.Errorf("%+v on %s: %q, want %q", tt.s, tt.v.Path, got, tt.want)
		}
	}
	// A sidecar beside the video, by either name.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.mp4.json"), []byte(`{"recorded_at": "2024-05-01T08:00:00+02:00"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"recorded_at": "2024-05-02T00:00:00Z"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"recorded_at": "yesterday"}`), 0o644)
	start, _ := (Settings{RecordedAt: "sidecar"}).startClock()
	for name, want := range map[string]string{"a.mp4": "2024-05-01T06:00:00Z", "b.mp4": "2024-05-02T00:00:00Z", "c.mp4": "", "d.mp4": ""} {
		got := ""
		if at, ok := start(&Video{Path: filepath.Join(dir, name)}); ok {
			got = at.UTC().Format(time.RFC3339)
		}
		if got != want {
			t.Errorf("sidecar of %s: %q, want %q", name, got, want)
		}
	}
	if _, err := (Settings{RecordedAt: "%Q"}).startClock(); err == nil {
		t.Error("a bad pattern accepted")
	}
}
