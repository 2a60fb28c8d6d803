/* The minimal L1's view of VMX (Intel SDM Vol. 3C chapters 24-31, Vol. 3D
 * appendices A-C): capability MSRs, VMCS field encodings, control bits, exit
 * reasons, and the VMX instructions as C functions that report exactly what
 * happened (VMsucceed, VMfailInvalid, VMfailValid, or an exception).
 *
 * Everything runs in 32-bit protected mode: VMREAD/VMWRITE operands are 32
 * bits (SDM 30.3 VMREAD/VMWRITE "outside IA-32e mode"), natural-width fields
 * are 32 bits wide to us, and a 64-bit field is written as its "full"
 * encoding (bits 31:0, which clears bits 63:32) then its "high" encoding
 * (encoding | 1, bits 63:32) (SDM 24.11.2). */
#ifndef L1_VMX_H
#define L1_VMX_H

#include "guest.h"

/* ---- capability MSRs (SDM Vol. 3D Appendix A, Vol. 4 Table 2-2) ------------------ */
#define MSR_VMX_BASIC 0x480u
#define MSR_VMX_PINBASED 0x481u
#define MSR_VMX_PROCBASED 0x482u
#define MSR_VMX_EXIT 0x483u
#define MSR_VMX_ENTRY 0x484u
#define MSR_VMX_MISC 0x485u
#define MSR_VMX_CR0_FIXED0 0x486u
#define MSR_VMX_CR0_FIXED1 0x487u
#define MSR_VMX_CR4_FIXED0 0x488u
#define MSR_VMX_CR4_FIXED1 0x489u
#define MSR_VMX_VMCS_ENUM 0x48Au
#define MSR_VMX_PROCBASED2 0x48Bu
#define MSR_VMX_EPT_VPID_CAP 0x48Cu
#define MSR_VMX_TRUE_PINBASED 0x48Du
#define MSR_VMX_TRUE_PROCBASED 0x48Eu
#define MSR_VMX_TRUE_EXIT 0x48Fu
#define MSR_VMX_TRUE_ENTRY 0x490u
#define MSR_VMX_VMFUNC 0x491u
#define MSR_VMX_PROCBASED3 0x492u
#define MSR_VMX_EXIT2 0x493u

#define MSR_SYSENTER_ESP 0x175u
#define MSR_SYSENTER_EIP 0x176u
#define MSR_FS_BASE 0xC0000100u

#define FC_LOCK (1u << 0)
#define FC_VMX_OUTSIDE_SMX (1u << 2)

/* IA32_VMX_BASIC (A.1) */
#define BASIC_REVISION(b) ((u32)(b) & 0x7FFFFFFFu)
#define BASIC_REGION_SIZE(b) ((u32)((b) >> 32) & 0x1FFFu)
#define BASIC_PA32 (1ull << 48)
#define BASIC_MEMTYPE(b) ((u32)((b) >> 50) & 0xFu)
#define BASIC_TRUE_CTLS (1ull << 55)

/* IA32_VMX_MISC (A.6) */
#define MISC_ACTIVITY_HLT (1u << 6)
#define MISC_CR3_TARGETS(m) (((u32)(m) >> 16) & 0x1FFu)
#define MISC_VMWRITE_ANY (1u << 29)

/* IA32_VMX_EPT_VPID_CAP (A.10) */
#define EPTCAP_INVEPT (1ull << 20)
#define EPTCAP_INVEPT_SINGLE (1ull << 25)
#define EPTCAP_INVEPT_ALL (1ull << 26)
#define EPTCAP_INVVPID (1ull << 32)

/* ---- VM-execution, exit and entry controls (SDM 24.6-24.8) ------------------------- */
#define PIN_EXT_INT_EXITING (1u << 0)
#define PIN_NMI_EXITING (1u << 3)
#define PIN_DEFAULT1 ((1u << 1) | (1u << 2) | (1u << 4)) /* A.3.1 */

