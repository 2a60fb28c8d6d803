// A software local APIC for one vCPU, xAPIC mode (SDM Vol. 3A ch. 11,
// "Advanced Programmable Interrupt Controller"). The guest sees the
// registers in the 4 KiB page at IA32_APIC_BASE; the exit handlers pass
// register reads and writes here by offset and ask, before each VM entry,
// which fixed interrupt (if any) to inject. Nothing here touches the
// physical APIC: IPIs to anything but this vCPU go nowhere and are counted.
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
// one-shot (00b) or periodic (01b). No x2APIC either (CPUID hides it):
// setting IA32_APIC_BASE[10] is #GP.
import * as v256 from "./vec256";
import * as timer from "./timer";

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
const lvtWritable: usize = memory.data<u32>([
  0x000300ff, // timer: vector, mask, mode bit 17 (bit 18, TSC-deadline, reserved)
  0x000107ff, // thermal: vector, delivery mode, mask
  0x000107ff, // performance counters: vector, delivery mode, mask
  0x0001a7ff, // LINT0: vector, delivery mode, polarity, trigger mode, mask
  0x0001a7ff, // LINT1
  0x000100ff, // error: vector, mask
]);
const lvt: usize = memory.data(LVT_COUNT * 4);
// The bits LVT entry i (0 timer ... 5 error) can hold: what a snapshot's
// LVT entries may have set (snapshot/validate-state.ts); 0 past the last.
export function lvtWritableMask(i: u32): u32 {
  return i < LVT_COUNT ? load<u32>(lvtWritable + (<usize>i << 2)) : 0;
}

// memory.data reserves its bytes once per call site: one each.
const irr: usize = memory.data(32);
const isr: usize = memory.data(32);
const tmr: usize = memory.data(32);

let apicBase: u64 = BASE_ADDRESS | BASE_BSP | BASE_EN;
let initialId: u32 = 0;
let id: u32 = 0;
let tpr: u32 = 0;
let ldr: u32 = 0;
let dfr: u32 = 0xffffffff;
let svr: u32 = 0xff;
let esr: u32 = 0;
let esrPending: u32 = 0;
let icrLo: u32 = 0;
let icrHi: u32 = 0;
let dcr: u32 = 0;
let lastTsc: u64 = 0;

// IPIs that reached no one: INIT, SIPI, NMI, SMI, anything addressed only to
// other processors, and fixed IPIs this APIC did not accept.
export let ipisDropped: u32 = 0;
// Fixed IPIs delivered to this vCPU (self-IPIs and broadcasts).
export let ipisDelivered: u32 = 0;

// Power-up / RESET state (11.4.7.1): IRR, ISR, TMR, ICR, LDR, TPR, timer
// counts and DCR 0; DFR all ones; LVT entries masked; SVR 0xFF (software
// disabled); APIC globally enabled in xAPIC mode at 0xFEE00000. The one
// vCPU is the bootstrap processor.
export function reset(apicId: u32, tscNow: u64): void {
  initialId = apicId & 0xff;
  apicBase = BASE_ADDRESS | BASE_BSP | BASE_EN;
  powerUpState();
  lastTsc = tscNow;
  ipisDropped = 0;
  ipisDelivered = 0;
}

function powerUpState(): void {
  id = initialId << 24;
  tpr = 0;
  ldr = 0;
  dfr = 0xffffffff;
  svr = 0xff;
  esr = 0;
  esrPending = 0;
  icrLo = 0;
  icrHi = 0;
  dcr = 0;
  v256.clearAll(irr);
  v256.clearAll(isr);
  v256.clearAll(tmr);
  for (let i: u32 = 0; i < LVT_COUNT; i++) store<u32>(lvt + (<usize>i << 2), LVT_MASK);
  timer.reset();
}

// ---- IA32_APIC_BASE (MSR 0x1B, 11.4.4) ----------------------------------
export function apicBaseRead(): u64 {
  return apicBase;
}

