package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// An output's rows are kept in parts: Parquet files of many videos each,
// rows sorted by (video_id, frame_index), so that queries over 100k
// videos open a few dozen files, not 200k (docs/SCHEMA.md, "Layout").
//
// A finished video's rows wait for their part in memory; a video with more
// than videoMemRows rows of a table goes to a stage file per table under
// .dsbatch/staging as its rows come (unsynced), and its record is saved,
// so that a rerun finds it. The compactors gather finished videos into a
// part once they hold enough rows (or have waited long enough, or the run
// ends):
//
//  1. each table's part is written and finished under a temporary name;
//  2. the part's manifest (.dsbatch/parts/NAME.json: its tables and the
//     records of its videos) is written and synced;
//  3. each table's part is synced and renamed into place (published);
//  4. the videos' stage files and per-video records are removed.
//
// loadState repairs a folder left by a killed run: a manifest whose parts
// are not all published is rolled back (its published parts removed: their
// rows are still staged, or their videos are done again), stage files and
// records of videos in a published part are removed, and staged videos
// whose record says done are gathered again. So a reader of
// detections/*.parquet never sees a row twice nor a partial file, and a
// kill loses at most the videos not yet in a part, which the rerun does
// again (stage files and records are not synced: after a power loss a
// short one is found and its video done again).

const (
	stagingDir = "staging" // in stateDir: <video_id>.<table>.arrow
	// videoMemRows is how many rows of a video's table are held in memory
	// on their way to a part; a video with more goes to a stage file.
	videoMemRows = 64 << 10
	partsDir     = "parts" // in stateDir: a manifest per part
	// partRows is the default size of a part, in detections.
	partRows = 1 << 20
	// maskRowsFactor divides the rows held in memory and a part's rows
	// when rows hold masks: a segmentation model's row is tens of times
	// wider than a detector's.
	maskRowsFactor = 32
	// partVideos bounds the videos of a part, so that its manifest stays
	// small even for videos without detections.
	partVideos = 20000
	// partAge is how long a staged video waits for a part by default:
	// slow runs publish their rows this often.
	partAge = 10 * time.Minute
)

// ErrPerVideoLayout means an output folder holds one Parquet file per
// video, the layout of dsbatch before parts.
var ErrPerVideoLayout = errors.New("output holds one Parquet file per video (written by an earlier dsbatch)")

// manifest is what a part holds: written before the part is published,
// it is how a run knows which videos are in which part.
type manifest struct {
	Part   string           `json:"part"`   // file name (without .parquet) in each table's folder
	Tables []string         `json:"tables"` // the tables written, each a file
	Rows   map[string]int64 `json:"rows"`   // rows per table
	Videos []export.Video   `json:"videos"` // records of its videos, by video_id
	// Replaces names the parts a rewrite of small parts gathered
	// (rewrite.go): they are removed once this part is in place.
	Replaces []string `json:"replaces,omitempty"`
}

func (m *manifest) file(o *outDir, table string) string {
	return o.path(table, m.Part+".parquet")
}

// published reports whether every table file of m is in place.
func (m *manifest) published(o *outDir) bool {
	for _, t := range m.Tables {
		if _, err := os.Stat(m.file(o, t)); err != nil {
			return false
		}
	}
	return len(m.Tables) > 0
}

// newPartName names a part: sortable by time, unique across shards and
// runs by a random suffix.
func newPartName() string {
	return fmt.Sprintf("part-%s-%08x", time.Now().UTC().Format("20060102T150405"), rand.Uint32())
}

// rowTables are the tables a run writes and parts hold: detections, and
// tracks when tracking. (Events are derived from them by WriteEvents, a
// file per part named as the part.)
func rowTables(track bool) []export.Table {
	if track {
		return []export.Table{export.DetectionsTable, export.TracksTable}
	}
	return []export.Table{export.DetectionsTable}
}

func (o *outDir) stagePath(id int64, table string) string {
	return o.path(stateDir, stagingDir, fmt.Sprintf("%016x.%s.arrow", id, table))
}

func (o *outDir) manifestPath(part string) string {
	return o.path(stateDir, partsDir, part+".json")
}

