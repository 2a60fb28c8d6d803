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
// Rebuilt: vmcs02 (constant state, then the whole vmcs12 merged: every
// change class is marked changed), L0's interrupt slice for L2, and a
// flush of L2's translations (the VPID "changed", vpid.ts).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import { Vcpu } from "../vm/vcpu";
import * as vmcs02 from "./vmcs02";
import * as l2irq from "./l2irq";
import * as vpid from "./vpid";

// vmcs01 current with L1's state (as at its VMLAUNCH/VMRESUME), the
// vmcs12 cache loaded. deadline: L1's preemption timer for L2 in
// nested/ptimer.ts's units (host TSC >> rate), absolute. False when memory
// ran out (vmcs02 or shadow EPT tables); reported by vmcs02.ts.
export function enterRestored(vcpu: Vcpu, deadline: u64): bool {
  const n = vcpu.nested;
  vmcs02.captureVmcs01(n);
  const l1Efer = vmx.vmread(V.GUEST_IA32_EFER);
  const l1Pat = vmx.vmread(V.GUEST_IA32_PAT);
  const l1Dr7 = vmx.vmread(V.GUEST_DR7);
  const l1Debugctl = vmx.vmread(V.GUEST_IA32_DEBUGCTL);
  n.vmcs02.l1Launched = vcpu.launched;
  if (!vmcs02.load(n)) return false;
  if (!vmcs02.merge(vcpu, l1Efer, l1Pat, l1Dr7, l1Debugctl)) return false;
  vcpu.setLaunched(n.vmcs02.launched);
  l2irq.entered(n);
  n.ptimerDeadline = deadline;
  n.inL2 = true;
  vpid.entered(n);
  return true;
}
