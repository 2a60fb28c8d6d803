// L1's VMX state as the hypervisor emulates it (SDM Vol. 3C 24, 25.1, 31):
// whether L1 is in VMX operation, its VMXON pointer, its current VMCS
// (vmcs12) and whether L2 is running — fields of the vCPU's Nested
// (nested.ts). The current vmcs12 is cached in the Nested (its `vmcs12`
// buffer) in the private layout of kernel/arch/vmx.ts (vmcs12Offset,
// derived from the field table); the cache is written back to L1's memory
// (the same layout, in L1's VMCS region) when it stops being current:
// VMCLEAR of it, VMPTRLD of another, VMXOFF.
//
//   vmcs12 page (private layout, VMCS12_PAGE_SIZE bytes)
//   +0   revision id (bits 30:0) | shadow-VMCS indicator (bit 31)
//   +4   VMX-abort indicator
//   +8   launch state: 0 clear, 1 launched
//   +16  field slots (vmcs12Offset(encoding)), 8/4/2 bytes by width
//
// Every function here takes the Nested whose vmcs12 it works on: the
// vCPU's (vcpu.nested), or a scratch one that holds a vmcs12 to validate.
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as vmx from "../hw/vmx";
import { FieldList } from "./fieldlist";
import { Nested } from "./nested";

export const INVALID: u64 = u64.MAX_VALUE; // "FFFFFFFF_FFFFFFFFH": no current VMCS (31.3)

// Field access on the cached current vmcs12, by encoding. The caller has
// checked that the encoding is supported (vmcs12Offset >= 0). A 64-bit
// field's "high" encoding addresses bits 63:32 (vmcs12Offset gives +4).
export function read(n: Nested, enc: u32): u64 {
  const cache = n.vmcs12;
  const off = <usize>V.vmcs12Offset(enc);
  if ((enc & V.VMCS_ENC_HIGH) != 0) return <u64>load<u32>(cache + off);
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) return <u64>load<u16>(cache + off);
  if (w == V.VMCS_WIDTH_32) return <u64>load<u32>(cache + off);
  return load<u64>(cache + off);
}

// The same for an encoding known at compile time (V.NAME): the offset and
// width fold into a single load (V.vmcs12OffsetConst). Computed encodings
// go through read(), whose table lookup works for any.
@inline export function get(n: Nested, enc: u32): u64 {
  const cache = n.vmcs12;
  const off = <usize>V.vmcs12OffsetConst(enc);
  if ((enc & V.VMCS_ENC_HIGH) != 0) return <u64>load<u32>(cache + off);
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) return <u64>load<u16>(cache + off);
  if (w == V.VMCS_WIDTH_32) return <u64>load<u32>(cache + off);
  return load<u64>(cache + off);
}

// What changed in the current vmcs12, in records that differ in who
// consumes them:
//   dirty  since the VM-entry checks last passed on it (entry-checks.ts
//          skips the checks of a class with its bit clear);
//   stale  since vmcs02 last received it (vmcs02.ts merges only what is
//          stale), with `hotStale` saying which of the HOT fields;
//   hostStale  a host-state field or the exit controls changed since
//          hoststate.ts last computed L1's post-exit state from them
//          (hostRipRsp: only host RIP or RSP, which it only copies);
//   shadowAll  a field changed by other means than the reflected exit's
//          own copies (which record theirs field by field in the Nested's
//          shadowGuestStale/shadowExitStale): shadow.ts's next push
//          writes every shadowed field, not only those (and evmcs.ts's
//          every field a nested exit writes back into the eVMCS).
// All five are bits of one word, the Nested's `changes` (CH_* below: one
// load and one store record a change, on the nested exit path).
// Every change of the cache goes through write() (L1's VMWRITE, the shadow
// VMCS pull, the hypervisor's own updates), writeSynced()/markSynced()
// (values the processor saved in vmcs02 at a VM exit: vmcs02 has them, so
// they are dirty but not stale) or load12() (VMPTRLD: everything), and a
// field counts as changed only if its value differs from the cached one.
// So a clear bit PROVES that class holds what the last successful check
// (or merge) saw. The read-only exit-information fields belong to no class
// (no entry check or merge reads them).
//
// Classes: the event-injection fields and the guest fields most exits
// change (HOT, and of them RIP and RSP apart: only one entry check reads
// RIP, none RSP) are kept apart from the other controls and guest fields,
// so that an L2 exit that L1 handles by advancing RIP re-checks and
// re-merges only what that touched.
export const DIRTY_CONTROLS: u32 = 1; // control fields other than EVENT
export const DIRTY_HOST: u32 = 2;
export const DIRTY_GUEST: u32 = 4; // guest-state fields other than HOT and RIP
export const DIRTY_EVENT: u32 = 8; // VM-entry interruption information, error code, instruction length
export const DIRTY_HOT: u32 = 16; // RFLAGS, interruptibility, activity, pending debug exceptions
export const DIRTY_RIP: u32 = 32; // RIP, RSP
export const DIRTY_ALL: u32 = 63;

