/* Ranges of physical memory the mem.* imports refuse: the hypervisor's own
 * image (code, data, stacks, page tables, the wasm linear memory) and boot
 * data. A kernel bug that computes a wrong physical address stops the
 * machine with a report instead of silently overwriting the hypervisor. */
#include "hv.h"

#define MAX_PROTECTED 64
static struct { u64 base, end; } ranges[MAX_PROTECTED];
static u32 count;

static void add(u64 base, u64 end) {
    if (count == MAX_PROTECTED) {
        hv_puts("hv: too many hypervisor ranges in the boot map\n");
        hv_exit(HV_STATUS_BOOT);
    }
    ranges[count].base = base;
    ranges[count].end = end;
    count++;
}

void hv_protect_from_bootinfo(const struct hv_bootinfo *bi) {
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    u64 ib, ie;
    hv_image_range(&ib, &ie);
    add(ib, ie);
    for (u32 i = 0; i < bi->mmap_count; i++)
        if (m[i].type == HV_MEM_HYPERVISOR) add(m[i].base, m[i].base + m[i].length);
}

bool hv_range_protected(u64 base, u64 len) {
    u64 end = base + len;
    for (u32 i = 0; i < count; i++)
        if (base < ranges[i].end && end > ranges[i].base) return true;
    return false;
}
