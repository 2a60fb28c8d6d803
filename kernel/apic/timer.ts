// The local APIC timer's counter (SDM Vol. 3A 11.5.4), kept as a deadline in
// TSC ticks rather than as a decrementing register: nothing runs while the
// guest does, so the current count is computed from the TSC when read.
//
// Rate: the timer's input clock is the TSC: one tick of the count-down
// clock before the divider is one TSC tick, and the divide configuration
// register divides that by 1..128. (Hardware clocks the APIC timer from the
// bus or core crystal clock; a guest here has no PIT or HPET to calibrate it
// against, only the TSC, so a fixed 1:1 relation is the one it can measure.
// On Bochs the TSC counts instructions, which makes timer runs repeatable.)
//
// With a divisor of 2^s and initial count N written at TSC t0, the count
// reaches 0 at t0 + (N << s): the deadline. Before it, the current count is
// ceil((deadline - t) / 2^s), which is N at t0 and falls by one every 2^s
// ticks. One-shot: the timer stops at 0. Periodic: the count reloads from N
// and the next deadline is one period (N << s) later; periods that passed
// unobserved coalesce into one interrupt, as further edges of an interrupt
// already pending in IRR would.

let initial: u32 = 0;
let shift: u32 = 1; // divide configuration 000b: divide by 2
let armed: bool = false;
let deadline: u64 = 0;

export function reset(): void {
  initial = 0;
  shift = 1;
  armed = false;
  deadline = 0;
}

export function initialCount(): u32 {
  return initial;
}

// Divide configuration register (offset 0x3E0) bits 0, 1 and 3 -> log2 of
// the divisor: 000b /2, 001b /4, 010b /8, 011b /16, 100b /32, 101b /64,
// 110b /128, 111b /1 (SDM Figure 11-10).
export function dcrShift(dcr: u32): u32 {
  const v = ((dcr >> 1) & 4) | (dcr & 3);
  return (v + 1) & 7;
}

// Writing the initial count (re)starts the count-down; 0 stops the timer.
export function start(count: u32, now: u64): void {
  initial = count;
  armed = count != 0;
  deadline = now + (<u64>count << shift);
}

// A new divisor takes effect from now: the current count is kept and
// counts down at the new rate (the SDM leaves a mid-count change
// unspecified; this is the continuous choice).
export function setDivide(dcr: u32, now: u64): void {
  const s = dcrShift(dcr);
  if (armed && now < deadline) {
    const cur = current(now);
    deadline = now + (<u64>cur << s);
  }
  shift = s;
}

export function current(now: u64): u32 {
  if (!armed) return 0;
  if (now >= deadline) return 0;
  const left = deadline - now;
  return <u32>((left + ((<u64>1 << shift) - 1)) >> shift);
}

// Has the count reached 0 by now? If so, consume the expiry: a periodic
// timer moves on to its next deadline after now, a one-shot timer stops.
export function expire(now: u64, periodic: bool): bool {
  if (!armed || now < deadline) return false;
  if (periodic) {
    const period = <u64>initial << shift;
    const missed = (now - deadline) / period + 1;
    deadline += missed * period;
  } else {
    armed = false;
  }
  return true;
}

// TSC of the next expiry, or u64.MAX_VALUE when not counting.
export function nextDeadline(): u64 {
  return armed ? deadline : u64.MAX_VALUE;
}
