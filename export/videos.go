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
var VideoSchema = schemaOf(videoColumns)

// videoColumns are the videos table's columns, in order.
var videoColumns = []column[Video]{
	int64Column("video_id", func(v *Video) int64 { return v.VideoID }),
	stringColumn("path", func(v *Video) string { return v.Path }),
	int64Column("size", func(v *Video) int64 { return v.Size }),
	timeColumn("mtime", false, func(v *Video) time.Time { return v.ModTime }),
	stringColumn("status", func(v *Video) string { return v.Status }),
	optionalString("error", func(v *Video) string { return v.Error }),
	stringColumn("container", func(v *Video) string { return v.Container }),
	stringColumn("codec", func(v *Video) string { return v.Codec }),
	stringColumn("profile", func(v *Video) string { return v.Profile }),
	int32Column("width", func(v *Video) int32 { return v.Width }),
	int32Column("height", func(v *Video) int32 { return v.Height }),
	stringColumn("pix_fmt", func(v *Video) string { return v.PixelFormat }),
	int32Column("bit_depth", func(v *Video) int32 { return v.BitDepth }),
	float64Column("fps", func(v *Video) float64 { return v.FPS }),
	float64Column("duration", func(v *Video) float64 { return v.Duration }),
	int64Column("frames", func(v *Video) int64 { return v.Frames }),
	boolColumn("frames_estimated", func(v *Video) bool { return v.FramesEstimated }),
	int32Column("rotation", func(v *Video) int32 { return v.Rotation }),
	int64Column("bitrate", func(v *Video) int64 { return v.BitRate }),
	stringColumn("decoder", func(v *Video) string { return v.Decoder }),
	optionalString("decoder_note", func(v *Video) string { return v.DecoderNote }),
	int64Column("frames_decoded", func(v *Video) int64 { return v.FramesDecoded }),
	int64Column("frames_inferred", func(v *Video) int64 { return v.FramesInferred }),
	int64Column("corrupt_packets", func(v *Video) int64 { return v.CorruptPackets }),
	int64Column("detections", func(v *Video) int64 { return v.Detections }),
	float64Column("wall_seconds", func(v *Video) float64 { return v.WallSeconds }),
	int32Column("worker", func(v *Video) int32 { return v.Worker }),
	timeColumn("recorded_at", true, func(v *Video) time.Time { return v.RecordedAt }),
}

// WriteVideos writes videos.parquet at path atomically.
func WriteVideos(path string, videos []Video, mem memory.Allocator) error {
	rec := recordOf(VideoSchema, videoColumns, videos, mem)
	defer rec.Release()
	if err := writeTable(path, rec, mem, "path", "status", "container", "codec", "profile", "pix_fmt", "decoder"); err != nil {
		return fmt.Errorf("videos %s: %w", path, err)
	}
	return nil
}
