/* The written-out loops of hwp_dw3_s8 (hwprune_int8_dw.h, which includes this header and
 * explains the layout and the arithmetic) on cores with the DSP extension: every channel's
 * output row, two outputs a pass (five weight registers, two sums) or, at stride 1 without the
 * tie term, four (three weight registers, four sums), in inline assembly so that nothing spills. */
#ifndef HWPRUNE_INT8_DW_LOOPS_H
#define HWPRUNE_INT8_DW_LOOPS_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
/* The written-out loop over a channel's output pairs. Kernel row r lives in ring slot
 * (rot + r) % 3; the slots are read in order 0, 1, 2 (the first load moves p on), so each
 * rotation has its own order of weight registers. 13 operands: weights k0a..k2a in
 * registers, k2b loaded (kq holds 6 weight words, 2 bias, m, A, e). */
/* A kernel row's MACs: its ``a`` weight word in a register; its ``b`` word in a register
 * (REG: both data words load back to back into t0, t1) or loaded into t0 (MEM, k2b). */
#define HWP_DW_REG_LOAD(x, y) "ldr %[t0], [%[p], #" x "]\n\tldr %[t1], [%[p], #" y "]\n\t"
/* stride 1, the slot's words at [p + a] (pair j) and [p + b] (pair j + 1) */
#define HWP_DW_S1_REG(a, b, wa, wb)                                                                           \
    HWP_DW_REG_LOAD(a, b)                                                                                     \
    "smlad %[s0], %[t0], %[" wa "], %[s0]\n\t"                                                                \
    "smlatb %[s1], %[t0], %[" wa "], %[s1]\n\t"                                                               \
    "smlabt %[s0], %[t1], %[" wb "], %[s0]\n\t"                                                               \
    "smlad %[s1], %[t1], %[" wb "], %[s1]\n\t"
#define HWP_DW_S1_MEM(a, b, wa, wb)                                                                           \
    "ldr %[t0], [%[kq], #20]\n\t"                                                                             \
    "ldr %[t1], [%[p], #" a "]\n\t"                                                                           \
    "smlad %[s0], %[t1], %[" wa "], %[s0]\n\t"                                                                \
    "smlatb %[s1], %[t1], %[" wa "], %[s1]\n\t"                                                               \
    "ldr %[t1], [%[p], #" b "]\n\t"                                                                           \
    "smlabt %[s0], %[t1], %[t0], %[s0]\n\t"                                                                   \
    "smlad %[s1], %[t1], %[t0], %[s1]\n\t"
/* stride 2, the slot's words at [p + a], [p + b], [p + d] */
#define HWP_DW_S2_REG(a, b, d, wa, wb)                                                                        \
    HWP_DW_REG_LOAD(a, b)                                                                                     \
    "smlad %[s0], %[t0], %[" wa "], %[s0]\n\t"                                                                \
    "smlad %[s1], %[t1], %[" wa "], %[s1]\n\t"                                                                \
    "ldr %[t0], [%[p], #" d "]\n\t"                                                                           \
    "smlabt %[s0], %[t1], %[" wb "], %[s0]\n\t"                                                               \
    "smlabt %[s1], %[t0], %[" wb "], %[s1]\n\t"
#define HWP_DW_S2_MEM(a, b, d, wa, wb)                                                                        \
    "ldr %[t0], [%[kq], #20]\n\t"                                                                             \
    "ldr %[t1], [%[p], #" a "]\n\t"                                                                           \
    "smlad %[s0], %[t1], %[" wa "], %[s0]\n\t"                                                                \
    "ldr %[t1], [%[p], #" b "]\n\t"                                                                           \
    "smlad %[s1], %[t1], %[" wa "], %[s1]\n\t"                                                                \
    "smlabt %[s0], %[t1], %[t0], %[s0]\n\t"                                                                   \
    "ldr %[t1], [%[p], #" d "]\n\t"                                                                           \
    "smlabt %[s1], %[t1], %[t0], %[s1]\n\t"
/* The first slot: both sums start from the bias (in s0 for stride 1, s1 for stride 2) and p
 * moves on by a pair (post-index), so the other slots' offsets are relative to the next pair;
 * the first row's MACs are then those of a later slot's row on a moved p: offset - 12 (or 24). */
