// Enlightened VM entry (Hyper-V TLFS "Enlightened VMCS", "Virtual Processor
// Assist Page"): an L1 that sees the Hyper-V interface (hyperv=on) keeps its
// VMCS for L2 in ordinary memory, in the layout HV_VMX_ENLIGHTENED_VMCS
// (kernel/arch/vmx.ts EVMCS_*, from tools/vmx/table.mjs), and asks for it
// by setting EnlightenVmEntry (byte at 28H) and CurrentNestedVmcs (8 bytes
// at 30H) in its VP assist page. Its VMLAUNCH/VMRESUME then use that eVMCS
// instead of a current VMCS made by VMPTRLD.
//
// The eVMCS is another source of the same vmcs12 cache (state.ts): every
// field of the eVMCS that has a VMCS encoding goes into the cache through
// state.write, so the change classes record what changed and the entry
// checks and the vmcs02 merge work as for a VMPTRLD'ed vmcs12.
//
// - On VMLAUNCH or an eVMCS address not used before, every group is read
//   (a VMLAUNCH of a new address zeroes the cache first: fields the eVMCS
//   lacks must not keep a previous vmcs12's values; the launch state lives
//   in the cache while the eVMCS is in use, so a second VMLAUNCH of it is
//   VMfailValid(4) as for any launched VMCS).
// - Otherwise only the groups whose clean bit (HvCleanFields at 824) is 0;
//   fields in no group (guest RIP, the TPR threshold) at every entry;
//   fields the TLFS gives no group (MSR-list addresses and counts, CR3
//   targets, #PF mask/match) unless every bit is set (EVMCS_FIELD_CLEAN
//   0xffff).
// - A field L1 changed while its clean bit was 1 is not picked up: that is
//   the TLFS contract, not an oversight (tests/unit/evmcs.test.ts shows it).
// - Once read, all clean bits are set: the cache holds what L1 wrote, and
//   L1 clears the bits of the groups it changes before its next entry. (Set
//   before the entry checks: a failed entry leaves the cache as read, so
//   the bits are true then too, as KVM sets them whatever the outcome.)
// - At a nested exit (reflect.ts) the guest-state, exit-information and
//   entry-event fields and the VM-entry controls (IA-32e mode guest follows
//   L2's EFER.LMA, 28.3) go back into the eVMCS; L1 reads them there.
//
// Choices where the TLFS leaves the answer to L0:
// - CurrentNestedVmcs not 4-KiB aligned or not L1 RAM: VMfailInvalid, the
//   processor's answer to VMLAUNCH/VMRESUME without a valid current VMCS
//   (SDM Vol. 3C 31.3). KVM injects #UD; a VMfail is something an L1 can
//   see and report without an exception handler.
// - Revision (VersionNumber at 0) other than 1 (the eVMCS version offered,
//   CPUID 4000000AH) or this hypervisor's VMCS revision id: VMfailInvalid,
//   as KVM answers. Address and revision are checked when an eVMCS comes
//   into use (VMLAUNCH, or an address other than the one in use), not at
//   each VMRESUME of the one in use: as KVM, which checks them when it maps
//   a new eVMCS address (an L1 that rewrites VersionNumber of the eVMCS it
//   runs L2 with is not told; the read cost every enlightened round trip
//   about 70 instructions).
// - Controls eVMCS v1 cannot express (caps.ts EVMCS1_*_HIDDEN): a guest
//   with hyperv=on (the only kind with a VP assist page) is not offered
//   them, so the entry checks that follow (launch.ts, against what the
//   guest is offered) answer VMfailValid(7) for them, after the checks of
//   27.1 as a processor without them would; launch.ts writes the error
//   into the eVMCS too.
// - VMRESUME of an eVMCS address not used before (e.g. after VMCLEAR of the
//   one in use): the eVMCS has no launch state, so L1's choice of
//   VMRESUME is taken as "launched".
// - VMREAD/VMWRITE while the eVMCS is in use ("unsupported" in the TLFS):
//   VMREAD reads the eVMCS (readField, from vmrw.ts), VMWRITE fails as
//   without a current VMCS; VMPTRST stores all ones (no VMCS is current).
// - The enlightened MSR bitmap: msrBitmap() below.
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import { Vcpu } from "../vm/vcpu";
import * as state from "./state";
import * as vmfail from "./vmfail";
import * as caps from "./caps";
import * as shadow from "./shadow";
import * as guestsync from "./guestsync";
import { FieldList } from "./fieldlist";
import * as vmcs02 from "./vmcs02";
import { Nested } from "./nested";
import { PROCEED } from "./common";

