// The MSR lists of nested VM entries and exits (issue 9 item 4), end to end
// on kernel.wasm: a scripted L1 (nested=on, 64-bit, shadow-vmcs=off so that
// every VMREAD/VMWRITE is an exit) puts entries of every MSR class in its
// VM-entry MSR-load list, VM-exit MSR-store list and VM-exit MSR-load list,
// and each outcome is checked against the SDM, not against the kernel:
//
//   SDM Vol. 3C 27.4   VM-entry MSR loading: entries in order, "as WRMSR
//                      would"; it fails for FS_BASE/GS_BASE, bits 31:8 =
//                      000008H (x2APIC), an MSR writable only in SMM
//                      (IA32_SMM_MONITOR_CTL), bits 63:32 not 0, and any
//                      write WRMSR would #GP
//   SDM Vol. 3C 27.8   such a failure: exit reason 34 | bit 31 to L1 with
//                      the failing entry's 1-based index as qualification;
//                      what earlier entries loaded stays loaded
//   SDM Vol. 3C 28.4   VM-exit MSR-store: "as RDMSR would"; x2APIC range,
//                      SMM-only (IA32_SMBASE), 63:32, RDMSR #GP fail
//   SDM Vol. 3C 28.6   VM-exit MSR-load: as 27.4
//   SDM Vol. 3C 28.7   a failure of either exit list is a VMX abort: the
//                      indicator (1 store, 4 load) at byte 4 of vmcs12's
//                      region in L1's memory, then shutdown (the guest stops)
//   SDM Vol. 3B 18.17  IA32_TSC: WRMSR sets the TSC (L1's: TSC offsetting of
//                      vmcs12 is not involved), IA32_TSC_ADJUST follows
//   SDM Vol. 3D A.6    lists up to 512 * (IA32_VMX_MISC[27:25] + 1) entries
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, buildBootInfo, loadKernel, type Machine } from '../model/index.ts';
import { fieldName } from '../model/vmcs-fields.ts';
import * as V from '../model/vmx-consts.ts';
import { tinyKernel, produceExit, RAX, RCX, RDX, RBX, type Exit } from './guest-script.ts';

const B = (v: number | bigint): bigint => (typeof v === 'number' ? BigInt(v >>> 0) : BigInt.asUintN(64, v));
const ALL1 = (1n << 64n) - 1n;
const ADDR = 0x000ffffffffff000n;
const LARGE = 1n << 7n;

// ---- L1's memory -------------------------------------------------------------------
const L1_PML4 = 0x10000, L1_PDPT = 0x11000, L1_PD = 0x12000;
const VMXON_REGION = 0x20000, VMCS12 = 0x21000;
const DATA = 0x30000;
const ENTRY_LIST = 0x40000, STORE_LIST = 0x50000, EXIT_LIST = 0x60000; // 64 KiB each: 4096 entries
const HOST_RIP12 = 0x180000n;
const L2_RIP = 0x401000n;

type Script = Generator<Exit, void, void>;
interface Ctx { m: Machine; vmcs01: bigint; vmcs02: bigint; launched: boolean; misc: bigint; stopExpected: string | null }
const FINAL: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };

interface Run { status: number; console: string; faults: string[]; trap: string | null; c: Ctx; finished: boolean }
function drive(script: (c: Ctx) => Script): Run {
  const m = tigerlake();
  const c: Ctx = { m, vmcs01: -1n, vmcs02: -1n, launched: false, misc: 0n, stopExpected: null };
  const gen = script(c);
  let finished = false;
  m.vmx.guest = (vmx) => {
    if (c.vmcs01 < 0n) c.vmcs01 = vmx.currentVmcs!;
    if (c.stopExpected !== null) throw new Error(`the kernel resumed a guest it should have stopped: ${c.stopExpected}`);
    let exit = FINAL;
    if (!finished) {
      const r = gen.next();
      if (r.done) finished = true;
      else exit = r.value;
    }
    produceExit(m, vmx, exit, 0);
  };
  buildBootInfo(m, { cmdline: 'caps=off guest=/g nested=on shadow-vmcs=off', files: [{ name: '/g', data: tinyKernel() }] });
  const k = loadKernel(m);
  const r = k.call('kmain', m.bootInfo);
  assert.ok(r.ended, `kmain returned without ending the run: ${m.console.slice(-2000)}`);
  return { status: m.faults.length ? -1 : (m.exitStatus ?? -1), console: m.console, faults: m.faults, trap: r.trap, c, finished };
}
function runOk(script: (c: Ctx) => Script): Run {
  const r = drive(script);
  assert.equal(r.faults, [], r.console.slice(-3000));
  assert.is(r.trap, null, r.console.slice(-3000));
  assert.ok(r.finished, `the kernel ended the guest before the script finished: ${r.console.slice(-3000)}`);
  assert.is(r.status, 0, r.console.slice(-3000));
  return r;
}

