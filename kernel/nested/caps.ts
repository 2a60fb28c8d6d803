// The VMX capabilities offered to L1 (SDM Vol. 3D Appendix A): what the
// processor has, intersected with what the hypervisor emulates for L1 (the
// controls vmcs02 can honour). L1 never sees a control the hypervisor would
// not honour. EPT (run on shadow EPT tables, shadowept.ts) and unrestricted
// guest are offered when the processor has them, VPID with INVVPID, and VM
// functions with EPTP switching (emulated, vmfunc.ts) (A.10, A.11); the
// VMX-preemption timer at the processor's rate (ptimer.ts); EPT accessed
// and dirty flags and "enable PML" (emulated, eptad.ts); VMCS shadowing for
// L1's L2 (emulated, shadow12.ts).
import * as V from "../arch/vmx";
import * as hw from "../vmx/caps";

// L1's VMCS revision identifier: our own layout, not the processor's, so an
// L1 that hands us a hardware VMCS is caught (VMPTRLD error 11).
export const REVISION_ID: u32 = 0x41534856; // "VHSA"

// Controls the hypervisor implements for L1, per control word (1 = may be
// set by L1). Anything not listed stays 0 in what L1 may set.
const PIN_EMULATED: u32 = V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING | V.PIN_VIRTUAL_NMIS |
  V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER;
const PROC_EMULATED: u32 = V.PROC_INTERRUPT_WINDOW_EXITING | V.PROC_USE_TSC_OFFSETTING | V.PROC_HLT_EXITING |
  V.PROC_INVLPG_EXITING | V.PROC_MWAIT_EXITING | V.PROC_RDPMC_EXITING | V.PROC_RDTSC_EXITING |
  V.PROC_CR3_LOAD_EXITING | V.PROC_CR3_STORE_EXITING | V.PROC_CR8_LOAD_EXITING | V.PROC_CR8_STORE_EXITING |
  V.PROC_NMI_WINDOW_EXITING | V.PROC_MOV_DR_EXITING | V.PROC_UNCONDITIONAL_IO_EXITING | V.PROC_USE_IO_BITMAPS |
  V.PROC_USE_MSR_BITMAPS | V.PROC_MONITOR_EXITING | V.PROC_PAUSE_EXITING | V.PROC_ACTIVATE_SECONDARY_CONTROLS |
  V.PROC_USE_TPR_SHADOW;
// Secondary: the exiting controls (descriptor-table, WBINVD, RDRAND,
// RDSEED, PAUSE-loop: vmcs02 takes them from vmcs12 and reflect-decide.ts
// gives their exits to L1), the instruction enables whose 0 setting makes
// the instruction #UD (RDTSCP/RDPID, INVPCID: vmcs02 takes vmcs12's setting,
// vmcs02.ts), EPT, unrestricted guest, VPID, VM functions, PML and VMCS
// shadowing (emulated); "virtualize APIC accesses", "APIC-register
// virtualization" and virtual-interrupt delivery with "use TPR shadow" (the
// processor's: vmcs02 takes vmcs12's pages at their host-physical
// addresses, its EOI-exit bitmaps and guest interrupt status, their exits go
// to L1, vmcs02.ts, reflect-decide.ts); "virtualize x2APIC mode" (the
// processor's too: vmcs02 takes it from vmcs12 and lets L2's virtualized
// x2APIC MSR accesses through its MSR bitmap where vmcs12's does,
// vmcs02.ts setupX2apicMsrs). Withheld (docs/guest-interface.md):
// "enable XSAVES/XRSTORS" (L0 does not virtualize IA32_XSS, so L1 could
// not give L2 the XSS it chose), posted interrupts (issue 12), #VE,
// ENCLS/ENCLV exiting, TSC scaling, user wait and pause, PCONFIG, sub-page
// permissions, mode-based execute.
const PROC2_EMULATED: u32 = V.PROC2_DESCRIPTOR_TABLE_EXITING | V.PROC2_ENABLE_RDTSCP | V.PROC2_WBINVD_EXITING |
  V.PROC2_ENABLE_EPT | V.PROC2_UNRESTRICTED_GUEST | V.PROC2_ENABLE_VM_FUNCTIONS | V.PROC2_ENABLE_VPID |
  V.PROC2_RDRAND_EXITING | V.PROC2_RDSEED_EXITING | V.PROC2_ENABLE_INVPCID | V.PROC2_PAUSE_LOOP_EXITING |
  V.PROC2_ENABLE_PML | V.PROC2_VMCS_SHADOWING | V.PROC2_VIRTUALIZE_APIC_ACCESSES | V.PROC2_APIC_REGISTER_VIRTUALIZATION |
  V.PROC2_VIRTUAL_INTERRUPT_DELIVERY | V.PROC2_VIRTUALIZE_X2APIC_MODE;

