/* DEPTHWISE_CONV_2D 3x3 with one filter per channel, stride 1 or 2 (MobileNet's and
 * DS-CNN's), on every core; included by hwprune_int8.h. Each input row is widened once
 * (minus the zero point, int16) into a ring of three rows laid out channel by channel, with
 * the padding as zeros: a channel's row is then a run of halfword pairs (x[u], x[u+1]), so one
 * SMLAD multiplies two taps of a kernel row, and no tap is ever checked for padding (the
 * three rows' words of a pair of columns lie side by side, one pointer reaches them). Each
 * channel's nine weights stay in six words (kernel row r: (k0, k1) and (k1, k2)) while its
 * whole output row is computed, two outputs at a time:
 *   stride 1, P0 = (x[2q], x[2q+1]), P1 = (x[2q+2], x[2q+3]):
 *     y[2q]   += SMLAD(P0, k01) + P1.lo * k2      y[2q+1] += P0.hi * k0 + SMLAD(P1, k12)
 *   stride 2, P0..P2 the words at 4q, 4q+2, 4q+4:
 *     y[2q]   += SMLAD(P0, k01) + P1.lo * k2      y[2q+1] += SMLAD(P1, k01) + P2.lo * k2
 * (at stride 1 without the tie term below, four at a time: hwp_dw_run4). A slot of the ring
 * for a row outside the input holds zeros, as do the padding columns of every slot.
 *
 * Requantization in three instructions (backends/c_int8_dw.depthwise_plan checks at export that
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

#include "hwprune_int8_dsp.h" /* hwp_smmlar */
/* hwprune_int8.h includes this header after hwprune_int8_simd.h, whose 1x1 convolution pieces
 * (hwp_pw_cols, hwp_conv_pairs, the records' reader) hwp_pwdw3_s8 runs */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define hwp_dw_smlad(a, b, acc) ((int32_t)__smlad((a), (b), (acc)))
#define hwp_dw_smlabt(a, b, acc) ((int32_t)__smlabt((a), (b), (acc)))
#define hwp_dw_smlatb(a, b, acc) ((int32_t)__smlatb((a), (b), (acc)))
#define hwp_dw_ssat8(a) ((int32_t)__ssat((a), 8))
#define hwp_dw_sxtab16(a, b) ((int32_t)__sxtab16((a), (b)))
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

/* The ring: three widened input rows, word (ch, pair of columns j, row slot s) at
 * (ch * pairs + j) * 3 + s, so that one pointer with fixed offsets reaches all three rows. */
static inline int hwp_dw_at(int ch, int j, int slot, int pairs) { return (ch * pairs + j) * 3 + slot; }

/* Four channels (a word) of one pair of columns, the left pixel's at l, the right's at r, into
 * the ring at d (the channels ``step`` words apart): the C form of hwp_dw_widen_cols' loop. */
static inline void hwp_dw_widen_pair(const int8_t *l, const int8_t *r, hwp_dw_word *d, int step, int32_t off2) {
    int32_t v0 = hwp_dw_ld32(l), v1 = hwp_dw_ld32(r);
    int32_t a0 = hwp_dw_sxtab16(off2, v0), b0 = hwp_dw_sxtab16(off2, HWP_ROR8(v0));
    int32_t a1 = hwp_dw_sxtab16(off2, v1), b1 = hwp_dw_sxtab16(off2, HWP_ROR8(v1));
    d[0] = (int32_t)(((uint32_t)a0 & 0xffffu) | (uint32_t)a1 << 16);
    d[step] = (int32_t)(((uint32_t)b0 & 0xffffu) | (uint32_t)b1 << 16);
    d[2 * step] = (int32_t)(((uint32_t)a0 >> 16) | ((uint32_t)a1 & 0xffff0000u));
    d[3 * step] = (int32_t)(((uint32_t)b0 >> 16) | ((uint32_t)b1 & 0xffff0000u));
}

