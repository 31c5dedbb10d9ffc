/*
 * driver.c - hwprune's host test driver for an exported model (copied verbatim).
 *
 *     driver INPUT OUTPUT
 *
 * INPUT holds int64 integers of the model's input type, HWPRUNE_MODEL_INPUT_SIZE per
 * vector, as many vectors as the file holds. OUTPUT receives, per vector, records of
 *     int64 tag, int64 n, n int64 values
 * where tag is a layer index (traced builds, -DHWPRUNE_TRACE, one record per layer) or
 * -1 for the model's output. Both files are in the host's byte order. One process runs
 * every vector. Exit status: 0 done, 1 I/O error, 3 an input outside the C input type,
 * 4 predict failed.
 */
#define HWPRUNE_DRIVER
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

static FILE *hwprune_out;

static void write_record(int64_t tag, const int64_t *values, int64_t n)
{
    if (fwrite(&tag, sizeof tag, 1, hwprune_out) != 1 || fwrite(&n, sizeof n, 1, hwprune_out) != 1 ||
        fwrite(values, sizeof *values, (size_t)n, hwprune_out) != (size_t)n) {
        fprintf(stderr, "driver: cannot write the output file\n");
        exit(1);
    }
}

#ifdef HWPRUNE_TRACE
void hwprune_trace(int layer_index, const char *layer_name, const int64_t *values, int n)
{
    (void)layer_name;
    write_record(layer_index, values, n);
}
#endif

int main(int argc, char **argv)
{
    FILE *in;
    long bytes;
    long vectors;
    long v;
    int i;
    /* static: an image model's vectors (megabytes) would overflow the stack */
    static int64_t raw[HWPRUNE_MODEL_INPUT_SIZE];
    static int64_t result[HWPRUNE_MODEL_OUTPUT_SIZE];
    static hwprune_model_input_t input[HWPRUNE_MODEL_INPUT_SIZE];
    static hwprune_model_output_t output[HWPRUNE_MODEL_OUTPUT_SIZE];
    const long vector_bytes = (long)sizeof raw;

    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT OUTPUT\n", argv[0]);
        return 1;
    }
    in = fopen(argv[1], "rb");
    hwprune_out = fopen(argv[2], "wb");
    if (!in || !hwprune_out) {
        fprintf(stderr, "driver: cannot open %s\n", in ? argv[2] : argv[1]);
        return 1;
    }
    if (fseek(in, 0, SEEK_END) != 0 || (bytes = ftell(in)) < 0 || fseek(in, 0, SEEK_SET) != 0 ||
        bytes % vector_bytes != 0) {
        fprintf(stderr, "driver: %s is not a whole number of %ld-byte input vectors\n", argv[1], vector_bytes);
        return 1;
    }
    vectors = bytes / vector_bytes;
    for (v = 0; v < vectors; ++v) {
        if (fread(raw, sizeof raw[0], HWPRUNE_MODEL_INPUT_SIZE, in) != HWPRUNE_MODEL_INPUT_SIZE) {
            fprintf(stderr, "driver: short read in %s\n", argv[1]);
            return 1;
        }
        for (i = 0; i < HWPRUNE_MODEL_INPUT_SIZE; ++i) {
            input[i] = (hwprune_model_input_t)raw[i];
            if ((int64_t)input[i] != raw[i]) {
                fprintf(stderr, "driver: vector %ld element %d: %lld does not fit the input type\n", v, i,
                        (long long)raw[i]);
                return 3;
            }
        }
        if (hwprune_model_predict(input, output) != 0) {
            fprintf(stderr, "driver: predict failed on vector %ld\n", v);
            return 4;
        }
        for (i = 0; i < HWPRUNE_MODEL_OUTPUT_SIZE; ++i) {
            result[i] = (int64_t)output[i];
        }
        write_record(-1, result, HWPRUNE_MODEL_OUTPUT_SIZE);
    }
    fclose(in);
    if (fclose(hwprune_out) != 0) {
        fprintf(stderr, "driver: cannot close the output file\n");
        return 1;
    }
    return 0;
}
