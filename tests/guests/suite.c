/* suite.elf: checks docs/guest-interface.md from inside a Multiboot 1 guest,
 * one `ok N - ...` line per check, then `RESULT: PASS|FAIL` and
 * isa-debug-exit 0 (pass) or 1 (fail).
 *
 * Command-line words it understands (blank- or comma-separated):
 *   tag=suite-args-ok   must be present (the command line arrived intact)
 *   mods=N              N modules are expected (default 0), each a copy of
 *                       tests/guests/data/module.txt whose command line's
 *                       first word ends in module.txt
 *   console=vmcall      under hv, print lines through the VMCALL print
 *                       hypercall instead of COM1 (one exit per line)
 *   verbose             print the boot information and every check's details
 * Hypervisor-specific checks (CPUID leaves, hypercalls, exact memory map)
 * run only under our hypervisor; elsewhere they print `# SKIP not under hv`. */
#include "guest.h"

extern const char module_ref[], module_ref_end[];

static u64 ram_size;   /* fw_cfg key 3 */
static u8 bss_probe[8192];
static volatile u32 probe_word;
static int expected_mods;

/* ---- entry state and boot information ------------------------------------------- */
static void test_entry(void) {
    check(entry.eax == MB1_MAGIC, "entry EAX = MB1 magic|0x%x", entry.eax);
    check((entry.cr0 & CR0_PE) && !(entry.cr0 & CR0_PG), "entry CR0.PE=1 PG=0|CR0 0x%x", entry.cr0);
    check(!(entry.eflags & EFLAGS_IF), "entry EFLAGS.IF=0|0x%x", entry.eflags);
    check_hv(entry.eflags == 0x2, "entry EFLAGS = 0x2|0x%x", entry.eflags);
    check_hv(!entry.ecx && !entry.edx && !entry.esi && !entry.edi && !entry.ebp,
             "entry ECX EDX ESI EDI EBP = 0|0x%x 0x%x 0x%x 0x%x 0x%x", entry.ecx, entry.edx, entry.esi,
             entry.edi, entry.ebp);
    check_hv(!(entry.cr4 & (CR4_PAE | CR4_VMXE | CR4_OSXSAVE)), "entry CR4 has no PAE VMXE OSXSAVE|0x%x", entry.cr4);
    bool zero = true;
    for (u32 i = 0; i < sizeof bss_probe; i++) zero &= bss_probe[i] == 0;
    check(zero, "loader zeroed BSS");

    /* A20: the word 1 MiB below a variable must be a different word. */
    volatile u32 *low = (volatile u32 *)((uintptr_t)&probe_word - MiB);
    u32 saved = *low;
    *low = 0x11111111;
    probe_word = 0x22222222;
    bool a20 = *low == 0x11111111;
    *low = saved;
    check(a20, "A20 on|0x%x, 0x%x", (u32)(uintptr_t)low, (u32)(uintptr_t)&probe_word);
}

static const struct mmap_entry *find_map(u64 base) {
    for (int i = 0; i < boot.nmmap; i++) {
        if (boot.mmap[i].base == base) return &boot.mmap[i];
    }
    return 0;
}

static void test_mmap(void) {
    check(boot.has_mmap && boot.nmmap > 0 && boot.mmap_entry_size >= 20,
          "mmap present|%d entries, size %u", boot.nmmap, boot.mmap_entry_size);
    const struct mmap_entry *lo = find_map(0), *hi = find_map(0x100000);
    bool reserved_gap = true;
    for (int i = 0; i < boot.nmmap; i++) {
        const struct mmap_entry *e = &boot.mmap[i];
        if (e->type == 1 && e->base < 0x100000 && e->base + e->len > 0xA0000) reserved_gap = false;
    }
    check(lo && lo->type == 1 && lo->len >= 0x9F000 && hi && hi->type == 1 && reserved_gap,
          "mmap RAM at 0 and 1M, none in 640K-1M");
    bool exact = boot.nmmap == 3 && boot.mmap[0].base == 0 && boot.mmap[0].len == 0x9FC00 &&
                 boot.mmap[0].type == 1 && boot.mmap[1].base == 0x9FC00 && boot.mmap[1].len == 0x60400 &&
                 boot.mmap[1].type == 2 && boot.mmap[2].base == 0x100000 &&
                 boot.mmap[2].len == ram_size - 0x100000 && boot.mmap[2].type == 1;
    check_hv(exact, "mmap exactly as documented|RAM size 0x%llx", ram_size);
    /* mem_lower/mem_upper: KiB of RAM from 0 and from 1 MiB, as the map says */
    bool lower_ok = lo && (u64)boot.mem_lower * 1024 == lo->len;
    bool upper_ok = hi && (u64)boot.mem_upper * 1024 == hi->len;
    check_hv(boot.has_mem && lower_ok && upper_ok, "mem_lower/upper match mmap|%u, %u KiB", boot.mem_lower,
             boot.mem_upper);
    u64 mb_end = 0x100000 + (u64)boot.mem_upper * 1024;
    u64 diff = mb_end > ram_size ? mb_end - ram_size : ram_size - mb_end;
    check_hv(boot.has_mem && diff <= 4096, "1M + mem_upper = fw_cfg RAM|0x%llx, 0x%llx", mb_end, ram_size);
}

