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
// A root's slot: L1's EPTP (bits 51:12 + 11:0; 0 = free slot), our PML4
// (host-physical), LRU stamp.
const SLOT_BYTES: usize = 24;
const KEY: usize = 0;
const ROOT: usize = 8;
const USED: usize = 16;

// A vCPU's shadow EPT (vcpu.nested.shadowEpt). The roots are a rebuildable
// cache: dropping them all is always allowed (they are cached
// translations, 29.4.3.1), and every nested VM entry or VMFUNC finds or
// makes the root it needs again. Their table pages are the allocator's
// again when the vCPU is destroyed (Nested.release). The ROOTS slots
// follow the fields in the same block (SLOTS_AT), so that a slot is one
// load from the object, as a field is.
@unmanaged export class ShadowEpt {
  // LRU time: one tick per root used, made (builds) or found cached (the
  // rest: hits() without a counter of its own on the VMFUNC path).
  clock: u64 = 0;
  // Statistics of the guest.
  builds: u64 = 0; // roots created (cold)
  fills: u64 = 0; // 4-KiB mappings added from EPT violations
  restarts: u64 = 0; // every root dropped for want of table pages
  @inline key(i: i32): u64 {
    return load<u64>(changetype<usize>(this) + <usize>i * SLOT_BYTES, SLOTS_AT + KEY);
  }
  @inline root(i: i32): u64 {
    return load<u64>(changetype<usize>(this) + <usize>i * SLOT_BYTES, SLOTS_AT + ROOT);
  }
  @inline used(i: i32): u64 {
    return load<u64>(changetype<usize>(this) + <usize>i * SLOT_BYTES, SLOTS_AT + USED);
  }
  @inline set(i: i32, key: u64, root: u64): void {
    store<u64>(changetype<usize>(this) + <usize>i * SLOT_BYTES, key, SLOTS_AT + KEY);
    store<u64>(changetype<usize>(this) + <usize>i * SLOT_BYTES, root, SLOTS_AT + ROOT);
  }
  @inline touch(i: i32): void {
    store<u64>(changetype<usize>(this) + <usize>i * SLOT_BYTES, ++this.clock, SLOTS_AT + USED);
  }
  // Times a root was found cached.
  @inline hits(): u64 {
    return this.clock - this.builds;
  }
}
const SLOTS_AT: usize = (offsetof<ShadowEpt>() + 7) & ~(<usize>7);
const BYTES: usize = SLOTS_AT + <usize>ROOTS * SLOT_BYTES;

// A new, empty one (when its vCPU object is made, never on the exit path).
export function create(): ShadowEpt {
  const s = heap.alloc(BYTES);
  memory.fill(s, 0, BYTES);
  return changetype<ShadowEpt>(s);
}

const ADDR_MASK: u64 = 0x000ffffffffff000;

function flush(root: u64): void {
  if ((hwcaps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_SINGLE_CONTEXT) != 0) vmx.invept(V.INVEPT_TYPE_SINGLE_CONTEXT, ept.eptp(root));
  else vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);
}

function dropSlot(s: ShadowEpt, i: i32): void {
  const r = s.root(i);
  if (r != 0) {
    ept.destroy(r);
    flush(r);
  }
  s.set(i, 0, 0);
}

function pointer(root: u64, eptp12: u64): u64 {
  return ept.eptp(root) | (eptp12 & V.EPTP_ACCESSED_DIRTY);
}

// Our EPT pointer for L1's eptp12 if its root is cached, else 0. A cached
// root was made for an EPTP that passed the VM-entry EPTP checks (at VM
// entry or by VMFUNC), and those never change their answer for a value.
export function cached(s: ShadowEpt, eptp12: u64): u64 {
  for (let i = 0; i < ROOTS; i++) {
    if (s.key(i) == eptp12 && s.root(i) != 0) {
      s.touch(i);
      return pointer(s.root(i), eptp12);
    }
  }
  return 0;
}

