// Randomized VM entries of L1 (issue 9): at least 100,000 VMLAUNCHes of
// vmcs12s with random control combinations, end to end on kernel.wasm (the
// kernel's launch path: entry checks, vmcs02 merge, the model processor's
// own VM entry on vmcs02). Every entry must either reach L2 (vmcs02 current
// at the next entry; an L2 CPUID is then reflected to L1 at its host RIP)
// or fail exactly as the SDM says, by an oracle that shares no code with
// the kernel (tests/model/entry-checks.ts, plus the VM-entry MSR-load rules
// of 27.4 written here):
//
//   controls broken       VMfailValid(7)   27.2.1
//   host state broken     VMfailValid(8)   27.2.2-27.2.4 (either, when both:
//                                          "these checks may be performed in
//                                          any order", 27.2)
//   guest state broken    VM-entry failure, exit reason 80000021H, with the
//                         qualification of one broken rule (27.3, 27.8)
//   MSR loading fails     exit reason 80000022H, qualification = the 1-based
//                         index of the first bad entry (27.4)
//
// The controls are random: a random subset of allowed-1 together with the
// bits allowed-0 forces (biased to valid), a single bit violation, or a
// wholly random word, for the pin-based, primary, secondary, VM-exit and
// VM-entry controls; with them random related fields (CR3-target count,
// MSR-list counts, addresses and entries, I/O- and MSR-bitmap addresses,
// event injection, EPTP, VPID, VM-function controls and EPTP list, the
// preemption-timer value), from pools of good and bad values; now and then
// a guest-state field is broken too. Capabilities are what the kernel
// offers L1, read with RDMSR.
//
// L1 sets up each vmcs12 by writing the whole VMCS region in memory (the
// kernel's private layout from the generated field table) and VMPTRLD of
// it, alternating two regions: one VM exit instead of a hundred VMWRITEs
// (the VMWRITE path has its own tests: nested-insn, field-existence). The
// SDM leaves ordinary writes to a VMCS region undefined; the kernel reads
// the region at VMPTRLD, which is what this relies on.
//
// A fresh seed each run, printed; SEED=n replays it, ENTRIES=n changes the
// count, TRACE=1 prints each case. A kernel trap or machine fault fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, buildBootInfo, loadKernel, type Machine } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';
import { capsFromMsrs } from '../model/vmx-insn-oracle.ts';
import { checkControls, checkHostState, checkGuestState, canonical, type EntryEnv } from '../model/entry-checks.ts';
import type { VmxCaps } from '../model/vmcs-fields.ts';
import { tinyKernel, RAX, RCX, RDX, RBX } from './guest-script.ts';
import { prng, type Rng } from './prng.ts';

const SEED = process.env.SEED !== undefined ? BigInt(process.env.SEED) : BigInt(Date.now()) ^ (BigInt(process.pid) << 20n);
const ENTRIES = Number(process.env.ENTRIES ?? 100000);
const TRACE = process.env.TRACE === '1';
console.log(`entry-random: SEED=${SEED} (replay: SEED=${SEED} node --import tsx tests/unit/entry-random.test.ts)`);

const B = (v: number | bigint): bigint => (typeof v === 'number' ? BigInt(v >>> 0) : BigInt.asUintN(64, v));
const ALL1 = (1n << 64n) - 1n;
const M32 = 0xffffffffn;
const MiB = 0x100000;
const RAM = 32 * MiB; // L1's RAM (kernel default mem=32M)

// ---- L1's memory (L1-physical) ----
const PML4 = 0x11000, PDPT = 0x12000, PD = 0x13000;
const VMXON_REGION = 0x20000, VMCS_A = 0x21000, VMCS_B = 0x22000, OTHER_VMCS = 0x23000, SHADOW_VMCS = 0x24000;
const DATA = 0x25000;
const IO_A = 0x30000, IO_B = 0x31000, MSR_BITMAP = 0x32000;
const ENTRY_MSRS = 0x33000, EXIT_STORE = 0x33400, EXIT_LOAD = 0x33800;
const EPTP_LIST = 0x34000, L2_PDPT = 0x35000;
// APIC virtualization's pages (zero: VTPR 0) and a posted-interrupt descriptor.
const VAPIC = 0x36000, APIC_ACCESS = 0x37000, PI_DESC = 0x38000;
const EPT_ROOT = 0x40000;
const HOST_RIP = 0x180000n, L2_RIP = 0x401000n;
const LEN = 3;
const ARITH = 0x8d5n;
const FLAGS_ALL = 0x2n | ARITH;

const CR0 = B(V.X86_CR0_PG | V.X86_CR0_WP | V.X86_CR0_NE | V.X86_CR0_ET | V.X86_CR0_MP | V.X86_CR0_PE);
const CR4 = B(V.X86_CR4_PAE | V.X86_CR4_PGE | V.X86_CR4_OSFXSR | V.X86_CR4_OSXMMEXCPT | V.X86_CR4_VMXE);
const EFER64 = B(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE);
const PAT = 0x0007040600070406n;
const AR_CODE64 = 0xa09b, AR_CODE32 = 0xc09b, AR_DATA = 0xc093, AR_TSS_BUSY = 0x8b, AR_UNUSABLE = 0x10000;
const GOOD_EPTP = BigInt(EPT_ROOT) | 6n | (3n << 3n);
const L1_LONG: Record<number, bigint> = {
  [V.GUEST_CR0]: CR0, [V.CR0_READ_SHADOW]: CR0, [V.GUEST_CR4]: CR4, [V.CR4_READ_SHADOW]: CR4,
  [V.GUEST_CR3]: BigInt(PML4), [V.GUEST_IA32_EFER]: EFER64,
  [V.GUEST_CS_ACCESS_RIGHTS]: B(AR_CODE64), [V.GUEST_SS_ACCESS_RIGHTS]: B(AR_DATA),
};

