/* evmcs.elf: an L1 hypervisor that runs its L2 through the Hyper-V enlightened VMCS (eVMCS)
 * of a guest with hyperv=on and nested=on (docs/guest-interface.md "Enlightened VM entry";
 * kernel/nested/evmcs.ts), each outcome checked against the Hyper-V Top-Level Functional
 * Specification (TLFS) text cited with the case, or, where the TLFS leaves the answer to the L0
 * hypervisor, against the answer docs/guest-interface.md documents. Built on the test L1's
 * VMX library (l1/setup.c, vmx.c, run.asm: vmx_run_evmcs).
 *
 * The eVMCS layout is written here from the TLFS data type HV_VMX_ENLIGHTENED_VMCS (natural
 * alignment of its UINT16/32/64 members), independently of the hypervisor's table
 * (tools/vmx/table.mjs): a layout that disagreed would show up as L2 not running or running
 * with the wrong state.
 *
 * args=hv=on (default): the cases below. args=hv=off: the same guest without hyperv=on: no
 * Hyper-V leaves, and the controls hidden with hyperv=on are offered, so that their absence
 * with hyperv=on is not a property of the processor.
 *
 * Output: TAP lines, RESULT line; ends like l1.elf (l1_end). Not under this hypervisor (bare
 * Bochs, QEMU): there is no eVMCS; one SKIP line. */
#include "guest.h"
#include "l1/vmx.h"
#include "l1/l1.h"

/* ---- the Hyper-V interface (TLFS "Feature and Interface Discovery", "Virtual Processor
 * Assist Page", "Nested Virtualization") --------------------------------------------------- */
#define HV_MSR_VP_ASSIST_PAGE 0x40000073u
#define HV_CPUID_VENDOR 0x40000000u
#define HV_CPUID_ENLIGHTENMENT_INFO 0x40000004u
#define HV_CPUID_NESTED_FEATURES 0x4000000Au
#define HV_REC_ENLIGHTENED_VMCS (1u << 14)    /* 40000004H EAX */
#define HV_NESTED_MSR_BITMAP (1u << 19)       /* 4000000AH EAX */
/* HV_VP_ASSIST_PAGE: EnlightenVmEntry (BOOLEAN at 28H), CurrentNestedVmcs (HV_GPA at 30H). */
#define VPA_ENLIGHTEN_VMENTRY 0x28u
#define VPA_CURRENT_NESTED_VMCS 0x30u

/* ---- HV_VMX_ENLIGHTENED_VMCS: byte offsets of the members the cases touch -------------- */
#define EV_VERSION 0u                 /* VersionNumber */
#define EV_HOST_RIP 80u
#define EV_PIN 92u                    /* PinControls (CONTROL_GRP1) */
#define EV_EXIT_CTLS 96u              /* ExitControls (CONTROL_GRP1) */
#define EV_PROC2 100u                 /* SecondaryProcessorControls (CONTROL_GRP1) */
#define EV_MSR_BITMAP 120u            /* MsrBitmap (MSR_BITMAP) */
#define EV_VM_INSTRUCTION_ERROR 688u
#define EV_EXIT_REASON 692u
#define EV_EXIT_INTR_INFO 696u
#define EV_EXIT_INSN_LEN 712u
#define EV_EXIT_QUALIFICATION 720u
#define EV_GUEST_RSP 768u             /* GUEST_BASIC */
#define EV_PROC 788u                  /* PrimaryProcessorControls (CONTROL_PROC) */
#define EV_EXCEPTION_BITMAP 792u      /* CONTROL_EXCPN */
#define EV_GUEST_RIP 816u             /* no clean group: read at every entry */
#define EV_CLEAN_FIELDS 824u          /* CleanFields */
#define EV_ENLIGHTENMENTS 836u        /* EnlightenmentsControl: bit 1 MsrBitmap */
#define EV_ENLIGHTEN_MSR_BITMAP (1u << 1)
/* HV_VMX_ENLIGHTENED_CLEAN_FIELD_* */
#define CLEAN_MSR_BITMAP (1u << 1)
#define CLEAN_CONTROL_GRP1 (1u << 3)
#define CLEAN_CONTROL_PROC (1u << 4)
#define CLEAN_CONTROL_EXCPN (1u << 7)
#define CLEAN_GUEST_BASIC (1u << 10)
#define CLEAN_ENLIGHTENMENTSCONTROL (1u << 15)
#define CLEAN_ALL 0xFFFFu

