// The boot information the front-ends (boot/uefi, boot/multiboot) hand us:
// struct hv_bootinfo in boot/include/bootinfo.h. It lives in physical memory
// and is read through mem.*; nothing in it is trusted until checked here.
import * as mem from "../hw/mem";
import * as print from "../lib/print";

export const BOOTINFO_MAGIC: u32 = 0x49425648; // "HVBI"
export const BOOTINFO_VERSION: u32 = 1;
export const SOURCE_UEFI: u32 = 1;
export const SOURCE_MULTIBOOT: u32 = 2;

export const MEM_AVAILABLE: u32 = 1;
export const MEM_RESERVED: u32 = 2;
export const MEM_ACPI: u32 = 3;
export const MEM_NVS: u32 = 4;
export const MEM_BAD: u32 = 5;
export const MEM_HYPERVISOR: u32 = 0x100;
export const MEM_BOOTFILE: u32 = 0x101;
export const MEM_BOOTDATA: u32 = 0x102;

const BOOTINFO_SIZE: u64 = 80;
const MMAP_ENTRY_SIZE: u64 = 24;
const FILE_ENTRY_SIZE: u64 = 32;
export const MMAP_MAX: u32 = 1024;
export const FILES_MAX: u32 = 64;
export const CMDLINE_MAX: u32 = 4095;
const NAME_MAX: u32 = 255;

export let address: u64 = 0; // machine-wide: boot info
export let source: u32 = 0; // machine-wide: boot info
export let mmapCount: u32 = 0; // machine-wide: boot info
let mmapAddr: u64 = 0; // machine-wide: boot info
export let fileCount: u32 = 0; // machine-wide: boot info
let filesAddr: u64 = 0; // machine-wide: boot info
export let tscAtEntry: u64 = 0; // machine-wide: boot info
export let cpuCount: u32 = 0; // machine-wide: boot info

// The command line, copied into linear memory (NUL-terminated).
export const cmdline: usize = memory.data(<i32>CMDLINE_MAX + 1); // machine-wide: boot info
export let cmdlineLen: u32 = 0; // machine-wide: boot info

function fail(what: string, value: u64): bool {
  print.str("hv: boot info invalid: ");
  print.str(what);
  print.str(" (");
  print.hex(value);
  print.str(")");
  print.nl();
  return false;
}

// Read and check the structure at pa. Prints the reason and returns false if
// anything is out of range; afterwards the accessors below are safe to use.
export function parse(pa: u64): bool {
  if (pa == 0 || (pa & 7) != 0) return fail("address", pa);
  address = pa;
  const magic = mem.read32(pa);
  if (magic != BOOTINFO_MAGIC) return fail("magic", magic);
  const version = mem.read32(pa + 4);
  if (version != BOOTINFO_VERSION) return fail("version", version);
  source = mem.read32(pa + 8);
  if (source != SOURCE_UEFI && source != SOURCE_MULTIBOOT) return fail("source", source);
  mmapCount = mem.read32(pa + 12);
  if (mmapCount == 0 || mmapCount > MMAP_MAX) return fail("memory map entry count", mmapCount);
  mmapAddr = mem.read64(pa + 16);
  if (mmapAddr == 0) return fail("memory map address", mmapAddr);
  const cmdAddr = mem.read64(pa + 24);
  cmdlineLen = mem.read32(pa + 32);
  if (cmdlineLen > CMDLINE_MAX) return fail("command line length", cmdlineLen);
  if (cmdlineLen > 0 && cmdAddr == 0) return fail("command line address", cmdAddr);
  fileCount = mem.read32(pa + 36);
  if (fileCount > FILES_MAX) return fail("file count", fileCount);
  filesAddr = mem.read64(pa + 40);
  if (fileCount > 0 && filesAddr == 0) return fail("file table address", filesAddr);
  tscAtEntry = mem.read64(pa + 48);
  cpuCount = mem.read32(pa + 72);

  if (cmdlineLen > 0) mem.copyin(cmdline, cmdAddr, cmdlineLen);
  store<u8>(cmdline + <usize>cmdlineLen, 0);
  for (let i: u32 = 0; i < cmdlineLen; i++) {
    const c = load<u8>(cmdline + <usize>i);
    if (c == 0 || c >= 0x7f) return fail("command line byte", c);
  }
  for (let i: u32 = 0; i < mmapCount; i++) {
    const end = mmapBase(i) + mmapLength(i);
    if (end < mmapBase(i)) return fail("memory map entry wraps", mmapBase(i));
  }
  for (let i: u32 = 0; i < fileCount; i++) {
    if (fileBase(i) + fileLength(i) < fileBase(i)) return fail("file wraps", fileBase(i));
    if (fileNameLen(i) == 0 || fileNameLen(i) > NAME_MAX) return fail("file name length", fileNameLen(i));
    if (fileNameAddr(i) == 0) return fail("file name address", 0);
  }
  return true;
}

