// What every emulated VMX instruction checks first, in the order of the
// Operation sections of SDM Vol. 3C 31.3, and the views of L1's state those
// checks need.
//
// All VMX instructions but VMXON begin with
//   IF (register operand) or (not in VMX operation) or (CR0.PE = 0) or
//      (RFLAGS.VM = 1) or (IA32_EFER.LMA = 1 and CS.L = 0)
//     THEN #UD;
//   ELSIF in VMX non-root operation THEN VMexit;
//   ELSIF CPL > 0 THEN #GP(0);
// and VMXON with the same #UD test, "not in VMX operation" replaced by
// CR4.VMXE = 0 (its #GP and VM-exit tests come later: vmxon.ts). A
// register operand where the instruction has only a memory
// form never reaches us: #UD has priority over the VM exit (26.1.1), and the
// instruction-information field reports such operands as memory (28.2.5).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as events from "../vm/events";
import * as guestmem from "../vm/guestmem";
import * as ident from "../cpu/ident";
import { RESUME } from "../vm/exits";
import * as caps from "./caps";
import * as reflect from "./reflect";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";

// check() results other than a handler result (RESUME/STOP are 0 and 1).
export const PROCEED: i32 = -1;

// L1's view of a control register: the bits it owns from the real value,
// the bits the hypervisor owns (mask) from the read shadow (25.6.6).
export function guestCr0(): u64 {
  const mask = vmx.vmread(V.CR0_GUEST_HOST_MASK);
  return (vmx.vmread(V.GUEST_CR0) & ~mask) | (vmx.vmread(V.CR0_READ_SHADOW) & mask);
}
export function guestCr4(): u64 {
  const mask = vmx.vmread(V.CR4_GUEST_HOST_MASK);
  return (vmx.vmread(V.GUEST_CR4) & ~mask) | (vmx.vmread(V.CR4_READ_SHADOW) & mask);
}

export function efer(): u64 {
  return vmx.vmread(V.GUEST_IA32_EFER);
}

// What check() reads of L1's state (RFLAGS, whether L1 is in 64-bit mode)
// is read again where the instruction needs it (vmfail.ts, longMode()):
// a VMREAD costs less than a field of the vCPU, a bounds-checked store and
// load.

// The #UD conditions. VMXON does not require VMX operation but CR4.VMXE;
// the others require VMX operation, which implies CR4.VMXE = 1 (cr.ts
// refuses to clear it in VMX operation, 24.8), so it is not read again.
function undefinedOpcode(n: Nested, vmxon: bool): bool {
  if (vmxon) {
    if ((guestCr4() & V.X86_CR4_VMXE) == 0) return true;
  } else if (!n.vmxOn) {
    return true;
  }
  // Real-address mode. vmcs01 never owns CR0.PE (vm/vmcs01.ts cr0Mask
  // leaves PE and PG to L1), so L1's PE is GUEST_CR0's: one VMREAD, not
  // three (vmcs02, current when L2's instruction is being handled, may
  // own it through L1's mask).
  const cr0 = n.inL2 ? guestCr0() : vmx.vmread(V.GUEST_CR0);
  if ((cr0 & V.X86_CR0_PE) == 0) return true;
  if ((vmx.vmread(V.GUEST_RFLAGS) & V.X86_RFLAGS_VM) != 0) return true; // virtual-8086 mode
  // Compatibility mode: IA-32e mode with a 16/32-bit code segment.
  return (efer() & V.X86_EFER_LMA) != 0 && (<u32>vmx.vmread(V.GUEST_CS_ACCESS_RIGHTS) & V.SEG_AR_L) == 0;
}

// "ELSIF in VMX non-root operation THEN VM exit" (SDM Vol. 3C 31.3, every
// VMX instruction): executed by L2, the instruction is L1's VM exit. L2's
// VMX instructions are reflected before they reach these handlers
// (reflect-decide.ts; VMREAD/VMWRITE through shadow12.ts), so this only
// keeps a handler called while L2 runs from doing L1's instruction.
export function exitToL1(vcpu: Vcpu, reason: u32): i32 {
  return reflect.reflect(vcpu, reason);
}

// The checks shared by all VMX instructions but VMXON, in SDM order; for
// VMXON (vmxon = true) only its #UD test. PROCEED, or the handler's result
// after the fault was injected (the instruction does not complete). Every
// VMX instruction handler calls it first.
export function check(vcpu: Vcpu, reason: u32, vmxon: bool): i32 {
  const n = vcpu.nested;
  if (undefinedOpcode(n, vmxon)) {
    events.injectUD();
    return RESUME;
  }
  if (vmxon) return PROCEED;
  if (n.inL2) return exitToL1(vcpu, reason);
  if (events.guestCpl() > 0) {
    events.injectGP();
    return RESUME;
  }
  return PROCEED;
}

// L2's VMREAD/VMWRITE that L0 performs because vmcs12's "VMCS shadowing"
// does not make it exit to L1 (shadow12.ts). The processor made the #UD
// tests in L2 before its VM exit to L0 (#UD has priority over the exit,
// 26.1.1), so what remains of the checks is "ELSIF CPL > 0 THEN #GP(0)".
// (vmcs02 is current: what the instruction reads of the guest's state is
// L2's.)
export function checkNonRoot(vcpu: Vcpu): i32 {
  if (events.guestCpl() > 0) {
    events.injectGP();
    return RESUME;
  }
  return PROCEED;
}

// 64-bit mode of the guest of the current VMCS: IA-32e mode active and CS.L.
export function longMode(): bool {
  return (efer() & V.X86_EFER_LMA) != 0 && (<u32>vmx.vmread(V.GUEST_CS_ACCESS_RIGHTS) & V.SEG_AR_L) != 0;
}

// The SDM's test of a VMXON/VMCS pointer (31.3 VMXON, VMCLEAR, VMPTRLD):
// "addr is not 4KB-aligned or addr sets any bits beyond the
// physical-address width". The width is the one L1's CPUID.80000008H:EAX[7:0]
// reports (the host's: cpuid.ts passes the leaf through); with
// IA32_VMX_BASIC[48] addresses are further limited to 32 bits (A.1).
export function badAddress(addr: u64): bool {
  if ((addr & 0xfff) != 0) return true;
  if (ident.physAddrBits < 64 && (addr >> ident.physAddrBits) != 0) return true;
  if ((caps.basic() & V.VMX_BASIC_PHYS_ADDR_32BIT) != 0 && (addr >> 32) != 0) return true;
  return false;
}

// A VMXON region or VMCS (one page, VMX_BASIC[44:32] = 4096) lies in L1's RAM.
export function inRam(addr: u64): bool {
  return guestmem.isRam(addr, <u64>V.VMCS12_PAGE_SIZE);
}
