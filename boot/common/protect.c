/* Ranges of physical memory the mem.* imports refuse: the hypervisor's own
 * image (code, data, stacks, page tables, the wasm linear memory) and boot
 * data. A kernel bug that computes a wrong physical address stops the
 * machine with a report instead of silently overwriting the hypervisor. */
#include "hv.h"

#define MAX_PROTECTED 64
static struct { u64 base, end; } ranges[MAX_PROTECTED];
static u32 count;

/* The gap between protected ranges that the last access found clear, in
 * 2-MiB units: first unit in bits 31:0, end unit in bits 63:32 (0: none).
 * One u64, so that a processor never reads half of one gap and half of
 * another: an access inside it is clear without the loop over the ranges
 * (guest-memory imports run it several times per nested round trip; the
 * loop cost ~8 instructions per range on top of the call). Forgotten when
 * a range is added. Rounded inwards to 2 MiB: an access near a protected
 * range takes the loop. */
static u64 clear_gap; /* machine-wide */

static void add(u64 base, u64 end) {
    __atomic_store_n(&clear_gap, 0, __ATOMIC_RELAXED);
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
    if (end < base) return true; /* wraps: no range of memory */
    u64 g = __atomic_load_n(&clear_gap, __ATOMIC_RELAXED);
    if (base >= (g & 0xffffffffu) << 21 && end <= (g >> 32) << 21) return false;
    /* The loop, finding the gap around [base, end) on the way. */
    u64 lo = 0, hi = ~0ull;
    for (u32 i = 0; i < count; i++) {
        if (base < ranges[i].end && end > ranges[i].base) return true;
        if (ranges[i].end <= base && ranges[i].end > lo) lo = ranges[i].end;
        if (ranges[i].base >= end && ranges[i].base < hi) hi = ranges[i].base;
    }
    lo = (lo + 0x1fffff) >> 21;
    hi >>= 21;
    if (hi > 0xffffffffu) hi = 0xffffffffu;
    if (lo < hi) __atomic_store_n(&clear_gap, lo | (hi << 32), __ATOMIC_RELAXED);
    return false;
}
