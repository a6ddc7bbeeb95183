package onnxtest

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// Model is a model of nodes and inits with one float input named in, of
// shape [N, 3, H, W] with N, H and W dynamic, and one output named out:
// for tests that need a graph of their own.
func Model(in, out string, inits []*onnx.TensorProto, nodes ...*onnx.NodeProto) *onnx.ModelProto {
	return model(&onnx.GraphProto{
		Name:        proto.String("onnxtest"),
		Node:        nodes,
		Initializer: inits,
		Input:       []*onnx.ValueInfoProto{{Name: proto.String(in), Type: floatType(dim(0, "batch"), dim(3, ""), dim(0, "height"), dim(0, "width"))}},
		Output:      []*onnx.ValueInfoProto{{Name: proto.String(out)}},
	})
}

// model wraps g as an opset 17 model.
func model(g *onnx.GraphProto) *onnx.ModelProto {
	return &onnx.ModelProto{
		IrVersion:    proto.Int64(8),
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		ProducerName: proto.String("dsbatch-onnxtest"),
		Graph:        g,
	}
}

// dim is a fixed dimension v, or the dynamic one named param where v ≤ 0.
func dim(v int64, param string) *onnx.TensorShapeProto_Dimension {
	if v > 0 {
		return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: param}}
}

// floatType is the type of a float tensor of dimensions dims.
func floatType(dims ...*onnx.TensorShapeProto_Dimension) *onnx.TypeProto {
	return &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Shape: &onnx.TensorShapeProto{Dim: dims}}}}
}

// Node is a node named op_out[0].
func Node(op string, in, out []string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: proto.String(op), Name: proto.String(op + "_" + out[0]), Input: in, Output: out, Attribute: attrs}
}

// IntsAttr is an attribute holding integers.
func IntsAttr(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INTS.Enum(), Ints: v}
}

// IntAttr is an attribute holding one integer.
func IntAttr(name string, v int64) *onnx.AttributeProto { return intAttr(name, v) }

func intAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// Floats is a float tensor of dimensions dims holding v as raw data; v
// need not fill dims, so that tests can make malformed tensors.
func Floats(name string, dims []int64, v []float32) *onnx.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return &onnx.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Dims: dims, RawData: raw}
}

// Int64s is an int64 tensor of dimensions dims (a scalar where nil)
// holding v, unnamed where name is empty (a Constant's value).
func Int64s(name string, dims []int64, v ...int64) *onnx.TensorProto {
	t := &onnx.TensorProto{DataType: proto.Int32(int32(onnx.TensorProto_INT64)), Dims: dims, Int64Data: v}
	if name != "" {
		t.Name = proto.String(name)
	}
	return t
}
