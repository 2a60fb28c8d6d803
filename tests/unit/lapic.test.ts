// The guest's software local APIC (kernel/apic/), through kernel.wasm's
// apic_* hooks on the model. Expected values from the SDM, Vol. 3A ch. 11
// (section numbers of the current SDM; older editions number it ch. 10).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel } from '../model/index.ts';

const ID = 0x020, VERSION = 0x030, TPR = 0x080, APR = 0x090, PPR = 0x0a0, EOI = 0x0b0, RRD = 0x0c0;
const LDR = 0x0d0, DFR = 0x0e0, SVR = 0x0f0, ISR = 0x100, TMR = 0x180, IRR = 0x200, ESR = 0x280;
const ICR_LO = 0x300, ICR_HI = 0x310;
const LVT_TIMER = 0x320, LVT_THERMAL = 0x330, LVT_PERF = 0x340, LVT_LINT0 = 0x350, LVT_LINT1 = 0x360, LVT_ERROR = 0x370;
const TIMER_INIT = 0x380, TIMER_CUR = 0x390, TIMER_DCR = 0x3e0;
const LVTS = [LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR];
const MASK = 0x10000, PERIODIC = 0x20000;
const MAX = 0xffff_ffff_ffff_ffffn;
const T0 = 1_000_000n;

function setup(apicId = 0) {
  const m = tigerlake();
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  let now = T0;
  call('apic_reset', apicId, now);
  const at = (t: bigint) => (now = t);
  const rd = (off: number, t = now): number => call<number>('apic_read', off, t) >>> 0;
  const wr = (off: number, v: number, t = now): void => void call('apic_write', off, v >>> 0, t);
  const pending = (t = now): number => call<number>('apic_pendingVector', t);
  const ack = (v: number): void => void call('apic_acknowledge', v);
  const base = (): bigint => BigInt.asUintN(64, call<bigint>('apic_baseRead'));
  const setBase = (v: bigint): boolean => call<number>('apic_baseWrite', v) === 1;
  const deadline = (): bigint => BigInt.asUintN(64, call<bigint>('apic_nextTimerDeadline'));
  const enabled = (): boolean => call<number>('apic_enabled') === 1;
  const dropped = (): number => call<number>('apic_ipisDropped') >>> 0;
  const delivered = (): number => call<number>('apic_ipisDelivered') >>> 0;
  // ESR: write, then read (11.5.3).
  const esr = (): number => {
    wr(ESR, 0);
    return rd(ESR);
  };
  // The 256-bit register at off as a list of set vectors.
  const vectors = (off: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < 8; i++) {
      const w = rd(off + i * 0x10);
      for (let b = 0; b < 32; b++) if (w & (1 << b)) out.push(i * 32 + b);
    }
    return out;
  };
  const selfIpi = (vector: number): void => wr(ICR_LO, 0x40000 | vector); // shorthand self, fixed
  const swEnable = (): void => wr(SVR, 0x1ff);
  return { m, call, at, rd, wr, pending, ack, base, setBase, deadline, enabled, dropped, delivered, esr, vectors, selfIpi, swEnable, now: () => now };
}

// ---- reset state (11.4.7.1) ----------------------------------------------------
test('reset: power-up register values', () => {
  const a = setup(3);
  assert.is(a.rd(ID), 0x03000000, 'APIC ID in bits 31:24');
  const ver = a.rd(VERSION);
  assert.is(ver & 0xff, 0x14, 'version 1xH: integrated APIC');
  assert.is((ver >>> 16) & 0xff, 5, 'Max LVT Entry = entries - 1 = 5 (timer, thermal, perf, LINT0, LINT1, error)');
  assert.is(ver >>> 24 & 1, 0, 'no EOI-broadcast suppression');
  assert.is(ver, 0x00050014);
  for (const r of [TPR, PPR, LDR, ICR_LO, ICR_HI, TIMER_INIT, TIMER_CUR, TIMER_DCR]) assert.is(a.rd(r), 0, `reg 0x${r.toString(16)}`);
  assert.is(a.rd(DFR), 0xffffffff, 'DFR all ones');
  assert.is(a.rd(SVR), 0xff, 'SVR 0xFF: software disabled');
  for (const r of LVTS) assert.is(a.rd(r), MASK, `LVT 0x${r.toString(16)}: 0 except the mask bit`);
  assert.equal(a.vectors(IRR), []);
  assert.equal(a.vectors(ISR), []);
  assert.equal(a.vectors(TMR), []);
  assert.is(a.rd(ESR), 0);
  assert.is(a.base(), 0xfee00800n, 'base 0xFEE00000, enabled (11); APIC ID 3 is an AP: BSP (8) clear');
  assert.not.ok(a.enabled(), 'globally enabled, software disabled');
  assert.is(a.pending(), -1);
  assert.is(a.deadline(), MAX);
  // APIC ID 0 is vCPU 0, the bootstrap processor (SDM Vol. 3A 9.4.1).
  const b = setup(0);
  assert.is(b.base(), 0xfee00900n, 'APIC ID 0: BSP (8) set');
});

