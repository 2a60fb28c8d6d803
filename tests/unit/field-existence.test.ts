// Which VMCS fields exist for L1 (issue 9 item 6): every encoding 0..7FFFH
// (bits 31:15 clear) and a sample of encodings with higher bits set goes
// through L1's VMWRITE and VMREAD (64-bit mode, register operands), and
// each outcome is compared with an oracle that shares no code with the
// kernel: the SDM Appendix B encoding table of tests/model/vmcs-fields.ts
// (lookupField) applied to the capability MSRs the kernel OFFERS, as L1
// reads them with RDMSR.
//
//   exists        VMWRITE succeeds (a read-only field only with VMX_MISC
//                 bit 29, else VMfailValid(13), 31.3 VMWRITE), VMREAD gives
//                 back the value truncated to the field's width (the high
//                 access of a 64-bit field: bits 63:32)
//   no field      VMREAD and VMWRITE fail with VMfailValid(12) (31.4), the
//                 VM-instruction error read back each time
//
// CR3-target value i (6008H + 2i) exists exactly for i below the count in
// the offered VMX_MISC (A.6; B.4.1 note 1). IA32_VMX_VMCS_ENUM must give
// the highest index over what exists (A.9). The VMCS-shadowing bitmaps
// (shadow.ts) must let L1 VMREAD only fields that exist and VMWRITE only
// fields that exist and may be written (25.6.15, 31.3): a 0 bit for
// anything else would let the processor answer for a field L1 has not got.
//
// Two processors: the tigerlake preset (everything Bochs tigerlake has)
// and a reduced one (no VPID, VM functions, VMCS shadowing, RDTSCP, WBINVD
// or descriptor-table exiting; no virtual NMIs; 2 CR3-target
// values; the processor's VMX_MISC bit 29 clear).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, runKernel, type Machine } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';
import { MSR } from '../model/consts.ts';
import { lookupField, fieldName, highestIndex, type VmxCaps } from '../model/vmcs-fields.ts';
import { capsFromMsrs } from '../model/vmx-insn-oracle.ts';
import { play, injected, tinyKernel, produceExit, RAX, RCX, RDX, RBX, type Step } from './guest-script.ts';

const M32 = 0xffffffffn;
const LEN = 3;
const ARITH = 0x8d5n;
const FLAGS_ALL = 0x2n | ARITH;
const REV = 0x41534856; // kernel/nested/caps.ts REVISION_ID (checked against VMX_BASIC below)
const PML4 = 0x11000, PDPT = 0x12000, PD = 0x13000;
const VMXON_REGION = 0x20000, VMCS12 = 0x21000, DATA = 0x30000;
const CR0 = 0x80010031n, CR4 = 0x2020n, EFER = 0x500n;
const LONG64: Record<number, bigint> = {
  [V.GUEST_CR0]: CR0, [V.CR0_READ_SHADOW]: CR0, [V.GUEST_CR4]: CR4, [V.CR4_READ_SHADOW]: CR4,
  [V.GUEST_CR3]: BigInt(PML4), [V.GUEST_IA32_EFER]: EFER,
  [V.GUEST_CS_ACCESS_RIGHTS]: 0xa09bn, [V.GUEST_SS_ACCESS_RIGHTS]: 0xc093n,
};

