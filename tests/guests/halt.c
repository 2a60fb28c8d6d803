/* halt.elf: a contained failure. CLI; HLT with nothing pending: nothing can
 * ever wake the guest, so our hypervisor stops the VM ("halted forever").
 * On QEMU the machine just sits there (the test's timeout ends it). */
#include "guest.h"

void guest_main(void) {
    guest_init("halt");
    printf("halt: CLI; HLT with nothing pending: expect \"halted forever\"\n");
    __asm__ volatile("cli; hlt" ::: "memory");
    fail_stop("woke up from CLI; HLT");
}
