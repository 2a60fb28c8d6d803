/* The EOI-exit bitmap while a vCPU runs L2 (issue 12, seeds/001: Linux commit
 * "KVM: nVMX: Do not load EOI-exitmap while running L2"). Two processors:
 * the BSP is this L1 and runs L2; the AP (APIC ID 1) rewrites the I/O APIC.
 * Each round, L2 (L1's APIC page mapped through L1's EPT: L1's APIC passed
 * through) posts a command and wakes the AP with an IPI through L1's ICR;
 * the AP points COM1's redirection entry (input 4) at the BSP with a new
 * level-triggered vector and raises COM1's THR-empty interrupt. The line
 * fires at the BSP while it runs L2:
 *   - even rounds, vector 50H-57H, external-interrupt exiting: an exit to L1
 *     (reason 1, not acknowledged), and L1 takes the interrupt itself once it
 *     sets IF; its EOI must reach the I/O APIC. Under our hypervisor with
 *     APIC virtualization (apicv=on) that EOI is virtualized and exits to L0
 *     only if the vector is in vmcs01's EOI-exit bitmap: the bitmap the I/O
 *     APIC write (made while the BSP ran L2) changed must be loaded into
 *     vmcs01 by the time L1 runs — never into vmcs02 instead;
 *   - odd rounds, vector 40H, no exiting: L2 takes it through its IDT; L1
 *     reads IIR (the line goes low) and L2 writes the EOI to L1's APIC, which
 *     L0 emulates and must broadcast to the I/O APIC at once (the vectors
 *     the I/O APIC handles are current while L2 runs).
 * Either way the entry's remote IRR (82093AA 3.2.4) must be clear after the
 * EOI, and the line fires again the next round: 1,000 rounds. Bochs's I/O
 * APIC keeps no remote IRR (tests/guests/ioapic.c): on bare Bochs that check
 * is a SKIP, the rest must pass there. Runs only with the command-line word
 * `eoiexit` (tests/qemu/eoiexit.test.ts: two CPUs on bare Bochs, vcpus=2
 * under the hypervisor on one CPU and, with the word `concurrent`, on two,
 * where the vCPUs run at once). In an even round the interrupt and the
 * AP's answer race, as on bare hardware: L2 may see the answer first and
 * VMCALL. Only a hypervisor whose vCPUs share one processor delivers the
 * interrupt first every time (its AP runs only while the BSP has exited),
 * and there every even round must be exit 1. */
#include "guest.h"
#include "vmx.h"
#include "l1.h"

#define ROUNDS 1000
#define AP_ID 1
#define AP_PAGE 0x8000u /* start-up page: SIPI vector 08H */
#define VEC_WAKE 0x3E
#define VEC_A 0x50 /* even rounds: 50H-57H */

volatile u32 eoiexit_cmd, eoiexit_done; /* L2 posts, the AP answers */
static volatile u32 ap_started, ap_vector, l1_hits, iir_bad;
static u32 bsp_id;
static struct __attribute__((packed)) { u16 limit; u32 base; } idtr;

/* L2: post the command, wake the AP through L1's ICR, wait (bounded) for
 * its answer (EBX: the answer count to wait for), VMCALL. An interrupt may
 * come first: with external-interrupt exiting an exit to L1, without it
 * L2's handler (vector 40H), which ends in VMCALL too. While it waits, L2
 * reads L1's APIC ID: under a hypervisor each read is an exit to L0 that
 * L0 handles and returns from into L2, so L2 is entered again after the
 * AP's I/O APIC write and before the interrupt arrives — the moment at which
 * the seed's bug loaded the new EOI-exit bitmap into vmcs02 — also when the
 * two vCPUs run at once (without the reads, the interrupt's own exit is
 * L2's first after the write there). */
void l2_kick_ap(void);
__asm__(".text\n"
        ".globl l2_kick_ap\n"
        "l2_kick_ap:\n"
        "    movl $1, eoiexit_cmd\n"
        "    movl $0x01000000, 0xFEE00310\n" /* AP_ID << 24 */
        "    movl $0x3E, 0xFEE00300\n"      /* fixed, VEC_WAKE */
        "    movl $2000000, %ecx\n"
        "1:  cmpl %ebx, eoiexit_done\n"
        "    je 2f\n"
        "    movl 0xFEE00020, %eax\n"      /* L1's APIC ID: an exit to L0 and back (see above) */
        "    pause\n"
        "    decl %ecx\n"
        "    jnz 1b\n"
        "2:  vmcall\n"
        "    jmp l2_stray\n");

static void wake_isr(struct frame *f) { apic_write(APIC_EOI, 0); }

/* L1's handler for the even rounds' vectors: reading IIR clears THRE, so
 * the line is low when the EOI reaches the I/O APIC. */
static void com_isr(struct frame *f) {
    if ((inb(IIR) & 0x0f) != IIR_THRE) iir_bad++;
    l1_hits++;
    apic_write(APIC_EOI, 0);
}

static void ap_main(void) {
    __asm__ volatile("lidt %0" ::"m"(idtr));
    apic_write(APIC_SVR, 0x1FF);
    __sync_fetch_and_add(&ap_started, 1);
    for (;;) {
        cli();
        while (!eoiexit_cmd) __asm__ volatile("sti\n\thlt\n\tcli" ::: "memory");
        eoiexit_cmd = 0;
        set_rte(COM1_INPUT, RTE_LEVEL | ap_vector, bsp_id);
        /* THR is empty: enabling its interrupt raises it (16550). */
        outb(IER, 0);
        outb(IER, IER_THRE);
        __sync_fetch_and_add(&eoiexit_done, 1);
    }
}

