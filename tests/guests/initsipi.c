/* initsipi.elf: INIT and SIPI for a processor in VMX operation (vcpus=2
 * nested=on under the hypervisor; `cpu: count=2` on bare Bochs), checked
 * against SDM Vol. 3C 24.8 (INIT is blocked in VMX root operation), VMXOFF
 * (Vol. 3C 31.3: it unblocks INIT), 26.2 (in VMX non-root operation INIT
 * causes a VM exit, reason 3; a SIPI causes one, reason 4, only in the
 * wait-for-SIPI state), 27.7.2 (the wait-for-SIPI activity state blocks
 * external interrupts, NMIs and INIT) and 28.2.1 (the SIPI exit's
 * qualification is the vector; the INIT exit's is 0).
 *
 * The BSP starts the AP with INIT/SIPI (a real-mode trampoline, as smp.c);
 * the AP takes L1's paging and GDT (l1/setup.c), enters VMX root operation
 * and then sleeps in a mailbox loop (`sti; hlt`) and runs what the BSP posts:
 * L2 runs on the AP only. The BSP sends the INITs and SIPIs and makes the
 * checks; the AP never prints, it leaves what it saw in variables.
 *
 * Bare Bochs 2.7 (two CPUs) validates the cases, in three runs (part=wfs,
 * part=hlt, part=root; under the hypervisor one run has them all): after
 * an INIT-signal exit it keeps the INIT pending (the next VM entry exits
 * again at once, VMXOFF resets the processor), and after a SIPI exit it
 * keeps SMIs masked (each exit saves blocking by SMI, which L1 clears before
 * entering again), so each run has one INIT exit, its last L2 case. Where
 * it departs from the SDM the check is a SKIP naming the deviation
 * (CHECK_SDM): it drops an INIT that arrives in VMX root operation instead
 * of holding it (the exit at the next VM entry; the VMXOFF check passes
 * there through the INIT its INIT exit left pending, not a held one), and
 * it saves activity state active for the SIPI exit and the exit from HLT. */
#include "guest.h"
#include "l1/vmx.h"
#include "l1/l1.h"

#define APIC_IRR(v) (0x200u + ((v) >> 5) * 0x10u)

/* ICR low (SDM Vol. 3A 11.6.1) */
#define ICR_FIXED (0u << 8)
#define ICR_INIT (5u << 8)
#define ICR_SIPI (6u << 8)
#define ICR_ASSERT (1u << 14)

#define VEC_WAKE 0x55
#define TRAMP 0x8000u      /* start-up page: SIPI vector 08H */
#define SIPI_EXIT_VECTOR 0x42 /* the vector of the SIPI to L2 in wait-for-SIPI */
#define EXIT_INIT_SIGNAL 3
#define EXIT_SIPI 4
#define ACT_ACTIVE 0
#define ACT_HLT 1
#define ACT_WAIT_SIPI 3
#define WAIT 400000000ull  /* TSC ticks a wait for the other processor may take */
#define QUIET 40000000ull  /* TSC ticks to see that something does not happen */
#define BOCHS_INIT_ROOT "Bochs 2.7 drops an INIT that arrives in VMX root operation instead of holding it"
#define BOCHS_ACT_HLT "Bochs 2.7 saves activity state active for an exit from HLT"
#define BOCHS_SIPI_ACT "Bochs 2.7 saves activity state active for the SIPI exit"


/* ---- L2's code (L1's address space) ----------------------------------------------------- */
volatile u32 l2_flag; /* what L2 got to: 1 spinning, 2 about to halt */
extern const char l2_loop[], l2_loop_at[], l2_halt[], l2_after_hlt[];
__asm__(".text\n"
        ".globl l2_loop, l2_loop_at, l2_halt, l2_after_hlt\n"
        "l2_loop: movl $1, l2_flag\n"
        "l2_loop_at: pause\n"
        "jmp l2_loop_at\n"
        "l2_halt: movl $2, l2_flag\n"
        "hlt\n"
        "l2_after_hlt: jmp l2_stray\n");

