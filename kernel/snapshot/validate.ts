// Is a snapshot blob one that restore may load? Every rule that depends on
// the blob and on the machine it is restored on (Limits), checked before
// restore changes anything (issue 10 item 5): the framing here, then each
// section (validate-state.ts: APIC, events, timers, extended state;
// validate-nested.ts: the nested state and vmcs12; validate-hyperv.ts: the
// Hyper-V synthetic MSRs). The first broken rule
// is the answer (rules.ts names them; docs/snapshot.md "Validation" says
// why each exists). Nothing here writes anything but the Verdict and
// validate-nested.ts's scratch (the Nested a GUEST_MODE vmcs12 is checked
// in, allocated at the first one), or reads outside the blob (blob.ts
// Reader) — except the SDM entry checks on a GUEST_MODE vmcs12, which read
// L1's RAM where the SDM has VM entry read memory, within the limits
// (validate-nested.ts checkVmcs12).
import * as V from "../arch/vmx";
import { Reader, align8, firstSectionAt } from "./blob";
import * as R from "./rules";
import { Verdict } from "./rules";
import { Limits } from "./limits";
import { sectionOffset, sectionSize, indexIn } from "./find";
import * as st from "./validate-state";
import * as nest from "./validate-nested";
import * as l2 from "./validate-l2";
import * as hv from "./validate-hyperv";

// Bytes of the sections that have a fixed size; 0 for lists and XSTATE.
function fixedSize(id: u32): u32 {
  switch (id) {
    case V.SNAP_SEC_REGS: return V.REGS_BYTES;
    case V.SNAP_SEC_APIC: return V.SNAP_APIC_BYTES;
    case V.SNAP_SEC_EVENTS: return V.SNAP_EVENTS_BYTES;
    case V.SNAP_SEC_TIMERS: return V.SNAP_TIMERS_BYTES;
    case V.SNAP_SEC_DEBUG: return V.SNAP_DEBUG_BYTES;
    case V.SNAP_SEC_NESTED: return V.SNAP_NESTED_BYTES;
    case V.SNAP_SEC_VMCS12: return <u32>V.VMCS12_PAGE_SIZE;
    case V.SNAP_SEC_SHADOW_VMCS12: return <u32>V.VMCS12_PAGE_SIZE;
    case V.SNAP_SEC_HYPERV: return V.SNAP_HYPERV_BYTES;
  }
  return 0;
}

function sizeOk(id: u32, size: u64): bool {
  if (id == V.SNAP_SEC_VMCS01 || id == V.SNAP_SEC_MSRS) return size % <u64>V.SNAP_PAIR_BYTES == 0;
  if (id == V.SNAP_SEC_XSTATE) return size >= <u64>V.SNAP_XSTATE_BYTES;
  return size == <u64>fixedSize(id);
}

const REQUIRED: StaticArray<u32> = [V.SNAP_SEC_REGS, V.SNAP_SEC_VMCS01, V.SNAP_SEC_MSRS, V.SNAP_SEC_APIC,
  V.SNAP_SEC_EVENTS, V.SNAP_SEC_TIMERS, V.SNAP_SEC_DEBUG];

