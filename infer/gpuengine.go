package infer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// GPUOptions configure the GPU engine.
type GPUOptions struct {
	UUID string // the GPU, as NVML names it
	// CUDA, when set, is a context on that GPU to share (a GPU worker's,
	// which its decoders use): the engine does not close it. nil: the
	// engine opens its own.
	CUDA     *gpu.CUDA
	Batch    int    // the largest batch Infer takes at once
	CacheDir string // compiled kernels and cuDNN algorithm choices ("" : none)
	// NoGraphs runs each batch as separate launches instead of one CUDA
	// graph (for profiling and debugging).
	NoGraphs bool
	// Workspace bounds cuDNN's scratch memory (0: 256 MiB).
	Workspace int64
	// LegacyConv keeps convolutions on cuDNN's legacy API (its few
	// algorithms), not the graph API's engines (for comparisons).
	LegacyConv bool
}

// GPUStats describe how the engine was built.
type GPUStats struct {
	Load       time.Duration // ONNX parse, compile and lower at the largest batch
	FirstBatch time.Duration // from NewGPU's start to the first plan ready to run
	// Where FirstBatch went: CUDA, cuDNN, kernels and buffers, while Load
	// runs beside them (Setup, from the start); convolution plans and
	// launches (Plans); the first run and the CUDA graph capture (Capture).
	Setup, Plans, Capture time.Duration
	Steps                 int   // launches per batch
	Convs                 int   // cuDNN convolutions per batch
	Arena                 int64 // activation memory at the largest batch, bytes
	AlgoCached            int   // convolutions whose algorithm came from the disk cache
	AlgoMeasure           int   // convolutions whose algorithm was measured now
	GraphAPI              int   // convolutions run through cuDNN's graph API
	Graphs                bool  // batches run as CUDA graphs
	// Bytes and FLOPs are what one batch of the largest size costs: the
	// device memory its launches read and write, and its convolutions'
	// floating-point operations.
	Bytes, FLOPs int64
}

// GPUEngine runs a detector on one GPU: the graph compiled by infer/graph,
// convolutions through cuDNN (NHWC fp16, fp32 accumulation) with a fused
// bias/activation/residual epilogue, every other step an NVRTC kernel, and
// each batch size captured once as a CUDA graph.
type GPUEngine struct {
	cuda   *gpu.CUDA
	shared bool // cuda is GPUOptions.CUDA, closed by its owner
	dnn    *gpu.CUDNN
	// more are further cuDNN handles, for finalizing plans side by side;
	// a convolution runs on the handle that made it.
	more   []*gpu.CUDNN
	stream gpu.Stream
	model  []byte
	h, w   int
	opts   GPUOptions
	k      kernels
	// Memory shared by every batch size's plan.
	arena, input, inputNHWC, ws gpu.DevicePtr
	arenaBytes, wsBytes         int64
	host                        *gpu.HostBuffer
	det                         *detectBuffers // post-processing on the device, made on first use
	plans                       map[int]*gpuPlan
	algos                       *algoCache
	stats                       GPUStats
}

// gpuPlan is the engine specialised to one batch size.
type gpuPlan struct {
	prog   *graph.Program
	consts map[int]gpu.DevicePtr
	// Integer parameters of every step, uploaded once to meta; a launch
	// finds its own at meta + 4×offset.
	params []int32
	meta   gpu.DevicePtr
	convs  []*gpu.Conv
	// prepared are convolutions made ready ahead of lowering, by step.
	prepared map[int]preparedConv
	step     int // the step being lowered
	ops      []func(gpu.Stream) error
	labels   []string // what each op is, for Profile
	graph    *gpu.Graph
	shape    []int64
}

// kernels are the engine's NVRTC kernels, a typed field each. Families
// chosen by element type are indexed by elem (0: float32, 1: float16);
// copies and transposes by the input's type, then the output's.
type kernels struct {
	copy, transpose                     [2][2]*gpu.Kernel
	copyV16                             *gpu.Kernel
	binary, unary, unaryStrided         [2]*gpu.Kernel
	epilogue, epilogue1, epilogue8      *gpu.Kernel
	inputNHWC8, softmax, reduce, matmul *gpu.Kernel
	maxpool, maxpool8, resize, resize8  *gpu.Kernel // float16
	selectV8, detectV8                  *gpu.Kernel
}

// elem indexes a kernel family by element type.
func elem(e graph.Elem) int {
	if e == graph.F16 {
		return 1
	}
	return 0
}

// kernelSource is a CUDA source and the kernels it defines, by name, with
// the field each is loaded into.
type kernelSource struct {
	code  string
	names []string
	into  []**gpu.Kernel
}

// sources lists the engine's kernel sources and binds each kernel's name
// to its field of k: the one place that knows kernels by name.
func (k *kernels) sources() []kernelSource {
	src := func(code string, pairs ...any) kernelSource {
		ks := kernelSource{code: code}
		for i := 0; i < len(pairs); i += 2 {
			ks.names = append(ks.names, pairs[i].(string))
			ks.into = append(ks.into, pairs[i+1].(**gpu.Kernel))
		}
		return ks
	}
	return []kernelSource{
		src(stridedSource, "copy_ff", &k.copy[0][0], "copy_hh", &k.copy[1][1], "copy_hf", &k.copy[1][0], "copy_fh", &k.copy[0][1],
			"copy_v16", &k.copyV16, "binary_f", &k.binary[0], "binary_h", &k.binary[1], "unary_f", &k.unary[0], "unary_h", &k.unary[1],
			"unary_sf", &k.unaryStrided[0], "unary_sh", &k.unaryStrided[1]),
		src(layoutSource, "epilogue", &k.epilogue, "epilogue1", &k.epilogue1, "epilogue8", &k.epilogue8,
			"transpose_ff", &k.transpose[0][0], "transpose_hh", &k.transpose[1][1], "transpose_hf", &k.transpose[1][0], "transpose_fh", &k.transpose[0][1],
			"input_nhwc8", &k.inputNHWC8, "softmax_f", &k.softmax, "reduce_f", &k.reduce, "maxpool_h", &k.maxpool, "maxpool_h8", &k.maxpool8,
			"resize_h", &k.resize, "resize_h8", &k.resize8, "matmul_f", &k.matmul),
		src(detectSource, "select_v8", &k.selectV8, "detect_v8", &k.detectV8),
	}
}

