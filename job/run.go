package job

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/events"
	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
)

type allocator = memory.Allocator

// Settings are what a run's results depend on. Rerunning into the same
// output with other settings is refused unless forced.
type Settings struct {
	Model  string `json:"model_sha256"`
	Engine string `json:"engine"`
	InputH int    `json:"input_height"`
	InputW int    `json:"input_width"`
	Head   string `json:"head"`
	// Input is the input convention (infer.Preprocess's String), empty
	// for Ultralytics' (the default, and all earlier runs knew).
	Input string   `json:"input,omitempty"`
	Names []string `json:"class_names"`
	// Keypoints name a pose model's points (empty for other models).
	Keypoints []string `json:"keypoint_names,omitempty"`
	// KeypointColumns is how the detections table holds a pose model's
	// points: "fields", a struct of a field a point (set by Run, since
	// 2026-12-03). Empty for other models and for pose runs before, whose
	// lists of named points new parts cannot join: a pose run into such a
	// folder is refused (--force starts it anew).
	KeypointColumns string  `json:"keypoint_columns,omitempty"`
	Conf            float32 `json:"conf"`
	IoU             float32 `json:"iou"`
	MaxDet          int     `json:"max_det"`
	TopK            int     `json:"top_k"`
	ClassAgnostic   bool    `json:"class_agnostic"`
	Stride          int     `json:"stride"`
	FPS             float64 `json:"fps"`
	Start           float64 `json:"start_seconds"` // frames before this time are skipped
	End             float64 `json:"end_seconds"`   // frames from this time on are skipped (0: none)
	AssumeFPS       float64 `json:"assume_fps"`    // frame rate of raw streams (0: their headers', else 25)
	Track           bool    `json:"track"`
	TrackBuffer     float64 `json:"track_buffer_seconds"`
	TrackAgnostic   bool    `json:"track_class_agnostic"`
	// RecordedAt is where a video's recording start comes from:
	// "container" (its creation_time tag), "sidecar" (a JSON file beside
	// it), a file-name pattern in strftime letters read in Timezone, or ""
	// (unknown: no recorded_at).
	RecordedAt string `json:"recorded_at,omitempty"`
	Timezone   string `json:"timezone,omitempty"`
}

// sidecarStart reads the recording's start from the JSON file beside the
// video (cam1.mp4.json, else cam1.json): its "recorded_at", RFC 3339.
func sidecarStart(path string) (time.Time, bool) {
	for _, side := range []string{path + ".json", strings.TrimSuffix(path, filepath.Ext(path)) + ".json"} {
		b, err := os.ReadFile(side)
		if err != nil {
			continue
		}
		var s struct {
			RecordedAt string `json:"recorded_at"`
		}
		if json.Unmarshal(b, &s) != nil {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, s.RecordedAt)
		return t, err == nil
	}
	return time.Time{}, false
}

// startClock returns how the settings tell when a video's recording
// started (nil when they do not).
func (s Settings) startClock() (func(v *Video) (time.Time, bool), error) {
	switch s.RecordedAt {
	case "":
		return nil, nil
	case "container":
		return func(v *Video) (time.Time, bool) {
			if v == nil {
				return time.Time{}, false
			}
			return events.ParseCreationTime(v.CreationTime)
		}, nil
	case "sidecar":
		return func(v *Video) (time.Time, bool) {
			if v == nil {
				return time.Time{}, false
			}
			return sidecarStart(v.Path)
		}, nil
	}
	c, err := events.ParseFileNameClock(s.RecordedAt, s.Timezone)
	if err != nil {
		return nil, err
	}
	return func(v *Video) (time.Time, bool) {
		if v == nil {
			return time.Time{}, false
		}
		return c.Start(v.Path)
	}, nil
}

