/* TFLite's int8 dialect on cores with the DSP extension (Cortex-M4, M7, M33): the layer
 * kernels (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D), built on
 * hwprune_int8_dsp.h (the instructions, their portable C twins, the requantization, the
 * widened input layout and the 2x2 and 4x1 multiply blocks). Included by hwprune_int8.h
 * after the scalar kernels, which cores without the extension (Cortex-M0+) and the host run;
 * every kernel here computes what its scalar twin computes, bit for bit. */
#ifndef HWPRUNE_INT8_SIMD_H
#define HWPRUNE_INT8_SIMD_H

#include <stdint.h>

#include "hwprune_int8_dsp.h"

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

/* ``rows`` of a channel of a convolution's quad record (hwprune_int8_quads.h), whose weights
 * hwp_row_w reads in that record's order: int8, or int16 where the model's C defines
 * HWP_QUAD_WIDE 1 */
#define HWP_ROW_QUAD 0
#ifndef HWP_QUAD_WIDE
#define HWP_QUAD_WIDE 0
#endif

static inline int32_t hwp_row_w(hwp_row_t row, int k, int k4, int t) {
    if (row.rows == HWP_ROW_QUAD && HWP_QUAD_WIDE) {
        int16_t v;
        __builtin_memcpy(&v, row.base + 2 * (16 * (k >> 2) + 8 * (k & 1) + 2 * row.r + ((k >> 1) & 1)), 2);
        return v;
    }
    if (row.rows == HWP_ROW_QUAD)
        return row.base[16 * (k >> 2) + 8 * (k & 1) + 4 * (row.r >> 1) + (row.r & 1) + 2 * ((k >> 1) & 1)];
    return k < k4 ? row.base[(k & ~3) * row.rows + row.r * 4 + (k & 3)] : row.base[k4 * row.rows + row.r * t + (k - k4)];
}

#include "hwprune_int8_pairs.h"

/* Four outputs o.. of a block requantized, written out: a loop here stays rolled around
 * hwp_rq's two paths */
#define HWP_RQ4(y, s, o, mult, shift, out_zp, lo, hi)                                                         \
    do {                                                                                                      \
        (y)[(o)] = hwp_rq((s)[0], (mult)[(o)], (shift)[(o)], (out_zp), (lo), (hi));                           \
        (y)[(o) + 1] = hwp_rq((s)[1], (mult)[(o) + 1], (shift)[(o) + 1], (out_zp), (lo), (hi));               \
        (y)[(o) + 2] = hwp_rq((s)[2], (mult)[(o) + 2], (shift)[(o) + 2], (out_zp), (lo), (hi));               \
        (y)[(o) + 3] = hwp_rq((s)[3], (mult)[(o) + 3], (shift)[(o) + 3], (out_zp), (lo), (hi));               \
    } while (0)

/* FULLY_CONNECTED with every weight stored, rows blocked by 4 (hwp_row); ``scratch`` holds
 * n_in halfwords on DSP cores (backends/c_int8.scratch_halfwords). With the DSP extension
 * the input is widened once, then four rows at a time. A null ``scratch`` reads the int8
 * input as it goes (a cycle more per 16 MACs, no RAM): in_zp must then be 0, the zero point
 * folded into ``bias`` at export (bias - in_zp * sum(w), exact in wrapping int32). */
