// A software local APIC for one vCPU, xAPIC mode (SDM Vol. 3A ch. 11,
// "Advanced Programmable Interrupt Controller"). The guest sees the
// registers in the 4 KiB page at IA32_APIC_BASE; the exit handlers pass
// register reads and writes here by offset and ask, before each VM entry,
// which fixed interrupt (if any) to inject. Nothing here touches the
// physical APIC: an IPI this APIC takes itself is handled here, one that
// may name other APICs is latched (ipiOut) for vm/ipi.ts, which delivers it
// to the guest's other vCPUs.
//
// Model (one P4-style integrated APIC, version 0x14, six LVT entries):
//   0x020 ID         bits 31:24, read/write (read-only since Nehalem; kept writable)
//   0x030 version    0x00050014: Max LVT Entry 5 (six entries), no EOI-broadcast suppression
//   0x080 TPR        bits 7:0
//   0x090 APR, 0x0C0 RRD   read 0 (absent on Pentium 4 and later; no ESR error, footnote of Table 11-1)
//   0x0A0 PPR        computed (11.8.3.1)
//   0x0B0 EOI        write: clears the highest ISR bit
//   0x0D0 LDR        bits 31:24     0x0E0 DFR  bits 31:28 (27:0 read as ones)
//   0x0F0 SVR        bits 9:0 (vector, software enable, focus checking); reset 0xFF
//   0x100/0x180/0x200 ISR/TMR/IRR, 8 words each, read-only
//   0x280 ESR        write latches the errors seen since the last write, read returns them
//   0x300/0x310 ICR  low write sends the IPI (delivery is immediate: status bit 12 reads 0)
//   0x320-0x370 LVT  timer, thermal, performance, LINT0, LINT1, error
//   0x380 initial count, 0x390 current count, 0x3E0 divide configuration (timer.ts)
// Offsets 0x2F0 (CMCI: not offered) and every other offset in the page are
// reserved: reads return 0, writes are ignored, and the access is an
// Illegal Register Address error (ESR bit 7). Registers are 32 bits at
// 16-byte-aligned offsets (11.4.1); an access not at such an offset is
// ignored (reads 0) — the SDM leaves it undefined. While the APIC is
// globally disabled (IA32_APIC_BASE[11] = 0) nothing decodes the page:
// reads return all ones and writes are dropped.
//
// TSC-deadline mode is not offered: CPUID.01H:ECX[24] is clear for the
// guest, so LVT timer bit 18 is reserved (not writable) and the mode is
// one-shot (00b) or periodic (01b).
//
// x2APIC mode (11.12; CPUID.01H:ECX[21] offered): IA32_APIC_BASE[10] EXTD
// switches the same registers to the MSRs 800H-8FFH (x2Read/x2Write, the
// "x2APIC mode" section below; vm/exit/msr.ts passes them here); the page
// then decodes nothing, as while globally disabled (11.12: "behave similar
// to ... a legacy xAPIC in globally disabled state"). The x2APIC ID is the
// initial APIC ID (the vCPU's number, CPUID.0BH:EDX), read-only; the LDR
// is derived from it (11.12.10.2); ICR is one 64-bit register with a
// 32-bit destination (11.12.9).
//
// Each vCPU has one (vcpu.apic: a Lapic laid inside the Vcpu object, so
// that reaching it costs no pointer load on the exit path); its registers,
// timer and IPI counters are fields of the object.
//
// With the processor's APIC virtualization (vm/apicv.ts, SDM Vol. 3C ch. 30)
// the guest reads the registers from a virtual-APIC page (`vapic`) and the
// processor itself changes the TPR (VTPR), IRR and ISR there (TPR
// virtualization, virtual-interrupt delivery, EOI virtualization). This
// object stays the model of everything else: each method that uses them
// (and ICR high, which the guest writes without an exit) first takes them from the page (pull) and, when done, writes the
// whole register image back (push), which marks the guest interrupt
// status (RVI/SVI) stale for vm/apicv.ts. The guest does not run between
// the two, so nothing the processor did is lost.
import * as v256 from "./vec256";
import * as mem from "../hw/mem";
import { ApicTimer, dcrShift } from "./timer";

export const BASE_ADDRESS: u64 = 0xfee00000;
const BASE_BSP: u64 = 1 << 8;
const BASE_EXTD: u64 = 1 << 10;
const BASE_EN: u64 = 1 << 11;

export const VERSION: u32 = 0x00050014;

export const REG_ID: u32 = 0x020;
export const REG_VERSION: u32 = 0x030;
export const REG_TPR: u32 = 0x080;
export const REG_APR: u32 = 0x090;
export const REG_PPR: u32 = 0x0a0;
export const REG_EOI: u32 = 0x0b0;
export const REG_RRD: u32 = 0x0c0;
export const REG_LDR: u32 = 0x0d0;
export const REG_DFR: u32 = 0x0e0;
export const REG_SVR: u32 = 0x0f0;
export const REG_ISR: u32 = 0x100;
export const REG_TMR: u32 = 0x180;
export const REG_IRR: u32 = 0x200;
export const REG_ESR: u32 = 0x280;
export const REG_ICR_LO: u32 = 0x300;
export const REG_ICR_HI: u32 = 0x310;
export const REG_LVT_TIMER: u32 = 0x320;
export const REG_LVT_THERMAL: u32 = 0x330;
export const REG_LVT_PERF: u32 = 0x340;
export const REG_LVT_LINT0: u32 = 0x350;
export const REG_LVT_LINT1: u32 = 0x360;
export const REG_LVT_ERROR: u32 = 0x370;
export const REG_TIMER_INITIAL: u32 = 0x380;
export const REG_TIMER_CURRENT: u32 = 0x390;
export const REG_TIMER_DCR: u32 = 0x3e0;
export const REG_SELF_IPI: u32 = 0x3f0; // x2APIC mode only (MSR 83FH)

