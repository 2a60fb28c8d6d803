// Snapshot validation of the vCPU's local APIC, timers, extended state and
// pending events (validate.ts calls these after the framing passed). Each
// rule keeps restore from loading a value the hardware or the emulation
// could not hold: a fault in the hypervisor (FXRSTOR/XRSTOR/WRMSR #GP, a
// VMfailValid of its own VM entry), or a state no guest could reach.
import * as V from "../arch/vmx";
import * as lapic from "../apic/lapic";
import { Reader } from "./blob";
import * as R from "./rules";
import { Verdict } from "./rules";
import { Limits } from "./limits";
import { sectionOffset, sectionSize, vmcs01Value, field12 } from "./find";

const ALL_ONES: u64 = u64.MAX_VALUE;
const APIC_EN: u64 = 1 << 11; // IA32_APIC_BASE global enable
const APIC_BSP: u64 = 1 << 8;
const APIC_EXTD: u64 = 1 << 10;
const ESR_BITS: u32 = lapic.ESR_SEND_ILLEGAL | lapic.ESR_RECV_ILLEGAL | lapic.ESR_ILLEGAL_REG;
const APIC_PAGE_BYTES: u32 = 0x400; // registers 000H-3F0H

// The bits register `reg` of the software APIC can hold (apic/lapic.ts
// write() and its power-up state): 0 for reserved offsets. DFR, the
// version, PPR and the current count are handled by the caller. In x2APIC
// mode the ICR's destination is bits 63:32, all 32 (11.12.9).
function apicMask(reg: u32, x2apic: bool): u32 {
  if (reg >= lapic.REG_LVT_TIMER && reg <= lapic.REG_LVT_ERROR) return lapic.lvtWritableMask((reg - lapic.REG_LVT_TIMER) >> 4);
  // ISR, TMR, IRR: vectors 16-255 (0-15 are never accepted, 11.5.3).
  if ((reg >= lapic.REG_ISR && reg < lapic.REG_ISR + 0x80) || (reg >= lapic.REG_TMR && reg < lapic.REG_TMR + 0x80) ||
    (reg >= lapic.REG_IRR && reg < lapic.REG_IRR + 0x80)) {
    return (reg & 0x70) == 0 ? 0xffff0000 : 0xffffffff;
  }
  switch (reg) {
    case lapic.REG_ID: return 0xff000000;
    case lapic.REG_TPR: return 0xff;
    case lapic.REG_LDR: return 0xff000000;
    case lapic.REG_SVR: return 0x3ff;
    case lapic.REG_ESR: return ESR_BITS;
    case lapic.REG_ICR_LO: return 0x000ccfff;
    case lapic.REG_ICR_HI: return x2apic ? 0xffffffff : 0xff000000;
    case lapic.REG_TIMER_INITIAL: return 0xffffffff;
    case lapic.REG_TIMER_DCR: return 0xb;
  }
  return 0;
}

// What register reg holds after RESET or a global disable (11.4.7.1), for
// the APIC of vCPU `vcpu` (its APIC ID).
function apicPowerUp(reg: u32, vcpu: u32): u32 {
  if (reg >= lapic.REG_LVT_TIMER && reg <= lapic.REG_LVT_ERROR) return lapic.LVT_MASK;
  switch (reg) {
    case lapic.REG_ID: return (vcpu & 0xff) << 24;
    case lapic.REG_VERSION: return lapic.VERSION;
    case lapic.REG_DFR: return 0xffffffff;
    case lapic.REG_SVR: return 0xff;
  }
  return 0;
}