// ---- the run: a generator plays L1 and L2 (each yield is one VM exit) ----
interface Exit { reason: number; qual?: bigint; len?: number; regs?: Record<number, bigint>; fields?: Record<number, bigint> }
type Script = Generator<Exit, void, void>;
interface Ctx { m: Machine; vmcs01: bigint; pages: Map<number, number> }
const FINAL: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };

function drive(script: (c: Ctx) => Script, m: Machine) {
  const c: Ctx = { m, vmcs01: -1n, pages: new Map() };
  const gen = script(c);
  let finished = false;
  m.vmx.guest = (vmx) => {
    if (c.vmcs01 < 0n) c.vmcs01 = vmx.currentVmcs!;
    let exit = FINAL;
    if (!finished) {
      const r = gen.next();
      if (r.done) finished = true;
      else exit = r.value;
    }
    if (exit.regs) for (const r in exit.regs) m.setGuestReg(Number(r), exit.regs[r]);
    vmx.setField(V.VM_EXIT_REASON, BigInt(exit.reason));
    vmx.setField(V.EXIT_QUALIFICATION, exit.qual ?? 0n);
    vmx.setField(V.VM_EXIT_INSTRUCTION_LENGTH, BigInt(exit.len ?? 0));
    vmx.setField(V.IDT_VECTORING_INFO, 0n);
    vmx.setField(V.VM_ENTRY_INTERRUPTION_INFO, 0n);
    if (exit.fields) for (const f in exit.fields) vmx.setField(Number(f), exit.fields[f]);
  };
  buildBootInfo(m, { cmdline: 'caps=off guest=/g nested=on', files: [{ name: '/g', data: tinyKernel() }] });
  const k = loadKernel(m);
  const r = k.call('kmain', m.bootInfo);
  return { status: m.faults.length ? -1 : (m.exitStatus ?? -1), console: m.console, faults: m.faults, trap: r.trap, finished };
}

// L1-physical -> model physical, through vmcs01's EPT (cached per page).
function hpa(c: Ctx, gpa: number): number {
  const pn = Math.floor(gpa / 4096);
  let h = c.pages.get(pn);
  if (h === undefined) {
    const mask = 0x000ffffffffff000n;
    let table = c.m.vmx.field(V.EPT_POINTER, c.vmcs01) & mask;
    for (let level = 4; ; level--) {
      const shift = BigInt(12 + 9 * (level - 1));
      const e = c.m.phys.read64(Number(table + ((BigInt(gpa) >> shift) & 511n) * 8n));
      if ((e & 7n) === 0n) throw new Error(`L1-physical 0x${gpa.toString(16)} not mapped`);
      if (level === 1 || (e & 0x80n) !== 0n) { h = Number(((e & mask) | (BigInt(gpa) & ((1n << shift) - 1n))) >> 12n); break; }
      table = e & mask;
    }
    c.pages.set(pn, h);
  }
  return h * 4096 + (gpa & 0xfff);
}
const inRam = (pa: number, n: number) => pa >= 0 && pa + n <= RAM;

// ---- L1's instructions ----
const field = (c: Ctx, enc: number, vmcs?: bigint) => c.m.vmx.field(enc, vmcs);
const inL1 = (c: Ctx) => c.m.vmx.currentVmcs === c.vmcs01;
const memInfo = () => B((2 << V.INSN_INFO_ADDR_SIZE_SHIFT) | (3 << V.INSN_INFO_SEGMENT_SHIFT) | V.INSN_INFO_INDEX_INVALID |
  (RBX << V.INSN_INFO_BASE_REG_SHIFT));
const regInfo = (reg1: number, reg2: number) => B(V.INSN_INFO_REG_OPERAND | (reg1 << V.INSN_INFO_REG1_SHIFT) | (reg2 << V.INSN_INFO_REG2_SHIFT));
function* rdmsr(c: Ctx, msr: number): Generator<Exit, bigint | null, void> {
  yield { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: B(msr) } };
  if (field(c, V.VM_ENTRY_INTERRUPTION_INFO) !== 0n) return null;
  return (c.m.guestReg(RDX) << 32n) | (c.m.guestReg(RAX) & M32);
}
function* ptrInsn(c: Ctx, what: string, reason: number, ptr: number): Script {
  c.m.phys.write64(hpa(c, DATA), B(ptr));
  const rip = field(c, V.GUEST_RIP);
  yield { reason, len: LEN, regs: { [RBX]: B(DATA) }, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: memInfo(), [V.GUEST_RFLAGS]: FLAGS_ALL } };
  assert.ok(inL1(c) && field(c, V.VM_ENTRY_INTERRUPTION_INFO) === 0n && (field(c, V.GUEST_RFLAGS) & ARITH) === 0n &&
    field(c, V.GUEST_RIP) === rip + BigInt(LEN), `${what}: VMsucceed`);
}
// L1's VMREAD: from the shadow VMCS where the processor would read it there
// (25.10: "VMCS shadowing" in vmcs01, a link pointer, the bitmap bit 0), else
// a VMREAD exit.
function* l1Read(c: Ctx, enc: number): Generator<Exit, bigint, void> {
  const p2 = field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs01);
  const link = field(c, V.VMCS_LINK_POINTER, c.vmcs01);
  if ((p2 & B(V.PROC2_VMCS_SHADOWING)) !== 0n && link !== ALL1) {
    const bitmap = Number(field(c, V.VMREAD_BITMAP, c.vmcs01));
    if (((c.m.phys.read(bitmap + (enc >>> 3), 1)[0] >> (enc & 7)) & 1) === 0) return c.m.vmx.field(enc, link);
  }
  yield { reason: V.EXIT_REASON_VMREAD, len: LEN, regs: { [RCX]: B(enc), [RAX]: 0xdeadbeefn },
    fields: { [V.VM_EXIT_INSTRUCTION_INFO]: regInfo(RAX, RCX), [V.GUEST_RFLAGS]: FLAGS_ALL } };
  assert.is(field(c, V.GUEST_RFLAGS) & ARITH, 0n, `VMREAD 0x${enc.toString(16)}: VMsucceed`);
  return c.m.guestReg(RAX);
}

