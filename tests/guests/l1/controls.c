/* Issue 9, items 3 and 8: the VM-execution controls an L1 sets decide what
 * L2's instructions do (SDM Vol. 3C 26.1.3 "Instructions that cause VM
 * exits conditionally", 26.3 "Changes to instruction behavior in VMX
 * non-root operation", 28.2.1 exit qualifications, 28.2.5 instruction
 * information), whatever the hypervisor below L1 wants for itself:
 *  - an instruction enable at 0 (enable RDTSCP, enable INVPCID) makes the
 *    instruction #UD in L2 (RDPID follows "enable RDTSCP");
 *  - each exiting control offered gives its exit with its qualification and
 *    instruction information;
 *  - PCID/INVPCID as L1's own processor features.
 * Each case skips where the capability MSRs (or CPUID) do not offer the
 * feature. CR8-load/store exiting is not tested: CR8 exists only in 64-bit
 * mode and this L1 runs in 32-bit protected mode. */
#include "guest.h"
#include "vmx.h"
#include "l1.h"

#define C_PROC_INVLPG_EXITING (1u << 9)
#define C_PROC_MWAIT_EXITING (1u << 10)
#define C_PROC_RDPMC_EXITING (1u << 11)
#define C_PROC_CR8_LOAD_EXITING (1u << 19)
#define C_PROC_CR8_STORE_EXITING (1u << 20)
#define C_PROC_MOV_DR_EXITING (1u << 23)
#define C_PROC_MONITOR_EXITING (1u << 29)
#define C_PROC_PAUSE_EXITING (1u << 30)
#define C_PROC_INTR_WINDOW_EXITING (1u << 2)

#define C_PROC_NMI_WINDOW_EXITING (1u << 22)
#define C_PIN_VIRTUAL_NMIS (1u << 5)
#define C_EXIT_INTR_WINDOW 7
#define C_EXIT_NMI_WINDOW 8
#define C_BLOCKING_BY_NMI (1u << 3)

#define C_PROC2_RDTSCP (1u << 3)
#define C_PROC2_WBINVD_EXITING (1u << 6)
#define C_PROC2_PLE (1u << 10)
#define C_PROC2_RDRAND_EXITING (1u << 11)
#define C_PROC2_INVPCID (1u << 12)
#define C_PROC2_RDSEED_EXITING (1u << 16)

#define C_EXIT_SAVE_DEBUG (1u << 2)
#define C_ENTRY_LOAD_DEBUG (1u << 2)
#define C_ENTRY_IA32E (1u << 9)

#define C_EXIT_INVLPG 14
#define C_EXIT_RDPMC 15
#define C_EXIT_MOV_DR 29
#define C_EXIT_MWAIT 36
#define C_EXIT_MONITOR 39
#define C_EXIT_PAUSE 40
#define C_EXIT_LDTR_TR 47
#define C_EXIT_WBINVD 54
#define C_EXIT_RDRAND 57
#define C_EXIT_INVPCID 58
#define C_EXIT_RDSEED 61

#define F_PLE_GAP 0x4020u
#define F_PLE_WINDOW 0x4022u
#define MSR_TSC_AUX 0xC0000103u
#define CR4_PCIDE (1u << 17)

