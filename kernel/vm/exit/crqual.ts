// The exit qualification of a control-register access (exit 28; SDM Vol.
// 3C 28.2.1, Table 28-3; layout from tools/vmx/table.mjs, V.CR_QUAL_*),
// decoded here for all who read it: L0's handler (cr.ts), the decision
// whether L1 wants an L2 exit (nested/reflect-decide.ts) and L0's own
// completion of one (nested/l2exit.ts). Each part is a value computed from
// the qualification; nothing is kept between calls.
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import { Vcpu } from "../vcpu";

// The control register (0 for CLTS and LMSW).
@inline export function cr(q: u32): u32 {
  return (q & V.CR_QUAL_CR_MASK) >> V.CR_QUAL_CR_SHIFT;
}

// V.CR_ACCESS_MOV_TO_CR, _MOV_FROM_CR, _CLTS or _LMSW.
@inline export function access(q: u32): u32 {
  return (q & V.CR_QUAL_ACCESS_MASK) >> V.CR_QUAL_ACCESS_SHIFT;
}

// MOV to/from CR: the general register, in hardware order (vcpu.gpr).
@inline export function reg(q: u32): u32 {
  return (q & V.CR_QUAL_REG_MASK) >> V.CR_QUAL_REG_SHIFT;
}

// LMSW: its 16-bit source operand (it loads bits 3:0 of it into CR0, SDM
// Vol. 2A LMSW).
@inline export function lmswSource(q: u32): u64 {
  return <u64>((q & V.CR_QUAL_LMSW_SOURCE_MASK) >> V.CR_QUAL_LMSW_SOURCE_SHIFT);
}

// MOV to CR: the value written. The operand is 64 bits in 64-bit mode and
// 32 bits otherwise (SDM Vol. 2B "MOV—Move to/from Control Registers"), so
// outside 64-bit mode (IA-32e mode active and CS.L, Vol. 3A 2.2.1) what is
// in the upper half of the register is not part of it.
export function source(vcpu: Vcpu, q: u32): u64 {
  const v = vcpu.gpr(reg(q));
  const long = (vmx.vmread(V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0 &&
    (<u32>vmx.vmread(V.GUEST_CS_ACCESS_RIGHTS) & V.SEG_AR_L) != 0;
  return long ? v : v & 0xffffffff;
}