// staged is a finished video on its way to a part: its record and its
// rows of each table, in memory or in stage files.
type staged struct {
	rec  export.Video
	rows map[string]*export.Staged // by table; a table missing: its stage file
}

// rowsOf returns v's rows of table.
func (o *outDir) rowsOf(v staged, table string) (*export.Staged, error) {
	if s := v.rows[table]; s != nil {
		return s, nil
	}
	path := o.stageFile(v.rec.VideoID, table)
	if path == "" {
		return nil, fmt.Errorf("no staged %s of %s", table, v.rec.Path)
	}
	return &export.Staged{Path: path}, nil
}

func (v staged) release() {
	for _, s := range v.rows {
		s.Release()
	}
}

// outState is what an output folder holds.
type outState struct {
	records map[int64]export.Video // every video's record
	parts   []*manifest            // published parts, by name
	partOf  map[int64]string       // part of each video in one
	staged  []staged               // done videos whose rows are in stage files, by video_id
	// broken counts what repair found wrong: parts rolled back, stage
	// files and records dropped (their videos are done again).
	broken int
}

// perVideoName is a table file of the per-video layout.
var perVideoName = regexp.MustCompile(`^[0-9a-f]{16}\.parquet$`)

// checkLayout refuses a folder of the per-video layout.
func (o *outDir) checkLayout() error {
	entries, err := os.ReadDir(o.path(detectionsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if perVideoName.MatchString(e.Name()) {
			return fmt.Errorf("%s: %w: convert it with `dsbatch compact %s`, then rerun", o.root, ErrPerVideoLayout, o.root)
		}
	}
	return nil
}

// loadState reads the folder's records and parts. With repair (the caller
// holds the folder's lock) it also puts right what a killed run left, as
// the package comment says; without, it reads only, ignoring what is
// incomplete, and staged counts what a run has not yet gathered.
func (o *outDir) loadState(ctx context.Context, track bool, repair bool, mem memory.Allocator) (*outState, error) {
	if err := o.checkLayout(); err != nil {
		return nil, err
	}
	st := &outState{records: map[int64]export.Video{}, partOf: map[int64]string{}}
	remove := func(path string) error {
		if !repair {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	// Parts: published ones hold their videos; the others are rolled back.
	names, err := listDir(o.path(stateDir, partsDir), ".json")
	if err != nil {
		return nil, err
	}
	tables := tableDirs()
	known := map[string]bool{}
	// Rewrites first (rewrite.go): carried forward when their files are
	// written, else dropped; the parts a live one replaces are not read.
	manifests := map[string]*manifest{}
	replaced := map[string]bool{}
	for _, n := range names {
		m, err := readManifest(o.path(stateDir, partsDir, n))
		if err != nil {
			continue
		}
		manifests[n] = m
		if len(m.Replaces) == 0 {
			continue
		}
		switch ready := o.rewriteReady(m); {
		case repair && ready:
			if err := o.finishRewrite(m); err != nil {
				return nil, err
			}
		case repair:
			if err := o.dropRewrite(m); err != nil {
				return nil, err
			}
			delete(manifests, n)
			continue
		case !m.published(o):
			continue // read only: the replaced parts are still the ones
		}
		for _, old := range m.Replaces {
			replaced[old+".json"] = true
		}
	}
	if repair { // a rewrite's files of no manifest: it was killed before it
		files, err := listDir(o.path(stateDir, compactingDir), ".parquet")
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			part, _, _ := strings.Cut(f, ".")
			if manifests[part+".json"] == nil {
				if err := remove(o.path(stateDir, compactingDir, f)); err != nil {
					return nil, err
				}
			}
		}
	}
	names, err = listDir(o.path(stateDir, partsDir), ".json")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if replaced[n] {
			continue
		}
		m, ok := manifests[n]
		if ok && m.published(o) {
			st.parts = append(st.parts, m)
			known[m.Part] = true
			for _, v := range m.Videos {
				st.records[v.VideoID] = v
				st.partOf[v.VideoID] = m.Part
			}
			continue
		}
		st.broken++
		part := strings.TrimSuffix(n, ".json")
		for _, t := range tables {
			if err := remove(o.path(t, part+".parquet")); err != nil {
				return nil, err
			}
		}
		if err := remove(o.path(stateDir, partsDir, n)); err != nil {
			return nil, err
		}
	}
	// Table files of no published part: a rollback's leftovers, or events
	// of a part since replaced.
	for _, t := range tables {
		files, err := listDir(o.path(t), ".parquet")
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !known[strings.TrimSuffix(f, ".parquet")] {
				if err := remove(o.path(t, f)); err != nil {
					return nil, err
				}
			}
		}
	}
	// Per-video records: of videos not in a part (failed, staged).
	recs, err := listDir(o.path(stateDir, recordsDir), ".json")
	if err != nil {
		return nil, err
	}
	for _, n := range recs {
		path := o.path(stateDir, recordsDir, n)
		id, idErr := strconv.ParseUint(strings.TrimSuffix(n, ".json"), 16, 63)
		if _, inPart := st.partOf[int64(id)]; idErr == nil && inPart {
			if err := remove(path); err != nil { // gathered: the part's record is the one
				return nil, err
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var v export.Video
		if err := json.Unmarshal(b, &v); err != nil || v.VideoID != int64(id) {
			st.broken++ // a damaged record: the video is simply done again
			if err := remove(path); err != nil {
				return nil, err
			}
			continue
		}
		st.records[v.VideoID] = v
	}
	// Stage files: kept for done videos not in a part, whole, with every
	// table the run writes; the rest removed.
	stageNames := map[int64][]string{}
	files, err := listDir(o.path(stateDir, stagingDir), "")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		hex, _, _ := strings.Cut(f, ".")
		id, err := strconv.ParseUint(hex, 16, 63)
		if err != nil || strings.HasPrefix(f, ".") {
			continue
		}
		stageNames[int64(id)] = append(stageNames[int64(id)], f)
	}
	want := rowTables(track)
	stagedSet := map[int64]bool{}
	for id, fs := range stageNames {
		v, ok := st.records[id]
		_, inPart := st.partOf[id]
		keep := ok && !inPart && v.Status == "done"
		if keep {
			for _, t := range want {
				path := o.stageFile(id, t.Name)
				if path == "" || (repair && export.CheckStage(ctx, path, mem) != nil) {
					keep = false
				}
			}
		}
		if keep {
			st.staged = append(st.staged, staged{rec: v})
			stagedSet[id] = true
			continue
		}
		// A done video whose rows are cut short is done again (below).
		for _, f := range fs {
			if err := remove(o.path(stateDir, stagingDir, f)); err != nil {
				return nil, err
			}
		}
	}
	// A done record whose rows are nowhere: the video is done again.
	for id, v := range st.records {
		if v.Status != "done" {
			continue
		}
		if _, inPart := st.partOf[id]; inPart || stagedSet[id] {
			continue
		}
		delete(st.records, id)
		st.broken++
		if err := remove(o.recordPath(id)); err != nil {
			return nil, err
		}
	}
	sort.Slice(st.staged, func(i, j int) bool { return st.staged[i].rec.VideoID < st.staged[j].rec.VideoID })
	return st, nil
}

// stageFile is the stage file of video id's rows of table: Arrow IPC as a
// run writes it, or Parquet as `dsbatch compact` moves a per-video file;
// "" when there is none.
func (o *outDir) stageFile(id int64, table string) string {
	p := o.stagePath(id, table)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	p = strings.TrimSuffix(p, ".arrow") + ".parquet"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// listDir lists the names in dir ending in suffix, without hidden
// (temporary) files; a missing dir lists nothing.
func listDir(dir, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, suffix) {
			names = append(names, n)
		}
	}
	return names, nil
}

