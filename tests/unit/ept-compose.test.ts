// Shadow EPT: L1's EPT composed with L0's (issue 5 item 8), end to end on
// kernel.wasm. A scripted L1 (nested=on) builds EPT paging structures in its
// RAM, sets up a vmcs12 with "enable EPT" and VMLAUNCHes L2; while L2 runs
// (vmcs02 current) the script produces the EPT violations the processor
// would report for vmcs02's EPT -- the hypervisor's shadow tables, walked
// here in model memory -- and every outcome is checked against an oracle
// written here from the SDM, which shares nothing with the kernel:
//
//   SDM Vol. 3C 29.3.2    EPT translation (4-level walk, Tables 29-1..29-6,
//                         1-GByte and 2-MByte pages)
//   SDM Vol. 3C 29.3.3.1  EPT misconfigurations
//   SDM Vol. 3C 29.3.3.2  EPT violations (the AND of bits 2:0 of the entries
//                         used)
//   SDM Vol. 3C 28.2.1    exit qualification of an EPT violation (Table
//                         28-7: 2:0 access, 5:3 the AND of bits 2:0 of the
//                         entries, 7/8 guest-linear address, 12 NMI
//                         unblocking), guest-physical address field; the
//                         qualification is cleared for other exits (49)
//   SDM Vol. 3C 29.4.3.1  INVEPT single-context / all-context: the mappings
//                         of an EP4TA / of all EP4TAs are invalidated; an EPT
//                         violation invalidates the mappings its access used
//   SDM Vol. 3C 29.4.3.4  permissions raised (or an entry made present)
//                         without INVEPT: at most one EPT violation that
//                         "would not otherwise occur", never repeated. The
//                         hypervisor takes the other allowed answer: it
//                         re-walks L1's tables and L2 goes on (eptfault.ts),
//                         which is what is checked
//   SDM Vol. 3C 27.5.6.3  EPTP switching (VMFUNC leaf 0): ECX >= 512 or an
//                         invalid EPTP-list entry is a VM exit (59); else the
//                         EPT pointer becomes the entry, RIP moves on
//   SDM Vol. 3C 28.5      L1 continues at vmcs12's host RIP after an exit
//
// What L1 would see is L1's EPT composed with L0's mapping of L1's RAM:
// the oracle reads L0's mapping from vmcs01's EPT in model memory. Two rules
// are the hypervisor's, not the SDM's: a paging structure of L1 outside L1's
// RAM reads as all ones (bits 51:MAXPHYADDR set: a misconfiguration), and an
// L2 access that L1's EPT sends outside L1's RAM to no device stops the guest
// with a message, as L1's own access there does. L1's APIC page (FEE00000H)
// is a device: L2's access to it through L1's EPT is L1's APIC access
// (kernel/vm/mmio.ts), its instruction read through L2's paging and L1's
// EPT.
//
// The shadow VMCS (shadow-vmcs=on, the default) is honoured as the
// processor does: L1's VMREAD/VMWRITE of a field whose bitmap bit is 0 reads
// or writes the shadow VMCS without a VM exit (31.3 VMREAD/VMWRITE, 25.10);
// every other VMREAD/VMWRITE is a scripted exit.
//
// The tests: one hand-built table set (4K/2M/1G pages, permission mixes,
// malformed entries) with every access kind, three ways (shadow VMCS on,
// off, L2 an unrestricted real-mode guest); targets outside L1's RAM (the
// stop); L1's APIC page mapped for L2 (reads, writes, a self-IPI, a
// read-only mapping); INVEPT single-context and all-context; the root cache with 2, 4
// and 5 EPTPs against an LRU model; VMFUNC EPTP switching; random table
// sets; VMCS shadowing that L1 gives its L2 (L2's VMREAD/VMWRITE). The script is a generator (drive()): each `yield` is one VM exit,
// the code after it runs at the next VM entry and sees what the kernel did.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, buildBootInfo, loadKernel, type Machine } from '../model/index.ts';
import { lookupField, truncate, fieldName } from '../model/vmcs-fields.ts';
import * as V from '../model/vmx-consts.ts';
import { tinyKernel, produceExit, RAX, RCX, RDX, RBX, type Exit } from './guest-script.ts';
import { prng, type Rng } from './prng.ts';

const B = (v: number | bigint): bigint => (typeof v === 'number' ? BigInt(v >>> 0) : BigInt.asUintN(64, v));
const ALL1 = (1n << 64n) - 1n;
const ADDR = 0x000ffffffffff000n; // bits 51:12
const MiB = 0x100000;
const L1_RAM = 32 * MiB; // kernel/vm/config.ts DEFAULT_MEM: L1-physical [0, 32 MiB)
const R = 1, W = 2, X = 4;
const ACCESSES = [R, W, X];
const ACCESS_NAME: Record<number, string> = { 1: 'read', 2: 'write', 4: 'fetch' };
const WB = 6n << 3n; // leaf memory type WB (bits 5:3)
const LARGE = 1n << 7n;
const K4 = 1n << 12n, M2 = 1n << 21n, G1 = 1n << 30n;

// ---- L1's memory (L1-physical) -----------------------------------------------
const L1_PML4 = 0x10000, L1_PDPT = 0x11000, L1_PD = 0x12000; // L1's own paging: identity, 2-MiB pages
const VMXON_REGION = 0x20000, VMCS12 = 0x21000;
const DATA = 0x30000; // memory operands of L1's VMX instructions
const EPTP_LIST = 0x31000; // VMFUNC's EPTP list (4 KiB, 512 entries)
const POOL = 0x400000; // L1's EPT paging structures: page n at POOL + n * 4 KiB
const TARGET = 0x1000000; // L1-physical pages L1 gives L2
const HOST_RIP12 = 0x180000n; // where L1 continues after an exit from L2
const L2_RIP = 0x401000n;
const pool = (n: number): bigint => BigInt(POOL + n * 4096);
const eptpOf = (root: bigint, type = 6n): bigint => root | (3n << 3n) | type; // walk length 4, WB

// ---- the run: a generator plays L1 and L2 --------------------------------------
type Script = Generator<Exit, void, void>;

interface Offer { pin0: number; proc0: number; exit0: number; entry0: number; ept: bigint; vmfunc: bigint; maxPhys: number }
interface Ctx {
  m: Machine;
  vmcs01: bigint; // model address of vmcs01 (current at the first entry)
  vmcs02: bigint; // model address of vmcs02 (current once L2 runs), -1 before
  offer: Offer;
  stopExpected: string | null; // set just before an exit after which the kernel must stop the guest
  stats: Record<string, number>;
  kernel: Record<string, any>; // kernel.wasm's exports (the test hooks of kernel/testhooks.ts: the page allocator)
}

// isa-debug-exit, value 0, from whoever runs: the guest ends (guest-script.ts).
const FINAL: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };

interface Run { status: number; console: string; faults: string[]; trap: string | null; c: Ctx; finished: boolean; entries: number }

function drive(script: (c: Ctx) => Script, opts: { cmdline?: string; machine?: Machine } = {}): Run {
  const m = opts.machine ?? tigerlake();
  const c: Ctx = { m, vmcs01: -1n, vmcs02: -1n, offer: { pin0: 0, proc0: 0, exit0: 0, entry0: 0, ept: 0n, vmfunc: 0n, maxPhys: 0 },
    stopExpected: null, stats: {}, kernel: {} };
  const gen = script(c);
  let finished = false;
  let entries = 0;
  m.vmx.guest = (vmx) => {
    entries++;
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
  // runKernel, with the exports kept for the script (c.kernel).
  buildBootInfo(m, { cmdline: `caps=off guest=/g nested=on ${opts.cmdline ?? ''}`, files: [{ name: '/g', data: tinyKernel() }] });
  const k = loadKernel(m);
  c.kernel = k.exports;
  const r = k.call('kmain', m.bootInfo);
  assert.ok(r.ended, `kmain returned without ending the run: ${m.console.slice(-2000)}`);
  const status = m.faults.length ? -1 : (m.exitStatus ?? -1);
  return { status, console: m.console, faults: m.faults, trap: r.trap, c, finished, entries };
}

// A run that must end normally: every step played, isa-debug-exit, status 0.
function runOk(script: (c: Ctx) => Script, cmdline = '', machine?: Machine): Run {
  const r = drive(script, { cmdline, machine });
  assert.equal(r.faults, [], r.console.slice(-3000));
  assert.is(r.trap, null, r.console.slice(-3000));
  assert.ok(r.finished, `the kernel ended the guest before the script finished: ${r.console.slice(-3000)}`);
  assert.is(r.status, 0, r.console.slice(-3000));
  if (process.env.HV_EPT_VERBOSE) console.log(JSON.stringify(r.c.stats), r.entries, 'entries');
  return r;
}

const inL1 = (c: Ctx) => c.m.vmx.currentVmcs === c.vmcs01;
const field = (c: Ctx, enc: number, vmcs?: bigint) => c.m.vmx.field(enc, vmcs);
const bump = (c: Ctx, k: string) => { c.stats[k] = (c.stats[k] ?? 0) + 1; };

// ---- L0's mapping of L1's RAM: vmcs01's EPT in model memory --------------------
function l0(c: Ctx, gpa: bigint): bigint | null {
  let table = field(c, V.EPT_POINTER, c.vmcs01) & ADDR;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = c.m.phys.read64(Number(table + ((gpa >> shift) & 511n) * 8n));
    if ((e & 7n) === 0n) return null;
    if (level === 1 || (e & LARGE) !== 0n) {
      const page = (1n << shift) - 1n;
      return (e & ADDR & ~page) | (gpa & page);
    }
    table = e & ADDR;
  }
  return null;
}
function l1hpa(c: Ctx, gpa: number | bigint): number {
  const h = l0(c, BigInt(gpa));
  if (h === null) throw new Error(`test bug: L1-physical 0x${gpa.toString(16)} is not L1 RAM`);
  return Number(h);
}
const w64 = (c: Ctx, gpa: number | bigint, v: bigint) => c.m.phys.write64(l1hpa(c, gpa), B(v));
const r64 = (c: Ctx, gpa: number | bigint) => c.m.phys.read64(l1hpa(c, gpa));
const w32 = (c: Ctx, gpa: number | bigint, v: number) => c.m.phys.write32(l1hpa(c, gpa), v);
const clearPage = (c: Ctx, gpa: number | bigint) => c.m.phys.write(l1hpa(c, gpa), new Uint8Array(4096));
// What L1 reads at L1-physical gpa: its RAM, all ones elsewhere (the hypervisor's rule).
const l1Read64 = (c: Ctx, gpa: bigint): bigint => {
  if (gpa < 0n || gpa + 8n > BigInt(L1_RAM)) return ALL1;
  const h = l0(c, gpa);
  return h === null ? ALL1 : c.m.phys.read64(Number(h));
};

// ---- the SDM oracle: L1's EPT walk (29.3.2, 29.3.3) ------------------------------
type Kind = 'ok' | 'violation' | 'misconfig';
interface Walk { kind: Kind; perms: number; gpa1?: bigint; size?: bigint; memType?: bigint }

function sdmWalk(read: (pa: bigint) => bigint, cap: bigint, maxPhys: number, eptp: bigint, gpa: bigint, access: number): Walk {
  const has = (b: bigint) => ((cap >> b) & 1n) === 1n;
  // 29.3.3.1: bits 51:MAXPHYADDR of any entry are reserved.
  const beyond = maxPhys < 52 ? ((1n << 52n) - 1n) & ~((1n << BigInt(maxPhys)) - 1n) : 0n;
  const bits = (hi: number, lo: number) => ((1n << BigInt(hi + 1)) - 1n) & ~((1n << BigInt(lo)) - 1n);
  let table = eptp & ADDR;
  let and = 7;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = read(table + ((gpa >> shift) & 511n) * 8n);
    const rwx = Number(e & 7n);
    if (rwx === 0) return { kind: 'violation', perms: 0 }; // 29.3.2: not present
    // 29.3.3.1: write without read; execute-only without IA32_VMX_EPT_VPID_CAP[0].
    if (rwx === 2 || rwx === 6 || (rwx === 4 && !has(0n))) return { kind: 'misconfig', perms: 0 };
    let reserved = beyond;
    let leaf = false;
    if (level === 4) reserved |= bits(7, 3); // Table 29-1
    else if (level === 3 || level === 2) {
      if ((e & LARGE) !== 0n) {
        // Tables 29-2 / 29-4; a page size not offered (A.10 bits 17/16): bit 7 is reserved.
        if (!has(level === 3 ? 17n : 16n)) return { kind: 'misconfig', perms: 0 };
        leaf = true;
        reserved |= level === 3 ? bits(29, 12) : bits(20, 12);
      } else reserved |= bits(6, 3); // Tables 29-3 / 29-5
    } else leaf = true; // Table 29-6
    if ((e & reserved) !== 0n) return { kind: 'misconfig', perms: 0 };
    if (leaf && [2, 3, 7].includes(Number((e >> 3n) & 7n))) return { kind: 'misconfig', perms: 0 }; // memory type
    and &= rwx;
    if (leaf) {
      const size = 1n << shift;
      const gpa1 = (e & ADDR & ~(size - 1n)) | (gpa & (size - 1n));
      // 29.3.3.2: each access needs its bit in every entry used.
      // 29.3.7: the leaf's bits 6:3 (memory type, ignore PAT) give the type.
      return { kind: (access & ~and) !== 0 ? 'violation' : 'ok', perms: and, gpa1, size, memType: (e >> 3n) & 0xfn };
    }
    table = e & ADDR;
  }
  throw new Error('unreachable');
}
const l1Walk = (c: Ctx, eptp12: bigint, gpa2: bigint, access: number): Walk =>
  sdmWalk((a) => l1Read64(c, a), c.offer.ept, c.offer.maxPhys, eptp12, gpa2, access);

// ---- the processor's view: vmcs02's EPT (the shadow tables) in model memory ------
interface Shadow { present: boolean; perms: number; hpa?: bigint; size?: bigint; memType?: bigint }
function shadowWalk(c: Ctx, eptp02: bigint, gpa2: bigint): Shadow {
  const hw = c.m.maxPhysAddr();
  const beyond = ((1n << 52n) - 1n) & ~((1n << BigInt(hw)) - 1n);
  let table = eptp02 & ADDR;
  let and = 7;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = c.m.phys.read64(Number(table + ((gpa2 >> shift) & 511n) * 8n));
    const rwx = Number(e & 7n);
    if (rwx === 0) return { present: false, perms: 0 };
    // The processor would take an EPT misconfiguration (29.3.3.1): the
    // hypervisor's tables must never have one.
    assert.ok(rwx !== 2 && rwx !== 6, `shadow entry 0x${e.toString(16)} (level ${level}) writable without read`);
    assert.is(e & beyond, 0n, `shadow entry 0x${e.toString(16)} (level ${level}): bits beyond MAXPHYADDR`);
    and &= rwx;
    const leaf = level === 1 || (level <= 3 && (e & LARGE) !== 0n);
    if (leaf) {
      assert.ok(![2, 3, 7].includes(Number((e >> 3n) & 7n)), `shadow leaf 0x${e.toString(16)}: reserved memory type`);
      const size = 1n << shift;
      return { present: true, perms: and, hpa: (e & ADDR & ~(size - 1n)) | (gpa2 & (size - 1n)), size };
    }
    assert.is(e & (level === 4 ? 0xf8n : 0x78n), 0n, `shadow non-leaf entry 0x${e.toString(16)}: reserved bits`);
    table = e & ADDR;
  }
  throw new Error('unreachable');
}
// Every mapping of a shadow tree: L2-physical page -> { hpa, perms, size }.
function shadowLeaves(c: Ctx, eptp02: bigint): Map<bigint, Shadow> {
  const out = new Map<bigint, Shadow>();
  const walk = (table: bigint, level: number, base: bigint, and: number) => {
    const shift = BigInt(12 + 9 * (level - 1));
    for (let i = 0n; i < 512n; i++) {
      const e = c.m.phys.read64(Number(table + i * 8n));
      if ((e & 7n) === 0n) continue;
      const p = and & Number(e & 7n);
      const gpa = base | (i << shift);
      if (level === 1 || (level <= 3 && (e & LARGE) !== 0n)) {
        out.set(gpa, { present: true, perms: p, hpa: e & ADDR, size: 1n << shift, memType: (e >> 3n) & 0xfn });
      }
      else walk(e & ADDR, level - 1, gpa, p);
    }
  };
  walk(eptp02 & ADDR, 4, 0n, 7);
  return out;
}
const eptp02 = (c: Ctx) => field(c, V.EPT_POINTER, c.vmcs02);

// "never more": every mapping the processor can use for L2 is a 4-KiB page
// that L1's EPT (eptp12) maps to that L1-physical page, whose host page
// L0's EPT names, with L1's permissions exactly.
function assertShadowSound(c: Ctx, eptp12: bigint, what: string): number {
  const leaves = shadowLeaves(c, eptp02(c));
  for (const [gpa2, s] of leaves) {
    const label = `${what}: shadow mapping of L2-physical 0x${gpa2.toString(16)}`;
    assert.is(s.size, K4, `${label}: a 4-KiB page`);
    const w = l1Walk(c, eptp12, gpa2, 0);
    assert.is(w.kind, 'ok', `${label}: L1's EPT maps it`);
    assert.is(s.perms, w.perms, `${label}: L1's permissions (AND over L1's entries), never more`);
    assert.is(s.hpa, l0(c, w.gpa1! & ~0xfffn), `${label}: the host page of L1-physical 0x${w.gpa1!.toString(16)}`);
    // L0 maps L1's RAM write-back, so the composed type is L1's (29.3.7).
    assert.is(s.memType, w.memType, `${label}: L1's memory type and ignore-PAT bit`);
  }
  return leaves.size;
}

