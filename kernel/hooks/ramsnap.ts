// Test hooks of the RAM snapshot (kernel/snapshot/ram.ts) for
// tests/unit/ramsnap.test.ts. See kernel/testhooks.ts.
//
// A test builds the page allocator from a boot map (boot_parse,
// pages_init), calls ramsnap_setup() (CPUID and the capability MSRs of the
// model machine, as kmain reads them), then ramsnap_create(bytes, wp): RAM,
// an EPT tree mapping it at guest-physical 0 as guest.ts maps a guest's
// RAM, and the snapshot of it, attached to guestmem as the
// running guest's. It plays the processor by writing the EPT flags in model
// memory, and the hypervisor through ramsnap_hvWrite (guestmem) and
// ramsnap_writeFault (the EPT violation handler's call).
import * as hwcaps from "../vmx/caps";
import * as ident from "../cpu/ident";
import * as ept from "../ept/ept";
import * as pages from "../mm/pages";
import * as guestmem from "../vm/guestmem";
import * as shadowept from "../nested/shadowept";
import { RamSnapshot } from "../snapshot/ram";

// The shadow EPT the ram tests fill (a vCPU's, in the kernel).
const testShadow = shadowept.create(); // machine-wide: test hook state

let snap: RamSnapshot | null = null; // test hooks only: state of the model tests' calls, not in the guest paths
let root: u64 = 0; // test hooks only: state of the model tests' calls, not in the guest paths
let ram: u64 = 0; // test hooks only: state of the model tests' calls, not in the guest paths
let ramBytes: u64 = 0; // test hooks only: state of the model tests' calls, not in the guest paths

export function ramsnap_setup(): void {
  ident.identify();
  hwcaps.read();
}
// RAM of `bytes` (2-MiB aligned, as guest.ts allocates it), its EPT tree and
// its snapshot. Returns the EPT root, or 0 when out of memory.
export function ramsnap_create(bytes: u64, writeProtect: bool): u64 {
  ram = pages.allocAligned(<u32>(bytes >> 12), 0x200000);
  ramBytes = bytes;
  root = ept.create();
  if (ram == 0 || root == 0 || !ept.map(root, 0, ram, bytes, ept.EPT_RWX)) return 0;
  snap = RamSnapshot.create(ram, bytes, root, writeProtect);
  if (snap === null) return 0;
  snap!.shadow = testShadow;
  guestmem.setup(ram, bytes, snap);
  return root;
}
export function ramsnap_destroy(): void {
  guestmem.setup(0, 0, null);
  if (snap !== null) RamSnapshot.destroy(snap!);
  snap = null;
  shadowept.dropAll(testShadow);
  ept.destroy(root);
  pages.free(ram, <u32>(ramBytes >> 12));
  root = 0;
}
export function ramsnap_ram(): u64 {
  return ram;
}
export function ramsnap_eptp(): u64 {
  return snap!.eptp();
}
export function ramsnap_accessedDirty(): bool {
  return snap!.accessedDirty;
}
export function ramsnap_copy(): u64 {
  return snap!.copy;
}
export function ramsnap_tablePages(): u32 {
  return snap!.tablePages;
}
export function ramsnap_take(): u32 {
  return snap!.take();
}
export function ramsnap_restore(): u32 {
  return snap!.restore();
}
export function ramsnap_dirtyCount(): u32 {
  return snap!.dirtyCount();
}
export function ramsnap_writeFault(gpa: u64): bool {
  return snap!.writeFault(gpa);
}
// The hypervisor's own writes to guest RAM: one of each kind guestmem has.
export function ramsnap_hvWrite(kind: i32, gpa: u64, len: u64): void {
  if (kind == 0) guestmem.write8(gpa, 0xa5);
  else if (kind == 1) guestmem.write64(gpa, 0xa5a5a5a5a5a5a5a5);
  else if (kind == 2) guestmem.setBits64(gpa, 1);
  else if (kind == 3) guestmem.zero(gpa, len);
  else guestmem.copyIn(gpa, memory.data(8192), <u32>len);
}
// A shadow EPT root for L1's EPTP eptp12 with an RWX 4-KiB leaf for gpa2 ->
// hpa (what eptfault.ts fills); its PML4, or 0.
export function ramsnap_shadowFill(eptp12: u64, gpa2: u64, hpa: u64): u64 {
  const p = shadowept.rootFor(testShadow, eptp12);
  if (p == 0 || !shadowept.fill(testShadow, eptp12, gpa2, hpa, ept.EPT_RWX, 6 << 3)) return 0;
  return p & ~<u64>0xfff;
}
