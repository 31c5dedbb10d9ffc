/*
 * Test driver for templates/c/hwprune_float.h, used by tests/codegen/test_firmware_helpers.py.
 *
 *   test_float_c IN OUT
 *       IN: rows of 24 bytes: float32 x, then int32 width, frac_bits, signed, rounding,
 *       overflow. OUT: per row int64 hwprune_quantize_f32(...) and int64 its out-of-range
 *       flag. Host byte order; exit status 1 on an I/O error.
 */
#include <stdio.h>
#include <string.h>

#include "hwprune_float.h"

int main(int argc, char **argv)
{
    FILE *in;
    FILE *out;
    unsigned char row[24];
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
        return 1;
    }
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "cannot open the files\n");
        return 1;
    }
    while (fread(row, sizeof row, 1, in) == 1) {
        float x;
        int32_t args[5];
        int outside = 0;
        int64_t result[2];
        memcpy(&x, row, 4);
        memcpy(args, row + 4, sizeof args);
        result[0] = hwprune_quantize_f32(x, args[0], args[1], args[2], args[3], args[4], &outside);
        result[1] = outside;
        if (fwrite(result, sizeof result, 1, out) != 1) {
            return 1;
        }
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : 1;
}
