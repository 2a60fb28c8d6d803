// Snapshot validation of the nested state: the NESTED header (modelled on
// KVM's kvm_nested_state, whose KVM_SET_NESTED_STATE rules seeds 000 and
// 002 discuss), the vmcs12 page and the shadow vmcs12 page. Pointers are
// checked as VMXON/VMPTRLD check L1's (SDM Vol. 3C 31.3): 4-KByte aligned,
// within MAXPHYADDR, and here also a whole page of L1's RAM (the hypervisor
// reads those pages in software, nested/common.ts inRam) and not the same
// page. With GUEST_MODE the restored vmcs12 must pass the VM-entry checks
// L1's VMLAUNCH/VMRESUME made (checkVmcs12). With EVMCS the vmcs12 is a copy
// of an enlightened VMCS and NESTED's VMCS12 its address (docs/snapshot.md).
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as state from "../nested/state";
import * as entry from "../nested/entry-checks";
import { EntryCheck } from "../nested/entry-checks-env";
import { Nested } from "../nested/nested";
import { Reader } from "./blob";
import * as R from "./rules";
import { Verdict } from "./rules";
import { Limits } from "./limits";
import { sectionOffset, field12, vmcs01Value } from "./find";

const NONE: u64 = u64.MAX_VALUE; // "FFFFFFFF_FFFFFFFFH": no pointer, no deadline
const PAGE: u64 = <u64>V.VMCS12_PAGE_SIZE;

// checkVmcs12's answers: the class of the first failed check, as VMLAUNCH
// would have answered L1 (entry-checks.ts FAIL_*).
export const VMCS12_PASSED: u32 = 0;
export const VMCS12_FAILED_CONTROLS: u32 = 1; // 27.2.1: VMfailValid(7)
export const VMCS12_FAILED_HOST: u32 = 2; // 27.2.2-27.2.4: VMfailValid(8)
export const VMCS12_FAILED_GUEST: u32 = 3; // 27.3.1: a failed VM entry, exit reason 33

// The Nested the checks run in: a blob's vmcs12 is not any vCPU's yet, and
// checkAll reads its input from a Nested's vmcs12 cache. Made at the first
// GUEST_MODE blob (Nested.create: linear memory only, no pages), then
// reused; nothing of it outlives a call.
let scratch: Nested | null = null; // machine-wide: scratch
// Where checkAll says which check failed; validate() copies the name into
// the Verdict (the names are string literals: held by reference).
const outcome = new EntryCheck(); // machine-wide: scratch

// The SDM's VM-entry checks (27.2 controls and host state, 27.3.1 guest
// state: entry-checks.ts checkAll, the checks VMLAUNCH/VMRESUME make, all
// of them, nothing remembered) on the vmcs12 page at `page` (linear
// memory, private layout: a blob's VMCS12 section, read only) as the
// current VMCS at L1-physical `current`, for an L1 whose IA32_EFER.LMA was
// `l1Ia32e` at the entry (27.2.4). The failing check's name is in
// c.failName. Changes nothing but the scratch Nested and c: no vCPU, no
// VMCS, no guest memory.
//
// What the checks compare with:
//  - the capabilities offered to L1 (nested/caps.ts) and the processor's
//    CPUID as L1 sees it (MAXPHYADDR = cpu/ident.ts physAddrBits, which
//    Limits.physAddrBits is filled from; the linear-address width; RTM);
//  - L1's RAM, for the hypervisor's own rule that every structure the
//    checks locate (I/O and MSR bitmaps, MSR-load/store areas, VMREAD/
//    VMWRITE bitmaps, the VMCS the link pointer names, the PDPTE table)
//    lies inside it, and for the two checks that read it (the first word
//    at the link pointer, 27.3.1.5; the PDPTEs, 27.3.1.6). The RAM is that
//    of the VM running on this processor (vm/guestmem.ts: restore runs on
//    the exit path of the vCPU the blob replaces, whose VM set guestmem up
//    when its vCPU started), cut to the blob's limit [0, lim.ramBytes):
//    guestmem checks every address against it before a read, so no
//    address from the blob reaches hypervisor memory or another guest's.
export function checkVmcs12(page: usize, current: u64, l1Ia32e: bool, lim: Limits, c: EntryCheck): u32 {
  if (scratch == null) scratch = Nested.create();
  const n = changetype<Nested>(scratch);
  memory.copy(n.vmcs12, page, <usize>V.VMCS12_PAGE_SIZE);
  // What the checks read besides the cache: the current-VMCS pointer (the
  // link pointer may not name it, 27.3.1.5). The whole page is new: every
  // change class marked, as a VMPTRLD leaves them (checkAll reads none of
  // them, but a scratch Nested never says less than the truth).
  n.current = current;
  state.markAllDirty(n);
  const base = guestmem.hostBase;
  const size = guestmem.size;
  const snap = guestmem.snapshot;
  // No RAM snapshot: the checks only read, and nothing must count as written.
  guestmem.setup(base, min<u64>(size, lim.ramBytes), null);
  const r = entry.checkAll(n, l1Ia32e, c, true); // GUEST_MODE: L2 has run
  guestmem.setup(base, size, snap);
  if (r == entry.FAIL_CONTROLS) return VMCS12_FAILED_CONTROLS;
  if (r == entry.FAIL_HOST) return VMCS12_FAILED_HOST;
  if (r == entry.FAIL_GUEST) return VMCS12_FAILED_GUEST;
  return VMCS12_PASSED;
}

