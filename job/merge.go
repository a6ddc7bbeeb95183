package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// ErrShardsIncomplete is returned by Merge when shards are missing, did not
// finish, or disagree; the report says which.
var ErrShardsIncomplete = errors.New("shards incomplete")

// MergeOptions configure Merge.
type MergeOptions struct {
	// Partial merges the shards that finished even when others are missing
	// or unfinished; the report still lists them.
	Partial bool
	Mem     memory.Allocator
}

// ShardState is what Merge found in one shard's folder.
type ShardState struct {
	Dir   string `json:"dir"`
	Shard Shard  `json:"shard"`
	// State is "finished", "interrupted", "running" or "unfinished" (no
	// run.json newer than its results: killed, or still starting).
	State    string `json:"state"`
	Videos   int    `json:"videos"`
	Done     int    `json:"done"`
	Failed   int    `json:"failed"`
	Problem  string `json:"problem,omitempty"`
	settings Settings
	records  map[int64]export.Video
	parts    []*manifest
	root     *outDir
}

// MergeReport is what Merge found and did.
type MergeReport struct {
	Dest       string       `json:"dest"`
	Count      int          `json:"shard_count"`
	Shards     []ShardState `json:"shards"`
	Missing    []int        `json:"missing"`
	Problems   []string     `json:"problems"`
	Videos     int          `json:"videos"`
	Done       int          `json:"done"`
	Failed     []Failure    `json:"failed"`
	Frames     int64        `json:"frames_inferred"`
	Detections int64        `json:"detections"`
	// MergedShards counts the shards merged.
	MergedShards int  `json:"merged_shards"`
	Linked       int  `json:"files_linked"`
	Copied       int  `json:"files_copied"`
	Merged       bool `json:"merged"`
}

// Merge gathers the shards of a run into dest, which then reads like the
// output of one unsharded run: detections/ and tracks/ (hard links to the
// shards' files, copies across file systems), videos.parquet over every
// video, run.json, and the per-video records that let a later run resume.
//
// sources are shard folders, or folders holding shards/ (a run's shared
// --out). Merge checks that the shards agree on settings and shard count,
// that every index is there exactly once, and that each shard's last run
// finished; otherwise it returns ErrShardsIncomplete with the report,
// writing nothing unless opts.Partial. Merging again gives the same result.
func Merge(dest string, sources []string, opts MergeOptions) (*MergeReport, error) {
	if opts.Mem == nil {
		opts.Mem = memory.NewGoAllocator()
	}
	rep := &MergeReport{Dest: dest, Missing: []int{}, Problems: []string{}, Failed: []Failure{}}
	dirs, err := shardDirs(dest, sources)
	if err != nil {
		return rep, err
	}
	for _, d := range dirs {
		rep.Shards = append(rep.Shards, inspectShard(d))
	}
	usable := checkShards(rep)
	if len(usable) == 0 || (!opts.Partial && (len(rep.Missing) > 0 || len(rep.Problems) > 0)) {
		return rep, fmt.Errorf("merge into %s: %w: %s", dest, ErrShardsIncomplete, rep.summary())
	}

	out, err := openOut(dest)
	if err != nil {
		return rep, err
	}
	defer out.close()
	if err := out.checkSettings(usable[0].settings, false); err != nil {
		return rep, err
	}
	state, err := out.loadState(context.Background(), usable[0].settings.Track, true, opts.Mem)
	if err != nil {
		return rep, err
	}
	records := state.records
	owner := map[int64]string{}
	merged := map[string]bool{} // parts now in dest from the shards
	for _, s := range usable {
		ids := make([]int64, 0, len(s.records))
		for id := range s.records {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			rec := s.records[id]
			if o, ok := owner[id]; ok {
				return rep, fmt.Errorf("merge into %s: %s is in %s and in %s: were the shards run over the same paths?", dest, rec.Path, o, s.Dir)
			}
			owner[id] = s.Dir
		}
	}
	// Parts of an earlier merge holding videos the shards now hold in other
	// parts (a shard rerun since): replaced by the shards' parts.
	for _, m := range state.parts {
		for _, v := range m.Videos {
			if _, ok := owner[v.VideoID]; ok && !shardsHold(usable, m.Part) {
				if err := out.removePart(m); err != nil {
					return rep, err
				}
				break
			}
		}
	}
	for _, s := range usable {
		// A part's manifest first, then its files: an interrupted merge
		// leaves a part the next opening rolls back (parts.go).
		for _, m := range s.parts {
			if err := writeManifest(out.manifestPath(m.Part), m); err != nil {
				return rep, err
			}
			for _, t := range append(slices.Clone(m.Tables), eventsDir) {
				linked, err := linkOrCopy(m.file(s.root, t), m.file(out, t))
				if errors.Is(err, fs.ErrNotExist) && t == eventsDir {
					continue // no events computed for it
				}
				if err != nil {
					return rep, fmt.Errorf("merge part %s of %s: %w", m.Part, s.Dir, err)
				}
				if linked {
					rep.Linked++
				} else {
					rep.Copied++
				}
			}
			merged[m.Part] = true
			for _, v := range m.Videos {
				records[v.VideoID] = v
			}
		}
		for id, rec := range s.records {
			if rec.Status == "done" {
				continue // in a part of the shard
			}
			records[id] = rec
			if err := out.saveRecord(rec); err != nil {
				return rep, err
			}
		}
	}
	for _, rec := range records {
		rep.Videos++
		switch rec.Status {
		case "done":
			rep.Done++
		default:
			rep.Failed = append(rep.Failed, Failure{Path: rec.Path, Error: rec.Error})
		}
		rep.Frames += rec.FramesInferred
		rep.Detections += rec.Detections
	}
	sort.Slice(rep.Failed, func(i, j int) bool { return rep.Failed[i].Path < rep.Failed[j].Path })
	if err := out.writeVideosTable(records, opts.Mem); err != nil {
		return rep, err
	}
	rep.Merged, rep.MergedShards = true, len(usable)
	run := map[string]any{"settings": usable[0].settings, "merge": rep, "merged_at": time.Now().UTC()}
	if err := writeJSON(out.path(runFile), run); err != nil {
		return rep, err
	}
	if len(rep.Missing) > 0 || len(rep.Problems) > 0 {
		return rep, fmt.Errorf("merged into %s what finished: %w: %s", dest, ErrShardsIncomplete, rep.summary())
	}
	return rep, nil
}

