// A guest's RAM snapshot whose restore costs in proportion to what changed
// (issue 10 item 6; docs/snapshot.md "Memory").
//
// One per guest RAM region (host-physical [ramHpa, ramHpa + bytes) mapped
// by EPT at guest-physical [0, bytes)), made at guest set-up: the copy's
// pages and the EPT tables it needs are allocated then, nothing later.
//
//   take()       the RAM into the copy (the first time all of it, then only
//                the pages written since), and dirty tracking armed
//   restore()    the pages written since take() or the last restore() back
//                from the copy, tracking armed again; returns how many
//   dirtyCount() the pages written so far, for reports and benchmarks
//
// The record of what was written is the EPT itself, one bit per 4-KiB
// page: the dirty flag (bit 9) of the page's leaf, and, one level up, the
// accessed flag (bit 8) of the PDE above it, which says "look in this
// table" so that a sweep reads only the tables of 2-MiB regions that were
// touched (SDM Vol. 3C 29.3.5). Who sets them:
//  - the processor, when EPTP bit 6 enables EPT accessed/dirty flags
//    (IA32_VMX_EPT_VPID_CAP bit 21): it sets the accessed flag of every
//    entry a translation uses and the dirty flag of the leaf on a write;
//  - otherwise the write-protection fallback: armed leaves lose write
//    permission, the first write to each page is an EPT violation
//    (writeFault), which gives the permission back and sets the same two
//    flags by hand. With EPTP bit 6 clear the processor ignores bits 8
//    and 9 (29.3.5, Tables 29-3 .. 29-6), so they are free to record this;
//  - the hypervisor, for its own writes to guest RAM (vm/guestmem.ts) and
//    for the pages L2 may write through shadow EPT (nested/eptfault.ts),
//    neither of which goes through this EPT: markWritten().
// Granularity is 4 KiB: create() splits the RAM's 2-MiB EPT leaves.
//
// Clearing a flag (or taking a permission away) must be followed by INVEPT
// for this EPTP (29.4.3.4): a processor may have cached the translation
// with the flag set, and would then write without setting it again.
// Shadow EPT leaves that grant L2 write access to a page of this RAM lose
// it at take() and restore() (shadowept.revokeWrites), so that the next
// write faults and is marked. What restore() does not do: drop the shadow
// EPT roots, whose source (L1's EPT, in this RAM) it may have changed:
// they are a rebuildable cache that the VM's restore drops before L2 runs
// again. One vCPU: the flags are cleared and INVEPT executed on the
// processor that runs it.
import * as mem from "../hw/mem";
import * as vmx from "../hw/vmx";
import * as cpu from "../hw/cpu";
import * as V from "../arch/vmx";
import * as pages from "../mm/pages";
import * as caps from "../vmx/caps";
import * as ept from "../ept/ept";
import * as shadowept from "../nested/shadowept";
import { ShadowEpt } from "../nested/shadowept";

const PAGE: u64 = 4096;
const SIZE_2M: u64 = 0x200000;
const ADDR_MASK: u64 = 0x000ffffffffff000;
const A: u64 = V.EPT_ENTRY_ACCESSED;
const D: u64 = V.EPT_ENTRY_DIRTY;
const W: u64 = ept.EPT_WRITE;

// What a sweep of the dirty pages does with each.
const COUNT: i32 = 0; // count, change nothing
const SAVE: i32 = 1; // RAM -> copy, re-arm
const LOAD: i32 = 2; // copy -> RAM, re-arm

// One page table at a time, read whole into linear memory.
const table: usize = memory.data(4096, 8); // machine-wide: scratch

@unmanaged export class RamSnapshot {
  // The shadow EPT of the vCPU that runs L2 on it, whose leaves bypass
  // L0's EPT flags (set at nested VMX's guest set-up, nested/install.ts;
  // null without nested/).
  shadow: ShadowEpt | null = null;
  ramHpa: u64;
  bytes: u64;
  root: u64; // the EPT PML4 that maps the RAM
  copy: u64; // host-physical base of the copy (bytes long)
  accessedDirty: bool; // the processor's flags (EPTP bit 6), else write protection
  taken: bool; // take() has copied the whole RAM once
  tablePages: u32; // page tables create() added for 4-KiB leaves
  splitTicks: u64; // what the split cost (TSC ticks)

