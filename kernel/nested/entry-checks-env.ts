// What the VM-entry checks on a vmcs12 (entry-checks.ts) need besides the
// vmcs12 itself: the failure being reported, L1's processor mode, and the
// address widths and features of the processor L1 sees. No allocation: the
// failing check's name is a string literal, held by reference.
import * as ident from "../cpu/ident";

// The failing check (a short, stable name) and, for guest-state failures,
// the exit qualification of SDM Vol. 3C 27.8.
export let failName: string = "";
export let failQual: u64 = 0;

// Record a failure; returns false so a check can `return fail(...)`.
export function fail(name: string, qual: u64 = 0): bool {
  failName = name;
  failQual = qual;
  return false;
}

export function clearFailure(): void {
  failName = "";
  failQual = 0;
}

// IA32_EFER.LMA of L1 (the logical processor executing VMLAUNCH/VMRESUME,
// 27.2.4). The caller, which has L1's state at hand, sets it before each
// check; true is the common case (a 64-bit L1).
export let l1Ia32e: bool = true;
export function setL1Ia32e(lma: bool): void {
  l1Ia32e = lma;
}

// L1 sees the processor's CPUID leaves 80000008H and 7 (kernel/vm/exit/
// cpuid.ts passes them through), so its physical- and linear-address widths
// and its RTM support are the processor's. Read once, on first use.
let linBits: u32 = 0;
let rtmKnown: bool = false;
let rtm: bool = false;

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
