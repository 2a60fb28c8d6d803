// Console output without allocation: pieces are appended to one static line
// buffer and written with con.write when the line ends. Every hypervisor line
// starts with "hv: " so that guest output (added later, prefixed by level)
// can never be mistaken for ours.
import * as con from "../hw/con";
import * as ident from "../cpu/ident";

const LINE_MAX: i32 = 240;
const line: usize = memory.data(256); // machine-wide: the console
let used: i32 = 0; // machine-wide: the console

function putByte(b: u32): void {
  if (used < LINE_MAX) {
    store<u8>(line + <usize>used, <u8>b);
    used++;
  }
}

// Append a string (ASCII expected; anything else prints as '?').
export function str(s: string): void {
  const n = s.length;
  const p = changetype<usize>(s);
  for (let i = 0; i < n; i++) {
    const c = <u32>load<u16>(p + (<usize>i << 1));
    putByte(c < 0x80 ? c : 0x3f);
  }
}

// Append n ASCII bytes from linear memory.
export function bytes(p: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    putByte(c >= 0x20 && c < 0x7f ? c : 0x3f);
  }
}

export function chr(c: u32): void {
  putByte(c);
}

// Hexadecimal with 0x prefix, no leading zeros.
export function hex(v: u64): void {
  putByte(0x30);
  putByte(0x78);
  let shift: i32 = 60;
  while (shift > 0 && ((v >> <u64>shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) {
    const d = <u32>((v >> <u64>shift) & 0xf);
    putByte(d < 10 ? 0x30 + d : 0x57 + d);
  }
}

// Hexadecimal, zero-padded to `digits`, with 0x prefix.
export function hexw(v: u64, digits: i32): void {
  putByte(0x30);
  putByte(0x78);
  for (let shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
    const d = <u32>((v >> <u64>shift) & 0xf);
    putByte(d < 10 ? 0x30 + d : 0x57 + d);
  }
}

export function dec(v: u64): void {
  const tmp: usize = memory.data(24);
  let n = 0;
  do {
    store<u8>(tmp + <usize>n, <u8>(0x30 + <u32>(v % 10)));
    v /= 10;
    n++;
  } while (v != 0);
  while (n > 0) {
    n--;
    putByte(<u32>load<u8>(tmp + <usize>n));
  }
}

// End the line and write it out.
export function nl(): void {
  putByte(0x0a);
  if (used == LINE_MAX) store<u8>(line + <usize>(LINE_MAX - 1), 0x0a);
  con.write(line, <u32>used);
  used = 0;
}

// Convenience: a whole line "hv: <s>".
export function say(s: string): void {
  str("hv: ");
  str(s);
  nl();
}

// "L<n>| ": the mark of a line a guest printed, n its nesting level (this
// hypervisor's own level + 1: "L1| " on the machine itself).
export function levelPrefix(): void {
  str("L");
  dec(<u64>(ident.nestingLevel + 1));
  str("| ");
}
