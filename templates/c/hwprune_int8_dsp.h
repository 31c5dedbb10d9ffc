/* The building blocks of the int8 DSP kernels (hwprune_int8_simd.h, which includes this
 * header) on cores with the DSP extension (Cortex-M4, M7, M33): SXTB16/SXTAB16 widen four
 * int8 values into two int16 pairs, SMLAD adds two 16x16 products in one instruction. Every
 * kernel built on them computes what its scalar twin in hwprune_int8.h computes, bit for
 * bit: products of int8 weights and (input - zero point) summed in an int32 (wrapping, in
 * any order, since int32 addition is associative mod 2^32), then the same requantization
 * (hwp_rq below).
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
#ifndef HWPRUNE_INT8_DSP_H
#define HWPRUNE_INT8_DSP_H

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
#define hwp_ssat8(a) ((int32_t)__ssat((a), 8))
#define hwp_sadd16(a, b) ((int32_t)__sadd16((a), (b)))
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
static inline int32_t hwp_ssat8(int32_t a) { return a < -128 ? -128 : (a > 127 ? 127 : a); }
static inline int32_t hwp_sadd16(int32_t a, int32_t b) {
    return (int32_t)((((uint32_t)a + (uint32_t)b) & 0xffffu) | (((uint32_t)a >> 16) + ((uint32_t)b >> 16)) << 16);
}
#else
#define HWP_SIMD 0
#endif

/* hwp_mbqm + output zero point + clamp, without branches, for multipliers other than
 * INT32_MIN (TFLite's lie in [2^30, 2^31); backends/c_int8 refuses others): the saturating
 * case of SaturatingRoundingDoublingHighMul cannot occur, and RoundingDivideByPOT by
 * e = max(-shift, 0) adds one when the remainder exceeds (mask >> 1) + (x < 0), which
 * for e = 0 (mask 0) never holds. */
/* out_zp values that select hwp_rq's folded form (backends/c_int8_rq.py, which proves it exact
 * for the layer at export): shift holds A << 8 | e, and the result is SMMLAR(2 acc, m, A) >> e,
 * A = 2^(e-1) + out_zp 2^e, minus [acc < 0] for HWP_RQ_FOLDED_TIE. At an inlined call out_zp
 * is a constant, so only one form is compiled. */
#define HWP_RQ_FOLDED 256
#define HWP_RQ_FOLDED_TIE 257

/* SMMLAR: acc + (a b + 2^31) >> 32, the high word rounded; in C off the DSP cores */
static inline int32_t hwp_smmlar(int32_t a, int32_t b, int32_t acc) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)a * b) + 0x80000000u;
    return (int32_t)(uint32_t)(sum >> 32);
#endif
}

/* The folded form with A = 2^(e-1) (no zero point; shift holds A << 8 | e), clamped to
 * 0..255: y - zp of an output whose zero point is -128 and whose range is all of int8 (a
 * depthwise layer's ring value, written by the 1x1 convolution before it: hwp_pw_ring_row).
 * ``acc2`` is twice the sum already (that convolution's biases and columns are doubled). */
static inline int32_t hwp_rq_ring(int32_t acc2, int32_t multiplier, int32_t shift) {
    int32_t h = hwp_smmlar(acc2, multiplier, shift >> 8) >> (shift & 0xff);
    return h < 0 ? 0 : (h > 255 ? 255 : h);
}

