/* Start-up shared by all guests, and hypervisor detection. */
#include "guest.h"

struct entry_state entry;
u32 hv_base;
const char *guest_name = "guest";

/* Our leaves: EBX:ECX:EDX = "ASHypervisor" at 0x40000000, or at 0x40000100
 * once a Hyper-V-compatible interface takes the first range. Looked for
 * whatever CPUID.1:ECX.HYPERVISOR says (the suite checks that bit itself). */
u32 hv_detect(void) {
    static const u32 bases[2] = { 0x40000000u, 0x40000100u };
    hv_base = 0;
    for (int i = 0; i < 2; i++) {
        struct cpuid r = cpuid(bases[i], 0);
        char sig[13];
        memcpy(sig, &r.ebx, 4);
        memcpy(sig + 4, &r.ecx, 4);
        memcpy(sig + 8, &r.edx, 4);
        sig[12] = 0;
        if (!strcmp(sig, "ASHypervisor") && r.eax >= bases[i] + 1) {
            hv_base = bases[i];
            break;
        }
    }
    return hv_base;
}

void guest_init(const char *name) {
    guest_name = name;
    hv_detect();
    con_init();
    idt_init();
    mb_parse(entry.eax, entry.ebx);
    tap_verbose = has_word(boot.cmdline, "verbose");
}

_Static_assert(offsetof(struct entry_state, tsc) == 68, "start.asm stores the entry TSC at offset 68");
