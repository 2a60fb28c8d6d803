// The Hyper-V interface of a guest with hyperv=on (Hyper-V Hypervisor
// Top-Level Functional Specification, "TLFS" below; docs/guest-interface.md
// "Hyper-V interface" lists what is offered):
// - CPUID 40000000H-4000000AH as TLFS "Feature and Interface Discovery"
//   defines them; this hypervisor's own leaves move to 40000100H;
// - the synthetic MSRs GUEST_OS_ID, HYPERCALL, VP_INDEX, VP_ASSIST_PAGE,
//   the APIC-access MSRs EOI/ICR/TPR and TSC_INVARIANT_CONTROL;
// - the hypercall page (TLFS "Establishing the Hypercall Interface") and the
//   hypercalls made through it, none of which is implemented: each answers
//   HV_STATUS_INVALID_HYPERCALL_CODE.
// Nothing is offered that is not implemented: no synthetic timers, SynIC,
// reference counter/TSC page, TLB-flush or IPI hypercalls. The enlightened
// VMCS (nested/evmcs.ts) is recommended and its version and the
// enlightened MSR bitmap offered (40000004H, 4000000AH) when the guest
// also has nested=on.
//
// How a Hyper-V hypercall is told apart from this hypervisor's own VMCALL
// interface (exit/vmcall.ts): by where the VMCALL is. The TLFS has guests
// call the hypercall page and allows a hypervisor to refuse hypercalls made
// "by any other means" (TLFS "Legal Hypercall Environments"), so a VMCALL
// is a Hyper-V hypercall exactly when it is the VMCALL at offset 0 of the
// enabled hypercall page (its guest-physical address, through the guest's
// paging); every other VMCALL is ours, with our register convention. A
// Hyper-V-aware guest keeps the whole of our interface.
//
// The guest's exits reach this file only with hyperv=on: start() puts the
// handlers below in front of exit/cpuid.ts and exit/vmcall.ts in the exit
// table, so that a guest without it runs exactly the code it ran before.
// The MSRs are asked for by exit/msr.ts after its own (a check of
// `offered` on the path of MSRs it does not know).
import * as vmx from "../../hw/vmx";
import * as cpu from "../../hw/cpu";
import * as V from "../../arch/vmx";
import * as ident from "../../cpu/ident";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import { Vm } from "../vm";
import * as exits from "../exits";
import { RESUME } from "../exits";
import * as events from "../events";
import * as guestmem from "../guestmem";
import * as paging from "../paging";
import * as lapic from "../../apic/lapic";
import * as cpuidExit from "./cpuid";
import * as vmcallExit from "./vmcall";
import * as msrExit from "./msr";
import * as irq from "../irq";

// Whether a guest has hyperv=on is its Vm's (vm.hvOffered, set by start()).

// ---- CPUID (TLFS "Feature and Interface Discovery") --------------------------

export const LEAF_FIRST: u32 = 0x40000000;
export const LEAF_LAST: u32 = 0x4000000a; // 40000000H EAX: the highest Hyper-V leaf
// This hypervisor's own leaves with hyperv=on (exit/cpuid.ts has them at
// 40000000H otherwise), as other hypervisors that also speak Hyper-V do.
export const OWN_BASE: u32 = 0x40000100;
// "Microsoft Hv" (40000000H EBX, ECX, EDX) and "Hv#1" (40000001H EAX).
const VENDOR_EBX: u32 = 0x7263694d; // "Micr"
const VENDOR_ECX: u32 = 0x666f736f; // "osof"
const VENDOR_EDX: u32 = 0x76482074; // "t Hv"
const INTERFACE_HV1: u32 = 0x31237648; // "Hv#1"
// 40000002H: build number; major.minor version (our own numbering: 1.0).
const VERSION_BUILD: u32 = 1;
const VERSION_MAJOR_MINOR: u32 = 1 << 16;
// 40000003H EAX, the low half of HV_PARTITION_PRIVILEGE_MASK (TLFS
// datatypes "HV_PARTITION_PRIVILEGE_MASK"): only what is implemented here.
export const PRIV_ACCESS_APIC_MSRS: u32 = 1 << 4; // EOI, ICR, TPR, VP_ASSIST_PAGE
export const PRIV_ACCESS_HYPERCALL_MSRS: u32 = 1 << 5; // GUEST_OS_ID, HYPERCALL
export const PRIV_ACCESS_VP_INDEX: u32 = 1 << 6; // VP_INDEX
export const PRIV_ACCESS_TSC_INVARIANT_CONTROLS: u32 = 1 << 15; // TSC_INVARIANT_CONTROL
export const PRIVILEGES: u32 = PRIV_ACCESS_APIC_MSRS | PRIV_ACCESS_HYPERCALL_MSRS | PRIV_ACCESS_VP_INDEX |
  PRIV_ACCESS_TSC_INVARIANT_CONTROLS;
