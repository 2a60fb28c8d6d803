// Test hooks of the VM-entry checks on a vmcs12 (tests/unit/entry-checks
// .test.ts). See kernel/testhooks.ts.
//
// A test calls entry_setup() (capability MSRs and CPUID of the model
// machine, as kmain reads them; a fresh Nested, as a vCPU's), entry_setupRam()
// (L1's RAM: host pages of the model), entry_makeCurrent(gpa) (the vmcs12 L1
// made current), fills the fields with entry_setField, sets L1's mode with
// entry_setL1Ia32e, then calls entry_check (what VMLAUNCH/VMRESUME runs) or
// entry_checkAll (the full, pure check a restore runs) and reads
// entry_failedName / entry_qualification / entry_answer of that call.
import * as V from "../arch/vmx";
import * as hwcaps from "../vmx/caps";
import * as ident from "../cpu/ident";
import * as guestmem from "../vm/guestmem";
import * as state from "../nested/state";
import * as caps from "../nested/caps";
import * as checks from "../nested/entry-checks";
import * as env from "../nested/entry-checks-env";
import { Nested } from "../nested/nested";
import { EntryCheck } from "../nested/entry-checks-env";

const NAME_MAX: i32 = 64;
const nameBuf: usize = memory.data(NAME_MAX); // test hooks only: state of the model tests' calls, not in the guest paths
// The Nested under test and the outcome of the last check (test state).
let nested: Nested | null = null; // test hooks only: state of the model tests' calls, not in the guest paths; test hook state
let outcome: EntryCheck | null = null; // test hooks only: state of the model tests' calls, not in the guest paths; test hook state
let result: i32 = 0; // test hooks only: state of the model tests' calls, not in the guest paths; test hook state: the last check's class
const own = new EntryCheck(); // test hooks only: state of the model tests' calls, not in the guest paths; test hook state: entry_checkAll's, as a restore brings its own

function n(): Nested {
  return nested!;
}

export function entry_setup(): void {
  ident.identify();
  hwcaps.read();
  env.resetCpuCache();
  if (nested == null) nested = Nested.create();
  const x = n();
  x.clear();
  x.enabled = true;
  outcome = null;
}
export function entry_setupRam(hostBase: u64, size: u64): void {
  guestmem.setup(hostBase, size);
}
// Make the vmcs12 at gpa current (its page is read from L1's RAM).
export function entry_makeCurrent(gpa: u64): void {
  state.load12(n(), gpa);
}
export function entry_clear(): void {
  memory.fill(n().vmcs12, 0, V.VMCS12_PAGE_SIZE);
  state.markAllDirty(n()); // written behind write()'s back
}
// False for an encoding the vmcs12 layout does not have.
export function entry_setField(enc: u32, value: u64): bool {
  if (V.vmcs12Offset(enc) < 0) return false;
  state.write(n(), enc, value);
  return true;
}
// Store a field into the cache without recording the change, as a
// restore copying a vmcs12 from a blob does (the record says nothing to
// check again).
export function entry_setFieldRaw(enc: u32, value: u64): bool {
  if (V.vmcs12Offset(enc) < 0) return false;
  const c = n().changes;
  state.write(n(), enc, value);
  n().changes = c;
  return true;
}
export function entry_getField(enc: u32): u64 {
  if (V.vmcs12Offset(enc) < 0) return 0;
  return state.read(n(), enc);
}
// L1's IA32_EFER.LMA for the next checks (true, a 64-bit L1, by default).
let l1Ia32e = true; // test hooks only: state of the model tests' calls, not in the guest paths; test hook state
export function entry_setL1Ia32e(lma: bool): void {
  l1Ia32e = lma;
}
export function entry_check(launch: bool): i32 {
  const r = checks.check(n(), launch, l1Ia32e);
  outcome = n().check;
  result = r;
  return r;
}
export function entry_checkAll(): i32 {
  const r = checks.checkAll(n(), l1Ia32e, own);
  outcome = own;
  result = r;
  return r;
}
// What the Nested's record says must be checked again (state.DIRTY_*).
export function entry_dirty(): u32 {
  return state.dirty(n());
}
// The failing check's name, copied as ASCII to entry_nameBuf(); its length.
export function entry_failedName(): i32 {
  const o = outcome!;
  const s = result != checks.ENTRY_OK ? o.failName : "";
  const n = s.length < NAME_MAX ? s.length : NAME_MAX;
  for (let i = 0; i < n; i++) store<u8>(nameBuf + <usize>i, <u8>s.charCodeAt(i));
  return n;
}
export function entry_nameBuf(): usize {
  return nameBuf;
}
export function entry_qualification(): u64 {
  const o = outcome!;
  return result != checks.ENTRY_OK ? o.failQual : 0;
}
// The architectural answer: the VM-instruction error (VMfailValid) of a
// control or host-state failure, else the exit reason of a failed entry.
export function entry_answer(): u32 {
  const o = outcome!;
  if (result == checks.ENTRY_OK) return 0;
  return o.error != 0 ? o.error : o.exitReason;
}
// An offered VMX capability MSR (0 when L1 would get #GP), to an L1 with
// hyperv=off (the Nested under test's hvOffered is false).
export function entry_capMsr(msr: u32): u64 {
  return caps.msrValue(msr, n().hvOffered);
}