// ---- L1's instructions ---------------------------------------------------------------
const ARITH = 0x8d5n; // CF PF AF ZF SF OF
const FLAGS_ALL = 0x2n | ARITH;
const LEN = 3;
function memInfo(base = RBX): bigint {
  return B((2 << V.INSN_INFO_ADDR_SIZE_SHIFT) | (3 << V.INSN_INFO_SEGMENT_SHIFT) | V.INSN_INFO_INDEX_INVALID |
    (base << V.INSN_INFO_BASE_REG_SHIFT)); // [base], 64-bit address, DS
}
const regInfo = (reg1: number, reg2: number) =>
  B(V.INSN_INFO_REG_OPERAND | (reg1 << V.INSN_INFO_REG1_SHIFT) | (reg2 << V.INSN_INFO_REG2_SHIFT));
const withReg2 = (info: bigint, reg2: number) => info | (BigInt(reg2) << BigInt(V.INSN_INFO_REG2_SHIFT));

// An instruction of L1 that the kernel must complete with VMsucceed (31.2):
// arithmetic flags cleared, RIP past it, no event.
function* l1Insn(c: Ctx, what: string, reason: number, info: bigint, regs: Record<number, bigint> = {}, fields: Record<number, bigint> = {}): Script {
  assert.ok(inL1(c), `${what}: L1 runs`);
  const rip = field(c, V.GUEST_RIP);
  yield { reason, len: LEN, regs, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info, [V.GUEST_RFLAGS]: FLAGS_ALL, ...fields } };
  assert.ok(inL1(c), `${what}: L1 continues`);
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `${what}: no exception`);
  const f = field(c, V.GUEST_RFLAGS) & ARITH;
  const next = field(c, V.GUEST_RIP);
  if (f !== 0n) assert.unreachable(`${what}: not VMsucceed (RFLAGS 0x${f.toString(16)}, VM-instruction error ${yield* l1Read(c, V.VM_INSTRUCTION_ERROR, true)})`);
  assert.is(next, rip + BigInt(LEN), `${what}: completed`);
}
// An L1 instruction with a 64-bit memory operand at DATA.
function* ptrInsn(c: Ctx, what: string, reason: number, ptr: bigint): Script {
  w64(c, DATA, ptr);
  yield* l1Insn(c, what, reason, memInfo(), { [RBX]: BigInt(DATA) });
}
function* rdmsr(c: Ctx, msr: number): Generator<Exit, bigint, void> {
  yield { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: BigInt(msr) } };
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `RDMSR 0x${msr.toString(16)}: no #GP`);
  return (c.m.guestReg(RDX) << 32n) | (c.m.guestReg(RAX) & 0xffffffffn);
}

// The shadow VMCS the processor would use for L1's VMREAD (write = false) or
// VMWRITE of enc without a VM exit (25.10, 31.3): vmcs01 has "VMCS
// shadowing", a link pointer, and the bitmap bit of enc is 0. Else null.
function shadowVmcsFor(c: Ctx, enc: number, write: boolean): bigint | null {
  if ((field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs01) & B(V.PROC2_VMCS_SHADOWING)) === 0n) return null;
  if ((field(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs01) & B(V.PROC_ACTIVATE_SECONDARY_CONTROLS)) === 0n) return null;
  const link = field(c, V.VMCS_LINK_POINTER, c.vmcs01);
  if (link === ALL1 || enc >>> 15 !== 0) return null;
  const bitmap = field(c, write ? V.VMWRITE_BITMAP : V.VMREAD_BITMAP, c.vmcs01);
  if ((c.m.phys.read(Number(bitmap) + (enc >>> 3), 1)[0] >> (enc & 7)) & 1) return null;
  return link;
}
const caps = (c: Ctx) => c.m.vmx.caps();

// L1's VMREAD of enc (64-bit mode): from the shadow VMCS when the processor
// would read it there, else a VMREAD exit the kernel emulates.
function* l1Read(c: Ctx, enc: number, quiet = false): Generator<Exit, bigint, void> {
  const sh = shadowVmcsFor(c, enc, false);
  if (sh !== null) {
    const f = lookupField(enc, caps(c))!;
    const raw = c.m.vmx.field(f.base, sh);
    return f.high ? raw >> 32n : raw;
  }
  const rip = field(c, V.GUEST_RIP);
  yield { reason: V.EXIT_REASON_VMREAD, len: LEN, regs: { [RCX]: BigInt(enc), [RAX]: 0xdeadbeefn },
    fields: { [V.VM_EXIT_INSTRUCTION_INFO]: regInfo(RAX, RCX), [V.GUEST_RFLAGS]: FLAGS_ALL } };
  if (!quiet) {
    assert.is(field(c, V.GUEST_RFLAGS) & ARITH, 0n, `VMREAD ${fieldName(enc)}: VMsucceed`);
    assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), `VMREAD ${fieldName(enc)}: completed`);
  }
  return c.m.guestReg(RAX);
}
function* vmwrite(c: Ctx, enc: number, value: bigint): Script {
  const sh = shadowVmcsFor(c, enc, true);
  if (sh !== null) {
    const f = lookupField(enc, caps(c))!;
    c.m.vmx.setField(f.base, truncate(f.width, value), sh);
    return;
  }
  yield* l1Insn(c, `VMWRITE ${fieldName(enc)} 0x${value.toString(16)}`, V.EXIT_REASON_VMWRITE, regInfo(RDX, RCX),
    { [RCX]: BigInt(enc), [RDX]: B(value) });
}
function* invept(c: Ctx, type: 1 | 2, eptp: bigint): Script {
  w64(c, DATA + 0x100, eptp);
  w64(c, DATA + 0x108, 0n);
  yield* l1Insn(c, `INVEPT type ${type} EPTP 0x${eptp.toString(16)}`, V.EXIT_REASON_INVEPT, withReg2(memInfo(), RCX),
    { [RBX]: BigInt(DATA + 0x100), [RCX]: BigInt(type) });
}

// VMLAUNCH / VMRESUME: the next entry runs L2 on vmcs02.
function* enterL2(c: Ctx, launch: boolean, what = launch ? 'VMLAUNCH' : 'VMRESUME'): Script {
  assert.ok(inL1(c), `${what}: from L1`);
  yield { reason: launch ? V.EXIT_REASON_VMLAUNCH : V.EXIT_REASON_VMRESUME, len: LEN,
    fields: { [V.VM_EXIT_INSTRUCTION_INFO]: 0n, [V.GUEST_RFLAGS]: FLAGS_ALL } };
  if (inL1(c)) {
    const rf = field(c, V.GUEST_RFLAGS) & ARITH;
    const reason = field(c, V.GUEST_RIP) === HOST_RIP12 ? ` (exit to L1, reason 0x${(yield* l1Read(c, V.VM_EXIT_REASON, true)).toString(16)})` : '';
    const err = yield* l1Read(c, V.VM_INSTRUCTION_ERROR, true);
    assert.unreachable(`${what} did not enter L2: RFLAGS 0x${rf.toString(16)}, VM-instruction error ${err}${reason}`);
  }
  if (c.vmcs02 < 0n) c.vmcs02 = c.m.vmx.currentVmcs!;
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${what}: vmcs02 is current`);
  assert.is((field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & B(V.PROC2_ENABLE_EPT)), B(V.PROC2_ENABLE_EPT), `${what}: vmcs02 enables EPT`);
  // SDM 26.3: the instruction enables are vmcs12's alone (issue 9 item 3).
  // vmcs12 here never sets "enable RDTSCP" or "enable INVPCID", though L0
  // gives both to L1 (vmcs01): in L2 RDTSCP, RDPID and INVPCID must #UD.
  const enables = B(V.PROC2_ENABLE_RDTSCP | V.PROC2_ENABLE_INVPCID);
  assert.is(field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs01) & enables, enables, `${what}: vmcs01 enables RDTSCP and INVPCID`);
  assert.is(field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & enables, 0n, `${what}: vmcs02 has vmcs12's (0) "enable RDTSCP"/"enable INVPCID"`);
  bump(c, 'nested entries');
}

// ---- L1 from reset to a launchable vmcs12 -----------------------------------------------
const CR0 = B(V.X86_CR0_PG | V.X86_CR0_WP | V.X86_CR0_NE | V.X86_CR0_ET | V.X86_CR0_MP | V.X86_CR0_PE);
const CR4 = B(V.X86_CR4_PAE | V.X86_CR4_PGE | V.X86_CR4_OSFXSR | V.X86_CR4_OSXMMEXCPT | V.X86_CR4_VMXE);
const EFER64 = B(V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE);
const PAT = 0x0007040600070406n;
const AR_CODE64 = 0xa09bn, AR_DATA = 0xc093n, AR_TSS_BUSY = 0x8bn, AR_UNUSABLE = 0x10000n;
// L1: 64-bit mode, CPL 0, paging through its identity map.
const L1_LONG: Record<number, bigint> = {
  [V.GUEST_CR0]: CR0, [V.CR0_READ_SHADOW]: CR0, [V.GUEST_CR4]: CR4, [V.CR4_READ_SHADOW]: CR4,
  [V.GUEST_CR3]: BigInt(L1_PML4), [V.GUEST_IA32_EFER]: EFER64,
  [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA,
};

function setupL1Memory(c: Ctx): void {
  for (const p of [L1_PML4, L1_PDPT, L1_PD]) clearPage(c, p);
  w64(c, L1_PML4, BigInt(L1_PDPT | 3));
  w64(c, L1_PDPT, BigInt(L1_PD | 3));
  for (let i = 0; i < 16; i++) w64(c, L1_PD + i * 8, (BigInt(i) << 21n) | 0x83n); // P RW PS
  for (const r of [VMXON_REGION, VMCS12]) w32(c, r, 0x41534856); // kernel/nested/caps.ts REVISION_ID (checked below)
}

interface L2Opts { eptp: bigint; vmfunc?: boolean; unrestricted?: boolean; pml?: bigint }
// The vmcs12 of these tests: 64-bit L1 host, 64-bit L2 (or, unrestricted,
// real-address mode), "enable EPT" with eptp, HLT exiting, no I/O or MSR
// bitmaps, no MSR lists.
function vmcs12Fields(c: Ctx, o: L2Opts): [number, bigint][] {
  const f: [number, bigint][] = [];
  const set = (e: number, v: number | bigint) => f.push([e, B(v)]);
  const off = c.offer;
  set(V.PIN_BASED_VM_EXEC_CONTROL, off.pin0 | V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING);
  set(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, (off.proc0 | V.PROC_HLT_EXITING | V.PROC_ACTIVATE_SECONDARY_CONTROLS) >>> 0);
  set(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, V.PROC2_ENABLE_EPT | (o.unrestricted ? V.PROC2_UNRESTRICTED_GUEST : 0) |
    (o.vmfunc ? V.PROC2_ENABLE_VM_FUNCTIONS : 0) | (o.pml !== undefined ? V.PROC2_ENABLE_PML : 0));
  set(V.EPT_POINTER, o.eptp);
  if (o.pml !== undefined) {
    set(V.PML_ADDRESS, o.pml);
    set(V.PML_INDEX, 511);
  }
  if (o.vmfunc) {
    set(V.VM_FUNCTION_CONTROL, 1); // EPTP switching
    set(V.EPTP_LIST_ADDRESS, EPTP_LIST);
  }
  set(V.CR3_TARGET_COUNT, 0);
  set(V.EXCEPTION_BITMAP, 0);
  set(V.VM_EXIT_CONTROL, off.exit0 | V.EXIT_HOST_ADDRESS_SPACE_SIZE | V.EXIT_SAVE_IA32_EFER | V.EXIT_LOAD_IA32_EFER);
  set(V.VM_EXIT_MSR_STORE_COUNT, 0);
  set(V.VM_EXIT_MSR_LOAD_COUNT, 0);
  set(V.VM_ENTRY_CONTROL, off.entry0 | (o.unrestricted ? 0 : V.ENTRY_IA32E_MODE_GUEST) | V.ENTRY_LOAD_IA32_EFER);
  set(V.VM_ENTRY_MSR_LOAD_COUNT, 0);
  set(V.VM_ENTRY_INTERRUPTION_INFO, 0);
  // Host state: L1 in 64-bit mode on its identity map.
  set(V.HOST_CR0, CR0);
  set(V.HOST_CR3, L1_PML4);
  set(V.HOST_CR4, CR4);
  set(V.HOST_ES_SELECTOR, 0x10);
  set(V.HOST_CS_SELECTOR, 0x08);
  set(V.HOST_SS_SELECTOR, 0x10);
  set(V.HOST_DS_SELECTOR, 0x10);
  set(V.HOST_FS_SELECTOR, 0);
  set(V.HOST_GS_SELECTOR, 0);
  set(V.HOST_TR_SELECTOR, 0x18);
  set(V.HOST_FS_BASE, 0);
  set(V.HOST_GS_BASE, 0);
  set(V.HOST_TR_BASE, 0x1000);
  set(V.HOST_GDTR_BASE, 0x2000);
  set(V.HOST_IDTR_BASE, 0x3000);
  set(V.HOST_IA32_SYSENTER_ESP, 0);
  set(V.HOST_IA32_SYSENTER_EIP, 0);
  set(V.HOST_IA32_EFER, EFER64);
  set(V.HOST_RSP, 0x8000);
  set(V.HOST_RIP, HOST_RIP12);
  // Guest state (L2).
  const segs = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'];
  const seg = (s: string, what: string) => (V as any)[`GUEST_${s}_${what}`] as number;
  if (o.unrestricted) {
    // 27.3.1 with "unrestricted guest": real-address mode, CR0.PE = PG = 0.
    set(V.GUEST_CR0, V.X86_CR0_NE | V.X86_CR0_ET);
    set(V.GUEST_CR4, V.X86_CR4_VMXE);
    set(V.GUEST_IA32_EFER, 0);
    for (const s of segs) {
      const sel = s === 'CS' ? 0xf000 : 0;
      set(seg(s, 'SELECTOR'), s === 'TR' || s === 'LDTR' ? 0 : sel);
      set(seg(s, 'BASE'), s === 'TR' || s === 'LDTR' ? 0 : sel << 4);
      set(seg(s, 'LIMIT'), s === 'TR' ? 0x67 : 0xffff);
      set(seg(s, 'ACCESS_RIGHTS'), s === 'TR' ? AR_TSS_BUSY : s === 'LDTR' ? AR_UNUSABLE : s === 'CS' ? 0x9bn : 0x93n);
    }
    set(V.GUEST_RIP, 0xfff0);
  } else {
    set(V.GUEST_CR0, CR0);
    set(V.GUEST_CR4, CR4);
    set(V.GUEST_IA32_EFER, EFER64);
    for (const s of segs) {
      const [sel, ar, lim, base] = s === 'CS' ? [0x08, AR_CODE64, 0xffffffff, 0] : s === 'TR' ? [0x18, AR_TSS_BUSY, 0x67, 0x5000] :
        s === 'LDTR' ? [0, AR_UNUSABLE, 0, 0] : [0x10, AR_DATA, 0xffffffff, 0];
      set(seg(s, 'SELECTOR'), sel);
      set(seg(s, 'ACCESS_RIGHTS'), ar);
      set(seg(s, 'LIMIT'), lim);
      set(seg(s, 'BASE'), base);
    }
    set(V.GUEST_RIP, L2_RIP);
  }
  set(V.GUEST_CR3, 0x30000);
  set(V.GUEST_DR7, 0x400);
  set(V.GUEST_IA32_DEBUGCTL, 0);
  set(V.GUEST_IA32_SYSENTER_ESP, 0);
  set(V.GUEST_IA32_SYSENTER_EIP, 0);
  set(V.GUEST_GDTR_BASE, 0x6000);
  set(V.GUEST_GDTR_LIMIT, 0x7f);
  set(V.GUEST_IDTR_BASE, 0x7000);
  set(V.GUEST_IDTR_LIMIT, 0xfff);
  set(V.GUEST_RSP, 0x9000);
  set(V.GUEST_RFLAGS, V.X86_RFLAGS_FIXED1);
  set(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  set(V.GUEST_INTERRUPTIBILITY_STATE, 0);
  set(V.GUEST_PENDING_DEBUG_EXCEPTIONS, 0);
  set(V.VMCS_LINK_POINTER, ALL1);
  return f;
}

// From L1's first instruction to VMLAUNCH of L2 with the tables at eptp:
// IA32_FEATURE_CONTROL, what the capability MSRs offer, VMXON, VMCLEAR,
// VMPTRLD, VMWRITEs of the whole vmcs12, VMLAUNCH.
function* bootL1(c: Ctx, o: L2Opts & { build?: () => void }): Script {
  setupL1Memory(c);
  o.build?.();
  yield { reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: B(V.MSR_IA32_FEATURE_CONTROL), [RAX]: 5n, [RDX]: 0n }, fields: L1_LONG };
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, 'IA32_FEATURE_CONTROL locked with VMX on');
  const basic = yield* rdmsr(c, V.MSR_IA32_VMX_BASIC);
  assert.is(Number(basic & 0x7fffffffn), 0x41534856, 'revision identifier');
  assert.ok((basic >> 55n) & 1n, 'TRUE controls MSRs (A.1 bit 55)');
  c.offer.pin0 = Number((yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_PINBASED_CTLS)) & 0xffffffffn);
  c.offer.proc0 = Number((yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS)) & 0xffffffffn);
  c.offer.exit0 = Number((yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_EXIT_CTLS)) & 0xffffffffn);
  c.offer.entry0 = Number((yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_ENTRY_CTLS)) & 0xffffffffn);
  const proc2 = (yield* rdmsr(c, V.MSR_IA32_VMX_PROCBASED_CTLS2)) >> 32n;
  assert.ok(proc2 & B(V.PROC2_ENABLE_EPT), '"enable EPT" offered');
  c.offer.ept = (yield* rdmsr(c, V.MSR_IA32_VMX_EPT_VPID_CAP)) & 0xffffffffn;
  if (o.vmfunc) {
    assert.ok(proc2 & B(V.PROC2_ENABLE_VM_FUNCTIONS), '"enable VM functions" offered');
    c.offer.vmfunc = yield* rdmsr(c, V.MSR_IA32_VMX_VMFUNC);
    assert.is(c.offer.vmfunc & 1n, 1n, 'EPTP switching offered (A.11 bit 0)');
  }
  if (o.unrestricted) assert.ok(proc2 & B(V.PROC2_UNRESTRICTED_GUEST), '"unrestricted guest" offered');
  yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0x80000008n, [RCX]: 0n } };
  c.offer.maxPhys = Number(c.m.guestReg(RAX) & 0xffn);
  yield* ptrInsn(c, 'VMXON', V.EXIT_REASON_VMXON, BigInt(VMXON_REGION));
  yield* ptrInsn(c, 'VMCLEAR', V.EXIT_REASON_VMCLEAR, BigInt(VMCS12));
  yield* ptrInsn(c, 'VMPTRLD', V.EXIT_REASON_VMPTRLD, BigInt(VMCS12));
  for (const [e, v] of vmcs12Fields(c, o)) yield* vmwrite(c, e, v);
  yield* enterL2(c, true);
  assert.is(field(c, V.GUEST_RIP), o.unrestricted ? 0xfff0n : L2_RIP, 'L2 starts at vmcs12\'s guest RIP');
  // Bit 6 (accessed and dirty flags) as L1's: with it the processor treats
  // L2's guest paging-structure accesses as writes (29.3.3.2).
  assert.is(field(c, V.EPT_POINTER) & 0x7fn, 0x1en | (o.eptp & 0x40n), 'vmcs02\'s EPT pointer: WB, 4-level walk, accessed/dirty flags as L1\'s');
}

