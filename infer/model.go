package infer

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// ErrBadModel marks a model file dsbatch cannot use.
var ErrBadModel = errors.New("unusable model")

// Model describes a detector read from an ONNX file.
type Model struct {
	Path        string
	Input       string  // input tensor name
	InputShape  []int64 // [N, 3, H, W]; -1 where dynamic
	Output      string  // first output tensor name
	OutputShape []int64 // as declared; -1 where dynamic
	Names       []string
	Metadata    map[string]string
	Opset       int64
	Producer    string
	Ops         map[string]int // operator counts, for reports
	// Joined names the outputs ReadModel joined into Output: a DETR-style
	// model's boxes [B, Q, 4] and class scores [B, Q, C] become one
	// [B, Q, 4+C] (nil when the model has one output, or more that it
	// leaves alone and of which Output is the first).
	Joined []string
	// Cut names the tensor ReadModel made the output in place of the
	// post-processing exported into the graph (top-k of an end-to-end
	// head, NMS of an nms=True export), which dsbatch does itself, the
	// same way on every engine.
	Cut string
	// Head is the layout of the output as rewritten (0: not rewritten).
	Head Head
	// KeypointShape is a pose model's points per detection and values per
	// point (2: x, y; 3: x, y, visibility), from Ultralytics' kpt_shape
	// metadata; zero for other models.
	KeypointShape [2]int
	// Masks describes a segmentation model's mask prototypes, which
	// ReadModel joins after Output (see joinMasks); zero for other models.
	Masks MaskOutput
	// onnx is the model the engines load: the file's bytes, or the
	// rewritten model.
	onnx []byte
}

// ReadModel parses path as an ONNX detector with one image input
// [N, 3, H, W] of float32. Class names come from the Ultralytics "names"
// metadata when present.
func ReadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	var mp onnx.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("model %s: %w: not an ONNX file (%v)", path, ErrBadModel, err)
	}
	g := mp.GetGraph()
	if g == nil || len(g.GetNode()) == 0 {
		return nil, fmt.Errorf("model %s: %w: no graph (not an ONNX model, or truncated)", path, ErrBadModel)
	}
	m := &Model{Path: path, Metadata: map[string]string{}, Producer: mp.GetProducerName(), Ops: map[string]int{}}
	for _, o := range mp.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			m.Opset = o.GetVersion()
		}
	}
	for _, kv := range mp.GetMetadataProps() {
		m.Metadata[kv.GetKey()] = kv.GetValue()
	}
	for _, n := range g.GetNode() {
		m.Ops[n.GetOpType()]++
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var inputs []*onnx.ValueInfoProto
	for _, in := range g.GetInput() {
		if !inits[in.GetName()] { // old exporters list weights as inputs too
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		return nil, fmt.Errorf("model %s: %w: want one image input, found %d", path, ErrBadModel, len(inputs))
	}
	if len(g.GetOutput()) == 0 {
		return nil, fmt.Errorf("model %s: %w: no output", path, ErrBadModel)
	}
	in := inputs[0]
	tt := in.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != int32(onnx.TensorProto_FLOAT) {
		return nil, fmt.Errorf("model %s: %w: input %q must be a float32 tensor", path, ErrBadModel, in.GetName())
	}
	m.Input, m.InputShape = in.GetName(), dims(tt.GetShape())
	if len(m.InputShape) != 4 || (m.InputShape[1] != 3 && m.InputShape[1] != -1) {
		return nil, fmt.Errorf("model %s: %w: input %q has shape %v, want [N, 3, H, W]", path, ErrBadModel, m.Input, m.InputShape)
	}
	out := g.GetOutput()[0]
	m.Output, m.OutputShape = out.GetName(), dims(out.GetType().GetTensorType().GetShape())
	m.onnx = b
	if err := m.rewrite(&mp); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if k, ok := m.Metadata["kpt_shape"]; ok {
		if m.KeypointShape, err = parseKptShape(k); err != nil {
			return nil, fmt.Errorf("model %s: metadata kpt_shape: %w", path, err)
		}
	}
	if names, ok := m.Metadata["names"]; ok {
		if m.Names, err = ParseNamesDict(names); err != nil {
			return nil, fmt.Errorf("model %s: metadata names: %w", path, err)
		}
	}
	return m, nil
}

func dims(s *onnx.TensorShapeProto) []int64 {
	out := make([]int64, 0, len(s.GetDim()))
	for _, d := range s.GetDim() {
		if v, ok := d.GetValue().(*onnx.TensorShapeProto_Dimension_DimValue); ok && v.DimValue > 0 {
			out = append(out, v.DimValue)
		} else {
			out = append(out, -1)
		}
	}
	return out
}

// InputSize returns the model's input height and width, or imgsz (square)
// when the model leaves them dynamic. Ultralytics' "imgsz" metadata is used
// before imgsz.
func (m *Model) InputSize(imgsz int) (h, w int, err error) {
	h, w = int(m.InputShape[2]), int(m.InputShape[3])
	if h > 0 && w > 0 {
		return h, w, nil
	}
	if s, ok := m.Metadata["imgsz"]; ok && imgsz == 0 {
		f := strings.FieldsFunc(s, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' })
		if len(f) == 2 {
			a, e1 := strconv.Atoi(f[0])
			b, e2 := strconv.Atoi(f[1])
			if e1 == nil && e2 == nil && a > 0 && b > 0 {
				return a, b, nil
			}
		}
	}
	if imgsz <= 0 {
		return 0, 0, fmt.Errorf("model %s has a dynamic input size: give --imgsz", m.Path)
	}
	if imgsz%32 != 0 {
		return 0, 0, fmt.Errorf("--imgsz %d: must be a multiple of 32", imgsz)
	}
	return imgsz, imgsz, nil
}

// ONNX is the model as the engines load it.
func (m *Model) ONNX() []byte { return m.onnx }

// parseKptShape reads Ultralytics' kpt_shape, "[17, 3]".
func parseKptShape(s string) ([2]int, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' || r == '(' || r == ')' })
	if len(f) != 2 {
		return [2]int{}, fmt.Errorf("%q: want [points, 2 or 3]", s)
	}
	k, e1 := strconv.Atoi(f[0])
	d, e2 := strconv.Atoi(f[1])
	if e1 != nil || e2 != nil || k < 1 || k > 1000 || (d != 2 && d != 3) {
		return [2]int{}, fmt.Errorf("%q: want [points, 2 or 3]", s)
	}
	return [2]int{k, d}, nil
}
