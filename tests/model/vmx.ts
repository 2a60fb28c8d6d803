// Software VMX for an executor at CPL 0, in 64-bit mode, in VMX root
// operation or outside VMX operation (SDM Vol. 3C ch. 24, 25, 27.1-27.2, 31).
// VMCS data live in maps keyed by the physical address of the VMCS region;
// only the revision identifier (first dword) is read from physical memory, as
// VMXON and VMPTRLD do. The pseudocode of each instruction (31.3) is followed
// branch by branch; the branches that cannot happen here (register operand,
// CR0.PE = 0, virtual-8086 or compatibility mode, CPL > 0, VMX non-root
// operation, SMX, SMM) are left out.
//
// Results follow the import contract (kernel/hw/vmx.ts): 0 VMsucceed,
// 1 VMfailInvalid, 2 VMfailValid (error number in VM_INSTRUCTION_ERROR).
// A #UD or #GP is a kernel bug at this level: host.fault() records it and
// throws, ending the run.
import { CR4, FC_LOCK, FC_VMX_OUTSIDE_SMX, MSR, VMXERR, VM_INSTRUCTION_ERROR, hex } from './consts.ts';
import { lookupField, truncate, isReadOnly, fieldName, type VmxCaps } from './vmcs-fields.ts';
import { checkControls, checkHostState, eptpProblem, canonical, type EntryEnv } from './entry-checks.ts';
import type { PhysMem } from './phys.ts';

export interface VmxHost {
  phys: PhysMem;
  cr(n: number): bigint;
  efer(): bigint;
  msrPeek(n: number): bigint | undefined;
  cpuidRaw(leaf: number, sub: number): [number, number, number, number];
  fault(msg: string): never;
  readonly msrGeneration?: number; // changes whenever an MSR does (caps() is cached until then)
}

export interface Vmcs {
  addr: bigint;
  launch: 'clear' | 'launched';
  active: boolean; // VMPTRLDed since its last VMCLEAR (25.1)
  shadow: boolean; // shadow-VMCS indicator read by the last VMPTRLD (25.2)
  fields: Map<number, bigint>; // full encoding (bit 0 clear) -> value
}

export interface VmxEvent {
  insn: string;
  operand?: string;
  field?: number; // VMREAD/VMWRITE: the encoding (and value), see fieldOperand()
  value?: bigint;
  result: number | bigint;
  error?: number;
}

// Called after a VM entry passed the modelled checks: a test script plays the
// guest here and writes the exit-information fields (setField).
export type GuestScript = (vmx: Vmx, vmcs: Vmcs, launch: boolean) => void;

export const INVALID_VMCS_POINTER = 0xffffffffffffffffn;
const EVENTS_KEPT = 1024;
function capMsr(h: VmxHost, n: number): bigint {
  return h.msrPeek(n) ?? 0n;
}
function lo(v: bigint): number {
  return Number(v & 0xffffffffn);
}
function hi(v: bigint): number {
  return Number(v >> 32n);
}

// A VMREAD/VMWRITE operand, logged as is: fieldOperand() formats it.
class FieldOp {
  constructor(readonly enc: number, readonly value?: bigint) {}
}
export function fieldOperand(e: VmxEvent): string | undefined {
  if (e.field === undefined) return e.operand;
  return e.value === undefined ? fieldName(e.field) : `${fieldName(e.field)}, ${hex(e.value)}`;
}

export class Vmx {
  inVmxOperation = false;
  vmxonPtr: bigint | null = null;
  currentVmcs: bigint | null = null; // null = FFFFFFFF_FFFFFFFFH, "not valid"
  readonly vmcs = new Map<bigint, Vmcs>();
  // VMCS regions whose data became undefined (active at VMXOFF, or written
  // with ordinary memory writes): address -> why.
  readonly corrupted = new Map<bigint, string>();
  readonly events: VmxEvent[] = [];
  lastEntryProblems: string[] = [];
  guest: GuestScript | null = null;
  // VMPTRLD of a region that was never VMCLEARed is a fault (25.11.3) unless
  // this is turned off.
  requireVmclearBeforeVmptrld = true;

