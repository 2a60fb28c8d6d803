/* From the front-end's hand-over to kmain: own stack, own descriptor tables
 * and page tables, the protected ranges, then the wasm runtime and the kernel. */
#include "hv.h"
#include "kernel.h"
#include "instantiate.h"
#include "stack.h"

#define BOOT_STACK_SIZE (256u << 10)
static u8 boot_stack[BOOT_STACK_SIZE] __attribute__((aligned(16)));
u8 *hv_linear_memory;

Z_kernel_instance_t hv_kernel;
wasm_rt_memory_t *hv_kernel_memory;

/* Image bounds: the ELF linker script defines these symbols; lld-link defines
 * __ImageBase and the PE optional header holds SizeOfImage. */
#ifdef HV_UEFI
extern const u8 __ImageBase[];
void hv_image_range(u64 *base, u64 *end) {
    const u8 *p = __ImageBase;
    u32 pe = *(const u32 *)(p + 0x3c);           /* e_lfanew */
    u32 size = *(const u32 *)(p + pe + 24 + 56); /* OptionalHeader.SizeOfImage */
    *base = (u64)p;
    *end = (u64)p + size;
}
#else
extern const u8 __image_start[], __image_end[];
void hv_image_range(u64 *base, u64 *end) {
    *base = (u64)__image_start;
    *end = (u64)__image_end;
}
#endif

/* Does [b, e) overlap any map entry that is not available RAM? */
static bool overlaps_unavailable(const struct hv_bootinfo *bi, u64 b, u64 e) {
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    for (u32 i = 0; i < bi->mmap_count; i++)
        if (m[i].type != HV_MEM_AVAILABLE && b < m[i].base + m[i].length && e > m[i].base) return true;
    return false;
}

/* Place the linear memory in available RAM above 16 MiB (2 MiB aligned, away
 * from firmware and DMA-able low memory), and record it in the map as
 * hypervisor memory so that the page allocator never hands it out and the
 * mem.* imports refuse it. */
static void place_linear_memory(struct hv_bootinfo *bi) {
    struct hv_mmap_entry *m = (struct hv_mmap_entry *)bi->mmap;
    const u64 align = 2ull << 20, floor = 16ull << 20;
    for (u32 i = 0; i < bi->mmap_count && !hv_linear_memory; i++) {
        if (m[i].type != HV_MEM_AVAILABLE) continue;
        u64 end = m[i].base + m[i].length;
        u64 b = (m[i].base < floor ? floor : m[i].base + align - 1) & ~(align - 1);
        for (; b + HV_LINEAR_MAX <= end; b += align) {
            if (!overlaps_unavailable(bi, b, b + HV_LINEAR_MAX)) {
                hv_linear_memory = (u8 *)b;
                break;
            }
        }
    }
    if (!hv_linear_memory || bi->mmap_count >= bi->mmap_capacity) {
        hv_puts(hv_linear_memory ? "hv: boot map has no room for the linear memory entry\n"
                                 : "hv: no free 16 MiB of RAM above 16 MiB for the kernel's linear memory\n");
        hv_exit(HV_STATUS_BOOT);
    }
    m[bi->mmap_count].base = (u64)hv_linear_memory;
    m[bi->mmap_count].length = HV_LINEAR_MAX;
    m[bi->mmap_count].type = HV_MEM_HYPERVISOR;
    m[bi->mmap_count].reserved = 0;
    bi->mmap_count++;
    bi->linear_base = (u64)hv_linear_memory;
    bi->linear_size = HV_LINEAR_MAX;
}

__attribute__((sysv_abi, noreturn, used)) static void hv_start_on_stack(struct hv_bootinfo *bi) {
    hv_cpu_init();

    /* Map everything the boot map mentions (RAM and MMIO alike). */
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    u64 top = 0;
    for (u32 i = 0; i < bi->mmap_count; i++)
        if (m[i].base + m[i].length > top) top = m[i].base + m[i].length;
    hv_paging_init(top);
    place_linear_memory(bi);
    /* From here on the kernel reaches its memory through the fixed window;
     * the boot map and the protected ranges keep the physical address. */
    hv_paging_map_linear((u64)hv_linear_memory);
    hv_linear_memory = (u8 *)HV_LINEAR_VA;
    hv_smp_init(bi); /* reserves its pages in the map: before the protected ranges */
    hv_protect_from_bootinfo(bi);

    hv_stack_limit = (u64)&boot_stack[0] + HV_STACK_MARGIN;
    wasm_rt_init();
    Z_kernel_init_module();
    HV_INSTANTIATE(&hv_kernel);
    hv_kernel_memory = Z_kernelZ_memory(&hv_kernel);
    Z_kernelZ_kmain(&hv_kernel, (u64)bi);
    hv_puts("hv: kmain returned without ending the run\n");
    hv_exit(HV_STATUS_FAIL);
}

_Noreturn void hv_start(struct hv_bootinfo *bi) {
    u64 top = (u64)&boot_stack[BOOT_STACK_SIZE];
    __asm__ volatile(
        "movq %0, %%rsp\n\t"
        "xorl %%ebp, %%ebp\n\t"
        "call hv_start_on_stack"
        :: "r"(top), "D"(bi) : "memory");
    __builtin_unreachable();
}
