// Physical page allocator.
//
// Free memory is a sorted list of disjoint [start, end) page ranges kept in
// linear memory. It starts as the boot map's available ranges minus every
// range the map marks otherwise (firmware maps may overlap: reserved wins),
// minus the hypervisor's own ranges, the boot data and the first 1 MiB (real-
// mode structures, and the SIPI trampoline later). Allocation is first fit
// from the low end of a range; freeing merges neighbours. Pages are zeroed
// when handed out, so no data passes from one owner to the next.
import * as boot from "../boot/bootinfo";
import * as mem from "../hw/mem";
import * as print from "../lib/print";

export const PAGE_SIZE: u64 = 4096;
const LOW_LIMIT: u64 = 0x100000;
const MAX_RANGES: i32 = 512;

const starts = new StaticArray<u64>(MAX_RANGES); // machine-wide: page allocator
const ends = new StaticArray<u64>(MAX_RANGES); // machine-wide: page allocator
let count: i32 = 0; // machine-wide: page allocator

export function rangeCount(): i32 {
  return count;
}
export function rangeStart(i: i32): u64 {
  return starts[i];
}
export function rangeEnd(i: i32): u64 {
  return ends[i];
}

export function freePageCount(): u64 {
  let n: u64 = 0;
  for (let i = 0; i < count; i++) n += (ends[i] - starts[i]) / PAGE_SIZE;
  return n;
}

export function reset(): void {
  count = 0;
}

function removeAt(i: i32): void {
  for (let j = i; j < count - 1; j++) {
    starts[j] = starts[j + 1];
    ends[j] = ends[j + 1];
  }
  count--;
}

function insertAt(i: i32, s: u64, e: u64): void {
  if (count == MAX_RANGES) {
    // Dropping a range only loses memory, never hands out memory twice.
    print.str("hv: pages: range table full, dropping ");
    print.hex(s);
    print.nl();
    return;
  }
  for (let j = count; j > i; j--) {
    starts[j] = starts[j - 1];
    ends[j] = ends[j - 1];
  }
  starts[i] = s;
  ends[i] = e;
  count++;
}

// Add [s, e) (page-aligned inward) to the free list, merging neighbours.
// Returns false if any part of it is already free (a double free).
export function addRange(s: u64, e: u64): bool {
  s = (s + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  e = e & ~(PAGE_SIZE - 1);
  if (e <= s) return true;
  let i = 0;
  while (i < count && starts[i] < s) i++;
  if ((i > 0 && ends[i - 1] > s) || (i < count && starts[i] < e)) return false;
  const mergeLeft = i > 0 && ends[i - 1] == s;
  const mergeRight = i < count && starts[i] == e;
  if (mergeLeft && mergeRight) {
    ends[i - 1] = ends[i];
    removeAt(i);
  } else if (mergeLeft) {
    ends[i - 1] = e;
  } else if (mergeRight) {
    starts[i] = s;
  } else {
    insertAt(i, s, e);
  }
  return true;
}

// Take [s, e) (widened to whole pages) out of the free list.
export function removeRange(s: u64, e: u64): void {
  s = s & ~(PAGE_SIZE - 1);
  e = (e + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  if (e <= s) return;
  let i = 0;
  while (i < count) {
    const rs = starts[i];
    const re = ends[i];
    if (re <= s || rs >= e) {
      i++;
      continue;
    }
    if (rs < s && re > e) {
      // Split in two.
      ends[i] = s;
      insertAt(i + 1, e, re);
      return;
    }
    if (rs < s) {
      ends[i] = s;
      i++;
    } else if (re > e) {
      starts[i] = e;
      i++;
    } else {
      removeAt(i);
    }
  }
}

// Build the free list from the boot map.
export function init(): void {
  count = 0;
  for (let i: u32 = 0; i < boot.mmapCount; i++) {
    if (boot.mmapType(i) != boot.MEM_AVAILABLE) continue;
    const s = boot.mmapBase(i);
    const e = s + boot.mmapLength(i);
    // Overlapping available entries are merged by removing first.
    removeRange(s, e);
    addRange(s, e);
  }
  for (let i: u32 = 0; i < boot.mmapCount; i++) {
    if (boot.mmapType(i) == boot.MEM_AVAILABLE) continue;
    removeRange(boot.mmapBase(i), boot.mmapBase(i) + boot.mmapLength(i));
  }
  for (let i: u32 = 0; i < boot.fileCount; i++) {
    removeRange(boot.fileBase(i), boot.fileBase(i) + boot.fileLength(i));
  }
  for (let k: u32 = 0; k < boot.selfRangeCount(); k++) {
    const b = boot.selfRangeBase(k);
    removeRange(b, b + boot.selfRangeLength(k));
  }
  removeRange(0, LOW_LIMIT);
}

// Allocate n contiguous zeroed pages entirely below `limit` (0 = anywhere).
// Returns the physical address, or 0 when no range can satisfy the request.
export function alloc(n: u32, limit: u64 = 0): u64 {
  const bytes = <u64>n * PAGE_SIZE;
  if (n == 0) return 0;
  for (let i = 0; i < count; i++) {
    const s = starts[i];
    if (ends[i] - s < bytes) continue;
    if (limit != 0 && s + bytes > limit) continue;
    if (ends[i] - s == bytes) removeAt(i);
    else starts[i] = s + bytes;
    mem.zero(s, bytes);
    return s;
  }
  return 0;
}

// Allocate n contiguous zeroed pages whose first page is aligned to `align`
// bytes (a power of two, >= PAGE_SIZE), e.g. 2 MiB so that EPT can map guest
// RAM with large pages. Returns 0 when no range can satisfy the request.
export function allocAligned(n: u32, align: u64): u64 {
  const bytes = <u64>n * PAGE_SIZE;
  if (n == 0 || align < PAGE_SIZE || (align & (align - 1)) != 0) return 0;
  for (let i = 0; i < count; i++) {
    const s = (starts[i] + align - 1) & ~(align - 1);
    const e = ends[i];
    if (s >= e || e - s < bytes) continue;
    const rs = starts[i];
    // Cut [s, s+bytes) out of [rs, e): keep the head and the tail.
    if (s == rs) {
      if (s + bytes == e) removeAt(i);
      else starts[i] = s + bytes;
    } else {
      ends[i] = s;
      if (s + bytes < e) insertAt(i + 1, s + bytes, e);
    }
    mem.zero(s, bytes);
    return s;
  }
  return 0;
}

// Return n pages at pa. Freeing memory that is already free is a hypervisor
// bug: abort rather than corrupt the list.
export function free(pa: u64, n: u32): void {
  assert((pa & (PAGE_SIZE - 1)) == 0, "pages.free: unaligned address");
  const ok = addRange(pa, pa + <u64>n * PAGE_SIZE);
  assert(ok, "pages.free: double free");
}

export function report(): void {
  const pages = freePageCount();
  print.str("hv: memory: ");
  print.dec(pages * PAGE_SIZE >> 20);
  print.str(" MiB free in ");
  print.dec(<u64>count);
  print.str(" ranges");
  if (count > 0) {
    print.str(", lowest ");
    print.hex(starts[0]);
    print.str(", highest end ");
    print.hex(ends[count - 1]);
  }
  print.nl();
}
