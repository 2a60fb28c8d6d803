/* Imports of the vmx module: the VMX instructions (SDM Vol. 3C ch. 31).
 * A VMX instruction reports failure in RFLAGS (31.2): CF=1 is VMfailInvalid,
 * ZF=1 is VMfailValid (error number in the VM-instruction error field). */
#include "hv.h"
#include "kernel.h"

struct Z_vmx_instance_t;
#include "vmx-consts.h"

#define VMX_STATUS(insn, ...)                                                    \
    ({                                                                         \
        u8 cf, zf;                                                             \
        __asm__ volatile(insn "\n\tsetc %0\n\tsetz %1" : "=qm"(cf), "=qm"(zf) \
                         : __VA_ARGS__ : "cc", "memory");                       \
        (u32)(cf ? 1 : zf ? 2 : 0);                                            \
    })

u32 Z_vmxZ_vmxon(struct Z_vmx_instance_t *i, u64 pa) { return VMX_STATUS("vmxon %2", "m"(pa)); }
u32 Z_vmxZ_vmxoff(struct Z_vmx_instance_t *i) { return VMX_STATUS("vmxoff", "i"(0)); }
u32 Z_vmxZ_vmclear(struct Z_vmx_instance_t *i, u64 pa) { return VMX_STATUS("vmclear %2", "m"(pa)); }
u32 Z_vmxZ_vmptrld(struct Z_vmx_instance_t *i, u64 pa) { return VMX_STATUS("vmptrld %2", "m"(pa)); }

u64 Z_vmxZ_vmptrst(struct Z_vmx_instance_t *i) {
    u64 pa = 0;
    __asm__ volatile("vmptrst %0" : "=m"(pa) :: "memory");
    return pa;
}

/* A VMREAD/VMWRITE of the kernel's own failed: a hypervisor bug. Which
 * VMfail it was is told by the current-VMCS pointer (VMfailInvalid only
 * without one, 31.2). */
static _Noreturn __attribute__((noinline, cold)) void vmx_bug(const char *insn, u32 field) {
    u64 cur = Z_vmxZ_vmptrst(0);
    hv_puts("hv: trap: ");
    hv_puts(insn);
    hv_puts(" of field ");
    hv_put_hex(field);
    if (cur == ~0ull) {
        hv_puts(" failed: VMfailInvalid (no current VMCS)\n");
    } else {
        u64 err = 0;
        __asm__ volatile("vmread %1, %0" : "=r"(err) : "r"((u64)VM_INSTRUCTION_ERROR) : "cc");
        hv_puts(" failed: VMfailValid\nhv: VM-instruction error ");
        hv_put_dec(err);
        hv_puts("\n");
    }
    hv_exit(HV_STATUS_TRAP);
}

/* The flag output "=@ccbe" (CF or ZF: either VMfail) lets the compiler
 * branch on the flags directly: these two run on every field access. */
u64 Z_vmxZ_vmread(struct Z_vmx_instance_t *i, u32 field) {
    u64 v;
    _Bool bad;
    __asm__ volatile("vmread %2, %0" : "=r"(v), "=@ccbe"(bad) : "r"((u64)field));
    if (__builtin_expect(bad, 0)) vmx_bug("VMREAD", field);
    return v;
}

void Z_vmxZ_vmwrite(struct Z_vmx_instance_t *i, u32 field, u64 v) {
    _Bool bad;
    __asm__ volatile("vmwrite %2, %1" : "=@ccbe"(bad) : "r"((u64)field), "rm"(v));
    if (__builtin_expect(bad, 0)) vmx_bug("VMWRITE", field);
}

/* Field lists: copying many fields of the current VMCS to or from linear
 * memory in one call (kernel/hw/vmx.ts readfields/writefields). Each list
 * entry is a u32: the field encoding in bits 15:0 and the byte offset of
 * its value (from `base`) in bits 27:16; the value is 2, 4 or 8 bytes by
 * the encoding's width (bits 14:13: 0 16-bit, 1 64-bit, 2 32-bit, 3
 * natural width; Appendix B). Only entries whose bit is set in `mask` are
 * copied; lists have at most 64 entries. */
#define FL_ENC(e) ((e) & 0xffffu)
#define FL_OFF(e) (((e) >> 16) & 0xfffu)

/* (__builtin_memcpy: -ffreestanding would make plain memcpy a call.) */
static u64 fl_load(const u8 *p, u32 enc) {
    u32 w = (enc >> 13) & 3;
    if (w == 0) { u16 v; __builtin_memcpy(&v, p, 2); return v; }
    if (w == 2) { u32 v; __builtin_memcpy(&v, p, 4); return v; }
    u64 v; __builtin_memcpy(&v, p, 8); return v;
}
static void fl_store(u8 *p, u32 enc, u64 v) {
    u32 w = (enc >> 13) & 3;
    if (w == 0) { u16 x = (u16)v; __builtin_memcpy(p, &x, 2); return; }
    if (w == 2) { u32 x = (u32)v; __builtin_memcpy(p, &x, 4); return; }
    __builtin_memcpy(p, &v, 8);
}