HWP_KERNEL void hwp_fc_dense_s8(const int8_t *x, int8_t *y, int n_in, int n_out, const int8_t *w,
                                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t in_zp,
                                   int32_t out_zp, int32_t lo, int32_t hi, int16_t *scratch) {
    int o, full = n_out & ~3;
#if HWP_SIMD
    int k4 = n_in & ~3;
    if (scratch) {
        int32_t off2 = hwp_offset_pair(in_zp);
        HWP_OPAQUE(scratch);
        for (int k = 0; k < k4; k += 4) hwp_widen4(x + k, scratch + k, off2);
        for (int k = k4; k < n_in; k++) scratch[k] = (int16_t)((int32_t)x[k] - in_zp);
        for (o = 0; o < full; o += 4) {
            int32_t s[4] = {bias[o], bias[o + 1], bias[o + 2], bias[o + 3]};
            hwp_mm4x1(w + o * n_in, n_in, scratch, s);
            HWP_RQ4(y, s, o, mult, shift, out_zp, lo, hi);
        }
    } else { /* a loop of its own: one test per layer, not per block */
        for (o = 0; o < full; o += 4) {
            int32_t s[4] = {bias[o], bias[o + 1], bias[o + 2], bias[o + 3]};
            hwp_mm4x1_s8(w + o * n_in, n_in, x, s);
            HWP_RQ4(y, s, o, mult, shift, out_zp, lo, hi);
        }
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
            int32_t u = hwp_ld32(row + k), v = hwp_ld32(x + k);
            int32_t ca = scratch ? hwp_ld32(scratch + k) : hwp_sxtb16(v);
            int32_t cb = scratch ? hwp_ld32(scratch + k + 2) : hwp_sxtb16(HWP_ROR8(v));
            acc = hwp_smlad(hwp_sxtb16(u), ca, acc);
            acc = hwp_smlad(hwp_sxtb16(HWP_ROR8(u)), cb, acc);
        }
#endif
        for (; k < n_in; k++) acc += (int32_t)row[k] * ((int32_t)x[k] - in_zp);
        y[o] = hwp_rq(acc, mult[o], shift[o], out_zp, lo, hi);
    }
}

#if HWP_SIMD
/* The columns of a 1x1 convolution's two pixels (in_c a multiple of four): each pixel's own
 * inputs, side by side at xp and xq, widened minus the zero point in hwp_im2col's layout;
 * ``twice``: doubled (hwp_widen4_twice) */
static inline __attribute__((always_inline)) void hwp_pw_cols(const int8_t *xp, const int8_t *xq, int in_c,
                                                              int16_t *col, int32_t off2, int twice) {
    for (int k = 0; k < in_c; k += 4, col += 8) {
        if (twice) {
            hwp_widen4_twice(xp + k, col, off2);
            hwp_widen4_twice(xq + k, col + 4, off2);
        } else {
            hwp_widen4(xp + k, col, off2);
            hwp_widen4(xq + k, col + 4, off2);
        }
    }
}
#endif

/* CONV_2D with every weight stored, in_c a multiple of four: ``w`` the records of
 * hwprune_int8_pairs.h (filters (out, kh, kw, cin), rows blocked by 2, each pair with its
 * biases and requantization constants); ``scratch`` holds 2 * kh * kw * in_c halfwords on DSP
 * cores. With the DSP extension a matrix product: two output pixels' columns at a time
 * (im2col), two output channels per pass over them (hwp_conv_pairs). */
