// Reflecting an exit from L2 to L1 (SDM Vol. 3C 28 "VM Exits", applied to
// vmcs12): record the exit information and L2's state in vmcs12, then
// load L1's host state (28.5) into vmcs01 and resume L1 there, as if its
// processor had exited from L2.
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as vcpu from "../vm/vcpu";
import * as vmcs01 from "../vm/vmcs01";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as fields from "./fields";
import * as vmcs02 from "./vmcs02";
import * as msrlists from "./msrlists";
import * as shadow from "./shadow";

export const counts = new StaticArray<u64>(exits.REASONS); // exits reflected to L1, by reason
export let handledByL0: u64 = 0; // L2 exits L0 handled itself

export function countL0(): void {
  handledByL0++;
}

export function resetCounts(): void {
  for (let i = 0; i < exits.REASONS; i++) counts[i] = 0;
  handledByL0 = 0;
}

// L2's state into vmcs12 (28.3): the guest-state fields; CR0/CR4 as L2
// believes them for the bits only L0 owns; EFER/PAT/debug controls when
// vmcs12's exit controls save them; "IA-32e mode guest" from EFER.LMA.
function syncGuestState(): void {
  const exit12 = <u32>state.read(V.VM_EXIT_CONTROL);
  for (let i = 0; i < fields.GUEST_STATE.length; i++) {
    const f = unchecked(fields.GUEST_STATE[i]);
    if (f == V.GUEST_IA32_EFER && (exit12 & V.EXIT_SAVE_IA32_EFER) == 0) continue;
    if (f == V.GUEST_IA32_PAT && (exit12 & V.EXIT_SAVE_IA32_PAT) == 0) continue;
    if ((f == V.GUEST_DR7 || f == V.GUEST_IA32_DEBUGCTL) && (exit12 & V.EXIT_SAVE_DEBUG_CONTROLS) == 0) continue;
    state.write(f, vmx.vmread(f));
  }
  const only0cr0 = vmcs01.cr0Mask & ~state.read(V.CR0_GUEST_HOST_MASK);
  const only0cr4 = vmcs01.cr4Mask & ~state.read(V.CR4_GUEST_HOST_MASK);
  state.write(V.GUEST_CR0, (vmx.vmread(V.GUEST_CR0) & ~only0cr0) | (vmx.vmread(V.CR0_READ_SHADOW) & only0cr0));
  state.write(V.GUEST_CR4, (vmx.vmread(V.GUEST_CR4) & ~only0cr4) | (vmx.vmread(V.CR4_READ_SHADOW) & only0cr4));
  const ia32e = <u32>vmx.vmread(V.VM_ENTRY_CONTROL) & V.ENTRY_IA32E_MODE_GUEST;
  const entry12 = <u32>state.read(V.VM_ENTRY_CONTROL);
  if ((entry12 & V.ENTRY_IA32E_MODE_GUEST) != ia32e) state.write(V.VM_ENTRY_CONTROL, (entry12 & ~V.ENTRY_IA32E_MODE_GUEST) | ia32e);
  // 28.2.x: the valid bit of the VM-entry interruption information is
  // cleared by every VM exit. Quietly: with no event to inject, the
  // event-injection checks have nothing to refuse.
  state.writeQuiet(V.VM_ENTRY_INTERRUPTION_INFO, state.read(V.VM_ENTRY_INTERRUPTION_INFO) & ~<u64>V.INTR_INFO_VALID);
}

function syncExitInfo(): void {
  for (let i = 0; i < fields.EXIT_INFO.length; i++) {
    const f = unchecked(fields.EXIT_INFO[i]);
    state.write(f, vmx.vmread(f));
  }
}

// Access rights of a segment loaded from the host-state area (28.5.2).
const AR_UNUSABLE: u32 = 0x10000;
function dataSegment(sf: u32, sel: u64, base: u64): void {
  vmx.vmwrite(V.GUEST_ES_SELECTOR + sf, sel);
  vmx.vmwrite(V.GUEST_ES_BASE + sf, base);
  vmx.vmwrite(V.GUEST_ES_LIMIT + sf, 0xffffffff);
  // Usable iff the selector is not null: type 3 (read/write, accessed),
  // S, DPL 0, P, D/B, G.
  vmx.vmwrite(V.GUEST_ES_ACCESS_RIGHTS + sf, (sel & 0xfff8) != 0 ? 0xc093 : AR_UNUSABLE | 0xc093);
}

