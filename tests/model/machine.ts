// The model machine: one logical processor (registers, MSRs, CPUID), physical
// memory, a console, port I/O, and the software VMX; `imports()` turns it into
// the import object kernel.wasm is instantiated with, one function per import
// declared in kernel/hw/*.ts plus AssemblyScript's env.abort.
//
// Three ways a run ends, all thrown out of an import and caught by run.ts:
//   - ExitSignal: sys.exit (after printing the C runtime's final line);
//   - MachineFault: the kernel did something the hardware would fault on, or
//     the C imports would refuse (#GP, #UD, bad physical access, failed
//     VMREAD/VMWRITE): a kernel bug at this level, recorded in `faults`;
//   - a wasm trap (RuntimeError) or env.abort: printed like boot/rt does.
import { PhysMem } from './phys.ts';
import { Vmx } from './vmx.ts';
import { CR0, CR0_DEFINED, CR4, EFER, MSR, hex, msrName } from './consts.ts';
import { fieldName } from './vmcs-fields.ts';
import * as C from './vmx-consts.ts';

export type Regs = [number, number, number, number]; // EAX, EBX, ECX, EDX
export type CpuidEntry = Regs | ((sub: number, m: Machine) => Regs);

export interface MsrDef {
  value: bigint;
  read?: (m: Machine) => bigint; // dynamic value (e.g. IA32_TSC)
  // WRMSR: null = not writable (#GP); otherwise returns a #GP reason, or
  // null to accept (the value is then stored, as returned by `store` if given).
  write: ((v: bigint, m: Machine) => string | null) | null;
  store?: (v: bigint, m: Machine) => bigint;
}

export interface MachineConfig {
  name: string;
  memSize: number;
  cpuid: Map<number, CpuidEntry>;
  msrs: Map<number, MsrDef>;
  absentMsrReasons?: Map<number, string>; // why an MSR is absent, for fault messages
  cr0: bigint; cr2?: bigint; cr3: bigint; cr4: bigint; cr8?: bigint;
  cr4Supported: bigint; // CR4 bits the processor implements; setting others is #GP
  tsc?: bigint; // initial TSC
  tscStep?: bigint; // added on every import call
}

export interface IoEvent { dir: 'in' | 'out'; port: number; size: number; value: number }
export interface PortHandler { read?(size: number): number; write?(size: number, value: number): void }
// A device register window reached through mem.read*/write* (e.g. the local
// APIC at 0xfee00000); offsets are relative to base.
export interface MmioHandler {
  base: number; end: number;
  read?(off: number, size: number): bigint;
  write?(off: number, size: number, value: bigint): void;
}

export const STATUS_NAMES = ['ok', 'fail', 'no-vtx', 'vmx-locked', 'vmx-setup', 'trap', 'exception', 'boot'];

export class ExitSignal extends Error {
  constructor(readonly status: number) { super(`sys.exit(${status})`); }
}
export class MachineFault extends Error {}

export class Machine {
  readonly name: string;
  readonly phys: PhysMem;
  readonly vmx: Vmx;
  readonly cpuid: Map<number, CpuidEntry>;
  readonly msrs: Map<number, MsrDef>;
  readonly absentMsrReasons: Map<number, string>;
  readonly crs = new Map<number, bigint>();
  cr4Supported: bigint;
  tsc: bigint;
  tscStep: bigint;
  console = '';
  echo = process.env.HV_MODEL_ECHO === '1'; // copy console output to stderr live
  readonly ioLog: IoEvent[] = [];
  readonly ports = new Map<number, PortHandler>();
  readonly mmio: MmioHandler[] = [];
  readonly faults: string[] = [];
  readonly calls = new Map<string, number>(); // import name -> number of calls
  halts = 0;
  onHalt: ((m: Machine) => void) | null = null;
  // Processors: the kernel thread runs on cpuIndex; cpu.migrate moves it.
  cpuCount = 1;
  regsPtr = 0; // the register block of the last vmx.enter (boot/entry/vmenter.S layout)
  xcr0 = 1n;
  // DR0-DR3, DR6, DR7 of the processor the kernel runs on (index =
  // register number; DR4/DR5 unused): what the guest left in them. Each
  // processor has its own.
  private readonly drBanks: bigint[][] = [];
  get drs(): bigint[] {
    return (this.drBanks[this.cpuIndex] ??= [0n, 0n, 0n, 0n, 0n, 0n, 0xffff0ff0n, 0x400n]);
  }
  xstateOps: { op: string; mask: bigint; xcr0: bigint; cpu: number }[] = []; // cpu.xsave/xrstor calls
  eois = 0; // cpu.eoi calls
  cpuIndex = 0;
  exitStatus: number | null = null;
  bootInfo: bigint | null = null; // set by bootinfo.ts
  kernelMemory: WebAssembly.Memory | null = null; // set by run.ts