// ---- the vmcs12 image (the kernel's private layout, from the field table) ----
const LAYOUT = new Map<number, { off: number; bytes: number }>(V.VMCS_FIELDS.map((f) =>
  [f.encoding, { off: f.vmcs12Offset, bytes: f.width === 16 ? 2 : f.width === 32 ? 4 : 8 }]));
function writeImage(c: Ctx, region: number, f: Map<number, bigint>): void {
  const page = new Uint8Array(4096);
  const dv = new DataView(page.buffer);
  dv.setUint32(V.VMCS12_REVISION_ID_OFFSET, 0x41534856, true); // kernel/nested/caps.ts REVISION_ID
  for (const [enc, v] of f) {
    const l = LAYOUT.get(enc);
    if (!l) throw new Error(`no slot for 0x${enc.toString(16)}`);
    if (l.bytes === 2) dv.setUint16(l.off, Number(v & 0xffffn), true);
    else if (l.bytes === 4) dv.setUint32(l.off, Number(v & M32), true);
    else dv.setBigUint64(l.off, BigInt.asUintN(64, v), true);
  }
  c.m.phys.write(hpa(c, region), page);
}

// ---- vmcs12 contents ----
type Fields = Map<number, bigint>;
const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
const seg = (s: string, what: string) => (V as any)[`GUEST_${s}_${what}`] as number;
interface Offer { caps: VmxCaps; anyErrorCode: boolean; linearBits: number; rtm: boolean }

// A valid 64-bit L1 host and L2 guest, as in entry-checks.test.ts; `kind`
// 1 makes L2 a 32-bit PAE guest, 2 an unrestricted real-mode guest.
function base(o: Offer, kind: number): Fields {
  const f: Fields = new Map();
  const set = (e: number, v: number | bigint) => f.set(e, B(v));
  set(V.PIN_BASED_VM_EXEC_CONTROL, o.caps.pin0);
  set(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, o.caps.proc0 | V.PROC_ACTIVATE_SECONDARY_CONTROLS);
  set(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, kind === 2 ? V.PROC2_ENABLE_EPT | V.PROC2_UNRESTRICTED_GUEST : 0);
  set(V.EPT_POINTER, GOOD_EPTP);
  set(V.VM_EXIT_CONTROL, o.caps.exit0 | V.EXIT_HOST_ADDRESS_SPACE_SIZE);
  set(V.VM_ENTRY_CONTROL, o.caps.entry0 | (kind === 0 ? V.ENTRY_IA32E_MODE_GUEST : 0));
  for (const [e, v] of [[V.HOST_CR0, CR0], [V.HOST_CR3, PML4], [V.HOST_CR4, CR4], [V.HOST_ES_SELECTOR, 0x10],
    [V.HOST_CS_SELECTOR, 0x08], [V.HOST_SS_SELECTOR, 0x10], [V.HOST_DS_SELECTOR, 0x10], [V.HOST_TR_SELECTOR, 0x18],
    [V.HOST_TR_BASE, 0x1000], [V.HOST_GDTR_BASE, 0x2000], [V.HOST_IDTR_BASE, 0x3000], [V.HOST_IA32_PAT, PAT],
    [V.HOST_IA32_EFER, EFER64], [V.HOST_RSP, 0x8000], [V.HOST_RIP, HOST_RIP]] as [number, number | bigint][]) set(e, v);
  if (kind === 2) {
    set(V.GUEST_CR0, V.X86_CR0_NE | V.X86_CR0_ET);
    set(V.GUEST_CR4, V.X86_CR4_VMXE);
    set(V.GUEST_IA32_EFER, 0);
    for (const s of SEGS) {
      const sel = s === 'CS' ? 0xf000 : 0;
      const sys = s === 'TR' || s === 'LDTR';
      set(seg(s, 'SELECTOR'), sys ? 0 : sel);
      set(seg(s, 'BASE'), sys ? 0 : sel << 4);
      set(seg(s, 'LIMIT'), s === 'TR' ? 0x67 : 0xffff);
      set(seg(s, 'ACCESS_RIGHTS'), s === 'TR' ? AR_TSS_BUSY : s === 'LDTR' ? AR_UNUSABLE : s === 'CS' ? 0x9b : 0x93);
    }
    set(V.GUEST_RIP, 0xfff0);
    set(V.GUEST_CR3, 0);
  } else {
    set(V.GUEST_CR0, CR0);
    set(V.GUEST_CR4, CR4);
    set(V.GUEST_IA32_EFER, kind === 0 ? EFER64 : B(V.X86_EFER_NXE));
    for (const s of SEGS) {
      const [sel, ar, lim, b] = s === 'CS' ? [0x08, kind === 0 ? AR_CODE64 : AR_CODE32, 0xffffffff, 0] :
        s === 'TR' ? [0x18, AR_TSS_BUSY, 0x67, 0x5000] : s === 'LDTR' ? [0, AR_UNUSABLE, 0, 0] : [0x10, AR_DATA, 0xffffffff, 0];
      set(seg(s, 'SELECTOR'), sel);
      set(seg(s, 'ACCESS_RIGHTS'), ar);
      set(seg(s, 'LIMIT'), lim);
      set(seg(s, 'BASE'), b);
    }
    set(V.GUEST_RIP, L2_RIP);
    set(V.GUEST_CR3, kind === 1 ? L2_PDPT : 0x30000);
  }
  set(V.GUEST_DR7, 0x400);
  set(V.GUEST_IA32_PAT, PAT);
  set(V.GUEST_GDTR_BASE, 0x6000);
  set(V.GUEST_GDTR_LIMIT, 0x7f);
  set(V.GUEST_IDTR_BASE, 0x7000);
  set(V.GUEST_IDTR_LIMIT, 0xfff);
  set(V.GUEST_RSP, 0x9000);
  set(V.GUEST_RFLAGS, V.X86_RFLAGS_FIXED1);
  set(V.VMCS_LINK_POINTER, ALL1);
  // Exit information of an earlier exit: a failed VM entry leaves all but
  // the exit reason and qualification as they were (27.8).
  for (const [e, v] of EXIT_INFO_KEPT) set(e, v);
  return f;
}
const EXIT_INFO_KEPT: [number, bigint][] = [[V.VM_EXIT_INTERRUPTION_INFO, 0x80000b0en], [V.VM_EXIT_INTERRUPTION_ERROR_CODE, 0x1234n],
  [V.IDT_VECTORING_INFO, 0x80000300n], [V.VM_EXIT_INSTRUCTION_LENGTH, 5n], [V.VM_EXIT_INSTRUCTION_INFO, 0x7777n]];

