// A vCPU's nested-VMX part (design.md, "The state model"): what L1's VMX
// operation has — VMXON pointer, current vmcs12 and its cache, vmcs02,
// shadow VMCS, shadow-EPT roots, VPID state. Part of its Vcpu object (or
// alone, as a scratch object to validate a vmcs12 from a snapshot: see
// create() and entry-checks.checkAll).
//
//   +0         the fields below (at most FIELDS_BYTES)
//   +V02_AT    the objects of nestcore's modules, embedded (vmcs02 ...
//   ...        counts: the getters below)
//   +CACHE_AT  the cache of the current vmcs12: V.VMCS12_PAGE_SIZE bytes in
//              the private layout of kernel/arch/vmx.ts (vmcs12Offset(enc),
//              derived from the field table, tools/vmx/table.mjs), the very
//              bytes L1's VMCS region in its memory holds when the vmcs12
//              is not current (state.ts: header, then the field slots). A
//              snapshot copies it as it is (the `vmcs12` address,
//              VMCS12_PAGE_SIZE bytes); a restore copies a blob's vmcs12
//              into a scratch Nested and validates it there with
//              entry-checks.checkAll before using it.
//   NESTED_BYTES in all.
//
// The cache and the hot objects are part of the block so that reaching them
// is an add to the Nested pointer, not a load of a pointer field: every load
// is bounds-checked (wasm2c), and nested entries and exits read and write
// dozens of these fields (a pointer field per object cost the L2 CPUID
// round trip about 150 ticks).
//
// Objects that other modules add as pointer fields are made by the ordinary
// constructor (their field initializers), once per Nested, never on the
// exit path; clear() resets everything.
import * as V from "../arch/vmx";
import * as state from "./state";
import { Vmcs02State } from "./vmcs02";
import { ShadowState } from "./shadow";
import { HostStaging } from "./hoststate";
import { EntryState } from "./entry-checks";
import { EntryCheck } from "./entry-checks-env";
import { Operand } from "./operand";
import { MsrCarry } from "./msrlists";
import { L2Counts } from "./reflect";
import * as shadowept from "./shadowept";
import { ShadowEpt } from "./shadowept";
import * as vpid from "./vpid";

const INVALID: u64 = state.INVALID;
const FIELDS_BYTES: usize = 192;
// The embedded objects, each 8-byte aligned, one after another.
const V02_AT: usize = FIELDS_BYTES;
const SHADOW_AT: usize = V02_AT + ((offsetof<Vmcs02State>() + 7) & ~7);
const HOST_AT: usize = SHADOW_AT + ((offsetof<ShadowState>() + 7) & ~7);
const ENTRY_AT: usize = HOST_AT + ((HostStaging.BYTES + 7) & ~7);
const CHECK_AT: usize = ENTRY_AT + ((offsetof<EntryState>() + 7) & ~7);
const OPERAND_AT: usize = CHECK_AT + ((offsetof<EntryCheck>() + 7) & ~7);
const CARRY_AT: usize = OPERAND_AT + ((offsetof<Operand>() + 7) & ~7);
const COUNTS_AT: usize = CARRY_AT + ((offsetof<MsrCarry>() + 7) & ~7);
const CACHE_AT: usize = (COUNTS_AT + L2Counts.BYTES + 63) & ~63;
export const NESTED_BYTES: usize = CACHE_AT + <usize>V.VMCS12_PAGE_SIZE;

@unmanaged export class Nested {
  // ---- nestcore: L1's VMX operation and its vmcs12, vmcs02, shadow VMCS
  // (state.ts, vmcs02.ts, shadow.ts, hoststate.ts, entry-checks.ts,
  // common.ts, operand.ts, msrlists.ts, reflect.ts, launch.ts).
  enabled: bool = false; // nested=on for this guest: VMX offered, its instructions emulated
  // The VM's hyperv=on (vm.hvOffered), copied at set-up (install.ts setUp):
  // L1 is offered only the controls the enlightened VMCS v1 can express
  // (caps.ts EVMCS1_*_HIDDEN), in its capability MSRs and its entry checks.
  hvOffered: bool = false;
  vmxOn: bool = false; // L1 executed VMXON
  inL2: bool = false; // L2 is running (vmcs02 is current on the processor)
  vmxonPtr: u64 = INVALID; // guest-physical
  current: u64 = INVALID; // guest-physical address of the current vmcs12
  // What changed in the cached vmcs12 (state.ts, one word: dirty, stale,
  // hotStale, hostStale): since the entry checks last passed, since
  // vmcs02 last received it, since hoststate.ts last staged L1's post-exit
  // state.
  changes: u32 = 0;
  // guestsync.ts: vmcs02 holds L2's rare guest-state fields newer than
  // the cache's (the last reflected exit read only the hot ones).
  rareUnsynced: bool = false;
  // shadow.ts: the entries of guestsync.ts's guest-state and exit-
  // information lists that the reflected exits since the last push changed
  // in the cache (the shadow VMCS still has the old values).
  shadowGuestStale: u64 = 0;
  shadowExitStale: u64 = 0;
  // ---- end nestcore