// The header and the section table. Afterwards every section lies inside
// the blob, in canonical place and order, with a size its id allows.
function framing(r: Reader, lim: Limits, v: Verdict): u32 {
  const len = r.length;
  if (len < <u64>V.SNAP_HDR_BYTES) return v.fail(R.BLOB_TRUNCATED, 0, -1, len);
  if (r.u32(V.SNAP_HDR_MAGIC) != V.SNAP_MAGIC) return v.fail(R.BLOB_MAGIC, 0, -1, r.u32(V.SNAP_HDR_MAGIC));
  if (r.u16(V.SNAP_HDR_VERSION) != V.SNAP_VERSION) return v.fail(R.BLOB_VERSION, 0, -1, r.u16(V.SNAP_HDR_VERSION));
  if (r.u16(V.SNAP_HDR_HEADER_BYTES) != V.SNAP_HDR_BYTES) return v.fail(R.BLOB_HEADER_SIZE, 0, -1, r.u16(V.SNAP_HDR_HEADER_BYTES));
  const total = <u64>r.u32(V.SNAP_HDR_TOTAL_BYTES);
  if (total > len) return v.fail(R.BLOB_TRUNCATED, 0, -1, total);
  if (total < len) return v.fail(R.BLOB_OVERSIZED, 0, -1, total);
  if (!r.zero(V.SNAP_HDR_RESERVED, V.SNAP_HDR_BYTES - V.SNAP_HDR_RESERVED)) return v.fail(R.BLOB_RESERVED, 0, -1, r.u64(V.SNAP_HDR_RESERVED));
  if (r.u32(V.SNAP_HDR_VMCS12_LAYOUT) != V.SNAP_VMCS12_LAYOUT) return v.fail(R.BLOB_VMCS12_LAYOUT, 0, -1, r.u32(V.SNAP_HDR_VMCS12_LAYOUT));
  if (r.u32(V.SNAP_HDR_VCPU) != lim.vcpu) return v.fail(R.BLOB_VCPU, 0, -1, r.u32(V.SNAP_HDR_VCPU));
  const n = r.u32(V.SNAP_HDR_SECTION_COUNT);
  if (n == 0 || n > V.SNAP_MAX_SECTIONS) return v.fail(R.BLOB_SECTION_COUNT, 0, -1, n);
  let expect = firstSectionAt(n);
  if (expect > total) return v.fail(R.BLOB_TRUNCATED, 0, -1, total);
  const tableEnd = <u64>V.SNAP_HDR_BYTES + <u64>n * <u64>V.SNAP_ENTRY_BYTES;
  if (!r.zero(tableEnd, expect - tableEnd)) return v.fail(R.SECTION_PADDING, 0, -1, tableEnd);
  let prev: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const e = <u64>V.SNAP_HDR_BYTES + <u64>i * <u64>V.SNAP_ENTRY_BYTES;
    const id = r.u32(e + V.SNAP_ENTRY_ID);
    const off = <u64>r.u32(e + V.SNAP_ENTRY_OFFSET);
    const size = <u64>r.u32(e + V.SNAP_ENTRY_SIZE);
    if (r.u32(e + V.SNAP_ENTRY_RESERVED) != 0) return v.fail(R.SECTION_RESERVED, id, <i32>i, r.u32(e + V.SNAP_ENTRY_RESERVED));
    if (id == 0 || id > V.SNAP_SEC_LAST) return v.fail(R.SECTION_UNKNOWN, id, <i32>i, id);
    if (id == prev) return v.fail(R.SECTION_DUPLICATE, id, <i32>i, id);
    if (id < prev) return v.fail(R.SECTION_ORDER, id, <i32>i, id);
    if (off != expect) return v.fail(R.SECTION_OFFSET, id, <i32>i, off);
    if (size > total - off) return v.fail(R.SECTION_BOUNDS, id, <i32>i, size);
    if (!sizeOk(id, size)) return v.fail(R.SECTION_SIZE, id, <i32>i, size);
    const end = off + size;
    const next = align8(end);
    if (next > total) return v.fail(R.BLOB_TRUNCATED, id, <i32>i, total);
    if (!r.zero(end, next - end)) return v.fail(R.SECTION_PADDING, id, <i32>i, end);
    expect = next;
    prev = id;
  }
  if (total != expect) return v.fail(R.BLOB_OVERSIZED, 0, -1, total);
  // The sections every vCPU has; XSTATE exactly when the processor has
  // XSAVE; NESTED only for a guest offered VMX. (VMCS12 and SHADOW_VMCS12
  // depend on NESTED's content: validate-nested.ts.)
  for (let k = 0; k < REQUIRED.length; k++) {
    const id = unchecked(REQUIRED[k]);
    if (r.find(id) < 0) return v.fail(R.SECTION_MISSING, id, -1, id);
  }
  const hasX = r.find(V.SNAP_SEC_XSTATE) >= 0;
  if (lim.xsaveBytes != 0 && !hasX) return v.fail(R.SECTION_MISSING, V.SNAP_SEC_XSTATE, -1, V.SNAP_SEC_XSTATE);
  if (lim.xsaveBytes == 0 && hasX) return v.fail(R.SECTION_UNEXPECTED, V.SNAP_SEC_XSTATE, -1, V.SNAP_SEC_XSTATE);
  if (!lim.nested && r.find(V.SNAP_SEC_NESTED) >= 0) return v.fail(R.NESTED_NOT_OFFERED, V.SNAP_SEC_NESTED, -1, 0);
  // HYPERV exactly for a guest with hyperv=on (its synthetic MSRs would
  // otherwise be lost, or be given to a guest that has none).
  const hasHv = r.find(V.SNAP_SEC_HYPERV) >= 0;
  if (!lim.hyperv && hasHv) return v.fail(R.HYPERV_NOT_OFFERED, V.SNAP_SEC_HYPERV, -1, 0);
  if (lim.hyperv && !hasHv) return v.fail(R.SECTION_MISSING, V.SNAP_SEC_HYPERV, -1, V.SNAP_SEC_HYPERV);
  return R.OK;
}

