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

static _Noreturn void vmx_bug(const char *insn, u32 field, u32 status) {
    hv_puts("hv: trap: ");
    hv_puts(insn);
    hv_puts(" of field ");
    hv_put_hex(field);
    hv_puts(status == 1 ? " failed: VMfailInvalid (no current VMCS)\n" : " failed: VMfailValid\n");
    if (status == 2) {
        u64 err = 0;
        __asm__ volatile("vmread %1, %0" : "=r"(err) : "r"((u64)VM_INSTRUCTION_ERROR) : "cc");
        hv_puts("hv: VM-instruction error ");
        hv_put_dec(err);
        hv_puts("\n");
    }
    hv_exit(HV_STATUS_TRAP);
}

u64 Z_vmxZ_vmread(struct Z_vmx_instance_t *i, u32 field) {
    u64 v = 0;
    u8 cf, zf;
    __asm__ volatile("vmread %3, %0\n\tsetc %1\n\tsetz %2"
                     : "=r"(v), "=qm"(cf), "=qm"(zf) : "r"((u64)field) : "cc");
    if (__builtin_expect(cf | zf, 0)) vmx_bug("VMREAD", field, cf ? 1 : 2);
    return v;
}

void Z_vmxZ_vmwrite(struct Z_vmx_instance_t *i, u32 field, u64 v) {
    u8 cf, zf;
    __asm__ volatile("vmwrite %3, %2\n\tsetc %0\n\tsetz %1"
                     : "=qm"(cf), "=qm"(zf) : "r"((u64)field), "rm"(v) : "cc");
    if (__builtin_expect(cf | zf, 0)) vmx_bug("VMWRITE", field, cf ? 1 : 2);
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
 * linear memory; 256 + 512 bytes. */
__attribute__((sysv_abi)) u32 hv_vmenter(u64 *regs, u32 launched);
#define REGS_BYTES (256 + 512)

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

u32 Z_vmxZ_enter(struct Z_vmx_instance_t *i, u32 regs, u32 launched) {
#ifdef HV_PROFILE
    hv_prof_stamps[6] = hv_prof_stamps[5];
    hv_prof_stamps[4] = prof_stamp();
#endif
    u8 *p = hv_linear(regs, REGS_BYTES);
    if ((u64)p & 15) wasm_rt_trap(WASM_RT_TRAP_OOB); /* FXSAVE needs 16-byte alignment */
    u32 r = hv_vmenter((u64 *)p, launched);
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
