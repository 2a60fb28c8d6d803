/* MSRs of L1's processor and the MSR lists of VM entries and exits (issue 9
 * items 2 and 4): IA32_DEBUGCTL in L1 and in L2 with "load/save debug
 * controls" (SDM Vol. 3C 27.3.2.1, 28.3.1, 28.5.1), DR7 likewise, unknown
 * MSRs (#GP in L1; in L2 through its own IDT when L1's bitmap lets the
 * access through, 26.1.3), IA32_TSC written by L1 and by MSR lists of the
 * largest size IA32_VMX_MISC recommends (27.4, 28.4, 28.6, A.6), and the
 * failures 27.4 defines, each followed by an entry that works.
 *
 * Bochs 2.7 has no IA32_DEBUGCTL and, with its default ignore_bad_msrs,
 * reads 0 from any MSR it does not know and ignores writes to it: those
 * checks are CHECK_SDM with that deviation named. */
#include "guest.h"
#include "vmx.h"
#include "l1.h"

#define MSR_DEBUGCTL 0x1D9u
#define MSR_TSC_ADJUST 0x3Bu
#define MSR_SMM_MONITOR_CTL 0x9Bu
#define MSR_UNKNOWN_LOW 0x1FFFu        /* inside the low bitmap range, no processor has it */
#define MSR_UNKNOWN_HIGH 0xC0001FFFu   /* inside the high bitmap range */
#define MSR_X2APIC_TPR 0x808u
#define DEBUGCTL_LBR 1u
#define DEBUGCTL_BTF 2u
#define EXIT_SAVE_DEBUG_CONTROLS (1u << 2)
#define NO_BOCHS_DEBUGCTL "Bochs 2.7 has no IA32_DEBUGCTL (reads 0, writes ignored)"
#define BOCHS_IGNORES_MSRS "Bochs 2.7 ignores unknown MSRs (ignore_bad_msrs)"

extern const char l2_msr_dr7[];
extern const char l2_msr_tsc[];
__asm__(".text\n"
        /* EAX = DR7 as L2 finds it; then DR7 = EBX; ECX = IA32_DEBUGCTL
         * (L1's bitmap lets RDMSR 1D9H through) read into ESI:EDI. */
        ".globl l2_msr_dr7\n"
        "l2_msr_dr7:\n"
        "    mov %dr7, %eax\n"
        "    mov %ebx, %dr7\n"
        "    push %eax\n"
        "    mov $0x1D9, %ecx\n"
        "    rdmsr\n"
        "    mov %eax, %edi\n"
        "    mov %edx, %esi\n"
        "    pop %eax\n"
        "    vmcall\n"
        "    jmp l2_stray\n"
        /* EDX:EAX = TSC at L2's first instruction. */
        ".globl l2_msr_tsc\n"
        "l2_msr_tsc:\n"
        "    rdtsc\n"
        "    vmcall\n"
        "    jmp l2_stray\n");

/* The largest MSR list IA32_VMX_MISC can recommend: 512 * (7 + 1) entries. */
static u32 big_list[8 * 512 * 4] ALIGNED(16);
static u32 small_list[8 * 4] ALIGNED(16);

static void entry_set(u32 *l, u32 i, u32 msr, u64 v) {
    l[i * 4] = msr;
    l[i * 4 + 1] = 0;
    l[i * 4 + 2] = (u32)v;
    l[i * 4 + 3] = (u32)(v >> 32);
}
static u64 entry_data(const u32 *l, u32 i) { return ((u64)l[i * 4 + 3] << 32) | l[i * 4 + 2]; }

static bool debug_controls(void) {
    u32 e = vmcs_ctl_entry | ENTRY_LOAD_DEBUG_CONTROLS, x = vmcs_ctl_exit | EXIT_SAVE_DEBUG_CONTROLS;
    if ((e & ~allowed1(cap.entry)) || (x & ~allowed1(cap.exit))) return false;
    vw(F_ENTRY_CTLS, e);
    vw(F_EXIT_CTLS, x);
    return true;
}

