package job

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/dsbatch/dsbatch/export"
)

// stageVideos writes, as a run's exporters do for videos too long to hold
// in memory, each video's detections (filled by fill; tracks too when the
// folder's settings say tracking) to stage files, and its record; with
// gather, it then gathers them into parts as the compactor does.
func stageVideos(tb testing.TB, o *outDir, vs []export.Video, gather bool, fill func(export.Video, *export.DetectionWriter)) {
	tb.Helper()
	mem := memory.NewGoAllocator()
	settings := o.path(stateDir, settingsFile)
	var s Settings
	if b, err := os.ReadFile(settings); err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			tb.Fatal(err)
		}
	} else if err := writeJSON(settings, s); err != nil {
		tb.Fatal(err)
	}
	for _, v := range vs {
		w := export.StageDetections(o.stagePath(v.VideoID, detectionsDir), mem, export.DetectionOptions{}, 0)
		fill(v, w)
		if err := w.Commit(); err != nil {
			tb.Fatal(err)
		}
		if s.Track {
			tr := []export.Track{{VideoID: v.VideoID, VideoPath: v.Path, TrackID: 1, ClassName: "person"}}
			if _, err := export.StageTracks(o.stagePath(v.VideoID, tracksDir), tr, mem, 0); err != nil {
				tb.Fatal(err)
			}
		}
		if err := o.saveRecord(v); err != nil {
			tb.Fatal(err)
		}
	}
	if !gather {
		return
	}
	c := &compactor{o: o, track: s.Track, mem: mem, rows: partRows}
	for _, v := range vs {
		if err := c.add(context.Background(), staged{rec: v}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := c.flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// fillFrames appends n frames of k boxes each to a video's detections.
func fillFrames(tb testing.TB, n, k int) func(export.Video, *export.DetectionWriter) {
	return func(v export.Video, w *export.DetectionWriter) {
		for f := 0; f < n; f++ {
			for j := 0; j < k; j++ {
				d := export.Detection{VideoID: v.VideoID, VideoPath: v.Path, FrameIndex: int64(f), ClassName: "car", Score: 0.5,
					X1: float32(j), Y1: 1, X2: float32(j) + 10, Y2: 11, TrackID: int64(j + 1)}
				if err := w.Append(d); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

func asStaged(vs []export.Video) []staged {
	var out []staged
	for _, v := range vs {
		out = append(out, staged{rec: v})
	}
	return out
}

func testVideos(n int) []export.Video {
	var vs []export.Video
	for i := 0; i < n; i++ {
		// IDs out of order: parts sort them.
		id := int64((i*7919)%1000 + 1)
		vs = append(vs, export.Video{VideoID: id, Path: fmt.Sprintf("/v/%03d.mp4", i), Status: "done", FramesInferred: 3, Detections: 6})
	}
	return vs
}

func openTestOut(t *testing.T, track bool) *outDir {
	t.Helper()
	o, err := openOut(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.close)
	if err := writeJSON(o.path(stateDir, settingsFile), Settings{Track: track}); err != nil {
		t.Fatal(err)
	}
	return o
}

func duck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestGatherParts: staged videos become parts whose rows are sorted by
// (video_id, frame_index), whose manifests hold the records, and which
// leave no stage file nor per-video record behind.
func TestGatherParts(t *testing.T) {
	o := openTestOut(t, true)
	vs := testVideos(9)
	stageVideos(t, o, vs[:5], true, fillFrames(t, 3, 2))
	stageVideos(t, o, vs[5:], true, fillFrames(t, 3, 2))
	st, err := o.loadState(context.Background(), true, true, memory.NewGoAllocator())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.parts) != 2 || len(st.records) != 9 || len(st.staged) != 0 || st.broken != 0 {
		t.Fatalf("parts %d, records %d, staged %d, broken %d", len(st.parts), len(st.records), len(st.staged), st.broken)
	}
	for _, dir := range []string{recordsDir, stagingDir} {
		if left, _ := listDir(o.path(stateDir, dir), ""); len(left) != 0 {
			t.Errorf("%s left after gathering: %v", dir, left)
		}
	}
	db := duck(t)
	det := filepath.Join(o.root, detectionsDir, "*.parquet")
	if got := queryInts(t, db, "select count(*) from read_parquet('"+det+"')"); fmt.Sprint(got) != "[54]" {
		t.Errorf("rows %v, want 54", got)
	}
	if got := queryInts(t, db, "select count(*) from (select distinct video_id, frame_index, track_id from read_parquet('"+det+"'))"); fmt.Sprint(got) != "[54]" {
		t.Errorf("distinct rows %v: a row twice", got)
	}
	if got := queryInts(t, db, "select count(*) from read_parquet('"+filepath.Join(o.root, tracksDir, "*.parquet")+"')"); fmt.Sprint(got) != "[9]" {
		t.Errorf("tracks %v, want 9", got)
	}
	for _, m := range st.parts {
		ids := queryInts(t, db, "select video_id from read_parquet('"+m.file(o, detectionsDir)+"')")
		if !slices.IsSorted(ids) {
			t.Errorf("part %s not sorted by video: %v", m.Part, ids)
		}
		if m.Rows[detectionsDir] != int64(len(ids)) {
			t.Errorf("manifest says %d rows, part has %d", m.Rows[detectionsDir], len(ids))
		}
	}
	files, err := VideoFiles(o.root, vs[6].VideoID)
	if err != nil || files[detectionsDir] == "" || files[tracksDir] == "" {
		t.Fatalf("VideoFiles: %v, %v", files, err)
	}
	if _, err := VideoFiles(o.root, 123456789); err == nil {
		t.Error("VideoFiles found a video no part holds")
	}
}

// TestRepairAfterKill puts the folder in each state a kill can leave it
// in, between the steps of gathering a part, and checks that opening it
// again gives every finished video exactly once: in a published part, or
// staged for the next part.
func TestRepairAfterKill(t *testing.T) {
	mem := memory.NewGoAllocator()
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		// kill leaves the folder as a kill at that step would, from five
		// staged videos.
		kill       func(t *testing.T, o *outDir, vs []export.Video)
		parts      int // published parts after repair
		staged     int // videos staged after repair
		records    int
		broken     int
		detections int // rows readers see
	}{
		{"before the manifest", func(t *testing.T, o *outDir, vs []export.Video) {
			// Parts written under temporary names: the next opening
			// removes them as any temporary file.
		}, 0, 5, 5, 0, 0},
		{"manifest written, nothing published", func(t *testing.T, o *outDir, vs []export.Video) {
			m := &manifest{Part: newPartName(), Tables: []string{detectionsDir, tracksDir}, Videos: vs}
			if err := writeJSON(o.manifestPath(m.Part), m); err != nil {
				t.Fatal(err)
			}
		}, 0, 5, 5, 1, 0},
		{"detections published, tracks not", func(t *testing.T, o *outDir, vs []export.Video) {
			m, err := o.gather(ctx, asStaged(vs), true, mem)
			if err != nil {
				t.Fatal(err)
			}
			// Undo the end: stage files and records back, tracks part gone.
			stageVideos(t, o, vs, false, fillFrames(t, 3, 2))
			os.Remove(m.file(o, tracksDir))
		}, 0, 5, 5, 1, 0},
		{"published, staged rows not yet removed", func(t *testing.T, o *outDir, vs []export.Video) {
			if _, err := o.gather(ctx, asStaged(vs), true, mem); err != nil {
				t.Fatal(err)
			}
			stageVideos(t, o, vs, false, fillFrames(t, 3, 2))
		}, 1, 0, 5, 0, 30},
		{"a stage file cut short, a stage file without record, a record without rows", func(t *testing.T, o *outDir, vs []export.Video) {
			p := o.stagePath(vs[0].VideoID, detectionsDir)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			os.Remove(o.recordPath(vs[1].VideoID))
			os.Remove(o.stagePath(vs[2].VideoID, tracksDir))
		}, 0, 2, 2, 2, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := openTestOut(t, true)
			vs := testVideos(5)
			stageVideos(t, o, vs, false, fillFrames(t, 3, 2))
			tt.kill(t, o, vs)
			o.close()
			o2, err := openOut(o.root)
			if err != nil {
				t.Fatal(err)
			}
			defer o2.close()
			st, err := o2.loadState(ctx, true, true, mem)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.parts) != tt.parts || len(st.staged) != tt.staged || len(st.records) != tt.records || st.broken != tt.broken {
				t.Errorf("parts %d staged %d records %d broken %d, want %d %d %d %d", len(st.parts), len(st.staged), len(st.records), st.broken,
					tt.parts, tt.staged, tt.records, tt.broken)
			}
			db := duck(t)
			count := func(dir string) int64 {
				if fs, _ := filepath.Glob(filepath.Join(o.root, dir, "*.parquet")); len(fs) == 0 {
					return 0
				}
				return queryInts(t, db, "select count(*) from read_parquet('"+filepath.Join(o.root, dir, "*.parquet")+"')")[0]
			}
			if n := count(detectionsDir); n != int64(tt.detections) {
				t.Errorf("readers see %d detections, want %d", n, tt.detections)
			}
			// Gathering what is staged gives every done video once.
			c := &compactor{o: o2, track: true, mem: mem, rows: partRows}
			for _, v := range st.staged {
				c.add(ctx, v)
			}
			if err := c.flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n := count(detectionsDir); n != int64(6*(tt.parts*5+tt.staged)) {
				t.Errorf("after gathering: %d detections, want %d", n, 6*(tt.parts*5+tt.staged))
			}
			assertNoTemps(t, o.root)
		})
	}
}

// TestCompactPerVideoLayout converts a folder written one file per video
// (dsbatch before parts): refused by a run until converted, the same rows
// after, per-video events removed.
func TestCompactPerVideoLayout(t *testing.T) {
	o := openTestOut(t, true)
	mem := memory.NewGoAllocator()
	vs := testVideos(4)
	for _, v := range vs {
		name := fmt.Sprintf("%016x.parquet", v.VideoID)
		w, err := export.NewDetectionWriter(o.path(detectionsDir, name), mem, export.DetectionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fillFrames(t, 3, 2)(v, w)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := export.WriteTracks(o.path(tracksDir, name), []export.Track{{VideoID: v.VideoID, TrackID: 1}}, mem); err != nil {
			t.Fatal(err)
		}
		if err := export.WriteEvents(o.path(eventsDir, name), nil, mem); err != nil {
			t.Fatal(err)
		}
		if err := o.saveRecord(v); err != nil {
			t.Fatal(err)
		}
	}
	failed := export.Video{VideoID: 5000, Path: "/v/bad.mp4", Status: "failed", Error: "decode: no frames"}
	if err := o.saveRecord(failed); err != nil {
		t.Fatal(err)
	}
	db := duck(t)
	det := filepath.Join(o.root, detectionsDir, "*.parquet")
	rows := "select video_id, frame_index, x1 from read_parquet('" + det + "') order by all"
	before := queryRows(t, db, rows)
	if _, err := o.loadState(context.Background(), true, true, mem); !errors.Is(err, ErrPerVideoLayout) {
		t.Fatalf("loading a per-video folder: %v, want ErrPerVideoLayout", err)
	}
	o.close()
	rep, err := Compact(context.Background(), o.root, mem)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Converted != 4 || rep.Gathered != 4 || rep.Parts != 1 || rep.EventsRemoved != 4 || rep.Redo != 0 {
		t.Errorf("report %+v", rep)
	}
	if after := queryRows(t, db, rows); !slices.Equal(before, after) || len(after) != 24 {
		t.Errorf("rows changed: %d before, %d after", len(before), len(after))
	}
	files, _ := filepath.Glob(filepath.Join(o.root, "*", "*.parquet"))
	sort.Strings(files)
	if len(files) != 2 {
		t.Errorf("files after compact: %v, want a part of detections and one of tracks", files)
	}
	o2, err := openOut(o.root)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.close()
	st, err := o2.loadState(context.Background(), true, true, mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.records) != 5 || st.records[5000].Status != "failed" || len(st.partOf) != 4 {
		t.Errorf("records %d, partOf %d, failed %+v", len(st.records), len(st.partOf), st.records[5000])
	}
}

// queryRows returns a query's rows, each formatted as one string.
func queryRows(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	return out
}

// TestCompactSmallParts rewrites small parts into one: the same rows
// (events too), sorted by video; and a rewrite killed at each step leaves
// every row exactly once after the folder's next opening.
func TestCompactSmallParts(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	// five parts of two videos each; events beside two of them
	setup := func(t *testing.T) (*outDir, []string) {
		o := openTestOut(t, true)
		vs := testVideos(10)
		for k := 0; k < 5; k++ {
			stageVideos(t, o, vs[2*k:2*k+2], true, fillFrames(t, 3, 2))
		}
		st, err := o.loadState(ctx, true, true, mem)
		if err != nil || len(st.parts) != 5 {
			t.Fatalf("%d parts, %v", len(st.parts), err)
		}
		for _, m := range st.parts[:2] {
			ev := []export.Event{{VideoID: m.Videos[0].VideoID, VideoPath: m.Videos[0].Path, Kind: "line_cross", Name: "l", TrackID: 1}}
			if err := export.WriteEvents(m.file(o, eventsDir), ev, mem); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		for _, m := range st.parts {
			names = append(names, m.Part)
		}
		return o, names
	}
	rows := func(t *testing.T, o *outDir, dir string) []string {
		return queryRows(t, duck(t), "select * from read_parquet('"+filepath.Join(o.root, dir, "*.parquet")+"') order by all")
	}
	o, _ := setup(t)
	before := map[string][]string{}
	for _, d := range []string{detectionsDir, tracksDir, eventsDir} {
		before[d] = rows(t, o, d)
	}
	o.close()
	rep, err := Compact(ctx, o.root, mem)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewritten != 5 || rep.PartsNow != 1 {
		t.Errorf("report %+v", rep)
	}
	for _, d := range []string{detectionsDir, tracksDir, eventsDir} {
		if after := rows(t, o, d); !slices.Equal(before[d], after) {
			t.Errorf("%s: %d rows before, %d after, or other rows", d, len(before[d]), len(after))
		}
		if fs, _ := filepath.Glob(filepath.Join(o.root, d, "*.parquet")); len(fs) != 1 {
			t.Errorf("%s: %d files, want 1", d, len(fs))
		}
	}
	ids := queryInts(t, duck(t), "select video_id from read_parquet('"+filepath.Join(o.root, detectionsDir, "*.parquet")+"')")
	if !slices.IsSorted(ids) {
		t.Error("the rewritten part is not sorted by video")
	}
	if left, _ := listDir(o.path(stateDir, compactingDir), ""); len(left) != 0 {
		t.Errorf("left in compacting: %v", left)
	}

	// Killed at each step: the next opening gives each row once.
	for _, kill := range []string{"files written", "manifest written", "old parts half removed", "a new file missing"} {
		t.Run(kill, func(t *testing.T) {
			o, names := setup(t)
			st, _ := o.loadState(ctx, true, true, mem)
			m := &manifest{Part: newPartName(), Rows: map[string]int64{}, Replaces: names}
			for _, old := range st.parts {
				m.Videos = append(m.Videos, old.Videos...)
			}
			for _, tb := range rowTables(true) {
				var files []string
				for _, old := range st.parts {
					files = append(files, old.file(o, tb.Name))
				}
				n, err := o.rewriteTable(ctx, files, tb, o.compactingPath(m.Part, tb.Name), mem)
				if err != nil {
					t.Fatal(err)
				}
				m.Tables, m.Rows[tb.Name] = append(m.Tables, tb.Name), n
			}
			switch kill {
			case "manifest written", "old parts half removed", "a new file missing":
				if err := writeManifest(o.manifestPath(m.Part), m); err != nil {
					t.Fatal(err)
				}
			}
			switch kill {
			case "old parts half removed":
				for _, old := range names[:3] {
					os.Remove(o.path(detectionsDir, old+".parquet"))
					os.Remove(o.path(tracksDir, old+".parquet"))
				}
			case "a new file missing":
				os.Remove(o.compactingPath(m.Part, tracksDir))
			}
			o.close()
			o2, err := openOut(o.root)
			if err != nil {
				t.Fatal(err)
			}
			defer o2.close()
			st2, err := o2.loadState(ctx, true, true, mem)
			if err != nil {
				t.Fatal(err)
			}
			if len(st2.records) != 10 || len(st2.staged) != 0 {
				t.Errorf("records %d, staged %d", len(st2.records), len(st2.staged))
			}
			if got := rows(t, o2, detectionsDir); len(got) != 60 {
				t.Errorf("%d detections, want 60", len(got))
			}
			if got := rows(t, o2, tracksDir); len(got) != 10 {
				t.Errorf("%d tracks, want 10", len(got))
			}
			if left, _ := listDir(o2.path(stateDir, compactingDir), ""); len(left) != 0 {
				t.Errorf("left in compacting: %v", left)
			}
		})
	}
}

// FuzzLoadState opens folders whose state files hold arbitrary bytes (a
// part's manifest, a record, a stage file), as a disk fault or another tool
// may leave them: loading never panics, and repairing is idempotent (a
// second opening finds what the first left, and breaks nothing more).
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"part":"part-x","tables":["detections"],"videos":[{"VideoID":1,"Status":"done"}]}`), uint8(0))
	f.Add([]byte(`{"part":"part-x","tables":["detections"],"replaces":["part-y"]}`), uint8(0))
	f.Add([]byte(`{"VideoID":7,"Path":"/v/a.mp4","Status":"done"}`), uint8(1))
	f.Add([]byte("ARROW1\x00\x00garbage"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		o, err := openOut(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer o.close()
		if err := writeJSON(o.path(stateDir, settingsFile), Settings{}); err != nil {
			t.Fatal(err)
		}
		stageVideos(t, o, testVideos(2), true, fillFrames(t, 2, 1))
		switch which % 3 {
		case 0:
			os.WriteFile(o.path(stateDir, partsDir, "part-x.json"), data, 0o644)
			os.WriteFile(o.path(detectionsDir, "part-x.parquet"), data, 0o644)
		case 1:
			os.WriteFile(o.recordPath(7), data, 0o644)
		case 2:
			os.WriteFile(o.stagePath(7, detectionsDir), data, 0o644)
			os.WriteFile(o.recordPath(7), []byte(`{"VideoID":7,"Path":"/v/a.mp4","Status":"done"}`), 0o644)
		}
		mem := memory.NewGoAllocator()
		first, err := o.loadState(context.Background(), false, true, mem)
		if err != nil {
			return // refused whole: nothing to compare
		}
		again, err := o.loadState(context.Background(), false, true, mem)
		if err != nil {
			t.Fatalf("a repaired folder is refused: %v", err)
		}
		if len(again.records) != len(first.records) || len(again.parts) != len(first.parts) || again.broken != 0 {
			t.Errorf("second opening: %d records, %d parts, %d broken; first: %d, %d", len(again.records), len(again.parts), again.broken,
				len(first.records), len(first.parts))
		}
	})
}

// TestCompactorSplitsItsLastParts: at the run's end a compactor gathers
// what it holds into up to split parts side by side, each of contiguous
// video IDs, together every row once.
func TestCompactorSplitsItsLastParts(t *testing.T) {
	o := openTestOut(t, true)
	vs := testVideos(10)
	stageVideos(t, o, vs, false, fillFrames(t, 3, 2))
	c := &compactor{o: o, track: true, mem: memory.NewGoAllocator(), rows: partRows, split: 3}
	for _, v := range vs {
		if err := c.add(context.Background(), staged{rec: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := o.loadState(context.Background(), true, true, memory.NewGoAllocator())
	if err != nil {
		t.Fatal(err)
	}
	if c.parts != 3 || len(st.parts) != 3 || len(st.staged) != 0 {
		t.Fatalf("%d parts written, %d found, %d videos still staged; want 3, 3, 0", c.parts, len(st.parts), len(st.staged))
	}
	db := duck(t)
	det := filepath.Join(o.root, detectionsDir, "*.parquet")
	if got := queryInts(t, db, "select count(*) from (select distinct video_id, frame_index, track_id from read_parquet('"+det+"'))"); fmt.Sprint(got) != "[60]" {
		t.Errorf("%v distinct rows, want 60", got)
	}
	if got := queryInts(t, db, "select count(*) from read_parquet('"+det+"')"); fmt.Sprint(got) != "[60]" {
		t.Errorf("%v rows, want 60", got)
	}
	var ranges [][2]int64
	for _, m := range st.parts {
		ids := queryInts(t, db, "select video_id from read_parquet('"+m.file(o, detectionsDir)+"')")
		if len(ids) == 0 || !slices.IsSorted(ids) {
			t.Fatalf("part %s: video IDs %v", m.Part, ids)
		}
		ranges = append(ranges, [2]int64{ids[0], ids[len(ids)-1]})
	}
	slices.SortFunc(ranges, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	for i := 1; i < len(ranges); i++ {
		if ranges[i][0] <= ranges[i-1][1] {
			t.Errorf("parts' video IDs overlap: %v", ranges)
		}
	}
}