// false: the write is #GP(0) and changes nothing. Accepted values are
// 0xFEE00000 | EN (bit 11) with any BSP bit (bit 8, read-only here: the
// vCPU stays the BSP). #GP for: reserved bits (7:0, 9, above the base),
// EXTD (bit 10: x2APIC is not offered, so both x2APIC transitions of
// 11.12.5 and the invalid EN=0/EXTD=1 state are out of reach), and a base
// other than 0xFEE00000 (relocation is not offered: the APIC page is mapped
// only there). Clearing EN globally disables the APIC, which returns to its
// power-up state (11.4.3: "may return to the state described in 11.4.7.1";
// here it always does); setting it again re-enables it in that state.
export function apicBaseWrite(v: u64): bool {
  if ((v & BASE_EXTD) != 0) return false; // x2APIC mode is not offered
  if ((v & ~(BASE_BSP | BASE_EN)) != BASE_ADDRESS) return false;
  const wasEnabled = (apicBase & BASE_EN) != 0;
  const enable = (v & BASE_EN) != 0;
  if (wasEnabled && !enable) powerUpState();
  apicBase = BASE_ADDRESS | BASE_BSP | (enable ? BASE_EN : 0);
  return true;
}

export function globallyEnabled(): bool {
  return (apicBase & BASE_EN) != 0;
}

function softwareEnabled(): bool {
  return (svr & SVR_ENABLE) != 0;
}

export function enabled(): bool {
  return globallyEnabled() && softwareEnabled();
}

// ---- priorities (11.8.3.1) -----------------------------------------------
// PPR = TPR when TPR[7:4] >= ISRV[7:4], else ISRV[7:4]:0 (ISRV = highest
// in-service vector, 0 when none).
function ppr(): u32 {
  const h = v256.highest(isr);
  const isrv: u32 = h < 0 ? 0 : <u32>h;
  return (tpr & 0xf0) >= (isrv & 0xf0) ? tpr : isrv & 0xf0;
}

// ---- errors (11.5.3) -----------------------------------------------------
// Errors collect in a hidden register until software writes the ESR; an
// unmasked LVT error entry raises its interrupt for each error detected.
function raiseError(bit: u32): void {
  esrPending |= bit;
  const e = load<u32>(lvt + 5 * 4);
  if ((e & LVT_MASK) != 0) return;
  const vector = e & 0xff;
  if (vector < 16) esrPending |= ESR_RECV_ILLEGAL;
  else accept(vector, false);
}

// An interrupt arriving at this APIC for the processor: IRR set, TMR set for
// level-triggered. Vectors 0-15 are never accepted (11.5.3 bit 6).
function accept(vector: u32, level: bool): void {
  if (vector < 16) {
    raiseError(ESR_RECV_ILLEGAL);
    return;
  }
  v256.set(irr, vector);
  if (level) v256.set(tmr, vector);
  else v256.clear(tmr, vector);
}

// ---- timer ---------------------------------------------------------------
function updateTimer(now: u64): void {
  lastTsc = now;
  const t = load<u32>(lvt);
  if (!timer.expire(now, (t & LVT_TIMER_PERIODIC) != 0)) return;
  // The count reached 0: the LVT timer entry says whether that interrupts
  // (a masked entry only inhibits the interrupt; the timer itself counts).
  if ((t & LVT_MASK) == 0) accept(t & 0xff, false);
}

// TSC at which the timer next raises an interrupt, or u64.MAX_VALUE (not
// counting, or its LVT entry masked, or the APIC globally disabled).
export function nextTimerDeadline(): u64 {
  if (!globallyEnabled()) return u64.MAX_VALUE;
  if ((load<u32>(lvt) & LVT_MASK) != 0) return u64.MAX_VALUE;
  return timer.nextDeadline();
}

