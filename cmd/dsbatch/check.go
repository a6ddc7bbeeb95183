package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/export"
	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer"
)

func checkCommand() *cli.Command {
	flags := append(modelFlags(), gpuFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "video", Usage: "compare the engines on the first frames of this video (default: random images)"},
		&cli.IntFlag{Name: "frames", Value: 16, Usage: "frames (or random images) to compare the engines on"},
		&cli.IntFlag{Name: "batch", Value: 64, Usage: "GPU engine batch for its speed"},
		&cli.DurationFlag{Name: "duration", Value: 2 * time.Second, Usage: "how long to time each engine"},
		&cli.Float64Flag{Name: "min", Value: 0.99, Usage: "agreement of the engines' boxes (0-1) below which check exits with status 4"},
		&cli.StringFlag{Name: "write-onnx", Usage: "write the graph the engines run (exported post-processing cut off, outputs joined) to this file, for other tools"},
	)
	return &cli.Command{
		Name:      "check",
		Usage:     "what a model is and how dsbatch runs it: layout, input convention, classes, whether the GPU engine compiles it, speed of each engine, and their agreement",
		ArgsUsage: "MODEL",
		Description: "Run it first on a new model. It reads the model as run does (its description file, metadata and\n" +
			"flags), compiles it for the GPU engine (on the CPU: it says which node stops it, if one does), times\n" +
			"ONNX Runtime and, on a GPU, the GPU engine, and with a GPU matches the two engines' boxes on --frames\n" +
			"frames of --video (or random images). Exit status: 0, 4 when the engines agree less than --min, 1\n" +
			"when the model cannot be used.",
		Flags:  flags,
		Action: runCheck,
	}
}

func runCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("check: want one model file")
	}
	rm, err := openModel(c, c.Args().First())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	defer tw.Flush() // what was found before an error, too
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	m := rm.Model
	row("model", "%s (%s, opset %d, %d nodes)", m.Path, orUnknown(m.Producer), m.Opset, sumOps(m.Ops))
	batch := "dynamic"
	if b := m.InputShape[0]; b > 0 {
		batch = fmt.Sprintf("fixed at %d", b)
	}
	row("input", "%s %v float32, batch %s; run at %dx%d", m.Input, m.InputShape, batch, rm.w, rm.h)
	switch {
	case m.Cut != "":
		row("rewritten", "post-processing exported into the graph cut off at %s; dsbatch does it", m.Cut)
	case m.Joined != nil:
		row("rewritten", "outputs %s joined", strings.Join(m.Joined, " and "))
	}
	if f := c.String("write-onnx"); f != "" {
		if err := os.WriteFile(f, m.ONNX(), 0o644); err != nil {
			return fmt.Errorf("--write-onnx: %w", err)
		}
		row("written", "the graph the engines run, to %s", f)
	}
	perImage, compileErr := infer.GPUMemoryPerImage(m, rm.h, rm.w)
	if compileErr != nil {
		row("GPU engine", "does not compile it: %v", compileErr)
	} else {
		row("GPU engine", "compiles it (%.0f MB of GPU memory per image)", float64(perImage)/1e6)
	}
	if rm.libErr != nil {
		return rm.libErr
	}
	ort, err := infer.NewORT(m, rm.h, rm.w, infer.ORTOptions{Lib: rm.lib})
	if err != nil {
		return err
	}
	defer ort.Close()
	pm, err := rm.probe(c, ort)
	if err != nil {
		return err
	}
	l := pm.layout
	row("output", "%s [B, %d, %d]: %s head, %d classes", m.Output, l.D1, l.D2, l, len(rm.names))
	row("classes", "%s", summarise(rm.names))
	row("convention", "%s (%s)", pm.input, pm.inputFrom)

	images, source, err := checkImages(c, pm)
	if err != nil {
		return err
	}
	n := len(images) / (3 * rm.h * rm.w)
	post := infer.PostOptions{Conf: float32(c.Float64("conf")), IoU: float32(c.Float64("iou")), MaxDet: c.Int("max-det"), TopK: c.Int("topk"), ClassAgnostic: c.Bool("agnostic-nms")}
	// Not closed: ort is the probe's engine, closed by its opener.
	cpu, err := infer.NewDetector(ort, l, post).Detect(c.Context, infer.Frames{N: n, Host: images})
	if err != nil {
		return err
	}
	boxes := 0
	check := infer.BoxCheck{Layout: l}
	var plausible error
	for _, d := range cpu {
		boxes += len(d)
		if err := check.Add(d); err != nil && plausible == nil {
			plausible = err
		}
	}
	if err := check.Finish(); err != nil && plausible == nil {
		plausible = err
	}
	row("boxes", "%d on %d %s (ONNX Runtime)", boxes, n, source)
	if plausible != nil {
		row("layout check", "FAILED: %v", plausible)
	}
	rate, err := imagesPerSecond(c, ort, rm.h, rm.w, 8)
	if err != nil {
		return err
	}
	row("ONNX Runtime", "%.1f img/s (CPU, batch 8)", rate)

	var agreeErr error
	var devs []gpu.Device
	if host, err := gpu.Open(); err == nil {
		all, err := host.Devices()
		host.Close()
		if err == nil {
			visible, _ := gpu.Visible(os.Getenv, len(all))
			devs, _ = gpu.Select(all, c.String("gpus"), visible)
		}
	}
	switch {
	case len(devs) == 0:
		row("engines", "not compared: no GPU")
	case compileErr != nil:
		row("engines", "not compared: the GPU engine does not compile the model")
	default:
		cache := ""
		if base, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(base, "dsbatch", "kernels")
		}
		t0 := time.Now()
		g, err := infer.NewGPU(m, rm.h, rm.w, infer.GPUOptions{UUID: devs[0].UUID, Batch: c.Int("batch"), CacheDir: cache})
		if err != nil {
			return err
		}
		defer g.Close()
		st := g.Stats()
		row("GPU first batch", "%.2f s (set-up %.2f s, convolution plans %.2f s, first run and CUDA graph %.2f s)",
			time.Since(t0).Seconds(), st.Setup.Seconds(), st.Plans.Seconds(), st.Capture.Seconds())
		grate, err := gpuImagesPerSecond(c, g)
		if err != nil {
			return err
		}
		row("GPU engine speed", "%.0f img/s (batch %d, fp16, the network alone), %.1f× ONNX Runtime on this CPU", grate, g.MaxBatch(), grate/rate)
		gdets, err := infer.NewDetector(g, l, post).Detect(c.Context, infer.Frames{N: n, Host: images})
		if err != nil {
			return err
		}
		var a, b, matched int
		var parts partStats
		for i := range cpu {
			m, _, _ := matchBoxes(asBoxes(gdets[i]), asBoxes(cpu[i]), 0.5, &parts)
			a, b, matched = a+len(gdets[i]), b+len(cpu[i]), matched+m
		}
		agree := ratio(int64(matched), int64(max(a, b)))
		row("engines agree", "%.2f%% of boxes (%d matched of %d GPU and %d ONNX Runtime, IoU ≥ 0.5, same class)", 100*agree, matched, a, b)
		if parts.points > 0 {
			row("their points", "%d compared: mean distance %.3g px, largest %.3g px", parts.points, parts.pointSum/float64(parts.points), parts.maxGap)
		}
		if agree < c.Float64("min") {
			agreeErr = errDisagree
		}
	}
	tw.Flush()
	if plausible != nil {
		return fmt.Errorf("model %s: %w", m.Path, plausible)
	}
	if agreeErr != nil {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: the engines agree less than --min %.2f%%\n", 100*c.Float64("min"))
	}
	return agreeErr
}

