// A vCPU's nested-VMX part (design.md, "The state model"): what L1's VMX
// operation has — VMXON pointer, current vmcs12 and its cache, vmcs02,
// shadow VMCS, shadow-EPT roots, VPID state. Made with its Vcpu.
import * as shadowept from "./shadowept";
import { ShadowEpt } from "./shadowept";

@unmanaged export class Nested {
  // ---- L2's EPT, TLB tags, VM functions, interrupts and timers ----------
  shadowEpt: ShadowEpt = shadowept.create(); // shadowept.ts: roots (rebuildable cache) and their counts

  // Back to the state of a vCPU that never executed VMXON.
  clear(): void {
    shadowept.clear(this.shadowEpt);
  }

  // What the vCPU holds outside the object goes back: the shadow EPT tables
  // to the page allocator. Before the Vcpu object is recycled.
  release(): void {
    shadowept.dropAll(this.shadowEpt);
  }
}
