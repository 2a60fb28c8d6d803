// VMCLEAR, VMPTRLD and VMPTRST for L1 (SDM Vol. 3C 31.3), in the order of
// their Operation sections. All three first make the checks of every VMX
// instruction (common.ts: #UD, VM exit from L2, #GP(0) at CPL > 0); then
//
// VMCLEAR  the 64-bit memory operand is read (#GP/#SS/#PF); VMfail(2) if
//          the pointer is not 4-KByte aligned, beyond the physical-address
//          width, or not in L1's RAM (a VMCS cannot be "ensured to be in
//          memory" where there is none: the address is invalid for a VMCS);
//          VMfail(3) if it is the VMXON pointer; else the VMCS's launch
//          state in L1's memory becomes clear (the current vmcs12 is
//          written back first, then forgotten: the current-VMCS pointer
//          becomes FFFFFFFF_FFFFFFFFH), VMsucceed.
// VMPTRLD  the operand is read; VMfail(9) for the same invalid pointers;
//          VMfail(10) for the VMXON pointer; VMfail(11) if bits 30:0 of the
//          region's first dword are not our revision identifier, or bit 31
//          (shadow VMCS) is set and VMCS shadowing is not offered; else the
//          VMCS becomes current (the previous one is written back to L1's
//          memory, the new one read into the cache), VMsucceed.
// VMPTRST  the current-VMCS pointer (FFFFFFFF_FFFFFFFFH when there is
//          none) is stored to the 64-bit memory operand (#GP/#SS/#PF),
//          VMsucceed.
// VMfail(n) is VMfailValid(n) with a current VMCS, else VMfailInvalid.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as state from "./state";
import * as caps from "./caps";
import * as common from "./common";
import * as operand from "./operand";
import * as linear from "./linear";
import * as vmfail from "./vmfail";
import * as shadow from "./shadow";
import * as evmcs from "./evmcs";
import * as guestsync from "./guestsync";
import { Vcpu } from "../vm/vcpu";

// Read the pointer operand of VMCLEAR/VMPTRLD into vcpu.nested.operand:
// linear.OK, or what linear.handlerResult makes the handler's result.
function readPointer(vcpu: Vcpu): i32 {
  return operand.read(vcpu, <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO), 8, vcpu.nested.operand);
}

// May L1 load a VMCS whose first dword is rev (31.3 VMPTRLD; 25.2)? hv:
// L1 has hyperv=on, which offers no VMCS shadowing (caps.ts).
function revisionOk(rev: u32, hv: bool): bool {
  if ((rev & ~V.VMCS_SHADOW_INDICATOR) != caps.REVISION_ID) return false;
  if ((rev & V.VMCS_SHADOW_INDICATOR) == 0) return true;
  // A shadow VMCS needs the 1-setting of "VMCS shadowing" (secondary
  // controls allowed-1, and the secondary controls themselves).
  const proc2Allowed = <u32>(caps.proc(true) >> 32) & V.PROC_ACTIVATE_SECONDARY_CONTROLS;
  return proc2Allowed != 0 && (<u32>(caps.proc2(hv) >> 32) & V.PROC2_VMCS_SHADOWING) != 0;
}

export function vmclear(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const r = readPointer(vcpu);
  if (r != linear.OK) return linear.handlerResult(vcpu, r);
  const n = vcpu.nested;
  const addr = n.operand.value;
  if (common.badAddress(addr) || !common.inRam(addr)) return vmfail.fail(vcpu, V.VMXERR_VMCLEAR_INVALID_ADDRESS);
  if (addr == n.vmxonPtr) return vmfail.fail(vcpu, V.VMXERR_VMCLEAR_VMXON_POINTER);
  if (addr == n.evmcs) {
    // VMCLEAR of the enlightened VMCS in use ends its use; an eVMCS has no
    // launch state in memory to clear (TLFS "Enlightened VMCS"; evmcs.ts).
    evmcs.forget(n);
    return vmfail.succeed(vcpu);
  }
  if (addr == n.current) {
    // Its data goes to memory with the launch state cleared.
    shadow.pull(vcpu);
    shadow.unlink(n);
    state.setLaunchState(n, 0);
    guestsync.syncRare(vcpu);
    state.flush(n);
  } else if (!evmcs.requested(vcpu)) {
    guestmem.write32(addr + <u64>V.VMCS12_LAUNCH_STATE_OFFSET, 0);
  }
  // While L1's VP assist page asks for enlightened entry, the VMCSs it
  // clears are enlightened ones (TLFS: VMCLEAR makes an eVMCS inactive),
  // which keep no launch state in memory: offset 8 is HostEsSelector and
  // HostCsSelector there. So nothing is written (as KVM's L0 does); an L1
  // clears every eVMCS it moves to another processor.

  return vmfail.succeed(vcpu);
}

export function vmptrld(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const r = readPointer(vcpu);
  if (r != linear.OK) return linear.handlerResult(vcpu, r);
  const n = vcpu.nested;
  const addr = n.operand.value;
  if (common.badAddress(addr) || !common.inRam(addr)) return vmfail.fail(vcpu, V.VMXERR_VMPTRLD_INVALID_ADDRESS);
  if (addr == n.vmxonPtr) return vmfail.fail(vcpu, V.VMXERR_VMPTRLD_VMXON_POINTER);
  // The revision comes from memory, even for the current VMCS: that is
  // what the processor reads (L1 may have changed the dword meanwhile, which
  // the SDM makes undefined for an active VMCS, 25.11.1; memory is one of
  // the possible answers).
  if (!revisionOk(guestmem.read32(addr + <u64>V.VMCS12_REVISION_ID_OFFSET), n.hvOffered))
    return vmfail.fail(vcpu, V.VMXERR_VMPTRLD_INCORRECT_REVISION_ID);
  // A VMPTRLD'ed VMCS replaces an enlightened one in the cache.
  evmcs.forget(n);
  if (addr != n.current) {
    shadow.pull(vcpu);
    guestsync.syncRare(vcpu);
    state.flush(n);
    state.load12(n, addr);
    shadow.push(vcpu);
  }
  return vmfail.succeed(vcpu);
}

export function vmptrst(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const n = vcpu.nested;
  const r = operand.write(vcpu, <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO), 8, n.current, n.operand);
  if (r != linear.OK) return linear.handlerResult(vcpu, r);
  return vmfail.succeed(vcpu);
}
