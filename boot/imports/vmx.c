/* Imports of the vmx module: the VMX instructions (SDM Vol. 3C ch. 31).
 * A VMX instruction reports failure in RFLAGS (31.2): CF=1 is VMfailInvalid,
 * ZF=1 is VMfailValid (error number in the VM-instruction error field). */
#include "hv.h"
#include "kernel.h"

struct Z_vmx_instance_t;
#include "vmx-consts.h"

#ifdef HV_UEFI
/* Every function of this file in the one .text section (the PE build's
 * kernel.c is compiled the same way, Makefile kernel-efi.c): see
 * EVMCS_KEYS_POP below. */
#pragma clang attribute push (__attribute__((section(".text"))), apply_to = function)
#endif

/* ---- Hyper-V enlightened VMCS (TLFS "Nested Virtualization": "Enlightened
 * VMCS", "Clean Fields"; "Virtual Processor Assist Page"), used when this
 * hypervisor runs as L1 on an L0 that recommends it (kernel/vmx/evmcs.ts
 * decides and calls vmx.enlighten on every processor). Then:
 *   VMPTRLD  executes nothing: the eVMCS page becomes this processor's
 *            current one by CurrentNestedVmcs (30H) and EnlightenVmEntry
 *            (28H) in the processor's VP assist page, as the TLFS asks;
 *   VMREAD/VMWRITE  are loads/stores at the field's eVMCS offset
 *            (hv_evmcs_map, generated); a VMWRITE that changes a value
 *            clears the clean bit of the field's group in HvCleanFields so
 *            that L0 reads the group at the next entry;
 *   VMCLEAR  is executed (it makes the eVMCS inactive, TLFS) and forgets
 *            the current one if it was that;
 *   VM entry writes HOST_RSP/HOST_RIP into the eVMCS (boot/entry/vmenter.S
 *            hv_vmenter_evmcs) and, after the exit, sets every clean bit:
 *            L0 has read what it needs, as KVM does after each exit.
 * A field eVMCS v1 lacks is never needed in this mode (the capability
 * restrictions of kernel/vmx/evmcs.ts keep the kernel from the controls
 * that need one): an access to one stops the machine as a hypervisor bug.
 * Bare VT-x pays nothing on VMREAD/VMWRITE, a NOP on the other imports
 * (the patch sites below). */
#define EVMCS_MAX_CPUS 64 /* = kernel/vmx/vmxon.ts MAX_CPUS */
#define EVMCS_NONE (~0ull)
static bool evmcs_on;                      /* machine-wide: set once, at start-up */
static u64 evmcs_assist[EVMCS_MAX_CPUS];   /* each processor's VP assist page */
static u64 evmcs_cur[EVMCS_MAX_CPUS];      /* each processor's current eVMCS, EVMCS_NONE: none */

/* Bare VT-x must not pay for this mode on its hot path, where LTO inlines
 * these imports at some 450 places (ten on a CPUID round trip; a Bochs
 * tick per instruction). So the switch is made once, by patching code, when
 * the mode starts (before any VMCS exists):
 * - a VMREAD/VMWRITE import is the instruction and its JBE to the failure
 *   report (at least 5 bytes: 0F 78/79 with ModRM, maybe a REX prefix, and
 *   a JBE), which evmcs_patch overwrites with a JMP to the import's eVMCS
 *   code: nothing is added to the bare path;
 * - the other imports (VMPTRLD, VMCLEAR, VMPTRST, the field lists) test
 *   evmcs_mode(), a 5-byte NOP patched into a JMP the same way (one tick
 *   per call; as patch sites of their own they measured no better).
 * Each site records where it is and where the JMP goes, as offsets from the
 * record (no relocation needed), in a section of its own: bounded by
 * __hv_evmcs_keys_start/_end in linker.ld (ELF), by the .rdata$hvk_a /
 * $hvk_c markers below in the PE image (lld-link orders grouped sections by
 * the part after '$'). */
#ifdef HV_UEFI
/* (LLVM's COFF assembler has no .pushsection/.popsection: the record goes
 * into its section with .section and the code returns to .text, where the
 * PE build puts every function that has a site: this file's and kernel.c's,
 * by #pragma clang attribute, since lld-link's LTO would otherwise give each
 * its own COMDAT section.) */
#define EVMCS_KEYS_PUSH ".section .rdata$hvk_b, \"dr\""
#define EVMCS_KEYS_POP ".text"
/* (Markers with contents, so that tests/unit/evmcs-sites.test.ts finds the
 * records in the image: "HVKEYS<<" and "HVKEYS>>".) */
