package infer

// obbSource is the CUDA C of oriented boxes' rotated NMS on the device,
// over the sorted candidates detect_v8 writes with raw rows. It computes
// what suppress computes on the host, operation for operation: the
// corners in float32 from Go's own sine and cosine (math.Sin and math.Cos
// as Go computes them on amd64, ported), the polygons' clipping and areas
// in float64, every operation rounded on its own (no contractions, as Go
// compiles for amd64 v1). An image whose values leave that port's range
// (an angle of 2^29 radians or more, which Go reduces by Payne–Hanek) or
// whose clipped polygons outgrow their buffers is marked for the host's
// NMS instead.
const obbSource = `
#define TOPK_MAX 1024
#define ROW 7
#define QUAD 13
#define VERTS 64

// Go's math package: the Cephes polynomials, in the same order.
__device__ __forceinline__ double go_poly_sin(double z, double zz) {
	double p = __dmul_rn(1.58962301576546568060e-10, zz);
	p = __dmul_rn(__dadd_rn(p, -2.50507477628578072866e-8), zz);
	p = __dmul_rn(__dadd_rn(p, 2.75573136213857245213e-6), zz);
	p = __dmul_rn(__dadd_rn(p, -1.98412698295895385996e-4), zz);
	p = __dmul_rn(__dadd_rn(p, 8.33333333332211858878e-3), zz);
	p = __dadd_rn(p, -1.66666666666666307295e-1);
	return __dadd_rn(z, __dmul_rn(__dmul_rn(z, zz), p));
}
__device__ __forceinline__ double go_poly_cos(double zz) {
	double p = __dmul_rn(-1.13585365213876817300e-11, zz);
	p = __dmul_rn(__dadd_rn(p, 2.08757008419747316778e-9), zz);
	p = __dmul_rn(__dadd_rn(p, -2.75573141792967388112e-7), zz);
	p = __dmul_rn(__dadd_rn(p, 2.48015872888517045348e-5), zz);
	p = __dmul_rn(__dadd_rn(p, -1.38888888888730564116e-3), zz);
	p = __dadd_rn(p, 4.16666666666665929218e-2);
	return __dadd_rn(__dsub_rn(1.0, __dmul_rn(0.5, zz)), __dmul_rn(__dmul_rn(zz, zz), p));
}
// go_octant reduces x (0 <= x < 2^29) as Go does: the octant j and the
// remainder z.
__device__ __forceinline__ double go_octant(double x, unsigned long long* j) {
	const double PI4A = 7.85398125648498535156e-1, PI4B = 3.77489470793079817668e-8, PI4C = 2.69515142907905952645e-15;
	const double FOUR_PI = __longlong_as_double(0x3ff45f306dc9c883LL); // 4/Pi, rounded once as Go's constant
	unsigned long long q = (unsigned long long)__dmul_rn(x, FOUR_PI);
	double y = (double)q;
	if (q & 1) { q++; y = __dadd_rn(y, 1.0); }
	*j = q & 7;
	return __dsub_rn(__dsub_rn(__dsub_rn(x, __dmul_rn(y, PI4A)), __dmul_rn(y, PI4B)), __dmul_rn(y, PI4C));
}
// go_cos and go_sin are math.Cos and math.Sin for |x| < 2^29.
__device__ double go_cos(double x) {
	if (isnan(x) || isinf(x)) return __longlong_as_double(0x7ff8000000000001LL);
	bool sign = false;
	x = fabs(x);
	unsigned long long j;
	double z = go_octant(x, &j);
	if (j > 3) { j -= 4; sign = !sign; }
	if (j > 1) sign = !sign;
	double zz = __dmul_rn(z, z);
	double y = (j == 1 || j == 2) ? go_poly_sin(z, zz) : go_poly_cos(zz);
	return sign ? -y : y;
}
__device__ double go_sin(double x) {
	if (x == 0.0 || isnan(x)) return x;
	if (isinf(x)) return __longlong_as_double(0x7ff8000000000001LL);
	bool sign = false;
	if (x < 0) { x = -x; sign = true; }
	unsigned long long j;
	double z = go_octant(x, &j);
	if (j > 3) { sign = !sign; j -= 4; }
	double zz = __dmul_rn(z, z);
	double y = (j == 1 || j == 2) ? go_poly_cos(zz) : go_poly_sin(z, zz);
	return sign ? -y : y;
}

// Go's min and max of two floats: NaN when either is.
__device__ __forceinline__ float go_min(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fc00000) : (b < a ? b : a); }
__device__ __forceinline__ float go_max(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fc00000) : (b > a ? b : a); }

// area is the area of the convex polygon x, y of n corners.
__device__ double area(const double* x, const double* y, int n) {
	double a = 0.0;
	for (int i = 0; i < n; i++) {
		int j = (i + 1) % n;
		a = __dadd_rn(a, __dsub_rn(__dmul_rn(x[i], y[j]), __dmul_rn(x[j], y[i])));
	}
	return __ddiv_rn(fabs(a), 2.0);
}

// clip writes to ox, oy the part of the polygon x, y of n corners on the
// left of the edge a to b and returns its corners, -1 past VERTS.
__device__ int clip(const double* x, const double* y, int n, double ax, double ay, double bx, double by, double* ox, double* oy) {
	double ex = __dsub_rn(bx, ax), ey = __dsub_rn(by, ay);
	int m = 0;
	for (int i = 0; i < n; i++) {
		int j = (i + 1) % n;
		double sc = __dsub_rn(__dmul_rn(ex, __dsub_rn(y[i], ay)), __dmul_rn(ey, __dsub_rn(x[i], ax)));
		double sn = __dsub_rn(__dmul_rn(ex, __dsub_rn(y[j], ay)), __dmul_rn(ey, __dsub_rn(x[j], ax)));
		if (sc >= 0) {
			if (m == VERTS) return -1;
			ox[m] = x[i]; oy[m] = y[i]; m++;
		}
		if ((sc >= 0) != (sn >= 0)) {
			if (m == VERTS) return -1;
			double t = __ddiv_rn(sc, __dsub_rn(sc, sn));
			ox[m] = __dadd_rn(x[i], __dmul_rn(t, __dsub_rn(x[j], x[i])));
			oy[m] = __dadd_rn(y[i], __dmul_rn(t, __dsub_rn(y[j], y[i])));
			m++;
		}
	}
	return m;
}

// rotated_iou is quad.iou of the quads a and b (QUAD doubles: corners x,
// then y, the area, then the bounds); *bad is set past VERTS.
__device__ float rotated_iou(const double* a, const double* b, int* bad) {
	double buf[2][2][VERTS];
	for (int i = 0; i < 4; i++) { buf[0][0][i] = a[i]; buf[0][1][i] = a[4 + i]; }
	int n = 4;
	for (int i = 0; i < 4 && n > 0; i++) {
		int k = (i + 1) % 4, in = i % 2, out = (i + 1) % 2;
		n = clip(buf[in][0], buf[in][1], n, b[i], b[4 + i], b[k], b[4 + k], buf[out][0], buf[out][1]);
		if (n < 0) { *bad = 1; return 0.0f; }
	}
	// After four edges the polygon is in buf[0], unless a clip emptied it.
	double ai = 0.0;
	if (n >= 3) ai = area(buf[0][0], buf[0][1], n);
	double u = __dsub_rn(__dadd_rn(a[8], b[8]), ai);
	if (u <= 0) return 0.0f;
	return __double2float_rn(__ddiv_rn(ai, u));
}

// nms_obb: one block per image runs suppress over the m = ndet[b] sorted
// candidate rows at dets (k rows of row floats an image: cx, cy, w, h,
// score, class, 1 + the anchor, the angle): each box's corners, bounds
// and quad (QUAD doubles at quads), then greedy NMS keeping up to maxDet.
// It writes the kept rows' indices to keep (k an image) and their number
// to nkeep, -1 where the host must decide.
extern "C" __global__ void nms_obb(const float* dets, int row, int k, const int* ndet, int maxDet, float thr, int agnostic,
		double* quads, int* keep, int* nkeep) {
	__shared__ unsigned char drop[TOPK_MAX];
	__shared__ int bad;
	int b = blockIdx.x, t = threadIdx.x, bs = blockDim.x;
	int m = min(ndet[b], k);
	const float* r = dets + (long long)b * k * row;
	double* q = quads + (long long)b * k * QUAD;
	if (t == 0) bad = 0;
	__syncthreads();
	for (int i = t; i < m; i += bs) {
		const float* c = r + i * row;
		float cx = c[0], cy = c[1], w = c[2], h = c[3];
		double angle = (double)c[ROW];
		if (fabs(angle) >= 536870912.0) bad = 1;
		float co = __double2float_rn(go_cos(angle)), si = __double2float_rn(go_sin(angle));
		float hw = __fdiv_rn(w, 2.0f), hh = __fdiv_rn(h, 2.0f);
		float px[4] = {-hw, hw, hw, -hw}, py[4] = {-hh, -hh, hh, hh};
		double x[4], y[4];
		float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
		for (int p = 0; p < 4; p++) {
			float fx = __fsub_rn(__fadd_rn(cx, __fmul_rn(px[p], co)), __fmul_rn(py[p], si));
			float fy = __fadd_rn(__fadd_rn(cy, __fmul_rn(px[p], si)), __fmul_rn(py[p], co));
			if (p == 0) { x1 = x2 = fx; y1 = y2 = fy; }
			else { x1 = go_min(x1, fx); y1 = go_min(y1, fy); x2 = go_max(x2, fx); y2 = go_max(y2, fy); }
			x[p] = (double)fx; y[p] = (double)fy;
		}
		double s = 0.0;
		for (int p = 0; p < 4; p++) {
			int j = (p + 1) % 4;
			s = __dadd_rn(s, __dsub_rn(__dmul_rn(x[p], y[j]), __dmul_rn(x[j], y[p])));
		}
		if (s < 0) { double tx = x[1], ty = y[1]; x[1] = x[3]; y[1] = y[3]; x[3] = tx; y[3] = ty; }
		double* o = q + (long long)i * QUAD;
		for (int p = 0; p < 4; p++) { o[p] = x[p]; o[4 + p] = y[p]; }
		o[8] = area(x, y, 4);
		o[9] = x1; o[10] = y1; o[11] = x2; o[12] = y2;
		drop[i] = 0;
	}
	__syncthreads();
	int nk = 0;
	for (int i = 0; i < m && !bad; i++) {
		if (drop[i]) continue;
		if (t == 0) keep[(long long)b * k + nk] = i;
		nk++;
		if (nk == maxDet) break;
		const double* qi = q + (long long)i * QUAD;
		int ci = (int)r[i * row + 5];
		for (int j = i + 1 + t; j < m; j += bs) {
			if (drop[j] || !(agnostic || (int)r[j * row + 5] == ci)) continue;
			const double* qj = q + (long long)j * QUAD;
			// Axis-aligned bounds apart: no overlap (as suppress decides).
			if (thr >= 1e-3f && ((float)qi[11] < (float)qj[9] || (float)qj[11] < (float)qi[9] || (float)qi[12] < (float)qj[10] || (float)qj[12] < (float)qi[10])) continue;
			int over = 0;
			if (rotated_iou(qi, qj, &over) > thr) drop[j] = 1;
			if (over) bad = 1;
		}
		__syncthreads();
	}
	__syncthreads();
	if (t == 0) nkeep[b] = bad ? -1 : nk;
}
`

// obbQuad is the doubles of an oriented box's quad in nms_obb's scratch
// (QUAD): the corners' x, their y, the area and the corners' bounds.
const obbQuad = 13
