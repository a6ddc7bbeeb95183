package graph

import "slices"

// Views through the operators that move no data. Exporters write attention
// blocks as a dozen Reshape, Transpose and Split nodes between a
// convolution and the attention, and as many again back to the next
// convolution; lowered one by one, each is a copy of the whole tensor in
// fp32 (YOLO12's took more time than its attention). A reader that takes
// any strides instead reads the convolution's output through one composed
// view (compose), and the attention writes straight into the next
// convolution's input (placeAttention); the copies nobody reads then go
// (removeDead).

// viewOp reports whether op's outputs are its input seen through other
// strides.
func viewOp(op string) bool {
	switch op {
	case "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Split", "Slice", "Identity":
		return true
	}
	return false
}

// compose returns a view of v through the view operators that produced
// it, from the first value up the chain that another operator computed
// (its NHWC form preferred). Where strides cannot express a step, the
// view so far is packed by one copy first. It reports false when v is not
// a float tensor computed at run time.
func (l *lowering) compose(v *Value) (View, bool) {
	if w, ok := l.composed[v]; ok {
		return w, true // one pack copy a value, however many read it
	}
	w, ok := l.composeOnce(v)
	if ok {
		l.composed[v] = w
	}
	return w, ok
}

func (l *lowering) composeOnce(v *Value) (View, bool) {
	if v == nil || v.Const != nil || v.DType != Float {
		return View{}, false
	}
	n := v.Producer
	if n == nil || !viewOp(n.Op) || n.In[0].Const != nil {
		if w, ok := l.have[v][NHWC]; ok {
			return w, true
		}
		w, ok := l.have[v][RowMajor]
		return w, ok
	}
	w, ok := l.compose(n.In[0])
	if !ok {
		return View{}, false
	}
	if out, ok := l.through(n, v, w); ok {
		return out, true
	}
	// Pack what strides could not follow, then go on from the packed copy.
	y := l.alloc(w.Shape, w.Elem, RowMajor)
	l.emit(Step{Kind: KCopy, Node: "pack " + n.In[0].Name, In: []View{w}, Out: y})
	return l.through(n, v, y)
}

// through returns w, a view of n's input, as n's output v.
func (l *lowering) through(n *Node, v *Value, w View) (View, bool) {
	out := w
	out.Layout = RowMajor
	switch n.Op {
	case "Identity":
		out.Shape, out.Stride = slices.Clone(w.Shape), slices.Clone(w.Stride)
	case "Transpose":
		perm := n.attrInts("perm", nil)
		r := len(w.Shape)
		if perm == nil {
			for i := r - 1; i >= 0; i-- {
				perm = append(perm, i)
			}
		}
		if len(perm) != r {
			return View{}, false
		}
		out.Shape, out.Stride = make([]int, r), make([]int64, r)
		for i, p := range perm {
			out.Shape[i], out.Stride[i] = w.Shape[p], w.Stride[p]
		}
	case "Reshape", "Flatten", "Squeeze", "Unsqueeze":
		var ok bool
		if out, ok = reshapeView(w, v.Shape); !ok {
			return View{}, false
		}
		out.Layout = RowMajor
	case "Split":
		k := slices.Index(n.Out, v)
		ax, err := axis(n.attrInt("axis", 0), len(w.Shape))
		if k < 0 || err != nil {
			return View{}, false
		}
		off := 0
		for _, o := range n.Out[:k] {
			off += o.Shape[ax]
		}
		out.Shape, out.Stride = slices.Clone(v.Shape), slices.Clone(w.Stride)
		out.Off += int64(off) * w.Stride[ax]
	case "Slice":
		args := []*Tensor{{Shape: n.In[0].Shape}}
		for _, a := range n.In[1:] {
			if a != nil && a.Const == nil {
				return View{}, false
			}
			if a == nil {
				args = append(args, nil)
			} else {
				args = append(args, a.Const)
			}
		}
		begin, step, shape, err := sliceOf(n, args)
		if err != nil || slices.ContainsFunc(step, func(s int) bool { return s < 0 }) {
			return View{}, false
		}
		out.Shape, out.Stride = shape, make([]int64, len(shape))
		for i := range shape {
			out.Off += int64(begin[i]) * w.Stride[i]
			out.Stride[i] = int64(step[i]) * w.Stride[i]
		}
	default:
		return View{}, false
	}
	if !slices.Equal(out.Shape, v.Shape) {
		return View{}, false
	}
	return out, true
}

