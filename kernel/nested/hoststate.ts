// L1's state after a VM exit from L2: vmcs12's host-state area loaded as
// the processor would (SDM Vol. 3C 28.5 "Loading Host State"), written
// into vmcs01's guest-state area (vmcs01 current).
//
// Nearly all of it is a function of vmcs12's host-state fields and exit
// controls alone, so it is computed into staged slots once and written
// with one import at every exit (vmx.loadhoststate: the field table's
// HOST_LOAD list, straight-line VMWRITEs); it is recomputed only when one
// of those fields changed (the Nested's hostStale, set by every change of
// a host-state field or of the exit controls, and by VMPTRLD); a change of
// host RIP or RSP alone (Linux KVM writes HOST_RSP before nearly every
// VMRESUME) only replaces those two staged values. The parts
// that depend on L1's state at the exit (EFER without "load IA32_EFER",
// vmcs01's own entry controls) are computed at each exit.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as vmcs01 from "../vm/vmcs01";
import * as state from "./state";
import { Nested } from "./nested";

// A vCPU's staged post-exit state (vcpu.nested.host, embedded in the
// Nested, BYTES long: no field initializers run): a rebuildable cache
// (hostStale makes the next exit compute it again). The values follow the
// fields: slot k (V.HOSTLOAD_SLOT_*) at 8 * k.
@unmanaged export class HostStaging {
  optional: u64 = 0; // the optional slots staged (V.HOSTLOAD_OPTIONAL: PAT with "load IA32_PAT")
  stagings: u64 = 0; // how often the staged state was recomputed: statistics
  static readonly BYTES: usize = offsetof<HostStaging>() + <usize>V.HOSTLOAD_COUNT * 8;
  @inline get values(): usize {
    return changetype<usize>(this) + offsetof<HostStaging>();
  }
  clear(): void {
    this.optional = 0;
    this.stagings = 0;
  }
}

@inline function put(h: HostStaging, slot: u32, v: u64): void {
  store<u64>(h.values + (<usize>slot << 3), v);
}

// Access rights of a segment loaded from the host-state area (28.5.2).
const AR_UNUSABLE: u32 = 0x10000;
const AR_DATA: u32 = 0xc093; // type 3 (read/write, accessed), S, DPL 0, P, D/B, G

// A segment's four slots from its selector's: base, limit and access
// rights follow it (the field table's HOST_LOAD order, checked there).
// ES, SS, DS, FS, GS: usable iff the selector is not null, except SS in
// 64-bit mode, which is usable even when null (28.5.2).
function dataSegment(h: HostStaging, selSlot: u32, sel: u64, base: u64, alwaysUsable: bool): void {
  put(h, selSlot, sel);
  put(h, selSlot + 1, base);
  put(h, selSlot + 2, 0xffffffff);
  put(h, selSlot + 3, (sel & 0xfff8) != 0 || alwaysUsable ? AR_DATA : AR_UNUSABLE | AR_DATA);
}

