package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure what this machine achieves",
		Subcommands: []*cli.Command{{
			Name:      "decode",
			Usage:     "NVDEC decode + GPU letterbox throughput over FILE... (looped)",
			ArgsUsage: "FILE...",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "gpu", Usage: "GPU index"},
				&cli.IntFlag{Name: "sessions", Value: 8, Usage: "concurrent decode sessions"},
				&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to measure"},
				&cli.IntFlag{Name: "imgsz", Value: 640, Usage: "letterbox size (0: decode only)"},
				&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the run to this file"},
				&cli.BoolFlag{Name: "loop", Usage: "decode each file over and over in one decoder instead of reopening it (steady state, as for long videos)"},
			},
			Action: runBenchDecode,
		}, {
			Name:  "infer",
			Usage: "GPU engine throughput of --model on random images already on the GPU: the network alone, then with post-processing",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "model", Required: true, Usage: "ONNX detector"},
				&cli.IntFlag{Name: "gpu", Usage: "GPU index"},
				&cli.IntFlag{Name: "batch", Value: 64, Usage: "images per batch"},
				&cli.IntFlag{Name: "imgsz", Value: 640, Usage: "input size"},
				&cli.DurationFlag{Name: "duration", Value: 5 * time.Second, Usage: "how long to measure each mode"},
			},
			Action: runBenchInfer,
		}},
	}
}

