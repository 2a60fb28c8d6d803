// The guest's I/O port space: the few devices of the small PC described in
// docs/guest-interface.md ("I/O ports"), everything else absent. The exit
// handler calls ioIn/ioOut for every IN/OUT the guest executes; nothing here
// ever touches a real port (kernel/hw/io is not imported), so no guest
// access can reach the host's devices.
//
//   0x3F8-0x3FF  COM1, a 16550 subset (uart.ts)
//   0x0F4        QEMU isa-debug-exit: a write ends the guest
//   0x510/0x511  QEMU fw_cfg selector / data (fwcfg.ts)
//   0x070/0x071  the CMOS RTC's index / data, a stopped clock (rtc.ts)
//   anything else: absent. Reads return all ones for the size (what an
//   undecoded ISA port floats to), writes are dropped; both are counted for
//   the guest's exit report.
import * as uart from "./uart";
import * as fwcfg from "./fwcfg";
import * as rtc from "./rtc";
import * as ioapic from "./ioapic";
import * as intbus from "../vm/intbus";
import { Vm } from "../vm/vm";

export const DEBUG_EXIT: u32 = 0xf4;

// One guest's port space apart from its devices' registers: the
// isa-debug-exit request and the count of accesses to absent ports.
@unmanaged export class Ports {
  exitRequested: bool = false;
  // QEMU's isa-debug-exit: the emulator exits with status (value << 1) | 1,
  // value being the written data (1, 2 or 4 bytes, zero-extended). Kept in
  // 32 bits; a process exit status is its low 8 bits.
  exitCode: u32 = 0;
  deniedReads: u32 = 0;
  deniedWrites: u32 = 0;
  // The most recent denied port and access (for the exit report): port in
  // bits 15:0, size in bits 19:16, bit 31 set for a write. 0 when none.
  lastDenied: u32 = 0;
  // The CMOS RTC's selected register (port 0x70, bits 6:0; rtc.ts).
  rtcIndex: u32 = 0;
}

// A guest's devices live in its Vm's allocation after the Vm's fields (the
// device area, vm.ts), at these offsets, so that reaching one from the Vm is
// an addition rather than a pointer load (every load on the exit path is
// bounds-checked).
export const UART_AT: usize = 0;
export const PORTS_AT: usize = (uart.BYTES + 7) & ~(<usize>7);
export const FWCFG_AT: usize = PORTS_AT + ((offsetof<Ports>() + 7) & ~(<usize>7));
export const IOAPIC_AT: usize = FWCFG_AT + ((offsetof<fwcfg.FwCfg>() + 7) & ~(<usize>7));
export const AREA_BYTES: usize = IOAPIC_AT + ioapic.BYTES;

// Every device as at power-on; part of making the Vm for a guest.
export function reset(vm: Vm): void {
  vm.uart.reset();
  fwcfg.reset(vm);
  vm.ioapic.wires = 0;
  vm.ioapic.reset();
  const p = vm.ports;
  p.exitRequested = false;
  p.exitCode = 0;
  p.deniedReads = 0;
  p.deniedWrites = 0;
  p.lastDenied = 0;
  p.rtcIndex = 0;
}

function sizeMask(size: u32): u32 {
  return size >= 4 ? 0xffffffff : (<u32>1 << (size << 3)) - 1;
}

function validSize(size: u32): bool {
  return size == 1 || size == 2 || size == 4;
}

// A 16-bit or 32-bit access to COM1 reaches consecutive byte registers, as
// an ISA bus splits it; it must lie wholly within 0x3F8-0x3FF. A byte
// access does not go through the loop of the wider ones: the loop's set-up
// cost the byte path (every console byte) 20 ticks (readReg and writeReg
// are inlined into both).
function inUart(port: u32, size: u32): bool {
  return port >= uart.BASE && port + size <= uart.BASE + 8;
}

function denyRead(p: Ports, port: u32, size: u32): u32 {
  p.deniedReads++;
  p.lastDenied = (port & 0xffff) | ((size & 0xf) << 16);
  return sizeMask(size);
}

function denyWrite(p: Ports, port: u32, size: u32): void {
  p.deniedWrites++;
  p.lastDenied = (port & 0xffff) | ((size & 0xf) << 16) | 0x80000000;
}

// COM1's interrupt wire, after an access that may have changed it, to
// I/O APIC input 4 (the ISA IRQ 4 of a PC; docs/guest-interface.md).
export const UART_IOAPIC_INPUT: u32 = 4;
// Only some accesses can change the interrupt pending or its gate
// (uart.ts): reads of RBR (0) and IIR (2), and the writes writeReg says
// (THR, IER, MCR). Other accesses (LSR polling, the scratch register) skip
// the update and cost what they did before the interrupt existed.
const IRQ_READS: u32 = (1 << 0) | (1 << 2);
function uartIrq(vm: Vm): void {
  const u = vm.uart;
  const high = u.irqLine();
  if (high == u.irqHigh) return;
  u.irqHigh = high;
  vm.ioapic.setLine(UART_IOAPIC_INPUT, high);
  intbus.route(vm);
}

export function ioIn(vm: Vm, port: u32, size: u32): u32 {
  if (!validSize(size)) return denyRead(vm.ports, port, 4);
  if (inUart(port, size)) {
    const u = vm.uart;
    const off = port - uart.BASE;
    let v: u32 = 0;
    if (size == 1) v = u.readReg(off);
    else for (let i: u32 = 0; i < size; i++) v |= u.readReg(off + i) << (i << 3);
    if (size > 1 || ((IRQ_READS >> off) & 1) != 0) uartIrq(vm);
    return v;
  }
  if (port == fwcfg.DATA && size == 1) return fwcfg.readData(vm);
  if (size == 1) {
    if (port == rtc.DATA_PORT) return rtc.read(vm.ports.rtcIndex);
    if (port == rtc.INDEX_PORT) return 0xff; // write-only on a PC
  }
  return denyRead(vm.ports, port, size);
}

// Returns true when the write asks for the guest to end (isa-debug-exit;
// the code is in vm.ports.exitCode).
export function ioOut(vm: Vm, port: u32, size: u32, value: u32): bool {
  if (!validSize(size)) {
    denyWrite(vm.ports, port, 4);
    return false;
  }
  // Bits of value above size are ignored: the UART takes bytes 0..size-1,
  // the fw_cfg selector 16 bits, isa-debug-exit masks it itself.
  if (inUart(port, size)) {
    const u = vm.uart;
    const off = port - uart.BASE;
    let irq = false;
    if (size == 1) irq = u.writeReg(off, value);
    else for (let i: u32 = 0; i < size; i++) irq = u.writeReg(off + i, (value >> (i << 3)) & 0xff) || irq;
    if (irq) uartIrq(vm);
    return false;
  }
  if (port == DEBUG_EXIT) {
    const p = vm.ports;
    p.exitRequested = true;
    p.exitCode = ((value & sizeMask(size)) << 1) | 1;
    return true;
  }
  if (port == fwcfg.SELECTOR && size == 2) {
    fwcfg.select(vm, value);
    return false;
  }
  if (port == fwcfg.DATA && size == 1) return false; // fw_cfg data writes: ignored
  if (size == 1) {
    if (port == rtc.INDEX_PORT) {
      vm.ports.rtcIndex = value & 0x7f;
      return false;
    }
    if (port == rtc.DATA_PORT) return false; // the clock cannot be set (rtc.ts)
  }
  denyWrite(vm.ports, port, size);
  return false;
}

// Print the guest's unfinished console line (called when the guest ends).
export function flushConsole(vm: Vm): void {
  vm.uart.flush();
}
