/* The VMX instructions as C functions for the minimal L1 (see vmx.h).
 *
 * Each wrapper sets CF, PF, AF, ZF, SF and OF, executes the instruction as a
 * guarded instruction (an exception is recorded and execution resumes right
 * after it, see GUARD in guest.h), then reads EFLAGS. SDM 30.2 defines the
 * three outcomes by these flags; vm_outcome() turns them into VM_OK,
 * VM_FAIL_INVALID, VM_FAIL_VALID, or VM_BADFLAGS when they match none.
 *
 * Memory operands are addressed through a register (never ESP-relative:
 * the PUSHF/POPF around the instruction move ESP), except in the functions
 * at the end that exercise other addressing forms on purpose. */
#include "vmx.h"

u32 vm_last_flags;
u32 vmcs_errors, vmcs_error_field, vmcs_error_outcome;

#define PRESET "pushfl\n\torl $0x8d5, (%%esp)\n\tpopfl\n\t"
#define POST "pushfl\n\tpopl %0\n\t"

u32 vm_outcome(u32 eflags) {
    vm_last_flags = eflags;
    if (exc.vector != NO_EXC) return VM_EXC | exc.vector;
    switch (eflags & FL_ARITH) {
    case 0: return VM_OK;
    case FL_CF: return VM_FAIL_INVALID;
    case FL_ZF: return VM_FAIL_VALID;
    }
    return VM_BADFLAGS;
}

const char *vm_str(u32 o) {
    static char buf[24];
    switch (o) {
    case VM_OK: return "VMsucceed";
    case VM_FAIL_INVALID: return "VMfailInvalid";
    case VM_FAIL_VALID: return "VMfailValid";
    case VM_BADFLAGS: snprintf(buf, sizeof buf, "flags 0x%x", vm_last_flags); return buf;
    case VM_UD: return "#UD";
    case VM_GP: return "#GP";
    case VM_PF: return "#PF";
    }
    snprintf(buf, sizeof buf, "exception %u", o & 0xFF);
    return buf;
}

u32 vmxon(u64 pa) {
    volatile u64 op = pa;
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmxon (%1)") POST : "=&r"(fl) : "r"(&op) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmxoff(void) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmxoff") POST : "=&r"(fl) : : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmclear(u64 pa) {
    volatile u64 op = pa;
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmclear (%1)") POST : "=&r"(fl) : "r"(&op) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmptrld_from(const volatile u64 *operand) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmptrld (%1)") POST : "=&r"(fl) : "r"(operand) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmptrld(u64 pa) {
    volatile u64 op = pa;
    return vmptrld_from(&op);
}

u32 vmptrst(u64 *out) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmptrst (%1)") POST : "=&r"(fl) : "r"(out) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmread(u32 field, u32 *val) {
    u32 fl, v = 0xDEADBEEF;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmread %2, %1") POST : "=&r"(fl), "+&r"(v) : "r"(field) : "memory", "cc");
    *val = v;
    return vm_outcome(fl);
}

u32 vmwrite(u32 field, u32 val) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmwrite %1, %2") POST : "=&r"(fl) : "r"(val), "r"(field) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmread_mem(u32 field, volatile u32 *dst) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmread %1, (%2)") POST : "=&r"(fl) : "r"(field), "r"(dst) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmwrite_mem(u32 field, const volatile u32 *src) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmwrite (%1), %2") POST : "=&r"(fl) : "r"(src), "r"(field) : "memory", "cc");
    return vm_outcome(fl);
}

/* INVEPT/INVVPID r32, m128 (AT&T: descriptor first, type register second). */
u32 invept(u32 type, const void *desc) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("invept (%1), %2") POST : "=&r"(fl) : "r"(desc), "r"(type) : "memory", "cc");
    return vm_outcome(fl);
}

u32 invvpid(u32 type, const void *desc) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD("invvpid (%1), %2") POST : "=&r"(fl) : "r"(desc), "r"(type) : "memory", "cc");
    return vm_outcome(fl);
}

/* ---- other addressing forms ------------------------------------------------------
 * A hypervisor that emulates these instructions decodes the memory operand
 * from the VM-exit instruction information and displacement (SDM 27.2.5):
 * each form below is one it must get right. */

