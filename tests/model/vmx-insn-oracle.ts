// An oracle for the outcome of a VMX instruction executed by a guest
// hypervisor (L1), written from the SDM and sharing nothing with the kernel:
// given L1's processor state at the instruction (the VM exit's instruction
// information and qualification, registers, control registers, segments)
// and the oracle's own record of L1's VMX state (in VMX operation, VMXON
// pointer, current-VMCS pointer, each VMCS's launch state and the field
// values written or already seen), `predict` lists every outcome the SDM
// permits; `commit` of the outcome that happened updates the record.
//
//   SDM Vol. 3C 31.2  conventions: VMsucceed (CF=PF=AF=ZF=SF=OF=0),
//                     VMfailInvalid (CF=1), VMfailValid(n) (ZF=1, the
//                     VM-instruction error field of the current VMCS := n),
//                     VMfail(n) = VMfailValid(n) with a current VMCS, else
//                     VMfailInvalid; an exception leaves the instruction
//                     not completed (RIP and RFLAGS unchanged)
//   SDM Vol. 3C 31.3  the Operation section of each instruction: the order
//                     of the checks below follows it line by line
//   SDM Vol. 3C 31.4  VM-instruction error numbers
//   SDM Vol. 3C 27.2.1.1 the EPT-pointer checks of VM entry, which INVEPT
//                     single-context applies to its descriptor's EPTP
//                     (tests/model/entry-checks.ts eptpProblem)
//   SDM Vol. 3C 31.3 INVVPID: the type from IA32_VMX_EPT_VPID_CAP bits
//                     40-43, the descriptor's reserved bits 63:16, VPID
//                     0000H, and the canonical linear address of
//                     individual-address invalidation (the processor's
//                     linear-address width, CPUID.80000008H:EAX[15:8])
//   SDM Vol. 3C 28.2.5 instruction information (Tables 28-9, 28-13, 28-14),
//                     28.2.1 exit qualification = displacement
//   SDM Vol. 3A 3.4.5, 5.3 (segment type and limit checks), 3.4.4 (64-bit
//                     mode: only FS/GS bases, canonical addresses), 4.3 and
//                     4.5 (32-bit and 4-level paging), 4.6 (access rights),
//                     4.7 (#PF error code)
//
// Where the SDM allows more than one outcome, all are listed: which page of
// a split access faults first; whether a VMWRITE reads its memory source
// before or after the checks that need no value; the type checks of CS in
// 64-bit mode; VMCLEAR/VMPTRLD of a pointer to no memory (nothing there:
// error 2 or success / error 9 or, reading all ones, 11); and VM entry with
// invalid controls, which may report the host-state error first (27.2: the
// checks "may be performed in any order").
//
// A case the SDM leaves undefined (an uninitialised VMCS region given to
// VMPTRLD, VMCLEAR of memory the test uses for something else, an access to
// memory whose contents the test does not know, ...) throws Unmodelled: the
// generator draws another case.

import { lookupField, type VmxCaps } from './vmcs-fields.ts';
import { eptpProblem, canonical } from './entry-checks.ts';

export type Insn = 'VMXON' | 'VMXOFF' | 'VMCLEAR' | 'VMPTRLD' | 'VMPTRST' | 'VMREAD' | 'VMWRITE' |
  'VMLAUNCH' | 'VMRESUME' | 'INVEPT' | 'INVVPID';

export interface Seg { base: bigint; limit: bigint; ar: number }
export interface Cpu {
  cr0: bigint; cr3: bigint; cr4: bigint; efer: bigint; rflags: bigint;
  segs: Seg[]; // ES, CS, SS, DS, FS, GS (the instruction-information numbering)
  gpr: bigint[]; // RAX..R15 by hardware number; [4] is RSP
  movSsBlocking: boolean;
}
export interface Case { insn: Insn; cpu: Cpu; info: number; qual: bigint }

export interface Caps {
  revision: number; // IA32_VMX_BASIC[30:0]
  physBits: number; // CPUID.80000008H:EAX[7:0]
  linearBits: number; // CPUID.80000008H:EAX[15:8]
  addr32: boolean; // IA32_VMX_BASIC[48]: VMXON/VMCS pointers below 4 GiB
  ramSize: bigint; // L1's RAM: guest-physical [0, ramSize)
  cr0Fixed0: bigint; cr0Fixed1: bigint; cr4Fixed0: bigint; cr4Fixed1: bigint;
  vmwriteAnyField: boolean; // IA32_VMX_MISC[29]
  shadowVmcs: boolean; // secondary control "VMCS shadowing" may be 1
  invept: boolean; invvpid: boolean; // the instructions exist for L1
  eptVpidCap: bigint; // IA32_VMX_EPT_VPID_CAP as L1 reads it (0: #GP)
  vmx: VmxCaps; // every capability MSR decoded (the EPTP checks use it)
  pin0: number; pin1: number; // pin-based controls: must-be-1, may-be-1
  fieldExists(enc: number): boolean; // SDM Vol. 3D Appendix B, for L1's capabilities
}

