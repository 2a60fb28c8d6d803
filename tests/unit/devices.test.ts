// The guest's port devices (kernel/devices/): COM1 (16550 subset), QEMU's
// isa-debug-exit and fw_cfg, and the denial of every other port, exercised
// through kernel.wasm's dev_* hooks on the model. Expected values come from
// docs/guest-interface.md, the 16550 datasheet and QEMU's docs/specs/fw_cfg.rst.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel } from '../model/index.ts';

const COM1 = 0x3f8;
const THR = COM1, RBR = COM1, DLL = COM1, IER = COM1 + 1, DLM = COM1 + 1, IIR = COM1 + 2, FCR = COM1 + 2;
const LCR = COM1 + 3, MCR = COM1 + 4, LSR = COM1 + 5, MSR = COM1 + 6, SCR = COM1 + 7;
const FW_SEL = 0x510, FW_DATA = 0x511;
const MiB = 0x100000;

function setup(ram = 32 * MiB, cpus = 1) {
  const m = tigerlake();
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  call('dev_reset', BigInt(ram), cpus);
  const inp = (port: number, size = 1): number => call<number>('dev_in', port, size) >>> 0;
  const out = (port: number, value: number, size = 1): void => void call('dev_out', port, size, value);
  const puts = (s: string): void => {
    for (const c of s) out(THR, c.charCodeAt(0));
  };
  const mark = m.console.length;
  const lines = (): string[] => m.console.slice(mark).split('\n').slice(0, -1); // complete lines only
  const denied = (): [number, number] => [call<number>('dev_deniedReads') >>> 0, call<number>('dev_deniedWrites') >>> 0];
  const fwItem = (key: number, n: number): number[] => {
    out(FW_SEL, key, 2);
    const b: number[] = [];
    for (let i = 0; i < n; i++) b.push(inp(FW_DATA));
    return b;
  };
  return { m, k, call, inp, out, puts, lines, denied, fwItem };
}

// ---- COM1 -------------------------------------------------------------------
test('UART: THR bytes become one "L1| " line per newline; CR dropped', () => {
  const d = setup();
  d.puts('hello, world\r\n');
  d.puts('ok 1 - second line\n');
  assert.equal(d.lines(), ['L1| hello, world', 'L1| ok 1 - second line']);
  assert.equal(d.denied(), [0, 0], 'COM1 accesses are not denied');
});

test('UART: nothing is printed before the newline; flushConsole prints the partial line', () => {
  const d = setup();
  d.puts('RESULT: PA');
  assert.equal(d.lines(), []);
  assert.is(d.call('dev_uartPending'), 10);
  d.puts('SS');
  d.call('dev_flushConsole');
  assert.equal(d.lines(), ['L1| RESULT: PASS']);
  d.call('dev_flushConsole');
  assert.equal(d.lines(), ['L1| RESULT: PASS'], 'flushing an empty line prints nothing');
});

test('UART: non-printable bytes print as "?"; an empty line still prints', () => {
  const d = setup();
  for (const b of [0x41, 0x09, 0x00, 0x7f, 0xc3, 0x42, 0x0a, 0x0a]) d.out(THR, b);
  assert.equal(d.lines(), ['L1| A????B', 'L1| ']);
});

test('UART: lines longer than 200 bytes are split, nothing lost', () => {
  const d = setup();
  const s = Array.from({ length: 450 }, (_, i) => String.fromCharCode(0x41 + (i % 26))).join('');
  d.puts(s + '\n');
  assert.equal(d.lines(), ['L1| ' + s.slice(0, 200), 'L1| ' + s.slice(200, 400), 'L1| ' + s.slice(400)]);
  const e = setup();
  e.puts('x'.repeat(200) + '\n');
  assert.equal(e.lines(), ['L1| ' + 'x'.repeat(200)], 'exactly 200 bytes: one line, no empty one after it');
});

test('UART: register values after reset (LSR 0x60, IIR 0x01, MSR 0xB0, RBR 0)', () => {
  const d = setup();
  assert.is(d.inp(LSR), 0x60, 'THRE | TEMT, no data ready');
  assert.is(d.inp(IIR), 0x01, 'no interrupt pending');
  assert.is(d.inp(MSR), 0xb0, 'DCD | DSR | CTS');
  assert.is(d.inp(RBR), 0, 'no input');
  assert.is(d.inp(IER), 0);
  assert.is(d.inp(LCR), 0);
  assert.is(d.inp(MCR), 0);
  assert.is(d.inp(SCR), 0);
});

