// Does L1 want this exit from L2? (SDM Vol. 3C 26.1-26.2: which
// instructions and events cause VM exits, applied to vmcs12's controls and
// bitmaps.) vmcs02 exits for everything L0 needs or L1 asked for; an exit
// L1 asked for is reflected to L1, the rest L0 handles as for L1 itself.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as cpu from "../hw/cpu";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as crqual from "../vm/exit/crqual";
import * as state from "./state";
import * as ptimer from "./ptimer";
import * as shadow12 from "./shadow12";
import { Nested } from "./nested";

function proc(n: Nested): u32 {
  return <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
}
function proc2(n: Nested): u32 {
  return (proc(n) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 ? <u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) : 0;
}
function pin(n: Nested): u32 {
  return <u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL);
}

// 26.1.3 I/O instructions: unconditional I/O exiting, or the I/O bitmap bit
// of any port the access touches (a 16-bit port space wrapping at 0xFFFF
// always exits).
function ioWanted(n: Nested, q: u32): bool {
  const p = proc(n);
  if ((p & V.PROC_USE_IO_BITMAPS) == 0) return (p & V.PROC_UNCONDITIONAL_IO_EXITING) != 0;
  const port = q >> 16;
  const size = (q & 7) + 1;
  if (port + size > 0x10000) return true;
  for (let k: u32 = 0; k < size; k++) {
    const pp = port + k;
    const bitmap = pp < 0x8000 ? state.get(n, V.IO_BITMAP_A) : state.get(n, V.IO_BITMAP_B);
    const bit = pp & 0x7fff;
    if (!guestmem.isRam(bitmap + (bit >> 3), 1)) return true;
    if ((guestmem.read8(bitmap + <u64>(bit >> 3)) & (1 << (bit & 7))) != 0) return true;
  }
  return false;
}

// 26.1.3 RDMSR/WRMSR with MSR bitmaps (25.6.9): low MSRs 0-1FFFH, high
// C0000000H-C0001FFFH; any other MSR always exits.
function msrWanted(vcpu: Vcpu, write: bool): bool {
  const n = vcpu.nested;
  if ((proc(n) & V.PROC_USE_MSR_BITMAPS) == 0) return true;
  const msr = <u32>vcpu.reg(R.RCX);
  let off: u64;
  if (msr < 0x2000) off = 0;
  else if (msr >= 0xc0000000 && msr < 0xc0002000) off = 1024;
  else return true;
  if (write) off += 2048;
  const bit = msr & 0x1fff;
  const a = state.get(n, V.MSR_BITMAPS) + off + <u64>(bit >> 3);
  if (!guestmem.isRam(a, 1)) return true;
  return (guestmem.read8(a) & (1 << (bit & 7))) != 0;
}

// 26.1.3 MOV to CR3 with "CR3-load exiting": no exit when the value equals
// one of the first n CR3-target values, n the CR3-target count (25.6.7; a
// count of 0 makes every MOV to CR3 exit). The entry checks bound n by the
// count offered (27.2.1.1), and the values below it exist (caps.ts).
function cr3LoadWanted(vcpu: Vcpu, q: u32): bool {
  const n = vcpu.nested;
  if ((proc(n) & V.PROC_CR3_LOAD_EXITING) == 0) return false;
  const v = crqual.source(vcpu, q);
  const count = <u32>state.get(n, V.CR3_TARGET_COUNT);
  for (let i: u32 = 0; i < count; i++) {
    if (state.read(n, V.CR3_TARGET_VALUE0 + 2 * i) == v) return false;
  }
  return true;
}

