// VM-entry checks on the guest-state area of the current vmcs12 (SDM Vol.
// 3C 27.3.1): control and debug registers and MSRs (27.3.1.1), segment
// registers (27.3.1.2), descriptor-table registers (27.3.1.3), RIP and
// RFLAGS (27.3.1.4), non-register state (27.3.1.5) and, with EPT off, the
// PDPTEs a PAE-paging guest loads from memory (27.3.1.6). A failure is a
// failed VM entry for the caller: exit reason 33 with bit 31 set and the
// qualification in the EntryCheck (entry-checks-env.ts, 27.8).
//
// "Unrestricted guest" is not offered to L1, so the relaxations it brings
// never apply; the code still reads the control (a vmcs12 setting it failed
// ctls.proc2.reserved already) so that offering it later changes one line.
import * as V from "../arch/vmx";
import * as caps from "./caps";
import * as state from "./state";
import * as guestmem from "../vm/guestmem";
import * as msrExit from "../vm/exit/msr";
import { EntryCheck, fail, beyondPhys, canonical, linearBits, physBits, hasRtm } from "./entry-checks-env";
import { Nested } from "./nested";
import { fixedOk, patOk, EFER_DEFINED } from "./entry-checks-host";

const Q_PDPTE: u64 = V.ENTRY_FAIL_QUAL_PDPTE;
const Q_NMI_STI: u64 = V.ENTRY_FAIL_QUAL_NMI_STI;
const Q_LINK: u64 = V.ENTRY_FAIL_QUAL_VMCS_LINK_POINTER;

// IA32_DEBUGCTL bits L1's processor has: those its WRMSR takes
// (kernel/vm/exit/msr.ts debugctlDefined: LBR, BTF, RTM with RTM); every
// other bit is reserved for it.
const RFLAGS_DEFINED: u64 = V.X86_RFLAGS_CF | V.X86_RFLAGS_FIXED1 | V.X86_RFLAGS_PF | V.X86_RFLAGS_AF |
  V.X86_RFLAGS_ZF | V.X86_RFLAGS_SF | V.X86_RFLAGS_TF | V.X86_RFLAGS_IF | V.X86_RFLAGS_DF | V.X86_RFLAGS_OF |
  V.X86_RFLAGS_IOPL_MASK | V.X86_RFLAGS_NT | V.X86_RFLAGS_RF | V.X86_RFLAGS_VM | V.X86_RFLAGS_AC |
  V.X86_RFLAGS_VIF | V.X86_RFLAGS_VIP | V.X86_RFLAGS_ID;
const INTR_DEFINED: u32 = V.INTERRUPTIBILITY_BLOCKING_BY_STI | V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS |
  V.INTERRUPTIBILITY_BLOCKING_BY_SMI | V.INTERRUPTIBILITY_BLOCKING_BY_NMI | V.INTERRUPTIBILITY_ENCLAVE_INTERRUPTION;
const PENDING_DBG_DEFINED: u64 = V.PENDING_DBG_B3_B0_MASK | V.PENDING_DBG_ENABLED_BREAKPOINT | V.PENDING_DBG_BS |
  V.PENDING_DBG_RTM;
const AR_RESERVED_11_8: u32 = 0xf00;
const AR_RESERVED_31_17: u32 = 0xfffe0000;
const AR_VIRTUAL_8086: u32 = 0xf3; // type 3, S, DPL 3, P (27.3.1.2)
const LIMIT_VIRTUAL_8086: u64 = 0xffff;
const SEL_TI: u64 = 4; // selector bit 2
const SEL_RPL: u64 = 3; // selector bits 1:0

// Segment descriptor types (SDM Vol. 3A 3.4.5.1, 3.5): code/data type bits
// and the system types VM entry accepts for LDTR and TR.
const TYPE_ACCESSED: u32 = 1;
const TYPE_READABLE: u32 = 2; // code: readable; data: writable
const TYPE_CONFORMING: u32 = 4;
const TYPE_CODE: u32 = 8;
const TYPE_DATA_RW_ACCESSED: u32 = 3; // also "16-bit busy TSS" as a system type
const TYPE_DATA_RW_ACCESSED_EXPAND_DOWN: u32 = 7;
const TYPE_LDT: u32 = 2;
const TYPE_TSS_BUSY_16: u32 = 3;
const TYPE_TSS_BUSY: u32 = 11; // 32-bit busy TSS, or 64-bit in IA-32e mode