  constructor(private host: VmxHost) {
    host.phys.watchers.push((base, len) => this.onWrite(base, len));
  }

  // ---- capabilities, from the machine's MSRs and CPUID --------------------
  // Decoded once per MSR generation: this runs on every VMREAD/VMWRITE
  // (and its helpers are module functions, not closures, for the same reason).
  private capsCache: VmxCaps | null = null;
  private capsGeneration = -1;
  caps(): VmxCaps {
    const gen = this.host.msrGeneration;
    if (gen !== undefined && this.capsCache !== null && gen === this.capsGeneration) return this.capsCache;
    this.capsCache = this.decodeCaps();
    this.capsGeneration = gen ?? -1;
    return this.capsCache;
  }
  private decodeCaps(): VmxCaps {
    const h = this.host;
    const basic = capMsr(h, MSR.IA32_VMX_BASIC);
    const trueCtls = ((basic >> 55n) & 1n) === 1n;
    const pin = capMsr(h, trueCtls ? MSR.IA32_VMX_TRUE_PINBASED_CTLS : MSR.IA32_VMX_PINBASED_CTLS);
    const proc = capMsr(h, trueCtls ? MSR.IA32_VMX_TRUE_PROCBASED_CTLS : MSR.IA32_VMX_PROCBASED_CTLS);
    const exit = capMsr(h, trueCtls ? MSR.IA32_VMX_TRUE_EXIT_CTLS : MSR.IA32_VMX_EXIT_CTLS);
    const entry = capMsr(h, trueCtls ? MSR.IA32_VMX_TRUE_ENTRY_CTLS : MSR.IA32_VMX_ENTRY_CTLS);
    const proc2_1 = (hi(proc) >>> 31) & 1 ? hi(capMsr(h, MSR.IA32_VMX_PROCBASED_CTLS2)) : 0;
    return {
      revision: Number(basic & 0x7fffffffn),
      regionSize: Number((basic >> 32n) & 0x1fffn),
      addr32: ((basic >> 48n) & 1n) === 1n,
      trueCtls,
      pin0: lo(pin), pin1: hi(pin), proc0: lo(proc), proc1: hi(proc), proc2_1,
      exit0: lo(exit), exit1: hi(exit), entry0: lo(entry), entry1: hi(entry),
      misc: capMsr(h, MSR.IA32_VMX_MISC),
      cr0Fixed0: capMsr(h, MSR.IA32_VMX_CR0_FIXED0), cr0Fixed1: capMsr(h, MSR.IA32_VMX_CR0_FIXED1),
      cr4Fixed0: capMsr(h, MSR.IA32_VMX_CR4_FIXED0), cr4Fixed1: capMsr(h, MSR.IA32_VMX_CR4_FIXED1),
      eptVpidCap: proc2_1 & ((1 << 1) | (1 << 5)) ? capMsr(h, MSR.IA32_VMX_EPT_VPID_CAP) : 0n,
      vmfunc: proc2_1 & (1 << 13) ? capMsr(h, MSR.IA32_VMX_VMFUNC) : 0n,
      maxPhysAddr: this.host.cpuidRaw(0x80000008, 0)[0] & 0xff,
    };
  }

  private linearBits(): number {
    return (this.host.cpuidRaw(0x80000008, 0)[0] >>> 8) & 0xff;
  }

  // ---- helpers ---------------------------------------------------------------
  // The last EVENTS_KEPT instructions. VMREAD/VMWRITE (on every exit) log a
  // FieldOp whose operand text is formatted only if someone reads it.
  private log(insn: string, operand: string | FieldOp | undefined, result: number | bigint, error?: number): void {
    if (this.events.length >= EVENTS_KEPT) this.events.splice(0, EVENTS_KEPT / 2);
    this.events.push(operand instanceof FieldOp
      ? { insn, field: operand.enc, value: operand.value, result, error }
      : { insn, operand, result, error });
  }

