package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// Table is one of a run's row tables: the folder its files are in and the
// string columns stored dictionary-encoded. The videos table, one file of
// its own, is not one of them.
type Table struct {
	Name string
	dict []string
}

// The row tables (docs/SCHEMA.md).
var (
	DetectionsTable = Table{"detections", []string{"video_path", "class_name", "keypoints.list.element.name"}}
	TracksTable     = Table{"tracks", []string{"video_path", "class_name"}}
	EventsTable     = Table{"events", []string{"video_path", "camera", "kind", "name", "direction", "class_name"}}
)

// partRowGroupRows is a part's row group length. Rows are sorted by video
// in a part, so a query on one video reads the row group or two whose
// video_id statistics admit it; 64k rows keeps that read small (a few
// hundred videos' rows) and the groups large enough to scan fast.
const partRowGroupRows = 64 << 10

// partProperties are the Parquet settings of a table's parts.
func (t Table) partProperties(mem memory.Allocator) *parquet.WriterProperties {
	registerZstd()
	opts := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(partRowGroupRows),
		parquet.WithCreatedBy("dsbatch"),
	}
	for _, c := range t.dict {
		opts = append(opts, parquet.WithDictionaryFor(c, true))
	}
	return parquet.NewWriterProperties(opts...)
}

// PartWriter writes a part: one Parquet file holding the rows of many
// videos of one table, in the order they are written (the caller writes
// videos in video_id order). It is written under a temporary name until
// Publish, so that a run can record what the part holds between Close and
// Publish.
type PartWriter struct {
	t    Table
	path string
	mem  memory.Allocator
	p    *parquetFile
	rows int64
}

// NewPartWriter starts the part path of table t; the file is created, with
// the schema of the first rows written, on the first Write or
// AppendStaged.
func NewPartWriter(path string, t Table, mem memory.Allocator) *PartWriter {
	return &PartWriter{t: t, path: path, mem: mem}
}

// Write adds rec's rows.
func (w *PartWriter) Write(rec arrow.Record) error {
	if w.p == nil {
		p, err := createParquet(w.path, rec.Schema(), w.mem, w.t.partProperties(w.mem))
		if err != nil {
			return fmt.Errorf("%s part %s: %w", w.t.Name, w.path, err)
		}
		w.p = p
	}
	if err := w.p.write(rec); err != nil {
		return fmt.Errorf("%s part %s: %w", w.t.Name, w.path, err)
	}
	w.rows += rec.NumRows()
	return nil
}

// AppendStaged adds the rows of a stage file: an Arrow IPC file of
// StageDetections or StageTracks, or a Parquet file of one video (the
// layout of dsbatch before parts). It returns the rows added.
func (w *PartWriter) AppendStaged(ctx context.Context, path string) (int64, error) {
	before := w.rows
	err := ReadStage(ctx, path, w.mem, w.Write)
	return w.rows - before, err
}

// Rows returns the rows written so far.
func (w *PartWriter) Rows() int64 { return w.rows }

// Close finishes the part under its temporary name.
func (w *PartWriter) Close() error {
	if w.p == nil {
		return fmt.Errorf("%s part %s: no rows and no schema written", w.t.Name, w.path)
	}
	if err := w.p.finish(); err != nil {
		w.p = nil
		return fmt.Errorf("%s part %s: %w", w.t.Name, w.path, err)
	}
	return nil
}

// Publish syncs the closed part and renames it into place, where readers
// of the table's folder see it.
func (w *PartWriter) Publish() error {
	if w.p == nil {
		return fmt.Errorf("%s part %s: not written", w.t.Name, w.path)
	}
	return w.p.publish()
}

// Abort discards the part, closed or not.
func (w *PartWriter) Abort() {
	if w.p != nil {
		w.p.abort()
		w.p = nil
	}
}

// ReadStage calls fn with the record batches of a stage file (see
// AppendStaged). A file cut short, by a power loss after it was written,
// is an error.
func ReadStage(ctx context.Context, path string, mem memory.Allocator, fn func(arrow.Record) error) error {
	if filepath.Ext(path) == ".parquet" {
		return scanAll(ctx, path, mem, fn)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(mem))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer r.Close()
	for i := 0; i < r.NumRecords(); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.RecordAt(i)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		err = fn(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckStage reports whether a stage file is whole: its footer reads and
// its batches decode.
func CheckStage(ctx context.Context, path string, mem memory.Allocator) error {
	return ReadStage(ctx, path, mem, func(arrow.Record) error { return nil })
}

// scanAll streams every column of a Parquet file.
func scanAll(ctx context.Context, path string, mem memory.Allocator, fn func(arrow.Record) error) error {
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: rowsPerBatch}, mem)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer rr.Release()
	for {
		rec, err := rr.Read()
		if errors.Is(err, io.EOF) || (err == nil && rec == nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