// 40000004H EAX bit 14: use the enlightened VMCS.
export const REC_ENLIGHTENED_VMCS: u32 = 1 << 14;
// 40000004H EBX: spinlock retries before a long-spin-wait notification;
// all ones: never notify (HvCallNotifyLongSpinWait is not implemented).
const SPIN_NEVER: u32 = 0xffffffff;
// 40000006H EAX: hardware features the hypervisor uses: MSR bitmaps (bit
// 1), second-level address translation (bit 3, EPT).
const HW_FEATURES: u32 = (1 << 1) | (1 << 3);
// 4000000AH EAX bit 19: the enlightened MSR bitmap.
export const NESTED_MSR_BITMAP: u32 = 1 << 19;
// CPUID 80000007H EDX bit 8: invariant TSC, shown once the guest sets
// HV_X64_MSR_TSC_INVARIANT_CONTROL bit 0 (TLFS: with the
// AccessTscInvariantControls privilege the invariant TSC is exposed by that
// MSR).
const INVARIANT_TSC: u64 = 1 << 8;

// The guest's CPUID with hyperv=on (the exit table's handler for reason
// 10 while such a guest runs).
export function handleCpuid(vcpu: Vcpu, reason: u32): i32 {
  const leaf = <u32>vcpu.reg(R.RAX);
  if ((leaf & 0xfffffe00) != LEAF_FIRST) {
    const r = cpuidExit.handle(vcpu, reason);
    if (leaf == 0x80000007 && (vcpu.vm.hvTscInvariantControl & TSC_INVARIANT_EXPOSE) == 0) {
      vcpu.setReg(R.RDX, vcpu.reg(R.RDX) & ~INVARIANT_TSC);
    }
    return r;
  }
  let a: u32 = 0, b: u32 = 0, c: u32 = 0, d: u32 = 0;
  switch (leaf) {
    case 0x40000000:
      a = LEAF_LAST;
      b = VENDOR_EBX;
      c = VENDOR_ECX;
      d = VENDOR_EDX;
      break;
    case 0x40000001:
      a = INTERFACE_HV1;
      break;
    case 0x40000002:
      a = VERSION_BUILD;
      b = VERSION_MAJOR_MINOR;
      break;
    case 0x40000003:
      a = PRIVILEGES;
      break;
    case 0x40000004:
      // Bit 14, the enlightened VMCS, with VMX (nested=on) only: without
      // it there is no VM entry to enlighten.
      if (vcpu.nested.enabled) a = REC_ENLIGHTENED_VMCS;
      b = SPIN_NEVER;
      break;
    case 0x40000005:
      // Implementation limits: one virtual processor per partition (what
      // the hypervisor runs today), as many logical processors.
      a = 1;
      b = 1;
      break;
    case 0x40000006:
      a = HW_FEATURES;
      break;
    case 0x4000000a:
      // TLFS "Nested Hypervisor Feature Identification": EAX[7:0] the
      // lowest, EAX[15:8] the highest eVMCS version supported; bit 19 the
      // enlightened MSR bitmap (nested/evmcs.ts). With nested=on only, as
      // bit 14 of 40000004H.
      if (vcpu.nested.enabled) a = V.EVMCS_VERSION | (V.EVMCS_VERSION << 8) | NESTED_MSR_BITMAP;
      break;
    case OWN_BASE:
      a = OWN_BASE + 1;
      b = cpuidExit.SIG_EBX;
      c = cpuidExit.SIG_ECX;
      d = cpuidExit.SIG_EDX;
      break;
    case OWN_BASE + 1:
      a = cpuidExit.HV_INTERFACE_VERSION;
      b = ident.nestingLevel + 1;
      break;
  }
  // (40000007H-40000009H, 4000000BH-400000FFH and the rest of ours: 0.)
  return cpuidExit.answer(vcpu, a, b, c, d);
}