HWP_KERNEL void hwp_conv_dense_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int in_c, int out_h, int out_w,
                                     int out_c, int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l,
                                     const int8_t *w, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi,
                                     int16_t *scratch) {
    int k_all = kh * kw * in_c, pixels = out_h * out_w;
#if HWP_SIMD
    /* 1x1, stride 1, no padding, channels in words (constants where the kernel is inlined) */
    int pointwise = kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_t == 0 && pad_l == 0 && (in_c & 3) == 0;
    int32_t off2 = hwp_offset_pair(in_zp);
    HWP_OPAQUE(scratch);
    for (int p = 0; p < pixels; p += 2) {
        int q = p + 1 < pixels ? p + 1 : p; /* an odd last pixel runs as its own pair */
        if (pointwise) {
            hwp_pw_cols(x + p * in_c, x + q * in_c, in_c, scratch, off2, 0);
        } else {
            hwp_im2col(x, scratch, 0, p, in_h, in_w, in_c, out_w, kh, kw, stride_h, stride_w, pad_t, pad_l, in_zp);
            hwp_im2col(x, scratch, 1, q, in_h, in_w, in_c, out_w, kh, kw, stride_h, stride_w, pad_t, pad_l, in_zp);
        }
        hwp_conv_pairs(w, k_all, scratch, y + p * out_c, y + q * out_c, out_c, out_zp, lo, hi, 0);
    }
#else
    (void)scratch;
    for (int p = 0; p < pixels; p++) {
        int y0 = (p / out_w) * stride_h - pad_t, x0 = (p % out_w) * stride_w - pad_l;
        for (int o = 0; o < out_c; o++) {
            int32_t acc, mult, shift;
            hwp_row_t row = hwp_rec_channel(w, o, k_all, out_c, HWP_FOLDED(out_zp, lo, hi), &acc, &mult, &shift);
            for (int dy = 0; dy < kh; dy++) {
                int iy = y0 + dy;
                if (iy < 0 || iy >= in_h) continue; /* padding adds nothing */
                for (int dx = 0; dx < kw; dx++) {
                    int ix = x0 + dx;
                    if (ix < 0 || ix >= in_w) continue;
                    const int8_t *xp = x + (iy * in_w + ix) * in_c;
                    int k0 = (dy * kw + dx) * in_c;
                    for (int c = 0; c < in_c; c++) acc += hwp_row_w(row, k0 + c, k_all, 0) * ((int32_t)xp[c] - in_zp);
                }
            }
            y[p * out_c + o] = hwp_rq(acc, mult, shift, out_zp, lo, hi);
        }
    }
#endif
}

/* Where a hwp_conv_k4_s8 filter holds its weight for kernel row ``dy``'s byte ``j`` (j < row,
 * row = kw * in_c, the row's inputs being contiguous in the image): every kernel row's whole
 * words first, row by row, then every row's last row % 4 bytes, row by row, then zeros up to a
 * multiple of four (backends/c_int8_layout.k4_filters). A receptive field inside the image then
 * widens a word at a time straight from the input, with no more padding than k_all's own. */
static inline int hwp_k4_index(int dy, int j, int kh, int row) {
    int a4 = row & ~3;
    return j < a4 ? dy * a4 + j : kh * a4 + dy * (row - a4) + (j - a4);
}

#if HWP_SIMD
/* Column ``j`` of two for hwp_conv_k4_s8: output pixel ``pix``'s receptive field, input minus
 * zero point, in the filters' order (hwp_k4_index), then up to k4 lanes that meet zero weights.
 * A field inside the input: each kernel row's whole words widened straight from the image, then
 * the rows' last bytes gathered four to a word (nothing past a row is read); a field across the
 * border is first copied with the zero point in the padding (widened, 0), then the same. */
static inline __attribute__((always_inline)) void hwp_im2col_k4(const int8_t *x, int16_t *col, int j, int pix,
                                                                 int in_h, int in_w, int in_c, int out_w, int kh,
                                                                 int kw, int stride_h, int stride_w, int pad_t,
                                                                 int pad_l, int32_t in_zp, int32_t off2) {
    int row = kw * in_c, a4 = row & ~3, b = row - a4, rs = in_w * in_c;
    int y0 = (pix / out_w) * stride_h - pad_t, x0 = (pix % out_w) * stride_w - pad_l;
    int16_t *dst = col + 4 * j;
    int8_t patch[kh * row]; /* a field that reaches into the padding: its bytes, the zero point outside */
    const int8_t *src = patch;
    if (y0 >= 0 && y0 + kh <= in_h && x0 >= 0 && x0 + kw <= in_w) {
        src = x + (y0 * in_w + x0) * in_c;
    } else {
        for (int dy = 0; dy < kh; dy++)
            for (int i = 0; i < row; i++) {
                int iy = y0 + dy, ix = x0 + i / in_c;
                patch[dy * row + i] = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w ? x[(iy * in_w + ix) * in_c + i % in_c]
                                                                                  : (int8_t)in_zp;
            }
        rs = row;
    }
    for (int dy = 0; dy < kh; dy++)
        for (int i = 0; i < a4; i += 4, dst += 8) hwp_widen4(src + dy * rs + i, dst, off2);
    if (b) {
        uint32_t v = 0;
        int n = 0;
        for (int dy = 0; dy < kh; dy++)
            for (int t = 0; t < b; t++) {
                v |= (uint32_t)(uint8_t)src[dy * rs + a4 + t] << (8 * n);
                if (++n == 4) {
                    hwp_widen_word(v, dst, off2);
                    dst += 8;
                    v = 0;
                    n = 0;
                }
            }
        if (n) hwp_widen_word(v, dst, off2); /* lanes past k_all meet zero weights */
    }
}
#endif

