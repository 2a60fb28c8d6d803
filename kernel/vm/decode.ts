// Decoding the MOV that caused an MMIO exit (SDM Vol. 2: MOV 88/89/8A/8B/
// C6/C7/A0-A3; 2.1 instruction format; 2.2.1 REX). An EPT violation gives
// the guest-physical address but neither the data nor the instruction
// length, so both come from the instruction bytes at RIP. Anything other
// than these MOV forms is reported as undecodable rather than guessed.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as paging from "./paging";
import * as events from "./events";
import { Vcpu } from "./vcpu";

export const MAX_LEN: u32 = 15;

// What decode() found: owned by the caller (each vCPU has one,
// vcpu.decoded), filled by each decode().
@unmanaged export class Decoded {
  fetched: u32 = 0; // bytes read at RIP
  length: u32 = 0; // instruction length
  size: u32 = 0; // operand size in bytes: 1, 2, 4 or 8
  isWrite: bool = false; // memory is the destination
  hasImm: bool = false; // the source is the immediate `imm`
  highByte: bool = false; // AH/CH/DH/BH (reg 4-7 without REX)
  reg: i32 = -1; // register operand (hardware number), or -1
  imm: u64 = 0;
  // The instruction's bytes (MAX_LEN at most) are laid out here.
  private bytes0: u64 = 0;
  private bytes1: u64 = 0;

  @inline get bytes(): usize {
    return changetype<usize>(this) + offsetof<Decoded>("bytes0");
  }
  @inline byte(i: u32): u32 {
    return <u32>load<u8>(this.bytes + <usize>i);
  }
}

// Length of ModRM + SIB + displacement starting at i, for the addressing
// size in effect (16, 32 or 64 bits); -1 when the bytes run out.
function modrmLength(d: Decoded, i: u32, n: u32, addr: u32): i32 {
  if (i >= n) return -1;
  const modrm = d.byte(i);
  const mod = modrm >> 6;
  const rm = modrm & 7;
  let len: u32 = 1;
  if (addr == 16) {
    if (mod == 1) len += 1;
    else if (mod == 2 || (mod == 0 && rm == 6)) len += 2;
    return <i32>len;
  }
  if (mod != 3 && rm == 4) {
    if (i + 1 >= n) return -1;
    len += 1;
    if (mod == 0 && (d.byte(i + 1) & 7) == 5) len += 4;
  }
  if (mod == 1) len += 1;
  else if (mod == 2 || (mod == 0 && rm == 5)) len += 4;
  return <i32>len;
}

// Decode the instruction at vcpu's RIP into d, its bytes read through the
// guest's paging and then `stage2` (paging.ts) as the fetch the processor
// has made (at the guest's CPL, SS.DPL; no flags set again). False when it
// is not one of the MOV forms (or its bytes cannot be read).
export function decode(vcpu: Vcpu, d: Decoded, stage2: paging.Stage2 = paging.direct): bool {
  const csAr = <u32>vmx.vmread(V.GUEST_CS_ACCESS_RIGHTS);
  const long = (csAr & (1 << 13)) != 0;
  const def32 = long || (csAr & (1 << 14)) != 0;
  const rip = vmx.vmread(V.GUEST_RIP) + vmx.vmread(V.GUEST_CS_BASE);
  const fetch = paging.FETCH | paging.PEEK | (events.guestCpl() == 3 ? paging.USER : 0);
  const n = paging.readLinear(vcpu, d.bytes, rip, MAX_LEN, fetch, stage2);
  d.fetched = n;
  let i: u32 = 0;
  let opsize16 = false;
  let addrOverride = false;
  let rex: u32 = 0;
  // Legacy prefixes (2.1.1), then REX in 64-bit mode (must come last).
  while (i < n) {
    const p = d.byte(i);
    if (p == 0x66) opsize16 = true;
    else if (p == 0x67) addrOverride = true;
    else if (p == 0x26 || p == 0x2e || p == 0x36 || p == 0x3e || p == 0x64 || p == 0x65 || p == 0xf0) {
      // segment overrides and LOCK do not change the decoding
    } else break;
    i++;
  }
  if (long && i < n && (d.byte(i) & 0xf0) == 0x40) {
    rex = d.byte(i);
    i++;
  }
  if (i >= n) return false;
  const op = d.byte(i++);
  const addr: u32 = long ? (addrOverride ? 32 : 64) : (def32 != addrOverride ? 32 : 16);
  const wide: u32 = (rex & 8) != 0 ? 8 : (def32 != opsize16 ? 4 : 2);
  d.hasImm = false;
  d.imm = 0;
  d.reg = -1;
  d.highByte = false;
  if (op == 0x88 || op == 0x89 || op == 0x8a || op == 0x8b) {
    const m = modrmLength(d, i, n, addr);
    if (m < 0) return false;
    const modrm = d.byte(i);
    if ((modrm >> 6) == 3) return false; // register to register: no memory access
    d.size = (op & 1) != 0 ? wide : 1;
    d.isWrite = op == 0x88 || op == 0x89;
    d.reg = <i32>(((modrm >> 3) & 7) | ((rex & 4) << 1));
    d.highByte = d.size == 1 && rex == 0 && d.reg >= 4;
    d.length = i + <u32>m;
    return d.length <= n;
  }
  if (op == 0xc6 || op == 0xc7) {
    const m = modrmLength(d, i, n, addr);
    if (m < 0 || ((d.byte(i) >> 3) & 7) != 0 || (d.byte(i) >> 6) == 3) return false;
    d.size = op == 0xc6 ? 1 : wide;
    d.isWrite = true;
    d.hasImm = true;
    const immLen: u32 = d.size == 1 ? 1 : d.size == 2 ? 2 : 4; // imm32 sign-extended for 64-bit
    const at = i + <u32>m;
    if (at + immLen > n) return false;
    let v: u64 = 0;
    for (let k: u32 = 0; k < immLen; k++) v |= <u64>d.byte(at + k) << (<u64>k * 8);
    if (d.size == 8 && (v & 0x80000000) != 0) v |= 0xffffffff00000000;
    d.imm = v;
    d.length = at + immLen;
    return true;
  }
  if (op >= 0xa0 && op <= 0xa3) {
    // MOV AL/eAX <-> moffs: the offset is address-size wide.
    const offLen: u32 = addr == 64 ? 8 : addr == 32 ? 4 : 2;
    d.size = (op & 1) != 0 ? wide : 1;
    d.isWrite = op >= 0xa2;
    d.reg = 0;
    d.length = i + offLen;
    return d.length <= n;
  }
  return false;
}
