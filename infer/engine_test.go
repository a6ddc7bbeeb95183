package infer

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// limited takes at most max images a call, as a GPU engine that fell
// back to a smaller batch does, and records the sizes it was given.
type limited struct {
	Engine
	max   int
	calls []int
}

func (l *limited) MaxBatch() int { return l.max }

func (l *limited) Infer(ctx context.Context, in []float32, n int) ([]float32, []int64, error) {
	l.calls = append(l.calls, n)
	return l.Engine.Infer(ctx, in, n)
}

// TestDetectorSplitsBatches: a detector gives an engine no more images
// than it takes, and the detections of a batch split in three equal
// those of the raw output decoded at once; frames in GPU memory are
// refused, naming the engine, by an engine that reads the host only.
func TestDetectorSplitsBatches(t *testing.T) {
	// A v8 head of one class and two anchors, the score rising with the
	// image's brightness.
	raw := []float32{10, 50, 10, 50, 4, 8, 4, 8, 0.2, 0.3}
	k := []float32{0, 0, 0, 0, 0, 0, 0, 0, 0.6, 0.5}
	m, err := ReadModel(writeModel(t, onnxtest.Detector{H: 8, W: 8, D1: 5, D2: 2, Raw: raw, K: k, Names: []string{"a"}}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewORT(m, 8, 8, ORTOptions{Lib: ortLib(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Head: HeadV8, D1: 5, D2: 2, Classes: 1, InputH: 8, InputW: 8}
	o := PostOptions{Conf: 0.25, IoU: 0.45}
	const n = 5
	in := make([]float32, n*3*64)
	for i := range in {
		in[i] = float32(i/(3*64)) / 4
	}
	out, _, err := e.Infer(context.Background(), in, n)
	if err != nil {
		t.Fatal(err)
	}
	want := l.DecodeBatch(out, n, o)
	lim := &limited{Engine: e, max: 2}
	d := NewDetector(lim, l, o)
	defer d.Close()
	got, err := d.Detect(context.Background(), Frames{N: n, Host: in})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lim.calls, []int{2, 2, 1}) || d.MaxBatch() != 2 || d.OnDevice() {
		t.Errorf("engine calls %v, max batch %d, on device %v; want [2 2 1], 2, false", lim.calls, d.MaxBatch(), d.OnDevice())
	}
	boxes := 0
	for _, ds := range want {
		boxes += len(ds)
	}
	if !reflect.DeepEqual(got, want) || boxes < n {
		t.Errorf("split batch: %+v, want %+v (%d boxes)", got, want, boxes)
	}
	if _, err := d.Detect(context.Background(), Frames{N: 1, Device: []gpu.DevicePtr{1 << 20}}); err == nil || !strings.Contains(err.Error(), "onnxruntime") {
		t.Errorf("device frames on ONNX Runtime: %v, want an error naming the engine", err)
	}
	if _, err := d.Detect(context.Background(), Frames{N: 2, Host: in[:3*64]}); err == nil {
		t.Error("two images in one image's values: no error")
	}
}

// nonFiniteModels are one-class v8 heads of two anchors (8×8 inputs) whose
// second anchor holds NaN or +Inf: a network that overflowed. ConvMean, so
// that the GPU engine compiles them too.
func nonFiniteModels(t *testing.T) map[string]string {
	t.Helper()
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	models := map[string]string{}
	for name, at := range map[string]struct {
		i int
		v float32
	}{"NaN box": {1, nan}, "infinite score": {9, inf}} {
		raw := []float32{10, 50, 10, 50, 4, 8, 4, 8, 0.6, 0.3}
		raw[at.i] = at.v
		k := []float32{0, 0, 0, 0, 0, 0, 0, 0, 0.1, 0.1}
		models[name] = writeModel(t, onnxtest.Detector{H: 8, W: 8, D1: 5, D2: 2, Raw: raw, K: k, Names: []string{"a"}, ConvMean: true})
	}
	return models
}

// checkRefusesNonFinite runs engine e through a detector on three images
// and wants a NonFiniteError for the first, not an image without
// detections.
func checkRefusesNonFinite(t *testing.T, e Engine, wantEngine string) {
	t.Helper()
	l := Layout{Head: HeadV8, D1: 5, D2: 2, Classes: 1, InputH: 8, InputW: 8}
	d := NewDetector(e, l, PostOptions{Conf: 0.25, IoU: 0.45})
	defer d.Close()
	got, err := d.Detect(context.Background(), Frames{N: 3, Host: make([]float32, 3*3*64)})
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Image != 0 || nf.Anchors != 1 || nf.Engine != wantEngine {
		t.Fatalf("detections %v, error %v; want a NonFiniteError of image 0, one value, engine %s", got, err, wantEngine)
	}
	if !strings.Contains(err.Error(), "not finite") {
		t.Errorf("error %q does not say what is wrong", err)
	}
}

// TestDetectorRefusesNonFinite: an output holding NaN or ±Inf is an error
// naming the image, not an image without the detections that overflowed.
func TestDetectorRefusesNonFinite(t *testing.T) {
	for name, path := range nonFiniteModels(t) {
		t.Run(name, func(t *testing.T) {
			m, err := ReadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewORT(m, 8, 8, ORTOptions{Lib: ortLib(t), Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			checkRefusesNonFinite(t, e, e.Name())
		})
	}
}
