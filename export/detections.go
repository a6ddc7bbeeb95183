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
var DetectionSchema = arrow.NewSchema(baseFields(detectionBase), nil)

// baseColumn is a base column of the detections table: its field and its
// array from the writer's slices.
type baseColumn struct {
	field arrow.Field
	array func(c *detectionColumns) arrow.Array
}

// detectionBase are the detections table's base columns, in order: the
// one place that declares them (the schema and the writer's records
// follow).
var detectionBase = []baseColumn{
	{arrow.Field{Name: "video_id", Type: arrow.PrimitiveTypes.Int64}, func(c *detectionColumns) arrow.Array { return sliceArray(c.videoID) }},
	{arrow.Field{Name: "video_path", Type: arrow.BinaryTypes.String}, func(c *detectionColumns) arrow.Array { return stringArray(c.path) }},
	{arrow.Field{Name: "frame_index", Type: arrow.PrimitiveTypes.Int64}, func(c *detectionColumns) arrow.Array { return sliceArray(c.frame) }},
	{arrow.Field{Name: "pts_seconds", Type: arrow.PrimitiveTypes.Float64}, func(c *detectionColumns) arrow.Array { return sliceArray(c.pts) }},
	{arrow.Field{Name: "class_id", Type: arrow.PrimitiveTypes.Int32}, func(c *detectionColumns) arrow.Array { return sliceArray(c.class) }},
	{arrow.Field{Name: "class_name", Type: arrow.BinaryTypes.String}, func(c *detectionColumns) arrow.Array { return stringArray(c.name) }},
	{arrow.Field{Name: "score", Type: arrow.PrimitiveTypes.Float32}, func(c *detectionColumns) arrow.Array { return sliceArray(c.score) }},
	{arrow.Field{Name: "x1", Type: arrow.PrimitiveTypes.Float32}, func(c *detectionColumns) arrow.Array { return sliceArray(c.x1) }},
	{arrow.Field{Name: "y1", Type: arrow.PrimitiveTypes.Float32}, func(c *detectionColumns) arrow.Array { return sliceArray(c.y1) }},
	{arrow.Field{Name: "x2", Type: arrow.PrimitiveTypes.Float32}, func(c *detectionColumns) arrow.Array { return sliceArray(c.x2) }},
	{arrow.Field{Name: "y2", Type: arrow.PrimitiveTypes.Float32}, func(c *detectionColumns) arrow.Array { return sliceArray(c.y2) }},
	{arrow.Field{Name: "track_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, func(c *detectionColumns) arrow.Array { return trackArray(c.track) }},
}

func baseFields(cols []baseColumn) []arrow.Field {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = c.field
	}
	return fs
}

// pointType is a pose's point: where it is in frame pixels, and the
// model's confidence that it is visible.
var pointType = arrow.StructOf(
	arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "score", Type: arrow.PrimitiveTypes.Float32},
)

// keypointsType is the keypoints column of o: a struct of the pose's
// points, each a field named after the point, in the model's order. Named
// fields, not a list of named points, so that a query says
// keypoints.left_wrist.y, and so that Parquet stores three plain float
// columns a point, without repetition levels or a name a point (a list's
// encoding cost a pose run a quarter of its pace).
func keypointsType(o DetectionOptions) arrow.DataType {
	names := o.keypointNames()
	fs := make([]arrow.Field, len(names))
	for i, n := range names {
		fs[i] = arrow.Field{Name: n, Type: pointType}
	}
	return arrow.StructOf(fs...)
}

// orientedType is an oriented box: centre, size and angle.
var orientedType = arrow.StructOf(
	arrow.Field{Name: "cx", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "cy", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "w", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "h", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "angle", Type: arrow.PrimitiveTypes.Float32},
)

// cornerType is a corner of an oriented box.
var cornerType = arrow.StructOf(
	arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32},
	arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Float32},
)

