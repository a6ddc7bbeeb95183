package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/metadata"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// ScanColumns streams the named columns of a Parquet file in record
// batches of up to 64k rows, calling fn for each; only those columns are
// read and decoded, so memory stays small whatever the file's size.
func ScanColumns(ctx context.Context, path string, columns []string, mem memory.Allocator, fn func(arrow.Record) error) error {
	return scan(ctx, path, columns, mem, nil, fn)
}

// ScanVideo is ScanColumns over the rows of one video: the row groups
// whose video_id statistics exclude id are not read, and the rows of other
// videos are left out of the batches fn gets. It reads a part (rows sorted
// by video) in a row group or two.
func ScanVideo(ctx context.Context, path string, id int64, columns []string, mem memory.Allocator, fn func(arrow.Record) error) error {
	cols := append([]string{"video_id"}, columns...)
	keep := func(pf *file.Reader, col int) []int {
		var groups []int
		for i := 0; i < pf.NumRowGroups(); i++ {
			cc, err := pf.MetaData().RowGroup(i).ColumnChunk(col)
			if err != nil {
				groups = append(groups, i)
				continue
			}
			st, err := cc.Statistics()
			if s, ok := st.(*metadata.Int64Statistics); err == nil && ok && s.HasMinMax() && (id < s.Min() || id > s.Max()) {
				continue
			}
			groups = append(groups, i)
		}
		return groups
	}
	return scan(ctx, path, cols, mem, keep, func(rec arrow.Record) error {
		ids := rec.Column(0).(*array.Int64)
		for lo := 0; lo < ids.Len(); {
			if ids.Value(lo) != id {
				lo++
				continue
			}
			hi := lo
			for hi < ids.Len() && ids.Value(hi) == id {
				hi++
			}
			part := rec.NewSlice(int64(lo), int64(hi))
			cut := array.NewRecord(arrow.NewSchema(rec.Schema().Fields()[1:], nil), part.Columns()[1:], part.NumRows())
			err := fn(cut)
			cut.Release()
			part.Release()
			if err != nil {
				return err
			}
			lo = hi
		}
		return nil
	})
}

// scan reads columns of the row groups groups picks (all, when nil; it is
// given the leaf index of the first column).
func scan(ctx context.Context, path string, columns []string, mem memory.Allocator, groups func(*file.Reader, int) []int, fn func(arrow.Record) error) error {
	pf, fr, err := openParquet(path, mem, pqarrow.ArrowReadProperties{BatchSize: rowsPerBatch})
	if err != nil {
		return err
	}
	defer pf.Close()
	idx, err := leafColumns(fr, columns)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var rgs []int
	if groups != nil {
		if rgs = groups(pf, idx[0]); len(rgs) == 0 {
			return nil
		}
	}
	rr, err := fr.GetRecordReader(ctx, idx, rgs)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return readAll(rr, path, func(rec arrow.Record) error {
		// The reader gives the fields in the file's order: hand them in
		// the order asked for.
		cols := make([]arrow.Array, len(columns))
		fields := make([]arrow.Field, len(columns))
		for i, c := range columns {
			j := rec.Schema().FieldIndices(c)[0]
			cols[i], fields[i] = rec.Column(j), rec.Schema().Field(j)
		}
		out := array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
		defer out.Release()
		return fn(out)
	})
}

// readAll calls fn with each batch of rr (the reader's, valid until the
// next) to the end, then releases rr; errors name path.
func readAll(rr pqarrow.RecordReader, path string, fn func(arrow.Record) error) error {
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

// openParquet opens the Parquet file path for reading through Arrow with
// props; the caller closes the file. Errors name path.
func openParquet(path string, mem memory.Allocator, props pqarrow.ArrowReadProperties) (*file.Reader, *pqarrow.FileReader, error) {
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	fr, err := pqarrow.NewFileReader(pf, props, mem)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return pf, fr, nil
}

// leafColumns are the leaf column indices of the named top-level columns:
// a nested field (a list, a struct) has several.
func leafColumns(fr *pqarrow.FileReader, columns []string) ([]int, error) {
	schema, err := fr.Schema()
	if err != nil {
		return nil, err
	}
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
			return nil, fmt.Errorf("no column %q", c)
		}
		leaves(fr.Manifest.Fields[f[0]])
	}
	return idx, nil
}