// diff lists the settings that differ between s and t, by their JSON
// names. Every field is compared: a field added to Settings is compared
// without being listed anywhere.
func (s Settings) diff(t Settings) string {
	var d []string
	a, b := reflect.ValueOf(s), reflect.ValueOf(t)
	for i := 0; i < a.NumField(); i++ {
		x, y := a.Field(i).Interface(), b.Field(i).Interface()
		if fmt.Sprint(x) != fmt.Sprint(y) { // as printed: a nil list equals an empty one
			name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("json"), ",")
			d = append(d, fmt.Sprintf("%s %v, now %v", strings.ReplaceAll(name, "_", " "), x, y))
		}
	}
	return strings.Join(d, "; ")
}

// RunOptions configure Run.
type RunOptions struct {
	Out      string
	Settings Settings
	Layout   infer.Layout
	// Input is how frames become the model's input (zero: Ultralytics'
	// convention); Run records it in Settings.Input.
	Input infer.Preprocess
	Post  infer.PostOptions
	// KeypointNames name a pose model's points, in its order (empty:
	// "kp0", "kp1", ...).
	KeypointNames []string
	// start tells when a video's recording started (Settings.RecordedAt;
	// set by Run).
	start func(v *Video) (time.Time, bool)
	// NoBoxCheck skips the check that stops a run whose first boxes look
	// like a misread layout's (infer.BoxCheck).
	NoBoxCheck bool
	// NewEngine opens an inference engine for a worker; it is called once
	// per worker and the engine closed when the worker ends. A GPU
	// worker passes its CUDA context (nil on CPU workers), which its
	// decoders use too: an engine on that GPU shares it.
	NewEngine func(w Worker, cuda *gpu.CUDA) (infer.Engine, error)
	// DeviceFrames says that NewEngine gives GPU workers an engine that
	// reads frames in GPU memory (infer.Detector.OnDevice): their frames
	// then stay on the GPU from decoder to engine.
	DeviceFrames bool
	// GPUFrames is how many frames a GPU worker with DeviceFrames holds in
	// GPU memory between decoding and inference (0: a quarter of the GPU's
	// free memory, at most 16 GiB; never fewer than two batches and one
	// frame per decode session).
	GPUFrames int
	Batch     int
	// DecodeSessions is the number of videos each worker decodes at once.
	DecodeSessions int
	DecodeThreads  int
	// Exporters is how many videos each worker tracks and writes at once
	// (0: the worker's share of the CPUs, at most DecodeSessions).
	Exporters int
	Force     bool
	// PartRows is how many detections a part gathers before it is
	// published (0: about a million); PartAge the longest a finished video
	// waits for its part (0: ten minutes). See parts.go.
	PartRows int64
	PartAge  time.Duration
	// Counters, when set, are updated as the run goes (for progress).
	Counters *Counters
	Mem      memory.Allocator
	// GPUHost, when set, is sampled for GPU load during the run.
	GPUHost gpu.Host
	// KernelCache is where compiled GPU kernels are kept (default: the
	// user cache folder).
	KernelCache string
	// Meta is written into run.json beside the settings and the summary:
	// dsbatch version, model path, host, GPUs, command line.
	Meta map[string]any
}

// Counters report a run's progress; every field is updated atomically.
type Counters struct {
	FramesPlanned atomic.Int64
	FramesDone    atomic.Int64
	VideosPlanned atomic.Int64
	VideosDone    atomic.Int64
	VideosFailed  atomic.Int64
	VideosSkipped atomic.Int64 // finished by an earlier run
	Detections    atomic.Int64
	WorkerFrames  []atomic.Int64
	// Clocks say where each worker's time goes (Summary.Profile).
	Clocks []StageClock
	// GPU reports the load of the run\'s GPUs (nil without GPU workers).
	GPU *gpu.Sampler

	firstNanos  atomic.Int64 // the first batch exported, since the run's start
	firstFrames atomic.Int64 // frames exported by then
}

// firstBatch records when the run exported its first frame, once.
func (c *Counters) firstBatch(runStart time.Time) {
	if c.firstNanos.Load() == 0 && c.firstNanos.CompareAndSwap(0, since(runStart)) {
		c.firstFrames.Store(c.FramesDone.Load())
	}
}

