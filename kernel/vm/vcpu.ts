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
import * as V from "../arch/vmx";
import { Vm } from "./vm";
import { Nested, NESTED_BYTES } from "../nested/nested";

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
// must fit below REGS_AT.
const REGS_AT: usize = 256;
// The nested-VMX part follows, in the object too for the same reason (the
// nested exit path reaches it from the vCPU dozens of times).
const NESTED_AT: usize = (REGS_AT + <usize>V.REGS_BYTES + 63) & ~(<usize>63);
const OBJECT_BYTES: usize = NESTED_AT + NESTED_BYTES;

@unmanaged export class Vcpu {
  vm: Vm = changetype<Vm>(0);
  index: u32 = 0; // vCPU number within its VM (the VP index)
  vmcs: u64 = 0; // physical address of vmcs01
  launched: bool = false; // VMLAUNCH done on the current VMCS since its VMCLEAR
  exits: u64 = 0; // VM exits since the guest started
  nextFree: Vcpu | null = null;

  // The register block (V.REGS_* layout), 64-byte aligned.
  @inline get regs(): usize {
    return changetype<usize>(this) + REGS_AT;
  }
  // The nested-VMX part (nested/nested.ts).
  @inline get nested(): Nested {
    return changetype<Nested>(changetype<usize>(this) + NESTED_AT);
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
  setLaunched(l: bool): void {
    this.launched = l;
  }
  @inline countExit(): void {
    this.exits++;
  }
  setVmcs(pa: u64): void {
    this.vmcs = pa;
    this.launched = false;
  }

  // Registers and FPU state at a guest's start (the boot protocol sets
  // RAX/RBX afterwards): all zero, x87 control word 0x37F and MXCSR 0x1F80
  // as after FNINIT/reset (SDM Vol. 3A 9.1.1).
  resetRegisters(): void {
    memory.fill(this.regs, 0, V.REGS_BYTES);
    store<u16>(this.fxArea(), 0x37f); // FCW
    store<u32>(this.fxArea() + 24, 0x1f80); // MXCSR
  }
}

let freeList: Vcpu | null = null;

// The fields must end below the register block.
if (offsetof<Vcpu>() > REGS_AT) unreachable();

// A vCPU for vm with number index: registers reset, no VMCS yet.
export function create(vm: Vm, index: u32): Vcpu {
  let v: Vcpu;
  const f = freeList;
  if (f != null) {
    v = f;
    freeList = f.nextFree;
  } else {
    v = changetype<Vcpu>((heap.alloc(OBJECT_BYTES + 64) + 63) & ~(<usize>63));
    Nested.at(changetype<usize>(v) + NESTED_AT);
  }
  // vmcs01's page and the nested part's pages stay with the object across
  // reuse.
  const vmcs = v.vmcs;
  memory.fill(changetype<usize>(v), 0, offsetof<Vcpu>());
  v.vmcs = vmcs;
  v.nested.clear();
  v.vm = vm;
  v.index = index;
  v.resetRegisters();
  return v;
}

// Give v back; its VMCS pages are the caller's to free first.
export function destroy(v: Vcpu): void {
  v.nextFree = freeList;
  freeList = v;
}
