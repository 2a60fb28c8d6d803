// VM-entry checks on the host-state area of the current vmcs12 (SDM Vol. 3C
// 27.2.2 control registers and MSRs, 27.2.3 segment and descriptor-table
// registers, 27.2.4 address-space size). The host state is L1's: CR0/CR4
// are checked against the fixed bits offered to L1 (nested/caps.ts), the
// address-space size against L1's IA32_EFER.LMA. A failure is
// VMfailValid(8) for the caller.
import * as V from "../arch/vmx";
import * as caps from "./caps";
import * as state from "./state";
import { EntryCheck, fail, beyondPhys, canonical } from "./entry-checks-env";

// IA32_EFER bits L1's processor implements (kernel/vm/exit/msr.ts): SCE,
// LME, LMA, NXE; the others are reserved.
export const EFER_DEFINED: u64 = V.X86_EFER_SCE | V.X86_EFER_LME | V.X86_EFER_LMA | V.X86_EFER_NXE;

// IA32_PAT: each byte one of the memory types 0 UC, 1 WC, 4 WT, 5 WP, 6 WB,
// 7 UC- (SDM Vol. 3A 12.12.2); 2 and 3 and anything above 7 are reserved.
export function patOk(pat: u64): bool {
  for (let i: u64 = 0; i < 64; i += 8) {
    const t = <u32>(pat >> i) & 0xff;
    if (t == 2 || t == 3 || t > 7) return false;
  }
  return true;
}

// CR0 and CR4 as VMX operation allows them (fixed-0 bits set, only fixed-1
// bits set; 24.8, A.7, A.8).
export function fixedOk(v: u64, fixed0: u64, fixed1: u64): bool {
  return (v & fixed0) == fixed0 && (v & ~fixed1) == 0;
}

const SEL_RPL_TI: u64 = 7; // selector bits 1:0 (RPL) and 2 (TI)

// l1Ia32e: IA32_EFER.LMA of L1, the logical processor executing
// VMLAUNCH/VMRESUME (27.2.4). l2Ran: see entry-checks.ts checkAll.
export function check(c: EntryCheck, l1Ia32e: bool, l2Ran: bool = false): bool {
  const n = c.n;
  const exit = <u32>state.get(n, V.VM_EXIT_CONTROL);
  const entry = <u32>state.get(n, V.VM_ENTRY_CONTROL);
  const hostLong = (exit & V.EXIT_HOST_ADDRESS_SPACE_SIZE) != 0;
  const cr0 = state.get(n, V.HOST_CR0);
  const cr4 = state.get(n, V.HOST_CR4);

  // ---- 27.2.2 host control registers and MSRs
  if (!fixedOk(cr0, caps.cr0Fixed0(), caps.cr0Fixed1())) return fail(c, "host.cr0.fixed");
  if (!fixedOk(cr4, caps.cr4Fixed0(), caps.cr4Fixed1())) return fail(c, "host.cr4.fixed");
  if ((cr4 & V.X86_CR4_CET) != 0 && (cr0 & V.X86_CR0_WP) == 0) return fail(c, "host.cr4.cet-without-wp");
  if (beyondPhys(state.get(n, V.HOST_CR3))) return fail(c, "host.cr3.width");
  // "load CET state", "load IA32_PERF_GLOBAL_CTRL", "load PKRS" and the
  // FRED controls are not offered: no checks on their fields.
  if (!canonical(state.get(n, V.HOST_IA32_SYSENTER_ESP))) return fail(c, "host.sysenter-esp.canonical");
  if (!canonical(state.get(n, V.HOST_IA32_SYSENTER_EIP))) return fail(c, "host.sysenter-eip.canonical");
  if ((exit & V.EXIT_LOAD_IA32_PAT) != 0 && !patOk(state.get(n, V.HOST_IA32_PAT))) return fail(c, "host.pat.invalid");
  if ((exit & V.EXIT_LOAD_IA32_EFER) != 0) {
    const efer = state.get(n, V.HOST_IA32_EFER);
    if ((efer & ~EFER_DEFINED) != 0) return fail(c, "host.efer.reserved");
    if (((efer & V.X86_EFER_LMA) != 0) != hostLong) return fail(c, "host.efer.lma");
    if (((efer & V.X86_EFER_LME) != 0) != hostLong) return fail(c, "host.efer.lme");
  }

  // ---- 27.2.3 host segment and descriptor-table registers
  if ((state.get(n, V.HOST_ES_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.es.rpl-ti");
  if ((state.get(n, V.HOST_CS_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.cs.rpl-ti");
  if ((state.get(n, V.HOST_SS_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.ss.rpl-ti");
  if ((state.get(n, V.HOST_DS_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.ds.rpl-ti");
  if ((state.get(n, V.HOST_FS_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.fs.rpl-ti");
  if ((state.get(n, V.HOST_GS_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.gs.rpl-ti");
  if ((state.get(n, V.HOST_TR_SELECTOR) & SEL_RPL_TI) != 0) return fail(c, "host.tr.rpl-ti");
  if (state.get(n, V.HOST_CS_SELECTOR) == 0) return fail(c, "host.cs.null");
  if (state.get(n, V.HOST_TR_SELECTOR) == 0) return fail(c, "host.tr.null");
  if (!hostLong && state.get(n, V.HOST_SS_SELECTOR) == 0) return fail(c, "host.ss.null");
  if (!canonical(state.get(n, V.HOST_FS_BASE))) return fail(c, "host.fs.base-canonical");
  if (!canonical(state.get(n, V.HOST_GS_BASE))) return fail(c, "host.gs.base-canonical");
  if (!canonical(state.get(n, V.HOST_GDTR_BASE))) return fail(c, "host.gdtr.base-canonical");
  if (!canonical(state.get(n, V.HOST_IDTR_BASE))) return fail(c, "host.idtr.base-canonical");
  if (!canonical(state.get(n, V.HOST_TR_BASE))) return fail(c, "host.tr.base-canonical");

  // ---- 27.2.4 address-space size: L1 is the processor doing the entry.
  const ia32eGuest = (entry & V.ENTRY_IA32E_MODE_GUEST) != 0;
  if (!l1Ia32e) {
    // Outside IA-32e mode L1 cannot enter an IA-32e-mode L2; but an L2
    // entered in legacy mode may turn IA-32e mode on itself (unrestricted
    // guest), and every VM exit then stores "IA-32e mode guest" = 1 (28.2):
    // a snapshot of that L2 holds a state the processor reached. (The
    // entry-time rule comes back at L1's next VMRESUME.)
    if (ia32eGuest && !l2Ran) return fail(c, "host.l1-legacy.ia32e-guest");
    if (hostLong) return fail(c, "host.l1-legacy.host-64");
  } else if (!hostLong) {
    return fail(c, "host.l1-ia32e.host-32");
  }
  const rip = state.get(n, V.HOST_RIP);
  if (!hostLong) {
    if (ia32eGuest && !l2Ran) return fail(c, "host.ia32e-guest-without-host-64"); // (l2Ran: as above)
    if ((cr4 & V.X86_CR4_PCIDE) != 0) return fail(c, "host.cr4.pcide-host-32");
    if ((rip >> 32) != 0) return fail(c, "host.rip.high");
  } else {
    if ((cr4 & V.X86_CR4_PAE) == 0) return fail(c, "host.cr4.pae-host-64");
    if (!canonical(rip)) return fail(c, "host.rip.canonical");
  }
  return true;
}