// ---- processors ----
const reduced = (): Machine => tigerlake({
  msrs: {
    // Secondary controls: EPT and unrestricted guest (the hypervisor's own
    // guests need them), the APIC/PML/XSAVES/... ones the hypervisor does not
    // offer anyway; no descriptor-table exiting (2), RDTSCP (3), VPID (5),
    // WBINVD exiting (6), VM functions (13), VMCS shadowing (14).
    [MSR.IA32_VMX_PROCBASED_CTLS2]: (0x02977fffn & ~((1n << 2n) | (1n << 3n) | (1n << 5n) | (1n << 6n) | (1n << 13n) | (1n << 14n))) << 32n,
    // Pin-based controls without "virtual NMIs" (5).
    [MSR.IA32_VMX_PINBASED_CTLS]: 0x0000005f00000016n,
    [MSR.IA32_VMX_TRUE_PINBASED_CTLS]: 0x0000005f00000016n,
    // 2 CR3-target values, no VMWRITE to read-only fields (bit 29).
    [MSR.IA32_VMX_MISC]: 0x00000000400201e0n,
    [MSR.IA32_VMX_EPT_VPID_CAP]: 0x0000000006334141n,
  },
});
const PRESETS: [string, () => Machine, number][] = [['tigerlake', () => tigerlake(), 4], ['reduced', reduced, 2]];

// ---- what L1 is offered, read with RDMSR (and CPUID for MAXPHYADDR) ----
interface Offer { msrs: Map<number, bigint | null>; caps: VmxCaps }
function offered(machine: () => Machine): Offer {
  const msrs = new Map<number, bigint | null>();
  let cpuid = 0n;
  const all = Object.entries(V).filter(([k, v]) => k.startsWith('MSR_IA32_VMX_') && typeof v === 'number') as [string, number][];
  const steps: Step[] = all.map(([, n]) => ({ exit: { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: BigInt(n) } },
    check: (m: Machine) => void msrs.set(n, injected(m) ? null : (m.guestReg(RDX) << 32n) | (m.guestReg(RAX) & M32)) }));
  steps.push({ exit: { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0x80000008n, [RCX]: 0n } }, check: (m) => { cpuid = m.guestReg(RAX); } });
  const r = play(steps, 'nested=on', { machine: machine() });
  assert.equal(r.faults, [], r.console);
  assert.is(r.status, 0, r.console);
  return { msrs, caps: capsFromMsrs((n) => msrs.get(n) ?? null, cpuid, 32n << 20n).vmx };
}

// ---- L1's memory, through vmcs01's EPT ----
function hpa(m: Machine, gpa: number): number {
  const mask = 0x000ffffffffff000n;
  let table = m.vmx.field(V.EPT_POINTER) & mask;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = m.phys.read64(Number(table + ((BigInt(gpa) >> shift) & 511n) * 8n));
    if ((e & 7n) === 0n) throw new Error(`guest-physical 0x${gpa.toString(16)} not mapped`);
    if (level === 1 || (e & 0x80n) !== 0n) return Number((e & mask & ~((1n << shift) - 1n)) | (BigInt(gpa) & ((1n << shift) - 1n)));
    table = e & mask;
  }
  throw new Error('unreachable');
}
function setupMemory(m: Machine): void {
  m.phys.write64(hpa(m, PML4), BigInt(PDPT | 3));
  m.phys.write64(hpa(m, PDPT), BigInt(PD | 3));
  for (let i = 0; i < 16; i++) m.phys.write64(hpa(m, PD + i * 8), (BigInt(i) << 21n) | 0x83n);
  for (const r of [VMXON_REGION, VMCS12]) m.phys.write32(hpa(m, r), REV);
}

// ---- L1's instructions ----
const regInfo = (reg1: number, reg2: number) =>
  BigInt((V.INSN_INFO_REG_OPERAND | reg1 << V.INSN_INFO_REG1_SHIFT | reg2 << V.INSN_INFO_REG2_SHIFT) >>> 0);
const memInfo = () => BigInt(((2 << V.INSN_INFO_ADDR_SIZE_SHIFT) | (3 << V.INSN_INFO_SEGMENT_SHIFT) | V.INSN_INFO_INDEX_INVALID |
  (RBX << V.INSN_INFO_BASE_REG_SHIFT)) >>> 0);
