// A guest: what it has once, whatever its number of vCPUs (design.md, "The
// state model"): its RAM, the EPT that maps it, its configuration (the
// guest= entry it was made from), how it ended, and its vCPUs. Made when
// the guest is set up.
import * as config from "./config";
import { Vcpu } from "./vcpu";

export const MAX_VCPUS: i32 = 8;

@unmanaged export class Vm {
  guest: i32 = 0; // index of its guest= entry (config.*[guest])
  ramHpa: u64 = 0; // host-physical base of guest RAM (guest-physical 0)
  ramBytes: u64 = 0;
  eptRoot: u64 = 0; // PML4 of the EPT that maps the RAM
  // How the guest ended (config.OUTCOME_*) and its exit code when it ended
  // itself.
  outcome: i32 = config.OUTCOME_STOPPED;
  exitCode: u32 = 0;
  vcpuCount: i32 = 0;
  vcpu0: Vcpu = changetype<Vcpu>(0);
}

let theVm: Vm | null = null;

// The VM for guest= entry g. Guests run one after another, so one object
// serves them all; everything in it is set here.
export function create(g: i32): Vm {
  let vm = theVm;
  if (vm == null) {
    vm = changetype<Vm>(heap.alloc(offsetof<Vm>()));
    theVm = vm;
  }
  memory.fill(changetype<usize>(vm), 0, offsetof<Vm>());
  vm.guest = g;
  vm.outcome = config.OUTCOME_STOPPED;
  return vm;
}
