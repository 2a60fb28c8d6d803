// Lists of VMCS fields for the bulk copies of kernel/hw/vmx.ts
// (readfields/writefields): moving fifty fields between the processor's
// VMCS and the vmcs12 cache costs one import call instead of fifty, each
// with its own slot lookup — what nested entries and exits spend most of
// their time on otherwise.
//
// A list is the FL_* block of the field table (tools/vmx/table.mjs):
// encodings, value offsets from the copy's base and width masks in three
// parallel arrays (fill()). A list built `forCache` uses the vmcs12
// cache's offsets (state.ts); a list built `packed` places value i at
// 8 * i, for a staging area of the caller's.
import * as V from "../arch/vmx";
import * as state from "./state";

export const MAX: i32 = <i32>V.FL_MAX;

// Entry i of the list block at `l`: encoding e, value at byte `off`.
export function fill(l: usize, i: i32, e: u32, off: i32): void {
  assert(i >= 0 && i < MAX && off >= 0 && off < 4096 && (e & 0xffff0001) == 0);
  store<u16>(l + V.FL_ENC + (<usize>i << 1), <u16>e);
  store<u16>(l + V.FL_OFF + (<usize>i << 1), <u16>off);
  const w = V.vmcsEncodingWidth(e);
  store<u64>(l + V.FL_WMASK + (<usize>i << 3), w == V.VMCS_WIDTH_16 ? 0xffff : w == V.VMCS_WIDTH_32 ? 0xffffffff : u64.MAX_VALUE);
}

@unmanaged export class FieldList {
  entries: StaticArray<u64>; // the FL_BYTES block
  encodings: StaticArray<u32>;
  // The bits of the Nested's `changes` a change of entry i records
  // (state.ts readFields): as a copy from vmcs02 (synced) or as a change
  // for vmcs02 too — computed once, not per changed field on the exit path.
  syncedBits: StaticArray<u32>;
  changedBits: StaticArray<u32>;
  count: u32;
  // The generated straight-line reader of the same list (V.READLIST_*,
  // vmx.readlist; the list must be V.READLIST_*_FIELDS itself), or -1.
  readId: i32;
  constructor(encs: StaticArray<u32>, forCache: bool, readId: i32 = -1) {
    this.readId = readId;
    const n = encs.length;
    this.entries = new StaticArray<u64>(<i32>V.FL_BYTES >> 3);
    this.encodings = new StaticArray<u32>(n);
    this.syncedBits = new StaticArray<u32>(n);
    this.changedBits = new StaticArray<u32>(n);
    this.count = <u32>n;
    for (let i = 0; i < n; i++) {
      const e = encs[i];
      const off = forCache ? V.vmcs12Offset(e) : i * 8;
      // Only the full encodings of fields of the table are listed here.
      assert(off >= 0 && off < 4096 - 8 && n <= MAX);
      fill(changetype<usize>(this.entries), i, e, off);
      this.encodings[i] = e;
      this.syncedBits[i] = state.syncedBits(e);
      this.changedBits[i] = state.changedBits(e);
    }
  }
  // The list for the imports.
  @inline get ptr(): usize {
    return changetype<usize>(this.entries);
  }
  // Every entry selected.
  @inline get all(): u64 {
    return this.count == 64 ? u64.MAX_VALUE : (<u64>1 << <u64>this.count) - 1;
  }
  @inline encodingAt(i: i32): u32 {
    return unchecked(this.encodings[i]);
  }
  @inline bitsAt(i: i32, synced: bool): u32 {
    return synced ? unchecked(this.syncedBits[i]) : unchecked(this.changedBits[i]);
  }
}
