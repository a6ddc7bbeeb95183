package export

import (
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
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
var TrackSchema = schemaOfSlices(trackColumns)

// trackColumns are the tracks table's columns, in order: the one place
// that declares them (the schema and the records follow).
var trackColumns = []sliceColumn[Track]{
	fixedColumn("video_id", func(t *Track) int64 { return t.VideoID }),
	stringSlice("video_path", func(t *Track) string { return t.VideoPath }),
	fixedColumn("track_id", func(t *Track) int64 { return t.TrackID }),
	fixedColumn("class_id", func(t *Track) int32 { return t.ClassID }),
	stringSlice("class_name", func(t *Track) string { return t.ClassName }),
	fixedColumn("first_frame", func(t *Track) int64 { return t.FirstFrame }),
	fixedColumn("last_frame", func(t *Track) int64 { return t.LastFrame }),
	fixedColumn("first_seconds", func(t *Track) float64 { return t.FirstPTS }),
	fixedColumn("last_seconds", func(t *Track) float64 { return t.LastPTS }),
	fixedColumn("detections", func(t *Track) int64 { return t.Detections }),
	fixedColumn("mean_score", func(t *Track) float32 { return t.MeanScore }),
	fixedColumn("max_score", func(t *Track) float32 { return t.MaxScore }),
	fixedColumn("first_x1", func(t *Track) float32 { return t.First[0] }),
	fixedColumn("first_y1", func(t *Track) float32 { return t.First[1] }),
	fixedColumn("first_x2", func(t *Track) float32 { return t.First[2] }),
	fixedColumn("first_y2", func(t *Track) float32 { return t.First[3] }),
	fixedColumn("last_x1", func(t *Track) float32 { return t.Last[0] }),
	fixedColumn("last_y1", func(t *Track) float32 { return t.Last[1] }),
	fixedColumn("last_x2", func(t *Track) float32 { return t.Last[2] }),
	fixedColumn("last_y2", func(t *Track) float32 { return t.Last[3] }),
	fixedColumn("path_length", func(t *Track) float64 { return t.PathLength }),
	fixedColumn("mean_speed", func(t *Track) float64 { return t.MeanSpeed }),
}

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
	return recordOfSlices(TrackSchema, trackColumns, tracks)
}
