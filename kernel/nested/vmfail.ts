// How an emulated VMX instruction reports its outcome to L1 (SDM Vol. 3C
// 31.2 "Conventions"): through the six arithmetic flags of RFLAGS and, for
// VMfailValid, the VM-instruction error field of the current VMCS (31.4).
//
//               CF  PF  AF  ZF  SF  OF
//   VMsucceed    0   0   0   0   0   0
//   VMfailInvalid 1  0   0   0   0   0
//   VMfailValid  0   0   0   1   0   0   + VM-instruction error := n
//
// VMfail(n) is VMfailValid(n) when there is a current VMCS, VMfailInvalid
// otherwise. Every outcome here completes the instruction (RIP moves past
// it); a fault does not and never comes through here.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as events from "../vm/events";
import { RESUME } from "../vm/exits";
import * as state from "./state";
import { Vcpu } from "../vm/vcpu";

const ARITH: u64 = V.X86_RFLAGS_CF | V.X86_RFLAGS_PF | V.X86_RFLAGS_AF | V.X86_RFLAGS_ZF | V.X86_RFLAGS_SF |
  V.X86_RFLAGS_OF;

// RFLAGS of the guest of the current VMCS (L1, or L2 for the instructions
// shadow12.ts performs).
function finish(vcpu: Vcpu, flags: u64): i32 {
  vmx.vmwrite(V.GUEST_RFLAGS, (vmx.vmread(V.GUEST_RFLAGS) & ~ARITH) | flags);
  events.skipInstruction();
  return RESUME;
}

export function succeed(vcpu: Vcpu): i32 {
  return finish(vcpu, 0);
}

export function failInvalid(vcpu: Vcpu): i32 {
  return finish(vcpu, V.X86_RFLAGS_CF);
}

// The caller knows there is a current VMCS (its cache takes the error).
export function failValid(vcpu: Vcpu, error: u32): i32 {
  state.write(vcpu.nested, V.VM_INSTRUCTION_ERROR, error);
  return finish(vcpu, V.X86_RFLAGS_ZF);
}

export function fail(vcpu: Vcpu, error: u32): i32 {
  return vcpu.nested.current != state.INVALID ? failValid(vcpu, error) : failInvalid(vcpu);
}
