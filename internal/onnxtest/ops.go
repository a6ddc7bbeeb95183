package onnxtest

import (
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// OpCase is a small graph around one operator in the form an exporter
// writes it, with a dynamic batch: input "in" [N, 3, H, W], output "out".
type OpCase struct {
	Name  string
	Model *onnx.ModelProto
	H, W  int
	// Exact: the output holds indices, selected or copied elements, or
	// booleans: every engine gives it bit for bit.
	Exact bool
}

// OpCases are the operator conformance graphs: pooling as YOLOv9's GELAN
// writes it, the elementwise functions (YOLOX's Exp decode, OBB's Cos and
// Sin, transformers' Erf and Gelu), and reductions in both opset forms.
// The engine's lowering and the reference executor must agree on each,
// and the reference with ONNX Runtime.
func OpCases() []OpCase {
	var cases []OpCase
	add := func(name string, opset int64, inits []*onnx.TensorProto, nodes ...*onnx.NodeProto) {
		mp := Model("in", "out", inits, nodes...)
		mp.OpsetImport[0].Version = proto.Int64(opset)
		cases = append(cases, OpCase{Name: name, Model: mp, H: 10, W: 12})
	}
	exact := func(name string, opset int64, inits []*onnx.TensorProto, nodes ...*onnx.NodeProto) {
		add(name, opset, inits, nodes...)
		cases[len(cases)-1].Exact = true
	}
	// AveragePool as YOLOv9's ADown (k2 s1 p0, count_include_pad) and as
	// torch writes padded ones, with and without the pad counted.
	add("AveragePool k2 s1", 17, nil, Node("AveragePool", []string{"in"}, []string{"out"},
		IntsAttr("kernel_shape", 2, 2), IntsAttr("strides", 1, 1), IntsAttr("pads", 0, 0, 0, 0), intAttr("count_include_pad", 1), intAttr("ceil_mode", 0)))
	for _, cp := range []int64{0, 1} {
		add("AveragePool k3 s2 p1 count_include_pad "+string(rune('0'+cp)), 17, nil, Node("AveragePool", []string{"in"}, []string{"out"},
			IntsAttr("kernel_shape", 3, 3), IntsAttr("strides", 2, 2), IntsAttr("pads", 1, 1, 1, 1), intAttr("count_include_pad", cp)))
	}
	// ceil_mode, as ResNet-D shortcuts (RT-DETR's backbone) and padded
	// pools write it: the last window hangs over the input's end.
	for _, cp := range []int64{0, 1} {
		add("AveragePool k2 s2 ceil count_include_pad "+string(rune('0'+cp)), 17, nil, Node("AveragePool", []string{"in"}, []string{"out"},
			IntsAttr("kernel_shape", 2, 2), IntsAttr("strides", 2, 2), IntsAttr("pads", 0, 0, 0, 0), intAttr("ceil_mode", 1), intAttr("count_include_pad", cp)))
		add("AveragePool k3 s2 p1 ceil count_include_pad "+string(rune('0'+cp)), 17, nil, Node("AveragePool", []string{"in"}, []string{"out"},
			IntsAttr("kernel_shape", 3, 3), IntsAttr("strides", 2, 2), IntsAttr("pads", 1, 1, 1, 1), intAttr("ceil_mode", 1), intAttr("count_include_pad", cp)))
	}
	add("MaxPool k3 s2 ceil", 17, nil, Node("MaxPool", []string{"in"}, []string{"out"},
		IntsAttr("kernel_shape", 3, 3), IntsAttr("strides", 2, 2), IntsAttr("pads", 0, 0, 0, 0), intAttr("ceil_mode", 1)))
	// Functions of positive inputs see Sigmoid(x) + 0.5 first.
	pos := []*onnx.NodeProto{Node("Sigmoid", []string{"in"}, []string{"s"}), Node("Add", []string{"s", "half"}, []string{"p"})}
	half := []*onnx.TensorProto{Floats("half", nil, []float32{0.5})}
	for _, op := range []string{"Exp", "Tanh", "Erf", "Cos", "Sin", "Neg", "Abs", "Softplus", "HardSwish"} {
		add(op, 17, nil, Node(op, []string{"in"}, []string{"out"}))
	}
	for _, op := range []string{"Log", "Sqrt", "Reciprocal"} {
		add(op, 17, half, append(append([]*onnx.NodeProto(nil), pos...), Node(op, []string{"p"}, []string{"out"}))...)
	}
	add("Gelu", 20, nil, Node("Gelu", []string{"in"}, []string{"out"}))
	add("Mish", 18, nil, Node("Mish", []string{"in"}, []string{"out"}))
	// YOLOX's decode in the graph: sizes are exp(log size) × stride.
	add("YOLOX decode", 17, []*onnx.TensorProto{Floats("stride", nil, []float32{8}), Int64s("s0", []int64{1}, 0), Int64s("s2", []int64{1}, 2), Int64s("ax", []int64{1}, 1)},
		Node("Slice", []string{"in", "s0", "s2", "ax"}, []string{"wh"}), Node("Exp", []string{"wh"}, []string{"e"}), Node("Mul", []string{"e", "stride"}, []string{"out"}))
	// YOLOX's Focus stem: the four pixels of every 2×2 block as channels
	// (strided Slices, a Concat of twelve channels), then a convolution.
	focus := []*onnx.TensorProto{Int64s("fe", []int64{2}, 1<<30, 1<<30), Int64s("fa", []int64{2}, 2, 3), Int64s("fs", []int64{2}, 2, 2),
		Floats("fw", []int64{16, 12, 3, 3}, weights(16*12*9, 8)), Floats("fb", []int64{16}, weights(16, 9))}
	var fnodes []*onnx.NodeProto
	var parts []string
	for i, st := range [][2]int64{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
		name := "f" + string(rune('0'+i))
		focus = append(focus, Int64s(name+"b", []int64{2}, st[0], st[1]))
		fnodes = append(fnodes, Node("Slice", []string{"in", name + "b", "fe", "fa", "fs"}, []string{name}))
		parts = append(parts, name)
	}
	fnodes = append(fnodes, Node("Concat", parts, []string{"fc"}, intAttr("axis", 1)),
		Node("Conv", []string{"fc", "fw", "fb"}, []string{"out"}, IntsAttr("kernel_shape", 3, 3), IntsAttr("pads", 1, 1, 1, 1)))
	add("Focus stem", 13, focus, fnodes...)
	// Upsampling as older exporters write it: Upsample (opset 9, scales an
	// input) and Resize of opset 10 (scales the second input).
	sc := []*onnx.TensorProto{Floats("sc", []int64{4}, []float32{1, 1, 2, 2})}
	add("Upsample opset 9", 9, sc, Node("Upsample", []string{"in", "sc"}, []string{"out"}, strAttr("mode", "nearest")))
	add("Resize opset 10 nearest", 10, sc, Node("Resize", []string{"in", "sc"}, []string{"out"}, strAttr("mode", "nearest")))
	add("Resize opset 10 linear", 10, sc, Node("Resize", []string{"in", "sc"}, []string{"out"}, strAttr("mode", "linear")))
	// Reductions: axes an attribute up to opset 17, an input from 18.
	add("ReduceMax axes attribute", 17, nil, Node("ReduceMax", []string{"in"}, []string{"out"}, IntsAttr("axes", 1), intAttr("keepdims", 1)))
	add("ReduceMax axes input", 18, []*onnx.TensorProto{Int64s("axes", []int64{1}, -1)}, Node("ReduceMax", []string{"in", "axes"}, []string{"out"}, intAttr("keepdims", 0)))
	add("ReduceMin", 18, []*onnx.TensorProto{Int64s("axes", []int64{1}, 1)}, Node("ReduceMin", []string{"in", "axes"}, []string{"out"}, intAttr("keepdims", 1)))
	// ConvTranspose as Ultralytics' mask prototypes upsample: kernel 2,
	// stride 2, after a convolution, with and without a bias; and a kernel
	// of 3 with stride 3.
	convt := []*onnx.TensorProto{Floats("cw", []int64{8, 3, 3, 3}, weights(8*27, 1)), Floats("tw", []int64{8, 5, 2, 2}, weights(8*5*4, 2)),
		Floats("tb", []int64{5}, weights(5, 3)), Floats("tw3", []int64{8, 4, 3, 3}, weights(8*4*9, 4))}
	conv := Node("Conv", []string{"in", "cw"}, []string{"c"}, IntsAttr("kernel_shape", 3, 3), IntsAttr("pads", 1, 1, 1, 1))
	add("ConvTranspose k2 s2 bias", 17, convt, conv, Node("ConvTranspose", []string{"c", "tw", "tb"}, []string{"out"},
		IntsAttr("kernel_shape", 2, 2), IntsAttr("strides", 2, 2), IntsAttr("pads", 0, 0, 0, 0), IntsAttr("dilations", 1, 1), intAttr("group", 1)))
	add("ConvTranspose k2 s2", 11, convt, conv, Node("ConvTranspose", []string{"c", "tw"}, []string{"out"}, IntsAttr("strides", 2, 2)))
	add("ConvTranspose k3 s3", 17, convt, conv, Node("ConvTranspose", []string{"c", "tw3"}, []string{"out"}, IntsAttr("strides", 3, 3)))
	// The prototypes' own widths: 8 channels upsampled to 16 and read by a
	// convolution, which the engine folds into the first convolution's
	// epilogue (its channel blocks written to their pixels).
	up := append(convt, Floats("tw16", []int64{8, 16, 2, 2}, weights(8*16*4, 5)), Floats("tb16", []int64{16}, weights(16, 6)),
		Floats("cw2", []int64{4, 16, 3, 3}, weights(4*16*9, 7)))
	add("ConvTranspose k2 s2 to 16 channels, then a conv", 17, up, conv,
		Node("ConvTranspose", []string{"c", "tw16", "tb16"}, []string{"u"}, IntsAttr("kernel_shape", 2, 2), IntsAttr("strides", 2, 2)),
		Node("Conv", []string{"u", "cw2"}, []string{"out"}, IntsAttr("kernel_shape", 3, 3), IntsAttr("pads", 1, 1, 1, 1)))
	// Batch normalisations as Hugging Face exports its frozen ones (RT-DETR's
	// ResNet, D-FINE's HGNetV2): a convolution, then Mul and Add of
	// per-channel constants, then an activation; the engine folds them into
	// the convolution's weights. Also a scalar Div and a per-channel Sub
	// with the constant written first and last, a bias of its own, and two
	// convolutions sharing weights of which one is scaled (the other must
	// not see the scale).
	bn := []*onnx.TensorProto{Floats("bw", []int64{8, 3, 3, 3}, weights(8*27, 11)), Floats("bb", []int64{8}, weights(8, 12)),
		Floats("bs", []int64{1, 8, 1, 1}, weights(8, 13)), Floats("bt", []int64{1, 8, 1, 1}, weights(8, 14)),
		Floats("bt3", []int64{8, 1, 1}, weights(8, 15)), Floats("two", nil, []float32{2})}
	bconv := func(out string, in ...string) *onnx.NodeProto {
		return Node("Conv", in, []string{out}, IntsAttr("kernel_shape", 3, 3), IntsAttr("pads", 1, 1, 1, 1))
	}
	add("Conv, frozen batch norm (Mul, Add), Relu", 17, bn, bconv("c", "in", "bw"),
		Node("Mul", []string{"c", "bs"}, []string{"m"}), Node("Add", []string{"bt", "m"}, []string{"a"}), Node("Relu", []string{"a"}, []string{"out"}))
	add("Conv with bias, Div by a scalar, Sub per channel", 17, bn, bconv("c", "in", "bw", "bb"),
		Node("Div", []string{"c", "two"}, []string{"d"}), Node("Sub", []string{"d", "bt3"}, []string{"out"}))
	add("Conv, per-channel constant minus it (not folded)", 17, bn, bconv("c", "in", "bw", "bb"),
		Node("Sub", []string{"bt3", "c"}, []string{"out"}))
	add("Convs sharing weights, one scaled", 17, bn, bconv("c1", "in", "bw", "bb"), bconv("c2", "in", "bw", "bb"),
		Node("Mul", []string{"c1", "bs"}, []string{"m"}), Node("Add", []string{"m", "c2"}, []string{"out"}))
	// Softmax over long rows (attention's, a warp a row on the GPU) and
	// over a middle axis.
	sm := []*onnx.TensorProto{Int64s("rows", []int64{3}, 0, 3, 120)}
	add("Softmax of rows of 120", 13, sm, Node("Reshape", []string{"in", "rows"}, []string{"r"}),
		Node("Softmax", []string{"r"}, []string{"out"}, intAttr("axis", -1)))
	add("Softmax of rows of 120, axis 1", 13, sm, Node("Reshape", []string{"in", "rows"}, []string{"r"}),
		Node("Softmax", []string{"r"}, []string{"out"}, intAttr("axis", 1)))
	// The activation after a residual: ResNet's block (batch norm, the
	// shortcut added, ReLU) and RepVGG's (two convolutions added, SiLU).
	res := append(bn, Floats("bw1", []int64{8, 3, 1, 1}, weights(8*3, 16)))
	add("ResNet block: Conv, frozen batch norm, shortcut, Relu", 17, res, bconv("r", "in", "bw"),
		Node("Conv", []string{"in", "bw1", "bb"}, []string{"c"}, IntsAttr("kernel_shape", 1, 1)),
		Node("Mul", []string{"c", "bs"}, []string{"m"}), Node("Add", []string{"m", "bt"}, []string{"a"}),
		Node("Add", []string{"a", "r"}, []string{"s"}), Node("Relu", []string{"s"}, []string{"out"}))
	add("RepVGG block: two convolutions added, SiLU", 17, res, bconv("r", "in", "bw", "bb"),
		Node("Conv", []string{"in", "bw1"}, []string{"c"}, IntsAttr("kernel_shape", 1, 1)),
		Node("Add", []string{"r", "c"}, []string{"s"}), Node("Sigmoid", []string{"s"}, []string{"g"}), Node("Mul", []string{"s", "g"}, []string{"out"}))
	// Pad in constant mode: as HGNetv2's stem (D-FINE's backbone) pads
	// the bottom and right before a 2×2 convolution; with a value as an
	// input; in the attribute form of opset 10; on two axes named by
	// opset 18's axes. (Not before a MaxPool: ONNX Runtime folds a Pad
	// into a following MaxPool's pads, which pads with -inf, not 0.)
	add("Pad stem", 13, []*onnx.TensorProto{Int64s("pads", []int64{8}, 0, 0, 0, 0, 0, 0, 1, 1), Floats("pw", []int64{8, 3, 2, 2}, weights(8*3*4, 10))},
		Node("Pad", []string{"in", "pads"}, []string{"p"}),
		Node("Conv", []string{"p", "pw"}, []string{"out"}, IntsAttr("kernel_shape", 2, 2)))
	// The same between convolutions, as HGNetv2's stem pads its first
	// convolution's output (held NHWC): bottom and right, and a value.
	add("Pad between convolutions", 13, []*onnx.TensorProto{Floats("pc", []int64{8, 3, 3, 3}, weights(8*3*9, 38)),
		Int64s("pads", []int64{8}, 0, 0, 0, 0, 0, 0, 1, 1), Floats("pw", []int64{8, 8, 2, 2}, weights(8*8*4, 39)),
		Int64s("pads2", []int64{8}, 0, 0, 1, 0, 0, 0, 0, 2), Floats("v", nil, []float32{0.5})},
		Node("Conv", []string{"in", "pc"}, []string{"c"}, IntsAttr("kernel_shape", 3, 3), IntsAttr("pads", 1, 1, 1, 1)),
		Node("Pad", []string{"c", "pads"}, []string{"p"}),
		Node("Conv", []string{"p", "pw"}, []string{"c2"}, IntsAttr("kernel_shape", 2, 2)),
		Node("Pad", []string{"c2", "pads2", "v"}, []string{"p2"}),
		Node("Conv", []string{"p2", "pw"}, []string{"out"}, IntsAttr("kernel_shape", 2, 2)))
	add("Pad value", 13, []*onnx.TensorProto{Int64s("pads", []int64{8}, 0, 1, 2, 0, 0, 0, 1, 3), Floats("v", nil, []float32{0.25})},
		Node("Pad", []string{"in", "pads", "v"}, []string{"out"}))
	add("Pad opset 10", 10, nil, Node("Pad", []string{"in"}, []string{"out"}, IntsAttr("pads", 0, 0, 1, 1, 0, 0, 1, 1), floatAttr("value", -1)))
	add("Pad axes", 18, []*onnx.TensorProto{Int64s("pads", []int64{4}, 2, 0, 0, 3), Int64s("axes", []int64{2}, 2, 3)},
		Node("Pad", []string{"in", "pads", "", "axes"}, []string{"out"}))
	// A float64 constant cast to float, as transformers' exports hold
	// their position embeddings' (raw bytes, and double_data).
	dbl := []*onnx.TensorProto{
		{Name: proto.String("d"), DataType: proto.Int32(int32(onnx.TensorProto_DOUBLE)), Dims: []int64{1, 3, 1, 1}, DoubleData: []float64{0.1, -1.0 / 3, 2.5}},
		{Name: proto.String("r"), DataType: proto.Int32(int32(onnx.TensorProto_DOUBLE)), Dims: []int64{1},
			RawData: []byte{0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xe9, 0x3f}}, // 0.8
	}
	add("float64 constants", 13, dbl, Node("Mul", []string{"d", "r"}, []string{"m"}), Node("Cast", []string{"m"}, []string{"c"}, intAttr("to", 1)),
		Node("Add", []string{"in", "c"}, []string{"out"}))
	// Einsum of compile-time tensors, as transformers' position
	// embeddings write it (an outer product), and a contraction; both fold.
	ein := []*onnx.TensorProto{Floats("ea", []int64{3}, []float32{1, -2, 0.5}), Floats("eb", []int64{1}, []float32{0.25}),
		Floats("ec", []int64{1}, []float32{-3}), Floats("em", []int64{3, 3}, []float32{1, 2, 3, -1, 0, 4, 0.5, 0.5, -2})}
	add("Einsum of constants", 13, ein, Node("Einsum", []string{"ea", "eb", "ec"}, []string{"o"}, strAttr("equation", "i,j,k->ijk")),
		Node("Einsum", []string{"em", "o"}, []string{"c"}, strAttr("equation", "kc,cjl->kjl")),
		Node("Add", []string{"in", "c"}, []string{"out"}))
	// LayerNormalization as transformers' encoders write it (opset 17,
	// the last axis, scale and bias), and over the last two axes without
	// a bias.
	ln := []*onnx.TensorProto{Floats("lg", []int64{12}, weights(12, 11)), Floats("lb", []int64{12}, weights(12, 12)), Floats("lg2", []int64{10, 12}, weights(120, 13))}
	add("LayerNormalization", 17, ln, Node("LayerNormalization", []string{"in", "lg", "lb"}, []string{"out"}, intAttr("axis", -1), floatAttr("epsilon", 1e-5)))
	add("LayerNormalization two axes", 17, ln, Node("LayerNormalization", []string{"in", "lg2"}, []string{"out"}, intAttr("axis", -2)))
	// Gemm as classifier heads and older exporters write it: on the
	// flattened input, B transposed, alpha, beta and a bias row; and the
	// plain product, A transposed, reshaped back to a map.
	gm := []*onnx.TensorProto{Floats("gb", []int64{360, 360}, weights(360*360, 14)), Floats("gc", []int64{360}, weights(360, 15)),
		Int64s("gs", []int64{4}, -1, 3, 10, 12), Int64s("g2", []int64{2}, -1, 360)}
	add("Gemm", 13, gm, Node("Reshape", []string{"in", "g2"}, []string{"f"}),
		Node("Gemm", []string{"f", "gb", "gc"}, []string{"m"}, intAttr("transB", 1), floatAttr("alpha", 0.5), floatAttr("beta", 2)),
		Node("Reshape", []string{"m", "gs"}, []string{"out"}))
	add("Gemm transA", 13, gm, Node("Reshape", []string{"in", "g2"}, []string{"f"}), Node("Transpose", []string{"f"}, []string{"ft"}, IntsAttr("perm", 1, 0)),
		Node("Gemm", []string{"ft", "gb"}, []string{"m"}, intAttr("transA", 1)), Node("Reshape", []string{"m", "gs"}, []string{"out"}))
	indexCases(exact, add, func(h, w int) { cases[len(cases)-1].H, cases[len(cases)-1].W = h, w })
	// MatMul with a vector, as D-FINE's integral weighs its distribution
	// bins by a projection vector; and a vector on the left.
	add("MatMul with vectors", 13, []*onnx.TensorProto{Floats("mv", []int64{12}, weights(12, 17)), Floats("mu", []int64{10}, weights(10, 18))},
		Node("MatMul", []string{"in", "mv"}, []string{"r"}), Node("MatMul", []string{"mu", "in"}, []string{"l"}),
		Node("Concat", []string{"r", "l"}, []string{"out"}, intAttr("axis", 2)))
	// Products of transformer layers: tokens by a weight, in tiles whose
	// edges (120 rows, 70 and 65 columns, K of 3 and 70) are partial.
	add("MatMul of tokens by weights", 13, []*onnx.TensorProto{Int64s("ts", []int64{3}, 0, 3, -1), Floats("w1", []int64{3, 70}, weights(210, 19)),
		Floats("w2", []int64{70, 65}, weights(70*65, 20))},
		Node("Reshape", []string{"in", "ts"}, []string{"t"}), Node("Transpose", []string{"t"}, []string{"tt"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"tt", "w1"}, []string{"h"}), Node("MatMul", []string{"h", "w2"}, []string{"out"}))
	// Products of batched matrices, as attention's scores (tokens by
	// tokens, both operands an image's), and a weight on the left of an
	// image's matrix (broadcast over the batch, not stackable).
	add("MatMul of batched matrices", 13, []*onnx.TensorProto{Int64s("ts", []int64{3}, 0, 3, -1), Floats("w1", []int64{3, 70}, weights(210, 19)),
		Floats("wl", []int64{65, 120}, weights(65*120, 21))},
		Node("Reshape", []string{"in", "ts"}, []string{"t"}), Node("Transpose", []string{"t"}, []string{"tt"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"tt", "w1"}, []string{"h"}), Node("Transpose", []string{"h"}, []string{"ht"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"h", "ht"}, []string{"s"}), Node("MatMul", []string{"wl", "s"}, []string{"out"}))
	// Products whose K and N are multiples of 4 (as a vectorised kernel
	// would want them), with partial tiles on every edge (240 rows of two
	// images, 132 and 200 columns, K 68 and 132), a bias on the last.
	add("MatMul, aligned, partial tiles", 13, []*onnx.TensorProto{Int64s("ts", []int64{3}, 0, 3, -1), Floats("w1", []int64{3, 68}, weights(204, 26)),
		Floats("w2", []int64{68, 132}, weights(68*132, 27)), Floats("w3", []int64{132, 200}, weights(132*200, 28)), Floats("b3", []int64{200}, weights(200, 29))},
		Node("Reshape", []string{"in", "ts"}, []string{"t"}), Node("Transpose", []string{"t"}, []string{"tt"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"tt", "w1"}, []string{"h1"}), Node("MatMul", []string{"h1", "w2"}, []string{"h2"}),
		Node("MatMul", []string{"h2", "w3"}, []string{"h3"}), Node("Add", []string{"h3", "b3"}, []string{"out"}))
	// The batched products again with K, N and every matrix's offset
	// multiples of 4, the shapes a 16-byte-loading kernel would take:
	// each image's matrices (scores of 120 tokens by 120, K 68), then a
	// weight on the left broadcast over the batch (64 rows).
	add("MatMul of batched matrices, aligned", 13, []*onnx.TensorProto{Int64s("ts", []int64{3}, 0, 3, -1), Floats("w1", []int64{3, 68}, weights(204, 30)),
		Floats("wl", []int64{64, 120}, weights(64*120, 31))},
		Node("Reshape", []string{"in", "ts"}, []string{"t"}), Node("Transpose", []string{"t"}, []string{"tt"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"tt", "w1"}, []string{"h"}), Node("Transpose", []string{"h"}, []string{"ht"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"h", "ht"}, []string{"s"}), Node("MatMul", []string{"wl", "s"}, []string{"out"}))
	// Linear layers as exporters write them (MatMul, then Add of the
	// bias, on either side), a ReLU between them, a residual of the
	// same shape after the second, a ReLU after that; a product whose
	// constant Add is not a row (a per-row one) keeps its Add.
	add("Linear layers: bias, Relu, residual", 13, []*onnx.TensorProto{Int64s("ts", []int64{3}, 0, 3, -1), Floats("w1", []int64{3, 70}, weights(210, 19)),
		Floats("b1", []int64{70}, weights(70, 22)), Floats("w2", []int64{70, 65}, weights(70*65, 20)), Floats("b2", []int64{1, 65}, weights(65, 23)),
		Floats("w3", []int64{3, 65}, weights(195, 24)), Floats("br", []int64{120, 1}, weights(120, 25))},
		Node("Reshape", []string{"in", "ts"}, []string{"t"}), Node("Transpose", []string{"t"}, []string{"tt"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"tt", "w3"}, []string{"m3"}), Node("Add", []string{"m3", "br"}, []string{"res"}),
		Node("MatMul", []string{"tt", "w1"}, []string{"m1"}), Node("Add", []string{"m1", "b1"}, []string{"a1"}), Node("Relu", []string{"a1"}, []string{"r1"}),
		Node("MatMul", []string{"r1", "w2"}, []string{"m2"}), Node("Add", []string{"b2", "m2"}, []string{"a2"}),
		Node("Add", []string{"a2", "res"}, []string{"s"}), Node("Relu", []string{"s"}, []string{"out"}))
	// Linear layers over many tokens (2,048 an image, as a DETR's encoder
	// memory), the shapes an engine may hand to a library's product: a
	// bias and a ReLU, then a bias, a residual and a ReLU after it; their
	// input scaled past fp16's range (±65504), which a product that
	// converted it to fp16 would lose.
	add("Linear layers over many tokens, past fp16's range", 13, []*onnx.TensorProto{Int64s("ts", []int64{3}, 0, 3, -1),
		Floats("w1", []int64{3, 68}, weights(204, 32)), Floats("big", nil, []float32{3e4}),
		Floats("w2", []int64{68, 132}, weights(68*132, 33)), Floats("b2", []int64{132}, weights(132, 34)),
		Floats("w3", []int64{132, 200}, weights(132*200, 35)), Floats("b3", []int64{200}, weights(200, 36)),
		Floats("w4", []int64{3, 200}, weights(600, 37))},
		Node("Reshape", []string{"in", "ts"}, []string{"t"}), Node("Transpose", []string{"t"}, []string{"tt"}, IntsAttr("perm", 0, 2, 1)),
		Node("MatMul", []string{"tt", "w1"}, []string{"m1"}), Node("Mul", []string{"m1", "big"}, []string{"h1"}),
		Node("MatMul", []string{"h1", "w2"}, []string{"m2"}), Node("Add", []string{"m2", "b2"}, []string{"a2"}), Node("Relu", []string{"a2"}, []string{"h2"}),
		Node("MatMul", []string{"h2", "w3"}, []string{"m3"}), Node("Add", []string{"m3", "b3"}, []string{"a3"}),
		Node("MatMul", []string{"tt", "w4"}, []string{"res"}), Node("Add", []string{"a3", "res"}, []string{"s"}), Node("Relu", []string{"s"}, []string{"out"}))
	cases[len(cases)-1].H, cases[len(cases)-1].W = 32, 64
	// DepthToSpace as pixel-shuffle exports write it, in both orders.
	for _, mode := range []string{"DCR", "CRD"} {
		add("DepthToSpace "+mode, 13, convt, conv, Node("DepthToSpace", []string{"c"}, []string{"out"}, intAttr("blocksize", 2), strAttr("mode", mode)))
	}
	// Depthwise convolutions as YOLO12's position encoding (7×7, its
	// residual added) and YOLOv10's downsampling (3×3, stride 2) write
	// them, after a 1×1 convolution to 16 channels.
	dw := []*onnx.TensorProto{Floats("w1", []int64{16, 3, 1, 1}, weights(48, 6)), Floats("wd7", []int64{16, 1, 7, 7}, weights(16*49, 7)),
		Floats("bd", []int64{16}, weights(16, 8)), Floats("wd3", []int64{16, 1, 3, 3}, weights(16*9, 9))}
	c1 := Node("Conv", []string{"in", "w1"}, []string{"c1"}, IntsAttr("kernel_shape", 1, 1))
	add("Depthwise 7x7 SiLU residual", 17, dw, c1,
		Node("Conv", []string{"c1", "wd7", "bd"}, []string{"d"}, IntsAttr("kernel_shape", 7, 7), IntsAttr("pads", 3, 3, 3, 3), intAttr("group", 16)),
		Node("Sigmoid", []string{"d"}, []string{"sd"}), Node("Mul", []string{"d", "sd"}, []string{"m"}), Node("Add", []string{"m", "c1"}, []string{"out"}))
	add("Depthwise 3x3 s2", 17, dw, c1,
		Node("Conv", []string{"c1", "wd3", "bd"}, []string{"out"}, IntsAttr("kernel_shape", 3, 3), IntsAttr("strides", 2, 2), IntsAttr("pads", 1, 1, 1, 1), intAttr("group", 16)))
	// Attention as Ultralytics exports it: YOLO11's C2PSA (two heads,
	// keys of 16, values of 32, over 10×12 tokens) and YOLO12's area
	// attention (keys and values of 32 over two areas of 400 tokens, in
	// the batch). Q, K and V come from a 1×1 convolution.
	for _, a := range []struct {
		name                 string
		heads, dk, dv, areas int64
		h, w                 int
		proj, sig            bool
	}{
		{"Attention C2PSA", 2, 16, 32, 1, 10, 12, false, false},
		{"Attention C2PSA projected", 2, 16, 32, 1, 10, 12, true, false},
		{"Attention C2PSA row-major", 2, 16, 32, 1, 10, 12, false, true},
		{"Attention area", 2, 32, 32, 2, 20, 40, false, false},
	} {
		cases = append(cases, OpCase{Name: a.name, Model: AttentionModel(a.heads, a.dk, a.dv, a.areas, a.h, a.w, a.proj, a.sig), H: a.h, W: a.w})
	}
	return cases
}

// indexCases are the operators of DETR-style exports beyond the
// convolutional trunk: masks (comparisons, logic, Where), Clip, Max and
// Min, Cast at run time, the query selection (ReduceMax, TopK, Tile,
// GatherElements), ArgMax, Gather with computed indices, and GridSample;
// size sets the input size of the case added last.
func indexCases(exact, add func(string, int64, []*onnx.TensorProto, ...*onnx.NodeProto), size func(h, w int)) {
	scalar := func(name string, v float32) *onnx.TensorProto { return Floats(name, nil, []float32{v}) }
	exact("Where of comparisons and logic", 17, []*onnx.TensorProto{scalar("a", -0.5), scalar("b", 0.7), scalar("c", -1.2)},
		Node("Greater", []string{"in", "a"}, []string{"g"}), Node("Less", []string{"in", "b"}, []string{"lt"}),
		Node("Not", []string{"lt"}, []string{"nl"}), Node("And", []string{"g", "nl"}, []string{"c1"}),
		Node("LessOrEqual", []string{"in", "c"}, []string{"le"}), Node("Or", []string{"c1", "le"}, []string{"c2"}),
		Node("Xor", []string{"c2", "g"}, []string{"c3"}), Node("Neg", []string{"in"}, []string{"ng"}),
		Node("Where", []string{"c3", "in", "ng"}, []string{"out"}))
	exact("Max, Min of three, Clip", 13, []*onnx.TensorProto{Floats("mx", []int64{3, 1, 1}, []float32{-0.5, 0, 0.5}), scalar("one", 1), scalar("lo", -0.9), scalar("hi", 0.8)},
		Node("Max", []string{"in", "mx"}, []string{"m1"}), Node("Neg", []string{"in"}, []string{"ng"}),
		Node("Min", []string{"m1", "one", "ng"}, []string{"m2"}), Node("Clip", []string{"m2", "lo", "hi"}, []string{"c"}),
		Node("Clip", []string{"in", "", "hi"}, []string{"c2"}), Node("Add", []string{"c", "c2"}, []string{"out"}))
	exact("Clip opset 6", 6, nil, Node("Clip", []string{"in"}, []string{"out"}, floatAttr("min", -0.25), floatAttr("max", 1.5)))
	exact("Cast to integers and bool, integer division", 17, []*onnx.TensorProto{scalar("k", 3.3), Int64s("two", nil, 2), Int64s("zero", nil, 0)},
		Node("Mul", []string{"in", "k"}, []string{"s"}), Node("Cast", []string{"s"}, []string{"i"}, intAttr("to", 7)),
		Node("Div", []string{"i", "two"}, []string{"d"}), Node("Cast", []string{"d"}, []string{"df"}, intAttr("to", 1)),
		Node("Cast", []string{"i"}, []string{"b"}, intAttr("to", 9)), Node("Cast", []string{"b"}, []string{"bf"}, intAttr("to", 1)),
		Node("Equal", []string{"i", "zero"}, []string{"e"}), Node("Cast", []string{"e"}, []string{"ef"}, intAttr("to", 1)),
		Node("Add", []string{"df", "bf"}, []string{"a"}), Node("Sub", []string{"a", "ef"}, []string{"out"}))
	// DETR's query selection: the best class score of every anchor, the
	// top ten anchors, their rows gathered with indices tiled over them.
	exact("TopK, Tile, GatherElements as DETR's query selection", 17,
		[]*onnx.TensorProto{Int64s("rs", []int64{3}, 0, 3, -1), Int64s("k", []int64{1}, 10), Int64s("ax2", []int64{1}, 2), Int64s("rep", []int64{3}, 1, 1, 3)},
		Node("Reshape", []string{"in", "rs"}, []string{"r"}), Node("Transpose", []string{"r"}, []string{"t"}, IntsAttr("perm", 0, 2, 1)),
		Node("ReduceMax", []string{"t"}, []string{"sc"}, IntsAttr("axes", -1), intAttr("keepdims", 0)),
		Node("TopK", []string{"sc", "k"}, []string{"v", "ix"}, intAttr("axis", 1)),
		Node("Unsqueeze", []string{"ix", "ax2"}, []string{"u"}), Node("Tile", []string{"u", "rep"}, []string{"tl"}),
		Node("GatherElements", []string{"t", "tl"}, []string{"ge"}, intAttr("axis", 1)),
		Node("Unsqueeze", []string{"v", "ax2"}, []string{"vu"}), Node("Cast", []string{"u"}, []string{"uf"}, intAttr("to", 1)),
		Node("Concat", []string{"ge", "vu", "uf"}, []string{"out"}, intAttr("axis", 2)))
	exact("TopK smallest along an inner axis", 17, []*onnx.TensorProto{Int64s("k", []int64{1}, 4)},
		Node("TopK", []string{"in", "k"}, []string{"v", "ix"}, intAttr("axis", 2), intAttr("largest", 0)),
		Node("Cast", []string{"ix"}, []string{"xf"}, intAttr("to", 1)), Node("Concat", []string{"v", "xf"}, []string{"out"}, intAttr("axis", 1)))
	// Ties, as near-tied scores are in practice: the input rounded to
	// halves; both engines keep the lower index first, as ONNX Runtime.
	ties := []*onnx.NodeProto{Node("Mul", []string{"in", "k2"}, []string{"m"}), Node("Cast", []string{"m"}, []string{"mi"}, intAttr("to", 7)),
		Node("Cast", []string{"mi"}, []string{"q"}, intAttr("to", 1)), Node("Reshape", []string{"q", "rs"}, []string{"r"})}
	ti := []*onnx.TensorProto{scalar("k2", 2), Int64s("rs", []int64{2}, 0, -1), Int64s("k", []int64{1}, 50)}
	exact("TopK of ties", 17, ti, append(append([]*onnx.NodeProto(nil), ties...),
		Node("TopK", []string{"r", "k"}, []string{"v", "ix"}, intAttr("axis", 1)),
		Node("Cast", []string{"ix"}, []string{"xf"}, intAttr("to", 1)), Node("Concat", []string{"v", "xf"}, []string{"out"}, intAttr("axis", 1)))...)
	// The same over long rows (a DETR's 8,400 anchors, here 6,144 or
	// 2,048), the ties at the k-th value: k of 300, the largest; 500
	// smallest along an inner axis; and 1,100, more than a block-a-row
	// selection keeps.
	long := func(name string, shape []int64, k, axis, largest int64) {
		ts := []*onnx.TensorProto{scalar("k2", 2), Int64s("rs", []int64{int64(len(shape))}, shape...), Int64s("k", []int64{1}, k)}
		exact(name, 17, ts, append(append([]*onnx.NodeProto(nil), ties...),
			Node("TopK", []string{"r", "k"}, []string{"v", "ix"}, intAttr("axis", axis), intAttr("largest", largest)),
			Node("Cast", []string{"ix"}, []string{"xf"}, intAttr("to", 1)), Node("Concat", []string{"v", "xf"}, []string{"out"}, intAttr("axis", axis)))...)
		size(32, 64)
	}
	long("TopK of ties over long rows", []int64{0, -1}, 300, 1, 1)
	long("TopK smallest of ties along a long inner axis", []int64{0, -1, 3}, 500, 1, 0)
	long("TopK of 1,100 over long rows", []int64{0, -1}, 1100, 1, 1)
	for _, last := range []int64{0, 1} {
		exact("ArgMax of ties select_last_index "+string(rune('0'+last)), 13, ti, append(append([]*onnx.NodeProto(nil), ties...),
			Node("ArgMax", []string{"r"}, []string{"a"}, intAttr("axis", 1), intAttr("select_last_index", last)),
			Node("Cast", []string{"a"}, []string{"out"}, intAttr("to", 1)))...)
	}
	exact("ArgMax", 13, nil, Node("ArgMax", []string{"in"}, []string{"a"}, intAttr("axis", 1), intAttr("keepdims", 1)),
		Node("Cast", []string{"a"}, []string{"out"}, intAttr("to", 1)))
	exact("ArgMin last index", 13, nil, Node("ArgMin", []string{"in"}, []string{"a"}, intAttr("axis", 3), intAttr("keepdims", 0), intAttr("select_last_index", 1)),
		Node("Cast", []string{"a"}, []string{"out"}, intAttr("to", 1)))
	exact("Gather at computed indices", 13, []*onnx.TensorProto{Floats("table", []int64{3, 4}, weights(12, 16))},
		Node("ArgMax", []string{"in"}, []string{"a"}, intAttr("axis", 1), intAttr("keepdims", 0)),
		Node("Gather", []string{"table", "a"}, []string{"out"}, intAttr("axis", 0)))
	exact("Gather of a run-time tensor", 13, []*onnx.TensorProto{Int64s("ix", []int64{3}, 2, 0, -1), Int64s("one", nil, 1), Int64s("last", []int64{1}, -1), Int64s("ax2", []int64{1}, 2)},
		Node("Gather", []string{"in", "ix"}, []string{"g1"}, intAttr("axis", 1)),
		Node("Gather", []string{"g1", "one"}, []string{"g2"}, intAttr("axis", 2)),
		Node("Gather", []string{"g1", "last"}, []string{"g3"}, intAttr("axis", 3)),
		Node("Unsqueeze", []string{"g2", "ax2"}, []string{"g2u"}),
		Node("Mul", []string{"g2u", "g3"}, []string{"out"}))
	exact("ScatterND of constants", 16, []*onnx.TensorProto{Floats("sd", []int64{1, 3, 1, 1}, []float32{0, 0, 0}), Int64s("si", []int64{1, 2}, 0, 1),
		Floats("su", []int64{1, 1, 1}, []float32{0.5})},
		Node("ScatterND", []string{"sd", "si", "su"}, []string{"sc"}), Node("Add", []string{"in", "sc"}, []string{"out"}))
	// GridSample as deformable attention samples: a grid made of the
	// input's first two channels (some points outside the map).
	grid := []*onnx.NodeProto{
		Node("Slice", []string{"in", "g0", "g2", "g1"}, []string{"gs"}), Node("Tanh", []string{"gs"}, []string{"gt"}),
		Node("Mul", []string{"gt", "gk"}, []string{"gm"}), Node("Transpose", []string{"gm"}, []string{"grid"}, IntsAttr("perm", 0, 2, 3, 1))}
	gi := []*onnx.TensorProto{Int64s("g0", []int64{1}, 0), Int64s("g2", []int64{1}, 2), Int64s("g1", []int64{1}, 1), scalar("gk", 1.3)}
	for _, g := range []struct {
		name, mode, pad string
		align           int64
	}{{"bilinear zeros", "bilinear", "zeros", 0}, {"bilinear border align_corners", "bilinear", "border", 1}, {"nearest zeros", "nearest", "zeros", 0}} {
		nodes := append(append([]*onnx.NodeProto(nil), grid...), Node("GridSample", []string{"in", "grid"}, []string{"out"},
			strAttr("mode", g.mode), strAttr("padding_mode", g.pad), intAttr("align_corners", g.align)))
		add("GridSample "+g.name, 16, gi, nodes...)
	}
}

// AttentionModel is an attention block as Ultralytics exports it (YOLO11's
// C2PSA, YOLO12's area attention) over h×w inputs: a 1×1 convolution to
// Q, K and V of heads heads (keys of dk, values of dv), the areas in the
// batch, MatMul, scale, Softmax, Transpose, MatMul. With proj, a 1×1
// convolution reads the attention's output, as in the models; with sig,
// Q, K and V go through a Sigmoid first, so that the attention reads a
// row-major tensor, channels not innermost.
func AttentionModel(heads, dk, dv, areas int64, h, w int, proj, sig bool) *onnx.ModelProto {
	c, n := heads*(2*dk+dv), int64(h*w)/areas
	final := "out"
	if proj {
		final = "o4"
	}
	inits := []*onnx.TensorProto{
		Floats("qkvw", []int64{c, 3, 1, 1}, weights(int(c)*3, 5)),
		Int64s("s1", []int64{4}, -1, heads, 2*dk+dv, n),
		Int64s("split", []int64{3}, dk, dk, dv),
		Floats("scale", nil, []float32{float32(1 / math.Sqrt(float64(dk)))}),
		Int64s("s2", []int64{4}, -1, heads*dv, int64(h), int64(w)),
		Floats("projw", []int64{8, heads * dv, 1, 1}, weights(int(8*heads*dv), 10)),
	}
	nodes := []*onnx.NodeProto{
		Node("Conv", []string{"in", "qkvw"}, []string{"qkv"}, IntsAttr("kernel_shape", 1, 1)),
		Node("Reshape", []string{"qkv", "s1"}, []string{"r0"}),
		Node("Identity", []string{"r0"}, []string{"r"}),
		Node("Split", []string{"r", "split"}, []string{"q", "k", "v"}, intAttr("axis", 2)),
		Node("Transpose", []string{"q"}, []string{"qt"}, IntsAttr("perm", 0, 1, 3, 2)),
		Node("MatMul", []string{"qt", "k"}, []string{"s"}),
		Node("Mul", []string{"s", "scale"}, []string{"ss"}),
		Node("Softmax", []string{"ss"}, []string{"p"}, intAttr("axis", -1)),
		Node("Transpose", []string{"p"}, []string{"pt"}, IntsAttr("perm", 0, 1, 3, 2)),
		Node("MatMul", []string{"v", "pt"}, []string{"o"}),
		Node("Reshape", []string{"o", "s2"}, []string{final}),
	}
	if proj {
		nodes = append(nodes, Node("Conv", []string{"o4", "projw"}, []string{"out"}, IntsAttr("kernel_shape", 1, 1)))
	}
	if sig {
		nodes[2] = Node("Sigmoid", []string{"r0"}, []string{"r"})
	}
	mp := Model("in", "out", inits, nodes...)
	mp.OpsetImport[0].Version = proto.Int64(17)
	return mp
}

// weights are n reproducible values in [-0.5, 0.5) from seed.
func weights(n int, seed uint32) []float32 {
	v := make([]float32, n)
	for i := range v {
		seed = seed*1664525 + 1013904223
		v[i] = float32(int32(seed>>8)%2000)/2000 - 0.5
	}
	return v
}

// Mismatches counts the elements of got that differ from want's (NaN
// matching NaN), and the index of the first, or -1: for OpCase.Exact.
func Mismatches(got, want []float32) (n, first int) {
	first = -1
	if len(got) != len(want) {
		return max(len(got), len(want)), 0
	}
	for i := range got {
		if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
			if n++; first < 0 {
				first = i
			}
		}
	}
	return n, first
}