// CountStrings counts the values of a string column of a Parquet file.
// The column is read as a dictionary, so that counting a dictionary-encoded
// column (class names) costs a pass over small integers, not strings.
func CountStrings(ctx context.Context, path, column string, mem memory.Allocator, into map[string]int64) error {
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	col := pf.MetaData().Schema.ColumnIndexByName(column)
	if col < 0 {
		return fmt.Errorf("read %s: no column %q", path, column)
	}
	props := pqarrow.ArrowReadProperties{BatchSize: rowsPerBatch}
	props.SetReadDict(col, true)
	fr, err := pqarrow.NewFileReader(pf, props, mem)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(ctx, []int{col}, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var counts []int64
	return readAll(rr, path, func(rec arrow.Record) error {
		switch a := rec.Column(0).(type) {
		case *array.Dictionary:
			dict, ok := a.Dictionary().(*array.String)
			if !ok {
				return fmt.Errorf("read %s: column %q is %s, not a string", path, column, a.DataType())
			}
			counts = slices.Grow(counts[:0], dict.Len())[:dict.Len()]
			clear(counts)
			for i := 0; i < a.Len(); i++ {
				if a.IsValid(i) {
					counts[a.GetValueIndex(i)]++
				}
			}
			for k, n := range counts {
				if n > 0 {
					into[dict.Value(k)] += n
				}
			}
		case *array.String:
			for i := 0; i < a.Len(); i++ {
				if a.IsValid(i) {
					into[a.Value(i)]++
				}
			}
		default:
			return fmt.Errorf("read %s: column %q is %s, not a string", path, column, a.DataType())
		}
		return nil
	})
}

// RowCount is the rows of a Parquet file, from its footer.
func RowCount(path string) (int64, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	return pf.NumRows(), nil
}

// ColumnNames lists the top-level columns of a Parquet file.
func ColumnNames(path string, mem memory.Allocator) ([]string, error) {
	pf, fr, err := openParquet(path, mem, pqarrow.ArrowReadProperties{})
	if err != nil {
		return nil, err
	}
	defer pf.Close()
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

// Keypoints calls fn for each point of row i of a keypoints column, in
// the model's order, with its name. It reads both of the column's forms:
// a struct of a field a point (written since 2026-12-03), and a list of
// named points (written before).
func Keypoints(col arrow.Array, i int, fn func(name string, k Keypoint)) error {
	if col.IsNull(i) {
		return nil
	}
	switch c := col.(type) {
	case *array.Struct:
		t := c.DataType().(*arrow.StructType)
		for f := range c.NumField() {
			p, ok := c.Field(f).(*array.Struct)
			if !ok || p.NumField() != 3 {
				return fmt.Errorf("keypoints: point %q is %s, want struct<x, y, score>", t.Field(f).Name, c.Field(f).DataType())
			}
			k, err := pointAt(p, i, 0)
			if err != nil {
				return err
			}
			fn(t.Field(f).Name, k)
		}
		return nil
	case *array.List:
		p, ok := c.ListValues().(*array.Struct)
		if !ok || p.NumField() != 4 {
			return fmt.Errorf("keypoints: elements are %s, want struct<name, x, y, score>", c.ListValues().DataType())
		}
		name, ok := p.Field(0).(*array.String)
		if !ok {
			return fmt.Errorf("keypoints: names are %s, want strings", p.Field(0).DataType())
		}
		lo, hi := c.ValueOffsets(i)
		for j := int(lo); j < int(hi); j++ {
			k, err := pointAt(p, j, 1)
			if err != nil {
				return err
			}
			fn(name.Value(j), k)
		}
		return nil
	}
	return fmt.Errorf("keypoints: column is %s, want a struct of points", col.DataType())
}

// pointAt is row i of the three float fields of p from field first on.
func pointAt(p *array.Struct, i, first int) (Keypoint, error) {
	var v [3]float32
	for f := range v {
		a, ok := p.Field(first + f).(*array.Float32)
		if !ok {
			return Keypoint{}, fmt.Errorf("keypoints: %s is %s, want float", p.DataType().(*arrow.StructType).Field(first+f).Name, p.Field(first+f).DataType())
		}
		v[f] = a.Value(i)
	}
	return Keypoint{X: v[0], Y: v[1], Score: v[2]}, nil
}
