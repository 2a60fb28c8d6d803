/* hyperv.elf: the Hyper-V interface of a guest with hyperv=on
 * (docs/guest-interface.md "Hyper-V interface"; kernel/vm/exit/hyperv.ts), checked
 * against the Hyper-V TLFS: "Feature and Interface Discovery" (CPUID 40000000H-4000000AH),
 * "Hypercall Interface" (GUEST_OS_ID, HYPERCALL, the hypercall page, the result value),
 * "Virtual Processor Assist Page", VP_INDEX, TSC_INVARIANT_CONTROL and the APIC MSRs.
 *
 * args=hv=on: the guest has hyperv=on; every check below must hold.
 * args=hv=off: without it: this hypervisor's leaves at 40000000H as before, and every
 * Hyper-V MSR is #GP(0).
 * args=level=N: the nesting level our leaf 40000001H/40000101H EBX must give (default 1).
 *
 * 32-bit protected mode, paging off, CPL 0 (so the hypercall convention is the 32-bit
 * one: input value EDX:EAX, input GPA EBX:ECX, output GPA EDI:ESI, result EDX:EAX). */
#include "guest.h"

#define HV_MSR_GUEST_OS_ID 0x40000000u
#define HV_MSR_HYPERCALL 0x40000001u
#define HV_MSR_VP_INDEX 0x40000002u
#define HV_MSR_EOI 0x40000070u
#define HV_MSR_ICR 0x40000071u
#define HV_MSR_TPR 0x40000072u
#define HV_MSR_VP_ASSIST_PAGE 0x40000073u
#define HV_MSR_TSC_INVARIANT_CONTROL 0x40000118u

#define HV_STATUS_INVALID_HYPERCALL_CODE 2u
#define GP 13u
#define UD 6u

/* Page-aligned pages of this guest's RAM: the hypercall page, a second page with the same
 * code (a VMCALL at offset 0 that is not the hypercall page), the VP assist page. */
static u8 hcpage[4096] ALIGNED(4096);
static u8 other[4096] ALIGNED(4096);
static u8 assist[4096] ALIGNED(4096);

/* 32-bit paging with 4-MiB pages (PSE): an identity map of 4 GiB, except linear 0x80000000,
 * which maps the 4 MiB around the hypercall page: the hypercall page is then reached at a
 * linear address other than its guest-physical one. */
static u32 pse_pd[1024] ALIGNED(4096);

static bool sig_is(struct cpuid r, const char *s) {
    char b[13];
    memcpy(b, &r.ebx, 4);
    memcpy(b + 4, &r.ecx, 4);
    memcpy(b + 8, &r.edx, 4);
    b[12] = 0;
    return !strcmp(b, s);
}

/* CALL the code at `page` with EDX:EAX, EBX:ECX, EDI:ESI as given; returns EDX:EAX, and
 * ECX/EBX after the call through *c and *b. */
static u64 call_page(void *page, u64 input, u32 ebx, u32 *ecx, u32 edi, u32 esi) {
    u32 lo = (u32)input, hi = (u32)(input >> 32), c = *ecx, b = ebx;
    __asm__ volatile("call *%[p]"
                     : "+a"(lo), "+d"(hi), "+c"(c), "+b"(b), "+D"(edi), "+S"(esi)
                     : [p] "m"(page)
                     : "memory", "cc");
    *ecx = c;
    return ((u64)hi << 32) | lo;
}

