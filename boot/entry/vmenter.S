/* VM entry and exit (SDM Vol. 3C 26, 27).
 *
 * u32 hv_vmenter(u64 *regs, u32 launched)  (sysv ABI on both targets)
 *
 * regs is the vCPU's register block in the kernel's linear memory:
 *   [0..15]  guest RAX RCX RDX RBX RSP RBP RSI RDI R8..R15, in hardware
 *            register-number order (RSP is in the VMCS; slot 4 is unused),
 *            so that exit-qualification register numbers index it directly;
 *   [16]     guest CR2 (VMX does not switch CR2);
 *   [32..]   the guest's 512-byte FXSAVE area (16-byte aligned).
 * Enters the guest with VMRESUME (launched != 0) or VMLAUNCH, and returns
 * 0 when the guest exits, 1 on VMfailInvalid, 2 on VMfailValid (the error
 * is in the VM-instruction error field). HOST_RSP and HOST_RIP are written
 * here, on every entry, because only this code knows them.
 */
#include "vmx-consts.h"

/* The block's offsets (REGS_*) are generated from tools/vmx/table.mjs into
 * vmx-consts.h, shared with vmx.c and kernel/vm/vcpu.ts. */

/* With HV_PROFILE (make bench's profiling build only), the stub records
 * RDTSC at its start, just before VMLAUNCH/VMRESUME, first thing after a VM
 * exit, and just before returning; boot/imports/vmx.c reports them. */
#ifdef HV_PROFILE
#define STAMP(slot) pushq %rax; pushq %rdx; rdtsc; shlq $32, %rdx; orq %rdx, %rax; \
    movq %rax, hv_prof_stamps+8*slot(%rip); popq %rdx; popq %rax
#else
#define STAMP(slot)
#endif

    .text
#ifdef HV_PROFILE
    /* Two stamps back to back: what one stamp adds to a measured interval. */
    .globl hv_prof_calibrate
hv_prof_calibrate:
    STAMP(8)
    STAMP(9)
    ret
#endif

    .globl hv_vmenter
hv_vmenter:
    STAMP(0)
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdi                      /* regs, found again at (%rsp) on exit */

    movq $HOST_RSP, %rax
    vmwrite %rsp, %rax
    leaq vm_exit(%rip), %rdx
    movq $HOST_RIP, %rax
    vmwrite %rdx, %rax

vm_enter_common:
    STAMP(1)
    fxrstor64 REGS_FX(%rdi)            /* guest x87/SSE state */
    movq REGS_CR2(%rdi), %rax
    movq %rax, %cr2
    movl %esi, %eax                 /* launched? (before RSI is overwritten) */
    testl %eax, %eax
    movq REGS_RCX(%rdi), %rcx
    movq REGS_RDX(%rdi), %rdx
    movq REGS_RBX(%rdi), %rbx
    movq REGS_RBP(%rdi), %rbp
    movq REGS_RSI(%rdi), %rsi
    movq REGS_R8(%rdi), %r8
    movq REGS_R9(%rdi), %r9
    movq REGS_R10(%rdi), %r10
    movq REGS_R11(%rdi), %r11
    movq REGS_R12(%rdi), %r12
    movq REGS_R13(%rdi), %r13
    movq REGS_R14(%rdi), %r14
    movq REGS_R15(%rdi), %r15
    movq REGS_RAX(%rdi), %rax          /* MOV leaves the flags of the TEST */
    movq REGS_RDI(%rdi), %rdi
    jnz 1f
    vmlaunch
    jmp vm_fail
1:  vmresume

vm_fail:
    /* Still on our stack with the host's registers gone: report CF/ZF. */
    movl $1, %eax
    jc 2f
    movl $2, %eax
2:  popq %rdi
    fninit
    jmp vm_return

vm_exit:
    /* RSP = HOST_RSP: the regs pointer is on top. */
    pushq %rdi
    movq 8(%rsp), %rdi
    movq %rax, REGS_RAX(%rdi)
    movq %rcx, REGS_RCX(%rdi)
    movq %rdx, REGS_RDX(%rdi)
    STAMP(2)
    movq %rbx, REGS_RBX(%rdi)
    movq %rbp, REGS_RBP(%rdi)
    movq %rsi, REGS_RSI(%rdi)
    movq %r8, REGS_R8(%rdi)
    movq %r9, REGS_R9(%rdi)
    movq %r10, REGS_R10(%rdi)
    movq %r11, REGS_R11(%rdi)
    movq %r12, REGS_R12(%rdi)
    movq %r13, REGS_R13(%rdi)
    movq %r14, REGS_R14(%rdi)
    movq %r15, REGS_R15(%rdi)
    popq %rax
    movq %rax, REGS_RDI(%rdi)
    movq %cr2, %rax
    movq %rax, REGS_CR2(%rdi)
    fxsave64 REGS_FX(%rdi)
    fninit                          /* the host's x87/SSE defaults */
    popq %rdi
    xorl %eax, %eax

vm_return:
    STAMP(3)
    pushq $0x1f80
    ldmxcsr (%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

/* u32 hv_vmenter_evmcs(u64 *regs, u32 launched, u8 *evmcs): hv_vmenter with
 * an enlightened VMCS current (boot/imports/vmx.c): HOST_RSP and HOST_RIP
 * are stored into the eVMCS instead of VMWRITE, and only when they change,
 * clearing the clean bit of their group then (HOST_POINTER for HOST_RSP,
 * HOST_GRP1 for HOST_RIP; TLFS "Clean Fields"). */
    .globl hv_vmenter_evmcs
hv_vmenter_evmcs:
    STAMP(0)
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdi                      /* regs, found again at (%rsp) on exit */

    cmpq %rsp, EVMCS_HOST_RSP(%rdx)
    je 3f
    movq %rsp, EVMCS_HOST_RSP(%rdx)
    andl $~EVMCS_CLEAN_HOST_POINTER, EVMCS_CLEAN_FIELDS(%rdx)
3:  leaq vm_exit(%rip), %rax
    cmpq %rax, EVMCS_HOST_RIP(%rdx)
    je vm_enter_common
    movq %rax, EVMCS_HOST_RIP(%rdx)
    andl $~EVMCS_CLEAN_HOST_GRP1, EVMCS_CLEAN_FIELDS(%rdx)
    jmp vm_enter_common
