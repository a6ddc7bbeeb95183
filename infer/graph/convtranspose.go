package graph

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dsbatch/dsbatch/infer/onnx"
)

// expandConvTranspose rewrites a ConvTranspose whose kernel equals its
// stride (no overlap between the patches it writes: Ultralytics' mask
// prototypes upsample so, kernel 2, stride 2) into operators the engine
// runs: a 1×1 Conv to Co·kh·kw channels, each input pixel's kh×kw patch,
// then what puts each patch in its place. A square kernel takes a
// DepthToSpace (the patch conv's channels in its DCR order, (i·k+j)·Co +
// o), which the lowering folds into the conv's epilogue:
//
//	[N, Ci, H, W] → Conv → [N, k·k·Co, H, W] → DepthToSpace → [N, Co, H·k, W·k]
//
// Other kernels take Transpose and Reshape:
//
//	[N, Ci, H, W] → Conv → [N, Co·kh·kw, H, W] → Transpose → [N, H, W, Co·kh·kw]
//	→ Reshape [N, H, W, Co, kh, kw] → Transpose → [N, Co, H, kh, W, kw]
//	→ Reshape [N, Co, H·kh, W·kw]
//
// The input's shape must be known. Other ConvTransposes are refused.
func (g *Graph) expandConvTranspose(n *Node) ([]*Node, error) {
	if len(n.In) < 2 || n.In[0] == nil || n.In[1] == nil || n.In[1].Const == nil {
		return nil, fmt.Errorf("a ConvTranspose needs constant weights: %w", ErrUnsupported)
	}
	x, wt := n.In[0], n.In[1].Const
	if len(x.Shape) != 4 || len(wt.Shape) != 4 || wt.DType != Float {
		return nil, fmt.Errorf("only 2-D ConvTransposes of float weights: input %v, weight %v: %w", x.Shape, wt.Shape, ErrUnsupported)
	}
	ci, co, kh, kw := wt.Shape[0], wt.Shape[1], wt.Shape[2], wt.Shape[3]
	h, w := x.Shape[2], x.Shape[3]
	zero := func(v []int) bool {
		for _, d := range v {
			if d != 0 {
				return false
			}
		}
		return true
	}
	strides := n.attrInts("strides", []int{1, 1})
	switch {
	case x.Shape[1] != ci:
		return nil, fmt.Errorf("weight %v for %d input channels", wt.Shape, x.Shape[1])
	case n.attrInt("group", 1) != 1, len(strides) != 2 || strides[0] != kh || strides[1] != kw,
		!zero(n.attrInts("pads", nil)), !zero(n.attrInts("output_padding", nil)), n.Attr["output_shape"] != nil,
		len(n.attrInts("dilations", nil)) > 0 && (n.attrInts("dilations", nil)[0] != 1 || n.attrInts("dilations", nil)[1] != 1),
		n.attrString("auto_pad", "NOTSET") != "NOTSET" && n.attrString("auto_pad", "NOTSET") != "VALID":
		return nil, fmt.Errorf("ConvTranspose of kernel %dx%d, strides %v, pads %v, %d groups: only a kernel equal to its strides, no padding, one group: %w",
			kh, kw, strides, n.attrInts("pads", nil), n.attrInt("group", 1), ErrUnsupported)
	}
	k := co * kh * kw
	cw := NewFloat(k, ci, 1, 1)
	cb := NewFloat(k)
	var bias []float32
	if len(n.In) > 2 && n.In[2] != nil {
		if n.In[2].Const == nil || len(n.In[2].Const.F) != co {
			return nil, fmt.Errorf("a ConvTranspose needs a constant bias of %d values: %w", co, ErrUnsupported)
		}
		bias = n.In[2].Const.F
	}
	square := kh == kw
	for o := 0; o < co; o++ {
		for i := 0; i < kh; i++ {
			for j := 0; j < kw; j++ {
				r := (o*kh+i)*kw + j
				if square {
					r = (i*kw+j)*co + o
				}
				for c := 0; c < ci; c++ {
					cw.F[r*ci+c] = wt.F[((c*co+o)*kh+i)*kw+j]
				}
				if bias != nil {
					cb.F[r] = bias[o]
				}
			}
		}
	}
	value := func(suffix string, c *Tensor) *Value {
		v := &Value{Name: n.Name + "/" + suffix, DType: Float}
		if c != nil {
			v.DType, v.Shape, v.Const = c.DType, c.Shape, c
		}
		g.values[v.Name] = v
		return v
	}
	ints := func(suffix string, v ...int) *Value {
		t := NewInt(len(v))
		for i, d := range v {
			t.I[i] = int64(d)
		}
		return value(suffix, t)
	}
	perm := func(p ...int64) map[string]*onnx.AttributeProto {
		return map[string]*onnx.AttributeProto{"perm": {Name: proto.String("perm"), Type: onnx.AttributeProto_INTS.Enum(), Ints: p}}
	}
	node := func(op, suffix string, out *Value, attr map[string]*onnx.AttributeProto, in ...*Value) *Node {
		if attr == nil {
			attr = map[string]*onnx.AttributeProto{}
		}
		m := &Node{Name: n.Name + "/" + suffix, Op: op, In: in, Attr: attr}
		if out == nil {
			out = value(suffix, nil)
		}
		out.Producer = m
		m.Out = []*Value{out}
		return m
	}
	conv := node("Conv", "patches", nil, map[string]*onnx.AttributeProto{
		"kernel_shape": {Name: proto.String("kernel_shape"), Type: onnx.AttributeProto_INTS.Enum(), Ints: []int64{1, 1}}},
		x, value("patch_weights", cw), value("patch_bias", cb))
	if square {
		d2s := node("DepthToSpace", "place", n.Out[0], map[string]*onnx.AttributeProto{
			"blocksize": {Name: proto.String("blocksize"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(int64(kh))},
			"mode":      {Name: proto.String("mode"), Type: onnx.AttributeProto_STRING.Enum(), S: []byte("DCR")}},
			conv.Out[0])
		return []*Node{conv, d2s}, nil
	}
	nhwc := node("Transpose", "nhwc", nil, perm(0, 2, 3, 1), conv.Out[0])
	split := node("Reshape", "split", nil, nil, nhwc.Out[0], ints("split_shape", 0, h, w, co, kh, kw))
	place := node("Transpose", "place", nil, perm(0, 3, 1, 4, 2, 5), split.Out[0])
	out := node("Reshape", "join", n.Out[0], nil, place.Out[0], ints("join_shape", 0, co, h*kh, w*kw))
	return []*Node{conv, nhwc, split, place, out}, nil
}