/* L2 snippets: each ends with VMCALL (L1 reads the registers then). */
__asm__(".text\n"
        "ctl_stray:\n\tcli\n\thlt\n\tjmp ctl_stray\n"
        ".globl ctl_l2_rdtscp\nctl_l2_rdtscp:\n\trdtscp\n\tvmcall\n\tjmp ctl_stray\n"
        /* RDPID EAX: F3 0F C7 /7 */
        ".globl ctl_l2_rdpid\nctl_l2_rdpid:\n\t.byte 0xf3, 0x0f, 0xc7, 0xf8\n\tvmcall\n\tjmp ctl_stray\n"
        /* INVPCID EAX, [EBX]: 66 0F 38 82 03, 5 bytes */
        ".globl ctl_l2_invpcid\nctl_l2_invpcid:\n\t.byte 0x66, 0x0f, 0x38, 0x82, 0x03\n\tvmcall\n\tjmp ctl_stray\n"
        /* RDRAND ECX: 0F C7 F1; RDSEED ECX: 0F C7 F9 */
        ".globl ctl_l2_rdrand\nctl_l2_rdrand:\n\t.byte 0x0f, 0xc7, 0xf1\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_rdseed\nctl_l2_rdseed:\n\t.byte 0x0f, 0xc7, 0xf9\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_pause\nctl_l2_pause:\n\tpause\n\tvmcall\n\tjmp ctl_stray\n"
        /* ECX iterations of PAUSE, then VMCALL */
        ".globl ctl_l2_pause_loop\n.globl ctl_l2_pause_loop_insn\nctl_l2_pause_loop:\n"
        "ctl_l2_pause_loop_insn:\n1:\tpause\n\tdec %ecx\n\tjnz 1b\n\tvmcall\n\tjmp ctl_stray\n"
        /* MONITOR (EAX, ECX, EDX): 0F 01 C8; MWAIT: 0F 01 C9 */
        ".globl ctl_l2_monitor\nctl_l2_monitor:\n\t.byte 0x0f, 0x01, 0xc8\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_mwait\nctl_l2_mwait:\n\t.byte 0x0f, 0x01, 0xc9\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_invlpg\nctl_l2_invlpg:\n\tinvlpg (%ebx)\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_rdpmc\nctl_l2_rdpmc:\n\trdpmc\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_wbinvd\nctl_l2_wbinvd:\n\twbinvd\n\tvmcall\n\tjmp ctl_stray\n"
        /* STR ECX: 0F 00 C9; SIDT [EBX]: 0F 01 0B */
        ".globl ctl_l2_str\nctl_l2_str:\n\t.byte 0x0f, 0x00, 0xc9\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_sidt\nctl_l2_sidt:\n\t.byte 0x0f, 0x01, 0x0b\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_read_cr3\nctl_l2_read_cr3:\n\tmov %cr3, %eax\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_read_dr7\nctl_l2_read_dr7:\n\tmov %dr7, %eax\n\tvmcall\n\tjmp ctl_stray\n"
        ".globl ctl_l2_write_dr0\nctl_l2_write_dr0:\n\tmov %ecx, %dr0\n\tvmcall\n\tjmp ctl_stray\n"
        /* STI, then one instruction in its shadow, then VMCALL */
        ".globl ctl_l2_sti\n.globl ctl_l2_sti_end\nctl_l2_sti:\n\tsti\n\tnop\nctl_l2_sti_end:\n\tvmcall\n\tjmp ctl_stray\n");
extern const char ctl_l2_rdtscp[], ctl_l2_rdpid[], ctl_l2_invpcid[], ctl_l2_rdrand[], ctl_l2_rdseed[], ctl_l2_pause[],
    ctl_l2_pause_loop[], ctl_l2_pause_loop_insn[], ctl_l2_monitor[], ctl_l2_mwait[], ctl_l2_invlpg[], ctl_l2_rdpmc[],
    ctl_l2_wbinvd[], ctl_l2_str[], ctl_l2_sidt[], ctl_l2_read_cr3[], ctl_l2_read_dr7[], ctl_l2_write_dr0[], ctl_l2_sti[], ctl_l2_sti_end[];

static u8 invpcid_desc[16] ALIGNED(16); /* INVPCID descriptor: PCID 0, address 0 */

/* Did L2's own #UD handler run for the instruction at `at`? */
static bool l2_ud_at(const char *at) {
    return exit_is(EXIT_VMCALL) && l2_seen.count == 1 && l2_seen.vector == 6 && l2_seen.eip == ADDR(at);
}
static bool ud_exit_at(const char *at) {
    return exit_is(EXIT_EXCEPTION) && ex.intr == (INTR_VALID | INTR_TYPE_HW_EXCEPTION | 6) && ex.rip == ADDR(at);
}

static bool may_set(u64 c, u32 bits) { return (allowed1(c) & bits) == bits; }
static bool proc2_offered(u32 bits) {
    return cap.has_proc2 && may_set(cap.proc, PROC_SECONDARY) && may_set(cap.proc2, bits);
}

