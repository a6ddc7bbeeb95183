package graph

import (
	"fmt"
	"slices"
)

// padOf reads a Pad node's geometry for input shape: the pads before and
// after each axis and the constant written there. Pads come from the
// attribute (opset 2 to 10) or the second input (11 on), which the
// compiler must know (shapes are known, so exporters' computed pads fold);
// the value from the attribute or the third input; opset 18's axes from
// the fourth. Only the constant mode and padding (no negative pads, which
// crop) are supported.
func padOf(n *Node, shape []int, in []*Tensor) (before, after []int, value float32, err error) {
	if m := n.attrString("mode", "constant"); m != "constant" {
		return nil, nil, 0, fmt.Errorf("Pad mode %q: %w", m, ErrUnsupported)
	}
	r := len(shape)
	pads := n.attrInts("pads", nil)
	value = n.attrFloat("value", 0)
	if len(in) > 1 && in[1] != nil {
		pads = in[1].Ints()
	}
	if len(in) > 2 && in[2] != nil {
		v := in[2].Floats()
		if len(v) != 1 {
			return nil, nil, 0, fmt.Errorf("Pad constant_value of %d values", len(v))
		}
		value = float32(v[0])
	}
	axes := make([]int, 0, r)
	if len(in) > 3 && in[3] != nil {
		for _, a := range in[3].Ints() {
			a, err := axis(a, r)
			if err != nil {
				return nil, nil, 0, err
			}
			axes = append(axes, a)
		}
	} else {
		for a := range r {
			axes = append(axes, a)
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, nil, 0, fmt.Errorf("Pad of %d pads for %d axes", len(pads), len(axes))
	}
	before, after = make([]int, r), make([]int, r)
	for i, a := range axes {
		b, e := pads[i], pads[len(axes)+i]
		if b < 0 || e < 0 {
			return nil, nil, 0, fmt.Errorf("Pad of negative pads %v (a crop): %w", pads, ErrUnsupported)
		}
		before[a], after[a] = b, e
	}
	return before, after, value, nil
}

// opPad is Pad in constant mode.
func opPad(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	before, after, value, err := padOf(n, x.Shape, in)
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(x.Shape))
	for i, d := range x.Shape {
		shape[i] = d + before[i] + after[i]
	}
	out := out1(shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	xs := strides(x.Shape)
	eachIndex(shape, func(o int, idx []int) {
		src := 0
		for i, v := range idx {
			v -= before[i]
			if v < 0 || v >= x.Shape[i] {
				src = -1
				break
			}
			src += v * xs[i]
		}
		switch {
		case x.DType == Float && src < 0:
			out.F[o] = value
		case x.DType == Float:
			out.F[o] = x.F[src]
		case src < 0:
			out.I[o] = int64(value)
		default:
			out.I[o] = x.I[src]
		}
	})
	return []*Tensor{out}, nil
}

// pad lowers Pad: the input copied inside the output (NHWC where the
// input is held so, else row-major fp32), and the constant
// (one value, broadcast) copied into each slab round it: for each axis,
// the pads before and after it across the axes after it and within the
// input along the axes before it, so that no element is written twice.
func (l *lowering) pad(n *Node) error {
	x, err := l.any(n.In[0], RowMajor)
	if w, ok := l.have[n.In[0]][NHWC]; ok {
		x, err = w, nil
	}
	if err != nil {
		return err
	}
	args := []*Tensor{{Shape: n.In[0].Shape}}
	for _, v := range n.In[1:] {
		if v == nil {
			args = append(args, nil)
			continue
		}
		if v.Const == nil {
			return fmt.Errorf("Pad input %s must be known at compile time: %w", v.Name, ErrUnsupported)
		}
		args = append(args, v.Const)
	}
	shape := n.In[0].Shape
	before, after, value, err := padOf(n, shape, args)
	if err != nil {
		return err
	}
	// A map held in NHWC (a stem's, HGNetv2's) stays NHWC fp16 for the
	// convolution after it: row-major fp32 would cost a conversion there
	// and back (4.9 of D-FINE's 56 ms a batch on an H200).
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	if x.Layout == NHWC {
		y = l.alloc(n.Out[0].Shape, x.Elem, NHWC)
	}
	dst := y
	dst.Shape = shape
	for i, b := range before {
		dst.Off += int64(b) * y.Stride[i]
	}
	l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{x}, Out: dst})
	c := l.newBuf(SpaceConst, 4)
	l.p.Bufs[c].Data = make([]byte, 4)
	putF32(l.p.Bufs[c].Data, value)
	for i := range shape {
		for side, p := range []int{before[i], after[i]} {
			if p == 0 {
				continue
			}
			slab := y
			slab.Shape = slices.Clone(y.Shape)
			for j := 0; j < i; j++ {
				slab.Shape[j] = shape[j]
				slab.Off += int64(before[j]) * y.Stride[j]
			}
			slab.Shape[i] = p
			if side == 1 {
				slab.Off += int64(before[i]+shape[i]) * y.Stride[i]
			}
			l.emit(Step{Kind: KCopy, Node: n.Name + " (padding)", In: []View{{Buf: c, Shape: slab.Shape, Stride: make([]int64, len(shape)), Elem: F32}}, Out: slab})
		}
	}
	l.set(n.Out[0], y)
	return nil
}
