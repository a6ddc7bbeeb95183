package export

import (
	"io"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

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
	f, err := atomicfile.Create(path)
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
		atomicfile.Abort(f)
		return err
	}
	return atomicfile.Commit(f, path)
}
