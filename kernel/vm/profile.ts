// Where the ticks of a CPUID round trip go, in the profiling build (make
// bench): the entry/exit stub and its C wrapper record RDTSC at their edges
// (hw.vmx.profile). For each CPUID exit this keeps the smallest
//   assembly stub   (stub start -> VM entry) + (VM exit -> stub return)
//   C               (C entry -> stub start) + (stub return -> C return)
//   AssemblyScript  (previous C return -> this C entry): the kernel's exit
//                   handling, compiled through wasm2c, with its inlined imports
// less what the stamps themselves and this sampling add (calibrated with
// back-to-back stamps and RDTSC around the sampling). The rest of a guest-
// measured round trip is the processor's VM exit and VM entry. In an
// ordinary build the stamps are zero and nothing is recorded.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";

const stamps: usize = memory.data(96, 8);
export let enabled: bool = false;
let stub: u64 = u64.MAX_VALUE;
let c: u64 = u64.MAX_VALUE;
let as: u64 = u64.MAX_VALUE;
let ownCost: u64 = 0; // ticks the previous sample() spent (inside the next AS interval)

export function reset(): void {
  vmx.profile(stamps);
  enabled = load<u64>(stamps, 56) != 0;
  stub = u64.MAX_VALUE;
  c = u64.MAX_VALUE;
  as = u64.MAX_VALUE;
  ownCost = 0;
}

// At a CPUID exit: the round trip that ended with this exit.
export function sample(): void {
  const t0 = cpu.rdtsc();
  vmx.profile(stamps);
  const s0 = load<u64>(stamps, 0), s1 = load<u64>(stamps, 8), s2 = load<u64>(stamps, 16);
  const s3 = load<u64>(stamps, 24), c0 = load<u64>(stamps, 32), c1 = load<u64>(stamps, 40);
  const prev = load<u64>(stamps, 48);
  const asmStamp = load<u64>(stamps, 72) - load<u64>(stamps, 64);
  const cStamp = load<u64>(stamps, 88) - load<u64>(stamps, 80);
  if (prev != 0 && c0 > prev && ownCost != 0) {
    // Each interval between two stamps contains one stamp's own cost; a
    // C/asm boundary half of each kind's.
    stub = min(stub, (s1 - s0) + (s3 - s2) - 2 * asmStamp);
    c = min(c, (s0 - c0) + (c1 - s3) - (asmStamp + cStamp));
    as = min(as, c0 - prev - cStamp - ownCost);
  }
  ownCost = cpu.rdtsc() - t0;
}

export function report(): void {
  if (!enabled || stub == u64.MAX_VALUE) return;
  print.str("hv: profile: stub ");
  print.dec(stub);
  print.nl();
  print.str("hv: profile: c ");
  print.dec(c);
  print.nl();
  print.str("hv: profile: assemblyscript ");
  print.dec(as);
  print.nl();
}
