// VMCS shadowing for L1 (SDM Vol. 3C 25.10 "VMCS types", 25.6.15 "VMCS
// shadowing bitmap addresses", 31.3 VMREAD/VMWRITE): while L1 runs
// with a current vmcs12, vmcs01 has the 1-setting of "VMCS shadowing" and
// its VMCS link pointer names a shadow VMCS of ours. L1's VMREAD/VMWRITE of
// a field whose bit is 0 in the VMREAD/VMWRITE bitmap then reads or writes
// the shadow VMCS without a VM exit; every other encoding exits (the bit is
// 1, or bits 63:15 of the encoding are not all 0) and is emulated by
// vmrw.ts on the vmcs12 cache.
//
// The shadowed fields are the ones flagged `shadow` in the field table
// (tools/vmx/table.mjs → vmcsFieldIsShadowed), less any that does not exist
// for L1 (caps.fieldSupported): a bitmap bit is 0 only for a field L1 has,
// so the processor never answers for an encoding L1 must get error 12 for
// (tests/unit/field-existence.test.ts checks every bit).
// VMREAD reads all of them; VMWRITE writes only the read/write ones (a
// write to a read-only exit-information field keeps exiting, so that its
// value is never only in the shadow).
//
// Who holds the truth for a shadowed field (the invariant):
//   linked      the shadow VMCS (L1 may have written it since the last
//               push); the vmcs12 cache may be stale for those fields.
//   not linked  the vmcs12 cache.
// pull() copies the read/write fields shadow → cache before L0 reads
// vmcs12 on L1's behalf (VMLAUNCH/VMRESUME, VMCLEAR and VMPTRLD of another
// VMCS, VMXOFF); push() copies all shadowed fields cache → shadow after L0
// changed them (VMPTRLD, an exit reflected to L1) and links the shadow.
// VMREAD in VMX non-root operation with "VMCS shadowing" 1 and link
// pointer FFFFFFFF_FFFFFFFFH is VMfailInvalid, which is also L1's answer
// without a current VMCS, but L1 outside VMX operation must get #UD, so
// the control is only on while L1 has a current vmcs12.
//
// Like any VMCS, the shadow is VMCLEARed after each copy (the processor
// may cache an active VMCS, 25.11.1), so it is never active when vmcs01
// links it or when the vCPU moves to another processor.
import * as vmx from "../hw/vmx";
import * as mem from "../hw/mem";
import * as pages from "../mm/pages";
import * as print from "../lib/print";
import * as hwcaps from "../vmx/caps";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as state from "./state";
import * as caps from "./caps";
import { FieldList, MAX } from "./fieldlist";
import { Nested } from "./nested";
import * as guestsync from "./guestsync";
import * as vmcs01 from "../vm/vmcs01";

// A vCPU's shadow VMCS (vcpu.nested.shadow, embedded in the Nested: no
// field initializers run, clear() sets everything but the page). The page
// is allocated once and stays with the object; its content is the vmcs12
// cache's (push).
@unmanaged export class ShadowState {
  enabled: bool = false; // shadow-vmcs=on for this guest and the processor has it
  linked: bool = false; // vmcs01 links the shadow VMCS (see the invariant)
  page: u64 = 0; // physical address of the shadow VMCS
  pushes: u64 = 0; // statistics
  pulls: u64 = 0; // statistics
  clear(): void {
    this.enabled = false;
    this.linked = false;
    this.pushes = 0;
    this.pulls = 0;
  }
}

// The VMREAD and VMWRITE bitmaps: the same for every vCPU (they follow
// from the offered fields), allocated and written once.
let readBitmap: u64 = 0; // machine-wide: a function of the offered capabilities
let writeBitmap: u64 = 0; // machine-wide: a function of the offered capabilities

// The shadowed fields (full encodings; the high half of a 64-bit field is
// covered by the full one here and by its own bitmap bit). Built once: the
// offered fields do not change after boot.
let all: FieldList | null = null; // machine-wide: a function of the offered capabilities
// The shadowed entries of guestsync.ts's lists (what a partial push writes).
let guestShadowed: u64 = 0; // machine-wide: a function of the offered capabilities
let exitShadowed: u64 = 0; // machine-wide: a function of the offered capabilities
// What pull reads and what VMWRITE reaches without an exit: the field
// table's read/write shadowed fields (READ_LISTS SHADOW_RW, a generated
// straight-line reader), those L1 is offered (pullMask).
const pullList = new FieldList(V.READLIST_SHADOW_RW_FIELDS, true, V.READLIST_SHADOW_RW); // machine-wide: a constant field list
let pullMask: u64 = 0; // machine-wide: a function of the offered capabilities

