package graph

import (
	"fmt"
	"slices"
)

// Lowering turns a specialised, fused graph into a Program: a list of
// kernel-sized steps over buffers with fixed element types and memory
// layouts, which a GPU executor runs one after the other. Tensors of the
// convolutional trunk are stored NHWC in fp16 (what tensor-core
// convolutions read); everything else (the detection head's reshapes,
// softmax and box arithmetic) is stored row-major in fp32. A conversion
// step is inserted wherever a tensor is read in the other form, and
// Slice, Concat and Split on NHWC tensors stay NHWC.

// Elem is a buffer's element type.
type Elem uint8

// Element types.
const (
	F16 Elem = iota
	F32
)

// Size is the element's size in bytes.
func (e Elem) Size() int64 {
	if e == F16 {
		return 2
	}
	return 4
}

// Layout is how a tensor's logical (ONNX) dimensions map to memory.
type Layout uint8

// Layouts.
const (
	RowMajor Layout = iota // the ONNX order, packed
	NHWC                   // 4-D, channels innermost
)

func (l Layout) String() string {
	if l == NHWC {
		return "nhwc"
	}
	return "row-major"
}

// Space says where a buffer lives.
type Space uint8

// Buffer spaces.
const (
	SpaceArena     Space = iota // shared activation memory, placed by the plan
	SpaceConst                  // uploaded once: weights and constants
	SpaceInput                  // the caller's input tensor (NCHW fp32)
	SpaceInputNHWC              // the input in NHWC fp16 with channels padded, zeroed once
)

// Buffer is one allocation a Program reads or writes.
type Buffer struct {
	Space Space
	Bytes int64
	// Offset is the byte offset in the arena (SpaceArena).
	Offset int64
	// Data is the content of a SpaceConst buffer.
	Data []byte
	// First and Last are the steps that first write and last read it.
	First, Last int
}

// View is a tensor in a buffer: element offset and per-dimension element
// strides for its logical shape.
type View struct {
	Buf    int
	Off    int64
	Shape  []int
	Stride []int64
	Elem   Elem
	Layout Layout
}

// PixelStride returns the element stride between neighbouring pixels of
// an NHWC view whose channels are contiguous and whose pixels, rows and
// images follow each other at that stride (a packed tensor: its channel
// count; a tensor written inside a Concat: the Concat's), and whether v
// is such a view.
func PixelStride(v View) (int64, bool) {
	if v.Layout != NHWC || len(v.Shape) != 4 || len(v.Stride) != 4 {
		return 0, false
	}
	p := v.Stride[3]
	h, w := int64(v.Shape[2]), int64(v.Shape[3])
	ok := v.Stride[1] == 1 && p >= int64(v.Shape[1]) && v.Stride[2] == w*p && (v.Shape[0] == 1 || v.Stride[0] == h*w*p)
	return p, ok
}

// Kind is a step's operation.
type Kind uint8

// Step kinds.
const (
	KCopy       Kind = iota // Out[i] = In[0][i] over Out's shape, any strides and element types
	KConv                   // Out = post(act(conv(In[0], Conv.W) + Conv.B) + Conv.Residual), all NHWC fp16
	KBinary                 // Out = In[0] op In[1], broadcast through strides
	KUnary                  // Out = op(In[0]), same shape
	KSoftmax                // over Axis of a row-major fp32 tensor
	KReduce                 // Code (ReduceSum, ReduceMean, ReduceMax, ReduceMin): In [outer, dim, inner] → Out [outer, inner]
	KMaxPool                // NHWC fp16, maximum or (Pool.Avg) average
	KResize                 // NHWC fp16, Table gives source rows and columns
	KMatMul                 // row-major fp32, broadcast batch; MatMul the epilogue
	KAttention              // In Q [..., N, dk], K [..., dk, M], V [..., dv, M] → Out [..., dv, N], fp32 or fp16 through strides; Alpha the scale
	KWhere                  // Out = In[0] != 0 ? In[1] : In[2], fp32, broadcast through strides
	KGather                 // Out[i] = In[0][i + (idx - i_axis)·Gather.Stride] with idx = In[1][i] (wrapped, out of range 0); fp32 through strides
	KTopK                   // Out [Outer, K, Inner] = indices (fp32) of the K first of In[0] [Outer, Dim, Inner] in topKBefore's order; Code 1: largest
	KGridSample             // Out [N, C, Ho, Wo] = In[0] [N, C, H, W] sampled at In[1] [N, Ho, Wo, 2]; Code: gridSample's mode bits
	KLayerNorm              // each of Outer rows of Dim of In[0] normalised, times In[1], plus In[2] (when 3 inputs); Alpha epsilon; row-major fp32
	Kinds                   // the number of step kinds
)

var kindNames = [Kinds]string{"copy", "conv", "binary", "unary", "softmax", "reduce", "maxpool", "resize", "matmul", "attention", "where", "gather", "topk", "gridsample", "layernorm"}

