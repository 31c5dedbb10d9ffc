/* TFLite's int8 dialect: TFLite Micro's reference kernels in C99 (hwprune/reference_int8.py
 * is their definition; every function here must equal it bit for bit). */
#ifndef HWPRUNE_INT8_H
#define HWPRUNE_INT8_H

#include <stdint.h>

/* A layer kernel: inlined into each layer's own function of model_int8.c, so that its
 * shape, zero points and clamp bounds are constants there (loops the compiler can unroll
 * or drop, a requantization without the unused clamp). Left to its cost model, the
 * compiler calls one shared copy of a large kernel with every parameter at run time. */
#define HWP_KERNEL static inline __attribute__((always_inline))

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b + nudge) / 2^31 truncated toward
 * zero, with nudge 2^30 (ab >= 0) or 1 - 2^30 (ab < 0). Both cases equal the arithmetic
 * shift (a * b + 2^30) >> 31: for ab < 0, truncation is floor((v + 2^31 - 1) / 2^31) with
 * v = ab + 1 - 2^30, i.e. (ab + 2^30) >> 31. One 64-bit multiply-add, no division. */
static inline int32_t hwp_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp's RoundingDivideByPOT: round half away from zero. The quotient rounded down
 * goes up by one when the remainder exceeds half the divisor (ties: for x >= 0 only),
 * i.e. when remainder + 2^(e-1) - (x < 0) reaches 2^e; unsigned, that sum cannot overflow. */
static inline int32_t hwp_rdbp(int32_t x, int exponent) {
    if (exponent == 0) return x;
    uint32_t mask = ((uint32_t)1 << exponent) - 1u;
    uint32_t bump = ((uint32_t)x & mask) + ((uint32_t)1 << (exponent - 1)) - ((uint32_t)x >> 31);
    return (x >> exponent) + (int32_t)(bump >> exponent);
}

/* TFLM's reference MultiplyByQuantizedMultiplier (two roundings) */
static inline int32_t hwp_mbqm(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return hwp_rdbp(hwp_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int8_t hwp_clamp(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* FULLY_CONNECTED: rows of nonzero weights only (zero weights are skipped: ``cols``/``vals``
 * hold each output's nonzero weights, ``start`` where each output's begin). */
HWP_KERNEL void hwp_fc_s8(const int8_t *x, int8_t *y, int n_out, const uint32_t *start, const uint16_t *cols,
                      const int8_t *vals, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                      int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi) {
    for (int o = 0; o < n_out; o++) {
        int32_t acc = bias[o];
        for (uint32_t k = start[o]; k < start[o + 1]; k++) acc += (int32_t)vals[k] * ((int32_t)x[cols[k]] - in_zp);
        y[o] = hwp_clamp(hwp_mbqm(acc, mult[o], shift[o]) + out_zp, lo, hi);
    }
}

/* CONV_2D / DEPTHWISE_CONV_2D over an (h, w, c) input; weights (out, kh, kw, cin_per_group),
 * each filter's nonzero taps as (kh, kw, cin) triples packed in ``taps``. */
HWP_KERNEL void hwp_conv_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int in_c, int out_h, int out_w, int out_c,
                        int stride_h, int stride_w, int pad_t, int pad_l, int depth_mult, const uint32_t *start,
                        const uint16_t *taps, const int8_t *vals, const int32_t *bias, const int32_t *mult,
                        const int32_t *shift, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi) {
    for (int oy = 0; oy < out_h; oy++) {
        for (int ox = 0; ox < out_w; ox++) {
            int y0 = oy * stride_h - pad_t, x0 = ox * stride_w - pad_l;
            for (int o = 0; o < out_c; o++) {
                int32_t acc = bias[o];
                int group = depth_mult ? o / depth_mult : -1;
                for (uint32_t k = start[o]; k < start[o + 1]; k++) {
                    int iy = y0 + taps[3 * k], ix = x0 + taps[3 * k + 1];
                    if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) continue; /* padding adds nothing */
                    int c = group >= 0 ? group : taps[3 * k + 2];
                    acc += (int32_t)vals[k] * ((int32_t)x[(iy * in_w + ix) * in_c + c] - in_zp);
                }
                y[(oy * out_w + ox) * out_c + o] = hwp_clamp(hwp_mbqm(acc, mult[o], shift[o]) + out_zp, lo, hi);
            }
        }
    }
}

/* DEPTHWISE_CONV_2D with several filters per channel (hwprune_int8_simd.h, on every core,
 * takes the other convolutions), every weight stored as the file holds it: w is (out, kh,
 * kw, cin_per_group); filter o (depth_mult > 0) reads input channel o / depth_mult. */
HWP_KERNEL void hwp_conv_dense_scalar_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int in_c, int out_h, int out_w,
                                     int out_c, int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l,
                                     int depth_mult, const int8_t *w, const int32_t *bias, const int32_t *mult,
                                     const int32_t *shift, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi) {
    int cin = depth_mult ? 1 : in_c;
    for (int oy = 0; oy < out_h; oy++) {
        for (int ox = 0; ox < out_w; ox++) {
            int y0 = oy * stride_h - pad_t, x0 = ox * stride_w - pad_l;
            for (int o = 0; o < out_c; o++) {
                const int8_t *filter = w + (int32_t)o * kh * kw * cin;
                int c0 = depth_mult ? o / depth_mult : 0;
                int32_t acc = bias[o];
                for (int dy = 0; dy < kh; dy++) {
                    int iy = y0 + dy;
                    if (iy < 0 || iy >= in_h) continue; /* padding adds nothing */
                    for (int dx = 0; dx < kw; dx++) {
                        int ix = x0 + dx;
                        if (ix < 0 || ix >= in_w) continue;
                        const int8_t *xp = x + (iy * in_w + ix) * in_c + c0;
                        const int8_t *wp = filter + (dy * kw + dx) * cin;
                        for (int c = 0; c < cin; c++) acc += (int32_t)wp[c] * ((int32_t)xp[c] - in_zp);
                    }
                }
                y[(oy * out_w + ox) * out_c + o] = hwp_clamp(hwp_mbqm(acc, mult[o], shift[o]) + out_zp, lo, hi);
            }
        }
    }
}

