// VMCS component encodings (SDM Vol. 3D Appendix B) and the rule for which
// of them a processor supports. A field that exists only with some feature
// ("This field exists only on processors that support the 1-setting of ...")
// is unsupported -- VMREAD/VMWRITE fail with error 12 -- when the capability
// MSRs do not offer that feature. Field width and type come from the
// encoding itself (SDM Vol. 3C 25.11.2, table 25-21):
//   bit 0      access type (0 full, 1 high: the upper 32 bits of a 64-bit field)
//   bits 9:1   index
//   bits 11:10 type (0 control, 1 VM-exit information (read-only), 2 guest state, 3 host state)
//   bit 12     reserved, must be 0
//   bits 14:13 width (0 16-bit, 1 64-bit, 2 32-bit, 3 natural width)
//   bits 31:15 reserved, must be 0

export interface VmxCaps {
  revision: number;
  regionSize: number;
  addr32: boolean; // VMX_BASIC[48]: regions below 4 GiB
  trueCtls: boolean; // VMX_BASIC[55]
  pin0: number; pin1: number; // allowed-0 settings (bits that must be 1), allowed-1 settings
  proc0: number; proc1: number;
  proc2_1: number; // 0 when "activate secondary controls" cannot be 1
  exit0: number; exit1: number;
  entry0: number; entry1: number;
  misc: bigint;
  cr0Fixed0: bigint; cr0Fixed1: bigint;
  cr4Fixed0: bigint; cr4Fixed1: bigint;
  eptVpidCap: bigint; // 0 when neither EPT nor VPID can be enabled
  vmfunc: bigint; // 0 when VM functions cannot be enabled
  maxPhysAddr: number; // CPUID.80000008H:EAX[7:0]
}

export type Width = 16 | 32 | 64 | 'natural';

export function fieldWidth(enc: number): Width {
  switch ((enc >>> 13) & 3) {
    case 0: return 16;
    case 1: return 64;
    case 2: return 32;
    default: return 'natural';
  }
}
export function fieldType(enc: number): 'control' | 'exit-info' | 'guest' | 'host' {
  return (['control', 'exit-info', 'guest', 'host'] as const)[(enc >>> 10) & 3];
}
export function isReadOnly(enc: number): boolean {
  return fieldType(enc) === 'exit-info';
}

type Cond = (c: VmxCaps) => boolean;
const always: Cond = () => true;
const pin = (bit: number): Cond => (c) => ((c.pin1 >>> bit) & 1) === 1;
const proc = (bit: number): Cond => (c) => ((c.proc1 >>> bit) & 1) === 1;
const p2 = (bit: number): Cond => (c) => ((c.proc2_1 >>> bit) & 1) === 1;
const exit = (bit: number): Cond => (c) => ((c.exit1 >>> bit) & 1) === 1;
const entry = (bit: number): Cond => (c) => ((c.entry1 >>> bit) & 1) === 1;
const any = (...cs: Cond[]): Cond => (c) => cs.some((f) => f(c));
const never: Cond = () => false; // features this model never offers (tertiary controls, CET, ...)

// CR3-target value i exists for i below the count in IA32_VMX_MISC bits
// 24:16 (A.6: 0..256); the encodings beyond the first four follow them
// consecutively, 6008H + 2i (B.4.1, note 1).
const cr3Count = (c: VmxCaps): number => Number((c.misc >> 16n) & 0x1ffn);
const cr3Target = (i: number): Cond => (c) => i < cr3Count(c);

const EPT = p2(1), VPID = p2(5), VID = p2(9), SHADOW = p2(14), PML = p2(17), VE = p2(18);
const TPR_SHADOW = proc(21);
const CET = any(entry(20), exit(28));

