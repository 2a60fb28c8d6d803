/* bench.elf: round-trip costs measured in the guest with RDTSC.
 *
 * On Bochs with `clock: sync=none` RDTSC counts emulated instructions, so a
 * delta is the path length of the exit and its handling in the hypervisor,
 * exact and repeatable. Each sample is `lfence; rdtsc` before and after one
 * operation (LFENCE so that real CPUs do not start RDTSC early; on Bochs it
 * is just one more instruction), minus the cost of an empty pair (its
 * minimum over the samples). Each operation runs 16 times to warm up, then
 * N times (1000, or the command line's n=N, 1..1000); the guest prints
 *   bench: <op> min=<n> median=<n> n=<N>
 * per operation, then `RESULT: PASS`, and ends with isa-debug-exit 0.
 * The VMCALL only runs under our hypervisor (elsewhere: a `skipped` line).
 * With `snap` on the command line (under the hypervisor), the snapshot
 * hypercalls too: snapshot-take, snapshot-restore-<dirty pages>. With `apic`,
 * the local APIC's: self-ipi-eoi, tpr-write, eoi-write (see apic_figures). */
#include "guest.h"

#define MAX_N 1000
#define WARMUP 16

static u32 samples[MAX_N];
static int N = MAX_N;

static void sort(u32 *a, int n) {
    /* Shell sort with the 3x+1 gaps: a few hundred thousand instructions for 1000 samples. */
    int gap = 1;
    while (gap < n / 3) gap = gap * 3 + 1;
    for (; gap > 0; gap /= 3) {
        for (int i = gap; i < n; i++) {
            u32 v = a[i];
            int j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap) a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

/* One asm block per sample, so nothing the compiler generates lies between
 * the two RDTSCs. The timed region holds the operation and its register
 * set-up: CPUID 2 instructions (EAX, ECX = 0), VMCALL 2 (RAX = 2, RBX = 0),
 * OUT 2 (AL, DX), RDMSR none (ECX is loaded before the first RDTSC). */
#define T_START "lfence\n\trdtsc\n\tmovl %%eax, %%esi\n\t"
#define T_END "lfence\n\trdtsc\n\tsubl %%esi, %%eax\n\t"

static u32 s_empty(void) {
    u32 t;
    __asm__ volatile(T_START T_END : "=a"(t)::"edx", "esi", "memory");
    return t;
}
static u32 s_cpuid(void) {
    u32 t;
    __asm__ volatile(T_START "xorl %%eax, %%eax\n\txorl %%ecx, %%ecx\n\tcpuid\n\t" T_END
                     : "=a"(t)::"ebx", "ecx", "edx", "esi", "memory");
    return t;
}
static u32 s_vmcall(void) {
    u32 t;
    __asm__ volatile(T_START "movl $2, %%eax\n\txorl %%ebx, %%ebx\n\tvmcall\n\t" T_END
                     : "=a"(t)::"ebx", "ecx", "edx", "esi", "memory");
    return t;
}
static u32 s_port(void) {
    u32 t;
    __asm__ volatile(T_START "movb $0x5a, %%al\n\tmovw $0x3ff, %%dx\n\toutb %%al, %%dx\n\t" T_END
                     : "=a"(t)::"edx", "esi", "memory");
    return t;
}
static u32 s_rdmsr(void) {
    u32 t;
    __asm__ volatile(T_START "rdmsr\n\t" T_END : "=a"(t) : "c"(MSR_APIC_BASE) : "edx", "esi", "memory");
    return t;
}

static u32 overhead;

/* ---- the local APIC (`apic`): SDM Vol. 3A 11.6.1, 11.8.3.1, 11.8.5 ------------------------
 * self-ipi-eoi: with IF = 1, a write of ICR low (fixed, vector APIC_VEC, shorthand self)
 * interrupts at once; the handler writes EOI and returns: timed from before the write to
 * after the IRET (the handler's path through the guest library's IDT stub included, the
 * same everywhere). tpr-write: MOV of 0 to the TPR. eoi-write: a write of EOI with nothing
 * in service. Under the hypervisor with APIC virtualization (apicv=on) none of them exits
 * (self-IPI, TPR and EOI virtualization, virtual-interrupt delivery); with apicv=off each
 * APIC write is an exit and the interrupt is injected.
 * Then the same three in x2APIC mode (11.12; CPUID.01H:ECX[21]), through the MSRs:
 * x2-self-ipi-eoi: WRMSR of SELF IPI (83FH) with vector APIC_VEC, the handler's EOI by WRMSR
 * of 80BH; x2-tpr-write: WRMSR of 0 to the TPR (808H); x2-eoi-write: WRMSR of 0 to EOI
 * (80BH) with nothing in service. With apicv=on the hypervisor runs x2APIC mode with
 * "virtualize x2APIC mode" (kernel/vm/apicv.ts): none of them exits; with apicv=off each
 * WRMSR exits to the software APIC. The guest stays in x2APIC mode afterwards. */
#define APIC_VEC 0x70
#define X2APIC_TPR 0x808u
#define X2APIC_EOI 0x80Bu
#define X2APIC_SELF_IPI 0x83Fu
static volatile u32 apic_hits;
static void apic_isr(struct frame *f) {
    apic_hits++;
    apic_write(APIC_EOI, 0);
}
static u32 s_self_ipi(void) {
    u32 t;
    __asm__ volatile(T_START "movl $0x40070, (%%ecx)\n\tsti\n\tnop\n\tcli\n\t" T_END
                     : "=a"(t) : "c"(APIC_BASE + APIC_ICR_LO) : "edx", "esi", "memory");
    return t;
}
static u32 s_tpr(void) {
    u32 t;
    __asm__ volatile(T_START "movl $0, (%%ecx)\n\t" T_END : "=a"(t) : "c"(APIC_BASE + 0x80) : "edx", "esi", "memory");
    return t;
}
static u32 s_eoi(void) {
    u32 t;
    __asm__ volatile(T_START "movl $0, (%%ecx)\n\t" T_END : "=a"(t) : "c"(APIC_BASE + APIC_EOI) : "edx", "esi", "memory");
    return t;
}
static void apic_x2_isr(struct frame *f) {
    apic_hits++;
    wrmsr(X2APIC_EOI, 0);
}
static u32 s_x2_self_ipi(void) {
    u32 t;
    __asm__ volatile(T_START "movl $0x70, %%eax\n\txorl %%edx, %%edx\n\twrmsr\n\tsti\n\tnop\n\tcli\n\t" T_END
                     : "=a"(t) : "c"(X2APIC_SELF_IPI) : "edx", "esi", "memory");
    return t;
}
static u32 s_x2_zero(u32 msr) {
    u32 t;
    __asm__ volatile(T_START "xorl %%eax, %%eax\n\txorl %%edx, %%edx\n\twrmsr\n\t" T_END
                     : "=a"(t) : "c"(msr) : "edx", "esi", "memory");
    return t;
}
static u32 s_x2_tpr(void) { return s_x2_zero(X2APIC_TPR); }
static u32 s_x2_eoi(void) { return s_x2_zero(X2APIC_EOI); }
static void run(u32 (*sample)(void), const char *name);
static void apic_figures(void) {
    outb(0x21, 0xFF); /* no 8259 interrupts (bare Bochs's BIOS leaves the PIT's unmasked) */
    outb(0xA1, 0xFF);
    idt_set_handler(APIC_VEC, apic_isr);
    apic_write(APIC_SVR, 0x1FF);
    u32 before = apic_hits;
    run(s_self_ipi, "self-ipi-eoi");
    if (apic_hits != before + (u32)(WARMUP + N)) fail_stop("self-ipi-eoi: %u interrupts for %d IPIs", apic_hits - before, WARMUP + N);
    run(s_tpr, "tpr-write");
    run(s_eoi, "eoi-write");
    if ((cpuid(1, 0).ecx & (1u << 21)) == 0) {
        printf("bench: x2-self-ipi-eoi skipped (no x2APIC: CPUID.01H:ECX[21] = 0)\n");
        return;
    }
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 10)); /* EXTD: xAPIC -> x2APIC (11.12.5) */
    idt_set_handler(APIC_VEC, apic_x2_isr);
    before = apic_hits;
    run(s_x2_self_ipi, "x2-self-ipi-eoi");
    if (apic_hits != before + (u32)(WARMUP + N)) fail_stop("x2-self-ipi-eoi: %u interrupts for %d IPIs", apic_hits - before, WARMUP + N);
    run(s_x2_tpr, "x2-tpr-write");
    run(s_x2_eoi, "x2-eoi-write");
}

