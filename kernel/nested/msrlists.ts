// The MSR lists of vmcs12 (SDM Vol. 3C 25.7.2, 25.8.2, 27.4, 28.4, 28.6):
// the VM-entry MSR-load list (loaded into L2's state), the VM-exit
// MSR-store list (L2's values saved) and the VM-exit MSR-load list (loaded
// into L1's state). Each entry is 16 bytes in L1's memory: MSR index (bits
// 31:0), reserved (63:32, must be 0), data (127:64). Any count up to the
// recommended maximum (IA32_VMX_MISC bits 27:25) is processed in full.
//
// An MSR is loaded as WRMSR at CPL 0 would write it and stored as RDMSR
// would read it, with the SDM's exclusions: loading FS_BASE or GS_BASE,
// any MSR of the x2APIC range 800H-8FFH (bits 31:8 = 000008H, whatever the
// APIC's mode), an MSR writable only in SMM (IA32_SMM_MONITOR_CTL) or
// readable only in SMM (IA32_SMBASE), bits 63:32 of the index dword not 0,
// and every MSR whose WRMSR/RDMSR would #GP. The MSRs a guest sees are
// emulated (kernel/vm/exit/msr.ts, which also keeps the VMCS-held ones:
// EFER, PAT, DEBUGCTL, the TSC through the offset), held in the VMCS
// (SYSENTER) or passed through to the processor (vmcs01.ts's bitmap): the
// latter are written to the processor after the checks the processor
// would make, so a bad value never reaches a WRMSR in the hypervisor.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as vmcs01 from "../vm/vmcs01";
import * as guestmem from "../vm/guestmem";
import * as msrExit from "../vm/exit/msr";
import * as tsc from "../vm/tsc";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";

function canonical(v: u64): bool {
  const top = <i64>v >> 47;
  return top == 0 || top == -1;
}

// 26.4 / 28.6: MSRs no MSR-load list may load, whatever the value.
function neverLoaded(msr: u32): bool {
  return msr == V.MSR_IA32_FS_BASE || msr == V.MSR_IA32_GS_BASE || (msr >> 8) == 0x8 ||
    msr == V.MSR_IA32_SMM_MONITOR_CTL;
}

// Write one MSR for the guest level whose VMCS is current. False: the
// load fails.
function load(vcpu: Vcpu, msr: u32, v: u64): bool {
  if (neverLoaded(msr)) return false;
  switch (msr) {
    case V.MSR_IA32_KERNEL_GS_BASE:
    case V.MSR_IA32_LSTAR:
    case V.MSR_IA32_CSTAR:
      if (!canonical(v)) return false;
      cpu.wrmsr(msr, v);
      return true;
    case V.MSR_IA32_STAR:
      cpu.wrmsr(msr, v);
      return true;
    case V.MSR_IA32_FMASK:
    case V.MSR_IA32_TSC_AUX:
      if ((v >> 32) != 0) return false;
      cpu.wrmsr(msr, v);
      return true;
    case V.MSR_IA32_SYSENTER_CS:
      vmx.vmwrite(V.GUEST_IA32_SYSENTER_CS, v & 0xffffffff);
      return true;
    case V.MSR_IA32_SYSENTER_ESP:
    case V.MSR_IA32_SYSENTER_EIP:
      if (!canonical(v)) return false;
      vmx.vmwrite(msr == V.MSR_IA32_SYSENTER_ESP ? V.GUEST_IA32_SYSENTER_ESP : V.GUEST_IA32_SYSENTER_EIP, v);
      return true;
  }
  return msrExit.write(vcpu, msr, v);
}

// Can one MSR of L2 (vmcs02 current) be stored by the MSR-store list
// (28.4)? Its value is then stored().
function storable(vcpu: Vcpu, msr: u32): bool {
  if ((msr >> 8) == 0x8 || msr == V.MSR_IA32_SMBASE) return false;
  if (vmcs01.isUnswitched(msr)) return true;
  switch (msr) {
    case V.MSR_IA32_FS_BASE:
    case V.MSR_IA32_GS_BASE:
    case V.MSR_IA32_SYSENTER_CS:
    case V.MSR_IA32_SYSENTER_ESP:
    case V.MSR_IA32_SYSENTER_EIP:
    case V.MSR_IA32_TIME_STAMP_COUNTER:
      return true;
  }
  return msrExit.readable(vcpu, msr);
}