// 26.1.3 MOV to CR0/CR4, CLTS, LMSW against L1's mask and shadow; CR3 and
// CR8 by their exiting controls.
function crWanted(vcpu: Vcpu, q: u32): bool {
  const n = vcpu.nested;
  const crn = crqual.cr(q);
  const access = crqual.access(q);
  const toCr = access == V.CR_ACCESS_MOV_TO_CR;
  if (crn == 3) return toCr ? cr3LoadWanted(vcpu, q) : (proc(n) & V.PROC_CR3_STORE_EXITING) != 0;
  if (crn == 8) return (proc(n) & (toCr ? V.PROC_CR8_LOAD_EXITING : V.PROC_CR8_STORE_EXITING)) != 0;
  const mask = state.read(n, crn == 0 ? V.CR0_GUEST_HOST_MASK : V.CR4_GUEST_HOST_MASK);
  const shadow = state.read(n, crn == 0 ? V.CR0_READ_SHADOW : V.CR4_READ_SHADOW);
  if (toCr) return ((crqual.source(vcpu, q) ^ shadow) & mask) != 0;
  if (access == V.CR_ACCESS_CLTS) return (mask & V.X86_CR0_TS) != 0 && (shadow & V.X86_CR0_TS) != 0;
  if (access == V.CR_ACCESS_LMSW) {
    // LMSW: bits 3:0; PE can be set but not cleared.
    const src = crqual.lmswSource(q) & 0xf;
    if ((mask & 1) != 0 && (shadow & 1) == 0 && (src & 1) != 0) return true;
    return ((src ^ shadow) & mask & 0xe) != 0;
  }
  return false; // MOV from CR0/CR4 never exits
}

