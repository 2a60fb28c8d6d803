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

let adjust: u64 = 0; // IA32_TSC_ADJUST
let pendingL1: u64 = 0; // added to vmcs01's offset when it is current again

export function reset(): void {
  adjust = 0;
  pendingL1 = 0;
}

// vmcs02's offset = L1's + vmcs12's (when L1 uses offsetting); the part
// that is vmcs12's is set by the nested merge (vmcs02.ts) and stays while
// L2 runs.
let l2Part: u64 = 0;
export function setL2Part(v: u64): void {
  l2Part = v;
}

// L1's TSC. l2: vmcs02 is current (its offset has L1's changes already).
export function read(l2: bool): u64 {
  return cpu.rdtsc() + vmx.vmread(V.TSC_OFFSET) - (l2 ? l2Part : 0);
}

function move(delta: u64, l2: bool): void {
  vmx.vmwrite(V.TSC_OFFSET, vmx.vmread(V.TSC_OFFSET) + delta);
  if (l2) pendingL1 += delta;
}

export function write(v: u64, l2: bool): void {
  const delta = v - read(l2);
  adjust += delta;
  move(delta, l2);
}

export function readAdjust(): u64 {
  return adjust;
}

export function writeAdjust(v: u64, l2: bool): void {
  const delta = v - adjust;
  adjust = v;
  move(delta, l2);
}

// vmcs01 current again after L2 (an exit to L1, a failed nested entry).
export function toVmcs01(): void {
  if (pendingL1 == 0) return;
  vmx.vmwrite(V.TSC_OFFSET, vmx.vmread(V.TSC_OFFSET) + pendingL1);
  pendingL1 = 0;
}
