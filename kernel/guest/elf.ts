// ELF executables as multiboot kernels: the ELF header and the program
// header table, turned into load-plan entries (kernel/guest/image.ts).
//
// References: System V ABI (gABI) "ELF Header", "Program Header" (ELF32
// layouts, Intel386 supplement for EM_386) and "ELF-64 Object File Format"
// 1.5 §3, §6 (ELF64 layouts, EM_X86_64 from the x86-64 psABI). Multiboot
// 0.6.96 §3.1.1 and Multiboot2 §3.1.1 both load ELF by the program headers;
// like other multiboot loaders we place each PT_LOAD segment at its physical
// address p_paddr, copy p_filesz bytes from p_offset and zero up to p_memsz.
//
// Only what is needed to load is read: e_ident, e_type, e_machine,
// e_version, e_entry, e_phoff, e_phentsize, e_phnum and, per program header,
// p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz. Everything is
// checked against the file's length with overflow-free arithmetic before use.
//
// The module's variables are scratch of the one load in progress, marked
// "machine-wide: load() scratch": loads run at guest set-up, one at a time
// and to completion, and nothing in them outlives load(), whose result
// (loader.Entry) the caller owns.
import * as image from "./image";
import * as print from "../lib/print";

// e_ident indexes and values (gABI "ELF Identification").
const EI_CLASS: u64 = 4;
const EI_DATA: u64 = 5;
const EI_VERSION: u64 = 6;
const EI_NIDENT: u64 = 16;
const ELFCLASS32: u32 = 1;
const ELFCLASS64: u32 = 2;
const ELFDATA2LSB: u32 = 1;
const EV_CURRENT: u32 = 1;
const ET_EXEC: u32 = 2;
const EM_386: u32 = 3;
const EM_X86_64: u32 = 62;
const PT_LOAD: u32 = 1;
const PN_XNUM: u32 = 0xffff; // e_phnum escape for extended numbering

// Header sizes: Elf32_Ehdr 52, Elf64_Ehdr 64; Elf32_Phdr 32, Elf64_Phdr 56.
const EHDR32: u64 = 52;
const EHDR64: u64 = 64;
const PHDR32: u32 = 32;
const PHDR64: u32 = 56;

// resolveEntry's answer when e_entry lies in no segment. No entry can be
// this address: a plan range [a, a + n) never wraps, so it ends at or below
// 2^64 - 1 and contains at most 2^64 - 2.
export const NO_ENTRY: u64 = u64.MAX_VALUE;

// Segment k of the plan came from a program header with this p_vaddr.
const vaddrs = new StaticArray<u64>(image.PLAN_MAX); // machine-wide: load() scratch

// e_entry @24: u32 in ELF32, u64 in ELF64 (plan() has checked the class).
function entryField(): u64 {
  return image.rd8(EI_CLASS) == ELFCLASS64 ? image.rd64(24) : <u64>image.rd32(24);
}

// Does the file start with the ELF magic 0x7f 'E' 'L' 'F'?
export function isElf(): bool {
  return image.has(0, 4) && image.rd32(0) == 0x464c457f;
}

function bad(what: string, v: u64): bool {
  image.start();
  print.str(what);
  print.hex(v);
  return image.end();
}

function truncated(need: u64): bool {
  image.start();
  print.str("ELF file truncated: ");
  print.dec(image.length);
  print.str(" bytes, the ELF header needs ");
  print.dec(need);
  return image.end();
}

