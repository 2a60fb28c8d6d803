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
//   as KVM answers.
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
import * as vmcs02 from "./vmcs02";
import { Nested } from "./nested";
import { PROCEED } from "./common";

const INVALID: u64 = state.INVALID;
const NO_ENCODING: u32 = 0xffffffff;
const PAGE_OFFSET: u64 = 0xfff;
const VP_ASSIST_ENABLE: u64 = 1;

// Scratch for the one eVMCS being read or written back during one exit;
// it holds nothing between exits.
const buf: usize = memory.data(<i32>V.EVMCS_BYTES); // machine-wide: scratch of one exit

// enter(): L1's VP assist page is disabled or its EnlightenVmEntry is 0,
// the entry uses the current VMCS. (Not a handler result, nor PROCEED.)
export const NOT_ENLIGHTENED: i32 = -2;

// VMLAUNCH/VMRESUME of a vCPU whose VP assist page MSR is not 0 (its page
// was L1 RAM when written: exit/hyperv.ts). If the page asks for an
// enlightened entry: the eVMCS's checks, then the cache filled from it;
// PROCEED, or the instruction's outcome (a VMfail).
export function enter(vcpu: Vcpu, launch: bool): i32 {
  const vpAssist = vcpu.hv.vpAssistPage;
  if ((vpAssist & VP_ASSIST_ENABLE) == 0) return NOT_ENLIGHTENED;
  const page = vpAssist & ~PAGE_OFFSET;
  if (guestmem.read8(page + <u64>V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY) == 0) return NOT_ENLIGHTENED;
  const gpa = guestmem.read64(page + <u64>V.HV_VP_ASSIST_CURRENT_NESTED_VMCS);
  const n = vcpu.nested;
  if ((gpa & PAGE_OFFSET) != 0 || !guestmem.isRam(gpa, <u64>V.EVMCS_BYTES)) return vmfail.failInvalid(vcpu);
  guestmem.copyOut(buf, gpa, V.EVMCS_BYTES);
  const rev = load<u32>(buf + V.EVMCS_REVISION_ID);
  if (rev != V.EVMCS_VERSION && rev != caps.REVISION_ID) return vmfail.failInvalid(vcpu);
  let clean = load<u32>(buf + V.EVMCS_CLEAN_FIELDS) & V.EVMCS_CLEAN_ALL;
  if (launch || gpa != n.evmcs) {
    if (gpa != n.evmcs) {
      // A VMPTRLD'ed vmcs12 stops being current (written back to its
      // region as VMPTRLD of another would, with what L1 wrote through
      // L0's shadow VMCS; the shadow is unlinked, so L1's VMREAD/VMWRITE
      // exit again and see the eVMCS's rules); the eVMCS takes its place.
      shadow.pull(vcpu);
      shadow.unlink(n);
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
  pull(n, clean);
  msrBitmap(n, clean);
  guestmem.write32(gpa + <u64>V.EVMCS_CLEAN_FIELDS, load<u32>(buf + V.EVMCS_CLEAN_FIELDS) | V.EVMCS_CLEAN_ALL);
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

// The eVMCS fields (in buf) of the groups not clean into the cache.
function pull(n: Nested, clean: u32): void {
  const all = clean == V.EVMCS_CLEAN_ALL;
  for (let i = 0; i < V.EVMCS_FIELD_COUNT; i++) {
    const enc = unchecked(V.EVMCS_FIELD_ENCODINGS[i]);
    if (enc == NO_ENCODING) continue;
    // Exit information is L0's to write (read-only for L1, 24.9).
    if (V.vmcsEncodingType(enc) == V.VMCS_TYPE_RO) continue;
    const g = <u32>unchecked(V.EVMCS_FIELD_CLEAN[i]);
    if (g == 0xffff ? all : (clean & g) != 0) continue;
    // Fields of features not offered to L1 have no slot in vmcs12.
    if (V.vmcs12Offset(enc) < 0) continue;
    state.write(n, enc, fieldAt(i));
  }
}

function fieldAt(i: i32): u64 {
  const a = buf + <usize>unchecked(V.EVMCS_FIELD_OFFSETS[i]);
  const size = unchecked(V.EVMCS_FIELD_SIZES[i]);
  if (size == 2) return <u64>load<u16>(a);
  if (size == 4) return <u64>load<u32>(a);
  return load<u64>(a);
}

// Is enc one of the fields a nested exit writes back (see the top)?
function writtenBack(enc: u32): bool {
  const t = V.vmcsEncodingType(enc);
  if (t == V.VMCS_TYPE_GUEST || t == V.VMCS_TYPE_RO) return true;
  return enc == V.VM_ENTRY_CONTROL || enc == V.VM_ENTRY_INTERRUPTION_INFO || enc == V.VM_ENTRY_EXCEPTION_ERROR_CODE ||
    enc == V.VM_ENTRY_INSTRUCTION_LENGTH;
}

// A nested exit (or a failed entry) to L1 with an eVMCS in use: the cache's
// guest state, exit information and entry-event fields into the eVMCS. Read
// first so that the other fields keep what L1 wrote (one copy each way).
export function push(n: Nested): void {
  const gpa = n.evmcs;
  guestmem.copyOut(buf, gpa, V.EVMCS_BYTES);
  for (let i = 0; i < V.EVMCS_FIELD_COUNT; i++) {
    const enc = unchecked(V.EVMCS_FIELD_ENCODINGS[i]);
    if (enc == NO_ENCODING || !writtenBack(enc) || V.vmcs12Offset(enc) < 0) continue;
    const v = state.read(n, enc);
    const a = buf + <usize>unchecked(V.EVMCS_FIELD_OFFSETS[i]);
    const size = unchecked(V.EVMCS_FIELD_SIZES[i]);
    if (size == 2) store<u16>(a, <u16>v);
    else if (size == 4) store<u32>(a, <u32>v);
    else store<u64>(a, v);
  }
  guestmem.copyIn(gpa, buf, V.EVMCS_BYTES);
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
