// Loading a Linux bzImage by the 32-bit boot protocol (Linux's
// Documentation/x86/boot.rst; docs/guest-interface.md "Linux boot
// protocol").
//
// Recognised by its setup header: "HdrS" at file offset 0x202. Required:
// boot_flag 0xAA55 at 0x1FE, protocol version (0x206) 2.12 or later (the
// 64-bit-aware fields up to xloadflags and pref_address are then defined),
// LOADED_HIGH in loadflags (a bzImage: its protected-mode part runs at or
// above 1 MiB), a setup header that ends (0x202 + the byte at 0x201) inside
// the setup sectors and before boot_params' fields past it (0x290), and a
// protected-mode kernel after the setup: setup_sects (0x1F1; 0 means 4)
// sectors of setup follow the boot sector, and the file's bytes from
// (setup_sects + 1) * 512 on are the protected-mode kernel.
//
// Guest-physical layout (everything below 1 MiB besides the zero page is
// the reserved range of the memory map):
//   0x9000   boot_params, the "zero page" (4 KiB; the multiboot loader's
//            information area, kernel/guest/mbinfo.ts)
//   0xA000   the command line, NUL-terminated (at most cmdline_size bytes
//            and 4095)
//   0x9FC00  the boot GDT: null, null, 0x10 flat 32-bit code (execute/
//            read), 0x18 flat 32-bit data (read/write), as boot.rst's
//            32-bit protocol asks; Linux reads it only until its own LGDT
//   0xE0000  the ACPI tables (kernel/vm/acpi.ts)
//   0xFFFF0  the reset vector (F000:FFF0): a stub that does what the ACPI
//            reset register does (OUT 0xF4 with 0x52: the guest ends with
//            exit code 165). There is no firmware to restart, and Linux
//            jumps here when its other restart methods fail: on a
//            hardware-reduced ACPI platform (no DMI quirk) it picks
//            BOOT_EFI first (arch/x86/kernel/reboot.c reboot_init,
//            efi_reboot_required), finds no EFI runtime, and falls back to
//            BOOT_BIOS: machine_real_restart, real mode, ljmp F000:FFF0
//   LOAD     the protected-mode kernel: pref_address aligned up to
//            kernel_alignment for a relocatable kernel (relocatable_kernel
//            at 0x234), else 0x100000; the kernel needs [LOAD, LOAD +
//            init_size) (relocatable) or [pref_address, pref_address +
//            init_size) as well, all of it inside guest RAM
//   INITRD   page-aligned, as high as it goes: ending at or below guest
//            RAM's end and initrd_addr_max + 1, starting above the
//            kernel's area
//
// The zero page (boot.rst "The zero page"; every other byte 0):
//   0x070  acpi_rsdp_addr (u64): the RSDP of the guest's ACPI tables
//   0x1E8  e820_entries (u8), 0x2D0 the e820 table (20-byte entries: u64
//          addr, u64 size, u32 type): [0, 0x9FC00) RAM (1), [0x9FC00,
//          0x100000) reserved (2), [0x100000, RAM end) RAM, the I/O APIC
//          page at 0xFEC00000 and the local APIC page at 0xFEE00000
//          reserved
//   0x1F1  the image's setup header, copied, then changed: type_of_loader
//          0xFF (0x210: "undefined" loader), loadflags (0x211) |=
//          CAN_USE_HEAP, heap_end_ptr (0x224) 0xDE00 (boot.rst's sample
//          loader's value; the 32-bit entry skips the real-mode setup code
//          that reads it), code32_start (0x214) = LOAD, ramdisk_image/
//          ramdisk_size (0x218/0x21C), cmd_line_ptr (0x228)
//
// Entry (boot.rst "32-bit Boot Protocol"): protected mode, paging off, the
// boot GDT loaded, CS 0x10, DS/ES/SS (and FS/GS) 0x18, flat; IF = 0; ESI =
// the zero page; EBP, EDI, EBX (and EAX) 0; EIP = LOAD.
//
// A problem prints one line "hv: guest: NAME: what is wrong" and returns
// false before anything is written to guest RAM.
import * as boot from "../boot/bootinfo";
import * as guestmem from "../vm/guestmem";
import * as acpi from "../vm/acpi";
import * as print from "../lib/print";
import * as image from "./image";
import { Entry } from "./loader";

export const HDRS_MAGIC: u32 = 0x53726448; // "HdrS" at 0x202
export const MIN_VERSION: u32 = 0x020c; // 2.12

