/* Starting the application processors (SDM Vol. 3A 8.4.4.1, the MP
 * initialization example), from hv_start before kmain:
 *  1. the boot processor's local APIC, the interrupt vectors, every legacy
 *     interrupt source masked;
 *  2. the processors from the ACPI MADT;
 *  3. two pages below 1 MiB for the trampoline and a block per application
 *     processor (its IST and idle stacks, GDT, TSS), reserved in the boot map
 *     as HV_MEM_HYPERVISOR before the kernel's page allocator reads it;
 *  4. with a MADT: INIT to every application processor, 10 ms; then one at
 *     a time: STARTUP (vector = trampoline page), 200 us, a second STARTUP
 *     if it has not arrived, and wait for it to reach its idle loop. One
 *     that does not within SMP_START_TIMEOUT_MS is sent INIT again (parked
 *     in wait-for-SIPI) and left out. Indices follow the MADT order.
 *     Without a MADT (OVMF on Bochs installs no ACPI tables): the SDM's own
 *     algorithm, INIT-SIPI-SIPI broadcast to all but self, each processor
 *     counting itself in the trampoline; indices by ascending APIC ID.
 * Under UEFI this runs after ExitBootServices: the INIT takes the
 * processors away from wherever the firmware parked them. */
#include "smp.h"

#define SMP_START_TIMEOUT_MS 200
#define SMP_BROADCAST_WAIT_MS 20  /* for processors to take a slot */
#define STR_(x) #x
#define STR(x) STR_(x)
#define LOW_LIMIT 0x9f000ull      /* real-mode pages end below the usual EBDA */
#define MAX_APS (SMP_MAX_CPUS - 1)

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

/* A page-aligned free range of size bytes within [lo, hi) (both page
 * aligned): the lowest one (or the highest), tried at lo, at hi and at the
 * edges of the map's entries. 0 if none. */
static u64 find_free(const struct hv_bootinfo *bi, u64 size, u64 lo, u64 hi, bool highest) {
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    u64 best = 0;
    for (u32 i = 0; i <= bi->mmap_count; i++) {
        u64 edge[2] = { lo, hi };
        if (i < bi->mmap_count) {
            edge[0] = m[i].base;
            edge[1] = m[i].base + m[i].length;
        }
        for (int k = 0; k < 4; k++) {
            u64 c = k < 2 ? (edge[k] + 0xfff) & ~0xfffull         /* starting at an edge */
                          : ((edge[k - 2] & ~0xfffull) - size);     /* ending at an edge */
            if (c < lo || c + size > hi || c + size < c || !range_free(bi, c, c + size)) continue;
            if (!best || (highest ? c > best : c < best)) best = c;
        }
    }
    return best;
}

static struct hv_mmap_entry *reserve(struct hv_bootinfo *bi, u64 base, u64 len) {
    if (bi->mmap_count >= bi->mmap_capacity) return 0;
    struct hv_mmap_entry *e = (struct hv_mmap_entry *)bi->mmap + bi->mmap_count++;
    e->base = base;
    e->length = len;
    e->type = HV_MEM_HYPERVISOR;
    e->reserved = 0;
    return e;
}

/* First C code of an application processor (the trampoline calls it on its
 * idle stack, SSE already on): its own GDT/TSS and the IDT (first, so that
 * a fault from here on is reported), the boot processor's CR0/CR4/XCR0, GS
 * base, local APIC; then it reports in and idles. */
__attribute__((sysv_abi, noreturn, used)) void smp_ap_entry(struct smp_cpu *c) {
    hv_cpu_init_ap(&c->tables, c->ist_top);
    __asm__ volatile("mov %0, %%cr0" :: "r"(bsp_cr0) : "memory");
    __asm__ volatile("mov %0, %%cr4" :: "r"(bsp_cr4) : "memory");
    if (bsp_cr4 & (1ull << 18)) /* OSXSAVE */
        __asm__ volatile("xsetbv" :: "c"(0), "a"((u32)bsp_xcr0), "d"((u32)(bsp_xcr0 >> 32)));
    wrmsr(0xc0000101, (u64)c); /* IA32_GS_BASE */
    smp_lapic_init();
    c->apic_id = smp_lapic_id();
    __atomic_store_n(&c->online, 1, __ATOMIC_RELEASE);
    smp_idle(c);
}

