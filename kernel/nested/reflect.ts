// Reflecting an exit from L2 to L1 (SDM Vol. 3C 28 "VM Exits", applied to
// vmcs12): record the exit information and L2's state in vmcs12, then
// load L1's host state (28.5) into vmcs01 and resume L1 there, as if its
// processor had exited from L2.
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as vmcs01 from "../vm/vmcs01";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as fields from "./fields";
import * as vmcs02 from "./vmcs02";
import * as msrlists from "./msrlists";
import * as shadow from "./shadow";
import * as evmcs from "./evmcs";
import { FieldList } from "./fieldlist";
import * as hoststate from "./hoststate";
import * as guestsync from "./guestsync";
import * as vpid from "./vpid";
import * as decide from "./reflect-decide";
import * as ptimer from "./ptimer";
import * as guestmem from "../vm/guestmem";
import * as tsc from "../vm/tsc";
import { Nested } from "./nested";
import * as events from "../vm/events";

// A vCPU's L2 statistics (vcpu.nested.counts, embedded in the Nested:
// BYTES long, the counts by reason after the fields; the guest's report
// sums them).
@unmanaged export class L2Counts {
  handledByL0: u64 = 0; // L2 exits L0 handled itself
  launches: u64 = 0; // nested VM entries into L2 (launch.ts)
  enlightened: u64 = 0; // VMLAUNCH/VMRESUMEs that took their VMCS from an eVMCS (evmcs.ts)
  // then u64 reflected[exits.REASONS]: exits reflected to L1, by reason
  static readonly BYTES: usize = offsetof<L2Counts>() + <usize>exits.REASONS * 8;
  @inline reflected(reason: u32): u64 {
    return reason < <u32>exits.REASONS ? load<u64>(changetype<usize>(this) + offsetof<L2Counts>() + (<usize>reason << 3)) : 0;
  }
  @inline countReflected(reason: u32): void {
    if (reason >= <u32>exits.REASONS) return;
    const a = changetype<usize>(this) + offsetof<L2Counts>() + (<usize>reason << 3);
    store<u64>(a, load<u64>(a) + 1);
  }
  clear(): void {
    memory.fill(changetype<usize>(this), 0, L2Counts.BYTES);
  }
}

export function countL0(vcpu: Vcpu): void {
  vcpu.nested.counts.handledByL0++;
}

const guestList = guestsync.guestList;
const exitInfoList = guestsync.exitInfoList;
// The entries of guestList saved only when vmcs12's exit controls say so.
let maskEfer: u64 = 0; // machine-wide: a constant computed at start
let maskPat: u64 = 0; // machine-wide: a constant computed at start
let maskDebug: u64 = 0; // machine-wide: a constant computed at start
for (let i = 0; i < fields.GUEST_STATE.length; i++) {
  const f = fields.GUEST_STATE[i];
  if (f == V.GUEST_IA32_EFER) maskEfer |= <u64>1 << <u64>i;
  if (f == V.GUEST_IA32_PAT) maskPat |= <u64>1 << <u64>i;
  if (f == V.GUEST_DR7 || f == V.GUEST_IA32_DEBUGCTL) maskDebug |= <u64>1 << <u64>i;
}

// L2's state into vmcs12 (28.3): the guest-state fields; CR0/CR4 as L2
// believes them for the bits only L0 owns; EFER/PAT/debug controls when
// vmcs12's exit controls save them; "IA-32e mode guest" from EFER.LMA.
// vmcs02 holds all of it already, so the changes are recorded as synced
// (state.ts): they are re-checked at the next entry, not merged again.
@inline function syncGuestState(vcpu: Vcpu): void {
  storeGuestState(vcpu, vcpu.nested.evmcs != state.INVALID);
  const n = vcpu.nested;
  // 28.2 ("updating VM-entry control fields"): every VM exit clears the
  // valid bit of the VM-entry interruption information — in vmcs02 too.
  state.setSynced(n, V.VM_ENTRY_INTERRUPTION_INFO, state.get(n, V.VM_ENTRY_INTERRUPTION_INFO) & ~<u64>V.INTR_INFO_VALID);
  // L1's VMX-preemption timer stops; its value is saved if L1 asked.
  ptimer.exitToL1(vcpu);
}

// A snapshot while L2 runs (snapshot/save.ts; docs/snapshot.md "Whose
// state"): L2's state into vmcs12 as a VM exit stores it, and nothing of
// what the exit itself does — L2 goes on from vmcs02, which keeps its
// event and timer.
export function syncForSnapshot(vcpu: Vcpu): void {
  storeGuestState(vcpu, true);
}