test('UART: SCR, LCR, IER, MCR keep what is written (IER bits 3:0, MCR bits 4:0)', () => {
  const d = setup();
  d.out(SCR, 0xa5);
  assert.is(d.inp(SCR), 0xa5);
  d.out(SCR, 0x5a);
  assert.is(d.inp(SCR), 0x5a);
  d.out(LCR, 0x03);
  assert.is(d.inp(LCR), 0x03);
  d.out(IER, 0xff);
  assert.is(d.inp(IER), 0x0f, '16550 IER bits 7:4 read 0');
  d.out(MCR, 0xeb);
  assert.is(d.inp(MCR), 0x0b, '16550 MCR bits 7:5 read 0');
  d.out(FCR, 0xc7);
  assert.is(d.inp(IIR), 0xc2, 'FIFOs enabled: IIR bits 7:6 set; IER bit 1 set with THR empty: THRE interrupt');
  assert.is(d.inp(IIR), 0xc1, 'reading IIR cleared the THRE interrupt');
  d.out(LSR, 0x00);
  assert.is(d.inp(LSR), 0x60, 'LSR is read-only');
  assert.equal(d.lines(), []);
});

// 16550 datasheet, "Interrupt Identification Register" and the interrupt
// control table; the IRQ output through OUT2 as a PC wires it.
test('UART: interrupts: THRE raised by enabling it and by each THR write, cleared by reading IIR', () => {
  const d = setup();
  assert.is(d.inp(IIR), 0x01, 'none pending after reset');
  d.out(IER, 0x02);
  assert.is(d.inp(IIR), 0x02, 'THRE: enabled with THR empty');
  assert.is(d.inp(IIR), 0x01, 'the IIR read cleared it');
  d.out(THR, 0x41);
  assert.is(d.inp(IIR), 0x02, 'THR written and (at once) empty again');
  d.out(IER, 0x00);
  d.out(THR, 0x42);
  assert.is(d.inp(IIR), 0x01, 'disabled: not reported');
  d.out(IER, 0x02);
  assert.is(d.inp(IIR), 0x02, 'enabled again with THR empty');
  d.puts('\n');
});

test('UART: interrupts: received data (loopback) outranks THRE and clears when RBR is read', () => {
  const d = setup();
  d.out(MCR, 0x10);
  d.out(IER, 0x03);
  d.out(THR, 0x5a);
  assert.is(d.inp(IIR), 0x04, 'received data available first');
  assert.is(d.inp(IIR), 0x04, 'reading IIR does not clear it');
  assert.is(d.inp(RBR), 0x5a);
  assert.is(d.inp(IIR), 0x02, 'then THRE');
  assert.is(d.inp(IIR), 0x01);
});

test('UART: the IRQ 4 wire: pending interrupt with OUT2, not in loopback; I/O APIC input 4 sends it', () => {
  const d = setup();
  // I/O APIC entry 4: vector 0x24, edge, unmasked (82093AA registers).
  d.call('ioapic_write', 0x00, 4, 0x18);
  d.call('ioapic_write', 0x10, 4, 0x24);
  const sent = (): number => d.call<number>('ioapic_sent') >>> 0;
  d.out(IER, 0x02);
  assert.is(sent(), 0, 'OUT2 clear: the wire stays low');
  d.out(MCR, 0x08);
  assert.is(sent(), 1, 'OUT2 set with THRE pending: a rising edge on input 4');
  d.inp(IIR);
  assert.is(sent(), 1, 'reading IIR lowered the wire');
  d.out(THR, 0x0a);
  assert.is(sent(), 2, 'the next THRE is another edge');
  d.out(MCR, 0x18);
  d.out(THR, 0x01);
  assert.is(sent(), 2, 'loopback: the output pins are disconnected');
  const m = BigInt.asUintN(64, d.call<bigint>('ioapic_takeMessage'));
  assert.is(Number(m & 0xffn), 0x24);
});