// L1's guest-physical memory as the test knows it: null where it does not
// know the contents. `scratch`: memory an instruction may write; `vmcsPage`:
// pages the test lets VMCLEAR make VMCSs of.
export interface Phys {
  read(gpa: bigint, n: number): Uint8Array | null;
  scratch(gpa: bigint, n: number): boolean;
  vmcsPage(gpa: bigint): boolean;
}

export const UD = 6, SS = 12, GP = 13, PF = 14;
export interface Fault { vector: number; code?: number; cr2?: bigint }
export interface Piece { gpa: bigint; n: number }
export interface Outcome {
  what: string;
  flags?: 'succeed' | 'failInvalid' | 'failValid';
  error?: number; // VMfailValid
  fault?: Fault;
  // A value written to a register or memory: the bits in `mask` must equal
  // those of `value`; the others are not known yet and are learned.
  reg?: { n: number; value: bigint; mask: bigint };
  mem?: { pieces: Piece[]; value: bigint; mask: bigint };
  commit(observed?: bigint): void;
}

export class Unmodelled extends Error {
  constructor(msg: string, readonly kind: 'pin' | 'uninitialised' | 'other' = 'other') { super(msg); }
}

const M64 = (1n << 64n) - 1n;
const M32 = 0xffffffffn;
const ALL1 = M64;
const RFLAGS_VM = 1n << 17n, RFLAGS_AC = 1n << 18n;
const CR0_PE = 1n, CR0_WP = 1n << 16n, CR0_PG = 1n << 31n;
const CR4_PSE = 1n << 4n, CR4_PAE = 1n << 5n, CR4_LA57 = 1n << 12n, CR4_VMXE = 1n << 13n, CR4_SMAP = 1n << 21n;
const EFER_LMA = 1n << 10n;
const AR_L = 1 << 13, AR_DB = 1 << 14, AR_UNUSABLE = 1 << 16;
const SEG_CS = 1, SEG_SS = 2, SEG_FS = 4, SEG_GS = 5;
const VM_INSTRUCTION_ERROR = 0x4400, PIN_BASED = 0x4000;

// 31.4 error numbers used here.
export const ERR = {
  VMCLEAR_ADDR: 2, VMCLEAR_VMXON: 3, VMLAUNCH_NONCLEAR: 4, VMRESUME_NONLAUNCHED: 5, CONTROLS: 7, HOST: 8,
  VMPTRLD_ADDR: 9, VMPTRLD_VMXON: 10, VMPTRLD_REVISION: 11, UNSUPPORTED: 12, READ_ONLY: 13, VMXON_IN_ROOT: 15,
  MOV_SS: 26, INVEPT_INVVPID: 28,
} as const;

export type Mode = 'real' | 'v86' | 'compat' | 'long' | 'prot';
export function modeOf(c: Cpu): Mode {
  if ((c.cr0 & CR0_PE) === 0n) return 'real';
  if ((c.rflags & RFLAGS_VM) !== 0n) return 'v86';
  if ((c.efer & EFER_LMA) !== 0n) return (c.segs[SEG_CS].ar & AR_L) !== 0 ? 'long' : 'compat';
  return 'prot';
}
export const cplOf = (c: Cpu): number => (c.segs[SEG_SS].ar >> 5) & 3; // SS.DPL (Vol. 3C 26.3.1.2)

// VMCS field widths from the encoding (25.11.2): 16, 64, 32, natural (64 here).
const widthOf = (enc: number): number => [16, 64, 32, 64][(enc >>> 13) & 3];
const widthMask = (w: number): bigint => (1n << BigInt(w)) - 1n;
const isHigh = (enc: number): boolean => (enc & 1) === 1;
const readOnly = (enc: number): boolean => ((enc >>> 10) & 3) === 1; // VM-exit information fields

interface Field { v: bigint; known: bigint }
interface Vmcs {
  usable: boolean; // VMCLEARed since the test set the region up or its data was lost
  active: boolean; // VMPTRLDed since its last VMCLEAR (25.1)
  launched: boolean;
  shadow: boolean;
  fields: Map<number, Field>; // full encoding -> value and the bits of it the oracle knows
}

const le = (b: Uint8Array): bigint => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
const hex = (v: bigint | number): string => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;

