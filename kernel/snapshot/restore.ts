// Making a vCPU from a snapshot blob (docs/snapshot.md "Restore, in order"):
// the whole blob is validated first (validate.ts, against this machine's
// Limits); a rejected blob is reported with the rule it breaks and nothing
// changes. Otherwise a fresh Vcpu object gets a fresh vmcs01 (vm/vmcs01.ts,
// as at guest set-up) and every saved field, MSR, APIC register, timer,
// debug register and the extended state; the old vCPU's VMCS is VMCLEARed
// (a VMCS region is not reused while active, SDM Vol. 3C 25.11.1) and the
// object given back, and the new one takes its place in the VM.
//
// What the new vCPU takes from the one it replaces rather than from the
// blob, being the run's and not the guest's: the exit count, the max-ticks=
// budget, the TSC offset (L1's TSC never goes back: TIMERS), and L0's own
// choices in vmcs01 (the EPT pointer, VPID). The rebuildable rest (interrupt
// window, preemption-timer slice) is rebuilt by vmcs01.create and the next
// irq.deliver.
//
// The nested part (restoreNested): L1's VMX operation, its current vmcs12
// (the cache, every change class marked changed, L0's shadow VMCS pushed
// from it), and with GUEST_MODE L2 entered again from a rebuilt vmcs02
// (nested/resume.ts). The old vCPU's nested VMCSs are cleared before its
// object goes (vm/nesting.ts leaveCpu, as vm/migrate.ts does).
//
// A hyperv=on guest's synthetic MSRs (restoreHyperv), after the nested part:
// with an eVMCS in use while L2 ran, the eVMCS is mapped once both are back
// (mapEvmcs, nested/evmcs-restore.ts; seed 000).
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as config from "../vm/config";
import * as vcpus from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as vmcs01 from "../vm/vmcs01";
import * as xstate from "../vm/xstate";
import * as irq from "../vm/irq";
import * as msrExit from "../vm/exit/msr";
import * as nesting from "../vm/nesting";
import * as guestmem from "../vm/guestmem";
import * as apicv from "../vm/apicv";
import * as state from "../nested/state";
import * as shadow from "../nested/shadow";
import * as ptimer from "../nested/ptimer";
import * as resume from "../nested/resume";
import * as evmcsRestore from "../nested/evmcs-restore";
import * as caps from "../vmx/caps";
import { Reader } from "./blob";
import { Limits, fill } from "./limits";
import * as R from "./rules";
import { Verdict } from "./rules";
import { validate } from "./validate";
import { sectionOffset } from "./find";
import { VMCS01_LIST, vmcs01Mask } from "./save";
import * as ram from "./vmram";
import * as events from "../vm/events";

const NONE: u64 = u64.MAX_VALUE;

// How the timers go on (docs/snapshot.md "TIMERS").
export const KEEP_DEADLINES: i32 = 0; // snapshot=N, a move: each deadline keeps its value of L1's TSC
export const GUEST_RESTORE: i32 = 1; // the restore hypercall: deadlines move by the time since the snapshot, and the RAM goes back

// Validation's inputs and outputs, made once (the stub runtime does not
// free; restore runs on the exit path).
const reader = new Reader(); // machine-wide: scratch
const verdict = new Verdict(); // machine-wide: the last restore's verdict (scratch)
const limits = new Limits(); // machine-wide: this machine's limits for the running guest
let limitsGuest: i32 = -1; // machine-wide: which guest= entry `limits` was filled for
const found = new StaticArray<u64>(1); // machine-wide: scratch of evmcsRestore.mapRestored

// The order the sections are loaded in is this file's; the nested part
// must not depend on it (seed 000: KVM's VMM may set the nested state before
// the VP assist page MSR). NESTED comes first, then HYPERV, as the blob holds
// them; the unit tests also load HYPERV first and check the same outcome.
let hypervFirst: bool = false; // test hooks only: HYPERV loaded before NESTED (tests/unit/snapshot-evmcs.test.ts)
export function setHypervFirst(first: bool): void {
  hypervFirst = first;
}

// The last rejection's rule (R.OK after an accepted blob), for callers
// that report it.
export function lastRule(): u32 {
  return verdict.rule;
}