// ---- enabling and disabling (11.4.3, 11.4.4, 11.4.7.2, 11.12.5) ------------------------
test('APIC_BASE: reserved bits, the invalid EXTD state and relocation are #GP and change nothing', () => {
  const a = setup();
  const bad = [
    0xfee00400n, // EXTD without EN: the invalid state
    0xfee00500n, // ... also with BSP
    0xfee00901n, // bit 0 reserved
    0xfee00980n, // bit 7 reserved
    0xfee00b00n, // bit 9 reserved
    0xfee00900n | (1n << 40n), // above MAXPHYADDR
    0xfee00900n | (1n << 63n),
    0xfec00900n, // relocation
    0x00000900n,
  ];
  for (const v of bad) {
    assert.not.ok(a.setBase(v), `0x${v.toString(16)} must #GP`);
    assert.is(a.base(), 0xfee00900n);
  }
  assert.ok(a.setBase(0xfee00800n), 'BSP bit written 0: accepted');
  assert.is(a.base(), 0xfee00900n, 'vCPU 0 (APIC ID 0) stays the BSP');
});

test('APIC_BASE: global disable resets the APIC; re-enable works', () => {
  const a = setup(2);
  a.swEnable();
  a.wr(TPR, 0x20);
  a.wr(LVT_LINT0, 0x700);
  a.wr(TIMER_INIT, 1000);
  a.selfIpi(0x40);
  assert.is(a.pending(), 0x40);
  assert.ok(a.setBase(0xfee00000n), 'EN=0');
  assert.is(a.base(), 0xfee00000n, 'APIC ID 2 is an AP: BSP clear');
  assert.not.ok(a.enabled());
  assert.is(a.pending(), -1, 'nothing delivered while globally disabled');
  assert.is(a.deadline(), MAX);
  assert.is(a.rd(SVR), 0xffffffff, 'the page is not decoded');
  a.wr(SVR, 0x1ff); // ignored
  assert.not.ok(a.setBase(0xfee00500n), 'disabled -> x2APIC: #GP');
  assert.ok(a.setBase(0xfee00800n), 're-enable');
  assert.is(a.rd(ID), 0x02000000, 'ID back to the initial APIC ID');
  assert.is(a.rd(SVR), 0xff, 'power-up state: software disabled');
  assert.is(a.rd(TPR), 0);
  for (const r of LVTS) assert.is(a.rd(r), MASK);
  assert.equal(a.vectors(IRR), [], 'pending interrupts lost');
  assert.is(a.rd(TIMER_INIT), 0);
  assert.is(a.deadline(), MAX);
  a.swEnable();
  assert.ok(a.enabled());
  a.selfIpi(0x41);
  assert.is(a.pending(), 0x41, 'works again');
});

test('SVR: software enable/disable; LVT masks forced while disabled; writable bits 9:0', () => {
  const a = setup();
  a.wr(LVT_TIMER, 0x30);
  assert.is(a.rd(LVT_TIMER), MASK | 0x30, 'software disabled: the mask stays set, the vector is written');
  a.wr(SVR, 0x1ff);
  assert.ok(a.enabled());
  for (const r of LVTS) a.wr(r, 0x40);
  for (const r of LVTS) assert.is(a.rd(r), 0x40, `unmasked 0x${r.toString(16)}`);
  a.wr(SVR, 0xff);
  assert.not.ok(a.enabled());
  for (const r of LVTS) assert.is(a.rd(r), MASK | 0x40, `disabling masks 0x${r.toString(16)}`);
  a.wr(SVR, 0x10f);
  assert.is(a.rd(SVR), 0x10f, 'all eight vector bits writable (Pentium 4 and later)');
  for (const r of LVTS) assert.is(a.rd(r), MASK | 0x40, 'enabling does not unmask');
  a.wr(SVR, 0xffffffff);
  assert.is(a.rd(SVR), 0x3ff, 'bits 31:10 reserved (no EOI-broadcast suppression)');
  a.wr(TPR, 0x20);
  a.ack(0xff); // a spurious interrupt (11.9): never in service, no EOI needed
  assert.equal(a.vectors(ISR), []);
  assert.is(a.rd(PPR), 0x20);
});

test('software-disabled APIC accepts no new fixed interrupts but keeps what IRR holds', () => {
  const a = setup();
  a.swEnable();
  a.selfIpi(0x50);
  a.wr(SVR, 0xff);
  a.selfIpi(0x60);
  assert.equal(a.vectors(IRR), [0x50]);
  assert.is(a.dropped(), 1);
  assert.is(a.pending(), 0x50, 'held interrupts still need handling (11.4.7.2)');
});

