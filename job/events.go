package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/events"
	"github.com/dsbatch/dsbatch/export"
)

// EventsSummary is what WriteEvents did.
type EventsSummary struct {
	Videos    int              // videos a camera matched: their events were written
	Unmatched int              // finished videos no camera matched
	Events    int64            // events written
	Counts    map[string]int64 // events by "kind name direction"
	Seconds   float64          // wall time
}

// WriteEvents computes, from the stored detections and tracks of every
// finished video of the output folder out, the events of the lines and
// zones of g, and writes each video's to events/<video_id>.parquet
// atomically, without decoding or inferring. Rerun with other lines or
// zones it replaces them, and removes the files of videos no camera
// matches any more. It takes the folder's lock, as a run does.
func WriteEvents(ctx context.Context, out string, g *events.Geometry, jobs int) (*EventsSummary, error) {
	start := time.Now()
	if _, err := os.Stat(filepath.Join(out, stateDir, recordsDir)); err != nil {
		return nil, fmt.Errorf("events: %s is not the --out of a dsbatch run (%w)", out, err)
	}
	o, err := openOut(out)
	if err != nil {
		return nil, err
	}
	defer o.close()
	records, err := o.records()
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(records))
	for id, v := range records {
		if v.Status == "done" {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	sum := &EventsSummary{Counts: map[string]int64{}}
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	eg.SetLimit(jobs)
	mem := memory.NewGoAllocator()
	for _, id := range ids {
		v := records[id]
		cam := g.Camera(v.Path)
		path := o.tablePath(eventsDir, id)
		if cam == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			sum.Unmatched++
			continue
		}
		eg.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			obs, err := readObservations(ctx, o.detectionsPath(id), mem)
			if err != nil {
				return fmt.Errorf("events of %s: %w", v.Path, err)
			}
			w, h := int(v.Width), int(v.Height)
			if v.Rotation == 90 || v.Rotation == 270 {
				w, h = h, w
			}
			evs := cam.Compute(obs, w, h)
			start, known := cam.Start(v.Path)
			if !known && !v.RecordedAt.IsZero() {
				start, known = v.RecordedAt, true // the run's --recorded-at
			}
			rows := make([]export.Event, len(evs))
			for i, e := range evs {
				rows[i] = export.Event{VideoID: id, VideoPath: v.Path, Camera: cam.Name, Kind: e.Kind, Name: e.Name, Direction: e.Direction,
					TrackID: e.Track, ClassName: e.Class, FrameIndex: e.Frame, PTS: e.PTS, X: float32(e.X), Y: float32(e.Y), Dwell: e.Dwell, Open: e.Open}
				if known {
					rows[i].RecordedAt = start.Add(time.Duration(e.PTS * float64(time.Second)))
				}
			}
			if err := export.WriteEvents(path, rows, mem); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			sum.Videos++
			sum.Events += int64(len(evs))
			for _, e := range evs {
				sum.Counts[e.Kind+" "+e.Name+" "+e.Direction]++
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// readObservations reads the tracked detections of one video's file.
func readObservations(ctx context.Context, path string, mem memory.Allocator) ([]events.Observation, error) {
	var obs []events.Observation
	cols := []string{"track_id", "class_name", "frame_index", "pts_seconds", "x1", "y1", "x2", "y2"}
	err := export.ScanColumns(ctx, path, cols, mem, func(r arrow.Record) error {
		tr, cls, fi, pts := r.Column(0).(*array.Int64), r.Column(1).(*array.String), r.Column(2).(*array.Int64), r.Column(3).(*array.Float64)
		var b [4]*array.Float32
		for k := range b {
			b[k] = r.Column(4 + k).(*array.Float32)
		}
		for i := 0; i < int(r.NumRows()); i++ {
			if tr.IsNull(i) {
				continue
			}
			obs = append(obs, events.Observation{Track: tr.Value(i), Class: cls.Value(i), Frame: fi.Value(i), PTS: pts.Value(i),
				Box: events.Box{X1: b[0].Value(i), Y1: b[1].Value(i), X2: b[2].Value(i), Y2: b[3].Value(i)}})
		}
		return nil
	})
	return obs, err
}
