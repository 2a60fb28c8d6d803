// L1's EPT, walked in software (SDM Vol. 3C 29.3 "The Extended Page Table
// Mechanism"): the translation of an L2-physical address to an L1-physical
// one through the tables vmcs12's EPT pointer names, with what the
// processor L1 was offered would decide on the way.
//
//   walk(eptp, gpa, access) -> WALK_OK          gpa1, perms, pageSize
//                              WALK_VIOLATION   perms (bits 5:3 of the exit
//                                               qualification, 28.2.1)
//                              WALK_MISCONFIG   (29.3.3.1)
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

export let gpa1: u64 = 0; // the L1-physical address (WALK_OK)
export let perms: u32 = 0; // AND of bits 2:0 of the entries used (R=1, W=2, X=4)
export let pageSize: u64 = 0; // 4 KiB, 2 MiB or 1 GiB (WALK_OK)
export let leafMemType: u64 = 0; // bits 6:3 of the leaf: memory type and ignore-PAT (WALK_OK)

const ADDR_MASK: u64 = 0x000ffffffffff000;

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
export function walk(eptp: u64, gpa: u64, access: u32): i32 {
  const cap = caps.eptCap();
  const high = reservedHigh();
  let table = eptp & ADDR_MASK;
  perms = 7;
  for (let level = 4; level >= 1; level--) {
    const shift = <u64>(12 + 9 * (level - 1));
    const e = entryAt(table, (gpa >> shift) & 511);
    if ((e & 7) == 0) {
      perms = 0;
      return WALK_VIOLATION;
    }
    if (badRwx(e) || (e & high) != 0) return WALK_MISCONFIG;
    perms &= <u32>e & 7;
    const large = (e & (1 << 7)) != 0;
    let leaf = level == 1;
    if (level == 4) {
      if ((e & 0xf8) != 0) return WALK_MISCONFIG;
    } else if (level == 3 || level == 2) {
      if (large) {
        const ok = level == 3 ? (cap & V.EPT_VPID_CAP_PDPTE_1GB_PAGES) != 0 : (cap & V.EPT_VPID_CAP_PDE_2MB_PAGES) != 0;
        if (!ok) return WALK_MISCONFIG;
        const size = <u64>1 << shift;
        if ((e & (size - 1) & ~<u64>0xfff & ADDR_MASK) != 0) return WALK_MISCONFIG; // bits 29:12 / 20:12
        leaf = true;
      } else if ((e & 0x78) != 0) {
        return WALK_MISCONFIG; // bits 6:3 of a non-leaf entry
      }
    }
    if (leaf) {
      if (badMemType(e)) return WALK_MISCONFIG;
      const size = <u64>1 << shift;
      pageSize = size;
      leafMemType = e & 0x78;
      gpa1 = (e & ADDR_MASK & ~(size - 1)) | (gpa & (size - 1));
      return (access & ~perms) != 0 ? WALK_VIOLATION : WALK_OK;
    }
    table = e & ADDR_MASK;
  }
  return WALK_MISCONFIG; // not reached: level 1 is always a leaf
}