// NewGPU compiles the model m for h×w inputs on the GPU o.UUID and
// prepares its largest batch.
//
// When the GPU has not the memory for o.Batch images, or a tensor of the
// batch has more elements than the engine indexes, NewGPU halves the batch
// until the engine fits (MaxBatch says where it stopped) or one image does
// not.
func NewGPU(m *Model, h, w int, o GPUOptions) (*GPUEngine, error) {
	if o.Batch <= 0 {
		o.Batch = 1
	}
	for {
		e, err := newGPU(m, h, w, o)
		tooBig := errors.Is(err, gpu.ErrOutOfMemory) || errors.Is(err, graph.ErrTooLarge)
		if err == nil || !tooBig || o.Batch == 1 {
			return e, err
		}
		o.Batch /= 2
	}
}

// MaxBatch is the most images the engine takes per call: GPUOptions.Batch,
// or less where that did not fit in GPU memory.
func (e *GPUEngine) MaxBatch() int { return e.opts.Batch }

func newGPU(m *Model, h, w int, o GPUOptions) (_ *GPUEngine, err error) {
	start := time.Now()
	if o.Workspace <= 0 {
		o.Workspace = 256 << 20
	}
	if b := m.InputShape[0]; b > 1 && int(b) != o.Batch {
		// Batch 1 exports are re-batched by the compiler (graph.rebatcher).
		return nil, fmt.Errorf("model %s: batch fixed at %d, the GPU engine wants a dynamic batch (or --batch %d)", m.Path, b, b)
	}
	e := &GPUEngine{model: m.ONNX(), h: h, w: w, opts: o, plans: map[int]*gpuPlan{}}
	// The model compiles on the CPU (the largest batch sizes the shared
	// memory) while CUDA, cuDNN and the kernels load: both take about a
	// tenth of a second warm. The CLI has compiled it once already, so a
	// model the engine cannot run was refused before any GPU was touched.
	type lowered struct {
		prog *graph.Program
		took time.Duration
		err  error
	}
	lc := make(chan lowered, 1)
	go func() {
		t0 := time.Now()
		p, err := e.lower(o.Batch)
		lc <- lowered{p, time.Since(t0), err}
	}()
	var l lowered
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	// A model that does not compile is the error to report, whatever the
	// GPU said meanwhile.
	modelErr := func(err error) error {
		if l = <-lc; l.err != nil {
			return fmt.Errorf("model %s: %w", m.Path, l.err)
		}
		return err
	}
	if o.CUDA != nil {
		e.cuda, e.shared = o.CUDA, true
	} else if e.cuda, err = gpu.OpenCUDA(o.UUID); err != nil {
		return nil, modelErr(err)
	}
	dc := make(chan error, 1)
	go func() {
		var err error
		e.dnn, err = e.cuda.OpenCUDNN()
		dc <- err
	}()
	if e.stream, err = e.cuda.NewStream(); err == nil {
		err = e.loadKernels()
	}
	if derr := <-dc; err == nil {
		err = derr
	}
	if err = modelErr(err); err != nil {
		return nil, err
	}
	e.dnn.Legacy = o.LegacyConv
	prog := l.prog
	e.stats.Load = l.took
	e.stats.Bytes, e.stats.FLOPs = traffic(prog)
	e.algos = loadAlgoCache(o.CacheDir, e.dnn.Version, e.cuda.Arch)
	e.arenaBytes = prog.Arena
	e.stats.Arena = prog.Arena
	in := int64(graph.Len(prog.Input.Shape)) * 4
	inNHWC := int64(o.Batch*prog.InputChannels*h*w) * 2
	outBytes := int64(0)
	for _, v := range prog.Outputs {
		outBytes += int64(graph.Len(v.Shape)) * 4
	}
	if e.arena, err = e.cuda.Alloc(int(max(e.arenaBytes, 256))); err != nil {
		return nil, fmt.Errorf("activation memory (%d MiB): %w", e.arenaBytes>>20, err)
	}
	if e.input, err = e.cuda.Alloc(int(in)); err != nil {
		return nil, err
	}
	if e.inputNHWC, err = e.cuda.Alloc(int(inNHWC)); err != nil {
		return nil, err
	}
	if err := e.cuda.ZeroAsync(e.inputNHWC, inNHWC, e.stream); err != nil {
		return nil, err
	}
	e.wsBytes = o.Workspace
	if e.ws, err = e.cuda.Alloc(int(e.wsBytes)); err != nil {
		return nil, err
	}
	if e.host, err = e.cuda.AllocHost(int(outBytes)); err != nil {
		return nil, err
	}
	e.stats.Setup = time.Since(start)
	if _, err := e.build(o.Batch, prog); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Path, err)
	}
	e.stats.FirstBatch = time.Since(start)
	e.algos.save()
	return e, nil
}

