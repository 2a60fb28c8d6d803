// The Multiboot information structures handed to a guest kernel in EBX.
//
// Both live in the boot information area, guest-physical
// [INFO_BASE, INFO_END) = [0x9000, 0x10000): low RAM below 640 KiB that the
// loader keeps for itself (no kernel segment may overlap it, see
// kernel/guest/loader.ts). The area is zeroed first, then filled from its
// start in the order below; every piece is placed at the next address with
// the alignment given, so with no modules the layout is fixed.
//
// Multiboot 1 (0.6.96 §3.3 "Boot information format"), EBX = 0x9000:
//   0x9000  multiboot_info, 116 bytes (all fields up to color_info; unused
//           ones 0): flags = mem | cmdline | mods | mmap | boot_loader_name
//           (bits 0, 2, 3, 6, 9); mem_lower @4 = 639; mem_upper @8 = KiB of
//           RAM above 1 MiB; cmdline @16; mods_count @20, mods_addr @24 (0
//           when there are no modules); mmap_length @44, mmap_addr @48;
//           boot_loader_name @64
//   0x9078  memory map (align 8): per entry u32 size = 20, u64 base_addr,
//           u64 length, u32 type; 24 bytes each, mmap_addr points at the
//           first size field, mmap_length = 24 * entries
//   ...     module list (align 16): per module u32 mod_start, u32 mod_end
//           (exclusive), u32 string, u32 reserved = 0
//   ...     "hv\0", the command line, each module's string (align 1, NUL-
//           terminated)
//
// Multiboot2 (§3.6 "Boot information"), EBX = 0x9000, every tag 8-aligned:
//   fixed part  u32 total_size (up to and including the end tag), u32 0
//   type 1  command line: u32 type, u32 size, string
//   type 2  boot loader name "hv"
//   type 3  one per module: u32 mod_start, u32 mod_end (exclusive), string
//   type 4  basic memory information: u32 mem_lower = 639, u32 mem_upper
//   type 6  memory map: u32 entry_size = 24, u32 entry_version = 0, entries
//           of u64 base_addr, u64 length, u32 type, u32 reserved = 0
//   type 0  end, size 8
// A tag's size counts its fields and string, not the padding after it.
//
// The memory map is docs/guest-interface.md's: [0, 0x9FC00) available (1),
// [0x9FC00, 0x100000) reserved (2), [0x100000, RAM size) available (1).
// Every write goes through kernel/vm/guestmem.ts after an isRam check; a
// structure that would pass INFO_END writes nothing further and the build
// returns 0.
//
// The module's variables are scratch of the one load in progress, marked
// "machine-wide: load() scratch": loads run at guest set-up, one at a time
// and to completion, and nothing in them outlives load(), whose result
// (loader.Entry) the caller owns.
import * as guestmem from "../vm/guestmem";
import * as boot from "../boot/bootinfo";

export const INFO_BASE: u64 = 0x9000;
export const INFO_END: u64 = 0x10000;

const LOW_END: u64 = 0x9fc00; // end of conventional memory: mem_lower 639 KiB
const HIGH: u64 = 0x100000;
const MEM_AVAILABLE: u32 = 1;
const MEM_RESERVED: u32 = 2;

// ---- inputs (set by the loader before a build) ---------------------------------

// The command line: [cmdA, cmdA + cmdALen), then, if cmdBLen > 0, a space
// (only when the first part is not empty) and [cmdB, cmdB + cmdBLen); both
// in linear memory.
let cmdA: usize = 0; // machine-wide: load() scratch
let cmdALen: u32 = 0; // machine-wide: load() scratch
let cmdB: usize = 0; // machine-wide: load() scratch
let cmdBLen: u32 = 0; // machine-wide: load() scratch

export function setCommandLine(a: usize, aLen: u32, b: usize, bLen: u32): void {
  cmdA = a;
  cmdALen = aLen;
  cmdB = b;
  cmdBLen = bLen;
}
export function commandLineLength(): u32 {
  if (cmdBLen == 0) return cmdALen;
  return cmdALen + (cmdALen > 0 ? 1 : 0) + cmdBLen;
}

