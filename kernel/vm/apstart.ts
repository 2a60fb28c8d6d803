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
// it current (sched.ts calls arrive), since the sender's VMCS is the
// current one while the IPI is sent.
//
// In VMX operation (nested=on after VMXON) INIT and SIPI are VMX's
// (SDM Vol. 3C 24.8, 26.2 "Other causes of VM exits", 27.7.2 activity
// states):
//   - VMX root operation blocks INIT: it is held (vcpu.initPending) and
//     takes effect at VMXOFF, which unblocks INIT (VMXOFF, Vol. 2/3C 31.3:
//     the vCPU goes to wait-for-SIPI as above), or becomes the INIT-signal
//     VM exit (reason 3) right after L1's next VM entry into L2;
//   - while L2 runs (active or HLT), INIT is a VM exit to L1, reason 3,
//     qualification 0, delivered when the vCPU next gets the processor
//     with vmcs02 current (nested/initsipi.ts);
//   - L2 in the wait-for-SIPI activity state (L1 entered it so): INIT is
//     blocked there ("such events do not cause VM exits", 27.7.2) and held
//     as in VMX root operation (as Bochs 2.7 does; KVM discards it): after
//     the SIPI exit L1 is in VMX root, so it stays held; a SIPI is a VM
//     exit, reason 4, the vector as the qualification (28.2.1); nothing
//     else wakes it (external interrupts and NMIs are blocked in that
//     state);
//   - a SIPI to a vCPU in VMX operation that does not wait for one is
//     ignored, as outside it.
//
// INIT is not acted on for the bootstrap processor (vCPU 0: it would go to
// the reset vector, which this platform has no firmware at), outside VMX
// operation or at VMXOFF: counted as dropped. Its INIT-signal exits are
// delivered (they do not reset the processor).
import * as V from "../arch/vmx";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import * as vmcs01 from "./vmcs01";
import * as nesting from "./nesting";
import { RESUME } from "./exits";

// What init() did with the INIT.
export const INIT_DROPPED: u32 = 0; // not acted on (counted as dropped)
export const INIT_DONE: u32 = 1; // acted on, or held while VMX root blocks it
export const INIT_RUN: u32 = 2; // an exit to L1 is due: the vCPU should run next

// INIT arrives for v (another vCPU than the sender's).
export function init(v: Vcpu): u32 {
  const n = v.nested;
  if (n.vmxOn) {
    v.initPending = true;
    // Blocked in VMX root operation and in L2's wait-for-SIPI state.
    return n.inL2 && v.runState == R.RUN_ACTIVE ? INIT_RUN : INIT_DONE;
  }
  if (v.index == 0) return INIT_DROPPED;
  reset(v);
  return INIT_DONE;
}

// The INIT itself, outside VMX operation: v waits for SIPI.
function reset(v: Vcpu): void {
  v.runState = R.RUN_WAIT_SIPI;
  v.startPending = false;
  v.initPending = false;
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
}

// v (running, vmcs01 current) executed VMXOFF, which unblocks INIT: one
// held since it arrived in VMX root operation takes effect now, and v,
// waiting for SIPI, gives up the processor (sched.ts) — vCPU 0's is
// dropped, as any INIT for it.
export function vmxoffUnblocks(v: Vcpu): void {
  if (!v.initPending) return;
  v.initPending = false;
  if (v.index == 0) return;
  reset(v);
  v.queue.sliceEnd = 0;
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

// v has just been given the processor with its VMCS current (sched.ts:
// vmcs02 while its L2 runs or waits for SIPI, else vmcs01), and a SIPI or
// an INIT is pending for it. A SIPI starts it where the vector says (the
// launch state of vmcs01 is kept: a VMRESUME with new guest state is
// fine), or, for an L2 that waited for it, is the SIPI exit to L1; a held
// INIT while L2 runs is the INIT-signal exit. Returns the exit path's
// answer (RESUME, or STOP).
export function arrive(v: Vcpu): i32 {
  if (v.startPending) {
    v.startPending = false;
    if (v.nested.inL2) return nesting.signalExit(v, V.EXIT_REASON_SIPI, <u64>v.sipiVector);
    vmcs01.realModeAt(v.sipiVector);
  }
  if (v.initPending && v.nested.inL2 && v.runState == R.RUN_ACTIVE) {
    v.initPending = false;
    return nesting.signalExit(v, V.EXIT_REASON_INIT_SIGNAL, 0);
  }
  return RESUME;
}
