package graph

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// expand rewrites the operators defined by others that the engine runs
// (LayerNormalization, Gemm) into those, at load.
func (g *Graph) expand() error {
	if err := g.expandLayerNorms(); err != nil {
		return err
	}
	return g.expandGemms()
}

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

// expandGemms rewrites each Gemm into what it computes: alpha·A'·B' +
// beta·C, A' and B' transposed where transA and transB say (Transpose,
// MatMul, Mul where alpha or beta is not 1, Add where C is given).
func (g *Graph) expandGemms() error {
	var nodes []*Node
	for _, n := range g.Nodes {
		if n.Op != "Gemm" {
			nodes = append(nodes, n)
			continue
		}
		if len(n.In) < 2 || n.In[0] == nil || n.In[1] == nil {
			return fmt.Errorf("node %q: Gemm without its two inputs", n.Name)
		}
		step := func(op, suffix string, out *Value, attr map[string]*onnx.AttributeProto, in ...*Value) *Value {
			if attr == nil {
				attr = map[string]*onnx.AttributeProto{}
			}
			m := &Node{Name: n.Name + "/" + suffix, Op: op, In: in, Attr: attr}
			if out == nil {
				out = &Value{Name: m.Name, DType: Float}
				g.values[out.Name] = out
			}
			out.Producer = m
			m.Out = []*Value{out}
			nodes = append(nodes, m)
			return out
		}
		scalar := func(suffix string, f float32) *Value {
			v := &Value{Name: n.Name + "/" + suffix, DType: Float, Shape: []int{}, Const: &Tensor{DType: Float, Shape: []int{}, F: []float32{f}}}
			g.values[v.Name] = v
			return v
		}
		swap := map[string]*onnx.AttributeProto{"perm": {Name: proto.String("perm"), Type: onnx.AttributeProto_INTS.Enum(), Ints: []int64{1, 0}}}
		a, b := n.In[0], n.In[1]
		if n.attrInt("transA", 0) != 0 {
			a = step("Transpose", "a_t", nil, swap, a)
		}
		if n.attrInt("transB", 0) != 0 {
			b = step("Transpose", "b_t", nil, swap, b)
		}
		alpha, beta := n.attrFloat("alpha", 1), n.attrFloat("beta", 1)
		c := (*Value)(nil)
		if len(n.In) > 2 {
			c = n.In[2]
		}
		y := n.Out[0]
		if alpha == 1 && c == nil {
			step("MatMul", "matmul", y, nil, a, b)
			continue
		}
		ab := step("MatMul", "matmul", nil, nil, a, b)
		if alpha != 1 {
			out := (*Value)(nil)
			if c == nil {
				out = y
			}
			ab = step("Mul", "alpha", out, nil, ab, scalar("alpha", alpha))
		}
		if c != nil {
			if beta != 1 {
				c = step("Mul", "beta", nil, nil, c, scalar("beta", beta))
			}
			step("Add", "c", y, nil, ab, c)
		}
	}
	g.Nodes = nodes
	return nil
}
