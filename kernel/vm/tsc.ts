// The time-stamp counter of the guest's processor (SDM Vol. 3B 18.17):
// the physical TSC plus vmcs01's TSC offset ("use TSC offsetting" is always
// on in vmcs01). WRMSR to IA32_TIME_STAMP_COUNTER and to IA32_TSC_ADJUST
// (18.17.3: a write to either moves both by the same amount) change that
// offset. With nested=on the guest is L1 and its processor's TSC is what an
// MSR-load list or L2's unintercepted WRMSR writes too (SDM Vol. 3C 26.4,
// 28.6: "as WRMSR would"; WRMSR of IA32_TSC in VMX non-root operation
// writes the TSC itself, not TSC + offset): while vmcs02 is current the
// change goes into vmcs02's offset at once (L2 runs on L1's offset plus
// vmcs12's) and into vmcs01's when it is current again (toVmcs01).
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import { Vcpu } from "./vcpu";
import * as vmcs01 from "./vmcs01";

// A vCPU's TSC state (vcpu.tsc) beyond vmcs01's offset.
@unmanaged export class TscState {
  adjust: u64 = 0; // IA32_TSC_ADJUST
  pendingL1: u64 = 0; // added to vmcs01's offset when it is current again
  // vmcs02's offset = L1's + vmcs12's (when L1 uses offsetting); the part
  // that is vmcs12's is set by the nested merge (vmcs02.ts) and stays while
  // L2 runs.
  l2Part: u64 = 0;

  reset(): void {
    this.adjust = 0;
    this.pendingL1 = 0;
    this.l2Part = 0;
  }
}

export function setL2Part(vcpu: Vcpu, v: u64): void {
  vcpu.tsc.l2Part = v;
}

// L1's TSC. l2: vmcs02 is current (its offset has L1's changes already).
export function read(vcpu: Vcpu, l2: bool): u64 {
  return cpu.rdtsc() + vmx.vmread(V.TSC_OFFSET) - (l2 ? vcpu.tsc.l2Part : 0);
}

function move(t: TscState, delta: u64, l2: bool): void {
  vmcs01.writeControl(V.TSC_OFFSET, vmx.vmread(V.TSC_OFFSET) + delta);
  if (l2) t.pendingL1 += delta;
}

export function write(vcpu: Vcpu, v: u64, l2: bool): void {
  const t = vcpu.tsc;
  const delta = v - read(vcpu, l2);
  t.adjust += delta;
  move(t, delta, l2);
}

export function readAdjust(vcpu: Vcpu): u64 {
  return vcpu.tsc.adjust;
}

export function writeAdjust(vcpu: Vcpu, v: u64, l2: bool): void {
  const t = vcpu.tsc;
  const delta = v - t.adjust;
  t.adjust = v;
  move(t, delta, l2);
}

// vmcs01 current again after L2 (an exit to L1, a failed nested entry).
// (Inline: nothing pending, the usual case, costs no call on the exit path.)
@inline export function toVmcs01(vcpu: Vcpu): void {
  if (vcpu.tsc.pendingL1 != 0) applyToVmcs01(vcpu);
}
function applyToVmcs01(vcpu: Vcpu): void {
  const t = vcpu.tsc;
  vmcs01.writeControl(V.TSC_OFFSET, vmx.vmread(V.TSC_OFFSET) + t.pendingL1);
  t.pendingL1 = 0;
}