  // ---- L2's EPT, TLB tags, VM functions, interrupts and timers ----------
  // Scalars are fields here rather than in an object per module: the exit
  // path reads them, and a field of a sub-object is one more bounds-checked
  // load on every L2 exit. The module that owns each one is named.
  shadowEpt: ShadowEpt = shadowept.create(); // shadowept.ts: roots (rebuildable cache) and their counts
  ptimerDeadline: u64 = 0; // ptimer.ts: when L1's timer for L2 runs out, absolute (TSC >> rate)
  irqTimer: u64 = 0; // l2irq.ts: vmcs02's VMX-preemption timer value: rebuildable cache
  irqWindow: bool = false; // l2irq.ts: interrupt-window exiting L0 set in vmcs02: rebuildable cache
  vpid12: u64 = vpid.NONE; // vpid.ts: vmcs12's VPID at the last nested entry
  // Statistics of the guest.
  eptExitsReflected: u64 = 0; // eptfault.ts: EPT violations/misconfigurations given to L1
  vmfuncSwitches: u64 = 0; // vmfunc.ts: EPTP switches emulated
  vmfuncReflected: u64 = 0; // vmfunc.ts: VMFUNC exits given to L1
  // evmcs.ts: guest-physical address of the enlightened VMCS whose fields
  // the vmcs12 cache holds (hyperv=on), or INVALID.
  evmcs: u64 = INVALID;
  // evmcs-restore.ts: restored from a snapshot taken while L2 ran from that
  // eVMCS, not yet checked against the VP assist page and written
  // (snapshot/restore.ts maps it at the end of the restore).
  evmcsToMap: bool = false;
  // evmcs.ts: that eVMCS's EnlightenmentsControl as last read (its clean
  // group is honoured like the others'), and for the enlightened MSR
  // bitmap the nested-entry count (counts.launches) before the last entry
  // that merged L1's MSR bitmap into vmcs02's, INVALID when none did: the
  // merge is skipped only after one such entry completed.
  evmcsEnlightenments: u32 = 0;
  evmcsBitmapMerged: u64 = INVALID;

  // The embedded objects (see the top).
  @inline get vmcs02(): Vmcs02State { // vmcs02.ts: a rebuildable cache (+ its page)
    return changetype<Vmcs02State>(changetype<usize>(this) + V02_AT);
  }
  @inline get shadow(): ShadowState { // shadow.ts: the shadow VMCS (+ its page)
    return changetype<ShadowState>(changetype<usize>(this) + SHADOW_AT);
  }
  @inline get host(): HostStaging { // hoststate.ts: a rebuildable cache
    return changetype<HostStaging>(changetype<usize>(this) + HOST_AT);
  }
  @inline get entry(): EntryState { // entry-checks.ts: what the last pass proved
    return changetype<EntryState>(changetype<usize>(this) + ENTRY_AT);
  }
  @inline get check(): EntryCheck { // entry-checks-env.ts: VMLAUNCH/VMRESUME's checks, their outcome
    return changetype<EntryCheck>(changetype<usize>(this) + CHECK_AT);
  }
  @inline get operand(): Operand { // operand.ts: the operand of the instruction being emulated
    return changetype<Operand>(changetype<usize>(this) + OPERAND_AT);
  }
  @inline get msrCarry(): MsrCarry { // msrlists.ts: what a failed entry list leaves L1
    return changetype<MsrCarry>(changetype<usize>(this) + CARRY_AT);
  }
  @inline get counts(): L2Counts { // reflect.ts: statistics
    return changetype<L2Counts>(changetype<usize>(this) + COUNTS_AT);
  }
  // The vmcs12 cache (see the top).
  @inline get vmcs12(): usize {
    return changetype<usize>(this) + CACHE_AT;
  }

