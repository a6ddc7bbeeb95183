// cudashim.h: just enough of CUDA C to compile a kernel source as C++
// and run each block on one thread (TestRotatedNMSKernelOnCPU). The
// intrinsics round each operation on its own, as the device does; the
// test compiles with -ffp-contract=off so that nothing is fused.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdint>
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
struct dim { int x, y, z; };
static dim threadIdx = {0,0,0}, blockIdx = {0,0,0}, blockDim = {1,1,1};
static void __syncthreads() {}
static double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
static double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
static double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
static double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
static float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
static float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
static float __double2float_rn(double a) { return (float)a; }
static double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
static float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p += v; return o; }
using std::isnan; using std::floor; using std::max; using std::isinf; using std::fabs; using std::min;
