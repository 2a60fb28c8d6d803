/* badmsr.elf: a contained failure. WRMSR to MSR 0xDEADBEEF (not emulated,
 * not passed through) raises #GP(0) in the guest; with an IDT of limit 0 it
 * cannot be delivered, so it becomes a triple fault. (On QEMU TCG, which
 * ignores writes to unknown MSRs, the guest carries on and says so.) */
#include "guest.h"

void guest_main(void) {
    guest_init("badmsr");
    printf("badmsr: WRMSR 0xdeadbeef with no IDT: expect #GP(0), then a triple fault\n");
    idt_load_null();
    wrmsr(0xDEADBEEFu, 0);
    idt_init();
    fail_stop("still running after WRMSR 0xdeadbeef");
}
