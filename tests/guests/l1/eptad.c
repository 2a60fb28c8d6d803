/* Accessed and dirty flags for EPT and page-modification logging (SDM Vol. 3C
 * 29.3.5, 29.3.6, 29.3.3.2; EPTP bit 6, IA32_VMX_EPT_VPID_CAP bit 21;
 * secondary control 17 "enable PML", PML address 200EH, PML index 812H,
 * exit reason 62; the entry checks of 27.2.1.1).
 *
 * L1's EPT is the one of l1.c (ept_build), with the 2-MByte pages around
 * L2's page directory and the PML test pages split into 4-KByte pages so
 * that each page has a leaf of its own. L2 runs in L1's address space with
 * L1's page directory (pd) as its paging structure. */
#include "l1.h"

#ifndef PROC2_PML
#define PROC2_PML (1u << 17)
#endif
#define EPTP_AD (1ull << 6)
#define EPT_A (1ull << 8)
#define EPT_D (1ull << 9)
#define EPTCAP_AD (1ull << 21)
#define F_PML_ADDRESS 0x200Eu
#define F_PML_INDEX 0x0812u
#define EXIT_PML_FULL 62
#define AD_PAGES 3

extern char l2_ad_pages[], l2_ad_store[], l2_ad_done[];

/* L2: EAX into the first word of ECX pages from EBX on, 4 KiB apart; then VMCALL. */
__asm__(
    ".text\n"
    ".globl l2_ad_pages, l2_ad_store, l2_ad_done\n"
    "l2_ad_pages:\n"
    "l2_ad_store:\n"
    "    movl %eax, (%ebx)\n"
    "    addl $4096, %ebx\n"
    "    decl %ecx\n"
    "    jnz l2_ad_store\n"
    "l2_ad_done:\n"
    "    vmcall\n"
    "    jmp l2_stray\n");

static u64 ad_pt[3][512] ALIGNED(4096); /* page tables for split 2-MByte pages */
static u32 ad_pt_used;
static u8 ad_page[AD_PAGES][4096] ALIGNED(4096);
static u64 pml_log[512] ALIGNED(4096);

/* The EPT entry that maps L1-physical pa with a 4-KByte page, splitting its
 * 2-MByte page the first time (0 when out of page tables). */
static u64 *ad_leaf(u32 pa) {
    u32 big = pa >> 21;
    if (ept_pd[big] & EPT_LARGE) {
        if (ad_pt_used == 3) return 0;
        u64 *pt = ad_pt[ad_pt_used++];
        for (u32 i = 0; i < 512; i++) pt[i] = ((u64)big << 21) + ((u64)i << 12) | EPT_RWX | EPT_WB;
        ept_pd[big] = PA(pt) | EPT_RWX;
    }
    u64 *pt = (u64 *)(uintptr_t)(u32)(ept_pd[big] & ~0xFFFull);
    return &pt[(pa >> 12) & 511];
}

static bool ad_build(void) {
    ept_build();
    ad_pt_used = 0;
    if (!ad_leaf(PA(pd))) return false;
    for (u32 i = 0; i < AD_PAGES; i++)
        if (!ad_leaf(PA(ad_page[i]))) return false;
    return true;
}

static void clear_flags(u64 *t, u32 n) {
    for (u32 i = 0; i < n; i++) t[i] &= ~(EPT_A | EPT_D);
}

/* L1 clears every accessed and dirty flag and invalidates (29.4.3.4). */
static void clear_all(void) {
    clear_flags(ept_pml4, 1);
    clear_flags(ept_pdpt, 1);
    clear_flags(ept_pd, 512);
    clear_flags(ept_pt, 512);
    for (u32 i = 0; i < ad_pt_used; i++) clear_flags(ad_pt[i], 512);
    invept_single();
}

static const char *flags(u64 e) { return (e & EPT_A) ? ((e & EPT_D) ? "A D" : "A") : ((e & EPT_D) ? "D" : "-"); }