// Check the ELF header and add every PT_LOAD segment to the plan.
export function plan(): bool {
  if (!image.has(0, EI_NIDENT)) return truncated(EI_NIDENT);
  const cls = image.rd8(EI_CLASS);
  if (cls != ELFCLASS32 && cls != ELFCLASS64) return bad("ELF class (EI_CLASS) is neither ELFCLASS32 nor ELFCLASS64: ", cls);
  const is64 = cls == ELFCLASS64;
  if (image.rd8(EI_DATA) != ELFDATA2LSB) return bad("ELF data encoding (EI_DATA) is not little-endian: ", image.rd8(EI_DATA));
  if (image.rd8(EI_VERSION) != EV_CURRENT) return bad("ELF version (EI_VERSION) is not 1: ", image.rd8(EI_VERSION));
  const ehsize = is64 ? EHDR64 : EHDR32;
  if (!image.has(0, ehsize)) return truncated(ehsize);
  // e_type @16, e_machine @18, e_version @20 in both classes.
  const type = image.rd16(16);
  if (type != ET_EXEC) return bad("not an executable ELF file (e_type is not ET_EXEC): ", type);
  const machine = image.rd16(18);
  if (machine != (is64 ? EM_X86_64 : EM_386)) {
    return bad(is64 ? "ELF64 file is not for x86-64 (e_machine is not EM_X86_64): " : "ELF32 file is not for i386 (e_machine is not EM_386): ", machine);
  }
  if (image.rd32(20) != EV_CURRENT) return bad("ELF version (e_version) is not 1: ", image.rd32(20));

  // ELF32: e_phoff @28 u32, e_phentsize @42, e_phnum @44.
  // ELF64: e_phoff @32 u64, e_phentsize @54, e_phnum @56.
  const phoff = is64 ? image.rd64(32) : <u64>image.rd32(28);
  const phentsize = image.rd16(is64 ? 54 : 42);
  const phnum = image.rd16(is64 ? 56 : 44);
  if (phnum == 0) return image.fail("ELF file has no program headers (e_phnum is 0)");
  if (phnum == PN_XNUM) return image.fail("ELF extended program header numbering (e_phnum 0xffff) is not supported");
  const minEnt = is64 ? PHDR64 : PHDR32;
  if (phentsize < minEnt) return bad("ELF program header size e_phentsize is too small: ", phentsize);
  const tableSize = <u64>phnum * <u64>phentsize; // < 2^32: no overflow
  if (!image.has(phoff, tableSize)) {
    image.start();
    print.str("ELF program header table");
    if (phoff > image.length) {
      print.str(" at e_phoff ");
      print.hex(phoff);
    } else {
      image.range(phoff, tableSize);
    }
    print.str(" extends past the end of the file (");
    print.dec(image.length);
    print.str(" bytes)");
    return image.end();
  }

  for (let i: u32 = 0; i < phnum; i++) {
    const p = phoff + <u64>i * <u64>phentsize;
    if (image.rd32(p) != PT_LOAD) continue;
    let offset: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64;
    if (is64) {
      // Elf64_Phdr: p_type @0, p_flags @4, p_offset @8, p_vaddr @16,
      // p_paddr @24, p_filesz @32, p_memsz @40, p_align @48.
      offset = image.rd64(p + 8);
      vaddr = image.rd64(p + 16);
      paddr = image.rd64(p + 24);
      filesz = image.rd64(p + 32);
      memsz = image.rd64(p + 40);
    } else {
      // Elf32_Phdr: p_type @0, p_offset @4, p_vaddr @8, p_paddr @12,
      // p_filesz @16, p_memsz @20, p_flags @24, p_align @28.
      offset = <u64>image.rd32(p + 4);
      vaddr = <u64>image.rd32(p + 8);
      paddr = <u64>image.rd32(p + 12);
      filesz = <u64>image.rd32(p + 16);
      memsz = <u64>image.rd32(p + 20);
    }
    if (memsz == 0 && filesz == 0) continue; // occupies nothing
    if (filesz > memsz) {
      image.start();
      print.str("segment ");
      print.dec(i);
      print.str(": p_filesz ");
      print.hex(filesz);
      print.str(" is larger than p_memsz ");
      print.hex(memsz);
      return image.end();
    }
    if (!image.has(offset, filesz)) {
      image.start();
      print.str("segment ");
      print.dec(i);
      print.str(": file data at offset ");
      print.hex(offset);
      print.str(" size ");
      print.hex(filesz);
      print.str(" extends past the end of the file (");
      print.dec(image.length);
      print.str(" bytes)");
      return image.end();
    }
    // The physical range must not wrap: 64 bits for ELF64; for ELF32 the
    // addresses are 32-bit, so the range must end at or below 4 GiB.
    const limit: u64 = is64 ? u64.MAX_VALUE : 0x100000000;
    if (paddr > limit || memsz > limit - paddr) {
      image.start();
      print.str("segment ");
      print.dec(i);
      print.str(": p_paddr ");
      print.hex(paddr);
      print.str(" + p_memsz ");
      print.hex(memsz);
      print.str(is64 ? " overflows 64 bits" : " wraps past 4 GiB");
      return image.end();
    }
    const k = image.planCount;
    if (!image.planAdd(paddr, memsz, offset, filesz, <i32>i)) {
      return bad("ELF file has too many loadable segments; at most ", <u64>image.PLAN_MAX);
    }
    vaddrs[k] = vaddr;
  }
  if (image.planCount == 0) return image.fail("ELF file has no loadable (PT_LOAD) segment");
  return true;
}

// The entry point as a physical address: e_entry when it lies in a segment's
// physical range [p_paddr, p_paddr + p_memsz); otherwise, when it lies in a
// segment's virtual range [p_vaddr, p_vaddr + p_memsz) (a kernel linked to
// run at a higher virtual address), its physical counterpart in that segment
// (what GRUB does for such kernels). Returns NO_ENTRY, with the message, when
// it lies in no segment. Called after plan() succeeded.
export function resolveEntry(): u64 {
  const entry = entryField();
  if (image.planContains(entry)) return entry;
  for (let k = 0; k < image.planCount; k++) {
    const v = vaddrs[k];
    if (entry >= v && entry - v < image.planMemOf(k)) return image.planAddrOf(k) + (entry - v);
  }
  bad("ELF entry point (e_entry) is not inside a loaded segment: ", entry);
  return NO_ENTRY;
}
