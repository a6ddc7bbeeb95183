package graph

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// expansions are the operators defined by others that the engine runs,
// each rewritten into those at load: one place to add such an operator.
var expansions = map[string]func(*expander) error{
	"LayerNormalization": expandLayerNorm,
	"Gemm":               expandGemm,
}

// expand rewrites every node of an operator in expansions.
func (g *Graph) expand() error {
	var nodes []*Node
	for _, n := range g.Nodes {
		f, ok := expansions[n.Op]
		if !ok {
			nodes = append(nodes, n)
			continue
		}
		e := &expander{g: g, n: n}
		if err := f(e); err != nil {
			return err
		}
		nodes = append(nodes, e.nodes...)
	}
	g.Nodes = nodes
	return nil
}

// expander builds the nodes that replace node n, named after it.
type expander struct {
	g     *Graph
	n     *Node
	nodes []*Node
}

// step adds a node op of inputs in and returns its output: out where
// given (the replaced node's output), else a new value.
func (e *expander) step(op, suffix string, attr map[string]*onnx.AttributeProto, out *Value, in ...*Value) *Value {
	if attr == nil {
		attr = map[string]*onnx.AttributeProto{}
	}
	m := &Node{Name: e.n.Name + "/" + suffix, Op: op, In: in, Attr: attr}
	if out == nil {
		out = &Value{Name: m.Name, DType: Float}
		e.g.values[out.Name] = out
	}
	out.Producer = m
	m.Out = []*Value{out}
	e.nodes = append(e.nodes, m)
	return out
}

// konst is a compile-time value holding t.
func (e *expander) konst(suffix string, t *Tensor) *Value {
	v := &Value{Name: e.n.Name + "/" + suffix, DType: t.DType, Shape: t.Shape, Const: t}
	e.g.values[v.Name] = v
	return v
}

// scalar is a compile-time float scalar.
func (e *expander) scalar(suffix string, f float32) *Value {
	return e.konst(suffix, &Tensor{DType: Float, Shape: []int{}, F: []float32{f}})
}

// expandLayerNorm rewrites a LayerNormalization (opset 17) over more
// than the last axis into the operators it is defined by: a mean over the normalised axes, the
// centred values, their mean square, plus epsilon, its square root, the
// division, then scale and bias. Only the normalised output may be read
// (not Mean or InvStdDev), and the axis must count from the end (axis < 0,
// as exporters write -1), since ranks are not known yet.
func expandLayerNorm(e *expander) error {
	n := e.n
	for _, o := range n.Out[1:] {
		if o.Name != "" && e.g.read(o) {
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
	if ax == -1 {
		// Over the last axis (transformers' LayerNorm) it stays one
		// operator: on the GPU one kernel, a warp a row.
		n.Out = n.Out[:1]
		e.nodes = append(e.nodes, n)
		return nil
	}
	axes := &Tensor{DType: Int64, Shape: []int{-ax}}
	for a := ax; a < 0; a++ {
		axes.I = append(axes.I, int64(a))
	}
	x, axv := n.In[0], e.konst("axes", axes)
	mean := e.step("ReduceMean", "mean", nil, nil, x, axv)
	d := e.step("Sub", "centred", nil, nil, x, mean)
	v := e.step("ReduceMean", "variance", nil, nil, e.step("Mul", "square", nil, nil, d, d), axv)
	sd := e.step("Sqrt", "std", nil, nil, e.step("Add", "plus_epsilon", nil, nil, v, e.scalar("epsilon", n.attrFloat("epsilon", 1e-5))))
	norm := e.step("Div", "normalised", nil, nil, d, sd)
	y := n.Out[0]
	if len(n.In) > 2 && n.In[2] != nil {
		e.step("Add", "bias", nil, y, e.step("Mul", "scale", nil, nil, norm, n.In[1]), n.In[2])
	} else {
		e.step("Mul", "scale", nil, y, norm, n.In[1])
	}
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

// expandGemm rewrites a Gemm into what it computes: alpha·A'·B' + beta·C,
// A' and B' transposed where transA and transB say (Transpose, MatMul, Mul
// where alpha or beta is not 1, Add where C is given).
func expandGemm(e *expander) error {
	n := e.n
	if len(n.In) < 2 || n.In[0] == nil || n.In[1] == nil {
		return fmt.Errorf("node %q: Gemm without its two inputs", n.Name)
	}
	swap := map[string]*onnx.AttributeProto{"perm": {Name: proto.String("perm"), Type: onnx.AttributeProto_INTS.Enum(), Ints: []int64{1, 0}}}
	a, b := n.In[0], n.In[1]
	if n.attrInt("transA", 0) != 0 {
		a = e.step("Transpose", "a_t", swap, nil, a)
	}
	if n.attrInt("transB", 0) != 0 {
		b = e.step("Transpose", "b_t", swap, nil, b)
	}
	alpha, beta := n.attrFloat("alpha", 1), n.attrFloat("beta", 1)
	var c *Value
	if len(n.In) > 2 {
		c = n.In[2]
	}
	// The last step writes the Gemm's own output.
	y := n.Out[0]
	last := func(done bool) *Value {
		if done {
			return y
		}
		return nil
	}
	ab := e.step("MatMul", "matmul", nil, last(alpha == 1 && c == nil), a, b)
	if alpha != 1 {
		ab = e.step("Mul", "alpha", nil, last(c == nil), ab, e.scalar("alpha", alpha))
	}
	if c != nil {
		if beta != 1 {
			c = e.step("Mul", "beta", nil, nil, c, e.scalar("beta", beta))
		}
		e.step("Add", "c", nil, y, ab, c)
	}
	return nil
}
