// L1's interrupts while L2 runs (SDM Vol. 3C 26.2 "Other causes of VM
// exits": external-interrupt exiting; 28.2.2 "acknowledge interrupt on
// exit"). L1's local APIC (apic/lapic.ts) can have an interrupt for L1's
// processor while L2 is on it. If L1 set "external-interrupt exiting" in
// vmcs12, that is a VM exit to L1 (reason 1, the vector in the exit
// interruption information when L1 asked to acknowledge on exit); if not,
// the interrupt is L2's to take, as on a processor where L1 let external
// interrupts through: it is injected into L2 when L2 can take it, else
// L0 waits for L2's interrupt window. The VMX-preemption timer of vmcs02
// follows L1's APIC timer so that L0 gets control when it fires, and L1's
// own preemption timer for L2 (ptimer.ts) when that is nearer. The same
// holds for an L2 in the HLT state (l2halt.ts): the processor waits in HLT
// until vmcs02's timer brings control back here.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as irq from "../vm/irq";
import * as exits from "../vm/exits";
import * as state from "./state";
import * as reflect from "./reflect";
import * as ptimer from "./ptimer";
import * as posted from "./posted";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";
import * as vmcs01 from "../vm/vmcs01";

// What L0 last wrote to vmcs02 for its own use is the vCPU's
// (vcpu.nested.irqTimer, irqWindow), so that it is not written again: a
// rebuildable cache, set anew at every nested VM entry (entered()).

// vmcs02 was just merged (its controls rewritten, the timer value too).
export function entered(n: Nested): void {
  n.irqTimer = irq.SLICE;
  n.irqWindow = false;
}

function setTimer(n: Nested, ticks: u64): void {
  if (!irq.canPreempt()) return;
  if (ticks == n.irqTimer) return;
  n.irqTimer = ticks;
  vmx.vmwrite(V.VMX_PREEMPTION_TIMER_VALUE, ticks);
}

function setWindow(n: Nested, on: bool): void {
  if (on == n.irqWindow) return;
  n.irqWindow = on;
  const p = <u32>vmx.vmread(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  const l1 = (<u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_INTERRUPT_WINDOW_EXITING) != 0;
  if (on) vmcs01.writeControl(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, p | V.PROC_INTERRUPT_WINDOW_EXITING); // (vmcs02's: counted all the same)
  else if (!l1) vmcs01.writeControl(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, p & ~V.PROC_INTERRUPT_WINDOW_EXITING);
}

// Before each VM entry while L2 runs (vmcs02 current). Returns RESUME, or
// what reflecting an external-interrupt exit to L1 returned.
// The common case (L1's APIC off, no timer of L1's) is decided inline in
// the exit loop; the rest is a call (inlining it all cost every L2 exit
// about 40 ticks).
@inline export function deliver(vcpu: Vcpu): i32 {
  const apic = vcpu.apic.enabled();
  if (!apic && !ptimer.active(vcpu.nested)) return exits.RESUME;
  return deliverFor(vcpu, apic);
}

function deliverFor(vcpu: Vcpu, apic: bool): i32 {
  const n = vcpu.nested;
  const now = cpu.rdtsc();
  const v = apic ? vcpu.apic.pendingVector(now) : -1;
  let ticks = apic ? irq.preemptionTicks(vcpu.apic.nextTimerDeadline(), now) : irq.SLICE;
  if (ptimer.active(n)) {
    const left = ptimer.remaining(vcpu, now);
    if (left < ticks) ticks = left;
    // L1's timer has run out: the processor's exit 52 comes at once, and
    // before an external interrupt (it ranks above NMIs and interrupts,
    // 26.5.1); an interrupt stays pending for afterwards.
    if (left == 0) {
      setTimer(n, 0);
      return exits.RESUME;
    }
  }
  setTimer(n, ticks);
  if (v < 0) {
    setWindow(n, false);
    return exits.RESUME;
  }
  // Not while an event is being injected into L2 at this entry: the exit
  // (or the interrupt) comes after that delivery.
  const busy = (<u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) != 0;
  if ((<u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_EXTERNAL_INTERRUPT_EXITING) != 0) {
    if (busy) {
      setWindow(n, true);
      return exits.RESUME;
    }
    // L1's posted-interrupt notification for L2 is processed, not an exit.
    if ((<u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_PROCESS_POSTED_INTERRUPTS) != 0 &&
      <u32>v == <u32>state.get(n, V.POSTED_INTERRUPT_NOTIFICATION_VECTOR)) {
      posted.process(vcpu, <u32>v);
      return exits.RESUME;
    }
    let info: u32 = 0;
    if ((<u32>state.get(n, V.VM_EXIT_CONTROL) & V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT) != 0) {
      info = V.INTR_INFO_VALID | <u32>v; // type 0: external interrupt
      vcpu.apic.acknowledge(<u32>v);
    }
    // L1 runs now (vmcs01 current) with RFLAGS.IF = 0 (28.5.3): an interrupt
    // not acknowledged on exit stays pending at L1's APIC, and L1 must get
    // it when it opens its window, with or without another exit first: the
    // exit loop (vm/guest.ts) runs L1's delivery right after this one.
    return reflect.reflectSynthetic(vcpu, V.EXIT_REASON_EXTERNAL_INTERRUPT, 0, info);
  }
  setWindow(n, !irq.tryInject(vcpu, <u32>v));
  return exits.RESUME;
}