/* ---- L1's own IA32_DEBUGCTL and unknown MSRs ---------------------------------------- */
static void l1_msrs(void) {
    u64 v = 0x5A5A;
    u32 w = try_wrmsr(MSR_DEBUGCTL, DEBUGCTL_BTF | DEBUGCTL_LBR);
    u32 r = try_rdmsr(MSR_DEBUGCTL, &v);
    CHECK_SDM(w == NO_EXC && r == NO_EXC && v == (DEBUGCTL_BTF | DEBUGCTL_LBR), NO_BOCHS_DEBUGCTL,
              "L1 WRMSR IA32_DEBUGCTL LBR+BTF, RDMSR reads it back|vectors %d %d, 0x%llx", (i32)w, (i32)r, v);
    w = try_wrmsr(MSR_DEBUGCTL, 0);
    r = try_rdmsr(MSR_DEBUGCTL, &v);
    check(w == NO_EXC && r == NO_EXC && v == 0, "L1 WRMSR IA32_DEBUGCTL 0 -> reads 0|vectors %d %d, 0x%llx", (i32)w, (i32)r, v);
    w = try_wrmsr(MSR_DEBUGCTL, 1u << 2);
    CHECK_SDM(w == 13 && exc.error == 0, NO_BOCHS_DEBUGCTL, "L1 WRMSR IA32_DEBUGCTL bit 2 (reserved) -> #GP(0)|vector %d", (i32)w);
    w = try_wrmsr(MSR_DEBUGCTL, 1ull << 63);
    CHECK_SDM(w == 13 && exc.error == 0, NO_BOCHS_DEBUGCTL, "L1 WRMSR IA32_DEBUGCTL bit 63 (reserved) -> #GP(0)|vector %d", (i32)w);
    try_wrmsr(MSR_DEBUGCTL, 0);

    r = try_rdmsr(MSR_UNKNOWN_LOW, &v);
    w = try_wrmsr(MSR_UNKNOWN_LOW, 0);
    CHECK_SDM(r == 13 && w == 13, BOCHS_IGNORES_MSRS, "L1 RDMSR/WRMSR 1FFFH (no such MSR) -> #GP|vectors %d %d", (i32)r, (i32)w);
    r = try_rdmsr(0xDEADBEEFu, &v);
    w = try_wrmsr(0xDEADBEEFu, 1);
    CHECK_SDM(r == 13 && w == 13, BOCHS_IGNORES_MSRS, "L1 RDMSR/WRMSR DEADBEEFH -> #GP, L1 goes on|vectors %d %d", (i32)r, (i32)w);
    /* IA32_SMM_MONITOR_CTL exists with VMX (CPUID.1:ECX.VMX) and is written
     * only in SMM (28.6). */
    r = try_rdmsr(MSR_SMM_MONITOR_CTL, &v);
    check(r == NO_EXC && !(v & 1), "L1 RDMSR IA32_SMM_MONITOR_CTL: exists, valid bit 0|vector %d, 0x%llx", (i32)r, v);
    w = try_wrmsr(MSR_SMM_MONITOR_CTL, 0);
    CHECK_SDM(w == 13, BOCHS_IGNORES_MSRS, "L1 WRMSR IA32_SMM_MONITOR_CTL outside SMM -> #GP|vector %d", (i32)w);

    /* IA32_TSC (SDM Vol. 3B 18.17): WRMSR sets the TSC; IA32_TSC_ADJUST
     * (where CPUID.(EAX=7,ECX=0):EBX[1]) moves by the same amount. */
    bool has_adjust = cpuid(0, 0).eax >= 7 && (cpuid(7, 0).ebx & 2);
    u64 adj0 = 0, adj1 = 0;
    if (has_adjust) try_rdmsr(MSR_TSC_ADJUST, &adj0);
    u64 t0 = rdtsc(), target = t0 + (1ull << 36);
    w = try_wrmsr(MSR_TSC, target);
    u64 t1 = rdtsc();
    check(w == NO_EXC && t1 >= target && t1 < target + 100000, "L1 WRMSR IA32_TSC: RDTSC continues from the value|vector %d, 0x%llx vs 0x%llx",
          (i32)w, t1, target);
    if (has_adjust) {
        try_rdmsr(MSR_TSC_ADJUST, &adj1);
        u64 d = adj1 - adj0;
        CHECK_SDM(d > (1ull << 36) - 100000 && d <= (1ull << 36), "Bochs 2.7 does not move IA32_TSC_ADJUST with IA32_TSC",
                  "WRMSR IA32_TSC moves IA32_TSC_ADJUST by the same amount|0x%llx -> 0x%llx", adj0, adj1);
    }
}

