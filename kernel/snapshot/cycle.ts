// snapshot=N (a test option, docs/snapshot.md): every N exits the running
// vCPU is saved to a blob (save.ts), destroyed, and made again from the
// blob (restore.ts), on the next processor when there are several; the
// guest goes on and must not notice. The tests run the guest suites with
// it: whatever a vCPU is that the blob and the rebuild miss shows up as a
// guest that fails. In VMX operation the nested part goes along: L1's
// VMXON and current vmcs12, and L2 when it runs (docs/snapshot.md).
import * as cpu from "../hw/cpu";
import * as print from "../lib/print";
import { Vcpu } from "../vm/vcpu";
import { Writer } from "./blob";
import * as save from "./save";
import * as restore from "./restore";
import * as irq from "../vm/irq";
import { STOP } from "../vm/exits";
import * as state from "../nested/state";

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

// Where the snapshot landed (the guest's report).
function countWhere(vcpu: Vcpu, runPending: bool): void {
  const vm = vcpu.vm;
  const n = vcpu.nested;
  if (!n.vmxOn) return;
  vm.snapshotsInVmx++;
  if (n.current != state.INVALID && state.launchState(n) == 0) vm.snapshotsBeforeLaunch++;
  if (n.inL2) vm.snapshotsInL2++;
  if (runPending) vm.snapshotsRunPending++;
  if (n.evmcs != state.INVALID) vm.snapshotsWithEvmcs++;
}

// Save vcpu, restore it as a new vCPU, and return that one (the one to run
// from now on); null when the guest cannot go on (reported). runPending:
// L1's VMLAUNCH/VMRESUME was emulated on the exit just handled, L2 not yet
// entered (save.ts).
export function cycle(vcpu: Vcpu, runPending: bool): Vcpu | null {
  const vm = vcpu.vm;
  const t0 = cpu.rdtsc();
  const b = buffer(save.maxBytes());
  const n = save.save(vcpu, writer, b, cap, runPending);
  if (n == 0) {
    print.say("snapshot: the vCPU's blob did not fit its buffer");
    return null;
  }
  const count = cpu.count();
  const to = count > 1 ? <i32>((cpu.index() + 1) % count) : -1;
  countWhere(vcpu, runPending);
  const v = restore.restore(vcpu, b, n, restore.KEEP_DEADLINES, to, t0);
  if (v == null) return null;
  vm.snapshots++;
  vm.snapshotTicks += cpu.rdtsc() - t0;
  // The model tests' NMI arriving right after a restore (as KVM's
  // KVM_SET_VCPU_EVENTS with an NMI pending after a migration): an NMI exit
  // to L1 while L2 runs, L1's NMI otherwise (vm/irq.ts raiseNmi).
  if (nmiAfterRestore && irq.raiseNmi(v) == STOP) return null;
  return v;
}

let nmiAfterRestore: bool = false; // test hooks only: tests/unit/snapshot-evmcs.test.ts
export function setNmiAfterRestore(on: bool): void {
  nmiAfterRestore = on;
}
