// L1's EPT, walked in software (SDM Vol. 3C 29.3 "The Extended Page Table
// Mechanism"): the translation of an L2-physical address to an L1-physical
// one through the tables vmcs12's EPT pointer names, with what the
// processor L1 was offered would decide on the way.
//
//   walk(eptp, gpa, access) -> a result w: status(w) is
//     WALK_OK          gpa1(w), perms(w), pageSize(w), leafMemType(w)
//     WALK_VIOLATION   perms(w) (bits 5:3 of the exit qualification, 28.2.1)
//     WALK_MISCONFIG   (29.3.3.1)
// The result is one u64 (layout below), a return value: a walk keeps
// nothing, so every vCPU may walk and nothing travels through globals.
//
// Misconfigurations (29.3.3.1), against what caps.eptCap() offers L1:
//  - bits 2:0 = 010b or 110b (write without read), or 100b (execute-only)
//    when execute-only is not offered;
//  - a reserved bit set: bits 51:MAXPHYADDR of any entry; bits 7:3 of a
//    PML4E; bits 6:3 of a non-leaf PDPTE/PDE; bits 29:12 of a 1-GByte and
//    20:12 of a 2-MByte leaf; bit 7 of a PDPTE when 1-GByte pages are not
//    offered (2-MByte the same for PDEs);
//  - a leaf memory type (bits 5:3) of 2, 3 or 7.
// A table L1 placed outside its RAM reads as all ones (no device answers),
// which has reserved bits set: a misconfiguration, never a read of
// hypervisor memory. A walk has at most four steps: no loops.
// The walk writes nothing: the accessed and dirty flags, when L1 enables
// them, are eptad.ts's (after a walk that allowed the access).
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as ident from "../cpu/ident";
import * as caps from "./caps";

export const WALK_OK: i32 = 0;
export const WALK_VIOLATION: i32 = 1;
export const WALK_MISCONFIG: i32 = 2;

// Access bits (as in the exit qualification, 28.2.1).
export const ACCESS_READ: u32 = 1;
export const ACCESS_WRITE: u32 = 2;
export const ACCESS_EXEC: u32 = 4;

const ADDR_MASK: u64 = 0x000ffffffffff000;

// A walk's result:
//   bits 51:0   the L1-physical address (WALK_OK; gpa's offset in the page
//               included)
//   bits 54:52  AND of bits 2:0 of the entries used (R=1, W=2, X=4)
//   bits 58:55  bits 6:3 of the leaf: memory type and ignore-PAT
//   bits 60:59  the page: 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB
//   bits 62:61  WALK_OK, WALK_VIOLATION or WALK_MISCONFIG
const ADDR52: u64 = (<u64>1 << 52) - 1;
@inline function result(status: i32, perms: u32): u64 {
  return (<u64>status << 61) | (<u64>perms << 52);
}
@inline export function status(w: u64): i32 {
  return <i32>(w >> 61) & 3;
}
@inline export function gpa1(w: u64): u64 {
  return w & ADDR52;
}
@inline export function perms(w: u64): u32 {
  return <u32>(w >> 52) & 7;
}
@inline export function leafMemType(w: u64): u64 {
  return (w >> 52) & 0x78;
}
@inline export function pageSize(w: u64): u64 {
  return <u64>1 << (12 + 9 * ((w >> 59) & 3));
}

function reservedHigh(): u64 {
  const w = <u64>ident.physAddrBits;
  return w < 52 ? (((<u64>1 << 52) - 1) & ~((<u64>1 << w) - 1)) : 0;
}

function badRwx(e: u64): bool {
  const rwx = <u32>e & 7;
  if (rwx == 2 || rwx == 6) return true;
  return rwx == 4 && (caps.eptCap() & V.EPT_VPID_CAP_EXECUTE_ONLY) == 0;
}

function badMemType(e: u64): bool {
  const t = <u32>(e >> 3) & 7;
  return t == 2 || t == 3 || t == 7;
}

function entryAt(table: u64, index: u64): u64 {
  const a = table + index * 8;
  return guestmem.isRam(a, 8) ? guestmem.read64(a) : u64.MAX_VALUE;
}

// Translate gpa (L2-physical) through L1's EPT rooted at eptp; `access` is
// the kind of access (ACCESS_*), checked against the effective permissions.
export function walk(eptp: u64, gpa: u64, access: u32): u64 {
  const high = reservedHigh();
  let table = eptp & ADDR_MASK;
  let perms: u32 = 7;
  for (let level = 4; level >= 1; level--) {
    const shift = <u64>(12 + 9 * (level - 1));
    const e = entryAt(table, (gpa >> shift) & 511);
    if ((e & 7) == 0) return result(WALK_VIOLATION, 0);
    if (badRwx(e) || (e & high) != 0) return result(WALK_MISCONFIG, perms);
    perms &= <u32>e & 7;
    const large = (e & (1 << 7)) != 0;
    let leaf = level == 1;
    if (level == 4) {
      if ((e & 0xf8) != 0) return result(WALK_MISCONFIG, perms);
    } else if (level == 3 || level == 2) {
      if (large) {
        // What L1 is offered, computed only here: most walks meet no large
        // page, and they are on the path of every EPT violation of L2.
        const cap = caps.eptCap();
        const ok = level == 3 ? (cap & V.EPT_VPID_CAP_PDPTE_1GB_PAGES) != 0 : (cap & V.EPT_VPID_CAP_PDE_2MB_PAGES) != 0;
        if (!ok) return result(WALK_MISCONFIG, perms);
        const size = <u64>1 << shift;
        if ((e & (size - 1) & ~<u64>0xfff & ADDR_MASK) != 0) return result(WALK_MISCONFIG, perms); // bits 29:12 / 20:12
        leaf = true;
      } else if ((e & 0x78) != 0) {
        return result(WALK_MISCONFIG, perms); // bits 6:3 of a non-leaf entry
      }
    }
    if (leaf) {
      if (badMemType(e)) return result(WALK_MISCONFIG, perms);
      const size = <u64>1 << shift;
      const gpa1 = (e & ADDR_MASK & ~(size - 1)) | (gpa & (size - 1));
      const st = (access & ~perms) != 0 ? WALK_VIOLATION : WALK_OK;
      return result(st, perms) | (<u64>(level - 1) << 59) | ((e & 0x78) << 52) | gpa1;
    }
    table = e & ADDR_MASK;
  }
  return result(WALK_MISCONFIG, perms); // not reached: level 1 is always a leaf
}
