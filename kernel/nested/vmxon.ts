// VMXON and VMXOFF for L1 (SDM Vol. 3C 31.3), step by step as their
// Operation sections.
//
// VMXON:
//   #UD         CR4.VMXE = 0, real-address, virtual-8086 or compatibility
//               mode (common.ts; a register operand never exits)
//   not in VMX operation:
//     #GP(0)    CPL > 0; A20M (never: a guest's A20 is always on); CR0 or
//               CR4 not allowed in VMX operation (caps.cr0Fixed*/cr4Fixed*:
//               the values L1 reads from IA32_VMX_CR*_FIXED*, A.7, A.8);
//               IA32_FEATURE_CONTROL lock bit clear, or bit 2 (VMX outside
//               SMX) clear (L1 is never in SMX operation: SMX is not offered)
//     operand   the 64-bit memory operand is read (#GP/#SS/#PF: operand.ts)
//     VMfailInvalid  pointer not 4-KByte aligned or beyond the
//               physical-address width; revision identifier (bits 30:0 of
//               the region's first dword) not ours, or bit 31 set
//     VMsucceed in VMX operation, no current VMCS
//   in VMX operation:
//     in VMX non-root operation: VM exit (not yet: common.ts)
//     #GP(0)    CPL > 0
//     VMfail(15) "VMXON executed in VMX root operation"
//
// VMXOFF:
//   #UD, VM exit, #GP(0)  as every VMX instruction (common.ts)
//   VMfail(23) under the dual-monitor treatment of SMIs and SMM: cannot
//               happen, it is not offered (IA32_VMX_BASIC[49] = 0 for L1)
//   VMsucceed   out of VMX operation, INIT unblocked (an INIT held since
//               it arrived in VMX root operation takes effect: vm/apstart.ts).
//               The current vmcs12 is written back to
//               L1's memory first: the SDM leaves the contents of VMCSs still
//               active at VMXOFF undefined (25.11.1, 25.11.5), and the
//               data that was in memory is an allowed outcome.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as events from "../vm/events";
import * as guestmem from "../vm/guestmem";
import { RESUME } from "../vm/exits";
import * as state from "./state";
import * as caps from "./caps";
import * as common from "./common";
import * as operand from "./operand";
import * as linear from "./linear";
import * as vmfail from "./vmfail";
import * as shadow from "./shadow";
import * as guestsync from "./guestsync";
import * as evmcs from "./evmcs";
import { Vcpu } from "../vm/vcpu";
import * as apstart from "../vm/apstart";

// "the values of CR0 and CR4 are supported in VMX operation" (24.8): every
// bit that is 1 in FIXED0 is 1, every bit that is 0 in FIXED1 is 0.
function crAllowed(): bool {
  const cr0 = common.guestCr0();
  const cr4 = common.guestCr4();
  if ((~cr0 & caps.cr0Fixed0()) != 0 || (cr0 & ~caps.cr0Fixed1()) != 0) return false;
  if ((~cr4 & caps.cr4Fixed0()) != 0 || (cr4 & ~caps.cr4Fixed1()) != 0) return false;
  return true;
}

export function vmxon(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, true);
  if (c != common.PROCEED) return c;

  const n = vcpu.nested;
  if (n.vmxOn) {
    if (n.inL2) return common.exitToL1(vcpu, reason);
    if (events.guestCpl() > 0) {
      events.injectGP();
      return RESUME;
    }
    return vmfail.fail(vcpu, V.VMXERR_VMXON_IN_VMX_ROOT_OPERATION);
  }

  const fc = vcpu.msrs.featureControl;
  if (events.guestCpl() > 0 || !crAllowed() || (fc & V.FEATURE_CONTROL_LOCK) == 0 ||
    (fc & V.FEATURE_CONTROL_VMX_OUTSIDE_SMX) == 0) {
    events.injectGP();
    return RESUME;
  }

  const r = operand.read(vcpu, <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO), 8, n.operand);
  if (r != linear.OK) return linear.handlerResult(vcpu, r);
  const addr = n.operand.value;
  if (common.badAddress(addr)) return vmfail.failInvalid(vcpu);
  // A pointer inside the physical-address width but outside L1's RAM names
  // memory that does not exist. VMXON's next step reads the revision
  // identifier there, and a read from nowhere returns all ones on x86 (no
  // device claims the cycle): FFFFFFFFH has bit 31 set and is not our
  // revision, so the architectural result is VMfailInvalid, and nothing is
  // read or remembered.
  if (!common.inRam(addr)) return vmfail.failInvalid(vcpu);
  const rev = guestmem.read32(addr);
  if ((rev & ~V.VMCS_SHADOW_INDICATOR) != caps.REVISION_ID || (rev & V.VMCS_SHADOW_INDICATOR) != 0)
    return vmfail.failInvalid(vcpu);

  // Enter VMX operation with no current VMCS (the current-VMCS pointer is
  // FFFFFFFF_FFFFFFFFH since reset or VMXOFF). INIT is blocked from now
  // on (vm/apstart.ts holds one that arrives); clearing address-range
  // monitoring has nothing to do: MONITOR is not offered
  // (docs/guest-interface.md).
  n.vmxOn = true;
  n.vmxonPtr = addr;
  return vmfail.succeed(vcpu);
}

export function vmxoff(vcpu: Vcpu, reason: u32): i32 {
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const n = vcpu.nested;
  shadow.pull(vcpu);
  shadow.unlink(n);
  guestsync.syncRare(vcpu);
  state.flush(n);
  evmcs.forget(n);
  n.vmxOn = false;
  n.vmxonPtr = state.INVALID;
  const r = vmfail.succeed(vcpu);
  // INIT is unblocked: one held in VMX root operation takes effect.
  apstart.vmxoffUnblocks(vcpu);
  return r;
}
