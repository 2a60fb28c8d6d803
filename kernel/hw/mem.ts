// Physical-memory imports. Guest memory, VMCS regions, page tables and boot
// data live in physical memory and are reached only through these. The
// implementation refuses (and stops the machine with a report) any access
// that overlaps the hypervisor's own image, stacks, page tables or linear
// memory, or that lies beyond the physical memory the boot map describes: a
// kernel bug cannot turn into a write over the hypervisor itself.
@external("mem", "read8")
export declare function read8(pa: u64): u32;
@external("mem", "read16")
export declare function read16(pa: u64): u32;
@external("mem", "read32")
export declare function read32(pa: u64): u32;
@external("mem", "read64")
export declare function read64(pa: u64): u64;

@external("mem", "write8")
export declare function write8(pa: u64, value: u32): void;
@external("mem", "write16")
export declare function write16(pa: u64, value: u32): void;
@external("mem", "write32")
export declare function write32(pa: u64, value: u32): void;
@external("mem", "write64")
export declare function write64(pa: u64, value: u64): void;

// Fill [pa, pa+len) with zero bytes.
@external("mem", "zero")
export declare function zero(pa: u64, len: u64): void;

// Copy len bytes from physical pa into linear memory at dst.
@external("mem", "copyin")
export declare function copyin(dst: usize, pa: u64, len: u32): void;

// Copy len bytes from physical src to physical dst (ranges must not overlap).
@external("mem", "copy")
export declare function copy(dst: u64, src: u64, len: u64): void;

// dst = a | b over len bytes (a multiple of 8), all three physical and
// non-overlapping: merging two bitmaps in one call instead of one import
// call per word.
@external("mem", "or")
export declare function or(dst: u64, a: u64, b: u64, len: u64): void;

// Atomically OR `bits` into the 8 bytes at pa and return their previous
// value (a locked read-modify-write): how the processor sets flags in
// paging-structure entries that software on another processor may be
// changing at the same time (EPT accessed/dirty flags, SDM Vol. 3C 29.3.5).
@external("mem", "fetchor64")
export declare function fetchOr64(pa: u64, bits: u64): u64;

// Atomically replace the 8 bytes at pa with v and return their previous
// value (a locked exchange): how the processor reads and clears the PIR of
// a posted-interrupt descriptor, which other processors may be posting to
// (SDM Vol. 3C 29.6: "no other agent can read or write a PIR bit (or group
// of bits) between the time it is read and the time it is cleared").
@external("mem", "swap64")
export declare function swap64(pa: u64, v: u64): u64;

// Copy len bytes from linear memory at src to physical pa.
@external("mem", "copyout")
export declare function copyout(pa: u64, src: usize, len: u32): void;

// Copy n fields from linear memory at src (a 4-KiB area) to physical memory
// [dst, dst+len), by a list of u32 entries at list: destination offset in
// bits 11:0, source offset in 23:12, bytes (1-255) in 31:24. One call for a
// scattered copy (nested/evmcs.ts writes the vmcs12 cache's fields into an
// enlightened VMCS with it); an entry outside either area traps.
@external("mem", "scatter")
export declare function scatter(dst: u64, len: u32, src: usize, list: usize, n: u32): void;
