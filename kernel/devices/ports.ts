// The guest's I/O port space: the few devices of the small PC described in
// docs/guest-interface.md ("I/O ports"), everything else absent. The exit
// handler calls ioIn/ioOut for every IN/OUT the guest executes; nothing here
// ever touches a real port (kernel/hw/io is not imported), so no guest
// access can reach the host's devices.
//
//   0x3F8-0x3FF  COM1, a 16550 subset (uart.ts)
//   0x0F4        QEMU isa-debug-exit: a write ends the guest
//   0x510/0x511  QEMU fw_cfg selector / data (fwcfg.ts)
//   anything else: absent. Reads return all ones for the size (what an
//   undecoded ISA port floats to), writes are dropped; both are counted for
//   the guest's exit report.
import * as uart from "./uart";
import * as fwcfg from "./fwcfg";

export const DEBUG_EXIT: u32 = 0xf4;

export let exitRequested: bool = false;
// QEMU's isa-debug-exit: the emulator exits with status (value << 1) | 1,
// value being the written data (1, 2 or 4 bytes, zero-extended). Kept in 32
// bits; a process exit status is its low 8 bits.
export let exitCode: u32 = 0;
export let deniedReads: u32 = 0;
export let deniedWrites: u32 = 0;
// The most recent denied port and access (for the exit report): port in bits
// 15:0, size in bits 19:16, bit 31 set for a write. 0 when none.
export let lastDenied: u32 = 0;

export function reset(ramSize: u64, cpuCount: u32): void {
  uart.reset();
  fwcfg.reset(ramSize, cpuCount);
  exitRequested = false;
  exitCode = 0;
  deniedReads = 0;
  deniedWrites = 0;
  lastDenied = 0;
}

function sizeMask(size: u32): u32 {
  return size >= 4 ? 0xffffffff : (<u32>1 << (size << 3)) - 1;
}

function validSize(size: u32): bool {
  return size == 1 || size == 2 || size == 4;
}

// A 16-bit or 32-bit access to COM1 reaches consecutive byte registers, as
// an ISA bus splits it; it must lie wholly within 0x3F8-0x3FF.
function inUart(port: u32, size: u32): bool {
  return port >= uart.BASE && port + size <= uart.BASE + 8;
}

function denyRead(port: u32, size: u32): u32 {
  deniedReads++;
  lastDenied = (port & 0xffff) | ((size & 0xf) << 16);
  return sizeMask(size);
}

function denyWrite(port: u32, size: u32): void {
  deniedWrites++;
  lastDenied = (port & 0xffff) | ((size & 0xf) << 16) | 0x80000000;
}

export function ioIn(port: u32, size: u32): u32 {
  if (!validSize(size)) return denyRead(port, 4);
  if (inUart(port, size)) {
    let v: u32 = 0;
    for (let i: u32 = 0; i < size; i++) v |= uart.readReg(port - uart.BASE + i) << (i << 3);
    return v;
  }
  if (port == fwcfg.DATA && size == 1) return fwcfg.readData();
  return denyRead(port, size);
}

export function ioOut(port: u32, size: u32, value: u32): void {
  if (!validSize(size)) {
    denyWrite(port, 4);
    return;
  }
  value &= sizeMask(size);
  if (inUart(port, size)) {
    for (let i: u32 = 0; i < size; i++) uart.writeReg(port - uart.BASE + i, (value >> (i << 3)) & 0xff);
    return;
  }
  if (port == DEBUG_EXIT) {
    exitRequested = true;
    exitCode = (value << 1) | 1;
    return;
  }
  if (port == fwcfg.SELECTOR && size == 2) {
    fwcfg.select(value);
    return;
  }
  if (port == fwcfg.DATA && size == 1) return; // fw_cfg data writes: ignored
  denyWrite(port, size);
}

// Print the guest's unfinished console line (called when the guest ends).
export function flushConsole(): void {
  uart.flush();
}
