/* What every L1 here needs before its first case, shared by l1.elf (l1.c and
 * the area files) and the other L1 guests (snapfuzz.c): what the capability
 * MSRs say (read once, without checks: l1.c's test_discovery checks them),
 * L1's paging and GDT, VMXON, a fresh VMCS for L2 and running L2, L1's EPT.
 * Declared in l1.h. */
#include "guest.h"
#include "vmx.h"
#include "l1.h"

/* ---- memory: every VMXON/VMCS region and bitmap is a 4-KiB-aligned page of .bss --- */
u8 vmxon_region[4096] ALIGNED(4096);
u8 vmcs_a[4096] ALIGNED(4096);
u8 vmcs_b[4096] ALIGNED(4096);
u8 vmcs_l2[4096] ALIGNED(4096);
u8 io_bitmap_a[4096] ALIGNED(4096);
u8 io_bitmap_b[4096] ALIGNED(4096);
u8 msr_bitmap[4096] ALIGNED(4096);
u32 pd[1024] ALIGNED(4096);     /* L1's (and L2's) page directory: 4 MiB pages */
u32 pd_alt[1024] ALIGNED(4096); /* the same mappings at another address (HOST_CR3 check) */
u8 l2_stack[4096] ALIGNED(16);
u64 l1_gdt[10] ALIGNED(8);

struct idt_gate l2_idt[0x41] ALIGNED(8); /* exceptions, and vector 40H */

/* ---- what the capability MSRs say ------------------------------------------------- */
struct l1_caps cap;

bool vmx_cpuid, in_root, l2_launched;
u32 cr0_vmx, cr4_vmx; /* CR0/CR4 with the bits VMX operation fixes */

bool msr_exists(u32 msr, u64 *v) { return try_rdmsr(msr, v) == NO_EXC; }

/* Fill cap from the capability MSRs (SDM 23.6, Vol. 3D Appendix A): the
 * TRUE_* control MSRs replace the plain ones when VMX_BASIC bit 55 says they
 * exist; IA32_FEATURE_CONTROL is locked with "VMX outside SMX" if a BIOS left
 * it unlocked (OVMF does; SDM 23.7); cr0_vmx/cr4_vmx get the bits VMX
 * operation fixes. False when there is no VMX or an MSR every VMX processor
 * has is missing (cap.missing). */
bool caps_read(void) {
    vmx_cpuid = cpuid(1, 0).ecx & (1u << 5);
    if (!vmx_cpuid) return false;
    u32 ext = cpuid(0x80000000, 0).eax;
    cap.maxphy = ext >= 0x80000008 ? (cpuid(0x80000008, 0).eax & 0xFF) : 36;
    u64 fc = 0;
    if (try_rdmsr(MSR_FEATURE_CONTROL, &fc) == NO_EXC && !(fc & FC_LOCK)) {
        diag("IA32_FEATURE_CONTROL 0x%llx unlocked: setting lock and VMX outside SMX", fc);
        try_wrmsr(MSR_FEATURE_CONTROL, fc | FC_LOCK | FC_VMX_OUTSIDE_SMX);
    }
    static const u32 always[] = { MSR_VMX_BASIC, MSR_VMX_PINBASED, MSR_VMX_PROCBASED, MSR_VMX_EXIT, MSR_VMX_ENTRY,
                                  MSR_VMX_MISC, MSR_VMX_CR0_FIXED0, MSR_VMX_CR0_FIXED1, MSR_VMX_CR4_FIXED0,
                                  MSR_VMX_CR4_FIXED1, MSR_VMX_VMCS_ENUM };
    u64 *dst[] = { &cap.basic, &cap.pin, &cap.proc, &cap.exit, &cap.entry, &cap.misc, &cap.cr0f0, &cap.cr0f1,
                   &cap.cr4f0, &cap.cr4f1, &cap.vmcs_enum };
    cap.missing = 0;
    for (u32 i = 0; i < sizeof always / sizeof always[0]; i++) {
        if (!msr_exists(always[i], dst[i]) && !cap.missing) cap.missing = always[i];
    }
    cap.read_ok = !cap.missing;
    if (!cap.read_ok) return false;
    cap.rev = BASIC_REVISION(cap.basic);
    cap.true_ctls = cap.basic & BASIC_TRUE_CTLS;
    if (cap.true_ctls) {
        msr_exists(MSR_VMX_TRUE_PINBASED, &cap.pin);
        msr_exists(MSR_VMX_TRUE_PROCBASED, &cap.proc);
        msr_exists(MSR_VMX_TRUE_EXIT, &cap.exit);
        msr_exists(MSR_VMX_TRUE_ENTRY, &cap.entry);
    }
    cap.has_proc2 = msr_exists(MSR_VMX_PROCBASED2, &cap.proc2);
    if (!cap.has_proc2) cap.proc2 = 0;
    cap.has_ept_vpid = msr_exists(MSR_VMX_EPT_VPID_CAP, &cap.ept_vpid);
    if (!cap.has_ept_vpid) cap.ept_vpid = 0;
    cr0_vmx = (read_cr0() | (u32)cap.cr0f0) & (u32)cap.cr0f1;
    cr4_vmx = (read_cr4() | (u32)cap.cr4f0) & (u32)cap.cr4f1;
    return true;
}