// loadKernels compiles (or reads from the cache) and loads the engine's
// NVRTC kernels, its sources side by side: on a cold start compiling is
// most of the engine's set-up.
func (e *GPUEngine) loadKernels() error {
	srcs := e.k.sources()
	var g errgroup.Group
	for _, src := range srcs {
		g.Go(func() error {
			for i, name := range src.names {
				k, err := e.cuda.Kernel(src.code, name, e.opts.CacheDir)
				if err != nil {
					return err
				}
				*src.into[i] = k
			}
			return nil
		})
	}
	return g.Wait()
}

// lower compiles the model for batch n.
func (e *GPUEngine) lower(n int) (*graph.Program, error) {
	g, err := graph.Parse(e.model)
	if err != nil {
		return nil, err
	}
	if err := g.Specialize(n, e.h, e.w); err != nil {
		return nil, err
	}
	g.Fuse()
	o := graph.LowerOptions{PadInputChannels: 8}
	if !e.opts.LegacyConv {
		// Every operator that can writes into the Concat that reads it, so
		// the Concat copies nothing; readers may then be strided
		// convolutions, which only the graph API has. A convolution writing
		// inside a Concat has cuDNN write a packed scratch tensor that its
		// epilogue moves into place: cuDNN writes strided tensors more
		// slowly than that costs. YOLOv8n at batch 64 on an H100: 8,176
		// img/s, against 7,928–8,009 with only pools and resizes in place
		// and 7,816–7,876 with nothing (docs/PERF.md).
		o.InPlaceConcat = []string{"Conv", "MaxPool", "Resize", "Slice", "Split"}
	}
	return g.Lower(o)
}

// Name says which engine this is.
func (e *GPUEngine) Name() string { return "gpu" }

// Stats describe how the engine was built.
func (e *GPUEngine) Stats() GPUStats { return e.stats }

// Close frees everything the engine holds; nil-safe.
func (e *GPUEngine) Close() error {
	if e == nil || e.cuda == nil {
		return nil
	}
	for _, p := range e.plans {
		p.close(e)
	}
	e.plans = nil
	e.freeDetect()
	for _, p := range []gpu.DevicePtr{e.arena, e.input, e.inputNHWC, e.ws} {
		e.cuda.Free(p)
	}
	e.host.Free()
	if e.stream != nil {
		e.cuda.DestroyStream(e.stream)
	}
	e.dnn.Close()
	for _, d := range e.more {
		d.Close()
	}
	if !e.shared {
		e.cuda.Close()
	}
	e.cuda = nil
	return nil
}

func (p *gpuPlan) close(e *GPUEngine) {
	p.graph.Close()
	for _, c := range p.convs {
		c.Close()
	}
	for _, d := range p.consts {
		e.cuda.Free(d)
	}
	e.cuda.Free(p.meta)
}

// planFor returns the plan a batch of n images runs: always the one of
// the engine's batch size, a short batch padded with the images of the
// last. cuDNN picks a convolution's algorithm per batch size, and their
// fp16 sums differ in the last bits: with a plan per size, an image's
// boxes depended on how many others shared its batch, which decoding's
// timing decides (two runs of one job differed on 0.04% of boxes, near
// the score and IoU thresholds). One plan gives every image the same
// arithmetic, whatever its batch.
func (e *GPUEngine) planFor(n int) (*gpuPlan, error) {
	if n < 1 || n > e.opts.Batch {
		return nil, fmt.Errorf("infer: %d images, the engine was built for batches of 1 to %d", n, e.opts.Batch)
	}
	size := e.opts.Batch
	if p, ok := e.plans[size]; ok {
		return p, nil
	}
	prog, err := e.lower(size)
	if err != nil {
		return nil, err
	}
	p, err := e.build(size, prog)
	e.algos.save()
	return p, err
}

// Infer runs n images (n×3×h×w float32 on the host) and returns the raw
// output, valid until the next call.
func (e *GPUEngine) Infer(ctx context.Context, input []float32, n int) ([]float32, []int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := e.upload(input, n); err != nil {
		return nil, nil, err
	}
	return e.inferDevice(n)
}

// upload copies n images from the host into the input memory.
func (e *GPUEngine) upload(input []float32, n int) error {
	img := 3 * e.h * e.w
	if n < 1 || len(input) < n*img {
		return fmt.Errorf("infer: %d values for %d images of %dx%d", len(input), n, e.w, e.h)
	}
	if n > e.opts.Batch {
		return fmt.Errorf("infer: %d images, the engine was built for batches of %d", n, e.opts.Batch)
	}
	if err := e.cuda.CopyToDevice(e.input, unsafe.Slice((*byte)(unsafe.Pointer(&input[0])), 4*n*img)); err != nil {
		return fmt.Errorf("infer: input upload: %w", err)
	}
	return nil
}

// inferDevice runs the n images already in the input memory and returns
// the raw output, valid until the next call.
func (e *GPUEngine) inferDevice(n int) ([]float32, []int64, error) {
	p, err := e.planFor(n)
	if err != nil {
		return nil, nil, err
	}
	if err := e.run(p); err != nil {
		return nil, nil, err
	}
	out := p.prog.Outputs[0]
	per := graph.Len(out.Shape[1:])
	if err := e.cuda.DownloadAsync(e.host, 0, e.addr(p, out), 4*n*per, e.stream); err != nil {
		return nil, nil, err
	}
	if err := e.cuda.Sync(e.stream); err != nil {
		return nil, nil, fmt.Errorf("gpu engine: %w", err)
	}
	shape := slices.Clone(p.shape)
	shape[0] = int64(n)
	return e.host.Floats()[:n*per], shape, nil
}

// OpTime is the time one kind of launch took in a batch.
type OpTime struct {
	Label    string
	Launches int
	Millis   float64
}