// String names the kind, as profiles print it.
func (k Kind) String() string {
	if k < Kinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Binary and unary operation codes (Step.Code).
const (
	OpAdd = iota
	OpSub
	OpMul
	OpDiv
	OpPow
	OpMax
	OpMin
	// Comparisons and logic: 1 where true, else 0.
	OpEqual
	OpLess
	OpGreater
	OpLessEq
	OpGreaterEq
	OpAnd
	OpOr
	OpXor
	OpDivTrunc // integer division, toward zero
)

// Unary codes share Act's values (ActReLU, ActSiLU, ActLeakyReLU,
// ActSigmoid), then UnaryExp and the others of unary.go.

// ConvStep is a convolution's geometry and constants.
type ConvStep struct {
	N, C, H, W   int // input, C including padding
	K, R, S      int // output channels, kernel height and width
	OH, OW       int
	PadH, PadW   int
	StrH, StrW   int
	DilH, DilW   int
	Groups       int
	Weight, Bias int // SpaceConst buffers: fp16 KRSC weights, fp32 bias (always present)
	Act          Act
	Alpha        float32
	Residual     *View // an NHWC tensor of Out's shape
	PostAct      Act   // after the residual
	// Raw, when set, is where the convolution writes before its epilogue
	// writes Out: a packed tensor, Out being a view inside a Concat (cuDNN
	// writes packed tensors faster than strided ones), or Out being the
	// shuffled output of Shuffle.
	Raw *View
	// Shuffle, when above 1, is a DepthToSpace of that block size (DCR
	// order) the epilogue does: the convolution writes Raw, [N, K, OH, OW],
	// and channel (i·b+j)·K/b² + c of its pixel (y, x) goes to channel c
	// of pixel (y·b+i, x·b+j) of Out, a packed NHWC [N, K/b², OH·b, OW·b].
	// K/b² is a multiple of 8; no residual.
	Shuffle int
}

// PoolStep is a max pooling's geometry.
type PoolStep struct {
	KH, KW, SH, SW, DH, DW, PT, PL, PB, PR int
	// Avg averages instead of taking the maximum, over the taps inside
	// the input, or with CountPad over those inside the padded input
	// (padding counts, a ceil_mode window's overhang past it does not).
	Avg, CountPad bool
}

// Step is one operation of a Program.
type Step struct {
	Kind  Kind
	Node  string // the ONNX node it comes from
	In    []View
	Out   View
	Code  int
	Alpha float32
	// Softmax and Reduce work over the middle of In seen as [Outer, Dim,
	// Inner].
	Outer, Dim, Inner int
	Conv              *ConvStep
	Pool              *PoolStep
	Table             int // KResize: SpaceConst fp32 [OH×3 + OW×3] (i0, i1, weight)
	Gather            *GatherStep
	MatMul            *MatMulStep // KMatMul's epilogue; nil for none
}

// MatMulStep is the epilogue of a KMatMul step: Out = post(act(In[0]·In[1]
// + bias) + residual), the bias (In[2], when Bias) a row of Out's columns
// added to each row, the residual (the input after it, when Residual) a
// row-major tensor of Out's shape.
type MatMulStep struct {
	Bias, Residual bool
	Act, PostAct   Act
	Alpha          float32
}

// GatherStep is the gathered axis of a KGather step: In[0]'s strides
// over Out's shape leave it out (stride 0 there), and an index k reads k
// times Stride further; Dim is its size, indices in [-Dim, Dim).
type GatherStep struct {
	Dim    int
	Stride int64
}

// Program is a lowered graph.
type Program struct {
	Bufs    []Buffer
	Steps   []Step
	Input   View   // SpaceInput, NCHW fp32
	Outputs []View // row-major fp32 in the arena, live to the end
	Arena   int64  // bytes of activation memory
	// InputChannels is the padded channel count of the NHWC input.
	InputChannels int
}

// LowerOptions tune lowering.
type LowerOptions struct {
	// PadInputChannels pads the network input's channels to a multiple of
	// this in NHWC (tensor-core convolutions want 8); 0 leaves them.
	PadInputChannels int
	// Align is the arena alignment in bytes (0: 256).
	Align int64
	// InPlaceConcat names the operators (of Conv, MaxPool, Resize, Slice
	// and Split) that write their NHWC outputs straight into the channels
	// of the Concat that takes them, so the Concat copies nothing for
	// them. Their outputs are then strided views (pixel stride: the
	// Concat's channels), which every reader must take; the GPU engine's
	// graph-API convolutions do.
	InPlaceConcat []string
	// KeepCopies keeps the row-major copies that copy elision would
	// remove (see elideCopies), for tests and measurements.
	KeepCopies bool
}

// lowering is Lower's state.
type lowering struct {
	g    *Graph
	p    *Program
	have map[*Value]map[Layout]View
	// sink places values in the Concat that reads them (InPlaceConcat);
	// concatOut is each such Concat's output, allocated by its first
	// producer.
	sink      map[*Value]sinkAt
	concatOut map[*Node]View
	// skip holds the nodes already lowered as views of another's output
	// (placeAttention); readBy each value's readers, once asked for.
	skip   map[*Node]bool
	readBy map[*Value][]*Node
	// composed holds the views compose made, by value.
	composed map[*Value]View
	// padded holds the values padChannels stored with zeroed channels.
	padded map[*Value]bool
}

// sinkAt is where a value is written inside a Concat's output: the Concat
// node and the first channel.
type sinkAt struct {
	concat *Node
	off    int
}

// Lower turns the graph (after Specialize and Fuse) into a Program. An
// operator the GPU cannot run is an error wrapping ErrUnsupported that
// names the node.
func (g *Graph) Lower(o LowerOptions) (p *Program, err error) {
	if len(g.Input.Shape) != 4 {
		return nil, fmt.Errorf("input %s of rank %d: the GPU engine takes NCHW images: %w", g.Input.Name, len(g.Input.Shape), ErrUnsupported)
	}
	l := &lowering{g: g, p: &Program{}, have: map[*Value]map[Layout]View{}, sink: map[*Value]sinkAt{}, concatOut: map[*Node]View{}, skip: map[*Node]bool{}, composed: map[*Value]View{}, padded: map[*Value]bool{}}
	p = l.p
	if len(o.InPlaceConcat) > 0 {
		l.planSinks(o.InPlaceConcat)
	}
	in := g.Input.Shape
	p.Input = l.newView(l.newBuf(SpaceInput, int64(Len(in))*4), in, F32, RowMajor)
	c := in[1]
	if o.PadInputChannels > 0 {
		c = (c + o.PadInputChannels - 1) / o.PadInputChannels * o.PadInputChannels
	}
	p.InputChannels = c
	l.set(g.Input, p.Input)
	for _, n := range g.Nodes {
		if l.skip[n] {
			continue
		}
		if err := l.node(n); err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
		}
	}
	for _, v := range g.Outputs {
		out, err := l.get(v, RowMajor, F32)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", v.Name, err)
		}
		p.Bufs[out.Buf].Last = len(p.Steps)
		p.Outputs = append(p.Outputs, out)
	}
	l.removeDead()
	if !o.KeepCopies {
		l.elideCopies()
	}
	align := o.Align
	if align <= 0 {
		align = 256
	}
	l.place(align)
	return p, nil
}

