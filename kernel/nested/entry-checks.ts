// The VM-entry checks the SDM (Vol. 3C 27.2, 27.3.1) makes on a VMCS, made
// by the hypervisor on the vmcs12 cache of a Nested (nested.ts): L1's
// current vmcs12 when L1 executes VMLAUNCH or VMRESUME, before vmcs02 is
// built, or a vmcs12 a restore brings: controls (entry-checks-controls.ts),
// then host state (entry-checks-host.ts), then guest state
// (entry-checks-guest.ts), stopping at the first failure. Every check has a
// short, stable name (ctls.*, host.*, guest.*) that the caller logs.
//
//   check(n, launch, lma)   VMLAUNCH/VMRESUME of the vCPU whose Nested is n
//                           (L1's IA32_EFER.LMA lma, for 27.2.4): the checks
//                           whose inputs changed since they last passed
//                           (see below); the outcome in n.check.
//   checkAll(n, lma, c)     ALL the checks of 27.2-27.3 (controls, host
//                           state, guest state) on n's vmcs12 cache, for a
//                           restore that validates a vmcs12 from a blob in a
//                           scratch Nested before using it. A pure check: it
//                           reads n's cache and n.current (the link pointer
//                           may not name it), L1's memory (the VMCS the link
//                           pointer names, the PDPTEs) and the offered
//                           capabilities, and writes only c: no hardware
//                           state, no VMCS, nothing of n (its dirty record
//                           and what the last pass proved stay), no vCPU.
//   Both return ENTRY_OK (0) or the class of the first failure, and fill the
//   EntryCheck (entry-checks-env.ts) with the answer L1's processor gives:
//     FAIL_CONTROLS      -> VMfailValid(7): c.error = 7
//     FAIL_HOST          -> VMfailValid(8): c.error = 8
//     FAIL_GUEST         -> failed VM entry (27.8): c.exitReason = 33 |
//                           bit 31, exit qualification c.failQual
//   and c.failName, the failing check's name (c.result says whether one
//   failed).
//
// The checks are made against what the hypervisor offers L1 (nested/caps.ts:
// the allowed-0/allowed-1 controls, IA32_VMX_MISC, the CR0/CR4 fixed bits,
// IA32_VMX_BASIC), never against the processor. Besides the SDM's rules the
// hypervisor adds one of its own: every structure the checks locate in L1's
// memory (I/O and MSR bitmaps, MSR-load/store areas, the VMCS the link
// pointer names, the PDPTE table) must lie inside L1's RAM
// (guestmem.isRam), because the hypervisor reads them in software and never
// follows a guest pointer outside RAM.
//
// Skipped, because they cannot apply with the offered capabilities (a vmcs12
// that sets the control they depend on already fails a reserved-bit check):
//  - controls: everything tied to "use TPR shadow" (virtual-APIC address,
//    TPR threshold, VTPR), "virtualize APIC accesses", "virtualize x2APIC
//    mode", "APIC-register virtualization", "virtual-interrupt delivery",
//    "process posted interrupts", "EPT-violation #VE", "sub-page write
//    permissions",
//    "Intel PT uses guest-physical addresses", "enable user wait and pause",
//    tertiary controls (HLAT, IPI virtualization, ...), secondary exit
//    controls, "entry to SMM" / "deactivate dual-monitor treatment", FRED;
//    IA32_VMX_BASIC[48] (32-bit structure addresses) is not offered;
//  - host state: the fields of "load IA32_PERF_GLOBAL_CTRL", "load CET
//    state", "load PKRS" and FRED (not offered);
//  - guest state: the fields of "load IA32_PERF_GLOBAL_CTRL", "load
//    IA32_BNDCFGS", "load IA32_RTIT_CTL", "load CET state", "load guest
//    IA32_LBR_CTL", "load PKRS", "load UINV", FRED (not offered); SMBASE
//    and the SMM interruptibility/activity rules ("entry to SMM" not
//    offered, L1 never in SMM); guest interrupt status; the executive-VMCS
//    and SMM variants of the VMCS-link-pointer checks.
// (EPT, VPID, unrestricted guest, VM functions and the EPTP list, PML,
// VMCS shadowing, the preemption timer, activity states and the PDPTEs are
// offered and checked: their names are ctls.eptp.*, ctls.vpid.*,
// ctls.vmfunc.*, ctls.pml*, ctls.vmread-bitmap.*, guest.activity.*,
// guest.pdpte*.)
//
// What is checked: see the names in the three files; `grep -o '"ctls\.[^"]*"'`
// and the like list them.
//
// check() skips the checks whose inputs provably did not change since they
// last passed (see there); checkAll() skips nothing.
import * as state from "./state";
import * as controls from "./entry-checks-controls";
import * as host from "./entry-checks-host";
import * as guest from "./entry-checks-guest";
import { EntryCheck } from "./entry-checks-env";
import * as V from "../arch/vmx";
import { Nested } from "./nested";

