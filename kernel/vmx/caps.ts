// The VMX capability MSRs (SDM Vol. 3D Appendix A), read once at bring-up
// and decoded for the boot log. An MSR is read only when the SDM says it
// exists: PROCBASED_CTLS2 needs primary control bit 31 allowed-1 (A.3.3),
// EPT_VPID_CAP needs EPT or VPID allowed-1 (A.10), VMFUNC needs "enable VM
// functions" allowed-1 (A.11); TRUE_* controls need VMX_BASIC bit 55 (A.1).
import * as cpu from "../hw/cpu";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as xstate from "../vm/xstate";

export let basic: u64 = 0; // machine-wide: hardware capability
export let pin: u64 = 0; // machine-wide: hardware capability; allowed-0 in bits 31:0, allowed-1 in 63:32
export let proc: u64 = 0; // machine-wide: hardware capability
export let proc2: u64 = 0; // machine-wide: hardware capability
export let exit: u64 = 0; // machine-wide: hardware capability
export let entry: u64 = 0; // machine-wide: hardware capability
export let misc: u64 = 0; // machine-wide: hardware capability
export let cr0Fixed0: u64 = 0; // machine-wide: hardware capability
export let cr0Fixed1: u64 = 0; // machine-wide: hardware capability
export let cr4Fixed0: u64 = 0; // machine-wide: hardware capability
export let cr4Fixed1: u64 = 0; // machine-wide: hardware capability
export let vmcsEnum: u64 = 0; // machine-wide: hardware capability
export let eptVpidCap: u64 = 0; // machine-wide: hardware capability
export let vmfunc: u64 = 0; // machine-wide: hardware capability
export let hasProc2: bool = false; // machine-wide: hardware capability
export let hasEptVpidCap: bool = false; // machine-wide: hardware capability
export let hasVmfunc: bool = false; // machine-wide: hardware capability
// The revision identifier the kernel writes at offset 0 of its VMCS regions
// (not of its VMXON regions): the processor's, or with the enlightened VMCS
// in use (kernel/vmx/evmcs.ts) the eVMCS version, which is what an eVMCS
// carries there (TLFS HV_VMX_ENLIGHTENED_VMCS VersionNumber).
export let vmcsRevision: u32 = 0; // machine-wide: hardware capability

// CR4 bits no guest of this hypervisor may set even where the processor
// allows them in VMX operation: their features need state the hypervisor
// does not give guests — CET (the CET MSRs and XSAVES supervisor state),
// PKS (IA32_PKRS), Key Locker (LOADIWKEY, its MSRs), user interrupts (their
// MSRs and XSAVES state). CPUID hides the features (exit/cpuid.ts); the
// bits are the hypervisor's in the CR4 guest/host mask and a MOV to CR4
// that sets one is #GP, as for a processor without the feature.
export const CR4_WITHHELD: u64 = V.X86_CR4_CET | V.X86_CR4_PKS | V.X86_CR4_KL | V.X86_CR4_UINTR;

// The CR4 bits a guest may set: the processor's CR4_FIXED1 minus the above.
export function cr4Guest(): u64 {
  return cr4Fixed1 & ~CR4_WITHHELD;
}

export function revisionId(): u32 {
  return <u32>basic & 0x7fffffff;
}
// Bits 44:32: bytes to allocate for the VMXON region and VMCSs.
export function regionSize(): u32 {
  return <u32>(basic >> 32) & 0x1fff;
}
// Bit 48: VMXON/VMCS regions must lie below 4 GiB.
export function physAddr32(): bool {
  return ((basic >> 48) & 1) != 0;
}
export function trueControls(): bool {
  return ((basic >> 55) & 1) != 0;
}

function allowed1(ctl: u64): u32 {
  return <u32>(ctl >> 32);
}

