// What the scripted 64-bit L1s of tests/unit/evmcs.test.ts and snapshot-evmcs.test.ts share:
// L1's memory reached through the EPT L0 built for it, the enlightened VMCS read and written
// by VMCS encoding in the layout the TLFS gives (tools/vmx/table.mjs EVMCS, generated into
// tests/model/vmx-consts.ts), and L1's VMX instructions and MSR accesses as exits the model
// produces (guest-script.ts). Each test file keeps its own context: it says where L1's EPT
// is and whether L1 runs (the two files learn both differently).
import * as assert from 'uvu/assert';
import type { Machine } from '../model/index.ts';
import { fieldName } from '../model/vmcs-fields.ts';
import * as V from '../model/vmx-consts.ts';
import { RAX, RCX, RDX, RBX, type Exit } from './guest-script.ts';

export interface L1Ctx {
  m: Machine;
  l1Root(): bigint; // L1's EPT PML4 (host-physical)
  l1Runs(): boolean; // vmcs01 is what runs (L1), not vmcs02 (L2)
}
export type Script = Generator<Exit, void, void>;

export const B = (v: number | bigint): bigint => (typeof v === 'number' ? BigInt(v >>> 0) : BigInt.asUintN(64, v));
export const ALL1 = (1n << 64n) - 1n;
export const ADDR = 0x000ffffffffff000n;
const LARGE = 1n << 7n;

// ---- L1's memory (both files use this layout; page 0x23000 is each file's own) ----------------
export const L1_PML4 = 0x10000, L1_PDPT = 0x11000, L1_PD = 0x12000;
export const VMXON_REGION = 0x20000, EVMCS = 0x21000, ASSIST = 0x22000;
export const DATA = 0x30000;
export const HOST_RIP12 = 0x180000n;
export const L2_RIP = 0x401000n;
export const OUTSIDE = 0x7ff000000000n; // far above L1's RAM

export const field = (c: L1Ctx, enc: number, vmcs?: bigint) => c.m.vmx.field(enc, vmcs);

export function l1hpa(c: L1Ctx, gpa: number | bigint): number {
  let table = c.l1Root();
  const g = BigInt(gpa);
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = c.m.phys.read64(Number(table + ((g >> shift) & 511n) * 8n));
    if ((e & 7n) === 0n) throw new Error(`test bug: L1-physical 0x${g.toString(16)} not mapped`);
    if (level === 1 || (e & LARGE) !== 0n) return Number((e & ADDR & ~((1n << shift) - 1n)) | (g & ((1n << shift) - 1n)));
    table = e & ADDR;
  }
  throw new Error('unreachable');
}
export const w64 = (c: L1Ctx, gpa: number | bigint, v: bigint) => c.m.phys.write64(l1hpa(c, gpa), B(v));
export const w32 = (c: L1Ctx, gpa: number | bigint, v: number) => c.m.phys.write32(l1hpa(c, gpa), v);
export const r32 = (c: L1Ctx, gpa: number | bigint) => c.m.phys.read32(l1hpa(c, gpa));

// ---- the eVMCS at EVMCS, by VMCS encoding ---------------------------------------------------
const BY_ENC = new Map(V.EVMCS_FIELDS.filter((f) => f.encoding !== null).map((f) => [f.encoding!, f]));
export function evField(enc: number) {
  const f = BY_ENC.get(enc);
  if (!f) throw new Error(`test bug: ${fieldName(enc)} is not in the eVMCS`);
  return f;
}
export function evWrite(c: L1Ctx, enc: number, v: bigint): void {
  const f = evField(enc);
  const a = l1hpa(c, EVMCS + f.offset);
  if (f.size === 8) c.m.phys.write64(a, B(v));
  else if (f.size === 4) c.m.phys.write32(a, Number(v & 0xffffffffn));
  else c.m.phys.write(a, new Uint8Array([Number(v & 0xffn), Number((v >> 8n) & 0xffn)]));
}
export function evRead(c: L1Ctx, enc: number): bigint {
  const f = evField(enc);
  const a = l1hpa(c, EVMCS + f.offset);
  if (f.size === 8) return c.m.phys.read64(a);
  if (f.size === 4) return BigInt(c.m.phys.read32(a));
  const b = c.m.phys.read(a, 2);
  return BigInt(b[0] | (b[1] << 8));
}
export const clean = (c: L1Ctx) => r32(c, EVMCS + V.EVMCS_CLEAN_FIELDS);
export const setClean = (c: L1Ctx, v: number) => w32(c, EVMCS + V.EVMCS_CLEAN_FIELDS, v);

