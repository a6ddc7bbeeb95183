package graph

import (
	"fmt"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// expandLayerNorms rewrites each LayerNormalization (opset 17) into the
// operators it is defined by, which the engine already runs: a mean over
// the normalised axes, the centred values, their mean square, plus
// epsilon, its square root, the division, then scale and bias. Only the
// normalised output may be read (not Mean or InvStdDev), and the axis
// must count from the end (axis < 0, as exporters write -1), since ranks
// are not known yet.
func (g *Graph) expandLayerNorms() error {
	var nodes []*Node
	for _, n := range g.Nodes {
		if n.Op != "LayerNormalization" {
			nodes = append(nodes, n)
			continue
		}
		for _, o := range n.Out[1:] {
			if o.Name != "" && g.read(o) {
				return fmt.Errorf("node %q: LayerNormalization's %s output: %w", n.Name, o.Name, ErrUnsupported)
			}
		}
		ax := n.attrInt("axis", -1)
		if ax >= 0 {
			return fmt.Errorf("node %q: LayerNormalization axis %d (from the start; exporters write -1): %w", n.Name, ax, ErrUnsupported)
		}
		if len(n.In) < 2 || n.In[0] == nil || n.In[1] == nil {
			return fmt.Errorf("node %q: LayerNormalization without its input and scale", n.Name)
		}
		axes := &Tensor{DType: Int64, Shape: []int{-ax}}
		for a := ax; a < 0; a++ {
			axes.I = append(axes.I, int64(a))
		}
		eps := &Tensor{DType: Float, Shape: []int{}, F: []float32{n.attrFloat("epsilon", 1e-5)}}
		konst := func(suffix string, t *Tensor) *Value {
			v := &Value{Name: n.Name + "/" + suffix, DType: t.DType, Shape: t.Shape, Const: t}
			g.values[v.Name] = v
			return v
		}
		step := func(op, suffix string, out *Value, in ...*Value) *Value {
			m := &Node{Name: n.Name + "/" + suffix, Op: op, In: in, Attr: map[string]*onnx.AttributeProto{}}
			if out == nil {
				out = &Value{Name: m.Name, DType: Float}
				g.values[out.Name] = out
			}
			out.Producer = m
			m.Out = []*Value{out}
			nodes = append(nodes, m)
			return out
		}
		x, axv := n.In[0], konst("axes", axes)
		mean := step("ReduceMean", "mean", nil, x, axv)
		d := step("Sub", "centred", nil, x, mean)
		v := step("ReduceMean", "variance", nil, step("Mul", "square", nil, d, d), axv)
		sd := step("Sqrt", "std", nil, step("Add", "plus_epsilon", nil, v, konst("epsilon", eps)))
		y := n.Out[0]
		if len(n.In) > 2 && n.In[2] != nil {
			step("Add", "bias", y, step("Mul", "scale", nil, step("Div", "normalised", nil, d, sd), n.In[1]), n.In[2])
		} else {
			step("Mul", "scale", y, step("Div", "normalised", nil, d, sd), n.In[1])
		}
	}
	g.Nodes = nodes
	return nil
}

// read reports whether a node or the graph's outputs read v.
func (g *Graph) read(v *Value) bool {
	for _, n := range g.Nodes {
		for _, in := range n.In {
			if in == v {
				return true
			}
		}
	}
	for _, o := range g.Outputs {
		if o == v {
			return true
		}
	}
	return false
}