  constructor(ramHpa: u64, bytes: u64, root: u64, copy: u64, accessedDirty: bool) {
    this.ramHpa = ramHpa;
    this.bytes = bytes;
    this.root = root;
    this.copy = copy;
    this.accessedDirty = accessedDirty;
    this.taken = false;
    this.tablePages = 0;
    this.splitTicks = 0;
  }

  // A snapshot of the RAM that tree `root` maps (2-MiB leaves are split into
  // 4-KiB ones here). writeProtect: use the fallback even where the processor
  // has EPT accessed/dirty flags (tests). Null when out of memory (the copy
  // is then freed; a partial split stays, mapping the same memory).
  static create(ramHpa: u64, bytes: u64, root: u64, writeProtect: bool): RamSnapshot | null {
    if (bytes == 0 || (bytes & (PAGE - 1)) != 0 || (ramHpa & (PAGE - 1)) != 0) return null;
    const n = <u32>(bytes >> 12);
    const copy = pages.alloc(n);
    if (copy == 0) return null;
    const before = pages.freePageCount();
    const t0 = cpu.rdtsc();
    if (!ept.split(root, 0, bytes)) {
      pages.free(copy, n);
      return null;
    }
    const ad = !writeProtect && (caps.eptVpidCap & V.EPT_VPID_CAP_ACCESSED_DIRTY_FLAGS) != 0;
    const s = new RamSnapshot(ramHpa, bytes, root, copy, ad);
    s.splitTicks = cpu.rdtsc() - t0;
    s.tablePages = <u32>(before - pages.freePageCount());
    return s;
  }

  // Free the copy and the object (the EPT tables go with the tree).
  static destroy(s: RamSnapshot): void {
    pages.free(s.copy, <u32>(s.bytes >> 12));
    heap.free(changetype<usize>(s));
  }

  // The EPT pointer for a VMCS whose guest runs on this RAM: with the
  // accessed/dirty flags when they are the tracking.
  eptp(): u64 {
    return ept.eptp(this.root, this.accessedDirty);
  }

  // Copy the RAM into the snapshot and arm the tracking. Returns the pages
  // copied: all of them the first time; after that the copy already equals
  // the RAM except where it was written since the last take() or restore(),
  // so only those pages are copied.
  take(): u32 {
    let n: u32;
    if (!this.taken) {
      mem.copy(this.copy, this.ramHpa, this.bytes);
      this.armAll();
      this.taken = true;
      n = <u32>(this.bytes >> 12);
    } else {
      n = this.sweep(SAVE);
    }
    this.invalidate();
    return n;
  }

  // Copy back the pages written since take() (or the last restore()) and arm
  // the tracking again. Returns the pages copied (0 before any take()).
  restore(): u32 {
    if (!this.taken) return 0;
    const n = this.sweep(LOAD);
    this.invalidate();
    return n;
  }

  // Pages written since take() or the last restore().
  dirtyCount(): u32 {
    return this.taken ? this.sweep(COUNT) : 0;
  }

  // The hypervisor wrote [gpa, gpa+len) of this RAM (in range: the caller
  // checked), or gave L2 write access to it: record it as the processor
  // would record a write (and, with write protection, give the permission
  // back: the page is recorded, later writes need not fault).
  markWritten(gpa: u64, len: u64): void {
    if (len == 0) return;
    const end = gpa + len;
    for (let p = gpa & ~(PAGE - 1); p < end; p += PAGE) this.mark(p);
  }

