package graph

import (
	"fmt"
	"math"
	"slices"
)

// opFunc computes a node's outputs. With data false it only works out the
// outputs' shapes and types (their data stays nil); inputs then carry
// shapes, and data only where known at compile time.
type opFunc func(n *Node, in []*Tensor, data bool) ([]*Tensor, error)

// operator is everything the compiler knows of one ONNX operator. eval
// works out its outputs' shapes (data false) or computes them (data true):
// constant folding and the reference executor. lower turns a node into a
// Program's steps, each of a Kind the GPU engine has a kernel for; nil
// lower: shape arithmetic, which must fold to constants.
type operator struct {
	eval  opFunc
	lower func(*lowering, *Node) error
}

// operators is the compiler's operator table: a new operator is one entry
// here (a new kind of step, one kernel in the engine besides).
var operators = operatorTable()

func operatorTable() map[string]operator {
	t := map[string]operator{
		"Identity":           {opIdentity, (*lowering).identity},
		"Cast":               {opCast, (*lowering).cast},
		"Shape":              {opShape, nil},
		"Gather":             {opGather, (*lowering).gather},
		"GatherElements":     {opGatherElements, (*lowering).gatherElements},
		"TopK":               {opTopK, (*lowering).topK},
		"ArgMax":             {opArgMax, (*lowering).argMax},
		"ArgMin":             {opArgMax, (*lowering).argMax},
		"Tile":               {opTile, (*lowering).tile},
		"ScatterND":          {opScatterND, nil},
		"Where":              {opWhere, (*lowering).where},
		"Not":                {opNot, (*lowering).not},
		"Clip":               {opClip, (*lowering).clip},
		"Max":                {opBinary, (*lowering).binary},
		"Min":                {opBinary, (*lowering).binary},
		"GridSample":         {opGridSample, (*lowering).gridSample},
		"Range":              {opRange, nil},
		"ConstantOfShape":    {opConstantOfShape, nil},
		"Unsqueeze":          {opUnsqueeze, (*lowering).reshape},
		"Squeeze":            {opSqueeze, (*lowering).reshape},
		"Reshape":            {opReshape, (*lowering).reshape},
		"Flatten":            {opFlatten, (*lowering).reshape},
		"Concat":             {opConcat, (*lowering).copyOp},
		"Transpose":          {opTranspose, (*lowering).copyOp},
		"Slice":              {opSlice, (*lowering).copyOp},
		"Split":              {opSplit, (*lowering).copyOp},
		"Expand":             {opExpand, (*lowering).copyOp},
		"Add":                {opBinary, (*lowering).binary},
		"Sub":                {opBinary, (*lowering).binary},
		"Mul":                {opBinary, (*lowering).binary},
		"Div":                {opBinary, (*lowering).binary},
		"Pow":                {opBinary, (*lowering).binary},
		"Sigmoid":            {unary(func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }), (*lowering).activation},
		"Relu":               {unary(func(x float64) float64 { return math.Max(x, 0) }), (*lowering).activation},
		"LeakyRelu":          {opLeakyRelu, (*lowering).activation},
		"Softmax":            {opSoftmax, (*lowering).softmax},
		"LayerNormalization": {opLayerNorm, (*lowering).layerNorm},
		"ReduceSum":          {reduce(ReduceSum), (*lowering).reduce},
		"ReduceMean":         {reduce(ReduceMean), (*lowering).reduce},
		"ReduceMax":          {reduce(ReduceMax), (*lowering).reduce},
		"ReduceMin":          {reduce(ReduceMin), (*lowering).reduce},
		"Conv":               {opConv, (*lowering).conv},
		"MaxPool":            {opPool, (*lowering).maxPool},
		"AveragePool":        {opPool, (*lowering).maxPool},
		"Resize":             {opResize, (*lowering).resize},
		"Upsample":           {opResize, (*lowering).resize},
		"MatMul":             {opMatMul, (*lowering).matMul},
		"DepthToSpace":       {opDepthToSpace, (*lowering).depthToSpace},
		"Pad":                {opPad, (*lowering).pad},
		"Einsum":             {opEinsum, nil},
		opAttention:          {opAttentionRef, (*lowering).attention},
	}
	for name := range compareOps {
		t[name] = operator{opBinary, (*lowering).binary}
	}
	for name := range unaryMath {
		t[name] = operator{opUnaryMath, (*lowering).unaryMath}
	}
	return t
}

// maxElems bounds the elements of any tensor, run-time ones included: the
// engine's kernels index with 32 bits.
const maxElems = 1<<31 - 1

// maxData bounds a tensor whose numbers the compiler holds on the host
// (an initializer, a Constant, a folded result), and maxFolded the numbers
// one compile may fold in all, and the multiply-adds of one folded
// operator: a hostile file must not make the compiler allocate or compute
// without limit. The largest weight of common detectors holds a few
// million numbers.
const (
	maxData   = 1 << 26
	maxFolded = 1 << 28
)