static void without_hyperv(u32 level) {
    struct cpuid r = cpuid(0x40000000, 0);
    check(sig_is(r, "ASHypervisor") && r.eax == 0x40000001, "hyperv=off: our leaves at 40000000H as before|eax 0x%x",
          r.eax);
    check(hv_base == 0x40000000u, "hyperv=off: the guest library finds them there|0x%x", hv_base);
    r = cpuid(0x40000001, 0);
    check(r.eax == 2 && r.ebx == level, "hyperv=off: 40000001H = version 2, level %u|eax %u ebx %u", level, r.eax, r.ebx);
    static const u32 msrs[] = { HV_MSR_GUEST_OS_ID, HV_MSR_HYPERCALL, HV_MSR_VP_INDEX, HV_MSR_EOI, HV_MSR_ICR,
                                HV_MSR_TPR, HV_MSR_VP_ASSIST_PAGE, HV_MSR_TSC_INVARIANT_CONTROL };
    for (u32 i = 0; i < sizeof msrs / sizeof msrs[0]; i++) {
        u64 v;
        u32 rv = try_rdmsr(msrs[i], &v), wv = try_wrmsr(msrs[i], 0);
        check(rv == GP && wv == GP && exc.error == 0, "hyperv=off: RDMSR/WRMSR 0x%x #GP(0)|%u %u", msrs[i], rv, wv);
    }
    check(vmcall(HC_QUERY, 2, 0) == fwcfg_u32(0x0003), "hyperv=off: our VMCALL query works");
}

static void cpuid_leaves(u32 level) {
    check((cpuid(1, 0).ecx >> 31) & 1, "CPUID.1:ECX.HYPERVISOR set");
    struct cpuid r = cpuid(0x40000000, 0);
    check(sig_is(r, "Microsoft Hv") && r.eax == 0x4000000A, "40000000H: \"Microsoft Hv\", highest leaf 4000000AH|0x%x",
          r.eax);
    r = cpuid(0x40000001, 0);
    check(r.eax == 0x31237648u && r.ebx == 0 && r.ecx == 0 && r.edx == 0, "40000001H: \"Hv#1\"|0x%x", r.eax);
    r = cpuid(0x40000002, 0);
    check(r.eax != 0 || r.ebx != 0, "40000002H: a version|build %u, %u.%u", r.eax, r.ebx >> 16, r.ebx & 0xffff);
    /* AccessApicMsrs 4, AccessHypercallMsrs 5, AccessVpIndex 6, AccessTscInvariantControls 15,
     * nothing else (no synthetic timers 3, SynIC 2, reference counter 1, ...). */
    r = cpuid(0x40000003, 0);
    check(r.eax == ((1u << 4) | (1u << 5) | (1u << 6) | (1u << 15)) && r.ebx == 0 && r.edx == 0,
          "40000003H: privileges APIC MSRs, hypercall MSRs, VP index, TSC invariant only|eax 0x%x ebx 0x%x edx 0x%x",
          r.eax, r.ebx, r.edx);
    /* Bit 14 (use the enlightened VMCS) and 4000000AH (eVMCS version, enlightened MSR bitmap)
     * come with nested=on only (docs/guest-interface.md; evmcs.elf checks them with it): this
     * guest has no VMX, so no VM entry to enlighten. */
    r = cpuid(0x40000004, 0);
    check(!(r.eax & (1u << 14)) && r.ebx == 0xffffffffu,
          "40000004H: eVMCS not recommended (no nested=on), spinlock notify never|eax 0x%x ebx 0x%x", r.eax, r.ebx);
    r = cpuid(0x40000005, 0);
    check(r.eax >= 1, "40000005H: at least one virtual processor|%u", r.eax);
    r = cpuid(0x4000000A, 0);
    check(r.eax == 0 && r.ebx == 0, "4000000AH: no eVMCS version, no enlightened MSR bitmap (no nested=on)|0x%x", r.eax);
    r = cpuid(0x40000100, 0);
    check(sig_is(r, "ASHypervisor") && r.eax == 0x40000101, "40000100H: our own leaves moved here|0x%x", r.eax);
    check(hv_base == 0x40000100u, "the guest library finds them at 40000100H|0x%x", hv_base);
    r = cpuid(0x40000101, 0);
    check(r.eax == 2 && r.ebx == level, "40000101H: interface version 2, level %u|eax %u ebx %u", level, r.eax,
          r.ebx);
}

