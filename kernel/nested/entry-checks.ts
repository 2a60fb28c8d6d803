// The VM-entry checks the SDM (Vol. 3C 27.2, 27.3.1) makes on a VMCS, made
// by the hypervisor on L1's current vmcs12 when L1 executes VMLAUNCH or
// VMRESUME, before vmcs02 is built: controls (entry-checks-controls.ts),
// then host state (entry-checks-host.ts), then guest state
// (entry-checks-guest.ts), stopping at the first failure. Every check has a
// short, stable name (ctls.*, host.*, guest.*) that the caller logs.
//
//   check(launch)        ENTRY_OK, or the class of the first failure:
//     FAIL_CONTROLS      -> VMfailValid(7)  (caller)
//     FAIL_HOST          -> VMfailValid(8)  (caller)
//     FAIL_GUEST         -> failed VM entry, exit reason 33 | bit 31, exit
//                           qualification `exitQualification` (caller; 27.8)
//   failedCheck          the failing check's name, "" when all passed
//   setL1Ia32e(lma)      L1's IA32_EFER.LMA, for 27.2.4 (set it before check)
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
// Checks whose inputs provably did not change since they last passed are
// skipped: see check() below.
import * as state from "./state";
import * as controls from "./entry-checks-controls";
import * as host from "./entry-checks-host";
import * as guest from "./entry-checks-guest";
import * as env from "./entry-checks-env";
import * as V from "../arch/vmx";

export const ENTRY_OK: i32 = 0;
export const FAIL_CONTROLS: i32 = 1;
export const FAIL_HOST: i32 = 2;
export const FAIL_GUEST: i32 = 3;

export let failedCheck: string = "";
export let exitQualification: u64 = 0;

export function setL1Ia32e(lma: bool): void {
  env.setL1Ia32e(lma);
}

// `launch`: VMLAUNCH (true) or VMRESUME (false). The SDM makes the same
// checks for both; the launch-state checks (VM-instruction errors 4 and 5)
// belong to the instruction and come before these (31.3).
//
// What is skipped, and why it is safe: state.dirty records, per class,
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
//    injected event if only those changed;
//  - the checks that read L1's memory rather than vmcs12 (the VMCS the
//    link pointer names, the PDPTEs) run at every entry: L1 may have
//    written that memory without touching vmcs12.
let passedLma: i32 = -1; // L1's IA-32e mode at the last full pass, -1 none
let passedVm: u64 = 0; // RFLAGS.VM at the last whole guest-state pass
export let skipped: u64 = 0; // entries whose control/host checks were skipped
export let partialGuest: u64 = 0; // entries with only part of the guest-state checks

// Forget the last pass (a new guest, or a test that changed the machine).
export function forget(): void {
  passedLma = -1;
  skipped = 0;
  partialGuest = 0;
}

export function check(launch: bool): i32 {
  env.clearFailure();
  failedCheck = "";
  exitQualification = 0;
  const lma: i32 = env.l1Ia32e ? 1 : 0;
  const d = state.dirty;
  const reuse = (d & (state.DIRTY_CONTROLS | state.DIRTY_HOST)) == 0 && passedLma == lma;
  let r = ENTRY_OK;
  if (reuse) {
    skipped++;
    if ((d & (state.DIRTY_EVENT | state.DIRTY_GUEST)) != 0 && !controls.checkInjection()) r = FAIL_CONTROLS;
  } else if (!controls.check()) {
    r = FAIL_CONTROLS;
  } else if (!host.check()) {
    r = FAIL_HOST;
  }
  let whole = false;
  if (r == ENTRY_OK) {
    const vm = state.get(V.GUEST_RFLAGS) & V.X86_RFLAGS_VM;
    whole = !reuse || (d & state.DIRTY_GUEST) != 0 || vm != passedVm;
    let level = guest.CHECK_MEMORY;
    if (whole) level = guest.CHECK_ALL;
    else if ((d & (state.DIRTY_HOT | state.DIRTY_EVENT)) != 0) level = guest.CHECK_DYNAMIC;
    if (!whole) partialGuest++;
    if (!guest.check(level)) r = FAIL_GUEST;
  }
  if (r != ENTRY_OK) {
    failedCheck = env.failName;
    if (r == FAIL_GUEST) exitQualification = env.failQual;
    // A failure leaves state.dirty as it is: the next entry checks the
    // same classes again (and more if more changes).
    if (r != FAIL_GUEST) passedLma = -1;
  } else {
    state.markClean();
    passedLma = lma;
    if (whole) passedVm = state.get(V.GUEST_RFLAGS) & V.X86_RFLAGS_VM;
  }
  return r;
}
