/* What boot/common offers the two boot front-ends (boot/uefi, boot/multiboot)
 * and the import implementations (boot/imports). */
#ifndef HV_H
#define HV_H
#include "types.h"
#include "bootinfo.h"

/* Exit statuses: the same numbers the kernel passes to sys.exit
 * (kernel/lib/status.ts). The final console line of every run is
 * "hv: exit status=N (name)". */
#define HV_STATUS_OK         0u /* everything asked for succeeded */
#define HV_STATUS_FAIL       1u /* a test or a guest failed */
#define HV_STATUS_NO_VTX     2u /* CPUID.1:ECX.VMX is clear */
#define HV_STATUS_VMX_LOCKED 3u /* IA32_FEATURE_CONTROL locked with VMX off */
#define HV_STATUS_VMX_SETUP  4u /* VMX bring-up failed (fixed bits, VMXON) */
#define HV_STATUS_TRAP       5u /* wasm trap or AssemblyScript abort */
#define HV_STATUS_EXCEPTION  6u /* CPU exception in the hypervisor */
#define HV_STATUS_BOOT       7u /* bad boot information, out of memory, ... */

/* console.c: COM1 (16550, 115200 8N1) and, when present, Bochs/QEMU port 0xE9 */
void hv_console_init(void);
void hv_putc(char c);
void hv_puts(const char *s);
void hv_put_hex(u64 v);
void hv_put_dec(u64 v);
void hv_console_flush(void); /* wait for COM1 to finish sending */
bool hv_console_e9(void); /* port 0xE9 debug console present (an emulator) */

/* cpu.c: our own GDT (with a TSS, which VMX host state needs), IDT whose
 * exception handlers print a register dump and stop, SSE enabled. */
void hv_cpu_init(void);
/* Each application processor (boot/smp) has its own GDT and TSS (the VMCS
 * host-state area is per CPU: GDTR, TR) with its own IST stacks, and shares
 * the boot processor's IDT. Same selectors as on the boot processor. */
struct hv_cpu_tables {
    u64 gdt[5];             /* null, code 0x08, data 0x10, TSS 0x18 (16 bytes) */
    u64 tss[13];            /* the 104-byte 64-bit TSS */
};
void hv_cpu_init_ap(struct hv_cpu_tables *t, const u64 ist_top[3]);
/* Install an interrupt gate (DPL 0) in the shared IDT; ist 0 = no IST. */
void hv_idt_set_gate(u8 vec, u64 handler, u8 ist);

/* boot/smp: find the processors (ACPI MADT; without one, a broadcast
 * INIT-SIPI-SIPI), start the application processors and park them in their
 * idle loops (HLT); called by hv_start before the kernel reads the boot map
 * (it reserves its pages there). */
void hv_smp_init(struct hv_bootinfo *bi);
/* boot/smp/threads.c: the lock around the kernel while several kernel
 * threads run (smp_lock_on: from the first cpu.spawn to cpu.solo). */
extern u32 smp_lock_on;
void smp_lock(void);
void smp_unlock(void);
void hv_vmenter_locking(bool on); /* boot/imports/vmx.c: VM entry lets go of the lock (on) or not */

/* paging.c: identity-map physical memory [0, top) and switch CR3 to it. */
void hv_paging_init(u64 top);
u64 hv_paging_top(void); /* end of the identity map */

/* protect.c: ranges the mem.* imports refuse to touch (the hypervisor's own
 * image, stacks, page tables and linear memory). */
void hv_protect_from_bootinfo(const struct hv_bootinfo *bi);
bool hv_range_protected(u64 base, u64 len);

/* start.c: bring up the wasm runtime, instantiate the kernel, call kmain.
 * The front-end has filled bi; it must list the hypervisor's own ranges as
 * HV_MEM_HYPERVISOR entries (hv_image_range() helps). */
_Noreturn void hv_start(struct hv_bootinfo *bi);
void hv_image_range(u64 *base, u64 *end);

/* The wasm linear memory: HV_LINEAR_MAX bytes of RAM chosen by hv_start
 * from the boot map (not .bss: loaders clear .bss byte by byte, which cost
 * ~35M emulated instructions per boot for 16 MiB under GRUB). */
extern u8 *hv_linear_memory;
#define HV_LINEAR_MAX (16u << 20)
/* ... used through its window at HV_LINEAR_VA (linear.h), which
 * paging.c maps: hv_linear_memory points there once hv_start set it up. */
#include "linear.h"
void hv_paging_map_linear(u64 phys);

/* A pointer to [ptr, ptr+len) of the kernel's linear memory,
 * bounds-checked like a wasm access (a bad one traps, imports/system.c).
 * The memory is HV_LINEAR_MAX bytes at HV_LINEAR_VA (wasm-rt.c refuses any
 * other), so both are constants: one compare, no load. */
_Noreturn void hv_linear_refused(u32 ptr, u32 len);
static inline __attribute__((always_inline)) u8 *hv_linear(u32 ptr, u32 len) {
    if (__builtin_expect((u64)ptr + len > HV_LINEAR_MAX, 0)) hv_linear_refused(ptr, len);
    return (u8 *)HV_LINEAR_VA + ptr;
}

/* exit.c: print the final line and stop the machine (emulator exit ports when
 * an emulator is detected, otherwise halt). */
_Noreturn void hv_exit(u32 status);
const char *hv_status_name(u32 status);

/* lib.c */
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* port I/O and small CPU helpers */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline void cpuid(u32 leaf, u32 sub, u32 r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline u64 rdmsr(u32 msr) { u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr)); return ((u64)hi << 32) | lo; }
static inline void wrmsr(u32 msr, u64 v) { __asm__ volatile("wrmsr" :: "c"(msr), "a"((u32)v), "d"((u32)(v >> 32))); }

#endif