static struct smp_cpu *block(u64 blocks, u32 slot) {
    return (struct smp_cpu *)(blocks + (u64)slot * SMP_AP_BLOCK);
}

static void block_init(u64 blocks, u32 slot) {
    struct smp_cpu *c = block(blocks, slot);
    u64 b = (u64)c;
    memset(c, 0, sizeof *c);
    c->self = c;
    c->idle_top = b + SMP_AP_BLOCK;
    for (int i = 0; i < 3; i++) c->ist_top[i] = b + SMP_AP_IST_BASE + (u64)(i + 1) * SMP_AP_IST_SIZE;
}

static bool online(struct smp_cpu *c) { return __atomic_load_n(&c->online, __ATOMIC_ACQUIRE) != 0; }

/* Give c the next index. The processor is idle and reads its index only
 * when the kernel thread comes to it, so it may be renumbered until then. */
static void add(struct smp_cpu *c) {
    c->index = smp_online;
    smp_cpus[smp_online++] = c;
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

/* MADT mode: start the processor with this APIC ID in slot 0 of blocks. */
static void start_one(u64 tramp, u64 blocks, u32 apic_id) {
    struct smp_cpu *c = block(blocks, 0);
    block_init(blocks, 0);
    smp_tramp_arm(tramp, blocks, 1);
    for (int sipi = 0; sipi < 2 && !online(c); sipi++) {
        smp_lapic_ipi(apic_id, ICR_STARTUP | (u32)(tramp >> 12));
        u64 end = smp_tsc_after_us(sipi == 0 ? 200 : SMP_START_TIMEOUT_MS * 1000ull);
        while (!online(c) && (i64)(rdtsc() - end) < 0) __asm__ volatile("pause");
    }
    if (online(c)) {
        add(c);
        return;
    }
    smp_lapic_ipi(apic_id, ICR_INIT); /* park it in wait-for-SIPI */
    hv_puts("hv: smp: the processor with LAPIC ID ");
    hv_put_dec(apic_id);
    hv_puts(" did not start within " STR(SMP_START_TIMEOUT_MS) " ms; continuing without it\n");
}

/* The processor count from QEMU's fw_cfg (selector 0: signature "QEMU",
 * selector 5: the number of CPUs, 16 bits little-endian), or 0. Probed only
 * under a hypervisor (CPUID.1:ECX[31]): on a bare machine the ports may be
 * anything. QEMU and this hypervisor (for its guests, which get no ACPI
 * tables) both offer it. */
static u32 fwcfg_cpus(void) {
    u32 r[4];
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 31))) return 0;
    outw(0x510, 0);
    u32 sig = 0;
    for (int i = 0; i < 4; i++) sig |= (u32)inb(0x511) << (8 * i);
    if (sig != 0x554d4551) return 0; /* "QEMU" */
    outw(0x510, 5);
    u32 lo = inb(0x511);
    return lo | (u32)inb(0x511) << 8;
}