  // VMfail(ErrorNumber) (31.2): VMfailValid when there is a current VMCS.
  private fail(insn: string, operand: string | FieldOp | undefined, err: number): number {
    if (this.currentVmcs === null) {
      this.log(insn, operand, 1, err);
      return 1;
    }
    this.current()!.fields.set(VM_INSTRUCTION_ERROR, BigInt(err));
    this.log(insn, operand, 2, err);
    return 2;
  }
  private ok(insn: string, operand?: string | FieldOp): number {
    this.log(insn, operand, 0);
    return 0;
  }

  current(): Vmcs | undefined {
    return this.currentVmcs === null ? undefined : this.vmcs.get(this.currentVmcs);
  }

  private requireVmxOperation(insn: string): void {
    if (!this.inVmxOperation) this.host.fault(`#UD: ${insn} outside VMX operation (SDM Vol. 3C 31.3 ${insn})`);
  }

  // "addr is not 4KB-aligned or sets any bits beyond the physical-address
  // width" (and, with VMX_BASIC[48], any of bits 63:32).
  private badAddress(pa: bigint, caps: VmxCaps): boolean {
    if ((pa & 0xfffn) !== 0n) return true;
    if (pa >> BigInt(caps.maxPhysAddr) !== 0n) return true;
    return caps.addr32 && pa >> 32n !== 0n;
  }

  // The region must be ordinary memory the kernel may use: beyond physical
  // memory or inside the hypervisor's own ranges is a kernel bug.
  private region(insn: string, pa: bigint, len: number, write: boolean): void {
    const why = this.host.phys.check(insn.toLowerCase(), pa, BigInt(len), write, false);
    if (why) this.host.fault(`${insn} ${hex(pa)}: ${why}`);
  }

  private onWrite(base: number, len: number): string | null {
    const end = base + len;
    if (this.vmxonPtr !== null && base < Number(this.vmxonPtr) + 4096 && end > Number(this.vmxonPtr)) {
      return `write to the VMXON region ${hex(this.vmxonPtr)} in VMX operation (SDM Vol. 3C 25.11.5: software must not modify it between VMXON and VMXOFF)`;
    }
    for (const v of this.vmcs.values()) {
      if (base < Number(v.addr) + 4096 && end > Number(v.addr)) {
        if (v.active) {
          return `ordinary memory write to active VMCS ${hex(v.addr)} (SDM Vol. 3C 25.11.1: it may corrupt the VMCS; VMCLEAR it first)`;
        }
        // A cleared VMCS lives in its region: overwriting the region (e.g.
        // reusing the page) destroys it. VMPTRLD then needs a fresh VMCLEAR.
        this.vmcs.delete(v.addr);
        this.corrupted.set(v.addr, 'region overwritten after VMCLEAR');
      }
    }
    return null;
  }

  // ---- instructions ----------------------------------------------------------

