package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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
// zones of g, and writes them without decoding or inferring: the events
// of each part's videos to events/<part>.parquet, replaced atomically.
// Rerun with other lines or zones it replaces them, and removes the files
// of parts no camera matches any more. It takes the folder's lock, as a
// run does, and first gathers into a part what a killed run left staged.
func WriteEvents(ctx context.Context, out string, g *events.Geometry, jobs int) (*EventsSummary, error) {
	start := time.Now()
	b, err := os.ReadFile(filepath.Join(out, stateDir, settingsFile))
	if err != nil {
		return nil, fmt.Errorf("events: %s is not the --out of a dsbatch run (%w)", out, err)
	}
	var settings Settings
	if err := json.Unmarshal(b, &settings); err != nil {
		return nil, fmt.Errorf("events: %s: %w", filepath.Join(out, stateDir, settingsFile), err)
	}
	o, err := openOut(out)
	if err != nil {
		return nil, err
	}
	defer o.close()
	mem := memory.NewGoAllocator()
	st, err := o.loadState(ctx, settings.Track, true, mem)
	if err != nil {
		return nil, err
	}
	if len(st.staged) > 0 {
		m, err := o.gather(ctx, st.staged, settings.Track, mem)
		if err != nil {
			return nil, err
		}
		st.parts = append(st.parts, m)
	}
	sum := &EventsSummary{Counts: map[string]int64{}}
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	eg.SetLimit(jobs)
	for _, m := range st.parts {
		eg.Go(func() error {
			ps, err := o.partEvents(ctx, m, g, mem)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			sum.Videos += ps.Videos
			sum.Unmatched += ps.Unmatched
			sum.Events += ps.Events
			for k, n := range ps.Counts {
				sum.Counts[k] += n
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

// partEvents writes the events of the videos of part m, or removes its
// events file when no camera matches any of them.
func (o *outDir) partEvents(ctx context.Context, m *manifest, g *events.Geometry, mem memory.Allocator) (*EventsSummary, error) {
	sum := &EventsSummary{Counts: map[string]int64{}}
	path := o.path(eventsDir, m.Part+".parquet")
	videos := map[int64]export.Video{}
	cams := map[int64]*events.Camera{}
	for _, v := range m.Videos {
		if cam := g.Camera(v.Path); cam != nil {
			videos[v.VideoID], cams[v.VideoID] = v, cam
			sum.Videos++
		} else {
			sum.Unmatched++
		}
	}
	if len(cams) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return sum, nil
	}
	var rows []export.Event
	err := scanObservations(ctx, m.file(o, detectionsDir), mem, func(id int64, obs []events.Observation) error {
		cam, v := cams[id], videos[id]
		if cam == nil {
			return nil
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
		for _, e := range evs {
			row := export.Event{VideoID: id, VideoPath: v.Path, Camera: cam.Name, Kind: e.Kind, Name: e.Name, Direction: e.Direction,
				TrackID: e.Track, ClassName: e.Class, FrameIndex: e.Frame, PTS: e.PTS, X: float32(e.X), Y: float32(e.Y), Dwell: e.Dwell, Open: e.Open}
			if known {
				row.RecordedAt = start.Add(time.Duration(e.PTS * float64(time.Second)))
			}
			rows = append(rows, row)
			sum.Counts[e.Kind+" "+e.Name+" "+e.Direction]++
		}
		sum.Events += int64(len(evs))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events of part %s: %w", m.Part, err)
	}
	w := export.NewPartWriter(path, export.EventsTable, mem)
	rec := export.EventRecord(rows, mem)
	err = w.Write(rec)
	rec.Release()
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = w.Publish()
	}
	if err != nil {
		w.Abort()
		return nil, err
	}
	return sum, nil
}

// scanObservations calls fn with the tracked detections of each video of
// a detections file, video by video in the file's order (a part's rows are
// sorted by video).
func scanObservations(ctx context.Context, path string, mem memory.Allocator, fn func(id int64, obs []events.Observation) error) error {
	var obs []events.Observation
	cur := int64(-1)
	cols := []string{"video_id", "track_id", "class_name", "frame_index", "pts_seconds", "x1", "y1", "x2", "y2"}
	err := export.ScanColumns(ctx, path, cols, mem, func(r arrow.Record) error {
		vid, tr, cls, fi, pts := r.Column(0).(*array.Int64), r.Column(1).(*array.Int64), r.Column(2).(*array.String), r.Column(3).(*array.Int64), r.Column(4).(*array.Float64)
		var b [4]*array.Float32
		for k := range b {
			b[k] = r.Column(5 + k).(*array.Float32)
		}
		for i := 0; i < int(r.NumRows()); i++ {
			if id := vid.Value(i); id != cur {
				if cur >= 0 {
					if err := fn(cur, obs); err != nil {
						return err
					}
				}
				cur, obs = id, nil
			}
			if tr.IsNull(i) {
				continue
			}
			obs = append(obs, events.Observation{Track: tr.Value(i), Class: cls.Value(i), Frame: fi.Value(i), PTS: pts.Value(i),
				Box: events.Box{X1: b[0].Value(i), Y1: b[1].Value(i), X2: b[2].Value(i), Y2: b[3].Value(i)}})
		}
		return nil
	})
	if err != nil || cur < 0 {
		return err
	}
	return fn(cur, obs)
}
