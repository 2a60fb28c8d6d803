// Multiboot headers: finding the header in a guest kernel and reading what it
// asks of the loader.
//
// Multiboot 0.6.96 §3.1.1-§3.1.4 ("OS image format"): the header is
//   +0 magic 0x1BADB002  +4 flags  +8 checksum (magic + flags + checksum = 0)
//   +12 header_addr +16 load_addr +20 load_end_addr +24 bss_end_addr
//   +28 entry_addr                     (the a.out kludge, when flags bit 16)
//   +32 mode_type +36 width +40 height +44 depth   (when flags bit 2)
// within the first 8192 bytes, 4-byte aligned. Flags bits 0-15 are
// requirements (a loader that does not understand one must fail), bits 16-31
// optional features.
//
// Multiboot2 §3.1.1-§3.1.13: the header is
//   +0 magic 0xE85250D6  +4 architecture (0 = i386 protected mode)
//   +8 header_length  +12 checksum (the four u32 sum to 0)
// then tags (u16 type, u16 flags, u32 size; each starting 8-aligned; size
// counts the tag's fields but not the padding), ended by type 0 size 8;
// within the first 32768 bytes, 8-byte aligned. Tag flags bit 0 = optional:
// "the bootloader may ignore this tag if it lacks relevant support".
//
// A Multiboot2 header is preferred when a kernel carries both.
//
// The module's variables are scratch of the one load in progress, marked
// "machine-wide: load() scratch": loads run at guest set-up, one at a time
// and to completion, and nothing in them outlives load(), whose result
// (loader.Entry) the caller owns.
import * as image from "./image";
import * as print from "../lib/print";

export const MB1_MAGIC: u32 = 0x1badb002;
export const MB1_SEARCH: u32 = 8192;
export const MB2_MAGIC: u32 = 0xe85250d6;
export const MB2_SEARCH: u32 = 32768;

// Multiboot 1 header flags (§3.1.2).
export const MB1_PAGE_ALIGN: u32 = 1 << 0; // modules page-aligned: always done
export const MB1_MEMORY_INFO: u32 = 1 << 1; // mem_* and mmap_*: always provided
export const MB1_VIDEO_MODE: u32 = 1 << 2; // video mode table: not supported
export const MB1_AOUT_KLUDGE: u32 = 1 << 16; // address fields valid

// Multiboot2 header tag types (§3.1.3-§3.1.13).
const TAG_END: u32 = 0;
const TAG_INFO_REQUEST: u32 = 1;
const TAG_ADDRESS: u32 = 2;
const TAG_ENTRY: u32 = 3;
const TAG_CONSOLE: u32 = 4;
const TAG_FRAMEBUFFER: u32 = 5;
const TAG_MODULE_ALIGN: u32 = 6;
const TAG_EFI_BS: u32 = 7;
const TAG_EFI_I386_ENTRY: u32 = 8;
const TAG_EFI_AMD64_ENTRY: u32 = 9;
const TAG_RELOCATABLE: u32 = 10;
const TAG_OPTIONAL: u32 = 1;

// What was found.
export let version: i32 = 0; // machine-wide: load() scratch; 1 or 2
export let offset: u32 = 0; // machine-wide: load() scratch; file offset of the header
export let flags: u32 = 0; // machine-wide: load() scratch; Multiboot 1 flags
// Address fields: the Multiboot 1 a.out kludge or the Multiboot2 address tag.
export let hasAddress: bool = false; // machine-wide: load() scratch
export let headerAddr: u32 = 0; // machine-wide: load() scratch
export let loadAddr: u32 = 0; // machine-wide: load() scratch
export let loadEndAddr: u32 = 0; // machine-wide: load() scratch
export let bssEndAddr: u32 = 0; // machine-wide: load() scratch
// Entry: Multiboot 1 entry_addr (a.out kludge) or the Multiboot2 entry tag.
export let hasEntry: bool = false; // machine-wide: load() scratch
export let entryAddr: u32 = 0; // machine-wide: load() scratch

