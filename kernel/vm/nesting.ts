// Nested VMX as the vm/ layer sees it. vm/ is the lower layer: kernel/
// nested/ imports vm/ (registers, events, exits, guest memory, the page
// walk) and vm/ never imports nested/ (tests/unit/layers.test.ts fails if
// it does). What vm/ needs of nested VMX is declared here: references to
// nested/'s functions, which
// nested/install.ts assigns once at start (kmain, before any guest runs).
// The defaults are what a guest without VMX gets. The exit path of L2
// itself (its exits, its interrupts) is not called through references:
// kmain hands it to the exit loop as a type parameter (guest.ts loop),
// so that it is inlined there.
import { Vcpu } from "./vcpu";

// Whether VMX is offered to a guest (nested=on: CPUID.1:ECX.VMX, the VMX
// capability MSRs, IA32_FEATURE_CONTROL's VMX bits, CR4.VMXE, the VMX
// instructions emulated rather than #UD) and whether L2 runs are the
// vCPU's: vcpu.nested.enabled and vcpu.nested.inL2 (the Vcpu owns its
// Nested, the one vm/ -> nested/ link tests/unit/layers.test.ts allows).

// A guest is set up on vcpu (vmcs01 current, the VM's RAM snapshot made
// when it has one) with VMX offered or not and VMCS shadowing asked for or
// not: nested VMX's state starts afresh. False when it cannot (the guest is
// not run).
export function start(vcpu: Vcpu, on: bool, shadowVmcs: bool): bool {
  vcpu.nested.enabled = on;
  return setUp(vcpu, on, shadowVmcs);
}

// ---- references nested/install.ts assigns ----------------------------------

export let setUp: (vcpu: Vcpu, on: bool, shadowVmcs: bool) => bool = noSetUp; // machine-wide: assigned once at start (nested/install.ts)
// The guest has ended: nested VMX's VMCSs cleared, its memory given back.
export let tearDown: (vcpu: Vcpu) => void = nothing; // machine-wide: assigned once at start (nested/install.ts)
// The vCPU moves to another processor (migrate.ts): before vmcs01 is
// cleared (nested VMX's VMCSs cleared; false when one cannot be), and after
// vmcs01 is current again on the new processor with its host state
// rewritten (theirs rewritten, and vmcs02 current again while L2 runs).
export let leaveCpu: (vcpu: Vcpu) => bool = yes; // machine-wide: assigned once at start (nested/install.ts)
export let arriveCpu: (vcpu: Vcpu) => bool = yes; // machine-wide: assigned once at start (nested/install.ts)
// In VMX operation CR0 and CR4 must stay inside the fixed bits offered
// (SDM Vol. 3C 24.8: a MOV to CR that violates them is #GP): may v be
// written?
export let cr0Allowed: (vcpu: Vcpu, v: u64) => bool = anyCr; // machine-wide: assigned once at start (nested/install.ts)
export let cr4Allowed: (vcpu: Vcpu, v: u64) => bool = anyCr; // machine-wide: assigned once at start (nested/install.ts)
// The VMX capability MSRs (offered only): does msr exist for the guest
// (false: RDMSR is #GP), and its value (they depend on the VM's hyperv=).
export let vmxMsrExists: (vcpu: Vcpu, msr: u32) => bool = noMsr; // machine-wide: assigned once at start (nested/install.ts)
export let vmxMsrValue: (vcpu: Vcpu, msr: u32) => u64 = zero; // machine-wide: assigned once at start (nested/install.ts)
// An NMI arrives for a vCPU while L2 runs (vm/irq.ts raiseNmi): an exit
// to L1 or L2's NMI, as vmcs12 says; the exit path's answer.
export let l2Nmi: (vcpu: Vcpu) => i32 = resume; // machine-wide: assigned once at start (nested/install.ts)
// An INIT (reason 3) or a SIPI (reason 4, the vector as qualification) for
// a vCPU whose L2 runs or waits for SIPI, now that it has the processor
// with vmcs02 current (vm/apstart.ts arrive): the VM exit to L1
// (nested/initsipi.ts); the exit path's answer.
export let signalExit: (vcpu: Vcpu, reason: u32, qualification: u64) => i32 = signalNone; // machine-wide: assigned once at start (nested/install.ts)
// The lines about nested VMX in the report of a guest that had it.
export let report: (vcpu: Vcpu) => void = nothing; // machine-wide: assigned once at start (nested/install.ts)

function noSetUp(vcpu: Vcpu, on: bool, shadowVmcs: bool): bool {
  return !on; // VMX cannot be offered without nested/
}
function nothing(vcpu: Vcpu): void {}
function signalNone(vcpu: Vcpu, reason: u32, qualification: u64): i32 {
  return 0; // exits.RESUME (never called without nested/: no L2 runs)
}
function resume(vcpu: Vcpu): i32 {
  return 0; // exits.RESUME (never called without nested/: no L2 runs)
}
function yes(vcpu: Vcpu): bool {
  return true;
}
function anyCr(vcpu: Vcpu, v: u64): bool {
  return true;
}
function noMsr(vcpu: Vcpu, msr: u32): bool {
  return false;
}
function zero(vcpu: Vcpu, msr: u32): u64 {
  return 0;
}
