package graph

import "slices"

// FuseStats counts what Fuse did.
type FuseStats struct {
	Activations int // activations folded into convolutions
	Residuals   int // residual adds folded into convolutions
	Attention   int // attention blocks run as one kernel (see fuseAttention)
}

// Fuse folds into each convolution the activation that follows it (SiLU as
// Sigmoid·Mul, ReLU, LeakyReLU, Sigmoid) and then a residual Add of a
// tensor of the same shape computed earlier, so each runs as one kernel
// that writes its output once, and runs attention blocks as one operator
// (fuseAttention). Call it after Specialize.
func (g *Graph) Fuse() FuseStats {
	st := FuseStats{Attention: g.fuseAttention()}
	for {
		u, readers := g.uses(), g.readers()
		isOutput := func(v *Value) bool { return slices.Contains(g.Outputs, v) }
		changed := false
		for _, n := range g.Nodes {
			if n.Op != "Conv" || n.Residual != nil {
				continue
			}
			y := n.Out[0]
			if isOutput(y) {
				continue
			}
			rs := readers[y]
			if n.Act == ActNone {
				if ok := g.fuseSiLU(n, y, rs, u, isOutput); ok {
					st.Activations++
					changed = true
					break
				}
				if len(rs) == 1 && u[y] == 1 {
					act := map[string]Act{"Relu": ActReLU, "LeakyRelu": ActLeakyReLU, "Sigmoid": ActSigmoid}[rs[0].Op]
					if act != ActNone {
						n.Act = act
						if act == ActLeakyReLU {
							n.Alpha = rs[0].attrFloat("alpha", 0.01)
						}
						g.replace(n, rs[0])
						st.Activations++
						changed = true
						break
					}
				}
			}
			if len(rs) == 1 && u[y] == 1 && rs[0].Op == "Add" {
				add := rs[0]
				other := add.In[0]
				if other == y {
					other = add.In[1]
				}
				if other != y && slices.Equal(other.Shape, y.Shape) && other.Const == nil && g.before(other, n) {
					n.Residual = other
					g.replace(n, add)
					st.Residuals++
					changed = true
					break
				}
			}
		}
		if !changed {
			return st
		}
	}
}

// fuseSiLU folds y·sigmoid(y) into the convolution n producing y.
func (g *Graph) fuseSiLU(n *Node, y *Value, rs []*Node, u map[*Value]int, isOutput func(*Value) bool) bool {
	if len(rs) != 2 || u[y] != 2 {
		return false
	}
	sig, mul := rs[0], rs[1]
	if sig.Op != "Sigmoid" {
		sig, mul = mul, sig
	}
	if sig.Op != "Sigmoid" || mul.Op != "Mul" {
		return false
	}
	s := sig.Out[0]
	if u[s] != 1 || isOutput(s) || !((mul.In[0] == y && mul.In[1] == s) || (mul.In[0] == s && mul.In[1] == y)) {
		return false
	}
	n.Act = ActSiLU
	g.remove(sig)
	g.replace(n, mul)
	return true
}

// replace makes n produce what last produced, and removes last.
func (g *Graph) replace(n, last *Node) {
	n.Out = []*Value{last.Out[0]}
	last.Out[0].Producer = n
	g.remove(last)
}

func (g *Graph) remove(n *Node) {
	g.Nodes = slices.DeleteFunc(g.Nodes, func(m *Node) bool { return m == n })
}

// before reports whether v is available when n runs.
func (g *Graph) before(v *Value, n *Node) bool {
	if v.Producer == nil {
		return true
	}
	for _, m := range g.Nodes {
		if m == v.Producer {
			return true
		}
		if m == n {
			return false
		}
	}
	return false
}
