// COM1 (ports 0x3F8-0x3FF): the subset of a 16550 UART a guest needs to
// print. Transmitted bytes become console lines "L1| <text>"; nothing is
// ever received from outside. No interrupt is raised (there is no PIC or
// I/O APIC for one to reach), so IIR always says "none pending".
//
//   off  DLAB=0 read   DLAB=0 write   DLAB=1 (both)   here
//   0    RBR           THR            DLL             RBR 0 (loopback: last byte), THR -> console line
//   1    IER           IER            DLM             IER bits 3:0 kept (7:4 read 0, as on a 16550)
//   2    IIR           FCR            IIR / FCR       IIR reads 0x01; FCR writes accepted, ignored
//   3    LCR           LCR                            8 bits kept; bit 7 = DLAB
//   4    MCR           MCR                            bits 4:0 kept (7:5 read 0); bit 4 = loopback
//   5    LSR           (factory test)                 0x60 = THRE | TEMT (+ DR in loopback); writes ignored
//   6    MSR           -                              0xB0 = DCD | DSR | CTS; loopback: MCR outputs
//   7    SCR           SCR                            8 bits kept
//
// Register semantics follow the 16550 datasheet: the divisor latch shares
// offsets 0/1 with RBR/THR/IER while LCR bit 7 is set; in loopback mode
// (MCR bit 4) the transmitter output goes to the receiver instead of the
// line, and the modem inputs follow the modem outputs (CTS = RTS, DSR = DTR,
// RI = OUT1, DCD = OUT2). Loopback is what probing drivers (Linux 8250's
// autoconfig) use to tell a UART is present. The delta bits of MSR (3:0)
// stay 0: no input line ever changes by itself.
import * as print from "../lib/print";

export const BASE: u32 = 0x3f8;

// One guest line: bytes between newlines, split when longer than LINE_MAX
// (print's own line holds 240 bytes; "L1| " + 200 + "\n" fits).
export const LINE_MAX: i32 = 200;
const line: usize = memory.data(LINE_MAX);
let used: i32 = 0;

let ier: u32 = 0;
let lcr: u32 = 0;
let mcr: u32 = 0;
let scr: u32 = 0;
let dll: u32 = 0;
let dlm: u32 = 0;
// Loopback receive holding register (only loopback ever fills it).
let rbr: u32 = 0;
let dataReady: bool = false;

const LCR_DLAB: u32 = 0x80;
const MCR_LOOP: u32 = 0x10;
const LSR_DR: u32 = 0x01;
const LSR_THRE: u32 = 0x20;
const LSR_TEMT: u32 = 0x40;
const IIR_NONE: u32 = 0x01;
const MSR_CTS: u32 = 0x10;
const MSR_DSR: u32 = 0x20;
const MSR_RI: u32 = 0x40;
const MSR_DCD: u32 = 0x80;

// The registers after a master reset (datasheet: IER, LCR, MCR 0; LSR 0x60;
// IIR 0x01). The divisor latch has no defined reset value; 1 (115200 baud
// from the 1.8432 MHz clock) is what a loader would have left for a console.
export function reset(): void {
  ier = 0;
  lcr = 0;
  mcr = 0;
  scr = 0;
  dll = 1;
  dlm = 0;
  rbr = 0;
  dataReady = false;
  used = 0;
}

// The guest's console: printable ASCII is kept, '\r' dropped, '\n' ends the
// line, anything else prints as '?' (print.bytes does the replacement).
function transmit(b: u32): void {
  if (b == 0x0d) return;
  if (b == 0x0a) {
    emit();
    return;
  }
  if (used == LINE_MAX) emit();
  store<u8>(line + <usize>used, <u8>b);
  used++;
}

function emit(): void {
  print.levelPrefix();
  print.bytes(line, used);
  print.nl();
  used = 0;
}

// Print a partial line (the guest ended without its newline).
export function flush(): void {
  if (used > 0) emit();
}

// Bytes waiting for their newline (tests).
export function pending(): i32 {
  return used;
}

// One byte-wide register read at offset 0..7.
export function readReg(off: u32): u32 {
  const dlab = (lcr & LCR_DLAB) != 0;
  switch (off) {
    case 0: {
      if (dlab) return dll;
      if (!dataReady) return 0;
      dataReady = false;
      return rbr;
    }
    case 1:
      return dlab ? dlm : ier;
    case 2:
      return IIR_NONE;
    case 3:
      return lcr;
    case 4:
      return mcr;
    case 5:
      return LSR_THRE | LSR_TEMT | (dataReady ? LSR_DR : 0);
    case 6:
      return msr();
    default:
      return scr;
  }
}

// One byte-wide register write at offset 0..7.
export function writeReg(off: u32, v: u32): void {
  v &= 0xff;
  const dlab = (lcr & LCR_DLAB) != 0;
  switch (off) {
    case 0: {
      if (dlab) {
        dll = v;
      } else if ((mcr & MCR_LOOP) != 0) {
        rbr = v;
        dataReady = true;
      } else {
        transmit(v);
      }
      break;
    }
    case 1: {
      if (dlab) dlm = v;
      else ier = v & 0x0f;
      break;
    }
    case 3:
      lcr = v;
      break;
    case 4:
      mcr = v & 0x1f;
      break;
    case 7:
      scr = v;
      break;
    default:
      // FCR (2): FIFOs are not modelled (IIR keeps reporting 0x01);
      // LSR (5) and MSR (6) are read-only.
      break;
  }
}

function msr(): u32 {
  if ((mcr & MCR_LOOP) == 0) return MSR_DCD | MSR_DSR | MSR_CTS;
  // MCR bit 0 DTR, 1 RTS, 2 OUT1, 3 OUT2.
  let v: u32 = 0;
  if ((mcr & 0x02) != 0) v |= MSR_CTS;
  if ((mcr & 0x01) != 0) v |= MSR_DSR;
  if ((mcr & 0x04) != 0) v |= MSR_RI;
  if ((mcr & 0x08) != 0) v |= MSR_DCD;
  return v;
}
