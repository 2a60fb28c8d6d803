// The model's host runs without CR4.OSXSAVE (its loader's CR4); the
// hypervisor's own start-up sets it where CPUID has XSAVE
// (boot/common/cpu.c), as here. Migration between processors is covered by
// the hv2 run of tests/qemu/nested.test.ts (the model has one VMX state).
const withXsave = () => {
  const m = tigerlake();
  m.crs.set(4, m.cr(4) | (1n << 18n));
  return m;
};

// The guest's extended state (kernel/vm/xstate.ts; issue 9 item 7): XCR0
// stays the guest's while the hypervisor runs, the components beyond x87/SSE
// move with XSAVE/XRSTOR when the vCPU changes processor (hv2 runs), a guest starts
// from the initial state and leaves none behind; CPUID tells what works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as V from '../model/vmx-consts.ts';
import { tigerlake } from '../model/index.ts';
import { play, injected, GP, RAX, RCX, RDX, RBX } from './guest-script.ts';

const XSETBV = (v: bigint) => ({ reason: V.EXIT_REASON_XSETBV, len: 3, regs: { [RCX]: 0n, [RAX]: v & 0xffffffffn, [RDX]: v >> 32n } });
const CPUID = (leaf: bigint, sub = 0n) => ({ reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: leaf, [RCX]: sub } });
const MOVED = 0xe4n; // the model's components (0xE7) but x87 and SSE

test('guest start: initial extended state loaded, XCR0 = 1; XSETBV stays in the processor', () => {
  const m = withXsave();
  m.xcr0 = 7n; // left by someone else
  const r = play([
    { exit: CPUID(0n), before: (mm) => {
      assert.is(mm.xcr0, 1n, 'XCR0 at the first entry is the RESET value');
      assert.equal(mm.xstateOps.map((o) => [o.op, o.mask]), [['XRSTOR', MOVED]], 'initial state of AVX, opmask, ZMM');
      assert.is(mm.xstateOps[0].xcr0, 0xe7n, 'XRSTOR with XCR0 widened to every component');
    } },
    { exit: XSETBV(0xe7n), check: (mm) => {
      assert.is(injected(mm), 0n);
      assert.is(mm.xcr0, 0xe7n, 'the guest XCR0 is loaded');
    } },
    { exit: CPUID(0n), before: (mm) => assert.is(mm.xcr0, 0xe7n, 'and still loaded at the next entry') },
    { exit: XSETBV(0x1e7n), check: (mm) => assert.is(injected(mm), GP, 'a component the processor lacks') },
  ], '', { machine: m });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  const last = m.xstateOps[m.xstateOps.length - 1];
  assert.is(last.op, 'XRSTOR', 'the guest leaves initial state behind');
  assert.is(m.xcr0, 3n, 'and the host XCR0 (x87, SSE)');
  assert.equal(m.xstateOps.filter((o) => o.op === 'XSAVE'), [], 'no XSAVE without migration');
});

test('CPUID: OSPKE follows the guest CR4.PKE; no XSAVES, no supervisor components; withheld CR4 features hidden', () => {
  const r = play([
    { exit: { ...CPUID(7n), fields: { [V.GUEST_CR4]: 0x2020n | (1n << 22n) } },
      check: (m) => {
        const ecx = m.guestReg(RCX);
        assert.is(ecx & (1n << 3n), 1n << 3n, 'PKU');
        assert.is(ecx & (1n << 4n), 1n << 4n, 'OSPKE with CR4.PKE');
        assert.is(ecx & (1n << 31n), 0n, 'PKS withheld');
        assert.is(m.guestReg(RDX) & (1n << 20n), 0n, 'CET_IBT withheld');
      } },
    { exit: { ...CPUID(7n), fields: { [V.GUEST_CR4]: 0x2020n } },
      check: (m) => assert.is(m.guestReg(RCX) & (1n << 4n), 0n, 'OSPKE without CR4.PKE') },
    { exit: CPUID(0xdn, 1n),
      check: (m) => {
        assert.is(m.guestReg(RAX) & 8n, 0n, 'XSAVES hidden');
        assert.is(m.guestReg(RCX), 0n, 'no IA32_XSS components');
        assert.is(m.guestReg(RDX), 0n);
      } },
    { exit: CPUID(0xdn, 2n), check: (m) => assert.is(m.guestReg(RBX), 576n, 'AVX component offered') },
    { exit: CPUID(0xdn, 8n), check: (m) => assert.is(m.guestReg(RAX), 0n, 'component 8 not offered') },
  ], '', { machine: withXsave() });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('MOV to CR4: a withheld bit (PKS) is #GP, PKE reaches the processor', () => {
  const movToCr4 = (reg: number) => (BigInt(reg) << 8n) | 4n;
  const r = play([
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr4(RAX), len: 3, regs: { [RAX]: 0x20n | (1n << 24n) } },
      check: (m) => assert.is(injected(m), GP, 'CR4.PKS') },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr4(RAX), len: 3, regs: { [RAX]: 0x20n | (1n << 22n) } },
      check: (m) => {
        assert.is(injected(m), 0n);
        assert.is(m.vmx.field(V.GUEST_CR4) & (1n << 22n), 1n << 22n, 'PKE in the real CR4');
        assert.is(m.vmx.field(V.CR4_GUEST_HOST_MASK) & (1n << 22n), 0n, 'PKE not owned by the hypervisor');
        assert.is(m.vmx.field(V.CR4_GUEST_HOST_MASK) & (1n << 24n), 1n << 24n, 'PKS owned');
      } },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test.run();
