package graph

import "slices"

// FuseStats counts what Fuse did.
type FuseStats struct {
	Affine      int // per-channel scales and shifts folded into convolutions' weights
	Bias        int // bias rows added to products in their epilogue (a linear layer's MatMul, Add)
	Activations int // activations folded into convolutions and products
	Residuals   int // residual adds folded into convolutions and products
	Attention   int // attention blocks run as one kernel (see fuseAttention)
}

// Fuse folds into each convolution's weights and bias the per-channel
// scale and shift that follows it (a batch normalisation exported as Mul
// and Add, as Hugging Face's frozen ones are: see fuseAffine), then the
// activation that follows it (SiLU as Sigmoid·Mul, ReLU, LeakyReLU,
// Sigmoid), a residual Add of a tensor of the same shape computed earlier
// and the activation after that (ResNet's and RepVGG's blocks), so each
// runs as one kernel that writes its output once, and runs attention
// blocks as one operator (fuseAttention). Products (MatMul of matrices)
// take the same epilogue, a linear layer's bias row first (fuseBias).
// Call it after Specialize.
func (g *Graph) Fuse() FuseStats {
	st := FuseStats{Attention: g.fuseAttention()}
	for {
		u, readers := g.uses(), g.readers()
		isOutput := func(v *Value) bool { return slices.Contains(g.Outputs, v) }
		changed := false
		for _, n := range g.Nodes {
			if !(n.Op == "Conv" || matrixProduct(n)) || isOutput(n.Out[0]) {
				continue
			}
			y := n.Out[0]
			rs := readers[y]
			if n.Residual != nil {
				if n.PostAct == ActNone && g.fuseActivation(n, &n.PostAct, y, rs, u, isOutput, false) {
					st.Activations++
					changed = true
					break
				}
				continue
			}
			if n.Op == "Conv" && n.Act == ActNone && len(rs) == 1 && u[y] == 1 && g.fuseAffine(n, rs[0]) {
				st.Affine++
				changed = true
				break
			}
			if n.Op == "MatMul" && n.Act == ActNone && len(rs) == 1 && u[y] == 1 && g.fuseBias(n, rs[0]) {
				st.Bias++
				changed = true
				break
			}
			if n.Act == ActNone && g.fuseActivation(n, &n.Act, y, rs, u, isOutput, true) {
				st.Activations++
				changed = true
				break
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

// fuseAffine folds r, the one reader of convolution n's output y, into
// n's weights and bias when r is y·c, y/c, y+c or y−c for a constant c of
// one value per output channel (or one for all): W[k] and b[k] scaled by
// c[k], or c[k] added to b[k]. The weights and bias become constants of
// n's own, so that no other reader of them sees the change.
func (g *Graph) fuseAffine(n, r *Node) bool {
	y := n.Out[0]
	if len(r.In) != 2 || len(y.Shape) != 4 || len(n.In) < 2 || n.In[1].Const == nil || n.In[1].Const.DType != Float {
		return false
	}
	var c *Value
	switch {
	case r.In[0] == y && r.In[1] != y:
		c = r.In[1]
	case r.In[1] == y && r.In[0] != y && (r.Op == "Mul" || r.Op == "Add"):
		c = r.In[0]
	default:
		return false
	}
	if c.Const == nil || c.Const.DType != Float || len(c.Shape) > 4 {
		return false
	}
	k := y.Shape[1]
	// c broadcasts against [N, K, H, W] from the right: every axis 1 but
	// the channels', which is K or 1.
	perChannel := false
	for i, d := range c.Shape {
		axis := i + 4 - len(c.Shape)
		switch {
		case d == 1:
		case axis == 1 && d == k:
			perChannel = true
		default:
			return false
		}
	}
	at := func(j int) float32 {
		if perChannel {
			return c.Const.F[j]
		}
		return c.Const.F[0]
	}
	scale, shift := func(int) float32 { return 1 }, func(int) float32 { return 0 }
	switch r.Op {
	case "Mul":
		scale = at
	case "Div":
		scale = func(j int) float32 { return 1 / at(j) }
	case "Add":
		shift = at
	case "Sub":
		shift = func(j int) float32 { return -at(j) }
	default:
		return false
	}
	w := n.In[1].Const
	if w.Shape[0] != k {
		return false
	}
	nw := &Tensor{DType: Float, Shape: slices.Clone(w.Shape), F: slices.Clone(w.F)}
	nb := &Tensor{DType: Float, Shape: []int{k}, F: make([]float32, k)}
	if len(n.In) > 2 && n.In[2] != nil {
		if b := n.In[2].Const; b == nil || b.DType != Float || len(b.F) != k {
			return false
		} else {
			copy(nb.F, b.F)
		}
	}
	per := len(nw.F) / k
	for j := range k {
		s := scale(j)
		for i := j * per; i < (j+1)*per; i++ {
			nw.F[i] *= s
		}
		nb.F[j] = nb.F[j]*s + shift(j)
	}
	constant := func(suffix string, t *Tensor) *Value {
		v := &Value{Name: n.Name + "/" + suffix, DType: Float, Shape: t.Shape, Const: t}
		g.values[v.Name] = v
		return v
	}
	n.In = []*Value{n.In[0], constant(r.Name+"/w", nw), constant(r.Name+"/b", nb)}
	g.replace(n, r)
	return true
}

// matrixProduct reports whether n is a MatMul of two matrices or stacks
// of them (not a vector operand, whose dimension the product drops).
func matrixProduct(n *Node) bool {
	return n.Op == "MatMul" && len(n.In) >= 2 && len(n.In[0].Shape) >= 2 && len(n.In[1].Shape) >= 2
}

// fuseBias folds r, the one reader of product n's output y, into n as a
// third input when r adds y a constant row: one value per column, the
// same for every row (a linear layer's bias, as exporters write Linear:
// MatMul then Add).
func (g *Graph) fuseBias(n, r *Node) bool {
	y := n.Out[0]
	if r.Op != "Add" || len(r.In) != 2 || len(n.In) != 2 {
		return false
	}
	c := r.In[1]
	if r.In[1] == y {
		c = r.In[0]
	}
	cols := y.Shape[len(y.Shape)-1]
	if c == y || c.Const == nil || c.Const.DType != Float || len(c.Shape) == 0 || len(c.Shape) > len(y.Shape) ||
		c.Shape[len(c.Shape)-1] != cols || Len(c.Shape) != cols {
		return false
	}
	b := &Value{Name: n.Name + "/" + r.Name + "/b", DType: Float, Shape: []int{cols},
		Const: &Tensor{DType: Float, Shape: []int{cols}, F: slices.Clone(c.Const.F)}}
	g.values[b.Name] = b
	n.In = append(n.In, b)
	g.replace(n, r)
	return true
}

// fuseActivation folds the activation reading y, convolution n's output,
// into n as *act: SiLU (as Sigmoid·Mul), ReLU, Sigmoid, and LeakyReLU
// where leaky allows (its slope is n's one Alpha).
func (g *Graph) fuseActivation(n *Node, act *Act, y *Value, rs []*Node, u map[*Value]int, isOutput func(*Value) bool, leaky bool) bool {
	if g.fuseSiLU(n, act, y, rs, u, isOutput) {
		return true
	}
	if len(rs) != 1 || u[y] != 1 {
		return false
	}
	a := map[string]Act{"Relu": ActReLU, "LeakyRelu": ActLeakyReLU, "Sigmoid": ActSigmoid}[rs[0].Op]
	if a == ActNone || (a == ActLeakyReLU && !leaky) {
		return false
	}
	*act = a
	if a == ActLeakyReLU {
		n.Alpha = rs[0].attrFloat("alpha", 0.01)
	}
	g.replace(n, rs[0])
	return true
}

// fuseSiLU folds y·sigmoid(y) into the convolution n producing y, as *act.
func (g *Graph) fuseSiLU(n *Node, act *Act, y *Value, rs []*Node, u map[*Value]int, isOutput func(*Value) bool) bool {
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
	*act = ActSiLU
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