/* Four channels (a word) of ``nj`` pairs of columns (pl + 2 px j and the pixel after it, all
 * inside the input) into the ring from d (the first channel's word of the first pair; the
 * others ``step`` words apart, the next pair 3 words on): SXTAB16 widens minus the zero
 * point, PKHBT/PKHTB pair the columns per channel. */
static inline void hwp_dw_widen_cols(const int8_t *pl, int px, hwp_dw_word *d, int step, int nj, int32_t off2) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
    /* written out: the compiler's version spills inside the loop */
    hwp_dw_word *d1 = d + step, *d2 = d + 2 * step, *d3 = d + 3 * step;
    int32_t v0, v1, a, b, t;
    __asm__ volatile("1:\n\t"
                     "ldr %[v1], [%[pl], %[px]]\n\t"
                     "ldr %[v0], [%[pl]]\n\t"
                     "add %[pl], %[pl], %[px], lsl #1\n\t"
                     "sxtab16 %[a], %[off], %[v0]\n\t"
                     "sxtab16 %[b], %[off], %[v1]\n\t"
                     "sxtab16 %[v0], %[off], %[v0], ror #8\n\t"
                     "sxtab16 %[v1], %[off], %[v1], ror #8\n\t"
                     "pkhbt %[t], %[a], %[b], lsl #16\n\t"
                     "str %[t], [%[d0]], #12\n\t"
                     "pkhtb %[b], %[b], %[a], asr #16\n\t"
                     "str %[b], [%[d2]], #12\n\t"
                     "pkhbt %[a], %[v0], %[v1], lsl #16\n\t"
                     "str %[a], [%[d1]], #12\n\t"
                     "pkhtb %[v1], %[v1], %[v0], asr #16\n\t"
                     "str %[v1], [%[d3]], #12\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [pl] "+r"(pl), [d0] "+r"(d), [d1] "+r"(d1), [d2] "+r"(d2), [d3] "+r"(d3), [n] "+r"(nj),
                       [v0] "=&r"(v0), [v1] "=&r"(v1), [a] "=&r"(a), [b] "=&r"(b), [t] "=&r"(t)
                     : [px] "r"(px), [off] "r"(off2)
                     : "cc", "memory");
#else
    for (; nj > 0; nj--, pl += 2 * px, d += 3) hwp_dw_widen_pair(pl, pl + px, d, step, off2);
#endif
}

/* Input row ``x`` (in_w pixels of c channels, ``px`` bytes apart) into row slot ``slot`` of
 * the ring (``wp`` halfwords a channel, the padded columns u = ix + pad_l). Only the pairs of
 * columns with a column inside the input are written (the others stay the zeros the pass
 * began with): four channels at a time, the pairs wholly inside along the row, the one at each
 * end with a column outside reading that column as the zero point (widened to 0); the
 * channels beyond the last four one value at a time. */