const field = (c: Ctx, enc: number, vmcs?: bigint) => c.m.vmx.field(enc, vmcs);
const inL1 = (c: Ctx) => c.m.vmx.currentVmcs === c.vmcs01;
function l1hpa(c: Ctx, gpa: number | bigint): number {
  let table = field(c, V.EPT_POINTER, c.vmcs01) & ADDR;
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
const w64 = (c: Ctx, gpa: number | bigint, v: bigint) => c.m.phys.write64(l1hpa(c, gpa), B(v));
const r64 = (c: Ctx, gpa: number | bigint) => c.m.phys.read64(l1hpa(c, gpa));
const w32 = (c: Ctx, gpa: number | bigint, v: number) => c.m.phys.write32(l1hpa(c, gpa), v);

// ---- L1's instructions -----------------------------------------------------------------
const ARITH = 0x8d5n, FLAGS_ALL = 0x2n | ARITH, LEN = 3;
const memInfo = () => B((2 << V.INSN_INFO_ADDR_SIZE_SHIFT) | (3 << V.INSN_INFO_SEGMENT_SHIFT) | V.INSN_INFO_INDEX_INVALID |
  (RBX << V.INSN_INFO_BASE_REG_SHIFT));
const regInfo = (reg1: number, reg2: number) => B(V.INSN_INFO_REG_OPERAND | (reg1 << V.INSN_INFO_REG1_SHIFT) | (reg2 << V.INSN_INFO_REG2_SHIFT));
function* l1Insn(c: Ctx, what: string, reason: number, info: bigint, regs: Record<number, bigint> = {}): Script {
  assert.ok(inL1(c), `${what}: L1 runs`);
  const rip = field(c, V.GUEST_RIP);
  yield { reason, len: LEN, regs, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info, [V.GUEST_RFLAGS]: FLAGS_ALL } };
  assert.ok(inL1(c), `${what}: L1 continues`);
  assert.is(field(c, V.GUEST_RFLAGS) & ARITH, 0n, `${what}: VMsucceed`);
  assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), `${what}: completed`);
}
function* ptrInsn(c: Ctx, what: string, reason: number, ptr: bigint): Script {
  w64(c, DATA, ptr);
  yield* l1Insn(c, what, reason, memInfo(), { [RBX]: BigInt(DATA) });
}
function* vmwrite(c: Ctx, enc: number, value: bigint): Script {
  yield* l1Insn(c, `VMWRITE ${fieldName(enc)}`, V.EXIT_REASON_VMWRITE, regInfo(RDX, RCX), { [RCX]: BigInt(enc), [RDX]: B(value) });
}
function* vmread(c: Ctx, enc: number): Generator<Exit, bigint, void> {
  yield* l1Insn(c, `VMREAD ${fieldName(enc)}`, V.EXIT_REASON_VMREAD, regInfo(RAX, RCX), { [RCX]: BigInt(enc), [RAX]: 0xdeadn });
  return c.m.guestReg(RAX);
}
function* rdmsr(c: Ctx, msr: number): Generator<Exit, bigint | null, void> {
  yield { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: BigInt(msr) } };
  if (field(c, V.VM_ENTRY_INTERRUPTION_INFO) !== 0n) return null; // #GP
  return (c.m.guestReg(RDX) << 32n) | (c.m.guestReg(RAX) & 0xffffffffn);
}