/* Linux 6.1's kvm_intel refuses to load unless these may be 1 (setup_vmcs_config). */
static void controls_kvm_needs(void) {
    u32 proc_need = PROC_HLT_EXITING | PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING | PROC_UNCOND_IO_EXITING |
                    C_PROC_MOV_DR_EXITING | PROC_TSC_OFFSETTING | C_PROC_MWAIT_EXITING | C_PROC_MONITOR_EXITING |
                    C_PROC_INVLPG_EXITING | C_PROC_RDPMC_EXITING | C_PROC_INTR_WINDOW_EXITING |
                    C_PROC_CR8_LOAD_EXITING | C_PROC_CR8_STORE_EXITING;
    u32 pin_need = PIN_EXT_INT_EXITING | PIN_NMI_EXITING;
    u32 exit_need = C_EXIT_SAVE_DEBUG | EXIT_ACK_INTR_ON_EXIT | EXIT_HOST_ADDR_SPACE_SIZE;
    u32 entry_need = C_ENTRY_LOAD_DEBUG | C_ENTRY_IA32E;
    check(may_set(cap.proc, proc_need) && may_set(cap.pin, pin_need) && may_set(cap.exit, exit_need) &&
              may_set(cap.entry, entry_need),
          "controls Linux 6.1 kvm_intel requires are offered|proc lacks 0x%x, pin 0x%x, exit 0x%x, entry 0x%x",
          proc_need & ~allowed1(cap.proc), pin_need & ~allowed1(cap.pin), exit_need & ~allowed1(cap.exit),
          entry_need & ~allowed1(cap.entry));
}

/* ---- RDTSCP and RDPID: "enable RDTSCP" (26.3) --------------------------------------- */
static void controls_rdtscp(void) {
    bool has_rdtscp = (cpuid(0x80000000u, 0).eax >= 0x80000001u) && (cpuid(0x80000001u, 0).edx & (1u << 27));
    bool has_rdpid = (cpuid(7, 0).ecx & (1u << 22)) != 0;
    if (!has_rdtscp) {
        skip("no RDTSCP (CPUID.80000001H:EDX[27])", "L2 RDTSCP and \"enable RDTSCP\"");
        return;
    }
    const u32 aux = 0x00A5C0DEu;
    if (try_wrmsr(MSR_TSC_AUX, aux) != NO_EXC) {
        check(false, "WRMSR IA32_TSC_AUX|vector %d", (i32)exc.vector);
        return;
    }
    /* No secondary controls at all: every secondary control is 0. */
    if (l2_setup(0, 0, "L2 RDTSCP without secondary controls")) {
        l2_run(ADDR(ctl_l2_rdtscp));
        check(l2_ud_at(ctl_l2_rdtscp), "RDTSCP, secondary controls not activated: #UD delivered to L2|%s; L2 saw %u, vector %u at 0x%x",
              run_str(), l2_seen.count, l2_seen.vector, l2_seen.eip);
        if (has_rdpid) {
            memset((void *)&l2_seen, 0, sizeof l2_seen);
            l2_run(ADDR(ctl_l2_rdpid));
            check(l2_ud_at(ctl_l2_rdpid), "RDPID, secondary controls not activated: #UD delivered to L2|%s; L2 saw %u, vector %u",
                  run_str(), l2_seen.count, l2_seen.vector);
        }
    }
    /* Secondary controls active, "enable RDTSCP" 0: the #UD exits to L1
     * through the exception bitmap. */
    if (l2_setup(0, C_PROC2_WBINVD_EXITING, "L2 RDTSCP with \"enable RDTSCP\" = 0")) {
        vw(F_EXCEPTION_BITMAP, 1u << 6);
        l2_run(ADDR(ctl_l2_rdtscp));
        check(ud_exit_at(ctl_l2_rdtscp), "RDTSCP, \"enable RDTSCP\" = 0, #UD in the exception bitmap: exit 0, vector 6|%s",
              run_str());
        if (has_rdpid) {
            l2_run(ADDR(ctl_l2_rdpid));
            check(ud_exit_at(ctl_l2_rdpid), "RDPID, \"enable RDTSCP\" = 0: exit 0, vector 6|%s", run_str());
        } else {
            skip("no RDPID (CPUID.7:ECX[22])", "RDPID, \"enable RDTSCP\" = 0: #UD");
        }
    }
    if (l2_setup(0, C_PROC2_RDTSCP, "L2 RDTSCP with \"enable RDTSCP\" = 1")) {
        l2_run(ADDR(ctl_l2_rdtscp));
        check(vmcall_at(ctl_l2_rdtscp, 3) && regs.ecx == aux, "RDTSCP, \"enable RDTSCP\" = 1: runs, ECX = IA32_TSC_AUX|%s ecx 0x%x",
              run_str(), regs.ecx);
        if (has_rdpid) {
            l2_run(ADDR(ctl_l2_rdpid));
            check(vmcall_at(ctl_l2_rdpid, 4) && regs.eax == aux, "RDPID, \"enable RDTSCP\" = 1: EAX = IA32_TSC_AUX|%s eax 0x%x",
                  run_str(), regs.eax);
        }
    }
    try_wrmsr(MSR_TSC_AUX, 0);
}

