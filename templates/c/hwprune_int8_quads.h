/* A dense CONV_2D's first channels four at a time (hwp_conv_pairs in hwprune_int8_pairs.h runs
 * them before its pairs). A quad record (backends/c_int8_layout.conv_records, quad_rows) holds
 * channels o..o + 3: their four biases (int32); per group of four inputs k0..k3 four words,
 * each two channels' weights (a k_lo, b k_lo, a k_hi, b k_hi): channels (0, 1) at (k0, k2),
 * (2, 3) at (k0, k2), (0, 1) at (k1, k3), (2, 3) at (k1, k3); then each channel's multiplier
 * and shift word. SXTB16 of such a word and of the word rotated by 8 give channel a's and
 * channel b's pair, which meets the columns' (x0, x2) or (x1, x3) word as it is: a step of
 * two columns' words and two weight words is 8 SMLADs, 16 MACs, in about 18 cycles on the M4
 * (the 2x2 block's group takes 20). Eight sums stay in registers, the weights' pointer and
 * four working registers (r8-r11) take the rest, so the two columns are first copied to the
 * stack, where immediate offsets from SP reach them. */
#ifndef HWPRUNE_INT8_QUADS_H
#define HWPRUNE_INT8_QUADS_H

#include <stdint.h>

/* filters of at most this many groups of four weights (HWP_QUAD_GROUPS writes out 16), at
 * least this many channels: the copy of the columns pays for itself
 * (backends/c_int8_layout.conv_quads, the same rule) */
#define HWP_QUAD_MAX_GROUPS 16
#define HWP_QUAD_MIN_CHANNELS 12
#define HWP_CONV_QUADS(k_all, out_c) \
    ((k_all) / 4 <= HWP_QUAD_MAX_GROUPS && (out_c) >= HWP_QUAD_MIN_CHANNELS ? (out_c) / 4 : 0)
#define HWP_QUAD_BYTES(k_all) (48 + 4 * (k_all))
/* quad record ``q``'s channel j (0..3) as a row, with its bias, multiplier and shift word */
static inline hwp_row_t hwp_quad_channel(const int8_t *q, int j, int k_all, int32_t *bias, int32_t *mult,
                                         int32_t *shift) {
    hwp_row_t row;
    *bias = hwp_rec32(q, j);
    *mult = hwp_rec32(q + 16 + 4 * k_all, 2 * j);
    *shift = hwp_rec32(q + 16 + 4 * k_all, 2 * j + 1);
    row.base = q + 16;
    row.r = j;
    row.rows = HWP_ROW_QUAD;
    return row;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__)
/* One step of a quad: the columns' words at [sp, #P] and [sp, #Q] (r8, r9), two weight
 * words (r11, widened into r10 and r11), eight SMLADs onto the sums; FIRST: the second
 * column's sums start from the first's (the biases), before the first column's are added */
#define HWP_QUAD_LOAD(P, Q)                                                                                   \
    "ldr r9, [sp, #" Q "]\n\t"                                                                                \
    "ldr r8, [sp, #" P "]\n\t"                                                                                \
    "ldr r11, [%[w]], #4\n\t"                                                                                 \
    "sxtb16 r10, r11\n\t"                                                                                     \
    "sxtb16 r11, r11, ror #8\n\t"
#define HWP_QUAD_MACS(a0, a1, b0, b1, c0, c1, d0, d1)                                                         \
    "smlad %[" a1 "], r10, r9, %[" c1 "]\n\t"                                                                 \
    "smlad %[" a0 "], r10, r8, %[" c0 "]\n\t"                                                                 \
    "smlad %[" b1 "], r11, r9, %[" d1 "]\n\t"                                                                 \
    "smlad %[" b0 "], r11, r8, %[" d0 "]\n\t"
#define HWP_QUAD_STEP(P, Q)                                                                                   \
    HWP_QUAD_LOAD(P, Q) HWP_QUAD_MACS("a00", "a01", "a10", "a11", "a00", "a01", "a10", "a11")                 \
    "ldr r11, [%[w]], #4\n\t"                                                                                 \
    "sxtb16 r10, r11\n\t"                                                                                     \
    "sxtb16 r11, r11, ror #8\n\t" HWP_QUAD_MACS("a20", "a21", "a30", "a31", "a20", "a21", "a30", "a31")
#define HWP_QUAD_FIRST_STEP                                                                                   \
    HWP_QUAD_LOAD("0", "8") HWP_QUAD_MACS("a00", "a01", "a10", "a11", "a00", "a00", "a10", "a10")             \
    "ldr r11, [%[w]], #4\n\t"                                                                                 \
    "sxtb16 r10, r11\n\t"                                                                                     \
    "sxtb16 r11, r11, ror #8\n\t" HWP_QUAD_MACS("a20", "a21", "a30", "a31", "a20", "a20", "a30", "a30")
/* groups 1..15 (while below G), written out rather than an assembler .rept, so that the
 * compiler counts their bytes when it places literal pools */