export const MODULES_MAX: i32 = <i32>boot.FILES_MAX;
const modFile = new StaticArray<u32>(MODULES_MAX); // machine-wide: load() scratch
const modStart = new StaticArray<u64>(MODULES_MAX); // machine-wide: load() scratch
const modEnd = new StaticArray<u64>(MODULES_MAX); // machine-wide: load() scratch
let modCount: i32 = 0; // machine-wide: load() scratch

export function clearModules(): void {
  modCount = 0;
}
// Module k is boot file `file`, placed at guest-physical [start, end).
export function addModule(file: u32, start: u64, end: u64): void {
  if (modCount == MODULES_MAX) return;
  modFile[modCount] = file;
  modStart[modCount] = start;
  modEnd[modCount] = end;
  modCount++;
}
export function moduleCount(): i32 {
  return modCount;
}
export function moduleFileOf(k: i32): u32 {
  return modFile[k];
}
export function moduleStartOf(k: i32): u64 {
  return modStart[k];
}
export function moduleEndOf(k: i32): u64 {
  return modEnd[k];
}

// ---- placing and writing --------------------------------------------------------

let cur: u64 = 0; // machine-wide: load() scratch
let overflow: bool = false; // machine-wide: load() scratch

// Reserve n bytes at the next `align`-aligned address of the area.
function reserve(n: u64, align: u64): u64 {
  const a = (cur + align - 1) & ~(align - 1);
  if (overflow || a > INFO_END || n > INFO_END - a) {
    overflow = true;
    return INFO_BASE;
  }
  cur = a + n;
  return a;
}

function ok(gpa: u64, n: u64): bool {
  if (overflow || !guestmem.isRam(gpa, n)) {
    overflow = true;
    return false;
  }
  return true;
}
function w8(gpa: u64, v: u32): void {
  if (ok(gpa, 1)) guestmem.write8(gpa, v);
}
function w32(gpa: u64, v: u32): void {
  if (ok(gpa, 4)) guestmem.write32(gpa, v);
}
function w64(gpa: u64, v: u64): void {
  if (ok(gpa, 8)) guestmem.write64(gpa, v);
}
function copyLinear(gpa: u64, src: usize, n: u32): void {
  if (n > 0 && ok(gpa, n)) guestmem.copyIn(gpa, src, n);
}
function copyHost(gpa: u64, src: u64, n: u64): void {
  if (n > 0 && ok(gpa, n)) guestmem.copyFromHost(gpa, src, n);
}

function begin(): void {
  overflow = false;
  cur = INFO_BASE;
  if (ok(INFO_BASE, INFO_END - INFO_BASE)) guestmem.zero(INFO_BASE, INFO_END - INFO_BASE);
}

// The command line and its NUL at gpa (commandLineLength() + 1 bytes).
function writeCommandLine(gpa: u64): void {
  copyLinear(gpa, cmdA, cmdALen);
  let p = gpa + <u64>cmdALen;
  if (cmdBLen > 0) {
    if (cmdALen > 0) {
      w8(p, 0x20);
      p++;
    }
    copyLinear(p, cmdB, cmdBLen);
    p += <u64>cmdBLen;
  }
  w8(p, 0);
}

// Module k's string (its boot-file name string "NAME ARGS") and NUL.
function moduleStringLength(k: i32): u64 {
  return <u64>boot.fileNameLen(modFile[k]);
}
function writeModuleString(gpa: u64, k: i32): void {
  const n = moduleStringLength(k);
  copyHost(gpa, boot.fileNameAddr(modFile[k]), n);
  w8(gpa + n, 0);
}

function writeLoaderName(gpa: u64): void {
  w8(gpa, 0x68); // 'h'
  w8(gpa + 1, 0x76); // 'v'
  w8(gpa + 2, 0);
}

// The memory map, as (base, length, type) triples.
function mmapCount(): i32 {
  return guestmem.size > HIGH ? 3 : 2;
}
function mmapBase(j: i32): u64 {
  return j == 0 ? 0 : j == 1 ? LOW_END : HIGH;
}
function mmapLength(j: i32): u64 {
  return j == 0 ? LOW_END : j == 1 ? HIGH - LOW_END : guestmem.size - HIGH;
}
function mmapType(j: i32): u32 {
  return j == 1 ? MEM_RESERVED : MEM_AVAILABLE;
}
function memLower(): u32 {
  return <u32>(LOW_END >> 10); // 639
}
function memUpper(): u32 {
  const kib = guestmem.size > HIGH ? (guestmem.size - HIGH) >> 10 : 0;
  return kib > 0xffffffff ? 0xffffffff : <u32>kib;
}