  constructor(c: MachineConfig) {
    this.name = c.name;
    this.phys = new PhysMem(c.memSize);
    this.cpuid = c.cpuid;
    this.msrs = c.msrs;
    this.absentMsrReasons = c.absentMsrReasons ?? new Map();
    this.crs.set(0, c.cr0).set(2, c.cr2 ?? 0n).set(3, c.cr3).set(4, c.cr4).set(8, c.cr8 ?? 0n);
    this.cr4Supported = c.cr4Supported;
    this.tsc = c.tsc ?? 1_000_000n;
    this.tscStep = c.tscStep ?? 100n;
    this.vmx = new Vmx(this);
  }

  // ---- processor state ------------------------------------------------------
  cr(n: number): bigint { return this.crs.get(n) ?? 0n; }
  efer(): bigint { return this.msrPeek(MSR.IA32_EFER) ?? 0n; }
  msrPeek(n: number): bigint | undefined {
    const d = this.msrs.get(n);
    const own = d ? this.bank(n)?.get(n) : undefined;
    if (own !== undefined) return own;
    return d ? (d.read ? d.read(this) : d.value) : undefined;
  }
  // Bumped whenever an MSR changes (setMsr, removeMsr, WRMSR): lets the VMX
  // model keep its capabilities decoded between changes.
  msrGeneration = 0;
  setMsr(n: number, value: bigint): void {
    this.msrGeneration++;
    const d = this.msrs.get(n);
    const b = d ? this.bank(n) : null;
    if (b) b.set(n, value);
    else if (d) d.value = value;
    else this.msrs.set(n, { value, write: null });
  }
  removeMsr(n: number, reason: string): void {
    this.msrGeneration++;
    this.msrs.delete(n);
    this.absentMsrReasons.set(n, reason);
  }

  // CPUID as the processor answers it. Leaves above the maximum basic leaf
  // (CPUID.0:EAX), or above the maximum extended leaf, return the data of the
  // highest basic leaf -- what Intel processors do (SDM Vol. 2A CPUID, "If a
  // value entered for CPUID.EAX is higher than the maximum input value ...").
  // Leaves within range that the table does not define return zeros.
  cpuidRaw(leaf: number, sub: number): Regs {
    leaf >>>= 0;
    sub >>>= 0;
    const maxBasic = this.entry(0, 0)?.[0] ?? 0;
    const maxExt = this.entry(0x80000000, 0)?.[0] ?? 0;
    if (leaf >= 0x80000000 ? leaf > maxExt : leaf > maxBasic) leaf = maxBasic;
    return this.entry(leaf, sub) ?? [0, 0, 0, 0];
  }
  private entry(leaf: number, sub: number): Regs | undefined {
    const e = this.cpuid.get(leaf);
    if (e === undefined) return undefined;
    const r = typeof e === 'function' ? e(sub, this) : e;
    return r.map((x) => x >>> 0) as Regs;
  }
  cpuidBit(leaf: number, reg: 0 | 1 | 2 | 3, bit: number): boolean {
    return ((this.cpuidRaw(leaf, 0)[reg] >>> bit) & 1) === 1;
  }
  maxPhysAddr(): number { return this.cpuidRaw(0x80000008, 0)[0] & 0xff; }

  // Each processor has its own VMX operation, VMXON region and current
  // VMCS (SDM Vol. 3C 25.11.1: the current-VMCS pointer is per logical
  // processor); the VMCS regions themselves are memory, shared.
  private readonly vmxOf: { inVmx: boolean; vmxon: bigint | null; current: bigint | null }[] = [];
  switchCpu(t: number): void {
    const v = this.vmx;
    this.vmxOf[this.cpuIndex] = { inVmx: v.inVmxOperation, vmxon: v.vmxonPtr, current: v.currentVmcs };
    const n = this.vmxOf[t] ?? { inVmx: false, vmxon: null, current: null };
    v.inVmxOperation = n.inVmx;
    v.vmxonPtr = n.vmxon;
    v.currentVmcs = n.current;
    this.cpuIndex = t;
  }