// What a guest with the Hyper-V interface (hyperv=on: vm.hvOffered, copied
// into its Nested as n.hvOffered) is NOT offered: the controls the
// enlightened VMCS v1 has no fields for (TLFS HV_VMX_ENLIGHTENED_VMCS; the
// TLFS 2022 fields are not offered, tools/vmx/table.mjs EVMCS update2022):
// posted interrupts (vector, descriptor), the VMX-preemption timer (its
// value) and saving it, APIC-register virtualization and virtual-interrupt
// delivery (EOI-exit bitmaps, guest interrupt status), PAUSE-loop exiting
// (gap, window), VM functions (controls, EPTP list), VMCS shadowing
// (VMREAD/VMWRITE bitmaps), PML (address, index), TSC scaling (multiplier),
// loading IA32_PERF_GLOBAL_CTRL on entry or exit. An L1 that uses the eVMCS
// could not give them values, so an L1 on a Hyper-V interface is told they
// do not exist, as KVM does with eVMCS enabled. One definition for the
// capability MSRs below and for evmcs.ts, which refuses them at an
// enlightened entry (VMfailValid(7)); the entry checks of such a guest
// check against these reduced capabilities (entry-checks-controls.ts), so a
// VMPTRLD'ed vmcs12 with one of them fails as on a processor without it.
// (Some are not offered to any L1: they are listed so that the set is the
// eVMCS's, whatever PIN_EMULATED and the others become.)
export const EVMCS1_PIN_HIDDEN: u32 = V.PIN_PROCESS_POSTED_INTERRUPTS | V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER;
export const EVMCS1_PROC2_HIDDEN: u32 = V.PROC2_APIC_REGISTER_VIRTUALIZATION | V.PROC2_VIRTUAL_INTERRUPT_DELIVERY |
  V.PROC2_PAUSE_LOOP_EXITING | V.PROC2_ENABLE_VM_FUNCTIONS | V.PROC2_VMCS_SHADOWING | V.PROC2_ENABLE_PML |
  V.PROC2_USE_TSC_SCALING;
export const EVMCS1_EXIT_HIDDEN: u32 = V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE | V.EXIT_LOAD_IA32_PERF_GLOBAL_CTRL;
export const EVMCS1_ENTRY_HIDDEN: u32 = V.ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL;

// Secondary controls whose 0 setting makes an instruction raise #UD in VMX
// non-root operation (SDM Vol. 3C 26.3, Table 25-7): RDTSCP and RDPID,
// INVPCID, VMFUNC, XSAVES/XRSTORS, TPAUSE/UMONITOR/UMWAIT, PCONFIG. vmcs02
// must have exactly vmcs12's setting of each: L0 may add exits, never
// enable an instruction L1 disabled for L2.
export const PROC2_INSTRUCTION_ENABLES: u32 = V.PROC2_ENABLE_RDTSCP | V.PROC2_ENABLE_INVPCID |
  V.PROC2_ENABLE_VM_FUNCTIONS | V.PROC2_ENABLE_XSAVES_XRSTORS | V.PROC2_ENABLE_USER_WAIT_AND_PAUSE |
  V.PROC2_ENABLE_PCONFIG;

