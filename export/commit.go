package export

import (
	"errors"

	"fmt"
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"io"
	"os"
	"path/filepath"
)

// tempSuffix marks files being written. Readers (and DuckDB globs such as
// *.parquet) never match them; a rerun removes leftovers.
const tempSuffix = ".tmp"

// sink is what the Parquet writer writes to: it hides the file's Close
// (commit syncs, closes and renames it) and keeps the first write error,
// because the Parquet writer drops some of them (a full disk left
// truncated files that looked committed).
type sink struct {
	w   io.Writer
	err error
}

func (s *sink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	s.err = err
	return n, err
}

// writeTable writes rec as a Parquet file at path atomically.
func writeTable(path string, rec arrow.Record, mem memory.Allocator, dictColumns ...string) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	out := &sink{w: f}
	fw, err := pqarrow.NewFileWriter(rec.Schema(), out, WriterProperties(mem, dictColumns...),
		pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem), pqarrow.WithStoreSchema()))
	if err == nil {
		err = fw.Write(rec)
		if cerr := fw.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = out.err
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return commit(f, path)
}

// createTemp opens a temporary file beside path.
func createTemp(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*"+tempSuffix)
}

// commit makes the temporary file f durable and renames it to path.
func commit(f *os.File, path string) error {
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
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
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveTemps deletes temporary files left in dir by an interrupted run.
func RemoveTemps(dir string) error {
	matches, err := filepath.Glob(filepath.Join(dir, ".*"+tempSuffix))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
