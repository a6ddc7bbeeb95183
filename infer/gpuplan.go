package infer

// A GPU engine plan: the program compiled for one batch size, turned into
// the launches (kernels, cuDNN convolutions, copies) of a CUDA graph.

import (
	"fmt"
	"slices"
	"sort"
	"time"
	"unsafe"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
)

// gpuPlan is the engine specialised to one batch size.
type gpuPlan struct {
	prog   *graph.Program
	consts map[int]gpu.DevicePtr
	// Integer parameters of every step, uploaded once to meta; a launch
	// finds its own at meta + 4×offset.
	params []int32
	meta   gpu.DevicePtr
	convs  []*gpu.Conv
	owned  []gpu.DevicePtr // device memory of the plan's own (transposed weights)
	// prepared are convolutions made ready ahead of lowering, by step.
	prepared map[int]preparedConv
	step     int // the step being lowered
	ops      []func(gpu.Stream) error
	labels   []string // what each op is, for Profile
	// stepLabels, when the step being lowered sets them, name its ops in
	// labels instead of stepLabel.
	stepLabels []string
	nodes      []string // the step each op comes from: its node and output shape, for Profile
	graph      *gpu.Graph
	shape      []int64
}

func (p *gpuPlan) close(e *GPUEngine) {
	p.graph.Close()
	for _, c := range p.convs {
		c.Close()
	}
	for _, d := range p.consts {
		e.cuda.Free(d)
	}
	for _, d := range p.owned {
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

// OpTime is the time one kind of launch took in a batch.
type OpTime struct {
	Label    string
	Launches int
	Millis   float64
}

// Profile runs a batch of n launch by launch, waiting for each, reps
// times, and returns the median time per kind of launch, largest first:
// where a batch's time goes (each launch's own overhead included, so the
// sum exceeds a CUDA graph's time). With byNode, each launch is one of its
// own, labelled with its node and output shape too.
func (e *GPUEngine) Profile(n, reps int, byNode bool) ([]OpTime, error) {
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
		if byNode {
			l = fmt.Sprintf("%s %d: %s", l, i, p.nodes[i])
		}
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
		if c := s.Conv; k == 0 && c.Groups > 1 && c.Groups == c.C && c.K == c.C {
			return fmt.Sprintf("dwconv %dx%d c%d s%d %dx%d", c.R, c.S, c.C, c.StrH, c.OH, c.OW)
		}
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
	return s.Kind.String()
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
			l := stepLabel(s, i-before)
			if i-before < len(p.stepLabels) {
				l = p.stepLabels[i-before]
			}
			p.labels = append(p.labels, l)
			p.nodes = append(p.nodes, fmt.Sprintf("%s %v", s.Node, s.Out.Shape))
		}
		p.stepLabels = p.stepLabels[:0]
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

// stepKernels are the engine's launches for each kind of step: the
// kernel half of the compiler's operator table (graph's operators lower
// to these kinds).
var stepKernels = [graph.Kinds]func(*GPUEngine, *gpuPlan, graph.Step) error{
	graph.KCopy:       (*GPUEngine).copyStep,
	graph.KConv:       (*GPUEngine).conv,
	graph.KBinary:     (*GPUEngine).binaryStep,
	graph.KUnary:      (*GPUEngine).unaryStep,
	graph.KSoftmax:    (*GPUEngine).rowStep,
	graph.KReduce:     (*GPUEngine).rowStep,
	graph.KMaxPool:    (*GPUEngine).poolStep,
	graph.KResize:     (*GPUEngine).poolStep,
	graph.KMatMul:     (*GPUEngine).matMulStep,
	graph.KAttention:  (*GPUEngine).attentionStep,
	graph.KWhere:      (*GPUEngine).whereStep,
	graph.KGather:     (*GPUEngine).gatherStep,
	graph.KTopK:       (*GPUEngine).topKStep,
	graph.KGridSample: (*GPUEngine).gridSampleStep,
	graph.KLayerNorm:  (*GPUEngine).layerNormStep,
}

// lowerStep appends the launches of one step to p.ops.
func (e *GPUEngine) lowerStep(p *gpuPlan, s graph.Step) error {
	if n := int64(graph.Len(s.Out.Shape)); n >= 1<<31 {
		return fmt.Errorf("tensor of %d elements: the engine indexes with 32 bits", n)
	}
	if s.Kind >= graph.Kinds || stepKernels[s.Kind] == nil {
		return fmt.Errorf("step kind %d: %w", s.Kind, graph.ErrUnsupported)
	}
	return stepKernels[s.Kind](e, p, s)
}

// binaryStep: elementwise with two operands, broadcast through strides.
func (e *GPUEngine) binaryStep(p *gpuPlan, s graph.Step) error {
	a, b := s.In[0], s.In[1]
	shape, st, err := collapse(s.Out.Shape, a.Stride, b.Stride, s.Out.Stride)
	if err != nil {
		return err
	}
	n := int64(graph.Len(s.Out.Shape))
	k := e.k.binary[elem(s.Out.Elem)]
	pa, pb, out, code, m := e.addr(p, a), e.addr(p, b), e.addr(p, s.Out), int32(s.Code), p.param(meta6(shape, st...))
	if vec, ok := rows4(shape, st, []graph.View{a, b, s.Out}); ok && s.Out.Elem == graph.F32 {
		k, n4 := e.k.binary4, n/4
		p.ops = append(p.ops, func(s gpu.Stream) error {
			return k.Launch(e.grid(n4), block, s, uint32(n4), m(), pa, pb, out, code, vec)
		})
		return nil
	}
	p.ops = append(p.ops, func(s gpu.Stream) error {
		return k.Launch(e.grid(n), block, s, uint32(n), m(), pa, pb, out, code)
	})
	return nil
}

// rows4 reports whether an elementwise step over the collapsed shape and
// strides (its operands' then the output's, views v in the same order) can
// move four elements at a time: rows of a multiple of 4, contiguous in
// the output, each operand contiguous along them with 16-byte aligned rows
// or broadcast along them (stride 0). vec has bit i set where operand i is
// contiguous.
func rows4(shape []int, st [][]int64, v []graph.View) (vec int32, ok bool) {
	r := len(shape) - 1
	if r < 0 || shape[r]%4 != 0 {
		return 0, false
	}
	for i, s := range st {
		out := i == len(st)-1
		switch {
		case s[r] == 1:
			if v[i].Off%4 != 0 || slices.ContainsFunc(s[:r], func(x int64) bool { return x%4 != 0 }) {
				return 0, false
			}
			if !out {
				vec |= 1 << i
			}
		case s[r] == 0 && !out:
		default:
			return 0, false
		}
	}
	return vec, true
}

// unaryStep: elementwise with one operand, packed or through strides.
func (e *GPUEngine) unaryStep(p *gpuPlan, s graph.Step) error {
	in := s.In[0]
	n := int64(graph.Len(s.Out.Shape))
	t := elem(s.Out.Elem)
	x, out, code, alpha := e.addr(p, in), e.addr(p, s.Out), int32(s.Code), s.Alpha
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
	return nil
}

// rowStep: softmax or a reduction over the middle of [Outer, Dim, Inner].
func (e *GPUEngine) rowStep(p *gpuPlan, s graph.Step) error {
	x, out := e.addr(p, s.In[0]), e.addr(p, s.Out)
	outer, dim, inner := uint32(s.Outer), uint32(s.Dim), uint32(s.Inner)
	threads := int64(s.Outer * s.Inner)
	grid := [3]uint32{uint32((threads + 255) / 256), 1, 1}
	if s.Kind == graph.KSoftmax && inner == 1 && dim >= 32 {
		// A warp a row: attention's rows are contiguous.
		k, warps := e.k.softmaxRows, int64(s.Outer)
		rows := [3]uint32{uint32((32*warps + 255) / 256), 1, 1}
		p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(rows, block, st, outer, dim, x, out) })
		return nil
	}
	if s.Kind == graph.KSoftmax {
		k := e.k.softmax
		p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(grid, block, st, outer, dim, inner, x, out) })
		return nil
	}
	k, code := e.k.reduce, int32(s.Code)
	p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(grid, block, st, outer, dim, inner, x, out, code) })
	return nil
}