  // ---- ending a run -----------------------------------------------------------
  // XSAVE/XRSTOR (cpu.xsave/xrstor): #UD without CR4.OSXSAVE, #GP on an
  // area not 64-byte aligned (SDM Vol. 1 13.7/13.8); the kernel always
  // widens XCR0 to the mask first, so a mask outside XCR0 is a kernel bug.
  xstateOp(op: string, area: number, size: number, mask: bigint): void {
    if (!(this.cr(4) & (1n << 18n))) this.fault(`#UD: ${op} with CR4.OSXSAVE clear`);
    if (area % 64 !== 0) this.fault(`#GP: ${op} area 0x${area.toString(16)} not 64-byte aligned`);
    if (size < 576) this.fault(`${op}: area of ${size} bytes is smaller than the legacy area and header`);
    if (mask & ~this.xcr0) this.fault(`${op}: mask 0x${mask.toString(16)} outside XCR0 0x${this.xcr0.toString(16)}`);
    this.xstateOps.push({ op, mask, xcr0: this.xcr0, cpu: this.cpuIndex });
  }

  fault(msg: string): never {
    this.faults.push(msg);
    throw new MachineFault(msg);
  }
  print(s: string): void {
    this.console += s;
    if (this.echo) process.stderr.write(s);
  }
  exit(status: number): never {
    status >>>= 0;
    if (this.exitStatus === null) {
      this.exitStatus = status;
      this.print(`hv: exit status=${status} (${STATUS_NAMES[status] ?? 'unknown'})\n`);
    }
    throw new ExitSignal(status);
  }
  // A trap as boot/rt/wasm-rt.c reports it: "hv: trap: <what>", status 5.
  trap(what: string): never {
    this.print(`hv: trap: ${what}\n`);
    return this.exit(5);
  }

  // ---- control registers (SDM Vol. 3A 2.5, Vol. 3C 24.8) --------------------
  writeCr(n: number, v: bigint): void {
    v = BigInt.asUintN(64, v);
    const gp = (why: string): never => this.fault(`#GP(0): MOV CR${n}, ${hex(v)}: ${why}`);
    const lma = (this.efer() & EFER.LMA) !== 0n;
    const inVmx = this.vmx.inVmxOperation;
    switch (n) {
      case 0: {
        if (v >> 32n) gp('bits 63:32 are reserved');
        if ((v & CR0.PG) && !(v & CR0.PE)) gp('PG=1 with PE=0');
        if ((v & CR0.NW) && !(v & CR0.CD)) gp('NW=1 with CD=0');
        if (lma && !(v & CR0.PG)) gp('clearing PG in 64-bit mode');
        v = (v & CR0_DEFINED) | CR0.ET; // other bits of 31:0 are ignored; ET is fixed to 1
        if (inVmx) this.checkFixed(0, v, MSR.IA32_VMX_CR0_FIXED0, MSR.IA32_VMX_CR0_FIXED1, gp);
        break;
      }
      case 2: break;
      case 3: {
        const pcide = (this.cr(4) & CR4.PCIDE) !== 0n;
        const val = pcide ? v & ~(1n << 63n) : v; // bit 63 = no-flush hint with PCIDE, not stored
        if (val >> BigInt(this.maxPhysAddr())) gp(`bits beyond MAXPHYADDR (${this.maxPhysAddr()}) are set`);
        v = val;
        break;
      }
      case 4: {
        const old = this.cr(4);
        if (v & ~this.cr4Supported) {
          const bad = v & ~this.cr4Supported;
          gp(bad & CR4.VMXE ? 'CR4.VMXE is reserved: CPUID.1:ECX.VMX[bit 5] = 0'
            : `reserved bits ${hex(bad)} (not implemented by this processor)`);
        }
        if (lma && !(v & CR4.PAE)) gp('clearing PAE in 64-bit mode');
        if (lma && ((v ^ old) & CR4.LA57)) gp('changing LA57 in 64-bit mode');
        if ((v & CR4.PCIDE) && !(old & CR4.PCIDE) && (this.cr(3) & 0xfffn)) gp('setting PCIDE with CR3[11:0] != 0');
        if (inVmx) this.checkFixed(4, v, MSR.IA32_VMX_CR4_FIXED0, MSR.IA32_VMX_CR4_FIXED1, gp);
        break;
      }
      case 8:
        if (v >> 4n) gp('bits 63:4 are reserved');
        break;
      default:
        this.fault(`#UD: MOV to CR${n} (no such control register; the C import traps)`);
    }
    this.crs.set(n, v);
  }
  // In VMX operation, CR0/CR4 bits fixed by IA32_VMX_CRn_FIXED0/1 cannot change (24.8).
  private checkFixed(n: number, v: bigint, f0: number, f1: number, gp: (w: string) => never): void {
    const fixed0 = this.msrPeek(f0) ?? 0n, fixed1 = this.msrPeek(f1) ?? ~0n;
    const bad = (~v & fixed0) | (v & ~fixed1);
    if (bad) gp(`in VMX operation bits ${hex(bad)} are fixed by IA32_VMX_CR${n}_FIXED0 ${hex(fixed0)} / FIXED1 ${hex(fixed1)} (SDM 24.8)`);
  }

