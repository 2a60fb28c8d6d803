// The hypervisor's command line: space-separated `key=value` options.
// An option we do not know is an error, never silently ignored: a typo in a
// test configuration must not turn into a run that tests something else.
import * as boot from "./bootinfo";
import * as print from "../lib/print";
import * as config from "../vm/config";
import * as migrate from "../vm/migrate";

// caps=on|off: print the decoded VMX capability summary at bring-up.
export let showCaps: bool = true; // machine-wide: command line

// evmcs=on|off: use the Hyper-V enlightened VMCS when this hypervisor runs
// as L1 on an L0 that recommends it (kernel/vmx/evmcs.ts); on by default.
export let useEvmcs: bool = true; // machine-wide: command line

// crash=trap|abort|exception: end the run through one of the failure paths
// (a wasm out-of-bounds trap, an AssemblyScript abort, a CPU #GP in the
// hypervisor), so that tests can check each is reported and stops cleanly.
export const CRASH_NONE: i32 = 0;
export const CRASH_TRAP: i32 = 1;
export const CRASH_ABORT: i32 = 2;
export const CRASH_EXCEPTION: i32 = 3;
export let crash: i32 = CRASH_NONE; // machine-wide: command line

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

// An on|off value: 1, 0, or -1 (and a printed error) for anything else.
function onOff(key: string, vp: usize, vn: i32): i32 {
  if (valueIs(vp, vn, "on")) return 1;
  if (valueIs(vp, vn, "off")) return 0;
  print.str("hv: command line: ");
  print.str(key);
  print.str("= takes on or off, not '");
  print.bytes(vp, vn);
  print.str("'");
  print.nl();
  return -1;
}

// A size with an optional K, M or G suffix (binary units); 0 when malformed.
function parseSize(p: usize, n: i32): u64 {
  let v: u64 = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c < 0x30 || c > 0x39) break;
    if (v > 0xffffffffff) return 0;
    v = v * 10 + <u64>(c - 0x30);
  }
  if (i == 0) return 0;
  if (i == n) return v;
  if (i != n - 1) return 0;
  const u = <u32>load<u8>(p + <usize>i) | 0x20;
  if (u == 0x6b) return v << 10;
  if (u == 0x6d) return v << 20;
  if (u == 0x67) return v << 30;
  return 0;
}

