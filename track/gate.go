package track

import (
	"math"
	"sort"
)

// candidates returns the (track, detection) pairs that may be matched:
// boxes of the same class (unless agnostic) whose cost 1 − IoU is within
// maxCost, by track. Each class has a uniform grid over its detections,
// so that a frame costs about the number of boxes, not tracks ×
// detections, even where boxes are as large as the frame and every cell
// holds them all.
//
// The pairs live in s (nil: fresh memory) until its next use.
func candidates(s *scratch, tb []Box, tc []int, db []Box, dc []int, agnostic bool, maxCost float64) []edge {
	if len(tb) == 0 || len(db) == 0 {
		return nil
	}
	if s == nil {
		s = &scratch{}
	}
	classOf := func(c int) int { return c }
	if agnostic {
		classOf = func(int) int { return 0 }
	}
	t := (1 - maxCost) * (1 - 1e-9) // the least IoU, a little less: rounding never rejects a pair within the gate
	s.gen++
	if s.classes == nil {
		s.classes = map[int]*class{}
	}
	for _, c := range tc {
		cl := s.classes[classOf(c)]
		if cl == nil {
			cl = &class{}
			s.classes[classOf(c)] = cl
		}
		if cl.gen != s.gen {
			cl.reset(s.gen)
		}
	}
	for j, c := range dc {
		if cl := s.classes[classOf(c)]; cl != nil && cl.gen == s.gen {
			cl.add(int32(j), db[j], t)
		} // else no track of the class
	}
	out, near := s.edges[:0], s.near
	defer func() { s.edges, s.near = out, near }()
	for i, b := range tb {
		cl := s.classes[classOf(tc[i])]
		if len(cl.ds) == 0 {
			continue
		}
		if !cl.indexed {
			cl.index()
		}
		ks := cl.all
		if cl.g != nil {
			near = cl.g.query(b, near[:0])
			ks = near
		}
		bx1, by1, bx2, by2 := float64(b.X1), float64(b.Y1), float64(b.X2), float64(b.Y2)
		tbw, tbh := t*float64(b.X2-b.X1), t*float64(b.Y2-b.Y1)
		for _, k := range ks {
			if cl.g != nil {
				if cl.seen[k] == int32(i+1) {
					continue
				}
				cl.seen[k] = int32(i + 1)
			}
			// Certainly below the gate, a test far cheaper than the IoU:
			// when two boxes' IoU reaches t, their overlap on each axis is
			// at least t times the larger of their sizes there (IoU ≤
			// overlap ÷ the larger size). Plain comparisons, not min and
			// max: a pair with a NaN, which they may reject, has no IoU
			// within the gate either.
			if t > 0 {
				ox := lesser(bx2, cl.x2[k]) - greater(bx1, cl.x1[k])
				if ox < tbw || ox < cl.tw[k] {
					continue
				}
				oy := lesser(by2, cl.y2[k]) - greater(by1, cl.y1[k])
				if oy < tbh || oy < cl.th[k] {
					continue
				}
			}
			if c := 1 - iou(b, cl.bs[k]); c <= maxCost {
				out = append(out, edge{t: int32(i), d: cl.ds[k], cost: c})
			}
		}
	}
	return out
}

// class is one class's detections in a frame, searched for a track's
// candidates: all of them when they are few or the grid would hold them
// all in every cell, else through a grid.
type class struct {
	ds                     []int32 // the class's detections, indices into db
	bs                     []Box
	x1, y1, x2, y2, tw, th []float64 // bs by column, and t × their sizes, for the overlap test
	all                    []int32   // 0, 1, ... len(ds)-1
	g                      *grid
	gen                    int     // the search c belongs to (scratch.gen)
	indexed                bool    // all (and g) made for this search
	seen                   []int32 // seen[k] == i+1: detection ds[k] already tried for track i (grid only)
}

// directMax is the most detections of a class searched without a grid.
const directMax = 8

func (c *class) add(j int32, b Box, t float64) {
	c.ds, c.bs = append(c.ds, j), append(c.bs, b)
	c.x1, c.y1, c.x2, c.y2 = append(c.x1, float64(b.X1)), append(c.y1, float64(b.Y1)), append(c.x2, float64(b.X2)), append(c.y2, float64(b.Y2))
	c.tw, c.th = append(c.tw, t*float64(b.X2-b.X1)), append(c.th, t*float64(b.Y2-b.Y1))
}

func lesser(a, b float64) float64 {
	if a < b {
		return a
	}
	return b
}

