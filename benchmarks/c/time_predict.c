/* Times <model>_predict on the host: argv[1] = repetitions; prints nanoseconds per call.
 * Built by benchmarks/formats.py against an export's model.c (HWPRUNE_DRIVER names). */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model.h"

static hwprune_model_input_t input[HWPRUNE_MODEL_INPUT_SIZE];
static hwprune_model_output_t output[HWPRUNE_MODEL_OUTPUT_SIZE];

int main(int argc, char **argv)
{
    long reps = argc > 1 ? atol(argv[1]) : 10000;
    long r;
    int i;
    long checksum = 0;
    struct timespec start, end;
    for (i = 0; i < HWPRUNE_MODEL_INPUT_SIZE; ++i) {
        input[i] = (hwprune_model_input_t)((i * 37 + 11) % 100);
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (r = 0; r < reps; ++r) {
        input[r % HWPRUNE_MODEL_INPUT_SIZE] ^= 1; /* keep the compiler from hoisting the call */
        hwprune_model_predict(input, output);
        checksum += output[0];
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f %ld\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / reps, checksum);
    return 0;
}
