/* Descriptor tables: per processor a GDT with a 64-bit code and
 * data segment and a TSS (VM exits load TR from the host-state area, and the
 * host TR selector must not be null: SDM Vol. 3C 26.2.3), one IDT (shared
 * by all processors) whose exception handlers report and stop, and SSE
 * enabled for compiled code. The boot processor's tables are static; each
 * application processor's come from boot/smp (hv_cpu_init_ap). */
#include "hv.h"

#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define SEL_TSS  0x18

struct __attribute__((packed)) tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
};

struct __attribute__((packed)) idt_entry {
    u16 offset_low;
    u16 selector;
    u8 ist;
    u8 type_attr;
    u16 offset_mid;
    u32 offset_high;
    u32 reserved;
};

struct __attribute__((packed)) table_ptr {
    u16 limit;
    u64 base;
};

_Static_assert(sizeof(struct tss64) == sizeof(((struct hv_cpu_tables *)0)->tss), "TSS size");

static struct hv_cpu_tables bsp_tables __attribute__((aligned(16)));
static struct idt_entry idt[256] __attribute__((aligned(16)));
/* Separate stacks for #DF, NMI and #MC: they may arrive on a broken stack. */
static u8 ist_stack[3][8192] __attribute__((aligned(16)));

extern const u64 hv_isr_table[32]; /* isr.S */

void hv_idt_set_gate(u8 vec, u64 handler, u8 ist) {
    idt[vec].offset_low = (u16)handler;
    idt[vec].selector = SEL_CODE;
    idt[vec].ist = ist;
    idt[vec].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
    idt[vec].offset_mid = (u16)(handler >> 16);
    idt[vec].offset_high = (u32)(handler >> 32);
    idt[vec].reserved = 0;
}

/* Fill t (GDT and TSS, IST stacks ist_top[0..2]) and load GDTR, the
 * segment registers, TR and the shared IDT on the executing processor. */
static void load_tables(struct hv_cpu_tables *t, const u64 ist_top[3]) {
    u64 *gdt = t->gdt;
    struct tss64 *tss = (struct tss64 *)t->tss;
    memset(t, 0, sizeof *t);
    gdt[0] = 0;
    gdt[1] = 0x00af9a000000ffffull; /* code: present, DPL 0, L=1 */
    gdt[2] = 0x00cf92000000ffffull; /* data: present, writable */
    u64 base = (u64)tss;
    u64 limit = sizeof *tss - 1;
    gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
             (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[4] = base >> 32;
    tss->ist[0] = ist_top[0];
    tss->ist[1] = ist_top[1];
    tss->ist[2] = ist_top[2];
    tss->iomap_base = sizeof *tss; /* no I/O permission bitmap */

    struct table_ptr gp = { sizeof t->gdt - 1, (u64)gdt };
    __asm__ volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "movw %w2, %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "movw %%ax, %%ss\n\t"
        "xorl %%eax, %%eax\n\t"
        "movw %%ax, %%fs\n\t"
        "movw %%ax, %%gs\n\t"
        "ltr %w3"
        :: "m"(gp), "i"(SEL_CODE), "r"((u32)SEL_DATA), "r"((u32)SEL_TSS) : "rax", "memory");

    struct table_ptr ip = { sizeof idt - 1, (u64)idt };
    __asm__ volatile("lidt %0" :: "m"(ip));
}

void hv_cpu_init_ap(struct hv_cpu_tables *t, const u64 ist_top[3]) {
    load_tables(t, ist_top);
}

void hv_cpu_init(void) {
    __asm__ volatile("cli");
    for (int v = 0; v < 32; v++) {
        u8 ist = v == 8 ? 1 : v == 2 ? 2 : v == 18 ? 3 : 0;
        hv_idt_set_gate((u8)v, hv_isr_table[v], ist);
    }
    const u64 ist_top[3] = {
        (u64)&ist_stack[0][sizeof ist_stack[0]],
        (u64)&ist_stack[1][sizeof ist_stack[1]],
        (u64)&ist_stack[2][sizeof ist_stack[2]],
    };
    load_tables(&bsp_tables, ist_top);

    /* SSE for compiled code: CR0.EM=0, CR0.MP=1, CR4.OSFXSR and OSXMMEXCPT. */
    u64 cr0, cr4;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    cr0 = (cr0 & ~(1ull << 2)) | (1ull << 1);
    __asm__ volatile("mov %0, %%cr0" :: "r"(cr0));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    cr4 |= (1ull << 9) | (1ull << 10);
    /* CR4.OSXSAVE where the processor has XSAVE (CPUID.1:ECX[26]): the
     * hypervisor executes XSETBV for its guests (SDM Vol. 2C XSETBV #UD). */
    u32 r[4];
    cpuid(1, 0, r);
    if (r[2] & (1u << 26)) cr4 |= 1ull << 18;
    __asm__ volatile("mov %0, %%cr4" :: "r"(cr4));
}

/* The frame isr.S builds: general registers pushed in reverse hardware
 * register-number order, then vector and error code, then what the CPU pushed. */
struct exception_frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss;
};

static const char *const exception_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available",
    "#DF double fault", "coprocessor segment overrun", "#TS invalid TSS",
    "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check",
    "#MC machine check", "#XM SIMD error", "#VE virtualization exception",
    "#CP control protection", "reserved 22", "reserved 23", "reserved 24",
    "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved 31",
};

static void reg(const char *name, u64 v) {
    hv_puts(" ");
    hv_puts(name);
    hv_puts("=");
    hv_put_hex(v);
}

static bool in_exception;

__attribute__((sysv_abi)) _Noreturn void hv_exception(struct exception_frame *f) {
    if (in_exception) {
        hv_puts("hv: exception while reporting an exception\n");
        hv_exit(HV_STATUS_EXCEPTION);
    }
    in_exception = true;
    u64 cr2, cr3;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    hv_puts("hv: exception: ");
    hv_puts(f->vector < 32 ? exception_names[f->vector] : "interrupt");
    hv_puts(" (vector ");
    hv_put_dec(f->vector);
    hv_puts(") error ");
    hv_put_hex(f->error);
    hv_puts(" in the hypervisor\nhv: regs:");
    reg("rip", f->rip); reg("cs", f->cs); reg("rflags", f->rflags);
    reg("rsp", f->rsp); reg("ss", f->ss); reg("cr2", cr2); reg("cr3", cr3);
    hv_puts("\nhv: regs:");
    reg("rax", f->rax); reg("rbx", f->rbx); reg("rcx", f->rcx); reg("rdx", f->rdx);
    reg("rsi", f->rsi); reg("rdi", f->rdi); reg("rbp", f->rbp);
    hv_puts("\nhv: regs:");
    reg("r8", f->r8); reg("r9", f->r9); reg("r10", f->r10); reg("r11", f->r11);
    reg("r12", f->r12); reg("r13", f->r13); reg("r14", f->r14); reg("r15", f->r15);
    hv_puts("\n");
    hv_exit(HV_STATUS_EXCEPTION);
}