export const ZERO_PAGE: u64 = 0x9000;
export const CMDLINE_AT: u64 = 0xa000;
export const CMDLINE_LIMIT: u32 = 4095;
export const BOOT_GDT_AT: u64 = 0x9fc00;
// The processor's reset vector (SDM Vol. 3A 9.1.4: CS base FFFF0000H, IP
// FFF0H at RESET; a real-mode far jump to F000:FFF0, as a PC BIOS restart
// does, lands at 0xFFFF0) and what sits there: MOV AL, RESET_VALUE; OUT
// RESET_PORT, AL; then HLT and a jump back to it should the OUT return.
export const RESET_VECTOR_AT: u64 = 0xffff0;
export const BOOT_GDT_LIMIT: u32 = 4 * 8 - 1;
export const BOOT_CS: u32 = 0x10;
export const BOOT_DS: u32 = 0x18;
export const HEAP_END_PTR: u32 = 0xde00;
export const LOADER_TYPE: u32 = 0xff;

// boot_params / setup header offsets (boot.rst).
const BP_ACPI_RSDP: u64 = 0x070;
const BP_E820_ENTRIES: u64 = 0x1e8;
const BP_E820_TABLE: u64 = 0x2d0;
const HDR_START: u64 = 0x1f1; // setup_sects
const HDR_BOOT_FLAG: u64 = 0x1fe;
const HDR_JUMP: u64 = 0x201; // the jump's displacement: the header ends at 0x202 + it
const HDR_MAGIC: u64 = 0x202;
const HDR_VERSION: u64 = 0x206;
const HDR_TYPE_OF_LOADER: u64 = 0x210;
const HDR_LOADFLAGS: u64 = 0x211;
const HDR_CODE32_START: u64 = 0x214;
const HDR_RAMDISK_IMAGE: u64 = 0x218;
const HDR_RAMDISK_SIZE: u64 = 0x21c;
const HDR_HEAP_END_PTR: u64 = 0x224;
const HDR_CMD_LINE_PTR: u64 = 0x228;
const HDR_INITRD_ADDR_MAX: u64 = 0x22c;
const HDR_KERNEL_ALIGNMENT: u64 = 0x230;
const HDR_RELOCATABLE: u64 = 0x234;
const HDR_CMDLINE_SIZE: u64 = 0x238;
const HDR_PREF_ADDRESS: u64 = 0x258;
const HDR_INIT_SIZE: u64 = 0x260;
const HDR_END_MAX: u64 = 0x290; // boot_params' next field (edd_mbr_sig_buffer)

const LOADED_HIGH: u32 = 1 << 0;
const CAN_USE_HEAP: u32 = 1 << 7;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const LOW_END: u64 = 0x9fc00;
const HIGH: u64 = 0x100000;
const PAGE: u64 = 4096;
const IOAPIC_PAGE: u64 = <u64>acpi.IOAPIC_ADDRESS;
const LAPIC_PAGE: u64 = <u64>acpi.LAPIC_ADDRESS;

// Is the open boot file a bzImage (the "HdrS" signature)?
export function isBzImage(): bool {
  return image.has(HDR_MAGIC, 4) && image.rd32(HDR_MAGIC) == HDRS_MAGIC;
}

function failHex(what: string, v: u64, rest: string): bool {
  image.start();
  print.str(what);
  print.hex(v);
  print.str(rest);
  return image.end();
}

function isPow2(v: u64): bool {
  return v != 0 && (v & (v - 1)) == 0;
}