#define HWP_DW_S1_FIRST_REG(wa, wb)                                                                           \
    "ldr %[s0], [%[kq], #24]\n\t"                                                                             \
    "ldr %[t0], [%[p]], #12\n\t"                                                                              \
    "ldr %[t1], [%[p]]\n\t"                                                                                   \
    "smlatb %[s1], %[t0], %[" wa "], %[s0]\n\t"                                                               \
    "smlad %[s0], %[t0], %[" wa "], %[s0]\n\t"                                                                \
    "smlabt %[s0], %[t1], %[" wb "], %[s0]\n\t"                                                               \
    "smlad %[s1], %[t1], %[" wb "], %[s1]\n\t"
#define HWP_DW_S1_FIRST_MEM(wa, wb)                                                                           \
    "ldr %[t0], [%[kq], #20]\n\t"                                                                             \
    "ldr %[s0], [%[kq], #24]\n\t"                                                                             \
    "ldr %[t1], [%[p]], #12\n\t"                                                                              \
    "smlatb %[s1], %[t1], %[" wa "], %[s0]\n\t"                                                               \
    "smlad %[s0], %[t1], %[" wa "], %[s0]\n\t"                                                                \
    "ldr %[t1], [%[p]]\n\t"                                                                                   \
    "smlabt %[s0], %[t1], %[t0], %[s0]\n\t"                                                                   \
    "smlad %[s1], %[t1], %[t0], %[s1]\n\t"
#define HWP_DW_S2_FIRST_REG(wa, wb)                                                                           \
    "ldr %[s1], [%[kq], #24]\n\t"                                                                             \
    "ldr %[t0], [%[p]], #24\n\t"                                                                              \
    "ldr %[t1], [%[p], #-12]\n\t"                                                                             \
    "smlad %[s0], %[t0], %[" wa "], %[s1]\n\t"                                                                \
    "smlad %[s1], %[t1], %[" wa "], %[s1]\n\t"                                                                \
    "ldr %[t0], [%[p]]\n\t"                                                                                   \
    "smlabt %[s0], %[t1], %[" wb "], %[s0]\n\t"                                                               \
    "smlabt %[s1], %[t0], %[" wb "], %[s1]\n\t"
#define HWP_DW_S2_FIRST_MEM(wa, wb)                                                                           \
    "ldr %[t0], [%[kq], #20]\n\t"                                                                             \
    "ldr %[s1], [%[kq], #24]\n\t"                                                                             \
    "ldr %[t1], [%[p]], #24\n\t"                                                                              \
    "smlad %[s0], %[t1], %[" wa "], %[s1]\n\t"                                                                \
    "ldr %[t1], [%[p], #-12]\n\t"                                                                             \
    "smlad %[s1], %[t1], %[" wa "], %[s1]\n\t"                                                                \
    "smlabt %[s0], %[t1], %[t0], %[s0]\n\t"                                                                   \
    "ldr %[t1], [%[p]]\n\t"                                                                                   \
    "smlabt %[s1], %[t1], %[t0], %[s1]\n\t"
/* both outputs requantized (the tie term with NEG), stored c apart (the second first, so that
 * c = 0 leaves the first), the loop closed: n holds -pairs in bits 20-31, c in bits 8-19 and
 * the channel's shift e in bits 0-7 (ASR by a register reads its low byte) */
#define HWP_DW_RQ_PAIR(NEG)                                                                                   \
    "ldr %[t0], [%[kq], #28]\n\t"                                                                             \
    "ldr %[t1], [%[kq], #32]\n\t"                                                                             \
    NEG("add %[t1], %[t1], %[s0], asr #31\n\t")                                                                \
    "smmlar %[s0], %[s0], %[t0], %[t1]\n\t"                                                                   \
    NEG("ldr %[t1], [%[kq], #32]\n\tadd %[t1], %[t1], %[s1], asr #31\n\t")                                    \
    "smmlar %[s1], %[s1], %[t0], %[t1]\n\t"                                                                   \
    "ubfx %[t1], %[n], #8, #12\n\t"                                                                           \
    "asr %[s0], %[s0], %[n]\n\t"                                                                              \
    "asr %[s1], %[s1], %[n]\n\t"                                                                              \
    "ssat %[s0], #8, %[s0]\n\t"                                                                               \
    "ssat %[s1], #8, %[s1]\n\t"                                                                               \
    "strb %[s1], [%[y], %[t1]]\n\t"                                                                           \
    "strb %[s0], [%[y]]\n\t"                                                                                  \
    "add %[y], %[y], %[t1], lsl #1\n\t"                                                                       \
    "adds %[n], %[n], #0x100000\n\t"                                                                          \
    "bcc 1b\n\t"
