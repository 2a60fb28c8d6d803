// The snapshot blob of docs/snapshot.md, written and read in TypeScript from
// the generated layout (vmx-consts.ts SNAP_*), sharing no code with
// kernel/snapshot/: the tests build blobs here, hand them to kernel.wasm's
// validator and compare what the kernel's Writer builds with encode().
import * as V from './vmx-consts.ts';

export const NONE = 0xffff_ffff_ffff_ffffn;

/** One vCPU's snapshot, section by section. */
export interface Snap {
  vcpu: number;
  regs: Uint8Array; // REGS_BYTES
  vmcs01: Map<number, bigint>; // encoding -> value, written in ascending order
  msrs: Map<number, bigint>; // index -> value, ascending
  apic: { base: bigint; esrPending: number; page: Uint32Array }; // page: 256 words, register r at word r/4
  events: { l1: [number, number, number]; l2: [number, number, number] };
  timers: { l1Tsc: bigint; apicDeadline: bigint };
  debug: { dr: [bigint, bigint, bigint, bigint]; dr6: bigint };
  xstate: { xcr0: bigint; area: Uint8Array } | null;
  /** l2: L2's EFER, PAT, DR7, DEBUGCTL (GUEST_MODE; absent: zeros). */
  nested: { flags: number; vmxon: bigint; vmcs12: bigint; deadline: bigint; l2?: [bigint, bigint, bigint, bigint] } | null;
  vmcs12: Uint8Array | null; // VMCS12_PAGE_SIZE, private layout
  shadow12: Uint8Array | null;
  /** The HYPERV section (a guest with hyperv=on); absent or null: none. */
  hyperv?: { guestOsId: bigint; hypercall: bigint; tscInvariantControl: bigint; vpAssistPage: bigint } | null;
}

const align8 = (n: number): number => (n + 7) & ~7;

/** Section id -> payload bytes, in ascending id order. */
export function sections(s: Snap): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  out.push([V.SNAP_SEC_REGS, s.regs]);
  const pairs = (m: Map<number, bigint>): Uint8Array => {
    const b = new Uint8Array(m.size * V.SNAP_PAIR_BYTES);
    const dv = new DataView(b.buffer);
    [...m.entries()].forEach(([k, v], i) => {
      dv.setUint32(i * 16 + V.SNAP_PAIR_KEY, k >>> 0, true);
      dv.setBigUint64(i * 16 + V.SNAP_PAIR_VALUE, BigInt.asUintN(64, v), true);
    });
    return b;
  };
  out.push([V.SNAP_SEC_VMCS01, pairs(s.vmcs01)]);
  out.push([V.SNAP_SEC_MSRS, pairs(s.msrs)]);
  {
    const b = new Uint8Array(V.SNAP_APIC_BYTES);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(V.SNAP_APIC_BASE, s.apic.base, true);
    dv.setUint32(V.SNAP_APIC_ESR_PENDING, s.apic.esrPending >>> 0, true);
    for (let r = 0; r < 0x400; r += 4) dv.setUint32(V.SNAP_APIC_PAGE + r, s.apic.page[r / 4] >>> 0, true);
    out.push([V.SNAP_SEC_APIC, b]);
  }
  {
    const b = new Uint8Array(V.SNAP_EVENTS_BYTES);
    const dv = new DataView(b.buffer);
    const at = [V.SNAP_EVENTS_L1_INFO, V.SNAP_EVENTS_L1_ERROR, V.SNAP_EVENTS_L1_LENGTH, V.SNAP_EVENTS_L2_INFO, V.SNAP_EVENTS_L2_ERROR, V.SNAP_EVENTS_L2_LENGTH];
    [...s.events.l1, ...s.events.l2].forEach((v, i) => dv.setUint32(at[i], v >>> 0, true));
    out.push([V.SNAP_SEC_EVENTS, b]);
  }
  {
    const b = new Uint8Array(V.SNAP_TIMERS_BYTES);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(V.SNAP_TIMERS_L1_TSC, s.timers.l1Tsc, true);
    dv.setBigUint64(V.SNAP_TIMERS_APIC_DEADLINE, s.timers.apicDeadline, true);
    out.push([V.SNAP_SEC_TIMERS, b]);
  }
  {
    const b = new Uint8Array(V.SNAP_DEBUG_BYTES);
    const dv = new DataView(b.buffer);
    [V.SNAP_DEBUG_DR0, V.SNAP_DEBUG_DR1, V.SNAP_DEBUG_DR2, V.SNAP_DEBUG_DR3].forEach((at, i) => dv.setBigUint64(at, BigInt.asUintN(64, s.debug.dr[i]), true));
    dv.setBigUint64(V.SNAP_DEBUG_DR6, BigInt.asUintN(64, s.debug.dr6), true);
    out.push([V.SNAP_SEC_DEBUG, b]);
  }
  if (s.xstate) {
    const b = new Uint8Array(V.SNAP_XSTATE_BYTES + s.xstate.area.length);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(V.SNAP_XSTATE_XCR0, s.xstate.xcr0, true);
    dv.setUint32(V.SNAP_XSTATE_AREA_BYTES, s.xstate.area.length, true);
    b.set(s.xstate.area, V.SNAP_XSTATE_AREA);
    out.push([V.SNAP_SEC_XSTATE, b]);
  }
  if (s.nested) {
    const b = new Uint8Array(V.SNAP_NESTED_BYTES);
    const dv = new DataView(b.buffer);
    dv.setUint32(V.SNAP_NESTED_FLAGS, s.nested.flags >>> 0, true);
    dv.setBigUint64(V.SNAP_NESTED_VMXON, s.nested.vmxon, true);
    dv.setBigUint64(V.SNAP_NESTED_VMCS12, s.nested.vmcs12, true);
    dv.setBigUint64(V.SNAP_NESTED_PREEMPTION_DEADLINE, s.nested.deadline, true);
    const l2 = s.nested.l2 ?? [0n, 0n, 0n, 0n];
    dv.setBigUint64(V.SNAP_NESTED_L2_EFER, l2[0], true);
    dv.setBigUint64(V.SNAP_NESTED_L2_PAT, l2[1], true);
    dv.setBigUint64(V.SNAP_NESTED_L2_DR7, l2[2], true);
    dv.setBigUint64(V.SNAP_NESTED_L2_DEBUGCTL, l2[3], true);
    out.push([V.SNAP_SEC_NESTED, b]);
  }
  if (s.vmcs12) out.push([V.SNAP_SEC_VMCS12, s.vmcs12]);
  if (s.shadow12) out.push([V.SNAP_SEC_SHADOW_VMCS12, s.shadow12]);
  if (s.hyperv) {
    const b = new Uint8Array(V.SNAP_HYPERV_BYTES);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(V.SNAP_HYPERV_GUEST_OS_ID, BigInt.asUintN(64, s.hyperv.guestOsId), true);
    dv.setBigUint64(V.SNAP_HYPERV_HYPERCALL, BigInt.asUintN(64, s.hyperv.hypercall), true);
    dv.setBigUint64(V.SNAP_HYPERV_TSC_INVARIANT_CONTROL, BigInt.asUintN(64, s.hyperv.tscInvariantControl), true);
    dv.setBigUint64(V.SNAP_HYPERV_VP_ASSIST_PAGE, BigInt.asUintN(64, s.hyperv.vpAssistPage), true);
    out.push([V.SNAP_SEC_HYPERV, b]);
  }
  return out;
}