/* ---- DR7 and IA32_DEBUGCTL across nested entries and exits --------------------------- */
static void l2_debug(void) {
    memset(msr_bitmap, 0, 4096);
    if (!l2_setup(PROC_USE_MSR_BITMAPS, 0, "L2 with load/save debug controls")) return;
    if (!debug_controls()) {
        skip("not offered", "load/save debug controls");
        return;
    }
    vw(F_GUEST_DR7, 0x500);
    vw64(F_GUEST_DEBUGCTL, DEBUGCTL_BTF);
    __asm__ volatile("mov %0, %%dr7" ::"r"(0x700u));
    try_wrmsr(MSR_DEBUGCTL, DEBUGCTL_LBR);
    regs.ebx = 0x600;
    l2_run(ADDR(l2_msr_dr7));
    u32 l1dr7;
    __asm__ volatile("mov %%dr7, %0" : "=r"(l1dr7));
    u64 l1dbg = 0x77;
    try_rdmsr(MSR_DEBUGCTL, &l1dbg);
    check(vmcall_at(l2_msr_dr7, 19) && regs.eax == 0x500, "load debug controls: L2 starts with vmcs12's DR7 (500H), not L1's (700H)|%s eax 0x%x",
          run_str(), regs.eax);
    CHECK_SDM(vmcall_at(l2_msr_dr7, 19) && regs.edi == DEBUGCTL_BTF && regs.esi == 0, NO_BOCHS_DEBUGCTL,
              "load debug controls: L2 reads vmcs12's IA32_DEBUGCTL (BTF)|0x%x:%x", regs.esi, regs.edi);
    u32 dr7_12 = vr(F_GUEST_DR7);
    check(dr7_12 == 0x600, "save debug controls: vmcs12's DR7 = L2's at the exit (600H)|0x%x", dr7_12);
    check(l1dr7 == 0x400, "after the exit L1's DR7 = 400H (28.5.1)|0x%x", l1dr7);
    check(l1dbg == 0, "after the exit L1's IA32_DEBUGCTL = 0 (28.5.1; L1 had LBR)|0x%llx", l1dbg);

    /* L2 changes IA32_DEBUGCTL itself (bit 0 in L1's write bitmap): saved. */
    regs.ecx = MSR_DEBUGCTL;
    regs.eax = DEBUGCTL_LBR;
    regs.edx = 0;
    l2_run(ADDR(l2_wrmsr));
    u64 dbg12 = vr64(F_GUEST_DEBUGCTL);
    CHECK_SDM(vmcall_at(l2_wrmsr, 2) && dbg12 == DEBUGCTL_LBR, NO_BOCHS_DEBUGCTL,
              "L2 WRMSR IA32_DEBUGCTL (not intercepted), save debug controls: vmcs12 has it|%s 0x%llx", run_str(), dbg12);
    regs.ecx = MSR_DEBUGCTL;
    regs.eax = 1u << 3;
    memset((void *)&l2_seen, 0, sizeof l2_seen);
    l2_run(ADDR(l2_wrmsr));
    CHECK_SDM(exit_is(EXIT_VMCALL) && l2_seen.vector == 13 && l2_seen.error == 0 && l2_seen.eip == ADDR(l2_wrmsr), NO_BOCHS_DEBUGCTL,
              "L2 WRMSR IA32_DEBUGCTL bit 3 (reserved) -> #GP(0) through L2's IDT|%s vector %u eip 0x%x", run_str(),
              l2_seen.vector, l2_seen.eip);

    /* Without "save debug controls" vmcs12 keeps what L1 wrote and every
     * entry loads it again. */
    vw(F_EXIT_CTLS, vr(F_EXIT_CTLS) & ~EXIT_SAVE_DEBUG_CONTROLS);
    if (vr(F_EXIT_CTLS) & EXIT_SAVE_DEBUG_CONTROLS) return; /* forced to 1: nothing more to see */
    vw(F_GUEST_DR7, 0x500);
    regs.ebx = 0x600;
    l2_run(ADDR(l2_msr_dr7));
    dr7_12 = vr(F_GUEST_DR7);
    check(vmcall_at(l2_msr_dr7, 19) && regs.eax == 0x500 && dr7_12 == 0x500,
          "no save debug controls: vmcs12's DR7 stays 500H after L2 wrote 600H|%s eax 0x%x field 0x%x", run_str(), regs.eax, dr7_12);
    regs.ebx = 0x400;
    l2_run(ADDR(l2_msr_dr7));
    check(vmcall_at(l2_msr_dr7, 19) && regs.eax == 0x500, "the next entry loads vmcs12's DR7 (500H) again|%s eax 0x%x", run_str(),
          regs.eax);

    /* Without "load debug controls" L2 starts with L1's DR7 and DEBUGCTL. */
    if (!(vmcs_ctl_entry & ENTRY_LOAD_DEBUG_CONTROLS) && l2_setup(PROC_USE_MSR_BITMAPS, 0, "L2 without load debug controls")) {
        __asm__ volatile("mov %0, %%dr7" ::"r"(0x700u));
        try_wrmsr(MSR_DEBUGCTL, DEBUGCTL_BTF);
        vw(F_GUEST_DR7, 0x500);
        regs.ebx = 0x400;
        l2_run(ADDR(l2_msr_dr7));
        check(vmcall_at(l2_msr_dr7, 19) && regs.eax == 0x700, "no load debug controls: L2 starts with L1's DR7 (700H)|%s eax 0x%x",
              run_str(), regs.eax);
        CHECK_SDM(vmcall_at(l2_msr_dr7, 19) && regs.edi == DEBUGCTL_BTF, NO_BOCHS_DEBUGCTL,
                  "no load debug controls: L2 reads L1's IA32_DEBUGCTL (BTF)|0x%x", regs.edi);
    }
    /* 27.3.1.1: with "load debug controls", reserved IA32_DEBUGCTL bits fail the entry. */
    if (l2_setup(0, 0, "VM entry with IA32_DEBUGCTL reserved bits") && debug_controls()) {
        vw64(F_GUEST_DEBUGCTL, 1u << 2);
        l2_run(ADDR(l2_vmcall));
        CHECK_SDM(exit_is(EXIT_FAILED_ENTRY | EXIT_BAD_GUEST_STATE), "Bochs 2.7 does not check IA32_DEBUGCTL's reserved bits",
                  "guest IA32_DEBUGCTL bit 2 with load debug controls -> exit 80000021H|%s", run_str());
    }
}

