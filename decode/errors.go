package decode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Reasons a file cannot be probed or decoded. Errors returned by this
// package wrap one of them (test with errors.Is) inside a *FileError.
var (
	ErrEmpty            = errors.New("empty file (0 bytes)")
	ErrNotRegular       = errors.New("not a regular file")
	ErrBrokenLink       = errors.New("broken symbolic link")
	ErrNotVideo         = errors.New("not a readable media file (invalid data or unknown container)")
	ErrNoVideo          = errors.New("no video stream")
	ErrUnsupportedCodec = errors.New("unsupported video codec")
	ErrTruncated        = errors.New("truncated or damaged file")
	ErrNoFrames         = errors.New("no frame could be decoded")
	ErrPlaylist         = errors.New("a playlist or manifest naming other files, which dsbatch does not follow")
	// ErrNondeterministic means the bitstream is corrupt and the decoder
	// used several threads, whose error concealment depends on timing:
	// decode the file again from its start with Options.Threads = 1.
	ErrNondeterministic = errors.New("corrupt bitstream: multi-threaded error concealment is not reproducible")
)

// FileError is an error about one file: the operation, the path and why.
type FileError struct {
	Op   string // "probe", "open", "decode"
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

func fileErr(op, path string, err error) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return err
	}
	return &FileError{Op: op, Path: path, Err: err}
}

// checkFile rejects what FFmpeg should never be handed: missing files, broken
// links, directories, FIFOs and devices (which could block forever), empty and
// unreadable files. It returns the size of the file.
func checkFile(path string) (int64, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return 0, unwrapPathError(err)
	}
	st := lst
	if lst.Mode()&fs.ModeSymlink != 0 {
		st, err = os.Stat(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				target, _ := os.Readlink(path)
				return 0, fmt.Errorf("%w to %q", ErrBrokenLink, target)
			}
			return 0, unwrapPathError(err)
		}
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%w (%s)", ErrNotRegular, st.Mode().Type())
	}
	if st.Size() == 0 {
		return 0, ErrEmpty
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, unwrapPathError(err)
	}
	f.Close()
	return st.Size(), nil
}

// unwrapPathError drops the *fs.PathError shell (the path is already in the
// FileError) but keeps the cause, so "permission denied" reads once.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
