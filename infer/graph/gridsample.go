package graph

import (
	"fmt"
	"math"
	"slices"
)

// GridSample as deformable attention (RT-DETR, D-FINE) samples its
// feature maps: 4-D input, bilinear or nearest, zeros or border padding,
// both align_corners conventions. The GPU kernel (grid_sample_f) follows
// sampleGrid step for step.

// Mode bits of a KGridSample step's Code.
const (
	GridNearest      = 1
	GridBorder       = 2
	GridAlignCorners = 4
)

// gridMode reads GridSample's attributes as KGridSample's mode bits.
func gridMode(n *Node) (int, error) {
	code := 0
	switch m := n.attrString("mode", "bilinear"); m {
	case "bilinear", "linear":
	case "nearest":
		code |= GridNearest
	default:
		return 0, fmt.Errorf("GridSample mode %s: %w", m, ErrUnsupported)
	}
	switch p := n.attrString("padding_mode", "zeros"); p {
	case "zeros":
	case "border":
		code |= GridBorder
	default:
		return 0, fmt.Errorf("GridSample padding_mode %s: %w", p, ErrUnsupported)
	}
	if n.attrInt("align_corners", 0) != 0 {
		code |= GridAlignCorners
	}
	return code, nil
}

func gridShape(x, grid []int) ([]int, error) {
	if len(x) != 4 || len(grid) != 4 || grid[3] != 2 || grid[0] != x[0] {
		return nil, fmt.Errorf("GridSample of %v at a grid %v, want [N,C,H,W] and [N,Ho,Wo,2]: %w", x, grid, ErrUnsupported)
	}
	return []int{x[0], x[1], grid[1], grid[2]}, nil
}

func opGridSample(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x, grid := in[0], in[1]
	code, err := gridMode(n)
	if err != nil {
		return nil, err
	}
	shape, err := gridShape(x.Shape, grid.Shape)
	if err != nil {
		return nil, err
	}
	out := out1(shape, Float, data)
	if !data {
		return []*Tensor{out}, nil
	}
	N, C, H, W, Ho, Wo := shape[0], shape[1], x.Shape[2], x.Shape[3], shape[2], shape[3]
	xf, gf := x.Floats(), grid.Floats()
	for b := 0; b < N; b++ {
		for i := 0; i < Ho*Wo; i++ {
			g := (b*Ho*Wo + i) * 2
			for c := 0; c < C; c++ {
				plane := xf[(b*C+c)*H*W:][:H*W]
				out.F[(b*C+c)*Ho*Wo+i] = float32(sampleGrid(code, float32(gf[g]), float32(gf[g+1]), H, W,
					func(y, x int) float64 { return plane[y*W+x] }))
			}
		}
	}
	return []*Tensor{out}, nil
}

// gridCoord maps a normalised coordinate to a pixel one, clipped to the
// border in border mode.
func gridCoord(code int, g float32, size int) float32 {
	var p float32
	if code&GridAlignCorners != 0 {
		p = (g + 1) / 2 * float32(size-1)
	} else {
		p = ((g+1)*float32(size) - 1) / 2
	}
	if code&GridBorder != 0 {
		p = min(max(p, 0), float32(size-1))
	}
	return p
}

// sampleGrid is one output value: the input at (gx, gy) through at,
// points outside the input reading 0.
func sampleGrid(code int, gx, gy float32, h, w int, at func(y, x int) float64) float64 {
	px, py := gridCoord(code, gx, w), gridCoord(code, gy, h)
	read := func(y, x int) float64 {
		if y < 0 || y >= h || x < 0 || x >= w {
			return 0
		}
		return at(y, x)
	}
	if !(px > -1 && py > -1 && px < float32(w) && py < float32(h)) {
		return 0 // no neighbour inside (NaN too)
	}
	if code&GridNearest != 0 {
		return read(int(math.RoundToEven(float64(py))), int(math.RoundToEven(float64(px))))
	}
	fx, fy := float32(math.Floor(float64(px))), float32(math.Floor(float64(py)))
	ax, ay := px-fx, py-fy
	x0, y0 := int(fx), int(fy)
	return float64((1-ay)*(1-ax))*read(y0, x0) + float64((1-ay)*ax)*read(y0, x0+1) +
		float64(ay*(1-ax))*read(y0+1, x0) + float64(ay*ax)*read(y0+1, x0+1)
}

func (l *lowering) gridSample(n *Node) error {
	code, err := gridMode(n)
	if err != nil {
		return err
	}
	shape, err := gridShape(n.In[0].Shape, n.In[1].Shape)
	if err != nil {
		return err
	}
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	g, err := l.get(n.In[1], RowMajor, F32)
	if err != nil {
		return err
	}
	y := l.alloc(slices.Clone(shape), F32, RowMajor)
	l.emit(Step{Kind: KGridSample, Node: n.Name, In: []View{x, g}, Out: y, Code: code})
	l.set(n.Out[0], y)
	return nil
}
