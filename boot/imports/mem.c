/* Imports of the mem module: physical memory through the identity map.
 * Every access is checked: it must lie inside the mapped physical range and
 * must not touch a protected hypervisor range (boot/common/protect.c). A
 * violation is a kernel bug; it is reported and the machine stops. */
#include "hv.h"
#include "kernel.h"

struct Z_mem_instance_t;


/* The report of a refused access (out of line: phys is inlined into
 * every import, and the guest-memory imports are on the nested path). */
static _Noreturn __attribute__((noinline, cold)) void phys_refused(u64 pa, u64 len, const char *op, u64 top) {
    hv_puts("hv: trap: mem.");
    hv_puts(op);
    hv_puts(" of ");
    hv_put_dec(len);
    hv_puts(" bytes at ");
    hv_put_hex(pa);
    hv_puts(len > top || pa > top - len ? " is beyond mapped physical memory\n" : " touches the hypervisor's own memory\n");
    hv_exit(HV_STATUS_TRAP);
}

static inline __attribute__((always_inline)) void *phys(u64 pa, u64 len, const char *op) {
    u64 top = hv_paging_top();
    if (len > top || pa > top - len || hv_range_protected(pa, len)) phys_refused(pa, len, op, top);
    return (void *)pa;
}


u32 Z_memZ_read8(struct Z_mem_instance_t *i, u64 pa) { return *(volatile u8 *)phys(pa, 1, "read8"); }
u32 Z_memZ_read16(struct Z_mem_instance_t *i, u64 pa) { return *(volatile u16 *)phys(pa, 2, "read16"); }
u32 Z_memZ_read32(struct Z_mem_instance_t *i, u64 pa) { return *(volatile u32 *)phys(pa, 4, "read32"); }
u64 Z_memZ_read64(struct Z_mem_instance_t *i, u64 pa) { return *(volatile u64 *)phys(pa, 8, "read64"); }
void Z_memZ_write8(struct Z_mem_instance_t *i, u64 pa, u32 v) { *(volatile u8 *)phys(pa, 1, "write8") = (u8)v; }
void Z_memZ_write16(struct Z_mem_instance_t *i, u64 pa, u32 v) { *(volatile u16 *)phys(pa, 2, "write16") = (u16)v; }
void Z_memZ_write32(struct Z_mem_instance_t *i, u64 pa, u32 v) { *(volatile u32 *)phys(pa, 4, "write32") = v; }
void Z_memZ_write64(struct Z_mem_instance_t *i, u64 pa, u64 v) { *(volatile u64 *)phys(pa, 8, "write64") = v; }

void Z_memZ_zero(struct Z_mem_instance_t *i, u64 pa, u64 len) {
    if (len) memset(phys(pa, len, "zero"), 0, len);
}

void Z_memZ_copyin(struct Z_mem_instance_t *i, u32 dst, u64 pa, u32 len) {
    if (len) memcpy(hv_linear(dst, len), phys(pa, len, "copyin"), len);
}

void Z_memZ_copy(struct Z_mem_instance_t *i, u64 dst, u64 src, u64 len) {
    if (len) memcpy(phys(dst, len, "copy"), phys(src, len, "copy"), len);
}

void Z_memZ_or(struct Z_mem_instance_t *i, u64 dst, u64 a, u64 b, u64 len) {
    u64 *d = phys(dst, len, "or");
    const u64 *x = phys(a, len, "or"), *y = phys(b, len, "or");
    for (u64 k = 0; k < len / 8; k++) d[k] = x[k] | y[k];
}

u64 Z_memZ_fetchor64(struct Z_mem_instance_t *i, u64 pa, u64 bits) {
    return __atomic_fetch_or((u64 *)phys(pa, 8, "fetchor64"), bits, __ATOMIC_SEQ_CST);
}

u64 Z_memZ_swap64(struct Z_mem_instance_t *i, u64 pa, u64 v) {
    return __atomic_exchange_n((u64 *)phys(pa, 8, "swap64"), v, __ATOMIC_SEQ_CST);
}

void Z_memZ_copyout(struct Z_mem_instance_t *i, u64 pa, u32 src, u32 len) {
    if (len) memcpy(phys(pa, len, "copyout"), hv_linear(src, len), len);
}

/* mem.scatter: fields of a 4-KiB area of linear memory to a physical range
 * (kernel/hw/mem.ts for the list format). */
void Z_memZ_scatter(struct Z_mem_instance_t *i, u64 dst, u32 len, u32 src, u32 list, u32 n) {
    if (n > 1024) wasm_rt_trap(WASM_RT_TRAP_OOB);
    u8 *d = phys(dst, len, "scatter");
    const u8 *s = hv_linear(src, 4096);
    const u8 *l = hv_linear(list, n * 4);
    for (u32 k = 0; k < n; k++) {
        u32 e;
        __builtin_memcpy(&e, l + 4 * k, 4);
        u32 doff = e & 0xfff, soff = (e >> 12) & 0xfff, size = e >> 24;
        if (size == 0 || doff + size > len || soff + size > 4096) wasm_rt_trap(WASM_RT_TRAP_OOB);
        memcpy(d + doff, s + soff, size);
    }
}