/** The blob for a list of sections (in the order given: a test may break it). */
export function frame(vcpu: number, secs: [number, Uint8Array][]): Uint8Array {
  const n = secs.length;
  let pos = align8(V.SNAP_HDR_BYTES + n * V.SNAP_ENTRY_BYTES);
  const places = secs.map(([, b]) => {
    const at = pos;
    pos = align8(pos + b.length);
    return at;
  });
  const blob = new Uint8Array(pos);
  const dv = new DataView(blob.buffer);
  dv.setUint32(V.SNAP_HDR_MAGIC, V.SNAP_MAGIC, true);
  dv.setUint16(V.SNAP_HDR_VERSION, V.SNAP_VERSION, true);
  dv.setUint16(V.SNAP_HDR_HEADER_BYTES, V.SNAP_HDR_BYTES, true);
  dv.setUint32(V.SNAP_HDR_TOTAL_BYTES, pos, true);
  dv.setUint32(V.SNAP_HDR_SECTION_COUNT, n, true);
  dv.setUint32(V.SNAP_HDR_VCPU, vcpu, true);
  dv.setUint32(V.SNAP_HDR_VMCS12_LAYOUT, V.SNAP_VMCS12_LAYOUT, true);
  secs.forEach(([id, b], i) => {
    const e = V.SNAP_HDR_BYTES + i * V.SNAP_ENTRY_BYTES;
    dv.setUint32(e + V.SNAP_ENTRY_ID, id, true);
    dv.setUint32(e + V.SNAP_ENTRY_OFFSET, places[i], true);
    dv.setUint32(e + V.SNAP_ENTRY_SIZE, b.length, true);
    blob.set(b, places[i]);
  });
  return blob;
}

export function encode(s: Snap): Uint8Array {
  return frame(s.vcpu, sections(s));
}

/** The framing of a blob, read back: id, offset, size of each section. */
export function table(blob: Uint8Array): { id: number; offset: number; size: number }[] {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const n = dv.getUint32(V.SNAP_HDR_SECTION_COUNT, true);
  const out = [];
  for (let i = 0; i < n; i++) {
    const e = V.SNAP_HDR_BYTES + i * V.SNAP_ENTRY_BYTES;
    out.push({ id: dv.getUint32(e + V.SNAP_ENTRY_ID, true), offset: dv.getUint32(e + V.SNAP_ENTRY_OFFSET, true), size: dv.getUint32(e + V.SNAP_ENTRY_SIZE, true) });
  }
  return out;
}

/** Field `enc` of a vmcs12 page in the private layout (vmcs12Offset, width from the encoding). */
export function get12(page: Uint8Array, enc: number): bigint {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const off = V.vmcs12Offset(enc);
  if (off < 0) throw new Error(`no vmcs12 field ${enc.toString(16)}`);
  const w = (enc >>> 13) & 3;
  if (w === 0) return BigInt(dv.getUint16(off, true));
  if (w === 2) return BigInt(dv.getUint32(off, true));
  return dv.getBigUint64(off, true);
}
export function set12(page: Uint8Array, enc: number, v: bigint): void {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const off = V.vmcs12Offset(enc);
  if (off < 0) throw new Error(`no vmcs12 field ${enc.toString(16)}`);
  const w = (enc >>> 13) & 3;
  if (w === 0) dv.setUint16(off, Number(v & 0xffffn), true);
  else if (w === 2) dv.setUint32(off, Number(v & 0xffffffffn), true);
  else dv.setBigUint64(off, BigInt.asUintN(64, v), true);
}