// ---- L2's exits ----------------------------------------------------------------------
type Outcome = { kind: Kind | 'outside' | 'device'; perms: number; gpa1?: bigint };
interface ViolationOpts { linear?: bigint; paging?: boolean; nmiUnblock?: boolean; expect?: Kind | 'outside' }
const APIC_PAGE = 0xfee00000n; // L1's local APIC (kernel/vm/mmio.ts)

// What must follow L2's access: L1's walk, and where L0 has the page.
function predict(c: Ctx, eptp12: bigint, gpa2: bigint, access: number): Outcome {
  const w = l1Walk(c, eptp12, gpa2, access);
  if (w.kind === 'ok' && (w.gpa1! & ~0xfffn) === APIC_PAGE) return { kind: 'device', perms: w.perms, gpa1: w.gpa1 };
  if (w.kind === 'ok' && l0(c, w.gpa1! & ~0xfffn) === null) return { kind: 'outside', perms: w.perms, gpa1: w.gpa1 };
  return { kind: w.kind, perms: w.perms, gpa1: w.gpa1 };
}
// Would the processor exit for this access with vmcs02's EPT as it is?
const shadowDenies = (c: Ctx, gpa2: bigint, access: number) => (access & ~shadowWalk(c, eptp02(c), gpa2).perms) !== 0;

// L2 accesses gpa2 (access R/W/X) and vmcs02's EPT does not allow it: the
// processor's EPT violation (28.2.1), then the oracle's verdict is checked.
// Returns the oracle's outcome; L1 runs afterwards unless L1's tables
// allowed the access.
function* l2Access(c: Ctx, eptp12: bigint, gpa2: bigint, access: number, o: ViolationOpts = {}): Generator<Exit, Outcome, void> {
  const label = `L2 ${ACCESS_NAME[access]} at 0x${gpa2.toString(16)} (L1 EPTP 0x${eptp12.toString(16)})`;
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${label}: L2 runs`);
  const root = eptp02(c);
  const sh = shadowWalk(c, root, gpa2);
  assert.ok((access & ~sh.perms) !== 0, `test bug: ${label}: vmcs02's EPT already allows it, the processor would not exit`);
  // 28.2.1 Table 28-7: bits 2:0 the access, 5:3 the AND of bits 2:0 of the
  // entries used (0 when one is not present), 7 guest-linear address valid,
  // 8 the access was to the linear address's translation (not to a paging
  // structure), 12 NMI unblocking due to IRET.
  const linear = o.linear ?? 0x7f0000000000n + (gpa2 & 0xfffffn);
  let q = BigInt(access) | (BigInt(sh.perms) << 3n);
  if (o.linear !== undefined || o.paging !== undefined) q |= 1n << 7n;
  if ((q >> 7n) & 1n && !o.paging) q |= 1n << 8n;
  if (o.nmiUnblock) q |= 1n << 12n;
  const w = l1Walk(c, eptp12, gpa2, access);
  const want = predict(c, eptp12, gpa2, access);
  if (o.expect) assert.is(want.kind, o.expect, `${label}: the case is written for ${o.expect}`);
  assert.ok(want.kind !== 'device', `test bug: ${label}: an APIC access has an instruction to decode (apicAccess)`);
  const rip = field(c, V.GUEST_RIP);
  if (want.kind === 'outside') {
    c.stopExpected = `${label} -> L1-physical 0x${w.gpa1!.toString(16)} outside L1's RAM`;
    c.stats.outsideGpa2 = Number(gpa2);
    c.stats.outsideGpa1 = Number(w.gpa1!);
  }
  yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: q, len: 0,
    fields: { [V.GUEST_PHYSICAL_ADDRESS]: gpa2, [V.GUEST_LINEAR_ADDRESS]: (q >> 7n) & 1n ? linear : 0n } };
  if (want.kind === 'ok') {
    // Not L1's violation: the kernel maps the page and L2 goes on (no exit to L1).
    assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${label}: L2 resumed, no exit to L1 (console: ${c.m.console.slice(-400)})`);
    assert.is(field(c, V.GUEST_RIP), rip, `${label}: L2 retries the access`);
    assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `${label}: nothing injected`);
    assert.is(eptp02(c), root, `${label}: same shadow root`);
    const now = shadowWalk(c, root, gpa2);
    assert.ok(now.present, `${label}: vmcs02's EPT maps the page now`);
    assert.is(now.size, K4, `${label}: a 4-KiB page`);
    assert.is(now.perms, w.perms, `${label}: L1's effective permissions (AND over L1's levels), exactly`);
    assert.is(now.hpa, l0(c, w.gpa1!), `${label}: host-physical page of L1-physical 0x${w.gpa1!.toString(16)}`);
    bump(c, 'filled');
    return want;
  }
  // An exit to L1 (28.5: L1 continues at vmcs12's host RIP, vmcs01 current).
  assert.ok(inL1(c), `${label}: an exit to L1 (oracle: ${want.kind})`);
  assert.is(field(c, V.GUEST_RIP), HOST_RIP12, `${label}: L1 at its host RIP`);
  const reason = yield* l1Read(c, V.VM_EXIT_REASON);
  const gpa = yield* l1Read(c, V.GUEST_PHYSICAL_ADDRESS);
  const qual = yield* l1Read(c, V.EXIT_QUALIFICATION);
  const rip12 = yield* l1Read(c, V.GUEST_RIP);
  assert.is(gpa, gpa2, `${label}: vmcs12 guest-physical address = the L2 address`);
  assert.is(rip12, rip, `${label}: vmcs12 guest RIP = the faulting instruction`);
  if (want.kind === 'violation') {
    assert.is(reason, B(V.EXIT_REASON_EPT_VIOLATION), `${label}: exit reason 48`);
    const wantQ = BigInt(access) | (BigInt(w.perms) << 3n) | (q & ((1n << 7n) | (1n << 8n) | (1n << 12n)));
    assert.is(qual, wantQ, `${label}: qualification (access 2:0, L1's AND ${w.perms} in 5:3, bits 7/8/12 as reported)`);
    if ((q >> 7n) & 1n) assert.is(yield* l1Read(c, V.GUEST_LINEAR_ADDRESS), linear, `${label}: guest-linear address`);
    bump(c, 'reflected 48');
  } else {
    assert.is(reason, B(V.EXIT_REASON_EPT_MISCONFIG), `${label}: exit reason 49`);
    assert.is(qual, 0n, `${label}: no qualification for an EPT misconfiguration (28.2.1: cleared)`);
    bump(c, 'reflected 49');
  }
  return want;
}

// An exit L1 always gets (CPUID, 26.1.2): back to L1 from L2.
function* l2Cpuid(c: Ctx): Script {
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'CPUID: L2 runs');
  yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n } };
  assert.ok(inL1(c), 'CPUID in L2: exit to L1');
  assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_CPUID), 'CPUID: exit reason 10');
}

// ============================================================================

// A hand-built table set (L1-physical pages from POOL + base*4K on):
//   PML4[0] -> PDPT (RWX); PML4[1] bit 7 set (reserved in a PML4E)
//   PDPT[0] -> PD (RWX)
//   PDPT[1]  1-GByte page at L1-physical 0, RWX      (L2 1G..2G)
//   PDPT[2]  1-GByte page at 1 GiB (outside L1 RAM)  (L2 2G..3G)
//   PDPT[3]  1-GByte page, bit 13 set (reserved)
//   PDPT[4] -> PD2 with RX (5): 2-MByte RW leaf under it: effective R
//   PD[0] -> PT (RWX)
//   PD[1]  2-MByte page at TARGET+2M, RW (3)
//   PD[2]  2-MByte page at TARGET+4M, X only (4)
//   PD[3] -> PT2 with R (1); PT2 leaves RWX: effective R
//   PD[4]  non-leaf with bit 3 set (reserved)
//   PD[5] -> a PT outside L1 RAM (reads as all ones)
//   PD[6]  2-MByte page with bit 12 set (reserved)
//   PD[7] -> PT3 with X (4)
//   PT[i]   TARGET + i*4K: 0 RWX, 1 R, 2 RW, 3 X, 4 RX, 5 not present, 6 not
//           present with junk bits, 7 W (misconfig), 8 WX (misconfig), 9 memory
//           type 2, 10 memory type 7, 11 bit 45 (beyond MAXPHYADDR), 12 RWX
//           outside L1 RAM, 13 RWX IPAT + ignored bits, 14 memory type UC,
//           15 the last page of L1 RAM, 16 RW the first page beyond it
//   PD[9]   2-MByte page outside L1 RAM
interface Hand { eptp: bigint; gpa: Record<string, bigint> }
function buildHand(c: Ctx, base = 0, target = TARGET): Hand {
  const [PML4, PDPT, PD, PT, PD2, PT2, PT3] = [0, 1, 2, 3, 4, 5, 6].map((i) => pool(base + i));
  for (const p of [PML4, PDPT, PD, PT, PD2, PT2, PT3]) clearPage(c, p);
  const T = BigInt(target);
  w64(c, PML4, PDPT | 7n);
  w64(c, PML4 + 8n, PDPT | 7n | LARGE);
  w64(c, PDPT, PD | 7n);
  w64(c, PDPT + 8n, 0n | LARGE | WB | 7n);
  w64(c, PDPT + 16n, G1 | LARGE | WB | 7n);
  w64(c, PDPT + 24n, (1n << 13n) | LARGE | WB | 7n);
  w64(c, PDPT + 32n, PD2 | 5n);
  w64(c, PD2, (T + 6n * M2) | LARGE | WB | 3n);
  w64(c, PD, PT | 7n);
  w64(c, PD + 8n, (T + M2) | LARGE | WB | 3n);
  w64(c, PD + 16n, (T + 2n * M2) | LARGE | WB | 4n);
  w64(c, PD + 24n, PT2 | 1n);
  for (let i = 0n; i < 8n; i++) w64(c, PT2 + i * 8n, (T + 0x100000n + i * K4) | WB | 7n);
  w64(c, PD + 32n, PT | 7n | (1n << 3n));
  w64(c, PD + 40n, 0x7f000000n | 7n);
  w64(c, PD + 48n, (T + 4n * M2) | (1n << 12n) | LARGE | WB | 7n);
  w64(c, PD + 56n, PT3 | 4n);
  for (let i = 0n; i < 8n; i++) w64(c, PT3 + i * 8n, (T + 0x180000n + i * K4) | WB | 7n);
  const leaf = (i: number, bits: bigint, page = T + BigInt(i) * K4) => w64(c, PT + BigInt(i) * 8n, page | bits);
  leaf(0, WB | 7n);
  leaf(1, WB | 1n);
  leaf(2, WB | 3n);
  leaf(3, WB | 4n);
  leaf(4, WB | 5n);
  leaf(5, 0n, 0n);
  leaf(6, 0x000ffffffffff000n | (0x7ffn << 52n) | 0xff8n, 0n); // bits 2:0 = 0: not present whatever the rest
  leaf(7, WB | 2n);
  leaf(8, WB | 6n);
  leaf(9, (2n << 3n) | 7n);
  leaf(10, (7n << 3n) | 7n);
  leaf(11, (1n << 45n) | WB | 7n);
  leaf(12, WB | 7n, 0x3000000n);
  leaf(13, WB | 7n | (1n << 6n) | (1n << 8n) | (1n << 9n) | (1n << 10n) | (1n << 11n) | (0x7ffn << 52n));
  leaf(14, 7n);
  leaf(15, WB | 7n, BigInt(L1_RAM) - K4);
  leaf(16, WB | 3n, BigInt(L1_RAM));
  w64(c, PD + 72n, 0x7fe00000n | LARGE | WB | 7n);
  const pt = (i: number, off = 0n) => BigInt(i) * K4 + off;
  return {
    eptp: eptpOf(PML4),
    gpa: {
      '4K RWX': pt(0, 0x123n), '4K R': pt(1), '4K RW': pt(2, 0xff8n), '4K X': pt(3), '4K RX': pt(4, 0x40n),
      '4K not present': pt(5), '4K not present, junk bits': pt(6), '4K W only': pt(7), '4K WX': pt(8),
      '4K memory type 2': pt(9), '4K memory type 7': pt(10), '4K bit 45': pt(11), '4K outside L1 RAM': pt(12, 0x88n),
      '4K ignored bits': pt(13, 0x10n), '4K UC': pt(14), '4K last page of L1 RAM': pt(15, 0xff8n),
      '4K first page beyond L1 RAM': pt(16, 0x10n), '2M outside L1 RAM': 9n * M2 + 0x1f123n,
      '2M RW': M2 + 0x1234n, '2M RW, 2nd page': M2 + 0x5000n, '2M X': 2n * M2 + 0x1ff000n,
      'PT under R': 3n * M2 + 2n * K4, 'PD entry bit 3': 4n * M2, 'PT outside L1 RAM': 5n * M2 + K4,
      '2M bit 12': 6n * M2 + 0x3000n, 'PT under X': 7n * M2 + 5n * K4 + 8n,
      '2M RW under RX': 4n * G1 + 0x10000n, 'PD not present': 8n * M2,
      '1G RWX': G1 + BigInt(TARGET) + 0x7000n, '1G RWX low': G1 + 0x3000n, '1G outside L1 RAM': 2n * G1 + 0x1234n,
      '1G bit 13': 3n * G1, 'PDPT not present': 5n * G1, 'PML4E bit 7': 1n << 39n, 'PML4 not present': 2n << 39n,
    },
  };
}


// ============================================================================

const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const addTo = (m: Map<string, Set<string>>, k: string, v: string) => (m.get(k) ?? m.set(k, new Set()).get(k)!).add(v);

