/* The weights of a dense CONV_2D as the DSP kernels read them, and the loop over a pixel pair's
 * output channels (hwp_conv_dense_s8 and hwp_conv_k4_s8 in hwprune_int8_simd.h, which
 * includes this header): first records of four channels (hwprune_int8_quads.h), then, for
 * the out_c % 4 channels left, one record per pair of channels and an odd last channel's. A
 * pair's record (backends/c_int8_layout.conv_records) holds, for channels o and o + 1: their
 * two biases (int32), their two rows blocked by 2 (hwp_row: 2 k_all bytes, k_all a multiple
 * of four), their two multipliers and their two shift words (int32); an odd last channel's
 * record is its bias, multiplier and shift word, then its row. One pointer walks the records,
 * so the written-out loops keep no table pointer of their own: they load the biases,
 * multiply, and load the requantization constants from where the weights end. */
#ifndef HWPRUNE_INT8_PAIRS_H
#define HWPRUNE_INT8_PAIRS_H

#include <stdint.h>

#define HWP_PAIR_BYTES(k_all) (24 + 2 * (k_all))

/* int32 number ``i`` of a record from ``p`` (word-aligned) */
static inline int32_t hwp_rec32(const int8_t *p, int i) {
    int32_t v;
    __builtin_memcpy(&v, p + 4 * i, 4);
    return v;
}

#include "hwprune_int8_quads.h"

/* Output channel ``o``'s row (hwp_row_w reads it), bias, multiplier and shift word: the one
 * reader of the record layout (``w`` the first record of ``out_c`` channels'; ``folded``:
 * the layer's requantization is the folded form over all of int8, HWP_FOLDED) */
static inline hwp_row_t hwp_rec_channel(const int8_t *w, int o, int k_all, int out_c, int folded, int32_t *bias,
                                        int32_t *mult, int32_t *shift) {
    hwp_row_t row;
    int quads = HWP_CONV_QUADS(out_c, folded);
    if (o < 4 * quads) return hwp_quad_channel(w + (o >> 2) * HWP_QUAD_BYTES(k_all), o & 3, k_all, bias, mult, shift);
    w += quads * HWP_QUAD_BYTES(k_all);
    o -= 4 * quads;
    out_c -= 4 * quads;
    int pairs = out_c >> 1;
    if (o >= 2 * pairs) { /* the odd last channel */
        const int8_t *r = w + pairs * HWP_PAIR_BYTES(k_all);
        *bias = hwp_rec32(r, 0);
        *mult = hwp_rec32(r, 1);
        *shift = hwp_rec32(r, 2);
        row.base = r + 12;
        row.r = 0;
        row.rows = 1;
    } else {
        const int8_t *r = w + (o >> 1) * HWP_PAIR_BYTES(k_all), *q = r + 8 + 2 * k_all;
        row.r = o & 1;
        *bias = hwp_rec32(r, row.r);
        *mult = hwp_rec32(q, row.r);
        *shift = hwp_rec32(q, 2 + row.r);
        row.base = r + 8;
        row.rows = 2;
    }
    return row;
}

#if HWP_SIMD
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
/* hwp_rq's folded form on a pair's sum: ``m`` the multiplier's register, ``a`` A's, ``s`` the
 * shift word's (ASR by a register reads its low byte, e); TIE adds -[acc < 0] to A first */
#define HWP_PAIRS_RQ(acc, m, a, s, tmp)                                                                         \
    "lsl " acc ", " acc ", #1\n\t"                                                                      \
    "smmlar " acc ", " acc ", " m ", " a "\n\t"                                                         \
    "asr " acc ", " acc ", " s "\n\t"                                                                   \
    "ssat " acc ", #8, " acc "\n\t"
/* the ring's form (hwp_conv_pairs' ring_cs): the sum already doubled (biases and columns
 * doubled), A without the zero point, the result clamped to 0..255, an output of zero point
 * -128 minus its zero point */
#define HWP_PAIRS_RQ_RING(acc, m, a, s, tmp)                                                                    \
    "smmlar " acc ", " acc ", " m ", " a "\n\t"                                                         \
    "asr " acc ", " acc ", " s "\n\t"                                                                   \
    "usat " acc ", #8, " acc "\n\t"
