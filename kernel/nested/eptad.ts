// Accessed and dirty flags in L1's EPT, and page-modification logging for
// L2 (SDM Vol. 3C 29.3.5 "Accessed and Dirty Flags for EPT", 29.3.6
// "Page-Modification Logging"), emulated by L0 where L2's EPT violations
// arrive (eptfault.ts).
//
// With EPTP bit 6 = 1 in vmcs12 the processor L1 was offered sets the
// accessed flag (bit 8) of every EPT paging-structure entry it uses to
// translate an L2-physical address, and the dirty flag (bit 9) of the entry
// that maps the page on a write; accesses to guest paging structures count
// as writes (29.3.3.2). L2 runs on shadow tables (shadowept.ts) that are
// filled from EPT violations, so that L0 sees every first use:
//  - a shadow leaf exists only because an access needed it: the tables
//    start empty, and INVEPT (which the SDM asks of L1 after clearing a
//    flag, 29.4.3.4) drops them. When eptfault.ts fills one, the access has
//    used every entry of L1's walk: their accessed flags are set then;
//  - the shadow leaf of a page whose L1 leaf is not dirty is filled without
//    write permission (eptfault.ts), so the first write faults to L0, which
//    sets the dirty flag and fills the leaf again with L1's permissions;
//  - vmcs02's EPTP has bit 6 as well (the flags are offered only when the
//    processor has them, caps.ts), so the processor treats L2's guest
//    paging-structure accesses as writes against the shadow tables too, and
//    the page that holds them becomes dirty as on L1's processor. The flags
//    the processor sets in the shadow tables are L0's own.
// "Enable PML" in vmcs12 is emulated (vmcs02 does not use the processor's
// PML): before any flag is set, a PML index outside 0-511 is a
// page-modification log-full event (VM exit 62 to L1; no flag set, the
// access not done); otherwise each dirty flag set from 0 to 1 writes the
// 4-KiB-aligned L2-physical address to PML address + 8 * index and
// decrements the index (which may go from 0 to FFFFH). A log entry that
// would land outside L1's RAM is lost, as the processor's write to an
// address without memory is.
import * as V from "../arch/vmx";
import { Nested } from "./nested";
import * as guestmem from "../vm/guestmem";
import * as state from "./state";

const PML_ENTRIES: u64 = 512;
const PAGE_MASK: u64 = 0xfff;
const ADDR_MASK: u64 = 0x000ffffffffff000;
const LARGE: u64 = 1 << 7; // bit 7 of a PDPTE/PDE: it maps a page

// What update() found (the leaf L1's walk used has its dirty flag set, or
// not), or a page-modification log-full event.
export const LOG_FULL: i32 = 0;
export const CLEAN: i32 = 1;
export const DIRTY: i32 = 2;

function pmlEnabled(n: Nested): bool {
  return (<u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
    (<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_ENABLE_PML) != 0;
}

// The entries a translation of gpa2 uses, root first, after ept12.walk()
// allowed it: read again here rather than recorded by every walk, so that
// L1s without the flags pay nothing for them. Returns how many (the last
// maps the page), or 0 if L1 (on another processor) changed its tables
// since the walk so that an entry is gone or outside its RAM. The entries'
// addresses and values go to entryAddr/entryValue, scratch of one update().
const entryAddr = new StaticArray<u64>(4); // machine-wide: scratch of one update() (one exit is handled at a time)
const entryValue = new StaticArray<u64>(4); // machine-wide: scratch of one update()
function used(eptp12: u64, gpa2: u64): i32 {
  let table = eptp12 & ADDR_MASK;
  for (let i = 0; i < 4; i++) {
    const a = table + ((gpa2 >> <u64>(39 - 9 * i)) & 511) * 8;
    if (!guestmem.isRam(a, 8)) return 0;
    const e = guestmem.read64(a);
    if ((e & 7) == 0) return 0;
    unchecked(entryAddr[i] = a);
    unchecked(entryValue[i] = e);
    if (i == 3 || (i > 0 && (e & LARGE) != 0)) return i + 1;
    table = e & ADDR_MASK;
  }
  return 4;
}

// The flags for the access to gpa2 that ept12.walk() just allowed (vmcs12's
// EPTP eptp12 has bit 6): DIRTY or CLEAN, the leaf's dirty flag after the
// access. LOG_FULL when it is a page-modification log-full event instead:
// nothing was changed.
export function update(nested: Nested, eptp12: u64, gpa2: u64, write: bool): i32 {
  const n = used(eptp12, gpa2);
  // Mapped without write permission: the next access faults and walks again.
  if (n == 0) return CLEAN;
  const leaf = unchecked(entryValue[n - 1]);
  let need = write && (leaf & V.EPT_ENTRY_DIRTY) == 0;
  for (let i = 0; i < n; i++) {
    if ((unchecked(entryValue[i]) & V.EPT_ENTRY_ACCESSED) == 0) need = true;
  }
  const dirty = (leaf & V.EPT_ENTRY_DIRTY) != 0 ? DIRTY : CLEAN;
  if (!need) return dirty;
  const pml = pmlEnabled(nested);
  if (pml && state.get(nested, V.PML_INDEX) >= PML_ENTRIES) return LOG_FULL;
  // Locked updates, as the processor's: L1 may be changing these entries
  // on another processor.
  for (let i = 0; i < n - 1; i++) {
    if ((unchecked(entryValue[i]) & V.EPT_ENTRY_ACCESSED) == 0) {
      guestmem.setBits64(unchecked(entryAddr[i]), V.EPT_ENTRY_ACCESSED);
    }
  }
  const bits = V.EPT_ENTRY_ACCESSED | (write ? V.EPT_ENTRY_DIRTY : 0);
  const old = guestmem.setBits64(unchecked(entryAddr[n - 1]), bits);
  if (!write) return dirty;
  if (pml && (old & V.EPT_ENTRY_DIRTY) == 0) log(nested, gpa2);
  return DIRTY;
}

function log(n: Nested, gpa2: u64): void {
  const index = state.get(n, V.PML_INDEX);
  const a = state.get(n, V.PML_ADDRESS) + index * 8;
  if (guestmem.isRam(a, 8)) guestmem.write64(a, gpa2 & ~PAGE_MASK);
  // The index lives only in vmcs12 (vmcs02 has no PML): nothing to merge.
  state.writeSynced(n, V.PML_INDEX, (index - 1) & 0xffff);
}
