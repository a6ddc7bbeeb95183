package graph

import (
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/dsbatch/dsbatch/internal/onnxtest"
)

func TestReshapeView(t *testing.T) {
	for _, c := range []struct {
		name       string
		shape      []int
		stride     []int64
		to         []int
		want       []int64
		impossible bool
	}{
		{"packed split", []int{2, 6}, []int64{6, 1}, []int{2, 2, 3}, []int64{6, 3, 1}, false},
		{"packed merge", []int{2, 2, 3}, []int64{6, 3, 1}, []int{12}, []int64{1}, false},
		{"concat slot", []int{2, 6, 12}, []int64{120, 20, 1}, []int{2, 6, 3, 4}, []int64{120, 20, 4, 1}, false},
		{"channel slice", []int{2, 4, 20}, []int64{180, 20, 1}, []int{2, 2, 2, 20}, []int64{180, 40, 20, 1}, false},
		{"merge inside a slot", []int{2, 4, 20}, []int64{180, 20, 1}, []int{2, 80}, []int64{180, 1}, false},
		{"merge across a gap", []int{2, 4, 20}, []int64{180, 20, 1}, []int{8, 20}, nil, true},
		{"merge rows of a slot", []int{2, 6, 3, 4}, []int64{120, 20, 4, 1}, []int{2, 6, 12}, []int64{120, 20, 1}, false},
		{"transposed", []int{3, 4}, []int64{1, 3}, []int{12}, nil, true},
		{"unit dims", []int{1, 5, 1}, []int64{99, 1, 7}, []int{5}, []int64{1}, false},
		{"element count differs", []int{2, 3}, []int64{3, 1}, []int{7}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := View{Shape: c.shape, Stride: c.stride, Off: 5}
			w, ok := reshapeView(v, c.to)
			if ok == c.impossible {
				t.Fatalf("possible %v, want %v (%v)", ok, !c.impossible, w.Stride)
			}
			if !ok {
				return
			}
			if !slices.Equal(w.Stride, c.want) || !slices.Equal(w.Shape, c.to) || w.Off != 5 {
				t.Fatalf("got %v %v +%d, want %v %v +5", w.Shape, w.Stride, w.Off, c.to, c.want)
			}
			// Every element, in row-major order, lands where v has it.
			var a, b []int64
			each(c.shape, func(idx []int) { a = append(a, offsetOf(v, idx)) })
			each(c.to, func(idx []int) { b = append(b, offsetOf(w, idx)) })
			if !slices.Equal(a, b) {
				t.Fatalf("element offsets %v, want %v", b, a)
			}
		})
	}
}

func offsetOf(v View, idx []int) int64 {
	o := v.Off
	for i, x := range idx {
		o += int64(x) * v.Stride[i]
	}
	return o
}

// TestElideCopies lowers the mini YOLOv8 with and without copy elision:
// the head's Concat and Split copies must go, and the outputs must not
// change by a single bit (elision only removes moves).
func TestElideCopies(t *testing.T) {
	g := compiled(t, onnxtest.WriteMiniYOLOv8(t, 7), 2, 32, 32)
	o := LowerOptions{PadInputChannels: 8, InPlaceConcat: []string{"Conv", "MaxPool", "Resize", "Slice", "Split"}}
	elided, err := g.Lower(o)
	if err != nil {
		t.Fatal(err)
	}
	o.KeepCopies = true
	kept, err := g.Lower(o)
	if err != nil {
		t.Fatal(err)
	}
	copies := func(p *Program) int {
		n := 0
		for _, s := range p.Steps {
			if s.Kind == KCopy && s.In[0].Layout == RowMajor && s.Out.Layout == RowMajor && s.In[0].Elem == s.Out.Elem {
				n++
			}
		}
		return n
	}
	t.Logf("row-major copies: %d kept, %d elided; steps %d → %d; arena %d → %d",
		copies(kept), copies(elided), len(kept.Steps), len(elided.Steps), kept.Arena, elided.Arena)
	// The mini head: the class half of the Split is read in place by the
	// Sigmoid, the two Slices of the box distances by the Sub and Add that
	// take them, and the four tensors of the two Concats are written in
	// place by the steps that make them. (The box half of the Split stays:
	// a transpose reads it.)
	if got, want := len(kept.Steps)-len(elided.Steps), 7; got != want {
		t.Errorf("%d steps elided, want %d", got, want)
	}
	if elided.Arena > kept.Arena {
		t.Errorf("arena grew from %d to %d bytes", kept.Arena, elided.Arena)
	}
	out := elided.Outputs[0].Buf
	writers := 0
	for _, s := range elided.Steps {
		if s.Out.Buf == out {
			writers++
			if s.Kind == KCopy {
				t.Errorf("step %s still copies into the output", s.Node)
			}
		}
	}
	if writers != 2 {
		t.Errorf("%d steps write the output, want 2 (boxes and classes)", writers)
	}
	in := make([]float32, 2*3*32*32)
	r := rand.New(rand.NewSource(5))
	for i := range in {
		in[i] = r.Float32()
	}
	a := newMachine(t, kept, in).run()
	b := newMachine(t, elided, in).run()
	for i := range a[0] {
		if math.Float32bits(a[0][i]) != math.Float32bits(b[0][i]) {
			t.Fatalf("output %d: %g with copies, %g without", i, a[0][i], b[0][i])
		}
	}
	checkNoOverlap(t, elided)
}