// Every hand-built address, every access kind, in one run; L1 resumes L2
// after each exit it gets. Returns what happened to each.
function handRun(cmdline: string, unrestricted: boolean): { seen: Map<string, Set<string>>; outside: [string, number][]; r: Run } {
  const seen = new Map<string, Set<string>>();
  const outside: [string, number][] = [];
  const r = runOk(function* (c) {
    let h: Hand = { eptp: 0n, gpa: {} };
    yield* bootL1(c, { eptp: eptpOf(pool(0)), unrestricted, build: () => { h = buildHand(c); } });
    assert.is(c.offer.ept, 0x06334141n, 'IA32_VMX_EPT_VPID_CAP offered: execute-only, 4 levels, UC, WB, 2M, 1G, INVEPT, accessed/dirty flags (A.10)');
    assert.is(c.offer.maxPhys, 39, 'L1\'s MAXPHYADDR (CPUID.80000008H:EAX[7:0])');
    // 27.5.6: "enable VM functions" 0 in vmcs12 -> 0 in vmcs02: VMFUNC is #UD in L2 without any exit.
    assert.is(field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & B(V.PROC2_ENABLE_VM_FUNCTIONS), 0n, 'vmcs02: no VM functions');
    assert.is(shadowLeaves(c, eptp02(c)).size, 0, 'a new shadow root maps nothing');
    for (const [name, gpa2] of Object.entries(h.gpa)) {
      for (const access of ACCESSES) {
        const what = `${name} ${ACCESS_NAME[access]}`;
        if (!shadowDenies(c, gpa2, access)) {
          // The processor does not exit: the shadow may allow only what L1 does.
          assert.is(l1Walk(c, h.eptp, gpa2, access).kind, 'ok', `${what}: the shadow allows it only where L1 does`);
          addTo(seen, 'ok', what);
          continue;
        }
        assert.ok(predict(c, h.eptp, gpa2, access).kind !== 'device', `${what}: no hand-built address is L1's APIC page`);
        if (predict(c, h.eptp, gpa2, access).kind === 'outside') {
          outside.push([name, access]); // stops the guest: a test of its own
          continue;
        }
        const out = yield* l2Access(c, h.eptp, gpa2, access, {
          nmiUnblock: access === W, paging: access === X ? true : undefined, linear: access === R ? 0xffff800000001000n + (gpa2 & 0xfffn) : undefined,
        });
        addTo(seen, out.kind, what);
        if (out.kind !== 'ok') yield* enterL2(c, false);
        assertShadowSound(c, h.eptp, what);
      }
    }
    yield* l2Cpuid(c);
  }, cmdline);
  return { seen, outside, r };
}

function checkHand(seen: Map<string, Set<string>>): void {
  const has = (kind: string, what: string) =>
    assert.ok(seen.get(kind)?.has(what), `${what}: ${kind} expected (got ${[...seen].filter(([, v]) => v.has(what)).map(([k]) => k).join(', ') || 'nothing'})`);
  for (const a of ['read', 'write', 'fetch']) {
    for (const n of ['4K RWX', '1G RWX', '1G RWX low', '4K ignored bits', '4K UC', '4K last page of L1 RAM']) has('ok', `${n} ${a}`);
    for (const n of ['4K not present', '4K not present, junk bits', 'PD not present', 'PDPT not present', 'PML4 not present']) has('violation', `${n} ${a}`);
    for (const n of ['4K W only', '4K WX', '4K memory type 2', '4K memory type 7', '4K bit 45', 'PD entry bit 3', 'PT outside L1 RAM',
      '2M bit 12', '1G bit 13', 'PML4E bit 7']) has('misconfig', `${n} ${a}`);
  }
  has('ok', '4K R read'); has('violation', '4K R write'); has('violation', '4K R fetch');
  has('ok', '4K RW read'); has('ok', '4K RW write'); has('violation', '4K RW fetch');
  has('ok', '4K X fetch'); has('violation', '4K X read'); has('violation', '4K X write');
  has('ok', '4K RX read'); has('ok', '4K RX fetch'); has('violation', '4K RX write');
  has('ok', '2M RW read'); has('ok', '2M RW write'); has('violation', '2M RW fetch'); has('ok', '2M RW, 2nd page write');
  has('violation', '2M X read'); has('ok', '2M X fetch');
  has('ok', 'PT under R read'); has('violation', 'PT under R write'); has('violation', 'PT under R fetch');
  has('ok', 'PT under X fetch'); has('violation', 'PT under X write');
  has('ok', '2M RW under RX read'); has('violation', '2M RW under RX write'); has('violation', '2M RW under RX fetch');
  has('violation', '4K first page beyond L1 RAM fetch');
}

for (const [what, cmdline, unrestricted] of [
  ['shadow VMCS on (default), 64-bit L2', '', false],
  ['shadow-vmcs=off (every VMREAD exits), 64-bit L2', 'shadow-vmcs=off', false],
  ['unrestricted guest: L2 in real-address mode', '', true],
] as [string, string, boolean][]) {
  test(`hand-built tables, ${what}: 4K/2M/1G pages, permission mixes, malformed entries -> fill, reflect 48, reflect 49`, () => {
    const { seen, outside, r } = handRun(cmdline, unrestricted);
    checkHand(seen);
    const n = (k: string) => seen.get(k)?.size ?? 0;
    assert.ok(n('ok') >= 30 && n('violation') >= 30 && n('misconfig') >= 30, `ok ${n('ok')} violation ${n('violation')} misconfig ${n('misconfig')}`);
    assert.equal(outside.map(([nm, a]) => `${nm} ${ACCESS_NAME[a]}`).sort(), [
      '1G outside L1 RAM fetch', '1G outside L1 RAM read', '1G outside L1 RAM write', '2M outside L1 RAM fetch', '2M outside L1 RAM read',
      '2M outside L1 RAM write', '4K first page beyond L1 RAM read', '4K first page beyond L1 RAM write', '4K outside L1 RAM fetch',
      '4K outside L1 RAM read', '4K outside L1 RAM write'].sort());
    // The kernel's own count: one root, every L1 violation/misconfiguration reflected.
    assert.match(r.console, /hv: shadow EPT: 1 roots built/);
    assert.match(r.console, new RegExp(`L2 -> L1 EPT_VIOLATION\\s+${r.c.stats['reflected 48']}\\n`));
    assert.match(r.console, new RegExp(`L2 -> L1 EPT_MISCONFIG\\s+${r.c.stats['reflected 49']}\\n`));
  });
}

test('an L2 access that L1\'s EPT sends outside L1\'s RAM to no device: the guest stops with a message, as L1\'s own access does (not a trap, not an exit to L1)', () => {
  for (const [name, access] of [['4K outside L1 RAM', R], ['4K first page beyond L1 RAM', W], ['2M outside L1 RAM', X], ['1G outside L1 RAM', W]] as [string, number][]) {
    const r = drive(function* (c) {
      let h: Hand = { eptp: 0n, gpa: {} };
      yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { h = buildHand(c); } });
      yield* l2Access(c, h.eptp, h.gpa['4K RWX'], R, { expect: 'ok' });
      yield* l2Access(c, h.eptp, h.gpa[name], access, { expect: 'outside' });
      assert.unreachable('not reached: the kernel stops the guest');
    }, { cmdline: 'expect=ept-violation' });
    const label = `${name} ${ACCESS_NAME[access]}`;
    assert.equal(r.faults, [], `${label}: no machine fault`);
    assert.is(r.trap, null, `${label}: no trap`);
    assert.not.ok(r.finished);
    assert.is(r.status, 0, `${label}: the run ends as cmdline expect=ept-violation says (${r.console.slice(-1500)})`);
    const g2 = r.c.stats.outsideGpa2, g1 = r.c.stats.outsideGpa1;
    assert.ok(g1 >= L1_RAM, `${label}: the case's L1-physical address 0x${g1.toString(16)} is beyond L1's RAM`);
    const verb = access === W ? 'write to' : access === X ? 'instruction fetch from' : 'read of';
    assert.ok(r.console.includes(`hv: nested: L2 ${verb} guest-physical ${hex(g2)} goes through L1's EPT to L1-physical ${hex(g1)}, ` +
      'which is neither L1\'s RAM nor a device: stopped as L1\'s own access would be'), `${label}: the message (${r.console.slice(-1500)})`);
    assert.match(r.console, /ended: ept-violation, .*: as expected/);
    assert.not.match(r.console, /L2 -> L1 EPT_/, `${label}: nothing reflected to L1`);
  }
});

// L2 in the HLT activity state and L1's VMX-preemption timer (not EPT, but
// this file's scripted L1 is the one that runs L2): after a CPUID exit L1
// drops HLT exiting (and external-interrupt exiting) from vmcs12 and
// VMRESUMEs; L2's HLT then completes into the HLT state of vmcs02 (SDM
// 26.1.3, 27.7.2, l2halt.ts). With nothing that could wake it the guest
// stops "halted forever"; with L1's preemption timer active vmcs02's timer
// is the nearer deadline, an exit 52 before L1's timer runs out is L0's,
// the one after is L1's, from HLT, with the value saved as 0 (26.5.1,
// 28.3.4, ptimer.ts). The model's TSC advances 100 ticks per import call.
function* l2WithoutHltExiting(c: Ctx, pin: number, exit: number, timer: bigint | null): Script {
  let h: Hand = { eptp: 0n, gpa: {} };
  yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { h = buildHand(c); } });
  yield* l2Cpuid(c);
  yield* vmwrite(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, B((c.offer.proc0 | V.PROC_ACTIVATE_SECONDARY_CONTROLS) >>> 0));
  yield* vmwrite(c, V.PIN_BASED_VM_EXEC_CONTROL, B(c.offer.pin0 | pin));
  yield* vmwrite(c, V.VM_EXIT_CONTROL, B(c.offer.exit0 | V.EXIT_HOST_ADDRESS_SPACE_SIZE | V.EXIT_SAVE_IA32_EFER |
    V.EXIT_LOAD_IA32_EFER | exit));
  if (timer !== null) yield* vmwrite(c, V.VMX_PREEMPTION_TIMER_VALUE, timer);
  yield* vmwrite(c, V.GUEST_RIP, L2_RIP);
  yield* enterL2(c, false);
}

test('L2 HLT without HLT exiting: the HLT state in vmcs02; nothing can wake it: the guest stops "halted forever"', () => {
  const r = drive(function* (c) {
    yield* l2WithoutHltExiting(c, 0, 0, null);
    c.stopExpected = 'L2 halted with nothing that can wake it';
    yield { reason: V.EXIT_REASON_HLT, len: 1 };
    assert.unreachable('not reached: the kernel stops the guest');
  }, { cmdline: 'expect=halt' });
  assert.equal(r.faults, []);
  assert.is(r.trap, null);
  assert.is(r.status, 0, r.console.slice(-1500));
  assert.match(r.console, /L2 is in the HLT state with nothing that could wake it .*halted forever/);
  assert.match(r.console, /ended: halt, .*: as expected/);
  assert.is(field(r.c, V.GUEST_ACTIVITY_STATE, r.c.vmcs02), B(V.ACTIVITY_STATE_HLT), 'vmcs02: activity state HLT');
  assert.is(field(r.c, V.GUEST_RIP, r.c.vmcs02), L2_RIP + 1n, 'vmcs02: RIP past the HLT');
});

test('L1\'s VMX-preemption timer: vmcs02\'s timer is the nearer deadline, it keeps a halted L2 wakeable, exit 52 is L1\'s only once L1\'s timer ran out', () => {
  const TIMER = 200000n;
  runOk(function* (c) {
    yield* l2WithoutHltExiting(c, V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER, V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE, TIMER);
    const t0 = field(c, V.VMX_PREEMPTION_TIMER_VALUE, c.vmcs02);
    assert.ok(t0 > 0n && t0 <= TIMER, `vmcs02's timer ${t0}: L1's value, less what already ran (not L0's slice 2^24)`);
    yield { reason: V.EXIT_REASON_HLT, len: 1 };
    assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'L2 HLT: no exit to L1, no stop (the timer can wake it)');
    assert.is(field(c, V.GUEST_ACTIVITY_STATE, c.vmcs02), B(V.ACTIVITY_STATE_HLT), 'vmcs02: activity state HLT');
    assert.is(field(c, V.GUEST_RIP, c.vmcs02), L2_RIP + 1n, 'vmcs02: RIP past the HLT');
    // L0's own timer exit (L1's has time left): L2 stays halted, no exit to L1.
    yield { reason: V.EXIT_REASON_PREEMPTION_TIMER };
    assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'exit 52 with L1\'s timer still running: L0\'s, not reflected');
    const t1 = field(c, V.VMX_PREEMPTION_TIMER_VALUE, c.vmcs02);
    assert.ok(t1 > 0n && t1 < t0, `vmcs02's timer counts down: ${t0}, then ${t1}`);
    assert.is(field(c, V.GUEST_ACTIVITY_STATE, c.vmcs02), B(V.ACTIVITY_STATE_HLT), 'still halted');
    c.m.tsc += 2n * TIMER;
    yield { reason: V.EXIT_REASON_PREEMPTION_TIMER };
    assert.ok(inL1(c), 'exit 52 after L1\'s timer ran out: reflected to L1');
    assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_PREEMPTION_TIMER), 'exit reason 52');
    assert.is(yield* l1Read(c, V.GUEST_ACTIVITY_STATE), B(V.ACTIVITY_STATE_HLT), 'vmcs12: activity state HLT (28.3.4)');
    assert.is(yield* l1Read(c, V.GUEST_RIP), L2_RIP + 1n, 'vmcs12: RIP past the HLT');
    assert.is(yield* l1Read(c, V.VMX_PREEMPTION_TIMER_VALUE), 0n, 'vmcs12: timer value saved as 0');
    // Value 0 at the next entry: exit 52 at once (the kernel sets vmcs02's timer to 0).
    yield* enterL2(c, false);
    assert.is(field(c, V.VMX_PREEMPTION_TIMER_VALUE, c.vmcs02), 0n, 'timer value 0 at entry: vmcs02\'s timer 0');
  });
});

// ---- L1's APIC page in L2's EPT (issue 9 item 5) ---------------------------------
// L1 passes its local APIC through to L2: its EPT maps L2-physical 5000H
// (RWX), 6000H (read only) and FEE00000H (RWX) to L1-physical FEE00000H, UC.
// L2 is a 64-bit guest whose own paging structures are at L2-physical
// 30000H-32000H (so L1's EPT maps them too) and whose code is at linear =
// L2-physical 401000H: the kernel reads L2's instruction through L2's paging
// and L1's EPT. L1's own APIC accesses (MOVs at its host RIP, through L0's
// EPT, kernel/vm/exit/misc.ts) are the reference for what L2 must see.
const L2_CODE = 0x401000n; // L2's MOV EAX, [RBX] at +0 (8B 03), MOV [RBX], EAX at +0x10 (89 03)
const L1_CODE = HOST_RIP12; // L1's own MOVs, the same bytes
const APIC_VERSION = 0x30n, APIC_SVR = 0xf0n, APIC_ICR_LO = 0x300n, APIC_TIMER_INIT = 0x380n, APIC_TIMER_CUR = 0x390n;
function buildApicTables(c: Ctx): bigint {
  const [PML4, PDPT, PD, PT0, PT1, PDA, PTA] = [0, 1, 2, 3, 4, 5, 6].map((i) => pool(40 + i));
  for (const p of [PML4, PDPT, PD, PT0, PT1, PDA, PTA]) clearPage(c, p);
  const T = BigInt(TARGET);
  w64(c, PML4, PDPT | 7n);
  w64(c, PDPT, PD | 7n);
  w64(c, PDPT + 3n * 8n, PDA | 7n);
  w64(c, PD, PT0 | 7n);
  w64(c, PD + 2n * 8n, PT1 | 7n);
  for (let i = 0x30n; i <= 0x32n; i++) w64(c, PT0 + i * 8n, (T + i * K4) | WB | 7n); // L2's paging structures
  w64(c, PT0 + 5n * 8n, APIC_PAGE | 7n); // memory type 0: UC
  w64(c, PT0 + 6n * 8n, APIC_PAGE | 1n);
  w64(c, PT1 + 1n * 8n, (T + 0x41000n) | WB | 5n); // L2's code: L2-physical 401000H
  w64(c, PDA + ((APIC_PAGE >> 21n) & 511n) * 8n, PTA | 7n);
  w64(c, PTA, APIC_PAGE | 7n);
  // L2's 4-level paging (L2-physical addresses): 2-MByte page 400000H identity.
  for (const p of [0x30000n, 0x31000n, 0x32000n]) clearPage(c, T + p);
  w64(c, T + 0x30000n, 0x31000n | 3n);
  w64(c, T + 0x31000n, 0x32000n | 3n);
  w64(c, T + 0x32000n + 2n * 8n, 0x400000n | 0x83n);
  for (const [at, bytes] of [[T + 0x41000n, [0x8b, 0x03]], [T + 0x41010n, [0x89, 0x03]], [L1_CODE, [0x8b, 0x03]], [L1_CODE + 0x10n, [0x89, 0x03]]] as [bigint, number[]][]) {
    c.m.phys.write(l1hpa(c, at), new Uint8Array(bytes));
  }
  return eptpOf(PML4);
}
// L1's own APIC access (L1 runs): MOV at its host RIP; returns EAX after it.
function* l1Apic(c: Ctx, off: bigint, write: boolean, value = 0n, rflags = 2n): Generator<Exit, bigint, void> {
  assert.ok(inL1(c), 'L1 runs');
  const rip = L1_CODE + (write ? 0x10n : 0n);
  yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: write ? 2n : 1n, len: 0, regs: { [RBX]: APIC_PAGE + off, [RAX]: write ? value : 0xdeadbeefn },
    fields: { [V.GUEST_PHYSICAL_ADDRESS]: APIC_PAGE + off, [V.GUEST_RIP]: rip, [V.GUEST_RFLAGS]: rflags } };
  assert.ok(inL1(c), `L1's APIC access at ${hex(off)}: L1 goes on`);
  assert.is(field(c, V.GUEST_RIP), rip + 2n, `L1's APIC access at ${hex(off)}: completed`);
  return c.m.guestReg(RAX) & 0xffffffffn;
}
// L2's access to L2-physical gpa2 (which L1's EPT sends to its APIC page):
// the MOV at L2_CODE (+0x10 for the write). True when L2 goes on past it.
function* l2Apic(c: Ctx, gpa2: bigint, write: boolean, value = 0n): Generator<Exit, bigint, void> {
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `L2 access at ${hex(gpa2)}: L2 runs`);
  const rip = L2_CODE + (write ? 0x10n : 0n);
  yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: (write ? 2n : 1n) | (1n << 7n) | (1n << 8n), len: 0,
    regs: { [RBX]: gpa2, [RAX]: write ? value : 0xdeadbeefn },
    fields: { [V.GUEST_PHYSICAL_ADDRESS]: gpa2, [V.GUEST_LINEAR_ADDRESS]: gpa2, [V.GUEST_RIP]: rip } };
  return c.m.guestReg(RAX) & 0xffffffffn;
}
const l2Went = (c: Ctx, write: boolean) => c.m.vmx.currentVmcs === c.vmcs02 && field(c, V.GUEST_RIP) === L2_CODE + (write ? 0x12n : 2n);

