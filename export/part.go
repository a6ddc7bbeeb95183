package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
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
	DetectionsTable = Table{"detections", []string{"video_path", "class_name"}}
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
		// Statistics where they let a reader skip row groups: rows are
		// sorted by video, then frame; every other column's range spans
		// its row group's videos, and computing it costs a quarter of the
		// encoding.
		parquet.WithStats(false),
		parquet.WithStatsFor("video_id", true),
		parquet.WithStatsFor("frame_index", true),
		parquet.WithStatsFor("recorded_at", true),
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
	// batches waiting to fill a row group
	small     []arrow.Record
	smallRows int64
}

// NewPartWriter starts the part path of table t; the file is created, with
// the schema of the first rows written, on the first Write or Append.
func NewPartWriter(path string, t Table, mem memory.Allocator) *PartWriter {
	return &PartWriter{t: t, path: path, mem: mem}
}

// Write adds rec's rows. Rows are written in row groups of exactly
// partRowGroupRows (the last one of the part shorter): batches are joined
// until one is full, so that the rows of many small videos are encoded
// as one batch (encoding costs per batch and column).
func (w *PartWriter) Write(rec arrow.Record) error {
	rec.Retain()
	w.small = append(w.small, rec)
	w.smallRows += rec.NumRows()
	for w.smallRows >= partRowGroupRows {
		if err := w.flushSmall(partRowGroupRows); err != nil {
			return err
		}
	}
	return nil
}

// flushSmall writes the first n rows waiting as one row group (all of
// them for n < 0), keeping the rest waiting. The batches are joined first:
// writing many short chunks costs more than copying them into one.
func (w *PartWriter) flushSmall(n int64) error {
	if len(w.small) == 0 {
		return nil
	}
	if n < 0 || n > w.smallRows {
		n = w.smallRows
	}
	joined := w.small[0]
	if len(w.small) > 1 {
		schema := w.small[0].Schema()
		cols := make([]arrow.Array, schema.NumFields())
		for i := range cols {
			parts := make([]arrow.Array, len(w.small))
			for k, r := range w.small {
				parts[k] = r.Column(i)
			}
			c, err := concat(parts, w.mem)
			if err != nil {
				return fmt.Errorf("%s part %s: %w", w.t.Name, w.path, err)
			}
			defer c.Release()
			cols[i] = c
		}
		joined = array.NewRecord(schema, cols, w.smallRows)
		for _, r := range w.small {
			r.Release()
		}
	}
	head := joined.NewSlice(0, n)
	defer head.Release()
	total := w.smallRows
	w.small, w.smallRows = nil, 0
	if n < total {
		w.small, w.smallRows = []arrow.Record{joined.NewSlice(n, total)}, total-n
	}
	joined.Release()
	return w.write(head)
}

// concat joins arrays of one type: the columns of fixed width and strings
// (every base column) by copying their buffers once into Go memory, the
// others through array.Concatenate (which zeroes and grows its buffers
// through the allocator: a third of the compactor's time, profiled).
func concat(parts []arrow.Array, mem memory.Allocator) (arrow.Array, error) {
	n, nulls := 0, 0
	for _, p := range parts {
		n += p.Len()
		nulls += p.NullN()
	}
	var validity []byte
	if nulls > 0 {
		validity = make([]byte, (n+7)/8)
		at := 0
		for _, p := range parts {
			for i := 0; i < p.Len(); i++ {
				if p.IsValid(i) {
					validity[(at+i)/8] |= 1 << ((at + i) % 8)
				}
			}
			at += p.Len()
		}
	}
	t := parts[0].DataType()
	switch t.ID() {
	case arrow.INT32, arrow.INT64, arrow.FLOAT32, arrow.FLOAT64:
		width := t.(arrow.FixedWidthDataType).Bytes()
		data := make([]byte, 0, n*width)
		for _, p := range parts {
			d := p.Data()
			data = append(data, d.Buffers()[1].Bytes()[d.Offset()*width:(d.Offset()+d.Len())*width]...)
		}
		return fixedArray(t, n, data, validity, nulls), nil
	case arrow.STRING:
		offsets := make([]int32, 1, n+1)
		size := 0
		for _, p := range parts {
			size += len(p.(*array.String).ValueBytes())
		}
		data := make([]byte, 0, size)
		for _, p := range parts {
			s := p.(*array.String)
			offs := s.ValueOffsets()
			base := int32(len(data)) - offs[0]
			for _, o := range offs[1:] {
				offsets = append(offsets, base+o)
			}
			data = append(data, s.ValueBytes()...)
		}
		var valid *memory.Buffer
		if validity != nil {
			valid = memory.NewBufferBytes(validity)
		}
		return array.MakeFromData(array.NewData(t, n, []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)),
			memory.NewBufferBytes(data)}, nil, nulls, 0)), nil
	}
	return array.Concatenate(parts, mem)
}

