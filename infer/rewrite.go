package infer

import (
	"encoding/binary"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// The model rewrites ReadModel makes, so that both engines load the same
// graph with one output of a layout dsbatch decodes:
//   - a DETR-style model's two outputs, boxes and class scores, joined;
//   - post-processing exported into the graph cut off: the top-k of an
//     end-to-end head (YOLOv10, YOLO26: ReduceMax, TopK, GatherElements)
//     and the NMS of an nms=True export. dsbatch does them itself, with
//     ties broken by anchor whatever the engine, and the GPU engine then
//     runs the network;
//   - a segmentation model's mask prototypes, [B, M, mh, mw], joined
//     after its detection output, so that one output carries both.

func (m *Model) rewrite(mp *onnx.ModelProto) error {
	g := mp.GetGraph()
	protos := maskPrototypes(g.GetOutput(), m.Metadata["task"])
	if protos == nil {
		if boxes, scores, ok := boxesAndScores(g.GetOutput()); ok {
			return m.join(mp, boxes, scores)
		}
	}
	if t, head, ok := inGraphPost(g); ok {
		if err := m.cut(mp, t, head, protos); err != nil {
			return err
		}
	}
	if protos != nil {
		return m.joinMasks(mp, protos)
	}
	return nil
}

// MaskOutput is a segmentation model's output of mask prototypes.
type MaskOutput struct {
	Name string
	// Shape is [M, mh, mw] as declared: M prototypes of mh×mw (-1 where
	// dynamic).
	Shape [3]int64
	// Head is the declared shape of the detection output the prototypes
	// were joined after, [B, d1, d2] (-1 where dynamic).
	Head []int64
}

// maskPrototypes finds the prototypes among a model's outputs: a second
// output of rank 4 beside one of rank 3 (Ultralytics' segmentation
// models: output0 with each detection's mask coefficients, output1 the
// prototypes they weigh), with task "segment" when the metadata names one.
func maskPrototypes(outs []*onnx.ValueInfoProto, task string) *onnx.ValueInfoProto {
	if len(outs) != 2 || (task != "" && task != "segment") {
		return nil
	}
	a, b := dims(outs[0].GetType().GetTensorType().GetShape()), dims(outs[1].GetType().GetTensorType().GetShape())
	if len(a) != 3 || len(b) != 4 {
		return nil
	}
	return outs[1]
}

// joinedMasks is the name of the output joinMasks adds.
const joinedMasks = "dsbatch_detections_masks"

// joinMasks rewrites mp so that its one output is [B, 1, d1×d2 + M×mh×mw]:
// per image the detection output's values, then the prototypes'.
func (m *Model) joinMasks(mp *onnx.ModelProto, protos *onnx.ValueInfoProto) error {
	g := mp.GetGraph()
	head := g.GetOutput()[0]
	flat := func(in, out string) *onnx.NodeProto {
		return &onnx.NodeProto{Name: proto.String(out), OpType: proto.String("Flatten"), Input: []string{in}, Output: []string{out},
			Attribute: []*onnx.AttributeProto{{Name: proto.String("axis"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(1)}}}
	}
	shape := joinedMasks + "_shape"
	g.Initializer = append(g.Initializer, &onnx.TensorProto{Name: proto.String(shape), DataType: proto.Int32(int32(onnx.TensorProto_INT64)),
		Dims: []int64{3}, Int64Data: []int64{0, 1, -1}})
	g.Node = append(g.Node, flat(head.GetName(), joinedMasks+"_head"), flat(protos.GetName(), joinedMasks+"_protos"),
		&onnx.NodeProto{Name: proto.String(joinedMasks + "_concat"), OpType: proto.String("Concat"),
			Input: []string{joinedMasks + "_head", joinedMasks + "_protos"}, Output: []string{joinedMasks + "_flat"},
			Attribute: []*onnx.AttributeProto{{Name: proto.String("axis"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(1)}}},
		&onnx.NodeProto{Name: proto.String(joinedMasks), OpType: proto.String("Reshape"),
			Input: []string{joinedMasks + "_flat", shape}, Output: []string{joinedMasks}})
	g.Output = []*onnx.ValueInfoProto{{Name: proto.String(joinedMasks), Type: floatTensor()}}
	b, err := proto.Marshal(mp)
	if err != nil {
		return err
	}
	ps := dims(protos.GetType().GetTensorType().GetShape())
	m.Masks = MaskOutput{Name: protos.GetName(), Shape: [3]int64{ps[1], ps[2], ps[3]}, Head: dims(head.GetType().GetTensorType().GetShape())}
	if m.Cut != "" {
		m.Masks.Head = m.OutputShape
	}
	m.onnx, m.Output = b, joinedMasks
	m.OutputShape = []int64{m.InputShape[0], 1, -1}
	return nil
}

// inGraphPost finds exported post-processing at the end of g, and the
// tensor it starts from: [B, N, 4+C] boxes and class scores per anchor.
// An end-to-end head splits that tensor in boxes (x1, y1, x2, y2) and
// scores and takes the maximum of the scores, then the top k; an nms=True
// export slices boxes (x1, y1, x2, y2 there too) and scores off it before
// its NonMaxSuppression.
func inGraphPost(g *onnx.GraphProto) (string, Head, bool) {
	producer := map[string]*onnx.NodeProto{}
	ops := map[string]bool{}
	for _, n := range g.GetNode() {
		ops[n.GetOpType()] = true
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	consts := constants(g)
	if !ops["TopK"] && !ops["NonMaxSuppression"] {
		return "", 0, false
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "ReduceMax" || len(n.GetInput()) == 0 {
			continue
		}
		p := producer[n.GetInput()[0]]
		switch {
		case p == nil:
		case p.GetOpType() == "Split" && ops["TopK"] && len(p.GetOutput()) >= 2 && len(p.GetOutput()) <= 3 && p.GetOutput()[1] == n.GetInput()[0] && lastAxis(p):
			// boxes, scores and, for a pose, its keypoints.
			sizes := attrInts(p, "split")
			if len(p.GetInput()) > 1 {
				sizes = consts[p.GetInput()[1]]
			}
			if len(sizes) == len(p.GetOutput()) && sizes[0] == 4 {
				return p.GetInput()[0], HeadOne2One, true
			}
		case p.GetOpType() == "Slice" && ops["NonMaxSuppression"] && len(p.GetInput()) >= 4:
			starts, axes := consts[p.GetInput()[1]], consts[p.GetInput()[3]]
			if len(starts) == 1 && starts[0] == 4 && len(axes) == 1 && (axes[0] == 2 || axes[0] == -1) {
				return p.GetInput()[0], HeadNMS, true
			}
		}
	}
	return "", 0, false
}

// cut makes t the model's output, read as head, and drops the nodes it
// does not need; keep, when not nil, stays an output after it (a
// segmentation model's prototypes).
func (m *Model) cut(mp *onnx.ModelProto, t string, head Head, keep *onnx.ValueInfoProto) error {
	g := mp.GetGraph()
	g.Output = []*onnx.ValueInfoProto{{Name: proto.String(t), Type: floatTensor()}}
	need := map[string]bool{t: true}
	if keep != nil {
		g.Output = append(g.Output, keep)
		need[keep.GetName()] = true
	}
	nodes := g.GetNode()
	used := make([]bool, len(nodes))
	for i := len(nodes) - 1; i >= 0; i-- {
		for _, o := range nodes[i].GetOutput() {
			if need[o] {
				used[i] = true
			}
		}
		if used[i] {
			for _, in := range nodes[i].GetInput() {
				need[in] = true
			}
		}
	}
	var kept []*onnx.NodeProto
	for i, n := range nodes {
		if used[i] {
			kept = append(kept, n)
		}
	}
	g.Node = kept
	b, err := proto.Marshal(mp)
	if err != nil {
		return err
	}
	m.onnx, m.Output, m.Cut, m.Head = b, t, t, head
	m.OutputShape = []int64{m.InputShape[0], -1, -1}
	return nil
}

func floatTensor() *onnx.TypeProto {
	return &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnx.TensorProto_FLOAT))}}}
}