// The x2APIC MSRs (11.12.1.2): 800H-8FFH, the register at offset (MSR -
// 800H) << 4.
export const X2APIC_FIRST: u32 = 0x800;
export const X2APIC_LAST: u32 = 0x8ff;

// Can the x2APIC MSR for page offset off be read through readReg (Table
// 11-6)? ID, LDR and ICR have their own x2APIC form (x2Read).
function x2Readable(off: u32): bool {
  if (off >= REG_ISR && off < REG_IRR + 0x80) return true;
  if (off >= REG_LVT_TIMER && off <= REG_TIMER_CURRENT) return true;
  return off == REG_VERSION || off == REG_TPR || off == REG_PPR || off == REG_SVR || off == REG_ESR || off == REG_TIMER_DCR;
}

export const SVR_ENABLE: u32 = 1 << 8;
export const LVT_MASK: u32 = 1 << 16;
export const LVT_TIMER_PERIODIC: u32 = 1 << 17;

// ESR bits (11.5.3) this model can raise.
export const ESR_SEND_ILLEGAL: u32 = 1 << 5;
export const ESR_RECV_ILLEGAL: u32 = 1 << 6;
export const ESR_ILLEGAL_REG: u32 = 1 << 7;

// Writable bits of each LVT entry (Figure 11-8); delivery status (12) and
// remote IRR (14) are read-only and always 0 here.
const LVT_COUNT: u32 = 6;
const lvtWritable: usize = memory.data<u32>([ // machine-wide: a constant table
  0x000300ff, // timer: vector, mask, mode bit 17 (bit 18, TSC-deadline, reserved)
  0x000107ff, // thermal: vector, delivery mode, mask
  0x000107ff, // performance counters: vector, delivery mode, mask
  0x0001a7ff, // LINT0: vector, delivery mode, polarity, trigger mode, mask
  0x0001a7ff, // LINT1
  0x000100ff, // error: vector, mask
]);
// The bits LVT entry i (0 timer ... 5 error) can hold: what a snapshot's
// LVT entries may have set (snapshot/validate-state.ts); 0 past the last.
export function lvtWritableMask(i: u32): u32 {
  return i < LVT_COUNT ? load<u32>(lvtWritable + (<usize>i << 2)) : 0;
}
// The register image moved between the object and a virtual-APIC page.
const image: usize = memory.data(0x400, 16); // machine-wide: scratch for pull/push

const MODE_FIXED: u32 = 0;
const MODE_LOWEST: u32 = 1;
const MODE_NMI: u32 = 4;

@unmanaged export class Lapic {
  // Globally and software enabled (IA32_APIC_BASE[11] and SVR[8]), kept
  // with the two: the test every VM entry makes (irq.deliver).
  on: bool = false;
  apicBase: u64 = 0;
  lastTsc: u64 = 0;
  initialId: u32 = 0;
  id: u32 = 0;
  tpr: u32 = 0;
  ldr: u32 = 0;
  dfr: u32 = 0;
  svr: u32 = 0;
  esr: u32 = 0;
  esrPending: u32 = 0;
  icrLo: u32 = 0;
  icrHi: u32 = 0;
  dcr: u32 = 0;
  // IPIs this APIC sent that it did not take itself (INIT, SIPI, SMI, and
  // anything addressed only to other processors, which vm/ipi.ts may
  // deliver), fixed IPIs it did not accept, and those from other vCPUs it
  // did not act on (vm/ipi.ts).
  ipisDropped: u32 = 0;
  // IPIs delivered to this vCPU: its own (self, broadcasts) and other
  // vCPUs' (vm/ipi.ts: fixed, NMI, INIT and SIPI acted on).
  ipisDelivered: u32 = 0;
  // A level-triggered interrupt's EOI to broadcast to the I/O APIC
  // (eoi()), or -1.
  levelEoi: i32 = -1;
  // An NMI IPI this APIC sent to itself, for the caller to raise on the
  // vCPU (takeNmi; vm/irq.ts raiseNmi).
  nmiSent: bool = false;
  // An IPI whose destination may name other APICs was sent: the caller
  // (vm/irq.ts apicWritten) hands it to vm/ipi.ts, which delivers it to the
  // guest's other vCPUs. Reading it clears it (takeIpiOut).
  ipiOut: bool = false;
  // The virtual-APIC page (host-physical) while APIC virtualization runs
  // this APIC, else 0; its owner (vm/apicv.ts) sets it.
  vapic: u64 = 0;
  // The IRR or ISR changed here since vm/apicv.ts last gave the processor
  // RVI and SVI (SDM Vol. 3C 30.1.1).
  statusStale: bool = false;
  // Neither enabled nor statusStale: nothing for vm/irq.ts to deliver or
  // give the processor (the one test of its fast path).
  idle: bool = true;
  // The value x2Read read.
  x2Value: u64 = 0;
  // The LVT entries (timer, thermal, performance, LINT0, LINT1, error) and
  // the 256-bit IRR, ISR and TMR (vec256.ts) are laid out in these fields.
  private lvt0: u64 = 0;
  private lvt1: u64 = 0;
  private lvt2: u64 = 0;
  private irr0: u64 = 0;
  private irr1: u64 = 0;
  private irr2: u64 = 0;
  private irr3: u64 = 0;
  private isr0: u64 = 0;
  private isr1: u64 = 0;
  private isr2: u64 = 0;
  private isr3: u64 = 0;
  private tmr0: u64 = 0;
  private tmr1: u64 = 0;
  private tmr2: u64 = 0;
  private tmr3: u64 = 0;
  // The timer (timer.ts) is laid out here.
  private timer0: u64 = 0;
  private timer1: u64 = 0;
  private timer2: u64 = 0;

