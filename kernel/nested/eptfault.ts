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
//    write permission until its first write; so is every page while L1's
//    RAM has a snapshot (snapshot/ram.ts), which records it then;
//  - L1's tables allow it but send it outside L1's RAM: L1's APIC page is
//    L1's device, the access is performed on it (vm/mmio.ts) as L1's own
//    would be; any other address stops the VM, as L1's own access would.
// The guest-physical address of a reflected exit is L2's, as the processor
// reported it: the shadow tables translate the same addresses L1's do.
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as mmio from "../vm/mmio";
import * as paging from "../vm/paging";
import * as state from "./state";
import * as ept12 from "./ept12";
import * as shadowept from "./shadowept";
import * as eptad from "./eptad";
import * as reflect from "./reflect";
import { Vcpu } from "../vm/vcpu";
import * as vmcs01 from "../vm/vmcs01";

// The second stage of the walk that reads L2's instruction bytes for an
// emulated device access (vm/paging.ts): L2-physical → L1-physical through
// L1's EPT, presence only — the processor has just fetched those bytes
// through the same tables, the hypervisor only reads them again. Should
// the walk fail all the same, the decode fails (mmio.ts reports it).
function throughL1Ept(vcpu: Vcpu, gpa2: u64, access: u32, lin: u64, final: bool): u64 {
  const w = ept12.walk(state.get(vcpu.nested, V.EPT_POINTER), gpa2, 0);
  return ept12.status(w) == ept12.WALK_OK ? ept12.gpa1(w) : paging.STAGE2;
}

// EPT violations/misconfigurations given to L1 are counted per vCPU
// (vcpu.nested.eptExitsReflected): statistics of the guest.

// Qualification bits passed through from the processor's: access (2:0),
// guest-linear address valid and kind (7, 8), NMI unblocking due to IRET (12).
const Q_FROM_PROCESSOR: u64 = 7 | (1 << 7) | (1 << 8) | (1 << 12);
const Q_NMI_UNBLOCKING: u64 = 1 << 12;

export function handle(vcpu: Vcpu): i32 {
  const q = vmx.vmread(V.EXIT_QUALIFICATION);
  const gpa2 = vmx.vmread(V.GUEST_PHYSICAL_ADDRESS);
  const eptp12 = state.get(vcpu.nested, V.EPT_POINTER);
  const w = ept12.walk(eptp12, gpa2, <u32>q & 7);
  const r = ept12.status(w);
  if (r == ept12.WALK_MISCONFIG) {
    vcpu.nested.eptExitsReflected++;
    return reflect.reflectAs(vcpu, V.EXIT_REASON_EPT_MISCONFIG, 0);
  }
  let perms = <u64>ept12.perms(w);
  if (r == ept12.WALK_VIOLATION) {
    vcpu.nested.eptExitsReflected++;
    return reflect.reflectAs(vcpu, V.EXIT_REASON_EPT_VIOLATION, (q & Q_FROM_PROCESSOR) | (perms << 3));
  }
  if ((eptp12 & V.EPTP_ACCESSED_DIRTY) != 0) {
    const flags = eptad.update(vcpu.nested, eptp12, gpa2, (q & ept12.ACCESS_WRITE) != 0);
    if (flags == eptad.LOG_FULL) {
      vcpu.nested.eptExitsReflected++;
      return reflect.reflectAs(vcpu, V.EXIT_REASON_PML_FULL, q & Q_NMI_UNBLOCKING);
    }
    if (flags != eptad.DIRTY) perms &= ~<u64>ept12.ACCESS_WRITE;
  }
  // L1 maps it: L1-physical → host through L0's EPT, which maps L1's RAM.
  const gpa1 = ept12.gpa1(w);
  const page1 = gpa1 & ~<u64>0xfff;
  if (!guestmem.isRam(page1, 4096)) {
    // Not RAM: what L1's own access to gpa1 would be. A device's (L1's
    // APIC page) is performed on L1's device model, never mapped, so that
    // every access comes back here; anything else stops the VM as L1's
    // access to unbacked memory does (misc.ts).
    const d = mmio.access(vcpu, gpa1, throughL1Ept);
    if (d != mmio.NOT_A_DEVICE) {
      reflect.countL0(vcpu);
      return d;
    }
    print.str("hv: nested: L2 ");
    print.str((q & 2) != 0 ? "write to" : (q & 4) != 0 ? "instruction fetch from" : "read of");
    print.str(" guest-physical ");
    print.hex(gpa2);
    print.str(" goes through L1's EPT to L1-physical ");
    print.hex(gpa1);
    print.str(", which is neither L1's RAM nor a device: stopped as L1's own access would be");
    print.nl();
    return exits.stop(vcpu, config.OUTCOME_EPT_VIOLATION);
  }
  // A RAM snapshot of L1 (snapshot/ram.ts) cannot see L2's writes through
  // the shadow leaf, which maps L1's page past L0's EPT: write access is
  // given with L2's first write, and the page is recorded as written then.
  if ((perms & ept12.ACCESS_WRITE) != 0 && guestmem.snapshot !== null) {
    if ((q & ept12.ACCESS_WRITE) != 0) guestmem.written(page1, 4096);
    else perms &= ~<u64>ept12.ACCESS_WRITE;
  }
  const hpa = guestmem.hpa(page1, 4096);
  const memType = ept12.leafMemType(w);
  const cache = vcpu.nested.shadowEpt;
  if (!shadowept.fill(cache, eptp12, gpa2, hpa, perms, memType)) {
    // Out of pages for tables (L1 can map a huge L2-physical space onto
    // little RAM): drop every shadow table — cached translations may always
    // be dropped — and start this root again; stop only if even that fails.
    const root = shadowept.restart(cache, eptp12);
    if (root == 0 || !shadowept.fill(cache, eptp12, gpa2, hpa, perms, memType)) {
      print.say("nested: out of memory for shadow EPT tables");
      return exits.stop(vcpu, config.OUTCOME_STOPPED);
    }
    vmcs01.writeControl(V.EPT_POINTER, root);
  }
  reflect.countL0(vcpu);
  return exits.RESUME;
}
