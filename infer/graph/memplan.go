package graph

import (
	"slices"
	"sort"
)

// MemoryPlan places every activation of a specialised graph in one arena:
// tensors whose lifetimes do not overlap share memory.
type MemoryPlan struct {
	// Offset is each value's byte offset in the arena. Views (Reshape,
	// Flatten, Squeeze, Unsqueeze, Identity) share their source's offset.
	Offset map[*Value]int64
	// Peak is the arena's size: the memory the activations need.
	Peak int64
	// Unshared is what they would need with a buffer each.
	Unshared int64
}

// views are operators whose output is their input under another shape.
var views = map[string]bool{"Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true, "Identity": true}

// IsView reports whether n's output aliases its first input.
func IsView(n *Node) bool { return views[n.Op] && n.In[0].Const == nil }

// PlanMemory assigns arena offsets for elements of elemSize bytes, each
// buffer aligned to align bytes. The graph input is left out (the caller
// owns it); graph outputs live to the end.
func (g *Graph) PlanMemory(elemSize, align int64) MemoryPlan {
	root := map[*Value]*Value{}
	find := func(v *Value) *Value {
		for root[v] != nil {
			v = root[v]
		}
		return v
	}
	type buf struct {
		v          *Value
		size       int64
		start, end int
		off        int64
	}
	bufs := map[*Value]*buf{}
	for i, n := range g.Nodes {
		if IsView(n) {
			root[n.Out[0]] = n.In[0]
		} else {
			for _, v := range n.Out {
				if v.Name != "" || len(n.Out) == 1 {
					size := (int64(Len(v.Shape))*elemSize + align - 1) / align * align
					bufs[v] = &buf{v: v, size: size, start: i, end: i}
				}
			}
		}
		for _, v := range append(slices.Clone(n.In), n.Residual) {
			if v == nil {
				continue
			}
			if b := bufs[find(v)]; b != nil && b.end < i {
				b.end = i
			}
		}
	}
	for _, o := range g.Outputs {
		if b := bufs[find(o)]; b != nil {
			b.end = len(g.Nodes)
		}
	}
	list := make([]*buf, 0, len(bufs))
	var iv []Interval
	p := MemoryPlan{Offset: map[*Value]int64{}}
	for _, b := range bufs {
		list = append(list, b)
		iv = append(iv, Interval{Size: b.size, Start: b.start, End: b.end})
		p.Unshared += b.size
	}
	offs, peak := Pack(iv)
	p.Peak = peak
	for i, b := range list {
		b.off = offs[i]
		p.Offset[b.v] = b.off
	}
	for _, n := range g.Nodes {
		if IsView(n) {
			if r := find(n.Out[0]); bufs[r] != nil {
				p.Offset[n.Out[0]] = bufs[r].off
			}
		}
	}
	return p
}

// Interval is a buffer of Size bytes live from step Start to step End,
// both included.
type Interval struct {
	Size       int64
	Start, End int
}

// Pack places the buffers in one arena, largest first, each at the lowest
// offset where it overlaps no buffer live at the same time. It returns the
// offsets, in the order given, and the arena's size.
func Pack(iv []Interval) ([]int64, int64) {
	order := make([]int, len(iv))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := iv[order[i]], iv[order[j]]
		if a.Size != b.Size {
			return a.Size > b.Size
		}
		return a.Start < b.Start
	})
	offs := make([]int64, len(iv))
	var placed []int
	var peak int64
	for _, i := range order {
		b := iv[i]
		var live []int
		for _, q := range placed {
			if iv[q].Start <= b.End && b.Start <= iv[q].End {
				live = append(live, q)
			}
		}
		sort.Slice(live, func(x, y int) bool { return offs[live[x]] < offs[live[y]] })
		off := int64(0)
		for _, q := range live {
			if offs[q]-off >= b.Size {
				break
			}
			off = max(off, offs[q]+iv[q].Size)
		}
		offs[i] = off
		placed = append(placed, i)
		peak = max(peak, off+b.Size)
	}
	return offs, peak
}