/* ---- L2's unknown MSRs --------------------------------------------------------------- */
static void l2_unknown(void) {
    memset(msr_bitmap, 0, 4096);
    msr_mark(MSR_UNKNOWN_HIGH, true);
    if (!l2_setup(PROC_USE_MSR_BITMAPS, 0, "L2 accesses to MSRs that do not exist")) return;
    regs.ecx = MSR_UNKNOWN_LOW;
    l2_run(ADDR(l2_rdmsr));
    CHECK_SDM(exit_is(EXIT_VMCALL) && l2_seen.count == 1 && l2_seen.vector == 13 && l2_seen.error == 0 && l2_seen.eip == ADDR(l2_rdmsr),
              BOCHS_IGNORES_MSRS, "L2 RDMSR 1FFFH, bit 0 in L1's bitmap: no exit, #GP(0) through L2's IDT|%s vector %u eip 0x%x",
              run_str(), l2_seen.vector, l2_seen.eip);
    regs.ecx = MSR_UNKNOWN_HIGH;
    regs.eax = regs.edx = 0;
    l2_run(ADDR(l2_wrmsr));
    check(exit_is(EXIT_WRMSR) && regs.ecx == MSR_UNKNOWN_HIGH, "L2 WRMSR C0001FFFH, bit 1 in L1's bitmap: exit 32 to L1|%s", run_str());
    regs.ecx = MSR_UNKNOWN_HIGH;
    memset((void *)&l2_seen, 0, sizeof l2_seen);
    l2_run(ADDR(l2_rdmsr));
    CHECK_SDM(exit_is(EXIT_VMCALL) && l2_seen.vector == 13 && l2_seen.eip == ADDR(l2_rdmsr), BOCHS_IGNORES_MSRS,
              "L2 RDMSR C0001FFFH, read bit 0: #GP through L2's IDT|%s vector %u", run_str(), l2_seen.vector);
    regs.ecx = 0xDEADBEEFu;
    l2_run(ADDR(l2_rdmsr));
    check(exit_is(EXIT_RDMSR) && regs.ecx == 0xDEADBEEFu, "L2 RDMSR DEADBEEFH (outside the bitmap ranges): exit 31 to L1|%s", run_str());
    l2_run(ADDR(l2_vmcall));
    check(exit_is(EXIT_VMCALL), "L2 runs on after those|%s", run_str());
}

