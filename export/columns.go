package export

import (
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// column is one column of a table of rows R: its field and how a row
// fills its builder. A table's columns, declared once in order, give its
// schema and its records.
type column[R any] struct {
	field arrow.Field
	fill  func(b array.Builder, r *R)
}

// schemaOf is the schema of cols, in order.
func schemaOf[R any](cols []column[R]) *arrow.Schema {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = c.field
	}
	return arrow.NewSchema(fs, nil)
}

// recordOf returns rows as a record batch of schema (schemaOf(cols)); the
// caller releases it.
func recordOf[R any](schema *arrow.Schema, cols []column[R], rows []R, mem memory.Allocator) arrow.Record {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	fs := b.Fields()
	for i := range rows {
		for k, c := range cols {
			c.fill(fs[k], &rows[i])
		}
	}
	return b.NewRecord()
}

func int64Column[R any](name string, get func(*R) int64) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64}, func(b array.Builder, r *R) { b.(*array.Int64Builder).Append(get(r)) }}
}

func int32Column[R any](name string, get func(*R) int32) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int32}, func(b array.Builder, r *R) { b.(*array.Int32Builder).Append(get(r)) }}
}

func float64Column[R any](name string, get func(*R) float64) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64}, func(b array.Builder, r *R) { b.(*array.Float64Builder).Append(get(r)) }}
}

func float32Column[R any](name string, get func(*R) float32) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float32}, func(b array.Builder, r *R) { b.(*array.Float32Builder).Append(get(r)) }}
}

func boolColumn[R any](name string, get func(*R) bool) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.FixedWidthTypes.Boolean}, func(b array.Builder, r *R) { b.(*array.BooleanBuilder).Append(get(r)) }}
}

func stringColumn[R any](name string, get func(*R) string) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.BinaryTypes.String}, func(b array.Builder, r *R) { b.(*array.StringBuilder).Append(get(r)) }}
}

// optionalString is a string column whose empty values are null.
func optionalString[R any](name string, get func(*R) string) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}, func(b array.Builder, r *R) {
		if s := get(r); s != "" {
			b.(*array.StringBuilder).Append(s)
		} else {
			b.AppendNull()
		}
	}}
}

// optionalFloat64 is a float64 column, null where get says so.
func optionalFloat64[R any](name string, get func(*R) (float64, bool)) column[R] {
	return column[R]{arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}, func(b array.Builder, r *R) {
		if v, ok := get(r); ok {
			b.(*array.Float64Builder).Append(v)
		} else {
			b.AppendNull()
		}
	}}
}

// timeColumn is a time column (UTC microseconds); with nullable, zero
// times are null (unknown).
func timeColumn[R any](name string, nullable bool, get func(*R) time.Time) column[R] {
	return column[R]{arrow.Field{Name: name, Type: timestampUTC, Nullable: nullable}, func(b array.Builder, r *R) {
		if t := get(r); nullable {
			appendTime(b, t)
		} else {
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMicro()))
		}
	}}
}

// sliceColumn is a column of a table of rows R built a column at a time
// from a slice of rows, without builders: its field and its array.
type sliceColumn[R any] struct {
	field arrow.Field
	array func(rows []R) arrow.Array
}

// schemaOfSlices is the schema of cols, in order.
func schemaOfSlices[R any](cols []sliceColumn[R]) *arrow.Schema {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = c.field
	}
	return arrow.NewSchema(fs, nil)
}

// recordOfSlices returns rows as a record batch of schema
// (schemaOfSlices(cols)); the caller releases it.
func recordOfSlices[R any](schema *arrow.Schema, cols []sliceColumn[R], rows []R) arrow.Record {
	arrs := make([]arrow.Array, len(cols))
	for i, c := range cols {
		arrs[i] = c.array(rows)
	}
	rec := array.NewRecord(schema, arrs, int64(len(rows)))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// fixedColumn is a fixed-width column get of rows R.
func fixedColumn[R any, T int32 | int64 | float32 | float64](name string, get func(*R) T) sliceColumn[R] {
	return sliceColumn[R]{arrow.Field{Name: name, Type: arrow.GetDataType[T]()}, func(rows []R) arrow.Array {
		v := make([]T, len(rows))
		for i := range rows {
			v[i] = get(&rows[i])
		}
		return sliceArray(v)
	}}
}

// stringSlice is a string column get of rows R.
func stringSlice[R any](name string, get func(*R) string) sliceColumn[R] {
	return sliceColumn[R]{arrow.Field{Name: name, Type: arrow.BinaryTypes.String}, func(rows []R) arrow.Array {
		v := make([]string, len(rows))
		for i := range rows {
			v[i] = get(&rows[i])
		}
		return stringArray(v)
	}}
}

// sliceArray is an array over the values of v, without nulls.
func sliceArray[T int32 | int64 | float32 | float64](v []T) arrow.Array {
	return fixedArray(arrow.GetDataType[T](), len(v), arrow.GetBytes(v), nil, 0)
}