__attribute__((noinline)) static void hwp_dw_widen_row(const int8_t *x, hwp_dw_word *ring, int slot, int in_w, int c,
                                                       int px, int wp, int pad_l, int32_t in_zp) {
    int32_t off2 = hwp_dw_offset_pair(in_zp);
    int c4 = c & ~3, pairs = wp >> 1, step = 3 * pairs; /* step: words between two channels */
    int j_lo = (pad_l + 1) >> 1, j_hi = (pad_l + in_w) >> 1; /* the pairs wholly inside */
    int j_first = pad_l >> 1, j_last = (pad_l + in_w - 1) >> 1; /* the pairs with a column inside */
    const int8_t zp4[4] = {(int8_t)in_zp, (int8_t)in_zp, (int8_t)in_zp, (int8_t)in_zp};
    if (in_w <= 0) return;
    if (j_hi > j_lo)
        for (int ch = 0; ch < c4; ch += 4)
            hwp_dw_widen_cols(x + (2 * j_lo - pad_l) * px + ch, px, ring + hwp_dw_at(ch, j_lo, slot, pairs), step,
                              j_hi - j_lo, off2);
    for (int j = j_first; c4 > 0 && j <= j_last; j += j_last > j_first ? j_last - j_first : 1) {
        if (j >= j_lo && j < j_hi) continue; /* wholly inside: done */
        int il = 2 * j - pad_l, ir = il + 1;
        const int8_t *l = il >= 0 ? x + il * px : zp4, *r = ir < in_w ? x + ir * px : zp4;
        int ls = il >= 0 ? 4 : 0, rs = ir < in_w ? 4 : 0;
        hwp_dw_word *d = ring + hwp_dw_at(0, j, slot, pairs);
        for (int ch = 0; ch < c4; ch += 4, l += ls, r += rs, d += 4 * step) hwp_dw_widen_pair(l, r, d, step, off2);
    }
    for (int j = j_first; c4 < c && j <= j_last; j++) {
        int il = 2 * j - pad_l, ir = il + 1;
        int in_l = il >= 0, in_r = ir < in_w;
        hwp_dw_word *d = ring + hwp_dw_at(c4, j, slot, pairs);
        for (int ch = c4; ch < c; ch++, d += step) {
            int32_t lv = in_l ? x[il * px + ch] - in_zp : 0, rv = in_r ? x[ir * px + ch] - in_zp : 0;
            d[0] = (int32_t)(((uint32_t)lv & 0xffffu) | (uint32_t)rv << 16);
        }
    }
}

#include "hwprune_int8_dw_loops.h"

/* The requantization in C, as the written-out loops do it */
static inline int8_t hwp_dw_rq(int32_t acc2, const int32_t *kq, int neg, int32_t lo, int32_t hi) {
    int32_t a = kq[8];
    if (neg) a += acc2 >> 31;
    int32_t v = hwp_dw_ssat8(hwp_smmlar(acc2, kq[7], a) >> kq[9]);
    if (lo > -128 && v < lo) v = lo;
    if (hi < 127 && v > hi) v = hi;
    return (int8_t)v;
}

/* One channel's output row in C (cores without the DSP extension, narrower activation
 * ranges): ``p`` its words in the ring (pair 0, slot 0), kernel row r in slot (rot + r) % 3;
 * ``kq`` its 6 weight words, 2 bias, m, A, e; ``y`` its first output, ``c`` apart. */
static inline void hwp_dw_row(const hwp_dw_word *p, const int32_t *kq, int8_t *y, int c, int out_w, int stride,
                              int rot, int neg, int32_t lo, int32_t hi) {
    int32_t w[6]; /* the weight words slot by slot */
    for (int s = 0; s < 3; s++) {
        int r = (s + 3 - rot) % 3;
        w[2 * s] = kq[2 * r];
        w[2 * s + 1] = kq[2 * r + 1];
    }
    for (int j = 0; j < out_w; j += 2, y += 2 * c, p += 3 * stride) {
        int32_t s0 = kq[6], s1 = kq[6];
        for (int s = 0; s < 3; s++) {
            s0 = hwp_dw_smlabt(p[3 + s], w[2 * s + 1], hwp_dw_smlad(p[s], w[2 * s], s0));
            if (stride == 1) s1 = hwp_dw_smlad(p[3 + s], w[2 * s + 1], hwp_dw_smlatb(p[s], w[2 * s], s1));
            else s1 = hwp_dw_smlabt(p[6 + s], w[2 * s + 1], hwp_dw_smlad(p[3 + s], w[2 * s], s1));
        }
        y[0] = hwp_dw_rq(s0, kq, neg, lo, hi);
        if (j + 1 < out_w) y[c] = hwp_dw_rq(s1, kq, neg, lo, hi);
    }
}

/* Every channel's output row ``out``; the channels' words in the ring ``step`` apart. With
 * the DSP extension and the int8 range, the written-out loops, a pair at a time; an odd last
 * output runs as a pair whose second output lands on the next row's first (``spill_ok``: it
 * is computed after) or else on the same output, the right one last (c = 0). */
