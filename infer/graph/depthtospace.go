package graph

import (
	"fmt"
	"slices"
)

// DepthToSpace moves blocks of channels into b×b patches of pixels:
// [N, C·b², H, W] → [N, C, H·b, W·b]. In DCR order (ONNX's default) the
// channel of patch pixel (i, j) and output channel c is (i·b+j)·C + c; in
// CRD order it is c·b² + i·b + j. Super-resolution and pixel-shuffle
// exports write it, and the compiler writes it for a ConvTranspose whose
// kernel equals its stride (expandConvTranspose): Ultralytics' mask
// prototypes.
//
// Lowered, a DepthToSpace that reads only a convolution's output moves
// into that convolution: its epilogue writes each pixel's channel blocks
// to their places in the output (ConvStep.Shuffle), so the patches cost no
// pass of their own. Any other is one strided copy.

// blockOrder reads a DepthToSpace node's block size and order.
func blockOrder(n *Node) (b int, dcr bool, err error) {
	b = n.attrInt("blocksize", 0)
	mode := n.attrString("mode", "DCR")
	if b < 1 || mode != "DCR" && mode != "CRD" {
		return 0, false, fmt.Errorf("DepthToSpace of block size %d, mode %q", b, mode)
	}
	return b, mode == "DCR", nil
}

func opDepthToSpace(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	b, dcr, err := blockOrder(n)
	if err != nil {
		return nil, err
	}
	if len(x.Shape) != 4 || x.Shape[1]%(b*b) != 0 {
		return nil, fmt.Errorf("DepthToSpace of block size %d over shape %v", b, x.Shape)
	}
	nb, c, h, w := x.Shape[0], x.Shape[1]/(b*b), x.Shape[2], x.Shape[3]
	out := out1([]int{nb, c, h * b, w * b}, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	gather(out, x, func(idx []int) int {
		i, j := idx[2]%b, idx[3]%b
		ch := (i*b+j)*c + idx[1]
		if !dcr {
			ch = idx[1]*b*b + i*b + j
		}
		return ((idx[0]*x.Shape[1]+ch)*h+idx[2]/b)*w + idx[3]/b
	})
	return []*Tensor{out}, nil
}

// depthToSpace lowers DepthToSpace: into the convolution that wrote its
// input where it can (shuffleConv), else one copy through 6-D views, in
// the destination's memory order: [N, H, i, W, j, C].
func (l *lowering) depthToSpace(n *Node) error {
	b, dcr, err := blockOrder(n)
	if err != nil {
		return err
	}
	x, out := n.In[0], n.Out[0]
	if dcr && l.shuffleConv(x, out, b) {
		return nil
	}
	lay, elem := RowMajor, F32
	if _, ok := l.have[x][NHWC]; ok {
		lay, elem = NHWC, F16
	}
	src, err := l.any(x, lay)
	if err != nil {
		return err
	}
	var y View
	if lay == NHWC {
		y = l.output(out, out.Shape)
	} else {
		y = l.alloc(out.Shape, elem, lay)
	}
	c := int64(out.Shape[1])
	s, t, bb := src.Stride, y.Stride, int64(b)
	ci, cj, cc := bb*c*s[1], c*s[1], s[1]
	if !dcr {
		ci, cj, cc = bb*s[1], s[1], bb*bb*s[1]
	}
	shape := []int{out.Shape[0], x.Shape[2], b, x.Shape[3], b, out.Shape[1]}
	in := src
	in.Shape, in.Stride = shape, []int64{s[0], s[2], ci, s[3], cj, cc}
	dst := y
	dst.Shape, dst.Stride = shape, []int64{t[0], bb * t[2], t[2], bb * t[3], t[3], t[1]}
	l.emit(Step{Kind: KCopy, Node: n.Name, In: []View{in}, Out: dst})
	l.set(out, y)
	return nil
}

// shuffleConv moves a DCR DepthToSpace of block b, from x to out, into the
// convolution step just emitted when that step wrote x (packed NHWC, no
// residual, one group, channels a multiple of 8 after the shuffle) and
// nothing else reads x: the step's output becomes its Raw tensor, and its
// epilogue writes out.
func (l *lowering) shuffleConv(x, out *Value, b int) bool {
	if len(l.p.Steps) == 0 || b < 2 || slices.Contains(l.g.Outputs, x) || len(l.readers()[x]) != 1 {
		return false
	}
	i := len(l.p.Steps) - 1
	s := &l.p.Steps[i]
	xv, ok := l.have[x][NHWC]
	if !ok || s.Kind != KConv || s.Conv.Raw != nil || s.Conv.Residual != nil || s.Conv.Groups != 1 ||
		s.Out.Buf != xv.Buf || s.Out.Off != xv.Off || s.Conv.K%(b*b) != 0 || (s.Conv.K/(b*b))%8 != 0 {
		return false
	}
	if p, packed := PixelStride(s.Out); !packed || p != int64(s.Conv.K) {
		return false
	}
	raw := s.Out
	y := l.alloc(out.Shape, F16, NHWC)
	s.Conv.Raw, s.Out, s.Conv.Shuffle = &raw, y, b
	l.touch(i, *s)
	l.set(out, y)
	return true
}
