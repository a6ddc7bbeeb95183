package graph

import (
	"fmt"
	"math"
)

// Comparisons, logic, selection and clamping: the masks transformers'
// exports compute (DETR's valid anchors, Expand's shape guards) and the
// inverse sigmoid of their decoders. Booleans are Int64 tensors of 0 and
// 1; on the GPU every run-time integer is an fp32 holding an integer
// (exact below 2²⁴, which the operators that make indices check).

// compareOps are the comparison and logic operators by their binary code:
// the one table folding, the reference and lowering read.
var compareOps = map[string]int{
	"Equal": OpEqual, "Less": OpLess, "Greater": OpGreater, "LessOrEqual": OpLessEq, "GreaterOrEqual": OpGreaterEq,
	"And": OpAnd, "Or": OpOr, "Xor": OpXor,
}

// binaryValue is the binary operation of code on a and b, as the
// reference computes it and the GPU kernels do (binary_t).
func binaryValue(code int, a, b float64) float64 {
	bool01 := func(c bool) float64 {
		if c {
			return 1
		}
		return 0
	}
	switch code {
	case OpAdd:
		return a + b
	case OpSub:
		return a - b
	case OpMul:
		return a * b
	case OpDiv:
		return a / b
	case OpPow:
		return math.Pow(a, b)
	case OpMax:
		if a >= b || a != a {
			return a
		}
		return b
	case OpMin:
		if a <= b || a != a {
			return a
		}
		return b
	case OpEqual:
		return bool01(a == b)
	case OpLess:
		return bool01(a < b)
	case OpGreater:
		return bool01(a > b)
	case OpLessEq:
		return bool01(a <= b)
	case OpGreaterEq:
		return bool01(a >= b)
	case OpAnd:
		return bool01(a != 0 && b != 0)
	case OpOr:
		return bool01(a != 0 || b != 0)
	case OpXor:
		return bool01((a != 0) != (b != 0))
	case OpDivTrunc:
		return math.Trunc(a / b)
	}
	return math.NaN()
}

// binaryCode is the code of a binary operator on operands of type dt.
func binaryCode(op string, dt DType) (int, bool) {
	if c, ok := compareOps[op]; ok {
		return c, true
	}
	switch op {
	case "Add":
		return OpAdd, true
	case "Sub":
		return OpSub, true
	case "Mul":
		return OpMul, true
	case "Div":
		if dt == Int64 {
			return OpDivTrunc, true
		}
		return OpDiv, true
	case "Pow":
		return OpPow, true
	case "Max":
		return OpMax, true
	case "Min":
		return OpMin, true
	}
	return 0, false
}

// opBinary evaluates the binary operators of binaryCode: outputs of the
// first operand's type, booleans (Int64) for comparisons. Max and Min
// take one or more operands.
func opBinary(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, fmt.Errorf("no operands")
	}
	acc := in[0]
	if len(in) == 1 {
		return []*Tensor{acc}, nil
	}
	for _, b := range in[1:] {
		if b == nil {
			return nil, fmt.Errorf("missing operand")
		}
		t, err := binaryPair(n.Op, acc, b, data)
		if err != nil {
			return nil, err
		}
		acc = t
	}
	return []*Tensor{acc}, nil
}

