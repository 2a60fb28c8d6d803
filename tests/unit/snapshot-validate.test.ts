// Snapshot blobs (docs/snapshot.md) against kernel.wasm's validator
// (kernel/snapshot/validate*.ts) and Writer (kernel/snapshot/blob.ts),
// through the snap_* hooks (kernel/hooks/snapshot.ts):
//  - valid blobs of each kind (L1 alone, L1 in VMX operation, L2 running,
//    L2 running with VMCS shadowing, a nested entry pending) are accepted;
//  - for every rule of kernel/snapshot/rules.ts a crafted blob that breaks
//    it and nothing else is rejected with that rule's name (the test fails
//    if a rule has no case); vmcs12.entry-checks with a vmcs12 that breaks a
//    control, a host-state and a guest-state check (SDM 27.2.1, 27.2.2-
//    27.2.4, 27.3.1), the verdict naming the check;
//  - the kernel's Writer builds byte for byte what tests/model/snapshot.ts
//    encodes, and never writes past its capacity;
//  - >= 100,000 random mutations of valid blobs: each is accepted or
//    rejected with a named rule, with no trap, without the validator
//    writing to the blob, the same answer twice; GUEST_MODE blobs counted
//    as passing the SDM entry checks or rejected by them (by class), a
//    share of the mutations aimed at vmcs12's fields so that both happen.
// The GUEST_MODE vmcs12s are checked in full (nested/entry-checks.ts
// checkAll) against what the hypervisor offers L1 on the model machine
// (entry_setup: capabilities and CPUID read as kmain reads them) and L1's
// RAM in the model's physical memory (entry_setupRam: where the link
// pointer's VMCS and the bitmaps live).
// A fresh seed each run, printed; SEED=n replays it, MUTATIONS=n changes
// the count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';
import { type Snap, NONE, encode, frame, sections, table, get12, set12 } from '../model/snapshot.ts';
import { checkControls, checkHostState, checkGuestState, type EntryEnv } from '../model/entry-checks.ts';
import type { VmxCaps } from '../model/vmcs-fields.ts';
import { prng } from './prng.ts';

const SEED = process.env.SEED !== undefined ? BigInt(process.env.SEED) : BigInt(Date.now()) ^ (BigInt(process.pid) << 20n);
const MUTATIONS = Number(process.env.MUTATIONS ?? 100000);
console.log(`snapshot-validate: SEED=${SEED} (replay: SEED=${SEED} node --import tsx tests/unit/snapshot-validate.test.ts)`);

const REV = 0x41534856; // kernel/nested/caps.ts REVISION_ID
const SHADOW_BIT = 0x80000000;
const RAM = 32n << 20n;
const VMXON = 0x20000n, VMCS12 = 0x21000n, SHADOW12 = 0x24000n;
const HOST_BASE = 16 * 0x100000; // L1's RAM in the model's physical memory (the running VM's, vm/guestmem.ts)
const XSAVE_BYTES = 832; // legacy area + header + AVX
const BASE_LIMITS = {
  vcpu: 0, ramBytes: RAM, physAddrBits: 39, linearBits: 48, nested: true, shadowVmcs: true, vmcs12Revision: REV,
  mxcsrMask: 0xffff, xcr0Offered: 7n, xsaveBytes: XSAVE_BYTES, anyErrorCode: false, zeroLengthInjection: false, mtf: true,
  hyperv: false,
};
type Limits = typeof BASE_LIMITS;
// A guest with hyperv=on: its blobs have a HYPERV section, and may have an eVMCS.
const HV = { hyperv: true };
const HV_LIMITS: Limits = { ...BASE_LIMITS, ...HV };

// ---- the kernel ------------------------------------------------------------------------------

