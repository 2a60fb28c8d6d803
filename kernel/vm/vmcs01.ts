// The VMCS the hypervisor runs a guest with (vmcs01 in nested terms), built
// from the capability MSRs (SDM Vol. 3C 25; Vol. 3D A). Guests start in the
// multiboot entry state: 32-bit protected mode, paging off — which VMX runs
// only as an "unrestricted guest" under EPT (25.6.2, 26.2.1.1).
import * as cpu from "../hw/cpu";
import * as mem from "../hw/mem";
import * as vmx from "../hw/vmx";
import * as pages from "../mm/pages";
import * as print from "../lib/print";
import * as caps from "../vmx/caps";
import * as ctl from "./controls";
import * as config from "./config";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import * as V from "../arch/vmx";
import * as apicv from "./apicv";
import * as lapic from "../apic/lapic";
import * as events from "./events";

// The bitmaps (allocated once): their contents do not depend on the guest
// (every port exits; the same MSRs pass through for all).
export let msrBitmap: u64 = 0; // machine-wide: the same for every guest
// The same with the x2APIC MSRs the processor virtualizes under "virtualize
// x2APIC mode" passed through (vm/apicv.ts): vmcs01's bitmap only while
// that control is 1 — without it those bits would reach the physical
// APIC. vmcs02's bitmaps start from msrBitmap (nested/vmcs02.ts).
export let msrBitmapX2: u64 = 0; // machine-wide: the same for every guest
export let ioBitmapA: u64 = 0; // machine-wide: the same for every guest
export let ioBitmapB: u64 = 0; // machine-wide: the same for every guest

// The CR0/CR4 bits the host owns (the guest reads its own view of them
// from the read shadows): VMX's fixed bits, the same for every guest.
export let cr0Mask: u64 = 0; // machine-wide: from the processor's fixed bits
export let cr4Mask: u64 = 0; // machine-wide: from the processor's fixed bits
export let vpidEnabled: bool = false; // rebuildable cache: "enable VPID" in the running guest's vmcs01 (vpid= and the processor)
export let invpcidEnabled: bool = false; // machine-wide: "enable INVPCID" where the processor allows it

export const GUEST_VPID: u32 = 1;

const host: usize = memory.data(56, 8); // machine-wide: the host state import's buffer (scratch)

// MSRs a guest reads and writes directly: the host never uses them while
// the guest is stopped (no SYSCALL, no SWAPGS in the hypervisor), and the
// ones VMX does not switch are reset between guests (guest.ts).
// (bitmap: msrBitmap, or msrBitmapX2 for the x2APIC MSRs below.)
function passThrough(msr: u32, read: bool, write: bool, bitmap: u64 = msrBitmap): void {
  let base: u64;
  let bit: u32;
  if (msr < 0x2000) {
    base = bitmap;
    bit = msr;
  } else {
    base = bitmap + 1024;
    bit = msr - 0xc0000000;
  }
  // Read bitmaps at +0 (low) / +1024 (high), write bitmaps 2048 further (25.6.9).
  if (read) {
    const a = base + <u64>(bit >> 3);
    mem.write8(a, mem.read8(a) & ~(1 << (bit & 7)));
  }
  if (write) {
    const a = base + 2048 + <u64>(bit >> 3);
    mem.write8(a, mem.read8(a) & ~(1 << (bit & 7)));
  }
}

// The pass-through MSRs that VM entry and exit do not switch (no VMCS
// field): the guest's values live in the processor, so they are carried
// when the vCPU moves (migrate.ts) and cleared between guests (guest.ts).
export const UNSWITCHED: StaticArray<u32> = [ // machine-wide: a constant list
  V.MSR_IA32_KERNEL_GS_BASE, V.MSR_IA32_STAR, V.MSR_IA32_LSTAR, V.MSR_IA32_CSTAR, V.MSR_IA32_FMASK,
  V.MSR_IA32_TSC_AUX,
];
export function isUnswitched(msr: u32): bool {
  for (let i = 0; i < UNSWITCHED.length; i++) if (unchecked(UNSWITCHED[i]) == msr) return true;
  return false;
}

