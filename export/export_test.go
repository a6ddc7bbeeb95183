package export

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	_ "github.com/marcboeker/go-duckdb/v2"
)

func duck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDetectionsRoundTripDuckDB(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "detections", "42.parquet")
	w, err := NewDetectionWriter(path, mem, DetectionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 150_000 // more than one buffered batch
	for i := 0; i < n; i++ {
		d := Detection{VideoID: 42, VideoPath: "/archive/cam 1/ünïcode.mp4", FrameIndex: int64(i / 3), PTS: float64(i/3) / 25,
			ClassID: int32(i % 3), ClassName: []string{"person", "car", "bus"}[i%3], Score: float32(i%100) / 100,
			X1: float32(i % 640), Y1: 1, X2: float32(i%640) + 10, Y2: 11, TrackID: int64(i%7) - 1}
		if err := w.Append(d); err != nil {
			t.Fatal(err)
		}
	}
	// Before Commit nothing is visible under the final name.
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file visible before commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "detections", ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	db := duck(t)
	var rows, frames, nullTracks, cars int64
	var sumX float64
	q := fmt.Sprintf(`select count(*), count(distinct frame_index), count(*) filter (track_id is null),
		count(*) filter (class_name = 'car' and class_id = 1), sum(x1) from read_parquet('%s')`, path)
	if err := db.QueryRow(q).Scan(&rows, &frames, &nullTracks, &cars, &sumX); err != nil {
		t.Fatal(err)
	}
	var wantSum float64
	var wantNull int64
	for i := 0; i < n; i++ {
		wantSum += float64(i % 640)
		if i%7 == 0 {
			wantNull++
		}
	}
	if rows != n || frames != n/3 || nullTracks != wantNull || cars != n/3 || sumX != wantSum {
		t.Errorf("duckdb read rows %d frames %d null tracks %d cars %d sum %v; want %d %d %d %d %v",
			rows, frames, nullTracks, cars, sumX, n, n/3, wantNull, n/3, wantSum)
	}
	var path0 string
	var pts float64
	if err := db.QueryRow(fmt.Sprintf(`select video_path, pts_seconds from read_parquet('%s') where frame_index = 25 limit 1`, path)).Scan(&path0, &pts); err != nil {
		t.Fatal(err)
	}
	if path0 != "/archive/cam 1/ünïcode.mp4" || pts != 1 {
		t.Errorf("row of frame 25: %q %v", path0, pts)
	}
	var codec string
	if err := db.QueryRow(fmt.Sprintf(`select distinct compression from parquet_metadata('%s') where path_in_schema = 'score'`, path)).Scan(&codec); err != nil {
		t.Fatal(err)
	}
	if codec != "ZSTD" {
		t.Errorf("compression %s, want ZSTD", codec)
	}
}

func TestDetectionWriterAbortAndEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	w, err := NewDetectionWriter(filepath.Join(dir, "a.parquet"), mem, DetectionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Append(Detection{VideoID: 1, TrackID: -1})
	w.Abort()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("abort left %v", left)
	}
	// A video without detections still gets a readable, empty file.
	empty := filepath.Join(dir, "empty.parquet")
	w, err = NewDetectionWriter(empty, mem, DetectionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := duck(t).QueryRow(fmt.Sprintf("select count(*) from read_parquet('%s')", empty)).Scan(&n); err != nil || n != 0 {
		t.Errorf("empty file: %d rows, %v", n, err)
	}
}

func TestVideosDuckDB(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path := filepath.Join(t.TempDir(), "videos.parquet")
	mt := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	vs := []Video{
		{VideoID: 1, Path: "a.mp4", Size: 10, ModTime: mt, Status: "done", Codec: "h264", Width: 320, Height: 240,
			Frames: 50, FramesDecoded: 50, FramesInferred: 25, Detections: 7, Decoder: "cpu", WallSeconds: 1.5},
		{VideoID: 2, Path: "b.mp4", ModTime: mt, Status: "failed", Error: "open b.mp4: empty file (0 bytes)"},
	}
	if err := WriteVideos(path, vs, mem); err != nil {
		t.Fatal(err)
	}
	rows, err := duck(t).Query(fmt.Sprintf("select video_id, status, error, frames_inferred, detections, mtime from read_parquet('%s') order by video_id", path))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, inferred, dets int64
		var status string
		var errStr sql.NullString
		var m time.Time
		if err := rows.Scan(&id, &status, &errStr, &inferred, &dets, &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %q %v %d %d %s", id, status, errStr.String, errStr.Valid, inferred, dets, m.UTC().Format(time.RFC3339)))
	}
	want := []string{
		`1 done "" false 25 7 2026-11-23T12:00:00Z`,
		`2 failed "open b.mp4: empty file (0 bytes)" true 0 0 2026-11-23T12:00:00Z`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