  vmxon(pa: bigint): number {
    const op = hex(pa);
    // #UD: CR4.VMXE = 0 (the other #UD conditions cannot hold for the kernel)
    if ((this.host.cr(4) & CR4.VMXE) === 0n) this.host.fault('#UD: VMXON with CR4.VMXE = 0 (SDM Vol. 3C 24.7, 31.3 VMXON)');
    if (this.inVmxOperation) return this.fail('VMXON', op, VMXERR.VMXON_IN_ROOT);
    const caps = this.caps();
    const cr0 = this.host.cr(0), cr4 = this.host.cr(4);
    const bad0 = (~cr0 & caps.cr0Fixed0) | (cr0 & ~caps.cr0Fixed1);
    const bad4 = (~cr4 & caps.cr4Fixed0) | (cr4 & ~caps.cr4Fixed1);
    if (bad0) this.host.fault(`#GP(0): VMXON with CR0 ${hex(cr0)} not supported in VMX operation (IA32_VMX_CR0_FIXED0 ${hex(caps.cr0Fixed0)}, FIXED1 ${hex(caps.cr0Fixed1)}, offending bits ${hex(bad0)}; SDM 24.8)`);
    if (bad4) this.host.fault(`#GP(0): VMXON with CR4 ${hex(cr4)} not supported in VMX operation (IA32_VMX_CR4_FIXED0 ${hex(caps.cr4Fixed0)}, FIXED1 ${hex(caps.cr4Fixed1)}, offending bits ${hex(bad4)}; SDM 24.8)`);
    const fc = this.host.msrPeek(MSR.IA32_FEATURE_CONTROL) ?? 0n;
    if (!(fc & FC_LOCK)) this.host.fault(`#GP(0): VMXON with IA32_FEATURE_CONTROL ${hex(fc)} unlocked (bit 0 clear; SDM 24.7)`);
    if (!(fc & FC_VMX_OUTSIDE_SMX)) this.host.fault(`#GP(0): VMXON outside SMX with IA32_FEATURE_CONTROL ${hex(fc)} bit 2 clear (SDM 24.7)`);
    if (this.badAddress(pa, caps)) {
      this.log('VMXON', op, 1);
      return 1; // VMfailInvalid
    }
    this.region('VMXON', pa, 4, false);
    const rev = this.host.phys.read32(Number(pa));
    if ((rev & 0x7fffffff) !== caps.revision || rev >>> 31 === 1) {
      this.log('VMXON', op, 1);
      return 1;
    }
    this.region('VMXON', pa, 4096, true);
    this.inVmxOperation = true;
    this.vmxonPtr = pa;
    this.currentVmcs = null;
    return this.ok('VMXON', op);
  }

  vmxoff(): number {
    this.requireVmxOperation('VMXOFF');
    // Dual-monitor treatment of SMIs and SMM is never active in the model,
    // so VMfail(23) cannot happen.
    for (const v of this.vmcs.values()) {
      if (v.active) {
        // 25.11.1: active VMCSs may be corrupted when the processor leaves VMX operation.
        this.vmcs.delete(v.addr);
        this.corrupted.set(v.addr, 'active (not VMCLEARed) at VMXOFF');
      }
    }
    this.inVmxOperation = false;
    this.vmxonPtr = null;
    this.currentVmcs = null;
    return this.ok('VMXOFF');
  }

  vmclear(pa: bigint): number {
    this.requireVmxOperation('VMCLEAR');
    const op = hex(pa);
    const caps = this.caps();
    if (this.badAddress(pa, caps)) return this.fail('VMCLEAR', op, VMXERR.VMCLEAR_INVALID_ADDRESS);
    if (pa === this.vmxonPtr) return this.fail('VMCLEAR', op, VMXERR.VMCLEAR_VMXON_POINTER);
    this.region('VMCLEAR', pa, 4096, true);
    let v = this.vmcs.get(pa);
    if (!v) {
      v = { addr: pa, launch: 'clear', active: false, shadow: false, fields: new Map() };
      this.vmcs.set(pa, v);
      this.corrupted.delete(pa);
    }
    v.launch = 'clear';
    v.active = false;
    if (this.currentVmcs === pa) this.currentVmcs = null;
    return this.ok('VMCLEAR', op);
  }

