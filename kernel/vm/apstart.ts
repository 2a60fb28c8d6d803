// Starting a guest's application processors (SDM Vol. 3A 9.4 "Multiple-
// Processor (MP) Initialization", 11.6.1 delivery modes INIT and Start Up):
// an AP of a vcpus=N guest begins in the wait-for-SIPI state; INIT (from
// another vCPU's local APIC, vm/ipi.ts) puts it back there, its registers
// and local APIC in their INIT state; a start-up IPI to a vCPU that waits
// for one starts it in real mode at CS = vector << 8, IP 0 (9.4.3: the
// vector names the 4-KiB page below 1 MiB). A SIPI to a vCPU not waiting
// for one is ignored (11.6.1: the AP ignores a second SIPI once started).
//
// The new state is written into the AP's vmcs01 when the scheduler makes
// it current (sched.ts calls start), since the sender's VMCS is the
// current one while the IPI is sent.
//
// INIT is not acted on for the bootstrap processor (vCPU 0: it would go to
// the reset vector, which this platform has no firmware at) nor for a vCPU
// in VMX operation (nested=on after VMXON: the SDM blocks INIT in VMX root
// operation, 24.8, and makes it an exit to L1 in non-root operation; the
// latter is not modelled yet): both are counted as dropped.
import * as V from "../arch/vmx";
import * as vmx from "../hw/vmx";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import * as vmcs01 from "./vmcs01";

// INIT arrives for v: false when it is not acted on (see above).
export function init(v: Vcpu): bool {
  if (v.index == 0 || v.nested.vmxOn) return false;
  v.runState = R.RUN_WAIT_SIPI;
  v.startPending = false;
  v.ipiNmi = false;
  v.haltIf = false;
  // General registers 0 (EDX would hold the processor signature, 9.1.4;
  // software does not rely on it after a SIPI), x87/SSE in their INIT
  // state; the local APIC keeps its ID (11.4.7.3).
  // (The register block also holds the VMCS's launch state and the exit
  // count: both kept.)
  const exits = v.exits;
  const launched = v.launched;
  v.resetRegisters();
  v.setExits(exits);
  v.setLaunched(launched);
  v.apic.init();
  v.irq.nmiPending = false;
  v.irq.quiet = false;
  return true;
}

// A start-up IPI with `vector` arrives for v: false when v does not wait
// for one.
export function sipi(v: Vcpu, vector: u32): bool {
  if (v.runState != R.RUN_WAIT_SIPI) return false;
  v.sipiVector = vector & 0xff;
  v.startPending = true;
  v.runState = R.RUN_ACTIVE;
  return true;
}

// v's vmcs01 is current: it starts where its SIPI said. The launch state
// of the VMCS is kept (a VMRESUME with new guest state is fine).
export function start(v: Vcpu): void {
  v.startPending = false;
  vmcs01.realModeAt(v.sipiVector);
}