// Exception vectors an HLT / shutdown state admits (27.3.1.5): #DB, #MC.
const VEC_DB: u32 = 1;
const VEC_MC: u32 = 18;

// PAE paging PDPTE (SDM Vol. 3A 4.4.1, Table 4-8): P, and the reserved bits
// 2:1 and 8:5 (63:MAXPHYADDR are reserved too). CR3 bits 31:5 locate them.
const PDPTE_P: u64 = 1;
const PDPTE_RESERVED_LOW: u64 = 0x1e6;
const PAE_CR3_MASK: u64 = 0xffffffe0;
const PDPTE_COUNT: u64 = 4;

// Segments in field order: ES CS SS DS FS GS LDTR TR (encodings 2 apart).
const ES: i32 = 0, CS: i32 = 1, SS: i32 = 2, DS: i32 = 3, FS: i32 = 4, GS: i32 = 5, LDTR: i32 = 6, TR: i32 = 7;
const STRIDE: u32 = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR;
function sel(n: Nested, s: i32): u64 { return state.read(n, V.GUEST_ES_SELECTOR + <u32>s * STRIDE); }
function base(n: Nested, s: i32): u64 { return state.read(n, V.GUEST_ES_BASE + <u32>s * STRIDE); }
function limit(n: Nested, s: i32): u64 { return state.read(n, V.GUEST_ES_LIMIT + <u32>s * STRIDE); }
function ar(n: Nested, s: i32): u32 { return <u32>state.read(n, V.GUEST_ES_ACCESS_RIGHTS + <u32>s * STRIDE); }
function usable(a: u32): bool { return (a & V.SEG_AR_UNUSABLE) == 0; }
function dpl(a: u32): u32 { return (a & V.SEG_AR_DPL_MASK) >> V.SEG_AR_DPL_SHIFT; }
function segType(a: u32): u32 { return (a & V.SEG_AR_TYPE_MASK) >> V.SEG_AR_TYPE_SHIFT; }
// G must be 0 if any of limit bits 11:0 is 0, 1 if any of bits 31:20 is 1.
function granularityOk(a: u32, lim: u64): bool {
  const g = (a & V.SEG_AR_G) != 0;
  if ((lim & 0xfff) != 0xfff && g) return false;
  if ((lim >> 20) != 0 && !g) return false;
  return true;
}

// Check names per segment, ES CS SS DS FS GS.
const N_V86_BASE: StaticArray<string> = ["guest.es.v86-base", "guest.cs.v86-base", "guest.ss.v86-base",
  "guest.ds.v86-base", "guest.fs.v86-base", "guest.gs.v86-base"];
const N_V86_LIMIT: StaticArray<string> = ["guest.es.v86-limit", "guest.cs.v86-limit", "guest.ss.v86-limit",
  "guest.ds.v86-limit", "guest.fs.v86-limit", "guest.gs.v86-limit"];
const N_V86_AR: StaticArray<string> = ["guest.es.v86-ar", "guest.cs.v86-ar", "guest.ss.v86-ar",
  "guest.ds.v86-ar", "guest.fs.v86-ar", "guest.gs.v86-ar"];
const N_TYPE_ACCESSED: StaticArray<string> = ["guest.es.type-accessed", "", "", "guest.ds.type-accessed",
  "guest.fs.type-accessed", "guest.gs.type-accessed"];
const N_TYPE_UNREADABLE: StaticArray<string> = ["guest.es.type-unreadable-code", "", "",
  "guest.ds.type-unreadable-code", "guest.fs.type-unreadable-code", "guest.gs.type-unreadable-code"];
const N_S: StaticArray<string> = ["guest.es.s", "guest.cs.s", "guest.ss.s", "guest.ds.s", "guest.fs.s", "guest.gs.s"];
const N_DPL: StaticArray<string> = ["guest.es.dpl", "", "guest.ss.dpl", "guest.ds.dpl", "guest.fs.dpl",
  "guest.gs.dpl"];
const N_P: StaticArray<string> = ["guest.es.p", "guest.cs.p", "guest.ss.p", "guest.ds.p", "guest.fs.p", "guest.gs.p"];
const N_AR_RSV: StaticArray<string> = ["guest.es.ar-reserved", "guest.cs.ar-reserved", "guest.ss.ar-reserved",
  "guest.ds.ar-reserved", "guest.fs.ar-reserved", "guest.gs.ar-reserved"];