// ---- L1 from reset to a launchable vmcs12 ---------------------------------------------------
const CR0 = B(V.X86_CR0_PG | V.X86_CR0_WP | V.X86_CR0_NE | V.X86_CR0_ET | V.X86_CR0_MP | V.X86_CR0_PE);
const CR4 = B(V.X86_CR4_PAE | V.X86_CR4_PGE | V.X86_CR4_OSFXSR | V.X86_CR4_OSXMMEXCPT | V.X86_CR4_VMXE);
const EFER64 = B(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE);
const AR_CODE64 = 0xa09bn, AR_DATA = 0xc093n, AR_TSS_BUSY = 0x8bn, AR_UNUSABLE = 0x10000n;
const L1_LONG: Record<number, bigint> = {
  [V.GUEST_CR0]: CR0, [V.CR0_READ_SHADOW]: CR0, [V.GUEST_CR4]: CR4, [V.CR4_READ_SHADOW]: CR4,
  [V.GUEST_CR3]: BigInt(L1_PML4), [V.GUEST_IA32_EFER]: EFER64,
  [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA,
};

function* bootL1(c: Ctx): Script {
  for (const p of [L1_PML4, L1_PDPT, L1_PD]) c.m.phys.write(l1hpa(c, p), new Uint8Array(4096));
  w64(c, L1_PML4, BigInt(L1_PDPT | 3));
  w64(c, L1_PDPT, BigInt(L1_PD | 3));
  for (let i = 0; i < 16; i++) w64(c, L1_PD + i * 8, (BigInt(i) << 21n) | 0x83n);
  for (const r of [VMXON_REGION, VMCS12]) w32(c, r, 0x41534856);
  yield { reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: B(V.MSR_IA32_FEATURE_CONTROL), [RAX]: 5n, [RDX]: 0n }, fields: L1_LONG };
  const ctl = function* (msr: number) { return Number(((yield* rdmsr(c, msr)) ?? 0n) & 0xffffffffn); };
  const pin0 = yield* ctl(V.MSR_IA32_VMX_TRUE_PINBASED_CTLS);
  const proc0 = yield* ctl(V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS);
  const exit0 = yield* ctl(V.MSR_IA32_VMX_TRUE_EXIT_CTLS);
  const entry0 = yield* ctl(V.MSR_IA32_VMX_TRUE_ENTRY_CTLS);
  c.misc = (yield* rdmsr(c, V.MSR_IA32_VMX_MISC))!;
  yield* ptrInsn(c, 'VMXON', V.EXIT_REASON_VMXON, BigInt(VMXON_REGION));
  yield* ptrInsn(c, 'VMCLEAR', V.EXIT_REASON_VMCLEAR, BigInt(VMCS12));
  yield* ptrInsn(c, 'VMPTRLD', V.EXIT_REASON_VMPTRLD, BigInt(VMCS12));
  const f: [number, number | bigint][] = [
    [V.PIN_BASED_VM_EXEC_CONTROL, pin0 | V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING],
    [V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, (proc0 | V.PROC_HLT_EXITING) >>> 0],
    [V.CR3_TARGET_COUNT, 0], [V.EXCEPTION_BITMAP, 0],
    [V.VM_EXIT_CONTROL, exit0 | V.EXIT_HOST_ADDRESS_SPACE_SIZE | V.EXIT_SAVE_IA32_EFER | V.EXIT_LOAD_IA32_EFER],
    [V.VM_ENTRY_CONTROL, entry0 | V.ENTRY_IA32E_MODE_GUEST | V.ENTRY_LOAD_IA32_EFER],
    [V.VM_EXIT_MSR_STORE_COUNT, 0], [V.VM_EXIT_MSR_LOAD_COUNT, 0], [V.VM_ENTRY_MSR_LOAD_COUNT, 0],
    [V.VM_ENTRY_MSR_LOAD_ADDRESS, ENTRY_LIST], [V.VM_EXIT_MSR_STORE_ADDRESS, STORE_LIST], [V.VM_EXIT_MSR_LOAD_ADDRESS, EXIT_LIST],
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
  for (const [e, v] of f) yield* vmwrite(c, e, B(v));
}

// ---- the lists --------------------------------------------------------------------------
interface Entry { msr: number; value?: bigint; hi?: number }
function putList(c: Ctx, base: number, list: Entry[]): void {
  list.forEach((e, i) => {
    w64(c, base + i * 16, (BigInt(e.hi ?? 0) << 32n) | B(e.msr));
    w64(c, base + i * 16 + 8, e.value ?? 0n);
  });
}

// VMLAUNCH/VMRESUME of vmcs12 with the VM-entry list `list`.
function* enter(c: Ctx, list: Entry[]): Script {
  putList(c, ENTRY_LIST, list);
  yield* vmwrite(c, V.VM_ENTRY_MSR_LOAD_COUNT, BigInt(list.length));
  yield { reason: c.launched ? V.EXIT_REASON_VMRESUME : V.EXIT_REASON_VMLAUNCH, len: LEN,
    fields: { [V.VM_EXIT_INSTRUCTION_INFO]: 0n, [V.GUEST_RFLAGS]: FLAGS_ALL } };
  if (!inL1(c)) {
    if (c.vmcs02 < 0n) c.vmcs02 = c.m.vmx.currentVmcs!;
    c.launched = true;
  }
}
// The entry failed at index k (27.8): L1 at its host RIP, exit reason 34 | bit 31, qualification k.
function* expectFailure(c: Ctx, k: number, what: string): Script {
  assert.ok(inL1(c), `${what}: the entry fails (L1 runs again)`);
  assert.is(field(c, V.GUEST_RIP), HOST_RIP12, `${what}: L1 at vmcs12's host RIP`);
  const reason = yield* vmread(c, V.VM_EXIT_REASON);
  const qual = yield* vmread(c, V.EXIT_QUALIFICATION);
  assert.is(reason, B(V.EXIT_REASON_ENTRY_FAILURE_MSR_LOADING | V.EXIT_REASON_FLAG_ENTRY_FAILURE), `${what}: exit reason 80000022H`);
  assert.is(qual, BigInt(k), `${what}: qualification = the failing entry's index ${k}`);
}
// L2 runs; then its HLT exits to L1 (HLT exiting in vmcs12).
function* toL1(c: Ctx, what: string): Script {
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${what}: L2 runs`);
  yield { reason: V.EXIT_REASON_HLT, len: 1 };
}

// Every class of MSR in the VM-entry list, each in its own entry, with the
// SDM's outcome: ok (and what L2's state shows) or failure.
const SYSENTER_EIP = 0xffff800000001000n;
interface Case { what: string; e: Entry; ok: boolean; effect?: (c: Ctx, e: Entry) => void }
const vmcs02Has = (enc: number) => (c: Ctx, e: Entry) => assert.is(field(c, enc), e.value, `vmcs02 ${fieldName(enc)} = the loaded value`);
const CASES: Case[] = [
  { what: 'IA32_SYSENTER_EIP canonical', e: { msr: V.MSR_IA32_SYSENTER_EIP, value: SYSENTER_EIP }, ok: true, effect: vmcs02Has(V.GUEST_IA32_SYSENTER_EIP) },
  { what: 'IA32_SYSENTER_EIP not canonical (WRMSR #GP)', e: { msr: V.MSR_IA32_SYSENTER_EIP, value: 0x0000800000000000n }, ok: false },
  { what: 'IA32_SYSENTER_CS', e: { msr: V.MSR_IA32_SYSENTER_CS, value: 0x10n }, ok: true, effect: vmcs02Has(V.GUEST_IA32_SYSENTER_CS) },
  { what: 'IA32_SYSENTER_CS with bits 63:32 of the index dword set', e: { msr: V.MSR_IA32_SYSENTER_CS, value: 0x10n, hi: 1 }, ok: false },
  { what: 'IA32_FS_BASE', e: { msr: V.MSR_IA32_FS_BASE, value: 0n }, ok: false },
  { what: 'IA32_GS_BASE', e: { msr: V.MSR_IA32_GS_BASE, value: 0n }, ok: false },
  { what: 'x2APIC 800H', e: { msr: 0x800, value: 0n }, ok: false },
  { what: 'x2APIC TPR 808H', e: { msr: 0x808, value: 0n }, ok: false },
  { what: 'x2APIC 8FFH', e: { msr: 0x8ff, value: 0n }, ok: false },
  { what: 'IA32_SMM_MONITOR_CTL (written only in SMM)', e: { msr: V.MSR_IA32_SMM_MONITOR_CTL, value: 0n }, ok: false },
  { what: 'IA32_SMBASE (SMM only)', e: { msr: V.MSR_IA32_SMBASE, value: 0n }, ok: false },
  { what: 'unknown MSR 1FFFH', e: { msr: 0x1fff, value: 0n }, ok: false },
  { what: 'unknown MSR DEADBEEFH', e: { msr: 0xdeadbeef, value: 0n }, ok: false },
  { what: 'IA32_VMX_BASIC (read-only)', e: { msr: V.MSR_IA32_VMX_BASIC, value: 0n }, ok: false },
  { what: 'IA32_FEATURE_CONTROL (locked)', e: { msr: V.MSR_IA32_FEATURE_CONTROL, value: 5n }, ok: false },
  { what: 'IA32_EFER', e: { msr: V.MSR_IA32_EFER, value: B(V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE) }, ok: true, effect: vmcs02Has(V.GUEST_IA32_EFER) },
  { what: 'IA32_EFER reserved bit 1', e: { msr: V.MSR_IA32_EFER, value: EFER64 | 2n }, ok: false },
  { what: 'IA32_EFER clearing LME with paging on (WRMSR #GP)', e: { msr: V.MSR_IA32_EFER, value: B(V.X86_EFER_SCE) }, ok: false },
  { what: 'IA32_PAT', e: { msr: V.MSR_IA32_PAT, value: 0x0007010600070406n }, ok: true, effect: vmcs02Has(V.GUEST_IA32_PAT) },
  { what: 'IA32_PAT memory type 2 (reserved)', e: { msr: V.MSR_IA32_PAT, value: 0x0007040600070402n }, ok: false },
  { what: 'IA32_DEBUGCTL LBR|BTF', e: { msr: V.MSR_IA32_DEBUGCTL, value: 3n }, ok: true, effect: vmcs02Has(V.GUEST_IA32_DEBUGCTL) },
  { what: 'IA32_DEBUGCTL bit 2 (reserved)', e: { msr: V.MSR_IA32_DEBUGCTL, value: 4n }, ok: false },
  { what: 'IA32_KERNEL_GS_BASE', e: { msr: V.MSR_IA32_KERNEL_GS_BASE, value: 0x12345678000n }, ok: true,
    effect: (c, e) => assert.is(c.m.readMsr(V.MSR_IA32_KERNEL_GS_BASE), e.value, 'the processor\'s KERNEL_GS_BASE') },
  { what: 'IA32_LSTAR not canonical', e: { msr: V.MSR_IA32_LSTAR, value: 0x0000800000000000n }, ok: false },
  { what: 'IA32_TSC_AUX bits 63:32', e: { msr: V.MSR_IA32_TSC_AUX, value: 1n << 32n }, ok: false },
  { what: 'IA32_MTRR_DEF_TYPE WB, enabled', e: { msr: V.MSR_IA32_MTRR_DEF_TYPE, value: 0xc06n }, ok: true },
  { what: 'IA32_MTRR_DEF_TYPE type 2 (reserved)', e: { msr: V.MSR_IA32_MTRR_DEF_TYPE, value: 0xc02n }, ok: false },
  { what: 'IA32_MTRR_FIX64K_00000 WB', e: { msr: V.MSR_IA32_MTRR_FIX64K_00000, value: 0x0606060606060606n }, ok: true },
  { what: 'IA32_TSC', e: { msr: V.MSR_IA32_TIME_STAMP_COUNTER, value: 1n << 44n }, ok: true,
    effect: (c, e) => {
      const seen = c.m.tsc + field(c, V.TSC_OFFSET) - e.value!;
      assert.ok(seen >= 0n && seen < 100000n, `L2's TSC = the loaded value (+ ${seen} ticks)`);
    } },
];

