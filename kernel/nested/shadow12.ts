// VMCS shadowing offered to L1 for its own L2 (SDM Vol. 3C 25.10 "VMCS
// types", 25.6.15 "VMCS shadowing bitmap addresses", 31.3 VMREAD/VMWRITE).
// Not L0's own use of the processor's shadowing for L1 (shadow.ts): here
// L1 sets "VMCS shadowing" in vmcs12, and its L2 — in VMX non-root
// operation, without VMXON of its own — may VMREAD/VMWRITE the VMCS that
// vmcs12's VMCS link pointer references (a shadow VMCS of L1: bit 31 of
// its first dword set, checked at VM entry, 27.3.1.5).
//
// vmcs02 never has "VMCS shadowing" (vmcs02.ts), so every VMREAD/VMWRITE
// of L2 exits to L0, which answers as L1's processor would (31.3):
//   exit to L1 (the exit is reflected with the processor's information)
//     when vmcs12's "VMCS shadowing" is 0, or the field encoding sets any
//     of bits 63:15 (31:15 outside 64-bit mode, where the operand has 32
//     bits), or the encoding's bit in vmcs12's VMREAD/VMWRITE bitmap is 1;
//   else #GP(0) at CPL > 0;
//   else the instruction on the VMCS the link pointer references (vmrw.ts,
//     with that VMCS as its target): VMfailInvalid for a link pointer of
//     FFFFFFFF_FFFFFFFFH, VMfailValid(12) for an encoding that names no
//     field (the error number goes into the current VMCS, vmcs12, as for
//     every VMfailValid), else the field is read or written, VMsucceed.
//
// Where the shadow VMCS's data lives: in L1's memory, in our private
// vmcs12 layout. A VMCS of L1 that is not current is always there
// (state.flush writes the current one back when it stops being current),
// and the link pointer is never the current VMCS (27.3.1.5), so L2's
// accesses read and write that page directly. After the next exit L1
// sees L2's writes by making the shadow VMCS current (VMPTRLD) and
// VMREADing it, as on the processor; the processor may instead cache the
// shadow VMCS while it is linked, and software must not rely on the data
// in memory of an active VMCS (25.11.1), so an L1 that reads the page with
// ordinary loads gets our layout, which no L1 can expect anything of.
//
// Memory operands are L2's linear addresses, walked through L2's paging
// and, when vmcs12 enables EPT, through L1's EPT (linear.ts: its
// violations and misconfigurations are exits to L1). The instruction's
// faults go to L2, or to L1 when its exception bitmap asks for them.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as state from "./state";
import * as common from "./common";
import * as operand from "./operand";
import * as vmrw from "./vmrw";
import * as reflect from "./reflect";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";


// Does L1 get this VMREAD (or VMWRITE) of L2 as a VM exit (31.3: "ELSIF
// in VMX non-root operation AND ... THEN VMexit")?
export function l1Wants(vcpu: Vcpu, reason: u32): bool {
  const n = vcpu.nested;
  const proc = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  if ((proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) == 0) return true;
  if ((<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_VMCS_SHADOWING) == 0) return true;
  const info = <u32>vmx.vmread(V.VM_EXIT_INSTRUCTION_INFO);
  const mask: u64 = common.longMode() ? u64.MAX_VALUE : 0xffffffff;
  const enc = vcpu.gpr(operand.reg2(info)) & mask;
  if ((enc >> 15) != 0) return true;
  const bitmap = state.read(n, reason == V.EXIT_REASON_VMREAD ? V.VMREAD_BITMAP : V.VMWRITE_BITMAP);
  const a = bitmap + (enc >> 3);
  // The entry checks made sure the bitmap is in L1's RAM (entry-checks-controls.ts).
  if (!guestmem.isRam(a, 1)) return true;
  return (guestmem.read8(a) & (1 << <u32>(enc & 7))) != 0;
}

// The exit of L2's VMREAD/VMWRITE (vmcs02 current): reflected with the
// processor's exit information (reflect.ts gives a register operand
// qualification 0, 28.2.1), or performed for L1.
export function handle(vcpu: Vcpu, reason: u32): i32 {
  if (l1Wants(vcpu, reason)) return reflect.reflect(vcpu, reason);
  reflect.countL0(vcpu);
  return emulate(vcpu, reason);
}

// Perform it (l1Wants was false; vmcs02 current).
function emulate(vcpu: Vcpu, reason: u32): i32 {
  const cr2 = vcpu.cr2();
  let r = common.checkNonRoot(vcpu);
  if (r == common.PROCEED) {
    const link = state.get(vcpu.nested, V.VMCS_LINK_POINTER);
    r = reason == V.EXIT_REASON_VMREAD ? vmrw.vmreadLinked(vcpu, link) : vmrw.vmwriteLinked(vcpu, link);
  }
  // Its fault (#GP(0) at CPL > 0, #GP/#SS/#PF of the memory operand) is
  // L2's exception, or L1's exit when L1's exception bitmap wants it.
  return reflect.injectedException(vcpu, r, cr2);
}

