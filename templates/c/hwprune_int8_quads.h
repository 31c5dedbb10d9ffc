/* A dense CONV_2D's first channels four at a time (hwp_conv_pairs in hwprune_int8_pairs.h runs
 * them before its pairs). A quad record (backends/c_int8_layout.conv_records, quad_rows) holds
 * channels o..o + 3: their four biases (int32); per group of four inputs k0..k3 four words,
 * each two channels' weights (a k_lo, b k_lo, a k_hi, b k_hi): channels (0, 1) at (k0, k2),
 * (2, 3) at (k0, k2), (0, 1) at (k1, k3), (2, 3) at (k1, k3); then each channel's multiplier
 * and shift word. SXTB16 of such a word and of the word rotated by 8 give channel a's and
 * channel b's pair, which meets the columns' (x0, x2) or (x1, x3) word as it is: a step of
 * two columns' words and two weight words is 8 SMLADs, 16 MACs, in about 18 cycles on the M4
 * (the 2x2 block's group takes 20). With HWP_QUAD_WIDE (defined 1 by a model's C whose
 * weights may take twice their bytes: backends/c_int8_plan.wide_weights) the weights are
 * stored widened, each word one channel's int16 pair in the order above (channel 0, 1, 2, 3
 * at (k0, k2), then at (k1, k3)): a step's four weight loads pipeline behind the columns' and
 * no SXTB16 is left, about 16 cycles. The written-out loop holds eight sums, the records' and
 * the columns' pointers and four working registers: fourteen, every register but SP and PC,
 * so it names them all and keeps r7 (a frame pointer in some builds) on the stack meanwhile. */
#ifndef HWPRUNE_INT8_QUADS_H
#define HWPRUNE_INT8_QUADS_H

#include <stdint.h>

/* quads where the layer's requantization is the folded form over all of int8 (``folded``,
 * which the written-out loop takes) and it has at least this many channels
 * (backends/c_int8_layout.conv_quads, the same rule); other layers keep pairs, whose
 * multiply blocks run in assembly whatever the requantization */
#define HWP_QUAD_MIN_CHANNELS 4
#define HWP_CONV_QUADS(out_c, folded) ((folded) && (out_c) >= HWP_QUAD_MIN_CHANNELS ? (out_c) / 4 : 0)
/* hwp_conv_pairs' condition for the folded form: the out_zp argument and the clamp */
#define HWP_FOLDED(out_zp, lo, hi) ((out_zp) >= HWP_RQ_FOLDED && (lo) == -128 && (hi) == 127)
#define HWP_QUAD_WBYTES (HWP_QUAD_WIDE ? 8 : 4) /* a record's weight bytes per input */
#define HWP_QUAD_BYTES(k_all) (48 + HWP_QUAD_WBYTES * (k_all))

/* quad record ``q``'s channel j (0..3) as a row, with its bias, multiplier and shift word */
static inline hwp_row_t hwp_quad_channel(const int8_t *q, int j, int k_all, int32_t *bias, int32_t *mult,
                                         int32_t *shift) {
    hwp_row_t row;
    *bias = hwp_rec32(q, j);
    *mult = hwp_rec32(q + 16 + HWP_QUAD_WBYTES * k_all, 2 * j);
    *shift = hwp_rec32(q + 16 + HWP_QUAD_WBYTES * k_all, 2 * j + 1);
    row.base = q + 16;
    row.r = j;
    row.rows = HWP_ROW_QUAD;
    return row;
}

#if HWP_SIMD
/* A quad record's rows ``w`` (after its biases) times two columns ``col`` (hwp_im2col's
 * layout), onto s[2j] (the first column, channel j) and s[2j + 1] (the second): the written-out
 * loop's steps in C */
static inline void hwp_mm4x2(const int8_t *w, int k_all, const int16_t *col, int32_t *s) {
    for (int g = 0; g < k_all >> 2; g++, col += 8) {
        for (int step = 0; step < 2; step++) {
            int32_t cp = hwp_ld32(col + 2 * step), cq = hwp_ld32(col + 4 + 2 * step), k[4];
            if (HWP_QUAD_WIDE) {
                for (int j = 0; j < 4; j++) k[j] = hwp_ld32(w + 4 * j);
                w += 16;
            } else {
                int32_t u = hwp_ld32(w), v = hwp_ld32(w + 4);
                k[0] = hwp_sxtb16(u), k[1] = hwp_sxtb16(HWP_ROR8(u)), k[2] = hwp_sxtb16(v), k[3] = hwp_sxtb16(HWP_ROR8(v));
                w += 8;
            }
            for (int j = 0; j < 4; j++) {
                s[2 * j] = hwp_smlad(k[j], cp, s[2 * j]);
                s[2 * j + 1] = hwp_smlad(k[j], cq, s[2 * j + 1]);
            }
        }
    }
}
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
/* Registers: r0 the records, r1 the columns (a group: the first pixel's two words, then the
 * second's), sums r2..r9 (channel j's in r(2 + 2j) for the first pixel, r(3 + 2j) for the
 * second), r10 and r11 the columns' words, r12 and lr the widened weights. One step: the
 * columns' words (r1 stepped by STEP bytes after), two weight words, eight SMLADs; FIRST: the
 * second pixel's sums start from the first's (the biases) */