#define HWP_DW_NEG(text) text
#define HWP_DW_NONEG(text)
/* the slots' kernel rows for rotations 0, 1, 2: (0, 1, 2), (2, 0, 1), (1, 2, 0) */
#define HWP_DW_S1_ROT0                                                                                        \
    HWP_DW_S1_FIRST_REG("wa0", "wb0") HWP_DW_S1_REG("-8", "4", "wa1", "wb1") HWP_DW_S1_MEM("-4", "8", "wa2", "")
#define HWP_DW_S1_ROT1                                                                                        \
    HWP_DW_S1_FIRST_MEM("wa2", "") HWP_DW_S1_REG("-8", "4", "wa0", "wb0") HWP_DW_S1_REG("-4", "8", "wa1", "wb1")
#define HWP_DW_S1_ROT2                                                                                        \
    HWP_DW_S1_FIRST_REG("wa1", "wb1") HWP_DW_S1_MEM("-8", "4", "wa2", "") HWP_DW_S1_REG("-4", "8", "wa0", "wb0")
#define HWP_DW_S2_ROT0                                                                                        \
    HWP_DW_S2_FIRST_REG("wa0", "wb0") HWP_DW_S2_REG("-20", "-8", "4", "wa1", "wb1")                          \
    HWP_DW_S2_MEM("-16", "-4", "8", "wa2", "")
#define HWP_DW_S2_ROT1                                                                                        \
    HWP_DW_S2_FIRST_MEM("wa2", "") HWP_DW_S2_REG("-20", "-8", "4", "wa0", "wb0")                             \
    HWP_DW_S2_REG("-16", "-4", "8", "wa1", "wb1")
#define HWP_DW_S2_ROT2                                                                                        \
    HWP_DW_S2_FIRST_REG("wa1", "wb1") HWP_DW_S2_MEM("-20", "-8", "4", "wa2", "")                             \
    HWP_DW_S2_REG("-16", "-4", "8", "wa0", "wb0")
/* A channel's pass count word (n: the pair count, the output stride, the channel's shift e),
 * from ``st`` (at [sp]) and kq; after its passes, p, y and kq moved to the next channel and
 * the channels left counted down (the loops' label 2 starts a channel) */
#define HWP_DW_CHANNEL_HEAD                                                                                   \
    "ldr %[t0], [sp]\n\t"                                                                                     \
    "ldr %[n], [%[t0]]\n\t"                                                                                   \
    "ldr %[t1], [%[kq], #36]\n\t"                                                                             \
    "orr %[n], %[n], %[t1]\n\t"
#define HWP_DW_CHANNEL_TAIL                                                                                   \
    "ldr %[t0], [sp]\n\t"                                                                                     \
    "ldr %[t1], [%[t0], #4]\n\t"                                                                              \
    "add %[p], %[p], %[t1]\n\t"                                                                               \
    "ldr %[t1], [%[t0], #8]\n\t"                                                                              \
    "add %[y], %[y], %[t1]\n\t"                                                                               \
    "ldr %[t1], [%[t0], #12]\n\t"                                                                             \
    "add %[kq], %[kq], #40\n\t"                                                                               \
    "subs %[t1], %[t1], #1\n\t"                                                                               \
    "str %[t1], [%[t0], #12]\n\t"                                                                             \
    "bne 2b\n\t"
/* Every channel's output row in one block: per channel its five weight registers loaded,
 * its pairs run, then p, y and kq moved to the next channel; ``st`` (pushed, at [sp]) holds
 * the pair count word, p's and y's moves and the channels left. */
#define HWP_DW_CHANNELS(BODY, NEG)                                                                            \
    __asm__ volatile("push {%[n]}\n\t"                                                                        \
                     "2:\n\t"                                                                                 \
                     "ldr %[wa0], [%[kq]]\n\t"                                                                \
                     "ldr %[wb0], [%[kq], #4]\n\t"                                                            \
                     "ldr %[wa1], [%[kq], #8]\n\t"                                                            \
                     "ldr %[wb1], [%[kq], #12]\n\t"                                                           \
                     "ldr %[wa2], [%[kq], #16]\n\t"                                                           \
                     HWP_DW_CHANNEL_HEAD                                                                      \
                     "1:\n\t" BODY HWP_DW_RQ_PAIR(NEG)                                                        \
                     HWP_DW_CHANNEL_TAIL                                                                      \
                     "add sp, sp, #4\n\t"                                                                     \
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [t0] "=&r"(t0), [t1] "=&r"(t1), [p] "+r"(p), [y] "+r"(y), \
                       [n] "+r"(n), [kq] "+r"(kq), [wa0] "=&r"(w[0]), [wb0] "=&r"(w[1]), [wa1] "=&r"(w[2]),  \
                       [wb1] "=&r"(w[3]), [wa2] "=&r"(w[4])                                                   \
                     :                                                                                        \
                     : "cc", "memory")