static void test_ad_flags(void) {
    u32 big = PA(ept_page) >> 21;
    u64 *leaf = &ept_pt[ept_pt_index()];
    u64 *pd_leaf = ad_leaf(PA(pd));

    clear_all();
    regs.ebx = PA(ept_page);
    l2_run(ADDR(l2_pf_read));
    bool up = (ept_pml4[0] & EPT_A) && (ept_pdpt[0] & EPT_A) && (ept_pd[big] & EPT_A);
    check(vmcall_at(l2_pf_read, 2) && (*leaf & EPT_A) && !(*leaf & EPT_D) && up,
          "L2 reads a page: A set in its EPT leaf and in the PML4E, PDPTE and PDE used; D clear (29.3.5)|"
          "%s leaf %s PML4E %s PDPTE %s PDE %s", run_str(), flags(*leaf), flags(ept_pml4[0]), flags(ept_pdpt[0]),
          flags(ept_pd[big]));
    check(vmcall_at(l2_pf_read, 2) && (*pd_leaf & EPT_A) && (*pd_leaf & EPT_D),
          "L2's page walk sets A and D in the EPT leaf of its page directory (paging-structure accesses are "
          "writes with A/D enabled, 29.3.3.2)|%s leaf %s", run_str(), flags(*pd_leaf));

    regs.ebx = PA(ept_page);
    regs.eax = 0xAD0000D1;
    l2_run(ADDR(l2_write));
    check(vmcall_at(l2_write, 2) && (*leaf & EPT_A) && (*leaf & EPT_D) && *(volatile u32 *)ept_page == 0xAD0000D1,
          "L2 writes the page: D set in its EPT leaf|%s leaf %s", run_str(), flags(*leaf));

    clear_all();
    regs.ebx = PA(ept_page);
    l2_run(ADDR(l2_pf_read));
    up = (ept_pml4[0] & EPT_A) && (ept_pdpt[0] & EPT_A) && (ept_pd[big] & EPT_A);
    check(vmcall_at(l2_pf_read, 2) && (*leaf & EPT_A) && !(*leaf & EPT_D) && up,
          "L1 clears A and D and executes INVEPT; L2 reads again: A set again, D stays clear|%s leaf %s PDE %s",
          run_str(), flags(*leaf), flags(ept_pd[big]));

    /* A write to a page whose leaf is read-only: an EPT violation, no flag
     * set in the leaf (the access does not happen). */
    clear_all();
    *leaf &= ~EPT_W;
    invept_single();
    regs.ebx = PA(ept_page);
    regs.eax = 0xBAD;
    l2_run(ADDR(l2_write));
    check(ept_exit(EXIT_EPT_VIOLATION, 2, 5) && !(*leaf & EPT_D),
          "L2 write to a read/execute page: EPT violation (bits 5:3 = 101b), D not set|%s leaf %s", run_str(),
          flags(*leaf));
    *leaf |= EPT_W;
    invept_single();
}

