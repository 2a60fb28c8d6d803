// The guest's I/O APIC register model (kernel/devices/ioapic.ts), through
// kernel.wasm's ioapic_* hooks on the model. Expected values come from the
// Intel 82093AA I/O APIC datasheet (registers, redirection entry bits 3.2.4)
// and the version 20H register set (EOI register at 40H); the EOI broadcast
// of a level-triggered interrupt from SDM Vol. 3A 11.8.5.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel } from '../model/index.ts';

const IOREGSEL = 0x00, IOWIN = 0x10, EOI = 0x40;
const MASKED = 1 << 16, LEVEL = 1 << 15, REMOTE_IRR = 1 << 14, ACTIVE_LOW = 1 << 13, LOGICAL = 1 << 11;
const NMI_MODE = 4 << 8;

function setup() {
  const m = tigerlake();
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  call('dev_reset', BigInt(32 << 20), 1);
  const rd = (off: number, size = 4): number => call<number>('ioapic_read', off, size) >>> 0;
  const wr = (off: number, v: number, size = 4): void => void call('ioapic_write', off, size, v >>> 0);
  const reg = (i: number): number => (wr(IOREGSEL, i), rd(IOWIN));
  const setReg = (i: number, v: number): void => (wr(IOREGSEL, i), wr(IOWIN, v));
  const setEntry = (n: number, lo: number, hi = 0): void => (setReg(0x11 + 2 * n, hi), setReg(0x10 + 2 * n, lo));
  const line = (n: number, high: boolean): void => void call('ioapic_setLine', n, high ? 1 : 0);
  // The messages sent since the last call: [low dword, destination].
  const messages = (): [number, number][] => {
    const out: [number, number][] = [];
    while ((call<number>('ioapic_queued') >>> 0) > 0) {
      const msg = BigInt.asUintN(64, call<bigint>('ioapic_takeMessage'));
      out.push([Number(msg & 0xffffffffn), Number(msg >> 56n)]);
    }
    return out;
  };
  return { call, rd, wr, reg, setReg, setEntry, line, messages };
}

test('IOAPIC: ID, version 20H with 24 entries, arbitration ID, reset masks every entry', () => {
  const d = setup();
  assert.is(d.reg(0x01), 0x00170020, 'IOAPICVER: max redirection entry 23 in bits 23:16, version 20H');
  assert.is(d.reg(0x00), 0);
  d.setReg(0x00, 0xffffffff);
  assert.is(d.reg(0x00), 0x0f000000, 'IOAPICID: only bits 27:24 are kept');
  assert.is(d.reg(0x02), 0x0f000000, 'IOAPICARB follows the ID');
  d.setReg(0x01, 0);
  assert.is(d.reg(0x01), 0x00170020, 'IOAPICVER is read-only');
  for (let n = 0; n < 24; n++) {
    assert.is(d.reg(0x10 + 2 * n), MASKED, `entry ${n} masked after reset`);
    assert.is(d.reg(0x11 + 2 * n), 0);
  }
  assert.is(d.reg(0x10 + 48), 0, 'no entry 24');
  assert.is(d.reg(0x03), 0, 'an undefined register reads 0');
  d.wr(IOREGSEL, 0x1ff);
  assert.is(d.rd(IOREGSEL), 0xff, 'IOREGSEL keeps bits 7:0');
});

test('IOAPIC: redirection entries keep their writable bits; delivery status and remote IRR are read-only', () => {
  const d = setup();
  d.setReg(0x10 + 2 * 5, 0xffffffff);
  assert.is(d.reg(0x10 + 2 * 5), 0x0001afff, 'bits 16, 15, 13, 11:0 (not 12 delivery status, 14 remote IRR, 31:17)');
  d.setReg(0x11 + 2 * 5, 0xffffffff);
  assert.is(d.reg(0x11 + 2 * 5), 0xff000000, 'destination in bits 63:56');
  assert.is(d.reg(0x10 + 2 * 5), 0x0001afff, 'writing the high half leaves the low half');
  // 32-bit aligned accesses only.
  d.wr(IOREGSEL, 0x01);
  assert.is(d.rd(IOWIN, 2), 0, 'a 16-bit read of IOWIN reads 0');
  assert.is(d.rd(IOWIN + 1), 0, 'an unaligned read reads 0');
  d.wr(IOREGSEL, 0x12, 1);
  assert.is(d.rd(IOREGSEL), 0x01, 'a byte write of IOREGSEL is dropped');
  assert.is(d.rd(EOI), 0, 'EOI is write-only');
  assert.equal(d.messages(), [], 'register writes with the input low send nothing');
});

