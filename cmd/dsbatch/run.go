package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/events"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/job"
)

func runCommand() *cli.Command {
	flags := append(discoveryFlags(), gpuFlags()...)
	flags = append(flags, shardFlags("process only this node's share i/n of the archive, into OUT/shards/<i>-of-<n>")...)
	flags = append(flags, modelFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "config", Usage: "YAML file of settings (keys are flag names); flags override it"},
		&cli.StringFlag{Name: "recorded-at", Usage: "when each recording started, for recorded_at columns: container (its creation_time tag), sidecar (NAME.json beside it: {\"recorded_at\": RFC 3339}), or a file-name pattern in strftime letters (_%Y%m%d_%H%M%S); unknown stays null"},
		&cli.StringFlag{Name: "timezone", Usage: "the time zone of --recorded-at's file names (default UTC)"},
		&cli.StringFlag{Name: "zones", Usage: "lines and zones per camera (YAML, as dsbatch events takes): their events are written after the run"},
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "ONNX detector (YOLOv5/v8/v9/v10/v11 layouts)"},
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output folder"},
		&cli.StringFlag{Name: "batch", Value: "auto", Usage: "images per inference batch, or auto (GPU engine: the largest of 8 to 128 that fits a quarter of the GPU's memory; ONNX Runtime: 8)"},
		&cli.IntFlag{Name: "stride", Value: 1, Usage: "infer every Nth decoded frame"},
		&cli.Float64Flag{Name: "fps", Usage: "infer at most this many frames per second of video (0: all)"},
		&cli.DurationFlag{Name: "start", Usage: "skip each video's frames before this time (e.g. 90s, 1h2m)"},
		&cli.DurationFlag{Name: "end", Usage: "skip each video's frames from this time on (0: none)"},
		&cli.BoolFlag{Name: "no-track", Usage: "do not track objects (track_id stays null)"},
		&cli.DurationFlag{Name: "track-buffer", Value: 1e9, Usage: "how long a lost track may be found again"},
		&cli.BoolFlag{Name: "track-classes", Value: true, Usage: "a track keeps one class (--track-classes=false: any class)"},
		&cli.BoolFlag{Name: "no-box-check", Usage: "do not stop the run when its first boxes look like a misread layout's (for models of random weights)"},
		&cli.StringFlag{Name: "engine", Value: "auto", Usage: "inference engine: gpu (cuDNN/NVRTC, fp16), onnxruntime (CPU) or auto (gpu on GPU workers when the model compiles for it)"},
		&cli.IntFlag{Name: "threads", Usage: "inference threads per CPU worker (default: cores / workers)"},
		&cli.IntFlag{Name: "decoders", Value: 2, Usage: "videos each worker decodes at once (GPU workers: at least two per NVDEC engine unless set)"},
		&cli.IntFlag{Name: "gpu-frames", Usage: "decoded frames each GPU worker may hold in GPU memory ahead of the engine (default: a quarter of the GPU's memory, at most 16 GiB)"},
		&cli.IntFlag{Name: "cpu-workers", Value: 1, Usage: "CPU workers when no GPU is used"},
		&cli.BoolFlag{Name: "force", Usage: "discard results in --out made with other settings"},
		&cli.Int64Flag{Name: "part-rows", Value: 1 << 20, Usage: "detections a part of the output gathers before it is written (docs/SCHEMA.md, \"Layout\")"},
		&cli.DurationFlag{Name: "part-age", Value: 10 * time.Minute, Usage: "the longest a finished video waits for its part: slow runs publish their rows this often"},
		&cli.DurationFlag{Name: "log-every", Value: 10e9, Usage: "progress line interval when not on a terminal"},
		&cli.BoolFlag{Name: "profile", Usage: "print where each worker's time went, stage by stage (always in run.json)"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the run to this file (go tool pprof reads it)"},
	)
	return &cli.Command{
		Name:      "run",
		Usage:     "detect objects in the videos under PATH... and write Parquet to --out",
		ArgsUsage: "PATH...",
		Description: "Decodes every video, runs the detector in batches and writes detections/<video>.parquet,\n" +
			"videos.parquet and run.json into --out. Rerunning into the same folder resumes: finished\n" +
			"videos are skipped. A shard of a multi-node run (--shard, a Slurm job array or a Kubernetes\n" +
			"Indexed Job) writes into --out/shards/<i>-of-<n>; `dsbatch merge --out` gathers them.\n" +
			"Exit status: 0 all videos done, 3 some failed (listed), 1 the run failed.",
		Flags:  flags,
		Action: runRun,
	}
}