// IA32_APIC_BASE as apicBaseWrite() accepts it; every register within the
// bits it can hold, the version this model's; a software-disabled APIC has
// every LVT entry masked (11.4.7.2), a globally disabled one is in its
// power-up state (lapic.ts resets it when EN is cleared).
export function apic(r: Reader, lim: Limits, v: Verdict): u32 {
  const sec = V.SNAP_SEC_APIC;
  const off = sectionOffset(r, sec);
  const base = r.u64(off + V.SNAP_APIC_BASE);
  // x2APIC mode (EXTD) only with EN: EN=0/EXTD=1 is the invalid state
  // (11.12.5) that apicBaseWrite never makes.
  if ((base & ~(APIC_BSP | APIC_EN | APIC_EXTD)) != lapic.BASE_ADDRESS || (base & (APIC_EN | APIC_EXTD)) == APIC_EXTD)
    return v.fail(R.APIC_BASE, sec, V.SNAP_APIC_BASE, base);
  const x2apic = (base & APIC_EXTD) != 0;
  const pending = r.u32(off + V.SNAP_APIC_ESR_PENDING);
  if ((pending & ~ESR_BITS) != 0) return v.fail(R.APIC_RESERVED, sec, V.SNAP_APIC_ESR_PENDING, pending);
  if (!r.zero(off + V.SNAP_APIC_RESERVED, V.SNAP_APIC_PAGE - V.SNAP_APIC_RESERVED))
    return v.fail(R.APIC_RESERVED, sec, V.SNAP_APIC_RESERVED, 0);
  const page = off + V.SNAP_APIC_PAGE;
  // (framing() checked that the section, the page included, is in the blob:
  // one check here, then plain loads.)
  if (!r.has(page, APIC_PAGE_BYTES)) return v.fail(R.BLOB_TRUNCATED, sec, -1, page);
  const at = r.at(page);
  for (let reg: u32 = 0; reg < APIC_PAGE_BYTES; reg += 16) {
    // Registers are 32 bits at 16-byte-aligned offsets (11.4.1).
    if ((<u64>load<u32>(at + reg + 4) | load<u64>(at + reg + 8)) != 0) return v.fail(R.APIC_RESERVED, sec, reg, r.u64(page + reg + 8));
    const x = load<u32>(at + reg);
    if (reg == lapic.REG_VERSION) {
      if (x != lapic.VERSION) return v.fail(R.APIC_VERSION, sec, reg, x);
    } else if (reg == lapic.REG_DFR) {
      if ((x & 0x0fffffff) != 0x0fffffff) return v.fail(R.APIC_RESERVED, sec, reg, x);
    } else if (reg != lapic.REG_PPR && reg != lapic.REG_TIMER_CURRENT) {
      // PPR and the current count are computed (from TPR/ISR and the
      // timer deadline): written for readers, not loaded.
      if ((x & ~apicMask(reg, x2apic)) != 0) return v.fail(R.APIC_RESERVED, sec, reg, x);
    }
  }
  const svr = r.u32(page + lapic.REG_SVR);
  if ((svr & lapic.SVR_ENABLE) == 0) {
    for (let reg = lapic.REG_LVT_TIMER; reg <= lapic.REG_LVT_ERROR; reg += 16) {
      const x = r.u32(page + reg);
      if ((x & lapic.LVT_MASK) == 0) return v.fail(R.APIC_STATE, sec, reg, x);
    }
  }
  if ((base & APIC_EN) == 0) {
    if (pending != 0) return v.fail(R.APIC_STATE, sec, V.SNAP_APIC_ESR_PENDING, pending);
    for (let reg: u32 = 0; reg < APIC_PAGE_BYTES; reg += 16) {
      const x = r.u32(page + reg);
      if (reg != lapic.REG_PPR && reg != lapic.REG_TIMER_CURRENT && x != apicPowerUp(reg, lim.vcpu))
        return v.fail(R.APIC_STATE, sec, reg, x);
    }
  }
  return R.OK;
}

// The APIC timer counts only with a non-zero initial count (lapic/timer.ts:
// writing 0 stops it).
export function timers(r: Reader, v: Verdict): u32 {
  const sec = V.SNAP_SEC_TIMERS;
  const off = sectionOffset(r, sec);
  if (!r.zero(off + V.SNAP_TIMERS_RESERVED, V.SNAP_TIMERS_BYTES - V.SNAP_TIMERS_RESERVED))
    return v.fail(R.TIMERS_RESERVED, sec, V.SNAP_TIMERS_RESERVED, 0);
  const deadline = r.u64(off + V.SNAP_TIMERS_APIC_DEADLINE);
  const count = r.u32(sectionOffset(r, V.SNAP_SEC_APIC) + V.SNAP_APIC_PAGE + lapic.REG_TIMER_INITIAL);
  if (deadline != ALL_ONES && count == 0) return v.fail(R.TIMERS_APIC, sec, V.SNAP_TIMERS_APIC_DEADLINE, deadline);
  return R.OK;
}

// DR0-DR3 take any value (they hold linear addresses, compared only while
// DR7 enables them); DR6 bits 63:32 are reserved: MOV to DR6 with one of
// them set is #GP(0) (SDM Vol. 2B MOV-Move to/from Debug Registers), a
// fault in the hypervisor. DR6's bits that always read as 1 (17.2.3) are
// not checked: the processor sets them whatever is written.
export function debug(r: Reader, v: Verdict): u32 {
  const sec = V.SNAP_SEC_DEBUG;
  const off = sectionOffset(r, sec);
  if (!r.zero(off + V.SNAP_DEBUG_RESERVED, V.SNAP_DEBUG_BYTES - V.SNAP_DEBUG_RESERVED))
    return v.fail(R.DEBUG_RESERVED, sec, V.SNAP_DEBUG_RESERVED, 0);
  const dr6 = r.u64(off + V.SNAP_DEBUG_DR6);
  if ((dr6 >> 32) != 0) return v.fail(R.DEBUG_DR6, sec, V.SNAP_DEBUG_DR6, dr6);
  return R.OK;
}

