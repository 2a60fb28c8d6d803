// Delivering the guest's local-APIC interrupts (SDM Vol. 3C 26.6 event
// injection, 25.6.2 interrupt-window exiting, 26.5.1 VMX-preemption timer).
// Before each VM entry: if the virtual APIC has a deliverable vector and
// the guest can take an interrupt now, inject it; otherwise ask for an
// interrupt-window exit. While its timer is armed, the VMX-preemption timer
// brings control back no later than the timer's deadline.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as caps from "../vmx/caps";
import * as lapic from "../apic/lapic";
import * as events from "./events";
import { RESUME } from "./exits";

let windowExiting = false;
let preemptTimer = false;
let procBase: u32 = 0;
let pinBase: u32 = 0;

// Called after vmcs01.create: the controls without the two we toggle.
export function reset(): void {
  procBase = <u32>vmx.vmread(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & ~V.PROC_INTERRUPT_WINDOW_EXITING;
  pinBase = <u32>vmx.vmread(V.PIN_BASED_VM_EXEC_CONTROL) & ~V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER;
  windowExiting = false;
  preemptTimer = false;
}

function setWindow(on: bool): void {
  if (on == windowExiting) return;
  windowExiting = on;
  vmx.vmwrite(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, procBase | (on ? V.PROC_INTERRUPT_WINDOW_EXITING : 0));
}

function canPreempt(): bool {
  return (<u32>(caps.pin >> 32) & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0;
}

function setPreemption(deadline: u64, now: u64): void {
  const on = deadline != u64.MAX_VALUE && canPreempt();
  if (on) {
    // The timer counts down at the TSC rate divided by 2^(VMX_MISC[4:0]).
    const rate = <u64>(<u32>caps.misc & 0x1f);
    const ticks = deadline > now ? (deadline - now) >> rate : 0;
    vmx.vmwrite(V.VMX_PREEMPTION_TIMER_VALUE, ticks > 0xffffffff ? 0xffffffff : ticks);
  }
  if (on == preemptTimer) return;
  preemptTimer = on;
  vmx.vmwrite(V.PIN_BASED_VM_EXEC_CONTROL, pinBase | (on ? V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER : 0));
}

// Before VM entry.
export function deliver(): void {
  // Fast path: an APIC that is not software-enabled (SVR bit 8, clear after
  // reset) accepts no interrupts and its LVT entries are masked (11.4.7.2);
  // most exits of most guests take this branch.
  if (!lapic.enabled()) {
    if (windowExiting) setWindow(false);
    if (preemptTimer) setPreemption(u64.MAX_VALUE, 0);
    return;
  }
  const now = cpu.rdtsc();
  const v = lapic.pendingVector(now);
  setPreemption(lapic.nextTimerDeadline(), now);
  if (v < 0) {
    setWindow(false);
    return;
  }
  // Not while another event is being injected, with RFLAGS.IF clear, or in
  // the shadow of STI / MOV SS (26.3.1.5).
  const busy = (<u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) != 0;
  const ifSet = (vmx.vmread(V.GUEST_RFLAGS) & (1 << 9)) != 0;
  const shadow = (<u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE) &
    (V.INTERRUPTIBILITY_BLOCKING_BY_STI | V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS)) != 0;
  if (busy || !ifSet || shadow) {
    setWindow(true);
    return;
  }
  events.injectInterrupt(<u32>v);
  lapic.acknowledge(<u32>v);
  if (<u32>vmx.vmread(V.GUEST_ACTIVITY_STATE) != V.ACTIVITY_STATE_ACTIVE)
    vmx.vmwrite(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  setWindow(false);
}

// Interrupt window (7) and preemption timer (52) exits only bring control
// back; deliver() does the rest before the next entry.
export function handleWake(reason: u32): i32 {
  return RESUME;
}

// HLT with RFLAGS.IF = 1: the guest sleeps until an interrupt. Returns
// false when nothing can ever wake it (no pending vector, no armed timer).
// The wait is done here, before the entry that delivers the interrupt;
// the interrupt then returns to the instruction after HLT.
export function haltUntilInterrupt(): bool {
  let now = cpu.rdtsc();
  if (lapic.pendingVector(now) >= 0) return true;
  const deadline = lapic.nextTimerDeadline();
  if (deadline == u64.MAX_VALUE) return false;
  while (now < deadline) now = cpu.rdtsc();
  return true;
}