  // MSRs each processor has its own copy of that the tests move between
  // processors (cpu.migrate): the ones VMX does not switch, which carry a
  // guest's values while the hypervisor runs (vm/vmcs01.ts UNSWITCHED). A
  // processor's copy starts as the configured value; the others are shared.
  static readonly LOCAL_MSRS = new Set<number>([0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102, 0xc0000103]);
  private readonly msrBanks: Map<number, bigint>[] = [];
  private bank(n: number): Map<number, bigint> | null {
    if (!Machine.LOCAL_MSRS.has(n)) return null;
    return (this.msrBanks[this.cpuIndex] ??= new Map());
  }
  readMsr(n: number): bigint {
    const d = this.msrs.get(n);
    if (!d) {
      const why = this.absentMsrReasons.get(n);
      this.fault(`#GP(0): RDMSR ${msrName(n)} (absent${why ? `: ${why}` : ''})`);
    }
    const own = this.bank(n)?.get(n);
    if (own !== undefined) return own;
    return d.read ? d.read(this) : d.value;
  }
  writeMsr(n: number, v: bigint): void {
    v = BigInt.asUintN(64, v);
    const d = this.msrs.get(n);
    const gp = (why: string): never => this.fault(`#GP(0): WRMSR ${msrName(n)}, ${hex(v)}: ${why}`);
    if (!d) return gp(`absent${this.absentMsrReasons.has(n) ? `: ${this.absentMsrReasons.get(n)}` : ''}`);
    if (!d.write) return gp('read-only MSR');
    const why = d.write(v, this);
    if (why) gp(why);
    this.msrGeneration++;
    const stored = d.store ? d.store(v, this) : v;
    const b = this.bank(n);
    if (b) b.set(n, stored);
    else d.value = stored;
  }

  // ---- linear memory of the kernel -------------------------------------------
  // The guest's general registers in the kernel's register block, by
  // hardware register number (0 RAX, 1 RCX, 2 RDX, 3 RBX, 5 RBP, 6 RSI,
  // 7 RDI, 8-15 R8-R15), for guest scripts.
  guestReg(n: number): bigint {
    return new DataView(this.linear(this.regsPtr + n * 8, 8).slice().buffer).getBigUint64(0, true);
  }
  setGuestReg(n: number, v: bigint): void {
    new DataView(this.linear(this.regsPtr + n * 8, 8).buffer, this.regsPtr + n * 8, 8).setBigUint64(0, BigInt.asUintN(64, v), true);
  }

  // The selected entries of a field list (boot/imports/vmx.c): for each, its
  // index, encoding, and its value's slot at base + offset (2, 4 or 8 bytes
  // by the encoding's width), read and written with fieldGet/fieldSet. (No
  // closures per entry: this runs for every nested entry and exit.)
  private fieldList(what: string, list: number, n: number, base: number, mask: bigint,
    each: (k: number, enc: number, slot: FieldSlot) => void): void {
    const count = n >>> 0;
    if (count > 64) this.fault(`vmx.${what}: ${count} entries (at most 64)`);
    const l = this.linear(list >>> 0, C.FL_BYTES);
    const b = this.linear(base >>> 0, 4096);
    const lv = new DataView(l.buffer, l.byteOffset, l.byteLength);
    const slot: FieldSlot = { view: new DataView(b.buffer, b.byteOffset, b.byteLength), off: 0, width: 0 };
    const m = BigInt.asUintN(64, mask);
    for (let k = 0; k < count; k++) {
      if (((m >> BigInt(k)) & 1n) === 0n) continue;
      // The FL_* block (kernel/nested/fieldlist.ts): encoding, offset and
      // width mask of entry k; the mask must be the encoding's width's.
      const enc = lv.getUint16(C.FL_ENC + 2 * k, true);
      slot.off = lv.getUint16(C.FL_OFF + 2 * k, true);
      slot.width = (enc >>> 13) & 3;
      const wm = lv.getBigUint64(C.FL_WMASK + 8 * k, true);
      const want = slot.width === 0 ? 0xffffn : slot.width === 2 ? 0xffffffffn : 0xffffffffffffffffn;
      if (slot.off >= 4096 || wm !== want) this.fault(`vmx.${what}: entry ${k} (${hex(enc)}) has offset ${slot.off}, width mask ${wm.toString(16)}`);
      each(k, enc, slot);
    }
  }

