/* L2 reaching L1's local APIC (issue 9 item 5): an L1 that passes its APIC
 * through to L2 maps its own APIC page (guest-physical FEE00000H) into L2's
 * EPT; L2's accesses then reach L1's APIC exactly as L1's own would (SDM
 * Vol. 3C 29.3.2: the EPT translation yields the physical address that the
 * access uses; Vol. 3A 11.4.1: the APIC registers are memory-mapped there).
 * Without EPT in the VMCS, L2-physical addresses are L1's, and L2's paging
 * (L1's page directory: 4-MByte pages, the APIC page included) reaches the
 * same page.
 *
 * The memory type: L1's EPT leaf for the APIC page is UC (0) without
 * ignore-PAT, so whatever PAT says for L2's (write-back) mapping, the access
 * is uncacheable (29.3.7.2), as an APIC access must be (11.4.1). L1's own
 * mapping of the page is the 4-MByte WB-by-PAT page of pd, which the MTRRs
 * make UC on a real machine (firmware covers FEE00000H with a UC range).
 *
 * Values L2 reads are compared with L1's own read of the same register, not
 * with constants: Bochs's APIC and our hypervisor's software APIC need not
 * agree on the version. An L2 access that L1's EPT sends to an L1-physical
 * address that is neither RAM nor a device stops the VM under our
 * hypervisor, as L1's own access to it does (tests/guests/unbacked.c), so it
 * is covered by tests/unit/ept-compose.test.ts, not here: this L1 must run
 * to its end. */
#include "guest.h"
#include "vmx.h"
#include "l1.h"

#define APIC_ISR_40 0x120u /* ISR bits 63:32: vector 40H is bit 0 */
#define ICR_SELF (1u << 18) /* destination shorthand 01b: self */
#define ICR_NMI (4u << 8)   /* delivery mode 100b: NMI */

/* An IRET to the next instruction: ends the blocking of NMIs that a VM
 * exit caused by an NMI leaves (SDM Vol. 3C 28.5.5; Vol. 3A 6.7.1). */
static void nmi_unblock(void) {
    __asm__ volatile("pushfl\n\t"
                     "pushl %%cs\n\t"
                     "pushl $1f\n\t"
                     "iretl\n"
                     "1:" ::: "memory");
}

/* L2 writes EAX to [EBX] (an APIC register), then spins ECX times with
 * interrupts as RFLAGS.IF says, then VMCALL. */
void l2_apic_write_spin(void);
__asm__(".text\n"
        ".globl l2_apic_write_spin\n"
        "l2_apic_write_spin:\n"
        "    movl %eax, (%ebx)\n"
        "1:  decl %ecx\n"
        "    jnz 1b\n"
        "    vmcall\n"
        "    jmp l2_stray\n");

/* L1's EPT for L2: the first 32 MiB as ept_build() makes them, plus the
 * APIC page at L2-physical FEE00000H -> L1-physical FEE00000H with `perm`,
 * memory type UC. PDPT entry 3 covers 3-4 GiB; PD index 1F7H, PT index 0. */
static u64 apic_pd[512] ALIGNED(4096);
static u64 apic_pt[512] ALIGNED(4096);
void ept_with_apic(u64 perm) {
    ept_build();
    memset(apic_pd, 0, sizeof apic_pd);
    memset(apic_pt, 0, sizeof apic_pt);
    ept_pdpt[3] = PA(apic_pd) | EPT_RWX;
    apic_pd[(APIC_BASE >> 21) & 511] = PA(apic_pt) | EPT_RWX;
    apic_pt[(APIC_BASE >> 12) & 511] = (u64)APIC_BASE | perm; /* memory type 0: UC */
    vw64(F_EPT_POINTER, PA(ept_pml4) | (3 << 3) | 6);
    invept_single();
}

/* L1's APIC ready for the timer: software-enabled, divide by 1, LVT timer
 * one-shot at L1_TIMER_VECTOR, no count yet (L2 writes it). */
static void apic_ready(void) {
    apic_write(APIC_SVR, 0x1FF);
    apic_write(APIC_TIMER_DIV, 0xB);
    apic_write(APIC_LVT_TIMER, L1_TIMER_VECTOR);
    apic_write(APIC_TIMER_INIT, 0);
}

/* L2 reads the register at APIC offset reg (MOV EAX, [EBX]); its value, or
 * ~0 with a failed check when L2 did not come back from the read. */
static u32 l2_read(u32 reg, const char *what) {
    regs.ebx = APIC_BASE + reg;
    regs.eax = 0xDEADBEEF;
    l2_run(ADDR(l2_pf_read));
    if (vmcall_at(l2_pf_read, 2)) return regs.eax;
    check(false, "%s: L2 read of APIC register 0x%x|%s", what, reg, run_str());
    return ~0u;
}