  @inline private get lvt(): usize {
    return changetype<usize>(this) + offsetof<Lapic>("lvt0");
  }
  @inline private get irr(): usize {
    return changetype<usize>(this) + offsetof<Lapic>("irr0");
  }
  @inline private get isr(): usize {
    return changetype<usize>(this) + offsetof<Lapic>("isr0");
  }
  @inline private get tmr(): usize {
    return changetype<usize>(this) + offsetof<Lapic>("tmr0");
  }
  @inline get timer(): ApicTimer {
    return changetype<ApicTimer>(changetype<usize>(this) + offsetof<Lapic>("timer0"));
  }

  // Power-up / RESET state (11.4.7.1): IRR, ISR, TMR, ICR, LDR, TPR, timer
  // counts and DCR 0; DFR all ones; LVT entries masked; SVR 0xFF (software
  // disabled); APIC globally enabled in xAPIC mode at 0xFEE00000. APIC ID
  // 0 (vCPU 0) is the bootstrap processor (IA32_APIC_BASE[8], 9.4.1).
  reset(apicId: u32, tscNow: u64): void {
    this.initialId = apicId & 0xff;
    this.apicBase = BASE_ADDRESS | (this.initialId == 0 ? BASE_BSP : 0) | BASE_EN;
    this.powerUpState();
    this.push();
    this.lastTsc = tscNow;
    this.ipisDropped = 0;
    this.ipisDelivered = 0;
  }

  // INIT (11.4.7.3): the power-up state, except that the APIC ID (and
  // IA32_APIC_BASE) are kept.
  init(): void {
    const id = this.id;
    this.powerUpState();
    this.id = id;
    this.push();
  }

  // ---- the virtual-APIC page (see the top) -------------------------------
  // VTPR, vIRR, vISR and VICR_HI as the processor left them.
  @inline private pull(): void {
    if (this.vapic != 0) this.pullPage();
  }
  private pullPage(): void {
    mem.copyin(image, this.vapic, 0x400);
    this.tpr = load<u32>(image + REG_TPR) & 0xff;
    // VICR_HI is written without an exit (30.4.3.2): the destination of
    // the next IPI is there (in xAPIC mode; x2APIC's ICR is one MSR, whose
    // accesses all exit: the model's is the register).
    if (!this.x2apicMode()) this.icrHi = load<u32>(image + REG_ICR_HI) & 0xff000000;
    for (let i: u32 = 0; i < 8; i++) {
      const o = <usize>(i << 4);
      store<u32>(this.isr + (<usize>i << 2), load<u32>(image + REG_ISR + o));
      store<u32>(this.irr + (<usize>i << 2), load<u32>(image + REG_IRR + o));
    }
  }
  // The whole register image into the page (what the guest's virtualized
  // reads return, 30.4.1).
  @inline private push(): void {
    if (this.vapic != 0) this.pushPage();
  }
  private pushPage(): void {
    this.registerImage(image, this.lastTsc);
    mem.copyout(this.vapic, image, 0x400);
    this.statusStale = true;
    this.idle = false;
  }
  // Start or stop running on a virtual-APIC page (vm/apicv.ts): the page
  // gets the current registers.
  useVirtualApicPage(page: u64): void {
    this.vapic = page;
    this.push();
  }
  // RVI (bits 7:0, the highest vIRR vector) and SVI (15:8, the highest
  // vISR vector) for the guest interrupt status field (30.1.1); 0 for none.
  guestInterruptStatus(): u32 {
    this.statusStale = false;
    this.idle = !this.on;
    const r = v256.highest(this.irr);
    const s = v256.highest(this.isr);
    return (s < 0 ? 0 : <u32>s << 8) | (r < 0 ? 0 : <u32>r);
  }
  // Does the model's IRR hold a vector other than v? Between pulls the
  // processor only takes vectors out of vIRR (delivery; only L0 adds them,
  // without self-IPI virtualization or posted interrupts), so the model's
  // IRR holds at least what vIRR holds: false means vIRR holds none either
  // (vm/apicv.ts's guard).
  irrHasOtherThan(v: u32): bool {
    return v256.anyExcept(this.irr, v);
  }

  // An EOI-induced VM exit for `vector` (30.1.4: the processor has already
  // taken it out of vISR): a level-triggered one's EOI goes to the I/O APIC
  // (takeLevelEoi), as eoi() does.
  virtualEoi(vector: u32): void {
    this.pull();
    this.ended(vector & 0xff);
    this.push();
  }

  private powerUpState(): void {
    this.id = this.initialId << 24;
    this.levelEoi = -1;
    this.nmiSent = false;
    this.ipiOut = false;
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.esr = 0;
    this.esrPending = 0;
    this.icrLo = 0;
    this.icrHi = 0;
    this.dcr = 0;
    v256.clearAll(this.irr);
    v256.clearAll(this.isr);
    v256.clearAll(this.tmr);
    const lvt = this.lvt;
    for (let i: u32 = 0; i < LVT_COUNT; i++) store<u32>(lvt + (<usize>i << 2), LVT_MASK);
    this.timer.reset();
    this.update();
  }

  @inline private update(): void {
    this.on = this.globallyEnabled() && this.softwareEnabled();
    this.idle = !this.on && !this.statusStale;
  }

  // ---- IA32_APIC_BASE (MSR 0x1B, 11.4.4) --------------------------------
  apicBaseRead(): u64 {
    return this.apicBase;
  }

