package infer

import (
	"os"
	"testing"

	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

func TestTraffic(t *testing.T) {
	nhwc := func(n, h, w, c int) graph.View {
		return graph.View{Shape: []int{n, c, h, w}, Stride: []int64{int64(h * w * c), 1, int64(w * c), int64(c)}, Elem: graph.F16}
	}
	res := nhwc(1, 4, 4, 16)
	for _, tt := range []struct {
		name         string
		steps        []graph.Step
		bytes, flops int64
	}{
		{"copy", []graph.Step{{Kind: graph.KCopy,
			In:  []graph.View{{Shape: []int{2, 3}, Stride: []int64{3, 1}, Elem: graph.F32}},
			Out: graph.View{Shape: []int{2, 3}, Stride: []int64{3, 1}, Elem: graph.F16}}}, 24 + 12, 0},
		{"broadcast add", []graph.Step{{Kind: graph.KBinary,
			In: []graph.View{{Shape: []int{4, 8}, Stride: []int64{8, 1}, Elem: graph.F32},
				{Shape: []int{4, 8}, Stride: []int64{0, 1}, Elem: graph.F32}},
			Out: graph.View{Shape: []int{4, 8}, Stride: []int64{8, 1}, Elem: graph.F32}}}, 128 + 32 + 128, 0},
		// x 256 B, weights 16×3×3×8×2 = 2,304 B, y 512 B; epilogue: y twice and a bias of 64 B.
		{"conv", []graph.Step{{Kind: graph.KConv, In: []graph.View{nhwc(1, 4, 4, 8)}, Out: nhwc(1, 4, 4, 16),
			Conv: &graph.ConvStep{N: 1, C: 8, H: 4, W: 4, K: 16, R: 3, S: 3, OH: 4, OW: 4, Groups: 1}}},
			256 + 2304 + 512 + 1024 + 64, 2 * 16 * 16 * 8 * 9},
		{"conv + residual", []graph.Step{{Kind: graph.KConv, In: []graph.View{nhwc(1, 4, 4, 8)}, Out: nhwc(1, 4, 4, 16),
			Conv: &graph.ConvStep{N: 1, C: 8, H: 4, W: 4, K: 16, R: 3, S: 3, OH: 4, OW: 4, Groups: 1, Residual: &res}}},
			256 + 2304 + 512 + 1024 + 64 + 512, 2 * 16 * 16 * 8 * 9},
	} {
		b, f := traffic(&graph.Program{Steps: tt.steps})
		if b != tt.bytes || f != tt.flops {
			t.Errorf("%s: %d bytes, %d FLOP; want %d, %d", tt.name, b, f, tt.bytes, tt.flops)
		}
	}
}

// TestTrafficScalesWithBatch: a real network's traffic and FLOPs grow with
// the batch (weights aside) and its FLOPs are exactly linear.
func TestTrafficScalesWithBatch(t *testing.T) {
	m, err := ReadModel(onnxtest.WriteMiniYOLOv8(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	e := &GPUEngine{h: 32, w: 32}
	if e.model, err = os.ReadFile(m.Path); err != nil {
		t.Fatal(err)
	}
	p1, err := e.lower(1)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := e.lower(8)
	if err != nil {
		t.Fatal(err)
	}
	b1, f1 := traffic(p1)
	b8, f8 := traffic(p8)
	if f1 <= 0 || f8 != 8*f1 || b8 <= b1 || b8 >= 8*b1 {
		t.Errorf("batch 1: %d B, %d FLOP; batch 8: %d B, %d FLOP", b1, f1, b8, f8)
	}
}
