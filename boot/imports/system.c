/* Imports of the con, cpu, io and sys modules (kernel/hw/ *.ts), and
 * AssemblyScript's env.abort. Linear-memory pointers from the kernel are
 * bounds-checked before use. */
#include "hv.h"
#include "kernel.h"

/* Import modules the kernel does not use yet are absent from kernel.h. */
struct Z_con_instance_t;
struct Z_cpu_instance_t;
struct Z_io_instance_t;
struct Z_sys_instance_t;
struct Z_env_instance_t;


/* hv_linear's (hv.h) out-of-bounds pointer: the trap a wasm access gets. */
_Noreturn __attribute__((noinline, cold)) void hv_linear_refused(u32 ptr, u32 len) {
    wasm_rt_trap(WASM_RT_TRAP_OOB);
}

void Z_conZ_write(struct Z_con_instance_t *i, u32 ptr, u32 len) {
    const u8 *p = hv_linear(ptr, len);
    for (u32 k = 0; k < len; k++) hv_putc((char)p[k]);
}

void Z_cpuZ_cpuid(struct Z_cpu_instance_t *i, u32 leaf, u32 sub, u32 out) {
    u32 *o = (u32 *)hv_linear(out, 16);
    cpuid(leaf, sub, o);
}

u64 Z_cpuZ_rdmsr(struct Z_cpu_instance_t *i, u32 msr) { return rdmsr(msr); }
void Z_cpuZ_wrmsr(struct Z_cpu_instance_t *i, u32 msr, u64 v) { wrmsr(msr, v); }

