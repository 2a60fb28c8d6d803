// Test hooks of the VM-entry checks on a vmcs12 (tests/unit/entry-checks
// .test.ts). See kernel/testhooks.ts.
//
// A test calls entry_setup() (capability MSRs and CPUID of the model
// machine, as kmain reads them), entry_setupRam() (L1's RAM: host pages of
// the model), entry_makeCurrent(gpa) (the vmcs12 L1 made current), fills the
// fields with entry_setField, sets L1's mode with entry_setL1Ia32e, then
// calls entry_check and reads entry_failedName / entry_qualification.
import * as V from "../arch/vmx";
import * as hwcaps from "../vmx/caps";
import * as ident from "../cpu/ident";
import * as guestmem from "../vm/guestmem";
import * as state from "../nested/state";
import * as caps from "../nested/caps";
import * as checks from "../nested/entry-checks";
import * as env from "../nested/entry-checks-env";

const NAME_MAX: i32 = 64;
const nameBuf: usize = memory.data(NAME_MAX);

export function entry_setup(): void {
  ident.identify();
  hwcaps.read();
  env.resetCpuCache();
  state.reset();
  checks.forget();
}
export function entry_setupRam(hostBase: u64, size: u64): void {
  guestmem.setup(hostBase, size);
}
// Make the vmcs12 at gpa current (its page is read from L1's RAM).
export function entry_makeCurrent(gpa: u64): void {
  state.load12(gpa);
}
export function entry_clear(): void {
  memory.fill(state.cache, 0, V.VMCS12_PAGE_SIZE);
  state.markAllDirty(); // written behind write()'s back
}
// False for an encoding the vmcs12 layout does not have.
export function entry_setField(enc: u32, value: u64): bool {
  if (V.vmcs12Offset(enc) < 0) return false;
  state.write(enc, value);
  return true;
}
export function entry_getField(enc: u32): u64 {
  if (V.vmcs12Offset(enc) < 0) return 0;
  return state.read(enc);
}
export function entry_setL1Ia32e(lma: bool): void {
  checks.setL1Ia32e(lma);
}
export function entry_check(launch: bool): i32 {
  return checks.check(launch);
}
// The failing check's name, copied as ASCII to entry_nameBuf(); its length.
export function entry_failedName(): i32 {
  const s = checks.failedCheck;
  const n = s.length < NAME_MAX ? s.length : NAME_MAX;
  for (let i = 0; i < n; i++) store<u8>(nameBuf + <usize>i, <u8>s.charCodeAt(i));
  return n;
}
export function entry_nameBuf(): usize {
  return nameBuf;
}
export function entry_qualification(): u64 {
  return checks.exitQualification;
}
// An offered VMX capability MSR (0 when L1 would get #GP).
export function entry_capMsr(msr: u32): u64 {
  return caps.readMsr(msr) ? caps.value : 0;
}
