// Loading a multiboot kernel (docs/guest-interface.md, "Boot") into the
// guest RAM described by kernel/vm/guestmem.ts. A Linux bzImage (the
// "HdrS" setup header) goes to kernel/guest/bzimage.ts instead.
//
//   load(file, cmdline, cmdlineLen, modules, moduleCount)
//     1. find the header (kernel/guest/multiboot.ts): Multiboot2 preferred;
//     2. build the load plan: the address fields (Multiboot a.out kludge,
//        Multiboot2 address tag) when present, else the ELF program headers
//        (kernel/guest/elf.ts);
//     3. validate the plan, the entry point, module placement and the
//        information structure against the file and guest RAM;
//     4. only then write: the information structure (kernel/guest/mbinfo.ts),
//        the kernel image (file bytes, then zeros up to each range's end),
//        the modules.
//   A problem prints one line "hv: guest: NAME: what is wrong" and returns
//   false; nothing traps and nothing is written outside guest RAM (every
//   write goes through guestmem after an isRam check).
//
// Decisions:
// - Where a kernel may load: every loaded range must lie inside guest RAM,
//   must not touch page 0 [0, 0x1000) (the real-mode interrupt table and
//   BIOS data area on a PC; a segment there is almost always a linker script
//   that forgot its load address) and must not overlap the boot information
//   area [0x9000, 0x10000), which the loader keeps for the information
//   structure. ELF segments must not overlap each other (the zeroing of one
//   would erase another's data). Anything else in RAM is allowed, including
//   low memory and the range the memory map reports as reserved.
// - Entry: Multiboot2 entry address tag, else the Multiboot a.out kludge's
//   entry_addr, else ELF e_entry (a virtual e_entry inside a segment's
//   [p_vaddr, p_vaddr + p_memsz) is translated to its physical address). It
//   must lie inside a loaded range and below 4 GiB (the guest starts in
//   32-bit protected mode with paging off).
// - Modules: in the order given, each copied whole to the next page boundary
//   at or above max(kernelEnd, 1 MiB); mod_end is exclusive (start + length);
//   all must end inside guest RAM and at or below 4 GiB (the fields are
//   32-bit). Each module's string is its boot-file name string "NAME ARGS".
// - Command line: Multiboot 1 gets the kernel's boot-file name string
//   "NAME ARGS" (as QEMU's and GRUB Legacy's multiboot loaders pass the
//   kernel's file name first); Multiboot2 gets only "ARGS" (as GRUB's
//   multiboot2 command passes the words after the file name, and as
//   boot/multiboot reads its own command line, so that hv boots as its own
//   guest). In both, a non-empty `cmdline` from the caller is appended after
//   one space (no space when the first part is empty). At most CMDLINE_MAX
//   bytes.
import * as boot from "../boot/bootinfo";
import * as guestmem from "../vm/guestmem";
import * as print from "../lib/print";
import * as image from "./image";
import * as elf from "./elf";
import * as mb from "./multiboot";
import * as info from "./mbinfo";
import * as bz from "./bzimage";

// EAX at entry (Multiboot 0.6.96 §3.2, Multiboot2 §3.3 "Machine state").
export const MB1_BOOT_MAGIC: u32 = 0x2badb002;
export const MB2_BOOT_MAGIC: u32 = 0x36d76289;

export const CMDLINE_MAX: u32 = 4095;
const PAGE: u64 = 4096;
const HIGH: u64 = 0x100000;
const FOUR_GIB: u64 = 0x100000000;
const PAGE0_END: u64 = 0x1000;

// What load() returns: the initial state of the guest's boot vCPU, which
// is all the rest of the hypervisor learns of the boot protocol: it starts
// at eip in 32-bit protected mode with paging off, with the protocol's
// magic in EAX and the information structure's address in EBX (Multiboot
// 0.6.96 §3.2, Multiboot2 §3.3 "Machine state"). And where the kernel image
// and the modules ended (for tests). The caller owns it.
@unmanaged export class Entry {
  eip: u32 = 0;
  eax: u32 = 0;
  ebx: u32 = 0;
  kernelEnd: u64 = 0; // highest guest-physical byte of the image + 1
  modulesEnd: u64 = 0; // highest guest-physical byte of a module + 1 (0: none)
  // The Linux boot protocol (bzimage.ts): ESI, and the GDT the entry state
  // loads (gdtLimit 0: none, the multiboot state of vmcs01.create).
  esi: u32 = 0;
  gdtBase: u32 = 0;
  gdtLimit: u32 = 0;
}