func readManifest(path string) (*manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Part == "" || m.Part+".json" != filepath.Base(path) {
		return nil, fmt.Errorf("%s: names part %q", path, m.Part)
	}
	return &m, nil
}

// gather writes the rows of the finished videos vs (sorted by video_id)
// into a new part, publishes it and removes what it replaces, in the
// order the package comment gives. The rows in memory are released.
func (o *outDir) gather(ctx context.Context, vs []staged, track bool, mem memory.Allocator) (*manifest, error) {
	defer func() {
		for _, v := range vs {
			v.release()
		}
	}()
	m := &manifest{Part: newPartName(), Rows: map[string]int64{}}
	for _, v := range vs {
		m.Videos = append(m.Videos, v.rec)
	}
	var writers []*export.PartWriter
	abort := func() {
		for _, w := range writers {
			w.Abort()
		}
	}
	for _, t := range rowTables(track) {
		w := export.NewPartWriter(m.file(o, t.Name), t, mem)
		writers = append(writers, w)
		for _, v := range vs {
			s, err := o.rowsOf(v, t.Name)
			if err == nil {
				err = w.Append(ctx, s)
			}
			if err != nil {
				abort()
				return nil, fmt.Errorf("part %s: %s of %s: %w", m.Part, t.Name, v.rec.Path, err)
			}
		}
		if err := w.Close(); err != nil {
			abort()
			return nil, err
		}
		m.Tables = append(m.Tables, t.Name)
		m.Rows[t.Name] = w.Rows()
	}
	if err := writeManifest(o.manifestPath(m.Part), m); err != nil {
		abort()
		return nil, err
	}
	for _, w := range writers {
		if err := w.Publish(); err != nil {
			return nil, err // the folder's next opening rolls the part back
		}
	}
	for _, v := range vs {
		for _, t := range rowTables(track) {
			if s := v.rows[t.Name]; s == nil || s.Path != "" {
				os.Remove(o.stageFile(v.rec.VideoID, t.Name))
			}
		}
		os.Remove(o.recordPath(v.rec.VideoID))
	}
	return m, nil
}