const N_G: StaticArray<string> = ["guest.es.g", "guest.cs.g", "guest.ss.g", "guest.ds.g", "guest.fs.g", "guest.gs.g"];

// How much to check (entry-checks.ts decides from the Nested's dirty record):
export const CHECK_MEMORY: i32 = 0; // only what depends on L1's memory (link pointer VMCS, PDPTEs)
export const CHECK_RIP: i32 = 1; // and RIP
export const CHECK_DYNAMIC: i32 = 2; // and RFLAGS, activity, interruptibility, pending debug, event
export const CHECK_ALL: i32 = 3;

@inline export function check(c: EntryCheck, level: i32): bool {
  const n = c.n;
  // (Each level loads what its checks read: an entry after a reflected
  // exit usually checks only RIP, and every load is a bounds-checked one.)
  const entry = <u32>state.get(n, V.VM_ENTRY_CONTROL);
  const proc = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  const proc2 = (proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 ?
    <u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) : 0;
  const ia32e = (entry & V.ENTRY_IA32E_MODE_GUEST) != 0;

  if (level >= CHECK_ALL) {
    const unrestricted = (proc2 & V.PROC2_UNRESTRICTED_GUEST) != 0;
    const cr0 = state.get(n, V.GUEST_CR0);
    const cr4 = state.get(n, V.GUEST_CR4);
    const rflags = state.get(n, V.GUEST_RFLAGS);
    // ---- 27.3.1.1 control registers, debug registers, MSRs
    let cr0Fixed0 = caps.cr0Fixed0();
    if (unrestricted) cr0Fixed0 &= ~(<u64>(V.X86_CR0_PE | V.X86_CR0_PG));
    if (!fixedOk(cr0, cr0Fixed0, caps.cr0Fixed1())) return fail(c, "guest.cr0.fixed");
    if ((cr0 & V.X86_CR0_PG) != 0 && (cr0 & V.X86_CR0_PE) == 0) return fail(c, "guest.cr0.pg-without-pe");
    if (!fixedOk(cr4, caps.cr4Fixed0(), caps.cr4Fixed1())) return fail(c, "guest.cr4.fixed");
    if ((cr4 & V.X86_CR4_CET) != 0 && (cr0 & V.X86_CR0_WP) == 0) return fail(c, "guest.cr4.cet-without-wp");
    const loadDebug = (entry & V.ENTRY_LOAD_DEBUG_CONTROLS) != 0;
    if (loadDebug && (state.get(n, V.GUEST_IA32_DEBUGCTL) & ~msrExit.debugctlDefined) != 0) return fail(c, "guest.debugctl.reserved");
    if (ia32e) {
      if ((cr0 & V.X86_CR0_PG) == 0) return fail(c, "guest.ia32e.pg");
      if ((cr4 & V.X86_CR4_PAE) == 0) return fail(c, "guest.ia32e.pae");
    } else if ((cr4 & V.X86_CR4_PCIDE) != 0) {
      return fail(c, "guest.cr4.pcide-outside-ia32e");
    }
    if (beyondPhys(state.get(n, V.GUEST_CR3))) return fail(c, "guest.cr3.width");
    if (loadDebug && (state.get(n, V.GUEST_DR7) >> 32) != 0) return fail(c, "guest.dr7.high");
    if (!canonical(state.get(n, V.GUEST_IA32_SYSENTER_ESP))) return fail(c, "guest.sysenter-esp.canonical");
    if (!canonical(state.get(n, V.GUEST_IA32_SYSENTER_EIP))) return fail(c, "guest.sysenter-eip.canonical");
    // "load IA32_PERF_GLOBAL_CTRL", BNDCFGS, RTIT_CTL, CET, LBR_CTL, PKRS,
    // UINV and FRED are not offered: no checks on their fields.
    if ((entry & V.ENTRY_LOAD_IA32_PAT) != 0 && !patOk(state.get(n, V.GUEST_IA32_PAT))) return fail(c, "guest.pat.invalid");
    if ((entry & V.ENTRY_LOAD_IA32_EFER) != 0) {
      const efer = state.get(n, V.GUEST_IA32_EFER);
      if ((efer & ~EFER_DEFINED) != 0) return fail(c, "guest.efer.reserved");
      if (((efer & V.X86_EFER_LMA) != 0) != ia32e) return fail(c, "guest.efer.lma");
      if ((cr0 & V.X86_CR0_PG) != 0 && ((efer & V.X86_EFER_LME) != 0) != ia32e) return fail(c, "guest.efer.lme");
    }

    // ---- 27.3.1.2 segment registers
    if (!segmentsOk(c, (rflags & V.X86_RFLAGS_VM) != 0, unrestricted, ia32e)) return false;

    // ---- 27.3.1.3 descriptor-table registers
    if (!canonical(state.get(n, V.GUEST_GDTR_BASE))) return fail(c, "guest.gdtr.base-canonical");
    if (!canonical(state.get(n, V.GUEST_IDTR_BASE))) return fail(c, "guest.idtr.base-canonical");
    if ((state.get(n, V.GUEST_GDTR_LIMIT) >> 16) != 0) return fail(c, "guest.gdtr.limit");
    if ((state.get(n, V.GUEST_IDTR_LIMIT) >> 16) != 0) return fail(c, "guest.idtr.limit");
  }

  if (level >= CHECK_RIP) {
    // ---- 27.3.1.4 RIP (no check reads RSP)
    const rip = state.get(n, V.GUEST_RIP);
    const csL = (<u32>state.get(n, V.GUEST_CS_ACCESS_RIGHTS) & V.SEG_AR_L) != 0;
    if (!ia32e || !csL) {
      if ((rip >> 32) != 0) return fail(c, "guest.rip.high");
    } else {
      // Bits 63:N identical, N the linear-address width (not "canonical",
      // which would take bit N-1 in too).
      const w = linearBits();
      if (w < 64) {
        const top = rip >> <u64>w;
        if (top != 0 && top != (u64.MAX_VALUE >> <u64>w)) return fail(c, "guest.rip.high-bits");
      }
    }
  }

  if (level >= CHECK_DYNAMIC) {
    const pin = <u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL);
    const cr0 = state.get(n, V.GUEST_CR0);
    const rflags = state.get(n, V.GUEST_RFLAGS);
    // ---- 27.3.1.4 RFLAGS
    if ((rflags & ~RFLAGS_DEFINED) != 0) return fail(c, "guest.rflags.reserved");
    if ((rflags & V.X86_RFLAGS_FIXED1) == 0) return fail(c, "guest.rflags.fixed1");
    if ((rflags & V.X86_RFLAGS_VM) != 0 && (ia32e || (cr0 & V.X86_CR0_PE) == 0)) return fail(c, "guest.rflags.vm");
    const info = <u32>state.get(n, V.VM_ENTRY_INTERRUPTION_INFO);
    const injecting = (info & V.INTR_INFO_VALID) != 0;
    const itype = (info & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
    const ivector = (info & V.INTR_INFO_VECTOR_MASK) >> V.INTR_INFO_VECTOR_SHIFT;
    const extInt = injecting && itype == V.INTR_TYPE_EXTERNAL_INTERRUPT;
    const nmi = injecting && itype == V.INTR_TYPE_NMI;
    if (extInt && (rflags & V.X86_RFLAGS_IF) == 0) return fail(c, "guest.rflags.if-extint");

    // ---- 27.3.1.5 non-register state
    const misc = caps.misc();
    const activity = <u32>state.get(n, V.GUEST_ACTIVITY_STATE);
    let supported = activity == V.ACTIVITY_STATE_ACTIVE;
    if (activity == V.ACTIVITY_STATE_HLT) supported = (misc & V.VMX_MISC_ACTIVITY_HLT) != 0;
    if (activity == V.ACTIVITY_STATE_SHUTDOWN) supported = (misc & V.VMX_MISC_ACTIVITY_SHUTDOWN) != 0;
    if (activity == V.ACTIVITY_STATE_WAIT_FOR_SIPI) supported = (misc & V.VMX_MISC_ACTIVITY_WAIT_FOR_SIPI) != 0;
    if (!supported) return fail(c, "guest.activity.unsupported");
    if (activity == V.ACTIVITY_STATE_HLT && dpl(ar(n, SS)) != 0) return fail(c, "guest.activity.hlt-cpl");
    const intr = <u32>state.get(n, V.GUEST_INTERRUPTIBILITY_STATE);
    const sti = (intr & V.INTERRUPTIBILITY_BLOCKING_BY_STI) != 0;
    const movss = (intr & V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS) != 0;
    if ((sti || movss) && activity != V.ACTIVITY_STATE_ACTIVE) return fail(c, "guest.activity.blocking-not-active");
    if (injecting && !eventAllowed(activity, itype, ivector)) return fail(c, "guest.activity.event-blocked");
    // "entry to SMM" is not offered: no wait-for-SIPI / SMM check.

    if ((intr & ~INTR_DEFINED) != 0) return fail(c, "guest.intr.reserved");
    // Enclave interruption needs SGX, which L1 cannot enable (its emulated
    // IA32_FEATURE_CONTROL has SGX off): no enclave of L1 can be interrupted.
    if ((intr & V.INTERRUPTIBILITY_ENCLAVE_INTERRUPTION) != 0) return fail(c, "guest.intr.enclave");
    if (sti && movss) return fail(c, "guest.intr.sti-and-mov-ss");
    if (sti && (rflags & V.X86_RFLAGS_IF) == 0) return fail(c, "guest.intr.sti-without-if");
    if (extInt && (sti || movss)) return fail(c, "guest.intr.blocking-with-extint");
    if (nmi && movss) return fail(c, "guest.intr.mov-ss-with-nmi");
    // L1 is never in SMM.
    if ((intr & V.INTERRUPTIBILITY_BLOCKING_BY_SMI) != 0) return fail(c, "guest.intr.smi-outside-smm");
    // "A processor may require bit 0 (blocking by STI) to be 0" when an NMI
    // is injected: this one does, with exit qualification 3 (27.8).
    if (nmi && sti) return fail(c, "guest.intr.sti-with-nmi", Q_NMI_STI);
    if (nmi && (pin & V.PIN_VIRTUAL_NMIS) != 0 && (intr & V.INTERRUPTIBILITY_BLOCKING_BY_NMI) != 0) {
      return fail(c, "guest.intr.nmi-blocked-virtual-nmi");
    }

    const pde = state.get(n, V.GUEST_PENDING_DEBUG_EXCEPTIONS);
    if ((pde & ~PENDING_DBG_DEFINED) != 0) return fail(c, "guest.pending-dbg.reserved");
    if (sti || movss || activity == V.ACTIVITY_STATE_HLT) {
      const tf = (rflags & V.X86_RFLAGS_TF) != 0;
      const btf = (state.get(n, V.GUEST_IA32_DEBUGCTL) & V.X86_DEBUGCTL_BTF) != 0;
      const bs = (pde & V.PENDING_DBG_BS) != 0;
      if (tf && !btf && !bs) return fail(c, "guest.pending-dbg.bs-missing");
      if ((!tf || btf) && bs) return fail(c, "guest.pending-dbg.bs-unexpected");
    }
    if ((pde & V.PENDING_DBG_RTM) != 0) {
      // Only bits 12 and 16 may be set; bit 12 must be; the processor must
      // have RTM; no blocking by MOV SS.
      if ((pde & ~(V.PENDING_DBG_RTM | V.PENDING_DBG_ENABLED_BREAKPOINT)) != 0 ||
        (pde & V.PENDING_DBG_ENABLED_BREAKPOINT) == 0) return fail(c, "guest.pending-dbg.rtm-bits");
      if (!hasRtm()) return fail(c, "guest.pending-dbg.rtm-unsupported");
      if (movss) return fail(c, "guest.pending-dbg.rtm-mov-ss");
    }
  }

  // (The usual all-ones pointer tested here: no call at every entry.)
  if (state.get(n, V.VMCS_LINK_POINTER) != u64.MAX_VALUE && !linkPointerOk(c, proc2)) return false;

  // ---- 27.3.1.6 PDPTEs of a guest that will use PAE paging: with "enable
  // EPT" 0 VM entry loads them from the table CR3 points to (L1's memory:
  // checked at every entry); with EPT 1 from the PDPTE fields (vmcs12).
  const cr0 = state.get(n, V.GUEST_CR0);
  if ((cr0 & V.X86_CR0_PG) != 0 && (state.get(n, V.GUEST_CR4) & V.X86_CR4_PAE) != 0 && !ia32e) {
    if ((proc2 & V.PROC2_ENABLE_EPT) == 0) return pdptesOk(c, state.get(n, V.GUEST_CR3));
    if (level >= CHECK_ALL) return pdpteFieldsOk(c);
  }
  return true;
}

