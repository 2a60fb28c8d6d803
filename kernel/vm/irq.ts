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
import * as nesting from "./nesting";
import * as intbus from "./intbus";
import * as ipi from "./ipi";
import * as apicv from "./apicv";
import * as vmcs01 from "./vmcs01";

export const SLICE: u64 = 1 << 24; // preemption-timer ticks between forced exits

// A vCPU's interrupt-delivery state (vcpu.irq): what vmcs01's
// interrupt-window control and preemption-timer value are, and the guest's
// time budget.
@unmanaged export class IrqState {
  windowExiting: bool = false;
  nmiWindowExiting: bool = false;
  // An NMI for the vCPU not yet delivered (raiseNmi), and whether vmcs01
  // can ask for an NMI window (it has "virtual NMIs", 25.3).
  nmiPending: bool = false;
  nmiWindowOk: bool = false;
  // No interrupt-window exiting, no NMI pending and the timer at one slice:
  // what an APIC that is off needs, so the one test of the exit path's fast
  // case.
  quiet: bool = false;
  timerValue: u64 = 0; // what the VMCS holds (reloaded by every entry)
  procBase: u32 = 0; // vmcs01's primary controls without interrupt-window exiting
  budgetEnd: u64 = u64.MAX_VALUE; // TSC by which the guest must have ended (max-ticks=)
  // The processor's APIC virtualization runs the APIC (vm/apicv.ts). A new
  // EOI-exit bitmap for vmcs01 keeps `quiet` false (and a stale guest
  // interrupt status the APIC's `idle`).
  vapic: bool = false;
  // The EOI-exit bitmap (apicv.ts), and whether vmcs01 still needs it.
  eoiExit0: u64 = 0;
  eoiExit1: u64 = 0;
  eoiExit2: u64 = 0;
  eoiExit3: u64 = 0;
  eoiExitLoad: bool = false;
  // The vector whose EOI must exit for the guard of apicv.ts (spread VMs on
  // Bochs 2.7): the one a waiting vIRR vector is behind; 0 for none. Part of
  // the bitmap vmcs01 holds.
  eoiGuard: u32 = 0;