// The register block: only the MXCSR can make the entry stub's FXRSTOR
// fault (#GP for a reserved bit set, SDM Vol. 1 10.5.1.1); the other bytes
// are loaded as they are (RSP's slot and the gaps are not read).
function regs(r: Reader, lim: Limits, v: Verdict): u32 {
  const off = sectionOffset(r, V.SNAP_SEC_REGS);
  const mxcsr = r.u32(off + V.REGS_FX + 24);
  if ((mxcsr & ~lim.mxcsrMask) != 0) return v.fail(R.REGS_MXCSR, V.SNAP_SEC_REGS, V.REGS_FX + 24, mxcsr);
  return R.OK;
}

// The first key of `list` that a list section of `count` items lacks.
function listKeysMissing(r: Reader, off: u64, count: u32, list: StaticArray<u32>): u32 {
  // Every key is in the list and ascending (checked by the caller), so the
  // section lacks one exactly when it has fewer items: the first gap.
  for (let i: u32 = 0; i < count; i++) {
    if (r.u32(off + <u64>i * V.SNAP_PAIR_BYTES + V.SNAP_PAIR_KEY) != unchecked(list[i])) return unchecked(list[i]);
  }
  return unchecked(list[count]);
}

// vmcs01's guest state as encoding/value pairs: exactly SNAP_VMCS01_FIELDS,
// ascending, each value within its field's width. An encoding outside the
// list tells a blob of another field set apart (a newer writer's extra
// field, an older one's missing one). Values are not checked against the
// SDM's guest-state rules here (docs/snapshot.md: the processor makes them
// at the first VM entry after restore).
// (Both list sections take a fast path: while every item so far is the
// list's entry of the same index, the next one equal to its entry is known,
// in the list and ascending; only an item that is not goes through the
// checks that name what is wrong with it. The same answers, at a fifth of
// the cost: restore validates on the exit path of snapshot=N.)
function vmcs01(r: Reader, v: Verdict): u32 {
  const off = sectionOffset(r, V.SNAP_SEC_VMCS01);
  const n = <u32>(sectionSize(r, V.SNAP_SEC_VMCS01) / V.SNAP_PAIR_BYTES);
  let prev: i64 = -1;
  let aligned = true;
  for (let i: u32 = 0; i < n; i++) {
    const p = off + <u64>i * V.SNAP_PAIR_BYTES;
    const enc = r.u32(p + V.SNAP_PAIR_KEY);
    const value = r.u64(p + V.SNAP_PAIR_VALUE);
    if (r.u32(p + V.SNAP_PAIR_RESERVED) != 0) return v.fail(R.PAIR_RESERVED, V.SNAP_SEC_VMCS01, <i32>i, r.u32(p + V.SNAP_PAIR_RESERVED));
    aligned = aligned && i < V.SNAP_VMCS01_FIELD_COUNT && enc == unchecked(V.SNAP_VMCS01_FIELDS[i]);
    if (!aligned) {
      // Full encodings only (25.11.2): reserved bits clear, no high access.
      if ((enc & (V.VMCS_ENC_RESERVED_MASK | V.VMCS_ENC_HIGH)) != 0) return v.fail(R.VMCS01_ENCODING, V.SNAP_SEC_VMCS01, <i32>i, enc);
      if (!V.vmcsFieldIsKnown(enc)) return v.fail(R.VMCS01_UNKNOWN_FIELD, V.SNAP_SEC_VMCS01, <i32>i, enc);
      if (indexIn(V.SNAP_VMCS01_FIELDS, enc) < 0) return v.fail(R.VMCS01_NOT_SAVED, V.SNAP_SEC_VMCS01, <i32>i, enc);
      if (<i64>enc <= prev) return v.fail(R.VMCS01_ORDER, V.SNAP_SEC_VMCS01, <i32>i, enc);
    }
    const w = V.vmcsEncodingWidth(enc);
    if ((w == V.VMCS_WIDTH_16 && (value >> 16) != 0) || (w == V.VMCS_WIDTH_32 && (value >> 32) != 0))
      return v.fail(R.VMCS01_VALUE_WIDTH, V.SNAP_SEC_VMCS01, <i32>i, value);
    prev = <i64>enc;
  }
  if (n != V.SNAP_VMCS01_FIELD_COUNT) return v.fail(R.VMCS01_MISSING, V.SNAP_SEC_VMCS01, -1, listKeysMissing(r, off, n, V.SNAP_VMCS01_FIELDS));
  return R.OK;
}

@inline function canonical(a: u64, bits: u32): bool {
  const s = <i64>a >> <i64>(bits - 1);
  return s == 0 || s == -1;
}

// Bytes 0-7 of an MTRR value, each a memory type the MTRRs take (SDM Vol.
// 3A 11.11.2: UC 0, WC 1, WT 4, WP 5, WB 6), as exit/msr.ts accepts them.
function mtrrTypes(v: u64, bytes: u32): bool {
  for (let i: u32 = 0; i < bytes; i++) {
    const t = <u32>(v >> (<u64>i << 3)) & 0xff;
    if (t != 0 && t != 1 && t != 4 && t != 5 && t != 6) return false;
  }
  return true;
}

