// Shadow EPT: what L2 runs on when vmcs12 enables EPT (SDM Vol. 3C 29.3).
// The processor walks one EPT, so vmcs02's EPT pointer names tables of
// ours that compose L1's EPT (L2-physical → L1-physical, ept12.ts) with
// L0's own (L1-physical → host-physical, guestmem.ts). They start empty
// and are filled one 4-KiB page at a time from L2's EPT violations
// (eptfault.ts), with the permissions of L1's walk.
//
// Roots are cached by L1's EPTP (bits 51:12 and the walk attributes), at
// most ROOTS of them; when a new one is needed the least recently used is
// dropped. Returning to an EPTP L1 used before (a VM entry with another
// EPT pointer, a VMFUNC EPTP switch) reuses its tables. INVEPT drops the
// matching roots (single-context: the roots with that EPTP's bits 51:12;
// all-context: all), which is when L1's changes of its tables must take
// effect (29.4.3.4): until then a stale shadow entry is a translation the
// processor may cache, which the SDM allows.
//
// Our EPT pointer for a root has L1's bit 6 (accessed and dirty flags,
// offered only when the processor has them): with it the processor treats
// L2's guest paging-structure accesses as writes, as L1's would (eptad.ts).
// Roots are keyed by the whole EPTP, so a root is only ever used with one
// setting of the bit (29.4.3.4 asks for INVEPT before an EP4TA is used
// with the other).
//
// A dropped root's tables are freed; the processor may still cache
// mappings tagged with its EP4TA, so every drop is followed by INVEPT
// single-context of the shadow EPTP before the pages can be reused.
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as hwcaps from "../vmx/caps";
import * as V from "../arch/vmx";
import * as ept from "../ept/ept";

const ROOTS: i32 = 4;
const keys = new StaticArray<u64>(ROOTS); // L1's EPTP (bits 51:12 + 11:0), 0 = free slot
const roots = new StaticArray<u64>(ROOTS); // our PML4 (host-physical)
const used = new StaticArray<u64>(ROOTS); // LRU stamp
let clock: u64 = 0;

export let builds: u64 = 0; // roots created (cold)
export let hits: u64 = 0; // rootFor() found the root cached
export let fills: u64 = 0; // 4-KiB mappings added from EPT violations

const ADDR_MASK: u64 = 0x000ffffffffff000;

function flush(root: u64): void {
  if ((hwcaps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_SINGLE_CONTEXT) != 0) vmx.invept(V.INVEPT_TYPE_SINGLE_CONTEXT, ept.eptp(root));
  else vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);
}

function dropSlot(i: i32): void {
  const r = unchecked(roots[i]);
  if (r != 0) {
    ept.destroy(r);
    flush(r);
  }
  unchecked(keys[i] = 0);
  unchecked(roots[i] = 0);
}

function pointer(root: u64, eptp12: u64): u64 {
  return ept.eptp(root) | (eptp12 & V.EPTP_ACCESSED_DIRTY);
}

// Our EPT pointer for L1's eptp12 if its root is cached, else 0. A cached
// root was made for an EPTP that passed the VM-entry EPTP checks (at VM
// entry or by VMFUNC), and those never change their answer for a value.
export function cached(eptp12: u64): u64 {
  for (let i = 0; i < ROOTS; i++) {
    if (unchecked(keys[i]) == eptp12 && unchecked(roots[i]) != 0) {
      unchecked(used[i] = ++clock);
      hits++;
      return pointer(unchecked(roots[i]), eptp12);
    }
  }
  return 0;
}

// Our EPT pointer for L1's eptp12 (which passed the EPTP checks): the
// cached root, or a new empty one (evicting the least recently used). 0
// when out of memory.
export function rootFor(eptp12: u64): u64 {
  const c = cached(eptp12);
  if (c != 0) return c;
  let victim = 0;
  for (let i = 1; i < ROOTS; i++) {
    if (unchecked(used[i]) < unchecked(used[victim])) victim = i;
  }
  dropSlot(victim);
  let r = ept.create();
  if (r == 0) {
    // Not even a page for the root: the other roots' tables go too.
    dropAll();
    restarts++;
    r = ept.create();
  }
  if (r == 0) return 0;
  unchecked(keys[victim] = eptp12);
  unchecked(roots[victim] = r);
  unchecked(used[victim] = ++clock);
  builds++;
  return pointer(r, eptp12);
}

// Map the 4-KiB page of gpa2 (L2-physical) to hpa with permissions perm
// and L1's memory type (leaf bits 6:3: L0 maps L1's RAM write-back, so the
// type L1 chose is the composition's, 29.3.7) in the shadow tables of
// eptp12 (whose root rootFor made). False when out of memory.
export function fill(eptp12: u64, gpa2: u64, hpa: u64, perm: u64, memType: u64): bool {
  for (let i = 0; i < ROOTS; i++) {
    if (unchecked(keys[i]) != eptp12 || unchecked(roots[i]) == 0) continue;
    fills++;
    return ept.map(unchecked(roots[i]), gpa2 & ~<u64>0xfff, hpa & ~<u64>0xfff, 4096, perm, memType);
  }
  return false;
}

// Out of table pages: every root dropped, and eptp12's made anew (our EPT
// pointer for it, 0 when even an empty root cannot be had).
export function restart(eptp12: u64): u64 {
  dropAll();
  restarts++;
  return rootFor(eptp12);
}
export let restarts: u64 = 0;

// INVEPT single-context (29.4.3.1: the mappings of EP4TA = bits 51:12).
export function dropMatching(eptp12: u64): void {
  for (let i = 0; i < ROOTS; i++) {
    if (unchecked(roots[i]) != 0 && (unchecked(keys[i]) & ADDR_MASK) == (eptp12 & ADDR_MASK)) dropSlot(i);
  }
}

// No shadow leaf grants write access any more (the leaves stay): L2's next
// write to each page is an EPT violation that eptfault.ts fills again, after
// the RAM snapshot (snapshot/ram.ts) recorded the page as written; the
// shadow leaves map L1's pages directly, past L0's own EPT and its flags.
// Permissions taken away: INVEPT for each root (29.4.3.4).
export function revokeWrites(): void {
  for (let i = 0; i < ROOTS; i++) {
    const r = unchecked(roots[i]);
    if (r == 0) continue;
    ept.clearLeafBits(r, ept.EPT_WRITE);
    flush(r);
  }
}

// INVEPT all-context, and a new guest.
export function dropAll(): void {
  for (let i = 0; i < ROOTS; i++) dropSlot(i);
}

export function resetCounts(): void {
  restarts = 0;
  builds = 0;
  hits = 0;
  fills = 0;
}

export function report(): void {
  print.str("hv: shadow EPT: ");
  print.dec(builds);
  print.str(" roots built, ");
  print.dec(hits);
  print.str(" reused, ");
  print.dec(fills);
  print.str(" pages filled");
  if (restarts != 0) {
    print.str(", ");
    print.dec(restarts);
    print.str(" restarts for want of table pages");
  }
  print.nl();
}
