package graph

import "slices"

// elideCopies removes row-major copies that only move a tensor from one
// buffer to another, the copies Concat and Split leave outside the NHWC
// part of a network (a detection head's reshapes, concatenations and
// splits). A copy goes when
//   - forward: the one step that writes its source can write the copy's
//     destination instead (a Concat slot: the step writes in place), or
//   - backward: the one step that reads its destination can read the
//     copy's source instead (a Split part: the step reads in place),
//
// where that step takes any strides (copies, elementwise steps), the
// buffer in between holds nothing else, and no step in between touches
// the buffer that is read or written in its place.
func (l *lowering) elideCopies() {
	p := l.p
	output := map[int]bool{}
	for _, o := range p.Outputs {
		output[o.Buf] = true
	}
	gone := make([]bool, len(p.Steps))
	for ci := range p.Steps {
		c := p.Steps[ci]
		if c.Kind != KCopy || c.In[0].Elem != c.Out.Elem || c.In[0].Layout != RowMajor || c.Out.Layout != RowMajor {
			continue
		}
		if l.elideForward(ci, gone, output) || l.elideBackward(ci, gone, output) {
			gone[ci] = true
		}
	}
	var kept []Step
	for i, s := range p.Steps {
		if !gone[i] {
			kept = append(kept, s)
		}
	}
	p.Steps = kept
	l.lifetimes()
}

// elideForward has the writer of copy ci's source write its destination.
func (l *lowering) elideForward(ci int, gone []bool, output map[int]bool) bool {
	p := l.p
	c := p.Steps[ci]
	src, dst := c.In[0], c.Out
	if !l.whole(src) || output[src.Buf] {
		return false
	}
	wi, ok := l.only(src.Buf, gone, true)
	if !ok || wi >= ci {
		return false
	}
	if ri, ok := l.only(src.Buf, gone, false); !ok || ri != ci {
		return false
	}
	w := p.Steps[wi]
	if !stridedKind(w.Kind) || !l.whole(w.Out) || w.Out.Buf != src.Buf || w.Out.Elem != dst.Elem || reads(w, dst.Buf) {
		return false
	}
	out, ok := reshapeView(dst, w.Out.Shape)
	if !ok || l.touchedBetween(dst.Buf, wi, ci, gone) {
		return false
	}
	p.Steps[wi].Out = out
	return true
}

// elideBackward has the reader of copy ci's destination read its source.
func (l *lowering) elideBackward(ci int, gone []bool, output map[int]bool) bool {
	p := l.p
	c := p.Steps[ci]
	src, dst := c.In[0], c.Out
	if !l.whole(dst) || output[dst.Buf] {
		return false
	}
	if wi, ok := l.only(dst.Buf, gone, true); !ok || wi != ci {
		return false
	}
	ri, ok := l.only(dst.Buf, gone, false)
	if !ok || ri <= ci {
		return false
	}
	r := p.Steps[ri]
	if !stridedKind(r.Kind) || r.Out.Buf == src.Buf {
		return false
	}
	in := slices.Clone(r.In)
	for k, u := range in {
		if u.Buf != dst.Buf {
			continue
		}
		if !l.whole(u) {
			return false
		}
		v, ok := reshapeView(src, u.Shape)
		if !ok {
			return false
		}
		in[k] = v
	}
	for i := ci + 1; i < ri; i++ {
		if !gone[i] && writes(p.Steps[i], src.Buf) {
			return false
		}
	}
	p.Steps[ri].In = in
	return true
}

// stridedKind reports whether steps of kind k read and write any strides.
func stridedKind(k Kind) bool {
	return k == KCopy || k == KUnary || k == KBinary
}

// whole reports whether v is a packed row-major view of all of its arena
// buffer (the strides of dimensions of size 1 do not matter).
func (l *lowering) whole(v View) bool {
	b := l.p.Bufs[v.Buf]
	if b.Space != SpaceArena || v.Layout != RowMajor || v.Off != 0 || int64(Len(v.Shape))*v.Elem.Size() != b.Bytes {
		return false
	}
	packed := l.newView(v.Buf, v.Shape, v.Elem, RowMajor).Stride
	for d, n := range v.Shape {
		if n != 1 && v.Stride[d] != packed[d] {
			return false
		}
	}
	return true
}

// only returns the one live step that writes (or reads) buf, and whether
// there is exactly one.
func (l *lowering) only(buf int, gone []bool, write bool) (int, bool) {
	found := -1
	for i, s := range l.p.Steps {
		if gone[i] {
			continue
		}
		if (write && writes(s, buf)) || (!write && reads(s, buf)) {
			if found >= 0 {
				return 0, false
			}
			found = i
		}
	}
	return found, found >= 0
}

// touchedBetween reports whether a live step strictly between i and j
// reads buf, or writes it other than through a copy into it (copies into
// one buffer fill disjoint parts of it: a Concat's slots).
func (l *lowering) touchedBetween(buf, i, j int, gone []bool) bool {
	for k := i + 1; k < j; k++ {
		s := l.p.Steps[k]
		if gone[k] {
			continue
		}
		if reads(s, buf) || (writes(s, buf) && !l.fillsPart(k, buf)) {
			return true
		}
	}
	return false
}

// fillsPart reports whether step k writes part of buf as a Concat does:
// it reads nothing of buf, and buf is not its own packed tensor.
func (l *lowering) fillsPart(k, buf int) bool {
	s := l.p.Steps[k]
	return s.Out.Buf == buf && !reads(s, buf) && !l.whole(s.Out)
}

func reads(s Step, buf int) bool {
	for _, v := range s.In {
		if v.Buf == buf {
			return true
		}
	}
	return s.Conv != nil && s.Conv.Residual != nil && s.Conv.Residual.Buf == buf
}

func writes(s Step, buf int) bool {
	return s.Out.Buf == buf || (s.Conv != nil && s.Conv.Raw != nil && s.Conv.Raw.Buf == buf)
}

// lifetimes recomputes every buffer's first and last step.
func (l *lowering) lifetimes() {
	p := l.p
	for i := range p.Bufs {
		p.Bufs[i].First, p.Bufs[i].Last = -1, -1
	}
	for i, s := range p.Steps {
		l.touch(i, s)
	}
	for _, o := range p.Outputs {
		p.Bufs[o.Buf].Last = len(p.Steps)
	}
}

// reshapeView returns v seen with shape (of as many elements, in the same
// row-major order), when strides can express it without a copy.
func reshapeView(v View, shape []int) (View, bool) {
	if Len(v.Shape) != Len(shape) {
		return View{}, false
	}
	st := make([]int64, len(shape))
	if Len(shape) == 0 || len(v.Shape) == 0 {
		return View{}, false
	}
	// Walk v's dimensions from the innermost, a chunk of contiguous ones
	// at a time, and lay the new dimensions over each chunk.
	vd := len(shape) - 1
	base := v.Stride[len(v.Stride)-1]
	var have, want int64 = 1, 1
	for d := len(v.Shape) - 1; d >= 0; d-- {
		have *= int64(v.Shape[d])
		if d == 0 || (v.Shape[d-1] != 1 && v.Stride[d-1] != have*base) {
			for vd >= 0 && (want < have || shape[vd] == 1) {
				st[vd] = want * base
				want *= int64(shape[vd])
				vd--
			}
			if want != have {
				return View{}, false
			}
			if d > 0 {
				base, have, want = v.Stride[d-1], 1, 1
			}
		}
	}
	if vd != -1 {
		return View{}, false
	}
	w := v
	w.Shape, w.Stride = slices.Clone(shape), st
	return w, true
}