test('UART: DLAB makes 0x3F8/0x3F9 the divisor latch; THR/IER untouched meanwhile', () => {
  const d = setup();
  d.out(IER, 0x05);
  d.out(LCR, 0x83); // DLAB | 8N1
  d.out(DLL, 0x0c);
  d.out(DLM, 0x00);
  assert.is(d.inp(DLL), 0x0c);
  assert.is(d.inp(DLM), 0x00);
  d.out(DLM, 0x12);
  assert.is(d.inp(DLM), 0x12);
  assert.equal(d.lines(), [], 'a divisor byte is not console output');
  assert.is(d.call('dev_uartPending'), 0);
  d.out(LCR, 0x03);
  assert.is(d.inp(IER), 0x05, 'IER kept its value under DLAB');
  assert.is(d.inp(RBR), 0, 'RBR again');
  d.puts('after\n');
  assert.equal(d.lines(), ['L1| after']);
  d.out(LCR, 0x83);
  assert.is(d.inp(DLL), 0x0c, 'divisor kept');
  assert.is(d.inp(DLM), 0x12);
});

test('UART: loopback (MCR bit 4) returns THR bytes through RBR and mirrors the modem lines', () => {
  const d = setup();
  d.out(MCR, 0x10 | 0x0a); // LOOP | RTS | OUT2: Linux 8250's presence test
  assert.is(d.inp(MSR) & 0xf0, 0x90, 'CTS (from RTS) | DCD (from OUT2)');
  d.out(MCR, 0x10 | 0x05); // LOOP | DTR | OUT1
  assert.is(d.inp(MSR) & 0xf0, 0x60, 'DSR | RI');
  d.out(THR, 0x55);
  assert.is(d.inp(LSR), 0x61, 'data ready');
  assert.is(d.inp(RBR), 0x55);
  assert.is(d.inp(LSR), 0x60, 'read clears data ready');
  assert.is(d.inp(RBR), 0);
  d.out(MCR, 0x03);
  assert.is(d.inp(MSR), 0xb0);
  d.call('dev_flushConsole');
  assert.equal(d.lines(), [], 'looped-back bytes are not printed');
});

test('UART: 16- and 32-bit accesses reach consecutive byte registers', () => {
  const d = setup();
  d.out(SCR, 0x77);
  assert.is(d.inp(LSR, 2), 0xb060, 'LSR | MSR << 8');
  assert.is(d.inp(MCR, 4), 0x77b06000, 'MCR, LSR, MSR, SCR');
  d.out(THR, 0x0a48, 2); // THR 'H', IER 0x0a
  assert.is(d.inp(IER), 0x0a);
  d.out(THR, 0x0a, 1);
  assert.equal(d.lines(), ['L1| H']);
  d.out(SCR, 0xa5c3, 1);
  assert.is(d.inp(SCR), 0xc3, 'a byte write: bits above the access size are ignored');
  d.out(IER, 0x830005, 2); // IER 0x05, FCR 0x00; 0x83 would be LCR's
  assert.is(d.inp(IER), 0x05);
  assert.is(d.inp(LCR), 0x00, 'a 16-bit write reaches two registers, no more');
  d.out(IER, 0, 1);
  assert.equal(d.denied(), [0, 0]);
  assert.is(d.inp(MSR, 4), 0xffffffff, 'crossing the end of COM1: denied');
  assert.equal(d.denied(), [1, 0]);
});

// ---- isa-debug-exit -------------------------------------------------------------
test('debug exit: (value << 1) | 1 for 1-, 2- and 4-byte writes', () => {
  const cases: [number, number, number][] = [
    [1, 0x00, 0x1],
    [1, 0x01, 0x3],
    [1, 0x31, 0x63],
    [1, 0x1ff, 0x1ff], // only the low byte is written: 0xff -> 0x1ff
    [2, 0x1234, 0x2469],
    [2, 0xabcdef, 0x19bdf], // low 16 bits 0xcdef
    [4, 0x10000, 0x20001],
    [4, 0x7fffffff, 0xffffffff],
  ];
  for (const [size, v, code] of cases) {
    const d = setup();
    assert.is(d.call('dev_exitRequested'), 0);
    d.out(0xf4, v, size);
    assert.is(d.call('dev_exitRequested'), 1, `size ${size}`);
    assert.is(d.call<number>('dev_exitCode') >>> 0, code, `size ${size} value 0x${v.toString(16)}`);
    assert.equal(d.denied(), [0, 0]);
  }
  const d = setup();
  assert.is(d.inp(0xf4), 0xff, 'reads: all ones');
  assert.is(d.call('dev_exitRequested'), 0, 'a read does not exit');
  d.out(0xf4, 2, 1);
  d.call('dev_reset', 32n * BigInt(MiB), 1);
  assert.is(d.call('dev_exitRequested'), 0, 'reset clears the request');
});

