// This hypervisor's own use of the Hyper-V enlightened VMCS (TLFS "Nested
// Virtualization": "Enlightened VMCS", "Clean Fields", "Feature Discovery";
// "Virtual Processor Assist Page"), when it runs as L1 on an L0 that
// recommends it — as Linux KVM does on Hyper-V (issue 11 item 4).
//
// Detection (kernel/cpu/ident.ts reads the leaves): the Hyper-V interface
// "Hv#1" (40000001H), the VP assist page MSR available (AccessApicMsrs,
// 40000003H EAX bit 4, which Linux also requires for it), the enlightened
// VMCS recommended (40000004H EAX bit 14) and a version range (4000000AH
// EAX[7:0] lowest, [15:8] highest) containing version 1, the layout
// tools/vmx/table.mjs declares.
//
// Then, before any VMCS exists:
// - the controls whose fields eVMCS v1 lacks are taken out of the
//   capabilities (caps.restrict; KVM's evmcs_sanitize_exec_ctrls does the
//   same), so the kernel never needs such a field: no VMX-preemption timer
//   (vm/irq.ts then lets the guest run until its next exit; a HLT still
//   waits for the APIC timer's deadline), no VMCS shadowing (nested/shadow.ts:
//   every VMREAD/VMWRITE of an L2 hypervisor is emulated), no VM functions,
//   PML, posted interrupts, APIC-access page or APIC virtualization, PAUSE-
//   loop exiting, TSC scaling, tertiary or secondary exit controls, and no
//   state-loading controls whose guest or host field is missing (PERF_GLOBAL_
//   CTRL, PKRS, CET, RTIT_CTL, LBR_CTL, UINV, FRED). What this hypervisor
//   offers its own guests follows (nested/caps.ts intersects with these);
// - VMCS regions carry the eVMCS version at offset 0 (caps.vmcsRevision);
// - every processor gets a VP assist page of its own (MSR 40000073H, bit 0
//   enable), and vmx.enlighten tells boot/imports/vmx.c to use the eVMCS:
//   VMPTRLD writes CurrentNestedVmcs and EnlightenVmEntry in that page,
//   VMREAD/VMWRITE become accesses to the eVMCS that clear the clean bits
//   of what they change, VM exits read the exit information L0 wrote back.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as pages from "../mm/pages";
import * as ident from "../cpu/ident";
import * as cmdline from "../boot/cmdline";
import * as caps from "./caps";
import * as V from "../arch/vmx";

export let inUse: bool = false; // machine-wide: chosen once at start-up

const HV_ACCESS_APIC_MSRS: u32 = 1 << 4; // 40000003H EAX: the APIC MSRs and the VP assist page MSR
const HV_ENLIGHTENED_VMCS_RECOMMENDED: u32 = 1 << 14; // 40000004H EAX
const VP_ASSIST_ENABLE: u64 = 1;

// The controls eVMCS v1 (without the 2022 fields) can express. Pin-based:
// not the preemption timer (no timer-value field), not posted interrupts
// (no vector or descriptor fields).
const PIN_KEEP: u32 = V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING | V.PIN_VIRTUAL_NMIS;
// Primary: all but the tertiary controls (no field for them).
const PROC_KEEP: u32 = ~V.PROC_ACTIVATE_TERTIARY_CONTROLS;
// Secondary: the exiting and instruction-enable controls, EPT, VPID,
// unrestricted guest, x2APIC-mode virtualization (the virtual-APIC page
// and TPR threshold are eVMCS fields), XSAVES (XSS-exiting bitmap) and
// ENCLS exiting (its bitmap); not those that need the APIC-access address,
// EOI-exit bitmaps and guest interrupt status, PLE gap/window, VM-function
// controls and EPTP list, VMREAD/VMWRITE bitmaps, PML address, #VE
// information address, PASID directories, SPP table, TSC multiplier,
// PCONFIG and ENCLV bitmaps, the instruction-timeout control.
const PROC2_KEEP: u32 = V.PROC2_ENABLE_EPT | V.PROC2_DESCRIPTOR_TABLE_EXITING | V.PROC2_ENABLE_RDTSCP |
  V.PROC2_VIRTUALIZE_X2APIC_MODE | V.PROC2_ENABLE_VPID | V.PROC2_WBINVD_EXITING | V.PROC2_UNRESTRICTED_GUEST |
  V.PROC2_RDRAND_EXITING | V.PROC2_ENABLE_INVPCID | V.PROC2_ENABLE_ENCLS_EXITING | V.PROC2_RDSEED_EXITING |
  V.PROC2_CONCEAL_VMX_FROM_PT | V.PROC2_ENABLE_XSAVES_XRSTORS | V.PROC2_PT_USES_GUEST_PHYSICAL_ADDRESSES |
  V.PROC2_ENABLE_USER_WAIT_AND_PAUSE | V.PROC2_VMM_BUS_LOCK_DETECTION;
