/* The test guests' library: one header for everything a guest uses.
 *
 * Guests are 32-bit protected-mode multiboot kernels (ELF32, loaded at 1 MiB,
 * paging off) that report over COM1 in TAP style (`ok N - name`) and end
 * themselves (isa-debug-exit or the hypercall exit). See tests/guests/README.md
 * and docs/guest-interface.md, the contract they check. */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t i32;
typedef int64_t i64;

#define NORETURN __attribute__((noreturn))
#define ALIGNED(n) __attribute__((aligned(n)))
#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---- ports ---------------------------------------------------------------- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* ---- CPU ------------------------------------------------------------------ */
struct cpuid { u32 eax, ebx, ecx, edx; };
static inline struct cpuid cpuid(u32 leaf, u32 sub) {
    struct cpuid r;
    __asm__ volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(sub));
    return r;
}
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
/* LFENCE keeps RDTSC from running ahead of earlier instructions on real
 * CPUs; on Bochs (clock sync=none) RDTSC is exact either way. */
static inline u64 rdtsc_fenced(void) {
    u32 lo, hi;
    __asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((u64)hi << 32) | lo;
}
static inline u64 rdmsr(u32 msr) { u64 v; __asm__ volatile("rdmsr" : "=A"(v) : "c"(msr)); return v; }
static inline void wrmsr(u32 msr, u64 v) { __asm__ volatile("wrmsr" ::"c"(msr), "A"(v) : "memory"); }
static inline u32 read_cr0(void) { u32 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline u32 read_cr2(void) { u32 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u32 read_cr3(void) { u32 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline u32 read_cr4(void) { u32 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr0(u32 v) { __asm__ volatile("mov %0, %%cr0" ::"r"(v) : "memory"); }
static inline void write_cr3(u32 v) { __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory"); }
static inline void write_cr4(u32 v) { __asm__ volatile("mov %0, %%cr4" ::"r"(v) : "memory"); }
static inline u32 read_eflags(void) { u32 v; __asm__ volatile("pushfl\n\tpopl %0" : "=r"(v)); return v; }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* MMIO through an explicit 32-bit MOV: a plain volatile access may compile to
 * TEST/CMP/OR with a memory operand, and a hypervisor emulating the access
 * (the local APIC page) decodes MOV for certain. */
static inline u32 mmio_read32(u32 addr) {
    u32 v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
static inline void mmio_write32(u32 addr, u32 v) { __asm__ volatile("movl %0, (%1)" ::"r"(v), "r"(addr) : "memory"); }

#define CR0_PE (1u << 0)
#define CR0_PG (1u << 31)
#define CR4_PSE (1u << 4)
#define CR4_PAE (1u << 5)
#define CR4_VMXE (1u << 13)
#define CR4_OSXSAVE (1u << 18)
#define EFLAGS_IF (1u << 9)

#define MSR_TSC 0x10u
#define MSR_APIC_BASE 0x1Bu
#define MSR_FEATURE_CONTROL 0x3Au
#define MSR_MTRRCAP 0xFEu
#define MSR_SYSENTER_CS 0x174u
#define MSR_MISC_ENABLE 0x1A0u
#define MSR_PAT 0x277u
#define MSR_MTRR_DEF_TYPE 0x2FFu
#define MSR_EFER 0xC0000080u
#define MSR_LSTAR 0xC0000082u
#define MSR_KERNEL_GS_BASE 0xC0000102u
#define MSR_TSC_AUX 0xC0000103u

/* ---- exceptions: an IDT whose handlers record and resume --------------------
 * A guarded instruction is registered with its recovery address in the
 * section __ex_table (pairs: faulting EIP, EIP to resume at). When a CPU
 * exception (vector < 32) hits a registered EIP, the handler records the
 * vector, error code and CS in `exc` and resumes at the recovery address; an
 * exception anywhere else prints a report and fails the guest. GUARD(insn)
 * expands to the instruction with such an entry, resuming right after it. */
struct exc_record {
    volatile u32 count;  /* exceptions taken at guarded instructions */
    volatile u32 vector; /* of the last one */
    volatile u32 error;
    volatile u32 eip;
    volatile u32 cs;
};
extern struct exc_record exc;
#define NO_EXC 0xFFFFFFFFu
static inline void exc_clear(void) { exc.vector = NO_EXC; exc.error = 0; exc.eip = 0; exc.cs = 0; }
#define GUARD(insn) "1: " insn "\n2:\n\t.pushsection __ex_table, \"a\"\n\t.long 1b, 2b\n\t.popsection\n\t"

/* Guarded versions: return the vector of the exception raised (NO_EXC if none). */
u32 try_rdmsr(u32 msr, u64 *val);
u32 try_wrmsr(u32 msr, u64 val);
u32 try_write_cr4(u32 v);
u32 try_xsetbv(u32 xcr, u64 v);
u32 try_ud2(void);
u32 try_load_ss(u16 sel);

struct frame {
    u32 edi, esi, ebp, esp0, ebx, edx, ecx, eax; /* pushad */
    u32 vector, error;
    u32 eip, cs, eflags;
    u32 esp, ss; /* only when coming from ring 3 */
};
typedef void (*irq_handler)(struct frame *f);
void idt_init(void);
void idt_set_handler(u8 vector, irq_handler h);
void idt_load_null(void); /* IDTR limit 0: the next exception triple-faults */
/* Runs fn at CPL 3 (flat 32-bit code 0x1B, data 0x23, its own stack). fn must
 * end with `int $0x80`, which comes back here; returns the EAX fn left. */
u32 enter_user(void (*fn)(void));
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x1B
#define SEL_UDATA 0x23

/* ---- console and report ----------------------------------------------------- */
#define COM1 0x3F8
void con_init(void);
void con_use_hypercall(bool on); /* print lines through VMCALL print (under hv) */
void putc_(char c);
void puts_(const char *s);
void printf_(const char *fmt, ...);
void vprintf_(const char *fmt, va_list ap);
int snprintf_(char *buf, int size, const char *fmt, ...);
#define printf printf_
#define snprintf snprintf_

/* TAP: `ok N - name` / `not ok N - name`; finish() prints `1..N` and
 * `RESULT: PASS|FAIL`. In a check's format, text after '|' is details,
 * printed only for a failing check or when tap_verbose is set. */
extern bool tap_verbose;
bool check(bool cond, const char *fmt, ...);
/* A check of the hypervisor's contract: strict under our hypervisor; elsewhere
 * `ok` when the machine happens to agree, else `ok N - name # SKIP not under hv`. */
bool check_hv(bool cond, const char *fmt, ...);
void skip(const char *reason, const char *fmt, ...);
/* A check that only makes sense under our hypervisor (hypercalls, its CPUID
 * leaves): cond is evaluated only there; elsewhere the line is a SKIP. */
#define HV_CHECK(cond, ...) (under_hv() ? check((cond), __VA_ARGS__) : (skip("not under hv", __VA_ARGS__), true))
void diag(const char *fmt, ...); /* `# ...` */
bool tap_failed(void);
u32 tap_count(void);
void finish_result(void); /* prints 1..N and the RESULT line */

/* Ends the guest: isa-debug-exit (port 0xF4, 32-bit write of code). */
NORETURN void exit_debug(u32 code);
/* Hypercall exit under hv (RAX=1, RBX=status), else isa-debug-exit. */
NORETURN void exit_guest(u32 status);
NORETURN void halt_forever(void);
NORETURN void fail_stop(const char *fmt, ...);

/* ---- strings ------------------------------------------------------------------ */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* Command-line words are separated by blanks or commas. */
bool has_word(const char *line, const char *word);
/* Value of the first word `key=value`, copied into buf; false if absent. */
bool word_value(const char *line, const char *key, char *buf, int size);
u32 parse_u32(const char *s, bool *ok); /* decimal, or hexadecimal after 0x */
const char *basename_(const char *path, int len, int *outlen);

/* ---- hypervisor interface ------------------------------------------------------- */
extern u32 hv_base;  /* CPUID base of our leaves (0x40000000 or 0x40000100); 0 = not under hv */
static inline bool under_hv(void) { return hv_base != 0; }
u32 hv_detect(void); /* sets hv_base */
static inline u32 vmcall(u32 fn, u32 a, u32 b) {
    u32 r;
    __asm__ volatile("vmcall" : "=a"(r) : "a"(fn), "b"(a), "c"(b) : "memory");
    return r;
}
#define HC_PRINT 0
#define HC_EXIT 1
#define HC_QUERY 2
#define HC_OK 0
#define HC_BADARG 1
#define HC_UNKNOWN 2
/* Guest-requested snapshots (docs/guest-interface.md "Snapshots", issue 10
 * item 7; unknown functions until the interface version, query 0, is 2).
 * RBX = 0 (flags) for both. TAKE returns HC_OK (RBX = 0) when the snapshot is
 * taken, and returns again with HC_SNAPSHOT_RESTORED (RBX = restores so far)
 * after each RESTORE, which does not return (HC_NO_SNAPSHOT without one). */
#define HC_SNAPSHOT_TAKE 3
#define HC_SNAPSHOT_RESTORE 4
#define HC_SNAPSHOT_RESTORED 3
#define HC_NO_SNAPSHOT 4

/* ---- QEMU fw_cfg (traditional I/O interface) ---------------------------------------- */
#define FWCFG_SEL 0x510
#define FWCFG_DATA 0x511
void fwcfg_read(u16 key, void *buf, u32 len);
u64 fwcfg_u64(u16 key);
u32 fwcfg_u32(u16 key);
u16 fwcfg_u16(u16 key);

/* ---- multiboot 1 / 2 information ----------------------------------------------------- */
#define MB1_MAGIC 0x2BADB002u
#define MB2_MAGIC 0x36D76289u
#define MAX_MMAP 32
#define MAX_MODS 8
#define MAX_TAGS 64
struct mmap_entry { u64 base, len; u32 type; };
struct module { u32 start, end; char cmdline[128]; };
struct bootinfo {
    int kind; /* 1, 2 or 0 (unknown magic) */
    u32 magic, addr;
    u32 flags;    /* MB1 flags (MB2: bits set as MB1 would for the tags seen) */
    u32 total;    /* MB2 total_size */
    bool has_mem; u32 mem_lower, mem_upper;
    bool has_cmdline; char cmdline[512];
    int nmods; struct module mods[MAX_MODS];
    bool has_mmap; int nmmap; u32 mmap_entry_size; u32 mmap_entry_version;
    struct mmap_entry mmap[MAX_MMAP];
    int ntags; u32 tags[MAX_TAGS]; /* MB2 tag types in order, end tag included */
    u32 lowest, highest; /* extent of the information structure and what it points to */
    bool overlaps_image;  /* some piece of it lies in [__image_start, __image_end) */
};
extern struct bootinfo boot;
void mb_parse(u32 magic, u32 addr);
void mb_print(void);

/* ---- local APIC ---------------------------------------------------------------------- */
#define APIC_BASE 0xFEE00000u
#define APIC_ID 0x20
#define APIC_VERSION 0x30
#define APIC_EOI 0xB0
#define APIC_SVR 0xF0
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define APIC_LVT_TIMER 0x320
#define APIC_TIMER_INIT 0x380
#define APIC_TIMER_CUR 0x390
#define APIC_TIMER_DIV 0x3E0
static inline u32 apic_read(u32 reg) { return mmio_read32(APIC_BASE + reg); }
static inline void apic_write(u32 reg, u32 v) { mmio_write32(APIC_BASE + reg, v); }

/* ---- I/O APIC (82093AA: IOREGSEL at 00H selects the register IOWIN at 10H reads and
 * writes; redirection entry n at registers 10H + 2n, low, and 11H + 2n, high) and COM1's
 * interrupt registers (16550) ----------------------------------------------------------- */
#define IOAPIC 0xFEC00000u
#define IOREGSEL 0x00
#define IOWIN 0x10
#define RTE_LEVEL (1u << 15)
#define RTE_REMOTE_IRR (1u << 14)
#define RTE_MASKED (1u << 16)
#define COM1_INPUT 4 /* COM1's I/O APIC input (ISA IRQ 4) */
#define IER (COM1 + 1)
#define IIR (COM1 + 2)
#define MCR (COM1 + 4)
#define IER_THRE 0x02
#define MCR_OUT2 0x08
#define IIR_NONE 0x01
#define IIR_THRE 0x02
static inline u32 io_read(u32 reg) {
    mmio_write32(IOAPIC + IOREGSEL, reg);
    return mmio_read32(IOAPIC + IOWIN);
}
static inline void io_write(u32 reg, u32 v) {
    mmio_write32(IOAPIC + IOREGSEL, reg);
    mmio_write32(IOAPIC + IOWIN, v);
}
static inline u32 rte_lo(u32 n) { return io_read(0x10 + 2 * n); }
/* Redirection entry n: the high word (destination in bits 31:24) first, then the low word. */
static inline void set_rte(u32 n, u32 lo, u32 dest) {
    io_write(0x11 + 2 * n, dest << 24);
    io_write(0x10 + 2 * n, lo);
}

/* ---- application processors (apboot.c) ---------------------------------------------- */
/* An IPI through the xAPIC's ICR: dest in ICR high bits 31:24, lo as ICR low. */
void apic_ipi(u32 dest, u32 lo);
/* Copy the AP trampoline to `page` (4-KiB aligned, below 1 MiB): the AP then runs fn in
 * protected mode on apboot_stack, interrupts off. Returns the start-up IPI's vector. */
u32 apboot_prepare(u32 page, void (*fn)(void));
/* The CS the AP's trampoline at `page` last started with (real mode: vector << 8). */
u16 apboot_cs(u32 page);
/* INIT, INIT de-assert and start-up IPIs to the AP with apic_id (a second SIPI if the
 * first was not taken, 9.4.4.1); true once fn incremented *started. */
bool apboot_start_ap(u32 apic_id, u32 page, void (*fn)(void), volatile u32 *started);

/* ---- entry state, as the boot stub found it ---------------------------------------- */
struct entry_state {
    u32 eax, ebx, ecx, edx, esi, edi, ebp, esp;
    u32 eflags, cr0, cr4;
    u32 cs, ds, es, fs, gs, ss;
    u64 tsc; /* RDTSC at entry */
};
extern struct entry_state entry;
extern char __image_start[], __image_end[], __bss_start[];

/* Console, hv detection, GDT/IDT, boot information: every guest calls it first. */
void guest_init(const char *name);
extern const char *guest_name;
u64 u64_div(u64 n, u64 d, u64 *rem);

#endif
