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
	p := MemoryPlan{Offset: map[*Value]int64{}}
	for _, b := range bufs {
		list = append(list, b)
		p.Unshared += b.size
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].size != list[j].size {
			return list[i].size > list[j].size
		}
		return list[i].start < list[j].start
	})
	var placed []*buf
	for _, b := range list {
		var live []*buf
		for _, q := range placed {
			if q.start <= b.end && b.start <= q.end {
				live = append(live, q)
			}
		}
		sort.Slice(live, func(i, j int) bool { return live[i].off < live[j].off })
		off := int64(0)
		for _, q := range live {
			if q.off-off >= b.size {
				break
			}
			off = max(off, q.off+q.size)
		}
		b.off = off
		placed = append(placed, b)
		p.Peak = max(p.Peak, off+b.size)
		p.Offset[b.v] = off
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
