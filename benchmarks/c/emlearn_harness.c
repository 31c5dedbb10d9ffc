/*
 * emlearn_harness.c - runs an emlearn MLP (emlearn_model.h, written by emlearn's
 * convert().save(name="digits")) in hwprune's Cortex-M emulator, with the same entry
 * points as templates/mcu/harness.c: the emulator writes hwprune_mcu_input, calls
 * hwprune_mcu_infer() and reads the predicted class from hwprune_mcu_output.
 */
#include <stdint.h>

#include "emlearn_model.h"

#define HWPRUNE_IO __attribute__((section(".hwprune_io"), used))

HWPRUNE_IO float hwprune_mcu_input[EMLEARN_FEATURES];
HWPRUNE_IO int32_t hwprune_mcu_output[1];

__attribute__((noinline, used)) int hwprune_mcu_infer(void);
__attribute__((noinline, used)) void hwprune_mcu_init(void);

int hwprune_mcu_infer(void)
{
    hwprune_mcu_output[0] = digits_predict(hwprune_mcu_input, EMLEARN_FEATURES);
    return 0;
}

/* Called once before the first inference: grant access to the FPU (CPACR CP10, CP11),
 * as every float firmware's start-up does. */
void hwprune_mcu_init(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
}

int main(void)
{
    hwprune_mcu_init();
    return hwprune_mcu_infer();
}