// The capabilities from the VMX capability MSRs as L1 reads them (null:
// RDMSR #GP) and CPUID.80000008H:EAX; which VMCS components exist follows
// from them (SDM Vol. 3D Appendix A, and Appendix B as tests/model/
// vmcs-fields.ts tabulates it).
export function capsFromMsrs(rdmsr: (msr: number) => bigint | null, cpuid80000008: bigint, ramSize: bigint): Caps {
  const get = (n: number) => rdmsr(n) ?? 0n;
  const basic = get(0x480);
  const trueCtls = ((basic >> 55n) & 1n) === 1n;
  // PINBASED, PROCBASED, EXIT, ENTRY at 0x481, 0x482, 0x483, 0x484; TRUE_* at 0x48d..0x490.
  const ctl = (i: number) => get(trueCtls ? 0x48d + i : 0x481 + i);
  const lo = (v: bigint) => Number(v & M32), hi = (v: bigint) => Number(v >> 32n);
  const proc2_1 = (hi(ctl(1)) >>> 31) & 1 ? hi(get(0x48b)) : 0;
  const eptVpidCap = get(0x48c);
  const v: VmxCaps = {
    revision: Number(basic & 0x7fffffffn), regionSize: Number((basic >> 32n) & 0x1fffn), addr32: ((basic >> 48n) & 1n) === 1n,
    trueCtls, pin0: lo(ctl(0)), pin1: hi(ctl(0)), proc0: lo(ctl(1)), proc1: hi(ctl(1)), proc2_1,
    exit0: lo(ctl(2)), exit1: hi(ctl(2)), entry0: lo(ctl(3)), entry1: hi(ctl(3)), misc: get(0x485),
    cr0Fixed0: get(0x486), cr0Fixed1: get(0x487), cr4Fixed0: get(0x488), cr4Fixed1: get(0x489),
    eptVpidCap, vmfunc: get(0x491), maxPhysAddr: Number(cpuid80000008 & 0xffn),
  };
  return {
    revision: v.revision, physBits: v.maxPhysAddr, linearBits: Number((cpuid80000008 >> 8n) & 0xffn), addr32: v.addr32, ramSize,
    cr0Fixed0: v.cr0Fixed0, cr0Fixed1: v.cr0Fixed1, cr4Fixed0: v.cr4Fixed0, cr4Fixed1: v.cr4Fixed1,
    vmwriteAnyField: ((v.misc >> 29n) & 1n) === 1n, shadowVmcs: ((proc2_1 >>> 14) & 1) === 1,
    invept: ((proc2_1 >>> 1) & 1) === 1 && ((eptVpidCap >> 20n) & 1n) === 1n, // A.10: INVEPT supported
    invvpid: ((proc2_1 >>> 5) & 1) === 1 && ((eptVpidCap >> 32n) & 1n) === 1n, // INVVPID supported
    pin0: v.pin0, pin1: v.pin1, eptVpidCap, vmx: v,
    fieldExists: (enc) => lookupField(enc, v) !== null,
  };
}

export class VmxOracle {
  vmxOn = false;
  vmxonPtr: bigint | null = null;
  current: bigint | null = null;
  featureControl = 0n; // IA32_FEATURE_CONTROL as L1 last wrote it
  readonly vmcs = new Map<bigint, Vmcs>();
  // Encodings whose existence the run decided to take from the kernel after
  // reporting the disagreement (so one wrong field does not end the run).
  readonly existence = new Map<number, boolean>();

  constructor(readonly caps: Caps, readonly phys: Phys) {}

  fieldExists(enc: number): boolean {
    return this.existence.get(enc) ?? this.caps.fieldExists(enc);
  }
  // The pin-based controls as the oracle knows them (for the generator).
  pinKnownInvalid(): boolean {
    const f = this.current === null ? undefined : this.vmcs.get(this.current)?.fields.get(PIN_BASED);
    if (!f || f.known !== M32) return false;
    const v = Number(f.v);
    return ((v & this.caps.pin0) >>> 0) !== (this.caps.pin0 >>> 0) || (v & ~this.caps.pin1) !== 0;
  }
  vmcsUsable(ptr: bigint): boolean {
    return this.vmcs.get(ptr)?.usable ?? false;
  }

  // ---- outcomes ---------------------------------------------------------
  private done(flags: 'succeed' | 'failInvalid', what: string, commit = () => {}): Outcome {
    return { what, flags, commit };
  }
  private ok(what: string, commit = () => {}): Outcome { return this.done('succeed', what, commit); }
  private failInvalid(what: string): Outcome { return this.done('failInvalid', `VMfailInvalid (${what})`); }
  // VMfail(n) (31.2): VMfailValid(n) if there is a current VMCS, whose
  // VM-instruction error field becomes n; VMfailInvalid otherwise.
  private vmfail(n: number, what: string): Outcome {
    const cur = this.current;
    if (cur === null) return this.failInvalid(what);
    return { what: `VMfailValid(${n}) (${what})`, flags: 'failValid', error: n,
      commit: () => { this.vmcs.get(cur)!.fields.set(VM_INSTRUCTION_ERROR, { v: BigInt(n), known: M32 }); } };
  }
  private fault(vector: number, what: string, code?: number, cr2?: bigint): Outcome {
    return { what, fault: { vector, code, cr2 }, commit: () => {} };
  }

