// The boot file being loaded as a guest kernel: bounds-checked reads of it,
// the load plan built from its headers, and the one-line error report.
//
// A boot file is untrusted input. Every read below is checked against the
// file's length first and returns 0 when it would leave the file (callers
// check `has` before they read, so the 0 is never used as data); nothing
// here writes anywhere. The loader first builds a plan — which file bytes go
// to which guest-physical range, and how much of each range is zeroed —
// validates the whole plan, and only then copies.
//
// The module's variables are scratch of the one load in progress, marked
// "machine-wide: load() scratch": loads run at guest set-up, one at a time
// and to completion, and nothing in them outlives load(), whose result
// (loader.Entry) the caller owns.
import * as boot from "../boot/bootinfo";
import * as mem from "../hw/mem";
import * as print from "../lib/print";

// ---- the file ---------------------------------------------------------------

export let index: u32 = 0; // machine-wide: load() scratch; boot-file index
export let base: u64 = 0; // machine-wide: load() scratch; host-physical address of its first byte
export let length: u64 = 0; // machine-wide: load() scratch; bytes

// Its name string "NAME ARGS" (a multiboot module string), in linear memory.
const NAME_BUF: i32 = 256;
export const name: usize = memory.data(NAME_BUF); // machine-wide: load() scratch
export let nameLen: i32 = 0; // machine-wide: load() scratch; the whole string
export let wordLen: i32 = 0; // machine-wide: load() scratch; NAME alone (up to the first space)

// Copy the name string of boot file i into buf (at most 255 bytes); returns
// its length. The boot-info parser already bounded it to 255.
export function copyName(i: u32, buf: usize): i32 {
  let n = <i32>boot.fileNameLen(i);
  if (n > NAME_BUF - 1) n = NAME_BUF - 1;
  mem.copyin(buf, boot.fileNameAddr(i), <u32>n);
  store<u8>(buf + <usize>n, 0);
  return n;
}

// Length of the first word of the n bytes at p.
export function firstWord(p: usize, n: i32): i32 {
  let k = 0;
  while (k < n && load<u8>(p + <usize>k) != 0x20) k++;
  return k;
}

// Entry k of a u32 array in linear memory (the loader's module list; the
// loader cannot name the built-in `load`, its own entry point shadows it).
export function listAt(list: usize, k: i32): u32 {
  return load<u32>(list + (<usize>k << 2));
}

export function open(i: u32): void {
  index = i;
  base = boot.fileBase(i);
  length = boot.fileLength(i);
  nameLen = copyName(i, name);
  wordLen = firstWord(name, nameLen);
  planCount = 0;
}

// Is [off, off+n) inside the file? (No overflow: n is compared first.)
export function has(off: u64, n: u64): bool {
  return n <= length && off <= length - n;
}

export function rd8(off: u64): u32 {
  return has(off, 1) ? mem.read8(base + off) : 0;
}
export function rd16(off: u64): u32 {
  return has(off, 2) ? mem.read16(base + off) : 0;
}
export function rd32(off: u64): u32 {
  return has(off, 4) ? mem.read32(base + off) : 0;
}
export function rd64(off: u64): u64 {
  return has(off, 8) ? mem.read64(base + off) : 0;
}

// The first HEAD_MAX bytes of the file in linear memory, for the header
// search (Multiboot 2 searches 32 KiB; the rest lets us say "found, but too
// far in" instead of just "not found").
export const HEAD_MAX: u32 = 0x10000;
export const head: usize = memory.data(<i32>HEAD_MAX); // machine-wide: load() scratch
export let headLen: u32 = 0; // machine-wide: load() scratch

export function readHead(): void {
  headLen = length < <u64>HEAD_MAX ? <u32>length : HEAD_MAX;
  mem.copyin(head, base, headLen);
}
// Little-endian reads of the head; the caller keeps off + size <= headLen.
export function h16(off: u32): u32 {
  return <u32>load<u16>(head + <usize>off);
}
export function h32(off: u32): u32 {
  return load<u32>(head + <usize>off);
}

// ---- the load plan ----------------------------------------------------------
// Entry k: guest-physical [addr[k], addr[k] + memSize[k]) receives the file
// bytes [fileOff[k], fileOff[k] + fileSize[k]) followed by zeros
// (fileSize <= memSize). label[k] names it in messages: the ELF program
// header index, or -1 for an a.out-kludge / address-tag image.

export const PLAN_MAX: i32 = 32;
const planAddr = new StaticArray<u64>(PLAN_MAX); // machine-wide: load() scratch
const planMem = new StaticArray<u64>(PLAN_MAX); // machine-wide: load() scratch
const planOff = new StaticArray<u64>(PLAN_MAX); // machine-wide: load() scratch
const planFile = new StaticArray<u64>(PLAN_MAX); // machine-wide: load() scratch
const planLabel = new StaticArray<i32>(PLAN_MAX); // machine-wide: load() scratch
export let planCount: i32 = 0; // machine-wide: load() scratch

export function planAdd(addr: u64, memSize: u64, fileOff: u64, fileSize: u64, label: i32): bool {
  if (planCount == PLAN_MAX) return false;
  planAddr[planCount] = addr;
  planMem[planCount] = memSize;
  planOff[planCount] = fileOff;
  planFile[planCount] = fileSize;
  planLabel[planCount] = label;
  planCount++;
  return true;
}
export function planAddrOf(k: i32): u64 {
  return planAddr[k];
}
export function planMemOf(k: i32): u64 {
  return planMem[k];
}
export function planOffOf(k: i32): u64 {
  return planOff[k];
}
export function planFileOf(k: i32): u64 {
  return planFile[k];
}
// Does some plan range contain guest-physical address a?
export function planContains(a: u64): bool {
  for (let k = 0; k < planCount; k++) {
    if (a >= planAddr[k] && a - planAddr[k] < planMem[k]) return true;
  }
  return false;
}
// "segment N" / "image" for messages.
export function planWhat(k: i32): void {
  if (planLabel[k] < 0) {
    print.str("image");
  } else {
    print.str("segment ");
    print.dec(<u64>planLabel[k]);
  }
}

// ---- reporting --------------------------------------------------------------
// Every failure is one line: "hv: guest: NAME: what is wrong". start() prints
// the prefix, the caller adds the details, end() finishes the line.

export function start(): void {
  print.str("hv: guest: ");
  print.bytes(name, wordLen);
  print.str(": ");
}
export function end(): bool {
  print.nl();
  return false;
}
export function fail(what: string): bool {
  start();
  print.str(what);
  return end();
}
// " [0xA, 0xB)"
export function range(a: u64, len: u64): void {
  print.str(" [");
  print.hex(a);
  print.str(", ");
  print.hex(a + len);
  print.str(")");
}