test('VM-entry MSR-load list: every class of MSR alone, with the SDM\'s outcome; each failure exits 34 with index 1', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    for (const k of CASES) {
      yield* enter(c, [k.e]);
      if (!k.ok) {
        yield* expectFailure(c, 1, k.what);
        continue;
      }
      assert.ok(!inL1(c), `${k.what}: L2 runs (console: ${c.m.console.slice(-300)})`);
      k.effect?.(c, k.e);
      yield* toL1(c, k.what);
    }
  });
});

test('VM-entry MSR-load list: a failure at entry k gives qualification k; earlier entries stay loaded; the next entry works', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    const bad = CASES.filter((k) => !k.ok);
    let n = 0;
    for (const b of bad) {
      const k = 2 + (n++ % 6);
      const list: Entry[] = [{ msr: V.MSR_IA32_KERNEL_GS_BASE, value: BigInt(0x1000 * (n + 1)) }];
      while (list.length < k - 1) list.push({ msr: V.MSR_IA32_SYSENTER_ESP, value: BigInt(0x2000 + list.length) });
      list.push(b.e, { msr: V.MSR_IA32_SYSENTER_ESP, value: 0x3000n });
      yield* enter(c, list);
      yield* expectFailure(c, k, `${b.what} at entry ${k}`);
      assert.is(c.m.readMsr(V.MSR_IA32_KERNEL_GS_BASE), BigInt(0x1000 * (n + 1)), `${b.what}: entry 1 stays loaded`);
    }
    // PAT loaded by entry 1, entry 2 fails: L1's PAT is the loaded one
    // (vmcs12's exit does not load PAT).
    yield* enter(c, [{ msr: V.MSR_IA32_PAT, value: 0x0006040600070406n }, { msr: V.MSR_IA32_FS_BASE }]);
    yield* expectFailure(c, 2, 'PAT then FS_BASE');
    assert.is(field(c, V.GUEST_IA32_PAT), 0x0006040600070406n, 'L1\'s PAT is what entry 1 loaded');
    yield* enter(c, []);
    assert.ok(!inL1(c), 'an empty list: L2 runs');
    yield* toL1(c, 'empty list');
  });
});