// XCR0 as XSETBV accepts it (exit/misc.ts handleXsetbv, SDM Vol. 2C
// XSETBV): x87 set, only offered components, AVX with SSE, the three
// AVX-512 components together and with AVX.
export function xcr0Ok(x: u64, offered: u64): bool {
  if ((x & 1) == 0 || (x & ~offered) != 0) return false;
  if ((x & 4) != 0 && (x & 2) == 0) return false;
  const avx512 = x & 0xe0;
  return avx512 == 0 || (avx512 == 0xe0 && (x & 4) != 0);
}

// The area XRSTOR loads in the standard format (SDM Vol. 1 13.8.1): #GP for
// XSTATE_BV bits the hypervisor's XCR0 (every offered component) lacks,
// for XCOMP_BV (compacted form) or the rest of the header not zero, and
// for MXCSR reserved bits (loaded with SSE or AVX).
export function xstate(r: Reader, lim: Limits, v: Verdict): u32 {
  const sec = V.SNAP_SEC_XSTATE;
  const off = sectionOffset(r, sec);
  if (off == u64.MAX_VALUE) return R.OK; // framing() decided it may be absent
  const area = r.u32(off + V.SNAP_XSTATE_AREA_BYTES);
  if (area != lim.xsaveBytes || area < 576 || sectionSize(r, sec) != <u64>V.SNAP_XSTATE_BYTES + <u64>area)
    return v.fail(R.XSTATE_SIZE, sec, V.SNAP_XSTATE_AREA_BYTES, area);
  if (!r.zero(off + V.SNAP_XSTATE_RESERVED, V.SNAP_XSTATE_AREA - V.SNAP_XSTATE_RESERVED))
    return v.fail(R.XSTATE_RESERVED, sec, V.SNAP_XSTATE_RESERVED, 0);
  const xcr0 = r.u64(off + V.SNAP_XSTATE_XCR0);
  if (!xcr0Ok(xcr0, lim.xcr0Offered)) return v.fail(R.XSTATE_XCR0, sec, V.SNAP_XSTATE_XCR0, xcr0);
  const a = off + V.SNAP_XSTATE_AREA;
  const bv = r.u64(a + 512);
  if ((bv & ~lim.xcr0Offered) != 0) return v.fail(R.XSTATE_HEADER, sec, V.SNAP_XSTATE_AREA + 512, bv);
  if (!r.zero(a + 520, 56)) return v.fail(R.XSTATE_HEADER, sec, V.SNAP_XSTATE_AREA + 520, r.u64(a + 520));
  const mxcsr = r.u32(a + 24);
  if ((mxcsr & ~lim.mxcsrMask) != 0) return v.fail(R.XSTATE_MXCSR, sec, V.SNAP_XSTATE_AREA + 24, mxcsr);
  return R.OK;
}

// Exceptions that deliver an error code (SDM Vol. 3A Table 6-1): #DF 8,
// #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21.
const EXC_WITH_ERROR_CODE: u32 = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) |
  (1 << 17) | (1 << 21);
const INTR_INFO_DEFINED: u32 = V.INTR_INFO_VECTOR_MASK | V.INTR_INFO_TYPE_MASK | V.INTR_INFO_DELIVER_ERROR_CODE |
  V.INTR_INFO_VALID;

