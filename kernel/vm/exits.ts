// VM-exit dispatch (SDM Vol. 3C 28, Appendix C): one handler per basic exit
// reason, each counted. A handler returns RESUME, STOP or SWITCHED; an exit reason
// with no handler stops the VM with a report, never resumes it silently.
import * as print from "../lib/print";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as evmcs from "../vmx/evmcs";
import * as config from "./config";
import { Vcpu } from "./vcpu";
import { Vm } from "./vm";

export const RESUME: i32 = 0;
export const STOP: i32 = 1;
// The handler put another vCPU object in the running one's place
// (vm.vcpu0: the restore hypercall, snapshot/hypercall.ts): run that one.
export const SWITCHED: i32 = 2;
export const REASONS: i32 = 80;

export type Handler = (v: Vcpu, reason: u32) => i32;


function unhandled(v: Vcpu, reason: u32): i32 {
  print.str("hv: guest: exit reason ");
  print.dec(reason);
  print.str(" (");
  print.str(V.exitReasonName(reason));
  print.str(") has no handler; qualification ");
  print.hex(vmx.vmread(V.EXIT_QUALIFICATION));
  print.str(", rip ");
  print.hex(vmx.vmread(V.GUEST_RIP));
  print.nl();
  return stop(v, config.OUTCOME_STOPPED);
}

// The handlers are the same for every guest; the counts are the guest's
// (vm.exitCounts).
const table = new StaticArray<Handler>(REASONS); // machine-wide: registered once at start
for (let i = 0; i < REASONS; i++) table[i] = unhandled;

export function register(reason: u32, h: Handler): void {
  table[reason] = h;
}

@inline export function dispatch(v: Vcpu, reason: u32): i32 {
  return dispatchCounted(v, reason, v.vm.exitCounts);
}

// dispatch() with the counters of v's VM at `counts` (the exit loop keeps
// the address in a local rather than loading v.vm at every exit).
@inline export function dispatchCounted(v: Vcpu, reason: u32, counts: usize): i32 {
  if (reason >= <u32>REASONS) return unhandled(v, reason);
  const c = counts + (<usize>reason << 3);
  store<u64>(c, load<u64>(c) + 1);
  return unchecked(table[reason])(v, reason);
}

export function stop(v: Vcpu, o: i32): i32 {
  v.vm.outcome = o;
  return STOP;
}

export function stopWithCode(v: Vcpu, code: u32): i32 {
  v.vm.outcome = config.OUTCOME_EXIT;
  v.vm.exitCode = code;
  return STOP;
}

// The exit table printed when a guest ends (like kvm_stat): reasons with a
// non-zero count, most frequent first.
export function report(vm: Vm): void {
  const counts = vm.exitCounts;
  let total: u64 = 0;
  for (let i = 0; i < REASONS; i++) total += count(counts, i);
  print.str("hv: exits: ");
  print.dec(total);
  print.str(" in all");
  if (evmcs.inUse) print.str(" (the guest's VMCS an enlightened one: exit information read from memory)");
  print.nl();
  let last: u64 = u64.MAX_VALUE;
  // Repeated selection keeps this allocation-free; there are few reasons.
  while (true) {
    let best: u64 = 0;
    for (let i = 0; i < REASONS; i++) {
      const n = count(counts, i);
      if (n < last && n > best) best = n;
    }
    if (best == 0) break;
    for (let i = 0; i < REASONS; i++) {
      if (count(counts, i) != best) continue;
      print.str("hv:   ");
      print.str(V.exitReasonName(<u32>i));
      for (let pad = V.exitReasonName(<u32>i).length; pad < 24; pad++) print.chr(0x20);
      print.dec(best);
      print.nl();
    }
    last = best;
  }
}

@inline function count(counts: usize, i: i32): u64 {
  return load<u64>(counts + (<usize>i << 3));
}
