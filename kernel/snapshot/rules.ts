// The rules a snapshot blob must satisfy before restore changes anything
// (issue 10 item 5; docs/snapshot.md "Validation" gives each one's reason).
// A rejected blob is answered with the first rule it breaks, by number and
// by a short, stable name ("group.what") that the error message prints and
// the tests match. Numbers are for this build only; names are the contract.
import * as print from "../lib/print";
import * as V from "../arch/vmx";

export const OK: u32 = 0;
// The blob as a whole (header, section table).
export const BLOB_TRUNCATED: u32 = 1;
export const BLOB_OVERSIZED: u32 = 2;
export const BLOB_MAGIC: u32 = 3;
export const BLOB_VERSION: u32 = 4;
export const BLOB_HEADER_SIZE: u32 = 5;
export const BLOB_RESERVED: u32 = 6;
export const BLOB_VMCS12_LAYOUT: u32 = 7;
export const BLOB_VCPU: u32 = 8;
export const BLOB_SECTION_COUNT: u32 = 9;
export const SECTION_UNKNOWN: u32 = 10;
export const SECTION_ORDER: u32 = 11;
export const SECTION_DUPLICATE: u32 = 12;
export const SECTION_OFFSET: u32 = 13;
export const SECTION_BOUNDS: u32 = 14;
export const SECTION_RESERVED: u32 = 15;
export const SECTION_PADDING: u32 = 16;
export const SECTION_SIZE: u32 = 17;
export const SECTION_MISSING: u32 = 18;
export const SECTION_UNEXPECTED: u32 = 19;
// Registers, vmcs01, MSRs.
export const REGS_MXCSR: u32 = 20;
export const PAIR_RESERVED: u32 = 21;
export const VMCS01_ENCODING: u32 = 22;
export const VMCS01_UNKNOWN_FIELD: u32 = 23;
export const VMCS01_NOT_SAVED: u32 = 24;
export const VMCS01_ORDER: u32 = 25;
export const VMCS01_MISSING: u32 = 26;
export const VMCS01_VALUE_WIDTH: u32 = 27;
export const MSR_UNKNOWN: u32 = 28;
export const MSR_ORDER: u32 = 29;
export const MSR_MISSING: u32 = 30;
export const MSR_VALUE: u32 = 31;
// Local APIC, events, timers, extended state.
export const APIC_BASE: u32 = 32;
export const APIC_VERSION: u32 = 33;
export const APIC_RESERVED: u32 = 34;
export const APIC_STATE: u32 = 35;
export const EVENTS_RESERVED: u32 = 36;
export const EVENTS_L1: u32 = 37;
export const EVENTS_L2: u32 = 38;
export const EVENTS_L2_OUTSIDE_L2: u32 = 39;
export const EVENTS_RUN_PENDING: u32 = 40;
export const TIMERS_RESERVED: u32 = 41;
export const TIMERS_APIC: u32 = 42;
export const XSTATE_SIZE: u32 = 43;
export const XSTATE_RESERVED: u32 = 44;
export const XSTATE_XCR0: u32 = 45;
export const XSTATE_HEADER: u32 = 46;
export const XSTATE_MXCSR: u32 = 47;
// Nested state (after KVM_SET_NESTED_STATE's rules, seeds 000 and 002).
export const NESTED_NOT_OFFERED: u32 = 48;
export const NESTED_RESERVED: u32 = 49;
export const NESTED_FLAGS_UNKNOWN: u32 = 50;
export const NESTED_EVMCS: u32 = 51;
export const NESTED_RUN_PENDING: u32 = 52;
export const NESTED_FLAGS_WITHOUT_VMXON: u32 = 53;
export const NESTED_VMCS12_WITHOUT_VMXON: u32 = 54;
export const NESTED_GUEST_MODE_WITHOUT_VMCS12: u32 = 55;
export const VMXON_MISALIGNED: u32 = 56;
export const VMXON_MAXPHYADDR: u32 = 57;
export const VMXON_OUTSIDE_RAM: u32 = 58;
export const VMCS12_MISALIGNED: u32 = 59;
export const VMCS12_MAXPHYADDR: u32 = 60;
export const VMCS12_OUTSIDE_RAM: u32 = 61;
export const VMCS12_IS_VMXON: u32 = 62;
export const VMCS12_REVISION: u32 = 63;
export const VMCS12_SHADOW_INDICATOR: u32 = 64;
export const VMCS12_LAUNCH_STATE: u32 = 65;
export const TIMER12_OUTSIDE_L2: u32 = 66;
export const TIMER12_NOT_ACTIVATED: u32 = 67;
export const TIMER12_MISSING: u32 = 68;
export const SHADOW12_REVISION: u32 = 69;
export const SHADOW12_LINK: u32 = 70;
export const VMCS12_ENTRY_CHECKS: u32 = 71;
// Debug registers (the DEBUG section, added after the numbering above).
export const DEBUG_RESERVED: u32 = 72;
export const DEBUG_DR6: u32 = 73;
// L2's state that vmcs12 need not hold (NESTED L2_*, added with the nested
// part of save and restore).
export const NESTED_L2_STATE: u32 = 74;
export const NESTED_L2_OUTSIDE_L2: u32 = 75;
// The Hyper-V state of a hyperv=on guest (the HYPERV section) and the
// enlightened VMCS (NESTED's EVMCS flag), added with issue 11 item 3.
export const NESTED_EVMCS_WITHOUT_VMCS12: u32 = 76;
export const HYPERV_NOT_OFFERED: u32 = 77;
export const HYPERV_RESERVED: u32 = 78;
export const HYPERV_RESERVED_BITS: u32 = 79;
export const HYPERV_PAGE_OUTSIDE_RAM: u32 = 80;
export const HYPERV_HYPERCALL_WITHOUT_OS_ID: u32 = 81;
export const EVENTS_NMI_PENDING: u32 = 82;
export const RULE_COUNT: u32 = 83;