/* ---- PCID and INVPCID (L1's own, then L2's with "enable INVPCID") --------------------- */
static void controls_invpcid(void) {
    bool has_invpcid = (cpuid(7, 0).ebx & (1u << 10)) != 0;
    bool has_pcid = (cpuid(1, 0).ecx & (1u << 17)) != 0;
    if (proc2_offered(C_PROC2_INVPCID))
        check(has_invpcid, "\"enable INVPCID\" offered: L1's CPUID.7:EBX.INVPCID[10] = 1|EBX 0x%x", cpuid(7, 0).ebx);
    if (has_invpcid) {
        check(has_pcid, "CPUID.7:EBX.INVPCID = 1 comes with CPUID.1:ECX.PCID[17] = 1|ECX 0x%x", cpuid(1, 0).ecx);
        u32 type = 2; /* all contexts, globals included: any mode, any CR4.PCIDE */
        exc_clear();
        __asm__ volatile(GUARD(".byte 0x66, 0x0f, 0x38, 0x82, 0x03") ::"a"(type), "b"(invpcid_desc) : "memory");
        check(exc.vector == NO_EXC, "L1's INVPCID type 2 runs|vector %d", (i32)exc.vector);
    }
    if (has_pcid) {
        /* 32-bit protected mode: CR4.PCIDE can be 1 only in IA-32e mode (SDM Vol. 3A 4.10.1). */
        u32 v = try_write_cr4(read_cr4() | CR4_PCIDE);
        bool gp = v == 13 && exc.error == 0;
        if (!gp && v == NO_EXC) try_write_cr4(read_cr4() & ~CR4_PCIDE);
        CHECK_SDM(gp, "Bochs 2.7 lets CR4.PCIDE be set outside IA-32e mode",
                  "MOV to CR4 setting PCIDE outside IA-32e mode -> #GP(0)|vector %d", (i32)v);
    } else {
        skip("no PCID (CPUID.1:ECX[17])", "MOV to CR4 setting PCIDE outside IA-32e mode -> #GP(0)");
    }
    if (!proc2_offered(C_PROC2_INVPCID)) {
        skip("not offered", "L2 INVPCID and \"enable INVPCID\"");
        return;
    }
    if (l2_setup(0, C_PROC2_WBINVD_EXITING, "L2 INVPCID with \"enable INVPCID\" = 0")) {
        regs.eax = 2;
        regs.ebx = ADDR(invpcid_desc);
        l2_run(ADDR(ctl_l2_invpcid));
        check(l2_ud_at(ctl_l2_invpcid), "INVPCID, \"enable INVPCID\" = 0: #UD delivered to L2|%s; L2 saw %u, vector %u",
              run_str(), l2_seen.count, l2_seen.vector);
    }
    /* "INVLPG exiting" alone does not make INVPCID exit: it is #UD. */
    if (l2_setup(C_PROC_INVLPG_EXITING, C_PROC2_WBINVD_EXITING, "L2 INVPCID with INVLPG exiting, \"enable INVPCID\" = 0")) {
        regs.eax = 2;
        regs.ebx = ADDR(invpcid_desc);
        vw(F_EXCEPTION_BITMAP, 1u << 6);
        l2_run(ADDR(ctl_l2_invpcid));
        check(ud_exit_at(ctl_l2_invpcid), "INVPCID, INVLPG exiting, \"enable INVPCID\" = 0: #UD (exit 0, vector 6), not exit 58|%s",
              run_str());
    }
    if (l2_setup(C_PROC_INVLPG_EXITING, C_PROC2_INVPCID, "L2 INVPCID with INVLPG exiting and \"enable INVPCID\"")) {
        regs.eax = 2;
        regs.ebx = ADDR(invpcid_desc);
        l2_run(ADDR(ctl_l2_invpcid));
        /* Table 28-9: scaling 0, address size 32 (1), segment DS (3), no
         * index, base EBX (3), Reg2 = the type register EAX (0). */
        u32 mask = (3u << 0) | (7u << 7) | (7u << 15) | (1u << 22) | (0xFu << 23) | (1u << 27) | (0xFu << 28);
        u32 want = (1u << 7) | (3u << 15) | (1u << 22) | (3u << 23);
        check(exit_is(C_EXIT_INVPCID) && ex.len == 5 && ex.qual == 0 && ex.rip == ADDR(ctl_l2_invpcid) && (ex.info & mask) == want,
              "INVPCID EAX, [EBX] with INVLPG exiting and \"enable INVPCID\": exit 58, qualification 0, instruction info|%s; want 0x%x",
              run_str(), want);
    }
    if (l2_setup(0, C_PROC2_INVPCID, "L2 INVPCID with \"enable INVPCID\", no INVLPG exiting")) {
        regs.eax = 2;
        regs.ebx = ADDR(invpcid_desc);
        l2_run(ADDR(ctl_l2_invpcid));
        check(vmcall_at(ctl_l2_invpcid, 5) && l2_seen.count == 0, "INVPCID with \"enable INVPCID\", no INVLPG exiting: runs in L2|%s",
              run_str());
    }
}

