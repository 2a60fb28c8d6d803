// RDMSR/WRMSR exits (reasons 31, 32; SDM Vol. 3C 26.1.3, 25.6.9): the MSR
// bitmap lets the pass-through MSRs run natively, so only emulated MSRs and
// unknown ones arrive here. Unknown MSRs raise #GP(0), as on a processor
// that does not implement them (SDM Vol. 2B RDMSR/WRMSR). Every MSR the
// offered CPUID makes architectural (SDM Vol. 4 Table 2-2) is either here,
// passed through (vmcs01.ts) or kept in the VMCS; features whose MSRs are
// not implemented are hidden in CPUID (cpuid.ts). docs/guest-interface.md
// lists each MSR with its decision.
//
// The same functions serve L2's accesses that L1 lets through (vmcs02
// current: L2 reaches L1's processor, SDM 26.3) and the VM-entry/VM-exit
// MSR-load lists (nested/msrlists.ts: "as WRMSR would", 26.4, 28.6).
import * as cpu from "../../hw/cpu";
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as ident from "../../cpu/ident";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import * as events from "../events";
import * as tsc from "../tsc";
import * as nesting from "../nesting";
import * as hyperv from "./hyperv";
import { RESUME } from "../exits";
import * as lapic from "../../apic/lapic";
import * as irq from "../irq";
import * as apicv from "../apicv";

// IA32_MTRRCAP (SDM Vol. 3A 11.11.2.1): no variable ranges, fixed ranges
// (FIX, bit 8) and write-combining (WC, bit 10) supported, no SMRR. Under
// EPT the guest's MTRRs do not decide memory types (29.3.7), so they are
// storage that keeps what a valid WRMSR wrote.
const MTRRCAP: u64 = (1 << 10) | (1 << 8);
const MTRR_FIXED_COUNT: i32 = 11; // 250H, 258H, 259H, 268H-26FH

// The guest's view of the emulated MSRs that have state: one per vCPU
// (vcpu.msrs).
@unmanaged export class MsrState {
  mtrrDefType: u64 = 0xc06; // MTRRs enabled, fixed ranges enabled, default WB
  miscEnable: u64 = 0;
  // L1's IA32_FEATURE_CONTROL with nested=on (SDM Vol. 3C 24.7, Vol. 4
  // Table 2-2): 0 at reset, as firmware would find it; kernel/nested/
  // vmxon.ts reads it.
  featureControl: u64 = 0;
  // Set by nested/msrlists.ts while the VM-entry MSR-load list is loaded
  // into L2's state (vmcs02 current, L2 not yet running).
  loadingL2: bool = false;
  // The fixed-range MTRRs (fixedMtrr() numbers them) are laid out here.
  private fixed0: u64 = 0;
  private fixed1: u64 = 0;
  private fixed2: u64 = 0;
  private fixed3: u64 = 0;
  private fixed4: u64 = 0;
  private fixed5: u64 = 0;
  private fixed6: u64 = 0;
  private fixed7: u64 = 0;
  private fixed8: u64 = 0;
  private fixed9: u64 = 0;
  private fixed10: u64 = 0;

  @inline mtrrFixed(i: i32): usize {
    return changetype<usize>(this) + offsetof<MsrState>("fixed0") + (<usize>i << 3);
  }

  reset(): void {
    learn();
    this.mtrrDefType = 0xc06;
    for (let i = 0; i < MTRR_FIXED_COUNT; i++) store<u64>(this.mtrrFixed(i), 0x0606060606060606); // WB, as firmware leaves them
    this.featureControl = 0;
    this.miscEnable = cpu.rdmsr(V.MSR_IA32_MISC_ENABLE);
    this.loadingL2 = false;
  }
}

let hasTscAdjust: bool = false; // machine-wide: CPUID.(EAX=07H,ECX=0):EBX[1], passed through
// IA32_DEBUGCTL bits the guest's processor has (SDM Vol. 3B 18.4.1, Vol. 4
// Table 2-2): LBR (0) and BTF (1) on every processor since P6, RTM (15)
// where CPUID.(EAX=07H,ECX=0):EBX.RTM[11] (passed through) says so. Not TR,
// BTS, BTINT and the BTS_OFF bits (branch trace store needs the DS save
// area: CPUID.1:EDX.DS is hidden), not the FREEZE bits (no performance
// monitoring: CPUID.0AH is 0, PDCM hidden): reserved for the guest, #GP.
// The VM-entry check on vmcs12's guest IA32_DEBUGCTL uses the same set.
export let debugctlDefined: u64 = V.X86_DEBUGCTL_LBR | V.X86_DEBUGCTL_BTF; // machine-wide: from the processor's CPUID

