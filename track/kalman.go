package track

// kalman is a constant-velocity Kalman filter over (cx, cy, a, h) — box
// centre, aspect ratio w/h and height — and their velocities, as in SORT
// and ByteTrack, with noise proportional to the box height.
type kalman struct {
	x [8]float64    // state
	p [8][8]float64 // covariance
}

const (
	stdPos = 1.0 / 20
	stdVel = 1.0 / 160
)

func newKalman(m [4]float64) *kalman {
	k := &kalman{}
	copy(k.x[:4], m[:])
	h := m[3]
	std := [8]float64{2 * stdPos * h, 2 * stdPos * h, 1e-2, 2 * stdPos * h, 10 * stdVel * h, 10 * stdVel * h, 1e-5, 10 * stdVel * h}
	for i := range std {
		k.p[i][i] = std[i] * std[i]
	}
	return k
}

// predict advances the state by one frame.
func (k *kalman) predict() {
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
func (k *kalman) update(m [4]float64) {
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
	si, ok := inv4(s)
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
func inv4(a [4][4]float64) ([4][4]float64, bool) {
	var inv [4][4]float64
	for i := range inv {
		inv[i][i] = 1
	}
	for c := 0; c < 4; c++ {
		p := c
		for r := c + 1; r < 4; r++ {
			if abs(a[r][c]) > abs(a[p][c]) {
				p = r
			}
		}
		if abs(a[p][c]) < 1e-12 {
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

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
