/* smp.elf: a guest with two processors (vcpus=2 under the hypervisor,
 * `cpu: count=2` on bare Bochs): MP start-up and IPIs between its local
 * APICs, checked against SDM Vol. 3A 9.4 (MP initialization: INIT, then a
 * start-up IPI whose vector names the 4-KiB page below 1 MiB where the AP
 * starts in real mode, CS = vector << 8, IP 0), 11.6 (issuing IPIs: delivery
 * modes fixed, NMI, INIT, start-up; physical and logical destinations; the
 * shorthands) and the 82093AA I/O APIC (a redirection entry's destination
 * names the local APIC that takes the interrupt).
 *
 * The BSP copies a real-mode trampoline to TRAMP (below 1 MiB), starts the
 * AP with INIT and SIPI, and drives it through a mailbox: the AP sleeps in
 * `sti; hlt` and wakes for each IPI. The AP never prints (the console is the
 * BSP's); it leaves what it saw in variables the BSP checks.
 *
 * Runs on bare Bochs with two CPUs too (docs/guest-interface.md "Several
 * vCPUs"): fw_cfg's CPU count is the hypervisor's (HV_CHECK, a SKIP there),
 * and the AP's APIC ID is 1 on both. */
#include "guest.h"


#define APIC_LDR 0xD0
#define APIC_DFR 0xE0

/* ICR low (11.6.1, Figure 11-12) */
#define ICR_FIXED (0u << 8)
#define ICR_NMI (4u << 8)
#define ICR_INIT (5u << 8)
#define ICR_SIPI (6u << 8)
#define ICR_LOGICAL (1u << 11)
#define ICR_BUSY (1u << 12)
#define ICR_ASSERT (1u << 14)
#define ICR_SELF (1u << 18)
#define ICR_ALL_INCL (2u << 18)
#define ICR_ALL_EXCL (3u << 18)

#define VEC_TO_AP 0x51
#define VEC_TO_BSP 0x52
#define VEC_ALL 0x53
#define VEC_COM 0x54
#define VEC_WAKE 0x55
#define VEC_TIMER 0x56

#define TRAMP 0x8000u /* start-up page: SIPI vector 08H */
#define COM_ROUNDS 100


struct __attribute__((packed)) dtr { u16 limit; u32 base; };
static struct dtr bsp_idtr;

/* ---- what the AP saw ------------------------------------------------------------------ */
static volatile u32 ap_started;   /* times ap_main ran (INIT + SIPI each) */
static volatile u32 ap_apic_id;   /* its local APIC ID (bits 31:24 of the ID register) */
static volatile u32 ap_cpuid_id;  /* CPUID.01H:EBX[31:24], initial APIC ID */
static volatile u32 ap_apic_base; /* IA32_APIC_BASE low word */
static volatile u32 ap_cr0;       /* CR0 on entry to 32-bit code */
static volatile u32 ap_hits, bsp_hits, nmi_hits, com_hits, com_iir_bad;
static volatile u32 all_hits[2]; /* VEC_ALL per processor: [0] BSP, [1] AP */
static volatile u32 cmd, cmd_done;
static u32 bsp_id;

#define CMD_IPI_BSP 1      /* fixed VEC_TO_BSP to the BSP's APIC ID (physical) */
#define CMD_ALL_EXCL 2     /* fixed VEC_ALL, all excluding self */
#define CMD_SPIN 3         /* spin, interrupts off, until the BSP sets `release` */
#define CMD_TIMER 4        /* arm the AP's APIC timer (one-shot) and go back to sleep */
#define TIMER_COUNT 200000
static volatile u32 spinning, release, timer_hits;

/* IPIs: lib/apboot.c's apic_ipi (ICR high, then low; waits for the delivery status). */
#define send_ipi apic_ipi
static bool me_is_ap(void) { return (apic_read(APIC_ID) >> 24) != bsp_id; }

static void ap_isr(struct frame *f) { ap_hits++; apic_write(APIC_EOI, 0); }
static void bsp_isr(struct frame *f) { bsp_hits++; apic_write(APIC_EOI, 0); }
static void all_isr(struct frame *f) { all_hits[me_is_ap() ? 1 : 0]++; apic_write(APIC_EOI, 0); }
static void wake_isr(struct frame *f) { apic_write(APIC_EOI, 0); }
static void timer_isr(struct frame *f) {
    if (me_is_ap()) timer_hits++;
    apic_write(APIC_EOI, 0);
}
static void nmi_isr(struct frame *f) { nmi_hits++; }
static void com_isr(struct frame *f) {
    /* Level-triggered, on the AP: reading IIR clears THRE, so the line is
     * low when the EOI reaches the I/O APIC (remote IRR clears). */
    if ((inb(IIR) & 0x0f) != IIR_THRE) com_iir_bad++;
    if (me_is_ap()) com_hits++;
    apic_write(APIC_EOI, 0);
}