#define PROC_TSC_OFFSETTING (1u << 3)
#define PROC_HLT_EXITING (1u << 7)
#define PROC_RDTSC_EXITING (1u << 12)
#define PROC_CR3_LOAD_EXITING (1u << 15)
#define PROC_CR3_STORE_EXITING (1u << 16)
#define PROC_TERTIARY (1u << 17)
#define PROC_UNCOND_IO_EXITING (1u << 24)
#define PROC_USE_IO_BITMAPS (1u << 25)
#define PROC_USE_MSR_BITMAPS (1u << 28)
#define PROC_SECONDARY (1u << 31)
/* A.3.2: bits 1, 4-6, 8, 13-16 and 26 */
#define PROC_DEFAULT1 ((1u << 1) | (7u << 4) | (1u << 8) | (0xFu << 13) | (1u << 26))

#define PROC2_EPT (1u << 1)
#define PROC2_DESC_TABLE_EXITING (1u << 2)
#define PROC2_VPID (1u << 5)
#define PROC2_VMFUNC (1u << 13)
#define PROC2_VMCS_SHADOWING (1u << 14)

#define EXIT_HOST_ADDR_SPACE_SIZE (1u << 9)
#define EXIT_ACK_INTR_ON_EXIT (1u << 15)
#define EXIT_SECONDARY (1u << 31)
/* A.4: bits 0-8, 10, 11, 13, 14, 16, 17 */
#define EXIT_DEFAULT1 (0x1FFu | (1u << 10) | (1u << 11) | (1u << 13) | (1u << 14) | (1u << 16) | (1u << 17))

#define ENTRY_LOAD_DEBUG_CONTROLS (1u << 2)
#define ENTRY_IA32E_MODE_GUEST (1u << 9)
/* A.5: bits 0-8 and 12 */
#define ENTRY_DEFAULT1 (0x1FFu | (1u << 12))

