package track

// kalman is a constant-velocity Kalman filter over (cx, cy, a, h) — box
// centre, aspect ratio w/h and height — and their velocities, as in SORT
// and ByteTrack, with noise proportional to the box height.
//
// The four coordinates never mix: the transition, the measurement and both
// noises treat each (value, velocity) pair alone, so the 8×8 covariance is
// four 2×2 blocks and the innovation covariance is diagonal. The filter
// keeps only those blocks, and computes each entry with the same floating
// operations, in the same order, as the full matrix products (whose other
// terms are exact zeros): the same numbers, bit for bit, in a fifth of the
// time (TestKalmanMatchesFullMatrices).
type kalman struct {
	x [8]float64 // state: the four coordinates, then their velocities
	// p[c] is coordinate c's covariance block: var(c), cov(c, v), cov(v, c),
	// var(v), kept apart as the full product computes them.
	p [4][4]float64
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
	for c := 0; c < 4; c++ {
		k.p[c][0] = std[c] * std[c]
		k.p[c][3] = std[c+4] * std[c+4]
	}
	return k
}

// predict advances the state by one frame: x += v, P = F P Fᵀ + Q with
// F = [[1, 1], [0, 1]] per coordinate.
func (k *kalman) predict() {
	h := k.x[3]
	q := [8]float64{stdPos * h, stdPos * h, 1e-2, stdPos * h, stdVel * h, stdVel * h, 1e-5, stdVel * h}
	for i := 0; i < 4; i++ {
		k.x[i] += k.x[i+4]
	}
	for c := range k.p {
		a, b, b2, d := k.p[c][0], k.p[c][1], k.p[c][2], k.p[c][3]
		k.p[c] = [4]float64{(a + b2) + (b + d), b + d, b2 + d, d}
		k.p[c][0] += q[c] * q[c]
		k.p[c][3] += q[c+4] * q[c+4]
	}
}

// update corrects the state with a measurement (cx, cy, a, h).
func (k *kalman) update(m [4]float64) {
	h := k.x[3]
	r := [4]float64{stdPos * h, stdPos * h, 1e-1, stdPos * h}
	var si [4]float64 // the inverse of the (diagonal) innovation covariance
	for c := range si {
		s := k.p[c][0]
		s += r[c] * r[c]
		if abs(s) < 1e-12 {
			return
		}
		si[c] = 1
		si[c] /= s
	}
	for c := range k.p {
		a, b, b2, d := k.p[c][0], k.p[c][1], k.p[c][2], k.p[c][3]
		g, gv := a*si[c], b2*si[c] // the gain for the value and the velocity
		y := m[c] - k.x[c]
		k.x[c] += g * y
		k.x[c+4] += gv * y
		k.p[c] = [4]float64{a - g*a, b - g*b, b2 - gv*a, d - gv*b}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
