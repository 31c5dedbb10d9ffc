/*
 * hwprune_fixed.h - fixed-point casts with ap_fixed semantics (C99).
 *
 * The C twin of hwprune/ir/fixed.py. A value of type (width, int_bits, signed)
 * is stored as an integer q meaning q / 2^(width - int_bits). Converting a value
 * with frac_in fraction bits to such a type is
 *
 *     shift = frac_in - (width - int_bits)
 *     shift > 0:  drop `shift` bits, TRN = floor, RND = add half an LSB, then floor,
 *                 RND_CONV = to the nearest, a tie to the even value (ap_fixed's AP_RND_CONV)
 *     shift <= 0: multiply by 2^-shift (exactly, however large)
 *     then WRAP = keep the low `width` bits (two's complement), SAT = clamp
 *
 * Every result equals the exact mathematical one: no right shift of a negative
 * value and no left shift of a negative value (both are implementation-defined or
 * undefined in C99), and no signed overflow. Arguments other than the value are
 * compile-time constants in generated code, so with inlining the branches fold away.
 *
 * The _i32 functions take types whose whole range fits int32_t (signed width <= 32,
 * unsigned width <= 31); the _i64 functions signed width <= 64, unsigned <= 63.
 * This file is copied verbatim into every export.
 */
#ifndef HWPRUNE_FIXED_H
#define HWPRUNE_FIXED_H

#include <stdint.h>

#define HWPRUNE_TRN 0
#define HWPRUNE_RND 1
#define HWPRUNE_RND_CONV 2
#define HWPRUNE_WRAP 0
#define HWPRUNE_SAT 1

/* ---- 32-bit ------------------------------------------------------------------- */

/* floor(v / 2^s) for 0 <= s. For v < 0, ~v = -v - 1 >= 0 and floor(v / 2^s) = ~(~v >> s). */
static inline int32_t hwprune_floor_shr_i32(int32_t v, int s)
{
    if (s >= 31) {
        return v < 0 ? -1 : 0;
    }
    return v < 0 ? ~((~v) >> s) : (v >> s);
}

/* Drop s >= 1 fraction bits with the given rounding. RND adds bit s-1 of v to the
 * floor, which equals floor((v + 2^(s-1)) / 2^s) without the overflowing add. */
static inline int32_t hwprune_shr_i32(int32_t v, int s, int rounding)
{
    int32_t q;
    int32_t half;
    if (s <= 0) {
        return v;
    }
    if (s >= 32) {
        /* |v| <= 2^31 <= 2^(s-1): floor gives the sign, half-up rounding gives 0. */
        return (rounding != HWPRUNE_TRN || v >= 0) ? 0 : -1;
    }
    q = hwprune_floor_shr_i32(v, s);
    if (rounding == HWPRUNE_RND) {
        /* Bit s-1 of v's two's complement pattern: an unsigned shift, defined in C
         * for a negative v too, and one bit-field extract on a Cortex-M. */
        half = (int32_t)(((uint32_t)v >> (s - 1)) & 1u);
        q += half;
    } else if (rounding == HWPRUNE_RND_CONV && (((uint32_t)v >> (s - 1)) & 1u)) {
        /* At or past the half: up, unless exactly the half (no lower bit set) and q even. */
        if (((uint32_t)v & ((((uint32_t)1) << (s - 1)) - 1u)) != 0u || (q & 1) != 0) {
            q += 1;
        }
    }
    return q;
}

static inline int32_t hwprune_max_i32(int width, int is_signed)
{
    return (int32_t)((((uint32_t)1) << (width - (is_signed ? 1 : 0))) - 1u);
}

static inline int32_t hwprune_min_i32(int width, int is_signed)
{
    return is_signed ? -hwprune_max_i32(width, 1) - 1 : 0;
}

/* The low `width` bits of the bit pattern u, read as a (signed) integer. */
static inline int32_t hwprune_wrap_bits_u32(uint32_t u, int width, int is_signed)
{
    uint32_t mask = width >= 32 ? 0xFFFFFFFFu : ((((uint32_t)1) << width) - 1u);
    u &= mask;
    if (is_signed && ((u >> (width - 1)) & 1u)) {
        /* u - 2^width, computed without converting an out-of-range unsigned. */
        return -(int32_t)((~u) & mask) - 1;
    }
    return (int32_t)u;
}

static inline int32_t hwprune_wrap_i32(int32_t v, int width, int is_signed)
{
    /* Conversion to unsigned is modulo 2^32, so the low bits are v's two's complement. */
    return hwprune_wrap_bits_u32((uint32_t)v, width, is_signed);
}