type Outcome = 'ok' | 'failValid' | 'failInvalid' | 'fault';
function outcome(m: Machine, rip: bigint): Outcome {
  if (injected(m) !== 0n || m.vmx.field(V.GUEST_RIP) === rip) return 'fault';
  const f = m.vmx.field(V.GUEST_RFLAGS) & ARITH;
  return f === 0n ? 'ok' : f === BigInt(V.X86_RFLAGS_ZF) ? 'failValid' : f === BigInt(V.X86_RFLAGS_CF) ? 'failInvalid' : 'fault';
}

// A disagreement is recorded, not thrown, so that the test lists them all.
interface Sweep { wrong: string[]; counts: Record<string, number> }

function insn(reason: number, info: bigint, regs: Record<number, bigint>, check: (m: Machine, o: Outcome) => void): Step {
  let rip = 0n;
  return {
    before: (m) => { rip = m.vmx.field(V.GUEST_RIP); },
    exit: { reason, len: LEN, regs, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info, [V.GUEST_RFLAGS]: FLAGS_ALL } },
    check: (m) => check(m, outcome(m, rip)),
  };
}
const vmread = (enc: bigint, check: (m: Machine, o: Outcome) => void) =>
  insn(V.EXIT_REASON_VMREAD, regInfo(RAX, RCX), { [RCX]: enc, [RAX]: 0xdeadbeefdeadbeefn }, check);
const vmwrite = (enc: bigint, v: bigint, check: (m: Machine, o: Outcome) => void) =>
  insn(V.EXIT_REASON_VMWRITE, regInfo(RDX, RCX), { [RCX]: enc, [RDX]: v }, check);
const ptrInsn = (reason: number, ptr: number, what: string): Step => ({
  before: (m) => m.phys.write64(hpa(m, DATA), BigInt(ptr)),
  exit: { reason, len: LEN, regs: { [RBX]: BigInt(DATA) }, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: memInfo(), [V.GUEST_RFLAGS]: FLAGS_ALL } },
  check: (m) => assert.ok(injected(m) === 0n && (m.vmx.field(V.GUEST_RFLAGS) & ARITH) === 0n, `${what}: VMsucceed`),
});

// guest-script.ts's play() for a long script made as it runs (an iterable
// of steps: ~100,000 here, too many to build first): each entry plays the
// next step's exit; a step's check runs at the entry after it.
function playLazy(steps: Iterable<Step>, m: Machine) {
  const it = steps[Symbol.iterator]();
  let prev: Step | null = null;
  let finished = false;
  m.vmx.guest = (vmx) => {
    prev?.check?.(m, { rip: 0n });
    const n = finished ? { done: true as const, value: undefined } : it.next();
    let exit: Step['exit'];
    if (n.done) {
      finished = true;
      prev = null;
      exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };
    } else {
      prev = n.value;
      n.value.before?.(m);
      exit = n.value.exit;
    }
    produceExit(m, vmx, exit, 2);
  };
  const r = runKernel(m, { boot: { cmdline: 'caps=off guest=/g nested=on', files: [{ name: '/g', data: tinyKernel() }] } });
  return { ...r, finished };
}

// What the SDM says L1's instruction on `enc` does, from the offered caps.
function expected(enc: bigint, caps: VmxCaps): { exists: boolean; readOnly: boolean; width: number } {
  const f = enc >> 32n === 0n ? lookupField(Number(enc), caps) : null;
  if (!f) return { exists: false, readOnly: false, width: 0 };
  const readOnly = ((Number(enc) >>> 10) & 3) === 1; // type 1: VM-exit information (24.11.2)
  const width = f.high ? 32 : f.width === 'natural' ? 64 : f.width;
  return { exists: true, readOnly, width };
}