// removePart removes part m: its files first, so that no reader sees a
// part of it, then its manifest.
func (o *outDir) removePart(m *manifest) error {
	for _, t := range tableDirs() {
		if err := os.Remove(m.file(o, t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Remove(o.manifestPath(m.Part))
}

// compactor gathers the videos a run finishes into parts, in one
// goroutine: rows reach parts in sizes the run's pace does not decide.
type compactor struct {
	o     *outDir
	track bool
	mem   memory.Allocator
	rows  int64         // a part's detections
	age   time.Duration // the longest a staged video waits
	parts int           // parts written
	// split is the parts the videos left at the run's end are gathered
	// into, side by side (at most; 0 or 1: one), so that the last parts'
	// encoding, which nothing overlaps, uses the cores the run leaves idle.
	split int

	pending []staged
	npend   int64
	since   time.Time
}

// add queues a finished video, gathering a part when enough wait.
func (c *compactor) add(ctx context.Context, v staged) error {
	if len(c.pending) == 0 {
		c.since = time.Now()
	}
	c.pending = append(c.pending, v)
	c.npend += v.rec.Detections
	if c.npend >= c.rows || len(c.pending) >= partVideos {
		return c.flush(ctx)
	}
	return nil
}

// flush gathers every queued video into a part.
func (c *compactor) flush(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	vs := c.pending
	sort.Slice(vs, func(i, j int) bool { return vs[i].rec.VideoID < vs[j].rec.VideoID })
	if _, err := c.o.gather(ctx, vs, c.track, c.mem); err != nil {
		return err
	}
	c.parts++
	c.pending, c.npend = nil, 0
	return nil
}

// finish gathers every queued video at the run's end into up to c.split
// parts side by side, each of contiguous video IDs and about as many rows.
func (c *compactor) finish(ctx context.Context) error {
	if c.split <= 1 || len(c.pending) < 2 {
		return c.flush(ctx)
	}
	vs := c.pending
	sort.Slice(vs, func(i, j int) bool { return vs[i].rec.VideoID < vs[j].rec.VideoID })
	per := max(c.npend/int64(c.split), 1)
	var groups [][]staged
	start, rows := 0, int64(0)
	for i, v := range vs {
		rows += v.rec.Detections
		if (rows >= per && len(groups) < c.split-1) || i == len(vs)-1 {
			groups = append(groups, vs[start:i+1])
			start, rows = i+1, 0
		}
	}
	c.pending, c.npend = nil, 0
	var g errgroup.Group
	var done atomic.Int64
	for _, grp := range groups {
		g.Go(func() error {
			if _, err := c.o.gather(ctx, grp, c.track, c.mem); err != nil {
				return err
			}
			done.Add(1)
			return nil
		})
	}
	err := g.Wait()
	c.parts += int(done.Load())
	return err
}

// run gathers the videos of in until it is closed, then the rest. It
// works on when ctx is cancelled (an interrupted run still gathers what
// it finished), and stops at its first error.
func (c *compactor) run(ctx context.Context, in <-chan staged) error {
	ctx = context.WithoutCancel(ctx)
	tick := time.NewTicker(max(c.age/8, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case v, ok := <-in:
			if !ok {
				return c.finish(ctx)
			}
			if err := c.add(ctx, v); err != nil {
				c.drop(in)
				return err
			}
		case <-tick.C:
			if len(c.pending) > 0 && time.Since(c.since) >= c.age {
				if err := c.flush(ctx); err != nil {
					c.drop(in)
					return err
				}
			}
		}
	}
}

// compactors are a run's compactors, reading one channel of finished
// videos: at least two, and one more per 8 CPUs, Parquet encoding being
// the costliest step after the engine. At the run's end each gathers its
// rest into parts side by side (compactor.split), all the CPUs between
// them: a pose model's 2.4 million rows of keypoints took 4 to 5 seconds
// to encode after the last frame on four (H200 machine, 2026-12-02).
type compactors []*compactor

func newCompactors(o *outDir, opts *RunOptions) compactors {
	cs := make(compactors, 2+runtime.GOMAXPROCS(0)/8)
	for i := range cs {
		cs[i] = &compactor{o: o, track: opts.Settings.Track, mem: opts.Mem, rows: opts.PartRows, age: opts.PartAge,
			split: max(runtime.GOMAXPROCS(0)/len(cs), 1)}
		if cs[i].rows <= 0 {
			cs[i].rows = partRows
			if opts.Layout.Masks > 0 {
				cs[i].rows /= maskRowsFactor
			}
		}
		if cs[i].age <= 0 {
			cs[i].age = partAge
		}
	}
	return cs
}

// start runs the compactors in g until in is closed, the first beginning
// with recovered, the videos a killed run left staged.
func (cs compactors) start(ctx context.Context, g *errgroup.Group, in <-chan staged, recovered []staged) {
	for i, c := range cs {
		g.Go(func() error {
			if i == 0 {
				for _, v := range recovered {
					if err := c.add(ctx, v); err != nil {
						return err
					}
				}
			}
			return c.run(ctx, in)
		})
	}
}

// parts counts the parts the compactors wrote.
func (cs compactors) parts() int {
	n := 0
	for _, c := range cs {
		n += c.parts
	}
	return n
}

// drop releases the rows of the videos still queued or sent, after an
// error: the run stops, and they are done again by the next.
func (c *compactor) drop(in <-chan staged) {
	for _, v := range c.pending {
		v.release()
	}
	c.pending = nil
	go func() {
		for v := range in {
			v.release()
		}
	}()
}

// writeManifest writes m to path atomically, synced, as compact JSON (a
// part's manifest holds thousands of records).
func writeManifest(path string, m *manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// writeJSONUnsynced writes v as JSON to path, whole or absent after a
// crash of the process (see atomicfile.CommitUnsynced).
func writeJSONUnsynced(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteUnsynced(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// VideoFiles returns the files of the output folder out that hold video
// id's rows, by table (detections, tracks, events; only those that exist):
// its part's. It reads the parts' manifests and nothing else, and returns
// an error naming the folder when no part holds the video.
func VideoFiles(out string, id int64) (map[string]string, error) {
	o := &outDir{root: out}
	if err := o.checkLayout(); err != nil {
		return nil, err
	}
	names, err := listDir(o.path(stateDir, partsDir), ".json")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		m, err := readManifest(o.path(stateDir, partsDir, n))
		if err != nil || !m.published(o) {
			continue
		}
		for _, v := range m.Videos {
			if v.VideoID != id {
				continue
			}
			files := map[string]string{}
			for _, t := range tableDirs() {
				if _, err := os.Stat(m.file(o, t)); err == nil {
					files[t] = m.file(o, t)
				}
			}
			return files, nil
		}
	}
	return nil, fmt.Errorf("no part of %s holds video %016x", out, id)
}