function listFields(): void {
  if (all != null) return;
  const a = new StaticArray<u32>(V.VMCS_FIELD_COUNT);
  let na = 0;
  for (let i = 0; i < V.VMCS_FIELD_COUNT; i++) {
    const enc = V.vmcsFieldEncodingAt(i);
    if (!V.vmcsFieldIsShadowed(enc) || !caps.fieldSupported(enc) || na == MAX) continue;
    a[na++] = enc;
  }
  all = new FieldList(StaticArray.slice<u32>(a, 0, na), true);
  guestShadowed = shadowedIn(guestsync.guestList);
  exitShadowed = shadowedIn(guestsync.exitInfoList);
  // The read/write ones L1 has: what VMWRITE reaches without an exit.
  pullMask = shadowedIn(pullList);
}

function shadowedIn(l: FieldList): u64 {
  let m: u64 = 0;
  for (let i = 0; i < <i32>l.count; i++) {
    const enc = l.encodingAt(i);
    if (V.vmcsFieldIsShadowed(enc) && caps.fieldSupported(enc)) m |= <u64>1 << <u64>i;
  }
  return m;
}

// Bit enc[14:0] of a bitmap page clear: VMREAD/VMWRITE of enc does not exit (25.6.15).
function allow(bitmap: u64, enc: u32): void {
  const a = bitmap + <u64>((enc & 0x7fff) >> 3);
  mem.write8(a, mem.read8(a) & ~(1 << (enc & 7)));
}

// The entries of l selected by mask.
function allowList(bitmap: u64, l: FieldList, mask: u64): void {
  for (let i = 0; i < <i32>l.count; i++) {
    if (((mask >> <u64>i) & 1) == 0) continue;
    const enc = l.encodingAt(i);
    allow(bitmap, enc);
    if (V.vmcsEncodingWidth(enc) == V.VMCS_WIDTH_64) allow(bitmap, enc | V.VMCS_ENC_HIGH);
  }
}

// The bitmaps, once: 1 everywhere but for the shadowed fields.
function makeBitmaps(): bool {
  if (writeBitmap != 0) return true;
  listFields();
  const r = pages.alloc(1);
  const w = pages.alloc(1);
  if (r == 0 || w == 0) return false;
  for (let o: u64 = 0; o < 4096; o += 8) {
    mem.write64(r + o, u64.MAX_VALUE);
    mem.write64(w + o, u64.MAX_VALUE);
  }
  allowList(r, all!, all!.all);
  allowList(w, pullList, pullMask);
  readBitmap = r;
  writeBitmap = w;
  return true;
}

// Per guest, with vmcs01 current and freshly built. Returns false (after
// printing why) only when memory runs out.
export function setup(vcpu: Vcpu, want: bool): bool {
  const s = vcpu.nested.shadow;
  s.linked = false;
  s.pushes = 0;
  s.pulls = 0;
  s.enabled = want && hwcaps.hasProc2 && hwcaps.canSet(hwcaps.proc2, V.PROC2_VMCS_SHADOWING);
  if (want && !s.enabled) print.say("nested: this processor has no VMCS shadowing: every VMREAD/VMWRITE of L1 is emulated");
  if (!s.enabled) return true;
  if (s.page == 0) s.page = pages.alloc(1, hwcaps.physAddr32() ? 0x100000000 : 0);
  if (s.page == 0 || !makeBitmaps()) {
    print.say("nested: out of memory for the shadow VMCS");
    return false;
  }
  // 25.2: a shadow VMCS has bit 31 of its first dword set; VMCLEAR makes
  // it clear and writes its (empty) data to memory.
  mem.zero(s.page, 4096);
  mem.write32(s.page, hwcaps.revisionId() | V.VMCS_SHADOW_INDICATOR);
  if (vmx.vmclear(s.page) != vmx.VMX_SUCCEED) {
    print.say("nested: VMCLEAR of the shadow VMCS failed");
    s.enabled = false;
    return true;
  }
  toVmcs01(vcpu.nested);
  return true;
}

// A vmcs01 just built (setup(), or a vCPU restored from a snapshot outside
// VMX operation, snapshot/restore.ts): the bitmaps' addresses into it.
export function toVmcs01(n: Nested): void {
  const s = n.shadow;
  if (!s.enabled) return;
  vmx.vmwrite(V.VMREAD_BITMAP, readBitmap);
  vmx.vmwrite(V.VMWRITE_BITMAP, writeBitmap);
  s.linked = false;
}

