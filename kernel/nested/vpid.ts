// L2's TLB tags (SDM Vol. 3C 29.1 "Virtual Processor Identifiers", 29.4.3
// "Invalidating Cached Translation Information").
//
// Whenever L0 uses VPIDs for this guest, L2 runs with one VPID of L0's
// (vmcs02.L2_VPID) and L1 with another (vmcs01.GUEST_VPID), whatever vmcs12
// says. vmcs12's "enable VPID" and VPID decide which flushes L1's processor
// would make, and L0 makes exactly those on the VPIDs it uses:
//  - vmcs12 without VPID: L1 and L2 share VPID 0000H, whose linear and
//    combined mappings every VM entry and exit invalidate (29.4.3.3): L2's
//    at each nested entry, L1's at each exit to L1;
//  - vmcs12 with VPID v: nothing at entries or exits. All of L1's VPIDs
//    share L2_VPID, so when the VPID differs from the previous nested
//    entry's, L2_VPID is flushed (what another v could have cached is not
//    v's to see);
//  - INVVPID of L1 (invalidate.ts) on L2_VPID: individual-address as such,
//    single-context and all-context as single-context of L2_VPID (it holds
//    every VPID of L1's), single-context-retaining-globals as such.
// Without VPIDs in L0 the processor flushes at every VM entry and exit,
// which covers every case.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as hwcaps from "../vmx/caps";
import * as vmcs01 from "../vm/vmcs01";
import * as state from "./state";
import { L2_VPID as L2 } from "./vmcs02";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";

// The vCPU's vcpu.nested.vpid12: vmcs12's VPID at the last nested entry
// (0 without "enable VPID"), NONE before the first. While L2 runs it is
// what vmcs12 says (vmcs12 cannot change then); NONE is always safe (the
// next entry flushes).
export const NONE: u64 = u64.MAX_VALUE;

function vpid12(n: Nested): u64 {
  const p = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  if ((p & V.PROC_ACTIVATE_SECONDARY_CONTROLS) == 0) return 0;
  if ((<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_ENABLE_VPID) == 0) return 0;
  return state.get(n, V.VIRTUAL_PROCESSOR_ID);
}

// INVVPID single-context of vpid where the processor has it, else
// all-context. L0 enables VPID for guests only with one of them (a
// processor without them has no way to flush a VPID: then nothing is done
// here and VPID stays off, vmcs01.ts). The nested transitions make this one
// (at every transition when L1 runs L2 without VPID).
const SINGLE: u64 = V.EPT_VPID_CAP_INVVPID | V.EPT_VPID_CAP_INVVPID_SINGLE_CONTEXT;
const ALL: u64 = V.EPT_VPID_CAP_INVVPID | V.EPT_VPID_CAP_INVVPID_ALL_CONTEXT;
function flushSingle(vpid: u32): void {
  if (!vmcs01.vpidEnabled) return;
  const cap = hwcaps.eptVpidCap;
  if ((cap & SINGLE) == SINGLE) vmx.invvpid(V.INVVPID_TYPE_SINGLE_CONTEXT, vpid, 0);
  else if ((cap & ALL) == ALL) vmx.invvpid(V.INVVPID_TYPE_ALL_CONTEXT, vpid, 0);
}

// INVVPID of `type` where the processor has it, else the wider
// flushSingle().
function flush(type: u32, vpid: u32, addr: u64): void {
  if (!vmcs01.vpidEnabled) return;
  const cap = hwcaps.eptVpidCap;
  const has = V.EPT_VPID_CAP_INVVPID | (V.EPT_VPID_CAP_INVVPID_INDIVIDUAL_ADDRESS << <u64>type);
  if ((cap & has) == has) vmx.invvpid(type, vpid, addr);
  else flushSingle(vpid);
}

// A nested VM entry (vmcs02 current).
export function entered(n: Nested): void {
  const v = vpid12(n);
  if (v == 0 || v != n.vpid12) flushSingle(L2);
  n.vpid12 = v;
}

// An exit reflected to L1. (vmcs12 cannot change while L2 runs: the VPID
// of the last entry is vmcs12's.)
export function exitedToL1(vcpu: Vcpu): void {
  if (vcpu.nested.vpid12 == 0) flushSingle(vmcs01.GUEST_VPID);
}

// L2's EPTP-switching VMFUNC: without VPID it invalidates VPID 0000H's
// combined mappings (27.5.6.3).
export function eptpSwitched(n: Nested): void {
  if (n.vpid12 == 0) flushSingle(L2);
}

// L1's INVVPID, after its checks.
export function invvpid(type: u32, addr: u64): void {
  if (type == V.INVVPID_TYPE_INDIVIDUAL_ADDRESS) flush(type, L2, addr);
  else if (type == V.INVVPID_TYPE_SINGLE_CONTEXT_RETAINING_GLOBALS) flush(type, L2, 0);
  else flushSingle(L2);
}