/* The VMCS fields L1 fills (l2_setup_ex's), with their eVMCS members: offset and size. */
struct evf { u16 enc, off, size; };
static const struct evf ev_fields[] = {
    { F_HOST_ES_SEL, 8, 2 }, { F_HOST_CS_SEL, 10, 2 }, { F_HOST_SS_SEL, 12, 2 }, { F_HOST_DS_SEL, 14, 2 },
    { F_HOST_FS_SEL, 16, 2 }, { F_HOST_GS_SEL, 18, 2 }, { F_HOST_TR_SEL, 20, 2 },
    { F_HOST_CR0, 40, 8 }, { F_HOST_CR3, 48, 8 }, { F_HOST_CR4, 56, 8 },
    { F_HOST_SYSENTER_ESP, 64, 8 }, { F_HOST_SYSENTER_EIP, 72, 8 }, { F_HOST_SYSENTER_CS, 88, 4 },
    { F_PIN_CTLS, EV_PIN, 4 }, { F_EXIT_CTLS, EV_EXIT_CTLS, 4 }, { F_PROC2_CTLS, EV_PROC2, 4 },
    { F_IO_BITMAP_A, 104, 8 }, { F_IO_BITMAP_B, 112, 8 }, { F_MSR_BITMAP, EV_MSR_BITMAP, 8 },
    { F_GUEST_ES_SEL, 128, 2 }, { F_GUEST_CS_SEL, 130, 2 }, { F_GUEST_SS_SEL, 132, 2 }, { F_GUEST_DS_SEL, 134, 2 },
    { F_GUEST_FS_SEL, 136, 2 }, { F_GUEST_GS_SEL, 138, 2 }, { F_GUEST_LDTR_SEL, 140, 2 }, { F_GUEST_TR_SEL, 142, 2 },
    { F_GUEST_ES_LIMIT, 144, 4 }, { F_GUEST_CS_LIMIT, 148, 4 }, { F_GUEST_SS_LIMIT, 152, 4 },
    { F_GUEST_DS_LIMIT, 156, 4 }, { F_GUEST_FS_LIMIT, 160, 4 }, { F_GUEST_GS_LIMIT, 164, 4 },
    { F_GUEST_LDTR_LIMIT, 168, 4 }, { F_GUEST_TR_LIMIT, 172, 4 }, { F_GUEST_GDTR_LIMIT, 176, 4 },
    { F_GUEST_IDTR_LIMIT, 180, 4 },
    { F_GUEST_ES_AR, 184, 4 }, { F_GUEST_CS_AR, 188, 4 }, { F_GUEST_SS_AR, 192, 4 }, { F_GUEST_DS_AR, 196, 4 },
    { F_GUEST_FS_AR, 200, 4 }, { F_GUEST_GS_AR, 204, 4 }, { F_GUEST_LDTR_AR, 208, 4 }, { F_GUEST_TR_AR, 212, 4 },
    { F_GUEST_ES_BASE, 216, 8 }, { F_GUEST_CS_BASE, 224, 8 }, { F_GUEST_SS_BASE, 232, 8 }, { F_GUEST_DS_BASE, 240, 8 },
    { F_GUEST_FS_BASE, 248, 8 }, { F_GUEST_GS_BASE, 256, 8 }, { F_GUEST_LDTR_BASE, 264, 8 }, { F_GUEST_TR_BASE, 272, 8 },
    { F_GUEST_GDTR_BASE, 280, 8 }, { F_GUEST_IDTR_BASE, 288, 8 },
    { F_PF_ERR_MASK, 376, 4 }, { F_PF_ERR_MATCH, 380, 4 }, { F_CR3_TARGET_COUNT, 384, 4 },
    { F_EXIT_MSR_STORE_COUNT, 388, 4 }, { F_EXIT_MSR_LOAD_COUNT, 392, 4 }, { F_ENTRY_MSR_LOAD_COUNT, 396, 4 },
    { F_TSC_OFFSET, 400, 8 }, { F_VMCS_LINK_PTR, 416, 8 }, { F_GUEST_DEBUGCTL, 424, 8 },
    { F_GUEST_PENDING_DBG, 480, 8 }, { F_GUEST_SYSENTER_ESP, 488, 8 }, { F_GUEST_SYSENTER_EIP, 496, 8 },
    { F_GUEST_ACTIVITY, 504, 4 }, { F_GUEST_SYSENTER_CS, 508, 4 },
    { F_CR0_MASK, 512, 8 }, { F_CR4_MASK, 520, 8 }, { F_CR0_SHADOW, 528, 8 }, { F_CR4_SHADOW, 536, 8 },
    { F_GUEST_CR0, 544, 8 }, { F_GUEST_CR3, 552, 8 }, { F_GUEST_CR4, 560, 8 }, { F_GUEST_DR7, 568, 8 },
    { F_HOST_FS_BASE, 576, 8 }, { F_HOST_GS_BASE, 584, 8 }, { F_HOST_TR_BASE, 592, 8 },
    { F_HOST_GDTR_BASE, 600, 8 }, { F_HOST_IDTR_BASE, 608, 8 },
    { F_GUEST_RSP, EV_GUEST_RSP, 8 }, { F_GUEST_RFLAGS, 776, 8 }, { F_GUEST_INTERRUPTIBILITY, 784, 4 },
    { F_PROC_CTLS, EV_PROC, 4 }, { F_EXCEPTION_BITMAP, EV_EXCEPTION_BITMAP, 4 }, { F_ENTRY_CTLS, 796, 4 },
    { F_ENTRY_INTR_INFO, 800, 4 }, { F_GUEST_RIP, EV_GUEST_RIP, 8 },
};

