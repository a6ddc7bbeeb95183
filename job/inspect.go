package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/dsbatch/dsbatch/export"
)

// Inspection is a summary of an output folder (dsbatch inspect).
type Inspection struct {
	Out         string           `json:"out"`
	Videos      int              `json:"videos"`
	Done        int              `json:"done"`
	Failed      []FailedVideo    `json:"failed"`
	Frames      int64            `json:"frames_inferred"`
	Detections  map[string]int64 `json:"detections_per_class"`
	Tracks      map[string]int64 `json:"tracks_per_class"`
	Busiest     []BusyVideo      `json:"busiest"`
	FPS         float64          `json:"frames_per_second"`
	WallSeconds float64          `json:"wall_seconds"`
	// Events are the events of dsbatch events (or run --zones), by line
	// and direction or zone.
	Events []EventCount `json:"events,omitempty"`
	// Layout is how the rows are stored: "parts" or "per-video" (the
	// layout before parts, which dsbatch compact converts). Parts counts
	// the parts, SmallParts those dsbatch compact would rewrite.
	Layout     string `json:"layout"`
	Parts      int    `json:"parts"`
	SmallParts int    `json:"small_parts"`
	// Keypoints are a pose model's points: how often each is visible.
	Keypoints []KeypointCount `json:"keypoints,omitempty"`
	// Masks are a segmentation model's mask areas, by class.
	Masks []MaskArea `json:"masks,omitempty"`
}

// MaskArea is the masks of one class: how many detections have one, and
// their areas in frame pixels.
type MaskArea struct {
	Class      string  `json:"class"`
	Detections int64   `json:"detections"`
	Mean       float64 `json:"mean_area_px"`
	Min        int64   `json:"min_area_px"`
	Max        int64   `json:"max_area_px"`
	// Empty is the detections whose mask covers no pixel.
	Empty int64 `json:"empty"`
}

// EventCount is the events of one line and direction, or one zone.
type EventCount struct {
	Kind      string  `json:"kind"` // crossings or visits
	Name      string  `json:"name"`
	Direction string  `json:"direction,omitempty"`
	Count     int64   `json:"count"`
	MeanDwell float64 `json:"mean_dwell_seconds,omitempty"` // visits'
}

// KeypointCount is one point of a pose model's: of the detections that
// have it, how many see it (score at least 0.5).
type KeypointCount struct {
	Name       string  `json:"name"`
	Detections int64   `json:"detections"`
	Visible    int64   `json:"visible"`
	Share      float64 `json:"visible_share"`
}

// FailedVideo is a video that failed, and why.
type FailedVideo struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// BusyVideo is a video and its detections and frames.
type BusyVideo struct {
	Path       string `json:"path"`
	Detections int64  `json:"detections"`
	Frames     int64  `json:"frames"`
}