const INVALID: u64 = state.INVALID;
const NO_ENCODING: u32 = 0xffffffff;
const PAGE_OFFSET: u64 = 0xfff;
const VP_ASSIST_ENABLE: u64 = 1;

// Scratch for the one eVMCS being read or written back during one exit;
// it holds nothing between exits. An entry copies into it, at their own
// offsets, only the parts it reads (see enter).
const buf: usize = memory.data(<i32>V.EVMCS_BYTES); // machine-wide: scratch of one exit
// The VP assist page's EnlightenVmEntry .. CurrentNestedVmcs, read in one copy.
const ASSIST_AT: u32 = V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY;
const ASSIST_BYTES: u32 = V.HV_VP_ASSIST_CURRENT_NESTED_VMCS + 8 - ASSIST_AT;
const assist: usize = memory.data(<i32>ASSIST_BYTES); // machine-wide: scratch of one exit
// The fields an entry reads whatever the clean bits say, and the clean
// bits themselves: one run (the TLFS layout puts them together; buildLists
// checks that every field in no group lies in it).
const ALWAYS_AT: u32 = V.EVMCS_TPR_THRESHOLD;
const ALWAYS_END: u32 = V.EVMCS_CLEAN_FIELDS + 4;

// enter(): L1's VP assist page is disabled or its EnlightenVmEntry is 0,
// the entry uses the current VMCS. (Not a handler result, nor PROCEED.)
export const NOT_ENLIGHTENED: i32 = -2;

// Does L1's VP assist page ask for enlightened entry (enabled, and
// EnlightenVmEntry nonzero)? Only for a vCPU whose VP assist MSR is not 0.
export function requested(vcpu: Vcpu): bool {
  const vpAssist = vcpu.hv.vpAssistPage;
  if ((vpAssist & VP_ASSIST_ENABLE) == 0) return false;
  return guestmem.read8((vpAssist & ~PAGE_OFFSET) + <u64>V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY) != 0;
}

