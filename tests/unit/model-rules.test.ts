// The machine model itself, tested without the kernel: the SDM rules of
// tests/model (VMX instructions, capability MSRs, control registers, physical
// memory protection) and its agreement with the generated constants.
// Run: node --import tsx tests/unit/model-rules.test.ts
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tigerlake, noVmx, lockedOff, TIGERLAKE_VMX } from '../model/presets.ts';
import { Machine, MachineFault, ExitSignal } from '../model/machine.ts';
import { buildBootInfo } from '../model/bootinfo.ts';
import { runKernel, KERNEL_WASM } from '../model/run.ts';
import { CR4, MSR, VMXERR } from '../model/consts.ts';
import { FIELD_ENCODINGS, fieldWidth, fieldType, highestIndex } from '../model/vmcs-fields.ts';
import * as G from '../model/vmx-consts.ts';

const VMXON = 0x200000, VMCS = 0x201000, VMCS2 = 0x202000;

// A tigerlake machine with CR4.VMXE set and revision ids written.
function ready(opts = {}): Machine {
  const m = tigerlake(opts);
  m.writeCr(4, m.cr(4) | CR4.VMXE);
  for (const pa of [VMXON, VMCS, VMCS2]) m.phys.write32(pa, 4);
  return m;
}
function inRoot(opts = {}): Machine {
  const m = ready(opts);
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 0);
  return m;
}
function withVmcs(opts = {}): Machine {
  const m = inRoot(opts);
  assert.is(m.vmx.vmclear(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmptrld(BigInt(VMCS)), 0);
  return m;
}
function faults(m: Machine, fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MachineFault);
  assert.match(m.faults[m.faults.length - 1], re);
}
const err = (m: Machine): number => Number(m.vmx.field(0x4400));

test('VMXON: #UD without CR4.VMXE, #GP with FEATURE_CONTROL unlocked or fixed bits violated', () => {
  const a = tigerlake();
  a.phys.write32(VMXON, 4);
  faults(a, () => a.vmx.vmxon(BigInt(VMXON)), /^#UD: VMXON with CR4.VMXE = 0/);
  const b = ready({ featureControl: 0 });
  faults(b, () => b.vmx.vmxon(BigInt(VMXON)), /^#GP\(0\): VMXON with IA32_FEATURE_CONTROL 0x0 unlocked/);
  const c = ready();
  c.writeCr(0, c.cr(0) & ~0x20n); // clear NE outside VMX operation: allowed
  faults(c, () => c.vmx.vmxon(BigInt(VMXON)), /^#GP\(0\): VMXON with CR0 .* offending bits 0x20/);
});

test('VMXON: VMfailInvalid for bad pointer or revision; success enters VMX operation', () => {
  const m = ready();
  assert.is(m.vmx.vmxon(BigInt(VMXON + 8)), 1, 'unaligned');
  assert.is(m.vmx.vmxon(1n << 39n), 1, 'beyond MAXPHYADDR 39');
  m.phys.write32(VMXON, 0x2b);
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 1, 'wrong revision');
  m.phys.write32(VMXON, 0x80000004);
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 1, 'bit 31 set');
  m.phys.write32(VMXON, 4);
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 0);
  assert.ok(m.vmx.inVmxOperation);
  assert.is(m.vmx.vmxonPtr, BigInt(VMXON));
  assert.is(m.vmx.vmptrst(), 0xffffffffffffffffn);
});