u32 allowed1(u64 c) { return (u32)(c >> 32); }
/* The value of a control word: what is wanted plus what must be 1, and
 * false if something wanted may not be 1 (SDM A.3-A.5). */
bool ctl_value(u64 c, u32 want, u32 *out) {
    *out = (want | (u32)c) & allowed1(c);
    return (want & ~allowed1(c)) == 0;
}

/* ---- small helpers ---------------------------------------------------------------- */
const char *out_str(u32 o) {
    static char buf[48];
    if (o == VM_FAIL_VALID) {
        snprintf(buf, sizeof buf, "VMfailValid error %u", vm_error());
        return buf;
    }
    return vm_str(o);
}

bool fail_valid(u32 o, u32 err) { return o == VM_FAIL_VALID && vm_error() == err; }

void init_region(u8 *r, u32 rev) {
    memset(r, 0, 4096);
    *(volatile u32 *)r = rev;
}

bool enter_root(void) {
    if (in_root) return true;
    init_region(vmxon_region, cap.rev);
    write_cr0(cr0_vmx);
    if (try_write_cr4(cr4_vmx) != NO_EXC) return false;
    in_root = vmxon(PA(vmxon_region)) == VM_OK;
    return in_root;
}

/* For a case that needs VMX root operation: reports the case as failed if
 * we are not (and cannot get) there. */
bool need_root(const char *name) {
    if (enter_root()) return true;
    check(false, "%s|not in VMX root operation", name);
    return false;
}

/* Make region r (with a valid revision) the current VMCS, launch state clear. */
bool make_current(u8 *r) {
    init_region(r, cap.rev);
    return vmclear(PA(r)) == VM_OK && vmptrld(PA(r)) == VM_OK;
}


/* ---- L1's own environment: paging and a GDT with a few more segments --------------- */
void setup_l1(void) {
    for (u32 i = 0; i < 1024; i++) pd[i] = (i << 22) | 0x87; /* P, RW, US, PS: 4 MiB, identity */
    pd[HOLE >> 22] = 0;
    memcpy(pd_alt, pd, sizeof pd);
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((u32)(uintptr_t)pd);
    write_cr0(read_cr0() | CR0_PG | CR0_NE);

    for (int i = 0; i < 6; i++) l1_gdt[i] = gdt[i]; /* null, code, data, user code/data, TSS */
    l1_gdt[SEL_FLAT2 >> 3] = 0x00CF92000000FFFFull;
    l1_gdt[SEL_BASED >> 3] = 0x00CF92010000FFFFull; /* base 0x00010000, limit 4 GiB */
    l1_gdt[SEL_SMALL >> 3] = 0x0040920000000FFFull; /* base 0, limit 0xFFF, byte granular */
    struct __attribute__((packed)) { u16 limit; u32 base; } d = { sizeof l1_gdt - 1, (u32)(uintptr_t)l1_gdt };
    __asm__ volatile("lgdt %0" ::"m"(d));

    for (int v = 0; v < 0x41; v++) {
        u32 h = v < 32 ? l2_exc_table[v] : v == L1_TIMER_VECTOR ? ADDR(l2_irq40) : 0;
        l2_idt[v] = (struct idt_gate){ (u16)h, SEL_KCODE, 0, h ? 0x8E : 0, (u16)(h >> 16) };
    }
}


/* ======================================================================================
 * A VMCS for L2 (SDM 24.4-24.8, checked per 26.2-26.3)
 * ====================================================================================== */
struct l2regs regs;
struct exitinfo ex;
u32 last_run; /* what vmx_run returned */
u32 last_exc; /* the exception the VM-entry instruction raised (NO_EXC if none) */
u32 vmcs_ctl_pin, vmcs_ctl_proc, vmcs_ctl_proc2, vmcs_ctl_exit, vmcs_ctl_entry;

/* Build a fresh, valid VMCS in vmcs_l2 (current, launch state clear): the
 * controls L1 wants plus those the MSRs force, host state = L1 as it is
 * now, guest state = L2 in L1's address space at l2_vmcall. */
