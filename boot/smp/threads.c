/* Several kernel threads at once: the cpu.spawn, cpu.kick, cpu.wait and
 * cpu.solo imports (design.md "SMP").
 *
 * The wasm instance is single-threaded, so while a second thread lives one
 * lock is around the whole kernel: a thread holds it whenever it runs
 * kernel code and lets go only where it stops doing so for a while — in
 * VM entry (boot/imports/vmx.c, from VMLAUNCH/VMRESUME until the VM exit)
 * and in cpu.wait. Until the first cpu.spawn nobody takes the lock
 * (smp_lock_on is 0) and VM entry goes straight to its stub: a machine that
 * runs one thread pays nothing (boot/imports/vmx.c hv_vmenter_locking).
 *
 * A ticket lock: processors get the kernel in the order they asked for it,
 * so a vCPU with many exits cannot keep another's exits waiting.
 *
 * The kernel's stack bound is one global (boot/include/stack.h
 * hv_stack_limit): each thread has its own stack, whose bound its
 * processor's block keeps (threads do not move between processors while
 * several live: cpu.migrate refuses then); taking the lock sets it.
 *
 * A thread is started on an idle processor by handing it a context (the
 * frame smp_resume pops) on a new stack: it returns into smp_thread_start,
 * which takes the lock and calls the kernel's vcpuThread export. When that
 * returns, the thread lets go of the lock and its processor idles again on
 * its idle stack (the thread's stack belongs to the kernel, which frees it).
 *
 * Kicks: cpu.kick marks the target's block and sends it SMP_KICK_VECTOR.
 * A processor running a guest takes it as an external-interrupt VM exit
 * (vmcs01's pin controls; acknowledged on exit, the kernel's handler
 * writes the EOI); one in cpu.wait wakes from HLT (the vector's stub,
 * smp.c, writes the EOI); one in the kernel keeps it pending with IF = 0
 * until its next VM entry, which then exits at once (SDM Vol. 3C 26.7.5,
 * an interrupt pending at entry). No kick is lost. */
#include "smp.h"
#include "kernel.h"
#include "wasm-rt.h"
#include "stack.h"
#include "vmx-consts.h"

struct Z_cpu_instance_t;
extern Z_kernel_instance_t hv_kernel;

u32 smp_lock_on;                /* set from the first cpu.spawn to cpu.solo */
static u32 lock_next, lock_serving; /* the ticket lock */
static u32 threads;             /* spawned threads that have not ended */

static inline struct smp_cpu *me(void) {
    struct smp_cpu *c;
    __asm__ volatile("movq %%gs:8, %0" : "=r"(c));
    return c;
}

void smp_lock(void) {
    u32 t = __atomic_fetch_add(&lock_next, 1, __ATOMIC_RELAXED);
    while (__atomic_load_n(&lock_serving, __ATOMIC_ACQUIRE) != t) __asm__ volatile("pause");
    hv_stack_limit = me()->stack_limit;
}

void smp_unlock(void) {
    __atomic_store_n(&lock_serving, lock_serving + 1, __ATOMIC_RELEASE);
}

/* The first code of a spawned thread (smp_resume returns here with the
 * argument in RBX, see spawn). */
__attribute__((sysv_abi, noreturn, used)) void smp_thread_main(u32 arg) {
    smp_lock();
    Z_kernelZ_vcpuThread(&hv_kernel, arg);
    __atomic_fetch_sub(&threads, 1, __ATOMIC_RELAXED);
    smp_unlock();
    /* Off the thread's stack before anything else can free it. */
    __asm__ volatile("movq %%gs:16, %%rsp\n"
                     "movq %%gs:8, %%rdi\n"
                     "call smp_idle\n" ::: "memory");
    __builtin_unreachable();
}

__asm__(".text\n"
        ".globl smp_thread_start\n"
        "smp_thread_start:\n"
        "    movl %ebx, %edi\n"
        "    call smp_thread_main\n"
        "    ud2\n");
extern const u8 smp_thread_start[];