// L1's state after the exit: vmcs12's host-state area (28.5), written into
// vmcs01's guest-state area (vmcs01 is current).
function loadHostState(): void {
  const exit12 = <u32>state.read(V.VM_EXIT_CONTROL);
  const longMode = (exit12 & V.EXIT_HOST_ADDRESS_SPACE_SIZE) != 0;
  const cr0 = state.read(V.HOST_CR0);
  const cr4 = state.read(V.HOST_CR4);
  vmx.vmwrite(V.CR0_READ_SHADOW, cr0);
  vmx.vmwrite(V.GUEST_CR0, vmcs01.realCr0(cr0));
  vmx.vmwrite(V.CR4_READ_SHADOW, cr4);
  vmx.vmwrite(V.GUEST_CR4, vmcs01.realCr4(cr4));
  vmx.vmwrite(V.GUEST_CR3, state.read(V.HOST_CR3));
  vmx.vmwrite(V.GUEST_DR7, 0x400);
  vmx.vmwrite(V.GUEST_IA32_DEBUGCTL, 0);
  vmx.vmwrite(V.GUEST_IA32_SYSENTER_CS, state.read(V.HOST_IA32_SYSENTER_CS));
  vmx.vmwrite(V.GUEST_IA32_SYSENTER_ESP, state.read(V.HOST_IA32_SYSENTER_ESP));
  vmx.vmwrite(V.GUEST_IA32_SYSENTER_EIP, state.read(V.HOST_IA32_SYSENTER_EIP));
  let efer = vmx.vmread(V.GUEST_IA32_EFER);
  if ((exit12 & V.EXIT_LOAD_IA32_EFER) != 0) efer = state.read(V.HOST_IA32_EFER);
  else efer = longMode ? efer | (1 << 8) | (1 << 10) : efer & ~<u64>((1 << 8) | (1 << 10));
  vmx.vmwrite(V.GUEST_IA32_EFER, efer);
  if ((exit12 & V.EXIT_LOAD_IA32_PAT) != 0) vmx.vmwrite(V.GUEST_IA32_PAT, state.read(V.HOST_IA32_PAT));
  const entry01 = <u32>vmx.vmread(V.VM_ENTRY_CONTROL);
  vmx.vmwrite(V.VM_ENTRY_CONTROL, longMode ? entry01 | V.ENTRY_IA32E_MODE_GUEST : entry01 & ~V.ENTRY_IA32E_MODE_GUEST);

  const sf = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR;
  // CS: code, execute/read accessed, L = host address-space size, D = !L.
  vmx.vmwrite(V.GUEST_CS_SELECTOR, state.read(V.HOST_CS_SELECTOR));
  vmx.vmwrite(V.GUEST_CS_BASE, 0);
  vmx.vmwrite(V.GUEST_CS_LIMIT, 0xffffffff);
  vmx.vmwrite(V.GUEST_CS_ACCESS_RIGHTS, longMode ? 0xa09b : 0xc09b);
  dataSegment(0, state.read(V.HOST_ES_SELECTOR), 0);
  // SS is usable even when null in 64-bit mode; its DPL is 0 (28.5.2).
  dataSegment(2 * sf, state.read(V.HOST_SS_SELECTOR), 0);
  if (longMode) vmx.vmwrite(V.GUEST_SS_ACCESS_RIGHTS, 0xc093);
  dataSegment(3 * sf, state.read(V.HOST_DS_SELECTOR), 0);
  dataSegment(4 * sf, state.read(V.HOST_FS_SELECTOR), state.read(V.HOST_FS_BASE));
  dataSegment(5 * sf, state.read(V.HOST_GS_SELECTOR), state.read(V.HOST_GS_BASE));
  vmx.vmwrite(V.GUEST_LDTR_SELECTOR, 0);
  vmx.vmwrite(V.GUEST_LDTR_ACCESS_RIGHTS, AR_UNUSABLE);
  vmx.vmwrite(V.GUEST_TR_SELECTOR, state.read(V.HOST_TR_SELECTOR));
  vmx.vmwrite(V.GUEST_TR_BASE, state.read(V.HOST_TR_BASE));
  vmx.vmwrite(V.GUEST_TR_LIMIT, 0x67);
  vmx.vmwrite(V.GUEST_TR_ACCESS_RIGHTS, 0x8b);
  vmx.vmwrite(V.GUEST_GDTR_BASE, state.read(V.HOST_GDTR_BASE));
  vmx.vmwrite(V.GUEST_GDTR_LIMIT, 0xffff);
  vmx.vmwrite(V.GUEST_IDTR_BASE, state.read(V.HOST_IDTR_BASE));
  vmx.vmwrite(V.GUEST_IDTR_LIMIT, 0xffff);
  vmx.vmwrite(V.GUEST_RIP, state.read(V.HOST_RIP));
  vmx.vmwrite(V.GUEST_RSP, state.read(V.HOST_RSP));
  vmx.vmwrite(V.GUEST_RFLAGS, 0x2);
  vmx.vmwrite(V.GUEST_INTERRUPTIBILITY_STATE, 0);
  vmx.vmwrite(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
  vmx.vmwrite(V.GUEST_PENDING_DEBUG_EXCEPTIONS, 0);
  vmx.vmwrite(V.VM_ENTRY_INTERRUPTION_INFO, 0);
}

// A failure storing or loading the VM-exit MSR lists is a VMX abort (28.7):
// L1's processor would shut down; its VM stops, with the reason.
function vmxAbort(what: string, index: u32): i32 {
  print.str("hv: nested: VMX abort for L1: ");
  print.str(what);
  print.str(" entry ");
  print.dec(index);
  print.str(" failed");
  print.nl();
  return exits.stop(config.OUTCOME_STOPPED);
}

// 28.6: the VM-exit MSR-load list into L1's state (vmcs01 current), after
// the host state.
// L1 then reads the exit through the shadow VMCS: it gets the new vmcs12.
function loadExitList(): i32 {
  const l = msrlists.loadList(state.read(V.VM_EXIT_MSR_LOAD_ADDRESS), <u32>state.read(V.VM_EXIT_MSR_LOAD_COUNT));
  if (l != 0) return vmxAbort("VM-exit MSR-load", l);
  shadow.push();
  return exits.RESUME;
}

// Switch from vmcs02 (current) to vmcs01 with L1 in its host state.
function toL1(): i32 {
  // 28.4: L2's MSR values into the VM-exit MSR-store list (vmcs02 current).
  const s = msrlists.storeList(state.read(V.VM_EXIT_MSR_STORE_ADDRESS), <u32>state.read(V.VM_EXIT_MSR_STORE_COUNT));
  if (s != 0) return vmxAbort("VM-exit MSR-store", s);
  vmcs02.setLaunched(vcpu.launched);
  if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) {
    print.say("nested: VMPTRLD of vmcs01 failed");
    return exits.stop(config.OUTCOME_STOPPED);
  }
  vcpu.setLaunched(vmcs02.l1Launched);
  state.setInL2(false);
  loadHostState();
  return loadExitList();
}

