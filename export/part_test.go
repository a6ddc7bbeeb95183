package export

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	_ "github.com/marcboeker/go-duckdb/v2"
)

// TestPartMixesMemoryAndStageFiles writes a part from videos whose rows
// are in memory and from one whose rows went to a stage file (past the
// writer's memory), pose columns included: every row read back by DuckDB,
// in the order written, in row groups of partRowGroupRows, and nothing
// left allocated.
func TestPartMixesMemoryAndStageFiles(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	o := DetectionOptions{Keypoints: 2, KeypointNames: []string{"a", "b"}}
	var staged []*Staged
	for v, n := range []int{3, 70000, 0, 5} { // video 1 spills at 1,000 rows
		w := StageDetections(filepath.Join(dir, fmt.Sprintf("%d.arrow", v)), mem, o, 1000)
		for i := 0; i < n; i++ {
			if err := w.Append(Detection{VideoID: int64(v), VideoPath: fmt.Sprintf("/v/%d.mp4", v), FrameIndex: int64(i), ClassName: "car",
				TrackID: int64(i%3) - 1, Keypoints: []Keypoint{{X: 1, Y: 2, Score: 0.9}, {X: 3, Y: 4, Score: 0.1}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		s := w.Staged()
		if (s.Path != "") != (n > 1000) || s.Rows != int64(n) {
			t.Fatalf("video %d: staged %+v", v, s)
		}
		staged = append(staged, s)
	}
	path, rows := writePart(t, dir, mem, staged...)
	if rows != 70008 {
		t.Errorf("%d rows written", rows)
	}
	db := duck(t)
	var n, ordered, kp, groups, untracked, nulls, paths int64
	q := fmt.Sprintf(`select count(*), count(*) filter (where video_id = lag_v or lag_v is null or video_id > lag_v),
		count(*) filter (where keypoints.b.x = 3 and keypoints.a.score > 0.5 and keypoints.b.score < 0.5),
		count(*) filter (where track_id is null and frame_index %% 3 = 0), count(*) filter (where track_id is null),
		count(*) filter (where video_path = '/v/' || video_id || '.mp4')
		from (select *, lag(video_id) over () as lag_v from read_parquet('%s'))`, path)
	if err := db.QueryRow(q).Scan(&n, &ordered, &kp, &untracked, &nulls, &paths); err != nil {
		t.Fatal(err)
	}
	// Frames i with i%3 == 0 have no track: 1 + 23,334 + 0 + 2 of them.
	if untracked != 23337 || nulls != untracked || paths != n {
		t.Errorf("%d null tracks (%d where the writer gave none), %d rows with their video's path", nulls, untracked, paths)
	}
	if err := db.QueryRow(fmt.Sprintf("select count(distinct row_group_id) from parquet_metadata('%s')", path)).Scan(&groups); err != nil {
		t.Fatal(err)
	}
	if n != 70008 || ordered != n || kp != n || groups != 2 {
		t.Errorf("%d rows, %d in order, %d with their points, %d row groups (want 70008 each, 2 groups)", n, ordered, kp, groups)
	}
}

// TestPartPoseRowGroupOfASlice: a video of more rows than a row group,
// held in memory as one batch, leaves its last rows a slice of that batch,
// which becomes the part's last row group on its own: every row reads
// back with its points named and placed.
func TestPartPoseRowGroupOfASlice(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	o := DetectionOptions{Keypoints: 2, KeypointNames: []string{"a", "b"}}
	rows := partRowGroupRows + 10
	w := StageDetections(filepath.Join(dir, "v.arrow"), mem, o, 1<<30)
	for i := 0; i < rows; i++ {
		if err := w.Append(Detection{VideoID: 1, VideoPath: "/v/1.mp4", FrameIndex: int64(i), ClassName: "car",
			Keypoints: []Keypoint{{X: float32(i), Y: 2, Score: 0.9}, {X: 3, Y: 4, Score: 0.1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	path, _ := writePart(t, dir, mem, w.Staged())
	db := duck(t)
	var n, named int64
	q := fmt.Sprintf(`select count(*), count(*) filter (where keypoints.a.x = frame_index and keypoints.b.y = 4 and json_keys(to_json(keypoints)) = ['a', 'b'])
		from read_parquet('%s')`, path)
	if err := db.QueryRow(q).Scan(&n, &named); err != nil {
		t.Fatal(err)
	}
	if n != int64(rows) || named != n {
		t.Errorf("%d rows, %d with their points named and placed; want %d", n, named, rows)
	}
}

// writePart gathers staged into dir/part.parquet as a compactor does,
// releasing them, and returns its path and the rows written.
func writePart(t *testing.T, dir string, mem memory.Allocator, staged ...*Staged) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "part.parquet")
	pw := NewPartWriter(path, DetectionsTable, mem)
	for _, s := range staged {
		if err := pw.Append(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		s.Release()
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pw.Publish(); err != nil {
		t.Fatal(err)
	}
	return path, pw.Rows()
}
