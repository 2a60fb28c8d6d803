// VMREAD and VMWRITE for L1 on the cached current vmcs12 (SDM Vol. 3C 31.3),
// in the order of their Operation sections, after the checks of every VMX
// instruction (common.ts: #UD, VM exit from L2, #GP(0) at CPL > 0):
//
// VMREAD   VMfailInvalid without a current VMCS; VMfailValid(12) if the
//          field encoding (the register in Reg2) names no supported field;
//          else the field is stored to the destination (register Reg1 or
//          memory: the memory access, and its faults, come only now),
//          VMsucceed.
// VMWRITE  VMfailInvalid without a current VMCS; a memory source is read
//          now (its faults come before the field checks); VMfailValid(12)
//          for an unsupported field; VMfailValid(13) for a read-only
//          (VM-exit information) field unless IA32_VMX_MISC[29] is offered
//          (it is: caps.misc(), and then such writes succeed); else the field
//          is written, VMsucceed.
//
// Operand sizes (31.3 VMREAD/VMWRITE descriptions): the encoding register
// and the value are 64 bits in 64-bit mode, 32 bits outside IA-32e mode
// (CS.D does not matter; compatibility mode is #UD). An encoding with any
// of bits 63:32 set is no field. A field shorter than the operand reads as
// zero-extended and takes the operand's low bits; a longer one (a 64-bit or
// natural-width field outside 64-bit mode) reads as its low 32 bits and is
// written with its high bits cleared. The "high" encoding of a 64-bit field
// (bit 0 set) is a 32-bit field: bits 63:32 of it (25.11.2, state.ts).
// A 32-bit register destination outside 64-bit mode is written
// zero-extended (bits 63:32 are not visible outside IA-32e mode).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as state from "./state";
import * as caps from "./caps";
import * as common from "./common";
import * as operand from "./operand";
import * as linear from "./linear";
import * as vmfail from "./vmfail";
import * as shadow from "./shadow";
import * as evmcs from "./evmcs";
import * as guestsync from "./guestsync";

// A shadowed field exits only where the processor says so (never for the
// bitmaps shadow.ts builds, but e.g. in a software model): its current
// value may be in the shadow VMCS, so the shadow is pulled first.
function syncShadowed(vcpu: Vcpu, enc: u32): bool {
  if (!vcpu.nested.shadow.linked || !V.vmcsFieldIsShadowed(enc)) return false;
  shadow.pull(vcpu);
  return true;
}

// Does `enc` (the whole operand) name a field of our vmcs12? The field
// table (kernel/arch/vmx.ts) is the set of fields L1's processor supports;
// IA32_VMX_VMCS_ENUM is derived from the same table (caps.vmcsEnum).
function supported(enc: u64): bool {
  return (enc >> 32) == 0 && caps.fieldSupported(<u32>enc);
}

function readOnly(enc: u32): bool {
  return V.vmcsEncodingType(enc) == V.VMCS_TYPE_RO && (caps.misc() & V.VMX_MISC_VMWRITE_ANY_FIELD) == 0;
}

export function vmread(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  return readField(vcpu, vcpu.nested.current, true);
}

// VMREAD of an L1 with hyperv=on (the exit table's handler for such a
// guest, handlers.ts; every other guest's is vmread above, unchanged): with
// no current VMCS but an enlightened VMCS in use, readEvmcs.
export function vmreadHv(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const n = vcpu.nested;
  if (n.current == state.INVALID && n.evmcs != state.INVALID) return readEvmcs(vcpu);
  return readField(vcpu, n.current, true);
}

export function vmwrite(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  return writeField(vcpu, vcpu.nested.current, true);
}

// L2's VMREAD/VMWRITE that vmcs12's "VMCS shadowing" lets through
// (shadow12.ts, after its CPL check): the same instruction on the VMCS
// that vmcs12's link pointer references, a VMCS of L1 that is not current,
// so its data is in L1's memory (state.readAt/writeAt). A link pointer of
// FFFFFFFF_FFFFFFFFH is "not valid": VMfailInvalid (31.3).
export function vmreadLinked(vcpu: Vcpu, link: u64): i32 {
  return readField(vcpu, link, false);
}
export function vmwriteLinked(vcpu: Vcpu, link: u64): i32 {
  return writeField(vcpu, link, false);
}

