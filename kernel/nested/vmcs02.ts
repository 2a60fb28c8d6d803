// vmcs02: the VMCS the processor runs L2 with (SDM Vol. 3C 25; the nested
// scheme of seeds/003: constant state written exactly once per vmcs02,
// tracked by its own flag — NOT by the launch state, which VMCLEAR clears
// whenever the vCPU moves to another processor — and everything that
// depends on vmcs12 merged at each nested VM entry).
//
// Merge rules (what L0 needs ∪ what L1 asked for):
//   controls      L0's vmcs01 controls | vmcs12's, except that L1's choices
//                 decide exits L0 does not need (HLT, RDTSC, ...);
//   I/O           every port exits to L0 (vmcs01's all-ones bitmaps); L0
//                 reflects an access only if L1's bitmaps/controls ask (reflect.ts);
//   MSR bitmap    L0's bitmap OR L1's, or none (every MSR exits) when L1 uses none;
//                 with vmcs12's "virtualize x2APIC mode", L1's alone for the
//                 x2APIC MSRs the processor virtualizes (setupX2apicMsrs);
//   exceptions    L0's bitmap (0) | L1's; #PF error-code mask/match are L1's;
//   CR0/CR4       mask = L0's | L1's; the shadow shows L1's shadow for L1's
//                 bits and vmcs12's guest value for the bits only L0 owns;
//   TSC offset    vmcs01's (always used) + vmcs12's when L1 uses offsetting;
//   EPT           without EPT in vmcs12 L2 runs on L1's own EPT (vmcs01's
//                 EPTP): L2's physical addresses are L1's; with it, on
//                 shadow tables composing L1's EPT with L0's (shadowept.ts);
//   VPID          L2 runs with L0's VPID for it (L2_VPID) whenever L0 uses
//                 VPID; vmcs12's VPID setting decides the flushes L0 makes
//                 (vpid.ts: none at nested transitions with a VPID in
//                 vmcs12, L1's and L2's mappings at each one without).
import * as vmx from "../hw/vmx";
import * as mem from "../hw/mem";
import * as pages from "../mm/pages";
import * as print from "../lib/print";
import * as caps from "../vmx/caps";
import * as V from "../arch/vmx";
import * as vmcs01 from "../vm/vmcs01";
import * as guestmem from "../vm/guestmem";
import * as state from "./state";
import * as fields from "./fields";
import * as irq from "../vm/irq";
import { FieldList } from "./fieldlist";
import * as shadowept from "./shadowept";
import * as guestsync from "./guestsync";
import * as l1caps from "./caps";
import * as tsc from "../vm/tsc";
import { Vcpu } from "../vm/vcpu";
import { Nested } from "./nested";
import * as events from "../vm/events";

export const L2_VPID: u32 = 2;

// When L0 merges MSR bitmap words at every entry (see setupMsrBitmap).
// L0's own APIC virtualization of L1 (vm/apicv.ts): never vmcs02's, whose
// APIC virtualization is vmcs12's alone.
const L0_APIC_VIRTUALIZATION: u32 = V.PROC2_VIRTUALIZE_APIC_ACCESSES | V.PROC2_APIC_REGISTER_VIRTUALIZATION |
  V.PROC2_VIRTUAL_INTERRUPT_DELIVERY | V.PROC2_VIRTUALIZE_X2APIC_MODE;
const MERGE_WORDS_MAX: i32 = 32;

// Vmcs02State.flags: what every nested entry asks, in one word (one load):
const F_INITIALIZED: u32 = 1; // the constant state is written (seeds/003)
const F_VMCS01_CHANGED: u32 = 2; // a vmcs01 value differs from the previous entry: merge whole
const F_TIMER: u32 = 4; // vmcs01 activates the VMX-preemption timer (pin01)
const F_RELOAD_SHIFT: u32 = 16; // reload12 (entry-control bits 15, 14, 2) in bits 31, 30, 18

// The x2APIC MSRs 800H-8FFH in an MSR bitmap (25.6.9): 256 bits at byte
// 100H of the read bitmap for low MSRs, and 900H of the write bitmap.
const X2APIC_READ: u32 = 0x100;
const X2APIC_WRITE: u32 = 0x900;
const X2APIC_BYTES: u32 = 32;
// The merge words "virtualize x2APIC mode" adds (setupX2apicMsrs): the
// first read and write words, and the other three read words.
const X2APIC_MERGE_WORDS: i32 = 5;