  vmptrld(pa: bigint): number {
    this.requireVmxOperation('VMPTRLD');
    const op = hex(pa);
    const caps = this.caps();
    if (this.badAddress(pa, caps)) return this.fail('VMPTRLD', op, VMXERR.VMPTRLD_INVALID_ADDRESS);
    if (pa === this.vmxonPtr) return this.fail('VMPTRLD', op, VMXERR.VMPTRLD_VMXON_POINTER);
    this.region('VMPTRLD', pa, 4096, false);
    const rev = this.host.phys.read32(Number(pa));
    const shadowOk = ((caps.proc2_1 >>> 14) & 1) === 1;
    if ((rev & 0x7fffffff) !== caps.revision || (rev >>> 31 === 1 && !shadowOk)) {
      return this.fail('VMPTRLD', op, VMXERR.VMPTRLD_INCORRECT_REVISION_ID);
    }
    let v = this.vmcs.get(pa);
    if (!v) {
      if (this.requireVmclearBeforeVmptrld) {
        const why = this.corrupted.get(pa);
        this.host.fault(`VMPTRLD ${op}: the region holds no initialised VMCS` +
          (why ? ` (its VMCS was lost: ${why})` : '') +
          ' (SDM Vol. 3C 25.11.3: VMCLEAR a region before its first VMPTRLD)');
      }
      v = { addr: pa, launch: 'clear', active: false, shadow: false, fields: new Map() };
      this.vmcs.set(pa, v);
    }
    v.active = true;
    v.shadow = rev >>> 31 === 1;
    this.currentVmcs = pa;
    return this.ok('VMPTRLD', op);
  }

  vmptrst(): bigint {
    this.requireVmxOperation('VMPTRST');
    const r = this.currentVmcs ?? INVALID_VMCS_POINTER;
    this.log('VMPTRST', undefined, r);
    return r;
  }

  vmread(enc: number): { status: number; value: bigint } {
    this.requireVmxOperation('VMREAD');
    const op = new FieldOp(enc);
    const v = this.current();
    if (!v) {
      this.log('VMREAD', op, 1);
      return { status: 1, value: 0n };
    }
    const f = lookupField(enc, this.caps());
    if (!f) return { status: this.fail('VMREAD', op, VMXERR.UNSUPPORTED_VMCS_COMPONENT), value: 0n };
    const raw = v.fields.get(f.base) ?? 0n;
    const value = f.high ? raw >> 32n : raw;
    this.log('VMREAD', op, 0);
    return { status: 0, value };
  }

  vmwrite(enc: number, value: bigint): number {
    this.requireVmxOperation('VMWRITE');
    const op = new FieldOp(enc, value);
    const v = this.current();
    if (!v) {
      this.log('VMWRITE', op, 1);
      return 1;
    }
    const caps = this.caps();
    const f = lookupField(enc, caps);
    if (!f) return this.fail('VMWRITE', op, VMXERR.UNSUPPORTED_VMCS_COMPONENT);
    // IA32_VMX_MISC[29]: VMWRITE may write the VM-exit information fields.
    if (isReadOnly(f.base) && ((caps.misc >> 29n) & 1n) === 0n) {
      return this.fail('VMWRITE', op, VMXERR.VMWRITE_READ_ONLY_COMPONENT);
    }
    if (f.high) {
      const old = v.fields.get(f.base) ?? 0n;
      v.fields.set(f.base, (old & 0xffffffffn) | ((value & 0xffffffffn) << 32n));
    } else {
      v.fields.set(f.base, truncate(f.width, value));
    }
    return this.ok('VMWRITE', op);
  }

  invept(type: number, eptp: bigint): number {
    this.requireVmxOperation('INVEPT');
    const caps = this.caps();
    const op = `type ${type}, EPTP ${hex(eptp)}`;
    if (!(caps.proc2_1 & (1 << 1)) || !((caps.eptVpidCap >> 20n) & 1n)) {
      this.host.fault('#UD: INVEPT on a processor without EPT or without INVEPT (IA32_VMX_EPT_VPID_CAP bit 20)');
    }
    // Type 1 single-context needs EPT_VPID_CAP bit 25, type 2 all-context bit 26.
    const supported = (type === 1 && (caps.eptVpidCap >> 25n) & 1n) || (type === 2 && (caps.eptVpidCap >> 26n) & 1n);
    if (!supported) return this.fail('INVEPT', op, VMXERR.INVALID_OPERAND_INVEPT_INVVPID);
    if (type === 1 && eptpProblem(eptp, caps)) return this.fail('INVEPT', op, VMXERR.INVALID_OPERAND_INVEPT_INVVPID);
    return this.ok('INVEPT', op);
  }