/* ---- RDRAND / RDSEED exiting (26.1.3; instruction information 28.2.5 Table 28-15) ---- */
static void controls_rdrand_rdseed(void) {
    /* Operand register ECX (1) in bits 6:3, operand size 32 (1) in 12:11. */
    u32 mask = (0xFu << 3) | (3u << 11), want = (1u << 3) | (1u << 11);
    if (!(cpuid(1, 0).ecx & (1u << 30))) {
        skip("no RDRAND (CPUID.1:ECX[30])", "L2 RDRAND with RDRAND exiting");
    } else if (l2_setup(0, C_PROC2_RDRAND_EXITING, "L2 RDRAND with RDRAND exiting")) {
        l2_run(ADDR(ctl_l2_rdrand));
        check(exit_is(C_EXIT_RDRAND) && ex.len == 3 && ex.rip == ADDR(ctl_l2_rdrand) && (ex.info & mask) == want,
              "RDRAND ECX with RDRAND exiting: exit 57, length 3, instruction info ECX, 32 bits|%s", run_str());
    }
    if (!(cpuid(7, 0).ebx & (1u << 18))) {
        skip("no RDSEED (CPUID.7:EBX[18])", "L2 RDSEED with RDSEED exiting");
    } else if (l2_setup(0, C_PROC2_RDSEED_EXITING, "L2 RDSEED with RDSEED exiting")) {
        l2_run(ADDR(ctl_l2_rdseed));
        check(exit_is(C_EXIT_RDSEED) && ex.len == 3 && ex.rip == ADDR(ctl_l2_rdseed) && (ex.info & mask) == want,
              "RDSEED ECX with RDSEED exiting: exit 61, length 3, instruction info ECX, 32 bits|%s", run_str());
        /* RDRAND exiting does not cover RDSEED. */
        if (l2_setup(0, C_PROC2_RDRAND_EXITING, "L2 RDSEED with RDRAND exiting only")) {
            l2_run(ADDR(ctl_l2_rdseed));
            check(vmcall_at(ctl_l2_rdseed, 3), "RDSEED with RDRAND exiting only: no exit|%s", run_str());
        }
    }
}

/* ---- PAUSE exiting and PAUSE-loop exiting (26.1.3) ------------------------------------ */
static void controls_pause(void) {
    if (l2_setup(C_PROC_PAUSE_EXITING, 0, "L2 PAUSE with PAUSE exiting")) {
        l2_run(ADDR(ctl_l2_pause));
        check(exit_is(C_EXIT_PAUSE) && ex.len == 2 && ex.rip == ADDR(ctl_l2_pause), "PAUSE with PAUSE exiting: exit 40, length 2|%s",
              run_str());
    }
    if (l2_setup(0, C_PROC2_PLE, "L2 PAUSE loop with PAUSE-loop exiting")) {
        /* Gap: far more than one loop iteration; window: far less than the
         * whole loop. The loop is detected and exits before its end. */
        vw(F_PLE_GAP, 4096);
        vw(F_PLE_WINDOW, 20000);
        regs.ecx = SPIN;
        l2_run(ADDR(ctl_l2_pause_loop));
        check(exit_is(C_EXIT_PAUSE) && ex.rip == ADDR(ctl_l2_pause_loop_insn) && regs.ecx != 0,
              "a PAUSE loop longer than PLE_Window with PAUSE-loop exiting: exit 40 inside the loop|%s ecx %u", run_str(), regs.ecx);
        vw(F_PLE_WINDOW, 0xFFFFFFFFu);
        regs.ecx = 1000;
        l2_run(ADDR(ctl_l2_pause_loop));
        check(vmcall_at(ctl_l2_pause_loop_insn, 5) && regs.ecx == 0, "a PAUSE loop shorter than PLE_Window: no exit|%s", run_str());
    }
}