// A vCPU's vmcs02 (vcpu.nested.vmcs02, embedded in the Nested: no field
// initializers run, init() and clear() set everything). Its page and the
// MSR bitmap page are allocated once and stay with the object; everything
// else is a rebuildable cache: made again from vmcs12 and vmcs01 after
// clear() (the constant state once, the merge whole, vmcs02 VMCLEARed
// first).
@unmanaged export class Vmcs02State {
  page: u64 = 0; // physical address of vmcs02
  msrBitmap: u64 = 0; // physical address of vmcs02's MSR bitmap
  flags: u32 = F_VMCS01_CHANGED; // F_*
  launched: bool = false; // VMLAUNCH done since the last VMCLEAR of vmcs02
  // vmcs01's launch state while vmcs02 is current (vcpu.launched then
  // describes vmcs02).
  l1Launched: bool = true;
  constantWrites: u32 = 0; // how often the constant state was written (1 per vmcs02): statistics
  wholeMerges: u64 = 0; // nested entries that merged all of vmcs12 (the others: what changed): statistics
  // vmcs01's values this merge builds on (read while vmcs01 was current).
  pin01: u32 = 0;
  proc01: u32 = 0;
  proc2_01: u32 = 0;
  exit01: u32 = 0;
  entry01: u32 = 0;
  eptp01: u64 = 0;
  cr0Mask01: u64 = 0;
  cr4Mask01: u64 = 0;
  tscOffset01: u64 = 0;
  proc02: u32 = 0; // vmcs02's primary controls as merged
  capturedAt: u32 = 0; // vmcs01.controlWrites when the fields above were read (captureVmcs01)
  eventsAt: u32 = 0; // events.entryEventWrites when the merge left vmcs12's event fields in vmcs02
  // The MSR bitmap words merged at every entry (setupMsrBitmap, and
  // setupX2apicMsrs after them): offsets in the page and L0's word (for an
  // x2APIC word: the bits vmcs12's bitmap does not decide); mergeWords
  // -1 - k merges the whole page, then the first k listed (the x2APIC
  // words). mergeBase is L0's part (-1: the whole page). mergeCount is what
  // the next entry merges: mergeWords, or 0 while an enlightened MSR bitmap
  // is clean (keepMsrBitmap).
  mergeOffsets: StaticArray<u32> = changetype<StaticArray<u32>>(0);
  mergeL0: StaticArray<u64> = changetype<StaticArray<u64>>(0);
  mergeCount: i32 = 0;
  mergeWords: i32 = 0;
  mergeBase: i32 = 0;
  // vmcs02's x2APIC words may differ from all ones (setupX2apicMsrs).
  x2apicWords: bool = false;

  // Once, when the Nested is made (no page yet).
  init(): void {
    this.page = 0;
    this.msrBitmap = 0;
    this.mergeOffsets = new StaticArray<u32>(MERGE_WORDS_MAX + X2APIC_MERGE_WORDS);
    this.mergeL0 = new StaticArray<u64>(MERGE_WORDS_MAX + X2APIC_MERGE_WORDS);
  }
  // The constant state is written (seeds/003).
  @inline get initialized(): bool {
    return (this.flags & F_INITIALIZED) != 0;
  }
  clear(): void {
    this.flags = F_VMCS01_CHANGED;
    // Forget vmcs01's values too: F_TIMER is derived from them, and a
    // capture that found them unchanged would leave it clear, so that the
    // preemption timer's value were never written into the new vmcs02.
    this.proc01 = u32.MAX_VALUE; // no capture matches (interrupt-window bit is masked off)
    this.capturedAt = 0; // (vmcs01.controlWrites starts at 1)
    this.eventsAt = 0; // (events.entryEventWrites starts at 1)
    this.launched = false;
    this.l1Launched = true;
    this.constantWrites = 0;
    this.wholeMerges = 0;
    this.mergeCount = 0;
    this.mergeWords = 0;
    this.mergeBase = 0;
    this.x2apicWords = false; // writeConstantState writes the bitmap anew
  }
}

// After VMCLEAR of vmcs02 (vCPU migration): clear, still initialized —
// the constant state stays (seeds/003); only its host state, which is the
// processor's, is rewritten on the new processor.
export function cleared(n: Nested): void {
  n.vmcs02.launched = false;
}

// VMCLEAR vmcs02 if it was ever loaded (before the vCPU moves, or its
// guest ends: a VMCS region is not reused while active, 25.11.1).
export function vmclear(n: Nested): bool {
  const s = n.vmcs02;
  return !s.initialized || vmx.vmclear(s.page) == vmx.VMX_SUCCEED;
}

