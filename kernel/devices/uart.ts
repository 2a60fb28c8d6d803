// COM1 (ports 0x3F8-0x3FF): the subset of a 16550 UART a guest needs to
// print, with its interrupt. Transmitted bytes become console lines
// "L1| <text>"; nothing is ever received from outside.
//
//   off  DLAB=0 read   DLAB=0 write   DLAB=1 (both)   here
//   0    RBR           THR            DLL             RBR 0 (loopback: last byte), THR -> console line
//   1    IER           IER            DLM             IER bits 3:0 kept (7:4 read 0, as on a 16550)
//   2    IIR           FCR            IIR / FCR       IIR: the interrupt pending (below), bits 7:6 = 11 with
//                                                     the FIFOs enabled; FCR bit 0 (FIFO enable) kept, the
//                                                     reset bits act on FIFOs that are always empty
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
//
// Interrupts (datasheet, "Interrupt Identification Register"), highest
// priority first: receiver line status (never: no errors happen), received
// data available (IER bit 0, a byte in RBR; cleared by reading RBR),
// transmitter holding register empty (IER bit 1; raised when THR empties —
// at once, transmission is instantaneous — and when IER bit 1 is set while
// THR is empty; cleared by reading IIR while it reports it, or by writing
// THR), modem status (never: the delta bits stay 0). The chip's interrupt
// output reaches the PC's IRQ 4 through OUT2 (MCR bit 3) and not in
// loopback mode, where the datasheet disconnects the output pins: irqLine()
// is that wire, which ports.ts gives to I/O APIC input 4.
import * as print from "../lib/print";
import * as cpu from "../hw/cpu";

export const BASE: u32 = 0x3f8;

// One guest line: bytes between newlines, split when longer than LINE_MAX
// (print's own line holds 240 bytes; "L1| " + 200 + "\n" fits).
export const LINE_MAX: i32 = 200;

const LCR_DLAB: u32 = 0x80;
const MCR_LOOP: u32 = 0x10;
const LSR_DR: u32 = 0x01;
const LSR_THRE: u32 = 0x20;
const LSR_TEMT: u32 = 0x40;
const IIR_NONE: u32 = 0x01;
const IIR_THRE: u32 = 0x02;
const IIR_RDA: u32 = 0x04;
const IIR_FIFOS: u32 = 0xc0;
const IER_RDA: u32 = 0x01;
const IER_THRE: u32 = 0x02;
const FCR_ENABLE: u32 = 0x01;
const MCR_OUT2: u32 = 0x08;
const MSR_CTS: u32 = 0x10;
const MSR_DSR: u32 = 0x20;
const MSR_RI: u32 = 0x40;
const MSR_DCD: u32 = 0x80;

// One guest's COM1: its registers and the console line it is printing. The
// line's bytes follow the fields (BYTES in all).
@unmanaged export class Uart {
  ier: u32 = 0;
  lcr: u32 = 0;
  mcr: u32 = 0;
  scr: u32 = 0;
  dll: u32 = 0;
  dlm: u32 = 0;
  // Loopback receive holding register (only loopback ever fills it).
  rbr: u32 = 0;
  dataReady: bool = false;
  fcr: u32 = 0; // FIFO enable (bit 0)
  threPending: bool = false; // the THR-empty interrupt is pending
  irqHigh: bool = false; // the IRQ 4 wire as last given to the I/O APIC (ports.ts)
  used: i32 = 0; // bytes of the unfinished console line
  // The processor's TSC when the guest's first console line ended (0:
  // none yet), for the guest's report: how long a guest takes to say
  // anything (a Linux boot: issue 13's figures).
  firstLineTsc: u64 = 0;

  @inline private get line(): usize {
    return changetype<usize>(this) + offsetof<Uart>();
  }

