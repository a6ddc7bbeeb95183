package graph

import (
	"fmt"
	"slices"
)

// A rebatcher runs a model exported at batch 1 (`yolo export`'s default,
// and most ONNX files in the wild) at a batch of n. Exporters bake the
// batch into constants, a Reshape to [1, 84, -1] for one; the rebatcher
// rewrites a constant's leading 1 where the tensor it shapes provably
// carries the batch on its first axis, and proves, node by node, that
// every run-time tensor keeps image i at index i of its first axis and
// that no node mixes images: then each image of the batch is computed as
// the batch-1 graph computes it. A node it cannot prove that of is an
// error naming it.
//
// The proof has two halves. The graph is first specialised at batch 1,
// and every run-time tensor at batch n must have that shape with its
// leading 1 become n: the first axis was the batch's all along. And each
// node must be one that treats index i of that axis on its own (check).
type rebatcher struct {
	n       int
	batched map[*Value]bool   // run-time values whose first axis is the batch
	ref     map[string]*Value // the values at batch 1, by name
}

func newRebatcher(input *Value, n int, ref map[string]*Value) *rebatcher {
	return &rebatcher{n: n, batched: map[*Value]bool{input: true}, ref: ref}
}

// prepare rewrites the constant inputs of n that baked batch 1 into the
// shape of a batched tensor, before n's outputs are worked out.
func (r *rebatcher) prepare(n *Node, args []*Tensor) {
	at := -1
	switch {
	case n.Op == "Reshape" && len(n.In) > 1:
		at = 1
	case n.Op == "Resize" && len(n.In) > 3:
		at = 3 // sizes
	}
	if at < 0 || !r.batched[n.In[0]] || n.In[at] == nil || n.In[at].Const == nil || args[0].Shape[0] != r.n {
		return
	}
	c := n.In[at].Const
	v := c.Ints()
	if len(v) == 0 || v[0] != 1 {
		return
	}
	t := NewInt(c.Shape...)
	copy(t.I, c.I)
	if c.DType == Float {
		t = NewFloat(c.Shape...)
		copy(t.F, c.F)
		t.F[0] = float32(r.n)
	} else {
		t.I[0] = int64(r.n)
	}
	n.In[at] = &Value{Name: n.In[at].Name + "/rebatched", Const: t, Shape: t.Shape, DType: t.DType}
	args[at] = t
}

