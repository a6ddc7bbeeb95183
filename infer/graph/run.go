package graph

import (
	"fmt"
	"math"
	"slices"
)

// Run executes the graph on the CPU in fp32, fused nodes included: the
// reference the GPU engine is checked against, and the proof that the
// compiler's passes keep the model's meaning. It is slow; it is not an
// engine.
func (g *Graph) Run(input *Tensor) ([]*Tensor, error) {
	if !slices.Equal(input.Shape, g.Input.Shape) {
		return nil, fmt.Errorf("input %v, graph specialised for %v", input.Shape, g.Input.Shape)
	}
	env := map[*Value]*Tensor{g.Input: input}
	get := func(v *Value) (*Tensor, error) {
		if v == nil {
			return nil, nil
		}
		if v.Const != nil {
			return v.Const, nil
		}
		t, ok := env[v]
		if !ok {
			return nil, fmt.Errorf("%s is read before it is computed", v.Name)
		}
		return t, nil
	}
	for _, n := range g.Nodes {
		args := make([]*Tensor, len(n.In))
		for i, v := range n.In {
			t, err := get(v)
			if err != nil {
				return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
			}
			args[i] = t
		}
		outs, err := operators[n.Op].eval(n, args, true)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
		}
		if n.Act != ActNone || n.Residual != nil || n.PostAct != ActNone {
			res, err := get(n.Residual)
			if err != nil {
				return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.Op, err)
			}
			epilogue(outs[0].F, n.Act, n.Alpha, res, n.PostAct)
		}
		for i, v := range n.Out {
			env[v] = outs[i]
		}
	}
	out := make([]*Tensor, len(g.Outputs))
	for i, o := range g.Outputs {
		t, err := get(o)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// epilogue applies a fused activation, adds the residual, then applies
// the activation after it.
func epilogue(y []float32, act Act, alpha float32, res *Tensor, post Act) {
	for i, v := range y {
		v = act.apply(v, alpha)
		if res != nil {
			v += res.F[i]
		}
		y[i] = post.apply(v, alpha)
	}
}

// apply computes the activation a of v (alpha: LeakyReLU's slope).
func (a Act) apply(v, alpha float32) float32 {
	switch a {
	case ActReLU:
		return max(v, 0)
	case ActSiLU:
		return float32(float64(v) / (1 + math.Exp(-float64(v))))
	case ActLeakyReLU:
		if v < 0 {
			return v * alpha
		}
	case ActSigmoid:
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	return v
}