// Set or clear "VMCS shadowing" in vmcs01's secondary controls, leaving the
// others as they are now (vm/apicv.ts changes its APIC bits while L1 runs:
// a copy of the controls taken earlier would undo that).
function shadowingControl(on: bool): void {
  const p2 = <u32>vmx.vmread(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL);
  vmcs01.writeControl(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, on ? p2 | V.PROC2_VMCS_SHADOWING : p2 & ~V.PROC2_VMCS_SHADOWING);
}

// vmcs01 current. The shadow VMCS becomes what L1's VMREAD/VMWRITE use.
function link(s: ShadowState): void {
  vmx.vmwrite(V.VMCS_LINK_POINTER, s.page);
  shadowingControl(true);
  s.linked = true;
}

// vmcs01 current. Every VMREAD/VMWRITE of L1 exits again; the cache is
// the truth (the caller pulled first if the shadow could hold news).
export function unlink(n: Nested): void {
  const s = n.shadow;
  if (!s.linked) return;
  vmx.vmwrite(V.VMCS_LINK_POINTER, u64.MAX_VALUE);
  shadowingControl(false);
  s.linked = false;
}

// A copy makes the shadow current (vmx.vmcsswitch(0, page)), copies, and
// clears it and makes vmcs01 current again (vmx.vmcsswitch(page, vmcs01)).
// A failing VMPTRLD/VMCLEAR of our own page is a hypervisor bug: the
// machine stops with a report (the import's, hw/vmx.ts).

// Shadow → cache for the fields L1 can write without an exit. Only values
// that differ are written, so the dirty groups the entry checks use
// (state.ts) change only when L1 really changed something.
@inline export function pull(vcpu: Vcpu): void {
  const n = vcpu.nested;
  const s = n.shadow;
  if (!s.linked) return;
  const page = s.page;
  vmx.vmcsswitch(0, page);
  state.readFields(n, pullList, pullMask, false);
  vmx.vmcsswitch(page, vcpu.vmcs);
  s.pulls++;
}

// Cache → shadow, then link it (vmcs01 current, L1 has a current vmcs12).
// The shadow holds the cache's values of the shadowed fields since the
// last push or pull, except where the cache changed since: after the
// reflected exits' own copies (the Nested's shadowGuestStale and
// shadowExitStale name them) only those fields are written — none when
// none changed, the common case for an exit L1 has seen before but for
// RIP — after any other change (state.ts shadowAll) every shadowed field.
// Whatever VMCS was current, vmcs01 is when it returns true (it wrote the
// shadow); false: nothing was written, the current VMCS is the caller's
// still.
@inline export function push(vcpu: Vcpu): bool {
  const n = vcpu.nested;
  const s = n.shadow;
  if (!s.enabled || n.current == state.INVALID) return false;
  const page = s.page;
  const whole = !s.linked || state.shadowAllStale(n);
  const g = n.shadowGuestStale & guestShadowed;
  const e = n.shadowExitStale & exitShadowed;
  n.shadowGuestStale = 0;
  n.shadowExitStale = 0;
  if (!whole && (g | e) == 0) return false;
  vmx.vmcsswitch(0, page);
  if (whole) {
    const l = all!;
    vmx.writefields(l.ptr, l.count, n.vmcs12, l.all);
  } else {
    if (g != 0) vmx.writefields(guestsync.guestList.ptr, guestsync.guestList.count, n.vmcs12, g);
    if (e != 0) vmx.writefields(guestsync.exitInfoList.ptr, guestsync.exitInfoList.count, n.vmcs12, e);
  }
  vmx.vmcsswitch(page, vcpu.vmcs);
  state.markShadowPushed(n);
  if (!s.linked) link(s);
  s.pushes++;
  return true;
}

// The shadow may be cached by this processor: clear it before the vCPU
// moves or the guest ends (25.11.1).
export function vmclear(n: Nested): void {
  const s = n.shadow;
  if (s.enabled) vmx.vmclear(s.page);
}

// Moving the vCPU to another processor (vm/migrate.ts): what L1 wrote
// through the shadow is taken into the cache on the processor it ran on
// (with vmcs01 current, L1 not in L2: in L2 the cache holds it already),
// and the shadow is written again on the new processor before L1 uses it.
// On hardware the VMCLEAR on the old processor would do; rewriting it
// also keeps a processor that caches shadow VMCS data by address (Bochs
// 2.7 shows stale fields after a move without this) from seeing old data.
export function beforeMove(vcpu: Vcpu): void {
  const n = vcpu.nested;
  if (n.shadow.linked && !n.inL2) pull(vcpu);
}
export function afterMove(vcpu: Vcpu): void {
  if (!vcpu.nested.shadow.linked) return;
  state.markShadowAll(vcpu.nested);
  push(vcpu);
}