// VMLAUNCH/VMRESUME of a vCPU whose VP assist page MSR is not 0 (its page
// was L1 RAM when written: exit/hyperv.ts). If the page asks for an
// enlightened entry: the eVMCS's checks, then the cache filled from it;
// PROCEED, or the instruction's outcome (a VMfail).
export function enter(vcpu: Vcpu, launch: bool): i32 {
  const vpAssist = vcpu.hv.vpAssistPage;
  if ((vpAssist & VP_ASSIST_ENABLE) == 0) return NOT_ENLIGHTENED;
  // (As requested(), with CurrentNestedVmcs in the same copy.)
  guestmem.copyOut(assist, (vpAssist & ~PAGE_OFFSET) + <u64>ASSIST_AT, ASSIST_BYTES);
  if (load<u8>(assist) == 0) return NOT_ENLIGHTENED;
  const gpa = load<u64>(assist + <usize>(V.HV_VP_ASSIST_CURRENT_NESTED_VMCS - ASSIST_AT));
  const n = vcpu.nested;
  if (launch || gpa != n.evmcs) {
    if ((gpa & PAGE_OFFSET) != 0 || !guestmem.isRam(gpa, <u64>V.EVMCS_BYTES)) return vmfail.failInvalid(vcpu);
    const rev = guestmem.read32(gpa + <u64>V.EVMCS_REVISION_ID);
    if (rev != V.EVMCS_VERSION && rev != caps.REVISION_ID) return vmfail.failInvalid(vcpu);
  }
  if (pushCount < 0) buildLists();
  guestmem.copyOut(buf + <usize>ALWAYS_AT, gpa + <u64>ALWAYS_AT, ALWAYS_END - ALWAYS_AT);
  const cleanField = load<u32>(buf + V.EVMCS_CLEAN_FIELDS);
  let clean = cleanField & V.EVMCS_CLEAN_ALL;
  if (launch || gpa != n.evmcs) {
    if (gpa != n.evmcs) {
      // A VMPTRLD'ed vmcs12 stops being current (written back to its
      // region as VMPTRLD of another would, with what L1 wrote through
      // L0's shadow VMCS; the shadow is unlinked, so L1's VMREAD/VMWRITE
      // exit again and see the eVMCS's rules); the eVMCS takes its place.
      shadow.pull(vcpu);
      shadow.unlink(n);
      guestsync.syncRare(vcpu);
      state.flush(n);
      n.evmcs = gpa;
      if (launch) {
        memory.fill(n.vmcs12, 0, V.VMCS12_PAGE_SIZE);
        store<u32>(n.vmcs12 + V.VMCS12_REVISION_ID_OFFSET, caps.REVISION_ID);
      } else {
        state.setLaunchState(n, 1);
      }
    }
    state.markAllDirty(n);
    clean = 0;
  }
  copyGroups(gpa, clean);
  pull(n, clean);
  msrBitmap(n, clean);
  n.counts.enlightened++;
  // (Not written when L1 set every bit itself, as KVM does after each exit.)
  if ((cleanField & V.EVMCS_CLEAN_ALL) != V.EVMCS_CLEAN_ALL) {
    guestmem.write32(gpa + <u64>V.EVMCS_CLEAN_FIELDS, cleanField | V.EVMCS_CLEAN_ALL);
  }
  return PROCEED;
}

// The enlightened MSR bitmap (TLFS "Enlightened MSR Bitmap", offered by
// CPUID 4000000AH EAX bit 19): with EnlightenmentsControl.MsrBitmap set,
// "the L0 hypervisor does not monitor the MSR bitmaps for changes.
// Instead, the L1 hypervisor must invalidate the corresponding clean field
// after making changes to one of the MSR bitmaps." So while the MSR_BITMAP
// clean bit is 1, vmcs02's MSR bitmap keeps the words the last merge of
// L1's bitmap made (vmcs02.keepMsrBitmap): a change of L1's bitmap under a
// set bit is not seen by the MSRs L0 lets L2 reach directly (vmcs02.ts
// setupMsrBitmap), as the TLFS allows; an MSR access that exits to L0
// anyway is still decided by L1's bitmap as it is (reflect-decide.ts:
// monitoring nothing, reading when asked). Skipped only when the previous
// entry of this eVMCS merged L1's bitmap and reached L2 (counts.launches
// moved past the record): a first entry, a failed one, or one without
// "use MSR bitmaps" leaves nothing to keep. EnlightenmentsControl itself is
// read when its clean group says so, like any field.
function msrBitmap(n: Nested, clean: u32): void {
  if ((clean & V.EVMCS_CLEAN_ENLIGHTENMENTSCONTROL) == 0) {
    n.evmcsEnlightenments = load<u32>(buf + V.EVMCS_ENLIGHTENMENTS_CONTROL);
  }
  const merged = n.evmcsBitmapMerged;
  const keep = (n.evmcsEnlightenments & V.EVMCS_ENLIGHTENMENT_MSR_BITMAP) != 0 &&
    (clean & V.EVMCS_CLEAN_MSR_BITMAP) != 0 && merged != INVALID && n.counts.launches > merged;
  if (!keep) {
    const uses = (<u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC_USE_MSR_BITMAPS) != 0;
    n.evmcsBitmapMerged = uses ? n.counts.launches : INVALID;
  }
  vmcs02.keepMsrBitmap(n, keep);
}

