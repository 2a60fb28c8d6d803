// Exports used only by the Node unit tests (tests/unit): they reach into
// the allocator and the boot-info parser of the very kernel.wasm that ships.
import * as pages from "./mm/pages";
import * as boot from "./boot/bootinfo";

export function pages_alloc(n: u32, limit: u64): u64 {
  return pages.alloc(n, limit);
}
export function pages_free(pa: u64, n: u32): void {
  pages.free(pa, n);
}
export function pages_count(): i32 {
  return pages.rangeCount();
}
export function pages_rangeStart(i: i32): u64 {
  return pages.rangeStart(i);
}
export function pages_rangeEnd(i: i32): u64 {
  return pages.rangeEnd(i);
}
export function boot_parse(pa: u64): bool {
  return boot.parse(pa);
}
export function pages_init(): void {
  pages.init();
}
