// A vCPU restored from a snapshot taken while L2 ran (GUEST_MODE,
// docs/snapshot.md "Restore, in order", snapshot/restore.ts) goes back into
// L2: what L1's VMLAUNCH/VMRESUME did (launch.ts), minus what the snapshot
// already holds or stands for. Not made again:
//   - the instruction's checks and the VM-entry checks (SDM 27.1-27.3): the
//     restore validated the vmcs12 with entry-checks.checkAll, and the
//     entry they belonged to happened before the snapshot;
//   - the VM-entry MSR-load list (27.4): its MSRs were restored as MSRs,
//     with the values L2 had given them since (replaying the list would
//     put back the values of the entry, KVM's rule for nested state too);
//   - the VMX-preemption timer's start (27.7.4): its deadline is restored;
//   - vmcs12's event injection: vmcs02's pending event is the snapshot's
//     (EVENTS' L2 event), written by the caller after this.
// It goes through launch.handle (RESTORED), which skips those. Rebuilt:
// vmcs02 (constant state, then the whole vmcs12 merged: every
// change class is marked changed), L0's interrupt slice for L2, and a
// flush of L2's translations (the VPID "changed", vpid.ts).
import { Vcpu } from "../vm/vcpu";
import * as exits from "../vm/exits";
import * as launch from "./launch";

// vmcs01 current with L1's state (as at its VMLAUNCH/VMRESUME), the
// vmcs12 cache loaded. deadline: L1's preemption timer for L2 in
// nested/ptimer.ts's units (host TSC >> rate), absolute. False when L2
// cannot be entered (memory for vmcs02 or its EPT tables ran out, or L2 is
// halted with nothing to wake it: reported, the guest stopped).
export function enterRestored(vcpu: Vcpu, deadline: u64): bool {
  // launch.ts skips the checks and the MSR-load list for RESTORED.
  if (launch.handle(vcpu, launch.RESTORED) != exits.RESUME) return false;
  vcpu.nested.ptimerDeadline = deadline;
  return true;
}
