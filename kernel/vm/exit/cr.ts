// Control-register exits (reason 28; SDM Vol. 3C 26.1.3, qualification in
// 28.2.1 Table 28-3): writes that change CR0/CR4 bits the host owns, and
// every CR8 access (the guest's TPR lives in its virtual local APIC, never
// in the physical one).
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as caps from "../../vmx/caps";
import * as lapic from "../../apic/lapic";
import * as cpu from "../../hw/cpu";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import * as vmcs01 from "../vmcs01";
import * as events from "../events";
import * as crqual from "./crqual";
import { RESUME, stop } from "../exits";
import * as config from "../config";
import * as print from "../../lib/print";
import * as nesting from "../nesting";

function longMode(): bool {
  return (vmx.vmread(V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0;
}

// MOV to CR0 (SDM Vol. 2B MOV to CR; Vol. 3A 2.5): reserved bits #GP, PG
// without PE #GP, NW without CD #GP. The guest sees what it wrote; the
// processor runs with VMX's fixed bits added.
function writeCr0(vcpu: Vcpu, v: u64): bool {
  if ((v >> 32) != 0) return false;
  // In VMX operation CR0 must stay inside the fixed bits offered to L1
  // (SDM Vol. 3C 24.8: MOV to CR0 that violates them is #GP).
  if (!nesting.cr0Allowed(vcpu, v)) return false;
  if ((v & V.X86_CR0_PG) != 0 && (v & V.X86_CR0_PE) == 0) return false;
  if ((v & V.X86_CR0_NW) != 0 && (v & V.X86_CR0_CD) == 0) return false;
  // Clearing PG while CR4.PCIDE = 1 is #GP(0) (SDM Vol. 2B MOV to CR0).
  if ((v & V.X86_CR0_PG) == 0 && (vmx.vmread(V.GUEST_CR4) & V.X86_CR4_PCIDE) != 0) return false;
  if (!pagingSwitch(v)) return false;
  vmx.vmwrite(V.CR0_READ_SHADOW, v);
  vmx.vmwrite(V.GUEST_CR0, vmcs01.realCr0(v));
  return true;
}

// PG turned on or off with EFER.LME set activates or deactivates IA-32e
// mode (SDM Vol. 3A 10.8.5: EFER.LMA follows; #GP(0) when CR4.PAE is clear,
// and for clearing PG in 64-bit code, Vol. 2B MOV to CR0). PG is the
// guest's (not in the CR0 guest/host mask): the processor does this itself
// and each VM exit saves LMA into "IA-32e mode guest" (SDM Vol. 3C 28.2).
// A MOV that exits for a host-owned bit in the same write (an AP coming
// from real mode sets PE, NE and PG at once) is emulated here: EFER.LMA in
// the VMCS and the entry control with it. False: #GP.
function pagingSwitch(v: u64): bool {
  const on = (v & V.X86_CR0_PG) != 0;
  if (on == ((vmx.vmread(V.GUEST_CR0) & V.X86_CR0_PG) != 0)) return true;
  const efer = vmx.vmread(V.GUEST_IA32_EFER);
  if ((efer & V.X86_EFER_LME) == 0) return true;
  if (on && (vmx.vmread(V.GUEST_CR4) & V.X86_CR4_PAE) == 0) return false;
  if (!on && (vmx.vmread(V.GUEST_CS_ACCESS_RIGHTS) & (1 << 13)) != 0) return false; // CS.L
  vmx.vmwrite(V.GUEST_IA32_EFER, on ? efer | V.X86_EFER_LMA : efer & ~(<u64>V.X86_EFER_LMA));
  const entry = vmx.vmread(V.VM_ENTRY_CONTROL);
  vmcs01.writeControl(V.VM_ENTRY_CONTROL, on ? entry | V.ENTRY_IA32E_MODE_GUEST : entry & ~(<u64>V.ENTRY_IA32E_MODE_GUEST));
  return true;
}

// MOV to CR4: SMXE is never offered, VMXE only with nested=on (CPUID
// shows VMX then); setting what is not offered is #GP, as are bits the
// processor lacks (CR4_FIXED1) and those the hypervisor withholds
// (caps.CR4_WITHHELD: CPUID hides their features). Every other bit the
// guest sets is in the processor's CR4 while it runs (PKE, OSXSAVE, SMEP,
// SMAP, UMIP, FSGSBASE, ...: not in the guest/host mask). In VMX operation CR4.VMXE cannot be cleared
// (SDM Vol. 3C 24.8: #GP).
function writeCr4(vcpu: Vcpu, v: u64): bool {
  if ((v & V.X86_CR4_SMXE) != 0) return false;
  if ((v & V.X86_CR4_VMXE) != 0 && !vcpu.nested.enabled) return false;
  if (!nesting.cr4Allowed(vcpu, v)) return false;
  if ((v & ~caps.cr4Guest() & ~(<u64>V.X86_CR4_VMXE)) != 0) return false;
  // PAE may not be cleared in long mode (SDM Vol. 3A 9.8.5.4).
  if (longMode() && (v & V.X86_CR4_PAE) == 0) return false;
  // PCIDE (an exit for another bit brings it here; otherwise the processor
  // checks it): set only in IA-32e mode and with CR3[11:0] = 0 (SDM Vol. 3A
  // 4.10.1; Vol. 2B MOV to CR4: #GP(0)).
  if ((v & V.X86_CR4_PCIDE) != 0 && (vmx.vmread(V.GUEST_CR4) & V.X86_CR4_PCIDE) == 0 &&
    (!longMode() || (vmx.vmread(V.GUEST_CR3) & 0xfff) != 0)) return false;
  vmx.vmwrite(V.CR4_READ_SHADOW, v);
  vmx.vmwrite(V.GUEST_CR4, vmcs01.realCr4(v));
  return true;
}

export function handle(vcpu: Vcpu, reason: u32): i32 {
  const q = <u32>vmx.vmread(V.EXIT_QUALIFICATION);
  const crn = crqual.cr(q);
  const access = crqual.access(q);
  let ok = true;
  if (access == V.CR_ACCESS_MOV_TO_CR) {
    const v = crqual.source(vcpu, q);
    if (crn == 0) ok = writeCr0(vcpu, v);
    else if (crn == 4) ok = writeCr4(vcpu, v);
    else if (crn == 8) {
      if ((v & ~<u64>0xf) != 0) ok = false; // CR8 bits 63:4 reserved
      else vcpu.apic.write(lapic.REG_TPR, <u32>v << 4, cpu.rdtsc());
    } else return unexpected(vcpu, q);
  } else if (access == V.CR_ACCESS_MOV_FROM_CR) {
    if (crn != 8) return unexpected(vcpu, q);
    vcpu.setGpr(crqual.reg(q), <u64>((vcpu.apic.read(lapic.REG_TPR) >> 4) & 0xf));
  } else if (access == V.CR_ACCESS_CLTS) {
    const shadow = vmx.vmread(V.CR0_READ_SHADOW) & ~(<u64>V.X86_CR0_TS);
    ok = writeCr0(vcpu, shadow);
  } else {
    // LMSW loads CR0 bits 3:0 but cannot clear PE (SDM Vol. 2A LMSW).
    const src = crqual.lmswSource(q);
    const shadow = vmx.vmread(V.CR0_READ_SHADOW);
    const v = (shadow & ~<u64>0xe) | (src & 0xf) | (shadow & 1);
    ok = writeCr0(vcpu, v);
  }
  if (!ok) {
    events.injectGP();
    return RESUME;
  }
  events.skipInstruction();
  return RESUME;
}

function unexpected(vcpu: Vcpu, q: u32): i32 {
  print.str("hv: guest: unexpected control-register exit, qualification ");
  print.hex(q);
  print.nl();
  return stop(vcpu, config.OUTCOME_STOPPED);
}
