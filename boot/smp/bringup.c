/* Starting the application processors (SDM Vol. 3A 8.4.4.1, the MP
 * initialization example), from hv_start before kmain:
 *  1. the boot processor's local APIC, the interrupt vectors, every legacy
 *     interrupt source masked;
 *  2. the processors from the ACPI MADT; none (or only us): run alone;
 *  3. two pages below 1 MiB for the trampoline and a block per application
 *     processor (its IST and idle stacks, GDT, TSS), reserved in the boot map
 *     as HV_MEM_HYPERVISOR before the kernel's page allocator reads it;
 *  4. INIT to every application processor, 10 ms; then one at a time:
 *     STARTUP (vector = trampoline page), 200 us, a second STARTUP if it has
 *     not arrived, and wait for it to reach its idle loop. One that does not
 *     within SMP_START_TIMEOUT_MS is sent INIT again (parked in
 *     wait-for-SIPI) and left out.
 * Under UEFI this runs after ExitBootServices: the INIT takes the
 * processors away from wherever the firmware parked them. */
#include "smp.h"

#define SMP_START_TIMEOUT_MS 200
#define STR_(x) #x
#define STR(x) STR_(x)
#define LOW_LIMIT 0x9f000ull   /* real-mode pages end below the EBDA */

static struct smp_cpu bsp;
static u8 bsp_idle_stack[16384] __attribute__((aligned(16)));
static u64 bsp_cr0, bsp_cr4, bsp_xcr0;

/* Is [b, e) inside available RAM and clear of every other map entry? */
static bool range_free(const struct hv_bootinfo *bi, u64 b, u64 e) {
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    bool inside = false;
    for (u32 i = 0; i < bi->mmap_count; i++) {
        u64 mb = m[i].base, me = m[i].base + m[i].length;
        if (m[i].type == HV_MEM_AVAILABLE) {
            if (b >= mb && e <= me) inside = true;
        } else if (b < me && e > mb) {
            return false;
        }
    }
    return inside;
}

/* A page-aligned free range of size bytes within [lo, hi): the lowest one
 * (or the highest), tried at the edges of the map's entries. 0 if none. */
static u64 find_free(const struct hv_bootinfo *bi, u64 size, u64 lo, u64 hi, bool highest) {
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    u64 best = 0;
    for (u32 i = 0; i < bi->mmap_count; i++) {
        u64 edge[2] = { m[i].base, m[i].base + m[i].length };
        for (int k = 0; k < 4; k++) {
            u64 c = k < 2 ? (edge[k] + 0xfff) & ~0xfffull         /* starting at an edge */
                          : ((edge[k - 2] & ~0xfffull) - size);     /* ending at an edge */
            if (c < lo || c + size > hi || c + size < c || !range_free(bi, c, c + size)) continue;
            if (!best || (highest ? c > best : c < best)) best = c;
        }
    }
    return best;
}

static bool reserve(struct hv_bootinfo *bi, u64 base, u64 len) {
    if (bi->mmap_count >= bi->mmap_capacity) return false;
    struct hv_mmap_entry *e = (struct hv_mmap_entry *)bi->mmap + bi->mmap_count++;
    e->base = base;
    e->length = len;
    e->type = HV_MEM_HYPERVISOR;
    e->reserved = 0;
    return true;
}

/* First C code of an application processor (the trampoline calls it on its
 * idle stack): the boot processor's CR0/CR4/XCR0, its own GDT/TSS, GS base,
 * local APIC; then it reports in and idles. */
__attribute__((sysv_abi, noreturn, used)) void smp_ap_entry(struct smp_cpu *c) {
    __asm__ volatile("mov %0, %%cr0" :: "r"(bsp_cr0) : "memory");
    __asm__ volatile("mov %0, %%cr4" :: "r"(bsp_cr4) : "memory");
    if (bsp_cr4 & (1ull << 18)) /* OSXSAVE */
        __asm__ volatile("xsetbv" :: "c"(0), "a"((u32)bsp_xcr0), "d"((u32)(bsp_xcr0 >> 32)));
    hv_cpu_init_ap(&c->tables, c->ist_top);
    wrmsr(0xc0000101, (u64)c); /* IA32_GS_BASE */
    smp_lapic_init();
    c->apic_id = smp_lapic_id();
    __atomic_store_n(&c->online, 1, __ATOMIC_RELEASE);
    smp_idle(c);
}

static void report(void) {
    hv_puts("hv: smp: ");
    hv_put_dec(smp_online);
    hv_puts(smp_online == 1 ? " CPU online (LAPIC ID " : " CPUs online (LAPIC IDs ");
    for (u32 i = 0; i < smp_online; i++) {
        if (i) hv_puts(", ");
        hv_put_dec(smp_cpus[i]->apic_id);
    }
    hv_puts(")\n");
}

static void alone(const char *why) {
    hv_puts("hv: smp: ");
    hv_puts(why);
    hv_puts("; running on the boot processor alone\n");
    report();
}

/* Start the processor with this APIC ID in the block at blk; true when it
 * reached its idle loop. */