static void test_modules(void) {
    u32 ref_len = (u32)(module_ref_end - module_ref);
    check(boot.nmods == expected_mods, "%d module(s) as mods= says|%d found", expected_mods, boot.nmods);
    for (int i = 0; i < boot.nmods; i++) {
        const struct module *m = &boot.mods[i];
        check(!(m->start & 0xFFF) && m->start >= (u32)(uintptr_t)__image_end && m->end >= m->start &&
                  (u64)m->end <= ram_size,
              "module %d placed after image, aligned|[0x%x, 0x%x), image end 0x%x", i, m->start, m->end,
              (u32)(uintptr_t)__image_end);
        int wl = 0, bl;
        while (m->cmdline[wl] && m->cmdline[wl] != ' ') wl++;
        const char *base = basename_(m->cmdline, wl, &bl);
        check(bl == 10 && !strncmp(base, "module.txt", 10), "module %d cmdline names module.txt|%s", i, m->cmdline);
        check(m->end - m->start == ref_len && !memcmp((const void *)(uintptr_t)m->start, module_ref, ref_len),
              "module %d content = module.txt|%u bytes, want %u", i, m->end - m->start, ref_len);
    }
}

static void test_bootinfo(void) {
    u32 need = (1u << 0) | (1u << 2) | (1u << 6) | (expected_mods ? 1u << 3 : 0);
    check((boot.flags & need) == need, "mbi flags|0x%x", boot.flags);
    u32 img_lo = (u32)(uintptr_t)__image_start, img_hi = (u32)(uintptr_t)__image_end;
    check(boot.kind == 1 && !boot.overlaps_image && boot.highest <= ram_size,
          "mbi in RAM, outside image|mbi 0x%x, data in [0x%x, 0x%x), image [0x%x, 0x%x)", boot.addr,
          boot.lowest, boot.highest, img_lo, img_hi);
    check(boot.has_cmdline && boot.cmdline[0], "cmdline not empty|%s", boot.cmdline);
    check(has_word(boot.cmdline, "tag=suite-args-ok"), "cmdline has tag=suite-args-ok|%s", boot.cmdline);
    test_mmap();
    test_modules();
}

/* ---- CPUID ------------------------------------------------------------------------- */
static void test_cpuid(void) {
    struct cpuid l1 = cpuid(1, 0), l0 = cpuid(0, 0);
    check_hv(l1.ecx & (1u << 31), "cpuid HYPERVISOR bit");
    check(!(l1.ecx & (1u << 5)), "cpuid VMX clear");
    u32 hidden = (1u << 15) | (1u << 3) | (1u << 24);
    check_hv(!(l1.ecx & hidden), "cpuid PDCM MONITOR TSC-dl clear|ECX 0x%x", l1.ecx);
    check_hv(l1.ecx & (1u << 21), "cpuid x2APIC set (the software APIC has it)|ECX 0x%x", l1.ecx);
    /* INVPCID is offered only where it runs (the VMCS enables it): type 2
     * (all contexts) is valid in any mode. */
    if (l0.eax >= 7 && (cpuid(7, 0).ebx & (1u << 10))) {
        static u8 desc[16] __attribute__((aligned(16)));
        exc_clear();
        __asm__ volatile(GUARD(".byte 0x66, 0x0f, 0x38, 0x82, 0x03") ::"a"(2u), "b"(desc) : "memory");
        check(exc.vector == NO_EXC, "cpuid INVPCID set: INVPCID type 2 runs|vector %d", (i32)exc.vector);
    }
    check_hv((l1.ebx >> 24) == 0, "cpuid APIC ID 0|EBX 0x%x", l1.ebx);
    struct cpuid la = cpuid(0xA, 0);
    check_hv(l0.eax < 0xA || (!la.eax && !la.ebx && !la.ecx && !la.edx), "cpuid leaf 0xa zero");
    HV_CHECK(true, "cpuid ASHypervisor signature|at 0x%x", hv_base);
    HV_CHECK(cpuid(hv_base, 0).eax == hv_base + 1, "cpuid hv leaf 0 EAX = base+1|base 0x%x", hv_base);
    HV_CHECK(cpuid(hv_base + 1, 0).eax == 2, "cpuid hv leaf 1 EAX = version 2");
}

