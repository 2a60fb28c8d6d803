// snapshot=N (a test option, docs/snapshot.md): every N exits the running
// vCPU is saved to a blob (save.ts), destroyed, and made again from the
// blob (restore.ts), on the next processor when there are several; the
// guest goes on and must not notice. The tests run the guest suites with
// it: whatever a vCPU is that the blob and the rebuild miss shows up as a
// guest that fails.
//
// A vCPU in VMX operation is skipped, and counted (vm.snapshotsSkipped,
// printed when the guest ends), until the nested part is saved.
import * as cpu from "../hw/cpu";
import * as print from "../lib/print";
import { Vcpu } from "../vm/vcpu";
import { Writer } from "./blob";
import * as save from "./save";
import * as restore from "./restore";

let buf: usize = 0; // machine-wide: the blob buffer, allocated at the first snapshot, reused by every guest
let cap: u64 = 0; // machine-wide: its size
const writer = new Writer(); // machine-wide: scratch

// A buffer of at least n bytes (64-byte aligned), allocated once.
export function buffer(n: u64): usize {
  if (n > cap) {
    buf = (heap.alloc(<usize>n + 64) + 63) & ~(<usize>63);
    cap = n;
  }
  return buf;
}

// Save vcpu, restore it as a new vCPU, and return that one (the one to run
// from now on), or vcpu itself when it was skipped; null when the guest
// cannot go on (reported).
export function cycle(vcpu: Vcpu): Vcpu | null {
  const vm = vcpu.vm;
  if (!save.savable(vcpu)) {
    vm.snapshotsSkipped++;
    return vcpu;
  }
  const b = buffer(save.maxBytes());
  const n = save.save(vcpu, writer, b, cap);
  if (n == 0) {
    print.say("snapshot: the vCPU's blob did not fit its buffer");
    return null;
  }
  const count = cpu.count();
  const to = count > 1 ? <i32>((cpu.index() + 1) % count) : -1;
  const v = restore.restore(vcpu, b, n, restore.KEEP_DEADLINES, to);
  if (v == null) return null;
  vm.snapshots++;
  return v;
}