// ---- L1's instructions ----------------------------------------------------------------------
export const ARITH = 0x8d5n, FLAGS_ALL = 0x2n | ARITH, LEN = 3;
export const memInfo = () => B((2 << V.INSN_INFO_ADDR_SIZE_SHIFT) | (3 << V.INSN_INFO_SEGMENT_SHIFT) | V.INSN_INFO_INDEX_INVALID |
  (RBX << V.INSN_INFO_BASE_REG_SHIFT));
// A VMX instruction of L1's that must VMsucceed (SDM 31.2: the arithmetic flags cleared) and
// complete (RIP past it).
export function* l1Insn(c: L1Ctx, what: string, reason: number, info: bigint, regs: Record<number, bigint> = {}): Script {
  assert.ok(c.l1Runs(), `${what}: L1 runs`);
  const rip = field(c, V.GUEST_RIP);
  yield { reason, len: LEN, regs, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info, [V.GUEST_RFLAGS]: FLAGS_ALL } };
  assert.ok(c.l1Runs(), `${what}: L1 continues`);
  assert.is(field(c, V.GUEST_RFLAGS) & ARITH, 0n, `${what}: VMsucceed`);
  assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), `${what}: completed`);
}
// One with a 64-bit memory operand at DATA (VMXON, VMCLEAR, VMPTRLD).
export function* ptrInsn(c: L1Ctx, what: string, reason: number, ptr: bigint): Script {
  w64(c, DATA, ptr);
  yield* l1Insn(c, what, reason, memInfo(), { [RBX]: BigInt(DATA) });
}
export function* rdmsr(c: L1Ctx, msr: number): Generator<Exit, bigint, void> {
  yield { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: BigInt(msr) } };
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `RDMSR ${msr.toString(16)}: no #GP`);
  return (c.m.guestReg(RDX) << 32n) | (c.m.guestReg(RAX) & 0xffffffffn);
}
export function* wrmsr(c: L1Ctx, msr: number, v: bigint): Script {
  yield { reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: BigInt(msr), [RAX]: v & 0xffffffffn, [RDX]: v >> 32n } };
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `WRMSR ${msr.toString(16)}: no #GP`);
}

// ---- L1 from reset to a launchable eVMCS --------------------------------------------------
export const CR0 = B(V.X86_CR0_PG | V.X86_CR0_WP | V.X86_CR0_NE | V.X86_CR0_ET | V.X86_CR0_MP | V.X86_CR0_PE);
export const CR4 = B(V.X86_CR4_PAE | V.X86_CR4_PGE | V.X86_CR4_OSFXSR | V.X86_CR4_OSXMMEXCPT | V.X86_CR4_VMXE);
export const EFER64 = B(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE);
export const AR_CODE64 = 0xa09bn, AR_DATA = 0xc093n, AR_TSS_BUSY = 0x8bn, AR_UNUSABLE = 0x10000n;
export const L1_LONG: Record<number, bigint> = {
  [V.GUEST_CR0]: CR0, [V.CR0_READ_SHADOW]: CR0, [V.GUEST_CR4]: CR4, [V.CR4_READ_SHADOW]: CR4,
  [V.GUEST_CR3]: BigInt(L1_PML4), [V.GUEST_IA32_EFER]: EFER64,
  [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA,
};

// L1's paging (2-MByte pages of its first 32 MiB), its VMXON region, IA32_FEATURE_CONTROL
// locked with VMX, the allowed-0 settings of the controls (the TRUE capability MSRs), VMXON.
// `page`: one more page of the caller's to clear.
export interface Ctls { pin0: number; proc0: number; exit0: number; entry0: number }
export function* l1ToVmxon(c: L1Ctx, page: number): Generator<Exit, Ctls, void> {
  for (const p of [L1_PML4, L1_PDPT, L1_PD, EVMCS, ASSIST, page]) c.m.phys.write(l1hpa(c, p), new Uint8Array(4096));
  w64(c, L1_PML4, BigInt(L1_PDPT | 3));
  w64(c, L1_PDPT, BigInt(L1_PD | 3));
  for (let i = 0; i < 16; i++) w64(c, L1_PD + i * 8, (BigInt(i) << 21n) | 0x83n);
  w32(c, VMXON_REGION, 0x41534856);
  yield { reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: B(V.MSR_IA32_FEATURE_CONTROL), [RAX]: 5n, [RDX]: 0n }, fields: L1_LONG };
  const ctl = function* (msr: number) { return Number((yield* rdmsr(c, msr)) & 0xffffffffn); };
  const pin0 = yield* ctl(V.MSR_IA32_VMX_TRUE_PINBASED_CTLS);
  const proc0 = yield* ctl(V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS);
  const exit0 = yield* ctl(V.MSR_IA32_VMX_TRUE_EXIT_CTLS);
  const entry0 = yield* ctl(V.MSR_IA32_VMX_TRUE_ENTRY_CTLS);
  yield* ptrInsn(c, 'VMXON', V.EXIT_REASON_VMXON, BigInt(VMXON_REGION));
  return { pin0, proc0, exit0, entry0 };
}

