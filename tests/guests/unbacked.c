/* unbacked.elf: a contained failure. With paging off, writes to
 * guest-physical 0xC0000000: far beyond any RAM size the tests give a guest
 * and not the local APIC page. Under our hypervisor that is an EPT violation:
 * the VM stops with the address and the access type (write). On QEMU the
 * write goes to unassigned memory and the guest carries on (and says so). */
#include "guest.h"

#define UNBACKED 0xC0000000u

void guest_main(void) {
    guest_init("unbacked");
    printf("unbacked: writing 0x1 to guest-physical 0x%x (paging off): expect an EPT violation (write)\n", UNBACKED);
    mmio_write32(UNBACKED, 1);
    u32 back = mmio_read32(UNBACKED);
    fail_stop("still running after the write to 0x%x (reads back 0x%x)", UNBACKED, back);
}