// The HOT and EVENT fields, in the order of their bits in hotStale.
export const HOT_FIELDS: StaticArray<u32> = [
  V.GUEST_RIP, V.GUEST_RSP, V.GUEST_RFLAGS, V.GUEST_INTERRUPTIBILITY_STATE, V.GUEST_ACTIVITY_STATE,
  V.GUEST_PENDING_DEBUG_EXCEPTIONS, V.VM_ENTRY_INTERRUPTION_INFO, V.VM_ENTRY_EXCEPTION_ERROR_CODE,
  V.VM_ENTRY_INSTRUCTION_LENGTH,
];
export const HOT_ALL: u32 = (1 << 9) - 1;

// n.changes: dirty in bits 5:0, stale in 11:6, hotStale in 20:12,
// hostStale bit 21, shadowAll bit 22, hostRipRsp bit 23.
const CH_STALE_SHIFT: u32 = 6;
const CH_HOT_SHIFT: u32 = 12;
const CH_HOST_STALE: u32 = 1 << 21;
const CH_SHADOW_ALL: u32 = 1 << 22;
// Only host RIP or RSP changed (not another input of hoststate.ts): the
// staged post-exit state needs those two values, not a new staging. Linux
// KVM writes HOST_RSP before nearly every VMRESUME.
const CH_HOST_RIP_RSP: u32 = 1 << 23;
const CH_ALL: u32 = DIRTY_ALL | (DIRTY_ALL << CH_STALE_SHIFT) | (HOT_ALL << CH_HOT_SHIFT) | CH_HOST_STALE | CH_SHADOW_ALL |
  CH_HOST_RIP_RSP;
@inline export function dirty(n: Nested): u32 {
  return n.changes & DIRTY_ALL;
}
// stale and hotStale of a value of n.changes.
@inline export function staleIn(changes: u32): u32 {
  return (changes >> CH_STALE_SHIFT) & DIRTY_ALL;
}
@inline export function hotStaleIn(changes: u32): u32 {
  return (changes >> CH_HOT_SHIFT) & HOT_ALL;
}
@inline export function hostStale(n: Nested): bool {
  return (n.changes & CH_HOST_STALE) != 0;
}
@inline export function hostRipRspStale(n: Nested): bool {
  return (n.changes & CH_HOST_RIP_RSP) != 0;
}
@inline export function shadowAllStale(n: Nested): bool {
  return (n.changes & CH_SHADOW_ALL) != 0;
}
export function markShadowAll(n: Nested): void {
  n.changes |= CH_SHADOW_ALL;
}
export function markShadowPushed(n: Nested): void {
  n.changes &= ~CH_SHADOW_ALL;
}
export function markHostStaged(n: Nested): void {
  n.changes &= ~(CH_HOST_STALE | CH_HOST_RIP_RSP);
}
export function markClean(n: Nested): void {
  n.changes &= ~DIRTY_ALL;
}
// n.changes once vmcs02 received everything: nothing stale.
@inline export function merged(changes: u32): u32 {
  return changes & ~((DIRTY_ALL << CH_STALE_SHIFT) | (HOT_ALL << CH_HOT_SHIFT));
}
export function markAllDirty(n: Nested): void {
  n.changes = CH_ALL;
}

// The bit of enc (full or high encoding) in hotStale, or 0. (@inline, as
// classOf: for a constant encoding both fold to a constant.)
@inline function hotBit(enc: u32): u32 {
  switch (enc & ~V.VMCS_ENC_HIGH) {
    case V.GUEST_RIP: return 1;
    case V.GUEST_RSP: return 2;
    case V.GUEST_RFLAGS: return 4;
    case V.GUEST_INTERRUPTIBILITY_STATE: return 8;
    case V.GUEST_ACTIVITY_STATE: return 16;
    case V.GUEST_PENDING_DEBUG_EXCEPTIONS: return 32;
    case V.VM_ENTRY_INTERRUPTION_INFO: return 64;
    case V.VM_ENTRY_EXCEPTION_ERROR_CODE: return 128;
    case V.VM_ENTRY_INSTRUCTION_LENGTH: return 256;
  }
  return 0;
}