// Filled once, when allocated: nothing writes them afterwards (nested/
// vmcs02.ts only reads the MSR bitmap), and a vmcs01 is also built for
// each snapshot restore (snapshot/restore.ts), where 1,536 writes of
// unchanged bitmap words cost a restore more than everything else.
function setupBitmaps(): bool {
  if (msrBitmap != 0) return true;
  msrBitmap = pages.alloc(1);
  msrBitmapX2 = pages.alloc(1);
  ioBitmapA = pages.alloc(1);
  ioBitmapB = pages.alloc(1);
  if (msrBitmap == 0 || msrBitmapX2 == 0 || ioBitmapA == 0 || ioBitmapB == 0) {
    msrBitmap = 0;
    return false;
  }
  // Every port exits (the guest's devices are all emulated or denied), and
  // every MSR exits except the pass-through set.
  for (let o: u64 = 0; o < 4096; o += 8) {
    mem.write64(ioBitmapA + o, u64.MAX_VALUE);
    mem.write64(ioBitmapB + o, u64.MAX_VALUE);
    mem.write64(msrBitmap + o, u64.MAX_VALUE);
  }
  passThrough(V.MSR_IA32_FS_BASE, true, true);
  passThrough(V.MSR_IA32_GS_BASE, true, true);
  for (let i = 0; i < UNSWITCHED.length; i++) passThrough(unchecked(UNSWITCHED[i]), true, true);
  passThrough(V.MSR_IA32_SYSENTER_CS, true, true);
  passThrough(V.MSR_IA32_SYSENTER_ESP, true, true);
  passThrough(V.MSR_IA32_SYSENTER_EIP, true, true);
  // PAT is switched by the VMCS (save/load IA32_PAT); the processor checks
  // a guest's WRMSR itself (#GP for reserved memory types).
  passThrough(V.MSR_IA32_PAT, true, true);
  passThrough(V.MSR_IA32_EFER, true, false);
  // The x2APIC variant (30.5): TPR (808H) read and written, EOI (80BH) and
  // SELF IPI (83FH) written — what "virtualize x2APIC mode" with virtual-
  // interrupt delivery virtualizes whatever the other controls; every other
  // x2APIC MSR keeps exiting to the model (apic/lapic.ts x2Read/x2Write).
  mem.copy(msrBitmapX2, msrBitmap, 4096);
  passThrough(x2apicMsr(lapic.REG_TPR), true, true, msrBitmapX2);
  passThrough(x2apicMsr(lapic.REG_EOI), false, true, msrBitmapX2);
  passThrough(x2apicMsr(lapic.REG_SELF_IPI), false, true, msrBitmapX2);
  return true;
}
// The x2APIC MSR of the register at page offset off (11.12.1.2).
function x2apicMsr(off: u32): u32 {
  return lapic.X2APIC_FIRST + (off >> 4);
}

// Host-state area (25.5, 26.2.3): this processor's tables and the
// registers the exit path expects; HOST_RSP/RIP are written by the stub.
export function writeHostState(): void {
  cpu.hoststate(host);
  vmx.vmwrite(V.HOST_CR0, cpu.readcr(0));
  vmx.vmwrite(V.HOST_CR3, load<u64>(host, 0));
  vmx.vmwrite(V.HOST_CR4, cpu.readcr(4));
  const sel = load<u64>(host, 48);
  const cs = <u32>sel & 0xffff;
  const ss = <u32>(sel >> 16) & 0xffff;
  const ds = <u32>(sel >> 32) & 0xffff;
  const tr = <u32>(sel >> 48) & 0xffff;
  vmx.vmwrite(V.HOST_CS_SELECTOR, cs);
  vmx.vmwrite(V.HOST_SS_SELECTOR, ss);
  vmx.vmwrite(V.HOST_DS_SELECTOR, ds);
  vmx.vmwrite(V.HOST_ES_SELECTOR, ds);
  vmx.vmwrite(V.HOST_FS_SELECTOR, 0);
  vmx.vmwrite(V.HOST_GS_SELECTOR, 0);
  vmx.vmwrite(V.HOST_TR_SELECTOR, tr);
  vmx.vmwrite(V.HOST_GDTR_BASE, load<u64>(host, 8));
  vmx.vmwrite(V.HOST_IDTR_BASE, load<u64>(host, 16));
  vmx.vmwrite(V.HOST_TR_BASE, load<u64>(host, 24));
  vmx.vmwrite(V.HOST_FS_BASE, load<u64>(host, 32));
  vmx.vmwrite(V.HOST_GS_BASE, load<u64>(host, 40));
  vmx.vmwrite(V.HOST_IA32_SYSENTER_CS, 0);
  vmx.vmwrite(V.HOST_IA32_SYSENTER_ESP, 0);
  vmx.vmwrite(V.HOST_IA32_SYSENTER_EIP, 0);
  vmx.vmwrite(V.HOST_IA32_EFER, cpu.rdmsr(V.MSR_IA32_EFER));
  vmx.vmwrite(V.HOST_IA32_PAT, cpu.rdmsr(V.MSR_IA32_PAT));
}

