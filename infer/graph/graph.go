// Package graph compiles an ONNX detector for dsbatch's GPU engine: it
// fixes the input shape, infers every tensor's shape, folds what is known
// at compile time into constants (the Shape, Gather, Range, Expand and Cast
// arithmetic exporters leave behind), fuses convolutions with their
// activation and residual add and attention blocks into one operator,
// lowers the graph to a Program of kernel-sized steps (reading through
// strided views where the exporter only reshaped and transposed), and
// plans activation memory so buffers are reused. A reference fp32
// executor runs the graph on the CPU, so each pass is checked against
// ONNX Runtime without a GPU.
//
// An operator is one entry of the operator table (ops.go): how it infers
// shapes, folds and runs on the reference (eval), and how it lowers to
// steps (lower). A step of a new Kind also needs its launches in the
// engine's stepKernels (infer/gpuplan.go); a conformance case in
// internal/onnxtest/ops.go then checks it against ONNX Runtime, the
// lowering's test machine and, on a GPU, the engine.
//
// It is a package of its own because it is a compiler: pure Go, no cgo,
// used by the GPU engine and tested on machines without one.
package graph

import (
	"errors"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// ErrUnsupported marks an operator or attribute the GPU engine cannot run.
var ErrUnsupported = errors.New("not supported by the GPU engine (use --engine onnxruntime)")

// ErrTooLarge marks a tensor of more elements than the compiler holds or
// the engine indexes. At run time it depends on the batch: a smaller one
// may fit.
var ErrTooLarge = errors.New("tensor too large")

// DType is a tensor's element type.
type DType int

// Element types. Integer and boolean tensors only appear in shape
// arithmetic, which is folded; they are held as int64.
const (
	Float DType = iota
	Int64
)

func (d DType) String() string {
	if d == Int64 {
		return "int64"
	}
	return "float32"
}

// Tensor is a dense row-major tensor held on the host.
type Tensor struct {
	DType DType
	Shape []int
	F     []float32 // when DType is Float
	I     []int64   // when DType is Int64
}

// Len is the number of elements of a shape.
func Len(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// NewFloat returns a zeroed float tensor.
func NewFloat(shape ...int) *Tensor {
	return &Tensor{DType: Float, Shape: append([]int(nil), shape...), F: make([]float32, Len(shape))}
}

// NewInt returns a zeroed int64 tensor.
func NewInt(shape ...int) *Tensor {
	return &Tensor{DType: Int64, Shape: append([]int(nil), shape...), I: make([]int64, Len(shape))}
}

// Ints returns the tensor's elements as ints (float elements truncated).
func (t *Tensor) Ints() []int {
	out := make([]int, Len(t.Shape))
	for i := range out {
		if t.DType == Int64 {
			out[i] = int(t.I[i])
		} else {
			out[i] = int(t.F[i])
		}
	}
	return out
}

// Floats returns the tensor's elements as float64.
func (t *Tensor) Floats() []float64 {
	out := make([]float64, Len(t.Shape))
	for i := range out {
		if t.DType == Int64 {
			out[i] = float64(t.I[i])
		} else {
			out[i] = float64(t.F[i])
		}
	}
	return out
}

// Value is a tensor of the graph: an input, a weight, a constant or an
// intermediate result.
type Value struct {
	Name  string
	DType DType
	Shape []int   // known after Specialize
	Const *Tensor // set when the value is known at compile time
	// Producer is the node computing the value (nil for inputs and constants).
	Producer *Node
}

// Act is an activation fused into a convolution.
type Act int

// Activations the engine fuses.
const (
	ActNone Act = iota
	ActReLU
	ActSiLU
	ActLeakyReLU
	ActSigmoid
)

func (a Act) String() string {
	return [...]string{"", "relu", "silu", "leaky_relu", "sigmoid"}[a]
}

// Node is one operation. After fusion a Conv may carry an activation and
// a residual input added after it.
type Node struct {
	Name string
	Op   string
	In   []*Value // nil entries are omitted optional inputs
	Out  []*Value
	Attr map[string]*onnx.AttributeProto

	Act      Act
	Alpha    float32 // LeakyReLU slope
	Residual *Value  // added after the activation
	PostAct  Act     // applied after the residual (not LeakyReLU)
}

// Graph is a detector's computation, nodes in execution order.
type Graph struct {
	Nodes   []*Node
	Input   *Value
	Outputs []*Value
	// Rebatched says that Specialize ran a graph exported at batch 1 at a
	// larger batch (see rebatcher).
	Rebatched bool
	values    map[string]*Value
}

// Read loads an ONNX file.
func Read(path string) (*Graph, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// Parse loads an ONNX model from its bytes.
func Parse(b []byte) (*Graph, error) {
	var mp onnx.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("not an ONNX file: %w", err)
	}
	return Load(&mp)
}

// Load builds a graph from a parsed ONNX model with one float input.
func Load(mp *onnx.ModelProto) (*Graph, error) {
	gp := mp.GetGraph()
	if gp == nil {
		return nil, errors.New("no graph")
	}
	g := &Graph{values: map[string]*Value{}}
	for _, t := range gp.GetInitializer() {
		c, err := tensorFromProto(t)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", t.GetName(), err)
		}
		g.values[t.GetName()] = &Value{Name: t.GetName(), DType: c.DType, Shape: c.Shape, Const: c}
	}
	for _, in := range gp.GetInput() {
		if _, ok := g.values[in.GetName()]; ok {
			continue // old exporters list weights as inputs too
		}
		if g.Input != nil {
			return nil, fmt.Errorf("more than one input (%q, %q)", g.Input.Name, in.GetName())
		}
		g.Input = &Value{Name: in.GetName(), DType: Float}
		for _, d := range in.GetType().GetTensorType().GetShape().GetDim() {
			g.Input.Shape = append(g.Input.Shape, int(d.GetDimValue())) // 0 where dynamic
		}
		g.values[in.GetName()] = g.Input
	}
	if g.Input == nil {
		return nil, errors.New("no input")
	}
	for i, np := range gp.GetNode() {
		n := &Node{Name: np.GetName(), Op: np.GetOpType(), Attr: map[string]*onnx.AttributeProto{}}
		if n.Name == "" {
			n.Name = fmt.Sprintf("%s_%d", n.Op, i)
		}
		if d := np.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, fmt.Errorf("node %q: op %s of domain %s: %w", n.Name, n.Op, d, ErrUnsupported)
		}
		for _, a := range np.GetAttribute() {
			n.Attr[a.GetName()] = a
		}
		for _, name := range np.GetInput() {
			if name == "" {
				n.In = append(n.In, nil)
				continue
			}
			v, ok := g.values[name]
			if !ok {
				return nil, fmt.Errorf("node %q: input %q is not produced before it (graph not in order?)", n.Name, name)
			}
			n.In = append(n.In, v)
		}
		for _, name := range np.GetOutput() {
			v := &Value{Name: name, Producer: n, DType: Float}
			n.Out = append(n.Out, v)
			if name != "" {
				g.values[name] = v
			}
		}
		g.Nodes = append(g.Nodes, n)
	}
	for _, o := range gp.GetOutput() {
		v, ok := g.values[o.GetName()]
		if !ok {
			return nil, fmt.Errorf("output %q is not produced", o.GetName())
		}
		g.Outputs = append(g.Outputs, v)
	}
	if err := g.expand(); err != nil {
		return nil, err
	}
	return g, nil
}