// ---- priorities (11.8.3.1) ---------------------------------------------------------------
test('TPR/PPR: an interrupt is deliverable only if its class is above PPR[7:4]', () => {
  const a = setup();
  a.swEnable();
  a.wr(TPR, 0x50);
  a.selfIpi(0x45);
  assert.equal(a.vectors(IRR), [0x45]);
  assert.is(a.rd(PPR), 0x50, 'PPR = TPR with nothing in service');
  assert.is(a.pending(), -1, 'class 4 < 5');
  a.wr(TPR, 0x4f);
  assert.is(a.pending(), -1, 'class 4 = 4: not above');
  a.wr(TPR, 0x3f);
  assert.is(a.pending(), 0x45);
  a.wr(TPR, 0x1ff);
  assert.is(a.rd(TPR), 0xff, 'TPR bits 7:0');
  assert.is(a.pending(), -1);
  a.wr(TPR, 0x3a);
  a.ack(0x45);
  assert.is(a.rd(PPR), 0x40, 'ISRV class 4 > TPR class 3: PPR = ISRV[7:4]:0');
  a.wr(TPR, 0x4a);
  assert.is(a.rd(PPR), 0x4a, 'TPR class 4 >= ISRV class 4: PPR = TPR');
  a.wr(TPR, 0x00);
  assert.is(a.rd(PPR), 0x40);
  a.wr(EOI, 0);
  assert.is(a.rd(PPR), 0x00);
});

test('IRR -> ISR -> EOI with nested priorities', () => {
  const a = setup();
  a.swEnable();
  a.selfIpi(0x31);
  a.selfIpi(0x62);
  assert.equal(a.vectors(IRR), [0x31, 0x62]);
  assert.is(a.rd(IRR + 0x30), 1 << 2, 'vector 0x62 = 98: IRR word 3, bit 2');
  assert.is(a.pending(), 0x62, 'highest first');
  a.ack(0x62);
  assert.equal(a.vectors(IRR), [0x31]);
  assert.equal(a.vectors(ISR), [0x62]);
  assert.is(a.rd(ISR + 0x30), 1 << 2);
  assert.is(a.pending(), -1, '0x31 waits below the in-service 0x62');
  a.selfIpi(0x65);
  assert.is(a.pending(), -1, 'same class as in service: waits');
  a.selfIpi(0x81);
  assert.is(a.pending(), 0x81, 'a higher class nests');
  a.ack(0x81);
  assert.equal(a.vectors(ISR), [0x62, 0x81]);
  assert.is(a.rd(PPR), 0x80);
  a.wr(EOI, 0);
  assert.equal(a.vectors(ISR), [0x62], 'EOI clears the highest in-service vector');
  assert.is(a.pending(), -1, '0x65 still blocked by 0x62');
  a.wr(EOI, 0);
  assert.equal(a.vectors(ISR), []);
  assert.is(a.pending(), 0x65);
  a.ack(0x65);
  assert.is(a.pending(), -1);
  a.wr(EOI, 0);
  assert.is(a.pending(), 0x31);
  a.ack(0x31);
  a.wr(EOI, 0);
  a.wr(EOI, 0); // nothing in service: no effect
  assert.equal(a.vectors(ISR), []);
  assert.equal(a.vectors(IRR), []);
  assert.equal(a.vectors(TMR), [], 'IPIs are edge-triggered');
  assert.is(a.pending(), -1);
  a.ack(0x31); // not pending: no effect
  assert.equal(a.vectors(ISR), []);
});

test('a second request of a vector already in IRR is one interrupt', () => {
  const a = setup();
  a.swEnable();
  a.selfIpi(0x40);
  a.selfIpi(0x40);
  a.ack(a.pending());
  assert.is(a.pending(), -1);
  assert.is(a.delivered(), 2);
});

// ---- timer (11.5.4) ---------------------------------------------------------------------------
test('timer one-shot, divide by 1: counts down from the TSC, fires once, stays 0', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_TIMER, 0x30);
  a.wr(TIMER_DCR, 0xb); // 1011b: divide by 1
  a.wr(TIMER_INIT, 1000, T0);
  assert.is(a.rd(TIMER_INIT), 1000);
  assert.is(a.rd(TIMER_CUR, T0), 1000);
  assert.is(a.rd(TIMER_CUR, T0 + 1n), 999);
  assert.is(a.rd(TIMER_CUR, T0 + 999n), 1);
  assert.is(a.deadline(), T0 + 1000n);
  assert.is(a.pending(T0 + 999n), -1);
  assert.is(a.pending(T0 + 1000n), 0x30);
  assert.is(a.rd(TIMER_CUR, T0 + 1000n), 0);
  assert.is(a.deadline(), MAX, 'one-shot: not counting any more');
  a.ack(0x30);
  a.wr(EOI, 0, T0 + 1001n);
  assert.is(a.pending(T0 + 100000n), -1, 'fired once');
  assert.is(a.rd(TIMER_CUR, T0 + 100000n), 0);
  assert.is(a.rd(TIMER_INIT), 1000, 'the initial count is kept');
});