func greater(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// reset empties c for the search of generation gen, its memory kept.
func (c *class) reset(gen int) {
	c.gen, c.indexed, c.g = gen, false, nil
	c.ds, c.bs = c.ds[:0], c.bs[:0]
	c.x1, c.y1, c.x2, c.y2, c.tw, c.th = c.x1[:0], c.y1[:0], c.x2[:0], c.y2[:0], c.tw[:0], c.th[:0]
}

// index readies the search, on a class's first track.
func (c *class) index() {
	c.indexed = true
	c.all = resize(c.all, len(c.ds))
	for k := range c.all {
		c.all[k] = int32(k)
	}
	if len(c.ds) <= directMax {
		return
	}
	if g := newGrid(c.bs); g.w*g.h > 4 {
		c.g, c.seen = g, resize(c.seen, len(c.ds))
		clear(c.seen)
	}
}

// scratch is a tracker's memory for matching, reused from frame to frame:
// a dense frame's candidates and groups would otherwise allocate hundreds
// of kilobytes each.
type scratch struct {
	classes map[int]*class // by class (one for class-agnostic matching)
	gen     int            // the current search of classes
	edges   []edge
	near    []int32
	byGroup []edge
	next    []int32
	lap     lap
}

// edge is a candidate pair and its cost.
type edge struct {
	t, d int32
	cost float64
}

// grid buckets boxes by the square cells they overlap, cells about the
// size of a median box, in one array (cell c's boxes are
// items[start[c]:start[c+1]]). A box spanning more than maxSpan cells a side
// goes in a list every query returns, so that a huge box costs one entry.
type grid struct {
	x0, y0, cell float64
	w, h         int
	start, items []int32
	huge         []int32
}

const maxSpan = 8

func newGrid(bs []Box) *grid {
	// The extent and cell size come from well-formed boxes only: a box
	// with a coordinate not finite (a model's overflow) or inverted is
	// clamped into the grid by span, and matches nothing (its IoU is 0 or
	// NaN).
	var sum float64
	n := 0
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, b := range bs {
		x1, y1, x2, y2 := float64(b.X1), float64(b.Y1), float64(b.X2), float64(b.Y2)
		if !(x2 >= x1 && y2 >= y1) || math.IsInf(x1+y1+x2+y2, 0) {
			continue
		}
		n++
		sum += max(x2-x1, y2-y1)
		minX, minY = min(minX, x1), min(minY, y1)
		maxX, maxY = max(maxX, x2), max(maxY, y2)
	}
	if n == 0 {
		minX, minY, maxX, maxY, n = 0, 0, 0, 0, 1
	}
	g := &grid{x0: minX, y0: minY, cell: max(sum/float64(n), 1)}
	// At most about four cells a box: a few far-apart boxes widen the cells.
	for (maxX-minX)/g.cell*(maxY-minY)/g.cell > float64(4*len(bs)+64) {
		g.cell *= 2
	}
	g.w = int((maxX-minX)/g.cell) + 1
	g.h = int((maxY-minY)/g.cell) + 1
	g.start = make([]int32, g.w*g.h+1)
	for pass := 0; pass < 2; pass++ { // count, then place
		for j, b := range bs {
			x0, y0, x1, y1, ok := g.span(b)
			if !ok {
				if pass == 0 {
					g.huge = append(g.huge, int32(j))
				}
				continue
			}
			for y := y0; y <= y1; y++ {
				for x := x0; x <= x1; x++ {
					c := y*g.w + x
					if pass == 0 {
						g.start[c+1]++
					} else {
						g.items[g.start[c]] = int32(j)
						g.start[c]++
					}
				}
			}
		}
		if pass == 0 {
			for c := 1; c < len(g.start); c++ {
				g.start[c] += g.start[c-1]
			}
			g.items = make([]int32, g.start[len(g.start)-1])
		}
	}
	// Placing advanced each start to its cell's end: shift back.
	copy(g.start[1:], g.start[:len(g.start)-1])
	g.start[0] = 0
	return g
}

// span returns the cells b overlaps, clamped to the grid, and whether it
// spans few enough.
func (g *grid) span(b Box) (x0, y0, x1, y1 int, ok bool) {
	cell := func(v float32, o float64, n int) int {
		c := (float64(v) - o) / g.cell
		switch {
		case !(c >= 0): // below the grid, or NaN
			return 0
		case c >= float64(n-1):
			return n - 1
		}
		return int(c)
	}
	x0, x1 = cell(b.X1, g.x0, g.w), cell(b.X2, g.x0, g.w)
	y0, y1 = cell(b.Y1, g.y0, g.h), cell(b.Y2, g.y0, g.h)
	return x0, y0, x1, y1, x1-x0 < maxSpan && y1-y0 < maxSpan
}

// query appends to dst the boxes that may overlap b (with repeats).
func (g *grid) query(b Box, dst []int32) []int32 {
	dst = append(dst, g.huge...)
	if float64(b.X2) < g.x0 || float64(b.Y2) < g.y0 || float64(b.X1) > g.x0+float64(g.w)*g.cell || float64(b.Y1) > g.y0+float64(g.h)*g.cell {
		return dst // outside every box
	}
	x0, y0, x1, y1, ok := g.span(b)
	if !ok {
		return append(dst, g.items...) // a huge query box: every box is near it
	}
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			c := y*g.w + x
			dst = append(dst, g.items[g.start[c]:g.start[c+1]]...)
		}
	}
	return dst
}

