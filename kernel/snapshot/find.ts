// Finding things in a snapshot blob whose framing validate.ts has checked:
// a section's place, an item of a list section, a vmcs12 field.
import * as V from "../arch/vmx";
import { Reader } from "./blob";

// Offset of section id, or u64.MAX_VALUE when the blob has none.
export function sectionOffset(r: Reader, id: u32): u64 {
  const i = r.find(id);
  return i < 0 ? u64.MAX_VALUE : r.offsetAt(<u32>i);
}
export function sectionSize(r: Reader, id: u32): u64 {
  const i = r.find(id);
  return i < 0 ? 0 : r.sizeAt(<u32>i);
}

// Index of key in an ascending list, or -1.
export function indexIn(list: StaticArray<u32>, key: u32): i32 {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const k = unchecked(list[mid]);
    if (k == key) return mid;
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

// vmcs01 field enc from a checked VMCS01 section (its items are
// SNAP_VMCS01_FIELDS in order); 0 for a field not in the list.
export function vmcs01Value(r: Reader, enc: u32): u64 {
  const i = indexIn(V.SNAP_VMCS01_FIELDS, enc);
  if (i < 0) return 0;
  return r.u64(sectionOffset(r, V.SNAP_SEC_VMCS01) + <u64>i * V.SNAP_PAIR_BYTES + V.SNAP_PAIR_VALUE);
}

// Field enc (a full encoding known to the table) of the vmcs12 page at
// blob offset page, zero-extended: the private layout of kernel/arch/vmx.ts.
export function field12(r: Reader, page: u64, enc: u32): u64 {
  const off = V.vmcs12Offset(enc);
  if (off < 0) return 0;
  const a = page + <u64>off;
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) return <u64>r.u16(a);
  if (w == V.VMCS_WIDTH_32) return <u64>r.u32(a);
  return r.u64(a);
}
