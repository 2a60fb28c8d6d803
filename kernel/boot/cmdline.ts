// The hypervisor's command line: space-separated `key=value` options.
// An option we do not know is an error, never silently ignored: a typo in a
// test configuration must not turn into a run that tests something else.
import * as boot from "./bootinfo";
import * as print from "../lib/print";

// caps=on|off: print the decoded VMX capability summary at bring-up.
export let showCaps: bool = true;

// crash=trap|abort|exception: end the run through one of the failure paths
// (a wasm out-of-bounds trap, an AssemblyScript abort, a CPU #GP in the
// hypervisor), so that tests can check each is reported and stops cleanly.
export const CRASH_NONE: i32 = 0;
export const CRASH_TRAP: i32 = 1;
export const CRASH_ABORT: i32 = 2;
export const CRASH_EXCEPTION: i32 = 3;
export let crash: i32 = CRASH_NONE;

function isSpace(c: u32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

// Does the token [p, p+n) start with key followed by '='? Returns the
// value's offset, or -1.
function keyIs(p: usize, n: i32, key: string): i32 {
  const k = key.length;
  if (n <= k || load<u8>(p + <usize>k) != 0x3d) return -1;
  for (let i = 0; i < k; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>key.charCodeAt(i)) return -1;
  }
  return k + 1;
}

function valueIs(p: usize, n: i32, v: string): bool {
  if (n != v.length) return false;
  for (let i = 0; i < n; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>v.charCodeAt(i)) return false;
  }
  return true;
}

function bad(what: string, p: usize, n: i32): bool {
  print.str("hv: command line: ");
  print.str(what);
  print.str(" '");
  print.bytes(p, n);
  print.str("'");
  print.nl();
  return false;
}

function option(p: usize, n: i32): bool {
  let v = keyIs(p, n, "caps");
  if (v >= 0) {
    const vp = p + <usize>v;
    const vn = n - v;
    if (valueIs(vp, vn, "on")) showCaps = true;
    else if (valueIs(vp, vn, "off")) showCaps = false;
    else return bad("caps= takes on or off, not", vp, vn);
    return true;
  }
  v = keyIs(p, n, "crash");
  if (v >= 0) {
    const vp = p + <usize>v;
    const vn = n - v;
    if (valueIs(vp, vn, "trap")) crash = CRASH_TRAP;
    else if (valueIs(vp, vn, "abort")) crash = CRASH_ABORT;
    else if (valueIs(vp, vn, "exception")) crash = CRASH_EXCEPTION;
    else return bad("crash= takes trap, abort or exception, not", vp, vn);
    return true;
  }
  return bad("unknown option", p, n);
}

// Parse boot.cmdline; prints the first error and returns false.
export function parse(): bool {
  const base = boot.cmdline;
  const len = <i32>boot.cmdlineLen;
  let i = 0;
  while (i < len) {
    while (i < len && isSpace(load<u8>(base + <usize>i))) i++;
    const start = i;
    while (i < len && !isSpace(load<u8>(base + <usize>i))) i++;
    if (i > start && !option(base + <usize>start, i - start)) return false;
  }
  return true;
}