test('L1 maps its APIC page into L2\'s EPT: L2\'s reads and writes are L1\'s APIC accesses (instruction read through L2\'s paging and L1\'s EPT); a read-only mapping reflects the write (48)', () => {
  const r = runOk(function* (c) {
    let eptp = 0n;
    yield* bootL1(c, { eptp: eptpOf(pool(40)), build: () => { eptp = buildApicTables(c); } });
    assert.is(predict(c, eptp, 0x5030n, R).kind, 'device', 'the oracle: L2-physical 5030H is L1\'s APIC page');
    // The register values L1 itself reads.
    yield* l2Cpuid(c);
    const version = yield* l1Apic(c, APIC_VERSION, false);
    assert.ok(version !== 0n && version !== 0xdeadbeefn, `L1 reads an APIC version (${hex(version)})`);
    yield* l1Apic(c, APIC_SVR, true, 0x1ffn); // software-enabled, for the IPI below
    yield* enterL2(c, false);
    for (const gpa2 of [0x5030n, APIC_PAGE + APIC_VERSION, 0x6030n]) {
      const v = yield* l2Apic(c, gpa2, false);
      assert.ok(l2Went(c, false), `L2 read at ${hex(gpa2)}: L2 goes on past its MOV, no exit to L1 (${c.m.console.slice(-600)})`);
      assert.is(v, version, `L2 read at ${hex(gpa2)}: L1's APIC version`);
    }
    // L2 writes the timer's initial count: L1's timer.
    yield* l2Apic(c, 0x5000n + APIC_TIMER_INIT, true, 0x7654321n);
    assert.ok(l2Went(c, true), 'L2\'s write of the initial count completes in L2');
    yield* l2Cpuid(c);
    assert.is(yield* l1Apic(c, APIC_TIMER_INIT, false), 0x7654321n, 'L1 reads back the initial count L2 wrote');
    const cur = yield* l1Apic(c, APIC_TIMER_CUR, false);
    assert.ok(cur > 0n && cur <= 0x7654321n, `L1's timer counts down from it (${hex(cur)})`);
    yield* l1Apic(c, APIC_TIMER_INIT, true, 0n);
    yield* enterL2(c, false);
    // A self-IPI through L1's ICR: L1's interrupt; vmcs12 has external-interrupt exiting.
    yield* l2Apic(c, 0x5000n + APIC_ICR_LO, true, (1n << 18n) | 0x40n);
    assert.ok(inL1(c), 'L2\'s self-IPI through L1\'s ICR: an exit to L1');
    // L1 runs with IF = 0 (host state, 28.5.3): the pending interrupt needs L1's interrupt window at this very entry.
    assert.ok(field(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs01) & B(V.PROC_INTERRUPT_WINDOW_EXITING),
      'vmcs01: interrupt-window exiting, for the interrupt pending at L1\'s APIC');
    assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_EXTERNAL_INTERRUPT), 'exit reason 1 (external interrupt)');
    assert.is(yield* l1Read(c, V.GUEST_RIP), L2_CODE + 0x12n, 'L2 had completed its write');
    // Not acknowledged on exit: pending at L1's APIC until L1 sets IF, then in service until L1's EOI.
    yield* l1Apic(c, APIC_VERSION, false, 0n, 0x202n);
    assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), B(V.INTR_INFO_VALID | 0x40), 'L1 (IF = 1) gets vector 40H, its self-IPI');
    yield* l1Apic(c, 0xb0n, true, 0n); // EOI
    yield* enterL2(c, false);
    // L1's EPT permissions first: a write through the read-only mapping is L1's EPT violation.
    const out = yield* l2Access(c, eptp, 0x6000n + APIC_TIMER_INIT, W, { expect: 'violation', linear: 0x6380n });
    assert.is(out.perms, 1, 'bits 5:3 = 001b (read only)');
    yield* enterL2(c, false);
    assert.is(shadowLeaves(c, eptp02(c)).has(0x5000n), false, 'the APIC page is never mapped for L2: every access comes back');
    yield* l2Cpuid(c);
    assert.is(yield* l1Apic(c, APIC_TIMER_INIT, false), 0n, 'nothing written through the read-only mapping');
    // The software APIC (apicv=off): the script's APIC accesses are EPT violations, as without APIC virtualization.
  }, 'apicv=off');
  assert.is(r.c.stats['reflected 48'], 1);
});

test('an EPT pointer whose PML4 is outside L1\'s RAM: VM entry takes the value (27.2.1.1), every L2 access is reflected as 49', () => {
  const r = runOk(function* (c) {
    const eptp = eptpOf(0x7f000000n);
    yield* bootL1(c, { eptp });
    for (const gpa2 of [0n, 0x1234n, M2 + 8n, G1, (1n << 39n) + 0x5000n, (1n << 48n) - K4]) {
      for (const access of ACCESSES) {
        yield* l2Access(c, eptp, gpa2, access, { expect: 'misconfig' });
        yield* enterL2(c, false);
      }
    }
    assert.is(shadowLeaves(c, eptp02(c)).size, 0, 'nothing mapped for L2');
    yield* l2Cpuid(c);
  });
  assert.is(r.c.stats['reflected 49'], 18);
});

// Two table sets; A maps page P to TARGET+0, B (base 8) maps it to TARGET+2M.
test('INVEPT single-context (by EP4TA, any memory type) and all-context drop the shadow roots (29.4.3.1)', () => {
  runOk(function* (c) {
    let a: Hand = { eptp: 0n, gpa: {} }, b: Hand = a;
    yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { a = buildHand(c, 0); b = buildHand(c, 8, TARGET + 2 * Number(M2)); } });
    const P = a.gpa['4K RWX'], Q = a.gpa['4K RX'];
    const leaves = () => shadowLeaves(c, eptp02(c));
    const switchTo = function* (h: Hand) { yield* l2Cpuid(c); yield* vmwrite(c, V.EPT_POINTER, h.eptp); yield* enterL2(c, false); };
    yield* l2Access(c, a.eptp, P, W, { expect: 'ok' });
    const rootA = eptp02(c);
    yield* switchTo(b);
    const rootB = eptp02(c);
    assert.is.not(rootB, rootA, 'another EPTP: another shadow root');
    assert.is(leaves().size, 0, 'B\'s root starts empty');
    yield* l2Access(c, b.eptp, P, R, { expect: 'ok' });
    assert.is(shadowWalk(c, rootB, P).hpa, l0(c, BigInt(TARGET) + 2n * M2 + (P & 0xfffn)), 'B\'s translation of P');
    // INVEPT single-context of B's EP4TA with another memory type (UC): B's root goes, A's stays.
    yield* l2Cpuid(c);
    yield* invept(c, 1, eptpOf(pool(8), 0n));
    yield* vmwrite(c, V.EPT_POINTER, a.eptp);
    yield* enterL2(c, false);
    assert.is(eptp02(c), rootA, 'A\'s root survives INVEPT of B');
    assert.ok(shadowWalk(c, rootA, P).present, 'A\'s mapping of P is still there');
    yield* switchTo(b);
    assert.is(leaves().size, 0, 'after INVEPT single-context of B\'s EP4TA, B\'s next entry has an empty root');
    yield* l2Access(c, b.eptp, P, R, { expect: 'ok' });
    // All-context: every root goes.
    yield* l2Cpuid(c);
    yield* invept(c, 2, 0n);
    yield* enterL2(c, false);
    assert.is(leaves().size, 0, 'after INVEPT all-context: B\'s root empty');
    yield* switchTo(a);
    assert.is(leaves().size, 0, 'after INVEPT all-context: A\'s root empty');
    yield* l2Access(c, a.eptp, P, R, { expect: 'ok' });
    yield* l2Access(c, a.eptp, Q, X, { expect: 'ok' });
    assert.is(leaves().size, 2);
    // L1 moves P to another page and takes W away, then INVEPT single-context: the new translation.
    yield* l2Cpuid(c);
    w64(c, pool(3), (BigInt(TARGET) + 0x40000n) | WB | 1n);
    yield* invept(c, 1, a.eptp);
    yield* enterL2(c, false);
    assert.is(leaves().size, 0, 'after INVEPT single-context of A: an empty root');
    yield* l2Access(c, a.eptp, P, W, { expect: 'violation' });
    yield* enterL2(c, false);
    yield* l2Access(c, a.eptp, P, R, { expect: 'ok' });
    assert.is(shadowWalk(c, eptp02(c), P).hpa, l0(c, BigInt(TARGET) + 0x40000n + (P & 0xfffn)), 'P at its new page, read-only');
    assertShadowSound(c, a.eptp, 'after the move');
    yield* l2Cpuid(c);
  });
});

test('29.4.3.4: permissions raised or an entry made present without INVEPT: the kernel re-walks L1\'s tables, L2 goes on', () => {
  runOk(function* (c) {
    let h: Hand = { eptp: 0n, gpa: {} };
    yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { h = buildHand(c); } });
    const P = h.gpa['4K R'], N = h.gpa['4K not present'];
    yield* l2Access(c, h.eptp, P, R, { expect: 'ok' });
    yield* l2Access(c, h.eptp, N, R, { expect: 'violation' });
    w64(c, pool(3) + 8n, (BigInt(TARGET) + K4) | WB | 7n); // PT[1]: R -> RWX
    w64(c, pool(3) + 40n, (BigInt(TARGET) + 0x9000n) | WB | 3n); // PT[5]: not present -> RW
    yield* enterL2(c, false);
    const rootBefore = eptp02(c);
    yield* l2Access(c, h.eptp, P, W, { expect: 'ok' });
    assert.is(shadowWalk(c, rootBefore, P).perms, 7, 'the raised permissions');
    yield* l2Access(c, h.eptp, N, W, { expect: 'ok' });
    assertShadowSound(c, h.eptp, 'after the raises');
    yield* l2Cpuid(c);
  });
});

// Five table sets, EPTPs E[0..4]; each entry with E[k] touches one more page.
function* cacheWalk(c: Ctx, sets: Hand[], order: number[], model: { k: number; root: bigint; pages: bigint[] }[], counts: { built: number; reused: number }, first: boolean): Script {
  let launch = first;
  let step = 0;
  for (const k of order) {
    const label = `entry ${step++} with EPTP ${k}`;
    if (!launch) {
      yield* l2Cpuid(c);
      yield* vmwrite(c, V.EPT_POINTER, sets[k].eptp);
    }
    yield* enterL2(c, launch);
    launch = false;
    const root = eptp02(c);
    const i = model.findIndex((e) => e.k === k);
    if (i >= 0) {
      // Cached: the same root, its mappings still there.
      const e = model.splice(i, 1)[0];
      assert.is(root, e.root, `${label}: the cached root`);
      for (const p of e.pages) assert.ok(shadowWalk(c, root, p).present, `${label}: page 0x${p.toString(16)} still mapped`);
      model.push(e);
      counts.reused++;
    } else {
      assert.is(shadowLeaves(c, root).size, 0, `${label}: a new, empty root`);
      if (model.length === 4) model.shift(); // the least recently used goes
      model.push({ k, root, pages: [] });
      counts.built++;
    }
    const roots = new Set(model.map((e) => e.root));
    assert.is(roots.size, model.length, `${label}: the cached roots are distinct`);
    const e = model[model.length - 1];
    const names = ['4K RWX', '4K R', '4K RW', '4K RX', '4K ignored bits', '4K UC', '1G RWX low', '2M RW'];
    const name = names.find((n) => !e.pages.includes(sets[k].gpa[n]));
    if (name) {
      yield* l2Access(c, sets[k].eptp, sets[k].gpa[name], R, { expect: 'ok' });
      e.pages.push(sets[k].gpa[name]);
    }
    assertShadowSound(c, sets[k].eptp, label);
  }
}

for (const [n, order] of [
  [2, [0, 1, 0, 1, 1, 0]],
  [4, [0, 1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0]],
  [5, [0, 1, 2, 3, 4, 0, 2, 1, 4, 3, 3, 0, 4]],
] as [number, number[]][]) {
  test(`root cache: entries with ${n} distinct L1 EPTPs reuse a recent root, beyond 4 the least recently used goes`, () => {
    const counts = { built: 0, reused: 0 };
    const r = runOk(function* (c) {
      const sets: Hand[] = [];
      yield* bootL1(c, {
        eptp: eptpOf(pool(0)),
        build: () => { for (let k = 0; k < n; k++) sets.push(buildHand(c, 8 * k, TARGET + k * Number(M2))); },
      });
      // bootL1 launched with sets[0]; the walk starts from there.
      const model: { k: number; root: bigint; pages: bigint[] }[] = [{ k: 0, root: eptp02(c), pages: [] }];
      counts.built++;
      yield* cacheWalk(c, sets, order.slice(1), model, counts, false);
      yield* l2Cpuid(c);
    });
    assert.is(new Set(order).size, n);
    assert.match(r.console, new RegExp(`hv: shadow EPT: ${counts.built} roots built, ${counts.reused} reused, `));
    if (n === 5) assert.ok(counts.built >= 7, `evictions happened (${counts.built} roots built)`);
    else assert.is(counts.built, n, 'each EPTP built once');
  });
}

// ---- VMFUNC (27.5.6.3) ---------------------------------------------------------------
// L2's VMFUNC with vmcs02's "enable VM functions" 1 and no function enabled
// exits to L0 (reason 59) whatever EAX < 64 is; the kernel does what L2's
// processor would do with vmcs12's VM-function controls and EPTP list.
function* l2Vmfunc(c: Ctx, eax: bigint, rcx: bigint): Generator<Exit, bigint, void> {
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'VMFUNC: L2 runs');
  const rip = field(c, V.GUEST_RIP);
  yield { reason: V.EXIT_REASON_VMFUNC, len: 3, regs: { [RAX]: eax, [RCX]: rcx } };
  return rip;
}
// An EPTP switch done by the kernel: L2 goes on past VMFUNC on the root for `to`.
function* switched(c: Ctx, index: bigint | number, to: Hand, rcxHigh = 0n): Generator<Exit, bigint, void> {
  const label = `VMFUNC EPTP switch to entry ${index}`;
  const rip = yield* l2Vmfunc(c, 0n, BigInt(index) | rcxHigh);
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${label}: no exit to L1`);
  assert.is(field(c, V.GUEST_RIP), rip + 3n, `${label}: RIP past VMFUNC (the instruction length)`);
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `${label}: no event`);
  return eptp02(c);
}
// A VMFUNC that is L1's: exit 59 with the processor's information, L2 not past it.
function* vmfuncToL1(c: Ctx, eax: bigint, rcx: bigint, eptp12: bigint, what: string): Script {
  const rip = yield* l2Vmfunc(c, eax, rcx);
  assert.ok(inL1(c), `${what}: exit to L1`);
  assert.is(field(c, V.GUEST_RIP), HOST_RIP12, `${what}: L1 at its host RIP`);
  assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_VMFUNC), `${what}: exit reason 59`);
  assert.is(yield* l1Read(c, V.GUEST_RIP), rip, `${what}: vmcs12 guest RIP at VMFUNC`);
  assert.is(yield* l1Read(c, V.VM_EXIT_INSTRUCTION_LENGTH), 3n, `${what}: instruction length`);
  assert.is(yield* l1Read(c, V.EPT_POINTER), eptp12, `${what}: vmcs12's EPT pointer unchanged`);
  bump(c, 'reflected 59');
}

// ---- EPT accessed and dirty flags (29.3.5) and page-modification logging (29.3.6) ----
// The oracle, from the SDM: with EPTP bit 6 every access sets the accessed
// flag (bit 8) of each EPT entry its translation uses, a write (and, with
// the flags enabled, an access to a guest paging structure: 29.3.3.2, which
// the processor reports as a write) the dirty flag (bit 9) of the entry that
// maps the page; with "enable PML", a dirty flag set from 0 to 1 writes the
// page's address at PML address + 8 * index and decrements the index; an
// access that needs a flag set while the index is outside 0-511 is a
// page-modification log-full event instead (exit 62, qualification bit 12
// only, nothing set, nothing written). What may be cached: the processor
// need not set a flag again until INVEPT (29.4.3.4), so every access here
// is one the shadow tables do not allow yet (the processor would exit).
const EA = 1n << 8n, ED = 1n << 9n;
const PML_PAGE = 0x32000;