struct __attribute__((packed)) dtr { u16 limit; u32 base; };
static struct dtr bsp_idtr;

/* ---- what the AP saw -------------------------------------------------------------------- */
struct seen { u32 ok, reason, qual, rip, act, irr; };
static volatile u32 ap_started, ap_root, ap_after_vmxoff;
static volatile u32 cmd, cmd_done;
static volatile u32 ap_phase;
static struct seen s1, s2;

#define CMD_ENTER 1     /* a VM entry at l2_vmcall, then another */
#define CMD_L2_SPIN 2   /* L2 spins until an exit */
#define CMD_L2_HALT 3   /* L2 halts (interrupts off) until an exit */
#define CMD_L2_WFS 4    /* L2 entered in wait-for-SIPI; then at l2_vmcall, active */
#define CMD_VMXOFF 5
#define CMD_NOP 6
#define PH_WFS 1

static void record(struct seen *s) {
    s->ok = last_run == 0;
    s->reason = ex.reason;
    s->qual = ex.qual;
    s->rip = ex.rip;
    s->act = vr(F_GUEST_ACTIVITY);
    s->irr = apic_read(APIC_IRR(VEC_WAKE));
}

static void ap_command(u32 c) {
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    if (c == CMD_ENTER) {
        if (!l2_setup_ex(0, 0, 0, 0, "AP: VMCS for L2")) return;
        l2_run(ADDR(l2_vmcall));
        record(&s1);
        l2_run(ADDR(l2_vmcall));
        record(&s2);
    } else if (c == CMD_L2_SPIN) {
        if (!l2_setup_ex(0, 0, 0, 0, "AP: VMCS for L2")) return;
        l2_run(ADDR(l2_loop));
        record(&s1);
    } else if (c == CMD_L2_HALT) {
        if (!l2_setup_ex(0, 0, 0, 0, "AP: VMCS for L2")) return;
        l2_run(ADDR(l2_halt));
        record(&s1);
    } else if (c == CMD_L2_WFS) {
        /* External-interrupt exiting: an interrupt that woke L2 would be an
         * exit 1 rather than the SIPI exit. */
        if (!l2_setup_ex(PIN_EXT_INT_EXITING, 0, 0, 0, "AP: VMCS for L2")) return;
        vw(F_GUEST_ACTIVITY, ACT_WAIT_SIPI);
        ap_phase = PH_WFS;
        l2_run(ADDR(l2_vmcall));
        record(&s1);
        /* Back to active, the interrupt that is now pending for L1 left to
         * L1 (no exiting; L2 runs with IF = 0): L2 reaches its VMCALL. */
        vw(F_GUEST_ACTIVITY, ACT_ACTIVE);
        vw(F_GUEST_INTERRUPTIBILITY, 0); /* Bochs 2.7 saves blocking by SMI here */
        vw(F_PIN_CTLS, vmcs_ctl_pin & ~PIN_EXT_INT_EXITING);
        l2_run(ADDR(l2_vmcall));
        record(&s2);
    } else if (c == CMD_VMXOFF) {
        vmclear(PA(vmcs_l2));
        vmxoff();
        in_root = false;
        ap_after_vmxoff = 1;
    }
}

static void wake_isr(struct frame *f) { apic_write(APIC_EOI, 0); }

