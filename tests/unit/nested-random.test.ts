// Randomized test of L1's VMX instructions (issue 4, item 9): a scripted L1
// (nested=on) executes random sequences of VMXON, VMXOFF, VMCLEAR, VMPTRLD,
// VMPTRST, VMREAD, VMWRITE, VMLAUNCH, VMRESUME, INVEPT and INVVPID with
// random operands -- register and memory forms, every addressing form of the
// VM-exit instruction information (SDM Vol. 3C 28.2.5: base, index, scale,
// displacement in the qualification, 16/32/64-bit addresses, segments with
// random bases, limits, types and unusable ones, undefined bits set at
// random), random pointers (misaligned, beyond the physical-address width,
// outside RAM, the VMXON pointer, regions with wrong revisions or the shadow
// bit), random field encodings and values, in random modes (64-bit,
// 32-bit protected, compatibility, virtual-8086, real, CR4.VMXE = 0, CPL 3)
// and random orders. Each outcome must be one the SDM permits, as
// tests/model/vmx-insn-oracle.ts predicts it from its own record of L1's
// VMX state: the injected exception and its error code (CR2 for #PF), RIP
// moved past the instruction or not, RFLAGS, every general register (only
// the destination may change), the bytes written to L1's memory and no
// others, and, through later VMREADs, the VM-instruction error and field
// values. The kernel must never trap or stop the VM; any disagreement is
// printed with SEED, RUN and case number and fails the test. INVEPT and
// INVVPID (SDM Vol. 3C 31.3) each reach every outcome class the SDM gives
// them, INVVPID also on a processor that supports only some INVVPID types.
//
//   SEED=n   replay a seed (printed at the start); RUN=r  only run r of it;
//   TRACE=1  print every case and its outcome.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, type Machine } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';
import { fieldName, FIELD_ENCODINGS } from '../model/vmcs-fields.ts';
import { play, injected, RAX, RCX, RDX, type Step } from './guest-script.ts';
import {
  VmxOracle, Unmodelled, capsFromMsrs, modeOf, cplOf, UD, SS, GP, PF, type Case, type Cpu, type Caps, type Insn, type Outcome, type Seg,
} from '../model/vmx-insn-oracle.ts';

const SEED = (process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() ^ (process.pid << 12)) >>> 0;
const ONLY_RUN = process.env.RUN !== undefined ? Number(process.env.RUN) : undefined;
const TRACE = process.env.TRACE === '1';
const RUNS = 60, CASES_PER_RUN = 100;
console.log(`nested-random: SEED=${SEED} (replay: SEED=${SEED} npx tsx tests/unit/nested-random.test.ts)`);

// ---- a seeded PRNG (sfc32, seeded through splitmix32) ---------------------------
class Rng {
  private s: number[];
  constructor(seed: number) {
    let x = seed >>> 0;
    const mix = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = [mix(), mix(), mix(), mix()];
  }
  u32(): number {
    const s = this.s;
    const t = (((s[0] + s[1]) >>> 0) + s[3]) >>> 0;
    s[3] = (s[3] + 1) >>> 0;
    s[0] = s[1] ^ (s[1] >>> 9);
    s[1] = (s[2] + (s[2] << 3)) >>> 0;
    s[2] = ((s[2] << 21) | (s[2] >>> 11)) + t >>> 0;
    return t;
  }
  int(n: number): number { return Math.floor((this.u32() / 2 ** 32) * n); }
  chance(p: number): boolean { return this.u32() / 2 ** 32 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
  weighted<T>(xs: readonly [T, number][]): T {
    let r = this.int(xs.reduce((a, [, w]) => a + w, 0));
    for (const [x, w] of xs) if ((r -= w) < 0) return x;
    return xs[0][0];
  }
  u64(): bigint { return (BigInt(this.u32()) << 32n) | BigInt(this.u32()); }
}

const M32 = 0xffffffffn, M64 = (1n << 64n) - 1n;
const hex = (v: bigint | number) => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
const sext = (v: bigint, bits: number) => BigInt.asUintN(64, BigInt.asIntN(bits, v));

// ---- what L1 is offered, read the way L1 reads it (RDMSR, CPUID) ----------------
const MiB = 1 << 20;
const RAM = 32 * MiB;
function probe(machine?: () => Machine): Caps {
  const msr = new Map<number, bigint | null>();
  let cpuid = 0n;
  const all = Object.entries(V).filter(([k, v]) => k.startsWith('MSR_IA32_VMX_') && typeof v === 'number') as [string, number][];
  const steps: Step[] = all.map(([, n]) => ({ exit: { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: BigInt(n) } },
    check: (m: Machine) => msr.set(n, injected(m) ? null : (m.guestReg(RDX) << 32n) | (m.guestReg(RAX) & M32)) }));
  steps.push({ exit: { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0x80000008n, [RCX]: 0n } }, check: (m) => { cpuid = m.guestReg(RAX); } });
  const r = play(steps, `nested=on mem=${RAM / MiB}M`, { machine: machine?.() });
  assert.is(r.status, 0, r.console);
  return capsFromMsrs((n) => msr.get(n) ?? null, cpuid, BigInt(RAM));
}

// ---- L1's memory (guest-physical), mirrored in the test ------------------------------
const PD32 = 0x10000, PML4 = 0x11000, PDPT = 0x12000, PD64 = 0x13000, PT64 = 0x14000;
const X1 = 0x20000, X2 = 0x21000; // VMXON regions
const VA = 0x22000, VB = 0x23000, VC = 0x24000; // VMCS regions, right revision
const WRONG = 0x25000, SHADOW = 0x26000, JUNK = 0x27000; // wrong revision, shadow bit, random dword
const VMCS_PAGES = [VA, VB, VC, WRONG, SHADOW, JUNK].map(BigInt);
const SCRATCH = 0x30000, SCRATCH_END = 0x34000; // operands: two RW pages, then
const RO = 0x32000, NP = 0x33000; // read-only and not present under 4-level paging
const HOLE = 0x400000; // linear 4..8 MiB: not present in either paging mode

class Mem {
  readonly pages = new Map<number, Uint8Array>();
  private pending: [number, Uint8Array][] = [];
  private hostPage = new Map<number, number>();
  stage(gpa: number, bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) {
      const a = gpa + i;
      let p = this.pages.get(a >>> 12);
      if (!p) this.pages.set(a >>> 12, p = new Uint8Array(4096));
      p[a & 0xfff] = bytes[i];
    }
    this.pending.push([gpa, bytes.slice()]);
  }
  stageInt(gpa: number, v: bigint, n: number): void {
    this.stage(gpa, Uint8Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn)));
  }
  read(gpa: bigint, n: number): Uint8Array | null {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const a = Number(gpa) + i;
      const p = gpa + BigInt(i) < BigInt(RAM) ? this.pages.get(a >>> 12) : undefined;
      if (!p) return null;
      out[i] = p[a & 0xfff];
    }
    return out;
  }
  // Guest-physical -> host-physical through vmcs01's EPT (4-level, 4 KiB or large pages).
  hpa(m: Machine, gpa: number): number {
    const pn = gpa >>> 12;
    let h = this.hostPage.get(pn);
    if (h === undefined) {
      const mask = 0x000ffffffffff000n;
      let table = m.vmx.field(V.EPT_POINTER) & mask;
      for (let level = 4; ; level--) {
        const shift = BigInt(12 + 9 * (level - 1));
        const e = m.phys.read64(Number(table + ((BigInt(gpa) >> shift) & 511n) * 8n));
        if ((e & 7n) === 0n) throw new Error(`guest-physical ${hex(gpa)} not mapped by EPT`);
        if (level === 1 || (e & 0x80n) !== 0n) { h = Number(((e & mask) | (BigInt(gpa) & ((1n << shift) - 1n))) >> 12n); break; }
        table = e & mask;
      }
      this.hostPage.set(pn, h);
    }
    return h * 4096 + (gpa & 0xfff);
  }
  flush(m: Machine): void {
    for (const [gpa, bytes] of this.pending) {
      for (let off = 0; off < bytes.length;) {
        const n = Math.min(bytes.length - off, 4096 - ((gpa + off) & 0xfff));
        m.phys.write(this.hpa(m, gpa + off), bytes.subarray(off, off + n));
        off += n;
      }
    }
    this.pending = [];
  }
  live(m: Machine, gpa: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = m.phys.read(this.hpa(m, gpa + i), 1)[0];
    return out;
  }
}

