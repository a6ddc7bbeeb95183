// Package onnxtest writes small ONNX detectors whose outputs are known
// exactly, for tests of the inference engines and the pipeline, and finds
// the ONNX Runtime library that `make setup` installs.
package onnxtest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// Detector describes a model with input "images" [Batch, 3, H, W] and
// output "output0" [Batch, D1, D2] where image b's output is
// Raw + mean(image b) × K (Raw and K hold D1×D2 values).
type Detector struct {
	Batch  int64 // 0: dynamic
	H, W   int64 // 0: dynamic
	D1, D2 int
	Raw, K []float32
	// Names, when set, are written as Ultralytics' "names" metadata.
	Names []string
	// Metadata holds further metadata_props.
	Metadata map[string]string
	// BoxColumns, when set, splits the output in two along its last axis
	// as DETR-style exports write them (Hugging Face's RT-DETR, RF-DETR):
	// "logits" [B, D1, D2-BoxColumns], listed first, and "pred_boxes"
	// [B, D1, BoxColumns], the first columns.
	BoxColumns int
	// TopK, when set, appends the post-processing an end-to-end export
	// writes into its graph (YOLOv10, YOLO26: Split into boxes and scores,
	// ReduceMax, TopK of the anchors, GatherElements, Flatten, TopK of the
	// pairs, Div and Mod, GatherElements of the boxes, Concat): the output
	// becomes [B, TopK, 6], x1, y1, x2, y2, score, class, and output0 the
	// [B, D1, D2] tensor it reads (boxes then D2-4 class scores per row).
	TopK int
	// Protos, when set, adds a segmentation model's second output
	// "output1" [B, M, mh, mw] of mask prototypes (ProtoShape: M, mh,
	// mw), the same for every image, as Ultralytics' -seg models have.
	Protos     []float32
	ProtoShape [3]int64
	// Symbolic declares the outputs' sizes by name, not value, as
	// Ultralytics' dynamic exports do ("anchors", "mask_height").
	Symbolic bool
	// ConvMean computes the mean with an H×W convolution and a Reshape
	// instead of ReduceMean, so that the GPU engine compiles the model
	// (it needs H and W).
	ConvMean bool
}

