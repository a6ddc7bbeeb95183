package graph

import (
	"fmt"
	"math"
	"slices"
)

// Attention as Ultralytics writes it (YOLO11's C2PSA, YOLO12's area
// attention): with Q [..., N, dk], K [..., dk, M] and V [..., dv, M],
//
//	S = MatMul(Q, K) · scale, P = Softmax(S, last axis), O = MatMul(V, Transpose(P))
//
// gives O [..., dv, N]. Run as written, the [N, M] scores go through
// memory four times in fp32 (written, read by the softmax and written,
// transposed, read), which makes YOLO12 four times slower than its
// convolutions; fused, one kernel keeps them on chip (FlashAttention's
// online softmax).

// opAttention is the fused operator's name, one no ONNX domain uses.
const opAttention = "dsbatch.Attention"

// AttentionSizes are the key and value sizes fused attention takes, those
// the GPU engine's kernel is compiled for (Ultralytics' heads: keys of 16
// and values of 32 in YOLO11's C2PSA, 32 and 32 in YOLO12's area
// attention). Other sizes stay as written.
var AttentionSizes = [...]int{16, 32, 64}

// fuseAttention replaces each MatMul, scale, Softmax, Transpose, MatMul
// chain of the form above whose intermediate tensors nothing else reads
// with one opAttention node (inputs Q, K, V; Alpha the scale). It
// reports how many it fused.
func (g *Graph) fuseAttention() int {
	u, readers := g.uses(), g.readers()
	// only returns the one reader of v, when v is read once and is not a
	// graph output.
	only := func(v *Value) *Node {
		if u[v] != 1 || len(readers[v]) != 1 || slices.Contains(g.Outputs, v) {
			return nil
		}
		return readers[v][0]
	}
	fused := 0
	for _, m1 := range slices.Clone(g.Nodes) {
		if m1.Op != "MatMul" {
			continue
		}
		q, k := m1.In[0], m1.In[1]
		r := len(q.Shape)
		if r < 3 || len(k.Shape) != r || !slices.Equal(q.Shape[:r-2], k.Shape[:r-2]) || q.Const != nil || k.Const != nil {
			continue
		}
		chain := []*Node{m1}
		scale := float32(1)
		next := only(m1.Out[0])
		if next != nil && next.Op == "Mul" {
			other := next.In[0]
			if other == m1.Out[0] {
				other = next.In[1]
			}
			if other.Const == nil || Len(other.Const.Shape) != 1 || other.Const.DType != Float {
				continue
			}
			scale = other.Const.F[0]
			chain = append(chain, next)
			next = only(next.Out[0])
		}
		if next == nil || next.Op != "Softmax" {
			continue
		}
		if ax, err := axis(next.attrInt("axis", -1), r); err != nil || ax != r-1 {
			continue
		}
		chain = append(chain, next)
		tr := only(next.Out[0])
		if tr == nil || tr.Op != "Transpose" || !swapsLastTwo(tr.attrInts("perm", nil), r) {
			continue
		}
		chain = append(chain, tr)
		m2 := only(tr.Out[0])
		if m2 == nil || m2.Op != "MatMul" || m2.In[1] != tr.Out[0] {
			continue
		}
		v := m2.In[0]
		if len(v.Shape) != r || !slices.Equal(v.Shape[:r-2], q.Shape[:r-2]) || v.Shape[r-1] != k.Shape[r-1] || v.Const != nil ||
			r > 6 || !slices.Contains(AttentionSizes[:], q.Shape[r-1]) || !slices.Contains(AttentionSizes[:], v.Shape[r-2]) {
			continue
		}
		for _, n := range chain {
			g.remove(n)
		}
		name := m2.Name
		*m2 = Node{Name: name, Op: opAttention, In: []*Value{q, k, v}, Out: m2.Out, Alpha: scale}
		fused++
	}
	return fused
}

// swapsLastTwo reports whether perm exchanges the last two of r axes and
// keeps the others.
func swapsLastTwo(perm []int, r int) bool {
	if len(perm) != r {
		return false
	}
	for i := 0; i < r-2; i++ {
		if perm[i] != i {
			return false
		}
	}
	return perm[r-2] == r-1 && perm[r-1] == r-2
}

// attentionShapes checks Q [..., N, dk], K [..., dk, M], V [..., dv, M]
// and returns the batch, N, M, dk and dv.
func attentionShapes(q, k, v []int) (batch []int, n, m, dk, dv int, err error) {
	r := len(q)
	if r < 3 || len(k) != r || len(v) != r || !slices.Equal(q[:r-2], k[:r-2]) || !slices.Equal(q[:r-2], v[:r-2]) ||
		q[r-1] != k[r-2] || k[r-1] != v[r-1] {
		return nil, 0, 0, 0, 0, fmt.Errorf("attention of Q %v, K %v, V %v", q, k, v)
	}
	return q[:r-2], q[r-2], k[r-1], q[r-1], v[r-2], nil
}

// opAttentionRef is the reference: in float64, O[b, c, i] = Σ_j V[b, c,
// j] · softmax_j(scale · Σ_d Q[b, i, d] K[b, d, j]).
func opAttentionRef(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	q, k, v := in[0], in[1], in[2]
	batch, N, M, dk, dv, err := attentionShapes(q.Shape, k.Shape, v.Shape)
	if err != nil {
		return nil, err
	}
	out := out1(append(slices.Clone(batch), dv, N), Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	s := make([]float64, M)
	for b := range Len(batch) {
		Q, K, V, O := q.F[b*N*dk:], k.F[b*dk*M:], v.F[b*dv*M:], out.F[b*dv*N:]
		for i := 0; i < N; i++ {
			mx := math.Inf(-1)
			for j := 0; j < M; j++ {
				acc := 0.0
				for d := 0; d < dk; d++ {
					acc += float64(Q[i*dk+d]) * float64(K[d*M+j])
				}
				s[j] = acc * float64(n.Alpha)
				mx = math.Max(mx, s[j])
			}
			sum := 0.0
			for j := range s {
				s[j] = math.Exp(s[j] - mx)
				sum += s[j]
			}
			for c := 0; c < dv; c++ {
				acc := 0.0
				for j := 0; j < M; j++ {
					acc += float64(V[c*M+j]) * s[j]
				}
				O[c*N+i] = float32(acc / sum)
			}
		}
	}
	return []*Tensor{out}, nil
}

// attention lowers an opAttention node to one KAttention step. Q, K and V
// are read through the views that produced them from the tensors before
// (compose), where all three have one element type; else as packed
// row-major fp32. The output goes where placeAttention puts it.
func (l *lowering) attention(n *Node) error {
	var views [3]View
	composed := true
	for i, v := range n.In {
		w, ok := l.compose(v)
		views[i], composed = w, composed && ok && w.Elem == views[0].Elem
	}
	if !composed {
		for i, v := range n.In {
			w, err := l.get(v, RowMajor, F32)
			if err != nil {
				return err
			}
			views[i] = w
		}
	}
	if _, _, _, _, _, err := attentionShapes(views[0].Shape, views[1].Shape, views[2].Shape); err != nil {
		return err
	}
	y := l.placeAttention(n)
	l.emit(Step{Kind: KAttention, Node: n.Name, In: views[:], Out: y, Alpha: n.Alpha})
	l.set(n.Out[0], y)
	return nil
}
