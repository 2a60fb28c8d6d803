// VM-entry checks on the VMX controls of the current vmcs12 (SDM Vol. 3C
// 27.2.1: execution controls 27.2.1.1, exit controls 27.2.1.2, entry
// controls and event injection 27.2.1.3), made against what the hypervisor
// OFFERS L1 (nested/caps.ts; less with hyperv=on), not against the processor. A failure is
// VMfailValid(7) for the caller. See entry-checks.ts for the list of checks
// that cannot apply with the offered capabilities.
import * as V from "../arch/vmx";
import * as caps from "./caps";
import * as state from "./state";
import * as guestmem from "../vm/guestmem";
import { EntryCheck, fail, beyondPhys } from "./entry-checks-env";

// Exceptions that deliver an error code (SDM Vol. 3A Table 6-1): #DF 8,
// #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21.
const EXC_WITH_ERROR_CODE: u32 = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) |
  (1 << 17) | (1 << 21);
const EXC_VECTOR_MAX: u32 = 31; // hardware exceptions use vectors 0-31
const NMI_VECTOR: u32 = 2;
const INSN_LEN_MAX: u64 = 15; // the longest x86 instruction
const MSR_ENTRY_BYTES: u64 = 16; // one entry of an MSR-load/store area (25.7.2)
const PAGE: u64 = 4096;

// The entry interruption-information bits VM entry defines; 30:12 are reserved.
const INTR_INFO_DEFINED: u32 = V.INTR_INFO_VECTOR_MASK | V.INTR_INFO_TYPE_MASK | V.INTR_INFO_DELIVER_ERROR_CODE |
  V.INTR_INFO_VALID;

// "Reserved bits ... must be set properly" (27.2.1): every allowed-0 bit
// (bits 31:0 of the capability) set, no bit outside allowed-1 (63:32).
function reservedOk(v: u32, cap: u64): bool {
  const must1 = <u32>cap;
  const may1 = <u32>(cap >> 32);
  return (v & must1) == must1 && (v & ~may1) == 0;
}

// A 4-KiB bitmap address: bits 11:0 clear, nothing beyond the physical-
// address width (27.2.1.1) and — the hypervisor's own rule, since it reads
// L1's bitmaps in software — the whole page inside L1's RAM: a bitmap in
// MMIO or beyond RAM is refused here rather than followed later.
function bitmapOk(c: EntryCheck, enc: u32, align: string, width: string, ram: string): bool {
  const a = state.read(c.n, enc);
  if ((a & (PAGE - 1)) != 0) return fail(c, align);
  if (beyondPhys(a)) return fail(c, width);
  if (!guestmem.isRam(a, PAGE)) return fail(c, ram);
  return true;
}

// An MSR-load/store area (27.2.1.2, 27.2.1.3), checked when its count is
// not 0: bits 3:0 of the address clear; neither the address nor that of the
// area's last byte (address + count * 16 - 1, computed wider than the
// physical-address width) beyond the width; and, as the hypervisor's own
// rule (it walks the list in software), the area inside L1's RAM.
function msrAreaOk(c: EntryCheck, countEnc: u32, addrEnc: u32, align: string, width: string, ram: string): bool {
  const n = c.n;
  const count = state.read(n, countEnc);
  if (count == 0) return true;
  const a = state.read(n, addrEnc);
  if ((a & (MSR_ENTRY_BYTES - 1)) != 0) return fail(c, align);
  const bytes = count * MSR_ENTRY_BYTES; // count is 32 bits: no overflow
  if (beyondPhys(a) || beyondPhys(a + bytes - 1) || a + bytes - 1 < a) return fail(c, width);
  if (!guestmem.isRam(a, bytes)) return fail(c, ram);
  return true;
}

