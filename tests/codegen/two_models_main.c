/*
 * Two exported models in one program (test_firmware_helpers.py): a/ exported with
 * --name a, b/ with --name b. Reads A_INPUT_SIZE then B_INPUT_SIZE float32 values from
 * the file given, prints each model's integer outputs on a line of its own.
 */
#include <stdio.h>

#include "a/model.h"
#include "b/model.h"

int main(int argc, char **argv)
{
    FILE *in;
    float xa[A_INPUT_SIZE];
    float xb[B_INPUT_SIZE];
    a_input_t qa[A_INPUT_SIZE];
    b_input_t qb[B_INPUT_SIZE];
    a_output_t ya[A_OUTPUT_SIZE];
    b_output_t yb[B_OUTPUT_SIZE];
    int i;
    if (argc != 2 || !(in = fopen(argv[1], "rb")) || fread(xa, sizeof xa, 1, in) != 1 ||
        fread(xb, sizeof xb, 1, in) != 1) {
        fprintf(stderr, "usage: two X.bin\n");
        return 1;
    }
    fclose(in);
    a_quantize_input(xa, qa);
    b_quantize_input(xb, qb);
    if (a_predict(qa, ya) != 0 || b_predict(qb, yb) != 0) {
        return 2;
    }
    for (i = 0; i < A_OUTPUT_SIZE; ++i) {
        printf("%s%d", i ? " " : "", (int)ya[i]);
    }
    printf("\n");
    for (i = 0; i < B_OUTPUT_SIZE; ++i) {
        printf("%s%d", i ? " " : "", (int)yb[i]);
    }
    printf("\n");
    return 0;
}