test('EPT accessed/dirty flags and PML for L2 (29.3.5, 29.3.6): flags as the SDM sets them, clean pages mapped without W, the log, exit 62', () => {
  runOk(function* (c) {
    const [PML4, PDPT, PD, PT] = [40, 41, 42, 43].map((i) => pool(i));
    const T = BigInt(TARGET);
    const build = () => {
      for (const p of [PML4, PDPT, PD, PT, BigInt(PML_PAGE)]) clearPage(c, p);
      w64(c, PML4, PDPT | 7n);
      w64(c, PDPT, PD | 7n);
      w64(c, PD, PT | 7n);
      w64(c, PD + 8n, (T + M2) | LARGE | WB | 3n); // a 2-MByte page, RW
      for (let i = 0n; i < 8n; i++) w64(c, PT + i * 8n, (T + i * K4) | WB | 7n);
      w64(c, PT + 6n * 8n, (T + 6n * K4) | WB | 1n); // page 6 read-only
    };
    const eptp = eptpOf(PML4) | 0x40n;
    yield* bootL1(c, { eptp, pml: BigInt(PML_PAGE), build });
    assert.is(c.offer.ept & (1n << 21n), 1n << 21n, 'IA32_VMX_EPT_VPID_CAP bit 21: accessed and dirty flags offered');
    assert.is(field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & B(V.PROC2_ENABLE_PML), 0n, 'vmcs02: no PML of the processor (L0 emulates it)');
    // L2-physical: pages 0-7 through PT (L1-physical TARGET + i * 4K), the
    // 2-MByte page at 2 MiB (TARGET + 2M).
    const page = (i: number) => BigInt(i) * K4;
    const BIG = M2;

    const accessed = new Set<bigint>(), dirty = new Set<bigint>();
    const logAt = new Map<bigint, bigint>();
    let index = 511n;
    // The entries a translation of gpa2 uses, root first (29.3.2).
    const used = (gpa2: bigint): bigint[] => {
      const out: bigint[] = [];
      let table = eptp & ADDR;
      for (let level = 4; level >= 1; level--) {
        const a = table + ((gpa2 >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
        out.push(a);
        const e = r64(c, a);
        if (level === 1 || (e & LARGE) !== 0n) break;
        table = e & ADDR;
      }
      return out;
    };
    const checkFlags = (what: string) => {
      for (const t of [PML4, PDPT, PD, PT]) {
        for (let i = 0n; i < 512n; i++) {
          const a = t + i * 8n;
          const e = r64(c, a);
          if ((e & 7n) === 0n) continue;
          assert.is((e & EA) !== 0n, accessed.has(a), `${what}: accessed flag of the entry at L1-physical 0x${a.toString(16)}`);
          assert.is((e & ED) !== 0n, dirty.has(a), `${what}: dirty flag of the entry at L1-physical 0x${a.toString(16)}`);
        }
      }
      for (let k = 0n; k < 512n; k++) {
        assert.is(r64(c, BigInt(PML_PAGE) + k * 8n), logAt.get(k) ?? 0n, `${what}: PML entry ${k}`);
      }
    };
    // L2 accesses gpa2; L1's tables allow it. 'full' when it was a log-full exit to L1.
    const access = function* (gpa2: bigint, acc: number, o: { paging?: boolean; nmiUnblock?: boolean } = {}): Generator<Exit, 'done' | 'full', void> {
      const label = `L2 ${o.paging ? 'paging-structure ' : ''}${ACCESS_NAME[acc]} at 0x${gpa2.toString(16)}`;
      const sh = shadowWalk(c, eptp02(c), gpa2);
      assert.ok((acc & ~sh.perms) !== 0, `test bug: ${label}: vmcs02's EPT allows it`);
      const w = l1Walk(c, eptp, gpa2, acc);
      assert.is(w.kind, 'ok', `test bug: ${label}: L1's EPT must allow it`);
      const ents = used(gpa2);
      const leaf = ents[ents.length - 1];
      const write = (acc & W) !== 0;
      const needs = ents.some((a) => !accessed.has(a)) || (write && !dirty.has(leaf));
      const full = needs && index > 511n;
      let q = BigInt(acc) | (BigInt(sh.perms) << 3n) | (1n << 7n) | (o.paging ? 0n : 1n << 8n);
      if (o.nmiUnblock) q |= 1n << 12n;
      const rip = field(c, V.GUEST_RIP);
      yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: q, len: 0,
        fields: { [V.GUEST_PHYSICAL_ADDRESS]: gpa2, [V.GUEST_LINEAR_ADDRESS]: 0x7f0000000000n + (gpa2 & 0xfffffn) } };
      if (full) {
        assert.ok(inL1(c), `${label}: page-modification log-full event, exit to L1`);
        assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_PML_FULL), `${label}: exit reason 62`);
        assert.is(yield* l1Read(c, V.EXIT_QUALIFICATION), q & (1n << 12n), `${label}: qualification: NMI unblocking (bit 12) only`);
        assert.is(yield* l1Read(c, V.GUEST_RIP), rip, `${label}: vmcs12 guest RIP = the access's instruction`);
        assert.is(yield* l1Read(c, V.PML_INDEX), index, `${label}: PML index unchanged`);
        checkFlags(`${label} (log full)`);
        bump(c, 'PML full');
        return 'full';
      }
      assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${label}: L2 goes on, no exit to L1`);
      assert.is(field(c, V.GUEST_RIP), rip, `${label}: L2 retries the access`);
      for (const a of ents) accessed.add(a);
      if (write && !dirty.has(leaf)) {
        dirty.add(leaf);
        logAt.set(index, gpa2 & ~0xfffn);
        index = (index - 1n) & 0xffffn;
      }
      const now = shadowWalk(c, eptp02(c), gpa2);
      assert.is(now.perms, dirty.has(leaf) ? w.perms : w.perms & ~W,
        `${label}: shadow permissions = L1's, without write while L1's leaf is clean`);
      checkFlags(label);
      return 'done';
    };
    const toL1 = function* (f: () => Script) { yield* l2Cpuid(c); yield* f(); yield* enterL2(c, false); };

    checkFlags('before L2 runs');
    yield* access(page(0), R);
    yield* access(page(0), W);
    yield* access(page(1), W);
    yield* access(BIG + 0x3000n, R);
    yield* access(BIG + 0x5000n, W);
    yield* access(BIG + 0x3000n, W); // the 2-MByte leaf is dirty already: W granted, nothing logged
    yield* access(page(2), W, { paging: true }); // L2's page walk (a write with the flags enabled)
    // A violation of L1's tables: no flag set (the access does not happen).
    yield* l2Access(c, eptp, page(6), W, { expect: 'violation' });
    checkFlags('after L1\'s EPT violation');
    yield* enterL2(c, false);
    // Index 0: one more entry, then the log is full.
    yield* toL1(function* () {
      assert.is(yield* l1Read(c, V.PML_INDEX), index, 'PML index as L1 reads it');
      yield* vmwrite(c, V.PML_INDEX, 0n);
    });
    index = 0n;
    yield* access(page(3), W);
    assert.is(index, 0xffffn);
    assert.is(yield* access(page(4), W, { nmiUnblock: true }), 'full');
    yield* vmwrite(c, V.PML_INDEX, 511n);
    index = 511n;
    yield* enterL2(c, false);
    assert.is(yield* access(page(4), W), 'done');
    // Full again: an access that needs only an accessed flag is a log-full
    // event too; one that needs no flag is not.
    yield* toL1(function* () { yield* vmwrite(c, V.PML_INDEX, 0xffffn); yield* invept(c, 1, eptp); });
    index = 0xffffn;
    assert.is(yield* access(page(5), R), 'full');
    yield* enterL2(c, false);
    assert.is(yield* access(page(0), R), 'done');
    // L1 clears every flag and executes INVEPT: they are set again as L2 goes on.
    yield* toL1(function* () {
      for (const t of [PML4, PDPT, PD, PT]) for (let i = 0n; i < 512n; i++) w64(c, t + i * 8n, r64(c, t + i * 8n) & ~(EA | ED));
      accessed.clear();
      dirty.clear();
      yield* vmwrite(c, V.PML_INDEX, 511n);
      yield* invept(c, 1, eptp);
    });
    index = 511n;
    assert.is(shadowLeaves(c, eptp02(c)).size, 0, 'after INVEPT: an empty root');
    yield* access(page(0), R);
    yield* access(page(0), W);
    yield* l2Cpuid(c);
  });
});

test('VMFUNC EPTP switching: valid entries switch to the cached root; bad index, invalid entry, other functions exit to L1', () => {
  let switches = 0;
  const r = runOk(function* (c) {
    const sets: Hand[] = [];
    const list = (i: number, v: bigint) => w64(c, EPTP_LIST + i * 8, v);
    yield* bootL1(c, {
      eptp: eptpOf(pool(0)), vmfunc: true,
      build: () => {
        for (let k = 0; k < 3; k++) sets.push(buildHand(c, 8 * k, TARGET + k * Number(M2)));
        clearPage(c, EPTP_LIST);
        list(0, sets[0].eptp);
        list(1, sets[1].eptp);
        list(2, (sets[2].eptp & ~7n) | 1n); // memory type 1: invalid (27.2.1.1)
        list(3, (sets[2].eptp & ~0x38n) | (2n << 3n)); // walk length 3: invalid
        list(4, sets[2].eptp | (1n << 7n)); // reserved bit 7: invalid
        list(5, sets[2].eptp | (1n << 40n)); // beyond MAXPHYADDR: invalid
        list(511, eptpOf(pool(16), 0n)); // set 2, UC
      },
    });
    assert.is(field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & B(V.PROC2_ENABLE_VM_FUNCTIONS), B(V.PROC2_ENABLE_VM_FUNCTIONS),
      'vmcs02: "enable VM functions", so that L2\'s VMFUNC is not #UD');
    assert.is(field(c, V.VM_FUNCTION_CONTROL), 0n, 'vmcs02: no VM function enabled: every VMFUNC exits (27.5.6)');
    const [A, Bs, Cs] = sets;
    const P = A.gpa['4K RWX'];
    yield* l2Access(c, A.eptp, P, R, { expect: 'ok' });
    const rootA = eptp02(c);
    // Entry 1 (B): not cached: a new root; B's tables from now on.
    const rootB = yield* switched(c, 1, Bs);
    switches++;
    assert.is.not(rootB, rootA, 'B gets its own root');
    assert.is(shadowLeaves(c, rootB).size, 0, 'B\'s new root is empty');
    yield* l2Access(c, Bs.eptp, P, W, { expect: 'ok' });
    assert.is(shadowWalk(c, rootB, P).hpa, l0(c, BigInt(TARGET) + M2 + (P & 0xfffn)), 'B\'s page for P');
    // Entry 0 (A): the cached root, A's mapping still there.
    assert.is(yield* switched(c, 0, A), rootA, 'back to A: A\'s cached root');
    switches++;
    assert.ok(shadowWalk(c, rootA, P).present, 'A\'s mapping of P kept');
    // ECX, not RCX: bits 63:32 of RCX are not the index.
    assert.is(yield* switched(c, 1, Bs, 1n << 32n), rootB, 'ECX = 1 with RCX bits 63:32 set: B\'s cached root');
    switches++;
    assert.ok(shadowWalk(c, rootB, P).present, 'B\'s mapping of P kept');
    // L1's view after an exit: vmcs12's EPT pointer is the entry, RIP moved on.
    const rip = field(c, V.GUEST_RIP);
    yield* l2Cpuid(c);
    assert.is(yield* l1Read(c, V.EPT_POINTER), Bs.eptp, 'L1 reads the EPT pointer VMFUNC switched to');
    assert.is(yield* l1Read(c, V.GUEST_RIP), rip, 'L1 reads L2\'s RIP past the VMFUNCs');
    yield* enterL2(c, false);
    assert.is(eptp02(c), rootB, 'VMRESUME with vmcs12 on B: B\'s root');
    // L1's VMFUNCs: invalid entries, ECX >= 512, functions other than 0.
    for (const i of [2, 3, 4, 5, 6]) {
      yield* vmfuncToL1(c, 0n, BigInt(i), Bs.eptp, `VMFUNC index ${i} (invalid EPTP-list entry)`);
      yield* enterL2(c, false);
    }
    for (const i of [512n, 513n, 0xffffffffn]) {
      yield* vmfuncToL1(c, 0n, i, Bs.eptp, `VMFUNC index ${i} (ECX >= 512)`);
      yield* enterL2(c, false);
    }
    for (const f of [1n, 2n, 63n]) {
      yield* vmfuncToL1(c, f, 0n, Bs.eptp, `VMFUNC function ${f} (not enabled in vmcs12)`);
      yield* enterL2(c, false);
    }
    assert.is(eptp02(c), rootB, 'still B\'s root after the exits');
    // The last entry (511): set 2's tables with UC: a root of its own.
    const rootC = yield* switched(c, 511, Cs);
    switches++;
    assert.ok(![rootA, rootB].includes(rootC), 'entry 511: another root');
    yield* l2Access(c, eptpOf(pool(16), 0n), P, X, { expect: 'ok' });
    assert.is(shadowWalk(c, rootC, P).hpa, l0(c, BigInt(TARGET) + 2n * M2 + (P & 0xfffn)), 'set 2\'s page for P');
    assertShadowSound(c, eptpOf(pool(16), 0n), 'after the switch to entry 511');
    // EPTP switching with L1 not allowing it: VM-function controls 0 -> every VMFUNC leaf 0 is L1's.
    yield* l2Cpuid(c);
    yield* vmwrite(c, V.VM_FUNCTION_CONTROL, 0n);
    yield* enterL2(c, false);
    yield* vmfuncToL1(c, 0n, 0n, eptpOf(pool(16), 0n), 'VMFUNC 0 with EPTP switching off in vmcs12');
  });
  assert.match(r.console, /L2 -> L1 VMFUNC\s+12\n/);
  assert.is(r.c.stats['reflected 59'], 12);
  assert.is(switches, 4);
});

// ---- out of table pages: the shadow tables start again (eptfault.ts) -------------------
// When a fill finds no free page for a table, the kernel drops every shadow
// root (cached translations may always be dropped), makes a fresh root for
// L1's current EPTP, writes it to vmcs02's EPT pointer and fills again; only
// when even that fails does it stop the guest ("hv: nested: out of memory
// for shadow EPT tables"). The test makes the allocator's free pages scarce
// through kernel.wasm's test hooks (pages_alloc / pages_free): it takes
// every free page and hands back exactly as many as it wants the shadow
// tables to have. L1 maps all of L2-physical space onto L1-physical
// [0, 1 GiB) with 1-GByte pages (every PML4 entry -> one PDPT of 512
// 1-GByte leaves), so that L2 touching pages 512 GiB / 1 GiB / 2 MiB apart
// costs the shadow tables 3 / 2 / 1 new table pages (a PDPT, a PD, a PT).

// L1's tables: PML4 at pool(0), PDPT at pool(1); PDPT entry j has
// permissions HUGE_PERMS[j % 4] (all with read).
const HUGE_PERMS = [7n, 5n, 3n, 1n];
function buildHuge(c: Ctx): bigint {
  const [PML4, PDPT] = [pool(0), pool(1)];
  clearPage(c, PML4);
  clearPage(c, PDPT);
  for (let i = 0n; i < 512n; i++) w64(c, PML4 + i * 8n, PDPT | 7n);
  for (let j = 0n; j < 512n; j++) w64(c, PDPT + j * 8n, 0n | LARGE | WB | HUGE_PERMS[Number(j % 4n)]);
  return eptpOf(PML4);
}

// Pages taken from the hypervisor's allocator (one address per page).
function eatAll(c: Ctx, held: bigint[]): void {
  for (let n = 1024; n >= 1; n >>= 1) {
    for (;;) {
      const a = BigInt(c.kernel.pages_alloc(n, 0n));
      if (a === 0n) break;
      for (let i = 0n; i < BigInt(n); i++) held.push(a + i * K4);
    }
  }
  held.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
// Hand back k pages of `held`, the lowest (or highest) addresses.
function giveBack(c: Ctx, held: bigint[], k: number, from: 'low' | 'high'): void {
  const out = from === 'low' ? held.splice(0, k) : held.splice(held.length - k, k);
  assert.is(out.length, k, `test bug: only ${out.length} pages to give back`);
  for (const p of out) c.kernel.pages_free(p, 1);
}

// Table pages a fill of gpa2 needs in the tree at eptp: the missing PDPT, PD, PT.
function tablesNeeded(c: Ctx, eptp: bigint, gpa2: bigint): number {
  let table = eptp & ADDR;
  for (let level = 4; level >= 2; level--) {
    const e = c.m.phys.read64(Number(table + ((gpa2 >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n));
    if ((e & 7n) === 0n) return level - 1;
    table = e & ADDR;
  }
  return 0;
}

// L2's access at gpa2, which L1's EPT allows and vmcs02's EPT does not: the
// kernel fills the page and L2 goes on; with `restart`, on a fresh root
// holding this one page. Returns vmcs02's EPT pointer afterwards.
function* l2Fill(c: Ctx, eptp12: bigint, gpa2: bigint, access: number, restart: boolean): Generator<Exit, bigint, void> {
  const label = `L2 ${ACCESS_NAME[access]} at 0x${gpa2.toString(16)}${restart ? ' (table pages exhausted: restart expected)' : ''}`;
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${label}: L2 runs`);
  const root = eptp02(c);
  const sh = shadowWalk(c, root, gpa2);
  assert.ok((access & ~sh.perms) !== 0, `test bug: ${label}: vmcs02's EPT already allows it`);
  const w = l1Walk(c, eptp12, gpa2, access);
  assert.is(w.kind, 'ok', `test bug: ${label}: L1's EPT must allow it`);
  const rip = field(c, V.GUEST_RIP);
  yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: BigInt(access) | (BigInt(sh.perms) << 3n), len: 0,
    fields: { [V.GUEST_PHYSICAL_ADDRESS]: gpa2, [V.GUEST_LINEAR_ADDRESS]: 0n } };
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${label}: L2 resumed, no exit to L1 (console: ${c.m.console.slice(-400)})`);
  assert.is(field(c, V.GUEST_RIP), rip, `${label}: L2 retries the access`);
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `${label}: nothing injected`);
  const now = eptp02(c);
  assert.is(now & 0xfffn, 0x1en, `${label}: vmcs02's EPT pointer: WB, 4-level walk`);
  if (restart) {
    const leaves = shadowLeaves(c, now);
    assert.equal([...leaves.keys()], [gpa2 & ~0xfffn], `${label}: vmcs02's EPT pointer names a fresh root holding only the faulting page`);
    bump(c, 'restarts');
  } else {
    assert.is(now, root, `${label}: same shadow root (enough table pages: no restart)`);
  }
  const s = shadowWalk(c, now, gpa2);
  assert.ok(s.present, `${label}: vmcs02's EPT maps the page now`);
  assert.is(s.size, K4, `${label}: a 4-KiB page`);
  assert.is(s.perms, w.perms, `${label}: L1's permissions`);
  assert.is(s.hpa, l0(c, w.gpa1!), `${label}: host page of L1-physical 0x${w.gpa1!.toString(16)}`);
  bump(c, 'filled');
  return now;
}

const REPORT_RE = /hv: shadow EPT: (\d+) roots built, (\d+) reused, (\d+) pages filled(?:, (\d+) restarts for want of table pages)?\n/;

// spare: free pages left to the shadow tables besides the root made at
// VMLAUNCH (which is not among them: it lies above every page handed back,
// so the first restart's root is another page).
for (const spare of [3, 24]) {
  test(`shadow EPT out of table pages (${spare} spare pages): every root dropped, a fresh root in vmcs02, L2 goes on`, () => {
    const rnd = prng(0x5eed0000n + BigInt(spare));
    let restarts = 0, filled = 0;
    const r = runOk(function* (c) {
      const held: bigint[] = [];
      let eptp = 0n;
      yield* bootL1(c, {
        eptp: eptpOf(pool(0)),
        build: () => {
          eptp = buildHuge(c);
          eatAll(c, held);
          giveBack(c, held, 64, 'high'); // for VMXON .. VMLAUNCH (vmcs02, the first root, ...)
        },
      });
      const root0 = eptp02(c);
      eatAll(c, held); // what VMLAUNCH left
      giveBack(c, held, spare, 'low');
      // Model: the shadow tables have `total` pages (root included) between them and the free list.
      const total = spare + 1;
      let free = spare;
      let last = 0n;
      let first = true;
      for (let n = 0; n < 120; n++) {
        // A new 512-GiB slot (3 tables), a new GiB in the last slot (2), a new
        // 2 MiB (1), a new 4-KiB page in the last 2 MiB (0).
        const kind = n === 0 ? 0 : rnd.int(4);
        const hi = last & ~((1n << BigInt(kind === 1 ? 39 : kind === 2 ? 30 : 21)) - 1n);
        let gpa2: bigint;
        if (kind === 0) gpa2 = (BigInt(rnd.int(512)) << 39n) | (BigInt(rnd.int(512)) << 30n);
        else if (kind === 1) gpa2 = hi | (BigInt(rnd.int(512)) << 30n);
        else gpa2 = hi;
        if (kind <= 2) gpa2 |= BigInt(TARGET) + (BigInt(rnd.int(8)) << 21n); // L1-physical: 2 MiB in [16, 32) MiB
        gpa2 |= (BigInt(rnd.int(512)) << 12n) | BigInt(rnd.int(4096) & ~7);
        const perms = Number(HUGE_PERMS[Number((gpa2 >> 30n) & 3n)]);
        if ((shadowWalk(c, eptp02(c), gpa2).perms & R) !== 0) continue; // mapped already: no exit
        last = gpa2;
        const access = rnd.pick(ACCESSES.filter((a) => (perms & a) !== 0));
        const need = tablesNeeded(c, eptp02(c), gpa2);
        const restart = need > free;
        const before = eptp02(c);
        const now = yield* l2Fill(c, eptp, gpa2, access, restart);
        filled++;
        if (restart) {
          restarts++;
          free = total - 1 - 3; // the fresh root and its PDPT, PD, PT
          if (first) assert.is.not(now, before, 'the first restart: vmcs02\'s EPT pointer changes to the fresh root');
          first = false;
          assert.is.not(now & ADDR, root0 & ADDR, 'not the root made at VMLAUNCH (its page is above the pages handed back)');
          assertShadowSound(c, eptp, `after restart ${restarts}`);
        } else free -= need;
      }
      assertShadowSound(c, eptp, 'at the end');
      const root = eptp02(c);
      // L1 gets an exit and resumes L2: the cached root, mappings kept.
      yield* l2Cpuid(c);
      yield* enterL2(c, false);
      assert.is(eptp02(c), root, 'VMRESUME: the root of the last restart, cached');
      assert.ok(shadowLeaves(c, root).size >= 1, 'its mappings kept');
    });
    assert.ok(restarts >= (spare === 3 ? 10 : 3), `restarts happened: ${restarts}`);
    const m = REPORT_RE.exec(r.console);
    assert.ok(m, `the report line (${r.console.slice(-1500)})`);
    assert.is(Number(m![4] ?? 0), restarts, `report: ${restarts} restarts for want of table pages`);
    assert.is(Number(m![1]), 1 + restarts, 'report: a root at VMLAUNCH and one per restart');
    assert.is(Number(m![3]), filled + restarts, 'report: fills counted (each restart fills twice)');
    if (process.env.HV_EPT_VERBOSE) console.log(m![0].trim(), JSON.stringify(r.c.stats));
  });
}

// Not even an empty root fits one mapping (it needs 4 pages: root, PDPT, PD,
// PT): the guest stops with the message, no trap, no exit to L1.
for (const spare of [0, 2]) {
  test(`shadow EPT out of table pages (${spare} spare pages): even a fresh root cannot hold the mapping: the guest stops`, () => {
    const r = drive(function* (c) {
      const held: bigint[] = [];
      let eptp = 0n;
      yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { eptp = buildHuge(c); } });
      eatAll(c, held);
      giveBack(c, held, spare, 'low');
      const gpa2 = (5n << 39n) | (7n << 30n) | BigInt(TARGET) | 0x3000n;
      assert.is(l1Walk(c, eptp, gpa2, R).kind, 'ok', 'test bug: L1 maps it');
      c.stopExpected = 'out of memory for shadow EPT tables';
      yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: BigInt(R), len: 0,
        fields: { [V.GUEST_PHYSICAL_ADDRESS]: gpa2, [V.GUEST_LINEAR_ADDRESS]: 0n } };
      assert.unreachable('the kernel resumed a guest it should have stopped');
    });
    assert.equal(r.faults, [], r.console.slice(-2000));
    assert.is(r.trap, null, `no trap (${r.console.slice(-2000)})`);
    assert.not.ok(r.finished, 'the guest stopped');
    assert.match(r.console, /hv: nested: out of memory for shadow EPT tables\n/);
    assert.match(r.console, /ended: stopped/);
    const m = REPORT_RE.exec(r.console);
    assert.ok(m, `the report line (${r.console.slice(-1500)})`);
    assert.is(Number(m![4] ?? 0), 1, 'report: one restart (tried before stopping)');
  });
}