// Profile runs a batch of n launch by launch, waiting for each, reps
// times, and returns the median time per kind of launch, largest first:
// where a batch's time goes (each launch's own overhead included, so the
// sum exceeds a CUDA graph's time).
func (e *GPUEngine) Profile(n, reps int) ([]OpTime, error) {
	p, err := e.planFor(n)
	if err != nil {
		return nil, err
	}
	times := make([][]float64, len(p.ops))
	for r := 0; r < reps; r++ {
		for i, op := range p.ops {
			t0 := time.Now()
			if err := op(e.stream); err != nil {
				return nil, err
			}
			if err := e.cuda.Sync(e.stream); err != nil {
				return nil, err
			}
			times[i] = append(times[i], time.Since(t0).Seconds()*1e3)
		}
	}
	byLabel := map[string]*OpTime{}
	for i, ts := range times {
		slices.Sort(ts)
		l := p.labels[i]
		if byLabel[l] == nil {
			byLabel[l] = &OpTime{Label: l}
		}
		byLabel[l].Launches++
		byLabel[l].Millis += ts[len(ts)/2]
	}
	var out []OpTime
	for _, v := range byLabel {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Millis > out[j].Millis })
	return out, nil
}

// stepLabel names the k-th launch of a step for profiles.
func stepLabel(s graph.Step, k int) string {
	switch s.Kind {
	case graph.KConv:
		if k == 0 {
			return fmt.Sprintf("conv %dx%d c%d k%d s%d %dx%d", s.Conv.R, s.Conv.S, s.Conv.C, s.Conv.K, s.Conv.StrH, s.Conv.OH, s.Conv.OW)
		}
		return "epilogue"
	case graph.KCopy:
		if s.In[0].Elem != s.Out.Elem || s.In[0].Layout != s.Out.Layout {
			return fmt.Sprintf("convert %v", s.Out.Shape[1:])
		}
		return "copy " + s.Out.Layout.String()
	}
	if s.Kind == graph.KMaxPool && s.Pool.Avg {
		return "avgpool"
	}
	return []string{"copy", "conv", "binary", "unary", "softmax", "reduce", "maxpool", "resize", "matmul"}[s.Kind]
}

// run queues one batch.
func (e *GPUEngine) run(p *gpuPlan) error {
	if p.graph != nil {
		return p.graph.Launch(e.stream)
	}
	for _, op := range p.ops {
		if err := op(e.stream); err != nil {
			return err
		}
	}
	return nil
}

// addr is the device address of a view's first element.
func (e *GPUEngine) addr(p *gpuPlan, v graph.View) gpu.DevicePtr {
	b := p.prog.Bufs[v.Buf]
	var base gpu.DevicePtr
	switch b.Space {
	case graph.SpaceArena:
		base = e.arena + gpu.DevicePtr(b.Offset)
	case graph.SpaceConst:
		base = p.consts[v.Buf]
	case graph.SpaceInput:
		base = e.input
	case graph.SpaceInputNHWC:
		base = e.inputNHWC
	}
	return base + gpu.DevicePtr(v.Off*v.Elem.Size())
}

// build uploads a program's constants, chooses its convolution algorithms,
// turns its steps into launches and captures them as a CUDA graph.
func (e *GPUEngine) build(n int, prog *graph.Program) (_ *gpuPlan, err error) {
	if prog.Arena > e.arenaBytes {
		return nil, fmt.Errorf("batch %d needs %d bytes of activations, more than the %d allocated", n, prog.Arena, e.arenaBytes)
	}
	p := &gpuPlan{prog: prog, consts: map[int]gpu.DevicePtr{}}
	defer func() {
		if err != nil {
			p.close(e)
		}
	}()
	t0 := time.Now()
	for i, b := range prog.Bufs {
		if b.Space != graph.SpaceConst {
			continue
		}
		d, err := e.cuda.Alloc(int(max(b.Bytes, 4)))
		if err != nil {
			return nil, err
		}
		p.consts[i] = d
		if err := e.cuda.CopyToDevice(d, b.Data); err != nil {
			return nil, err
		}
	}
	e.prepareConvs(p)
	for si, s := range prog.Steps {
		p.step = si
		before := len(p.ops)
		if err := e.lowerStep(p, s); err != nil {
			return nil, fmt.Errorf("step %s: %w", s.Node, err)
		}
		for i := before; i < len(p.ops); i++ {
			p.labels = append(p.labels, stepLabel(s, i-before))
		}
	}
	if len(p.params) > 0 {
		if p.meta, err = e.cuda.Alloc(4 * len(p.params)); err != nil {
			return nil, err
		}
		if err := e.cuda.CopyToDevice(p.meta, unsafe.Slice((*byte)(unsafe.Pointer(&p.params[0])), 4*len(p.params))); err != nil {
			return nil, err
		}
	}
	p.shape = make([]int64, len(prog.Outputs[0].Shape))
	for i, d := range prog.Outputs[0].Shape {
		p.shape[i] = int64(d)
	}
	e.stats.Steps = len(p.ops)
	t1 := time.Now()
	if len(e.plans) == 0 { // the times of the first plan, the largest batch
		e.stats.Plans = t1.Sub(t0)
		defer func() { e.stats.Capture = time.Since(t1) }()
	}
	// A first run outside any graph checks every launch.
	if err := e.run(p); err != nil {
		return nil, err
	}
	if err := e.cuda.Sync(e.stream); err != nil {
		return nil, err
	}
	if !e.opts.NoGraphs {
		if err := e.cuda.BeginCapture(e.stream); err == nil {
			runErr := e.run(p)
			g, err := e.cuda.EndCapture(e.stream)
			if runErr == nil && err == nil {
				p.graph = g
				e.stats.Graphs = true
			} else {
				g.Close()
			}
		}
	}
	e.plans[n] = p
	return p, nil
}