function setupMemory(mem: Mem, rng: Rng, rev: number): void {
  const pd32 = new Uint8Array(4096), pml4 = new Uint8Array(4096), pdpt = new Uint8Array(4096);
  const pd64 = new Uint8Array(4096), pt64 = new Uint8Array(4096);
  const put = (page: Uint8Array, i: number, v: bigint, n: number) => { for (let k = 0; k < n; k++) page[i * n + k] = Number((v >> BigInt(8 * k)) & 0xffn); };
  for (let i = 0; i < RAM / (4 * MiB); i++) if (i !== 1) put(pd32, i, BigInt(i * 4 * MiB) | 0x83n, 4); // 4-MiB pages, P RW PS
  put(pml4, 0, BigInt(PDPT | 3), 8);
  put(pdpt, 0, BigInt(PD64 | 3), 8);
  put(pd64, 0, BigInt(PT64 | 3), 8);
  for (let i = 1; i < RAM / (2 * MiB); i++) if (i !== 2 && i !== 3) put(pd64, i, BigInt(i * 2 * MiB) | 0x83n, 8);
  for (let i = 0; i < 512; i++) put(pt64, i, i * 4096 === NP ? 0n : BigInt(i * 4096) | (i * 4096 === RO ? 1n : 3n), 8);
  for (const [a, page] of [[PD32, pd32], [PML4, pml4], [PDPT, pdpt], [PD64, pd64], [PT64, pt64]] as const) mem.stage(a, page);
  let junk = rng.u32();
  if ((junk & 0x7fffffff) === rev) junk ^= 1;
  const revs: [number, number][] = [[X1, rev], [X2, rev], [VA, rev], [VB, rev], [VC, rev],
    [WRONG, (rev ^ (1 + rng.int(0x7ffffffe))) & 0x7fffffff], [SHADOW, (rev | 0x80000000) >>> 0], [JUNK, junk]];
  for (const [a, r] of revs) { const page = new Uint8Array(4096); put(page, 0, BigInt(r), 4); mem.stage(a, page); }
  mem.stage(SCRATCH, Uint8Array.from({ length: SCRATCH_END - SCRATCH }, () => rng.int(256)));
}

// ---- L1's processor state ------------------------------------------------------------
type Ctx = 'long' | 'prot' | 'compat' | 'v86' | 'real' | 'noVmxe' | 'noNE' | 'noPG';
const CR0_PE = 1n, CR0_ET = 0x10n, CR0_NE = 0x20n, CR0_WP = 1n << 16n, CR0_PG = 1n << 31n;
const CR4_PSE = 0x10n, CR4_PAE = 0x20n, CR4_VMXE = 0x2000n;
const AR_DATA = 0xc093, AR_RO = 0xc091, AR_DOWN = 0xc097, AR_DOWN16 = 0x8097, AR_CODE = 0xc09b, AR_XO = 0xc099;
const AR_CODE64 = 0xa09b, AR_UNUSABLE = 0x1c093;
const ARITH = 0x8d5n;
const [ES, CS, SSEG, DS, FS, GS] = [0, 1, 2, 3, 4, 5]; // segment numbers of the instruction information
const RBX = 3, RBP = 5, RSI = 6, RDI = 7;

function junk(rng: Rng): bigint {
  switch (rng.int(5)) {
    case 0: return BigInt(rng.int(256));
    case 1: return BigInt(rng.u32());
    case 2: return rng.u64();
    case 3: return BigInt(SCRATCH + rng.int(SCRATCH_END - SCRATCH));
    default: return 0xffff800000000000n | BigInt(rng.u32());
  }
}

function makeCpu(rng: Rng, ctx: Ctx, cpl: number): Cpu {
  const prot = ctx === 'prot' || ctx === 'noPG' || ctx === 'v86' || ctx === 'real' || (ctx !== 'long' && ctx !== 'compat' && rng.chance(0.5));
  let cr0 = CR0_PG | CR0_NE | CR0_ET | CR0_PE | (rng.chance(0.5) ? CR0_WP : 0n) | (rng.chance(0.3) ? 2n : 0n);
  let cr4 = CR4_VMXE | (prot ? CR4_PSE : CR4_PAE) | (rng.chance(0.3) ? 0x600n : 0n);
  const efer = (prot ? 0n : 0x500n) | (rng.chance(0.5) ? 0x801n : 0n); // LME LMA; SCE NXE
  if (ctx === 'real') cr0 = CR0_ET | (rng.chance(0.5) ? CR0_NE : 0n);
  if (ctx === 'noVmxe') cr4 &= ~CR4_VMXE;
  if (ctx === 'noNE') cr0 &= ~CR0_NE;
  if (ctx === 'noPG') cr0 &= ~CR0_PG;
  const dpl = ctx === 'v86' ? 3 : ctx === 'real' ? 0 : cpl;
  const segs: Seg[] = [];
  for (let s = 0; s < 6; s++) {
    let ar: number;
    if (ctx === 'v86') ar = 0xf3;
    else if (ctx === 'real') ar = s === CS ? 0x9b : 0x93;
    else if (s === CS) ar = (prot || ctx === 'compat' ? rng.pick([AR_CODE, AR_CODE, AR_XO]) : rng.pick([AR_CODE64, AR_CODE64, 0xa099]));
    else if (s === SSEG) ar = rng.pick(prot ? [AR_DATA, AR_DATA, AR_DOWN] : [AR_DATA, AR_DATA, AR_UNUSABLE]);
    else ar = rng.weighted([[AR_DATA, 8], [AR_RO, 1], [AR_DOWN, 1], [AR_DOWN16, 1], [AR_CODE, 1], [AR_UNUSABLE, 1]]);
    if (ctx !== 'v86' && ctx !== 'real' && (s === CS || s === SSEG)) ar |= dpl << 5;
    const flat = prot && rng.chance(0.7);
    segs.push({ base: flat ? 0n : ctx === 'v86' ? BigInt(rng.int(0x10000) << 4) : prot ? BigInt(rng.u32()) : junk(rng),
      limit: flat || rng.chance(0.5) ? 0xffffffffn : BigInt(rng.u32()), ar });
  }
  const rflags = 2n | (BigInt(rng.u32()) & (ARITH | 0x600n)) | (ctx === 'v86' ? 1n << 17n : 0n);
  return {
    cr0, cr4, efer, rflags, segs, cr3: BigInt(prot ? PD32 : PML4),
    gpr: Array.from({ length: 16 }, () => junk(rng)), movSsBlocking: false,
  };
}

