// The guest's ACPI tables (ACPI 6.4, chapter 5 "ACPI Software Programming
// Model"), generated per guest from what the hypervisor gives it, so that
// what the tables say and what the devices do cannot drift
// (../shared/design.md "Devices and real guests"). Written into guest RAM
// by the Linux boot protocol (kernel/guest/bzimage.ts), which passes the
// RSDP's address in boot_params.acpi_rsdp_addr.
//
// Layout: all tables lie in [TABLES_BASE, TABLES_END), inside the range
// [0x9FC00, 0x100000) that the guest's memory map reports reserved, so no
// guest overwrites them as free RAM; the RSDP is first, 16-byte aligned in
// 0xE0000-0xFFFFF, where an OS's legacy scan also finds it (5.2.5.1).
//
//   0xE0000  RSDP  (5.2.5.3) revision 2, 36 bytes; RsdtAddress 0 (no RSDT:
//                  an ACPI 2.0+ OS uses XsdtAddress)
//   0xE0040  XSDT  (5.2.8) two entries: FADT, MADT
//   0xE0100  FADT  (5.2.9) revision 6 (276 bytes), flags WBINVD |
//                  RESET_REG_SUP | HW_REDUCED_ACPI: no PM timer, PM1
//                  blocks, GPEs, PIC, PIT, RTC or i8042 are described or
//                  needed. IAPC_BOOT_ARCH: VGA not present, CMOS RTC not
//                  present, no LEGACY_DEVICES, no 8042. SCI_INT 9 (never
//                  raised: a hardware-reduced platform has no fixed
//                  events; 9, not 0, because Linux programs the SCI's ISA
//                  IRQ as level/low when no override names it, and IRQ 0
//                  is its timer's). The reset register: System I/O port
//                  0xF4 (isa-debug-exit, kernel/devices/ports.ts), 8 bits,
//                  RESET_VALUE 0x52: an ACPI reset (Linux's default reboot
//                  method) ends the guest as an isa-debug-exit write of
//                  0x52, reported as exit code 165 ((0x52 << 1) | 1;
//                  `expect=exit:165`), never as a pass.
//   0xE0300  MADT  (5.2.12) local APIC address 0xFEE00000, flags 0 (no
//                  PCAT_COMPAT: no 8259 pair to mask); one Processor Local
//                  APIC entry per vCPU (UID = APIC ID = vCPU number,
//                  enabled); the I/O APIC (ID 0, as the device resets,
//                  address 0xFEC00000, GSI base 0). No interrupt source
//                  override: the only connected input, COM1's ISA IRQ 4,
//                  is GSI 4 with the ISA default polarity and trigger
//                  (edge, active high), which is what an absent override
//                  means (5.2.12.5).
//   0xE0400  DSDT  (5.2.11.1) one device: COM1 (below)
//
// Every table's bytes sum to 0 (its checksum); the RSDP's first 20 bytes
// sum to 0 and so do all 36 (the extended checksum, 5.2.5.3).
import * as guestmem from "./guestmem";
import * as ports from "../devices/ports";
import * as ioapic from "../devices/ioapic";
import * as lapic from "../apic/lapic";

export const TABLES_BASE: u64 = 0xe0000;
export const TABLES_END: u64 = 0xe1000;
export const RSDP_AT: u64 = 0xe0000;
export const XSDT_AT: u64 = 0xe0040;
export const FADT_AT: u64 = 0xe0100;
export const MADT_AT: u64 = 0xe0300;
export const DSDT_AT: u64 = 0xe0400;

const HEADER: u32 = 36; // system description table header (5.2.6)
const RSDP_LEN: u32 = 36;
const FADT_LEN: u32 = 276;
const FADT_REVISION: u32 = 6;
const FADT_MINOR: u32 = 4; // ACPI 6.4
const MADT_REVISION: u32 = 5;

// FADT Flags (Table 5.10) and IAPC_BOOT_ARCH (Table 5.11).
export const FADT_WBINVD: u32 = 1 << 0;
export const FADT_RESET_REG_SUP: u32 = 1 << 10;
export const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
export const BOOT_ARCH_VGA_NOT_PRESENT: u32 = 1 << 2;
export const BOOT_ARCH_CMOS_RTC_NOT_PRESENT: u32 = 1 << 5;
export const SCI_INT: u32 = 9;