// checkShape rejects negative dimensions and tensors of more than limit
// elements.
func checkShape(shape []int, limit int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in %v", shape)
		}
		if d > 0 && n > limit/d {
			return fmt.Errorf("%w: shape %v has more than %d elements", ErrTooLarge, shape, limit)
		}
		n *= d
	}
	return nil
}

// out1 makes an operator's output. A shape a hostile model made too large
// panics, which apply turns into an error before anything is allocated.
func out1(shape []int, dt DType, data bool) *Tensor {
	limit := maxElems
	if data {
		limit = maxData
	}
	if err := checkShape(shape, limit); err != nil {
		panic(err)
	}
	t := &Tensor{DType: dt, Shape: shape}
	if data {
		if dt == Float {
			t.F = make([]float32, Len(shape))
		} else {
			t.I = make([]int64, Len(shape))
		}
	}
	return t
}

func strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

func opIdentity(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	return []*Tensor{in[0]}, nil
}

func opShape(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	shape := in[0].Shape
	r := len(shape)
	start, end := n.attrInt("start", 0), n.attrInt("end", r)
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = max(0, min(start, r)), max(0, min(end, r))
	t := NewInt(max(end-start, 0))
	for i := start; i < end; i++ {
		t.I[i-start] = int64(shape[i])
	}
	return []*Tensor{t}, nil
}

// gatherIndex maps a flat output index of a take-along-axis to the input.
// axesOf reads the axes of Unsqueeze/Squeeze/Reduce*: an input since
// opset 13, an attribute before.
func axesOf(n *Node, input int) ([]int, error) {
	if c, err := n.constInput(input); err != nil {
		return nil, err
	} else if c != nil {
		return c.Ints(), nil
	}
	return n.attrInts("axes", nil), nil
}

// view returns x's data under another shape (no copy).
func view(x *Tensor, shape []int) *Tensor {
	return &Tensor{DType: x.DType, Shape: shape, F: x.F, I: x.I}
}

func opUnsqueeze(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	axes, err := axesOf(n, 1)
	if err != nil {
		return nil, err
	}
	r := len(in[0].Shape) + len(axes)
	set := map[int]bool{}
	for _, a := range axes {
		a, err := axis(a, r)
		if err != nil {
			return nil, err
		}
		set[a] = true
	}
	var shape []int
	k := 0
	for i := 0; i < r; i++ {
		if set[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, in[0].Shape[k])
			k++
		}
	}
	return []*Tensor{view(in[0], shape)}, nil
}

func opSqueeze(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	axes, err := axesOf(n, 1)
	if err != nil {
		return nil, err
	}
	set := map[int]bool{}
	for _, a := range axes {
		a, err := axis(a, len(in[0].Shape))
		if err != nil {
			return nil, err
		}
		set[a] = true
	}
	shape := []int{}
	for i, d := range in[0].Shape {
		if (len(axes) == 0 && d == 1) || set[i] {
			continue
		}
		shape = append(shape, d)
	}
	return []*Tensor{view(in[0], shape)}, nil
}