static u8 evmcs[4096] ALIGNED(4096);
static u8 assist[4096] ALIGNED(4096);
#define EV16(o) (*(volatile u16 *)(evmcs + (o)))
#define EV32(o) (*(volatile u32 *)(evmcs + (o)))
#define EV64(o) (*(volatile u64 *)(evmcs + (o)))

/* Controls (SDM Vol. 3C 25.6, 25.7, 25.8) the hyperv=on guest must not be offered. */
#define PIN_PREEMPTION_TIMER (1u << 6)
#define PIN_POSTED_INTERRUPTS (1u << 7)
#define PROC2_APIC_REGISTER_VIRT (1u << 8)
#define PROC2_VIRTUAL_INTR_DELIVERY (1u << 9)
#define PROC2_PAUSE_LOOP_EXITING (1u << 10)
#define PROC2_PML (1u << 17)
#define PROC2_TSC_SCALING (1u << 25)
#define EXIT_LOAD_PERF_GLOBAL_CTRL (1u << 12)
#define EXIT_SAVE_PREEMPTION_TIMER (1u << 22)
#define ENTRY_LOAD_PERF_GLOBAL_CTRL (1u << 13)
#define PROC2_HIDDEN (PROC2_APIC_REGISTER_VIRT | PROC2_VIRTUAL_INTR_DELIVERY | PROC2_PAUSE_LOOP_EXITING | \
                      PROC2_VMFUNC | PROC2_VMCS_SHADOWING | PROC2_PML | PROC2_TSC_SCALING)
#define F_PLE_GAP 0x4020u /* a 32-bit field eVMCS v1 has no member for */
#define PORT_E0_IN_IMM 0x00E00048u /* I/O exit qualification: port E0H, IN, immediate, 1 byte (Table 28-5) */
#define MSR_SYSENTER_CS_ 0x174u

#define FAIL(...) do { check(false, __VA_ARGS__); l1_end(); } while (0)

static u32 last;        /* vmx_run_evmcs's result: 0 after a VM exit */
static u32 exits_seen;  /* exit_snap.count before the run */

/* Enter L2 through the eVMCS at rip (written into GuestRip, read at every entry), with
 * VMLAUNCH or VMRESUME; true when an exit came back. */
static bool ev_run(u32 rip, bool launch) {
    if (rip) EV64(EV_GUEST_RIP) = rip;
    exits_seen = exit_snap.count;
    last = vmx_run_evmcs(&regs, launch, evmcs);
    return last == 0 && exit_snap.count == exits_seen + 1;
}
static bool ev_exit(u32 reason, u32 rip) {
    return last == 0 && EV32(EV_EXIT_REASON) == reason && EV64(EV_GUEST_RIP) == rip;
}
static const char *ev_str(void) {
    static char buf[112];
    if (last != 0)
        snprintf(buf, sizeof buf, "no exit: %s, eVMCS error %u", (last & FL_CF) ? "VMfailInvalid" : (last & FL_ZF) ? "VMfailValid" : "fell through",
                 EV32(EV_VM_INSTRUCTION_ERROR));
    else
        snprintf(buf, sizeof buf, "exit reason %u qual 0x%x len %u intr 0x%x rip 0x%x rsp 0x%x", EV32(EV_EXIT_REASON),
                 (u32)EV64(EV_EXIT_QUALIFICATION), EV32(EV_EXIT_INSN_LEN), EV32(EV_EXIT_INTR_INFO), (u32)EV64(EV_GUEST_RIP),
                 (u32)EV64(EV_GUEST_RSP));
    return buf;
}
/* vmx_run_evmcs returns 0x80000000 | EFLAGS when the instruction completed without an entry. */
static bool ev_fail_invalid(void) { return (last & 0x80000000u) && (last & FL_ARITH) == FL_CF; }
static bool ev_fail_valid(u32 err) {
    return (last & 0x80000000u) && (last & FL_ARITH) == FL_ZF && EV32(EV_VM_INSTRUCTION_ERROR) == err;
}

static void assist_use(u64 evmcs_gpa, bool on) {
    *(volatile u64 *)(assist + VPA_CURRENT_NESTED_VMCS) = evmcs_gpa;
    assist[VPA_ENLIGHTEN_VMENTRY] = on;
}

/* The eVMCS from the VMCS l2_setup_ex filled (current), read field by field; then that VMCS
 * is cleared and the eVMCS is the one L1's entries use. */
static void ev_fill(u32 proc_want) {
    if (!l2_setup(proc_want, 0, "L2's VMCS")) FAIL("the VMCS for L2|l2_setup");
    memset(evmcs, 0, sizeof evmcs);
    vmcs_errors = 0;
    for (u32 i = 0; i < sizeof ev_fields / sizeof ev_fields[0]; i++) {
        const struct evf *f = &ev_fields[i];
        if (f->size == 2) EV16(f->off) = (u16)vr(f->enc);
        else if (f->size == 4) EV32(f->off) = vr(f->enc);
        else if ((f->enc >> 13 & 3) == 1) EV64(f->off) = vr64(f->enc); /* 64-bit field: full and high */
        else EV64(f->off) = vr(f->enc);                                /* natural width: 32 bits here */
    }
    if (vmcs_errors) FAIL("copying the VMCS into the eVMCS|%u VMREADs failed, first 0x%x", vmcs_errors, vmcs_error_field);
    EV64(EV_HOST_RIP) = ADDR(vmx_exit_entry);
    EV32(EV_VERSION) = 1;
    EV32(EV_CLEAN_FIELDS) = 0;
    if (vmclear(PA(vmcs_l2)) != VM_OK) FAIL("VMCLEAR of L2's VMCS");
    assist_use(PA(evmcs), true);
}