  // vpid arrives as the import passes it; the C import builds the descriptor
  // from vpid & 0xffff (boot/imports/vmx.c), so bits 63:16 are always zero.
  invvpid(type: number, vpid: number, linear: bigint): number {
    this.requireVmxOperation('INVVPID');
    const caps = this.caps();
    vpid &= 0xffff;
    const op = `type ${type}, VPID ${vpid}, ${hex(linear)}`;
    if (!(caps.proc2_1 & (1 << 5)) || !((caps.eptVpidCap >> 32n) & 1n)) {
      this.host.fault('#UD: INVVPID on a processor without VPID or without INVVPID (IA32_VMX_EPT_VPID_CAP bit 32)');
    }
    // Types 0-3 need EPT_VPID_CAP bits 40-43.
    if (type < 0 || type > 3 || !((caps.eptVpidCap >> BigInt(40 + type)) & 1n)) {
      return this.fail('INVVPID', op, VMXERR.INVALID_OPERAND_INVEPT_INVVPID);
    }
    if (type !== 2 && vpid === 0) return this.fail('INVVPID', op, VMXERR.INVALID_OPERAND_INVEPT_INVVPID);
    if (type === 0 && !canonical(linear, this.linearBits())) return this.fail('INVVPID', op, VMXERR.INVALID_OPERAND_INVEPT_INVVPID);
    return this.ok('INVVPID', op);
  }

  // VMLAUNCH / VMRESUME up to the guest-state checks (27.1, 27.2). Not an
  // import yet; tests and a future vmx.enter import use it.
  enter(launch: boolean): number {
    const insn = launch ? 'VMLAUNCH' : 'VMRESUME';
    this.requireVmxOperation(insn);
    this.lastEntryProblems = [];
    const v = this.current();
    if (!v || v.shadow) {
      // 27.1: no current VMCS, or the current VMCS is a shadow VMCS: CF=1.
      this.log(insn, undefined, 1);
      return 1;
    }
    // (events blocked by MOV SS: never, the kernel does not load SS)
    if (launch && v.launch !== 'clear') return this.fail(insn, undefined, VMXERR.VMLAUNCH_NONCLEAR_VMCS);
    if (!launch && v.launch !== 'launched') return this.fail(insn, undefined, VMXERR.VMRESUME_NONLAUNCHED_VMCS);
    const env: EntryEnv = {
      caps: this.caps(),
      read: (e) => v.fields.get(e) ?? 0n,
      readPhys32: (pa) => (pa + 4 <= this.host.phys.size ? this.host.phys.read32(pa) : 0xffffffff),
      linearBits: this.linearBits(),
      ia32eMode: ((this.host.efer() >> 10n) & 1n) === 1n,
      inSmm: false,
    };
    const ctl = checkControls(env);
    if (ctl.length) {
      this.lastEntryProblems = ctl;
      return this.fail(insn, ctl[0], VMXERR.ENTRY_INVALID_CONTROL_FIELD);
    }
    const host = checkHostState(env);
    if (host.length) {
      this.lastEntryProblems = host;
      return this.fail(insn, host[0], VMXERR.ENTRY_INVALID_HOST_STATE_FIELD);
    }
    if (launch) v.launch = 'launched';
    this.log(insn, undefined, 0);
    this.guest?.(this, v, launch);
    return 0;
  }

  // ---- for tests: direct field access, bypassing the instruction rules ----
  field(enc: number, addr?: bigint): bigint {
    const v = addr === undefined ? this.current() : this.vmcs.get(addr);
    return v?.fields.get(enc & ~1) ?? 0n;
  }
  setField(enc: number, value: bigint, addr?: bigint): void {
    const v = addr === undefined ? this.current() : this.vmcs.get(addr);
    if (!v) throw new Error('setField: no such VMCS');
    v.fields.set(enc & ~1, value);
  }
}