test('timer divide configuration: 000b /2 ... 110b /128, 111b /1 (bits 0, 1, 3)', () => {
  const table: [number, bigint][] = [[0x0, 2n], [0x1, 4n], [0x2, 8n], [0x3, 16n], [0x8, 32n], [0x9, 64n], [0xa, 128n], [0xb, 1n]];
  for (const [dcr, div] of table) {
    const a = setup();
    a.swEnable();
    a.wr(LVT_TIMER, 0x30);
    a.wr(TIMER_DCR, dcr);
    assert.is(a.rd(TIMER_DCR), dcr);
    a.wr(TIMER_INIT, 100, T0);
    assert.is(a.deadline(), T0 + 100n * div, `DCR ${dcr}: divide by ${div}`);
    assert.is(a.rd(TIMER_CUR, T0 + div - 1n), 100, 'first decrement after one divided tick');
    assert.is(a.rd(TIMER_CUR, T0 + div), 99);
    assert.is(a.rd(TIMER_CUR, T0 + 50n * div), 50);
    assert.is(a.pending(T0 + 100n * div - 1n), -1);
    assert.is(a.pending(T0 + 100n * div), 0x30);
  }
  const a = setup();
  a.wr(TIMER_DCR, 0xff);
  assert.is(a.rd(TIMER_DCR), 0xb, 'bit 2 and 31:4 reserved');
});

test('timer periodic: reloads, fires every period; missed periods coalesce', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_TIMER, PERIODIC | 0x31);
  a.wr(TIMER_DCR, 0x1); // divide by 4
  a.wr(TIMER_INIT, 50, T0); // period 200 TSC ticks
  assert.is(a.deadline(), T0 + 200n);
  assert.is(a.pending(T0 + 199n), -1);
  assert.is(a.pending(T0 + 200n), 0x31);
  assert.is(a.deadline(), T0 + 400n);
  assert.is(a.rd(TIMER_CUR, T0 + 200n), 50, 'reloaded');
  assert.is(a.rd(TIMER_CUR, T0 + 250n), 38, 'ceil(150 / 4)');
  a.ack(0x31);
  a.wr(EOI, 0, T0 + 260n);
  assert.is(a.pending(T0 + 399n), -1);
  assert.is(a.pending(T0 + 400n), 0x31);
  a.ack(0x31);
  a.wr(EOI, 0, T0 + 410n);
  assert.is(a.pending(T0 + 1050n), 0x31, 'three periods passed unobserved');
  a.ack(0x31);
  assert.is(a.pending(T0 + 1050n), -1, 'one interrupt for them');
  assert.is(a.deadline(), T0 + 1200n, 'the period grid is kept');
  assert.is(a.rd(TIMER_CUR, T0 + 1050n), 38);
  a.wr(EOI, 0, T0 + 1060n);
  a.wr(TIMER_INIT, 0, T0 + 1100n);
  assert.is(a.deadline(), MAX, 'initial count 0 stops the timer');
  assert.is(a.rd(TIMER_CUR, T0 + 1100n), 0);
  assert.is(a.pending(T0 + 5000n), -1);
});

test('timer: writing the initial count restarts; changing the divider keeps the count', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_TIMER, 0x30);
  a.wr(TIMER_DCR, 0xb);
  a.wr(TIMER_INIT, 1000, T0);
  a.wr(TIMER_INIT, 500, T0 + 900n);
  assert.is(a.deadline(), T0 + 1400n, 'restart from the new count');
  assert.is(a.pending(T0 + 1000n), -1);
  a.wr(TIMER_DCR, 0x0, T0 + 1300n); // 100 left, now divide by 2
  assert.is(a.rd(TIMER_CUR, T0 + 1300n), 100);
  assert.is(a.deadline(), T0 + 1500n);
  assert.is(a.rd(TIMER_CUR, T0 + 1302n), 99);
  assert.is(a.pending(T0 + 1499n), -1);
  assert.is(a.pending(T0 + 1500n), 0x30);
});

test('masked LVT timer: counts, never delivers; software-disabled likewise', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_TIMER, MASK | 0x30);
  a.wr(TIMER_DCR, 0xb);
  a.wr(TIMER_INIT, 10, T0);
  assert.is(a.rd(TIMER_CUR, T0 + 4n), 6, 'counting while masked');
  assert.is(a.deadline(), MAX, 'no interrupt to wait for');
  assert.is(a.pending(T0 + 100n), -1);
  a.wr(LVT_TIMER, 0x30, T0 + 101n);
  assert.is(a.pending(T0 + 102n), -1, 'unmasking later raises nothing');
  assert.equal(a.vectors(IRR), []);
  // Periodic, then the APIC is software-disabled: masks forced, nothing fires.
  a.wr(LVT_TIMER, PERIODIC | 0x30, T0 + 200n);
  a.wr(TIMER_INIT, 10, T0 + 200n);
  a.wr(SVR, 0xff, T0 + 205n);
  assert.is(a.deadline(), MAX);
  assert.is(a.pending(T0 + 1000n), -1);
  assert.equal(a.vectors(IRR), []);
});

test('timer expiry is observed before a later register write masks it', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_TIMER, 0x30);
  a.wr(TIMER_DCR, 0xb);
  a.wr(TIMER_INIT, 10, T0);
  a.wr(LVT_TIMER, MASK | 0x30, T0 + 20n); // the timer fired at T0 + 10
  assert.equal(a.vectors(IRR), [0x30]);
});

