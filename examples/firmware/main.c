/*
 * main.c - a minimal firmware main loop around a model exported with `--name digits`.
 *
 * Reads float input vectors (DIGITS_INPUT_SIZE numbers each, whitespace-separated) from
 * stdin, as a sensor driver would hand them over, and prints the predicted class of each
 * with its logits. On a microcontroller, replace the scanf loop with your sensor reads and
 * the printf with whatever the application does with the class.
 *
 * Build on the host (see README.md in this folder):
 *     cc -std=c99 -Wall -Wextra -O2 -I digits_c/c main.c digits_c/c/model.c -o classify
 *     ./classify < inputs.txt
 */
#include <stdio.h>

#include "model.h"

int main(void)
{
    float x[DIGITS_INPUT_SIZE];   /* sensor values, in the units the model was trained on */
    float logits[DIGITS_OUTPUT_SIZE];
    digits_input_t input[DIGITS_INPUT_SIZE];
    digits_output_t output[DIGITS_OUTPUT_SIZE];
    int i;
    int vector = 0;

    for (;;) {
        for (i = 0; i < DIGITS_INPUT_SIZE; ++i) {
            if (scanf("%f", &x[i]) != 1) {
                return i == 0 ? 0 : 1; /* 0 at a clean end of input, 1 mid-vector */
            }
        }
        /* Round and saturate exactly as the model's reference does; a nonzero count
         * means some values were outside the range the model was calibrated for. */
        if (digits_quantize_input(x, input) != 0) {
            fprintf(stderr, "vector %d: inputs outside the model's input range were clamped\n", vector);
        }
        digits_predict(input, output);
        digits_dequantize_output(output, logits);
        printf("vector %d: class %d (logit %.4f)\n", vector, digits_argmax(output),
               (double)logits[digits_argmax(output)]);
        ++vector;
    }
}
