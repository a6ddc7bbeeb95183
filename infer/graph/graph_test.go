package graph_test

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer"
	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

func miniYOLO(t *testing.T) string { return miniYOLOPath(t) }

func miniYOLOPath(t testing.TB) string { return onnxtest.WriteMiniYOLOv8(t, 7) }

func randomInput(n, h, w int, seed int64) *graph.Tensor {
	in := graph.NewFloat(n, 3, h, w)
	r := rand.New(rand.NewSource(seed))
	for i := range in.F {
		in.F[i] = r.Float32()
	}
	return in
}

func relL2(a, b []float32) float64 { return onnxtest.RelL2(a, b) }

// ortOutput runs the model with ONNX Runtime on the CPU.
func ortOutput(t *testing.T, path string, in *graph.Tensor) ([]float32, []int64) {
	t.Helper()
	lib, err := onnxtest.ORTLib()
	if err != nil {
		t.Fatal(err)
	}
	m, err := infer.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := infer.NewORT(m, in.Shape[2], in.Shape[3], infer.ORTOptions{Lib: lib, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out, shape, err := e.Infer(context.Background(), in.F, in.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), out...), shape
}

func TestCompiledGraphMatchesONNXRuntime(t *testing.T) {
	path := miniYOLO(t)
	for _, batch := range []int{1, 3} {
		in := randomInput(batch, 32, 32, int64(batch))
		ref, shape := ortOutput(t, path, in)

		g, err := graph.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Specialize(batch, 32, 32); err != nil {
			t.Fatal(err)
		}
		ops := g.OpCounts()
		for _, op := range []string{"Shape", "Gather", "Range", "ConstantOfShape", "Expand", "Cast", "Unsqueeze", "Constant", "Identity"} {
			if ops[op] > 0 {
				t.Errorf("batch %d: %d %s nodes left after folding: %v", batch, ops[op], op, ops)
			}
		}
		plain, err := g.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := plain[0].Shape; len(got) != 3 || int64(got[0]) != shape[0] || int64(got[1]) != shape[1] || int64(got[2]) != shape[2] {
			t.Fatalf("batch %d: output %v, ONNX Runtime %v", batch, got, shape)
		}
		if e := relL2(plain[0].F, ref); e > 1e-5 {
			t.Errorf("batch %d: folded graph vs ONNX Runtime: relative L2 %.3g", batch, e)
		}

		st := g.Fuse()
		ops = g.OpCounts()
		// 10 SiLU convolutions, the ReLU and the LeakyReLU one; the
		// bottleneck's Add follows a SiLU convolution.
		if st.Activations != 12 || st.Residuals != 1 || ops["Conv+silu"] != 9 || ops["Conv+silu+add"] != 1 || ops["Conv+relu"] != 1 || ops["Conv+leaky_relu"] != 1 {
			t.Errorf("batch %d: fused %+v: %v", batch, st, ops)
		}
		fused, err := g.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		if e := relL2(fused[0].F, ref); e > 1e-5 {
			t.Errorf("batch %d: fused graph vs ONNX Runtime: relative L2 %.3g", batch, e)
		}
	}
}

func TestUnsupported(t *testing.T) {
	path := miniYOLO(t)
	b, _ := os.ReadFile(path)
	// Turn an operator the engine has into one it lacks.
	var mp onnx.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	for _, n := range mp.GetGraph().GetNode() {
		if n.GetOpType() == "LeakyRelu" {
			n.OpType = proto.String("RoiAlign")
		}
	}
	b, _ = proto.Marshal(&mp)
	badPath := filepath.Join(t.TempDir(), "bad.onnx")
	os.WriteFile(badPath, b, 0o644)
	g, err := graph.Read(badPath)
	if err != nil {
		t.Fatal(err)
	}
	err = g.Specialize(1, 32, 32)
	if !errors.Is(err, graph.ErrUnsupported) || !strings.Contains(err.Error(), "RoiAlign") || !strings.Contains(err.Error(), "/LeakyRelu_") || !strings.Contains(err.Error(), "--engine onnxruntime") {
		t.Errorf("error %v: want the node, the operator and the way out", err)
	}

	g, _ = graph.Read(path)
	if err := g.Specialize(1, 64, 64); err == nil || !strings.Contains(err.Error(), "fixed at [0 3 32 32]") {
		t.Errorf("wrong input size: %v", err)
	}
}

// TestOperatorsMatchONNXRuntime runs each operator conformance graph
// through the reference executor and ONNX Runtime.
func TestOperatorsMatchONNXRuntime(t *testing.T) {
	for _, c := range onnxtest.OpCases() {
		t.Run(c.Name, func(t *testing.T) {
			path := onnxtest.WriteModel(t, "op.onnx", c.Model)
			in := randomInput(2, c.H, c.W, 4)
			for i := range in.F {
				in.F[i] = 4*in.F[i] - 2
			}
			want, _ := ortOutput(t, path, in)
			g, err := graph.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Specialize(2, c.H, c.W); err != nil {
				t.Fatal(err)
			}
			got, err := g.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			if e := relL2(got[0].F, want); e > 1e-5 {
				t.Errorf("relative L2 error %.3g against ONNX Runtime", e)
			}
			if n, i := onnxtest.Mismatches(got[0].F, want); c.Exact && n > 0 {
				t.Errorf("%d elements differ from ONNX Runtime's, the first %d: %g, want %g", n, i, got[0].F[i], want[i])
			}
			// Fused operators keep the meaning.
			g.Fuse()
			got, err = g.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			if e := relL2(got[0].F, want); e > 1e-5 {
				t.Errorf("fused: relative L2 error %.3g against ONNX Runtime", e)
			}
		})
	}
}

// TestConvTransposeRefused: a ConvTranspose whose patches overlap is
// refused, naming the node and why.
func TestConvTransposeRefused(t *testing.T) {
	mp := onnxtest.Model("in", "out", []*onnx.TensorProto{onnxtest.Floats("w", []int64{3, 2, 3, 3}, make([]float32, 54))},
		onnxtest.Node("ConvTranspose", []string{"in", "w"}, []string{"out"}, onnxtest.IntsAttr("strides", 2, 2), onnxtest.IntsAttr("pads", 1, 1, 1, 1)))
	g, err := graph.Load(mp)
	if err != nil {
		t.Fatal(err)
	}
	err = g.Specialize(1, 8, 8)
	if err == nil || !errors.Is(err, graph.ErrUnsupported) || !strings.Contains(err.Error(), "ConvTranspose_out") || !strings.Contains(err.Error(), "only a kernel equal to its strides") {
		t.Errorf("%v", err)
	}
}