// grid returns a grid for n elements in grid-stride loops.
func (e *GPUEngine) grid(n int64) [3]uint32 {
	b := (n + 255) / 256
	return [3]uint32{uint32(max(1, min(b, int64(e.cuda.SMs)*32))), 1, 1}
}

var block = [3]uint32{256, 1, 1}

// param stores a launch's integer parameters and returns their device
// address, valid once build has uploaded them (before any launch).
func (p *gpuPlan) param(v []int32) func() gpu.DevicePtr {
	off := len(p.params)
	p.params = append(p.params, v...)
	for len(p.params)%4 != 0 {
		p.params = append(p.params, 0)
	}
	return func() gpu.DevicePtr { return p.meta + gpu.DevicePtr(4*off) }
}

// lowerStep appends the launches of one step to p.ops.
func (e *GPUEngine) lowerStep(p *gpuPlan, s graph.Step) error {
	out := e.addr(p, s.Out)
	n := int64(graph.Len(s.Out.Shape))
	if n >= 1<<31 {
		return fmt.Errorf("tensor of %d elements: the engine indexes with 32 bits", n)
	}
	switch s.Kind {
	case graph.KCopy:
		return e.copyStep(p, s)
	case graph.KBinary:
		a, b := s.In[0], s.In[1]
		shape, st, err := collapse(s.Out.Shape, a.Stride, b.Stride, s.Out.Stride)
		if err != nil {
			return err
		}
		k := e.k.binary[elem(s.Out.Elem)]
		pa, pb, code, m := e.addr(p, a), e.addr(p, b), int32(s.Code), p.param(meta6(shape, st...))
		p.ops = append(p.ops, func(s gpu.Stream) error {
			return k.Launch(e.grid(n), block, s, uint32(n), m(), pa, pb, out, code)
		})
	case graph.KUnary:
		in := s.In[0]
		t := elem(s.Out.Elem)
		x, code, alpha := e.addr(p, in), int32(s.Code), s.Alpha
		if slices.Equal(in.Stride, s.Out.Stride) && packed(in) {
			k := e.k.unary[t]
			p.ops = append(p.ops, func(s gpu.Stream) error {
				return k.Launch(e.grid(n), block, s, uint32(n), x, out, code, alpha)
			})
			return nil
		}
		// Read or written in place inside another tensor: through strides.
		shape, st, err := collapse(s.Out.Shape, in.Stride, s.Out.Stride)
		if err != nil {
			return err
		}
		k, m := e.k.unaryStrided[t], p.param(meta6(shape, st...))
		p.ops = append(p.ops, func(s gpu.Stream) error {
			return k.Launch(e.grid(n), block, s, uint32(n), m(), x, out, code, alpha)
		})
	case graph.KConv:
		return e.conv(p, s)
	case graph.KSoftmax, graph.KReduce:
		x := e.addr(p, s.In[0])
		outer, dim, inner := uint32(s.Outer), uint32(s.Dim), uint32(s.Inner)
		threads := int64(s.Outer * s.Inner)
		grid := [3]uint32{uint32((threads + 255) / 256), 1, 1}
		if s.Kind == graph.KSoftmax {
			k := e.k.softmax
			p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(grid, block, st, outer, dim, inner, x, out) })
		} else {
			k, code := e.k.reduce, int32(s.Code)
			p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(grid, block, st, outer, dim, inner, x, out, code) })
		}
	case graph.KMaxPool, graph.KResize:
		in := s.In[0]
		g := []int32{int32(in.Shape[0]), int32(in.Shape[1]), int32(in.Shape[2]), int32(in.Shape[3]),
			int32(s.Out.Shape[2]), int32(s.Out.Shape[3]),
			int32(in.Stride[0]), int32(in.Stride[2]), int32(in.Stride[3]),
			int32(s.Out.Stride[0]), int32(s.Out.Stride[2]), int32(s.Out.Stride[3])}
		x := e.addr(p, in)
		k, k8, threads := e.k.resize, e.k.resize8, n
		if s.Kind == graph.KMaxPool {
			q := s.Pool
			mode := int32(0) // maximum; 1: average of the taps inside; 2: of those inside the padded input
			switch {
			case q.Avg && q.CountPad:
				mode = 2
			case q.Avg:
				mode = 1
			}
			g = append(g, int32(q.KH), int32(q.KW), int32(q.SH), int32(q.SW), int32(q.DH), int32(q.DW), int32(q.PT), int32(q.PL), mode,
				int32(q.PB), int32(q.PR))
			k, k8 = e.k.maxpool, e.k.maxpool8
		}
		if vec8(in) && vec8(s.Out) {
			k, threads = k8, n/8
		}
		m := p.param(g)
		if s.Kind == graph.KMaxPool {
			p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(e.grid(threads), block, st, m(), x, out) })
		} else {
			tab := p.consts[s.Table]
			p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(e.grid(threads), block, st, m(), tab, x, out) })
		}
	case graph.KMatMul:
		a, b := s.In[0], s.In[1]
		r := len(s.Out.Shape)
		if r > 6 {
			return fmt.Errorf("matmul of rank %d: %w", r, graph.ErrUnsupported)
		}
		batch := s.Out.Shape[:r-2]
		ab := bstride(a, batch)
		bb := bstride(b, batch)
		g := make([]int32, 15)
		for i := 0; i < 4; i++ {
			g[i] = 1
		}
		for i := range batch {
			d := 4 - len(batch) + i
			g[d], g[4+d], g[8+d] = int32(batch[i]), int32(ab[i]), int32(bb[i])
		}
		g[12], g[13], g[14] = int32(s.Out.Shape[r-2]), int32(s.Out.Shape[r-1]), int32(a.Shape[len(a.Shape)-1])
		pa, pb, k, m := e.addr(p, a), e.addr(p, b), e.k.matmul, p.param(g)
		p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(e.grid(n), block, st, m(), pa, pb, out) })
	default:
		return fmt.Errorf("step kind %d: %w", s.Kind, graph.ErrUnsupported)
	}
	return nil
}