/* ---- guest-requested snapshots (snap=1): docs/guest-interface.md "Snapshots" ----------------
 * take: the VMCALL round trip of function 3 (the vCPU's blob, the RAM, the devices).
 * restore with D dirty pages: a take, then K rounds of "write one byte in each of D
 * pages, restore"; the time from the take's return to the K-th return at the snapshot
 * point, less one take, over K: one restore round (its D writes included: a few
 * instructions each).
 * Nothing that must survive a restore may be in RAM written after the take: the start
 * time is stored before it, and the result printed after the last restore. */
#define SNAP_K 4
#define SNAP_PAGES 1024
static volatile u8 dirty_area[SNAP_PAGES * 4096] __attribute__((aligned(4096))); /* volatile: never read, the writes must stay */
static volatile u64 snap_t0;
static u64 take_ticks; /* snapshot-take's median, subtracted from the restore rounds' time */

static u64 snap_take(u32 *rbx) {
    u32 rax, b;
    __asm__ volatile("vmcall" : "=a"(rax), "=b"(b) : "a"(HC_SNAPSHOT_TAKE), "b"(0) : "memory", "ecx", "edx", "esi", "edi");
    *rbx = b;
    return rax;
}
static void snap_restore(void) {
    __asm__ volatile("vmcall" ::"a"(HC_SNAPSHOT_RESTORE), "b"(0) : "memory", "ecx", "edx", "esi", "edi");
}