export function read(): void {
  basic = cpu.rdmsr(V.MSR_IA32_VMX_BASIC);
  const t = trueControls();
  pin = cpu.rdmsr(t ? V.MSR_IA32_VMX_TRUE_PINBASED_CTLS : V.MSR_IA32_VMX_PINBASED_CTLS);
  proc = cpu.rdmsr(t ? V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS : V.MSR_IA32_VMX_PROCBASED_CTLS);
  exit = cpu.rdmsr(t ? V.MSR_IA32_VMX_TRUE_EXIT_CTLS : V.MSR_IA32_VMX_EXIT_CTLS);
  entry = cpu.rdmsr(t ? V.MSR_IA32_VMX_TRUE_ENTRY_CTLS : V.MSR_IA32_VMX_ENTRY_CTLS);
  misc = cpu.rdmsr(V.MSR_IA32_VMX_MISC);
  cr0Fixed0 = cpu.rdmsr(V.MSR_IA32_VMX_CR0_FIXED0);
  cr0Fixed1 = cpu.rdmsr(V.MSR_IA32_VMX_CR0_FIXED1);
  cr4Fixed0 = cpu.rdmsr(V.MSR_IA32_VMX_CR4_FIXED0);
  cr4Fixed1 = cpu.rdmsr(V.MSR_IA32_VMX_CR4_FIXED1);
  // CR4.PKE only with PKRU among the XSAVE components guests get (XCR0 bit
  // 9, vm/xstate.ts): the register must move with the vCPU and a guest's
  // XSAVE must have a place for it. Withheld like the bits above otherwise
  // (CPUID then hides PKU: exit/cpuid.ts).
  xstate.learn();
  if ((xstate.offered & V.X86_XCR0_PKRU) == 0) cr4Fixed1 &= ~V.X86_CR4_PKE;
  vmcsEnum = cpu.rdmsr(V.MSR_IA32_VMX_VMCS_ENUM);
  hasProc2 = (allowed1(proc) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0;
  proc2 = hasProc2 ? cpu.rdmsr(V.MSR_IA32_VMX_PROCBASED_CTLS2) : 0;
  const p2 = allowed1(proc2);
  hasEptVpidCap = (p2 & (V.PROC2_ENABLE_EPT | V.PROC2_ENABLE_VPID)) != 0;
  eptVpidCap = hasEptVpidCap ? cpu.rdmsr(V.MSR_IA32_VMX_EPT_VPID_CAP) : 0;
  hasVmfunc = (p2 & V.PROC2_ENABLE_VM_FUNCTIONS) != 0;
  vmfunc = hasVmfunc ? cpu.rdmsr(V.MSR_IA32_VMX_VMFUNC) : 0;
  vmcsRevision = revisionId();
}

// The controls the kernel may use from now on: only those in the given
// masks (kernel/vmx/evmcs.ts: the ones an enlightened VMCS can express), as
// if the processor allowed no other; VMCS regions carry `revision`. False
// (nothing changed) if the processor requires a control outside the masks
// (an allowed-0 bit that is 1, A.3).
export function restrict(pinKeep: u32, procKeep: u32, proc2Keep: u32, exitKeep: u32, entryKeep: u32, revision: u32): bool {
  if ((<u32>pin & ~pinKeep) != 0 || (<u32>proc & ~procKeep) != 0 || (<u32>proc2 & ~proc2Keep) != 0 ||
    (<u32>exit & ~exitKeep) != 0 || (<u32>entry & ~entryKeep) != 0) return false;
  pin &= (<u64>pinKeep << 32) | 0xffffffff;
  proc &= (<u64>procKeep << 32) | 0xffffffff;
  proc2 &= (<u64>proc2Keep << 32) | 0xffffffff;
  exit &= (<u64>exitKeep << 32) | 0xffffffff;
  entry &= (<u64>entryKeep << 32) | 0xffffffff;
  hasProc2 = (allowed1(proc) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0;
  if (!hasProc2) proc2 = 0;
  hasVmfunc = (allowed1(proc2) & V.PROC2_ENABLE_VM_FUNCTIONS) != 0;
  if (!hasVmfunc) vmfunc = 0;
  vmcsRevision = revision;
  return true;
}

// Whether control `mask` may be 1 in the given capability MSR value.
export function canSet(ctl: u64, mask: u32): bool {
  return (allowed1(ctl) & mask) == mask;
}

// Print "hv: vmx: <label>:" followed by the names of the set bits of `bits`,
// wrapping long lists onto continuation lines. Bits without a name (the
// "reserved, must be 1" default1 bits of SDM Appendix A.2) are shown
// together as one mask at the end.
function names(label: string, bits: u32, kind: i32): void {
  print.str("hv: vmx: ");
  print.str(label);
  print.str(":");
  let col = 0;
  let unnamed: u32 = 0;
  for (let b: u32 = 0; b < 32; b++) {
    if ((bits & (1 << b)) == 0) continue;
    let n: string;
    switch (kind) {
      case 0: n = V.pinCtlName(b); break;
      case 1: n = V.procCtlName(b); break;
      case 2: n = V.proc2CtlName(b); break;
      case 3: n = V.exitCtlName(b); break;
      default: n = V.entryCtlName(b); break;
    }
    if (n.length == 0) {
      unnamed |= 1 << b;
      continue;
    }
    if (col > 90) {
      print.nl();
      print.str("hv: vmx:   ");
      col = 0;
    }
    print.str(" ");
    print.str(n);
    col += n.length + 1;
  }
  if (unnamed != 0) {
    print.str(" (reserved bits ");
    print.hex(unnamed);
    print.str(")");
  }
  print.nl();
}

function capNames(label: string, value: u64): void {
  print.str("hv: vmx: ");
  print.str(label);
  print.str(":");
  let col = 0;
  for (let b: u32 = 0; b < 64; b++) {
    if (((value >> <u64>b) & 1) == 0) continue;
    const n = V.eptVpidCapName(b);
    if (col > 90) {
      print.nl();
      print.str("hv: vmx:   ");
      col = 0;
    }
    print.str(" ");
    if (n.length == 0) {
      print.str("bit");
      print.dec(b);
      col += 6;
    } else {
      print.str(n);
      col += n.length + 1;
    }
  }
  print.nl();
}

function yesno(label: string, v: bool): void {
  print.str(" ");
  print.str(label);
  print.str(v ? "=yes" : "=no");
}

// The decoded summary printed at bring-up (allowed-1 settings: what the
// processor lets us turn on).
export function report(): void {
  print.str("hv: vmx: basic ");
  print.hex(basic);
  print.str(": revision ");
  print.hex(revisionId());
  print.str(", region ");
  print.dec(regionSize());
  print.str(" bytes, memory type ");
  print.dec(<u32>(basic >> 50) & 0xf);
  if (physAddr32()) print.str(", regions below 4G");
  if (((basic >> 54) & 1) != 0) print.str(", INS/OUTS info");
  if (trueControls()) print.str(", true controls");
  print.nl();
  names("pin-based", allowed1(pin), 0);
  names("processor-based", allowed1(proc), 1);
  if (hasProc2) names("secondary", allowed1(proc2), 2);
  names("exit", allowed1(exit), 3);
  names("entry", allowed1(entry), 4);
  print.str("hv: vmx: misc ");
  print.hex(misc);
  print.str(": preemption timer rate 2^");
  print.dec(<u32>misc & 0x1f);
  print.str(", CR3 targets ");
  print.dec(<u32>(misc >> 16) & 0x1ff);
  print.str(", MSR list max ");
  print.dec(512 * (1 + (<u32>(misc >> 25) & 7)));
  if (((misc >> 29) & 1) != 0) print.str(", VMWRITE to exit-information fields");
  print.nl();
  if (hasEptVpidCap) capNames("EPT/VPID", eptVpidCap);
  const p2 = allowed1(proc2);
  print.str("hv: vmx: features:");
  yesno("EPT", (p2 & V.PROC2_ENABLE_EPT) != 0);
  yesno("VPID", (p2 & V.PROC2_ENABLE_VPID) != 0);
  yesno("unrestricted-guest", (p2 & V.PROC2_UNRESTRICTED_GUEST) != 0);
  yesno("VMFUNC", hasVmfunc);
  yesno("EPTP-switching", (vmfunc & 1) != 0);
  yesno("VMCS-shadowing", (p2 & V.PROC2_VMCS_SHADOWING) != 0);
  yesno("virtual-interrupt-delivery", (p2 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0);
  yesno("posted-interrupts", (allowed1(pin) & V.PIN_PROCESS_POSTED_INTERRUPTS) != 0);
  yesno("preemption-timer", (allowed1(pin) & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0);
  print.nl();
}