#define HWP_PAIRS_RQ_TIE(acc, m, a, s, tmp)                                                                     \
    "lsl " acc ", " acc ", #1\n\t"                                                                      \
    "add " tmp ", " a ", " acc ", asr #31\n\t"                                                              \
    "smmlar " acc ", " acc ", " m ", " tmp "\n\t"                                                        \
    "asr " acc ", " acc ", " s "\n\t"                                                                   \
    "ssat " acc ", #8, " acc "\n\t"
/* The first multiply group of a pair: the second column's sums start from the biases the
 * first column's hold (SMLAD's accumulator operand copies them, no MOV) */
#define HWP_PAIRS_FIRST_GROUP HWP_MM2X2_GROUP_ONTO("a00", "a10")
/* The one pair of channels left after the quads (hwprune_int8_quads.h), for two pixels,
 * written out: ``t`` enters pointing at {yp, yq} (and, past 64 groups, {passes of 32 groups,
 * the columns' bytes}), which PRO puts on the stack and EPI takes off. The biases (LDRD; the
 * first group starts both columns' sums from them), the other multiply groups (BODY, which
 * leaves the columns' pointer back at their start), the constants (one LDM), four
 * requantizations, the outputs' addresses (LDRD) and four stores, channel o + 1 ``cs`` bytes
 * after channel o: int8 outputs (ST strb) or ring values (strh). The group counts are
 * assembler immediates (.rept), constants only in an optimized build of the inlined kernel;
 * an unoptimized build runs the loop in C. */
#define HWP_PAIRS_ASM(PRO, BODY, EPI, RQ, ST)                                                                 \
    __asm__ volatile(PRO "ldrd %[a00], %[a10], [%[w]], #8\n\t" HWP_PAIRS_FIRST_GROUP BODY                     \
                     "ldmia %[w]!, {r8, r9, r10, r11}\n\t"                                                    \
                     "asr r12, r10, #8\n\t"                                                                   \
                     "asr lr, r11, #8\n\t" RQ("%[a00]", "r8", "r12", "r10", "%[t]")                           \
                         RQ("%[a01]", "r8", "r12", "r10", "%[t]") RQ("%[a10]", "r9", "lr", "r11", "%[t]")      \
                             RQ("%[a11]", "r9", "lr", "r11", "%[t]")                                          \
                     "ldrd r12, lr, [sp]\n\t"                                                                 \
                     ST " %[a00], [r12]\n\t"                                                                  \
                     ST " %[a10], [r12, #%c[cs]]\n\t"                                                         \
                     ST " %[a01], [lr]\n\t"                                                                   \
                     ST " %[a11], [lr, #%c[cs]]\n\t" EPI                                                      \
                     : [a00] "=&r"(s00), [a01] "=&r"(s01), [a10] "=&r"(s10), [a11] "=&r"(s11), [w] "+r"(w),     \
                       [col] "+r"(col), [t] "+&r"(tmp)                                                        \
                     : [g] "i"(groups <= 64 ? groups : 1), [cb] "i"(groups <= 64 ? 16 * groups : 0),           \
                       [rest] "i"((groups - 1) & 31), [cs] "i"(cs)                                            \
                     : "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory")
/* up to 64 groups straight (the first, then the others), the columns' pointer then stepped back
 * by their bytes */
#define HWP_PAIRS_STRAIGHT(RQ, ST)                                                                            \
    HWP_PAIRS_ASM("ldmia %[t], {r8, r9}\n\tpush {r8, r9}\n\t",                                                 \
                  ".rept %c[g] - 1\n\t" HWP_MM2X2_GROUP ".endr\n\t"                                           \
                  "subw %[col], %[col], #%c[cb]\n\t",                                                         \
                  "add sp, sp, #8\n\t", RQ, ST)
/* more: after the first group, passes of 32 groups (their count at [sp, #8], a working copy
 * pushed), then the last (groups - 1) % 32, the columns' pointer stepped back by the bytes at
 * [sp, #12] */