// ---- Multiboot 1 -----------------------------------------------------------------

const MB1_INFO_SIZE: u64 = 116;
const MB1_MEM: u32 = 1 << 0;
const MB1_CMDLINE: u32 = 1 << 2;
const MB1_MODS: u32 = 1 << 3;
const MB1_MMAP: u32 = 1 << 6;
const MB1_LOADER_NAME: u32 = 1 << 9;

// Build the structure; returns its guest-physical address, or 0 when it does
// not fit in the area.
export function buildMb1(): u64 {
  begin();
  const mbi = reserve(MB1_INFO_SIZE, 8);
  const n = mmapCount();
  const mmap = reserve(<u64>n * 24, 8);
  const mods = reserve(<u64>modCount * 16, 16);
  const name = reserve(3, 1);
  const cmd = reserve(<u64>commandLineLength() + 1, 1);

  w32(mbi + 0, MB1_MEM | MB1_CMDLINE | MB1_MODS | MB1_MMAP | MB1_LOADER_NAME);
  w32(mbi + 4, memLower());
  w32(mbi + 8, memUpper());
  w32(mbi + 16, <u32>cmd);
  w32(mbi + 20, <u32>modCount);
  w32(mbi + 24, modCount > 0 ? <u32>mods : 0);
  w32(mbi + 44, <u32>n * 24);
  w32(mbi + 48, <u32>mmap);
  w32(mbi + 64, <u32>name);
  for (let j = 0; j < n; j++) {
    const e = mmap + <u64>j * 24;
    w32(e, 20);
    w64(e + 4, mmapBase(j));
    w64(e + 12, mmapLength(j));
    w32(e + 20, mmapType(j));
  }
  writeLoaderName(name);
  writeCommandLine(cmd);
  for (let k = 0; k < modCount; k++) {
    const s = reserve(moduleStringLength(k) + 1, 1);
    writeModuleString(s, k);
    const m = mods + <u64>k * 16;
    w32(m, <u32>modStart[k]);
    w32(m + 4, <u32>modEnd[k]);
    w32(m + 8, <u32>s);
    w32(m + 12, 0);
  }
  return overflow ? 0 : mbi;
}

// ---- Multiboot2 -------------------------------------------------------------------

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_LOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_BASIC_MEMINFO: u32 = 4;
const TAG_MMAP: u32 = 6;

function tag(type: u32, size: u64): u64 {
  const t = reserve(size, 8);
  w32(t, type);
  w32(t + 4, <u32>size);
  return t;
}

export function buildMb2(): u64 {
  begin();
  const mbi = reserve(8, 8);
  let t = tag(TAG_CMDLINE, 8 + <u64>commandLineLength() + 1);
  writeCommandLine(t + 8);
  t = tag(TAG_LOADER_NAME, 8 + 3);
  writeLoaderName(t + 8);
  for (let k = 0; k < modCount; k++) {
    t = tag(TAG_MODULE, 16 + moduleStringLength(k) + 1);
    w32(t + 8, <u32>modStart[k]);
    w32(t + 12, <u32>modEnd[k]);
    writeModuleString(t + 16, k);
  }
  t = tag(TAG_BASIC_MEMINFO, 16);
  w32(t + 8, memLower());
  w32(t + 12, memUpper());
  const n = mmapCount();
  t = tag(TAG_MMAP, 16 + <u64>n * 24);
  w32(t + 8, 24);
  w32(t + 12, 0);
  for (let j = 0; j < n; j++) {
    const e = t + 16 + <u64>j * 24;
    w64(e, mmapBase(j));
    w64(e + 8, mmapLength(j));
    w32(e + 16, mmapType(j));
    w32(e + 20, 0);
  }
  tag(TAG_END, 8);
  w32(mbi, <u32>(cur - mbi));
  w32(mbi + 4, 0);
  return overflow ? 0 : mbi;
}
