package export

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// EventSchema is the layout of the events files (docs/SCHEMA.md).
var EventSchema = schemaOf(eventColumns)

// eventColumns are the events table's columns, in order.
var eventColumns = []column[Event]{
	int64Column("video_id", func(e *Event) int64 { return e.VideoID }),
	stringColumn("video_path", func(e *Event) string { return e.VideoPath }),
	stringColumn("camera", func(e *Event) string { return e.Camera }),
	stringColumn("kind", func(e *Event) string { return e.Kind }),
	stringColumn("name", func(e *Event) string { return e.Name }),
	optionalString("direction", func(e *Event) string { return e.Direction }),
	int64Column("track_id", func(e *Event) int64 { return e.TrackID }),
	stringColumn("class_name", func(e *Event) string { return e.ClassName }),
	int64Column("frame_index", func(e *Event) int64 { return e.FrameIndex }),
	float64Column("pts_seconds", func(e *Event) float64 { return e.PTS }),
	timeColumn("recorded_at", true, func(e *Event) time.Time { return e.RecordedAt }),
	float32Column("x", func(e *Event) float32 { return e.X }),
	float32Column("y", func(e *Event) float32 { return e.Y }),
	optionalFloat64("dwell_seconds", func(e *Event) (float64, bool) { return e.Dwell, e.Kind == "zone_exit" }),
	boolColumn("open", func(e *Event) bool { return e.Open }),
}

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
	return recordOf(EventSchema, eventColumns, events, mem)
}
