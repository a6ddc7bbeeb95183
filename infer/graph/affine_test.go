package graph

import (
	"testing"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// TestFuseAffine: per-channel scales and shifts after a convolution (a
// frozen batch normalisation exported as Mul and Add) fold into its
// weights, leaving no elementwise node; a constant minus the convolution
// does not fold; of two convolutions sharing weights only the scaled one
// changes; an activation after a residual folds too; a linear layer's
// bias row, activation and residual fold into its product, a per-row
// constant does not. (TestLoweredOperators and TestOperatorsMatchONNXRuntime
// check the values.)
func TestFuseAffine(t *testing.T) {
	for _, c := range []struct {
		name        string
		affine, act int
		ops         map[string]int
	}{
		{"Conv, frozen batch norm (Mul, Add), Relu", 2, 1, map[string]int{"Conv+relu": 1}},
		{"Conv with bias, Div by a scalar, Sub per channel", 2, 0, map[string]int{"Conv": 1}},
		{"Conv, per-channel constant minus it (not folded)", 0, 0, map[string]int{"Conv": 1, "Sub": 1}},
		{"Convs sharing weights, one scaled", 1, 0, map[string]int{"Conv": 1, "Conv+add": 1}},
		{"ResNet block: Conv, frozen batch norm, shortcut, Relu", 2, 1, map[string]int{"Conv": 1, "Conv+add+relu": 1}},
		{"RepVGG block: two convolutions added, SiLU", 0, 1, map[string]int{"Conv": 1, "Conv+add+silu": 1}},
		{"Linear layers: bias, Relu, residual", 0, 2, map[string]int{"Reshape": 1, "Transpose": 1, "MatMul": 1, "Add": 1,
			"MatMul+bias+relu": 1, "MatMul+bias+add+relu": 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var oc *onnxtest.OpCase
			for _, o := range onnxtest.OpCases() {
				if o.Name == c.name {
					oc = &o
				}
			}
			if oc == nil {
				t.Fatal("no such operator case")
			}
			g, err := Load(oc.Model)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Specialize(2, oc.H, oc.W); err != nil {
				t.Fatal(err)
			}
			st := g.Fuse()
			if st.Affine != c.affine || st.Activations != c.act {
				t.Errorf("folded %d scales and shifts and %d activations, want %d and %d", st.Affine, st.Activations, c.affine, c.act)
			}
			if ops := g.OpCounts(); len(ops) != len(c.ops) {
				t.Errorf("operators after fusing: %v, want %v", ops, c.ops)
			} else {
				for op, n := range c.ops {
					if ops[op] != n {
						t.Errorf("operators after fusing: %v, want %v", ops, c.ops)
					}
				}
			}
		})
	}
}
