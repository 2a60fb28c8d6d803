// The local APIC's 256-bit registers (IRR, ISR, TMR): one bit per vector,
// laid out as the APIC page shows them, eight 32-bit words, vector v in
// word v >> 5, bit v & 31 (SDM Vol. 3A 11.8.4, Figure 11-20).
// Each register is 32 bytes inside the owning Lapic object (lapic.ts), passed
// here by address; no allocation.

export function clearAll(r: usize): void {
  store<u64>(r, 0);
  store<u64>(r + 8, 0);
  store<u64>(r + 16, 0);
  store<u64>(r + 24, 0);
}

export function word(r: usize, i: u32): u32 {
  return load<u32>(r + (<usize>(i & 7) << 2));
}

export function test(r: usize, v: u32): bool {
  return (word(r, v >> 5) & (<u32>1 << (v & 31))) != 0;
}

export function set(r: usize, v: u32): void {
  const p = r + (<usize>((v >> 5) & 7) << 2);
  store<u32>(p, load<u32>(p) | (<u32>1 << (v & 31)));
}

export function clear(r: usize, v: u32): void {
  const p = r + (<usize>((v >> 5) & 7) << 2);
  store<u32>(p, load<u32>(p) & ~(<u32>1 << (v & 31)));
}

// The highest vector whose bit is set, or -1.
export function highest(r: usize): i32 {
  for (let i: i32 = 7; i >= 0; i--) {
    const w = load<u32>(r + (<usize>i << 2));
    if (w != 0) return (i << 5) + 31 - <i32>clz<u32>(w);
  }
  return -1;
}

// Is a bit other than vector v's set?
export function anyExcept(r: usize, v: u32): bool {
  for (let i: u32 = 0; i < 8; i++) {
    let w = word(r, i);
    if (i == ((v >> 5) & 7)) w &= ~(<u32>1 << (v & 31));
    if (w != 0) return true;
  }
  return false;
}
