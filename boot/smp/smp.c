/* The cpu.index, cpu.count, cpu.migrate and cpu.hoststate imports, the idle
 * loop and the migration of the one kernel thread between processors.
 *
 * migrate(target), a coroutine switch: smp_switch pushes the callee-saved
 * registers of the SysV ABI (RBX, RBP, R12-R15; MXCSR and the x87 control
 * word) on the kernel stack, leaves that stack for the calling processor's
 * own idle stack and calls smp_depart, which stores the stack pointer in
 * the target's handoff slot, sends it the wake-up IPI and idles. The target
 * (in its idle loop, interrupts off between the check and `sti; hlt`, so a
 * wake-up is never lost) takes the slot and smp_resume pops the registers:
 * smp_switch returns 1 there, on the same kernel stack. The PE build's
 * caller (Microsoft x64 ABI) saves RDI, RSI and XMM6-15 itself around the
 * call, since smp_switch is declared sysv_abi.
 *
 * Interrupts: the kernel thread runs with IF=0; a processor enables them
 * only in `sti; hlt`. The wake-up vector 0xF0 counts itself (wakes_seen)
 * and, like any stray vector 0x20-0xFE, writes the EOI and returns; 0xFF,
 * the spurious vector, returns without EOI (SDM Vol. 3A 10.9).
 *
 * Every wake-up IPI is taken in the idle loop, never left pending for the
 * kernel thread (where it would surface as an external-interrupt VM exit
 * of a guest): the sender counts it (wakes_sent) before publishing the
 * handoff, and a processor that finds the handoff before the IPI arrived
 * (it was awake already) waits in `sti; hlt` until wakes_seen catches up. */
#include "smp.h"
#include "kernel.h"

struct Z_cpu_instance_t;

#define STR_(x) #x
#define STR(x) STR_(x)

struct smp_cpu *smp_cpus[SMP_MAX_CPUS];
u32 smp_online;

__attribute__((sysv_abi)) u32 smp_switch(u32 target);
extern const u8 smp_wake_isr[], smp_eoi_isr[], smp_spurious_isr[];

__asm__(
    "    .text\n"
    "    .globl smp_switch, smp_resume, smp_wake_isr, smp_eoi_isr, smp_spurious_isr\n"
    "smp_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, %rsi\n"            /* the context, for smp_depart */
    "    movq %gs:16, %rsp\n"          /* SMP_CPU_IDLE_TOP */
    "    call smp_depart\n"
    "    ud2\n"
    "smp_resume:\n"
    "    movq %rdi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    movl $1, %eax\n"
    "    ret\n"
    "smp_wake_isr:\n"
    "    incl %gs:" STR(SMP_CPU_WAKES_SEEN) "\n"
    "smp_eoi_isr:\n"
    "    pushq %rax\n"
    "    pushq %rcx\n"
    "    pushq %rdx\n"
    "    movq smp_lapic_eoi(%rip), %rax\n"
    "    testq %rax, %rax\n"
    "    jz 1f\n"
    "    movl $0, (%rax)\n"            /* xAPIC EOI register */
    "    jmp 2f\n"
    "1:  movl $0x80b, %ecx\n"          /* x2APIC EOI MSR */
    "    xorl %eax, %eax\n"
    "    xorl %edx, %edx\n"
    "    wrmsr\n"
    "2:  popq %rdx\n"
    "    popq %rcx\n"
    "    popq %rax\n"
    "    iretq\n"
    "smp_spurious_isr:\n"
    "    iretq\n");

static inline struct smp_cpu *this_cpu(void) {
    struct smp_cpu *c;
    __asm__ volatile("movq %%gs:8, %0" : "=r"(c));
    return c;
}

void smp_install_vectors(void) {
    for (u32 v = 0x20; v < SMP_SPURIOUS_VECTOR; v++) hv_idt_set_gate((u8)v, (u64)smp_eoi_isr, 0);
    hv_idt_set_gate(SMP_WAKE_VECTOR, (u64)smp_wake_isr, 0);
    hv_idt_set_gate(SMP_SPURIOUS_VECTOR, (u64)smp_spurious_isr, 0);
}

__attribute__((sysv_abi, noreturn)) void smp_idle(struct smp_cpu *c) {
    for (;;) {
        __asm__ volatile("cli" ::: "memory");
        u64 ctx = __atomic_exchange_n(&c->handoff, 0, __ATOMIC_ACQUIRE);
        if (ctx) {
            while (__atomic_load_n(&c->wakes_seen, __ATOMIC_RELAXED) !=
                   __atomic_load_n(&c->wakes_sent, __ATOMIC_RELAXED))
                __asm__ volatile("sti; hlt; cli" ::: "memory");
            smp_resume(ctx);
        }
        /* STI's one-instruction interrupt shadow: the IPI that arrives
         * after the check wakes the HLT instead of being taken before it. */
        __asm__ volatile("sti; hlt" ::: "memory");
    }
}

/* t (idle) resumes ctx: counted, published, woken. */
void smp_give(struct smp_cpu *t, u64 ctx) {
    __atomic_fetch_add(&t->wakes_sent, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&t->handoff, ctx, __ATOMIC_RELEASE);
    smp_lapic_ipi(t->apic_id, ICR_FIXED | SMP_WAKE_VECTOR);
}

/* On the departing processor's idle stack (smp_switch). */
__attribute__((sysv_abi, noreturn, used)) void smp_depart(u32 target, u64 ctx) {
    smp_give(smp_cpus[target], ctx);
    smp_idle(this_cpu());
}

/* cpu.eoi: end of interrupt on this processor's local APIC. */
void Z_cpuZ_eoi(struct Z_cpu_instance_t *i) { smp_lapic_eoi_now(); }

u32 Z_cpuZ_index(struct Z_cpu_instance_t *i) {
    u32 v;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(v));
    return v;
}

u32 Z_cpuZ_count(struct Z_cpu_instance_t *i) { return smp_online; }

u32 Z_cpuZ_migrate(struct Z_cpu_instance_t *i, u32 target) {
    if (target == Z_cpuZ_index(i)) return 1;
    if (target >= smp_online || smp_lock_on) return 0; /* one thread moves; several stay */
    return smp_switch(target);
}

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
    /* TR base from the TSS descriptor in this processor's GDT (16 bytes in
     * long mode). */
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