function stage(n: Nested, h: HostStaging): void {
  // 28.5.3: RIP and RSP from the host-state area (load() replaces them
  // alone when only they changed).
  put(h, V.HOSTLOAD_SLOT_GUEST_RIP, state.get(n, V.HOST_RIP));
  put(h, V.HOSTLOAD_SLOT_GUEST_RSP, state.get(n, V.HOST_RSP));
  const exit12 = <u32>state.get(n, V.VM_EXIT_CONTROL);
  const longMode = (exit12 & V.EXIT_HOST_ADDRESS_SPACE_SIZE) != 0;
  // 28.5.1: control registers (L1 sees its CR0/CR4 through the read
  // shadows; the processor runs with VMX's fixed bits), debug registers,
  // MSRs.
  const cr0 = state.get(n, V.HOST_CR0);
  const cr4 = state.get(n, V.HOST_CR4);
  put(h, V.HOSTLOAD_SLOT_CR0_READ_SHADOW, cr0);
  put(h, V.HOSTLOAD_SLOT_GUEST_CR0, vmcs01.realCr0(cr0));
  put(h, V.HOSTLOAD_SLOT_CR4_READ_SHADOW, cr4);
  put(h, V.HOSTLOAD_SLOT_GUEST_CR4, vmcs01.realCr4(cr4));
  put(h, V.HOSTLOAD_SLOT_GUEST_CR3, state.get(n, V.HOST_CR3));
  put(h, V.HOSTLOAD_SLOT_GUEST_DR7, 0x400);
  put(h, V.HOSTLOAD_SLOT_GUEST_IA32_DEBUGCTL, 0);
  put(h, V.HOSTLOAD_SLOT_GUEST_IA32_SYSENTER_CS, state.get(n, V.HOST_IA32_SYSENTER_CS));
  put(h, V.HOSTLOAD_SLOT_GUEST_IA32_SYSENTER_ESP, state.get(n, V.HOST_IA32_SYSENTER_ESP));
  put(h, V.HOSTLOAD_SLOT_GUEST_IA32_SYSENTER_EIP, state.get(n, V.HOST_IA32_SYSENTER_EIP));
  const loadPat = (exit12 & V.EXIT_LOAD_IA32_PAT) != 0;
  put(h, V.HOSTLOAD_SLOT_GUEST_IA32_PAT, loadPat ? state.get(n, V.HOST_IA32_PAT) : 0);
  h.optional = loadPat ? <u64>1 << <u64>V.HOSTLOAD_SLOT_GUEST_IA32_PAT : 0;
  // 28.5.2: CS is code, execute/read accessed, L = host address-space
  // size, D = !L; the data segments as above; LDTR unusable; TR busy TSS.
  put(h, V.HOSTLOAD_SLOT_GUEST_CS_SELECTOR, state.get(n, V.HOST_CS_SELECTOR));
  put(h, V.HOSTLOAD_SLOT_GUEST_CS_BASE, 0);
  put(h, V.HOSTLOAD_SLOT_GUEST_CS_LIMIT, 0xffffffff);
  put(h, V.HOSTLOAD_SLOT_GUEST_CS_ACCESS_RIGHTS, longMode ? 0xa09b : 0xc09b);
  dataSegment(h, V.HOSTLOAD_SLOT_GUEST_ES_SELECTOR, state.get(n, V.HOST_ES_SELECTOR), 0, false);
  dataSegment(h, V.HOSTLOAD_SLOT_GUEST_SS_SELECTOR, state.get(n, V.HOST_SS_SELECTOR), 0, longMode);
  dataSegment(h, V.HOSTLOAD_SLOT_GUEST_DS_SELECTOR, state.get(n, V.HOST_DS_SELECTOR), 0, false);
  dataSegment(h, V.HOSTLOAD_SLOT_GUEST_FS_SELECTOR, state.get(n, V.HOST_FS_SELECTOR), state.get(n, V.HOST_FS_BASE), false);
  dataSegment(h, V.HOSTLOAD_SLOT_GUEST_GS_SELECTOR, state.get(n, V.HOST_GS_SELECTOR), state.get(n, V.HOST_GS_BASE), false);
  put(h, V.HOSTLOAD_SLOT_GUEST_LDTR_SELECTOR, 0);
  put(h, V.HOSTLOAD_SLOT_GUEST_LDTR_ACCESS_RIGHTS, AR_UNUSABLE);
  put(h, V.HOSTLOAD_SLOT_GUEST_TR_SELECTOR, state.get(n, V.HOST_TR_SELECTOR));
  put(h, V.HOSTLOAD_SLOT_GUEST_TR_BASE, state.get(n, V.HOST_TR_BASE));
  put(h, V.HOSTLOAD_SLOT_GUEST_TR_LIMIT, 0x67);
  put(h, V.HOSTLOAD_SLOT_GUEST_TR_ACCESS_RIGHTS, 0x8b);
  put(h, V.HOSTLOAD_SLOT_GUEST_GDTR_BASE, state.get(n, V.HOST_GDTR_BASE));
  put(h, V.HOSTLOAD_SLOT_GUEST_GDTR_LIMIT, 0xffff);
  put(h, V.HOSTLOAD_SLOT_GUEST_IDTR_BASE, state.get(n, V.HOST_IDTR_BASE));
  put(h, V.HOSTLOAD_SLOT_GUEST_IDTR_LIMIT, 0xffff);
  // 28.5.3: RFLAGS = 2; no blocking, active, no pending debug exceptions,
  // no event to inject.
  put(h, V.HOSTLOAD_SLOT_GUEST_RFLAGS, 0x2);
  put(h, V.HOSTLOAD_SLOT_GUEST_INTERRUPTIBILITY_STATE, 0);
  put(h, V.HOSTLOAD_SLOT_GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  put(h, V.HOSTLOAD_SLOT_GUEST_PENDING_DEBUG_EXCEPTIONS, 0);
  put(h, V.HOSTLOAD_SLOT_VM_ENTRY_INTERRUPTION_INFO, 0);
}

@inline export function load(n: Nested): void {
  const h = n.host;
  if (state.hostStale(n)) {
    stage(n, h);
    state.markHostStaged(n);
    h.stagings++;
  } else if (state.hostRipRspStale(n)) {
    // Only host RIP/RSP changed: the staged list stays, with their values.
    put(h, V.HOSTLOAD_SLOT_GUEST_RIP, state.get(n, V.HOST_RIP));
    put(h, V.HOSTLOAD_SLOT_GUEST_RSP, state.get(n, V.HOST_RSP));
    state.markHostStaged(n);
  }
  vmx.loadhoststate(h.values, h.optional);
  // EFER (28.5.1): the host's with "load IA32_EFER", else L1's with LME
  // and LMA set to the host address-space size.
  const exit12 = <u32>state.get(n, V.VM_EXIT_CONTROL);
  const longMode = (exit12 & V.EXIT_HOST_ADDRESS_SPACE_SIZE) != 0;
  let efer: u64;
  if ((exit12 & V.EXIT_LOAD_IA32_EFER) != 0) efer = state.get(n, V.HOST_IA32_EFER);
  else {
    efer = vmx.vmread(V.GUEST_IA32_EFER);
    efer = longMode ? efer | V.X86_EFER_LME | V.X86_EFER_LMA : efer & ~<u64>(V.X86_EFER_LME | V.X86_EFER_LMA);
  }
  vmx.vmwrite(V.GUEST_IA32_EFER, efer);
  // L1 runs in IA-32e mode after the exit iff the host address-space size is 1.
  const entry01 = <u32>vmx.vmread(V.VM_ENTRY_CONTROL);
  const want = longMode ? entry01 | V.ENTRY_IA32E_MODE_GUEST : entry01 & ~V.ENTRY_IA32E_MODE_GUEST;
  if (want != entry01) {
    vmcs01.writeControl(V.VM_ENTRY_CONTROL, want);
  }
}