// placeAttention chooses where attention node n writes its output: when
// the output reaches, through view operators each read once, a 4-D value
// that only convolutions read (as input or fused residual), into that value's NHWC fp16 tensor through
// the inverse views (the chain's nodes are then not lowered). Else a
// packed row-major fp32 tensor.
func (l *lowering) placeAttention(n *Node) View {
	out := n.Out[0]
	packed := func() View { return l.alloc(out.Shape, F32, RowMajor) }
	readers := l.readers()
	var chain []*Node
	end := out
	for {
		rs := readers[end]
		if slices.Contains(l.g.Outputs, end) || len(rs) != 1 || !viewOp(rs[0].Op) || rs[0].Op == "Split" || rs[0].Op == "Slice" || len(rs[0].Out) != 1 {
			break
		}
		chain = append(chain, rs[0])
		end = rs[0].Out[0]
	}
	rs := readers[end]
	if len(chain) == 0 || len(end.Shape) != 4 || len(rs) == 0 || slices.Contains(l.g.Outputs, end) {
		return packed()
	}
	for _, r := range rs {
		if r.Op != "Conv" || !slices.Contains(r.In[:1], end) && r.Residual != end {
			return packed()
		}
	}
	if _, sunk := l.sink[end]; sunk {
		return packed()
	}
	e := l.alloc(end.Shape, F16, NHWC)
	w := e
	w.Layout = RowMajor
	for i := len(chain) - 1; i >= 0; i-- {
		c := chain[i]
		in := c.In[0]
		switch c.Op {
		case "Transpose":
			perm := c.attrInts("perm", nil)
			r := len(w.Shape)
			if perm == nil {
				for j := r - 1; j >= 0; j-- {
					perm = append(perm, j)
				}
			}
			if len(perm) != r {
				return packed()
			}
			shape, stride := make([]int, r), make([]int64, r)
			for j, p := range perm {
				shape[p], stride[p] = w.Shape[j], w.Stride[j]
			}
			w.Shape, w.Stride = shape, stride
		case "Identity":
		default: // Reshape, Flatten, Squeeze, Unsqueeze
			var ok bool
			if w, ok = reshapeView(w, in.Shape); !ok {
				return packed()
			}
		}
		if !slices.Equal(w.Shape, in.Shape) {
			return packed()
		}
	}
	for _, c := range chain {
		l.skip[c] = true
	}
	l.set(end, e)
	return w
}

// readers lists each value's reading nodes, worked out once.
func (l *lowering) readers() map[*Value][]*Node {
	if l.readBy == nil {
		l.readBy = l.g.readers()
	}
	return l.readBy
}

// removeDead drops the steps whose every written buffer no later step
// reads and no output is: the copies a composed view made unnecessary.
func (l *lowering) removeDead() {
	p := l.p
	for {
		read := map[int]bool{}
		for _, o := range p.Outputs {
			read[o.Buf] = true
		}
		for _, s := range p.Steps {
			for _, v := range s.In {
				read[v.Buf] = true
			}
			if s.Conv != nil && s.Conv.Residual != nil {
				read[s.Conv.Residual.Buf] = true
			}
		}
		kept := p.Steps[:0]
		for _, s := range p.Steps {
			if read[s.Out.Buf] || p.Bufs[s.Out.Buf].Space != SpaceArena {
				kept = append(kept, s)
			}
		}
		if len(kept) == len(p.Steps) {
			p.Steps = kept
			l.lifetimes()
			return
		}
		p.Steps = kept
	}
}
