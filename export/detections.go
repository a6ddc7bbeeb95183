package export

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
)

// DetectionSchema is the layout of the detections files (docs/SCHEMA.md).
var DetectionSchema = arrow.NewSchema([]arrow.Field{
	{Name: "video_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "video_path", Type: arrow.BinaryTypes.String},
	{Name: "frame_index", Type: arrow.PrimitiveTypes.Int64},
	{Name: "pts_seconds", Type: arrow.PrimitiveTypes.Float64},
	{Name: "class_id", Type: arrow.PrimitiveTypes.Int32},
	{Name: "class_name", Type: arrow.BinaryTypes.String},
	{Name: "score", Type: arrow.PrimitiveTypes.Float32},
	{Name: "x1", Type: arrow.PrimitiveTypes.Float32},
	{Name: "y1", Type: arrow.PrimitiveTypes.Float32},
	{Name: "x2", Type: arrow.PrimitiveTypes.Float32},
	{Name: "y2", Type: arrow.PrimitiveTypes.Float32},
	{Name: "track_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

// keypointType is a keypoints list's element: the point's name, where it
// is in frame pixels, and the model's confidence that it is visible.
var keypointType = arrow.StructOf(
	arrow.Field{Name: "name", Type: arrow.BinaryTypes.String},
	arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "score", Type: arrow.PrimitiveTypes.Float32},
)

// orientedType is an oriented box: centre, size and angle.
var orientedType = arrow.StructOf(
	arrow.Field{Name: "cx", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "cy", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "w", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "h", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "angle", Type: arrow.PrimitiveTypes.Float32},
)

// pointType is a corner of an oriented box.
var pointType = arrow.StructOf(
	arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Float32},
)

// DetectionOptions are the optional columns of a detections file.
type DetectionOptions struct {
	// RecordedAt adds the recorded_at column: the detection's wall-clock
	// time (null where the video's start is unknown).
	RecordedAt bool
	// Oriented adds the obb and corners columns of an oriented-box
	// model.
	Oriented bool
	// Keypoints adds the keypoints column: a pose model's points, this
	// many a detection, named by KeypointNames (else "kp0", "kp1", ...).
	Keypoints     int
	KeypointNames []string
}

// Schema is the layout of detections files with these options.
func (o DetectionOptions) Schema() *arrow.Schema {
	fs := DetectionSchema.Fields()
	if o.Keypoints > 0 {
		fs = append(fs, arrow.Field{Name: "keypoints", Type: arrow.ListOf(keypointType)})
	}
	if o.Oriented {
		fs = append(fs, arrow.Field{Name: "obb", Type: orientedType}, arrow.Field{Name: "corners", Type: arrow.ListOf(pointType)})
	}
	if o.RecordedAt {
		fs = append(fs, arrow.Field{Name: "recorded_at", Type: timestampUTC, Nullable: true})
	}
	return arrow.NewSchema(fs, nil)
}

func (o DetectionOptions) keypointName(i int) string {
	if i < len(o.KeypointNames) {
		return o.KeypointNames[i]
	}
	return fmt.Sprintf("kp%d", i)
}

// Detection is one row of a detections file. Boxes are in pixels of the
// upright frame (after rotation), origin top-left.
type Detection struct {
	VideoID        int64
	VideoPath      string
	FrameIndex     int64
	PTS            float64
	ClassID        int32
	ClassName      string
	Score          float32
	X1, Y1, X2, Y2 float32
	TrackID        int64        // < 0: no track (null)
	Keypoints      []Keypoint   // a pose model's points, when the file has them
	Oriented       *OrientedBox // an OBB model's box, when the file has it
	RecordedAt     time.Time    // when the file has the column (zero: null)
}

// OrientedBox is an oriented box in frame pixels: centre, size, the angle
// in radians it is turned clockwise by, and its four corners.
type OrientedBox struct {
	CX, CY, W, H, Angle float32
	Corners             [4][2]float32
}

// Keypoint is one point of a pose, in frame pixels.
type Keypoint struct {
	X, Y, Score float32
}

// rowsPerBatch is how many rows are buffered before they go to the Parquet
// encoder; rowGroupRows bounds a row group.
const (
	rowsPerBatch = 64 << 10
	rowGroupRows = 1 << 20
)

// WriterProperties are the Parquet settings of every file dsbatch writes:
// zstd, dictionary encoding for the string columns given, 1M-row groups.
// Compression goes through pooledZstd (see zstd.go).
func WriterProperties(mem memory.Allocator, dictColumns ...string) *parquet.WriterProperties {
	registerZstd()
	opts := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(rowGroupRows),
		parquet.WithCreatedBy("dsbatch"),
	}
	for _, c := range dictColumns {
		opts = append(opts, parquet.WithDictionaryFor(c, true))
	}
	return parquet.NewWriterProperties(opts...)
}

// DetectionWriter writes the detections of one video: a Parquet file, or
// a stage file that a run gathers into a part.
type DetectionWriter struct {
	opts    DetectionOptions
	path    string
	out     recordSink
	b       *array.RecordBuilder
	pending int
	rows    int64
}

// NewDetectionWriter starts the detections Parquet file path (written
// under a temporary name until Commit), with the optional columns of o.
func NewDetectionWriter(path string, mem memory.Allocator, o DetectionOptions) (*DetectionWriter, error) {
	schema := o.Schema()
	p, err := createParquet(path, schema, mem, WriterProperties(mem, DetectionsTable.dict...))
	if err != nil {
		return nil, fmt.Errorf("detections %s: %w", path, err)
	}
	return &DetectionWriter{opts: o, path: path, out: p, b: array.NewRecordBuilder(mem, schema)}, nil
}

// StageDetections starts the stage file path of one video's detections
// (see ReadStage), with the optional columns of o.
func StageDetections(path string, mem memory.Allocator, o DetectionOptions) (*DetectionWriter, error) {
	schema := o.Schema()
	st, err := createStage(path, schema, mem)
	if err != nil {
		return nil, fmt.Errorf("detections %s: %w", path, err)
	}
	return &DetectionWriter{opts: o, path: path, out: st, b: array.NewRecordBuilder(mem, schema)}, nil
}

// Append adds one row.
func (w *DetectionWriter) Append(d Detection) error {
	fs := w.b.Fields()
	fs[0].(*array.Int64Builder).Append(d.VideoID)
	fs[1].(*array.StringBuilder).Append(d.VideoPath)
	fs[2].(*array.Int64Builder).Append(d.FrameIndex)
	fs[3].(*array.Float64Builder).Append(d.PTS)
	fs[4].(*array.Int32Builder).Append(d.ClassID)
	fs[5].(*array.StringBuilder).Append(d.ClassName)
	fs[6].(*array.Float32Builder).Append(d.Score)
	fs[7].(*array.Float32Builder).Append(d.X1)
	fs[8].(*array.Float32Builder).Append(d.Y1)
	fs[9].(*array.Float32Builder).Append(d.X2)
	fs[10].(*array.Float32Builder).Append(d.Y2)
	if d.TrackID < 0 {
		fs[11].AppendNull()
	} else {
		fs[11].(*array.Int64Builder).Append(d.TrackID)
	}
	next := 12
	if w.opts.Keypoints > 0 {
		lb := fs[next].(*array.ListBuilder)
		next++
		lb.Append(true)
		sb := lb.ValueBuilder().(*array.StructBuilder)
		name := sb.FieldBuilder(0).(*array.StringBuilder)
		x, y, s := sb.FieldBuilder(1).(*array.Float32Builder), sb.FieldBuilder(2).(*array.Float32Builder), sb.FieldBuilder(3).(*array.Float32Builder)
		for i, k := range d.Keypoints {
			sb.Append(true)
			name.Append(w.opts.keypointName(i))
			x.Append(k.X)
			y.Append(k.Y)
			s.Append(k.Score)
		}
	}
	if w.opts.Oriented {
		ob, cb := fs[next].(*array.StructBuilder), fs[next+1].(*array.ListBuilder)
		next += 2
		r := d.Oriented
		if r == nil {
			ob.AppendNull()
			cb.AppendNull()
		} else {
			ob.Append(true)
			for i, v := range []float32{r.CX, r.CY, r.W, r.H, r.Angle} {
				ob.FieldBuilder(i).(*array.Float32Builder).Append(v)
			}
			cb.Append(true)
			pb := cb.ValueBuilder().(*array.StructBuilder)
			for _, c := range r.Corners {
				pb.Append(true)
				pb.FieldBuilder(0).(*array.Float32Builder).Append(c[0])
				pb.FieldBuilder(1).(*array.Float32Builder).Append(c[1])
			}
		}
	}
	if w.opts.RecordedAt {
		appendTime(fs[next], d.RecordedAt)
	}
	w.pending++
	w.rows++
	if w.pending >= rowsPerBatch {
		return w.flush()
	}
	return nil
}

// Rows returns the number of rows appended.
func (w *DetectionWriter) Rows() int64 { return w.rows }

func (w *DetectionWriter) flush() error {
	if w.pending == 0 {
		return nil
	}
	rec := w.b.NewRecord()
	defer rec.Release()
	w.pending = 0
	if err := w.out.write(rec); err != nil {
		return fmt.Errorf("detections %s: %w", w.path, err)
	}
	return nil
}

// Commit finishes the file and renames it into place.
func (w *DetectionWriter) Commit() error {
	err := w.flush()
	if err == nil && w.rows == 0 {
		// No batch was written: write the empty one, so that the file
		// still has its schema and reads as a table of no rows.
		rec := w.b.NewRecord()
		err = w.out.write(rec)
		rec.Release()
	}
	w.b.Release()
	if err != nil {
		w.out.abort()
		return err
	}
	if err := w.out.commit(); err != nil {
		return fmt.Errorf("detections %s: %w", w.path, err)
	}
	return nil
}

// Abort discards the file.
func (w *DetectionWriter) Abort() {
	w.b.Release()
	w.out.abort()
}
