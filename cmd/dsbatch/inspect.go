package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/export"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "summarise the results in OUT: videos, failures, detections and tracks per class, throughput",
		ArgsUsage: "OUT",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "one JSON object"},
			&cli.IntFlag{Name: "top", Value: 10, Usage: "how many of the busiest videos to list"},
		},
		Action: runInspect,
	}
}

// inspection is what inspect reports.
type inspection struct {
	Out         string           `json:"out"`
	Videos      int              `json:"videos"`
	Done        int              `json:"done"`
	Failed      []failedVideo    `json:"failed"`
	Frames      int64            `json:"frames_inferred"`
	Detections  map[string]int64 `json:"detections_per_class"`
	Tracks      map[string]int64 `json:"tracks_per_class"`
	Busiest     []busyVideo      `json:"busiest"`
	FPS         float64          `json:"frames_per_second"`
	WallSeconds float64          `json:"wall_seconds"`
	// Events are the events of dsbatch events (or run --zones), by line
	// and direction or zone.
	Events []eventCount `json:"events,omitempty"`
}

// eventCount is the events of one line and direction, or one zone.
type eventCount struct {
	Kind      string  `json:"kind"` // crossings or visits
	Name      string  `json:"name"`
	Direction string  `json:"direction,omitempty"`
	Count     int64   `json:"count"`
	MeanDwell float64 `json:"mean_dwell_seconds,omitempty"` // visits'
}

type failedVideo struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

type busyVideo struct {
	Path       string `json:"path"`
	Detections int64  `json:"detections"`
	Frames     int64  `json:"frames"`
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("inspect: give the output folder of a run")
	}
	out := c.Args().First()
	in, err := inspect(c, out, c.Int("top"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return writeInspection(c.App.Writer, in)
}

func inspect(c *cli.Context, out string, top int) (*inspection, error) {
	mem := memory.NewGoAllocator()
	in := &inspection{Out: out, Detections: map[string]int64{}, Tracks: map[string]int64{}, Failed: []failedVideo{}}
	videos := filepath.Join(out, "videos.parquet")
	if _, err := os.Stat(videos); err != nil {
		return nil, fmt.Errorf("inspect %s: no videos.parquet (is it the --out of a dsbatch run?)", out)
	}
	var busy []busyVideo
	err := export.ScanColumns(c.Context, videos, []string{"path", "status", "error", "frames_inferred", "detections"}, mem, func(r arrow.Record) error {
		path, status, msg := r.Column(0).(*array.String), r.Column(1).(*array.String), r.Column(2).(*array.String)
		frames, dets := r.Column(3).(*array.Int64), r.Column(4).(*array.Int64)
		for i := 0; i < int(r.NumRows()); i++ {
			in.Videos++
			if status.Value(i) == "done" {
				in.Done++
				in.Frames += frames.Value(i)
				busy = append(busy, busyVideo{Path: path.Value(i), Detections: dets.Value(i), Frames: frames.Value(i)})
			} else {
				in.Failed = append(in.Failed, failedVideo{Path: path.Value(i), Error: msg.Value(i)})
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
			if err := export.CountStrings(c.Context, f, "class_name", mem, into); err != nil {
				return nil, err
			}
		}
	}
	if in.Events, err = countEvents(c, out, mem); err != nil {
		return nil, err
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

func writeInspection(w io.Writer, in *inspection) error {
	fmt.Fprintf(w, "%s: %d videos, %d done, %d failed; %d frames inferred", in.Out, in.Videos, in.Done, len(in.Failed), in.Frames)
	if in.WallSeconds > 0 {
		fmt.Fprintf(w, " in %.1fs (%.1f frames/s, last run)", in.WallSeconds, in.FPS)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	classes := map[string]bool{}
	for k := range in.Detections {
		classes[k] = true
	}
	for k := range in.Tracks {
		classes[k] = true
	}
	names := make([]string, 0, len(classes))
	for k := range classes {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if in.Detections[names[i]] != in.Detections[names[j]] {
			return in.Detections[names[i]] > in.Detections[names[j]]
		}
		return names[i] < names[j]
	})
	fmt.Fprintln(tw, "\nCLASS\tDETECTIONS\tTRACKS")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, in.Detections[n], in.Tracks[n])
	}
	fmt.Fprintln(tw, "\nBUSIEST VIDEO\tDETECTIONS\tFRAMES")
	for _, b := range in.Busiest {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", b.Path, b.Detections, b.Frames)
	}
	if len(in.Events) > 0 {
		fmt.Fprintln(tw, "\nEVENTS\tNAME\tDIRECTION\tCOUNT\tMEAN DWELL")
		for _, e := range in.Events {
			dwell := ""
			if e.Kind == "visits" {
				dwell = fmt.Sprintf("%.1fs", e.MeanDwell)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Kind, e.Name, e.Direction, e.Count, dwell)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(in.Failed) > 0 {
		fmt.Fprintln(w, "\nFAILED")
		for _, f := range in.Failed {
			fmt.Fprintln(w, oneLine(f.Error))
		}
	}
	return nil
}

// countEvents counts the events files' crossings by line and direction and
// visits by zone, with their mean dwell.
func countEvents(c *cli.Context, out string, mem memory.Allocator) ([]eventCount, error) {
	files, _ := filepath.Glob(filepath.Join(out, "events", "*.parquet"))
	type key struct{ kind, name, dir string }
	counts := map[key]*eventCount{}
	dwell := map[key]float64{}
	for _, f := range files {
		err := export.ScanColumns(c.Context, f, []string{"kind", "name", "direction", "dwell_seconds"}, mem, func(r arrow.Record) error {
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
					counts[k] = &eventCount{Kind: k.kind, Name: k.name, Direction: k.dir}
				}
				counts[k].Count++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var list []eventCount
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
