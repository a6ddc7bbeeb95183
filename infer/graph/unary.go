package graph

import (
	"fmt"
	"math"
)

// Elementwise functions beyond the fused activations, by their Step.Code
// in a KUnary step (activations keep Act's codes, 1 to 4). The GPU engine's
// kernels compute the same functions in fp32 (activate in its kernel
// prelude); the reference executor computes them in fp64.
const (
	UnaryExp = 16 + iota
	UnaryLog
	UnarySqrt
	UnaryTanh
	UnaryErf
	UnaryCos
	UnarySin
	UnaryNeg
	UnaryAbs
	UnaryReciprocal
	UnarySoftplus
	UnaryGelu // exact: x·Φ(x)
	UnaryHardSwish
	UnaryMish  // x·tanh(softplus(x)): YOLOv4 and Scaled-YOLOv4
	UnaryNot   // 1 where x is 0, else 0
	UnaryTrunc // toward zero: Cast of a float to an integer
	UnaryBool  // 1 where x is not 0: Cast to bool
)

// unaryMath are the ONNX operators of those functions: the one table that
// shape inference, the reference executor and lowering read.
var unaryMath = map[string]struct {
	code int
	f    func(float64) float64
}{
	"Exp":        {UnaryExp, math.Exp},
	"Log":        {UnaryLog, math.Log},
	"Sqrt":       {UnarySqrt, math.Sqrt},
	"Tanh":       {UnaryTanh, math.Tanh},
	"Erf":        {UnaryErf, math.Erf},
	"Cos":        {UnaryCos, math.Cos},
	"Sin":        {UnarySin, math.Sin},
	"Neg":        {UnaryNeg, func(x float64) float64 { return -x }},
	"Abs":        {UnaryAbs, math.Abs},
	"Reciprocal": {UnaryReciprocal, func(x float64) float64 { return 1 / x }},
	"Softplus":   {UnarySoftplus, func(x float64) float64 { return math.Log1p(math.Exp(x)) }},
	"Gelu":       {UnaryGelu, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }},
	"HardSwish":  {UnaryHardSwish, func(x float64) float64 { return x * math.Min(math.Max(x/6+0.5, 0), 1) }},
	"Mish":       {UnaryMish, func(x float64) float64 { return x * math.Tanh(math.Log1p(math.Exp(x))) }},
}

// unaryValue is the function of code applied to v, as the reference
// computes it.
func unaryValue(code int, v float32) float32 {
	switch code {
	case UnaryNot:
		if v == 0 {
			return 1
		}
		return 0
	case UnaryTrunc:
		return float32(math.Trunc(float64(v)))
	case UnaryBool:
		if v != 0 {
			return 1
		}
		return 0
	}
	for _, u := range unaryMath {
		if u.code == code {
			return float32(u.f(float64(v)))
		}
	}
	return v
}

func opUnaryMath(n *Node, in []*Tensor, data bool) ([]*Tensor, error) {
	if n.Op == "Gelu" && n.attrString("approximate", "none") != "none" {
		return nil, fmt.Errorf("Gelu with approximate=%s: %w", n.attrString("approximate", ""), ErrUnsupported)
	}
	return unary(unaryMath[n.Op].f)(n, in, data)
}
