/* Processors (boot processor only for now): the cpu.index, cpu.count,
 * cpu.migrate and cpu.hoststate imports. */
#include "hv.h"
#include "kernel.h"

struct Z_cpu_instance_t;

u32 Z_cpuZ_index(struct Z_cpu_instance_t *i) { return 0; }
u32 Z_cpuZ_count(struct Z_cpu_instance_t *i) { return 1; }
u32 Z_cpuZ_migrate(struct Z_cpu_instance_t *i, u32 target) { return target == 0; }

struct __attribute__((packed)) table_ptr { u16 limit; u64 base; };

void Z_cpuZ_hoststate(struct Z_cpu_instance_t *i, u32 out) {
    u64 *o = (u64 *)hv_linear(out, 7 * 8);
    struct table_ptr g, d;
    u64 cr3;
    u16 cs, ss, ds, tr;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    __asm__ volatile("sgdt %0" : "=m"(g));
    __asm__ volatile("sidt %0" : "=m"(d));
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    __asm__ volatile("mov %%ss, %0" : "=r"(ss));
    __asm__ volatile("mov %%ds, %0" : "=r"(ds));
    __asm__ volatile("str %0" : "=r"(tr));
    /* TR base from the TSS descriptor in the GDT (16 bytes in long mode). */
    const u8 *desc = (const u8 *)(g.base + (tr & ~7u));
    u64 trbase = desc[2] | (u64)desc[3] << 8 | (u64)desc[4] << 16 | (u64)desc[7] << 24 |
                 (u64)(*(const u32 *)(desc + 8)) << 32;
    o[0] = cr3;
    o[1] = g.base;
    o[2] = d.base;
    o[3] = trbase;
    o[4] = rdmsr(0xc0000100);
    o[5] = rdmsr(0xc0000101);
    o[6] = (u64)cs | (u64)ss << 16 | (u64)ds << 32 | (u64)tr << 48;
}