void ap_main(void) {
    __asm__ volatile("lidt %0" ::"m"(bsp_idtr));
    apic_write(APIC_SVR, 0x1FF);
    if (__sync_fetch_and_add(&ap_started, 1) != 0) return; /* started again: park (cli; hlt) */
    /* L1's paging and GDT, as the BSP set them up (setup_l1). */
    write_cr4(read_cr4() | (1u << 4)); /* PSE */
    write_cr3(ADDR(pd));
    write_cr0(read_cr0() | CR0_PG | CR0_NE);
    struct dtr g = { sizeof l1_gdt - 1, ADDR(l1_gdt) };
    __asm__ volatile("lgdt %0" ::"m"(g));
    /* Lock IA32_FEATURE_CONTROL here if it is unlocked, so that caps_read
     * (which would print a diag line about it) stays quiet on the AP. */
    u64 fc = 0;
    if (try_rdmsr(MSR_FEATURE_CONTROL, &fc) == NO_EXC && !(fc & FC_LOCK))
        try_wrmsr(MSR_FEATURE_CONTROL, fc | FC_LOCK | FC_VMX_OUTSIDE_SMX);
    ap_root = caps_read() && enter_root() ? 1 : 2;
    /* The mailbox: sleep until an interrupt, run a posted command. */
    for (;;) {
        cli();
        while (!cmd) __asm__ volatile("sti\n\thlt\n\tcli" ::: "memory");
        u32 c = cmd;
        ap_command(c);
        cmd = 0;
        __sync_fetch_and_add(&cmd_done, 1);
    }
}

/* ---- the BSP ------------------------------------------------------------------------------ */
/* IPIs: lib/apboot.c's apic_ipi (ICR high, then low; waits for the delivery status). */
#define send_ipi apic_ipi

/* Wait until *v reaches want, at most `ticks` TSC ticks. Port reads are
 * exits under the hypervisor (where the two processors share one, the other
 * gets it at those exits once it has something to do). */
static bool wait_ticks(volatile u32 *v, u32 want, u64 ticks) {
    u64 t0 = rdtsc();
    while (*v < want && rdtsc() - t0 < ticks) inb(COM1 + 5);
    return *v >= want;
}
static void delay(u64 ticks) {
    u64 t0 = rdtsc();
    while (rdtsc() - t0 < ticks) inb(COM1 + 5);
}

/* Post a command and wake the AP; the number of commands done before. */
static u32 post_async(u32 c) {
    u32 done = cmd_done;
    cmd = c;
    send_ipi(1, ICR_FIXED | VEC_WAKE);
    return done;
}
static bool post(u32 c) { return wait_ticks(&cmd_done, post_async(c) + 1, WAIT); }

static const char *seen_str(const struct seen *s) {
    static char buf[96];
    if (!s->ok) return "no VM exit came back";
    snprintf(buf, sizeof buf, "exit %u qual 0x%x rip 0x%x activity %u", s->reason & 0xffff, s->qual, s->rip, s->act);
    return buf;
}

static void case_wait_for_sipi(void) {
    u32 done;
    bool back;
    /* L2 in the wait-for-SIPI state (VMX_MISC bit 8): a fixed IPI and
     * an INIT do not wake it (27.7.2: blocked), a SIPI is exit 4 with the
     * vector as qualification (28.2.1), activity state wait-for-SIPI saved. */
    u64 misc = rdmsr(MSR_VMX_MISC);
    check(misc & (1u << 8), "IA32_VMX_MISC bit 8: activity state wait-for-SIPI offered|0x%llx", misc);
    ap_phase = 0;
    done = post_async(CMD_L2_WFS);
    bool entering = wait_ticks(&ap_phase, PH_WFS, WAIT);
    delay(QUIET / 8);
    send_ipi(1, ICR_FIXED | VEC_WAKE);
    delay(QUIET);
    u32 after_ipi = cmd_done;
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    delay(QUIET);
    u32 after_init = cmd_done;
    check(entering && after_ipi == done && after_init == done,
          "L2 in wait-for-SIPI: a fixed IPI and an INIT do not wake it (no exit to L1)|entering %u, exits %u %u", entering,
          after_ipi - done, after_init - done);
    send_ipi(1, ICR_SIPI | SIPI_EXIT_VECTOR);
    back = wait_ticks(&cmd_done, done + 1, WAIT);
    check(back && s1.ok && s1.reason == EXIT_SIPI && s1.qual == SIPI_EXIT_VECTOR,
          "SIPI to L2 in wait-for-SIPI: exit 4 to L1, qualification the vector 42H|%s", seen_str(&s1));
    CHECK_SDM(back && s1.act == ACT_WAIT_SIPI, BOCHS_SIPI_ACT, "... activity state wait-for-SIPI saved|%s", seen_str(&s1));
    check(back && (s1.irr & (1u << (VEC_WAKE & 31))), "... the fixed IPI waits in L1's APIC (IRR bit 55H set)|IRR word 0x%x",
          s1.irr);
    /* The INIT was blocked, not lost: L1 is in VMX root operation after the
     * exit, where INIT is blocked too; its next VM entry (active) is
     * followed by the INIT-signal exit before L2's first instruction. */
    check(back && s2.ok && s2.reason == EXIT_INIT_SIGNAL && s2.qual == 0 && s2.rip == ADDR(l2_vmcall),
          "the INIT blocked in wait-for-SIPI is held: exit 3 right after L1's next VM entry|%s", seen_str(&s2));
}