export const ENTRY_OK: i32 = 0;
export const FAIL_CONTROLS: i32 = 1;
export const FAIL_HOST: i32 = 2;
export const FAIL_GUEST: i32 = 3;

// A vCPU's record of its entry checks (vcpu.nested.entry, embedded in the
// Nested: no field initializers run, clear() sets everything). The outcome
// of its last VMLAUNCH/VMRESUME's checks is vcpu.nested.check.
@unmanaged export class EntryState {
  // What the last pass proved (see check()); a rebuildable cache: with
  // passedLma -1 the next entry checks everything.
  passedLma: i32 = -1; // L1's IA-32e mode at the last full pass, -1 none
  passedVm: u64 = 0; // RFLAGS.VM at the last whole guest-state pass
  // Statistics, of the rare events only (each count is a load and a store
  // on the nested exit path): the entries whose control and host checks
  // were made, whose guest-state checks were made whole, that failed the
  // control/host or the guest-state checks, and that passed the checks but
  // did not reach L2 (launch.ts). skipped() and partialGuest() derive the
  // common cases from them and the nested entries (reflect.ts L2Counts).
  full: u64 = 0;
  whole: u64 = 0;
  failedControlsHost: u64 = 0;
  failedGuest: u64 = 0;
  unfinished: u64 = 0;
  clear(): void {
    this.passedLma = -1;
    this.passedVm = 0;
    this.full = 0;
    this.whole = 0;
    this.failedControlsHost = 0;
    this.failedGuest = 0;
    this.unfinished = 0;
  }
}

// VMLAUNCH/VMRESUME whose checks were made (check() calls): the nested
// entries, the failures and the unfinished entries.
function checks(n: Nested): u64 {
  const e = n.entry;
  return n.counts.launches + e.failedControlsHost + e.failedGuest + e.unfinished;
}
// Entries whose control and host checks were skipped.
export function skipped(n: Nested): u64 {
  return checks(n) - n.entry.full;
}
// Entries that made only part of the guest-state checks.
export function partialGuest(n: Nested): u64 {
  const e = n.entry;
  return checks(n) - e.failedControlsHost - e.whole;
}

// `launch`: VMLAUNCH (true) or VMRESUME (false). The SDM makes the same
// checks for both; the launch-state checks (VM-instruction errors 4 and 5)
// belong to the instruction and come before these (31.3).
//
// What is skipped, and why it is safe: n.dirty records, per class,
// whether any field changed value since the checks last all passed
// (state.ts says why that record is exact). The capabilities and L1's RAM
// layout the checks also read never change while a guest runs. So:
//  - controls and host state are checked again only if a control or
//    host-state field changed, or L1's IA-32e mode (an input of the host
//    checks) differs from the last pass;
//  - otherwise the event-injection checks run if the event fields or the
//    guest fields they read (CR0.PE) changed;
//  - the guest-state checks run whole if the controls or a non-hot guest
//    field changed, or RFLAGS.VM differs from the last whole pass (it
//    selects the virtual-8086 segment rules); only the checks of RIP,
//    RFLAGS, activity, interruptibility, pending debug exceptions and the
//    injected event if only those changed; only RIP's if only RIP and RSP
//    did (no check reads RSP: the common case, L1 advancing L2's RIP);
//  - the checks that read L1's memory rather than vmcs12 (the VMCS the
//    link pointer names, the PDPTEs) run at every entry: L1 may have
//    written that memory without touching vmcs12.
// Does check() run the guest-state checks whole (CHECK_ALL) at this entry:
// the controls or host state are checked again (one changed, or L1's
// IA-32e mode differs from the last pass), a non-hot guest field changed,
// or RFLAGS.VM differs from the last whole pass? launch.ts asks too: only
// then do L2's rare guest fields have to be in vmcs12 (guestsync.ts).
@inline export function checksWholeGuest(n: Nested, l1Ia32e: bool): bool {
  const e = n.entry;
  return (state.dirty(n) & (state.DIRTY_CONTROLS | state.DIRTY_HOST | state.DIRTY_GUEST)) != 0 ||
    e.passedLma != (l1Ia32e ? 1 : 0) || (state.get(n, V.GUEST_RFLAGS) & V.X86_RFLAGS_VM) != e.passedVm;
}