// layerNormStep: a warp a row.
func (e *GPUEngine) layerNormStep(p *gpuPlan, s graph.Step) error {
	for _, v := range append([]graph.View{s.Out}, s.In...) {
		if !rowMajor(v) {
			return fmt.Errorf("layer normalisation of %v strides %v: %w", v.Shape, v.Stride, graph.ErrUnsupported)
		}
	}
	x, scale, out := e.addr(p, s.In[0]), e.addr(p, s.In[1]), e.addr(p, s.Out)
	var bias gpu.DevicePtr
	if len(s.In) > 2 {
		bias = e.addr(p, s.In[2])
	}
	k, rows, dim, eps := e.k.layerNorm, uint32(s.Outer), uint32(s.Dim), s.Alpha
	grid := [3]uint32{uint32((32*int64(s.Outer) + 255) / 256), 1, 1}
	p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(grid, block, st, rows, dim, x, scale, bias, out, eps) })
	return nil
}

// poolStep: pooling or resizing over NHWC fp16, eight channels a thread
// where the layout allows.
func (e *GPUEngine) poolStep(p *gpuPlan, s graph.Step) error {
	in := s.In[0]
	n := int64(graph.Len(s.Out.Shape))
	g := []int32{int32(in.Shape[0]), int32(in.Shape[1]), int32(in.Shape[2]), int32(in.Shape[3]),
		int32(s.Out.Shape[2]), int32(s.Out.Shape[3]),
		int32(in.Stride[0]), int32(in.Stride[2]), int32(in.Stride[3]),
		int32(s.Out.Stride[0]), int32(s.Out.Stride[2]), int32(s.Out.Stride[3])}
	x, out := e.addr(p, in), e.addr(p, s.Out)
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
		return nil
	}
	tab := p.consts[s.Table]
	p.ops = append(p.ops, func(st gpu.Stream) error { return k.Launch(e.grid(threads), block, st, m(), tab, x, out) })
	return nil
}

