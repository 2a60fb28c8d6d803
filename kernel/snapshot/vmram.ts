// The VM's RAM in a guest-requested snapshot (docs/snapshot.md "Memory";
// docs/guest-interface.md "Snapshots"): take() records the RAM, restore()
// returns it to that content, release() gives everything back when the
// guest ends. The recording is the VM's RAM snapshot (ram.ts: a copy, and
// EPT dirty tracking so that a restore copies only the pages written since):
// the one made at set-up for a guest with ramsnap=, else one made here at
// the guest's first take. snapshot=N does not use this: the RAM stays.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import { Vm } from "../vm/vm";
import { Vcpu } from "../vm/vcpu";
import { RamSnapshot } from "./ram";
import * as vmcs01 from "../vm/vmcs01";

// RAM -> snapshot (only the pages written since, after the first). vcpu:
// the running one, its vmcs01 current. False (nothing taken) when there is
// no memory for the RAM snapshot.
export function take(vm: Vm, vcpu: Vcpu): bool {
  let s = vm.ramSnapshot;
  if (s === null) {
    // Made now, once per guest: the copy and the split of the RAM's 2-MiB
    // EPT leaves (same memory, same permissions: translations cached
    // before stay right; take() invalidates after arming). The hypervisor's
    // own writes to guest RAM are marked from now on (guestmem), L2's
    // writes through the vCPU's shadow EPT revoked at each take/restore,
    // and vmcs01 runs on the snapshot's EPT pointer (with the processor's
    // accessed/dirty flags where they are the tracking).
    s = RamSnapshot.create(vm.ramHpa, vm.ramBytes, vm.eptRoot, false);
    if (s === null) return false;
    s.shadow = vcpu.nested.shadowEpt;
    vm.ramSnapshot = s;
    guestmem.use(vm);
    vmcs01.writeControl(V.EPT_POINTER, s.eptp());
  }
  s.take();
  return true;
}

// Snapshot -> RAM (a take() succeeded before): the pages written since.
export function restore(vm: Vm): void {
  const s = vm.ramSnapshot;
  if (s !== null) s.restore();
}

// A vCPU took the running one's place: the RAM snapshot revokes L2's
// write access through the new vCPU's shadow EPT from now on.
export function newVcpu(vm: Vm, vcpu: Vcpu): void {
  const s = vm.ramSnapshot;
  if (s !== null) s.shadow = vcpu.nested.shadowEpt;
}

// The guest ended: the RAM snapshot (whoever made it) and its copy go back
// to the allocator.
export function release(vm: Vm): void {
  const s = vm.ramSnapshot;
  if (s === null) return;
  vm.ramSnapshot = null;
  guestmem.use(vm);
  RamSnapshot.destroy(s);
}