  // An EPT violation at guest-physical gpa for a write (write protection
  // only): true when it is the tracking's (the page is now writable and
  // recorded; a second violation for a page already writable is a stale
  // cached translation, 29.4.3.4, and is resumed too), false when the
  // address is not this RAM's or the processor's flags are the tracking.
  writeFault(gpa: u64): bool {
    if (this.accessedDirty || gpa >= this.bytes) return false;
    this.mark(gpa & ~(PAGE - 1));
    return true;
  }

  private mark(gpa: u64): void {
    const pd = ept.table(this.root, gpa, 2);
    if (pd == 0) return;
    const pde = pd + ((gpa >> 21) & 511) * 8;
    const e = mem.read64(pde);
    // create() split every RAM leaf: a PDE here references a page table.
    const leaf = (e & ADDR_MASK) + ((gpa >> 12) & 511) * 8;
    const bits = this.accessedDirty ? D : D | W;
    // Locked, as the processor's own updates of these flags.
    if ((mem.read64(leaf) & bits) != bits) mem.fetchOr64(leaf, bits);
    if ((e & A) == 0) mem.fetchOr64(pde, A);
  }

  // Every leaf armed, every PDE's accessed flag cleared (the first take():
  // the flags may be set anywhere, by the loader's writes among others).
  private armAll(): void {
    const clear = this.accessedDirty ? D | A : D | A | W;
    for (let g: u64 = 0; g < this.bytes; g += SIZE_2M) {
      const pd = ept.table(this.root, g, 2);
      if (pd == 0) continue;
      const pde = pd + ((g >> 21) & 511) * 8;
      const e = mem.read64(pde);
      mem.write64(pde, e & ~A);
      const pt = e & ADDR_MASK;
      const last = this.lastIndex(g);
      mem.copyin(table, pt, 4096);
      for (let j: u64 = 0; j <= last; j++) {
        const p = table + <usize>(j * 8);
        store<u64>(p, load<u64>(p) & ~clear);
      }
      mem.copyout(pt, table, <u32>((last + 1) * 8));
    }
  }

  // The index of the last leaf of RAM in the page table of the 2-MiB
  // region at g (511 unless the RAM ends inside it).
  private lastIndex(g: u64): u64 {
    const left = (this.bytes - g) >> 12;
    return left >= 512 ? 511 : left - 1;
  }

  // Every page recorded as written, in the tables whose PDE was accessed:
  // counted (COUNT), or copied and re-armed (SAVE, LOAD).
  private sweep(op: i32): u32 {
    let n: u32 = 0;
    const disarm = this.accessedDirty ? D : D | W;
    for (let g: u64 = 0; g < this.bytes; g += SIZE_2M) {
      const pd = ept.table(this.root, g, 2);
      if (pd == 0) continue;
      const pde = pd + ((g >> 21) & 511) * 8;
      const e = mem.read64(pde);
      if ((e & A) == 0) continue;
      if (op != COUNT) mem.write64(pde, e & ~A);
      const pt = e & ADDR_MASK;
      const last = this.lastIndex(g);
      mem.copyin(table, pt, 4096);
      for (let j: u64 = 0; j <= last; j++) {
        const leaf = load<u64>(table + <usize>(j * 8));
        if ((leaf & D) == 0) continue;
        n++;
        if (op == COUNT) continue;
        const gpa = g + (j << 12);
        if (op == SAVE) mem.copy(this.copy + gpa, this.ramHpa + gpa, PAGE);
        else mem.copy(this.ramHpa + gpa, this.copy + gpa, PAGE);
        mem.write64(pt + j * 8, leaf & ~disarm);
      }
    }
    return n;
  }

  // Flags cleared and permissions taken away: the processor's cached
  // translations of this EPTP go (29.4.3.4), and so does L2's write access
  // through shadow EPT.
  private invalidate(): void {
    if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_SINGLE_CONTEXT) != 0) {
      vmx.invept(V.INVEPT_TYPE_SINGLE_CONTEXT, this.eptp());
    } else if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) {
      vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);
    }
    const sh = this.shadow;
    if (sh !== null) shadowept.revokeWrites(sh);
  }
}