  // false: the write is #GP(0) and changes nothing. Accepted values are
  // 0xFEE00000 | EN (bit 11) | EXTD (bit 10) with any BSP bit (bit 8,
  // read-only here: vCPU 0 stays the BSP, the others APs). #GP for:
  // reserved bits (7:0, 9, above the base), a base other than 0xFEE00000
  // (relocation is not offered: the APIC page is mapped only there), and
  // the mode transitions 11.12.5 (Figure 11-27) forbids: EN=0 with EXTD=1
  // (the invalid state), disabled -> x2APIC (only through xAPIC), x2APIC
  // -> xAPIC (only through disabled). xAPIC -> x2APIC keeps every register
  // but the ID and LDR, which become the x2APIC ones (11.12.5.1; here both
  // are derived from initialId while EXTD is set). Clearing EN globally
  // disables the APIC, which returns to its power-up state (11.4.3: "may
  // return to the state described in 11.4.7.1"; here it always does);
  // setting it again re-enables it in that state, in xAPIC mode.
  apicBaseWrite(v: u64): bool {
    if ((v & ~(BASE_BSP | BASE_EN | BASE_EXTD)) != BASE_ADDRESS) return false;
    const enable = (v & BASE_EN) != 0;
    const extd = (v & BASE_EXTD) != 0;
    if (extd && !enable) return false; // EN=0, EXTD=1: invalid
    const wasEnabled = (this.apicBase & BASE_EN) != 0;
    if (extd && !wasEnabled) return false; // disabled -> x2APIC
    if (this.x2apicMode() && enable && !extd) return false; // x2APIC -> xAPIC
    // The page first: with virtual-interrupt delivery the processor moved
    // vectors between vIRR and vISR since the last pull, and the push below
    // writes the whole register image back (30.2.2, 30.1.3).
    this.pull();
    if (wasEnabled && !enable) this.powerUpState();
    this.apicBase = BASE_ADDRESS | (this.apicBase & BASE_BSP) | (enable ? BASE_EN : 0) | (extd ? BASE_EXTD : 0);
    this.update();
    this.push();
    return true;
  }

  @inline globallyEnabled(): bool {
    return (this.apicBase & BASE_EN) != 0;
  }

  @inline softwareEnabled(): bool {
    return (this.svr & SVR_ENABLE) != 0;
  }

  @inline enabled(): bool {
    return this.on;
  }

  // ---- priorities (11.8.3.1) ---------------------------------------------
  // PPR = TPR when TPR[7:4] >= ISRV[7:4], else ISRV[7:4]:0 (ISRV = highest
  // in-service vector, 0 when none).
  private ppr(): u32 {
    const h = v256.highest(this.isr);
    const isrv: u32 = h < 0 ? 0 : <u32>h;
    return (this.tpr & 0xf0) >= (isrv & 0xf0) ? this.tpr : isrv & 0xf0;
  }

  // ---- errors (11.5.3) ---------------------------------------------------
  // Errors collect in a hidden register until software writes the ESR; an
  // unmasked LVT error entry raises its interrupt for each error detected.
  private raiseError(bit: u32): void {
    this.esrPending |= bit;
    const e = load<u32>(this.lvt + 5 * 4);
    if ((e & LVT_MASK) != 0) return;
    const vector = e & 0xff;
    if (vector < 16) this.esrPending |= ESR_RECV_ILLEGAL;
    else this.accept(vector, false);
  }

  // An interrupt arriving at this APIC for the processor: IRR set, TMR set
  // for level-triggered. Vectors 0-15 are never accepted (11.5.3 bit 6).
  private accept(vector: u32, level: bool): void {
    if (vector < 16) {
      this.raiseError(ESR_RECV_ILLEGAL);
      return;
    }
    v256.set(this.irr, vector);
    if (level) v256.set(this.tmr, vector);
    else v256.clear(this.tmr, vector);
  }

  // ---- timer -------------------------------------------------------------
  // True when the timer raised its interrupt.
  private updateTimer(now: u64): bool {
    this.lastTsc = now;
    const t = load<u32>(this.lvt);
    if (!this.timer.expire(now, (t & LVT_TIMER_PERIODIC) != 0)) return false;
    // The count reached 0: the LVT timer entry says whether that interrupts
    // (a masked entry only inhibits the interrupt; the timer itself counts).
    if ((t & LVT_MASK) != 0) return false;
    this.accept(t & 0xff, false);
    return true;
  }

  // TSC at which the timer next raises an interrupt, or u64.MAX_VALUE (not
  // counting, or its LVT entry masked, or the APIC globally disabled).
  nextTimerDeadline(): u64 {
    if (!this.globallyEnabled()) return u64.MAX_VALUE;
    if ((load<u32>(this.lvt) & LVT_MASK) != 0) return u64.MAX_VALUE;
    return this.timer.nextDeadline();
  }