// An EPT pointer VM entry accepts (27.2.1.1), against the offered
// IA32_VMX_EPT_VPID_CAP: memory type UC (bit 8) or WB (bit 14); page-walk
// length 4 (bits 5:3 = 3; 5-level walks are not offered); bit 6 (accessed
// and dirty flags) only if offered; bits 11:7 and those beyond the
// physical-address width 0. INVEPT and VMFUNC use the same rules (their
// callers answer a failure in their own way; the name stays the entry
// check's). The name of the rule eptp breaks, or null.
function eptpProblem(eptp: u64): string | null {
  const cap = caps.eptCap();
  const type = <u32>eptp & 7;
  if (!((type == 0 && (cap & V.EPT_VPID_CAP_MEMTYPE_UC) != 0) || (type == 6 && (cap & V.EPT_VPID_CAP_MEMTYPE_WB) != 0))) {
    return "ctls.eptp.memory-type";
  }
  if (((eptp >> 3) & 7) != 3) return "ctls.eptp.walk-length";
  if ((eptp & (1 << 6)) != 0 && (cap & V.EPT_VPID_CAP_ACCESSED_DIRTY_FLAGS) == 0) {
    return "ctls.eptp.accessed-dirty";
  }
  if ((eptp & 0xf80) != 0 || beyondPhys(eptp)) return "ctls.eptp.reserved";
  return null;
}
export function eptpOk(eptp: u64): bool {
  return eptpProblem(eptp) == null;
}

