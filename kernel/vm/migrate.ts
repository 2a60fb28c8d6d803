// Moving the running vCPU to another processor (the test option
// migrate=N: every N exits). A VMCS is cached by the processor it is
// active on and must be VMCLEARed there before another processor may load
// it (SDM Vol. 3C 25.11.1); VMCLEAR also makes it "clear", so the next
// entry on the new processor is a VMLAUNCH (25.11.3). The host-state area
// is rewritten for the new processor's tables. State that VMX does not
// switch — the pass-through MSRs, XCR0 and the extended state beyond x87/SSE
// (xstate.ts) — lives in the processor and is carried over by hand.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as caps from "../vmx/caps";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import * as vmcs01 from "./vmcs01";
import * as xstate from "./xstate";
import * as nesting from "./nesting";

export let every: u32 = 0; // machine-wide: the migrate=N option (0 = never); each guest's count is vm.migrations

// What the processor holds of a vCPU and VMX does not switch — the
// pass-through MSRs without a VMCS field (vmcs01.UNSWITCHED) and the
// XSAVE-managed state — out of the processor into the vCPU (carryOut), and
// into the processor that runs it next (carryIn): a migration, a switch
// between the vCPUs of a run queue (sched.ts), a queue's thread starting
// (guest.ts).
export function carryOut(vcpu: Vcpu): void {
  const un = vmcs01.UNSWITCHED;
  for (let i = 0; i < un.length; i++) store<u64>(vcpu.msrsOut + (<usize>i << 3), cpu.rdmsr(unchecked(un[i])));
  xstate.save(vcpu);
}
export function carryIn(vcpu: Vcpu): void {
  const un = vmcs01.UNSWITCHED;
  for (let i = 0; i < un.length; i++) cpu.wrmsr(unchecked(un[i]), load<u64>(vcpu.msrsOut + (<usize>i << 3)));
  xstate.restore(vcpu);
}

// vcpu's VMCSs leave this processor, which may cache them (a nested
// guest's vmcs02 and shadow VMCS too): cleared (SDM Vol. 3C 25.11.1), so
// that the next entry, on whichever processor, is a VMLAUNCH (25.11.3).
// False if a VMCLEAR failed.
export function leaveCpu(vcpu: Vcpu): bool {
  if (!nesting.leaveCpu(vcpu) || vmx.vmclear(vcpu.vmcs) != vmx.VMX_SUCCEED) return false;
  vcpu.setLaunched(false);
  return true;
}

// vcpu's VMCSs become this processor's: the host state is the processor's,
// rewritten in each; then the one the vCPU runs is current (nested/:
// vmcs02 while L2 runs). False if a VMPTRLD failed.
export function arriveCpu(vcpu: Vcpu): bool {
  if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) return false;
  vmcs01.writeHostState();
  return nesting.arriveCpu(vcpu);
}

export function setEvery(n: u32): void {
  every = n;
}

// Is it time to move? Called after each handled exit.
@inline export function due(vcpu: Vcpu): bool {
  return every != 0 && cpu.count() > 1 && vcpu.exits % <u64>every == 0;
}

// Move to the next processor. Returns false (after printing why) when the
// VMCS cannot be cleared or loaded.
export function move(vcpu: Vcpu): bool {
  const from = cpu.index();
  const to = (from + 1) % cpu.count();
  carryOut(vcpu);
  if (!leaveCpu(vcpu)) {
    print.say("migrate: VMCLEAR failed");
    return false;
  }
  if (!cpu.migrate(to)) {
    print.str("hv: migrate: processor ");
    print.dec(to);
    print.str(" is not running");
    print.nl();
    cpu.migrate(from);
  }
  // This processor may still cache translations of the guest's EPT from
  // when the vCPU last ran here (29.4.2); INVEPT elsewhere did not reach
  // them (29.4.3.1: it invalidates on the processor that executes it).
  // Since then tables may have been freed (shadow EPT) and flags cleared
  // (the RAM snapshot, snapshot/ram.ts): drop them all.
  if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);
  if (!arriveCpu(vcpu)) {
    print.say("migrate: VMPTRLD failed");
    return false;
  }
  carryIn(vcpu);
  vcpu.vm.migrations++;
  return true;
}
