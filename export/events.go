package export

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// EventSchema is the layout of the events files (docs/SCHEMA.md).
var EventSchema = arrow.NewSchema([]arrow.Field{
	{Name: "video_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "video_path", Type: arrow.BinaryTypes.String},
	{Name: "camera", Type: arrow.BinaryTypes.String},
	{Name: "kind", Type: arrow.BinaryTypes.String},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "direction", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "track_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "class_name", Type: arrow.BinaryTypes.String},
	{Name: "frame_index", Type: arrow.PrimitiveTypes.Int64},
	{Name: "pts_seconds", Type: arrow.PrimitiveTypes.Float64},
	{Name: "recorded_at", Type: timestampUTC, Nullable: true},
	{Name: "x", Type: arrow.PrimitiveTypes.Float32},
	{Name: "y", Type: arrow.PrimitiveTypes.Float32},
	{Name: "dwell_seconds", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "open", Type: arrow.FixedWidthTypes.Boolean},
}, nil)

// Event is one row of an events file.
type Event struct {
	VideoID    int64
	VideoPath  string
	Camera     string
	Kind       string // line_cross, zone_enter, zone_exit
	Name       string // the line's or zone's
	Direction  string // a crossing's ("" otherwise: null)
	TrackID    int64
	ClassName  string
	FrameIndex int64
	PTS        float64
	// RecordedAt is the wall-clock time of the event, when the video's
	// start is known (zero: null).
	RecordedAt time.Time
	X, Y       float32 // the anchor point in frame pixels
	Dwell      float64 // an exit's seconds inside (null for other kinds)
	Open       bool    // an exit at the track's end, still inside
}

// WriteEvents writes an events Parquet file at path atomically.
func WriteEvents(path string, events []Event, mem memory.Allocator) error {
	rec := EventRecord(events, mem)
	defer rec.Release()
	if err := writeTable(path, rec, mem, EventsTable.dict...); err != nil {
		return fmt.Errorf("events %s: %w", path, err)
	}
	return nil
}

// EventRecord returns events as a record batch of EventSchema, for a
// PartWriter; the caller releases it.
func EventRecord(events []Event, mem memory.Allocator) arrow.Record {
	b := array.NewRecordBuilder(mem, EventSchema)
	defer b.Release()
	fs := b.Fields()
	str := func(i int, s string) { fs[i].(*array.StringBuilder).Append(s) }
	for _, e := range events {
		fs[0].(*array.Int64Builder).Append(e.VideoID)
		str(1, e.VideoPath)
		str(2, e.Camera)
		str(3, e.Kind)
		str(4, e.Name)
		if e.Direction == "" {
			fs[5].AppendNull()
		} else {
			str(5, e.Direction)
		}
		fs[6].(*array.Int64Builder).Append(e.TrackID)
		str(7, e.ClassName)
		fs[8].(*array.Int64Builder).Append(e.FrameIndex)
		fs[9].(*array.Float64Builder).Append(e.PTS)
		appendTime(fs[10], e.RecordedAt)
		fs[11].(*array.Float32Builder).Append(e.X)
		fs[12].(*array.Float32Builder).Append(e.Y)
		if e.Kind == "zone_exit" {
			fs[13].(*array.Float64Builder).Append(e.Dwell)
		} else {
			fs[13].AppendNull()
		}
		fs[14].(*array.BooleanBuilder).Append(e.Open)
	}
	return b.NewRecord()
}