// [encoding, name, exists-when]. Only "full" encodings; the high access of a
// 64-bit field (encoding | 1) is derived.
const TABLE: [number, string, Cond][] = [
  // 16-bit control (B.1.1)
  [0x0000, 'VIRTUAL_PROCESSOR_ID', VPID],
  [0x0002, 'POSTED_INTR_NOTIFICATION_VECTOR', pin(7)],
  [0x0004, 'EPTP_INDEX', VE],
  [0x0006, 'HLAT_PREFIX_SIZE', never],
  [0x0008, 'LAST_PID_POINTER_INDEX', never],
  // 16-bit guest state (B.1.2)
  [0x0800, 'GUEST_ES_SELECTOR', always], [0x0802, 'GUEST_CS_SELECTOR', always],
  [0x0804, 'GUEST_SS_SELECTOR', always], [0x0806, 'GUEST_DS_SELECTOR', always],
  [0x0808, 'GUEST_FS_SELECTOR', always], [0x080a, 'GUEST_GS_SELECTOR', always],
  [0x080c, 'GUEST_LDTR_SELECTOR', always], [0x080e, 'GUEST_TR_SELECTOR', always],
  [0x0810, 'GUEST_INTERRUPT_STATUS', VID],
  [0x0812, 'GUEST_PML_INDEX', PML],
  [0x0814, 'GUEST_UINV', never],
  // 16-bit host state (B.1.3)
  [0x0c00, 'HOST_ES_SELECTOR', always], [0x0c02, 'HOST_CS_SELECTOR', always],
  [0x0c04, 'HOST_SS_SELECTOR', always], [0x0c06, 'HOST_DS_SELECTOR', always],
  [0x0c08, 'HOST_FS_SELECTOR', always], [0x0c0a, 'HOST_GS_SELECTOR', always],
  [0x0c0c, 'HOST_TR_SELECTOR', always],
  // 64-bit control (B.2.1)
  [0x2000, 'IO_BITMAP_A', always], [0x2002, 'IO_BITMAP_B', always],
  [0x2004, 'MSR_BITMAP', proc(28)],
  [0x2006, 'VM_EXIT_MSR_STORE_ADDR', always], [0x2008, 'VM_EXIT_MSR_LOAD_ADDR', always],
  [0x200a, 'VM_ENTRY_MSR_LOAD_ADDR', always],
  [0x200c, 'EXECUTIVE_VMCS_POINTER', always],
  [0x200e, 'PML_ADDRESS', PML],
  [0x2010, 'TSC_OFFSET', always],
  [0x2012, 'VIRTUAL_APIC_PAGE_ADDR', TPR_SHADOW],
  [0x2014, 'APIC_ACCESS_ADDR', p2(0)],
  [0x2016, 'POSTED_INTR_DESC_ADDR', pin(7)],
  [0x2018, 'VM_FUNCTION_CONTROLS', p2(13)],
  [0x201a, 'EPT_POINTER', EPT],
  [0x201c, 'EOI_EXIT_BITMAP0', VID], [0x201e, 'EOI_EXIT_BITMAP1', VID],
  [0x2020, 'EOI_EXIT_BITMAP2', VID], [0x2022, 'EOI_EXIT_BITMAP3', VID],
  [0x2024, 'EPTP_LIST_ADDRESS', (c) => p2(13)(c) && (c.vmfunc & 1n) === 1n],
  [0x2026, 'VMREAD_BITMAP', SHADOW], [0x2028, 'VMWRITE_BITMAP', SHADOW],
  [0x202a, 'VE_INFORMATION_ADDRESS', VE],
  [0x202c, 'XSS_EXIT_BITMAP', p2(20)],
  [0x202e, 'ENCLS_EXITING_BITMAP', p2(15)],
  [0x2030, 'SPP_TABLE_POINTER', p2(23)],
  [0x2032, 'TSC_MULTIPLIER', p2(25)],
  [0x2034, 'TERTIARY_VM_EXEC_CONTROL', proc(17)],
  [0x2036, 'ENCLV_EXITING_BITMAP', p2(28)],
  [0x2038, 'LOW_PASID_DIRECTORY', never], [0x203a, 'HIGH_PASID_DIRECTORY', never],
  [0x203c, 'SHARED_EPT_POINTER', never], [0x203e, 'PCONFIG_EXITING_BITMAP', never],
  [0x2040, 'HLAT_POINTER', never], [0x2042, 'PID_POINTER_TABLE', never],
  [0x2044, 'SECONDARY_VM_EXIT_CONTROLS', never],
  [0x204a, 'IA32_SPEC_CTRL_MASK', never], [0x204c, 'IA32_SPEC_CTRL_SHADOW', never],
  [0x2052, 'INJECTED_EVENT_DATA', never],
  // 64-bit read-only data (B.2.2)
  [0x2400, 'GUEST_PHYSICAL_ADDRESS', EPT],
  [0x2402, 'VM_EXIT_MSR_DATA', never], [0x2404, 'ORIGINAL_EVENT_DATA', never],
  // 64-bit guest state (B.2.3)
  [0x2800, 'VMCS_LINK_POINTER', always],
  [0x2802, 'GUEST_IA32_DEBUGCTL', always],
  [0x2804, 'GUEST_IA32_PAT', any(entry(14), exit(18))],
  [0x2806, 'GUEST_IA32_EFER', any(entry(15), exit(20))],
  [0x2808, 'GUEST_IA32_PERF_GLOBAL_CTRL', entry(13)],
  [0x280a, 'GUEST_PDPTE0', EPT], [0x280c, 'GUEST_PDPTE1', EPT],
  [0x280e, 'GUEST_PDPTE2', EPT], [0x2810, 'GUEST_PDPTE3', EPT],
  [0x2812, 'GUEST_IA32_BNDCFGS', any(entry(16), exit(23))],
  [0x2814, 'GUEST_IA32_RTIT_CTL', any(entry(18), exit(25))],
  [0x2816, 'GUEST_IA32_LBR_CTL', entry(21)],
  [0x2818, 'GUEST_IA32_PKRS', entry(22)],
  // FRED state (0x281a-0x2828 guest, 0x2c08-0x2c16 host): no FRED here
  ...[0x281a, 0x281c, 0x281e, 0x2820, 0x2822, 0x2824, 0x2826, 0x2828].map((e, i): [number, string, Cond] =>
    [e, `GUEST_IA32_FRED_${['CONFIG', 'RSP1', 'RSP2', 'RSP3', 'STKLVLS', 'SSP1', 'SSP2', 'SSP3'][i]}`, never]),
  // 64-bit host state (B.2.4)
  [0x2c00, 'HOST_IA32_PAT', exit(19)],
  [0x2c02, 'HOST_IA32_EFER', exit(21)],
  [0x2c04, 'HOST_IA32_PERF_GLOBAL_CTRL', exit(12)],
  [0x2c06, 'HOST_IA32_PKRS', exit(29)],
  ...[0x2c08, 0x2c0a, 0x2c0c, 0x2c0e, 0x2c10, 0x2c12, 0x2c14, 0x2c16].map((e, i): [number, string, Cond] =>
    [e, `HOST_IA32_FRED_${['CONFIG', 'RSP1', 'RSP2', 'RSP3', 'STKLVLS', 'SSP1', 'SSP2', 'SSP3'][i]}`, never]),
  // 32-bit control (B.3.1)
  [0x4000, 'PIN_BASED_VM_EXEC_CONTROL', always],
  [0x4002, 'CPU_BASED_VM_EXEC_CONTROL', always],
  [0x4004, 'EXCEPTION_BITMAP', always],
  [0x4006, 'PAGE_FAULT_ERROR_CODE_MASK', always], [0x4008, 'PAGE_FAULT_ERROR_CODE_MATCH', always],
  [0x400a, 'CR3_TARGET_COUNT', always],
  [0x400c, 'VM_EXIT_CONTROLS', always],
  [0x400e, 'VM_EXIT_MSR_STORE_COUNT', always], [0x4010, 'VM_EXIT_MSR_LOAD_COUNT', always],
  [0x4012, 'VM_ENTRY_CONTROLS', always],
  [0x4014, 'VM_ENTRY_MSR_LOAD_COUNT', always],
  [0x4016, 'VM_ENTRY_INTR_INFO_FIELD', always],
  [0x4018, 'VM_ENTRY_EXCEPTION_ERROR_CODE', always],
  [0x401a, 'VM_ENTRY_INSTRUCTION_LEN', always],
  [0x401c, 'TPR_THRESHOLD', TPR_SHADOW],
  [0x401e, 'SECONDARY_VM_EXEC_CONTROL', proc(31)],
  [0x4020, 'PLE_GAP', p2(10)], [0x4022, 'PLE_WINDOW', p2(10)],
  [0x4024, 'NOTIFY_WINDOW', never],
  [0x4026, 'SEAM_GUEST_KEYID', never],
  // 32-bit read-only data (B.3.2)
  [0x4400, 'VM_INSTRUCTION_ERROR', always],
  [0x4402, 'VM_EXIT_REASON', always],
  [0x4404, 'VM_EXIT_INTR_INFO', always], [0x4406, 'VM_EXIT_INTR_ERROR_CODE', always],
  [0x4408, 'IDT_VECTORING_INFO_FIELD', always], [0x440a, 'IDT_VECTORING_ERROR_CODE', always],
  [0x440c, 'VM_EXIT_INSTRUCTION_LEN', always], [0x440e, 'VMX_INSTRUCTION_INFO', always],
  // 32-bit guest state (B.3.3)
  [0x4800, 'GUEST_ES_LIMIT', always], [0x4802, 'GUEST_CS_LIMIT', always],
  [0x4804, 'GUEST_SS_LIMIT', always], [0x4806, 'GUEST_DS_LIMIT', always],
  [0x4808, 'GUEST_FS_LIMIT', always], [0x480a, 'GUEST_GS_LIMIT', always],
  [0x480c, 'GUEST_LDTR_LIMIT', always], [0x480e, 'GUEST_TR_LIMIT', always],
  [0x4810, 'GUEST_GDTR_LIMIT', always], [0x4812, 'GUEST_IDTR_LIMIT', always],
  [0x4814, 'GUEST_ES_AR_BYTES', always], [0x4816, 'GUEST_CS_AR_BYTES', always],
  [0x4818, 'GUEST_SS_AR_BYTES', always], [0x481a, 'GUEST_DS_AR_BYTES', always],
  [0x481c, 'GUEST_FS_AR_BYTES', always], [0x481e, 'GUEST_GS_AR_BYTES', always],
  [0x4820, 'GUEST_LDTR_AR_BYTES', always], [0x4822, 'GUEST_TR_AR_BYTES', always],
  [0x4824, 'GUEST_INTERRUPTIBILITY_INFO', always],
  [0x4826, 'GUEST_ACTIVITY_STATE', always],
  [0x4828, 'GUEST_SMBASE', always],
  [0x482a, 'GUEST_SYSENTER_CS', always],
  [0x482e, 'VMX_PREEMPTION_TIMER_VALUE', pin(6)],
  // 32-bit host state (B.3.4)
  [0x4c00, 'HOST_IA32_SYSENTER_CS', always],
  // natural-width control (B.4.1); CR3-target values by the count offered
  [0x6000, 'CR0_GUEST_HOST_MASK', always], [0x6002, 'CR4_GUEST_HOST_MASK', always],
  [0x6004, 'CR0_READ_SHADOW', always], [0x6006, 'CR4_READ_SHADOW', always],
  [0x6008, 'CR3_TARGET_VALUE0', cr3Target(0)], [0x600a, 'CR3_TARGET_VALUE1', cr3Target(1)],
  [0x600c, 'CR3_TARGET_VALUE2', cr3Target(2)], [0x600e, 'CR3_TARGET_VALUE3', cr3Target(3)],
  // natural-width read-only data (B.4.2)
  [0x6400, 'EXIT_QUALIFICATION', always],
  [0x6402, 'IO_RCX', always], [0x6404, 'IO_RSI', always], [0x6406, 'IO_RDI', always],
  [0x6408, 'IO_RIP', always],
  [0x640a, 'GUEST_LINEAR_ADDRESS', always],
  // natural-width guest state (B.4.3)
  [0x6800, 'GUEST_CR0', always], [0x6802, 'GUEST_CR3', always], [0x6804, 'GUEST_CR4', always],
  [0x6806, 'GUEST_ES_BASE', always], [0x6808, 'GUEST_CS_BASE', always],
  [0x680a, 'GUEST_SS_BASE', always], [0x680c, 'GUEST_DS_BASE', always],
  [0x680e, 'GUEST_FS_BASE', always], [0x6810, 'GUEST_GS_BASE', always],
  [0x6812, 'GUEST_LDTR_BASE', always], [0x6814, 'GUEST_TR_BASE', always],
  [0x6816, 'GUEST_GDTR_BASE', always], [0x6818, 'GUEST_IDTR_BASE', always],
  [0x681a, 'GUEST_DR7', always], [0x681c, 'GUEST_RSP', always], [0x681e, 'GUEST_RIP', always],
  [0x6820, 'GUEST_RFLAGS', always],
  [0x6822, 'GUEST_PENDING_DBG_EXCEPTIONS', always],
  [0x6824, 'GUEST_SYSENTER_ESP', always], [0x6826, 'GUEST_SYSENTER_EIP', always],
  [0x6828, 'GUEST_S_CET', CET], [0x682a, 'GUEST_SSP', CET],
  [0x682c, 'GUEST_INTR_SSP_TABLE_ADDR', CET],
  // natural-width host state (B.4.4)
  [0x6c00, 'HOST_CR0', always], [0x6c02, 'HOST_CR3', always], [0x6c04, 'HOST_CR4', always],
  [0x6c06, 'HOST_FS_BASE', always], [0x6c08, 'HOST_GS_BASE', always],
  [0x6c0a, 'HOST_TR_BASE', always], [0x6c0c, 'HOST_GDTR_BASE', always],
  [0x6c0e, 'HOST_IDTR_BASE', always],
  [0x6c10, 'HOST_IA32_SYSENTER_ESP', always], [0x6c12, 'HOST_IA32_SYSENTER_EIP', always],
  [0x6c14, 'HOST_RSP', always], [0x6c16, 'HOST_RIP', always],
  [0x6c18, 'HOST_S_CET', exit(28)], [0x6c1a, 'HOST_SSP', exit(28)],
  [0x6c1c, 'HOST_INTR_SSP_TABLE_ADDR', exit(28)],
];

