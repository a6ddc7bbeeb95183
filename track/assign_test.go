package track

import "math"

// assign solves the rectangular assignment problem on cost (rows ×
// cols) optimally (Hungarian method with potentials, O(n³)) and returns the
// pairs whose cost is at most maxCost. Rows or columns left out are
// unmatched. It is the full-matrix matcher the tracker used before lap: the
// oracle the tests hold lap to.
func assign(cost [][]float64, maxCost float64) (pairs [][2]int) {
	n := len(cost)
	if n == 0 || len(cost[0]) == 0 {
		return nil
	}
	m := len(cost[0])
	transposed := n > m
	if transposed {
		t := make([][]float64, m)
		for j := range t {
			t[j] = make([]float64, n)
			for i := 0; i < n; i++ {
				t[j][i] = cost[i][j]
			}
		}
		cost, n, m = t, m, n
	}
	// Costs above the gate are as bad as no match: a large constant keeps
	// the optimum from trading a gated pair for them. One flat matrix, rows
	// of the (shorter) first side.
	const big = 1e6
	c := make([]float64, n*m)
	for i := 0; i < n; i++ {
		for j, v := range cost[i][:m] {
			if v > maxCost {
				v = big
			}
			c[i*m+j] = v
		}
	}
	u := make([]float64, n+1)
	v := make([]float64, m+1)
	p := make([]int, m+1) // p[j]: row assigned to column j (1-based), 0 = none
	way := make([]int, m+1)
	minv := make([]float64, m+1)
	used := make([]bool, m+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = math.Inf(1)
			used[j] = false
		}
		for {
			used[j0] = true
			i0, delta, j1 := p[j0], math.Inf(1), 0
			row, ui := c[(i0-1)*m:i0*m], u[i0]
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				cur := row[j-1] - ui - v[j]
				if cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	for j := 1; j <= m; j++ {
		i := p[j]
		if i == 0 || cost[i-1][j-1] > maxCost {
			continue
		}
		if transposed {
			pairs = append(pairs, [2]int{j - 1, i - 1})
		} else {
			pairs = append(pairs, [2]int{i - 1, j - 1})
		}
	}
	return pairs
}
