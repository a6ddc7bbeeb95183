package graph

import (
	bin "encoding/binary"
	"errors"
	"math"
	"math/rand"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

// machine runs a Program on the CPU byte for byte as the GPU would: fp16
// buffers hold IEEE halves, views are read through their strides, and a
// convolution's sum is rounded to fp16 before its epilogue, as cuDNN's
// output is. It checks the lowering (layouts, strides, offsets, the memory
// plan) without a GPU.
type machine struct {
	p                 *Program
	arena, in, inNHWC []byte
	consts            map[int][]byte
	t                 *testing.T
	// written marks each element of each buffer stored to: a Program
	// writes every element once (a second write means two steps claim the
	// same memory, which copy elision and in-place Concats must not do).
	written map[int][]bool
	step    int
}

func newMachine(t *testing.T, p *Program, input []float32) *machine {
	m := &machine{p: p, t: t, arena: make([]byte, p.Arena), consts: map[int][]byte{}, written: map[int][]bool{}}
	m.in = make([]byte, 4*len(input))
	for i, f := range input {
		bin.LittleEndian.PutUint32(m.in[4*i:], math.Float32bits(f))
	}
	for i, b := range p.Bufs {
		switch b.Space {
		case SpaceConst:
			m.consts[i] = b.Data
		case SpaceInputNHWC:
			m.inNHWC = make([]byte, b.Bytes)
		}
	}
	// Garbage, not zeros, in the arena: a step that reads what nobody
	// wrote gets nonsense.
	r := rand.New(rand.NewSource(1))
	for i := range m.arena {
		m.arena[i] = byte(r.Intn(256))
	}
	return m
}

func (m *machine) mem(buf int) []byte {
	b := m.p.Bufs[buf]
	switch b.Space {
	case SpaceArena:
		return m.arena[b.Offset : b.Offset+b.Bytes]
	case SpaceConst:
		return m.consts[buf]
	case SpaceInput:
		return m.in
	}
	return m.inNHWC
}

func (m *machine) at(v View, idx []int) int64 {
	o := v.Off
	for i, x := range idx {
		o += int64(x) * v.Stride[i]
	}
	return o
}

func (m *machine) load(v View, e int64) float32 {
	b := m.mem(v.Buf)
	if v.Elem == F16 {
		return halfToFloat(bin.LittleEndian.Uint16(b[2*e:]))
	}
	return math.Float32frombits(bin.LittleEndian.Uint32(b[4*e:]))
}

func (m *machine) store(v View, e int64, f float32) {
	b := m.mem(v.Buf)
	w := m.written[v.Buf]
	if w == nil {
		w = make([]bool, int64(len(b))/v.Elem.Size())
		m.written[v.Buf] = w
	}
	if w[e] {
		m.t.Fatalf("step %d (%s) writes element %d of buffer %d a second time", m.step, m.p.Steps[m.step].Node, e, v.Buf)
	}
	w[e] = true
	if v.Elem == F16 {
		bin.LittleEndian.PutUint16(b[2*e:], floatToHalf(f))
		return
	}
	bin.LittleEndian.PutUint32(b[4*e:], math.Float32bits(f))
}

func each(shape []int, fn func(idx []int)) {
	idx := make([]int, len(shape))
	if Len(shape) == 0 {
		return
	}
	for {
		fn(idx)
		i := len(shape) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

func act(v float32, a Act, alpha float32) float32 {
	if a >= UnaryExp {
		return unaryValue(int(a), v)
	}
	return a.apply(v, alpha)
}

func (m *machine) run() [][]float32 {
	for i, s := range m.p.Steps {
		m.step = i
		m.exec(s)
	}
	var outs [][]float32
	for _, o := range m.p.Outputs {
		out := make([]float32, 0, Len(o.Shape))
		each(o.Shape, func(idx []int) { out = append(out, m.load(o, m.at(o, idx))) })
		outs = append(outs, out)
	}
	return outs
}

func (m *machine) exec(s Step) {
	switch s.Kind {
	case KCopy:
		x := s.In[0]
		each(s.Out.Shape, func(idx []int) { m.store(s.Out, m.at(s.Out, idx), m.load(x, m.at(x, idx))) })
	case KUnary:
		x := s.In[0]
		each(s.Out.Shape, func(idx []int) {
			m.store(s.Out, m.at(s.Out, idx), act(m.load(x, m.at(x, idx)), Act(s.Code), s.Alpha))
		})
	case KBinary:
		a, b := s.In[0], s.In[1]
		each(s.Out.Shape, func(idx []int) {
			x, y := m.load(a, m.at(a, idx)), m.load(b, m.at(b, idx))
			z := float32(binaryValue(s.Code, float64(x), float64(y)))
			m.store(s.Out, m.at(s.Out, idx), z)
		})
	case KLayerNorm:
		x := s.In[0]
		for r := 0; r < s.Outer; r++ {
			base := x.Off + int64(r*s.Dim)
			mean, v := float32(0), float32(0)
			for d := 0; d < s.Dim; d++ {
				mean += m.load(x, base+int64(d))
			}
			mean /= float32(s.Dim)
			for d := 0; d < s.Dim; d++ {
				c := m.load(x, base+int64(d)) - mean
				v += c * c
			}
			inv := 1 / float32(math.Sqrt(float64(v/float32(s.Dim)+s.Alpha)))
			for d := 0; d < s.Dim; d++ {
				y := (m.load(x, base+int64(d)) - mean) * inv * m.load(s.In[1], s.In[1].Off+int64(d))
				if len(s.In) > 2 {
					y += m.load(s.In[2], s.In[2].Off+int64(d))
				}
				m.store(s.Out, s.Out.Off+int64(r*s.Dim+d), y)
			}
		}
	case KSoftmax, KReduce:
		x := s.In[0]
		for o := 0; o < s.Outer; o++ {
			for k := 0; k < s.Inner; k++ {
				base := int64(o*s.Dim*s.Inner + k)
				if s.Kind == KReduce && s.Code >= ReduceArgMax {
					best, at := math.NaN(), 0
					for d := 0; d < s.Dim; d++ {
						v := float64(m.load(x, x.Off+base+int64(d*s.Inner)))
						if d == 0 || argBetter(s.Code, v, best) {
							best, at = v, d
						}
					}
					m.store(s.Out, s.Out.Off+int64(o*s.Inner+k), float32(at))
					continue
				}
				if s.Kind == KReduce {
					sum := float32(0)
					switch s.Code {
					case ReduceMax:
						sum = float32(math.Inf(-1))
					case ReduceMin:
						sum = float32(math.Inf(1))
					}
					for d := 0; d < s.Dim; d++ {
						v := m.load(x, x.Off+base+int64(d*s.Inner))
						switch s.Code {
						case ReduceMax:
							sum = max(sum, v)
						case ReduceMin:
							sum = min(sum, v)
						default:
							sum += v
						}
					}
					if s.Code == ReduceMean {
						sum /= float32(s.Dim)
					}
					m.store(s.Out, s.Out.Off+int64(o*s.Inner+k), sum)
					continue
				}
				mx := float32(math.Inf(-1))
				for d := 0; d < s.Dim; d++ {
					mx = max(mx, m.load(x, x.Off+base+int64(d*s.Inner)))
				}
				sum := float32(0)
				for d := 0; d < s.Dim; d++ {
					sum += float32(math.Exp(float64(m.load(x, x.Off+base+int64(d*s.Inner)) - mx)))
				}
				for d := 0; d < s.Dim; d++ {
					e := float32(math.Exp(float64(m.load(x, x.Off+base+int64(d*s.Inner))-mx))) / sum
					m.store(s.Out, s.Out.Off+base+int64(d*s.Inner), e)
				}
			}
		}
	case KConv:
		m.conv(s)
	case KMaxPool:
		x, g := s.In[0], s.Pool
		each(s.Out.Shape, func(idx []int) {
			n, c, oy, ox := idx[0], idx[1], idx[2], idx[3]
			best, sum, taps, padded := float32(math.Inf(-1)), float32(0), 0, 0
			for ky := 0; ky < g.KH; ky++ {
				iy := oy*g.SH - g.PT + ky*g.DH
				for kx := 0; kx < g.KW; kx++ {
					ix := ox*g.SW - g.PL + kx*g.DW
					if iy >= 0 && iy < x.Shape[2] && ix >= 0 && ix < x.Shape[3] {
						v := m.load(x, m.at(x, []int{n, c, iy, ix}))
						best, sum, taps = max(best, v), sum+v, taps+1
					}
					if iy < x.Shape[2]+g.PB && ix < x.Shape[3]+g.PR {
						padded++
					}
				}
			}
			if g.Avg {
				if g.CountPad {
					taps = padded
				}
				best = sum / float32(max(taps, 1))
			}
			m.store(s.Out, m.at(s.Out, idx), best)
		})
	case KResize:
		x, tab := s.In[0], m.consts[s.Table]
		oh := s.Out.Shape[2]
		get := func(i int) (int, int, float32) {
			f := func(k int) float32 { return math.Float32frombits(bin.LittleEndian.Uint32(tab[4*k:])) }
			return int(f(3 * i)), int(f(3*i + 1)), f(3*i + 2)
		}
		each(s.Out.Shape, func(idx []int) {
			n, c := idx[0], idx[1]
			y0, y1, ay := get(idx[2])
			x0, x1, ax := get(oh + idx[3])
			v := func(y, xx int) float32 { return m.load(x, m.at(x, []int{n, c, y, xx})) }
			r := (1-ay)*((1-ax)*v(y0, x0)+ax*v(y0, x1)) + ay*((1-ax)*v(y1, x0)+ax*v(y1, x1))
			m.store(s.Out, m.at(s.Out, idx), r)
		})
	case KMatMul:
		a, b := s.In[0], s.In[1]
		r := len(s.Out.Shape)
		N, K := s.Out.Shape[r-1], a.Shape[len(a.Shape)-1]
		batch := s.Out.Shape[:r-2]
		as := BroadcastStrides(a.Shape[:len(a.Shape)-2], a.Stride[:len(a.Shape)-2], batch)
		bs := BroadcastStrides(b.Shape[:len(b.Shape)-2], b.Stride[:len(b.Shape)-2], batch)
		each(s.Out.Shape, func(idx []int) {
			oa, ob := a.Off, b.Off
			for i := range batch {
				oa += int64(idx[i]) * as[i]
				ob += int64(idx[i]) * bs[i]
			}
			i, j := idx[r-2], idx[r-1]
			sum := float32(0)
			for k := 0; k < K; k++ {
				sum += m.load(a, oa+int64(i*K+k)) * m.load(b, ob+int64(k*N+j))
			}
			if ep := s.MatMul; ep != nil {
				next := 2
				if ep.Bias {
					sum += m.load(s.In[2], s.In[2].Off+int64(j))
					next++
				}
				sum = ep.Act.apply(sum, ep.Alpha)
				if ep.Residual {
					sum += m.load(s.In[next], m.at(s.In[next], idx))
				}
				sum = ep.PostAct.apply(sum, ep.Alpha)
			}
			m.store(s.Out, m.at(s.Out, idx), sum)
		})
	case KAttention:
		q, k, v := s.In[0], s.In[1], s.In[2]
		r := len(q.Shape)
		N, M, dk, dv := q.Shape[r-2], k.Shape[r-1], q.Shape[r-1], v.Shape[r-2]
		at := func(w View, idx []int, i, j int) int64 {
			e := w.Off + int64(i)*w.Stride[r-2] + int64(j)*w.Stride[r-1]
			for d := range idx {
				e += int64(idx[d]) * w.Stride[d]
			}
			return e
		}
		sc := make([]float64, M)
		each(q.Shape[:r-2], func(idx []int) {
			for i := 0; i < N; i++ {
				mx := math.Inf(-1)
				for j := 0; j < M; j++ {
					acc := 0.0
					for d := 0; d < dk; d++ {
						acc += float64(m.load(q, at(q, idx, i, d))) * float64(m.load(k, at(k, idx, d, j)))
					}
					sc[j] = acc * float64(s.Alpha)
					mx = math.Max(mx, sc[j])
				}
				sum := 0.0
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for c := 0; c < dv; c++ {
					acc := 0.0
					for j := 0; j < M; j++ {
						acc += float64(m.load(v, at(v, idx, c, j))) * sc[j]
					}
					m.store(s.Out, at(s.Out, idx, c, i), float32(acc/sum))
				}
			}
		})
	case KWhere:
		c, a, b := s.In[0], s.In[1], s.In[2]
		each(s.Out.Shape, func(idx []int) {
			v := m.load(b, m.at(b, idx))
			if m.load(c, m.at(c, idx)) != 0 {
				v = m.load(a, m.at(a, idx))
			}
			m.store(s.Out, m.at(s.Out, idx), v)
		})
	case KGather:
		x, ix := s.In[0], s.In[1]
		each(s.Out.Shape, func(idx []int) {
			k, ok := normIndex(int(m.load(ix, m.at(ix, idx))), s.Gather.Dim)
			v := float32(0)
			if ok {
				v = m.load(x, m.at(x, idx)+int64(k)*s.Gather.Stride)
			}
			m.store(s.Out, m.at(s.Out, idx), v)
		})
	case KTopK:
		x, K := s.In[0], Len(s.Out.Shape)/(s.Outer*s.Inner)
		order := make([]int, s.Dim)
		for o := 0; o < s.Outer; o++ {
			for i := 0; i < s.Inner; i++ {
				at := func(j int) float32 { return m.load(x, x.Off+int64((o*s.Dim+j)*s.Inner+i)) }
				for j := range order {
					order[j] = j
				}
				slices.SortFunc(order, func(a, b int) int {
					if topKBefore(at(a), a, at(b), b, s.Code == 1) {
						return -1
					}
					return 1
				})
				for j := 0; j < K; j++ {
					m.store(s.Out, s.Out.Off+int64((o*K+j)*s.Inner+i), float32(order[j]))
				}
			}
		}
	case KGridSample:
		x, g := s.In[0], s.In[1]
		each(s.Out.Shape, func(idx []int) {
			b, c := idx[0], idx[1]
			gx := m.load(g, m.at(g, []int{b, idx[2], idx[3], 0}))
			gy := m.load(g, m.at(g, []int{b, idx[2], idx[3], 1}))
			v := sampleGrid(s.Code, gx, gy, x.Shape[2], x.Shape[3], func(y, xx int) float64 {
				return float64(m.load(x, m.at(x, []int{b, c, y, xx})))
			})
			m.store(s.Out, m.at(s.Out, idx), float32(v))
		})
	default:
		m.t.Fatalf("step kind %d", s.Kind)
	}
}

func (m *machine) conv(s Step) {
	c, x := s.Conv, s.In[0]
	w := m.consts[c.Weight]
	bias := m.consts[c.Bias]
	cg, kg := c.C/c.Groups, c.K/c.Groups
	shape := s.Out.Shape
	if c.Shuffle > 1 {
		shape = []int{c.N, c.K, c.OH, c.OW}
	}
	each(shape, func(idx []int) {
		n, k, oy, ox := idx[0], idx[1], idx[2], idx[3]
		g := k / kg
		sum := float32(0)
		for r := 0; r < c.R; r++ {
			iy := oy*c.StrH - c.PadH + r*c.DilH
			if iy < 0 || iy >= c.H {
				continue
			}
			for q := 0; q < c.S; q++ {
				ix := ox*c.StrW - c.PadW + q*c.DilW
				if ix < 0 || ix >= c.W {
					continue
				}
				base := x.Off + int64(n)*x.Stride[0] + int64(iy)*x.Stride[2] + int64(ix)*x.Stride[3] + int64(g*cg)
				for ci := 0; ci < cg; ci++ {
					wv := halfToFloat(bin.LittleEndian.Uint16(w[2*(((k*c.R+r)*c.S+q)*cg+ci):]))
					sum += wv * m.load(x, base+int64(ci))
				}
			}
		}
		v := halfToFloat(floatToHalf(sum)) + math.Float32frombits(bin.LittleEndian.Uint32(bias[4*k:]))
		v = act(v, c.Act, c.Alpha)
		if c.Residual != nil {
			v += m.load(*c.Residual, m.at(*c.Residual, idx))
		}
		v = act(v, c.PostAct, c.Alpha)
		if b := c.Shuffle; b > 1 {
			q := c.K / (b * b)
			idx = []int{n, k % q, oy*b + k/q/b, ox*b + k/q%b}
		}
		m.store(s.Out, m.at(s.Out, idx), v)
	})
}

func compiled(t *testing.T, path string, batch, h, w int) *Graph {
	t.Helper()
	g, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Specialize(batch, h, w); err != nil {
		t.Fatal(err)
	}
	g.Fuse()
	return g
}

// TestLoweredProgramMatchesReference runs the lowered program of the mini
// YOLOv8 (every operator in exporter form) byte for byte as the GPU would
// and compares it with the fp32 reference executor, itself checked
// against ONNX Runtime; with Concat inputs written in place too, which
// must leave fewer copies.
func TestLoweredProgramMatchesReference(t *testing.T) {
	path := onnxtest.WriteMiniYOLOv8(t, 7)
	copies := map[bool]int{}
	for _, c := range []struct {
		batch   int
		inPlace bool
	}{{1, false}, {3, false}, {1, true}, {3, true}} {
		batch := c.batch
		g := compiled(t, path, batch, 32, 32)
		o := LowerOptions{PadInputChannels: 8}
		if c.inPlace {
			o.InPlaceConcat = []string{"Conv", "MaxPool", "Resize", "Slice", "Split"}
		}
		p, err := g.Lower(o)
		if err != nil {
			t.Fatal(err)
		}
		copies[c.inPlace] = 0
		for _, s := range p.Steps {
			if s.Kind == KCopy {
				copies[c.inPlace]++
			}
			// A convolution writing inside a Concat has cuDNN write a
			// packed scratch tensor first.
			if s.Kind == KConv {
				pix, _ := PixelStride(s.Out)
				inside := pix != int64(s.Conv.K)
				if inside != (s.Conv.Raw != nil) || s.Conv.Raw != nil && !slices.Equal(s.Conv.Raw.Stride, l0(p, s.Conv.Raw).Stride) {
					t.Errorf("%s: output strides %v, raw %v", s.Node, s.Out.Stride, s.Conv.Raw)
				}
			}
		}
		in := NewFloat(batch, 3, 32, 32)
		r := rand.New(rand.NewSource(int64(batch)))
		for i := range in.F {
			in.F[i] = r.Float32()
		}
		want, err := g.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		got := newMachine(t, p, in.F).run()
		if len(got) != 1 || len(got[0]) != len(want[0].F) {
			t.Fatalf("batch %d: %d outputs", batch, len(got))
		}
		if e := onnxtest.RelL2(got[0], want[0].F); e > 1e-2 || math.IsNaN(e) {
			t.Fatalf("batch %d: relative L2 error %.3g against the fp32 reference, want ≤ 1e-2", batch, e)
		} else {
			t.Logf("batch %d, in place %v: %d steps (%d copies), arena %d bytes, rel L2 %.2g", batch, c.inPlace, len(p.Steps), copies[c.inPlace], p.Arena, e)
		}
		checkNoOverlap(t, p)
	}
	if copies[true] >= copies[false] {
		t.Errorf("%d copies with Concat inputs in place, %d without", copies[true], copies[false])
	}
}

// l0 is a packed NHWC view of v's shape, to compare strides with.
func l0(p *Program, v *View) View {
	l := &lowering{p: p}
	return l.newView(v.Buf, v.Shape, v.Elem, NHWC)
}

// checkNoOverlap fails when two arena buffers live at the same time share
// bytes.
func checkNoOverlap(t *testing.T, p *Program) {
	t.Helper()
	for i, a := range p.Bufs {
		for j, b := range p.Bufs[:i] {
			if a.Space != SpaceArena || b.Space != SpaceArena || a.First < 0 || b.First < 0 {
				continue
			}
			live := a.First <= b.Last && b.First <= a.Last
			overlap := a.Offset < b.Offset+b.Bytes && b.Offset < a.Offset+a.Bytes
			if live && overlap {
				t.Fatalf("buffers %d and %d are live together (%d-%d, %d-%d) and overlap", i, j, a.First, a.Last, b.First, b.Last)
			}
		}
	}
}

func TestLowerLayouts(t *testing.T) {
	path := onnxtest.WriteMiniYOLOv8(t, 7)
	g := compiled(t, path, 2, 32, 32)
	p, err := g.Lower(LowerOptions{PadInputChannels: 8})
	if err != nil {
		t.Fatal(err)
	}
	count := map[Kind]int{}
	for _, s := range p.Steps {
		count[s.Kind]++
		if s.Kind == KConv {
			if s.In[0].Layout != NHWC || s.Out.Layout != NHWC || s.Out.Elem != F16 {
				t.Errorf("conv %s: in %v out %v/%v, want NHWC fp16", s.Node, s.In[0].Layout, s.Out.Layout, s.Out.Elem)
			}
			if s.Conv.C%8 != 0 && p.Bufs[s.In[0].Buf].Space == SpaceInputNHWC {
				t.Errorf("conv %s reads the input with %d channels, want a multiple of 8", s.Node, s.Conv.C)
			}
		}
	}
	if p.InputChannels != 8 {
		t.Errorf("input channels %d, want 8", p.InputChannels)
	}
	if count[KConv] == 0 || count[KSoftmax] == 0 {
		t.Errorf("steps %v", count)
	}
	if o := p.Outputs[0]; o.Elem != F32 || o.Layout != RowMajor {
		t.Errorf("output %v %v, want row-major fp32", o.Elem, o.Layout)
	}
}

func TestLowerUnsupported(t *testing.T) {
	g := &Graph{Input: &Value{Name: "x", Shape: []int{1, 3, 8, 8}}}
	y := &Value{Name: "y", DType: Float, Shape: []int{1, 3, 8, 8}}
	g.Nodes = []*Node{{Name: "odd", Op: "ScatterND", In: []*Value{g.Input}, Out: []*Value{y}}}
	g.Outputs = []*Value{y}
	_, err := g.Lower(LowerOptions{})
	if !errors.Is(err, ErrUnsupported) || !slices.Contains([]string{`node "odd" (ScatterND): operator ScatterND: not supported by the GPU engine (use --engine onnxruntime)`}, err.Error()) {
		t.Fatalf("err = %v", err)
	}
}

func TestFloatToHalf(t *testing.T) {
	for _, f := range []float32{0, 1, -1, 0.1, 65504, 1e-5, 6e-8, 3e-8, -2.5, 1.0009765625, 1.00048828125, float32(math.Inf(1))} {
		h := floatToHalf(f)
		back := halfToFloat(h)
		// The nearest half: no other half is closer.
		for _, d := range []int{-1, 1} {
			other := halfToFloat(uint16(int(h) + d))
			if math.Abs(float64(other-f)) < math.Abs(float64(back-f)) {
				t.Errorf("%g → %g, but %g is closer", f, back, other)
			}
		}
	}
	if got := floatToHalf(65520); got != 0x7c00 { // past the largest half: +Inf
		t.Errorf("65520 → %#x, want +Inf", got)
	}
	if got := floatToHalf(1.00048828125); got != 0x3c00 { // a tie: to even
		t.Errorf("tie rounds to %#x", got)
	}
}

// TestLoweredProgramFullModel checks the lowering of a full-size detector
// (DSBATCH_BENCH_MODEL, e.g. the YOLOv8n architecture) at a small input.
func TestLoweredProgramFullModel(t *testing.T) {
	path := os.Getenv("DSBATCH_BENCH_MODEL")
	if path == "" {
		t.Skip("DSBATCH_BENCH_MODEL not set")
	}
	g := compiled(t, path, 1, 640, 640)
	o := LowerOptions{PadInputChannels: 8}
	if ops := os.Getenv("DSBATCH_IN_PLACE"); ops != "" {
		o.InPlaceConcat = strings.Split(ops, ",") // e.g. Conv,MaxPool,Resize,Slice,Split
	}
	p, err := g.Lower(o)
	if err != nil {
		t.Fatal(err)
	}
	in := NewFloat(1, 3, 640, 640)
	r := rand.New(rand.NewSource(3))
	for i := range in.F {
		in.F[i] = r.Float32()
	}
	want, err := g.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	got := newMachine(t, p, in.F).run()
	e := onnxtest.RelL2(got[0], want[0].F)
	t.Logf("%d steps, arena %d bytes, rel L2 %.2g", len(p.Steps), p.Arena, e)
	if e > 1e-2 || math.IsNaN(e) {
		t.Fatalf("relative L2 error %.3g, want ≤ 1e-2", e)
	}
	checkNoOverlap(t, p)
}

// TestLoweredOperators lowers each operator conformance graph at batch 2
// and runs it on the machine: it computes what the reference computes.
// (graph_test's TestOperatorsMatchONNXRuntime ties the reference to ONNX
// Runtime.)
func TestLoweredOperators(t *testing.T) {
	for _, c := range onnxtest.OpCases() {
		t.Run(c.Name, func(t *testing.T) {
			g, err := Load(c.Model)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Specialize(2, c.H, c.W); err != nil {
				t.Fatal(err)
			}
			g.Fuse()
			p, err := g.Lower(LowerOptions{PadInputChannels: 8})
			if err != nil {
				t.Fatal(err)
			}
			in := NewFloat(2, 3, c.H, c.W)
			r := rand.New(rand.NewSource(3))
			for i := range in.F {
				in.F[i] = 4*r.Float32() - 2
			}
			want, err := g.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			got := newMachine(t, p, in.F).run()
			// fp16 where pooling reads NHWC: a relative 1e-3.
			if e := onnxtest.RelL2(got[0], want[0].F); e > 2e-3 || math.IsNaN(e) {
				t.Errorf("relative L2 error %.3g against the reference", e)
			}
			if n, i := onnxtest.Mismatches(got[0], want[0].F); c.Exact && n > 0 {
				t.Errorf("%d elements differ from the reference's, the first %d: %g, want %g", n, i, got[0][i], want[0].F[i])
			}
			checkNoOverlap(t, p)
		})
	}
}

// TestPadChannels: the Focus stem's twelve channels reach the convolution
// padded to sixteen, the padding zeroed by a step of its own, so that
// cuDNN runs a tensor-core kernel; TestLoweredOperators checks the values.
func TestPadChannels(t *testing.T) {
	c, p := loweredCase(t, "Focus stem", LowerOptions{PadInputChannels: 8, InPlaceConcat: []string{"Conv", "MaxPool", "Resize", "Slice", "Split"}})
	var conv *Step
	zeroed := false
	for i, s := range p.Steps {
		if s.Kind == KConv {
			conv = &p.Steps[i]
		}
		if s.Kind == KCopy && p.Bufs[s.In[0].Buf].Space == SpaceConst && slices.Equal(s.Out.Shape, []int{2, 4, c.H / 2, c.W / 2}) {
			zeroed = true
		}
	}
	if conv == nil || conv.Conv.C != 16 {
		t.Fatalf("convolution %+v, want one of 16 input channels", conv)
	}
	if px, _ := PixelStride(conv.In[0]); px != 16 || !zeroed {
		t.Errorf("input pixel stride %d, padding zeroed %v", px, zeroed)
	}
}

// TestPadNHWC: a Pad between convolutions pads their NHWC fp16 maps in
// place of a round trip through row-major fp32; TestLoweredOperators
// checks the values.
func TestPadNHWC(t *testing.T) {
	_, p := loweredCase(t, "Pad between convolutions", LowerOptions{PadInputChannels: 8})
	for _, s := range p.Steps {
		// The network's output is row-major fp32, its input NHWC fp16.
		if s.Out.Buf == p.Outputs[0].Buf || p.Bufs[s.In[0].Buf].Space == SpaceInput {
			continue
		}
		if s.Kind == KCopy && p.Bufs[s.In[0].Buf].Space != SpaceConst &&
			(s.In[0].Layout != s.Out.Layout || s.In[0].Elem != s.Out.Elem) {
			t.Errorf("step %s converts %v %v to %v %v", s.Node, s.In[0].Layout, s.In[0].Elem, s.Out.Layout, s.Out.Elem)
		}
	}
}

// loweredCase lowers the operator conformance case named name at batch 2
// with options o.
func loweredCase(t *testing.T, name string, o LowerOptions) (onnxtest.OpCase, *Program) {
	t.Helper()
	for _, c := range onnxtest.OpCases() {
		if c.Name != name {
			continue
		}
		g, err := Load(c.Model)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Specialize(2, c.H, c.W); err != nil {
			t.Fatal(err)
		}
		g.Fuse()
		p, err := g.Lower(o)
		if err != nil {
			t.Fatal(err)
		}
		return c, p
	}
	t.Fatalf("no operator case %q", name)
	return onnxtest.OpCase{}, nil
}