// A control word: a random subset of what may be 1 with what must be 1
// (mostly), one bit against the capability MSR, or anything.
function control(r: Rng, must1: number, may1: number, keep: number, from: number): number {
  const pick = r.int(60);
  const rand = Number(r.next() & M32);
  // Half the time few bits beyond the base: dependent controls break less.
  const extra = r.int(2) ? rand : rand & Number(r.next() & M32) & Number(r.next() & M32);
  let v = ((must1 | (extra & may1)) & ~keep | (from & keep)) >>> 0;
  if (pick === 0) return rand;
  if (pick <= 3) {
    const bad = [...Array(32).keys()].filter((b) => ((may1 >>> b) & 1) === 0 || ((must1 >>> b) & 1) === 1);
    if (bad.length) v = (v ^ (1 << r.pick(bad))) >>> 0;
  }
  return v;
}

// Addresses VM entry refuses: misaligned, beyond the 39-bit physical-address
// width, or (the hypervisor's rule, 27.2.1 with env.ramSize) outside L1's RAM.
const BAD_ADDRS = (good: number): bigint[] => [B(good + 8), B(good + 0x800), 1n << 39n, B(good) | (1n << 38n), B(RAM), 0xfee00000n];
// A bitmap address: mostly good (any page of RAM will do), sometimes bad.
const bitmapAddr = (r: Rng, good: number): bigint =>
  r.int(8) ? r.pick([B(good), B(good), B(good), 0n, B(RAM - 4096)]) : r.pick(BAD_ADDRS(good));
// An MSR-list address: the prepared area, or a bad one (another page of RAM
// would hold entries nobody chose).
const listAddr = (r: Rng, good: number): bigint =>
  (r.int(8) ? B(good) : r.pick([B(good + 8), 1n << 39n, B(good) | (1n << 38n), B(RAM), B(RAM - 8), 0xfee00000n]));
const EPTP_POOL = [GOOD_EPTP & ~7n, GOOD_EPTP | 0x40n, GOOD_EPTP ^ 0x18n, GOOD_EPTP | 0x80n,
  GOOD_EPTP | (1n << 39n), (GOOD_EPTP & ~7n) | 1n, 0n];
// MSRs for the VM-entry MSR-load list, with what 27.4 says of loading them.
const CANON_BAD = 0x0000800000000000n;
const MSR_POOL: [number, bigint][] = [
  [V.MSR_IA32_SYSENTER_CS, 0x10n], [V.MSR_IA32_SYSENTER_ESP, 0x8000n], [V.MSR_IA32_SYSENTER_EIP, 0xffff800000001000n],
  [V.MSR_IA32_SYSENTER_ESP, CANON_BAD], // not canonical: WRMSR would #GP
  [V.MSR_IA32_FS_BASE, 0n], [V.MSR_IA32_GS_BASE, 0n], // excluded by 27.4
  [0x808, 0n], [0x830, 0n], // x2APIC range 800H-8FFH
  [0x9b, 0n], // IA32_SMM_MONITOR_CTL
  [0x12345678, 0n], // no such MSR: WRMSR would #GP
];
function msrLoadFails(msr: number, hi: number, data: bigint, linearBits: number): boolean {
  if (hi !== 0) return true; // bits 63:32 of the entry are reserved
  if (msr === V.MSR_IA32_FS_BASE || msr === V.MSR_IA32_GS_BASE || msr === 0x9b) return true;
  if (msr >>> 8 === 8) return true;
  if (msr === V.MSR_IA32_SYSENTER_ESP || msr === V.MSR_IA32_SYSENTER_EIP) return !canonical(data, linearBits);
  if (msr === V.MSR_IA32_SYSENTER_CS) return false;
  return true; // the unknown MSR
}

interface Case { f: Fields; msrs: [number, number, bigint][]; log: string[] }

