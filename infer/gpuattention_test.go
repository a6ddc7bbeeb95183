package infer

import (
	"testing"

	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// TestAttentionVec: the operator cases that TestGPUOperators runs take
// both of the kernel's load paths, eight channels at a time where the
// attention reads a convolution's NHWC output, element by element where it
// reads a row-major tensor (fp32) or one packed from a view strides cannot
// express (the area case's reshape splits channels across the batch: fp16).
func TestAttentionVec(t *testing.T) {
	want := map[string]bool{"Attention C2PSA": true, "Attention C2PSA projected": true, "Attention area": false, "Attention C2PSA row-major": false}
	for _, c := range onnxtest.OpCases() {
		w, ok := want[c.Name]
		if !ok {
			continue
		}
		g, err := graph.Load(c.Model)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Specialize(4, c.H, c.W); err != nil {
			t.Fatal(err)
		}
		g.Fuse()
		p, err := g.Lower(graph.LowerOptions{PadInputChannels: 8})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range p.Steps {
			if s.Kind == graph.KAttention {
				n++
				if got := attentionVec(s.In[1], s.In[2]); got != w {
					t.Errorf("%s: eight-channel loads %v, want %v", c.Name, got, w)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d attention steps", c.Name, n)
		}
	}
}