// The eVMCS of a 64-bit L2 at L2_RIP (HLT exiting, NMI and external-interrupt exiting, L1's
// host state at HOST_RIP12), VersionNumber `revision`, every clean bit 0, and the VP assist
// page asking for enlightened entry with it (TLFS "Virtual Processor Assist Page":
// EnlightenVmEntry and CurrentNestedVmcs).
export function fillEvmcs(c: L1Ctx, { pin0, proc0, exit0, entry0 }: Ctls, revision: number): void {
  const f: [number, number | bigint][] = [
    [V.PIN_BASED_VM_EXEC_CONTROL, pin0 | V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING],
    [V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, (proc0 | V.PROC_HLT_EXITING) >>> 0],
    [V.CR3_TARGET_COUNT, 0], [V.EXCEPTION_BITMAP, 0],
    [V.VM_EXIT_CONTROL, exit0 | V.EXIT_HOST_ADDRESS_SPACE_SIZE | V.EXIT_SAVE_IA32_EFER | V.EXIT_LOAD_IA32_EFER],
    [V.VM_ENTRY_CONTROL, entry0 | V.ENTRY_IA32E_MODE_GUEST | V.ENTRY_LOAD_IA32_EFER],
    [V.VM_EXIT_MSR_STORE_COUNT, 0], [V.VM_EXIT_MSR_LOAD_COUNT, 0], [V.VM_ENTRY_MSR_LOAD_COUNT, 0],
    [V.VM_ENTRY_INTERRUPTION_INFO, 0],
    [V.HOST_CR0, CR0], [V.HOST_CR3, L1_PML4], [V.HOST_CR4, CR4],
    [V.HOST_ES_SELECTOR, 0x10], [V.HOST_CS_SELECTOR, 0x08], [V.HOST_SS_SELECTOR, 0x10], [V.HOST_DS_SELECTOR, 0x10],
    [V.HOST_FS_SELECTOR, 0], [V.HOST_GS_SELECTOR, 0], [V.HOST_TR_SELECTOR, 0x18],
    [V.HOST_FS_BASE, 0], [V.HOST_GS_BASE, 0], [V.HOST_TR_BASE, 0x1000], [V.HOST_GDTR_BASE, 0x2000], [V.HOST_IDTR_BASE, 0x3000],
    [V.HOST_IA32_SYSENTER_ESP, 0], [V.HOST_IA32_SYSENTER_EIP, 0], [V.HOST_IA32_EFER, EFER64],
    [V.HOST_RSP, 0x8000], [V.HOST_RIP, HOST_RIP12],
    [V.GUEST_CR0, CR0], [V.GUEST_CR4, CR4], [V.GUEST_CR3, L1_PML4], [V.GUEST_IA32_EFER, EFER64],
    [V.GUEST_DR7, 0x400], [V.GUEST_IA32_DEBUGCTL, 0], [V.GUEST_IA32_SYSENTER_ESP, 0], [V.GUEST_IA32_SYSENTER_EIP, 0],
    [V.GUEST_GDTR_BASE, 0x6000], [V.GUEST_GDTR_LIMIT, 0x7f], [V.GUEST_IDTR_BASE, 0x7000], [V.GUEST_IDTR_LIMIT, 0xfff],
    [V.GUEST_RSP, 0x9000], [V.GUEST_RIP, L2_RIP], [V.GUEST_RFLAGS, V.X86_RFLAGS_FIXED1],
    [V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE], [V.GUEST_INTERRUPTIBILITY_STATE, 0], [V.GUEST_PENDING_DEBUG_EXCEPTIONS, 0],
    [V.VMCS_LINK_POINTER, ALL1],
  ];
  for (const s of ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR']) {
    const [sel, ar, lim, base] = s === 'CS' ? [0x08, AR_CODE64, 0xffffffff, 0] : s === 'TR' ? [0x18, AR_TSS_BUSY, 0x67, 0x5000] :
      s === 'LDTR' ? [0, AR_UNUSABLE, 0, 0] : [0x10, AR_DATA, 0xffffffff, 0];
    const g = (what: string) => (V as any)[`GUEST_${s}_${what}`] as number;
    f.push([g('SELECTOR'), sel], [g('ACCESS_RIGHTS'), ar], [g('LIMIT'), lim], [g('BASE'), base]);
  }
  for (const [e, v] of f) evWrite(c, e, B(v));
  w32(c, EVMCS + V.EVMCS_REVISION_ID, revision);
  setClean(c, 0);
  c.m.phys.write(l1hpa(c, ASSIST + V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY), new Uint8Array([1]));
  w64(c, ASSIST + V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, BigInt(EVMCS));
}