/* ---- primary exiting controls with their qualifications (28.2.1) ------------------------ */
static void controls_primary(void) {
    if (l2_setup(C_PROC_MONITOR_EXITING, 0, "L2 MONITOR with MONITOR exiting")) {
        regs.eax = ADDR(l2_stack);
        l2_run(ADDR(ctl_l2_monitor));
        check(exit_is(C_EXIT_MONITOR) && ex.len == 3 && ex.rip == ADDR(ctl_l2_monitor),
              "MONITOR with MONITOR exiting: exit 39, length 3|%s", run_str());
    }
    if (l2_setup(C_PROC_MWAIT_EXITING, 0, "L2 MWAIT with MWAIT exiting")) {
        l2_run(ADDR(ctl_l2_mwait));
        check(exit_is(C_EXIT_MWAIT) && ex.len == 3 && ex.rip == ADDR(ctl_l2_mwait), "MWAIT with MWAIT exiting: exit 36, length 3|%s",
              run_str());
    }
    if (l2_setup(C_PROC_INVLPG_EXITING, 0, "L2 INVLPG with INVLPG exiting")) {
        regs.ebx = 0x12345678u;
        l2_run(ADDR(ctl_l2_invlpg));
        check(exit_is(C_EXIT_INVLPG) && ex.len == 3 && ex.qual == 0x12345678u,
              "INVLPG [EBX] with INVLPG exiting: exit 14, qualification = the linear address|%s", run_str());
    }
    if (l2_setup(C_PROC_RDPMC_EXITING, 0, "L2 RDPMC with RDPMC exiting")) {
        regs.ecx = 0;
        l2_run(ADDR(ctl_l2_rdpmc));
        check(exit_is(C_EXIT_RDPMC) && ex.len == 2 && ex.rip == ADDR(ctl_l2_rdpmc), "RDPMC with RDPMC exiting: exit 15, length 2|%s",
              run_str());
    }
    if (l2_setup(PROC_CR3_STORE_EXITING, 0, "L2 MOV from CR3 with CR3-store exiting")) {
        l2_run(ADDR(ctl_l2_read_cr3));
        check(exit_is(EXIT_CR_ACCESS) && ex.qual == (3u | (1u << 4) | (0u << 8)) && ex.len == 3,
              "MOV EAX, CR3 with CR3-store exiting: exit 28, qualification CR3 / MOV from CR / EAX|%s", run_str());
    }
    if (l2_setup(C_PROC_MOV_DR_EXITING, 0, "L2 MOV DR with MOV-DR exiting")) {
        l2_run(ADDR(ctl_l2_read_dr7));
        check(exit_is(C_EXIT_MOV_DR) && ex.qual == (7u | (1u << 4) | (0u << 8)) && ex.len == 3,
              "MOV EAX, DR7 with MOV-DR exiting: exit 29, qualification DR7 / from DR / EAX|%s", run_str());
        regs.ecx = 0x1000;
        l2_run(ADDR(ctl_l2_write_dr0));
        check(exit_is(C_EXIT_MOV_DR) && ex.qual == (0u | (0u << 4) | (1u << 8)) && ex.len == 3,
              "MOV DR0, ECX with MOV-DR exiting: exit 29, qualification DR0 / to DR / ECX|%s", run_str());
    }
    skip("CR8 exists only in 64-bit mode; this L1 runs in 32-bit mode", "CR8-load/store exiting");
}