#include "hwprune_int8_simd.h"
#include "hwprune_int8_dw.h"

/* FULLY_CONNECTED (pixels 1) or a 1x1 CONV_2D of stride 1 without padding, storing only
 * each output channel's nonzero weights (``vals``, their input channel in ``cols``, where
 * each channel's begin in ``start``): zero weights are never multiplied. No input is ever
 * padding, so the zero point folds into the bias exactly: ``folded`` is bias - in_zp *
 * sum(w) (wrapping in int32, as the sum would). Four pixels share each weight and index
 * load (the inputs at constant offsets of in_c where the kernel is inlined), the last
 * pixels two or one; on every core (no DSP instruction; hwp_rq from
 * hwprune_int8_dsp.h). */
HWP_KERNEL void hwp_pw_sparse_s8(const int8_t *x, int8_t *y, int pixels, int in_c, int out_c,
                                 const uint32_t *start, const uint16_t *cols, const int8_t *vals,
                                 const int32_t *folded, const int32_t *mult, const int32_t *shift, int32_t out_zp,
                                 int32_t lo, int32_t hi) {
    int p = 0;
    for (; p + 4 <= pixels; p += 4) {
        const int8_t *xp = x + p * in_c;
        int8_t *yp = y + p * out_c;
        for (int o = 0; o < out_c; o++) {
            int32_t a0 = folded[o], a1 = a0, a2 = a0, a3 = a0;
            const uint16_t *c = cols + start[o], *end = cols + start[o + 1];
            const int8_t *v = vals + start[o];
            for (; c != end; c++, v++) {
                const int8_t *xc = xp + *c;
                int32_t wv = *v;
                a0 += wv * xc[0];
                a1 += wv * xc[in_c];
                a2 += wv * xc[2 * in_c];
                a3 += wv * xc[3 * in_c];
            }
            yp[o] = hwp_rq(a0, mult[o], shift[o], out_zp, lo, hi);
            yp[out_c + o] = hwp_rq(a1, mult[o], shift[o], out_zp, lo, hi);
            yp[2 * out_c + o] = hwp_rq(a2, mult[o], shift[o], out_zp, lo, hi);
            yp[3 * out_c + o] = hwp_rq(a3, mult[o], shift[o], out_zp, lo, hi);
        }
    }
    for (; p < pixels; p += 2) {
        const int8_t *x0 = x + p * in_c, *x1 = p + 1 < pixels ? x0 + in_c : x0;
        int8_t *y0 = y + p * out_c;
        for (int o = 0; o < out_c; o++) {
            int32_t a0 = folded[o], a1 = a0;
            const uint16_t *c = cols + start[o], *end = cols + start[o + 1];
            const int8_t *v = vals + start[o];
            for (; c != end; c++, v++) {
                int32_t wv = *v;
                a0 += wv * x0[*c];
                a1 += wv * x1[*c];
            }
            y0[o] = hwp_rq(a0, mult[o], shift[o], out_zp, lo, hi);
            if (p + 1 < pixels) y0[out_c + o] = hwp_rq(a1, mult[o], shift[o], out_zp, lo, hi);
        }
    }
}