  // ---- memory operands ----------------------------------------------------
  // The alternatives for an access of `len` bytes to the memory operand: a
  // fault, or the guest-physical pieces it touches (two when it crosses a
  // page). More than one alternative where the SDM does not decide.
  access(c: Case, len: number, write: boolean): ({ fault: Fault } | { pieces: Piece[] })[] {
    const { cpu, info } = c;
    const asize = (info >>> 7) & 7;
    const seg = (info >>> 15) & 7;
    if (asize > 2 || seg > 5) throw new Unmodelled(`instruction information ${hex(info)}: reserved address size or segment`);
    const bits = BigInt(16 << asize);
    let ea = c.qual;
    if ((info & (1 << 27)) === 0) ea += cpu.gpr[(info >>> 23) & 15];
    if ((info & (1 << 22)) === 0) ea += cpu.gpr[(info >>> 18) & 15] << BigInt(info & 3);
    ea &= (1n << bits) - 1n;
    // An operand whose bytes pass the end of the address size (16 or 32
    // bits): whether the offset wraps, or #GP, is not something the SDM pins
    // down for every processor.
    if (bits < 64n && ea + BigInt(len) > 1n << bits) throw new Unmodelled('operand wraps around the address size');
    const segFault = { fault: { vector: seg === SEG_SS ? SS : GP, code: 0 } };
    const s = cpu.segs[seg];
    let lin: bigint;
    const alts: ({ fault: Fault } | { pieces: Piece[] })[] = [];
    if (modeOf(cpu) === 'long') {
      // 3.4.4: in 64-bit mode the bases of CS, DS, ES and SS are 0, there
      // are no limit checks, and the address must be canonical (48 bits:
      // CR4.LA57 is not modelled) -- #SS(0) through SS, else #GP(0).
      lin = BigInt.asUintN(64, (seg === SEG_FS || seg === SEG_GS ? s.base : 0n) + ea);
      const canon = (a: bigint) => { const top = BigInt.asIntN(64, a) >> 47n; return top === 0n || top === -1n; };
      if (!canon(lin) || !canon(BigInt.asUintN(64, lin + BigInt(len - 1)))) return [segFault];
      // Whether a write through CS, or a read through an execute-only CS, is
      // checked in 64-bit mode the SDM does not say plainly: either outcome.
      const type = s.ar & 15;
      if (seg === SEG_CS && (write || (type & 2) === 0)) alts.push(segFault);
    } else {
      // 3.4.5.1, 5.3: usable segment, type, limit (expand-up or -down).
      if ((s.ar & AR_UNUSABLE) !== 0) return [segFault];
      const type = s.ar & 15;
      const code = (type & 8) !== 0, rw = (type & 2) !== 0;
      if (code ? write || !rw : write && !rw) return [segFault];
      const last = ea + BigInt(len - 1);
      const limit = s.limit & M32;
      const inside = !code && (type & 4) !== 0
        ? ea > limit && last <= ((s.ar & AR_DB) !== 0 ? M32 : 0xffffn)
        : last <= limit;
      if (!inside) return [segFault];
      lin = (s.base + ea) & M32;
    }
    const first = Math.min(len, 0x1000 - Number(lin & 0xfffn));
    const parts: [bigint, number][] = [[lin, first]];
    if (first < len) parts.push([(lin | 0xfffn) + 1n & (modeOf(cpu) === 'long' ? M64 : M32), len - first]);
    const pieces: Piece[] = [];
    const faults: Fault[] = [];
    for (const [l, n] of parts) {
      const t = this.translate(cpu, l, write);
      if ('fault' in t) faults.push(t.fault);
      else pieces.push({ gpa: t.gpa, n });
    }
    // Which page of a split access faults first is not architectural.
    if (faults.length) return [...alts, ...faults.map((fault) => ({ fault }))];
    for (const p of pieces) {
      if (!this.phys.scratch(p.gpa, p.n)) throw new Unmodelled(`operand at guest-physical ${hex(p.gpa)}, outside the scratch area`);
    }
    return [...alts, { pieces }];
  }

  // A supervisor data access through L1's paging (Vol. 3A ch. 4): 32-bit
  // paging (CR4.PSE for 4-MiB pages) or 4-level paging.
  private translate(cpu: Cpu, lin: bigint, write: boolean): { fault: Fault } | { gpa: bigint } {
    if ((cpu.cr0 & CR0_PG) === 0n) return { gpa: lin & M32 };
    const long = (cpu.efer & EFER_LMA) !== 0n;
    if ((!long && (cpu.cr4 & CR4_PAE) !== 0n) || (cpu.cr4 & CR4_LA57) !== 0n) throw new Unmodelled('PAE or 5-level paging');
    const w = write ? 2 : 0;
    const pf = (code: number) => ({ fault: { vector: PF, code, cr2: lin } });
    const entry = (gpa: bigint, n: number): bigint => {
      const b = this.phys.read(gpa, n);
      if (!b) throw new Unmodelled(`paging-structure entry at ${hex(gpa)} unknown`);
      return le(b);
    };
    let writable = true, user = true, pa: bigint;
    if (long) {
      let table = cpu.cr3 & 0x000ffffffffff000n;
      for (let level = 4; ; level--) {
        const shift = BigInt(12 + 9 * (level - 1));
        const e = entry(table + ((lin >> shift) & 511n) * 8n, 8);
        if ((e & 1n) === 0n) return pf(w);
        if ((e & 2n) === 0n) writable = false;
        if ((e & 4n) === 0n) user = false;
        const addr = e & 0x000ffffffffff000n;
        if (level === 1 || ((level === 2 || level === 3) && (e & 0x80n) !== 0n)) {
          const page = (1n << shift) - 1n;
          pa = (addr & ~page) | (lin & page);
          break;
        }
        table = addr;
      }
    } else {
      const pde = entry((cpu.cr3 & 0xfffff000n) + (lin >> 22n) * 4n, 4);
      if ((pde & 1n) === 0n) return pf(w);
      if ((pde & 2n) === 0n) writable = false;
      if ((pde & 4n) === 0n) user = false;
      if ((pde & 0x80n) !== 0n && (cpu.cr4 & CR4_PSE) !== 0n) {
        pa = (pde & 0xffc00000n) | (((pde >> 13n) & 0xffn) << 32n) | (lin & 0x3fffffn);
      } else {
        const pte = entry((pde & 0xfffff000n) + ((lin >> 12n) & 1023n) * 4n, 4);
        if ((pte & 1n) === 0n) return pf(w);
        if ((pte & 2n) === 0n) writable = false;
        if ((pte & 4n) === 0n) user = false;
        pa = (pte & 0xfffff000n) | (lin & 0xfffn);
      }
    }
    // 4.6.1: supervisor writes need R/W with CR0.WP; SMAP protects user pages.
    if (write && !writable && (cpu.cr0 & CR0_WP) !== 0n) return pf(1 | w);
    if (user && (cpu.cr4 & CR4_SMAP) !== 0n && (cpu.rflags & RFLAGS_AC) === 0n) return pf(1 | w);
    return { gpa: pa };
  }

