// INIT and SIPI for L1 in VMX operation (SDM Vol. 3C 24.8 "Restrictions on
// VMX operation": INIT blocked in VMX root operation; 26.2 "Other causes of
// VM exits": INIT signals and SIPIs; 27.7.2 "Activity state": what each
// state blocks; 28.2.1: the SIPI exit's qualification is the vector).
// vm/apstart.ts decides what an INIT or SIPI means for a vCPU; this is the
// nested side: the VM exits to L1, and L2's wait-for-SIPI activity state.
//
// L2 in wait-for-SIPI (L1's VM entry with activity state 3, offered in
// IA32_VMX_MISC bit 8, caps.ts) does not run: the vCPU sleeps as one
// waiting for SIPI (runState RUN_WAIT_SIPI with inL2, vmcs02 merged and
// kept) and gives up the processor (vm/sched.ts). The processor never
// enters vmcs02 in that state: there, nothing L0 has would bring control
// back (the VMX-preemption timer does not count in wait-for-SIPI, 26.5.1,
// and no real SIPI comes). External interrupts, NMIs and INIT are blocked
// in that state (27.7.2): L1's interrupts wait in its APIC, an NMI IPI
// waits in the vCPU (delivered to L1 after the SIPI exit), and an INIT is
// held (vm/apstart.ts) as in VMX root operation. A SIPI (vm/ipi.ts,
// vm/apstart.ts) wakes it with the SIPI exit.
// A guest with one vCPU has no other processor to send one: its L2
// entered in wait-for-SIPI would wait for ever, and the guest stops, as
// for an L2 entered in HLT that nothing can wake (l2halt.ts).
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as reflect from "./reflect";
import * as shadow from "./shadow";
import * as evmcs from "./evmcs";
import * as l2halt from "./l2halt";
import * as launch from "./launch";
import * as events from "../vm/events";

// launch.ts calls entered() through this reference, which install.ts
// assigns (at module start the function's globals are not declared yet):
// called directly, binaryen inlines it into launch.ts (one caller), which
// cost every nested entry 13 ticks (make bench, L2 CPUID via L1).
export let afterEntry: (vcpu: Vcpu, activity: u32) => i32 = notInstalled; // machine-wide: a code reference
function notInstalled(vcpu: Vcpu, activity: u32): i32 {
  return 0; // exits.RESUME (install.ts runs before any guest)
}

// L1's VM entry into L2 has just completed (launch.ts, vmcs02 current and
// merged) with activity state `activity` not active.
export function entered(vcpu: Vcpu, activity: u32): i32 {
  const n = vcpu.nested;
  if (activity == V.ACTIVITY_STATE_WAIT_FOR_SIPI) {
    // INIT is blocked in this state too (27.7.2): a held one stays held.
    if (vcpu.vm.vcpuCount < 2) {
      print.say("nested: L2 entered in the wait-for-SIPI state, and the guest has no other vCPU that could send it a SIPI: waiting forever (SDM Vol. 3C 27.7.2)");
      return exits.stop(vcpu, config.OUTCOME_HALT);
    }
    vcpu.runState = R.RUN_WAIT_SIPI;
    vcpu.queue.sliceEnd = 0;
    return exits.RESUME;
  }
  // L2 entered in the HLT state that nothing can end (27.7.2).
  if (l2halt.enteredHalted(n) && !l2halt.canWake(vcpu)) return l2halt.haltedForever(vcpu);
  return exits.RESUME;
}

// L1's VMLAUNCH and VMRESUME in a guest with several vCPUs (handlers.ts
// registers this for such a guest only, so that the entry of the others is
// what it was): INIT is not blocked in VMX non-root operation, so one held
// since L1 was in VMX root operation is the INIT-signal exit right after
// the entry, before L2's first instruction (from HLT too: the exit saves
// activity state HLT, 28.3.4). Not after an entry into wait-for-SIPI,
// which blocks it (the vCPU then sleeps, entered()).
export function launchSmp(vcpu: Vcpu, reason: u32): i32 {
  const r = launch.handle(vcpu, reason);
  if (r != exits.RESUME || !vcpu.initPending || !vcpu.nested.inL2 || vcpu.runState != R.RUN_ACTIVE) return r;
  vcpu.initPending = false;
  return signalExit(vcpu, V.EXIT_REASON_INIT_SIGNAL, 0);
}

// The INIT-signal exit (reason 3, qualification 0) or the SIPI exit
// (reason 4, qualification the vector) to L1, vmcs02 current: L2's state
// saved as for any exit (activity state included: HLT, or wait-for-SIPI
// for a SIPI exit, 28.3.4), no instruction information (26.2: such exits
// do not change register state). An event vmcs02 was about to inject into
// L2 (one whose delivery an exit to L0 interrupted, or L1's interrupt that
// L0 gives L2) had its delivery cut short by the exit: it goes to vmcs12's
// IDT-vectoring fields (28.2.4), as the processor reports an exit during
// event delivery, so that L1 can inject it again.
export function signalExit(vcpu: Vcpu, reason: u32, qualification: u64): i32 {
  const n = vcpu.nested;
  const info = <u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO);
  const pending = (info & V.INTR_INFO_VALID) != 0;
  let ec: u64 = 0;
  let len: u64 = 0;
  if (pending) {
    ec = vmx.vmread(V.VM_ENTRY_EXCEPTION_ERROR_CODE);
    len = vmx.vmread(V.VM_ENTRY_INSTRUCTION_LENGTH);
    events.writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, 0);
  }
  const r = reflect.reflectSynthetic(vcpu, reason, qualification, 0);
  if (!pending || r != exits.RESUME) return r;
  // (vmcs01 current now; the exit's fields were pushed to L1's shadow VMCS
  // or eVMCS: again, with these.)
  state.write(n, V.IDT_VECTORING_INFO, info & ~(<u32>1 << 12));
  state.write(n, V.IDT_VECTORING_ERROR_CODE, ec);
  state.write(n, V.VM_EXIT_INSTRUCTION_LENGTH, len);
  state.markShadowAll(n);
  shadow.push(vcpu);
  if (n.evmcs != state.INVALID) evmcs.push(n);
  return r;
}
