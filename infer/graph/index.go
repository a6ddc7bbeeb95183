package graph

import (
	"fmt"
	"math"
	"slices"
)

// Operators that compute or follow indices: Gather and GatherElements
// with indices known only at run time, TopK, ArgMax and ArgMin (DETR's
// query selection: the top-scoring anchors, then their boxes and
// features), Tile and ScatterND. Indices made at run time are fp32 on the
// GPU, exact below 2²⁴: maxIndexDim bounds the dimensions they index.

// maxIndexDim bounds a dimension indexed by run-time indices: fp32
// holds every integer below it exactly.
const maxIndexDim = 1 << 24

// normIndex wraps a negative index; ok is false outside [-dim, dim).
func normIndex(i, dim int) (int, bool) {
	if i < 0 {
		i += dim
	}
	return i, i >= 0 && i < dim
}

func opGather(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x, idx := in[0], in[1]
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return nil, err
	}
	shape := slices.Concat(x.Shape[:ax], idx.Shape, x.Shape[ax+1:])
	out := out1(shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	outer, dim := Len(x.Shape[:ax]), x.Shape[ax]
	inner := Len(x.Shape[ax+1:])
	ids := idx.Ints()
	for o := 0; o < outer; o++ {
		for k, raw := range ids {
			id, ok := normIndex(raw, dim)
			if !ok {
				return nil, fmt.Errorf("index %d out of range %d", raw, dim)
			}
			src := (o*dim + id) * inner
			dst := (o*len(ids) + k) * inner
			if x.DType == Float {
				copy(out.F[dst:dst+inner], x.F[src:src+inner])
			} else {
				copy(out.I[dst:dst+inner], x.I[src:src+inner])
			}
		}
	}
	return []*Tensor{out}, nil
}

// opGatherElements takes, for every index, the element of x at that
// index along the axis and the index's own position elsewhere.
func opGatherElements(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x, idx := in[0], in[1]
	if len(idx.Shape) != len(x.Shape) {
		return nil, fmt.Errorf("indices of rank %d for data of rank %d", len(idx.Shape), len(x.Shape))
	}
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return nil, err
	}
	for d := range x.Shape {
		if d != ax && idx.Shape[d] > x.Shape[d] {
			return nil, fmt.Errorf("indices %v larger than data %v off the axis", idx.Shape, x.Shape)
		}
	}
	out := out1(idx.Shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	xs, ids := strides(x.Shape), idx.Ints()
	var bad error
	gather(out, x, func(at []int) int {
		src := 0
		for d, v := range at {
			if d == ax {
				var ok bool
				flat := 0
				for e, w := range at {
					flat = flat*idx.Shape[e] + w
				}
				if v, ok = normIndex(ids[flat], x.Shape[ax]); !ok {
					bad = fmt.Errorf("index %d out of range %d", ids[flat], x.Shape[ax])
					v = 0
				}
			}
			src += v * xs[d]
		}
		return src
	})
	if bad != nil {
		return nil, bad
	}
	return []*Tensor{out}, nil
}

// topKBefore reports whether value a at index ia comes before b at ib in
// TopK's order: larger first (smaller with largest 0), NaN above every
// number, ties by the lower index. The GPU kernel (topk_f) orders the
// same way, so both engines keep the same anchors.
func topKBefore(a float32, ia int, b float32, ib int, largest bool) bool {
	an, bn := a != a, b != b
	switch {
	case an || bn:
		if an != bn {
			return an == largest
		}
	case a != b:
		return (a > b) == largest
	}
	return ia < ib
}

// topKSpec reads TopK's k (an input since opset 10) and its axis.
func topKSpec(n *Node, x *Tensor) (k, ax int, err error) {
	if ax, err = axis(n.attrInt("axis", -1), len(x.Shape)); err != nil {
		return 0, 0, err
	}
	k = n.attrInt("k", -1)
	if len(n.In) > 1 && n.In[1] != nil {
		c, err := n.constInput(1)
		if err != nil {
			return 0, 0, err
		}
		if Len(c.Shape) != 1 {
			return 0, 0, fmt.Errorf("k of shape %v, want one number", c.Shape)
		}
		k = c.Ints()[0]
	}
	if k < 0 || k > x.Shape[ax] {
		return 0, 0, fmt.Errorf("k %d for a dimension of %d", k, x.Shape[ax])
	}
	if x.Shape[ax] > maxIndexDim {
		return 0, 0, fmt.Errorf("top-k over %d elements (at most %d): %w", x.Shape[ax], maxIndexDim, ErrUnsupported)
	}
	return k, ax, nil
}