export function check(c: EntryCheck): bool {
  const n = c.n;
  // A guest with hyperv=on is offered less (caps.ts EVMCS1_*_HIDDEN): a
  // processor with its capability MSRs fails the entry with what it lacks.
  const hv = n.hvOffered;
  const t = (caps.basic() & V.VMX_BASIC_TRUE_CONTROLS) != 0;
  const misc = caps.misc();
  const pin = <u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL);
  const proc = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);

  // ---- 27.2.1.1 VM-execution control fields
  if (!reservedOk(pin, caps.pin(t, hv))) return fail(c, "ctls.pin.reserved");
  if (!reservedOk(proc, caps.proc(t))) return fail(c, "ctls.proc.reserved");
  // With "activate secondary controls" 0 the secondary controls are not
  // checked and act as 0.
  let proc2: u32 = 0;
  if ((proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0) {
    proc2 = <u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL);
    if (!reservedOk(proc2, caps.proc2(hv))) return fail(c, "ctls.proc2.reserved");
  }
  const cr3Targets = (misc & V.VMX_MISC_CR3_TARGET_COUNT_MASK) >> V.VMX_MISC_CR3_TARGET_COUNT_SHIFT;
  if (state.get(n, V.CR3_TARGET_COUNT) > cr3Targets) return fail(c, "ctls.cr3-target-count");
  if ((proc & V.PROC_USE_IO_BITMAPS) != 0) {
    if (!bitmapOk(c, V.IO_BITMAP_A, "ctls.io-bitmap-a.align", "ctls.io-bitmap-a.width", "ctls.io-bitmap-a.ram")) {
      return false;
    }
    if (!bitmapOk(c, V.IO_BITMAP_B, "ctls.io-bitmap-b.align", "ctls.io-bitmap-b.width", "ctls.io-bitmap-b.ram")) {
      return false;
    }
  }
  if ((proc & V.PROC_USE_MSR_BITMAPS) != 0) {
    if (!bitmapOk(c, V.MSR_BITMAPS, "ctls.msr-bitmap.align", "ctls.msr-bitmap.width", "ctls.msr-bitmap.ram")) {
      return false;
    }
  }
  if ((proc2 & V.PROC2_ENABLE_VPID) != 0 && state.get(n, V.VIRTUAL_PROCESSOR_ID) == 0) return fail(c, "ctls.vpid.zero");
  if ((proc2 & V.PROC2_UNRESTRICTED_GUEST) != 0 && (proc2 & V.PROC2_ENABLE_EPT) == 0) {
    return fail(c, "ctls.proc2.unrestricted-without-ept");
  }
  if ((proc2 & V.PROC2_ENABLE_EPT) != 0) {
    const e = eptpProblem(state.get(n, V.EPT_POINTER));
    if (e != null) return fail(c, e);
  }
  // "enable PML" (27.2.1.1): needs "enable EPT"; the PML address 4-KiB
  // aligned and within the physical-address width. No rule of ours on where
  // it points: L0 writes a log entry only where L1 has RAM (eptad.ts).
  if ((proc2 & V.PROC2_ENABLE_PML) != 0) {
    if ((proc2 & V.PROC2_ENABLE_EPT) == 0) return fail(c, "ctls.pml.without-ept");
    const pml = state.get(n, V.PML_ADDRESS);
    if ((pml & (PAGE - 1)) != 0) return fail(c, "ctls.pml-address.align");
    if (beyondPhys(pml)) return fail(c, "ctls.pml-address.width");
  }
  // "enable VM functions" (27.2.1.1): no VM-function control beyond
  // IA32_VMX_VMFUNC; EPTP switching needs EPT and a 4-KiB-aligned EPTP
  // list within the physical-address width (and, the hypervisor's own
  // rule since it reads the list in software, in L1's RAM).
  if ((proc2 & V.PROC2_ENABLE_VM_FUNCTIONS) != 0) {
    const f = state.get(n, V.VM_FUNCTION_CONTROL);
    if ((f & ~caps.vmfuncCap(hv)) != 0) return fail(c, "ctls.vmfunc.reserved");
    if ((f & V.VMFUNC_CTL_EPTP_SWITCHING) != 0) {
      if ((proc2 & V.PROC2_ENABLE_EPT) == 0) return fail(c, "ctls.vmfunc.eptp-switching-without-ept");
      if (!bitmapOk(c, V.EPTP_LIST_ADDRESS, "ctls.eptp-list.align", "ctls.eptp-list.width", "ctls.eptp-list.ram")) return false;
    }
  }
  // "VMCS shadowing" (27.2.1.1): the VMREAD and VMWRITE bitmap addresses
  // 4-KiB aligned, within the physical-address width (and, the
  // hypervisor's own rule since shadow12.ts reads them, in L1's RAM).
  if ((proc2 & V.PROC2_VMCS_SHADOWING) != 0) {
    if (!bitmapOk(c, V.VMREAD_BITMAP, "ctls.vmread-bitmap.align", "ctls.vmread-bitmap.width", "ctls.vmread-bitmap.ram")) return false;
    if (!bitmapOk(c, V.VMWRITE_BITMAP, "ctls.vmwrite-bitmap.align", "ctls.vmwrite-bitmap.width", "ctls.vmwrite-bitmap.ram")) {
      return false;
    }
  }
  // APIC virtualization (27.2.1.1). "Use TPR shadow": the virtual-APIC
  // address 4-KiB aligned, within the physical-address width (and, the
  // hypervisor's own rule since vmcs02 needs the page's host-physical
  // address, in L1's RAM); without virtual-interrupt delivery (not offered)
  // bits 31:4 of the TPR threshold 0. The threshold against VTPR reads L1's
  // memory: vtprOk, at every entry. Without it, virtualize x2APIC mode,
  // APIC-register virtualization and virtual-interrupt delivery must be 0.
  // Virtual-interrupt delivery needs external-interrupt exiting.
  // "Virtualize APIC accesses": the APIC-access address 4-KiB aligned,
  // within the width (and in L1's RAM, for the same reason); it excludes
  // virtualize x2APIC mode (one of the two ways of virtualizing the APIC).
  if ((proc & V.PROC_USE_TPR_SHADOW) != 0) {
    if (!bitmapOk(c, V.VIRTUAL_APIC_ADDRESS, "ctls.virtual-apic.align", "ctls.virtual-apic.width", "ctls.virtual-apic.ram")) {
      return false;
    }
    if ((proc2 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) == 0 && (<u32>state.get(n, V.TPR_THRESHOLD) & 0xfffffff0) != 0) {
      return fail(c, "ctls.tpr-threshold.reserved");
    }
  } else if ((proc2 & V.PROC2_VIRTUALIZE_X2APIC_MODE) != 0) {
    return fail(c, "ctls.x2apic.without-tpr-shadow");
  } else if ((proc2 & V.PROC2_APIC_REGISTER_VIRTUALIZATION) != 0) {
    return fail(c, "ctls.apic-register-virtualization-without-tpr-shadow");
  } else if ((proc2 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0) {
    return fail(c, "ctls.vid.without-tpr-shadow");
  }
  if ((proc2 & (V.PROC2_VIRTUALIZE_X2APIC_MODE | V.PROC2_VIRTUALIZE_APIC_ACCESSES)) ==
    (V.PROC2_VIRTUALIZE_X2APIC_MODE | V.PROC2_VIRTUALIZE_APIC_ACCESSES)) {
    return fail(c, "ctls.x2apic.with-apic-accesses");
  }
  if ((proc2 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0 && (pin & V.PIN_EXTERNAL_INTERRUPT_EXITING) == 0) {
    return fail(c, "ctls.vid.without-external-interrupt-exiting");
  }
  if ((proc2 & V.PROC2_VIRTUALIZE_APIC_ACCESSES) != 0 &&
    !bitmapOk(c, V.APIC_ACCESS_ADDRESS, "ctls.apic-access.align", "ctls.apic-access.width", "ctls.apic-access.ram")) {
    return false;
  }
  if ((pin & V.PIN_NMI_EXITING) == 0 && (pin & V.PIN_VIRTUAL_NMIS) != 0) {
    return fail(c, "ctls.pin.virtual-nmis-without-nmi-exiting");
  }
  if ((pin & V.PIN_VIRTUAL_NMIS) == 0 && (proc & V.PROC_NMI_WINDOW_EXITING) != 0) {
    return fail(c, "ctls.proc.nmi-window-without-virtual-nmis");
  }

  // ---- 27.2.1.2 VM-exit control fields
  const exit = <u32>state.get(n, V.VM_EXIT_CONTROL);
  if (!reservedOk(exit, caps.exit(t, hv))) return fail(c, "ctls.exit.reserved");
  // "Process posted interrupts" (27.2.1.1, listed with the execution
  // controls; it reads an exit control): virtual-interrupt delivery and
  // "acknowledge interrupt on exit" 1, the notification vector's bits 15:8
  // 0, the descriptor address 64-byte aligned and within the width (and,
  // this hypervisor's rule since L0 processes the descriptor, l2irq.ts, in
  // L1's RAM).
  if ((pin & V.PIN_PROCESS_POSTED_INTERRUPTS) != 0) {
    if ((proc2 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) == 0) return fail(c, "ctls.posted.without-vid");
    if ((exit & V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT) == 0) return fail(c, "ctls.posted.without-acknowledge");
    if ((<u32>state.get(n, V.POSTED_INTERRUPT_NOTIFICATION_VECTOR) & 0xff00) != 0) return fail(c, "ctls.posted.vector");
    const d = state.get(n, V.POSTED_INTERRUPT_DESCRIPTOR_ADDRESS);
    if ((d & 63) != 0) return fail(c, "ctls.posted.descriptor-align");
    if (beyondPhys(d)) return fail(c, "ctls.posted.descriptor-width");
    if (!guestmem.isRam(d, 64)) return fail(c, "ctls.posted.descriptor-ram");
  }
  if ((exit & V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE) != 0 && (pin & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) == 0)
    return fail(c, "ctls.exit.save-preemption-timer-without-timer");
  if (!msrAreaOk(c, V.VM_EXIT_MSR_STORE_COUNT, V.VM_EXIT_MSR_STORE_ADDRESS, "ctls.exit-msr-store.align",
    "ctls.exit-msr-store.width", "ctls.exit-msr-store.ram")) return false;
  if (!msrAreaOk(c, V.VM_EXIT_MSR_LOAD_COUNT, V.VM_EXIT_MSR_LOAD_ADDRESS, "ctls.exit-msr-load.align",
    "ctls.exit-msr-load.width", "ctls.exit-msr-load.ram")) return false;

  // ---- 27.2.1.3 VM-entry control fields
  const entry = <u32>state.get(n, V.VM_ENTRY_CONTROL);
  if (!reservedOk(entry, caps.entry(t, hv))) return fail(c, "ctls.entry.reserved");
  if (!injectionOk(c, proc2, misc, t)) return false;
  if (!msrAreaOk(c, V.VM_ENTRY_MSR_LOAD_COUNT, V.VM_ENTRY_MSR_LOAD_ADDRESS, "ctls.entry-msr-load.align",
    "ctls.entry-msr-load.width", "ctls.entry-msr-load.ram")) return false;
  // "entry to SMM" and "deactivate dual-monitor treatment" are not offered
  // (ctls.entry.reserved), and L1 is never in SMM.
  return true;
}

// Only the event-injection checks, for an entry where nothing else they
// read changed since the whole set passed (entry-checks.ts).
export function checkInjection(c: EntryCheck): bool {
  const n = c.n;
  const t = (caps.basic() & V.VMX_BASIC_TRUE_CONTROLS) != 0;
  const proc = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  const proc2 = (proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 ?
    <u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) : 0;
  return injectionOk(c, proc2, caps.misc(), t);
}

// Event injection (27.2.1.3): the VM-entry interruption-information field,
// exception error code and instruction length, when the valid bit is 1.
function injectionOk(c: EntryCheck, proc2: u32, misc: u64, t: bool): bool {
  const n = c.n;
  const info = <u32>state.get(n, V.VM_ENTRY_INTERRUPTION_INFO);
  if ((info & V.INTR_INFO_VALID) == 0) return true;
  const type = (info & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
  const vector = (info & V.INTR_INFO_VECTOR_MASK) >> V.INTR_INFO_VECTOR_SHIFT;
  // Type 1 is reserved everywhere; 7 (other event) unless "monitor trap
  // flag" may be 1 — which the offered controls decide.
  const mtf = ((caps.proc(t) >> 32) & V.PROC_MONITOR_TRAP_FLAG) != 0;
  if (type == 1 || (type == V.INTR_TYPE_OTHER_EVENT && !mtf)) return fail(c, "ctls.entry.intr.type-reserved");
  if (type == V.INTR_TYPE_NMI && vector != NMI_VECTOR) return fail(c, "ctls.entry.intr.nmi-vector");
  if (type == V.INTR_TYPE_HARDWARE_EXCEPTION && vector > EXC_VECTOR_MAX) return fail(c, "ctls.entry.intr.exception-vector");
  if (type == V.INTR_TYPE_OTHER_EVENT && vector != 0) return fail(c, "ctls.entry.intr.other-vector");
  // Deliver-error-code is 1 exactly for hardware exceptions that push an
  // error code, provided "unrestricted guest" is 0 or CR0.PE is 1 in the
  // guest CR0 field; with IA32_VMX_BASIC[56] (not offered today) any
  // hardware exception may have one or not.
  const ec = (info & V.INTR_INFO_DELIVER_ERROR_CODE) != 0;
  const unrestricted = (proc2 & V.PROC2_UNRESTRICTED_GUEST) != 0;
  const pe = (state.get(n, V.GUEST_CR0) & V.X86_CR0_PE) != 0;
  const hw = type == V.INTR_TYPE_HARDWARE_EXCEPTION;
  if (ec && (!hw || (unrestricted && !pe))) return fail(c, "ctls.entry.intr.errcode-not-allowed");
  if (hw && (!unrestricted || pe) && (caps.basic() & V.VMX_BASIC_ANY_ERROR_CODE) == 0) {
    const pushes = vector < 32 && (EXC_WITH_ERROR_CODE & (1 << vector)) != 0;
    if (pushes && !ec) return fail(c, "ctls.entry.intr.errcode-missing");
    if (!pushes && ec) return fail(c, "ctls.entry.intr.errcode-not-allowed");
  }
  if ((info & ~INTR_INFO_DEFINED) != 0) return fail(c, "ctls.entry.intr.reserved");
  if (ec && (state.get(n, V.VM_ENTRY_EXCEPTION_ERROR_CODE) >> 16) != 0) return fail(c, "ctls.entry.errcode.reserved");
  if (type == V.INTR_TYPE_SOFTWARE_INTERRUPT || type == V.INTR_TYPE_PRIVILEGED_SOFTWARE_EXCEPTION ||
    type == V.INTR_TYPE_SOFTWARE_EXCEPTION) {
    const len = state.get(n, V.VM_ENTRY_INSTRUCTION_LENGTH);
    if (len > INSN_LEN_MAX || (len == 0 && (misc & V.VMX_MISC_ZERO_LENGTH_INJECTION) == 0)) {
      return fail(c, "ctls.entry.insn-len");
    }
  }
  return true;
}

// "Use TPR shadow" without "virtualize APIC accesses" and virtual-interrupt
// delivery: bits 3:0 of the TPR threshold not above VTPR bits 7:4 (27.2.1.1;
// VTPR is byte 80H of the virtual-APIC page, 29.1.1). VTPR is L1's memory,
// which L1 or L2 may change without touching vmcs12, so this runs at every
// entry with the control (entry-checks.ts), after the control checks that
// made sure the page is L1's RAM.
export function vtprOk(c: EntryCheck): bool {
  const n = c.n;
  const proc = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  if ((proc & V.PROC_USE_TPR_SHADOW) == 0) return true;
  if ((proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 && (<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) &
    (V.PROC2_VIRTUALIZE_APIC_ACCESSES | V.PROC2_VIRTUAL_INTERRUPT_DELIVERY)) != 0) return true;
  const vtpr = guestmem.read8(state.get(n, V.VIRTUAL_APIC_ADDRESS) + 0x80);
  if ((<u32>state.get(n, V.TPR_THRESHOLD) & 0xf) > (vtpr >> 4)) return fail(c, "ctls.tpr-threshold.vtpr");
  return true;
}