/* ---- hv=off: the offer without hyperv=on --------------------------------------------- */
static void without_hyperv(void) {
    struct cpuid r = cpuid(HV_CPUID_VENDOR, 0);
    check(r.ebx != 0x7263694du, "hyperv=off: no \"Microsoft Hv\" at 40000000H|ebx 0x%x", r.ebx);
    /* The controls hyperv=on hides, as this hypervisor offers them on this processor without it
     * (each must be offered here for the hyperv=on check to mean something). */
    check(allowed1(cap.pin) & PIN_PREEMPTION_TIMER, "hyperv=off: VMX-preemption timer offered|pin 0x%llx", cap.pin);
    check(allowed1(cap.exit) & EXIT_SAVE_PREEMPTION_TIMER, "hyperv=off: save preemption timer offered|exit 0x%llx", cap.exit);
    u32 p2 = allowed1(cap.proc2);
    check(p2 & PROC2_PAUSE_LOOP_EXITING, "hyperv=off: PAUSE-loop exiting offered|0x%x", p2);
    check(p2 & PROC2_VMFUNC, "hyperv=off: VM functions offered|0x%x", p2);
    check(p2 & PROC2_VMCS_SHADOWING, "hyperv=off: VMCS shadowing offered|0x%x", p2);
    check(p2 & PROC2_PML, "hyperv=off: PML offered|0x%x", p2);
    u64 v;
    check(msr_exists(MSR_VMX_VMFUNC, &v) && (v & 1), "hyperv=off: IA32_VMX_VMFUNC offers EPTP switching|0x%llx", v);
}

/* ---- hv=on ------------------------------------------------------------------------------ */
/* TLFS "Feature and Interface Discovery" (40000004H: "Bit 14: Recommend using enlightened
 * VMCS") and "Nested Hypervisor Feature Identification" (4000000AH: EAX[7:0] the low and
 * EAX[15:8] the high enlightened VMCS version supported, bit 19 the enlightened MSR bitmap);
 * TLFS "Virtual Processor Assist Page" (HV_X64_MSR_VP_ASSIST_PAGE: bit 0 enable, 63:12 GPFN). */
static void interface(void) {
    struct cpuid r = cpuid(HV_CPUID_VENDOR, 0);
    check(r.ebx == 0x7263694du && r.ecx == 0x666f736fu && r.edx == 0x76482074u && r.eax >= HV_CPUID_NESTED_FEATURES,
          "40000000H: \"Microsoft Hv\", leaves up to 4000000AH|eax 0x%x", r.eax);
    r = cpuid(HV_CPUID_ENLIGHTENMENT_INFO, 0);
    check(r.eax & HV_REC_ENLIGHTENED_VMCS, "40000004H EAX bit 14: enlightened VMCS recommended|0x%x", r.eax);
    r = cpuid(HV_CPUID_NESTED_FEATURES, 0);
    check((r.eax & 0xFF) == 1 && ((r.eax >> 8) & 0xFF) == 1, "4000000AH EAX[7:0] = EAX[15:8] = 1: eVMCS version 1|0x%x",
          r.eax);
    check(r.eax & HV_NESTED_MSR_BITMAP, "4000000AH EAX bit 19: enlightened MSR bitmap|0x%x", r.eax);
    u64 v = 0;
    check(try_wrmsr(HV_MSR_VP_ASSIST_PAGE, PA(assist) | 1) == NO_EXC && try_rdmsr(HV_MSR_VP_ASSIST_PAGE, &v) == NO_EXC &&
              v == (PA(assist) | 1), "VP assist page enabled|0x%llx", v);
}

/* The controls eVMCS v1 has no members for (TLFS HV_VMX_ENLIGHTENED_VMCS: no posted-interrupt
 * vector/descriptor, preemption timer value, VM-function controls, EPTP list, PML address,
 * VMREAD/VMWRITE bitmaps, EOI-exit bitmaps, PLE gap/window, TSC multiplier, PERF_GLOBAL_CTRL):
 * not offered (docs/guest-interface.md), so absent from the capability MSRs as L1 reads them
 * (SDM A.3-A.5: allowed-1 bits 63:32), and IA32_VMX_VMFUNC, which exists only if "enable VM
 * functions" may be 1 (A.11), is #GP. */