void ap_main(void) {
    __asm__ volatile("lidt %0" ::"m"(bsp_idtr));
    ap_cr0 = read_cr0();
    apic_write(APIC_SVR, 0x1FF);
    ap_apic_id = apic_read(APIC_ID) >> 24;
    ap_cpuid_id = cpuid(1, 0).ebx >> 24;
    ap_apic_base = (u32)rdmsr(MSR_APIC_BASE);
    apic_write(APIC_DFR, 0xffffffff);
    apic_write(APIC_LDR, 0x02000000);
    __sync_fetch_and_add(&ap_started, 1);
    /* The mailbox: sleep until an interrupt, then run a command if one is
     * posted (checked with IF clear; STI's shadow covers the HLT). */
    for (;;) {
        cli();
        while (!cmd) __asm__ volatile("sti\n\thlt\n\tcli" ::: "memory");
        u32 c = cmd;
        if (c == CMD_IPI_BSP) send_ipi(bsp_id, ICR_FIXED | VEC_TO_BSP);
        else if (c == CMD_ALL_EXCL) send_ipi(0, ICR_ALL_EXCL | ICR_FIXED | VEC_ALL);
        else if (c == CMD_TIMER) {
            apic_write(APIC_TIMER_DIV, 0xB); /* divide by 1 */
            apic_write(APIC_LVT_TIMER, VEC_TIMER); /* one-shot, unmasked */
            apic_write(APIC_TIMER_INIT, TIMER_COUNT);
        } else if (c == CMD_SPIN) {
            spinning = 1;
            while (!release) __asm__ volatile("pause" ::: "memory");
        }
        cmd = 0;
        __sync_fetch_and_add(&cmd_done, 1);
    }
}

/* Wait with interrupts enabled until *v reaches want (bounded). */
static bool wait_for(volatile u32 *v, u32 want) {
    for (u32 i = 0; i < 2000000 && *v < want; i++) {
        sti();
        __asm__ volatile("pause" ::: "memory");
    }
    cli();
    return *v >= want;
}

/* The same, bounded by TSC ticks rather than iterations (a wait that may
 * last a time slice of a processor the two share: 2^24 ticks on Bochs). */
static bool wait_ticks(volatile u32 *v, u32 want, u64 ticks) {
    u64 t0 = rdtsc();
    while (*v < want && rdtsc() - t0 < ticks) {
        sti();
        __asm__ volatile("pause" ::: "memory");
    }
    cli();
    return *v >= want;
}

static void post(u32 c) {
    u32 done = cmd_done;
    cmd = c;
    send_ipi(1, ICR_FIXED | VEC_WAKE);
    wait_for(&cmd_done, done + 1);
}


static bool start_ap(u32 want) {
    send_ipi(1, ICR_INIT | ICR_ASSERT);
    /* INIT level de-assert (11.6.1; 82489DX compatibility), then SIPI; a
     * second SIPI only if the first was not taken (9.4.4.1). */
    send_ipi(1, ICR_INIT | (1u << 15));
    send_ipi(1, ICR_SIPI | (TRAMP >> 12));
    if (wait_for(&ap_started, want)) return true;
    send_ipi(1, ICR_SIPI | (TRAMP >> 12));
    return wait_for(&ap_started, want);
}

