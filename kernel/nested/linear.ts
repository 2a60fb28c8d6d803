// Data accesses to L1's linear memory made for an emulated instruction, as
// the processor would make them at CPL 0 (SDM Vol. 3A ch. 4): the guest's
// own paging structures are walked (32-bit, PAE, 4-level and 5-level
// paging), with the checks that can fault a supervisor data access:
// presence, reserved bits (4.7), write protection with CR0.WP and SMAP
// (4.6.1); accessed and dirty flags are set as the processor sets them
// (4.8). A failed check is a #PF to L1 with the error code the processor
// would report. kernel/vm/paging.ts, which only looks for presence (it
// serves the hypervisor's own reads of guest code), is not enough for this.
//
// Not modelled: protection keys (CR4.PKE/PKS; PKRU is guest state the
// hypervisor does not hold) and 1-GByte-page support checks (the processor
// offers them: CPUID is passed through).
//
// A paging structure or a data page outside L1's RAM is an access the
// processor would have made through EPT: an EPT violation, which stops the
// VM (as misc.ts does for any unbacked access). Here it is reported the
// same way.
//
// The same walk serves L2's VMREAD/VMWRITE that L0 performs for vmcs12's
// VMCS shadowing (shadow12.ts; vmcs02 is current, so the registers read
// are L2's). When vmcs12 enables EPT, the physical addresses L2's paging
// produces are L2-physical: each paging-structure entry and the operand go
// through L1's EPT (ept12.ts) to the L1-physical address that is read or
// written, and a walk that fails is what the processor reports to L1: an
// EPT misconfiguration (exit 49) or an EPT violation (exit 48; 28.2.1 Table
// 28-7: the access in bits 2:0 — a read for paging-structure entries, EPT
// accessed/dirty flags not being offered —, the AND of L1's entries in
// 5:3, guest-linear address valid (7), bit 8 set for the operand's own
// translation and clear for a paging-structure entry), with L2's
// guest-physical and linear addresses. The instruction does not complete.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as events from "../vm/events";
import * as guestmem from "../vm/guestmem";
import * as config from "../vm/config";
import * as ident from "../cpu/ident";
import { RESUME, STOP, stop } from "../vm/exits";
import * as common from "./common";
import * as state from "./state";
import * as ept12 from "./ept12";
import * as reflect from "./reflect";
import { Vcpu } from "../vm/vcpu";

// Access results.
export const OK: i32 = 0;
export const FAULT: i32 = 1; // an exception was injected: the instruction does not complete
export const HALT: i32 = 2; // the VM must stop (reported)
export const EXITED: i32 = 3; // an EPT exit from L2 was reflected to L1, which runs next
export const STOPPED: i32 = 4; // reflecting that exit stopped the VM (a VMX abort, reported)

// The handler result for FAULT, HALT, EXITED or STOPPED.
export function handlerResult(vcpu: Vcpu, r: i32): i32 {
  if (r == EXITED) return RESUME;
  if (r == STOPPED) return STOP;
  return r == HALT ? stop(vcpu, config.OUTCOME_EPT_VIOLATION) : RESUME;
}

// What the walk's steps return: an address, or a failure (bit 63 set, the
// access result in the low byte).
const FAILED: u64 = <u64>1 << 63;
@inline function failed(a: u64): bool {
  return <i64>a < 0;
}
@inline function failure(r: i32): u64 {
  return FAILED | <u64>r;
}
@inline function resultOf(a: u64): i32 {
  return <i32>(a & 0xff);
}

// The address accessed for physical address `a` of the walk (paging-
// structure entry, or the operand when `final`): `a` itself, or for L2
// under vmcs12's EPT its translation through L1's EPT (see the top); a
// failure EXITED or STOPPED once the EPT exit is reflected.
function throughEpt12(vcpu: Vcpu, a: u64, write: bool, lin: u64, final: bool): u64 {
  const n = vcpu.nested;
  if (!n.inL2 || !state.eptEnabled(n)) return a;
  const w = ept12.walk(state.get(n, V.EPT_POINTER), a, write ? ept12.ACCESS_WRITE : ept12.ACCESS_READ);
  const r = ept12.status(w);
  if (r == ept12.WALK_OK) return ept12.gpa1(w);
  state.write(n, V.GUEST_PHYSICAL_ADDRESS, a);
  let x: i32;
  if (r == ept12.WALK_MISCONFIG) {
    state.write(n, V.GUEST_LINEAR_ADDRESS, 0);
    x = reflect.reflectSynthetic(vcpu, V.EXIT_REASON_EPT_MISCONFIG, 0, 0);
  } else {
    state.write(n, V.GUEST_LINEAR_ADDRESS, lin);
    const q = <u64>(write ? ept12.ACCESS_WRITE : ept12.ACCESS_READ) | (<u64>ept12.perms(w) << 3) | (1 << 7) |
      (final ? 1 << 8 : 0);
    x = reflect.reflectSynthetic(vcpu, V.EXIT_REASON_EPT_VIOLATION, q, 0);
  }
  return failure(x == RESUME ? EXITED : STOPPED);
}