func runRun(c *cli.Context) error {
	if cfg := c.String("config"); cfg != "" {
		if err := applyConfig(c, cfg); err != nil {
			return err
		}
	}
	if c.String("model") == "" || c.String("out") == "" {
		return errors.New("run: --model and --out are required")
	}
	shard, err := resolveShard(c)
	if err != nil {
		return err
	}
	engine := c.String("engine")
	if engine != "auto" && engine != "onnxruntime" && engine != "gpu" {
		return fmt.Errorf("--engine %q: want auto, gpu or onnxruntime", engine)
	}
	batch := 0
	if b := c.String("batch"); b != "auto" {
		if batch, err = strconv.Atoi(b); err != nil || batch < 1 {
			return fmt.Errorf("--batch %q: want a number of images of at least 1, or auto", b)
		}
	}
	if _, err := infer.ParseHead(c.String("head")); err != nil {
		return err
	}
	if c.Int("stride") < 1 || c.Float64("fps") < 0 || c.Float64("assume-fps") < 0 {
		return errors.New("run: --stride must be at least 1, --fps and --assume-fps not negative")
	}
	start, end := c.Duration("start").Seconds(), c.Duration("end").Seconds()
	if start < 0 || end < 0 || end > 0 && end <= start {
		return fmt.Errorf("run: --start %gs and --end %gs: want 0 <= start < end (or no end)", start, end)
	}

	var zones *events.Geometry
	if f := c.String("zones"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--zones: %w", err)
		}
		if zones, err = events.ParseGeometry(b); err != nil {
			return fmt.Errorf("--zones %s: %w", f, err)
		}
	}

	// Everything about the model is checked before any video is touched.
	rm, err := openModel(c, c.String("model"))
	if err != nil {
		return err
	}
	model, h, w, lib := rm.Model, rm.h, rm.w, rm.lib
	sha, err := fileSHA256(model.Path)
	if err != nil {
		return err
	}

	devs, host, err := selectGPUs(c)
	if err != nil {
		return err
	}
	if host != nil {
		defer host.Close()
	}
	if engine == "gpu" && len(devs) == 0 {
		return errors.New("--engine gpu: no GPU is selected (see dsbatch gpus, --gpus)")
	}
	// The GPU engine runs on GPU workers when the model compiles for it;
	// the compiler runs here, on the CPU, so the answer comes at once.
	useGPU := false
	if len(devs) > 0 && engine == "auto" && model.Head == infer.HeadDETR {
		// RT-DETR agrees with ONNX Runtime on the GPU engine (99.75% of
		// boxes); D-FINE is checked only up to its encoder (random
		// weights overflow fp16 there or make its query selection
		// chaotic: docs/PERF.md): the family stays on ONNX Runtime unless
		// asked for, and dsbatch check says whether it agrees.
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: DETR-style model: inference on ONNX Runtime (CPU); --engine gpu runs it on the GPU engine (checked on RT-DETR; dsbatch check MODEL --video CLIP compares the two on yours)\n")
		engine = "onnxruntime"
	}
	if len(devs) > 0 && engine != "onnxruntime" {
		perImage, err := infer.GPUMemoryPerImage(model, h, w)
		switch {
		case err == nil:
			useGPU = true
			if batch == 0 {
				batch = infer.AutoBatch(int64(devs[0].MemoryTotal), perImage)
			}
		case engine == "gpu":
			return err
		default:
			fmt.Fprintf(c.App.ErrWriter, "dsbatch: %v; inference on ONNX Runtime (CPU)\n", err)
		}
	}
	if batch == 0 {
		batch = 8
	}
	engineName := "onnxruntime-cpu"
	if useGPU {
		engineName = "gpu-fp16"
	}
	decoders := c.Int("decoders")
	if len(devs) > 0 {
		// Two sessions per NVDEC engine: one alone leaves it idle while its
		// session letterboxes and waits for a free slot (on an H100, 14
		// sessions gave H.264 3,161 frames/s against 2,861 with 7).
		if caps, err := host.Decoders(devs[0].UUID); err == nil && !c.IsSet("decoders") {
			decoders = max(decoders, 2*caps.Engines)
		}
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: %d GPU worker(s), %d NVDEC sessions each; engine %s, batch %d\n", len(devs), decoders, engineName, batch)
	}
	workers := job.Workers(devs, c.Int("cpu-workers"))
	threads := c.Int("threads")
	if threads <= 0 {
		threads = job.DefaultThreads(len(workers))
	}
	kernelCache := ""
	if base, err := os.UserCacheDir(); err == nil {
		kernelCache = filepath.Join(base, "dsbatch", "kernels")
	}
	newORT := func() (infer.Engine, error) {
		if rm.libErr != nil {
			return nil, rm.libErr
		}
		return infer.NewORT(model, h, w, infer.ORTOptions{Lib: lib, Threads: threads})
	}
	newEngine := func(wk job.Worker, cuda *gpu.CUDA) (infer.Engine, error) {
		if !useGPU || wk.GPU == nil {
			return newORT()
		}
		e, err := infer.NewGPU(model, h, w, infer.GPUOptions{UUID: wk.GPU.UUID, CUDA: cuda, Batch: batch, CacheDir: kernelCache})
		if err != nil {
			return nil, fmt.Errorf("GPU engine on %s: %w (--engine onnxruntime runs the model on the CPU)", wk.GPU.UUID, err)
		}
		if mb := e.MaxBatch(); mb < batch {
			fmt.Fprintf(c.App.ErrWriter, "dsbatch: GPU %d: a batch of %d did not fit in GPU memory; the engine takes %d at a time\n", wk.GPU.Index, batch, mb)
		}
		return e, nil
	}
	// The model's layout is probed on one image: on ONNX Runtime, or on
	// the GPU engine where the workers are GPUs and ONNX Runtime's library
	// is missing (a carried binary on a GPU machine).
	newProbe := newORT
	if rm.libErr != nil && useGPU {
		newProbe = func() (infer.Engine, error) {
			return infer.NewGPU(model, h, w, infer.GPUOptions{UUID: devs[0].UUID, Batch: 1, CacheDir: kernelCache})
		}
	}
	probeEngine, err := newProbe()
	if err != nil {
		return err
	}
	pm, err := rm.probe(c, probeEngine)
	probeEngine.Close()
	if err != nil {
		return err
	}
	layout, input, names := pm.layout, pm.input, rm.names

	videos, err := probeArchive(c, shard, nil)
	if err != nil {
		return err
	}
	plan := job.MakePlan(videos, workers, shard)
	conf, iou := float32(c.Float64("conf")), float32(c.Float64("iou"))
	opts := job.RunOptions{
		Out: job.ShardDir(c.String("out"), shard),
		Settings: job.Settings{Model: sha, Engine: engineName, InputH: h, InputW: w, Head: layout.String(), Names: names, Keypoints: pm.keypointNames(),
			Conf: conf, IoU: iou, MaxDet: c.Int("max-det"), TopK: c.Int("topk"), ClassAgnostic: c.Bool("agnostic-nms"),
			Stride: c.Int("stride"), FPS: c.Float64("fps"), Start: start, End: end, AssumeFPS: c.Float64("assume-fps"),
			Track: !c.Bool("no-track"), TrackBuffer: c.Duration("track-buffer").Seconds(), TrackAgnostic: !c.Bool("track-classes"),
			RecordedAt: c.String("recorded-at"), Timezone: c.String("timezone")},
		Layout:         layout,
		Input:          input,
		NoBoxCheck:     c.Bool("no-box-check"),
		KeypointNames:  pm.keypointNames(),
		Post:           infer.PostOptions{Conf: conf, IoU: iou, MaxDet: c.Int("max-det"), TopK: c.Int("topk"), ClassAgnostic: c.Bool("agnostic-nms")},
		NewEngine:      newEngine,
		Batch:          batch,
		DecodeSessions: decoders,
		DeviceFrames:   useGPU,
		GPUFrames:      c.Int("gpu-frames"),
		Force:          c.Bool("force"),
		PartRows:       c.Int64("part-rows"),
		PartAge:        c.Duration("part-age"),
		Counters:       &job.Counters{},
		GPUHost:        host,
		Meta:           runMeta(c, model, sha, lib, engineName),
	}
	stopProfile, err := startCPUProfile(c.String("cpuprofile"))
	if err != nil {
		return err
	}
	stop := startProgress(c.App.ErrWriter, opts.Counters, len(workers), c.Duration("log-every"))
	sum, err := job.Run(c.Context, plan, videos, opts)
	if errors.Is(err, infer.ErrBadModel) {
		err = fmt.Errorf("model %s: %w", model.Path, err)
	}
	stop()
	stopProfile()
	if sum != nil {
		writeRunSummary(c.App.Writer, sum, opts.Out)
		if c.Bool("profile") {
			writeProfile(c.App.Writer, sum.Profile)
		}
	}
	if err != nil {
		return err
	}
	if zones != nil {
		es, err := job.WriteEvents(c.Context, opts.Out, zones, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "events: %d in %d videos (%s/events)\n", es.Events, es.Videos, opts.Out)
	}
	if len(sum.Failed) > 0 {
		return errPartial
	}
	return nil
}