// ---- interrupt delivery ----------------------------------------------------
// The highest-priority fixed interrupt the processor may take now: the
// highest IRR vector, if its priority class is above PPR[7:4] (11.8.3.1),
// else -1. A timer that is due fires first. While software-disabled the
// APIC accepts no new fixed interrupts, but what IRR already holds is still
// offered ("held and require masking or handling by the CPU", 11.4.7.2).
export function pendingVector(tscNow: u64): i32 {
  if (!globallyEnabled()) return -1;
  updateTimer(tscNow);
  const v = v256.highest(irr);
  if (v < 0) return -1;
  return (<u32>v & 0xf0) > (ppr() & 0xf0) ? v : -1;
}

// The processor takes the vector (it is being injected): IRR -> ISR
// (11.8.4). A vector not pending in IRR changes nothing; in particular the
// spurious vector (SVR[7:0]) never enters ISR and needs no EOI (11.9).
export function acknowledge(vector: u32): void {
  vector &= 0xff;
  if (!v256.test(irr, vector)) return;
  v256.clear(irr, vector);
  v256.set(isr, vector);
}

// The vector the local APIC answers an interrupt-acknowledge with when the
// interrupt it was about to deliver has been masked meanwhile (11.9).
export function spuriousVector(): u32 {
  return svr & 0xff;
}

// ---- register reads --------------------------------------------------------
// Without tscNow, the most recent TSC passed to any function here is used:
// pass the TSC of the access for the current-count register to be exact.
export function read(offset: u32, tscNow: u64 = u64.MAX_VALUE): u32 {
  if (!globallyEnabled()) return 0xffffffff; // nothing decodes the page
  if ((offset & 0xf) != 0 || offset >= 0x1000) return 0;
  updateTimer(tscNow == u64.MAX_VALUE ? lastTsc : tscNow);
  if (offset >= REG_ISR && offset < REG_ISR + 0x80) return v256.word(isr, (offset - REG_ISR) >> 4);
  if (offset >= REG_TMR && offset < REG_TMR + 0x80) return v256.word(tmr, (offset - REG_TMR) >> 4);
  if (offset >= REG_IRR && offset < REG_IRR + 0x80) return v256.word(irr, (offset - REG_IRR) >> 4);
  if (offset >= REG_LVT_TIMER && offset <= REG_LVT_ERROR) return load<u32>(lvt + (<usize>((offset - REG_LVT_TIMER) >> 4) << 2));
  switch (offset) {
    case REG_ID:
      return id;
    case REG_VERSION:
      return VERSION;
    case REG_TPR:
      return tpr;
    case REG_APR:
    case REG_RRD:
    case REG_EOI:
      return 0;
    case REG_PPR:
      return ppr();
    case REG_LDR:
      return ldr;
    case REG_DFR:
      return dfr;
    case REG_SVR:
      return svr;
    case REG_ESR:
      return esr;
    case REG_ICR_LO:
      return icrLo;
    case REG_ICR_HI:
      return icrHi;
    case REG_TIMER_INITIAL:
      return timer.initialCount();
    case REG_TIMER_CURRENT:
      return timer.current(lastTsc);
    case REG_TIMER_DCR:
      return dcr;
    default:
      raiseError(ESR_ILLEGAL_REG);
      return 0;
  }
}

