// The guest's page walk (SDM Vol. 3A ch. 4): a linear address of the guest
// of the current VMCS (L1, or L2 while vmcs02 is current) translated through
// its own paging structures — 32-bit, PAE, 4-level and 5-level paging — as
// the processor translates it for one access, with the checks that can
// fault that access: presence, reserved bits (4.7), access rights (4.6:
// user/supervisor, write protection with CR0.WP, SMAP with RFLAGS.AC, SMEP,
// execute-disable); and the accessed and dirty flags the processor sets
// (4.8). The one walk for every access the hypervisor makes on a guest's
// behalf: the bytes of the instruction behind an MMIO exit (decode.ts), the
// memory operands of emulated VMX instructions (nested/linear.ts), string
// I/O when it comes.
//
// Not modelled: protection keys (CR4.PKE/PKS; PKRU is guest state the
// hypervisor does not hold), 1-GByte-page support checks (the processor
// offers them: CPUID is passed through), HLAT paging.
//
// A second stage: the addresses the guest's paging produces are its
// physical addresses, and each of them — every paging-structure entry and
// the final page — goes through `stage2` to an address in the guest's RAM
// (guestmem.ts) before it is read, as the processor's walk goes through EPT
// (SDM Vol. 3C 29.3.2: guest paging-structure accesses are translated too).
// For L1, and L2 without EPT in vmcs12, that is the identity (`direct`);
// for L2 with EPT in vmcs12, L1's EPT (kernel/nested/), which reports its
// own failures (an EPT exit reflected to L1, or nothing when the hypervisor
// only reads) and returns STAGE2.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as ident from "../cpu/ident";
import * as guestmem from "./guestmem";
import { Vcpu } from "./vcpu";

// Kinds of access, as bits of the #PF error code (4.7); 0 is a supervisor
// data read.
export const WRITE: u32 = 1 << 1;
export const USER: u32 = 1 << 2; // made at CPL 3
export const FETCH: u32 = 1 << 4; // an instruction fetch
// Not the processor's: the hypervisor looks again at what the processor
// has already accessed (the instruction of an exit). The checks apply, the
// accessed and dirty flags are left as they are.
export const PEEK: u32 = 1 << 16;

// What translate() returns: an address in the guest's RAM space (below
// 2^52), or a failure: bit 63 set, its kind in bits 62:60, a detail in bits
// 51:0.
export const PAGE_FAULT: u64 = <u64>0x8 << 60; // detail: the #PF error code
export const OUTSIDE_RAM: u64 = <u64>0x9 << 60; // detail: the address of a paging-structure entry outside the guest's RAM
export const STAGE2: u64 = <u64>0xa << 60; // the second stage failed (and reported it); detail: what the second stage says of it
const KIND: u64 = <u64>0xf << 60;
const DETAIL: u64 = (<u64>1 << 52) - 1;
@inline export function failed(r: u64): bool {
  return <i64>r < 0;
}
@inline export function kind(r: u64): u64 {
  return r & KIND;
}
@inline export function detail(r: u64): u64 {
  return r & DETAIL;
}

// A second stage: the guest-physical address `gpa` met by vcpu's walk for
// linear address `lin` — a paging-structure entry, read, or the page
// accessed (`final`, with the access's kind) — to an address in the
// guest's RAM space, or STAGE2.
export type Stage2 = (vcpu: Vcpu, gpa: u64, access: u32, lin: u64, final: bool) => u64;
// The guest's physical addresses are its RAM's (L1, or L2 without EPT in
// vmcs12).
export function direct(vcpu: Vcpu, gpa: u64, access: u32, lin: u64, final: bool): u64 {
  return gpa;
}

// #PF error-code bits beside the access's own (4.7).
const PF_P: u32 = 1 << 0;
const PF_RSVD: u32 = 1 << 3;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const XD: u64 = <u64>1 << 63;

// The paging-structure entries the walk used, for the accessed flags: their
// addresses in the guest's RAM (the flags are in the low dword of every
// format). Scratch of one walk.
const used = new StaticArray<u64>(5); // machine-wide: scratch of one walk (one exit is handled at a time)

// Bits 51:M of an entry (M = physical-address width) are reserved, bit 63
// too without EFER.NXE (4.5.4 Table 4-20 and 4.4.2).
function reservedMask(nxe: bool): u64 {
  const m = ident.physAddrBits;
  let r: u64 = m < 52 ? ((<u64>1 << 52) - (<u64>1 << m)) : 0;
  if (!nxe) r |= XD;
  return r;
}