// The reset register: a Generic Address Structure (5.2.3.2) in System I/O
// space (1), 8 bits wide at offset 0, byte access (1).
export const RESET_PORT: u32 = ports.DEBUG_EXIT; // isa-debug-exit
export const RESET_VALUE: u32 = 0x52;

// Where the device models are (vm/mmio.ts routes these pages to them).
export const LAPIC_ADDRESS: u32 = <u32>lapic.BASE_ADDRESS;
export const IOAPIC_ADDRESS: u32 = <u32>ioapic.BASE_ADDRESS;
export const IOAPIC_ID: u32 = 0; // the I/O APIC's ID after reset

// MADT interrupt controller structures (Table 5.21).
const MADT_LOCAL_APIC: u32 = 0;
const MADT_IO_APIC: u32 = 1;

function ascii(at: u64, s: string): void {
  for (let i = 0; i < s.length; i++) guestmem.write8(at + <u64>i, <u32>s.charCodeAt(i));
}

// The byte that makes [at, at+len) sum to 0, written at `where`.
function checksum(at: u64, len: u32, where: u64): void {
  guestmem.write8(where, 0);
  let s: u32 = 0;
  for (let i: u32 = 0; i < len; i++) s += guestmem.read8(at + <u64>i);
  guestmem.write8(where, (0x100 - (s & 0xff)) & 0xff);
}

// The system description table header (5.2.6), checksum filled in later.
function header(at: u64, sig: string, len: u32, revision: u32): void {
  ascii(at, sig);
  guestmem.write32(at + 4, len);
  guestmem.write8(at + 8, revision);
  ascii(at + 10, "HVAS  "); // OEMID
  ascii(at + 16, "HVGUEST "); // OEM Table ID
  guestmem.write32(at + 24, 1); // OEM Revision
  ascii(at + 28, "HVAS"); // Creator ID
  guestmem.write32(at + 32, 1); // Creator Revision
}

// A Generic Address Structure (5.2.3.2) in System I/O space.
function ioGas(at: u64, port: u32, bits: u32): void {
  guestmem.write8(at, 1); // Address Space ID: System I/O
  guestmem.write8(at + 1, bits); // Register Bit Width
  guestmem.write8(at + 2, 0); // Register Bit Offset
  guestmem.write8(at + 3, 1); // Access Size: byte
  guestmem.write64(at + 4, <u64>port);
}

// The DSDT's AML (ACPI 6.4 chapter 20, resource descriptors 6.4.2): COM1,
// the one device a hardware-reduced platform has to describe. On such a
// platform Linux uses the "null" legacy PIC (acpi_generic_reduced_hw_init),
// so nr_legacy_irqs() is 0 and no ISA IRQ is mapped to an I/O APIC input:
// the 8250 driver's built-in port (I/O 0x3F8, IRQ 4) then fails
// request_irq(4) when /dev/console is opened, and writes to it fail with
// EIO. Described here, 8250_pnp takes the port over with the interrupt
// from _CRS, which ACPI maps to GSI 4 (edge, active high: IRQNoFlags).
//
//   Scope (\_SB) {
//     Device (COM1) {
//       Name (_HID, EisaId ("PNP0501"))       // 16550A-compatible
//       Name (_UID, Zero)
//       Name (_CRS, ResourceTemplate () {
//         IO (Decode16, 0x3F8, 0x3F8, 0x01, 0x08)
//         IRQNoFlags () {4}
//       })
//     }
//   }
const DSDT_AML: StaticArray<u8> = [
  0x10, 0x33, 0x5c, 0x5f, 0x53, 0x42, 0x5f, // ScopeOp, PkgLength 51, \_SB_
  0x5b, 0x82, 0x2b, 0x43, 0x4f, 0x4d, 0x31, // DeviceOp, PkgLength 43, COM1
  0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x05, 0x01, // Name (_HID, DWord PNP0501)
  0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, // Name (_UID, Zero)
  0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x10, 0x0a, 0x0d, // Name (_CRS, Buffer, PkgLength 16, size 13)
  0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, // I/O port descriptor: decode 16, 0x3F8-0x3F8, align 1, 8 ports
  0x22, 0x10, 0x00, // IRQ descriptor, 2 bytes: IRQ mask bit 4 (edge, active high)
  0x79, 0x00, // End tag (checksum 0: treated as correct)
];
export function dsdtLength(): u32 {
  return HEADER + <u32>DSDT_AML.length;
}

