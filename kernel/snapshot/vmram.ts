// The VM's RAM in a guest-requested snapshot (docs/snapshot.md "Memory";
// docs/guest-interface.md "Snapshots"): take() records the RAM, restore()
// returns it to that content. One small interface so that the RAM snapshot
// with dirty tracking (kernel/snapshot/ram.ts, EPT dirty flags: a restore
// costs in proportion to what changed) replaces what is here.
//
// Here, until then: the whole RAM copied into a snapshot area of host
// pages allocated at the first take (and freed when the guest ends, by
// release()), and all of it copied back at each restore. Correct, and slow:
// a restore costs the whole RAM (32 MiB by default) whatever the guest
// wrote. snapshot=N does not use this (the RAM stays where it is).
import * as mem from "../hw/mem";
import * as pages from "../mm/pages";
import { Vm } from "../vm/vm";

// RAM -> snapshot. False (nothing taken) when there is no memory for the
// snapshot area.
export function take(vm: Vm): bool {
  if (vm.ramCopy == 0) {
    vm.ramCopy = pages.alloc(<u32>(vm.ramBytes >> 12));
    if (vm.ramCopy == 0) return false;
  }
  mem.copy(vm.ramCopy, vm.ramHpa, vm.ramBytes);
  return true;
}

// Snapshot -> RAM (a take() succeeded before).
export function restore(vm: Vm): void {
  if (vm.ramCopy != 0) mem.copy(vm.ramHpa, vm.ramCopy, vm.ramBytes);
}

// The guest ended: the snapshot area goes back to the allocator.
export function release(vm: Vm): void {
  if (vm.ramCopy == 0) return;
  pages.free(vm.ramCopy, <u32>(vm.ramBytes >> 12));
  vm.ramCopy = 0;
}
