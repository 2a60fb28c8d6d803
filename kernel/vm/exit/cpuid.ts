// CPUID exits (reason 10; exits unconditionally, SDM Vol. 3C 26.1.2). The
// guest sees the host's processor minus what the hypervisor does not
// virtualise, plus the hypervisor leaves (docs/guest-interface.md). A guest
// with hyperv=on has exit/hyperv.ts's handler in front of this one: it
// answers 40000000H-400001FFH (Hyper-V's leaves, ours at 40000100H) and
// leaves the rest to handle() here, whose path is the same either way.
import * as cpu from "../../hw/cpu";
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import * as vmcs01 from "../vmcs01";
import * as events from "../events";
import * as profile from "../profile";
import * as ident from "../../cpu/ident";
import * as caps from "../../vmx/caps";
import * as xstate from "../xstate";
import { RESUME } from "../exits";

const out: usize = memory.data(16, 16); // machine-wide: CPUID's output (scratch)

export const HV_LEAF_BASE: u32 = 0x40000000;
export const HV_LEAF_MAX: u32 = 0x40000001;
// 2: with the snapshot hypercalls (docs/guest-interface.md); also query 0.
export const HV_INTERFACE_VERSION: u32 = 2;
// "ASHypervisor" as EBX, ECX, EDX.
export const SIG_EBX: u32 = 0x79485341; // "ASHy"
export const SIG_ECX: u32 = 0x76726570; // "perv"
export const SIG_EDX: u32 = 0x726f7369; // "isor"

// Features hidden because their instructions or MSRs are not virtualised
// (SDM Vol. 4 Table 2-2 names the MSRs each CPUID bit makes architectural;
// docs/guest-interface.md lists every MSR's decision).
// Leaf 1 ECX: DTES64 (2) and DS-CPL (4) (IA32_DS_AREA), MONITOR (3), VMX
// (5), SMX (6), EST (7: IA32_PERF_STATUS/CTL), TM2 (8), SDBG (11:
// IA32_DEBUG_INTERFACE), PDCM (15: IA32_PERF_CAPABILITIES), DCA (18: the
// DCA_CAP MSRs), TSC-deadline (24: IA32_TSC_DEADLINE); OSXSAVE (27)
// follows the guest's CR4. x2APIC (21) is offered whatever the processor
// has: the guest's local APIC is software (apic/lapic.ts, 11.12). HYPERVISOR (31) is set. PCID (17) passes:
// CR4.PCIDE is the guest's (not in the CR4 guest/host mask), so the
// processor itself checks and applies it.
const L1_ECX_HIDE: u32 = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 11) |
  (1 << 15) | (1 << 18) | (1 << 24) | (1 << 27);
const L1_ECX_X2APIC: u32 = 1 << 21;
// Leaf 1 EDX: MCA (14: IA32_MCG_*, IA32_MCi_*), DS (21: IA32_DS_AREA and
// the branch-trace bits of IA32_DEBUGCTL), ACPI (22: IA32_THERM_*,
// IA32_CLOCK_MODULATION), TM (29).
const L1_EDX_HIDE: u32 = (1 << 14) | (1 << 21) | (1 << 22) | (1 << 29);
// Leaf 6 (thermal and power management): only ARAT (EAX bit 2, the APIC
// timer runs in every C-state) is kept; the rest names MSRs that are not
// virtualised (IA32_THERM_*, IA32_PACKAGE_THERM_*, HWP, IA32_MPERF/APERF,
// IA32_ENERGY_PERF_BIAS, HDC, hardware feedback).
const L6_EAX_KEEP: u32 = 1 << 2;
// Leaf 7.0 EBX: SGX (2), PQM (12: IA32_PQR_ASSOC, IA32_QM_*), MPX (14:
// IA32_BNDCFGS), PQE (15: IA32_L3_QOS_*), Intel PT (25: IA32_RTIT_*);
// INVPCID (10) only where the VMCS enables it (vmcs01.ts); RTM (11), HLE
// (4) and TSC_ADJUST (1: emulated) pass.
const L7_EBX_HIDE: u32 = (1 << 2) | (1 << 12) | (1 << 14) | (1 << 15) | (1 << 25);
const L7_EBX_INVPCID: u32 = 1 << 10;
// Leaf 7.0 ECX: OSPKE (4) follows the guest's CR4.PKE, as OSXSAVE does in
// leaf 1; WAITPKG (5: IA32_UMWAIT_CONTROL), CET_SS (7: IA32_U_CET,
// IA32_S_CET, IA32_PLx_SSP), TME (13: IA32_TME_*), Key Locker (23), ENQCMD
// (29: IA32_PASID), SGX_LC (30), PKS (31: IA32_PKRS) need state the
// hypervisor does not give guests (caps.CR4_WITHHELD).
const L7_ECX_HIDE: u32 = (1 << 4) | (1 << 5) | (1 << 7) | (1 << 13) | (1 << 23) | (1 << 29) | (1 << 30) | (1 << 31);
// Leaf 7.0 EDX: UINTR (5: IA32_UINTR_*), SRBDS_CTRL (9: IA32_MCU_OPT_CTRL),
// arch LBR (19: IA32_LBR_*), CET_IBT (20), IBRS/IBPB (26: IA32_SPEC_CTRL,
// IA32_PRED_CMD), STIBP (27), L1D_FLUSH (28: IA32_FLUSH_CMD),
// ARCH_CAPABILITIES (29), CORE_CAPABILITIES (30), SSBD (31).
const L7_EDX_HIDE: u32 = (1 << 5) | (1 << 9) | (1 << 19) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 28) |
  (1 << 29) | (1 << 30) | (1 << 31);