// What the processor has (it does not change; learnt at each vCPU's reset).
function learn(): void {
  let ebx7: u32 = 0;
  if (ident.maxBasicLeaf >= 7) {
    ident.query(7, 0);
    ebx7 = ident.ebx();
  }
  hasTscAdjust = (ebx7 & (1 << 1)) != 0;
  debugctlDefined = V.X86_DEBUGCTL_LBR | V.X86_DEBUGCTL_BTF | ((ebx7 & (1 << 11)) != 0 ? V.X86_DEBUGCTL_RTM : 0);
}

export function setLoadingL2(vcpu: Vcpu, v: bool): void {
  vcpu.msrs.loadingL2 = v;
}

// Which VMCS holds the state of the level whose MSR is accessed: vmcs02
// while L2 runs or its entry list is loaded.
function onVmcs02(vcpu: Vcpu): bool {
  return vcpu.nested.inL2 || vcpu.msrs.loadingL2;
}

// Index into mtrrFixed, or -1 (also the order snapshot/ saves them in).
export function fixedMtrr(msr: u32): i32 {
  if (msr == V.MSR_IA32_MTRR_FIX64K_00000) return 0;
  if (msr == V.MSR_IA32_MTRR_FIX16K_80000) return 1;
  if (msr == V.MSR_IA32_MTRR_FIX16K_A0000) return 2;
  if (msr >= V.MSR_IA32_MTRR_FIX4K_C0000 && msr < V.MSR_IA32_MTRR_FIX4K_C0000 + 8) return <i32>(msr - V.MSR_IA32_MTRR_FIX4K_C0000) + 3;
  return -1;
}