/* ``pairs`` pairs of every channel's row, from ``p``, ``y`` and ``kq`` (channel 0); the
 * second output of a pair ``c_out`` after the first (0: both on the first, the second last) */
static void hwp_dw_run(const hwp_dw_word *p, int8_t *y, const int32_t *kq, int c, int step, int pairs, int c_out,
                       int stride, int rot, int neg) {
    int32_t st[4] = {(int32_t)((uint32_t)(-pairs) << 20 | (uint32_t)c_out << 8), 4 * step - 12 * stride * pairs,
                     1 - 2 * c_out * pairs, c};
    int32_t s0, s1, t0, t1, w[5];
    int32_t *n = st;
    switch ((stride == 1 ? 0 : 6) + (neg ? 3 : 0) + rot) {
    case 0: HWP_DW_CHANNELS(HWP_DW_S1_ROT0, HWP_DW_NONEG); break;
    case 1: HWP_DW_CHANNELS(HWP_DW_S1_ROT1, HWP_DW_NONEG); break;
    case 2: HWP_DW_CHANNELS(HWP_DW_S1_ROT2, HWP_DW_NONEG); break;
    case 3: HWP_DW_CHANNELS(HWP_DW_S1_ROT0, HWP_DW_NEG); break;
    case 4: HWP_DW_CHANNELS(HWP_DW_S1_ROT1, HWP_DW_NEG); break;
    case 5: HWP_DW_CHANNELS(HWP_DW_S1_ROT2, HWP_DW_NEG); break;
    case 6: HWP_DW_CHANNELS(HWP_DW_S2_ROT0, HWP_DW_NONEG); break;
    case 7: HWP_DW_CHANNELS(HWP_DW_S2_ROT1, HWP_DW_NONEG); break;
    case 8: HWP_DW_CHANNELS(HWP_DW_S2_ROT2, HWP_DW_NONEG); break;
    case 9: HWP_DW_CHANNELS(HWP_DW_S2_ROT0, HWP_DW_NEG); break;
    case 10: HWP_DW_CHANNELS(HWP_DW_S2_ROT1, HWP_DW_NEG); break;
    default: HWP_DW_CHANNELS(HWP_DW_S2_ROT2, HWP_DW_NEG); break;
    }
}

/* Four outputs a pass (stride 1, sums without the tie term): a slot's pairs j, j + 1, j + 2
 * (P0, P1, P2) serve outputs 2j .. 2j + 3,
 *   y0 += SMLAD(P0, ka) + P1.lo k2     y1 += P0.hi k0 + SMLAD(P1, kb)
 *   y2 += SMLAD(P1, ka) + P2.lo k2     y3 += P1.hi k0 + SMLAD(P2, kb)
 * so a pass loads three words a slot where two pairs load four, and the requantization's
 * constants and the loop's count once for four outputs. 13 operands: four sums, two data
 * words, p, y, n, kq and three weight words (row 0's ka and kb, row 1's ka); row 1's kb and
 * row 2's words load from kq. The first slot's first load moves p on by two pairs (the other
 * slots' offsets are relative to that) and every sum starts from the bias, loaded into s3:
 * f0..f3 name what each sum's first MAC adds to (s3 in the first slot, the sum itself after). */
#define HWP_DW_Q_FIRST(reg) "ldr %[" reg "], [%[p]], #24\n\t"
#define HWP_DW_Q_AT1(reg) "ldr %[" reg "], [%[p], #-20]\n\t"
#define HWP_DW_Q_AT2(reg) "ldr %[" reg "], [%[p], #-16]\n\t"
/* row 0: both weight words in registers */
#define HWP_DW_Q_REG(LD0, x1, x2, f0, f1, f2, f3)                                                            \
    LD0("t0") "ldr %[t1], [%[p], #" x1 "]\n\t"                                                                \
    "smlad %[s0], %[t0], %[wa0], %[" f0 "]\n\t"                                                               \
    "smlatb %[s1], %[t0], %[wa0], %[" f1 "]\n\t"                                                              \
    "smlabt %[s0], %[t1], %[wb0], %[s0]\n\t"                                                                  \
    "smlad %[s1], %[t1], %[wb0], %[s1]\n\t"                                                                   \
    "smlad %[s2], %[t1], %[wa0], %[" f2 "]\n\t"                                                               \
    "smlatb %[s3], %[t1], %[wa0], %[" f3 "]\n\t"                                                              \
    "ldr %[t0], [%[p], #" x2 "]\n\t"                                                                          \
    "smlabt %[s2], %[t0], %[wb0], %[s2]\n\t"                                                                  \
    "smlad %[s3], %[t0], %[wb0], %[s3]\n\t"
