package graph_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/graph"
	"github.com/dsbatch/dsbatch/infer/onnx"
	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

func hnode(op string, in []string, out string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
	return onnxtest.Node(op, in, []string{out}, attrs...)
}

// hint64s is a 1-D int64 initializer.
func hint64s(name string, v ...int64) *onnx.TensorProto {
	return onnxtest.Int64s(name, []int64{int64(len(v))}, v...)
}

func hscalar(name string, v int64) *onnx.TensorProto { return onnxtest.Int64s(name, nil, v) }

// hfloats is a float initializer of shape dims holding n numbers.
func hfloats(name string, n int, dims ...int64) *onnx.TensorProto {
	return onnxtest.Floats(name, dims, make([]float32, n))
}

// TestHostileModels checks that models asking the compiler for absurd
// sizes or work get an error naming the cause, before anything is
// allocated or computed, and that large run-time tensors of real models
// at large batches still compile.
func TestHostileModels(t *testing.T) {
	const huge = 1 << 40
	tests := []struct {
		name    string
		model   *onnx.ModelProto
		batch   int
		loadErr string // wanted from Load
		err     string // wanted from Specialize; "" for success
		shape   []int  // y's shape on success
	}{
		{
			name:    "initializer of 2^40 floats without data",
			model:   onnxtest.Model("x", "y", []*onnx.TensorProto{{Name: proto.String("w"), DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Dims: []int64{1 << 20, 1 << 20}}}, hnode("Identity", []string{"x"}, "y")),
			loadErr: `initializer "w": tensor too large: shape [1048576 1048576] has more than 67108864 elements`,
		},
		{
			name:    "initializer of 2^40 int64s",
			model:   onnxtest.Model("x", "y", []*onnx.TensorProto{{Name: proto.String("w"), DataType: proto.Int32(int32(onnx.TensorProto_INT64)), Dims: []int64{huge}}}, hnode("Identity", []string{"x"}, "y")),
			loadErr: "tensor too large: shape [1099511627776]",
		},
		{
			name:    "initializer of negative size",
			model:   onnxtest.Model("x", "y", []*onnx.TensorProto{hfloats("w", 0, -4, 4)}, hnode("Identity", []string{"x"}, "y")),
			loadErr: "negative dimension in [-4 4]",
		},
		{
			name:    "initializer shorter than its shape",
			model:   onnxtest.Model("x", "y", []*onnx.TensorProto{hfloats("w", 3, 4)}, hnode("Identity", []string{"x"}, "y")),
			loadErr: "float tensor [4] holds 12 bytes",
		},
		{
			name: "Range of 10^12 numbers",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hscalar("a", 0), hscalar("b", 1e12), hscalar("d", 1)},
				hnode("Range", []string{"a", "b", "d"}, "r"), hnode("Identity", []string{"x"}, "y")),
			err: `node "Range_r" (Range): tensor too large: shape [1000000000000] has more than`,
		},
		{
			name: "ConstantOfShape of 2^30 numbers",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hint64s("s", 1<<15, 1<<15)},
				hnode("ConstantOfShape", []string{"s"}, "c"), hnode("Identity", []string{"x"}, "y")),
			err: `node "ConstantOfShape_c" (ConstantOfShape): tensor too large: shape [32768 32768] has more than 67108864 elements`,
		},
		{
			name: "folded convolution of 4·10^10 multiply-adds",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hint64s("sx", 1, 1024, 64, 64), hint64s("sw", 1024, 1024, 3, 3)},
				hnode("ConstantOfShape", []string{"sx"}, "cx"), hnode("ConstantOfShape", []string{"sw"}, "cw"),
				hnode("Conv", []string{"cx", "cw"}, "c", onnxtest.IntsAttr("pads", 1, 1, 1, 1)), hnode("Identity", []string{"x"}, "y")),
			err: `node "Conv_c" (Conv): folding it at compile time would take 4194304×9216 multiply-adds`,
		},
		{
			name: "folded pooling with a kernel of 2^40",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hint64s("sx", 1, 1, 4, 4)},
				hnode("ConstantOfShape", []string{"sx"}, "cx"),
				hnode("MaxPool", []string{"cx"}, "c", onnxtest.IntsAttr("kernel_shape", 1<<20, 1<<20), onnxtest.IntsAttr("pads", 1<<19, 1<<19, 1<<19, 1<<19)), hnode("Identity", []string{"x"}, "y")),
			err: "pooling kernel [1048576 1048576] is too large",
		},
		{
			name: "folded matrix product of 2^33 multiply-adds",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hint64s("sa", 2048, 2048), hint64s("sb", 2048, 2048)},
				hnode("ConstantOfShape", []string{"sa"}, "a"), hnode("ConstantOfShape", []string{"sb"}, "b"),
				hnode("MatMul", []string{"a", "b"}, "c"), hnode("Identity", []string{"x"}, "y")),
			err: "folding it at compile time would take 4194304×2048 multiply-adds",
		},
		{
			// A YOLOv8s-sized stem at batch 128: 838,860,800 elements,
			// more than the host may fold, within what the engine runs.
			name:  "run-time tensor of 2^29.6 elements",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hfloats("w", 64*3*3*3, 64, 3, 3, 3)}, hnode("Conv", []string{"x", "w"}, "y", onnxtest.IntsAttr("strides", 2, 2), onnxtest.IntsAttr("pads", 1, 1, 1, 1))),
			batch: 128,
			shape: []int{128, 64, 320, 320},
		},
		{
			name:  "run-time tensor of 2^32.6 elements",
			model: onnxtest.Model("x", "y", []*onnx.TensorProto{hfloats("w", 128*3*3*3, 128, 3, 3, 3)}, hnode("Conv", []string{"x", "w"}, "y", onnxtest.IntsAttr("pads", 1, 1, 1, 1))),
			batch: 128,
			err:   `node "Conv_y" (Conv): tensor too large: shape [128 128 640 640] has more than 2147483647 elements`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := graph.Load(tt.model)
			if tt.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.loadErr) {
					t.Fatalf("Load: %v, want an error containing %q", err, tt.loadErr)
				}
				if errors.Is(err, graph.ErrTooLarge) {
					t.Errorf("Load: %v is ErrTooLarge, though no batch makes a weight smaller", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = g.Specialize(max(tt.batch, 1), 640, 640)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Specialize: %v, want an error containing %q", err, tt.err)
				}
				if want := strings.Contains(tt.err, "tensor too large"); errors.Is(err, graph.ErrTooLarge) != want {
					t.Errorf("errors.Is(%v, ErrTooLarge) = %v, want %v", err, !want, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Specialize: %v", err)
			}
			if got := g.Outputs[0].Shape; !slices.Equal(got, tt.shape) {
				t.Errorf("output shape %v, want %v", got, tt.shape)
			}
		})
	}
}