// What pull and push do per field, worked out once from the generated
// tables (the loops over all 149 fields with their lookups cost an
// enlightened round trip some 15,000 Bochs ticks; with these lists pull
// visits only the groups not clean and push only copies):
// - pull: the fields L1 writes (not exit information) that have a vmcs12
//   slot, ordered by clean-field group — bits 0-15, then the fields in no
//   group (read at every entry), then those the TLFS gives no group (read
//   unless every bit is set); group k's are pullEnc/pullOff[pullStart[k] ..
//   pullStart[k + 1]);
// - push: the fields a nested exit writes back (writtenBack) that have a
//   vmcs12 slot, as a list of runs for guestmem.scatterIn (hw/mem.ts
//   scatter: eVMCS offset in bits 11:0, vmcs12 offset in 23:12, bytes in
//   31:24): one import call writes them all into L1's memory;
// - partial push: the same run word for each entry of guestsync.ts's
//   guest-state and exit-information lists (0: no eVMCS field), so that an
//   exit writes back only the fields its own copies changed (push).
const GROUP_NONE: i32 = 16;
const GROUP_ALL: i32 = 17;
const pullEnc: usize = memory.data(<i32>V.EVMCS_FIELD_COUNT * 4); // machine-wide: constant table (built once)
const pullOff: usize = memory.data(<i32>V.EVMCS_FIELD_COUNT * 4); // machine-wide: constant table (built once)
const pullBits: usize = memory.data(<i32>V.EVMCS_FIELD_COUNT * 4); // machine-wide: constant table (built once)
const pullStart: usize = memory.data(19 * 4); // machine-wide: constant table (built once)
const pushList: usize = memory.data(<i32>V.EVMCS_FIELD_COUNT * 4); // machine-wide: constant table (built once)
let pushCount: i32 = -1; // machine-wide: constant table (built once); -1 until built
const guestRuns: usize = memory.data(<i32>V.FL_MAX * 4); // machine-wide: constant table (built once)
const exitRuns: usize = memory.data(<i32>V.FL_MAX * 4); // machine-wide: constant table (built once)
const partial: usize = memory.data(<i32>V.FL_MAX * 2 * 4); // machine-wide: scratch of one exit (a run list)
// The byte span [spanLo, spanHi) of each clean group's fields (0-15; 17: the
// fields the TLFS gives no group), for copyGroups.
const spanLo: usize = memory.data(18 * 4); // machine-wide: constant table (built once)
const spanHi: usize = memory.data(18 * 4); // machine-wide: constant table (built once)

function groupOf(i: i32): i32 {
  const g = <u32>unchecked(V.EVMCS_FIELD_CLEAN[i]);
  if (g == 0) return GROUP_NONE;
  if (g == 0xffff) return GROUP_ALL;
  return <i32>ctz(g);
}