export function ruleName(r: u32): string {
  switch (r) {
    case OK: return "ok";
    case BLOB_TRUNCATED: return "blob.truncated";
    case BLOB_OVERSIZED: return "blob.oversized";
    case BLOB_MAGIC: return "blob.magic";
    case BLOB_VERSION: return "blob.version";
    case BLOB_HEADER_SIZE: return "blob.header-size";
    case BLOB_RESERVED: return "blob.reserved";
    case BLOB_VMCS12_LAYOUT: return "blob.vmcs12-layout";
    case BLOB_VCPU: return "blob.vcpu";
    case BLOB_SECTION_COUNT: return "blob.section-count";
    case SECTION_UNKNOWN: return "section.unknown";
    case SECTION_ORDER: return "section.order";
    case SECTION_DUPLICATE: return "section.duplicate";
    case SECTION_OFFSET: return "section.offset";
    case SECTION_BOUNDS: return "section.bounds";
    case SECTION_RESERVED: return "section.reserved";
    case SECTION_PADDING: return "section.padding";
    case SECTION_SIZE: return "section.size";
    case SECTION_MISSING: return "section.missing";
    case SECTION_UNEXPECTED: return "section.unexpected";
    case REGS_MXCSR: return "regs.mxcsr";
    case PAIR_RESERVED: return "pair.reserved";
    case VMCS01_ENCODING: return "vmcs01.encoding";
    case VMCS01_UNKNOWN_FIELD: return "vmcs01.unknown-field";
    case VMCS01_NOT_SAVED: return "vmcs01.not-a-snapshot-field";
    case VMCS01_ORDER: return "vmcs01.order";
    case VMCS01_MISSING: return "vmcs01.missing-field";
    case VMCS01_VALUE_WIDTH: return "vmcs01.value-width";
    case MSR_UNKNOWN: return "msr.unknown";
    case MSR_ORDER: return "msr.order";
    case MSR_MISSING: return "msr.missing";
    case MSR_VALUE: return "msr.value";
    case APIC_BASE: return "apic.base";
    case APIC_VERSION: return "apic.version";
    case APIC_RESERVED: return "apic.reserved-bits";
    case APIC_STATE: return "apic.state";
    case EVENTS_RESERVED: return "events.reserved";
    case EVENTS_L1: return "events.l1-injection";
    case EVENTS_L2: return "events.l2-injection";
    case EVENTS_L2_OUTSIDE_L2: return "events.l2-without-guest-mode";
    case EVENTS_RUN_PENDING: return "events.run-pending-mismatch";
    case TIMERS_RESERVED: return "timers.reserved";
    case TIMERS_APIC: return "timers.apic-deadline-without-count";
    case XSTATE_SIZE: return "xstate.size";
    case XSTATE_RESERVED: return "xstate.reserved";
    case XSTATE_XCR0: return "xstate.xcr0";
    case XSTATE_HEADER: return "xstate.header";
    case XSTATE_MXCSR: return "xstate.mxcsr";
    case NESTED_NOT_OFFERED: return "nested.not-offered";
    case NESTED_RESERVED: return "nested.reserved";
    case NESTED_FLAGS_UNKNOWN: return "nested.flags-unknown";
    case NESTED_EVMCS: return "nested.evmcs-not-offered";
    case NESTED_RUN_PENDING: return "nested.run-pending-without-guest-mode";
    case NESTED_FLAGS_WITHOUT_VMXON: return "nested.flags-without-vmxon";
    case NESTED_VMCS12_WITHOUT_VMXON: return "nested.vmcs12-without-vmxon";
    case NESTED_GUEST_MODE_WITHOUT_VMCS12: return "nested.guest-mode-without-vmcs12";
    case VMXON_MISALIGNED: return "nested.vmxon-misaligned";
    case VMXON_MAXPHYADDR: return "nested.vmxon-beyond-maxphyaddr";
    case VMXON_OUTSIDE_RAM: return "nested.vmxon-outside-ram";
    case VMCS12_MISALIGNED: return "nested.vmcs12-misaligned";
    case VMCS12_MAXPHYADDR: return "nested.vmcs12-beyond-maxphyaddr";
    case VMCS12_OUTSIDE_RAM: return "nested.vmcs12-outside-ram";
    case VMCS12_IS_VMXON: return "nested.vmcs12-is-vmxon";
    case VMCS12_REVISION: return "vmcs12.revision";
    case VMCS12_SHADOW_INDICATOR: return "vmcs12.shadow-indicator";
    case VMCS12_LAUNCH_STATE: return "vmcs12.launch-state";
    case TIMER12_OUTSIDE_L2: return "nested.timer-without-guest-mode";
    case TIMER12_NOT_ACTIVATED: return "nested.timer-not-activated";
    case TIMER12_MISSING: return "nested.timer-missing";
    case SHADOW12_REVISION: return "shadow-vmcs12.revision";
    case SHADOW12_LINK: return "shadow-vmcs12.link-pointer";
    case VMCS12_ENTRY_CHECKS: return "vmcs12.entry-checks";
    case DEBUG_RESERVED: return "debug.reserved";
    case DEBUG_DR6: return "debug.dr6";
    case NESTED_L2_STATE: return "nested.l2-state";
    case NESTED_L2_OUTSIDE_L2: return "nested.l2-state-without-guest-mode";
    case NESTED_EVMCS_WITHOUT_VMCS12: return "nested.evmcs-without-address";
    case HYPERV_NOT_OFFERED: return "hyperv.not-offered";
    case HYPERV_RESERVED: return "hyperv.reserved";
    case HYPERV_RESERVED_BITS: return "hyperv.reserved-bits";
    case HYPERV_PAGE_OUTSIDE_RAM: return "hyperv.page-outside-ram";
    case HYPERV_HYPERCALL_WITHOUT_OS_ID: return "hyperv.hypercall-without-os-id";
    case EVENTS_NMI_PENDING: return "events.nmi-pending";
  }
  return "";
}

