// L1's VMX-preemption timer for L2 (SDM Vol. 3C 26.5.1 "VMX-Preemption
// Timer", 27.7.4 at VM entry, 28.3.4 "save VMX-preemption timer value").
// With "activate VMX-preemption timer" in vmcs12 the timer is loaded with
// vmcs12's value at each nested VM entry and counts down by one each time
// bit X of the TSC changes (X = VMX_MISC[4:0], the processor's rate, which
// L1 is offered unchanged); when it reaches 0, L2 exits with reason 52 —
// also from the HLT state, and at once when the value is 0 at entry.
//
// L0 keeps the timer as an absolute deadline in units of 2^X TSC ticks,
// counted from the TSC at the nested entry exactly as the processor counts
// bit-X transitions: remaining(t) = deadline - (t >> X). vmcs02's own timer
// (l2irq.ts) is the nearer of this and L0's needs; an exit 52 from L2 is
// L1's only when remaining() is 0 (reflect-decide.ts), else L0's slice.
// L0's time handling L2's exits counts too: for L1 it is time L2 ran.
import * as cpu from "../hw/cpu";
import * as V from "../arch/vmx";
import * as hw from "../vmx/caps";
import * as state from "./state";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";

// The timer's state is the vCPU's deadline (vcpu.nested.ptimerDeadline),
// absolute, so that a snapshot restored later keeps the instant the timer
// runs out at. Whether it runs is vmcs12's: it counts while L2 runs when
// vmcs12 activates it, and vmcs12 cannot change while L2 runs.

export function rate(): u64 {
  return hw.misc & V.VMX_MISC_PREEMPTION_TIMER_RATE_MASK;
}

// Does the timer run? Asked while L2 runs or is being left for L1, when
// vmcs12 is the one L2 was entered with.
@inline export function active(n: Nested): bool {
  return (<u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0;
}

// A nested VM entry (27.7.4): the timer starts from vmcs12's value.
export function entered(n: Nested): void {
  if (!active(n)) return;
  n.ptimerDeadline = (cpu.rdtsc() >> rate()) + (state.get(n, V.VMX_PREEMPTION_TIMER_VALUE) & 0xffffffff);
}

// The timer's value at TSC `now` (0: expired).
export function remaining(vcpu: Vcpu, now: u64): u64 {
  const t = now >> rate();
  const deadline = vcpu.nested.ptimerDeadline;
  return deadline > t ? deadline - t : 0;
}

export function expired(vcpu: Vcpu, now: u64): bool {
  return active(vcpu.nested) && remaining(vcpu, now) == 0;
}

// An exit reflected to L1 (28.3.4): with "save VMX-preemption timer value"
// the timer's value goes to vmcs12 (0 for the exit its expiry caused). The
// timer stops while L1 runs; the next entry loads vmcs12's value again.
// vmcs02 does not hold this field (vmcs02's timer is L0's), so the change
// is only for the next entry's checks.
// (Inline: the test, false for most L1s, costs no call on the exit path.)
@inline export function exitToL1(vcpu: Vcpu): void {
  const n = vcpu.nested;
  if (!active(n)) return;
  saveValue(vcpu);
}
function saveValue(vcpu: Vcpu): void {
  const n = vcpu.nested;
  if ((<u32>state.get(n, V.VM_EXIT_CONTROL) & V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE) != 0)
    state.setSynced(n, V.VMX_PREEMPTION_TIMER_VALUE, remaining(vcpu, cpu.rdtsc()));
}