u64 Z_cpuZ_readcr(struct Z_cpu_instance_t *i, u32 n) {
    u64 v = 0;
    switch (n) {
    case 0: __asm__ volatile("mov %%cr0, %0" : "=r"(v)); break;
    case 2: __asm__ volatile("mov %%cr2, %0" : "=r"(v)); break;
    case 3: __asm__ volatile("mov %%cr3, %0" : "=r"(v)); break;
    case 4: __asm__ volatile("mov %%cr4, %0" : "=r"(v)); break;
    case 8: __asm__ volatile("mov %%cr8, %0" : "=r"(v)); break;
    default: wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
    return v;
}

void Z_cpuZ_writecr(struct Z_cpu_instance_t *i, u32 n, u64 v) {
    switch (n) {
    case 0: __asm__ volatile("mov %0, %%cr0" :: "r"(v) : "memory"); break;
    case 2: __asm__ volatile("mov %0, %%cr2" :: "r"(v) : "memory"); break;
    case 3: __asm__ volatile("mov %0, %%cr3" :: "r"(v) : "memory"); break;
    case 4: __asm__ volatile("mov %0, %%cr4" :: "r"(v) : "memory"); break;
    case 8: __asm__ volatile("mov %0, %%cr8" :: "r"(v) : "memory"); break;
    default: wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
}

u64 Z_cpuZ_readdr(struct Z_cpu_instance_t *i, u32 n) {
    u64 v = 0;
    switch (n) {
    case 0: __asm__ volatile("mov %%dr0, %0" : "=r"(v)); break;
    case 1: __asm__ volatile("mov %%dr1, %0" : "=r"(v)); break;
    case 2: __asm__ volatile("mov %%dr2, %0" : "=r"(v)); break;
    case 3: __asm__ volatile("mov %%dr3, %0" : "=r"(v)); break;
    case 6: __asm__ volatile("mov %%dr6, %0" : "=r"(v)); break;
    case 7: __asm__ volatile("mov %%dr7, %0" : "=r"(v)); break;
    default: wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
    return v;
}

/* MOV to DR6/DR7 with a bit of 63:32 set is #GP (SDM Vol. 2B MOV DR): the
 * kernel checks the value first, so such a value is a kernel bug. */
void Z_cpuZ_writedr(struct Z_cpu_instance_t *i, u32 n, u64 v) {
    if ((n == 6 || n == 7) && (v >> 32)) wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    switch (n) {
    case 0: __asm__ volatile("mov %0, %%dr0" :: "r"(v)); break;
    case 1: __asm__ volatile("mov %0, %%dr1" :: "r"(v)); break;
    case 2: __asm__ volatile("mov %0, %%dr2" :: "r"(v)); break;
    case 3: __asm__ volatile("mov %0, %%dr3" :: "r"(v)); break;
    case 6: __asm__ volatile("mov %0, %%dr6" :: "r"(v)); break;
    case 7: __asm__ volatile("mov %0, %%dr7" :: "r"(v)); break;
    default: wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
}

void Z_cpuZ_xsetbv(struct Z_cpu_instance_t *i, u32 index, u64 v) {
    __asm__ volatile("xsetbv" :: "c"(index), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

/* XSAVE/XRSTOR need a 64-byte aligned area (SDM Vol. 1 13.7, 13.8: #GP
 * otherwise); EDX:EAX = the instruction mask. */
static u8 *xsave_area(u32 area, u32 size) {
    u8 *p = hv_linear(area, size);
    if ((u64)p & 63) wasm_rt_trap(WASM_RT_TRAP_OOB);
    return p;
}
void Z_cpuZ_xsave(struct Z_cpu_instance_t *i, u32 area, u32 size, u64 mask) {
    u8 *p = xsave_area(area, size);
    __asm__ volatile("xsave64 (%0)" :: "r"(p), "a"((u32)mask), "d"((u32)(mask >> 32)) : "memory");
}
void Z_cpuZ_xrstor(struct Z_cpu_instance_t *i, u32 area, u32 size, u64 mask) {
    u8 *p = xsave_area(area, size);
    __asm__ volatile("xrstor64 (%0)" :: "r"(p), "a"((u32)mask), "d"((u32)(mask >> 32)) : "memory");
}

void Z_cpuZ_wbinvd(struct Z_cpu_instance_t *i) { __asm__ volatile("wbinvd" ::: "memory"); }

u64 Z_cpuZ_rdtsc(struct Z_cpu_instance_t *i) { return rdtsc(); }

u32 Z_ioZ_inp(struct Z_io_instance_t *i, u32 port, u32 size) {
    switch (size) {
    case 1: return inb((u16)port);
    case 2: return inw((u16)port);
    case 4: return inl((u16)port);
    }
    wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
}

void Z_ioZ_outp(struct Z_io_instance_t *i, u32 port, u32 size, u32 v) {
    switch (size) {
    case 1: outb((u16)port, (u8)v); return;
    case 2: outw((u16)port, (u16)v); return;
    case 4: outl((u16)port, v); return;
    }
    wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
}

void Z_sysZ_exit(struct Z_sys_instance_t *i, u32 status) { hv_exit(status); }
/* Interrupts stay masked until the hypervisor has vectors for them (the
 * legacy PIC would otherwise deliver IRQ0 on the #DF vector): HLT then waits
 * for an NMI or INIT only. */
void Z_sysZ_halt(struct Z_sys_instance_t *i) { __asm__ volatile("hlt"); }

/* AssemblyScript's abort(message, file, line, column): strings are UTF-16
 * with their byte length in the word before them. */
static void put_as_string(u32 ptr) {
    if (ptr < 4) { hv_puts("?"); return; }
    u32 bytes = *(const u32 *)hv_linear(ptr - 4, 4);
    const u16 *s = (const u16 *)hv_linear(ptr, bytes);
    for (u32 k = 0; k < bytes / 2; k++) hv_putc(s[k] < 0x80 ? (char)s[k] : '?');
}

void Z_envZ_abort(struct Z_env_instance_t *i, u32 msg, u32 file, u32 line, u32 col) {
    hv_puts("hv: trap: abort: ");
    put_as_string(msg);
    hv_puts(" at ");
    put_as_string(file);
    hv_puts(":");
    hv_put_dec(line);
    hv_puts(":");
    hv_put_dec(col);
    hv_puts("\n");
    hv_exit(HV_STATUS_TRAP);
}
