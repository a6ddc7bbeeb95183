package graph

import (
	"fmt"
	"strings"
)

// opEinsum is Einsum without ellipses, on the host: exporters write it
// for products of compile-time tensors (transformers' position
// embeddings, "i,j->ij"), which fold; the engine has no kernel for it.
func opEinsum(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	eq := strings.ReplaceAll(n.attrString("equation", ""), " ", "")
	lhs, rhs, ok := strings.Cut(eq, "->")
	if !ok || strings.Contains(eq, ".") {
		return nil, fmt.Errorf("Einsum %q: only explicit equations without ellipses: %w", eq, ErrUnsupported)
	}
	terms := strings.Split(lhs, ",")
	if len(terms) != len(in) {
		return nil, fmt.Errorf("Einsum %q of %d inputs", eq, len(in))
	}
	size := map[byte]int{}
	var letters []byte
	for k, term := range terms {
		if len(term) != len(in[k].Shape) {
			return nil, fmt.Errorf("Einsum %q: term %q for a tensor of shape %v", eq, term, in[k].Shape)
		}
		for i := 0; i < len(term); i++ {
			c := term[i]
			if d, seen := size[c]; seen && d != in[k].Shape[i] {
				return nil, fmt.Errorf("Einsum %q: %c is %d and %d", eq, c, d, in[k].Shape[i])
			} else if !seen {
				size[c] = in[k].Shape[i]
				letters = append(letters, c)
			}
		}
	}
	shape := make([]int, len(rhs))
	for i := 0; i < len(rhs); i++ {
		d, seen := size[rhs[i]]
		if !seen {
			return nil, fmt.Errorf("Einsum %q: output index %c on no input", eq, rhs[i])
		}
		shape[i] = d
	}
	out := out1(shape, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	vals := make([][]float64, len(in))
	for k, t := range in {
		vals[k] = t.Floats()
	}
	dims := make([]int, len(letters))
	pos := map[byte]int{}
	for i, c := range letters {
		dims[i], pos[c] = size[c], i
	}
	if err := checkShape(dims, maxFolded); err != nil {
		return nil, fmt.Errorf("Einsum %q over %v: %w", eq, dims, err)
	}
	// Every combination of the letters adds the product of the inputs'
	// elements it names to the output element it names.
	acc := make([]float64, Len(shape))
	eachIndex(dims, func(_ int, idx []int) {
		p := 1.0
		for k, term := range terms {
			at, st := 0, 1
			for i := len(term) - 1; i >= 0; i-- {
				at += idx[pos[term[i]]] * st
				st *= in[k].Shape[i]
			}
			p *= vals[k][at]
		}
		at, st := 0, 1
		for i := len(rhs) - 1; i >= 0; i-- {
			at += idx[pos[rhs[i]]] * st
			st *= shape[i]
		}
		acc[at] += p
	})
	for i, v := range acc {
		out.F[i] = float32(v)
	}
	return []*Tensor{out}, nil
}
