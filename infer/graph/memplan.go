package graph

import "sort"

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