#define HWP_PAIRS_LOOPED(RQ, ST)                                                                              \
    HWP_PAIRS_ASM("ldmia %[t], {r8, r9, r10, r11}\n\tpush {r8, r9, r10, r11}\n\t",                             \
                  "ldr %[t], [sp, #8]\n\t"                                                                    \
                  "str %[t], [sp, #-8]!\n\t"                                                                  \
                  "3:\n\t"                                                                                    \
                  ".rept 32\n\t" HWP_MM2X2_GROUP ".endr\n\t"                                                  \
                  "ldr %[t], [sp]\n\t"                                                                        \
                  "subs %[t], %[t], #1\n\t"                                                                   \
                  "str %[t], [sp]\n\t"                                                                        \
                  "bne 3b\n\t"                                                                                \
                  "add sp, sp, #8\n\t"                                                                        \
                  ".rept %c[rest]\n\t" HWP_MM2X2_GROUP ".endr\n\t"                                            \
                  "ldr %[t], [sp, #12]\n\t"                                                                   \
                  "sub %[col], %[col], %[t]\n\t",                                                             \
                  "add sp, sp, #16\n\t", RQ, ST)
#endif

/* One output of hwp_conv_pairs' C loop at y: int8, or with ``ring`` the ring's int16 value */
static inline void hwp_pairs_put(int8_t *y, int32_t acc, int32_t mult, int32_t shift, int32_t out_zp, int32_t lo,
                                 int32_t hi, int ring) {
    if (ring) {
        int16_t v = (int16_t)hwp_rq_ring(acc, mult, shift);
        __builtin_memcpy(y, &v, 2);
    } else {
        *y = hwp_rq(acc, mult, shift, out_zp, lo, hi);
    }
}

/* hwp_conv_pairs' quads in C (an unoptimized build, the portable twin, a ring too wide for
 * the written-out loop's offsets): per quad the eight sums by the same steps as that loop
 * (hwp_mm4x2), then each output through hwp_rq */
static inline void hwp_quads_c(const int8_t *w, int k_all, const int16_t *col, int8_t *yp, int8_t *yq, int quads,
                               int cs, int32_t out_zp, int32_t lo, int32_t hi, int ring) {
    for (int q = 0; q < quads; q++, w += HWP_QUAD_BYTES(k_all), yp += 4 * cs, yq += 4 * cs) {
        int32_t s[8], m[4], e[4];
        const int8_t *rows = w;
        for (int j = 0; j < 4; j++) {
            rows = hwp_quad_channel(w, j, k_all, &s[2 * j], &m[j], &e[j]).base;
            s[2 * j + 1] = s[2 * j];
        }
        hwp_mm4x2(rows, k_all, col, s);
        for (int j = 0; j < 4; j++) {
            hwp_pairs_put(yp + j * cs, s[2 * j], m[j], e[j], out_zp, lo, hi, ring);
            hwp_pairs_put(yq + j * cs, s[2 * j + 1], m[j], e[j], out_zp, lo, hi, ring);
        }
    }
}

/* Every output channel of two pixels from their columns ``col`` (hwp_im2col's layout, k_all
 * a multiple of four): channel o of pixel p to yp[o], of pixel q to yq[o]; ``w`` the records.
 * ``ring_cs`` > 0: the outputs go to a depthwise layer's ring instead (hwp_pw_ring_row), as
 * int16 y - zp (zero point -128, the folded form without the zero point in A, hwp_rq_ring;
 * the records' biases and the columns doubled), channel o + 1's ``ring_cs`` bytes after
 * channel o's. */
