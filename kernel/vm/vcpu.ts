// The virtual CPU's state that lives outside the VMCS: the general
// registers and x87/SSE state the entry stub switches (boot/entry/
// vmenter.S), CR2, and what the exit handlers need between exits.
//
//   regs block (768 bytes, 64-byte aligned, in linear memory)
//   +0    RAX RCX RDX RBX RSP RBP RSI RDI R8 .. R15   (hardware order;
//         the RSP slot is unused: RSP is GUEST_RSP in the VMCS)
//   +128  CR2
//   +256  FXSAVE area (512 bytes)
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";

export const RAX: u32 = 0;
export const RCX: u32 = 1;
export const RDX: u32 = 2;
export const RBX: u32 = 3;
export const RSP: u32 = 4;
export const RBP: u32 = 5;
export const RSI: u32 = 6;
export const RDI: u32 = 7;

export const regs: usize = memory.data(768, 64);
const FX: usize = regs + 256;

@inline export function reg(n: u32): u64 {
  return load<u64>(regs + (<usize>n << 3));
}
@inline export function setReg(n: u32, v: u64): void {
  store<u64>(regs + (<usize>n << 3), v);
}
// General register n in hardware order as the guest sees it: RSP is
// GUEST_RSP in the current VMCS (25.4.1), the others are in the block.
export function gpr(n: u32): u64 {
  return n == RSP ? vmx.vmread(V.GUEST_RSP) : reg(n);
}
export function setGpr(n: u32, v: u64): void {
  if (n == RSP) vmx.vmwrite(V.GUEST_RSP, v);
  else setReg(n, v);
}
const CR2: usize = regs + 128;
@inline export function cr2(): u64 {
  return load<u64>(CR2);
}
@inline export function setCr2(v: u64): void {
  store<u64>(CR2, v);
}

export let vmcs: u64 = 0; // physical address of the VMCS (vmcs01)
export let launched: bool = false; // VMLAUNCH done since the last VMCLEAR
export let exits: u64 = 0; // VM exits since the guest started

export function setVmcs(pa: u64): void {
  vmcs = pa;
  launched = false;
}
export function setLaunched(v: bool): void {
  launched = v;
}
export function countExit(): void {
  exits++;
}

// Registers and FPU state at a guest's start (the multiboot entry state
// sets RAX/RBX afterwards): all zero, x87 control word 0x37F and MXCSR
// 0x1F80 as after FNINIT/reset (SDM Vol. 3A 9.1.1).
export function reset(): void {
  memory.fill(regs, 0, 768);
  store<u16>(FX, 0x37f); // FCW
  store<u32>(FX + 24, 0x1f80); // MXCSR
  launched = false;
  exits = 0;
}