func opConcat(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	var parts []*Tensor
	for _, t := range in {
		if t != nil && Len(t.Shape) > 0 { // exporters concatenate empty tensors too
			parts = append(parts, t)
		}
	}
	if len(parts) == 0 {
		return []*Tensor{in[0]}, nil
	}
	r := len(parts[0].Shape)
	ax, err := axis(n.attrInt("axis", 0), r)
	if err != nil {
		return nil, err
	}
	shape := append([]int{}, parts[0].Shape...)
	shape[ax] = 0
	for _, p := range parts {
		if len(p.Shape) != r {
			return nil, fmt.Errorf("concatenating ranks %d and %d", r, len(p.Shape))
		}
		for i := range p.Shape {
			if i != ax && p.Shape[i] != parts[0].Shape[i] {
				return nil, fmt.Errorf("concatenating %v and %v on axis %d", parts[0].Shape, p.Shape, ax)
			}
		}
		shape[ax] += p.Shape[ax]
	}
	out := out1(shape, parts[0].DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	outer := Len(shape[:ax])
	inner := Len(shape[ax+1:])
	off := 0
	for _, p := range parts {
		chunk := p.Shape[ax] * inner
		for o := 0; o < outer; o++ {
			dst := o*shape[ax]*inner + off
			if out.DType == Float {
				copy(out.F[dst:dst+chunk], p.F[o*chunk:(o+1)*chunk])
			} else {
				copy(out.I[dst:dst+chunk], asInt(p).I[o*chunk:(o+1)*chunk])
			}
		}
		off += chunk
	}
	return []*Tensor{out}, nil
}

func asInt(t *Tensor) *Tensor {
	if t.DType == Int64 {
		return t
	}
	out := NewInt(t.Shape...)
	for i, v := range t.F {
		out.I[i] = int64(v)
	}
	return out
}

func opReshape(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	target, err := n.constInput(1)
	if err != nil || target == nil {
		return nil, fmt.Errorf("reshape needs a constant shape: %w", ErrUnsupported)
	}
	shape := target.Ints()
	total := Len(in[0].Shape)
	known, infer := 1, -1
	for i, d := range shape {
		switch {
		case d == 0 && n.attrInt("allowzero", 0) == 0:
			shape[i] = in[0].Shape[i]
			known *= shape[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("reshape to %v: two -1", target.Ints())
			}
			infer = i
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("reshape %v to %v", in[0].Shape, target.Ints())
		}
		shape[infer] = total / known
	}
	if Len(shape) != total {
		return nil, fmt.Errorf("reshape %v (%d elements) to %v", in[0].Shape, total, shape)
	}
	return []*Tensor{view(in[0], shape)}, nil
}

func opFlatten(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	ax := n.attrInt("axis", 1)
	if ax < 0 {
		ax += len(in[0].Shape)
	}
	return []*Tensor{view(in[0], []int{Len(in[0].Shape[:ax]), Len(in[0].Shape[ax:])})}, nil
}

func opTranspose(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	r := len(x.Shape)
	perm := n.attrInts("perm", nil)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", perm, r)
	}
	shape := make([]int, r)
	for i, p := range perm {
		shape[i] = x.Shape[p]
	}
	out := out1(shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	xs := strides(x.Shape)
	gather(out, x, func(idx []int) (src int) {
		for i, v := range idx {
			src += v * xs[perm[i]]
		}
		return src
	})
	return []*Tensor{out}, nil
}

// sliceOf returns a Slice node's start, step and output size on every axis
// of x (steps 1 and whole axes where the node says nothing).
func sliceOf(n *Node, in []*Tensor) (begin, step, shape []int, err error) {
	x := in[0]
	r := len(x.Shape)
	var starts, ends, axes, steps []int
	if len(in) > 1 {
		for i, dst := range []*[]int{&starts, &ends, &axes, &steps} {
			c, err := n.constInput(i + 1)
			if err != nil {
				return nil, nil, nil, err
			}
			if c != nil {
				*dst = c.Ints()
			}
		}
	} else { // opset < 10
		starts, ends, axes = n.attrInts("starts", nil), n.attrInts("ends", nil), n.attrInts("axes", nil)
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, i)
		}
	}
	begin = make([]int, r)
	step = make([]int, r)
	shape = append([]int{}, x.Shape...)
	for i := range step {
		step[i] = 1
	}
	for i, a := range axes {
		a, err := axis(a, r)
		if err != nil {
			return nil, nil, nil, err
		}
		st := 1
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil, nil, nil, fmt.Errorf("slice step 0")
		}
		d := x.Shape[a]
		s, e := starts[i], ends[i]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if st > 0 {
			s, e = max(0, min(s, d)), max(0, min(e, d))
			shape[a] = max(0, (e-s+st-1)/st)
		} else {
			s, e = max(-1, min(s, d-1)), max(-1, min(e, d-1))
			shape[a] = max(0, (s-e-st-1)/(-st))
		}
		begin[a], step[a] = s, st
	}
	return begin, step, shape, nil
}

func opSlice(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	begin, step, shape, err := sliceOf(n, in)
	if err != nil {
		return nil, err
	}
	out := out1(shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	xs := strides(x.Shape)
	gather(out, x, func(idx []int) (src int) {
		for i, v := range idx {
			src += (begin[i] + v*step[i]) * xs[i]
		}
		return src
	})
	return []*Tensor{out}, nil
}

func opSplit(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return nil, err
	}
	sizes := n.attrInts("split", nil)
	if c, err := n.constInput(1); err != nil {
		return nil, err
	} else if c != nil {
		sizes = c.Ints()
	}
	if sizes == nil {
		k := len(n.Out)
		if x.Shape[ax]%k != 0 {
			return nil, fmt.Errorf("split %d into %d equal parts", x.Shape[ax], k)
		}
		for range n.Out {
			sizes = append(sizes, x.Shape[ax]/k)
		}
	}
	sum := 0
	for _, s := range sizes {
		sum += s
	}
	if sum != x.Shape[ax] || len(sizes) != len(n.Out) {
		return nil, fmt.Errorf("split %v on axis %d into %v", x.Shape, ax, sizes)
	}
	outer, inner := Len(x.Shape[:ax]), Len(x.Shape[ax+1:])
	var outs []*Tensor
	off := 0
	for _, s := range sizes {
		shape := append([]int{}, x.Shape...)
		shape[ax] = s
		o := out1(shape, x.DType, data)
		if data {
			for b := 0; b < outer; b++ {
				src := (b*x.Shape[ax] + off) * inner
				if x.DType == Float {
					copy(o.F[b*s*inner:(b+1)*s*inner], x.F[src:src+s*inner])
				} else {
					copy(o.I[b*s*inner:(b+1)*s*inner], x.I[src:src+s*inner])
				}
			}
		}
		off += s
		outs = append(outs, o)
	}
	return outs, nil
}