#define HWP_QUAD_WEIGHTS                                                                                      \
    "ldr lr, [r0], #4\n\t"                                                                                    \
    "sxtb16 r12, lr\n\t"                                                                                      \
    "sxtb16 lr, lr, ror #8\n\t"
#define HWP_QUAD_MACS(a0, a1, b0, b1, c1, d1)                                                                 \
    "smlad " a1 ", r12, r11, " c1 "\n\t"                                                                      \
    "smlad " a0 ", r12, r10, " a0 "\n\t"                                                                      \
    "smlad " b1 ", lr, r11, " d1 "\n\t"                                                                       \
    "smlad " b0 ", lr, r10, " b0 "\n\t"
#if HWP_QUAD_WIDE
#define HWP_QUAD_STEP_ONTO(STEP, c01, c11, c21, c31)                                                          \
    "ldr r11, [r1, #8]\n\t"                                                                                   \
    "ldr r10, [r1], #" STEP "\n\t"                                                                            \
    "ldr r12, [r0], #4\n\t"                                                                                   \
    "ldr lr, [r0], #4\n\t" HWP_QUAD_MACS("r2", "r3", "r4", "r5", c01, c11)                                      \
    "ldr r12, [r0], #4\n\t"                                                                                   \
    "ldr lr, [r0], #4\n\t" HWP_QUAD_MACS("r6", "r7", "r8", "r9", c21, c31)
#else
#define HWP_QUAD_STEP_ONTO(STEP, c01, c11, c21, c31)                                                          \
    "ldr r11, [r1, #8]\n\t"                                                                                   \
    "ldr r10, [r1], #" STEP "\n\t" HWP_QUAD_WEIGHTS HWP_QUAD_MACS("r2", "r3", "r4", "r5", c01, c11)            \
        HWP_QUAD_WEIGHTS HWP_QUAD_MACS("r6", "r7", "r8", "r9", c21, c31)
#endif
#define HWP_QUAD_STEP(STEP) HWP_QUAD_STEP_ONTO(STEP, "r3", "r5", "r7", "r9")
#define HWP_QUAD_GROUP HWP_QUAD_STEP("4") HWP_QUAD_STEP("12")
/* up to three more groups, written out (the compiler counts their bytes where it places
 * literal pools; an assembler .rept it would not see) */
#define HWP_QUAD_UP_TO_3(n)                                                                                   \
    ".if " n " > 0\n\t" HWP_QUAD_GROUP ".endif\n\t"                                                          \
    ".if " n " > 1\n\t" HWP_QUAD_GROUP ".endif\n\t"                                                          \
    ".if " n " > 2\n\t" HWP_QUAD_GROUP ".endif\n\t"
/* channel j's two sums requantized (RQ: hwp_conv_pairs' forms; lr their temporary) */
#define HWP_QUAD_RQ(RQ, a0, a1)                                                                               \
    "ldrd r10, r11, [r0], #8\n\t"                                                                             \
    "asr r12, r11, #8\n\t" RQ(a0, "r10", "r12", "r11", "lr") RQ(a1, "r10", "r12", "r11", "lr")
/* the eight outputs: r10 the first pixel's channel o, r11 the second's, channel o + j at j * cs */
#define HWP_QUAD_STORE(ST, a0, a1, off) ST " " a0 ", [r10, #" off "]\n\t" ST " " a1 ", [r11, #" off "]\n\t"
/* One quad: the biases (two LDRDs), the first group, the others four a pass (the passes'
 * count at [sp, #12]) and the last (G - 1) % 4 written out, the columns' pointer stepped back,
 * four channels' requantization, the outputs' addresses ({yp, yq} at [sp]) and eight stores,
 * channel j's at offset Oj. A pass of four groups is 512 bytes of code: with the rest of a
 * quad it stays within an instruction cache of 1 KB (the STM32L4's ART), where eight a pass
 * (VWW 6.28 M cycles without flash wait states, 6.34 M with four) made every quad miss it:
 * with the wait states modelled (harness.cycles.FlashModel) IC took 45.4 M cycles against
 * 28.0 M with four. */
