// The snapshot hypercalls (docs/guest-interface.md "Snapshots"): function 3
// takes a snapshot of the VM — the vCPU's blob (save.ts) and the RAM
// (vmram.ts) — at the instruction after the VMCALL, and returns RAX = 0,
// RBX = 0; function 4 returns the VM to it (restore.ts with the RAM put
// back and the timers moved on by the time since), where the snapshot call
// returns again with RAX = 3 (restored) and RBX = how many restores of
// this snapshot there have been. One snapshot per VM: a second take
// replaces it.
//
// The devices go back too: COM1 (its registers and the console line it
// was printing) and fw_cfg (the selected item and the offset in it), from
// the Vm's device area; the port statistics (denied accesses) are the
// run's and go on.
//
// A guest with several vCPUs (vcpus=N) gets HC_UNKNOWN for both: a
// snapshot holds one vCPU.
//
// L1 in VMX operation is snapshotted with its nested state (VMXON, the
// current vmcs12 or eVMCS; L2 asks through L1, whose VMCALL this is: L2's
// VMCALL exits to L1, SDM Vol. 3C 26.1.2), a hyperv=on guest with its
// synthetic MSRs (docs/snapshot.md "HYPERV").
import * as print from "../lib/print";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as events from "../vm/events";
import { RESUME, SWITCHED, STOP, stop } from "../vm/exits";
import * as config from "../vm/config";
import { Vm } from "../vm/vm";
import * as uart from "../devices/uart";
import * as ioapic from "../devices/ioapic";
import * as irq from "../vm/irq";
import { FwCfg } from "../devices/fwcfg";
import { Writer } from "./blob";
import * as save from "./save";
import * as restore from "./restore";
import * as vmram from "./vmram";

export const HC_OK: u64 = 0;
export const HC_BAD_ARGUMENT: u64 = 1;
export const HC_UNKNOWN: u64 = 2;
export const HC_RESTORED: u64 = 3; // the snapshot call returning at the snapshot point after a restore
export const HC_NO_SNAPSHOT: u64 = 4; // a restore without a snapshot

// The devices' state as at the take (vm.uart, vm.fwcfg, vm.ioapic in the
// device area, kernel/devices/ports.ts), copied as bytes: plain fields, no
// pointers.
const UART_BYTES: usize = uart.BYTES;
const FWCFG_BYTES: usize = offsetof<FwCfg>();
const IOAPIC_BYTES: usize = ioapic.BYTES;
const devicesAt: usize = memory.data(<i32>((UART_BYTES + FWCFG_BYTES + IOAPIC_BYTES + 7) & ~7), 8); // machine-wide: which guest's: vm.snapBytes
function saveDevices(vm: Vm): void {
  memory.copy(devicesAt, changetype<usize>(vm.uart), UART_BYTES);
  memory.copy(devicesAt + UART_BYTES, changetype<usize>(vm.fwcfg), FWCFG_BYTES);
  memory.copy(devicesAt + UART_BYTES + FWCFG_BYTES, changetype<usize>(vm.ioapic), IOAPIC_BYTES);
}
function restoreDevices(vm: Vm): void {
  memory.copy(changetype<usize>(vm.uart), devicesAt, UART_BYTES);
  memory.copy(changetype<usize>(vm.fwcfg), devicesAt + UART_BYTES, FWCFG_BYTES);
  memory.copy(changetype<usize>(vm.ioapic), devicesAt + UART_BYTES + FWCFG_BYTES, IOAPIC_BYTES);
}

let buf: usize = 0; // machine-wide: the guest's snapshot blob, allocated at the first take (which guest's: vm.snapBytes)
let cap: u64 = 0; // machine-wide: its size
const writer = new Writer(); // machine-wide: scratch

// The call's answer in RAX (and RBX), past the VMCALL.
function answer(vcpu: Vcpu, rax: u64): i32 {
  vcpu.setReg(R.RAX, rax);
  events.skipInstruction();
  return RESUME;
}

// Function 3. flags: RBX (none defined).
export function take(vcpu: Vcpu, flags: u64): i32 {
  // A snapshot holds one vCPU: a guest with several (vcpus=N) has neither
  // function (docs/guest-interface.md "Several vCPUs").
  if (vcpu.vm.vcpuCount > 1) return answer(vcpu, HC_UNKNOWN);
  if (flags != 0) return answer(vcpu, HC_BAD_ARGUMENT);
  const vm = vcpu.vm;
  // The snapshot point is the instruction after the VMCALL, where the call
  // returns RAX = 0, RBX = 0 the first time.
  events.skipInstruction();
  vcpu.setReg(R.RAX, HC_OK);
  vcpu.setReg(R.RBX, 0);
  const need = save.maxBytes();
  if (need > cap) {
    buf = (heap.alloc(<usize>need + 64) + 63) & ~(<usize>63);
    cap = need;
  }
  const n = save.save(vcpu, writer, buf, cap, false);
  if (n == 0 || !vmram.take(vm, vcpu)) {
    print.say("snapshot: no room for the snapshot (blob or RAM copy)");
    vm.snapBytes = 0;
    vcpu.setReg(R.RAX, HC_UNKNOWN);
    return RESUME;
  }
  saveDevices(vm);
  vm.snapBytes = n;
  vm.snapRestores = 0;
  return RESUME;
}

// Function 4: does not return to the caller; the vCPU that runs on is a new
// one, at the snapshot point (SWITCHED). flags (RBX): RESTORE_NMI, an NMI
// arrives for the restored vCPU right after the restore (what KVM's
// KVM_SET_VCPU_EVENTS with an NMI pending gives a migrated vCPU: the test
// of an NMI meeting restored nested state, vm/irq.ts raiseNmi).
export const RESTORE_NMI: u64 = 1;
export function restoreVm(vcpu: Vcpu, flags: u64): i32 {
  const vm = vcpu.vm;
  if (vcpu.vm.vcpuCount > 1) return answer(vcpu, HC_UNKNOWN);
  if ((flags & ~RESTORE_NMI) != 0) return answer(vcpu, HC_BAD_ARGUMENT);
  if (vm.snapBytes == 0) return answer(vcpu, HC_NO_SNAPSHOT);
  const v = restore.restore(vcpu, buf, vm.snapBytes, restore.GUEST_RESTORE, -1);
  // A snapshot the hypervisor wrote that it cannot restore is its own bug:
  // the guest stops with the rule named (restore.check printed it).
  if (v == null) {
    print.say("snapshot: the VM cannot be restored: stopped");
    return stop(vcpu, config.OUTCOME_STOPPED);
  }
  restoreDevices(vm);
  vm.snapRestores++;
  v.setReg(R.RAX, HC_RESTORED);
  v.setReg(R.RBX, vm.snapRestores);
  if ((flags & RESTORE_NMI) != 0 && irq.raiseNmi(v) == STOP) return STOP;
  return SWITCHED;
}