// tensorFromProto decodes an initializer or a Constant's value.
func tensorFromProto(t *onnx.TensorProto) (*Tensor, error) {
	shape := make([]int, len(t.GetDims()))
	for i, d := range t.GetDims() {
		shape[i] = int(d)
	}
	if err := checkShape(shape, maxData); err != nil {
		// A weight's size does not depend on the batch: the message
		// stays, ErrTooLarge does not.
		return nil, errors.New(err.Error())
	}
	n := Len(shape)
	raw := t.GetRawData()
	switch onnx.TensorProto_DataType(t.GetDataType()) {
	case onnx.TensorProto_FLOAT:
		if len(raw) != 4*n && len(t.GetFloatData()) != n {
			return nil, fmt.Errorf("float tensor %v holds %d bytes / %d floats", shape, len(raw), len(t.GetFloatData()))
		}
		out := &Tensor{DType: Float, Shape: shape, F: make([]float32, n)}
		switch {
		case len(raw) == 4*n:
			for i := range out.F {
				out.F[i] = math.Float32frombits(le32(raw[4*i:]))
			}
		default:
			copy(out.F, t.GetFloatData())
		}
		return out, nil
	case onnx.TensorProto_FLOAT16:
		if len(raw) != 2*n {
			return nil, fmt.Errorf("float16 tensor %v holds %d bytes", shape, len(raw))
		}
		out := &Tensor{DType: Float, Shape: shape, F: make([]float32, n)}
		for i := range out.F {
			out.F[i] = halfToFloat(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
		}
		return out, nil
	case onnx.TensorProto_DOUBLE:
		// As Cast to double does: the compiler's floats are float32, and
		// the engine computes in fp16 with fp32 accumulation (transformers'
		// exports hold float64 constants of position embeddings).
		if len(raw) != 8*n && len(t.GetDoubleData()) != n {
			return nil, fmt.Errorf("float64 tensor %v holds %d bytes / %d values", shape, len(raw), len(t.GetDoubleData()))
		}
		out := &Tensor{DType: Float, Shape: shape, F: make([]float32, n)}
		switch {
		case len(raw) == 8*n:
			for i := range out.F {
				out.F[i] = float32(math.Float64frombits(uint64(le32(raw[8*i:])) | uint64(le32(raw[8*i+4:]))<<32))
			}
		default:
			for i, v := range t.GetDoubleData() {
				out.F[i] = float32(v)
			}
		}
		return out, nil
	case onnx.TensorProto_INT64:
		if len(raw) != 8*n && len(t.GetInt64Data()) != n {
			return nil, fmt.Errorf("int64 tensor %v holds %d bytes / %d ints", shape, len(raw), len(t.GetInt64Data()))
		}
		out := &Tensor{DType: Int64, Shape: shape, I: make([]int64, n)}
		switch {
		case len(raw) == 8*n:
			for i := range out.I {
				out.I[i] = int64(le32(raw[8*i:])) | int64(le32(raw[8*i+4:]))<<32
			}
		default:
			copy(out.I, t.GetInt64Data())
		}
		return out, nil
	case onnx.TensorProto_INT32, onnx.TensorProto_BOOL, onnx.TensorProto_INT8, onnx.TensorProto_UINT8:
		size := map[onnx.TensorProto_DataType]int{onnx.TensorProto_INT32: 4, onnx.TensorProto_BOOL: 1, onnx.TensorProto_INT8: 1, onnx.TensorProto_UINT8: 1}[onnx.TensorProto_DataType(t.GetDataType())]
		if len(raw) != size*n && len(t.GetInt32Data()) != n {
			return nil, fmt.Errorf("integer tensor %v holds %d bytes", shape, len(raw))
		}
		out := &Tensor{DType: Int64, Shape: shape, I: make([]int64, n)}
		switch {
		case len(raw) == size*n:
			for i := range out.I {
				switch size {
				case 4:
					out.I[i] = int64(int32(le32(raw[4*i:])))
				default:
					out.I[i] = int64(raw[i])
				}
			}
		default:
			for i, v := range t.GetInt32Data() {
				out.I[i] = int64(v)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("element type %d: %w", t.GetDataType(), ErrUnsupported)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// halfToFloat converts an IEEE half to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(frac) / 1024 / 16384
		if sign != 0 {
			return -f
		}
		return f
	case exp == 31:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// Value returns the graph's value named name, or nil.
func (g *Graph) Value(name string) *Value { return g.values[name] }

// OpCounts counts the graph's nodes by operator; fused convolutions count
// as "Conv+silu", "Conv+silu+add", "Conv+add+relu" and so on.
func (g *Graph) OpCounts() map[string]int {
	c := map[string]int{}
	for _, n := range g.Nodes {
		op := n.Op
		if n.Op == "MatMul" && len(n.In) > 2 {
			op += "+bias"
		}
		if n.Act != ActNone {
			op += "+" + n.Act.String()
		}
		if n.Residual != nil {
			op += "+add"
		}
		if n.PostAct != ActNone {
			op += "+" + n.PostAct.String()
		}
		c[op]++
	}
	return c
}
