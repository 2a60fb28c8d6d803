// Guest linear-to-physical translation by walking the guest's own page
// tables (SDM Vol. 3A 4.3 32-bit paging, 4.4 PAE paging, 4.5 4-level
// paging), for the few places the hypervisor must read what the guest
// addresses linearly (the instruction at RIP for MMIO emulation). Only
// presence is checked: the hypervisor reads, the guest's permissions do not
// apply to it. Tables outside guest RAM end the walk.
//
// The same walk serves L2 (vmcs02 current): its paging structures are at
// L2-physical addresses, which a second stage maps to the guest's (L1's)
// RAM — L1's EPT when vmcs12 enables EPT (nested/eptfault.ts), nothing
// otherwise (L2-physical = L1-physical). Every table address and the final
// page go through `stage2`, as the processor's walk goes through EPT
// (SDM Vol. 3C 29.3.2: guest paging-structure accesses are translated too).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "./guestmem";

const ADDR: u64 = 0x000ffffffffff000;
const P: u64 = 1;
const PS: u64 = 1 << 7;
export const NO_TRANSLATION: u64 = u64.MAX_VALUE;

// A second-stage translation: the guest's physical address -> an address in
// the guest's RAM (guestmem.ts), or NO_TRANSLATION.
export type Stage2 = (gpa: u64) => u64;
// The guest's physical addresses are its RAM's (L1, or L2 without EPT in
// vmcs12).
export function direct(gpa: u64): u64 {
  return gpa;
}

function entry64(table: u64, index: u64, stage2: Stage2): u64 {
  const a = stage2((table & ADDR) + index * 8);
  return a != NO_TRANSLATION && guestmem.isRam(a, 8) ? guestmem.read64(a) : 0;
}

function entry32(table: u64, index: u64, stage2: Stage2): u64 {
  const a = stage2((table & 0xfffff000) + index * 4);
  return a != NO_TRANSLATION && guestmem.isRam(a, 4) ? <u64>guestmem.read32(a) : 0;
}

// The guest-physical address of linear address `lin` (before `stage2`), or
// NO_TRANSLATION.
export function translate(lin: u64, stage2: Stage2 = direct): u64 {
  const cr0 = vmx.vmread(V.GUEST_CR0);
  if ((cr0 & V.X86_CR0_PG) == 0) return lin & 0xffffffff;
  const cr4 = vmx.vmread(V.GUEST_CR4);
  const cr3 = vmx.vmread(V.GUEST_CR3);
  const lma = (vmx.vmread(V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0;
  if (lma) {
    let e = entry64(cr3, (lin >> 39) & 511, stage2);
    if ((e & P) == 0) return NO_TRANSLATION;
    e = entry64(e, (lin >> 30) & 511, stage2);
    if ((e & P) == 0) return NO_TRANSLATION;
    if ((e & PS) != 0) return (e & ADDR & ~<u64>0x3fffffff) | (lin & 0x3fffffff);
    e = entry64(e, (lin >> 21) & 511, stage2);
    if ((e & P) == 0) return NO_TRANSLATION;
    if ((e & PS) != 0) return (e & ADDR & ~<u64>0x1fffff) | (lin & 0x1fffff);
    e = entry64(e, (lin >> 12) & 511, stage2);
    if ((e & P) == 0) return NO_TRANSLATION;
    return (e & ADDR) | (lin & 0xfff);
  }
  lin &= 0xffffffff;
  if ((cr4 & V.X86_CR4_PAE) != 0) {
    // The four PDPTEs are in the VMCS (stored on VM exit with EPT, 27.3.4).
    let e = vmx.vmread(V.GUEST_PDPTE0 + <u32>((lin >> 30) << 1));
    if ((e & P) == 0) return NO_TRANSLATION;
    e = entry64(e, (lin >> 21) & 511, stage2);
    if ((e & P) == 0) return NO_TRANSLATION;
    if ((e & PS) != 0) return (e & ADDR & ~<u64>0x1fffff) | (lin & 0x1fffff);
    e = entry64(e, (lin >> 12) & 511, stage2);
    if ((e & P) == 0) return NO_TRANSLATION;
    return (e & ADDR) | (lin & 0xfff);
  }
  let e = entry32(cr3, lin >> 22, stage2);
  if ((e & P) == 0) return NO_TRANSLATION;
  if ((e & PS) != 0 && (cr4 & V.X86_CR4_PSE) != 0) {
    // 4 MiB page; PSE-36 puts physical bits 39:32 in PDE bits 20:13.
    return (e & 0xffc00000) | (((e >> 13) & 0xff) << 32) | (lin & 0x3fffff);
  }
  e = entry32(e, (lin >> 12) & 1023, stage2);
  if ((e & P) == 0) return NO_TRANSLATION;
  return (e & 0xfffff000) | (lin & 0xfff);
}

// Copy up to n bytes at guest linear address lin into linear memory at dst
// (page by page, since consecutive linear pages need not be consecutive
// physical ones). Returns the number of bytes copied.
export function readLinear(dst: usize, lin: u64, n: u32, stage2: Stage2 = direct): u32 {
  let done: u32 = 0;
  while (done < n) {
    const g = translate(lin + done, stage2);
    if (g == NO_TRANSLATION) break;
    const gpa = stage2(g);
    if (gpa == NO_TRANSLATION) break;
    const chunk = <u32>min<u64>(<u64>(n - done), 0x1000 - ((lin + done) & 0xfff));
    if (!guestmem.isRam(gpa, chunk)) break;
    guestmem.copyOut(dst + <usize>done, gpa, chunk);
    done += chunk;
  }
  return done;
}