function pdpteReserved(e: u64): bool {
  const w = physBits();
  const high: u64 = w < 64 ? u64.MAX_VALUE << <u64>w : 0;
  return (e & PDPTE_P) != 0 && (e & (PDPTE_RESERVED_LOW | high)) != 0;
}

// 27.3.1.6 with "enable EPT" 1: the four PDPTE fields (also qualification 2,
// 27.8: the failure is in loading the PDPTEs, from the fields here).
function pdpteFieldsOk(c: EntryCheck): bool {
  const n = c.n;
  if (pdpteReserved(state.get(n, V.GUEST_PDPTE0)) || pdpteReserved(state.get(n, V.GUEST_PDPTE1)) ||
    pdpteReserved(state.get(n, V.GUEST_PDPTE2)) || pdpteReserved(state.get(n, V.GUEST_PDPTE3))) {
    return fail(c, "guest.pdpte-field.reserved", Q_PDPTE);
  }
  return true;
}

// Which injected event the activity state admits (27.3.1.5).
function eventAllowed(activity: u32, itype: u32, vector: u32): bool {
  if (activity == V.ACTIVITY_STATE_HLT) {
    return itype == V.INTR_TYPE_EXTERNAL_INTERRUPT || itype == V.INTR_TYPE_NMI ||
      (itype == V.INTR_TYPE_HARDWARE_EXCEPTION && (vector == VEC_DB || vector == VEC_MC)) ||
      (itype == V.INTR_TYPE_OTHER_EVENT && vector == 0);
  }
  if (activity == V.ACTIVITY_STATE_SHUTDOWN) {
    return itype == V.INTR_TYPE_NMI || (itype == V.INTR_TYPE_HARDWARE_EXCEPTION && vector == VEC_MC);
  }
  if (activity == V.ACTIVITY_STATE_WAIT_FOR_SIPI) return false;
  return true;
}

