// L1's state after a VM exit from L2: vmcs12's host-state area loaded as
// the processor would (SDM Vol. 3C 28.5 "Loading Host State"), written
// into vmcs01's guest-state area (vmcs01 current).
//
// Nearly all of it is a function of vmcs12's host-state fields and exit
// controls alone, so it is computed into a staged list once and written
// with one bulk import at every exit; it is recomputed only when one of
// those fields changed (state.hostStale, set by every change of a
// host-state field or of the exit controls, and by VMPTRLD). The parts
// that depend on L1's state at the exit (EFER without "load IA32_EFER",
// vmcs01's own entry controls) are computed at each exit.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as vmcs01 from "../vm/vmcs01";
import * as state from "./state";

// The staged fields: encoding list (fieldlist.ts format) and values.
const MAX: i32 = 64;
const entries = new StaticArray<u32>(MAX);
const values: usize = memory.data(4096, 8); // readfields/writefields want a 4-KiB area
let count: i32 = 0;

function put(enc: u32, v: u64): void {
  unchecked(entries[count] = enc | (<u32>(count * 8) << 16));
  store<u64>(values + <usize>(count * 8), v);
  count++;
}

// Access rights of a segment loaded from the host-state area (28.5.2).
const AR_UNUSABLE: u32 = 0x10000;
const AR_DATA: u32 = 0xc093; // type 3 (read/write, accessed), S, DPL 0, P, D/B, G
const STRIDE: u32 = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR; // between two segments' fields

// ES, SS, DS, FS, GS: usable iff the selector is not null, except SS in
// 64-bit mode, which is usable even when null (28.5.2).
function dataSegment(seg: u32, sel: u64, base: u64, alwaysUsable: bool): void {
  const sf = seg * STRIDE;
  put(V.GUEST_ES_SELECTOR + sf, sel);
  put(V.GUEST_ES_BASE + sf, base);
  put(V.GUEST_ES_LIMIT + sf, 0xffffffff);
  put(V.GUEST_ES_ACCESS_RIGHTS + sf, (sel & 0xfff8) != 0 || alwaysUsable ? AR_DATA : AR_UNUSABLE | AR_DATA);
}