  // vmcs01 was just built (vmcs01.create, the VMCS current): start the
  // preemption timer at one slice. The VMCS field is not written back by
  // exits (no "save VMX-preemption timer value"), so an unchanged value
  // costs nothing per entry. ticks: the guest's budget (0: none).
  start(ticks: u64): void {
    this.procBase = <u32>vmx.vmread(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) &
      ~(V.PROC_INTERRUPT_WINDOW_EXITING | V.PROC_NMI_WINDOW_EXITING);
    this.windowExiting = false;
    this.nmiWindowExiting = false;
    this.nmiPending = false;
    this.nmiWindowOk = (<u32>vmx.vmread(V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_VIRTUAL_NMIS) != 0 &&
      (<u32>(caps.proc >> 32) & V.PROC_NMI_WINDOW_EXITING) != 0;
    this.timerValue = 0;
    this.quiet = false;
    if (canPreempt()) {
      vmcs01.writeControl(V.PIN_BASED_VM_EXEC_CONTROL,
        vmx.vmread(V.PIN_BASED_VM_EXEC_CONTROL) | V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER);
      this.setTimer(SLICE);
    }
    this.budgetEnd = ticks == 0 ? u64.MAX_VALUE : cpu.rdtsc() + ticks;
  }

  setTimer(v: u64): void {
    if (v == this.timerValue) return;
    this.timerValue = v;
    this.updateQuiet();
    vmx.vmwrite(V.VMX_PREEMPTION_TIMER_VALUE, v);
  }

  setWindow(on: bool): void {
    if (on == this.windowExiting) return;
    this.windowExiting = on;
    this.updateQuiet();
    this.writeProc();
  }

  setNmiWindow(on: bool): void {
    if (on == this.nmiWindowExiting) return;
    this.nmiWindowExiting = on;
    this.writeProc();
  }

  private writeProc(): void {
    vmcs01.writeControl(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, this.procBase |
      (this.windowExiting ? V.PROC_INTERRUPT_WINDOW_EXITING : 0) |
      (this.nmiWindowExiting ? V.PROC_NMI_WINDOW_EXITING : 0));
  }

  updateQuiet(): void {
    this.quiet = !this.windowExiting && !this.nmiPending && this.timerValue == SLICE && !this.eoiExitLoad;
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
  events.wakeForEvent();
  return true;
}

// ---- NMIs (SDM Vol. 3C 26.6.1.1 injection, 25.2 NMI-window exiting) -------
// An NMI for the vCPU (its APIC's self-NMI, or a test's request after a
// restore): while L2 runs it is the nested part's (vm/nesting.ts l2Nmi:
// an NMI exit to L1 or L2's NMI, as vmcs12 says), else it waits here for
// L1's next entry (deliver). Returns the exit path's RESUME, or what the
// nested part returned.
export function raiseNmi(vcpu: Vcpu): i32 {
  if (vcpu.nested.inL2) return nesting.l2Nmi(vcpu);
  pendNmi(vcpu);
  return RESUME;
}

// The NMI waits for L1's next entry (deliver); `quiet` false so that the
// fast path of deliver sees it.
export function pendNmi(vcpu: Vcpu): void {
  const s = vcpu.irq;
  s.nmiPending = true;
  s.quiet = false;
}

// After a write to the vCPU's local APIC (its page, or the Hyper-V
// APIC-access MSRs): the EOI of a level-triggered interrupt goes to the
// I/O APIC (11.8.5, vm/intbus.ts), an IPI to other vCPUs is delivered
// (vm/ipi.ts), an NMI the APIC sent itself is raised.
// The exit path's answer (raiseNmi's), else RESUME.
export function apicWritten(vcpu: Vcpu): i32 {
  intbus.broadcastEoi(vcpu);
  // An IPI that may name other vCPUs (vcpus=N) goes to them (vm/ipi.ts).
  if (vcpu.apic.takeIpiOut()) ipi.send(vcpu);
  return vcpu.apic.takeNmi() ? raiseNmi(vcpu) : RESUME;
}

// Inject the pending NMI if the guest can take it now: not while another
// event is injected, nor with blocking by NMI, MOV SS or STI (some
// processors refuse NMI injection in the STI shadow, so it waits for the
// end of the shadow as KVM does: an interrupt window, IF being 1 then,
// 26.3.1.5). Otherwise an NMI window (vmcs01 with virtual NMIs), or the
// next exit, at most a time slice away. A halted guest wakes (26.6.1).
// Returns whether it waits for the interrupt window.
function deliverNmi(vcpu: Vcpu): bool {
  const s = vcpu.irq;
  const busy = (<u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) != 0;
  const block = <u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE);
  if (busy || (block & (V.INTERRUPTIBILITY_BLOCKING_BY_NMI | V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS)) != 0) {
    s.setNmiWindow(s.nmiWindowOk);
    return false;
  }
  if ((block & V.INTERRUPTIBILITY_BLOCKING_BY_STI) != 0) return true;
  events.injectNmi();
  s.nmiPending = false;
  s.setNmiWindow(false);
  s.updateQuiet();
  events.wakeForEvent();
  return false;
}

// Before VM entry.
@inline export function deliver(vcpu: Vcpu): void {
  // Fast path: an APIC that is not software-enabled (SVR bit 8, clear after
  // reset) accepts no interrupts and its LVT entries are masked (11.4.7.2);
  // most exits of most guests take this branch. A pending NMI keeps `quiet`
  // false, so that it is seen here at no cost to the fast path. (`idle`: not
  // enabled, and with APIC virtualization no RVI/SVI to give vmcs01.)
  const apic = vcpu.apic;
  const s = vcpu.irq;
  if (apic.idle) {
    if (!s.quiet) {
      if (s.vapic) apicv.update(vcpu);
      s.setWindow(s.nmiPending && deliverNmi(vcpu));
      s.setPreemption(u64.MAX_VALUE, 0);
    }
    return;
  }
  // An NMI ranks above maskable interrupts (SDM Vol. 3A 6.9); injecting one
  // makes tryInject below wait for the next window.
  const nmiWaits = s.nmiPending && deliverNmi(vcpu);
  const now = cpu.rdtsc();
  // APIC virtualization: the processor delivers from vIRR (apicv.ts).
  if (s.vapic) {
    s.setWindow(apicv.deliver(vcpu, now) || nmiWaits);
    return;
  }
  const v = apic.pendingVector(now);
  s.setPreemption(apic.nextTimerDeadline(), now);
  if (v < 0) {
    s.setWindow(nmiWaits);
    return;
  }
  s.setWindow(!tryInject(vcpu, <u32>v) || nmiWaits);
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
