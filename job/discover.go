package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// DefaultExtensions are the file extensions Discover treats as video.
// Besides containers, they include the raw elementary streams that DVRs and
// NVRs export (.h264, .264, .h265, .265, .hevc) and MJPEG.
var DefaultExtensions = []string{"mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "m2ts", "mpg", "mpeg", "flv", "3gp",
	"h264", "264", "h265", "265", "hevc", "mjpeg", "mjpg"}

// DiscoverOptions choose which files Discover returns.
type DiscoverOptions struct {
	// Extensions, lower case without the dot; nil means DefaultExtensions.
	Extensions []string
	// Include and Exclude are globs (filepath.Match syntax) tested against
	// the file's base name and its path relative to the root it was found
	// under. A file must match one Include (when any) and no Exclude.
	Include, Exclude []string
	// FollowSymlinks descends into symbolically linked directories, each
	// real directory once, so link loops end.
	FollowSymlinks bool
}

// Found is the result of Discover.
type Found struct {
	Files  []string    // video files, sorted, each once
	Errors []PathError // folders or links that could not be read
}

// PathError is a path Discover could not read, and why.
type PathError struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// Discover walks roots (files or folders) and returns the video files in
// them. A file named directly is kept whatever its extension. Unreadable
// folders are reported in Found.Errors and skipped.
func Discover(ctx context.Context, roots []string, opts DiscoverOptions) (Found, error) {
	for _, g := range append(append([]string(nil), opts.Include...), opts.Exclude...) {
		if _, err := filepath.Match(g, ""); err != nil {
			return Found{}, fmt.Errorf("bad glob %q: %w", g, err)
		}
	}
	exts := opts.Extensions
	if exts == nil {
		exts = DefaultExtensions
	}
	w := walker{ctx: ctx, opts: opts, exts: map[string]bool{}, seenFile: map[string]bool{}, seenDir: map[fileID]bool{}}
	for _, e := range exts {
		w.exts[strings.ToLower(strings.TrimPrefix(e, "."))] = true
	}
	for _, root := range roots {
		if err := ctx.Err(); err != nil {
			return Found{}, err
		}
		root = filepath.Clean(root)
		st, err := os.Stat(root)
		if err != nil {
			_, lerr := os.Lstat(root)
			if errors.Is(err, fs.ErrNotExist) && lerr != nil {
				return Found{}, fmt.Errorf("input %s: %w", root, unwrapPath(err))
			}
			// A broken link or an unreadable path named directly: let
			// probing report it with the rest of the files.
			w.add(root)
			continue
		}
		if !st.IsDir() {
			w.add(root)
			continue
		}
		if err := w.walkDir(root, root); err != nil {
			return Found{}, err
		}
	}
	sort.Strings(w.found.Files)
	return w.found, nil
}

type fileID struct{ dev, ino uint64 }

type walker struct {
	ctx      context.Context
	opts     DiscoverOptions
	exts     map[string]bool
	seenFile map[string]bool
	seenDir  map[fileID]bool
	found    Found
}

func (w *walker) add(path string) {
	if !w.seenFile[path] {
		w.seenFile[path] = true
		w.found.Files = append(w.found.Files, path)
	}
}

func (w *walker) fail(path string, err error) {
	w.found.Errors = append(w.found.Errors, PathError{Path: path, Err: unwrapPath(err).Error()})
}

// walkDir walks dir, which was reached from root. Returning an error stops
// the whole walk (only cancellation does).
func (w *walker) walkDir(root, dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		w.fail(dir, err)
		return nil
	}
	if id, ok := idOf(st); ok {
		if w.seenDir[id] {
			return nil
		}
		w.seenDir[id] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		w.fail(dir, err)
		// ReadDir returns what it read before the error; go on with it.
	}
	for _, e := range entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(dir, e.Name())
		typ := e.Type()
		if typ&fs.ModeSymlink != 0 {
			target, err := os.Stat(path)
			switch {
			case err != nil:
				// Broken or looping link: keep it if it looks like a video,
				// so the user learns about it from probe.
				if w.wanted(root, path) {
					w.add(path)
				}
				continue
			case target.IsDir():
				if w.opts.FollowSymlinks {
					if err := w.walkDir(root, path); err != nil {
						return err
					}
				}
				continue
			}
			typ = target.Mode().Type()
		}
		switch {
		case typ.IsDir():
			if err := w.walkDir(root, path); err != nil {
				return err
			}
		case w.wanted(root, path):
			w.add(path)
		}
	}
	return nil
}

func (w *walker) wanted(root, path string) bool {
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	if !w.exts[ext] {
		return false
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		rel = path
	}
	base := filepath.Base(path)
	match := func(globs []string) bool {
		for _, g := range globs {
			if ok, _ := filepath.Match(g, base); ok {
				return true
			}
			if ok, _ := filepath.Match(g, rel); ok {
				return true
			}
		}
		return false
	}
	if len(w.opts.Include) > 0 && !match(w.opts.Include) {
		return false
	}
	return !match(w.opts.Exclude)
}

func idOf(st os.FileInfo) (fileID, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(s.Dev), ino: uint64(s.Ino)}, true
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