// Failure is a video that failed, and why.
type Failure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Summary is what Run reports at the end.
type Summary struct {
	Videos      int           `json:"videos"`
	Done        int           `json:"done"`
	Skipped     int           `json:"already_done"`
	Failed      []Failure     `json:"failed"`
	Frames      int64         `json:"frames_inferred"`
	Detections  int64         `json:"detections"`
	Wall        time.Duration `json:"-"`
	WallSeconds float64       `json:"wall_seconds"`
	FPS         float64       `json:"frames_per_second"`
	// FirstBatchSeconds is when the first batch was written (engines
	// built, first frames decoded); SteadyFPS is the pace after it.
	FirstBatchSeconds float64         `json:"first_batch_seconds"`
	SteadyFPS         float64         `json:"steady_frames_per_second"`
	Profile           []WorkerProfile `json:"profile"`
	PeakRSS           int64           `json:"peak_rss_bytes"`
	// CPUSeconds is the CPU time (user and system) the run took on the
	// host, over all threads.
	CPUSeconds  float64    `json:"cpu_seconds"`
	Stages      StageTimes `json:"stage_seconds"`
	GPUs        []gpu.Load `json:"gpus,omitempty"`
	Interrupted bool       `json:"interrupted"`
	// Parts counts the parts the run published (parts.go).
	Parts int `json:"parts_written"`
}

// StageTimes are seconds spent in each stage, summed over goroutines.
type StageTimes struct {
	Decode float64 `json:"decode"`
	Infer  float64 `json:"infer"`
	Export float64 `json:"export"`
}

// expectedFrames estimates how many frames sampling keeps from a video.
func expectedFrames(v *Video, s Settings) int64 {
	n := v.Frames
	if s.Stride > 1 {
		n = (n + int64(s.Stride) - 1) / int64(s.Stride)
	}
	if s.FPS > 0 && v.Duration > 0 {
		if m := int64(v.Duration*s.FPS + 0.999); m < n {
			n = m
		}
	}
	return n
}