// The instruction after its first checks, on the VMCS at `vmcs`: the
// current vmcs12 (cached) when `current`, else a VMCS in L1's memory.
// VMfailValid puts its error number in the current vmcs12 in both cases:
// that is the current VMCS, also while L2 runs (31.2 conventions).
function readField(vcpu: Vcpu, vmcs: u64, current: bool): i32 {
  if (vmcs == state.INVALID) return vmfail.failInvalid(vcpu);
  const n = vcpu.nested;
  const info = <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO);
  const long = common.longMode();
  const mask: u64 = long ? u64.MAX_VALUE : 0xffffffff;
  const enc = vcpu.gpr(operand.reg2(info)) & mask;
  if (!supported(enc)) return vmfail.failValid(vcpu, V.VMXERR_UNSUPPORTED_VMCS_COMPONENT);
  let v: u64;
  if (current) {
    syncShadowed(vcpu, <u32>enc);
    if (vcpu.nested.rareUnsynced && guestsync.isRare(<u32>enc)) guestsync.syncRare(vcpu);
    v = state.read(n, <u32>enc) & mask;
  } else {
    v = state.readAt(vmcs, <u32>enc) & mask;
  }
  if (operand.isRegister(info)) {
    vcpu.setGpr(operand.reg1(info), v);
  } else {
    const r = operand.write(vcpu, info, long ? 8 : 4, v, n.operand);
    if (r != linear.OK) return linear.handlerResult(vcpu, r);
  }
  return vmfail.succeed(vcpu);
}

// L1's VMREAD while its enlightened VMCS is in use (vmreadHv; no VMCS is current:
// the eVMCS is not made current by VMPTRLD, TLFS "Enlightened VMCS").
// The TLFS makes VMREAD/VMWRITE then unsupported; this hypervisor, as KVM,
// lets VMREAD read the eVMCS in L1's memory (evmcs.ts), the fields L1
// wrote and those the last exit wrote back; a field the eVMCS does not
// have, or that does not exist for L1, is VMfailValid(12) with the error
// in the eVMCS too. VMWRITE is VMfailInvalid (writeField: no current
// VMCS), VMPTRST stores FFFFFFFF_FFFFFFFFH (vmptr.ts: n.current).
function readEvmcs(vcpu: Vcpu): i32 {
  const n = vcpu.nested;
  const info = <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO);
  const long = common.longMode();
  const mask: u64 = long ? u64.MAX_VALUE : 0xffffffff;
  const enc = vcpu.gpr(operand.reg2(info)) & mask;
  if (!supported(enc) || !evmcs.hasField(<u32>enc)) {
    evmcs.pushError(n, V.VMXERR_UNSUPPORTED_VMCS_COMPONENT);
    return vmfail.failValid(vcpu, V.VMXERR_UNSUPPORTED_VMCS_COMPONENT);
  }
  const v = evmcs.readField(n, <u32>enc) & mask;
  if (operand.isRegister(info)) {
    vcpu.setGpr(operand.reg1(info), v);
  } else {
    const r = operand.write(vcpu, info, long ? 8 : 4, v, n.operand);
    if (r != linear.OK) return linear.handlerResult(vcpu, r);
  }
  return vmfail.succeed(vcpu);
}

function writeField(vcpu: Vcpu, vmcs: u64, current: bool): i32 {
  if (vmcs == state.INVALID) return vmfail.failInvalid(vcpu);
  const n = vcpu.nested;
  const info = <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO);
  const long = common.longMode();
  const mask: u64 = long ? u64.MAX_VALUE : 0xffffffff;
  let v: u64;
  if (operand.isRegister(info)) {
    v = vcpu.gpr(operand.reg1(info));
  } else {
    const op = n.operand;
    const r = operand.read(vcpu, info, long ? 8 : 4, op);
    if (r != linear.OK) return linear.handlerResult(vcpu, r);
    v = op.value;
  }
  v &= mask;
  const enc = vcpu.gpr(operand.reg2(info)) & mask;
  if (!supported(enc)) return vmfail.failValid(vcpu, V.VMXERR_UNSUPPORTED_VMCS_COMPONENT);
  if (readOnly(<u32>enc)) return vmfail.failValid(vcpu, V.VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT);
  if (!current) {
    state.writeAt(vmcs, <u32>enc, v);
    return vmfail.succeed(vcpu);
  }
  const inShadow = syncShadowed(vcpu, <u32>enc);
  // A rare guest-state field (guestsync.ts) written while vmcs02 holds
  // newer rare values than the cache: those come into the cache first, or
  // the next entry's sync would overwrite L1's value with vmcs02's.
  if (n.rareUnsynced && guestsync.isRare(<u32>enc)) guestsync.syncRare(vcpu);
  state.write(n, <u32>enc, v);
  if (inShadow) shadow.push(vcpu);
  return vmfail.succeed(vcpu);
}
