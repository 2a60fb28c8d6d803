// The enlightened VMCS of a vCPU restored from a snapshot taken while L2 ran
// from it (NESTED flags GUEST_MODE | EVMCS; docs/snapshot.md "Restore, in
// order"; seed 000, KVM's "stop abusing need_vmcs12_to_shadow_sync for eVMCS
// mapping").
//
// The nested state does not need the VP assist page to be restored: the
// vmcs12 cache comes from the blob and the eVMCS's address with it, so L2 is
// rebuilt (nested/resume.ts) whatever order the sections are loaded in, and
// the VP assist page MSR may come after (snapshot/restore.ts can load the
// HYPERV section before or after NESTED). What does need it is the link
// between the two, checked once both are back, before L2 runs again and
// before any nested exit can write into the eVMCS: the VP assist page
// enabled and asking for enlightened entries, its CurrentNestedVmcs the
// snapshot's eVMCS, a page of L1's RAM with a VersionNumber an enlightened
// entry accepts. Then the restored vmcs12 goes into the eVMCS: the fields a
// nested exit writes (evmcs.push: L2's state, the exit information, the
// entry-event fields), the fields L0 owns while L2 runs; L1's own controls
// and host state stay as L1 wrote them.
//
// restore.ts sets Nested.evmcsToMap and calls mapRestored() at the end of
// the restore, where the vCPU is complete: no test of it on the exit path.
//
// A snapshot taken while L1 ran (EVMCS without GUEST_MODE) needs none of
// this: the eVMCS in L1's memory is L1's to change until its next enlightened
// entry, which reads it against the restored cache and address exactly as it
// would have without the snapshot; nothing is written into it.
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as guestmem from "../vm/guestmem";
import * as hyperv from "../vm/exit/hyperv";
import { Vcpu } from "../vm/vcpu";
import * as caps from "./caps";
import * as evmcs from "./evmcs";
import * as state from "./state";

const PAGE: u64 = 4096;

// mapRestored's answers: MAPPED, or why the eVMCS could not be mapped.
export const MAPPED: u32 = 0;
export const VP_ASSIST_DISABLED: u32 = 1; // HV_X64_MSR_VP_ASSIST_PAGE bit 0 is 0
export const NOT_ENLIGHTENED: u32 = 2; // EnlightenVmEntry (28H) is 0
export const NOT_RAM: u32 = 3; // CurrentNestedVmcs not a 4-KiB aligned page of L1's RAM
export const OTHER_EVMCS: u32 = 4; // CurrentNestedVmcs is not the snapshot's eVMCS
export const BAD_REVISION: u32 = 5; // the eVMCS's VersionNumber is neither 1 nor our revision id

// Check the link between the VP assist page and the restored eVMCS
// (vcpu.nested.evmcs), then write the restored vmcs12 into the eVMCS.
// Changes nothing unless it answers MAPPED. found: where the reason's value
// goes (CurrentNestedVmcs, or the VersionNumber read).
export function mapRestored(vcpu: Vcpu, found: StaticArray<u64>): u32 {
  const n = vcpu.nested;
  const msr = vcpu.hv.vpAssistPage;
  found[0] = msr;
  if ((msr & hyperv.VP_ASSIST_ENABLE) == 0) return VP_ASSIST_DISABLED;
  const page = msr & ~(PAGE - 1);
  // (The restore validated that an enabled page is guest RAM.)
  if (!guestmem.isRam(page, PAGE) || guestmem.read8(page + <u64>V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY) == 0) return NOT_ENLIGHTENED;
  const gpa = guestmem.read64(page + <u64>V.HV_VP_ASSIST_CURRENT_NESTED_VMCS);
  found[0] = gpa;
  if ((gpa & (PAGE - 1)) != 0 || !guestmem.isRam(gpa, <u64>V.EVMCS_BYTES)) return NOT_RAM;
  if (gpa != n.evmcs) return OTHER_EVMCS;
  const rev = guestmem.read32(gpa + <u64>V.EVMCS_REVISION_ID);
  found[0] = rev;
  if (rev != V.EVMCS_VERSION && rev != caps.REVISION_ID) return BAD_REVISION;
  state.markShadowAll(n); // (the restored vmcs12 whole, not a partial push)
  evmcs.push(n);
  n.evmcsToMap = false;
  return MAPPED;
}

// "<why>" of a mapRestored answer, with its value.
export function describe(reason: u32, value: u64, expected: u64): void {
  switch (reason) {
    case VP_ASSIST_DISABLED:
      print.str("the VP assist page is disabled (HV_X64_MSR_VP_ASSIST_PAGE ");
      print.hex(value);
      print.str(")");
      return;
    case NOT_ENLIGHTENED:
      print.str("the VP assist page's EnlightenVmEntry is 0");
      return;
    case NOT_RAM:
      print.str("CurrentNestedVmcs ");
      print.hex(value);
      print.str(" is not a 4-KiB aligned page of L1's RAM");
      return;
    case OTHER_EVMCS:
      print.str("CurrentNestedVmcs ");
      print.hex(value);
      print.str(" is not the snapshot's eVMCS ");
      print.hex(expected);
      return;
    case BAD_REVISION:
      print.str("the eVMCS's VersionNumber ");
      print.hex(value);
      print.str(" is neither 1 nor the VMCS revision id");
      return;
  }
}