__attribute__((noinline)) static void hwp_dw_rows(const hwp_dw_word *ring, int step, const int32_t *table, int8_t *out,
                                                  int c, int out_w, int out_px, int stride, int rot, int neg,
                                                  int spill_ok, int32_t lo, int32_t hi) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
    if (lo == -128 && hi == 127) {
        /* stride 1 without the tie term: four outputs a pass where that pays for the rest's own pass */
        int quads = stride == 1 && !neg ? out_w >> 2 : 0;
        if (quads > 0 && (out_w & 3) && quads < 3) quads = 0;
        if (quads > 0) hwp_dw_run4(ring, out, table, c, step, quads, out_px, rot);
        int done = 4 * quads, rest = out_w - done;
        ring += 6 * quads;
        out += done * out_px;
        int pairs = spill_ok ? (rest + 1) >> 1 : rest >> 1;
        if (pairs > 0) hwp_dw_run(ring, out, table, c, step, pairs, out_px, stride, rot, neg);
        if (pairs * 2 < rest)
            hwp_dw_run(ring + 3 * stride * pairs, out + 2 * out_px * pairs, table, c, step, 1, 0, stride, rot, neg);
        return;
    }
#endif
    (void)spill_ok;
    for (int ch = 0; ch < c; ch++)
        hwp_dw_row(ring + ch * step, table + 10 * ch, out + ch, out_px, out_w, stride, rot, neg, lo, hi);
}

/* The ring's size in halfwords for a layer (backends/c_int8_dw.DepthwisePlan computes the same) */
#define HWP_DW3_RING(block, wp) (3 * (block) * (wp))

/* Output channel ``o`` (of ``c``) of a hwp_pwdw3_s8 convolution's pixel ``x`` (``k`` inputs) as
 * the ring holds it, one MAC at a time (the records' bias is doubled, so are the products) */
static inline int32_t hwp_pw_ring_value(const int8_t *x, int k, const int8_t *w, int o, int c, int32_t in_zp) {
    int32_t acc2, mult, shift;
    hwp_row_t row = hwp_rec_channel(w, o, k, c, 1, &acc2, &mult, &shift); /* the ring's form is folded */
    for (int q = 0; q < k; q++) acc2 += 2 * hwp_row_w(row, q, k, 0) * ((int32_t)x[q] - in_zp);
    return hwp_rq_ring(acc2, mult, shift);
}

/* Row ``x`` of a hwp_pwdw3_s8 convolution's input (``n`` pixels ``px`` bytes apart, ``k`` channels, a
 * multiple of four; records ``w`` in the ring's form) into row slot ``slot`` of the ring of ``c``
 * channels: the convolution's outputs minus their zero point (-128), at the ring's columns
 * u = ix + pad_l, so that the row is never widened: two pixels at a time through
 * hwp_conv_pairs' ring form on DSP cores, else one output at a time. */