// summary is one line naming what is missing or wrong.
func (r *MergeReport) summary() string {
	var parts []string
	if len(r.Shards) == 0 {
		parts = append(parts, "no shards found")
	}
	if len(r.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("missing shards %v of %d", r.Missing, r.Count))
	}
	parts = append(parts, r.Problems...)
	return strings.Join(parts, "; ")
}

// shardDirs expands sources into shard folders, sorted and without dest.
func shardDirs(dest string, sources []string) ([]string, error) {
	destAbs, _ := filepath.Abs(dest)
	seen := map[string]bool{}
	var dirs []string
	add := func(d string) {
		abs, err := filepath.Abs(d)
		if err != nil || abs == destAbs || seen[abs] {
			return
		}
		seen[abs] = true
		dirs = append(dirs, d)
	}
	for _, src := range sources {
		entries, err := os.ReadDir(filepath.Join(src, shardsDir))
		switch {
		case err == nil:
			for _, e := range entries {
				if e.IsDir() {
					add(filepath.Join(src, shardsDir, e.Name()))
				}
			}
		case errors.Is(err, fs.ErrNotExist):
			if _, err := os.Stat(filepath.Join(src, stateDir, settingsFile)); err != nil {
				return nil, fmt.Errorf("%s: not a dsbatch output folder (no %s) and no %s/ inside", src, filepath.Join(stateDir, settingsFile), shardsDir)
			}
			add(src)
		default:
			return nil, fmt.Errorf("%s: %w", src, err)
		}
	}
	sort.Strings(dirs)
	return dirs, nil
}

// inspectShard reads a shard folder without writing to it.
func inspectShard(dir string) ShardState {
	s := ShardState{Dir: dir, root: &outDir{root: dir}}
	fail := func(state, format string, a ...any) ShardState {
		s.State, s.Problem = state, fmt.Sprintf(format, a...)
		return s
	}
	b, err := os.ReadFile(s.root.path(stateDir, settingsFile))
	if err != nil {
		return fail("unfinished", "no settings: %v", err)
	}
	if err := json.Unmarshal(b, &s.settings); err != nil {
		return fail("unfinished", "settings: %v", err)
	}
	if held, err := lockHeld(s.root.path(stateDir, lockFile)); err != nil {
		return fail("unfinished", "lock: %v", err)
	} else if held {
		return fail("running", "a run holds its lock")
	}
	var run struct {
		Shard   Shard `json:"shard"`
		Summary struct {
			Interrupted bool `json:"interrupted"`
		} `json:"summary"`
	}
	runPath := s.root.path(runFile)
	info, err := os.Stat(runPath)
	if err != nil {
		return fail("unfinished", "no %s: its run was killed or never started", runFile)
	}
	if b, err = os.ReadFile(runPath); err == nil {
		err = json.Unmarshal(b, &run)
	}
	if err != nil {
		return fail("unfinished", "%s: %v", runFile, err)
	}
	s.Shard = run.Shard
	st, err := s.root.loadState(context.Background(), s.settings.Track, false, nil)
	if err != nil {
		return fail("unfinished", "%v", err)
	}
	s.records, s.parts = st.records, st.parts
	for _, r := range s.records {
		s.Videos++
		if r.Status == "done" {
			s.Done++
		} else {
			s.Failed++
		}
	}
	if run.Summary.Interrupted {
		return fail("interrupted", "its last run was interrupted: rerun it to resume")
	}
	if len(st.staged) > 0 || st.broken > 0 {
		return fail("unfinished", "rows not gathered into parts: its last run was killed; rerun it to resume")
	}
	newest, err := newestRecord(s.root)
	if err != nil {
		return fail("unfinished", "records: %v", err)
	}
	if newest.After(info.ModTime()) {
		return fail("unfinished", "results newer than its %s: its last run was killed; rerun it to resume", runFile)
	}
	s.State = "finished"
	return s
}