void test_eoi_exit_bitmap(bool concurrent) {
    bool strict = under_hv() && !concurrent; /* exit 1 every even round */
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    apic_write(APIC_SVR, 0x1FF);
    bsp_id = apic_read(APIC_ID) >> 24;
    idt_set_handler(VEC_WAKE, wake_isr);
    for (u32 v = VEC_A; v < VEC_A + 8; v++) idt_set_handler((u8)v, com_isr);
    idt_set_handler(0xFF, l1_spurious_isr);
    __asm__ volatile("sidt %0" : "=m"(idtr));
    set_rte(COM1_INPUT, RTE_MASKED, bsp_id);
    outb(IER, 0);
    outb(MCR, MCR_OUT2); /* COM1's interrupt reaches its input */
    if (!check(apboot_start_ap(AP_ID, AP_PAGE, ap_main, &ap_started), "seed 001: the AP (APIC ID 1) started with INIT and SIPI|%u starts",
               ap_started))
        return;
    if (!ept_offered()) {
        check(false, "seed 001: L1's EPT maps its APIC page for L2|EPT not offered");
        return;
    }
    u32 exits_to_l1 = 0, l1_took = 0, l2_took = 0, irr_stuck = 0, lost = 0, first_bad = ~0u;
    const char *first_why = "";
    for (u32 k = 0; k < ROUNDS; k++) {
        bool in_l1 = (k & 1) == 0;
        u32 vector = in_l1 ? VEC_A + ((k >> 1) & 7) : L1_TIMER_VECTOR;
        if (!l2_setup_ex(in_l1 ? PIN_EXT_INT_EXITING : 0, 0, PROC2_EPT, 0, "seed 001: L2 for a round")) return;
        ept_with_apic(EPT_RWX);
        vw(F_GUEST_RFLAGS, in_l1 ? 0x2 : 0x202);
        ap_vector = vector;
        regs.ebx = eoiexit_done + 1;
        u32 hits = l1_hits;
        l2_run(ADDR(l2_kick_ap));
        bool ok = true;
        const char *why = "";
        if (in_l1) {
            /* Exit 1 under our hypervisor (the interrupt arrives before L2
             * reads the answer); on bare Bochs L2 may see the answer first
             * (VMCALL): L1 takes the interrupt once it sets IF either way. */
            if (exit_is(EXIT_EXTERNAL_INTERRUPT)) exits_to_l1++;
            else if (strict || !exit_is(EXIT_VMCALL)) ok = false, why = "L2 did not exit with reason 1";
            for (u32 i = 0; i < 100000 && l1_hits == hits; i++) __asm__ volatile("sti; nop; nop; cli" ::: "memory");
            if (l1_hits != hits + 1) ok = false, why = "L1 did not take the interrupt once";
            else l1_took++;
        } else {
            if (exit_is(EXIT_VMCALL) && l2_seen.count == 1 && l2_seen.vector == L1_TIMER_VECTOR) l2_took++;
            else ok = false, why = "L2's handler did not take vector 40H";
            if ((inb(IIR) & 0x0f) != IIR_THRE) iir_bad++;
            regs.ebx = APIC_BASE + APIC_EOI;
            regs.eax = 0;
            l2_run(ADDR(l2_write));
            if (!vmcall_at(l2_write, 2)) ok = false, why = "L2's EOI write did not complete";
        }
        /* The EOI reached the I/O APIC: remote IRR clear (our hypervisor's
         * contract; Bochs keeps none). */
        if (rte_lo(COM1_INPUT) & RTE_REMOTE_IRR) irr_stuck++, ok = ok && !under_hv(), why = "remote IRR still set after the EOI";
        if (!ok) {
            lost++;
            if (first_bad == ~0u) first_bad = k, first_why = why;
        }
        if (lost >= 3) break; /* a stuck line stays stuck: no need for 1,000 failures */
    }
    set_rte(COM1_INPUT, RTE_MASKED, bsp_id);
    outb(IER, 0);
    check(lost == 0 && exits_to_l1 + l2_took > 0,
          "seed 001: 1000 rounds of an I/O APIC entry rewritten while L2 runs; the level-triggered line fires again each round|"
          "%u bad (first: round %u, %s), %u exits to L1, %u taken by L2",
          lost, first_bad, first_why, exits_to_l1, l2_took);
    check(iir_bad == 0, "seed 001: every interrupt found IIR = THRE|%u not", iir_bad);
    HV_CHECK(irr_stuck == 0, "seed 001: remote IRR clear after every EOI, L1's (virtualized) and L2's|%u stuck", irr_stuck);
    check(l1_took == ROUNDS / 2 && l2_took == ROUNDS / 2 && (!strict || exits_to_l1 == ROUNDS / 2),
          "seed 001: L1 took the even rounds' interrupts (after exit 1 or L2's VMCALL), L2 the odd rounds'|"
          "%u taken by L1, %u of them after exit 1, %u taken by L2", l1_took, exits_to_l1, l2_took);
}
