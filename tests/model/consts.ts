// The few architectural numbers the model itself needs. Written from the
// Intel SDM (Vol. 4 MSR tables, Vol. 3C ch. 31.4 VM-instruction error numbers,
// Vol. 3D Appendix A capability MSRs, Appendix B field encodings). The
// project-wide generated table (tests/model/vmx-consts.ts) is for the tests;
// the model keeps its own copy so that a mistake in one is caught by the other.

// ---- MSRs (SDM Vol. 4, table 2-2) ------------------------------------------
export const MSR = {
  IA32_TSC: 0x10,
  IA32_APIC_BASE: 0x1b,
  IA32_FEATURE_CONTROL: 0x3a,
  IA32_TSC_ADJUST: 0x3b,
  IA32_SPEC_CTRL: 0x48,
  IA32_PRED_CMD: 0x49,
  IA32_BIOS_SIGN_ID: 0x8b,
  IA32_MTRRCAP: 0xfe,
  IA32_ARCH_CAPABILITIES: 0x10a,
  IA32_SYSENTER_CS: 0x174,
  IA32_SYSENTER_ESP: 0x175,
  IA32_SYSENTER_EIP: 0x176,
  IA32_MISC_ENABLE: 0x1a0,
  IA32_DEBUGCTL: 0x1d9,
  IA32_MTRR_PHYSBASE0: 0x200, // .. 0x20f: 8 variable-range pairs
  IA32_MTRR_FIX64K_00000: 0x250,
  IA32_MTRR_FIX16K_80000: 0x258,
  IA32_MTRR_FIX16K_A0000: 0x259,
  IA32_MTRR_FIX4K_C0000: 0x268, // .. 0x26f
  IA32_PAT: 0x277,
  IA32_MTRR_DEF_TYPE: 0x2ff,
  IA32_PERF_GLOBAL_CTRL: 0x38f,
  IA32_VMX_BASIC: 0x480,
  IA32_VMX_PINBASED_CTLS: 0x481,
  IA32_VMX_PROCBASED_CTLS: 0x482,
  IA32_VMX_EXIT_CTLS: 0x483,
  IA32_VMX_ENTRY_CTLS: 0x484,
  IA32_VMX_MISC: 0x485,
  IA32_VMX_CR0_FIXED0: 0x486,
  IA32_VMX_CR0_FIXED1: 0x487,
  IA32_VMX_CR4_FIXED0: 0x488,
  IA32_VMX_CR4_FIXED1: 0x489,
  IA32_VMX_VMCS_ENUM: 0x48a,
  IA32_VMX_PROCBASED_CTLS2: 0x48b,
  IA32_VMX_EPT_VPID_CAP: 0x48c,
  IA32_VMX_TRUE_PINBASED_CTLS: 0x48d,
  IA32_VMX_TRUE_PROCBASED_CTLS: 0x48e,
  IA32_VMX_TRUE_EXIT_CTLS: 0x48f,
  IA32_VMX_TRUE_ENTRY_CTLS: 0x490,
  IA32_VMX_VMFUNC: 0x491,
  IA32_VMX_PROCBASED_CTLS3: 0x492,
  IA32_VMX_EXIT_CTLS2: 0x493,
  IA32_TSC_DEADLINE: 0x6e0,
  IA32_XSS: 0xda0,
  IA32_EFER: 0xc0000080,
  IA32_STAR: 0xc0000081,
  IA32_LSTAR: 0xc0000082,
  IA32_CSTAR: 0xc0000083,
  IA32_FMASK: 0xc0000084,
  IA32_FS_BASE: 0xc0000100,
  IA32_GS_BASE: 0xc0000101,
  IA32_KERNEL_GS_BASE: 0xc0000102,
  IA32_TSC_AUX: 0xc0000103,
} as const;

export const MSR_NAMES: Map<number, string> = new Map(
  Object.entries(MSR).map(([k, v]) => [v as number, k]),
);

export function msrName(n: number): string {
  const name = MSR_NAMES.get(n);
  return name ? `0x${n.toString(16)} (${name})` : `0x${n.toString(16)}`;
}

// IA32_FEATURE_CONTROL bits (SDM Vol. 3C 24.7).
export const FC_LOCK = 1n << 0n;
export const FC_VMX_IN_SMX = 1n << 1n;
export const FC_VMX_OUTSIDE_SMX = 1n << 2n;

// ---- control registers (SDM Vol. 3A 2.5) -----------------------------------
export const CR0 = { PE: 1n, MP: 2n, EM: 4n, TS: 8n, ET: 0x10n, NE: 0x20n, WP: 1n << 16n,
  AM: 1n << 18n, NW: 1n << 29n, CD: 1n << 30n, PG: 1n << 31n } as const;
