// What nested VMX did for a guest, printed after its exit table when it
// ends (install.ts: vm/nesting.ts's `report`): L2 exits reflected to L1 and
// handled by L0, nested entries, what the change tracking of state.ts
// saved, the shadow EPT, and the reflected exits by reason.
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as exits from "../vm/exits";
import * as entryChecks from "./entry-checks";
import * as vmcs02 from "./vmcs02";
import * as reflect from "./reflect";
import * as launch from "./launch";
import * as shadow from "./shadow";
import * as hoststate from "./hoststate";
import * as shadowept from "./shadowept";
import { Vcpu } from "../vm/vcpu";

export function report(vcpu: Vcpu): void {
  let total: u64 = 0;
  for (let i = 0; i < exits.REASONS; i++) total += reflect.counts[i];
  print.str("hv: L2 exits: ");
  print.dec(total);
  print.str(" reflected to L1, ");
  print.dec(reflect.handledByL0);
  print.str(" handled by L0; ");
  print.dec(launch.launches);
  print.str(" nested entries; vmcs02 constant state written ");
  print.dec(vmcs02.constantWrites);
  print.str(" time(s); shadow VMCS ");
  if (shadow.enabled) {
    print.dec(shadow.pushes);
    print.str(" pushes, ");
    print.dec(shadow.pulls);
    print.str(" pulls");
  } else {
    print.str("off");
  }
  print.nl();
  // What the change tracking of state.ts saved.
  print.str("hv: nested entries: control/host checks skipped ");
  print.dec(entryChecks.skipped);
  print.str(", guest-state checks partial ");
  print.dec(entryChecks.partialGuest);
  print.str(", vmcs02 merged whole ");
  print.dec(vmcs02.wholeMerges);
  print.str("; L1 host state computed ");
  print.dec(hoststate.stagings);
  print.str(" time(s)");
  print.nl();
  shadowept.report(vcpu.nested.shadowEpt);
  for (let i = 0; i < exits.REASONS; i++) {
    if (reflect.counts[i] == 0) continue;
    print.str("hv:   L2 -> L1 ");
    const name = V.exitReasonName(<u32>i);
    print.str(name);
    // At least one space: ENTRY_FAILURE_GUEST_STATE is 25 characters.
    for (let pad = name.length; pad < 24 || pad == name.length; pad++) print.chr(0x20);
    print.dec(reflect.counts[i]);
    print.nl();
  }
}
