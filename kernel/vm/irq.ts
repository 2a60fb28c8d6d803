// Delivering the guest's local-APIC interrupts (SDM Vol. 3C 26.6 event
// injection, 25.6.2 interrupt-window exiting, 26.5.1 VMX-preemption timer).
// Before each VM entry: if the virtual APIC has a deliverable vector and
// the guest can take an interrupt now, inject it; otherwise ask for an
// interrupt-window exit. The VMX-preemption timer always runs: it brings
// control back by the guest APIC timer's deadline when one is armed, and
// otherwise every SLICE ticks, so that a guest that never exits cannot keep
// the hypervisor from its own work (the max-ticks= budget, for one).
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as caps from "../vmx/caps";
import * as events from "./events";
import * as print from "../lib/print";
import * as config from "./config";
import { RESUME, stop } from "./exits";
import { Vcpu } from "./vcpu";

export const SLICE: u64 = 1 << 24; // preemption-timer ticks between forced exits

// A vCPU's interrupt-delivery state (vcpu.irq): what vmcs01's
// interrupt-window control and preemption-timer value are, and the guest's
// time budget.
@unmanaged export class IrqState {
  windowExiting: bool = false;
  // No interrupt-window exiting and the timer at one slice: what an APIC
  // that is off needs, so the one test of the exit path's fast case.
  quiet: bool = false;
  timerValue: u64 = 0; // what the VMCS holds (reloaded by every entry)
  procBase: u32 = 0; // vmcs01's primary controls without interrupt-window exiting
  budgetEnd: u64 = u64.MAX_VALUE; // TSC by which the guest must have ended (max-ticks=)

  // vmcs01 was just built (vmcs01.create, the VMCS current): start the
  // preemption timer at one slice. The VMCS field is not written back by
  // exits (no "save VMX-preemption timer value"), so an unchanged value
  // costs nothing per entry. ticks: the guest's budget (0: none).
  start(ticks: u64): void {
    this.procBase = <u32>vmx.vmread(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & ~V.PROC_INTERRUPT_WINDOW_EXITING;
    this.windowExiting = false;
    this.timerValue = 0;
    this.quiet = false;
    if (canPreempt()) {
      vmx.vmwrite(V.PIN_BASED_VM_EXEC_CONTROL,
        vmx.vmread(V.PIN_BASED_VM_EXEC_CONTROL) | V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER);
      this.setTimer(SLICE);
    }
    this.budgetEnd = ticks == 0 ? u64.MAX_VALUE : cpu.rdtsc() + ticks;
  }

  setTimer(v: u64): void {
    if (v == this.timerValue) return;
    this.timerValue = v;
    this.quiet = !this.windowExiting && v == SLICE;
    vmx.vmwrite(V.VMX_PREEMPTION_TIMER_VALUE, v);
  }

  setWindow(on: bool): void {
    if (on == this.windowExiting) return;
    this.windowExiting = on;
    this.quiet = !on && this.timerValue == SLICE;
    vmx.vmwrite(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, this.procBase | (on ? V.PROC_INTERRUPT_WINDOW_EXITING : 0));
  }

  setPreemption(deadline: u64, now: u64): void {
    if (canPreempt()) this.setTimer(preemptionTicks(deadline, now));
  }
}

export function canPreempt(): bool {
  return (<u32>(caps.pin >> 32) & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0;
}

// The preemption-timer value that returns control by TSC `deadline` (or
// after one slice when there is none, or when it is further away). The
// timer counts down at the TSC rate divided by 2^(VMX_MISC[4:0]).
export function preemptionTicks(deadline: u64, now: u64): u64 {
  if (deadline == u64.MAX_VALUE) return SLICE;
  const rate = <u64>(<u32>caps.misc & 0x1f);
  return min(SLICE, deadline > now ? (deadline - now) >> rate : 0);
}

// Inject local-APIC vector v into the guest of the current VMCS if it can
// take an interrupt now: not while another event is being injected, with
// RFLAGS.IF clear, or in the shadow of STI / MOV SS (26.3.1.5); a halted
// guest wakes. False: the caller waits for the interrupt window.
export function tryInject(vcpu: Vcpu, v: u32): bool {
  const busy = (<u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) != 0;
  const ifSet = (vmx.vmread(V.GUEST_RFLAGS) & (1 << 9)) != 0;
  const shadow = (<u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE) &
    (V.INTERRUPTIBILITY_BLOCKING_BY_STI | V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS)) != 0;
  if (busy || !ifSet || shadow) return false;
  events.injectInterrupt(v);
  vcpu.apic.acknowledge(v);
  if (<u32>vmx.vmread(V.GUEST_ACTIVITY_STATE) != V.ACTIVITY_STATE_ACTIVE)
    vmx.vmwrite(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  return true;
}

// Before VM entry.
@inline export function deliver(vcpu: Vcpu): void {
  // Fast path: an APIC that is not software-enabled (SVR bit 8, clear after
  // reset) accepts no interrupts and its LVT entries are masked (11.4.7.2);
  // most exits of most guests take this branch.
  const apic = vcpu.apic;
  const s = vcpu.irq;
  if (!apic.enabled()) {
    if (!s.quiet) {
      s.setWindow(false);
      s.setPreemption(u64.MAX_VALUE, 0);
    }
    return;
  }
  const now = cpu.rdtsc();
  const v = apic.pendingVector(now);
  s.setPreemption(apic.nextTimerDeadline(), now);
  if (v < 0) {
    s.setWindow(false);
    return;
  }
  s.setWindow(!tryInject(vcpu, <u32>v));
}

// Interrupt window (7) and preemption timer (52) exits only bring control
// back; deliver() does the rest before the next entry. The guest's time
// budget (max-ticks=) is checked here, where a guest that never exits still
// arrives once per slice.
export function handleWake(vcpu: Vcpu, reason: u32): i32 {
  if (cpu.rdtsc() >= vcpu.irq.budgetEnd) {
    print.say("guest: ran past its max-ticks= budget");
    return stop(vcpu, config.OUTCOME_TIMEOUT);
  }
  return RESUME;
}

// Can an interrupt of the virtual local APIC still arrive for the vCPU:
// one pending now, or its timer armed? (The APIC's other sources are the
// vCPU's own IPIs, which a halted vCPU cannot send.) The rule for a halted
// L1 here and for a halted L2 (nested/l2halt.ts).
export function interruptCanArrive(vcpu: Vcpu, now: u64): bool {
  const apic = vcpu.apic;
  return apic.pendingVector(now) >= 0 || apic.nextTimerDeadline() != u64.MAX_VALUE;
}

// HLT with RFLAGS.IF = 1: the guest sleeps until an interrupt. Returns
// false when nothing can ever wake it (no pending vector, no armed timer).
// The wait is done here, before the entry that delivers the interrupt;
// the interrupt then returns to the instruction after HLT.
export function haltUntilInterrupt(vcpu: Vcpu): bool {
  let now = cpu.rdtsc();
  if (!interruptCanArrive(vcpu, now)) return false;
  if (vcpu.apic.pendingVector(now) >= 0) return true;
  const deadline = vcpu.apic.nextTimerDeadline();
  while (now < deadline) now = cpu.rdtsc();
  return true;
}
