package graph

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// TestFuseAttention: Ultralytics' attention blocks become one operator;
// a chain whose scores something else reads stays as written.
func TestFuseAttention(t *testing.T) {
	for _, c := range onnxtest.OpCases() {
		if c.Name != "Attention C2PSA" && c.Name != "Attention area" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			g, err := Load(c.Model)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Specialize(2, c.H, c.W); err != nil {
				t.Fatal(err)
			}
			if st := g.Fuse(); st.Attention != 1 {
				t.Errorf("fused %d attention blocks, want 1", st.Attention)
			}
			ops := g.OpCounts()
			if ops[opAttention] != 1 || ops["MatMul"] != 0 || ops["Softmax"] != 0 {
				t.Errorf("operators after fusing: %v", ops)
			}
		})
	}
	// The probabilities are also a graph output: nothing fuses.
	c := onnxtest.OpCases()
	var mp *onnx.ModelProto
	for _, oc := range c {
		if oc.Name == "Attention C2PSA" {
			mp = oc.Model
		}
	}
	if mp == nil {
		t.Fatal("no C2PSA case")
	}
	mp.Graph.Output = append(mp.Graph.Output, mp.Graph.Output[0])
	mp.Graph.Output[1] = &onnx.ValueInfoProto{Name: proto.String("p")}
	g, err := Load(mp)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Specialize(1, 10, 12); err != nil {
		t.Fatal(err)
	}
	if st := g.Fuse(); st.Attention != 0 {
		t.Errorf("fused an attention whose probabilities are an output")
	}
}

// TestAttentionInPlace: the attention reads Q, K and V from the qkv
// convolution's output and writes the projection's input, with no copy in
// between.
func TestAttentionInPlace(t *testing.T) {
	_, p := loweredCase(t, "Attention C2PSA projected", LowerOptions{PadInputChannels: 8})
	var kinds []Kind
	for _, s := range p.Steps {
		kinds = append(kinds, s.Kind)
	}
	// The network input's conversion, the qkv convolution, the attention,
	// the projection, the output's conversion.
	if want := []Kind{KCopy, KConv, KAttention, KConv, KCopy}; !slices.Equal(kinds, want) {
		t.Fatalf("steps %v, want %v", kinds, want)
	}
	qkv, at, proj := p.Steps[1], p.Steps[2], p.Steps[3]
	for i, in := range at.In {
		if in.Buf != qkv.Out.Buf || in.Elem != F16 {
			t.Errorf("attention input %d reads buffer %d (%v), want the qkv convolution's %d", i, in.Buf, in.Elem, qkv.Out.Buf)
		}
	}
	if at.Out.Buf != proj.In[0].Buf || at.Out.Elem != F16 {
		t.Errorf("attention writes buffer %d (%v), the projection reads %d", at.Out.Buf, at.Out.Elem, proj.In[0].Buf)
	}
}

// TestAttentionFuzzSeed: FuzzCompile's attention seed, at the fuzzer's
// 32×32, fuses and lowers, so that the fuzzer reaches those passes.
func TestAttentionFuzzSeed(t *testing.T) {
	g, err := Load(onnxtest.AttentionModel(2, 16, 32, 1, 32, 32, true, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Specialize(2, 32, 32); err != nil {
		t.Fatal(err)
	}
	if st := g.Fuse(); st.Attention != 1 {
		t.Fatalf("fused %d attention blocks", st.Attention)
	}
	if _, err := g.Lower(LowerOptions{PadInputChannels: 8, InPlaceConcat: []string{"Conv", "MaxPool", "Resize", "Slice", "Split"}}); err != nil {
		t.Fatal(err)
	}
}