/* ---- fw_cfg -------------------------------------------------------------------------- */
static void test_fwcfg(void) {
    char sig[8];
    fwcfg_read(0x0000, sig, 8);
    check(!memcmp(sig, "QEMU\0\0\0\0", 8), "fw_cfg signature QEMU, then zeros");
    u32 id = fwcfg_u32(0x0001);
    check(id & 1, "fw_cfg ID bit 0|0x%x", id);
    check(ram_size >= MiB && !(ram_size & 0xFFF), "fw_cfg RAM size|0x%llx", ram_size);
    u16 ncpu = fwcfg_u16(0x0005), maxcpu = fwcfg_u16(0x000F);
    check(ncpu >= 1 && maxcpu >= ncpu, "fw_cfg CPUs >= 1, max >= CPUs|%u, %u", ncpu, maxcpu);
    u8 dir[8];
    fwcfg_read(0x0019, dir, 8);
    bool empty = true;
    for (int i = 0; i < 8; i++) empty &= dir[i] == 0;
    check_hv(empty, "fw_cfg key 0x19 empty");
}

/* ---- ports ------------------------------------------------------------------------------ */
static void test_com1(void) {
    u8 lsr = inb(COM1 + 5);
    check(lsr == 0x60, "com1 LSR 0x60|0x%x", lsr);
    check_hv(inb(COM1 + 2) == 0x01, "com1 IIR 0x01");
    check_hv(inb(COM1 + 0) == 0x00, "com1 RBR 0");
    outb(COM1 + 7, 0xA5);
    u8 s1 = inb(COM1 + 7);
    outb(COM1 + 7, 0x5A);
    u8 s2 = inb(COM1 + 7);
    check(s1 == 0xA5 && s2 == 0x5A, "com1 scratch keeps values|0x%x 0x%x", s1, s2);
    outb(COM1 + 1, 0x05);
    u8 ier = inb(COM1 + 1);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 4, 0x01);
    u8 mcr = inb(COM1 + 4);
    outb(COM1 + 4, 0x03);
    outb(COM1 + 3, 0x1B);
    u8 lcr = inb(COM1 + 3);
    outb(COM1 + 3, 0x83); /* DLAB: 0x3F8/0x3F9 are the divisor latch, not THR/IER */
    outb(COM1 + 0, 0x0C);
    outb(COM1 + 1, 0x00);
    u8 dll = inb(COM1 + 0), dlm = inb(COM1 + 1);
    outb(COM1 + 0, 0x01);
    outb(COM1 + 3, 0x03);
    check(ier == 0x05 && mcr == 0x01 && lcr == 0x1B && dll == 0x0C && dlm == 0,
          "com1 IER MCR LCR DLL DLM keep values|0x%x 0x%x 0x%x 0x%x 0x%x", ier, mcr, lcr, dll, dlm);
}

static void test_denied_ports(void) {
    u8 b = inb(0x2F0);
    u16 w = inw(0x2F0);
    u32 l = inl(0x2F0);
    outb(0x2F0, 0x12);
    outl(0x2F0, 0x12345678);
    u32 l2 = inl(0x2F0);
    check(b == 0xFF && w == 0xFFFF && l == 0xFFFFFFFF && l2 == 0xFFFFFFFF,
          "port 0x2f0 reads all ones (8/16/32)|0x%x 0x%x 0x%x 0x%x", b, w, l, l2);
    check_hv(inb(0xE9) == 0xFF, "port 0xe9 denied");
    check_hv(inl(0xCF8) == 0xFFFFFFFF, "port 0xcf8 denied");
    check_hv(inb(0x21) == 0xFF && inb(0x40) == 0xFF, "ports 0x21 0x40 denied");
}