// A module's name for a message (image.ts's buffers hold the kernel's);
// like the variables of image.ts, scratch of the load in progress.
const modName: usize = memory.data(256); // machine-wide: load() scratch

function fail2(what: string, v: u64, rest: string): bool {
  image.start();
  print.str(what);
  print.hex(v);
  print.str(rest);
  return image.end();
}

// Load boot file `file` into guest RAM; on success e holds the entry state.
// A Linux bzImage (bzimage.ts) takes `initrd` (a boot file, or -1) and gets
// ACPI tables for `vcpus` vCPUs; a multiboot kernel takes the modules.
export function load(e: Entry, file: u32, cmdline: usize, cmdlineLen: i32, modules: usize, moduleCount: i32,
  initrd: i32 = -1, vcpus: i32 = 1): bool {
  memory.fill(changetype<usize>(e), 0, offsetof<Entry>());
  if (file >= boot.fileCount) {
    print.str("hv: guest: boot file ");
    print.dec(file);
    print.str(": no such file (there are ");
    print.dec(boot.fileCount);
    print.str(")");
    print.nl();
    return false;
  }
  image.open(file);
  if (guestmem.size < HIGH) return fail2("guest RAM is ", guestmem.size, " bytes; at least 1 MiB is needed");
  if (cmdlineLen < 0) return image.fail("negative command line length");
  if (moduleCount < 0 || moduleCount > info.MODULES_MAX) {
    return fail2("too many modules: ", <u64>moduleCount, "");
  }
  for (let k = 0; k < moduleCount; k++) {
    const f = image.listAt(modules, k);
    if (f >= boot.fileCount) return fail2("module list names boot file ", f, ", which does not exist");
  }

  if (bz.isBzImage()) {
    if (moduleCount > 0) return image.fail("module= is for multiboot kernels; a Linux kernel takes initrd=");
    if (initrd >= <i32>boot.fileCount) return fail2("initrd= names boot file ", <u64>initrd, ", which does not exist");
    // Its command line: the words after the file's name, then args=.
    const aOff = image.wordLen < image.nameLen ? image.wordLen + 1 : image.nameLen;
    return bz.load(e, image.name + <usize>aOff, <u32>(image.nameLen - aOff), cmdline, <u32>cmdlineLen, initrd, vcpus);
  }
  if (initrd >= 0) return image.fail("initrd= is for Linux kernels (bzImage); a multiboot kernel takes module=");
  if (!mb.detect()) return false;
  const version = mb.version;
  if (version == 2 ? !mb.parseMb2() : !mb.parseMb1()) return false;

  // The plan.
  if (mb.hasAddress) {
    if (!mb.planAddress()) return false;
  } else {
    if (!elf.isElf()) {
      return image.fail(version == 2
        ? "not an ELF file, and the Multiboot2 header has no address tag"
        : "not an ELF file, and the Multiboot header has no a.out kludge (flags bit 16)");
    }
    if (!elf.plan()) return false;
  }
  if (!checkPlan(e)) return false;

  // The entry point.
  let entry: u64;
  if (mb.hasEntry) {
    entry = <u64>mb.entryAddr;
    if (!image.planContains(entry)) {
      return fail2(version == 2 ? "entry address tag " : "entry_addr ", entry, " is not inside the loaded image");
    }
  } else if (mb.hasAddress) {
    return image.fail("Multiboot2 address tag without an entry address tag: no entry point");
  } else {
    entry = elf.resolveEntry();
    if (entry == elf.NO_ENTRY) return false;
  }
  if (entry >= FOUR_GIB) return fail2("entry point ", entry, " is above 4 GiB (the guest starts in 32-bit protected mode)");

  if (!placeModules(e, modules, moduleCount)) return false;

  // The command line (see the decisions above).
  let aOff = 0;
  if (version == 2) aOff = image.wordLen < image.nameLen ? image.wordLen + 1 : image.nameLen;
  info.setCommandLine(image.name + <usize>aOff, <u32>(image.nameLen - aOff), cmdline, <u32>cmdlineLen);
  if (info.commandLineLength() > CMDLINE_MAX) {
    return fail2("command line too long: ", <u64>info.commandLineLength(), " bytes (at most 4095)");
  }

  const ebx = version == 2 ? info.buildMb2() : info.buildMb1();
  if (ebx == 0) {
    image.start();
    print.str("boot information does not fit in");
    image.range(info.INFO_BASE, info.INFO_END - info.INFO_BASE);
    return image.end();
  }
  if (!copyImage() || !copyModules()) return image.fail("internal error: a checked range left guest RAM");

  e.eip = <u32>entry;
  e.eax = version == 2 ? MB2_BOOT_MAGIC : MB1_BOOT_MAGIC;
  e.ebx = <u32>ebx;
  return true;
}