static inline __attribute__((always_inline)) void hwp_pw_ring_row(const int8_t *x, int n, int px, int k,
                                                                  const int8_t *w, int32_t in_zp, int c,
                                                                  hwp_dw_word *ring, int slot, int pairs, int pad_l,
                                                                  int16_t *scratch) {
#if HWP_SIMD
    int32_t off2 = hwp_offset_pair(in_zp);
    HWP_OPAQUE(scratch);
    /* pixel i's halfword for channel 0 (column u = i + pad_l): the next pair of pixels is a
     * pair of columns on, 12 bytes; the second pixel of a pair is 2 bytes on, or 10 where
     * its column starts the ring's next pair */
    int8_t *yp = (int8_t *)(void *)(ring + hwp_dw_at(0, pad_l >> 1, slot, pairs)) + 2 * (pad_l & 1);
    int dq = pad_l & 1 ? 10 : 2;
    for (int i = 0; i < n; i += 2, yp += 12) {
        int j = i + 1 < n ? i + 1 : i; /* an odd last pixel runs as its own pair */
        hwp_pw_cols(x + i * px, x + j * px, k, scratch, off2, 1); /* doubled: the sums' doubling is done */
        hwp_conv_pairs(w, k, scratch, yp, j > i ? yp + dq : yp, c, HWP_RQ_FOLDED, -128, 127, 12 * pairs);
    }
#else
    (void)scratch;
    for (int i = 0; i < n; i++) {
        int u = i + pad_l;
        for (int o = 0; o < c; o++) {
            int16_t v = (int16_t)hwp_pw_ring_value(x + i * px, k, w, o, c, in_zp);
            __builtin_memcpy((int8_t *)(void *)(ring + hwp_dw_at(o, u >> 1, slot, pairs)) + 2 * (u & 1), &v, 2);
        }
    }
#endif
}

/* One pass over the rows of ``c`` channels (the ring's, channels ``in_px`` / ``out_px``
 * apart as in the layer): see hwp_dw3_s8; with records ``pw_w`` the input rows come from a 1x1
 * convolution (hwp_pwdw3_s8's arguments), ``x`` unread. */
static inline __attribute__((always_inline)) void hwp_dw3_pass(
    const int8_t *x, int8_t *y, int in_h, int in_w, int c, int in_row, int in_px, int out_h, int out_w, int out_row,
    int out_px, int stride, int pad_t, int pad_l, int wp, const int32_t *kq, int32_t in_zp, int neg, int32_t lo,
    int32_t hi, hwp_dw_word *ring, const int8_t *pw_x, int pw_row, int pw_px, int pw_k, const int8_t *pw_w,
    int32_t pw_zp, int16_t *pw_scratch) {
    int pairs = wp >> 1, next = 0; /* next: the next input row to widen */
    for (int i = 0; i < 3 * c * pairs; i++) ring[i] = 0; /* the padding columns, never written after */
    for (int oy = 0; oy < out_h; oy++) {
        int iy0 = oy * stride - pad_t;
        int rot = ((iy0 % 3) + 3) % 3;
        for (int dy = 0; dy < 3; dy++) {
            int iy = iy0 + dy, slot = (rot + dy) % 3;
            if (iy < 0 || iy >= in_h) { /* padding: zeros */
                for (int i = 0; i < c * pairs; i++) ring[3 * i + slot] = 0;
                continue;
            }
            for (; next <= iy; next++)
                if (next < iy0) continue;
                else if (pw_w) hwp_pw_ring_row(pw_x + next * pw_row, in_w, pw_px, pw_k, pw_w, pw_zp, c, ring,
                                               next % 3, pairs, pad_l, pw_scratch);
                else hwp_dw_widen_row(x + next * in_row, ring, next % 3, in_w, c, in_px, wp, pad_l, in_zp);
        }
        /* the output after a row's last is the next row's first only in the image's order */
        int spill_ok = oy + 1 < out_h && out_row == out_w * out_px;
        hwp_dw_rows(ring, 3 * pairs, kq, y + oy * out_row, c, out_w, out_px, stride, rot, neg, spill_ok, lo, hi);
    }
}

/* The layer: ``kq`` (c, 10): 6 weight words, 2 bias, multiplier, A, e (see the top); the
 * channels in passes of ``block``, each row in strips of ``strip`` outputs (their inputs
 * overlap by the kernel's reach); ``wp`` the ring's row width (even, covering every column
 * a strip reads); ``ring16`` HWP_DW3_RING(block, wp) halfwords, word-aligned. "Rows" may be
 * the image's columns (a narrow image then runs as a wide one, the kernel transposed at
 * export): an input row is ``in_row`` bytes after the previous, its pixels ``in_px`` apart;
 * likewise ``out_row``, ``out_px``. */
