package export

import (
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Track is one row of a tracks file: a summary of one track of one video.
type Track struct {
	VideoID     int64
	VideoPath   string
	TrackID     int64
	ClassID     int32
	ClassName   string
	FirstFrame  int64
	LastFrame   int64
	FirstPTS    float64
	LastPTS     float64
	Detections  int64
	MeanScore   float32
	MaxScore    float32
	First, Last [4]float32 // x1, y1, x2, y2
	PathLength  float64    // pixels travelled by the box centre
	MeanSpeed   float64    // pixels per second (0 for a single instant)
}

// TrackSchema is the layout of the tracks files (docs/SCHEMA.md).
var TrackSchema = arrow.NewSchema([]arrow.Field{
	{Name: "video_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "video_path", Type: arrow.BinaryTypes.String},
	{Name: "track_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "class_id", Type: arrow.PrimitiveTypes.Int32},
	{Name: "class_name", Type: arrow.BinaryTypes.String},
	{Name: "first_frame", Type: arrow.PrimitiveTypes.Int64},
	{Name: "last_frame", Type: arrow.PrimitiveTypes.Int64},
	{Name: "first_seconds", Type: arrow.PrimitiveTypes.Float64},
	{Name: "last_seconds", Type: arrow.PrimitiveTypes.Float64},
	{Name: "detections", Type: arrow.PrimitiveTypes.Int64},
	{Name: "mean_score", Type: arrow.PrimitiveTypes.Float32},
	{Name: "max_score", Type: arrow.PrimitiveTypes.Float32},
	{Name: "first_x1", Type: arrow.PrimitiveTypes.Float32},
	{Name: "first_y1", Type: arrow.PrimitiveTypes.Float32},
	{Name: "first_x2", Type: arrow.PrimitiveTypes.Float32},
	{Name: "first_y2", Type: arrow.PrimitiveTypes.Float32},
	{Name: "last_x1", Type: arrow.PrimitiveTypes.Float32},
	{Name: "last_y1", Type: arrow.PrimitiveTypes.Float32},
	{Name: "last_x2", Type: arrow.PrimitiveTypes.Float32},
	{Name: "last_y2", Type: arrow.PrimitiveTypes.Float32},
	{Name: "path_length", Type: arrow.PrimitiveTypes.Float64},
	{Name: "mean_speed", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// WriteTracks writes a tracks Parquet file at path atomically.
func WriteTracks(path string, tracks []Track, mem memory.Allocator) error {
	rec := trackRecord(tracks, mem)
	defer rec.Release()
	if err := writeTable(path, rec, mem, TracksTable.dict...); err != nil {
		return fmt.Errorf("tracks %s: %w", path, err)
	}
	return nil
}

// trackRecord makes tracks a record batch, a column at a time from slices
// (no builders: a video's few tracks would pay more for 22 builders than
// for their rows).
func trackRecord(tracks []Track, _ memory.Allocator) arrow.Record {
	str := func(f func(Track) string) arrow.Array {
		v := make([]string, len(tracks))
		for i, t := range tracks {
			v[i] = f(t)
		}
		return stringArray(v)
	}
	cols := []arrow.Array{
		trackColumn(tracks, func(t Track) int64 { return t.VideoID }),
		str(func(t Track) string { return t.VideoPath }),
		trackColumn(tracks, func(t Track) int64 { return t.TrackID }),
		trackColumn(tracks, func(t Track) int32 { return t.ClassID }),
		str(func(t Track) string { return t.ClassName }),
		trackColumn(tracks, func(t Track) int64 { return t.FirstFrame }),
		trackColumn(tracks, func(t Track) int64 { return t.LastFrame }),
		trackColumn(tracks, func(t Track) float64 { return t.FirstPTS }),
		trackColumn(tracks, func(t Track) float64 { return t.LastPTS }),
		trackColumn(tracks, func(t Track) int64 { return t.Detections }),
		trackColumn(tracks, func(t Track) float32 { return t.MeanScore }),
		trackColumn(tracks, func(t Track) float32 { return t.MaxScore }),
	}
	for k := 0; k < 4; k++ {
		cols = append(cols, trackColumn(tracks, func(t Track) float32 { return t.First[k] }))
	}
	for k := 0; k < 4; k++ {
		cols = append(cols, trackColumn(tracks, func(t Track) float32 { return t.Last[k] }))
	}
	cols = append(cols, trackColumn(tracks, func(t Track) float64 { return t.PathLength }), trackColumn(tracks, func(t Track) float64 { return t.MeanSpeed }))
	rec := array.NewRecord(TrackSchema, cols, int64(len(tracks)))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// trackColumn is the fixed-width column f of tracks.
func trackColumn[T int32 | int64 | float32 | float64](tracks []Track, f func(Track) T) arrow.Array {
	v := make([]T, len(tracks))
	for i, t := range tracks {
		v[i] = f(t)
	}
	return fixedArray(arrow.GetDataType[T](), len(v), arrow.GetBytes(v), nil, 0)
}
