// Package atomicfile writes files that readers see whole or not at all:
// each is written under a temporary name beside its final one, synced,
// and renamed over it, and the folder is synced. It is a package of its
// own because every stage that writes files (outputs, run state, caches,
// previews) needs the same guarantee and the same temporary names, which
// the cleaners of interrupted runs look for.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Temporary files are ".NAME.PID.RANDOM.tmp": hidden, and matched by no
// glob of the final names (*.parquet); the writer's process ID tells a
// dead writer's leftovers from a live one's.
const suffix = ".tmp"

// Create opens a new temporary file beside path (creating path's folder),
// for Commit to rename to path.
func Create(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, fmt.Sprintf(".%s.%d.*%s", filepath.Base(path), os.Getpid(), suffix))
}

// Commit syncs and closes f, a file from Create, and renames it to path;
// on any error the temporary file is removed.
func Commit(f *os.File, path string) error {
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return rename(f.Name(), path)
}

// CommitUnsynced closes f, a file from Create, and renames it to path
// without syncing: after a crash of the process the file is whole or
// absent, but after a power loss it may be empty or short. It is for files
// a later step reads back and checks before relying on them (a run's
// staged rows and per-video records, made durable when gathered into a
// part), where a sync per file would bound the pace.
func CommitUnsynced(f *os.File, path string) error {
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("commit %s: %w", path, err)
	}
	return nil
}

// WriteUnsynced is Write committed with CommitUnsynced.
func WriteUnsynced(path string, write func(io.Writer) error) error {
	return writeWith(path, write, CommitUnsynced)
}

// Abort closes and removes f, a file from Create.
func Abort(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// Write writes path whole through write, or leaves it as it was.
func Write(path string, write func(io.Writer) error) error {
	return writeWith(path, write, Commit)
}

// writeWith writes a temporary file through write and commits it to path
// with commit.
func writeWith(path string, write func(io.Writer) error, commit func(*os.File, string) error) error {
	f, err := Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := write(f); err != nil {
		Abort(f)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return commit(f, path)
}

// Rename commits tmp, a complete file written by other means (a muxer
// that opens files by name, a hard link), to path: synced, renamed, the
// folder synced. tmp is removed on error.
func Rename(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err == nil {
		err = errors.Join(f.Sync(), f.Close())
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return rename(tmp, path)
}

func rename(tmp, path string) error {
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("commit %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveTemps deletes every temporary file in dir: for a folder only this
// process writes to (it holds the folder's lock), whose other temporary
// files are an interrupted run's.
func RemoveTemps(dir string) error {
	return remove(dir, func(int) bool { return true })
}

// RemoveDeadTemps deletes the temporary files in dir of processes that
// have ended, leaving those of live writers.
func RemoveDeadTemps(dir string) error {
	return remove(dir, func(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) })
}

func remove(dir string, dead func(pid int) bool) error {
	matches, err := filepath.Glob(filepath.Join(dir, ".*"+suffix))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if pid, ok := writer(filepath.Base(m)); ok && !dead(pid) {
			continue
		}
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writer is the process ID in a temporary file's name; ok is false for
// names of another form (left by older versions: anyone's to remove).
func writer(name string) (int, bool) {
	parts := strings.Split(strings.TrimSuffix(name, suffix), ".")
	if len(parts) < 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	return pid, err == nil && pid > 0
}