/* ---- VMCS field encodings (SDM Vol. 3D Appendix B) --------------------------------- */
/* 16-bit */
#define F_VPID 0x0000u
#define F_GUEST_ES_SEL 0x0800u
#define F_GUEST_CS_SEL 0x0802u
#define F_GUEST_SS_SEL 0x0804u
#define F_GUEST_DS_SEL 0x0806u
#define F_GUEST_FS_SEL 0x0808u
#define F_GUEST_GS_SEL 0x080Au
#define F_GUEST_LDTR_SEL 0x080Cu
#define F_GUEST_TR_SEL 0x080Eu
#define F_HOST_ES_SEL 0x0C00u
#define F_HOST_CS_SEL 0x0C02u
#define F_HOST_SS_SEL 0x0C04u
#define F_HOST_DS_SEL 0x0C06u
#define F_HOST_FS_SEL 0x0C08u
#define F_HOST_GS_SEL 0x0C0Au
#define F_HOST_TR_SEL 0x0C0Cu
/* 64-bit (full; | 1 = high) */
#define F_IO_BITMAP_A 0x2000u
#define F_IO_BITMAP_B 0x2002u
#define F_MSR_BITMAP 0x2004u
#define F_EXIT_MSR_STORE_ADDR 0x2006u
#define F_EXIT_MSR_LOAD_ADDR 0x2008u
#define F_ENTRY_MSR_LOAD_ADDR 0x200Au
#define F_TSC_OFFSET 0x2010u
#define F_GUEST_PHYS_ADDR 0x2400u /* read-only */
#define F_VMCS_LINK_PTR 0x2800u
#define F_GUEST_DEBUGCTL 0x2802u
/* 32-bit */
#define F_PIN_CTLS 0x4000u
#define F_PROC_CTLS 0x4002u
#define F_EXCEPTION_BITMAP 0x4004u
#define F_PF_ERR_MASK 0x4006u
#define F_PF_ERR_MATCH 0x4008u
#define F_CR3_TARGET_COUNT 0x400Au
#define F_EXIT_CTLS 0x400Cu
#define F_EXIT_MSR_STORE_COUNT 0x400Eu
#define F_EXIT_MSR_LOAD_COUNT 0x4010u
#define F_ENTRY_CTLS 0x4012u
#define F_ENTRY_MSR_LOAD_COUNT 0x4014u
#define F_ENTRY_INTR_INFO 0x4016u
#define F_ENTRY_EXC_ERROR 0x4018u
#define F_ENTRY_INSN_LEN 0x401Au
#define F_PROC2_CTLS 0x401Eu
#define F_VM_INSTRUCTION_ERROR 0x4400u /* read-only from here ... */
#define F_EXIT_REASON 0x4402u
#define F_EXIT_INTR_INFO 0x4404u
#define F_EXIT_INTR_ERROR 0x4406u
#define F_IDT_VECTORING_INFO 0x4408u
#define F_IDT_VECTORING_ERROR 0x440Au
#define F_EXIT_INSN_LEN 0x440Cu
#define F_EXIT_INSN_INFO 0x440Eu /* ... to here */
#define F_GUEST_ES_LIMIT 0x4800u
#define F_GUEST_CS_LIMIT 0x4802u
#define F_GUEST_SS_LIMIT 0x4804u
#define F_GUEST_DS_LIMIT 0x4806u
#define F_GUEST_FS_LIMIT 0x4808u
#define F_GUEST_GS_LIMIT 0x480Au
#define F_GUEST_LDTR_LIMIT 0x480Cu
#define F_GUEST_TR_LIMIT 0x480Eu
#define F_GUEST_GDTR_LIMIT 0x4810u
#define F_GUEST_IDTR_LIMIT 0x4812u
#define F_GUEST_ES_AR 0x4814u
#define F_GUEST_CS_AR 0x4816u
#define F_GUEST_SS_AR 0x4818u
#define F_GUEST_DS_AR 0x481Au
#define F_GUEST_FS_AR 0x481Cu
#define F_GUEST_GS_AR 0x481Eu
#define F_GUEST_LDTR_AR 0x4820u
#define F_GUEST_TR_AR 0x4822u
#define F_GUEST_INTERRUPTIBILITY 0x4824u
#define F_GUEST_ACTIVITY 0x4826u
#define F_GUEST_SYSENTER_CS 0x482Au
#define F_HOST_SYSENTER_CS 0x4C00u
/* natural width */
#define F_CR0_MASK 0x6000u
#define F_CR4_MASK 0x6002u
#define F_CR0_SHADOW 0x6004u
#define F_CR4_SHADOW 0x6006u
#define F_EXIT_QUALIFICATION 0x6400u /* read-only */
#define F_GUEST_LINEAR_ADDR 0x640Au  /* read-only */
#define F_GUEST_CR0 0x6800u
#define F_GUEST_CR3 0x6802u
#define F_GUEST_CR4 0x6804u
#define F_GUEST_ES_BASE 0x6806u
#define F_GUEST_CS_BASE 0x6808u
#define F_GUEST_SS_BASE 0x680Au
#define F_GUEST_DS_BASE 0x680Cu
#define F_GUEST_FS_BASE 0x680Eu
#define F_GUEST_GS_BASE 0x6810u
#define F_GUEST_LDTR_BASE 0x6812u
#define F_GUEST_TR_BASE 0x6814u
#define F_GUEST_GDTR_BASE 0x6816u
#define F_GUEST_IDTR_BASE 0x6818u
#define F_GUEST_DR7 0x681Au
#define F_GUEST_RSP 0x681Cu
#define F_GUEST_RIP 0x681Eu
#define F_GUEST_RFLAGS 0x6820u
#define F_GUEST_PENDING_DBG 0x6822u
#define F_GUEST_SYSENTER_ESP 0x6824u
#define F_GUEST_SYSENTER_EIP 0x6826u
#define F_HOST_CR0 0x6C00u
#define F_HOST_CR3 0x6C02u
#define F_HOST_CR4 0x6C04u
#define F_HOST_FS_BASE 0x6C06u
#define F_HOST_GS_BASE 0x6C08u
#define F_HOST_TR_BASE 0x6C0Au
#define F_HOST_GDTR_BASE 0x6C0Cu
#define F_HOST_IDTR_BASE 0x6C0Eu
#define F_HOST_SYSENTER_ESP 0x6C10u
#define F_HOST_SYSENTER_EIP 0x6C12u
#define F_HOST_RSP 0x6C14u
#define F_HOST_RIP 0x6C16u