// ---- the tables go back with the vCPU -------------------------------------------------
// The shadow tables are the vCPU's (Nested.shadowEpt): when the guest ends,
// destroying its vCPU gives every table page back to the allocator
// (Nested.release). Two runs on the same machine differ only in how many
// tables L2's accesses made (1 fill: 3 table pages; 40 fills in distinct
// 512-GiB slots: 120): afterwards the allocator has the same free pages.
function freePages(c: Ctx): bigint {
  let n = 0n;
  const k = c.kernel;
  for (let i = 0; i < k.pages_count(); i++) n += (BigInt(k.pages_rangeEnd(i)) - BigInt(k.pages_rangeStart(i))) >> 12n;
  return n;
}
test('the shadow EPT tables go back to the allocator when the guest\'s vCPU is destroyed', () => {
  const after = (fills: number): { free: bigint; filled: number } => {
    const r = runOk(function* (c) {
      let eptp = 0n;
      yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { eptp = buildHuge(c); } });
      for (let i = 0; i < fills; i++) {
        const gpa2 = (BigInt(i + 1) << 39n) | BigInt(TARGET) | (BigInt(i) << 12n);
        assert.is(tablesNeeded(c, eptp02(c), gpa2), 3, 'test bug: a new 512-GiB slot needs a PDPT, a PD and a PT');
        yield* l2Fill(c, eptp, gpa2, R, false);
      }
    });
    const m = REPORT_RE.exec(r.console);
    assert.ok(m, `the report line (${r.console.slice(-1500)})`);
    return { free: freePages(r.c), filled: Number(m![3]) };
  };
  const one = after(1), many = after(40);
  assert.is(one.filled, 1, 'report: 1 page filled');
  assert.is(many.filled, 40, 'report: 40 pages filled');
  assert.is(many.free, one.free, `free pages after the run: ${many.free} after 40 fills, ${one.free} after 1 (120 - 3 table pages not given back?)`);
});

// ---- random table sets ------------------------------------------------------------------
// (prng.ts: a fixed seed gives the same tables every run.)

const FUZZ_POOL = Array.from({ length: 8 }, (_, i) => pool(64 + i)); // L1-physical pages of the random tables
// Entries for any level: mostly pointers to the pool (tables, or 4-KiB pages
// when used as a leaf), 2-MByte-aligned pages in RAM, L1-physical 0 (1 GiB
// aligned), targets outside L1's RAM; permissions, memory types, page-size
// bits, reserved bits and whole random values mixed in.
function randomEntry(rnd: Rng): bigint {
  const target = rnd.int(100) < 60 ? rnd.pick(FUZZ_POOL)
    : rnd.int(40) < 25 ? BigInt(TARGET) + BigInt(rnd.int(8)) * M2
    : rnd.int(15) < 3 ? 0n
    : rnd.pick([BigInt(L1_RAM), BigInt(L1_RAM) - K4, G1, 0x7fe00000n, rnd.next() & ADDR & ((1n << 39n) - 1n)]);
  let e = target | BigInt(rnd.int(4) === 0 ? rnd.int(8) : rnd.pick([7, 7, 7, 5, 3, 1, 4]));
  switch (rnd.int(24)) {
    case 0: e |= LARGE | (BigInt(rnd.int(8)) << 3n); break; // a large page, any memory type
    case 1: e |= BigInt(rnd.int(8)) << 3n; break; // memory type / reserved bits 5:3
    case 2: case 3: e ^= 1n << BigInt(rnd.int(64)); break; // one bit anywhere
    case 4: e = rnd.next(); break;
    case 5: case 6: case 7: e |= LARGE | WB; break; // 1G / 2M page (reserved in a PML4E)
    case 8: case 9: e |= WB; break; // a leaf's type (reserved bits in a non-leaf)
    default: break; // UC at a leaf, a clean non-leaf entry
  }
  return e;
}
// Structured tables: pool page 0 a PML4, 1-2 PDPTs, 3-5 PDs, 6-7 PTs; each
// entry a clean pointer to the next level or a clean leaf (4-KiB pages in
// the pool or TARGET region, 2-MByte pages in RAM, 1-GByte pages at 0), one
// in six of them damaged (randomEntry's mutations, a page outside L1's RAM,
// other permissions, not present).
const LEVEL_PAGES: Record<number, number[]> = { 4: [0], 3: [1, 2], 2: [3, 4, 5], 1: [6, 7] };
function structuredEntry(rnd: Rng, level: number): bigint {
  if (rnd.int(6) === 0) {
    switch (rnd.int(5)) {
      case 0: return randomEntry(rnd);
      case 1: return 0n;
      case 2: return (level === 1 ? rnd.pick([BigInt(L1_RAM), BigInt(L1_RAM) + 0x5000n, 0x7ffff000n]) : rnd.pick([BigInt(L1_RAM), G1]) | LARGE) | WB | 7n;
      default: break; // other permissions below
    }
  }
  const perm = BigInt(rnd.int(4) === 0 ? rnd.pick([1, 3, 4, 5, 2, 6, 0]) : 7);
  const large = (level === 3 && rnd.int(4) === 0) || (level === 2 && rnd.int(3) === 0);
  if (level === 1) return (rnd.int(2) ? rnd.pick(FUZZ_POOL) : BigInt(TARGET) + BigInt(rnd.int(2048)) * K4) | BigInt(rnd.pick([0, 6, 6, 4, 1, 5])) << 3n | perm;
  if (large && level === 3) return 0n | LARGE | WB | perm;
  if (large) return (BigInt(TARGET) + BigInt(rnd.int(8)) * M2) | LARGE | WB | perm;
  return FUZZ_POOL[rnd.pick(LEVEL_PAGES[level - 1])] | perm;
}
function writeRandomTables(c: Ctx, rnd: Rng): void {
  const structured = rnd.int(3) !== 0;
  FUZZ_POOL.forEach((p, n) => {
    clearPage(c, p);
    const level = Number(Object.entries(LEVEL_PAGES).find(([, ps]) => ps.includes(n))![0]);
    const fill = rnd.int(3) === 0 ? 512 : 4; // mostly the first few slots, so that walks reach the lower levels
    for (let i = 0; i < fill; i++) w64(c, p + BigInt(i) * 8n, structured ? structuredEntry(rnd, level) : randomEntry(rnd));
  });
}
function randomGpa(rnd: Rng): bigint {
  const idx = () => BigInt(rnd.int(8) === 0 ? rnd.int(512) : rnd.int(4));
  if (rnd.int(12) === 0) return rnd.next() & ((1n << 48n) - 1n);
  return (idx() << 39n) | (idx() << 30n) | (idx() << 21n) | (idx() << 12n) | BigInt(rnd.int(4096));
}

const FUZZ_SETS = 48, FUZZ_ACCESSES = 32;
test(`random tables: ${FUZZ_SETS} table sets x ${FUZZ_ACCESSES} L2 accesses: never a trap, always fill / reflect 48 / reflect 49 / stop, as the oracle says`, () => {
  const rnd = prng(20251122n);
  const kinds: Record<string, number> = { ok: 0, violation: 0, misconfig: 0, outside: 0, 'no exit': 0 };
  let sets = 0, runs = 0, stops = 0;
  while (sets < FUZZ_SETS) {
    runs++;
    const used = new Set<bigint>(); // EP4TAs this run has used (29.4.3.4: INVEPT before reusing one with new tables)
    let stopped: string | null = null;
    const r = drive(function* (c) {
      const pickEptp = () => {
        const root = rnd.int(16) === 0 ? rnd.pick([BigInt(L1_RAM), 0x7fe00000n, rnd.next() & ADDR & ((1n << 39n) - 1n)])
          : rnd.int(16) === 0 ? rnd.pick(FUZZ_POOL) : FUZZ_POOL[0];
        return eptpOf(root, rnd.pick([6n, 6n, 0n]));
      };
      let eptp = pickEptp();
      yield* bootL1(c, { eptp, unrestricted: rnd.int(4) === 0, build: () => writeRandomTables(c, rnd) });
      used.add(eptp & ADDR);
      for (let set = 0; set < 8 && sets < FUZZ_SETS; set++, sets++) {
        if (set > 0) {
          yield* l2Cpuid(c);
          writeRandomTables(c, rnd);
          eptp = pickEptp();
          if (used.has(eptp & ADDR) || rnd.int(3) === 0) {
            if (rnd.int(2) === 0) yield* invept(c, 2, 0n);
            else yield* invept(c, 1, (eptp & ~7n) | rnd.pick([0n, 6n]));
          } else {
            // A never-used EP4TA: no INVEPT needed, but every other root is stale now.
            yield* invept(c, 2, 0n);
          }
          used.add(eptp & ADDR);
          yield* vmwrite(c, V.EPT_POINTER, eptp);
          yield* enterL2(c, false);
          assert.is(shadowLeaves(c, eptp02(c)).size, 0, `set ${sets}: the new tables start with an empty shadow root`);
        }
        for (let n = 0; n < FUZZ_ACCESSES; n++) {
          const gpa2 = randomGpa(rnd);
          const access = rnd.pick(ACCESSES);
          if (!shadowDenies(c, gpa2, access)) {
            kinds['no exit']++;
            continue; // the processor would not exit; assertShadowSound below checks the mapping
          }
          const want = predict(c, eptp, gpa2, access);
          if (want.kind === 'device') continue; // L1's APIC page: its own test below
          if (want.kind === 'outside') {
            if (rnd.int(4) !== 0) continue;
            stopped = `set ${sets}: 0x${gpa2.toString(16)}`;
          }
          const flags = rnd.int(4);
          const out = yield* l2Access(c, eptp, gpa2, access, {
            paging: flags === 1 ? true : flags === 2 ? false : undefined, nmiUnblock: rnd.int(5) === 0,
          });
          kinds[out.kind]++;
          if (out.kind !== 'ok') yield* enterL2(c, false);
        }
        assertShadowSound(c, eptp, `set ${sets}`);
      }
      yield* l2Cpuid(c);
    });
    assert.equal(r.faults, [], r.console.slice(-2000));
    assert.is(r.trap, null, `never a trap (${r.console.slice(-2000)})`);
    if (stopped !== null) {
      // The fourth outcome: stopped with the message, no exit to L1.
      stops++;
      sets++;
      kinds.outside++;
      assert.not.ok(r.finished, `${stopped}: the guest stopped`);
      assert.match(r.console, /hv: nested: L2 (read of|write to|instruction fetch from) guest-physical 0x[0-9a-f]+ goes through L1's EPT to L1-physical 0x[0-9a-f]+, which is neither L1's RAM nor a device/);
      assert.match(r.console, /ended: ept-violation, /, stopped);
      assert.is(r.status, 1, 'STATUS_FAIL: the guest did not end as expected (pass)');
    } else {
      assert.ok(r.finished, r.console.slice(-2000));
      assert.is(r.status, 0, r.console.slice(-2000));
    }
  }
  if (process.env.HV_EPT_VERBOSE) console.log(JSON.stringify({ runs, stops, ...kinds }));
  for (const k of ['ok', 'violation', 'misconfig']) assert.ok(kinds[k] >= 150, `${k}: ${kinds[k]} (${JSON.stringify(kinds)})`);
  assert.ok(stops >= 2, `stops: ${stops}`);
});