// ---- memory operands (28.2.5 Tables 28-9, 28-13, 28-14) -----------------------------
interface MemOp { info: number; qual: bigint; target: number | null }
// Choose where the operand should land and an addressing form that gets it
// there (or not: the oracle decides what really happens); mutates cpu.
function memOperand(rng: Rng, cpu: Cpu, len: number): MemOp {
  const long = modeOf(cpu) === 'long';
  const kind = rng.weighted<string>([['scratch', 70], ['hole', 6], ['high', 6], ['noncanonical', long ? 6 : 0], ['wild', 6]]);
  let t: bigint;
  let target: number | null = null;
  if (kind === 'scratch') {
    // Mostly the two ordinary pages; often at a page's end (split accesses).
    const page = rng.weighted([[0, 4], [1, 4], [2, 1], [3, 1]]);
    const off = page * 0x1000 + (rng.chance(0.25) ? 0x1000 - rng.int(len + 1) : rng.int(0x1000 - len + 1));
    target = SCRATCH + Math.min(off, SCRATCH_END - SCRATCH - len);
    t = BigInt(target);
  } else if (kind === 'hole') t = BigInt(HOLE + rng.int(4 * MiB - len));
  else if (kind === 'high') t = long ? rng.pick([BigInt(RAM) + BigInt(rng.u32()), 0xffff800000000000n + BigInt(rng.u32())]) : BigInt(RAM + rng.int(0xf0000000));
  else if (kind === 'noncanonical') t = rng.pick([0x0000800000000000n + rng.u64() % (1n << 46n), 0x00007ffffffffff8n + BigInt(rng.int(8))]);
  else t = junk(rng);
  const seg = rng.weighted([[DS, 35], [SSEG, 15], [ES, 15], [FS, 10], [GS, 10], [CS, 15]]);
  const asize = long ? rng.pick([64, 64, 32]) : rng.pick([32, 32, 32, 16]);
  const bits = BigInt(asize);
  const s = cpu.segs[seg];
  // The segment: base and limit that reach the target, or not.
  if (!long && kind !== 'wild') {
    if (seg === CS) s.ar = (rng.pick([AR_CODE, AR_CODE, AR_XO]) & ~0x60) | (s.ar & 0x60);
    else if (seg === SSEG) s.ar = (rng.pick([AR_DATA, AR_DATA, AR_DOWN, AR_DOWN16]) & ~0x60) | (s.ar & 0x60);
    else s.ar = rng.weighted([[AR_DATA, 8], [AR_RO, 1], [AR_DOWN, 1], [AR_DOWN16, 1], [AR_CODE, 1], [AR_XO, 1], [AR_UNUSABLE, 1]]);
    s.base = asize === 16 ? (t - BigInt(rng.int(0x10000 - len))) & M32 : rng.chance(0.6) ? 0n : BigInt(rng.u32());
    const ea = (t - s.base) & M32;
    const down = (s.ar & 0x1c) === 0x14;
    // Expand-down: offsets above the limit; expand-up: up to it. Often right at the edge.
    const edge = down ? ea - 1n : ea + BigInt(len - 1);
    s.limit = rng.weighted([[down ? 0n : M32, 3], [edge, 2], [edge + (down ? 1n : -1n), 2],
      [down ? BigInt(rng.int(Math.max(1, Number(ea)))) : edge + BigInt(rng.int(0x1000)), 2], [BigInt(rng.u32()), 1]]) & M32;
  } else if (long && (seg === FS || seg === GS) && kind !== 'wild') s.base = rng.chance(0.5) ? 0n : rng.u64() & 0x00007fffffffffffn;
  const ea = (long ? t - (seg === FS || seg === GS ? s.base : 0n) : t - s.base) & ((1n << bits) - 1n);
  // Base, index, scale, displacement (the exit qualification holds the
  // displacement sign-extended, or RIP + displacement for RIP-relative).
  let base: number | null, index: number | null, scale = 0;
  const nregs = long ? 16 : 8;
  if (asize === 16) {
    [base, index] = rng.pick([[RBX, RSI], [RBX, RDI], [RBP, RSI], [RBP, RDI], [null, RSI], [null, RDI], [RBP, null], [RBX, null], [null, null]] as [number | null, number | null][]);
  } else {
    base = rng.chance(0.85) ? rng.int(nregs) : null;
    index = rng.chance(0.4) ? rng.pick([...Array(nregs).keys()].filter((r) => r !== 4)) : null;
    scale = rng.int(4);
  }
  const dispBits = asize === 16 ? rng.pick([0, 8, 16]) : rng.pick([0, 8, 32]);
  let qual = dispBits ? sext(BigInt(rng.u32()), dispBits) : 0n;
  const wild = kind === 'wild' || (base !== null && base === index);
  if (!wild) {
    const mask = (1n << bits) - 1n;
    const high = asize < 64 ? (rng.u64() << bits) & M64 : 0n; // ignored bits above the address size
    if (base !== null) {
      const rest = index !== null ? cpu.gpr[index] << BigInt(scale) : 0n;
      cpu.gpr[base] = ((ea - qual - rest) & mask) | high;
    } else if (index !== null) {
      qual += (ea - qual) & ((1n << BigInt(scale)) - 1n);
      qual = BigInt.asUintN(64, qual);
      cpu.gpr[index] = (((ea - qual) & mask) >> BigInt(scale)) | high;
    } else qual = asize === 64 ? ea : sext(ea, asize);
  }
  let info = (asize === 16 ? 0 : asize === 32 ? 1 : 2) << 7 | seg << 15 | scale;
  info |= index === null ? 1 << 22 | (rng.chance(0.5) ? rng.int(16) << 18 : 0) : index << 18;
  info |= base === null ? 1 << 27 | (rng.chance(0.5) ? rng.int(16) << 23 : 0) : base << 23;
  if (index === null && rng.chance(0.5)) info = (info & ~3) | rng.int(4); // scaling undefined without an index
  if (rng.chance(0.5)) info |= (rng.int(32) << 2) | (rng.int(16) << 11); // undefined bits 6:2, 14:11
  return { info: info >>> 0, qual, target };
}

// ---- the cases ---------------------------------------------------------------------
interface Planned { c?: Case; wrmsr?: bigint; rip: bigint; len: number; cr2: bigint; intr: number }

class Generator {
  private queue: Case[] = [];
  private recent: number[] = []; // encodings VMWRITE was given lately
  lastFailValid = false;
  invvpidWeight = 7; // INVVPID's share in VMX operation (of about 100)
  constructor(private rng: Rng, private o: VmxOracle, private mem: Mem, private existing: number[], private absent: number[]) {}

  private ctx(): Ctx {
    const r = this.rng;
    return this.o.vmxOn
      ? r.weighted<Ctx>([['long', 55], ['prot', 33], ['compat', 4], ['v86', 4]])
      : r.weighted<Ctx>([['long', 35], ['prot', 30], ['compat', 5], ['v86', 5], ['real', 5], ['noVmxe', 8], ['noNE', 6], ['noPG', 6]]);
  }
  private pointer(vmxon: boolean): bigint {
    const r = this.rng, o = this.o;
    const valid = vmxon ? r.pick([X1, X1, X2]) : r.pick([VA, VB, VC]);
    return BigInt(r.weighted<() => number | bigint>([
      [() => valid, 60], [() => r.pick([WRONG, SHADOW, JUNK]), 10],
      [() => o.vmxonPtr ?? X1, vmxon ? 0 : 7], [() => o.current ?? VA, vmxon ? 0 : 7],
      [() => valid + 1 + r.int(0xfff), 4], [() => BigInt(valid) | 1n << BigInt(o.caps.physBits + r.int(64 - o.caps.physBits)), 4],
      [() => BigInt(RAM) + BigInt(r.int(1 << 20)) * 4096n, 4], [() => M64, 2], [() => r.u64(), 2],
    ])());
  }
  private encoding(): bigint {
    const r = this.rng;
    const e = r.weighted<() => number>([
      [() => r.pick(this.existing), 25],
      [() => r.pick(this.existing.filter((x) => ((x >>> 13) & 3) === 1)) | (r.chance(0.5) ? 1 : 0), 20], // 64-bit: full or high
      // A field written lately (read back, or written again in another mode or half).
      [() => { const e = r.pick(this.recent); return ((e >>> 13) & 3) === 1 && r.chance(0.3) ? e ^ 1 : e; }, this.recent.length ? 45 : 0],
      [() => V.VM_INSTRUCTION_ERROR, 3], [() => V.PIN_BASED_VM_EXEC_CONTROL, 3], [() => r.pick(this.absent), 8],
      [() => r.pick(this.existing.filter((x) => ((x >>> 13) & 3) !== 1)) | 1, 4], // high access of a field that has none
      [() => r.pick(this.existing) | 0x1000, 3], [() => r.pick(this.existing) | (1 + r.int(0xffff)) << 15, 3],
      [() => r.int(0x8000), 4], [() => r.u32(), 2],
    ])() >>> 0;
    return BigInt(e);
  }
  private value(): bigint {
    const r = this.rng;
    return r.weighted<() => bigint>([[() => 0n, 2], [() => M64, 2], [() => r.u64(), 6], [() => BigInt(r.u32()), 4],
      [() => BigInt(r.int(256)), 2], [() => 1n << BigInt(r.int(64)), 2]])();
  }
  // Stage the operand's bytes where the operand is aimed.
  private place(op: MemOp, len: number, v?: bigint): void {
    if (op.target === null) return;
    if (v !== undefined) this.mem.stageInt(op.target, v, len);
    else this.mem.stage(op.target, Uint8Array.from({ length: len }, () => this.rng.int(256)));
  }