// sinkable are the operators whose NHWC output lowering can place inside
// a Concat.
var sinkable = map[string]bool{"Conv": true, "MaxPool": true, "Resize": true, "Slice": true, "Split": true}

// planSinks chooses the values written in place into a channel Concat: a
// 4-D value produced by one of ops, at a 16-byte aligned channel offset
// (what tensor-core convolutions want), each value into its first such
// Concat.
func (l *lowering) planSinks(ops []string) {
	producer := map[*Value]*Node{}
	for _, n := range l.g.Nodes {
		for _, v := range n.Out {
			producer[v] = n
		}
	}
	outputs := map[*Value]bool{}
	for _, v := range l.g.Outputs {
		outputs[v] = true
	}
	writes := map[string]bool{}
	for _, op := range ops {
		writes[op] = sinkable[op]
	}
	for _, n := range l.g.Nodes {
		out := n.Out[0]
		if n.Op != "Concat" || len(out.Shape) != 4 || out.Shape[1]%8 != 0 {
			continue
		}
		if ax, err := axis(n.attrInt("axis", 0), 4); err != nil || ax != 1 {
			continue
		}
		off := 0
		for _, v := range n.In {
			if v == nil || Len(v.Shape) == 0 {
				continue
			}
			_, taken := l.sink[v]
			if p := producer[v]; p != nil && writes[p.Op] && !taken && !outputs[v] && len(v.Shape) == 4 && off%8 == 0 && v.Shape[1]%8 == 0 {
				l.sink[v] = sinkAt{concat: n, off: off}
			}
			off += v.Shape[1]
		}
	}
}

// output is where an operator writes its NHWC fp16 output v: inside the
// Concat that reads it when planSinks chose so, else a packed tensor.
func (l *lowering) output(v *Value, shape []int) View {
	at, ok := l.sink[v]
	if !ok {
		return l.alloc(shape, F16, NHWC)
	}
	y, ok := l.concatOut[at.concat]
	if !ok {
		y = l.alloc(at.concat.Out[0].Shape, F16, NHWC)
		l.concatOut[at.concat] = y
	}
	y.Shape = slices.Clone(shape)
	y.Off += int64(at.off) * y.Stride[1]
	return y
}

// packedNHWC returns x, or a packed copy of it when x is a strided view
// (a value written inside a Concat) and the reader needs it packed.
func (l *lowering) packedNHWC(x View, name string) View {
	p := l.newView(x.Buf, x.Shape, x.Elem, NHWC)
	if slices.Equal(p.Stride, x.Stride) {
		return x
	}
	y := l.alloc(x.Shape, x.Elem, NHWC)
	l.emit(Step{Kind: KCopy, Node: "pack " + name, In: []View{x}, Out: y})
	return y
}

func (l *lowering) newBuf(s Space, bytes int64) int {
	l.p.Bufs = append(l.p.Bufs, Buffer{Space: s, Bytes: bytes, First: -1, Last: -1})
	return len(l.p.Bufs) - 1
}

// newView is a packed view of shape in buf.
func (l *lowering) newView(buf int, shape []int, e Elem, lay Layout) View {
	v := View{Buf: buf, Shape: slices.Clone(shape), Elem: e, Layout: lay, Stride: make([]int64, len(shape))}
	if lay == NHWC {
		c, h, w := int64(shape[1]), int64(shape[2]), int64(shape[3])
		v.Stride[0], v.Stride[1], v.Stride[2], v.Stride[3] = h*w*c, 1, w*c, c
		return v
	}
	s := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		v.Stride[i] = s
		s *= int64(shape[i])
	}
	return v
}

// alloc makes an arena tensor.
func (l *lowering) alloc(shape []int, e Elem, lay Layout) View {
	return l.newView(l.newBuf(SpaceArena, int64(Len(shape))*e.Size()), shape, e, lay)
}