/* No MADT: broadcast, then wait for the processors that took a slot. */
static u32 start_all(u64 tramp, u64 blocks) {
    for (u32 s = 0; s < MAX_APS; s++) block_init(blocks, s);
    smp_tramp_arm(tramp, blocks, MAX_APS);
    smp_lapic_ipi(0, ICR_INIT | ICR_ALL_BUT_SELF);
    smp_delay_us(10000);
    smp_lapic_ipi(0, ICR_STARTUP | ICR_ALL_BUT_SELF | (u32)(tramp >> 12));
    smp_delay_us(200);
    smp_lapic_ipi(0, ICR_STARTUP | ICR_ALL_BUT_SELF | (u32)(tramp >> 12));
    smp_delay_us(SMP_BROADCAST_WAIT_MS * 1000ull);
    u32 taken = smp_tramp_taken(tramp), slots = taken < MAX_APS ? taken : MAX_APS;
    u64 end = smp_tsc_after_us(SMP_START_TIMEOUT_MS * 1000ull);
    for (u32 s = 0; s < slots; s++)
        while (!online(block(blocks, s)) && (i64)(rdtsc() - end) < 0) __asm__ volatile("pause");
    /* Indices by ascending APIC ID: the same on every boot. */
    for (u32 n = 0; n < slots; n++) {
        struct smp_cpu *next = 0;
        for (u32 s = 0; s < slots; s++) {
            struct smp_cpu *c = block(blocks, s);
            if (online(c) && !c->index && (!next || c->apic_id < next->apic_id)) next = c;
        }
        if (next) add(next);
    }
    if (taken > MAX_APS) {
        hv_puts("hv: smp: ");
        hv_put_dec(taken - MAX_APS);
        hv_puts(" more processors answered and were parked (at most " STR(SMP_MAX_CPUS) " CPUs)\n");
    }
    if (smp_online - 1 < slots) {
        hv_puts("hv: smp: ");
        hv_put_dec(slots - (smp_online - 1));
        hv_puts(" processors took a slot but did not reach their idle loop within " STR(SMP_START_TIMEOUT_MS) " ms\n");
    }
    return slots;
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

    /* The application processors from the MADT, in its order, up to the
     * cap. Few console lines: on Bochs each character costs thousands of
     * emulated instructions of UART time, before every kernel start. */
    u32 ap[MAX_APS], aps = 0, skipped = madt.more;
    if (have_madt) {
        if (!bi->cpu_count) bi->cpu_count = madt.cpus + madt.more;
        for (u32 i = 0; i < madt.cpus; i++) {
            u32 id = madt.apic_id[i];
            if (id == bsp.apic_id) continue;
            if (aps == MAX_APS || (!smp_x2apic && id >= 0xff)) {
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
        if (!aps) { /* a uniprocessor: nothing to say but the count */
            report();
            return;
        }
    } else {
        aps = MAX_APS;
    }

    u64 tramp = find_free(bi, SMP_TRAMP_BYTES, 0x1000, LOW_LIMIT, true);
    u64 blocks = find_free(bi, (u64)aps * SMP_AP_BLOCK, 1ull << 20, hv_paging_top(), false);
    struct hv_mmap_entry *blocks_entry = 0;
    if (!tramp || !blocks || !reserve(bi, tramp, SMP_TRAMP_BYTES) ||
        !(blocks_entry = reserve(bi, blocks, (u64)aps * SMP_AP_BLOCK))) {
        alone(!tramp ? "no free memory below 1 MiB for the start-up code"
                     : !blocks ? "no free memory for the processors' stacks" : "the boot map is full");
        return;
    }
    u32 fw_cpus = have_madt ? 0 : fwcfg_cpus();
    const char *tsc_how = smp_delay_init();
    smp_tramp_install(tramp);
    if (have_madt) {
        hv_puts("hv: smp: ACPI MADT (RSDP ");
        hv_put_hex(madt.rsdp);
        hv_puts(") lists ");
        hv_put_dec(madt.cpus + madt.more);
        hv_puts(" processors");
    } else if (fw_cpus == 1) {
        hv_puts("hv: smp: no ACPI MADT; fw_cfg: 1 processor, no start-up");
    } else {
        hv_puts(madt.rsdp ? "hv: smp: no valid ACPI MADT (RSDP " : "hv: smp: no ACPI RSDP");
        if (madt.rsdp) {
            hv_put_hex(madt.rsdp);
            hv_puts(")");
        }
        hv_puts(": broadcast INIT-SIPI-SIPI");
    }
    hv_puts("; TSC ");
    hv_put_dec(smp_tsc_khz());
    hv_puts(" kHz (");
    hv_puts(tsc_how);
    hv_puts("); start-up code at ");
    hv_put_hex(tramp);
    hv_puts(", per-CPU blocks at ");
    hv_put_hex(blocks);
    hv_puts("\n");

    u32 used; /* blocks in use from the start of the area */
    if (have_madt) {
        for (u32 i = 0; i < aps; i++) smp_lapic_ipi(ap[i], ICR_INIT);
        smp_delay_us(10000);
        /* Each started processor keeps its block: the next one starts in
         * the block after it (a processor that failed is parked by INIT
         * and its block reused). */
        for (u32 i = 0; i < aps; i++) start_one(tramp, blocks + (u64)(smp_online - 1) * SMP_AP_BLOCK, ap[i]);
        used = smp_online - 1;
    } else if (fw_cpus == 1) {
        used = 0;
    } else {
        used = start_all(tramp, blocks); /* a late processor still owns its slot */
    }
    /* Give back what nobody uses: the two entries are the map's last. */
    if (used) blocks_entry->length = (u64)used * SMP_AP_BLOCK;
    else bi->mmap_count -= 2;
    report();
}
