package track

import (
	"math/rand"
	"testing"
)

// refKalman is the filter before its block form: full 8×8 matrices.
type refKalman struct {
	x [8]float64    // state
	p [8][8]float64 // covariance
}

func newRefKalman(m [4]float64) *refKalman {
	k := &refKalman{}
	copy(k.x[:4], m[:])
	h := m[3]
	std := [8]float64{2 * stdPos * h, 2 * stdPos * h, 1e-2, 2 * stdPos * h, 10 * stdVel * h, 10 * stdVel * h, 1e-5, 10 * stdVel * h}
	for i := range std {
		k.p[i][i] = std[i] * std[i]
	}
	return k
}

// predict advances the state by one frame.
func (k *refKalman) predict() {
	h := k.x[3]
	q := [8]float64{stdPos * h, stdPos * h, 1e-2, stdPos * h, stdVel * h, stdVel * h, 1e-5, stdVel * h}
	for i := 0; i < 4; i++ {
		k.x[i] += k.x[i+4]
	}
	// P = F P Fᵀ + Q with F = [[I, I], [0, I]].
	var fp [8][8]float64
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			fp[i][j] = k.p[i][j]
			if i < 4 {
				fp[i][j] += k.p[i+4][j]
			}
		}
	}
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			v := fp[i][j]
			if j < 4 {
				v += fp[i][j+4]
			}
			k.p[i][j] = v
		}
		k.p[i][i] += q[i] * q[i]
	}
}

// update corrects the state with a measurement (cx, cy, a, h).
func (k *refKalman) update(m [4]float64) {
	h := k.x[3]
	r := [4]float64{stdPos * h, stdPos * h, 1e-1, stdPos * h}
	// S = H P Hᵀ + R, with H selecting the first four components.
	var s [4][4]float64
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			s[i][j] = k.p[i][j]
		}
		s[i][i] += r[i] * r[i]
	}
	si, ok := refInv4(s)
	if !ok {
		return
	}
	// K = P Hᵀ S⁻¹ (8×4).
	var gain [8][4]float64
	for i := 0; i < 8; i++ {
		for j := 0; j < 4; j++ {
			for l := 0; l < 4; l++ {
				gain[i][j] += k.p[i][l] * si[l][j]
			}
		}
	}
	var y [4]float64
	for i := range y {
		y[i] = m[i] - k.x[i]
	}
	for i := 0; i < 8; i++ {
		for j := 0; j < 4; j++ {
			k.x[i] += gain[i][j] * y[j]
		}
	}
	// P = P − K H P.
	var np [8][8]float64
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			v := k.p[i][j]
			for l := 0; l < 4; l++ {
				v -= gain[i][l] * k.p[l][j]
			}
			np[i][j] = v
		}
	}
	k.p = np
}

// inv4 inverts a 4×4 matrix by Gauss-Jordan elimination with pivoting.
func refInv4(a [4][4]float64) ([4][4]float64, bool) {
	var inv [4][4]float64
	for i := range inv {
		inv[i][i] = 1
	}
	for c := 0; c < 4; c++ {
		p := c
		for r := c + 1; r < 4; r++ {
			if refAbs(a[r][c]) > refAbs(a[p][c]) {
				p = r
			}
		}
		if refAbs(a[p][c]) < 1e-12 {
			return inv, false
		}
		a[c], a[p] = a[p], a[c]
		inv[c], inv[p] = inv[p], inv[c]
		d := a[c][c]
		for j := 0; j < 4; j++ {
			a[c][j] /= d
			inv[c][j] /= d
		}
		for r := 0; r < 4; r++ {
			if r == c {
				continue
			}
			f := a[r][c]
			for j := 0; j < 4; j++ {
				a[r][j] -= f * a[c][j]
				inv[r][j] -= f * inv[c][j]
			}
		}
	}
	return inv, true
}

func refAbs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestKalmanMatchesFullMatrices runs the block filter and the full-matrix
// one over random tracks (predictions, updates, missed frames): states and
// covariances must be equal bit for bit.
func TestKalmanMatchesFullMatrices(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for trial := 0; trial < 2000; trial++ {
		m := [4]float64{rng.Float64() * 1920, rng.Float64() * 1080, 0.2 + rng.Float64(), 5 + rng.Float64()*300}
		k, ref := newKalman(m), newRefKalman(m)
		for step := 0; step < 60; step++ {
			k.predict()
			ref.predict()
			if rng.Float64() < 0.8 {
				for i := range m {
					m[i] += rng.NormFloat64() * 3
				}
				k.update(m)
				ref.update(m)
			}
			if k.x != ref.x {
				t.Fatalf("trial %d step %d: state %v, full matrices %v", trial, step, k.x, ref.x)
			}
			for c := 0; c < 4; c++ {
				want := [4]float64{ref.p[c][c], ref.p[c][c+4], ref.p[c+4][c], ref.p[c+4][c+4]}
				if k.p[c] != want {
					t.Fatalf("trial %d step %d: block %d %v, full matrices %v", trial, step, c, k.p[c], want)
				}
				for j := 0; j < 8; j++ {
					if j != c && j != c+4 && (ref.p[c][j] != 0 || ref.p[c+4][j] != 0) {
						t.Fatalf("trial %d: the full covariance couples coordinates %d and %d", trial, c, j)
					}
				}
			}
		}
	}
}
