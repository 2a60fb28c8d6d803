/* L2 in the HLT activity state (SDM Vol. 3C 25.4.2; 26.1.3: HLT exits only
 * with "HLT exiting"; 27.3.1.5 activity-state checks; 27.7.2 VM entry with
 * activity state HLT; 28.1 and 28.3.4: a VM exit saves the activity state
 * the processor had before it, with RIP past the HLT). L1's APIC timer is
 * the interrupt that wakes L2. No NMI case: an NMI to L1 would need a
 * self-NMI through L1's local APIC, which the hypervisor's APIC model does
 * not deliver (docs/guest-interface.md), so it could not pass under it. */
#include "l1.h"

#define ACT_ACTIVE 0
#define ACT_HLT 1
#define INTR_TYPE_EXT_INT (0u << 8)
#define STI_BLOCKING 1u
#define HLT_TIMER (10 * TIMER_COUNT)
/* 28.1: an event that causes a VM exit directly from an inactive state
 * returns the processor to the active state only after the exit, so the
 * exit saves activity state HLT (28.3.4). */
#define BOCHS_ACT "Bochs 2.7 saves activity state active for an external-interrupt exit from HLT"

extern char l2_hlt_wake[];
extern char l2_hlt_isr[];
extern volatile u32 hlt_isr_count, hlt_isr_eip;
/* L2: HLT, then VMCALL (at l2_hlt_wake + 1). l2_hlt_isr, L2's handler for
 * L1's timer vector in these cases, counts, records where it interrupted
 * L2 and returns with IRET (no EOI: L1 does it after the run). */
__asm__(".text\n"
    ".globl l2_hlt_wake\n"
    "l2_hlt_wake:\n"
    "    hlt\n"
    "    vmcall\n"
    "    jmp l2_stray\n"
    ".globl l2_hlt_isr\n"
    "l2_hlt_isr:\n"
    "    push %eax\n"
    "    mov 4(%esp), %eax\n"
    "    mov %eax, hlt_isr_eip\n"
    "    incl hlt_isr_count\n"
    "    pop %eax\n"
    "    iret\n");
volatile u32 hlt_isr_count, hlt_isr_eip;

#define AFTER_HLT (ADDR(l2_hlt_wake) + 1)

static struct idt_gate saved_gate;
static void l2_isr_install(void) {
    saved_gate = l2_idt[L1_TIMER_VECTOR];
    u32 h = ADDR(l2_hlt_isr);
    l2_idt[L1_TIMER_VECTOR] = (struct idt_gate){ (u16)h, SEL_KCODE, 0, 0x8E, (u16)(h >> 16) };
    hlt_isr_count = 0;
    hlt_isr_eip = 0;
}
static void l2_isr_restore(void) { l2_idt[L1_TIMER_VECTOR] = saved_gate; }

/* An HLT of L2 without HLT exiting, external-interrupt exiting: L2 halts
 * until L1's timer fires, which is an exit 1 from the HLT state. */