static void test_pml(void) {
    u32 pa[AD_PAGES];
    u64 *leaf[AD_PAGES];
    for (u32 i = 0; i < AD_PAGES; i++) {
        pa[i] = PA(ad_page[i]);
        leaf[i] = ad_leaf(pa[i]);
    }
    vw64(F_PML_ADDRESS, PA(pml_log));
    vw(F_PML_INDEX, 511);
    u32 idx = vr(F_PML_INDEX);
    u64 addr = vr64(F_PML_ADDRESS);
    check(idx == 511 && addr == PA(pml_log), "PML address and PML index: VMWRITE/VMREAD|index %u address 0x%llx", idx,
          addr);

    /* Warm-up: everything else L2 touches gets its flags. */
    regs.ebx = pa[0];
    regs.ecx = AD_PAGES;
    l2_run(ADDR(l2_ad_pages));
    bool warm = exit_is(EXIT_VMCALL) && ex.rip == ADDR(l2_ad_done);

    /* L2 writes AD_PAGES clean pages: logged in order from index 511 down. */
    for (u32 i = 0; i < AD_PAGES; i++) *leaf[i] &= ~EPT_D;
    invept_single();
    memset(pml_log, 0, sizeof pml_log);
    vw(F_PML_INDEX, 511);
    regs.ebx = pa[0];
    regs.ecx = AD_PAGES;
    regs.eax = 0x10661;
    l2_run(ADDR(l2_ad_pages));
    idx = vr(F_PML_INDEX);
    check(warm && exit_is(EXIT_VMCALL) && ex.rip == ADDR(l2_ad_done) && pml_log[511] == pa[0] && pml_log[510] == pa[1] &&
              pml_log[509] == pa[2] && pml_log[508] == 0 && idx == 508,
          "PML: L2 writes 3 clean pages -> their addresses at entries 511, 510, 509, PML index 508 (29.3.6)|"
          "%s log 0x%llx 0x%llx 0x%llx 0x%llx index %u", run_str(), pml_log[511], pml_log[510], pml_log[509],
          pml_log[508], idx);

    /* A write to a page already dirty logs nothing. */
    memset(pml_log, 0, sizeof pml_log);
    vw(F_PML_INDEX, 511);
    regs.ebx = pa[0];
    regs.ecx = 1;
    l2_run(ADDR(l2_ad_pages));
    idx = vr(F_PML_INDEX);
    check(exit_is(EXIT_VMCALL) && pml_log[511] == 0 && idx == 511,
          "PML: a write to a page whose EPT dirty flag is set logs nothing|%s log 0x%llx index %u", run_str(),
          pml_log[511], idx);

    /* Index 0: the first write logs at entry 0 (index -> FFFFH); the second
     * is a page-modification log-full event: exit 62 before the write. */
    for (u32 i = 0; i < AD_PAGES; i++) *leaf[i] &= ~EPT_D;
    invept_single();
    memset(pml_log, 0, sizeof pml_log);
    vw(F_PML_INDEX, 0);
    *(volatile u32 *)ad_page[1] = 0x5A5A;
    regs.ebx = pa[0];
    regs.ecx = 2;
    regs.eax = 0x600D;
    l2_run(ADDR(l2_ad_pages));
    idx = vr(F_PML_INDEX);
    u32 word = *(volatile u32 *)ad_page[1];
    check(exit_is(EXIT_PML_FULL) && ex.qual == 0 && ex.rip == ADDR(l2_ad_store) && regs.ebx == pa[1] &&
              pml_log[0] == pa[0] && idx == 0xFFFF && word == 0x5A5A && !(*leaf[1] & EPT_D),
          "PML index 0: first write logged at entry 0, the second -> exit 62 (qualification 0) at the write, not done, "
          "D not set, index FFFFH|%s qual 0x%x ebx 0x%x log[0] 0x%llx index 0x%x word 0x%x leaf %s", run_str(), ex.qual,
          regs.ebx, pml_log[0], idx, word, flags(*leaf[1]));
    /* L1 empties the log and resumes L2: the write is done and logged. */
    vw(F_PML_INDEX, 511);
    l2_run_at(0, !l2_launched);
    idx = vr(F_PML_INDEX);
    word = *(volatile u32 *)ad_page[1];
    check(exit_is(EXIT_VMCALL) && ex.rip == ADDR(l2_ad_done) && pml_log[511] == pa[1] && idx == 510 && word == 0x600D &&
              (*leaf[1] & EPT_D),
          "after L1 resets the PML index and resumes L2: the write completes and is logged at 511|%s log 0x%llx index %u "
          "word 0x%x", run_str(), pml_log[511], idx, word);

    /* Entry checks (27.2.1.1): PML address 4-KByte aligned; PML needs EPT. */
    vw64(F_PML_ADDRESS, PA(pml_log) | 0x800);
    l2_run(ADDR(l2_vmcall));
    check(entry_fails(VMERR_ENTRY_BAD_CONTROL), "VM entry with a PML address not 4-KByte aligned -> VMfailValid(7)|%s",
          run_str());
    vw64(F_PML_ADDRESS, PA(pml_log));
    u32 p2 = vr(F_PROC2_CTLS);
    vw(F_PROC2_CTLS, p2 & ~PROC2_EPT);
    l2_run(ADDR(l2_vmcall));
    check(entry_fails(VMERR_ENTRY_BAD_CONTROL), "VM entry with \"enable PML\" and not \"enable EPT\" -> VMfailValid(7)|%s",
          run_str());
    vw(F_PROC2_CTLS, p2);
}

void test_l2_ept_ad(void) {
    if (!ept_offered()) return; /* test_l2_ept reports it */
    bool ad = (cap.ept_vpid & EPTCAP_AD) != 0;
    HV_CHECK(ad, "EPT accessed and dirty flags offered (IA32_VMX_EPT_VPID_CAP bit 21)|0x%llx", cap.ept_vpid);
    HV_CHECK(allowed1(cap.proc2) & PROC2_PML, "\"enable PML\" offered (PROCBASED_CTLS2 bit 49)|0x%llx", cap.proc2);
    if (!ad) {
        skip("EPT A/D not offered", "EPT accessed and dirty flags");
        return;
    }
    bool pml = (allowed1(cap.proc2) & PROC2_PML) != 0;
    if (!l2_setup(0, PROC2_EPT | (pml ? PROC2_PML : 0), "L2 with EPT accessed and dirty flags")) return;
    if (!ad_build()) {
        check(false, "EPT A/D: page tables for the split 2-MByte pages|more than 3 needed");
        return;
    }
    u64 eptp = PA(ept_pml4) | (3 << 3) | 6 | EPTP_AD;
    vw64(F_EPT_POINTER, eptp);
    /* 29.4.3.4: INVEPT before using an EP4TA with A/D that ran without. */
    invept_single();
    diag("L2 with EPT accessed and dirty flags");
    if (pml) {
        vw64(F_PML_ADDRESS, PA(pml_log));
        vw(F_PML_INDEX, 511);
    }
    l2_run(ADDR(l2_vmcall));
    check(vmcall_at(l2_vmcall, 0), "VM entry with EPTP bit 6 (accessed and dirty flags): L2 runs|%s", run_str());
    test_ad_flags();
    if (pml) test_pml();
    else skip("\"enable PML\" not offered", "PML");
    invept_single(); /* the next cases use this EP4TA without A/D */
}
