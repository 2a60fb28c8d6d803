/* Which VMCS fields exist (issue 9 item 6), the CR3-target list, and what a
 * failed VM entry leaves in the VMCS.
 *
 * IA32_VMX_MISC bits 24:16 give the number of CR3-target values the
 * processor supports (SDM Vol. 3D A.6: 0 to 256). CR3-target value i is
 * encoded 6008H + 2i (Appendix B.4.1: values 0-3, "if a future
 * implementation supports more than 4 CR3-target values, they will be
 * encoded consecutively following the 4 encodings given here"), so the
 * encodings of i at or above the count name no field: VMREAD and VMWRITE of
 * them fail with VMfailValid(12) (31.4). IA32_VMX_VMCS_ENUM bits 9:1 give
 * the highest index of any field (A.9), which covers the last CR3-target
 * value that exists.
 *
 * With "CR3-load exiting", MOV to CR3 exits unless the value equals one of
 * the first n CR3-target values, n = the CR3-target count (25.6.7, 26.1.3). */
#include "l1.h"

#define F_CR3_TARGET(i) (0x6008u + 2u * (i))

static void cr3_target_fields(void) {
    u32 n = MISC_CR3_TARGETS(cap.misc);
    check(n <= 256 && ((cap.misc >> 24) & 1) == (n == 256), "VMX_MISC CR3-target count %u: 0..256, bit 24 only for 256|misc 0x%llx",
          n, cap.misc);
    u32 highest = (u32)(cap.vmcs_enum >> 1) & 0x1FF;
    if (n)
        check(4 + n - 1 <= highest, "VMCS_ENUM highest index %u covers CR3-target value %u (index %u)", highest, n - 1, 4 + n - 1);
    if (!make_current(vmcs_a)) {
        check(false, "CR3-target value fields|VMCLEAR/VMPTRLD failed");
        return;
    }
    /* i < n: each field keeps what is written (natural width: 32 bits here). */
    u32 bad = 0xFFFFFFFF, bad_w = 0, bad_r = 0, bad_v = 0;
    for (u32 i = 0; i < n && i < 256; i++) {
        u32 want = 0x1000u * (i + 1) | i, v = 0;
        u32 w = vmwrite(F_CR3_TARGET(i), want), r = vmread(F_CR3_TARGET(i), &v);
        if ((w != VM_OK || r != VM_OK || v != want) && bad == 0xFFFFFFFF) {
            bad = i;
            bad_w = w;
            bad_r = r;
            bad_v = v;
        }
    }
    if (n)
        check(bad == 0xFFFFFFFF, "VMWRITE/VMREAD of CR3-target value 0..%u (6008H..%xH) keep the value|value %u: VMWRITE %s, VMREAD %s, 0x%x",
              n - 1, F_CR3_TARGET(n - 1), bad, out_str(bad_w), out_str(bad_r), bad_v);
    else
        skip("VMX_MISC offers no CR3-target values", "VMWRITE/VMREAD of CR3-target values below the count");
    /* i = n..255: no such field. */
    bad = 0xFFFFFFFF;
    for (u32 i = n; i < 256; i++) {
        u32 v = 0;
        u32 r = vmread(F_CR3_TARGET(i), &v);
        bool rok = fail_valid(r, VMERR_UNSUPPORTED_FIELD);
        u32 w = vmwrite(F_CR3_TARGET(i), 0x5000);
        bool wok = fail_valid(w, VMERR_UNSUPPORTED_FIELD);
        if ((!rok || !wok) && bad == 0xFFFFFFFF) {
            bad = i;
            bad_r = r;
            bad_w = w;
        }
    }
    if (n < 256)
        check(bad == 0xFFFFFFFF, "VMREAD/VMWRITE of CR3-target value %u..255 (%xH..%xH) -> VMfailValid(12)|value %u: VMREAD %s, VMWRITE %s",
              n, F_CR3_TARGET(n), F_CR3_TARGET(255), bad, out_str(bad_r), out_str(bad_w));
}

/* L2 executes MOV CR3, EBX with EBX = L1's CR3 (L2 shares L1's address
 * space), so letting it through changes nothing. */
