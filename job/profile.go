package job

import (
	"fmt"
	"sync/atomic"
	"time"
)

// StageClock accumulates where one worker's time goes, in nanoseconds
// summed over each stage's goroutines (a worker's decode sessions run side
// by side). Every field is updated atomically.
type StageClock struct {
	DecodeBusy   atomic.Int64 // demuxing, decoding and letterboxing
	DecodeStall  atomic.Int64 // waiting for a free frame buffer: inference is behind
	DecodeBlock  atomic.Int64 // waiting for the batcher to take a frame
	InferBusy    atomic.Int64 // the engine and post-processing
	InferIdle    atomic.Int64 // waiting for a batch: decoding is behind
	InferBlock   atomic.Int64 // waiting for the exporter to take results
	ExportBusy   atomic.Int64 // tracking and Parquet writing
	ExportIdle   atomic.Int64 // waiting for results
	Batches      atomic.Int64
	BatchFrames  atomic.Int64
	startNanos   atomic.Int64 // since the run's start
	firstNanos   atomic.Int64 // first batch exported, since the run's start
	firstFrames  atomic.Int64 // frames the worker had exported by then
	endNanos     atomic.Int64
	frames       atomic.Int64
	sessions     atomic.Int64
	exporters    atomic.Int64
	engineBuilds atomic.Int64 // nanoseconds to make the engine
}

// StageProfile is a stage's seconds, summed over its goroutines, and its
// share of the time those goroutines had.
type StageProfile struct {
	Goroutines int     `json:"goroutines"`
	Busy       float64 `json:"busy_seconds"`
	WaitInput  float64 `json:"wait_input_seconds"`  // starved by the stage before
	WaitOutput float64 `json:"wait_output_seconds"` // held back by the stage after
	BusyShare  float64 `json:"busy_share"`
}

// WorkerProfile is where one worker's time went.
type WorkerProfile struct {
	Worker int    `json:"worker"`
	Device string `json:"device"` // "gpu 0 (NVIDIA H100 80GB HBM3)" or "cpu"
	// Seconds from the run's start to the worker's start, to its first
	// exported batch (engine build and the first frames), and to its end.
	StartSeconds      float64 `json:"start_seconds"`
	FirstBatchSeconds float64 `json:"first_batch_seconds"`
	EndSeconds        float64 `json:"end_seconds"`
	EngineSeconds     float64 `json:"engine_build_seconds"`
	Frames            int64   `json:"frames"`
	// SteadyFPS counts the frames after the first batch over the time
	// after it: the worker's pace without start-up.
	SteadyFPS float64      `json:"steady_frames_per_second"`
	MeanBatch float64      `json:"mean_batch"`
	Decode    StageProfile `json:"decode"`
	Infer     StageProfile `json:"infer"`
	Export    StageProfile `json:"export"`
	// Bound names the stage that held the worker back: "decode",
	// "inference" or "export" (the busiest, by share of its time).
	Bound string `json:"bound"`
}

func seconds(n int64) float64 { return time.Duration(n).Seconds() }

// profile summarises c for worker w.
func (c *StageClock) profile(w Worker, index int) WorkerProfile {
	p := WorkerProfile{Worker: index, Device: "cpu", Frames: c.frames.Load()}
	if w.GPU != nil {
		p.Device = fmt.Sprintf("gpu %d (%s)", w.GPU.Index, w.GPU.Name)
	}
	start, first, end := c.startNanos.Load(), c.firstNanos.Load(), c.endNanos.Load()
	p.StartSeconds, p.EndSeconds = seconds(start), seconds(end)
	p.EngineSeconds = seconds(c.engineBuilds.Load())
	if first > 0 {
		p.FirstBatchSeconds = seconds(first)
		if end > first {
			p.SteadyFPS = float64(p.Frames-c.firstFrames.Load()) / seconds(end-first)
		}
	}
	if n := c.Batches.Load(); n > 0 {
		p.MeanBatch = float64(c.BatchFrames.Load()) / float64(n)
	}
	wall := seconds(end - start)
	stage := func(n int, busy, in, out int64) StageProfile {
		s := StageProfile{Goroutines: n, Busy: seconds(busy), WaitInput: seconds(in), WaitOutput: seconds(out)}
		if wall > 0 && n > 0 {
			s.BusyShare = s.Busy / (wall * float64(n))
		}
		return s
	}
	p.Decode = stage(int(c.sessions.Load()), c.DecodeBusy.Load(), c.DecodeStall.Load(), c.DecodeBlock.Load())
	p.Infer = stage(1, c.InferBusy.Load(), c.InferIdle.Load(), c.InferBlock.Load())
	p.Export = stage(int(max(c.exporters.Load(), 1)), c.ExportBusy.Load(), c.ExportIdle.Load(), 0)
	p.Bound = "decode"
	if p.Infer.BusyShare > p.Decode.BusyShare {
		p.Bound = "inference"
	}
	if p.Export.BusyShare > max(p.Decode.BusyShare, p.Infer.BusyShare) {
		p.Bound = "export"
	}
	return p
}

// since is the time from t0 to now, in nanoseconds.
func since(t0 time.Time) int64 { return int64(time.Since(t0)) }

// firstBatch records when a worker exported its first frame, once.
func (c *StageClock) firstBatch(runStart time.Time) {
	if c.firstNanos.Load() == 0 && c.firstNanos.CompareAndSwap(0, since(runStart)) {
		c.firstFrames.Store(c.frames.Load())
	}
}