export function mmapBase(i: u32): u64 {
  return mem.read64(mmapAddr + <u64>i * MMAP_ENTRY_SIZE);
}
export function mmapLength(i: u32): u64 {
  return mem.read64(mmapAddr + <u64>i * MMAP_ENTRY_SIZE + 8);
}
export function mmapType(i: u32): u32 {
  return mem.read32(mmapAddr + <u64>i * MMAP_ENTRY_SIZE + 16);
}
export function fileBase(i: u32): u64 {
  return mem.read64(filesAddr + <u64>i * FILE_ENTRY_SIZE);
}
export function fileLength(i: u32): u64 {
  return mem.read64(filesAddr + <u64>i * FILE_ENTRY_SIZE + 8);
}
export function fileNameAddr(i: u32): u64 {
  return mem.read64(filesAddr + <u64>i * FILE_ENTRY_SIZE + 16);
}
export function fileNameLen(i: u32): u32 {
  return mem.read32(filesAddr + <u64>i * FILE_ENTRY_SIZE + 24);
}

// The ranges the boot data itself occupies (structure, map, file table):
// the page allocator must not hand them out even if a front-end forgot to
// mark them.
export function selfRangeCount(): u32 {
  return 3;
}
export function selfRangeBase(k: u32): u64 {
  return k == 0 ? address : k == 1 ? mmapAddr : filesAddr;
}
export function selfRangeLength(k: u32): u64 {
  return k == 0 ? BOOTINFO_SIZE : k == 1 ? <u64>mmapCount * MMAP_ENTRY_SIZE : <u64>fileCount * FILE_ENTRY_SIZE;
}

export function typeName(t: u32): string {
  switch (t) {
    case MEM_AVAILABLE: return "available";
    case MEM_RESERVED: return "reserved";
    case MEM_ACPI: return "acpi";
    case MEM_NVS: return "acpi-nvs";
    case MEM_BAD: return "bad";
    case MEM_HYPERVISOR: return "hypervisor";
    case MEM_BOOTFILE: return "boot-file";
    case MEM_BOOTDATA: return "boot-data";
  }
  return "unknown";
}

// Print the boot summary: source, command line, map, files.
export function report(): void {
  print.str("hv: boot: ");
  print.str(source == SOURCE_UEFI ? "uefi" : "multiboot2");
  print.str(", ");
  print.dec(mmapCount);
  print.str(" memory map entries, ");
  print.dec(fileCount);
  print.str(" files, front-end entry tsc=");
  print.dec(tscAtEntry);
  print.nl();
  print.str("hv: command line: \"");
  print.bytes(cmdline, <i32>cmdlineLen);
  print.str("\"");
  print.nl();
  for (let i: u32 = 0; i < fileCount; i++) {
    print.str("hv: file ");
    const tmp = memory.data(256);
    const n = fileNameLen(i);
    mem.copyin(tmp, fileNameAddr(i), n);
    print.bytes(tmp, <i32>n);
    print.str(": ");
    print.dec(fileLength(i));
    print.str(" bytes at ");
    print.hex(fileBase(i));
    print.nl();
  }
}