/* ---- MSR lists with IA32_TSC, of the largest recommended size ------------------------ */
static void tsc_lists(void) {
    u32 n = (((u32)(cap.misc >> 25) & 7) + 1) * 512;
    if (!l2_setup(0, 0, "VM-entry MSR-load list of the largest size, IA32_TSC in every entry")) return;
    u64 target = rdtsc() + (1ull << 37);
    for (u32 i = 0; i < n; i++) entry_set(big_list, i, MSR_TSC, target);
    vw64(F_ENTRY_MSR_LOAD_ADDR, PA(big_list));
    vw(F_ENTRY_MSR_LOAD_COUNT, n);
    diag("VM entry loading IA32_TSC %u times", n);
    l2_run(ADDR(l2_msr_tsc));
    u64 l2 = ((u64)regs.edx << 32) | regs.eax, l1 = rdtsc();
    check(vmcall_at(l2_msr_tsc, 2) && l2 >= target && l2 < target + 5000000,
          "VM-entry list of %u IA32_TSC entries (VMX_MISC 27:25): L2's RDTSC = the value + elapsed|%s 0x%llx vs 0x%llx", n, run_str(),
          l2, target);
    check(l1 >= l2, "the TSC stays loaded after the exit to L1|0x%llx, L2 read 0x%llx", l1, l2);

    /* With TSC offsetting L2 sees the loaded TSC + vmcs12's offset. */
    if (l2_setup(PROC_TSC_OFFSETTING, 0, "VM-entry list with IA32_TSC and TSC offsetting")) {
        u64 off = 1ull << 32;
        target = rdtsc() + (1ull << 37);
        entry_set(small_list, 0, MSR_TSC, target);
        vw64(F_TSC_OFFSET, off);
        vw64(F_ENTRY_MSR_LOAD_ADDR, PA(small_list));
        vw(F_ENTRY_MSR_LOAD_COUNT, 1);
        l2_run(ADDR(l2_msr_tsc));
        l2 = ((u64)regs.edx << 32) | regs.eax;
        l1 = rdtsc();
        check(vmcall_at(l2_msr_tsc, 2) && l2 >= target + off && l2 < target + off + 5000000 && l1 >= target && l1 < target + 5000000,
              "entry list IA32_TSC with offsetting: L2 reads value + offset, L1 value + elapsed|%s L2 0x%llx L1 0x%llx value 0x%llx",
              run_str(), l2, l1, target);
        /* The exit MSR-store list reads the processor's TSC: L1's, no offset. */
        entry_set(small_list, 1, MSR_TSC, 0);
        vw(F_ENTRY_MSR_LOAD_COUNT, 0);
        vw64(F_EXIT_MSR_STORE_ADDR, PA(&small_list[4]));
        vw(F_EXIT_MSR_STORE_COUNT, 1);
        u64 before = rdtsc();
        l2_run(ADDR(l2_msr_tsc));
        u64 after = rdtsc(), stored = entry_data(small_list, 1);
        CHECK_SDM(vmcall_at(l2_msr_tsc, 2) && stored >= before && stored <= after, "Bochs 2.7 stores IA32_TSC with the offset",
                  "VM-exit MSR-store list IA32_TSC: the TSC without vmcs12's offset|%s 0x%llx in [0x%llx, 0x%llx]", run_str(), stored,
                  before, after);
    }

    /* L2's WRMSR of IA32_TSC that L1 lets through writes the TSC itself
     * (TSC offsetting changes what RDTSC/RDMSR read, not what WRMSR writes). */
    memset(msr_bitmap, 0, 4096);
    if (l2_setup(PROC_TSC_OFFSETTING | PROC_USE_MSR_BITMAPS, 0, "L2 WRMSR IA32_TSC, not intercepted")) {
        u64 off = 1ull << 32;
        vw64(F_TSC_OFFSET, off);
        target = rdtsc() + (1ull << 37);
        regs.ecx = MSR_TSC;
        regs.eax = (u32)target;
        regs.edx = (u32)(target >> 32);
        l2_run(ADDR(l2_wrmsr));
        l1 = rdtsc();
        check(vmcall_at(l2_wrmsr, 2) && l1 >= target && l1 < target + 5000000,
              "L2 WRMSR IA32_TSC (bit 0 in L1's bitmap): the TSC = the value, L1 reads value + elapsed|%s 0x%llx vs 0x%llx", run_str(),
              l1, target);
        l2_run(ADDR(l2_msr_tsc));
        l2 = ((u64)regs.edx << 32) | regs.eax;
        u64 l1b = rdtsc();
        check(vmcall_at(l2_msr_tsc, 2) && l2 >= l1 + off && l2 <= l1b + off, "then L2's RDTSC = that TSC + vmcs12's offset|%s 0x%llx",
              run_str(), l2);
    }

    /* The VM-exit MSR-load list of the largest size sets L1's TSC. */
    if (l2_setup(0, 0, "VM-exit MSR-load list of the largest size, IA32_TSC in every entry")) {
        target = rdtsc() + (1ull << 38);
        for (u32 i = 0; i < n; i++) entry_set(big_list, i, MSR_TSC, target + i);
        vw64(F_EXIT_MSR_LOAD_ADDR, PA(big_list));
        vw(F_EXIT_MSR_LOAD_COUNT, n);
        l2_run(ADDR(l2_vmcall));
        l1 = rdtsc();
        check(exit_is(EXIT_VMCALL) && l1 >= target + n - 1 && l1 < target + 5000000,
              "VM-exit list of %u IA32_TSC entries: L1's TSC = the last value + elapsed|%s 0x%llx vs 0x%llx", n, run_str(), l1,
              target + n - 1);
        vw(F_EXIT_MSR_LOAD_COUNT, 0);
        l2_run(ADDR(l2_vmcall));
        check(exit_is(EXIT_VMCALL), "L2 runs on|%s", run_str());
    }
}