/* ---- exceptions and MSRs --------------------------------------------------------------------- */
static void test_exceptions(void) {
    u32 v = try_ud2();
    check(v == 6, "UD2 -> #UD, resumed|vector %d", (i32)v);
    v = try_load_ss(0);
    check(v == 13 && exc.error == 0, "MOV SS,0 -> #GP(0), resumed|vector %d error 0x%x", (i32)v, exc.error);
}

static void test_msrs(void) {
    u64 val = 0;
    u32 v = try_rdmsr(0x12345, &val);
    check_hv(v == 13 && exc.error == 0, "RDMSR 0x12345 -> #GP(0)|vector %d", (i32)v);
    v = try_wrmsr(0x12345, 0);
    check_hv(v == 13 && exc.error == 0, "WRMSR 0x12345 -> #GP(0)|vector %d", (i32)v);

    v = try_rdmsr(MSR_FEATURE_CONTROL, &val);
    check_hv(v == NO_EXC && val == 1, "FEATURE_CONTROL = 1 (locked, no VMX)|0x%llx", val);

    v = try_rdmsr(MSR_APIC_BASE, &val);
    check(v == NO_EXC && (val & (1u << 11)) && (val & ~0xFFFull) == APIC_BASE,
          "APIC_BASE enabled at 0xfee00000|0x%llx", val);

    u64 misc = 0, misc2 = 0;
    v = try_rdmsr(MSR_MISC_ENABLE, &misc);
    u32 w = try_wrmsr(MSR_MISC_ENABLE, misc);
    check(v == NO_EXC && w == NO_EXC, "MISC_ENABLE read, write back|0x%llx", misc);
    try_wrmsr(MSR_MISC_ENABLE, misc ^ 1); /* fast-strings bit */
    try_rdmsr(MSR_MISC_ENABLE, &misc2);
    try_wrmsr(MSR_MISC_ENABLE, misc);
    check_hv(misc2 == misc, "MISC_ENABLE ignores writes|0x%llx after writing 0x%llx", misc2, misc ^ 1);

    u64 tm = 0, t0 = rdtsc();
    v = try_rdmsr(MSR_TSC, &tm);
    u64 t1 = rdtsc();
    check_hv(v == NO_EXC && t0 <= tm && tm <= t1, "IA32_TSC between RDTSCs|0x%llx 0x%llx 0x%llx", t0, tm, t1);

    u64 cap = 0, def = 0;
    try_rdmsr(MSR_MTRRCAP, &cap);
    v = try_rdmsr(MSR_MTRR_DEF_TYPE, &def);
    check_hv(v == NO_EXC && (cap & 0xFF) == 0 && (def & 0xFF) == 6,
             "MTRRcap no var ranges, default WB|0x%llx 0x%llx", cap, def);

    u64 pat = 0, pat2 = 0, want = 0x0007010600070406ull;
    try_rdmsr(MSR_PAT, &pat);
    w = try_wrmsr(MSR_PAT, want);
    try_rdmsr(MSR_PAT, &pat2);
    try_wrmsr(MSR_PAT, pat);
    check(w == NO_EXC && pat2 == want, "PAT keeps value|0x%llx, was 0x%llx", pat2, pat);

    v = try_rdmsr(MSR_EFER, &val);
    check(v == NO_EXC && !(val & ((1u << 8) | (1u << 10))), "EFER LME LMA clear|0x%llx", val);

    u64 cs = 0, esp = 0, eip = 0;
    try_wrmsr(MSR_SYSENTER_CS, 0x08);
    try_wrmsr(MSR_SYSENTER_CS + 1, 0x12345000);
    w = try_wrmsr(MSR_SYSENTER_CS + 2, 0x00123456);
    try_rdmsr(MSR_SYSENTER_CS, &cs);
    try_rdmsr(MSR_SYSENTER_CS + 1, &esp);
    try_rdmsr(MSR_SYSENTER_CS + 2, &eip);
    check(w == NO_EXC && cs == 0x08 && esp == 0x12345000 && eip == 0x00123456,
          "SYSENTER_CS/ESP/EIP keep values|0x%llx 0x%llx 0x%llx", cs, esp, eip);

    struct cpuid ext = cpuid(0x80000000u, 0);
    struct cpuid e1 = ext.eax >= 0x80000001u ? cpuid(0x80000001u, 0) : (struct cpuid){ 0, 0, 0, 0 };
    if (e1.edx & (1u << 29)) {
        u64 kgs = 0, lstar = 0;
        try_wrmsr(MSR_KERNEL_GS_BASE, 0x12345678ABCull);
        w = try_wrmsr(MSR_LSTAR, 0xFFFFFFFF80001000ull);
        try_rdmsr(MSR_KERNEL_GS_BASE, &kgs);
        try_rdmsr(MSR_LSTAR, &lstar);
        try_wrmsr(MSR_KERNEL_GS_BASE, 0);
        try_wrmsr(MSR_LSTAR, 0);
        check(w == NO_EXC && kgs == 0x12345678ABCull && lstar == 0xFFFFFFFF80001000ull,
              "KERNEL_GS_BASE LSTAR keep values|0x%llx 0x%llx", kgs, lstar);
    } else {
        skip("no long mode", "KERNEL_GS_BASE LSTAR keep values");
    }
    if (e1.edx & (1u << 27)) {
        w = try_wrmsr(MSR_TSC_AUX, 0x5A);
        u32 aux = 0;
        exc_clear();
        __asm__ volatile(GUARD("rdtscp") : "+c"(aux)::"eax", "edx", "memory");
        check(w == NO_EXC && exc.vector == NO_EXC && aux == 0x5A, "TSC_AUX -> RDTSCP ECX|0x%x, vector %d", aux,
              (i32)exc.vector);
    } else {
        skip("no RDTSCP", "TSC_AUX -> RDTSCP ECX");
    }
}

