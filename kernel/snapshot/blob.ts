// Writing and reading a snapshot blob (docs/snapshot.md): a header, a table
// of sections, then the sections, each 8-byte aligned, in ascending id order
// with zero padding between them. The layout constants (V.SNAP_*) come from
// tools/vmx/table.mjs, shared with the C side and the model tests.
//
// Both work on a buffer the caller allocated once (at guest set-up); neither
// allocates, and neither ever reads or writes outside [base, base + size):
// a Writer that runs out of room stops writing and reports it at finish(),
// a Reader returns 0 for bytes outside the blob and remembers that it was
// asked (`overrun`), so that a wrong offset is a rejected blob, never a
// trap. validate.ts decides whether a blob is well formed; the Reader only
// keeps every access inside it.
//
//   +0                 header (SNAP_HDR_*, SNAP_HDR_BYTES)
//   +SNAP_HDR_BYTES    section table: SECTION_COUNT entries (SNAP_ENTRY_*)
//   align 8            section 1 ... section n, each at align8(end of the previous)
//   TOTAL_BYTES        = align8(end of the last section)
import * as V from "../arch/vmx";

@inline export function align8(n: u64): u64 {
  return (n + 7) & ~(<u64>7);
}

// Where the sections start for a table of n entries.
@inline export function firstSectionAt(n: u32): u64 {
  return align8(<u64>V.SNAP_HDR_BYTES + <u64>n * <u64>V.SNAP_ENTRY_BYTES);
}

@unmanaged export class Writer {
  base: usize = 0;
  capacity: u64 = 0;
  pos: u64 = 0; // next byte to write
  sections: u32 = 0; // entries announced in the table
  written: u32 = 0; // entries filled
  start: u64 = 0; // offset of the open section
  lastId: u32 = 0;
  inSection: bool = false;
  failed: bool = false; // out of room, or sections out of order or count

  // Start a blob of `sections` sections for vCPU `vcpu` in [base, base +
  // capacity). The sections must then be written in ascending id order.
  begin(base: usize, capacity: u64, sections: u32, vcpu: u32): void {
    this.base = base;
    this.capacity = capacity;
    this.sections = sections;
    this.written = 0;
    this.lastId = 0;
    this.inSection = false;
    this.failed = sections == 0 || sections > V.SNAP_MAX_SECTIONS;
    this.pos = 0;
    const first = firstSectionAt(sections);
    if (this.failed || first > capacity) {
      this.failed = true;
      return;
    }
    memory.fill(base, 0, <usize>first);
    store<u32>(base, V.SNAP_MAGIC, V.SNAP_HDR_MAGIC);
    store<u16>(base, <u16>V.SNAP_VERSION, V.SNAP_HDR_VERSION);
    store<u16>(base, <u16>V.SNAP_HDR_BYTES, V.SNAP_HDR_HEADER_BYTES);
    store<u32>(base, sections, V.SNAP_HDR_SECTION_COUNT);
    store<u32>(base, vcpu, V.SNAP_HDR_VCPU);
    store<u32>(base, V.SNAP_VMCS12_LAYOUT, V.SNAP_HDR_VMCS12_LAYOUT);
    this.pos = first;
  }

  // Open section `id`: its table entry gets the id and the offset.
  section(id: u32): void {
    if (this.failed) return;
    if (this.inSection || id <= this.lastId || this.written >= this.sections) {
      this.failed = true;
      return;
    }
    const e = this.base + <usize>V.SNAP_HDR_BYTES + <usize>(this.written * V.SNAP_ENTRY_BYTES);
    store<u32>(e, id, V.SNAP_ENTRY_ID);
    store<u32>(e, <u32>this.pos, V.SNAP_ENTRY_OFFSET);
    this.start = this.pos;
    this.lastId = id;
    this.inSection = true;
  }

  // Room for n more bytes? Marks the blob failed when not.
  @inline private room(n: u64): bool {
    if (this.failed || !this.inSection || n > this.capacity || this.pos > this.capacity - n) {
      this.failed = true;
      return false;
    }
    return true;
  }

  u32(v: u32): void {
    if (!this.room(4)) return;
    store<u32>(this.base + <usize>this.pos, v);
    this.pos += 4;
  }
  u64(v: u64): void {
    if (!this.room(8)) return;
    store<u64>(this.base + <usize>this.pos, v);
    this.pos += 8;
  }
  // n bytes from linear memory at src.
  bytes(src: usize, n: u32): void {
    if (!this.room(n)) return;
    memory.copy(this.base + <usize>this.pos, src, n);
    this.pos += n;
  }
  zeros(n: u32): void {
    if (!this.room(n)) return;
    memory.fill(this.base + <usize>this.pos, 0, n);
    this.pos += n;
  }
  // A key/value item of a list section (SNAP_PAIR_*).
  pair(key: u32, value: u64): void {
    if (!this.room(V.SNAP_PAIR_BYTES)) return;
    const p = this.base + <usize>this.pos;
    store<u32>(p, key, V.SNAP_PAIR_KEY);
    store<u32>(p, 0, V.SNAP_PAIR_RESERVED);
    store<u64>(p, value, V.SNAP_PAIR_VALUE);
    this.pos += V.SNAP_PAIR_BYTES;
  }
  // Where the next byte goes (for a writer that fills a fixed-size
  // section in place: reserve it with zeros(), then store at offsets).
  @inline here(): usize {
    return this.base + <usize>this.pos;
  }

