/*
 * hwprune_float.h - float <-> fixed-point conversions for firmware (C99, no libm).
 *
 * The C twin of hwprune.ir.fixed.quantize for float inputs: a float x becomes the
 * integer of a fixed-point type (width, frac_bits, signed, rounding, overflow) exactly as
 * the Python quantizer turns the same value (as a double) into one:
 *
 *     s = x * 2^frac_bits                     exact (a power-of-two scale)
 *     |s| >= 2^62: s = +-2^62                 the quantizer's own clip
 *     v = floor(s)                            TRN
 *     v = floor(s) + (s - floor(s) >= 1/2)    RND: ties go up (towards +infinity)
 *     SAT clamps v to the type's range, WRAP keeps its low `width` bits
 *
 * Everything is single precision, so a core with a single-precision FPU (Cortex-M4F)
 * never calls soft double routines, and no libm function is used. Why it is exact:
 * multiplying by a power of two is exact unless the result leaves the float range; a
 * result too large becomes +-inf and is clipped like any value past 2^62, and a result
 * too small (subnormal or zero) only matters through its sign, which the quantizer's
 * rule "a negative value that scales to zero floors to -1" keeps. floor(s) is formed by
 * truncation to int64 (exact: |s| <= 2^62) and a correction; floats at or above 2^23
 * have no fraction bits, so the fraction s - floor(s) is then 0. For s in [-1/2, 0) the
 * difference s + 1 may round, but only to a value >= 1/2, where the exact one lies too.
 *
 * Not in the Python quantizer, which refuses non-finite values: NaN gives 0, +-inf
 * behaves as the largest float of its sign; both are counted as out of range.
 *
 * Copied verbatim into every export; model.c includes it unless HWPRUNE_NO_FLOAT is
 * defined (cores without an FPU that never see a float).
 */
#ifndef HWPRUNE_FLOAT_H
#define HWPRUNE_FLOAT_H

#include <stdint.h>

#include "hwprune_fixed.h"

/* x * 2^e, exact while the result is a normal float. Steps of at most 2^60 keep every
 * factor a float constant; with e known at compile time the loops fold away. */
static inline float hwprune_scale_f32(float x, int e)
{
    while (e > 60) {
        x *= 0x1p60f;
        e -= 60;
    }
    while (e < -60) {
        x *= 0x1p-60f;
        e += 60;
    }
    if (e >= 0) {
        return x * (float)(((uint64_t)1) << e);
    }
    return x * (1.0f / (float)(((uint64_t)1) << -e));
}

/* One float to the integer of (width, frac_bits, signed, rounding, overflow); *outside
 * is set to 1 when the value was NaN or beyond the type's range (then clamped or
 * wrapped as the type says), else left alone. width <= 62. */
static inline int64_t hwprune_quantize_f32(float x, int width, int frac_bits, int is_signed, int rounding,
                                           int overflow, int *outside)
{
    float s;
    int64_t v;
    if (x != x) {
        *outside = 1;
        return 0;
    }
    s = hwprune_scale_f32(x, frac_bits);
    if (s >= 0x1p62f) {
        s = 0x1p62f;
    } else if (s <= -0x1p62f) {
        s = -0x1p62f;
    }
    v = (int64_t)s; /* towards zero */
    if ((float)v > s) {
        v -= 1; /* floor of a negative non-integer */
    }
    if (s == 0.0f && x < 0.0f) {
        v = -1; /* the scale underflowed: the exact value is a tiny negative number */
    }
    if (rounding == HWPRUNE_RND && s - (float)v >= 0.5f) {
        v += 1;
    } else if (rounding == HWPRUNE_RND_CONV && (s - (float)v > 0.5f || (s - (float)v == 0.5f && (v & 1) != 0))) {
        v += 1;
    }
    if (v < hwprune_min_i64(width, is_signed) || v > hwprune_max_i64(width, is_signed)) {
        *outside = 1;
    }
    return hwprune_overflow_i64(v, width, is_signed, overflow);
}

/* The real value of an integer with frac_bits fraction bits: exact when |q| < 2^24,
 * else q rounded to the nearest float first. */
static inline float hwprune_to_float(int64_t q, int frac_bits)
{
    return hwprune_scale_f32((float)q, -frac_bits);
}

#endif /* HWPRUNE_FLOAT_H */
