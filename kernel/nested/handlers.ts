// The exit handlers for L1's VMX instructions (SDM Vol. 3C 26.1.2: they
// exit unconditionally in VMX non-root operation). With nested=off the guest
// has no VMX (CPUID.1:ECX.VMX = 0) and each is #UD, as on such a processor;
// with nested=on each is emulated (vmxon.ts, vmptr.ts, vmrw.ts,
// invalidate.ts, and VMLAUNCH/VMRESUME in launch.ts). register() is called
// at start (install.ts).
import * as V from "../arch/vmx";
import * as events from "../vm/events";
import * as exits from "../vm/exits";
import * as launch from "./launch";
import * as initsipi from "./initsipi";
import * as vmxonInsn from "./vmxon";
import * as vmptr from "./vmptr";
import * as vmrw from "./vmrw";
import * as invalidate from "./invalidate";
import { Vcpu } from "../vm/vcpu";

function noVmx(): i32 {
  events.injectUD();
  return exits.RESUME;
}

function onVmxon(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmxonInsn.vmxon(vcpu, reason) : noVmx();
}
function onVmxoff(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmxonInsn.vmxoff(vcpu, reason) : noVmx();
}
function onVmclear(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmptr.vmclear(vcpu, reason) : noVmx();
}
function onVmptrld(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmptr.vmptrld(vcpu, reason) : noVmx();
}
function onVmptrst(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmptr.vmptrst(vcpu, reason) : noVmx();
}
function onVmread(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmrw.vmread(vcpu, reason) : noVmx();
}
// A guest with hyperv=on may VMREAD with an enlightened VMCS in use
// (vmrw.vmreadHv); nested=on comes with it (the eVMCS needs VMX), but the
// test stays: the handler is the guest's whatever its options.
function onVmreadHv(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmrw.vmreadHv(vcpu, reason) : noVmx();
}
function onVmwrite(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? vmrw.vmwrite(vcpu, reason) : noVmx();
}
function onInvept(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? invalidate.invept(vcpu, reason) : noVmx();
}
function onInvvpid(vcpu: Vcpu, reason: u32): i32 {
  return vcpu.nested.enabled ? invalidate.invvpid(vcpu, reason) : noVmx();
}

export function register(): void {
  exits.register(V.EXIT_REASON_VMXON, onVmxon);
  exits.register(V.EXIT_REASON_VMXOFF, onVmxoff);
  exits.register(V.EXIT_REASON_VMCLEAR, onVmclear);
  exits.register(V.EXIT_REASON_VMPTRLD, onVmptrld);
  exits.register(V.EXIT_REASON_VMPTRST, onVmptrst);
  exits.register(V.EXIT_REASON_VMREAD, onVmread);
  exits.register(V.EXIT_REASON_VMWRITE, onVmwrite);
  exits.register(V.EXIT_REASON_INVEPT, onInvept);
  exits.register(V.EXIT_REASON_INVVPID, onInvvpid);
  exits.register(V.EXIT_REASON_VMLAUNCH, launch.handle);
  exits.register(V.EXIT_REASON_VMRESUME, launch.handle);
}

// A guest starts (install.ts setUp): with hyperv=on its VMREAD exits go to
// onVmreadHv, so that a guest without it runs exactly the VMREAD it ran
// before (as exit/hyperv.ts start() does for CPUID and VMCALL); with
// several vCPUs (smp) VMLAUNCH and VMRESUME go to initsipi.launchSmp (an
// INIT held in VMX root operation is an exit after the entry).
export function forGuest(hv: bool, smp: bool): void {
  exits.register(V.EXIT_REASON_VMREAD, hv ? onVmreadHv : onVmread);
  exits.register(V.EXIT_REASON_VMLAUNCH, smp ? initsipi.launchSmp : launch.handle);
  exits.register(V.EXIT_REASON_VMRESUME, smp ? initsipi.launchSmp : launch.handle);
}