// IA32_VMX_VMFUNC for L1 (A.11): EPTP switching (function 0), emulated by
// vmfunc.ts, offered when the processor has EPT and VM functions (vmcs02
// needs "enable VM functions" so that L2's VMFUNC exits to L0 instead of
// raising #UD); no other function. 0 for a guest with hyperv=on (no VM
// functions: EVMCS1_PROC2_HIDDEN).
//
// Here and below, `hv`: the capabilities of an L1 with hyperv=on (its
// Nested's hvOffered), without the EVMCS1_*_HIDDEN controls.
export function vmfuncCap(hv: bool): u64 {
  if ((<u32>(proc2(hv) >> 32) & V.PROC2_ENABLE_VM_FUNCTIONS) == 0) return 0;
  return hw.vmfunc & V.VMFUNC_CTL_EPTP_SWITCHING;
}

// IA32_VMX_EPT_VPID_CAP bits the hypervisor implements for L1's EPT
// (ept12.ts walks L1's tables, shadowept.ts builds what L2 runs on):
// execute-only entries, 4-level walks, UC and WB structure memory types,
// 2-MByte and 1-GByte pages, INVEPT single-context and all-context,
// accessed and dirty flags (eptad.ts sets them in L1's entries; offered
// only when the processor has them, because vmcs02's EPTP needs bit 6 for
// L2's guest paging-structure accesses to count as writes). Not 5-level
// walks, no advanced EPT-violation information (the VPID half is
// VPID_CAP_EMULATED below).
const EPT_CAP_EMULATED: u64 = V.EPT_VPID_CAP_EXECUTE_ONLY | V.EPT_VPID_CAP_PAGE_WALK_LENGTH_4 |
  V.EPT_VPID_CAP_MEMTYPE_UC | V.EPT_VPID_CAP_MEMTYPE_WB | V.EPT_VPID_CAP_PDE_2MB_PAGES |
  V.EPT_VPID_CAP_PDPTE_1GB_PAGES | V.EPT_VPID_CAP_INVEPT | V.EPT_VPID_CAP_INVEPT_SINGLE_CONTEXT |
  V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT | V.EPT_VPID_CAP_ACCESSED_DIRTY_FLAGS;

// The VPID half: INVVPID and its four types, emulated on the one VPID L0
// gives L2 (invalidate.ts).
const VPID_CAP_EMULATED: u64 = V.EPT_VPID_CAP_INVVPID | V.EPT_VPID_CAP_INVVPID_INDIVIDUAL_ADDRESS |
  V.EPT_VPID_CAP_INVVPID_SINGLE_CONTEXT | V.EPT_VPID_CAP_INVVPID_ALL_CONTEXT |
  V.EPT_VPID_CAP_INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS;

// IA32_VMX_EPT_VPID_CAP as offered: the EPT bits when EPT is offered, the
// VPID bits when VPID is.
export function eptCap(): u64 {
  if (!hw.hasEptVpidCap) return 0;
  // (EPT and VPID are offered with hyperv=on too.)
  const p2 = <u32>(proc2(false) >> 32);
  let v: u64 = 0;
  if ((p2 & V.PROC2_ENABLE_EPT) != 0) v |= hw.eptVpidCap & EPT_CAP_EMULATED;
  if ((p2 & V.PROC2_ENABLE_VPID) != 0) v |= hw.eptVpidCap & VPID_CAP_EMULATED;
  return v;
}
const EXIT_EMULATED: u32 = V.EXIT_SAVE_DEBUG_CONTROLS | V.EXIT_HOST_ADDRESS_SPACE_SIZE |
  V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT | V.EXIT_SAVE_IA32_PAT | V.EXIT_LOAD_IA32_PAT | V.EXIT_SAVE_IA32_EFER |
  V.EXIT_LOAD_IA32_EFER | V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE;
const ENTRY_EMULATED: u32 = V.ENTRY_LOAD_DEBUG_CONTROLS | V.ENTRY_IA32E_MODE_GUEST | V.ENTRY_LOAD_IA32_PAT |
  V.ENTRY_LOAD_IA32_EFER;