function buildLists(): void {
  let k = 0;
  for (let grp = 0; grp <= GROUP_ALL; grp++) {
    store<u32>(pullStart + (<usize>grp << 2), <u32>k);
    for (let i = 0; i < V.EVMCS_FIELD_COUNT; i++) {
      const enc = unchecked(V.EVMCS_FIELD_ENCODINGS[i]);
      // Exit information is L0's to write (read-only for L1, 24.9); fields
      // of features not offered to L1 have no slot in vmcs12.
      if (enc == NO_ENCODING || V.vmcsEncodingType(enc) == V.VMCS_TYPE_RO || V.vmcs12Offset(enc) < 0) continue;
      if (groupOf(i) != grp) continue;
      store<u32>(pullEnc + (<usize>k << 2), enc);
      // eVMCS offset in bits 15:0, the vmcs12 cache's in 31:16.
      store<u32>(pullOff + (<usize>k << 2), <u32>unchecked(V.EVMCS_FIELD_OFFSETS[i]) | (<u32>V.vmcs12Offset(enc) << 16));
      // What a change of it records (state.fromL1Bits).
      store<u32>(pullBits + (<usize>k << 2), state.fromL1Bits(enc));
      k++;
    }
  }
  store<u32>(pullStart + (<usize>(GROUP_ALL + 1) << 2), <u32>k);
  // pull reads the fields in no group itself: exactly these two.
  const none = load<u32>(pullStart + (<usize>GROUP_NONE << 2));
  assert(load<u32>(pullStart + (<usize>(GROUP_NONE + 1) << 2)) == none + 2 &&
    load<u32>(pullEnc + (<usize>none << 2)) == V.TPR_THRESHOLD && load<u32>(pullEnc + (<usize>(none + 1) << 2)) == V.GUEST_RIP);
  // Fields that follow each other in both layouts (the eVMCS is in
  // structure order) make one run: 82 fields are 23 copies.
  let p = 0;
  let eEnd: u32 = 0, cEnd: u32 = 0;
  for (let i = 0; i < V.EVMCS_FIELD_COUNT; i++) {
    const enc = unchecked(V.EVMCS_FIELD_ENCODINGS[i]);
    if (enc == NO_ENCODING || !writtenBack(enc) || V.vmcs12Offset(enc) < 0) continue;
    const eo = <u32>unchecked(V.EVMCS_FIELD_OFFSETS[i]);
    const co = <u32>V.vmcs12Offset(enc);
    const size = <u32>unchecked(V.EVMCS_FIELD_SIZES[i]);
    assert(co <= 0xfff && eo <= 0xfff);
    const last = pushList + (<usize>(p - 1) << 2);
    if (p > 0 && eo == eEnd && co == cEnd && (load<u32>(last) >> 24) + size <= 0xff) {
      store<u32>(last, load<u32>(last) + (size << 24));
    } else {
      store<u32>(pushList + (<usize>p << 2), eo | (co << 12) | (size << 24));
      p++;
    }
    eEnd = eo + size;
    cEnd = co + size;
  }
  pushCount = p;
  // Group spans, over every field of the layout (EnlightenmentsControl has
  // no VMCS encoding but a group); the fields in no group must lie in the
  // always-read run.
  for (let grp = 0; grp <= GROUP_ALL; grp++) {
    store<u32>(spanLo + (<usize>grp << 2), V.EVMCS_BYTES);
    store<u32>(spanHi + (<usize>grp << 2), 0);
  }
  for (let i = 0; i < V.EVMCS_FIELD_COUNT; i++) {
    const grp = groupOf(i);
    const lo = <u32>unchecked(V.EVMCS_FIELD_OFFSETS[i]);
    const hi = lo + <u32>unchecked(V.EVMCS_FIELD_SIZES[i]);
    const enc = unchecked(V.EVMCS_FIELD_ENCODINGS[i]);
    if (grp == GROUP_NONE) {
      // Pulled ones (not exit information, not the header) must be in the run.
      assert(enc == NO_ENCODING || V.vmcsEncodingType(enc) == V.VMCS_TYPE_RO || V.vmcs12Offset(enc) < 0 ||
        (lo >= ALWAYS_AT && hi <= ALWAYS_END));
      continue;
    }
    const a = spanLo + (<usize>grp << 2);
    const b = spanHi + (<usize>grp << 2);
    if (lo < load<u32>(a)) store<u32>(a, lo);
    if (hi > load<u32>(b)) store<u32>(b, hi);
  }
  listRuns(guestsync.guestList, guestRuns);
  listRuns(guestsync.exitInfoList, exitRuns);
}

// The run word of each entry of l (see above), 0 where the eVMCS has no
// such field or vmcs12 no slot for it.
function listRuns(l: FieldList, runs: usize): void {
  for (let i = 0; i < <i32>l.count; i++) {
    const enc = l.encodingAt(i);
    const eo = V.evmcsOffset(enc);
    const co = V.vmcs12Offset(enc);
    let word: u32 = 0;
    if (eo >= 0 && co >= 0 && writtenBack(enc)) {
      const w = V.vmcsEncodingWidth(enc);
      const size: u32 = w == V.VMCS_WIDTH_16 ? 2 : w == V.VMCS_WIDTH_32 ? 4 : 8;
      assert(co <= 0xfff && eo <= 0xfff);
      word = <u32>eo | (<u32>co << 12) | (size << 24);
    }
    store<u32>(runs + (<usize>i << 2), word);
  }
}