// #PF error code bits (4.7).
const PF_P: u32 = 1 << 0;
const PF_W: u32 = 1 << 1;
const PF_RSVD: u32 = 1 << 3;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const XD: u64 = <u64>1 << 63;

// Paging-structure entries used by the walk, for the accessed flags: their
// guest-physical addresses (the flags are in the low dword of every format).
const used = new StaticArray<u64>(5); // machine-wide: scratch of one translate() (one exit is handled at a time)

function fault(vcpu: Vcpu, lin: u64, error: u32): u64 {
  events.injectPF(vcpu, lin, error);
  return failure(FAULT);
}

function outsideRam(what: string, addr: u64, lin: u64): i32 {
  print.str("hv: guest: ");
  print.str(what);
  print.str(" at guest-physical ");
  print.hex(addr);
  print.str(" for linear address ");
  print.hex(lin);
  print.str(" of an emulated VMX instruction's operand is outside its RAM");
  print.nl();
  return HALT;
}

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

// Translate linear address lin for a supervisor data access (write or
// read): its guest-physical address, or a failure: FAULT (#PF injected),
// HALT, EXITED or STOPPED.
function translate(vcpu: Vcpu, lin: u64, write: bool): u64 {
  const cr0 = vmx.vmread(V.GUEST_CR0);
  // Without paging, linear addresses are physical (32 bits, 4.1.1).
  if ((cr0 & V.X86_CR0_PG) == 0) return throughEpt12(vcpu, lin & 0xffffffff, write, lin, true);
  let usedCount = 0;
  const cr4 = vmx.vmread(V.GUEST_CR4);
  const efer = vmx.vmread(V.GUEST_IA32_EFER);
  const wp = (cr0 & V.X86_CR0_WP) != 0;
  const errW: u32 = write ? PF_W : 0;
  let writable = true;
  let user = true;
  let leaf: u64 = 0; // the entry that maps the page
  let pageMask: u64 = 0xfff;

  if ((efer & V.X86_EFER_LMA) != 0 || (cr4 & V.X86_CR4_PAE) != 0) {
    const rsvd = reservedMask((efer & V.X86_EFER_NXE) != 0);
    const amask = addrMask();
    let table: u64;
    let level: i32;
    if ((efer & V.X86_EFER_LMA) != 0) {
      level = (cr4 & V.X86_CR4_LA57) != 0 ? 5 : 4;
      table = vmx.vmread(V.GUEST_CR3) & amask;
    } else {
      // PAE: the PDPTE comes from the VMCS, where the processor saved the
      // four PDPTEs on the VM exit (EPT in use, 27.3.4); it has no R/W or
      // U/S bits (4.4.1) and its reserved bits were checked when loaded.
      lin &= 0xffffffff;
      const pdpte = vmx.vmread(V.GUEST_PDPTE0 + <u32>((lin >> 30) << 1));
      if ((pdpte & P) == 0) return fault(vcpu, lin, errW);
      table = pdpte & amask;
      level = 2;
    }
    while (true) {
      const shift = <u64>(12 + 9 * (level - 1));
      const ea = throughEpt12(vcpu, table + ((lin >> shift) & 511) * 8, false, lin, false);
      if (failed(ea)) return ea;
      if (!guestmem.isRam(ea, 8)) return failure(outsideRam("a paging-structure entry", ea, lin));
      const e = guestmem.read64(ea);
      if ((e & P) == 0) return fault(vcpu, lin, errW);
      let r = rsvd;
      const large = (e & PS) != 0 && (level == 2 || level == 3);
      if (level >= 4) r |= PS; // PS is reserved in PML4Es and PML5Es
      if (large) r |= level == 3 ? <u64>0x3fffe000 : <u64>0x1fe000; // bits 29:13 / 20:13
      if ((e & r) != 0) return fault(vcpu, lin, PF_P | errW | PF_RSVD);
      if ((e & RW) == 0) writable = false;
      if ((e & US) == 0) user = false;
      used[usedCount++] = ea;
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
    const pdeAddr = throughEpt12(vcpu, (vmx.vmread(V.GUEST_CR3) & 0xfffff000) + (lin >> 22) * 4, false, lin, false);
    if (failed(pdeAddr)) return pdeAddr;
    if (!guestmem.isRam(pdeAddr, 4)) return failure(outsideRam("a paging-structure entry", pdeAddr, lin));
    const pde = <u64>guestmem.read32(pdeAddr);
    if ((pde & P) == 0) return fault(vcpu, lin, errW);
    if ((pde & RW) == 0) writable = false;
    if ((pde & US) == 0) user = false;
    used[usedCount++] = pdeAddr;
    if ((pde & PS) != 0 && (cr4 & V.X86_CR4_PSE) != 0) {
      // Bit 21 is reserved; bits 20:13 hold physical-address bits 39:32
      // (PSE-36), those at or above the physical-address width reserved.
      const m = ident.physAddrBits < 32 ? 32 : ident.physAddrBits < 40 ? ident.physAddrBits : 40;
      const r: u64 = (<u64>1 << 21) | (((<u64>1 << 21) - (<u64>1 << (13 + m - 32))) & 0x1fe000);
      if ((pde & r) != 0) return fault(vcpu, lin, PF_P | errW | PF_RSVD);
      leaf = (pde & 0xffc00000) | (((pde >> 13) & 0xff) << 32);
      pageMask = 0x3fffff;
    } else {
      const pteAddr = throughEpt12(vcpu, (pde & 0xfffff000) + ((lin >> 12) & 1023) * 4, false, lin, false);
      if (failed(pteAddr)) return pteAddr;
      if (!guestmem.isRam(pteAddr, 4)) return failure(outsideRam("a paging-structure entry", pteAddr, lin));
      const pte = <u64>guestmem.read32(pteAddr);
      if ((pte & P) == 0) return fault(vcpu, lin, errW);
      if ((pte & RW) == 0) writable = false;
      if ((pte & US) == 0) user = false;
      used[usedCount++] = pteAddr;
      leaf = pte & 0xfffff000;
    }
  }

  // Access rights of a supervisor-mode data access (4.6.1).
  if (write && wp && !writable) return fault(vcpu, lin, PF_P | PF_W);
  if (user && (cr4 & V.X86_CR4_SMAP) != 0 && (vmx.vmread(V.GUEST_RFLAGS) & V.X86_RFLAGS_AC) == 0)
    return fault(vcpu, lin, PF_P | errW);

  const pa = throughEpt12(vcpu, (leaf & ~pageMask) | (lin & pageMask), write, lin, true);
  if (failed(pa)) return pa;
  // Accessed flags in every entry used, dirty in the one that maps the page
  // on a write (4.8).
  for (let i = 0; i < usedCount; i++) {
    const ea = unchecked(used[i]);
    let lo = <u64>guestmem.read32(ea);
    let nv = lo | A;
    if (write && i == usedCount - 1) nv |= D;
    if (nv != lo) guestmem.write32(ea, <u32>nv);
  }
  return pa;
}

// Copy `len` bytes (at most a page) between linear address lin, which may
// cross into the next page, and buf (to the guest when `write`): both
// pages are translated (and checked) before any byte moves. OK, or FAULT,
// HALT, EXITED, STOPPED.
function copy(vcpu: Vcpu, lin: u64, len: u32, write: bool, wrap32: bool, buf: usize): i32 {
  const inPage = <u32>(0x1000 - (lin & 0xfff));
  const firstLen = len <= inPage ? len : inPage;
  const first = translate(vcpu, lin, write);
  if (failed(first)) return resultOf(first);
  if (!guestmem.isRam(first, <u64>firstLen)) return outsideRam("data", first, lin);
  let second: u64 = 0;
  if (firstLen < len) {
    let next = (lin | 0xfff) + 1;
    if (wrap32) next &= 0xffffffff;
    second = translate(vcpu, next, write);
    if (failed(second)) return resultOf(second);
    if (!guestmem.isRam(second, <u64>(len - firstLen))) return outsideRam("data", second, next);
  }
  if (write) {
    guestmem.copyIn(first, buf, firstLen);
    if (firstLen < len) guestmem.copyIn(second, buf + <usize>firstLen, len - firstLen);
  } else {
    guestmem.copyOut(buf, first, firstLen);
    if (firstLen < len) guestmem.copyOut(buf + <usize>firstLen, second, len - firstLen);
  }
  return OK;
}

// Read `len` bytes at lin into buf; write `len` bytes from buf to lin
// (wrap32: the address wraps at 4 GiB, outside 64-bit mode).
export function read(vcpu: Vcpu, lin: u64, len: u32, wrap32: bool, buf: usize): i32 {
  return copy(vcpu, lin, len, false, wrap32, buf);
}
export function write(vcpu: Vcpu, lin: u64, len: u32, wrap32: bool, buf: usize): i32 {
  return copy(vcpu, lin, len, true, wrap32, buf);
}
