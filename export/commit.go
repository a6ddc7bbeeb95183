package export

import (
	"bufio"
	"errors"
	"io"
	"os"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
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

// recordSink is where a table writer's record batches go: a Parquet file,
// or a stage file.
type recordSink interface {
	write(arrow.Record) error
	commit() error
	abort()
}

// parquetFile is a Parquet file written under a temporary name beside
// path until commit.
type parquetFile struct {
	path string
	f    *os.File
	out  *sink
	fw   *pqarrow.FileWriter
}

func createParquet(path string, schema *arrow.Schema, mem memory.Allocator, props *parquet.WriterProperties) (*parquetFile, error) {
	return createParquetWith(path, schema, mem, props, pqarrow.WithAllocator(mem), pqarrow.WithStoreSchema())
}

// createParquetWith is createParquet with the given Arrow writer options.
func createParquetWith(path string, schema *arrow.Schema, mem memory.Allocator, props *parquet.WriterProperties, opts ...pqarrow.WriterOption) (*parquetFile, error) {
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	out := &sink{w: f}
	fw, err := pqarrow.NewFileWriter(schema, out, props, pqarrow.NewArrowWriterProperties(opts...))
	if err != nil {
		atomicfile.Abort(f)
		return nil, err
	}
	return &parquetFile{path: path, f: f, out: out, fw: fw}, nil
}

func (p *parquetFile) write(rec arrow.Record) error { return p.fw.WriteBuffered(rec) }

// finish writes the file's footer; the file stays under its temporary
// name, for publish. On error the file is removed.
func (p *parquetFile) finish() error {
	err := p.fw.Close()
	if err == nil {
		err = p.out.err
	}
	if err != nil {
		atomicfile.Abort(p.f)
	}
	return err
}

// publish syncs the finished file and renames it into place.
func (p *parquetFile) publish() error { return atomicfile.Commit(p.f, p.path) }

func (p *parquetFile) commit() error {
	if err := p.finish(); err != nil {
		return err
	}
	return p.publish()
}

func (p *parquetFile) abort() {
	p.fw.Close()
	atomicfile.Abort(p.f)
}

// stageFile is one video's rows of a table in Arrow IPC form, unencoded
// and unsynced: cheap to write and to read back into a part, which is
// where the rows become durable (see job's parts). A stage file is whole
// or absent after a crash of the process; after a power loss it may be
// short, which OpenStage tells.
type stageFile struct {
	path string
	f    *os.File
	buf  *bufio.Writer
	w    *ipc.FileWriter
}

// tellWriter is a buffered writer that can say where it is, all the
// seeking the IPC file writer does.
type tellWriter struct {
	*bufio.Writer
	n int64
}

func (t *tellWriter) Write(p []byte) (int, error) {
	n, err := t.Writer.Write(p)
	t.n += int64(n)
	return n, err
}

func (t *tellWriter) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekCurrent {
		return 0, errors.New("stage file: seek not supported")
	}
	return t.n, nil
}

func createStage(path string, schema *arrow.Schema, mem memory.Allocator) (*stageFile, error) {
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	buf := bufio.NewWriterSize(f, 256<<10)
	w, err := ipc.NewFileWriter(&tellWriter{Writer: buf}, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		atomicfile.Abort(f)
		return nil, err
	}
	return &stageFile{path: path, f: f, buf: buf, w: w}, nil
}

func (s *stageFile) write(rec arrow.Record) error { return s.w.Write(rec) }

func (s *stageFile) commit() error {
	err := s.w.Close()
	if err == nil {
		err = s.buf.Flush()
	}
	if err != nil {
		atomicfile.Abort(s.f)
		return err
	}
	return atomicfile.CommitUnsynced(s.f, s.path)
}

func (s *stageFile) abort() {
	s.w.Close()
	atomicfile.Abort(s.f)
}

// writeTable writes rec as a Parquet file at path atomically.
func writeTable(path string, rec arrow.Record, mem memory.Allocator, dictColumns ...string) error {
	p, err := createParquet(path, rec.Schema(), mem, WriterProperties(mem, dictColumns...))
	if err != nil {
		return err
	}
	if err := p.fw.Write(rec); err != nil {
		p.abort()
		return err
	}
	return p.commit()
}