// vec8 reports whether the NHWC fp16 view v can be moved eight channels
// (16 bytes) at a time: channels, strides and offset multiples of 8.
func vec8(v graph.View) bool {
	if v.Layout != graph.NHWC || v.Elem != graph.F16 || len(v.Shape) != 4 || v.Shape[1]%8 != 0 || v.Off%8 != 0 {
		return false
	}
	for _, st := range v.Stride {
		if st%8 != 0 && st != 1 {
			return false
		}
	}
	return v.Stride[1] == 1
}

// copyStep lowers a copy: a vectorised copy when both sides are
// contiguous inside, a tiled transpose when they are contiguous along
// different dimensions, else the strided copy; the network input has a
// kernel of its own.
func (e *GPUEngine) copyStep(p *gpuPlan, s graph.Step) error {
	in := s.In[0]
	src, dst := e.addr(p, in), e.addr(p, s.Out)
	if p.prog.Bufs[s.Out.Buf].Space == graph.SpaceInputNHWC && p.prog.InputChannels == 8 && in.Elem == graph.F32 && packed(in) {
		n, c, hw := in.Shape[0], in.Shape[1], in.Shape[2]*in.Shape[3]
		k := e.k.inputNHWC8
		pixels := int64(n * hw)
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return k.Launch(e.grid(pixels), block, st, uint32(pixels), uint32(hw), int32(c), src, dst)
		})
		return nil
	}
	ti, to := elem(in.Elem), elem(s.Out.Elem)
	shape, st, err := collapse(s.Out.Shape, in.Stride, s.Out.Stride)
	if err != nil {
		return err
	}
	r := len(shape) - 1
	if st[0][r] != 1 {
		// The source is not contiguous where the destination is: find
		// the dimension where it is.
		pd := -1
		for d := 0; d < r; d++ {
			if st[0][d] == 1 {
				pd = d
			}
		}
		if pd >= 0 && pd == r-1 && shape[pd] >= 32 && shape[r] >= 32 && (r == 1 || r == 2) {
			// [B,] P, Q: a transpose.
			b, xb, yb := 1, int64(0), int64(0)
			if r == 2 {
				b, xb, yb = shape[0], st[0][0], st[1][0]
			}
			P, Q := shape[r-1], shape[r]
			g := []int32{int32(P), int32(Q), int32(xb), int32(st[0][r]), int32(yb), int32(st[1][r-1])}
			k, m := e.k.transpose[ti][to], p.param(g)
			grid := [3]uint32{uint32((Q + 31) / 32), uint32((P + 31) / 32), uint32(b)}
			p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(grid, [3]uint32{32, 8, 1}, st, m(), src, dst) })
			return nil
		}
	}
	k := e.k.copy[ti][to]
	if in.Elem == s.Out.Elem {
		if v := 16 / in.Elem.Size(); vectorizable(shape, st, v, src, dst) {
			vectorize(shape, st, v)
			k = e.k.copyV16
		}
	}
	m := p.param(meta6(shape, st...))
	total := int64(graph.Len(shape))
	p.ops = append(p.ops, func(s gpu.Stream) error {
		return k.Launch(e.grid(total), block, s, uint32(total), m(), src, dst)
	})
	return nil
}

// bstride is the element stride of each batch dimension of a matrix
// operand broadcast to batch (0 where it broadcasts).
func bstride(v graph.View, batch []int) []int64 {
	out := make([]int64, len(batch))
	vb := v.Shape[:len(v.Shape)-2]
	off := len(batch) - len(vb)
	for i := range vb {
		if vb[i] != 1 {
			out[off+i] = v.Stride[i]
		}
	}
	return out
}

// packed reports whether v covers its buffer region without gaps, in
// some dimension order.
func packed(v graph.View) bool {
	type d struct {
		n int
		s int64
	}
	var ds []d
	for i, n := range v.Shape {
		if n != 1 {
			ds = append(ds, d{n, v.Stride[i]})
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].s < ds[j].s })
	want := int64(1)
	for _, x := range ds {
		if x.s != want {
			return false
		}
		want *= int64(x.n)
	}
	return true
}

// convShape is the cuDNN description of a convolution step (its output
// is Raw when set), with the pixel strides of what cuDNN writes (yp) and
// of the residual.
func convShape(s graph.Step) (shape gpu.ConvShape, yp, rp int64, err error) {
	c := s.Conv
	shape = gpu.ConvShape{N: c.N, C: c.C, H: c.H, W: c.W, K: c.K, R: c.R, S: c.S, PadH: c.PadH, PadW: c.PadW,
		StrH: c.StrH, StrW: c.StrW, DilH: c.DilH, DilW: c.DilW, Groups: c.Groups, OH: c.OH, OW: c.OW}
	in, out := s.In[0], s.Out
	if c.Raw != nil {
		out = *c.Raw
	}
	// x and y may be views inside a Concat's output (LowerOptions.
	// InPlaceConcat): NHWC with a wider pixel stride, 16-byte aligned.
	xp, okx := graph.PixelStride(in)
	yp, oky := graph.PixelStride(out)
	if !okx || !oky || xp%8 != 0 && xp != int64(c.C) || yp%8 != 0 && yp != int64(c.K) || in.Off%8 != 0 || out.Off%8 != 0 {
		return shape, 0, 0, fmt.Errorf("convolution over %v / %v strides: %w", in.Stride, out.Stride, graph.ErrUnsupported)
	}
	if xp != int64(c.C) {
		shape.XPix = int(xp)
	}
	if yp != int64(c.K) {
		shape.YPix = int(yp)
	}
	if c.Residual != nil {
		var ok bool
		if rp, ok = graph.PixelStride(*c.Residual); !ok {
			return shape, 0, 0, fmt.Errorf("residual over %v strides: %w", c.Residual.Stride, graph.ErrUnsupported)
		}
	}
	return shape, yp, rp, nil
}