static void hidden_caps(void) {
    check(!(allowed1(cap.pin) & (PIN_PREEMPTION_TIMER | PIN_POSTED_INTERRUPTS)),
          "pin-based: no preemption timer, no posted interrupts|0x%llx", cap.pin);
    check(cap.has_proc2 && !(allowed1(cap.proc2) & PROC2_HIDDEN) && (allowed1(cap.proc2) & PROC2_EPT),
          "secondary: no APIC-register virt., virtual-interrupt delivery, PLE, VMFUNC, shadowing, PML, TSC scaling; EPT "
          "kept|0x%llx", cap.proc2);
    check(!(allowed1(cap.exit) & (EXIT_SAVE_PREEMPTION_TIMER | EXIT_LOAD_PERF_GLOBAL_CTRL)),
          "exit: no save-timer, no load PERF_GLOBAL_CTRL|0x%llx", cap.exit);
    check(!(allowed1(cap.entry) & ENTRY_LOAD_PERF_GLOBAL_CTRL), "entry: no load PERF_GLOBAL_CTRL|0x%llx", cap.entry);
    u64 v;
    u32 e = try_rdmsr(MSR_VMX_VMFUNC, &v);
    check(e == 13, "IA32_VMX_VMFUNC (491H): #GP|vector %u", e);
}

/* A VMCS made current by VMPTRLD, in a guest offered less: a processor with these capability
 * MSRs fails VMLAUNCH with a reserved control bit set: VMfailValid(7) (SDM 27.2.1.1). */
static void hidden_refused_vmcs(void) {
    static const struct { u32 field, bit; const char *name; } bad[] = {
        { F_PROC2_CTLS, PROC2_PAUSE_LOOP_EXITING, "PAUSE-loop exiting" },
        { F_PIN_CTLS, PIN_PREEMPTION_TIMER, "preemption timer" },
    };
    for (u32 i = 0; i < 2; i++) {
        if (!l2_setup(0, 0, bad[i].name)) continue;
        vw(F_PROC_CTLS, vmcs_ctl_proc | PROC_SECONDARY);
        vw(F_PROC2_CTLS, 0);
        vw(bad[i].field, vr(bad[i].field) | bad[i].bit);
        u32 o = vmx_run(&regs, 1);
        check((o & FL_ARITH) == FL_ZF && vm_error() == VMERR_ENTRY_BAD_CONTROL,
              "VMPTRLD'ed VMCS with %s: VMLAUNCH VMfailValid(7)|flags 0x%x error %u", bad[i].name, o, vm_error());
        vmclear(PA(vmcs_l2));
    }
}

/* TLFS "Enlightened VMCS": "No VMPTRLD instruction must be executed to make an enlightened
 * VMCS active or current. After the L1 hypervisor performs a VM entry with an enlightened
 * VMCS, the VMCS is considered active on the processor." The eVMCS's VersionNumber is the
 * enlightened VMCS version (4000000AH: 1); another, or an eVMCS that is not L1 memory, has no
 * TLFS-defined outcome: VMfailInvalid, as for VMLAUNCH without a current VMCS (SDM 31.3), is
 * this hypervisor's documented answer. */
static void entry_basics(void) {
    ev_fill(0);
    EV32(EV_VERSION) = 2;
    ev_run(ADDR(l2_vmcall), true);
    check(ev_fail_invalid() && exit_snap.count == exits_seen, "VersionNumber 2: VMLAUNCH VMfailInvalid|%s", ev_str());
    EV32(EV_VERSION) = 1;
    assist_use(0x7FF00000u, true); /* 2 GiB - 1 MiB: beyond this guest's RAM */
    ev_run(ADDR(l2_vmcall), true);
    check(ev_fail_invalid(), "CurrentNestedVmcs outside RAM: VMfailInvalid|%s", ev_str());
    assist_use(PA(evmcs), true);

    regs = (struct l2regs){ 0 };
    ev_run(ADDR(l2_vmcall), true);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_vmcall)), "VMLAUNCH through the eVMCS (version 1): L2 runs, VMCALL exits to L1|%s",
          ev_str());
    /* What a VM exit stores (SDM 28.2, 28.3), in the eVMCS: the TLFS has L1 read it there. */
    check(EV32(EV_EXIT_INSN_LEN) == 3 && EV64(EV_GUEST_RSP) == L2_STACK_TOP,
          "exit information and guest state written back: length 3, RSP|%s", ev_str());
    check(exit_snap.esp == run_host_rsp, "host state from the eVMCS: ESP = HostRsp|0x%x 0x%x", exit_snap.esp,
          run_host_rsp);
    /* Clean fields: "The L1 hypervisor must clear the corresponding VMCS clean fields every time
     * it modifies the enlightened VMCS" (TLFS "Clean Fields"); L0 sets them all once it has read
     * the eVMCS (docs/guest-interface.md, as KVM). */
    check(EV32(EV_CLEAN_FIELDS) == CLEAN_ALL, "L0 set every clean bit|0x%x", EV32(EV_CLEAN_FIELDS));
    ev_run(ADDR(l2_vmcall), true);
    check(ev_fail_valid(VMERR_VMLAUNCH_NOT_CLEAR), "VMLAUNCH of the launched eVMCS: VMfailValid(4), error in the eVMCS|%s",
          ev_str());
    ev_run(ADDR(l2_cpuid), false);
    check(ev_exit(EXIT_CPUID, ADDR(l2_cpuid)) && EV32(EV_EXIT_INSN_LEN) == 2, "VMRESUME: CPUID exit (10, length 2)|%s",
          ev_str());
}

