package graph

import (
	"errors"
	"fmt"
	"slices"
)

// Specialize fixes the input to [batch, C, h, w] (dimensions the model
// leaves dynamic take these values; fixed ones must agree), infers the
// shape of every tensor, folds every node whose inputs are known at
// compile time into a constant, and removes nodes nothing uses. What is
// left runs on the device. An operator the engine does not know is an
// error naming the node. Call it once, on a freshly loaded graph.
//
// A graph exported at batch 1 runs at a larger batch where that is
// provably safe (see rebatcher); Rebatched then says so.
func (g *Graph) Specialize(batch, h, w int) error {
	in := g.Input
	if len(in.Shape) != 4 {
		return fmt.Errorf("input %s has rank %d, want [N,C,H,W]", in.Name, len(in.Shape))
	}
	var rb *rebatcher
	if in.Shape[0] == 1 && batch > 1 {
		ref := g.clone()
		if err := ref.specialize(1, h, w, nil); err != nil {
			return err
		}
		rb = newRebatcher(in, batch, ref.values)
		in.Shape[0] = batch
		g.Rebatched = true
	}
	return g.specialize(batch, h, w, rb)
}

// clone copies the graph's nodes and values (tensors and attributes are
// shared: specialising replaces them and never writes into them).
func (g *Graph) clone() *Graph {
	c := &Graph{values: make(map[string]*Value, len(g.values))}
	vals := map[*Value]*Value{}
	cp := func(v *Value) *Value {
		if v == nil {
			return nil
		}
		if w, ok := vals[v]; ok {
			return w
		}
		w := *v
		w.Shape = append([]int(nil), v.Shape...)
		vals[v] = &w
		c.values[w.Name] = &w
		return &w
	}
	for _, n := range g.Nodes {
		m := *n
		m.In, m.Out = make([]*Value, len(n.In)), make([]*Value, len(n.Out))
		for i, v := range n.In {
			m.In[i] = cp(v)
		}
		for i, v := range n.Out {
			m.Out[i] = cp(v)
			m.Out[i].Producer = &m
		}
		m.Residual = cp(n.Residual)
		c.Nodes = append(c.Nodes, &m)
	}
	c.Input = cp(g.Input)
	for _, o := range g.Outputs {
		c.Outputs = append(c.Outputs, cp(o))
	}
	for _, v := range g.values {
		cp(v)
	}
	return c
}

func (g *Graph) specialize(batch, h, w int, rb *rebatcher) error {
	in := g.Input
	want := []int{batch, in.Shape[1], h, w}
	shape := make([]int, 4)
	for i, d := range in.Shape {
		if d > 0 && want[i] > 0 && d != want[i] {
			return fmt.Errorf("input %s is fixed at %v: cannot run it at %v", in.Name, in.Shape, want)
		}
		shape[i] = max(d, want[i])
	}
	if shape[1] <= 0 {
		return fmt.Errorf("input %s has no channel count", in.Name)
	}
	in.Shape = shape
	var kept []*Node
	folded := 0 // numbers folded so far
	nodes := g.Nodes
	for i := 0; i < len(nodes); i++ {
		n := nodes[i]
		if n.Op == "ConvTranspose" {
			// Expanded into operators the engine runs, now that its
			// input's shape is known; they are specialised next.
			repl, err := g.expandConvTranspose(n)
			if err != nil {
				return fmt.Errorf("node %q (ConvTranspose): %w", n.Name, err)
			}
			nodes = append(nodes[:i:i], append(repl, nodes[i+1:]...)...)
			i--
			continue
		}
		if n.Op == "Constant" {
			t, err := constantValue(n)
			if err != nil {
				return fmt.Errorf("node %q (Constant): %w", n.Name, err)
			}
			n.Out[0].Const, n.Out[0].Shape, n.Out[0].DType = t, t.Shape, t.DType
			continue
		}
		op, ok := operators[n.Op]
		fn := op.eval
		if !ok {
			return fmt.Errorf("node %q: operator %s %w", n.Name, n.Op, ErrUnsupported)
		}
		args := make([]*Tensor, len(n.In))
		folds := true
		for i, v := range n.In {
			if v == nil {
				continue
			}
			if v.Shape == nil && v.Const == nil {
				return fmt.Errorf("node %q (%s): input %s has no known shape", n.Name, n.Op, v.Name)
			}
			if v.Const != nil {
				args[i] = v.Const
			} else {
				args[i] = &Tensor{DType: v.DType, Shape: v.Shape}
				if !(n.Op == "Shape" && i == 0) {
					folds = false
				}
			}
		}
		if folds {
			if err := checkFold(fn, n, args); err != nil {
				return fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
			}
		}
		if rb != nil && !folds {
			rb.prepare(n, args)
		}
		outs, err := apply(fn, n, args, folds)
		if err != nil {
			return fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
		}
		if rb != nil && !folds {
			if err := rb.check(n, args, outs); err != nil {
				return fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
			}
		}
		for _, o := range outs {
			if err := checkShape(o.Shape, maxElems); err != nil {
				return fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
			}
			if folds {
				if folded += Len(o.Shape); folded > maxFolded {
					return fmt.Errorf("node %q (%s): the model folds more than %d numbers at compile time", n.Name, n.Op, maxFolded)
				}
			}
		}
		if len(outs) < len(n.Out) {
			return fmt.Errorf("node %q (%s): %d outputs, want %d", n.Name, n.Op, len(outs), len(n.Out))
		}
		for i, v := range n.Out {
			v.Shape, v.DType = outs[i].Shape, outs[i].DType
			if folds {
				v.Const, v.Producer = outs[i], nil
			}
		}
		if !folds {
			kept = append(kept, n)
		}
	}
	g.Nodes = kept
	g.dropIdentities()
	for _, o := range g.Outputs {
		if o.Const != nil {
			return fmt.Errorf("output %s does not depend on the input", o.Name)
		}
		if rb != nil && !rb.batched[o] {
			return fmt.Errorf("output %s of shape %v: cannot run this batch-1 export at batch %d; export it with a dynamic batch, or give --batch 1", o.Name, o.Shape, batch)
		}
	}
	g.prune()
	return nil
}