// Could WRMSR (or the emulation of exit/msr.ts) give the MSR this value?
// A value it would refuse cannot be restored: for the pass-through MSRs the
// processor's WRMSR would #GP in the hypervisor (non-canonical addresses,
// reserved bits: SDM Vol. 4 Table 2-2, Vol. 2B WRMSR).
function msrValueOk(msr: u32, value: u64, lim: Limits): bool {
  switch (msr) {
    case V.MSR_IA32_FEATURE_CONTROL:
      return (value & ~(V.FEATURE_CONTROL_LOCK | V.FEATURE_CONTROL_VMX_OUTSIDE_SMX)) == 0;
    case V.MSR_IA32_MTRR_DEF_TYPE:
      return (value & ~<u64>0xcff) == 0 && mtrrTypes(value, 1);
    case V.MSR_IA32_LSTAR:
    case V.MSR_IA32_CSTAR:
    case V.MSR_IA32_KERNEL_GS_BASE:
      return canonical(value, lim.linearBits);
    case V.MSR_IA32_FMASK:
    case V.MSR_IA32_TSC_AUX:
      return (value >> 32) == 0;
  }
  if (msr >= V.MSR_IA32_MTRR_FIX64K_00000 && msr <= V.MSR_IA32_MTRR_FIX4K_C0000 + 7) return mtrrTypes(value, 8);
  return true; // IA32_STAR, IA32_TSC_ADJUST: any value
}

function msrs(r: Reader, lim: Limits, v: Verdict): u32 {
  const off = sectionOffset(r, V.SNAP_SEC_MSRS);
  const n = <u32>(sectionSize(r, V.SNAP_SEC_MSRS) / V.SNAP_PAIR_BYTES);
  let prev: i64 = -1;
  let aligned = true;
  for (let i: u32 = 0; i < n; i++) {
    const p = off + <u64>i * V.SNAP_PAIR_BYTES;
    const msr = r.u32(p + V.SNAP_PAIR_KEY);
    const value = r.u64(p + V.SNAP_PAIR_VALUE);
    if (r.u32(p + V.SNAP_PAIR_RESERVED) != 0) return v.fail(R.PAIR_RESERVED, V.SNAP_SEC_MSRS, <i32>i, r.u32(p + V.SNAP_PAIR_RESERVED));
    aligned = aligned && i < V.SNAP_MSR_COUNT && msr == unchecked(V.SNAP_MSRS[i]);
    if (!aligned) {
      if (indexIn(V.SNAP_MSRS, msr) < 0) return v.fail(R.MSR_UNKNOWN, V.SNAP_SEC_MSRS, <i32>i, msr);
      if (<i64>msr <= prev) return v.fail(R.MSR_ORDER, V.SNAP_SEC_MSRS, <i32>i, msr);
    }
    if (!msrValueOk(msr, value, lim)) return v.fail(R.MSR_VALUE, V.SNAP_SEC_MSRS, <i32>i, value);
    prev = <i64>msr;
  }
  if (n != V.SNAP_MSR_COUNT) return v.fail(R.MSR_MISSING, V.SNAP_SEC_MSRS, -1, listKeysMissing(r, off, n, V.SNAP_MSRS));
  return R.OK;
}

// The whole blob [blob, blob + length) against lim: R.OK or the first
// broken rule, recorded in v (which the caller owns; r is the caller's
// scratch reader). Changes nothing else.
export function validate(blob: usize, length: u64, lim: Limits, v: Verdict, r: Reader): u32 {
  v.clear();
  r.open(blob, length);
  let rule = framing(r, lim, v);
  if (rule == R.OK) rule = regs(r, lim, v);
  if (rule == R.OK) rule = vmcs01(r, v);
  if (rule == R.OK) rule = msrs(r, lim, v);
  if (rule == R.OK) rule = st.apic(r, lim, v);
  if (rule == R.OK) rule = st.timers(r, v);
  if (rule == R.OK) rule = st.debug(r, v);
  if (rule == R.OK) rule = st.xstate(r, lim, v);
  if (rule == R.OK) rule = nest.nested(r, lim, v);
  if (rule == R.OK) rule = st.events(r, lim, v);
  if (rule == R.OK) rule = l2.l2State(r, v);
  if (rule == R.OK) rule = hv.hypervState(r, lim, v);
  if (rule == R.OK) rule = nest.entryChecks(r, lim, v);
  // Every read stayed inside the blob (framing made sure); a read outside
  // would be a bug here, and is a rejection rather than a wrong answer.
  if (rule == R.OK && r.overrun) rule = v.fail(R.BLOB_TRUNCATED, 0, -1, length);
  return rule;
}