/* ---- interrupt-window and NMI-window exiting (26.7.5, 26.7.6) ------------------------------ */
static void controls_windows(void) {
    if (l2_setup(C_PROC_INTR_WINDOW_EXITING, 0, "L2 with interrupt-window exiting")) {
        /* IF = 1 and no blocking at entry: the exit comes before any instruction. */
        vw(F_GUEST_RFLAGS, 0x202);
        l2_run(ADDR(ctl_l2_sti_end));
        check(exit_is(C_EXIT_INTR_WINDOW) && ex.rip == ADDR(ctl_l2_sti_end),
              "interrupt-window exiting, L2 entered with IF = 1: exit 7 before the first instruction|%s", run_str());
        /* IF = 0: STI opens the window after the instruction in its shadow. */
        vw(F_GUEST_RFLAGS, 0x2);
        l2_run(ADDR(ctl_l2_sti));
        check(exit_is(C_EXIT_INTR_WINDOW) && ex.rip == ADDR(ctl_l2_sti_end),
              "interrupt-window exiting, L2 runs STI; NOP: exit 7 after the NOP (blocking by STI)|%s", run_str());
    }
    if (l2_setup_ex(PIN_NMI_EXITING | C_PIN_VIRTUAL_NMIS, C_PROC_NMI_WINDOW_EXITING, 0, 0, "L2 with NMI-window exiting")) {
        l2_run(ADDR(ctl_l2_sti_end));
        check(exit_is(C_EXIT_NMI_WINDOW) && ex.rip == ADDR(ctl_l2_sti_end),
              "NMI-window exiting, no virtual-NMI blocking: exit 8 before the first instruction|%s", run_str());
        l2_setup_ex(PIN_NMI_EXITING | C_PIN_VIRTUAL_NMIS, C_PROC_NMI_WINDOW_EXITING, 0, 0, "L2 with NMI-window exiting");
        vw(F_GUEST_INTERRUPTIBILITY, C_BLOCKING_BY_NMI);
        l2_run(ADDR(ctl_l2_sti_end));
        check(vmcall_at(ctl_l2_sti_end, 0), "NMI-window exiting with virtual-NMI blocking: no exit 8, L2 runs|%s", run_str());
    }
}

/* ---- secondary exiting controls ------------------------------------------------------------- */
static void controls_secondary(void) {
    if (l2_setup(0, C_PROC2_WBINVD_EXITING, "L2 WBINVD with WBINVD exiting")) {
        l2_run(ADDR(ctl_l2_wbinvd));
        check(exit_is(C_EXIT_WBINVD) && ex.len == 2 && ex.rip == ADDR(ctl_l2_wbinvd), "WBINVD with WBINVD exiting: exit 54, length 2|%s",
              run_str());
    }
    if (l2_setup(0, PROC2_DESC_TABLE_EXITING, "L2 STR and SIDT with descriptor-table exiting")) {
        l2_run(ADDR(ctl_l2_str));
        /* Table 28-11: register form (bit 10), Reg1 ECX (1) in 6:3, STR (1) in 29:28. */
        u32 mask = (0xFu << 3) | (1u << 10) | (3u << 28), want = (1u << 3) | (1u << 10) | (1u << 28);
        check(exit_is(C_EXIT_LDTR_TR) && ex.len == 3 && (ex.info & mask) == want,
              "STR ECX with descriptor-table exiting: exit 47, instruction info register form, ECX, STR|%s", run_str());
        regs.ebx = ADDR(l2_stack);
        l2_run(ADDR(ctl_l2_sidt));
        /* Table 28-10: 32-bit address, DS, no index, base EBX, SIDT (1). */
        mask = (7u << 7) | (7u << 15) | (1u << 22) | (0xFu << 23) | (1u << 27) | (3u << 28);
        want = (1u << 7) | (3u << 15) | (1u << 22) | (3u << 23) | (1u << 28);
        check(exit_is(EXIT_GDTR_IDTR) && ex.len == 3 && ex.qual == 0 && (ex.info & mask) == want,
              "SIDT [EBX] with descriptor-table exiting: exit 46, instruction info SIDT, base EBX|%s; want 0x%x", run_str(), want);
    }
}

void test_l2_controls(void) {
    if (!need_root("L2 execution controls")) return;
    diag("L2 execution controls (issue 9 items 3 and 8)");
    controls_kvm_needs();
    controls_rdtscp();
    controls_invpcid();
    controls_rdrand_rdseed();
    controls_pause();
    controls_primary();
    controls_windows();
    controls_secondary();
}