const k = loadKernel(tigerlake());
const mem = () => k.exports.memory as WebAssembly.Memory;
function call<T = number>(name: string, ...args: unknown[]): T {
  const r = k.call<T>(name, ...args);
  if (r.ended) throw new Error(`${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
  return r.value as T;
}
const BUF_BYTES = 64 * 1024;
const buf = call<number>('snap_buffer', BUF_BYTES) >>> 0;
function asString(ptr: number): string {
  const len = new Uint32Array(mem().buffer, ptr - 4, 1)[0];
  return Buffer.from(new Uint8Array(mem().buffer, ptr, len)).toString('utf16le');
}
const RULES = call<number>('snap_ruleCount');
// What the entry checks compare with: the offered capabilities, and the RAM
// of the VM the blob is restored into, holding the VMCS regions L1 made (the
// vmcs12 as VMPTRLD left it, the shadow VMCS the link pointer names).
call('entry_setup');
call('entry_setupRam', BigInt(HOST_BASE), RAM);
k.machine.phys.write32(HOST_BASE + Number(VMCS12), REV);
k.machine.phys.write32(HOST_BASE + Number(SHADOW12), (REV | SHADOW_BIT) >>> 0);
const capMsr = (msr: number): bigint => BigInt.asUintN(64, call<bigint>('entry_capMsr', msr));
const ruleName = (r: number): string => asString(call<number>('snap_ruleName', r) >>> 0);
let limitsNow = '';
function setLimits(l: Limits): void {
  const key = JSON.stringify(l, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  if (key === limitsNow) return;
  limitsNow = key;
  call('snap_setLimits', l.vcpu, l.ramBytes, l.physAddrBits, l.linearBits, l.nested, l.shadowVmcs, l.vmcs12Revision,
    l.mxcsrMask, l.xcr0Offered, l.xsaveBytes, l.anyErrorCode, l.zeroLengthInjection, l.mtf, l.hyperv);
}
interface Answer { rule: string; section: number; item: number; value: bigint; check: string }
function validate(blob: Uint8Array, l: Limits = BASE_LIMITS): Answer {
  setLimits(l);
  new Uint8Array(mem().buffer, buf, blob.length).set(blob);
  const r = call<number>('snap_validate', BigInt(blob.length));
  assert.ok(r >= 0 && r < RULES, `rule number ${r}`);
  return {
    rule: ruleName(r), section: call<number>('snap_verdictSection'), item: call<number>('snap_verdictItem'),
    value: BigInt.asUintN(64, call<bigint>('snap_verdictValue')), check: asString(call<number>('snap_verdictCheck') >>> 0),
  };
}

// ---- valid snapshots -------------------------------------------------------------------------

const APIC = { ID: 0x20, VERSION: 0x30, TPR: 0x80, PPR: 0xa0, LDR: 0xd0, DFR: 0xe0, SVR: 0xf0, ISR: 0x100, IRR: 0x200, ESR: 0x280,
  ICR_LO: 0x300, ICR_HI: 0x310, LVT_TIMER: 0x320, LVT_ERROR: 0x370, INITIAL: 0x380, CURRENT: 0x390, DCR: 0x3e0 };
const PF_WITH_CODE = (0x80000000 | (3 << 8) | (1 << 11) | 14) >>> 0; // valid, hardware exception, error code, #PF
const CR0_PROT = 0x80050033n; // PG, AM, WP, NE, ET, MP, PE

// A vmcs12 that passes every SDM entry check against the offered
// capabilities: a 64-bit L1 host (VM exits return to IA-32e mode), a 64-bit
// L2 at CPL 0, the bitmaps and MSR areas in L1's RAM, no link pointer.
const lo32 = (v: bigint): number => Number(v & 0xffffffffn);
const hi32 = (v: bigint): number => Number(v >> 32n);
const OFFERED = {
  pin: capMsr(V.MSR_IA32_VMX_TRUE_PINBASED_CTLS), proc: capMsr(V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS),
  proc2: capMsr(V.MSR_IA32_VMX_PROCBASED_CTLS2), exit: capMsr(V.MSR_IA32_VMX_TRUE_EXIT_CTLS), entry: capMsr(V.MSR_IA32_VMX_TRUE_ENTRY_CTLS),
};
// The model's own entry checks (tests/model/entry-checks.ts, written from
// the SDM text, not from the kernel's code): the class the SDM gives a
// vmcs12 page from a blob, L1's mode and RAM as the validator takes them.
const ORACLE_CAPS: VmxCaps = (() => {
  const basic = capMsr(V.MSR_IA32_VMX_BASIC);
  return {
    revision: REV, regionSize: Number((basic >> 32n) & 0x1fffn), addr32: ((basic >> 48n) & 1n) === 1n, trueCtls: true,
    pin0: lo32(OFFERED.pin), pin1: hi32(OFFERED.pin), proc0: lo32(OFFERED.proc), proc1: hi32(OFFERED.proc),
    proc2_1: (hi32(OFFERED.proc) >>> 31) & 1 ? hi32(OFFERED.proc2) : 0,
    exit0: lo32(OFFERED.exit), exit1: hi32(OFFERED.exit), entry0: lo32(OFFERED.entry), entry1: hi32(OFFERED.entry),
    misc: capMsr(V.MSR_IA32_VMX_MISC), cr0Fixed0: capMsr(V.MSR_IA32_VMX_CR0_FIXED0), cr0Fixed1: capMsr(V.MSR_IA32_VMX_CR0_FIXED1),
    cr4Fixed0: capMsr(V.MSR_IA32_VMX_CR4_FIXED0), cr4Fixed1: capMsr(V.MSR_IA32_VMX_CR4_FIXED1),
    eptVpidCap: capMsr(V.MSR_IA32_VMX_EPT_VPID_CAP), vmfunc: capMsr(V.MSR_IA32_VMX_VMFUNC), maxPhysAddr: k.machine.maxPhysAddr(),
  };
})();
function oracleClass(page: Uint8Array, current: bigint, l1Ia32e: boolean, ramLimit: bigint): number {
  const m = k.machine;
  const ram = ramLimit < RAM ? ramLimit : RAM;
  const inRam = (pa: number, n: number): boolean => pa >= 0 && BigInt(pa + n) <= ram;
  const env: EntryEnv = {
    caps: ORACLE_CAPS,
    read: (e) => (V.vmcs12Offset(e) >= 0 ? get12(page, e) : 0n),
    readPhys32: (pa) => (inRam(pa, 4) ? m.phys.read32(HOST_BASE + pa) : 0xffffffff),
    readPhys64: (pa) => (inRam(pa, 8) ? m.phys.read64(HOST_BASE + pa) : NONE),
    linearBits: (m.cpuidRaw(0x80000008, 0)[0] >>> 8) & 0xff,
    ia32eMode: l1Ia32e, inSmm: false, ramSize: ram, l2Ran: true, // (GUEST_MODE blobs only)
    anyErrorCode: ((capMsr(V.MSR_IA32_VMX_BASIC) >> 56n) & 1n) === 1n,
    currentVmcs: current, rtm: ((m.cpuidRaw(7, 0)[1] >>> 11) & 1) === 1, sgx: false,
    debugctlAllowed: BigInt(V.X86_DEBUGCTL_LBR | V.X86_DEBUGCTL_BTF), // as entry-checks.test.ts: what L1 may set
    eferAllowed: BigInt(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE),
  };
  if (checkControls(env).length) return 1;
  if (checkHostState(env).length) return 2;
  if (checkGuestState(env).length) return 3;
  return 0;
}
const EFER64 = BigInt(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE);
const CR4_64 = BigInt(V.X86_CR4_PAE | V.X86_CR4_PGE | V.X86_CR4_OSFXSR | V.X86_CR4_OSXMMEXCPT | V.X86_CR4_VMXE);
const PAT = 0x0007040600070406n;
const IO_A = 0x40000n, IO_B = 0x41000n, MSR_BITMAP = 0x42000n, MSR_AREA = 0x43000n, VMREAD_BITMAP = 0x44000n, VMWRITE_BITMAP = 0x45000n;
const SEG_NAMES = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
const segField = (name: string, what: string): number => (V as unknown as Record<string, number>)[`GUEST_${name}_${what}`];

function vmcs12Page(over: Record<number, bigint> = {}): Uint8Array {
  const p = new Uint8Array(V.VMCS12_PAGE_SIZE);
  new DataView(p.buffer).setUint32(V.VMCS12_REVISION_ID_OFFSET, REV, true);
  new DataView(p.buffer).setUint32(V.VMCS12_LAUNCH_STATE_OFFSET, 1, true);
  const f = (e: number, v: number | bigint) => set12(p, e, typeof v === 'number' ? BigInt(v >>> 0) : v);
  // Controls (27.2.1): the offered must-be-1 bits and what a real L1 sets.
  f(V.PIN_BASED_VM_EXEC_CONTROL, lo32(OFFERED.pin) | V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING);
  f(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, lo32(OFFERED.proc) | V.PROC_HLT_EXITING | V.PROC_USE_IO_BITMAPS | V.PROC_USE_MSR_BITMAPS);
  f(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, 0);
  f(V.IO_BITMAP_A, IO_A);
  f(V.IO_BITMAP_B, IO_B);
  f(V.MSR_BITMAPS, MSR_BITMAP);
  f(V.VM_EXIT_CONTROL, lo32(OFFERED.exit) | V.EXIT_HOST_ADDRESS_SPACE_SIZE | V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT |
    V.EXIT_SAVE_IA32_PAT | V.EXIT_LOAD_IA32_PAT | V.EXIT_SAVE_IA32_EFER | V.EXIT_LOAD_IA32_EFER);
  f(V.VM_EXIT_MSR_STORE_COUNT, 2);
  f(V.VM_EXIT_MSR_STORE_ADDRESS, MSR_AREA);
  f(V.VM_EXIT_MSR_LOAD_COUNT, 1);
  f(V.VM_EXIT_MSR_LOAD_ADDRESS, MSR_AREA + 0x100n);
  f(V.VM_ENTRY_CONTROL, lo32(OFFERED.entry) | V.ENTRY_IA32E_MODE_GUEST | V.ENTRY_LOAD_DEBUG_CONTROLS | V.ENTRY_LOAD_IA32_PAT | V.ENTRY_LOAD_IA32_EFER);
  f(V.VM_ENTRY_MSR_LOAD_COUNT, 1);
  f(V.VM_ENTRY_MSR_LOAD_ADDRESS, MSR_AREA + 0x200n);
  f(V.VIRTUAL_PROCESSOR_ID, 1);
  // Host state (27.2.2-27.2.4): L1 in 64-bit mode.
  f(V.HOST_CR0, CR0_PROT);
  f(V.HOST_CR3, 0x100000);
  f(V.HOST_CR4, CR4_64);
  for (const [e, sel] of [[V.HOST_ES_SELECTOR, 0x10], [V.HOST_CS_SELECTOR, 0x08], [V.HOST_SS_SELECTOR, 0x10], [V.HOST_DS_SELECTOR, 0x10], [V.HOST_TR_SELECTOR, 0x18]]) f(e, sel);
  f(V.HOST_GS_BASE, 0xffff800000001000n);
  f(V.HOST_TR_BASE, 0x1000);
  f(V.HOST_GDTR_BASE, 0x2000);
  f(V.HOST_IDTR_BASE, 0x3000);
  f(V.HOST_IA32_PAT, PAT);
  f(V.HOST_IA32_EFER, EFER64);
  f(V.HOST_RSP, 0x8000);
  f(V.HOST_RIP, 0x101000);
  // Guest state (27.3.1): L2 in 64-bit mode, CPL 0.
  f(V.GUEST_CR0, CR0_PROT);
  f(V.GUEST_CR3, 0x30000);
  f(V.GUEST_CR4, CR4_64);
  f(V.GUEST_DR7, 0x400);
  f(V.GUEST_IA32_PAT, PAT);
  f(V.GUEST_IA32_EFER, EFER64);
  for (const s of SEG_NAMES) {
    const [sel, ar, lim, base] = s === 'CS' ? [0x08, 0xa09b, 0xffffffff, 0] : s === 'TR' ? [0x18, 0x8b, 0x67, 0x5000] :
      s === 'LDTR' ? [0, 0x10000, 0, 0] : [0x10, 0xc093, 0xffffffff, 0];
    f(segField(s, 'SELECTOR'), sel);
    f(segField(s, 'ACCESS_RIGHTS'), ar);
    f(segField(s, 'LIMIT'), lim);
    f(segField(s, 'BASE'), base);
  }
  f(V.GUEST_GDTR_BASE, 0x6000);
  f(V.GUEST_GDTR_LIMIT, 0x7f);
  f(V.GUEST_IDTR_BASE, 0x7000);
  f(V.GUEST_IDTR_LIMIT, 0xfff);
  f(V.GUEST_RSP, 0x9000);
  f(V.GUEST_RIP, 0x401000);
  f(V.GUEST_RFLAGS, V.X86_RFLAGS_FIXED1 | V.X86_RFLAGS_IF);
  f(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  f(V.VMCS_LINK_POINTER, NONE);
  for (const [e, v] of Object.entries(over)) set12(p, Number(e), v);
  return p;
}

/** L1 alone (nested=off). */
function l1Only(): Snap {
  const regs = new Uint8Array(V.REGS_BYTES);
  const rdv = new DataView(regs.buffer);
  for (let i = 0; i < 16; i++) if (i !== 4) rdv.setBigUint64(i * 8, BigInt(i) * 0x1111n, true);
  rdv.setBigUint64(V.REGS_CR2, 0xdead000n, true);
  rdv.setUint16(V.REGS_FX, 0x37f, true);
  rdv.setUint32(V.REGS_FX + 24, 0x1f80, true);
  const vmcs01 = new Map<number, bigint>();
  for (const e of V.SNAP_VMCS01_FIELDS) vmcs01.set(e, 0n);
  vmcs01.set(V.GUEST_CR0, CR0_PROT);
  vmcs01.set(V.CR0_READ_SHADOW, CR0_PROT);
  vmcs01.set(V.GUEST_RIP, 0x101000n);
  vmcs01.set(V.GUEST_CS_SELECTOR, 0x10n);
  vmcs01.set(V.GUEST_CS_ACCESS_RIGHTS, 0xa09bn);
  vmcs01.set(V.GUEST_RFLAGS, 0x202n);
  // L1 in IA-32e mode: with GUEST_MODE, what its VMLAUNCH was checked
  // against (27.2.4: "host address-space size" must then be 1).
  vmcs01.set(V.GUEST_IA32_EFER, EFER64);
  const msrs = new Map<number, bigint>();
  for (const m of V.SNAP_MSRS) msrs.set(m, 0n);
  msrs.set(V.MSR_IA32_FEATURE_CONTROL, 5n);
  for (const m of V.SNAP_MSRS) if (m >= V.MSR_IA32_MTRR_FIX64K_00000 && m <= V.MSR_IA32_MTRR_FIX4K_C0000 + 7) msrs.set(m, 0x0606060606060606n);
  msrs.set(V.MSR_IA32_MTRR_DEF_TYPE, 0xc06n);
  msrs.set(V.MSR_IA32_STAR, 0x0023001000000000n);
  msrs.set(V.MSR_IA32_LSTAR, 0xffffffff81000000n);
  msrs.set(V.MSR_IA32_FMASK, 0x47700n);
  const page = new Uint32Array(256);
  const reg = (r: number, v: number) => (page[r / 4] = v >>> 0);
  reg(APIC.VERSION, 0x00050014);
  reg(APIC.DFR, 0xffffffff);
  reg(APIC.SVR, 0x1ff);
  reg(APIC.TPR, 0x10);
  reg(APIC.PPR, 0x10);
  for (let r = APIC.LVT_TIMER; r <= APIC.LVT_ERROR; r += 16) reg(r, 0x10000);
  reg(APIC.LVT_TIMER, 0x20030); // vector 30H, periodic
  reg(APIC.INITIAL, 0x10000);
  reg(APIC.CURRENT, 0x8000);
  reg(APIC.DCR, 0xb);
  reg(APIC.IRR + 0x10, 1 << 0x11); // vector 31H pending
  const area = new Uint8Array(XSAVE_BYTES);
  new DataView(area.buffer).setUint32(24, 0x1f80, true);
  new DataView(area.buffer).setBigUint64(512, 7n, true);
  return {
    vcpu: 0, regs, vmcs01, msrs,
    apic: { base: 0xfee00900n, esrPending: 0, page },
    events: { l1: [0, 0, 0], l2: [0, 0, 0] },
    timers: { l1Tsc: 5_000_000n, apicDeadline: 5_100_000n },
    debug: { dr: [0x401000n, 0xffff800000001000n, 0n, 0x8000n], dr6: 0xffff4ff1n },
    xstate: { xcr0: 7n, area },
    nested: null, vmcs12: null, shadow12: null,
  };
}
/** L1 in VMX operation, no current VMCS. */
function vmxIdle(): Snap {
  return { ...l1Only(), nested: { flags: 0, vmxon: VMXON, vmcs12: NONE, deadline: NONE } };
}
/** L1 with a current vmcs12, L2 not running. */
function vmcs12Loaded(): Snap {
  return { ...l1Only(), nested: { flags: 0, vmxon: VMXON, vmcs12: VMCS12, deadline: NONE }, vmcs12: vmcs12Page({ [V.VM_ENTRY_INTERRUPTION_INFO]: 0n }) };
}
/** L2 running (GUEST_MODE), L0 about to re-inject a #PF into it, L1's preemption timer counting. */
function inL2(): Snap {
  const s = l1Only();
  s.nested = { flags: V.SNAP_FLAG_GUEST_MODE, vmxon: VMXON, vmcs12: VMCS12, deadline: 5_400_000n, l2: [0n, 0x0007040600070406n, 0x400n, 0n] };
  s.vmcs12 = vmcs12Page();
  set12(s.vmcs12, V.PIN_BASED_VM_EXEC_CONTROL, get12(s.vmcs12, V.PIN_BASED_VM_EXEC_CONTROL) | BigInt(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER));
  // L2's EFER as its vmcs12 says: IA-32e mode guest or not.
  if ((get12(s.vmcs12, V.VM_ENTRY_CONTROL) & BigInt(V.ENTRY_IA32E_MODE_GUEST)) !== 0n) s.nested.l2![0] = BigInt(V.X86_EFER_LME | V.X86_EFER_LMA);
  s.events.l2 = [PF_WITH_CODE, 2, 0];
  return s;
}
/** L2 running with VMCS shadowing: the shadow vmcs12 travels too. */
function inL2Shadow(): Snap {
  const s = inL2();
  set12(s.vmcs12!, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, get12(s.vmcs12!, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) | BigInt(V.PROC_ACTIVATE_SECONDARY_CONTROLS));
  set12(s.vmcs12!, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, BigInt(V.PROC2_VMCS_SHADOWING));
  set12(s.vmcs12!, V.VMREAD_BITMAP, VMREAD_BITMAP);
  set12(s.vmcs12!, V.VMWRITE_BITMAP, VMWRITE_BITMAP);
  // The VMCS it names is in L1's RAM too (written at the top), as restore
  // leaves it: the entry checks read its first word (27.3.1.5).
  set12(s.vmcs12!, V.VMCS_LINK_POINTER, SHADOW12);
  s.shadow12 = new Uint8Array(V.VMCS12_PAGE_SIZE);
  new DataView(s.shadow12.buffer).setUint32(0, (REV | SHADOW_BIT) >>> 0, true);
  return s;
}
/** L1's VMRESUME emulated, L2 not yet entered: vmcs02 injects what vmcs12 asked for. */
function runPending(): Snap {
  const s = inL2();
  s.nested!.flags = V.SNAP_FLAG_GUEST_MODE | V.SNAP_FLAG_RUN_PENDING;
  set12(s.vmcs12!, V.VM_ENTRY_INTERRUPTION_INFO, BigInt(PF_WITH_CODE));
  set12(s.vmcs12!, V.VM_ENTRY_EXCEPTION_ERROR_CODE, 2n);
  return s;
}
// hyperv=on: the synthetic MSRs of a guest that identified itself, enabled
// its hypercall page and VP assist page, exposed the invariant TSC (TLFS);
// an eVMCS made current by an enlightened entry (nested/evmcs.ts), while L1
// runs and while L2 runs from it.
const EVMCS12 = 0x23000n, ASSIST = 0x25000n, HYPERCALL_PAGE = 0x26000n;
const hvMsrs = () => ({ guestOsId: 0x8100_0000_0001_0000n, hypercall: HYPERCALL_PAGE | 1n, tscInvariantControl: 1n, vpAssistPage: ASSIST | 1n });
/** L1 alone with hyperv=on. */
function hvL1(): Snap {
  return { ...l1Only(), hyperv: hvMsrs() };
}
/** L1 runs after an enlightened entry: vmcs12 is a copy of the eVMCS at EVMCS12. */
function evmcsL1(): Snap {
  const s = vmcs12Loaded();
  s.nested = { flags: V.SNAP_FLAG_EVMCS, vmxon: VMXON, vmcs12: EVMCS12, deadline: NONE };
  s.hyperv = hvMsrs();
  return s;
}
/** L2 runs from an eVMCS (no preemption timer: eVMCS v1 cannot express it). */
function evmcsL2(): Snap {
  const s = inL2();
  s.nested = { ...s.nested!, flags: V.SNAP_FLAG_GUEST_MODE | V.SNAP_FLAG_EVMCS, vmcs12: EVMCS12, deadline: NONE };
  set12(s.vmcs12!, V.PIN_BASED_VM_EXEC_CONTROL, get12(s.vmcs12!, V.PIN_BASED_VM_EXEC_CONTROL) & ~BigInt(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER));
  s.hyperv = hvMsrs();
  return s;
}
const BASES: Record<string, () => Snap> = { l1Only, vmxIdle, vmcs12Loaded, inL2, inL2Shadow, runPending, hvL1, evmcsL1, evmcsL2 };
const HV_BASES = new Set(['hvL1', 'evmcsL1', 'evmcsL2']);
const limitsOf = (name: string): Limits => (HV_BASES.has(name) ? HV_LIMITS : BASE_LIMITS);

test('valid blobs of every kind are accepted, GUEST_MODE ones after the SDM entry checks on their vmcs12', () => {
  for (const [name, make] of Object.entries(BASES)) {
    const a = validate(encode(make()), limitsOf(name));
    assert.is(a.rule, 'ok', `${name}: ${JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
    assert.is(a.check, '', name);
    const s = make();
    if (s.vmcs12) assert.is(oracleClass(s.vmcs12, s.nested!.vmcs12, true, RAM), 0, `${name}: the model's entry checks pass its vmcs12`);
  }
  // hyperv=on: what the MSRs allow is accepted. A disabled page may name
  // anything (the enable bit off, the MSR keeps what was written); the
  // hypercall MSR's bits 11:2 are reserved-preserved; no identity and
  // nothing enabled; an eVMCS at the VMXON page (an enlightened entry does
  // not check that, unlike VMPTRLD).
  const hv = (f: (h: NonNullable<Snap['hyperv']>) => void, base = hvL1) => { const s = base(); f(s.hyperv!); return encode(s); };
  assert.is(validate(hv((h) => (h.vpAssistPage = 0xffff_f000n)), HV_LIMITS).rule, 'ok', 'a disabled VP assist page beyond RAM');
  assert.is(validate(hv((h) => (h.hypercall = HYPERCALL_PAGE | 0xffcn | 1n)), HV_LIMITS).rule, 'ok', 'hypercall MSR bits 11:2');
  assert.is(validate(hv((h) => Object.assign(h, { guestOsId: 0n, hypercall: RAM, vpAssistPage: 0n, tscInvariantControl: 0n })), HV_LIMITS).rule, 'ok', 'nothing enabled');
  const atVmxon = evmcsL1();
  atVmxon.nested!.vmcs12 = VMXON;
  assert.is(validate(encode(atVmxon), HV_LIMITS).rule, 'ok', 'an eVMCS at the VMXON page');
  // An eVMCS while L1 runs or L2 runs, with the VP assist page disabled
  // since: the blob alone is consistent (the link is checked when the
  // eVMCS is mapped after the restore: snapshot-evmcs.test.ts).
  assert.is(validate(hv((h) => (h.vpAssistPage = 0n), evmcsL2), HV_LIMITS).rule, 'ok', 'GUEST_MODE eVMCS, VP assist page disabled');
  // x2APIC mode (IA32_APIC_BASE EN and EXTD): the ICR's destination is
  // 32 bits (SDM 11.12.9).
  const x2 = l1Only();
  x2.apic.base |= 1n << 10n;
  x2.apic.page[APIC.ICR_HI / 4] = 0x12345;
  assert.is(validate(encode(x2), BASE_LIMITS).rule, 'ok', 'x2APIC mode, a 32-bit ICR destination');
  // nested=off: a blob without NESTED; without XSAVE: without XSTATE.
  assert.is(validate(encode(l1Only()), { ...BASE_LIMITS, nested: false }).rule, 'ok');
  assert.is(validate(encode({ ...l1Only(), xstate: null }), { ...BASE_LIMITS, xsaveBytes: 0, xcr0Offered: 0n }).rule, 'ok');
});