/* [base + index*8 + disp32]: base = dst - 0x12345 - 3*8, index = 3. */
u32 vmread_sib(u32 field, u32 *dst) {
    u32 fl;
    u32 base = (u32)(uintptr_t)dst - 0x12345 - 3 * 8, index = 3;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmread %1, 0x12345(%2,%3,8)") POST
                     : "=&r"(fl) : "r"(field), "r"(base), "r"(index) : "memory", "cc");
    return vm_outcome(fl);
}

/* [disp32]: the value comes from a fixed address. */
volatile u32 vm_abs_word;
u32 vmwrite_abs(u32 field, u32 val) {
    u32 fl;
    vm_abs_word = val;
    exc_clear();
    __asm__ volatile(PRESET GUARD("vmwrite vm_abs_word, %1") POST : "=&r"(fl) : "r"(field) : "memory", "cc");
    return vm_outcome(fl);
}

/* [FS:offset] with FS = sel: the segment's base and limit apply. FS is put
 * back to the flat data selector afterwards. */
u32 vmptrst_seg(u16 sel, u32 offset) {
    u32 fl;
    exc_clear();
    __asm__ volatile("movw %w2, %%fs\n\t" PRESET GUARD("vmptrst %%fs:(%1)") POST "movw %w3, %%fs"
                     : "=&r"(fl) : "r"(offset), "r"((u32)sel), "r"((u32)SEL_KDATA) : "memory", "cc");
    return vm_outcome(fl);
}

u32 vmread_seg(u16 sel, u32 offset, u32 field) {
    u32 fl;
    exc_clear();
    __asm__ volatile("movw %w3, %%fs\n\t" PRESET GUARD("vmread %2, %%fs:(%1)") POST "movw %w4, %%fs"
                     : "=&r"(fl) : "r"(offset), "r"(field), "r"((u32)sel), "r"((u32)SEL_KDATA) : "memory", "cc");
    return vm_outcome(fl);
}

/* 16-bit addressing in 32-bit code (address-size prefix 67H): [BX+SI]. */
u32 vmptrst_addr16(u16 bx, u16 si) {
    u32 fl;
    exc_clear();
    __asm__ volatile(PRESET GUARD(".byte 0x67, 0x0f, 0xc7, 0x38") POST /* vmptrst [bx+si] */
                     : "=&r"(fl) : "b"((u32)bx), "S"((u32)si) : "memory", "cc");
    return vm_outcome(fl);
}

/* MOV SS blocks events for one instruction: VMLAUNCH right after it fails
 * with error 26 (SDM 30.3 VMLAUNCH, "events blocked by MOV SS"). */
u32 vmlaunch_after_mov_ss(void) {
    u32 fl, ss;
    exc_clear();
    __asm__ volatile("movl %%ss, %1\n\t" PRESET "movw %w1, %%ss\n\t" GUARD("vmlaunch") POST
                     : "=&r"(fl), "=&r"(ss) : : "memory", "cc");
    return vm_outcome(fl);
}

/* ---- field access for set-up code ------------------------------------------------------- */
void vw(u32 field, u32 val) {
    u32 o = vmwrite(field, val);
    if (o != VM_OK && !vmcs_errors++) {
        vmcs_error_field = field;
        vmcs_error_outcome = o;
    }
}

void vw64(u32 field, u64 val) {
    vw(field, (u32)val);
    vw(field | 1, (u32)(val >> 32));
}

u32 vr(u32 field) {
    u32 v;
    u32 o = vmread(field, &v);
    if (o != VM_OK) {
        if (!vmcs_errors++) {
            vmcs_error_field = field;
            vmcs_error_outcome = o;
        }
        return 0xFFFFFFFF;
    }
    return v;
}

u64 vr64(u32 field) {
    u32 lo = vr(field), hi = vr(field | 1);
    return ((u64)hi << 32) | lo;
}

u32 vm_error(void) {
    u32 v;
    return vmread(F_VM_INSTRUCTION_ERROR, &v) == VM_OK ? v : 0xFFFFFFFF;
}
