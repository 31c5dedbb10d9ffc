/*
 * Test driver for templates/c/hwprune_fixed.h, used by tests/unit/test_fixed_c.py.
 *
 *   test_fixed_c sweep COMBOS LO HI OUT32 OUT64
 *       COMBOS: int32 rows (shift, width, signed, rounding, overflow). For every row
 *       and every v in LO..HI, writes the _i32 and _i64 casts as int16 (the sweep
 *       uses widths <= 8, so every result fits).
 *   test_fixed_c cases IN OUT
 *       IN: int64 rows (v, shift, width, signed, rounding, overflow, bits), bits 32 or
 *       64 choosing the function; OUT: one int64 result per row.
 *
 * Files are in the host's byte order; exit status 1 on a malformed file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwprune_fixed.h"

static long file_size(FILE *f)
{
    long n;
    if (fseek(f, 0, SEEK_END) != 0) {
        return -1;
    }
    n = ftell(f);
    rewind(f);
    return n;
}

static void *read_all(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    void *data;
    if (!f) {
        perror(path);
        exit(1);
    }
    *size = file_size(f);
    data = malloc(*size > 0 ? (size_t)*size : 1u);
    if (!data || fread(data, 1, (size_t)*size, f) != (size_t)*size) {
        fprintf(stderr, "%s: read failed\n", path);
        exit(1);
    }
    fclose(f);
    return data;
}

static int sweep(const char *combos_path, long lo, long hi, const char *out32_path, const char *out64_path)
{
    long size;
    int32_t *combos = (int32_t *)read_all(combos_path, &size);
    long rows = size / (long)(5 * sizeof(int32_t));
    long count = hi - lo + 1;
    int16_t *out32 = (int16_t *)malloc((size_t)count * sizeof(int16_t));
    int16_t *out64 = (int16_t *)malloc((size_t)count * sizeof(int16_t));
    FILE *f32 = fopen(out32_path, "wb");
    FILE *f64 = fopen(out64_path, "wb");
    long r;
    long v;
    if (!out32 || !out64 || !f32 || !f64 || size % (long)(5 * sizeof(int32_t)) != 0) {
        fprintf(stderr, "sweep: bad arguments\n");
        return 1;
    }
    for (r = 0; r < rows; ++r) {
        const int32_t *c = combos + 5 * r;
        for (v = lo; v <= hi; ++v) {
            out32[v - lo] = (int16_t)hwprune_cast_i32((int32_t)v, c[0], c[1], c[2], c[3], c[4]);
            out64[v - lo] = (int16_t)hwprune_cast_i64((int64_t)v, c[0], c[1], c[2], c[3], c[4]);
        }
        if (fwrite(out32, sizeof(int16_t), (size_t)count, f32) != (size_t)count ||
            fwrite(out64, sizeof(int16_t), (size_t)count, f64) != (size_t)count) {
            fprintf(stderr, "sweep: write failed\n");
            return 1;
        }
    }
    fclose(f32);
    fclose(f64);
    free(combos);
    free(out32);
    free(out64);
    return 0;
}

static int cases(const char *in_path, const char *out_path)
{
    long size;
    int64_t *rows = (int64_t *)read_all(in_path, &size);
    long n = size / (long)(7 * sizeof(int64_t));
    int64_t *out = (int64_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    FILE *f = fopen(out_path, "wb");
    long i;
    if (!out || !f || size % (long)(7 * sizeof(int64_t)) != 0) {
        fprintf(stderr, "cases: bad arguments\n");
        return 1;
    }
    for (i = 0; i < n; ++i) {
        const int64_t *c = rows + 7 * i;
        int shift = (int)c[1], width = (int)c[2], is_signed = (int)c[3], rnd = (int)c[4], ovf = (int)c[5];
        if (c[6] == 32) {
            out[i] = hwprune_cast_i32((int32_t)c[0], shift, width, is_signed, rnd, ovf);
        } else {
            out[i] = hwprune_cast_i64(c[0], shift, width, is_signed, rnd, ovf);
        }
    }
    if (fwrite(out, sizeof(int64_t), (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cases: write failed\n");
        return 1;
    }
    fclose(f);
    free(rows);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "sweep") == 0) {
        return sweep(argv[2], atol(argv[3]), atol(argv[4]), argv[5], argv[6]);
    }
    if (argc == 4 && strcmp(argv[1], "cases") == 0) {
        return cases(argv[2], argv[3]);
    }
    fprintf(stderr, "usage: %s sweep COMBOS LO HI OUT32 OUT64 | cases IN OUT\n", argv[0]);
    return 2;
}
