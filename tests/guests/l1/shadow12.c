/* VMCS shadowing for L1's own L2 (SDM Vol. 3C 25.10 "VMCS types", 25.6.15
 * "VMCS shadowing bitmap addresses", 26.1.3, 27.1, 27.2.1.1, 27.3.1.5,
 * 31.3 VMREAD/VMWRITE): L1 builds a shadow VMCS (revision | bit 31), links
 * it from vmcs_l2 with "VMCS shadowing" and its VMREAD/VMWRITE bitmaps;
 * L2, in VMX non-root operation at CPL 0 (no VMXON of its own), executes
 * VMREAD/VMWRITE. A field whose bitmap bit is 0 reads or writes the
 * shadow VMCS without a VM exit; bit 1, or an encoding above bit 14, exits
 * to L1 (23/25). Under our hypervisor every such instruction of L2 exits to
 * L0, which does what the processor would (kernel/nested/shadow12.ts). */
#include "l1.h"

#define F_VMREAD_BITMAP 0x2026u
#define F_VMWRITE_BITMAP 0x2028u
#define EXIT_VMWRITE 25
#define SHADOW_BIT 0x80000000u
#define NO_FIELD 0x4BFEu      /* 32-bit guest-state index 1FFH: no processor has it */
#define EXITING_FIELD F_GUEST_RSP /* its bits are 1 in both bitmaps */
#define ENTRY_QUAL_LINK 4     /* failed entry: VMCS link pointer (27.8) */

static u8 shadow_vmcs[4096] ALIGNED(4096);
static u8 other_vmcs[4096] ALIGNED(4096);
static u8 vmread_bm[4096] ALIGNED(4096);
static u8 vmwrite_bm[4096] ALIGNED(4096);
static volatile u32 l2_mem_slot;

/* L2: EAX = field encoding. Each snippet sets every arithmetic flag first
 * (so that VMsucceed is seen to clear them), executes the instruction and
 * leaves EFLAGS in EDX (l2_sh_done), then VMCALL. */
extern char l2_sh_read[], l2_sh_read_insn[], l2_sh_write[], l2_sh_write_insn[], l2_sh_read_mem[], l2_sh_write_mem[],
    l2_sh_done[];
__asm__(".text\n"
        ".globl l2_sh_read, l2_sh_read_insn, l2_sh_write, l2_sh_write_insn, l2_sh_read_mem, l2_sh_write_mem, l2_sh_done\n"
        "l2_sh_read:\n"              /* EBX := field EAX */
        "  pushl $0x8d7\n  popfl\n"
        "l2_sh_read_insn:\n"
        "  vmread %eax, %ebx\n"
        "  jmp l2_sh_done\n"
        "l2_sh_write:\n"             /* field EAX := ECX */
        "  pushl $0x8d7\n  popfl\n"
        "l2_sh_write_insn:\n"
        "  vmwrite %ecx, %eax\n"
        "  jmp l2_sh_done\n"
        "l2_sh_read_mem:\n"          /* [EDI] := field EAX */
        "  pushl $0x8d7\n  popfl\n"
        "  vmread %eax, (%edi)\n"
        "  jmp l2_sh_done\n"
        "l2_sh_write_mem:\n"         /* field EAX := [ESI] */
        "  pushl $0x8d7\n  popfl\n"
        "  vmwrite (%esi), %eax\n"
        "  jmp l2_sh_done\n"
        "l2_sh_done:\n"
        "  pushfl\n  popl %edx\n"
        "  vmcall\n"
        "  jmp l2_stray\n");

static const char *flags_str(u32 fl) {
    switch (fl & FL_ARITH) {
    case 0: return "VMsucceed";
    case FL_CF: return "VMfailInvalid";
    case FL_ZF: return "VMfailValid";
    }
    return "other flags";
}

/* L2 ran to its VMCALL (no exit for the VMX instruction) with this outcome. */
static bool l2_done(u32 flags) { return vmcall_at(l2_sh_done, 2) && (regs.edx & FL_ARITH) == flags; }

/* Run a snippet from a fresh RIP. */
static void run_l2(char *label, u32 eax) {
    regs.eax = eax;
    l2_run(ADDR(label));
}

/* A field of the shadow VMCS as L1 reads it: VMPTRLD of the shadow, VMREAD,
 * VMCLEAR of the shadow (the processor may cache it, 25.11.1), and vmcs_l2
 * current again. */
