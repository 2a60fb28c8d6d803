// What the VM-entry checks on a vmcs12 (entry-checks.ts) need besides the
// vmcs12 itself: L1's processor mode and the address widths and features of
// the processor L1 sees; and where they report a failure. No allocation:
// the failing check's name is a string literal, held by reference.
import * as ident from "../cpu/ident";
import { Nested } from "./nested";

// One run of the checks: its inputs and its outcome, owned by the caller
// (a Nested has one for its VMLAUNCH/VMRESUME, embedded: init() sets what
// the field initializers would; a restore brings its own). Every check
// function takes it.
@unmanaged export class EntryCheck {
  // The Nested whose vmcs12 (cache) is checked. (L1's IA32_EFER.LMA, the
  // other input, is a parameter of the checks that read it.)
  n: Nested = changetype<Nested>(0);
  // The outcome of a failure, which the checks return (entry-checks.ts
  // FAIL_*): the failing check (a short, stable name) and the
  // architectural answer: for FAIL_CONTROLS/FAIL_HOST the VM-instruction
  // error of VMfailValid (7, 8); for FAIL_GUEST the exit reason of the
  // failed VM entry (33 | bit 31) and its exit qualification (27.8).
  // Nothing is written when all pass (VMRESUME's checks are on the nested
  // exit path).
  failName: string = "";
  failQual: u64 = 0;
  error: u32 = 0;
  exitReason: u32 = 0;

  init(n: Nested): void {
    this.start(n);
  }
  start(n: Nested): void {
    this.n = n;
    this.failName = "";
    this.failQual = 0;
    this.error = 0;
    this.exitReason = 0;
  }
}

// Record a failure; returns false so a check can `return fail(...)`.
export function fail(c: EntryCheck, name: string, qual: u64 = 0): bool {
  c.failName = name;
  c.failQual = qual;
  return false;
}

// L1 sees the processor's CPUID leaves 80000008H and 7 (kernel/vm/exit/
// cpuid.ts passes them through), so its physical- and linear-address widths
// and its RTM support are the processor's. Read once, on first use.
let linBits: u32 = 0; // machine-wide: the processor's CPUID
let rtmKnown: bool = false; // machine-wide: the processor's CPUID
let rtm: bool = false; // machine-wide: the processor's CPUID

// MAXPHYADDR (CPUID.80000008H:EAX[7:0], read by ident.identify at boot).
export function physBits(): u32 {
  return ident.physAddrBits;
}

// True when a sets a bit at or above the physical-address width.
export function beyondPhys(a: u64): bool {
  const w = ident.physAddrBits;
  return w < 64 && (a >> <u64>w) != 0;
}

// CPUID.80000008H:EAX[15:8]; 48 when the leaf is absent.
export function linearBits(): u32 {
  if (linBits == 0) {
    if (ident.maxExtLeaf >= 0x80000008) {
      ident.query(0x80000008);
      linBits = (ident.eax() >> 8) & 0xff;
    }
    if (linBits < 32 || linBits > 64) linBits = 48;
  }
  return linBits;
}

// Canonical: bits 63:N-1 all equal, N the linear-address width.
export function canonical(a: u64): bool {
  const n = linearBits();
  if (n >= 64) return true;
  const s = <u64>64 - <u64>n;
  return <u64>((<i64>(a << s)) >> <i64>s) == a;
}

// CPUID.(EAX=07H,ECX=0):EBX.RTM[bit 11].
export function hasRtm(): bool {
  if (!rtmKnown) {
    rtm = false;
    if (ident.maxBasicLeaf >= 7) {
      ident.query(7, 0);
      rtm = (ident.ebx() & (1 << 11)) != 0;
    }
    rtmKnown = true;
  }
  return rtm;
}

// Forget the cached CPUID values (tests change the machine).
export function resetCpuCache(): void {
  linBits = 0;
  rtmKnown = false;
}