// Bytes returns the serialised ONNX model.
func (d Detector) Bytes() ([]byte, error) {
	n := d.D1 * d.D2
	if len(d.Raw) != n || (d.K != nil && len(d.K) != n) {
		return nil, fmt.Errorf("onnxtest: Raw and K need %d values", n)
	}
	k := d.K
	if k == nil {
		k = make([]float32, n)
	}
	if d.ConvMean && (d.H <= 0 || d.W <= 0) {
		return nil, fmt.Errorf("onnxtest: ConvMean needs a fixed H and W")
	}
	g := &onnx.GraphProto{
		Name: proto.String("onnxtest"),
		Node: []*onnx.NodeProto{
			Node("ReduceMean", []string{"images"}, []string{"mean"}, IntsAttr("axes", 1, 2, 3), intAttr("keepdims", 0)),
			Node("Unsqueeze", []string{"mean", "axes12"}, []string{"mean3"}),
			Node("Mul", []string{"mean3", "k"}, []string{"scaled"}),
			Node("Add", []string{"scaled", "raw"}, []string{"output0"}),
		},
		Initializer: []*onnx.TensorProto{
			Floats("raw", []int64{1, int64(d.D1), int64(d.D2)}, d.Raw),
			Floats("k", []int64{1, int64(d.D1), int64(d.D2)}, k),
			Int64s("axes12", []int64{2}, 1, 2),
		},
		Input:  []*onnx.ValueInfoProto{{Name: proto.String("images"), Type: floatType(dim(d.Batch, "batch"), dim(3, ""), dim(d.H, "height"), dim(d.W, "width"))}},
		Output: []*onnx.ValueInfoProto{{Name: proto.String("output0"), Type: floatType(dim(d.Batch, "batch"), dim(int64(d.D1), ""), dim(int64(d.D2), ""))}},
	}
	if d.ConvMean {
		w := make([]float32, 3*d.H*d.W)
		for i := range w {
			w[i] = 1 / float32(len(w))
		}
		g.Node[0] = Node("Conv", []string{"images", "meanw"}, []string{"mean4"}, IntsAttr("kernel_shape", d.H, d.W))
		g.Node[1] = Node("Reshape", []string{"mean4", "shape3"}, []string{"mean3"})
		g.Initializer = append(g.Initializer, Floats("meanw", []int64{1, 3, d.H, d.W}, w),
			Int64s("shape3", []int64{3}, -1, 1, 1))
	}
	if k := int64(d.TopK); k > 0 {
		c := int64(d.D2 - 4)
		split := Node("Split", []string{"preds", "t_split"}, []string{"boxes", "scores"}, intAttr("axis", -1))
		sizes := []int64{4, c}
		if d.Protos != nil { // boxes, scores and mask coefficients, as YOLO26-seg splits them
			c -= d.ProtoShape[0]
			split.Output = append(split.Output, "coefficients")
			sizes = []int64{4, c, d.ProtoShape[0]}
		}
		g.Node[len(g.Node)-1].Output = []string{"preds"}
		g.Node = append(g.Node,
			split,
			Node("ReduceMax", []string{"scores"}, []string{"best"}, IntsAttr("axes", -1), intAttr("keepdims", 0)),
			Node("TopK", []string{"best", "t_k"}, []string{"topv", "topi"}),
			Node("Unsqueeze", []string{"topi", "t_last"}, []string{"topi3"}),
			Node("Tile", []string{"topi3", "t_repc"}, []string{"topic"}),
			Node("GatherElements", []string{"scores", "topic"}, []string{"sel"}, intAttr("axis", 1)),
			Node("Flatten", []string{"sel"}, []string{"flat"}, intAttr("axis", 1)),
			Node("TopK", []string{"flat", "t_k"}, []string{"score", "pair"}),
			Node("Div", []string{"pair", "t_nc"}, []string{"rank"}),
			Node("Mod", []string{"pair", "t_nc"}, []string{"label"}),
			Node("GatherElements", []string{"topi", "rank"}, []string{"anchor"}, intAttr("axis", 1)),
			Node("Unsqueeze", []string{"anchor", "t_last"}, []string{"anchor3"}),
			Node("Tile", []string{"anchor3", "t_rep4"}, []string{"anchor4"}),
			Node("GatherElements", []string{"boxes", "anchor4"}, []string{"box"}, intAttr("axis", 1)),
			Node("Unsqueeze", []string{"score", "t_last"}, []string{"score3"}),
			Node("Unsqueeze", []string{"label", "t_last"}, []string{"label3"}),
			Node("Cast", []string{"label3"}, []string{"labelf"}, intAttr("to", int64(onnx.TensorProto_FLOAT))),
			Node("Concat", []string{"box", "score3", "labelf"}, []string{"output0"}, intAttr("axis", -1)),
		)
		g.Initializer = append(g.Initializer, Int64s("t_split", []int64{int64(len(sizes))}, sizes...), Int64s("t_k", []int64{1}, k), Int64s("t_last", []int64{1}, -1),
			Int64s("t_repc", []int64{3}, 1, 1, c), Int64s("t_rep4", []int64{3}, 1, 1, 4), Int64s("t_nc", nil, c))
		g.Output = []*onnx.ValueInfoProto{{Name: proto.String("output0"), Type: floatType(dim(d.Batch, "batch"), dim(k, ""), dim(6, ""))}}
	}
	if b := int64(d.BoxColumns); b > 0 {
		g.Node[len(g.Node)-1].Output = []string{"joined"}
		g.Node = append(g.Node, Node("Split", []string{"joined", "cols"}, []string{"pred_boxes", "logits"}, intAttr("axis", 2)))
		g.Initializer = append(g.Initializer, Int64s("cols", []int64{2}, b, int64(d.D2)-b))
		g.Output = []*onnx.ValueInfoProto{
			{Name: proto.String("logits"), Type: floatType(dim(d.Batch, "batch"), dim(int64(d.D1), ""), dim(int64(d.D2)-b, ""))},
			{Name: proto.String("pred_boxes"), Type: floatType(dim(d.Batch, "batch"), dim(int64(d.D1), ""), dim(b, ""))},
		}
	}
	if d.Symbolic {
		for _, o := range g.Output {
			for i, dm := range o.GetType().GetTensorType().GetShape().GetDim() {
				if i > 0 {
					dm.Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: fmt.Sprintf("%s_dim_%d", o.GetName(), i)}
				}
			}
		}
	}
	if d.Protos != nil {
		s := d.ProtoShape
		if int64(len(d.Protos)) != s[0]*s[1]*s[2] {
			return nil, fmt.Errorf("onnxtest: Protos need %d values", s[0]*s[1]*s[2])
		}
		dims := []*onnx.TensorShapeProto_Dimension{dim(d.Batch, "batch"), dim(s[0], ""), dim(s[1], ""), dim(s[2], "")}
		if d.Symbolic {
			dims[2], dims[3] = dim(0, "mask_height"), dim(0, "mask_width")
		}
		g.Node = append(g.Node,
			Node("Unsqueeze", []string{"mean3", "p_axis"}, []string{"mean4p"}),
			Node("Mul", []string{"mean4p", "p_zero"}, []string{"p_zeros"}),
			Node("Add", []string{"p_zeros", "p_protos"}, []string{"output1"}))
		g.Initializer = append(g.Initializer, Int64s("p_axis", []int64{1}, 3), Floats("p_zero", []int64{1, s[0], s[1], s[2]}, make([]float32, len(d.Protos))),
			Floats("p_protos", []int64{1, s[0], s[1], s[2]}, d.Protos))
		g.Output = append(g.Output, &onnx.ValueInfoProto{Name: proto.String("output1"), Type: floatType(dims...)})
	}
	m := model(g)
	if d.Names != nil {
		m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: proto.String("names"), Value: proto.String(NamesDict(d.Names))})
	}
	for key, v := range d.Metadata {
		m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: proto.String(key), Value: proto.String(v)})
	}
	return proto.Marshal(m)
}