// A capability MSR value (allowed-0 in 31:0, allowed-1 in 63:32) limited to
// `emulated`: a bit may be 1 only if the processor and we allow it; a bit
// the processor forces to 1 stays forced (vmcs02 will have it set anyway).
function limit(cap: u64, emulated: u32, default1: u32): u64 {
  const allowed0 = <u32>cap | default1;
  const allowed1 = (<u32>(cap >> 32) & emulated) | allowed0;
  return (<u64>allowed1 << 32) | <u64>allowed0;
}

// IA32_VMX_BASIC for L1: our revision, 4 KiB regions, write-back, INS/OUTS
// information and TRUE controls as the processor has them; no dual-monitor.
export function basic(): u64 {
  const keep = V.VMX_BASIC_INS_OUTS_INFO | V.VMX_BASIC_TRUE_CONTROLS | V.VMX_BASIC_MEMORY_TYPE_MASK;
  return (hw.basic & keep) | (<u64>4096 << 32) | <u64>REVISION_ID;
}

// The TRUE_* controls (allowed-0 may clear default1 bits) and the plain ones
// (default1 bits reported as required, A.3.1).
export function pin(trueCtls: bool, hv: bool): u64 {
  const c = limit(hw.pin, hv ? PIN_EMULATED & ~EVMCS1_PIN_HIDDEN : PIN_EMULATED, trueCtls ? 0 : V.PIN_DEFAULT1);
  // "Process posted interrupts": emulated by L0 (l2irq.ts), whether or not
  // the processor has it, wherever virtual-interrupt delivery (which it
  // needs) is offered; not with hyperv=on (no eVMCS v1 fields).
  if (hv || (<u32>(proc2(false) >> 32) & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) == 0) return c;
  return c | (<u64>V.PIN_PROCESS_POSTED_INTERRUPTS << 32);
}
export function proc(trueCtls: bool): u64 {
  return limit(hw.proc, PROC_EMULATED, trueCtls ? 0 : V.PROC_DEFAULT1);
}
export function proc2(hv: bool): u64 {
  if (!hw.hasProc2) return 0;
  // VM functions only with EPTP switching to offer, which needs EPT.
  let emulated = hv ? PROC2_EMULATED & ~EVMCS1_PROC2_HIDDEN : PROC2_EMULATED;
  if ((hw.vmfunc & V.VMFUNC_CTL_EPTP_SWITCHING) == 0 || !hw.canSet(hw.proc2, V.PROC2_ENABLE_EPT)) emulated &= ~V.PROC2_ENABLE_VM_FUNCTIONS;
  // PML (emulated by eptad.ts, not the processor's) logs what sets EPT dirty
  // flags: only with the flags to offer.
  if (!hw.hasEptVpidCap || (hw.eptVpidCap & V.EPT_VPID_CAP_ACCESSED_DIRTY_FLAGS) == 0) emulated &= ~V.PROC2_ENABLE_PML;
  return limit(hw.proc2, emulated, 0);
}
export function exit(trueCtls: bool, hv: bool): u64 {
  // "Save VMX-preemption timer value" only with the timer itself.
  let emulated = hasTimer(false) ? EXIT_EMULATED : EXIT_EMULATED & ~V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE;
  if (hv) emulated &= ~EVMCS1_EXIT_HIDDEN;
  return limit(hw.exit, emulated, trueCtls ? 0 : V.EXIT_DEFAULT1);
}