/* CONV_2D with every weight stored, each filter's kh * kw * in_c weights in hwp_k4_index's
 * order followed by zeros up to k4, a multiple of four: ``w`` the records of
 * hwprune_int8_pairs.h over (out, k4); ``scratch`` holds 2 * k4 halfwords of columns on DSP
 * cores. For inputs whose channels are not a multiple of four (a first layer's 3): its columns
 * still widen a word at a time (hwp_im2col_k4) and the multiply blocks have no tail, for the
 * padding's few MACs. Otherwise as hwp_conv_dense_s8. */
HWP_KERNEL void hwp_conv_k4_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int in_c, int out_h, int out_w,
                               int out_c, int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l,
                               const int8_t *w, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi,
                               int16_t *scratch) {
    int k4 = (kh * kw * in_c + 3) & ~3, pixels = out_h * out_w;
#if HWP_SIMD
    int32_t off2 = hwp_offset_pair(in_zp);
    HWP_OPAQUE(scratch);
    for (int p = 0; p < pixels; p += 2) {
        int q = p + 1 < pixels ? p + 1 : p; /* an odd last pixel runs as its own pair */
        hwp_im2col_k4(x, scratch, 0, p, in_h, in_w, in_c, out_w, kh, kw, stride_h, stride_w, pad_t, pad_l, in_zp, off2);
        hwp_im2col_k4(x, scratch, 1, q, in_h, in_w, in_c, out_w, kh, kw, stride_h, stride_w, pad_t, pad_l, in_zp, off2);
        hwp_conv_pairs(w, k4, scratch, y + p * out_c, y + q * out_c, out_c, out_zp, lo, hi, 0);
    }
#else
    (void)scratch;
    for (int p = 0; p < pixels; p++) {
        int y0 = (p / out_w) * stride_h - pad_t, x0 = (p % out_w) * stride_w - pad_l;
        for (int o = 0; o < out_c; o++) {
            int32_t acc, mult, shift;
            hwp_row_t row = hwp_rec_channel(w, o, k4, out_c, HWP_FOLDED(out_zp, lo, hi), &acc, &mult, &shift);
            for (int dy = 0; dy < kh; dy++) {
                int iy = y0 + dy;
                if (iy < 0 || iy >= in_h) continue; /* padding adds nothing */
                for (int dx = 0; dx < kw; dx++) {
                    int ix = x0 + dx;
                    if (ix < 0 || ix >= in_w) continue;
                    const int8_t *xp = x + (iy * in_w + ix) * in_c;
                    for (int c = 0; c < in_c; c++)
                        acc += hwp_row_w(row, hwp_k4_index(dy, dx * in_c + c, kh, kw * in_c), k4, 0) *
                               ((int32_t)xp[c] - in_zp);
                }
            }
            y[p * out_c + o] = hwp_rq(acc, mult, shift, out_zp, lo, hi);
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
HWP_KERNEL void hwp_dwconv_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int c, int out_h, int out_w, int kh,
                                 int kw, int stride_h, int stride_w, int pad_t, int pad_l, const int16_t *w,
                                 const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t in_zp,
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
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
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
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
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

#endif