/* ---- control registers and paging ---------------------------------------------------------- */
static u32 pse_pd[1024] ALIGNED(4096);
static u64 pae_pd[512] ALIGNED(4096);
static u64 pae_pdpt[4] ALIGNED(32);

/* With paging on, the word at alias + &probe_word must be probe_word itself. */
static bool alias_works(u32 alias) {
    volatile u32 *a = (volatile u32 *)(uintptr_t)(alias + (u32)(uintptr_t)&probe_word);
    probe_word = 0xC0FFEE01;
    bool r = *a == 0xC0FFEE01;
    *a = 0xC0FFEE02;
    return r && probe_word == 0xC0FFEE02;
}

static void test_cr(void) {
    u32 cr4 = read_cr4();
    check(!(cr4 & CR4_VMXE), "CR4.VMXE reads 0|CR4 0x%x", cr4);
    /* Only under hv: QEMU 7.2 TCG spins forever on this MOV to CR4. */
    u32 v = under_hv() ? try_write_cr4(cr4 | CR4_VMXE) : NO_EXC;
    HV_CHECK(v == 13 && exc.error == 0 && !(read_cr4() & CR4_VMXE),
             "CR4.VMXE=1 -> #GP(0)|vector %d", (i32)v);

    if ((u32)(uintptr_t)&probe_word + 4 > 4 * MiB) fail_stop("probe_word above 4 MiB: the paging tests need it lower");

    /* PSE: 1024 4 MiB pages identity-map 4 GiB, except linear 0x80000000,
     * which maps physical 0 (so the alias test sees real translation). */
    for (u32 i = 0; i < 1024; i++) pse_pd[i] = (i << 22) | 0x83; /* P, RW, PS */
    pse_pd[0x200] = 0x83;
    u32 cr0 = read_cr0();
    write_cr4(cr4 | CR4_PSE);
    write_cr3((u32)(uintptr_t)pse_pd);
    write_cr0(cr0 | CR0_PG);
    u32 cr0_on = read_cr0();
    bool alias = alias_works(0x80000000u);
    write_cr0(cr0);
    write_cr4(cr4);
    check((cr0_on & CR0_PG) && alias && !(read_cr0() & CR0_PG),
          "paging PSE on, alias works, off|CR0 0x%x", cr0_on);

    /* PAE: the first GiB identity-mapped with 2 MiB pages, the second GiB an alias of it. */
    for (u32 i = 0; i < 512; i++) pae_pd[i] = ((u64)i << 21) | 0x83;
    pae_pdpt[0] = (u32)(uintptr_t)pae_pd | 1; /* PDPTEs: P only (RW/US are reserved here) */
    pae_pdpt[1] = (u32)(uintptr_t)pae_pd | 1;
    pae_pdpt[2] = pae_pdpt[3] = 0;
    write_cr4(cr4 | CR4_PAE);
    write_cr3((u32)(uintptr_t)pae_pdpt);
    write_cr0(cr0 | CR0_PG);
    cr0_on = read_cr0();
    u32 cr4_on = read_cr4();
    alias = alias_works(0x40000000u);
    write_cr0(cr0);
    write_cr4(cr4);
    check((cr0_on & CR0_PG) && (cr4_on & CR4_PAE) && alias && !(read_cr0() & CR0_PG),
          "paging PAE on, alias works, off|CR4 0x%x", cr4_on);
    write_cr3(0);
}