test('lists of the largest size VMX_MISC recommends: IA32_TSC in every entry of the VM-entry and VM-exit MSR-load lists', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    const n = Number((c.misc >> 25n) & 7n) * 512 + 512;
    const T = 1n << 45n;
    yield* enter(c, Array.from({ length: n }, (_, i) => ({ msr: V.MSR_IA32_TIME_STAMP_COUNTER, value: T + BigInt(i) })));
    assert.ok(!inL1(c), `a list of ${n} IA32_TSC entries: L2 runs (console: ${c.m.console.slice(-300)})`);
    const l2 = c.m.tsc + field(c, V.TSC_OFFSET) - (T + BigInt(n - 1));
    assert.ok(l2 >= 0n && l2 < 100000n, `L2's TSC = the last value loaded (+ ${l2})`);
    // The exit list loads L1's TSC; the store list reads it (no vmcs12 offset).
    const T2 = 1n << 46n;
    putList(c, EXIT_LIST, Array.from({ length: n }, () => ({ msr: V.MSR_IA32_TIME_STAMP_COUNTER, value: T2 })));
    putList(c, STORE_LIST, [{ msr: V.MSR_IA32_TIME_STAMP_COUNTER }, { msr: V.MSR_IA32_SMM_MONITOR_CTL, value: 0x55n },
      { msr: V.MSR_IA32_DEBUGCTL, value: 0x55n }, { msr: V.MSR_IA32_PAT }]);
    yield* toL1(c, 'HLT');
    assert.ok(inL1(c), 'exit to L1');
    yield* vmwrite(c, V.VM_EXIT_MSR_LOAD_COUNT, BigInt(n));
    yield* vmwrite(c, V.VM_EXIT_MSR_STORE_COUNT, 4n);
    yield* vmwrite(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, (yield* vmread(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL)) | B(V.PROC_USE_TSC_OFFSETTING));
    yield* vmwrite(c, V.TSC_OFFSET, 1n << 40n);
    yield* enter(c, []);
    assert.ok(!inL1(c), 'L2 runs with TSC offsetting');
    const l1Before = c.m.tsc + field(c, V.TSC_OFFSET) - (1n << 40n);
    yield* toL1(c, 'HLT with exit lists');
    assert.ok(inL1(c), 'exit to L1 with the lists');
    const stored = r64(c, STORE_LIST + 8);
    assert.ok(stored >= l1Before && stored < l1Before + 100000n, `store list IA32_TSC = L1's TSC without vmcs12's offset (${stored} vs ${l1Before})`);
    assert.is(r64(c, STORE_LIST + 24), 0n, 'store list IA32_SMM_MONITOR_CTL = 0 (readable outside SMM)');
    assert.is(r64(c, STORE_LIST + 40), 0n, 'store list IA32_DEBUGCTL = L2\'s (0)');
    assert.is(r64(c, STORE_LIST + 56), field(c, V.GUEST_IA32_PAT, c.vmcs02), 'store list IA32_PAT = L2\'s');
    const l1 = c.m.tsc + field(c, V.TSC_OFFSET) - T2;
    assert.ok(l1 >= 0n && l1 < 100000n, `L1's TSC = the exit list's value (+ ${l1})`);
  });
});