function stored(vcpu: Vcpu, msr: u32): u64 {
  // The pass-through MSRs VMX does not switch hold L2's values in the
  // processor.
  if (vmcs01.isUnswitched(msr)) return cpu.rdmsr(msr);
  switch (msr) {
    case V.MSR_IA32_FS_BASE: return vmx.vmread(V.GUEST_FS_BASE);
    case V.MSR_IA32_GS_BASE: return vmx.vmread(V.GUEST_GS_BASE);
    case V.MSR_IA32_SYSENTER_CS: return vmx.vmread(V.GUEST_IA32_SYSENTER_CS);
    case V.MSR_IA32_SYSENTER_ESP: return vmx.vmread(V.GUEST_IA32_SYSENTER_ESP);
    case V.MSR_IA32_SYSENTER_EIP: return vmx.vmread(V.GUEST_IA32_SYSENTER_EIP);
    // The processor's TSC, as RDMSR reads it outside VMX non-root
    // operation: L1's, without vmcs12's offset.
    case V.MSR_IA32_TIME_STAMP_COUNTER: return tsc.read(vcpu, true);
  }
  return msrExit.read(vcpu, msr);
}

// EFER and PAT that the VM-entry list loaded into vmcs02 before one of its
// entries failed stay loaded on L1's processor (27.8: state is loaded as
// on a VM exit, which keeps them unless vmcs12's exit controls load them).
// A vCPU's (vcpu.nested.msrCarry, embedded in the Nested), from the
// failing entry list to carryToL1 in the same exit.
@unmanaged export class MsrCarry {
  hasEfer: bool = false;
  hasPat: bool = false;
  efer: u64 = 0;
  pat: u64 = 0;
  clear(): void {
    this.hasEfer = false;
    this.hasPat = false;
  }
}

// Process a load list of `count` entries at gpa into the level whose VMCS
// is current (l2: vmcs02, the VM-entry list). Returns 0 when all were
// loaded, else the 1-based index of the entry that failed.
export function loadList(vcpu: Vcpu, gpa: u64, count: u32, l2: bool): u32 {
  if (count == 0) return 0;
  const carry = vcpu.nested.msrCarry;
  carry.clear();
  msrExit.setLoadingL2(vcpu, l2);
  let failed: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const e = gpa + <u64>i * 16;
    // The entry checks made sure the list lies below MAXPHYADDR (27.2.1.2);
    // what is not L1's RAM reads as all ones, which fails bits 63:32.
    if (!guestmem.isRam(e, 16)) {
      failed = i + 1;
      break;
    }
    const lo = guestmem.read64(e);
    const msr = <u32>lo;
    if ((lo >> 32) != 0 || !load(vcpu, msr, guestmem.read64(e + 8))) {
      failed = i + 1;
      break;
    }
    if (l2 && msr == V.MSR_IA32_EFER) {
      carry.hasEfer = true;
      carry.efer = vmx.vmread(V.GUEST_IA32_EFER);
    } else if (l2 && msr == V.MSR_IA32_PAT) {
      carry.hasPat = true;
      carry.pat = vmx.vmread(V.GUEST_IA32_PAT);
    }
  }
  msrExit.setLoadingL2(vcpu, false);
  return failed;
}

// After a failed VM-entry list, vmcs01 current again: what the list loaded
// into EFER and PAT before the failing entry is L1's now.
export function carryToL1(n: Nested): void {
  const carry = n.msrCarry;
  if (carry.hasEfer) vmx.vmwrite(V.GUEST_IA32_EFER, carry.efer);
  if (carry.hasPat) vmx.vmwrite(V.GUEST_IA32_PAT, carry.pat);
  carry.clear();
}

// Process the VM-exit MSR-store list (vmcs02 current). Returns 0, or the
// 1-based index of an entry that could not be stored (a VMX abort, 28.7).
export function storeList(vcpu: Vcpu, gpa: u64, count: u32): u32 {
  for (let i: u32 = 0; i < count; i++) {
    const e = gpa + <u64>i * 16;
    if (!guestmem.isRam(e, 16)) return i + 1;
    const lo = guestmem.read64(e);
    if ((lo >> 32) != 0 || !storable(vcpu, <u32>lo)) return i + 1;
    guestmem.write64(e + 8, stored(vcpu, <u32>lo));
  }
  return 0;
}