func orUnknown(s string) string {
	if s == "" {
		return "producer unknown"
	}
	return s
}

func sumOps(ops map[string]int) int {
	n := 0
	for _, v := range ops {
		n += v
	}
	return n
}

// summarise lists the first names and how many there are.
func summarise(names []string) string {
	if len(names) <= 6 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, … (%d)", strings.Join(names[:5], ", "), len(names))
}

func asBoxes(ds []infer.Detection) []box {
	out := make([]box, len(ds))
	for i, d := range ds {
		out[i] = box{class: int32(d.Class), score: d.Score, d: d}
		for _, k := range d.Keypoints {
			out[i].kps = append(out[i].kps, export.Keypoint(k))
		}
	}
	return out
}

// checkImages are the images check compares the engines on: the first
// --frames frames of --video, letterboxed by the model's convention, or
// random images.
func checkImages(c *cli.Context, pm *probedModel) ([]float32, string, error) {
	n, size := max(c.Int("frames"), 1), 3*pm.h*pm.w
	path := c.String("video")
	if path == "" {
		r := rand.New(rand.NewSource(1))
		in := make([]float32, n*size)
		for i := range in {
			in[i] = r.Float32()
		}
		return in, "random images", nil
	}
	d, err := decode.Open(c.Context, path, decode.Options{Format: decode.YUV420P, NoAutoRotate: true})
	if err != nil {
		return nil, "", err
	}
	defer d.Close()
	var in []float32
	var f decode.Frame
	for len(in) < n*size {
		err := d.Next(c.Context, &f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		t := make([]float32, size)
		y, u, v := f.Planes()
		infer.LetterboxYUV420(y, u, v, f.Width, f.Height, f.Rotation, t, pm.w, pm.h, pm.input)
		in = append(in, t...)
	}
	if len(in) == 0 {
		return nil, "", fmt.Errorf("check: %s: no frame decoded", path)
	}
	return in, "frames of " + filepath.Base(path), nil
}

// imagesPerSecond times e on batches of random images.
func imagesPerSecond(c *cli.Context, e infer.Engine, h, w, batch int) (float64, error) {
	in := make([]float32, batch*3*h*w)
	n, start := 0, time.Now()
	for time.Since(start) < c.Duration("duration") || n == 0 {
		if _, _, err := e.Infer(c.Context, in, batch); err != nil {
			return 0, err
		}
		n += batch
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func gpuImagesPerSecond(c *cli.Context, g *infer.GPUEngine) (float64, error) {
	b := g.MaxBatch()
	var times []float64
	for i := 0; i < 3; i++ {
		n, start := 0, time.Now()
		for time.Since(start) < c.Duration("duration")/3 || n == 0 {
			if err := g.Forward(c.Context, b); err != nil {
				return 0, err
			}
			n += b
		}
		times = append(times, float64(n)/time.Since(start).Seconds())
	}
	sort.Float64s(times)
	return times[1], nil
}