// 27.3.1.2, for a guest that is not unrestricted.
function segmentsOk(c: EntryCheck, v86: bool, unrestricted: bool, ia32e: bool): bool {
  const n = c.n;
  // Selectors.
  if ((sel(n, TR) & SEL_TI) != 0) return fail(c, "guest.tr.sel-ti");
  const ldtrAr = ar(n, LDTR);
  if (usable(ldtrAr) && (sel(n, LDTR) & SEL_TI) != 0) return fail(c, "guest.ldtr.sel-ti");
  if (!v86 && !unrestricted && (sel(n, SS) & SEL_RPL) != (sel(n, CS) & SEL_RPL)) return fail(c, "guest.ss.sel-rpl");

  // Bases.
  if (v86) {
    for (let s = ES; s <= GS; s++) if (base(n, s) != sel(n, s) << 4) return fail(c, unchecked(N_V86_BASE[s]));
  }
  if (!canonical(base(n, TR))) return fail(c, "guest.tr.base-canonical");
  if (!canonical(base(n, FS))) return fail(c, "guest.fs.base-canonical");
  if (!canonical(base(n, GS))) return fail(c, "guest.gs.base-canonical");
  if (usable(ldtrAr) && !canonical(base(n, LDTR))) return fail(c, "guest.ldtr.base-canonical");
  if ((base(n, CS) >> 32) != 0) return fail(c, "guest.cs.base-high");
  if (usable(ar(n, SS)) && (base(n, SS) >> 32) != 0) return fail(c, "guest.ss.base-high");
  if (usable(ar(n, DS)) && (base(n, DS) >> 32) != 0) return fail(c, "guest.ds.base-high");
  if (usable(ar(n, ES)) && (base(n, ES) >> 32) != 0) return fail(c, "guest.es.base-high");

  // Limits and access rights of CS, SS, DS, ES, FS, GS.
  if (v86) {
    for (let s = ES; s <= GS; s++) if (limit(n, s) != LIMIT_VIRTUAL_8086) return fail(c, unchecked(N_V86_LIMIT[s]));
    for (let s = ES; s <= GS; s++) if (ar(n, s) != AR_VIRTUAL_8086) return fail(c, unchecked(N_V86_AR[s]));
  } else if (!codeDataArOk(c, unrestricted, ia32e)) {
    return false;
  }

  // TR: always usable, a busy TSS.
  const trAr = ar(n, TR);
  const trType = segType(trAr);
  if (ia32e ? trType != TYPE_TSS_BUSY : (trType != TYPE_TSS_BUSY_16 && trType != TYPE_TSS_BUSY)) {
    return fail(c, "guest.tr.type");
  }
  if ((trAr & V.SEG_AR_S) != 0) return fail(c, "guest.tr.s");
  if ((trAr & V.SEG_AR_P) == 0) return fail(c, "guest.tr.p");
  if ((trAr & (AR_RESERVED_11_8 | AR_RESERVED_31_17)) != 0) return fail(c, "guest.tr.ar-reserved");
  if (!granularityOk(trAr, limit(n, TR))) return fail(c, "guest.tr.g");
  if (!usable(trAr)) return fail(c, "guest.tr.unusable");

  // LDTR, when usable: an LDT.
  if (usable(ldtrAr)) {
    if (segType(ldtrAr) != TYPE_LDT) return fail(c, "guest.ldtr.type");
    if ((ldtrAr & V.SEG_AR_S) != 0) return fail(c, "guest.ldtr.s");
    if ((ldtrAr & V.SEG_AR_P) == 0) return fail(c, "guest.ldtr.p");
    if ((ldtrAr & (AR_RESERVED_11_8 | AR_RESERVED_31_17)) != 0) return fail(c, "guest.ldtr.ar-reserved");
    if (!granularityOk(ldtrAr, limit(n, LDTR))) return fail(c, "guest.ldtr.g");
  }
  return true;
}