test('limits from the machine (snapshot/limits.ts fill): MXCSR mask, revision, RAM, nested from the guest\'s configuration', () => {
  // Without kmain (only entry_setup's capability and CPUID reads) the guest
  // has nested=off and the processor no XSAVE: a blob without NESTED and XSTATE, with the
  // MXCSR that FFBFH allows, passes; DAZ (bit 6) is outside FFBFH.
  assert.is(call<number>('snap_fillLimits', RAM, 0) >>> 0, 0xffbf, '0 in the FXSAVE image means FFBFH');
  limitsNow = '';
  const s = { ...l1Only(), xstate: null };
  const put = (b: Uint8Array) => { new Uint8Array(mem().buffer, buf, b.length).set(b); return ruleName(call<number>('snap_validate', BigInt(b.length))); };
  assert.is(put(encode(s)), 'ok');
  new DataView(s.regs.buffer).setUint32(V.REGS_FX + 24, 0x1f80 | 0x40, true);
  assert.is(put(encode(s)), 'regs.mxcsr');
  assert.is(call<number>('snap_fillLimits', RAM, 0xffff) >>> 0, 0xffff);
  assert.is(put(encode(s)), 'ok');
  assert.is(put(encode(vmxIdle())), 'section.unexpected', 'XSTATE without XSAVE');
  assert.is(put(encode({ ...vmxIdle(), xstate: null })), 'nested.not-offered');
});

