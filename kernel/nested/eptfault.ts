// EPT violations while L2 runs on shadow EPT (vmcs12 enables EPT;
// shadowept.ts): whose are they? (SDM Vol. 3C 29.3.3 "EPT-Induced VM
// Exits", 28.2.1 Table 28-7.)
//
// The processor walked our shadow tables, which hold only what has been
// filled so far. L1's own tables decide (ept12.ts):
//  - L1's walk hits a not-present entry or lacks the permission: an EPT
//    violation for L1 — reflected with the access bits, the linear-address
//    bits (7, 8) and NMI unblocking (12) as the processor reported them and
//    bits 5:3 from L1's walk (the AND of bits 2:0 of L1's entries);
//  - L1's walk meets a misconfigured entry (or a table outside L1's RAM):
//    an EPT misconfiguration for L1 (exit reason 49);
//  - L1's tables allow the access: the shadow lacked the page, or had
//    fewer permissions (L1 raised them; the violation itself invalidated the
//    processor's cached translation, 29.4.3.1): L0 maps the 4-KiB page with
//    L1's permissions and resumes L2, which never notices. With accessed
//    and dirty flags enabled in vmcs12's EPTP, eptad.ts first sets them in
//    L1's entries (and logs the page for PML, or makes the access a
//    page-modification log-full exit to L1, reason 62, whose qualification
//    has only bit 12, 28.2.1), and a page not yet dirty is mapped without
//    write permission until its first write.
// The guest-physical address of a reflected exit is L2's, as the processor
// reported it: the shadow tables translate the same addresses L1's do.
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as ept12 from "./ept12";
import * as shadowept from "./shadowept";
import * as eptad from "./eptad";
import * as reflect from "./reflect";

export let reflected: u64 = 0; // EPT violations/misconfigurations given to L1

// Qualification bits passed through from the processor's: access (2:0),
// guest-linear address valid and kind (7, 8), NMI unblocking due to IRET (12).
const Q_FROM_PROCESSOR: u64 = 7 | (1 << 7) | (1 << 8) | (1 << 12);
const Q_NMI_UNBLOCKING: u64 = 1 << 12;

export function handle(): i32 {
  const q = vmx.vmread(V.EXIT_QUALIFICATION);
  const gpa2 = vmx.vmread(V.GUEST_PHYSICAL_ADDRESS);
  const eptp12 = state.get(V.EPT_POINTER);
  const r = ept12.walk(eptp12, gpa2, <u32>q & 7);
  if (r == ept12.WALK_MISCONFIG) {
    reflected++;
    return reflect.reflectAs(V.EXIT_REASON_EPT_MISCONFIG, 0);
  }
  if (r == ept12.WALK_VIOLATION) {
    reflected++;
    return reflect.reflectAs(V.EXIT_REASON_EPT_VIOLATION, (q & Q_FROM_PROCESSOR) | (<u64>ept12.perms << 3));
  }
  let perms = <u64>ept12.perms;
  if ((eptp12 & V.EPTP_ACCESSED_DIRTY) != 0) {
    if (!eptad.update(eptp12, gpa2, (q & ept12.ACCESS_WRITE) != 0)) {
      reflected++;
      return reflect.reflectAs(V.EXIT_REASON_PML_FULL, q & Q_NMI_UNBLOCKING);
    }
    if (!eptad.leafDirty) perms &= ~<u64>ept12.ACCESS_WRITE;
  }
  // L1 maps it: L1-physical → host through L0's EPT, which maps L1's RAM.
  const page1 = ept12.gpa1 & ~<u64>0xfff;
  if (!guestmem.isRam(page1, 4096)) {
    print.str("hv: nested: L2 access to guest-physical ");
    print.hex(gpa2);
    print.str(" goes through L1's EPT to L1-physical ");
    print.hex(ept12.gpa1);
    print.str(", which is not L1's RAM (device memory for L2 is not supported)");
    print.nl();
    return exits.stop(config.OUTCOME_EPT_VIOLATION);
  }
  const hpa = guestmem.hpa(page1, 4096);
  if (!shadowept.fill(eptp12, gpa2, hpa, perms, ept12.leafMemType)) {
    // Out of pages for tables (L1 can map a huge L2-physical space onto
    // little RAM): drop every shadow table — cached translations may always
    // be dropped — and start this root again; stop only if even that fails.
    const root = shadowept.restart(eptp12);
    if (root == 0 || !shadowept.fill(eptp12, gpa2, hpa, perms, ept12.leafMemType)) {
      print.say("nested: out of memory for shadow EPT tables");
      return exits.stop(config.OUTCOME_STOPPED);
    }
    vmx.vmwrite(V.EPT_POINTER, root);
  }
  reflect.countL0();
  return exits.RESUME;
}