// Scan [0, limit) of the head in steps of `align` for a header with a valid
// checksum; returns its offset or -1. badAt receives the first offset whose
// magic matched but whose checksum did not.
let badAt: i32 = -1; // machine-wide: load() scratch
let badSum: u32 = 0; // machine-wide: load() scratch
function scan(magic: u32, from: u32, limit: u32, align: u32, size: u32): i32 {
  if (limit > image.headLen) limit = image.headLen;
  for (let o = from; o + size <= limit; o += align) {
    if (image.h32(o) != magic) continue;
    let sum: u32 = image.h32(o) + image.h32(o + 4) + image.h32(o + 8);
    if (magic == MB2_MAGIC) sum += image.h32(o + 12);
    if (sum == 0) return <i32>o;
    if (badAt < 0) {
      badAt = <i32>o;
      badSum = image.h32(o + (magic == MB2_MAGIC ? 12 : 8));
    }
  }
  return -1;
}

function failAt(what: string, off: u32, rest: string): bool {
  image.start();
  print.str(what);
  print.hex(off);
  print.str(rest);
  return image.end();
}

// Find the header. Sets version and offset, or prints why there is none.
export function detect(): bool {
  version = 0;
  hasAddress = false;
  hasEntry = false;
  flags = 0;
  image.readHead();
  badAt = -1;
  const o2 = scan(MB2_MAGIC, 0, MB2_SEARCH, 8, 16);
  const bad2 = badAt;
  const sum2 = badSum;
  badAt = -1;
  const o1 = scan(MB1_MAGIC, 0, MB1_SEARCH, 4, 12);
  if (o2 >= 0) {
    version = 2;
    offset = <u32>o2;
    return true;
  }
  if (o1 >= 0) {
    version = 1;
    offset = <u32>o1;
    return true;
  }
  if (bad2 >= 0) {
    image.start();
    print.str("Multiboot2 header at offset ");
    print.hex(<u64>bad2);
    print.str(" has a bad checksum ");
    print.hex(sum2);
    print.str(" (magic + architecture + header_length + checksum must be 0)");
    return image.end();
  }
  if (badAt >= 0) {
    image.start();
    print.str("Multiboot header at offset ");
    print.hex(<u64>badAt);
    print.str(" has a bad checksum ");
    print.hex(badSum);
    print.str(" (magic + flags + checksum must be 0)");
    return image.end();
  }
  // A valid header past the search window is a linker-script mistake worth
  // naming precisely.
  const far2 = scan(MB2_MAGIC, MB2_SEARCH, image.HEAD_MAX, 8, 16);
  if (far2 >= 0) return failAt("Multiboot2 header at offset ", <u32>far2, " is beyond the first 32 KiB");
  const far1 = scan(MB1_MAGIC, MB1_SEARCH, image.HEAD_MAX, 4, 12);
  if (far1 >= 0) return failAt("Multiboot header at offset ", <u32>far1, " is beyond the first 8 KiB");
  return image.fail("not a multiboot kernel (no Multiboot2 header in the first 32 KiB, no Multiboot header in the first 8 KiB)");
}

// ---- Multiboot 1 ------------------------------------------------------------

export function parseMb1(): bool {
  flags = image.h32(offset + 4);
  if ((flags & MB1_VIDEO_MODE) != 0) {
    return image.fail("requires a video mode (Multiboot flags bit 2), which hv does not set up");
  }
  const unknown = flags & 0xfff8; // requirement bits we do not know
  if (unknown != 0) return failAt("requires unknown Multiboot features (flags bits ", unknown, ")");
  if ((flags & MB1_AOUT_KLUDGE) != 0) {
    // The header then extends to entry_addr at +28.
    if (offset + 32 > MB1_SEARCH || offset + 32 > image.headLen) {
      return image.fail("Multiboot header with a.out kludge (flags bit 16) is cut off by the end of the first 8 KiB or of the file");
    }
    hasAddress = true;
    headerAddr = image.h32(offset + 12);
    loadAddr = image.h32(offset + 16);
    loadEndAddr = image.h32(offset + 20);
    bssEndAddr = image.h32(offset + 24);
    hasEntry = true;
    entryAddr = image.h32(offset + 28);
  }
  return true;
}