// What the multiboot entry state and the state after INIT-SIPI share: GDTR
// and IDTR base 0 limit FFFFH, RIP, RSP 0, RFLAGS 2 (only the reserved bit),
// no blocking, active, no pending debug exceptions, DEBUGCTL and EFER 0.
function entryRegisters(rip: u64): void {
  vmx.vmwrite(V.GUEST_GDTR_BASE, 0);
  vmx.vmwrite(V.GUEST_GDTR_LIMIT, 0xffff);
  vmx.vmwrite(V.GUEST_IDTR_BASE, 0);
  vmx.vmwrite(V.GUEST_IDTR_LIMIT, 0xffff);
  vmx.vmwrite(V.GUEST_RIP, rip);
  vmx.vmwrite(V.GUEST_RSP, 0);
  vmx.vmwrite(V.GUEST_RFLAGS, 0x2);
  vmx.vmwrite(V.GUEST_INTERRUPTIBILITY_STATE, 0);
  vmx.vmwrite(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  vmx.vmwrite(V.GUEST_PENDING_DEBUG_EXCEPTIONS, 0);
  vmx.vmwrite(V.GUEST_IA32_DEBUGCTL, 0);
  vmx.vmwrite(V.GUEST_IA32_EFER, 0);
}

// Flat 32-bit segments of the multiboot entry state (access rights 25.4.1).
const AR_CODE32: u32 = 0xc09b; // G, D/B, P, S, type 11 (execute/read, accessed)
const AR_DATA32: u32 = 0xc093; // G, D/B, P, S, type 3 (read/write, accessed)
const AR_TSS32_BUSY: u32 = 0x008b; // P, type 11
const AR_UNUSABLE: u32 = 0x10000;

// L0's writes of vmcs01's controls — the fields nested/vmcs02.ts
// captureVmcs01 inherits into vmcs02: pin-based, primary and secondary
// processor-based, VM-exit and VM-entry controls, EPT pointer, CR0/CR4
// guest/host masks, TSC offset — are counted, so that a nested VM entry
// reads them again only after one (nine VMREADs, ~115 ticks, otherwise).
// Every write of those fields goes through writeControl, also where the
// current VMCS may be vmcs02 (a count too many costs one re-read).
export let controlWrites: u32 = 1; // machine-wide: a change counter (a write to any vCPU's vmcs01 makes every vCPU re-read its own)
@inline export function writeControl(enc: u32, v: u64): void {
  vmx.vmwrite(enc, v);
  controlWrites++;
}

// Real mode after INIT and a start-up IPI (SDM Vol. 3A 9.1.1 Table 9-1,
// 9.4 / 11.4.4 MP initialization): CS = vector << 8 with base vector << 12,
// IP 0, every limit FFFFH; the guest runs unrestricted (26.3.1.2 allows
// real mode then). CR0 60000010H (CD, NW, ET), CR4, EFER and RFLAGS'
// flags clear, DR7 400H, IDTR/GDTR base 0 limit FFFFH, LDTR and TR usable
// as after reset.
const AR_REAL_CODE: u32 = 0x009b; // P, S, type 11 (execute/read, accessed), 16-bit
const AR_REAL_DATA: u32 = 0x0093; // P, S, type 3 (read/write, accessed), 16-bit
const AR_LDT: u32 = 0x0082; // P, type 2
export function realModeAt(vector: u32): void {
  const sf = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR;
  for (let i: u32 = 0; i < 6; i++) {
    if (i == 1) segment(vector << 8, vector << 12, 0xffff, AR_REAL_CODE, sf);
    else segment(0, 0, 0xffff, AR_REAL_DATA, i * sf);
  }
  segment(0, 0, 0xffff, AR_LDT, 6 * sf); // LDTR
  segment(0, 0, 0xffff, AR_TSS32_BUSY, 7 * sf); // TR
  const cr0: u64 = 0x60000010;
  vmx.vmwrite(V.CR0_READ_SHADOW, cr0);
  vmx.vmwrite(V.GUEST_CR0, realCr0(cr0));
  vmx.vmwrite(V.CR4_READ_SHADOW, 0);
  vmx.vmwrite(V.GUEST_CR4, realCr4(0));
  vmx.vmwrite(V.GUEST_CR3, 0);
  vmx.vmwrite(V.GUEST_DR7, 0x400);
  entryRegisters(0);
  writeControl(V.VM_ENTRY_CONTROL, vmx.vmread(V.VM_ENTRY_CONTROL) & ~(<u64>V.ENTRY_IA32E_MODE_GUEST));
  events.writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, 0);
}

