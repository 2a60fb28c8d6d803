// Event injection and instruction completion (SDM Vol. 3C 27.2.4, 28.6).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";

export const VEC_DE: u32 = 0;
export const VEC_UD: u32 = 6;
export const VEC_DF: u32 = 8;
export const VEC_SS: u32 = 12;
export const VEC_GP: u32 = 13;
export const VEC_PF: u32 = 14;

// L0's writes of the VM-entry event fields (interruption information,
// exception error code, instruction length) of whatever VMCS is current,
// counted: vmcs02's hold vmcs12's values after a nested entry's merge until
// L0 writes its own there (an L2 exit's reinjection, an event L0 injects
// into L2), and a reflected exit makes the next merge write them again
// only after such a write (nested/reflect.ts, nested/vmcs02.ts eventsAt).
// Every write of those fields goes through writeEntryEvent (one into
// vmcs01, counted as well, only costs one such rewrite).
export let entryEventWrites: u32 = 1; // machine-wide: a change counter (any VMCS: a count too many costs one rewrite)
@inline export function writeEntryEvent(enc: u32, v: u64): void {
  vmx.vmwrite(enc, v);
  entryEventWrites++;
}

// Inject hardware exception `vector` at the next VM entry (26.6), with an
// error code when hasError. The faulting instruction is not completed.
export function injectException(vector: u32, hasError: bool, error: u32): void {
  let info = V.INTR_INFO_VALID | (3 << V.INTR_INFO_TYPE_SHIFT) | vector;
  if (hasError) {
    info |= V.INTR_INFO_DELIVER_ERROR_CODE;
    writeEntryEvent(V.VM_ENTRY_EXCEPTION_ERROR_CODE, error);
  }
  writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, info);
}

// An event is being delivered to a guest that may be halted (HLT activity
// state): delivery makes it active again (26.6.1, SDM Vol. 3C).
export function wakeForEvent(): void {
  if (<u32>vmx.vmread(V.GUEST_ACTIVITY_STATE) != V.ACTIVITY_STATE_ACTIVE)
    vmx.vmwrite(V.GUEST_ACTIVITY_STATE, V.ACTIVITY_STATE_ACTIVE);
}

// An NMI (type 2, vector 2; 26.6.1.1: the vector of an NMI must be 2).
export function injectNmi(): void {
  writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, V.INTR_INFO_VALID | (V.INTR_TYPE_NMI << V.INTR_INFO_TYPE_SHIFT) | 2);
}

export function injectGP(): void {
  injectException(VEC_GP, true, 0);
}

export function injectUD(): void {
  injectException(VEC_UD, false, 0);
}

// #SS(0): a stack-segment limit, usability or canonical violation by an
// SS-relative memory operand (SDM Vol. 3A 6.15, "Interrupt 12").
export function injectSS(): void {
  injectException(VEC_SS, true, 0);
}

// #PF with `error` (SDM Vol. 3A 4.7: P, W/R, U/S, RSVD, I/D bits) for the
// linear address `lin`, which the processor would have put in CR2 before
// delivering it (6.15, "Interrupt 14"). CR2 is the one in the register
// block (vcpu.ts layout, +128): the entry stub loads it into the real CR2.
export function injectPF(vcpu: Vcpu, lin: u64, error: u32): void {
  store<u64>(vcpu.regs, lin, 128);
  injectException(VEC_PF, true, error);
}

// Inject external interrupt `vector` (the guest must be able to take it).
export function injectInterrupt(vector: u32): void {
  writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, V.INTR_INFO_VALID | vector);
}

// Complete an emulated instruction of `len` bytes: move RIP past it, and
// end the blocking by STI or MOV SS it may have been under (interruptibility
// state, SDM Vol. 3C 25.4.2), as executing it would have: that blocking
// covers only the instruction after STI or MOV SS (Vol. 2B STI, Vol. 3A
// 6.8.3). The one definition of "complete the instruction"; inlined into
// its two callers, so the exit path pays no extra call.
@inline export function completeInstruction(len: u64): void {
  vmx.vmwrite(V.GUEST_RIP, vmx.vmread(V.GUEST_RIP) + len);
  const intr = <u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE);
  const mask = V.INTERRUPTIBILITY_BLOCKING_BY_STI | V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS;
  if ((intr & mask) != 0) vmx.vmwrite(V.GUEST_INTERRUPTIBILITY_STATE, intr & ~mask);
}

// Complete the instruction that caused the exit, whose length the exit
// reports (VM-exit instruction length, 28.2.5).
export function skipInstruction(): void {
  completeInstruction(vmx.vmread(V.VM_EXIT_INSTRUCTION_LENGTH));
}

// An event that was being delivered when the exit happened (IDT-vectoring
// information, 27.2.4) must be delivered again on the next entry, unless
// the handler injects something else. Called before dispatching an exit.
export function reinjectVectoring(): void {
  const info = <u32>vmx.vmread(V.IDT_VECTORING_INFO);
  if ((info & V.INTR_INFO_VALID) == 0) return;
  const type = (info & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
  if ((info & V.INTR_INFO_DELIVER_ERROR_CODE) != 0)
    writeEntryEvent(V.VM_ENTRY_EXCEPTION_ERROR_CODE, vmx.vmread(V.IDT_VECTORING_ERROR_CODE));
  // Software interrupts and exceptions (types 4-6) need their instruction
  // length again (26.6.1.3).
  if (type >= 4) writeEntryEvent(V.VM_ENTRY_INSTRUCTION_LENGTH, vmx.vmread(V.VM_EXIT_INSTRUCTION_LENGTH));
  writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, info & ~V.INTR_INFO_NMI_UNBLOCKING_IRET);
}

// Guest CPL: the DPL of SS (SDM Vol. 3A 5.5: CPL = SS.DPL outside real mode).
export function guestCpl(): u32 {
  return (<u32>vmx.vmread(V.GUEST_SS_ACCESS_RIGHTS) >> 5) & 3;
}