// ---- fw_cfg ------------------------------------------------------------------------
test('fw_cfg: signature "QEMU", then zeros past the end', () => {
  const d = setup();
  assert.equal(d.fwItem(0x0000, 8), [0x51, 0x45, 0x4d, 0x55, 0, 0, 0, 0]);
  assert.equal(d.denied(), [0, 0]);
});

test('fw_cfg: ID is 1 (traditional interface, no DMA), u32 little-endian', () => {
  const d = setup();
  assert.equal(d.fwItem(0x0001, 6), [1, 0, 0, 0, 0, 0]);
});

test('fw_cfg: RAM size u64 LE follows reset()', () => {
  const d = setup(32 * MiB);
  assert.equal(d.fwItem(0x0003, 9), [0, 0, 0, 2, 0, 0, 0, 0, 0]);
  d.call('dev_reset', 0x1_2345_6000n, 1);
  assert.equal(d.fwItem(0x0003, 8), [0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0]);
});

test('fw_cfg: NB_CPUS and MAX_CPUS are u16 LE', () => {
  const d = setup(32 * MiB, 1);
  assert.equal(d.fwItem(0x0005, 3), [1, 0, 0]);
  assert.equal(d.fwItem(0x000f, 3), [1, 0, 0]);
  d.call('dev_reset', BigInt(64 * MiB), 0x103);
  assert.equal(d.fwItem(0x0005, 2), [0x03, 0x01]);
  assert.equal(d.fwItem(0x000f, 2), [0x03, 0x01]);
});

test('fw_cfg: unknown keys are empty; arch-local keys too; write-channel bit ignored', () => {
  const d = setup();
  for (const key of [0x0002, 0x0004, 0x0019, 0x0020, 0x3fff, 0x8000, 0x8003, 0xffff]) assert.equal(d.fwItem(key, 4), [0, 0, 0, 0], `key 0x${key.toString(16)}`);
  assert.equal(d.fwItem(0x4000, 4), [0x51, 0x45, 0x4d, 0x55], '0x4000 = signature with the write flag');
});

test('fw_cfg: re-selecting restarts at offset 0; data writes ignored', () => {
  const d = setup();
  assert.equal(d.fwItem(0x0000, 2), [0x51, 0x45]);
  d.out(FW_DATA, 0x99);
  assert.equal([d.inp(FW_DATA), d.inp(FW_DATA)], [0x4d, 0x55], 'the write neither changed data nor the offset');
  assert.equal(d.fwItem(0x0000, 4), [0x51, 0x45, 0x4d, 0x55], 'restart');
  assert.equal(d.fwItem(0x0001, 1), [1]);
  assert.equal(d.fwItem(0x0000, 1), [0x51], 'another key and back: offset 0');
  assert.equal(d.denied(), [0, 0]);
});

test('fw_cfg: after reset the signature is selected', () => {
  const d = setup();
  assert.equal([0, 1, 2, 3].map(() => d.inp(FW_DATA)), [0x51, 0x45, 0x4d, 0x55]);
});

test('fw_cfg: other access sizes are not decoded (denied, counted)', () => {
  const d = setup();
  d.fwItem(0x0001, 0);
  d.out(FW_SEL, 0x0000, 1); // 8-bit selector write: no select
  assert.is(d.inp(FW_DATA), 1, 'still ID');
  d.out(FW_SEL, 0x0000, 4); // 32-bit: no select
  assert.is(d.inp(FW_DATA), 0, 'still ID, byte 1');
  assert.equal(d.denied(), [0, 2]);
  assert.is(d.inp(FW_SEL, 2), 0xffff, 'the selector is write-only');
  assert.is(d.inp(FW_DATA, 2), 0xffff, 'data is 8 bits wide');
  assert.is(d.inp(FW_DATA, 4), 0xffffffff);
  assert.is(d.inp(0x514, 4), 0xffffffff, 'no DMA address register');
  assert.equal(d.denied(), [4, 2]);
  assert.is(d.inp(FW_DATA), 0, 'denied reads did not advance the offset (byte 2 of ID)');
});

