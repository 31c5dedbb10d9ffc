/* DEPTHWISE_CONV_2D 3x3 with one filter per channel, stride 1 or 2 (MobileNet's and
 * DS-CNN's), on every core; included by hwprune_int8_simd.h. Each input row is widened once
 * (minus the zero point, int16) into a ring of three rows laid out channel by channel, with
 * the padding as zeros: a channel's row is then a run of halfword pairs (x[u], x[u+1]), so one
 * SMLAD multiplies two taps of a kernel row, and no tap is ever checked for padding. Each
 * channel's nine weights stay in six words (kernel row r: (k0, k1) and (k1, k2)) while its
 * whole output row is computed, two outputs at a time:
 *   stride 1, P0 = (x[2q], x[2q+1]), P1 = (x[2q+2], x[2q+3]):
 *     y[2q]   += SMLAD(P0, k01) + P1.lo * k2      y[2q+1] += P0.hi * k0 + SMLAD(P1, k12)
 *   stride 2, P0..P2 the words at 4q, 4q+2, 4q+4:
 *     y[2q]   += SMLAD(P0, k01) + P1.lo * k2      y[2q+1] += SMLAD(P1, k01) + P2.lo * k2
 * Rows of the ring outside the input read one row of zeros.
 *
 * Requantization in three instructions (backends/c_int8.depthwise_plan checks at export that
 * it is exact for the layer): weights and bias are stored doubled, so the accumulator is
 * 2 acc and SMMLAR(2 acc, m, A) = A + (acc m + 2^30) >> 31 = A + x, TFLM's first rounding
 * (m >= 0, never saturating). With A = 2^(e-1) + out_zp 2^e - [acc < 0], (A + x) >> e is
 * RoundingDivideByPOT(x, e) + out_zp (the [x < 0] of the tie rule may read [acc < 0]: they
 * differ only where x = 0, which rounds to 0 either way). Where out_zp <= act_min (ReLU's
 * usual quantization) the tie term is left out: it moves only results <= out_zp by one, all
 * clamped to act_min. SSAT then clamps to int8; a narrower activation range costs a compare. */
#ifndef HWPRUNE_INT8_DW_H
#define HWPRUNE_INT8_DW_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define hwp_dw_smlad(a, b, acc) ((int32_t)__smlad((a), (b), (acc)))
#define hwp_dw_smlabt(a, b, acc) ((int32_t)__smlabt((a), (b), (acc)))
#define hwp_dw_smlatb(a, b, acc) ((int32_t)__smlatb((a), (b), (acc)))
#define hwp_dw_sxtab16(a, b) ((int32_t)__sxtab16((a), (b)))
#define hwp_dw_ssat8(a) ((int32_t)__ssat((a), 8))
static inline int32_t hwp_dw_smmlar(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else /* the same instructions in C (the host, cores without the DSP extension) */
static inline int32_t hwp_dw_lo(int32_t v) { return (int32_t)(((uint32_t)v & 0xffffu) ^ 0x8000u) - 0x8000; }
static inline int32_t hwp_dw_hi(int32_t v) { return (int32_t)(((uint32_t)v >> 16) ^ 0x8000u) - 0x8000; }
static inline int32_t hwp_dw_smlad(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(hwp_dw_lo(a) * hwp_dw_lo(b)) + (uint32_t)(hwp_dw_hi(a) * hwp_dw_hi(b)));
}
static inline int32_t hwp_dw_smlabt(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(hwp_dw_lo(a) * hwp_dw_hi(b)));
}
static inline int32_t hwp_dw_smlatb(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(hwp_dw_hi(a) * hwp_dw_lo(b)));
}
static inline int32_t hwp_dw_sxtab16(int32_t a, int32_t b) {
    uint32_t lo = ((uint32_t)a + (uint32_t)(int32_t)(int8_t)(uint8_t)b) & 0xffffu;
    uint32_t hi = (((uint32_t)a >> 16) + (uint32_t)(int32_t)(int8_t)(uint8_t)((uint32_t)b >> 16)) & 0xffffu;
    return (int32_t)(lo | hi << 16);
}
static inline int32_t hwp_dw_ssat8(int32_t a) { return a < -128 ? -128 : (a > 127 ? 127 : a); }
static inline int32_t hwp_dw_smmlar(int32_t a, int32_t b, int32_t acc) {
    uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)a * b) + 0x80000000u;
    return (int32_t)(uint32_t)(sum >> 32);
}
#endif

/* (-zero point) in both halfwords: SXTAB16 widens and subtracts at once */
static inline int32_t hwp_dw_offset_pair(int32_t in_zp) {
    return (int32_t)(((uint32_t)(-in_zp) & 0xffffu) * 0x10001u);
}