func (l *lowering) set(v *Value, w View) {
	if l.have[v] == nil {
		l.have[v] = map[Layout]View{}
	}
	l.have[v][w.Layout] = w
}

// constant uploads a constant as row-major fp32.
func (l *lowering) constant(v *Value) View {
	f := v.Const.Floats()
	b := make([]byte, 4*len(f))
	for i, x := range f {
		putF32(b[4*i:], float32(x))
	}
	buf := l.newBuf(SpaceConst, int64(len(b)))
	l.p.Bufs[buf].Data = b
	w := l.newView(buf, v.Shape, F32, RowMajor)
	l.set(v, w)
	return w
}

// any returns a view of v in whatever form it has, preferring lay.
func (l *lowering) any(v *Value, lay Layout) (View, error) {
	if w, ok := l.have[v][lay]; ok {
		return w, nil
	}
	for _, w := range l.have[v] {
		return w, nil
	}
	if v.Const != nil {
		return l.constant(v), nil
	}
	return View{}, fmt.Errorf("%s is read before it is computed", v.Name)
}

// get returns v in layout lay (and element type e for row-major tensors),
// converting it with a copy step when it is held otherwise.
func (l *lowering) get(v *Value, lay Layout, e Elem) (View, error) {
	if w, ok := l.have[v][lay]; ok && (lay == NHWC || w.Elem == e) {
		return w, nil
	}
	src, err := l.any(v, lay)
	if err != nil {
		return View{}, err
	}
	if src.Layout == lay && src.Elem == e {
		return src, nil
	}
	if lay == NHWC && len(v.Shape) != 4 {
		return View{}, fmt.Errorf("%s of shape %v in NHWC: %w", v.Name, v.Shape, ErrUnsupported)
	}
	var dst View
	switch {
	case lay == NHWC && v == l.g.Input && l.p.InputChannels != v.Shape[1]:
		// The padded input: its own buffer, zeroed once, channels past
		// the real ones never written.
		sh := []int{v.Shape[0], l.p.InputChannels, v.Shape[2], v.Shape[3]}
		dst = l.newView(l.newBuf(SpaceInputNHWC, int64(Len(sh))*2), sh, F16, NHWC)
		dst.Shape = slices.Clone(v.Shape)
	case lay == NHWC:
		dst = l.alloc(v.Shape, F16, NHWC)
	default:
		dst = l.alloc(v.Shape, e, lay)
	}
	l.emit(Step{Kind: KCopy, Node: "convert " + v.Name, In: []View{src}, Out: dst})
	l.set(v, dst)
	return dst, nil
}

// emit appends a step and extends the lifetimes of what it touches.
func (l *lowering) emit(s Step) {
	l.touch(len(l.p.Steps), s)
	l.p.Steps = append(l.p.Steps, s)
}

// touch extends the lifetimes of the buffers that step i, s, reads or
// writes to cover it.
func (l *lowering) touch(i int, s Step) {
	views := append(slices.Clone(s.In), s.Out)
	if s.Conv != nil && s.Conv.Residual != nil {
		views = append(views, *s.Conv.Residual)
	}
	if s.Conv != nil && s.Conv.Raw != nil {
		views = append(views, *s.Conv.Raw)
	}
	for _, w := range views {
		b := &l.p.Bufs[w.Buf]
		if b.First < 0 {
			b.First = i
		}
		b.Last = max(b.Last, i)
	}
}

// nhwcHeld reports whether every non-constant input is held in NHWC.
func (l *lowering) nhwcHeld(n *Node) bool {
	for _, v := range n.In {
		if v == nil || v.Const != nil {
			continue
		}
		if _, ok := l.have[v][NHWC]; !ok || len(v.Shape) != 4 {
			return false
		}
	}
	return true
}

// node lowers n by its operator's entry in the table.
func (l *lowering) node(n *Node) error {
	op, ok := operators[n.Op]
	if !ok || op.lower == nil {
		return fmt.Errorf("operator %s: %w", n.Op, ErrUnsupported)
	}
	return op.lower(l, n)
}

// identity lowers Identity and Cast: the output is the input's view.
func (l *lowering) identity(n *Node) error {
	if _, err := l.any(n.In[0], RowMajor); err != nil {
		return err
	}
	for _, w := range l.have[n.In[0]] {
		l.set(n.Out[0], w)
	}
	return nil
}

// reshape lowers Reshape, Flatten, Squeeze and Unsqueeze: a view of the
// input, kept in NHWC when the shape does not change.
func (l *lowering) reshape(n *Node) error {
	out := n.Out[0]
	if w, ok := l.have[n.In[0]][NHWC]; ok && slices.Equal(n.In[0].Shape, out.Shape) {
		l.set(out, w)
		return nil
	}
	src, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	w := l.newView(src.Buf, out.Shape, src.Elem, RowMajor)
	w.Off = src.Off
	l.set(out, w)
	return nil
}