// constantValue reads a Constant node's value.
func constantValue(n *Node) (*Tensor, error) {
	if a, ok := n.Attr["value"]; ok {
		return tensorFromProto(a.GetT())
	}
	if a, ok := n.Attr["value_float"]; ok {
		return &Tensor{DType: Float, Shape: []int{}, F: []float32{a.GetF()}}, nil
	}
	if a, ok := n.Attr["value_int"]; ok {
		return &Tensor{DType: Int64, Shape: []int{}, I: []int64{a.GetI()}}, nil
	}
	if a, ok := n.Attr["value_ints"]; ok {
		t := NewInt(len(a.GetInts()))
		copy(t.I, a.GetInts())
		return t, nil
	}
	if a, ok := n.Attr["value_floats"]; ok {
		t := NewFloat(len(a.GetFloats()))
		copy(t.F, a.GetFloats())
		return t, nil
	}
	return nil, fmt.Errorf("no value: %w", ErrUnsupported)
}

// readers lists the nodes reading each value (a fused residual included),
// each node once.
func (g *Graph) readers() map[*Value][]*Node {
	r := map[*Value][]*Node{}
	add := func(v *Value, n *Node) {
		if v != nil && !slices.Contains(r[v], n) {
			r[v] = append(r[v], n)
		}
	}
	for _, n := range g.Nodes {
		for _, v := range n.In {
			add(v, n)
		}
		add(n.Residual, n)
	}
	return r
}

// uses counts the nodes reading each value, graph outputs counting once.
func (g *Graph) uses() map[*Value]int {
	u := map[*Value]int{}
	for _, n := range g.Nodes {
		for _, v := range n.In {
			if v != nil {
				u[v]++
			}
		}
		if n.Residual != nil {
			u[n.Residual]++
		}
	}
	for _, o := range g.Outputs {
		u[o]++
	}
	return u
}

// prune removes nodes whose outputs nothing reads.
func (g *Graph) prune() {
	for {
		u := g.uses()
		var kept []*Node
		for _, n := range g.Nodes {
			used := false
			for _, v := range n.Out {
				if u[v] > 0 {
					used = true
				}
			}
			if used {
				kept = append(kept, n)
			}
		}
		if len(kept) == len(g.Nodes) {
			return
		}
		g.Nodes = kept
	}
}

// dropIdentities makes readers of an Identity read its input instead.
func (g *Graph) dropIdentities() {
	alias := map[*Value]*Value{}
	var kept []*Node
	for _, n := range g.Nodes {
		if n.Op == "Identity" && n.In[0] != g.Input {
			alias[n.Out[0]] = n.In[0]
			continue
		}
		kept = append(kept, n)
	}
	resolve := func(v *Value) *Value {
		for alias[v] != nil {
			v = alias[v]
		}
		return v
	}
	for _, n := range kept {
		for i, v := range n.In {
			if v != nil {
				n.In[i] = resolve(v)
			}
		}
	}
	for i, o := range g.Outputs {
		g.Outputs[i] = resolve(o)
	}
	g.Nodes = kept
}

// apply runs an operator on the model's own numbers. The operators check
// what a well-formed model can get wrong; a malformed file that slips past
// them becomes an error here, never a crash of the run.
func apply(fn opFunc, n *Node, args []*Tensor, data bool) (outs []*Tensor, err error) {
	for _, a := range args {
		if a != nil {
			if err := checkShape(a.Shape, maxElems); err != nil {
				return nil, err
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok && errors.Is(e, ErrTooLarge) {
				outs, err = nil, e
				return
			}
			outs, err = nil, fmt.Errorf("malformed model: %v", r)
		}
	}()
	return fn(n, args, data)
}

// checkFold refuses to fold an operator whose multiply-adds exceed
// maxFolded; the outputs' own sizes are bounded by out1. Only operators
// that do more than a few operations per output are counted.
func checkFold(fn opFunc, n *Node, args []*Tensor) error {
	switch n.Op {
	case "Conv", "MatMul", "MaxPool":
	default:
		return nil
	}
	outs, err := apply(fn, n, args, false) // shapes only; checks the operands' ranks
	if err != nil {
		return err
	}
	var per int // multiply-adds per output
	switch n.Op {
	case "Conv":
		per = Len(args[1].Shape[1:])
	case "MatMul":
		per = args[0].Shape[len(args[0].Shape)-1]
	case "MaxPool":
		k := n.attrInts("kernel_shape", nil)
		if checkShape(k, maxFolded) != nil {
			return fmt.Errorf("pooling kernel %v is too large", k)
		}
		per = Len(k)
	}
	if out := Len(outs[0].Shape); per > 0 && out > maxFolded/per {
		return fmt.Errorf("folding it at compile time would take %d×%d multiply-adds (at most %d)", out, per, maxFolded)
	}
	return nil
}