static void msrs(void) {
    u64 v = 1;
    u32 e;
    /* VP_INDEX: the vCPU's index, read-only. */
    e = try_rdmsr(HV_MSR_VP_INDEX, &v);
    check(e == NO_EXC && v == 0, "VP_INDEX reads 0 (the boot vCPU)|exc %u, 0x%llx", e, v);
    check(try_wrmsr(HV_MSR_VP_INDEX, 0) == GP, "VP_INDEX write #GP");
    /* VP_ASSIST_PAGE: bit 0 enable, 11:1 reserved, 63:12 the page. */
    e = try_rdmsr(HV_MSR_VP_ASSIST_PAGE, &v);
    check(e == NO_EXC && v == 0, "VP_ASSIST_PAGE reads 0 at start|0x%llx", v);
    u32 ap = (u32)(uintptr_t)assist;
    check(try_wrmsr(HV_MSR_VP_ASSIST_PAGE, ap | 1 | 2) == GP, "VP_ASSIST_PAGE with reserved bit 1: #GP");
    check(try_wrmsr(HV_MSR_VP_ASSIST_PAGE, ap | 0x800) == GP, "VP_ASSIST_PAGE with reserved bit 11: #GP");
    check(try_wrmsr(HV_MSR_VP_ASSIST_PAGE, 0xC0000000u | 1) == GP, "VP_ASSIST_PAGE enabled outside RAM: #GP");
    check(try_wrmsr(HV_MSR_VP_ASSIST_PAGE, ap | 1) == NO_EXC && try_rdmsr(HV_MSR_VP_ASSIST_PAGE, &v) == NO_EXC &&
              v == (ap | 1u), "VP_ASSIST_PAGE enabled at a RAM page reads back|0x%llx", v);
    check(try_wrmsr(HV_MSR_VP_ASSIST_PAGE, 0) == NO_EXC && try_rdmsr(HV_MSR_VP_ASSIST_PAGE, &v) == NO_EXC && v == 0,
          "VP_ASSIST_PAGE disabled again");
    /* TSC_INVARIANT_CONTROL: bit 0 exposes CPUID 80000007H EDX[8]. */
    e = try_rdmsr(HV_MSR_TSC_INVARIANT_CONTROL, &v);
    check(e == NO_EXC && v == 0, "TSC_INVARIANT_CONTROL reads 0 at start");
    check(!((cpuid(0x80000007, 0).edx >> 8) & 1), "invariant TSC hidden until TSC_INVARIANT_CONTROL bit 0");
    check(try_wrmsr(HV_MSR_TSC_INVARIANT_CONTROL, 2) == GP, "TSC_INVARIANT_CONTROL reserved bit: #GP");
    check(try_wrmsr(HV_MSR_TSC_INVARIANT_CONTROL, 1) == NO_EXC && try_rdmsr(HV_MSR_TSC_INVARIANT_CONTROL, &v) == NO_EXC &&
              v == 1, "TSC_INVARIANT_CONTROL = 1 reads back");
    diag("CPUID 80000007H EDX[8] after TSC_INVARIANT_CONTROL = 1: %u (the processor's)",
         (cpuid(0x80000007, 0).edx >> 8) & 1);
    /* The APIC MSRs: TPR is the APIC's TPR (80H), ICR its ICR (300H/310H), EOI write-only. */
    check(try_wrmsr(HV_MSR_TPR, 0x20) == NO_EXC && mmio_read32(0xFEE00080u) == 0x20, "TPR MSR writes the APIC's TPR");
    check(try_rdmsr(HV_MSR_TPR, &v) == NO_EXC && v == 0x20, "TPR MSR reads it|0x%llx", v);
    check(try_wrmsr(HV_MSR_TPR, 0x100) == GP, "TPR MSR above 8 bits: #GP");
    try_wrmsr(HV_MSR_TPR, 0);
    mmio_write32(0xFEE00310u, 0x05000000u); /* ICR high: destination 5, no IPI sent */
    check(try_rdmsr(HV_MSR_ICR, &v) == NO_EXC && (v >> 32) == 0x05000000u && (u32)v == mmio_read32(0xFEE00300u),
          "ICR MSR reads ICR high:low|0x%llx", v);
    mmio_write32(0xFEE00310u, 0);
    check(try_rdmsr(HV_MSR_EOI, &v) == GP, "EOI MSR read: #GP (write-only)");
    check(try_wrmsr(HV_MSR_EOI, 0) == NO_EXC, "EOI MSR write accepted");
}