// checkShards fills the report's count, missing indices and problems, and
// returns the shards that can be merged.
func checkShards(rep *MergeReport) []*ShardState {
	sort.SliceStable(rep.Shards, func(i, j int) bool { return rep.Shards[i].Shard.Index < rep.Shards[j].Shard.Index })
	// The settings and shard count most finished shards have are the run's;
	// a shard that differs is the odd one out.
	var ref *ShardState
	votes := map[string]int{}
	for i := range rep.Shards {
		s := &rep.Shards[i]
		if s.State != "finished" {
			continue
		}
		key := fmt.Sprintf("%d %+v", max(s.Shard.Count, 1), s.settings)
		if votes[key]++; ref == nil || votes[key] > votes[fmt.Sprintf("%d %+v", max(ref.Shard.Count, 1), ref.settings)] {
			ref = s
		}
	}
	if ref != nil {
		rep.Count = max(ref.Shard.Count, 1)
	}
	var usable []*ShardState
	byIndex := map[int]string{}
	for i := range rep.Shards {
		s := &rep.Shards[i]
		if s.State != "finished" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %s", s.Dir, s.Problem))
			continue
		}
		if max(s.Shard.Count, 1) != rep.Count {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: shard %s, but the run's shards are of %d", s.Dir, s.Shard, rep.Count))
			continue
		}
		if d := ref.settings.diff(s.settings); d != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: settings differ from the other shards' (%s)", s.Dir, strings.ReplaceAll(d, ", now ", ", here ")))
			continue
		}
		if other, ok := byIndex[s.Shard.Index]; ok {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: shard %s is also in %s", s.Dir, s.Shard, other))
			continue
		}
		byIndex[s.Shard.Index] = s.Dir
		usable = append(usable, s)
	}
	for i := 0; i < rep.Count; i++ {
		if _, ok := byIndex[i]; !ok {
			rep.Missing = append(rep.Missing, i)
		}
	}
	return usable
}

// lockHeld reports whether a live process holds the flock on path.
func lockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, nil
		}
		return false, err
	}
	return false, nil // closing f drops the lock just taken
}

// newestRecord returns the latest modification time of o's records and
// part manifests.
func newestRecord(o *outDir) (time.Time, error) {
	var t time.Time
	for _, dir := range []string{o.path(stateDir, recordsDir), o.path(stateDir, partsDir)} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return t, err
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				return t, err
			}
			if info.ModTime().After(t) {
				t = info.ModTime()
			}
		}
	}
	return t, nil
}

// shardsHold reports whether one of the shards has the part named part.
func shardsHold(shards []*ShardState, part string) bool {
	for _, s := range shards {
		for _, m := range s.parts {
			if m.Part == part {
				return true
			}
		}
	}
	return false
}

// linkOrCopy makes dst the same file as src: a hard link, or a copy where
// links cannot be made (another file system). dst is replaced atomically;
// it reports whether it linked.
func linkOrCopy(src, dst string) (bool, error) {
	si, err := os.Stat(src)
	if err != nil {
		return false, err
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(si, di) {
		return true, nil
	}
	tmp := filepath.Join(filepath.Dir(dst), fmt.Sprintf(".%s.%d.tmp", filepath.Base(dst), os.Getpid()))
	os.Remove(tmp)
	linked := true
	if err := os.Link(src, tmp); err != nil {
		linked = false
		if err := copyFile(src, tmp); err != nil {
			os.Remove(tmp)
			return false, err
		}
	}
	if err := atomicfile.Rename(tmp, dst); err != nil {
		return false, err
	}
	return linked, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Sync(), out.Close())
}