// matMulStep: a batched row-major fp32 product, operands broadcast over
// the batch. Where b is one matrix for the whole batch and a's matrices
// follow each other, the batch is one product of its rows stacked (a
// transformer's linear layers: [B, tokens, d] by [d, d']).
func (e *GPUEngine) matMulStep(p *gpuPlan, s graph.Step) error {
	a, b := s.In[0], s.In[1]
	r := len(s.Out.Shape)
	if r > 6 {
		return fmt.Errorf("matmul of rank %d: %w", r, graph.ErrUnsupported)
	}
	n := int64(graph.Len(s.Out.Shape))
	batch := s.Out.Shape[:r-2]
	ab := graph.BroadcastStrides(a.Shape[:len(a.Shape)-2], a.Stride[:len(a.Stride)-2], batch)
	bb := graph.BroadcastStrides(b.Shape[:len(b.Shape)-2], b.Stride[:len(b.Stride)-2], batch)
	rows, cols, entries := s.Out.Shape[r-2], s.Out.Shape[r-1], graph.Len(batch)
	g := make([]int32, 15)
	for i := 0; i < 4; i++ {
		g[i] = 1
	}
	images := entries
	stacked := !slices.ContainsFunc(bb, func(st int64) bool { return st != 0 }) && graph.Len(a.Shape[:len(a.Shape)-2]) == entries &&
		rowMajor(a) && rowMajor(s.Out)
	if stacked {
		rows, entries = rows*entries, 1
	} else {
		for i := range batch {
			d := 4 - len(batch) + i
			g[d], g[4+d], g[8+d] = int32(batch[i]), int32(ab[i]), int32(bb[i])
		}
	}
	g[12], g[13], g[14] = int32(rows), int32(cols), int32(a.Shape[len(a.Shape)-1])
	pa, pb, out, m := e.addr(p, a), e.addr(p, b), e.addr(p, s.Out), p.param(g)
	// The epilogue: bias row, activations, residual (0: none).
	var bias, res gpu.DevicePtr
	var acts int32
	var alpha float32
	if ep := s.MatMul; ep != nil {
		next := 2
		if ep.Bias {
			bias, next = e.addr(p, s.In[2]), 3
		}
		if ep.Residual {
			if r := s.In[next]; !rowMajor(r) || !slices.Equal(r.Shape, s.Out.Shape) || !rowMajor(s.Out) {
				return fmt.Errorf("matmul residual %v strides %v for an output %v strides %v: %w", r.Shape, r.Stride, s.Out.Shape, s.Out.Stride, graph.ErrUnsupported)
			}
			res = e.addr(p, s.In[next])
		}
		acts, alpha = int32(ep.Act)|int32(ep.PostAct)<<8, ep.Alpha
	}
	if stacked {
		if ok, err := e.linear(p, s, images, rows, cols, a.Shape[len(a.Shape)-1], bias, res, acts, alpha); ok || err != nil {
			return err
		}
	}
	if rows*cols >= 64*64 && entries <= 65535 && (rows+63)/64 <= 65535 && packed(s.Out) {
		k := e.k.matmulTiled
		mma, err := e.matmulMMA()
		if err != nil {
			return err
		}
		threads := [3]uint32{256, 1, 1}
		if mma != nil {
			k, threads[0] = mma, 128
		}
		grid := [3]uint32{uint32((cols + 63) / 64), uint32((rows + 63) / 64), uint32(entries)}
		p.ops = append(p.ops, func(st gpu.Stream) error {
			return k.Launch(grid, threads, st, m(), pa, pb, out, bias, res, acts, alpha)
		})
		return nil
	}
	k := e.k.matmul
	p.ops = append(p.ops, func(st gpu.Stream) error {
		return k.Launch(e.grid(n), block, st, m(), pa, pb, out, bias, res, acts, alpha)
	})
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

// rowMajor reports whether v's elements lie in row-major order of its
// shape, without gaps (dimensions of size 1 aside).
func rowMajor(v graph.View) bool {
	want := int64(1)
	for i := len(v.Shape) - 1; i >= 0; i-- {
		if v.Shape[i] == 1 {
			continue
		}
		if v.Stride[i] != want {
			return false
		}
		want *= int64(v.Shape[i])
	}
	return true
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
