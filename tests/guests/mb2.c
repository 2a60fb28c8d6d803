/* mb2.elf: a Multiboot 2 guest (ELF32, 32-bit entry). Checks the magic, the
 * information tags (command line, basic meminfo, memory map, modules, end)
 * against docs/guest-interface.md, then ends with the hypercall exit (RAX=1,
 * RBX=0 pass / 1 fail) under our hypervisor, isa-debug-exit elsewhere.
 *
 * Command-line words: tag=mb2-args-ok (must be present), mods=N (expected
 * module count, default 0; each module is tests/guests/data/module.txt). */
#include "guest.h"

extern const char module_ref[], module_ref_end[];

static bool has_tag(u32 type) {
    for (int i = 0; i < boot.ntags; i++) {
        if (boot.tags[i] == type) return true;
    }
    return false;
}

static const struct mmap_entry *find_map(u64 base) {
    for (int i = 0; i < boot.nmmap; i++) {
        if (boot.mmap[i].base == base) return &boot.mmap[i];
    }
    return 0;
}

void guest_main(void) {
    guest_init("mb2");
    printf("mb2: multiboot2 checks, %s\n", under_hv() ? "under ASHypervisor" : "not under ASHypervisor");
    char buf[16];
    bool okn = true;
    int mods = word_value(boot.cmdline, "mods", buf, sizeof buf) ? (int)parse_u32(buf, &okn) : 0;
    u64 ram_size = fwcfg_u64(0x0003);
    if (tap_verbose) mb_print();

    check(entry.eax == MB2_MAGIC, "entry EAX = MB2 magic|0x%x", entry.eax);
    check((entry.cr0 & CR0_PE) && !(entry.cr0 & CR0_PG) && !(entry.eflags & EFLAGS_IF),
          "entry CR0.PE=1 PG=0, IF=0|CR0 0x%x EFLAGS 0x%x", entry.cr0, entry.eflags);
    check(!(boot.addr & 7) && boot.total >= 16 && boot.total < 64 * KiB && (u64)boot.addr + boot.total <= ram_size,
          "mbi aligned, size sane|at 0x%x, total_size %u", boot.addr, boot.total);
    u32 img_hi = (u32)(uintptr_t)__image_end;
    check(!boot.overlaps_image, "mbi outside image|[0x%x, 0x%x)", boot.lowest, boot.highest);
    check(boot.ntags > 0 && boot.tags[boot.ntags - 1] == 0, "mbi ends with end tag|%d tags", boot.ntags);
    check(has_tag(1) && has_tag(4) && has_tag(6) && (mods == 0 || has_tag(3)),
          "tags 1 4 6 (3) present");
    bool only = true;
    for (int i = 0; i < boot.ntags; i++) {
        u32 t = boot.tags[i];
        only &= t == 0 || t == 1 || t == 2 || t == 3 || t == 4 || t == 6;
    }
    check_hv(only, "no tags but 1 2 3 4 6 0");
    check(has_word(boot.cmdline, "tag=mb2-args-ok"), "cmdline has tag=mb2-args-ok|%s", boot.cmdline);

    check(boot.mmap_entry_size == 24 && boot.mmap_entry_version == 0,
          "mmap entry size 24 version 0|%u %u", boot.mmap_entry_size, boot.mmap_entry_version);
    const struct mmap_entry *lo = find_map(0), *hi = find_map(0x100000);
    check(lo && lo->type == 1 && lo->len >= 0x9F000 && hi && hi->type == 1,
          "mmap RAM at 0 and 1M");
    bool exact = boot.nmmap == 3 && boot.mmap[0].base == 0 && boot.mmap[0].len == 0x9FC00 &&
                 boot.mmap[0].type == 1 && boot.mmap[1].base == 0x9FC00 && boot.mmap[1].len == 0x60400 &&
                 boot.mmap[1].type == 2 && boot.mmap[2].base == 0x100000 &&
                 boot.mmap[2].len == ram_size - 0x100000 && boot.mmap[2].type == 1;
    check_hv(exact, "mmap exactly as documented|RAM size 0x%llx", ram_size);
    bool lower_ok = lo && (u64)boot.mem_lower * 1024 == lo->len;
    bool upper_ok = hi && (u64)boot.mem_upper * 1024 == hi->len;
    check_hv(boot.has_mem && lower_ok && upper_ok, "mem_lower/upper match mmap|%u, %u KiB", boot.mem_lower,
             boot.mem_upper);
    u64 mb_end = 0x100000 + (u64)boot.mem_upper * 1024;
    u64 diff = mb_end > ram_size ? mb_end - ram_size : ram_size - mb_end;
    check_hv(diff <= 4096, "1M + mem_upper = fw_cfg RAM|0x%llx, 0x%llx", mb_end, ram_size);

    u32 ref_len = (u32)(module_ref_end - module_ref);
    check(boot.nmods == mods, "%d module(s) as mods= says|%d found", mods, boot.nmods);
    for (int i = 0; i < boot.nmods; i++) {
        const struct module *m = &boot.mods[i];
        int wl = 0, bl;
        while (m->cmdline[wl] && m->cmdline[wl] != ' ') wl++;
        const char *base = basename_(m->cmdline, wl, &bl);
        check(!(m->start & 0xFFF) && m->start >= img_hi && bl == 10 && !strncmp(base, "module.txt", 10),
              "module %d aligned after image, named|0x%x \"%s\"", i, m->start, m->cmdline);
        check(m->end - m->start == ref_len && !memcmp((const void *)(uintptr_t)m->start, module_ref, ref_len),
              "module %d content = module.txt|%u bytes", i, m->end - m->start);
    }
    HV_CHECK(vmcall(HC_QUERY, 2, 0) == (u32)ram_size, "VMCALL query RAM = fw_cfg RAM|0x%llx", ram_size);

    finish_result();
    exit_guest(tap_failed() ? 1 : 0);
}