/* ---- VM-instruction error numbers (SDM 30.4) ---------------------------------------- */
#define VMERR_VMCLEAR_BAD_ADDR 2
#define VMERR_VMCLEAR_VMXON_PTR 3
#define VMERR_VMLAUNCH_NOT_CLEAR 4
#define VMERR_VMRESUME_NOT_LAUNCHED 5
#define VMERR_ENTRY_BAD_CONTROL 7
#define VMERR_ENTRY_BAD_HOST 8
#define VMERR_VMPTRLD_BAD_ADDR 9
#define VMERR_VMPTRLD_VMXON_PTR 10
#define VMERR_VMPTRLD_BAD_REVISION 11
#define VMERR_UNSUPPORTED_FIELD 12
#define VMERR_READ_ONLY_FIELD 13
#define VMERR_VMXON_IN_ROOT 15
#define VMERR_ENTRY_MOV_SS 26
#define VMERR_INVEPT_INVVPID_OPERAND 28

/* ---- basic exit reasons (SDM Vol. 3D Appendix C) ------------------------------------ */
#define EXIT_EXCEPTION 0
#define EXIT_EXTERNAL_INTERRUPT 1
#define EXIT_TRIPLE_FAULT 2
#define EXIT_CPUID 10
#define EXIT_HLT 12
#define EXIT_RDTSC 16
#define EXIT_VMCALL 18
#define EXIT_VMPTRST 22
#define EXIT_VMREAD 23
#define EXIT_CR_ACCESS 28
#define EXIT_IO 30
#define EXIT_RDMSR 31
#define EXIT_WRMSR 32
#define EXIT_BAD_GUEST_STATE 33
#define EXIT_MSR_LOADING 34
#define EXIT_GDTR_IDTR 46
#define EXIT_FAILED_ENTRY (1u << 31)

/* Interruption information (SDM 24.9.2 Table 24-15, 24.8.3) */
#define INTR_VALID (1u << 31)
#define INTR_ERROR_VALID (1u << 11)
#define INTR_TYPE_HW_EXCEPTION (3u << 8)
#define INTR_TYPE_SW_EXCEPTION (6u << 8)

/* Access rights (SDM 24.4.1 Table 24-2) */
#define AR_CODE32 0xC09Bu /* G, D/B, P, S, type 11 (execute/read, accessed) */
#define AR_DATA32 0xC093u /* G, D/B, P, S, type 3 (read/write, accessed) */
#define AR_TSS32_BUSY 0x008Bu
#define AR_UNUSABLE (1u << 16)

/* ---- outcomes of a VMX instruction (SDM 30.2) ----------------------------------------
 * VMsucceed clears CF, PF, AF, ZF, SF, OF; VMfailInvalid sets CF and clears
 * the others; VMfailValid sets ZF and clears the others. The wrappers set all
 * six before the instruction, so a flag the instruction forgot to clear shows
 * up as VM_BADFLAGS. An exception is VM_EXC | vector. */
#define FL_ARITH 0x8D5u /* CF PF AF ZF SF OF */
#define FL_CF 0x001u
#define FL_ZF 0x040u
#define VM_OK 0u
#define VM_FAIL_INVALID 1u
#define VM_FAIL_VALID 2u
#define VM_BADFLAGS 3u
#define VM_EXC 0x100u
#define VM_UD (VM_EXC | 6)
#define VM_GP (VM_EXC | 13)
#define VM_PF (VM_EXC | 14)
extern u32 vm_last_flags;          /* EFLAGS right after the last wrapped instruction */
u32 vm_outcome(u32 eflags);
const char *vm_str(u32 outcome);   /* "VMsucceed", "VMfailValid", "#UD", ... */

u32 vmxon(u64 pa);
u32 vmxoff(void);
u32 vmclear(u64 pa);
u32 vmptrld(u64 pa);
u32 vmptrld_from(const volatile u64 *operand); /* operand may be unmapped (#PF tests) */
u32 vmptrst(u64 *out);
u32 vmread(u32 field, u32 *val);            /* register destination */
u32 vmwrite(u32 field, u32 val);            /* register source */
u32 vmread_mem(u32 field, volatile u32 *dst);      /* memory destination (ModRM [reg]) */
u32 vmwrite_mem(u32 field, const volatile u32 *src); /* memory source */
u32 invept(u32 type, const void *desc);
u32 invvpid(u32 type, const void *desc);
/* The same instructions with other addressing forms and segments (vmx.c). */
u32 vmread_sib(u32 field, u32 *dst);        /* [base + index*8 + disp32] */
u32 vmwrite_abs(u32 field, u32 val);        /* [disp32], no base or index */
u32 vmptrst_seg(u16 sel, u32 offset);       /* [sel:offset] through FS */
u32 vmptrst_addr16(u16 bx, u16 si);         /* 16-bit addressing: [bx+si] */
u32 vmread_seg(u16 sel, u32 offset, u32 field);
u32 vmlaunch_after_mov_ss(void);           /* MOV SS, then VMLAUNCH at once */

