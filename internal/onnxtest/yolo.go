package onnxtest

import (
	"fmt"
	"math/rand"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// builder assembles an ONNX graph node by node.
type builder struct {
	nodes []*onnx.NodeProto
	inits []*onnx.TensorProto
	n     int
	r     *rand.Rand
}

func (b *builder) name(p string) string {
	b.n++
	return fmt.Sprintf("/%s_%d", p, b.n)
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(op string, in []string, attrs ...*onnx.AttributeProto) string {
	return b.opN(op, in, 1, attrs...)[0]
}

func (b *builder) opN(op string, in []string, outs int, attrs ...*onnx.AttributeProto) []string {
	base := b.name(op)
	var out []string
	for i := 0; i < outs; i++ {
		out = append(out, fmt.Sprintf("%s_output_%d", base, i))
	}
	b.nodes = append(b.nodes, &onnx.NodeProto{OpType: proto.String(op), Name: proto.String(base), Input: in, Output: out, Attribute: attrs})
	return out
}

// weight adds a random float initializer scaled for unit-variance outputs.
func (b *builder) weight(scale float32, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(b.r.NormFloat64()) * scale
	}
	name := b.name("w")
	b.inits = append(b.inits, Floats(name, dims, v))
	return name
}

func (b *builder) floatInit(dims []int64, v ...float32) string {
	name := b.name("f")
	b.inits = append(b.inits, Floats(name, dims, v))
	return name
}

func (b *builder) ints(v ...int64) string {
	name := b.name("i")
	b.inits = append(b.inits, Int64s(name, []int64{int64(len(v))}, v...))
	return name
}

// constant adds a Constant node holding int64 values (a scalar when one
// value and scalar is set), as exporters do.
func (b *builder) constant(scalar bool, v ...int64) string {
	var dims []int64
	if !scalar {
		dims = []int64{int64(len(v))}
	}
	t := Int64s("", dims, v...)
	return b.op("Constant", nil, &onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: t})
}

// conv adds Conv (+ Sigmoid·Mul when silu), with bias.
func (b *builder) conv(x string, cin, cout, k, s int64, silu bool) string {
	scale := float32(1.6) / float32(cin*k*k)
	y := b.op("Conv", []string{x, b.weight(scale*float32(k), cout, cin, k, k), b.weight(0.1, cout)},
		IntsAttr("kernel_shape", k, k), IntsAttr("strides", s, s), IntsAttr("pads", k/2, k/2, k/2, k/2), IntsAttr("dilations", 1, 1), intAttr("group", 1))
	if !silu {
		return y
	}
	return b.op("Mul", []string{y, b.op("Sigmoid", []string{y})})
}