// activation lowers Relu, LeakyRelu and Sigmoid where no convolution took
// them: in NHWC when the input is held so, else row-major.
func (l *lowering) activation(n *Node) error {
	lay := RowMajor
	if l.nhwcHeld(n) {
		lay = NHWC
	}
	x, err := l.get(n.In[0], lay, F32)
	if err != nil {
		return err
	}
	if lay == NHWC {
		x = l.packedNHWC(x, n.In[0].Name)
	}
	y := l.alloc(n.Out[0].Shape, x.Elem, lay)
	code := map[string]Act{"Relu": ActReLU, "LeakyRelu": ActLeakyReLU, "Sigmoid": ActSigmoid}[n.Op]
	l.emit(Step{Kind: KUnary, Node: n.Name, In: []View{x}, Out: y, Code: int(code), Alpha: n.attrFloat("alpha", 0.01)})
	l.set(n.Out[0], y)
	return nil
}

// unaryMath lowers the functions of the unary math table, in fp32 rows:
// exponentials and logarithms leave fp16's range and precision.
func (l *lowering) unaryMath(n *Node) error {
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	l.emit(Step{Kind: KUnary, Node: n.Name, In: []View{x}, Out: y, Code: unaryMath[n.Op].code})
	l.set(n.Out[0], y)
	return nil
}

func (l *lowering) softmax(n *Node) error {
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	ax, err := axis(n.attrInt("axis", -1), len(x.Shape))
	if err != nil {
		return err
	}
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	l.emit(Step{Kind: KSoftmax, Node: n.Name, In: []View{x}, Out: y,
		Outer: Len(x.Shape[:ax]), Dim: x.Shape[ax], Inner: Len(x.Shape[ax+1:])})
	l.set(n.Out[0], y)
	return nil
}

func (l *lowering) layerNorm(n *Node) error {
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	d := x.Shape[len(x.Shape)-1]
	in := []View{x}
	for _, v := range n.In[1:] {
		if v == nil {
			break
		}
		w, err := l.get(v, RowMajor, F32)
		if err != nil {
			return err
		}
		w.Shape, w.Stride = []int{d}, []int64{1}
		in = append(in, w)
	}
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	l.emit(Step{Kind: KLayerNorm, Node: n.Name, In: in, Out: y, Outer: Len(x.Shape) / d, Dim: d, Alpha: n.attrFloat("epsilon", 1e-5)})
	l.set(n.Out[0], y)
	return nil
}

func (l *lowering) matMul(n *Node) error {
	as, bs, _, err := matMulShapes(n.In[0].Shape, n.In[1].Shape)
	if err != nil {
		return err
	}
	a, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	b, err := l.get(n.In[1], RowMajor, F32)
	if err != nil {
		return err
	}
	// A vector operand as a row or a column: a view of its packed rows.
	a.Shape, a.Stride = as, append(make([]int64, len(as)-len(a.Stride)), a.Stride...)
	b.Shape, b.Stride = bs, append(slices.Clone(b.Stride), make([]int64, len(bs)-len(b.Stride))...)
	if len(n.In[1].Shape) == 1 {
		b.Stride = []int64{b.Stride[0], 1}
	}
	full, err := broadcast(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return err
	}
	full = append(full, as[len(as)-2], bs[len(bs)-1])
	y := l.alloc(full, F32, RowMajor)
	in := []View{a, b}
	var ep *MatMulStep
	if len(n.In) > 2 || n.Act != ActNone || n.Residual != nil || n.PostAct != ActNone {
		ep = &MatMulStep{Act: n.Act, PostAct: n.PostAct, Alpha: n.Alpha}
		if len(n.In) > 2 {
			bias, err := l.get(n.In[2], RowMajor, F32)
			if err != nil {
				return err
			}
			if len(bias.Shape) != 1 || bias.Shape[0] != full[len(full)-1] {
				return fmt.Errorf("bias %s of shape %v for a product of %v: %w", n.In[2].Name, bias.Shape, full, ErrUnsupported)
			}
			in, ep.Bias = append(in, bias), true
		}
		if n.Residual != nil {
			r, err := l.get(n.Residual, RowMajor, F32)
			if err != nil {
				return err
			}
			if !slices.Equal(r.Shape, full) {
				return fmt.Errorf("residual %s of shape %v for a product of %v: %w", n.Residual.Name, r.Shape, full, ErrUnsupported)
			}
			in, ep.Residual = append(in, r), true
		}
	}
	l.emit(Step{Kind: KMatMul, Node: n.Name, In: in, Out: y, MatMul: ep})
	out := l.newView(y.Buf, n.Out[0].Shape, F32, RowMajor)
	out.Off = y.Off
	l.set(n.Out[0], out)
	return nil
}