static inline void hwp_dw3_s8(const int8_t *x, int8_t *y, int in_h, int in_w, int c, int in_row, int in_px, int out_h,
                              int out_w, int out_row, int out_px, int stride, int pad_t, int pad_l, int wp, int block,
                              int strip, const int32_t *kq, int32_t in_zp, int neg, int32_t lo, int32_t hi,
                              int16_t *ring16) {
    hwp_dw_word *ring = (hwp_dw_word *)(void *)ring16;
    for (int c0 = 0; c0 < c; c0 += block) {
        int cb = c - c0 < block ? c - c0 : block;
        for (int s0 = 0; s0 < out_w; s0 += strip) {
            int ow = out_w - s0 < strip ? out_w - s0 : strip;
            int ix0 = s0 * stride - pad_l, ix1 = (s0 + ow - 1) * stride - pad_l + 3; /* the strip's input columns */
            int first = ix0 > 0 ? ix0 : 0, end = ix1 < in_w ? ix1 : in_w;
            hwp_dw3_pass(x + first * in_px + c0, y + s0 * out_px + c0, in_h, end > first ? end - first : 0, cb, in_row,
                         in_px, out_h, ow, out_row, out_px, stride, pad_t, first - ix0, wp, kq + 10 * c0, in_zp, neg, lo,
                         hi, ring, (const int8_t *)0, 0, 0, 0, (const int8_t *)0, 0, (int16_t *)0);
        }
    }
}


/* A 1x1 CONV_2D (stride 1, no padding, ``k`` input channels, a multiple of four; records ``w``
 * in the ring's form, hwp_rq_ring: output zero point -128, range all of int8) whose output
 * only the 3x3 depthwise layer after it reads, run as that layer: hwp_dw3_s8 with every
 * channel in one pass over whole rows, each input row computed by the convolution straight
 * into the ring when the ring needs it (hwp_pw_ring_row). The convolution's output never
 * exists as a tensor, and no row is widened. ``x``: the convolution's input, a depthwise row
 * ``x_row`` bytes after the previous, its pixels ``x_px`` apart (as in_row / in_px of
 * hwp_dw3_s8, whose other arguments these are; ``scratch`` two columns, 2 k halfwords). */
HWP_KERNEL void hwp_pwdw3_s8(const int8_t *x, int x_row, int x_px, int k, const int8_t *w, int32_t x_zp, int8_t *y,
                             int in_h, int in_w, int c, int out_h, int out_w, int out_row, int out_px, int stride,
                             int pad_t, int pad_l, int wp, const int32_t *kq, int neg, int32_t lo, int32_t hi,
                             int16_t *ring16, int16_t *scratch) {
    int ix1 = (out_w - 1) * stride - pad_l + 3; /* the columns the rows' outputs read */
    hwp_dw3_pass((const int8_t *)0, y, in_h, ix1 < in_w ? ix1 : in_w, c, 0, 0, out_h, out_w, out_row, out_px, stride,
                 pad_t, pad_l, wp, kq, -128, neg, lo, hi, (hwp_dw_word *)(void *)ring16, x, x_row, x_px, k, w, x_zp,
                 scratch);
}

#ifdef HWPRUNE_INT8_TRACE
/* The trace of a convolution hwp_pwdw3_s8 runs (it keeps no output): its output recomputed
 * one value at a time from its input (``pixels`` of ``k`` channels) and records, in the
 * tensor's order, through the trace hook */
static __attribute__((unused)) void hwp_pw_traced(int index, const int8_t *x, int pixels, int k, const int8_t *w, int32_t x_zp, int c) {
    (void)index; /* a hook may not read it */
    for (int i = 0; i < pixels; i++)
        for (int o = 0; o < c; o++) {
            int8_t b = (int8_t)(hwp_pw_ring_value(x + i * k, k, w, o, c, x_zp) - 128);
            HWPRUNE_INT8_TRACE(index, &b, 1);
        }
}
#endif

#endif