static void passthrough_ept(u32 version, u32 id) {
    if (!ept_offered()) {
        check(false, "L2 reaches L1's APIC through L1's EPT|EPT not offered");
        return;
    }
    /* Reads: the version and ID registers as L1 reads them. */
    if (l2_setup(0, PROC2_EPT, "APIC page in L1's EPT: L2 reads")) {
        ept_with_apic(EPT_RWX);
        diag("L2 reads L1's APIC through L1's EPT");
        u32 v = l2_read(APIC_VERSION, "version");
        check(v == version, "L2 reads the APIC version register through L1's EPT (RWX, UC): L1's value|L2 0x%x, L1 0x%x", v, version);
        u32 i = l2_read(APIC_ID, "ID");
        check(i == id, "L2 reads the APIC ID register through L1's EPT: L1's value|L2 0x%x, L1 0x%x", i, id);
    }
    /* The timer: L2 writes the initial count of L1's timer; the interrupt
     * is L1's (external-interrupt exiting: exit 1, then L1 takes it). */
    if (l2_setup_ex(PIN_EXT_INT_EXITING, 0, PROC2_EPT, 0, "APIC page in L1's EPT: L2 starts L1's timer")) {
        ept_with_apic(EPT_RWX);
        diag("L2 writes L1's APIC timer initial count through L1's EPT (external-interrupt exiting)");
        apic_ready();
        l1_irqs = 0;
        vw(F_GUEST_RFLAGS, 0x202);
        regs.ebx = APIC_BASE + APIC_TIMER_INIT;
        regs.eax = TIMER_COUNT;
        regs.ecx = SPIN;
        l2_run(ADDR(l2_apic_write_spin));
        u32 init = apic_read(APIC_TIMER_INIT);
        check(exit_is(EXIT_EXTERNAL_INTERRUPT) && init == TIMER_COUNT && l1_irqs == 0,
              "L2's write of the timer initial count is L1's: L1 reads it back, the timer fires, exit 1 to L1|%s, initial count %u",
              run_str(), init);
        l1_window();
        check(l1_irqs == 1, "the interrupt of the timer L2 started is L1's: delivered once L1 sets IF|%u deliveries", l1_irqs);
        apic_disarm();

        /* A self-IPI through the ICR: L1's interrupt, as if L1 had sent it. */
        diag("L2 sends a self-IPI through L1's ICR");
        l1_irqs = 0;
        regs.ebx = APIC_BASE + APIC_ICR_LO;
        regs.eax = ICR_SELF | L1_TIMER_VECTOR;
        regs.ecx = SPIN;
        l2_run(ADDR(l2_apic_write_spin));
        bool exited = exit_is(EXIT_EXTERNAL_INTERRUPT);
        const char *s = run_str();
        l1_window();
        check(exited && l1_irqs == 1, "L2's self-IPI through L1's ICR interrupts L1: exit 1, then delivered to L1|%s, %u deliveries", s,
              l1_irqs);
    }
    /* An NMI L2 sends through L1's ICR is L1's processor's NMI: with "NMI
     * exiting" a VM exit to L1 (reason 0, exit interruption information
     * valid, type 2 NMI, vector 2: SDM Vol. 3C 26.2, 28.2.2) at the
     * instruction after the MOV (the NMI arrives after it completes); L1's
     * VMRESUME continues L2 there. After the exit NMIs are blocked in L1
     * (28.5.5) until L1's next IRET, which this case executes. */
    if (l2_setup_ex(PIN_NMI_EXITING, 0, PROC2_EPT, 0, "APIC page in L1's EPT: L2 sends an NMI to itself")) {
        ept_with_apic(EPT_RWX);
        diag("L2 sends an NMI to itself through L1's ICR (NMI exiting)");
        /* To its own APIC ID, physical: the "self" shorthand is valid only
         * with fixed delivery (SDM Vol. 3A 11.6.1, valid ICR combinations). */
        apic_write(APIC_ICR_HI, id & 0xFF000000u);
        regs.ebx = APIC_BASE + APIC_ICR_LO;
        regs.eax = ICR_NMI;
        regs.ecx = 1000;
        l2_run(ADDR(l2_apic_write_spin));
        bool nmi_exit = exit_is(EXIT_EXCEPTION) && ex.intr == 0x80000202u && ex.rip == ADDR(l2_apic_write_spin) + 2;
        const char *s = run_str();
        u32 intr = ex.intr, rip = ex.rip;
        l2_run(0);
        check(nmi_exit && vmcall_at((const char *)l2_apic_write_spin, 5),
              "L2's NMI through L1's ICR with NMI exiting: exit 0 (NMI, info 0x80000202) after the MOV; VMRESUME continues L2|"
              "%s info 0x%x rip 0x%x (MOV at 0x%x); then %s",
              s, intr, rip, ADDR(l2_apic_write_spin), run_str());
        nmi_unblock();
    }
    /* Without external-interrupt exiting the timer's interrupt goes through
     * L2's IDT and stays in service at L1's APIC until L2's EOI. */
    if (l2_setup(0, PROC2_EPT, "APIC page in L1's EPT: L2 takes the interrupt and EOIs")) {
        ept_with_apic(EPT_RWX);
        diag("L2 starts L1's timer and takes its interrupt (no exiting), then EOIs");
        apic_ready();
        l1_irqs = 0;
        vw(F_GUEST_RFLAGS, 0x202);
        regs.ebx = APIC_BASE + APIC_TIMER_INIT;
        regs.eax = TIMER_COUNT;
        regs.ecx = SPIN;
        l2_run(ADDR(l2_apic_write_spin));
        u32 isr = apic_read(APIC_ISR_40);
        check(exit_is(EXIT_VMCALL) && l2_seen.count == 1 && l2_seen.vector == L1_TIMER_VECTOR && l1_irqs == 0 && (isr & 1),
              "the timer L2 started interrupts L2 through its IDT; vector 40H in service at L1's APIC|%s; L2 saw %u, vector 0x%x; "
              "L1 saw %u; ISR 0x%x",
              run_str(), l2_seen.count, l2_seen.vector, l1_irqs, isr);
        regs.ebx = APIC_BASE + APIC_EOI;
        regs.eax = 0;
        l2_run(ADDR(l2_write));
        isr = apic_read(APIC_ISR_40);
        check(vmcall_at(l2_write, 2) && !(isr & 1), "L2's EOI through L1's EPT ends the interrupt at L1's APIC|%s ISR 0x%x", run_str(),
              isr);
        if (isr & 1) apic_write(APIC_EOI, 0);
        apic_disarm();
    }
    /* L1's EPT permissions come first: a write through a read-only entry
     * is an EPT violation for L1 (28.2.1: write, bits 5:3 = 001b, linear
     * address valid and the access's own), and nothing reaches the APIC. */
    if (l2_setup(0, PROC2_EPT, "APIC page read-only in L1's EPT")) {
        ept_with_apic(EPT_R);
        diag("L2 under a read-only EPT mapping of L1's APIC page");
        u32 v = l2_read(APIC_VERSION, "read-only mapping");
        check(v == version, "a read-only EPT mapping of the APIC page: L2's read gets L1's version|L2 0x%x, L1 0x%x", v, version);
        apic_ready();
        regs.ebx = APIC_BASE + APIC_TIMER_INIT;
        regs.eax = TIMER_COUNT;
        l2_run(ADDR(l2_write));
        u32 gpa = vr(F_GUEST_PHYS_ADDR), gla = vr(F_GUEST_LINEAR_ADDR);
        u32 init = apic_read(APIC_TIMER_INIT);
        check(ept_exit(EXIT_EPT_VIOLATION, 2, 1) && (ex.qual & (1u << 7)) && (ex.qual & (1u << 8)) &&
                  gpa == APIC_BASE + APIC_TIMER_INIT && gla == APIC_BASE + APIC_TIMER_INIT && ex.rip == ADDR(l2_write) && init == 0,
              "L2 write through L1's read-only EPT entry for the APIC page: exit 48, write, bits 5:3 = 001b, nothing written|"
              "%s gpa 0x%x gla 0x%x initial count %u",
              run_str(), gpa, gla, init);
        apic_disarm();
    }
}