static void hypercalls(void) {
    u64 v = 1;
    u32 hp = (u32)(uintptr_t)hcpage;
    u32 e = try_rdmsr(HV_MSR_GUEST_OS_ID, &v);
    check(e == NO_EXC && v == 0, "GUEST_OS_ID reads 0 at start");
    e = try_rdmsr(HV_MSR_HYPERCALL, &v);
    check(e == NO_EXC && v == 0, "HYPERCALL reads 0 at start");
    memset(hcpage, 0x5a, sizeof hcpage);
    /* Without a guest OS identity the enable bit stays 0 and nothing is written. */
    check(try_wrmsr(HV_MSR_HYPERCALL, hp | 1) == NO_EXC && try_rdmsr(HV_MSR_HYPERCALL, &v) == NO_EXC && v == hp &&
              hcpage[0] == 0x5a, "HYPERCALL enable without a guest OS ID stays disabled|0x%llx", v);
    const u64 os_id = 0x8100000000060100ull; /* open source, Linux-style identity */
    check(try_wrmsr(HV_MSR_GUEST_OS_ID, os_id) == NO_EXC && try_rdmsr(HV_MSR_GUEST_OS_ID, &v) == NO_EXC && v == os_id,
          "GUEST_OS_ID written and read back");
    check(try_wrmsr(HV_MSR_HYPERCALL, 0xC0000000u | 1) == GP && try_rdmsr(HV_MSR_HYPERCALL, &v) == NO_EXC && v == hp,
          "HYPERCALL page outside RAM: #GP, MSR unchanged|0x%llx", v);
    check(try_wrmsr(HV_MSR_HYPERCALL, hp | 1) == NO_EXC && try_rdmsr(HV_MSR_HYPERCALL, &v) == NO_EXC &&
              v == (hp | 1u), "HYPERCALL enabled at a RAM page|0x%llx", v);
    bool filled = hcpage[0] == 0x0f && hcpage[1] == 0x01 && hcpage[2] == 0xc1 && hcpage[3] == 0xc3;
    for (u32 i = 4; i < sizeof hcpage; i++) filled = filled && hcpage[i] == 0xcc;
    check(filled, "the hypercall page: VMCALL; RET, then INT3|%02x %02x %02x %02x %02x", hcpage[0], hcpage[1],
          hcpage[2], hcpage[3], hcpage[4]);

    /* A hypercall through the page: call code 8 (HvCallNotifyLongSpinWait), not implemented:
     * HV_STATUS_INVALID_HYPERCALL_CODE, 0 reps completed, in EDX:EAX. */
    u32 ecx = 0x1234;
    u64 res = call_page(hcpage, 0x8, 0, &ecx, 0, 0);
    check(res == HV_STATUS_INVALID_HYPERCALL_CODE && ecx == 0x1234,
          "hypercall through the page answers HV_STATUS_INVALID_HYPERCALL_CODE in EDX:EAX|0x%llx", res);
    /* Our query function's registers (EAX = 2, EBX = 2: RAM size) through the page are a
     * Hyper-V hypercall (input value 2), not our VMCALL. */
    ecx = 0;
    res = call_page(hcpage, 2, 2, &ecx, 0, 0);
    check(res == HV_STATUS_INVALID_HYPERCALL_CODE, "our function numbers through the page are Hyper-V call codes|0x%llx",
          res);
    /* The same instructions at offset 0 of another page are our VMCALL. */
    memcpy(other, hcpage, 4);
    u32 ram = fwcfg_u32(0x0003);
    ecx = 0;
    res = call_page(other, HC_QUERY, 2, &ecx, 0, 0);
    check((u32)res == ram, "VMCALL at offset 0 of another page is ours: query RAM|0x%x", (u32)res);
    check(vmcall(HC_QUERY, 2, 0) == ram, "our VMCALL anywhere else works as before");

    /* Zeroing the guest OS identity disables the page (the MSR keeps its GPFN). */
    check(try_wrmsr(HV_MSR_GUEST_OS_ID, 0) == NO_EXC && try_rdmsr(HV_MSR_HYPERCALL, &v) == NO_EXC && v == hp,
          "GUEST_OS_ID = 0 disables the hypercall page|0x%llx", v);
    ecx = 0;
    res = call_page(hcpage, HC_QUERY, 2, &ecx, 0, 0);
    check((u32)res == ram, "with the page disabled its VMCALL is ours|0x%x", (u32)res);
    /* Locked: the MSR keeps its value. */
    wrmsr(HV_MSR_GUEST_OS_ID, os_id);
    check(try_wrmsr(HV_MSR_HYPERCALL, hp | 3) == NO_EXC && try_wrmsr(HV_MSR_HYPERCALL, 0) == NO_EXC &&
              try_rdmsr(HV_MSR_HYPERCALL, &v) == NO_EXC && v == (hp | 3u), "HYPERCALL locked: later writes ignored|0x%llx", v);
    /* (Input value 2 with EBX = 2: as our VMCALL that would be query 2, the RAM size, so the
     * answer 2 can only be the Hyper-V status; our unknown-function answer is 2 as well.) */
    ecx = 0;
    res = call_page(hcpage, 2, 2, &ecx, 0, 0);
    check(res == HV_STATUS_INVALID_HYPERCALL_CODE, "a hypercall through the locked page|0x%llx", res);

    /* With paging: what counts is the guest-physical page of the VMCALL, through the guest's
     * page tables. */
    u32 big = hp & ~0x3fffffu;
    if (((u32)(uintptr_t)other & ~0x3fffffu) != big) fail_stop("the two pages are not in one 4-MiB page");
    for (u32 i = 0; i < 1024; i++) pse_pd[i] = (i << 22) | 0x83; /* P, RW, PS */
    pse_pd[0x200] = big | 0x83;
    void *alias_hc = (void *)(uintptr_t)(0x80000000u + (hp & 0x3fffffu));
    void *alias_other = (void *)(uintptr_t)(0x80000000u + ((u32)(uintptr_t)other & 0x3fffffu));
    u32 cr0 = read_cr0(), cr4 = read_cr4();
    write_cr4(cr4 | CR4_PSE);
    write_cr3((u32)(uintptr_t)pse_pd);
    write_cr0(cr0 | CR0_PG);
    u32 ecx1 = 0, ecx2 = 0;
    u64 via_alias = call_page(alias_hc, 2, 2, &ecx1, 0, 0);
    u64 via_other = call_page(alias_other, HC_QUERY, 2, &ecx2, 0, 0);
    write_cr0(cr0);
    write_cr4(cr4);
    write_cr3(0);
    check(via_alias == HV_STATUS_INVALID_HYPERCALL_CODE,
          "paging on: the hypercall page at another linear address is still the hypercall page|0x%llx", via_alias);
    check((u32)via_other == ram, "paging on: another page's VMCALL at offset 0 is ours|0x%x", (u32)via_other);
}

void guest_main(void) {
    guest_init("hyperv");
    char buf[16];
    bool on = word_value(boot.cmdline, "hv", buf, sizeof buf) && !strcmp(buf, "on");
    bool okn = true;
    u32 level = word_value(boot.cmdline, "level", buf, sizeof buf) ? parse_u32(buf, &okn) : 1;
    if (!under_hv()) {
        skip("not under hv", "the Hyper-V interface (a guest of this hypervisor only)");
    } else if (on) {
        cpuid_leaves(level);
        msrs();
        hypercalls();
    } else {
        without_hyperv(level);
    }
    finish_result();
    exit_guest(tap_failed() ? 1 : 0);
}