#define HWP_QUAD_GROUP(n)                                                                                     \
    ".if %c[g] > " #n "\n\t" HWP_QUAD_STEP("hwp_quad_at", "hwp_quad_at + 8")                                  \
        HWP_QUAD_STEP("hwp_quad_at + 4", "hwp_quad_at + 12") ".set hwp_quad_at, hwp_quad_at + 16\n\t.endif\n\t"
#define HWP_QUAD_GROUPS                                                                                       \
    HWP_QUAD_GROUP(1) HWP_QUAD_GROUP(2) HWP_QUAD_GROUP(3) HWP_QUAD_GROUP(4) HWP_QUAD_GROUP(5) HWP_QUAD_GROUP(6)   \
        HWP_QUAD_GROUP(7) HWP_QUAD_GROUP(8) HWP_QUAD_GROUP(9) HWP_QUAD_GROUP(10) HWP_QUAD_GROUP(11)           \
            HWP_QUAD_GROUP(12) HWP_QUAD_GROUP(13) HWP_QUAD_GROUP(14) HWP_QUAD_GROUP(15)
/* channel j's two sums requantized (RQ as hwp_conv_pairs' forms, its temporary r11) */
#define HWP_QUAD_RQ(RQ, a0, a1)                                                                               \
    "ldrd r8, r9, [%[w]], #8\n\t"                                                                             \
    "asr r10, r9, #8\n\t" RQ(a0, "r8", "r10", "r9", "r11") RQ(a1, "r8", "r10", "r9", "r11")
/* the eight outputs: r8 the first pixel's channel o, r9 the second's, channel o + j at j * cs */
#define HWP_QUAD_STORE(ST, a0, a1, off) ST " %[" a0 "], [r8, #" off "]\n\t" ST " %[" a1 "], [r9, #" off "]\n\t"
/* Every quad of channels for two pixels: the columns' G groups (16 G bytes) copied below SP,
 * {yp, yq, the quads' end} (from ``st``) above them; per quad the biases (two LDRDs), G
 * groups of two steps, four channels' requantization, eight stores, both addresses stepped
 * by 4 * cs. The registers of ``c`` (the columns) and ``stp`` (st) hold sums (a31, a21) once
 * read; ``wq`` walks the records. */
#define HWP_QUADS_ASM(RQ, ST)                                                                                 \
    __asm__ volatile("ldmia %[a21], {r8, r9, r10}\n\t"                                                         \
                     "sub sp, sp, #%c[frame]\n\t"                                                             \
                     "add r11, sp, #%c[cb]\n\t"                                                               \
                     "stmia r11, {r8, r9, r10}\n\t"                                                           \
                     "mov %[a00], sp\n\t"                                                                     \
                     ".rept %c[g]\n\t"                                                                        \
                     "ldmia %[a31]!, {r8, r9, r10, r11}\n\t"                                                  \
                     "stmia %[a00]!, {r8, r9, r10, r11}\n\t"                                                  \
                     ".endr\n\t"                                                                              \
                     "1:\n\t"                                                                                 \
                     "ldrd %[a00], %[a10], [%[w]], #8\n\t"                                                    \
                     "ldrd %[a20], %[a30], [%[w]], #8\n\t" HWP_QUAD_FIRST_STEP HWP_QUAD_STEP("4", "12")        \
                     ".set hwp_quad_at, 16\n\t" HWP_QUAD_GROUPS                                                \
                     HWP_QUAD_RQ(RQ, "a00", "a01") HWP_QUAD_RQ(RQ, "a10", "a11")                  \
                         HWP_QUAD_RQ(RQ, "a20", "a21") HWP_QUAD_RQ(RQ, "a30", "a31")                          \
                     "ldrd r8, r9, [sp, #%c[cb]]\n\t" HWP_QUAD_STORE(ST, "a00", "a01", "0")                  \
                         HWP_QUAD_STORE(ST, "a10", "a11", "%c[cs]") HWP_QUAD_STORE(ST, "a20", "a21", "%c[cs2]") \
                         HWP_QUAD_STORE(ST, "a30", "a31", "%c[cs3]")                                          \
                     "add r8, r8, #%c[cs4]\n\t"                                                               \
                     "add r9, r9, #%c[cs4]\n\t"                                                               \
                     "strd r8, r9, [sp, #%c[cb]]\n\t"                                                         \
                     "ldr r10, [sp, #%c[cb] + 8]\n\t"                                                         \
                     "cmp r8, r10\n\t"                                                                        \
                     "bne 1b\n\t"                                                                             \
                     "add sp, sp, #%c[frame]\n\t"                                                             \
                     : [a00] "=&r"(s00), [a01] "=&r"(s01), [a10] "=&r"(s10), [a11] "=&r"(s11), [a20] "=&r"(s20), \
                       [a21] "+&r"(stp), [a30] "=&r"(s30), [a31] "+&r"(c), [w] "+&r"(wq)      \
                     : [g] "i"(groups), [cb] "i"(16 * groups), [frame] "i"(16 * groups + 16), [cs] "i"(cs),    \
                       [cs2] "i"(2 * cs), [cs3] "i"(3 * cs), [cs4] "i"(4 * cs)                                 \
                     : "r8", "r9", "r10", "r11", "cc", "memory")
#endif

#endif