  private readPieces(pieces: Piece[]): bigint {
    const bytes: number[] = [];
    for (const p of pieces) bytes.push(...this.phys.read(p.gpa, p.n)!);
    return le(Uint8Array.from(bytes));
  }

  // Read the 64-bit pointer operand; `then` maps the pointer to outcomes.
  private withPointer(c: Case, then: (ptr: bigint) => Outcome[]): Outcome[] {
    return this.access(c, 8, false).flatMap((a) =>
      'fault' in a ? [this.faultOutcome(a.fault)] : then(this.readPieces(a.pieces)));
  }
  private faultOutcome(f: Fault): Outcome {
    const name = { [UD]: '#UD', [SS]: '#SS(0)', [GP]: '#GP(0)', [PF]: '#PF' }[f.vector];
    return this.fault(f.vector, f.vector === PF ? `#PF(${f.code}) at ${hex(f.cr2!)}` : name!, f.code, f.cr2);
  }

  private badAddress(pa: bigint): boolean {
    return (pa & 0xfffn) !== 0n || pa >> BigInt(this.caps.physBits) !== 0n || (this.caps.addr32 && pa >> 32n !== 0n);
  }
  // The first dword of a region; reads beyond L1's RAM return all ones.
  private revisionAt(pa: bigint): number {
    if (pa + 4096n > this.caps.ramSize) return 0xffffffff;
    const b = this.phys.read(pa, 4);
    if (!b) throw new Unmodelled(`revision of ${hex(pa)} unknown`);
    return Number(le(b));
  }