func opTopK(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	k, ax, err := topKSpec(n, x)
	if err != nil {
		return nil, err
	}
	shape := slices.Clone(x.Shape)
	shape[ax] = k
	vals, ids := out1(shape, x.DType, data), out1(shape, Int64, data)
	if !data {
		return []*Tensor{vals, ids}, nil
	}
	largest := n.attrInt("largest", 1) != 0
	outer, dim, inner := Len(x.Shape[:ax]), x.Shape[ax], Len(x.Shape[ax+1:])
	xf := x.Floats()
	order := make([]int, dim)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			at := func(j int) int { return (o*dim+j)*inner + i }
			for j := range order {
				order[j] = j
			}
			slices.SortFunc(order, func(a, b int) int {
				if topKBefore(float32(xf[at(a)]), a, float32(xf[at(b)]), b, largest) {
					return -1
				}
				return 1
			})
			for j := 0; j < k; j++ {
				dst := (o*k+j)*inner + i
				ids.I[dst] = int64(order[j])
				if x.DType == Float {
					vals.F[dst] = x.F[at(order[j])]
				} else {
					vals.I[dst] = x.I[at(order[j])]
				}
			}
		}
	}
	return []*Tensor{vals, ids}, nil
}

// opArgMax evaluates ArgMax and ArgMin: the first extreme's index along
// the axis, or the last with select_last_index.
func opArgMax(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return nil, err
	}
	if x.Shape[ax] > maxIndexDim {
		return nil, fmt.Errorf("%s over %d elements (at most %d): %w", n.Op, x.Shape[ax], maxIndexDim, ErrUnsupported)
	}
	shape := slices.Clone(x.Shape)
	shape[ax] = 1
	if n.attrInt("keepdims", 1) == 0 {
		shape = slices.Delete(shape, ax, ax+1)
	}
	out := out1(shape, Int64, data)
	if !data {
		return []*Tensor{out}, nil
	}
	code := argCode(n)
	outer, dim, inner := Len(x.Shape[:ax]), x.Shape[ax], Len(x.Shape[ax+1:])
	xf := x.Floats()
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			best, at := math.NaN(), 0
			for j := 0; j < dim; j++ {
				v := xf[(o*dim+j)*inner+i]
				if j == 0 || argBetter(code, v, best) {
					best, at = v, j
				}
			}
			out.I[o*inner+i] = int64(at)
		}
	}
	return []*Tensor{out}, nil
}

// argCode is the reduction code of ArgMax or ArgMin.
func argCode(n *Node) int {
	last := n.attrInt("select_last_index", 0) != 0
	switch {
	case n.Op == "ArgMax" && last:
		return ReduceArgMaxLast
	case n.Op == "ArgMax":
		return ReduceArgMax
	case last:
		return ReduceArgMinLast
	}
	return ReduceArgMin
}

// argBetter reports whether v replaces the best so far, best, in the
// arg-reduction code: NaN, once met, stays (as for Max); the GPU's reduce
// kernel decides the same way.
func argBetter(code int, v, best float64) bool {
	if best != best {
		return false
	}
	if v != v {
		return true
	}
	switch code {
	case ReduceArgMax:
		return v > best
	case ReduceArgMaxLast:
		return v >= best
	case ReduceArgMin:
		return v < best
	}
	return v <= best
}

// tileRepeats reads Tile's repeats.
func tileRepeats(n *Node, x *Tensor) ([]int, error) {
	c, err := n.constInput(1)
	if err != nil {
		return nil, err
	}
	if c == nil || Len(c.Shape) != len(x.Shape) {
		return nil, fmt.Errorf("repeats for each of %d dimensions wanted", len(x.Shape))
	}
	r := c.Ints()
	for _, v := range r {
		if v < 0 {
			return nil, fmt.Errorf("negative repeat in %v", r)
		}
	}
	return r, nil
}

func opTile(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	r, err := tileRepeats(n, x)
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(x.Shape))
	for i, d := range x.Shape {
		shape[i] = d * r[i]
	}
	out := out1(shape, x.DType, data)
	if data {
		xs := strides(x.Shape)
		gather(out, x, func(at []int) (src int) {
			for d, v := range at {
				src += v % x.Shape[d] * xs[d]
			}
			return src
		})
	}
	return []*Tensor{out}, nil
}

