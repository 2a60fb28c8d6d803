// The MSR lists of vmcs12 (SDM Vol. 3C 25.7.2, 25.8.2, 27.4, 28.4, 28.6):
// the VM-entry MSR-load list (loaded into L2's state), the VM-exit
// MSR-store list (L2's values saved) and the VM-exit MSR-load list (loaded
// into L1's state). Each entry is 16 bytes in L1's memory: MSR index (bits
// 31:0), reserved (63:32, must be 0), data (127:64).
//
// An MSR is loaded as WRMSR at CPL 0 would write it, with the SDM's
// exclusions (27.4: FS_BASE, GS_BASE, IA32_SMM_MONITOR_CTL, the x2APIC
// range 800H-8FFH, and any MSR whose WRMSR would #GP fail the load). The
// MSRs a guest sees are either emulated (kernel/vm/exit/msr.ts) or passed
// through to the processor (vmcs01.ts's bitmap): the latter are written to
// the processor after the same checks the processor would make, so a bad
// value never reaches a WRMSR in the hypervisor.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as msrExit from "../vm/exit/msr";

function canonical(v: u64): bool {
  const top = <i64>v >> 47;
  return top == 0 || top == -1;
}

// Write one MSR for the guest level whose VMCS is current. False: the
// load fails (27.4: the entry index goes into the exit qualification).
function load(msr: u32, v: u64): bool {
  switch (msr) {
    case V.MSR_IA32_FS_BASE:
    case V.MSR_IA32_GS_BASE:
    case V.MSR_IA32_SMM_MONITOR_CTL:
      return false;
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
  if (msr >= 0x800 && msr <= 0x8ff) return false;
  return msrExit.write(msr, v);
}

// Read one MSR of the guest level whose VMCS is current (MSR-store list).
function store(msr: u32): bool {
  switch (msr) {
    case V.MSR_IA32_KERNEL_GS_BASE:
    case V.MSR_IA32_LSTAR:
    case V.MSR_IA32_CSTAR:
    case V.MSR_IA32_STAR:
    case V.MSR_IA32_FMASK:
    case V.MSR_IA32_TSC_AUX:
      msrExit.value = cpu.rdmsr(msr);
      return true;
    case V.MSR_IA32_FS_BASE: msrExit.value = vmx.vmread(V.GUEST_FS_BASE); return true;
    case V.MSR_IA32_GS_BASE: msrExit.value = vmx.vmread(V.GUEST_GS_BASE); return true;
    case V.MSR_IA32_SYSENTER_CS: msrExit.value = vmx.vmread(V.GUEST_IA32_SYSENTER_CS); return true;
    case V.MSR_IA32_SYSENTER_ESP: msrExit.value = vmx.vmread(V.GUEST_IA32_SYSENTER_ESP); return true;
    case V.MSR_IA32_SYSENTER_EIP: msrExit.value = vmx.vmread(V.GUEST_IA32_SYSENTER_EIP); return true;
  }
  return msrExit.read(msr);
}

// Process a load list of `count` entries at gpa. Returns 0 when all were
// loaded, else the 1-based index of the entry that failed.
export function loadList(gpa: u64, count: u32): u32 {
  for (let i: u32 = 0; i < count; i++) {
    const e = gpa + <u64>i * 16;
    if (!guestmem.isRam(e, 16)) return i + 1;
    const lo = guestmem.read64(e);
    if ((lo >> 32) != 0) return i + 1; // reserved bits 63:32
    if (!load(<u32>lo, guestmem.read64(e + 8))) return i + 1;
  }
  return 0;
}

// Process the VM-exit MSR-store list. Returns 0, or the 1-based index of
// an entry that could not be stored (a VMX abort, 28.7).
export function storeList(gpa: u64, count: u32): u32 {
  for (let i: u32 = 0; i < count; i++) {
    const e = gpa + <u64>i * 16;
    if (!guestmem.isRam(e, 16)) return i + 1;
    const lo = guestmem.read64(e);
    if ((lo >> 32) != 0 || <u32>lo == V.MSR_IA32_SMM_MONITOR_CTL || !store(<u32>lo)) return i + 1;
    guestmem.write64(e + 8, msrExit.value);
  }
  return 0;
}
