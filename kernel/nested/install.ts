// Nested VMX plugged into the vm/ layer, which does not import nested/
// (vm/nesting.ts): kmain calls install() once, before any guest runs. It
// registers the exit handlers of the VMX instructions and assigns the
// references vm/ calls: a guest's set-up and end, vCPU migration, the
// CR0/CR4 bits fixed in VMX operation, the VMX capability MSRs and the
// report. kmain gives `l2Path` to vm/guest.ts's exit loop.
import * as l2nmi from "./l2nmi";
import * as initsipi from "./initsipi";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as nesting from "../vm/nesting";
import { Vcpu } from "../vm/vcpu";
import * as vmcs01 from "../vm/vmcs01";
import * as caps from "./caps";
import * as handlers from "./handlers";
import * as l2exit from "./l2exit";
import * as l2irq from "./l2irq";
import * as vmcs02 from "./vmcs02";
import * as shadow from "./shadow";
import * as report from "./report";

export function install(): void {
  // VMXON ... INVVPID, VMLAUNCH, VMRESUME: emulated with nested=on, #UD
  // otherwise.
  handlers.register();
  nesting.setUp = setUp;
  nesting.tearDown = tearDown;
  nesting.leaveCpu = leaveCpu;
  nesting.arriveCpu = arriveCpu;
  nesting.cr0Allowed = cr0Allowed;
  nesting.cr4Allowed = cr4Allowed;
  nesting.vmxMsrExists = vmxMsrExists;
  nesting.vmxMsrValue = vmxMsrValue;
  nesting.report = report.report;
  nesting.l2Nmi = l2nmi.arrive;
  nesting.signalExit = initsipi.signalExit;
  initsipi.afterEntry = initsipi.entered;
}

// A guest starts on vcpu (vmcs01 current): the shadow VMCS linked when
// asked for and the processor has it. L1 is outside VMX operation, with no
// vmcs02 and its counters at 0, because the vCPU's Nested is fresh with the
// vCPU (vcpus.create). A RAM snapshot of the VM revokes write access
// through this vCPU's shadow EPT too at take and restore: L2's writes
// through shadow EPT bypass L0's EPT flags (one vCPU per guest today). The
// link is made here, not in vm/guest.ts, because the shadow EPT is
// nested/'s.
function setUp(vcpu: Vcpu, on: bool, shadowVmcs: bool): bool {
  // What VMX L1 is offered depends on the VM's hyperv= (caps.ts), which
  // hyperv.start set before this.
  vcpu.nested.hvOffered = vcpu.vm.hvOffered;
  handlers.forGuest(vcpu.vm.hvOffered, vcpu.vm.vcpuCount > 1);
  if (!shadow.setup(vcpu, on && shadowVmcs)) return false;
  const snap = vcpu.vm.ramSnapshot;
  if (snap !== null) snap.shadow = vcpu.nested.shadowEpt;
  return true;
}

// L1's RDMSR of a VMX capability MSR (exit/msr.ts): what its VM offers.
function vmxMsrExists(vcpu: Vcpu, msr: u32): bool {
  return caps.hasMsr(msr, vcpu.nested.hvOffered);
}
function vmxMsrValue(vcpu: Vcpu, msr: u32): u64 {
  return caps.msrValue(msr, vcpu.nested.hvOffered);
}

// The guest has ended (vmcs01 cleared). Its shadow EPT tables go back to
// the allocator with the vCPU (Nested.release, vcpus.destroy).
function tearDown(vcpu: Vcpu): void {
  // vmcs02 may be active here too; clear it before its page is reused (a
  // VMCS region is not written while active, 25.11.1).
  vmcs02.vmclear(vcpu.nested);
  shadow.vmclear(vcpu.nested);
}

// The exit path while L2 runs, for vm/guest.ts's loop, which takes it as a
// type parameter and so calls these directly (inlined: l2exit.handle has
// that one caller, l2irq.deliver is @inline).
@unmanaged export class L2Path {
  // An exit (instead of exits.dispatch): a handler result.
  exit(vcpu: Vcpu, reason: u32): i32 {
    return l2exit.handle(vcpu, reason);
  }
  // L2's interrupts after an exit handled while L2 (still or newly) runs.
  deliver(vcpu: Vcpu): i32 {
    return l2irq.deliver(vcpu);
  }
}
export const l2Path = new L2Path(); // machine-wide: a constant

// vm/migrate.ts moves the vCPU. Before (vmcs01 or vmcs02 current): what L1
// wrote through the shadow VMCS into the cache (shadow.ts), and vmcs02 and
// the shadow VMCS cleared (25.11.1), so that both launch again.
function leaveCpu(vcpu: Vcpu): bool {
  const n = vcpu.nested;
  shadow.beforeMove(vcpu);
  if (!vmcs02.vmclear(n)) return false;
  shadow.vmclear(n);
  vmcs02.cleared(n);
  n.vmcs02.l1Launched = false;
  return true;
}
// After (vmcs01 current on the new processor): the shadow written again,
// vmcs02's host state the new processor's, vmcs02 current while L2 runs.
function arriveCpu(vcpu: Vcpu): bool {
  const n = vcpu.nested;
  shadow.afterMove(vcpu);
  if (!n.vmcs02.initialized) return true;
  if (vmx.vmptrld(n.vmcs02.page) != vmx.VMX_SUCCEED) {
    print.say("migrate: VMPTRLD of vmcs02 failed");
    return false;
  }
  vmcs01.writeHostState();
  if (!n.inL2 && vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) {
    print.say("migrate: VMPTRLD failed");
    return false;
  }
  return true;
}

function cr0Allowed(vcpu: Vcpu, v: u64): bool {
  return !vcpu.nested.vmxOn || caps.cr0Allowed(v);
}
function cr4Allowed(vcpu: Vcpu, v: u64): bool {
  return !vcpu.nested.vmxOn || caps.cr4Allowed(v);
}