// opScatterND writes updates into a copy of data at the indices' leading
// positions (reduction none). It folds; at run time it is refused.
func opScatterND(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x, idx, up := in[0], in[1], in[2]
	if n.attrString("reduction", "none") != "none" {
		return nil, fmt.Errorf("ScatterND reduction %s: %w", n.attrString("reduction", ""), ErrUnsupported)
	}
	q := len(idx.Shape)
	if q == 0 || idx.Shape[q-1] > len(x.Shape) {
		return nil, fmt.Errorf("indices %v for data %v", idx.Shape, x.Shape)
	}
	kd := idx.Shape[q-1]
	if want := slices.Concat(idx.Shape[:q-1], x.Shape[kd:]); !slices.Equal(up.Shape, want) {
		return nil, fmt.Errorf("updates %v, want %v", up.Shape, want)
	}
	out := out1(x.Shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	copy(out.F, x.F)
	copy(out.I, x.I)
	xs, ids, uf := strides(x.Shape), idx.Ints(), up.Floats()
	inner := Len(x.Shape[kd:])
	for u := 0; u < Len(idx.Shape[:q-1]); u++ {
		dst := 0
		for d := 0; d < kd; d++ {
			v, ok := normIndex(ids[u*kd+d], x.Shape[d])
			if !ok {
				return nil, fmt.Errorf("index %d out of range %d", ids[u*kd+d], x.Shape[d])
			}
			dst += v * xs[d]
		}
		for i := 0; i < inner; i++ {
			if x.DType == Float {
				out.F[dst+i] = float32(uf[u*inner+i])
			} else {
				out.I[dst+i] = int64(uf[u*inner+i])
			}
		}
	}
	return []*Tensor{out}, nil
}

// gatherStep emits a KGather step: out (of shape) takes data through
// dataStride, which leaves the gathered axis out, and the index idx
// gives at each of out's elements (read through idxStride).
func (l *lowering) gatherStep(n *Node, data View, dataStride []int64, g GatherStep, idx View, idxStride []int64, shape []int) (View, error) {
	if g.Dim > maxIndexDim {
		return View{}, fmt.Errorf("gathering along %d elements (at most %d): %w", g.Dim, maxIndexDim, ErrUnsupported)
	}
	d, i := data, idx
	d.Shape, d.Stride = slices.Clone(shape), dataStride
	i.Shape, i.Stride = slices.Clone(shape), idxStride
	y := l.alloc(shape, F32, RowMajor)
	l.emit(Step{Kind: KGather, Node: n.Name, In: []View{d, i}, Out: y, Gather: &g})
	return y, nil
}

// gather lowers Gather of run-time data or indices.
func (l *lowering) gather(n *Node) error {
	x, idx, out := n.In[0], n.In[1], n.Out[0]
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return err
	}
	xv, err := l.get(x, RowMajor, F32)
	if err != nil {
		return err
	}
	// The data read at each output position but the index's axes.
	dataStride := slices.Concat(xv.Stride[:ax], make([]int64, len(idx.Shape)), xv.Stride[ax+1:])
	if idx.Const != nil && Len(idx.Shape) == 1 {
		// One index known now: a slice of the input.
		k, ok := normIndex(idx.Const.Ints()[0], x.Shape[ax])
		if !ok {
			return fmt.Errorf("index %d out of range %d", idx.Const.Ints()[0], x.Shape[ax])
		}
		src := xv
		src.Off += int64(k) * xv.Stride[ax]
		src.Shape = out.Shape
		src.Stride = dataStride
		y := l.alloc(out.Shape, F32, RowMajor)
		l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{src}, Out: y})
		l.set(out, y)
		return nil
	}
	iv, err := l.get(idx, RowMajor, F32)
	if err != nil {
		return err
	}
	idxStride := slices.Concat(make([]int64, ax), iv.Stride, make([]int64, len(x.Shape)-ax-1))
	y, err := l.gatherStep(n, xv, dataStride, GatherStep{Dim: x.Shape[ax], Stride: xv.Stride[ax]}, iv, idxStride, out.Shape)
	if err != nil {
		return err
	}
	l.set(out, y)
	return nil
}