static void snap_take_figure(int n) {
    for (int i = 0; i < n; i++) {
        u32 rbx;
        u64 t = rdtsc();
        u64 r = snap_take(&rbx);
        u64 d = rdtsc() - t;
        if (r != HC_OK) fail_stop("snapshot take: RAX = %llu", r);
        samples[i] = (u32)d;
    }
    sort(samples, n);
    take_ticks = samples[n / 2];
    printf("bench: snapshot-take min=%u median=%u n=%d\n", samples[0], samples[n / 2], n);
}

static void snap_restore_figure(u32 pages) {
    snap_t0 = rdtsc();
    u32 rbx;
    u64 r = snap_take(&rbx);
    if (r != HC_OK && r != HC_SNAPSHOT_RESTORED) fail_stop("snapshot take: RAX = %llu", r);
    if (rbx < SNAP_K) {
        for (u32 p = 0; p < pages; p++) dirty_area[p * 4096 + (rbx & 63)] = (u8)(rbx + 1);
        snap_restore();
        fail_stop("snapshot restore returned");
    }
    /* (one take, then K rounds of page writes and a restore) */
    u64 per = (rdtsc() - snap_t0 - take_ticks) / SNAP_K;
    printf("bench: snapshot-restore-%u min=%llu median=%llu n=%d\n", pages, per, per, SNAP_K);
}

static void run(u32 (*sample)(void), const char *name) {
    for (int i = 0; i < WARMUP; i++) sample();
    for (int i = 0; i < N; i++) {
        u32 d = sample();
        samples[i] = d > overhead ? d - overhead : 0;
    }
    sort(samples, N);
    printf("bench: %s min=%u median=%u n=%d\n", name, samples[0], samples[N / 2], N);
}

void guest_main(void) {
    guest_init("bench");
    char buf[16];
    bool okn;
    if (word_value(boot.cmdline, "n", buf, sizeof buf)) {
        u32 n = parse_u32(buf, &okn);
        if (!okn || n < 1 || n > MAX_N) fail_stop("n=%s: want 1..%d", buf, MAX_N);
        N = (int)n;
    }
    printf("bench: round trips in RDTSC ticks (Bochs sync=none: instructions), lfence;rdtsc pairs%s\n",
           under_hv() ? ", under ASHypervisor" : "");
    for (int i = 0; i < WARMUP; i++) s_empty();
    for (int i = 0; i < N; i++) samples[i] = s_empty();
    sort(samples, N);
    overhead = samples[0];
    printf("bench: overhead min=%u median=%u n=%d (subtracted: the min)\n", samples[0], samples[N / 2], N);

    run(s_cpuid, "cpuid");
    if (under_hv()) run(s_vmcall, "vmcall-query");
    else printf("bench: vmcall-query skipped (not under hv)\n");
    run(s_port, "port-out");
    run(s_rdmsr, "rdmsr-apicbase");
    if (has_word(boot.cmdline, "apic")) apic_figures();
    if (under_hv() && has_word(boot.cmdline, "snap")) {
        snap_take_figure(N < 8 ? N : 8);
        snap_restore_figure(0);
        snap_restore_figure(16);
        snap_restore_figure(SNAP_PAGES);
    }
    printf("# bench: %llu TSC ticks since entry\n", rdtsc() - entry.tsc);
    printf("RESULT: PASS\n");
    exit_debug(0);
}