static void hlt_exit_on_interrupt(void) {
    if (!l2_setup_ex(PIN_EXT_INT_EXITING, 0, 0, 0, "L2 HLT without HLT exiting, external-interrupt exiting")) return;
    diag("L2 halts (no HLT exiting) until L1's APIC timer fires (external-interrupt exiting)");
    vw(F_GUEST_RFLAGS, 0x202);
    l1_irqs = 0;
    apic_arm(HLT_TIMER);
    l2_run(ADDR(l2_hlt_wake));
    u32 act = vr(F_GUEST_ACTIVITY);
    check(exit_is(EXIT_EXTERNAL_INTERRUPT) && l1_irqs == 0,
          "L2 HLT without HLT exiting: L2 halts; L1's interrupt is an exit 1|%s, L1 saw %u", run_str(), l1_irqs);
    check(exit_is(EXIT_EXTERNAL_INTERRUPT) && ex.rip == AFTER_HLT, "exit 1 from the HLT state: RIP past the HLT|%s", run_str());
    CHECK_SDM(exit_is(EXIT_EXTERNAL_INTERRUPT) && act == ACT_HLT, BOCHS_ACT,
              "exit 1 from the HLT state: activity state HLT saved (28.1, 28.3.4)|%s, activity %u", run_str(), act);
    l1_window();
    check(l1_irqs == 1, "the interrupt that woke L2 stays pending for L1|%u deliveries", l1_irqs);

    /* VMRESUME with activity state HLT (as saved; written again for Bochs,
     * see above): L2 halts again. */
    diag("VMRESUME of the halted L2: it stays halted until the next interrupt");
    vw(F_GUEST_ACTIVITY, ACT_HLT);
    l1_irqs = 0;
    apic_arm(HLT_TIMER);
    l2_run(0);
    check(exit_is(EXIT_EXTERNAL_INTERRUPT) && ex.rip == AFTER_HLT,
          "VMRESUME with activity state HLT: L2 stays halted, the next interrupt exits from HLT again|%s", run_str());
    l1_window();
    vw(F_GUEST_ACTIVITY, ACT_ACTIVE);
    l2_run(0);
    check(vmcall_at(l2_hlt_wake, 1), "VMRESUME with activity state active: L2 continues after its HLT|%s", run_str());
    apic_disarm();
}

/* Without external-interrupt exiting, L1's interrupt goes to L2, which
 * leaves HLT, runs its handler and continues after the HLT. */
static void hlt_interrupt_to_l2(void) {
    if (!l2_setup(0, 0, "L2 HLT without HLT exiting, interrupt delivered to L2")) return;
    diag("L2 halts with IF = 1; L1's APIC timer interrupt goes to L2 (no external-interrupt exiting)");
    l2_isr_install();
    vw(F_GUEST_RFLAGS, 0x202);
    l1_irqs = 0;
    apic_arm(HLT_TIMER);
    l2_run(ADDR(l2_hlt_wake));
    u32 act = vr(F_GUEST_ACTIVITY);
    check(vmcall_at(l2_hlt_wake, 1) && hlt_isr_count == 1 && hlt_isr_eip == AFTER_HLT && l1_irqs == 0,
          "L2 HLT woken by the interrupt: L2's handler runs (return address past the HLT), then L2 continues after the HLT|"
          "%s; handler ran %u times, at 0x%x; L1 saw %u", run_str(), hlt_isr_count, hlt_isr_eip, l1_irqs);
    check(vmcall_at(l2_hlt_wake, 1) && act == ACT_ACTIVE, "activity state active at the next exit|%s, activity %u", run_str(), act);
    apic_write(APIC_EOI, 0); /* L2's handler does not EOI */
    apic_disarm();
    l2_isr_restore();
}

/* VM entry with activity state HLT (27.7.2): L2 does not run until an
 * event wakes it. */