  // Close the open section: its size into the table, zero padding to 8.
  end(): void {
    if (this.failed) return;
    if (!this.inSection) {
      this.failed = true;
      return;
    }
    const size = this.pos - this.start;
    const e = this.base + <usize>V.SNAP_HDR_BYTES + <usize>(this.written * V.SNAP_ENTRY_BYTES);
    store<u32>(e, <u32>size, V.SNAP_ENTRY_SIZE);
    const pad = align8(this.pos) - this.pos;
    this.inSection = false;
    if (pad != 0) {
      if (this.pos + pad > this.capacity) {
        this.failed = true;
        return;
      }
      memory.fill(this.base + <usize>this.pos, 0, <usize>pad);
      this.pos += pad;
    }
    this.written++;
  }

  // The blob's size, or 0 when it did not fit or was not built as
  // announced (every section closed, as many as begin() said).
  finish(): u64 {
    if (this.failed || this.inSection || this.written != this.sections) return 0;
    store<u32>(this.base, <u32>this.pos, V.SNAP_HDR_TOTAL_BYTES);
    return this.pos;
  }
}

@unmanaged export class Reader {
  base: usize = 0;
  length: u64 = 0;
  overrun: bool = false; // some read fell outside the blob

  open(base: usize, length: u64): void {
    this.base = base;
    this.length = length;
    this.overrun = false;
  }

  // Is [off, off + n) inside the blob?
  @inline has(off: u64, n: u64): bool {
    return n <= this.length && off <= this.length - n;
  }

  u8(off: u64): u32 {
    if (!this.has(off, 1)) {
      this.overrun = true;
      return 0;
    }
    return <u32>load<u8>(this.base + <usize>off);
  }
  u16(off: u64): u32 {
    if (!this.has(off, 2)) {
      this.overrun = true;
      return 0;
    }
    return <u32>load<u16>(this.base + <usize>off);
  }
  u32(off: u64): u32 {
    if (!this.has(off, 4)) {
      this.overrun = true;
      return 0;
    }
    return load<u32>(this.base + <usize>off);
  }
  u64(off: u64): u64 {
    if (!this.has(off, 8)) {
      this.overrun = true;
      return 0;
    }
    return load<u64>(this.base + <usize>off);
  }
  // Are the n bytes at off all zero (and inside the blob)? One bounds check,
  // then eight bytes a load (restore validates on the exit path of
  // snapshot=N: a byte a load made this a third of a restore).
  zero(off: u64, n: u64): bool {
    if (!this.has(off, n)) {
      this.overrun = true;
      return false;
    }
    let p = this.base + <usize>off;
    const end = p + <usize>n;
    let acc: u64 = 0;
    while (p + 8 <= end) {
      acc |= load<u64>(p);
      p += 8;
    }
    while (p < end) {
      acc |= <u64>load<u8>(p);
      p++;
    }
    return acc == 0;
  }
  // Linear-memory address of blob offset off, for a caller that checked
  // has(off, n) for the n bytes it will touch.
  @inline at(off: u64): usize {
    return this.base + <usize>off;
  }

  // The section table (validate.ts has checked it before anyone relies on
  // these): entry i's id, offset and size; find(id) is the entry index of
  // section id, or -1.
  count(): u32 {
    return this.u32(V.SNAP_HDR_SECTION_COUNT);
  }
  @inline private entry(i: u32): u64 {
    return <u64>V.SNAP_HDR_BYTES + <u64>i * <u64>V.SNAP_ENTRY_BYTES;
  }
  idAt(i: u32): u32 {
    return this.u32(this.entry(i) + V.SNAP_ENTRY_ID);
  }
  offsetAt(i: u32): u64 {
    return <u64>this.u32(this.entry(i) + V.SNAP_ENTRY_OFFSET);
  }
  sizeAt(i: u32): u64 {
    return <u64>this.u32(this.entry(i) + V.SNAP_ENTRY_SIZE);
  }
  find(id: u32): i32 {
    const n = min<u32>(this.count(), V.SNAP_MAX_SECTIONS);
    for (let i: u32 = 0; i < n; i++) if (this.idAt(i) == id) return <i32>i;
    return -1;
  }
}