// Run processes the plan's videos into opts.Out: detections per video,
// videos.parquet for every input, and per-video records that let a rerun
// skip finished videos. A video that fails is recorded with its error and
// the run goes on; Run returns an error only when the run itself cannot go
// on (output unwritable, engine broken, interrupted).
func Run(ctx context.Context, plan *Plan, videos []Video, opts RunOptions) (*Summary, error) {
	start, cpu0 := time.Now(), cpuSeconds()
	if opts.Mem == nil {
		opts.Mem = memory.NewGoAllocator()
	}
	if opts.Counters == nil {
		opts.Counters = &Counters{}
	}
	if opts.Batch < 1 {
		opts.Batch = 1
	}
	if opts.DecodeSessions < 1 {
		opts.DecodeSessions = 1
	}
	if opts.Exporters < 1 {
		opts.Exporters = min(opts.DecodeSessions, max(1, runtime.NumCPU()/max(len(plan.Workers), 1)))
	}
	if opts.Input == (infer.Preprocess{}) {
		opts.Input = infer.Ultralytics
	}
	if err := opts.Input.Validate(); err != nil {
		return nil, err
	}
	startOf, err := opts.Settings.startClock()
	if err != nil {
		return nil, err
	}
	opts.start = startOf
	opts.Settings.Input = ""
	if opts.Input != infer.Ultralytics {
		opts.Settings.Input = opts.Input.String()
	}
	opts.Settings.KeypointColumns = ""
	if opts.Layout.Keypoints > 0 {
		opts.Settings.KeypointColumns = "fields"
	}
	out, err := openOut(opts.Out)
	if err != nil {
		return nil, err
	}
	defer out.close()
	if err := out.checkSettings(opts.Settings, opts.Force); err != nil {
		return nil, err
	}
	state, err := out.loadState(ctx, opts.Settings.Track, true, opts.Mem)
	if err != nil {
		return nil, err
	}
	records := state.records
	byPath := make(map[string]*Video, len(videos))
	for i := range videos {
		byPath[videos[i].Path] = &videos[i]
	}

	var mu sync.Mutex // guards records and summary
	sum := &Summary{Videos: len(videos)}
	c := opts.Counters
	c.WorkerFrames = make([]atomic.Int64, len(plan.Workers))
	c.Clocks = make([]StageClock, len(plan.Workers))

	// Files that failed probing are recorded as failed straight away.
	for _, s := range plan.Skipped {
		v := byPath[s.Path]
		rec := videoRecord(v, VideoID(s.Path))
		rec.Status, rec.Error = "failed", s.Error
		records[rec.VideoID] = rec
		if err := out.saveRecord(rec); err != nil {
			return nil, err
		}
		sum.Failed = append(sum.Failed, Failure(s))
		c.VideosFailed.Add(1)
	}

	// Queues per worker, without the videos an earlier run finished.
	queues := make([][]PlannedVideo, len(plan.Workers))
	for i, w := range plan.Workers {
		for _, pv := range w.Videos {
			if r, ok := records[VideoID(pv.Path)]; ok && r.Status == "done" {
				sum.Skipped++
				c.VideosSkipped.Add(1)
				continue
			}
			queues[i] = append(queues[i], pv)
			c.VideosPlanned.Add(1)
			c.FramesPlanned.Add(expectedFrames(byPath[pv.Path], opts.Settings))
		}
	}
	work := newWorkQueue(queues)

	var uuids []string
	for _, w := range plan.Workers {
		if w.GPU != nil {
			uuids = append(uuids, w.GPU.UUID)
		}
	}
	if opts.GPUHost != nil && len(uuids) > 0 {
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		c.GPU = gpu.StartSampler(sctx, opts.GPUHost, uuids, time.Second)
	}

	// Compactors gather finished videos into parts (parts.go), beginning
	// with those an earlier, killed run finished.
	comps := newCompactors(out, &opts)
	finished := make(chan staged, 256)
	g, gctx := errgroup.WithContext(ctx)
	wg, wctx := errgroup.WithContext(gctx)
	comps.start(ctx, g, finished, state.staged)
	for i, w := range plan.Workers {
		p := &pipeline{
			worker: w.Worker, index: i, opts: &opts, out: out, work: work, byPath: byPath,
			clock: &c.Clocks[i], start: start, boxes: infer.BoxCheck{Layout: opts.Layout, Off: opts.NoBoxCheck},
			finish: func(rec export.Video, rows map[string]*export.Staged) error {
				mu.Lock()
				records[rec.VideoID] = rec
				// A record is a file only where a rerun needs it: a failed
				// video's, and a done one's whose rows are in stage files.
				// The others' are in their part's manifest.
				var err error
				if rec.Status != "done" || rows[detectionsDir].Path != "" {
					err = out.saveRecord(rec)
				}
				if err == nil && rec.Status == "done" {
					sum.Done++
					c.VideosDone.Add(1)
				} else if err == nil {
					sum.Failed = append(sum.Failed, Failure{Path: rec.Path, Error: rec.Error})
					c.VideosFailed.Add(1)
				}
				sum.Frames += rec.FramesInferred
				sum.Detections += rec.Detections
				mu.Unlock()
				v := staged{rec: rec, rows: rows}
				if err != nil || rec.Status != "done" {
					v.release()
					return err
				}
				if err := send(wctx, finished, v); err != nil {
					v.release()
					return err
				}
				return nil
			},
		}
		wg.Go(func() error { return p.run(wctx) })
	}
	g.Go(func() error {
		defer close(finished)
		return wg.Wait()
	})
	runErr := g.Wait()
	sum.Parts = comps.parts()
	if runErr != nil && ctx.Err() != nil {
		sum.Interrupted = true
	}

	// Whatever happened, the videos table reflects every finished video.
	mu.Lock()
	defer mu.Unlock()
	if err := out.writeVideosTable(records, opts.Mem); err != nil && runErr == nil {
		runErr = err
	}
	sum.Wall = time.Since(start)
	sum.WallSeconds = sum.Wall.Seconds()
	if sum.WallSeconds > 0 {
		sum.FPS = float64(sum.Frames) / sum.WallSeconds
	}
	if first := c.firstNanos.Load(); first > 0 {
		sum.FirstBatchSeconds = seconds(first)
		if d := sum.WallSeconds - sum.FirstBatchSeconds; d > 0 {
			sum.SteadyFPS = float64(c.FramesDone.Load()-c.firstFrames.Load()) / d
		}
	}
	for i, w := range plan.Workers {
		sum.Profile = append(sum.Profile, c.Clocks[i].profile(w.Worker, i))
	}
	sum.PeakRSS = peakRSS()
	sum.CPUSeconds = cpuSeconds() - cpu0
	for i := range c.Clocks {
		k := &c.Clocks[i]
		sum.Stages.Decode += seconds(k.DecodeBusy.Load())
		sum.Stages.Infer += seconds(k.InferBusy.Load())
		sum.Stages.Export += seconds(k.ExportBusy.Load())
	}
	sort.Slice(sum.Failed, func(i, j int) bool { return sum.Failed[i].Path < sum.Failed[j].Path })
	sum.GPUs = c.GPU.Loads()
	type workerTotals struct {
		Worker
		Videos int     `json:"videos"`
		Frames int64   `json:"frames_planned"`
		Cost   float64 `json:"cost"`
		Done   int64   `json:"frames_inferred"`
	}
	workers := make([]workerTotals, len(plan.Workers))
	for i, w := range plan.Workers {
		workers[i] = workerTotals{Worker: w.Worker, Videos: len(w.Videos), Frames: w.Frames, Cost: w.Cost, Done: c.WorkerFrames[i].Load()}
	}
	run := map[string]any{"settings": opts.Settings, "summary": sum, "start": start.UTC(), "end": time.Now().UTC(),
		"workers": workers, "shard": plan.Shard, "batch": opts.Batch, "decode_sessions": opts.DecodeSessions}
	for k, v := range opts.Meta {
		run[k] = v
	}
	if err := writeJSON(out.path(runFile), run); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		if sum.Interrupted {
			return sum, fmt.Errorf("run interrupted (rerun the same command to resume): %w", ctx.Err())
		}
		return sum, runErr
	}
	return sum, nil
}

