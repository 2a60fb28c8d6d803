// Extended page tables (SDM Vol. 3C 29.3): the guest-physical to host-
// physical translation the hypervisor builds for each guest. Four levels,
// write-back memory type, 2 MiB pages where both addresses and the length
// allow it, 4 KiB pages elsewhere. Table pages come from the page allocator
// and are all freed with the tree.
import * as mem from "../hw/mem";
import * as pages from "../mm/pages";
import * as V from "../arch/vmx";

export const EPT_READ: u64 = 1 << 0;
export const EPT_WRITE: u64 = 1 << 1;
export const EPT_EXEC: u64 = 1 << 2;
export const EPT_RWX: u64 = EPT_READ | EPT_WRITE | EPT_EXEC;
const EPT_MEMTYPE_WB: u64 = 6 << 3; // leaf bits 5:3 (29.3.7)
const EPT_LARGE: u64 = 1 << 7; // bit 7 in a PDE: maps 2 MiB
const ADDR_MASK: u64 = 0x000ffffffffff000;
const SIZE_2M: u64 = 0x200000;
const SIZE_4K: u64 = 0x1000;
// Leaf attributes a split keeps: permissions, memory type, ignore-PAT (6:0)
// and the bits above the address (63:52: suppress #VE and the rest).
const ATTR_LOW: u64 = 0x7f;
const ATTR_HIGH: u64 = 0xfff0000000000000;

// EPTP (25.6.11): memory type WB (6) in bits 2:0, page-walk length - 1 = 3
// in bits 5:3; bit 6 enables the accessed and dirty flags (29.3.5), which
// only a processor with IA32_VMX_EPT_VPID_CAP bit 21 accepts: the RAM
// snapshot asks for them (snapshot/ram.ts), no other user of a tree does.
export function eptp(root: u64, accessedDirty: bool = false): u64 {
  return root | (accessedDirty ? V.EPTP_ACCESSED_DIRTY : 0) | (3 << 3) | 6;
}

// A new, empty EPT tree; returns its PML4 page or 0 when out of memory.
export function create(): u64 {
  return pages.alloc(1);
}

// The table one level down from entry `index` of `table`, allocating it
// when absent. Returns 0 when out of memory.
function next(table: u64, index: u64): u64 {
  const ea = table + index * 8;
  const e = mem.read64(ea);
  if ((e & EPT_RWX) != 0) return e & ADDR_MASK;
  const t = pages.alloc(1);
  if (t == 0) return 0;
  // Non-leaf entries grant everything; the leaf decides (29.3.3).
  mem.write64(ea, t | EPT_RWX);
  return t;
}

// Map guest-physical [gpa, gpa+len) to host-physical [hpa, hpa+len) with
// permissions perm (EPT_READ/WRITE/EXEC) and leaf bits 6:3 `memType` (EPT
// memory type and ignore-PAT, 29.3.7; write-back by default). All three
// must be 4 KiB aligned. Returns false when out of memory for tables.
export function map(root: u64, gpa: u64, hpa: u64, len: u64, perm: u64, memType: u64 = EPT_MEMTYPE_WB): bool {
  let off: u64 = 0;
  while (off < len) {
    const g = gpa + off;
    const h = hpa + off;
    const pdpt = next(root, (g >> 39) & 511);
    if (pdpt == 0) return false;
    const pd = next(pdpt, (g >> 30) & 511);
    if (pd == 0) return false;
    if ((g & (SIZE_2M - 1)) == 0 && (h & (SIZE_2M - 1)) == 0 && len - off >= SIZE_2M) {
      mem.write64(pd + ((g >> 21) & 511) * 8, h | perm | memType | EPT_LARGE);
      off += SIZE_2M;
      continue;
    }
    const pt = next(pd, (g >> 21) & 511);
    if (pt == 0) return false;
    mem.write64(pt + ((g >> 12) & 511) * 8, h | perm | memType);
    off += SIZE_4K;
  }
  return true;
}