static u64 shadow_field(u32 field, u32 *outcome) {
    u32 lo = 0, hi = 0, o = vmptrld(PA(shadow_vmcs));
    if (o == VM_OK) o = vmread(field, &lo);
    if (o == VM_OK && (field & 0x6000u) == 0x2000u && !(field & 1)) o = vmread(field | 1, &hi);
    vmclear(PA(shadow_vmcs));
    vmptrld(PA(vmcs_l2));
    *outcome = o;
    return ((u64)hi << 32) | lo;
}

/* L2's segments: flat ring-0 (as l2_setup_ex) or flat ring-3 ones. */
static void set_l2_cpl(u32 cpl) {
    static const u32 dsegs[] = { F_GUEST_ES_SEL, F_GUEST_SS_SEL, F_GUEST_DS_SEL, F_GUEST_FS_SEL, F_GUEST_GS_SEL };
    for (int i = 0; i < 5; i++) {
        u32 idx = dsegs[i] - F_GUEST_ES_SEL;
        vw(dsegs[i], cpl ? SEL_UDATA : SEL_KDATA);
        vw(F_GUEST_ES_AR + idx, cpl ? (AR_DATA32 | (3u << 5)) : AR_DATA32);
    }
    vw(F_GUEST_CS_SEL, cpl ? SEL_UCODE : SEL_KCODE);
    vw(F_GUEST_CS_AR, cpl ? (AR_CODE32 | (3u << 5)) : AR_CODE32);
}

static void bm_clear_all(void) {
    memset(vmread_bm, 0, sizeof vmread_bm);
    memset(vmwrite_bm, 0, sizeof vmwrite_bm);
    bitmap_set(vmread_bm, EXITING_FIELD);
    bitmap_set(vmwrite_bm, EXITING_FIELD);
}

/* The instruction information of a VMREAD/VMWRITE register form (28.2.5
 * Table 28-14): reg1 in 6:3, register form bit 10, reg2 in 31:28; the
 * other bits are undefined for this form. */
#define INFO_REG_MASK 0xF0000478u
#define INFO_REG(reg1, reg2) (((u32)(reg2) << 28) | (1u << 10) | ((u32)(reg1) << 3))
#define R_EAX 0
#define R_ECX 1
#define R_EBX 3

/* L2 under L1's EPT: the memory operand's L2-physical address goes through
 * L1's EPT; where L1's EPT refuses the access, the VMREAD/VMWRITE is an EPT
 * violation for L1 (exit 48, 28.2.1 Table 28-7: access, the entry's
 * permissions, linear address valid, bit 8 = the operand's own
 * translation). ept_page is mapped with a 4-KByte EPT page. */
static void shadowing_under_ept(void) {
    if (!ept_offered()) {
        skip("EPT not offered", "L2 VMREAD/VMWRITE memory operands under L1's EPT");
        return;
    }
    if (!l2_setup(0, PROC2_EPT | PROC2_VMCS_SHADOWING, "L2 with VMCS shadowing under L1's EPT")) return;
    ept_build();
    vw64(F_EPT_POINTER, PA(ept_pml4) | (3 << 3) | 6);
    bm_clear_all();
    vw64(F_VMREAD_BITMAP, PA(vmread_bm));
    vw64(F_VMWRITE_BITMAP, PA(vmwrite_bm));
    vw64(F_VMCS_LINK_PTR, PA(shadow_vmcs));
    volatile u32 *slot = (volatile u32 *)(ept_page + 0x40);
    *slot = 0xDEADBEEF;
    regs.edi = ADDR(slot);
    run_l2(l2_sh_read_mem, F_GUEST_ES_SEL);
    check(l2_done(0) && *slot == 0x4321, "L2 VMREAD to memory under L1's EPT|%s slot 0x%x", run_str(), *slot);
    ept_set(PA(ept_page) | EPT_R | EPT_WB);
    invept_single();
    *slot = 0xDEADBEEF;
    run_l2(l2_sh_read_mem, F_GUEST_ES_SEL);
    u64 gpa = vr64(F_GUEST_PHYS_ADDR);
    u32 lin = vr(F_GUEST_LINEAR_ADDR);
    check(exit_is(EXIT_EPT_VIOLATION) && (ex.qual & 0x1FF) == (2 | (1 << 3) | (1 << 7) | (1 << 8)) &&
              gpa == PA(slot) && lin == ADDR(slot) && ex.rip == ADDR(l2_sh_read_mem) + 6 && *slot == 0xDEADBEEF,
          "L2 VMREAD to a page L1's EPT maps read-only: EPT violation (48), write, R, linear address, to L1|%s gpa 0x%llx lin 0x%x",
          run_str(), gpa, lin);
    ept_set(0);
    invept_single();
    *slot = 0x77;
    regs.esi = ADDR(slot);
    run_l2(l2_sh_write_mem, F_GUEST_ES_SEL);
    check(exit_is(EXIT_EPT_VIOLATION) && (ex.qual & 0x1FF) == (1 | (1 << 7) | (1 << 8)),
          "L2 VMWRITE from a page L1's EPT does not map: EPT violation (48), read, no permissions|%s", run_str());
    ept_set(PA(ept_page) | EPT_RWX | EPT_WB);
    invept_single();
    run_l2(l2_sh_write_mem, F_GUEST_ES_SEL);
    u32 o;
    u64 sv = shadow_field(F_GUEST_ES_SEL, &o);
    check(l2_done(0) && sv == 0x77, "L2 VMWRITE from memory under L1's EPT, page mapped again|%s shadow 0x%llx", run_str(), sv);
}