function addrMask(): u64 {
  const m = ident.physAddrBits < 52 ? ident.physAddrBits : 52;
  return ((<u64>1 << m) - 1) & ~(<u64>0xfff);
}

// The RAM address of the paging-structure entry of `size` bytes at
// guest-physical `a`, or a failure.
function entryAt(vcpu: Vcpu, a: u64, size: u64, lin: u64, stage2: Stage2): u64 {
  const ea = stage2(vcpu, a, 0, lin, false);
  if (failed(ea)) return ea;
  return guestmem.isRam(ea, size) ? ea : OUTSIDE_RAM | ea;
}

// Translate linear address `lin` of vcpu's guest (the current VMCS's) for
// an access of kind `access` (WRITE, USER, FETCH, PEEK). The address in the guest's RAM space (guestmem.ts;
// the caller checks that its bytes are RAM), or a failure (PAGE_FAULT |
// error code, OUTSIDE_RAM | entry address, STAGE2); nothing is injected.
export function translate(vcpu: Vcpu, lin: u64, access: u32, stage2: Stage2 = direct): u64 {
  const cr0 = vmx.vmread(V.GUEST_CR0);
  // Without paging, linear addresses are physical (32 bits, 4.1.1).
  if ((cr0 & V.X86_CR0_PG) == 0) return stage2(vcpu, lin & 0xffffffff, access, lin, true);
  const cr4 = vmx.vmread(V.GUEST_CR4);
  const efer = vmx.vmread(V.GUEST_IA32_EFER);
  const lma = (efer & V.X86_EFER_LMA) != 0;
  const nxe = (efer & V.X86_EFER_NXE) != 0;
  const write = (access & WRITE) != 0;
  const user = (access & USER) != 0;
  const fetch = (access & FETCH) != 0;
  // The error code of a #PF for this access: W/R and U/S as the access;
  // I/D for a fetch when SMEP, or PAE paging with NXE, can fault one (4.7).
  let err = access & (WRITE | USER);
  if (fetch && ((cr4 & V.X86_CR4_SMEP) != 0 || (nxe && (cr4 & V.X86_CR4_PAE) != 0))) err |= FETCH;
  let writable = true; // R/W = 1 in every entry used
  let userPage = true; // U/S = 1 in every entry used
  let noExec = false; // XD = 1 in some entry used
  let leaf: u64 = 0; // the page frame
  let pageMask: u64 = 0xfff;
  let n = 0;

  if (lma || (cr4 & V.X86_CR4_PAE) != 0) {
    const rsvd = reservedMask(nxe);
    const amask = addrMask();
    let table: u64;
    let level: i32;
    if (lma) {
      level = (cr4 & V.X86_CR4_LA57) != 0 ? 5 : 4;
      table = vmx.vmread(V.GUEST_CR3) & amask;
    } else {
      // PAE: the PDPTE comes from the VMCS, where the processor saved the
      // four PDPTEs on the VM exit (EPT in use, 27.3.4); it has no R/W, U/S
      // or XD bits (4.4.1) and its reserved bits were checked when loaded.
      lin &= 0xffffffff;
      const pdpte = vmx.vmread(V.GUEST_PDPTE0 + <u32>((lin >> 30) << 1));
      if ((pdpte & P) == 0) return PAGE_FAULT | err;
      table = pdpte & amask;
      level = 2;
    }
    while (true) {
      const shift = <u64>(12 + 9 * (level - 1));
      const ea = entryAt(vcpu, table + ((lin >> shift) & 511) * 8, 8, lin, stage2);
      if (failed(ea)) return ea;
      const e = guestmem.read64(ea);
      if ((e & P) == 0) return PAGE_FAULT | err;
      let r = rsvd;
      const large = (e & PS) != 0 && (level == 2 || level == 3);
      if (level >= 4) r |= PS; // PS is reserved in PML4Es and PML5Es
      if (large) r |= level == 3 ? <u64>0x3fffe000 : <u64>0x1fe000; // bits 29:13 / 20:13
      if ((e & r) != 0) return PAGE_FAULT | err | PF_P | PF_RSVD;
      if ((e & RW) == 0) writable = false;
      if ((e & US) == 0) userPage = false;
      if ((e & XD) != 0) noExec = true; // reserved (above) without NXE
      unchecked(used[n++] = ea);
      if (level == 1 || large) {
        leaf = e & amask;
        pageMask = (<u64>1 << shift) - 1;
        break;
      }
      table = e & amask;
      level--;
    }
  } else {
    // 32-bit paging (4.3): 4-KByte pages, and 4-MByte pages with CR4.PSE.
    lin &= 0xffffffff;
    const pdeAddr = entryAt(vcpu, (vmx.vmread(V.GUEST_CR3) & 0xfffff000) + (lin >> 22) * 4, 4, lin, stage2);
    if (failed(pdeAddr)) return pdeAddr;
    const pde = <u64>guestmem.read32(pdeAddr);
    if ((pde & P) == 0) return PAGE_FAULT | err;
    if ((pde & RW) == 0) writable = false;
    if ((pde & US) == 0) userPage = false;
    unchecked(used[n++] = pdeAddr);
    if ((pde & PS) != 0 && (cr4 & V.X86_CR4_PSE) != 0) {
      // Bit 21 is reserved; bits 20:13 hold physical-address bits 39:32
      // (PSE-36), those at or above the physical-address width reserved.
      const m = ident.physAddrBits < 32 ? 32 : ident.physAddrBits < 40 ? ident.physAddrBits : 40;
      const r: u64 = (<u64>1 << 21) | (((<u64>1 << 21) - (<u64>1 << (13 + m - 32))) & 0x1fe000);
      if ((pde & r) != 0) return PAGE_FAULT | err | PF_P | PF_RSVD;
      leaf = (pde & 0xffc00000) | (((pde >> 13) & 0xff) << 32);
      pageMask = 0x3fffff;
    } else {
      const pteAddr = entryAt(vcpu, (pde & 0xfffff000) + ((lin >> 12) & 1023) * 4, 4, lin, stage2);
      if (failed(pteAddr)) return pteAddr;
      const pte = <u64>guestmem.read32(pteAddr);
      if ((pte & P) == 0) return PAGE_FAULT | err;
      if ((pte & RW) == 0) writable = false;
      if ((pte & US) == 0) userPage = false;
      unchecked(used[n++] = pteAddr);
      leaf = pte & 0xfffff000;
    }
  }

  // Access rights (4.6).
  if (user) {
    // CPL 3: user-mode addresses only; writes need R/W everywhere whatever
    // CR0.WP; fetches need XD clear.
    if (!userPage || (write && !writable) || (fetch && noExec)) return PAGE_FAULT | err | PF_P;
  } else if (fetch) {
    // Supervisor fetches: XD clear, and with SMEP not from a user-mode address.
    if (noExec || (userPage && (cr4 & V.X86_CR4_SMEP) != 0)) return PAGE_FAULT | err | PF_P;
  } else {
    // Supervisor data: writes need R/W everywhere when CR0.WP; with SMAP, a
    // user-mode address only with RFLAGS.AC set (an explicit access).
    if (write && !writable && (cr0 & V.X86_CR0_WP) != 0) return PAGE_FAULT | err | PF_P;
    if (userPage && (cr4 & V.X86_CR4_SMAP) != 0 && (vmx.vmread(V.GUEST_RFLAGS) & V.X86_RFLAGS_AC) == 0)
      return PAGE_FAULT | err | PF_P;
  }

  const g = stage2(vcpu, (leaf & ~pageMask) | (lin & pageMask), access, lin, true);
  if (failed(g) || (access & PEEK) != 0) return g;
  // Accessed flags in every entry used, dirty in the one that maps the page
  // on a write (4.8).
  for (let i = 0; i < n; i++) {
    const ea = unchecked(used[i]);
    const lo = <u64>guestmem.read32(ea);
    let nv = lo | A;
    if (write && i == n - 1) nv |= D;
    if (nv != lo) guestmem.write32(ea, <u32>nv);
  }
  return g;
}

// Copy up to n bytes at guest linear address lin into linear memory at dst
// (page by page, since consecutive linear pages need not be consecutive
// physical ones), each page translated for `access`. Returns the number of
// bytes copied: fewer when a page cannot be.
export function readLinear(vcpu: Vcpu, dst: usize, lin: u64, n: u32, access: u32, stage2: Stage2 = direct): u32 {
  let done: u32 = 0;
  while (done < n) {
    const a = translate(vcpu, lin + done, access, stage2);
    if (failed(a)) break;
    const chunk = <u32>min<u64>(<u64>(n - done), 0x1000 - ((lin + done) & 0xfff));
    if (!guestmem.isRam(a, chunk)) break;
    guestmem.copyOut(dst + <usize>done, a, chunk);
    done += chunk;
  }
  return done;
}
