package export

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// ScanColumns streams the named columns of a Parquet file in record
// batches of up to 64k rows, calling fn for each; only those columns are
// read and decoded, so memory stays small whatever the file's size.
func ScanColumns(ctx context.Context, path string, columns []string, mem memory.Allocator, fn func(arrow.Record) error) error {
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: rowsPerBatch}, mem)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	// The reader takes leaf columns: a nested field (a list, a struct)
	// has several.
	var idx []int
	var leaves func(f pqarrow.SchemaField)
	leaves = func(f pqarrow.SchemaField) {
		if f.IsLeaf() {
			idx = append(idx, f.ColIndex)
		}
		for _, c := range f.Children {
			leaves(c)
		}
	}
	for _, c := range columns {
		f := schema.FieldIndices(c)
		if len(f) != 1 {
			return fmt.Errorf("read %s: no column %q", path, c)
		}
		leaves(fr.Manifest.Fields[f[0]])
	}
	rr, err := fr.GetRecordReader(ctx, idx, nil)
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
		// The reader gives the fields in the file's order: hand them in
		// the order asked for.
		cols := make([]arrow.Array, len(columns))
		fields := make([]arrow.Field, len(columns))
		for i, c := range columns {
			j := rec.Schema().FieldIndices(c)[0]
			cols[i], fields[i] = rec.Column(j), rec.Schema().Field(j)
		}
		out := array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
		err = fn(out)
		out.Release()
		if err != nil {
			return err
		}
	}
}

// CountStrings counts the values of a string column of a Parquet file.
func CountStrings(ctx context.Context, path, column string, mem memory.Allocator, into map[string]int64) error {
	return ScanColumns(ctx, path, []string{column}, mem, func(rec arrow.Record) error {
		col, ok := rec.Column(0).(*array.String)
		if !ok {
			return fmt.Errorf("read %s: column %q is %s, not a string", path, column, rec.Column(0).DataType())
		}
		for i := 0; i < col.Len(); i++ {
			if col.IsValid(i) {
				into[col.Value(i)]++
			}
		}
		return nil
	})
}

// ColumnNames lists the top-level columns of a Parquet file.
func ColumnNames(path string, mem memory.Allocator) ([]string, error) {
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name)
	}
	return names, nil
}