// Inspect summarises the output folder out: its videos (from
// videos.parquet), detections and tracks per class (read from the class
// column of each part as a dictionary: no row is decoded as a string), the
// top busiest videos, the events and the last run's pace.
func Inspect(ctx context.Context, out string, top int) (*Inspection, error) {
	mem := memory.NewGoAllocator()
	in := &Inspection{Out: out, Detections: map[string]int64{}, Tracks: map[string]int64{}, Failed: []FailedVideo{}}
	videos := filepath.Join(out, "videos.parquet")
	if _, err := os.Stat(videos); err != nil {
		return nil, fmt.Errorf("inspect %s: no videos.parquet (is it the --out of a dsbatch run?)", out)
	}
	var busy []BusyVideo
	err := export.ScanColumns(ctx, videos, []string{"path", "status", "error", "frames_inferred", "detections"}, mem, func(r arrow.Record) error {
		path, status, msg := r.Column(0).(*array.String), r.Column(1).(*array.String), r.Column(2).(*array.String)
		frames, dets := r.Column(3).(*array.Int64), r.Column(4).(*array.Int64)
		for i := 0; i < int(r.NumRows()); i++ {
			in.Videos++
			if status.Value(i) == "done" {
				in.Done++
				in.Frames += frames.Value(i)
				busy = append(busy, BusyVideo{Path: path.Value(i), Detections: dets.Value(i), Frames: frames.Value(i)})
			} else {
				in.Failed = append(in.Failed, FailedVideo{Path: path.Value(i), Error: msg.Value(i)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(busy, func(i, j int) bool {
		if busy[i].Detections != busy[j].Detections {
			return busy[i].Detections > busy[j].Detections
		}
		return busy[i].Path < busy[j].Path
	})
	in.Busiest = busy[:min(top, len(busy))]
	for dir, into := range map[string]map[string]int64{"detections": in.Detections, "tracks": in.Tracks} {
		files, _ := filepath.Glob(filepath.Join(out, dir, "*.parquet"))
		for _, f := range files {
			if err := export.CountStrings(ctx, f, "class_name", mem, into); err != nil {
				return nil, err
			}
		}
	}
	if in.Events, err = countEvents(ctx, out, mem); err != nil {
		return nil, err
	}
	if in.Keypoints, err = countKeypoints(ctx, out, mem); err != nil {
		return nil, err
	}
	if in.Masks, err = maskAreas(ctx, out, mem); err != nil {
		return nil, err
	}
	o := &outDir{root: out}
	in.Layout = "parts"
	if err := o.checkLayout(); errors.Is(err, ErrPerVideoLayout) {
		in.Layout = "per-video"
	} else if err != nil {
		return nil, err
	}
	if in.Layout == "parts" {
		// From the parts' footers: manifests hold every video's record,
		// far more to read.
		var ms []*manifest
		files, _ := filepath.Glob(filepath.Join(out, detectionsDir, "part-*.parquet"))
		for _, f := range files {
			n, err := export.RowCount(f)
			if err != nil {
				return nil, err
			}
			ms = append(ms, &manifest{Part: strings.TrimSuffix(filepath.Base(f), ".parquet"), Rows: map[string]int64{detectionsDir: n}})
		}
		in.Parts, in.SmallParts = len(ms), len(slices.Concat(smallParts(ms, partRows)...))
	}
	var run struct {
		Summary struct {
			FPS  float64 `json:"frames_per_second"`
			Wall float64 `json:"wall_seconds"`
		} `json:"summary"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "run.json")); err == nil {
		if json.Unmarshal(b, &run) == nil {
			in.FPS, in.WallSeconds = run.Summary.FPS, run.Summary.Wall
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return in, nil
}

// countEvents counts the events files' crossings by line and direction and
// visits by zone, with their mean dwell.
func countEvents(ctx context.Context, out string, mem memory.Allocator) ([]EventCount, error) {
	files, _ := filepath.Glob(filepath.Join(out, "events", "*.parquet"))
	type key struct{ kind, name, dir string }
	counts := map[key]*EventCount{}
	dwell := map[key]float64{}
	for _, f := range files {
		err := export.ScanColumns(ctx, f, []string{"kind", "name", "direction", "dwell_seconds"}, mem, func(r arrow.Record) error {
			kind, name, dir, dw := r.Column(0).(*array.String), r.Column(1).(*array.String), r.Column(2).(*array.String), r.Column(3).(*array.Float64)
			for i := 0; i < int(r.NumRows()); i++ {
				k := key{"crossings", name.Value(i), dir.Value(i)}
				switch kind.Value(i) {
				case "zone_enter":
					continue
				case "zone_exit":
					k = key{"visits", name.Value(i), ""}
					dwell[k] += dw.Value(i)
				}
				if counts[k] == nil {
					counts[k] = &EventCount{Kind: k.kind, Name: k.name, Direction: k.dir}
				}
				counts[k].Count++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var list []EventCount
	for k, e := range counts {
		if e.Kind == "visits" {
			e.MeanDwell = dwell[k] / float64(e.Count)
		}
		list = append(list, *e)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Direction < b.Direction
	})
	return list, nil
}

// countKeypoints counts, per point of a pose model's detections files,
// the detections that have it and those that see it, in the model's order
// of points.
func countKeypoints(ctx context.Context, out string, mem memory.Allocator) ([]KeypointCount, error) {
	files, _ := filepath.Glob(filepath.Join(out, detectionsDir, "*.parquet"))
	var list []KeypointCount
	at := map[string]int{}
	for _, f := range files {
		cols, err := export.ColumnNames(f, mem)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(cols, "keypoints") {
			continue
		}
		err = export.ScanColumns(ctx, f, []string{"keypoints"}, mem, func(r arrow.Record) error {
			for i := 0; i < int(r.NumRows()); i++ {
				err := export.Keypoints(r.Column(0), i, func(name string, kp export.Keypoint) {
					k, ok := at[name]
					if !ok {
						k = len(list)
						at[name] = k
						list = append(list, KeypointCount{Name: name})
					}
					list[k].Detections++
					if kp.Score >= 0.5 {
						list[k].Visible++
					}
				})
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range list {
		list[i].Share = float64(list[i].Visible) / float64(max(list[i].Detections, 1))
	}
	return list, nil
}

// maskAreas sums the mask areas of a segmentation model's detections
// files by class, in the order of class names.
func maskAreas(ctx context.Context, out string, mem memory.Allocator) ([]MaskArea, error) {
	files, _ := filepath.Glob(filepath.Join(out, detectionsDir, "*.parquet"))
	by := map[string]*MaskArea{}
	sums := map[string]float64{}
	for _, f := range files {
		cols, err := export.ColumnNames(f, mem)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(cols, "mask_area") {
			continue
		}
		err = export.ScanColumns(ctx, f, []string{"class_name", "mask_area"}, mem, func(r arrow.Record) error {
			area := r.Column(1).(*array.Int64)
			for i := 0; i < int(r.NumRows()); i++ {
				if area.IsNull(i) {
					continue
				}
				c := stringAt(r.Column(0), i)
				m := by[c]
				if m == nil {
					m = &MaskArea{Class: c, Min: area.Value(i), Max: area.Value(i)}
					by[c] = m
				}
				a := area.Value(i)
				m.Detections++
				m.Min, m.Max = min(m.Min, a), max(m.Max, a)
				sums[c] += float64(a)
				if a == 0 {
					m.Empty++
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var list []MaskArea
	for c, m := range by {
		m.Mean = sums[c] / float64(m.Detections)
		list = append(list, *m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Class < list[j].Class })
	return list, nil
}

// stringAt is row i of a string column, read plain or as a dictionary.
func stringAt(a arrow.Array, i int) string {
	switch c := a.(type) {
	case *array.String:
		return c.Value(i)
	case *array.Dictionary:
		if d, ok := c.Dictionary().(*array.String); ok {
			return d.Value(c.GetValueIndex(i))
		}
	}
	return ""
}