// ---- Multiboot2 -------------------------------------------------------------

// Multiboot2 information tags (§3.6) hv provides: command line, boot loader
// name, modules (possibly none), basic memory information, memory map (and
// the end tag, always there).
export function provides(t: u32): bool {
  return t == 0 || t == 1 || t == 2 || t == 3 || t == 4 || t == 6;
}

function infoName(t: u32): string {
  switch (t) {
    case 5: return "BIOS boot device";
    case 7: return "VBE info";
    case 8: return "framebuffer info";
    case 9: return "ELF symbols";
    case 10: return "APM table";
    case 11: return "EFI 32-bit system table pointer";
    case 12: return "EFI 64-bit system table pointer";
    case 13: return "SMBIOS tables";
    case 14: return "ACPI old RSDP";
    case 15: return "ACPI new RSDP";
    case 16: return "networking information";
    case 17: return "EFI memory map";
    case 18: return "EFI boot services not terminated";
    case 19: return "EFI 32-bit image handle pointer";
    case 20: return "EFI 64-bit image handle pointer";
    case 21: return "image load base physical address";
  }
  return "unknown";
}

function tagFail(t: u32, at: u32, what: string): bool {
  image.start();
  print.str("Multiboot2 header tag type ");
  print.dec(t);
  print.str(" at offset ");
  print.hex(at);
  print.str(": ");
  print.str(what);
  return image.end();
}

export function parseMb2(): bool {
  const arch = image.h32(offset + 4);
  if (arch != 0) return failAt("Multiboot2 header architecture ", arch, " is not i386 (0)");
  const hlen = image.h32(offset + 8);
  // Fixed part (16) and at least the end tag (8); all of it inside the
  // 32 KiB window and the file.
  if (hlen < 24) return failAt("Multiboot2 header_length ", hlen, " is too small for the fixed part and an end tag");
  const end = <u64>offset + <u64>hlen;
  if (end > <u64>MB2_SEARCH || end > <u64>image.headLen) {
    return failAt("Multiboot2 header_length ", hlen, " runs past the first 32 KiB or the end of the file");
  }
  const stop = <u32>end;
  let t = offset + 16;
  let sawEnd = false;
  while (t + 8 <= stop) {
    const type = image.h16(t);
    const optional = (image.h16(t + 2) & TAG_OPTIONAL) != 0;
    const size = image.h32(t + 4);
    if (size < 8 || <u64>t + <u64>size > <u64>stop) return tagFail(type, t, "size does not fit in header_length");
    if (type == TAG_END) {
      sawEnd = true;
      break;
    }
    if (type == TAG_INFO_REQUEST) {
      // §3.1.4: an array of requested information tag types. Without the
      // optional flag, a request we cannot honour is an error.
      for (let r = t + 8; r + 4 <= t + size; r += 4) {
        const want = image.h32(r);
        if (!optional && !provides(want)) {
          image.start();
          print.str("requires Multiboot2 information tag ");
          print.dec(want);
          print.str(" (");
          print.str(infoName(want));
          print.str("), which hv does not provide");
          return image.end();
        }
      }
    } else if (type == TAG_ADDRESS) {
      // §3.1.5
      if (size < 24) return tagFail(type, t, "address tag shorter than 24 bytes");
      hasAddress = true;
      headerAddr = image.h32(t + 8);
      loadAddr = image.h32(t + 12);
      loadEndAddr = image.h32(t + 16);
      bssEndAddr = image.h32(t + 20);
    } else if (type == TAG_ENTRY) {
      // §3.1.6
      if (size < 12) return tagFail(type, t, "entry address tag shorter than 12 bytes");
      hasEntry = true;
      entryAddr = image.h32(t + 8);
    } else if (type == TAG_CONSOLE) {
      // §3.1.9: bit 0 "console required" asks for a console described in
      // the information structure; hv describes none.
      if (size < 12) return tagFail(type, t, "console flags tag shorter than 12 bytes");
      if (!optional && (image.h32(t + 8) & 1) != 0) return tagFail(type, t, "requires a console, which hv does not describe");
    } else if (type == TAG_FRAMEBUFFER) {
      // §3.1.10
      if (!optional) return tagFail(type, t, "requires a framebuffer, which hv does not set up");
    } else if (type == TAG_MODULE_ALIGN || type == TAG_RELOCATABLE) {
      // §3.1.11: modules are always page-aligned. §3.1.13: hv loads a
      // relocatable image at its linked addresses, which it may.
    } else if (type == TAG_EFI_BS) {
      // §3.1.12
      if (!optional) return tagFail(type, t, "requires EFI boot services, which a guest never has");
    } else if (type == TAG_EFI_I386_ENTRY || type == TAG_EFI_AMD64_ENTRY) {
      // §3.1.7, §3.1.8: used only together with EFI boot services; ignored.
    } else if (!optional) {
      return tagFail(type, t, "unknown tag that is not optional");
    }
    t = <u32>((<u64>t + <u64>size + 7) & ~(<u64>7));
  }
  if (!sawEnd) return image.fail("Multiboot2 header has no end tag within header_length");
  return true;
}

