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

// StageTracks writes the stage file path of one video's tracks (see
// ReadStage).
func StageTracks(path string, tracks []Track, mem memory.Allocator) error {
	rec := trackRecord(tracks, mem)
	defer rec.Release()
	if err := writeRecord(rec, stageOpener(path, TrackSchema, mem)); err != nil {
		return fmt.Errorf("tracks %s: %w", path, err)
	}
	return nil
}

func trackRecord(tracks []Track, mem memory.Allocator) arrow.Record {
	b := array.NewRecordBuilder(mem, TrackSchema)
	defer b.Release()
	fs := b.Fields()
	f32 := func(i int, v float32) { fs[i].(*array.Float32Builder).Append(v) }
	for _, t := range tracks {
		fs[0].(*array.Int64Builder).Append(t.VideoID)
		fs[1].(*array.StringBuilder).Append(t.VideoPath)
		fs[2].(*array.Int64Builder).Append(t.TrackID)
		fs[3].(*array.Int32Builder).Append(t.ClassID)
		fs[4].(*array.StringBuilder).Append(t.ClassName)
		fs[5].(*array.Int64Builder).Append(t.FirstFrame)
		fs[6].(*array.Int64Builder).Append(t.LastFrame)
		fs[7].(*array.Float64Builder).Append(t.FirstPTS)
		fs[8].(*array.Float64Builder).Append(t.LastPTS)
		fs[9].(*array.Int64Builder).Append(t.Detections)
		f32(10, t.MeanScore)
		f32(11, t.MaxScore)
		for k := 0; k < 4; k++ {
			f32(12+k, t.First[k])
			f32(16+k, t.Last[k])
		}
		fs[20].(*array.Float64Builder).Append(t.PathLength)
		fs[21].(*array.Float64Builder).Append(t.MeanSpeed)
	}
	return b.NewRecord()
}