static void hlt_entry(void) {
    if (!(cap.misc & MISC_ACTIVITY_HLT)) {
        skip("activity state HLT not offered", "VM entry with activity state HLT");
        return;
    }
    if (l2_setup(0, 0, "VM entry with activity state HLT, interrupt delivered to L2")) {
        diag("VMLAUNCH with activity state HLT; L1's APIC timer interrupt goes to L2");
        l2_isr_install();
        vw(F_GUEST_RFLAGS, 0x202);
        vw(F_GUEST_ACTIVITY, ACT_HLT);
        l1_irqs = 0;
        apic_arm(HLT_TIMER);
        l2_run(AFTER_HLT);
        check(vmcall_at(l2_hlt_wake, 1) && hlt_isr_count == 1 && hlt_isr_eip == AFTER_HLT,
              "VM entry with activity state HLT: L2 runs only after the interrupt, its handler first|%s; handler ran %u "
              "times, at 0x%x", run_str(), hlt_isr_count, hlt_isr_eip);
        apic_write(APIC_EOI, 0);
        apic_disarm();
        l2_isr_restore();
    }
    if (l2_setup_ex(PIN_EXT_INT_EXITING, 0, 0, 0, "VM entry with activity state HLT, external-interrupt exiting")) {
        diag("VMLAUNCH with activity state HLT; L1's APIC timer fires (external-interrupt exiting)");
        vw(F_GUEST_RFLAGS, 0x202);
        vw(F_GUEST_ACTIVITY, ACT_HLT);
        l1_irqs = 0;
        apic_arm(HLT_TIMER);
        l2_run(AFTER_HLT);
        u32 act = vr(F_GUEST_ACTIVITY);
        check(exit_is(EXIT_EXTERNAL_INTERRUPT) && ex.rip == AFTER_HLT,
              "VM entry with activity state HLT, external-interrupt exiting: exit 1 from HLT, RIP as entered|%s", run_str());
        CHECK_SDM(exit_is(EXIT_EXTERNAL_INTERRUPT) && act == ACT_HLT, BOCHS_ACT,
                  "VM entry with activity state HLT: the exit 1 saves activity state HLT|%s, activity %u", run_str(), act);
        l1_window();
        apic_disarm();
    }
    /* 27.3.1.5: HLT is refused with blocking by STI; an injected external
     * interrupt is allowed and makes the entry vectoring (active after it). */
    if (l2_setup(0, 0, "VM entry with activity state HLT and blocking by STI fails")) {
        vw(F_GUEST_RFLAGS, 0x202);
        vw(F_GUEST_INTERRUPTIBILITY, STI_BLOCKING);
        vw(F_GUEST_ACTIVITY, ACT_HLT);
        l2_run(AFTER_HLT);
        check(exit_is(EXIT_FAILED_ENTRY | EXIT_BAD_GUEST_STATE),
              "activity state HLT with blocking by STI: VM entry fails, exit 33 (27.3.1.5)|%s", run_str());
    }
    if (l2_setup(0, 0, "VM entry with activity state HLT injecting an external interrupt")) {
        l2_isr_install();
        vw(F_GUEST_RFLAGS, 0x202);
        vw(F_GUEST_ACTIVITY, ACT_HLT);
        vw(F_ENTRY_INTR_INFO, INTR_VALID | INTR_TYPE_EXT_INT | L1_TIMER_VECTOR);
        l2_run(AFTER_HLT);
        check(vmcall_at(l2_hlt_wake, 1) && hlt_isr_count == 1 && hlt_isr_eip == AFTER_HLT,
              "activity state HLT injecting an external interrupt: delivered, L2 active after it (27.7.2)|%s; handler ran "
              "%u times, at 0x%x", run_str(), hlt_isr_count, hlt_isr_eip);
        l2_isr_restore();
    }
    if (l2_setup(0, 0, "VM entry with activity state HLT injecting #GP fails")) {
        vw(F_GUEST_RFLAGS, 0x202);
        vw(F_GUEST_ACTIVITY, ACT_HLT);
        vw(F_ENTRY_INTR_INFO, INTR_VALID | INTR_TYPE_HW_EXCEPTION | INTR_ERROR_VALID | 13);
        vw(F_ENTRY_EXC_ERROR, 0);
        l2_run(AFTER_HLT);
        CHECK_SDM(exit_is(EXIT_FAILED_ENTRY | EXIT_BAD_GUEST_STATE),
                  "Bochs 2.7 does not check which injected events the HLT state allows",
                  "activity state HLT injecting #GP: VM entry fails, exit 33 (27.3.1.5)|%s", run_str());
    }
}

void test_l2_hlt_state(void) {
    outb(0x21, 0xFF); /* no 8259 interrupts on bare Bochs (see test_l2_interrupts) */
    outb(0xA1, 0xFF);
    idt_set_handler(L1_TIMER_VECTOR, l1_timer_isr);
    idt_set_handler(0xFF, l1_spurious_isr);
    hlt_exit_on_interrupt();
    hlt_interrupt_to_l2();
    hlt_entry();
}
