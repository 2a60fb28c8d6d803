// A guest's I/O APIC at guest-physical FEC00000H (issue 12 item 1): the
// register model of the Intel 82093AA I/O APIC datasheet with the version
// 20H register set of the ICH-class I/O APICs (an EOI register at 40H),
// 24 inputs.
//
//   offset  register   here
//   00H     IOREGSEL   bits 7:0 select the register IOWIN reaches
//   10H     IOWIN      the selected register (32 bits)
//   40H     EOI        write a vector: as an EOI message for it (see eoi())
//   other offsets, and accesses that are not 32 bits wide and aligned:
//   reads 0, writes dropped (the datasheet defines only 32-bit accesses)
//
//   index    register                here
//   00H      IOAPICID                bits 27:24 read/write, others 0
//   01H      IOAPICVER               00170020H: 24 entries (23 in 23:16), version 20H
//   02H      IOAPICARB               bits 27:24 = the ID (arbitration is not modelled)
//   10H+2n   redirection entry n,    bits 15 (trigger), 13 (polarity), 11:0 and 16 (mask)
//            low half                read/write; 12 (delivery status) and 14 (remote
//                                    IRR) read-only
//   11H+2n   high half               bits 31:24 (destination) read/write
//   any other index reads 0; writes to it are dropped.
//
// The inputs are wires driven by device models (setLine). Polarity says
// which level of the wire means "asserted" (bit 13 = 1: low), as on the
// chip, so an entry programmed with the wrong polarity sees its input
// asserted. An edge-triggered entry sends its interrupt when the input
// becomes asserted while the entry is unmasked (an edge while masked is
// lost, 82093AA 3.2.4). A level-triggered entry sends it while the input is
// asserted, the entry unmasked and remote IRR 0, and sets remote IRR; the
// local APIC's EOI for that vector (broadcast to the I/O APICs, SDM Vol. 3A
// 11.8.5) or a write to the EOI register clears remote IRR, and an input
// still asserted then sends the interrupt again.
//
// Sending an interrupt puts its message (vector, delivery mode, destination
// mode, trigger mode, destination) in a queue that the caller drains right
// after the call that produced it (takeMessage) and routes to the local
// APICs (this file knows no vCPU). One call produces at most one message per
// entry, so the queue's 24 slots never overflow.
export const BASE_ADDRESS: u64 = 0xfec00000;
export const ENTRIES: u32 = 24;
export const VERSION: u32 = 0x20 | ((ENTRIES - 1) << 16);

export const IOREGSEL: u32 = 0x00;
export const IOWIN: u32 = 0x10;
export const EOI: u32 = 0x40;

export const REG_ID: u32 = 0x00;
export const REG_VERSION: u32 = 0x01;
export const REG_ARBITRATION: u32 = 0x02;
export const REG_REDIRECTION: u32 = 0x10;

const ID_MASK: u32 = 0x0f000000;

// Redirection entry bits (82093AA 3.2.4).
export const RTE_VECTOR: u64 = 0xff;
export const RTE_DELIVERY_MODE_SHIFT: u32 = 8; // 3 bits: fixed 0, lowest priority 1, SMI 2, NMI 4, INIT 5, ExtINT 7
export const RTE_DEST_LOGICAL: u64 = 1 << 11;
export const RTE_DELIVERY_STATUS: u64 = 1 << 12;
export const RTE_POLARITY_LOW: u64 = 1 << 13;
export const RTE_REMOTE_IRR: u64 = 1 << 14;
export const RTE_LEVEL: u64 = 1 << 15;
export const RTE_MASKED: u64 = 1 << 16;
export const RTE_DEST_SHIFT: u32 = 56;
const RTE_WRITABLE: u64 = 0xfff | RTE_POLARITY_LOW | RTE_LEVEL | RTE_MASKED | (<u64>0xff << RTE_DEST_SHIFT);

export const MODE_FIXED: u32 = 0;
export const MODE_LOWEST_PRIORITY: u32 = 1;

const QUEUE: u32 = ENTRIES;
// What a message carries of its entry: vector, delivery mode, destination
// mode, trigger mode and destination.
const MESSAGE_BITS: u64 = 0xfff | RTE_LEVEL | (<u64>0xff << RTE_DEST_SHIFT);

@unmanaged export class Ioapic {
  id: u32 = 0; // IOAPICID as written (bits 27:24)
  regsel: u32 = 0; // IOREGSEL
  wires: u32 = 0; // bit n: input n's wire is high
  // Interrupts sent, and of those the ones no local APIC took (vm/intbus.ts)
  // (statistics, reported with the guest's exits).
  sent: u32 = 0;
  dropped: u32 = 0;
  queued: u32 = 0; // messages waiting in the queue
  // After the fields: ENTRIES redirection entries (u64 each), then the
  // queue of QUEUE messages (u64 each: the entry as sent).

  @inline private entryAt(n: u32): usize {
    return changetype<usize>(this) + offsetof<Ioapic>() + (<usize>n << 3);
  }
  @inline private queueAt(k: u32): usize {
    return changetype<usize>(this) + offsetof<Ioapic>() + (<usize>ENTRIES << 3) + (<usize>k << 3);
  }

  // After reset (82093AA 3.0): every entry masked, ID 0, nothing queued.
  // The wires keep their level: they belong to the devices.
  reset(): void {
    this.id = 0;
    this.regsel = 0;
    this.sent = 0;
    this.dropped = 0;
    this.queued = 0;
    for (let n: u32 = 0; n < ENTRIES; n++) store<u64>(this.entryAt(n), RTE_MASKED);
  }