export function segment(sel: u32, base: u32, limit: u32, ar: u32, sf: u32): void {
  // Guest-state fields of a segment lie at fixed distances from its selector
  // field (Appendix B: selector 0x08xx, limit 0x48xx, AR 0x48xx+0x14, base 0x68xx).
  vmx.vmwrite(V.GUEST_ES_SELECTOR + sf, sel);
  vmx.vmwrite(V.GUEST_ES_BASE + sf, base);
  vmx.vmwrite(V.GUEST_ES_LIMIT + sf, limit);
  vmx.vmwrite(V.GUEST_ES_ACCESS_RIGHTS + sf, ar);
}

// The CR0 the processor runs the guest with when the guest wants `v`:
// VMX's fixed bits applied, except PE and PG (free for an unrestricted guest).
export function realCr0(v: u64): u64 {
  const free: u64 = V.X86_CR0_PE | V.X86_CR0_PG;
  return (v | (caps.cr0Fixed0 & ~free)) & (caps.cr0Fixed1 | free);
}

export function realCr4(v: u64): u64 {
  return (v | caps.cr4Fixed0) & caps.cr4Guest();
}

// The Linux 32-bit boot protocol's entry state (kernel/guest/bzimage.ts) on
// top of create()'s: its GDT at gdtBase loaded, CS = codeSel and the data
// segments dataSel, the same flat descriptors (boot.rst "32-bit Boot
// Protocol").
export function bootGdt(gdtBase: u32, gdtLimit: u32, codeSel: u32, dataSel: u32): void {
  vmx.vmwrite(V.GUEST_GDTR_BASE, gdtBase);
  vmx.vmwrite(V.GUEST_GDTR_LIMIT, gdtLimit);
  const sf = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR;
  for (let i: u32 = 0; i < 6; i++) vmx.vmwrite(V.GUEST_ES_SELECTOR + i * sf, i == 1 ? codeSel : dataSel);
}

// Build and load a fresh VMCS for a guest entering at eip with EAX/EBX set
// by the caller. eptp is its EPT pointer. Returns false (after printing
// why) when the processor cannot run it.
// PAUSE-loop exiting's gap and window (TSC ticks), for vcpus=N guests.
const PLE_GAP_TICKS: u64 = 128;
const PLE_WINDOW_TICKS: u64 = 4096;

