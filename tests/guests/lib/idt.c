/* The IDT: every vector goes through start.asm's stubs to isr_dispatch.
 *
 * CPU exceptions (vectors 0-31) at a guarded instruction (an __ex_table
 * entry, see GUARD in guest.h) are recorded in `exc` and resumed at the
 * entry's recovery address: that is how the guests test that an instruction
 * raises #GP or #UD and carry on. Vectors with a registered handler (the
 * APIC timer, the spurious vector) call it. Anything else is a bug in the
 * guest or the machine: report and fail. */
#include "guest.h"

struct idt_gate { u16 off_lo, sel; u8 zero, type; u16 off_hi; };
static struct idt_gate idt[256] ALIGNED(8);
static irq_handler handlers[256];
struct exc_record exc;

extern const u32 isr_table[256];
extern void user_return(void);
extern u64 gdt[];
extern u8 tss[];
struct ex_entry { u32 fault, resume; };
extern const struct ex_entry __ex_table_start[], __ex_table_end[];

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

static void set_gate(int v, u32 handler, u8 dpl) {
    idt[v].off_lo = handler & 0xFFFF;
    idt[v].off_hi = handler >> 16;
    idt[v].sel = SEL_KCODE;
    idt[v].zero = 0;
    idt[v].type = 0x8E | (dpl << 5); /* present, 32-bit interrupt gate */
}

struct __attribute__((packed)) dtr { u16 limit; u32 base; };

void idt_init(void) {
    for (int v = 0; v < 256; v++) set_gate(v, isr_table[v], 0);
    set_gate(0x80, (u32)(uintptr_t)user_return, 3);
    struct dtr d = { sizeof idt - 1, (u32)(uintptr_t)idt };
    __asm__ volatile("lidt %0" ::"m"(d));

    /* TSS descriptor at 0x28: available 32-bit TSS (type 9), DPL 0, byte granular. */
    u32 base = (u32)(uintptr_t)tss, limit = 103;
    gdt[5] = (limit & 0xFFFF) | ((u64)(base & 0xFFFFFF) << 16) | ((u64)0x89 << 40) |
             ((u64)((limit >> 16) & 0xF) << 48) | ((u64)(base >> 24) << 56);
    __asm__ volatile("ltr %w0" ::"r"(0x28));
    exc_clear();
    exc.count = 0;
}

void idt_load_null(void) {
    struct dtr d = { 0, 0 };
    __asm__ volatile("lidt %0" ::"m"(d));
}

void idt_set_handler(u8 vector, irq_handler h) { handlers[vector] = h; }

void isr_dispatch(struct frame *f) {
    u32 v = f->vector;
    if (handlers[v]) {
        handlers[v](f);
        return;
    }
    if (v < 32) {
        for (const struct ex_entry *e = __ex_table_start; e < __ex_table_end; e++) {
            if (e->fault == f->eip) {
                exc.vector = v;
                exc.error = f->error;
                exc.eip = f->eip;
                exc.cs = f->cs;
                exc.count++;
                f->eip = e->resume;
                return;
            }
        }
        fail_stop("unexpected exception %s (vector %u) error 0x%x at eip=0x%x cs=0x%x eflags=0x%x cr2=0x%x "
                  "eax=0x%x ebx=0x%x ecx=0x%x edx=0x%x",
                  exc_names[v], v, f->error, f->eip, f->cs, f->eflags, read_cr2(), f->eax, f->ebx, f->ecx, f->edx);
    }
    fail_stop("unexpected interrupt vector 0x%x at eip=0x%x", v, f->eip);
}

/* ---- guarded instructions ------------------------------------------------------ */
u32 try_rdmsr(u32 msr, u64 *val) {
    u32 lo = 0, hi = 0;
    exc_clear();
    __asm__ volatile(GUARD("rdmsr") : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
    *val = ((u64)hi << 32) | lo;
    return exc.vector;
}

u32 try_wrmsr(u32 msr, u64 val) {
    exc_clear();
    __asm__ volatile(GUARD("wrmsr") ::"c"(msr), "a"((u32)val), "d"((u32)(val >> 32)) : "memory");
    return exc.vector;
}

u32 try_write_cr4(u32 v) {
    exc_clear();
    __asm__ volatile(GUARD("mov %0, %%cr4") ::"r"(v) : "memory");
    return exc.vector;
}

u32 try_xsetbv(u32 xcr, u64 v) {
    exc_clear();
    /* xsetbv = 0F 01 D1 */
    __asm__ volatile(GUARD(".byte 0x0f, 0x01, 0xd1") ::"c"(xcr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
    return exc.vector;
}

u32 try_ud2(void) {
    exc_clear();
    __asm__ volatile(GUARD("ud2") ::: "memory");
    return exc.vector;
}

/* MOV SS with a null selector: #GP(0) at CPL 0. SS is left unchanged by the fault. */
u32 try_load_ss(u16 sel) {
    exc_clear();
    __asm__ volatile(GUARD("movw %w0, %%ss") ::"r"(sel) : "memory");
    return exc.vector;
}