func lastAxis(n *onnx.NodeProto) bool {
	for _, a := range n.GetAttribute() {
		if a.GetName() == "axis" {
			return a.GetI() == 2 || a.GetI() == -1
		}
	}
	return false
}

func attrInts(n *onnx.NodeProto, name string) []int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetInts()
		}
	}
	return nil
}

// constants are the graph's int64 initializers and Constant nodes, by name.
func constants(g *onnx.GraphProto) map[string][]int64 {
	out := map[string][]int64{}
	read := func(t *onnx.TensorProto) []int64 {
		if t.GetDataType() != int32(onnx.TensorProto_INT64) {
			return nil
		}
		if v := t.GetInt64Data(); len(v) > 0 {
			return v
		}
		raw := t.GetRawData()
		v := make([]int64, len(raw)/8)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return v
	}
	for _, t := range g.GetInitializer() {
		out[t.GetName()] = read(t)
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Constant" || len(n.GetOutput()) != 1 {
			continue
		}
		for _, a := range n.GetAttribute() {
			if a.GetName() == "value" && a.GetT() != nil {
				out[n.GetOutput()[0]] = read(a.GetT())
			}
		}
	}
	return out
}

// boxesAndScores finds a DETR-style pair among two outputs of rank 3: one
// of four columns (the boxes, or the one named so), one of more.
func boxesAndScores(outs []*onnx.ValueInfoProto) (boxes, scores *onnx.ValueInfoProto, ok bool) {
	if len(outs) != 2 {
		return nil, nil, false
	}
	a, b := dims(outs[0].GetType().GetTensorType().GetShape()), dims(outs[1].GetType().GetTensorType().GetShape())
	if len(a) != 3 || len(b) != 3 {
		return nil, nil, false
	}
	isBoxes := func(d []int64, name string) bool {
		return d[2] == 4 || (d[2] < 0 && strings.Contains(strings.ToLower(name), "box"))
	}
	switch {
	case isBoxes(a, outs[0].GetName()) && !isBoxes(b, outs[1].GetName()):
		return outs[0], outs[1], true
	case isBoxes(b, outs[1].GetName()) && !isBoxes(a, outs[0].GetName()):
		return outs[1], outs[0], true
	}
	return nil, nil, false
}