// CR3-target values 4..255 (B.4.1 note 1): kept out of TABLE (and so out
// of FIELD_ENCODINGS, which random tests draw from), looked up all the same.
const CR3_BEYOND: [number, string, Cond][] = Array.from({ length: 252 }, (_, k) =>
  [0x6008 + 2 * (k + 4), `CR3_TARGET_VALUE${k + 4}`, cr3Target(k + 4)]);

const BY_ENC = new Map<number, { name: string; exists: Cond }>(
  [...TABLE, ...CR3_BEYOND].map(([e, name, exists]) => [e, { name, exists }]),
);
export const FIELD_ENCODINGS: readonly number[] = TABLE.map(([e]) => e);

// Does the encoding name a field on a processor with these capabilities?
export function fieldExists(enc: number, caps: VmxCaps): boolean {
  return lookupField(enc, caps) !== null;
}

export function fieldName(enc: number): string {
  const f = BY_ENC.get(enc & ~1);
  if (!f) return `0x${(enc >>> 0).toString(16)}`;
  return (enc & 1) === 1 ? `${f.name}_HIGH` : f.name;
}

export function fieldByName(name: string): number | undefined {
  for (const [e, n] of TABLE) if (n === name) return e;
  return undefined;
}

export interface FieldRef {
  base: number; // the full encoding (bit 0 clear): the storage key
  high: boolean; // access to bits 63:32 of a 64-bit field
  width: Width;
}