/* cpu.spawn: a new kernel thread on idle processor `target`, on the stack
 * of `bytes` that ends at `top` (16-byte aligned, more than twice the
 * stack bound's margin), running the kernel's vcpuThread(arg). Returns 0 if the
 * target is this processor or not online, or the stack is not one. The
 * caller holds the lock from here on (it is taken now if this is the first
 * thread). */
u32 Z_cpuZ_spawn(struct Z_cpu_instance_t *i, u32 target, u64 top, u32 bytes, u32 arg) {
    if (target >= smp_online || target == me()->index || (top & 15) || bytes <= 2 * HV_STACK_MARGIN || top < bytes) return 0;
    if (!smp_lock_on) {
        me()->stack_limit = hv_stack_limit;
        smp_lock();
        smp_lock_on = 1;
        hv_vmenter_locking(true);
    }
    __atomic_fetch_add(&threads, 1, __ATOMIC_RELAXED);
    /* smp_resume's frame: MXCSR and x87 control word, R15-R12, RBX, RBP,
     * then the return address. */
    u64 *sp = (u64 *)top - 8;
    sp[0] = 0x1f80 | (u64)0x37f << 32; /* power-up MXCSR and FCW */
    sp[1] = 0;                         /* r15 */
    sp[2] = 0;                         /* r14 */
    sp[3] = 0;                         /* r13 */
    sp[4] = 0;                         /* r12 */
    sp[5] = arg;                       /* rbx */
    sp[6] = 0;                         /* rbp */
    sp[7] = (u64)smp_thread_start;     /* after the ret, RSP = top */
    smp_cpus[target]->stack_limit = top - bytes + HV_STACK_MARGIN;
    smp_give(smp_cpus[target], (u64)sp);
    return 1;
}

/* cpu.kick: processor `target` looks at its vCPUs soon (see the top). */
void Z_cpuZ_kick(struct Z_cpu_instance_t *i, u32 target) {
    if (target >= smp_online) return;
    struct smp_cpu *t = smp_cpus[target];
    __atomic_store_n(&t->kicked, 1, __ATOMIC_RELEASE);
    if (t != me()) smp_lapic_ipi(t->apic_id, ICR_FIXED | SMP_KICK_VECTOR);
}

/* cpu.wait: without the lock, until a kick since the last wait or until
 * the TSC reaches `deadline` (all ones: none). The processor HLTs between
 * kicks; a deadline arms its local APIC timer in TSC-deadline mode with the
 * kick's vector (SDM Vol. 3A 11.5.4.1), disarmed after; a processor without
 * that mode spins in PAUSE with interrupts taken between. */
void Z_cpuZ_wait(struct Z_cpu_instance_t *i, u64 deadline) {
    struct smp_cpu *c = me();
    if (smp_lock_on) smp_unlock();
    if (!c->timer) c->timer = smp_lapic_tsc_deadline(SMP_KICK_VECTOR) ? 1 : 2;
    bool halt = deadline == ~0ull || c->timer == 1;
    if (deadline != ~0ull && c->timer == 1) wrmsr(MSR_IA32_TSC_DEADLINE, deadline);
    for (;;) {
        if (__atomic_exchange_n(&c->kicked, 0, __ATOMIC_ACQUIRE)) break;
        if (rdtsc() >= deadline) break;
        /* STI's interrupt shadow covers the next instruction: a kick (or
         * the timer) that came after the test above is taken after
         * HLT/PAUSE begins, which it then ends. */
        if (halt) __asm__ volatile("sti; hlt; cli" ::: "memory");
        else __asm__ volatile("sti; pause; cli" ::: "memory");
    }
    if (deadline != ~0ull && c->timer == 1) wrmsr(MSR_IA32_TSC_DEADLINE, 0);
    if (smp_lock_on) smp_lock();
}

/* cpu.solo: every spawned thread has ended; the caller goes on alone and
 * the lock is no longer taken. 0 (nothing changed) while one still runs. */
u32 Z_cpuZ_solo(struct Z_cpu_instance_t *i) {
    if (__atomic_load_n(&threads, __ATOMIC_ACQUIRE) != 0) return 0;
    if (smp_lock_on) {
        smp_lock_on = 0;
        hv_vmenter_locking(false);
        smp_unlock();
    }
    return 1;
}