static inline __attribute__((always_inline)) void hwp_conv_pairs(const int8_t *w, int k_all, const int16_t *col,
                                                                 int8_t *yp, int8_t *yq, int out_c, int32_t out_zp,
                                                                 int32_t lo, int32_t hi, int ring_cs) {
    int folded = HWP_FOLDED(out_zp, lo, hi), quads = HWP_CONV_QUADS(out_c, folded);
    int cs = ring_cs > 0 ? ring_cs : 1, done = 0;
    if (quads > 0) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
        if (4 * cs <= 4095 && k_all <= 4 * 255) {
            /* two quads a pass for short filters (their code is short): the addresses started
             * 4 * cs bytes early for an odd count */
            int groups = k_all >> 2, two = groups <= 8 && quads > 1 && 8 * cs <= 4095;
            int early = two && (quads & 1) ? 4 * cs : 0, passes = two ? (quads + 1) >> 1 : quads;
            int32_t st[3] = {(int32_t)(uintptr_t)yp - early, (int32_t)(uintptr_t)yq - early,
                             (int32_t)(uintptr_t)yp - early + (two ? 8 : 4) * cs * passes};
            register const int8_t *rw __asm__("r0") = w;
            register const int16_t *rc __asm__("r1") = col;
            register int32_t *rs __asm__("r2") = st;
            if (ring_cs > 0) HWP_QUADS_ASM(HWP_PAIRS_RQ_RING, "strh");
            else if (out_zp == HWP_RQ_FOLDED_TIE) HWP_QUADS_ASM(HWP_PAIRS_RQ_TIE, "strb");
            else HWP_QUADS_ASM(HWP_PAIRS_RQ, "strb");
            done = 1;
        }
#endif
        if (!done) hwp_quads_c(w, k_all, col, yp, yq, quads, cs, out_zp, lo, hi, ring_cs > 0);
        w += quads * HWP_QUAD_BYTES(k_all);
        yp += 4 * cs * quads;
        yq += 4 * cs * quads;
        out_c -= 4 * quads;
        done = 0;
    }
    int pairs = out_c >> 1; /* after the quads, at most one */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
    int groups = k_all >> 2;
    if (pairs == 1 && groups >= 1 && folded && cs <= 4095) {
        int32_t s00, s01, s10, s11, *tmp, y0 = (int32_t)(uintptr_t)yp, q0 = (int32_t)(uintptr_t)yq;
        if (groups <= 64) {
            int32_t st[2] = {y0, q0};
            tmp = st;
            if (ring_cs > 0) HWP_PAIRS_STRAIGHT(HWP_PAIRS_RQ_RING, "strh");
            else if (out_zp == HWP_RQ_FOLDED_TIE) HWP_PAIRS_STRAIGHT(HWP_PAIRS_RQ_TIE, "strb");
            else HWP_PAIRS_STRAIGHT(HWP_PAIRS_RQ, "strb");
        } else {
            int32_t st[4] = {y0, q0, (groups - 1) >> 5, 16 * groups};
            tmp = st;
            if (ring_cs > 0) HWP_PAIRS_LOOPED(HWP_PAIRS_RQ_RING, "strh");
            else if (out_zp == HWP_RQ_FOLDED_TIE) HWP_PAIRS_LOOPED(HWP_PAIRS_RQ_TIE, "strb");
            else HWP_PAIRS_LOOPED(HWP_PAIRS_RQ, "strb");
        }
        (void)s00, (void)s01, (void)s10, (void)s11, (void)tmp;
        yp += 2 * cs;
        yq += 2 * cs;
        done = 1;
    }
#endif
    int ring = ring_cs > 0;
    if (!done) {
        for (int n = pairs; n > 0; n--, w += HWP_PAIR_BYTES(k_all), yp += 2 * cs, yq += 2 * cs) {
            int32_t b0, b1, m0, m1, e0, e1;
            hwp_row_t rows = hwp_rec_channel(w, 0, k_all, 2, 0, &b0, &m0, &e0);
            hwp_rec_channel(w, 1, k_all, 2, 0, &b1, &m1, &e1);
            int32_t s[4] = {b0, b0, b1, b1};
            hwp_mm2x2(rows.base, k_all, col, s);
            hwp_pairs_put(yp, s[0], m0, e0, out_zp, lo, hi, ring);
            hwp_pairs_put(yq, s[1], m0, e0, out_zp, lo, hi, ring);
            hwp_pairs_put(yp + cs, s[2], m1, e1, out_zp, lo, hi, ring);
            hwp_pairs_put(yq + cs, s[3], m1, e1, out_zp, lo, hi, ring);
        }
    }
    if (out_c & 1) { /* the odd last channel: its plain row against both columns */
        int32_t s0, m, e;
        const int8_t *row = hwp_rec_channel(w, 0, k_all, 1, 0, &s0, &m, &e).base;
        int32_t s1 = s0;
        for (int k = 0; k < k_all; k++) {
            s0 += (int32_t)row[k] * col[hwp_col_index(k, k_all, 0, 2, 0)];
            s1 += (int32_t)row[k] * col[hwp_col_index(k, k_all, 0, 2, 1)];
        }
        hwp_pairs_put(yp, s0, m, e, out_zp, lo, hi, ring);
        hwp_pairs_put(yq, s1, m, e, out_zp, lo, hi, ring);
    }
}
#endif

#endif
