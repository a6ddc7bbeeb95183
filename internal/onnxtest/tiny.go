package onnxtest

import (
	"math/rand"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// TinyYOLO returns a small convolutional detector with YOLOv8's output
// layout [B, 4+classes, (size/8)²] and random weights (seeded): three
// stride-2 3×3 convolutions with SiLU, a 1×1 head, sigmoid scores, boxes
// scaled to input pixels. Class biases are negative so that, as with a
// trained model, few anchors pass a 0.25 threshold. About 0.2 GFLOP per
// 640×640 image: for benchmarks of the pipeline, not of a real network.
func TinyYOLO(size int64, classes int, seed int64) ([]byte, error) {
	rng := rand.New(rand.NewSource(seed))
	var inits []*onnx.TensorProto
	var nodes []*onnx.NodeProto
	conv := func(in, out string, cin, cout, k, stride int64, bias float32) {
		w := make([]float32, cout*cin*k*k)
		for i := range w {
			w[i] = float32(rng.NormFloat64()) * 0.3
		}
		b := make([]float32, cout)
		for i := range b {
			b[i] = bias
		}
		inits = append(inits, Floats(out+"_w", []int64{cout, cin, k, k}, w), Floats(out+"_b", []int64{cout}, b))
		pad := (k - 1) / 2
		nodes = append(nodes, Node("Conv", []string{in, out + "_w", out + "_b"}, []string{out},
			IntsAttr("kernel_shape", k, k), IntsAttr("strides", stride, stride), IntsAttr("pads", pad, pad, pad, pad)))
	}
	silu := func(in, out string) {
		nodes = append(nodes, Node("Sigmoid", []string{in}, []string{out + "_sig"}), Node("Mul", []string{in, out + "_sig"}, []string{out}))
	}
	conv("images", "c1", 3, 8, 3, 2, 0)
	silu("c1", "a1")
	conv("a1", "c2", 8, 16, 3, 2, 0)
	silu("c2", "a2")
	conv("a2", "c3", 16, 32, 3, 2, 0)
	silu("c3", "a3")
	ch := int64(4 + classes)
	conv("a3", "head", 32, ch, 1, 1, 0)
	// Class logits get a bias of -4 (sigmoid ≈ 0.02) on top of the random one.
	shift := make([]float32, ch)
	scale := make([]float32, ch)
	for i := range shift {
		scale[i] = 1
		if i >= 4 {
			shift[i] = -4
		} else {
			scale[i] = float32(size)
		}
	}
	inits = append(inits, Floats("shift", []int64{1, ch, 1, 1}, shift), Floats("scale", []int64{1, ch, 1}, scale),
		Int64s("shape", []int64{3}, 0, ch, -1))
	nodes = append(nodes,
		Node("Add", []string{"head", "shift"}, []string{"shifted"}),
		Node("Sigmoid", []string{"shifted"}, []string{"prob"}),
		Node("Reshape", []string{"prob", "shape"}, []string{"flat"}),
		Node("Mul", []string{"flat", "scale"}, []string{"output0"}),
	)
	n := (size / 8) * (size / 8)
	names := make([]string, classes)
	for i := range names {
		names[i] = "class" + string(rune('A'+i%26))
	}
	m := model(&onnx.GraphProto{Name: proto.String("tiny"), Node: nodes, Initializer: inits,
		Input:  []*onnx.ValueInfoProto{{Name: proto.String("images"), Type: floatType(dim(0, "batch"), dim(3, ""), dim(size, ""), dim(size, ""))}},
		Output: []*onnx.ValueInfoProto{{Name: proto.String("output0"), Type: floatType(dim(0, "batch"), dim(ch, ""), dim(n, ""))}}})
	m.MetadataProps = []*onnx.StringStringEntryProto{{Key: proto.String("names"), Value: proto.String(NamesDict(names))}}
	return proto.Marshal(m)
}
