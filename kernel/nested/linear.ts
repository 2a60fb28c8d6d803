// Data accesses to the guest's linear memory made for an emulated VMX
// instruction (its memory operand, operand.ts), as the processor would make
// them at CPL 0: the guest's page walk (kernel/vm/paging.ts: 32-bit, PAE,
// 4-level and 5-level paging, with the checks of a supervisor data access
// and the accessed and dirty flags set) and what its failures mean here. A
// failed check is a #PF to the guest with the error code the processor
// would report.
//
// A paging structure or a data page outside L1's RAM is an access the
// processor would have made through EPT: an EPT violation, which stops the
// VM (as misc.ts does for any unbacked access). Here it is reported the
// same way.
//
// The same walk serves L2's VMREAD/VMWRITE that L0 performs for vmcs12's
// VMCS shadowing (shadow12.ts; vmcs02 is current, so the registers read
// are L2's). When vmcs12 enables EPT, the physical addresses L2's paging
// produces are L2-physical: the walk's second stage takes each
// paging-structure entry and the operand through L1's EPT (ept12.ts) to the
// L1-physical address that is read or written, and a walk that fails is
// what the processor reports to L1: an EPT misconfiguration (exit 49) or an
// EPT violation (exit 48; 28.2.1 Table 28-7: the access in bits 2:0 — a
// read for paging-structure entries, EPT accessed/dirty flags not being
// offered —, the AND of L1's entries in 5:3, guest-linear address valid
// (7), bit 8 set for the operand's own translation and clear for a
// paging-structure entry), with L2's guest-physical and linear addresses.
// The instruction does not complete.
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as events from "../vm/events";
import * as guestmem from "../vm/guestmem";
import * as paging from "../vm/paging";
import * as config from "../vm/config";
import { RESUME, STOP, stop } from "../vm/exits";
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

// What translate() returns: an address, or a failure (bit 63 set, the
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

// The walk's second stage for L2 under vmcs12's EPT (see the top): the
// L1-physical address of L2-physical `a` (a paging-structure entry, or the
// operand when `final`), or, once the EPT exit is reflected, paging.STAGE2
// with EXITED or STOPPED as its detail.
function throughEpt12(vcpu: Vcpu, a: u64, access: u32, lin: u64, final: bool): u64 {
  const n = vcpu.nested;
  const write = (access & paging.WRITE) != 0;
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
  return paging.STAGE2 | <u64>(x == RESUME ? EXITED : STOPPED);
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

// Translate linear address lin for a supervisor data access (write or
// read) through vm/paging.ts's walk: its guest-physical address, or a
// failure: FAULT (#PF injected), HALT, EXITED or STOPPED.
function translate(vcpu: Vcpu, lin: u64, write: bool): u64 {
  const n = vcpu.nested;
  const stage2 = n.inL2 && state.eptEnabled(n) ? throughEpt12 : paging.direct;
  const r = paging.translate(vcpu, lin, write ? paging.WRITE : 0, stage2);
  if (!paging.failed(r)) return r;
  const k = paging.kind(r);
  if (k == paging.PAGE_FAULT) {
    events.injectPF(vcpu, lin, <u32>paging.detail(r));
    return failure(FAULT);
  }
  if (k == paging.OUTSIDE_RAM) return failure(outsideRam("a paging-structure entry", paging.detail(r), lin));
  return failure(<i32>paging.detail(r)); // STAGE2: throughEpt12's EXITED or STOPPED
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