function* sweepSteps(encs: bigint[], caps: VmxCaps, s: Sweep): Generator<Step> {
  const anyField = ((caps.misc >> 29n) & 1n) === 1n;
  const bump = (k: string) => { s.counts[k] = (s.counts[k] ?? 0) + 1; };
  const errorIs = (n: number, what: string): Step => vmread(BigInt(V.VM_INSTRUCTION_ERROR), (m, o) => {
    const e = m.guestReg(RAX);
    if (o !== 'ok' || e !== BigInt(n)) s.wrong.push(`${what}: VM-instruction error ${o === 'ok' ? e : o}, expected ${n}`);
  });
  for (const enc of encs) {
    const x = expected(enc, caps);
    const name = `${fieldName(Number(enc & M32))} (0x${enc.toString(16)})`;
    const v = 0xfedcba9876543210n ^ (enc * 0x10001n);
    const writeOk = x.exists && (!x.readOnly || anyField);
    yield (vmwrite(enc, v, (_m, o) => {
      const want: Outcome = writeOk ? 'ok' : 'failValid';
      if (o !== want) s.wrong.push(`VMWRITE ${name}: ${o}, expected ${want}`);
    }));
    if (!writeOk) yield (errorIs(x.exists ? V.VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT : V.VMXERR_UNSUPPORTED_VMCS_COMPONENT, `VMWRITE ${name}`));
    yield (vmread(enc, (m, o) => {
      bump(x.exists ? (x.readOnly ? 'read-only' : 'read/write') : 'no field');
      if (o !== (x.exists ? 'ok' : 'failValid')) {
        s.wrong.push(`VMREAD ${name}: ${o}, expected ${x.exists ? 'ok' : 'failValid'}`);
        return;
      }
      if (x.exists && writeOk) {
        const want = BigInt.asUintN(x.width, v);
        const got = m.guestReg(RAX);
        if (got !== want) s.wrong.push(`VMREAD ${name}: 0x${got.toString(16)}, expected 0x${want.toString(16)} (${x.width} bits)`);
      }
    }));
    if (!x.exists) yield (errorIs(V.VMXERR_UNSUPPORTED_VMCS_COMPONENT, `VMREAD ${name}`));
  }
}

// The shadow bitmaps of vmcs01 (when the kernel links a shadow VMCS): a 0
// bit only for an existing field, and in the VMWRITE bitmap only for one
// L1 may write.
function checkBitmaps(m: Machine, caps: VmxCaps, s: Sweep): number {
  const p2 = m.vmx.field(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL);
  if ((p2 & BigInt(V.PROC2_VMCS_SHADOWING)) === 0n) return 0;
  const anyField = ((caps.misc >> 29n) & 1n) === 1n;
  let open = 0;
  for (const [which, write] of [[V.VMREAD_BITMAP, false], [V.VMWRITE_BITMAP, true]] as const) {
    const bytes = m.phys.read(Number(m.vmx.field(which)), 4096);
    for (let enc = 0; enc < 0x8000; enc++) {
      if ((bytes[enc >>> 3] >> (enc & 7)) & 1) continue;
      open++;
      const x = expected(BigInt(enc), caps);
      if (!x.exists || (write && x.readOnly && !anyField)) {
        s.wrong.push(`${write ? 'VMWRITE' : 'VMREAD'} bitmap lets ${fieldName(enc)} (0x${enc.toString(16)}) through without an exit`);
      }
    }
  }
  return open;
}

