/* TFLite's int8 dialect on cores with the DSP extension (Cortex-M4, M7, M33): SXTB16/SXTAB16
 * widen four int8 values into two int16 pairs, SMLAD adds two 16x16 products in one
 * instruction. Included by hwprune_int8.h after the scalar kernels, which cores without the
 * extension (Cortex-M0+) and the host run. Every kernel here computes what its scalar twin
 * computes, bit for bit: products of int8 weights and (input - zero point) summed in an
 * int32 (wrapping, in any order, since int32 addition is associative mod 2^32), then the
 * same requantization.
 *
 * Layout of the widened inputs ("columns", int16 in a scratch buffer): each group of four
 * consecutive inputs k..k+3 is stored as (x0, x2, x1, x3), the order in which SXTB16 and
 * SXTB16 of the word rotated by 8 split a word of four int8 weights, so one word of weights
 * meets two words of inputs without reordering either. The last n % 4 inputs follow in
 * their own order. Padding positions hold 0 (= input - zero point at a zero-point input,
 * which is what the reference's skipped taps add).
 *
 * HWPRUNE_INT8_PORTABLE_SIMD builds the same kernels with the instructions written in C,
 * so that a host compiler can test the blocking and the layouts. */
#ifndef HWPRUNE_INT8_SIMD_H
#define HWPRUNE_INT8_SIMD_H

#include <stdint.h>

#define HWP_ROR8(v) ((int32_t)(((uint32_t)(v) >> 8) | ((uint32_t)(v) << 24)))

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define HWP_SIMD 1
#define hwp_sxtab16(a, b) ((int32_t)__sxtab16((a), (b)))
#define hwp_sxtb16(a) ((int32_t)__sxtb16((a)))
#define hwp_smlad(a, b, acc) ((int32_t)__smlad((a), (b), (acc)))
#define hwp_smlabb(a, b, acc) ((int32_t)__smlabb((a), (b), (acc)))
#define hwp_smlatt(a, b, acc) ((int32_t)__smlatt((a), (b), (acc)))
#elif defined(HWPRUNE_INT8_PORTABLE_SIMD)
#define HWP_SIMD 1
static inline int32_t hwp_s8_of(uint32_t v) { return (int32_t)((v & 0xffu) ^ 0x80u) - 0x80; }
static inline int32_t hwp_lo16(int32_t v) { return (int32_t)(((uint32_t)v & 0xffffu) ^ 0x8000u) - 0x8000; }
static inline int32_t hwp_hi16(int32_t v) { return (int32_t)(((uint32_t)v >> 16) ^ 0x8000u) - 0x8000; }
static inline int32_t hwp_sxtab16(int32_t a, int32_t b) {
    uint32_t lo = ((uint32_t)a + (uint32_t)hwp_s8_of((uint32_t)b)) & 0xffffu;
    uint32_t hi = (((uint32_t)a >> 16) + (uint32_t)hwp_s8_of((uint32_t)b >> 16)) & 0xffffu;
    return (int32_t)(lo | hi << 16);
}
static inline int32_t hwp_sxtb16(int32_t a) { return hwp_sxtab16(0, a); }
static inline int32_t hwp_smlad(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(hwp_lo16(a) * hwp_lo16(b)) + (uint32_t)(hwp_hi16(a) * hwp_hi16(b)));
}
static inline int32_t hwp_smlabb(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(hwp_lo16(a) * hwp_lo16(b)));
}
static inline int32_t hwp_smlatt(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(hwp_hi16(a) * hwp_hi16(b)));
}
#else
#define HWP_SIMD 0
#endif

/* hwp_mbqm + output zero point + clamp, without branches, for multipliers other than
 * INT32_MIN (TFLite's lie in [2^30, 2^31); backends/c_int8 refuses others): the saturating
 * case of SaturatingRoundingDoublingHighMul cannot occur, and RoundingDivideByPOT by
 * e = max(-shift, 0) adds one when the remainder exceeds (mask >> 1) + (x < 0), which
 * for e = 0 (mask 0) never holds. */