function randomCase(r: Rng, o: Offer): Case {
  const kind = r.int(10) === 0 ? 1 : r.int(10) === 0 ? 2 : 0;
  const f = base(o, kind);
  const log: string[] = [`kind ${kind}`];
  const set = (e: number, v: bigint, why?: string) => { f.set(e, v); if (TRACE) log.push(`${why ?? e.toString(16)}=${v.toString(16)}`); };
  const c = o.caps;
  const old = (e: number) => Number(f.get(e) ?? 0n);
  set(V.PIN_BASED_VM_EXEC_CONTROL, B(control(r, c.pin0, c.pin1, 0, 0)), 'pin');
  set(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, B(control(r, c.proc0, c.proc1, r.int(4) ? V.PROC_ACTIVATE_SECONDARY_CONTROLS : 0,
    old(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL))), 'proc');
  // Unrestricted real mode keeps EPT and unrestricted guest mostly.
  set(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, B(control(r, 0, c.proc2_1,
    kind === 2 && r.int(8) ? V.PROC2_ENABLE_EPT | V.PROC2_UNRESTRICTED_GUEST : 0, old(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL))), 'proc2');
  set(V.VM_EXIT_CONTROL, B(control(r, c.exit0, c.exit1, r.int(10) ? V.EXIT_HOST_ADDRESS_SPACE_SIZE : 0, old(V.VM_EXIT_CONTROL))), 'exit');
  set(V.VM_ENTRY_CONTROL, B(control(r, c.entry0, c.entry1, r.int(10) ? V.ENTRY_IA32E_MODE_GUEST : 0, old(V.VM_ENTRY_CONTROL))), 'entry');
  // APIC virtualization's controls depend on each other (27.2.1.1): mostly
  // (7 in 8) the ones a chosen control needs are added, so that random
  // words of these controls still reach L2 often enough.
  if (r.int(8)) {
    let pin = old(V.PIN_BASED_VM_EXEC_CONTROL), proc = old(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
    let proc2 = old(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL), exit = old(V.VM_EXIT_CONTROL);
    if (pin & V.PIN_PROCESS_POSTED_INTERRUPTS) { proc2 |= V.PROC2_VIRTUAL_INTERRUPT_DELIVERY; exit |= V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT; }
    if (proc2 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) pin |= V.PIN_EXTERNAL_INTERRUPT_EXITING;
    // Virtualize x2APIC mode excludes virtualize APIC accesses: one of
    // the two stays.
    const both = V.PROC2_VIRTUALIZE_X2APIC_MODE | V.PROC2_VIRTUALIZE_APIC_ACCESSES;
    if ((proc2 & both) === both) proc2 &= ~(r.int(2) ? V.PROC2_VIRTUALIZE_APIC_ACCESSES : V.PROC2_VIRTUALIZE_X2APIC_MODE);
    if (proc2 & (V.PROC2_VIRTUAL_INTERRUPT_DELIVERY | V.PROC2_APIC_REGISTER_VIRTUALIZATION | V.PROC2_VIRTUALIZE_X2APIC_MODE)) proc |= V.PROC_USE_TPR_SHADOW;
    set(V.PIN_BASED_VM_EXEC_CONTROL, B(pin >>> 0), 'pin+');
    set(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, B(proc >>> 0), 'proc+');
    set(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, B(proc2 >>> 0), 'proc2+');
    set(V.VM_EXIT_CONTROL, B(exit >>> 0), 'exit+');
  }
  // Related fields.
  set(V.CR3_TARGET_COUNT, B(r.int(8) ? r.int(5) : r.pick([5, 256, r.int(600)])), 'cr3count');
  for (let i = 0; i < 4; i++) if (r.int(4) === 0) set(V.CR3_TARGET_VALUE0 + 2 * i, B(0x30000 + 0x1000 * i));
  set(V.IO_BITMAP_A, bitmapAddr(r, IO_A), 'ioA');
  set(V.IO_BITMAP_B, bitmapAddr(r, IO_B), 'ioB');
  set(V.MSR_BITMAPS, bitmapAddr(r, MSR_BITMAP), 'msrbm');
  set(V.EPT_POINTER, r.int(8) ? GOOD_EPTP : r.pick(EPTP_POOL), 'eptp');
  set(V.VIRTUAL_PROCESSOR_ID, B(r.int(8) ? r.pick([1, 2, 0xffff, 1 + r.int(0xffff)]) : 0), 'vpid');
  set(V.VM_FUNCTION_CONTROL, B(r.int(8) ? r.int(2) : r.pick([2, 3, 1 << r.int(64)])), 'vmfunc');
  set(V.EPTP_LIST_ADDRESS, bitmapAddr(r, EPTP_LIST), 'eptplist');
  set(V.VIRTUAL_APIC_ADDRESS, bitmapAddr(r, VAPIC), 'vapic');
  set(V.TPR_THRESHOLD, B(r.int(8) ? 0 : r.pick([1, 0xf, 0x10, Number(r.next() & M32)])), 'tprthreshold');
  set(V.APIC_ACCESS_ADDRESS, bitmapAddr(r, APIC_ACCESS), 'apicaccess');
  set(V.POSTED_INTERRUPT_NOTIFICATION_VECTOR, B(r.int(8) ? 0xf2 : r.int(0x10000)), 'pivector');
  set(V.POSTED_INTERRUPT_DESCRIPTOR_ADDRESS, r.int(8) ? B(PI_DESC) : r.pick([B(PI_DESC + 8), 1n << 39n, B(RAM), 0xfee00000n]), 'pidesc');
  set(V.VMX_PREEMPTION_TIMER_VALUE, B(r.int(1000)), 'timer');
  set(V.EXCEPTION_BITMAP, B(r.pick([0, 0xffffffff, 1 << 14, Number(r.next() & M32)])), 'excbm');
  // MSR lists: counts 0-3 at the good areas or at bad addresses.
  const exitStore = r.pick([0, 0, 1, 2]), exitLoad = r.pick([0, 0, 1]), entryLoad = r.pick([0, 0, 1, 2, 3, 4]);
  set(V.VM_EXIT_MSR_STORE_COUNT, B(exitStore), 'exitstore#');
  set(V.VM_EXIT_MSR_STORE_ADDRESS, listAddr(r, EXIT_STORE), 'exitstore');
  set(V.VM_EXIT_MSR_LOAD_COUNT, B(exitLoad), 'exitload#');
  set(V.VM_EXIT_MSR_LOAD_ADDRESS, listAddr(r, EXIT_LOAD), 'exitload');
  set(V.VM_ENTRY_MSR_LOAD_COUNT, B(entryLoad), 'entryload#');
  set(V.VM_ENTRY_MSR_LOAD_ADDRESS, listAddr(r, ENTRY_MSRS), 'entryload');
  const msrs: [number, number, bigint][] = [];
  for (let i = 0; i < entryLoad; i++) {
    const [msr, data] = r.int(3) ? MSR_POOL[r.int(3)] : r.pick(MSR_POOL);
    msrs.push([msr, r.int(40) === 0 ? 1 : 0, data]);
  }
  if (TRACE) log.push(`msrs ${msrs.map(([m, h, d]) => `${m.toString(16)}${h ? '!' : ''}:${d.toString(16)}`).join(',')}`);
  // Event injection: none mostly; else a random event, often a sane one.
  if (r.int(3) === 0) {
    const type = r.pick([0, 2, 3, 3, 4, 5, 6, 1, 7]);
    const vector = type === 2 ? 2 : r.pick([0, 1, 3, 6, 8, 13, 14, 17, 32, 0x80, r.int(256)]);
    const ec = [8, 10, 11, 12, 13, 14, 17, 21].includes(vector) && type === 3 ? r.int(8) !== 0 : r.int(8) === 0;
    let info = 0x80000000 | (type << 8) | vector | (ec ? 1 << 11 : 0);
    if (r.int(30) === 0) info |= 1 << (12 + r.int(19));
    set(V.VM_ENTRY_INTERRUPTION_INFO, B(info), 'inject');
    set(V.VM_ENTRY_EXCEPTION_ERROR_CODE, B(r.int(10) ? r.int(0x10000) : 0x10000), 'errcode');
    set(V.VM_ENTRY_INSTRUCTION_LENGTH, B(r.pick([1, 2, 3, 15, 0, 16])), 'insnlen');
  }
  // Now and then a broken (or merely different) guest or host field.
  if (r.int(8) === 0) {
    const e = r.pick([V.GUEST_CR0, V.GUEST_CR4, V.GUEST_RFLAGS, V.GUEST_CS_ACCESS_RIGHTS, V.GUEST_SS_ACCESS_RIGHTS, V.GUEST_TR_ACCESS_RIGHTS,
      V.GUEST_INTERRUPTIBILITY_STATE, V.GUEST_PENDING_DEBUG_EXCEPTIONS, V.VMCS_LINK_POINTER, V.GUEST_IA32_EFER, V.GUEST_RIP,
      V.GUEST_DR7, V.GUEST_CS_LIMIT, V.GUEST_IA32_PAT, V.GUEST_GDTR_LIMIT]);
    const w = e === V.VMCS_LINK_POINTER ? r.pick([B(OTHER_VMCS), B(SHADOW_VMCS), B(VMCS_A), B(OTHER_VMCS + 8), 0n]) :
      (f.get(e) ?? 0n) ^ (1n << BigInt(r.int(e === V.GUEST_RIP || e === V.GUEST_IA32_PAT ? 64 : 32)));
    set(e, w, `guest ${e.toString(16)}`);
  }
  if (r.int(16) === 0) {
    const e = r.pick([V.HOST_CR0, V.HOST_CR4, V.HOST_CS_SELECTOR, V.HOST_TR_SELECTOR, V.HOST_SS_SELECTOR, V.HOST_RIP, V.HOST_GDTR_BASE,
      V.HOST_IA32_EFER, V.HOST_IA32_PAT]);
    set(e, (f.get(e) ?? 0n) ^ (1n << BigInt(r.int(64))), `host ${e.toString(16)}`);
  }
  return { f, msrs, log };
}

// ---- the SDM's answer ----
type Answer = { kind: 'ok' } | { kind: 'fail'; errors: number[]; why: string[] } |
  { kind: 'exit'; reason: number; quals: number[]; why: string[] };
function oracle(c: Ctx, o: Offer, k: Case, region: number): Answer {
  const env: EntryEnv = {
    caps: o.caps,
    read: (e) => k.f.get(e) ?? 0n,
    readPhys32: (pa) => (inRam(pa, 4) ? c.m.phys.read32(hpa(c, pa)) : 0xffffffff),
    readPhys64: (pa) => (inRam(pa, 8) ? c.m.phys.read64(hpa(c, pa)) : ALL1),
    linearBits: o.linearBits,
    ia32eMode: true,
    inSmm: false,
    ramSize: B(RAM),
    anyErrorCode: o.anyErrorCode,
    currentVmcs: B(region),
    rtm: o.rtm,
    sgx: false,
    debugctlAllowed: B(V.X86_DEBUGCTL_LBR | V.X86_DEBUGCTL_BTF), // as entry-checks.test.ts: no other DEBUGCTL bits for L1
    eferAllowed: B(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE),
  };
  const ctl = checkControls(env), host = checkHostState(env);
  if (ctl.length || host.length) {
    const errors = [...(ctl.length ? [V.VMXERR_ENTRY_INVALID_CONTROL_FIELD] : []), ...(host.length ? [V.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD] : [])];
    return { kind: 'fail', errors, why: [...ctl, ...host] };
  }
  const g = checkGuestState(env);
  if (g.length) return { kind: 'exit', reason: (0x80000000 | V.EXIT_REASON_ENTRY_FAILURE_GUEST_STATE) >>> 0, quals: g.map((p) => p.qualification), why: g.map((p) => p.rule) };
  const n = Number(k.f.get(V.VM_ENTRY_MSR_LOAD_COUNT) ?? 0n);
  for (let i = 0; i < n; i++) {
    const [msr, hi, data] = k.msrs[i];
    if (msrLoadFails(msr, hi, data, o.linearBits)) {
      return { kind: 'exit', reason: (0x80000000 | V.EXIT_REASON_ENTRY_FAILURE_MSR_LOADING) >>> 0, quals: [i + 1], why: [`MSR-load entry ${i + 1}: 0x${msr.toString(16)}`] };
    }
  }
  return { kind: 'ok' };
}

// ---- the test ----
function* script(c: Ctx, r: Rng, stats: Record<string, number>, wrong: string[]): Script {
  // L1: 64-bit mode on an identity map; VMX regions; bitmaps and lists.
  c.m.phys.write64(hpa(c, PML4), B(PDPT | 3));
  c.m.phys.write64(hpa(c, PDPT), B(PD | 3));
  for (let i = 0; i < 16; i++) c.m.phys.write64(hpa(c, PD + i * 8), (BigInt(i) << 21n) | 0x83n);
  for (const reg of [VMXON_REGION, VMCS_A, VMCS_B, OTHER_VMCS]) c.m.phys.write32(hpa(c, reg), 0x41534856);
  c.m.phys.write32(hpa(c, SHADOW_VMCS), (0x41534856 | 0x80000000) >>> 0);
  for (let i = 0; i < 4; i++) c.m.phys.write64(hpa(c, L2_PDPT + 8 * i), B(0x36001 + 0x1000 * i));
  for (let i = 0; i < 4; i++) {
    c.m.phys.write64(hpa(c, EXIT_STORE + 16 * i), B(V.MSR_IA32_SYSENTER_CS));
    c.m.phys.write64(hpa(c, EXIT_LOAD + 16 * i), B(V.MSR_IA32_SYSENTER_CS));
    c.m.phys.write64(hpa(c, EXIT_LOAD + 16 * i + 8), 0x10n);
  }
  c.m.phys.write64(hpa(c, EPTP_LIST), GOOD_EPTP);
  yield { reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: B(V.MSR_IA32_FEATURE_CONTROL), [RAX]: 5n, [RDX]: 0n }, fields: L1_LONG };
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, 'IA32_FEATURE_CONTROL locked with VMX on');
  const msrs = new Map<number, bigint | null>();
  for (const [k, n] of Object.entries(V)) if (k.startsWith('MSR_IA32_VMX_') && typeof n === 'number') msrs.set(n, yield* rdmsr(c, n));
  yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0x80000008n, [RCX]: 0n } };
  const cpuid = c.m.guestReg(RAX);
  const caps = capsFromMsrs((n) => msrs.get(n) ?? null, cpuid, B(RAM)).vmx;
  const o: Offer = { caps, anyErrorCode: ((msrs.get(V.MSR_IA32_VMX_BASIC)! >> 56n) & 1n) === 1n,
    linearBits: Number((cpuid >> 8n) & 0xffn), rtm: ((c.m.cpuidRaw(7, 0)[1] >>> 11) & 1) === 1 };
  yield* ptrInsn(c, 'VMXON', V.EXIT_REASON_VMXON, VMXON_REGION);
  for (const reg of [VMCS_A, VMCS_B]) yield* ptrInsn(c, 'VMCLEAR', V.EXIT_REASON_VMCLEAR, reg);

  for (let n = 0; n < ENTRIES; n++) {
    const region = n % 2 ? VMCS_B : VMCS_A;
    const k = randomCase(r, o);
    writeImage(c, region, k.f);
    k.msrs.forEach(([msr, hi, data], i) => {
      c.m.phys.write64(hpa(c, ENTRY_MSRS + 16 * i), (BigInt(hi) << 32n) | B(msr));
      c.m.phys.write64(hpa(c, ENTRY_MSRS + 16 * i + 8), data);
    });
    const want = oracle(c, o, k, region);
    yield* ptrInsn(c, `#${n} VMPTRLD`, V.EXIT_REASON_VMPTRLD, region);
    const rip = field(c, V.GUEST_RIP);
    const said = c.m.console.length;
    yield { reason: V.EXIT_REASON_VMLAUNCH, len: LEN, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: 0n, [V.GUEST_RFLAGS]: FLAGS_ALL } };
    let got: string;
    const hostRip = k.f.get(V.HOST_RIP)!;
    if (!inL1(c)) {
      got = 'ok';
      // vmcs02 has vmcs12's CR3-target list, so that the processor lets a
      // MOV to CR3 of a target value through (25.6.7, 26.1.3).
      const count = Number(k.f.get(V.CR3_TARGET_COUNT) ?? 0n);
      const targets = [...Array(count).keys()].map((i) => k.f.get(V.CR3_TARGET_VALUE0 + 2 * i) ?? 0n);
      if (field(c, V.CR3_TARGET_COUNT) !== B(count) || targets.some((t, i) => field(c, V.CR3_TARGET_VALUE0 + 2 * i) !== t)) {
        got = `ok, but vmcs02's CR3-target list is not vmcs12's (count ${field(c, V.CR3_TARGET_COUNT)})`;
      }
      // L2 runs: its CPUID exits to L1 (26.1.2), at vmcs12's host RIP; with
      // "CR3-load exiting", a MOV to CR3 of a value in no target does too.
      const cr3Exit = (Number(k.f.get(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL)) & V.PROC_CR3_LOAD_EXITING) !== 0 && r.int(2) === 0;
      const v = 0x5000n + B(r.int(16) << 12);
      const wantReason = cr3Exit && !targets.includes(v) ? V.EXIT_REASON_CR_ACCESS : V.EXIT_REASON_CPUID;
      if (wantReason === V.EXIT_REASON_CR_ACCESS) {
        yield { reason: V.EXIT_REASON_CR_ACCESS, qual: 3n | (3n << 8n), len: 3, regs: { [RBX]: v } }; // MOV CR3, RBX
      } else {
        yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n } };
      }
      if (!inL1(c) || field(c, V.GUEST_RIP) !== hostRip) got = `ok, but L2's exit did not reach L1 at its host RIP (RIP 0x${field(c, V.GUEST_RIP).toString(16)})`;
      else {
        const reason = yield* l1Read(c, V.VM_EXIT_REASON);
        if (reason !== B(wantReason)) got = `ok, but L1 got exit reason ${reason} for L2's exit ${wantReason}`;
      }
    } else if (field(c, V.VM_ENTRY_INTERRUPTION_INFO) !== 0n) {
      got = `exception 0x${field(c, V.VM_ENTRY_INTERRUPTION_INFO).toString(16)}`;
    } else if (field(c, V.GUEST_RIP) === rip + BigInt(LEN)) {
      const fl = field(c, V.GUEST_RFLAGS) & ARITH;
      got = fl === B(V.X86_RFLAGS_ZF) ? `fail ${yield* l1Read(c, V.VM_INSTRUCTION_ERROR)}` : `RFLAGS 0x${fl.toString(16)}`;
    } else if (field(c, V.GUEST_RIP) === hostRip) {
      const reason = yield* l1Read(c, V.VM_EXIT_REASON);
      const qual = yield* l1Read(c, V.EXIT_QUALIFICATION);
      got = `exit 0x${reason.toString(16)} ${qual}`;
      // 27.8: "All other VM-exit information fields are unmodified", and
      // the valid bit of the VM-entry interruption information stays.
      if (reason >> 31n) {
        for (const [e, v] of [...EXIT_INFO_KEPT, [V.VM_ENTRY_INTERRUPTION_INFO, k.f.get(V.VM_ENTRY_INTERRUPTION_INFO) ?? 0n] as [number, bigint]]) {
          const now = yield* l1Read(c, e);
          if (now !== v) got += `, field 0x${e.toString(16)} 0x${now.toString(16)} (was 0x${v.toString(16)})`;
        }
      }
    } else got = `RIP 0x${field(c, V.GUEST_RIP).toString(16)}`;
    let ok: boolean;
    let wantStr: string;
    if (want.kind === 'ok') { ok = got === 'ok'; wantStr = 'ok'; }
    else if (want.kind === 'fail') { ok = want.errors.some((e) => got === `fail ${e}`); wantStr = `fail ${want.errors.join('|')}`; }
    else { ok = want.quals.some((q) => got === `exit 0x${want.reason.toString(16)} ${q}`); wantStr = `exit 0x${want.reason.toString(16)} ${[...new Set(want.quals)].join('|')}`; }
    const key = want.kind === 'ok' ? 'ok' : want.kind === 'fail' ? wantStr : `exit 0x${want.reason.toString(16)}`;
    stats[key] = (stats[key] ?? 0) + 1;
    if (TRACE) console.log(`#${n} ${k.log.join(' ')} -> ${got}`);
    if (!ok) {
      const check = /failed check (\S+)/.exec(c.m.console.slice(said))?.[1];
      wrong.push(`#${n}: kernel ${got}${check ? ` (${check})` : ''}, SDM ${wantStr} (${want.kind === 'ok' ? '' : want.why.slice(0, 3).join('; ')}) [${randomLogHint(k)}]`);
      if (wrong.length >= 50) return;
    }
  }
}
// Enough of a case to see what it was without TRACE.
function randomLogHint(k: Case): string {
  const h = (e: number) => (k.f.get(e) ?? 0n).toString(16);
  return `pin ${h(V.PIN_BASED_VM_EXEC_CONTROL)} proc ${h(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL)} proc2 ${h(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL)} ` +
    `exit ${h(V.VM_EXIT_CONTROL)} entry ${h(V.VM_ENTRY_CONTROL)} inject ${h(V.VM_ENTRY_INTERRUPTION_INFO)} msrs ${k.msrs.map(([m]) => m.toString(16)).join(',')}`;
}