__attribute__((section(".rdata$hvk_a"), aligned(8), used)) static const u32 hv_evmcs_keys_start[2] = { 0x454b5648, 0x3c3c5359 };
__attribute__((section(".rdata$hvk_c"), aligned(8), used)) static const u32 hv_evmcs_keys_end[2] = { 0x454b5648, 0x3e3e5359 };
#define EVMCS_KEYS_BEGIN ((const i32 *)(hv_evmcs_keys_start + 2))
#define EVMCS_KEYS_END ((const i32 *)hv_evmcs_keys_end)
#else
#define EVMCS_KEYS_PUSH ".pushsection hv_evmcs_keys, \"a\""
#define EVMCS_KEYS_POP ".popsection"
extern const i32 __hv_evmcs_keys_start[], __hv_evmcs_keys_end[];
#define EVMCS_KEYS_BEGIN __hv_evmcs_keys_start
#define EVMCS_KEYS_END __hv_evmcs_keys_end
#endif
/* The record of the site at local label 1 whose JMP goes to label `to`. */
#define EVMCS_SITE(to) EVMCS_KEYS_PUSH "\n\t.balign 8\n\t.long 1b - ., %l[" #to "] - .\n\t" EVMCS_KEYS_POP
static inline __attribute__((always_inline)) bool evmcs_mode(void) {
    __asm__ goto("1: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n\t" /* nopl 0(%%rax,%%rax,1) */
                 EVMCS_SITE(on) :::: on);
    return false;
on:
    return true;
}

/* Every recorded site becomes JMP rel32 to its eVMCS code (E9 and the
 * distance from the end of the 5 bytes). Only the kernel thread runs this
 * code, on this processor; the others wait in their idle loop, and reach
 * the patched code only after the interrupt that wakes them (IRET
 * serializes, SDM Vol. 3A 8.1.3). */
static void evmcs_patch(void) {
    for (const i32 *k = EVMCS_KEYS_BEGIN; k + 2 <= EVMCS_KEYS_END; k += 2) {
        if (k[0] == 0 && k[1] == 0) continue; /* alignment padding */
        /* Addresses as numbers, hidden from the optimizer: the records are
         * const data, and a pointer derived from one may not be written
         * through (the compiler would drop the stores). */
        u64 sa = (u64)k + (u64)(i64)k[0];
        u64 ta = (u64)(k + 1) + (u64)(i64)k[1];
        __asm__("" : "+r"(sa));
        u8 *site = (u8 *)sa;
        const u8 *target = (const u8 *)ta;
        bool nop = site[0] == 0x0f && site[1] == 0x1f && site[2] == 0x44 && site[3] == 0x00 && site[4] == 0x00;
        const u8 *op = (site[0] & 0xf0) == 0x40 ? site + 1 : site; /* REX */
        bool vmrw = op[0] == 0x0f && (op[1] == 0x78 || op[1] == 0x79);
        if (!nop && !vmrw) {
            hv_puts("hv: trap: eVMCS static branch: neither a NOP nor a VMREAD/VMWRITE at a recorded site\n");
            hv_exit(HV_STATUS_TRAP);
        }
        i32 rel = (i32)(target - (site + 5));
        site[0] = 0xe9;
        __builtin_memcpy(site + 1, &rel, 4);
    }
}

/* A VMX import misused in eVMCS mode: a hypervisor bug, reported like vmx_bug. */
static _Noreturn __attribute__((noinline, cold)) void evmcs_bug(const char *insn, u32 field, const char *what) {
    hv_puts("hv: trap: ");
    hv_puts(insn);
    hv_puts(" of field ");
    hv_put_hex(field);
    hv_puts(" with the enlightened VMCS in use: ");
    hv_puts(what);
    hv_puts("\n");
    hv_exit(HV_STATUS_TRAP);
}

static inline u32 evmcs_cpu(void) {
    u32 v;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(v)); /* boot/smp: index at %gs:0 */
    if (v >= EVMCS_MAX_CPUS) wasm_rt_trap(WASM_RT_TRAP_OOB);
    return v;
}

#define VMX_STATUS(insn, ...)                                                    \
    ({                                                                         \
        u8 cf, zf;                                                             \
        __asm__ volatile(insn "\n\tsetc %0\n\tsetz %1" : "=qm"(cf), "=qm"(zf) \
                         : __VA_ARGS__ : "cc", "memory");                       \
        (u32)(cf ? 1 : zf ? 2 : 0);                                            \
    })

u32 Z_vmxZ_vmxon(struct Z_vmx_instance_t *i, u64 pa) { return VMX_STATUS("vmxon %2", "m"(pa)); }
u32 Z_vmxZ_vmxoff(struct Z_vmx_instance_t *i) { return VMX_STATUS("vmxoff", "i"(0)); }
/* (The eVMCS parts of the imports are out of line: inlined, they made
 * VMPTRLD too large to be inlined itself, 88 ticks per nested round trip.) */

/* After a VMCLEAR with the eVMCS in use: the eVMCS is inactive now (TLFS);
 * VMCLEAR of the current VMCS leaves none current (SDM 31.3 VMCLEAR). */
static __attribute__((noinline)) void evmcs_cleared(u64 pa) {
    u32 c = evmcs_cpu();
    if (evmcs_cur[c] == pa) evmcs_cur[c] = EVMCS_NONE;
}

u32 Z_vmxZ_vmclear(struct Z_vmx_instance_t *i, u64 pa) {
    u32 r = VMX_STATUS("vmclear %2", "m"(pa));
    if (__builtin_expect(evmcs_mode(), 0) && r == 0) evmcs_cleared(pa);
    return r;
}