  private draw(): Case {
    const r = this.rng, o = this.o;
    if (this.lastFailValid && r.chance(0.5)) { // read the VM-instruction error back
      this.lastFailValid = false;
      return this.vmrw('VMREAD', makeCpu(r, r.pick<Ctx>(['long', 'prot']), 0), BigInt(V.VM_INSTRUCTION_ERROR));
    }
    const cur = o.current !== null;
    const insn = o.vmxOn
      ? r.weighted<Insn>([['VMREAD', cur ? 26 : 8], ['VMWRITE', cur ? 24 : 8], ['VMPTRLD', cur ? 10 : 30], ['VMCLEAR', 10], ['VMPTRST', 6],
        ['VMLAUNCH', 5], ['VMRESUME', 4], ['VMXOFF', 2], ['VMXON', 4], ['INVEPT', 7], ['INVVPID', this.invvpidWeight]])
      : r.weighted<Insn>([['VMXON', 55], ['VMREAD', 6], ['VMWRITE', 6], ['VMPTRLD', 6], ['VMCLEAR', 6], ['VMPTRST', 5],
        ['VMXOFF', 5], ['VMLAUNCH', 3], ['VMRESUME', 3], ['INVEPT', 3], ['INVVPID', 3]]);
    const cpu = makeCpu(r, this.ctx(), r.chance(0.06) ? 3 : 0);
    switch (insn) {
      case 'VMXON': case 'VMCLEAR': case 'VMPTRLD': {
        const op = memOperand(r, cpu, 8);
        this.place(op, 8, this.pointer(insn === 'VMXON'));
        return { insn, cpu, info: op.info & ~(1 << 10) | (r.chance(0.3) ? r.int(16) << 28 : 0), qual: op.qual };
      }
      case 'VMPTRST': {
        const op = memOperand(r, cpu, 8);
        this.place(op, 8);
        return { insn, cpu, info: op.info & ~(1 << 10) | (r.chance(0.3) ? r.int(16) << 28 : 0), qual: op.qual };
      }
      case 'VMREAD': case 'VMWRITE': return this.vmrw(insn, cpu, this.encoding());
      case 'INVEPT': case 'INVVPID': {
        // The descriptor (Figure 31-1 INVEPT: EPTP in bits 63:0, bits 127:64
        // reserved; INVVPID: VPID in 15:0, linear address in 127:64) and the
        // type register (Reg2, Table 28-13), usually not one the address uses.
        const op = memOperand(r, cpu, 16);
        this.place(op, 16, insn === 'INVEPT' ? (r.chance(0.8) ? 0n : r.u64()) << 64n | this.eptp() : this.vpidDescriptor());
        const used = [op.info & 1 << 27 ? -1 : (op.info >>> 23) & 15, op.info & 1 << 22 ? -1 : (op.info >>> 18) & 15];
        const long = modeOf(cpu) === 'long';
        const free = [...Array(long ? 16 : 8).keys()].filter((x) => !used.includes(x));
        const reg2 = r.chance(0.9) ? r.pick(free) : r.int(16);
        // INVEPT's types are 1 and 2, INVVPID's 0-3 (31.3); then types that do
        // not exist, and 64-bit values whose low half is a type.
        const type = insn === 'INVEPT'
          ? r.weighted<() => bigint>([[() => 1n, 40], [() => 2n, 30], [() => 0n, 8], [() => 3n, 8],
            [() => BigInt(1 + r.int(2)) | BigInt(1 + r.int(0xffffffff)) << 32n, 8], [() => r.u64(), 4], [() => BigInt(r.int(16)), 2]])()
          : r.weighted<() => bigint>([[() => 0n, 30], [() => 1n, 20], [() => 2n, 15], [() => 3n, 20],
            [() => BigInt(4 + r.int(12)), 4], [() => BigInt(r.pick([24, 40, 64, 65, 66, 67])), 2],
            [() => BigInt(r.int(4)) | BigInt(1 + r.int(0xffffffff)) << 32n, 8], [() => r.u64(), 3]])();
        cpu.gpr[reg2] = type;
        // Bit 10 and bits 6:2, 14:11 of the instruction information are undefined for INVEPT/INVVPID (Table 28-13).
        return { insn, cpu, info: (op.info & 0x0fffffff | (r.chance(0.3) ? 1 << 10 : 0) | reg2 << 28) >>> 0, qual: op.qual };
      }
      default: // VMXOFF, VMLAUNCH, VMRESUME: the instruction information is undefined
        cpu.movSsBlocking = r.chance(0.25);
        return { insn, cpu, info: r.chance(0.5) ? r.u32() : 0, qual: 0n };
    }
  }
  private vmrw(insn: 'VMREAD' | 'VMWRITE', cpu: Cpu, enc: bigint): Case {
    const r = this.rng;
    const long = modeOf(cpu) === 'long';
    const nregs = long ? 16 : 8;
    const reg1 = r.int(nregs), reg2 = r.int(nregs);
    // Bits 63:32 of the encoding: ignored outside 64-bit mode, no field in it.
    cpu.gpr[reg2] = enc | (r.chance(long ? 0.08 : 0.5) ? BigInt(1 + r.int(0xffffffff)) << 32n : 0n);
    if (insn === 'VMWRITE') {
      cpu.gpr[reg1] = enc === BigInt(V.PIN_BASED_VM_EXEC_CONTROL) && r.chance(0.5) ? this.badPin() : this.value();
      if (this.o.fieldExists(Number(enc))) this.recent = [Number(enc), ...this.recent.slice(0, 5)];
    }
    if (r.chance(0.5)) { // register operand: the memory fields are undefined (Table 28-14)
      const undef = r.chance(0.5) ? r.u32() & 0x0ffffb87 : 0;
      return { insn, cpu, info: (undef | 1 << 10 | reg1 << 3 | reg2 << 28) >>> 0, qual: 0n };
    }
    const len = long ? 8 : 4;
    const op = memOperand(r, cpu, len);
    this.place(op, len, insn === 'VMWRITE' ? this.value() : undefined);
    // Reg1 is undefined for memory operands; Reg2 may be a register the address uses.
    const info = (op.info & 0x0ffffb87) | (r.chance(0.5) ? r.int(16) << 3 : 0) | reg2 << 28;
    cpu.gpr[reg2] = r.chance(0.9) ? cpu.gpr[reg2] : enc; // usually keep the address, sometimes the encoding
    return { insn, cpu, info: info >>> 0, qual: op.qual };
  }
  // An INVVPID descriptor (Figure 31-2): VPID in bits 15:0, bits 63:16
  // reserved, the linear address in 127:64. Mostly well formed with a VPID
  // that is not 0; else VPID 0, reserved bits set, and addresses on both
  // sides of the canonical boundary of the linear-address width.
  private vpidDescriptor(): bigint {
    const r = this.rng;
    const half = 1n << BigInt(this.o.caps.linearBits - 1); // the lowest non-canonical address
    const vpid = r.weighted<() => bigint>([[() => BigInt(1 + r.int(0xffff)), 70], [() => 0n, 20], [() => 0xffffn, 5], [() => 1n, 5]])();
    const low = r.weighted<() => bigint>([[() => vpid, 80],
      [() => vpid | 1n << BigInt(16 + r.int(48)), 12], [() => r.u64(), 8]])();
    const addr = r.weighted<() => bigint>([
      [() => BigInt(r.u32()), 30], // canonical, low
      [() => (M64 << BigInt(this.o.caps.linearBits - 1) & M64) | (r.u64() & (half - 1n)), 15], // canonical, high half
      [() => r.pick([half - 1n, half, M64 - half + 1n, M64 - half, 0n, M64]), 15], // the boundaries
      [() => half | (r.u64() & (half - 1n)), 10], // non-canonical: bit 47 set, 63:48 clear
      [() => 1n << BigInt(this.o.caps.linearBits + r.int(64 - this.o.caps.linearBits)), 10], // a high bit alone
      [() => r.u64(), 20],
    ])();
    return addr << 64n | low;
  }
  // An EPT pointer for an INVEPT descriptor: mostly ones VM entry accepts
  // (UC or WB, 4-level walk), or one with exactly one thing wrong (27.2.1.1).
  private eptp(): bigint {
    const r = this.rng;
    const page = BigInt(r.int(1 << 20)) << 12n & ((1n << BigInt(this.o.caps.physBits)) - 1n);
    const good = page | (3n << 3n) | (r.chance(0.5) ? 6n : 0n);
    return r.weighted<() => bigint>([
      [() => good, 40],
      [() => (good & ~7n) | BigInt(r.pick([1, 2, 3, 4, 5, 7])), 8], // memory type
      [() => (good & ~0x38n) | BigInt(r.pick([0, 1, 2, 4, 5, 6, 7])) << 3n, 8], // page-walk length
      [() => good | 0x40n, 5], // accessed/dirty flags
      [() => good | 1n << BigInt(7 + r.int(5)), 5], // bits 11:7
      [() => good | 1n << BigInt(this.o.caps.physBits + r.int(64 - this.o.caps.physBits)), 5], // beyond MAXPHYADDR
      [() => r.u64(), 5],
    ])();
  }
  private badPin(): bigint {
    const free = [...Array(32).keys()].filter((b) => ((this.o.caps.pin1 >>> b) & 1) === 0);
    return BigInt((this.rng.u32() | 1 << this.rng.pick(free)) >>> 0);
  }