// ---- synthetic MSRs -------------------------------------------------------------

// HV_X64_MSR_HYPERCALL (TLFS "Establishing the Hypercall Interface"):
// 63:12 the page's GPFN, 11:2 reserved (preserved), 1 locked, 0 enable.
export const HYPERCALL_ENABLE: u64 = 1 << 0;
export const HYPERCALL_LOCKED: u64 = 1 << 1;
const PAGE_MASK: u64 = ~(<u64>0xfff);
// HV_X64_MSR_VP_ASSIST_PAGE (TLFS "Virtual Processor Assist Page"): 63:12
// the page's GPFN, 11:1 reserved, 0 enable.
export const VP_ASSIST_ENABLE: u64 = 1 << 0;
export const VP_ASSIST_RESERVED: u64 = 0xffe;
// HV_X64_MSR_TSC_INVARIANT_CONTROL: bit 0 exposes the invariant TSC; the
// rest is reserved.
export const TSC_INVARIANT_EXPOSE: u64 = 1 << 0;
// The APIC-access MSRs (TLFS "Virtual Processor Interrupts"): EOI
// (write-only), ICR (64 bits: the high dword is ICR 310H), TPR.
export const MSR_HV_EOI: u32 = 0x40000070;
export const MSR_HV_ICR: u32 = 0x40000071;
export const MSR_HV_TPR: u32 = 0x40000072;

// The hypercall page: VMCALL; RET (TLFS: the guest CALLs the start of the
// page, which "performs the equivalent of a near return"), then INT3 to
// the end of the page. The VMCALL is at offset 0, which is what makes a
// VMCALL a Hyper-V hypercall (above).
const HYPERCALL_VMCALL_AT: u64 = 0;
const PAGE_BYTES: u32 = 4096;
const page: usize = memory.data(<i32>PAGE_BYTES); // machine-wide: the page's contents, built once
let pageBuilt: bool = false; // machine-wide

// What each vCPU has of the Hyper-V interface (vcpu.hv).
@unmanaged export class HvState {
  vpAssistPage: u64 = 0; // HV_X64_MSR_VP_ASSIST_PAGE as written

  reset(): void {
    this.vpAssistPage = 0;
  }
}

// Is msr one of the synthetic MSRs offered (with hyperv=on)? False: #GP.
export function readable(msr: u32): bool {
  switch (msr) {
    case V.MSR_HV_GUEST_OS_ID:
    case V.MSR_HV_HYPERCALL:
    case V.MSR_HV_VP_INDEX:
    case V.MSR_HV_VP_ASSIST_PAGE:
    case V.MSR_HV_TSC_INVARIANT_CONTROL:
    case MSR_HV_ICR:
    case MSR_HV_TPR:
      return true;
  }
  return false; // (HV_X64_MSR_EOI is write-only)
}

// The value of a synthetic MSR that readable() accepted.
export function read(vcpu: Vcpu, msr: u32): u64 {
  switch (msr) {
    case V.MSR_HV_GUEST_OS_ID: return vcpu.vm.hvGuestOsId;
    case V.MSR_HV_HYPERCALL: return vcpu.vm.hvHypercall;
    case V.MSR_HV_VP_INDEX: return vcpu.index;
    case V.MSR_HV_VP_ASSIST_PAGE: return vcpu.hv.vpAssistPage;
    case V.MSR_HV_TSC_INVARIANT_CONTROL: return vcpu.vm.hvTscInvariantControl;
    case MSR_HV_ICR: {
      const now = cpu.rdtsc();
      return (<u64>vcpu.apic.read(lapic.REG_ICR_HI, now) << 32) | vcpu.apic.read(lapic.REG_ICR_LO, now);
    }
    case MSR_HV_TPR: return vcpu.apic.read(lapic.REG_TPR, cpu.rdtsc());
  }
  return 0;
}

// read() for exit/msr.ts, called through a reference there (not inlined);
// start() assigns it.
export let readRef: (vcpu: Vcpu, msr: u32) => u64 = readNothing; // machine-wide: a function reference, the same for every guest
function readNothing(vcpu: Vcpu, msr: u32): u64 {
  return 0;
}