const L7_EDX_FSRM: u32 = 1 << 4;
const MISC_ENABLE_FAST_STRINGS: u64 = 1; // IA32_MISC_ENABLE bit 0
// Leaf 7.1 EAX: FRED (17: IA32_FRED_*).
const L7_1_EAX_HIDE: u32 = 1 << 17;
// Leaf 0DH.1 EAX: XSAVES (3: IA32_XSS; "enable XSAVES/XRSTORS" is not set
// in vmcs01, so XSAVES is #UD), XFD (4: IA32_XFD, IA32_XFD_ERR).
const LD_1_EAX_HIDE: u32 = (1 << 3) | (1 << 4);
const LD_1_EAX_XSAVEC: u32 = 1 << 1;

// Features whose CR4 enable bit the guest cannot set (not in CR4_FIXED1 of
// the processor, so not in the guest's CR4 either): hidden with the bit.
// Leaf 7.0 EBX: FSGSBASE (0) / CR4 16, SMEP (7) / 20, SMAP (20) / 21;
// ECX: UMIP (2) / 11, PKU (3) / 22, LA57 (16) / 12.
function hideWithoutCr4(reg: u32, cpuidBit: u32, cr4Bit: u64, allowed: u64): u32 {
  return (allowed & cr4Bit) != 0 ? reg : reg & ~(<u32>1 << cpuidBit);
}