// ---- one crafted blob per rule ---------------------------------------------------------------

const u16 = (b: Uint8Array, off: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint16(off, v, true);
const u32 = (b: Uint8Array, off: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(off, v >>> 0, true);
const rd32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const entry = (i: number) => V.SNAP_HDR_BYTES + i * V.SNAP_ENTRY_BYTES;
const secAt = (b: Uint8Array, id: number) => table(b).find((e) => e.id === id)!;
/** The Snap's sections with `f` applied to the list, framed. */
const reframe = (s: Snap, f: (l: [number, Uint8Array][]) => [number, Uint8Array][]) => frame(s.vcpu, f(sections(s)));
const withoutSection = (id: number) => (s: Snap) => reframe(s, (l) => l.filter(([i]) => i !== id));
const pairsSwapped = (m: Map<number, bigint>, a: number, b: number) => {
  const e = [...m.entries()];
  [e[a], e[b]] = [e[b], e[a]];
  return new Map(e);
};

interface Case {
  rule: string; base: () => Snap; snap?: (s: Snap) => void; blob?: (s: Snap) => Uint8Array; bytes?: (b: Uint8Array) => Uint8Array; limits?: Partial<Limits>; what: string;
  check?: string; cls?: number; // vmcs12.entry-checks: the failed check's name and class (1 controls, 2 host state, 3 guest state)
}
const CASES: Case[] = [
  // the blob and its table
  { rule: 'blob.truncated', base: l1Only, bytes: (b) => b.slice(0, 20), what: 'shorter than the header' },
  { rule: 'blob.truncated', base: l1Only, bytes: (b) => b.slice(0, b.length - 8), what: 'shorter than TOTAL_BYTES' },
  { rule: 'blob.oversized', base: l1Only, bytes: (b) => Uint8Array.from([...b, 0, 0, 0, 0, 0, 0, 0, 0]), what: 'bytes after TOTAL_BYTES' },
  { rule: 'blob.oversized', base: l1Only, bytes: (b) => { const c = Uint8Array.from([...b, ...new Uint8Array(8)]); u32(c, V.SNAP_HDR_TOTAL_BYTES, c.length); return c; }, what: 'bytes after the last section' },
  { rule: 'blob.magic', base: l1Only, bytes: (b) => (b[0] ^= 1, b), what: 'magic' },
  { rule: 'blob.version', base: l1Only, bytes: (b) => (u16(b, V.SNAP_HDR_VERSION, V.SNAP_VERSION + 1), b), what: 'a newer version' },
  { rule: 'blob.header-size', base: l1Only, bytes: (b) => (u16(b, V.SNAP_HDR_HEADER_BYTES, 40), b), what: 'header size' },
  { rule: 'blob.reserved', base: l1Only, bytes: (b) => (b[V.SNAP_HDR_RESERVED + 3] = 1, b), what: 'header reserved byte' },
  { rule: 'blob.vmcs12-layout', base: vmxIdle, bytes: (b) => (u32(b, V.SNAP_HDR_VMCS12_LAYOUT, V.SNAP_VMCS12_LAYOUT ^ 1), b), what: 'another vmcs12 layout' },
  { rule: 'blob.vcpu', base: l1Only, limits: { vcpu: 1 }, what: 'a blob of vCPU 0 for vCPU 1' },
  { rule: 'blob.section-count', base: l1Only, bytes: (b) => (u32(b, V.SNAP_HDR_SECTION_COUNT, 0), b), what: 'no sections' },
  { rule: 'blob.section-count', base: l1Only, bytes: (b) => (u32(b, V.SNAP_HDR_SECTION_COUNT, V.SNAP_MAX_SECTIONS + 1), b), what: 'too many sections' },
  { rule: 'section.unknown', base: l1Only, blob: (s) => reframe(s, (l) => [...l, [V.SNAP_SEC_LAST + 1, new Uint8Array(8)]]), what: 'an id of a newer format' },
  { rule: 'section.order', base: l1Only, blob: (s) => reframe(s, (l) => [l[0], l[2], l[1], ...l.slice(3)]), what: 'MSRS before VMCS01' },
  { rule: 'section.duplicate', base: l1Only, blob: (s) => reframe(s, (l) => [l[0], ...l]), what: 'REGS twice' },
  { rule: 'section.offset', base: l1Only, bytes: (b) => (u32(b, entry(1) + V.SNAP_ENTRY_OFFSET, rd32(b, entry(1) + V.SNAP_ENTRY_OFFSET) + 8), b), what: 'a gap before VMCS01' },
  { rule: 'section.bounds', base: l1Only, bytes: (b) => { const n = table(b).length - 1; u32(b, entry(n) + V.SNAP_ENTRY_SIZE, rd32(b, entry(n) + V.SNAP_ENTRY_SIZE) + 64); return b; }, what: 'the last section runs past the end' },
  { rule: 'section.reserved', base: l1Only, bytes: (b) => (u32(b, entry(0) + V.SNAP_ENTRY_RESERVED, 1), b), what: 'entry reserved word' },
  { rule: 'section.padding', base: l1Only, blob: (s) => {
    const x = s.xstate!;
    s.xstate = { xcr0: x.xcr0, area: Uint8Array.from([...x.area, 1, 2, 3, 4]) };
    const b = encode(s);
    const e = secAt(b, V.SNAP_SEC_XSTATE);
    b[e.offset + e.size] = 0xcc;
    return b;
  }, what: 'non-zero padding after a section whose size is not a multiple of 8' },
  { rule: 'section.size', base: l1Only, blob: (s) => reframe(s, (l) => l.map(([i, p]) => [i, i === V.SNAP_SEC_REGS ? p.slice(0, 704) : p])), what: 'a register section of the wrong size' },
  { rule: 'section.size', base: l1Only, blob: (s) => reframe(s, (l) => l.map(([i, p]) => [i, i === V.SNAP_SEC_VMCS01 ? p.slice(0, p.length - 8) : p])), what: 'a pair list cut in a pair' },
  { rule: 'section.missing', base: l1Only, blob: withoutSection(V.SNAP_SEC_APIC), what: 'no APIC' },
  { rule: 'section.missing', base: l1Only, blob: withoutSection(V.SNAP_SEC_DEBUG), what: 'no DEBUG (a blob without the debug registers)' },
  { rule: 'section.missing', base: l1Only, blob: withoutSection(V.SNAP_SEC_XSTATE), what: 'no XSTATE on a processor with XSAVE' },
  { rule: 'section.missing', base: vmcs12Loaded, blob: withoutSection(V.SNAP_SEC_VMCS12), what: 'a vmcs12 pointer without its page' },
  { rule: 'section.missing', base: inL2Shadow, blob: withoutSection(V.SNAP_SEC_SHADOW_VMCS12), what: 'GUEST_MODE with shadowing but no shadow vmcs12' },
  { rule: 'section.unexpected', base: l1Only, limits: { xsaveBytes: 0, xcr0Offered: 0n }, what: 'XSTATE on a processor without XSAVE' },
  { rule: 'section.unexpected', base: l1Only, snap: (s) => (s.vmcs12 = vmcs12Page()), what: 'a vmcs12 page without NESTED' },
  { rule: 'section.unexpected', base: vmxIdle, snap: (s) => (s.vmcs12 = vmcs12Page()), what: 'a vmcs12 page without a current VMCS' },
  { rule: 'section.unexpected', base: vmcs12Loaded, snap: (s) => (s.shadow12 = inL2Shadow().shadow12), what: 'a shadow vmcs12 outside GUEST_MODE' },
  // registers, vmcs01, MSRs
  { rule: 'regs.mxcsr', base: l1Only, snap: (s) => u32(s.regs, V.REGS_FX + 24, 0x1f80 | (1 << 17)), what: 'MXCSR reserved bit (FXRSTOR would #GP)' },
  { rule: 'pair.reserved', base: l1Only, bytes: (b) => (u32(b, secAt(b, V.SNAP_SEC_VMCS01).offset + 16 + V.SNAP_PAIR_RESERVED, 1), b), what: 'pair reserved word' },
  { rule: 'vmcs01.encoding', base: l1Only, snap: (s) => (s.vmcs01 = new Map([[V.GUEST_ES_SELECTOR | 1, 0n], ...[...s.vmcs01].slice(1)])), what: 'a high-access encoding' },
  { rule: 'vmcs01.encoding', base: l1Only, snap: (s) => (s.vmcs01 = new Map([[0x1800, 0n], ...[...s.vmcs01].slice(1)])), what: 'encoding bit 12 set' },
  { rule: 'vmcs01.unknown-field', base: l1Only, snap: (s) => (s.vmcs01 = new Map([[0x082e, 0n], ...[...s.vmcs01].slice(1)])), what: 'a field the table does not know (a newer writer)' },
  { rule: 'vmcs01.not-a-snapshot-field', base: l1Only, snap: (s) => s.vmcs01.set(V.HOST_RIP, 0n), what: 'a host-state field' },
  { rule: 'vmcs01.order', base: l1Only, snap: (s) => (s.vmcs01 = pairsSwapped(s.vmcs01, 3, 4)), what: 'two fields swapped' },
  { rule: 'vmcs01.missing-field', base: l1Only, snap: (s) => s.vmcs01.delete(V.GUEST_RIP), what: 'no guest RIP (an older writer)' },
  { rule: 'vmcs01.value-width', base: l1Only, snap: (s) => s.vmcs01.set(V.GUEST_CS_SELECTOR, 0x10000n), what: 'a 16-bit field with bit 16' },
  { rule: 'msr.unknown', base: l1Only, snap: (s) => (s.msrs = new Map([[V.MSR_IA32_TIME_STAMP_COUNTER, 0n], ...s.msrs])), what: 'an MSR the format does not carry' },
  { rule: 'msr.order', base: l1Only, snap: (s) => (s.msrs = pairsSwapped(s.msrs, 0, 1)), what: 'two MSRs swapped' },
  { rule: 'msr.missing', base: l1Only, snap: (s) => s.msrs.delete(V.MSR_IA32_STAR), what: 'no IA32_STAR' },
  { rule: 'msr.value', base: l1Only, snap: (s) => s.msrs.set(V.MSR_IA32_LSTAR, 0x0000800000000000n), what: 'non-canonical IA32_LSTAR (WRMSR would #GP)' },
  { rule: 'msr.value', base: l1Only, snap: (s) => s.msrs.set(V.MSR_IA32_MTRR_DEF_TYPE, 0xc02n), what: 'MTRR default type 2' },
  { rule: 'msr.value', base: l1Only, snap: (s) => s.msrs.set(V.MSR_IA32_TSC_AUX, 1n << 32n), what: 'IA32_TSC_AUX bit 32' },
  // APIC, events, timers, extended state
  { rule: 'apic.base', base: l1Only, snap: (s) => (s.apic.base = 0xfec00900n), what: 'a relocated APIC' },
  { rule: 'apic.base', base: l1Only, snap: (s) => (s.apic.base = (s.apic.base & ~(1n << 11n)) | (1n << 10n)), what: 'EXTD without EN (the invalid state of 11.12.5)' },
  { rule: 'apic.reserved-bits', base: l1Only, snap: (s) => (s.apic.page[APIC.ICR_HI / 4] = 0x00000005), what: 'xAPIC mode: ICR bits 55:32' },
  { rule: 'apic.version', base: l1Only, snap: (s) => (s.apic.page[APIC.VERSION / 4] = 0x00060015), what: 'another APIC model' },
  { rule: 'apic.reserved-bits', base: l1Only, snap: (s) => (s.apic.page[APIC.TPR / 4] = 0x100), what: 'TPR bit 8' },
  { rule: 'apic.reserved-bits', base: l1Only, snap: (s) => (s.apic.page[APIC.IRR / 4] = 1 << 3), what: 'vector 3 pending in IRR' },
  { rule: 'apic.reserved-bits', base: l1Only, snap: (s) => (s.apic.page[(APIC.LVT_TIMER + 4) / 4] = 1), what: 'a byte between registers' },
  { rule: 'apic.state', base: l1Only, snap: (s) => (s.apic.page[APIC.SVR / 4] = 0xff), what: 'software-disabled with an unmasked LVT entry' },
  { rule: 'apic.state', base: l1Only, snap: (s) => (s.apic.base = 0xfee00100n), what: 'globally disabled but not in its power-up state' },
  { rule: 'events.reserved', base: l1Only, bytes: (b) => (u32(b, secAt(b, V.SNAP_SEC_EVENTS).offset + V.SNAP_EVENTS_L2_RESERVED, 1), b), what: 'reserved word' },
  { rule: 'events.nmi-pending', base: l1Only, bytes: (b) => (u32(b, secAt(b, V.SNAP_SEC_EVENTS).offset + V.SNAP_EVENTS_NMI_PENDING, 2), b), what: 'NMI_PENDING 2 (only 0 and 1)' },
  { rule: 'events.l1-injection', base: l1Only, snap: (s) => (s.events.l1 = [(0x80000000 | (3 << 8) | 32) >>> 0, 0, 0]), what: 'hardware exception vector 32' },
  { rule: 'events.l1-injection', base: l1Only, snap: (s) => (s.events.l1 = [(0x80000000 | (3 << 8) | 13) >>> 0, 0, 0]), what: '#GP without its error code' },
  { rule: 'events.l1-injection', base: l1Only, snap: (s) => (s.events.l1 = [(0x80000000 | (4 << 8) | 0x80) >>> 0, 0, 0]), what: 'INT 80H of length 0' },
  { rule: 'events.l2-injection', base: inL2, snap: (s) => (s.events.l2 = [(0x80000000 | (1 << 8) | 0x20) >>> 0, 0, 0]), what: 'the reserved type 1' },
  { rule: 'events.l2-without-guest-mode', base: vmcs12Loaded, snap: (s) => (s.events.l2 = [PF_WITH_CODE, 2, 0]), what: 'an event for L2 while L1 runs' },
  { rule: 'events.run-pending-mismatch', base: runPending, snap: (s) => (s.events.l2 = [PF_WITH_CODE, 6, 0]), what: "not the event vmcs12 asked for" },
  { rule: 'timers.reserved', base: l1Only, bytes: (b) => (b[secAt(b, V.SNAP_SEC_TIMERS).offset + V.SNAP_TIMERS_RESERVED] = 1, b), what: 'reserved byte' },
  { rule: 'timers.apic-deadline-without-count', base: l1Only, snap: (s) => (s.apic.page[APIC.INITIAL / 4] = 0), what: 'a deadline with initial count 0' },
  { rule: 'debug.reserved', base: l1Only, bytes: (b) => (b[secAt(b, V.SNAP_SEC_DEBUG).offset + V.SNAP_DEBUG_RESERVED + 5] = 1, b), what: 'reserved byte' },
  { rule: 'debug.dr6', base: l1Only, snap: (s) => (s.debug.dr6 |= 1n << 32n), what: 'DR6 bit 32 (MOV to DR6 would #GP)' },
  { rule: 'xstate.size', base: l1Only, snap: (s) => (s.xstate = { xcr0: 7n, area: s.xstate!.area.slice(0, 768) }), what: 'an area of another processor' },
  { rule: 'xstate.reserved', base: l1Only, bytes: (b) => (b[secAt(b, V.SNAP_SEC_XSTATE).offset + V.SNAP_XSTATE_RESERVED] = 1, b), what: 'reserved byte' },
  { rule: 'xstate.xcr0', base: l1Only, snap: (s) => (s.xstate!.xcr0 = 5n), what: 'AVX without SSE' },
  { rule: 'xstate.xcr0', base: l1Only, snap: (s) => (s.xstate!.xcr0 = 0x1fn), what: 'a component not offered' },
  { rule: 'xstate.header', base: l1Only, snap: (s) => new DataView(s.xstate!.area.buffer).setBigUint64(512, 0x8n, true), what: 'XSTATE_BV with a component not offered' },
  { rule: 'xstate.header', base: l1Only, snap: (s) => new DataView(s.xstate!.area.buffer).setBigUint64(520, 1n << 63n, true), what: 'the compacted form' },
  { rule: 'xstate.mxcsr', base: l1Only, snap: (s) => new DataView(s.xstate!.area.buffer).setUint32(24, 0x11f80, true), what: 'MXCSR bit 16 (XRSTOR would #GP)' },
  // nested state
  { rule: 'nested.not-offered', base: vmxIdle, limits: { nested: false }, what: 'VMX state for a guest without nested=on' },
  { rule: 'nested.reserved', base: vmxIdle, bytes: (b) => (b[secAt(b, V.SNAP_SEC_NESTED).offset + V.SNAP_NESTED_RESERVED0] = 1, b), what: 'reserved byte' },
  { rule: 'nested.l2-state-without-guest-mode', base: vmcs12Loaded, snap: (s) => (s.nested!.l2 = [0n, 0x0007040600070406n, 0n, 0n]), what: "L2's PAT while L1 runs" },
  { rule: 'nested.l2-state', base: inL2, snap: (s) => (s.nested!.l2![0] = BigInt(V.X86_EFER_LMA)), what: "L2's EFER.LMA without \"IA-32e mode guest\"" },
  { rule: 'nested.l2-state', base: inL2, snap: (s) => (s.nested!.l2![1] = 0x0007040600070402n), what: "L2's PAT with a reserved memory type (2)" },
  { rule: 'nested.l2-state', base: inL2, snap: (s) => (s.nested!.l2![2] = 1n << 32n), what: "L2's DR7 bit 32" },
  { rule: 'nested.flags-unknown', base: inL2, snap: (s) => (s.nested!.flags |= 8), what: 'flag 8' },
  { rule: 'nested.evmcs-not-offered', base: inL2, snap: (s) => (s.nested!.flags |= V.SNAP_FLAG_EVMCS), what: 'an eVMCS for a guest without hyperv=on' },
  { rule: 'nested.evmcs-without-address', base: evmcsL1, limits: HV, snap: (s) => Object.assign(s, { nested: { ...s.nested!, vmcs12: NONE }, vmcs12: null }), what: 'EVMCS without the eVMCS address' },
  { rule: 'nested.flags-without-vmxon', base: evmcsL1, limits: HV, snap: (s) => Object.assign(s, { nested: { ...s.nested!, vmxon: NONE, vmcs12: NONE }, vmcs12: null }), what: 'EVMCS outside VMX operation' },
  { rule: 'nested.vmcs12-outside-ram', base: evmcsL2, limits: HV, snap: (s) => (s.nested!.vmcs12 = RAM), what: "an eVMCS past L1's RAM (the enlightened entry refused it)" },
  { rule: 'nested.vmcs12-misaligned', base: evmcsL1, limits: HV, snap: (s) => (s.nested!.vmcs12 = EVMCS12 + 0x10n), what: 'an eVMCS not 4-KiB aligned' },
  { rule: 'vmcs12.revision', base: evmcsL1, limits: HV, snap: (s) => u32(s.vmcs12!, V.VMCS12_REVISION_ID_OFFSET, 1), what: "a copy of an eVMCS with the eVMCS's version (1) as its revision word" },
  { rule: 'vmcs12.shadow-indicator', base: evmcsL1, limits: HV, snap: (s) => u32(s.vmcs12!, V.VMCS12_REVISION_ID_OFFSET, (REV | SHADOW_BIT) >>> 0), what: 'a copy of an eVMCS marked as a shadow VMCS' },
  // the Hyper-V synthetic MSRs (TLFS)
  { rule: 'hyperv.not-offered', base: hvL1, what: 'Hyper-V state for a guest without hyperv=on' },
  { rule: 'section.missing', base: l1Only, limits: HV, what: 'no HYPERV for a guest with hyperv=on' },
  { rule: 'hyperv.reserved', base: hvL1, limits: HV, bytes: (b) => (b[secAt(b, V.SNAP_SEC_HYPERV).offset + V.SNAP_HYPERV_RESERVED + 9] = 1, b), what: 'reserved byte' },
  { rule: 'hyperv.reserved-bits', base: hvL1, limits: HV, snap: (s) => (s.hyperv!.vpAssistPage |= 2n), what: 'VP assist page MSR bit 1 (TLFS: reserved, #GP)' },
  { rule: 'hyperv.reserved-bits', base: hvL1, limits: HV, snap: (s) => (s.hyperv!.tscInvariantControl = 3n), what: 'TSC_INVARIANT_CONTROL bit 1 (reserved, #GP)' },
  { rule: 'hyperv.page-outside-ram', base: hvL1, limits: HV, snap: (s) => (s.hyperv!.vpAssistPage = RAM | 1n), what: "an enabled VP assist page past the guest's RAM" },
  { rule: 'hyperv.page-outside-ram', base: evmcsL2, limits: HV, snap: (s) => (s.hyperv!.hypercall = (1n << 40n) | 1n), what: "an enabled hypercall page beyond the guest's RAM" },
  { rule: 'hyperv.hypercall-without-os-id', base: hvL1, limits: HV, snap: (s) => (s.hyperv!.guestOsId = 0n), what: 'the hypercall page enabled without a guest OS identity (TLFS: writing 0 disables it)' },
  { rule: 'nested.run-pending-without-guest-mode', base: vmcs12Loaded, snap: (s) => (s.nested!.flags = V.SNAP_FLAG_RUN_PENDING), what: 'RUN_PENDING alone' },
  { rule: 'nested.flags-without-vmxon', base: vmxIdle, snap: (s) => Object.assign(s.nested!, { vmxon: NONE, flags: V.SNAP_FLAG_GUEST_MODE }), what: 'GUEST_MODE outside VMX operation' },
  { rule: 'nested.vmcs12-without-vmxon', base: vmcs12Loaded, snap: (s) => (s.nested!.vmxon = NONE), what: 'a current VMCS outside VMX operation' },
  { rule: 'nested.guest-mode-without-vmcs12', base: vmxIdle, snap: (s) => (s.nested!.flags = V.SNAP_FLAG_GUEST_MODE), what: 'GUEST_MODE without a current VMCS' },
  { rule: 'nested.vmxon-misaligned', base: vmxIdle, snap: (s) => (s.nested!.vmxon = VMXON + 0x10n), what: 'VMXON pointer not 4-KByte aligned' },
  { rule: 'nested.vmxon-beyond-maxphyaddr', base: vmxIdle, snap: (s) => (s.nested!.vmxon = 1n << 39n), what: 'VMXON pointer at 2^MAXPHYADDR' },
  { rule: 'nested.vmxon-outside-ram', base: vmxIdle, snap: (s) => (s.nested!.vmxon = RAM), what: "VMXON pointer at the end of L1's RAM" },
  { rule: 'nested.vmcs12-misaligned', base: vmcs12Loaded, snap: (s) => (s.nested!.vmcs12 = VMCS12 + 0x800n), what: 'vmcs12 pointer not aligned' },
  { rule: 'nested.vmcs12-beyond-maxphyaddr', base: vmcs12Loaded, snap: (s) => (s.nested!.vmcs12 = (1n << 40n) | VMCS12), what: 'vmcs12 pointer beyond MAXPHYADDR' },
  { rule: 'nested.vmcs12-outside-ram', base: vmcs12Loaded, snap: (s) => (s.nested!.vmcs12 = RAM), what: "vmcs12 page past L1's RAM" },
  { rule: 'nested.vmcs12-is-vmxon', base: vmcs12Loaded, snap: (s) => (s.nested!.vmcs12 = VMXON), what: 'vmcs12 pointer = VMXON pointer' },
  { rule: 'vmcs12.revision', base: vmcs12Loaded, snap: (s) => u32(s.vmcs12!, V.VMCS12_REVISION_ID_OFFSET, REV + 1), what: 'another revision identifier' },
  { rule: 'vmcs12.shadow-indicator', base: inL2, snap: (s) => u32(s.vmcs12!, V.VMCS12_REVISION_ID_OFFSET, (REV | SHADOW_BIT) >>> 0), what: 'L2 running from a shadow VMCS' },
  { rule: 'vmcs12.shadow-indicator', base: vmcs12Loaded, limits: { shadowVmcs: false }, snap: (s) => u32(s.vmcs12!, V.VMCS12_REVISION_ID_OFFSET, (REV | SHADOW_BIT) >>> 0), what: 'a shadow VMCS current without shadowing offered' },
  { rule: 'vmcs12.launch-state', base: vmcs12Loaded, snap: (s) => u32(s.vmcs12!, V.VMCS12_LAUNCH_STATE_OFFSET, 2), what: 'launch state 2' },
  { rule: 'vmcs12.launch-state', base: inL2, snap: (s) => u32(s.vmcs12!, V.VMCS12_LAUNCH_STATE_OFFSET, 0), what: 'GUEST_MODE from a clear VMCS' },
  { rule: 'nested.timer-without-guest-mode', base: vmcs12Loaded, snap: (s) => (s.nested!.deadline = 1000n), what: "L1's preemption timer while L1 runs" },
  { rule: 'nested.timer-not-activated', base: inL2, snap: (s) => set12(s.vmcs12!, V.PIN_BASED_VM_EXEC_CONTROL, 0x16n), what: 'a deadline vmcs12 does not ask for' },
  { rule: 'nested.timer-missing', base: inL2, snap: (s) => (s.nested!.deadline = NONE), what: 'an activated timer without its deadline' },
  { rule: 'shadow-vmcs12.revision', base: inL2Shadow, snap: (s) => u32(s.shadow12!, 0, REV), what: 'a shadow vmcs12 without the shadow-VMCS indicator' },
  { rule: 'shadow-vmcs12.link-pointer', base: inL2Shadow, snap: (s) => set12(s.vmcs12!, V.VMCS_LINK_POINTER, VMCS12), what: 'the link pointer naming vmcs12 itself' },
  { rule: 'shadow-vmcs12.link-pointer', base: inL2Shadow, snap: (s) => set12(s.vmcs12!, V.VMCS_LINK_POINTER, RAM), what: "the link pointer outside L1's RAM" },
  // The SDM's VM-entry checks on a GUEST_MODE vmcs12 (nested/entry-checks.ts
  // checkAll), one case per class at least, the verdict naming the check.
  { rule: 'vmcs12.entry-checks', check: 'ctls.pin.reserved', cls: 1, base: inL2, snap: (s) => set12(s.vmcs12!, V.PIN_BASED_VM_EXEC_CONTROL, BigInt(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER)), what: 'pin-based must-be-1 bits clear (27.2.1.1)' },
  { rule: 'vmcs12.entry-checks', check: 'ctls.exit-msr-store.ram', cls: 1, base: inL2, limits: { ramBytes: MSR_AREA }, what: "the VM-exit MSR-store area past the blob's RAM limit (the hypervisor's own rule, 27.2.1.2)" },
  { rule: 'vmcs12.entry-checks', check: 'ctls.msr-bitmap.ram', cls: 1, base: inL2, limits: { ramBytes: 2n * RAM }, snap: (s) => set12(s.vmcs12!, V.MSR_BITMAPS, RAM + 0x1000n), what: "an MSR bitmap inside the limit but past the VM's own RAM" },
  { rule: 'vmcs12.entry-checks', check: 'host.rip.canonical', cls: 2, base: inL2, snap: (s) => set12(s.vmcs12!, V.HOST_RIP, 0x0000800000000000n), what: 'a non-canonical host RIP for a 64-bit L1 (27.2.3)' },
  { rule: 'vmcs12.entry-checks', check: 'host.l1-legacy.host-64', cls: 2, base: inL2, snap: (s) => s.vmcs01.set(V.GUEST_IA32_EFER, 0n), what: "L1 outside IA-32e mode at its VMLAUNCH (VMCS01's IA32_EFER.LMA 0) with \"host address-space size\" 1 (27.2.4; an IA-32e mode L2 alone is accepted: L2 may have turned it on itself)" },
  { rule: 'vmcs12.entry-checks', check: 'guest.rflags.fixed1', cls: 3, base: runPending, snap: (s) => set12(s.vmcs12!, V.GUEST_RFLAGS, 0n), what: "RFLAGS bit 1 clear (27.3.1.4)" },
  { rule: 'vmcs12.entry-checks', check: 'guest.cr0.fixed', cls: 3, base: inL2, snap: (s) => set12(s.vmcs12!, V.GUEST_CR0, CR0_PROT & ~1n), what: 'CR0.PE clear without "unrestricted guest" (27.3.1.1: IA32_VMX_CR0_FIXED0)' },
  { rule: 'vmcs12.entry-checks', check: 'guest.link.revision', cls: 3, base: inL2Shadow, snap: (s) => set12(s.vmcs12!, V.VMCS_LINK_POINTER, 0x50000n), what: "the link pointer naming a page of L1's RAM that is no VMCS (27.3.1.5: the word read from L1's RAM)" },
];

function craft(c: Case): Uint8Array {
  const s = c.base();
  if (c.snap) c.snap(s);
  let b = c.blob ? c.blob(s) : encode(s);
  if (c.bytes) b = c.bytes(b);
  return b;
}

test('every rule: a crafted blob breaking it is rejected with its name', () => {
  for (const c of CASES) {
    const a = validate(craft(c), { ...BASE_LIMITS, ...c.limits });
    assert.is(a.rule, c.rule, `${c.what}: expected ${c.rule}, got ${a.rule} (section ${a.section}, item ${a.item}, value 0x${a.value.toString(16)}${a.check ? `, check ${a.check}` : ''})`);
    if (c.rule === 'vmcs12.entry-checks') {
      assert.is(a.check, c.check, `${c.what}: the failed check`);
      assert.is(a.value, BigInt(c.cls!), `${c.what}: the class`);
      assert.is(a.section, V.SNAP_SEC_VMCS12, c.what);
      const s = c.base();
      c.snap?.(s);
      const lma = (s.vmcs01.get(V.GUEST_IA32_EFER)! & BigInt(V.X86_EFER_LMA)) !== 0n;
      assert.is(oracleClass(s.vmcs12!, s.nested!.vmcs12, lma, c.limits?.ramBytes ?? RAM), c.cls, `${c.what}: the model's class`);
    } else {
      assert.is(a.check, '', `${c.what}: no entry check named`);
    }
  }
});

test('every rule has a case, and every class of entry check', () => {
  const covered = new Set(CASES.map((c) => c.rule));
  const missing: string[] = [];
  for (let r = 1; r < RULES; r++) {
    const n = ruleName(r);
    assert.ok(n.length > 0, `rule ${r} has a name`);
    if (!covered.has(n)) missing.push(n);
  }
  assert.equal(missing, [], 'rules without a crafted blob');
  const classes = new Set(CASES.filter((c) => c.rule === 'vmcs12.entry-checks').map((c) => c.cls));
  assert.equal([...classes].sort(), [1, 2, 3], 'controls, host state and guest state each have a case');
});

test('the verdict names where: section, item and value', () => {
  const s = l1Only();
  s.vmcs01.set(V.GUEST_CS_SELECTOR, 0x12345n);
  const a = validate(encode(s));
  assert.is(a.rule, 'vmcs01.value-width');
  assert.is(a.section, V.SNAP_SEC_VMCS01);
  assert.is(a.item, V.SNAP_VMCS01_FIELDS.indexOf(V.GUEST_CS_SELECTOR));
  assert.is(a.value, 0x12345n);
  const m = l1Only();
  m.vmcs01.delete(V.GUEST_RFLAGS);
  const b = validate(encode(m));
  assert.is(b.rule, 'vmcs01.missing-field');
  assert.is(b.value, BigInt(V.GUEST_RFLAGS), 'the first field missing');
});

test('the error message names the rule, the section, the item and the value', () => {
  const m = k.machine;
  const s = l1Only();
  s.msrs.set(V.MSR_IA32_KERNEL_GS_BASE, 0x0001000000000000n);
  assert.is(validate(encode(s)).rule, 'msr.value');
  const before = m.console.length;
  call('snap_report');
  assert.match(m.console.slice(before), /^hv: snapshot rejected: msr\.value \(section MSRS, item 18, value 0x1000000000000\)\n/);
  const h = encode(l1Only());
  h[0] ^= 0xff;
  assert.is(validate(h).rule, 'blob.magic');
  const b2 = m.console.length;
  call('snap_report');
  assert.match(m.console.slice(b2), /^hv: snapshot rejected: blob\.magic \(value 0x4e5348a9\)\n/);
  assert.is(validate(encode(inL2())).rule, 'ok');
  const b3 = m.console.length;
  call('snap_report');
  assert.match(m.console.slice(b3), /^hv: snapshot accepted\n/);
  // A vmcs12 that fails an entry check: the class and the check's name.
  const h2 = inL2();
  set12(h2.vmcs12!, V.HOST_RIP, 0x0000800000000000n);
  assert.is(validate(encode(h2)).rule, 'vmcs12.entry-checks');
  const b4 = m.console.length;
  call('snap_report');
  assert.match(m.console.slice(b4), /^hv: snapshot rejected: vmcs12\.entry-checks \(section VMCS12, value 0x2\): vmcs12 failed the VM-entry checks: host state \(SDM 27\.2\.2-27\.2\.4\): host\.rip\.canonical\n/);
});

// ---- the kernel's Writer ---------------------------------------------------------------------

/** Build s with the kernel's Writer (snap_w_*); returns finish()'s size. */
function writeWithKernel(s: Snap, capacity = BUF_BYTES, order?: (l: [number, Uint8Array][]) => [number, Uint8Array][], announce?: number): number {
  const secs = order ? order(sections(s)) : sections(s);
  call('snap_w_begin', BigInt(capacity), announce ?? secs.length, s.vcpu);
  for (const [id, payload] of secs) {
    call('snap_w_section', id);
    const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    let i = 0;
    for (; i + 8 <= payload.length; i += 8) call('snap_w_u64', dv.getBigUint64(i, true));
    for (; i + 4 <= payload.length; i += 4) call('snap_w_u32', dv.getUint32(i, true));
    if (i < payload.length) throw new Error('payload not a multiple of 4');
    call('snap_w_end');
  }
  return Number(BigInt.asUintN(64, call<bigint>('snap_w_finish')));
}

test("the kernel's Writer builds the documented bytes, and stays inside its capacity", () => {
  for (const [name, make] of Object.entries(BASES)) {
    const want = encode(make());
    const n = writeWithKernel(make());
    assert.is(n, want.length, name);
    assert.ok(Buffer.from(new Uint8Array(mem().buffer, buf, n)).equals(Buffer.from(want)), `${name}: bytes differ`);
  }
  const s = inL2Shadow();
  const size = encode(s).length;
  // Too small: nothing written past the capacity, and finish() says 0.
  const view = new Uint8Array(mem().buffer, buf, BUF_BYTES);
  view.fill(0xa5);
  assert.is(writeWithKernel(s, size - 8), 0);
  assert.ok(view.subarray(size - 8, size + 64).every((x) => x === 0xa5), 'bytes past the capacity untouched');
  assert.is(writeWithKernel(s, size), size);
  // Sections out of order, or not as many as announced: 0.
  assert.is(writeWithKernel(s, BUF_BYTES, (l) => [l[1], l[0], ...l.slice(2)]), 0);
  assert.is(writeWithKernel(s, BUF_BYTES, undefined, sections(s).length + 1), 0);
  assert.is(writeWithKernel(s, BUF_BYTES, (l) => l.slice(1), sections(s).length), 0);
});

// ---- random mutations ------------------------------------------------------------------------

test(`${MUTATIONS} random mutations of valid blobs: accepted or rejected by a named rule, no trap, blob untouched`, () => {
  const rng = prng(SEED);
  const names = Object.keys(BASES);
  const bases = Object.values(BASES).map((f) => encode(f()));
  const tables = bases.map((b) => table(b)); // where the sections are before any mutation
  const interesting32 = [0, 1, 2, 7, 8, 0x10, 0x80000000, 0xffffffff, 0x7fffffff, 0x1000, 0xfff, V.SNAP_SEC_LAST, V.SNAP_SEC_LAST + 1];
  const interesting64 = [0n, NONE, 1n << 63n, 1n << 39n, RAM, RAM - 0x1000n, VMXON, VMCS12, 0x1000n];
  // vmcs12's fields, for the mutations aimed at them: most of the page is
  // unused slots, which a random word would mostly hit.
  const fields12 = V.VMCS_FIELDS.filter((f) => V.vmcs12Offset(f.encoding) >= 0 && (f.encoding & 1) === 0);
  // An accepted blob's framing is sound: its NESTED flags can be read.
  const guestMode = (b: Uint8Array): boolean => {
    const nested = table(b).find((e) => e.id === V.SNAP_SEC_NESTED);
    return nested !== undefined && (new DataView(b.buffer, b.byteOffset).getUint32(nested.offset + V.SNAP_NESTED_FLAGS, true) & V.SNAP_FLAG_GUEST_MODE) !== 0;
  };
  const hits = new Map<string, number>();
  const entryFailed = new Map<string, number>(); // check name -> rejections
  const entryClasses = [0, 0, 0, 0];
  let accepted = 0;
  let guestModeAccepted = 0;
  const oracleDisagrees: string[] = [];
  const view = () => new Uint8Array(mem().buffer, buf, BUF_BYTES);
  for (let n = 0; n < MUTATIONS; n++) {
    const which = rng.int(bases.length);
    let b = Uint8Array.from(bases[which]);
    const t = tables[which];
    const steps = 1 + rng.int(3);
    for (let k = 0; k < steps; k++) {
      const dv = new DataView(b.buffer);
      const kind = rng.int(10);
      if (kind === 0 && b.length > 0) {
        const off = rng.int(b.length);
        b[off] ^= 1 << rng.int(8);
      } else if (kind === 1 && b.length >= 4) {
        dv.setUint32(rng.int(b.length >> 2) << 2, rng.pick(interesting32) >>> 0, true);
      } else if (kind === 2 && b.length >= 8) {
        dv.setBigUint64(rng.int(b.length >> 3) << 3, rng.pick(interesting64), true);
      } else if (kind === 3) {
        // Cut or extend: near the end, or anywhere.
        const len = rng.int(2) ? Math.max(0, b.length - 1 - rng.int(64)) : rng.int(b.length + 64);
        const c = new Uint8Array(len);
        c.set(b.subarray(0, Math.min(len, b.length)));
        b = c;
      } else if (kind === 4 && t.length > 0 && b.length >= V.SNAP_HDR_BYTES + t.length * 16) {
        // A section table entry: id, offset or size nudged or replaced.
        const e = entry(rng.int(Math.min(t.length, 16))) + 4 * rng.int(4);
        if (e + 4 <= b.length) dv.setUint32(e, rng.int(2) ? (dv.getUint32(e, true) + (rng.int(2) ? 8 : -8)) >>> 0 : rng.pick(interesting32) >>> 0, true);
      } else if (kind >= 8) {
        // A vmcs12 field of a blob that has one: a bit flipped, or a value
        // an entry check cares about (all ones, zero, a canonical edge, a
        // page of RAM, past RAM).
        const s = t.find((e) => e.id === V.SNAP_SEC_VMCS12);
        if (s !== undefined && s.offset + s.size <= b.length) {
          const page = b.subarray(s.offset, s.offset + s.size);
          const f = rng.pick(fields12);
          const w = f.width === 'natural' ? 64 : f.width;
          const old = get12(page, f.encoding);
          const v = rng.int(2) ? old ^ (1n << BigInt(rng.int(w))) : rng.pick([0n, NONE, 1n << 47n, 0xffff800000000000n, 0x50000n, RAM, 1n]);
          set12(page, f.encoding, v);
        }
      } else if (kind >= 5 && t.length > 0) {
        // Inside a section: a word of it set to something interesting.
        const s = rng.pick(t);
        if (s.size >= 8 && s.offset + s.size <= b.length) {
          const off = s.offset + (rng.int(s.size >> 3) << 3);
          if (rng.int(2)) dv.setBigUint64(off, rng.pick(interesting64), true);
          else dv.setUint32(off + 4 * rng.int(2), rng.int(2) ? rng.pick(interesting32) >>> 0 : Number(rng.next() & 0xffffffffn), true);
        }
      }
    }
    if (b.length > BUF_BYTES) b = b.subarray(0, BUF_BYTES);
    setLimits(limitsOf(names[which]));
    view().set(b);
    const r = k.call<number>('snap_validate', BigInt(b.length));
    if (r.ended) assert.unreachable(`mutation ${n} (SEED=${SEED}): the validator trapped: ${r.trap ?? r.faults.join('; ')}`);
    const rule = r.value!;
    assert.ok(rule >= 0 && rule < RULES, `mutation ${n}: rule number ${rule}`);
    const name = ruleName(rule);
    assert.ok(name.length > 0, `mutation ${n}: rule ${rule} has no name`);
    assert.ok(Buffer.from(view().subarray(0, b.length)).equals(Buffer.from(b)), `mutation ${n}: the validator wrote to the blob`);
    if ((n & 15) === 0) assert.is(k.call<number>('snap_validate', BigInt(b.length)).value, rule, `mutation ${n}: same answer twice`);
    if (rule === 0) accepted++;
    hits.set(name, (hits.get(name) ?? 0) + 1);
    // A GUEST_MODE blob that got as far as its vmcs12's entry checks
    // passed them (accepted) or was refused by one, with its name.
    const entryClass = rule === 0 && guestMode(b) ? 0 : name === 'vmcs12.entry-checks' ? Number(BigInt.asUintN(64, k.call<bigint>('snap_verdictValue').value!)) : -1;
    if (entryClass >= 0) {
      // The model's oracle agrees: a GUEST_MODE blob accepted is one whose
      // vmcs12 VM entry would take, and one rejected fails the same class.
      const t2 = table(b);
      const at = (id: number) => t2.find((e) => e.id === id)!.offset;
      const dv = new DataView(b.buffer, b.byteOffset);
      const efer = dv.getBigUint64(at(V.SNAP_SEC_VMCS01) + V.SNAP_VMCS01_FIELDS.indexOf(V.GUEST_IA32_EFER) * V.SNAP_PAIR_BYTES + V.SNAP_PAIR_VALUE, true);
      // (With an eVMCS no VMPTRLD'ed VMCS was current at the entry.)
      const evmcs = (dv.getUint32(at(V.SNAP_SEC_NESTED) + V.SNAP_NESTED_FLAGS, true) & V.SNAP_FLAG_EVMCS) !== 0;
      const want = oracleClass(b.subarray(at(V.SNAP_SEC_VMCS12), at(V.SNAP_SEC_VMCS12) + V.VMCS12_PAGE_SIZE),
        evmcs ? NONE : dv.getBigUint64(at(V.SNAP_SEC_NESTED) + V.SNAP_NESTED_VMCS12, true), (efer & BigInt(V.X86_EFER_LMA)) !== 0n, RAM);
      if (want !== entryClass) oracleDisagrees.push(`mutation ${n}: kernel class ${entryClass}, model ${want}`);
    }
    if (rule === 0 && guestMode(b)) guestModeAccepted++;
    if (name === 'vmcs12.entry-checks') {
      const check = asString(k.call<number>('snap_verdictCheck').value! >>> 0);
      const cls = entryClass;
      assert.ok(cls >= 1 && cls <= 3, `mutation ${n}: entry-check class ${cls}`);
      assert.ok(/^(ctls|host|guest)\.[a-z0-9.-]+$/.test(check) && check.startsWith(['', 'ctls.', 'host.', 'guest.'][cls]), `mutation ${n}: check name "${check}" of class ${cls}`);
      entryClasses[cls]++;
      entryFailed.set(check, (entryFailed.get(check) ?? 0) + 1);
    }
  }
  const top = [...hits].sort((a, b) => b[1] - a[1]);
  console.log(`snapshot-validate: ${MUTATIONS} mutations, ${accepted} accepted, ${hits.size} rules hit: ${top.map(([n, c]) => `${n} ${c}`).join(', ')}`);
  const checks = [...entryFailed].sort((a, b) => b[1] - a[1]);
  console.log(`snapshot-validate: GUEST_MODE blobs accepted after the entry checks ${guestModeAccepted}, rejected by them ${entryClasses[1] + entryClasses[2] + entryClasses[3]} ` +
    `(controls ${entryClasses[1]}, host state ${entryClasses[2]}, guest state ${entryClasses[3]}; ${entryFailed.size} checks: ${checks.map(([c, x]) => `${c} ${x}`).join(', ')})`);
  // The mutations reach deep into the blob, not only its header, and into
  // vmcs12 far enough to flip entry-check outcomes both ways.
  assert.equal(oracleDisagrees.slice(0, 10), [], `the kernel's entry checks and the model's disagree (${oracleDisagrees.length} times)`);
  if (MUTATIONS >= 10000) {
    assert.ok(hits.size >= 30, `only ${hits.size} different answers`);
    assert.ok(guestModeAccepted > 0, 'no GUEST_MODE blob passed the entry checks');
    for (const c of [1, 2, 3]) assert.ok(entryClasses[c] > 0, `no entry-check rejection of class ${c}`);
  }
  // The checks left nothing behind: the valid blobs still pass, the broken
  // ones still fail the same check.
  for (const [name, make] of Object.entries(BASES)) assert.is(validate(encode(make()), limitsOf(name)).rule, 'ok', `${name} after the mutations`);
  for (const c of CASES.filter((x) => x.rule === 'vmcs12.entry-checks')) assert.is(validate(craft(c), { ...BASE_LIMITS, ...c.limits }).check, c.check, `${c.what} after the mutations`);
});

test.run();