func scalarOf(n *Node, i int) (float64, DType, error) {
	c, err := n.constInput(i)
	if err != nil {
		return 0, 0, err
	}
	if c == nil || Len(c.Shape) != 1 {
		return 0, 0, fmt.Errorf("input %d must be a constant scalar", i)
	}
	return c.Floats()[0], c.DType, nil
}

func opRange(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	start, dt, err := scalarOf(n, 0)
	if err != nil {
		return nil, err
	}
	limit, _, err := scalarOf(n, 1)
	if err != nil {
		return nil, err
	}
	delta, _, err := scalarOf(n, 2)
	if err != nil {
		return nil, err
	}
	if delta == 0 {
		return nil, fmt.Errorf("range with step 0")
	}
	cnt := int(math.Max(math.Ceil((limit-start)/delta), 0))
	out := out1([]int{cnt}, dt, true)
	for i := 0; i < cnt; i++ {
		v := start + float64(i)*delta
		if dt == Float {
			out.F[i] = float32(v)
		} else {
			out.I[i] = int64(v)
		}
	}
	return []*Tensor{out}, nil
}

func opConstantOfShape(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	c, err := n.constInput(0)
	if err != nil {
		return nil, err
	}
	shape := c.Ints()
	val, dt := 0.0, Float
	if a, ok := n.Attr["value"]; ok {
		t, err := tensorFromProto(a.GetT())
		if err != nil {
			return nil, err
		}
		val, dt = t.Floats()[0], t.DType
	}
	out := out1(shape, dt, true)
	for i := range Len(shape) {
		if dt == Float {
			out.F[i] = float32(val)
		} else {
			out.I[i] = int64(val)
		}
	}
	return []*Tensor{out}, nil
}

