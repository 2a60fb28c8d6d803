// VMX bring-up of kernel.wasm on the model (SDM Vol. 3C 24.6-24.8, 31 VMXON).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, noVmx, lockedOff, runKernel } from '../model/index.ts';

const FC = 0x3a;
const VMX_BASIC = 0x480;
const CR0_FIXED0 = 0x486, CR0_FIXED1 = 0x487, CR4_FIXED1 = 0x489;
const PROCBASED = 0x482, TRUE_PROCBASED = 0x48e;

test('tigerlake: VMXON succeeds with the revision id from IA32_VMX_BASIC', () => {
  const r = runKernel(tigerlake());
  assert.equal(r.faults, []);
  assert.is(r.status, 0);
  const rev = Number(r.machine.readMsr(VMX_BASIC) & 0x7fffffffn);
  assert.ok(r.machine.vmx.inVmxOperation, 'in VMX operation');
  const region = r.machine.vmx.vmxonPtr as bigint;
  assert.is(Number(region & 0xfffn), 0, 'VMXON region page aligned');
  assert.is(r.machine.phys.read32(Number(region)), rev, 'revision id written to the region');
  assert.ok((r.machine.cr(4) & (1n << 13n)) !== 0n, 'CR4.VMXE set');
  assert.match(r.console, new RegExp(`hv: vmxon ok: cpu 0, revision 0x${rev.toString(16)}, region 0x${region.toString(16)}, tsc=\\d+`));
  assert.match(r.console, /hv: exit status=0 \(ok\)\n$/);
});

test('capability summary names the controls the MSRs allow', () => {
  const r = runKernel(tigerlake());
  assert.match(r.console, /hv: vmx: basic 0x[0-9a-f]+: revision 0x4, region 4096 bytes, memory type 6, INS\/OUTS info, true controls/);
  assert.match(r.console, /hv: vmx: secondary:.* ENABLE_EPT/);
  assert.match(r.console, /ENABLE_VM_FUNCTIONS/);
  assert.match(r.console, /VMCS_SHADOWING/);
  assert.match(r.console, /hv: vmx: EPT\/VPID:.* PAGE_WALK_LENGTH_4/);
  assert.match(r.console, /features: EPT=yes VPID=yes unrestricted-guest=yes VMFUNC=yes EPTP-switching=yes VMCS-shadowing=yes virtual-interrupt-delivery=yes posted-interrupts=no preemption-timer=yes/);
  assert.match(r.console, /VMWRITE to exit-information fields/);
});

test('caps=off leaves the summary out but still reaches VMXON', () => {
  const r = runKernel(tigerlake(), { boot: { cmdline: 'caps=off' } });
  assert.is(r.status, 0);
  assert.not.match(r.console, /hv: vmx: secondary:/);
  assert.match(r.console, /hv: vmxon ok/);
});

test('no secondary controls: PROCBASED_CTLS2, EPT_VPID_CAP and VMFUNC are never read', () => {
  // Clear "activate secondary controls" (bit 31) in allowed-1 of both the
  // true and the plain MSR; the model then makes 0x48b/0x48c/0x491 #GP.
  const m = tigerlake();
  for (const msr of [PROCBASED, TRUE_PROCBASED]) m.setMsr(msr, m.readMsr(msr) & ~(1n << 63n));
  m.removeMsr(0x48b, 'no secondary controls');
  m.removeMsr(0x48c, 'no secondary controls');
  m.removeMsr(0x491, 'no secondary controls');
  const r = runKernel(m);
  assert.equal(r.faults, []);
  assert.is(r.status, 0);
  assert.not.match(r.console, /hv: vmx: secondary:/);
  assert.match(r.console, /EPT=no VPID=no/);
});