// Write saves the model to path.
func (d Detector) Write(path string) error {
	b, err := d.Bytes()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// pyEscape escapes a string for a single-quoted Python literal, as
// Python's repr writes the characters infer.ParseNamesDict reads escaped.
var pyEscape = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\t", `\t`)

// NamesDict formats names as Ultralytics does: {0: 'person', 1: 'car'}.
func NamesDict(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%d: '%s'", i, pyEscape.Replace(n))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ORTLib returns the ONNX Runtime library for tests: $DSBATCH_ORT_LIB, or
// bin/libonnxruntime.so.1 at the module root, where `make setup` puts it.
func ORTLib() (string, error) {
	if p := os.Getenv("DSBATCH_ORT_LIB"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "libonnxruntime.so.1")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("ONNX Runtime not installed at %s: run `make setup`", p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// WriteMiniYOLOv8 writes MiniYOLOv8(seed) into a test's temporary folder
// and returns its path.
func WriteMiniYOLOv8(t testing.TB, seed int64) string {
	t.Helper()
	b, err := MiniYOLOv8(seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "mini.onnx", b)
}

// WriteModel writes mp as name into a test's temporary folder and returns
// its path.
func WriteModel(t testing.TB, name string, mp *onnx.ModelProto) string {
	t.Helper()
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, name, b)
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// RelL2 is the relative L2 error of got against want.
func RelL2(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}