func (l *lowering) conv(n *Node) error {
	wt := n.In[1]
	if wt.Const == nil {
		return fmt.Errorf("weights computed at run time: %w", ErrUnsupported)
	}
	x, err := l.convInput(n.In[0])
	if err != nil {
		return err
	}
	groups := n.attrInt("group", 1)
	k, cg, kh, kw := wt.Shape[0], wt.Shape[1], wt.Shape[2], wt.Shape[3]
	geo, err := geometry(n, kh, kw)
	if err != nil {
		return err
	}
	if geo.pt != geo.pb || geo.pl != geo.pr {
		return fmt.Errorf("asymmetric padding %v: %w", []int{geo.pt, geo.pl, geo.pb, geo.pr}, ErrUnsupported)
	}
	c := n.In[0].Shape[1]
	switch {
	case l.p.Bufs[x.Buf].Space == SpaceInputNHWC:
		if groups != 1 {
			return fmt.Errorf("grouped convolution of the network input: %w", ErrUnsupported)
		}
		c, cg = l.p.InputChannels, l.p.InputChannels
	case l.padded[n.In[0]]:
		p, _ := PixelStride(x)
		c, cg = int(p), int(p)
	}
	// Weights: ONNX KCRS fp32 → KRSC fp16, input channels zero-padded.
	src := wt.Const.Floats()
	origCg := wt.Shape[1]
	wb := make([]byte, 2*k*kh*kw*cg)
	for o := 0; o < k; o++ {
		for ci := 0; ci < origCg; ci++ {
			for y := 0; y < kh; y++ {
				for xx := 0; xx < kw; xx++ {
					v := src[((o*origCg+ci)*kh+y)*kw+xx]
					putU16(wb[2*(((o*kh+y)*kw+xx)*cg+ci):], floatToHalf(float32(v)))
				}
			}
		}
	}
	wbuf := l.newBuf(SpaceConst, int64(len(wb)))
	l.p.Bufs[wbuf].Data = wb
	bb := make([]byte, 4*k)
	if len(n.In) > 2 && n.In[2] != nil {
		if n.In[2].Const == nil {
			return fmt.Errorf("bias computed at run time: %w", ErrUnsupported)
		}
		for i, v := range n.In[2].Const.Floats() {
			putF32(bb[4*i:], float32(v))
		}
	}
	bbuf := l.newBuf(SpaceConst, int64(len(bb)))
	l.p.Bufs[bbuf].Data = bb
	out := n.Out[0]
	cs := &ConvStep{N: out.Shape[0], C: c, H: n.In[0].Shape[2], W: n.In[0].Shape[3], K: k, R: kh, S: kw,
		OH: out.Shape[2], OW: out.Shape[3], PadH: geo.pt, PadW: geo.pl, StrH: geo.sh, StrW: geo.sw,
		DilH: geo.dh, DilW: geo.dw, Groups: groups, Weight: wbuf, Bias: bbuf, Act: n.Act, Alpha: n.Alpha, PostAct: n.PostAct}
	y := l.output(out, out.Shape)
	if p, _ := PixelStride(y); p != int64(k) {
		raw := l.alloc(out.Shape, F16, NHWC)
		cs.Raw = &raw
	}
	if n.Residual != nil {
		r, err := l.get(n.Residual, NHWC, F16)
		if err != nil {
			return err
		}
		if _, ok := PixelStride(r); !ok || !slices.Equal(r.Shape, y.Shape) {
			return fmt.Errorf("residual %s is not an NHWC tensor like the output: %w", n.Residual.Name, ErrUnsupported)
		}
		cs.Residual = &r
	}
	l.emit(Step{Kind: KConv, Node: n.Name, In: []View{x}, Out: y, Conv: cs})
	l.set(out, y)
	return nil
}

// convInput returns a convolution's input in NHWC fp16. An input that view
// operators made from another tensor is read through the composed view
// when that is an NHWC tensor already, else packed from it by one copy,
// not converted step by step.
func (l *lowering) convInput(v *Value) (View, error) {
	if w, ok := l.have[v][NHWC]; ok {
		return w, nil
	}
	if p := v.Producer; p != nil && viewOp(p.Op) && len(v.Shape) == 4 && v != l.g.Input {
		if w, ok := l.compose(v); ok {
			w.Layout = NHWC
			if p, nhwc := PixelStride(w); nhwc && w.Elem == F16 && (p%8 == 0 || p == int64(v.Shape[1])) && w.Off%8 == 0 {
				l.set(v, w)
				return w, nil
			}
			w.Layout = RowMajor
			y := l.alloc(v.Shape, F16, NHWC)
			l.emit(Step{Kind: KCopy, Node: "convert " + v.Name, In: []View{w}, Out: y})
			l.set(v, y)
			return y, nil
		}
	}
	if w, ok, err := l.padChannels(v); ok || err != nil {
		return w, err
	}
	return l.get(v, NHWC, F16)
}

// padChannels converts v, read only by ungrouped convolutions, to NHWC
// fp16 with its channels padded with zeros to a multiple of 8, as the
// network input is: cuDNN's tensor-core convolutions want whole groups of
// 8 channels, and without them take kernels several times slower (YOLOX's
// Focus stem, twelve channels at half the input's size). The padding is
// written each batch (the arena is shared), by one copy of a zero. It
// reports false, doing nothing, for other values.
func (l *lowering) padChannels(v *Value) (View, bool, error) {
	if v == l.g.Input || len(v.Shape) != 4 || v.Shape[1]%8 == 0 || slices.Contains(l.g.Outputs, v) {
		return View{}, false, nil
	}
	if _, ok := l.have[v][NHWC]; ok {
		return View{}, false, nil
	}
	rs := l.readers()[v]
	for _, r := range rs {
		if r.Op != "Conv" || r.In[0] != v || r.Residual == v || r.attrInt("group", 1) != 1 {
			return View{}, false, nil
		}
	}
	if len(rs) == 0 {
		return View{}, false, nil
	}
	src, err := l.any(v, RowMajor)
	if err != nil {
		return View{}, false, err
	}
	c, cp := v.Shape[1], (v.Shape[1]+7)/8*8
	full := l.alloc([]int{v.Shape[0], cp, v.Shape[2], v.Shape[3]}, F16, NHWC)
	zero := l.newBuf(SpaceConst, 4)
	l.p.Bufs[zero].Data = make([]byte, 4)
	pad := full
	pad.Shape, pad.Off = []int{v.Shape[0], cp - c, v.Shape[2], v.Shape[3]}, int64(c)
	l.emit(Step{Kind: KCopy, Node: "zero " + v.Name + "'s padding", In: []View{{Buf: zero, Shape: pad.Shape, Stride: make([]int64, 4), Elem: F32}}, Out: pad})
	dst := full
	dst.Shape = slices.Clone(v.Shape)
	l.emit(Step{Kind: KCopy, Node: "convert " + v.Name, In: []View{src}, Out: dst})
	l.set(v, dst)
	l.padded[v] = true
	return dst, true, nil
}

