/*
 * Test driver for a model's generated firmware helpers (test_firmware_helpers.py).
 *
 *   helpers IN OUT
 *       IN: float32 vectors of HWPRUNE_MODEL_INPUT_SIZE values. OUT, per vector, all int64
 *       but the floats: the quantized inputs, the count quantize_input returned, the
 *       outputs of predict, dequantize_output's floats (float32), argmax.
 * The model's name reaches this file as -DMODEL=<name> (default sensor).
 */
#define HWPRUNE_DRIVER
#include "model.h"

#include <stdio.h>

#ifndef MODEL
#define MODEL sensor
#endif
#define JOIN_(a, b) a##b
#define JOIN(a, b) JOIN_(a, b)
#define FN(suffix) JOIN(MODEL, suffix)

int main(int argc, char **argv)
{
    FILE *in;
    FILE *out;
    float x[HWPRUNE_MODEL_INPUT_SIZE];
    float y_float[HWPRUNE_MODEL_OUTPUT_SIZE];
    hwprune_model_input_t q[HWPRUNE_MODEL_INPUT_SIZE];
    hwprune_model_output_t y[HWPRUNE_MODEL_OUTPUT_SIZE];
    int64_t wide[HWPRUNE_MODEL_INPUT_SIZE > HWPRUNE_MODEL_OUTPUT_SIZE ? HWPRUNE_MODEL_INPUT_SIZE
                                                                      : HWPRUNE_MODEL_OUTPUT_SIZE];
    int64_t scalar;
    int i;
    if (argc != 3 || !(in = fopen(argv[1], "rb")) || !(out = fopen(argv[2], "wb"))) {
        fprintf(stderr, "usage: helpers IN OUT\n");
        return 1;
    }
    while (fread(x, sizeof x, 1, in) == 1) {
        scalar = FN(_quantize_input)(x, q);
        for (i = 0; i < HWPRUNE_MODEL_INPUT_SIZE; ++i) {
            wide[i] = (int64_t)q[i];
        }
        fwrite(wide, sizeof wide[0], HWPRUNE_MODEL_INPUT_SIZE, out);
        fwrite(&scalar, sizeof scalar, 1, out);
        if (hwprune_model_predict(q, y) != 0) {
            return 2;
        }
        for (i = 0; i < HWPRUNE_MODEL_OUTPUT_SIZE; ++i) {
            wide[i] = (int64_t)y[i];
        }
        fwrite(wide, sizeof wide[0], HWPRUNE_MODEL_OUTPUT_SIZE, out);
        FN(_dequantize_output)(y, y_float);
        fwrite(y_float, sizeof y_float[0], HWPRUNE_MODEL_OUTPUT_SIZE, out);
        scalar = FN(_argmax)(y);
        fwrite(&scalar, sizeof scalar, 1, out);
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : 1;
}