func strAttr(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func floatAttr(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// MiniYOLOv8 returns a small random-weight detector built as Ultralytics
// exports YOLOv8/YOLO11 (opset 17, dynamic batch, input "images"
// [N,3,32,32], output "output0" [N,4+3,64]): Conv+SiLU blocks, a C2f block
// split by Shape/Gather/Div/Slice arithmetic, a residual bottleneck, SPPF
// max pooling, nearest and linear Resize, a small attention block
// (MatMul, Softmax, Transpose), LeakyReLU and ReLU convolutions, a DFL head
// (Reshape, Transpose, Softmax, Conv, ReduceSum) and anchors computed at
// run time from Shape, Gather, Cast, Range, Unsqueeze, Expand, Concat and
// ConstantOfShape. It has every operator the GPU engine compiles, in the
// forms exporters write them.
func MiniYOLOv8(seed int64) ([]byte, error) { return miniYOLOv8(seed, false) }

// MiniYOLOv8Static is MiniYOLOv8 exported as `yolo export` does by default:
// batch fixed at 1 and baked into the constant shapes of every Reshape
// ([1, 16, -1], [1, 19, -1], [1, 4, 4, 64], [1, 4, 64]) where the dynamic
// export computes them or writes 0 or -1.
func MiniYOLOv8Static(seed int64) ([]byte, error) { return miniYOLOv8(seed, true) }

func miniYOLOv8(seed int64, static bool) ([]byte, error) {
	b := &builder{r: rand.New(rand.NewSource(seed))}
	lead := int64(0) // the leading dimension of constant shapes: copy, or the baked batch
	if static {
		lead = 1
	}
	x := "images"
	c1 := b.conv(x, 3, 8, 3, 2, true)   // 16×16
	c2 := b.conv(c1, 8, 16, 3, 2, true) // 8×8

	// C2f: split in two halves the way exporters write it.
	a := b.conv(c2, 16, 16, 1, 1, true)
	ch := b.op("Gather", []string{b.op("Shape", []string{a}), b.constant(true, 1)}, intAttr("axis", 0))
	half := b.op("Div", []string{b.op("Add", []string{ch, b.constant(true, 0)}), b.constant(true, 2)})
	halfU := b.op("Unsqueeze", []string{half, b.ints(0)})
	s1 := b.op("Slice", []string{a, b.ints(0), halfU, b.ints(1)})
	s2 := b.op("Slice", []string{a, halfU, b.op("Unsqueeze", []string{ch, b.ints(0)}), b.ints(1)})
	m := b.conv(b.conv(s2, 8, 8, 3, 1, true), 8, 8, 3, 1, true)
	res := b.op("Add", []string{s2, m})
	c3 := b.conv(b.op("Concat", []string{s1, s2, res}, intAttr("axis", 1)), 24, 16, 1, 1, true)

	// SPPF.
	pool := func(x string) string {
		return b.op("MaxPool", []string{x}, IntsAttr("kernel_shape", 5, 5), IntsAttr("pads", 2, 2, 2, 2), IntsAttr("strides", 1, 1), intAttr("ceil_mode", 0))
	}
	p1 := pool(c3)
	p2 := pool(p1)
	c4 := b.conv(b.op("Concat", []string{c3, p1, p2}, intAttr("axis", 1)), 48, 16, 1, 1, true)

	// Attention over the 64 positions (YOLO11's C2PSA, reduced).
	q := b.op("Reshape", []string{c4, b.ints(lead, 16, -1)})
	qt := b.op("Transpose", []string{q}, IntsAttr("perm", 0, 2, 1))
	att := b.op("Softmax", []string{b.op("Mul", []string{b.op("MatMul", []string{qt, q}), b.floatInit(nil, 0.25)})}, intAttr("axis", -1))
	v := b.op("MatMul", []string{q, b.op("Transpose", []string{att}, IntsAttr("perm", 0, 2, 1))})
	c4 = b.op("Add", []string{c4, b.op("Reshape", []string{v, b.op("Shape", []string{c4})})})

	// Upsample twice (nearest as Ultralytics, linear too) and go back down.
	scales := b.floatInit([]int64{4}, 1, 1, 2, 2)
	up := b.op("Resize", []string{c4, "", scales}, strAttr("mode", "nearest"), strAttr("coordinate_transformation_mode", "asymmetric"), strAttr("nearest_mode", "floor"))
	upl := b.op("Resize", []string{c4, "", scales}, strAttr("mode", "linear"), strAttr("coordinate_transformation_mode", "half_pixel"))
	cat := b.op("Concat", []string{b.op("Add", []string{up, upl}), c1}, intAttr("axis", 1))
	c5 := b.conv(cat, 24, 16, 3, 2, true) // 8×8
	c5 = b.op("Relu", []string{b.conv(c5, 16, 16, 3, 1, false)})
	c5 = b.op("LeakyRelu", []string{b.conv(c5, 16, 16, 1, 1, false)}, floatAttr("alpha", 0.1))

	// Head: 4 sides × 4 DFL bins, 3 classes, flattened by shape arithmetic.
	box := b.conv(b.conv(c5, 16, 16, 3, 1, true), 16, 16, 1, 1, false)
	cls := b.conv(b.conv(c5, 16, 16, 3, 1, true), 16, 3, 1, 1, false)
	hc := b.op("Concat", []string{box, cls}, intAttr("axis", 1))
	batch := b.op("Gather", []string{b.op("Shape", []string{hc}), b.constant(true, 0)}, intAttr("axis", 0))
	flat := b.op("Concat", []string{b.op("Unsqueeze", []string{batch, b.ints(0)}), b.constant(false, 19), b.constant(false, -1)}, intAttr("axis", 0))
	if static {
		flat = b.ints(1, 19, -1)
	}
	if !static {
		lead = -1 // inferred, where dynamic
	}
	parts := b.opN("Split", []string{b.op("Reshape", []string{hc, flat}), b.ints(16, 3)}, 2, intAttr("axis", 1))
	dfl := b.op("Softmax", []string{b.op("Transpose", []string{b.op("Reshape", []string{parts[0], b.ints(lead, 4, 4, 64)})}, IntsAttr("perm", 0, 2, 1, 3))}, intAttr("axis", 1))
	bins := b.floatInit([]int64{1, 4, 1, 1}, 0, 1, 2, 3)
	d1 := b.op("Reshape", []string{b.op("Conv", []string{dfl, b.floatInit([]int64{1, 4, 1, 1}, 0, 1, 2, 3)}, IntsAttr("kernel_shape", 1, 1)), b.ints(lead, 4, 64)})
	d2 := b.op("ReduceSum", []string{b.op("Mul", []string{dfl, bins}), b.ints(1)}, intAttr("keepdims", 0))
	dist := b.op("Mul", []string{b.op("Add", []string{d1, d2}), b.floatInit(nil, 0.5)})

	// Anchors from the feature map's size, as exporters leave them.
	shp := b.op("Shape", []string{c5})
	hh := b.op("Cast", []string{b.op("Gather", []string{shp, b.constant(true, 2)}, intAttr("axis", 0))}, intAttr("to", 7))
	ww := b.op("Cast", []string{b.op("Gather", []string{shp, b.constant(true, 3)}, intAttr("axis", 0))}, intAttr("to", 7))
	sx := b.op("Add", []string{b.op("Cast", []string{b.op("Range", []string{b.constant(true, 0), ww, b.constant(true, 1)})}, intAttr("to", 1)), b.floatInit(nil, 0.5)})
	sy := b.op("Add", []string{b.op("Cast", []string{b.op("Range", []string{b.constant(true, 0), hh, b.constant(true, 1)})}, intAttr("to", 1)), b.floatInit(nil, 0.5)})
	hw := b.op("Concat", []string{b.op("Unsqueeze", []string{hh, b.ints(0)}), b.op("Unsqueeze", []string{ww, b.ints(0)})}, intAttr("axis", 0))
	gx := b.op("Expand", []string{b.op("Unsqueeze", []string{sx, b.ints(0)}), hw})
	gy := b.op("Expand", []string{b.op("Unsqueeze", []string{sy, b.ints(1)}), hw})
	grid := b.op("Concat", []string{b.op("Unsqueeze", []string{gx, b.ints(-1)}), b.op("Unsqueeze", []string{gy, b.ints(-1)})}, intAttr("axis", -1))
	anchors := b.op("Unsqueeze", []string{b.op("Transpose", []string{b.op("Reshape", []string{grid, b.ints(-1, 2)})}, IntsAttr("perm", 1, 0)), b.ints(0)})
	strideT := &onnx.TensorProto{DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Dims: []int64{1}, FloatData: []float32{4}}
	stride := b.op("ConstantOfShape", []string{b.ints(1, 1, 64)}, &onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: strideT})

	lt := b.op("Slice", []string{dist, b.ints(0), b.ints(2), b.ints(1)})
	rb := b.op("Slice", []string{dist, b.ints(2), b.ints(4), b.ints(1)})
	x1y1 := b.op("Sub", []string{anchors, lt})
	x2y2 := b.op("Add", []string{anchors, rb})
	cxy := b.op("Div", []string{b.op("Add", []string{x1y1, x2y2}), b.floatInit(nil, 2)})
	wh := b.op("Sub", []string{x2y2, x1y1})
	boxes := b.op("Mul", []string{b.op("Concat", []string{cxy, wh}, intAttr("axis", 1)), stride})
	scores := b.op("Pow", []string{b.op("Sigmoid", []string{parts[1]}), b.floatInit(nil, 2)})
	out := b.op("Concat", []string{boxes, scores}, intAttr("axis", 1))
	b.nodes = append(b.nodes, &onnx.NodeProto{OpType: proto.String("Identity"), Name: proto.String("/out"), Input: []string{out}, Output: []string{"output0"}})

	g := &onnx.GraphProto{
		Name:        proto.String("mini-yolov8"),
		Node:        b.nodes,
		Initializer: b.inits,
		Input:       []*onnx.ValueInfoProto{{Name: proto.String("images"), Type: floatType(dim(lead, "batch"), dim(3, ""), dim(32, ""), dim(32, ""))}},
		Output:      []*onnx.ValueInfoProto{{Name: proto.String("output0"), Type: floatType(dim(lead, "batch"), dim(7, ""), dim(64, ""))}},
	}
	mp := model(g)
	mp.MetadataProps = []*onnx.StringStringEntryProto{{Key: proto.String("names"), Value: proto.String(NamesDict([]string{"person", "car", "bike"}))}}
	return proto.Marshal(mp)
}
