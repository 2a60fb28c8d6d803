// Messages between vCPUs that run on different processors (vcpus=N with
// spread=on; kernel/vm/ipi.ts post/takePosted, through kernel.wasm's smp_*
// hooks on the model with two processors). A message for a vCPU another
// processor runs is kept for it and applied only when that processor takes
// it; then it is what the SDM says of the message (Vol. 3A 11.6.1 for the
// IPIs, 11.4.7.3 INIT, 9.4 SIPI; the 82093AA for the I/O APIC's).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel } from '../model/index.ts';

const SVR = 0x0f0, TMR = 0x180, IRR = 0x200, ICR_LO = 0x300, ICR_HI = 0x310;
const FIXED = 0x4000, NMI = 0x4400, INIT = 0x4500, SIPI = 0x4600; // level assert, physical, no shorthand
const RUN_ACTIVE = 0, RUN_WAIT_SIPI = 2;
const T = 1_000_000n;

function setup(n: number, spread: boolean, cpus = 2) {
  const m = tigerlake();
  m.cpuCount = cpus;
  const k = loadKernel(m);
  const call = <V = number>(name: string, ...args: unknown[]): V => {
    const r = k.call<V>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as V;
  };
  const queues = call<number>('smp_setup', n, spread ? 1 : 0);
  const wr = (i: number, off: number, v: number) => void call('smp_apicWrite', i, off, v >>> 0, T);
  const rd = (i: number, off: number) => call<number>('smp_apicRead', i, off, T) >>> 0;
  const bit = (i: number, reg: number, v: number) => ((rd(i, reg + (v >> 5) * 0x10) >>> (v & 31)) & 1) === 1;
  const ipi = (from: number, to: number, lo: number) => {
    wr(from, ICR_HI, to << 24);
    wr(from, ICR_LO, lo);
  };
  const is = (name: string, i: number) => call<number>(name, i) !== 0;
  return { m, call, queues, wr, rd, bit, ipi, is };
}

test('spread=on, two processors: vCPU 1 is the second processor\'s; off: both on the first', () => {
  const s = setup(2, true);
  assert.is(s.queues, 2);
  assert.is(s.call<number>('smp_queueCpu', 0), 0);
  assert.is(s.call<number>('smp_queueCpu', 1), 1);
  const o = setup(2, false);
  assert.is(o.queues, 1);
  assert.is(o.call<number>('smp_queueCpu', 1), 0);
  const one = setup(3, true, 1);
  assert.is(one.queues, 1, 'one processor: one queue');
  const three = setup(3, true, 2);
  assert.is(three.queues, 2);
  assert.equal([0, 1, 2].map((i) => three.call<number>('smp_queueCpu', i)), [0, 1, 0], 'vCPU i on processor i mod 2');
});

test('a fixed IPI to a vCPU on another processor: posted, in its IRR only when that processor takes it', () => {
  const s = setup(2, true);
  s.wr(0, SVR, 0x1ff);
  s.wr(1, SVR, 0x1ff);
  s.ipi(0, 1, FIXED | 0x41);
  assert.ok(s.is('smp_posted', 1), 'posted to vCPU 1');
  assert.ok(s.call<number>('smp_mail', 1) !== 0, 'its queue has mail');
  assert.not.ok(s.bit(1, IRR, 0x41), 'not in vCPU 1\'s IRR while its processor has not taken it');
  assert.is(s.call<number>('smp_ipisDelivered', 1), 1);
  s.call('smp_take', 1);
  assert.not.ok(s.is('smp_posted', 1));
  assert.ok(s.bit(1, IRR, 0x41), 'in the IRR after the take');
  assert.not.ok(s.bit(1, TMR, 0x41), 'edge-triggered: TMR clear (11.8.4)');
});

test('spread=off: the same IPI goes into the IRR at once (nothing posted)', () => {
  const s = setup(2, false);
  s.wr(1, SVR, 0x1ff);
  s.ipi(0, 1, FIXED | 0x41);
  assert.not.ok(s.is('smp_posted', 1));
  assert.ok(s.bit(1, IRR, 0x41));
});

test('a fixed IPI to a software-disabled APIC on another processor is not accepted (11.4.7.2): nothing posted', () => {
  const s = setup(2, true);
  s.ipi(0, 1, FIXED | 0x42);
  assert.not.ok(s.is('smp_posted', 1));
  assert.is(s.call<number>('smp_ipisDropped', 1), 1);
  s.call('smp_take', 1);
  assert.not.ok(s.bit(1, IRR, 0x42));
});

test('INIT then SIPI to an AP on another processor: taken in that order, the AP starts at the vector', () => {
  const s = setup(2, true);
  s.ipi(0, 1, INIT);
  s.ipi(0, 1, SIPI | 0x08);
  assert.is(s.call<number>('smp_runState', 1), RUN_WAIT_SIPI, 'nothing applied before the take');
  assert.not.ok(s.is('smp_startPending', 1));
  s.call('smp_take', 1);
  assert.is(s.call<number>('smp_runState', 1), RUN_ACTIVE);
  assert.ok(s.is('smp_startPending', 1));
  assert.is(s.call<number>('smp_sipiVector', 1), 0x08);
});

test('a SIPI then an INIT not yet taken: the INIT undoes the start (the AP waits for SIPI)', () => {
  const s = setup(2, true);
  s.ipi(0, 1, SIPI | 0x08);
  s.ipi(0, 1, INIT);
  s.call('smp_take', 1);
  assert.is(s.call<number>('smp_runState', 1), RUN_WAIT_SIPI);
  assert.not.ok(s.is('smp_startPending', 1));
});

test('an NMI IPI to a vCPU on another processor: its NMI once taken', () => {
  const s = setup(2, true);
  s.ipi(0, 1, NMI);
  assert.not.ok(s.is('smp_ipiNmi', 1));
  s.call('smp_take', 1);
  assert.ok(s.is('smp_ipiNmi', 1));
});

test('an I/O APIC level-triggered message to a vCPU on another processor: posted with its trigger mode', () => {
  const s = setup(2, true);
  s.wr(1, SVR, 0x1ff);
  // Redirection entry 4 (registers 18H/19H): vector 51H, level, physical destination 1.
  s.call('smp_ioapicWrite', 0x00, 0x19);
  s.call('smp_ioapicWrite', 0x10, 1 << 24);
  s.call('smp_ioapicWrite', 0x00, 0x18);
  s.call('smp_ioapicWrite', 0x10, 0x8051);
  s.call('smp_ioapicLine', 4, 1);
  assert.ok(s.is('smp_posted', 1));
  assert.not.ok(s.bit(1, IRR, 0x51));
  s.call('smp_take', 1);
  assert.ok(s.bit(1, IRR, 0x51));
  assert.ok(s.bit(1, TMR, 0x51), 'level-triggered: TMR set, so that its EOI goes back to the I/O APIC (11.8.4)');
});

test.run();
