// What nested VMX did for a guest, printed after its exit table when it
// ends (install.ts: vm/nesting.ts's `report`): L2 exits reflected to L1 and
// handled by L0, nested entries, what the change tracking of state.ts
// saved, the shadow EPT, and the reflected exits by reason.
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as exits from "../vm/exits";
import * as entryChecks from "./entry-checks";
import * as shadowept from "./shadowept";
import { Vcpu } from "../vm/vcpu";

export function report(vcpu: Vcpu): void {
  const n = vcpu.nested;
  const counts = n.counts;
  let total: u64 = 0;
  for (let i = 0; i < exits.REASONS; i++) total += counts.reflected(i);
  print.str("hv: L2 exits: ");
  print.dec(total);
  print.str(" reflected to L1, ");
  print.dec(counts.handledByL0);
  print.str(" handled by L0; ");
  print.dec(counts.launches);
  print.str(" nested entries (");
  print.dec(counts.enlightened);
  print.str(" enlightened); vmcs02 constant state written ");
  print.dec(n.vmcs02.constantWrites);
  print.str(" time(s); shadow VMCS ");
  if (n.shadow.enabled) {
    print.dec(n.shadow.pushes);
    print.str(" pushes, ");
    print.dec(n.shadow.pulls);
    print.str(" pulls");
  } else {
    print.str("off");
  }
  print.nl();
  // What the change tracking of state.ts saved.
  print.str("hv: nested entries: control/host checks skipped ");
  print.dec(entryChecks.skipped(n));
  print.str(", guest-state checks partial ");
  print.dec(entryChecks.partialGuest(n));
  print.str(", vmcs02 merged whole ");
  print.dec(n.vmcs02.wholeMerges);
  print.str("; L1 host state computed ");
  print.dec(n.host.stagings);
  print.str(" time(s)");
  print.nl();
  shadowept.report(n.shadowEpt);
  for (let i = 0; i < exits.REASONS; i++) {
    if (counts.reflected(i) == 0) continue;
    print.str("hv:   L2 -> L1 ");
    const name = V.exitReasonName(<u32>i);
    print.str(name);
    // At least one space: ENTRY_FAILURE_GUEST_STATE is 25 characters.
    for (let pad = name.length; pad < 24 || pad == name.length; pad++) print.chr(0x20);
    print.dec(counts.reflected(i));
    print.nl();
  }
}