/* TLFS "Clean Fields": "The L0 hypervisor may choose to cache parts of the enlightened VMCS.
 * The enlightened VMCS clean fields control which parts of the enlightened VMCS are reloaded
 * from guest memory on a nested VM entry. The L1 hypervisor must clear the corresponding VMCS
 * clean fields every time it modifies the enlightened VMCS, otherwise the L0 hypervisor might
 * use a stale version." This L0 caches every group: a change under a set bit is not seen. */
static void clean_fields(void) {
    /* A control: unconditional I/O exiting (PrimaryProcessorControls, CONTROL_PROC). */
    u32 proc = EV32(EV_PROC);
    EV32(EV_PROC) = proc | PROC_UNCOND_IO_EXITING;
    ev_run(ADDR(l2_in_imm), false);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_in_imm) + 2), "I/O exiting set under a set CONTROL_PROC bit: ignored (IN ran)|%s",
          ev_str());
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_CONTROL_PROC;
    ev_run(ADDR(l2_in_imm), false);
    check(ev_exit(EXIT_IO, ADDR(l2_in_imm)), "CONTROL_PROC cleared: IN AL,E0H exits (30)|%s", ev_str());
    /* Exit qualification for I/O instructions (SDM Table 28-5), in the eVMCS. */
    check(EV64(EV_EXIT_QUALIFICATION) == PORT_E0_IN_IMM && EV32(EV_EXIT_INSN_LEN) == 2,
          "its qualification (port E0H, IN, immediate, 1 byte) and length 2 in the eVMCS|%s", ev_str());
    EV32(EV_PROC) = proc;
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_CONTROL_PROC;

    /* The exception bitmap (CONTROL_EXCPN): #UD. */
    EV32(EV_EXCEPTION_BITMAP) = 1u << 6;
    memset((void *)&l2_seen, 0, sizeof l2_seen);
    ev_run(ADDR(l2_ud2), false);
    check(l2_seen.vector == 6 && l2_seen.eip == ADDR(l2_ud2) && last == 0 && EV32(EV_EXIT_REASON) == EXIT_VMCALL,
          "#UD in the bitmap under a set CONTROL_EXCPN bit: ignored, L2's own handler ran|vector %u eip 0x%x %s",
          l2_seen.vector, l2_seen.eip, ev_str());
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_CONTROL_EXCPN;
    ev_run(ADDR(l2_ud2), false);
    check(ev_exit(EXIT_EXCEPTION, ADDR(l2_ud2)) && EV32(EV_EXIT_INTR_INFO) == (INTR_VALID | INTR_TYPE_HW_EXCEPTION | 6),
          "CONTROL_EXCPN cleared: #UD exits (0), interruption information 80000306H in the eVMCS|%s", ev_str());
    EV32(EV_EXCEPTION_BITMAP) = 0;
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_CONTROL_EXCPN;

    /* A guest register: RSP (GUEST_BASIC). L2 records the ESP it runs with. (What the eVMCS
     * holds after the exit: L0 rewrites only fields whose value the exit changed, so L1's
     * write under the set bit may stay there; docs/guest-interface.md.) */
    EV64(EV_GUEST_RSP) = L2_STACK_TOP - 64;
    l2_esp = 0;
    ev_run(ADDR(l2_esp_vmcall), false);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_esp_vmcall) + 6) && l2_esp == L2_STACK_TOP,
          "RSP changed under a set GUEST_BASIC bit: L2 ran with the old RSP|L2 ESP 0x%x %s", l2_esp, ev_str());
    EV64(EV_GUEST_RSP) = L2_STACK_TOP - 64;
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_GUEST_BASIC;
    ev_run(ADDR(l2_esp_vmcall), false);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_esp_vmcall) + 6) && l2_esp == L2_STACK_TOP - 64 && EV64(EV_GUEST_RSP) == L2_STACK_TOP - 64,
          "GUEST_BASIC cleared: the new RSP counts (L2 ran with it; the eVMCS has it)|L2 ESP 0x%x %s", l2_esp, ev_str());
    /* GuestRip is in no group: read at every entry (every run above gave a new one). */
}

/* TLFS "Enlightened MSR Bitmap": "The L1 hypervisor may collaborate with the L0 hypervisor to
 * make MSR accesses more efficient. It can enable enlightened MSR bitmaps by setting the
 * corresponding field in the enlightened VMCS to 1. When enabled, the L0 hypervisor does not
 * monitor the MSR bitmaps for changes. Instead, the L1 hypervisor must invalidate the
 * corresponding clean field after making changes to one of the MSR bitmaps." IA32_SYSENTER_CS
 * (174H) is an MSR this L0 lets L2 read without an exit when L1 does not ask for one. */