static void case_root_sipi(void) {
    bool ran;
    /* A SIPI to a processor in VMX root operation, not waiting for one:
     * ignored (26.2, 9.4). */
    send_ipi(1, ICR_SIPI | (TRAMP >> 12));
    ran = post(CMD_NOP);
    check(ran && ap_started == 1, "a SIPI in VMX root operation is ignored: the AP runs on, not restarted|done %u, started %u",
          cmd_done, ap_started);
}

static void case_root_init(void) {
    bool ran;
    /* INIT to a processor in VMX root operation is blocked (24.8): the
     * AP keeps running its mailbox loop. */
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    ran = post(CMD_NOP);
    check(ran && ap_started == 1, "INIT in VMX root operation is blocked: the AP keeps running|done %u, started %u",
          cmd_done, ap_started);
    /* ... and held: INIT is not blocked in VMX non-root operation, so the
     * next VM entry is followed by the INIT-signal exit before L2's first
     * instruction (qualification 0); the exit consumes it. */
    post(CMD_ENTER);
    CHECK_SDM(s1.ok && s1.reason == EXIT_INIT_SIGNAL && s1.qual == 0 && s1.rip == ADDR(l2_vmcall), BOCHS_INIT_ROOT,
              "the held INIT: exit 3 right after the next VM entry, qualification 0, RIP at L2's first instruction|%s",
              seen_str(&s1));
    check(s2.ok && s2.reason == EXIT_VMCALL && s2.rip == ADDR(l2_vmcall),
          "... once: the next VM entry runs L2 to its VMCALL|%s", seen_str(&s2));
}

static void case_l2_runs(void) {
    u32 done;
    bool back;
    /* INIT while L2 runs (26.2): the INIT-signal exit to L1. */
    l2_flag = 0;
    done = post_async(CMD_L2_SPIN);
    bool spinning = wait_ticks(&l2_flag, 1, WAIT);
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    back = wait_ticks(&cmd_done, done + 1, WAIT);
    check(spinning && back && s1.ok && s1.reason == EXIT_INIT_SIGNAL && s1.qual == 0 &&
          s1.rip >= ADDR(l2_loop_at) && s1.rip < ADDR(l2_halt) && s1.act == ACT_ACTIVE,
          "INIT while L2 runs: exit 3 to L1, qualification 0, RIP in L2's loop, activity active|spinning %u, %s", spinning,
          seen_str(&s1));
    check(ap_started == 1, "... and the AP was not reset|started %u", ap_started);
}

static void case_l2_halted(void) {
    u32 done;
    bool back;
    /* INIT while L2 is in the HLT state: the exit wakes it (the saved
     * activity state is HLT, 28.3.4; RIP after the HLT). */
    l2_flag = 0;
    done = post_async(CMD_L2_HALT);
    bool halting = wait_ticks(&l2_flag, 2, WAIT);
    delay(QUIET / 8);
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    back = wait_ticks(&cmd_done, done + 1, WAIT);
    check(halting && back && s1.ok && s1.reason == EXIT_INIT_SIGNAL && s1.qual == 0 && s1.rip == ADDR(l2_after_hlt),
          "INIT while L2 is halted: exit 3 to L1, RIP after the HLT|halting %u, %s", halting, seen_str(&s1));
    CHECK_SDM(back && s1.act == ACT_HLT, BOCHS_ACT_HLT, "... activity state HLT saved|%s", seen_str(&s1));
}