test('no VT-x: reported plainly, distinct status, no VMX MSR touched', () => {
  const r = runKernel(noVmx());
  assert.equal(r.faults, []);
  assert.is(r.status, 2);
  assert.match(r.console, /hv: no VT-x: CPUID.1:ECX.VMX\[bit 5\] is 0/);
  assert.match(r.console, /hv: exit status=2 \(no-vtx\)\n$/);
  assert.not.ok(r.machine.vmx.inVmxOperation);
});

test('IA32_FEATURE_CONTROL unlocked (OVMF): set and locked with VMX outside SMX', () => {
  const r = runKernel(tigerlake({ featureControl: 0 }));
  assert.equal(r.faults, []);
  assert.is(r.status, 0);
  assert.is(r.machine.readMsr(FC) & 5n, 5n, 'lock and VMX-outside-SMX set');
  assert.match(r.console, /IA32_FEATURE_CONTROL was unlocked \(0x0\), set to 0x5 and locked/);
});

test('IA32_FEATURE_CONTROL locked with VMX off: clear message, status 3, no VMXON', () => {
  const r = runKernel(lockedOff());
  assert.equal(r.faults, []);
  assert.is(r.status, 3);
  assert.match(r.console, /VMX disabled by firmware: IA32_FEATURE_CONTROL = 0x1 is locked/);
  assert.not.ok(r.machine.vmx.inVmxOperation);
  assert.is(r.machine.cr(4) & (1n << 13n), 0n, 'CR4.VMXE untouched');
});

test('contradictory CR0 fixed bits (FIXED0 requires what FIXED1 forbids): status 4', () => {
  const m = tigerlake();
  // CR0.CD (bit 30): required by FIXED0, forbidden by FIXED1.
  m.setMsr(CR0_FIXED0, m.readMsr(CR0_FIXED0) | (1n << 30n));
  m.setMsr(CR0_FIXED1, m.readMsr(CR0_FIXED1) & ~(1n << 30n));
  const r = runKernel(m);
  assert.equal(r.faults, []);
  assert.is(r.status, 4);
  assert.match(r.console, /CR0 fixed bits are contradictory/);
  assert.not.ok(r.machine.vmx.inVmxOperation);
});

test('a set CR4 bit that FIXED1 forbids is reported, not silently cleared', () => {
  const m = tigerlake();
  // CR4.PGE (bit 7) is set at hand-over; make VMX operation forbid it.
  m.setMsr(CR4_FIXED1, m.readMsr(CR4_FIXED1) & ~(1n << 7n));
  const r = runKernel(m);
  assert.equal(r.faults, []);
  assert.is(r.status, 4);
  assert.match(r.console, /CR4 = 0x[0-9a-f]+ has bits set that VMX operation forbids .*offending 0x80\)/);
  assert.ok((r.machine.cr(4) & (1n << 7n)) !== 0n, 'PGE left as it was');
});

test('VMXON beyond MAXPHYADDR fails (VMfailInvalid): status 4, CR4.VMXE undone', () => {
  // A processor whose physical-address width (20 bits) does not cover the
  // page the allocator hands out: VMXON answers VMfailInvalid (SDM 31.3).
  const r = runKernel(tigerlake({ maxPhysAddr: 20 }));
  assert.equal(r.faults, []);
  assert.is(r.status, 4);
  assert.match(r.console, /VMXON failed: VMfailInvalid/);
  assert.is(r.machine.cr(4) & (1n << 13n), 0n);
});

test('already in VMX operation (left by a previous VMM): VMfailInvalid reported, VMXE not cleared', () => {
  const m = tigerlake();
  m.writeCr(4, m.cr(4) | (1n << 13n));
  m.vmx.inVmxOperation = true;
  m.vmx.vmxonPtr = 0x5000n;
  const r = runKernel(m);
  assert.equal(r.faults, []);
  assert.is(r.status, 4);
  assert.match(r.console, /VMXON failed: VMfailInvalid/);
  assert.ok((r.machine.cr(4) & (1n << 13n)) !== 0n, 'clearing CR4.VMXE in VMX operation would #GP');
});

test.run();