/* AVERAGE_POOL_2D (is_max 0) and MAX_POOL_2D (is_max 1) over the cells inside the input */
HWP_KERNEL void hwp_pool_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int c, int out_h, int out_w, int kh,
                        int kw, int stride_h, int stride_w, int pad_t, int pad_l, int is_max, int32_t lo,
                        int32_t hi) {
    for (int oy = 0; oy < out_h; oy++) {
        for (int ox = 0; ox < out_w; ox++) {
            for (int ch = 0; ch < c; ch++) {
                int32_t acc = is_max ? -128 : 0, count = 0;
                for (int dy = 0; dy < kh; dy++) {
                    int iy = oy * stride_h - pad_t + dy;
                    if (iy < 0 || iy >= in_h) continue;
                    for (int dx = 0; dx < kw; dx++) {
                        int ix = ox * stride_w - pad_l + dx;
                        if (ix < 0 || ix >= in_w) continue;
                        int32_t v = x[(iy * in_w + ix) * c + ch];
                        if (is_max) acc = v > acc ? v : acc; else acc += v;
                        count++;
                    }
                }
                if (!is_max) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                y[(oy * out_w + ox) * c + ch] = hwp_clamp(acc, lo, hi);
            }
        }
    }
}

/* TFLM's MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0, two roundings). For
 * shift <= -2 and multiplier >= 0 (ADD's, whose shifts and multipliers are constants where
 * hwp_add_s8 is inlined) both roundings in one 64-bit multiply-add, as hwp_rq does
 * (hwprune_int8_dsp.h, where the identity is derived), without its clamp: x * m + 2^30 +
 * 2^(30+e) - [x < 0] 2^31 (below 2^63 in magnitude), its high word shifted right by e - 1. */
static inline int32_t hwp_mbqm_small(int32_t x, int32_t multiplier, int shift) {
    if (shift <= -2 && multiplier >= 0) {
        int32_t neg = x >> 31;
        uint64_t add = (uint64_t)(uint32_t)(neg + (1 << (-shift - 2))) << 32 | (0x40000000u | (uint32_t)neg << 31);
        int32_t h = (int32_t)((uint64_t)((int64_t)x * multiplier + (int64_t)add) >> 32);
        return h >> (-shift - 1);
    }
    return hwp_rdbp(hwp_srdhm(x, multiplier), -shift);
}

/* ADD of two int8 tensors of n values (reference_integer_ops::Add): each operand plus its
 * offset (minus its zero point), shifted left, scaled by its multiplier below one; the sum
 * scaled by the output multiplier, plus the output offset, clamped. */
HWP_KERNEL void hwp_add_s8(const int8_t *a, const int8_t *b, int8_t *y, int n, int32_t a_offset, int32_t b_offset,
                              int left_shift, int32_t a_mult, int a_shift, int32_t b_mult, int b_shift,
                              int32_t out_mult, int out_shift, int32_t out_offset, int32_t lo, int32_t hi) {
    for (int k = 0; k < n; k++) {
        int32_t sa = (int32_t)((uint32_t)((int32_t)a[k] + a_offset) << left_shift);
        int32_t sb = (int32_t)((uint32_t)((int32_t)b[k] + b_offset) << left_shift);
        int32_t sum = hwp_mbqm_small(sa, a_mult, a_shift) + hwp_mbqm_small(sb, b_mult, b_shift);
        y[k] = hwp_clamp(hwp_mbqm_small(sum, out_mult, out_shift) + out_offset, lo, hi);
    }
}

/* ADD with each operand's scaled value read from a table of its 256 int8 values (ta, tb:
 * index v + 128, written at export by the reference's own ADD operand), then the sum scaled
 * as hwp_add_s8 does: the same integers, two loads instead of two multiplies per value. */
HWP_KERNEL void hwp_add_lut_s8(const int8_t *a, const int8_t *b, int8_t *y, int n, const int32_t *ta,
                               const int32_t *tb, int32_t out_mult, int out_shift, int32_t out_offset, int32_t lo,
                               int32_t hi) {
    const int32_t *ta0 = ta + 128, *tb0 = tb + 128;
    for (int k = 0; k < n; k++) {
        int32_t sum = ta0[a[k]] + tb0[b[k]];
        y[k] = hwp_clamp(hwp_mbqm_small(sum, out_mult, out_shift) + out_offset, lo, hi);
    }
}

#endif
