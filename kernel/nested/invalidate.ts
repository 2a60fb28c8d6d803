// INVEPT and INVVPID for L1 (SDM Vol. 3C 31.3).
//
// Each is #UD when L1 is not offered it: the SDM's exception lists say "#UD
// ... If the logical processor does not support EPT
// (IA32_VMX_PROCBASED_CTLS2[33] = 0) [INVEPT] / VPIDs
// (IA32_VMX_PROCBASED_CTLS2[37] = 0) [INVVPID]", or does not support the
// instruction (IA32_VMX_EPT_VPID_CAP[20] / [32] = 0). That #UD comes before
// anything else: the instruction does not exist for such a processor.
// caps.ts offers both where the processor has them. The rest follows the
// Operation sections:
//   #UD, VM exit, #GP(0)   as every VMX instruction (common.ts)
//   type := the register operand (Reg2; 64 bits in 64-bit mode, else 32)
//   VMfail(28) if IA32_VMX_EPT_VPID_CAP (as offered to L1) lacks the type
//   descriptor := the 128-bit memory operand (#GP/#SS/#PF)
//   INVEPT  type 1: VMfail(28) if the EPTP would fail VM entry (26.2.1.1)
//   INVVPID VMfail(28) if descriptor bits 63:16 are not 0; types 0, 1, 3:
//           VMfail(28) for VPID 0; type 0: VMfail(28) for a non-canonical
//           linear address
//   then the invalidation, VMsucceed.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as events from "../vm/events";
import * as ident from "../cpu/ident";
import { RESUME } from "../vm/exits";
import * as caps from "./caps";
import * as common from "./common";
import * as operand from "./operand";
import * as linear from "./linear";
import * as vmfail from "./vmfail";
import * as controls from "./entry-checks-controls";
import * as shadowept from "./shadowept";
import * as vpidFlush from "./vpid";

// INVVPID descriptor (31.3 INVVPID, Figure "INVVPID Descriptor"): VPID in
// bits 15:0, bits 63:16 reserved, linear address in bits 127:64.
const VPID_MASK: u64 = 0xffff;

// What L1 is offered: the secondary controls it may set, and its
// IA32_VMX_EPT_VPID_CAP (0 when the MSR does not exist for it). Only the
// EPT and VPID bits are read here, which hyperv=on does not change
// (caps.ts EVMCS1_PROC2_HIDDEN): the full offer.
function proc2Allowed1(): u32 {
  if ((<u32>(caps.proc(true) >> 32) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) == 0) return 0;
  return <u32>(caps.proc2(false) >> 32);
}
function eptVpidCap(): u64 {
  return caps.msrValue(V.MSR_IA32_VMX_EPT_VPID_CAP, false);
}

export function inveptOffered(): bool {
  return (proc2Allowed1() & V.PROC2_ENABLE_EPT) != 0 && (eptVpidCap() & V.EPT_VPID_CAP_INVEPT) != 0;
}
export function invvpidOffered(): bool {
  return (proc2Allowed1() & V.PROC2_ENABLE_VPID) != 0 && (eptVpidCap() & V.EPT_VPID_CAP_INVVPID) != 0;
}

// The type register.
function typeOperand(vcpu: Vcpu, info: u32): u64 {
  const v = vcpu.gpr(operand.reg2(info));
  return common.longMode() ? v : v & 0xffffffff;
}

// The EPTP checks of VM entry (27.2.1.1) against what L1 is offered; the
// invalidations drop the shadow EPT tables built from L1's (shadowept.ts):
// single-context those of the EPTP's bits 51:12, all-context every one.
function eptpPassesEntryChecks(eptp: u64): bool {
  return controls.eptpOk(eptp);
}
function invalidateEpt(vcpu: Vcpu, t: u32, eptp: u64): void {
  if (t == V.INVEPT_TYPE_SINGLE_CONTEXT) shadowept.dropMatching(vcpu.nested.shadowEpt, eptp);
  else shadowept.dropAll(vcpu.nested.shadowEpt);
}
function invalidateVpid(t: u32, vpid: u32, addr: u64): void {
  vpidFlush.invvpid(t, addr);
}

export function invept(vcpu: Vcpu, reason: u32): i32 {
  if (!inveptOffered()) {
    events.injectUD();
    return RESUME;
  }
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const info = <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO);
  const type = typeOperand(vcpu, info);
  const cap = eptVpidCap();
  const ok = (type == V.INVEPT_TYPE_SINGLE_CONTEXT && (cap & V.EPT_VPID_CAP_INVEPT_SINGLE_CONTEXT) != 0) ||
    (type == V.INVEPT_TYPE_ALL_CONTEXT && (cap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0);
  if (!ok) return vmfail.fail(vcpu, V.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
  // The descriptor (#GP/#SS/#PF, or an EPT exit to L1 while L2 runs).
  const op = vcpu.nested.operand;
  const r = operand.read(vcpu, info, 16, op);
  if (r != linear.OK) return linear.handlerResult(vcpu, r);
  const eptp = op.value;
  if (type == V.INVEPT_TYPE_SINGLE_CONTEXT && !eptpPassesEntryChecks(eptp))
    return vmfail.fail(vcpu, V.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
  invalidateEpt(vcpu, <u32>type, eptp);
  return vmfail.succeed(vcpu);
}

export function invvpid(vcpu: Vcpu, reason: u32): i32 {
  if (!invvpidOffered()) {
    events.injectUD();
    return RESUME;
  }
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const info = <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO);
  const type = typeOperand(vcpu, info);
  // Types 0-3 are supported when IA32_VMX_EPT_VPID_CAP bits 40-43 say so.
  const typeBit = V.EPT_VPID_CAP_INVVPID_INDIVIDUAL_ADDRESS << type;
  if (type > <u64>V.INVVPID_TYPE_SINGLE_CONTEXT_RETAINING_GLOBALS || (eptVpidCap() & typeBit) == 0)
    return vmfail.fail(vcpu, V.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
  const op = vcpu.nested.operand;
  const r = operand.read(vcpu, info, 16, op);
  if (r != linear.OK) return linear.handlerResult(vcpu, r);
  const desc = op.value;
  const addr = op.valueHigh;
  if ((desc & ~VPID_MASK) != 0) return vmfail.fail(vcpu, V.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
  const vpid = <u32>(desc & VPID_MASK);
  if (type != <u64>V.INVVPID_TYPE_ALL_CONTEXT && vpid == 0)
    return vmfail.fail(vcpu, V.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
  if (type == <u64>V.INVVPID_TYPE_INDIVIDUAL_ADDRESS) {
    // Canonical for the processor's linear-address width (CPUID.80000008H:EAX[15:8]).
    ident.query(0x80000008);
    const bits = <u64>((ident.eax() >> 8) & 0xff);
    const top = <i64>addr >> (bits - 1);
    if (top != 0 && top != -1) return vmfail.fail(vcpu, V.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
  }
  invalidateVpid(<u32>type, vpid, addr);
  return vmfail.succeed(vcpu);
}
