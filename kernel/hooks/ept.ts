// Test hooks of the walk of L1's EPT (kernel/nested/ept12.ts, SDM Vol. 3C
// 29.3), for tests/unit/ept-walk.test.ts. See kernel/testhooks.ts.
//
// A test calls ept_setup() (CPUID and the capability MSRs of the model
// machine, as kmain reads them: what caps.eptCap() offers L1 follows from
// them), ept_setupRam(hostBase, size) (L1's RAM: host pages of the model),
// then ept_walk(eptp, gpa, access) -> ept12.WALK_OK / WALK_VIOLATION /
// WALK_MISCONFIG, and reads ept_gpa1 / ept_perms / ept_pageSize.
import * as hwcaps from "../vmx/caps";
import * as ident from "../cpu/ident";
import * as guestmem from "../vm/guestmem";
import * as caps from "../nested/caps";
import * as ept12 from "../nested/ept12";

export function ept_setup(): void {
  ident.identify();
  hwcaps.read();
}
export function ept_setupRam(hostBase: u64, size: u64): void {
  guestmem.setup(hostBase, size);
}
// IA32_VMX_EPT_VPID_CAP as offered to L1 (0 when EPT is not offered).
export function ept_cap(): u64 {
  return caps.eptCap();
}
let last: u64 = 0; // machine-wide: the result ept_gpa1/ept_perms/ept_pageSize read (tests only)
export function ept_walk(eptp: u64, gpa: u64, access: u32): i32 {
  last = ept12.walk(eptp, gpa, access);
  return ept12.status(last);
}
export function ept_gpa1(): u64 {
  return ept12.gpa1(last);
}
export function ept_perms(): u32 {
  return ept12.perms(last);
}
export function ept_pageSize(): u64 {
  return ept12.pageSize(last);
}