// copyOp lowers the operators that move elements without arithmetic.
func (l *lowering) copyOp(n *Node) error {
	lay := RowMajor
	if (n.Op == "Slice" || n.Op == "Concat" || n.Op == "Split") && l.nhwcHeld(n) && len(n.Out[0].Shape) == 4 {
		lay = NHWC
	}
	elem := F32
	if lay == NHWC {
		elem = F16
	}
	x, err := l.any(n.In[0], lay)
	if err != nil {
		return err
	}
	switch n.Op {
	case "Slice":
		args := []*Tensor{{Shape: n.In[0].Shape}}
		for _, v := range n.In[1:] {
			args = append(args, v.Const)
		}
		begin, step, shape, err := sliceOf(n, args)
		if err != nil {
			return err
		}
		src := x
		src.Shape, src.Stride = shape, make([]int64, len(shape))
		for i := range shape {
			src.Off += int64(begin[i]) * x.Stride[i]
			src.Stride[i] = int64(step[i]) * x.Stride[i]
		}
		y := l.alloc(shape, elem, lay)
		if lay == NHWC {
			y = l.output(n.Out[0], shape)
		}
		l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{src}, Out: y})
		l.set(n.Out[0], y)
	case "Transpose":
		perm := n.attrInts("perm", nil)
		r := len(x.Shape)
		if perm == nil {
			for i := r - 1; i >= 0; i-- {
				perm = append(perm, i)
			}
		}
		src := x
		src.Shape, src.Stride = make([]int, r), make([]int64, r)
		for i, p := range perm {
			src.Shape[i], src.Stride[i] = x.Shape[p], x.Stride[p]
		}
		y := l.alloc(n.Out[0].Shape, elem, lay)
		l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{src}, Out: y})
		l.set(n.Out[0], y)
	case "Expand":
		shape := n.Out[0].Shape
		src := broadcastView(x, shape)
		y := l.alloc(shape, elem, lay)
		l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{src}, Out: y})
		l.set(n.Out[0], y)
	case "Split":
		ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
		if err != nil {
			return err
		}
		off := 0
		for _, o := range n.Out {
			src := x
			src.Shape = slices.Clone(o.Shape)
			src.Off += int64(off) * x.Stride[ax]
			off += o.Shape[ax]
			if o.Name == "" && len(n.Out) > 1 {
				continue
			}
			y := l.alloc(o.Shape, elem, lay)
			if lay == NHWC {
				y = l.output(o, o.Shape)
			}
			l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{src}, Out: y})
			l.set(o, y)
		}
	case "Concat":
		out := n.Out[0]
		ax, err := axis(n.attrInt("axis", 0), len(out.Shape))
		if err != nil {
			return err
		}
		y, inPlace := l.concatOut[n]
		if !inPlace || lay != NHWC {
			y = l.alloc(out.Shape, elem, lay)
		}
		off := 0
		for _, v := range n.In {
			if v == nil || Len(v.Shape) == 0 {
				continue
			}
			src, err := l.any(v, lay)
			if err != nil {
				return err
			}
			dst := y
			dst.Shape = slices.Clone(v.Shape)
			dst.Off += int64(off) * y.Stride[ax]
			off += v.Shape[ax]
			if src.Buf == dst.Buf && src.Off == dst.Off && slices.Equal(src.Stride, dst.Stride) {
				continue // written in place by its producer
			}
			l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{src}, Out: dst})
		}
		l.set(out, y)
	}
	return nil
}

// binary lowers the operators of binaryCode, in NHWC where both
// operands are held so with one shape, else in fp32 rows; Max and Min of
// more than two operands as a chain.
func (l *lowering) binary(n *Node) error {
	out := n.Out[0]
	if len(n.In) == 1 {
		return l.identity(n)
	}
	acc := n.In[0]
	for i, b := range n.In[1:] {
		a := acc
		lay := RowMajor
		if a.Const == nil && b.Const == nil && slices.Equal(a.Shape, b.Shape) && l.nhwcHeld(n) {
			lay = NHWC
		}
		x, err := l.get(a, lay, F32)
		if err != nil {
			return err
		}
		z, err := l.get(b, lay, F32)
		if err != nil {
			return err
		}
		elem := F32
		if lay == NHWC {
			elem = F16
		}
		dst := out
		if i < len(n.In)-2 {
			shape, err := broadcast(a.Shape, b.Shape)
			if err != nil {
				return err
			}
			dst = &Value{Name: fmt.Sprintf("%s operand %d", n.Name, i+1), DType: a.DType, Shape: shape}
		}
		y := l.alloc(dst.Shape, elem, lay)
		code, _ := binaryCode(n.Op, a.DType)
		l.emit(Step{Kind: KBinary, Node: n.Name, In: []View{broadcastView(x, dst.Shape), broadcastView(z, dst.Shape)}, Out: y, Code: code})
		l.set(dst, y)
		acc = dst
	}
	return nil
}

