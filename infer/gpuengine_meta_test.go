package infer

import (
	"testing"

	"github.com/dsbatch/dsbatch/gpu"
	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// kernelOffsets is the kernels' offsets() in Go: the element offsets of
// linear index i for each operand of a meta6 block.
func kernelOffsets(i uint32, meta []int32, sets int) []int64 {
	off := make([]int64, sets)
	for d := 5; d >= 0; d-- {
		n := uint32(meta[d])
		q, r := i/n, i%n
		i = q
		for s := 0; s < sets; s++ {
			off[s] += int64(r) * int64(meta[6+6*s+d])
		}
	}
	return off
}

// TestCopyMeta checks, for every copy and binary step of the mini YOLOv8's
// program, that the collapsed (and, where allowed, vectorised) parameters
// the engine hands its kernels address exactly the elements the step's
// views name: the GPU side of the lowering, on the CPU.
func TestCopyMeta(t *testing.T) {
	g, err := graph.Read(onnxtest.WriteMiniYOLOv8(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Specialize(2, 32, 32); err != nil {
		t.Fatal(err)
	}
	g.Fuse()
	p, err := g.Lower(graph.LowerOptions{PadInputChannels: 8})
	if err != nil {
		t.Fatal(err)
	}
	vectorized := 0
	for _, s := range p.Steps {
		if s.Kind != graph.KCopy && s.Kind != graph.KBinary {
			continue
		}
		views := append(append([]graph.View{}, s.In...), s.Out)
		strides := make([][]int64, len(views))
		for i, v := range views {
			strides[i] = v.Stride
		}
		shape, st, err := collapse(s.Out.Shape, strides...)
		if err != nil {
			t.Fatal(err)
		}
		v := int64(1)
		if s.Kind == graph.KCopy && s.In[0].Elem == s.Out.Elem {
			// Addresses 16-byte aligned when the views' offsets are.
			w := 16 / s.Out.Elem.Size()
			src, dst := gpu.DevicePtr(s.In[0].Off*s.In[0].Elem.Size()), gpu.DevicePtr(s.Out.Off*s.Out.Elem.Size())
			if vectorizable(shape, st, w, src, dst) {
				vectorize(shape, st, w)
				v = w
				vectorized++
			}
		}
		meta := meta6(shape, st...)
		// Every element the views name, as (operand offsets), in the
		// views' own index order.
		want := map[int64][]int64{}
		each := func(fn func(idx []int)) {
			idx := make([]int, len(s.Out.Shape))
			for {
				fn(idx)
				k := len(idx) - 1
				for ; k >= 0; k-- {
					idx[k]++
					if idx[k] < s.Out.Shape[k] {
						break
					}
					idx[k] = 0
				}
				if k < 0 {
					return
				}
			}
		}
		each(func(idx []int) {
			offs := make([]int64, len(views))
			for i, vw := range views {
				for d, x := range idx {
					offs[i] += int64(x) * vw.Stride[d]
				}
			}
			want[offs[len(offs)-1]] = offs
		})
		seen := map[int64]bool{}
		total := uint32(graph.Len(shape))
		for i := uint32(0); i < total; i++ {
			base := kernelOffsets(i, meta, len(views))
			for e := int64(0); e < v; e++ {
				out := base[len(base)-1]*v + e
				w, ok := want[out]
				if seen[out] {
					t.Fatalf("step %s: kernel writes element %d twice", s.Node, out)
				}
				seen[out] = true
				if !ok {
					t.Fatalf("step %s: kernel writes element %d, which the output view does not hold", s.Node, out)
				}
				for k := range views[:len(views)-1] {
					if base[k]*v+e != w[k] {
						t.Fatalf("step %s: output element %d reads operand %d at %d, want %d", s.Node, out, k, base[k]*v+e, w[k])
					}
				}
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("step %s: kernel covers %d elements of %d", s.Node, len(seen), len(want))
		}
	}
	if vectorized == 0 {
		t.Error("no copy was vectorised")
	}
}
