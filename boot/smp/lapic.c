/* The local APIC (SDM Vol. 3A ch. 10) and the legacy interrupt sources.
 *
 * Mode: whatever the firmware left the boot processor in. xAPIC: registers
 * are MMIO at IA32_APIC_BASE (identity mapped; the firmware's MTRRs make
 * the range UC). x2APIC (10.12): register at offset R is MSR 0x800 + R/16,
 * the ICR is one 64-bit MSR (0x830) with the destination in bits 63:32.
 * Application processors are put in the boot processor's mode.
 *
 * Nothing but the wake-up IPI is to reach a processor: the 8259 PIC is
 * masked, every I/O APIC input is masked, every local vector table entry is
 * masked, the spurious vector is 0xFF (its handler does no EOI, 10.9). */
#include "smp.h"

#define MSR_APIC_BASE   0x1b
#define APIC_BASE_BSP   (1ull << 8)
#define APIC_BASE_X2    (1ull << 10)
#define APIC_BASE_EN    (1ull << 11)

#define REG_ID      0x020
#define REG_VERSION 0x030
#define REG_TPR     0x080
#define REG_EOI     0x0b0
#define REG_SVR     0x0f0
#define REG_ESR     0x280
#define REG_CMCI    0x2f0
#define REG_ICR_LO  0x300
#define REG_ICR_HI  0x310
#define REG_TIMER   0x320
#define REG_THERMAL 0x330
#define REG_PERF    0x340
#define REG_LINT0   0x350
#define REG_LINT1   0x360
#define REG_ERROR   0x370
#define LVT_MASK    (1u << 16)
#define ICR_BUSY    (1u << 12) /* xAPIC delivery status: send pending */

bool smp_x2apic;
static u64 mmio;               /* xAPIC register base */
/* The EOI register's address for the interrupt stubs (smp.c); 0 = x2APIC. */
__attribute__((used)) u64 smp_lapic_eoi;

static u32 rd(u32 reg) {
    if (smp_x2apic) return (u32)rdmsr(0x800 + (reg >> 4));
    return *(volatile u32 *)(mmio + reg);
}

static void wr(u32 reg, u32 v) {
    if (smp_x2apic) wrmsr(0x800 + (reg >> 4), v);
    else *(volatile u32 *)(mmio + reg) = v;
}

bool smp_lapic_probe(void) {
    u32 r[4];
    cpuid(1, 0, r);
    if (!(r[3] & (1u << 9))) return false; /* CPUID.1:EDX.APIC */
    u64 base = rdmsr(MSR_APIC_BASE);
    if (!(base & APIC_BASE_EN)) {
        /* Hardware-disabled by the firmware: enable it in xAPIC mode. */
        base |= APIC_BASE_EN;
        wrmsr(MSR_APIC_BASE, base);
    }
    smp_x2apic = (base & APIC_BASE_X2) != 0;
    mmio = base & ~0xfffull & ((1ull << 52) - 1);
    if (!smp_x2apic && mmio + 0x1000 > hv_paging_top()) return false;
    smp_lapic_eoi = smp_x2apic ? 0 : mmio + REG_EOI;
    return true;
}

u32 smp_lapic_id(void) {
    return smp_x2apic ? rd(REG_ID) : rd(REG_ID) >> 24;
}

void smp_lapic_init(void) {
    if (smp_x2apic) {
        u64 base = rdmsr(MSR_APIC_BASE);
        if (!(base & APIC_BASE_X2)) /* xAPIC -> x2APIC: EN already set (10.12.5) */
            wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_X2);
    }
    u32 max_lvt = (rd(REG_VERSION) >> 16) & 0xff;
    wr(REG_TIMER, LVT_MASK);
    wr(REG_LINT0, LVT_MASK);
    wr(REG_LINT1, LVT_MASK);
    wr(REG_ERROR, LVT_MASK);
    if (max_lvt >= 4) wr(REG_PERF, LVT_MASK);
    if (max_lvt >= 5) wr(REG_THERMAL, LVT_MASK);
    if (max_lvt >= 6) wr(REG_CMCI, LVT_MASK);
    wr(REG_ESR, 0);                              /* clear the error status */
    wr(REG_TPR, 0);                              /* accept every priority */
    wr(REG_SVR, 0x100 | SMP_SPURIOUS_VECTOR);    /* software enable */
    /* Whatever the firmware left in service would block lower vectors. */
    for (int i = 0; i < 8; i++) wr(REG_EOI, 0);
}

/* The timer in TSC-deadline mode (SDM Vol. 3A 11.5.4.1) with `vector`, for
 * cpu.wait (threads.c): false where the processor has no such mode
 * (CPUID.01H:ECX[24]). Armed by writing IA32_TSC_DEADLINE (6E0H), disarmed
 * by writing 0 there. */
bool smp_lapic_tsc_deadline(u32 vector) {
    u32 r[4];
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 24))) return false;
    wr(REG_TIMER, (2u << 17) | vector);
    return true;
}

/* End of interrupt for the vector in service (an interrupt acknowledged by
 * a VM exit, "acknowledge interrupt on exit", SDM Vol. 3C 27.2.2). */
void smp_lapic_eoi_now(void) { wr(REG_EOI, 0); }

void smp_lapic_ipi(u32 apic_id, u32 icr) {
    /* The handoff stores must be visible before the IPI: x2APIC ICR writes
     * (WRMSR) are not serializing (SDM Vol. 3A 10.12.3). */
    __asm__ volatile("mfence" ::: "memory");
    if (smp_x2apic) {
        wrmsr(0x830, (u64)apic_id << 32 | icr);
        return;
    }
    for (u32 spin = 0; spin < 1000000 && (rd(REG_ICR_LO) & ICR_BUSY); spin++)
        __asm__ volatile("pause");
    wr(REG_ICR_HI, apic_id << 24);
    wr(REG_ICR_LO, icr);
    for (u32 spin = 0; spin < 1000000 && (rd(REG_ICR_LO) & ICR_BUSY); spin++)
        __asm__ volatile("pause");
}

/* I/O APIC (82093AA datasheet): index register at +0, data window at +0x10;
 * register 1 bits 23:16 = last redirection entry; entry n's low half is
 * register 0x10 + 2n, bit 16 masks it. */
static void ioapic_mask_all(u64 base) {
    volatile u32 *sel = (volatile u32 *)base, *win = (volatile u32 *)(base + 0x10);
    *sel = 1;
    u32 last = (*win >> 16) & 0xff;
    for (u32 n = 0; n <= last; n++) {
        *sel = 0x10 + 2 * n;
        *win = *win | LVT_MASK;
    }
}

void smp_mask_legacy(const struct smp_madt *m) {
    outb(0x21, 0xff); /* 8259 master and slave: all inputs masked */
    outb(0xa1, 0xff);
    for (u32 i = 0; m && i < m->ioapics; i++)
        if (m->ioapic[i] && m->ioapic[i] + 0x20 <= hv_paging_top()) ioapic_mask_all(m->ioapic[i]);
}