test('VMXON twice: VMfailInvalid without a current VMCS, VMfailValid(15) with one', () => {
  const m = inRoot();
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 1);
  assert.is(m.vmx.vmclear(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmptrld(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 2);
  assert.is(err(m), VMXERR.VMXON_IN_ROOT);
});

test('VMCLEAR/VMPTRLD error numbers 2, 3, 9, 10, 11', () => {
  const m = inRoot();
  assert.is(m.vmx.vmptrld(BigInt(VMXON)), 1, 'no current VMCS: VMfailInvalid');
  assert.is(m.vmx.vmclear(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmptrld(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmptrld(BigInt(VMXON)), 2);
  assert.is(err(m), 10);
  assert.is(m.vmx.vmclear(BigInt(VMXON)), 2);
  assert.is(err(m), 3);
  assert.is(m.vmx.vmclear(0x201001n), 2);
  assert.is(err(m), 2);
  assert.is(m.vmx.vmptrld(1n << 40n), 2);
  assert.is(err(m), 9);
  m.phys.write32(VMCS2, 0x2b);
  assert.is(m.vmx.vmclear(BigInt(VMCS2)), 0, 'VMCLEAR does not check the revision');
  assert.is(m.vmx.vmptrld(BigInt(VMCS2)), 2);
  assert.is(err(m), 11);
  assert.is(m.vmx.vmptrst(), BigInt(VMCS));
});

test('VMCLEAR of the current VMCS invalidates the pointer; VMPTRLD needs a VMCLEARed region', () => {
  const m = withVmcs();
  assert.is(m.vmx.vmclear(BigInt(VMCS)), 0);
  assert.is(m.vmx.currentVmcs, null);
  assert.is(m.vmx.vmcs.get(BigInt(VMCS))?.launch, 'clear');
  faults(m, () => m.vmx.vmptrld(BigInt(VMCS2)), /VMPTRLD 0x202000: the region holds no initialised VMCS/);
});

test('VMREAD/VMWRITE: no current VMCS, unsupported field (12), read-only (13), widths', () => {
  const m = inRoot();
  assert.equal(m.vmx.vmread(0x4402), { status: 1, value: 0n });
  assert.is(m.vmx.vmwrite(0x4402, 1n), 1);
  assert.is(m.vmx.vmclear(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmptrld(BigInt(VMCS)), 0);
  assert.is(m.vmx.vmread(0x0002).status, 2, 'posted-interrupt vector: no posted interrupts');
  assert.is(err(m), 12);
  assert.is(m.vmx.vmread(0x6801).status, 2, 'high access of a natural-width field');
  assert.is(m.vmx.vmread(0x1800).status, 2, 'bit 12 set');
  assert.is(m.vmx.vmwrite(0x2034, 0n), 2, 'tertiary controls: not offered');
  assert.is(err(m), 12);
  assert.is(m.vmx.vmwrite(0x4402, 5n), 0, 'VMX_MISC[29] set: exit-information fields are writable');
  assert.is(m.vmx.vmwrite(0x0800, 0x12345n), 0);
  assert.is(m.vmx.vmread(0x0800).value, 0x2345n, '16-bit');
  assert.is(m.vmx.vmwrite(0x4004, 0x1_0000_0001n), 0);
  assert.is(m.vmx.vmread(0x4004).value, 1n, '32-bit');
  assert.is(m.vmx.vmwrite(0x2010, 0x1111_2222_3333_4444n), 0);
  assert.is(m.vmx.vmwrite(0x2011, 0xaaaa_bbbbn), 0);
  assert.is(m.vmx.vmread(0x2010).value, 0xaaaa_bbbb_3333_4444n, 'high access writes bits 63:32');
  assert.is(m.vmx.vmread(0x2011).value, 0xaaaa_bbbbn);

  const n = withVmcs({ vmwriteAnyField: false });
  assert.is(n.vmx.vmwrite(0x4402, 5n), 2);
  assert.is(err(n), 13);
  assert.is(n.vmx.vmwrite(0x6400, 5n), 2);
  assert.is(err(n), 13);
});

test('failed vmread/vmwrite through the imports are machine faults', () => {
  const m = withVmcs({ vmwriteAnyField: false });
  const imp = m.imports() as any;
  faults(m, () => imp.vmx.vmwrite(0x4402, 1n), /VMWRITE of field 0x4402 \(VM_EXIT_REASON\) failed: VMfailValid, VM-instruction error 13/);
});

test('VMXOFF: #UD outside VMX operation; active VMCSs are lost', () => {
  const a = ready();
  faults(a, () => a.vmx.vmxoff(), /^#UD: VMXOFF outside VMX operation/);
  const m = withVmcs();
  assert.is(m.vmx.vmxoff(), 0);
  assert.not.ok(m.vmx.inVmxOperation);
  assert.is(m.vmx.vmxon(BigInt(VMXON)), 0);
  faults(m, () => m.vmx.vmptrld(BigInt(VMCS)), /its VMCS was lost: active \(not VMCLEARed\) at VMXOFF/);
});

test('INVEPT/INVVPID operand checks (28)', () => {
  const m = withVmcs();
  assert.is(m.vmx.invept(0, 0n), 2);
  assert.is(err(m), 28);
  assert.is(m.vmx.invept(1, 0x1en), 0, 'WB, 4-level');
  assert.is(m.vmx.invept(1, 0x1dn), 2, 'memory type 5');
  assert.is(m.vmx.invept(1, 0x16n), 2, '3-level walk');
  assert.is(m.vmx.invept(2, 0n), 0);
  assert.is(m.vmx.invvpid(0, 0, 0n), 2, 'individual address with VPID 0');
  assert.is(m.vmx.invvpid(0, 1, 0x0000_8000_0000_0000n), 2, 'non-canonical');
  assert.is(m.vmx.invvpid(0, 1, 0xffff_8000_0000_0000n), 0);
  assert.is(m.vmx.invvpid(1, 0, 0n), 2);
  assert.is(m.vmx.invvpid(2, 0, 0n), 0);
  assert.is(m.vmx.invvpid(4, 1, 0n), 2);
  const r = ready();
  faults(r, () => r.vmx.invept(2, 0n), /^#UD: INVEPT outside VMX operation/);
});

function launchable(m: Machine): void {
  const w = (e: number, v: bigint | number): void => assert.is(m.vmx.vmwrite(e, BigInt(v)), 0, `vmwrite ${e.toString(16)}`);
  w(0x4000, 0x16); w(0x4002, 0x04006172); w(0x400c, 0x36dfb | (1 << 9)); w(0x4012, 0x11fb);
  w(0x6c00, m.cr(0)); w(0x6c04, m.cr(4)); w(0x6c02, 0x101000);
  w(0x0c02, 8); w(0x0c04, 0x10); w(0x0c0c, 0x18); w(0x6c16, 0xffffffff80001000n);
}

test('VM entry: launch state, control and host-state checks, shadow VMCS', () => {
  const m = withVmcs();
  launchable(m);
  assert.is(m.vmx.enter(false), 2);
  assert.is(err(m), 5, 'VMRESUME with a clear VMCS');
  assert.is(m.vmx.enter(true), 0);
  assert.is(m.vmx.vmcs.get(BigInt(VMCS))?.launch, 'launched');
  assert.is(m.vmx.enter(true), 2);
  assert.is(err(m), 4);
  assert.is(m.vmx.enter(false), 0);
  m.vmx.vmwrite(0x4000, 0n);
  assert.is(m.vmx.enter(false), 2);
  assert.is(err(m), 7);
  assert.match(m.vmx.lastEntryProblems[0], /pin-based controls 0x0 clears bits/);
  m.vmx.vmwrite(0x4000, 0x16n);
  m.vmx.vmwrite(0x0c02, 0n);
  assert.is(m.vmx.enter(false), 2);
  assert.is(err(m), 8);
  assert.match(m.vmx.lastEntryProblems.join(';'), /host CS selector is 0/);
  m.phys.write32(VMCS2, 0x80000004);
  assert.is(m.vmx.vmclear(BigInt(VMCS2)), 0);
  assert.is(m.vmx.vmptrld(BigInt(VMCS2)), 0, 'shadow VMCS: VMCS shadowing is offered');
  assert.is(m.vmx.enter(true), 1, 'VM entry with a shadow VMCS is VMfailInvalid');
});

test('MSRs: absent ones #GP, FEATURE_CONTROL lock, read-only capability MSRs', () => {
  const m = tigerlake({ msrs: { [MSR.IA32_VMX_PROCBASED_CTLS2]: 0x02975fff00000000n } });
  faults(m, () => m.readMsr(MSR.IA32_VMX_VMFUNC), /^#GP\(0\): RDMSR 0x491 \(IA32_VMX_VMFUNC\) \(absent: IA32_VMX_VMFUNC needs PROCBASED_CTLS2 bit 13 allowed-1\)/);
  const a = tigerlake();
  faults(a, () => a.writeMsr(MSR.IA32_FEATURE_CONTROL, 5n), /lock bit/);
  const b = tigerlake({ featureControl: 0 });
  b.writeMsr(MSR.IA32_FEATURE_CONTROL, 5n);
  assert.is(b.readMsr(MSR.IA32_FEATURE_CONTROL), 5n);
  faults(b, () => b.writeMsr(MSR.IA32_VMX_BASIC, 0n), /read-only MSR/);
  const c = noVmx();
  faults(c, () => c.readMsr(MSR.IA32_VMX_BASIC), /absent: CPUID.1:ECX.VMX\[bit 5\] = 0/);
  faults(c, () => c.readMsr(MSR.IA32_FEATURE_CONTROL), /absent/);
  assert.is((c.cpuidRaw(1, 0)[2] >>> 5) & 1, 0);
  const d = lockedOff();
  assert.is(d.readMsr(MSR.IA32_FEATURE_CONTROL), 1n);
  const e = tigerlake();
  faults(e, () => e.readMsr(MSR.IA32_VMX_PROCBASED_CTLS3), /tertiary/);
});

test('control registers: VMXE without VMX, fixed bits in VMX operation', () => {
  const a = noVmx();
  faults(a, () => a.writeCr(4, a.cr(4) | CR4.VMXE), /CR4.VMXE is reserved: CPUID.1:ECX.VMX\[bit 5\] = 0/);
  const m = inRoot();
  faults(m, () => m.writeCr(4, m.cr(4) & ~CR4.VMXE), /fixed by IA32_VMX_CR4_FIXED0/);
  const n = inRoot();
  faults(n, () => n.writeCr(0, n.cr(0) & ~0x20n), /fixed by IA32_VMX_CR0_FIXED0/);
  const o = tigerlake();
  faults(o, () => o.writeCr(8, 16n), /bits 63:4 are reserved/);
});

test('CPUID: vendor, MAXPHYADDR, out-of-range leaves return the highest basic leaf', () => {
  const m = tigerlake();
  const [max, b, c, d] = m.cpuidRaw(0, 0);
  assert.is(max, 0x16);
  const vendor = Buffer.from(new Uint32Array([b, d, c]).buffer).toString('latin1');
  assert.is(vendor, 'GenuineIntel');
  assert.is(m.maxPhysAddr(), 39);
  assert.equal(m.cpuidRaw(0x40000000, 0), m.cpuidRaw(0x16, 0));
  assert.equal(m.cpuidRaw(0x80000009, 0), m.cpuidRaw(0x16, 0));
  assert.equal(m.cpuidRaw(0x4, 0), [0, 0, 0, 0]);
  assert.is((m.cpuidRaw(1, 0)[2] >>> 5) & 1, 1);
});

test('physical memory: protected ranges, top of memory, VMXON region writes', () => {
  const m = tigerlake();
  const l = buildBootInfo(m, { cmdline: 'x', files: [{ name: 'guest.bin', data: new Uint8Array([1, 2, 3]), args: 'a=1' }] });
  const imp = m.imports() as any;
  assert.is(imp.mem.read32(l.bootinfo), 0x49425648, 'boot data is readable');
  faults(m, () => imp.mem.write32(l.bootinfo, 0), /touches the hypervisor's own memory \(boot data .*read-only\)/);
  const n = tigerlake();
  buildBootInfo(n);
  const i2 = n.imports() as any;
  faults(n, () => i2.mem.read8(0x100000n), /hypervisor image/);
  const o = tigerlake();
  const i3 = o.imports() as any;
  faults(o, () => i3.mem.read64(BigInt((64 << 20) - 4)), /beyond physical memory/);
  const q = tigerlake();
  q.mmio.push({ base: 0xfee00000, end: 0xfee01000, read: (off) => (off === 0x20 ? 0x5000000n : 0n) });
  const o2 = (q.imports() as any);
  assert.is(o2.mem.read32(0xfee00020n), 0x5000000, 'MMIO handler');
  const p = inRoot();
  const i4 = p.imports() as any;
  faults(p, () => i4.mem.write8(BigInt(VMXON + 100), 0), /write to the VMXON region/);
});

test('boot info layout follows boot/include/bootinfo.h', () => {
  const m = tigerlake();
  const l = buildBootInfo(m, { cmdline: 'hello', files: [{ name: 'g', data: new Uint8Array([9]), args: 'x' }], tsc: 42n });
  const p = m.phys, bi = Number(l.bootinfo);
  assert.is(p.read32(bi), 0x49425648);
  assert.is(p.read32(bi + 4), 1);
  assert.is(p.read32(bi + 8), 2);
  assert.is(p.read32(bi + 12), l.mmap.length);
  const cmd = Number(p.read64(bi + 24));
  assert.is(Buffer.from(p.read(cmd, 6)).toString('latin1'), 'hello\0');
  assert.is(p.read32(bi + 32), 5);
  assert.is(p.read32(bi + 36), 1);
  const f = Number(p.read64(bi + 40));
  assert.is(Number(p.read64(f + 8)), 1);
  const name = Number(p.read64(f + 16));
  assert.is(p.read32(f + 24), 3);
  assert.is(p.read32(f + 28), 0);
  assert.is(Buffer.from(p.read(name, 4)).toString('latin1'), 'g x\0');
  assert.is(p.read64(bi + 48), 42n);
  const types = l.mmap.map((e) => e.type);
  assert.equal(types.slice(-3), [0x100, 0x102, 0x101]);
});

test('sys.exit prints the C runtime line; traps and aborts print like boot/rt', () => {
  const m = tigerlake();
  const imp = m.imports() as any;
  assert.throws(() => imp.sys.exit(3), (e: unknown) => e instanceof ExitSignal && e.status === 3);
  assert.is(m.console, 'hv: exit status=3 (vmx-locked)\n');
  const h = tigerlake();
  faults(h, () => (h.imports() as any).sys.halt(), /sys.halt/);
});

test('capability MSRs agree with each other and with the field table', () => {
  const m = tigerlake();
  const caps = m.vmx.caps();
  assert.is(BigInt(highestIndex(caps) << 1), m.readMsr(MSR.IA32_VMX_VMCS_ENUM));
  assert.is(caps.cr4Fixed1 & CR4.VMXE, CR4.VMXE);
  for (const [lo, hi] of [[caps.pin0, caps.pin1], [caps.proc0, caps.proc1], [caps.exit0, caps.exit1], [caps.entry0, caps.entry1]]) {
    assert.is((lo & ~hi) >>> 0, 0, 'every must-be-1 bit is allowed to be 1');
  }
});

test('agreement with the generated constants (tests/model/vmx-consts.ts)', () => {
  const theirs = new Map(G.VMCS_FIELDS.map((f) => [f.encoding, f]));
  const problems: string[] = [];
  for (const e of FIELD_ENCODINGS) {
    const f = theirs.get(e);
    if (!f) { problems.push(`0x${e.toString(16)} missing from VMCS_FIELDS`); continue; }
    const t = fieldType(e) === 'exit-info' ? 'ro' : fieldType(e);
    if (f.width !== fieldWidth(e) || f.type !== t) problems.push(`0x${e.toString(16)} ${f.name}: width/type differ`);
  }
  for (const f of G.VMCS_FIELDS) if (!FIELD_ENCODINGS.includes(f.encoding)) problems.push(`${f.name} 0x${f.encoding.toString(16)} is not an SDM encoding the model knows`);
  for (const [k, v] of Object.entries(VMXERR)) {
    const g = G.VMX_ERRORS.find((x) => x.number === v);
    if (!g) problems.push(`VM-instruction error ${v} (${k}) missing`);
  }
  for (const [k, v] of Object.entries(MSR)) {
    const g = (G as Record<string, unknown>)[`MSR_${k}`];
    if (g !== undefined && g !== v) problems.push(`MSR_${k} = ${g}, model has ${v}`);
  }
  for (const w of G.CONTROL_WORDS) {
    if (w.width !== 32 || w.capMsr === MSR.IA32_VMX_VMFUNC) continue; // allowed-0/allowed-1 formats only (A.3-A.5)
    const v = (TIGERLAKE_VMX as Record<number, bigint>)[w.capMsr];
    if (v !== undefined && Number(v & 0xffffffffn) !== w.defaults1) problems.push(`${w.key}: defaults1 0x${w.defaults1.toString(16)} vs capability MSR allowed-0 0x${(v & 0xffffffffn).toString(16)}`);
  }
  assert.equal(problems, []);
});

// A hand-assembled module exporting memory and kmain(i64) with the given body.
function tinyKernel(name: string, body: number[]): string {
  const code = [0, ...body, 0x0b];
  const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    1, 5, 1, 0x60, 1, 0x7e, 0, // type 0: (i64) -> ()
    3, 2, 1, 0, // function 0 has type 0
    5, 3, 1, 0, 1, // one memory, 1 page
    7, 0x12, 2, 5, ...Buffer.from('kmain'), 0, 0, 6, ...Buffer.from('memory'), 2, 0,
    10, code.length + 2, 1, code.length, ...code]);
  const path = join(tmpdir(), `hv-model-${process.pid}-${name}.wasm`);
  writeFileSync(path, bytes);
  return path;
}

test('run endings: wasm trap, kmain returning, as the C runtime reports them', () => {
  const t = runKernel(tigerlake(), { wasm: tinyKernel('unreachable', [0x00]) });
  assert.is(t.status, 5);
  assert.is(t.console, 'hv: trap: wasm unreachable executed\nhv: exit status=5 (trap)\n');
  assert.is(t.trap, 'wasm unreachable executed');
  const r = runKernel(tigerlake(), { wasm: tinyKernel('return', []) });
  assert.is(r.status, 1);
  assert.is(r.console, 'hv: kmain returned without ending the run\nhv: exit status=1 (fail)\n');
  // i32.load from beyond the one page of memory
  const o = runKernel(tigerlake(), { wasm: tinyKernel('oob', [0x41, 0x80, 0x80, 0x08, 0x28, 2, 0, 0x1a]) });
  assert.is(o.trap, 'wasm out-of-bounds linear memory or table access');
});

test('kernel.wasm on tigerlake reaches VMX root operation without faults', () => {
  if (!existsSync(KERNEL_WASM)) return;
  const r = runKernel(tigerlake());
  assert.equal(r.faults, []);
  assert.match(r.console, /^hv: kernel start /);
  assert.match(r.console, /\nhv: vmxon ok: cpu 0, revision 0x4/);
  assert.match(r.console, /\nhv: exit status=\d+ \(\w[\w-]*\)\n$/);
});

test.run();
