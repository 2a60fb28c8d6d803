// VMFUNC by L2 (SDM Vol. 3C 27.5.6 "VM Functions", 27.5.6.3 "EPTP
// Switching"; seeds/004): vmcs02 enables VM functions with none allowed,
// so every VMFUNC of L2 exits to L0 (exit reason 59), and L0 does what
// L2's processor would do with vmcs12's controls:
//  - the function (EAX) is not enabled in vmcs12's VM-function controls,
//    or it is EPTP switching and ECX >= 512, or the EPTP-list entry ECX
//    would fail the VM-entry EPTP checks: a VM exit to L1 (reason 59, the
//    processor's exit information);
//  - EPTP switching otherwise: vmcs12's EPT pointer becomes the entry
//    (like a VM-entry check, it is validated first), L2 continues on the
//    shadow tables cached for it — the fast path: no rebuild, no flush of
//    other roots — and, because L1 runs L2 without VPID, the combined
//    mappings of L2's VPID are invalidated, as the SDM says an
//    EPTP-switching VMFUNC does for VPID 0000H. PDPTEs are not reloaded
//    (the SDM: an EPTP switch does not load them). RIP moves past VMFUNC.
// ("enable VM functions" 0 in vmcs12 makes VMFUNC #UD: vmcs02 then has
// the control 0 as well, and the processor raises it in L2 itself.)
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as guestmem from "../vm/guestmem";
import * as events from "../vm/events";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as controls from "./entry-checks-controls";
import * as shadowept from "./shadowept";
import * as reflect from "./reflect";
import * as vpid from "./vpid";
import * as vmcs01 from "../vm/vmcs01";

// Counted per vCPU (vcpu.nested.vmfuncSwitches: EPTP switches emulated,
// vmfuncReflected: VMFUNC exits given to L1): statistics of the guest.

const EPTP_LIST_ENTRIES: u64 = 512;

function toL1(vcpu: Vcpu): i32 {
  vcpu.nested.vmfuncReflected++;
  return reflect.reflect(vcpu, V.EXIT_REASON_VMFUNC);
}

export function handle(vcpu: Vcpu): i32 {
  const fn = <u32>vcpu.reg(R.RAX);
  const controls12 = state.get(vcpu.nested, V.VM_FUNCTION_CONTROL);
  if (fn != V.VMFUNC_EPTP_SWITCHING || (controls12 & V.VMFUNC_CTL_EPTP_SWITCHING) == 0) return toL1(vcpu);
  const index = <u64>(<u32>vcpu.reg(R.RCX));
  if (index >= EPTP_LIST_ENTRIES) return toL1(vcpu);
  // The list is in L1's RAM (ctls.eptp-list.ram at VM entry).
  const eptp = guestmem.read64(state.get(vcpu.nested, V.EPTP_LIST_ADDRESS) + index * 8);
  // Fast path: a cached root (its EPTP was valid when it was made).
  const nested = vcpu.nested;
  let root = shadowept.cached(nested.shadowEpt, eptp);
  if (root == 0) {
    if (!controls.eptpOk(eptp)) return toL1(vcpu);
    root = shadowept.rootFor(nested.shadowEpt, eptp);
  }
  if (root == 0) {
    print.say("nested: out of memory for shadow EPT tables");
    return exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  // vmcs02 takes the new root now: the change is synced, not stale.
  state.writeSynced(vcpu.nested, V.EPT_POINTER, eptp);
  vmcs01.writeControl(V.EPT_POINTER, root);
  vpid.eptpSwitched(nested);
  nested.vmfuncSwitches++;
  events.skipInstruction();
  reflect.countL0(vcpu);
  return exits.RESUME;
}