  // ---- the instructions (31.3) ----------------------------------------------
  predict(c: Case): Outcome[] {
    const cpu = c.cpu;
    const mode = modeOf(cpu);
    const badMode = mode === 'real' || mode === 'v86' || mode === 'compat';
    const cpl = cplOf(cpu);
    if (c.insn === 'INVEPT' || c.insn === 'INVVPID') {
      // INVEPT/INVVPID: #UD if the processor does not support the instruction.
      if (!(c.insn === 'INVEPT' ? this.caps.invept : this.caps.invvpid)) return [this.fault(UD, `#UD (${c.insn} not offered)`)];
    }
    if (c.insn === 'VMXON') return this.vmxon(c, badMode, cpl);
    // Every other VMX instruction: #UD outside VMX operation or in real,
    // virtual-8086 or compatibility mode; #GP(0) at CPL > 0.
    if (!this.vmxOn || badMode) return [this.fault(UD, `#UD (${this.vmxOn ? mode + ' mode' : 'not in VMX operation'})`)];
    if (cpl > 0) return [this.fault(GP, '#GP(0) (CPL > 0)', 0)];
    const long = mode === 'long';
    switch (c.insn) {
      case 'VMXOFF':
        // Dual-monitor treatment is never active (not offered): VMsucceed.
        // VMCSs still active become undefined (25.11.1): VMCLEAR before reuse.
        return [this.ok('VMsucceed (VMXOFF)', () => {
          for (const v of this.vmcs.values()) {
            if (v.active) Object.assign(v, { usable: false, active: false, launched: false, fields: new Map() });
          }
          this.vmxOn = false;
          this.vmxonPtr = this.current = null;
        })];
      case 'VMCLEAR':
        return this.withPointer(c, (p) => {
          if (this.badAddress(p)) return [this.vmfail(ERR.VMCLEAR_ADDR, `VMCLEAR ${hex(p)}: invalid address`)];
          // No memory there: the SDM has no rule; failing or doing nothing are both sane.
          if (p + 4096n > this.caps.ramSize) {
            return [this.vmfail(ERR.VMCLEAR_ADDR, `VMCLEAR ${hex(p)}: not RAM`), this.ok(`VMsucceed (VMCLEAR ${hex(p)}, not RAM)`)];
          }
          if (p === this.vmxonPtr) return [this.vmfail(ERR.VMCLEAR_VMXON, `VMCLEAR of the VMXON pointer`)];
          if (!this.phys.vmcsPage(p)) throw new Unmodelled(`VMCLEAR of test memory ${hex(p)}`);
          return [this.ok(`VMsucceed (VMCLEAR ${hex(p)})`, () => {
            let v = this.vmcs.get(p);
            if (!v) this.vmcs.set(p, v = { usable: false, active: false, launched: false, shadow: false, fields: new Map() });
            if (!v.usable) v.fields = new Map(); // a new VMCS: its data is undefined until written
            Object.assign(v, { usable: true, active: false, launched: false });
            if (this.current === p) this.current = null;
          })];
        });
      case 'VMPTRLD':
        return this.withPointer(c, (p) => {
          if (this.badAddress(p)) return [this.vmfail(ERR.VMPTRLD_ADDR, `VMPTRLD ${hex(p)}: invalid address`)];
          if (p + 4096n > this.caps.ramSize) {
            return [this.vmfail(ERR.VMPTRLD_ADDR, `VMPTRLD ${hex(p)}: not RAM`),
              this.vmfail(ERR.VMPTRLD_REVISION, `VMPTRLD ${hex(p)}: not RAM, reads as all ones`)];
          }
          if (p === this.vmxonPtr) return [this.vmfail(ERR.VMPTRLD_VMXON, 'VMPTRLD of the VMXON pointer')];
          const rev = this.revisionAt(p);
          const shadow = rev >>> 31 === 1;
          if ((rev & 0x7fffffff) !== this.caps.revision || (shadow && !this.caps.shadowVmcs)) {
            return [this.vmfail(ERR.VMPTRLD_REVISION, `VMPTRLD ${hex(p)}: revision ${hex(rev)}`)];
          }
          // 25.11.3: a region must be VMCLEARed before its first VMPTRLD.
          if (!this.phys.vmcsPage(p) || !this.vmcsUsable(p)) throw new Unmodelled(`VMPTRLD of ${hex(p)}, never VMCLEARed`, this.phys.vmcsPage(p) ? 'uninitialised' : 'other');
          return [this.ok(`VMsucceed (VMPTRLD ${hex(p)})`, () => {
            const v = this.vmcs.get(p)!;
            Object.assign(v, { active: true, shadow });
            this.current = p;
          })];
        });
      case 'VMPTRST': {
        const value = this.current ?? ALL1;
        return this.access(c, 8, true).map((a) => 'fault' in a ? this.faultOutcome(a.fault)
          : { what: `VMsucceed (VMPTRST stores ${hex(value)})`, flags: 'succeed', mem: { pieces: a.pieces, value, mask: M64 }, commit: () => {} });
      }
      case 'INVEPT': return this.invept(c, long);
      case 'INVVPID': return this.invvpid(c, long);
      case 'VMREAD': return this.vmread(c, long);
      case 'VMWRITE': return this.vmwrite(c, long);
      case 'VMLAUNCH': case 'VMRESUME': {
        const v = this.current === null ? undefined : this.vmcs.get(this.current)!;
        if (!v || v.shadow) return [this.failInvalid(`${c.insn} without a current (ordinary) VMCS`)];
        if (cpu.movSsBlocking) return [this.vmfail(ERR.MOV_SS, `${c.insn} with events blocked by MOV SS`)];
        if (c.insn === 'VMLAUNCH' && v.launched) return [this.vmfail(ERR.VMLAUNCH_NONCLEAR, 'VMLAUNCH of a launched VMCS')];
        if (c.insn === 'VMRESUME' && !v.launched) return [this.vmfail(ERR.VMRESUME_NONLAUNCHED, 'VMRESUME of a clear VMCS')];
        // 27.2: invalid pin-based controls fail the entry; the checks on
        // controls and host state "may be performed in any order": 7 or 8.
        if (!this.pinKnownInvalid()) throw new Unmodelled(`${c.insn} would check a VMCS the oracle does not know`, 'pin');
        return [this.vmfail(ERR.CONTROLS, `${c.insn}: invalid pin-based controls`),
          this.vmfail(ERR.HOST, `${c.insn}: host state checked first`)];
      }
    }
    throw new Error(`unknown instruction ${c.insn}`);
  }

