/* Multiprocessor support, private to boot/smp.
 *
 * One kernel thread moves between processors (cpu.migrate): every processor
 * that does not run it waits in its idle loop (sti; hlt) for the wake-up IPI.
 * Files: madt.c (find the processors), lapic.c (local APIC, IPIs, masking
 * the legacy interrupt sources), delay.c (a calibrated TSC delay),
 * trampoline.c (real mode -> long mode for a starting processor), bringup.c
 * (INIT-SIPI-SIPI), smp.c (idle loop, migration and the cpu.* imports). */
#ifndef HV_SMP_H
#define HV_SMP_H
#include "hv.h"

#define SMP_MAX_CPUS        16
#define SMP_WAKE_VECTOR     0xf0 /* the IPI that wakes an idle processor */
#define SMP_KICK_VECTOR     0xf1 /* threads.c: a kernel thread's processor, to look at its vCPUs */
#define SMP_SPURIOUS_VECTOR 0xff /* SDM Vol. 3A 10.9: bits 3:0 set on P6 */

/* Per-processor block. GS base points at it on its processor: cpu.index()
 * is one load from %gs:0 and the migration stub finds the idle stack at
 * %gs:SMP_CPU_IDLE_TOP. An application processor's block is the start of a
 * SMP_AP_BLOCK-byte area: this structure, its IST stacks, its idle stack. */
struct smp_cpu {
    u32 index;              /*  0 0 = boot processor, 1.. = MADT order (broadcast: APIC ID order) */
    u32 apic_id;            /*  4 */
    struct smp_cpu *self;   /*  8 */
    u64 idle_top;           /* 16 top of the idle stack (16-byte aligned) */
    u64 handoff;            /* 24 a parked kernel-thread context for this CPU, 0 = none */
    u32 online;             /* 32 set by the processor when it reaches its idle loop */
    u32 wakes_seen;         /* 36 wake-up IPIs taken (its interrupt stub counts them) */
    u32 wakes_sent;         /* 40 wake-up IPIs sent to it */
    u32 reserved;
    u64 ist_top[3];         /* 48 #DF, NMI, #MC stacks (application processors) */
    struct hv_cpu_tables tables; /* 72 GDT and TSS (application processors) */
    u32 kicked;             /* threads.c: a kick arrived since the last cpu.wait */
    u32 timer;              /* threads.c: 0 not set up, 1 TSC-deadline timer, 2 none (wait spins) */
    u64 stack_limit;        /* threads.c: the stack bound of the kernel thread on this processor */
};
#define SMP_CPU_IDLE_TOP 16
#define SMP_CPU_WAKES_SEEN 36
_Static_assert(__builtin_offsetof(struct smp_cpu, index) == 0, "cpu.index reads %gs:0");
_Static_assert(__builtin_offsetof(struct smp_cpu, self) == 8, "smp.c reads %gs:8");
_Static_assert(__builtin_offsetof(struct smp_cpu, idle_top) == SMP_CPU_IDLE_TOP, "smp.c stub");
_Static_assert(__builtin_offsetof(struct smp_cpu, wakes_seen) == SMP_CPU_WAKES_SEEN, "smp.c stub");

#define SMP_AP_BLOCK      0x8000 /* per application processor (no suffix: used in asm): */
#define SMP_AP_IST_BASE   0x1000 /*   3 x 4 KiB IST stacks */
#define SMP_AP_IST_SIZE   0x1000
#define SMP_AP_IDLE_BASE  0x4000 /*   16 KiB idle stack, up to the end of the block */
_Static_assert(sizeof(struct smp_cpu) <= SMP_AP_IST_BASE, "block layout");

/* smp.c */
extern struct smp_cpu *smp_cpus[SMP_MAX_CPUS]; /* by index, [0, smp_online) */
extern u32 smp_online;
__attribute__((sysv_abi, noreturn)) void smp_idle(struct smp_cpu *c);
__attribute__((sysv_abi, noreturn)) void smp_resume(u64 context);
void smp_give(struct smp_cpu *t, u64 context); /* hand an idle processor a context to resume */

void smp_install_vectors(void);

/* madt.c: the enabled processors the ACPI MADT lists, in table order. */
#define SMP_MADT_MAX 64
struct smp_madt {
    u32 cpus;                     /* entries in apic_id */
    u32 apic_id[SMP_MADT_MAX];
    u32 more;                     /* enabled processors beyond SMP_MADT_MAX */
    u32 ioapics;
    u64 ioapic[8];                /* I/O APIC register bases */
    u64 rsdp;
};
bool smp_madt_read(const struct hv_bootinfo *bi, struct smp_madt *out);

/* lapic.c: the executing processor's local APIC, xAPIC (MMIO at
 * IA32_APIC_BASE, identity mapped) or x2APIC (MSRs), whichever mode the
 * boot processor's firmware left it in. */
#define ICR_FIXED     0x00004000u /* delivery mode 000, level assert */
#define ICR_INIT      0x00004500u /* delivery mode 101, level assert, edge */
#define ICR_STARTUP   0x00004600u /* delivery mode 110 | vector (page number) */
#define ICR_ALL_BUT_SELF 0x000c0000u /* destination shorthand 11 */
extern bool smp_x2apic;
bool smp_lapic_probe(void);       /* boot processor: mode and base; false if unusable */
void smp_lapic_init(void);        /* executing CPU: enable, mask LVTs, spurious vector */
u32 smp_lapic_id(void);
void smp_lapic_eoi_now(void);
bool smp_lapic_tsc_deadline(u32 vector); /* timer in TSC-deadline mode; false if there is none */
void smp_lapic_ipi(u32 apic_id, u32 icr);
void smp_mask_legacy(const struct smp_madt *m); /* 8259 PIC and I/O APIC inputs */

/* delay.c */
const char *smp_delay_init(void); /* how the rate was found: "PIT", "CPUID", "guessed" */
u64 smp_tsc_khz(void);
void smp_delay_us(u64 us);
u64 smp_tsc_after_us(u64 us);     /* RDTSC value us microseconds from now */

/* trampoline.c. A starting processor takes the next free slot n (an atomic
 * counter); n < max: it runs on the block at blocks + n * SMP_AP_BLOCK,
 * otherwise it parks (cli; hlt). */
#define SMP_TRAMP_BYTES 0x2000u   /* code page + a PML4 page below 4 GiB */
void smp_tramp_install(u64 page);
void smp_tramp_arm(u64 page, u64 blocks, u32 max);
u32 smp_tramp_taken(u64 page);    /* slots taken so far (may exceed max) */

#endif
