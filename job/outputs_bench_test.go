package job

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/dsbatch/dsbatch/export"
)

// BenchmarkOutputs writes the outputs of 1k, 10k and 100k videos of 200
// detections and 10 tracks each the way a run does (each video's rows
// built by one of GOMAXPROCS exporters and handed to the compactor, which
// gathers them into parts; videos.parquet at the end), then queries them as analysts
// do, with DuckDB: GROUP BY class over every detection, warm (second run
// on one connection) and cold (page cache dropped for the files, a new
// database), and one video's rows; and times Inspect. It reports bytes
// against the same rows in one file, and detection rows written per CPU
// second of the process, and compares the layout before parts (a file per
// video). DSBATCH_BENCH_VIDEOS picks the sizes (default
// "1000,10000,100000"), DSBATCH_BENCH_PER_VIDEO the largest of them also
// written a file per video (default 1000).
func BenchmarkOutputs(b *testing.B) {
	sizes := []int{1000, 10000, 100000}
	if s := os.Getenv("DSBATCH_BENCH_VIDEOS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
				b.Fatalf("DSBATCH_BENCH_VIDEOS=%q: want sizes like 1000,10000", s)
			}
			sizes = append(sizes, n)
		}
	}
	perVideoMax := 1000
	if s := os.Getenv("DSBATCH_BENCH_PER_VIDEO"); s != "" {
		fmt.Sscan(s, &perVideoMax)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("videos=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchOutputs(b, n, false)
			}
		})
		// The layout before parts, for comparison: up to 1,000 videos
		// (17 s on the 2-core development machine; 10,000 take three
		// minutes), or DSBATCH_BENCH_PER_VIDEO.
		if n <= perVideoMax {
			b.Run(fmt.Sprintf("videos=%d/per-video-files", n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					benchOutputs(b, n, true)
				}
			})
		}
	}
}

