// The RAM snapshot of a guest started with ramsnap=on|wp (a test option),
// and the test hypercall that drives it until the snapshot hypercalls of
// the guest interface do (docs/snapshot.md "Memory"):
//   VMCALL RAX = 100H, RBX = 0 take, 1 restore, 2 count the dirty pages:
//   RAX = 0 and RBX = the pages copied (counted); RAX = 1 for another RBX;
//   RAX = 2 (unknown function) for a guest without a RAM snapshot.
// It snapshots RAM only: registers and devices are not touched.
import * as print from "../lib/print";
import { Vcpu } from "../vm/vcpu";
import { RamSnapshot } from "./ram";

export const HC_RAM_SNAPSHOT: u64 = 0x100;
export const OP_TAKE: u64 = 0;
export const OP_RESTORE: u64 = 1;
export const OP_DIRTY: u64 = 2;

// The guest's snapshot of [ram, ram+bytes) mapped by EPT tree root; null
// (after saying why) when out of memory.
export function setup(ram: u64, bytes: u64, root: u64, writeProtect: bool): RamSnapshot | null {
  const s = RamSnapshot.create(ram, bytes, root, writeProtect);
  if (s === null) {
    print.say("guest: out of memory for its RAM snapshot");
    return null;
  }
  print.str("hv: ram snapshot: ");
  print.dec(bytes >> 20);
  print.str(" MiB, ");
  print.dec(s.tablePages);
  print.str(" EPT page tables added for 4-KiB pages (");
  print.dec(s.splitTicks);
  print.str(" ticks), dirty pages by ");
  print.str(s.accessedDirty ? "EPT accessed/dirty flags" : "write protection");
  print.nl();
  return s;
}

// The count for RBX, or -1 when the guest has no snapshot, -2 for a bad op.
export function call(vcpu: Vcpu, op: u64): i64 {
  const s = vcpu.vm.ramSnapshot;
  if (s === null) return -1;
  if (op == OP_TAKE) return s.take();
  if (op == OP_RESTORE) return s.restore();
  if (op == OP_DIRTY) return s.dirtyCount();
  return -2;
}
