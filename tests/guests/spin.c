/* spin.elf: a contained failure. A loop that never exits to the hypervisor
 * (no I/O, no CPUID, interrupts off): only the VMX-preemption timer brings
 * control back, and the hypervisor stops the guest when it has used its
 * max-ticks= budget. On QEMU it spins until the test's timeout. */
#include "guest.h"

void guest_main(void) {
    guest_init("spin");
    printf("spin: looping with no exits: expect the max-ticks budget to stop it\n");
    for (volatile unsigned long n = 0;; n++) {
    }
}