/* Field access for set-up code: a failure is counted in vmcs_errors with the
 * first failing field remembered, and reported by the case that set up. */
extern u32 vmcs_errors, vmcs_error_field, vmcs_error_outcome;
void vw(u32 field, u32 val);
void vw64(u32 field, u64 val);
u32 vr(u32 field);
u64 vr64(u32 field);
u32 vm_error(void); /* VMREAD of the VM-instruction error field (0xFFFFFFFF if that fails) */

/* ---- the VM entry and exit path (run.asm) ----------------------------------------- */
struct l2regs { u32 eax, ebx, ecx, edx, esi, edi, ebp; };
/* Host state as the processor left it on the last VM exit, captured by the
 * exit stub before anything changes it (SDM 27.5). */
struct exit_snap {
    u32 esp, eflags, cr0, cr3, cr4, dr7;
    u32 cs, ss, ds, es, fs, gs, tr;
    u32 fs0, gs0;                 /* dwords at FS:0 and GS:0 (FS/GS base checks) */
    u16 pad0, gdt_limit; u32 gdt_base;
    u16 pad1, idt_limit; u32 idt_base;
    u32 count;                    /* exits (and failed entries) seen */
};
_Static_assert(sizeof(struct exit_snap) == 80, "run.asm uses these offsets");
extern struct exit_snap exit_snap;
extern u32 run_host_rsp; /* the HOST_RSP the last vmx_run wrote */
/* Writes HOST_RSP/HOST_RIP, loads the guest GPRs from *regs and executes
 * VMLAUNCH (launch != 0) or VMRESUME. Returns 0 after a VM exit (or a VM-entry
 * failure that loads host state), with the guest GPRs stored back into *regs;
 * otherwise 0x80000000 | EFLAGS after the instruction (VMfail), with
 * exc.vector set if it raised an exception. */
u32 vmx_run(struct l2regs *regs, u32 launch);
/* The same for an L1 whose entries use the enlightened VMCS at evmcs (evmcs.c): HOST_RSP is
 * stored into the eVMCS (its HOST_POINTER clean bit cleared when it changes), not VMWRITten. */
u32 vmx_run_evmcs(struct l2regs *regs, u32 launch, void *evmcs);
void vmx_exit_entry(void);

/* L2 code (run.asm): each snippet starts at its label; L1 puts it in GUEST_RIP. */
extern char l2_vmfunc[], l2_vmfunc_insn[], l2_vmfunc_eax[], l2_vmfunc_loop[], l2_write[], l2_vmcall[], l2_cpuid[], l2_hlt[], l2_rdtsc[], l2_in_imm[], l2_out_dx_ax[], l2_in_dx_eax[],
    l2_in_dx_ax[], l2_scratch[], l2_rdmsr[], l2_wrmsr[], l2_ud2[], l2_int3[], l2_load_ss[], l2_pf_read[],
    l2_triple[], l2_mov_cr3[], l2_read_cr0[], l2_clear_ts[], l2_clear_ts_write[], l2_sgdt[], l2_vmptrst[],
    l2_vmptrst_ebp[], l2_vmread[], l2_spin[], l2_irq40[], l2_esp_vmcall[], l2_end[];
extern const u32 l2_exc_table[32];
/* What L2's own exception handlers saw (run.asm). */
struct l2_seen { u32 vector, eip, error, cs, eflags, cr2, count; };
extern volatile struct l2_seen l2_seen;
extern volatile u32 l2_esp; /* L2's ESP as l2_esp_vmcall saw it */

#endif