// modelInput is the input convention of the run: --input over the one the
// model states over Ultralytics'. set says whether the user or the model
// chose it (false: the default, which the layout may still change).
func modelInput(c *cli.Context, m *infer.Model) (p infer.Preprocess, from string, set bool, err error) {
	p, from, set, err = m.ModelPreprocess()
	if err != nil {
		return p, "", false, err
	}
	if !set {
		p, from = infer.Ultralytics, "the default, Ultralytics'"
	}
	if s := c.String("input"); s != "" {
		if p, err = infer.ParsePreprocess(s, p); err != nil {
			return p, "", false, fmt.Errorf("--input: %w", err)
		}
		from, set = "--input", true
	}
	return p, from, set, nil
}

// parseStrides reads --strides: positive numbers, comma-separated.
func parseStrides(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--strides %q: want positive numbers, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func readNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--classes: %w", err)
	}
	defer f.Close()
	names, err := infer.ReadNames(f)
	if err != nil {
		return nil, fmt.Errorf("--classes %s: %w", path, err)
	}
	return names, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func runMeta(c *cli.Context, m *infer.Model, sha, lib, engine string) map[string]any {
	host, _ := os.Hostname()
	return map[string]any{
		"dsbatch_version": version,
		"command":         strings.Join(os.Args, " "),
		"host":            host,
		"cpus":            runtime.NumCPU(),
		"model":           map[string]any{"path": m.Path, "sha256": sha, "producer": m.Producer, "opset": m.Opset, "input": m.InputShape},
		"onnxruntime_lib": lib,
		"engine":          engine,
	}
}