@inline export function check(n: Nested, launch: bool, l1Ia32e: bool): i32 {
  const e = n.entry;
  const c = n.check; // c.n is n
  const lma: i32 = l1Ia32e ? 1 : 0;
  const d = state.dirty(n);
  const passedLma = e.passedLma;
  const reuse = (d & (state.DIRTY_CONTROLS | state.DIRTY_HOST)) == 0 && passedLma == lma;
  let r = ENTRY_OK;
  if (reuse) {
    if ((d & (state.DIRTY_EVENT | state.DIRTY_GUEST)) != 0 && !controls.checkInjection(c)) r = FAIL_CONTROLS;
  } else {
    e.full++;
    if (!controls.check(c)) r = FAIL_CONTROLS;
    else if (!host.check(c, l1Ia32e)) r = FAIL_HOST;
  }
  // The one control check that reads L1's memory, at every entry with
  // "use TPR shadow" (tested here: a call for every entry cost ~40 ticks).
  if (r == ENTRY_OK && (<u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_USE_TPR_SHADOW) != 0 &&
    !controls.vtprOk(c)) r = FAIL_CONTROLS;
  let whole = false;
  if (r == ENTRY_OK) {
    whole = checksWholeGuest(n, l1Ia32e);
    let level = guest.CHECK_MEMORY;
    if (whole) {
      level = guest.CHECK_ALL;
      e.whole++;
    } else if ((d & (state.DIRTY_HOT | state.DIRTY_EVENT)) != 0) {
      level = guest.CHECK_DYNAMIC;
    } else if ((d & state.DIRTY_RIP) != 0) {
      level = guest.CHECK_RIP;
    }
    if (!guest.check(c, level)) r = FAIL_GUEST;
  }
  if (r != ENTRY_OK) {
    // A failure leaves the dirty record as it is: the next entry checks
    // the same classes again (and more if more changes).
    if (r != FAIL_GUEST) {
      e.passedLma = -1;
      e.failedControlsHost++;
    } else {
      e.failedGuest++;
    }
  } else {
    if (d != 0) state.markClean(n);
    if (passedLma != lma) e.passedLma = lma;
    if (whole) e.passedVm = state.get(n, V.GUEST_RFLAGS) & V.X86_RFLAGS_VM;
  }
  return finish(c, r);
}

// Every check on n's vmcs12, nothing remembered (see the top). l2Ran: the
// vmcs12 holds the state of an L2 that has run since its entry (a snapshot
// taken in GUEST_MODE), not only what L1 wrote (entry-checks-host.ts).
export function checkAll(n: Nested, l1Ia32e: bool, c: EntryCheck, l2Ran: bool = false): i32 {
  c.start(n);
  let r = ENTRY_OK;
  if (!controls.check(c) || !controls.vtprOk(c)) r = FAIL_CONTROLS;
  else if (!host.check(c, l1Ia32e, l2Ran)) r = FAIL_HOST;
  else if (!guest.check(c, guest.CHECK_ALL)) r = FAIL_GUEST;
  return finish(c, r);
}

// The outcome into c: the architectural answer for the class (the name
// and qualification are fail()'s). Nothing is written when all passed.
function finish(c: EntryCheck, r: i32): i32 {
  if (r == ENTRY_OK) return r;
  if (r == FAIL_GUEST) {
    c.error = 0;
    c.exitReason = V.EXIT_REASON_ENTRY_FAILURE_GUEST_STATE | V.EXIT_REASON_FLAG_ENTRY_FAILURE;
  } else {
    c.error = r == FAIL_CONTROLS ? V.VMXERR_ENTRY_INVALID_CONTROL_FIELD : V.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD;
    c.exitReason = 0;
    c.failQual = 0; // only a guest-state failure has one
  }
  return r;
}
