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

// Guest values of the MSRs passed through without VMCS switching, on their
// way from one processor to the next (only within move()).
const CARRIED = vmcs01.UNSWITCHED;
const values = new StaticArray<u64>(CARRIED.length); // machine-wide: scratch of move()

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
  for (let i = 0; i < CARRIED.length; i++) values[i] = cpu.rdmsr(CARRIED[i]);
  xstate.save(vcpu);
  // A nested guest's VMCSs (vmcs02, the shadow VMCS) may be active on this
  // processor too.
  if (!nesting.leaveCpu(vcpu) || vmx.vmclear(vcpu.vmcs) != vmx.VMX_SUCCEED) {
    print.say("migrate: VMCLEAR failed");
    return false;
  }
  vcpu.setLaunched(false);
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
  // Host state is the processor's: rewrite it in each VMCS, then make the
  // one the vCPU runs current again (nested/: vmcs02 while L2 runs).
  if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) {
    print.say("migrate: VMPTRLD failed");
    return false;
  }
  vmcs01.writeHostState();
  if (!nesting.arriveCpu(vcpu)) return false;
  for (let i = 0; i < CARRIED.length; i++) cpu.wrmsr(CARRIED[i], values[i]);
  xstate.restore(vcpu);
  vcpu.vm.migrations++;
  return true;
}