/* VMPTRLD of an eVMCS: the page must be one the kernel may use as memory
 * (4-KiB aligned, identity-mapped, not the hypervisor's own: it is written
 * through a plain pointer from here on) and carry the eVMCS version (the
 * kernel writes it, kernel/vmx/caps.ts vmcsRevision) — otherwise the
 * instruction's answers: VMfailInvalid without a current VMCS, else
 * VMfailValid with error 9 (invalid address) or 11 (wrong revision) in the
 * current eVMCS (SDM 31.3 VMPTRLD). */
static __attribute__((noinline)) u32 evmcs_vmptrld(u64 pa) {
    u32 c = evmcs_cpu();
    u8 *assist = (u8 *)evmcs_assist[c];
    if (assist == 0) evmcs_bug("VMPTRLD", 0, "this processor has no VP assist page");
    u32 err = 0;
    if ((pa & 0xfff) != 0 || pa >= hv_paging_top() || hv_range_protected(pa, 4096)) {
        err = VMXERR_VMPTRLD_INVALID_ADDRESS;
    } else {
        u32 rev;
        __builtin_memcpy(&rev, (const u8 *)pa + EVMCS_REVISION_ID, 4);
        if (rev != EVMCS_VERSION) err = VMXERR_VMPTRLD_INCORRECT_REVISION_ID;
    }
    if (err != 0) {
        if (evmcs_cur[c] == EVMCS_NONE) return 1;
        __builtin_memcpy((u8 *)evmcs_cur[c] + EVMCS_VM_INSTRUCTION_ERROR, &err, 4);
        return 2;
    }
    __builtin_memcpy(assist + HV_VP_ASSIST_CURRENT_NESTED_VMCS, &pa, 8);
    assist[HV_VP_ASSIST_ENLIGHTEN_VMENTRY] = 1;
    evmcs_cur[c] = pa;
    return 0;
}

u32 Z_vmxZ_vmptrld(struct Z_vmx_instance_t *i, u64 pa) {
    if (__builtin_expect(evmcs_mode(), 0)) return evmcs_vmptrld(pa);
    return VMX_STATUS("vmptrld %2", "m"(pa));
}

/* vmx.vmcsswitch: VMCLEAR of `clear` (none when 0), then VMPTRLD of `load`,
 * both VMCSs of the hypervisor's own (the shadow VMCS copies of
 * kernel/nested/shadow.ts): a failure is a hypervisor bug and stops the
 * machine with a report, so the caller tests no status (one import where
 * there were two, each with its test and report in AssemblyScript). */
static _Noreturn __attribute__((noinline, cold)) void vmcs_switch_bug(const char *insn, u64 pa) {
    hv_puts("hv: trap: ");
    hv_puts(insn);
    hv_puts(" of the hypervisor's own VMCS at ");
    hv_put_hex(pa);
    hv_puts(" failed (a hypervisor bug)\n");
    hv_exit(HV_STATUS_TRAP);
}
static __attribute__((noinline)) void evmcs_vmcsswitch(struct Z_vmx_instance_t *i, u64 clear, u64 load) {
    if (clear != 0 && Z_vmxZ_vmclear(i, clear) != 0) vmcs_switch_bug("VMCLEAR", clear);
    if (Z_vmxZ_vmptrld(i, load) != 0) vmcs_switch_bug("VMPTRLD", load);
}
/* (Each instruction with one branch on its flags, CF or ZF: either VMfail.
 * It runs up to three times per nested round trip.) */
void Z_vmxZ_vmcsswitch(struct Z_vmx_instance_t *i, u64 clear, u64 load) {
    if (__builtin_expect(evmcs_mode(), 0)) {
        evmcs_vmcsswitch(i, clear, load);
        return;
    }
    if (clear != 0) __asm__ goto("vmclear %0\n\tjbe %l[bad_clear]" :: "m"(clear) : "cc", "memory" : bad_clear);
    __asm__ goto("vmptrld %0\n\tjbe %l[bad_load]" :: "m"(load) : "cc", "memory" : bad_load);
    return;
bad_clear:
    vmcs_switch_bug("VMCLEAR", clear);
bad_load:
    vmcs_switch_bug("VMPTRLD", load);
}

static __attribute__((noinline)) u64 evmcs_vmptrst(void) {
    return evmcs_cur[evmcs_cpu()];
}

u64 Z_vmxZ_vmptrst(struct Z_vmx_instance_t *i) {
    if (__builtin_expect(evmcs_mode(), 0)) return evmcs_vmptrst();
    u64 pa = 0;
    __asm__ volatile("vmptrst %0" : "=m"(pa) :: "memory");
    return pa;
}


/* A VMREAD/VMWRITE of the kernel's own failed: a hypervisor bug. Which
 * VMfail it was is told by the current-VMCS pointer (VMfailInvalid only
 * without one, 31.2). */