/* row 1: ka in a register, kb loaded */
#define HWP_DW_Q_HALF(LD0, x1, x2, f0, f1, f2, f3)                                                           \
    LD0("t0") "ldr %[t1], [%[p], #" x1 "]\n\t"                                                                \
    "smlad %[s0], %[t0], %[wa1], %[" f0 "]\n\t"                                                               \
    "smlatb %[s1], %[t0], %[wa1], %[" f1 "]\n\t"                                                              \
    "smlad %[s2], %[t1], %[wa1], %[" f2 "]\n\t"                                                               \
    "smlatb %[s3], %[t1], %[wa1], %[" f3 "]\n\t"                                                              \
    "ldr %[t0], [%[kq], #12]\n\t"                                                                             \
    "smlabt %[s0], %[t1], %[t0], %[s0]\n\t"                                                                   \
    "smlad %[s1], %[t1], %[t0], %[s1]\n\t"                                                                    \
    "ldr %[t1], [%[p], #" x2 "]\n\t"                                                                          \
    "smlabt %[s2], %[t1], %[t0], %[s2]\n\t"                                                                   \
    "smlad %[s3], %[t1], %[t0], %[s3]\n\t"
/* row 2: both loaded */
#define HWP_DW_Q_MEM(LD0, x1, x2, f0, f1, f2, f3)                                                            \
    "ldr %[t0], [%[kq], #16]\n\t" LD0("t1")                                                                   \
    "smlad %[s0], %[t1], %[t0], %[" f0 "]\n\t"                                                                \
    "smlatb %[s1], %[t1], %[t0], %[" f1 "]\n\t"                                                               \
    "ldr %[t1], [%[p], #" x1 "]\n\t"                                                                          \
    "smlad %[s2], %[t1], %[t0], %[" f2 "]\n\t"                                                                \
    "smlatb %[s3], %[t1], %[t0], %[" f3 "]\n\t"                                                               \
    "ldr %[t0], [%[kq], #20]\n\t"                                                                             \
    "smlabt %[s0], %[t1], %[t0], %[s0]\n\t"                                                                   \
    "smlad %[s1], %[t1], %[t0], %[s1]\n\t"                                                                    \
    "ldr %[t1], [%[p], #" x2 "]\n\t"                                                                          \
    "smlabt %[s2], %[t1], %[t0], %[s2]\n\t"                                                                   \
    "smlad %[s3], %[t1], %[t0], %[s3]\n\t"
