package job

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/internal/scene"
)

// BenchmarkPostInference runs a worker's stages after the engine alone
// (tracking, then Parquet: the videos gathered into a part) on recorded
// detections: eight videos of 250 frames at a time, realistic churning
// crowds and adversarial noise at 25, 100 and 300 boxes per frame, fed in
// batches of 64 frames from the videos in turn, as the engine gives them;
// "pose" is churn with 17 COCO keypoints a box, a pose model's rows, whose
// pace the detector's bounds. It reports frames/s in total and per core
// (GOMAXPROCS).
func BenchmarkPostInference(b *testing.B) {
	const videos, frames, batchSize = 8, 250, 64
	for _, kind := range []string{"churn", "noise", "pose"} {
		for _, n := range []int{25, 100, 300} {
			b.Run(fmt.Sprintf("%s-%d", kind, n), func(b *testing.B) {
				var sc [][][]scene.Box
				for v := 0; v < videos; v++ {
					s := scene.Churn(n, frames, int64(v))
					if kind == "noise" {
						s = scene.Noise(n, frames, 100, int64(v))
					}
					sc = append(sc, s)
				}
				keypoints := 0
				if kind == "pose" {
					keypoints = 17
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					p, results, finished := benchPipeline(b, videos)
					p.opts.Layout.Keypoints, p.opts.Layout.KeypointDims = keypoints, 3
					p.opts.KeypointNames = p.opts.Layout.KeypointNames()
					batches := feedBatches(p, sc, batchSize)
					b.StartTimer()
					go func() {
						for _, bt := range batches {
							results <- bt
						}
						close(results)
					}()
					ctx := context.Background()
					var g errgroup.Group
					newCompactors(p.out, p.opts).start(ctx, &g, finished, nil)
					err := p.exportLoop(ctx, results, make(chan []float32, len(batches)))
					close(finished)
					if err := errors.Join(err, g.Wait()); err != nil {
						b.Fatal(err)
					}
				}
				fps := float64(b.N*videos*frames) / b.Elapsed().Seconds()
				b.ReportMetric(fps, "frames/s")
				b.ReportMetric(fps/float64(runtime.GOMAXPROCS(0)), "frames/s/core")
			})
		}
	}
}

// benchPipeline is a CPU worker's pipeline writing into a fresh folder,
// with tracking on and as many exporters as Run gives one worker.
func benchPipeline(b *testing.B, sessions int) (*pipeline, chan *batch, chan staged) {
	out, err := openOut(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { out.close() })
	c := &Counters{WorkerFrames: make([]atomic.Int64, 1), Clocks: make([]StageClock, 1)}
	opts := &RunOptions{
		Settings:       Settings{Names: []string{"person", "car", "bicycle"}, Track: true, TrackBuffer: 1, Stride: 1},
		Batch:          64,
		DecodeSessions: sessions,
		Exporters:      min(sessions, runtime.NumCPU()),
		Counters:       c,
		// Parts of 50,000 detections: eight videos make less than one part
		// of the default size, whose gathering would then all wait for the
		// end; in a long run gathering overlaps tracking, as here.
		PartRows: 50000,
	}
	opts.Mem = memory.NewGoAllocator()
	finished := make(chan staged, 256)
	p := &pipeline{opts: opts, out: out, clock: &c.Clocks[0], finish: func(rec export.Video, rows map[string]*export.Staged) error {
		finished <- staged{rec: rec, rows: rows}
		return nil
	}}
	return p, make(chan *batch, 4), finished
}

// feedBatches packs the scenes' frames into batches, videos in turn, with
// each video's end marker after its last frame.
func feedBatches(p *pipeline, sc [][][]scene.Box, size int) []*batch {
	vs := make([]*video, len(sc))
	for i := range vs {
		path := filepath.Join("/archive", fmt.Sprintf("cam%02d.mp4", i))
		vs[i] = &video{id: VideoID(path), planned: PlannedVideo{Path: path}}
		vs[i].rec.FPS = 25
		vs[i].stats.Decoded = int64(len(sc[i]))
	}
	var out []*batch
	cur := &batch{}
	add := func(it *item) {
		cur.items = append(cur.items, it)
		if !it.end {
			cur.frames++
		}
		if cur.frames == size {
			out = append(out, cur)
			cur = &batch{}
		}
	}
	for f := 0; f < len(sc[0]); f++ {
		for v, s := range sc {
			dets := make([]infer.Detection, len(s[f]))
			for k, bx := range s[f] {
				dets[k] = infer.Detection{Class: bx.Class, Score: bx.Score, X1: bx.X1, Y1: bx.Y1, X2: bx.X2, Y2: bx.Y2}
				if n := p.opts.Layout.Keypoints; n > 0 {
					dets[k].Keypoints = make([]infer.Keypoint, n)
					for q := range dets[k].Keypoints {
						dets[k].Keypoints[q] = infer.Keypoint{X: bx.X1 + float32(q), Y: bx.Y1 + float32(2*q), Score: float32(q) / float32(n)}
					}
				}
			}
			add(&item{v: vs[v], index: int64(f), pts: float64(f) / 25, dets: dets})
			if f == len(s)-1 {
				add(&item{v: vs[v], end: true})
			}
		}
	}
	if len(cur.items) > 0 {
		out = append(out, cur)
	}
	return out
}