/* ---- XSETBV ------------------------------------------------------------------------------------ */
static u64 xgetbv(u32 xcr) {
    u32 lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(xcr));
    return ((u64)hi << 32) | lo;
}

static void test_xsetbv(void) {
    const char *names[5] = {
        "CR4.OSXSAVE=1, CPUID OSXSAVE follows",
        "XSETBV XCR0=1",
        "XSETBV XCR0=2 -> #GP(0)",
        "XSETBV unsupported bit -> #GP(0)",
        "XSETBV XCR1 -> #GP(0), OSXSAVE off",
    };
    if (!(cpuid(1, 0).ecx & (1u << 26))) {
        for (int i = 0; i < 5; i++) skip("no XSAVE", "%s", names[i]);
        return;
    }
    u32 cr4 = read_cr4();
    bool os_before = cpuid(1, 0).ecx & (1u << 27);
    write_cr4(cr4 | CR4_OSXSAVE);
    bool os_after = cpuid(1, 0).ecx & (1u << 27);
    check(!os_before && os_after && (read_cr4() & CR4_OSXSAVE), "%s", names[0]);
    u64 xcr0 = xgetbv(0);
    u32 v = try_xsetbv(0, 1);
    u64 back = xgetbv(0);
    check(v == NO_EXC && back == 1, "%s|was 0x%llx, reads 0x%llx", names[1], xcr0, back);
    v = try_xsetbv(0, 2);
    check(v == 13 && exc.error == 0, "%s|vector %d", names[2], (i32)v);
    struct cpuid d = cpuid(0xD, 0);
    u64 supported = ((u64)d.edx << 32) | d.eax;
    int bit = 62;
    while (bit > 9 && (supported >> bit) & 1) bit--;
    v = try_xsetbv(0, 1 | (1ull << bit));
    check(v == 13 && exc.error == 0, "%s|bit %d of 0x%llx, vector %d", names[3], bit, supported, (i32)v);
    v = try_xsetbv(1, 1);
    try_xsetbv(0, 1);
    write_cr4(cr4);
    bool os_clear = !(cpuid(1, 0).ecx & (1u << 27));
    check(v == 13 && exc.error == 0 && os_clear, "%s|vector %d", names[4], (i32)v);
}

/* ---- other instructions ------------------------------------------------------------------------- */
static void test_misc(void) {
    __asm__ volatile("invd" ::: "memory");
    __asm__ volatile("wbinvd" ::: "memory");
    check(true, "INVD WBINVD");
    /* The counter increases with time, not necessarily between two reads
     * back to back: Bochs with several CPUs advances it once per quantum
     * (16 instructions of each CPU in turn). Read until it moves, bounded. */
    u64 a = rdtsc(), b = a;
    for (int i = 0; i < 1000 && b == a; i++) b = rdtsc();
    check(b > a, "RDTSC increases|0x%llx 0x%llx", a, b);
}

/* ---- hypercalls --------------------------------------------------------------------------------- */
static const char hello[] = "suite: hello from the VMCALL print hypercall";

