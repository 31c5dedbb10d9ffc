/*
 * harness.c - hwprune's emulator harness for an exported model (copied verbatim).
 *
 * The emulator writes a vector into hwprune_mcu_input, calls hwprune_mcu_infer() with a
 * sentinel return address and reads hwprune_mcu_output. In a traced build
 * (-DHWPRUNE_TRACE) every layer's output is appended to hwprune_mcu_trace as int64 records
 *     tag, n, n values
 * (tag = layer index), the same records the host driver writes to its file.
 * HWPRUNE_MCU_TRACE_WORDS (the records of one inference) is set by the build.
 * The buffers live in .hwprune_io so that the model's RAM is counted without them.
 */
#define HWPRUNE_DRIVER
#include "model.h"

#define HWPRUNE_IO __attribute__((section(".hwprune_io"), used))

HWPRUNE_IO hwprune_model_input_t hwprune_mcu_input[HWPRUNE_MODEL_INPUT_SIZE];
HWPRUNE_IO hwprune_model_output_t hwprune_mcu_output[HWPRUNE_MODEL_OUTPUT_SIZE];

/* Not inlined into main(): the emulator calls it by its symbol. */
__attribute__((noinline, used)) int hwprune_mcu_infer(void);

#ifdef HWPRUNE_TRACE
HWPRUNE_IO int64_t hwprune_mcu_trace[HWPRUNE_MCU_TRACE_WORDS];
HWPRUNE_IO int32_t hwprune_mcu_trace_used;

void hwprune_trace(int layer_index, const char *layer_name, const int64_t *values, int n)
{
    int i;
    (void)layer_name;
    /* Overflow is reported by the count, never written past the buffer. */
    if (hwprune_mcu_trace_used + 2 + n > HWPRUNE_MCU_TRACE_WORDS) {
        hwprune_mcu_trace_used = HWPRUNE_MCU_TRACE_WORDS + 1;
        return;
    }
    hwprune_mcu_trace[hwprune_mcu_trace_used++] = layer_index;
    hwprune_mcu_trace[hwprune_mcu_trace_used++] = n;
    for (i = 0; i < n; ++i) {
        hwprune_mcu_trace[hwprune_mcu_trace_used++] = values[i];
    }
}
#endif

int hwprune_mcu_infer(void)
{
#ifdef HWPRUNE_TRACE
    hwprune_mcu_trace_used = 0;
#endif
    return hwprune_model_predict(hwprune_mcu_input, hwprune_mcu_output);
}

int main(void)
{
    /* On a board: one inference on whatever the input buffer holds, then stop. */
    return hwprune_mcu_infer();
}