// A VMXON region or VMCS pointer: the rule broken, or OK.
function pointerRule(p: u64, lim: Limits, misaligned: u32, beyond: u32, outside: u32): u32 {
  if ((p & (PAGE - 1)) != 0) return misaligned;
  if (lim.physAddrBits < 64 && (p >> lim.physAddrBits) != 0) return beyond;
  if (PAGE > lim.ramBytes || p > lim.ramBytes - PAGE) return outside;
  return R.OK;
}

// Does vmcs12 give L2 VMCS shadowing with a shadow VMCS to read (25.10:
// "VMCS shadowing" on, the link pointer not FFFFFFFF_FFFFFFFFH)?
function shadowing(r: Reader, page: u64): bool {
  const proc = <u32>field12(r, page, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  if ((proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) == 0) return false;
  const proc2 = <u32>field12(r, page, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL);
  return (proc2 & V.PROC2_VMCS_SHADOWING) != 0 && field12(r, page, V.VMCS_LINK_POINTER) != NONE;
}

export function nested(r: Reader, lim: Limits, v: Verdict): u32 {
  const sec = V.SNAP_SEC_NESTED;
  const off = sectionOffset(r, sec);
  const has12 = sectionOffset(r, V.SNAP_SEC_VMCS12) != NONE;
  const hasShadow = sectionOffset(r, V.SNAP_SEC_SHADOW_VMCS12) != NONE;
  if (off == NONE) {
    // L1 never entered VMX operation: nothing nested may follow.
    if (has12) return v.fail(R.SECTION_UNEXPECTED, V.SNAP_SEC_VMCS12, -1, V.SNAP_SEC_VMCS12);
    if (hasShadow) return v.fail(R.SECTION_UNEXPECTED, V.SNAP_SEC_SHADOW_VMCS12, -1, V.SNAP_SEC_SHADOW_VMCS12);
    return R.OK;
  }
  if (r.u32(off + V.SNAP_NESTED_RESERVED0) != 0) return v.fail(R.NESTED_RESERVED, sec, V.SNAP_NESTED_RESERVED0, 0);
  const flags = r.u32(off + V.SNAP_NESTED_FLAGS);
  const vmxon = r.u64(off + V.SNAP_NESTED_VMXON);
  const vmcs12 = r.u64(off + V.SNAP_NESTED_VMCS12);
  const deadline = r.u64(off + V.SNAP_NESTED_PREEMPTION_DEADLINE);
  // EVMCS (seed 002): the vmcs12 is a copy of the enlightened VMCS an
  // enlightened entry made current, and VMCS12 is that eVMCS's address. Only
  // a guest with the Hyper-V interface can have one.
  const evmcs = (flags & V.SNAP_FLAG_EVMCS) != 0;
  if (evmcs && !lim.hyperv) return v.fail(R.NESTED_EVMCS, sec, V.SNAP_NESTED_FLAGS, flags);
  if ((flags & ~V.SNAP_FLAGS_DEFINED) != 0) return v.fail(R.NESTED_FLAGS_UNKNOWN, sec, V.SNAP_NESTED_FLAGS, flags);
  const guestMode = (flags & V.SNAP_FLAG_GUEST_MODE) != 0;
  if ((flags & V.SNAP_FLAG_RUN_PENDING) != 0 && !guestMode) return v.fail(R.NESTED_RUN_PENDING, sec, V.SNAP_NESTED_FLAGS, flags);
  if (vmxon == NONE) {
    if (flags != 0) return v.fail(R.NESTED_FLAGS_WITHOUT_VMXON, sec, V.SNAP_NESTED_FLAGS, flags);
    if (vmcs12 != NONE) return v.fail(R.NESTED_VMCS12_WITHOUT_VMXON, sec, V.SNAP_NESTED_VMCS12, vmcs12);
  } else {
    const p = pointerRule(vmxon, lim, R.VMXON_MISALIGNED, R.VMXON_MAXPHYADDR, R.VMXON_OUTSIDE_RAM);
    if (p != R.OK) return v.fail(p, sec, V.SNAP_NESTED_VMXON, vmxon);
  }
  if (vmcs12 == NONE) {
    if (guestMode) return v.fail(R.NESTED_GUEST_MODE_WITHOUT_VMCS12, sec, V.SNAP_NESTED_FLAGS, flags);
    if (evmcs) return v.fail(R.NESTED_EVMCS_WITHOUT_VMCS12, sec, V.SNAP_NESTED_FLAGS, flags);
  } else {
    // An eVMCS address passed the same alignment and RAM tests at the
    // enlightened entry (nested/evmcs.ts: else VMfailInvalid).
    const p = pointerRule(vmcs12, lim, R.VMCS12_MISALIGNED, R.VMCS12_MAXPHYADDR, R.VMCS12_OUTSIDE_RAM);
    if (p != R.OK) return v.fail(p, sec, V.SNAP_NESTED_VMCS12, vmcs12);
    // VMPTRLD refuses the VMXON pointer (31.3, error 10); an enlightened
    // entry does not check it (the eVMCS is plain memory, TLFS).
    if (vmcs12 == vmxon && !evmcs) return v.fail(R.VMCS12_IS_VMXON, sec, V.SNAP_NESTED_VMCS12, vmcs12);
  }
  // L1's preemption timer for L2 runs only while L2 does (nested/ptimer.ts).
  if (deadline != NONE && !guestMode) return v.fail(R.TIMER12_OUTSIDE_L2, sec, V.SNAP_NESTED_PREEMPTION_DEADLINE, deadline);
  // The vmcs12 page: exactly when there is a current VMCS.
  if (vmcs12 == NONE) {
    if (has12) return v.fail(R.SECTION_UNEXPECTED, V.SNAP_SEC_VMCS12, -1, V.SNAP_SEC_VMCS12);
    if (hasShadow) return v.fail(R.SECTION_UNEXPECTED, V.SNAP_SEC_SHADOW_VMCS12, -1, V.SNAP_SEC_SHADOW_VMCS12);
    return R.OK;
  }
  if (!has12) return v.fail(R.SECTION_MISSING, V.SNAP_SEC_VMCS12, -1, V.SNAP_SEC_VMCS12);
  return page12(r, lim, v, flags, vmxon, vmcs12, deadline, hasShadow);
}

function page12(r: Reader, lim: Limits, v: Verdict, flags: u32, vmxon: u64, vmcs12: u64, deadline: u64, hasShadow: bool): u32 {
  const sec = V.SNAP_SEC_VMCS12;
  const page = sectionOffset(r, sec);
  const guestMode = (flags & V.SNAP_FLAG_GUEST_MODE) != 0;
  const evmcs = (flags & V.SNAP_FLAG_EVMCS) != 0;
  // What VMPTRLD accepted (31.3): our revision identifier; the shadow-VMCS
  // indicator only when L1 is offered VMCS shadowing, and never for a VMCS
  // L2 runs from (VMLAUNCH/VMRESUME fail on a shadow VMCS, 27.1). A copy of
  // an eVMCS has no revision of its own (the eVMCS's VersionNumber is in
  // L1's memory): save.ts writes ours, without the indicator.
  const rev = r.u32(page + V.VMCS12_REVISION_ID_OFFSET);
  if ((rev & ~V.VMCS_SHADOW_INDICATOR) != lim.vmcs12Revision) return v.fail(R.VMCS12_REVISION, sec, V.VMCS12_REVISION_ID_OFFSET, rev);
  if ((rev & V.VMCS_SHADOW_INDICATOR) != 0 && (guestMode || evmcs || !lim.shadowVmcs))
    return v.fail(R.VMCS12_SHADOW_INDICATOR, sec, V.VMCS12_REVISION_ID_OFFSET, rev);
  // Launch state: clear (0) or launched (1); launched once L2 has been
  // entered from it (a VMLAUNCH sets it before L2 runs: launch.ts).
  const launch = r.u32(page + V.VMCS12_LAUNCH_STATE_OFFSET);
  if (launch > 1 || (guestMode && launch != 1)) return v.fail(R.VMCS12_LAUNCH_STATE, sec, V.VMCS12_LAUNCH_STATE_OFFSET, launch);
  if (guestMode) {
    // The deadline exists exactly when vmcs12 activates the timer (27.7.4:
    // it starts at the nested entry, ptimer.entered).
    const active = (<u32>field12(r, page, V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0;
    if (active && deadline == NONE) return v.fail(R.TIMER12_MISSING, V.SNAP_SEC_NESTED, V.SNAP_NESTED_PREEMPTION_DEADLINE, deadline);
    if (!active && deadline != NONE) return v.fail(R.TIMER12_NOT_ACTIVATED, V.SNAP_SEC_NESTED, V.SNAP_NESTED_PREEMPTION_DEADLINE, deadline);
  }
  // The shadow vmcs12: with GUEST_MODE and VMCS shadowing for L2, the page
  // the link pointer names (shadow12.ts reads it for L2's VMREAD/VMWRITE);
  // nowhere else.
  const wanted = guestMode && shadowing(r, page);
  if (!wanted) {
    if (hasShadow) return v.fail(R.SECTION_UNEXPECTED, V.SNAP_SEC_SHADOW_VMCS12, -1, V.SNAP_SEC_SHADOW_VMCS12);
    return R.OK;
  }
  if (!hasShadow) return v.fail(R.SECTION_MISSING, V.SNAP_SEC_SHADOW_VMCS12, -1, V.SNAP_SEC_SHADOW_VMCS12);
  const link = field12(r, page, V.VMCS_LINK_POINTER);
  if (pointerRule(link, lim, R.SHADOW12_LINK, R.SHADOW12_LINK, R.SHADOW12_LINK) != R.OK || link == vmxon || link == vmcs12)
    return v.fail(R.SHADOW12_LINK, sec, V.vmcs12Offset(V.VMCS_LINK_POINTER), link);
  // 27.3.1.5: the VMCS the link pointer names has our revision identifier
  // and the shadow-VMCS indicator set when "VMCS shadowing" is 1.
  const shadowPage = sectionOffset(r, V.SNAP_SEC_SHADOW_VMCS12);
  const srev = r.u32(shadowPage + V.VMCS12_REVISION_ID_OFFSET);
  if (srev != (lim.vmcs12Revision | V.VMCS_SHADOW_INDICATOR))
    return v.fail(R.SHADOW12_REVISION, V.SNAP_SEC_SHADOW_VMCS12, V.VMCS12_REVISION_ID_OFFSET, srev);
  return R.OK;
}

// With GUEST_MODE: the SDM entry checks on the restored vmcs12 (last: the
// most work; everything they rely on, the pointers, the revision, the launch
// state, is checked by then). L1's mode at the entry (27.2.4: with
// IA32_EFER.LMA = 1 "host address-space size" must be 1, with 0 it and "IA-32e
// mode guest" must be 0) is VMCS01's GUEST_IA32_EFER.LMA: VMCS01 holds L1's
// state as of its VMLAUNCH/VMRESUME (docs/snapshot.md, "Whose state"), the
// very value launch.ts passed to the checks then. Not the exit control
// itself: that would make the rule compare a field with itself.
export function entryChecks(r: Reader, lim: Limits, v: Verdict): u32 {
  const off = sectionOffset(r, V.SNAP_SEC_NESTED);
  if (off == NONE || (r.u32(off + V.SNAP_NESTED_FLAGS) & V.SNAP_FLAG_GUEST_MODE) == 0) return R.OK;
  const page = sectionOffset(r, V.SNAP_SEC_VMCS12);
  if (!r.has(page, PAGE)) return v.fail(R.BLOB_TRUNCATED, V.SNAP_SEC_VMCS12, -1, page);
  // The current-VMCS pointer the checks compare the link pointer with
  // (27.3.1.5): none with an eVMCS, as at its enlightened entry (launch.ts
  // checked with no VMPTRLD'ed VMCS current).
  const flags = r.u32(off + V.SNAP_NESTED_FLAGS);
  const current = (flags & V.SNAP_FLAG_EVMCS) != 0 ? NONE : r.u64(off + V.SNAP_NESTED_VMCS12);
  const l1Ia32e = (vmcs01Value(r, V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0;
  const c = checkVmcs12(r.at(page), current, l1Ia32e, lim, outcome);
  if (c == VMCS12_PASSED) return R.OK;
  v.fail(R.VMCS12_ENTRY_CHECKS, V.SNAP_SEC_VMCS12, -1, c);
  v.check = outcome.failName;
  return R.VMCS12_ENTRY_CHECKS;
}