// Into buf, the parts of the eVMCS at gpa that pull (and msrBitmap) read
// besides the always-read run: all of it when no bit is clean, else each
// group whose bit is 0 (its span), and the fields in no group the TLFS
// names unless every bit is set.
function copyGroups(gpa: u64, clean: u32): void {
  if (clean == 0) {
    guestmem.copyOut(buf, gpa, V.EVMCS_BYTES);
    return;
  }
  let groups = ~clean & V.EVMCS_CLEAN_ALL;
  if (clean != V.EVMCS_CLEAN_ALL) groups |= 1 << GROUP_ALL;
  while (groups != 0) {
    const grp = <i32>ctz(groups);
    groups &= groups - 1;
    const lo = load<u32>(spanLo + (<usize>grp << 2));
    const hi = load<u32>(spanHi + (<usize>grp << 2));
    if (lo < hi) guestmem.copyOut(buf + <usize>lo, gpa + <u64>lo, hi - lo);
  }
}

// The eVMCS fields (in buf) of the groups not clean into the cache.
function pull(n: Nested, clean: u32): void {
  if (pushCount < 0) buildLists();
  // The fields in no group (read at every entry: guest RIP and the TPR
  // threshold, buildLists checks that these are all) with their offsets
  // and change bits as constants; then the groups whose clean bit is 0,
  // then (unless every bit is set) those the TLFS gives no group.
  state.setFromL1(n, V.GUEST_RIP, load<u64>(buf + <usize>V.EVMCS_GUEST_RIP));
  state.setFromL1(n, V.TPR_THRESHOLD, <u64>load<u32>(buf + <usize>V.EVMCS_TPR_THRESHOLD));
  let groups = ~clean & V.EVMCS_CLEAN_ALL;
  if (clean != V.EVMCS_CLEAN_ALL) groups |= 1 << GROUP_ALL;
  while (groups != 0) {
    const grp = <i32>ctz(groups);
    groups &= groups - 1;
    const end = load<u32>(pullStart + (<usize>(grp + 1) << 2));
    for (let k = load<u32>(pullStart + (<usize>grp << 2)); k < end; k++) {
      const enc = load<u32>(pullEnc + (<usize>k << 2));
      const offs = load<u32>(pullOff + (<usize>k << 2));
      const a = buf + <usize>(offs & 0xffff);
      const c = n.vmcs12 + <usize>(offs >> 16);
      // Width from the encoding (the table's sizes agree: gen.mjs). A
      // changed value is stored and recorded with the bits worked out once
      // (state.fromL1Bits: a change that needs no write-back into the
      // eVMCS; RIP and the TPR threshold are read at every entry, and
      // usually one of them changed).
      const w = V.vmcsEncodingWidth(enc);
      if (w == V.VMCS_WIDTH_16) {
        const v = load<u16>(a);
        if (v == load<u16>(c)) continue;
        store<u16>(c, v);
      } else if (w == V.VMCS_WIDTH_32) {
        const v = load<u32>(a);
        if (v == load<u32>(c)) continue;
        store<u32>(c, v);
      } else {
        const v = load<u64>(a);
        if (v == load<u64>(c)) continue;
        store<u64>(c, v);
      }
      n.changes |= load<u32>(pullBits + (<usize>k << 2));
    }
  }
}

// Is enc one of the fields a nested exit writes back (see the top)?
function writtenBack(enc: u32): bool {
  const t = V.vmcsEncodingType(enc);
  if (t == V.VMCS_TYPE_GUEST || t == V.VMCS_TYPE_RO) return true;
  return enc == V.VM_ENTRY_CONTROL || enc == V.VM_ENTRY_INTERRUPTION_INFO || enc == V.VM_ENTRY_EXCEPTION_ERROR_CODE ||
    enc == V.VM_ENTRY_INSTRUCTION_LENGTH;
}