test('IOAPIC: edge-triggered input: one interrupt per rising edge, none while masked, lost edges stay lost', () => {
  const d = setup();
  d.setEntry(4, 0x34 | MASKED, 0x01000000);
  d.line(4, true);
  assert.equal(d.messages(), [], 'masked: the edge is lost');
  d.line(4, false);
  d.setEntry(4, 0x34, 0x01000000);
  assert.equal(d.messages(), [], 'unmasking an edge-triggered entry sends nothing');
  d.line(4, true);
  assert.equal(d.messages(), [[0x34, 1]], 'rising edge: vector 34H fixed, physical destination 1');
  d.line(4, true);
  assert.equal(d.messages(), [], 'no edge, no interrupt');
  d.line(4, false);
  d.line(4, true);
  assert.equal(d.messages(), [[0x34, 1]]);
  assert.is(d.reg(0x10 + 8) & REMOTE_IRR, 0, 'no remote IRR for edge-triggered entries');
});

test('IOAPIC: level-triggered input: remote IRR holds it until the EOI; asserted at the EOI means again', () => {
  const d = setup();
  d.setEntry(9, 0x41 | LEVEL | LOGICAL, 0x03000000);
  d.line(9, true);
  assert.equal(d.messages(), [[0x41 | LEVEL | LOGICAL, 3]], 'asserted: sent, logical destination 3');
  assert.is(d.reg(0x10 + 18) & REMOTE_IRR, REMOTE_IRR, 'remote IRR set when sent');
  d.line(9, false);
  d.line(9, true);
  assert.equal(d.messages(), [], 'remote IRR set: nothing more until the EOI');
  d.call('ioapic_write', EOI, 4, 0x42);
  assert.equal(d.messages(), [], 'an EOI for another vector changes nothing');
  assert.is(d.reg(0x10 + 18) & REMOTE_IRR, REMOTE_IRR);
  d.wr(EOI, 0x41);
  assert.equal(d.messages().map((x) => x[0] & 0xff), [0x41], 'still asserted at the EOI: sent again');
  d.line(9, false);
  d.wr(EOI, 0x41);
  assert.is(d.reg(0x10 + 18) & REMOTE_IRR, 0, 'EOI with the input low: remote IRR clear');
  assert.equal(d.messages(), []);
  // 1,000 rounds of assert / EOI / deassert (what the seed-001 test
  // does through the local APICs): one interrupt each.
  for (let i = 0; i < 1000; i++) {
    d.line(9, true);
    assert.is(d.messages().length, 1);
    d.line(9, false);
    d.wr(EOI, 0x41);
  }
  assert.is(d.call<number>('ioapic_sent') >>> 0, 1002);
});

test('IOAPIC: unmasking or reprogramming a level-triggered entry whose input is asserted sends it', () => {
  const d = setup();
  d.line(2, true);
  d.setEntry(2, 0x50 | LEVEL | MASKED);
  assert.equal(d.messages(), [], 'masked');
  d.setEntry(2, 0x50 | LEVEL);
  assert.equal(d.messages().map((x) => x[0] & 0xff), [0x50], 'unmasked with the input asserted');
  // Edge-triggered again: remote IRR reads 0.
  d.setEntry(2, 0x50);
  assert.is(d.reg(0x10 + 4) & REMOTE_IRR, 0);
});

test('IOAPIC: polarity: an active-low entry sees a low wire as asserted', () => {
  const d = setup();
  d.setEntry(7, 0x60 | LEVEL | ACTIVE_LOW);
  assert.equal(d.messages().map((x) => x[0] & 0xff), [0x60], 'wire low = asserted for an active-low input');
  d.line(7, true);
  d.wr(EOI, 0x60);
  assert.equal(d.messages(), [], 'wire high = deasserted');
  d.setEntry(8, 0x61);
  d.line(8, true);
  d.messages();
  d.setEntry(8, 0x61 | ACTIVE_LOW);
  d.line(8, false);
  assert.equal(d.messages().map((x) => x[0] & 0xff), [0x61], 'falling wire = rising edge of an active-low input');
});

test('IOAPIC: an NMI entry in level mode has no remote IRR to wait for', () => {
  const d = setup();
  d.setEntry(3, 0x02 | NMI_MODE | LEVEL);
  d.line(3, true);
  assert.equal(d.messages().map((x) => x[0] & 0x7ff), [0x402]);
  assert.is(d.reg(0x10 + 6) & REMOTE_IRR, 0, 'remote IRR is for fixed and lowest-priority interrupts');
});

test.run();