// videoRecord starts the videos.parquet row of v.
func videoRecord(v *Video, id int64) export.Video {
	rec := export.Video{VideoID: id}
	if v == nil {
		return rec
	}
	rec.Path, rec.Size, rec.ModTime = v.Path, v.Size, v.ModTime
	rec.Container, rec.Codec, rec.Profile = v.Container, v.Codec, v.Profile
	rec.Width, rec.Height, rec.PixelFormat, rec.BitDepth = int32(v.Width), int32(v.Height), v.PixelFormat, int32(v.BitDepth)
	rec.FPS, rec.Duration, rec.Frames, rec.FramesEstimated = v.AvgFPS, v.Duration, v.Frames, v.Estimated
	rec.Rotation, rec.BitRate = int32(v.Rotation), v.BitRate
	return rec
}

// peakRSS returns the process's peak resident memory in bytes.
// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// workQueue hands videos to workers: each takes its own planned videos in
// order, then steals the smallest remaining video of the most loaded
// worker, so no worker idles while another still has a queue.
type workQueue struct {
	mu     sync.Mutex
	queues [][]PlannedVideo
}

func newWorkQueue(q [][]PlannedVideo) *workQueue { return &workQueue{queues: q} }

func (q *workQueue) next(worker int) (PlannedVideo, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if own := q.queues[worker]; len(own) > 0 {
		q.queues[worker] = own[1:]
		return own[0], true
	}
	victim, most := -1, 0.0
	for i, vq := range q.queues {
		var cost float64
		for _, v := range vq {
			cost += v.Cost
		}
		if len(vq) > 1 && cost > most {
			victim, most = i, cost
		}
	}
	if victim < 0 {
		return PlannedVideo{}, false
	}
	vq := q.queues[victim]
	v := vq[len(vq)-1]
	q.queues[victim] = vq[:len(vq)-1]
	return v, true
}

// DefaultThreads splits the machine's cores among n CPU workers.
func DefaultThreads(n int) int {
	if n < 1 {
		n = 1
	}
	return max(1, runtime.NumCPU()/n)
}