static void test_hypercalls(void) {
    u32 hello_len = sizeof hello - 1;
    HV_CHECK(vmcall(HC_PRINT, (u32)(uintptr_t)hello, hello_len) == HC_OK,
             "VMCALL print -> 0");
    static char big[257];
    memset(big, 'x', sizeof big);
    HV_CHECK(vmcall(HC_PRINT, (u32)(uintptr_t)big, 257) == HC_BADARG, "VMCALL print 257 bytes -> 1");
    HV_CHECK(vmcall(HC_PRINT, (u32)ram_size + 0x1000, 16) == HC_BADARG,
             "VMCALL print beyond RAM -> 1");
    HV_CHECK(vmcall(HC_PRINT, (u32)ram_size - 8, 16) == HC_BADARG,
             "VMCALL print across RAM end -> 1");
    HV_CHECK(vmcall(HC_PRINT, 0xC0000000u, 16) == HC_BADARG, "VMCALL print 0xc0000000 -> 1");
    HV_CHECK(vmcall(0x1234, 0, 0) == HC_UNKNOWN, "VMCALL unknown function -> 2");
    HV_CHECK(vmcall(HC_QUERY, 0, 0) == 2, "VMCALL query version -> 2");
    u32 e1 = 0, e2 = 0;
    if (under_hv()) {
        e1 = vmcall(HC_QUERY, 1, 0);
        e2 = vmcall(HC_QUERY, 1, 0);
    }
    HV_CHECK(e2 > e1 && e1 > 0, "VMCALL query exits increases|%u then %u", e1, e2);
    u32 ram = under_hv() ? vmcall(HC_QUERY, 2, 0) : 0;
    HV_CHECK(ram == ram_size, "VMCALL query RAM = fw_cfg RAM|0x%x, 0x%llx", ram, ram_size);
}

/* ---- snapshots (docs/guest-interface.md "Snapshots") ------------------------------------------ */
/* Take a snapshot, scribble over memory and registers, restore; three times.
 * Nothing is printed or counted between the take and the last restore: the
 * test counter and the console's line buffer are RAM, and would go back
 * with it. What survives a restore is RAX and RBX, which the hypervisor
 * sets: RAX = 3 (restored), RBX = restores so far. */
static volatile u32 snap_word;
static void test_snapshots(void) {
    if (!under_hv()) {
        skip("not under hv", "snapshot hypercalls");
        return;
    }
    check(vmcall(HC_SNAPSHOT_RESTORE, 0, 0) == HC_NO_SNAPSHOT, "snapshot restore without a snapshot -> 4");
    check(vmcall(HC_SNAPSHOT_TAKE, 1, 0) == HC_BADARG, "snapshot with flags -> 1");
    snap_word = 0x1111;
    u64 before = rdtsc();
    u32 rax, rbx, esi = 0x5151, edi = 0x7171;
    __asm__ volatile("vmcall" : "=a"(rax), "=b"(rbx), "+S"(esi), "+D"(edi) : "a"(HC_SNAPSHOT_TAKE), "b"(0) : "memory", "ecx", "edx");
    bool first = rax == HC_OK && rbx == 0;
    if (first || (rax == HC_SNAPSHOT_RESTORED && rbx < 3)) {
        snap_word = 0x2222 + rbx;
        u32 r;
        __asm__ volatile("vmcall" : "=a"(r) : "a"(HC_SNAPSHOT_RESTORE), "b"(0), "S"(0xdead), "D"(0xbeef) : "memory", "ecx", "edx");
        check(false, "snapshot restore returned|RAX %u", r);
        return;
    }
    check(rax == HC_SNAPSHOT_RESTORED && rbx == 3, "snapshot: back at the snapshot point after 3 restores|RAX %u RBX %u", rax, rbx);
    check(snap_word == 0x1111, "snapshot: memory as at the take|0x%x", snap_word);
    check(esi == 0x5151 && edi == 0x7171, "snapshot: registers as at the take|ESI 0x%x EDI 0x%x", esi, edi);
    u64 after = rdtsc();
    check(after > before, "snapshot: the TSC went on|0x%llx then 0x%llx", before, after);
}

/* ---- ring 3 -------------------------------------------------------------------------------------- */
void user_ud2(void);
void user_vmcall(void);
__asm__(".text\n"
        ".globl user_ud2\n"
        "user_ud2:\n"
        "1:  ud2\n"
        "2:  int $0x80\n"
        ".pushsection __ex_table, \"a\"\n"
        "    .long 1b, 2b\n"
        ".popsection\n"
        ".globl user_vmcall\n"
        "user_vmcall:\n"
        "    movl $2, %eax\n"
        "    xorl %ebx, %ebx\n"
        "1:  vmcall\n"
        "2:  int $0x80\n"
        ".pushsection __ex_table, \"a\"\n"
        "    .long 1b, 2b\n"
        ".popsection\n");