  // The next case: one the oracle can predict. A VMPTRLD of a region not
  // yet VMCLEARed becomes its VMCLEAR; a VMLAUNCH/VMRESUME that would reach
  // the checks of a VMCS the oracle does not know is preceded by a VMWRITE
  // of invalid pin-based controls (27.2.1.1).
  next(): Case {
    if (this.queue.length) return this.queue.shift()!;
    for (let tries = 0; tries < 200; tries++) {
      const c = this.draw();
      try {
        this.o.predict(c);
        return c;
      } catch (e) {
        if (!(e instanceof Unmodelled)) throw e;
        if (e.kind === 'uninitialised') {
          const clear = { ...c, insn: 'VMCLEAR' as Insn };
          try { this.o.predict(clear); return clear; } catch (x) { if (!(x instanceof Unmodelled)) throw x; }
        } else if (e.kind === 'pin') {
          const cpu = { ...c.cpu, gpr: [...c.cpu.gpr], movSsBlocking: false };
          const reg1 = this.rng.int(8), reg2 = (reg1 + 1 + this.rng.int(7)) % 8;
          cpu.gpr[reg1] = this.badPin();
          cpu.gpr[reg2] = BigInt(V.PIN_BASED_VM_EXEC_CONTROL);
          this.queue.push(c);
          return { insn: 'VMWRITE', cpu, info: (1 << 10 | reg1 << 3 | reg2 << 28) >>> 0, qual: 0n };
        }
      }
    }
    throw new Error('no predictable case in 200 draws');
  }
}

// ---- playing a case and judging it ------------------------------------------------
const EVENT: Record<number, bigint> = { [UD]: 0x80000306n, [SS]: 0x80000b0cn, [GP]: 0x80000b0dn, [PF]: 0x80000b0en };
const FLAGS = { succeed: 0n, failInvalid: 1n, failValid: 0x40n };
const CR2_SLOT = 16;
const REASON: Record<Insn, number> = {
  VMXON: V.EXIT_REASON_VMXON, VMXOFF: V.EXIT_REASON_VMXOFF, VMCLEAR: V.EXIT_REASON_VMCLEAR, VMPTRLD: V.EXIT_REASON_VMPTRLD,
  VMPTRST: V.EXIT_REASON_VMPTRST, VMREAD: V.EXIT_REASON_VMREAD, VMWRITE: V.EXIT_REASON_VMWRITE, VMLAUNCH: V.EXIT_REASON_VMLAUNCH,
  VMRESUME: V.EXIT_REASON_VMRESUME, INVEPT: V.EXIT_REASON_INVEPT, INVVPID: V.EXIT_REASON_INVVPID,
};
const SEG_FIELDS = [ES, CS, SSEG, DS, FS, GS].map((s) => [V.GUEST_ES_BASE, V.GUEST_ES_LIMIT, V.GUEST_ES_ACCESS_RIGHTS].map((f) => f + 2 * s));

function exitOf(p: Planned, cpu: Cpu, reason: number, info: number, qual: bigint): Step['exit'] {
  const fields: Record<number, bigint> = {
    [V.VM_EXIT_INSTRUCTION_INFO]: BigInt(info), [V.GUEST_RFLAGS]: cpu.rflags, [V.GUEST_RIP]: p.rip, [V.GUEST_RSP]: cpu.gpr[4],
    // L1's view of CR0/CR4 is the read shadow for the bits L0 owns (NE, VMXE).
    [V.GUEST_CR0]: cpu.cr0 | CR0_NE, [V.CR0_READ_SHADOW]: cpu.cr0, [V.GUEST_CR4]: cpu.cr4 | CR4_VMXE, [V.CR4_READ_SHADOW]: cpu.cr4,
    [V.GUEST_CR3]: cpu.cr3, [V.GUEST_IA32_EFER]: cpu.efer, [V.GUEST_INTERRUPTIBILITY_STATE]: BigInt(p.intr),
  };
  cpu.segs.forEach((s, i) => { fields[SEG_FIELDS[i][0]] = s.base; fields[SEG_FIELDS[i][1]] = s.limit; fields[SEG_FIELDS[i][2]] = BigInt(s.ar); });
  const regs: Record<number, bigint> = { [CR2_SLOT]: p.cr2 };
  cpu.gpr.forEach((v, i) => { if (i !== 4) regs[i] = v; });
  return { reason, qual, len: p.len, regs, fields };
}

interface Observed { event: bigint; code: bigint; rip: bigint; rflags: bigint; cr2: bigint; intr: number; gpr: bigint[] }
function observe(m: Machine): Observed {
  return {
    event: injected(m), code: m.vmx.field(V.VM_ENTRY_EXCEPTION_ERROR_CODE), rip: m.vmx.field(V.GUEST_RIP),
    rflags: m.vmx.field(V.GUEST_RFLAGS), cr2: m.guestReg(CR2_SLOT), intr: Number(m.vmx.field(V.GUEST_INTERRUPTIBILITY_STATE)),
    gpr: Array.from({ length: 16 }, (_, i) => (i === 4 ? m.vmx.field(V.GUEST_RSP) : m.guestReg(i))),
  };
}
const leBytes = (b: Uint8Array) => b.reduceRight((a, x) => (a << 8n) | BigInt(x), 0n);