bool l2_setup_ex(u32 pin_want, u32 proc_want, u32 proc2_want, u32 exit_want, const char *name) {
    if (!need_root(name)) return false;
    l2_launched = false;
    if (!make_current(vmcs_l2)) {
        check(false, "%s|VMCLEAR/VMPTRLD failed", name);
        return false;
    }
    bool ok = ctl_value(cap.pin, pin_want, &vmcs_ctl_pin) && ctl_value(cap.exit, exit_want, &vmcs_ctl_exit) &&
              ctl_value(cap.entry, 0, &vmcs_ctl_entry) &&
              ctl_value(cap.proc, proc_want | (proc2_want ? PROC_SECONDARY : 0), &vmcs_ctl_proc);
    vmcs_ctl_proc2 = 0;
    if (ok && proc2_want) ok = ctl_value(cap.proc2, proc2_want, &vmcs_ctl_proc2);
    if (!ok) {
        skip("not offered", "%s", name);
        return false;
    }
    vmcs_errors = 0;
    vw(F_PIN_CTLS, vmcs_ctl_pin);
    vw(F_PROC_CTLS, vmcs_ctl_proc);
    if (vmcs_ctl_proc & PROC_SECONDARY) vw(F_PROC2_CTLS, vmcs_ctl_proc2);
    vw(F_EXIT_CTLS, vmcs_ctl_exit);
    vw(F_ENTRY_CTLS, vmcs_ctl_entry);
    vw(F_EXCEPTION_BITMAP, 0);
    vw(F_PF_ERR_MASK, 0);
    vw(F_PF_ERR_MATCH, 0);
    vw(F_CR3_TARGET_COUNT, 0);
    vw(F_EXIT_MSR_STORE_COUNT, 0);
    vw(F_EXIT_MSR_LOAD_COUNT, 0);
    vw(F_ENTRY_MSR_LOAD_COUNT, 0);
    vw(F_ENTRY_INTR_INFO, 0);
    vw(F_CR0_MASK, 0);
    vw(F_CR4_MASK, 0);
    vw(F_CR0_SHADOW, 0);
    vw(F_CR4_SHADOW, 0);
    vw64(F_IO_BITMAP_A, PA(io_bitmap_a));
    vw64(F_IO_BITMAP_B, PA(io_bitmap_b));
    vw64(F_MSR_BITMAP, PA(msr_bitmap));
    vw64(F_TSC_OFFSET, 0);

    struct __attribute__((packed)) { u16 limit; u32 base; } idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    vw(F_HOST_CR0, read_cr0());
    vw(F_HOST_CR3, read_cr3());
    vw(F_HOST_CR4, read_cr4());
    vw(F_HOST_CS_SEL, SEL_KCODE);
    vw(F_HOST_SS_SEL, SEL_KDATA);
    vw(F_HOST_DS_SEL, SEL_KDATA);
    vw(F_HOST_ES_SEL, SEL_KDATA);
    vw(F_HOST_FS_SEL, SEL_KDATA);
    vw(F_HOST_GS_SEL, SEL_KDATA);
    vw(F_HOST_TR_SEL, SEL_TSS);
    vw(F_HOST_FS_BASE, 0);
    vw(F_HOST_GS_BASE, 0);
    vw(F_HOST_TR_BASE, (u32)(uintptr_t)tss);
    vw(F_HOST_GDTR_BASE, (u32)(uintptr_t)l1_gdt);
    vw(F_HOST_IDTR_BASE, idtr.base);
    vw(F_HOST_SYSENTER_CS, 0);
    vw(F_HOST_SYSENTER_ESP, 0);
    vw(F_HOST_SYSENTER_EIP, 0);

    vw(F_GUEST_CR0, read_cr0());
    vw(F_GUEST_CR3, read_cr3());
    vw(F_GUEST_CR4, read_cr4());
    vw(F_GUEST_DR7, 0x400);
    static const u32 dsegs[] = { F_GUEST_ES_SEL, F_GUEST_SS_SEL, F_GUEST_DS_SEL, F_GUEST_FS_SEL, F_GUEST_GS_SEL };
    for (int i = 0; i < 5; i++) {
        u32 s = dsegs[i], idx = s - F_GUEST_ES_SEL; /* 0, 4, 6, 8, 10: same index in each group */
        vw(s, SEL_KDATA);
        vw(F_GUEST_ES_BASE + idx, 0);
        vw(F_GUEST_ES_LIMIT + idx, 0xFFFFFFFF);
        vw(F_GUEST_ES_AR + idx, AR_DATA32);
    }
    vw(F_GUEST_CS_SEL, SEL_KCODE);
    vw(F_GUEST_CS_BASE, 0);
    vw(F_GUEST_CS_LIMIT, 0xFFFFFFFF);
    vw(F_GUEST_CS_AR, AR_CODE32);
    vw(F_GUEST_LDTR_SEL, 0);
    vw(F_GUEST_LDTR_BASE, 0);
    vw(F_GUEST_LDTR_LIMIT, 0);
    vw(F_GUEST_LDTR_AR, AR_UNUSABLE);
    vw(F_GUEST_TR_SEL, SEL_TSS);
    vw(F_GUEST_TR_BASE, (u32)(uintptr_t)tss);
    vw(F_GUEST_TR_LIMIT, 0x67);
    vw(F_GUEST_TR_AR, AR_TSS32_BUSY);
    vw(F_GUEST_GDTR_BASE, (u32)(uintptr_t)l1_gdt);
    vw(F_GUEST_GDTR_LIMIT, sizeof l1_gdt - 1);
    vw(F_GUEST_IDTR_BASE, (u32)(uintptr_t)l2_idt);
    vw(F_GUEST_IDTR_LIMIT, sizeof l2_idt - 1);
    vw(F_GUEST_RSP, L2_STACK_TOP);
    vw(F_GUEST_RIP, (u32)(uintptr_t)l2_vmcall);
    vw(F_GUEST_RFLAGS, 0x2);
    vw(F_GUEST_PENDING_DBG, 0);
    vw(F_GUEST_INTERRUPTIBILITY, 0);
    vw(F_GUEST_ACTIVITY, 0);
    vw(F_GUEST_SYSENTER_CS, 0);
    vw(F_GUEST_SYSENTER_ESP, 0);
    vw(F_GUEST_SYSENTER_EIP, 0);
    vw64(F_VMCS_LINK_PTR, ~0ull);
    vw64(F_GUEST_DEBUGCTL, 0);
    if (vmcs_errors) {
        check(false, "%s|VMCS set-up: %u VMWRITEs failed, first 0x%x: %s", name, vmcs_errors, vmcs_error_field,
              vm_str(vmcs_error_outcome));
        return false;
    }
    memset(&regs, 0, sizeof regs);
    memset((void *)&l2_seen, 0, sizeof l2_seen);
    return true;
}