// The field an encoding names on this processor, or null when "the source
// operand does not correspond to any VMCS field" (VMfailValid 12).
export function lookupField(enc: number, caps: VmxCaps): FieldRef | null {
  if (enc < 0 || enc > 0x7fff || (enc & (1 << 12)) !== 0) return null; // bits 31:15 and 12 reserved
  const width = fieldWidth(enc);
  const high = (enc & 1) === 1;
  if (high && width !== 64) return null; // only 64-bit fields have a high access type
  const base = enc & ~1;
  const f = BY_ENC.get(base);
  if (!f || !f.exists(caps)) return null;
  return { base, high, width };
}

// Value as stored: truncated to the field width ("if the VMCS field is shorter
// than the operand, the high bits are ignored", VMWRITE description).
export function truncate(width: Width, v: bigint): bigint {
  switch (width) {
    case 16: return v & 0xffffn;
    case 32: return v & 0xffffffffn;
    default: return BigInt.asUintN(64, v); // 64-bit and natural width in 64-bit mode
  }
}

// The highest index any supported field uses (IA32_VMX_VMCS_ENUM bits 9:1).
export function highestIndex(caps: VmxCaps): number {
  let hi = 0;
  for (const [e, , exists] of [...TABLE, ...CR3_BEYOND]) if (exists(caps)) hi = Math.max(hi, (e >>> 1) & 0x1ff);
  return hi;
}
