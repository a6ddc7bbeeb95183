package graph_test

import (
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// TestRebatchStaticExport runs MiniYOLOv8 exported at batch 1 (the batch
// baked into its Reshapes, as `yolo export` writes it) at a batch of 3
// through the reference executor: each image's output equals that image
// run alone at batch 1, and equals the dynamic export's.
func TestRebatchStaticExport(t *testing.T) {
	b, err := onnxtest.MiniYOLOv8Static(7)
	if err != nil {
		t.Fatal(err)
	}
	static, err := graph.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := static.Specialize(3, 32, 32); err != nil {
		t.Fatal(err)
	}
	if !static.Rebatched {
		t.Error("Rebatched not set")
	}
	in := randomInput(3, 32, 32, 5)
	outs, err := static.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	got := outs[0]
	if got.Shape[0] != 3 || got.Shape[1] != 7 || got.Shape[2] != 64 {
		t.Fatalf("output %v, want [3 7 64]", got.Shape)
	}
	per := 7 * 64
	for i := 0; i < 3; i++ {
		one, err := graph.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := one.Specialize(1, 32, 32); err != nil {
			t.Fatal(err)
		}
		img := graph.NewFloat(1, 3, 32, 32)
		copy(img.F, in.F[i*3*32*32:(i+1)*3*32*32])
		want, err := one.Run(img)
		if err != nil {
			t.Fatal(err)
		}
		if d := relL2(got.F[i*per:(i+1)*per], want[0].F); d > 1e-6 {
			t.Errorf("image %d: rebatched output differs from batch 1 by %.2g", i, d)
		}
	}
	dyn, err := graph.Read(miniYOLOPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := dyn.Specialize(3, 32, 32); err != nil {
		t.Fatal(err)
	}
	want, err := dyn.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := relL2(got.F, want[0].F); d > 1e-6 {
		t.Errorf("rebatched static export differs from the dynamic export by %.2g", d)
	}
	if _, err := static.Lower(graph.LowerOptions{PadInputChannels: 8}); err != nil {
		t.Errorf("rebatched graph does not lower: %v", err)
	}
}

// TestRebatchRefusesMixing: a batch-1 export whose nodes move or mix the
// batch axis is refused at a larger batch, naming the node, and still
// compiles at batch 1.
func TestRebatchRefusesMixing(t *testing.T) {
	axes := onnxtest.Int64s("axes", []int64{1}, 0)
	for _, tt := range []struct {
		name  string
		inits []*onnx.TensorProto
		node  *onnx.NodeProto
	}{
		{"transpose", nil, onnxtest.Node("Transpose", []string{"in"}, []string{"out"}, onnxtest.IntsAttr("perm", 1, 0, 2, 3))},
		{"softmax over the batch", nil, onnxtest.Node("Softmax", []string{"in"}, []string{"out"}, onnxtest.IntAttr("axis", 0))},
		{"mean of everything", nil, onnxtest.Node("ReduceMean", []string{"in"}, []string{"out"})},
		{"mean over the batch", []*onnx.TensorProto{axes}, onnxtest.Node("ReduceSum", []string{"in", "axes"}, []string{"out"})},
		{"concat on the batch", nil, onnxtest.Node("Concat", []string{"in", "in"}, []string{"out"}, onnxtest.IntAttr("axis", 0))},
		{"reshape across images", []*onnx.TensorProto{onnxtest.Int64s("s", []int64{2}, 3, -1)},
			onnxtest.Node("Reshape", []string{"in", "s"}, []string{"out"})},
		{"constant spanning the batch", []*onnx.TensorProto{onnxtest.Floats("k", []int64{3, 3, 1, 1}, make([]float32, 9))},
			onnxtest.Node("Add", []string{"in", "k"}, []string{"out"})},
	} {
		mp := onnxtest.Model("in", "out", tt.inits, tt.node)
		mp.Graph.Input[0].Type.GetTensorType().Shape.Dim[0] = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 1}}
		path := onnxtest.WriteModel(t, "static.onnx", mp)
		g, err := graph.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		err = g.Specialize(3, 4, 4)
		if err == nil || !strings.Contains(err.Error(), "batch-1 export") || !strings.Contains(err.Error(), tt.node.GetName()) {
			t.Errorf("%s: %v, want a refusal naming node %s", tt.name, err, tt.node.GetName())
		}
		if tt.name == "reshape across images" || tt.name == "constant spanning the batch" || tt.name == "concat on the batch" {
			continue // these do not fit at batch 1 either, or fold
		}
		g, err = graph.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Specialize(1, 4, 4); err != nil {
			t.Errorf("%s: at batch 1: %v", tt.name, err)
		}
	}
}