// Is the blob one restore may load into vCPU `old`'s place? Prints the
// verdict when not.
export function check(old: Vcpu, blob: usize, len: u64): bool {
  const vm = old.vm;
  if (limitsGuest != vm.guest) {
    fill(limits, vm, old.index, load<u32>(old.fxArea() + 28));
    limitsGuest = vm.guest;
  }
  limits.vcpu = old.index;
  if (validate(blob, len, limits, verdict, reader) != R.OK) {
    R.report(verdict);
    return false;
  }
  return true;
}

// The old vCPU's VMCSs given up on this processor (a VMCS region is not
// reused while active, 25.11.1): nested VMX's (vm/nesting.ts leaveCpu, as
// vm/migrate.ts does) and vmcs01.
function leaveProcessor(old: Vcpu, moving: bool): bool {
  if (!nesting.leaveCpu(old)) return false;
  if (vmx.vmclear(old.vmcs) != vmx.VMX_SUCCEED) return false;
  old.setLaunched(false);
  return true;
}

// The blob [blob, blob + len) into a new vCPU that takes old's place in its
// VM (vm.vcpu0); old's vmcs01 is current. kind: KEEP_DEADLINES or
// GUEST_RESTORE. toCpu: the processor to continue on (-1: this one). Returns
// the new vCPU, or null: after a rejection (reported; old unchanged and
// still current) or when the processor or memory failed the new one
// (reported; the guest cannot go on).
// since: with KEEP_DEADLINES, the host TSC when the snapshot began (0: not
// known): L1's TSC stands still from then until the new vCPU runs, as for a
// paused VM, so that snapshot=N's own time is not the guest's (its timers
// would otherwise fire early by the cost of each cycle, which a guest that
// times its own code notices).
export function restore(old: Vcpu, blob: usize, len: u64, kind: i32, toCpu: i32, since: u64 = 0): Vcpu | null {
  if (!check(old, blob, len)) return null;
  const r = reader; // check() opened it on the blob
  const vm = old.vm;
  // What the new vCPU keeps of the old one (see the head of this file),
  // from vmcs01: while L2 runs vmcs02 is current, whose EPT pointer is
  // L2's shadow EPT and whose TSC offset adds vmcs12's.
  if (old.nested.inL2 && vmx.vmptrld(old.vmcs) != vmx.VMX_SUCCEED) {
    print.say("snapshot: VMPTRLD of the old vCPU's vmcs01 failed");
    return null;
  }
  const eptp = vmx.vmread(V.EPT_POINTER);
  const offset = vmx.vmread(V.TSC_OFFSET) + (old.nested.inL2 ? old.tsc.pendingL1 : 0); // (save.ts)
  const budget = old.irq.budgetEnd;
  const exits = old.exits;
  if (kind == GUEST_RESTORE) ram.restore(vm);

  const from = cpu.index();
  const moving = toCpu >= 0 && <u32>toCpu != from && <u32>toCpu < cpu.count();
  if (!leaveProcessor(old, moving)) {
    print.say("snapshot: VMCLEAR of the old vCPU's VMCS failed");
    return null;
  }
  let moved = false;
  if (moving) {
    moved = cpu.migrate(<u32>toCpu);
    if (!moved) {
      print.str("hv: snapshot: processor ");
      print.dec(<u32>toCpu);
      print.str(" is not running");
      print.nl();
    }
  }
  // This processor may cache translations of the guest's EPT from when
  // the vCPU last ran here, older than the RAM snapshot's cleared flags
  // (vm/migrate.ts, 29.4.3.1).
  if (moved && (caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);

  const v = vcpus.create(vm, old.index);
  // (The entry RIP 0: RIP comes with the other guest-state fields.)
  if (!vmcs01.create(v, eptp, 0, config.vpid[vm.guest])) {
    print.say("snapshot: the restored vCPU's VMCS could not be made");
    vcpus.destroy(v);
    return null;
  }
  // The new vCPU's nested part as at guest set-up (VMX offered or not, the
  // shadow VMCS's bitmaps in vmcs01, not linked: outside VMX operation
  // there is no vmcs12; the RAM snapshot's link to its shadow EPT).
  if (!nesting.start(v, config.nested[vm.guest], config.shadowVmcs[vm.guest])) {
    print.say("snapshot: the restored vCPU's nested part could not be made");
    vcpus.destroy(v);
    return null;
  }
  // snapshot=N leaves L1's memory as it was: L2's shadow EPT stays valid.
  // A guest-requested restore puts memory back: the new vCPU's is empty.
  if (kind == KEEP_DEADLINES) v.nested.takeShadowEpt(old.nested);
  const now = cpu.rdtsc();
  if (!loadAll(v, r, kind, offset, now)) {
    print.say("snapshot: L2 could not be entered again (out of memory for vmcs02 or its EPT tables)");
    vcpus.destroy(v);
    return null;
  }
  // Now that every section is back (the VP assist page MSR and, for the
  // hypercall, the RAM), and before L2 runs or an exit reaches L1: the
  // eVMCS L2 ran from (nested/evmcs-restore.ts).
  if (v.nested.evmcsToMap && !mapEvmcs(v)) {
    vcpus.destroy(v);
    return null;
  }
  v.setExits(exits);
  v.irq.budgetEnd = budget;
  carryStatistics(old, v);
  ram.newVcpu(vm, v);
  vcpus.destroy(old);
  vm.vcpu0 = v;
  // Last, so that the whole cycle is hidden (wrapping arithmetic: another
  // processor's TSC may be behind this one's).
  if (kind == KEEP_DEADLINES && since != 0) resumeClock(v, cpu.rdtsc() - since);
  return v;
}

// L1's clock stood still for `ticks` of host TSC: its TSC offset (vmcs01's;
// while L2 runs, vmcs02's at once and vmcs01's through vm/tsc.ts pendingL1
// at the exit to L1), the APIC timer and L1's preemption timer for L2 move
// on by that much. The current VMCS is the one the vCPU runs next.
function resumeClock(v: Vcpu, ticks: u64): void {
  vmcs01.writeControl(V.TSC_OFFSET, vmx.vmread(V.TSC_OFFSET) - ticks);
  v.apic.pause(ticks);
  const n = v.nested;
  if (!n.inL2) return;
  v.tsc.pendingL1 -= ticks;
  n.ptimerDeadline += ticks >> ptimer.rate();
}

// The eVMCS of a GUEST_MODE | EVMCS blob, checked against the restored VP
// assist page and written; false (reported, naming the guest and why) when
// it cannot be: the blob's nested state and L1's memory or MSRs do not fit
// together, and the guest cannot go on as the snapshot had it (the caller
// stops it, as for a snapshot that cannot be restored).
function mapEvmcs(v: Vcpu): bool {
  const why = evmcsRestore.mapRestored(v, found);
  if (why == evmcsRestore.MAPPED) return true;
  print.str("hv: snapshot: guest ");
  print.dec(<u32>v.vm.guest + 1);
  print.str(": the eVMCS L2 ran from cannot be mapped after the restore: ");
  evmcsRestore.describe(why, found[0], v.nested.evmcs);
  print.nl();
  return false;
}

// The Hyper-V interface's state (HYPERV; a guest with hyperv=on): the
// partition's MSRs into the Vm, the VP assist page into the vCPU
// (vm/exit/hyperv.ts keeps them there). The hypercall page is not written
// again: it is the guest's RAM, which holds it (or, after the guest changed
// it, what the guest wrote).
function restoreHyperv(v: Vcpu, r: Reader): void {
  const h = sectionOffset(r, V.SNAP_SEC_HYPERV);
  if (h == NONE) return;
  const vm = v.vm;
  vm.hvGuestOsId = r.u64(h + V.SNAP_HYPERV_GUEST_OS_ID);
  vm.hvHypercall = r.u64(h + V.SNAP_HYPERV_HYPERCALL);
  vm.hvTscInvariantControl = r.u64(h + V.SNAP_HYPERV_TSC_INVARIANT_CONTROL);
  v.hv.vpAssistPage = r.u64(h + V.SNAP_HYPERV_VP_ASSIST_PAGE);
}

// The statistics a vCPU keeps are the run's, reported when the guest ends:
// the new vCPU goes on counting from the old one's.
function carryStatistics(from: Vcpu, to: Vcpu): void {
  to.apic.ipisDropped = from.apic.ipisDropped;
  to.apic.ipisDelivered = from.apic.ipisDelivered;
  to.nested.takeStatistics(from.nested);
}

// Every section of the validated blob in r into v (fresh, its vmcs01
// current; vmcs02 current after, when L2 runs). offset: the TSC offset the
// VM runs with; now: host TSC. False when L2 could not be entered again.
function loadAll(v: Vcpu, r: Reader, kind: i32, offset: u64, now: u64): bool {
  // REGS: the block; launch state clear (a fresh VMCS), the exit count the
  // caller's.
  memory.copy(v.regs, r.at(sectionOffset(r, V.SNAP_SEC_REGS)), V.REGS_BYTES);
  v.setLaunched(false);

  // VMCS01: every guest-state field in one call, then what VM exits keep
  // equal to the guest state and the new vmcs01 does not: "IA-32e mode
  // guest" = IA32_EFER.LMA (SDM Vol. 3C 28.2).
  vmx.writefields(changetype<usize>(VMCS01_LIST), V.SNAP_VMCS01_FIELD_COUNT, r.at(sectionOffset(r, V.SNAP_SEC_VMCS01)), vmcs01Mask());
  const entry = <u32>vmx.vmread(V.VM_ENTRY_CONTROL) & ~V.ENTRY_IA32E_MODE_GUEST;
  const lma = (vmx.vmread(V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0;
  vmcs01.writeControl(V.VM_ENTRY_CONTROL, entry | (lma ? V.ENTRY_IA32E_MODE_GUEST : 0));

  const ev = sectionOffset(r, V.SNAP_SEC_EVENTS);
  events.writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, r.u32(ev + V.SNAP_EVENTS_L1_INFO));
  events.writeEntryEvent(V.VM_ENTRY_EXCEPTION_ERROR_CODE, r.u32(ev + V.SNAP_EVENTS_L1_ERROR));
  events.writeEntryEvent(V.VM_ENTRY_INSTRUCTION_LENGTH, r.u32(ev + V.SNAP_EVENTS_L1_LENGTH));
  // The NMI the vCPU had taken waits for L1 again (vm/irq.ts deliver).
  if (r.u32(ev + V.SNAP_EVENTS_NMI_PENDING) != 0) irq.pendNmi(v);

  // MSRS: the pass-through ones onto this processor, the rest into the
  // emulation.
  const m = sectionOffset(r, V.SNAP_SEC_MSRS);
  for (let i: u32 = 0; i < V.SNAP_MSR_COUNT; i++) {
    const p = m + <u64>i * V.SNAP_PAIR_BYTES;
    const msr = r.u32(p + V.SNAP_PAIR_KEY);
    const value = r.u64(p + V.SNAP_PAIR_VALUE);
    if (msr == V.MSR_IA32_FEATURE_CONTROL) v.msrs.featureControl = value;
    else if (msr == V.MSR_IA32_TSC_ADJUST) v.tsc.adjust = value;
    else if (msr == V.MSR_IA32_MTRR_DEF_TYPE) v.msrs.mtrrDefType = value;
    else {
      const f = msrExit.fixedMtrr(msr);
      if (f >= 0) store<u64>(v.msrs.mtrrFixed(f), value);
      else cpu.wrmsr(msr, value);
    }
  }

  // TIMERS: L1's TSC goes on from the VM's (offset); deadlines are L1's TSC
  // values, kept (KEEP_DEADLINES) or moved by the time since the snapshot.
  vmcs01.writeControl(V.TSC_OFFSET, offset);
  const t = sectionOffset(r, V.SNAP_SEC_TIMERS);
  const shift = kind == GUEST_RESTORE ? now + offset - r.u64(t + V.SNAP_TIMERS_L1_TSC) : 0;
  const d = r.u64(t + V.SNAP_TIMERS_APIC_DEADLINE);
  const a = sectionOffset(r, V.SNAP_SEC_APIC);
  v.apic.loadRegisters(r.at(a + V.SNAP_APIC_PAGE), r.u64(a + V.SNAP_APIC_BASE), r.u32(a + V.SNAP_APIC_ESR_PENDING),
    d == NONE ? NONE : d + shift - offset, now);
  // vmcs01 (built for an APIC in its reset state) for the restored mode.
  apicv.modeChanged(v);

  const dbg = sectionOffset(r, V.SNAP_SEC_DEBUG);
  cpu.writedr(0, r.u64(dbg + V.SNAP_DEBUG_DR0));
  cpu.writedr(1, r.u64(dbg + V.SNAP_DEBUG_DR1));
  cpu.writedr(2, r.u64(dbg + V.SNAP_DEBUG_DR2));
  cpu.writedr(3, r.u64(dbg + V.SNAP_DEBUG_DR3));
  cpu.writedr(6, r.u64(dbg + V.SNAP_DEBUG_DR6));

  // XSTATE (validated: this processor's size): the area, then onto the
  // processor with the guest's XCR0.
  const x = sectionOffset(r, V.SNAP_SEC_XSTATE);
  if (x != NONE) {
    const xs = v.xstate;
    xs.xcr0 = r.u64(x + V.SNAP_XSTATE_XCR0);
    memory.copy(xs.area, r.at(x + V.SNAP_XSTATE_AREA), xs.areaSize);
    xstate.restore(v);
  }
  if (hypervFirst) restoreHyperv(v, r);
  if (!restoreNested(v, r, shift, offset)) return false;
  if (!hypervFirst) restoreHyperv(v, r);
  return true;
}

// NESTED (docs/snapshot.md "Restore, in order", step 6), vmcs01 current
// and holding L1's state. shift, offset: as for the timers above.
function restoreNested(v: Vcpu, r: Reader, shift: u64, offset: u64): bool {
  const off = sectionOffset(r, V.SNAP_SEC_NESTED);
  if (off == NONE) return true;
  const vmxon = r.u64(off + V.SNAP_NESTED_VMXON);
  if (vmxon == NONE) return true; // never in VMX operation: as vcpus.create made it
  const n = v.nested;
  n.vmxOn = true;
  n.vmxonPtr = vmxon;
  const ptr = r.u64(off + V.SNAP_NESTED_VMCS12);
  if (ptr == NONE) return true;
  // The current vmcs12, as VMPTRLD makes it (vmptr.ts): the cache, all of
  // it changed (the next entry checks and merges everything), and L1's
  // VMREAD/VMWRITE through L0's shadow VMCS.
  memory.copy(n.vmcs12, r.at(sectionOffset(r, V.SNAP_SEC_VMCS12)), <usize>V.VMCS12_PAGE_SIZE);
  const flags = r.u32(off + V.SNAP_NESTED_FLAGS);
  if ((flags & V.SNAP_FLAG_EVMCS) != 0) {
    // A copy of the eVMCS at ptr (nested/evmcs.ts: no VMPTRLD'ed VMCS is
    // current, so L0's shadow VMCS stays unlinked: shadow.push below does
    // nothing). Nothing here reads the VP assist page, which may not be
    // restored yet: with GUEST_MODE the eVMCS is mapped at the end of the
    // restore (evmcsToMap); while L1 ran, L1's next enlightened entry reads
    // it as it would have (nested/evmcs-restore.ts).
    n.evmcs = ptr;
    n.evmcsToMap = (flags & V.SNAP_FLAG_GUEST_MODE) != 0;
  } else {
    n.current = ptr;
  }
  state.markAllDirty(n);
  shadow.push(v);
  if ((flags & V.SNAP_FLAG_GUEST_MODE) == 0) return true;

  // L2 runs. The shadow vmcs12 back at its link pointer (RAM restored
  // first, validated to be L1's RAM).
  const sh = sectionOffset(r, V.SNAP_SEC_SHADOW_VMCS12);
  if (sh != NONE) guestmem.copyIn(state.get(n, V.VMCS_LINK_POINTER), r.at(sh), <u32>V.VMCS12_PAGE_SIZE);
  const d = r.u64(off + V.SNAP_NESTED_PREEMPTION_DEADLINE);
  if (!resume.enterRestored(v, d == NONE ? 0 : (d + shift - offset) >> ptimer.rate())) return false;
  // vmcs02 is current: L2's state vmcs12 may not hold, and its pending
  // event (with RUN_PENDING, vmcs12's own injection, validated equal).
  vmx.vmwrite(V.GUEST_IA32_EFER, r.u64(off + V.SNAP_NESTED_L2_EFER));
  vmx.vmwrite(V.GUEST_IA32_PAT, r.u64(off + V.SNAP_NESTED_L2_PAT));
  vmx.vmwrite(V.GUEST_DR7, r.u64(off + V.SNAP_NESTED_L2_DR7));
  vmx.vmwrite(V.GUEST_IA32_DEBUGCTL, r.u64(off + V.SNAP_NESTED_L2_DEBUGCTL));
  const ev = sectionOffset(r, V.SNAP_SEC_EVENTS);
  events.writeEntryEvent(V.VM_ENTRY_INTERRUPTION_INFO, r.u32(ev + V.SNAP_EVENTS_L2_INFO));
  events.writeEntryEvent(V.VM_ENTRY_EXCEPTION_ERROR_CODE, r.u32(ev + V.SNAP_EVENTS_L2_ERROR));
  events.writeEntryEvent(V.VM_ENTRY_INSTRUCTION_LENGTH, r.u32(ev + V.SNAP_EVENTS_L2_LENGTH));
  return true;
}