// (@inline: one copy on the exit path, as before there were two callers.)
// all: the rare fields too (guestsync.ts), else they stay in vmcs02.
@inline function storeGuestState(vcpu: Vcpu, all: bool): void {
  const n = vcpu.nested;
  const exit12 = <u32>state.get(n, V.VM_EXIT_CONTROL);
  let mask = guestList.all;
  if (!all) mask &= ~guestsync.rareMask;
  n.rareUnsynced = !all;
  if ((exit12 & V.EXIT_SAVE_IA32_EFER) == 0) mask &= ~maskEfer;
  if ((exit12 & V.EXIT_SAVE_IA32_PAT) == 0) mask &= ~maskPat;
  if ((exit12 & V.EXIT_SAVE_DEBUG_CONTROLS) == 0) mask &= ~maskDebug;
  n.shadowGuestStale |= state.readFields(n, guestList, mask, true);
  const only0cr0 = vmcs01.cr0Mask & ~state.get(n, V.CR0_GUEST_HOST_MASK);
  const only0cr4 = vmcs01.cr4Mask & ~state.get(n, V.CR4_GUEST_HOST_MASK);
  state.setSynced(n, V.GUEST_CR0, (vmx.vmread(V.GUEST_CR0) & ~only0cr0) | (vmx.vmread(V.CR0_READ_SHADOW) & only0cr0));
  state.setSynced(n, V.GUEST_CR4, (vmx.vmread(V.GUEST_CR4) & ~only0cr4) | (vmx.vmread(V.CR4_READ_SHADOW) & only0cr4));
  // L2's RVI and SVI when vmcs12 uses virtual-interrupt delivery (the
  // field exists only then; 28.3.1 saves it).
  if ((<u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
    (<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0) {
    state.setSynced(n, V.GUEST_INTERRUPT_STATUS, vmx.vmread(V.GUEST_INTERRUPT_STATUS));
  }
  const ia32e = <u32>vmx.vmread(V.VM_ENTRY_CONTROL) & V.ENTRY_IA32E_MODE_GUEST;
  const entry12 = <u32>state.get(n, V.VM_ENTRY_CONTROL);
  if ((entry12 & V.ENTRY_IA32E_MODE_GUEST) != ia32e) state.setSynced(n, V.VM_ENTRY_CONTROL, (entry12 & ~V.ENTRY_IA32E_MODE_GUEST) | ia32e);
  // PDPTEs of a PAE-paging L2 under L1's EPT (28.3.4).
  if ((state.get(n, V.GUEST_CR4) & V.X86_CR4_PAE) != 0 && (state.get(n, V.VM_ENTRY_CONTROL) & V.ENTRY_IA32E_MODE_GUEST) == 0 &&
    (state.get(n, V.GUEST_CR0) & V.X86_CR0_PG) != 0 && state.eptEnabled(n)) {
    // (Not fields of guestList: a change means a whole push, shadow.ts.)
    if (state.readFields(n, vmcs02.pdpteFields, vmcs02.pdpteFields.all, true) != 0) state.markShadowAll(n);
  }
}

// The exit-information fields belong to no class of state.ts. Those the
// SDM defines for every exit (28.2.1-28.2.4: reason, qualification, the
// interruption and IDT-vectoring information, instruction length) are read
// at each one; the others only for the exits that define them — "for all
// other VM exits, the field is undefined", so vmcs12 keeps its old value:
//   the guest-linear and guest-physical addresses: LMSW, INS/OUTS, APIC
//     accesses, EPT violations and misconfigurations, PML-full and SPP
//     events (28.2.1);
//   the instruction information: the exits 28.2.5 lists (VMX
//     instructions with a memory or register operand, INS/OUTS, descriptor-
//     table accesses, INVEPT/INVVPID/INVPCID, RDRAND/RDSEED, XSAVES/XRSTORS
//     and the newer ones above 63);
//   the two error codes: only when their information field says an error
//     code was delivered (bits 31 and 11, 28.2.2 and 28.2.4), read after it;
//   the I/O RCX/RSI/RDI/RIP fields never (only SMIs after an I/O
//     instruction define them, and no SMI reaches L1 as an exit).
let exitInfoAlways: u64 = 0; // machine-wide: a constant computed at start
let exitInfoAddresses: u64 = 0; // machine-wide: a constant computed at start
let exitInfoInsn: u64 = 0; // machine-wide: a constant computed at start
let exitInfoIntrError: u64 = 0; // machine-wide: a constant computed at start
let exitInfoIdtError: u64 = 0; // machine-wide: a constant computed at start
for (let i = 0; i < fields.EXIT_INFO.length; i++) {
  const f = fields.EXIT_INFO[i];
  const bit = <u64>1 << <u64>i;
  if (f == V.GUEST_LINEAR_ADDRESS || f == V.GUEST_PHYSICAL_ADDRESS) exitInfoAddresses |= bit;
  else if (f == V.VM_EXIT_INSTRUCTION_INFO) exitInfoInsn = bit;
  else if (f == V.VM_EXIT_INTERRUPTION_ERROR_CODE) exitInfoIntrError = bit;
  else if (f == V.IDT_VECTORING_ERROR_CODE) exitInfoIdtError = bit;
  else if (f != V.IO_RCX && f != V.IO_RSI && f != V.IO_RDI && f != V.IO_RIP) exitInfoAlways |= bit;
}
const ADDRESS_EXITS: u64 = (<u64>1 << V.EXIT_REASON_CR_ACCESS) | (<u64>1 << V.EXIT_REASON_IO_INSTRUCTION) |
  (<u64>1 << V.EXIT_REASON_APIC_ACCESS) | (<u64>1 << V.EXIT_REASON_EPT_VIOLATION) |
  (<u64>1 << V.EXIT_REASON_EPT_MISCONFIG) | (<u64>1 << V.EXIT_REASON_PML_FULL);
const INSN_INFO_EXITS: u64 = (<u64>1 << V.EXIT_REASON_VMCLEAR) | (<u64>1 << V.EXIT_REASON_VMPTRLD) |
  (<u64>1 << V.EXIT_REASON_VMPTRST) | (<u64>1 << V.EXIT_REASON_VMREAD) | (<u64>1 << V.EXIT_REASON_VMWRITE) |
  (<u64>1 << V.EXIT_REASON_VMXON) | (<u64>1 << V.EXIT_REASON_IO_INSTRUCTION) |
  (<u64>1 << V.EXIT_REASON_GDTR_IDTR_ACCESS) | (<u64>1 << V.EXIT_REASON_LDTR_TR_ACCESS) |
  (<u64>1 << V.EXIT_REASON_INVEPT) | (<u64>1 << V.EXIT_REASON_INVVPID) | (<u64>1 << V.EXIT_REASON_RDRAND) |
  (<u64>1 << V.EXIT_REASON_INVPCID) | (<u64>1 << V.EXIT_REASON_RDSEED) | (<u64>1 << V.EXIT_REASON_XSAVES);
const EXIT_REASON_SPP: u32 = 66; // SPP-related event
// Bits 31 (valid) and 11 (error code delivered) of the interruption and
// IDT-vectoring information (28.2.2, 28.2.4).
const ERROR_CODE_VALID: u32 = V.INTR_INFO_VALID | V.INTR_INFO_DELIVER_ERROR_CODE;
@inline function syncExitInfo(n: Nested, reason: u32): void {
  let mask = exitInfoAlways;
  if (reason < 64) {
    if (((ADDRESS_EXITS >> reason) & 1) != 0) mask |= exitInfoAddresses;
    if (((INSN_INFO_EXITS >> reason) & 1) != 0) mask |= exitInfoInsn;
  } else mask |= reason == EXIT_REASON_SPP ? exitInfoAddresses | exitInfoInsn : exitInfoInsn;
  let changed = vmx.readlist(V.READLIST_EXIT_INFO, n.vmcs12, mask);
  let errors: u64 = 0;
  if ((<u32>state.get(n, V.VM_EXIT_INTERRUPTION_INFO) & ERROR_CODE_VALID) == ERROR_CODE_VALID) errors = exitInfoIntrError;
  if ((<u32>state.get(n, V.IDT_VECTORING_INFO) & ERROR_CODE_VALID) == ERROR_CODE_VALID) errors |= exitInfoIdtError;
  if (errors != 0) changed |= vmx.readlist(V.READLIST_EXIT_INFO, n.vmcs12, errors);
  n.shadowExitStale |= changed;
}

// A failure storing or loading the VM-exit MSR lists is a VMX abort (28.7):
// L1's processor writes the nonzero VMX-abort indicator at byte 4 of the
// VMCS region of vmcs12 (in L1's memory; the rest of the region is not
// written) and enters the VMX-abort shutdown state, which only RESET
// leaves. No processor runs on from there: the VM stops, with the reason.
function vmxAbort(vcpu: Vcpu, indicator: u32, what: string, index: u32): i32 {
  const n = vcpu.nested;
  if (guestmem.isRam(n.current + V.VMCS12_ABORT_INDICATOR_OFFSET, 4)) {
    guestmem.write32(n.current + V.VMCS12_ABORT_INDICATOR_OFFSET, indicator);
  }
  store<u32>(n.vmcs12 + V.VMCS12_ABORT_INDICATOR_OFFSET, indicator);
  print.str("hv: nested: VMX abort for L1 (SDM 28.7, indicator ");
  print.dec(indicator);
  print.str("): ");
  print.str(what);
  print.str(" entry ");
  print.dec(index);
  print.str(" failed; L1's processor is in VMX-abort shutdown");
  print.nl();
  return exits.stop(vcpu, config.OUTCOME_STOPPED);
}

// 28.6: the VM-exit MSR-load list into L1's state (vmcs01 current), after
// the host state.
// L1 then reads the exit through the shadow VMCS: it gets the new vmcs12
// (pushed here after a failed entry; toL1 pushes before the host state).
@inline function loadExitList(vcpu: Vcpu, push: bool): i32 {
  const n = vcpu.nested;
  // (The count tested here: an empty list, the common case, costs no call.)
  const count = <u32>state.get(n, V.VM_EXIT_MSR_LOAD_COUNT);
  const l = count == 0 ? 0 : msrlists.loadList(vcpu, state.get(n, V.VM_EXIT_MSR_LOAD_ADDRESS), count, false);
  if (l != 0) return vmxAbort(vcpu, V.VMX_ABORT_LOAD_HOST_MSR, "VM-exit MSR-load", l);
  if (push) shadow.push(vcpu);
  // With an enlightened VMCS in use L1 reads the exit there (evmcs.ts).
  if (n.evmcs != state.INVALID) evmcs.push(n);
  return exits.RESUME;
}

// vmcs02's VM-entry event fields hold vmcs12's values unless L0 wrote its
// own since the last merge (vm/events.ts entryEventWritten: a reinjection
// at an L2 exit, an event L0 injected into L2): then the next merge writes
// vmcs12's again (state.ts markEventStale).
@inline function eventsStale(n: Nested): void {
  if (n.vmcs02.eventsAt != events.entryEventWrites) state.markEventStale(n);
}

// Switch from vmcs02 (current) to vmcs01 with L1 in its host state.
@inline function toL1(vcpu: Vcpu): i32 {
  const n = vcpu.nested;
  // 28.4: L2's MSR values into the VM-exit MSR-store list (vmcs02 current).
  const count = <u32>state.get(n, V.VM_EXIT_MSR_STORE_COUNT);
  const s = count == 0 ? 0 : msrlists.storeList(vcpu, state.get(n, V.VM_EXIT_MSR_STORE_ADDRESS), count);
  if (s != 0) return vmxAbort(vcpu, V.VMX_ABORT_SAVE_GUEST_MSR, "VM-exit MSR-store", s);
  const v02 = n.vmcs02;
  v02.launched = vcpu.launched;
  // The exit into the shadow VMCS first: the push ends by making vmcs01
  // current, which saves a VMPTRLD here (what it writes is vmcs12's, which
  // the host-state load and the MSR-load list below do not change).
  if (!shadow.push(vcpu)) vmx.vmcsswitch(0, vcpu.vmcs);
  tsc.toVmcs01(vcpu);
  vcpu.setLaunched(v02.l1Launched);
  n.inL2 = false;
  vpid.exitedToL1(vcpu);
  hoststate.load(n);
  return loadExitList(vcpu, false);
}

// Reflect the current exit (vmcs02 current): exit information as the
// processor reported it.
export function reflect(vcpu: Vcpu, reason: u32): i32 {
  return reflectAs(vcpu, reason, NO_OVERRIDE);
}

// Reflect the current exit as another reason with another qualification
// (an EPT violation of the shadow tables that is L1's violation or
// misconfiguration: eptfault.ts); the rest of the exit information is the
// processor's. NO_OVERRIDE: the processor's reason and qualification.
const NO_OVERRIDE: u64 = u64.MAX_VALUE;
// Exits whose qualification is the instruction's displacement and whose
// instruction may have a register operand (VMREAD, VMWRITE, SLDT/STR/LLDT/
// LTR): 28.2.1 says a register operand has no displacement, qualification
// 0. Bochs 2.7 reports a stale displacement there, so L0 gives L1 the 0.
const REGISTER_FORM_EXITS: u64 = (<u64>1 << V.EXIT_REASON_VMREAD) | (<u64>1 << V.EXIT_REASON_VMWRITE) |
  (<u64>1 << V.EXIT_REASON_LDTR_TR_ACCESS);
export function reflectAs(vcpu: Vcpu, reason: u32, qualification: u64): i32 {
  const n = vcpu.nested;
  n.counts.countReflected(reason);
  syncGuestState(vcpu);
  syncExitInfo(n, reason);
  if (qualification != NO_OVERRIDE) {
    state.write(n, V.VM_EXIT_REASON, reason);
    state.write(n, V.EXIT_QUALIFICATION, qualification);
  } else if (reason < 64 && ((REGISTER_FORM_EXITS >> reason) & 1) != 0 &&
    (<u32>state.get(n, V.VM_EXIT_INSTRUCTION_INFO) & V.INSN_INFO_REG_OPERAND) != 0) {
    state.set(n, V.EXIT_QUALIFICATION, 0);
  }
  eventsStale(n);
  return toL1(vcpu);
}

// An exception L0 raised in L2 while completing an L2 exit itself (the #GP
// of a WRMSR or MOV to CR0/CR4 it emulates, a fault of a VMREAD/VMWRITE
// operand on L1's shadow VMCS: vmcs02's entry interruption information)
// is an exception in L2, and as on L1's processor it is an exception exit
// to L1 when L1's exception bitmap (with the #PF error-code mask and match,
// 25.6.3) wants it (26.2, 28.2.2: interruption information and error code;
// for #PF the qualification is the linear address and CR2 is not loaded:
// cr2 is L2's CR2 from before the handler). r: the handler's result.
export function injectedException(vcpu: Vcpu, r: i32, cr2: u64): i32 {
  if (r != exits.RESUME || !vcpu.nested.inL2) return r; // stopped, or already reflected (an EPT exit of an operand)
  const info = <u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO);
  if ((info & V.INTR_INFO_VALID) == 0 || (info & V.INTR_INFO_TYPE_MASK) != (3 << V.INTR_INFO_TYPE_SHIFT)) return r;
  const vector = info & 0xff;
  const ec = (info & V.INTR_INFO_DELIVER_ERROR_CODE) != 0 ? <u32>vmx.vmread(V.VM_ENTRY_EXCEPTION_ERROR_CODE) : 0;
  if (!decide.exceptionBitmapWants(vcpu.nested, vector, ec)) return r;
  const lin = vcpu.cr2();
  vcpu.setCr2(cr2);
  events.writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, 0);
  state.write(vcpu.nested, V.VM_EXIT_INTERRUPTION_ERROR_CODE, ec);
  return reflectSynthetic(vcpu, V.EXIT_REASON_EXCEPTION_NMI, vector == 14 ? lin : 0, info);
}