export const CR0_DEFINED = 0xe005003fn; // PE MP EM TS ET NE WP AM NW CD PG
export const CR4 = { VME: 1n, PVI: 2n, TSD: 4n, DE: 8n, PSE: 0x10n, PAE: 0x20n, MCE: 0x40n,
  PGE: 0x80n, PCE: 0x100n, OSFXSR: 0x200n, OSXMMEXCPT: 0x400n, UMIP: 0x800n, LA57: 0x1000n,
  VMXE: 0x2000n, SMXE: 0x4000n, FSGSBASE: 0x10000n, PCIDE: 0x20000n, OSXSAVE: 0x40000n,
  SMEP: 0x100000n, SMAP: 0x200000n, PKE: 0x400000n, CET: 0x800000n, PKS: 0x1000000n } as const;
export const EFER = { SCE: 1n, LME: 1n << 8n, LMA: 1n << 10n, NXE: 1n << 11n } as const;

// ---- VMX instruction results (import contract, kernel/hw/vmx.ts) -----------
export const VMX_SUCCEED = 0;
export const VMX_FAIL_INVALID = 1;
export const VMX_FAIL_VALID = 2;

// VM-instruction error numbers (SDM Vol. 3C 31.4).
export const VMXERR = {
  VMCALL_IN_ROOT: 1,
  VMCLEAR_INVALID_ADDRESS: 2,
  VMCLEAR_VMXON_POINTER: 3,
  VMLAUNCH_NONCLEAR_VMCS: 4,
  VMRESUME_NONLAUNCHED_VMCS: 5,
  VMRESUME_AFTER_VMXOFF: 6,
  ENTRY_INVALID_CONTROL_FIELD: 7,
  ENTRY_INVALID_HOST_STATE_FIELD: 8,
  VMPTRLD_INVALID_ADDRESS: 9,
  VMPTRLD_VMXON_POINTER: 10,
  VMPTRLD_INCORRECT_REVISION_ID: 11,
  UNSUPPORTED_VMCS_COMPONENT: 12,
  VMWRITE_READ_ONLY_COMPONENT: 13,
  VMXON_IN_ROOT: 15,
  ENTRY_EVENTS_BLOCKED_BY_MOV_SS: 26,
  INVALID_OPERAND_INVEPT_INVVPID: 28,
} as const;

// VMCS fields the model itself touches (SDM Vol. 3D Appendix B).
export const VM_INSTRUCTION_ERROR = 0x4400;
export const EXIT_REASON = 0x4402;
export const EXIT_QUALIFICATION = 0x6400;

// VMX control bits used by the model's rules (SDM Vol. 3C 25.6, 25.7, 25.8).
export const PROC_ACTIVATE_SECONDARY = 1 << 31;
export const PROC_ACTIVATE_TERTIARY = 1 << 17;
export const PROC2 = {
  VIRTUALIZE_APIC_ACCESSES: 1 << 0, ENABLE_EPT: 1 << 1, DESCRIPTOR_TABLE_EXITING: 1 << 2,
  ENABLE_RDTSCP: 1 << 3, VIRTUALIZE_X2APIC: 1 << 4, ENABLE_VPID: 1 << 5, WBINVD_EXITING: 1 << 6,
  UNRESTRICTED_GUEST: 1 << 7, APIC_REGISTER_VIRT: 1 << 8, VIRTUAL_INTERRUPT_DELIVERY: 1 << 9,
  PAUSE_LOOP_EXITING: 1 << 10, RDRAND_EXITING: 1 << 11, ENABLE_INVPCID: 1 << 12,
  ENABLE_VMFUNC: 1 << 13, VMCS_SHADOWING: 1 << 14, ENCLS_EXITING: 1 << 15,
  RDSEED_EXITING: 1 << 16, ENABLE_PML: 1 << 17, EPT_VIOLATION_VE: 1 << 18,
  CONCEAL_VMX_FROM_PT: 1 << 19, ENABLE_XSAVES: 1 << 20, MODE_BASED_EPT_EXEC: 1 << 22,
  SUB_PAGE_WRITE_PERMISSIONS: 1 << 23, PT_USES_GUEST_PHYSICAL: 1 << 24, TSC_SCALING: 1 << 25,
  USER_WAIT_PAUSE: 1 << 26, ENCLV_EXITING: 1 << 28,
} as const;

export function hex(v: bigint | number): string {
  return `0x${(typeof v === 'bigint' ? BigInt.asUintN(64, v) : v < 0 ? v >>> 0 : v).toString(16)}`;
}