/* ---- VM-entry MSR-load failures (27.4): exit 34 with the entry's index --------------- */
static void one_failure(u32 k, u32 msr, u32 reserved_hi, u64 value, const char *what, const char *deviation) {
    if (!l2_setup(0, 0, what)) return;
    u64 kgs0 = 0;
    try_rdmsr(MSR_KERNEL_GS_BASE, &kgs0);
    for (u32 i = 0; i < 6; i++) entry_set(small_list, i, MSR_SYSENTER_ESP, 0x1000 * (i + 1));
    entry_set(small_list, 0, MSR_KERNEL_GS_BASE, 0x5A5A0000);
    entry_set(small_list, k - 1, msr, value);
    small_list[(k - 1) * 4 + 1] = reserved_hi;
    vw64(F_ENTRY_MSR_LOAD_ADDR, PA(small_list));
    vw(F_ENTRY_MSR_LOAD_COUNT, 6);
    l2_run(ADDR(l2_vmcall));
    bool failed = exit_is(EXIT_FAILED_ENTRY | EXIT_MSR_LOADING) && ex.qual == k;
    if (deviation) CHECK_SDM(failed, deviation, "VM-entry MSR-load entry %u %s -> exit 80000022H, qualification %u|%s", k, what, k, run_str());
    else check(failed, "VM-entry MSR-load entry %u %s -> exit 80000022H, qualification %u|%s", k, what, k, run_str());
    u64 kgs = 0;
    try_rdmsr(MSR_KERNEL_GS_BASE, &kgs);
    try_wrmsr(MSR_KERNEL_GS_BASE, kgs0);
    if (failed && k > 1) check(kgs == 0x5A5A0000, "entry 1 (IA32_KERNEL_GS_BASE) before the failing one stays loaded|0x%llx", kgs);
    vw(F_ENTRY_MSR_LOAD_COUNT, 0);
    l2_run(ADDR(l2_vmcall));
    check(exit_is(EXIT_VMCALL), "after that failure the next entry runs L2|%s", run_str());
}