static inline int32_t hwprune_sat_i32(int32_t v, int width, int is_signed)
{
    int32_t lo = hwprune_min_i32(width, is_signed);
    int32_t hi = hwprune_max_i32(width, is_signed);
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline int32_t hwprune_overflow_i32(int32_t v, int width, int is_signed, int overflow)
{
    return overflow == HWPRUNE_SAT ? hwprune_sat_i32(v, width, is_signed) : hwprune_wrap_i32(v, width, is_signed);
}

/* v * 2^k (k >= 1) followed by overflow handling, exact even when v * 2^k does not fit. */
static inline int32_t hwprune_shl_i32(int32_t v, int k, int width, int is_signed, int overflow)
{
    int32_t lo;
    int32_t hi;
    if (overflow == HWPRUNE_WRAP) {
        /* Unsigned arithmetic is modulo 2^32 and width <= 32: the low bits are exact. */
        return k >= 32 ? 0 : hwprune_wrap_bits_u32(((uint32_t)v) << k, width, is_signed);
    }
    lo = hwprune_min_i32(width, is_signed);
    hi = hwprune_max_i32(width, is_signed);
    if (k >= 31) {
        /* Any nonzero v moves past 2^31 > hi, or below -2^31 <= lo. */
        return v > 0 ? hi : (v < 0 ? lo : 0);
    }
    if (v > (hi >> k)) {
        return hi;
    }
    /* ceil(lo / 2^k) = -floor(-lo / 2^k); -lo <= 2^31 is formed in unsigned. */
    if (v < -(int32_t)((((uint32_t)0) - (uint32_t)lo) >> k)) {
        return lo;
    }
    return v * (int32_t)(((int32_t)1) << k);
}

/* Convert v (frac_in fraction bits) to (width, signed, rounding, overflow) where
 * shift = frac_in - frac_bits of the destination. */
static inline int32_t hwprune_cast_i32(int32_t v, int shift, int width, int is_signed, int rounding, int overflow)
{
    if (shift < 0) {
        return hwprune_shl_i32(v, -shift, width, is_signed, overflow);
    }
    return hwprune_overflow_i32(hwprune_shr_i32(v, shift, rounding), width, is_signed, overflow);
}

/* ---- 64-bit (the same functions, one size up) ------------------------------------ */

static inline int64_t hwprune_floor_shr_i64(int64_t v, int s)
{
    if (s >= 63) {
        return v < 0 ? -1 : 0;
    }
    return v < 0 ? ~((~v) >> s) : (v >> s);
}

static inline int64_t hwprune_shr_i64(int64_t v, int s, int rounding)
{
    int64_t q;
    int64_t half;
    if (s <= 0) {
        return v;
    }
    if (s >= 64) {
        return (rounding != HWPRUNE_TRN || v >= 0) ? 0 : -1;
    }
    q = hwprune_floor_shr_i64(v, s);
    if (rounding == HWPRUNE_RND) {
        half = (int64_t)(((uint64_t)v >> (s - 1)) & 1u);
        q += half;
    } else if (rounding == HWPRUNE_RND_CONV && (((uint64_t)v >> (s - 1)) & 1u)) {
        if (((uint64_t)v & ((((uint64_t)1) << (s - 1)) - 1u)) != 0u || (q & 1) != 0) {
            q += 1;
        }
    }
    return q;
}

static inline int64_t hwprune_max_i64(int width, int is_signed)
{
    return (int64_t)((((uint64_t)1) << (width - (is_signed ? 1 : 0))) - 1u);
}

static inline int64_t hwprune_min_i64(int width, int is_signed)
{
    return is_signed ? -hwprune_max_i64(width, 1) - 1 : 0;
}

static inline int64_t hwprune_wrap_bits_u64(uint64_t u, int width, int is_signed)
{
    uint64_t mask = width >= 64 ? UINT64_C(0xFFFFFFFFFFFFFFFF) : ((((uint64_t)1) << width) - 1u);
    u &= mask;
    if (is_signed && ((u >> (width - 1)) & 1u)) {
        return -(int64_t)((~u) & mask) - 1;
    }
    return (int64_t)u;
}

static inline int64_t hwprune_wrap_i64(int64_t v, int width, int is_signed)
{
    return hwprune_wrap_bits_u64((uint64_t)v, width, is_signed);
}

static inline int64_t hwprune_sat_i64(int64_t v, int width, int is_signed)
{
    int64_t lo = hwprune_min_i64(width, is_signed);
    int64_t hi = hwprune_max_i64(width, is_signed);
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline int64_t hwprune_overflow_i64(int64_t v, int width, int is_signed, int overflow)
{
    return overflow == HWPRUNE_SAT ? hwprune_sat_i64(v, width, is_signed) : hwprune_wrap_i64(v, width, is_signed);
}

static inline int64_t hwprune_shl_i64(int64_t v, int k, int width, int is_signed, int overflow)
{
    int64_t lo;
    int64_t hi;
    if (overflow == HWPRUNE_WRAP) {
        return k >= 64 ? 0 : hwprune_wrap_bits_u64(((uint64_t)v) << k, width, is_signed);
    }
    lo = hwprune_min_i64(width, is_signed);
    hi = hwprune_max_i64(width, is_signed);
    if (k >= 63) {
        return v > 0 ? hi : (v < 0 ? lo : 0);
    }
    if (v > (hi >> k)) {
        return hi;
    }
    if (v < -(int64_t)((((uint64_t)0) - (uint64_t)lo) >> k)) {
        return lo;
    }
    return v * (int64_t)(((int64_t)1) << k);
}

static inline int64_t hwprune_cast_i64(int64_t v, int shift, int width, int is_signed, int rounding, int overflow)
{
    if (shift < 0) {
        return hwprune_shl_i64(v, -shift, width, is_signed, overflow);
    }
    return hwprune_overflow_i64(hwprune_shr_i64(v, shift, rounding), width, is_signed, overflow);
}

#endif /* HWPRUNE_FIXED_H */
