// A virtual processor: what each vCPU of a guest has on its own (design.md,
// "The state model"). The register block holds what VMX does not keep in
// the VMCS and the entry stub (boot/entry/vmenter.S) switches: the general
// registers in hardware register-number order (RSP is GUEST_RSP in the
// VMCS, 25.4.1), CR2 and the FXSAVE area. Its layout (V.REGS_*) is
// generated from tools/vmx/table.mjs for the stub, the C wrapper and this
// file alike.
//
// Vcpu objects are made when a guest is set up (or a snapshot restored),
// never on the exit path, and are recycled through a free list: the stub
// runtime does not free.
import * as vmx from "../hw/vmx";
import * as cpu from "../hw/cpu";
import * as V from "../arch/vmx";
import { Vm } from "./vm";
import { RunQueue } from "./runqueue";
import { Nested, NESTED_BYTES } from "../nested/nested";
import { Lapic } from "../apic/lapic";
import { IrqState } from "./irq";
import { TscState } from "./tsc";
import { MsrState } from "./exit/msr";
import { XState } from "./xstate";
import { Decoded } from "./decode";
import { HvState } from "./exit/hyperv";

export const RUN_ACTIVE: u32 = 0;
export const RUN_HALTED: u32 = 1;
export const RUN_WAIT_SIPI: u32 = 2;

export const RAX: u32 = 0;
export const RCX: u32 = 1;
export const RDX: u32 = 2;
export const RBX: u32 = 3;
export const RSP: u32 = 4;
export const RBP: u32 = 5;
export const RSI: u32 = 6;
export const RDI: u32 = 7;

// The register block is part of the object, at REGS_AT, so that a register
// access is one load from the vCPU pointer (a separate block behind a
// pointer field cost the CPUID round trip 70 ticks: every access loaded
// the pointer first, each load bounds-checked). The fields come first and
// must fit below REGS_AT. The per-area state objects follow the block in
// the same allocation, for the same reason: vcpu.apic, vcpu.irq, ... are
// an addition to the vCPU pointer, not a load.
//
//   +0       Vcpu fields            +REGS_AT   register block (V.REGS_*)
//   +APIC_AT local APIC (Lapic)     +IRQ_AT    interrupt delivery (IrqState)
//   +TSC_AT  TSC (TscState)         +MSRS_AT   emulated MSRs (MsrState)
//   +XSTATE_AT extended state (XState)  +DECODED_AT  MMIO decoding (Decoded)
//   +HV_AT   Hyper-V per-VP state (HvState, hyperv=on)
//   +NESTED_AT the nested-VMX part (nested/nested.ts: Nested, with its
//              vmcs12 cache)
const REGS_AT: usize = 256;
// (Each offset a constant expression, so that it folds into the loads;
// every area 16-byte aligned.)
const APIC_AT: usize = REGS_AT + <usize>V.REGS_BYTES;
const IRQ_AT: usize = (APIC_AT + offsetof<Lapic>() + 15) & ~15;
const TSC_AT: usize = (IRQ_AT + offsetof<IrqState>() + 15) & ~15;
const MSRS_AT: usize = (TSC_AT + offsetof<TscState>() + 15) & ~15;
const XSTATE_AT: usize = (MSRS_AT + offsetof<MsrState>() + 15) & ~15;
const DECODED_AT: usize = (XSTATE_AT + offsetof<XState>() + 15) & ~15;
const HV_AT: usize = (DECODED_AT + offsetof<Decoded>() + 15) & ~15;
const NESTED_AT: usize = (HV_AT + offsetof<HvState>() + 63) & ~63;
const OBJECT_BYTES: usize = NESTED_AT + NESTED_BYTES;