#define HWP_QUAD_BODY(RQ, ST, O0, O1, O2, O3)                                                                 \
    "ldrd r2, r4, [r0], #8\n\t"                                                                               \
    "ldrd r6, r8, [r0], #8\n\t" HWP_QUAD_STEP_ONTO("4", "r2", "r4", "r6", "r8") HWP_QUAD_STEP("12")           \
    ".if %c[passes]\n\t"                                                                                      \
    "movs r12, #%c[passes]\n\t"                                                                               \
    "str r12, [sp, #12]\n\t"                                                                                  \
    "3:\n\t" HWP_QUAD_GROUP HWP_QUAD_GROUP HWP_QUAD_GROUP HWP_QUAD_GROUP                                   \
    "ldr r12, [sp, #12]\n\t"                                                                                  \
    "subs r12, r12, #1\n\t"                                                                                   \
    "str r12, [sp, #12]\n\t"                                                                                  \
    "bne 3b\n\t"                                                                                              \
    ".endif\n\t" HWP_QUAD_UP_TO_3("%c[rest]")                                                                 \
    "subw r1, r1, #%c[cb]\n\t" HWP_QUAD_RQ(RQ, "r2", "r3") HWP_QUAD_RQ(RQ, "r4", "r5") HWP_QUAD_RQ(RQ, "r6", "r7") \
        HWP_QUAD_RQ(RQ, "r8", "r9")                                                                           \
    "ldrd r10, r11, [sp]\n\t" HWP_QUAD_STORE(ST, "r2", "r3", O0) HWP_QUAD_STORE(ST, "r4", "r5", O1)           \
        HWP_QUAD_STORE(ST, "r6", "r7", O2) HWP_QUAD_STORE(ST, "r8", "r9", O3)
/* both addresses stepped by ``step`` bytes, the loop closed at the end ([sp, #8]) */
#define HWP_QUAD_NEXT(step)                                                                                   \
    "add r10, r10, #" step "\n\t"                                                                             \
    "add r11, r11, #" step "\n\t"                                                                             \
    "strd r10, r11, [sp]\n\t"                                                                                 \
    "ldr r12, [sp, #8]\n\t"                                                                                   \
    "cmp r10, r12\n\t"                                                                                        \
    "bne 1b\n\t"
/* Every quad of channels for two pixels: {yp, yq, the end of the passes' yp} (from ``st``) and
 * a loop counter on the stack; a pass of one quad, or with ``two`` (short filters: at most 8
 * groups) of two, the second's outputs 4 * cs bytes after the first's (an odd count enters at
 * the second, the addresses started 4 * cs bytes early). */
#define HWP_QUADS_ASM(RQ, ST)                                                                                 \
    __asm__ volatile("push {r7}\n\t"                                                                          \
                     "ldmia r2, {r10, r11, r12}\n\t"                                                          \
                     "push {r10, r11, r12, lr}\n\t"                                                           \
                     ".if %c[two]\n\t"                                                                        \
                     ".if %c[odd]\n\tb 2f\n\t.endif\n\t"                                                      \
                     "1:\n\t" HWP_QUAD_BODY(RQ, ST, "0", "%c[cs]", "%c[cs2]", "%c[cs3]")                      \
                     "2:\n\t" HWP_QUAD_BODY(RQ, ST, "%c[cs4]", "%c[cs5]", "%c[cs6]", "%c[cs7]")               \
                         HWP_QUAD_NEXT("%c[cs8]")                                                             \
                     ".else\n\t"                                                                              \
                     "1:\n\t" HWP_QUAD_BODY(RQ, ST, "0", "%c[cs]", "%c[cs2]", "%c[cs3]") HWP_QUAD_NEXT("%c[cs4]") \
                     ".endif\n\t"                                                                             \
                     "add sp, sp, #16\n\t"                                                                    \
                     "pop {r7}\n\t"                                                                           \
                     : "+r"(rw), "+r"(rc), "+r"(rs)                                                           \
                     : [passes] "i"((groups - 1) >> 2), [rest] "i"((groups - 1) & 3), [cb] "i"(16 * groups),   \
                       [cs] "i"(cs), [cs2] "i"(2 * cs), [cs3] "i"(3 * cs), [cs4] "i"(4 * cs), [cs5] "i"(5 * cs), \
                       [cs6] "i"(6 * cs), [cs7] "i"(7 * cs), [cs8] "i"(8 * cs), [two] "i"(two),                 \
                       [odd] "i"(quads & 1)                                                                   \
                     : "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory")
#endif

#endif