// ---- VMCS shadowing for L1's own L2 (kernel/nested/shadow12.ts) -----------------------
// L1 sets "VMCS shadowing" in vmcs12 with a shadow VMCS of its own and its
// VMREAD/VMWRITE bitmaps. L2 (64-bit, CPL 0 unless said) executes VMREAD/
// VMWRITE; vmcs02 has no shadowing, so each is an exit to L0, which must
// answer as L1's processor would (SDM Vol. 3C 26.1.3, 31.3 VMREAD/VMWRITE
// in VMX non-root operation): an exit to L1 (23/25) when the bitmap bit is
// 1 or the encoding sets bits 63:15; else #GP(0) at CPL > 0; else the
// instruction on the shadow VMCS (VMfailInvalid for a link pointer of
// FFFFFFFF_FFFFFFFFH, VMfailValid(12) into vmcs12 for a field that does
// not exist; a memory operand's paging structures and data through L1's
// EPT, its violations exits to L1; #GP to L1 when its exception bitmap
// says so). L1 reads what L2 wrote after VMPTRLD of the shadow VMCS.
const SHADOW12 = 0x32000, VMREAD_BM = 0x33000, VMWRITE_BM = 0x34000;
const SHADOW_INDICATOR = 0x80000000;

// L2's VMREAD/VMWRITE (register forms: reg1 the value, RCX the encoding).
function* l2VmxInsn(c: Ctx, reason: number, regs: Record<number, bigint>, fields: Record<number, bigint> = {}, info = regInfo(RAX, RCX)): Script {
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'L2 runs');
  yield { reason, len: LEN, regs, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info, [V.GUEST_RFLAGS]: FLAGS_ALL, ...fields } };
}
// It completed in L2 (no exit to L1) with these arithmetic flags.
function l2Completed(c: Ctx, what: string, rip: bigint, flags: bigint): void {
  assert.is(c.m.vmx.currentVmcs, c.vmcs02, `${what}: L2 continues, no exit to L1 (${c.m.console.slice(-300)})`);
  assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0n, `${what}: no exception`);
  assert.is(field(c, V.GUEST_RFLAGS) & ARITH, flags, `${what}: RFLAGS`);
  assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), `${what}: RIP past the instruction`);
}
// It was reflected to L1 as exit `reason` at L2's RIP; L1 resumes L2
// (with `fix` VMWRITten first).
function* reflectedToL1(c: Ctx, what: string, reason: number, rip: bigint, fix: [number, bigint][] = []): Script {
  assert.ok(inL1(c), `${what}: exit to L1`);
  assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(reason), `${what}: exit reason`);
  assert.is(yield* l1Read(c, V.GUEST_RIP), rip, `${what}: L2's RIP at the instruction`);
  for (const [e, v] of fix) yield* vmwrite(c, e, v);
  yield* enterL2(c, false);
}
function setBitmapBit(c: Ctx, bm: number, enc: number): void {
  const a = l1hpa(c, bm + (enc >>> 3));
  c.m.phys.write(a, Uint8Array.of(c.m.phys.read(a, 1)[0] | (1 << (enc & 7))));
}

test('VMCS shadowing for L1\'s L2: VMREAD/VMWRITE of the shadow VMCS without exits, exits by bitmap and encoding, #GP at CPL 3, VMfail', () => {
  runOk(function* (c) {
    yield* bootL1(c, { eptp: eptpOf(pool(0)) });
    yield* l2Cpuid(c);
    const p2 = (yield* rdmsr(c, V.MSR_IA32_VMX_PROCBASED_CTLS2)) >> 32n;
    assert.ok(p2 & B(V.PROC2_VMCS_SHADOWING), '"VMCS shadowing" offered');
    // The shadow VMCS, filled by L1 while current.
    w32(c, SHADOW12, (0x41534856 | SHADOW_INDICATOR) >>> 0);
    yield* ptrInsn(c, 'VMCLEAR shadow', V.EXIT_REASON_VMCLEAR, BigInt(SHADOW12));
    yield* ptrInsn(c, 'VMPTRLD shadow', V.EXIT_REASON_VMPTRLD, BigInt(SHADOW12));
    yield* vmwrite(c, V.EXCEPTION_BITMAP, 0xa5a5n);
    yield* vmwrite(c, V.GUEST_RIP, 0x0123456789abcdefn);
    yield* ptrInsn(c, 'VMPTRLD vmcs12', V.EXIT_REASON_VMPTRLD, BigInt(VMCS12));
    clearPage(c, VMREAD_BM);
    clearPage(c, VMWRITE_BM);
    setBitmapBit(c, VMREAD_BM, V.GUEST_RSP);
    setBitmapBit(c, VMWRITE_BM, V.GUEST_RSP);
    yield* vmwrite(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, B(V.PROC2_ENABLE_EPT | V.PROC2_VMCS_SHADOWING));
    yield* vmwrite(c, V.VMREAD_BITMAP, B(VMREAD_BM));
    yield* vmwrite(c, V.VMWRITE_BITMAP, B(VMWRITE_BM));
    yield* vmwrite(c, V.VMCS_LINK_POINTER, B(SHADOW12));
    yield* enterL2(c, false);
    assert.is(field(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs02) & B(V.PROC2_VMCS_SHADOWING), 0n,
      'vmcs02 has no VMCS shadowing: L2\'s VMREAD/VMWRITE exit to L0');

    let rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.EXCEPTION_BITMAP), [RAX]: 0xdeadn });
    l2Completed(c, 'VMREAD (bit 0)', rip, 0n);
    assert.is(c.m.guestReg(RAX), 0xa5a5n, 'VMREAD (bit 0): the shadow VMCS\'s value');
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.GUEST_RIP), [RAX]: 0n });
    l2Completed(c, 'VMREAD natural width', rip, 0n);
    assert.is(c.m.guestReg(RAX), 0x0123456789abcdefn, 'VMREAD: all 64 bits in 64-bit mode');

    // Bits 63:15 of the encoding (64-bit operand) or bitmap bit 1: exit to L1.
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: (1n << 32n) | B(V.EXCEPTION_BITMAP) });
    yield* reflectedToL1(c, 'VMREAD, encoding bit 32', V.EXIT_REASON_VMREAD, rip);
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.GUEST_RSP) });
    yield* reflectedToL1(c, 'VMREAD (bit 1)', V.EXIT_REASON_VMREAD, rip);
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMWRITE, { [RCX]: B(V.GUEST_RSP), [RAX]: 1n });
    yield* reflectedToL1(c, 'VMWRITE (bit 1)', V.EXIT_REASON_VMWRITE, rip);
    // The exit comes before the CPL check; without it, CPL 3 is #GP(0).
    const cpl3 = { [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA | (3n << 5n) };
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.GUEST_RSP) }, cpl3);
    // (L2's SS with DPL 3 and CS with DPL 0 is no state to resume: L1 mends it.)
    yield* reflectedToL1(c, 'VMREAD (bit 1) at CPL 3', V.EXIT_REASON_VMREAD, rip, [[V.GUEST_SS_ACCESS_RIGHTS, AR_DATA]]);
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.EXCEPTION_BITMAP), [RAX]: 7n }, cpl3);
    assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'VMREAD (bit 0) at CPL 3: no exit to L1');
    assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0x80000b0dn, 'VMREAD (bit 0) at CPL 3: #GP(0) in L2');
    assert.is(field(c, V.VM_ENTRY_EXCEPTION_ERROR_CODE), 0n, '#GP error code 0');
    assert.is(field(c, V.GUEST_RIP), rip, 'not completed');
    assert.is(c.m.guestReg(RAX), 7n, 'destination unchanged');

    // VMWRITE (bit 0): into the shadow VMCS; L1 sees it after VMPTRLD of it.
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMWRITE, { [RCX]: B(V.EXCEPTION_BITMAP), [RDX]: 0x5a5an }, { [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA },
      regInfo(RDX, RCX));
    l2Completed(c, 'VMWRITE (bit 0)', rip, 0n);
    // A field that does not exist: VMfailValid(12), the number in vmcs12.
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: 0x4bfen });
    l2Completed(c, 'VMREAD of no field', rip, B(V.X86_RFLAGS_ZF));
    // A memory operand: L2's paging structures are L2-physical, and L1's
    // EPT (empty here) maps nothing: the read of the PML4 entry at L2's
    // CR3 is an EPT violation for L1 (qualification: read, no permissions,
    // linear address valid, bit 8 clear: a paging-structure access).
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.EXCEPTION_BITMAP), [RBX]: 0x8000n }, {}, withReg2(memInfo(), RCX));
    assert.ok(inL1(c), 'VMREAD to memory, L1\'s EPT empty: exit to L1');
    assert.is(yield* l1Read(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_EPT_VIOLATION), 'exit 48');
    assert.is(yield* l1Read(c, V.EXIT_QUALIFICATION), 0x81n, 'qualification: read, linear address valid, paging-structure access');
    assert.is(yield* l1Read(c, V.GUEST_PHYSICAL_ADDRESS), field(c, V.GUEST_CR3, c.vmcs02) & ADDR, 'the PML4 entry\'s L2-physical address');
    assert.is(yield* l1Read(c, V.GUEST_LINEAR_ADDRESS), 0x8000n, 'the operand\'s linear address');
    assert.is(yield* l1Read(c, V.GUEST_RIP), rip, 'at the instruction');
    assert.is(yield* l1Read(c, V.VM_INSTRUCTION_ERROR), 12n, 'VMfailValid(12) in L2: the error number in vmcs12');
    yield* ptrInsn(c, 'VMPTRLD shadow', V.EXIT_REASON_VMPTRLD, BigInt(SHADOW12));
    assert.is(yield* l1Read(c, V.EXCEPTION_BITMAP), 0x5a5an, 'L2\'s VMWRITE is in the shadow VMCS');
    assert.is(yield* l1Read(c, V.VM_INSTRUCTION_ERROR), 0n, 'the shadow VMCS\'s error field untouched');
    yield* ptrInsn(c, 'VMPTRLD vmcs12', V.EXIT_REASON_VMPTRLD, BigInt(VMCS12));
    assert.is(yield* l1Read(c, V.EXCEPTION_BITMAP), 0n, 'vmcs12\'s own field untouched');
    // #GP(0) at CPL 3 with #GP in L1's exception bitmap: exit 0 to L1.
    yield* vmwrite(c, V.EXCEPTION_BITMAP, 1n << 13n);
    yield* enterL2(c, false);
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.EXCEPTION_BITMAP) }, cpl3);
    assert.ok(inL1(c), 'VMREAD (bit 0) at CPL 3, #GP intercepted: exit to L1');
    assert.is(yield* l1Read(c, V.VM_EXIT_REASON), 0n, 'exit 0 (exception)');
    assert.is(yield* l1Read(c, V.VM_EXIT_INTERRUPTION_INFO), 0x80000b0dn, '#GP, hardware exception, error code valid');
    assert.is(yield* l1Read(c, V.VM_EXIT_INTERRUPTION_ERROR_CODE), 0n, 'error code 0');
    assert.is(yield* l1Read(c, V.GUEST_RIP), rip, 'at the instruction');
    yield* vmwrite(c, V.GUEST_SS_ACCESS_RIGHTS, AR_DATA);
    yield* vmwrite(c, V.EXCEPTION_BITMAP, 0n);

    // Link pointer FFFFFFFF_FFFFFFFFH: VMfailInvalid.
    yield* vmwrite(c, V.VMCS_LINK_POINTER, ALL1);
    yield* enterL2(c, false);
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMWRITE, { [RCX]: B(V.EXCEPTION_BITMAP), [RAX]: 1n });
    l2Completed(c, 'VMWRITE with link pointer FFFFFFFF_FFFFFFFFH', rip, B(V.X86_RFLAGS_CF));
    // "VMCS shadowing" 0: every VMREAD exits to L1.
    yield* l2Cpuid(c);
    yield* vmwrite(c, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, B(V.PROC2_ENABLE_EPT));
    yield* enterL2(c, false);
    rip = field(c, V.GUEST_RIP);
    yield* l2VmxInsn(c, V.EXIT_REASON_VMREAD, { [RCX]: B(V.EXCEPTION_BITMAP) });
    yield* reflectedToL1(c, 'VMREAD without VMCS shadowing', V.EXIT_REASON_VMREAD, rip);
  });
});

// ---- L1's RAM snapshot (kernel/snapshot/ram.ts, issue 10 item 6) --------------------
// A shadow leaf maps L1's page past L0's own EPT, so the processor sets no
// flag there for L2's writes: with ramsnap=on the kernel gives L2 write
// access only with its first write to the page, and records the page as
// written in L0's EPT (the dirty flag of the leaf, the accessed flag of the
// PDE above it: what the processor would have set, 29.3.5).
test('ramsnap=on: L2 gets write access to an L1 page with its first write, which marks the page written in L0\'s EPT', () => {
  runOk(function* (c) {
    let h: Hand = { eptp: 0n, gpa: {} };
    yield* bootL1(c, { eptp: eptpOf(pool(0)), build: () => { h = buildHand(c); } });
    const eptp01 = field(c, V.EPT_POINTER, c.vmcs01);
    assert.is(eptp01 & 0x7fn, 0x5en, 'vmcs01\'s EPTP: WB, 4-level walk, accessed/dirty flags (the snapshot\'s tracking)');
    // L0's leaf and PDE for L1-physical gpa1 (4-KiB leaves: the snapshot split them).
    const l0Entries = (gpa1: bigint) => {
      let t = eptp01 & ADDR;
      const at: number[] = [];
      for (let level = 4; level >= 1; level--) {
        const a = Number(t + ((gpa1 >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n);
        at.push(a);
        t = c.m.phys.read64(a) & ADDR;
      }
      return { pde: c.m.phys.read64(at[2]), leaf: c.m.phys.read64(at[3]) };
    };
    const P = h.gpa['4K RWX'];
    const gpa1 = l1Walk(c, h.eptp, P, R).gpa1! & ~0xfffn;
    const violation = (access: number): Exit => ({
      reason: V.EXIT_REASON_EPT_VIOLATION, len: 0,
      qual: BigInt(access) | (BigInt(shadowWalk(c, eptp02(c), P).perms) << 3n),
      fields: { [V.GUEST_PHYSICAL_ADDRESS]: P, [V.GUEST_LINEAR_ADDRESS]: 0n },
    });
    const before = l0Entries(gpa1);
    assert.is(before.leaf & (LARGE | 0x200n), 0n, 'L0: a 4-KiB leaf, not dirty');
    yield violation(R);
    assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'read: L2 goes on');
    let sh = shadowWalk(c, eptp02(c), P);
    assert.is(sh.perms, 5, 'read: mapped R-X although L1 allows RWX');
    assert.is(l0Entries(gpa1).leaf & 0x200n, 0n, 'read: the page is not marked written');
    yield violation(W);
    assert.is(c.m.vmx.currentVmcs, c.vmcs02, 'write: L2 goes on');
    sh = shadowWalk(c, eptp02(c), P);
    assert.is(sh.perms, 7, 'write: mapped RWX now');
    assert.is(sh.hpa! & ~0xfffn, l0(c, gpa1), 'write: the same L1 page');
    const after = l0Entries(gpa1);
    assert.is(after.leaf & 0x200n, 0x200n, 'write: L0\'s leaf of the L1 page dirty');
    assert.is(after.pde & 0x100n, 0x100n, 'write: L0\'s PDE above it accessed');
    yield* l2Cpuid(c);
  }, 'ramsnap=on', tigerlake({ memSize: 128 << 20 })); // room for the snapshot's copy of L1's 32 MiB
});

test.run();