// write writes rec as one row group (a part of no rows gets the schema).
// The table's dictionary columns go to the Parquet writer as Arrow
// dictionaries, built here from runs of equal values (a part's rows are
// sorted by video, so video_path repeats for hundreds of rows): the
// writer then stores the dictionary and its indices as they are, where
// from strings it would hash every value (a sixth of the write's CPU, profiled). The
// file stores no Arrow schema, so that readers get the strings back as
// strings.
func (w *PartWriter) write(rec arrow.Record) error {
	rec = w.dictionaries(rec)
	defer rec.Release()
	if w.p == nil {
		p, err := createParquetWith(w.path, rec.Schema(), w.mem, w.t.partProperties(w.mem), pqarrow.WithAllocator(w.mem))
		if err != nil {
			return fmt.Errorf("%s part %s: %w", w.t.Name, w.path, err)
		}
		w.p = p
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if err := w.p.fw.Write(rec); err != nil {
		return fmt.Errorf("%s part %s: %w", w.t.Name, w.path, err)
	}
	w.rows += rec.NumRows()
	return nil
}

// dictionaries returns rec with the table's top-level dictionary columns
// of strings as dictionary arrays (a new reference: the caller releases
// it).
func (w *PartWriter) dictionaries(rec arrow.Record) arrow.Record {
	fields := slices.Clone(rec.Schema().Fields())
	cols := slices.Clone(rec.Columns())
	changed := false
	for i, f := range fields {
		s, ok := cols[i].(*array.String)
		if !ok || !slices.Contains(w.t.dict, f.Name) {
			continue
		}
		cols[i] = dictionaryOf(s)
		defer cols[i].Release()
		fields[i].Type = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
		changed = true
	}
	if !changed {
		rec.Retain()
		return rec
	}
	return array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

// dictionaryOf is s as a dictionary array of its distinct values, in the
// order they first appear; a value equal to the one before costs a
// comparison, not a lookup.
func dictionaryOf(s *array.String) arrow.Array {
	idx := make([]int32, s.Len())
	var values []string
	seen := map[string]int32{}
	var validity []byte
	nulls, last, lastIdx := 0, "", int32(-1)
	for i := range idx {
		if s.IsNull(i) {
			if validity == nil {
				validity = make([]byte, (len(idx)+7)/8)
				for k := range validity {
					validity[k] = 0xff
				}
			}
			validity[i/8] &^= 1 << (i % 8)
			nulls++
			continue
		}
		v := s.Value(i)
		if lastIdx < 0 || v != last {
			k, ok := seen[v]
			if !ok {
				k = int32(len(values))
				values = append(values, v)
				seen[v] = k
			}
			last, lastIdx = v, k
		}
		idx[i] = lastIdx
	}
	dict := stringArray(values)
	defer dict.Release()
	indices := fixedArray(arrow.PrimitiveTypes.Int32, len(idx), arrow.Int32Traits.CastToBytes(idx), validity, nulls)
	defer indices.Release()
	return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, indices, dict)
}

// Append adds a video's staged rows, from memory or their stage file (an
// Arrow IPC file of StageDetections or StageTracks, or a Parquet file:
// one video's in the layout before parts, or a part).
func (w *PartWriter) Append(ctx context.Context, s *Staged) error {
	if s.Path != "" {
		return ReadStage(ctx, s.Path, w.mem, w.Write)
	}
	for _, r := range s.Records {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	return nil
}

// Rows returns the rows written so far.
func (w *PartWriter) Rows() int64 { return w.rows + w.smallRows }

// Close finishes the part under its temporary name.
func (w *PartWriter) Close() error {
	if err := w.flushSmall(-1); err != nil {
		w.Abort()
		return err
	}
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
	for _, r := range w.small {
		r.Release()
	}
	w.small, w.smallRows = nil, 0
	if w.p != nil {
		w.p.abort()
		w.p = nil
	}
}

// ReadStage calls fn with the record batches of a stage file (see
// Append). A file cut short, by a power loss after it was written,
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
	pf, fr, err := openParquet(path, mem, pqarrow.ArrowReadProperties{BatchSize: rowsPerBatch})
	if err != nil {
		return err
	}
	defer pf.Close()
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return readAll(rr, path, fn)
}