// Exit: not saving the preemption timer, not the controls whose host or
// guest field is missing (PERF_GLOBAL_CTRL, CET, PKRS, the secondary exit
// controls), not clearing LBR_CTL/UINV (the 2022 and later state).
const EXIT_KEEP: u32 = V.EXIT_SAVE_DEBUG_CONTROLS | V.EXIT_HOST_ADDRESS_SPACE_SIZE |
  V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT | V.EXIT_SAVE_IA32_PAT | V.EXIT_LOAD_IA32_PAT | V.EXIT_SAVE_IA32_EFER |
  V.EXIT_LOAD_IA32_EFER | V.EXIT_CLEAR_IA32_BNDCFGS | V.EXIT_CONCEAL_VMX_FROM_PT | V.EXIT_CLEAR_IA32_RTIT_CTL;
// Entry: the guest fields eVMCS v1 has (debug controls, PAT, EFER, BNDCFGS).
const ENTRY_KEEP: u32 = V.ENTRY_LOAD_DEBUG_CONTROLS | V.ENTRY_IA32E_MODE_GUEST | V.ENTRY_LOAD_IA32_PAT |
  V.ENTRY_LOAD_IA32_EFER | V.ENTRY_LOAD_IA32_BNDCFGS | V.ENTRY_CONCEAL_VMX_FROM_PT;

// Does the parent offer what this hypervisor needs to use an eVMCS?
export function offered(): bool {
  if (!ident.hvInterface) return false;
  if ((ident.hvPrivileges & HV_ACCESS_APIC_MSRS) == 0) return false;
  if ((ident.hvRecommendations & HV_ENLIGHTENED_VMCS_RECOMMENDED) == 0) return false;
  const low = ident.hvNestedFeatures & 0xff;
  const high = (ident.hvNestedFeatures >> 8) & 0xff;
  return low <= V.EVMCS_VERSION && V.EVMCS_VERSION <= high;
}

// Once, after the capability MSRs were read and before any VMCS is made:
// use the eVMCS if offered (and possible with these capabilities).
export function choose(): void {
  if (!offered()) return;
  if (!cmdline.useEvmcs) {
    print.say("vmx: the parent recommends the enlightened VMCS; not used (evmcs=off)");
    return;
  }
  // The reserved bits that are 1 by default (A.2) stay as the processor has them.
  if (!caps.restrict(PIN_KEEP | V.PIN_DEFAULT1, PROC_KEEP, PROC2_KEEP, EXIT_KEEP | V.EXIT_DEFAULT1,
    ENTRY_KEEP | V.ENTRY_DEFAULT1, V.EVMCS_VERSION)) {
    print.say("vmx: the parent recommends the enlightened VMCS, but the processor requires a control eVMCS v1 cannot express: not used");
    return;
  }
  inUse = true;
}

// On each processor, after its VMXON: its VP assist page, enabled, and the
// VMX imports switched to the eVMCS. False (after saying why) on failure.
export function startHere(): bool {
  if (!inUse) return true;
  const page = pages.alloc(1);
  if (page == 0) {
    print.say("vmx: out of memory for the VP assist page");
    return false;
  }
  // (Zeroed by pages.alloc.) TLFS "Virtual Processor Assist Page": bits 63:12 the page's GPA
  // (identity-mapped here), bit 0 enable.
  cpu.wrmsr(V.MSR_HV_VP_ASSIST_PAGE, page | VP_ASSIST_ENABLE);
  if (vmx.enlighten(page) == 0) {
    print.say("vmx: the VP assist page was refused by the VMX imports (a hypervisor bug)");
    return false;
  }
  return true;
}

// The start-up line (after every processor has its page).
export function report(): void {
  if (!inUse) return;
  print.str("hv: vmx: enlightened VMCS (Hyper-V eVMCS v");
  print.dec(V.EVMCS_VERSION);
  // (Under 200 bytes: a parent's console splits longer guest lines.)
  print.str(") in use: VMREAD/VMWRITE are memory accesses, clean fields name changes;");
  print.str(" unused: preemption timer, VMCS shadowing, VMFUNC, PML, APIC virtualization");
  print.nl();
}