  private vmxon(c: Case, badMode: boolean, cpl: number): Outcome[] {
    const cpu = c.cpu;
    if (badMode || (cpu.cr4 & CR4_VMXE) === 0n) return [this.fault(UD, '#UD (VMXON: mode or CR4.VMXE = 0)')];
    if (this.vmxOn) {
      if (cpl > 0) return [this.fault(GP, '#GP(0) (VMXON at CPL > 0)', 0)];
      return [this.vmfail(ERR.VMXON_IN_ROOT, 'VMXON in VMX root operation')];
    }
    const k = this.caps;
    const crBad = (~cpu.cr0 & k.cr0Fixed0) | (cpu.cr0 & ~k.cr0Fixed1 & M64) | (~cpu.cr4 & k.cr4Fixed0) | (cpu.cr4 & ~k.cr4Fixed1 & M64);
    // IA32_FEATURE_CONTROL: lock (bit 0) and VMX outside SMX (bit 2); A20M never.
    if (cpl > 0 || crBad !== 0n || (this.featureControl & 5n) !== 5n) return [this.fault(GP, '#GP(0) (VMXON: CPL, CR0/CR4 or IA32_FEATURE_CONTROL)', 0)];
    return this.withPointer(c, (p) => {
      if (this.badAddress(p)) return [this.failInvalid(`VMXON ${hex(p)}: invalid address`)];
      const rev = this.revisionAt(p);
      if ((rev & 0x7fffffff) !== k.revision || rev >>> 31 === 1) return [this.failInvalid(`VMXON ${hex(p)}: revision ${hex(rev)}`)];
      if (this.vmcsUsable(p)) throw new Unmodelled(`VMXON with a VMCS region ${hex(p)}`);
      return [this.ok(`VMsucceed (VMXON ${hex(p)})`, () => {
        this.vmxOn = true;
        this.vmxonPtr = p;
        this.current = null;
      })];
    });
  }

  // 31.3 INVEPT, after the checks every VMX instruction makes (#UD, #GP(0)):
  //   INVEPT_TYPE := the register operand (Reg2, Table 28-13; 64 bits in
  //                  64-bit mode, 32 outside it)
  //   VMfail(28) if IA32_VMX_EPT_VPID_CAP does not support the type (type 1
  //                  single-context: bit 25; type 2 all-context: bit 26;
  //                  no other type exists)
  //   INVEPT_DESC := the 128-bit memory operand (a read: segmentation and
  //                  paging faults); EPTP := INVEPT_DESC[63:0]; bits 127:64
  //                  are not examined by the Operation section
  //   type 1: VMfail(28) if VM entry with "enable EPT" 1 would fail because
  //                  of that EPTP (27.2.1.1)
  //   VMsucceed. Nothing is written to registers or memory.
  private invept(c: Case, long: boolean): Outcome[] {
    const type = c.cpu.gpr[(c.info >>> 28) & 15] & (long ? M64 : M32);
    const cap = this.caps.eptVpidCap;
    const supported = (type === 1n && ((cap >> 25n) & 1n) === 1n) || (type === 2n && ((cap >> 26n) & 1n) === 1n);
    if (!supported) return [this.vmfail(ERR.INVEPT_INVVPID, `INVEPT type ${hex(type)} not supported`)];
    return this.access(c, 16, false).map((a) => {
      if ('fault' in a) return this.faultOutcome(a.fault);
      const eptp = this.readPieces(a.pieces) & M64;
      if (type === 1n) {
        const bad = eptpProblem(eptp, this.caps.vmx);
        if (bad) return this.vmfail(ERR.INVEPT_INVVPID, `INVEPT single-context: ${bad}`);
      }
      return this.ok(`VMsucceed (INVEPT ${type === 1n ? `single-context ${hex(eptp)}` : 'all-context'})`);
    });
  }

  // 31.3 INVVPID, after the checks every VMX instruction makes (#UD -- also
  // for a processor without VPIDs or without INVVPID, predict() -- and
  // #GP(0)):
  //   INVVPID_TYPE := the register operand (Reg2, Table 28-13; 64 bits in
  //                  64-bit mode, 32 outside it)
  //   VMfail(28) if IA32_VMX_EPT_VPID_CAP does not support the type
  //                  (individual-address 0: bit 40; single-context 1: bit
  //                  41; all-context 2: bit 42; single-context-retaining-
  //                  globals 3: bit 43; no other type exists)
  //   INVVPID_DESC := the 128-bit memory operand (a read: segmentation and
  //                  paging faults)
  //   VMfail(28) if INVVPID_DESC[63:16] is not 0 (whatever the type)
  //   types 0, 1, 3: VMfail(28) if the VPID, INVVPID_DESC[15:0], is 0
  //   type 0: VMfail(28) if the linear address, INVVPID_DESC[127:64], is not
  //                  canonical for the processor's linear-address width
  //                  (whatever the mode L1 is in: no mode in that line)
  //   VMsucceed. Nothing is written to registers or memory.
  private invvpid(c: Case, long: boolean): Outcome[] {
    const type = c.cpu.gpr[(c.info >>> 28) & 15] & (long ? M64 : M32);
    const names = ['individual-address', 'single-context', 'all-context', 'single-context-retaining-globals'];
    if (type > 3n) return [this.vmfail(ERR.INVEPT_INVVPID, `INVVPID type ${hex(type)} does not exist`)];
    if (((this.caps.eptVpidCap >> (40n + type)) & 1n) === 0n) {
      return [this.vmfail(ERR.INVEPT_INVVPID, `INVVPID type ${type} not supported (IA32_VMX_EPT_VPID_CAP bit ${40n + type} is 0)`)];
    }
    const name = names[Number(type)];
    return this.access(c, 16, false).map((a) => {
      if ('fault' in a) return this.faultOutcome(a.fault);
      const desc = this.readPieces(a.pieces);
      const low = desc & M64, addr = desc >> 64n;
      if (low >> 16n !== 0n) return this.vmfail(ERR.INVEPT_INVVPID, `INVVPID ${name}: descriptor bits 63:16 not 0 (${hex(low)})`);
      const vpid = low & 0xffffn;
      if (type !== 2n && vpid === 0n) return this.vmfail(ERR.INVEPT_INVVPID, `INVVPID ${name} with VPID 0`);
      if (type === 0n && !canonical(addr, this.caps.linearBits)) {
        return this.vmfail(ERR.INVEPT_INVVPID, `INVVPID individual-address: linear address ${hex(addr)} not canonical (${this.caps.linearBits} bits)`);
      }
      return this.ok(`VMsucceed (INVVPID ${name}${type === 2n ? '' : `, VPID ${hex(vpid)}`}${type === 0n ? `, ${hex(addr)}` : ''})`);
    });
  }