// ---- IPIs (11.6) ------------------------------------------------------------------------------
test('ICR: INIT, SIPI, SMI and IPIs to other processors are dropped and counted; an NMI to self is the vCPU\'s', () => {
  const a = setup();
  a.swEnable();
  a.wr(ICR_HI, 0x01000000);
  a.wr(ICR_LO, 0x00004500); // INIT, assert, to APIC 1
  assert.is(a.rd(ICR_LO), 0x00004500, 'delivery status (bit 12) idle');
  assert.is(a.rd(ICR_HI), 0x01000000);
  a.wr(ICR_LO, 0x00004608); // SIPI, vector 8 -> 0x8000
  a.wr(ICR_LO, 0x000c4500); // INIT to all excluding self
  a.wr(ICR_LO, 0x000c4608); // SIPI to all excluding self
  assert.is(a.dropped(), 4);
  a.wr(ICR_LO, 0x00044500); // INIT to self: not acted on
  a.wr(ICR_LO, 0x00040200); // SMI to self
  assert.is(a.dropped(), 6);
  const nmi = (): boolean => a.call<number>('apic_takeNmi') === 1;
  assert.not.ok(nmi(), 'no NMI sent yet');
  a.wr(ICR_HI, 0x01000000);
  a.wr(ICR_LO, 0x00000400); // NMI to APIC 1: not this one
  assert.not.ok(nmi());
  a.wr(ICR_LO, 0x00040400); // NMI to self (11.6.1: the vector is ignored)
  assert.ok(nmi(), 'an NMI to self is raised for the vCPU');
  assert.not.ok(nmi(), 'taken once');
  assert.is(a.dropped(), 7);
  a.wr(ICR_LO, 0x00000041); // fixed, physical, to APIC 1
  a.wr(ICR_LO, 0x000c0042); // fixed, all excluding self
  a.wr(ICR_HI, 0x02000000);
  a.wr(ICR_LO, 0x00000843); // fixed, logical, flat, 0x02: LDR is 0
  assert.is(a.dropped(), 10);
  assert.equal(a.vectors(IRR), [], 'nothing arrived here');
  assert.is(a.delivered(), 1, 'the NMI');
  assert.equal(a.m.faults, []);
});

test('self-IPIs: shorthand self and all-including-self, physical ID, broadcast, logical flat and cluster', () => {
  const a = setup(3);
  a.swEnable();
  a.wr(ICR_LO, 0x00040040); // self
  a.wr(ICR_LO, 0x00080041); // all including self
  a.wr(ICR_HI, 0x03000000);
  a.wr(ICR_LO, 0x00000042); // physical, own ID
  a.wr(ICR_HI, 0xff000000);
  a.wr(ICR_LO, 0x00000043); // physical broadcast
  a.wr(LDR, 0x01000000);
  a.wr(ICR_HI, 0x01000000);
  a.wr(ICR_LO, 0x00000844); // logical flat, bit 0
  a.wr(ICR_LO, 0x00000945); // lowest priority, logical 0x01: this vCPU is the only candidate
  assert.equal(a.vectors(IRR), [0x40, 0x41, 0x42, 0x43, 0x44, 0x45]);
  assert.is(a.delivered(), 6);
  assert.is(a.dropped(), 0);
  a.wr(ICR_HI, 0x06000000);
  a.wr(ICR_LO, 0x00000846); // flat, bits 1-2: not this LDR
  a.wr(DFR, 0x0fffffff); // cluster model
  assert.is(a.rd(DFR), 0x0fffffff);
  a.wr(LDR, 0x21000000); // cluster 2, member bit 0
  a.wr(ICR_HI, 0x21000000);
  a.wr(ICR_LO, 0x00000847);
  a.wr(ICR_HI, 0x31000000);
  a.wr(ICR_LO, 0x00000848); // cluster 3
  a.wr(ICR_HI, 0x22000000);
  a.wr(ICR_LO, 0x00000849); // cluster 2, member bit 1
  assert.equal(a.vectors(IRR), [0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x47]);
  assert.is(a.dropped(), 3);
  a.wr(ID, 0x05000000);
  assert.is(a.rd(ID), 0x05000000);
  a.wr(ICR_HI, 0x05000000);
  a.wr(ICR_LO, 0x0000004a); // physical destination follows the ID register
  assert.equal(a.vectors(IRR).includes(0x4a), true);
});