static bool start_one(u64 tramp, u8 *blk, u32 apic_id) {
    struct smp_cpu *c = (struct smp_cpu *)blk;
    memset(c, 0, sizeof *c);
    c->index = smp_online;
    c->apic_id = apic_id;
    c->self = c;
    c->idle_top = (u64)blk + SMP_AP_BLOCK;
    for (int i = 0; i < 3; i++) c->ist_top[i] = (u64)blk + SMP_AP_IST_BASE + (i + 1) * SMP_AP_IST_SIZE;
    smp_tramp_arm(tramp, c->idle_top, c);
    for (int sipi = 0; sipi < 2; sipi++) {
        smp_lapic_ipi(apic_id, ICR_STARTUP | (u32)(tramp >> 12));
        u64 end = smp_tsc_after_us(sipi == 0 ? 200 : SMP_START_TIMEOUT_MS * 1000ull);
        while (!__atomic_load_n(&c->online, __ATOMIC_ACQUIRE) && (i64)(rdtsc() - end) < 0)
            __asm__ volatile("pause");
        if (__atomic_load_n(&c->online, __ATOMIC_ACQUIRE)) {
            smp_cpus[smp_online++] = c;
            return true;
        }
    }
    smp_lapic_ipi(apic_id, ICR_INIT); /* park it in wait-for-SIPI */
    hv_puts("hv: smp: the processor with LAPIC ID ");
    hv_put_dec(apic_id);
    hv_puts(" did not start within " STR(SMP_START_TIMEOUT_MS) " ms; continuing without it\n");
    return false;
}

void hv_smp_init(struct hv_bootinfo *bi) {
    bsp.self = &bsp;
    bsp.idle_top = (u64)&bsp_idle_stack[sizeof bsp_idle_stack];
    bsp.online = 1;
    smp_cpus[0] = &bsp;
    smp_online = 1;
    wrmsr(0xc0000101, (u64)&bsp);
    __asm__ volatile("mov %%cr0, %0" : "=r"(bsp_cr0));
    __asm__ volatile("mov %%cr4, %0" : "=r"(bsp_cr4));
    if (bsp_cr4 & (1ull << 18)) {
        u32 lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        bsp_xcr0 = (u64)hi << 32 | lo;
    }

    struct smp_madt madt;
    bool have_madt = smp_madt_read(bi, &madt);
    smp_mask_legacy(have_madt ? &madt : 0);
    if (!smp_lapic_probe()) {
        alone("no usable local APIC");
        return;
    }
    bsp.apic_id = smp_lapic_id();
    smp_lapic_init();
    smp_install_vectors();
    if (!have_madt) {
        if (bi->rsdp && !madt.rsdp) {
            hv_puts("hv: smp: the boot information's RSDP at ");
            hv_put_hex(bi->rsdp);
            hv_puts(" is not valid\n");
        }
        alone(madt.rsdp ? "the ACPI tables have no valid MADT" : "no ACPI RSDP found");
        return;
    }
    hv_puts("hv: smp: ACPI MADT (RSDP ");
    hv_put_hex(madt.rsdp);
    hv_puts(") lists ");
    hv_put_dec(madt.cpus + madt.more);
    hv_puts(madt.cpus + madt.more == 1 ? " processor\n" : " processors\n");
    if (!bi->cpu_count) bi->cpu_count = madt.cpus + madt.more;

    /* The application processors, in MADT order, up to the cap. */
    u32 ap[SMP_MAX_CPUS], aps = 0, skipped = madt.more;
    for (u32 i = 0; i < madt.cpus; i++) {
        u32 id = madt.apic_id[i];
        if (id == bsp.apic_id) continue;
        if (aps == SMP_MAX_CPUS - 1 || (!smp_x2apic && id >= 0xff)) {
            skipped++;
            continue;
        }
        ap[aps++] = id;
    }
    if (skipped) {
        hv_puts("hv: smp: ");
        hv_put_dec(skipped);
        hv_puts(" processors left out (at most " STR(SMP_MAX_CPUS) " CPUs; IDs above 254 need x2APIC mode)\n");
    }
    if (!aps) {
        alone("the MADT lists no other processor");
        return;
    }

    u64 tramp = find_free(bi, SMP_TRAMP_BYTES, 0x1000, LOW_LIMIT, true);
    u64 blocks = find_free(bi, (u64)aps * SMP_AP_BLOCK, 1ull << 20, hv_paging_top(), false);
    if (!tramp || !blocks || !reserve(bi, tramp, SMP_TRAMP_BYTES) ||
        !reserve(bi, blocks, (u64)aps * SMP_AP_BLOCK)) {
        alone(!tramp ? "no free memory below 1 MiB for the start-up code"
                     : !blocks ? "no free memory for the processors' stacks" : "the boot map is full");
        return;
    }
    smp_delay_init();
    smp_tramp_install(tramp);
    hv_puts("hv: smp: starting ");
    hv_put_dec(aps);
    hv_puts(aps == 1 ? " processor" : " processors");
    hv_puts(" (INIT-SIPI-SIPI, start-up code at ");
    hv_put_hex(tramp);
    hv_puts(")\n");

    for (u32 i = 0; i < aps; i++) smp_lapic_ipi(ap[i], ICR_INIT);
    smp_delay_us(10000);
    for (u32 i = 0; i < aps; i++) start_one(tramp, (u8 *)blocks + (u64)i * SMP_AP_BLOCK, ap[i]);
    report();
}
