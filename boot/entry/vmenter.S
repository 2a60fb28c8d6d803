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

#define R_RAX 0
#define R_RCX 8
#define R_RDX 16
#define R_RBX 24
#define R_RBP 40
#define R_RSI 48
#define R_RDI 56
#define R_R8 64
#define R_R9 72
#define R_R10 80
#define R_R11 88
#define R_R12 96
#define R_R13 104
#define R_R14 112
#define R_R15 120
#define R_CR2 128
#define R_FX 256

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

    STAMP(1)
    fxrstor64 R_FX(%rdi)            /* guest x87/SSE state */
    movq R_CR2(%rdi), %rax
    movq %rax, %cr2
    movl %esi, %eax                 /* launched? (before RSI is overwritten) */
    testl %eax, %eax
    movq R_RCX(%rdi), %rcx
    movq R_RDX(%rdi), %rdx
    movq R_RBX(%rdi), %rbx
    movq R_RBP(%rdi), %rbp
    movq R_RSI(%rdi), %rsi
    movq R_R8(%rdi), %r8
    movq R_R9(%rdi), %r9
    movq R_R10(%rdi), %r10
    movq R_R11(%rdi), %r11
    movq R_R12(%rdi), %r12
    movq R_R13(%rdi), %r13
    movq R_R14(%rdi), %r14
    movq R_R15(%rdi), %r15
    movq R_RAX(%rdi), %rax          /* MOV leaves the flags of the TEST */
    movq R_RDI(%rdi), %rdi
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
    movq %rax, R_RAX(%rdi)
    movq %rcx, R_RCX(%rdi)
    movq %rdx, R_RDX(%rdi)
    STAMP(2)
    movq %rbx, R_RBX(%rdi)
    movq %rbp, R_RBP(%rdi)
    movq %rsi, R_RSI(%rdi)
    movq %r8, R_R8(%rdi)
    movq %r9, R_R9(%rdi)
    movq %r10, R_R10(%rdi)
    movq %r11, R_R11(%rdi)
    movq %r12, R_R12(%rdi)
    movq %r13, R_R13(%rdi)
    movq %r14, R_R14(%rdi)
    movq %r15, R_R15(%rdi)
    popq %rax
    movq %rax, R_RDI(%rdi)
    movq %cr2, %rax
    movq %rax, R_CR2(%rdi)
    fxsave64 R_FX(%rdi)
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