// Our EPT pointer for L1's eptp12 (which passed the EPTP checks): the
// cached root, or a new empty one (evicting the least recently used). 0
// when out of memory.
export function rootFor(s: ShadowEpt, eptp12: u64): u64 {
  const c = cached(s, eptp12);
  if (c != 0) return c;
  let victim = 0;
  for (let i = 1; i < ROOTS; i++) {
    if (s.used(i) < s.used(victim)) victim = i;
  }
  dropSlot(s, victim);
  let r = ept.create();
  if (r == 0) {
    // Not even a page for the root: the other roots' tables go too.
    dropAll(s);
    s.restarts++;
    r = ept.create();
  }
  if (r == 0) return 0;
  s.set(victim, eptp12, r);
  s.touch(victim);
  s.builds++;
  return pointer(r, eptp12);
}

// Map the 4-KiB page of gpa2 (L2-physical) to hpa with permissions perm
// and L1's memory type (leaf bits 6:3: L0 maps L1's RAM write-back, so the
// type L1 chose is the composition's, 29.3.7) in the shadow tables of
// eptp12 (whose root rootFor made). False when out of memory.
export function fill(s: ShadowEpt, eptp12: u64, gpa2: u64, hpa: u64, perm: u64, memType: u64): bool {
  for (let i = 0; i < ROOTS; i++) {
    if (s.key(i) != eptp12 || s.root(i) == 0) continue;
    s.fills++;
    return ept.map(s.root(i), gpa2 & ~<u64>0xfff, hpa & ~<u64>0xfff, 4096, perm, memType);
  }
  return false;
}

// Out of table pages: every root dropped, and eptp12's made anew (our EPT
// pointer for it, 0 when even an empty root cannot be had).
export function restart(s: ShadowEpt, eptp12: u64): u64 {
  dropAll(s);
  s.restarts++;
  return rootFor(s, eptp12);
}

// INVEPT single-context (29.4.3.1: the mappings of EP4TA = bits 51:12).
export function dropMatching(s: ShadowEpt, eptp12: u64): void {
  for (let i = 0; i < ROOTS; i++) {
    if (s.root(i) != 0 && (s.key(i) & ADDR_MASK) == (eptp12 & ADDR_MASK)) dropSlot(s, i);
  }
}

// INVEPT all-context, and the vCPU's end: the tables go back to the
// allocator.
export function dropAll(s: ShadowEpt): void {
  for (let i = 0; i < ROOTS; i++) dropSlot(s, i);
}

// No shadow leaf grants write access any more (the leaves stay): L2's next
// write to each page is an EPT violation that eptfault.ts fills again, after
// the RAM snapshot (snapshot/ram.ts) recorded the page as written; the
// shadow leaves map L1's pages directly, past L0's own EPT and its flags.
// Permissions taken away: INVEPT for each root (29.4.3.4).
export function revokeWrites(s: ShadowEpt): void {
  for (let i = 0; i < ROOTS; i++) {
    const r = s.root(i);
    if (r == 0) continue;
    ept.clearLeafBits(r, ept.EPT_WRITE);
    flush(r);
  }
}

// The statistics of `from` into `to` (a restored vCPU goes on counting
// from the one it replaces): builds, fills, restarts and the LRU clock
// (reuses are clock - builds).
export function copyStatistics(to: ShadowEpt, from: ShadowEpt): void {
  to.builds = from.builds;
  to.fills = from.fills;
  to.restarts = from.restarts;
  to.clock = from.clock;
}

// Back to a vCPU that never ran L2 on shadow EPT: no roots (their tables
// freed), counts 0.
export function clear(s: ShadowEpt): void {
  dropAll(s);
  memory.fill(changetype<usize>(s), 0, BYTES);
}

export function report(s: ShadowEpt): void {
  print.str("hv: shadow EPT: ");
  print.dec(s.builds);
  print.str(" roots built, ");
  print.dec(s.hits());
  print.str(" reused, ");
  print.dec(s.fills);
  print.str(" pages filled");
  if (s.restarts != 0) {
    print.str(", ");
    print.dec(s.restarts);
    print.str(" restarts for want of table pages");
  }
  print.nl();
}