static inline int32_t hwp_dw_ld32(const void *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* the ring is int16 written and read a word at a time */
typedef int32_t hwp_dw_word __attribute__((may_alias, aligned(4)));

/* Input row ``x`` (in_w pixels of c channels) into ``ring`` (c rows of ``wp`` halfwords, the
 * padded columns u = ix + pad_l): four channels of two pixels at a time, the columns outside
 * the input 0. */
static inline void hwp_dw_widen_row(const int8_t *x, int16_t *ring, int in_w, int c, int wp, int pad_l,
                                    int32_t in_zp) {
    int32_t off2 = hwp_dw_offset_pair(in_zp);
    int c4 = c & ~3;
    int u0 = (pad_l + 1) & ~1; /* the first pair of columns both inside the input */
    int u1 = u0 + ((pad_l + in_w - u0) & ~1);
    for (int u = 0; u < wp; u++) { /* the pairs not wholly inside, one halfword at a time */
        if (u == u0) u = u1;
        if (u >= wp) break;
        int ix = u - pad_l;
        for (int ch = 0; ch < c; ch++) ring[ch * wp + u] = (int16_t)(ix >= 0 && ix < in_w ? x[ix * c + ch] - in_zp : 0);
    }
    for (int u = u0; u < u1; u += 2) {
        const int8_t *p = x + (u - pad_l) * c;
        hwp_dw_word *dst = (hwp_dw_word *)(void *)(ring + u);
        int plane = wp >> 1; /* words between two channels' rows */
        for (int ch = 0; ch < c4; ch += 4) {
            int32_t v0 = hwp_dw_ld32(p + ch), v1 = hwp_dw_ld32(p + c + ch);
            int32_t a0 = hwp_dw_sxtab16(off2, v0), b0 = hwp_dw_sxtab16(off2, (int32_t)((uint32_t)v0 >> 8 | (uint32_t)v0 << 24));
            int32_t a1 = hwp_dw_sxtab16(off2, v1), b1 = hwp_dw_sxtab16(off2, (int32_t)((uint32_t)v1 >> 8 | (uint32_t)v1 << 24));
            hwp_dw_word *d = dst + ch * plane;
            d[0] = (int32_t)(((uint32_t)a0 & 0xffffu) | (uint32_t)a1 << 16);
            d[plane] = (int32_t)(((uint32_t)b0 & 0xffffu) | (uint32_t)b1 << 16);
            d[2 * plane] = (int32_t)(((uint32_t)a0 >> 16) | ((uint32_t)a1 & 0xffff0000u));
            d[3 * plane] = (int32_t)(((uint32_t)b0 >> 16) | ((uint32_t)b1 & 0xffff0000u));
        }
        for (int ch = c4; ch < c; ch++)
            dst[ch * plane] = (int32_t)(((uint32_t)(p[ch] - in_zp) & 0xffffu) | (uint32_t)(p[c + ch] - in_zp) << 16);
    }
}

static inline int8_t hwp_dw_rq(int32_t acc2, int32_t m, int32_t a, int32_t e, int neg, int32_t lo, int32_t hi) {
    if (neg) a += acc2 >> 31;
    int32_t v = hwp_dw_ssat8(hwp_dw_smmlar(acc2, m, a) >> e);
    if (lo > -128 && v < lo) v = lo;
    if (hi < 127 && v > hi) v = hi;
    return (int8_t)v;
}

/* One channel's output row: ``r0..r2`` its three input rows in the ring, ``k`` its six
 * weight words, ``q`` its (2 bias, m, A, e); ``y`` its first output, ``c`` apart. */
static inline void hwp_dw_row(const hwp_dw_word *r0, const hwp_dw_word *r1, const hwp_dw_word *r2, const int32_t *k,
                              const int32_t *q, int8_t *y, int c, int out_w, int stride, int neg, int32_t lo,
                              int32_t hi) {
    int32_t k0a = k[0], k0b = k[1], k1a = k[2], k1b = k[3], k2a = k[4], k2b = k[5];
    int32_t bias = q[0], m = q[1], a = q[2], e = q[3];
    int pairs = out_w >> 1;
    if (stride == 1) {
        for (int p = 0; p < pairs; p++, r0++, r1++, r2++, y += 2 * c) {
            int32_t s0, s1, p0, p1;
            p0 = r0[0], p1 = r0[1];
            s1 = hwp_dw_smlatb(p0, k0a, bias);
            s0 = hwp_dw_smlad(p0, k0a, bias);
            s0 = hwp_dw_smlabt(p1, k0b, s0);
            s1 = hwp_dw_smlad(p1, k0b, s1);
            p0 = r1[0], p1 = r1[1];
            s0 = hwp_dw_smlad(p0, k1a, s0);
            s1 = hwp_dw_smlatb(p0, k1a, s1);
            s0 = hwp_dw_smlabt(p1, k1b, s0);
            s1 = hwp_dw_smlad(p1, k1b, s1);
            p0 = r2[0], p1 = r2[1];
            s0 = hwp_dw_smlad(p0, k2a, s0);
            s1 = hwp_dw_smlatb(p0, k2a, s1);
            s0 = hwp_dw_smlabt(p1, k2b, s0);
            s1 = hwp_dw_smlad(p1, k2b, s1);
            y[0] = hwp_dw_rq(s0, m, a, e, neg, lo, hi);
            y[c] = hwp_dw_rq(s1, m, a, e, neg, lo, hi);
        }
    } else {
        for (int p = 0; p < pairs; p++, r0 += 2, r1 += 2, r2 += 2, y += 2 * c) {
            int32_t s0, s1, p0, p1, p2;
            p0 = r0[0], p1 = r0[1], p2 = r0[2];
            s0 = hwp_dw_smlad(p0, k0a, bias);
            s1 = hwp_dw_smlad(p1, k0a, bias);
            s0 = hwp_dw_smlabt(p1, k0b, s0);
            s1 = hwp_dw_smlabt(p2, k0b, s1);
            p0 = r1[0], p1 = r1[1], p2 = r1[2];
            s0 = hwp_dw_smlad(p0, k1a, s0);
            s1 = hwp_dw_smlad(p1, k1a, s1);
            s0 = hwp_dw_smlabt(p1, k1b, s0);
            s1 = hwp_dw_smlabt(p2, k1b, s1);
            p0 = r2[0], p1 = r2[1], p2 = r2[2];
            s0 = hwp_dw_smlad(p0, k2a, s0);
            s1 = hwp_dw_smlad(p1, k2a, s1);
            s0 = hwp_dw_smlabt(p1, k2b, s0);
            s1 = hwp_dw_smlabt(p2, k2b, s1);
            y[0] = hwp_dw_rq(s0, m, a, e, neg, lo, hi);
            y[c] = hwp_dw_rq(s1, m, a, e, neg, lo, hi);
        }
    }
    if (out_w & 1) { /* the last output alone: the first half of a pair */
        int32_t s0 = bias;
        s0 = hwp_dw_smlad(r0[0], k0a, s0);
        s0 = hwp_dw_smlabt(r0[1], k0b, s0);
        s0 = hwp_dw_smlad(r1[0], k1a, s0);
        s0 = hwp_dw_smlabt(r1[1], k1b, s0);
        s0 = hwp_dw_smlad(r2[0], k2a, s0);
        s0 = hwp_dw_smlabt(r2[1], k2b, s0);
        y[0] = hwp_dw_rq(s0, m, a, e, neg, lo, hi);
    }
}

/* The ring's size in halfwords for a layer (backends/c_int8.depthwise_plan computes the same) */
#define HWP_DW3_RING(c, wp) (3 * (c) * (wp) + (wp))

/* The layer: ``k`` (c, 6) weight words, ``q`` (c, 4): 2 bias, multiplier, A, e (see the top);
 * ``wp`` the ring's row width (even, covering every column read); ``ring`` HWP_DW3_RING
 * halfwords, word-aligned. */
static inline void hwp_dw3_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int c, int out_h, int out_w, int stride,
                              int pad_t, int pad_l, int wp, const int32_t *k, const int32_t *q, int32_t in_zp, int neg,
                              int32_t lo, int32_t hi, int16_t *ring) {
    int16_t *zeros = ring + 3 * c * wp;
    for (int u = 0; u < wp; u++) zeros[u] = 0;
    int next = 0; /* the next input row to widen */
    for (int oy = 0; oy < out_h; oy++) {
        int iy0 = oy * stride - pad_t;
        const int16_t *rows[3];
        for (int dy = 0; dy < 3; dy++) {
            int iy = iy0 + dy;
            if (iy < 0 || iy >= in_h) {
                rows[dy] = zeros;
                continue;
            }
            for (; next <= iy; next++)
                if (next >= iy0) hwp_dw_widen_row(x + next * in_w * c, ring + (next % 3) * c * wp, in_w, c, wp, pad_l, in_zp);
            rows[dy] = ring + (iy % 3) * c * wp;
        }
        int step[3];
        for (int dy = 0; dy < 3; dy++) step[dy] = rows[dy] == zeros ? 0 : wp;
        int8_t *out = y + oy * out_w * c;
        for (int ch = 0; ch < c; ch++)
            hwp_dw_row((const hwp_dw_word *)(const void *)(rows[0] + ch * step[0]),
                       (const hwp_dw_word *)(const void *)(rows[1] + ch * step[1]),
                       (const hwp_dw_word *)(const void *)(rows[2] + ch * step[2]), k + 6 * ch, q + 4 * ch, out + ch, c,
                       out_w, stride, neg, lo, hi);
    }
}

#endif