// Read what L2's VMCS inherits from L1's while vmcs01 is still current.
export function captureVmcs01(n: Nested): void {
  const s = n.vmcs02;
  // None written since the last capture (vm/vmcs01.ts controlsWritten).
  if (s.capturedAt == vmcs01.controlWrites) return;
  s.capturedAt = vmcs01.controlWrites;
  const pin = <u32>vmx.vmread(V.PIN_BASED_VM_EXEC_CONTROL);
  const proc = <u32>vmx.vmread(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & ~V.PROC_INTERRUPT_WINDOW_EXITING;
  const proc2 = <u32>vmx.vmread(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL);
  const exit = <u32>vmx.vmread(V.VM_EXIT_CONTROL);
  const entry = <u32>vmx.vmread(V.VM_ENTRY_CONTROL);
  const eptp = vmx.vmread(V.EPT_POINTER);
  const cr0m = vmx.vmread(V.CR0_GUEST_HOST_MASK);
  const cr4m = vmx.vmread(V.CR4_GUEST_HOST_MASK);
  const tsc = vmx.vmread(V.TSC_OFFSET);
  if (pin == s.pin01 && proc == s.proc01 && proc2 == s.proc2_01 && exit == s.exit01 && entry == s.entry01 &&
    eptp == s.eptp01 && cr0m == s.cr0Mask01 && cr4m == s.cr4Mask01 && tsc == s.tscOffset01) return;
  s.flags = (s.flags & ~F_TIMER) | F_VMCS01_CHANGED | ((pin & V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER) != 0 ? F_TIMER : 0);
  s.pin01 = pin;
  s.proc01 = proc;
  s.proc2_01 = proc2;
  s.exit01 = exit;
  s.entry01 = entry;
  s.eptp01 = eptp;
  s.cr0Mask01 = cr0m;
  s.cr4Mask01 = cr4m;
  s.tscOffset01 = tsc;
}

// Make vmcs02 current on this processor, creating it the first time.
export function load(n: Nested): bool {
  const s = n.vmcs02;
  if (s.page == 0) {
    s.page = pages.alloc(1, caps.physAddr32() ? 0x100000000 : 0);
    s.msrBitmap = pages.alloc(1);
    if (s.page == 0 || s.msrBitmap == 0) {
      print.say("nested: out of memory for vmcs02");
      return false;
    }
  }
  if (!s.initialized) {
    // Zeroed: an enlightened VMCS (this hypervisor as L1 on one, kernel/
    // vmx/evmcs.ts) must start so (TLFS); for a VMCS region the data other
    // than the revision is the processor's, and zeroing it makes sure no
    // field of a previous use survives into this one (every field the
    // merge relies on is written by it).
    mem.zero(s.page, 4096);
    mem.write32(s.page, caps.vmcsRevision);
    if (vmx.vmclear(s.page) != vmx.VMX_SUCCEED) return false;
    s.launched = false;
  }
  vmx.vmcsswitch(0, s.page); // (our own VMCS: a failure stops the machine)
  return true;
}

// State of vmcs02 that never depends on vmcs12: written once per vmcs02.
function writeConstantState(s: Vmcs02State): void {
  vmcs01.writeHostState();
  vmx.vmwrite(V.VMCS_LINK_POINTER, u64.MAX_VALUE);
  vmx.vmwrite(V.VM_EXIT_MSR_STORE_COUNT, 0);
  vmx.vmwrite(V.VM_EXIT_MSR_LOAD_COUNT, 0);
  vmx.vmwrite(V.VM_ENTRY_MSR_LOAD_COUNT, 0);
  vmx.vmwrite(V.IO_BITMAP_A, vmcs01.ioBitmapA);
  vmx.vmwrite(V.IO_BITMAP_B, vmcs01.ioBitmapB);
  vmx.vmwrite(V.MSR_BITMAPS, s.msrBitmap);
  if (vmcs01.vpidEnabled) vmx.vmwrite(V.VIRTUAL_PROCESSOR_ID, L2_VPID);
  // VM functions (when L1 enables them) with none allowed: every VMFUNC of
  // L2 exits to L0, which emulates EPTP switching (vmfunc.ts).
  if (caps.hasVmfunc) vmx.vmwrite(V.VM_FUNCTION_CONTROL, 0);
  setupMsrBitmap(s);
  s.constantWrites++;
}

// The MSR bitmap of vmcs02 is L0's OR L1's (25.6.9): an access exits to L0
// if either wants it; reflect.ts then decides whether L1 sees it. Where
// L0's bitmap has all ones the result is all ones whatever L1's says, so
// only the few quadwords in which L0 lets some MSR through (vmcs01.ts:
// the pass-through MSRs) depend on L1: those are merged at every entry
// (L1 may change its bitmap at any time), the rest is written once here.
// When L1 uses no MSR bitmap every MSR access exits anyway, and vmcs02
// uses none either.
function setupMsrBitmap(s: Vmcs02State): void {
  let count = 0;
  const offsets = s.mergeOffsets;
  const l0 = s.mergeL0;
  for (let o: u32 = 0; o < 4096; o += 8) {
    const w = mem.read64(vmcs01.msrBitmap + <u64>o);
    mem.write64(s.msrBitmap + <u64>o, u64.MAX_VALUE);
    if (w == u64.MAX_VALUE || count < 0) continue;
    if (count == MERGE_WORDS_MAX) {
      // More pass-through than this table holds: merge the whole page.
      count = -1;
      continue;
    }
    unchecked(offsets[count] = o);
    unchecked(l0[count] = w);
    count++;
  }
  s.mergeCount = count;
  s.mergeWords = count;
  s.mergeBase = count;
}

// The enlightened MSR bitmap (nested/evmcs.ts; TLFS "Enlightened MSR
// Bitmap": L0 "does not monitor the MSR bitmaps for changes", L1 clears
// the MSR_BITMAP clean bit when it changes them): keep, the next entry
// leaves vmcs02's merged words as the last merge made them; otherwise it
// merges L1's bitmap as at every entry. vmcs02's bitmap page holds its
// words between entries (nothing else writes them), so keeping is only
// right after a merge of the same bitmap, which the caller knows. The
// entry's merge itself is unchanged: a count of 0 merges nothing.
export function keepMsrBitmap(n: Nested, keep: bool): void {
  const s = n.vmcs02;
  s.mergeCount = keep ? 0 : s.mergeWords;
}

function mergeMsrBitmap(n: Nested, s: Vmcs02State): void {
  // The entry checks made sure the page is L1 RAM (ctls.msr-bitmap.ram).
  const l1 = guestmem.hpa(state.get(n, V.MSR_BITMAPS), 4096);
  let count = s.mergeCount;
  if (count < 0) {
    mem.or(s.msrBitmap, vmcs01.msrBitmap, l1, 4096);
    count = -1 - count; // then the x2APIC words (setupX2apicMsrs)
  }
  const offsets = s.mergeOffsets;
  const l0 = s.mergeL0;
  for (let i = 0; i < count; i++) {
    const o = <u64>unchecked(offsets[i]);
    mem.write64(s.msrBitmap + o, unchecked(l0[i]) | mem.read64(l1 + o));
  }
}

const guestList = guestsync.guestList;
const hotList = new FieldList(state.HOT_FIELDS, true); // machine-wide: a constant field list

// vmcs12 → vmcs02, at every nested VM entry (vmcs02 is current). What
// vmcs02 already holds from the previous merge or the last VM exit is not
// written again: the Nested's stale says which classes changed since the last
// merge, hotStale which of the hot fields (state.ts says why that is
// exact). Everything is merged again after VMPTRLD, for a fresh vmcs02,
// and when vmcs01's controls changed. l1Efer, l1Pat, l1Dr7, l1Debugctl:
// L1's values at the nested entry (read while vmcs01 was current; passed,
// not kept: only this entry uses them).
export function merge(vcpu: Vcpu, l1Efer: u64, l1Pat: u64, l1Dr7: u64, l1Debugctl: u64): bool {
  const n = vcpu.nested;
  const s = n.vmcs02;
  let f = s.flags;
  const flags = f;
  if ((f & F_INITIALIZED) == 0) {
    writeConstantState(s);
    f |= F_INITIALIZED;
  }
  const entry12 = <u32>state.get(n, V.VM_ENTRY_CONTROL);
  const proc12 = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  // The change record, read once: nothing below changes vmcs12.
  const changes = n.changes;
  if ((f & F_VMCS01_CHANGED) != 0 || (state.staleIn(changes) & (state.DIRTY_CONTROLS | state.DIRTY_GUEST)) != 0) {
    // mergeAll writes the guest-state area whole: L2's rare fields from
    // vmcs02 into vmcs12 first (guestsync.ts; vmcs02 is current).
    guestsync.syncRareCurrent(n);
    const reload12 = mergeAll(vcpu, s, proc12, entry12);
    f = (f & ~F_VMCS01_CHANGED & ((1 << F_RELOAD_SHIFT) - 1)) | (reload12 << F_RELOAD_SHIFT);
    s.wholeMerges++;
  } else {
    const hot = state.hotStaleIn(changes);
    if (hot != 0) vmx.writefields(hotList.ptr, hotList.count, n.vmcs12, <u64>hot);
    // l2irq.ts may have set interrupt-window exiting for L0's own use.
    vmx.vmwrite(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, s.proc02);
  }
  if (f != flags) s.flags = f;
  // EPT: L1's own (vmcs01's) when vmcs12 has none — L2's physical
  // addresses are then L1's — else the shadow tables for vmcs12's EPT
  // pointer (looked up at every entry: INVEPT may have dropped them).
  const ept12 = (proc12 & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0 &&
    (<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_ENABLE_EPT) != 0;
  if (ept12) {
    const root = shadowept.rootFor(n.shadowEpt, state.get(n, V.EPT_POINTER));
    if (root == 0) return false;
    vmx.vmwrite(V.EPT_POINTER, root);
  } else {
    vmx.vmwrite(V.EPT_POINTER, s.eptp01);
  }
  loadPdptes(n, entry12, ept12);
  // Inputs from outside vmcs12, at every entry: L1's bitmap, L1's EFER,
  // PAT, DR7 and DEBUGCTL (when vmcs12 does not load them, 27.3.2.1: L1's
  // current values, EFER.LMA/LME from "IA-32e mode guest"), the slice.
  if ((proc12 & V.PROC_USE_MSR_BITMAPS) != 0) mergeMsrBitmap(n, s);
  if ((entry12 & V.ENTRY_LOAD_IA32_EFER) == 0) {
    let efer = l1Efer & ~<u64>(V.X86_EFER_LME | V.X86_EFER_LMA);
    if ((entry12 & V.ENTRY_IA32E_MODE_GUEST) != 0) efer |= V.X86_EFER_LME | V.X86_EFER_LMA;
    vmx.vmwrite(V.GUEST_IA32_EFER, efer);
  }
  if ((entry12 & V.ENTRY_LOAD_IA32_PAT) == 0) vmx.vmwrite(V.GUEST_IA32_PAT, l1Pat);
  if ((entry12 & V.ENTRY_LOAD_DEBUG_CONTROLS) == 0) {
    vmx.vmwrite(V.GUEST_DR7, l1Dr7);
    vmx.vmwrite(V.GUEST_IA32_DEBUGCTL, l1Debugctl);
  }
  const reload = f >> F_RELOAD_SHIFT;
  if (reload != 0) reloadFromVmcs12(n, reload);
  // L0 regains control from L2 once per slice, as from L1 (irq.ts), or by
  // L1's APIC timer deadline (l2irq.ts).
  if ((f & F_TIMER) != 0) vmx.vmwrite(V.VMX_PREEMPTION_TIMER_VALUE, irq.SLICE);
  n.changes = state.merged(changes);
  // vmcs02's event fields are vmcs12's now (written, or not stale).
  s.eventsAt = events.entryEventWrites;
  return true;
}

// The CR0 the processor runs L2 with for the CR0 L2 has: VMX's fixed bits
// applied, except PE and PG when vmcs12 makes L2 an unrestricted guest.
export function realCr0(n: Nested, v: u64): u64 {
  if (state.unrestrictedGuest(n)) return vmcs01.realCr0(v);
  return (v | caps.cr0Fixed0) & caps.cr0Fixed1;
}

// L2's PDPTEs, when it will use PAE paging (27.3.2.4 / 27.4): with EPT in
// vmcs12 from vmcs12's fields; without, vmcs02 still has L0's EPT, so the
// processor would take them from vmcs02's fields too, and L0 loads them
// from the table at CR3 in L1's memory (the entry checks made sure it is
// RAM), as L1's processor would — at every entry, since L1 may change it.
const eoiList = new FieldList([V.EOI_EXIT_BITMAP_0, V.EOI_EXIT_BITMAP_1, V.EOI_EXIT_BITMAP_2, V.EOI_EXIT_BITMAP_3, V.GUEST_INTERRUPT_STATUS], true); // machine-wide: a constant field list
const pdpteList = new FieldList([V.GUEST_PDPTE0, V.GUEST_PDPTE1, V.GUEST_PDPTE2, V.GUEST_PDPTE3], true); // machine-wide: a constant field list
function loadPdptes(n: Nested, entry12: u32, ept12: bool): void {
  if ((entry12 & V.ENTRY_IA32E_MODE_GUEST) != 0 || (state.get(n, V.GUEST_CR4) & V.X86_CR4_PAE) == 0 ||
    (state.get(n, V.GUEST_CR0) & V.X86_CR0_PG) == 0) return;
  if (ept12) {
    vmx.writefields(pdpteList.ptr, pdpteList.count, n.vmcs12, pdpteList.all);
    return;
  }
  const table = state.get(n, V.GUEST_CR3) & 0xffffffe0;
  vmx.vmwrite(V.GUEST_PDPTE0, guestmem.read64(table));
  vmx.vmwrite(V.GUEST_PDPTE1, guestmem.read64(table + 8));
  vmx.vmwrite(V.GUEST_PDPTE2, guestmem.read64(table + 16));
  vmx.vmwrite(V.GUEST_PDPTE3, guestmem.read64(table + 24));
}

// The PDPTEs the processor saved at an exit of a PAE-paging L2 with EPT
// (28.3.4), into vmcs12.
export const pdpteFields = pdpteList; // machine-wide: a constant field list

// What vmcs12 loads on entry but its exit does not save (28.3.1: vmcs12
// keeps what L1 wrote): vmcs02's copy, saved by vmcs02's own exit, may be
// L2's newer value, so every entry loads vmcs12's again. Entry bits, set
// by mergeAll (a change of either control word makes the merge whole),
// kept in the flags.
function reloadFromVmcs12(n: Nested, reload12: u32): void {
  if ((reload12 & V.ENTRY_LOAD_IA32_EFER) != 0) vmx.vmwrite(V.GUEST_IA32_EFER, state.get(n, V.GUEST_IA32_EFER));
  if ((reload12 & V.ENTRY_LOAD_IA32_PAT) != 0) vmx.vmwrite(V.GUEST_IA32_PAT, state.get(n, V.GUEST_IA32_PAT));
  if ((reload12 & V.ENTRY_LOAD_DEBUG_CONTROLS) != 0) {
    vmx.vmwrite(V.GUEST_DR7, state.get(n, V.GUEST_DR7));
    vmx.vmwrite(V.GUEST_IA32_DEBUGCTL, state.get(n, V.GUEST_IA32_DEBUGCTL));
  }
}

// "Virtualize x2APIC mode" in vmcs12 (SDM Vol. 3C 30.5): an RDMSR/WRMSR
// of 800H-8FFH by L2 that vmcs12's MSR bitmap lets through is virtualized
// by the processor on vmcs12's virtual-APIC page (vmcs02 has it) where
// 30.5 says so — RDMSR of 808H (TPR), and of any of them with
// APIC-register virtualization; WRMSR of 808H, and of 80BH (EOI) and 83FH
// (SELF IPI) with virtual-interrupt delivery — and reaches L1's own local
// APIC otherwise ("operates normally"). L0 needs none of the virtualized
// ones (L1's APIC is not involved), so vmcs02's bitmap takes vmcs12's bits
// for them; every other x2APIC MSR keeps exiting to L0 (vmcs01's bitmap
// intercepts the range), which reflects it to L1 when vmcs12's bitmap
// says so (reflect-decide.ts) and otherwise performs it on L1's software
// APIC (exit/msr.ts), which is what "operates normally" reaches on a
// processor. The words join the ones merged at every entry (L1 may change
// its bitmap at any time), L0's word being the bits vmcs12 does not
// decide: mergeMsrBitmap's loop does it, and an L2 without the control
// pays nothing. Run by mergeAll (the controls changed); vmcs02's x2APIC
// words go back to all ones first.
function setupX2apicMsrs(n: Nested, s: Vmcs02State, proc2_12: u32, msrBitmaps: bool): void {
  if (s.x2apicWords) {
    for (let o: u32 = 0; o < X2APIC_BYTES; o += 8) {
      mem.write64(s.msrBitmap + <u64>(X2APIC_READ + o), u64.MAX_VALUE);
      mem.write64(s.msrBitmap + <u64>(X2APIC_WRITE + o), u64.MAX_VALUE);
    }
    s.x2apicWords = false;
  }
  const base = s.mergeBase;
  const first = base < 0 ? 0 : base; // the first free slot
  let k = first;
  // Without an MSR bitmap in vmcs12 every RDMSR/WRMSR exits to L1 (26.1.3).
  if (msrBitmaps && (proc2_12 & V.PROC2_VIRTUALIZE_X2APIC_MODE) != 0) {
    const apicRegs = (proc2_12 & V.PROC2_APIC_REGISTER_VIRTUALIZATION) != 0;
    const tpr: u64 = 1 << (0x808 - 0x800);
    let write = tpr;
    if ((proc2_12 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0) write |= (<u64>1 << (0x80b - 0x800)) | (<u64>1 << (0x83f - 0x800));
    const offsets = s.mergeOffsets;
    const l0 = s.mergeL0;
    unchecked(offsets[k] = X2APIC_READ);
    unchecked(l0[k++] = apicRegs ? 0 : ~tpr);
    unchecked(offsets[k] = X2APIC_WRITE);
    unchecked(l0[k++] = ~write);
    if (apicRegs) {
      for (let o: u32 = 8; o < X2APIC_BYTES; o += 8) {
        unchecked(offsets[k] = X2APIC_READ + o);
        unchecked(l0[k++] = 0);
      }
    }
    s.x2apicWords = true;
  }
  const words = base < 0 ? -1 - k : k;
  // A clean enlightened MSR bitmap (keepMsrBitmap: nothing merged this
  // entry) stays unmerged, but the x2APIC words just listed have no last
  // merge to keep: they are taken from L1's bitmap now.
  const keep = s.mergeCount == 0 && s.mergeWords != 0;
  s.mergeWords = words;
  s.mergeCount = keep ? 0 : words;
  if (!keep || k == first) return;
  // The entry checks made sure the page is L1 RAM (ctls.msr-bitmap.ram).
  const l1 = guestmem.hpa(state.get(n, V.MSR_BITMAPS), 4096);
  for (let i = first; i < k; i++) {
    const o = <u64>unchecked(s.mergeOffsets[i]);
    mem.write64(s.msrBitmap + o, unchecked(s.mergeL0[i]) | mem.read64(l1 + o));
  }
}

// Returns the entry bits whose fields every entry loads from vmcs12 again
// (reloadFromVmcs12).
function mergeAll(vcpu: Vcpu, s: Vmcs02State, proc12: u32, entry12: u32): u32 {
  const n = vcpu.nested;
  const exit12 = <u32>state.get(n, V.VM_EXIT_CONTROL);
  let reload12: u32 = 0;
  if ((exit12 & V.EXIT_SAVE_IA32_EFER) == 0) reload12 |= entry12 & V.ENTRY_LOAD_IA32_EFER;
  if ((exit12 & V.EXIT_SAVE_IA32_PAT) == 0) reload12 |= entry12 & V.ENTRY_LOAD_IA32_PAT;
  if ((exit12 & V.EXIT_SAVE_DEBUG_CONTROLS) == 0) reload12 |= entry12 & V.ENTRY_LOAD_DEBUG_CONTROLS;
  const pin12 = <u32>state.get(n, V.PIN_BASED_VM_EXEC_CONTROL);
  const proc2_12 = (proc12 & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0
    ? <u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) : 0;
  const proc01 = s.proc01;

  // Exits L0 takes for itself, as in vmcs01: external interrupts, NMIs, the
  // preemption timer (L0 regains control from L2 as from L1), HLT (a halted
  // L2 must not stop the processor; reflect.ts gives it to L1 when L1 asked
  // for HLT exiting, else L0 decides), I/O and MSR bitmaps, CR8.
  // TSC offsetting: vmcs01 always uses it (L1's TSC, vm/tsc.ts), so L2
  // runs on L1's offset plus vmcs12's when L1 uses offsetting (26.3).
  // "Process posted interrupts" is emulated by L0 (l2irq.ts): the
  // notification reaches L0 as L1's interrupt, never the processor.
  vmx.vmwrite(V.PIN_BASED_VM_EXEC_CONTROL, s.pin01 | (pin12 & ~V.PIN_PROCESS_POSTED_INTERRUPTS));
  const msrBitmaps = (proc12 & V.PROC_USE_MSR_BITMAPS) != 0;
  // "Use TPR shadow" is vmcs12's alone: L2's CR8 and TPR accesses then go to
  // vmcs12's virtual-APIC page (29.1), at its host-physical address, and the
  // CR8 exiting L0 uses for L1's TPR (vmcs01.ts) is dropped — L2's CR8 is
  // not L1's TPR then — unless vmcs12 asks for it.
  const tprShadow = (proc12 & V.PROC_USE_TPR_SHADOW) != 0;
  // Without vmcs12's TPR shadow, L2's CR8 is L1's TPR: it exits to L0 even
  // when vmcs01 virtualizes L1's TPR (vm/apicv.ts), which L2 must not reach.
  let base01 = proc01 & ~(V.PROC_USE_MSR_BITMAPS | V.PROC_USE_TPR_SHADOW);
  if (tprShadow) base01 &= ~(V.PROC_CR8_LOAD_EXITING | V.PROC_CR8_STORE_EXITING);
  else base01 |= V.PROC_CR8_LOAD_EXITING | V.PROC_CR8_STORE_EXITING;
  const proc02 = ((base01 | (proc12 & ~V.PROC_USE_IO_BITMAPS & ~V.PROC_UNCONDITIONAL_IO_EXITING) |
      V.PROC_USE_IO_BITMAPS | V.PROC_ACTIVATE_SECONDARY_CONTROLS) |
    (msrBitmaps ? V.PROC_USE_MSR_BITMAPS : 0));
  if (tprShadow) {
    // The entry checks made sure the page is L1 RAM (ctls.virtual-apic.ram).
    vmx.vmwrite(V.VIRTUAL_APIC_ADDRESS, guestmem.hpa(state.get(n, V.VIRTUAL_APIC_ADDRESS), 4096));
    vmx.vmwrite(V.TPR_THRESHOLD, state.get(n, V.TPR_THRESHOLD));
  }
  s.proc02 = proc02;
  vmx.vmwrite(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, proc02);
  // Secondary: L0's EPT, and VPID when L0 has it; L0's unrestricted guest
  // only as vmcs12 asks (realCr0). No VMCS shadowing, neither L0's (it
  // serves L1's VMREAD/VMWRITE, shadow.ts) nor vmcs12's: L2's VMREAD/VMWRITE
  // must exit to L0, which does what vmcs12's bitmaps and shadow VMCS say
  // (shadow12.ts).
  // VPID: L2 runs with L0's VPID for it (L2_VPID) whenever L0 uses VPID,
  // whatever vmcs12 says; vmcs12's setting decides the flushes (vpid.ts).
  // The instruction enables (RDTSCP, INVPCID, ...) are vmcs12's alone: with
  // one 0 the instruction must #UD in L2 (26.3) whatever L0 gives L1.
  // PML: L0 logs for L1 (eptad.ts), not the processor.
  // "Virtualize x2APIC mode" is vmcs12's alone (L0's own for L1 would
  // virtualize L2's x2APIC MSRs on vmcs12's page when L1 did not ask:
  // L0_APIC_VIRTUALIZATION): setupX2apicMsrs.
  setupX2apicMsrs(n, s, proc2_12, msrBitmaps);
  // "Virtualize APIC accesses" is vmcs12's (L0 does not use it for L1): L2's
  // accesses whose physical address is the APIC-access page's (after L0's
  // EPT, or the shadow EPT composing L1's) are virtualized or exit to L1
  // (29.4), so vmcs02 names that page at its host-physical address (the
  // entry checks made sure it is L1 RAM: ctls.apic-access.ram).
  // Without EPT in vmcs12, vmcs02 runs on L0's EPT, which maps L1's APIC
  // page to L0's APIC-access page when L0 virtualizes L1's APIC
  // (vm/apicv.ts): vmcs02 then names that page itself, without TPR shadow
  // every L2 access to it is an APIC-access exit (29.4), and L0 performs it
  // on L1's APIC (reflect-decide.ts). (Not with vmcs12's "virtualize x2APIC
  // mode", which excludes it (27.2.1.1); an L1 that virtualizes APIC accesses
  // at another address, or x2APIC mode, for such an L2 leaves L1's APIC page
  // as plain memory for L2: not supported with apicv=on; guest-interface.md.)
  let proc2_02 = (s.proc2_01 & ~(V.PROC2_UNRESTRICTED_GUEST | V.PROC2_VMCS_SHADOWING | l1caps.PROC2_INSTRUCTION_ENABLES | L0_APIC_VIRTUALIZATION | V.PROC2_PAUSE_LOOP_EXITING)) |
    (proc2_12 & ~(V.PROC2_ENABLE_VPID | V.PROC2_ENABLE_PML | V.PROC2_VMCS_SHADOWING));
  if ((proc2_12 & V.PROC2_VIRTUALIZE_APIC_ACCESSES) != 0) {
    vmx.vmwrite(V.APIC_ACCESS_ADDRESS, guestmem.hpa(state.get(n, V.APIC_ACCESS_ADDRESS), 4096));
  } else if ((proc2_12 & (V.PROC2_ENABLE_EPT | V.PROC2_VIRTUALIZE_X2APIC_MODE)) == 0 && vcpu.vm.apicv) {
    proc2_02 |= V.PROC2_VIRTUALIZE_APIC_ACCESSES;
    vmx.vmwrite(V.APIC_ACCESS_ADDRESS, vcpu.vm.apicAccessPage);
  }
  vmx.vmwrite(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, proc2_02);
  // Virtual-interrupt delivery is vmcs12's too (L0 does not use it for
  // L2): vmcs02's EOI-exit bitmap is exactly vmcs12's — never L0's own for
  // L1, which belongs in vmcs01 (seeds/001) — and L2's RVI/SVI are vmcs12's
  // guest interrupt status (29.1.1, 29.2).
  if ((proc2_12 & V.PROC2_VIRTUAL_INTERRUPT_DELIVERY) != 0) {
    vmx.writefields(eoiList.ptr, eoiList.count, n.vmcs12, eoiList.all);
  }
  // PAUSE-loop exiting in vmcs02 is only ever L1's (L0's, for L1's vCPUs
  // sharing the processor, is vmcs01's alone, masked above): its gap and
  // window are vmcs12's (25.6.13).
  if ((proc2_12 & V.PROC2_PAUSE_LOOP_EXITING) != 0) {
    vmx.vmwrite(V.PLE_GAP, state.get(n, V.PLE_GAP));
    vmx.vmwrite(V.PLE_WINDOW, state.get(n, V.PLE_WINDOW));
  }
  vmx.vmwrite(V.VM_EXIT_CONTROL, s.exit01);
  // Entry: L0 always loads EFER, PAT and the debug controls into L2
  // (computed in merge() when L1 does not ask for them: L1's current
  // values, 27.3.2.1), IA-32e mode guest as vmcs12 says.
  vmx.vmwrite(V.VM_ENTRY_CONTROL,
    (s.entry01 & ~V.ENTRY_IA32E_MODE_GUEST) | (entry12 & (V.ENTRY_IA32E_MODE_GUEST | V.ENTRY_LOAD_DEBUG_CONTROLS)));

  mergeCr3Targets(n, proc01);

  vmx.vmwrite(V.EXCEPTION_BITMAP, state.get(n, V.EXCEPTION_BITMAP));
  vmx.vmwrite(V.PAGE_FAULT_ERROR_CODE_MASK, state.get(n, V.PAGE_FAULT_ERROR_CODE_MASK));
  vmx.vmwrite(V.PAGE_FAULT_ERROR_CODE_MATCH, state.get(n, V.PAGE_FAULT_ERROR_CODE_MATCH));
  const tsc12 = (proc12 & V.PROC_USE_TSC_OFFSETTING) != 0 ? state.get(n, V.TSC_OFFSET) : 0;
  tsc.setL2Part(vcpu, tsc12);
  vmx.vmwrite(V.TSC_OFFSET, s.tscOffset01 + tsc12);

  // CR0/CR4 (25.6.6): see the comment at the top.
  const cr0Mask12 = state.get(n, V.CR0_GUEST_HOST_MASK);
  const cr4Mask12 = state.get(n, V.CR4_GUEST_HOST_MASK);
  const cr0_12 = state.get(n, V.GUEST_CR0);
  const cr4_12 = state.get(n, V.GUEST_CR4);
  vmx.vmwrite(V.CR0_GUEST_HOST_MASK, s.cr0Mask01 | cr0Mask12);
  vmx.vmwrite(V.CR4_GUEST_HOST_MASK, s.cr4Mask01 | cr4Mask12);
  vmx.vmwrite(V.CR0_READ_SHADOW, (state.get(n, V.CR0_READ_SHADOW) & cr0Mask12) | (cr0_12 & ~cr0Mask12));
  vmx.vmwrite(V.CR4_READ_SHADOW, (state.get(n, V.CR4_READ_SHADOW) & cr4Mask12) | (cr4_12 & ~cr4Mask12));
  vmx.vmwrite(V.GUEST_CR0, realCr0(n, cr0_12));
  vmx.vmwrite(V.GUEST_CR4, (cr4_12 | caps.cr4Fixed0) & caps.cr4Guest());

  // The guest-state area, and the event L1 injects into L2 (26.6).
  vmx.writefields(guestList.ptr, guestList.count, n.vmcs12, guestList.all);
  vmx.writefields(hotList.ptr, hotList.count, n.vmcs12, hotList.all);
  return reload12;
}

// CR3 targets (25.6.7, 26.1.3): vmcs12's count and values, so that L2's
// MOV to CR3 of a target value does not exit, as on L1's processor. The
// offered count never exceeds the processor's (caps.ts), so these fields
// exist in vmcs02 too, and the entry checks bounded the count. Should L0
// ever load-exit CR3 for itself, it needs every MOV to CR3: count 0.
function mergeCr3Targets(n: Nested, proc01: u32): void {
  const count: u32 = (proc01 & V.PROC_CR3_LOAD_EXITING) != 0 ? 0 : <u32>state.get(n, V.CR3_TARGET_COUNT);
  vmx.vmwrite(V.CR3_TARGET_COUNT, count);
  for (let i: u32 = 0; i < count; i++) {
    const enc = V.CR3_TARGET_VALUE0 + 2 * i;
    vmx.vmwrite(enc, state.read(n, enc));
  }
}