// benchOutputs writes and queries videos' outputs: in parts, or with
// perVideo as dsbatch did before parts (a Parquet file per video and
// table, each synced, and a synced record).
func benchOutputs(b *testing.B, videos int, perVideo bool) {
	ctx := context.Background()
	root := b.TempDir()
	o, err := openOut(root)
	if err != nil {
		b.Fatal(err)
	}
	defer o.close()
	if err := writeJSON(o.path(stateDir, settingsFile), Settings{Track: true}); err != nil {
		b.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	classes := []string{"person", "car", "bus", "truck", "bicycle"}
	cpu0, t0 := cpuSeconds(), time.Now()
	comp := &compactor{o: o, track: true, mem: mem, rows: partRows, age: time.Hour}
	finished := make(chan staged, 256)
	recs := make([]export.Video, videos)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.run(ctx, finished) })
	workers, wctx := errgroup.WithContext(gctx)
	exporters := runtime.GOMAXPROCS(0)
	for w := 0; w < exporters; w++ {
		workers.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for v := w; v < videos; v += exporters {
				path := fmt.Sprintf("/archive/cam%02d/%06d.mp4", v%50, v)
				id := VideoID(path)
				// 20 frames of 10 objects moving, as a tracker leaves them.
				dw := export.StageDetections(o.stagePath(id, detectionsDir), mem, export.DetectionOptions{}, videoMemRows)
				if perVideo {
					var err error
					if dw, err = export.NewDetectionWriter(o.path(detectionsDir, fmt.Sprintf("%016x.parquet", id)), mem, export.DetectionOptions{}); err != nil {
						return err
					}
				}
				for f := int64(0); f < 20; f++ {
					for k := 0; k < 10; k++ {
						x, y := float32(k*190)+float32(f)*3+rng.Float32(), float32(100+k*80)+rng.Float32()*2
						if err := dw.Append(export.Detection{VideoID: id, VideoPath: path, FrameIndex: f, PTS: float64(f) / 25,
							ClassID: int32(k % 5), ClassName: classes[k%5], Score: 0.25 + 0.7*rng.Float32(), X1: x, Y1: y, X2: x + 40 + float32(k*7), Y2: y + 60 + float32(k*5), TrackID: int64(k + 1)}); err != nil {
							return err
						}
					}
				}
				if err := dw.Commit(); err != nil {
					return err
				}
				tracks := make([]export.Track, 10)
				for k := range tracks {
					tracks[k] = export.Track{VideoID: id, VideoPath: path, TrackID: int64(k + 1), ClassName: classes[k%5], LastFrame: 19, Detections: 20,
						MeanScore: rng.Float32(), MaxScore: 1, PathLength: rng.Float64() * 100}
				}
				rec := export.Video{VideoID: id, Path: path, Status: "done", FramesInferred: 20, Detections: 200, Width: 1920, Height: 1080}
				recs[v] = rec
				if perVideo {
					if err := export.WriteTracks(o.path(tracksDir, fmt.Sprintf("%016x.parquet", id)), tracks, mem); err != nil {
						return err
					}
					if err := writeJSON(o.recordPath(id), rec); err != nil {
						return err
					}
					continue
				}
				tr, err := export.StageTracks(o.stagePath(id, tracksDir), tracks, mem, videoMemRows)
				if err != nil {
					return err
				}
				if err := send(wctx, finished, staged{rec: rec, rows: map[string]*export.Staged{detectionsDir: dw.Staged(), tracksDir: tr}}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(finished)
		return workers.Wait()
	})
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	records := make(map[int64]export.Video, videos)
	for _, r := range recs {
		records[r.VideoID] = r
	}
	if err := o.writeVideosTable(records, mem); err != nil {
		b.Fatal(err)
	}
	wall, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
	rows := float64(videos * 200)
	b.ReportMetric(rows/wall, "rows/s")
	b.ReportMetric(rows/cpu, "rows/cpu-s")
	b.ReportMetric(float64(comp.parts), "parts")

	det := filepath.Join(root, detectionsDir, "*.parquet")
	files, _ := filepath.Glob(det)
	var size int64
	for _, f := range files {
		fi, _ := os.Stat(f)
		size += fi.Size()
	}
	b.ReportMetric(float64(size)/1e6, "MB")
	// The same rows in one file, by the same writer.
	one := filepath.Join(b.TempDir(), "one.parquet")
	w := export.NewPartWriter(one, export.DetectionsTable, mem)
	for _, f := range files {
		if err := w.Append(ctx, &export.Staged{Path: f}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := w.Publish(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(one)
	b.ReportMetric(float64(size)/float64(fi.Size()), "x-one-file")

	groupBy := fmt.Sprintf("select class_name, count(*) from read_parquet('%s') group by 1", det)
	oneVideo := fmt.Sprintf("select count(*), avg(score) from read_parquet('%s') where video_id = %d", det, recs[videos/2].VideoID)
	timeQuery := func(db *sql.DB, q string) float64 {
		t := time.Now()
		rows, err := db.Query(q)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
		return time.Since(t).Seconds()
	}
	cold := func(q string) float64 {
		for _, f := range append(files, filepath.Join(root, videosFile)) {
			if fd, err := unix.Open(f, unix.O_RDONLY, 0); err == nil {
				unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
				unix.Close(fd)
			}
		}
		db, err := sql.Open("duckdb", "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		return timeQuery(db, q)
	}
	b.ReportMetric(cold(groupBy), "groupby-cold-s")
	b.ReportMetric(cold(oneVideo), "video-cold-s")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	timeQuery(db, groupBy)
	b.ReportMetric(timeQuery(db, groupBy), "groupby-warm-s")
	timeQuery(db, oneVideo)
	b.ReportMetric(timeQuery(db, oneVideo), "video-warm-s")
	var n int64
	if err := db.QueryRow(fmt.Sprintf("select count(*) from read_parquet('%s')", det)).Scan(&n); err != nil || n != int64(rows) {
		b.Fatalf("%d rows read back, want %v (%v)", n, rows, err)
	}
	o.close()
	t := time.Now()
	in, err := Inspect(ctx, root, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(t).Seconds(), "inspect-s")
	if in.Videos != videos || in.Detections["car"] != int64(videos*40) {
		b.Fatalf("inspect: %d videos, %d cars", in.Videos, in.Detections["car"])
	}
}
