// CPUID exits (reason 10; exits unconditionally, SDM Vol. 3C 26.1.2). The
// guest sees the host's processor minus what the hypervisor does not
// virtualise, plus the hypervisor leaves (docs/guest-interface.md).
import * as cpu from "../../hw/cpu";
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as vcpu from "../vcpu";
import * as vmcs01 from "../vmcs01";
import * as events from "../events";
import * as profile from "../profile";
import * as nested from "../../nested/state";
import * as ident from "../../cpu/ident";
import { RESUME } from "../exits";

const out: usize = memory.data(16, 16);

export const HV_LEAF_BASE: u32 = 0x40000000;
export const HV_LEAF_MAX: u32 = 0x40000001;
export const HV_INTERFACE_VERSION: u32 = 1;
// "ASHypervisor" as EBX, ECX, EDX.
const SIG_EBX: u32 = 0x79485341; // "ASHy"
const SIG_ECX: u32 = 0x76726570; // "perv"
const SIG_EDX: u32 = 0x726f7369; // "isor"

// Leaf 1 ECX bits hidden: MONITOR (3), VMX (5), SMX (6), PDCM (15), x2APIC
// (21), TSC-deadline (24); OSXSAVE (27) follows the guest's CR4. HYPERVISOR
// (31) is set. PCID (17) passes: CR4.PCIDE is the guest's (not in the CR4
// guest/host mask), so the processor itself checks and applies it.
const L1_ECX_HIDE: u32 = (1 << 3) | (1 << 5) | (1 << 6) | (1 << 15) | (1 << 21) | (1 << 24) | (1 << 27);
// Leaf 7.0 EBX: INVPCID (10) only where the VMCS enables it (vmcs01.ts);
// RTM (11), HLE (4) pass. ECX: WAITPKG (5) is not enabled.
const L7_EBX_INVPCID: u32 = 1 << 10;
const L7_ECX_HIDE: u32 = 1 << 5;

export function handle(reason: u32): i32 {
  if (profile.enabled) profile.sample();
  const leaf = <u32>vcpu.reg(vcpu.RAX);
  const sub = <u32>vcpu.reg(vcpu.RCX);
  let a: u32 = 0, b: u32 = 0, c: u32 = 0, d: u32 = 0;
  if ((leaf & 0xffffff00) == HV_LEAF_BASE) {
    if (leaf == HV_LEAF_BASE) {
      a = HV_LEAF_MAX;
      b = SIG_EBX;
      c = SIG_ECX;
      d = SIG_EDX;
    } else if (leaf == HV_LEAF_MAX) {
      a = HV_INTERFACE_VERSION;
      b = ident.nestingLevel + 1; // the guest's level: L1 under a bare-metal hypervisor
    }
  } else {
    cpu.cpuid(leaf, sub, out);
    a = load<u32>(out);
    b = load<u32>(out, 4);
    c = load<u32>(out, 8);
    d = load<u32>(out, 12);
    if (leaf == 1) {
      c &= ~L1_ECX_HIDE;
      if (nested.enabled) c |= 1 << 5; // VMX offered (nested=on)
      c |= 1 << 31;
      if ((vmx.vmread(V.GUEST_CR4) & V.X86_CR4_OSXSAVE) != 0 && (c & (1 << 26)) != 0) c |= 1 << 27;
      b &= 0x00ffffff; // initial APIC ID 0 (one vCPU)
    } else if (leaf == 7 && sub == 0) {
      if (!vmcs01.invpcidEnabled) b &= ~L7_EBX_INVPCID;
      c &= ~L7_ECX_HIDE;
    } else if (leaf == 0xa) {
      a = 0; // no performance monitoring (0xA: version 0)
      b = 0;
      c = 0;
      d = 0;
    } else if (leaf == 0xb || leaf == 0x1f) {
      d = 0; // x2APIC ID of the one vCPU
    }
  }
  // CPUID writes all four registers, zero-extending in 64-bit mode.
  vcpu.setReg(vcpu.RAX, a);
  vcpu.setReg(vcpu.RBX, b);
  vcpu.setReg(vcpu.RCX, c);
  vcpu.setReg(vcpu.RDX, d);
  events.skipInstruction();
  return RESUME;
}
