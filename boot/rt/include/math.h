/* Freestanding <math.h>: wasm2c maps float operations onto these; the
 * compiler lowers them to SSE instructions (SSE4.1 round* when available,
 * boot/common/lib.c otherwise). */
#ifndef HV_MATH_H
#define HV_MATH_H
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define isnan(x) __builtin_isnan(x)
#define signbit(x) __builtin_signbit(x)
#define fabs __builtin_fabs
#define fabsf __builtin_fabsf
#define sqrt __builtin_sqrt
#define sqrtf __builtin_sqrtf
#define copysign __builtin_copysign
#define copysignf __builtin_copysignf
double floor(double); float floorf(float);
double ceil(double); float ceilf(float);
double trunc(double); float truncf(float);
double nearbyint(double); float nearbyintf(float);
double fmin(double, double); float fminf(float, float);
double fmax(double, double); float fmaxf(float, float);
#endif