@inline function classOf(enc: u32, hot: u32): u32 {
  if (hot != 0) return hot >= 64 ? DIRTY_EVENT : hot >= 4 ? DIRTY_HOT : DIRTY_RIP;
  // Host RSP is in no class: no VM-entry check reads it (SDM Vol. 3C
  // 27.2.2, 27.2.3) and vmcs02 never takes it (its host state is L0's);
  // only hoststate.ts copies it at the exit (CH_HOST_RIP_RSP). Linux KVM
  // writes it before nearly every VMRESUME, which made every such entry
  // check the controls, the host state and the whole guest state again.
  if ((enc & ~V.VMCS_ENC_HIGH) == V.HOST_RSP) return 0;
  const t = V.vmcsEncodingType(enc);
  if (t == V.VMCS_TYPE_CONTROL) return DIRTY_CONTROLS;
  if (t == V.VMCS_TYPE_HOST) return DIRTY_HOST;
  if (t == V.VMCS_TYPE_GUEST) return DIRTY_GUEST;
  return 0;
}

// The bits of n.changes a change of enc sets: for the checks and for
// vmcs02 (and hoststate.ts for its inputs).
@inline export function changedBits(enc: u32): u32 {
  const hot = hotBit(enc);
  const c = classOf(enc, hot);
  // A host-state field or the exit controls: inputs of hoststate.ts (host
  // RIP and RSP only copied by it: their own bit).
  const e = enc & ~V.VMCS_ENC_HIGH;
  const host = e == V.HOST_RIP || e == V.HOST_RSP ? CH_HOST_RIP_RSP :
    c == DIRTY_HOST || e == V.VM_EXIT_CONTROL ? CH_HOST_STALE : 0;
  return c | (c << CH_STALE_SHIFT) | (hot << CH_HOT_SHIFT) | host | CH_SHADOW_ALL;
}
// The bits of n.changes a change of enc records when its new value was
// read from the copy L1 reads and writes itself — its eVMCS (evmcs.ts
// pull, which keeps them per field and records them itself), as
// shadow.ts's pull does through readFields: a change for the checks and
// for vmcs02, not one to write back there.
@inline export function fromL1Bits(enc: u32): u32 {
  return changedBits(enc) & ~CH_SHADOW_ALL;
}
// enc changed: for the checks and for vmcs02.
export function markChanged(n: Nested, enc: u32): void {
  n.changes |= changedBits(enc);
}
// The bits of n.changes a change of enc to what vmcs02 holds sets (markSynced).
@inline export function syncedBits(enc: u32): u32 {
  return classOf(enc, hotBit(enc)) | CH_SHADOW_ALL;
}
// vmcs02's event-injection fields may hold an event L0 itself set up for
// L2 (events.reinjectVectoring at every exit) when the exit is reflected
// instead: the next merge writes vmcs12's values again.
export function markEventStale(n: Nested): void {
  n.changes |= (64 | 128 | 256) << CH_HOT_SHIFT;
}

// enc changed to what vmcs02 already holds: for the checks only.
export function markSynced(n: Nested, enc: u32): void {
  n.changes |= syncedBits(enc);
}

// Read the fields of `list` selected by `mask` from the current VMCS into
// the cache (one import call), recording each one whose value changed:
// `synced` when vmcs02 is where they came from (as markSynced), else as a
// change for vmcs02 too (as markChanged). The classes are collected first
// and recorded once. Returns the changed entries (the caller records them
// for the shadow VMCS where they are shadowed fields; shadow.ts).
@inline export function readFields(n: Nested, list: FieldList, mask: u64, synced: bool): u64 {
  const id = list.readId;
  const all = id >= 0 ? vmx.readlist(<u32>id, n.vmcs12, mask) : vmx.readfields(list.ptr, list.count, n.vmcs12, mask);
  let changed = all;
  if (changed == 0) return 0;
  let bits: u32 = 0;
  while (changed != 0) {
    bits |= list.bitsAt(<i32>ctz(changed), synced);
    changed &= changed - 1;
  }
  n.changes |= bits & ~CH_SHADOW_ALL; // (the caller records shadowed ones)
  return all;
}

