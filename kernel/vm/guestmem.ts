// Guest-physical memory of the guest being run. Guest RAM is one run of
// host pages [hostBase, hostBase + size) mapped by EPT at guest-physical
// [0, size); nothing else of the host is ever mapped. Every access the
// hypervisor makes on the guest's behalf goes through here and is checked
// against the guest's RAM: a guest-supplied address can never reach
// hypervisor memory or another guest's.
//
// The RAM belongs to the guest's Vm (vm.ramHpa, vm.ramBytes); the two
// values below are a copy of the running guest's, made by use() when its
// vCPU starts on this processor, so that the many accessors stay one
// global read each rather than a load through a Vm pointer.
//
// With a RAM snapshot (snapshot/ram.ts) every write made here is recorded
// as written, as the processor records the guest's own writes in the EPT:
// the hypervisor's writes do not go through EPT.
import * as mem from "../hw/mem";
import { Vm } from "./vm";
import { RamSnapshot } from "../snapshot/ram";

export let hostBase: u64 = 0; // rebuildable cache: vm.ramHpa of the guest running here
export let size: u64 = 0; // rebuildable cache: vm.ramBytes of the guest running here
export let snapshot: RamSnapshot | null = null; // rebuildable cache: vm.ramSnapshot

// The accessors below reach vm's RAM from now on.
export function use(vm: Vm): void {
  setup(vm.ramHpa, vm.ramBytes, vm.ramSnapshot);
}

// RAM at host-physical base, bytes long, and its snapshot if any (the unit
// tests' hooks, use()).
export function setup(base: u64, bytes: u64, snap: RamSnapshot | null = null): void {
  hostBase = base;
  size = bytes;
  snapshot = snap;
}

// [gpa, gpa+len) of RAM is written by the hypervisor or made writable for L2
// past L0's EPT (shadow EPT): the snapshot, if any, must know.
@inline export function written(gpa: u64, len: u64): void {
  const s = snapshot;
  if (s !== null) s.markWritten(gpa, len);
}

// Is [gpa, gpa+len) entirely guest RAM?
export function isRam(gpa: u64, len: u64): bool {
  return len <= size && gpa <= size - len;
}

// Host-physical address of guest-physical gpa, or u64.MAX_VALUE when
// [gpa, gpa+len) is not entirely guest RAM.
export function hpa(gpa: u64, len: u64 = 1): u64 {
  return isRam(gpa, len) ? hostBase + gpa : u64.MAX_VALUE;
}

// The accessors below return false / u64.MAX_VALUE-free defaults only after
// the caller checked isRam; they assert rather than touch memory outside RAM.
export function read8(gpa: u64): u32 {
  assert(isRam(gpa, 1), "guestmem.read8 outside guest RAM");
  return mem.read8(hostBase + gpa);
}
export function read16(gpa: u64): u32 {
  assert(isRam(gpa, 2), "guestmem.read16 outside guest RAM");
  return mem.read16(hostBase + gpa);
}
export function read32(gpa: u64): u32 {
  assert(isRam(gpa, 4), "guestmem.read32 outside guest RAM");
  return mem.read32(hostBase + gpa);
}
export function read64(gpa: u64): u64 {
  assert(isRam(gpa, 8), "guestmem.read64 outside guest RAM");
  return mem.read64(hostBase + gpa);
}
export function write8(gpa: u64, v: u32): void {
  assert(isRam(gpa, 1), "guestmem.write8 outside guest RAM");
  mem.write8(hostBase + gpa, v);
  written(gpa, 1);
}
@inline export function write16(gpa: u64, v: u32): void {
  assert(isRam(gpa, 2), "guestmem.write16 outside guest RAM");
  mem.write16(hostBase + gpa, v);
  written(gpa, 2);
}
@inline export function write32(gpa: u64, v: u32): void {
  assert(isRam(gpa, 4), "guestmem.write32 outside guest RAM");
  mem.write32(hostBase + gpa, v);
  written(gpa, 4);
}
@inline export function write64(gpa: u64, v: u64): void {
  assert(isRam(gpa, 8), "guestmem.write64 outside guest RAM");
  mem.write64(hostBase + gpa, v);
  written(gpa, 8);
}
// Set `bits` in the quadword at gpa atomically; the previous value.
export function setBits64(gpa: u64, bits: u64): u64 {
  assert(isRam(gpa, 8), "guestmem.setBits64 outside guest RAM");
  written(gpa, 8);
  return mem.fetchOr64(hostBase + gpa, bits);
}

// Replace the quadword at gpa atomically; the previous value.
export function swap64(gpa: u64, v: u64): u64 {
  assert(isRam(gpa, 8), "guestmem.swap64 outside guest RAM");
  written(gpa, 8);
  return mem.swap64(hostBase + gpa, v);
}

// Copy len bytes of linear memory at src into guest RAM at gpa.
export function copyIn(gpa: u64, src: usize, len: u32): void {
  assert(isRam(gpa, len), "guestmem.copyIn outside guest RAM");
  mem.copyout(hostBase + gpa, src, len);
  written(gpa, len);
}

// Copy n fields of the 4-KiB linear area at src into guest RAM [gpa,
// gpa+len) by list (hw/mem.ts scatter's format).
export function scatterIn(gpa: u64, len: u32, src: usize, list: usize, n: u32): void {
  assert(isRam(gpa, len), "guestmem.scatterIn outside guest RAM");
  mem.scatter(hostBase + gpa, len, src, list, n);
  written(gpa, len);
}

// Copy len bytes of guest RAM at gpa into linear memory at dst.
export function copyOut(dst: usize, gpa: u64, len: u32): void {
  assert(isRam(gpa, len), "guestmem.copyOut outside guest RAM");
  mem.copyin(dst, hostBase + gpa, len);
}

// Copy len bytes from host-physical src (a boot file) into guest RAM at gpa.
export function copyFromHost(gpa: u64, src: u64, len: u64): void {
  assert(isRam(gpa, len), "guestmem.copyFromHost outside guest RAM");
  mem.copy(hostBase + gpa, src, len);
  written(gpa, len);
}

export function zero(gpa: u64, len: u64): void {
  assert(isRam(gpa, len), "guestmem.zero outside guest RAM");
  mem.zero(hostBase + gpa, len);
  written(gpa, len);
}
