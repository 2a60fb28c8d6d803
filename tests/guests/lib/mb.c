/* Multiboot 1 and 2 information, copied into `boot` at start-up (before any
 * test writes to low memory, where a loader may have put it). Parsing is
 * bounded: a broken structure yields fewer entries, never a wild loop.
 * `lowest`/`highest` span the structure and everything it points to, so a
 * guest can check it does not overlap its own image. */
#include "guest.h"

struct bootinfo boot;

static void span(u32 start, u32 len) {
    u32 lo = (u32)(uintptr_t)__image_start, hi = (u32)(uintptr_t)__image_end;
    if (start < hi && start + len > lo) boot.overlaps_image = true;
    if (start < boot.lowest) boot.lowest = start;
    if (start + len > boot.highest) boot.highest = start + len;
}

static void copy_str(char *dst, int size, u32 addr) {
    const char *s = (const char *)(uintptr_t)addr;
    int i = 0;
    for (; i < size - 1 && s[i]; i++) dst[i] = s[i];
    dst[i] = 0;
    span(addr, (u32)i + 1);
}

static void add_mmap(u64 base, u64 len, u32 type) {
    if (boot.nmmap < MAX_MMAP) {
        boot.mmap[boot.nmmap].base = base;
        boot.mmap[boot.nmmap].len = len;
        boot.mmap[boot.nmmap].type = type;
        boot.nmmap++;
    }
}

static void add_module(u32 start, u32 end, u32 str) {
    if (boot.nmods < MAX_MODS) {
        struct module *m = &boot.mods[boot.nmods++];
        m->start = start;
        m->end = end;
        m->cmdline[0] = 0;
        if (str) copy_str(m->cmdline, sizeof m->cmdline, str);
    }
}

static void parse_mb1(u32 addr) {
    const u32 *mbi = (const u32 *)(uintptr_t)addr;
    span(addr, 88);
    boot.flags = mbi[0];
    if (boot.flags & (1u << 0)) {
        boot.has_mem = true;
        boot.mem_lower = mbi[1];
        boot.mem_upper = mbi[2];
    }
    if (boot.flags & (1u << 2)) {
        boot.has_cmdline = true;
        copy_str(boot.cmdline, sizeof boot.cmdline, mbi[4]);
    }
    if (boot.flags & (1u << 3)) {
        u32 count = mbi[5];
        const u32 *m = (const u32 *)(uintptr_t)mbi[6];
        span(mbi[6], count * 16);
        for (u32 i = 0; i < count && i < MAX_MODS; i++) add_module(m[i * 4], m[i * 4 + 1], m[i * 4 + 2]);
    }
    if (boot.flags & (1u << 6)) {
        boot.has_mmap = true;
        u32 len = mbi[11], p = mbi[12], end = p + len;
        span(p, len);
        boot.mmap_entry_size = len ? *(const u32 *)(uintptr_t)p : 0;
        while (p + 4 <= end && boot.nmmap < MAX_MMAP) {
            u32 size = *(const u32 *)(uintptr_t)p;
            const u8 *e = (const u8 *)(uintptr_t)(p + 4);
            if (size < 20) break;
            add_mmap(*(const u64 *)e, *(const u64 *)(e + 8), *(const u32 *)(e + 16));
            p += size + 4;
        }
    }
}

static void parse_mb2(u32 addr) {
    u32 total = *(const u32 *)(uintptr_t)addr;
    boot.total = total;
    span(addr, total);
    u32 p = addr + 8, end = addr + (total < 8 ? 8 : total);
    while (p + 8 <= end && boot.ntags < MAX_TAGS) {
        u32 type = *(const u32 *)(uintptr_t)p, size = *(const u32 *)(uintptr_t)(p + 4);
        boot.tags[boot.ntags++] = type;
        if (type == 0 || size < 8) break;
        const u8 *t = (const u8 *)(uintptr_t)p;
        switch (type) {
        case 1:
            boot.has_cmdline = true;
            boot.flags |= 1u << 2;
            copy_str(boot.cmdline, sizeof boot.cmdline, p + 8);
            break;
        case 3:
            boot.flags |= 1u << 3;
            add_module(*(const u32 *)(t + 8), *(const u32 *)(t + 12), p + 16);
            break;
        case 4:
            boot.has_mem = true;
            boot.flags |= 1u << 0;
            boot.mem_lower = *(const u32 *)(t + 8);
            boot.mem_upper = *(const u32 *)(t + 12);
            break;
        case 6: {
            boot.has_mmap = true;
            boot.flags |= 1u << 6;
            u32 esz = *(const u32 *)(t + 8);
            boot.mmap_entry_size = esz;
            boot.mmap_entry_version = *(const u32 *)(t + 12);
            if (esz < 20) break;
            for (u32 q = p + 16; q + esz <= p + size; q += esz) {
                const u8 *e = (const u8 *)(uintptr_t)q;
                add_mmap(*(const u64 *)e, *(const u64 *)(e + 8), *(const u32 *)(e + 16));
            }
            break;
        }
        }
        p += (size + 7) & ~7u;
    }
}

void mb_parse(u32 magic, u32 addr) {
    memset(&boot, 0, sizeof boot);
    boot.magic = magic;
    boot.addr = addr;
    boot.lowest = 0xFFFFFFFFu;
    if (magic == MB1_MAGIC) {
        boot.kind = 1;
        parse_mb1(addr);
    } else if (magic == MB2_MAGIC) {
        boot.kind = 2;
        parse_mb2(addr);
    }
}

static const char *mmap_type(u32 t) {
    switch (t) {
    case 1: return "available";
    case 2: return "reserved";
    case 3: return "ACPI";
    case 4: return "NVS";
    case 5: return "bad";
    }
    return "?";
}

void mb_print(void) {
    printf("%s: multiboot%d info at 0x%x (flags 0x%x), spans [0x%x, 0x%x)\n", guest_name, boot.kind, boot.addr,
           boot.flags, boot.lowest, boot.highest);
    if (boot.has_cmdline) printf("%s: cmdline \"%s\"\n", guest_name, boot.cmdline);
    if (boot.has_mem) printf("%s: mem_lower %u KiB, mem_upper %u KiB\n", guest_name, boot.mem_lower, boot.mem_upper);
    for (int i = 0; i < boot.nmmap; i++) {
        printf("%s: mmap [0x%llx, 0x%llx) %s (%u)\n", guest_name, boot.mmap[i].base,
               boot.mmap[i].base + boot.mmap[i].len, mmap_type(boot.mmap[i].type), boot.mmap[i].type);
    }
    for (int i = 0; i < boot.nmods; i++) {
        printf("%s: module %d [0x%x, 0x%x) \"%s\"\n", guest_name, i, boot.mods[i].start, boot.mods[i].end,
               boot.mods[i].cmdline);
    }
    if (boot.kind == 2) {
        printf("%s: tags", guest_name);
        for (int i = 0; i < boot.ntags; i++) printf(" %u", boot.tags[i]);
        putc_('\n');
    }
}