// Each loaded range: inside guest RAM, clear of page 0 and of the boot
// information area, and (ELF) clear of the other segments. Sets
// e.kernelEnd.
function checkPlan(e: Entry): bool {
  let top: u64 = 0;
  for (let k = 0; k < image.planCount; k++) {
    const a = image.planAddrOf(k);
    const n = image.planMemOf(k);
    // No plan entry wraps (elf.ts and planAddress check, and their fields
    // are at most 64 and 33 bits wide respectively).
    if (!guestmem.isRam(a, n)) {
      image.start();
      image.planWhat(k);
      image.range(a, n);
      print.str(" is outside guest RAM");
      image.range(0, guestmem.size);
      return image.end();
    }
    let what: string = "";
    if (a < PAGE0_END) what = " overlaps page 0, which hv keeps free:";
    else if (a < info.INFO_END && a + n > info.INFO_BASE) what = " overlaps the boot information area";
    if (what.length > 0) {
      image.start();
      image.planWhat(k);
      image.range(a, n);
      print.str(what);
      if (a < PAGE0_END) image.range(0, PAGE0_END);
      else image.range(info.INFO_BASE, info.INFO_END - info.INFO_BASE);
      return image.end();
    }
    for (let j = 0; j < k; j++) {
      const b = image.planAddrOf(j);
      if (a < b + image.planMemOf(j) && b < a + n) {
        image.start();
        image.planWhat(j);
        image.range(b, image.planMemOf(j));
        print.str(" and ");
        image.planWhat(k);
        image.range(a, n);
        print.str(" overlap");
        return image.end();
      }
    }
    if (a + n > top) top = a + n;
  }
  e.kernelEnd = top;
  return true;
}

// Page-aligned, in order, above max(kernelEnd, 1 MiB). Sets e.modulesEnd.
function placeModules(e: Entry, modules: usize, count: i32): bool {
  info.clearModules();
  let next = e.kernelEnd > HIGH ? e.kernelEnd : HIGH;
  next = (next + PAGE - 1) & ~(PAGE - 1);
  for (let k = 0; k < count; k++) {
    const f = image.listAt(modules, k);
    const len = boot.fileLength(f);
    const start = next;
    if (start > guestmem.size || len > guestmem.size - start || start + len > FOUR_GIB) {
      const n = image.copyName(f, modName);
      image.start();
      print.str("module ");
      print.bytes(modName, image.firstWord(modName, n));
      print.str(" (");
      print.dec(len);
      print.str(" bytes) does not fit");
      image.range(start, len);
      print.str(start + len > FOUR_GIB && guestmem.size >= FOUR_GIB ? " below 4 GiB" : " in guest RAM");
      image.range(0, guestmem.size);
      return image.end();
    }
    info.addModule(f, start, start + len);
    e.modulesEnd = start + len;
    next = (start + len + PAGE - 1) & ~(PAGE - 1);
  }
  return true;
}

function copyImage(): bool {
  for (let k = 0; k < image.planCount; k++) {
    const a = image.planAddrOf(k);
    const n = image.planMemOf(k);
    const fsz = image.planFileOf(k);
    if (!guestmem.isRam(a, n) || fsz > n || !image.has(image.planOffOf(k), fsz)) return false;
    if (fsz > 0) guestmem.copyFromHost(a, image.base + image.planOffOf(k), fsz);
    // Multiboot and ELF: memory past the file data (bss) reads as zero.
    if (n > fsz) guestmem.zero(a + fsz, n - fsz);
  }
  return true;
}

function copyModules(): bool {
  for (let k = 0; k < info.moduleCount(); k++) {
    const f = info.moduleFileOf(k);
    const start = info.moduleStartOf(k);
    const len = info.moduleEndOf(k) - start;
    if (len != boot.fileLength(f) || !guestmem.isRam(start, len)) return false;
    if (len > 0) guestmem.copyFromHost(start, boot.fileBase(f), len);
  }
  return true;
}