// One table in linear memory (split, clearLeafBits).
const scratch: usize = memory.data(4096, 8); // machine-wide: scratch

// The table of `level` (3 = PDPT, 2 = PD, 1 = PT) on the walk of gpa,
// without allocating: 0 when an entry above it is absent or maps a page.
export function table(root: u64, gpa: u64, level: i32): u64 {
  let t = root;
  for (let l = 4; l > level; l--) {
    const e = mem.read64(t + ((gpa >> <u64>(12 + 9 * (l - 1))) & 511) * 8);
    if ((e & EPT_RWX) == 0 || (l < 4 && (e & EPT_LARGE) != 0)) return 0;
    t = e & ADDR_MASK;
  }
  return t;
}

// Replace the 2-MiB leaves in [gpa, gpa+len) (2 MiB aligned) by tables of
// 512 4-KiB leaves that map the same memory with the same attributes (bits
// 6:0 and 63:52 carried over; the accessed and dirty flags dropped), so
// that permissions and dirty flags apply per 4-KiB page. Ranges already
// mapped with 4-KiB pages are left alone. The new tables are freed with
// the tree. The caller invalidates cached translations (29.4.3.4) when the
// tree is in use. Returns false when out of memory for tables (the part
// split so far stays split: the mapping is the same either way).
export function split(root: u64, gpa: u64, len: u64): bool {
  for (let g = gpa; g < gpa + len; g += SIZE_2M) {
    const pd = table(root, g, 2);
    if (pd == 0) continue;
    const ea = pd + ((g >> 21) & 511) * 8;
    const e = mem.read64(ea);
    if ((e & EPT_RWX) == 0 || (e & EPT_LARGE) == 0) continue;
    const pt = pages.alloc(1);
    if (pt == 0) return false;
    const attrs = e & (ATTR_LOW | ATTR_HIGH);
    const base = e & ADDR_MASK & ~(SIZE_2M - 1);
    // Built in linear memory, written with one import call.
    for (let i: u64 = 0; i < 512; i++) store<u64>(scratch + <usize>(i * 8), (base + i * SIZE_4K) | attrs);
    mem.copyout(pt, scratch, 4096);
    mem.write64(ea, pt | EPT_RWX);
  }
  return true;
}

// Clear `bits` in every leaf of the tree (4-KiB, 2-MiB and 1-GiB pages);
// the caller invalidates cached translations (29.4.3.4). Each table is read
// into linear memory whole: one import call instead of 512.
function clearLevel(t: u64, level: i32, bits: u64): void {
  mem.copyin(scratch, t, 4096);
  for (let i: u64 = 0; i < 512; i++) {
    const e = load<u64>(scratch + <usize>(i * 8));
    if ((e & EPT_RWX) == 0) continue;
    if (level == 1 || (level < 4 && (e & EPT_LARGE) != 0)) {
      if ((e & bits) != 0) mem.write64(t + i * 8, e & ~bits);
    } else {
      clearLevel(e & ADDR_MASK, level - 1, bits);
      // The scratch page now holds the level below: read this one again.
      mem.copyin(scratch, t, 4096);
    }
  }
}
export function clearLeafBits(root: u64, bits: u64): void {
  if (root != 0) clearLevel(root, 4, bits);
}

// Free every table page of the tree (not the memory it maps).
function freeLevel(table: u64, level: i32): void {
  if (level > 1) {
    for (let i: u64 = 0; i < 512; i++) {
      const e = mem.read64(table + i * 8);
      if ((e & EPT_RWX) == 0) continue;
      if (level == 2 && (e & EPT_LARGE) != 0) continue;
      freeLevel(e & ADDR_MASK, level - 1);
    }
  }
  pages.free(table, 1);
}

export function destroy(root: u64): void {
  if (root != 0) freeLevel(root, 4);
}
