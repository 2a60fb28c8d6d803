// The operands of L1's VMX instructions, as the VM exit describes them:
// the VM-exit instruction-information field (SDM Vol. 3C 28.2.5: Table 28-9
// for INVEPT/INVVPID, 28-13 for VMCLEAR/VMPTRLD/VMPTRST/VMXON, 28-14 for
// VMREAD/VMWRITE) and the exit qualification (28.2.1), which holds the
// instruction's displacement sign-extended to 64 bits.
//
// A memory operand's effective address is base + index * scale +
// displacement, truncated to the address size (16, 32 or 64 bits). For
// RIP-relative addressing (64-bit mode) the processor reports neither base
// nor index and puts displacement + the next instruction's RIP in the
// qualification, so the same sum is right for it too. The linear address
// adds the segment base; then, as the processor does for a data access
// (Vol. 3A 3.4-3.5, 5.3; the Protected Mode and 64-Bit Mode Exceptions of
// each instruction in Vol. 3C 31.3):
//   - outside 64-bit mode: an unusable segment, a write to a code or
//     read-only data segment, a read from an execute-only code segment, or
//     an access beyond the segment limit (expand-up or expand-down) is
//     #GP(0), or #SS(0) when the segment is SS;
//   - in 64-bit mode: only FS and GS bases apply, and an address that is not
//     canonical is #GP(0), or #SS(0) for SS-relative accesses;
// then paging (linear.ts): #PF.
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as events from "../vm/events";
import * as common from "./common";
import * as linear from "./linear";

const SEG_SS: u32 = 2;
const SEG_FS: u32 = 4;
const SEG_GS: u32 = 5;
// Distance between the fields of two consecutive segments (Appendix B: ES,
// CS, SS, DS, FS, GS, each kind of field in this order).
const SEG_STRIDE: u32 = V.GUEST_CS_SELECTOR - V.GUEST_ES_SELECTOR;

// Fields of the instruction information.
export function isRegister(info: u32): bool {
  return (info & V.INSN_INFO_REG_OPERAND) != 0;
}
export function reg1(info: u32): u32 {
  return (info & V.INSN_INFO_REG1_MASK) >> V.INSN_INFO_REG1_SHIFT;
}
export function reg2(info: u32): u32 {
  return (info & V.INSN_INFO_REG2_MASK) >> V.INSN_INFO_REG2_SHIFT;
}

// A memory operand read or written for the instruction being emulated:
// the caller's result object (vcpu.nested.operand), so that read() can
// return its status and the value both. Its first 16 bytes are also the
// buffer the operand moves through.
@unmanaged export class Operand {
  value: u64 = 0; // read: the first 8 bytes (zero-extended from 2 or 4)
  valueHigh: u64 = 0; // read: bytes 15:8 of a 16-byte operand, else 0
  lin: u64 = 0; // the operand's linear address (address())
  clear(): void {
    this.value = 0;
    this.valueHigh = 0;
    this.lin = 0;
  }
}
// value and valueHigh are the 16-byte buffer.
if (offsetof<Operand>("value") != 0 || offsetof<Operand>("valueHigh") != 8) unreachable();

function canonical(a: u64): bool {
  const bits: u64 = (common.guestCr4() & V.X86_CR4_LA57) != 0 ? 57 : 48;
  const top = <i64>a >> (bits - 1);
  return top == 0 || top == -1;
}

function segFault(seg: u32): i32 {
  if (seg == SEG_SS) events.injectSS();
  else events.injectGP();
  return linear.FAULT;
}

// May `len` bytes at offset ea of a segment with access rights ar and
// (byte-granular, 25.4.1) limit be accessed (Vol. 3A 3.4.5.1, 5.3, 5.5)?
function segmentAllows(ar: u32, limit: u64, ea: u64, len: u32, write: bool): bool {
  if ((ar & V.SEG_AR_UNUSABLE) != 0) return false;
  const type = (ar & V.SEG_AR_TYPE_MASK) >> V.SEG_AR_TYPE_SHIFT;
  const code = (type & 8) != 0;
  const rw = (type & 2) != 0; // code: readable; data: writable
  if (code ? (write || !rw) : (write && !rw)) return false;
  const last = ea + <u64>len - 1;
  if (!code && (type & 4) != 0) {
    // Expand-down: offsets limit+1 .. FFFFH, or FFFFFFFFH with the B flag.
    const upper: u64 = (ar & V.SEG_AR_DB) != 0 ? 0xffffffff : 0xffff;
    return ea > limit && last <= upper;
  }
  return last <= limit;
}