export function handle(vcpu: Vcpu, reason: u32): i32 {
  if (profile.enabled) vcpu.vm.profile.sample();
  const leaf = <u32>vcpu.reg(R.RAX);
  const sub = <u32>vcpu.reg(R.RCX);
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
    // The leaves with something hidden are 1-1FH: one compare for the
    // others (leaf 0 is the benchmark's).
    if (leaf - 1 < 0x1f) {
      switch (leaf) {
        case 1:
          c &= ~L1_ECX_HIDE;
          d &= ~L1_EDX_HIDE;
          if (vcpu.nested.enabled) c |= 1 << 5; // VMX offered (nested=on)
          c |= (1 << 31) | L1_ECX_X2APIC;
          if ((vmx.vmread(V.GUEST_CR4) & V.X86_CR4_OSXSAVE) != 0 && (c & (1 << 26)) != 0) c |= 1 << 27;
          // Initial APIC ID: the vCPU's number (vcpus=N); EBX[23:16] the
          // package's addressable logical-processor IDs, valid with HTT
          // (EDX[28]): the guest's vCPUs are one package (topology()).
          b = (b & 0xffff) | (idSpan(vcpu) << 16) | (vcpu.index << 24);
          if (vcpu.vm.vcpuCount > 1) d |= 1 << 28;
          break;
        case 4:
          // Deterministic cache parameters (SDM Vol. 2A CPUID 04H): EAX[31:26]
          // the package's addressable core IDs - 1, EAX[25:14] the logical
          // processors sharing the cache - 1: one per core for L1 and L2
          // (each vCPU is a core), the whole package for L3. Type 0 (no
          // more caches) stays all zero.
          if ((a & 0x1f) != 0) {
            const span = idSpan(vcpu);
            const sharing = ((a >> 5) & 7) >= 3 ? span - 1 : 0;
            a = (a & 0x3fff) | (sharing << 14) | ((span - 1) << 26);
          }
          break;
        case 6:
          a &= L6_EAX_KEEP;
          b = 0;
          c = 0;
          d = 0;
          break;
        case 7:
          if (sub == 0) {
            b &= ~L7_EBX_HIDE;
            if (!vmcs01.invpcidEnabled) b &= ~L7_EBX_INVPCID;
            const cr4 = caps.cr4Guest();
            b = hideWithoutCr4(b, 0, V.X86_CR4_FSGSBASE, cr4);
            b = hideWithoutCr4(b, 7, V.X86_CR4_SMEP, cr4);
            b = hideWithoutCr4(b, 20, V.X86_CR4_SMAP, cr4);
            c &= ~L7_ECX_HIDE;
            c = hideWithoutCr4(c, 2, V.X86_CR4_UMIP, cr4);
            c = hideWithoutCr4(c, 3, V.X86_CR4_PKE, cr4);
            c = hideWithoutCr4(c, 16, V.X86_CR4_LA57, cr4);
            if ((c & (1 << 3)) != 0 && (vmx.vmread(V.GUEST_CR4) & V.X86_CR4_PKE) != 0) c |= 1 << 4;
            d &= ~L7_EDX_HIDE;
            // FSRM (fast short REP MOVSB) is a property of fast-string
            // operation, which IA32_MISC_ENABLE[0] turns on and off (SDM
            // Vol. 4 Table 2-2): not offered while the guest's MISC_ENABLE
            // says fast strings are off. (Bochs's tigerlake model reports
            // both, which no processor does, and Linux 6.1's memmove then
            // corrupts memory: platform.md.)
            if ((vcpu.msrs.miscEnable & MISC_ENABLE_FAST_STRINGS) == 0) d &= ~L7_EDX_FSRM;
          } else if (sub == 1) a &= ~L7_1_EAX_HIDE;
          break;
        case 0xd:
          // XSAVE (SDM Vol. 1 13.2): the user components of xstate.offered.
          // No supervisor components (IA32_XSS is not offered), no XSAVES
          // (not enabled in the guest's VMCS: it would be #UD) and no XFD:
          // sub-leaf 1 EAX bits 3-4 and ECX/EDX clear, sub-leaves of other
          // components zero.
          if (sub == 0) {
            // EDX:EAX the offered components, ECX the area they need; EBX
            // (the size for the current XCR0, a subset) is the processor's.
            a &= <u32>xstate.offered;
            d &= <u32>(xstate.offered >> 32);
            c = xstate.areaBytes();
          } else if (sub == 1) {
            a &= ~LD_1_EAX_HIDE;
            if ((a & LD_1_EAX_XSAVEC) != 0) b = xstate.compactedBytes(vcpu.xstate.xcr0);
            c = 0;
            d = 0;
          } else if (sub >= 2 && (sub >= 64 || ((xstate.offered >> <u64>sub) & 1) == 0)) {
            a = 0;
            b = 0;
            c = 0;
            d = 0;
          }
          break;
        case 0xa:
          a = 0; // no performance monitoring (0xA: version 0)
          b = 0;
          c = 0;
          d = 0;
          break;
        case 0x15:
          // TSC and core crystal clock (SDM Vol. 2A CPUID leaf 15H: TSC
          // frequency = ECX * EBX / EAX). Linux takes ECX as the local APIC
          // timer's input clock (lapic_timer_period = crystal / HZ, 6.1
          // native_calibrate_tsc); the guest's APIC timer counts TSC ticks
          // (apic/timer.ts), so the crystal offered is the TSC itself: ratio
          // 1/1, ECX = the processor's TSC frequency. Left as it is when
          // the processor gives no ratio or crystal, or a TSC past 32 bits.
          if (a != 0 && b != 0 && c != 0) {
            const hz = <u64>c * <u64>b / <u64>a;
            if (hz <= 0xffffffff) {
              a = 1;
              b = 1;
              c = <u32>hz;
            }
          }
          break;
        case 0xb:
        case 0x1f:
          // Extended topology (SDM Vol. 2A CPUID 0BH/1FH; Vol. 3A 9.9.1):
          // one package of vcpuCount cores with one thread each. Level 0
          // SMT (shift 0, one logical processor), level 1 Core (shift to the
          // package ID, vcpuCount logical processors), then the invalid
          // level (type 0) that ends the list. EDX: the x2APIC ID, the
          // vCPU's number (vcpus=N).
          if (sub == 0) {
            a = 0;
            b = 1;
            c = 1 << 8;
          } else if (sub == 1) {
            a = 31 - clz(idSpan(vcpu));
            b = <u32>max(vcpu.vm.vcpuCount, 1);
            c = (2 << 8) | 1;
          } else {
            a = 0;
            b = 0;
            c = sub & 0xff;
          }
          d = vcpu.index;
          break;
      }
    }
  }
  return answer(vcpu, a, b, c, d);
}

// The guest's processor topology as CPUID describes it (leaves 1, 4,
// 0BH, 1FH): its vCPUs are the cores of one package, APIC ID = core
// number, one thread per core — so that Linux, for one, sees them share a
// package (and takes the boot CPU's delay-loop calibration for the others,
// calibrate_delay_is_known) rather than each a package of its own, which the
// processor's own leaves (one logical processor) would say. The ID span is
// vcpuCount rounded up to a power of two (the package's APIC ID field width).
function idSpan(vcpu: Vcpu): u32 {
  const n = <u32>vcpu.vm.vcpuCount;
  return n <= 1 ? 1 : <u32>1 << (32 - clz(n - 1));
}

// CPUID writes all four registers, zero-extending in 64-bit mode, and
// completes. (@inline: each handler keeps its own copy, no call.)
@inline export function answer(vcpu: Vcpu, a: u32, b: u32, c: u32, d: u32): i32 {
  vcpu.setReg(R.RAX, a);
  vcpu.setReg(R.RBX, b);
  vcpu.setReg(R.RCX, c);
  vcpu.setReg(R.RDX, d);
  events.skipInstruction();
  return RESUME;
}