// Does what happened match outcome o? null, or why not. `value` gets the
// value the instruction wrote (register or memory), for the oracle to learn.
function judge(m: Machine, mem: Mem, p: Planned, o: Outcome, obs: Observed, out: { value?: bigint }): string | null {
  const c = p.c!;
  const long = modeOf(c.cpu) === 'long';
  if (o.fault) {
    const want = EVENT[o.fault.vector];
    if (obs.event !== want) return `event ${hex(obs.event)}, not ${hex(want)}`;
    if (o.fault.code !== undefined && obs.code !== BigInt(o.fault.code)) return `error code ${hex(obs.code)}`;
    if (obs.rip !== p.rip) return `RIP ${hex(obs.rip)} moved (not completed: ${hex(p.rip)})`;
    if (obs.rflags !== c.cpu.rflags) return `RFLAGS ${hex(obs.rflags)} changed from ${hex(c.cpu.rflags)}`;
    const cr2 = o.fault.vector === PF ? o.fault.cr2! : p.cr2;
    if (obs.cr2 !== cr2) return `CR2 ${hex(obs.cr2)}, not ${hex(cr2)}`;
  } else {
    if (obs.event !== 0n) return `event ${hex(obs.event)} injected`;
    if (obs.rip !== p.rip + BigInt(p.len)) return `RIP ${hex(obs.rip)}, not past the instruction`;
    const rf = (c.cpu.rflags & ~ARITH) | FLAGS[o.flags!];
    if (obs.rflags !== rf) return `RFLAGS ${hex(obs.rflags)}, not ${hex(rf)}`;
    if (obs.cr2 !== p.cr2) return `CR2 changed to ${hex(obs.cr2)}`;
    if ((obs.intr & 3) !== 0) return `blocking by STI/MOV SS ${obs.intr & 3} still set after the instruction`;
  }
  for (let i = 0; i < 16; i++) {
    if (o.reg && o.reg.n === i) {
      const v = obs.gpr[i] & (long ? M64 : M32); // outside 64-bit mode bits 63:32 are not architectural
      if ((v & o.reg.mask) !== (o.reg.value & o.reg.mask)) return `register ${i} = ${hex(v)}, want ${hex(o.reg.value)} (known bits ${hex(o.reg.mask)})`;
      out.value = v;
    } else if (obs.gpr[i] !== c.cpu.gpr[i]) return `register ${i} changed: ${hex(c.cpu.gpr[i])} -> ${hex(obs.gpr[i])}`;
  }
  // Memory: what the instruction wrote, and nothing else in the scratch area.
  const written = new Set<number>();
  if (o.mem) {
    const bytes: number[] = [];
    for (const pc of o.mem.pieces) for (let i = 0; i < pc.n; i++) { written.add(Number(pc.gpa) + i); bytes.push(...mem.live(m, Number(pc.gpa) + i, 1)); }
    const v = leBytes(Uint8Array.from(bytes));
    const size = (1n << BigInt(8 * bytes.length)) - 1n;
    if ((v & o.mem.mask & size) !== (o.mem.value & o.mem.mask & size)) return `memory ${hex(o.mem.pieces[0].gpa)} = ${hex(v)}, want ${hex(o.mem.value)} (known bits ${hex(o.mem.mask)})`;
    out.value = v;
  }
  for (let pg = SCRATCH; pg < SCRATCH_END; pg += 4096) {
    const live = m.phys.read(mem.hpa(m, pg), 4096), mirror = mem.pages.get(pg >>> 12)!;
    for (let i = 0; i < 4096; i++) {
      if (live[i] !== mirror[i] && !written.has(pg + i)) return `scratch byte ${hex(pg + i)} changed ${mirror[i]} -> ${live[i]}`;
    }
  }
  return null;
}

function describe(p: Planned): string {
  if (p.wrmsr !== undefined) return `WRMSR IA32_FEATURE_CONTROL := ${hex(p.wrmsr)}`;
  const c = p.c!, cpu = c.cpu, info = c.info;
  const parts = [`${c.insn} mode=${modeOf(cpu)} cpl=${cplOf(cpu)} cr0=${hex(cpu.cr0)} cr4=${hex(cpu.cr4)} efer=${hex(cpu.efer)}`,
    `info=${hex(info)} qual=${hex(c.qual)} rip=${hex(p.rip)} len=${p.len}`];
  if (c.insn === 'INVEPT' || c.insn === 'INVVPID') parts.push(`reg2(type)=r${info >>> 28}=${hex(cpu.gpr[info >>> 28])}`);
  if (c.insn === 'VMREAD' || c.insn === 'VMWRITE') {
    parts.push(`reg2(enc)=r${info >>> 28}=${hex(cpu.gpr[info >>> 28])}`);
    if (info & 1 << 10) parts.push(`reg1=r${(info >>> 3) & 15}=${hex(cpu.gpr[(info >>> 3) & 15])}`);
  }
  if (!['VMXOFF', 'VMLAUNCH', 'VMRESUME'].includes(c.insn) && !(info & 1 << 10)) {
    const seg = (info >>> 15) & 7, s = cpu.segs[seg] ?? { base: 0n, limit: 0n, ar: 0 };
    parts.push(`asize=${16 << ((info >>> 7) & 7)} seg=${'ECSDFG??'[seg]}S(base=${hex(s.base)} limit=${hex(s.limit)} ar=${hex(s.ar)})`,
      info & 1 << 27 ? 'no base' : `base=r${(info >>> 23) & 15}=${hex(cpu.gpr[(info >>> 23) & 15])}`,
      info & 1 << 22 ? 'no index' : `index=r${(info >>> 18) & 15}=${hex(cpu.gpr[(info >>> 18) & 15])}*${1 << (info & 3)}`);
  }
  if (cpu.movSsBlocking) parts.push('blocking by MOV SS');
  return parts.join(', ');
}