// A write to a synthetic MSR; false: #GP (not offered, read-only, reserved
// bits, or a page outside the guest's RAM).
export function write(vcpu: Vcpu, msr: u32, v: u64): bool {
  const vm = vcpu.vm;
  switch (msr) {
    case V.MSR_HV_GUEST_OS_ID:
      vm.hvGuestOsId = v;
      // Zeroing the identity disables the hypercall page (TLFS "Reporting
      // the Guest OS Identity").
      if (v == 0) vm.hvHypercall &= ~HYPERCALL_ENABLE;
      return true;
    case V.MSR_HV_HYPERCALL:
      return writeHypercall(vcpu, v);
    case V.MSR_HV_VP_INDEX:
      return false; // read-only
    case V.MSR_HV_VP_ASSIST_PAGE:
      if ((v & VP_ASSIST_RESERVED) != 0) return false;
      // Enlightened entry will read the page: it must be guest RAM.
      if ((v & VP_ASSIST_ENABLE) != 0 && !guestmem.isRam(v & PAGE_MASK, PAGE_BYTES)) return false;
      vcpu.hv.vpAssistPage = v;
      return true;
    case V.MSR_HV_TSC_INVARIANT_CONTROL:
      if ((v & ~TSC_INVARIANT_EXPOSE) != 0) return false;
      vm.hvTscInvariantControl = v;
      return true;
    case MSR_HV_EOI:
      vcpu.apic.write(lapic.REG_EOI, <u32>v, cpu.rdtsc());
      return true;
    case MSR_HV_ICR: {
      // The destination first: writing the low dword sends the IPI.
      const now = cpu.rdtsc();
      vcpu.apic.write(lapic.REG_ICR_HI, <u32>(v >> 32), now);
      vcpu.apic.write(lapic.REG_ICR_LO, <u32>v, now);
      return true;
    }
    case MSR_HV_TPR:
      if ((v >> 8) != 0) return false; // TPR is bits 7:0
      vcpu.apic.write(lapic.REG_TPR, <u32>v, cpu.rdtsc());
      return true;
  }
  return false;
}

// HV_X64_MSR_HYPERCALL: once locked, the MSR keeps its value (writes are
// ignored); without a guest OS identity the enable bit stays 0; enabling
// fills the page, which must be in the guest's RAM (else #GP: TLFS "a #GP
// fault will result" for a page beyond the GPA space). The page is the
// guest's RAM, written once at enabling, not an overlay: the guest can
// overwrite it (the TLFS makes that a #GP; here it breaks only that guest's
// own hypercalls).
function writeHypercall(vcpu: Vcpu, v: u64): bool {
  const vm = vcpu.vm;
  if ((vm.hvHypercall & HYPERCALL_LOCKED) != 0) return true;
  if (vm.hvGuestOsId == 0) v &= ~HYPERCALL_ENABLE;
  if ((v & HYPERCALL_ENABLE) != 0) {
    const gpa = v & PAGE_MASK;
    if (!guestmem.isRam(gpa, PAGE_BYTES)) return false;
    guestmem.copyIn(gpa, hypercallPage(), PAGE_BYTES);
  }
  vm.hvHypercall = v;
  return true;
}

function hypercallPage(): usize {
  if (!pageBuilt) {
    memory.fill(page, 0xcc, PAGE_BYTES); // INT3
    store<u8>(page, 0x0f, <usize>HYPERCALL_VMCALL_AT); // VMCALL: 0F 01 C1
    store<u8>(page, 0x01, <usize>HYPERCALL_VMCALL_AT + 1);
    store<u8>(page, 0xc1, <usize>HYPERCALL_VMCALL_AT + 2);
    store<u8>(page, 0xc3, <usize>HYPERCALL_VMCALL_AT + 3); // RET
    pageBuilt = true;
  }
  return page;
}

// ---- hypercalls (TLFS "Hypercall Interface") -----------------------------------

// HV_STATUS codes (TLFS "Hypercall Status Codes").
export const HV_STATUS_SUCCESS: u64 = 0;
export const HV_STATUS_INVALID_HYPERCALL_CODE: u64 = 2;

