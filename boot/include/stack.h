/* The kernel's stack bound: included by the generated kernel.c too (the
 * Makefile's FUNC_PROLOGUE edit) and by the runtime that sets it.
 *
 * Every kernel (wasm) function starts by comparing RSP with
 * hv_stack_limit and traps (WASM_RT_TRAP_EXHAUSTION, "call stack
 * exhausted") below it. That is the bound itself, where wasm2c's
 * default counts calls (an increment, a compare and a decrement per call,
 * about 16 calls and 96 instructions per nested round trip) against a
 * depth that says nothing about the frames' sizes.
 *
 * The limit is the bottom of the running kernel thread's stack plus
 * HV_STACK_MARGIN: room for one kernel function's frame (taken before its
 * check), the imports it calls and the trap report. One kernel thread runs
 * at a time (boot/smp/threads.c), so one machine-wide value, set by the
 * thread that takes the kernel. */
#ifndef HV_STACK_H
#define HV_STACK_H
extern unsigned long long hv_stack_limit;
#define HV_STACK_MARGIN (32u << 10)
/* One compare of RSP with the bound and a branch on its flags (not
 * volatile: checks of inlined callees with nothing stored between them
 * may merge). */
static inline _Bool hv_stack_below_limit(void) {
    _Bool below;
    __asm__("cmpq %1, %%rsp" : "=@ccb"(below) : "m"(hv_stack_limit));
    return below;
}
#define HV_STACK_CHECK() \
    if (__builtin_expect(hv_stack_below_limit(), 0)) TRAP(EXHAUSTION);
#endif