/* VMREAD each selected field into base + offset; returns the mask of the
 * entries whose value differed from what was there before. */
u64 Z_vmxZ_readfields(struct Z_vmx_instance_t *i, u32 list, u32 n, u32 base, u64 mask) {
    if (n > 64) wasm_rt_trap(WASM_RT_TRAP_OOB);
    const u8 *l = hv_linear(list, n * 4);
    u8 *b = hv_linear(base, 4096);
    u64 changed = 0;
    for (u32 k = 0; k < n; k++) {
        if (!(mask >> k & 1)) continue;
        u32 e;
        __builtin_memcpy(&e, l + 4 * k, 4);
        u32 enc = FL_ENC(e);
        u64 v = Z_vmxZ_vmread(i, enc);
        u8 *p = b + FL_OFF(e);
        if (fl_load(p, enc) != v) {
            fl_store(p, enc, v);
            changed |= 1ull << k;
        }
    }
    return changed;
}

/* VMWRITE each selected field from base + offset. */
void Z_vmxZ_writefields(struct Z_vmx_instance_t *i, u32 list, u32 n, u32 base, u64 mask) {
    if (n > 64) wasm_rt_trap(WASM_RT_TRAP_OOB);
    const u8 *l = hv_linear(list, n * 4);
    u8 *b = hv_linear(base, 4096);
    for (u32 k = 0; k < n; k++) {
        if (!(mask >> k & 1)) continue;
        u32 e;
        __builtin_memcpy(&e, l + 4 * k, 4);
        Z_vmxZ_vmwrite(i, FL_ENC(e), fl_load(b + FL_OFF(e), FL_ENC(e)));
    }
}

/* INVEPT/INVVPID take a 128-bit descriptor in memory (31.3). */
u32 Z_vmxZ_invept(struct Z_vmx_instance_t *i, u32 type, u64 eptp) {
    u64 desc[2] = { eptp, 0 };
    return VMX_STATUS("invept %2, %3", "m"(desc), "r"((u64)type));
}

u32 Z_vmxZ_invvpid(struct Z_vmx_instance_t *i, u32 type, u32 vpid, u64 linear) {
    u64 desc[2] = { vpid & 0xffff, linear };
    return VMX_STATUS("invvpid %2, %3", "m"(desc), "r"((u64)type));
}

/* VM entry: boot/entry/vmenter.S. The register block (see there) lives in
 * linear memory; its layout (REGS_*) is generated into vmx-consts.h. */
__attribute__((sysv_abi)) u32 hv_vmenter(u64 *regs, u32 launched);

/* Profiling build only: timestamps of the last round trip through here.
 * [0] stub start, [1] stub before VM entry, [2] stub after VM exit, [3] stub
 * return (written by vmenter.S); [4] C entry, [5] C return; [6] the C
 * return of the round trip before; [7] 1 in the profiling build; [8..11]
 * calibration (Z_vmxZ_profile). */
#ifdef HV_PROFILE
u64 hv_prof_stamps[12] = { [7] = 1 }; /* [7]: this is the profiling build */
__attribute__((sysv_abi)) void hv_prof_calibrate(void);
#else
u64 hv_prof_stamps[12];
#endif

/* RDTSC that the compiler may not move across the code around it (after
 * LTO inlines this wrapper into the kernel's loop). */
static inline u64 prof_stamp(void) {
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((u64)hi << 32) | lo;
}

/* The launch state and the exit count live in the block and are kept here,
 * where the block is checked once, rather than in the exit loop, where
 * every access to linear memory is a bounds-checked one (kernel/vm/vcpu.ts). */
u32 Z_vmxZ_enter(struct Z_vmx_instance_t *i, u32 regs) {
#ifdef HV_PROFILE
    hv_prof_stamps[6] = hv_prof_stamps[5];
    hv_prof_stamps[4] = prof_stamp();
#endif
    u8 *p = hv_linear(regs, REGS_BYTES);
    if ((u64)p & 15) wasm_rt_trap(WASM_RT_TRAP_OOB); /* FXSAVE needs 16-byte alignment */
    u64 *launched = (u64 *)(p + REGS_LAUNCHED);
    u32 r = hv_vmenter((u64 *)p, *launched != 0);
    if (r == 0) {
        *launched = 1;
        (*(u64 *)(p + REGS_EXITS))++;
    }
#ifdef HV_PROFILE
    hv_prof_stamps[5] = prof_stamp();
#endif
    return r;
}

/* vmx.profile: the timestamps above, into linear memory (zeros unless this
 * is the profiling build). */
void Z_vmxZ_profile(struct Z_vmx_instance_t *i, u32 out) {
#ifdef HV_PROFILE
    /* [8]/[9]: two asm stamps back to back, [10]/[11]: two C stamps. */
    if (hv_prof_stamps[8] == 0) {
        hv_prof_calibrate();
        hv_prof_stamps[10] = prof_stamp();
        hv_prof_stamps[11] = prof_stamp();
    }
#endif
    memcpy(hv_linear(out, sizeof hv_prof_stamps), hv_prof_stamps, sizeof hv_prof_stamps);
}