// A nested exit (or a failed entry) to L1 with an eVMCS in use: the cache's
// guest state, exit information and entry-event fields into the eVMCS (the
// other fields keep what L1 wrote). The eVMCS holds the cache's values of
// them since the last push (and the pulls of L1's changes, pull)
// except where the cache changed since: after the reflected exit's own
// copies (the Nested's shadowGuestStale and shadowExitStale name those
// fields, as for shadow.ts) only those are written — RIP and the few
// fields the exit changed, not the 82 — after any other change (state.ts
// shadowAll) all of them.
@inline export function push(n: Nested): void {
  if (pushCount < 0) buildLists();
  const g = n.shadowGuestStale;
  const e = n.shadowExitStale;
  n.shadowGuestStale = 0;
  n.shadowExitStale = 0;
  if (state.shadowAllStale(n)) {
    guestmem.scatterIn(n.evmcs, V.EVMCS_BYTES, n.vmcs12, pushList, <u32>pushCount);
    state.markShadowPushed(n);
    return;
  }
  // A few fields (RIP alone, at an exit L1 has seen before): one write
  // each, not the list import's set-up (some 90 instructions for one field).
  if (<u32>(popcnt(g) + popcnt(e)) <= FEW_FIELDS) {
    writeFields(n, g, guestRuns);
    writeFields(n, e, exitRuns);
    return;
  }
  let k: u32 = addRuns(0, g, guestRuns);
  k = addRuns(k, e, exitRuns);
  if (k != 0) guestmem.scatterIn(n.evmcs, V.EVMCS_BYTES, n.vmcs12, partial, k);
}
// Up to this many fields are written back one by one.
const FEW_FIELDS: u32 = 3;

// The fields of `mask` (entries of a list whose run words are at `runs`:
// each one field of 2, 4 or 8 bytes, listRuns) from the cache into the eVMCS.
@inline function writeFields(n: Nested, mask: u64, runs: usize): void {
  while (mask != 0) {
    const w = load<u32>(runs + (<usize>ctz(mask) << 2));
    mask &= mask - 1;
    if (w == 0) continue;
    const to = n.evmcs + <u64>(w & 0xfff);
    const from = n.vmcs12 + <usize>((w >> 12) & 0xfff);
    const size = w >> 24;
    if (size == 8) guestmem.write64(to, load<u64>(from));
    else if (size == 4) guestmem.write32(to, load<u32>(from));
    else guestmem.write16(to, load<u16>(from));
  }
}

// The run words of the entries in `mask` (of a list whose words are at
// `runs`) appended to the partial list from entry k; the new count.
function addRuns(k: u32, mask: u64, runs: usize): u32 {
  while (mask != 0) {
    const w = load<u32>(runs + (<usize>ctz(mask) << 2));
    mask &= mask - 1;
    if (w == 0) continue;
    store<u32>(partial + (<usize>k << 2), w);
    k++;
  }
  return k;
}

// VMREAD by L1 while the eVMCS is in use (vmrw.ts; TLFS "Enlightened
// VMCS": "Any VMREAD or VMWRITE instructions while an enlightened VMCS is
// active is unsupported and can result in unexpected behavior"). This
// hypervisor's choice, KVM's: VMREAD reads the field from the eVMCS in L1's
// memory (some L1s read exit information that way regardless), hasField
// says whether it has one; VMWRITE fails as without a current VMCS.
export function hasField(enc: u32): bool {
  return V.evmcsOffset(enc) >= 0;
}
export function readField(n: Nested, enc: u32): u64 {
  const a = n.evmcs + <u64>V.evmcsOffset(enc);
  // The high access of a 64-bit field: its bits 63:32 (evmcsOffset + 4).
  if ((enc & V.VMCS_ENC_HIGH) != 0) return <u64>guestmem.read32(a);
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) return <u64>guestmem.read16(a);
  if (w == V.VMCS_WIDTH_32) return <u64>guestmem.read32(a);
  return guestmem.read64(a);
}

// A VMfailValid of an enlightened entry: the error into the eVMCS too.
export function pushError(n: Nested, error: u32): void {
  guestmem.write32(n.evmcs + <u64>V.EVMCS_VM_INSTRUCTION_ERROR, error);
}

// L1 stops using the eVMCS (VMCLEAR of it, VMPTRLD, VMXOFF): the next
// enlightened entry reads every group again, and every entry merges L1's
// MSR bitmap again.
export function forget(n: Nested): void {
  n.evmcs = INVALID;
  n.evmcsEnlightenments = 0;
  n.evmcsBitmapMerged = INVALID;
  vmcs02.keepMsrBitmap(n, false);
}