func writeRunSummary(w io.Writer, s *job.Summary, out string) {
	fmt.Fprintf(w, "videos: %d done, %d failed, %d already done (of %d)\n", s.Done, len(s.Failed), s.Skipped, s.Videos)
	fmt.Fprintf(w, "frames: %d inferred in %.1fs (%.1f frames/s), %d detections\n", s.Frames, s.WallSeconds, s.FPS, s.Detections)
	if s.SteadyFPS > 0 {
		fmt.Fprintf(w, "pace: first batch written after %.1fs, then %.1f frames/s\n", s.FirstBatchSeconds, s.SteadyFPS)
	}
	busy := s.Stages.Decode + s.Stages.Infer + s.Stages.Export
	if busy > 0 {
		fmt.Fprintf(w, "stage time: decode+letterbox %.1fs (%.0f%%), inference %.1fs (%.0f%%), export %.1fs (%.0f%%)\n",
			s.Stages.Decode, 100*s.Stages.Decode/busy, s.Stages.Infer, 100*s.Stages.Infer/busy, s.Stages.Export, 100*s.Stages.Export/busy)
	}
	for i, g := range s.GPUs {
		fmt.Fprintf(w, "gpu %d: SM %.0f%% mean (max %d%%), NVDEC %.0f%% mean (max %d%%), memory used up to %s\n",
			i, g.SMMean, g.SMMax, g.DecoderMean, g.DecoderMax, bytesIEC(int64(g.MemUsedMax)))
	}
	if s.WallSeconds > 0 {
		fmt.Fprintf(w, "host CPU: %.1f of %d cores busy on average\n", s.CPUSeconds/s.WallSeconds, runtime.NumCPU())
	}
	fmt.Fprintf(w, "peak memory: %s; results in %s (%d parts written)\n", bytesIEC(s.PeakRSS), out, s.Parts)
	for _, f := range s.Failed {
		fmt.Fprintf(w, "failed: %s\n", oneLine(f.Error))
	}
}

// writeProfile prints, per worker, the share of its time each stage was
// busy and how long it waited on its neighbours, so a user sees what bounds
// the run.
func writeProfile(w io.Writer, ps []job.WorkerProfile) {
	for _, p := range ps {
		fmt.Fprintf(w, "worker %d, %s: %d frames, %s-bound; engine built in %.2fs, first batch at %.1fs, then %.1f frames/s (mean batch %.1f)\n",
			p.Worker, p.Device, p.Frames, p.Bound, p.EngineSeconds, p.FirstBatchSeconds, p.SteadyFPS, p.MeanBatch)
		stage := func(name string, s job.StageProfile, in, out string) {
			fmt.Fprintf(w, "  %-9s busy %3.0f%% of %d×%.1fs; waited %.1fs for %s", name, 100*s.BusyShare, s.Goroutines, p.EndSeconds-p.StartSeconds, s.WaitInput, in)
			if out != "" {
				fmt.Fprintf(w, ", %.1fs for %s", s.WaitOutput, out)
			}
			fmt.Fprintln(w)
		}
		stage("decode", p.Decode, "free frame buffers", "the batcher")
		stage("inference", p.Infer, "batches", "the exporter")
		stage("export", p.Export, "results", "")
	}
}