// write() and writeSynced() for an encoding known at compile time (V.NAME):
// offset, width and change bits fold into a load, a compare and a store
// (the generic ones look the offset up and call store12: ~40 instructions
// each, six of them on every reflected exit).
@inline export function set(n: Nested, enc: u32, v: u64): void {
  if (storeAt(n.vmcs12 + <usize>V.vmcs12OffsetConst(enc), enc, v)) n.changes |= changedBits(enc);
}
// The same for a value read from L1's eVMCS (fromL1Bits). (Three one-line
// functions, not one taking the bits: an inlined argument is evaluated
// before the store, and the bits are worked out only on a change — 2 ticks
// per nested round trip measured.)
@inline export function setFromL1(n: Nested, enc: u32, v: u64): void {
  if (storeAt(n.vmcs12 + <usize>V.vmcs12OffsetConst(enc), enc, v)) n.changes |= fromL1Bits(enc);
}
@inline export function setSynced(n: Nested, enc: u32, v: u64): void {
  if (storeAt(n.vmcs12 + <usize>V.vmcs12OffsetConst(enc), enc, v)) n.changes |= syncedBits(enc);
}

// Store v truncated to the field's width; a change is recorded. (Inline:
// one call, as store12's, not two, on the nested exit path.)
@inline export function write(n: Nested, enc: u32, v: u64): void {
  if (store12(n.vmcs12, enc, v)) markChanged(n, enc);
}
// The same for a value vmcs02 holds already (see above).
@inline export function writeSynced(n: Nested, enc: u32, v: u64): void {
  if (store12(n.vmcs12, enc, v)) markSynced(n, enc);
}

// Store; false when the field already had that value.
function store12(cache: usize, enc: u32, v: u64): bool {
  return storeAt(cache + <usize>V.vmcs12Offset(enc), enc, v);
}
// The store at the field's slot a, truncated to its width (a high access:
// bits 63:32, 4 bytes); false when the slot already had that value.
@inline function storeAt(a: usize, enc: u32, v: u64): bool {
  const w = (enc & V.VMCS_ENC_HIGH) != 0 ? V.VMCS_WIDTH_32 : V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) {
    if (load<u16>(a) == <u16>v) return false;
    store<u16>(a, <u16>v);
  } else if (w == V.VMCS_WIDTH_32) {
    if (load<u32>(a) == <u32>v) return false;
    store<u32>(a, <u32>v);
  } else {
    if (load<u64>(a) == v) return false;
    store<u64>(a, v);
  }
  return true;
}

// Field access on a VMCS that is not current: its data is in L1's memory
// at gpa, in the same private layout (every VMCS stops being current
// through flush(), which writes it there). Used for the shadow VMCS that
// vmcs12's link pointer names while L2 runs (shadow12.ts). The caller has
// checked the encoding (vmcs12Offset >= 0) and that the page is L1's RAM.
export function readAt(gpa: u64, enc: u32): u64 {
  const a = gpa + <u64>V.vmcs12Offset(enc);
  if ((enc & V.VMCS_ENC_HIGH) != 0) return <u64>guestmem.read32(a);
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) return <u64>guestmem.read16(a);
  if (w == V.VMCS_WIDTH_32) return <u64>guestmem.read32(a);
  return guestmem.read64(a);
}
export function writeAt(gpa: u64, enc: u32, v: u64): void {
  const a = gpa + <u64>V.vmcs12Offset(enc);
  if ((enc & V.VMCS_ENC_HIGH) != 0) {
    guestmem.write32(a, <u32>v);
    return;
  }
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) guestmem.write16(a, <u32>v & 0xffff);
  else if (w == V.VMCS_WIDTH_32) guestmem.write32(a, <u32>v);
  else guestmem.write64(a, v);
}

// vmcs12 enables EPT (secondary controls active and "enable EPT" set).
export function eptEnabled(n: Nested): bool {
  return (<u32>get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
    (<u32>get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_ENABLE_EPT) != 0;
}
export function unrestrictedGuest(n: Nested): bool {
  return (<u32>get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
    (<u32>get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_UNRESTRICTED_GUEST) != 0;
}

export function launchState(n: Nested): u32 {
  return load<u32>(n.vmcs12, V.VMCS12_LAUNCH_STATE_OFFSET);
}
export function setLaunchState(n: Nested, v: u32): void {
  store<u32>(n.vmcs12, v, V.VMCS12_LAUNCH_STATE_OFFSET);
}

// Make the vmcs12 at gpa current: read it from L1's memory into the cache.
// The caller checked gpa (aligned, in RAM, revision).
export function load12(n: Nested, gpa: u64): void {
  guestmem.copyOut(n.vmcs12, gpa, <u32>V.VMCS12_PAGE_SIZE);
  n.current = gpa;
  markAllDirty(n);
}

// Write the cache back to L1's memory and forget it (VMCLEAR of the current
// VMCS, VMPTRLD of another, VMXOFF).
export function flush(n: Nested): void {
  if (n.current == INVALID) return;
  guestmem.copyIn(n.current, n.vmcs12, <u32>V.VMCS12_PAGE_SIZE);
  n.current = INVALID;
}