// What validate() found: the first broken rule, where (section id, item
// index within a list section or register offset, -1 when neither), and
// the offending value; for VMCS12_ENTRY_CHECKS the value is the class of
// the failed check (validate-nested.ts VMCS12_FAILED_*: 1 controls, 2 host
// state, 3 guest state) and `check` its name (nested/entry-checks*.ts:
// ctls.*, host.*, guest.*; a string literal, held by reference). Owned by
// the caller, made once.
@unmanaged export class Verdict {
  rule: u32 = OK;
  section: u32 = 0; // SNAP_SEC_* where the rule broke, 0 for the header
  item: i32 = -1;
  value: u64 = 0;
  check: string = ""; // the failed SDM entry check, with VMCS12_ENTRY_CHECKS

  clear(): void {
    this.rule = OK;
    this.section = 0;
    this.item = -1;
    this.value = 0;
    this.check = "";
  }
  // Record the first broken rule; returns it, for `return v.fail(...)`.
  fail(rule: u32, section: u32, item: i32, value: u64): u32 {
    this.rule = rule;
    this.section = section;
    this.item = item;
    this.value = value;
    return rule;
  }
}

// The class of a failed entry check, as the SDM groups them.
function entryClass(c: u64): string {
  if (c == 1) return "VM-execution, exit and entry controls (SDM 27.2.1)";
  if (c == 2) return "host state (SDM 27.2.2-27.2.4)";
  return "guest state (SDM 27.3.1)";
}

// "hv: snapshot rejected: <rule> (section <NAME>, item <i>, value 0x<v>)",
// for vmcs12.entry-checks followed by ": vmcs12 failed the VM-entry checks:
// <class>: <check>"; or "hv: snapshot accepted".
export function report(v: Verdict): void {
  if (v.rule == OK) {
    print.str("hv: snapshot accepted");
    print.nl();
    return;
  }
  print.str("hv: snapshot rejected: ");
  print.str(ruleName(v.rule));
  if (v.section != 0) {
    print.str(" (section ");
    const name = V.snapSectionName(v.section);
    if (name.length != 0) print.str(name);
    else print.dec(v.section);
    if (v.item >= 0) {
      print.str(", item ");
      print.dec(<u64>v.item);
    }
    print.str(", value ");
    print.hex(v.value);
    print.str(")");
  } else {
    print.str(" (value ");
    print.hex(v.value);
    print.str(")");
  }
  if (v.rule == VMCS12_ENTRY_CHECKS) {
    print.str(": vmcs12 failed the VM-entry checks: ");
    print.str(entryClass(v.value));
    print.str(": ");
    print.str(v.check);
  }
  print.nl();
}
