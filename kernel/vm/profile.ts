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

const stamps: usize = memory.data(96, 8); // machine-wide: the stamps' import buffer (scratch)
export let enabled: bool = false; // machine-wide: this image is the profiling build

// The smallest figures seen for one guest (vm.profile).
@unmanaged export class Profile {
  stub: u64 = u64.MAX_VALUE;
  c: u64 = u64.MAX_VALUE;
  as: u64 = u64.MAX_VALUE;
  ownCost: u64 = 0; // ticks the previous sample() spent (inside the next AS interval)

  reset(): void {
    vmx.profile(stamps);
    enabled = load<u64>(stamps, 56) != 0;
    this.stub = u64.MAX_VALUE;
    this.c = u64.MAX_VALUE;
    this.as = u64.MAX_VALUE;
    this.ownCost = 0;
  }

  // At a CPUID exit: the round trip that ended with this exit.
  sample(): void {
    const t0 = cpu.rdtsc();
    vmx.profile(stamps);
    const s0 = load<u64>(stamps, 0), s1 = load<u64>(stamps, 8), s2 = load<u64>(stamps, 16);
    const s3 = load<u64>(stamps, 24), c0 = load<u64>(stamps, 32), c1 = load<u64>(stamps, 40);
    const prev = load<u64>(stamps, 48);
    const asmStamp = load<u64>(stamps, 72) - load<u64>(stamps, 64);
    const cStamp = load<u64>(stamps, 88) - load<u64>(stamps, 80);
    if (prev != 0 && c0 > prev && this.ownCost != 0) {
      // Each interval between two stamps contains one stamp's own cost; a
      // C/asm boundary half of each kind's.
      this.stub = min(this.stub, (s1 - s0) + (s3 - s2) - 2 * asmStamp);
      this.c = min(this.c, (s0 - c0) + (c1 - s3) - (asmStamp + cStamp));
      this.as = min(this.as, c0 - prev - cStamp - this.ownCost);
    }
    this.ownCost = cpu.rdtsc() - t0;
  }

  report(): void {
    if (!enabled || this.stub == u64.MAX_VALUE) return;
    print.str("hv: profile: stub ");
    print.dec(this.stub);
    print.nl();
    print.str("hv: profile: c ");
    print.dec(this.c);
    print.nl();
    print.str("hv: profile: assemblyscript ");
    print.dec(this.as);
    print.nl();
  }
}