// The linear address of the memory operand of `len` bytes, with the
// segmentation checks: linear.OK (op.lin set), or linear.FAULT / HALT.
// long: the guest is in 64-bit mode (outside it linear addresses wrap at
// 4 GiB).
function address(vcpu: Vcpu, info: u32, len: u32, write: bool, op: Operand, long: bool): i32 {
  let ea = vmx.vmread(V.EXIT_QUALIFICATION);
  if ((info & V.INSN_INFO_BASE_INVALID) == 0)
    ea += vcpu.gpr((info & V.INSN_INFO_BASE_REG_MASK) >> V.INSN_INFO_BASE_REG_SHIFT);
  if ((info & V.INSN_INFO_INDEX_INVALID) == 0) {
    const scale = (info & V.INSN_INFO_SCALING_MASK) >> V.INSN_INFO_SCALING_SHIFT;
    ea += vcpu.gpr((info & V.INSN_INFO_INDEX_REG_MASK) >> V.INSN_INFO_INDEX_REG_SHIFT) << scale;
  }
  const asize = (info & V.INSN_INFO_ADDR_SIZE_MASK) >> V.INSN_INFO_ADDR_SIZE_SHIFT;
  if (asize == 0) ea &= 0xffff;
  else if (asize == 1) ea &= 0xffffffff;
  const seg = (info & V.INSN_INFO_SEGMENT_MASK) >> V.INSN_INFO_SEGMENT_SHIFT;
  if (seg > SEG_GS) {
    // "Other values not used": a processor never reports one.
    print.str("hv: guest: VMX instruction exit with segment register ");
    print.dec(seg);
    print.str(" in its instruction information ");
    print.hex(info);
    print.nl();
    return linear.HALT;
  }
  const sf = SEG_STRIDE * seg;
  if (long) {
    // 64-bit mode: no limits; CS, DS, ES, SS bases are treated as 0 (3.4.4).
    const lin = seg == SEG_FS || seg == SEG_GS ? vmx.vmread(V.GUEST_ES_BASE + sf) + ea : ea;
    op.lin = lin;
    if (!canonical(lin) || !canonical(lin + <u64>len - 1)) return segFault(seg);
    return linear.OK;
  }
  const ar = <u32>vmx.vmread(V.GUEST_ES_ACCESS_RIGHTS + sf);
  const limit = vmx.vmread(V.GUEST_ES_LIMIT + sf) & 0xffffffff;
  if (!segmentAllows(ar, limit, ea, len, write)) return segFault(seg);
  op.lin = (vmx.vmread(V.GUEST_ES_BASE + sf) + ea) & 0xffffffff;
  return linear.OK;
}

// Read the memory operand of `len` bytes (2, 4, 8 or 16) into op.value /
// op.valueHigh. linear.OK, or FAULT (exception injected) / HALT.
export function read(vcpu: Vcpu, info: u32, len: u32, op: Operand): i32 {
  const long = common.longMode();
  let r = address(vcpu, info, len, false, op, long);
  if (r != linear.OK) return r;
  const buf = changetype<usize>(op);
  r = linear.read(vcpu, op.lin, len, !long, buf);
  if (r != linear.OK) return r;
  if (len == 2) op.value = <u64>load<u16>(buf);
  else if (len == 4) op.value = <u64>load<u32>(buf);
  if (len != 16) op.valueHigh = 0;
  return linear.OK;
}

// Write the low `len` bytes (2, 4 or 8) of v to the memory operand (op is
// the buffer).
export function write(vcpu: Vcpu, info: u32, len: u32, v: u64, op: Operand): i32 {
  const long = common.longMode();
  let r = address(vcpu, info, len, true, op, long);
  if (r != linear.OK) return r;
  const buf = changetype<usize>(op);
  op.value = v;
  return linear.write(vcpu, op.lin, len, !long, buf);
}