  // A Nested made in the NESTED_BYTES at p (a Vcpu's, or its own block).
  // The ordinary constructor makes the fields and pointer-field objects;
  // they move to p (the constructor's own block is left behind: the stub
  // runtime does not free, and this happens once per object, never on the
  // exit path).
  static at(p: usize): Nested {
    const made = new Nested();
    memory.fill(p, 0, NESTED_BYTES);
    memory.copy(p, changetype<usize>(made), offsetof<Nested>());
    const n = changetype<Nested>(p);
    n.vmcs02.init();
    n.check.init(n);
    n.clear();
    return n;
  }
  // A Nested of its own (a scratch one for a restore to validate in).
  static create(): Nested {
    return Nested.at((heap.alloc(NESTED_BYTES + 64) + 63) & ~(<usize>63));
  }

  // Back to the state of a vCPU that never executed VMXON, nested=off.
  // The pages the objects own stay with them.
  clear(): void {
    this.enabled = false;
    this.hvOffered = false;
    this.vmxOn = false;
    this.inL2 = false;
    this.rareUnsynced = false;
    this.shadowGuestStale = 0;
    this.shadowExitStale = 0;
    this.vmxonPtr = INVALID;
    this.current = INVALID;
    state.markAllDirty(this);
    memory.fill(this.vmcs12, 0, V.VMCS12_PAGE_SIZE);
    this.vmcs02.clear();
    this.shadow.clear();
    this.host.clear();
    this.entry.clear();
    this.check.start(this);
    this.operand.clear();
    this.msrCarry.clear();
    this.counts.clear();
    shadowept.clear(this.shadowEpt);
    this.ptimerDeadline = 0;
    this.irqTimer = 0;
    this.irqWindow = false;
    this.vpid12 = vpid.NONE;
    this.eptExitsReflected = 0;
    this.vmfuncSwitches = 0;
    this.vmfuncReflected = 0;
    this.evmcs = INVALID;
    this.evmcsToMap = false;
    this.evmcsEnlightenments = 0;
    this.evmcsBitmapMerged = INVALID;
  }

  // The statistics of the run (the guest's report) from the Nested this
  // one replaces (a restore makes a fresh vCPU: snapshot/restore.ts). Only
  // counters: nothing architectural or cached.
  takeStatistics(a: Nested): void {
    this.eptExitsReflected = a.eptExitsReflected;
    this.vmfuncSwitches = a.vmfuncSwitches;
    this.vmfuncReflected = a.vmfuncReflected;
    memory.copy(changetype<usize>(this.counts), changetype<usize>(a.counts), L2Counts.BYTES);
    const e = this.entry;
    const f = a.entry;
    e.full = f.full;
    e.whole = f.whole;
    e.failedControlsHost = f.failedControlsHost;
    e.failedGuest = f.failedGuest;
    e.unfinished = f.unfinished;
    this.vmcs02.constantWrites = a.vmcs02.constantWrites;
    this.vmcs02.wholeMerges = a.vmcs02.wholeMerges;
    this.shadow.pushes = a.shadow.pushes;
    this.shadow.pulls = a.shadow.pulls;
    this.host.stagings = a.host.stagings;
    shadowept.copyStatistics(this.shadowEpt, a.shadowEpt);
  }

  // The shadow EPT of the Nested this one replaces, when L1's memory is
  // what it was built from (snapshot=N: snapshot/restore.ts), so that L2
  // does not fault its working set in again after every restore: a cache,
  // but one whose rebuilding takes L2 many exits. The two swap tables; a
  // keeps the statistics too, which takeStatistics copies back.
  takeShadowEpt(a: Nested): void {
    const mine = this.shadowEpt;
    this.shadowEpt = a.shadowEpt;
    a.shadowEpt = mine;
    shadowept.copyStatistics(mine, this.shadowEpt);
  }

  // What the vCPU holds outside the object goes back: the shadow EPT tables
  // to the page allocator. Before the Vcpu object is recycled.
  release(): void {
    shadowept.dropAll(this.shadowEpt);
  }
}

// The fields must end below the embedded objects.
if (offsetof<Nested>() > FIELDS_BYTES) unreachable();