// Not an MSR list, but the same harness: L2's VMREAD/VMWRITE with a register
// operand reaches L1 with exit qualification 0 (28.2.1: no displacement),
// whatever the processor under L0 reported (Bochs 2.7 can report a stale
// displacement); with a memory operand, the displacement as reported.
test('L2 VMREAD/VMWRITE exits reflected to L1: qualification 0 for a register operand, the displacement for a memory operand', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    const cases: [number, bigint, bigint, bigint][] = [
      [V.EXIT_REASON_VMREAD, regInfo(RAX, RCX), 0x26c008n, 0n],
      [V.EXIT_REASON_VMWRITE, regInfo(RDX, RCX), 0x1234n, 0n],
      [V.EXIT_REASON_VMREAD, memInfo(), 0x18n, 0x18n],
    ];
    for (const [reason, info, qual, want] of cases) {
      yield* enter(c, []);
      assert.ok(!inL1(c), 'L2 runs');
      yield { reason, qual, len: 3, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info } };
      assert.ok(inL1(c), 'reflected to L1');
      assert.is(yield* vmread(c, V.EXIT_QUALIFICATION), want, `exit ${reason}, info 0x${info.toString(16)}: qualification`);
      assert.is(yield* vmread(c, V.VM_EXIT_REASON), BigInt(reason), 'exit reason');
    }
  });
});