bool l2_setup(u32 proc_want, u32 proc2_want, const char *name) {
    return l2_setup_ex(0, proc_want, proc2_want, 0, name);
}

const char *run_str(void) {
    static char buf[96];
    if (last_run == 0) {
        snprintf(buf, sizeof buf, "exit reason 0x%x qual 0x%x len %u info 0x%x intr 0x%x rip 0x%x", ex.reason, ex.qual,
                 ex.len, ex.info, ex.intr, ex.rip);
    } else if (last_run == NOT_RESUMED) {
        snprintf(buf, sizeof buf, "not resumed: no VM exit to resume after");
    } else if (last_run == 0xC0000000u) {
        snprintf(buf, sizeof buf, "VMWRITE of HOST_RSP/RIP raised vector %d", (i32)last_exc);
    } else if (last_exc != NO_EXC) {
        snprintf(buf, sizeof buf, "VM entry instruction raised vector %d", (i32)last_exc);
    } else if (last_run & FL_ZF) {
        snprintf(buf, sizeof buf, "VMfailValid error %u", vm_error());
    } else {
        snprintf(buf, sizeof buf, "VM entry instruction fell through, flags 0x%x", last_run & 0xFFFF);
    }
    return buf;
}

/* Enter L2 at rip (0: where GUEST_RIP points), with VMLAUNCH or VMRESUME as
 * the launch state requires; true when a VM exit (or an entry failure that
 * loads host state) came back, with its information in ex. */
bool l2_run_at(u32 rip, u32 launch) {
    vmcs_errors = 0;
    if (rip) {
        vw(F_GUEST_RIP, rip);
        vw(F_GUEST_RSP, L2_STACK_TOP);
    }
    last_run = vmx_run(&regs, launch);
    last_exc = exc.vector;
    memset(&ex, 0, sizeof ex);
    if (last_run != 0) return false;
    ex.reason = vr(F_EXIT_REASON);
    ex.qual = vr(F_EXIT_QUALIFICATION);
    ex.len = vr(F_EXIT_INSN_LEN);
    ex.info = vr(F_EXIT_INSN_INFO);
    ex.intr = vr(F_EXIT_INTR_INFO);
    ex.intr_err = vr(F_EXIT_INTR_ERROR);
    ex.idt_vec = vr(F_IDT_VECTORING_INFO);
    ex.rip = vr(F_GUEST_RIP);
    if (!(ex.reason & EXIT_FAILED_ENTRY)) l2_launched = true;
    return true;
}
bool l2_run(u32 rip) { return l2_run_at(rip, !l2_launched); }
/* Resume L2 after the instruction that exited. Only after an exit: without
 * one there is no instruction length to go by, and nothing is run. */
