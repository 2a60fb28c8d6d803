/* The hypervisor's own page tables: an identity map of physical memory, so
 * that a physical address is usable as a pointer in C (the mem.* imports rely
 * on it). 1 GiB pages where the CPU has them (CPUID.80000001H:EDX[26]),
 * 2 MiB pages otherwise. Memory types come from the MTRRs (PAT entry 0, WB,
 * combined with MTRR UC for MMIO gives UC: SDM Vol. 3A 11.5.2.2). */
#include "hv.h"

#define PTE_P   0x1ull
#define PTE_RW  0x2ull
#define PTE_PS  0x80ull
#define GIB     (1ull << 30)
#define MAX_2M_GIB 64 /* without 1 GiB pages we map at most 64 GiB */

static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pd[MAX_2M_GIB][512] __attribute__((aligned(4096)));

static u64 mapped_top;

/* The linear memory window (hv.h HV_LINEAR_VA): the last GiB of the address
 * space, pml4[511] -> pdpt[511] -> 2 MiB pages of the region, nothing else
 * (an access past the 16 MiB faults, though the bounds checks come first). */
static u64 pdpt_top[512] __attribute__((aligned(4096)));
static u64 pd_top[512] __attribute__((aligned(4096)));

void hv_paging_map_linear(u64 phys) {
    const u64 two_mib = 2ull << 20;
    for (u64 i = 0; i < HV_LINEAR_MAX / two_mib; i++) pd_top[i] = (phys + i * two_mib) | PTE_P | PTE_RW | PTE_PS;
    pdpt_top[(HV_LINEAR_VA >> 30) & 511] = (u64)pd_top | PTE_P | PTE_RW;
    pml4[(HV_LINEAR_VA >> 39) & 511] = (u64)pdpt_top | PTE_P | PTE_RW;
    /* (Entries that were not present: nothing stale to flush; reloading CR3
     * anyway costs nothing at boot.) */
    __asm__ volatile("mov %%cr3, %%rax\n\tmov %%rax, %%cr3" ::: "rax", "memory");
}

u64 hv_paging_top(void) { return mapped_top; }

void hv_paging_init(u64 top) {
    u32 r[4];
    cpuid(0x80000000, 0, r);
    bool gib_pages = false;
    if (r[0] >= 0x80000001) {
        cpuid(0x80000001, 0, r);
        gib_pages = (r[3] >> 26) & 1;
    }
    u64 gibs = (top + GIB - 1) / GIB;
    if (gibs < 4) gibs = 4; /* always cover the 32-bit MMIO hole (LAPIC, IOAPIC) */
    u64 cap = gib_pages ? 512 : MAX_2M_GIB;
    if (gibs > cap) {
        hv_puts("hv: paging: physical memory above ");
        hv_put_dec(cap);
        hv_puts(" GiB is not mapped\n");
        gibs = cap;
    }
    for (u64 g = 0; g < gibs; g++) {
        if (gib_pages) {
            pdpt[g] = (g * GIB) | PTE_P | PTE_RW | PTE_PS;
        } else {
            for (u64 i = 0; i < 512; i++)
                pd[g][i] = (g * GIB + i * (2ull << 20)) | PTE_P | PTE_RW | PTE_PS;
            pdpt[g] = (u64)&pd[g][0] | PTE_P | PTE_RW;
        }
    }
    pml4[0] = (u64)pdpt | PTE_P | PTE_RW;
    mapped_top = gibs * GIB;
    __asm__ volatile("mov %0, %%cr3" :: "r"((u64)pml4) : "memory");
}