// A memory type the MTRRs take (11.11.2: UC 0, WC 1, WT 4, WP 5, WB 6).
function mtrrType(t: u32): bool {
  return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

// A valid IA32_PAT value (SDM Vol. 3A 11.12.2): every byte a memory type
// the PAT encodes (UC 0, WC 1, WT 4, WP 5, WB 6, UC- 7).
export function patOk(v: u64): bool {
  for (let i: u64 = 0; i < 64; i += 8) {
    const t = <u32>(v >> i) & 0xff;
    if (t != 0 && t != 1 && t != 4 && t != 5 && t != 6 && t != 7) return false;
  }
  return true;
}

// Can the guest read emulated MSR msr? False: RDMSR is #GP(0).
@inline export function readable(vcpu: Vcpu, msr: u32): bool {
  switch (msr) {
    case V.MSR_IA32_APIC_BASE:
    case V.MSR_IA32_FEATURE_CONTROL:
    case V.MSR_IA32_MISC_ENABLE:
    case V.MSR_IA32_TIME_STAMP_COUNTER:
    case V.MSR_IA32_PLATFORM_ID:
    case V.MSR_IA32_BIOS_SIGN_ID:
    case V.MSR_IA32_MTRRCAP:
    case V.MSR_IA32_MTRR_DEF_TYPE:
    case V.MSR_IA32_EFER:
    case V.MSR_IA32_PAT:
    case V.MSR_IA32_DEBUGCTL:
      return true;
    case V.MSR_IA32_TSC_ADJUST: return hasTscAdjust;
    // Architectural with VMX (CPUID.1:ECX[5]).
    case V.MSR_IA32_SMM_MONITOR_CTL: return vcpu.nested.enabled;
  }
  if (fixedMtrr(msr) >= 0) return true;
  // The Hyper-V synthetic MSRs with hyperv=on (exit/hyperv.ts).
  if (vcpu.vm.hvOffered && hyperv.readable(msr)) return true;
  // The VMX capability MSRs exist when VMX is offered (nested=on; A.1):
  // which, nested/caps.ts says (vm/nesting.ts).
  return vcpu.nested.enabled && nesting.vmxMsrExists(vcpu, msr);
}

// The value of emulated MSR msr, which readable() accepted.
export function read(vcpu: Vcpu, msr: u32): u64 {
  switch (msr) {
    case V.MSR_IA32_APIC_BASE: return vcpu.apic.apicBaseRead();
    // nested=off: locked, VMX off inside and outside SMX (VMX is not offered).
    case V.MSR_IA32_FEATURE_CONTROL: return vcpu.nested.enabled ? vcpu.msrs.featureControl : V.FEATURE_CONTROL_LOCK;
    case V.MSR_IA32_MISC_ENABLE: return vcpu.msrs.miscEnable;
    // RDMSR of IA32_TSC returns TSC + the current VMCS's offset (26.3: L2
    // sees vmcs12's offset added when L1 uses offsetting).
    case V.MSR_IA32_TIME_STAMP_COUNTER: return cpu.rdtsc() + vmx.vmread(V.TSC_OFFSET);
    case V.MSR_IA32_TSC_ADJUST: return tsc.readAdjust(vcpu);
    // No platform ID bits (52:50), microcode revision 0 (bits 63:32).
    case V.MSR_IA32_PLATFORM_ID: return 0;
    case V.MSR_IA32_BIOS_SIGN_ID: return 0;
    case V.MSR_IA32_MTRRCAP: return MTRRCAP;
    case V.MSR_IA32_MTRR_DEF_TYPE: return vcpu.msrs.mtrrDefType;
    case V.MSR_IA32_EFER: return vmx.vmread(V.GUEST_IA32_EFER);
    case V.MSR_IA32_PAT: return vmx.vmread(V.GUEST_IA32_PAT);
    case V.MSR_IA32_DEBUGCTL: return vmx.vmread(V.GUEST_IA32_DEBUGCTL);
    // Dual-monitor treatment is not offered (IA32_VMX_BASIC bit 49 = 0), so
    // it reads 0 (not valid).
    case V.MSR_IA32_SMM_MONITOR_CTL: return 0;
  }
  const f = fixedMtrr(msr);
  if (f >= 0) return load<u64>(vcpu.msrs.mtrrFixed(f));
  // (Through a reference: inlined here, it made every emulated RDMSR 10
  // ticks slower.)
  if (vcpu.vm.hvOffered && hyperv.readable(msr)) return hyperv.readRef(vcpu, msr);
  // A VMX capability MSR (readable() asked nested/caps.ts whether it is one).
  return nesting.vmxMsrValue(vcpu, msr);
}

export function write(vcpu: Vcpu, msr: u32, v: u64): bool {
  switch (msr) {
    case V.MSR_IA32_APIC_BASE: return apicv.apicBaseWritten(vcpu, vcpu.apic.apicBaseWrite(v));
    case V.MSR_IA32_FEATURE_CONTROL: return vcpu.nested.enabled && writeFeatureControl(vcpu.msrs, v);
    case V.MSR_IA32_MISC_ENABLE: return true; // accepted, not applied
    case V.MSR_IA32_TIME_STAMP_COUNTER:
      tsc.write(vcpu, v, onVmcs02(vcpu));
      return true;
    case V.MSR_IA32_TSC_ADJUST:
      if (!hasTscAdjust) return false;
      tsc.writeAdjust(vcpu, v, onVmcs02(vcpu));
      return true;
    // Microcode updates are not offered: a write to the trigger loads
    // nothing and the signature stays 0 (SDM Vol. 3C 32.4.2 allows a VMM
    // to drop them); writing the signature MSR is how software asks for it.
    case V.MSR_IA32_BIOS_UPDT_TRIG: return true;
    case V.MSR_IA32_BIOS_SIGN_ID: return true;
    case V.MSR_IA32_MTRR_DEF_TYPE:
      // Bits 7:0 type, 10 FE, 11 E; the rest reserved.
      if ((v & ~<u64>0xcff) != 0 || !mtrrType(<u32>v & 0xff)) return false;
      vcpu.msrs.mtrrDefType = v;
      return true;
    case V.MSR_IA32_EFER: return writeEfer(v);
    case V.MSR_IA32_PAT:
      if (!patOk(v)) return false;
      vmx.vmwrite(V.GUEST_IA32_PAT, v);
      return true;
    case V.MSR_IA32_DEBUGCTL:
      if ((v & ~debugctlDefined) != 0) return false;
      vmx.vmwrite(V.GUEST_IA32_DEBUGCTL, v);
      return true;
  }
  const f = fixedMtrr(msr);
  if (f >= 0) {
    for (let i: u64 = 0; i < 64; i += 8) if (!mtrrType(<u32>(v >> i) & 0xff)) return false;
    store<u64>(vcpu.msrs.mtrrFixed(f), v);
    return true;
  }
  return vcpu.vm.hvOffered && hyperv.write(vcpu, msr, v);
}

// IA32_FEATURE_CONTROL with nested=on: writable until the lock bit is set
// (then #GP, as on the processor). Only the lock bit and bit 2 (VMX outside
// SMX) may be set: SMX, SGX and LMCE are not offered, so their enables are
// reserved (#GP). With nested=off the MSR reads locked and writes are #GP.
function writeFeatureControl(m: MsrState, v: u64): bool {
  if ((m.featureControl & V.FEATURE_CONTROL_LOCK) != 0) return false;
  if ((v & ~(V.FEATURE_CONTROL_LOCK | V.FEATURE_CONTROL_VMX_OUTSIDE_SMX)) != 0) return false;
  m.featureControl = v;
  return true;
}

// EFER writes (SDM Vol. 3A 2.2.1, Vol. 4): SCE (0), LME (8), LMA (10,
// read-only: kept), NXE (11) are what a guest may set. LME may not change
// while paging is on.
function writeEfer(v: u64): bool {
  const allowed: u64 = V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE;
  if ((v & ~allowed) != 0) return false;
  const old = vmx.vmread(V.GUEST_IA32_EFER);
  const pg = (vmx.vmread(V.GUEST_CR0) & V.X86_CR0_PG) != 0;
  if (pg && ((v ^ old) & V.X86_EFER_LME) != 0) return false;
  vmx.vmwrite(V.GUEST_IA32_EFER, (v & ~<u64>V.X86_EFER_LMA) | (old & V.X86_EFER_LMA));
  return true;
}

// The x2APIC MSRs (800H-8FFH, SDM Vol. 3A 11.12.1.2) are decided by the
// local APIC (apic/lapic.ts x2Read/x2Write: #GP outside x2APIC mode) on
// the path of the MSRs readable()/write() refuse, so that the MSRs they
// accept pay nothing for them. They are never in the VM-entry/VM-exit MSR
// lists (nested/msrlists.ts refuses the range, 26.4, 28.4).
export function handleRead(vcpu: Vcpu, reason: u32): i32 {
  const msr = <u32>vcpu.reg(R.RCX);
  if (!readable(vcpu, msr)) return refused(vcpu, msr, false, 0);
  const value = read(vcpu, msr);
  vcpu.setReg(R.RAX, value & 0xffffffff);
  vcpu.setReg(R.RDX, value >> 32);
  events.skipInstruction();
  return RESUME;
}

export function handleWrite(vcpu: Vcpu, reason: u32): i32 {
  const v = (vcpu.reg(R.RDX) << 32) | (vcpu.reg(R.RAX) & 0xffffffff);
  const msr = <u32>vcpu.reg(R.RCX);
  if (!write(vcpu, msr, v)) return refused(vcpu, msr, true, v);
  events.skipInstruction();
  return RESUME;
}

// An MSR access readable()/write() refused: an x2APIC MSR's for the local
// APIC, else #GP(0). (One function for both, with two callers: binaryen
// keeps it out of line, and the accepted MSRs' path as it was.)
function refused(vcpu: Vcpu, msr: u32, isWrite: bool, v: u64): i32 {
  if (msr - lapic.X2APIC_FIRST <= lapic.X2APIC_LAST - lapic.X2APIC_FIRST) {
    return isWrite ? x2apicWrite(vcpu, msr, v) : x2apicRead(vcpu, msr);
  }
  events.injectGP();
  return RESUME;
}

// RDMSR of an x2APIC MSR: the value, or #GP(0) (lapic.ts x2Read).
function x2apicRead(vcpu: Vcpu, msr: u32): i32 {
  const a = vcpu.apic;
  if (!a.x2Read(msr, cpu.rdtsc())) {
    events.injectGP();
    return RESUME;
  }
  vcpu.setReg(R.RAX, a.x2Value & 0xffffffff);
  vcpu.setReg(R.RDX, a.x2Value >> 32);
  events.skipInstruction();
  return RESUME;
}

// WRMSR of an x2APIC MSR, or #GP(0); then what the write sent on (an EOI
// to the I/O APIC, an IPI to other vCPUs, a self-NMI: irq.apicWritten, as
// after a write to the page).
function x2apicWrite(vcpu: Vcpu, msr: u32, v: u64): i32 {
  if (!vcpu.apic.x2Write(msr, v, cpu.rdtsc())) {
    events.injectGP();
    return RESUME;
  }
  events.skipInstruction();
  return irq.apicWritten(vcpu);
}