// broadcastView reads w as shape, with stride 0 on broadcast dimensions.
func broadcastView(w View, shape []int) View {
	b := w
	b.Shape, b.Stride = slices.Clone(shape), BroadcastStrides(w.Shape, w.Stride, shape)
	return b
}

func (l *lowering) reduce(n *Node) error {
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	axes, err := axesOf(n, 1)
	if err != nil {
		return err
	}
	r := len(x.Shape)
	if len(axes) == 0 {
		if n.attrInt("noop_with_empty_axes", 0) != 0 {
			return fmt.Errorf("empty reduction: %w", ErrUnsupported)
		}
		for i := 0; i < r; i++ {
			axes = append(axes, i)
		}
	}
	for i := range axes {
		if axes[i], err = axis(axes[i], r); err != nil {
			return err
		}
	}
	slices.Sort(axes)
	lo, hi := axes[0], axes[len(axes)-1]
	if hi-lo+1 != len(axes) {
		return fmt.Errorf("reduction over axes %v that are not adjacent: %w", axes, ErrUnsupported)
	}
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	code := map[string]int{"ReduceSum": ReduceSum, "ReduceMean": ReduceMean, "ReduceMax": ReduceMax, "ReduceMin": ReduceMin}[n.Op]
	l.emit(Step{Kind: KReduce, Node: n.Name, In: []View{x}, Out: y, Code: code,
		Outer: Len(x.Shape[:lo]), Dim: Len(x.Shape[lo : hi+1]), Inner: Len(x.Shape[hi+1:])})
	l.set(n.Out[0], y)
	return nil
}

func (l *lowering) maxPool(n *Node) error {
	k := n.attrInts("kernel_shape", nil)
	if len(k) != 2 || len(n.In[0].Shape) != 4 {
		return fmt.Errorf("only 2-D pooling: %w", ErrUnsupported)
	}
	geo, err := geometry(n, k[0], k[1])
	if err != nil {
		return err
	}
	x, err := l.get(n.In[0], NHWC, F16)
	if err != nil {
		return err
	}
	y := l.output(n.Out[0], n.Out[0].Shape)
	l.emit(Step{Kind: KMaxPool, Node: n.Name, In: []View{x}, Out: y,
		Pool: &PoolStep{KH: geo.kh, KW: geo.kw, SH: geo.sh, SW: geo.sw, DH: geo.dh, DW: geo.dw, PT: geo.pt, PL: geo.pl, PB: geo.pb, PR: geo.pr,
			Avg: n.Op == "AveragePool", CountPad: n.attrInt("count_include_pad", 0) != 0}})
	l.set(n.Out[0], y)
	return nil
}

func (l *lowering) resize(n *Node) error {
	x, err := l.get(n.In[0], NHWC, F16)
	if err != nil {
		return err
	}
	args := []*Tensor{{Shape: n.In[0].Shape}}
	s, err := resizeOf(n, args[0])
	if err != nil {
		return err
	}
	h, w := n.In[0].Shape[2], n.In[0].Shape[3]
	// One (i0, i1, weight) triple per output row, then per output column,
	// computed with the reference's own coordinate mapping.
	tab := make([]byte, 0, 12*(s.oh+s.ow))
	entry := func(o int, scale float64, in, out int) {
		f := s.src(o, scale, in, out)
		var i0, i1 int
		var a float64
		if s.linear {
			c := max(0, min(f, float64(in-1)))
			i0 = int(c)
			i1 = min(i0+1, in-1)
			a = c - float64(i0)
		} else {
			i0 = s.near(f, in)
			i1 = i0
		}
		var e [12]byte
		putF32(e[0:], float32(i0))
		putF32(e[4:], float32(i1))
		putF32(e[8:], float32(a))
		tab = append(tab, e[:]...)
	}
	for o := 0; o < s.oh; o++ {
		entry(o, s.scaleH, h, s.oh)
	}
	for o := 0; o < s.ow; o++ {
		entry(o, s.scaleW, w, s.ow)
	}
	tb := l.newBuf(SpaceConst, int64(len(tab)))
	l.p.Bufs[tb].Data = tab
	y := l.output(n.Out[0], n.Out[0].Shape)
	l.emit(Step{Kind: KResize, Node: n.Name, In: []View{x}, Out: y, Table: tb})
	l.set(n.Out[0], y)
	return nil
}

// place gives every arena buffer an offset: buffers whose step intervals
// do not overlap share memory.
func (l *lowering) place(align int64) {
	var ids []int
	var iv []Interval
	for i, b := range l.p.Bufs {
		if b.Space != SpaceArena || b.First < 0 {
			continue
		}
		ids = append(ids, i)
		iv = append(iv, Interval{Size: (b.Bytes + align - 1) / align * align, Start: b.First, End: b.Last})
	}
	offs, peak := Pack(iv)
	for k, i := range ids {
		l.p.Bufs[i].Offset = offs[k]
	}
	l.p.Arena = peak
}