// "Activate VMX-preemption timer" offered (the processor has it: L0 runs
// vmcs02 with it and reads the same rate).
export function hasTimer(hv: bool): bool {
  return (<u32>(pin(true, hv) >> 32) & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0;
}
export function entry(trueCtls: bool, hv: bool): u64 {
  return limit(hw.entry, hv ? ENTRY_EMULATED & ~EVMCS1_ENTRY_HIDDEN : ENTRY_EMULATED, trueCtls ? 0 : V.ENTRY_DEFAULT1);
}

// The number of CR3-target values offered (IA32_VMX_MISC bits 24:16, A.6):
// the processor's, up to the slots of the vmcs12 layout (CR3-target value
// 0..3, Appendix B.4.1). vmcs02 receives vmcs12's count and values
// (vmcs02.ts), so a processor with at least that many does the matching
// itself; reflect-decide.ts applies the same rule (26.1.3) to the CR3-load
// exits that reach L0.
function layoutCr3Targets(): u32 {
  let n: u32 = 0;
  while (n < 256 && V.vmcs12Offset(V.CR3_TARGET_VALUE0 + 2 * n) >= 0) n++;
  return n;
}
export const CR3_TARGETS_IN_LAYOUT: u32 = layoutCr3Targets();
export function cr3TargetCount(): u32 {
  const n = <u32>((hw.misc & V.VMX_MISC_CR3_TARGET_COUNT_MASK) >> V.VMX_MISC_CR3_TARGET_COUNT_SHIFT);
  return n < CR3_TARGETS_IN_LAYOUT ? n : CR3_TARGETS_IN_LAYOUT;
}

// IA32_VMX_MISC: the processor's VMX-preemption timer rate (bits 4:0, with
// the timer: L1's timer counts as the processor's does, ptimer.ts), VM
// exits store EFER.LMA (bit 5), activity states HLT (bit 6: l2halt.ts)
// and wait-for-SIPI (bit 8: L0 keeps such an L2 from running until a SIPI
// from another vCPU, initsipi.ts) — not shutdown —, the CR3-target count
// above, the processor's MSR-list
// size, VMWRITE to read-only exit fields (bit 29: the vmcs12 cache takes
// any write). The same with hyperv=on, where the timer is not offered: bits
// 4:0 then still describe the processor's timer (as under KVM with eVMCS),
// since nothing depends on them without the timer.
export function misc(): u64 {
  const rate = hasTimer(false) ? hw.misc & V.VMX_MISC_PREEMPTION_TIMER_RATE_MASK : 0;
  return rate | V.VMX_MISC_STORE_EFER_LMA | V.VMX_MISC_ACTIVITY_HLT | V.VMX_MISC_ACTIVITY_WAIT_FOR_SIPI | (hw.misc & V.VMX_MISC_MAX_MSR_LIST_MASK) |
    (<u64>cr3TargetCount() << V.VMX_MISC_CR3_TARGET_COUNT_SHIFT) | V.VMX_MISC_VMWRITE_ANY_FIELD;
}

// CR0/CR4 in VMX operation: without unrestricted guest, PE, NE and PG are
// fixed to 1 in CR0 for L1's guests (A.7); CR4.VMXE is fixed to 1 (A.8).
export function cr0Fixed0(): u64 {
  return hw.cr0Fixed0 | V.X86_CR0_PE | V.X86_CR0_NE | V.X86_CR0_PG;
}
export function cr0Fixed1(): u64 {
  return hw.cr0Fixed1;
}
export function cr4Fixed0(): u64 {
  return hw.cr4Fixed0 | V.X86_CR4_VMXE;
}
export function cr4Fixed1(): u64 {
  return hw.cr4Guest();
}

// Does CR0/CR4 value v satisfy the fixed bits of VMX operation (24.8)?
export function cr0Allowed(v: u64): bool {
  return (v & cr0Fixed0()) == cr0Fixed0() && (v & ~cr0Fixed1()) == 0;
}
export function cr4Allowed(v: u64): bool {
  return (v & cr4Fixed0()) == cr4Fixed0() && (v & ~cr4Fixed1()) == 0;
}

// IA32_VMX_VMCS_ENUM bits 9:1: "the highest index value used for any VMCS
// encoding" (A.9), over the fields that exist for L1 (fieldSupported).
export function vmcsEnum(): u64 {
  let highest: u32 = 0;
  for (let i = 0; i < V.VMCS_FIELD_COUNT; i++) {
    const enc = V.vmcsFieldEncodingAt(i);
    if (!fieldSupported(enc)) continue;
    const idx = (enc & V.VMCS_ENC_INDEX_MASK) >> V.VMCS_ENC_INDEX_SHIFT;
    if (idx > highest) highest = idx;
  }
  return <u64>highest << 1;
}

// VMCS fields of features L1 is not offered do not exist for L1: VMREAD
// and VMWRITE of them fail with error 12 (31.4), as on a processor without
// the feature (Appendix B lists fields "if the processor supports" it).
// Against the full offer, also for a guest with hyperv=on: the fields of
// the EVMCS1_*_HIDDEN controls still exist for it (as under KVM with eVMCS;
// an L1 on the eVMCS does not VMREAD/VMWRITE, and L0's VMREAD/VMWRITE
// bitmaps for its shadow VMCS are the same for every guest), and
// IA32_VMX_VMCS_ENUM is the same (docs/guest-interface.md).
export function fieldSupported(enc: u32): bool {
  if (V.vmcs12Offset(enc) < 0) return false;
  // EPT's fields (the EPT pointer, the guest-physical address of an exit,
  // the PDPTEs VM entry loads with EPT) exist when EPT is offered.
  switch (enc & ~V.VMCS_ENC_HIGH) {
    case V.EPT_POINTER:
    case V.GUEST_PHYSICAL_ADDRESS:
    case V.GUEST_PDPTE0:
    case V.GUEST_PDPTE1:
    case V.GUEST_PDPTE2:
    case V.GUEST_PDPTE3:
      return (<u32>(proc2(false) >> 32) & V.PROC2_ENABLE_EPT) != 0;
    case V.VM_FUNCTION_CONTROL:
    case V.EPTP_LIST_ADDRESS:
      return (<u32>(proc2(false) >> 32) & V.PROC2_ENABLE_VM_FUNCTIONS) != 0;
    case V.VIRTUAL_PROCESSOR_ID:
      return (<u32>(proc2(false) >> 32) & V.PROC2_ENABLE_VPID) != 0;
    case V.VMX_PREEMPTION_TIMER_VALUE:
      return hasTimer(false);
    case V.PLE_GAP:
    case V.PLE_WINDOW:
      return (<u32>(proc2(false) >> 32) & V.PROC2_PAUSE_LOOP_EXITING) != 0;
    // CR3-target value i (6008H + 2i, B.4.1 and its note: values beyond
    // the first four follow consecutively) exists for i below the count
    // offered in IA32_VMX_MISC; the others are no fields (error 12).
    case V.CR3_TARGET_VALUE0:
    case V.CR3_TARGET_VALUE1:
    case V.CR3_TARGET_VALUE2:
    case V.CR3_TARGET_VALUE3:
      return ((enc - V.CR3_TARGET_VALUE0) >> 1) < cr3TargetCount();
    case V.PML_ADDRESS:
    case V.PML_INDEX:
      return (<u32>(proc2(false) >> 32) & V.PROC2_ENABLE_PML) != 0;
    case V.VMREAD_BITMAP:
    case V.VMWRITE_BITMAP:
      return (<u32>(proc2(false) >> 32) & V.PROC2_VMCS_SHADOWING) != 0;
    case V.VIRTUAL_APIC_ADDRESS:
    case V.TPR_THRESHOLD:
      return (<u32>(proc(true) >> 32) & V.PROC_USE_TPR_SHADOW) != 0;
    case V.APIC_ACCESS_ADDRESS:
      return (<u32>(proc2(false) >> 32) & V.PROC2_VIRTUALIZE_APIC_ACCESSES) != 0;
    case V.POSTED_INTERRUPT_NOTIFICATION_VECTOR:
    case V.POSTED_INTERRUPT_DESCRIPTOR_ADDRESS:
      return (<u32>(pin(true, false) >> 32) & V.PIN_PROCESS_POSTED_INTERRUPTS) != 0;
    case V.GUEST_INTERRUPT_STATUS:
    case V.EOI_EXIT_BITMAP_0:
    case V.EOI_EXIT_BITMAP_1:
    case V.EOI_EXIT_BITMAP_2:
    case V.EOI_EXIT_BITMAP_3:
      return (<u32>(proc2(false) >> 32) & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0;
  }
  switch (enc & ~V.VMCS_ENC_HIGH) {
    case V.EPTP_INDEX: // #VE
    case V.VIRTUALIZATION_EXCEPTION_INFO_ADDRESS:
    case V.XSS_EXITING_BITMAP:
    case V.ENCLS_EXITING_BITMAP:
    case V.SUB_PAGE_PERMISSION_TABLE_POINTER:
    case V.TSC_MULTIPLIER:
    case V.TERTIARY_PROC_BASED_VM_EXEC_CONTROL:
    case V.ENCLV_EXITING_BITMAP:
    // Features of later processors, none offered: HLAT, IPI virtualization
    // (PID-pointer table, last PID-pointer index), user interrupts (UINV),
    // PASID translation, TDX (shared EPTP, SEAM key id), PCONFIG exiting,
    // secondary exit controls, IA32_SPEC_CTRL virtualization, FRED (event
    // data, FRED MSRs), the VM-exit MSR data of MSR-list instructions,
    // "load IA32_PERF_GLOBAL_CTRL", "load IA32_BNDCFGS", "load
    // IA32_RTIT_CTL", "load guest IA32_LBR_CTL", "load PKRS", the
    // instruction-timeout (notify) window, CET state.
    case V.HLAT_PREFIX_SIZE:
    case V.HLAT_POINTER:
    case V.LAST_PID_POINTER_INDEX:
    case V.PID_POINTER_TABLE_ADDRESS:
    case V.GUEST_UINV:
    case V.LOW_PASID_DIRECTORY_ADDRESS:
    case V.HIGH_PASID_DIRECTORY_ADDRESS:
    case V.SHARED_EPT_POINTER:
    case V.SEAM_GUEST_KEYID:
    case V.PCONFIG_EXITING_BITMAP:
    case V.SECONDARY_VM_EXIT_CONTROL:
    case V.IA32_SPEC_CTRL_MASK:
    case V.IA32_SPEC_CTRL_SHADOW:
    case V.INJECTED_EVENT_DATA:
    case V.ORIGINAL_EVENT_DATA:
    case V.VM_EXIT_MSR_DATA:
    case V.GUEST_IA32_FRED_CONFIG:
    case V.GUEST_IA32_FRED_RSP1:
    case V.GUEST_IA32_FRED_RSP2:
    case V.GUEST_IA32_FRED_RSP3:
    case V.GUEST_IA32_FRED_STKLVLS:
    case V.GUEST_IA32_FRED_SSP1:
    case V.GUEST_IA32_FRED_SSP2:
    case V.GUEST_IA32_FRED_SSP3:
    case V.HOST_IA32_FRED_CONFIG:
    case V.HOST_IA32_FRED_RSP1:
    case V.HOST_IA32_FRED_RSP2:
    case V.HOST_IA32_FRED_RSP3:
    case V.HOST_IA32_FRED_STKLVLS:
    case V.HOST_IA32_FRED_SSP1:
    case V.HOST_IA32_FRED_SSP2:
    case V.HOST_IA32_FRED_SSP3:
    case V.GUEST_IA32_PERF_GLOBAL_CTRL:
    case V.HOST_IA32_PERF_GLOBAL_CTRL:
    case V.GUEST_IA32_BNDCFGS:
    case V.GUEST_IA32_RTIT_CTL:
    case V.GUEST_IA32_LBR_CTL:
    case V.GUEST_IA32_PKRS:
    case V.HOST_IA32_PKRS:
    case V.INSTRUCTION_TIMEOUT_CONTROL:
    case V.GUEST_IA32_S_CET:
    case V.GUEST_SSP:
    case V.GUEST_IA32_INTERRUPT_SSP_TABLE_ADDR:
    case V.HOST_IA32_S_CET:
    case V.HOST_SSP:
    case V.HOST_IA32_INTERRUPT_SSP_TABLE_ADDR:
      return false;
  }
  return true;
}

// L1's RDMSR of a VMX capability MSR: hasMsr is false when the MSR does not
// exist for L1's (virtual) processor, which is #GP; msrValue is its value
// (0 when it does not exist). hv: the guest has hyperv=on (see
// EVMCS1_PIN_HIDDEN): IA32_VMX_VMFUNC does not exist for it (no VM
// functions may be 1, A.11).
export function hasMsr(msr: u32, hv: bool): bool {
  switch (msr) {
    case V.MSR_IA32_VMX_BASIC:
    case V.MSR_IA32_VMX_PINBASED_CTLS:
    case V.MSR_IA32_VMX_PROCBASED_CTLS:
    case V.MSR_IA32_VMX_EXIT_CTLS:
    case V.MSR_IA32_VMX_ENTRY_CTLS:
    case V.MSR_IA32_VMX_MISC:
    case V.MSR_IA32_VMX_CR0_FIXED0:
    case V.MSR_IA32_VMX_CR0_FIXED1:
    case V.MSR_IA32_VMX_CR4_FIXED0:
    case V.MSR_IA32_VMX_CR4_FIXED1:
    case V.MSR_IA32_VMX_VMCS_ENUM:
      return true;
    // Exists only if "activate secondary controls" may be 1 (A.3.3).
    case V.MSR_IA32_VMX_PROCBASED_CTLS2:
      return (proc(true) >> 32 & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0;
    // Exists if "enable VM functions" may be 1 (A.11).
    case V.MSR_IA32_VMX_VMFUNC:
      return (proc(true) >> 32 & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
        (<u32>(proc2(hv) >> 32) & V.PROC2_ENABLE_VM_FUNCTIONS) != 0;
    // Exists if "enable EPT" or "enable VPID" may be 1 (A.10).
    case V.MSR_IA32_VMX_EPT_VPID_CAP:
      return (proc(true) >> 32 & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
        (<u32>(proc2(hv) >> 32) & (V.PROC2_ENABLE_EPT | V.PROC2_ENABLE_VPID)) != 0;
    // The TRUE controls exist when IA32_VMX_BASIC[55] says so (A.1).
    case V.MSR_IA32_VMX_TRUE_PINBASED_CTLS:
    case V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS:
    case V.MSR_IA32_VMX_TRUE_EXIT_CTLS:
    case V.MSR_IA32_VMX_TRUE_ENTRY_CTLS:
      return (hw.basic & V.VMX_BASIC_TRUE_CONTROLS) != 0;
  }
  return false;
}

export function msrValue(msr: u32, hv: bool): u64 {
  if (!hasMsr(msr, hv)) return 0;
  switch (msr) {
    case V.MSR_IA32_VMX_BASIC: return basic();
    case V.MSR_IA32_VMX_PINBASED_CTLS: return pin(false, hv);
    case V.MSR_IA32_VMX_PROCBASED_CTLS: return proc(false);
    case V.MSR_IA32_VMX_EXIT_CTLS: return exit(false, hv);
    case V.MSR_IA32_VMX_ENTRY_CTLS: return entry(false, hv);
    case V.MSR_IA32_VMX_MISC: return misc();
    case V.MSR_IA32_VMX_CR0_FIXED0: return cr0Fixed0();
    case V.MSR_IA32_VMX_CR0_FIXED1: return cr0Fixed1();
    case V.MSR_IA32_VMX_CR4_FIXED0: return cr4Fixed0();
    case V.MSR_IA32_VMX_CR4_FIXED1: return cr4Fixed1();
    case V.MSR_IA32_VMX_VMCS_ENUM: return vmcsEnum();
    case V.MSR_IA32_VMX_PROCBASED_CTLS2: return proc2(hv);
    case V.MSR_IA32_VMX_VMFUNC: return vmfuncCap(hv);
    case V.MSR_IA32_VMX_EPT_VPID_CAP: return eptCap();
    case V.MSR_IA32_VMX_TRUE_PINBASED_CTLS: return pin(true, hv);
    case V.MSR_IA32_VMX_TRUE_PROCBASED_CTLS: return proc(true);
    case V.MSR_IA32_VMX_TRUE_EXIT_CTLS: return exit(true, hv);
    case V.MSR_IA32_VMX_TRUE_ENTRY_CTLS: return entry(true, hv);
  }
  return 0;
}