// Load the open boot file (isBzImage()) with command line [cmdA, +aLen)
// then a space and [cmdB, +bLen) (either may be empty), boot file
// `initrd` (or -1) as its initial RAM disk, and ACPI tables for `vcpus`
// vCPUs. On success e holds the entry state.
export function load(e: Entry, cmdA: usize, aLen: u32, cmdB: usize, bLen: u32, initrd: i32, vcpus: i32): bool {
  // ---- the setup header ----
  if (image.rd16(HDR_BOOT_FLAG) != 0xaa55) return failHex("Linux setup header without boot_flag 0xAA55 at 0x1FE (it holds ", image.rd16(HDR_BOOT_FLAG), ")");
  const version = image.rd16(HDR_VERSION);
  if (version < MIN_VERSION) {
    image.start();
    print.str("Linux boot protocol ");
    print.dec(version >> 8);
    print.str(".");
    print.dec(version & 0xff);
    print.str(" is older than 2.12, the oldest hv loads");
    return image.end();
  }
  let setupSects = <u64>image.rd8(HDR_START);
  if (setupSects == 0) setupSects = 4;
  const pmOff = (setupSects + 1) * 512;
  const hdrEnd = HDR_MAGIC + <u64>image.rd8(HDR_JUMP);
  if (hdrEnd > HDR_END_MAX || hdrEnd > pmOff) {
    return failHex("Linux setup header ends at ", hdrEnd, ", past the setup sectors or boot_params' header area (0x290)");
  }
  if (pmOff >= image.length) {
    image.start();
    print.str("setup_sects ");
    print.dec(setupSects);
    print.str(" leaves no protected-mode kernel: the setup ends at ");
    print.hex(pmOff);
    print.str(", the file at ");
    print.hex(image.length);
    return image.end();
  }
  const loadflags = image.rd8(HDR_LOADFLAGS);
  if ((loadflags & LOADED_HIGH) == 0) return image.fail("a zImage (loadflags without LOADED_HIGH): only a bzImage is loaded");
  const pmSize = image.length - pmOff;

  // ---- where the kernel goes ----
  const relocatable = image.rd8(HDR_RELOCATABLE) != 0;
  const align = <u64>image.rd32(HDR_KERNEL_ALIGNMENT);
  const pref = image.rd64(HDR_PREF_ADDRESS);
  const initSize = <u64>image.rd32(HDR_INIT_SIZE);
  let at: u64 = HIGH;
  let runtime: u64 = pref;
  if (relocatable) {
    if (!isPow2(align)) return failHex("kernel_alignment ", align, " is not a power of two");
    const lo = pref > HIGH ? pref : HIGH;
    if (lo > 0xffffffff) return failHex("pref_address ", pref, " is above 4 GiB");
    at = (lo + align - 1) & ~(align - 1);
    runtime = at;
  } else if (pref < HIGH) {
    return failHex("pref_address ", pref, " of a kernel that is not relocatable is below 1 MiB");
  }
  let kernelEnd = at + pmSize;
  const runEnd = runtime + (initSize > pmSize || !relocatable ? initSize : pmSize);
  if (runEnd > kernelEnd) kernelEnd = runEnd;
  if (at > guestmem.size || kernelEnd > guestmem.size || runtime > guestmem.size) {
    image.start();
    print.str("the kernel (");
    print.dec(pmSize);
    print.str(" bytes, init_size ");
    print.dec(initSize);
    print.str(") does not fit in guest RAM: it needs");
    image.range(at < runtime ? at : runtime, kernelEnd - (at < runtime ? at : runtime));
    print.str(", RAM is");
    image.range(0, guestmem.size);
    return image.end();
  }

  // ---- the command line ----
  const cmdLen = aLen + (aLen > 0 && bLen > 0 ? 1 : 0) + bLen;
  let cmdMax = image.rd32(HDR_CMDLINE_SIZE);
  if (cmdMax > CMDLINE_LIMIT) cmdMax = CMDLINE_LIMIT;
  if (cmdLen > cmdMax) {
    image.start();
    print.str("command line too long: ");
    print.dec(cmdLen);
    print.str(" bytes (the kernel's cmdline_size allows ");
    print.dec(cmdMax);
    print.str(")");
    return image.end();
  }

  // ---- the initrd ----
  let rdStart: u64 = 0;
  let rdLen: u64 = 0;
  if (initrd >= 0) {
    rdLen = boot.fileLength(<u32>initrd);
    let top = guestmem.size;
    const max = <u64>image.rd32(HDR_INITRD_ADDR_MAX) + 1;
    if (max < top) top = max;
    const floor = (kernelEnd + PAGE - 1) & ~(PAGE - 1);
    if (rdLen > top || ((top - rdLen) & ~(PAGE - 1)) < floor) {
      const nameBuf = memory.data(256);
      const n = image.copyName(<u32>initrd, nameBuf);
      image.start();
      print.str("initrd ");
      print.bytes(nameBuf, image.firstWord(nameBuf, n));
      print.str(" (");
      print.dec(rdLen);
      print.str(" bytes) does not fit between the kernel and the lower of RAM's end and initrd_addr_max + 1:");
      image.range(floor, top > floor ? top - floor : 0);
      return image.end();
    }
    rdStart = (top - rdLen) & ~(PAGE - 1);
  }
  if (!guestmem.isRam(acpi.TABLES_BASE, acpi.TABLES_END - acpi.TABLES_BASE)) {
    return image.fail("internal error: guest RAM does not hold the ACPI table area");
  }

  // ---- writing ----
  guestmem.zero(ZERO_PAGE, PAGE);
  guestmem.copyFromHost(ZERO_PAGE + HDR_START, image.base + HDR_START, hdrEnd - HDR_START);
  const zp = ZERO_PAGE;
  guestmem.write8(zp + HDR_TYPE_OF_LOADER, LOADER_TYPE);
  guestmem.write8(zp + HDR_LOADFLAGS, loadflags | CAN_USE_HEAP);
  guestmem.write16(zp + HDR_HEAP_END_PTR, HEAP_END_PTR);
  guestmem.write32(zp + HDR_CODE32_START, <u32>at);
  guestmem.write32(zp + HDR_RAMDISK_IMAGE, <u32>rdStart);
  guestmem.write32(zp + HDR_RAMDISK_SIZE, <u32>rdLen);
  guestmem.write32(zp + HDR_CMD_LINE_PTR, <u32>CMDLINE_AT);
  const rsdp = acpi.build(vcpus);
  guestmem.write64(zp + BP_ACPI_RSDP, rsdp);
  writeE820(zp);

  guestmem.zero(CMDLINE_AT, <u64>CMDLINE_LIMIT + 1);
  if (aLen > 0) guestmem.copyIn(CMDLINE_AT, cmdA, aLen);
  if (bLen > 0) {
    let p = CMDLINE_AT + <u64>aLen;
    if (aLen > 0) guestmem.write8(p++, 0x20);
    guestmem.copyIn(p, cmdB, bLen);
  }

  // The boot GDT (boot.rst: __BOOT_CS 0x10 execute/read, __BOOT_DS 0x18
  // read/write, both 4 GiB flat; accessed bits preset).
  guestmem.zero(BOOT_GDT_AT, 16);
  guestmem.write64(BOOT_GDT_AT + BOOT_CS, 0x00cf9b000000ffff);
  guestmem.write64(BOOT_GDT_AT + BOOT_DS, 0x00cf93000000ffff);

  // The reset-vector stub (top of the file).
  const rv = RESET_VECTOR_AT;
  guestmem.zero(rv, 16);
  guestmem.write8(rv, 0xb0); // MOV AL, imm8
  guestmem.write8(rv + 1, <u8>acpi.RESET_VALUE);
  guestmem.write8(rv + 2, 0xe6); // OUT imm8, AL
  guestmem.write8(rv + 3, <u8>acpi.RESET_PORT);
  guestmem.write8(rv + 4, 0xf4); // HLT
  guestmem.write8(rv + 5, 0xeb); // JMP rel8 -3: back to the HLT
  guestmem.write8(rv + 6, 0xfd);

  guestmem.copyFromHost(at, image.base + pmOff, pmSize);
  if (rdLen > 0) guestmem.copyFromHost(rdStart, boot.fileBase(<u32>initrd), rdLen);

  e.eip = <u32>at;
  e.esi = <u32>ZERO_PAGE;
  e.gdtBase = <u32>BOOT_GDT_AT;
  e.gdtLimit = BOOT_GDT_LIMIT;
  e.kernelEnd = kernelEnd;
  e.modulesEnd = rdLen > 0 ? rdStart + rdLen : 0;
  return true;
}

function e820(zp: u64, k: u32, addr: u64, size: u64, type: u32): u32 {
  const p = zp + BP_E820_TABLE + <u64>(k * 20);
  guestmem.write64(p, addr);
  guestmem.write64(p + 8, size);
  guestmem.write32(p + 16, type);
  return k + 1;
}

function writeE820(zp: u64): void {
  let k: u32 = 0;
  k = e820(zp, k, 0, LOW_END, E820_RAM);
  k = e820(zp, k, LOW_END, HIGH - LOW_END, E820_RESERVED);
  k = e820(zp, k, HIGH, guestmem.size - HIGH, E820_RAM);
  k = e820(zp, k, IOAPIC_PAGE, PAGE, E820_RESERVED);
  k = e820(zp, k, LAPIC_PAGE, PAGE, E820_RESERVED);
  guestmem.write8(zp + BP_E820_ENTRIES, k);
}