// Reflect an exit the processor did not produce (a failed nested VM entry,
// an interrupt for L1): the caller gives the exit information.
export function reflectSynthetic(vcpu: Vcpu, reason: u32, qualification: u64, intrInfo: u32): i32 {
  const n = vcpu.nested;
  n.counts.countReflected(reason & 0xffff);
  if ((reason & V.EXIT_REASON_FLAG_ENTRY_FAILURE) == 0) {
    syncGuestState(vcpu);
    eventsStale(n);
  }
  state.write(n, V.VM_EXIT_REASON, reason);
  state.write(n, V.EXIT_QUALIFICATION, qualification);
  if ((reason & V.EXIT_REASON_FLAG_ENTRY_FAILURE) != 0) {
    // A failed VM entry (27.8): only the exit reason and qualification are
    // written ("all other VM-exit information fields are unmodified"), the
    // guest state and the VM-entry interruption information stay, no MSR
    // is stored; vmcs01 is still current and L1's state is unchanged apart
    // from the host-state load and the VM-exit MSR-load list.
    n.inL2 = false;
    hoststate.load(n);
    return loadExitList(vcpu, true);
  }
  state.write(n, V.VM_EXIT_INTERRUPTION_INFO, intrInfo);
  state.write(n, V.IDT_VECTORING_INFO, 0);
  state.write(n, V.VM_EXIT_INSTRUCTION_LENGTH, 0);
  state.write(n, V.VM_EXIT_INSTRUCTION_INFO, 0);
  return toL1(vcpu);
}
