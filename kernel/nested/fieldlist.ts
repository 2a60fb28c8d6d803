// Lists of VMCS fields for the bulk copies of kernel/hw/vmx.ts
// (readfields/writefields): moving fifty fields between the processor's
// VMCS and the vmcs12 cache costs one import call instead of fifty, each
// with its own slot lookup — what nested entries and exits spend most of
// their time on otherwise.
//
//   entry (u32) = encoding (bits 15:0) | byte offset from the base (27:16)
//
// The value is 2, 4 or 8 bytes by the encoding's width. A list built
// `forCache` uses the vmcs12 cache's offsets (state.ts); a list built
// `packed` places value i at 8 * i, for a staging area of the caller's.
import * as V from "../arch/vmx";
import * as state from "./state";

export const MAX: i32 = 64;

@unmanaged export class FieldList {
  entries: StaticArray<u32>;
  encodings: StaticArray<u32>;
  // The bits of the Nested's `changes` a change of entry i records
  // (state.ts readFields): as a copy from vmcs02 (synced) or as a change
  // for vmcs02 too — computed once, not per changed field on the exit path.
  syncedBits: StaticArray<u32>;
  changedBits: StaticArray<u32>;
  count: u32;
  constructor(encs: StaticArray<u32>, forCache: bool) {
    const n = encs.length;
    this.entries = new StaticArray<u32>(n);
    this.encodings = new StaticArray<u32>(n);
    this.syncedBits = new StaticArray<u32>(n);
    this.changedBits = new StaticArray<u32>(n);
    this.count = <u32>n;
    for (let i = 0; i < n; i++) {
      const e = encs[i];
      const off = forCache ? V.vmcs12Offset(e) : i * 8;
      // Only the full encodings of fields of the table are listed here.
      assert(off >= 0 && off < 4096 - 8 && (e & 0xffff0001) == 0 && n <= MAX);
      this.entries[i] = e | (<u32>off << 16);
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