function sweep(name: string, machine: () => Machine, hwCr3: number) {
  const offer = offered(machine);
  const caps = offer.caps;
  const s: Sweep = { wrong: [], counts: {} };
  // VMX_MISC bits 24:16: the processor's count, at most the 4 the vmcs12 layout holds.
  const cr3 = Number((caps.misc >> 16n) & 0x1ffn);
  assert.is(cr3, Math.min(hwCr3, 4), `${name}: CR3-target count offered`);
  // A.9: the highest index of any field that exists.
  assert.is(offer.msrs.get(MSR.IA32_VMX_VMCS_ENUM), BigInt(highestIndex(caps) << 1), `${name}: IA32_VMX_VMCS_ENUM`);
  assert.is(Number(offer.msrs.get(MSR.IA32_VMX_BASIC)! & 0x7fffffffn), REV, 'revision identifier');

  const encs: bigint[] = [];
  for (let e = 0; e < 0x8000; e++) encs.push(BigInt(e));
  // Bits 63:15 not all 0: never a field (in 64-bit mode the operand is 64 bits).
  let x = 0x2545f4914f6cdd1dn;
  for (let i = 0; i < 512; i++) {
    x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n);
    const low = x >> 49n; // bits 14:0 from the high end
    const high = i < 256 ? BigInt(1 + (i % 0x1ffff)) << 15n : x & ~0x7fffn; // bits 31:15, or anywhere up to 63
    encs.push(high === 0n ? (1n << 15n) | low : high | low);
  }
  let open = -1;
  const steps: Step[] = [
    { before: setupMemory, exit: { reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: BigInt(V.MSR_IA32_FEATURE_CONTROL), [RAX]: 5n, [RDX]: 0n }, fields: LONG64 },
      check: (m) => assert.is(injected(m), 0n, 'FEATURE_CONTROL') },
    ptrInsn(V.EXIT_REASON_VMXON, VMXON_REGION, 'VMXON'),
    ptrInsn(V.EXIT_REASON_VMCLEAR, VMCS12, 'VMCLEAR'),
    { ...ptrInsn(V.EXIT_REASON_VMPTRLD, VMCS12, 'VMPTRLD'), check: (m) => { open = checkBitmaps(m, caps, s); } },
  ];
  const r = playLazy((function* () { yield* steps; yield* sweepSteps(encs, caps, s); })(), machine());
  assert.equal(r.faults, [], r.console.slice(-2000));
  assert.is(r.status, 0, r.console.slice(-2000));
  assert.ok(r.finished, 'every step played');
  if (process.env.HV_FIELDS_VERBOSE) console.log(name, JSON.stringify(s.counts), `${open} open bitmap bits`);
  assert.equal(s.wrong.slice(0, 20), [], `${name}: ${s.wrong.length} disagreements with the SDM oracle`);
  return { counts: s.counts, open, caps };
}

for (const [name, machine, hwCr3] of PRESETS) {
  test(`${name}: every encoding 0..7FFFH and 512 with bits 63:15 set, VMREAD and VMWRITE as the offered capabilities say`, () => {
    const { counts, open, caps } = sweep(name, machine, hwCr3);
    assert.ok((counts['read/write'] ?? 0) > 100, `fields that exist: ${JSON.stringify(counts)}`);
    assert.ok((counts['read-only'] ?? 0) >= 14, `read-only fields: ${JSON.stringify(counts)}`);
    const shadowing = ((caps.proc2_1 >>> 14) & 1) === 1;
    // tigerlake has VMCS shadowing, so the kernel links a shadow VMCS; the reduced processor has none.
    if (name === 'tigerlake') assert.ok(open > 0, 'the shadow bitmaps let some fields through');
    else assert.is(open, 0, 'no shadowing on the reduced processor');
    // "VMCS shadowing" for L1's own L2 (shadow12.ts) is offered where the processor has it.
    assert.is(shadowing, name === 'tigerlake', 'VMCS shadowing offered to L1 exactly where the processor has it');
  });
}

test('the reduced processor offers less: no VPID, VM functions, virtual NMIs; 2 CR3 targets', () => {
  const { caps } = offered(reduced);
  assert.is((caps.proc2_1 >>> 5) & 1, 0, 'no "enable VPID"');
  assert.is((caps.proc2_1 >>> 13) & 1, 0, 'no "enable VM functions"');
  assert.is((caps.pin1 >>> 5) & 1, 0, 'no "virtual NMIs"');
  assert.is(Number((caps.misc >> 16n) & 0x1ffn), 2, '2 CR3-target values');
  // The vmcs12 cache takes any write, whatever the processor's bit 29 (caps.ts).
  assert.is((caps.misc >> 29n) & 1n, 1n, 'VMX_MISC bit 29 offered all the same');
});

test.run();
