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
const cmdlineBuf: usize = memory.data(CMDLINE_BUF);
const modulesBuf: usize = memory.data(MODULES_BUF);

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
  return loader.load(file, cmdlineBuf, cmdlineLen, modulesBuf, moduleCount);
}
export function loader_entryEip(): u32 {
  return loader.entryEip;
}
export function loader_entryEax(): u32 {
  return loader.entryEax;
}
export function loader_entryEbx(): u32 {
  return loader.entryEbx;
}
export function loader_kernelEnd(): u64 {
  return loader.kernelEnd;
}
export function loader_modulesEnd(): u64 {
  return loader.modulesEnd;
}
export function loader_version(): i32 {
  return loader.version;
}