  // The registers after a master reset (datasheet: IER, LCR, MCR 0; LSR
  // 0x60; IIR 0x01). The divisor latch has no defined reset value; 1
  // (115200 baud from the 1.8432 MHz clock) is what a loader would have
  // left for a console.
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.scr = 0;
    this.dll = 1;
    this.dlm = 0;
    this.rbr = 0;
    this.dataReady = false;
    this.fcr = 0;
    this.threPending = false;
    this.irqHigh = false;
    this.used = 0;
    this.firstLineTsc = 0;
  }

  // The guest's console: printable ASCII is kept, '\r' dropped, '\n' ends
  // the line, anything else prints as '?' (print.bytes does the
  // replacement).
  private transmit(b: u32): void {
    if (b == 0x0d) return;
    if (b == 0x0a) {
      this.emit();
      return;
    }
    if (this.used == LINE_MAX) this.emit();
    store<u8>(this.line + <usize>this.used, <u8>b);
    this.used++;
  }

  private emit(): void {
    if (this.firstLineTsc == 0) this.firstLineTsc = cpu.rdtsc();
    print.levelPrefix();
    print.bytes(this.line, this.used);
    print.nl();
    this.used = 0;
  }

  // Print a partial line (the guest ended without its newline).
  flush(): void {
    if (this.used > 0) this.emit();
  }

  // Bytes waiting for their newline (tests).
  pending(): i32 {
    return this.used;
  }

  // One byte-wide register read at offset 0..7.
  // DLAB is read only for the two offsets it switches (one load less on
  // the other registers' exits).
  @inline readReg(off: u32): u32 {
    switch (off) {
      case 0: {
        if (this.dlab()) return this.dll;
        if (!this.dataReady) return 0;
        this.dataReady = false;
        return this.rbr;
      }
      case 1:
        return this.dlab() ? this.dlm : this.ier;
      case 2:
        return this.readIir();
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        return LSR_THRE | LSR_TEMT | (this.dataReady ? LSR_DR : 0);
      case 6:
        return this.msr();
      default:
        return this.scr;
    }
  }

  // One byte-wide register write at offset 0..7.
  // Returns whether the write may have changed the interrupt pending or
  // its gate (THR, IER, MCR): then ports.ts updates the IRQ wire.
  @inline writeReg(off: u32, v: u32): bool {
    v &= 0xff;
    switch (off) {
      case 0: {
        if (this.dlab()) {
          this.dll = v;
        } else if ((this.mcr & MCR_LOOP) != 0) {
          this.rbr = v;
          this.dataReady = true;
          this.threPending = true;
        } else {
          this.transmit(v);
          this.threPending = true;
        }
        return true;
      }
      case 1: {
        if (this.dlab()) {
          this.dlm = v;
        } else {
          // Enabling the THR-empty interrupt with THR empty (it always is)
          // raises it.
          if ((v & ~this.ier & IER_THRE) != 0) this.threPending = true;
          this.ier = v & 0x0f;
        }
        return true;
      }
      case 2:
        this.fcr = v & FCR_ENABLE;
        break;
      case 3:
        this.lcr = v;
        break;
      case 4:
        this.mcr = v & 0x1f;
        return true;
      case 7:
        this.scr = v;
        break;
      default:
        // LSR (5) and MSR (6) are read-only.
        break;
    }
    return false;
  }

  // The interrupt IIR reports, highest priority first (top of the file).
  private pendingIir(): u32 {
    if (this.dataReady && (this.ier & IER_RDA) != 0) return IIR_RDA;
    if (this.threPending && (this.ier & IER_THRE) != 0) return IIR_THRE;
    return IIR_NONE;
  }

  private readIir(): u32 {
    const id = this.pendingIir();
    if (id == IIR_THRE) this.threPending = false;
    return id | ((this.fcr & FCR_ENABLE) != 0 ? IIR_FIFOS : 0);
  }

  // The IRQ wire: an interrupt pending, OUT2 set, not in loopback.
  irqLine(): bool {
    return (this.mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2 && this.pendingIir() != IIR_NONE;
  }

  @inline private dlab(): bool {
    return (this.lcr & LCR_DLAB) != 0;
  }

  private msr(): u32 {
    const mcr = this.mcr;
    if ((mcr & MCR_LOOP) == 0) return MSR_DCD | MSR_DSR | MSR_CTS;
    // MCR bit 0 DTR, 1 RTS, 2 OUT1, 3 OUT2.
    let v: u32 = 0;
    if ((mcr & 0x02) != 0) v |= MSR_CTS;
    if ((mcr & 0x01) != 0) v |= MSR_DSR;
    if ((mcr & 0x04) != 0) v |= MSR_RI;
    if ((mcr & 0x08) != 0) v |= MSR_DCD;
    return v;
  }
}

// Bytes of a Uart with its line buffer (the Vm's device area holds one).
export const BYTES: usize = offsetof<Uart>() + <usize>LINE_MAX;