// assignSparse solves the assignment of rows (tracks) to columns
// (detections) whose feasible pairs are edges, as the full matrix would
// solve it with every other pair beyond the gate. Rows and columns linked by
// no chain of edges cannot affect each other's match, so each connected
// group is solved alone (lap), rows and columns in their original order: a
// frame of many boxes costs many small sparse problems instead of one cubic
// one.
func assignSparse(s *scratch, rows, cols int, edges []edge) [][2]int {
	if len(edges) == 0 {
		return nil
	}
	if s == nil {
		s = &scratch{}
	}
	parent := make([]int32, rows+cols) // union-find over rows, then columns
	for i := range parent {
		parent[i] = int32(i)
	}
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, e := range edges {
		a, b := find(e.t), find(int32(rows)+e.d)
		if a != b {
			parent[max(a, b)] = min(a, b)
		}
	}
	// Groups numbered by their first edge, their edges gathered in order
	// in one slice; a group of one edge is a match.
	type group struct {
		rows, cols []int
		edges      []edge
		n          int
	}
	num := make([]int32, rows+cols) // root → group number + 1
	var groups []group
	of := make([]int32, len(edges)) // each edge's group
	for k, e := range edges {
		r := find(e.t)
		if num[r] == 0 {
			groups = append(groups, group{})
			num[r] = int32(len(groups))
		}
		of[k] = num[r] - 1
		groups[of[k]].n++
	}
	if cap(s.byGroup) < len(edges) {
		s.byGroup = make([]edge, len(edges))
	}
	all := s.byGroup[:len(edges)]
	at := 0
	for g := range groups {
		groups[g].edges = all[at : at : at+groups[g].n]
		at += groups[g].n
	}
	for k, e := range edges {
		g := &groups[of[k]]
		g.edges = append(g.edges, e)
	}
	var pairs [][2]int
	for i := 0; i < rows; i++ {
		if n := num[find(int32(i))]; n > 0 {
			groups[n-1].rows = append(groups[n-1].rows, i)
		}
	}
	for j := 0; j < cols; j++ {
		if n := num[find(int32(rows+j))]; n > 0 {
			groups[n-1].cols = append(groups[n-1].cols, j)
		}
	}
	rowAt := make([]int, rows)
	colAt := make([]int, cols)
	for _, g := range groups {
		if len(g.edges) == 1 {
			pairs = append(pairs, [2]int{int(g.edges[0].t), int(g.edges[0].d)})
			continue
		}
		for k, i := range g.rows {
			rowAt[i] = k
		}
		for k, j := range g.cols {
			colAt[j] = k
		}
		// The shorter side takes the rows: fewer of them are left
		// unmatched, whose searches reach every column of the group.
		flip := len(g.rows) > len(g.cols)
		rowOf, colOf := func(e edge) int { return rowAt[e.t] }, func(e edge) int { return colAt[e.d] }
		nr, nc := len(g.rows), len(g.cols)
		if flip {
			rowOf, colOf, nr, nc = colOf, rowOf, nc, nr
		}
		l := &s.lap
		l.reset(nr, nc, len(g.edges))
		for _, e := range g.edges {
			l.start[rowOf(e)+1]++
		}
		for k := 1; k < len(l.start); k++ {
			l.start[k] += l.start[k-1]
		}
		next := append(s.next[:0], l.start[:nr]...)
		s.next = next
		for _, e := range g.edges {
			r := rowOf(e)
			l.to[next[r]], l.cost[next[r]] = int32(colOf(e)), e.cost
			next[r]++
		}
		for _, p := range l.solve() {
			if flip {
				p[0], p[1] = p[1], p[0]
			}
			pairs = append(pairs, [2]int{g.rows[p[0]], g.cols[p[1]]})
		}
	}
	sort.Slice(pairs, func(a, b int) bool { return pairs[a][0] < pairs[b][0] })
	return pairs
}