// Access rights of CS, SS, DS, ES, FS, GS for a guest that is not
// virtual-8086; the checks on CS apply whether or not it is marked usable,
// those on the others only when usable.
function codeDataArOk(c: EntryCheck, unrestricted: bool, ia32e: bool): bool {
  const n = c.n;
  const csAr = ar(n, CS);
  const ssAr = ar(n, SS);
  const csType = segType(csAr);
  // Type.
  // An accessed code segment (9, 11, 13, 15), or type 3 for an unrestricted guest.
  const csTypeOk = (csType & (TYPE_CODE | TYPE_ACCESSED)) == (TYPE_CODE | TYPE_ACCESSED) ||
    (unrestricted && csType == TYPE_DATA_RW_ACCESSED);
  if (!csTypeOk) return fail(c, "guest.cs.type");
  if (usable(ssAr) && segType(ssAr) != TYPE_DATA_RW_ACCESSED && segType(ssAr) != TYPE_DATA_RW_ACCESSED_EXPAND_DOWN) {
    return fail(c, "guest.ss.type");
  }
  for (let s = ES; s <= GS; s++) {
    if (s == CS || s == SS) continue;
    const a = ar(n, s);
    if (!usable(a)) continue;
    if ((segType(a) & TYPE_ACCESSED) == 0) return fail(c, unchecked(N_TYPE_ACCESSED[s]));
    if ((segType(a) & TYPE_CODE) != 0 && (segType(a) & TYPE_READABLE) == 0) return fail(c, unchecked(N_TYPE_UNREADABLE[s]));
  }
  // S.
  for (let s = ES; s <= GS; s++) {
    const a = ar(n, s);
    if ((s == CS || usable(a)) && (a & V.SEG_AR_S) == 0) return fail(c, unchecked(N_S[s]));
  }
  // DPL.
  if (csType == TYPE_DATA_RW_ACCESSED && dpl(csAr) != 0) return fail(c, "guest.cs.dpl-data");
  if ((csType & TYPE_CONFORMING) == 0 && (csType & TYPE_CODE) != 0 && dpl(csAr) != dpl(ssAr)) {
    return fail(c, "guest.cs.dpl-nonconforming");
  }
  if ((csType & TYPE_CONFORMING) != 0 && (csType & TYPE_CODE) != 0 && dpl(csAr) > dpl(ssAr)) {
    return fail(c, "guest.cs.dpl-conforming");
  }
  if (!unrestricted && <u64>dpl(ssAr) != (sel(n, SS) & SEL_RPL)) return fail(c, "guest.ss.dpl");
  if (dpl(ssAr) != 0 && (csType == TYPE_DATA_RW_ACCESSED || (state.get(n, V.GUEST_CR0) & V.X86_CR0_PE) == 0)) {
    return fail(c, "guest.ss.dpl-not-0");
  }
  for (let s = ES; s <= GS; s++) {
    if (s == CS || s == SS) continue;
    const a = ar(n, s);
    // A data or non-conforming code segment: DPL at least the RPL.
    const t = segType(a);
    const dataOrNonConforming = (t & TYPE_CODE) == 0 || (t & TYPE_CONFORMING) == 0;
    if (!unrestricted && usable(a) && dataOrNonConforming && <u64>dpl(a) < (sel(n, s) & SEL_RPL)) {
      return fail(c, unchecked(N_DPL[s]));
    }
  }
  // P, reserved bits 11:8.
  for (let s = ES; s <= GS; s++) {
    const a = ar(n, s);
    if ((s == CS || usable(a)) && (a & V.SEG_AR_P) == 0) return fail(c, unchecked(N_P[s]));
  }
  for (let s = ES; s <= GS; s++) {
    const a = ar(n, s);
    if ((s == CS || usable(a)) && (a & AR_RESERVED_11_8) != 0) return fail(c, unchecked(N_AR_RSV[s]));
  }
  // D/B of a 64-bit code segment.
  if (ia32e && (csAr & V.SEG_AR_L) != 0 && (csAr & V.SEG_AR_DB) != 0) return fail(c, "guest.cs.db-with-l");
  // G, reserved bits 31:17.
  for (let s = ES; s <= GS; s++) {
    const a = ar(n, s);
    if ((s == CS || usable(a)) && !granularityOk(a, limit(n, s))) return fail(c, unchecked(N_G[s]));
  }
  for (let s = ES; s <= GS; s++) {
    const a = ar(n, s);
    if ((s == CS || usable(a)) && (a & AR_RESERVED_31_17) != 0) return fail(c, unchecked(N_AR_RSV[s]));
  }
  return true;
}