  // The field-encoding operand: 64 bits in 64-bit mode, else 32 (31.3 VMREAD/VMWRITE).
  private encoding(c: Case, long: boolean): { enc: number; ok: boolean } {
    const raw = c.cpu.gpr[(c.info >>> 28) & 15] & (long ? M64 : M32);
    const enc = Number(raw & M32);
    return { enc, ok: raw <= M32 && this.fieldExists(enc) };
  }
  private field(enc: number): Field {
    const v = this.vmcs.get(this.current!)!;
    const base = enc & ~1;
    let f = v.fields.get(base);
    if (!f) v.fields.set(base, f = { v: 0n, known: 0n });
    return f;
  }

  private vmread(c: Case, long: boolean): Outcome[] {
    if (this.current === null) return [this.failInvalid('VMREAD without a current VMCS')];
    const { enc, ok } = this.encoding(c, long);
    if (!ok) return [this.vmfail(ERR.UNSUPPORTED, `VMREAD of unsupported component ${hex(enc)}`)];
    const f = this.field(enc);
    const w = widthOf(enc);
    // The value, zero-extended to the operand size (64 or 32 bits); the
    // bits above the field's width are known zeros.
    let value: bigint, mask: bigint;
    if (isHigh(enc)) { value = f.v >> 32n; mask = (f.known >> 32n) | ~M32 & M64; } else { value = f.v; mask = f.known | (~widthMask(w) & M64); }
    const size = long ? M64 : M32;
    value &= size; mask &= size;
    const learn = (observed?: bigint) => {
      if (observed === undefined) return;
      const o = observed & size;
      if (isHigh(enc)) {
        const m = (size & M32) << 32n;
        f.v = (f.v & ~m) | ((o & M32) << 32n); f.known |= m;
      } else {
        const m = size & widthMask(w);
        f.v = (f.v & ~m) | (o & m); f.known |= m;
      }
    };
    const what = `VMsucceed (VMREAD ${hex(enc)})`;
    if ((c.info & (1 << 10)) !== 0) return [{ what, flags: 'succeed', reg: { n: (c.info >>> 3) & 15, value, mask }, commit: learn }];
    // The destination is written after the field checks (31.3 VMREAD: DEST in the last branch).
    return this.access(c, long ? 8 : 4, true).map((a) => 'fault' in a ? this.faultOutcome(a.fault)
      : { what, flags: 'succeed', mem: { pieces: a.pieces, value, mask }, commit: learn });
  }

  private vmwrite(c: Case, long: boolean): Outcome[] {
    const size = long ? M64 : M32;
    const decide = (value: bigint): Outcome[] => {
      if (this.current === null) return [this.failInvalid('VMWRITE without a current VMCS')];
      const { enc, ok } = this.encoding(c, long);
      if (!ok) return [this.vmfail(ERR.UNSUPPORTED, `VMWRITE to unsupported component ${hex(enc)}`)];
      if (readOnly(enc) && !this.caps.vmwriteAnyField) return [this.vmfail(ERR.READ_ONLY, `VMWRITE to read-only ${hex(enc)}`)];
      return [this.ok(`VMsucceed (VMWRITE ${hex(enc)} := ${hex(value & size)})`, () => {
        const f = this.field(enc);
        if (isHigh(enc)) {
          f.v = (f.v & M32) | ((value & M32) << 32n); f.known |= ~M32 & M64;
        } else {
          // A shorter field takes the low bits; a longer one gets its high bits cleared.
          const m = widthMask(widthOf(enc));
          f.v = value & size & m; f.known = m;
        }
      })];
    };
    if ((c.info & (1 << 10)) !== 0) return decide(c.cpu.gpr[(c.info >>> 3) & 15]);
    // A memory source: the Operation section does not place the read among
    // the checks, so a fault reading it and the outcome of the checks that
    // need no value are both permitted.
    const src = this.access(c, long ? 8 : 4, false);
    const faults = src.filter((a) => 'fault' in a).map((a) => this.faultOutcome((a as { fault: Fault }).fault));
    const read = src.find((a) => 'pieces' in a) as { pieces: Piece[] } | undefined;
    const early = decide(0n).filter((o) => o.flags !== 'succeed');
    if (early.length) return [...early, ...faults];
    return [...faults, ...(read ? decide(this.readPieces(read.pieces)) : [])];
  }
}
