package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// Small parts (a slow run's, published by age; the last ones of each shard
// of a merged run) are rewritten into large ones by Compact. A rewrite
// must neither show a row twice nor lose one if killed:
//
//  1. the new part's files are written, synced, under .dsbatch/compacting;
//  2. its manifest, naming the parts it replaces, is written and synced;
//  3. the replaced parts' files and manifests are removed;
//  4. the new files are renamed into place.
//
// A reader may miss the rows between 3 and 4, never sees them twice. On
// opening, a manifest that replaces parts and whose files are all in
// compacting or in place is carried forward (3 and 4 redone); one whose
// files are not all written is dropped, the parts it would replace intact.

const compactingDir = "compacting" // in stateDir: <part>.<table>.parquet

func (o *outDir) compactingPath(part, table string) string {
	return o.path(stateDir, compactingDir, part+"."+table+".parquet")
}

// rewriteReady reports whether every file of the replacing part m is
// written, in compacting or in place.
func (o *outDir) rewriteReady(m *manifest) bool {
	for _, t := range m.Tables {
		if _, err := os.Stat(m.file(o, t)); err == nil {
			continue
		}
		if _, err := os.Stat(o.compactingPath(m.Part, t)); err != nil {
			return false
		}
	}
	return len(m.Tables) > 0
}

// finishRewrite does steps 3 and 4 of the replacing part m.
func (o *outDir) finishRewrite(m *manifest) error {
	for _, old := range m.Replaces {
		for _, t := range tableDirs() {
			if err := os.Remove(o.path(t, old+".parquet")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := os.Remove(o.manifestPath(old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, t := range append(append([]string(nil), m.Tables...), eventsDir) {
		from := o.compactingPath(m.Part, t)
		if _, err := os.Stat(from); err != nil {
			continue // in place already, or no events
		}
		if err := atomicfile.Rename(from, m.file(o, t)); err != nil {
			return err
		}
	}
	return nil
}

// dropRewrite removes the files of a replacing part not all written.
func (o *outDir) dropRewrite(m *manifest) error {
	for _, t := range tableDirs() {
		if err := os.Remove(o.compactingPath(m.Part, t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Remove(o.manifestPath(m.Part))
}

// rewriteParts gathers the parts ms into one, its rows sorted by video as
// every part's (events too, where some of ms have them), in the order the
// comment above gives, and returns it. The rows of ms are held in memory:
// ms should hold about a part's rows.
func (o *outDir) rewriteParts(ctx context.Context, ms []*manifest, track bool, mem memory.Allocator) (*manifest, error) {
	m := &manifest{Part: newPartName(), Rows: map[string]int64{}}
	for _, old := range ms {
		m.Replaces = append(m.Replaces, old.Part)
		m.Videos = append(m.Videos, old.Videos...)
	}
	sort.Slice(m.Videos, func(i, j int) bool { return m.Videos[i].VideoID < m.Videos[j].VideoID })
	tables := rowTables(track)
	for _, old := range ms {
		if _, err := os.Stat(old.file(o, eventsDir)); err == nil {
			tables = append(tables, export.EventsTable)
			break
		}
	}
	for _, t := range tables {
		var files []string
		for _, old := range ms {
			if _, err := os.Stat(old.file(o, t.Name)); err == nil || t.Name != eventsDir {
				files = append(files, old.file(o, t.Name))
			}
		}
		rows, err := o.rewriteTable(ctx, files, t, o.compactingPath(m.Part, t.Name), mem)
		if err != nil {
			return nil, fmt.Errorf("compact %s: %w", o.root, err)
		}
		if t.Name != eventsDir {
			m.Tables = append(m.Tables, t.Name)
			m.Rows[t.Name] = rows
		}
	}
	if err := writeManifest(o.manifestPath(m.Part), m); err != nil {
		return nil, err
	}
	return m, o.finishRewrite(m)
}

// rewriteTable writes the rows of files, a table's parts, to path (synced),
// video after video in video_id order, and returns the rows written.
func (o *outDir) rewriteTable(ctx context.Context, files []string, t export.Table, path string, mem memory.Allocator) (int64, error) {
	type run struct {
		rec    arrow.Record
		lo, hi int64
	}
	var recs []arrow.Record
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	byVideo := map[int64][]run{}
	for _, f := range files {
		err := export.ReadStage(ctx, f, mem, func(rec arrow.Record) error {
			rec.Retain()
			recs = append(recs, rec)
			ids, ok := rec.Column(0).(*array.Int64)
			if !ok || rec.Schema().Field(0).Name != "video_id" {
				return fmt.Errorf("%s: first column is not video_id", f)
			}
			for lo := 0; lo < ids.Len(); {
				hi := lo
				for hi < ids.Len() && ids.Value(hi) == ids.Value(lo) {
					hi++
				}
				byVideo[ids.Value(lo)] = append(byVideo[ids.Value(lo)], run{rec, int64(lo), int64(hi)})
				lo = hi
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	ids := make([]int64, 0, len(byVideo))
	for id := range byVideo {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	w := export.NewPartWriter(path, t, mem)
	if len(recs) > 0 {
		// The schema, for a table of no rows.
		empty := recs[0].NewSlice(0, 0)
		err := w.Write(empty)
		empty.Release()
		if err != nil {
			return 0, err
		}
	}
	for _, id := range ids {
		for _, r := range byVideo[id] {
			s := r.rec.NewSlice(r.lo, r.hi)
			err := w.Write(s)
			s.Release()
			if err != nil {
				w.Abort()
				return 0, err
			}
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Rows(), w.Publish()
}

// smallParts groups the parts of fewer than rows/4 detections into runs
// of at most rows detections, by name; groups of one are left out.
func smallParts(parts []*manifest, rows int64) [][]*manifest {
	var small []*manifest
	for _, m := range parts {
		if m.Rows[detectionsDir] < rows/4 {
			small = append(small, m)
		}
	}
	sort.Slice(small, func(i, j int) bool { return strings.Compare(small[i].Part, small[j].Part) < 0 })
	var groups [][]*manifest
	var cur []*manifest
	var n int64
	for _, m := range small {
		if len(cur) > 0 && n+m.Rows[detectionsDir] > rows {
			groups = append(groups, cur)
			cur, n = nil, 0
		}
		cur = append(cur, m)
		n += m.Rows[detectionsDir]
	}
	groups = append(groups, cur)
	var out [][]*manifest
	for _, g := range groups {
		if len(g) > 1 {
			out = append(out, g)
		}
	}
	return out
}
