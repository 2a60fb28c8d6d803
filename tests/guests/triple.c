/* triple.elf: a contained failure. Loads an IDT with limit 0 and executes
 * INT3: the #BP cannot be delivered (#GP), neither can the #GP (#DF), nor the
 * #DF: a triple fault. Under our hypervisor the VM stops with a register dump
 * ("triple fault"); on QEMU with -no-reboot the emulator exits. */
#include "guest.h"

void guest_main(void) {
    guest_init("triple");
    printf("triple: loading an IDT with limit 0, then INT3: expect a triple fault\n");
    idt_load_null();
    __asm__ volatile("int3");
    idt_init();
    fail_stop("still running after INT3 with an empty IDT");
}
