/* Ending a run. The final console line always names the status; then the
 * machine stops in the way the platform understands:
 *  - QEMU (CPUID hypervisor signature "TCGTCGTCGTCG" or "KVMKVMKVM") or this
 *    hypervisor as the parent ("ASHypervisor": the image running as an L1
 *    guest): the isa-debug-exit device at port 0xF4 (the parent ends with
 *    status*2+1; without the device the write is ignored);
 *  - Bochs (port 0xE9 hack present, no hypervisor signature): a magic
 *    breakpoint (xchg bx,bx) for success, which the harness's debugger rc
 *    file turns into exit status 0, or the 0x8900 "Shutdown" port otherwise;
 *  - real hardware: interrupts off and HLT forever, leaving the console
 *    readable. */
#include "hv.h"

const char *hv_status_name(u32 status) {
    switch (status) {
    case HV_STATUS_OK: return "ok";
    case HV_STATUS_FAIL: return "fail";
    case HV_STATUS_NO_VTX: return "no-vtx";
    case HV_STATUS_VMX_LOCKED: return "vmx-locked";
    case HV_STATUS_VMX_SETUP: return "vmx-setup";
    case HV_STATUS_TRAP: return "trap";
    case HV_STATUS_EXCEPTION: return "exception";
    case HV_STATUS_BOOT: return "boot";
    }
    return "unknown";
}

static bool under_qemu(void) {
    u32 r[4];
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 31))) return false;
    cpuid(0x40000000, 0, r);
    return (r[1] == 0x54474354 && r[2] == 0x43544743 && r[3] == 0x47435447) || /* TCGTCGTCGTCG */
           (r[1] == 0x4b4d564b && r[2] == 0x564b4d56 && r[3] == 0x0000004d);   /* KVMKVMKVM */
}

/* Our own hypervisor as the parent (this image running as an L1 guest,
 * "ASHypervisor"): it offers QEMU's isa-debug-exit at port 0xF4 too. Its
 * leaves are at 40000000H, or at 40000100H when it also gives its guest the
 * Hyper-V interface (hyperv=on: "Microsoft Hv" at 40000000H). */
static bool ashv_at(u32 base) {
    u32 r[4];
    cpuid(base, 0, r);
    return r[1] == 0x79485341 && r[2] == 0x76726570 && r[3] == 0x726f7369; /* ASHypervisor */
}
static bool under_ashv(void) {
    u32 r[4];
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 31))) return false;
    return ashv_at(0x40000000) || ashv_at(0x40000100);
}

static bool exiting;

_Noreturn void hv_exit(u32 status) {
    __asm__ volatile("cli");
    if (!exiting) {
        exiting = true;
        hv_puts("hv: exit status=");
        hv_put_dec(status);
        hv_puts(" (");
        hv_puts(hv_status_name(status));
        hv_puts(")\n");
    }
    hv_console_flush();
    if (under_qemu() || under_ashv()) {
        outl(0xf4, status);
    } else if (hv_console_e9()) {
        if (status == HV_STATUS_OK) {
            __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
        } else {
            const char *s = "Shutdown";
            while (*s) outb(0x8900, (u8)*s++);
        }
    }
    for (;;) __asm__ volatile("cli; hlt");
}
