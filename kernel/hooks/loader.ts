// Test hooks of the guest loader (tests/unit). See kernel/testhooks.ts.
//
// A test allocates host pages for guest RAM with pages_alloc, hands them to
// loader_setupRam, writes the extra command line into loader_cmdlineBuf()
// and the module list (u32 boot-file indexes) into loader_modulesBuf()
// through the kernel's exported memory, then calls loader_load and reads
// the results with the getters.
import * as guestmem from "../vm/guestmem";
import * as loader from "../guest/loader";

const CMDLINE_BUF: i32 = 8192;
const MODULES_BUF: i32 = 64 * 4;
const cmdlineBuf: usize = memory.data(CMDLINE_BUF); // test hooks only: state of the model tests' calls, not in the guest paths
const modulesBuf: usize = memory.data(MODULES_BUF); // test hooks only: state of the model tests' calls, not in the guest paths
// What the last loader_load returned (the hooks' own; a guest's is its Vm's).
const entry = new loader.Entry(); // test hooks only: state of the model tests' calls, not in the guest paths

export function loader_setupRam(hpaBase: u64, size: u64): void {
  guestmem.setup(hpaBase, size);
}
export function loader_cmdlineBuf(): usize {
  return cmdlineBuf;
}
export function loader_modulesBuf(): usize {
  return modulesBuf;
}
export function loader_load(file: u32, cmdlineLen: i32, moduleCount: i32): bool {
  return loader.load(entry, file, cmdlineBuf, cmdlineLen, modulesBuf, moduleCount);
}
export function loader_entryEip(): u32 {
  return entry.eip;
}
export function loader_entryEax(): u32 {
  return entry.eax;
}
export function loader_entryEbx(): u32 {
  return entry.ebx;
}
export function loader_kernelEnd(): u64 {
  return entry.kernelEnd;
}
export function loader_modulesEnd(): u64 {
  return entry.modulesEnd;
}
// The same with an initrd (boot file, -1 none) and a vCPU count (the ACPI
// MADT of a bzImage guest).
export function loader_loadWith(file: u32, cmdlineLen: i32, moduleCount: i32, initrd: i32, vcpus: i32): bool {
  return loader.load(entry, file, cmdlineBuf, cmdlineLen, modulesBuf, moduleCount, initrd, vcpus);
}
export function loader_entryEsi(): u32 {
  return entry.esi;
}
export function loader_entryGdtBase(): u32 {
  return entry.gdtBase;
}
export function loader_entryGdtLimit(): u32 {
  return entry.gdtLimit;
}