void test_l2_vmcs_shadowing(void) {
    bool offered = (allowed1(cap.proc) & PROC_SECONDARY) && (allowed1(cap.proc2) & PROC2_VMCS_SHADOWING);
    if (!offered) {
        HV_CHECK(false, "VMCS shadowing offered to L1|PROCBASED_CTLS2 0x%llx", cap.proc2);
        return;
    }
    if (!need_root("VMCS shadowing for L2")) return;
    diag("VMCS shadowing for L2");

    /* The shadow VMCS: revision | bit 31, VMCLEAR, then L1 fills it. */
    init_region(shadow_vmcs, cap.rev | SHADOW_BIT);
    u32 o = vmclear(PA(shadow_vmcs));
    u32 o2 = o == VM_OK ? vmptrld(PA(shadow_vmcs)) : o;
    check(o == VM_OK && o2 == VM_OK, "VMCLEAR and VMPTRLD of a shadow VMCS (revision with bit 31 set)|%s %s", out_str(o),
          out_str(o2));
    if (o2 != VM_OK) return;
    vmcs_errors = 0;
    vw(F_GUEST_RIP, 0x12345678);
    vw(F_EXCEPTION_BITMAP, 0x0000A5A5);
    vw(F_GUEST_ES_SEL, 0x1234);
    vw64(F_TSC_OFFSET, 0x8765432111223344ull);
    vw(F_GUEST_RSP, 0x7777);
    u32 v = 0;
    o = vmread(F_EXCEPTION_BITMAP, &v);
    check(vmcs_errors == 0 && o == VM_OK && v == 0xA5A5, "VMWRITE/VMREAD of a current shadow VMCS|%u failed, 0x%x", vmcs_errors,
          v);

    /* 27.1: VM entry with a shadow VMCS current is VMfailInvalid. (Its
     * controls are all 0 here, so no entry can happen either way.) */
    u32 r = vmx_run(&regs, 1);
    CHECK_SDM(r != 0 && (r & FL_ARITH) == FL_CF, "Bochs 2.7 has no 27.1 shadow-VMCS check: VMfailValid from later checks",
              "VMLAUNCH with a shadow VMCS current -> VMfailInvalid|%s", r == 0 ? "it entered a guest" : flags_str(r));
    r = vmx_run(&regs, 0);
    CHECK_SDM(r != 0 && (r & FL_ARITH) == FL_CF, "Bochs 2.7 has no 27.1 shadow-VMCS check: VMfailValid from later checks",
              "VMRESUME with a shadow VMCS current -> VMfailInvalid|%s", r == 0 ? "it entered a guest" : flags_str(r));
    u32 shadow_err = vm_error(); /* what those VM entries left in it (Bochs: an error number) */
    vmclear(PA(shadow_vmcs));

    if (!l2_setup(0, PROC2_VMCS_SHADOWING, "L2 with VMCS shadowing")) return;
    bm_clear_all();
    vw64(F_VMREAD_BITMAP, PA(vmread_bm));
    vw64(F_VMWRITE_BITMAP, PA(vmwrite_bm));
    vw64(F_VMCS_LINK_PTR, PA(shadow_vmcs));
    vw(F_EXCEPTION_BITMAP, 0);
    check(vmcs_errors == 0 && vr64(F_VMREAD_BITMAP) == PA(vmread_bm),
          "the VMREAD/VMWRITE bitmap fields exist with VMCS shadowing offered|%u VMWRITEs failed", vmcs_errors);

    /* VMREAD in L2, bitmap bit 0: the shadow's value, VMsucceed, no exit. */
    regs.ebx = 0xDEADBEEF;
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(l2_done(0) && regs.ebx == 0xA5A5,
          "L2 VMREAD (bit 0): the shadow VMCS's field, VMsucceed, no exit to L1|%s ebx 0x%x flags 0x%x", run_str(), regs.ebx,
          regs.edx);
    run_l2(l2_sh_read, F_GUEST_RIP);
    check(l2_done(0) && regs.ebx == 0x12345678, "L2 VMREAD of a natural-width field of the shadow|%s ebx 0x%x", run_str(),
          regs.ebx);
    run_l2(l2_sh_read, F_GUEST_ES_SEL);
    check(l2_done(0) && regs.ebx == 0x1234, "L2 VMREAD of a 16-bit field of the shadow, zero-extended|%s ebx 0x%x", run_str(),
          regs.ebx);
    run_l2(l2_sh_read, F_TSC_OFFSET | 1);
    u32 hi = regs.ebx;
    run_l2(l2_sh_read, F_TSC_OFFSET);
    check(l2_done(0) && regs.ebx == 0x11223344 && hi == 0x87654321,
          "L2 VMREAD of a 64-bit field of the shadow: full (bits 31:0) and high encodings|%s 0x%x 0x%x", run_str(), hi,
          regs.ebx);
    l2_mem_slot = 0xDEADBEEF;
    regs.edi = ADDR(&l2_mem_slot);
    run_l2(l2_sh_read_mem, F_EXCEPTION_BITMAP);
    check(l2_done(0) && l2_mem_slot == 0xA5A5, "L2 VMREAD to memory|%s slot 0x%x", run_str(), l2_mem_slot);

    /* VMWRITE in L2, bitmap bit 0: the shadow VMCS takes the value. */
    regs.ecx = 0x5A5A;
    run_l2(l2_sh_write, F_EXCEPTION_BITMAP);
    bool ran = l2_done(0);
    u32 own = vr(F_EXCEPTION_BITMAP);
    u64 sv = shadow_field(F_EXCEPTION_BITMAP, &o);
    check(ran && o == VM_OK && sv == 0x5A5A && own == 0,
          "L2 VMWRITE (bit 0): VMsucceed, no exit; L1's VMREAD of the shadow sees it, vmcs_l2's field unchanged|%s shadow 0x%llx (%s) own 0x%x",
          run_str(), sv, out_str(o), own);
    regs.ecx = 0xCAFE0001;
    run_l2(l2_sh_write, F_TSC_OFFSET | 1);
    ran = l2_done(0);
    sv = shadow_field(F_TSC_OFFSET, &o);
    check(ran && sv == 0xCAFE000111223344ull, "L2 VMWRITE of the high half of a 64-bit field of the shadow|%s 0x%llx", run_str(),
          sv);
    l2_mem_slot = 0x0BADF00D;
    regs.esi = ADDR(&l2_mem_slot);
    run_l2(l2_sh_write_mem, F_GUEST_RIP);
    ran = l2_done(0);
    sv = shadow_field(F_GUEST_RIP, &o);
    check(ran && sv == 0x0BADF00D, "L2 VMWRITE from memory|%s 0x%llx", run_str(), sv);
    regs.ecx = 0x33;
    run_l2(l2_sh_write, F_EXIT_REASON);
    ran = (cap.misc & MISC_VMWRITE_ANY) ? l2_done(0) : (l2_done(FL_ZF) && vm_error() == VMERR_READ_ONLY_FIELD);
    sv = shadow_field(F_EXIT_REASON, &o);
    check(ran && sv == ((cap.misc & MISC_VMWRITE_ANY) ? 0x33u : 0u),
          "L2 VMWRITE to a read-only field: as IA32_VMX_MISC bit 29 says|%s flags 0x%x shadow 0x%llx", run_str(), regs.edx, sv);
    /* L2 sees L1's later changes to the shadow. */
    vmptrld(PA(shadow_vmcs));
    vw(F_GUEST_ES_SEL, 0x4321);
    vmclear(PA(shadow_vmcs));
    vmptrld(PA(vmcs_l2));
    run_l2(l2_sh_read, F_GUEST_ES_SEL);
    check(l2_done(0) && regs.ebx == 0x4321, "L2 VMREAD after L1 changed the shadow with VMWRITE|%s ebx 0x%x", run_str(),
          regs.ebx);

    /* Bitmap bit 1, or an encoding beyond bit 14: exit to L1 (26.1.3). */
    run_l2(l2_sh_read, EXITING_FIELD);
    check(exit_is(EXIT_VMREAD) && ex.rip == ADDR(l2_sh_read_insn) && ex.len == 3 &&
              (ex.info & INFO_REG_MASK) == INFO_REG(R_EBX, R_EAX),
          "L2 VMREAD (bit 1): exit 23 to L1 with the instruction information|%s", run_str());
    regs.ecx = 1;
    run_l2(l2_sh_write, EXITING_FIELD);
    check(exit_is(EXIT_VMWRITE) && ex.rip == ADDR(l2_sh_write_insn) && ex.len == 3 &&
              (ex.info & INFO_REG_MASK) == INFO_REG(R_ECX, R_EAX),
          "L2 VMWRITE (bit 1): exit 25 to L1 with the instruction information|%s", run_str());
    run_l2(l2_sh_read, 0x10000u | F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_VMREAD) && ex.rip == ADDR(l2_sh_read_insn), "L2 VMREAD of an encoding with bit 16 set: exit 23|%s",
          run_str());
    /* The bitmaps are read at each VMREAD: a bit L1 sets later counts. */
    bitmap_set(vmread_bm, F_EXCEPTION_BITMAP);
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_VMREAD), "VMREAD bitmap bit L1 set between two entries: exit 23|%s", run_str());
    bm_clear_all();

    /* A field that does not exist: VMfailValid(12) in L2, the error number
     * in the current VMCS (vmcs_l2); the shadow's error field unchanged. */
    if (cap.misc & MISC_VMWRITE_ANY) vw(F_VM_INSTRUCTION_ERROR, 0);
    run_l2(l2_sh_read, NO_FIELD);
    ran = l2_done(FL_ZF);
    u32 err = vm_error();
    sv = shadow_field(F_VM_INSTRUCTION_ERROR, &o);
    check(ran && err == VMERR_UNSUPPORTED_FIELD && sv == shadow_err,
          "L2 VMREAD of a field that does not exist (bit 0): VMfailValid(12) into the current VMCS, no exit|%s flags 0x%x error %u shadow's %llu (was %u)",
          run_str(), regs.edx, err, sv, shadow_err);
    regs.ecx = 7;
    run_l2(l2_sh_write, NO_FIELD);
    check(l2_done(FL_ZF) && vm_error() == VMERR_UNSUPPORTED_FIELD, "L2 VMWRITE of a field that does not exist: VMfailValid(12)|%s",
          run_str());

    /* Link pointer FFFFFFFF_FFFFFFFFH with shadowing: the entry succeeds
     * (27.3.1.5 checks only other values), L2's VMREAD is VMfailInvalid. */
    vw64(F_VMCS_LINK_PTR, ~0ull);
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(l2_done(FL_CF), "L2 VMREAD with link pointer FFFFFFFF_FFFFFFFFH: VMfailInvalid, no exit|%s flags 0x%x", run_str(),
          regs.edx);
    regs.ecx = 1;
    run_l2(l2_sh_write, F_EXCEPTION_BITMAP);
    check(l2_done(FL_CF), "L2 VMWRITE with link pointer FFFFFFFF_FFFFFFFFH: VMfailInvalid|%s flags 0x%x", run_str(), regs.edx);

    /* Entry checks: the link pointer names an ordinary VMCS (bit 31 clear)
     * while shadowing is on: failed entry, qualification 4 (27.3.1.5). */
    init_region(other_vmcs, cap.rev);
    vmclear(PA(other_vmcs));
    vw64(F_VMCS_LINK_PTR, PA(other_vmcs));
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_FAILED_ENTRY | EXIT_BAD_GUEST_STATE) && ex.qual == ENTRY_QUAL_LINK,
          "link pointer to a VMCS without the shadow indicator, shadowing on: entry fails (33, qualification 4)|%s", run_str());
    vw64(F_VMCS_LINK_PTR, PA(shadow_vmcs));
    vw(F_PROC2_CTLS, vmcs_ctl_proc2 & ~PROC2_VMCS_SHADOWING);
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_FAILED_ENTRY | EXIT_BAD_GUEST_STATE) && ex.qual == ENTRY_QUAL_LINK,
          "link pointer to a shadow VMCS, shadowing off: entry fails (33, qualification 4)|%s", run_str());
    vw(F_PROC2_CTLS, vmcs_ctl_proc2);
    /* 27.2.1.1: bitmap addresses 4-KiB aligned. */
    vw64(F_VMREAD_BITMAP, PA(vmread_bm) | 0x800);
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(entry_fails(VMERR_ENTRY_BAD_CONTROL), "VMREAD-bitmap address not 4-KiB aligned -> VMfailValid(7)|%s", run_str());
    vw64(F_VMREAD_BITMAP, PA(vmread_bm));
    vw64(F_VMWRITE_BITMAP, PA(vmwrite_bm) | 0x10);
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(entry_fails(VMERR_ENTRY_BAD_CONTROL), "VMWRITE-bitmap address not 4-KiB aligned -> VMfailValid(7)|%s", run_str());
    vw64(F_VMWRITE_BITMAP, PA(vmwrite_bm));
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(l2_done(0) && regs.ebx == 0x5A5A, "valid again: L2 VMREAD of the shadow|%s ebx 0x%x", run_str(), regs.ebx);

    /* The instruction's faults go through L1's exception bitmap: a #PF of
     * the memory operand (HOLE is not mapped) is exit 0 with the linear
     * address as qualification and error code 2 (write, not present). */
    vw(F_EXCEPTION_BITMAP, 1u << 14);
    regs.edi = HOLE + 0x10;
    run_l2(l2_sh_read_mem, F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_EXCEPTION) && ex.intr == (INTR_VALID | INTR_ERROR_VALID | INTR_TYPE_HW_EXCEPTION | 14) &&
              ex.intr_err == 2 && ex.qual == HOLE + 0x10 && ex.rip == ADDR(l2_sh_read_mem) + 6,
          "L2 VMREAD (bit 0) to an unmapped address, #PF in L1's exception bitmap: exit 0 to L1|%s err 0x%x", run_str(),
          ex.intr_err);
    vw(F_EXCEPTION_BITMAP, 0);

    /* L2 at CPL 3 (flat user segments): the exit decision comes first (bit
     * 1: exit 23), then CPL > 0 is #GP(0), here in L1's exception bitmap. */
    set_l2_cpl(3);
    vw(F_EXCEPTION_BITMAP, 1u << 13);
    run_l2(l2_sh_read, EXITING_FIELD);
    check(exit_is(EXIT_VMREAD) && ex.rip == ADDR(l2_sh_read_insn), "L2 at CPL 3, VMREAD (bit 1): exit 23, before the CPL check|%s",
          run_str());
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_EXCEPTION) && ex.intr == (INTR_VALID | INTR_ERROR_VALID | INTR_TYPE_HW_EXCEPTION | 13) && ex.intr_err == 0 &&
              ex.rip == ADDR(l2_sh_read_insn),
          "L2 at CPL 3, VMREAD (bit 0): #GP(0), exit 0 to L1 by its exception bitmap|%s err 0x%x", run_str(), ex.intr_err);
    set_l2_cpl(0);
    vw(F_EXCEPTION_BITMAP, 0);

    /* Without "VMCS shadowing", L2's VMREAD of the same field exits (26.1.2). */
    vw(F_PROC2_CTLS, vmcs_ctl_proc2 & ~PROC2_VMCS_SHADOWING);
    vw64(F_VMCS_LINK_PTR, ~0ull);
    run_l2(l2_sh_read, F_EXCEPTION_BITMAP);
    check(exit_is(EXIT_VMREAD) && ex.rip == ADDR(l2_sh_read_insn), "L2 VMREAD without VMCS shadowing: exit 23|%s", run_str());
    shadowing_under_ept();
}
