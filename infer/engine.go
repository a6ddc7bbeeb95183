package infer

import (
	"context"
	"errors"
	"fmt"

	"github.com/dsbatch/dsbatch/gpu"
)

// Engine runs a network on batches of letterboxed images in host memory
// and returns its raw output: what probing a model's head, checking a
// model and comparing engines read. Pipelines read detections through a
// Detector, so that raw outputs stay in this package.
type Engine interface {
	// Infer runs n images held in input (n×3×H×W float32, planar RGB in
	// [0, 1]) and returns the raw output tensor and its shape
	// ([n, d1, d2]). The returned slice is valid until the next call.
	Infer(ctx context.Context, input []float32, n int) ([]float32, []int64, error)
	// Name says which engine this is, for reports ("onnxruntime-cpu").
	Name() string
	Close() error
}

// Frames is a batch of letterboxed images, each 3×H×W float32 planar:
// N of them one after the other in Host, or at the addresses Device in
// memory of the engine's GPU (written before the batch is handed over).
type Frames struct {
	N      int
	Host   []float32
	Device []gpu.DevicePtr
}

// Detector runs an engine on batches of frames, wherever they are, and
// reads each image's detections with the model's head layout: the one way
// a pipeline runs a model. It splits batches larger than the engine takes.
type Detector struct {
	e     Engine
	dev   deviceEngine // e, when it reads frames in GPU memory
	l     Layout
	o     PostOptions
	limit int // most images per engine call; 0: any
}

// deviceEngine is an engine that detects on the device: it reads frames in
// GPU memory and post-processes there where the layout allows, so that
// only detections come back.
type deviceEngine interface {
	detect(ctx context.Context, f Frames, l Layout, o PostOptions) ([][]Detection, error)
}

// batchLimit is implemented by engines that take at most MaxBatch images
// per call (the GPU engine, when the batch asked for did not fit in GPU
// memory).
type batchLimit interface {
	MaxBatch() int
}

// NewDetector reads e's outputs with layout l and post-processing o. The
// detector owns e: Close closes it.
func NewDetector(e Engine, l Layout, o PostOptions) *Detector {
	d := &Detector{e: e, l: l, o: o}
	d.dev, _ = e.(deviceEngine)
	if bl, ok := e.(batchLimit); ok {
		d.limit = max(bl.MaxBatch(), 1)
	}
	return d
}

// OnDevice reports whether the detector takes frames in GPU memory.
func (d *Detector) OnDevice() bool { return d.dev != nil }

// MaxBatch is the most images one engine call takes (0: any); Detect
// splits larger batches.
func (d *Detector) MaxBatch() int { return d.limit }

// Name names the engine, for reports.
func (d *Detector) Name() string { return d.e.Name() }

// Close closes the engine.
func (d *Detector) Close() error { return d.e.Close() }

// Detect returns the detections of each of f's images, in model-input
// pixels.
func (d *Detector) Detect(ctx context.Context, f Frames) ([][]Detection, error) {
	if f.N < 1 {
		return nil, nil
	}
	if f.Device != nil {
		if d.dev == nil {
			return nil, fmt.Errorf("engine %s does not read frames in GPU memory", d.e.Name())
		}
		if len(f.Device) != f.N {
			return nil, fmt.Errorf("infer: %d device frames for a batch of %d", len(f.Device), f.N)
		}
	} else if len(f.Host)%f.N != 0 || len(f.Host) == 0 {
		return nil, fmt.Errorf("infer: %d values for %d images", len(f.Host), f.N)
	}
	size := len(f.Host) / f.N
	step := f.N
	if d.limit > 0 {
		step = min(step, d.limit)
	}
	res := make([][]Detection, 0, f.N)
	for i := 0; i < f.N; i += step {
		n := min(step, f.N-i)
		part := Frames{N: n}
		if f.Device != nil {
			part.Device = f.Device[i : i+n]
		} else {
			part.Host = f.Host[i*size : (i+n)*size]
		}
		dets, err := d.detect(ctx, part)
		if nf := (*NonFiniteError)(nil); errors.As(err, &nf) {
			nf.Image += i // of the batch, not of the part
		}
		if err != nil {
			return nil, err
		}
		res = append(res, dets...)
	}
	return res, nil
}

func (d *Detector) detect(ctx context.Context, f Frames) ([][]Detection, error) {
	if d.dev != nil {
		return d.dev.detect(ctx, f, d.l, d.o)
	}
	out, shape, err := d.e.Infer(ctx, f.Host, f.N)
	if err != nil {
		return nil, err
	}
	if !d.l.Fits(shape) {
		return nil, fmt.Errorf("output shape %v does not fit the %s head's [%d, %d, %d]", shape, d.l, f.N, d.l.D1, d.l.D2)
	}
	if err := d.l.checkFinite(out, f.N, d.e.Name()); err != nil {
		return nil, err
	}
	return d.l.DecodeBatch(out, f.N, d.o), nil
}