// broadcast returns the shape two shapes broadcast to.
func broadcast(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := 0; i < r; i++ {
		da, db := 1, 1
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// BroadcastStrides returns the strides that read a tensor of shape,
// stored with stride, as the shape to it broadcasts to (NumPy's rules:
// missing leading dimensions and dimensions of size 1 repeat, stride 0).
// The one place broadcasting is written: folding, the reference, lowering
// and the GPU engine's batched products read it.
func BroadcastStrides(shape []int, stride []int64, to []int) []int64 {
	out := make([]int64, len(to))
	off := len(to) - len(shape)
	for i := range shape {
		if shape[i] != 1 {
			out[off+i] = stride[i]
		}
	}
	return out
}

// bstrides are the strides of a packed tensor of shape x read broadcast to
// shape.
func bstrides(x, shape []int) []int {
	s := strides(x)
	packed := make([]int64, len(s))
	for i, v := range s {
		packed[i] = int64(v)
	}
	out := make([]int, len(shape))
	for i, v := range BroadcastStrides(x, packed, shape) {
		out[i] = int(v)
	}
	return out
}

func opExpand(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	c, err := n.constInput(1)
	if err != nil {
		return nil, err
	}
	shape, err := broadcast(in[0].Shape, c.Ints())
	if err != nil {
		return nil, err
	}
	out := out1(shape, in[0].DType, data)
	if data {
		bs := bstrides(in[0].Shape, shape)
		gather(out, in[0], func(idx []int) (src int) {
			for i, v := range idx {
				src += v * bs[i]
			}
			return src
		})
	}
	return []*Tensor{out}, nil
}

// gather fills out element by element from x at the flat index src gives
// for each output index.
func gather(out, x *Tensor, src func(idx []int) int) {
	eachIndex(out.Shape, func(o int, idx []int) {
		if x.DType == Float {
			out.F[o] = x.F[src(idx)]
		} else {
			out.I[o] = x.I[src(idx)]
		}
	})
}

// eachIndex calls fn for every index of shape in row-major order.
func eachIndex(shape []int, fn func(flat int, idx []int)) {
	idx := make([]int, len(shape))
	total := Len(shape)
	for o := 0; o < total; o++ {
		fn(o, idx)
		for i := len(shape) - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
}

func unary(f func(float64) float64) opFunc {
	return func(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
		x := in[0]
		out := out1(x.Shape, x.DType, data)
		if data {
			for i, v := range x.Floats() {
				if r := f(v); x.DType == Float {
					out.F[i] = float32(r)
				} else {
					out.I[i] = int64(r)
				}
			}
		}
		return []*Tensor{out}, nil
	}
}

func opLeakyRelu(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	alpha := float64(n.attrFloat("alpha", 0.01))
	return unary(func(x float64) float64 {
		if x < 0 {
			return alpha * x
		}
		return x
	})(n, in, data)
}

// opLayerNorm is LayerNormalization over the last axis (expandLayerNorm
// rewrites the others): each row less its mean, over the square root of
// its variance plus epsilon, times the scale, plus the bias; the moments
// in float64.
func opLayerNorm(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	if len(x.Shape) == 0 {
		return nil, fmt.Errorf("layer normalisation of a scalar: %w", ErrUnsupported)
	}
	d := x.Shape[len(x.Shape)-1]
	if d == 0 {
		return nil, fmt.Errorf("layer normalisation of empty rows: %w", ErrUnsupported)
	}
	for i, t := range in[1:] {
		if t != nil && Len(t.Shape) != d {
			return nil, fmt.Errorf("layer normalisation of rows of %d: %s of shape %v: %w", d, [2]string{"scale", "bias"}[i], t.Shape, ErrUnsupported)
		}
	}
	out := out1(x.Shape, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	eps := float64(n.attrFloat("epsilon", 1e-5))
	var bias []float32
	if len(in) > 2 && in[2] != nil {
		bias = in[2].F
	}
	for r := 0; r < len(x.F)/d; r++ {
		row := x.F[r*d : (r+1)*d]
		mean, v := 0.0, 0.0
		for _, f := range row {
			mean += float64(f)
		}
		mean /= float64(d)
		for _, f := range row {
			v += (float64(f) - mean) * (float64(f) - mean)
		}
		inv := 1 / math.Sqrt(v/float64(d)+eps)
		for i, f := range row {
			y := (float64(f) - mean) * inv * float64(in[1].F[i])
			if bias != nil {
				y += float64(bias[i])
			}
			out.F[r*d+i] = float32(y)
		}
	}
	return []*Tensor{out}, nil
}

func opSoftmax(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	ax, err := axis(n.attrInt("axis", -1), len(x.Shape))
	if err != nil {
		return nil, err
	}
	out := out1(x.Shape, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	outer, dim, inner := Len(x.Shape[:ax]), x.Shape[ax], Len(x.Shape[ax+1:])
	for o := 0; o < outer; o++ {
		for k := 0; k < inner; k++ {
			base := o*dim*inner + k
			m := math.Inf(-1)
			for d := 0; d < dim; d++ {
				m = math.Max(m, float64(x.F[base+d*inner]))
			}
			sum := 0.0
			for d := 0; d < dim; d++ {
				sum += math.Exp(float64(x.F[base+d*inner]) - m)
			}
			for d := 0; d < dim; d++ {
				out.F[base+d*inner] = float32(math.Exp(float64(x.F[base+d*inner])-m) / sum)
			}
		}
	}
	return []*Tensor{out}, nil
}

// Reductions (Step.Code of a KReduce step).
const (
	ReduceSum = iota
	ReduceMean
	ReduceMax
	ReduceMin
	// ArgMax and ArgMin: the index (as a float) of the first extreme, or
	// of the last.
	ReduceArgMax
	ReduceArgMaxLast
	ReduceArgMin
	ReduceArgMinLast
)

func reduce(kind int) opFunc {
	return func(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
		x := in[0]
		axes, err := axesOf(n, 1)
		if err != nil {
			return nil, err
		}
		keep := n.attrInt("keepdims", 1) == 1
		set := map[int]bool{}
		for _, a := range axes {
			a, err := axis(a, len(x.Shape))
			if err != nil {
				return nil, err
			}
			set[a] = true
		}
		if len(axes) == 0 && n.attrInt("noop_with_empty_axes", 0) == 0 {
			for i := range x.Shape {
				set[i] = true
			}
		}
		kept := make([]int, len(x.Shape)) // shape with reduced axes 1
		var shape []int
		for i, d := range x.Shape {
			kept[i] = d
			if set[i] {
				kept[i] = 1
				if keep {
					shape = append(shape, 1)
				}
				continue
			}
			shape = append(shape, d)
		}
		out := out1(shape, x.DType, data)
		if !data {
			return []*Tensor{out}, nil
		}
		acc := make([]float64, Len(kept))
		for i := range acc {
			switch kind {
			case ReduceMax:
				acc[i] = math.Inf(-1)
			case ReduceMin:
				acc[i] = math.Inf(1)
			}
		}
		ks := bstrides(kept, x.Shape)
		xf := x.Floats()
		eachIndex(x.Shape, func(o int, idx []int) {
			d := 0
			for i, v := range idx {
				d += v * ks[i]
			}
			switch kind {
			case ReduceMax:
				acc[d] = math.Max(acc[d], xf[o])
			case ReduceMin:
				acc[d] = math.Min(acc[d], xf[o])
			default:
				acc[d] += xf[o]
			}
		})
		div := float64(Len(x.Shape)) / float64(len(acc))
		for i, v := range acc {
			if kind == ReduceMean {
				v /= div
			}
			if x.DType == Float {
				out.F[i] = float32(v)
			} else {
				out.I[i] = int64(v)
			}
		}
		return []*Tensor{out}, nil
	}
}

// convGeometry reads a 2-D Conv or pool's attributes.
type convGeometry struct {
	kh, kw, sh, sw, dh, dw, pt, pl, pb, pr int
	ceil                                   bool // pools' ceil_mode
}

func geometry(n *Node, kh, kw int) (convGeometry, error) {
	g := convGeometry{kh: kh, kw: kw, sh: 1, sw: 1, dh: 1, dw: 1}
	if s := n.attrInts("strides", nil); len(s) == 2 {
		g.sh, g.sw = s[0], s[1]
	}
	if d := n.attrInts("dilations", nil); len(d) == 2 {
		g.dh, g.dw = d[0], d[1]
	}
	if p := n.attrInts("pads", nil); len(p) == 4 {
		g.pt, g.pl, g.pb, g.pr = p[0], p[1], p[2], p[3]
	}
	if ap := n.attrString("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
		return g, fmt.Errorf("auto_pad %s: %w", ap, ErrUnsupported)
	}
	if n.attrInt("ceil_mode", 0) != 0 {
		if n.Op != "MaxPool" && n.Op != "AveragePool" {
			return g, fmt.Errorf("ceil_mode: %w", ErrUnsupported)
		}
		g.ceil = true
	}
	return g, nil
}

// out is the output size: windows that fit (or, with ceil_mode, that
// start inside the input or its leading padding).
func (g convGeometry) out(h, w int) (int, int) {
	side := func(in, p0, p1, d, k, s int) int {
		span := in + p0 + p1 - d*(k-1) - 1
		if !g.ceil {
			return span/s + 1
		}
		o := (span+s-1)/s + 1
		if (o-1)*s >= in+p0 {
			o--
		}
		return o
	}
	return side(h, g.pt, g.pb, g.dh, g.kh, g.sh), side(w, g.pl, g.pr, g.dw, g.kw, g.sw)
}

func opConv(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x, wt := in[0], in[1]
	if len(x.Shape) != 4 || len(wt.Shape) != 4 {
		return nil, fmt.Errorf("only 2-D convolutions: input %v, weight %v: %w", x.Shape, wt.Shape, ErrUnsupported)
	}
	groups := n.attrInt("group", 1)
	nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, cg, kh, kw := wt.Shape[0], wt.Shape[1], wt.Shape[2], wt.Shape[3]
	if cg*groups != c || m%groups != 0 {
		return nil, fmt.Errorf("weight %v with %d groups for %d input channels", wt.Shape, groups, c)
	}
	g, err := geometry(n, kh, kw)
	if err != nil {
		return nil, err
	}
	oh, ow := g.out(h, w)
	out := out1([]int{nb, m, oh, ow}, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	var bias []float32
	if len(in) > 2 && in[2] != nil {
		bias = in[2].F
	}
	mg := m / groups
	col := make([]float32, cg*kh*kw*oh*ow)
	for b := 0; b < nb; b++ {
		for gi := 0; gi < groups; gi++ {
			// im2col for this image and group
			for ci := 0; ci < cg; ci++ {
				src := x.F[((b*c)+gi*cg+ci)*h*w:]
				for ky := 0; ky < kh; ky++ {
					for kx := 0; kx < kw; kx++ {
						row := col[((ci*kh+ky)*kw+kx)*oh*ow:]
						for oy := 0; oy < oh; oy++ {
							iy := oy*g.sh - g.pt + ky*g.dh
							for ox := 0; ox < ow; ox++ {
								ix := ox*g.sw - g.pl + kx*g.dw
								v := float32(0)
								if iy >= 0 && iy < h && ix >= 0 && ix < w {
									v = src[iy*w+ix]
								}
								row[oy*ow+ox] = v
							}
						}
					}
				}
			}
			k := cg * kh * kw
			for mi := 0; mi < mg; mi++ {
				oc := gi*mg + mi
				dst := out.F[(b*m+oc)*oh*ow : (b*m+oc+1)*oh*ow]
				wrow := wt.F[oc*k : (oc+1)*k]
				acc := make([]float64, oh*ow)
				for kk, wv := range wrow {
					if wv == 0 {
						continue
					}
					r := col[kk*oh*ow : (kk+1)*oh*ow]
					for p, v := range r {
						acc[p] += float64(wv) * float64(v)
					}
				}
				bv := float64(0)
				if bias != nil {
					bv = float64(bias[oc])
				}
				for p := range dst {
					dst[p] = float32(acc[p] + bv)
				}
			}
		}
	}
	return []*Tensor{out}, nil
}

// opPool is MaxPool and AveragePool: an average divides by the taps
// inside the input, or by every tap with count_include_pad.
func opPool(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	k := n.attrInts("kernel_shape", nil)
	if len(x.Shape) != 4 || len(k) != 2 {
		return nil, fmt.Errorf("only 2-D pooling: %w", ErrUnsupported)
	}
	avg, countPad := n.Op == "AveragePool", n.attrInt("count_include_pad", 0) != 0
	if len(n.Out) > 1 && n.Out[1].Name != "" {
		return nil, fmt.Errorf("max pooling indices: %w", ErrUnsupported)
	}
	g, err := geometry(n, k[0], k[1])
	if err != nil {
		return nil, err
	}
	nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	oh, ow := g.out(h, w)
	out := out1([]int{nb, c, oh, ow}, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	for p := 0; p < nb*c; p++ {
		src := x.F[p*h*w : (p+1)*h*w]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				m, sum, taps, padded := float32(math.Inf(-1)), 0.0, 0, 0
				for ky := 0; ky < g.kh; ky++ {
					iy := oy*g.sh - g.pt + ky*g.dh
					for kx := 0; kx < g.kw; kx++ {
						ix := ox*g.sw - g.pl + kx*g.dw
						if iy >= 0 && iy < h && ix >= 0 && ix < w {
							m = max(m, src[iy*w+ix])
							sum += float64(src[iy*w+ix])
							taps++
						}
						if iy < h+g.pb && ix < w+g.pr {
							padded++
						}
					}
				}
				if avg {
					if countPad {
						// The taps inside the padded input: padding counts,
						// the part of a ceil_mode window past the end
						// padding does not (PyTorch's divisor, and ONNX
						// Runtime's since 1.25).
						taps = padded
					}
					m = float32(sum / float64(max(taps, 1)))
				}
				out.F[(p*oh+oy)*ow+ox] = m
			}
		}
	}
	return []*Tensor{out}, nil
}

// resizeSpec is a Resize's mode and output size.
type resizeSpec struct {
	linear         bool
	coord, nearest string
	oh, ow         int
	scaleH, scaleW float64
}

// resizeOf reads a Resize of opset 11 or later (X, roi, scales, sizes),
// or the older forms whose scales are their second input or an attribute
// (Resize 10, Upsample 7-9: the coordinates asymmetric, the nearest pixel
// below).
func resizeOf(n *Node, x *Tensor) (resizeSpec, error) {
	old := n.Op == "Upsample" || len(n.In) == 2
	s := resizeSpec{coord: n.attrString("coordinate_transformation_mode", "half_pixel"), nearest: n.attrString("nearest_mode", "round_prefer_floor")}
	if old {
		s.coord, s.nearest = "asymmetric", "floor"
	}
	switch n.attrString("mode", "nearest") {
	case "nearest":
	case "linear":
		s.linear = true
	default:
		return s, fmt.Errorf("resize mode %s: %w", n.attrString("mode", ""), ErrUnsupported)
	}
	if len(x.Shape) != 4 {
		return s, fmt.Errorf("resize of rank %d: %w", len(x.Shape), ErrUnsupported)
	}
	h, w := x.Shape[2], x.Shape[3]
	scalesAt := 2
	if old {
		scalesAt = 1
	}
	scales, err := n.constInput(scalesAt)
	if err != nil {
		return s, err
	}
	if a := n.attrFloats("scales"); old && scales == nil && len(a) == 4 {
		scales = NewFloat(4)
		for i, v := range a {
			scales.F[i] = v
		}
	}
	sizes, err := n.constInput(3)
	if err != nil {
		return s, err
	}
	switch {
	case sizes != nil && Len(sizes.Shape) == 4:
		sz := sizes.Ints()
		if sz[0] != x.Shape[0] || sz[1] != x.Shape[1] {
			return s, fmt.Errorf("resize of batch or channels: %w", ErrUnsupported)
		}
		s.oh, s.ow = sz[2], sz[3]
		s.scaleH, s.scaleW = float64(s.oh)/float64(h), float64(s.ow)/float64(w)
	case scales != nil && Len(scales.Shape) == 4:
		sc := scales.Floats()
		if sc[0] != 1 || sc[1] != 1 {
			return s, fmt.Errorf("resize of batch or channels: %w", ErrUnsupported)
		}
		s.scaleH, s.scaleW = sc[2], sc[3]
		s.oh, s.ow = int(math.Floor(float64(h)*sc[2])), int(math.Floor(float64(w)*sc[3]))
	default:
		return s, fmt.Errorf("resize needs constant scales or sizes: %w", ErrUnsupported)
	}
	switch s.coord {
	case "asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners":
	default:
		return s, fmt.Errorf("resize coordinate_transformation_mode %s: %w", s.coord, ErrUnsupported)
	}
	return s, nil
}

// src maps an output coordinate to the input's.
func (s resizeSpec) src(o int, scale float64, in, out int) float64 {
	switch s.coord {
	case "asymmetric":
		return float64(o) / scale
	case "align_corners":
		if out == 1 {
			return 0
		}
		return float64(o) * float64(in-1) / float64(out-1)
	case "pytorch_half_pixel":
		if out == 1 {
			return 0
		}
	}
	return (float64(o)+0.5)/scale - 0.5
}

func (s resizeSpec) near(x float64, in int) int {
	var i int
	switch s.nearest {
	case "floor":
		i = int(math.Floor(x))
	case "ceil":
		i = int(math.Ceil(x))
	case "round_prefer_ceil":
		i = int(math.Floor(x + 0.5))
	default: // round_prefer_floor
		i = int(math.Ceil(x - 0.5))
	}
	return max(0, min(i, in-1))
}

func opResize(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	s, err := resizeOf(n, x)
	if err != nil {
		return nil, err
	}
	nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out := out1([]int{nb, c, s.oh, s.ow}, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	for p := 0; p < nb*c; p++ {
		src := x.F[p*h*w : (p+1)*h*w]
		for oy := 0; oy < s.oh; oy++ {
			fy := s.src(oy, s.scaleH, h, s.oh)
			for ox := 0; ox < s.ow; ox++ {
				fx := s.src(ox, s.scaleW, w, s.ow)
				var v float32
				if !s.linear {
					v = src[s.near(fy, h)*w+s.near(fx, w)]
				} else {
					cy, cx := math.Max(0, math.Min(fy, float64(h-1))), math.Max(0, math.Min(fx, float64(w-1)))
					y0, x0 := int(cy), int(cx)
					y1, x1 := min(y0+1, h-1), min(x0+1, w-1)
					ay, ax := cy-float64(y0), cx-float64(x0)
					v = float32((1-ay)*((1-ax)*float64(src[y0*w+x0])+ax*float64(src[y0*w+x1])) +
						ay*((1-ax)*float64(src[y1*w+x0])+ax*float64(src[y1*w+x1])))
				}
				out.F[(p*s.oh+oy)*s.ow+ox] = v
			}
		}
	}
	return []*Tensor{out}, nil
}

// matMulShapes are the operands' shapes as MatMul multiplies them
// (NumPy's rules: a vector a is a row [1, K], a vector b a column [K, 1])
// and the shape of the result once those added dimensions are dropped.
func matMulShapes(a, b []int) (as, bs, out []int, err error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, nil, nil, fmt.Errorf("matmul of a scalar: %w", ErrUnsupported)
	}
	as, bs = a, b
	if len(a) == 1 {
		as = []int{1, a[0]}
	}
	if len(b) == 1 {
		bs = []int{b[0], 1}
	}
	batch, err := broadcast(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return nil, nil, nil, err
	}
	if as[len(as)-1] != bs[len(bs)-2] {
		return nil, nil, nil, fmt.Errorf("matmul %v × %v", a, b)
	}
	out = slices.Clone(batch)
	if len(a) > 1 {
		out = append(out, as[len(as)-2])
	}
	if len(b) > 1 {
		out = append(out, bs[len(bs)-1])
	}
	return as, bs, out, nil
}

// opMatMul is MatMul; a third input (fuseBias's) is a row added to every
// row of the product.
func opMatMul(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	if len(in) == 3 {
		outs, err := opMatMul(n, in[:2], data)
		if err != nil || !data {
			return outs, err
		}
		y, b := outs[0], in[2]
		cols := y.Shape[len(y.Shape)-1]
		for i := range y.F {
			y.F[i] += b.F[i%cols]
		}
		return outs, nil
	}
	as, bs, final, err := matMulShapes(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	if len(in[0].Shape) == 1 || len(in[1].Shape) == 1 {
		outs, err := opMatMul(n, []*Tensor{view(in[0], as), view(in[1], bs)}, data)
		if err != nil {
			return nil, err
		}
		return []*Tensor{view(outs[0], final)}, nil
	}
	a, b := in[0], in[1]
	m, k := a.Shape[len(a.Shape)-2], a.Shape[len(a.Shape)-1]
	k2, nn := b.Shape[len(b.Shape)-2], b.Shape[len(b.Shape)-1]
	if k != k2 {
		return nil, fmt.Errorf("matmul %v × %v", a.Shape, b.Shape)
	}
	batch, err := broadcast(a.Shape[:len(a.Shape)-2], b.Shape[:len(b.Shape)-2])
	if err != nil {
		return nil, err
	}
	shape := append(append([]int{}, batch...), m, nn)
	out := out1(shape, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	as = bstrides(a.Shape[:len(a.Shape)-2], batch)
	bs = bstrides(b.Shape[:len(b.Shape)-2], batch)
	eachIndex(batch, func(o int, idx []int) {
		ia, ib := 0, 0
		for i, v := range idx {
			ia += v * as[i]
			ib += v * bs[i]
		}
		A, B := a.F[ia*m*k:], b.F[ib*k*nn:]
		C := out.F[o*m*nn:]
		for i := 0; i < m; i++ {
			for j := 0; j < nn; j++ {
				s := 0.0
				for p := 0; p < k; p++ {
					s += float64(A[i*k+p]) * float64(B[p*nn+j])
				}
				C[i*nn+j] = float32(s)
			}
		}
	})
	return []*Tensor{out}, nil
}