  entry(n: u32): u64 {
    return n < ENTRIES ? load<u64>(this.entryAt(n)) : 0;
  }

  // ---- MMIO (offset within the 4-KiB page at BASE_ADDRESS) -----------------
  read(off: u32, size: u32): u32 {
    if (size != 4 || (off & 3) != 0) return 0;
    if (off == IOREGSEL) return this.regsel;
    if (off == IOWIN) return this.readRegister(this.regsel);
    return 0; // EOI is write-only; nothing else is decoded
  }

  write(off: u32, size: u32, v: u32): void {
    if (size != 4 || (off & 3) != 0) return;
    if (off == IOREGSEL) this.regsel = v & 0xff;
    else if (off == IOWIN) this.writeRegister(this.regsel, v);
    else if (off == EOI) this.eoi(v & 0xff);
  }

  readRegister(index: u32): u32 {
    if (index == REG_ID || index == REG_ARBITRATION) return this.id;
    if (index == REG_VERSION) return VERSION;
    if (index < REG_REDIRECTION || index >= REG_REDIRECTION + 2 * ENTRIES) return 0;
    const e = load<u64>(this.entryAt((index - REG_REDIRECTION) >> 1));
    return (index & 1) == 0 ? <u32>e : <u32>(e >> 32);
  }

  writeRegister(index: u32, v: u32): void {
    if (index == REG_ID) {
      this.id = v & ID_MASK;
      return;
    }
    if (index < REG_REDIRECTION || index >= REG_REDIRECTION + 2 * ENTRIES) return;
    const n = (index - REG_REDIRECTION) >> 1;
    const old = load<u64>(this.entryAt(n));
    const half: u64 = (index & 1) == 0 ? 0xffffffff : <u64>0xffffffff << 32;
    const shifted: u64 = (index & 1) == 0 ? <u64>v : <u64>v << 32;
    const e = (old & ~(RTE_WRITABLE & half)) | (shifted & RTE_WRITABLE & half);
    // An entry made edge-triggered has no remote IRR (82093AA: it is
    // undefined for edge-triggered interrupts; it reads 0 here).
    store<u64>(this.entryAt(n), (e & RTE_LEVEL) == 0 ? e & ~RTE_REMOTE_IRR : e);
    // Unmasking, a new polarity or a new trigger mode may find the input
    // asserted: a level-triggered entry then sends its interrupt. An edge
    // needs a change of the input, which a register write is not.
    this.serviceLevel(n);
  }

  // ---- inputs ---------------------------------------------------------------
  // A device sets the level of the wire at input n (0-23).
  setLine(n: u32, high: bool): void {
    if (n >= ENTRIES) return;
    const bit: u32 = 1 << n;
    const wasAsserted = this.asserted(n);
    this.wires = high ? this.wires | bit : this.wires & ~bit;
    const e = load<u64>(this.entryAt(n));
    if ((e & RTE_LEVEL) != 0) this.serviceLevel(n);
    else if (!wasAsserted && this.asserted(n) && (e & RTE_MASKED) == 0) this.send(n);
  }

  asserted(n: u32): bool {
    const high = (this.wires >> n & 1) != 0;
    const activeLow = (load<u64>(this.entryAt(n)) & RTE_POLARITY_LOW) != 0;
    return high != activeLow;
  }

  // An EOI for vector (the local APICs' broadcast of a level-triggered
  // interrupt's EOI, or the EOI register): remote IRR of every
  // level-triggered entry with that vector clears; an input still asserted
  // sends its interrupt again.
  eoi(vector: u32): void {
    for (let n: u32 = 0; n < ENTRIES; n++) {
      const p = this.entryAt(n);
      const e = load<u64>(p);
      if ((e & RTE_REMOTE_IRR) == 0 || <u32>(e & RTE_VECTOR) != vector) continue;
      store<u64>(p, e & ~RTE_REMOTE_IRR);
      this.serviceLevel(n);
    }
  }

  private serviceLevel(n: u32): void {
    const e = load<u64>(this.entryAt(n));
    if ((e & (RTE_LEVEL | RTE_MASKED | RTE_REMOTE_IRR)) != RTE_LEVEL || !this.asserted(n)) return;
    // Remote IRR is set when the local APIC accepts the interrupt; the
    // message is accepted as soon as it is routed, so it is set here. Only
    // fixed and lowest-priority interrupts have an EOI to wait for.
    const mode = <u32>(e >> RTE_DELIVERY_MODE_SHIFT) & 7;
    if (mode == MODE_FIXED || mode == MODE_LOWEST_PRIORITY) store<u64>(this.entryAt(n), e | RTE_REMOTE_IRR);
    this.send(n);
  }

  private send(n: u32): void {
    if (this.queued >= QUEUE) unreachable(); // one message per entry per call (top of file)
    store<u64>(this.queueAt(this.queued), load<u64>(this.entryAt(n)) & MESSAGE_BITS);
    this.queued++;
    this.sent++;
  }

  // The oldest message not yet routed (callers test `queued` first: 0 is a
  // message too, vector 0 fixed to APIC 0).
  takeMessage(): u64 {
    if (this.queued == 0) return 0;
    const m = load<u64>(this.queueAt(0));
    for (let k: u32 = 1; k < this.queued; k++) store<u64>(this.queueAt(k - 1), load<u64>(this.queueAt(k)));
    this.queued--;
    return m;
  }
}

export const BYTES: usize = offsetof<Ioapic>() + (<usize>ENTRIES << 3) + (<usize>QUEUE << 3);