// ---- everything else --------------------------------------------------------------------
test('other ports: all ones for the size, writes dropped, both counted', () => {
  const d = setup();
  assert.is(d.inp(0x60, 1), 0xff);
  assert.is(d.inp(0x60, 2), 0xffff);
  assert.is(d.inp(0xcfc, 4), 0xffffffff);
  assert.is(d.inp(0x2f8), 0xff, 'COM2 is not there');
  assert.is(d.inp(0x3f7), 0xff, 'just below COM1');
  assert.equal(d.denied(), [5, 0]);
  assert.is(d.call<number>('dev_lastDenied') >>> 0, 0x103f7, 'port 0x3f7, 1 byte, read');
  d.out(0xcf8, 0x80000000, 4);
  d.out(0x20, 0x11);
  d.out(0xe9, 0x41);
  d.out(0x8900, 0x53);
  d.out(0x400, 0x1234, 2);
  assert.equal(d.denied(), [5, 5]);
  assert.is(d.call<number>('dev_lastDenied') >>> 0, 0x80020400, 'port 0x400, 2 bytes, write');
  assert.is(d.call('dev_exitRequested'), 0);
  assert.equal(d.lines(), [], 'port 0xE9 is not a console for the guest');
  assert.equal(d.m.faults, [], 'no real port access, no fault');
  d.call('dev_reset', BigInt(32 * MiB), 1);
  assert.equal(d.denied(), [0, 0], 'reset clears the counters');
});

// ---- CMOS RTC (ports 0x70/0x71; kernel/devices/rtc.ts) -------------------------
test('RTC: a stopped clock at 2026-01-01 00:00:00 (BCD, 24-hour), UIP never set, data valid', () => {
  const d = setup();
  const reg = (i: number): number => {
    d.out(0x70, i);
    return d.inp(0x71);
  };
  // MC146818: 0 s, 2 min, 4 h, 6 weekday (1 = Sunday), 7 day, 8 month, 9 year.
  assert.equal([0, 2, 4, 6, 7, 8, 9].map(reg), [0, 0, 0, 5, 1, 1, 0x26]);
  assert.is(reg(0x0a), 0x26, 'A: UIP (bit 7) clear, 32.768 kHz time base, 1024 Hz rate');
  assert.is(reg(0x0b), 0x02, 'B: 24-hour, BCD, no interrupts, SET clear');
  assert.is(reg(0x0c), 0, 'C: no interrupt flags');
  assert.is(reg(0x0d), 0x80, 'D: VRT, time and RAM valid');
  assert.is(reg(0x8a), 0x26, 'index bit 7 (NMI mask on a PC) does not select');
  d.out(0x70, 0x00);
  d.out(0x71, 0x59);
  assert.is(d.inp(0x71), 0, 'the clock cannot be set');
  assert.is(d.inp(0x70), 0xff, 'the index port is write-only');
  assert.equal(d.denied(), [0, 0], 'byte accesses to 0x70/0x71 are the device');
  d.out(0x70, 0x0a, 2);
  assert.is(d.inp(0x71, 2), 0xffff, 'only byte accesses decode');
  assert.equal(d.denied(), [1, 1]);
});

test('no device touches a real port', () => {
  const d = setup();
  d.puts('x\n');
  d.inp(LSR);
  d.out(MCR, 0x1f);
  d.out(THR, 0x41);
  d.inp(RBR);
  d.fwItem(0, 4);
  d.inp(0x61);
  d.out(0x61, 0);
  d.out(0x3f8, 0, 4);
  d.out(0xf4, 0);
  assert.equal(d.m.ioLog, [], 'no io.inp / io.outp import was called');
  assert.is(d.m.calls.get('io.inp') ?? 0, 0);
  assert.is(d.m.calls.get('io.outp') ?? 0, 0);
  assert.equal(d.m.faults, []);
});

test.run();