bool l2_resume_after_insn(void) {
    if (last_run != 0 || !l2_launched || (ex.reason & EXIT_FAILED_ENTRY)) {
        last_run = NOT_RESUMED;
        return false;
    }
    vw(F_GUEST_RIP, vr(F_GUEST_RIP) + vr(F_EXIT_INSN_LEN));
    return l2_run_at(0, !l2_launched);
}
bool exit_is(u32 reason) { return last_run == 0 && ex.reason == reason; }
bool vmcall_at(const char *label, u32 off) { return exit_is(EXIT_VMCALL) && ex.rip == ADDR(label) + off; }

/* ======================================================================================
 * L1's EPT for L2 (SDM 29.3, 28.2.1 Table 28-7, 31.3 INVEPT): L1's tables map its
 * first 32 MiB one to one with 2-MByte pages, except the 2 MiB around ept_page, which
 * a page table maps with 4-KByte pages so that single pages can change.
 * ====================================================================================== */
u64 ept_pml4[512] ALIGNED(4096);
u64 ept_pdpt[512] ALIGNED(4096);
u64 ept_pd[512] ALIGNED(4096);
u64 ept_pt[512] ALIGNED(4096);
u8 ept_page[4096] ALIGNED(4096);  /* the page whose mapping the cases change */
u8 ept_alt[4096] ALIGNED(4096);   /* another page to map at ept_page's address */

u32 ept_pt_index(void) { return (PA(ept_page) >> 12) & 511; }

void ept_build(void) {
    memset(ept_pml4, 0, sizeof ept_pml4);
    memset(ept_pdpt, 0, sizeof ept_pdpt);
    ept_pml4[0] = PA(ept_pdpt) | EPT_RWX;
    ept_pdpt[0] = PA(ept_pd) | EPT_RWX;
    for (u32 i = 0; i < 512; i++) ept_pd[i] = i < 16 ? ((u64)i << 21) | EPT_RWX | EPT_WB | EPT_LARGE : 0;
    u32 big = PA(ept_page) >> 21;
    for (u32 i = 0; i < 512; i++) ept_pt[i] = ((u64)big << 21) + ((u64)i << 12) | EPT_RWX | EPT_WB;
    ept_pd[big] = PA(ept_pt) | EPT_RWX;
}

void ept_set(u64 entry) { ept_pt[ept_pt_index()] = entry; }

u32 invept_single(void) {
    static u64 desc[2] ALIGNED(16);
    desc[0] = PA(ept_pml4) | (3 << 3) | 6;
    desc[1] = 0;
    return invept(1, desc);
}

bool ept_offered(void) {
    return (allowed1(cap.proc2) & PROC2_EPT) && (cap.ept_vpid & (1ull << 6)) && (cap.ept_vpid & (1ull << 14)) &&
           (cap.ept_vpid & (1ull << 16)) && (cap.ept_vpid & EPTCAP_INVEPT_SINGLE);
}

bool ept_exit(u32 reason, u32 access, u32 perms) {
    return exit_is(reason) && (reason != EXIT_EPT_VIOLATION || ((ex.qual & 7) == access && ((ex.qual >> 3) & 7) == perms));
}

/* ======================================================================================
 * The end
 * ====================================================================================== */
/* The end of an L1 guest: leave VMX operation, print the result, and end
 * through isa-debug-exit (our hypervisor, QEMU) or, on bare Bochs, the magic
 * breakpoint (pass) / port 8900H "Shutdown" (fail). */
NORETURN void l1_end(void) {
    if (in_root) {
        vmclear(PA(vmcs_l2));
        vmxoff();
    }
    finish_result();
    u32 code = tap_failed() ? 1 : 0;
    outl(0xF4, code); /* isa-debug-exit: our hypervisor (and QEMU) end the guest here */
    if (!under_hv()) {
        /* Bare Bochs has no isa-debug-exit: the magic breakpoint (xchg bx,bx,
         * Bochs exits 0 with magic_break enabled) for PASS, port 8900H
         * "Shutdown" (status 1) for FAIL (platform.md). */
        if (!code) __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
        for (const char *s = "Shutdown"; *s; s++) outb(0x8900, (u8)*s);
    }
    halt_forever();
}