// The guest's VMCALL with hyperv=on (the exit table's handler for reason
// 18 while such a guest runs): a Hyper-V hypercall when it is the hypercall
// page's VMCALL, else this hypervisor's own (exit/vmcall.ts).
export function handleVmcall(vcpu: Vcpu, reason: u32): i32 {
  if ((vcpu.vm.hvHypercall & HYPERCALL_ENABLE) != 0 && events.guestCpl() == 0 && inHypercallPage(vcpu)) {
    return hypercall(vcpu);
  }
  return vmcallExit.handle(vcpu, reason);
}

function longMode(): bool {
  return (vmx.vmread(V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0 &&
    (vmx.vmread(V.GUEST_CS_ACCESS_RIGHTS) & (1 << 13)) != 0; // CS.L
}

// Is the VMCALL at RIP the one at offset 0 of the enabled hypercall page?
// Cheap test first (RIP's page offset), then the guest's page walk of the
// instruction's linear address (a look again at a fetch already made).
function inHypercallPage(vcpu: Vcpu): bool {
  const rip = vmx.vmread(V.GUEST_RIP);
  if ((rip & 0xfff) != HYPERCALL_VMCALL_AT) return false;
  // In 64-bit mode the CS base is 0 for linear addresses (SDM Vol. 3A
  // 3.4.4); otherwise the address is 32 bits.
  const lin = longMode() ? rip : (vmx.vmread(V.GUEST_CS_BASE) + rip) & 0xffffffff;
  const gpa = paging.translate(vcpu, lin, paging.FETCH | paging.PEEK);
  if (paging.failed(gpa)) return false;
  return (gpa & PAGE_MASK) == (vcpu.vm.hvHypercall & PAGE_MASK);
}

// A Hyper-V hypercall. Inputs (TLFS "Hypercall Inputs"): the hypercall
// input value in RCX (64-bit callers: EFER.LMA and CS.L) or EDX:EAX; call
// code bits 15:0. Result value in RAX or EDX:EAX: status bits 15:0, reps
// completed bits 43:32. No call code is implemented: every one answers
// HV_STATUS_INVALID_HYPERCALL_CODE with 0 reps completed. Real mode is not
// a legal hypercall environment (TLFS "Legal Hypercall Environments"): #UD.
function hypercall(vcpu: Vcpu): i32 {
  if ((vmx.vmread(V.GUEST_CR0) & V.X86_CR0_PE) == 0) {
    events.injectUD();
    return RESUME;
  }
  const result = HV_STATUS_INVALID_HYPERCALL_CODE;
  if (longMode()) {
    vcpu.setReg(R.RAX, result);
  } else {
    vcpu.setReg(R.RAX, result & 0xffffffff);
    vcpu.setReg(R.RDX, result >> 32);
  }
  vcpu.vm.hvHypercalls++;
  events.skipInstruction();
  return RESUME;
}

// ---- the guest's start ------------------------------------------------------------

// A guest starts: with hyperv=on its CPUID and VMCALL exits come here
// first; without, the exit table has exit/cpuid.ts's and exit/vmcall.ts's
// handlers as for every guest.
export function start(vm: Vm, on: bool): void {
  vm.hvOffered = on;
  readRef = read;
  exits.register(V.EXIT_REASON_CPUID, on ? handleCpuid : cpuidExit.handle);
  exits.register(V.EXIT_REASON_VMCALL, on ? handleVmcall : vmcallExit.handle);
  exits.register(V.EXIT_REASON_WRMSR, on ? handleWrmsr : msrExit.handleWrite);
}

// WRMSR of a hyperv=on guest: as for any guest (exit/msr.ts), then what a
// write of the APIC-access MSRs sends on: an NMI the guest sent itself
// through HV_X64_MSR_ICR (vm/irq.ts raiseNmi), the EOI of a level-triggered
// interrupt through HV_X64_MSR_EOI to the I/O APIC (vm/intbus.ts). Guests
// without hyperv=on keep exit/msr.ts's handler alone.
function handleWrmsr(vcpu: Vcpu, reason: u32): i32 {
  const r = msrExit.handleWrite(vcpu, reason);
  const msr = <u32>vcpu.reg(R.RCX);
  return msr == MSR_HV_EOI || msr == MSR_HV_ICR ? irq.apicWritten(vcpu) : r;
}