// rleType is a mask as COCO's uncompressed run-length encoding: the
// frame's size [height, width] and the runs' lengths.
var rleType = arrow.StructOf(
	arrow.Field{Name: "size", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	arrow.Field{Name: "counts", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
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
	// many a detection, named by KeypointNames (else, and where a name is
	// empty or repeats, "kp0", "kp1", ...).
	Keypoints     int
	KeypointNames []string
	// Masks adds the mask_area and mask_rle columns of a segmentation
	// model.
	Masks bool
}

// Schema is the layout of detections files with these options.
func (o DetectionOptions) Schema() *arrow.Schema {
	fs := DetectionSchema.Fields()
	for _, g := range optionalColumns {
		if g.on(o) {
			fs = append(fs, g.fields(o)...)
		}
	}
	if len(fs) == DetectionSchema.NumFields() {
		return DetectionSchema
	}
	return arrow.NewSchema(fs, nil)
}

// columnGroup is optional columns of the detections table: the run has
// them when on says so; fill appends a row's values to their builders, or,
// for a group the writer keeps in Go slices as it keeps the base columns,
// array makes its one column of the pending rows.
type columnGroup struct {
	fields func(DetectionOptions) []arrow.Field
	on     func(DetectionOptions) bool
	fill   func(o DetectionOptions, bs []array.Builder, d Detection)
	array  func(o DetectionOptions, c *detectionColumns) arrow.Array
}

// optionalColumns are the detections table's optional columns, in the
// order a file holds them after the base columns: the one place that
// knows them (a new group is an entry here).
var optionalColumns = []columnGroup{
	{
		fields: func(o DetectionOptions) []arrow.Field {
			return []arrow.Field{{Name: "keypoints", Type: keypointsType(o)}}
		},
		on:    func(o DetectionOptions) bool { return o.Keypoints > 0 },
		array: keypointsArray,
	},
	{
		fields: fixed([]arrow.Field{{Name: "obb", Type: orientedType}, {Name: "corners", Type: arrow.ListOf(cornerType)}}),
		on:     func(o DetectionOptions) bool { return o.Oriented },
		fill:   appendOriented,
	},
	{
		fields: fixed([]arrow.Field{{Name: "mask_area", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, {Name: "mask_rle", Type: rleType, Nullable: true}}),
		on:     func(o DetectionOptions) bool { return o.Masks },
		fill:   appendMask,
	},
	{
		fields: fixed([]arrow.Field{{Name: "recorded_at", Type: timestampUTC, Nullable: true}}),
		on:     func(o DetectionOptions) bool { return o.RecordedAt },
		fill:   func(_ DetectionOptions, bs []array.Builder, d Detection) { appendTime(bs[0], d.RecordedAt) },
	},
}

// fixed is a group's fields that options do not change.
func fixed(fs []arrow.Field) func(DetectionOptions) []arrow.Field {
	return func(DetectionOptions) []arrow.Field { return fs }
}

// keypointNames names o's points: KeypointNames, "kp<i>" where it names
// none or the name is empty or taken by an earlier point.
func (o DetectionOptions) keypointNames() []string {
	names := make([]string, o.Keypoints)
	seen := make(map[string]bool, o.Keypoints)
	for i := range names {
		if i < len(o.KeypointNames) && o.KeypointNames[i] != "" && !seen[o.KeypointNames[i]] {
			names[i] = o.KeypointNames[i]
		}
		seen[names[i]] = true
	}
	for i := range names {
		if names[i] == "" {
			names[i] = fmt.Sprintf("kp%d", i)
			for k := 2; seen[names[i]]; k++ {
				names[i] = fmt.Sprintf("kp%d_%d", i, k)
			}
			seen[names[i]] = true
		}
	}
	return names
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
	Mask           *Mask        // a segmentation model's mask, when the file has it
	RecordedAt     time.Time    // when the file has the column (zero: null)
}

// OrientedBox is an oriented box in frame pixels: centre, size, the angle
// in radians it is turned clockwise by, and its four corners.
type OrientedBox struct {
	CX, CY, W, H, Angle float32
	Corners             [4][2]float32
}

// Mask is a detection's instance mask over its frame: the pixels it
// covers, and COCO's uncompressed run-length encoding of it (alternate
// runs of 0s and 1s, starting with 0s, column by column over the
// Height×Width frame).
type Mask struct {
	Area          int64
	Height, Width int32
	Counts        []int32
}

// Keypoint is one point of a pose, in frame pixels.
type Keypoint struct {
	X, Y, Score float32
}

// rowsPerBatch is how many rows are buffered before they go to the Parquet
// encoder (maskBatchRows for rows with masks, each kilobytes wide);
// rowGroupRows bounds a row group.
const (
	rowsPerBatch  = 64 << 10
	maskBatchRows = 2 << 10
	rowGroupRows  = 1 << 20
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
// rows staged on their way to a part. Rows are kept as Go slices, one per
// column, and become a record batch every rowsPerBatch rows: appending a
// row costs a few slice appends, not a dozen Arrow builders' (the
// exporters of a dense run append millions a second). A pose's points
// are kept so too; the other optional columns go through a builder.
type DetectionWriter struct {
	opts    DetectionOptions
	path    string
	out     recordSink
	schema  *arrow.Schema
	cols    detectionColumns
	extra   *array.RecordBuilder // the optional columns; nil without
	groups  []extraGroup         // the optional column groups of extra, in order
	pending int
	rows    int64
}

// detectionColumns are the rows of the base columns not yet in a batch.
type detectionColumns struct {
	videoID, frame, track []int64
	pts                   []float64
	class                 []int32
	path, name            []string
	score, x1, y1, x2, y2 []float32
	points                [][]float32 // a pose's points: x, y and score of point i in points[3i], [3i+1], [3i+2]
}

// firstBatchRows is the rows a writer's columns first have room for: most
// videos', so that their columns are allocated once. Later batches are
// made for rowsPerBatch.
const firstBatchRows = 512

// make gives every column room for n rows, of keypoints points each.
func (c *detectionColumns) make(n, keypoints int) {
	c.points = make([][]float32, 3*keypoints)
	for i := range c.points {
		c.points[i] = make([]float32, 0, n)
	}
	c.videoID, c.frame, c.track = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	c.pts = make([]float64, 0, n)
	c.class = make([]int32, 0, n)
	c.path, c.name = make([]string, 0, n), make([]string, 0, n)
	c.score, c.x1, c.y1, c.x2, c.y2 = make([]float32, 0, n), make([]float32, 0, n), make([]float32, 0, n), make([]float32, 0, n), make([]float32, 0, n)
}

func newDetectionWriter(path string, mem memory.Allocator, o DetectionOptions, out recordSink, schema *arrow.Schema) *DetectionWriter {
	w := &DetectionWriter{opts: o, path: path, out: out, schema: schema}
	var built []arrow.Field
	for _, g := range optionalColumns {
		if g.on(o) && g.fill != nil {
			built = append(built, g.fields(o)...)
		}
	}
	var bs []array.Builder
	if len(built) > 0 {
		w.extra = array.NewRecordBuilder(mem, arrow.NewSchema(built, nil))
		bs = w.extra.Fields()
	}
	for _, g := range optionalColumns {
		switch {
		case !g.on(o):
		case g.fill != nil:
			k := len(g.fields(o))
			w.groups = append(w.groups, extraGroup{fill: g.fill, builders: bs[:k]})
			bs = bs[k:]
		default:
			w.groups = append(w.groups, extraGroup{array: g.array})
		}
	}
	return w
}

// NewDetectionWriter starts the detections Parquet file path (written
// under a temporary name until Commit), with the optional columns of o.
func NewDetectionWriter(path string, mem memory.Allocator, o DetectionOptions) (*DetectionWriter, error) {
	schema := o.Schema()
	p, err := createParquet(path, schema, mem, WriterProperties(mem, DetectionsTable.dict...))
	if err != nil {
		return nil, fmt.Errorf("detections %s: %w", path, err)
	}
	return newDetectionWriter(path, mem, o, p, schema), nil
}

// Append adds one row.
func (w *DetectionWriter) Append(d Detection) error {
	c := &w.cols
	if c.videoID == nil {
		c.make(min(firstBatchRows, rowsPerBatch), w.opts.Keypoints)
	}
	c.videoID = append(c.videoID, d.VideoID)
	c.path = append(c.path, d.VideoPath)
	c.frame = append(c.frame, d.FrameIndex)
	c.pts = append(c.pts, d.PTS)
	c.class = append(c.class, d.ClassID)
	c.name = append(c.name, d.ClassName)
	c.score = append(c.score, d.Score)
	c.x1 = append(c.x1, d.X1)
	c.y1 = append(c.y1, d.Y1)
	c.x2 = append(c.x2, d.X2)
	c.y2 = append(c.y2, d.Y2)
	c.track = append(c.track, d.TrackID)
	if len(w.groups) > 0 {
		w.appendExtra(d)
	}
	w.pending++
	w.rows++
	if w.pending >= rowsPerBatch || (w.opts.Masks && w.pending >= maskBatchRows) {
		return w.flush()
	}
	return nil
}

// extraGroup is an optional column group of a writer: how a row fills
// its builders, or how its column is made from the writer's slices.
type extraGroup struct {
	fill     func(o DetectionOptions, bs []array.Builder, d Detection)
	builders []array.Builder
	array    func(o DetectionOptions, c *detectionColumns) arrow.Array
}

// appendExtra appends d's optional columns.
func (w *DetectionWriter) appendExtra(d Detection) {
	if w.opts.Keypoints > 0 {
		appendPoints(w.cols.points, d.Keypoints)
	}
	for _, g := range w.groups {
		if g.fill != nil {
			g.fill(w.opts, g.builders, d)
		}
	}
}

// appendPoints appends a row's points to points (three slices a point);
// a point the row lacks is at 0,0 and unseen (score 0).
func appendPoints(points [][]float32, kps []Keypoint) {
	for i := 0; i < len(points)/3; i++ {
		var k Keypoint
		if i < len(kps) {
			k = kps[i]
		}
		points[3*i] = append(points[3*i], k.X)
		points[3*i+1] = append(points[3*i+1], k.Y)
		points[3*i+2] = append(points[3*i+2], k.Score)
	}
}

// keypointsArray is the keypoints column of the pending rows: a struct
// array of a struct array a point, over the rows' slices of x, y and
// score without a copy.
func keypointsArray(o DetectionOptions, c *detectionColumns) arrow.Array {
	n := len(c.videoID)
	t := keypointsType(o).(*arrow.StructType)
	points := make([]arrow.ArrayData, o.Keypoints)
	for p := range points {
		var xyz [3]arrow.ArrayData
		for f := range xyz {
			v := []float32{} // a writer of no rows made no slices
			if c.points != nil {
				v = c.points[3*p+f]
			}
			a := sliceArray(v)
			xyz[f] = a.Data()
			defer a.Release()
		}
		points[p] = array.NewData(pointType, n, []*memory.Buffer{nil}, xyz[:], 0, 0)
		defer points[p].Release()
	}
	data := array.NewData(t, n, []*memory.Buffer{nil}, points, 0, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

func appendOriented(_ DetectionOptions, bs []array.Builder, d Detection) {
	ob, cb := bs[0].(*array.StructBuilder), bs[1].(*array.ListBuilder)
	r := d.Oriented
	if r == nil {
		ob.AppendNull()
		cb.AppendNull()
		return
	}
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

func appendMask(_ DetectionOptions, bs []array.Builder, d Detection) {
	area, rle := bs[0].(*array.Int64Builder), bs[1].(*array.StructBuilder)
	m := d.Mask
	if m == nil {
		area.AppendNull()
		rle.AppendNull()
		return
	}
	area.Append(m.Area)
	rle.Append(true)
	size, counts := rle.FieldBuilder(0).(*array.ListBuilder), rle.FieldBuilder(1).(*array.ListBuilder)
	size.Append(true)
	size.ValueBuilder().(*array.Int32Builder).AppendValues([]int32{m.Height, m.Width}, nil)
	counts.Append(true)
	counts.ValueBuilder().(*array.Int32Builder).AppendValues(m.Counts, nil)
}

// record makes the pending rows a record batch, the base columns' slices
// becoming its buffers without a copy, and starts new slices.
func (w *DetectionWriter) record() arrow.Record {
	c := w.cols
	w.cols = detectionColumns{}
	n := len(c.videoID)
	cols := make([]arrow.Array, 0, w.schema.NumFields())
	for _, b := range detectionBase {
		cols = append(cols, b.array(&c))
	}
	var built []arrow.Array
	if w.extra != nil {
		ext := w.extra.NewRecord()
		defer ext.Release()
		built = ext.Columns()
	}
	for _, g := range w.groups {
		if g.array != nil {
			cols = append(cols, g.array(w.opts, &c))
			continue
		}
		for range g.builders {
			built[0].Retain()
			cols = append(cols, built[0])
			built = built[1:]
		}
	}
	rec := array.NewRecord(w.schema, cols, int64(n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

// fixedArray is an array of a fixed-width type over the bytes of values.
func fixedArray(t arrow.DataType, n int, values, validity []byte, nulls int) arrow.Array {
	var valid *memory.Buffer
	if validity != nil {
		valid = memory.NewBufferBytes(validity)
	}
	return array.MakeFromData(array.NewData(t, n, []*memory.Buffer{valid, memory.NewBufferBytes(values)}, nil, nulls, 0))
}

// trackArray is the track_id column: negative IDs are nulls.
func trackArray(ids []int64) arrow.Array {
	var validity []byte
	nulls := 0
	for i, id := range ids {
		if id >= 0 {
			continue
		}
		if validity == nil {
			validity = make([]byte, (len(ids)+7)/8)
			for k := range validity {
				validity[k] = 0xff
			}
		}
		validity[i/8] &^= 1 << (i % 8)
		ids[i] = 0
		nulls++
	}
	return fixedArray(arrow.PrimitiveTypes.Int64, len(ids), arrow.Int64Traits.CastToBytes(ids), validity, nulls)
}

// stringArray is a string array of ss, in one allocation of its bytes.
func stringArray(ss []string) arrow.Array {
	offsets := make([]int32, len(ss)+1)
	size := 0
	for i, s := range ss {
		size += len(s)
		offsets[i+1] = int32(size)
	}
	data := make([]byte, 0, size)
	for _, s := range ss {
		data = append(data, s...)
	}
	return array.MakeFromData(array.NewData(arrow.BinaryTypes.String, len(ss),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)), memory.NewBufferBytes(data)}, nil, 0, 0))
}

// Rows returns the number of rows appended.
func (w *DetectionWriter) Rows() int64 { return w.rows }

func (w *DetectionWriter) flush() error {
	if w.pending == 0 {
		return nil
	}
	rec := w.record()
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
		rec := w.record()
		err = w.out.write(rec)
		rec.Release()
	}
	w.release()
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
	w.release()
	w.out.abort()
}

func (w *DetectionWriter) release() {
	if w.extra != nil {
		w.extra.Release()
		w.extra = nil
	}
}