// check proves that n, whose outputs are outs, keeps the batch on the
// first axis of each output without mixing images, and marks the outputs.
func (r *rebatcher) check(n *Node, args []*Tensor, outs []*Tensor) error {
	refuse := func(why string) error {
		return fmt.Errorf("%s: cannot run this batch-1 export at batch %d; export it with a dynamic batch, or give --batch 1", why, r.n)
	}
	for i, v := range n.In {
		if v != nil && v.Const == nil && !r.batched[v] {
			return refuse(fmt.Sprintf("input %d (%s) lost the batch axis", i, v.Name))
		}
	}
	rank := len(args[0].Shape)
	axisIs0 := func(a int) bool {
		ax, err := axis(a, rank)
		return err != nil || ax == 0
	}
	constAxes := func(i int, attr string) ([]int, bool) {
		if t, err := n.constInput(i); err == nil && t != nil {
			return t.Ints(), true
		}
		if a := n.attrInts(attr, nil); a != nil {
			return a, true
		}
		return nil, false
	}
	switch n.Op {
	case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Equal", "Less", "Greater":
		// Batched operands align their first axis with the output's; a
		// constant operand broadcasts over the batch only if its first
		// axis (aligned from the right) is 1 or absent.
		for i, v := range n.In {
			switch {
			case v == nil:
			case v.Const == nil && len(args[i].Shape) != len(outs[0].Shape):
				return refuse(fmt.Sprintf("operand %s of shape %v is broadcast across the batch", v.Name, args[i].Shape))
			case v.Const != nil && len(args[i].Shape) == len(outs[0].Shape) && args[i].Shape[0] != 1:
				return refuse(fmt.Sprintf("constant operand %s of shape %v spans the batch axis", v.Name, args[i].Shape))
			}
		}
	case "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Sigmoid", "Relu", "LeakyRelu", "Identity",
		"Cast", "Exp", "Log", "Sqrt", "Tanh", "Erf", "Neg", "Abs", "HardSigmoid", "HardSwish", "Clip", "Softplus", "Gelu",
		"Expand", "Resize", "Upsample", "Pad", "Slice", "ConvTranspose", "DepthToSpace", "BatchNormalization", "InstanceNormalization":
		// Per image by definition, once the first axis is the batch's
		// size (Resize, Pad, Slice and Expand could touch the batch axis:
		// at batch n with an output of n rows they leave it whole, and
		// Slice's steps on it are checked below).
		if n.Op == "Slice" {
			axes, ok := constAxes(3, "axes")
			steps, _ := constAxes(4, "")
			for k, a := range axes {
				if !axisIs0(a) {
					continue
				}
				if k < len(steps) && steps[k] != 1 {
					return refuse("a slice steps along the batch axis")
				}
			}
			if !ok && len(steps) > 0 && steps[0] != 1 {
				return refuse("a slice steps along the batch axis")
			}
		}
	case "Softmax", "LogSoftmax", "Flatten", "Concat", "Split", "Gather", "GatherElements", "ArgMax", "ArgMin", "TopK", "CumSum", "LayerNormalization":
		a := n.attrInt("axis", map[string]int{"Softmax": -1, "LogSoftmax": -1, "Flatten": 1, "TopK": -1, "LayerNormalization": -1}[n.Op])
		if n.Op == "Gather" && !r.batched[n.In[0]] {
			return refuse("a gather indexes with the batch")
		}
		if axisIs0(a) {
			return refuse(fmt.Sprintf("axis %d is the batch axis", a))
		}
	case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2":
		axes, ok := constAxes(1, "axes")
		if !ok || len(axes) == 0 {
			return refuse("a reduction over every axis mixes the images")
		}
		for _, a := range axes {
			if axisIs0(a) {
				return refuse("a reduction over the batch axis")
			}
		}
	case "Unsqueeze", "Squeeze":
		axes, _ := constAxes(1, "axes")
		if n.Op == "Squeeze" && len(axes) == 0 {
			return refuse("a squeeze of every unit axis")
		}
		for _, a := range axes {
			out := len(outs[0].Shape)
			if n.Op == "Squeeze" {
				out = rank
			}
			if ax, err := axis(a, out); err != nil || ax == 0 {
				return refuse("the batch axis moves")
			}
		}
	case "Transpose":
		if perm := n.attrInts("perm", nil); len(perm) == 0 || perm[0] != 0 {
			return refuse("a transpose moves the batch axis")
		}
	case "Reshape":
		// Row-major: with n rows before and after, each image's block of
		// values stays its own.
		if args[0].Shape[0] != r.n {
			return refuse("a reshape of a tensor without the batch in front")
		}
	case "MatMul":
		// The batched operand must carry the batch as a batch axis of its
		// own (rank 3 or more), or be the left one (rows per image).
		for i, v := range n.In[:2] {
			if r.batched[v] && len(args[i].Shape) < 3 && i == 1 {
				return refuse("the right operand of a matrix product is batched")
			}
		}
	default:
		return refuse("no proof that it keeps images apart")
	}
	for i, o := range outs {
		if len(o.Shape) == 0 || o.Shape[0] != r.n {
			return refuse(fmt.Sprintf("output of shape %v has not the batch in front", o.Shape))
		}
		one := r.ref[n.Out[i].Name]
		if one == nil || len(one.Shape) != len(o.Shape) || one.Shape[0] != 1 || !slices.Equal(one.Shape[1:], o.Shape[1:]) {
			var was []int
			if one != nil {
				was = one.Shape
			}
			return refuse(fmt.Sprintf("output of shape %v at batch 1 is %v at batch %d", was, o.Shape, r.n))
		}
	}
	for _, v := range n.Out {
		r.batched[v] = true
	}
	return nil
}