@unmanaged export class Vcpu {
  vm: Vm = changetype<Vm>(0);
  index: u32 = 0; // vCPU number within its VM (the VP index)
  vmcs: u64 = 0; // physical address of vmcs01
  vapicPage: u64 = 0; // its virtual-APIC page (vm/apicv.ts), allocated when first needed
  nextFree: Vcpu | null = null;
  // With several vCPUs (vcpus=N; vm/sched.ts, vm/apstart.ts): whether it
  // runs (RUN_ACTIVE), sleeps in HLT (RUN_HALTED; haltIf: RFLAGS.IF then,
  // so that a fixed interrupt may wake it, otherwise only an NMI or INIT),
  // or waits for a start-up IPI (RUN_WAIT_SIPI, SDM Vol. 3A 9.4 / 11.4).
  runState: u32 = 0;
  haltIf: bool = false;
  // A SIPI arrived in wait-for-SIPI: it starts in real mode at
  // CS = sipiVector << 8, IP 0 when it next runs (apstart.start).
  startPending: bool = false;
  // An NMI IPI from another vCPU, raised (vm/irq.ts raiseNmi) when it next
  // runs, with its own VMCS current.
  ipiNmi: bool = false;
  // An INIT that arrived in VMX operation (vm/apstart.ts): held while L1 is
  // in VMX root operation, which blocks it (SDM Vol. 3C 24.8), until VMXOFF
  // or a VM entry into L2; while L2 runs, the INIT-signal exit to L1 due
  // when the vCPU next gets the processor (nested/initsipi.ts).
  initPending: bool = false;
  sipiVector: u32 = 0;
  switchedIn: u32 = 0; // times the scheduler gave it the processor
  // The processor it runs on (vm/runqueue.ts).
  queue: RunQueue = changetype<RunQueue>(0);
  // What the other processors' vCPUs sent it while it runs elsewhere
  // (vm/ipi.ts post): fixed and lowest-priority vectors (and which of them
  // are level-triggered), an NMI, an INIT, a SIPI (its vector | SIPI_POSTED).
  // Its own processor takes them at its next exit (ipi.takePosted):
  // nothing of a vCPU that runs elsewhere is changed in place.
  posted: bool = false;
  postedNmi: bool = false;
  postedInit: bool = false;
  postedSipi: u32 = 0;
  postedIrr0: u64 = 0;
  postedIrr1: u64 = 0;
  postedIrr2: u64 = 0;
  postedIrr3: u64 = 0;
  postedTmr0: u64 = 0;
  postedTmr1: u64 = 0;
  postedTmr2: u64 = 0;
  postedTmr3: u64 = 0;
  // The guest's values of vmcs01.UNSWITCHED while another vCPU of the VM
  // has the processor (sched.ts).
  private out0: u64 = 0;
  private out1: u64 = 0;
  private out2: u64 = 0;
  private out3: u64 = 0;
  private out4: u64 = 0;
  private out5: u64 = 0;
  private out6: u64 = 0;
  private out7: u64 = 0;
  @inline get msrsOut(): usize {
    return changetype<usize>(this) + offsetof<Vcpu>("out0");
  }

  @inline get apic(): Lapic {
    return changetype<Lapic>(changetype<usize>(this) + APIC_AT);
  }
  @inline get irq(): IrqState {
    return changetype<IrqState>(changetype<usize>(this) + IRQ_AT);
  }
  @inline get tsc(): TscState {
    return changetype<TscState>(changetype<usize>(this) + TSC_AT);
  }
  @inline get msrs(): MsrState {
    return changetype<MsrState>(changetype<usize>(this) + MSRS_AT);
  }
  @inline get xstate(): XState {
    return changetype<XState>(changetype<usize>(this) + XSTATE_AT);
  }
  // The caller-owned result of decoding an MMIO instruction (mmio.ts).
  @inline get decoded(): Decoded {
    return changetype<Decoded>(changetype<usize>(this) + DECODED_AT);
  }
  // The nested-VMX part: reached on every L2 exit dozens of times.
  @inline get nested(): Nested {
    return changetype<Nested>(changetype<usize>(this) + NESTED_AT);
  }

  // The per-VP part of the Hyper-V interface (exit/hyperv.ts).
  @inline get hv(): HvState {
    return changetype<HvState>(changetype<usize>(this) + HV_AT);
  }