func runBenchDecode(c *cli.Context) error {
	files := c.Args().Slice()
	if len(files) == 0 {
		return errors.New("bench decode: give at least one video file")
	}
	dev, err := benchGPU(c)
	if err != nil {
		return err
	}
	g, err := gpu.OpenCUDA(dev.UUID)
	if err != nil {
		return err
	}
	defer g.Close()
	size := c.Int("imgsz")
	var lbx *infer.GPULetterbox
	if size > 0 {
		cache, _ := os.UserCacheDir()
		if lbx, err = infer.NewGPULetterbox(g, size, size, infer.Ultralytics, filepath.Join(cache, "dsbatch", "kernels")); err != nil {
			return err
		}
	}
	stop, err := startCPUProfile(c.String("cpuprofile"))
	if err != nil {
		return err
	}
	defer stop()
	// Probe once, as dsbatch run does before decoding.
	infos := make([]*decode.Info, len(files))
	for i, f := range files {
		info, err := decode.Probe(c.Context, f, decode.ProbeOptions{})
		if err != nil {
			return err
		}
		infos[i] = &info
	}
	var frames atomic.Int64
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("duration"))
	defer cancel()
	start := time.Now()
	eg, ctx := errgroup.WithContext(ctx)
	for s := 0; s < c.Int("sessions"); s++ {
		eg.Go(func() error {
			var dst gpu.DevicePtr
			stream, err := g.NewStream()
			if err != nil {
				return err
			}
			defer g.DestroyStream(stream)
			if lbx != nil {
				if dst, err = g.Alloc(3 * size * size * 4); err != nil {
					return err
				}
				defer g.Free(dst)
			}
			var d *decode.NVDEC
			defer func() {
				if d != nil {
					d.Close()
				}
			}()
			for i := s; ctx.Err() == nil; i++ {
				if err := benchOne(ctx, g, lbx, &d, files[i%len(files)], infos[i%len(files)], c.Bool("loop"), dst, stream, &frames); err != nil && ctx.Err() == nil {
					return err
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	secs := time.Since(start).Seconds()
	n := frames.Load()
	fmt.Fprintf(c.App.Writer, "RESULT gpu=%q sessions=%d imgsz=%d frames=%d secs=%.2f fps=%.1f\n", dev.Name, c.Int("sessions"), size, n, secs, float64(n)/secs)
	return nil
}

// benchOne decodes one file in session s, reusing the session's decoder
// (*dp) as dsbatch run does.
func benchOne(ctx context.Context, g *gpu.CUDA, lbx *infer.GPULetterbox, dp **decode.NVDEC, path string, info *decode.Info, loop bool, dst gpu.DevicePtr, s gpu.Stream, frames *atomic.Int64) error {
	opts := decode.Options{Probed: info, Loop: loop}
	if *dp != nil {
		if err := (*dp).Reopen(ctx, path, opts); err != nil {
			(*dp).Close()
			*dp = nil
		}
	}
	if *dp == nil {
		d, err := decode.OpenNVDEC(ctx, path, g.Context(), opts)
		if err != nil {
			return err
		}
		d.SetStream(unsafe.Pointer(s))
		*dp = d
	}
	d := *dp
	var f decode.GPUFrame
	for {
		err := d.Next(ctx, &f)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if lbx != nil {
			if _, err := lbx.Run(&f, dst, s); err != nil {
				return err
			}
			// The frame stays mapped until the next Next: finish with it first.
			if err := g.Sync(s); err != nil {
				return err
			}
		}
		frames.Add(1)
	}
}

func runBenchInfer(c *cli.Context) error {
	dev, err := benchGPU(c)
	if err != nil {
		return err
	}
	m, err := infer.ReadModel(c.String("model"))
	if err != nil {
		return err
	}
	cache, _ := os.UserCacheDir()
	n, size := c.Int("batch"), c.Int("imgsz")
	t0 := time.Now()
	e, err := infer.NewGPU(m, size, size, infer.GPUOptions{UUID: dev.UUID, Batch: n, CacheDir: filepath.Join(cache, "dsbatch", "kernels")})
	if err != nil {
		return err
	}
	defer e.Close()
	in := make([]float32, n*3*size*size)
	for i := range in {
		in[i] = float32(i%251) / 250
	}
	ctx := c.Context
	if _, _, err := e.Infer(ctx, in, n); err != nil {
		return err
	}
	fmt.Printf("engine ready in %.2fs (%+v)\n", time.Since(t0).Seconds(), e.Stats())
	// The layout as run and check read it: from the model's metadata, what
	// reading it cut off, and its output.
	l, err := infer.ProbeLayout(ctx, e, infer.ProbeOptions{H: size, W: size, Names: len(m.Names), Head: m.Head, Input: infer.Ultralytics,
		KeypointShape: m.KeypointShape, Task: m.Metadata["task"], Masks: m.Masks})
	if err != nil {
		return fmt.Errorf("model %s: %w", m.Path, err)
	}
	det := infer.NewDetector(e, l, infer.PostOptions{Conf: 0.25, IoU: 0.7})
	frames := infer.Frames{N: n, Device: e.InputFrames(n)}
	for _, mode := range []string{"forward", "detect"} {
		images, start := 0, time.Now()
		for time.Since(start) < c.Duration("duration") {
			if mode == "forward" {
				err = e.Forward(ctx, n)
			} else {
				_, err = det.Detect(ctx, frames)
			}
			if err != nil {
				return err
			}
			images += n
		}
		rate := float64(images) / time.Since(start).Seconds()
		st := e.Stats()
		perBatch := rate / float64(n)
		fmt.Printf("%s: batch %d, %.0f img/s (convolutions %.1f TFLOP/s, memory traffic %.2f TB/s of %.0f MB per batch)\n",
			mode, n, rate, perBatch*float64(st.FLOPs)/1e12, perBatch*float64(st.Bytes)/1e12, float64(st.Bytes)/1e6)
	}
	return nil
}

// benchGPU returns the GPU --gpu names.
func benchGPU(c *cli.Context) (gpu.Device, error) {
	host, err := gpu.Open()
	if err != nil {
		return gpu.Device{}, err
	}
	devs, err := host.Devices()
	host.Close()
	if err != nil {
		return gpu.Device{}, err
	}
	if i := c.Int("gpu"); i < 0 || i >= len(devs) {
		return gpu.Device{}, fmt.Errorf("--gpu %d: %d GPU(s)", i, len(devs))
	}
	return devs[c.Int("gpu")], nil
}

// startCPUProfile starts a Go CPU profile into path (nothing when path is
// empty); stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