void guest_main(void) {
    guest_init("smp");
    if (!under_hv()) {
        /* Bochs's 8259s also see IRQ 4: mask both. */
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
    idt_set_handler(VEC_TO_AP, ap_isr);
    idt_set_handler(VEC_TO_BSP, bsp_isr);
    idt_set_handler(VEC_ALL, all_isr);
    idt_set_handler(VEC_WAKE, wake_isr);
    idt_set_handler(VEC_COM, com_isr);
    idt_set_handler(VEC_TIMER, timer_isr);
    idt_set_handler(2, nmi_isr);
    __asm__ volatile("sidt %0" : "=m"(bsp_idtr));
    apic_write(APIC_SVR, 0x1FF);
    bsp_id = apic_read(APIC_ID) >> 24;

    HV_CHECK(fwcfg_u16(0x05) == 2, "fw_cfg NB_CPUS: 2 vCPUs|%u", fwcfg_u16(0x05));
    check(bsp_id == 0 && (cpuid(1, 0).ebx >> 24) == 0, "BSP: APIC ID 0, CPUID initial APIC ID 0|%u", bsp_id);
    check((rdmsr(MSR_APIC_BASE) & (1u << 8)) != 0, "BSP: IA32_APIC_BASE.BSP set");
    /* A snapshot holds one vCPU: the snapshot hypercall is unknown here. */
    HV_CHECK(vmcall(HC_SNAPSHOT_TAKE, 0, 0) == HC_UNKNOWN, "vcpus=2: snapshot hypercall answered unknown (RAX = 2)");

    /* The AP's trampoline (lib/apboot.c) at the start-up page. */
    apboot_prepare(TRAMP, ap_main);

    bool up = start_ap(1);
    check(up, "INIT, SIPI: the AP runs the start-up code|%u", ap_started);
    if (!up) {
        finish_result();
        exit_guest(1);
    }
    u16 cs = apboot_cs(TRAMP);
    check(cs == (TRAMP >> 4), "AP started in real mode at CS = vector << 8|CS 0x%x", cs);
    check(ap_apic_id == 1 && ap_cpuid_id == 1, "AP: APIC ID 1, CPUID initial APIC ID 1|%u %u", ap_apic_id, ap_cpuid_id);
    check((ap_apic_base & (1u << 8)) == 0 && (ap_apic_base & 0xfffff000u) == APIC_BASE,
          "AP: IA32_APIC_BASE at FEE00000H, BSP clear|0x%x", ap_apic_base);
    check((ap_cr0 & 1) && !(ap_cr0 & 0x60000000u), "AP: in protected mode through the trampoline|CR0 0x%x", ap_cr0);

    /* BSP -> AP, fixed, physical destination 1. */
    send_ipi(1, ICR_FIXED | VEC_TO_AP);
    check(wait_for(&ap_hits, 1) && ap_hits == 1, "BSP -> AP fixed IPI (physical): the AP's handler ran once|%u", ap_hits);
    check((apic_read(APIC_ICR_LO) & ICR_BUSY) == 0, "ICR delivery status idle after the send");
    /* AP -> BSP. */
    post(CMD_IPI_BSP);
    check(wait_for(&bsp_hits, 1) && bsp_hits == 1, "AP -> BSP fixed IPI (physical): the BSP's handler ran once|%u", bsp_hits);
    /* The figure (not a check): an IPI round trip, the BSP's IPI waking the
     * AP and the AP's IPI back to the BSP, in TSC ticks, the least of 16. */
    u64 best = ~0ull;
    for (int i = 0; i < 16; i++) {
        u32 h = bsp_hits;
        u64 t0 = rdtsc_fenced();
        post(CMD_IPI_BSP);
        wait_for(&bsp_hits, h + 1);
        u64 t = rdtsc_fenced() - t0;
        if (t < best) best = t;
    }
    diag("smp: IPI round trip BSP -> AP -> BSP (mailbox): %u ticks, least of 16", (u32)best);
    u32 bsp_base = bsp_hits - 1;
    /* All excluding self, from the AP: the BSP only. */
    post(CMD_ALL_EXCL);
    wait_for(&all_hits[0], 1);
    check(all_hits[0] == 1 && all_hits[1] == 0, "AP: all-excluding-self reaches the BSP, not the AP|%u %u", all_hits[0],
          all_hits[1]);
    /* From the BSP: all excluding self, then all including self. */
    send_ipi(0, ICR_ALL_EXCL | ICR_FIXED | VEC_ALL);
    wait_for(&all_hits[1], 1);
    check(all_hits[0] == 1 && all_hits[1] == 1, "BSP: all-excluding-self reaches the AP only|%u %u", all_hits[0], all_hits[1]);
    send_ipi(0, ICR_ALL_INCL | ICR_FIXED | VEC_ALL);
    wait_for(&all_hits[1], 2);
    wait_for(&all_hits[0], 2);
    check(all_hits[0] == 2 && all_hits[1] == 2, "BSP: all-including-self reaches both|%u %u", all_hits[0], all_hits[1]);
    /* Logical destination, flat model (11.6.2.2): the BSP's LDR has bit 0,
     * the AP's bit 1 (ap_main), both DFR flat. */
    apic_write(APIC_DFR, 0xffffffff);
    apic_write(APIC_LDR, 0x01000000);
    u32 before = ap_hits;
    send_ipi(0x02, ICR_LOGICAL | ICR_FIXED | VEC_TO_AP);
    check(wait_for(&ap_hits, before + 1) && ap_hits == before + 1, "logical, flat model, 02H: the AP's handler ran|%u",
          ap_hits - before);
    before = bsp_hits;
    send_ipi(0x01, ICR_LOGICAL | ICR_FIXED | VEC_TO_BSP);
    check(wait_for(&bsp_hits, before + 1) && bsp_hits == before + 1, "logical, flat model, 01H: the BSP itself|%u",
          bsp_hits - before);
    /* Neither processor exits while it spins: where the two share one, each
     * gets it back by time slice (the AP spins until the BSP, which needs
     * the processor, releases it). */
    u32 done = cmd_done;
    u64 s0 = rdtsc();
    cmd = CMD_SPIN;
    send_ipi(1, ICR_FIXED | VEC_WAKE);
    bool spun = wait_ticks(&spinning, 1, 200000000ull);
    release = 1;
    check(spun && wait_ticks(&cmd_done, done + 1, 200000000ull),
          "the AP spinning with interrupts off, the BSP waiting for it: both progress|spinning %u, done %u", spinning,
          cmd_done - done);
    /* Both wait in PAUSE loops (the AP for `release`, the BSP for `spinning`
     * and then `cmd_done`): on a shared processor the spinning one gives the
     * processor up to the other (PAUSE-loop exiting, SDM Vol. 3C 26.1.3)
     * rather than spinning out its time slice (2^24 ticks). */
    u32 spin_took = (u32)(rdtsc() - s0);
    check_hv(spin_took < 4000000, "... within 4,000,000 ticks: a PAUSE loop hands the processor over|%u ticks", spin_took);
    /* The AP sleeps with its APIC timer armed while the BSP works (port
     * reads: exits under the hypervisor): the timer's interrupt wakes the AP
     * without waiting for the BSP's time slice (2^24 ticks) to end. */
    post(CMD_TIMER);
    u64 t0 = rdtsc();
    while (timer_hits < 1 && rdtsc() - t0 < 200000000ull) inb(COM1 + 5);
    u32 took = (u32)(rdtsc() - t0);
    check(timer_hits == 1, "the sleeping AP's APIC timer interrupt arrives while the BSP runs|%u", timer_hits);
    check_hv(took < 4000000, "... within 4,000,000 ticks of the arming (count 200,000, divide by 1)|%u ticks", took);
    /* BSP -> AP NMI (the vector field is ignored, 11.6.1). */
    send_ipi(1, ICR_NMI);
    check(wait_for(&nmi_hits, 1) && nmi_hits == 1, "BSP -> AP NMI: the AP's NMI handler ran|%u", nmi_hits);

    /* The I/O APIC: COM1's THR-empty interrupt, level-triggered, routed to
     * the AP by the entry's physical destination; the AP's EOI clears remote
     * IRR, or the next round would get nothing. */
    outb(IER, 0);
    set_rte(COM1_INPUT, RTE_LEVEL | VEC_COM, 1);
    outb(MCR, MCR_OUT2);
    u32 rounds = 0;
    for (; rounds < COM_ROUNDS; rounds++) {
        outb(IER, 0);
        outb(IER, IER_THRE);
        if (!wait_for(&com_hits, rounds + 1)) break;
    }
    outb(IER, 0);
    u32 lo = io_read(0x10 + 2 * COM1_INPUT);
    set_rte(COM1_INPUT, RTE_MASKED, 0);
    outb(MCR, 0);
    check(rounds == COM_ROUNDS && com_hits == COM_ROUNDS && com_iir_bad == 0,
          "I/O APIC: COM1 level-triggered to the AP (destination 1), 100 rounds|%u rounds, %u on the AP, %u bad IIR",
          rounds, com_hits, com_iir_bad);
    check((lo & RTE_REMOTE_IRR) == 0, "remote IRR clear after the AP's EOI|0x%x", lo);

    /* INIT puts the AP back in wait-for-SIPI; a SIPI starts it again at the
     * start-up page, with its local APIC in the INIT state (11.4.7.3). */
    ap_apic_id = 0xff;
    up = start_ap(2);
    check(up && ap_apic_id == 1, "INIT, SIPI again: the AP starts over|%u starts, APIC ID %u", ap_started, ap_apic_id);
    before = ap_hits;
    send_ipi(1, ICR_FIXED | VEC_TO_AP);
    check(wait_for(&ap_hits, before + 1), "the restarted AP takes a fixed IPI|%u", ap_hits - before);
    check(bsp_hits - bsp_base == 2 && all_hits[0] == 2, "no stray interrupt on the BSP|%u %u", bsp_hits - bsp_base, all_hits[0]);

    finish_result();
    u32 code = tap_failed() ? 1 : 0;
    if (!under_hv()) {
        /* Bare Bochs: the magic breakpoint for PASS, port 8900H "Shutdown"
         * for FAIL (as ioapic.c). */
        if (!code) __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
        for (const char *s = "Shutdown"; *s; s++) outb(0x8900, (u8)*s);
    }
    exit_guest(code);
}