// A decimal number; -1 when malformed.
function parseDec(p: usize, n: i32): i64 {
  if (n == 0 || n > 9) return -1;
  let v: i64 = 0;
  for (let i = 0; i < n; i++) {
    const c = <i64>load<u8>(p + <usize>i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + c - 0x30;
  }
  return v;
}

// args=VALUE in place (the command line itself is space-separated): a
// comma is a space, two commas are one comma, read left to right (",,,"
// is a comma and a space; config.ts says why commas). Returns the new
// length.
export function unescapeArgs(p: usize, n: i32): i32 {
  let o = 0;
  let i = 0;
  while (i < n) {
    let c = load<u8>(p + <usize>i);
    i++;
    if (c == 0x2c) {
      if (i < n && load<u8>(p + <usize>i) == 0x2c) i++;
      else c = 0x20;
    }
    store<u8>(p + <usize>o, c);
    o++;
  }
  // The bytes freed at the end become spaces: the line stays a line of
  // words should anything read it again.
  for (let k = o; k < n; k++) store<u8>(p + <usize>k, 0x20);
  return o;
}

let current: i32 = -1; // machine-wide: command-line parser state; the guest the per-guest options apply to

function guestOption(key: string, p: usize, n: i32): bool {
  if (current < 0) return bad(key + "= must follow a guest= option:", p, n);
  return true;
}

function option(p: usize, n: i32): bool {
  let v = keyIs(p, n, "caps");
  if (v >= 0) {
    const r = onOff("caps", p + <usize>v, n - v);
    if (r < 0) return false;
    showCaps = r == 1;
    return true;
  }
  v = keyIs(p, n, "evmcs");
  if (v >= 0) {
    const r = onOff("evmcs", p + <usize>v, n - v);
    if (r < 0) return false;
    useEvmcs = r == 1;
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
  v = keyIs(p, n, "migrate");
  if (v >= 0) {
    // A test option: move the running vCPU to the next processor every N exits.
    const k = parseDec(p + <usize>v, n - v);
    if (k <= 0) return bad("migrate= needs a number of exits (1 or more), not", p + <usize>v, n - v);
    migrate.setEvery(<u32>k);
    return true;
  }
  v = keyIs(p, n, "snapshot");
  if (v >= 0) {
    // A test option (docs/snapshot.md): every N exits save the running vCPU,
    // destroy it and continue on one made from the blob. After a guest=,
    // for that guest; before any, for all that follow.
    const k = parseDec(p + <usize>v, n - v);
    if (k <= 0) return bad("snapshot= needs a number of exits (1 or more), not", p + <usize>v, n - v);
    if (!config.SNAPSHOT_RUNS) return bad("snapshot= cannot run yet (vCPU save/restore is being built), refused rather than ignored:", p, n);
    config.setSnapshotEvery(current, <u32>k);
    return true;
  }
  v = keyIs(p, n, "guest");
  if (v >= 0) {
    const f = config.findFile(p + <usize>v, n - v);
    if (f < 0) return bad("no boot file named", p + <usize>v, n - v);
    current = config.addGuest(<u32>f);
    if (current < 0) return bad("too many guests at", p, n);
    return true;
  }
  v = keyIs(p, n, "mem");
  if (v >= 0) {
    if (!guestOption("mem", p, n)) return false;
    const size = parseSize(p + <usize>v, n - v);
    // At least 2 MiB (the loader's low memory and a kernel), at most 3 GiB
    // (below the 32-bit MMIO hole the guest's map leaves free).
    if (size < (2 << 20) || size > (3 << 30) || (size & 0xfff) != 0)
      return bad("mem= needs a page-aligned size from 2M to 3G, not", p + <usize>v, n - v);
    config.memBytes[current] = size;
    return true;
  }
  v = keyIs(p, n, "vpid");
  if (v >= 0) {
    if (!guestOption("vpid", p, n)) return false;
    const r = onOff("vpid", p + <usize>v, n - v);
    if (r < 0) return false;
    config.vpid[current] = r == 1;
    return true;
  }
  v = keyIs(p, n, "shadow-vmcs");
  if (v >= 0) {
    if (!guestOption("shadow-vmcs", p, n)) return false;
    const r = onOff("shadow-vmcs", p + <usize>v, n - v);
    if (r < 0) return false;
    config.shadowVmcs[current] = r == 1;
    return true;
  }
  v = keyIs(p, n, "nested");
  if (v >= 0) {
    if (!guestOption("nested", p, n)) return false;
    const r = onOff("nested", p + <usize>v, n - v);
    if (r < 0) return false;
    config.nested[current] = r == 1;
    return true;
  }
  v = keyIs(p, n, "hyperv");
  if (v >= 0) {
    if (!guestOption("hyperv", p, n)) return false;
    const r = onOff("hyperv", p + <usize>v, n - v);
    if (r < 0) return false;
    config.hyperv[current] = r == 1;
    return true;
  }
  v = keyIs(p, n, "apicv");
  if (v >= 0) {
    if (!guestOption("apicv", p, n)) return false;
    const r = onOff("apicv", p + <usize>v, n - v);
    if (r < 0) return false;
    config.apicv[current] = r == 1;
    return true;
  }
  v = keyIs(p, n, "spread");
  if (v >= 0) {
    if (!guestOption("spread", p, n)) return false;
    const r = onOff("spread", p + <usize>v, n - v);
    if (r < 0) return false;
    config.spread[current] = r == 1;
    return true;
  }
  v = keyIs(p, n, "vcpus");
  if (v >= 0) {
    if (!guestOption("vcpus", p, n)) return false;
    const k = parseDec(p + <usize>v, n - v);
    if (k < 1 || k > config.MAX_VCPUS) return bad("vcpus= needs a number of vCPUs from 1 to 8, not", p + <usize>v, n - v);
    config.vcpus[current] = <i32>k;
    return true;
  }
  v = keyIs(p, n, "ept");
  if (v >= 0) {
    if (!guestOption("ept", p, n)) return false;
    const r = onOff("ept", p + <usize>v, n - v);
    if (r < 0) return false;
    // Guests start in protected mode with paging off, which VMX allows
    // only as an unrestricted guest, which requires EPT (SDM 26.2.1.1).
    if (r == 0) return bad("ept=off is not supported (guests run unrestricted, which needs EPT):", p, n);
    return true;
  }
  v = keyIs(p, n, "ramsnap");
  if (v >= 0) {
    if (!guestOption("ramsnap", p, n)) return false;
    const vp = p + <usize>v;
    const vn = n - v;
    if (valueIs(vp, vn, "on")) config.ramSnapshot[current] = config.RAMSNAP_ON;
    else if (valueIs(vp, vn, "wp")) config.ramSnapshot[current] = config.RAMSNAP_WP;
    else if (valueIs(vp, vn, "off")) config.ramSnapshot[current] = config.RAMSNAP_OFF;
    else return bad("ramsnap= takes on, wp or off, not", vp, vn);
    return true;
  }
  v = keyIs(p, n, "max-ticks");
  if (v >= 0) {
    if (!guestOption("max-ticks", p, n)) return false;
    let t: u64 = 0;
    for (let i = v; i < n; i++) {
      const ch = <u64>load<u8>(p + <usize>i);
      if (ch < 0x30 || ch > 0x39 || t > 100000000000000) return bad("max-ticks= needs a decimal number, not", p + <usize>v, n - v);
      t = t * 10 + ch - 0x30;
    }
    if (v == n) return bad("max-ticks= needs a decimal number, not", p + <usize>v, 0);
    config.maxTicks[current] = t;
    return true;
  }
  v = keyIs(p, n, "args");
  if (v >= 0) {
    if (!guestOption("args", p, n)) return false;
    config.argsStart[current] = <i32>(p + <usize>v - boot.cmdline);
    config.argsLen[current] = unescapeArgs(p + <usize>v, n - v);
    return true;
  }
  v = keyIs(p, n, "initrd");
  if (v >= 0) {
    if (!guestOption("initrd", p, n)) return false;
    const f = config.findFile(p + <usize>v, n - v);
    if (f < 0) return bad("no boot file named", p + <usize>v, n - v);
    if (config.initrd[current] >= 0) return bad("a second initrd= for the same guest:", p, n);
    config.initrd[current] = f;
    return true;
  }
  v = keyIs(p, n, "module");
  if (v >= 0) {
    if (!guestOption("module", p, n)) return false;
    const f = config.findFile(p + <usize>v, n - v);
    if (f < 0) return bad("no boot file named", p + <usize>v, n - v);
    if (!config.addModule(current, <u32>f)) return bad("too many modules at", p, n);
    return true;
  }
  v = keyIs(p, n, "expect");
  if (v >= 0) {
    if (!guestOption("expect", p, n)) return false;
    const vp = p + <usize>v;
    const vn = n - v;
    if (valueIs(vp, vn, "pass")) config.expect[current] = config.OUTCOME_PASS;
    else if (valueIs(vp, vn, "triple-fault")) config.expect[current] = config.OUTCOME_TRIPLE_FAULT;
    else if (valueIs(vp, vn, "ept-violation")) config.expect[current] = config.OUTCOME_EPT_VIOLATION;
    else if (valueIs(vp, vn, "halt")) config.expect[current] = config.OUTCOME_HALT;
    else if (valueIs(vp, vn, "timeout")) config.expect[current] = config.OUTCOME_TIMEOUT;
    else {
      const code = vn > 5 && valueIs(vp, 5, "exit:") ? parseDec(vp + 5, vn - 5) : -1;
      if (code < 0) return bad("expect= takes pass, exit:N, triple-fault, ept-violation, halt or timeout, not", vp, vn);
      config.expect[current] = config.OUTCOME_EXIT;
      config.expectCode[current] = <u32>code;
    }
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