// preparedConv is a convolution whose execution plan is finalized.
type preparedConv struct {
	conv *gpu.Conv
	algo gpu.ConvAlgo
	need int64
}

// prepareConvs finalizes, side by side on up to four cuDNN handles, the
// plans of the convolutions whose choice is in the cache: each takes
// milliseconds of CPU, and YOLOv8n's 63 were half of a warm build. Those
// to measure are left to conv, one after the other, so that their timings
// do not overlap. Every conv made goes into p.convs, which closes them.
func (e *GPUEngine) prepareConvs(p *gpuPlan) {
	type job struct {
		step  int
		shape gpu.ConvShape
		algo  gpu.ConvAlgo
	}
	var jobs []job
	for i, s := range p.prog.Steps {
		if s.Kind != graph.KConv {
			continue
		}
		if shape, _, _, err := convShape(s); err == nil {
			if a, ok := e.algos.get(shape); ok {
				jobs = append(jobs, job{i, shape, a})
			}
		}
	}
	for len(e.more) < min(3, len(jobs)/8) {
		d, err := e.cuda.OpenCUDNN()
		if err != nil {
			break
		}
		d.Legacy = e.dnn.Legacy
		e.more = append(e.more, d)
	}
	handles := append([]*gpu.CUDNN{e.dnn}, e.more...)
	done := make([]preparedConv, len(jobs))
	ok := make([]bool, len(jobs))
	var wg sync.WaitGroup
	for h, d := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := h; j < len(jobs); j += len(handles) {
				c, err := d.NewConv(jobs[j].shape)
				if err != nil {
					continue
				}
				need, err := c.Use(jobs[j].algo)
				done[j], ok[j] = preparedConv{conv: c, algo: jobs[j].algo, need: need}, err == nil
			}
		}()
	}
	wg.Wait()
	p.prepared = map[int]preparedConv{}
	for j, jb := range jobs {
		if done[j].conv != nil {
			p.convs = append(p.convs, done[j].conv)
		}
		if ok[j] {
			p.prepared[jb.step] = done[j]
		}
	}
}

// conv lowers a convolution: cuDNN, then the epilogue kernel, in place
// or from the step's Raw tensor into a view inside a Concat.
func (e *GPUEngine) conv(p *gpuPlan, s graph.Step) error {
	c := s.Conv
	shape, yp, rp, err := convShape(s)
	if err != nil {
		return err
	}
	in := s.In[0]
	x, w, y, bias := e.addr(p, in), p.consts[c.Weight], e.addr(p, s.Out), p.consts[c.Bias]
	// cuDNN writes raw (y itself unless the step has a Raw tensor); the
	// epilogue reads raw and writes y.
	raw, sp := y, yp
	if c.Raw != nil {
		raw = e.addr(p, *c.Raw)
		var ok bool
		if yp, ok = graph.PixelStride(s.Out); !ok || s.Out.Off%2 != 0 {
			return fmt.Errorf("convolution output over %v strides: %w", s.Out.Stride, graph.ErrUnsupported)
		}
	}
	pc, ready := p.prepared[p.step]
	conv, algo, need := pc.conv, pc.algo, pc.need
	if ready {
		e.stats.AlgoCached++
	} else {
		if conv, err = e.dnn.NewConv(shape); err != nil {
			return err
		}
		p.convs = append(p.convs, conv)
		var cached bool
		if algo, cached = e.algos.get(shape); cached {
			e.stats.AlgoCached++
		} else {
			if algo, err = conv.Find(e.stream, x, w, raw, e.ws, e.wsBytes); err != nil {
				return err
			}
			e.algos.put(shape, algo)
			e.stats.AlgoMeasure++
		}
		if need, err = conv.Use(algo); err != nil {
			return err
		}
	}
	if algo.Graph {
		e.stats.GraphAPI++
	}
	if need > e.wsBytes {
		return fmt.Errorf("cuDNN algorithm %d needs %d bytes of workspace, %d allocated", algo.Algo, need, e.wsBytes)
	}
	e.stats.Convs++
	ws, wsBytes := e.ws, e.wsBytes
	p.ops = append(p.ops, func(st gpu.Stream) error { return conv.Forward(st, x, w, raw, ws, wsBytes) })
	var res gpu.DevicePtr
	if c.Residual != nil {
		res = e.addr(p, *c.Residual)
	}
	n := int64(graph.Len(s.Out.Shape))
	act, alpha, k, ypix, spix, rpix := int32(c.Act), c.Alpha, int32(c.K), int32(yp), int32(sp), int32(rp)
	aligned := func(v int64) bool { return v%8 == 0 }
	switch {
	case c.K%8 == 0 && aligned(yp) && aligned(s.Out.Off) && (c.Residual == nil || aligned(rp) && aligned(c.Residual.Off)):
		kern := e.k.epilogue8
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n/8), block, st, uint32(n/8), k, ypix, y, raw, spix, bias, res, rpix, act, alpha)
		})
	case c.K%2 == 0 && yp%2 == 0 && (c.Residual == nil || rp%2 == 0 && c.Residual.Off%2 == 0):
		kern := e.k.epilogue
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n/2), block, st, uint32(n/2), k, ypix, y, raw, spix, bias, res, rpix, act, alpha)
		})
	default:
		kern := e.k.epilogue1
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return kern.Launch(e.grid(n), block, st, uint32(n), k, ypix, y, raw, spix, bias, res, rpix, act, alpha)
		})
	}
	return nil
}

