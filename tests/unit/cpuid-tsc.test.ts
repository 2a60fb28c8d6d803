// CPUID leaf 15H (SDM Vol. 2A: TSC frequency = core crystal clock (ECX) *
// EBX / EAX) as a guest sees it (kernel/vm/exit/cpuid.ts). Linux 6.1 takes
// ECX as the local APIC timer's input clock (lapic_timer_period = crystal /
// HZ) and the product as the TSC frequency; the guest's APIC timer counts TSC
// ticks (kernel/apic/timer.ts), so the leaf offered says crystal = TSC: ratio
// 1/1, ECX = the processor's TSC frequency. A processor that gives no ratio
// or no crystal keeps its leaf as it is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as V from '../model/vmx-consts.ts';
import { tigerlake } from '../model/index.ts';
import { play, RAX, RBX, RCX, RDX, type Exit } from './guest-script.ts';

const cpuid = (leaf: number): Exit => ({ reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: BigInt(leaf), [RCX]: 0n } });

function leaf15(host: [number, number, number, number]): bigint[] {
  const m = tigerlake();
  m.cpuid.set(0x15, host);
  let got: bigint[] = [];
  const r = play([{ exit: cpuid(0x15), check: (mm) => { got = [RAX, RBX, RCX, RDX].map((x) => mm.guestReg(x)); } }], '', { machine: m });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  return got;
}

test('CPUID 15H: crystal = TSC (ratio 1/1), the TSC frequency kept', () => {
  // 38.4 MHz * 146 / 2 = 2803.2 MHz (the tigerlake preset's leaf).
  assert.equal(leaf15([2, 146, 38400000, 0]), [1n, 1n, 2803200000n, 0n]);
  // Bochs tigerlake: 38.4 MHz * 63 / 1 = 2419.2 MHz.
  assert.equal(leaf15([1, 63, 38400000, 0]), [1n, 1n, 2419200000n, 0n]);
});

test('CPUID 15H: no ratio, no crystal, or a TSC past 32 bits: the processor\'s leaf', () => {
  assert.equal(leaf15([0, 0, 0, 0]), [0n, 0n, 0n, 0n]);
  assert.equal(leaf15([2, 146, 0, 0]), [2n, 146n, 0n, 0n], 'no crystal: Linux derives it from 16H');
  assert.equal(leaf15([1, 200, 38400000, 0]), [1n, 200n, 38400000n, 0n], '7.68 GHz does not fit ECX');
});

test.run();
