// L2 in the HLT activity state (SDM Vol. 3C 25.4.2 activity state; 26.1.3:
// HLT exits only with "HLT exiting"; 27.7.2: VM entry with activity state
// HLT; 28.1 and 28.3.4: a VM exit from the HLT state saves activity state
// HLT, with RIP already past the HLT).
//
// An HLT of L2 that L1 does not intercept completes as on the processor —
// RIP moves past it — and leaves L2 in the HLT state, which vmcs02 keeps:
// the next entry puts the processor into HLT in L2, as a VM entry with
// activity state HLT from L1 does. L0 regains control by vmcs02's
// VMX-preemption timer, set for L1's APIC-timer deadline and for L1's own
// preemption timer (l2irq.ts, ptimer.ts). What wakes L2 is then what wakes
// a halted processor, by the rules L1's interrupts follow while L2 runs
// (l2irq.ts): with external-interrupt exiting an exit 1 to L1 (activity
// state HLT in vmcs12), else the interrupt goes into L2 when its RFLAGS.IF
// is 1 (a vectoring entry leaves HLT, 27.7.2); L1's timer running out is
// an exit 52 from the HLT state. No NMI can reach L1 (L0's APIC sends none).
import * as vmx from "../hw/vmx";
import * as cpu from "../hw/cpu";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as irq from "../vm/irq";
import * as events from "../vm/events";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as ptimer from "./ptimer";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";

const IF: u64 = 1 << 9;

// Can anything still end L2's HLT state (vmcs02 current, L2 halted)?
// Another vCPU's INIT (vcpus=N); L1's preemption timer; interrupt- and
// NMI-window exiting L1 asked for (counted as wake-ups so that no stop is
// ever wrong); an interrupt for L1
// that will arrive and that L2 takes (RFLAGS.IF = 1) or that exits to L1.
export function canWake(vcpu: Vcpu): bool {
  const n = vcpu.nested;
  // Another vCPU may send INIT: the INIT-signal exit to L1 (initsipi.ts).
  if (vcpu.vm.vcpuCount > 1) return true;
  if (ptimer.active(n)) return true;
  if ((<u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) &
    (V.PROC_INTERRUPT_WINDOW_EXITING | V.PROC_NMI_WINDOW_EXITING)) != 0) return true;
  if (!vcpu.apic.enabled() || !irq.interruptCanArrive(vcpu, cpu.rdtsc())) return false;
  if ((<u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL) & V.PIN_EXTERNAL_INTERRUPT_EXITING) != 0) return true;
  return (vmx.vmread(V.GUEST_RFLAGS) & IF) != 0;
}

// Nothing can: L2's processor would stay halted for ever (SDM Vol. 2A HLT:
// only an enabled interrupt, NMI, SMI, INIT, RESET or a debug exception
// resumes it; Vol. 3C 26.5.1 and 26.2: or a VM exit the state allows). As
// for a halted L1 (vm/exit/misc.ts), the guest stops.
export function haltedForever(vcpu: Vcpu): i32 {
  print.say("nested: L2 is in the HLT state with nothing that could wake it (no interrupt for L1 that L2 can take or that exits to L1, no NMI, no VMX-preemption timer): halted forever, as its processor would be (SDM Vol. 2A HLT, Vol. 3C 27.7.2)");
  return exits.stop(vcpu, config.OUTCOME_HALT);
}

// L2's HLT, not intercepted by L1 (vmcs02 current).
export function handleHlt(vcpu: Vcpu): i32 {
  events.skipInstruction();
  vmx.vmwrite(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_HLT);
  return canWake(vcpu) ? exits.RESUME : haltedForever(vcpu);
}

// A nested VM entry that leaves L2 in the HLT state (27.7.2: activity state
// HLT and no event injected, vmcs02 current and merged).
export function enteredHalted(n: Nested): bool {
  return <u32>state.get(n, V.GUEST_ACTIVITY_STATE) == V.ACTIVITY_STATE_HLT &&
    (<u32>state.get(n, V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) == 0;
}