static inline int8_t hwp_rq(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp, int32_t lo, int32_t hi) {
    if (out_zp >= HWP_RQ_FOLDED) {
        int32_t a = shift >> 8;
        if (out_zp == HWP_RQ_FOLDED_TIE) a += acc >> 31;
        int32_t h = hwp_smmlar((int32_t)((uint32_t)acc << 1), multiplier, a);
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
        /* ASR by a register reads its low byte: e itself, without masking the word */
        __asm__("asr %0, %0, %1" : "+r"(h) : "r"(shift));
        int32_t v = hwp_ssat8(h);
        if (lo > -128 && v < lo) v = lo;
        if (hi < 127 && v > hi) v = hi;
        return (int8_t)v;
#else
        return hwp_clamp(h >> (shift & 0xff), lo, hi);
#endif
    }
#if HWP_SIMD
    /* DSP cores, shift in [-31, -2] (e = -shift >= 2; convolutions' usual case) and multiplier
     * >= 0: both roundings in one 64-bit multiply-accumulate (SMLAL) and one shift. With
     * x = (acc * m + 2^30) >> 31, RoundingDivideByPOT is floor((x + 2^(e-1) - [x < 0]) / 2^e);
     * nested floors merge, so it is floor((acc * m + 2^30 + 2^(30+e) - [x < 0] 2^31) / 2^(31+e)).
     * [acc < 0] replaces [x < 0]: they differ only when -2^30 <= acc * m < 0, where x = 0 and
     * both sums lie in [0, 2^(31+e)), giving 0. The addend's high word is 2^(e-2) - [acc < 0],
     * its low word 2^30 + [acc < 0] 2^31; the sum's low word only carries, so the result is
     * its high word shifted right by e - 1 (no 64-bit shift). */
    if (__builtin_expect(shift <= -2, 1)) {
        int32_t neg = acc >> 31;
        /* 2^(e-2) as 2^30 >> (shift + 32), shift + 32 = shift & 31 for these shifts: the
         * constant 2^30 is the low word's anyway, so one AND and one shift */
        uint32_t round = 0x40000000u >> ((uint32_t)shift & 31u);
        uint64_t add = (uint64_t)((uint32_t)neg + round) << 32 | (0x40000000u | (uint32_t)neg << 31);
        int32_t h = (int32_t)((uint64_t)((int64_t)acc * multiplier + (int64_t)add) >> 32);
        /* SSAT clamps to int8; a fused activation's narrower bound (lo > -128 or hi < 127,
         * constants at the inlined call) costs a compare more each */
        int32_t v = hwp_ssat8((h >> (-shift - 1)) + out_zp);
        if (lo > -128 && v < lo) v = lo;
        if (hi < 127 && v > hi) v = hi;
        return (int8_t)v;
    }
#endif
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

/* The scratch's address hidden from the optimizer: at an inlined call it is a constant (an
 * offset in the arena), and clang then builds every store's address from an immediate (two
 * instructions a store) instead of offsetting one register */
#define HWP_OPAQUE(ptr) __asm__("" : "+r"(ptr))

/* (-zero_point) in both halfwords: SXTAB16 widens and subtracts the zero point at once */
static inline int32_t hwp_offset_pair(int32_t in_zp) {
    return (int32_t)(((uint32_t)(-in_zp) & 0xffffu) * 0x10001u);
}

/* four int8 inputs in a word, minus the zero point, as (x0, x2) and (x1, x3); hwp_widen4 loads
 * the word from x */
static inline void hwp_widen_word(uint32_t v, int16_t *dst, int32_t off2) {
    hwp_st32(dst, hwp_sxtab16(off2, (int32_t)v));
    hwp_st32(dst + 2, hwp_sxtab16(off2, HWP_ROR8((int32_t)v)));
}

static inline void hwp_widen4(const int8_t *x, int16_t *dst, int32_t off2) {
    hwp_widen_word((uint32_t)hwp_ld32(x), dst, off2);
}

/* hwp_widen4 doubled: 2 (x - zp), four int8 inputs from x (a 1x1 convolution's columns for a
 * depthwise ring, whose sums are kept doubled: hwp_rq_ring) */
static inline void hwp_widen4_twice(const int8_t *x, int16_t *dst, int32_t off2) {
    int32_t v = hwp_ld32(x), a = hwp_sxtab16(off2, v), b = hwp_sxtab16(off2, HWP_ROR8(v));
    hwp_st32(dst, hwp_sadd16(a, a));
    hwp_st32(dst + 2, hwp_sadd16(b, b));
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
/* The multiply blocks' loops in assembly, so that no accumulator spills and every load is
 * a load-multiple (1 + N cycles on the M4 against 2 for a lone LDR). 13 registers: the
 * compiler's 7 operands (accumulators, pointers, one temporary) and 6 fixed ones (r8-r12,
 * lr), none of them r7, the frame pointer of builds that keep one. A loop's trip count
 * lives on the stack (pushed from the temporary, which enters holding it, and popped at the
 * end): a register fewer for 3 cycles more per pass over many groups. */
#define HWP_X2(s) s s
#define HWP_X4(s) HWP_X2(HWP_X2(s))
#define HWP_X8(s) HWP_X2(HWP_X4(s))
/* A loop over ``body``, the count in a stack slot of its own (8 bytes keep sp aligned),
 * decremented through the temporary. The blocks run a single pass as straight code instead
 * (the slot, the count's test and its branch: 7 cycles less per call); where k_all is a
 * constant (the kernels are inlined) only one of the two is compiled. */
#define HWP_MM_LOOP(body)                                                                                     \
    "str %[t], [sp, #-8]!\n\t"                                                                                \
    "1:\n\t" body                                                                                            \
    "ldr %[t], [sp]\n\t"                                                                                      \
    "subs %[t], %[t], #1\n\t"                                                                                 \
    "str %[t], [sp]\n\t"                                                                                      \
    "bne 1b\n\t"                                                                                              \
    "add sp, sp, #8\n\t"
/* One group of hwp_mm2x2 (four inputs, two rows, two columns): r8/r9 the first column's
 * (x0, x2)/(x1, x3), r10/r11 the second's; r12 and lr the two rows' weight words. The second
 * column's sums take their first products onto ``b01`` and ``b11``: themselves, or in a
 * pair's first group (hwprune_int8_pairs.h) the first column's sums, which hold the biases
 * then, so that no MOV copies them. */
#define HWP_MM2X2_GROUP_ONTO(b01, b11)                                                                        \
    "ldmia %[col]!, {r8, r9, r10, r11}\n\t"                                                                   \
    "ldmia %[w]!, {r12, lr}\n\t"                                                                              \
    "sxtb16 %[t], r12\n\t"                                                                                    \
    "sxtb16 r12, r12, ror #8\n\t"                                                                             \
    "smlad %[a01], %[t], r10, %[" b01 "]\n\t"                                                                 \
    "smlad %[a00], %[t], r8, %[a00]\n\t"                                                                      \
    "smlad %[a00], r12, r9, %[a00]\n\t"                                                                       \
    "smlad %[a01], r12, r11, %[a01]\n\t"                                                                      \
    "sxtb16 %[t], lr\n\t"                                                                                     \
    "sxtb16 lr, lr, ror #8\n\t"                                                                               \
    "smlad %[a11], %[t], r10, %[" b11 "]\n\t"                                                                 \
    "smlad %[a10], %[t], r8, %[a10]\n\t"                                                                      \
    "smlad %[a10], lr, r9, %[a10]\n\t"                                                                        \
    "smlad %[a11], lr, r11, %[a11]\n\t"
#define HWP_MM2X2_GROUP HWP_MM2X2_GROUP_ONTO("a01", "a11")
/* One group of hwp_mm4x1 (four inputs, four rows, one column): r12/lr the column's
 * (x0, x2)/(x1, x3), r8-r11 the four rows' weight words in one load. */
#define HWP_MM4X1_ROW(a, reg)                                                                                 \
    "sxtb16 %[t], " reg "\n\t"                                                                                \
    "sxtb16 " reg ", " reg ", ror #8\n\t"                                                                     \
    "smlad %[" a "], %[t], r12, %[" a "]\n\t"                                                                 \
    "smlad %[" a "], " reg ", lr, %[" a "]\n\t"
#define HWP_MM4X1_GROUP                                                                                       \
    "ldmia %[col]!, {r12, lr}\n\t"                                                                            \
    "ldmia %[w]!, {r8, r9, r10, r11}\n\t"                                                                     \
    HWP_MM4X1_ROW("a0", "r8") HWP_MM4X1_ROW("a1", "r9") HWP_MM4X1_ROW("a2", "r10") HWP_MM4X1_ROW("a3", "r11")
/* hwp_mm4x1_s8's group: the column's four int8 inputs in one word, widened in r12/lr */
#define HWP_MM4X1_S8_GROUP                                                                                    \
    "ldr r12, [%[col]], #4\n\t"                                                                               \
    "sxtb16 lr, r12, ror #8\n\t"                                                                              \
    "sxtb16 r12, r12\n\t"                                                                                     \
    "ldmia %[w]!, {r8, r9, r10, r11}\n\t"                                                                     \
    HWP_MM4X1_ROW("a0", "r8") HWP_MM4X1_ROW("a1", "r9") HWP_MM4X1_ROW("a2", "r10") HWP_MM4X1_ROW("a3", "r11")
#define HWP_MM2X2_ASM(body)                                                                                   \
    __asm__ volatile(body                                                                                     \
                     : [a00] "+r"(s00), [a01] "+r"(s01), [a10] "+r"(s10), [a11] "+r"(s11), [w] "+r"(w),          \
                       [col] "+r"(col), [t] "+&r"(tmp)                                         \
                     :                                                                                        \
                     : "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory")
#define HWP_MM4X1_ASM(body)                                                                                   \
    __asm__ volatile(body                                                                                     \
                     : [a0] "+r"(s0), [a1] "+r"(s1), [a2] "+r"(s2), [a3] "+r"(s3), [w] "+r"(w), [col] "+r"(col), \
                       [t] "+&r"(tmp)                                                         \
                     :                                                                                        \
                     : "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory")
#endif

/* Two weight rows times two columns, the rows interleaved (hwp_row, R = 2):
 * s[0] += w0.c0, s[1] += w0.c1, s[2] += w1.c0, s[3] += w1.c1; four SMLADs per word. */
static inline void hwp_mm2x2(const int8_t *w, int k_all, const int16_t *col, int32_t *s) {
    int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
    int groups = k_all >> 2;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    /* Per group: 5 + 3 cycles of loads, 4 SXTB16 and 8 SMLAD for 16 MACs; sixteen groups a
     * pass, then the last groups % 16 in straight blocks (only those a constant k_all needs). */
    int32_t tmp = groups >> 4; /* the loop's passes, then a temporary */
    if (tmp == 1) HWP_MM2X2_ASM(HWP_X8(HWP_X2(HWP_MM2X2_GROUP)));
    else if (tmp > 1) HWP_MM2X2_ASM(HWP_MM_LOOP(HWP_X8(HWP_X2(HWP_MM2X2_GROUP))));
    if (groups & 8) HWP_MM2X2_ASM(HWP_X8(HWP_MM2X2_GROUP));
    if (groups & 4) HWP_MM2X2_ASM(HWP_X4(HWP_MM2X2_GROUP));
    if (groups & 2) HWP_MM2X2_ASM(HWP_X2(HWP_MM2X2_GROUP));
    if (groups & 1) HWP_MM2X2_ASM(HWP_MM2X2_GROUP);
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
    /* Per group: 3 + 5 cycles of loads, 8 SXTB16 and 8 SMLAD for 16 MACs; 32 groups a pass
     * (the pass's 7 cycles of test on 512 MACs), then the last groups % 32 in straight blocks
     * (only those a constant k_all needs, where the kernel is inlined). */
    int32_t tmp = groups >> 5; /* the loop's passes, then a temporary */
    if (tmp == 1) HWP_MM4X1_ASM(HWP_X8(HWP_X4(HWP_MM4X1_GROUP)));
    else if (tmp > 1) HWP_MM4X1_ASM(HWP_MM_LOOP(HWP_X8(HWP_X4(HWP_MM4X1_GROUP))));
    if (groups & 16) HWP_MM4X1_ASM(HWP_X8(HWP_X2(HWP_MM4X1_GROUP)));
    if (groups & 8) HWP_MM4X1_ASM(HWP_X8(HWP_MM4X1_GROUP));
    if (groups & 4) HWP_MM4X1_ASM(HWP_X4(HWP_MM4X1_GROUP));
    if (groups & 2) HWP_MM4X1_ASM(HWP_X2(HWP_MM4X1_GROUP));
    if (groups & 1) HWP_MM4X1_ASM(HWP_MM4X1_GROUP);
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
/* hwp_mm4x1 with the column read as int8 (x, zero point 0) and widened as it goes: no
 * scratch, one cycle more per group (LDR and two SXTB16 against an LDM of two words). */
static inline void hwp_mm4x1_s8(const int8_t *w, int k_all, const int8_t *x, int32_t *s) {
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    int groups = k_all >> 2;
    const int8_t *col = x;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t tmp = groups >> 5; /* the loop's passes, then a temporary */
    if (tmp == 1) HWP_MM4X1_ASM(HWP_X8(HWP_X4(HWP_MM4X1_S8_GROUP)));
    else if (tmp > 1) HWP_MM4X1_ASM(HWP_MM_LOOP(HWP_X8(HWP_X4(HWP_MM4X1_S8_GROUP))));
    if (groups & 16) HWP_MM4X1_ASM(HWP_X8(HWP_X2(HWP_MM4X1_S8_GROUP)));
    if (groups & 8) HWP_MM4X1_ASM(HWP_X8(HWP_MM4X1_S8_GROUP));
    if (groups & 4) HWP_MM4X1_ASM(HWP_X4(HWP_MM4X1_S8_GROUP));
    if (groups & 2) HWP_MM4X1_ASM(HWP_X2(HWP_MM4X1_S8_GROUP));
    if (groups & 1) HWP_MM4X1_ASM(HWP_MM4X1_S8_GROUP);
#else
    for (; groups > 0; groups--) {
        int32_t v = hwp_ld32(col), ca = hwp_sxtb16(v), cb = hwp_sxtb16(HWP_ROR8(v)), u = hwp_ld32(w);
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

#endif
