// QEMU's firmware configuration device, traditional I/O interface only
// (QEMU docs/specs/fw_cfg.rst): a 16-bit selector at port 0x510 chooses an
// item and resets the data offset to 0; each 8-bit read of the data port
// 0x511 returns the item's next byte, and 0 once past its end.
//
// Items offered (key numbers as QEMU's FW_CFG_* constants):
//   0x0000 SIGNATURE "QEMU"                  4 bytes
//   0x0001 ID        u32 LE 1 (bit 0: traditional interface; bit 1, DMA, clear)
//   0x0003 RAM_SIZE  u64 LE guest RAM in bytes
//   0x0005 NB_CPUS   u16 LE vCPUs
//   0x000F MAX_CPUS  u16 LE the same (no hot-plug)
// Every other key is an empty item (reads 0). Bit 14 of the selector is the
// write channel flag and does not change which item is read; bit 15 selects
// the architecture-local keys (QEMU puts ACPI tables, E820 there), none of
// which exist here. There is no file directory (0x0019 is empty) and no DMA
// interface (ports 0x514-0x51B are not decoded).
//
// Access forms: the selector is 16 bits wide (a 16-bit OUT to 0x510) and the
// data register 8 bits (an 8-bit IN/OUT at 0x511); data writes are accepted
// and ignored (QEMU >= 2.4 ignores them too on this interface). Anything
// else at these two ports (8- or 32-bit writes to 0x510, any read of the
// write-only selector, 16/32-bit data reads) is not a form the device
// decodes: ports.ts treats it like an access to an absent port (all ones,
// dropped, counted). QEMU's combined port instead accepts an 8-bit access
// at either port as a data access; no firmware relies on that.

import { Vm } from "../vm/vm";

export const SELECTOR: u32 = 0x510;
export const DATA: u32 = 0x511;

export const KEY_SIGNATURE: u32 = 0x0000;
export const KEY_ID: u32 = 0x0001;
export const KEY_RAM_SIZE: u32 = 0x0003;
export const KEY_NB_CPUS: u32 = 0x0005;
export const KEY_MAX_CPUS: u32 = 0x000f;

const WRITE_CHANNEL: u32 = 0x4000;
const ARCH_LOCAL: u32 = 0x8000;

// One guest's fw_cfg: the selected item and how far it has been read. What
// the items say (RAM size, vCPUs) is read from the Vm when one is
// selected, so the device cannot disagree with the guest it describes.
@unmanaged export class FwCfg {
  selected: u32 = 0;
  offset: u32 = 0;
  itemLen: u32 = 0;
  item: u64 = 0; // the selected item's bytes (every item offered fits 8)
}

// After reset the signature is selected.
export function reset(vm: Vm): void {
  select(vm, KEY_SIGNATURE);
}

export function select(vm: Vm, key: u32): void {
  const f = vm.fwcfg;
  key &= 0xffff;
  f.selected = key;
  f.offset = 0;
  f.itemLen = 0;
  f.item = 0;
  if ((key & ARCH_LOCAL) != 0) return;
  switch (key & ~WRITE_CHANNEL) {
    case KEY_SIGNATURE:
      f.item = 0x554d4551; // "QEMU" in memory order
      f.itemLen = 4;
      break;
    case KEY_ID:
      f.item = 1;
      f.itemLen = 4;
      break;
    case KEY_RAM_SIZE:
      f.item = vm.ramBytes;
      f.itemLen = 8;
      break;
    case KEY_NB_CPUS:
    case KEY_MAX_CPUS:
      f.item = <u64>(<u16>vm.vcpuCount);
      f.itemLen = 2;
      break;
    default:
      break;
  }
}

// The next data byte; the offset stops at the item's end. Items are little-
// endian: byte k of the item is bits 8k+7:8k of the field.
export function readData(vm: Vm): u32 {
  const f = vm.fwcfg;
  if (f.offset >= f.itemLen) return 0;
  const b = <u32>(f.item >> (<u64>f.offset << 3)) & 0xff;
  f.offset++;
  return b;
}
