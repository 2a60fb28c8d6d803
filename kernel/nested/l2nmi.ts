// An NMI for a vCPU while L2 runs (vm/irq.ts raiseNmi; SDM Vol. 3C 26.2
// "NMI exiting", 28.5.5). With "NMI exiting" in vmcs12 (and no event
// being injected into L2 at this entry) it is a VM exit to
// L1: reason 0, the exit interruption information an NMI (valid, type 2,
// vector 2), and NMIs blocked in L1 afterwards ("VM exits caused directly
// by NMIs cause blocking by NMI", 28.5.5; L1's IRET ends it, through
// vmcs01's virtual NMIs). Without it the NMI is L2's: injected into L2 at
// the next entry when L2 can take it now (no event being injected, no
// blocking by NMI, MOV SS or STI, 26.3.1.5). Otherwise it waits in the
// vCPU and is L1's, delivered at L1's next entry — a simplification: a
// processor would hold it for L2 until L2 unblocks NMIs, or deliver the
// NMI exit after the injected event (vmcs02 would need an NMI window
// reflected per vmcs12); docs/guest-interface.md says so.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as events from "../vm/events";
import * as exits from "../vm/exits";
import * as irq from "../vm/irq";
import * as state from "./state";
import * as reflect from "./reflect";
import { Vcpu } from "../vm/vcpu";

const NMI_INFO: u32 = V.INTR_INFO_VALID | (V.INTR_TYPE_NMI << V.INTR_INFO_TYPE_SHIFT) | 2;

export function arrive(vcpu: Vcpu): i32 {
  const n = vcpu.nested;
  // An event being injected into L2 at this entry is delivered first; the
  // NMI then waits (below).
  const busy = (<u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) != 0;
  if (!busy && (<u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_NMI_EXITING) != 0) {
    const r = reflect.reflectSynthetic(vcpu, V.EXIT_REASON_EXCEPTION_NMI, 0, NMI_INFO);
    // vmcs01 is current again, with L1's state: NMIs blocked in L1.
    if (!n.inL2) {
      const block = <u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE);
      vmx.vmwrite(V.GUEST_INTERRUPTIBILITY_STATE, block | V.INTERRUPTIBILITY_BLOCKING_BY_NMI);
    }
    return r;
  }
  const block = <u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE) & (V.INTERRUPTIBILITY_BLOCKING_BY_NMI |
    V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS | V.INTERRUPTIBILITY_BLOCKING_BY_STI);
  if (!busy && block == 0) {
    events.injectNmi();
    events.wakeForEvent();
    return exits.RESUME;
  }
  irq.pendNmi(vcpu);
  return exits.RESUME;
}
