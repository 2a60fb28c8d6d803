/* From the front-end's hand-over to kmain: own stack, own descriptor tables
 * and page tables, the protected ranges, then the wasm runtime and the kernel. */
#include "hv.h"
#include "kernel.h"
#include "instantiate.h"

#define BOOT_STACK_SIZE (256u << 10)
static u8 boot_stack[BOOT_STACK_SIZE] __attribute__((aligned(16)));
u8 hv_linear_memory[HV_LINEAR_MAX] __attribute__((aligned(4096)));

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

__attribute__((sysv_abi, noreturn, used)) static void hv_start_on_stack(struct hv_bootinfo *bi) {
    hv_cpu_init();

    /* Map everything the boot map mentions (RAM and MMIO alike). */
    const struct hv_mmap_entry *m = (const struct hv_mmap_entry *)bi->mmap;
    u64 top = 0;
    for (u32 i = 0; i < bi->mmap_count; i++)
        if (m[i].base + m[i].length > top) top = m[i].base + m[i].length;
    hv_paging_init(top);
    hv_protect_from_bootinfo(bi);
    bi->linear_base = (u64)hv_linear_memory;
    bi->linear_size = HV_LINEAR_MAX;

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
