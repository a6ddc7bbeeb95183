package export

import (
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Staged is one video's rows of one table on their way to a part: held in
// memory, or in a stage file (see ReadStage) once they outgrew the memory
// the writer was given. A video's rows in memory cost no file at all,
// which is what lets a run write many small videos fast; a long video's
// rows go to disk as they come, so memory stays bounded.
type Staged struct {
	Path    string         // the stage file; "" when in memory
	Records []arrow.Record // the rows, when in memory
	Rows    int64
}

// Release releases the records held in memory.
func (s *Staged) Release() {
	if s == nil {
		return
	}
	for _, r := range s.Records {
		r.Release()
	}
	s.Records = nil
}

// spillSink holds record batches in memory up to limit rows, then moves
// them to a stage file at path and writes on there.
type spillSink struct {
	path   string
	schema *arrow.Schema
	mem    memory.Allocator
	limit  int64
	st     Staged
	file   *stageFile
}

func (s *spillSink) write(rec arrow.Record) error {
	s.st.Rows += rec.NumRows()
	if s.file != nil {
		return s.file.write(rec)
	}
	rec.Retain()
	s.st.Records = append(s.st.Records, rec)
	if s.limit > 0 && s.st.Rows <= s.limit {
		return nil
	}
	f, err := createStage(s.path, s.schema, s.mem)
	if err != nil {
		return err
	}
	s.file = f
	for _, r := range s.st.Records {
		if err := f.write(r); err != nil {
			return err
		}
	}
	s.st.Release()
	return nil
}

func (s *spillSink) commit() error {
	if s.file == nil {
		return nil
	}
	s.st.Path = s.path
	return s.file.commit()
}

func (s *spillSink) abort() {
	s.st.Release()
	if s.file != nil {
		s.file.abort()
	}
}

// StageDetections starts the detections of one video on their way to a
// part, with the optional columns of o: held in memory up to memRows rows,
// then in the stage file path (at once, for memRows 0). Staged, after Commit, says where they are.
func StageDetections(path string, mem memory.Allocator, o DetectionOptions, memRows int64) *DetectionWriter {
	schema := o.Schema()
	return newDetectionWriter(path, mem, o, &spillSink{path: path, schema: schema, mem: mem, limit: memRows}, schema)
}

// Staged returns the rows of a writer from StageDetections, after Commit;
// nil for a writer of a Parquet file. The caller releases them.
func (w *DetectionWriter) Staged() *Staged {
	if s, ok := w.out.(*spillSink); ok {
		return &s.st
	}
	return nil
}

// StageTracks puts the tracks of one video on their way to a part: in
// memory up to memRows rows, else in the stage file path (always, for
// memRows 0).
func StageTracks(path string, tracks []Track, mem memory.Allocator, memRows int64) (*Staged, error) {
	rec := trackRecord(tracks, mem)
	defer rec.Release()
	s := &spillSink{path: path, schema: TrackSchema, mem: mem, limit: memRows}
	if err := s.write(rec); err != nil {
		s.abort()
		return nil, err
	}
	if err := s.commit(); err != nil {
		return nil, err
	}
	return &s.st, nil
}