static _Noreturn __attribute__((noinline, cold)) void vmx_bug(const char *insn, u32 field) {
    u64 cur;
    __asm__ volatile("vmptrst %0" : "=m"(cur) :: "memory");
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

/* The hardware instructions alone (the field lists use them once they
 * chose). The flag output "=@ccbe" (CF or ZF: either VMfail) lets the
 * compiler branch on the flags directly. */
static inline u64 hw_vmread(u32 field) {
    u64 v;
    _Bool bad;
    __asm__ volatile("vmread %2, %0" : "=r"(v), "=@ccbe"(bad) : "r"((u64)field));
    if (__builtin_expect(bad, 0)) vmx_bug("VMREAD", field);
    return v;
}

/* The current eVMCS of this processor (VMREAD/VMWRITE without one is a
 * hypervisor bug, as VMfailInvalid is in hw_vmread). */
static inline u8 *evmcs_current(const char *insn, u32 field) {
    u64 pa = evmcs_cur[evmcs_cpu()];
    if (pa == EVMCS_NONE) evmcs_bug(insn, field, "no current eVMCS");
    return (u8 *)pa;
}

/* The map entry of a field (offset | clean mask << 16), and where its value
 * is: the high half of a 64-bit field is the upper 4 bytes (SDM 25.11.2). */
static inline u32 evmcs_entry(const char *insn, u32 field) {
    u32 e = (field & ~(u32)EVMCS_MAP_BITS) ? 0 : hv_evmcs_map[EVMCS_MAP_KEY(field)];
    if (e == 0) evmcs_bug(insn, field, "eVMCS v1 has no such field");
    return e;
}
/* Bytes of a field by its encoding's width (bits 14:13, Appendix B): 16-bit
 * 2, 64-bit 8 (its high half 4), 32-bit 4, natural width 8. */
static inline u32 evmcs_size(u32 field) {
    static const u8 bytes[4] = { 2, 8, 4, 8 };
    return (field & 1) ? 4 : bytes[(field >> 13) & 3];
}
static inline u64 evmcs_load(const u8 *p, u32 size) {
    if (size == 2) { u16 v; __builtin_memcpy(&v, p, 2); return v; }
    if (size == 4) { u32 v; __builtin_memcpy(&v, p, 4); return v; }
    u64 v; __builtin_memcpy(&v, p, 8); return v;
}

__attribute__((noinline, used, sysv_abi)) u64 hv_evmcs_read(u32 field) {
    u8 *e = evmcs_current("VMREAD", field);
    u32 m = evmcs_entry("VMREAD", field);
    u32 off = (m & 0xffff) + ((field & 1) ? 4 : 0);
    return evmcs_load(e + off, evmcs_size(field));
}

/* A VMWRITE stores the value truncated to the field's width (a VMWRITE
 * ignores the source operand's excess bits, SDM Vol. 3C 31 VMWRITE); a
 * changed value clears the clean bit(s) of its group. */
__attribute__((noinline, used, sysv_abi)) void hv_evmcs_write(u32 field, u64 v) {
    u8 *e = evmcs_current("VMWRITE", field);
    u32 m = evmcs_entry("VMWRITE", field);
    u32 size = evmcs_size(field);
    u8 *p = e + (m & 0xffff) + ((field & 1) ? 4 : 0);
    if (size < 8) v &= (1ull << (8 * size)) - 1;
    if (evmcs_load(p, size) == v) return;
    __builtin_memcpy(p, &v, size);
    u32 clean;
    __builtin_memcpy(&clean, e + EVMCS_CLEAN_FIELDS, 4);
    clean &= ~(m >> 16);
    __builtin_memcpy(e + EVMCS_CLEAN_FIELDS, &clean, 4);
}

/* The eVMCS accesses from the inlined imports go through these thunks,
 * which keep every register but the result: a plain call would make the
 * compiler keep fewer values in registers on the bare path too (7 ticks
 * per CPUID round trip measured). Field in EDI, value in RSI, result in
 * RAX; the C functions are SysV on both targets (as hv_vmenter). */
__asm__(".text\n"
        "hv_evmcs_read_thunk:\n"
        "    pushq %rcx; pushq %rdx; pushq %rsi; pushq %rdi\n"
        "    pushq %r8; pushq %r9; pushq %r10; pushq %r11; pushq %rbx\n"
        "    movq %rsp, %rbx; andq $-16, %rsp\n"  /* the ABI's alignment at the call */
        "    call hv_evmcs_read\n"
        "    movq %rbx, %rsp\n"
        "    popq %rbx; popq %r11; popq %r10; popq %r9; popq %r8\n"
        "    popq %rdi; popq %rsi; popq %rdx; popq %rcx\n"
        "    ret\n"
        "hv_evmcs_write_thunk:\n"
        "    pushq %rax; pushq %rcx; pushq %rdx; pushq %rsi; pushq %rdi\n"
        "    pushq %r8; pushq %r9; pushq %r10; pushq %r11; pushq %rbx\n"
        "    movq %rsp, %rbx; andq $-16, %rsp\n"
        "    call hv_evmcs_write\n"
        "    movq %rbx, %rsp\n"
        "    popq %rbx; popq %r11; popq %r10; popq %r9; popq %r8\n"
        "    popq %rdi; popq %rsi; popq %rdx; popq %rcx; popq %rax\n"
        "    ret\n");
#define EVMCS_XMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
    "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

/* These two run on every field access: the instruction, then JBE (CF or
 * ZF: either VMfail) to the report; the pair is the eVMCS patch site. (With
 * asm goto the output is valid on the fall-through path only, the one that
 * uses it.) */
u64 Z_vmxZ_vmread(struct Z_vmx_instance_t *i, u32 field) {
    u64 v;
    __asm__ goto("1: vmread %1, %0\n\t"
                 "jbe %l[bad]\n\t"
                 EVMCS_SITE(ev) : "=r"(v) : "r"((u64)field) : "cc" : bad, ev);
    return v;
bad:
    vmx_bug("VMREAD", field);
ev: {
        u64 r;
        __asm__ volatile("call hv_evmcs_read_thunk" : "=a"(r) : "D"((u64)field) : "memory", "cc", EVMCS_XMM_CLOBBERS);
        return r;
    }
}

void Z_vmxZ_vmwrite(struct Z_vmx_instance_t *i, u32 field, u64 v) {
    __asm__ goto("1: vmwrite %1, %0\n\t"
                 "jbe %l[bad]\n\t"
                 EVMCS_SITE(ev) :: "r"((u64)field), "rm"(v) : "cc" : bad, ev);
    return;
bad:
    vmx_bug("VMWRITE", field);
ev:
    __asm__ volatile("call hv_evmcs_write_thunk" :: "D"((u64)field), "S"(v) : "memory", "cc", EVMCS_XMM_CLOBBERS);
}

/* Field lists: copying many fields of the current VMCS to or from linear
 * memory in one call (kernel/hw/vmx.ts readfields/writefields). A list is
 * the block FL_* of vmx-consts.h (kernel/nested/fieldlist.ts builds them):
 * per entry k, the field encoding at FL_ENC + 2k, the byte offset of its
 * value (from `base`) at FL_OFF + 2k, and the mask of its width (16, 32 or
 * 64 bits: Appendix B) at FL_WMASK + 8k. Only entries whose bit is set in
 * `mask` are copied; lists have at most FL_MAX entries. */
#define FL_ENC_AT(l, k) (((const u16 *)((l) + FL_ENC))[k])
#define FL_OFF_AT(l, k) (((const u16 *)((l) + FL_OFF))[k])
#define FL_WMASK_AT(l, k) (((const u64 *)((l) + FL_WMASK))[k])

/* (__builtin_memcpy: -ffreestanding would make plain memcpy a call.) */
static u64 fl_load(const u8 *p, u64 wm) {
    if (wm == 0xffffull) { u16 v; __builtin_memcpy(&v, p, 2); return v; }
    if (wm == 0xffffffffull) { u32 v; __builtin_memcpy(&v, p, 4); return v; }
    u64 v; __builtin_memcpy(&v, p, 8); return v;
}
static void fl_store(u8 *p, u64 wm, u64 v) {
    if (wm == 0xffffull) { u16 x = (u16)v; __builtin_memcpy(p, &x, 2); return; }
    if (wm == 0xffffffffull) { u32 x = (u32)v; __builtin_memcpy(p, &x, 4); return; }
    __builtin_memcpy(p, &v, 8);
}
static inline u64 fl_selected(u32 n, u64 mask) {
    return n >= 64 ? mask : mask & ((1ull << n) - 1);
}
/* The eVMCS's value of field enc into the value at p of width mask wm;
 * true if it changed (the field-list and READ_LISTS loops on the eVMCS). */
static inline _Bool fl_evmcs_merge(u8 *p, u32 enc, u64 wm) {
    u64 v = hv_evmcs_read(enc);
    if (fl_load(p, wm) == v) return 0;
    fl_store(p, wm, v);
    return 1;
}

/* The field lists with the eVMCS in use: the same loops on its memory. */
static __attribute__((noinline)) u64 evmcs_readfields(u32 list, u32 n, u32 base, u64 mask) {
    if (n > FL_MAX) wasm_rt_trap(WASM_RT_TRAP_OOB);
    const u8 *l = hv_linear(list, FL_BYTES);
    u8 *b = hv_linear(base, 4096);
    u64 changed = 0;
    for (u64 m = fl_selected(n, mask); m; m &= m - 1) {
        u32 k = (u32)__builtin_ctzll(m);
        if (fl_evmcs_merge(b + FL_OFF_AT(l, k), FL_ENC_AT(l, k), FL_WMASK_AT(l, k))) changed |= 1ull << k;
    }
    return changed;
}
static __attribute__((noinline)) void evmcs_writefields(u32 list, u32 n, u32 base, u64 mask) {
    if (n > FL_MAX) wasm_rt_trap(WASM_RT_TRAP_OOB);
    const u8 *l = hv_linear(list, FL_BYTES);
    const u8 *b = hv_linear(base, 4096);
    for (u64 m = fl_selected(n, mask); m; m &= m - 1) {
        u32 k = (u32)__builtin_ctzll(m);
        hv_evmcs_write(FL_ENC_AT(l, k), fl_load(b + FL_OFF_AT(l, k), FL_WMASK_AT(l, k)));
    }
}

/* The hardware loops visit only the selected entries (lowest set bit of the
 * mask first, as the list's order) and move each value with one VMREAD or
 * VMWRITE: on the nested exit path every instruction of a loop body is
 * paid once per field, about a hundred fields per round trip, so the list
 * keeps encoding, offset and width mask apart (one load each, no decoding).
 * VMWRITE reads 8 bytes at the value whatever the field's width — the
 * processor ignores the bits above it (SDM Vol. 3C 31.3 VMWRITE) — and the
 * read loop compares and merges 8 bytes under the width's mask (VMREAD
 * zero-extends, so old ^ ((old ^ v) & mask) is the merged value), so
 * neither branches on the width; the bound checked is therefore base +
 * 4096 + 8 (an offset is below 4096). */
#define FL_SPAN (4096 + 8)
/* The value v (VMREAD, zero-extended) into the 8 bytes at p under the
 * width mask wm, and bit into the caller's `changed` if that changed them.
 * (A macro, v read first: as an inline function returning the outcome,
 * or with the VMREAD after the load, clang laid the READ_LISTS code out
 * with 15-107 more instructions per round trip.) */
#define FL_MERGE(p, v, wm, bit)                                                            \
    do {                                                                                   \
        u64 v_ = (v), old_;                                                                \
        __builtin_memcpy(&old_, (p), 8);                                                   \
        u64 d_ = (old_ ^ v_) & (wm);                                                       \
        if (d_) {                                                                          \
            old_ ^= d_;                                                                    \
            __builtin_memcpy((p), &old_, 8);                                               \
            changed |= (bit);                                                              \
        }                                                                                  \
    } while (0)
/* VMWRITE of field enc from the 8 bytes at p (a failure: vmx_bug). */
static inline void hw_vmwrite_at(u32 enc, const u8 *p) {
    _Bool bad;
    __asm__ volatile("vmwrite %2, %1" : "=@ccbe"(bad) : "r"((u64)enc), "m"(*(const u64 *)p));
    if (__builtin_expect(bad, 0)) vmx_bug("VMWRITE", enc);
}

/* VMREAD/VMWRITE of a field every VMX processor has (vmx-consts.h lists,
 * always = 1; table.mjs ALWAYS_PRESENT): it fails only when there is no
 * current VMCS (31.3; VMfailValid(12) is for a field the processor has
 * not got), and nothing between two accesses of one list changes the
 * current VMCS, so a list tests the flags of its first access (and of the
 * fields present only on some processors) and not of the others: one
 * instruction less per field, ~100 fields per nested round trip. */
static inline u64 hw_vmread_present(u32 field) {
    u64 v;
    __asm__ volatile("vmread %1, %0" : "=r"(v) : "r"((u64)field) : "cc");
    return v;
}

/* VMREAD each selected field into base + offset; returns the mask of the
 * entries whose value differed from what was there before. (The eVMCS
 * test comes first, and the hardware loop is the plain one: a patch site
 * in the loop made its code longer, 100 ticks per nested round trip.) */
u64 Z_vmxZ_readfields(struct Z_vmx_instance_t *i, u32 list, u32 n, u32 base, u64 mask) {
    if (__builtin_expect(evmcs_mode(), 0)) return evmcs_readfields(list, n, base, mask);
    if (n > FL_MAX) wasm_rt_trap(WASM_RT_TRAP_OOB);
    const u8 *l = hv_linear(list, FL_BYTES);
    u8 *b = hv_linear(base, FL_SPAN);
    u64 changed = 0;
    for (u64 m = fl_selected(n, mask); m; m &= m - 1) {
        u32 k = (u32)__builtin_ctzll(m);
        FL_MERGE(b + FL_OFF_AT(l, k), hw_vmread(FL_ENC_AT(l, k)), FL_WMASK_AT(l, k), 1ull << k);
    }
    return changed;
}

/* VMWRITE each selected field from base + offset. */
void Z_vmxZ_writefields(struct Z_vmx_instance_t *i, u32 list, u32 n, u32 base, u64 mask) {
    if (__builtin_expect(evmcs_mode(), 0)) {
        evmcs_writefields(list, n, base, mask);
        return;
    }
    if (n > FL_MAX) wasm_rt_trap(WASM_RT_TRAP_OOB);
    const u8 *l = hv_linear(list, FL_BYTES);
    const u8 *b = hv_linear(base, FL_SPAN);
    for (u64 m = fl_selected(n, mask); m; m &= m - 1) {
        u32 k = (u32)__builtin_ctzll(m);
        hw_vmwrite_at(FL_ENC_AT(l, k), b + FL_OFF_AT(l, k));
    }
}

/* vmx.readlist: the selected fields of a READ_LISTS list (vmx-consts.h
 * READLIST_*_FIELDS, from the field table) into the vmcs12 cache at base,
 * each with one VMREAD and a compare under its width's mask in
 * straight-line code; returns the mask of the entries whose value changed
 * (as readfields does for a list loop): four instructions a field of a
 * run selected whole (encoding, VMREAD, compare, branch), where the loop
 * takes about eight. */
/* The straight-line lists know each field's width (wm is a constant), so
 * the value is compared and stored at that width: one compare with memory
 * where the 8-byte merge of FL_MERGE takes a load, an XOR and a mask. */
#define RL_MERGE_AT(p, v, T, bit)                                                          \
    do {                                                                                   \
        T v_ = (T)(v), old_;                                                               \
        __builtin_memcpy(&old_, (p), sizeof(T));                                           \
        if (v_ != old_) {                                                                  \
            __builtin_memcpy((p), &v_, sizeof(T));                                         \
            changed |= (bit);                                                              \
        }                                                                                  \
    } while (0)
#define RL_MERGE(k, enc, off, wm, always)                                                  \
    {                                                                                      \
        u64 rv_ = (always) && (k) != 0 ? hw_vmread_present(enc) : hw_vmread(enc);         \
        if ((wm) == 0xffffull) RL_MERGE_AT(b + (off), rv_, u16, 1ull << (k));              \
        else if ((wm) == 0xffffffffull) RL_MERGE_AT(b + (off), rv_, u32, 1ull << (k));     \
        else RL_MERGE_AT(b + (off), rv_, u64, 1ull << (k));                                \
    }
#define RL_READ(k, enc, off, wm, always)                                                   \
    if ((mask >> (k)) & 1) RL_MERGE(k, enc, off, wm, always)
#define RL_EVMCS_READ(k, enc, off, wm, always)                                             \
    if (((mask >> (k)) & 1) && fl_evmcs_merge(b + (off), (enc), (wm))) changed |= 1ull << (k);
/* The mask is tested once per run of 8 entries; a run selected whole (the
 * hot guest fields, the shadow pull) is read without a test per entry. */
#define RL_RUN(first, full, RUN)                                                           \
    {                                                                                      \
        u64 g_ = (mask >> (first)) & 0xff;                                                 \
        if (g_ == (full)) { RUN(RL_MERGE) }                                                \
        else if (g_) { RUN(RL_READ) }                                                      \
    }
#define RL_EVMCS_RUN(first, full, RUN) if ((mask >> (first)) & 0xff) { RUN(RL_EVMCS_READ) }
#define RL_CASE(name, R)                                                                   \
    case READLIST_##name: READLIST_##name##_RUNS(R) break;
static __attribute__((noinline)) u64 evmcs_readlist(u32 id, u8 *b, u64 mask) {
    u64 changed = 0;
    switch (id) {
        RL_CASE(GUEST_SAVE, RL_EVMCS_RUN)
        RL_CASE(EXIT_INFO, RL_EVMCS_RUN)
        RL_CASE(SHADOW_RW, RL_EVMCS_RUN)
        default: wasm_rt_trap(WASM_RT_TRAP_OOB);
    }
    return changed;
}
u64 Z_vmxZ_readlist(struct Z_vmx_instance_t *i, u32 id, u32 base, u64 mask) {
    u8 *b = hv_linear(base, FL_SPAN);
    if (__builtin_expect(evmcs_mode(), 0)) return evmcs_readlist(id, b, mask);
    /* The first access tested (see hw_vmread_present): entry 0 of each
     * list, present everywhere, when selected; else a tested VMREAD of the
     * exit reason (also present everywhere) first. */
    if (__builtin_expect(!(mask & 1), 0) && mask != 0) (void)hw_vmread(VM_EXIT_REASON);
    u64 changed = 0;
    switch (id) {
        RL_CASE(GUEST_SAVE, RL_RUN)
        RL_CASE(EXIT_INFO, RL_RUN)
        RL_CASE(SHADOW_RW, RL_RUN)
        default: wasm_rt_trap(WASM_RT_TRAP_OOB);
    }
    return changed;
}

/* vmx.loadhoststate: the fields of HOSTLOAD_FIELDS (vmx-consts.h, from the
 * field table's HOST_LOAD) from base + 8 * slot, one VMWRITE each in
 * straight-line code: two instructions a field (encoding, VMWRITE; the
 * flags tested only where hw_vmread_present says), where the list loop
 * above takes eight (every reflected nested exit writes these ~50). An
 * optional field only when its bit is set in mask. */
#define HL_WRITE(k, enc, opt, always)                                                      \
    if (!(opt) || ((mask >> (k)) & 1)) {                                                   \
        if ((always) && (k) != 0)                                                          \
            __asm__ volatile("vmwrite %1, %0" :: "r"((u64)(enc)),                          \
                             "m"(*(const u64 *)(b + 8 * (k))) : "cc");                     \
        else                                                                               \
            __asm__ goto("vmwrite %1, %0\n\tjbe %l[bad]" :: "r"((u64)(enc)),              \
                         "m"(*(const u64 *)(b + 8 * (k))) : "cc" : bad);                   \
    }
/* Slot 0 is written at every call, tested: the list's first access. */
#define HL_FIRST_TESTED(k, enc, opt, always) _Static_assert((k) != 0 || !(opt), "HOST_LOAD slot 0 optional");
HOSTLOAD_FIELDS(HL_FIRST_TESTED)
#define HL_EVMCS_WRITE(k, enc, opt, always)                                                \
    if (!(opt) || ((mask >> (k)) & 1)) {                                                   \
        u64 v;                                                                             \
        __builtin_memcpy(&v, b + 8 * (k), 8);                                              \
        hv_evmcs_write(enc, v);                                                            \
    }
/* After a failure: the same writes again, each tested, to name the field. */
#define HL_FIND(k, enc, opt, always)                                                       \
    if (!(opt) || ((mask >> (k)) & 1)) hw_vmwrite_at(enc, b + 8 * (k));
static _Noreturn __attribute__((noinline, cold)) void loadhoststate_bug(const u8 *b, u64 mask) {
    HOSTLOAD_FIELDS(HL_FIND)
    vmx_bug("VMWRITE", 0);
}
static __attribute__((noinline)) void evmcs_loadhoststate(const u8 *b, u64 mask) {
    HOSTLOAD_FIELDS(HL_EVMCS_WRITE)
}
void Z_vmxZ_loadhoststate(struct Z_vmx_instance_t *i, u32 base, u64 mask) {
    const u8 *b = hv_linear(base, HOSTLOAD_COUNT * 8);
    if (__builtin_expect(evmcs_mode(), 0)) {
        evmcs_loadhoststate(b, mask);
        return;
    }
    HOSTLOAD_FIELDS(HL_WRITE)
    return;
bad:
    loadhoststate_bug(b, mask);
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
/* The same with an eVMCS current: HOST_RSP/HOST_RIP go into it. */
__attribute__((sysv_abi)) u32 hv_vmenter_evmcs(u64 *regs, u32 launched, u8 *evmcs);

/* VM entry with the eVMCS current on this processor; after a VM exit every
 * clean bit is set: L0 read the eVMCS for this entry, and the kernel's
 * VMWRITEs from now on clear the bits of what they change (TLFS "Clean
 * Fields"; KVM as L1 does the same after each exit). */
static __attribute__((sysv_abi)) u32 evmcs_enter(u64 *regs, u32 launched) {
    u8 *e = evmcs_current("VMLAUNCH/VMRESUME", 0);
    u32 r = hv_vmenter_evmcs(regs, launched, e);
    if (r == 0) {
        u32 clean;
        __builtin_memcpy(&clean, e + EVMCS_CLEAN_FIELDS, 4);
        clean |= EVMCS_CLEAN_ALL;
        __builtin_memcpy(e + EVMCS_CLEAN_FIELDS, &clean, 4);
    }
    return r;
}

/* The entry stub: hv_vmenter, or evmcs_enter from vmx.enlighten on (an
 * indirect call costs what a direct one does: no test on the way in). */
static u32 (*__attribute__((sysv_abi)) vmenter_fn)(u64 *, u32) = hv_vmenter; /* machine-wide */

/* With several kernel threads (boot/smp/threads.c) the kernel is another
 * thread's while this processor runs its guest: the entry lets go of the
 * kernel's lock and takes it again after the VM exit. The stub is swapped
 * in only while such threads live, so that one thread pays nothing for it. */
static u32 (*__attribute__((sysv_abi)) vmenter_unlocked)(u64 *, u32); /* machine-wide: the stub inside */
static __attribute__((sysv_abi)) u32 locked_enter(u64 *regs, u32 launched) {
    smp_unlock();
    u32 r = vmenter_unlocked(regs, launched);
    smp_lock();
    return r;
}
void hv_vmenter_locking(bool on) {
    if (on && vmenter_fn != locked_enter) {
        vmenter_unlocked = vmenter_fn;
        vmenter_fn = locked_enter;
    } else if (!on && vmenter_fn == locked_enter) {
        vmenter_fn = vmenter_unlocked;
    }
}

/* vmx.enlighten: this processor's VP assist page (enabled by the kernel
 * through HV_X64_MSR_VP_ASSIST_PAGE) and, from the first call on, the
 * eVMCS mode for every VMX instruction import. 0 if the page cannot be one
 * (not 4-KiB aligned, not identity-mapped, the hypervisor's own), else 1. */
u32 Z_vmxZ_enlighten(struct Z_vmx_instance_t *i, u64 assist) {
    if ((assist & 0xfff) != 0 || assist == 0 || assist >= hv_paging_top() || hv_range_protected(assist, 4096)) return 0;
    u32 c = evmcs_cpu();
    if (!evmcs_on) {
        for (u32 k = 0; k < EVMCS_MAX_CPUS; k++) evmcs_cur[k] = EVMCS_NONE;
        evmcs_on = 1;
        evmcs_patch();
        vmenter_fn = evmcs_enter;
    }
    evmcs_assist[c] = assist;
    return 1;
}

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
    u32 r = vmenter_fn((u64 *)p, *launched != 0);
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

#ifdef HV_UEFI
#pragma clang attribute pop
#endif
