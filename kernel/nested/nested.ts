// A vCPU's nested-VMX part (design.md, "The state model"): what L1's VMX
// operation has — VMXON pointer, current vmcs12 and its cache, vmcs02,
// shadow VMCS, shadow-EPT roots, VPID state. Made with its Vcpu.
import * as shadowept from "./shadowept";
import { ShadowEpt } from "./shadowept";
import * as vpid from "./vpid";

@unmanaged export class Nested {
  // ---- L2's EPT, TLB tags, VM functions, interrupts and timers ----------
  // Scalars are fields here rather than in an object per module: the exit
  // path reads them, and a field of a sub-object is one more bounds-checked
  // load on every L2 exit. The module that owns each one is named.
  shadowEpt: ShadowEpt = shadowept.create(); // shadowept.ts: roots (rebuildable cache) and their counts
  ptimerDeadline: u64 = 0; // ptimer.ts: when L1's timer for L2 runs out, absolute (TSC >> rate)
  irqTimer: u64 = 0; // l2irq.ts: vmcs02's VMX-preemption timer value: rebuildable cache
  irqWindow: bool = false; // l2irq.ts: interrupt-window exiting L0 set in vmcs02: rebuildable cache
  vpid12: u64 = vpid.NONE; // vpid.ts: vmcs12's VPID at the last nested entry
  // Statistics of the guest.
  eptExitsReflected: u64 = 0; // eptfault.ts: EPT violations/misconfigurations given to L1
  vmfuncSwitches: u64 = 0; // vmfunc.ts: EPTP switches emulated
  vmfuncReflected: u64 = 0; // vmfunc.ts: VMFUNC exits given to L1

  // Back to the state of a vCPU that never executed VMXON.
  clear(): void {
    shadowept.clear(this.shadowEpt);
    this.ptimerDeadline = 0;
    this.irqTimer = 0;
    this.irqWindow = false;
    this.vpid12 = vpid.NONE;
    this.eptExitsReflected = 0;
    this.vmfuncSwitches = 0;
    this.vmfuncReflected = 0;
  }

  // What the vCPU holds outside the object goes back: the shadow EPT tables
  // to the page allocator. Before the Vcpu object is recycled.
  release(): void {
    shadowept.dropAll(this.shadowEpt);
  }
}