func binaryPair(op string, a, b *Tensor, data bool) (*Tensor, error) {
	code, _ := binaryCode(op, a.DType)
	shape, err := broadcast(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	dt := a.DType
	if _, ok := compareOps[op]; ok {
		dt = Int64
	}
	out := out1(shape, dt, data)
	if !data {
		return out, nil
	}
	as, bs := bstrides(a.Shape, shape), bstrides(b.Shape, shape)
	af, bf := a.Floats(), b.Floats()
	eachIndex(shape, func(o int, idx []int) {
		ia, ib := 0, 0
		for i, v := range idx {
			ia += v * as[i]
			ib += v * bs[i]
		}
		r := binaryValue(code, af[ia], bf[ib])
		if dt == Float {
			out.F[o] = float32(r)
		} else {
			out.I[o] = int64(r)
		}
	})
	return out, nil
}

// opNot negates a boolean tensor.
func opNot(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	out := out1(in[0].Shape, Int64, data)
	if data {
		for i, v := range in[0].Floats() {
			if v == 0 {
				out.I[i] = 1
			}
		}
	}
	return []*Tensor{out}, nil
}

// opWhere selects x where the condition holds, else y, all three
// broadcast.
func opWhere(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	c, x, y := in[0], in[1], in[2]
	if c == nil || x == nil || y == nil {
		return nil, fmt.Errorf("Where takes three inputs")
	}
	shape, err := broadcast(c.Shape, x.Shape)
	if err != nil {
		return nil, err
	}
	if shape, err = broadcast(shape, y.Shape); err != nil {
		return nil, err
	}
	out := out1(shape, x.DType, data)
	if !data {
		return []*Tensor{out}, nil
	}
	cs, xs, ys := bstrides(c.Shape, shape), bstrides(x.Shape, shape), bstrides(y.Shape, shape)
	cf, xf, yf := c.Floats(), x.Floats(), y.Floats()
	eachIndex(shape, func(o int, idx []int) {
		ic, ix, iy := 0, 0, 0
		for i, v := range idx {
			ic += v * cs[i]
			ix += v * xs[i]
			iy += v * ys[i]
		}
		r := yf[iy]
		if cf[ic] != 0 {
			r = xf[ix]
		}
		if out.DType == Float {
			out.F[o] = float32(r)
		} else {
			out.I[o] = int64(r)
		}
	})
	return []*Tensor{out}, nil
}

// clipBounds reads Clip's bounds: inputs since opset 11, attributes
// before; a missing bound is infinite.
func clipBounds(n *Node) (lo, hi float64, err error) {
	lo, hi = math.Inf(-1), math.Inf(1)
	if _, ok := n.Attr["min"]; ok {
		lo = float64(n.attrFloat("min", 0))
	}
	if _, ok := n.Attr["max"]; ok {
		hi = float64(n.attrFloat("max", 0))
	}
	for i, p := range []*float64{&lo, &hi} {
		c, err := n.constInput(i + 1)
		if err != nil {
			return 0, 0, err
		}
		if c != nil {
			if Len(c.Shape) != 1 {
				return 0, 0, fmt.Errorf("bound of shape %v, want a scalar", c.Shape)
			}
			*p = c.Floats()[0]
		}
	}
	return lo, hi, nil
}

func opClip(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	lo, hi, err := clipBounds(n)
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := out1(x.Shape, x.DType, data)
	if data {
		for i, v := range x.Floats() {
			v = binaryValue(OpMin, binaryValue(OpMax, v, lo), hi)
			if x.DType == Float {
				out.F[i] = float32(v)
			} else {
				out.I[i] = int64(v)
			}
		}
	}
	return []*Tensor{out}, nil
}

// opCast converts between types: to an integer type it truncates, to
// bool it tests for non-zero.
func opCast(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	x := in[0]
	to := n.attrInt("to", 1)
	dt := Int64
	if to == 1 || to == 10 || to == 11 { // float, float16, double
		dt = Float
	}
	out := out1(x.Shape, dt, data)
	if !data {
		return []*Tensor{out}, nil
	}
	for i, v := range x.Floats() {
		switch {
		case dt == Float:
			out.F[i] = float32(v)
		case to == 9: // bool
			if v != 0 {
				out.I[i] = 1
			}
		default:
			out.I[i] = int64(v)
		}
	}
	return []*Tensor{out}, nil
}

// castCode is the unary step a run-time Cast takes (0: none, a copy).
func castCode(n *Node) int {
	to := n.attrInt("to", 1)
	switch {
	case to == 9:
		return UnaryBool
	case n.Out[0].DType == Int64 && n.In[0].DType == Float:
		return UnaryTrunc
	}
	return 0
}

// cast lowers a run-time Cast: to an integer type a truncation, to bool
// a test, else a view of its input.
func (l *lowering) cast(n *Node) error {
	code := castCode(n)
	if code == 0 {
		return l.identity(n)
	}
	return l.unaryStep(n, code, 0)
}

func (l *lowering) not(n *Node) error { return l.unaryStep(n, UnaryNot, 0) }

// unaryStep lowers n as one elementwise step of code over fp32 rows.
func (l *lowering) unaryStep(n *Node, code int, alpha float32) error {
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	y := l.alloc(n.Out[0].Shape, F32, RowMajor)
	l.emit(Step{Kind: KUnary, Node: n.Name, In: []View{x}, Out: y, Code: code, Alpha: alpha})
	l.set(n.Out[0], y)
	return nil
}

// scalar uploads one number as a constant.
func (l *lowering) scalar(f float64) View {
	b := make([]byte, 4)
	putF32(b, float32(f))
	buf := l.newBuf(SpaceConst, 4)
	l.p.Bufs[buf].Data = b
	return l.newView(buf, []int{}, F32, RowMajor)
}

// clip lowers Clip as Max with its lower bound, then Min with its upper.
func (l *lowering) clip(n *Node) error {
	lo, hi, err := clipBounds(n)
	if err != nil {
		return err
	}
	x, err := l.get(n.In[0], RowMajor, F32)
	if err != nil {
		return err
	}
	shape, steps := n.Out[0].Shape, 0
	for _, b := range []struct {
		code int
		v    float64
	}{{OpMax, lo}, {OpMin, hi}} {
		if math.IsInf(b.v, 0) {
			continue
		}
		y := l.alloc(shape, F32, RowMajor)
		l.emit(Step{Kind: KBinary, Node: n.Name, In: []View{x, broadcastView(l.scalar(b.v), shape)}, Out: y, Code: b.code})
		x, steps = y, steps+1
	}
	if steps == 0 {
		return l.identity(n)
	}
	l.set(n.Out[0], x)
	return nil
}

// where lowers Where: one select step over fp32 rows.
func (l *lowering) where(n *Node) error {
	shape := n.Out[0].Shape
	in := make([]View, 3)
	for i, v := range n.In {
		w, err := l.get(v, RowMajor, F32)
		if err != nil {
			return err
		}
		in[i] = broadcastView(w, shape)
	}
	y := l.alloc(shape, F32, RowMajor)
	l.emit(Step{Kind: KWhere, Node: n.Name, In: in, Out: y})
	l.set(n.Out[0], y)
	return nil
}