// VMCS link pointer (27.3.1.5), when not FFFFFFFF_FFFFFFFFH. Failures have
// exit qualification 4. The 4 bytes it references are read from L1's
// memory; as the hypervisor's own rule the referenced VMCS region must be
// inside L1's RAM (a pointer into MMIO or beyond RAM is refused, not read).
// (The caller tests for all ones first; this runs only for another pointer.)
function linkPointerOk(c: EntryCheck, proc2: u32): bool {
  const n = c.n;
  const link = state.get(n, V.VMCS_LINK_POINTER);
  if ((link & 0xfff) != 0) return fail(c, "guest.link.align", Q_LINK);
  if (beyondPhys(link)) return fail(c, "guest.link.width", Q_LINK);
  if (!guestmem.isRam(link, <u64>V.VMCS12_PAGE_SIZE)) return fail(c, "guest.link.ram", Q_LINK);
  const first = guestmem.read32(link);
  if ((first & ~V.VMCS_SHADOW_INDICATOR) != caps.REVISION_ID) return fail(c, "guest.link.revision", Q_LINK);
  const shadowing = (proc2 & V.PROC2_VMCS_SHADOWING) != 0;
  if (((first & V.VMCS_SHADOW_INDICATOR) != 0) != shadowing) return fail(c, "guest.link.shadow-indicator", Q_LINK);
  // L1 is never in SMM: the pointer must not be the current VMCS.
  if (link == n.current) return fail(c, "guest.link.current", Q_LINK);
  return true;
}

// 27.3.1.6: the four PDPTEs at CR3[31:5] in L1's memory; a present one may
// not set a reserved bit. Qualification 2. The table must be in L1's RAM
// (the hypervisor's own rule: it reads the entries in software).
function pdptesOk(c: EntryCheck, cr3: u64): bool {
  const table = cr3 & PAE_CR3_MASK;
  if (!guestmem.isRam(table, PDPTE_COUNT * 8)) return fail(c, "guest.pdpte.ram", Q_PDPTE);
  for (let i: u64 = 0; i < PDPTE_COUNT; i++) {
    if (pdpteReserved(guestmem.read64(table + i * 8))) return fail(c, "guest.pdpte.reserved", Q_PDPTE);
  }
  return true;
}
