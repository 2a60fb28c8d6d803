// Snapshot validation of the nested state: the NESTED header (modelled on
// KVM's kvm_nested_state, whose KVM_SET_NESTED_STATE rules seeds 000 and
// 002 discuss), the vmcs12 page and the shadow vmcs12 page. Pointers are
// checked as VMXON/VMPTRLD check L1's (SDM Vol. 3C 31.3): 4-KByte aligned,
// within MAXPHYADDR, and here also a whole page of L1's RAM (the hypervisor
// reads those pages in software, nested/common.ts inRam) and not the same
// page. With GUEST_MODE the restored vmcs12 must pass the VM-entry checks
// L1's VMLAUNCH/VMRESUME made (checkVmcs12).
import * as V from "../arch/vmx";
import { Reader } from "./blob";
import * as R from "./rules";
import { Verdict } from "./rules";
import { Limits } from "./limits";
import { sectionOffset, field12 } from "./find";

const NONE: u64 = u64.MAX_VALUE; // "FFFFFFFF_FFFFFFFFH": no pointer, no deadline
const PAGE: u64 = <u64>V.VMCS12_PAGE_SIZE;

// checkVmcs12's answers.
export const VMCS12_PASSED: u32 = 0;
export const VMCS12_FAILED_CONTROLS: u32 = 1; // what VMLAUNCH answers with VMfailValid(7)
export const VMCS12_FAILED_HOST: u32 = 2; // VMfailValid(8)
export const VMCS12_FAILED_GUEST: u32 = 3; // a failed VM entry, exit reason 33
export const VMCS12_NOT_CHECKED: u32 = 4; // the checks could not be made

// The SDM's VM-entry checks (27.2, 27.3.1: controls, host state, guest
// state) on the vmcs12 page at `cache` (linear memory, private layout), as
// L1's VMLAUNCH/VMRESUME makes them (nested/entry-checks.ts), without
// touching the vCPU or the hardware.
//
// nested/entry-checks.ts checks the current vmcs12 only: every check reads
// the cache of nested/state.ts (state.get) and records its result in
// module state (the dirty classes it clears, the last pass it remembers),
// so it cannot be pointed at another page without changing the vCPU that
// page is not yet part of. Until it takes the page to check, the answer is
// VMCS12_NOT_CHECKED, which validate() reports (Verdict.unchecked) rather
// than counting as a pass.
export function checkVmcs12(cache: usize): u32 {
  return VMCS12_NOT_CHECKED;
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
  // The enlightened VMCS is reserved: no Hyper-V interface yet (seed 002:
  // with it the vmcs12 would be a copy of an eVMCS in L1's memory).
  if ((flags & V.SNAP_FLAG_EVMCS) != 0) return v.fail(R.NESTED_EVMCS, sec, V.SNAP_NESTED_FLAGS, flags);
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
  } else {
    const p = pointerRule(vmcs12, lim, R.VMCS12_MISALIGNED, R.VMCS12_MAXPHYADDR, R.VMCS12_OUTSIDE_RAM);
    if (p != R.OK) return v.fail(p, sec, V.SNAP_NESTED_VMCS12, vmcs12);
    // VMPTRLD refuses the VMXON pointer (31.3, error 10).
    if (vmcs12 == vmxon) return v.fail(R.VMCS12_IS_VMXON, sec, V.SNAP_NESTED_VMCS12, vmcs12);
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
  // What VMPTRLD accepted (31.3): our revision identifier; the shadow-VMCS
  // indicator only when L1 is offered VMCS shadowing, and never for a VMCS
  // L2 runs from (VMLAUNCH/VMRESUME fail on a shadow VMCS, 27.1).
  const rev = r.u32(page + V.VMCS12_REVISION_ID_OFFSET);
  if ((rev & ~V.VMCS_SHADOW_INDICATOR) != lim.vmcs12Revision) return v.fail(R.VMCS12_REVISION, sec, V.VMCS12_REVISION_ID_OFFSET, rev);
  if ((rev & V.VMCS_SHADOW_INDICATOR) != 0 && (guestMode || !lim.shadowVmcs))
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

// With GUEST_MODE: the entry checks on the restored vmcs12 (last: the most
// work). A check that could not be made is reported, not passed.
export function entryChecks(r: Reader, v: Verdict): u32 {
  const off = sectionOffset(r, V.SNAP_SEC_NESTED);
  if (off == NONE || (r.u32(off + V.SNAP_NESTED_FLAGS) & V.SNAP_FLAG_GUEST_MODE) == 0) return R.OK;
  const page = sectionOffset(r, V.SNAP_SEC_VMCS12);
  if (!r.has(page, PAGE)) return v.fail(R.BLOB_TRUNCATED, V.SNAP_SEC_VMCS12, -1, page);
  const c = checkVmcs12(r.at(page));
  if (c == VMCS12_NOT_CHECKED) {
    v.unchecked |= R.UNCHECKED_VMCS12_ENTRY;
    return R.OK;
  }
  if (c != VMCS12_PASSED) return v.fail(R.VMCS12_ENTRY_CHECKS, V.SNAP_SEC_VMCS12, -1, c);
  return R.OK;
}