  private linear(ptr: number, len: number): Uint8Array {
    const mem = this.kernelMemory;
    if (!mem) throw new Error('kernel memory not attached');
    if (ptr + len > mem.buffer.byteLength) this.trap('wasm out-of-bounds linear memory or table access');
    return new Uint8Array(mem.buffer, ptr, len);
  }
  // An AssemblyScript string (UTF-16LE, byte length in the u32 before it).
  asString(ptr: number): string {
    if (ptr < 4) return '?';
    const bytes = new DataView(this.linear(ptr - 4, 4).slice().buffer).getUint32(0, true);
    const b = this.linear(ptr, bytes);
    let s = '';
    for (let i = 0; i + 1 < bytes; i += 2) {
      const c = b[i] | (b[i + 1] << 8);
      s += c < 0x80 ? String.fromCharCode(c) : '?';
    }
    return s;
  }

  // ---- physical memory through the mem.* imports ----------------------------
  private physCheck(op: string, pa: bigint, len: bigint, write: boolean): number {
    const why = this.phys.check(op, pa, len, write);
    if (why) this.fault(why);
    return Number(pa);
  }

  // ---- the import object --------------------------------------------------------
  imports(): WebAssembly.Imports {
    const u32 = (x: number): number => x >>> 0;
    const u64 = (x: bigint): bigint => BigInt.asUintN(64, x);
    const vmxStatus = (insn: string, enc: number, status: number): void => {
      if (status === 0) return;
      const err = status === 2 ? Number(this.vmx.field(0x4400)) : 0;
      this.fault(`${insn} of field ${hex(enc)} (${fieldName(enc)}) failed: ` +
        (status === 1 ? 'VMfailInvalid (no current VMCS)' : `VMfailValid, VM-instruction error ${err}`));
    };
    const device = (pa: bigint, size: number): MmioHandler | undefined =>
      this.mmio.find((d) => pa >= BigInt(d.base) && pa + BigInt(size) <= BigInt(d.end));
    const readN = (size: number, pa: bigint): bigint => {
      const d = device(pa, size);
      if (d) return BigInt.asUintN(size * 8, d.read ? d.read(Number(pa) - d.base, size) : -1n);
      return this.phys.readInt(this.physCheck(`read${size * 8}`, pa, BigInt(size), false), size);
    };
    const writeN = (size: number, pa: bigint, v: bigint): void => {
      const d = device(pa, size);
      if (d) d.write?.(Number(pa) - d.base, size, BigInt.asUintN(size * 8, v));
      else this.phys.writeInt(this.physCheck(`write${size * 8}`, pa, BigInt(size), true), size, v);
    };
    const read = (size: number) => (pa: bigint): number => Number(readN(size, u64(pa)));
    const write = (size: number) => (pa: bigint, v: number): void => writeN(size, u64(pa), BigInt(u32(v)));
    const modules: Record<string, Record<string, (...a: any[]) => any>> = {
      env: {
        abort: (msg: number, file: number, line: number, col: number) =>
          this.trap(`abort: ${this.asString(u32(msg))} at ${this.asString(u32(file))}:${u32(line)}:${u32(col)}`),
      },
      con: {
        write: (ptr: number, len: number) => {
          const b = this.linear(u32(ptr), u32(len));
          let s = '';
          for (const c of b) s += String.fromCharCode(c);
          this.print(s);
        },
      },
      cpu: {
        cpuid: (leaf: number, sub: number, out: number) => {
          const r = this.cpuidRaw(u32(leaf), u32(sub));
          const dv = new DataView(this.linear(u32(out), 16).buffer, u32(out), 16);
          r.forEach((x, i) => dv.setUint32(i * 4, x, true));
        },
        rdmsr: (n: number) => this.readMsr(u32(n)),
        wrmsr: (n: number, v: bigint) => this.writeMsr(u32(n), u64(v)),
        readcr: (n: number) => {
          n = u32(n);
          if (![0, 2, 3, 4, 8].includes(n)) this.fault(`#UD: MOV from CR${n} (no such control register; the C import traps)`);
          return this.cr(n);
        },
        writecr: (n: number, v: bigint) => this.writeCr(u32(n), u64(v)),
        readdr: (n: number) => {
          n = u32(n);
          if (![0, 1, 2, 3, 6, 7].includes(n)) this.fault(`#UD: MOV from DR${n} (DR4/DR5 with CR4.DE, or no such register; the C import traps)`);
          return this.drs[n];
        },
        writedr: (n: number, v: bigint) => {
          n = u32(n);
          v = u64(v);
          if (![0, 1, 2, 3, 6, 7].includes(n)) this.fault(`#UD: MOV to DR${n}`);
          if ((n === 6 || n === 7) && v >> 32n) this.fault(`#GP(0): MOV to DR${n} with bits 63:32 set (${hex(v)})`);
          // DR6 bits 4-11 and 16-31 read as 1 (no RTM here), DR7 bit 10 too (SDM Vol. 3B 17.2.3, 17.2.4).
          this.drs[n] = n === 6 ? v | 0xffff0ff0n : n === 7 ? v | 0x400n : v;
        },
        rdtsc: () => this.tsc,
        index: () => this.cpuIndex,
        xsetbv: (idx: number, v: bigint) => {
          if (!(this.cr(4) & (1n << 18n))) this.fault('#UD: XSETBV with CR4.OSXSAVE clear');
          this.xcr0 = u64(v);
          void idx;
        },
        xsave: (area: number, size: number, mask: bigint) => {
          this.xstateOp('XSAVE', u32(area), u32(size), u64(mask));
        },
        xrstor: (area: number, size: number, mask: bigint) => {
          this.xstateOp('XRSTOR', u32(area), u32(size), u64(mask));
        },
        wbinvd: () => {},
        eoi: () => {
          this.eois++;
        },
        count: () => this.cpuCount,
        // One kernel thread here: spawn refuses (vm/guest.ts then stops
        // the guest), a kick only marks, wait jumps the TSC to the deadline.
        spawn: () => 0,
        kick: () => {},
        wait: (deadline: bigint) => {
          const d = u64(deadline);
          if (d === 0xffffffffffffffffn) this.fault('cpu.wait with no deadline: nothing in the model can end it');
          if (this.tsc < d) this.tsc = d;
        },
        solo: () => 1,
        migrate: (t: number) => {
          t = u32(t);
          if (t >= this.cpuCount) return 0;
          this.switchCpu(t);
          return 1;
        },
        hoststate: (out: number) => {
          // The host state boot/smp/smp.c reports: CR3, GDTR, IDTR, TR base,
          // FS/GS base and the selectors (CS 0x08, SS/DS 0x10, TR 0x18);
          // per-CPU tables 0x1000 apart.
          const dv = new DataView(this.linear(u32(out), 56).buffer, u32(out), 56);
          const c = BigInt(this.cpuIndex) * 0x1000n;
          const vals = [this.cr(3), 0x200000n + c, 0x210000n + c, 0x220000n + c, 0n, 0n,
            0x08n | (0x10n << 16n) | (0x10n << 32n) | (0x18n << 48n)];
          vals.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
        },
      },
      io: {
        inp: (port: number, size: number) => {
          port = u32(port);
          size = u32(size);
          this.checkPort('io.inp', port, size);
          const h = this.ports.get(port);
          const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
          const value = (h?.read ? h.read(size) : 0xffffffff) & mask;
          this.ioLog.push({ dir: 'in', port, size, value: value >>> 0 });
          return value;
        },
        outp: (port: number, size: number, value: number) => {
          port = u32(port);
          size = u32(size);
          this.checkPort('io.outp', port, size);
          const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
          value = (u32(value) & mask) >>> 0;
          this.ioLog.push({ dir: 'out', port, size, value });
          this.ports.get(port)?.write?.(size, value);
        },
      },
      mem: {
        read8: read(1), read16: read(2), read32: read(4),
        read64: (pa: bigint) => readN(8, u64(pa)),
        write8: write(1), write16: write(2), write32: write(4),
        write64: (pa: bigint, v: bigint) => writeN(8, u64(pa), u64(v)),
        zero: (pa: bigint, len: bigint) => {
          if (u64(len) === 0n) return;
          this.phys.fill(this.physCheck('zero', u64(pa), u64(len), true), Number(u64(len)), 0);
        },
        copyin: (dst: number, pa: bigint, len: number) => {
          if (u32(len) === 0) return;
          const d = this.linear(u32(dst), u32(len));
          d.set(this.phys.read(this.physCheck('copyin', u64(pa), BigInt(u32(len)), false), u32(len)));
        },
        copyout: (pa: bigint, src: number, len: number) => {
          if (u32(len) === 0) return;
          const s = this.linear(u32(src), u32(len)).slice();
          this.phys.write(this.physCheck('copyout', u64(pa), BigInt(u32(len)), true), s);
        },
        fetchor64: (pa: bigint, bits: bigint) => {
          const old = readN(8, u64(pa));
          writeN(8, u64(pa), old | u64(bits));
          return old;
        },
        swap64: (pa: bigint, v: bigint) => {
          const old = readN(8, u64(pa));
          writeN(8, u64(pa), u64(v));
          return old;
        },
        or: (dst: bigint, a: bigint, b: bigint, len: bigint) => {
          const n = Number(u64(len));
          const x = this.phys.read(this.physCheck('or', u64(a), u64(len), false), n);
          const y = this.phys.read(this.physCheck('or', u64(b), u64(len), false), n);
          const out = new Uint8Array(n);
          for (let k = 0; k < n; k++) out[k] = x[k] | y[k];
          this.phys.write(this.physCheck('or', u64(dst), u64(len), true), out);
        },
        // Fields of a 4-KiB linear area to [dst, dst+len) by a list of u32
        // entries: destination offset 11:0, source offset 23:12, bytes (1-255) 31:24.
        scatter: (dst: bigint, len: number, src: number, list: number, n: number) => {
          if (u32(n) > 1024) this.fault(`mem.scatter: ${u32(n)} entries`);
          const d = this.physCheck('scatter', u64(dst), BigInt(u32(len)), true);
          const s = this.linear(u32(src), 4096);
          const l = this.linear(u32(list), u32(n) * 4);
          const lv = new DataView(l.buffer, l.byteOffset, l.byteLength);
          for (let k = 0; k < u32(n); k++) {
            const e = lv.getUint32(4 * k, true);
            const doff = e & 0xfff, soff = (e >>> 12) & 0xfff, size = e >>> 24;
            if (size === 0 || doff + size > u32(len) || soff + size > 4096) this.fault(`mem.scatter: entry ${k} (0x${e.toString(16)}) outside its areas`);
            this.phys.write(d + doff, s.slice(soff, soff + size));
          }
        },
        copy: (dst: bigint, src: bigint, len: bigint) => {
          const n = u64(len);
          if (n === 0n) return;
          const s = this.phys.read(this.physCheck('copy', u64(src), n, false), Number(n));
          this.phys.write(this.physCheck('copy', u64(dst), n, true), s);
        },
      },
      vmx: {
        vmxon: (pa: bigint) => this.vmx.vmxon(u64(pa)),
        vmxoff: () => this.vmx.vmxoff(),
        profile: (out: number) => {
          this.linear(u32(out), 96).fill(0);
        },
        // VMLAUNCH (the block's REGS_LAUNCHED = 0) or VMRESUME: the entry
        // checks, then the test's guest script plays the guest and writes
        // the exit fields; after an exit, as boot/imports/vmx.c does, the
        // block's launch state is set and its exit count incremented.
        enter: (regs: number) => {
          this.regsPtr = u32(regs);
          if ((this.regsPtr & 15) !== 0) this.fault(`vmx.enter: register block ${this.regsPtr} not 16-byte aligned (FXSAVE)`);
          if (!this.vmx.guest) this.fault('vmx.enter: the test gave the model no guest script (m.vmx.guest)');
          const slot = (off: number) => new DataView(this.linear(this.regsPtr + off, 8).buffer, this.regsPtr + off, 8);
          const r = this.vmx.enter(slot(C.REGS_LAUNCHED).getBigUint64(0, true) === 0n);
          if (r === 0) {
            slot(C.REGS_LAUNCHED).setBigUint64(0, 1n, true);
            slot(C.REGS_EXITS).setBigUint64(0, BigInt.asUintN(64, slot(C.REGS_EXITS).getBigUint64(0, true) + 1n), true);
          }
          return r;
        },
        vmclear: (pa: bigint) => this.vmx.vmclear(u64(pa)),
        vmptrld: (pa: bigint) => this.vmx.vmptrld(u64(pa)),
        vmcsswitch: (clear: bigint, load: bigint) => {
          if (u64(clear) !== 0n && this.vmx.vmclear(u64(clear)) !== 0) this.fault(`vmx.vmcsswitch: VMCLEAR of 0x${u64(clear).toString(16)} failed`);
          if (this.vmx.vmptrld(u64(load)) !== 0) this.fault(`vmx.vmcsswitch: VMPTRLD of 0x${u64(load).toString(16)} failed`);
        },
        vmptrst: () => this.vmx.vmptrst(),
        vmread: (enc: number) => {
          const r = this.vmx.vmread(u32(enc));
          vmxStatus('VMREAD', u32(enc), r.status);
          return r.value;
        },
        vmwrite: (enc: number, v: bigint) => vmxStatus('VMWRITE', u32(enc), this.vmx.vmwrite(u32(enc), u64(v))),
        // Field lists (boot/imports/vmx.c): u32 entries, encoding in bits
        // 15:0, byte offset from base in 27:16; the value is 2/4/8 bytes by
        // the encoding's width; base names a 4-KiB area; at most 64 entries.
        readfields: (list: number, n: number, base: number, mask: bigint) => {
          let changed = 0n;
          this.fieldList('readfields', list, n, base, mask, (k, enc, slot) => {
            const r = this.vmx.vmread(enc);
            vmxStatus('VMREAD', enc, r.status);
            if (fieldGet(slot) === r.value) return;
            fieldSet(slot, r.value);
            changed |= 1n << BigInt(k);
          });
          return changed;
        },
        writefields: (list: number, n: number, base: number, mask: bigint) => {
          this.fieldList('writefields', list, n, base, mask, (k, enc, slot) => {
            vmxStatus('VMWRITE', enc, this.vmx.vmwrite(enc, fieldGet(slot)));
          });
        },
        readlist: (id: number, base: number, mask: bigint) => {
          const list = C.READLISTS[id];
          if (!list) this.fault(`vmx.readlist: no list ${id}`);
          const b = this.linear(base >>> 0, 4096 + 8);
          const slot: FieldSlot = { view: new DataView(b.buffer, b.byteOffset, b.byteLength), off: 0, width: 0 };
          const m = BigInt.asUintN(64, mask);
          let changed = 0n;
          list.fields.forEach((f, k) => {
            if (((m >> BigInt(k)) & 1n) === 0n) return;
            const r = this.vmx.vmread(f.encoding);
            vmxStatus('VMREAD', f.encoding, r.status);
            slot.off = f.offset;
            slot.width = (f.encoding >>> 13) & 3;
            if (fieldGet(slot) === r.value) return;
            fieldSet(slot, r.value);
            changed |= 1n << BigInt(k);
          });
          return changed;
        },
        loadhoststate: (base: number, mask: bigint) => {
          const b = this.linear(base >>> 0, C.HOSTLOAD_COUNT * 8);
          const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
          const m = BigInt.asUintN(64, mask);
          for (const f of C.HOSTLOAD_FIELDS) {
            if (f.optional && ((m >> BigInt(f.slot)) & 1n) === 0n) continue;
            vmxStatus('VMWRITE', f.encoding, this.vmx.vmwrite(f.encoding, view.getBigUint64(8 * f.slot, true)));
          }
        },
        // The model is no Hyper-V L0: the kernel must never ask for the
        // enlightened VMCS here (kernel/vmx/evmcs.ts needs Hyper-V's CPUID).
        enlighten: (assist: bigint) => {
          this.fault(`vmx.enlighten(${hex(u64(assist))}): the model offers no Hyper-V enlightened VMCS`);
          return 0;
        },
        invept: (type: number, eptp: bigint) => this.vmx.invept(u32(type), u64(eptp)),
        invvpid: (type: number, vpid: number, la: bigint) => this.vmx.invvpid(u32(type), u32(vpid), u64(la)),
      },
      sys: {
        exit: (status: number) => this.exit(u32(status)),
        halt: () => {
          this.halts++;
          if (!this.onHalt) this.fault('sys.halt with no wake-up source: interrupts are masked, the machine would stop here forever');
          this.onHalt(this);
        },
      },
    };
    // Every import: count it, advance the TSC, refuse to run after the end.
    const out: WebAssembly.Imports = {};
    for (const [mod, fns] of Object.entries(modules)) {
      const wrapped: Record<string, (...a: any[]) => any> = {};
      for (const [name, fn] of Object.entries(fns)) {
        const key = `${mod}.${name}`;
        wrapped[name] = (...args: any[]) => {
          if (this.exitStatus !== null || this.faults.length) throw new MachineFault(`${key} called after the run ended`);
          this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
          this.tsc += this.tscStep;
          return fn(...args);
        };
      }
      out[mod] = wrapped;
    }
    return out;
  }

  private checkPort(op: string, port: number, size: number): void {
    if (size !== 1 && size !== 2 && size !== 4) this.fault(`${op}: size ${size} (must be 1, 2 or 4; the C import traps)`);
    if (port > 0xffff) this.fault(`${op}: port ${hex(port)} beyond the 16-bit I/O space`);
  }
}

// A value slot of a field list (width: the encoding's bits 14:13).
interface FieldSlot { view: DataView; off: number; width: number }
function fieldGet(s: FieldSlot): bigint {
  return s.width === 0 ? BigInt(s.view.getUint16(s.off, true)) : s.width === 2 ? BigInt(s.view.getUint32(s.off, true))
    : s.view.getBigUint64(s.off, true);
}
function fieldSet(s: FieldSlot, v: bigint): void {
  if (s.width === 0) s.view.setUint16(s.off, Number(v & 0xffffn), true);
  else if (s.width === 2) s.view.setUint32(s.off, Number(v & 0xffffffffn), true);
  else s.view.setBigUint64(s.off, v, true);
}