// ---- register writes -------------------------------------------------------
export function write(offset: u32, value: u32, tscNow: u64): void {
  if (!globallyEnabled()) return;
  if ((offset & 0xf) != 0 || offset >= 0x1000) return;
  updateTimer(tscNow);
  if (offset >= REG_LVT_TIMER && offset <= REG_LVT_ERROR) {
    writeLvt((offset - REG_LVT_TIMER) >> 4, value);
    return;
  }
  // Read-only registers (version, PPR, ISR, TMR, IRR, current count, and
  // APR/RRD, absent here) ignore writes without an error.
  if (offset >= REG_ISR && offset < REG_IRR + 0x80) return;
  switch (offset) {
    case REG_ID:
      id = value & 0xff000000;
      break;
    case REG_TPR:
      tpr = value & 0xff;
      break;
    case REG_EOI:
      eoi();
      break;
    case REG_LDR:
      ldr = value & 0xff000000;
      break;
    case REG_DFR:
      dfr = (value & 0xf0000000) | 0x0fffffff;
      break;
    case REG_SVR:
      writeSvr(value);
      break;
    case REG_ESR:
      esr = esrPending;
      esrPending = 0;
      break;
    case REG_ICR_LO:
      icrLo = value & 0x000ccfff; // vector, mode, dest mode, level, trigger, shorthand
      sendIpi();
      break;
    case REG_ICR_HI:
      icrHi = value & 0xff000000;
      break;
    case REG_TIMER_INITIAL:
      timer.start(value, tscNow);
      break;
    case REG_TIMER_DCR:
      dcr = value & 0xb;
      timer.setDivide(dcr, tscNow);
      break;
    case REG_VERSION:
    case REG_APR:
    case REG_PPR:
    case REG_RRD:
    case REG_TIMER_CURRENT:
      break;
    default:
      raiseError(ESR_ILLEGAL_REG);
      break;
  }
}

function writeLvt(i: u32, value: u32): void {
  let v = value & load<u32>(lvtWritable + (<usize>i << 2));
  // Software-disabled: every mask bit stays set (11.4.7.2).
  if (!softwareEnabled()) v |= LVT_MASK;
  store<u32>(lvt + (<usize>i << 2), v);
}

function writeSvr(value: u32): void {
  const was = softwareEnabled();
  svr = value & 0x3ff;
  if (was && !softwareEnabled()) {
    for (let i: u32 = 0; i < LVT_COUNT; i++) {
      const p = lvt + (<usize>i << 2);
      store<u32>(p, load<u32>(p) | LVT_MASK);
    }
  }
}

// EOI (11.8.5): the highest in-service vector is done. A level-triggered one
// would also send an EOI message to the I/O APICs; there are none.
function eoi(): void {
  const v = v256.highest(isr);
  if (v < 0) return;
  v256.clear(isr, <u32>v);
  v256.clear(tmr, <u32>v);
}

// ---- IPIs (11.6) -------------------------------------------------------------
const MODE_FIXED: u32 = 0;
const MODE_LOWEST: u32 = 1;

// Does the destination of the ICR include this APIC? Shorthand 01 self,
// 10 all including self, 11 all excluding self; 00 uses the destination
// field: physical (ID match or 0xFF broadcast) or logical (11.6.2.2: flat
// model, DFR[31:28] = 1111b, any common LDR bit; cluster model, 0000b,
// same cluster in bits 7:4 and a common bit in 3:0; 0xFF is everyone).
function targetsSelf(): bool {
  const shorthand = (icrLo >> 18) & 3;
  if (shorthand == 1 || shorthand == 2) return true;
  if (shorthand == 3) return false;
  const dest = icrHi >> 24;
  if (dest == 0xff) return true;
  if ((icrLo & (1 << 11)) == 0) return dest == id >> 24;
  const logical = ldr >> 24;
  const model = dfr >> 28;
  if (model == 0xf) return (dest & logical) != 0;
  if (model == 0) return (dest >> 4) == (logical >> 4) && (dest & logical & 0xf) != 0;
  return false;
}

// With one vCPU only fixed (and lowest-priority, whose only candidate is this
// vCPU) interrupts addressed to this APIC go anywhere: into its own IRR. The
// other processors a destination may name do not exist; INIT, start-up,
// NMI and SMI are never acted on. Nothing reaches a physical CPU.
function sendIpi(): void {
  const mode = (icrLo >> 8) & 7;
  const vector = icrLo & 0xff;
  if (mode != MODE_FIXED && mode != MODE_LOWEST) {
    ipisDropped++;
    return;
  }
  if (vector < 16) {
    raiseError(ESR_SEND_ILLEGAL);
    ipisDropped++;
    return;
  }
  if (!targetsSelf() || !softwareEnabled()) {
    ipisDropped++;
    return;
  }
  accept(vector, false);
  ipisDelivered++;
}