// The exception bitmap, with the #PF error-code mask/match rule (25.6.3).
function exceptionWanted(n: Nested): bool {
  const info = <u32>vmx.vmread(V.VM_EXIT_INTERRUPTION_INFO);
  const type = (info & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
  if (type == V.INTR_TYPE_NMI) return (pin(n) & V.PIN_NMI_EXITING) != 0;
  const vector = info & 0xff;
  return exceptionBitmapWants(n, vector, vector == 14 ? <u32>vmx.vmread(V.VM_EXIT_INTERRUPTION_ERROR_CODE) : 0);
}

// Does an exception `vector` (error code `ec` for #PF) in L2 exit to L1?
export function exceptionBitmapWants(n: Nested, vector: u32, ec: u32): bool {
  const bitmap = <u32>state.get(n, V.EXCEPTION_BITMAP);
  const inBitmap = (bitmap & (1 << vector)) != 0;
  if (vector != 14) return inBitmap;
  const match = (ec & <u32>state.get(n, V.PAGE_FAULT_ERROR_CODE_MASK)) == <u32>state.get(n, V.PAGE_FAULT_ERROR_CODE_MATCH);
  return match ? inBitmap : !inBitmap;
}

export function l1Wants(vcpu: Vcpu, reason: u32): bool {
  const n = vcpu.nested;
  switch (reason) {
    case V.EXIT_REASON_EXCEPTION_NMI: return exceptionWanted(n);
    case V.EXIT_REASON_EXTERNAL_INTERRUPT: return false; // a physical interrupt: L0's
    case V.EXIT_REASON_TRIPLE_FAULT: return true;
    case V.EXIT_REASON_INIT_SIGNAL:
    case V.EXIT_REASON_SIPI: return false;
    case V.EXIT_REASON_INTERRUPT_WINDOW: return (proc(n) & V.PROC_INTERRUPT_WINDOW_EXITING) != 0;
    case V.EXIT_REASON_NMI_WINDOW: return (proc(n) & V.PROC_NMI_WINDOW_EXITING) != 0;
    case V.EXIT_REASON_TASK_SWITCH:
    case V.EXIT_REASON_CPUID:
    case V.EXIT_REASON_GETSEC:
    case V.EXIT_REASON_INVD:
    case V.EXIT_REASON_VMCALL:
    case V.EXIT_REASON_VMCLEAR:
    case V.EXIT_REASON_VMLAUNCH:
    case V.EXIT_REASON_VMPTRLD:
    case V.EXIT_REASON_VMPTRST:
    case V.EXIT_REASON_VMRESUME:
    case V.EXIT_REASON_VMXOFF:
    case V.EXIT_REASON_VMXON:
    case V.EXIT_REASON_INVEPT:
    case V.EXIT_REASON_INVVPID:
    case V.EXIT_REASON_XSETBV:
    case V.EXIT_REASON_VMFUNC: return true; // exit unconditionally (26.1.2)
    // Unconditionally too unless vmcs12 has "VMCS shadowing" (26.1.3).
    case V.EXIT_REASON_VMREAD:
    case V.EXIT_REASON_VMWRITE: return shadow12.l1Wants(vcpu, reason);
    case V.EXIT_REASON_HLT: return (proc(n) & V.PROC_HLT_EXITING) != 0;
    case V.EXIT_REASON_INVLPG: return (proc(n) & V.PROC_INVLPG_EXITING) != 0;
    case V.EXIT_REASON_RDPMC: return (proc(n) & V.PROC_RDPMC_EXITING) != 0;
    case V.EXIT_REASON_RDTSC: return (proc(n) & V.PROC_RDTSC_EXITING) != 0;
    case V.EXIT_REASON_RDTSCP: return (proc(n) & V.PROC_RDTSC_EXITING) != 0;
    case V.EXIT_REASON_CR_ACCESS: return crWanted(vcpu, <u32>vmx.vmread(V.EXIT_QUALIFICATION));
    case V.EXIT_REASON_MOV_DR: return (proc(n) & V.PROC_MOV_DR_EXITING) != 0;
    case V.EXIT_REASON_IO_INSTRUCTION: return ioWanted(n, <u32>vmx.vmread(V.EXIT_QUALIFICATION));
    case V.EXIT_REASON_RDMSR: return msrWanted(vcpu, false);
    case V.EXIT_REASON_WRMSR: return msrWanted(vcpu, true);
    case V.EXIT_REASON_MWAIT: return (proc(n) & V.PROC_MWAIT_EXITING) != 0;
    case V.EXIT_REASON_MONITOR: return (proc(n) & V.PROC_MONITOR_EXITING) != 0;
    // PAUSE: "PAUSE exiting", or a PAUSE loop L1's PLE gap and window
    // detected (26.1.3; L0 uses neither, so the exit is L1's either way).
    case V.EXIT_REASON_PAUSE: return (proc(n) & V.PROC_PAUSE_EXITING) != 0 || (proc2(n) & V.PROC2_PAUSE_LOOP_EXITING) != 0;
    case V.EXIT_REASON_GDTR_IDTR_ACCESS:
    case V.EXIT_REASON_LDTR_TR_ACCESS: return (proc2(n) & V.PROC2_DESCRIPTOR_TABLE_EXITING) != 0;
    case V.EXIT_REASON_WBINVD: return (proc2(n) & V.PROC2_WBINVD_EXITING) != 0;
    // vmcs02's timer is the nearer of L1's and L0's (l2irq.ts): L1's when
    // L1's has run out (ptimer.ts), else L0's own slice.
    case V.EXIT_REASON_PREEMPTION_TIMER: return ptimer.expired(vcpu, cpu.rdtsc());
    case V.EXIT_REASON_RDRAND: return (proc2(n) & V.PROC2_RDRAND_EXITING) != 0;
    case V.EXIT_REASON_RDSEED: return (proc2(n) & V.PROC2_RDSEED_EXITING) != 0;
    // INVPCID exits when "INVLPG exiting" and "enable INVPCID" are both 1
    // (26.1.3); with "enable INVPCID" 0 it is #UD and never exits.
    case V.EXIT_REASON_INVPCID:
      return (proc(n) & V.PROC_INVLPG_EXITING) != 0 && (proc2(n) & V.PROC2_ENABLE_INVPCID) != 0;
    // APIC virtualization in vmcs02 is vmcs12's (vmcs02.ts): these exits
    // happen because L1 enabled it (29.1.2, 29.4.2, 29.4.3.3) — except an
    // APIC access when vmcs12 does not virtualize APIC accesses: then the
    // page is L0's APIC-access page for L1's own APIC (vm/apicv.ts), which
    // an L2 without EPT reaches at L1's APIC address, and the access is L1's
    // APIC's, emulated by L0.
    case V.EXIT_REASON_APIC_ACCESS: return (proc2(n) & V.PROC2_VIRTUALIZE_APIC_ACCESSES) != 0;
    case V.EXIT_REASON_TPR_BELOW_THRESHOLD:
    case V.EXIT_REASON_VIRTUALIZED_EOI:
    case V.EXIT_REASON_APIC_WRITE: return true;
  }
  // EPT violations/misconfigurations (L1 has no EPT: its own memory, L0's
  // EPT) and the rest are L0's.
  return false;
}