function stage(): void {
  count = 0;
  const exit12 = <u32>state.read(V.VM_EXIT_CONTROL);
  const longMode = (exit12 & V.EXIT_HOST_ADDRESS_SPACE_SIZE) != 0;
  // 28.5.1: control registers (L1 sees its CR0/CR4 through the read
  // shadows; the processor runs with VMX's fixed bits), debug registers,
  // MSRs.
  const cr0 = state.read(V.HOST_CR0);
  const cr4 = state.read(V.HOST_CR4);
  put(V.CR0_READ_SHADOW, cr0);
  put(V.GUEST_CR0, vmcs01.realCr0(cr0));
  put(V.CR4_READ_SHADOW, cr4);
  put(V.GUEST_CR4, vmcs01.realCr4(cr4));
  put(V.GUEST_CR3, state.read(V.HOST_CR3));
  put(V.GUEST_DR7, 0x400);
  put(V.GUEST_IA32_DEBUGCTL, 0);
  put(V.GUEST_IA32_SYSENTER_CS, state.read(V.HOST_IA32_SYSENTER_CS));
  put(V.GUEST_IA32_SYSENTER_ESP, state.read(V.HOST_IA32_SYSENTER_ESP));
  put(V.GUEST_IA32_SYSENTER_EIP, state.read(V.HOST_IA32_SYSENTER_EIP));
  if ((exit12 & V.EXIT_LOAD_IA32_PAT) != 0) put(V.GUEST_IA32_PAT, state.read(V.HOST_IA32_PAT));
  // 28.5.2: CS is code, execute/read accessed, L = host address-space
  // size, D = !L; the data segments as above; LDTR unusable; TR busy TSS.
  put(V.GUEST_CS_SELECTOR, state.read(V.HOST_CS_SELECTOR));
  put(V.GUEST_CS_BASE, 0);
  put(V.GUEST_CS_LIMIT, 0xffffffff);
  put(V.GUEST_CS_ACCESS_RIGHTS, longMode ? 0xa09b : 0xc09b);
  dataSegment(0, state.read(V.HOST_ES_SELECTOR), 0, false);
  dataSegment(2, state.read(V.HOST_SS_SELECTOR), 0, longMode);
  dataSegment(3, state.read(V.HOST_DS_SELECTOR), 0, false);
  dataSegment(4, state.read(V.HOST_FS_SELECTOR), state.read(V.HOST_FS_BASE), false);
  dataSegment(5, state.read(V.HOST_GS_SELECTOR), state.read(V.HOST_GS_BASE), false);
  put(V.GUEST_LDTR_SELECTOR, 0);
  put(V.GUEST_LDTR_ACCESS_RIGHTS, AR_UNUSABLE);
  put(V.GUEST_TR_SELECTOR, state.read(V.HOST_TR_SELECTOR));
  put(V.GUEST_TR_BASE, state.read(V.HOST_TR_BASE));
  put(V.GUEST_TR_LIMIT, 0x67);
  put(V.GUEST_TR_ACCESS_RIGHTS, 0x8b);
  put(V.GUEST_GDTR_BASE, state.read(V.HOST_GDTR_BASE));
  put(V.GUEST_GDTR_LIMIT, 0xffff);
  put(V.GUEST_IDTR_BASE, state.read(V.HOST_IDTR_BASE));
  put(V.GUEST_IDTR_LIMIT, 0xffff);
  // 28.5.3: RIP and RSP from the host-state area, RFLAGS = 2; no blocking,
  // active, no pending debug exceptions, no event to inject.
  put(V.GUEST_RIP, state.read(V.HOST_RIP));
  put(V.GUEST_RSP, state.read(V.HOST_RSP));
  put(V.GUEST_RFLAGS, 0x2);
  put(V.GUEST_INTERRUPTIBILITY_STATE, 0);
  put(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  put(V.GUEST_PENDING_DEBUG_EXCEPTIONS, 0);
  put(V.VM_ENTRY_INTERRUPTION_INFO, 0);
}

export let stagings: u64 = 0; // how often the staged list was recomputed
export function resetCounts(): void {
  stagings = 0;
}

export function load(): void {
  if (state.hostStale) {
    stage();
    state.setHostStale(false);
    stagings++;
  }
  vmx.writefields(changetype<usize>(entries), <u32>count, values, count == 64 ? u64.MAX_VALUE : (<u64>1 << <u64>count) - 1);
  // EFER (28.5.1): the host's with "load IA32_EFER", else L1's with LME
  // and LMA set to the host address-space size.
  const exit12 = <u32>state.read(V.VM_EXIT_CONTROL);
  const longMode = (exit12 & V.EXIT_HOST_ADDRESS_SPACE_SIZE) != 0;
  let efer: u64;
  if ((exit12 & V.EXIT_LOAD_IA32_EFER) != 0) efer = state.read(V.HOST_IA32_EFER);
  else {
    efer = vmx.vmread(V.GUEST_IA32_EFER);
    efer = longMode ? efer | V.X86_EFER_LME | V.X86_EFER_LMA : efer & ~<u64>(V.X86_EFER_LME | V.X86_EFER_LMA);
  }
  vmx.vmwrite(V.GUEST_IA32_EFER, efer);
  // L1 runs in IA-32e mode after the exit iff the host address-space size is 1.
  const entry01 = <u32>vmx.vmread(V.VM_ENTRY_CONTROL);
  const want = longMode ? entry01 | V.ENTRY_IA32E_MODE_GUEST : entry01 & ~V.ENTRY_IA32E_MODE_GUEST;
  if (want != entry01) vmx.vmwrite(V.VM_ENTRY_CONTROL, want);
}