  // The register block (V.REGS_* layout), 64-byte aligned.
  @inline get regs(): usize {
    return changetype<usize>(this) + REGS_AT;
  }
  @inline reg(n: u32): u64 {
    return load<u64>(changetype<usize>(this) + (<usize>n << 3), REGS_AT);
  }
  @inline setReg(n: u32, v: u64): void {
    store<u64>(changetype<usize>(this) + (<usize>n << 3), v, REGS_AT);
  }
  // General register n in hardware order as the guest sees it: RSP is
  // GUEST_RSP in the current VMCS (25.4.1), the others are in the block.
  gpr(n: u32): u64 {
    return n == RSP ? vmx.vmread(V.GUEST_RSP) : this.reg(n);
  }
  setGpr(n: u32, v: u64): void {
    if (n == RSP) vmx.vmwrite(V.GUEST_RSP, v);
    else this.setReg(n, v);
  }
  @inline cr2(): u64 {
    return load<u64>(changetype<usize>(this), REGS_AT + V.REGS_CR2);
  }
  @inline setCr2(v: u64): void {
    store<u64>(changetype<usize>(this), v, REGS_AT + V.REGS_CR2);
  }
  @inline fxArea(): usize {
    return this.regs + V.REGS_FX;
  }
  // VMLAUNCH done on the current VMCS since its VMCLEAR, and the VM exits
  // since the guest started: in the register block (V.REGS_LAUNCHED,
  // V.REGS_EXITS), where the entry wrapper (vmx.enter) sets the one and
  // counts the other, so that the exit loop touches neither.
  @inline get launched(): bool {
    return load<u64>(changetype<usize>(this), REGS_AT + V.REGS_LAUNCHED) != 0;
  }
  setLaunched(l: bool): void {
    store<u64>(changetype<usize>(this), l ? 1 : 0, REGS_AT + V.REGS_LAUNCHED);
  }
  @inline get exits(): u64 {
    return load<u64>(changetype<usize>(this), REGS_AT + V.REGS_EXITS);
  }
  // A vCPU made from a snapshot goes on counting where the one it replaces
  // stopped (snapshot/restore.ts): the count is the run's, not the guest's.
  setExits(n: u64): void {
    store<u64>(changetype<usize>(this), n, REGS_AT + V.REGS_EXITS);
  }
  setVmcs(pa: u64): void {
    this.vmcs = pa;
    this.setLaunched(false);
  }

  // Registers and FPU state at a guest's start (the boot protocol sets
  // RAX/RBX afterwards): all zero, x87 control word 0x37F and MXCSR 0x1F80
  // as after FNINIT/reset (SDM Vol. 3A 9.1.1); not launched, no exits.
  resetRegisters(): void {
    memory.fill(this.regs, 0, V.REGS_BYTES);
    store<u16>(this.fxArea(), 0x37f); // FCW
    store<u32>(this.fxArea() + 24, 0x1f80); // MXCSR
  }
}

let freeList: Vcpu | null = null; // machine-wide: recycled objects (the stub runtime does not free)

// The fields must end below the register block.
if (offsetof<Vcpu>() > REGS_AT) unreachable();

// A vCPU for vm with number index, in its RESET state: registers, local
// APIC, TSC, MSRs, extended state; no VMCS yet (vmcs01.create builds it and
// starts interrupt delivery).
export function create(vm: Vm, index: u32): Vcpu {
  let v: Vcpu;
  const f = freeList;
  if (f != null) {
    v = f;
    freeList = f.nextFree;
  } else {
    v = changetype<Vcpu>((heap.alloc(OBJECT_BYTES + 64) + 63) & ~(<usize>63));
    memory.fill(changetype<usize>(v), 0, OBJECT_BYTES);
    Nested.at(changetype<usize>(v) + NESTED_AT);
  }
  // vmcs01's page, the nested part's pages and the XSAVE area stay with
  // the object across reuse.
  const vmcs = v.vmcs;
  const vapicPage = v.vapicPage;
  memory.fill(changetype<usize>(v), 0, offsetof<Vcpu>());
  v.vmcs = vmcs;
  v.vapicPage = vapicPage;
  v.nested.clear();
  v.vm = vm;
  v.index = index;
  v.resetRegisters();
  v.apic.vapic = 0; // the software APIC until vmcs01.create says otherwise
  v.apic.reset(index, cpu.rdtsc());
  memory.fill(changetype<usize>(v.irq), 0, offsetof<IrqState>());
  v.irq.budgetEnd = u64.MAX_VALUE;
  v.tsc.reset();
  v.msrs.reset();
  v.xstate.reset();
  v.hv.reset();
  return v;
}

// Give v back; its VMCS pages are the caller's to free first.
export function destroy(v: Vcpu): void {
  v.nested.release();
  v.nextFree = freeList;
  freeList = v;
}
