package infer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
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
	// KernelProducts keeps linear layers on the engine's own product
	// kernel, not cuDNN (for comparisons).
	KernelProducts bool
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
	// AlgoCached, AlgoMeasure and GraphAPI count the linear layers run on
	// cuDNN (Linear) among the convolutions.
	AlgoCached  int  // convolutions whose algorithm came from the disk cache
	AlgoMeasure int  // convolutions whose algorithm was measured now
	GraphAPI    int  // convolutions run through cuDNN's graph API
	Depthwise   int  // depthwise convolutions run by the engine's own kernel, not cuDNN
	Linear      int  // linear layers run on cuDNN as 1×1 convolutions
	Graphs      bool // batches run as CUDA graphs
	// Bytes and FLOPs are what one batch of the largest size costs: the
	// device memory its launches read and write, and its convolutions'
	// floating-point operations.
	Bytes, FLOPs int64
}

// GPUEngine runs a detector on one GPU: the graph compiled by infer/graph,
// convolutions through cuDNN (NHWC fp16, fp32 accumulation) with a fused
// bias/activation/residual epilogue, large linear layers through cuDNN as
// fp32 1×1 convolutions, every other step an NVRTC kernel, and each batch
// size captured once as a CUDA graph.
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
	det                         *detectBuffers  // post-processing on the device, made on first use
	protos                      *gpu.HostBuffer // a seg model's prototypes, copied for the host's weighing; made on first use
	masks                       *maskBuffers    // a seg model's masks weighed on the device; made on first use
	maskRoom                    int             // logits the device weighs a batch (0: as many as its prototypes; tests)
	hostWeighed                 int             // batches whose masks the host weighed, their logits past maskRoom
	plans                       map[int]*gpuPlan
	algos                       *algoCache
	stats                       GPUStats
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
	e.stats.Setup = time.Since(start)
	if _, err := e.build(o.Batch, prog); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Path, err)
	}
	e.stats.FirstBatch = time.Since(start)
	e.algos.save()
	return e, nil
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
	e.protos.Free()
	e.freeMasks()
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
	if e.host == nil {
		// Page-locked on first use, for the largest batch: heads decoded
		// on the device (DeviceDetects) never bring the raw output back,
		// and a seg model's is 250 MB at batch 64.
		if e.host, err = e.cuda.AllocHost(4 * e.opts.Batch * per); err != nil {
			return nil, nil, fmt.Errorf("gpu engine: output memory: %w", err)
		}
	}
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