// joinedOutput is the name of the output join adds.
const joinedOutput = "dsbatch_boxes_scores"

// join rewrites mp so that its one output is boxes and scores side by
// side, [B, Q, 4+C], and makes it the model the engines load.
func (m *Model) join(mp *onnx.ModelProto, boxes, scores *onnx.ValueInfoProto) error {
	g := mp.GetGraph()
	g.Node = append(g.Node, &onnx.NodeProto{
		Name: proto.String("dsbatch_join"), OpType: proto.String("Concat"),
		Input: []string{boxes.GetName(), scores.GetName()}, Output: []string{joinedOutput},
		Attribute: []*onnx.AttributeProto{{Name: proto.String("axis"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(2)}},
	})
	g.Output = []*onnx.ValueInfoProto{{Name: proto.String(joinedOutput), Type: floatTensor()}}
	b, err := proto.Marshal(mp)
	if err != nil {
		return err
	}
	m.onnx, m.Output, m.Joined, m.Head = b, joinedOutput, []string{boxes.GetName(), scores.GetName()}, HeadDETR
	bs, ss := dims(boxes.GetType().GetTensorType().GetShape()), dims(scores.GetType().GetTensorType().GetShape())
	m.OutputShape = []int64{bs[0], bs[1], -1}
	if bs[2] > 0 && ss[2] > 0 {
		m.OutputShape[2] = bs[2] + ss[2]
	}
	return nil
}