// ---- errors (11.5.3) --------------------------------------------------------------------------
test('ESR: errors show only after a write; the next write clears them', () => {
  const a = setup();
  a.swEnable();
  a.selfIpi(0x05); // vector 0-15: illegal
  assert.equal(a.vectors(IRR), [], 'not delivered');
  assert.is(a.dropped(), 1);
  assert.is(a.rd(ESR), 0, 'nothing before the write');
  a.wr(ESR, 0);
  assert.is(a.rd(ESR), 0x20, 'Send Illegal Vector');
  assert.is(a.rd(ESR), 0x20, 'reading does not clear');
  a.wr(ESR, 0);
  assert.is(a.rd(ESR), 0, 'cleared by the next write');
  // A local interrupt with an illegal vector: Receive Illegal Vector.
  a.wr(LVT_TIMER, 0x08);
  a.wr(TIMER_DCR, 0xb);
  a.wr(TIMER_INIT, 5, T0);
  assert.is(a.pending(T0 + 5n), -1);
  assert.equal(a.vectors(IRR), [], 'the local APIC never sets IRR bits 0-15');
  assert.is(a.esr(), 0x40);
  // Reserved register offsets: Illegal Register Address; APR/RRD are absent but not illegal.
  assert.is(a.rd(0x040), 0);
  assert.is(a.esr(), 0x80);
  a.wr(0x3f0, 1);
  a.wr(0x2f0, 1); // CMCI LVT: not offered
  assert.is(a.esr(), 0x80);
  assert.is(a.rd(APR), 0);
  assert.is(a.rd(RRD), 0);
  assert.is(a.esr(), 0);
});

test('LVT error: an unmasked entry raises its vector on each error', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_ERROR, 0x50);
  a.selfIpi(0x01);
  assert.equal(a.vectors(IRR), [0x50]);
  assert.is(a.pending(), 0x50);
  assert.is(a.esr(), 0x20);
});

// ---- register widths --------------------------------------------------------------------------
test('writable bits; read-only registers ignore writes', () => {
  const a = setup();
  a.swEnable();
  a.wr(LVT_TIMER, 0xffffffff);
  assert.is(a.rd(LVT_TIMER), 0x000300ff, 'vector, mask, periodic; bit 18 (TSC-deadline) reserved');
  for (const r of [LVT_THERMAL, LVT_PERF]) {
    a.wr(r, 0xffffffff);
    assert.is(a.rd(r), 0x000107ff);
  }
  for (const r of [LVT_LINT0, LVT_LINT1]) {
    a.wr(r, 0xffffffff);
    assert.is(a.rd(r), 0x0001a7ff, 'remote IRR (14) and delivery status (12) read-only');
  }
  a.wr(LVT_ERROR, 0xffffffff);
  assert.is(a.rd(LVT_ERROR), 0x000100ff);
  a.wr(LDR, 0xffffffff);
  assert.is(a.rd(LDR), 0xff000000);
  a.wr(DFR, 0);
  assert.is(a.rd(DFR), 0x0fffffff, 'bits 27:0 read as ones');
  a.wr(ICR_HI, 0xffffffff);
  assert.is(a.rd(ICR_HI), 0xff000000);
  a.wr(ID, 0xffffffff);
  assert.is(a.rd(ID), 0xff000000);
  a.wr(VERSION, 0);
  a.wr(PPR, 0xff);
  a.wr(IRR, 0xffffffff);
  a.wr(ISR + 0x70, 0xffffffff);
  a.wr(TIMER_CUR, 1234);
  assert.is(a.rd(VERSION), 0x00050014);
  assert.is(a.rd(PPR), 0);
  assert.equal(a.vectors(IRR), []);
  assert.equal(a.vectors(ISR), []);
  assert.is(a.rd(TIMER_CUR), 0);
  assert.is(a.esr(), 0, 'writes to read-only registers are not errors');
  assert.is(a.rd(TPR + 4), 0, 'not 16-byte aligned: ignored');
});

// An I/O APIC's message (82093AA 3.2.4) enters IRR, and TMR when
// level-triggered; the EOI of a level-triggered interrupt is broadcast to
// the I/O APICs (11.8.5), of an edge-triggered one not.
test('APIC: interrupts from the bus: TMR for level-triggered, EOI broadcast only for those', () => {
  const a = setup(2);
  a.wr(SVR, 0x1ff);
  const bus = (v: number, level: boolean): boolean => a.call<number>('apic_acceptFromBus', v, level ? 1 : 0) === 1;
  const levelEoi = (): number => a.call<number>('apic_takeLevelEoi');
  assert.ok(bus(0x41, true));
  assert.ok(bus(0x31, false));
  assert.is(a.rd(TMR + 0x20) >>> 0, 1 << 1, 'TMR bit 41H');
  assert.is(a.pending(), 0x41);
  a.ack(0x41);
  a.wr(EOI, 0);
  assert.is(levelEoi(), 0x41, 'level-triggered EOI broadcast');
  assert.is(levelEoi(), -1, 'taken once');
  assert.is(a.pending(), 0x31);
  a.ack(0x31);
  a.wr(EOI, 0);
  assert.is(levelEoi(), -1, 'edge-triggered: no broadcast');
  assert.not.ok(bus(0x05, false), 'vectors 0-15 are refused');
  a.wr(SVR, 0x0ff);
  assert.not.ok(bus(0x42, false), 'a software-disabled APIC accepts nothing (11.4.7.2)');
  // Destinations (11.6.2): physical ID 2, broadcast, flat logical.
  const match = (dest: number, logical: boolean): boolean => a.call<number>('apic_matchesDestination', dest, logical ? 1 : 0) === 1;
  assert.ok(match(2, false));
  assert.not.ok(match(1, false));
  assert.ok(match(0xff, false));
  a.wr(DFR, 0xffffffff);
  a.wr(LDR, 0x04000000);
  assert.ok(match(0x06, true));
  assert.not.ok(match(0x01, true));
});