// ---- runs ----------------------------------------------------------------------------
interface FieldReport { said: boolean; first: string }
interface Tally { cases: number; outcomes: Map<string, number>; problems: string[]; fields: Map<number, FieldReport>; invvpid: Map<string, number> }
const newTally = (): Tally => ({ cases: 0, outcomes: new Map(), problems: [], fields: new Map(), invvpid: new Map() });
// Why an INVVPID ended as it did (31.3 INVVPID), from the oracle's words.
function invvpidReason(what: string): string {
  if (/does not exist/.test(what)) return 'VMfail: type > 3';
  if (/not supported/.test(what)) return 'VMfail: type not in IA32_VMX_EPT_VPID_CAP';
  if (/63:16/.test(what)) return 'VMfail: descriptor bits 63:16';
  if (/VPID 0$|VPID 0\)/.test(what)) return 'VMfail: VPID 0';
  if (/not canonical/.test(what)) return 'VMfail: linear address not canonical';
  const ok = /^VMsucceed \(INVVPID ([a-z-]+)/.exec(what);
  if (ok) return `VMsucceed: ${ok[1]}`;
  return what.replace(/ \(.*$/, '').replace(/ at 0x.*$/, '');
}
const count = (t: Tally, key: string) => t.outcomes.set(key, (t.outcomes.get(key) ?? 0) + 1);
class StopRun extends Error {}

interface RunOpts { machine?: () => Machine; invvpidWeight?: number }
function runOnce(caps: Caps, runSeed: number, tag: string, cases: number, tally: Tally, script?: ((o: VmxOracle, mem: Mem) => Case | null) | null,
  opts: RunOpts = {}): void {
  const rng = new Rng(runSeed);
  const mem = new Mem();
  const o = new VmxOracle(caps, {
    read: (g, n) => mem.read(g, n), scratch: (g, n) => g >= SCRATCH && g + BigInt(n) <= SCRATCH_END, vmcsPage: (g) => VMCS_PAGES.includes(g),
  });
  const gen = new Generator(rng, o, mem, FIELD_ENCODINGS.filter((e) => caps.fieldExists(e)), FIELD_ENCODINGS.filter((e) => !caps.fieldExists(e)));
  if (opts.invvpidWeight !== undefined) gen.invvpidWeight = opts.invvpidWeight;
  setupMemory(mem, rng, caps.revision);
  const steps: Step[] = [];
  let issued = 0, vmxCases = 0;
  let current = '(set-up)';
  const fail = (k: number, msg: string) => { tally.problems.push(`${tag} case ${k}: ${msg}`); throw new StopRun(); };

  const plan = (): Planned => {
    const r = rng;
    const p = { rip: r.chance(0.5) ? BigInt(0x100000 + r.int(0x100000)) : BigInt(r.u32() & 0x7fffffff), len: 3 + r.int(13),
      cr2: junk(r), intr: r.weighted([[0, 8], [1, 1], [2, 1]]) };
    // IA32_FEATURE_CONTROL starts unlocked (0): lock it sooner or later,
    // rarely without "VMX outside SMX"; once locked, rarely try again.
    const unlocked = (o.featureControl & 1n) === 0n;
    if (script ? unlocked : r.chance(unlocked ? (issued === 0 ? 0.85 : 0.15) : 0.01)) {
      return { ...p, len: 2, wrmsr: script ? 5n : r.weighted([[5n, 12], [1n, 1], [4n, 2]]) };
    }
    const c = script ? script(o, mem) : gen.next();
    if (!c) throw new Error('script ended early');
    vmxCases++;
    return { ...p, c, intr: c.cpu.movSsBlocking ? 2 : p.intr & 1 };
  };
  const push = () => {
    const p = plan();
    const k = issued++;
    const cpu = p.c?.cpu ?? makeCpu(rng, rng.pick<Ctx>(['long', 'prot']), 0);
    const exit = exitOf(p, cpu, p.c ? REASON[p.c.insn] : V.EXIT_REASON_WRMSR, p.c?.info ?? 0, p.c?.qual ?? 0n);
    if (p.wrmsr !== undefined) Object.assign(exit.regs!, { [RCX]: BigInt(V.MSR_IA32_FEATURE_CONTROL), [RAX]: p.wrmsr, [RDX]: 0n });
    steps.push({ exit, before: (m) => { mem.flush(m); current = `case ${k}: ${describe(p)}`; },
      check: (m) => { check(m, p, k); if (vmxCases < cases) push(); } });
  };
  const check = (m: Machine, p: Planned, k: number) => {
    const obs = observe(m);
    if (p.wrmsr !== undefined) {
      // WRMSR to IA32_FEATURE_CONTROL: #GP once the lock bit is set.
      const locked = (o.featureControl & 1n) !== 0n;
      if (obs.event !== (locked ? EVENT[GP] : 0n) || obs.rip !== p.rip + (locked ? 0n : 2n)) {
        fail(k, `${describe(p)}: expected ${locked ? '#GP (locked)' : 'completion'}, got event ${hex(obs.event)} rip ${hex(obs.rip)}`);
      }
      if (!locked) o.featureControl = p.wrmsr!;
      return;
    }
    const c = p.c!;
    tally.cases++;
    const match = (alts: Outcome[]) => {
      for (const alt of alts) {
        const out: { value?: bigint } = {};
        if (judge(m, mem, p, alt, obs, out) === null) return { alt, out };
      }
      return null;
    };
    const alts = o.predict(c);
    let hit = match(alts);
    const raw = c.cpu.gpr[c.info >>> 28] & (modeOf(c.cpu) === 'long' ? M64 : M32);
    if (!hit && (c.insn === 'VMREAD' || c.insn === 'VMWRITE') && o.current !== null && raw <= M32) {
      // Does the kernel disagree only on whether the component exists?
      // Report it once, take the kernel's answer for this encoding, go on.
      const enc = Number(raw), said = o.fieldExists(enc);
      o.existence.set(enc, !said);
      let unchecked = false;
      try { hit = match(o.predict(c)); } catch (e) { if (!(e instanceof Unmodelled)) throw e; unchecked = true; }
      if (hit || unchecked) {
        const what = hit ? hit.alt.what : 'an access outside the test\'s memory (run stopped)';
        if (!tally.fields.has(enc)) tally.fields.set(enc, { said, first: `${tag} case ${k}: ${describe(p)}: kernel ${what}` });
        if (unchecked) throw new StopRun();
      } else o.existence.delete(enc);
    }
    if (!hit) {
      const why = alts.map((a) => `    ${a.what}: ${judge(m, mem, p, a, obs, {})}`).join('\n');
      fail(k, `${describe(p)}\n  kernel: event ${hex(obs.event)} code ${hex(obs.code)} rip ${hex(obs.rip)} rflags ${hex(obs.rflags)}\n  SDM allows:\n${why}`);
      return;
    }
    if (TRACE) console.log(`${tag} case ${k}: ${describe(p)} -> ${hit.alt.what}`);
    count(tally, `${c.insn} ${hit.alt.what.replace(/ \(.*$/, '').replace(/ at 0x.*$/, '')}`);
    if (c.insn === 'INVVPID') tally.invvpid.set(invvpidReason(hit.alt.what), (tally.invvpid.get(invvpidReason(hit.alt.what)) ?? 0) + 1);
    coverage(o, c, hit.alt, tally);
    hit.alt.commit(hit.out.value);
    gen.lastFailValid = hit.alt.flags === 'failValid';
    // The bytes the instruction wrote are now the test's view of memory too.
    if (hit.alt.mem) for (const pc of hit.alt.mem.pieces) mem.stage(Number(pc.gpa), mem.live(m, Number(pc.gpa), pc.n));
  };

  push();
  let r;
  try {
    r = play(steps, `nested=on mem=${RAM / MiB}M`, { machine: opts.machine?.() });
  } catch (e) {
    if (e instanceof StopRun) return;
    tally.problems.push(`${tag}: harness or oracle error at ${current}: ${(e as Error).stack}`);
    return;
  }
  if (r.status !== 0 || r.faults.length || r.trap) {
    tally.problems.push(`${tag}: the run ended with status ${r.status}${r.trap ? ` (trap: ${r.trap})` : ''}${r.faults.length ? ` (machine fault: ${r.faults.join('; ')})` : ''} ` +
      `during ${current}\n${r.console.split('\n').filter((l) => /trap|abort|guest:|ended|stop/.test(l)).slice(-10).join('\n')}`);
  }
}

// What the completed memory operands exercised (printed, so a change that
// starves a form shows).
function coverage(o: VmxOracle, c: Case, hit: Outcome, t: Tally): void {
  const memForm = !(c.info & 1 << 10) && !['VMXOFF', 'VMLAUNCH', 'VMRESUME', 'INVEPT', 'INVVPID'].includes(c.insn);
  const accessed = c.insn === 'VMCLEAR' || c.insn === 'VMPTRLD' || c.insn === 'VMPTRST' || (c.insn === 'VMXON' && !o.vmxOn) || hit.flags === 'succeed';
  if (!memForm || hit.fault || !accessed) return;
  const long = modeOf(c.cpu) === 'long', seg = (c.info >>> 15) & 7, s = c.cpu.segs[seg];
  const len = c.insn === 'VMREAD' || c.insn === 'VMWRITE' ? (long ? 8 : 4) : 8;
  const a = o.access(c, len, c.insn === 'VMPTRST' || c.insn === 'VMREAD').find((x) => 'pieces' in x) as { pieces: unknown[] };
  const keys = [`${modeOf(c.cpu)}/${16 << ((c.info >>> 7) & 7)}-bit address`];
  if (!long && s.base !== 0n) keys.push('segment base');
  if (!long && (s.ar & 0x1c) === 0x14) keys.push('expand-down');
  if (long && (seg === FS || seg === GS) && s.base !== 0n) keys.push('FS/GS base');
  if (a.pieces.length === 2) keys.push('split across pages');
  if (c.info & 1 << 27 && c.info & 1 << 22) keys.push('displacement only');
  if (!(c.info & 1 << 22) && c.info & 3) keys.push('scaled index');
  if (!(c.info & 1 << 27) && ((c.info >>> 23) & 15) === 4) keys.push('RSP base');
  for (const k of keys) count(t, `~${k}`);
}

const caps = probe();

function report(tally: Tally, t0: number, what: string, details = 3): void {
  const list = (pre: boolean) => [...tally.outcomes].filter(([k]) => k.startsWith('~') === pre).sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${pre ? k.slice(1) : k}`).join(', ');
  const inv = [...tally.invvpid].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', ');
  console.log(`nested-random: ${what}: ${tally.cases} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s\n  outcomes: ${list(false)}` +
    (list(true) ? `\n  completed memory operands: ${list(true)}` : '') + (inv ? `\n  INVVPID: ${inv}` : ''));
  const fields = [...tally.fields].sort((a, b) => a[0] - b[0]);
  const lines = [...tally.problems];
  if (fields.length) {
    const names = (said: boolean) => fields.filter(([, f]) => f.said === said).map(([e]) => `${hex(e)} ${fieldName(e)}`).join(', ');
    lines.unshift(`VMCS components whose existence differs from SDM Vol. 3D Appendix B for the capabilities L1 is offered ` +
      `(VMREAD/VMWRITE must fail with VMfailValid(12) exactly for the components that do not exist):\n` +
      (names(false) ? `  the kernel accepts ${names(false)}\n` : '') + (names(true) ? `  the kernel refuses ${names(true)}\n` : '') +
      fields.slice(0, details).map(([, f]) => `  e.g. ${f.first}`).join('\n'));
  }
  if (lines.length) console.error(`\nnested-random: disagreements with the SDM (SEED=${SEED}):\n\n${lines.join('\n\n')}\n`);
  assert.ok(!lines.length, `${tally.problems.length} case(s) and ${fields.length} VMCS component(s) disagree with the SDM ` +
    `(printed above); replay with SEED=${SEED}`);
}

test(`random VMX instructions, operands, modes and orders against the SDM oracle (SEED=${SEED})`, () => {
  // EPT and VPID are offered (issue 5), so INVEPT and INVVPID exist for L1
  // (A.10 bits 20 and 32), with every INVVPID type (bits 40-43).
  assert.ok(caps.invept, 'INVEPT offered to L1 (IA32_VMX_EPT_VPID_CAP bit 20 with "enable EPT" allowed)');
  assert.ok(caps.invvpid, 'INVVPID offered to L1 (IA32_VMX_EPT_VPID_CAP bit 32 with "enable VPID" allowed)');
  assert.is((caps.eptVpidCap >> 40n) & 0xfn, 0xfn, 'INVVPID types 0-3 offered (A.10 bits 40-43)');
  assert.is(caps.linearBits, 48, 'CPUID.80000008H:EAX[15:8] as L1 reads it');
  const tally = newTally();
  const t0 = Date.now();
  for (let run = 0; run < RUNS; run++) {
    if (ONLY_RUN !== undefined && run !== ONLY_RUN) continue;
    runOnce(caps, (SEED ^ Math.imul(run + 1, 0x9e3779b1)) >>> 0, `SEED=${SEED} RUN=${run}`, CASES_PER_RUN, tally);
  }
  // Every run must get somewhere: most cases are played, not lost to an early stop.
  if (ONLY_RUN === undefined && !tally.problems.length) {
    assert.ok(tally.cases > RUNS * CASES_PER_RUN * 0.9, `only ${tally.cases} cases played`);
    // INVEPT reaches each of its outcomes (31.3).
    for (const k of ['INVEPT VMsucceed', 'INVEPT VMfailValid(28)', 'INVEPT VMfailInvalid', 'INVEPT #GP(0)', 'INVEPT #UD']) {
      assert.ok((tally.outcomes.get(k) ?? 0) >= 3, `${k}: ${tally.outcomes.get(k) ?? 0} cases`);
    }
    assert.ok([...tally.outcomes.keys()].some((k) => /^INVEPT #PF/.test(k)), 'INVEPT #PF');
    // INVVPID reaches each of its outcomes (31.3), each VMfail(28) for each of
    // its reasons and VMsucceed for each type.
    for (const k of ['INVVPID VMsucceed', 'INVVPID VMfailValid(28)', 'INVVPID VMfailInvalid', 'INVVPID #GP(0)', 'INVVPID #UD']) {
      assert.ok((tally.outcomes.get(k) ?? 0) >= 3, `${k}: ${tally.outcomes.get(k) ?? 0} cases`);
    }
    assert.ok([...tally.outcomes.keys()].some((k) => /^INVVPID #PF/.test(k)), 'INVVPID #PF');
    for (const k of ['VMfail: type > 3', 'VMfail: descriptor bits 63:16', 'VMfail: VPID 0', 'VMfail: linear address not canonical',
      'VMsucceed: individual-address', 'VMsucceed: single-context', 'VMsucceed: all-context', 'VMsucceed: single-context-retaining-globals']) {
      assert.ok((tally.invvpid.get(k) ?? 0) >= 3, `INVVPID ${k}: ${tally.invvpid.get(k) ?? 0} cases`);
    }
  }
  report(tally, t0, 'random runs');
});

// A processor that supports only single-context and all-context INVVPID
// (IA32_VMX_EPT_VPID_CAP bits 40 and 43 clear): L1 is offered those two,
// and INVVPID of type 0 or 3 is VMfail(28) before the descriptor is read.
const PARTIAL_CAP = 0x00000f0106334141n & ~((1n << 40n) | (1n << 43n));
const partialMachine = () => tigerlake({ msrs: { [V.MSR_IA32_VMX_EPT_VPID_CAP]: PARTIAL_CAP } });
const PARTIAL_RUNS = 12;
test(`random INVVPID-heavy runs on a processor with only some INVVPID types (SEED=${SEED})`, () => {
  const pc = probe(partialMachine);
  assert.ok(pc.invvpid, 'INVVPID offered');
  assert.is((pc.eptVpidCap >> 40n) & 0xfn, 0x6n, 'only INVVPID types 1 and 2 offered (A.10 bits 41, 42)');
  const tally = newTally();
  const t0 = Date.now();
  for (let run = 0; run < PARTIAL_RUNS; run++) {
    if (ONLY_RUN !== undefined && run !== ONLY_RUN) continue;
    runOnce(pc, (SEED ^ Math.imul(run + 101, 0x9e3779b1)) >>> 0, `SEED=${SEED} partial RUN=${run}`, CASES_PER_RUN, tally, null,
      { machine: partialMachine, invvpidWeight: 40 });
  }
  if (ONLY_RUN === undefined && !tally.problems.length) {
    for (const k of ['VMfail: type not in IA32_VMX_EPT_VPID_CAP', 'VMfail: type > 3', 'VMsucceed: single-context', 'VMsucceed: all-context']) {
      assert.ok((tally.invvpid.get(k) ?? 0) >= 3, `INVVPID ${k}: ${tally.invvpid.get(k) ?? 0} cases`);
    }
  }
  report(tally, t0, 'partial INVVPID types');
});

// Each encoding of Appendix B (full and high), VMWRITE then VMREAD in
// 64-bit mode: the complete list of components whose existence differs.
test('every Appendix B encoding: VMWRITE and VMREAD exist exactly for the features L1 is offered', () => {
  const encs = FIELD_ENCODINGS.flatMap((e) => (((e >>> 13) & 3) === 1 ? [e, e | 1] : [e]));
  const rng = new Rng(SEED);
  const tally = newTally();
  let i = 0;
  const ptrOp = (insn: Insn, ptr: number, mem: Mem): Case => {
    const cpu = makeCpu(rng, 'long', 0);
    cpu.gpr[RBX] = BigInt(SCRATCH);
    mem.stageInt(SCRATCH, BigInt(ptr), 8);
    return { insn, cpu, info: (2 << 7 | DS << 15 | 1 << 22 | RBX << 23) >>> 0, qual: 0n };
  };
  const rw = (insn: Insn, enc: number): Case => {
    const cpu = makeCpu(rng, 'long', 0);
    cpu.gpr[RCX] = BigInt(enc);
    cpu.gpr[RDX] = 0x0123456789abcdefn ^ BigInt(enc);
    return { insn, cpu, info: (1 << 10 | RDX << 3 | RCX << 28) >>> 0, qual: 0n };
  };
  const script = (_o: VmxOracle, mem: Mem): Case | null => {
    const k = i++;
    if (k === 0) return ptrOp('VMXON', X1, mem);
    if (k === 1) return ptrOp('VMCLEAR', VA, mem);
    if (k === 2) return ptrOp('VMPTRLD', VA, mem);
    const j = k - 3;
    if (j >= 2 * encs.length) return null;
    return rw(j % 2 === 0 ? 'VMWRITE' : 'VMREAD', encs[j >> 1]);
  };
  const t0 = Date.now();
  runOnce(caps, SEED, 'Appendix B sweep', 3 + 2 * encs.length, tally, script);
  if (!tally.problems.length) assert.is(tally.cases, 3 + 2 * encs.length, 'every encoding played');
  report(tally, t0, 'Appendix B sweep', 0);
});

test.run();
