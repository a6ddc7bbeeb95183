package infer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTLibName is the file name of ONNX Runtime's shared library.
const ORTLibName = "libonnxruntime.so.1"

// ErrNoORT means the ONNX Runtime library could not be found or used.
var ErrNoORT = errors.New("ONNX Runtime library unusable")

// FindORT returns the ONNX Runtime library to load: explicit (a flag),
// else $DSBATCH_ORT_LIB, else the copy `make setup` places beside the
// dsbatch executable (or in ../lib), else the system's.
func FindORT(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv("DSBATCH_ORT_LIB")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrNoORT, p, unwrapPathErr(err))
		}
		return p, nil
	}
	var looked []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dir := filepath.Dir(exe)
			for _, p := range []string{filepath.Join(dir, ORTLibName), filepath.Join(dir, "..", "lib", ORTLibName)} {
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				looked = append(looked, p)
			}
		}
	}
	for _, dir := range []string{"/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"} {
		p := filepath.Join(dir, ORTLibName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		looked = append(looked, p)
	}
	return "", fmt.Errorf("%w: %s not found (looked in %v); run `make setup` (it installs the npm package onnxruntime-node's library beside bin/dsbatch), or give --ort-lib or DSBATCH_ORT_LIB",
		ErrNoORT, ORTLibName, looked)
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ONNX Runtime keeps one environment per process; sessions share it. This
// refcount is the one piece of package state, mirroring the library's own.
var ortEnv struct {
	sync.Mutex
	refs int
	lib  string
}

func acquireORT(lib string) error {
	ortEnv.Lock()
	defer ortEnv.Unlock()
	if ortEnv.refs > 0 {
		if lib != ortEnv.lib {
			return fmt.Errorf("%w: %s requested while %s is loaded", ErrNoORT, lib, ortEnv.lib)
		}
		ortEnv.refs++
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("%w: %s: %v (dsbatch needs ONNX Runtime 1.24 or newer: run `make setup`)", ErrNoORT, lib, err)
	}
	_ = ort.SetEnvironmentLogLevel(ort.LoggingLevelError)
	ortEnv.refs, ortEnv.lib = 1, lib
	return nil
}

func releaseORT() {
	ortEnv.Lock()
	defer ortEnv.Unlock()
	ortEnv.refs--
	if ortEnv.refs == 0 {
		_ = ort.DestroyEnvironment()
	}
}

// ORTOptions configure an ONNX Runtime engine.
type ORTOptions struct {
	Lib     string // library path (see FindORT)
	Threads int    // intra-op threads; 0: all cores
}

// ortEngine runs a model with ONNX Runtime on the CPU.
type ortEngine struct {
	sess       *ort.DynamicAdvancedSession
	in, out    string
	fixedBatch int // >0 when the model's batch dimension is fixed
	c, h, w    int
	buf        []float32
}

// NewORT loads m into an ONNX Runtime CPU session for h×w inputs.
func NewORT(m *Model, h, w int, o ORTOptions) (Engine, error) {
	if err := acquireORT(o.Lib); err != nil {
		return nil, err
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		releaseORT()
		return nil, fmt.Errorf("onnxruntime options: %w", err)
	}
	// The options go before the environment is released (releaseORT may
	// destroy it): destroying them after that crashes.
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := errors.Join(opts.SetIntraOpNumThreads(threads), opts.SetInterOpNumThreads(1)); err != nil {
		opts.Destroy()
		releaseORT()
		return nil, fmt.Errorf("onnxruntime options: %w", err)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(m.ONNX(), []string{m.Input}, []string{m.Output}, opts)
	opts.Destroy()
	if err != nil {
		releaseORT()
		return nil, fmt.Errorf("model %s: %w: onnxruntime cannot load it: %v", m.Path, ErrBadModel, err)
	}
	e := &ortEngine{sess: sess, in: m.Input, out: m.Output, c: 3, h: h, w: w}
	if b := m.InputShape[0]; b > 0 {
		e.fixedBatch = int(b)
	}
	return e, nil
}

func (e *ortEngine) Name() string { return "onnxruntime-cpu" }

func (e *ortEngine) Infer(ctx context.Context, input []float32, n int) ([]float32, []int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	img := e.c * e.h * e.w
	if len(input) < n*img {
		return nil, nil, fmt.Errorf("infer: %d values for %d images of %dx%d", len(input), n, e.w, e.h)
	}
	step := n
	if e.fixedBatch > 0 {
		step = e.fixedBatch
	}
	e.buf = e.buf[:0]
	var shape []int64
	for start := 0; start < n; start += step {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		chunk := input[start*img : min(n, start+step)*img]
		if len(chunk) < step*img { // fixed-batch model: pad the last chunk
			chunk = append(append(make([]float32, 0, step*img), chunk...), make([]float32, step*img-len(chunk))...)
		}
		s, err := e.run(chunk, step, min(step, n-start))
		if err != nil {
			return nil, nil, err
		}
		shape = append([]int64{int64(n)}, s[1:]...)
	}
	return e.buf, shape, nil
}

// run infers one chunk of n images and appends the outputs of the first
// keep images to e.buf (ORT owns the output memory only until Destroy).
func (e *ortEngine) run(chunk []float32, n, keep int) ([]int64, error) {
	in, err := ort.NewTensor(ort.NewShape(int64(n), int64(e.c), int64(e.h), int64(e.w)), chunk)
	if err != nil {
		return nil, fmt.Errorf("onnxruntime input: %w", err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := e.sess.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("onnxruntime run: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("onnxruntime: output %q is not float32", e.out)
	}
	data := t.GetData()
	per := len(data) / n
	e.buf = append(e.buf, data[:keep*per]...)
	return []int64(t.GetShape()), nil
}

func (e *ortEngine) Close() error {
	if e.sess == nil {
		return nil
	}
	err := e.sess.Destroy()
	e.sess = nil
	releaseORT()
	return err
}