// ---- x2APIC mode (11.12) -------------------------------------------------------
const X2 = {
  ID: 0x802, VERSION: 0x803, TPR: 0x808, APR: 0x809, PPR: 0x80a, EOI: 0x80b, RRD: 0x80c, LDR: 0x80d, DFR: 0x80e,
  SVR: 0x80f, ISR0: 0x810, TMR0: 0x818, IRR0: 0x820, ESR: 0x828, CMCI: 0x82f, ICR: 0x830, ICR_HI: 0x831,
  LVT_TIMER: 0x832, LVT_ERROR: 0x837, TIMER_INIT: 0x838, TIMER_CUR: 0x839, TIMER_DCR: 0x83e, SELF_IPI: 0x83f,
};
function x2(apicId = 0) {
  const a = setup(apicId);
  const rdmsr = (msr: number): bigint | null =>
    a.call<number>('apic_x2Read', msr, a.now()) === 1 ? BigInt.asUintN(64, a.call<bigint>('apic_x2Value')) : null;
  const wrmsr = (msr: number, v: bigint): boolean => a.call<number>('apic_x2Write', msr, v, a.now()) === 1;
  const matches = (dest: number, logical: boolean, wide: boolean): boolean =>
    a.call<number>('apic_matchesIpi', dest >>> 0, logical ? 1 : 0, wide ? 1 : 0) === 1;
  return { ...a, rdmsr, wrmsr, matches };
}

test('x2APIC: the mode transitions of 11.12.5 (Figure 11-27)', () => {
  const a = x2(1);
  assert.is(a.rdmsr(X2.VERSION), null, 'xAPIC mode: the MSRs are #GP');
  assert.not.ok(a.wrmsr(X2.TPR, 0n), 'xAPIC mode: WRMSR #GP');
  assert.ok(a.setBase(0xfee00c00n), 'xAPIC -> x2APIC');
  assert.is(a.base(), 0xfee00c00n);
  assert.ok(a.setBase(0xfee00c00n), 'x2APIC -> x2APIC');
  assert.not.ok(a.setBase(0xfee00800n), 'x2APIC -> xAPIC directly: #GP');
  assert.not.ok(a.setBase(0xfee00400n), 'x2APIC -> invalid (EN=0, EXTD=1): #GP');
  assert.is(a.base(), 0xfee00c00n, 'unchanged');
  assert.ok(a.setBase(0xfee00000n), 'x2APIC -> disabled');
  assert.not.ok(a.setBase(0xfee00c00n), 'disabled -> x2APIC: #GP');
  assert.ok(a.setBase(0xfee00800n), 'disabled -> xAPIC');
  assert.is(a.rd(ID), 0x01000000, 'xAPIC ID again');
  assert.ok(a.setBase(0xfee00c00n), 'xAPIC -> x2APIC again');
});

test('x2APIC: registers by MSR, the page not decoded, state kept across xAPIC -> x2APIC', () => {
  const a = x2(0x13);
  a.swEnable();
  a.wr(TPR, 0x20);
  a.wr(LVT_LINT0, 0x700);
  assert.ok(a.setBase(0xfee00c00n));
  assert.is(a.rdmsr(X2.ID), 0x13n, 'x2APIC ID: the initial APIC ID');
  assert.is(a.rdmsr(X2.VERSION), 0x00050014n);
  assert.is(a.rdmsr(X2.LDR), (1n << 16n) | (1n << 3n), 'LDR: cluster 1, bit 3 (11.12.10.2)');
  assert.is(a.rdmsr(X2.TPR), 0x20n, 'TPR kept');
  assert.is(a.rdmsr(0x835), 0x700n, 'LVT LINT0 kept');
  assert.is(a.rdmsr(X2.SVR), 0x1ffn);
  assert.is(a.rd(SVR), 0xffffffff, 'the page decodes nothing');
  a.wr(TPR, 0x40);
  assert.is(a.rdmsr(X2.TPR), 0x20n, 'a page write does nothing');
  for (const m of [X2.APR, X2.RRD, X2.DFR, X2.EOI, X2.SELF_IPI, X2.ICR_HI, X2.CMCI, 0x800, 0x801, 0x804, 0x829, 0x840, 0x8ff])
    assert.is(a.rdmsr(m), null, `RDMSR 0x${m.toString(16)}: #GP`);
  for (const m of [X2.ID, X2.VERSION, X2.PPR, X2.LDR, X2.DFR, X2.ISR0, X2.TMR0, X2.IRR0 + 7, X2.TIMER_CUR, X2.APR, X2.ICR_HI, X2.CMCI, 0x800, 0x8ff])
    assert.not.ok(a.wrmsr(m, 0n), `WRMSR 0x${m.toString(16)}: #GP`);
  assert.not.ok(a.wrmsr(X2.TPR, 0x100n), 'TPR bits 31:8 reserved');
  assert.not.ok(a.wrmsr(X2.TPR, 1n << 32n), 'bits 63:32 reserved');
  assert.not.ok(a.wrmsr(X2.SVR, 0x400n), 'SVR bit 10 reserved');
  assert.not.ok(a.wrmsr(X2.EOI, 1n), 'EOI: nonzero is #GP');
  assert.not.ok(a.wrmsr(X2.ESR, 1n), 'ESR: nonzero is #GP');
  assert.is(a.rdmsr(X2.TPR), 0x20n, 'nothing changed');
  assert.ok(a.wrmsr(X2.TPR, 0x30n));
  assert.is(a.rd(TPR), 0xffffffff);
  assert.is(a.rdmsr(X2.TPR), 0x30n);
});