static void test_user(void) {
    exc_clear();
    enter_user(user_ud2);
    check(exc.vector == 6 && (exc.cs & 3) == 3, "ring 3 UD2 -> #UD, back to ring 0|vector %d cs 0x%x", (i32)exc.vector, exc.cs);
    if (under_hv()) {
        exc_clear();
        u32 r = enter_user(user_vmcall);
        check(exc.vector == 6 && (exc.cs & 3) == 3, "ring 3 VMCALL -> #UD|vector %d, eax 0x%x", (i32)exc.vector, r);
    } else {
        skip("not under hv", "ring 3 VMCALL -> #UD");
    }
}

/* ---- local APIC ------------------------------------------------------------------------------------ */
static volatile u32 timer_hits, spurious_hits;
static void timer_isr(struct frame *f) {
    timer_hits++;
    apic_write(APIC_EOI, 0);
}
static void spurious_isr(struct frame *f) { spurious_hits++; }

static void test_apic(void) {
    idt_set_handler(0x40, timer_isr);
    idt_set_handler(0xFF, spurious_isr);
    apic_write(APIC_SVR, 0x1FF); /* software enable, spurious vector 0xff */
    apic_write(APIC_TIMER_DIV, 0xB); /* divide by 1 */
    apic_write(APIC_LVT_TIMER, 0x40); /* one-shot, unmasked, vector 0x40 */
    u32 svr = apic_read(APIC_SVR), div = apic_read(APIC_TIMER_DIV), lvt = apic_read(APIC_LVT_TIMER);
    check((svr & 0x1FF) == 0x1FF && (div & 0xB) == 0xB && (lvt & 0x300FF) == 0x40,
          "APIC SVR, divide, LVT timer read back|0x%x 0x%x 0x%x", svr, div, lvt);
    apic_write(APIC_TIMER_INIT, 20000);
    u32 init = apic_read(APIC_TIMER_INIT);
    int halts = 0;
    while (!timer_hits && halts < 16) {
        __asm__ volatile("sti; hlt; cli" ::: "memory");
        halts++;
    }
    u32 cur = apic_read(APIC_TIMER_CUR);
    check(init == 20000 && timer_hits == 1 && cur == 0,
          "HLT wakes on APIC timer, handler ran|%u interrupt(s), %d HLT(s), count %u", timer_hits, halts,
          cur);
    if (spurious_hits) diag("apic: %u spurious interrupt(s)", spurious_hits);
}

static bool icr_idle(void) {
    for (int i = 0; i < 100000; i++) {
        if (!(apic_read(APIC_ICR_LO) & (1u << 12))) return true;
    }
    return false;
}

static void test_init_sipi(void) {
    /* A start-up page whose real-mode code parks any CPU that does start: cli; hlt; jmp $-2 */
    *(volatile u32 *)0x7000 = 0xFDEBF4FAu;
    apic_write(APIC_ICR_HI, 0);
    apic_write(APIC_ICR_LO, 0x000C4500); /* INIT, level assert, all excluding self */
    bool idle1 = icr_idle();
    apic_write(APIC_ICR_LO, 0x000C4607); /* start-up, vector 0x07 (0x7000), all excluding self */
    bool idle2 = icr_idle();
    check(true, "INIT/SIPI broadcast, still running|ICR idle %d %d", idle1, idle2);
}

/* ---- main --------------------------------------------------------------------------------------------- */
void guest_main(void) {
    guest_init("suite");
    printf("suite: guest-interface checks, %s\n",
           under_hv() ? "under ASHypervisor: all run" : "not under ASHypervisor: hv-only checks skip");
    if (under_hv() && has_word(boot.cmdline, "console=vmcall")) con_use_hypercall(true);
    if (!under_hv()) {
        /* Elsewhere the BIOS leaves the PIC at vectors 8-15 with the PIT running:
         * mask it before any STI. (Under hv the PIC is not the guest's.) */
        outb(0x21, 0xFF);
        outb(0xA1, 0xFF);
    }
    char buf[16];
    bool okn = true;
    expected_mods = word_value(boot.cmdline, "mods", buf, sizeof buf) ? (int)parse_u32(buf, &okn) : 0;
    ram_size = fwcfg_u64(0x0003);
    if (tap_verbose) mb_print();

    test_entry();
    test_bootinfo();
    test_cpuid();
    test_fwcfg();
    test_com1();
    test_denied_ports();
    test_exceptions();
    test_msrs();
    test_cr();
    test_xsetbv();
    test_misc();
    test_hypercalls();
    test_snapshots();
    test_user();
    test_apic();
    test_init_sipi();

    finish_result();
    exit_debug(tap_failed() ? 1 : 0);
}
