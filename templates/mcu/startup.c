/*
 * startup.c - minimal Cortex-M start-up for hwprune's firmware builds (copied verbatim).
 *
 * A vector table with the initial stack pointer and the reset handler, a reset handler
 * that copies .data from flash and zeroes .bss (the C run-time contract), then main().
 * Every other exception parks the core in a loop: the firmware has no interrupts.
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

void Reset_Handler(void);
void Default_Handler(void);

void Default_Handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    uint32_t *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; ++dst) {
        *dst = 0;
    }
    (void)main();
    for (;;) {
    }
}

/* Initial SP, reset, NMI, HardFault: enough for a core that takes no interrupts. */
__attribute__((section(".isr_vector"), used)) static void *const hwprune_vectors[4] = {
    (void *)&_estack,
    (void *)Reset_Handler,
    (void *)Default_Handler,
    (void *)Default_Handler,
};