static void list_failures(void) {
    one_failure(3, MSR_FS_BASE, 0, 0, "IA32_FS_BASE", 0);
    one_failure(2, 0xC0000101u, 0, 0, "IA32_GS_BASE", 0);
    one_failure(4, MSR_X2APIC_TPR, 0, 0, "x2APIC TPR (808H)", 0);
    one_failure(5, MSR_SYSENTER_ESP, 1, 0x2000, "with bits 63:32 = 1", 0);
    one_failure(2, MSR_SYSENTER_EIP, 0, 0x0000800000000000ull, "SYSENTER_EIP non-canonical (WRMSR #GP)", 0);
    one_failure(6, MSR_UNKNOWN_LOW, 0, 0, "1FFFH (no such MSR)", BOCHS_IGNORES_MSRS);
    one_failure(3, MSR_SMM_MONITOR_CTL, 0, 0, "IA32_SMM_MONITOR_CTL (SMM only)", BOCHS_IGNORES_MSRS);
    one_failure(2, MSR_DEBUGCTL, 0, 1u << 2, "IA32_DEBUGCTL bit 2 (reserved)", NO_BOCHS_DEBUGCTL);

    /* Entries that load: PAT, EFER (NXE), IA32_DEBUGCTL, seen by L2. */
    memset(msr_bitmap, 0, 4096);
    if (!l2_setup(PROC_USE_MSR_BITMAPS, 0, "VM-entry MSR-load list with PAT and IA32_DEBUGCTL")) return;
    entry_set(small_list, 0, MSR_PAT, 0x0006040600070406ull);
    entry_set(small_list, 1, MSR_DEBUGCTL, DEBUGCTL_BTF);
    vw64(F_ENTRY_MSR_LOAD_ADDR, PA(small_list));
    vw(F_ENTRY_MSR_LOAD_COUNT, 2);
    regs.ecx = MSR_PAT;
    l2_run(ADDR(l2_rdmsr));
    check(vmcall_at(l2_rdmsr, 2) && regs.eax == 0x00070406 && regs.edx == 0x00060406, "entry list loads IA32_PAT: L2 reads it|%s %x:%x",
          run_str(), regs.edx, regs.eax);
    regs.ecx = MSR_DEBUGCTL;
    l2_run(ADDR(l2_rdmsr));
    CHECK_SDM(vmcall_at(l2_rdmsr, 2) && regs.eax == DEBUGCTL_BTF, NO_BOCHS_DEBUGCTL,
              "entry list loads IA32_DEBUGCTL: L2 reads it|%s 0x%x", run_str(), regs.eax);
}

void test_msr(void) {
    l1_msrs();
    if (!in_root && !enter_root()) return;
    l2_debug();
    l2_unknown();
    tsc_lists();
    list_failures();
}