static void case_vmxoff(void) {
    /* VMXOFF unblocks INIT (VMXOFF, 31.3): the INIT held since it
     * arrived in VMX root operation takes effect, the AP waits for SIPI, and
     * a SIPI starts it again at the start-up page (the command never
     * completes: its count is not waited for). */
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    (void)post_async(CMD_VMXOFF);
    delay(QUIET);
    send_ipi(1, ICR_SIPI | (TRAMP >> 12));
    bool restarted = wait_ticks(&ap_started, 2, WAIT);
    CHECK_SDM(restarted && ap_after_vmxoff == 0, BOCHS_INIT_ROOT,
              "VMXOFF with an INIT held: the AP is reset (waits for SIPI), a SIPI starts it again|started %u, ran after VMXOFF %u",
              ap_started, ap_after_vmxoff);
}

void guest_main(void) {
    guest_init("initsipi");
    if (!under_hv()) {
        outb(0x21, 0xff); /* Bochs's 8259s: masked */
        outb(0xa1, 0xff);
    }
    idt_set_handler(VEC_WAKE, wake_isr);
    __asm__ volatile("sidt %0" : "=m"(bsp_idtr));
    apic_write(APIC_SVR, 0x1FF);
    setup_l1();

    char part[16] = "all";
    word_value(boot.cmdline, "part", part, sizeof part);
    if (!strcmp(part, "solo")) {
        /* One processor (vcpus=1 under the hypervisor only): the BSP enters
         * L2 in wait-for-SIPI, from which no SIPI can come. A processor would
         * wait for ever; the hypervisor stops the guest (expect=halt). */
        u64 misc = rdmsr(MSR_VMX_MISC);
        check(caps_read() && enter_root() && (misc & (1u << 8)),
              "VMX root operation, IA32_VMX_MISC bit 8: activity state wait-for-SIPI offered|0x%llx", misc);
        if (l2_setup_ex(0, 0, 0, 0, "VMCS for L2")) {
            vw(F_GUEST_ACTIVITY, ACT_WAIT_SIPI);
            l2_run(ADDR(l2_vmcall));
            check(false, "L2 entered in wait-for-SIPI with no other processor: no VM exit comes back|%s", run_str());
        }
        goto end;
    }

    /* Start the AP (INIT, SIPI: 9.4.4.1), which enters VMX root operation. */
    apboot_prepare(TRAMP, ap_main); /* lib/apboot.c */
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    send_ipi(1, ICR_INIT | (1u << 15));
    send_ipi(1, ICR_SIPI | (TRAMP >> 12));
    if (!wait_ticks(&ap_started, 1, WAIT)) send_ipi(1, ICR_SIPI | (TRAMP >> 12));
    bool up = wait_ticks(&ap_root, 1, WAIT) && ap_root == 1;
    check(up, "the AP started (INIT, SIPI) and entered VMX root operation (VMXON)|started %u, root %u", ap_started,
          ap_root);
    if (!up) goto end;

    /* Which cases (part=): all of them, in this order, by default; on bare
     * Bochs the test runs them in three parts (see the top). */
    bool all = !strcmp(part, "all");
    if (all || !strcmp(part, "wfs")) case_wait_for_sipi();
    if (all || !strcmp(part, "hlt")) case_l2_halted();
    if (all || !strcmp(part, "root")) {
        case_root_sipi();
        case_root_init();
        case_l2_runs();
    }
    if (all || !strcmp(part, "root")) case_vmxoff();

end:
    finish_result();
    u32 code = tap_failed() ? 1 : 0;
    if (!under_hv()) {
        if (!code) __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
        for (const char *s = "Shutdown"; *s; s++) outb(0x8900, (u8)*s);
    }
    exit_guest(code);
}
