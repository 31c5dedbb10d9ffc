/* The few libm declarations emlearn's eml_net.h needs, for a freestanding build (the
 * functions come from zig's compiler-rt, tanhf from libm_extra.c). */
#ifndef HWPRUNE_BENCH_MATH_H
#define HWPRUNE_BENCH_MATH_H
float expf(float x);
float tanhf(float x);
float fabsf(float x);
float logf(float x);
#define NAN (__builtin_nanf(""))
#define INFINITY (__builtin_inff())
#endif