static void set_msr_read_bit(u32 msr, bool on) {
    if (on) msr_bitmap[msr >> 3] |= (u8)(1u << (msr & 7));
    else msr_bitmap[msr >> 3] &= (u8)~(1u << (msr & 7));
}
static void msr_bitmap_cases(void) {
    memset(msr_bitmap, 0, sizeof msr_bitmap);
    EV32(EV_PROC) |= PROC_USE_MSR_BITMAPS;
    EV64(EV_MSR_BITMAP) = PA(msr_bitmap);
    EV32(EV_ENLIGHTENMENTS) = EV_ENLIGHTEN_MSR_BITMAP;
    EV32(EV_CLEAN_FIELDS) &= ~(CLEAN_CONTROL_PROC | CLEAN_MSR_BITMAP | CLEAN_ENLIGHTENMENTSCONTROL);
    regs.ecx = MSR_SYSENTER_CS_;
    ev_run(ADDR(l2_rdmsr), false);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_rdmsr) + 2), "MSR bitmap without 174H: L2's RDMSR 174H does not exit|%s", ev_str());
    set_msr_read_bit(MSR_SYSENTER_CS_, true);
    regs.ecx = MSR_SYSENTER_CS_;
    ev_run(ADDR(l2_rdmsr), false);
    /* Under snapshot=N (args=snapshots) the vCPU is restored every N exits and L0 merges L1's
     * MSR bitmap again after a restore (as KVM forces after a migration): "does not monitor"
     * allows L0 to read it, so a change may then be seen. The check is not made there. */
    if (has_word(boot.cmdline, "snapshots"))
        skip("snapshot=N: L0 merges the MSR bitmap again after each restore",
             "enlightened MSR bitmap: 174H marked, MSR_BITMAP clean bit set: not seen, no exit");
    else
        check(ev_exit(EXIT_VMCALL, ADDR(l2_rdmsr) + 2),
              "enlightened MSR bitmap: 174H marked, MSR_BITMAP clean bit set: not seen, no exit|%s", ev_str());
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_MSR_BITMAP;
    regs.ecx = MSR_SYSENTER_CS_;
    ev_run(ADDR(l2_rdmsr), false);
    check(ev_exit(EXIT_RDMSR, ADDR(l2_rdmsr)), "MSR_BITMAP cleared: RDMSR 174H exits to L1 (31)|%s", ev_str());
    /* Without the enlightenment (its group cleared so that the change is read) L1's bitmap
     * counts at every entry, as the SDM has the processor read it (25.6.9). */
    EV32(EV_ENLIGHTENMENTS) = 0;
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_ENLIGHTENMENTSCONTROL;
    set_msr_read_bit(MSR_SYSENTER_CS_, false);
    regs.ecx = MSR_SYSENTER_CS_;
    ev_run(ADDR(l2_rdmsr), false);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_rdmsr) + 2),
          "without the enlightenment the cleared bit counts at once (clean bit set)|%s", ev_str());
    set_msr_read_bit(MSR_SYSENTER_CS_, true);
    regs.ecx = MSR_SYSENTER_CS_;
    ev_run(ADDR(l2_rdmsr), false);
    check(ev_exit(EXIT_RDMSR, ADDR(l2_rdmsr)), "and so does a set one|%s", ev_str());
    EV32(EV_PROC) &= ~PROC_USE_MSR_BITMAPS;
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_CONTROL_PROC;
}

/* TLFS "Enlightened VMCS": "Any VMREAD or VMWRITE instructions while an enlightened VMCS is
 * active is unsupported and can result in unexpected behavior." This hypervisor's answer
 * (docs/guest-interface.md): VMREAD reads the eVMCS, a field it lacks is VMfailValid(12) with
 * the error in the eVMCS; VMWRITE is VMfailInvalid and VMPTRST stores FFFFFFFF_FFFFFFFFH, as
 * without a current VMCS (SDM 31.3: the eVMCS is not made current by VMPTRLD). */
static void vmx_insns_in_use(void) {
    u32 v = 0;
    u32 o = vmread(F_EXIT_REASON, &v);
    check(o == VM_OK && v == EV32(EV_EXIT_REASON), "VMREAD of the exit reason reads the eVMCS|%s %u", vm_str(o), v);
    o = vmread(F_PLE_GAP, &v);
    check(o == VM_FAIL_VALID && EV32(EV_VM_INSTRUCTION_ERROR) == VMERR_UNSUPPORTED_FIELD,
          "VMREAD of a field the eVMCS lacks (PLE gap): VMfailValid(12) in the eVMCS|%s %u", vm_str(o),
          EV32(EV_VM_INSTRUCTION_ERROR));
    u64 rsp = EV64(EV_GUEST_RSP);
    o = vmwrite(F_GUEST_RSP, 0x1234);
    check(o == VM_FAIL_INVALID && EV64(EV_GUEST_RSP) == rsp, "VMWRITE: VMfailInvalid, the eVMCS unchanged|%s", vm_str(o));
    u64 p = 0;
    o = vmptrst(&p);
    check(o == VM_OK && p == ~0ull, "VMPTRST: FFFFFFFF_FFFFFFFFH|%s 0x%llx", vm_str(o), p);
}

/* The controls eVMCS v1 cannot express, set in the eVMCS anyway (CONTROL_GRP1 holds
 * PinControls and SecondaryProcessorControls; CONTROL_PROC the primary controls): the entry
 * fails as the capability MSRs say it must, VMfailValid(7) (SDM 27.2.1.1), the error in the
 * eVMCS's VM-instruction error member (TLFS: L1 reads the VMCS there) and through VMREAD. */