// gatherElements lowers GatherElements: one gather step whose index has
// the output's shape.
func (l *lowering) gatherElements(n *Node) error {
	x, idx, out := n.In[0], n.In[1], n.Out[0]
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return err
	}
	xv, err := l.get(x, RowMajor, F32)
	if err != nil {
		return err
	}
	iv, err := l.get(idx, RowMajor, F32)
	if err != nil {
		return err
	}
	dataStride := slices.Clone(xv.Stride)
	dataStride[ax] = 0
	y, err := l.gatherStep(n, xv, dataStride, GatherStep{Dim: x.Shape[ax], Stride: xv.Stride[ax]}, iv, iv.Stride, out.Shape)
	if err != nil {
		return err
	}
	l.set(out, y)
	return nil
}

// topK lowers TopK as a step that orders indices, then a gather of the
// values at them (so values and indices agree by construction).
func (l *lowering) topK(n *Node) error {
	x := n.In[0]
	k, ax, err := topKSpec(n, &Tensor{Shape: x.Shape})
	if err != nil {
		return err
	}
	xv, err := l.get(x, RowMajor, F32)
	if err != nil {
		return err
	}
	if !packedRows(xv) {
		return fmt.Errorf("top-k of a strided view: %w", ErrUnsupported)
	}
	shape := slices.Clone(x.Shape)
	shape[ax] = k
	ids := l.alloc(shape, F32, RowMajor)
	code := 0
	if n.attrInt("largest", 1) != 0 {
		code = 1
	}
	l.emit(Step{Kind: KTopK, Node: n.Name, In: []View{xv}, Out: ids, Code: code,
		Outer: Len(x.Shape[:ax]), Dim: x.Shape[ax], Inner: Len(x.Shape[ax+1:])})
	if len(n.Out) > 1 && n.Out[1] != nil {
		l.set(n.Out[1], ids)
	}
	dataStride := slices.Clone(xv.Stride)
	dataStride[ax] = 0
	vals, err := l.gatherStep(n, xv, dataStride, GatherStep{Dim: x.Shape[ax], Stride: xv.Stride[ax]}, ids, ids.Stride, shape)
	if err != nil {
		return err
	}
	l.set(n.Out[0], vals)
	return nil
}

// packedRows reports whether v is a packed row-major tensor.
func packedRows(v View) bool {
	want := int64(1)
	for d := len(v.Shape) - 1; d >= 0; d-- {
		if v.Shape[d] != 1 && v.Stride[d] != want {
			return false
		}
		want *= int64(v.Shape[d])
	}
	return true
}

// argMax lowers ArgMax and ArgMin as reductions that keep the index.
func (l *lowering) argMax(n *Node) error {
	x := n.In[0]
	ax, err := axis(n.attrInt("axis", 0), len(x.Shape))
	if err != nil {
		return err
	}
	xv, err := l.get(x, RowMajor, F32)
	if err != nil {
		return err
	}
	if !packedRows(xv) {
		return fmt.Errorf("%s of a strided view: %w", n.Op, ErrUnsupported)
	}
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	l.emit(Step{Kind: KReduce, Node: n.Name, In: []View{xv}, Out: y, Code: argCode(n),
		Outer: Len(x.Shape[:ax]), Dim: x.Shape[ax], Inner: Len(x.Shape[ax+1:])})
	l.set(n.Out[0], y)
	return nil
}

// tile lowers Tile as one copy: the output seen as [r0, d0, r1, d1, …]
// reads the input with stride 0 along each repeat.
func (l *lowering) tile(n *Node) error {
	x, out := n.In[0], n.Out[0]
	r, err := tileRepeats(n, &Tensor{Shape: x.Shape})
	if err != nil {
		return err
	}
	xv, err := l.get(x, RowMajor, F32)
	if err != nil {
		return err
	}
	y := l.alloc(out.Shape, F32, RowMajor)
	var shape []int
	var src, dst []int64
	ys := y.Stride
	for d, v := range x.Shape {
		shape = append(shape, r[d], v)
		src = append(src, 0, xv.Stride[d])
		dst = append(dst, ys[d]*int64(v), ys[d])
	}
	s := xv
	s.Shape, s.Stride = shape, src
	o := y
	o.Shape, o.Stride = shape, dst
	l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{s}, Out: o})
	l.set(out, y)
	return nil
}