// ---- address fields -----------------------------------------------------------
// Multiboot 0.6.96 §3.1.3 (flags bit 16) and Multiboot2 §3.1.5 (address tag):
// the file bytes from offset (header offset - (header_addr - load_addr)) go
// to load_addr, up to load_end_addr (0: to the end of the file); zeros follow
// up to bss_end_addr (0: no bss). Multiboot2 adds load_addr = 0xFFFFFFFF:
// load from the beginning of the file, which puts file offset 0 at
// header_addr - header offset. The result is one plan entry.

function addrFail(what: string, v: u64, rest: string): bool {
  image.start();
  print.str(version == 2 ? "Multiboot2 address tag: " : "Multiboot a.out kludge: ");
  print.str(what);
  print.hex(v);
  print.str(rest);
  return image.end();
}

export function planAddress(): bool {
  const hdrOff = <u64>offset;
  const hAddr = <u64>headerAddr;
  let phys: u64;
  let fileStart: u64;
  if (version == 2 && loadAddr == 0xffffffff) {
    if (hAddr < hdrOff) return addrFail("header_addr ", hAddr, " is below the header's own file offset");
    fileStart = 0;
    phys = hAddr - hdrOff;
  } else {
    phys = <u64>loadAddr;
    if (phys > hAddr) return addrFail("load_addr ", phys, " is above header_addr");
    const delta = hAddr - phys;
    if (delta > hdrOff) return addrFail("header_addr - load_addr = ", delta, " is more than the header's file offset: loading would start before the file");
    fileStart = hdrOff - delta;
  }
  let loadLen: u64;
  if (loadEndAddr == 0) {
    loadLen = image.length - fileStart;
  } else {
    const le = <u64>loadEndAddr;
    if (le < phys) return addrFail("load_end_addr ", le, " is below load_addr");
    loadLen = le - phys;
    if (!image.has(fileStart, loadLen)) {
      image.start();
      print.str(version == 2 ? "Multiboot2 address tag: " : "Multiboot a.out kludge: ");
      print.str("load_end_addr ");
      print.hex(le);
      print.str(" needs file bytes up to offset ");
      print.hex(fileStart + loadLen);
      print.str(", past the end of the file (");
      print.dec(image.length);
      print.str(" bytes)");
      return image.end();
    }
  }
  let memLen = loadLen;
  if (bssEndAddr != 0) {
    const be = <u64>bssEndAddr;
    if (be < phys + loadLen) return addrFail("bss_end_addr ", be, " is below the end of the loaded data");
    memLen = be - phys;
  }
  if (memLen == 0) return addrFail("nothing to load at ", phys, "");
  image.planAdd(phys, memLen, fileStart, loadLen, -1);
  return true;
}