  // ---- interrupt delivery --------------------------------------------------
  // The highest-priority fixed interrupt the processor may take now: the
  // highest IRR vector, if its priority class is above PPR[7:4] (11.8.3.1),
  // else -1. A timer that is due fires first. While software-disabled the
  // APIC accepts no new fixed interrupts, but what IRR already holds is
  // still offered ("held and require masking or handling by the CPU",
  // 11.4.7.2).
  pendingVector(tscNow: u64): i32 {
    if (!this.globallyEnabled()) return -1;
    this.pull();
    if (this.updateTimer(tscNow)) this.push();
    const v = v256.highest(this.irr);
    if (v < 0) return -1;
    return (<u32>v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  // The processor takes the vector (it is being injected): IRR -> ISR
  // (11.8.4). A vector not pending in IRR changes nothing; in particular
  // the spurious vector (SVR[7:0]) never enters ISR and needs no EOI (11.9).
  acknowledge(vector: u32): void {
    vector &= 0xff;
    this.pull();
    if (!v256.test(this.irr, vector)) return;
    v256.clear(this.irr, vector);
    v256.set(this.isr, vector);
    this.push();
  }

  // The vector the local APIC answers an interrupt-acknowledge with when
  // the interrupt it was about to deliver has been masked meanwhile (11.9).
  spuriousVector(): u32 {
    return this.svr & 0xff;
  }

  // ---- register reads ------------------------------------------------------
  // Without tscNow, the most recent TSC passed to any method here is used:
  // pass the TSC of the access for the current-count register to be exact.
  // A register by its offset in the page, in either mode (the page's own
  // accesses are pageRead's; CR8 and the Hyper-V APIC MSRs reach the
  // registers in x2APIC mode too). Globally disabled, nothing answers:
  // all ones.
  read(offset: u32, tscNow: u64 = u64.MAX_VALUE): u32 {
    if (!this.globallyEnabled()) return 0xffffffff;
    if ((offset & 0xf) != 0 || offset >= 0x1000) return 0;
    this.pull();
    const v = this.readReg(offset, tscNow);
    this.push();
    return v;
  }

  // An access to the APIC page (vm/mmio.ts): in x2APIC mode the page
  // decodes nothing, as while globally disabled (11.12): reads all ones,
  // writes dropped.
  @inline pageRead(offset: u32, tscNow: u64): u32 {
    return this.x2apicMode() ? 0xffffffff : this.read(offset, tscNow);
  }
  @inline pageWrite(offset: u32, value: u32, tscNow: u64): void {
    if (!this.x2apicMode()) this.write(offset, value, tscNow);
  }

  // The register at (16-byte aligned) offset, for the page or an x2APIC MSR.
  // (With a virtual-APIC page: between the caller's pull and push.)
  private readReg(offset: u32, tscNow: u64): u32 {
    this.updateTimer(tscNow == u64.MAX_VALUE ? this.lastTsc : tscNow);
    if (offset >= REG_ISR && offset < REG_ISR + 0x80) return v256.word(this.isr, (offset - REG_ISR) >> 4);
    if (offset >= REG_TMR && offset < REG_TMR + 0x80) return v256.word(this.tmr, (offset - REG_TMR) >> 4);
    if (offset >= REG_IRR && offset < REG_IRR + 0x80) return v256.word(this.irr, (offset - REG_IRR) >> 4);
    if (offset >= REG_LVT_TIMER && offset <= REG_LVT_ERROR) return load<u32>(this.lvt + (<usize>((offset - REG_LVT_TIMER) >> 4) << 2));
    switch (offset) {
      case REG_ID:
        return this.id;
      case REG_VERSION:
        return VERSION;
      case REG_TPR:
        return this.tpr;
      case REG_APR:
      case REG_RRD:
      case REG_EOI:
        return 0;
      case REG_PPR:
        return this.ppr();
      case REG_LDR:
        return this.ldr;
      case REG_DFR:
        return this.dfr;
      case REG_SVR:
        return this.svr;
      case REG_ESR:
        return this.esr;
      case REG_ICR_LO:
        return this.icrLo;
      case REG_ICR_HI:
        return this.icrHi;
      case REG_TIMER_INITIAL:
        return this.timer.initialCount();
      case REG_TIMER_CURRENT:
        return this.timer.current(this.lastTsc);
      case REG_TIMER_DCR:
        return this.dcr;
      default:
        this.raiseError(ESR_ILLEGAL_REG);
        return 0;
    }
  }

  // ---- register writes -----------------------------------------------------
  write(offset: u32, value: u32, tscNow: u64): void {
    if (!this.globallyEnabled()) return;
    if ((offset & 0xf) != 0 || offset >= 0x1000) return;
    this.pull();
    this.writeReg(offset, value, tscNow);
    this.push();
  }

  private writeReg(offset: u32, value: u32, tscNow: u64): void {
    this.updateTimer(tscNow);
    if (offset >= REG_LVT_TIMER && offset <= REG_LVT_ERROR) {
      this.writeLvt((offset - REG_LVT_TIMER) >> 4, value);
      return;
    }
    // Read-only registers (version, PPR, ISR, TMR, IRR, current count, and
    // APR/RRD, absent here) ignore writes without an error.
    if (offset >= REG_ISR && offset < REG_IRR + 0x80) return;
    switch (offset) {
      case REG_ID:
        this.id = value & 0xff000000;
        break;
      case REG_TPR:
        this.tpr = value & 0xff;
        break;
      case REG_EOI:
        this.eoi();
        break;
      case REG_LDR:
        this.ldr = value & 0xff000000;
        break;
      case REG_DFR:
        this.dfr = (value & 0xf0000000) | 0x0fffffff;
        break;
      case REG_SVR:
        this.writeSvr(value);
        break;
      case REG_ESR:
        this.esr = this.esrPending;
        this.esrPending = 0;
        break;
      case REG_ICR_LO:
        this.icrLo = value & 0x000ccfff; // vector, mode, dest mode, level, trigger, shorthand
        this.sendIpi();
        break;
      case REG_ICR_HI:
        this.icrHi = value & 0xff000000;
        break;
      case REG_TIMER_INITIAL:
        this.timer.start(value, tscNow);
        break;
      case REG_TIMER_DCR:
        this.dcr = value & 0xb;
        this.timer.setDivide(this.dcr, tscNow);
        break;
      case REG_VERSION:
      case REG_APR:
      case REG_PPR:
      case REG_RRD:
      case REG_TIMER_CURRENT:
        break;
      default:
        this.raiseError(ESR_ILLEGAL_REG);
        break;
    }
  }

  private writeLvt(i: u32, value: u32): void {
    let v = value & load<u32>(lvtWritable + (<usize>i << 2));
    // Software-disabled: every mask bit stays set (11.4.7.2).
    if (!this.softwareEnabled()) v |= LVT_MASK;
    store<u32>(this.lvt + (<usize>i << 2), v);
  }

  private writeSvr(value: u32): void {
    const was = this.softwareEnabled();
    this.svr = value & 0x3ff;
    this.update();
    if (was && !this.softwareEnabled()) {
      for (let i: u32 = 0; i < LVT_COUNT; i++) {
        const p = this.lvt + (<usize>i << 2);
        store<u32>(p, load<u32>(p) | LVT_MASK);
      }
    }
  }

  // EOI (11.8.5): the highest in-service vector is done. For a
  // level-triggered one (TMR set) the APIC sends an EOI message to the I/O
  // APICs: its vector is left in levelEoi for the caller to broadcast
  // (takeLevelEoi). EOI-broadcast suppression (SVR bit 12) is not offered
  // (VERSION bit 24 is 0), so every such EOI is broadcast.
  private eoi(): void {
    const v = v256.highest(this.isr);
    if (v < 0) return;
    v256.clear(this.isr, <u32>v);
    this.ended(<u32>v);
  }

  // `vector` left ISR (eoi(), or the processor's EOI virtualization,
  // virtualEoi): a level-triggered one (TMR set) is the I/O APIC's to hear of.
  private ended(vector: u32): void {
    if (v256.test(this.tmr, vector)) this.levelEoi = <i32>vector;
    v256.clear(this.tmr, vector);
  }

  // A write of 0 to the EOI register by the processor itself (SDM Vol. 3C
  // 29.6, posted-interrupt processing dismisses the notification vector so).
  writeEoi(): void {
    this.pull();
    this.eoi();
    this.push();
  }

  // The vector of a level-triggered interrupt's EOI not yet broadcast, or
  // -1; reading it clears it.
  takeLevelEoi(): i32 {
    const v = this.levelEoi;
    this.levelEoi = -1;
    return v;
  }

  // ---- snapshots (kernel/snapshot/save.ts, restore.ts) -------------------
  // The registers 000H-3F0H at their offsets in the 1 KiB at `page`, 32 bits
  // each, the other 12 bytes of each 16 zero (docs/snapshot.md "APIC"), as
  // this object keeps them: none of read()'s side effects (no timer update,
  // no error for an absent register), also while globally disabled. PPR and
  // the current count are computed, for a reader; loadRegisters ignores them.
  saveRegisters(page: usize, tscNow: u64): void {
    this.pull();
    this.registerImage(page, tscNow);
  }

  private registerImage(page: usize, tscNow: u64): void {
    memory.fill(page, 0, 0x400);
    store<u32>(page + REG_ID, this.id);
    store<u32>(page + REG_VERSION, VERSION);
    store<u32>(page + REG_TPR, this.tpr);
    store<u32>(page + REG_PPR, this.ppr());
    store<u32>(page + REG_LDR, this.ldr);
    store<u32>(page + REG_DFR, this.dfr);
    store<u32>(page + REG_SVR, this.svr);
    for (let i: u32 = 0; i < 8; i++) {
      const o = <usize>(i << 4);
      store<u32>(page + REG_ISR + o, v256.word(this.isr, i));
      store<u32>(page + REG_TMR + o, v256.word(this.tmr, i));
      store<u32>(page + REG_IRR + o, v256.word(this.irr, i));
    }
    store<u32>(page + REG_ESR, this.esr);
    store<u32>(page + REG_ICR_LO, this.icrLo);
    store<u32>(page + REG_ICR_HI, this.icrHi);
    for (let i: u32 = 0; i < LVT_COUNT; i++) store<u32>(page + REG_LVT_TIMER + <usize>(i << 4), load<u32>(this.lvt + (<usize>i << 2)));
    store<u32>(page + REG_TIMER_INITIAL, this.timer.initialCount());
    store<u32>(page + REG_TIMER_CURRENT, this.timer.current(tscNow));
    store<u32>(page + REG_TIMER_DCR, this.dcr);
  }

  // Host TSC at which the timer's count reaches 0, u64.MAX_VALUE when it is
  // not counting (whatever the LVT mask: a masked timer counts too).
  timerDeadline(): u64 {
    return this.timer.nextDeadline();
  }

  // The vCPU's clock stood still for `ticks` of host TSC (snapshot=N,
  // snapshot/restore.ts): the timer counts on from where it was.
  pause(ticks: u64): void {
    const t = this.timer;
    if (t.armed) t.deadline += ticks;
    this.lastTsc += ticks;
  }

  // The inverse of saveRegisters on an object just reset() for the same
  // vCPU, from a page snapshot/validate-state.ts accepted: IA32_APIC_BASE,
  // the errors pending for the ESR, the registers, and the timer counting
  // to `deadline` (host TSC; u64.MAX_VALUE: not counting).
  loadRegisters(page: usize, apicBase: u64, esrPending: u32, deadline: u64, tscNow: u64): void {
    this.apicBase = apicBase;
    this.id = load<u32>(page + REG_ID);
    this.tpr = load<u32>(page + REG_TPR);
    this.ldr = load<u32>(page + REG_LDR);
    this.dfr = load<u32>(page + REG_DFR);
    this.svr = load<u32>(page + REG_SVR);
    for (let i: u32 = 0; i < 8; i++) {
      const o = <usize>(i << 4);
      store<u32>(this.isr + (<usize>i << 2), load<u32>(page + REG_ISR + o));
      store<u32>(this.tmr + (<usize>i << 2), load<u32>(page + REG_TMR + o));
      store<u32>(this.irr + (<usize>i << 2), load<u32>(page + REG_IRR + o));
    }
    this.esr = load<u32>(page + REG_ESR);
    this.esrPending = esrPending;
    this.icrLo = load<u32>(page + REG_ICR_LO);
    this.icrHi = load<u32>(page + REG_ICR_HI);
    for (let i: u32 = 0; i < LVT_COUNT; i++) store<u32>(this.lvt + (<usize>i << 2), load<u32>(page + REG_LVT_TIMER + <usize>(i << 4)));
    this.dcr = load<u32>(page + REG_TIMER_DCR);
    const t = this.timer;
    t.initial = load<u32>(page + REG_TIMER_INITIAL);
    t.shift = dcrShift(this.dcr);
    t.armed = deadline != u64.MAX_VALUE;
    t.deadline = t.armed ? deadline : 0;
    this.lastTsc = tscNow;
    this.update();
    this.push();
  }

  // ---- IPIs (11.6) -----------------------------------------------------------
  // Does the destination of the ICR include this APIC? Shorthand 01 self,
  // 10 all including self, 11 all excluding self; 00 uses the destination
  // field: physical (ID match or 0xFF broadcast) or logical (11.6.2.2: flat
  // model, DFR[31:28] = 1111b, any common LDR bit; cluster model, 0000b,
  // same cluster in bits 7:4 and a common bit in 3:0; 0xFF is everyone).
  @inline icrNamesSelf(): bool {
    return this.targetsSelf();
  }
  private targetsSelf(): bool {
    const shorthand = (this.icrLo >> 18) & 3;
    if (shorthand == 1 || shorthand == 2) return true;
    if (shorthand == 3) return false;
    return this.matchesIpi(this.icrDestination(), (this.icrLo & (1 << 11)) != 0, this.x2apicMode());
  }

  // The ICR's destination field: bits 63:56 in xAPIC mode, 63:32 in x2APIC
  // mode (11.6.1, 11.12.9).
  icrDestination(): u32 {
    return this.x2apicMode() ? this.icrHi : this.icrHi >> 24;
  }

  // Is this APIC among the destinations of an IPI whose destination is
  // dest, 32 bits when the sender is in x2APIC mode (wide), else 8 bits?
  // FFFFFFFFH (wide) and FFH are broadcasts. A wide destination that names
  // an APIC in xAPIC mode is compared in its low 8 bits (the SDM does not
  // define APICs of one system in different modes; 11.12.5 expects all to
  // switch).
  matchesIpi(dest: u32, logicalMode: bool, wide: bool): bool {
    if (!wide) return this.matchesDestination(dest, logicalMode);
    if (dest == 0xffffffff) return true;
    if (this.x2apicMode()) return this.matchesX2(dest, logicalMode);
    return dest < 0xff && this.matchesDestination(dest, logicalMode);
  }

  // Is this APIC among the destinations of an interrupt message with
  // destination dest (8 bits) in physical or logical mode (11.6.2; the I/O
  // APIC's messages use the same rules, 82093AA 3.2.4)?
  matchesDestination(dest: u32, logicalMode: bool): bool {
    if (dest == 0xff) return true;
    // An 8-bit destination (the I/O APIC's, an xAPIC sender's) reaching an
    // APIC in x2APIC mode: its x2APIC ID or logical ID zero-extended.
    if (this.x2apicMode()) return this.matchesX2(dest, logicalMode);
    if (!logicalMode) return dest == this.id >> 24;
    const logical = this.ldr >> 24;
    const model = this.dfr >> 28;
    if (model == 0xf) return (dest & logical) != 0;
    if (model == 0) return (dest >> 4) == (logical >> 4) && (dest & logical & 0xf) != 0;
    return false;
  }

  // A fixed or lowest-priority interrupt from the bus (an I/O APIC's
  // message): into IRR, and TMR for a level-triggered one, whose EOI this
  // APIC then broadcasts (eoi()). A software-disabled APIC accepts none
  // (11.4.7.2); false then, or for vectors 0-15 (an error, 11.5.3).
  acceptFromBus(vector: u32, level: bool): bool {
    if (!this.softwareEnabled()) return false;
    this.pull();
    if (vector < 16) {
      this.raiseError(ESR_RECV_ILLEGAL);
      this.push();
      return false;
    }
    this.accept(vector, level);
    this.push();
    return true;
  }

  // This APIC's own part of an IPI: a fixed (or lowest-priority: the
  // sender takes it when it is a target) interrupt or an NMI that names it
  // goes into its own IRR, or is the vCPU's NMI. INIT, start-up and SMI are
  // never acted on for the sender itself. The counters are this APIC's view:
  // `ipisDropped` counts what it did not take, also when vm/ipi.ts then
  // delivers it to another vCPU (whose `ipisDelivered` counts it). Nothing
  // reaches a physical CPU.
  private sendIpi(): void {
    const mode = (this.icrLo >> 8) & 7;
    const vector = this.icrLo & 0xff;
    // Any shorthand but self, or a destination field other than exactly
    // this APIC's physical ID, may name another APIC.
    const shorthand = (this.icrLo >> 18) & 3;
    if (shorthand != 1 && (shorthand != 0 || (this.icrLo & (1 << 11)) != 0 || this.icrDestination() != this.physicalId()))
      this.ipiOut = true;
    // An NMI addressed to this APIC (its vector is ignored, 11.6.1): the
    // vCPU's NMI, raised by the caller (takeNmi).
    if (mode == MODE_NMI && this.targetsSelf()) {
      this.nmiSent = true;
      this.ipisDelivered++;
      return;
    }
    if (mode != MODE_FIXED && mode != MODE_LOWEST) {
      this.ipisDropped++;
      return;
    }
    if (vector < 16) {
      this.raiseError(ESR_SEND_ILLEGAL);
      this.ipisDropped++;
      return;
    }
    if (!this.targetsSelf() || !this.softwareEnabled()) {
      this.ipisDropped++;
      return;
    }
    this.accept(vector, false);
    this.ipisDelivered++;
  }


  // ---- x2APIC mode (11.12) -------------------------------------------------
  @inline x2apicMode(): bool {
    return (this.apicBase & BASE_EXTD) != 0;
  }

  // The physical APIC ID a destination is compared with: the x2APIC ID in
  // x2APIC mode, ID[31:24] in xAPIC mode.
  private physicalId(): u32 {
    return this.x2apicMode() ? this.initialId : this.id >> 24;
  }

  // The x2APIC logical ID (11.12.10.2): cluster ID x2APIC ID[19:4] in bits
  // 31:16, and bit (x2APIC ID[3:0]) of the 16-bit logical ID in bits 15:0.
  x2Ldr(): u32 {
    return ((this.initialId >> 4) << 16) | (1 << (this.initialId & 0xf));
  }

  // A 32-bit destination in x2APIC mode (11.12.10): physical, the x2APIC
  // ID; logical (cluster model only, 11.12.10.2), the same cluster and a
  // common bit in 15:0. FFFFFFFFH is a broadcast in both.
  private matchesX2(dest: u32, logicalMode: bool): bool {
    if (dest == 0xffffffff) return true;
    if (!logicalMode) return dest == this.initialId;
    const ldr = this.x2Ldr();
    return (dest >> 16) == (ldr >> 16) && (dest & ldr & 0xffff) != 0;
  }

  // RDMSR of x2APIC MSR msr (800H-8FFH; the register at offset (msr -
  // 800H) << 4 of the page, Table 11-6). false: #GP(0) — not in x2APIC
  // mode, a reserved MSR (APR 809H, RRD 80CH, DFR 80EH, ICR high 831H, CMCI
  // 82FH: not offered, and every one Table 11-6 does not list), or a
  // write-only one (EOI 80BH, SELF IPI 83FH). The value is left in x2Value.
  x2Read(msr: u32, tscNow: u64): bool {
    if (!this.x2apicMode()) return false;
    this.pull();
    const ok = this.x2ReadReg(msr, tscNow);
    this.push();
    return ok;
  }
  private x2ReadReg(msr: u32, tscNow: u64): bool {
    const off = (msr - X2APIC_FIRST) << 4;
    let v: u64 = 0;
    if (off == REG_ID) v = this.initialId;
    else if (off == REG_LDR) v = this.x2Ldr();
    else if (off == REG_ICR_LO) v = (<u64>this.icrHi << 32) | this.icrLo;
    else if (x2Readable(off)) v = this.readReg(off, tscNow);
    else return false;
    this.x2Value = v;
    return true;
  }

  // WRMSR of x2APIC MSR msr with v. false: #GP(0) — not in x2APIC mode, a
  // reserved or read-only MSR (ID, version, LDR, PPR, ISR/TMR/IRR, current
  // count: Table 11-6), bits 63:32 set in any but the ICR, a nonzero EOI or
  // ESR write (11.12.1.2: "WRMSR of a non-zero value" to EOI is #GP), TPR
  // bits 31:8 or SVR bits 31:10 set (reserved; SVR bit 12, EOI-broadcast
  // suppression, is not offered). Other registers' reserved bits are
  // dropped as in xAPIC mode. The ICR's write sends the IPI with the
  // destination in bits 63:32 (11.12.9); SELF IPI 83FH sends a fixed,
  // edge-triggered IPI to this APIC with vector v[7:0] (11.12.11).
  x2Write(msr: u32, v: u64, tscNow: u64): bool {
    if (!this.x2apicMode()) return false;
    this.pull();
    const ok = this.x2WriteReg(msr, v, tscNow);
    this.push();
    return ok;
  }
  private x2WriteReg(msr: u32, v: u64, tscNow: u64): bool {
    const off = (msr - X2APIC_FIRST) << 4;
    const lo = <u32>v;
    if (off == REG_ICR_LO) {
      this.updateTimer(tscNow);
      this.icrHi = <u32>(v >> 32);
      this.icrLo = lo & 0x000ccfff;
      this.sendIpi();
      return true;
    }
    if ((v >> 32) != 0) return false;
    switch (off) {
      case REG_TPR:
        if ((lo & 0xffffff00) != 0) return false;
        break;
      case REG_SVR:
        if ((lo & 0xfffffc00) != 0) return false;
        break;
      case REG_EOI:
      case REG_ESR:
        if (lo != 0) return false;
        break;
      case REG_SELF_IPI:
        this.updateTimer(tscNow);
        this.icrLo = (1 << 18) | (lo & 0xff); // shorthand self, fixed, edge
        this.sendIpi();
        return true;
      case REG_TIMER_INITIAL:
      case REG_TIMER_DCR:
        break;
      default:
        if (off >= REG_LVT_TIMER && off <= REG_LVT_ERROR) break;
        return false;
    }
    this.writeReg(off, lo, tscNow);
    return true;
  }

  takeIpiOut(): bool {
    const s = this.ipiOut;
    this.ipiOut = false;
    return s;
  }

  // Did this APIC just send itself an NMI? Reading it clears it.
  takeNmi(): bool {
    const s = this.nmiSent;
    this.nmiSent = false;
    return s;
  }

}

// The timer's fields fit the space kept for them.
if (offsetof<ApicTimer>() > 24) unreachable();

// A local APIC of its own, outside any vCPU (the unit tests' hooks).
export function alloc(): Lapic {
  return changetype<Lapic>(heap.alloc(offsetof<Lapic>()));
}
