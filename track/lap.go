package track

// lap solves the assignment of one group of rows (tracks) to columns
// (detections) whose feasible pairs are sparse: the optimal matching that
// pairs as many rows as it can, then at the least total cost, which is
// what the full matrix with every other pair beyond the gate gives.
//
// Each row also has a private "unmatched" column of cost lapUnmatched, so
// every row can be assigned and the problem stays sparse; rows are added
// one by one, each by the shortest augmenting path (Dijkstra on reduced
// costs, with column potentials: Jonker and Volgenant's method), which
// only visits the columns reachable through feasible pairs. A frame of a
// dense crowd, one group of 150 × 150 boxes with thousands of pairs, costs
// a few thousand heap steps instead of the cubic pass of the full matrix.
type lap struct {
	rows, cols int
	start      []int32 // row i's pairs are to[start[i]:start[i+1]]
	to         []int32
	cost       []float64

	v     []float64 // column potentials; columns cols+i: row i unmatched
	owner []int32   // row assigned to each column, -1: none
	dist  []float64
	pred  []int32
	state []uint8 // 0 unseen, 1 in the heap, 2 final
	seen  []int32 // columns touched by this row's search
	final []int32 // columns made final, in order
	heap  lapHeap
	colOf []int32 // column assigned to each row
}

// lapUnmatched is the cost of leaving a row unmatched: more than any
// number of feasible pairs can cost (each at most 1), so that the optimum
// first pairs as many rows as it can.
const lapUnmatched = 1e6

// reset readies l for rows × cols with pairs pairs, its memory reused:
// start to be filled with the rows' offsets into to and cost.
func (l *lap) reset(rows, cols, pairs int) {
	l.rows, l.cols = rows, cols
	n := rows + cols
	l.start = resize(l.start, rows+1)
	clear(l.start)
	l.to, l.cost = resize(l.to, pairs), resize(l.cost, pairs)
	l.v, l.owner, l.dist, l.pred = resize(l.v, n), resize(l.owner, n), resize(l.dist, n), resize(l.pred, n)
	l.state, l.colOf = resize(l.state, n), resize(l.colOf, rows)
	clear(l.v)
	clear(l.state)
	for c := range l.owner {
		l.owner[c] = -1
	}
}

// resize returns s with length n, reallocated only when it is too short.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// solve returns the pairs (row, column) of real columns, by row.
//
// Every potential starts at zero. The search minimises a path's cost less
// the potential of the free column it ends on, so free columns must share
// one potential (they keep it until taken): starting from the columns'
// least costs instead (Jonker and Volgenant's column reduction) gave other
// pairs.
func (l *lap) solve() [][2]int {
	for r := 0; r < l.rows; r++ {
		l.augment(int32(r))
	}
	var pairs [][2]int
	for r, c := range l.colOf {
		if int(c) < l.cols {
			pairs = append(pairs, [2]int{r, int(c)})
		}
	}
	return pairs
}

// relax offers column c at distance d through row r.
func (l *lap) relax(c int32, d float64, r int32) {
	switch l.state[c] {
	case 2:
		return
	case 0:
		l.state[c] = 1
		l.seen = append(l.seen, c)
	default:
		if d >= l.dist[c] {
			return
		}
	}
	l.dist[c], l.pred[c] = d, r
	l.heap.push(lapItem{d, c})
}

// edges offers the columns of row r, at base plus their reduced cost.
func (l *lap) edges(r int32, base float64) {
	for k := l.start[r]; k < l.start[r+1]; k++ {
		c := l.to[k]
		l.relax(c, base+l.cost[k]-l.v[c], r)
	}
	u := int32(l.cols) + r
	l.relax(u, base+lapUnmatched-l.v[u], r)
}

// augment assigns row f by the shortest augmenting path.
func (l *lap) augment(f int32) {
	// A row whose nearest column (as the search below would order them)
	// is free takes it at once: the search would end there, and no
	// potential would change.
	best := lapItem{lapUnmatched - l.v[int32(l.cols)+f], int32(l.cols) + f}
	for k := l.start[f]; k < l.start[f+1]; k++ {
		if it := (lapItem{l.cost[k] - l.v[l.to[k]], l.to[k]}); it.less(best) {
			best = it
		}
	}
	if l.owner[best.c] < 0 {
		l.owner[best.c], l.colOf[f] = f, best.c
		return
	}
	l.seen, l.final, l.heap = l.seen[:0], l.final[:0], l.heap[:0]
	l.edges(f, 0)
	var end int32 = -1
	for len(l.heap) > 0 {
		it := l.heap.pop()
		c := it.c
		if l.state[c] == 2 || it.d != l.dist[c] {
			continue // a stale entry
		}
		l.state[c] = 2
		l.final = append(l.final, c)
		r := l.owner[c]
		if r < 0 {
			end = c
			break
		}
		// Row r's assigned column is tight: its reduced cost there is
		// zero, so its other columns are reached at dist[c] plus theirs.
		l.edges(r, l.dist[c]-(l.pairCost(r, c)-l.v[c]))
	}
	// The private column of f is always free: end is found.
	dmin := l.dist[end]
	for _, c := range l.final {
		l.v[c] += l.dist[c] - dmin
	}
	for c := end; ; {
		r := l.pred[c]
		prev := l.colOf[r]
		l.owner[c], l.colOf[r] = r, c
		if r == f {
			break
		}
		c = prev
	}
	for _, c := range l.seen {
		l.state[c] = 0
	}
}

// pairCost is the cost of row r in column c, one of its own.
func (l *lap) pairCost(r, c int32) float64 {
	if int(c) >= l.cols {
		return lapUnmatched
	}
	for k := l.start[r]; k < l.start[r+1]; k++ {
		if l.to[k] == c {
			return l.cost[k]
		}
	}
	panic("track: a row's assigned column is not one of its pairs")
}

// lapItem is a column and its tentative distance.
type lapItem struct {
	d float64
	c int32
}

// lapHeap is a binary min-heap of columns by distance, then by column:
// equal distances resolve the same way every run.
type lapHeap []lapItem

func (a lapItem) less(b lapItem) bool { return a.d < b.d || a.d == b.d && a.c < b.c }

func (h *lapHeap) push(it lapItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *lapHeap) pop() lapItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[m]) {
			m = l
		}
		if r < len(s) && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
