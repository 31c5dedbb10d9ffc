/* The string.h CMSIS-NN uses, for a freestanding build (the functions come from zig's
 * compiler-rt). zig cc builds freestanding code with -ffreestanding, which turns off the
 * compiler's knowledge of memcpy/memset: CMSIS-NN's 4-byte loads (memcpy(&word, p, 4))
 * would each become a call. Routed to the builtins they compile as in a hosted build: a
 * load or store for a small constant size, the library call otherwise. */
#ifndef HWPRUNE_BENCH_STRING_H
#define HWPRUNE_BENCH_STRING_H
#include <stddef.h>
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#define memcpy(dst, src, n) __builtin_memcpy((dst), (src), (n))
#define memmove(dst, src, n) __builtin_memmove((dst), (src), (n))
#define memset(dst, c, n) __builtin_memset((dst), (c), (n))
#endif