static void cr3_run(u32 count, u32 slot, const char *what, bool exits) {
    u32 n = MISC_CR3_TARGETS(cap.misc);
    if (!l2_setup(PROC_CR3_LOAD_EXITING, 0, what)) return;
    u32 cr3 = read_cr3();
    for (u32 i = 0; i < n && i < 256; i++) vw(F_CR3_TARGET(i), cr3 + 0x1000u * (i + 1));
    if (slot < n) vw(F_CR3_TARGET(slot), cr3);
    vw(F_CR3_TARGET_COUNT, count);
    regs.ebx = cr3;
    l2_run(ADDR(l2_mov_cr3));
    if (exits)
        check(exit_is(EXIT_CR_ACCESS) && ex.qual == (3u | (3u << 8)), "%s: exit 28 (MOV to CR3 from EBX)|%s", what, run_str());
    else
        check(vmcall_at(l2_mov_cr3, 3), "%s: no exit, L2 goes on|%s", what, run_str());
}

static void cr3_targets(void) {
    u32 n = MISC_CR3_TARGETS(cap.misc);
    if (!n) {
        skip("VMX_MISC offers no CR3-target values", "MOV to CR3 of a CR3-target value");
        return;
    }
    if (n > 256) n = 256;
    cr3_run(n, n - 1, "CR3-load exiting, CR3 = the last CR3-target value (count = all)", false);
    cr3_run(1, 0, "CR3-load exiting, CR3 = CR3-target value 0, count 1", false);
    cr3_run(n, 256, "CR3-load exiting, CR3 in no CR3-target value", true);
    cr3_run(0, 0, "CR3-load exiting, CR3 = CR3-target value 0, count 0", true);
    if (n >= 2) cr3_run(n - 1, n - 1, "CR3-load exiting, CR3 = a CR3-target value at the count (not used)", true);
}

/* A VM entry that fails on the guest state (exit reason 33 with bit 31)
 * writes the exit reason and qualification and nothing else of the VM-exit
 * information; the valid bit of the VM-entry interruption information
 * stays set (27.8). The old values are put there with VMWRITE, which
 * VMX_MISC bit 29 allows for these read-only fields. */
static void failed_entry_fields(void) {
    const char *what = "failed VM entry leaves the other exit-information fields and the injected event";
    if (!(cap.misc & MISC_VMWRITE_ANY)) {
        skip("VMX_MISC bit 29 clear: the exit-information fields cannot be written", what);
        return;
    }
    if (!l2_setup(0, 0, what)) return;
    u32 inject = INTR_VALID | INTR_TYPE_HW_EXCEPTION | 6; /* #UD */
    vw(F_EXIT_INTR_INFO, 0x80000B0E);
    vw(F_EXIT_INTR_ERROR, 0x1234);
    vw(F_IDT_VECTORING_INFO, 0x80000300);
    vw(F_EXIT_INSN_LEN, 5);
    vw(F_EXIT_INSN_INFO, 0x7777);
    vw(F_ENTRY_INTR_INFO, inject);
    vw(F_GUEST_RFLAGS, 0); /* bit 1 clear: invalid guest state */
    l2_run(ADDR(l2_vmcall));
    u32 entry_info = vr(F_ENTRY_INTR_INFO);
    bool failed = exit_is(EXIT_FAILED_ENTRY | EXIT_BAD_GUEST_STATE);
    check(failed && ex.intr_err == 0x1234 && ex.info == 0x7777 && entry_info == inject,
          "failed VM entry: interruption error code, instruction information and the injected event's valid bit kept (27.8)"
          "|%s; error 0x%x info 0x%x, entry interruption 0x%x", run_str(), ex.intr_err, ex.info, entry_info);
    CHECK_SDM(failed && ex.intr == 0x80000B0E && ex.idt_vec == 0x80000300 && ex.len == 5,
              "Bochs 2.7 clears the interruption and IDT-vectoring information and writes the instruction length",
              "failed VM entry: interruption information, IDT-vectoring information and instruction length kept (27.8)"
              "|%s; interruption info 0x%x IDT-vectoring 0x%x length %u", run_str(), ex.intr, ex.idt_vec, ex.len);
}

void test_vmcs_fields(void) {
    if (!need_root("VMCS field existence")) return;
    diag("CR3-target value fields and the CR3-target list");
    cr3_target_fields();
    cr3_targets();
    failed_entry_fields();
}