test(`${ENTRIES} random VM entries of L1: each reaches L2 or fails as the SDM says; no trap`, () => {
  const r = prng(SEED);
  const stats: Record<string, number> = {};
  const wrong: string[] = [];
  const t0 = Date.now();
  const run = drive((c) => script(c, r, stats, wrong), tigerlake());
  const secs = (Date.now() - t0) / 1000;
  console.log(`entry-random: ${secs.toFixed(1)} s; outcomes ${JSON.stringify(stats)}`);
  assert.equal(run.faults, [], `SEED=${SEED}: ${run.console.slice(-3000)}`);
  assert.is(run.trap, null, `SEED=${SEED}: ${run.console.slice(-3000)}`);
  assert.equal(wrong.slice(0, 12), [], `SEED=${SEED}: ${wrong.length} entries disagree with the SDM oracle`);
  assert.ok(run.finished, `SEED=${SEED}: the kernel ended L1 before the script finished: ${run.console.slice(-3000)}`);
  assert.is(run.status, 0, run.console.slice(-3000));
  // Every answer is reached often enough to mean something.
  const total = Object.values(stats).reduce((a, b) => a + b, 0);
  assert.is(total, ENTRIES);
  if (ENTRIES >= 10000) {
    for (const k of ['ok', `fail ${V.VMXERR_ENTRY_INVALID_CONTROL_FIELD}`, `exit 0x${((0x80000000 | V.EXIT_REASON_ENTRY_FAILURE_GUEST_STATE) >>> 0).toString(16)}`,
      `exit 0x${((0x80000000 | V.EXIT_REASON_ENTRY_FAILURE_MSR_LOADING) >>> 0).toString(16)}`]) {
      assert.ok((stats[k] ?? 0) >= ENTRIES / 100, `${k}: ${stats[k] ?? 0} of ${ENTRIES}`);
    }
    assert.ok(Object.keys(stats).some((k) => k.includes(`${V.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD}`)), 'host-state failures reached');
  }
});

test.run();
