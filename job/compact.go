package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// CompactReport is what Compact did.
type CompactReport struct {
	Converted     int     `json:"videos_converted"`     // per-video files moved into parts
	EventsRemoved int     `json:"events_files_removed"` // per-video events files (rerun dsbatch events)
	Gathered      int     `json:"videos_gathered"`      // videos gathered into parts
	Parts         int     `json:"parts_written"`
	Redo          int     `json:"videos_to_redo"`        // records and rows found damaged: a rerun does them again
	Rewritten     int     `json:"small_parts_rewritten"` // small parts gathered into large ones
	PartsNow      int     `json:"parts"`                 // parts in the folder after
	Seconds       float64 `json:"seconds"`
}

// Compact brings the output folder out to the layout of parts: it converts
// a folder of one Parquet file per video (written by dsbatch before parts),
// gathers into parts what a killed run left staged, and rewrites parts of
// under a quarter of a part's rows (a slow run's, the last of each shard of
// a merged run) into parts of about a million (rewrite.go). Rows move, never
// copy: a reader of the tables may miss rows while it runs, never see one
// twice. Events of the per-video layout are removed (rerun dsbatch
// events). It takes the folder's lock, as a run does.
func Compact(ctx context.Context, out string, mem memory.Allocator) (*CompactReport, error) {
	start := time.Now()
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	b, err := os.ReadFile((&outDir{root: out}).path(stateDir, settingsFile))
	if err != nil {
		return nil, fmt.Errorf("compact: %s is not the --out of a dsbatch run (%w)", out, err)
	}
	var settings Settings
	if err := json.Unmarshal(b, &settings); err != nil {
		return nil, fmt.Errorf("compact %s: %w", out, err)
	}
	o, err := openOut(out)
	if err != nil {
		return nil, err
	}
	defer o.close()
	rep := &CompactReport{}
	if err := o.unstackPerVideo(rep); err != nil {
		return rep, err
	}
	st, err := o.loadState(ctx, settings.Track, true, mem)
	if err != nil {
		return rep, err
	}
	rep.Redo = st.broken
	c := &compactor{o: o, track: settings.Track, mem: mem, rows: partRows}
	for _, v := range st.staged {
		if err := c.add(ctx, v); err != nil {
			return rep, err
		}
	}
	if err := c.flush(ctx); err != nil {
		return rep, err
	}
	rep.Gathered, rep.Parts = len(st.staged), c.parts
	// Small parts (a slow run's, the last of each shard) into large ones.
	if st, err = o.loadState(ctx, settings.Track, true, mem); err != nil {
		return rep, err
	}
	rep.PartsNow = len(st.parts)
	for _, g := range smallParts(st.parts, partRows) {
		if _, err := o.rewriteParts(ctx, g, settings.Track, mem); err != nil {
			return rep, err
		}
		rep.Rewritten += len(g)
		rep.Parts++
		rep.PartsNow -= len(g) - 1
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// unstackPerVideo moves the per-video files of the layout before parts
// into staging, where loadState finds them as a killed run's staged rows,
// and removes per-video events files.
func (o *outDir) unstackPerVideo(rep *CompactReport) error {
	for _, t := range tableDirs() {
		names, err := listDir(o.path(t), ".parquet")
		if err != nil {
			return err
		}
		for _, n := range names {
			if !perVideoName.MatchString(n) {
				continue
			}
			from := o.path(t, n)
			if t == eventsDir {
				if err := os.Remove(from); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				rep.EventsRemoved++
				continue
			}
			to := o.path(stateDir, stagingDir, n[:16]+"."+t+".parquet")
			if err := os.Rename(from, to); err != nil {
				return fmt.Errorf("compact %s: %w", o.root, err)
			}
			if t == detectionsDir {
				rep.Converted++
			}
		}
	}
	return nil
}