// An exit list the processor cannot process: VMX abort (28.7).
function abortRun(what: string, store: Entry[], load: Entry[], indicator: number) {
  test(`VMX abort: ${what}: indicator ${indicator} at byte 4 of vmcs12's region, the guest stops with SDM 28.7`, () => {
    let memIndicator = -1;
    const r = drive(function* (c) {
      yield* bootL1(c);
      putList(c, STORE_LIST, store);
      putList(c, EXIT_LIST, load);
      yield* vmwrite(c, V.VM_EXIT_MSR_STORE_COUNT, BigInt(store.length));
      yield* vmwrite(c, V.VM_EXIT_MSR_LOAD_COUNT, BigInt(load.length));
      yield* enter(c, []);
      assert.ok(!inL1(c), 'L2 runs');
      c.stopExpected = what; // no entry may follow this exit
      yield { reason: V.EXIT_REASON_HLT, len: 1 };
    });
    memIndicator = r.c.m.phys.read32(l1hpa(r.c, VMCS12 + V.VMCS12_ABORT_INDICATOR_OFFSET));
    assert.equal(r.faults, [], r.console.slice(-2000));
    assert.is(r.trap, null);
    assert.not.ok(r.finished, 'the guest stopped');
    assert.match(r.console, /VMX abort for L1 \(SDM 28\.7, indicator \d+\)/);
    assert.match(r.console, /ended: stopped/);
    assert.is(memIndicator, indicator, 'VMX-abort indicator in L1\'s memory');
    assert.is(r.c.m.phys.read32(l1hpa(r.c, VMCS12)), 0x41534856, 'the revision identifier is untouched');
  });
}
abortRun('VM-exit MSR-load list with IA32_FS_BASE', [], [{ msr: V.MSR_IA32_PAT, value: 0x0007040600070406n }, { msr: V.MSR_IA32_FS_BASE }], V.VMX_ABORT_LOAD_HOST_MSR);
abortRun('VM-exit MSR-load list with x2APIC 830H', [], [{ msr: 0x830 }], V.VMX_ABORT_LOAD_HOST_MSR);
abortRun('VM-exit MSR-load list with bits 63:32 set', [], [{ msr: V.MSR_IA32_PAT, value: 0x0007040600070406n, hi: 2 }], V.VMX_ABORT_LOAD_HOST_MSR);
abortRun('VM-exit MSR-store list with x2APIC 802H', [{ msr: 0x802 }], [], V.VMX_ABORT_SAVE_GUEST_MSR);
abortRun('VM-exit MSR-store list with IA32_SMBASE (SMM only)', [{ msr: V.MSR_IA32_SMBASE }], [], V.VMX_ABORT_SAVE_GUEST_MSR);
abortRun('VM-exit MSR-store list with an unknown MSR', [{ msr: 0x1fff }], [], V.VMX_ABORT_SAVE_GUEST_MSR);

test.run();
