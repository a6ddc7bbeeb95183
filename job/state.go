package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// Layout of an output folder.
const (
	stateDir      = ".dsbatch"   // lock, settings, per-video records
	detectionsDir = "detections" // parts (parts.go)
	tracksDir     = "tracks"     // parts, when tracking
	eventsDir     = "events"     // a file per part, from dsbatch events
	videosFile    = "videos.parquet"
	runFile       = "run.json"
	settingsFile  = "settings.json"
	recordsDir    = "videos"
	lockFile      = "lock"
	shardsDir     = "shards" // a sharded run's parts: shards/<i>-of-<n>/
)

// VideoID is the stable identifier of a video: a hash of its absolute
// path, so reruns and other shards give the same file the same ID.
func VideoID(path string) int64 {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	h := fnv.New64a()
	h.Write([]byte(abs))
	return int64(h.Sum64() >> 1)
}

// outDir is an output folder held by this process.
type outDir struct {
	root string
	lock *os.File
}

// videoTables are the folders of the output's row tables, parts in each
// (parts.go): the one list that creating, cleaning and clearing output
// folders, compacting, repairing and rewriting parts go through.
var videoTables = []struct{ dir string }{{detectionsDir}, {tracksDir}, {eventsDir}}

// tableDirs are the folders of videoTables, in order: what code that goes
// over every table's parts ranges over.
func tableDirs() []string {
	ds := make([]string, len(videoTables))
	for i, t := range videoTables {
		ds[i] = t.dir
	}
	return ds
}

// folders are the output's folders: its root, the state's and the tables'.
func (o *outDir) folders() []string {
	ds := []string{o.root, o.path(stateDir), o.path(stateDir, recordsDir), o.path(stateDir, stagingDir), o.path(stateDir, partsDir), o.path(stateDir, compactingDir)}
	for _, t := range videoTables {
		ds = append(ds, o.path(t.dir))
	}
	return ds
}

// ErrLocked means another dsbatch process is writing the output folder.
var ErrLocked = errors.New("output folder in use by another dsbatch run")

// openOut creates root if needed and takes its lock. The lock is an
// advisory flock: the kernel drops it when its process dies, so a crashed
// run never leaves a stale lock behind.
func openOut(root string) (*outDir, error) {
	for _, d := range (&outDir{root: root}).folders() {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("output %s: %w", root, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(root, stateDir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", root, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder, _ := os.ReadFile(filepath.Join(root, stateDir, lockFile))
			return nil, fmt.Errorf("%s: %w (%s)", root, ErrLocked, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	host, _ := os.Hostname()
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d on %s\n", os.Getpid(), host)
	o := &outDir{root: root, lock: f}
	for _, d := range o.folders() {
		if err := atomicfile.RemoveTemps(d); err != nil {
			o.close()
			return nil, err
		}
	}
	return o, nil
}

func (o *outDir) close() {
	if o.lock != nil {
		o.lock.Close() // releases the flock
		o.lock = nil
	}
}

func (o *outDir) path(parts ...string) string {
	return filepath.Join(append([]string{o.root}, parts...)...)
}

func (o *outDir) recordPath(id int64) string {
	return o.path(stateDir, recordsDir, fmt.Sprintf("%016x.json", id))
}

// checkSettings compares the settings of this run with those the folder
// was written with. A first run records them; a different run is refused
// unless force, which clears the folder's results first.
func (o *outDir) checkSettings(s Settings, force bool) error {
	path := o.path(stateDir, settingsFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		var old Settings
		if err := json.Unmarshal(b, &old); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if diff := old.diff(s); diff != "" {
			if !force {
				return fmt.Errorf("%s holds results of other settings (%s): use --force to discard them, or another --out", o.root, diff)
			}
			if err := o.clear(); err != nil {
				return err
			}
		}
	}
	return writeJSON(path, s)
}

// clear removes the results of earlier runs.
func (o *outDir) clear() error {
	dirs := []string{o.path(stateDir, recordsDir), o.path(stateDir, stagingDir), o.path(stateDir, partsDir), o.path(stateDir, compactingDir)}
	for _, t := range videoTables {
		dirs = append(dirs, o.path(t.dir))
	}
	for _, p := range dirs {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{videosFile, runFile} {
		if err := os.Remove(o.path(f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// saveRecord writes a video's record, unsynced: a part's manifest makes
// it durable (parts.go).
func (o *outDir) saveRecord(v export.Video) error {
	return writeJSONUnsynced(o.recordPath(v.VideoID), v)
}

// writeVideosTable writes videos.parquet from every record, sorted by path.
func (o *outDir) writeVideosTable(records map[int64]export.Video, mem allocator) error {
	vs := make([]export.Video, 0, len(records))
	for _, v := range records {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
	return export.WriteVideos(o.path(videosFile), vs, mem)
}

// writeJSON writes v as indented JSON to path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}
