package export

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Video is one row of videos.parquet: every input of the run, what probing
// found, and what the run did with it.
type Video struct {
	VideoID         int64
	Path            string
	Size            int64
	ModTime         time.Time
	Status          string // "done" or "failed"
	Error           string
	Container       string
	Codec           string
	Profile         string
	Width, Height   int32
	PixelFormat     string
	BitDepth        int32
	FPS             float64
	Duration        float64
	Frames          int64 // from the container, or estimated
	FramesEstimated bool
	Rotation        int32
	BitRate         int64
	Decoder         string // "cpu", "nvdec", …
	DecoderNote     string // why not NVDEC, when it was wanted
	FramesDecoded   int64
	FramesInferred  int64
	CorruptPackets  int64
	Detections      int64
	WallSeconds     float64
	Worker          int32
	// RecordedAt is when the recording started, by the run's
	// --recorded-at (zero: unknown, null).
	RecordedAt time.Time
}

// timestampUTC is the type of every time column: microseconds, UTC.
var timestampUTC = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// appendTime appends t to a time column, null when t is zero (unknown).
func appendTime(b array.Builder, t time.Time) {
	if t.IsZero() {
		b.AppendNull()
		return
	}
	b.(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMicro()))
}

// VideoSchema is the layout of videos.parquet (docs/SCHEMA.md).
var VideoSchema = arrow.NewSchema([]arrow.Field{
	{Name: "video_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "path", Type: arrow.BinaryTypes.String},
	{Name: "size", Type: arrow.PrimitiveTypes.Int64},
	{Name: "mtime", Type: timestampUTC},
	{Name: "status", Type: arrow.BinaryTypes.String},
	{Name: "error", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "container", Type: arrow.BinaryTypes.String},
	{Name: "codec", Type: arrow.BinaryTypes.String},
	{Name: "profile", Type: arrow.BinaryTypes.String},
	{Name: "width", Type: arrow.PrimitiveTypes.Int32},
	{Name: "height", Type: arrow.PrimitiveTypes.Int32},
	{Name: "pix_fmt", Type: arrow.BinaryTypes.String},
	{Name: "bit_depth", Type: arrow.PrimitiveTypes.Int32},
	{Name: "fps", Type: arrow.PrimitiveTypes.Float64},
	{Name: "duration", Type: arrow.PrimitiveTypes.Float64},
	{Name: "frames", Type: arrow.PrimitiveTypes.Int64},
	{Name: "frames_estimated", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "rotation", Type: arrow.PrimitiveTypes.Int32},
	{Name: "bitrate", Type: arrow.PrimitiveTypes.Int64},
	{Name: "decoder", Type: arrow.BinaryTypes.String},
	{Name: "decoder_note", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "frames_decoded", Type: arrow.PrimitiveTypes.Int64},
	{Name: "frames_inferred", Type: arrow.PrimitiveTypes.Int64},
	{Name: "corrupt_packets", Type: arrow.PrimitiveTypes.Int64},
	{Name: "detections", Type: arrow.PrimitiveTypes.Int64},
	{Name: "wall_seconds", Type: arrow.PrimitiveTypes.Float64},
	{Name: "worker", Type: arrow.PrimitiveTypes.Int32},
	{Name: "recorded_at", Type: timestampUTC, Nullable: true},
}, nil)

// WriteVideos writes videos.parquet at path atomically.
func WriteVideos(path string, videos []Video, mem memory.Allocator) error {
	b := array.NewRecordBuilder(mem, VideoSchema)
	defer b.Release()
	fs := b.Fields()
	str := func(i int, s string) { fs[i].(*array.StringBuilder).Append(s) }
	nullable := func(i int, s string) {
		if s == "" {
			fs[i].AppendNull()
		} else {
			str(i, s)
		}
	}
	i64 := func(i int, v int64) { fs[i].(*array.Int64Builder).Append(v) }
	i32 := func(i int, v int32) { fs[i].(*array.Int32Builder).Append(v) }
	f64 := func(i int, v float64) { fs[i].(*array.Float64Builder).Append(v) }
	for _, v := range videos {
		i64(0, v.VideoID)
		str(1, v.Path)
		i64(2, v.Size)
		fs[3].(*array.TimestampBuilder).Append(arrow.Timestamp(v.ModTime.UnixMicro()))
		str(4, v.Status)
		nullable(5, v.Error)
		str(6, v.Container)
		str(7, v.Codec)
		str(8, v.Profile)
		i32(9, v.Width)
		i32(10, v.Height)
		str(11, v.PixelFormat)
		i32(12, v.BitDepth)
		f64(13, v.FPS)
		f64(14, v.Duration)
		i64(15, v.Frames)
		fs[16].(*array.BooleanBuilder).Append(v.FramesEstimated)
		i32(17, v.Rotation)
		i64(18, v.BitRate)
		str(19, v.Decoder)
		nullable(20, v.DecoderNote)
		i64(21, v.FramesDecoded)
		i64(22, v.FramesInferred)
		i64(23, v.CorruptPackets)
		i64(24, v.Detections)
		f64(25, v.WallSeconds)
		i32(26, v.Worker)
		appendTime(fs[27], v.RecordedAt)
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := writeTable(path, rec, mem, "path", "status", "container", "codec", "profile", "pix_fmt", "decoder"); err != nil {
		return fmt.Errorf("videos %s: %w", path, err)
	}
	return nil
}
