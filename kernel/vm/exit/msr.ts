// RDMSR/WRMSR exits (reasons 31, 32; SDM Vol. 3C 26.1.3, 25.6.9): the MSR
// bitmap lets the pass-through MSRs run natively, so only emulated MSRs and
// unknown ones arrive here. Unknown MSRs raise #GP(0), as on a processor
// that does not implement them (SDM Vol. 2B RDMSR/WRMSR).
import * as cpu from "../../hw/cpu";
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as lapic from "../../apic/lapic";
import * as vcpu from "../vcpu";
import * as events from "../events";
import * as nested from "../../nested/state";
import * as nestedCaps from "../../nested/caps";
import { RESUME } from "../exits";

const MSR_MTRRCAP: u32 = 0xfe;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;

// The guest's view of the emulated MSRs that have state.
let mtrrDefType: u64 = 0xc06; // MTRRs enabled, fixed ranges enabled, default WB
let miscEnable: u64 = 0;
// L1's IA32_FEATURE_CONTROL with nested=on (SDM Vol. 3C 24.7, Vol. 4 Table
// 2-2): 0 at reset, as firmware would find it; kernel/nested/vmxon.ts reads it.
export let featureControl: u64 = 0;

export function reset(): void {
  mtrrDefType = 0xc06;
  featureControl = 0;
  miscEnable = cpu.rdmsr(V.MSR_IA32_MISC_ENABLE);
}

// Value of an emulated MSR; false when the guest gets #GP.
export let value: u64 = 0;
export function read(msr: u32): bool {
  switch (msr) {
    case V.MSR_IA32_APIC_BASE: value = lapic.apicBaseRead(); return true;
    // nested=off: locked, VMX off inside and outside SMX (VMX is not offered).
    case V.MSR_IA32_FEATURE_CONTROL: value = nested.enabled ? featureControl : V.FEATURE_CONTROL_LOCK; return true;
    case V.MSR_IA32_MISC_ENABLE: value = miscEnable; return true;
    case V.MSR_IA32_TIME_STAMP_COUNTER: value = cpu.rdtsc() + vmx.vmread(V.TSC_OFFSET); return true;
    // No variable ranges, fixed ranges supported, WC not (SDM Vol. 3A 11.11.2.1).
    case MSR_MTRRCAP: value = 1 << 8; return true;
    case MSR_MTRR_DEF_TYPE: value = mtrrDefType; return true;
    case V.MSR_IA32_EFER: value = vmx.vmread(V.GUEST_IA32_EFER); return true;
  }
  // The VMX capability MSRs exist when VMX is offered (nested=on; A.1).
  if (nested.enabled && nestedCaps.readMsr(msr)) {
    value = nestedCaps.value;
    return true;
  }
  return false;
}

export function write(msr: u32, v: u64): bool {
  switch (msr) {
    case V.MSR_IA32_APIC_BASE: return lapic.apicBaseWrite(v);
    case V.MSR_IA32_FEATURE_CONTROL: return nested.enabled && writeFeatureControl(v);
    case V.MSR_IA32_MISC_ENABLE: return true; // accepted, not applied
    case MSR_MTRR_DEF_TYPE:
      // Bits 7:0 type (0, 1, 4, 5, 6), 10 FE, 11 E; the rest reserved.
      if ((v & ~<u64>0xcff) != 0) return false;
      const t = <u32>v & 0xff;
      if (t != 0 && t != 1 && t != 4 && t != 5 && t != 6) return false;
      mtrrDefType = v;
      return true;
    case V.MSR_IA32_EFER: return writeEfer(v);
  }
  return false;
}

// IA32_FEATURE_CONTROL with nested=on: writable until the lock bit is set
// (then #GP, as on the processor). Only the lock bit and bit 2 (VMX outside
// SMX) may be set: SMX, SGX and LMCE are not offered, so their enables are
// reserved (#GP). With nested=off the MSR reads locked and writes are #GP.
function writeFeatureControl(v: u64): bool {
  if ((featureControl & V.FEATURE_CONTROL_LOCK) != 0) return false;
  if ((v & ~(V.FEATURE_CONTROL_LOCK | V.FEATURE_CONTROL_VMX_OUTSIDE_SMX)) != 0) return false;
  featureControl = v;
  return true;
}

// EFER writes (SDM Vol. 3A 2.2.1, Vol. 4): SCE (0), LME (8), LMA (10,
// read-only: kept), NXE (11) are what a guest may set. LME may not change
// while paging is on.
function writeEfer(v: u64): bool {
  const allowed: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);
  if ((v & ~allowed) != 0) return false;
  const old = vmx.vmread(V.GUEST_IA32_EFER);
  const pg = (vmx.vmread(V.GUEST_CR0) & V.X86_CR0_PG) != 0;
  if (pg && ((v ^ old) & (1 << 8)) != 0) return false;
  vmx.vmwrite(V.GUEST_IA32_EFER, (v & ~(<u64>1 << 10)) | (old & (1 << 10)));
  return true;
}

export function handleRead(reason: u32): i32 {
  if (!read(<u32>vcpu.reg(vcpu.RCX))) {
    events.injectGP();
    return RESUME;
  }
  vcpu.setReg(vcpu.RAX, value & 0xffffffff);
  vcpu.setReg(vcpu.RDX, value >> 32);
  events.skipInstruction();
  return RESUME;
}

export function handleWrite(reason: u32): i32 {
  const v = (vcpu.reg(vcpu.RDX) << 32) | (vcpu.reg(vcpu.RAX) & 0xffffffff);
  if (!write(<u32>vcpu.reg(vcpu.RCX), v)) {
    events.injectGP();
    return RESUME;
  }
  events.skipInstruction();
  return RESUME;
}