export function madtLength(vcpus: i32): u32 {
  return HEADER + 8 + 8 * <u32>vcpus + 12;
}

// Write the tables for a guest with `vcpus` vCPUs; returns the RSDP's
// guest-physical address, or 0 when guest RAM does not hold the area.
export function build(vcpus: i32): u64 {
  if (!guestmem.isRam(TABLES_BASE, TABLES_END - TABLES_BASE)) return 0;
  guestmem.zero(TABLES_BASE, TABLES_END - TABLES_BASE);

  // DSDT: COM1.
  const dsdtLen = dsdtLength();
  header(DSDT_AT, "DSDT", dsdtLen, 2);
  for (let i = 0; i < DSDT_AML.length; i++) guestmem.write8(DSDT_AT + HEADER + <u64>i, DSDT_AML[i]);
  checksum(DSDT_AT, dsdtLen, DSDT_AT + 9);

  // MADT.
  const madtLen = madtLength(vcpus);
  header(MADT_AT, "APIC", madtLen, MADT_REVISION);
  guestmem.write32(MADT_AT + 36, LAPIC_ADDRESS);
  guestmem.write32(MADT_AT + 40, 0); // Flags: no PCAT_COMPAT
  let p = MADT_AT + 44;
  for (let i = 0; i < vcpus; i++) {
    guestmem.write8(p, MADT_LOCAL_APIC);
    guestmem.write8(p + 1, 8);
    guestmem.write8(p + 2, <u32>i); // ACPI Processor UID
    guestmem.write8(p + 3, <u32>i); // APIC ID (the vCPU's number, apic/lapic.ts)
    guestmem.write32(p + 4, 1); // Enabled
    p += 8;
  }
  guestmem.write8(p, MADT_IO_APIC);
  guestmem.write8(p + 1, 12);
  guestmem.write8(p + 2, IOAPIC_ID);
  guestmem.write8(p + 3, 0);
  guestmem.write32(p + 4, IOAPIC_ADDRESS);
  guestmem.write32(p + 8, 0); // Global System Interrupt Base
  checksum(MADT_AT, madtLen, MADT_AT + 9);

  // FADT.
  header(FADT_AT, "FACP", FADT_LEN, FADT_REVISION);
  guestmem.write32(FADT_AT + 40, <u32>DSDT_AT); // DSDT (32-bit copy of X_DSDT)
  guestmem.write16(FADT_AT + 46, SCI_INT);
  guestmem.write16(FADT_AT + 109, BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT);
  guestmem.write32(FADT_AT + 112, FADT_WBINVD | FADT_RESET_REG_SUP | FADT_HW_REDUCED_ACPI);
  ioGas(FADT_AT + 116, RESET_PORT, 8);
  guestmem.write8(FADT_AT + 128, RESET_VALUE);
  guestmem.write8(FADT_AT + 131, FADT_MINOR);
  guestmem.write64(FADT_AT + 140, DSDT_AT); // X_DSDT
  checksum(FADT_AT, FADT_LEN, FADT_AT + 9);

  // XSDT.
  const xsdtLen = HEADER + 2 * 8;
  header(XSDT_AT, "XSDT", xsdtLen, 1);
  guestmem.write64(XSDT_AT + 36, FADT_AT);
  guestmem.write64(XSDT_AT + 44, MADT_AT);
  checksum(XSDT_AT, xsdtLen, XSDT_AT + 9);

  // RSDP.
  ascii(RSDP_AT, "RSD PTR ");
  ascii(RSDP_AT + 9, "HVAS  ");
  guestmem.write8(RSDP_AT + 15, 2); // Revision: ACPI 2.0 and later
  guestmem.write32(RSDP_AT + 16, 0); // RsdtAddress: none
  guestmem.write32(RSDP_AT + 20, RSDP_LEN);
  guestmem.write64(RSDP_AT + 24, XSDT_AT);
  checksum(RSDP_AT, 20, RSDP_AT + 8);
  checksum(RSDP_AT, RSDP_LEN, RSDP_AT + 32);
  return RSDP_AT;
}