static inline int8_t hwp_rq(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp, int32_t lo, int32_t hi) {
    int32_t left = shift & ~(shift >> 31), right = left - shift;
    int32_t s = (int32_t)(((int64_t)(int32_t)((uint32_t)acc << left) * multiplier + ((int64_t)1 << 30)) >> 31);
    uint32_t mask = ((uint32_t)1 << right) - 1u;
    int32_t r = (s >> right) + (((uint32_t)s & mask) > (mask >> 1) + ((uint32_t)s >> 31));
    return hwp_clamp(r + out_zp, lo, hi);
}

#if HWP_SIMD
static inline int32_t hwp_ld32(const void *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

static inline void hwp_st32(void *p, int32_t v) { __builtin_memcpy(p, &v, 4); }

/* (-zero_point) in both halfwords: SXTAB16 widens and subtracts the zero point at once */
static inline int32_t hwp_offset_pair(int32_t in_zp) {
    return (int32_t)(((uint32_t)(-in_zp) & 0xffffu) * 0x10001u);
}

/* four inputs minus the zero point, as (x0, x2) and (x1, x3) */
static inline void hwp_widen4(const int8_t *x, int16_t *dst, int32_t off2) {
    int32_t v = hwp_ld32(x);
    hwp_st32(dst, hwp_sxtab16(off2, v));
    hwp_st32(dst + 2, hwp_sxtab16(off2, HWP_ROR8(v)));
}

/* Where input k of a column lives: groups of four hold (x0, x2, x1, x3) of ``ncols``
 * columns side by side (8 halfwords per group for two), the tail after them. */
static inline int hwp_col_index(int k, int k4, int tail, int ncols, int j) {
    if (k >= k4) return k4 * ncols + j * tail + (k - k4);
    return (k & ~3) * ncols + 4 * j + ((k & 1) << 1 | (k >> 1 & 1));
}

/* One column of a convolution: output pixel ``pix``'s receptive field, input minus zero
 * point, padding 0, written as column ``j`` of two. */
static inline void hwp_im2col(const int8_t *x, int16_t *col, int j, int pix, int in_h, int in_w, int in_c, int out_w,
                              int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l, int32_t in_zp) {
    int k_all = kh * kw * in_c, k4 = k_all & ~3, tail = k_all - k4;
    int y0 = (pix / out_w) * stride_h - pad_t, x0 = (pix % out_w) * stride_w - pad_l;
    int32_t off2 = hwp_offset_pair(in_zp);
    for (int dy = 0; dy < kh; dy++) {
        int iy = y0 + dy;
        for (int dx = 0; dx < kw; dx++) {
            int ix = x0 + dx, k0 = (dy * kw + dx) * in_c;
            int inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
            const int8_t *src = inside ? x + (iy * in_w + ix) * in_c : x;
            if ((in_c & 3) == 0) { /* every group of four inside one tap: a word at a time */
                for (int c = 0; c < in_c; c += 4) {
                    int16_t *dst = col + 2 * (k0 + c) + 4 * j;
                    if (inside) {
                        hwp_widen4(src + c, dst, off2);
                    } else {
                        hwp_st32(dst, 0);
                        hwp_st32(dst + 2, 0);
                    }
                }
            } else { /* groups of four cross taps: each input to its place in the group */
                for (int c = 0; c < in_c; c++) {
                    int k = k0 + c;
                    int16_t v = (int16_t)(inside ? (int32_t)src[c] - in_zp : 0);
                    if (k < k4)
                        col[2 * (k & ~3) + 4 * j + ((k & 1) << 1 | (k >> 1 & 1))] = v;
                    else
                        col[2 * k4 + j * tail + (k - k4)] = v;
                }
            }
        }
    }
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* One group of hwp_mm2x2: r8/r9 the first column's (x0, x2)/(x1, x3), r10/r11 the second's;
 * u the first row's four weights, then the second's (overwritten by their widened halves). */
#define HWP_MM2X2_MACS                                                                                        \
    "sxtb16 r12, %[u]\n\t"                                                                                    \
    "sxtb16 %[u], %[u], ror #8\n\t"                                                                           \
    "smlad %[a00], r12, r8, %[a00]\n\t"                                                                       \
    "smlad %[a01], r12, r10, %[a01]\n\t"                                                                      \
    "smlad %[a00], %[u], r9, %[a00]\n\t"                                                                      \
    "smlad %[a01], %[u], r11, %[a01]\n\t"                                                                     \
    "ldr %[u], [%[w]], #4\n\t"                                                                               \
    "sxtb16 r12, %[u]\n\t"                                                                                    \
    "sxtb16 %[u], %[u], ror #8\n\t"                                                                           \
    "smlad %[a10], r12, r8, %[a10]\n\t"                                                                       \
    "smlad %[a11], r12, r10, %[a11]\n\t"                                                                      \
    "smlad %[a10], %[u], r9, %[a10]\n\t"                                                                      \
    "smlad %[a11], %[u], r11, %[a11]\n\t"
/* One group of hwp_mm4x1: r12/lr the column's (x0, x2)/(x1, x3); r8, r9 two rows' weights */
#define HWP_MM4X1_ROW(a, reg)                                                                                 \
    "sxtb16 r10, " reg "\n\t"                                                                                 \
    "sxtb16 " reg ", " reg ", ror #8\n\t"                                                                     \
    "smlad %[" a "], r10, r12, %[" a "]\n\t"                                                                  \
    "smlad %[" a "], " reg ", lr, %[" a "]\n\t"
#define HWP_MM4X1_GROUP                                                                                       \
    "ldmia %[col]!, {r12, lr}\n\t"                                                                            \
    "ldmia %[w]!, {r8, r9}\n\t"                                                                               \
    HWP_MM4X1_ROW("a0", "r8") HWP_MM4X1_ROW("a1", "r9")                                                       \
    "ldmia %[w]!, {r8, r9}\n\t"                                                                               \
    HWP_MM4X1_ROW("a2", "r8") HWP_MM4X1_ROW("a3", "r9")
#endif

/* Two weight rows times two columns, the rows interleaved (hwp_row, R = 2):
 * s[0] += w0.c0, s[1] += w0.c1, s[2] += w1.c0, s[3] += w1.c1; four SMLADs per word. */
static inline void hwp_mm2x2(const int8_t *w, int k_all, const int16_t *col, int32_t *s) {
    int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
    int groups = k_all >> 2;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    /* Written out so that no accumulator spills: per group of four inputs one LDM of the
     * two columns' four words (r8-r11, written back), two weight words, 4 SXTB16 and 8
     * SMLAD; two groups per pass over the loop's test. */
    if (groups & 1) {
        int32_t u;
        __asm__ volatile(
            "ldmia %[col]!, {r8, r9, r10, r11}\n\t"
            "ldr %[u], [%[w]], #4\n\t"
            HWP_MM2X2_MACS
            : [a00] "+r"(s00), [a01] "+r"(s01), [a10] "+r"(s10), [a11] "+r"(s11), [w] "+r"(w), [col] "+r"(col),
              [u] "=&r"(u)
            :
            : "r8", "r9", "r10", "r11", "r12", "memory");
    }
    groups >>= 1;
    if (groups > 0) {
        int32_t u;
        __asm__ volatile(
            "1:\n\t"
            "ldmia %[col]!, {r8, r9, r10, r11}\n\t"
            "ldr %[u], [%[w]], #4\n\t"
            HWP_MM2X2_MACS
            "ldmia %[col]!, {r8, r9, r10, r11}\n\t"
            "ldr %[u], [%[w]], #4\n\t"
            HWP_MM2X2_MACS
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [a00] "+r"(s00), [a01] "+r"(s01), [a10] "+r"(s10), [a11] "+r"(s11), [w] "+r"(w), [col] "+r"(col),
              [n] "+r"(groups), [u] "=&r"(u)
            :
            : "r8", "r9", "r10", "r11", "r12", "cc", "memory");
    }
#else
    for (; groups > 0; groups--) {
        int32_t u = hwp_ld32(w), c0a = hwp_ld32(col), c1a = hwp_ld32(col + 4);
        int32_t ua = hwp_sxtb16(u), ub = hwp_sxtb16(HWP_ROR8(u));
        s00 = hwp_smlad(ua, c0a, s00);
        s01 = hwp_smlad(ua, c1a, s01);
        int32_t c0b = hwp_ld32(col + 2), c1b = hwp_ld32(col + 6);
        s00 = hwp_smlad(ub, c0b, s00);
        s01 = hwp_smlad(ub, c1b, s01);
        u = hwp_ld32(w + 4);
        ua = hwp_sxtb16(u);
        ub = hwp_sxtb16(HWP_ROR8(u));
        s10 = hwp_smlad(ua, c0a, s10);
        s11 = hwp_smlad(ua, c1a, s11);
        s10 = hwp_smlad(ub, c0b, s10);
        s11 = hwp_smlad(ub, c1b, s11);
        col += 8;
        w += 8;
    }
#endif
    int t = k_all & 3;
    for (int i = 0; i < t; i++) {
        int32_t a = col[i], b = col[t + i];
        s00 += (int32_t)w[i] * a;
        s01 += (int32_t)w[i] * b;
        s10 += (int32_t)w[t + i] * a;
        s11 += (int32_t)w[t + i] * b;
    }
    s[0] = s00;
    s[1] = s01;
    s[2] = s10;
    s[3] = s11;
}

/* Four interleaved weight rows (hwp_row, R = 4) times one column */
static inline void hwp_mm4x1(const int8_t *w, int k_all, const int16_t *col, int32_t *s) {
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    int groups = k_all >> 2;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    /* Written out so that no accumulator spills: per group of four inputs one LDM of the
     * column's two words (r12, lr), two LDMs of two rows' weight words (r8, r9), 8 SXTB16
     * and 8 SMLAD; four groups per pass over the loop's test. */
    for (; groups & 3; groups--) {
        __asm__ volatile(HWP_MM4X1_GROUP
                         : [a0] "+r"(s0), [a1] "+r"(s1), [a2] "+r"(s2), [a3] "+r"(s3), [w] "+r"(w), [col] "+r"(col)
                         :
                         : "r8", "r9", "r10", "r12", "lr", "memory");
    }
    groups >>= 2;
    if (groups > 0) {
        __asm__ volatile("1:\n\t" HWP_MM4X1_GROUP HWP_MM4X1_GROUP HWP_MM4X1_GROUP HWP_MM4X1_GROUP
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         : [a0] "+r"(s0), [a1] "+r"(s1), [a2] "+r"(s2), [a3] "+r"(s3), [w] "+r"(w), [col] "+r"(col),
                           [n] "+r"(groups)
                         :
                         : "r8", "r9", "r10", "r12", "lr", "cc", "memory");
    }
#else
    for (; groups > 0; groups--) {
        int32_t ca = hwp_ld32(col), cb = hwp_ld32(col + 2), u = hwp_ld32(w);
        s0 = hwp_smlad(hwp_sxtb16(u), ca, s0);
        s0 = hwp_smlad(hwp_sxtb16(HWP_ROR8(u)), cb, s0);
        u = hwp_ld32(w + 4);
        s1 = hwp_smlad(hwp_sxtb16(u), ca, s1);
        s1 = hwp_smlad(hwp_sxtb16(HWP_ROR8(u)), cb, s1);
        u = hwp_ld32(w + 8);
        s2 = hwp_smlad(hwp_sxtb16(u), ca, s2);
        s2 = hwp_smlad(hwp_sxtb16(HWP_ROR8(u)), cb, s2);
        u = hwp_ld32(w + 12);
        s3 = hwp_smlad(hwp_sxtb16(u), ca, s3);
        s3 = hwp_smlad(hwp_sxtb16(HWP_ROR8(u)), cb, s3);
        col += 4;
        w += 16;
    }
#endif
    int t = k_all & 3;
    for (int i = 0; i < t; i++) {
        int32_t a = col[i];
        s0 += (int32_t)w[i] * a;
        s1 += (int32_t)w[t + i] * a;
        s2 += (int32_t)w[2 * t + i] * a;
        s3 += (int32_t)w[3 * t + i] * a;
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}
#endif

/* A row-blocked weight matrix (n_rows x k_all, blocks of R rows): within a full block, each
 * group of four inputs holds the R rows' four weights one row after the other, then come
 * the R rows' last k_all % 4 weights; rows after the last full block are stored plainly.
 * One weight pointer walks a block, so the block's loop keeps every accumulator in a
 * register. ``hwp_row`` finds a row, ``hwp_row_w`` its weight at input k. */
typedef struct {
    const int8_t *base;
    int r, rows;
} hwp_row_t;

static inline hwp_row_t hwp_row(const int8_t *w, int o, int k_all, int n_rows, int rows) {
    hwp_row_t row;
    if (o >= n_rows / rows * rows) {
        row.base = w + (int32_t)o * k_all;
        row.r = 0;
        row.rows = 1;
    } else {
        row.r = o % rows;
        row.base = w + (int32_t)(o - row.r) * k_all;
        row.rows = rows;
    }
    return row;
}

static inline int32_t hwp_row_w(hwp_row_t row, int k, int k4, int t) {
    return k < k4 ? row.base[(k & ~3) * row.rows + row.r * 4 + (k & 3)] : row.base[k4 * row.rows + row.r * t + (k - k4)];
}

/* FULLY_CONNECTED with every weight stored, rows blocked by 4 (hwp_row); ``scratch`` holds
 * n_in halfwords on DSP cores (backends/c_int8.scratch_halfwords). With the DSP extension
 * the input is widened once, then four rows at a time. */
static inline void hwp_fc_dense_s8(const int8_t *x, int8_t *y, int n_in, int n_out, const int8_t *w,
                                   const int32_t *bias, const int32_t *mult, const int8_t *shift, int32_t in_zp,
                                   int32_t out_zp, int32_t lo, int32_t hi, int16_t *scratch) {
    int o, full = n_out & ~3;
#if HWP_SIMD
    int k4 = n_in & ~3;
    int32_t off2 = hwp_offset_pair(in_zp);
    for (int k = 0; k < k4; k += 4) hwp_widen4(x + k, scratch + k, off2);
    for (int k = k4; k < n_in; k++) scratch[k] = (int16_t)((int32_t)x[k] - in_zp);
    for (o = 0; o < full; o += 4) {
        int32_t s[4] = {bias[o], bias[o + 1], bias[o + 2], bias[o + 3]};
        hwp_mm4x1(w + o * n_in, n_in, scratch, s);
        for (int r = 0; r < 4; r++) y[o + r] = hwp_rq(s[r], mult[o + r], shift[o + r], out_zp, lo, hi);
    }
#else
    (void)scratch;
    for (o = 0; o < full; o++) { /* the rows inside the blocks of four, one MAC at a time */
        hwp_row_t row = hwp_row(w, o, n_in, n_out, 4);
        int32_t acc = bias[o];
        for (int k = 0; k < n_in; k++) acc += hwp_row_w(row, k, n_in & ~3, n_in & 3) * ((int32_t)x[k] - in_zp);
        y[o] = hwp_rq(acc, mult[o], shift[o], out_zp, lo, hi);
    }
#endif
    for (o = full; o < n_out; o++) { /* the rows after the last block of four, stored plainly */
        const int8_t *row = w + (int32_t)o * n_in;
        int32_t acc = bias[o];
        int k = 0;
#if HWP_SIMD
        for (; k < k4; k += 4) {
            int32_t u = hwp_ld32(row + k);
            acc = hwp_smlad(hwp_sxtb16(u), hwp_ld32(scratch + k), acc);
            acc = hwp_smlad(hwp_sxtb16(HWP_ROR8(u)), hwp_ld32(scratch + k + 2), acc);
        }
#endif
        for (; k < n_in; k++) acc += (int32_t)row[k] * ((int32_t)x[k] - in_zp);
        y[o] = hwp_rq(acc, mult[o], shift[o], out_zp, lo, hi);
    }
}

/* CONV_2D with every weight stored, w (out, kh, kw, cin) with rows blocked by 2
 * (hwp_row); ``scratch`` holds 2 * kh * kw * in_c halfwords on DSP cores. With the
 * DSP extension a matrix product: two output pixels' columns at a time (im2col), two
 * output channels per pass over them. */
static inline void hwp_conv_dense_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int in_c, int out_h, int out_w,
                                     int out_c, int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l,
                                     const int8_t *w, const int32_t *bias, const int32_t *mult, const int8_t *shift,
                                     int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi, int16_t *scratch) {
    int k_all = kh * kw * in_c, pixels = out_h * out_w;
#if HWP_SIMD
    int pairs = out_c & ~1;
    for (int p = 0; p < pixels; p += 2) {
        int q = p + 1 < pixels ? p + 1 : p; /* an odd last pixel runs as its own pair */
        hwp_im2col(x, scratch, 0, p, in_h, in_w, in_c, out_w, kh, kw, stride_h, stride_w, pad_t, pad_l, in_zp);
        hwp_im2col(x, scratch, 1, q, in_h, in_w, in_c, out_w, kh, kw, stride_h, stride_w, pad_t, pad_l, in_zp);
        int8_t *yp = y + p * out_c, *yq = y + q * out_c;
        for (int o = 0; o < pairs; o += 2) {
            int32_t s[4] = {bias[o], bias[o], bias[o + 1], bias[o + 1]};
            hwp_mm2x2(w + o * k_all, k_all, scratch, s);
            yp[o] = hwp_rq(s[0], mult[o], shift[o], out_zp, lo, hi);
            yq[o] = hwp_rq(s[1], mult[o], shift[o], out_zp, lo, hi);
            yp[o + 1] = hwp_rq(s[2], mult[o + 1], shift[o + 1], out_zp, lo, hi);
            yq[o + 1] = hwp_rq(s[3], mult[o + 1], shift[o + 1], out_zp, lo, hi);
        }
        if (pairs < out_c) { /* an odd last channel: its plain row against both columns */
            int o = pairs, k4 = k_all & ~3, t = k_all - k4;
            const int8_t *row = w + o * k_all;
            int32_t s0 = bias[o], s1 = bias[o];
            for (int k = 0; k < k_all; k++) {
                s0 += (int32_t)row[k] * scratch[hwp_col_index(k, k4, t, 2, 0)];
                s1 += (int32_t)row[k] * scratch[hwp_col_index(k, k4, t, 2, 1)];
            }
            yp[o] = hwp_rq(s0, mult[o], shift[o], out_zp, lo, hi);
            yq[o] = hwp_rq(s1, mult[o], shift[o], out_zp, lo, hi);
        }
    }
#else
    (void)scratch;
    for (int p = 0; p < pixels; p++) {
        int y0 = (p / out_w) * stride_h - pad_t, x0 = (p % out_w) * stride_w - pad_l;
        for (int o = 0; o < out_c; o++) {
            hwp_row_t row = hwp_row(w, o, k_all, out_c, 2);
            int32_t acc = bias[o];
            for (int dy = 0; dy < kh; dy++) {
                int iy = y0 + dy;
                if (iy < 0 || iy >= in_h) continue; /* padding adds nothing */
                for (int dx = 0; dx < kw; dx++) {
                    int ix = x0 + dx;
                    if (ix < 0 || ix >= in_w) continue;
                    const int8_t *xp = x + (iy * in_w + ix) * in_c;
                    int k0 = (dy * kw + dx) * in_c;
                    for (int c = 0; c < in_c; c++)
                        acc += hwp_row_w(row, k0 + c, k_all & ~3, k_all & 3) * ((int32_t)xp[c] - in_zp);
                }
            }
            y[p * out_c + o] = hwp_rq(acc, mult[o], shift[o], out_zp, lo, hi);
        }
    }
#endif
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* One tap of hwp_dwconv_s8's four channels: v the inputs' word, widened minus the zero point
 * into t (x0, x2) and v (x1, x3); u the weights (w0, w2), then (w1, w3). */
#define HWP_DW_TAP                                                                                            \
    "ldr %[v], [%[xp]]\n\t"                                                                                   \
    "ldr %[u], [%[wp]], #4\n\t"                                                                               \
    "add %[xp], %[xp], %[c]\n\t"                                                                              \
    "sxtab16 %[t], %[off], %[v]\n\t"                                                                          \
    "sxtab16 %[v], %[off], %[v], ror #8\n\t"                                                                  \
    "smlabb %[s0], %[u], %[t], %[s0]\n\t"                                                                     \
    "smlatt %[s2], %[u], %[t], %[s2]\n\t"                                                                     \
    "ldr %[u], [%[wp]], #4\n\t"                                                                               \
    "smlabb %[s1], %[u], %[v], %[s1]\n\t"                                                                     \
    "smlatt %[s3], %[u], %[v], %[s3]\n\t"
#endif

/* DEPTHWISE_CONV_2D with one filter per channel (depth multiplier 1) and every weight stored
 * as int16, widened at export: for each block of four channels, each tap's four weights as
 * (w0, w2, w1, w3), the tap order (kh, kw); then the last c % 4 channels as (kh, kw, c).
 * With the DSP extension four channels at a time: a word of inputs widened minus the zero
 * point (SXTAB16), four 16x16 MACs (SMLABB/SMLATT) against two words of weights; taps in
 * the padding are skipped (they add nothing). */
static inline void hwp_dwconv_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int c, int out_h, int out_w, int kh,
                                 int kw, int stride_h, int stride_w, int pad_t, int pad_l, const int16_t *w,
                                 const int32_t *bias, const int32_t *mult, const int8_t *shift, int32_t in_zp,
                                 int32_t out_zp, int32_t lo, int32_t hi) {
    int taps = kh * kw, c4 = c & ~3;
    const int16_t *w_tail = w + taps * c4;
#if HWP_SIMD
    int32_t off2 = hwp_offset_pair(in_zp);
#endif
    for (int oy = 0; oy < out_h; oy++) {
        int y0 = oy * stride_h - pad_t;
        int dy0 = y0 < 0 ? -y0 : 0, dy1 = in_h - y0 < kh ? in_h - y0 : kh;
        for (int ox = 0; ox < out_w; ox++) {
            int x0 = ox * stride_w - pad_l;
            int dx0 = x0 < 0 ? -x0 : 0, dx1 = in_w - x0 < kw ? in_w - x0 : kw;
            int8_t *out = y + (oy * out_w + ox) * c;
            int ch = 0;
#if HWP_SIMD
            for (; ch < c4; ch += 4) {
                int32_t s0 = bias[ch], s1 = bias[ch + 1], s2 = bias[ch + 2], s3 = bias[ch + 3];
                const int16_t *wb = w + ch * taps;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
                if (kh == 3 && kw == 3 && dy0 == 0 && dy1 == 3 && dx0 == 0 && dx1 == 3) { /* a whole 3x3 window */
                    const int8_t *xp = x + (y0 * in_w + x0) * c + ch;
                    const int16_t *wp = wb;
                    int32_t v, t, u, row = (in_w - 3) * c;
                    __asm__ volatile(HWP_DW_TAP HWP_DW_TAP HWP_DW_TAP "add %[xp], %[xp], %[row]\n\t"
                                     HWP_DW_TAP HWP_DW_TAP HWP_DW_TAP "add %[xp], %[xp], %[row]\n\t"
                                     HWP_DW_TAP HWP_DW_TAP HWP_DW_TAP
                                     : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [xp] "+r"(xp),
                                       [wp] "+r"(wp), [v] "=&r"(v), [t] "=&r"(t), [u] "=&r"(u)
                                     : [c] "r"(c), [off] "r"(off2), [row] "r"(row)
                                     : "memory");
                    out[ch] = hwp_rq(s0, mult[ch], shift[ch], out_zp, lo, hi);
                    out[ch + 1] = hwp_rq(s1, mult[ch + 1], shift[ch + 1], out_zp, lo, hi);
                    out[ch + 2] = hwp_rq(s2, mult[ch + 2], shift[ch + 2], out_zp, lo, hi);
                    out[ch + 3] = hwp_rq(s3, mult[ch + 3], shift[ch + 3], out_zp, lo, hi);
                    continue;
                }
#endif
                for (int dy = dy0; dy < dy1; dy++) {
                    const int8_t *xp = x + ((y0 + dy) * in_w + x0 + dx0) * c + ch;
                    const int16_t *wp = wb + (dy * kw + dx0) * 4;
                    int n = dx1 - dx0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
                    if (n > 0) {
                        int32_t v, t, u;
                        __asm__ volatile(
                            "1:\n\t" HWP_DW_TAP
                            "subs %[n], %[n], #1\n\t"
                            "bne 1b\n\t"
                            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [xp] "+r"(xp), [wp] "+r"(wp),
                              [n] "+r"(n), [v] "=&r"(v), [t] "=&r"(t), [u] "=&r"(u)
                            : [c] "r"(c), [off] "r"(off2)
                            : "cc", "memory");
                    }
#else
                    for (; n > 0; n--, xp += c, wp += 4) {
                        int32_t v = hwp_ld32(xp), wa = hwp_ld32(wp), wb2 = hwp_ld32(wp + 2);
                        int32_t xa = hwp_sxtab16(off2, v), xb = hwp_sxtab16(off2, HWP_ROR8(v));
                        s0 = hwp_smlabb(wa, xa, s0);
                        s2 = hwp_smlatt(wa, xa, s2);
                        s1 = hwp_smlabb(wb2, xb, s1);
                        s3 = hwp_smlatt(wb2, xb, s3);
                    }
#endif
                }
                out[ch] = hwp_rq(s0, mult[ch], shift[ch], out_zp, lo, hi);
                out[ch + 1] = hwp_rq(s1, mult[ch + 1], shift[ch + 1], out_zp, lo, hi);
                out[ch + 2] = hwp_rq(s2, mult[ch + 2], shift[ch + 2], out_zp, lo, hi);
                out[ch + 3] = hwp_rq(s3, mult[ch + 3], shift[ch + 3], out_zp, lo, hi);
            }
#endif
            for (; ch < c; ch++) {
                int32_t acc = bias[ch];
                for (int dy = dy0; dy < dy1; dy++) {
                    for (int dx = dx0; dx < dx1; dx++) {
                        int32_t xv = x[((y0 + dy) * in_w + x0 + dx) * c + ch];
                        int tap = dy * kw + dx;
                        int32_t wv = ch < c4 ? w[(ch & ~3) * taps + tap * 4 + ((ch & 1) << 1 | (ch >> 1 & 1))]
                                             : w_tail[tap * (c - c4) + ch - c4];
                        acc += wv * (xv - in_zp);
                    }
                }
                out[ch] = hwp_rq(acc, mult[ch], shift[ch], out_zp, lo, hi);
            }
        }
    }
}

/* FULLY_CONNECTED (pixels 1) or a 1x1 CONV_2D of stride 1 without padding, storing only
 * each output channel's nonzero weights (``vals``, their input channel in ``cols``, where
 * each channel's begin in ``start``): zero weights are never multiplied. No input is ever
 * padding, so the zero point folds into the bias exactly: ``folded`` is bias - in_zp *
 * sum(w) (wrapping in int32, as the sum would). Two pixels share each weight and index
 * load; on every core (no DSP instruction). */
static inline void hwp_pw_sparse_s8(const int8_t *x, int8_t *y, int pixels, int in_c, int out_c,
                                    const uint32_t *start, const uint16_t *cols, const int8_t *vals,
                                    const int32_t *folded, const int32_t *mult, const int8_t *shift, int32_t out_zp,
                                    int32_t lo, int32_t hi) {
    for (int p = 0; p < pixels; p += 2) {
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

#endif