static void hidden_refused_evmcs(void) {
    u32 proc = EV32(EV_PROC), pin = EV32(EV_PIN), proc2 = EV32(EV_PROC2);
    EV32(EV_PROC) = proc | PROC_SECONDARY;
    EV32(EV_PROC2) = PROC2_PAUSE_LOOP_EXITING;
    EV32(EV_CLEAN_FIELDS) &= ~(CLEAN_CONTROL_PROC | CLEAN_CONTROL_GRP1);
    ev_run(ADDR(l2_vmcall), false);
    u32 e = 0;
    vmread(F_VM_INSTRUCTION_ERROR, &e);
    check(ev_fail_valid(VMERR_ENTRY_BAD_CONTROL) && e == VMERR_ENTRY_BAD_CONTROL,
          "PAUSE-loop exiting through the eVMCS: VMfailValid(7), in the eVMCS and by VMREAD|%s (VMREAD %u)", ev_str(), e);
    EV32(EV_PROC2) = 0;
    EV32(EV_PIN) = pin | PIN_PREEMPTION_TIMER;
    EV32(EV_CLEAN_FIELDS) &= ~CLEAN_CONTROL_GRP1;
    ev_run(ADDR(l2_vmcall), false);
    check(ev_fail_valid(VMERR_ENTRY_BAD_CONTROL), "the preemption timer through the eVMCS: VMfailValid(7)|%s", ev_str());
    EV32(EV_PIN) = pin;
    EV32(EV_PROC) = proc;
    EV32(EV_PROC2) = proc2;
    EV32(EV_CLEAN_FIELDS) &= ~(CLEAN_CONTROL_PROC | CLEAN_CONTROL_GRP1);
    ev_run(ADDR(l2_vmcall), false);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_vmcall)), "without them VMRESUME enters L2 again|%s", ev_str());
}

/* TLFS "Enlightened VMCS": "The L1 hypervisor can execute a VMCLEAR instruction to transition
 * an enlightened VMCS from the active to the non-active state." This hypervisor then reads the
 * whole eVMCS at its next use, whatever the clean bits (docs/guest-interface.md; a VMCLEARed
 * eVMCS is a new one to L0), and VMLAUNCH, not VMRESUME, starts it again (launch state clear,
 * SDM 31.3 VMCLEAR), without VMCLEAR writing into the eVMCS (it has no launch-state member). */
static void vmclear_ends_use(void) {
    static u8 before[1024];
    memcpy(before, evmcs, sizeof before);
    u32 o = vmclear(PA(evmcs));
    check(o == VM_OK && !memcmp(before, evmcs, sizeof before), "VMCLEAR of the eVMCS: VMsucceed, nothing written into it|%s",
          vm_str(o));
    EV64(EV_GUEST_RSP) = L2_STACK_TOP - 128; /* GUEST_BASIC left clean */
    ev_run(ADDR(l2_vmcall), true);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_vmcall)) && EV64(EV_GUEST_RSP) == L2_STACK_TOP - 128,
          "after VMCLEAR: VMLAUNCH runs L2, every group read again (RSP under a set bit counts)|%s", ev_str());
    /* VMPTRLD of an ordinary VMCS ends the eVMCS's use too; VMPTRST then names that VMCS. */
    init_region(vmcs_a, cap.rev);
    u64 p = 0;
    o = vmptrld(PA(vmcs_a));
    u32 o2 = vmptrst(&p);
    check(o == VM_OK && o2 == VM_OK && p == PA(vmcs_a), "VMPTRLD of a VMCS: it is current (VMPTRST)|%s 0x%llx", vm_str(o), p);
    vmclear(PA(vmcs_a));
    ev_run(ADDR(l2_vmcall), true);
    check(ev_exit(EXIT_VMCALL, ADDR(l2_vmcall)), "the eVMCS again (EnlightenVmEntry still 1): VMLAUNCH runs L2|%s", ev_str());
}

void guest_main(void) {
    guest_init("evmcs");
    con_use_hypercall(has_word(boot.cmdline, "console=vmcall"));
    char buf[16];
    bool off = word_value(boot.cmdline, "hv", buf, sizeof buf) && !strcmp(buf, "off");
    setup_l1();
    if (!under_hv()) {
        skip("not under hv", "the enlightened VMCS (a Hyper-V interface of this hypervisor only)");
        l1_end();
    }
    if (!caps_read()) FAIL("VMX and its capability MSRs|CPUID.1:ECX.VMX %d, first missing MSR 0x%x", vmx_cpuid, cap.missing);
    if (off) {
        without_hyperv();
        l1_end();
    }
    interface();
    hidden_caps();
    if (!enter_root()) FAIL("VMXON|CR4 0x%x", cr4_vmx);
    hidden_refused_vmcs();
    entry_basics();
    clean_fields();
    msr_bitmap_cases();
    vmx_insns_in_use();
    hidden_refused_evmcs();
    vmclear_ends_use();
    l1_end();
}