// Reflect the current exit (vmcs02 current): exit information as the
// processor reported it.
export function reflect(reason: u32): i32 {
  counts[reason]++;
  syncGuestState();
  syncExitInfo();
  return toL1();
}

// Reflect an exit the processor did not produce (a failed nested VM entry,
// an interrupt for L1): the caller gives the exit information.
export function reflectSynthetic(reason: u32, qualification: u64, intrInfo: u32): i32 {
  counts[reason & 0xffff]++;
  if ((reason & V.EXIT_REASON_FLAG_ENTRY_FAILURE) == 0) syncGuestState();
  state.write(V.VM_EXIT_REASON, reason);
  state.write(V.EXIT_QUALIFICATION, qualification);
  state.write(V.VM_EXIT_INTERRUPTION_INFO, intrInfo);
  state.write(V.IDT_VECTORING_INFO, 0);
  state.write(V.VM_EXIT_INSTRUCTION_LENGTH, 0);
  state.write(V.VM_EXIT_INSTRUCTION_INFO, 0);
  if ((reason & V.EXIT_REASON_FLAG_ENTRY_FAILURE) != 0) {
    // A failed VM entry (27.8): vmcs01 is still current and L1's state is
    // unchanged apart from the host-state load.
    state.setInL2(false);
    loadHostState();
    return loadExitList();
  }
  return toL1();
}