// collapse orders dimensions by the last operand's strides (outermost
// first), drops dimensions of size 1 and merges neighbours that are
// contiguous in every operand, so kernels index as few dimensions as
// possible. At most 6 may remain.
func collapse(shape []int, strides ...[]int64) ([]int, [][]int64, error) {
	idx := []int{}
	for i, n := range shape {
		if n != 1 {
			idx = append(idx, i)
		}
	}
	last := strides[len(strides)-1]
	sort.SliceStable(idx, func(a, b int) bool { return last[idx[a]] > last[idx[b]] })
	var out []int
	st := make([][]int64, len(strides))
	for _, i := range idx {
		if k := len(out) - 1; k >= 0 {
			merge := true
			for s := range strides {
				if st[s][k] != strides[s][i]*int64(shape[i]) {
					merge = false
				}
			}
			if merge {
				out[k] *= shape[i]
				for s := range strides {
					st[s][k] = strides[s][i]
				}
				continue
			}
		}
		out = append(out, shape[i])
		for s := range strides {
			st[s] = append(st[s], strides[s][i])
		}
	}
	if len(out) == 0 {
		out = []int{1}
		for s := range st {
			st[s] = []int64{0}
		}
	}
	if len(out) > 6 {
		return nil, nil, fmt.Errorf("%d-D strided access: %w", len(out), graph.ErrUnsupported)
	}
	return out, st, nil
}

// vectorizable reports whether a same-type copy can move v elements at a
// time: innermost dimension contiguous on both sides and a multiple of v,
// every other stride and both addresses aligned to 16 bytes.
func vectorizable(shape []int, st [][]int64, v int64, src, dst gpu.DevicePtr) bool {
	r := len(shape) - 1
	if st[0][r] != 1 || st[1][r] != 1 || int64(shape[r])%v != 0 || src%16 != 0 || dst%16 != 0 {
		return false
	}
	for _, s := range st {
		for d := 0; d < r; d++ {
			if s[d]%v != 0 {
				return false
			}
		}
	}
	return true
}

// vectorize rewrites a vectorizable copy in units of v elements.
func vectorize(shape []int, st [][]int64, v int64) {
	r := len(shape) - 1
	shape[r] /= int(v)
	for i := range st {
		for d := 0; d < r; d++ {
			st[i][d] /= v
		}
	}
}

// meta6 packs dims and strides for the kernels' 6-D indexing: dims[6],
// then 6 strides per operand, outer dimensions padded with size 1.
func meta6(shape []int, st ...[]int64) []int32 {
	m := make([]int32, 6+6*len(st))
	pad := 6 - len(shape)
	for d := 0; d < 6; d++ {
		m[d] = 1
	}
	for i, n := range shape {
		m[pad+i] = int32(n)
		for s := range st {
			m[6+6*s+pad+i] = int32(st[s][i])
		}
	}
	return m
}

// algoCache keeps cuDNN's algorithm choices on disk, per cuDNN version and
// GPU architecture, so an engine built again skips the measurements.
type algoCache struct {
	path  string
	m     map[string]gpu.ConvAlgo
	dirty bool
}

func loadAlgoCache(dir string, version, arch int) *algoCache {
	c := &algoCache{m: map[string]gpu.ConvAlgo{}}
	if dir == "" {
		return c
	}
	c.path = filepath.Join(dir, fmt.Sprintf("cudnn%d-sm%d-convs.json", version, arch))
	if b, err := os.ReadFile(c.path); err == nil {
		json.Unmarshal(b, &c.m)
	}
	return c
}

func algoKey(s gpu.ConvShape) string { return fmt.Sprint(s) }

func (c *algoCache) get(s gpu.ConvShape) (gpu.ConvAlgo, bool) {
	a, ok := c.m[algoKey(s)]
	return a, ok
}

func (c *algoCache) put(s gpu.ConvShape, a gpu.ConvAlgo) {
	c.m[algoKey(s)] = a
	c.dirty = true
}

// save writes the cache when it changed; a failure only costs the next
// run its measurements.
func (c *algoCache) save() {
	if !c.dirty || c.path == "" {
		return
	}
	b, err := json.MarshalIndent(c.m, "", " ")
	if err != nil {
		return
	}
	// A cache: a failed write costs a measurement next time, nothing else.
	if atomicfile.Write(c.path, func(w io.Writer) error { _, err := w.Write(b); return err }) == nil {
		c.dirty = false
	}
}

// GPUMemoryPerImage compiles m for h×w inputs on the CPU, without a GPU,
// and returns the GPU memory one image of a batch needs (activations and
// input buffers). An error says why the GPU engine cannot run the model.
func GPUMemoryPerImage(m *Model, h, w int) (int64, error) {
	e := &GPUEngine{model: m.ONNX(), h: h, w: w}
	prog, err := e.lower(1)
	if err != nil {
		return 0, fmt.Errorf("model %s: %w", m.Path, err)
	}
	return prog.Arena + int64(3*h*w*4) + int64(prog.InputChannels*h*w*2), nil
}

// AutoBatch is the largest power of two from 8 to 128 whose activations
// take at most a quarter of the GPU's memory (the rest stays for decoded
// frames and other work), or 8. Frames reach the engine in GPU memory, so
// the batch costs no host memory: on an H100, 128 gives YOLOv8n 5% more
// images/s than 64 alone, and 10% more in dsbatch run, where decoding
// shares the GPU (docs/PERF.md).
func AutoBatch(free, perImage int64) int {
	b := 128
	for b > 8 && int64(b)*perImage > free/4 {
		b /= 2
	}
	return b
}