test('x2APIC: SELF IPI, ICR to itself, EOI, timer', () => {
  const a = x2(2);
  assert.ok(a.setBase(0xfee00c00n));
  assert.ok(a.wrmsr(X2.SVR, 0x1ffn));
  assert.ok(a.wrmsr(X2.SELF_IPI, 0x51n));
  assert.is(a.rdmsr(X2.IRR0 + 2), 1n << 17n, 'IRR: vector 51H');
  assert.is(a.pending(), 0x51);
  a.ack(0x51);
  assert.is(a.rdmsr(X2.ISR0 + 2), 1n << 17n);
  assert.ok(a.wrmsr(X2.EOI, 0n));
  assert.is(a.rdmsr(X2.ISR0 + 2), 0n, 'EOI cleared ISR');
  // ICR: physical destination 2 (itself) in bits 63:32, fixed, vector 61H.
  assert.ok(a.wrmsr(X2.ICR, (2n << 32n) | 0x61n));
  assert.is(a.rdmsr(X2.ICR), (2n << 32n) | 0x61n, 'ICR read whole');
  assert.is(a.pending(), 0x61);
  assert.is(a.delivered(), 2);
  // Destination 2 << 24 is another APIC in x2APIC mode: not taken.
  assert.ok(a.wrmsr(X2.ICR, (0x02000000n << 32n) | 0x62n));
  assert.is(a.rdmsr(X2.IRR0 + 3)! & (1n << 2n), 0n, 'vector 62H not in IRR');
  // The timer by MSR: one-shot, vector 70H, divide by 1.
  assert.ok(a.wrmsr(X2.TIMER_DCR, 0xbn));
  assert.ok(a.wrmsr(X2.LVT_TIMER, 0x70n));
  assert.ok(a.wrmsr(X2.TIMER_INIT, 1000n));
  assert.is(a.rdmsr(X2.TIMER_INIT), 1000n);
  assert.is(a.deadline(), T0 + 1000n);
});

test('x2APIC: destinations of 32-bit IPIs (11.12.10)', () => {
  const a = x2(0x25); // cluster 2, logical bit 5
  assert.ok(a.setBase(0xfee00c00n));
  assert.ok(a.matches(0x25, false, true), 'physical: x2APIC ID');
  assert.not.ok(a.matches(0x25000000, false, true));
  assert.ok(a.matches(0xffffffff, false, true), 'broadcast');
  assert.ok(a.matches(0xffffffff, true, true), 'logical broadcast');
  assert.ok(a.matches(0x00020020, true, true), 'logical: cluster 2, bit 5');
  assert.ok(a.matches(0x000200ff, true, true));
  assert.not.ok(a.matches(0x00020010, true, true), 'cluster 2, another bit');
  assert.not.ok(a.matches(0x00010020, true, true), 'another cluster');
  assert.ok(a.matches(0x25, false, false), '8-bit physical (I/O APIC)');
  assert.ok(a.matches(0xff, false, false), '8-bit broadcast');
});

// With APIC virtualization the registers live in a virtual-APIC page, where
// the processor itself moves a vector from vIRR to vISR when it delivers it
// (SDM Vol. 3C 30.2.2). A write of IA32_APIC_BASE that keeps the APIC
// enabled must not put back what the model last saw there: the delivered
// vector stays in service, not pending again.
test('virtual-APIC page: IA32_APIC_BASE write keeps what the processor delivered', () => {
  const a = setup();
  a.swEnable();
  a.selfIpi(0x31);
  assert.equal(a.vectors(IRR), [0x31]);
  const page = 0x300000;
  a.call('apic_useVirtualApicPage', BigInt(page));
  assert.is(a.m.phys.read32(page + IRR + 0x10) >>> 0, 1 << 17, 'vIRR holds 0x31 (word 1, bit 17)');
  // The processor delivers 0x31: vIRR -> vISR.
  a.m.phys.write32(page + IRR + 0x10, 0);
  a.m.phys.write32(page + ISR + 0x10, 1 << 17);
  assert.ok(a.setBase(a.base()), 'the same IA32_APIC_BASE written again');
  assert.is(a.m.phys.read32(page + IRR + 0x10) >>> 0, 0, 'not pending again');
  assert.is(a.m.phys.read32(page + ISR + 0x10) >>> 0, 1 << 17, 'still in service');
  assert.equal(a.vectors(ISR), [0x31]);
  assert.equal(a.vectors(IRR), []);
});

test.run();