static void passthrough_no_ept(u32 version, u32 id) {
    /* L2 shares L1's page directory, which maps FEE00000H (one of its
     * 4-MByte pages); with no EPT, L2-physical = L1-physical. */
    if (!(pd[APIC_BASE >> 22] & 1)) {
        check(false, "L1's page directory maps the APIC page|PDE 0x%x", pd[APIC_BASE >> 22]);
        return;
    }
    if (!l2_setup(0, 0, "L2 reaches L1's APIC without EPT")) return;
    diag("L2 reads and writes L1's APIC without EPT");
    u32 v = l2_read(APIC_VERSION, "no EPT");
    check(v == version, "without EPT, L2 reads the APIC version register at FEE00030H: L1's value|L2 0x%x, L1 0x%x", v, version);
    u32 i = l2_read(APIC_ID, "no EPT");
    check(i == id, "without EPT, L2 reads the APIC ID register: L1's value|L2 0x%x, L1 0x%x", i, id);
    apic_ready();
    apic_write(APIC_LVT_TIMER, 0x10000 | L1_TIMER_VECTOR); /* masked: the count is only read back */
    regs.ebx = APIC_BASE + APIC_TIMER_INIT;
    regs.eax = 0x7FFFFFFF;
    l2_run(ADDR(l2_write));
    u32 init = apic_read(APIC_TIMER_INIT), cur = apic_read(APIC_TIMER_CUR);
    check(vmcall_at(l2_write, 2) && init == 0x7FFFFFFF && cur != 0 && cur <= 0x7FFFFFFF,
          "without EPT, L2's write of the timer initial count is L1's: L1 reads it back, its timer counts|%s initial %u current %u",
          run_str(), init, cur);
    apic_disarm();
}

void test_l2_apic_passthrough(void) {
    /* As test_l2_interrupts: no 8259 interrupts; L1's timer and spurious
     * vectors handled. */
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    idt_set_handler(L1_TIMER_VECTOR, l1_timer_isr);
    idt_set_handler(0xFF, l1_spurious_isr);
    apic_write(APIC_SVR, 0x1FF);
    u32 version = apic_read(APIC_VERSION), id = apic_read(APIC_ID);
    diag("L1's APIC: version 0x%x, ID 0x%x", version, id);
    passthrough_ept(version, id);
    passthrough_no_ept(version, id);
}
