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

@unmanaged export class ApicTimer {
  initial: u32 = 0;
  shift: u32 = 1; // divide configuration 000b: divide by 2
  armed: bool = false;
  deadline: u64 = 0;

  reset(): void {
    this.initial = 0;
    this.shift = 1;
    this.armed = false;
    this.deadline = 0;
  }

  initialCount(): u32 {
    return this.initial;
  }

  // Writing the initial count (re)starts the count-down; 0 stops the timer.
  start(count: u32, now: u64): void {
    this.initial = count;
    this.armed = count != 0;
    this.deadline = now + (<u64>count << this.shift);
  }

  // A new divisor takes effect from now: the current count is kept and
  // counts down at the new rate (the SDM leaves a mid-count change
  // unspecified; this is the continuous choice).
  setDivide(dcr: u32, now: u64): void {
    const s = dcrShift(dcr);
    if (this.armed && now < this.deadline) {
      const cur = this.current(now);
      this.deadline = now + (<u64>cur << s);
    }
    this.shift = s;
  }

  current(now: u64): u32 {
    if (!this.armed) return 0;
    if (now >= this.deadline) return 0;
    const left = this.deadline - now;
    return <u32>((left + ((<u64>1 << this.shift) - 1)) >> this.shift);
  }

  // Has the count reached 0 by now? If so, consume the expiry: a periodic
  // timer moves on to its next deadline after now, a one-shot timer stops.
  expire(now: u64, periodic: bool): bool {
    if (!this.armed || now < this.deadline) return false;
    if (periodic) {
      const period = <u64>this.initial << this.shift;
      const missed = (now - this.deadline) / period + 1;
      this.deadline += missed * period;
    } else {
      this.armed = false;
    }
    return true;
  }

  // TSC of the next expiry, or u64.MAX_VALUE when not counting.
  @inline nextDeadline(): u64 {
    return this.armed ? this.deadline : u64.MAX_VALUE;
  }
}

// Divide configuration register (offset 0x3E0) bits 0, 1 and 3 -> log2 of
// the divisor: 000b /2, 001b /4, 010b /8, 011b /16, 100b /32, 101b /64,
// 110b /128, 111b /1 (SDM Figure 11-10).
export function dcrShift(dcr: u32): u32 {
  const v = ((dcr >> 1) & 4) | (dcr & 3);
  return (v + 1) & 7;
}