#define HWP_DW_Q_BIAS "ldr %[s3], [%[kq], #24]\n\t"
#define HWP_DW_Q0(KIND) KIND(HWP_DW_Q_FIRST, "-12", "0", "s3", "s3", "s3", "s3")
#define HWP_DW_Q1(KIND) KIND(HWP_DW_Q_AT1, "-8", "4", "s0", "s1", "s2", "s3")
#define HWP_DW_Q2(KIND) KIND(HWP_DW_Q_AT2, "-4", "8", "s0", "s1", "s2", "s3")
/* the slots' kernel rows for rotations 0, 1, 2: (0, 1, 2), (2, 0, 1), (1, 2, 0) */
#define HWP_DW_Q_ROT0 HWP_DW_Q_BIAS HWP_DW_Q0(HWP_DW_Q_REG) HWP_DW_Q1(HWP_DW_Q_HALF) HWP_DW_Q2(HWP_DW_Q_MEM)
#define HWP_DW_Q_ROT1 HWP_DW_Q_BIAS HWP_DW_Q0(HWP_DW_Q_MEM) HWP_DW_Q1(HWP_DW_Q_REG) HWP_DW_Q2(HWP_DW_Q_HALF)
#define HWP_DW_Q_ROT2 HWP_DW_Q_BIAS HWP_DW_Q0(HWP_DW_Q_HALF) HWP_DW_Q1(HWP_DW_Q_MEM) HWP_DW_Q2(HWP_DW_Q_REG)
/* the four outputs requantized and stored c apart (n as in HWP_DW_RQ_PAIR), the loop closed */
#define HWP_DW_Q_RQ                                                                                           \
    "ldr %[t0], [%[kq], #28]\n\t"                                                                             \
    "ldr %[t1], [%[kq], #32]\n\t"                                                                             \
    "smmlar %[s0], %[s0], %[t0], %[t1]\n\t"                                                                   \
    "smmlar %[s1], %[s1], %[t0], %[t1]\n\t"                                                                   \
    "smmlar %[s2], %[s2], %[t0], %[t1]\n\t"                                                                   \
    "smmlar %[s3], %[s3], %[t0], %[t1]\n\t"                                                                   \
    "ubfx %[t1], %[n], #8, #12\n\t"                                                                           \
    "asr %[s0], %[s0], %[n]\n\t"                                                                              \
    "asr %[s1], %[s1], %[n]\n\t"                                                                              \
    "asr %[s2], %[s2], %[n]\n\t"                                                                              \
    "asr %[s3], %[s3], %[n]\n\t"                                                                              \
    "ssat %[s0], #8, %[s0]\n\t"                                                                               \
    "ssat %[s1], #8, %[s1]\n\t"                                                                               \
    "ssat %[s2], #8, %[s2]\n\t"                                                                               \
    "ssat %[s3], #8, %[s3]\n\t"                                                                               \
    "strb %[s0], [%[y]]\n\t"                                                                                  \
    "strb %[s1], [%[y], %[t1]]\n\t"                                                                           \
    "add %[y], %[y], %[t1], lsl #1\n\t"                                                                       \
    "strb %[s2], [%[y]]\n\t"                                                                                  \
    "strb %[s3], [%[y], %[t1]]\n\t"                                                                           \
    "add %[y], %[y], %[t1], lsl #1\n\t"                                                                       \
    "adds %[n], %[n], #0x100000\n\t"                                                                          \
    "bcc 1b\n\t"
/* Every channel's four-output passes: per channel its three weight registers loaded, its
 * passes run, then p, y and kq moved to the next channel (``st`` as in HWP_DW_CHANNELS) */
#define HWP_DW_QUAD_CHANNELS(BODY)                                                                            \
    __asm__ volatile("push {%[n]}\n\t"                                                                        \
                     "2:\n\t"                                                                                 \
                     "ldr %[wa0], [%[kq]]\n\t"                                                                \
                     "ldr %[wb0], [%[kq], #4]\n\t"                                                            \
                     "ldr %[wa1], [%[kq], #8]\n\t"                                                            \
                     HWP_DW_CHANNEL_HEAD                                                                      \
                     "1:\n\t" BODY HWP_DW_Q_RQ                                                                \
                     HWP_DW_CHANNEL_TAIL                                                                      \
                     "add sp, sp, #4\n\t"                                                                     \
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [t0] "=&r"(t0),         \
                       [t1] "=&r"(t1), [p] "+r"(p), [y] "+r"(y), [n] "+r"(n), [kq] "+r"(kq), [wa0] "=&r"(w[0]), \
                       [wb0] "=&r"(w[1]), [wa1] "=&r"(w[2])                                                   \
                     :                                                                                        \
                     : "cc", "memory")

/* ``quads`` four-output passes of every channel's row (stride 1, no tie term), from ``p``,
 * ``y`` and ``kq`` (channel 0); consecutive outputs ``c_out`` apart */
static void hwp_dw_run4(const hwp_dw_word *p, int8_t *y, const int32_t *kq, int c, int step, int quads, int c_out,
                        int rot) {
    int32_t st[4] = {(int32_t)((uint32_t)(-quads) << 20 | (uint32_t)c_out << 8), 4 * step - 24 * quads,
                     1 - 4 * c_out * quads, c};
    int32_t s0, s1, s2, s3, t0, t1, w[3];
    int32_t *n = st;
    switch (rot) {
    case 0: HWP_DW_QUAD_CHANNELS(HWP_DW_Q_ROT0); break;
    case 1: HWP_DW_QUAD_CHANNELS(HWP_DW_Q_ROT1); break;
    default: HWP_DW_QUAD_CHANNELS(HWP_DW_Q_ROT2); break;
    }
}
#endif

#endif