export function create(vcpu: Vcpu, eptp: u64, eip: u32, wantVpid: bool): bool {
  if (!setupBitmaps()) {
    print.say("out of memory for the VMX bitmaps");
    return false;
  }
  if (vcpu.vmcs == 0) {
    const v = pages.alloc(1, caps.physAddr32() ? 0x100000000 : 0);
    if (v == 0) {
      print.say("out of memory for the VMCS");
      return false;
    }
    vcpu.setVmcs(v);
  }
  // 24.11.3: a VMCS is launched only after VMCLEAR sets it clear.
  mem.zero(vcpu.vmcs, 4096);
  mem.write32(vcpu.vmcs, caps.vmcsRevision);
  if (vmx.vmclear(vcpu.vmcs) != vmx.VMX_SUCCEED || vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) {
    print.say("VMCLEAR/VMPTRLD of the guest's VMCS failed");
    return false;
  }
  vcpu.setLaunched(false);

  const pinReq = V.PIN_EXTERNAL_INTERRUPT_EXITING | V.PIN_NMI_EXITING;
  const pin = ctl.adjust(caps.pin, ctl.KIND_PIN, pinReq, V.PIN_VIRTUAL_NMIS);
  // TSC offsetting: the guest's WRMSR of IA32_TSC / IA32_TSC_ADJUST moves
  // its TSC (tsc.ts); the offset starts at 0.
  // The guest's TPR: its CR8 accesses exit to the software APIC, or, with
  // APIC virtualization (apicv.ts), go to VTPR in the virtual-APIC page.
  const av = vcpu.vm.apicv;
  const procReq = V.PROC_HLT_EXITING | V.PROC_USE_IO_BITMAPS | V.PROC_USE_MSR_BITMAPS | V.PROC_ACTIVATE_SECONDARY_CONTROLS |
    (av ? V.PROC_USE_TPR_SHADOW : V.PROC_CR8_LOAD_EXITING | V.PROC_CR8_STORE_EXITING) | V.PROC_USE_TSC_OFFSETTING;
  const proc = ctl.adjust(caps.proc, ctl.KIND_PROC, procReq,
    V.PROC_MWAIT_EXITING | V.PROC_MONITOR_EXITING | V.PROC_RDPMC_EXITING);
  // VPID only where INVVPID can flush one (single- or all-context): the
  // hypervisor must be able to drop a guest's cached translations.
  const invvpid = (caps.eptVpidCap & V.EPT_VPID_CAP_INVVPID) != 0 &&
    (caps.eptVpidCap & (V.EPT_VPID_CAP_INVVPID_SINGLE_CONTEXT | V.EPT_VPID_CAP_INVVPID_ALL_CONTEXT)) != 0;
  // INVPCID where the processor can enable it: without "INVLPG exiting" it
  // then runs natively (SDM Vol. 3C 26.1.3), and CPUID offers it (cpuid.ts).
  // PAUSE-loop exiting for a guest whose vCPUs share the processor
  // (sched.ts handlePause): a vCPU that spins waits for one that does not
  // run, and gives the processor up instead of spinning out its slice.
  const shared = vcpu.vm.vcpuCount > 1;
  const p2opt = V.PROC2_ENABLE_RDTSCP | V.PROC2_WBINVD_EXITING | V.PROC2_ENABLE_INVPCID |
    (wantVpid && invvpid ? V.PROC2_ENABLE_VPID : 0) | (shared ? V.PROC2_PAUSE_LOOP_EXITING : 0);
  const proc2Req = V.PROC2_ENABLE_EPT | V.PROC2_UNRESTRICTED_GUEST | (av ? apicv.PROC2 : 0);
  const proc2 = ctl.adjust(caps.proc2, ctl.KIND_PROC2, proc2Req, p2opt);
  // Debug controls saved on exit and loaded on entry (DR7, IA32_DEBUGCTL,
  // 28.3.1, 27.3.2.1): the guest's own, kept in the VMCS while the
  // hypervisor runs with DR7 = 400H and DEBUGCTL = 0 (28.5.1).
  const exitReq = V.EXIT_SAVE_DEBUG_CONTROLS | V.EXIT_HOST_ADDRESS_SPACE_SIZE | V.EXIT_SAVE_IA32_EFER | V.EXIT_LOAD_IA32_EFER |
    V.EXIT_SAVE_IA32_PAT | V.EXIT_LOAD_IA32_PAT | V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT;
  const exitc = ctl.adjust(caps.exit, ctl.KIND_EXIT, exitReq, 0);
  // IA-32e mode guest starts 0; the processor keeps it equal to EFER.LMA on
  // every VM exit (27.2), so guests that enter long mode need nothing more.
  const entryReq = V.ENTRY_LOAD_DEBUG_CONTROLS | V.ENTRY_LOAD_IA32_EFER | V.ENTRY_LOAD_IA32_PAT;
  const entry = ctl.adjust(caps.entry, ctl.KIND_ENTRY, entryReq, 0) & ~V.ENTRY_IA32E_MODE_GUEST;
  if (!ctl.has(pin, pinReq) || !ctl.has(proc, procReq) || !ctl.has(proc2, proc2Req) || !ctl.has(exitc, exitReq) ||
    !ctl.has(entry, entryReq)) return false;
  vpidEnabled = (proc2 & V.PROC2_ENABLE_VPID) != 0;
  invpcidEnabled = (proc2 & V.PROC2_ENABLE_INVPCID) != 0;

  writeControl(V.PIN_BASED_VM_EXEC_CONTROL, pin);
  writeControl(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, proc);
  writeControl(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, proc2);
  writeControl(V.VM_EXIT_CONTROL, exitc);
  writeControl(V.VM_ENTRY_CONTROL, entry);
  vmx.vmwrite(V.EXCEPTION_BITMAP, 0);
  vmx.vmwrite(V.PAGE_FAULT_ERROR_CODE_MASK, 0);
  vmx.vmwrite(V.PAGE_FAULT_ERROR_CODE_MATCH, 0);
  vmx.vmwrite(V.CR3_TARGET_COUNT, 0);
  vmx.vmwrite(V.VM_EXIT_MSR_STORE_COUNT, 0);
  vmx.vmwrite(V.VM_EXIT_MSR_LOAD_COUNT, 0);
  vmx.vmwrite(V.VM_ENTRY_MSR_LOAD_COUNT, 0);
  events.writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, 0);
  vmx.vmwrite(V.IO_BITMAP_A, ioBitmapA);
  vmx.vmwrite(V.IO_BITMAP_B, ioBitmapB);
  vmx.vmwrite(V.MSR_BITMAPS, msrBitmap);
  writeControl(V.TSC_OFFSET, 0);
  writeControl(V.EPT_POINTER, eptp);
  if (vpidEnabled) vmx.vmwrite(V.VIRTUAL_PROCESSOR_ID, GUEST_VPID);
  if ((proc2 & V.PROC2_PAUSE_LOOP_EXITING) != 0) {
    // SDM Vol. 3C 25.6.13, 26.1.3: a PAUSE at CPL 0 exits when the PAUSEs
    // before it, each at most PLE_Gap TSC ticks after the previous one,
    // began more than PLE_Window ticks ago. On Bochs (one tick an
    // instruction) a spin loop's PAUSEs are a few ticks apart; a window of
    // 4096 ticks is some hundreds of iterations.
    vmx.vmwrite(V.PLE_GAP, PLE_GAP_TICKS);
    vmx.vmwrite(V.PLE_WINDOW, PLE_WINDOW_TICKS);
  }
  vmx.vmwrite(V.VMCS_LINK_POINTER, u64.MAX_VALUE);

  // CR0/CR4: the host owns the bits VMX fixes (except PE and PG, which an
  // unrestricted guest controls) and CR4.VMXE; the guest reads its own
  // view of them from the read shadows (25.6.6).
  const lo32: u64 = 0xffffffff;
  cr0Mask = (caps.cr0Fixed0 | (~caps.cr0Fixed1 & lo32)) & ~(<u64>(V.X86_CR0_PE | V.X86_CR0_PG)) & lo32;
  cr4Mask = (caps.cr4Fixed0 | ~caps.cr4Guest()) & lo32;
  const cr0Shadow: u64 = V.X86_CR0_PE | V.X86_CR0_ET;
  writeControl(V.CR0_GUEST_HOST_MASK, cr0Mask);
  writeControl(V.CR4_GUEST_HOST_MASK, cr4Mask);
  vmx.vmwrite(V.CR0_READ_SHADOW, cr0Shadow);
  vmx.vmwrite(V.CR4_READ_SHADOW, 0);
  vmx.vmwrite(V.GUEST_CR0, realCr0(cr0Shadow));
  vmx.vmwrite(V.GUEST_CR3, 0);
  vmx.vmwrite(V.GUEST_CR4, realCr4(0));
  vmx.vmwrite(V.GUEST_DR7, 0x400);

  const sf = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR; // distance between two segments
  segment(0x10, 0, 0xffffffff, AR_DATA32, 0); // ES
  segment(0x08, 0, 0xffffffff, AR_CODE32, sf); // CS
  segment(0x10, 0, 0xffffffff, AR_DATA32, 2 * sf); // SS
  segment(0x10, 0, 0xffffffff, AR_DATA32, 3 * sf); // DS
  segment(0x10, 0, 0xffffffff, AR_DATA32, 4 * sf); // FS
  segment(0x10, 0, 0xffffffff, AR_DATA32, 5 * sf); // GS
  segment(0, 0, 0, AR_UNUSABLE, 6 * sf); // LDTR
  segment(0, 0, 0x67, AR_TSS32_BUSY, 7 * sf); // TR
  entryRegisters(eip);
  vmx.vmwrite(V.GUEST_IA32_PAT, 0x0007040600070406); // the power-up PAT (SDM Vol. 3A 11.12.4)
  vmx.vmwrite(V.GUEST_IA32_SYSENTER_CS, 0);
  vmx.vmwrite(V.GUEST_IA32_SYSENTER_ESP, 0);
  vmx.vmwrite(V.GUEST_IA32_SYSENTER_EIP, 0);

  writeHostState();
  if (av && !apicv.startVcpu(vcpu)) return false;
  // Interrupt delivery starts with the VMCS (the preemption timer, the
  // guest's max-ticks= budget).
  vcpu.irq.start(config.maxTicks[vcpu.vm.guest]);
  return true;
}