// An injection the processor's VM entry accepts (SDM 27.2.1.3, the checks
// nested/entry-checks-controls.ts makes on vmcs12, here on the values of a
// VMCS the hypervisor itself enters): `realMode` = unrestricted guest with
// CR0.PE clear (no error codes then).
export function injectionOk(info: u32, error: u32, length: u32, realMode: bool, lim: Limits): bool {
  if ((info & V.INTR_INFO_VALID) == 0) return true;
  if ((info & ~INTR_INFO_DEFINED) != 0) return false;
  const type = (info & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
  const vector = (info & V.INTR_INFO_VECTOR_MASK) >> V.INTR_INFO_VECTOR_SHIFT;
  if (type == 1 || (type == V.INTR_TYPE_OTHER_EVENT && (!lim.mtf || vector != 0))) return false;
  if (type == V.INTR_TYPE_NMI && vector != 2) return false;
  const hw = type == V.INTR_TYPE_HARDWARE_EXCEPTION;
  if (hw && vector > 31) return false;
  const ec = (info & V.INTR_INFO_DELIVER_ERROR_CODE) != 0;
  if (ec && (!hw || realMode)) return false;
  if (hw && !realMode && !lim.anyErrorCode) {
    const pushes = (EXC_WITH_ERROR_CODE & (1 << vector)) != 0;
    if (pushes != ec) return false;
  }
  if (ec && (error >> 16) != 0) return false;
  if (type == V.INTR_TYPE_SOFTWARE_INTERRUPT || type == V.INTR_TYPE_PRIVILEGED_SOFTWARE_EXCEPTION ||
    type == V.INTR_TYPE_SOFTWARE_EXCEPTION) {
    if (length > 15 || (length == 0 && !lim.zeroLengthInjection)) return false;
  }
  return true;
}

// The events the next VM entries inject: vmcs01's for L1 (every guest is
// unrestricted: L1's CR0.PE decides error codes), vmcs02's for L2 only in
// GUEST_MODE (L2's CR0 is vmcs12's guest CR0; PE can be clear only with
// vmcs12's "unrestricted guest"). With RUN_PENDING vmcs02's event is the
// one L1 asked vmcs12 to inject (the nested entry merged it), unchanged.
export function events(r: Reader, lim: Limits, v: Verdict): u32 {
  const sec = V.SNAP_SEC_EVENTS;
  const off = sectionOffset(r, sec);
  if (r.u32(off + V.SNAP_EVENTS_L2_RESERVED) != 0) return v.fail(R.EVENTS_RESERVED, sec, -1, 0);
  const nmi = r.u32(off + V.SNAP_EVENTS_NMI_PENDING);
  if (nmi > 1) return v.fail(R.EVENTS_NMI_PENDING, sec, V.SNAP_EVENTS_NMI_PENDING, nmi);
  const info1 = r.u32(off + V.SNAP_EVENTS_L1_INFO);
  const cr0 = vmcs01Value(r, V.GUEST_CR0);
  if (!injectionOk(info1, r.u32(off + V.SNAP_EVENTS_L1_ERROR), r.u32(off + V.SNAP_EVENTS_L1_LENGTH), (cr0 & V.X86_CR0_PE) == 0, lim))
    return v.fail(R.EVENTS_L1, sec, V.SNAP_EVENTS_L1_INFO, info1);
  const nested = sectionOffset(r, V.SNAP_SEC_NESTED);
  const flags = nested == u64.MAX_VALUE ? 0 : r.u32(nested + V.SNAP_NESTED_FLAGS);
  const info2 = r.u32(off + V.SNAP_EVENTS_L2_INFO);
  const err2 = r.u32(off + V.SNAP_EVENTS_L2_ERROR);
  const len2 = r.u32(off + V.SNAP_EVENTS_L2_LENGTH);
  if ((flags & V.SNAP_FLAG_GUEST_MODE) == 0) {
    if ((info2 & V.INTR_INFO_VALID) != 0) return v.fail(R.EVENTS_L2_OUTSIDE_L2, sec, V.SNAP_EVENTS_L2_INFO, info2);
    return R.OK;
  }
  // GUEST_MODE: validate-nested.ts has checked that the VMCS12 section is there.
  const page = sectionOffset(r, V.SNAP_SEC_VMCS12);
  const proc = <u32>field12(r, page, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  const proc2 = (proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 ? <u32>field12(r, page, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) : 0;
  const realMode = (proc2 & V.PROC2_UNRESTRICTED_GUEST) != 0 && (field12(r, page, V.GUEST_CR0) & V.X86_CR0_PE) == 0;
  if (!injectionOk(info2, err2, len2, realMode, lim)) return v.fail(R.EVENTS_L2, sec, V.SNAP_EVENTS_L2_INFO, info2);
  if ((flags & V.SNAP_FLAG_RUN_PENDING) != 0) {
    const info12 = <u32>field12(r, page, V.VM_ENTRY_INTERRUPTION_INFO);
    if ((info12 & V.INTR_INFO_VALID) != 0) {
      const type = (info12 & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
      const same = info2 == info12 &&
        ((info12 & V.INTR_INFO_DELIVER_ERROR_CODE) == 0 || err2 == <u32>field12(r, page, V.VM_ENTRY_EXCEPTION_ERROR_CODE)) &&
        (type < V.INTR_TYPE_SOFTWARE_INTERRUPT || type > V.INTR_TYPE_SOFTWARE_EXCEPTION ||
          len2 == <u32>field12(r, page, V.VM_ENTRY_INSTRUCTION_LENGTH));
      if (!same) return v.fail(R.EVENTS_RUN_PENDING, sec, V.SNAP_EVENTS_L2_INFO, info2);
    }
  }
  return R.OK;
}
