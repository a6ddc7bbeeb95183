package graph_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// FuzzCompile feeds arbitrary bytes to the ONNX reader and the compiler,
// through to lowering, as the GPU engine runs them (a batch-1 export
// re-batched included): they may refuse a model, never crash or hang. Crashers found are kept
// in testdata/fuzz/FuzzCompile.
func FuzzCompile(f *testing.F) {
	mini, err := onnxtest.MiniYOLOv8(1)
	if err != nil {
		f.Fatal(err)
	}
	static, err := onnxtest.MiniYOLOv8Static(1)
	if err != nil {
		f.Fatal(err)
	}
	tiny, err := onnxtest.TinyYOLO(32, 2, 1)
	if err != nil {
		f.Fatal(err)
	}
	det, err := onnxtest.Detector{H: 32, W: 32, D1: 2, D2: 1, Raw: []float32{1, 2}}.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	// An attention block at the size the fuzzer specialises to (32×32):
	// fusion, composed views and the in-place output are reached.
	attn, err := proto.Marshal(onnxtest.AttentionModel(2, 16, 32, 1, 32, 32, true, false))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{mini, static, tiny, det, attn, mini[:len(mini)/2], {}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var mp onnx.ModelProto
		if proto.Unmarshal(b, &mp) != nil {
			return
		}
		g, err := graph.Load(&mp)
		if err != nil {
			return
		}
		if g.Specialize(2, 32, 32) != nil {
			return
		}
		g.Fuse()
		g.Lower(graph.LowerOptions{PadInputChannels: 8, InPlaceConcat: []string{"Conv", "MaxPool", "Resize", "Slice", "Split"}})
	})
}
