// Writing one vCPU's snapshot blob (docs/snapshot.md) from the objects and
// the processor: the register block, vmcs01's guest state, the MSRs no VMCS
// field holds (pass-through ones with RDMSR: the processor has the guest's
// values while the hypervisor runs; emulated ones from vcpu.msrs and
// vcpu.tsc), the local APIC, the pending events, the timers in L1's TSC,
// the debug registers the processor holds, the extended state. Nothing of
// the vCPU changes (the XSAVE of the extended state goes through its own
// area and the guest's XCR0 is put back).
//
// The nested part (docs/snapshot.md "NESTED"): a nested=on guest has a
// NESTED section — VMXON pointer, current vmcs12 pointer, flags, L1's
// preemption timer for L2, L2's EFER/PAT/DR7/DEBUGCTL —, VMCS12 when there
// is a current vmcs12 (the cache, after what L1 wrote through L0's shadow
// VMCS is pulled in, nested/shadow.ts), SHADOW_VMCS12 when L2 runs with
// VMCS shadowing. While L2 runs, vmcs02 is current: L2's state goes into
// vmcs12 first as a VM exit stores it (nested/reflect.ts syncForSnapshot),
// vmcs02's pending event into EVENTS, and vmcs01 is made current for its
// sections and vmcs02 current again at the end. With an enlightened VMCS in
// use the cache is saved the same way, with the EVMCS flag and the eVMCS's
// address. A hyperv=on guest has a HYPERV section: its synthetic MSRs.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as config from "../vm/config";
import * as xstate from "../vm/xstate";
import { Vcpu } from "../vm/vcpu";
import * as msrExit from "../vm/exit/msr";
import * as guestmem from "../vm/guestmem";
import * as print from "../lib/print";
import * as state from "../nested/state";
import * as shadow from "../nested/shadow";
import * as reflect from "../nested/reflect";
import * as guestsync from "../nested/guestsync";
import * as ptimer from "../nested/ptimer";
import * as caps from "../nested/caps";
import * as fieldlist from "../nested/fieldlist";
import { Writer } from "./blob";

const NONE: u64 = u64.MAX_VALUE;

// vmcs01's fields for vmx.readfields/writefields straight into and out of
// the blob's VMCS01 items: a field list (nested/fieldlist.ts) whose entry i
// has the offset of item i's value from the section's start. A value
// narrower than 64 bits fills the low bytes of a slot the Writer zeroed.
export const VMCS01_LIST: StaticArray<u64> = vmcs01List(); // machine-wide: a constant list
function vmcs01List(): StaticArray<u64> {
  const n = <i32>V.SNAP_VMCS01_FIELD_COUNT;
  const l = new StaticArray<u64>(<i32>V.FL_BYTES >> 3);
  for (let i = 0; i < n; i++) fieldlist.fill(changetype<usize>(l), i, V.SNAP_VMCS01_FIELDS[i], <i32>(i * V.SNAP_PAIR_BYTES + V.SNAP_PAIR_VALUE));
  return l;
}
@inline export function vmcs01Mask(): u64 {
  return V.SNAP_VMCS01_FIELD_COUNT >= 64 ? NONE : (<u64>1 << <u64>V.SNAP_VMCS01_FIELD_COUNT) - 1;
}

// What the nested part of a blob is, found before anything is written
// (the section count comes first): L2 runs, and with VMCS shadowing for it
// (25.10: the shadow VMCS vmcs12's link pointer names, which L2's
// VMREAD/VMWRITE use).
function shadowing12(vcpu: Vcpu): bool {
  const n = vcpu.nested;
  const proc = <u32>state.get(n, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
  if ((proc & V.PROC_ACTIVATE_SECONDARY_CONTROLS) == 0) return false;
  return (<u32>state.get(n, V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & V.PROC2_VMCS_SHADOWING) != 0 &&
    state.get(n, V.VMCS_LINK_POINTER) != NONE;
}
function nestedSections(vcpu: Vcpu): u32 {
  if (!config.nested[vcpu.vm.guest]) return 0;
  const n = vcpu.nested;
  if (n.current == state.INVALID && n.evmcs == state.INVALID) return 1;
  return n.inL2 && shadowing12(vcpu) ? 3 : 2;
}

// L2's state that vmcs12 holds only when its exit controls save it (28.3),
// read from vmcs02 (current) before vmcs01 is made current.
const l2Saved = memory.data(32, 8); // machine-wide: scratch of one save()
function captureL2(): void {
  store<u64>(l2Saved, vmx.vmread(V.GUEST_IA32_EFER), 0);
  store<u64>(l2Saved, vmx.vmread(V.GUEST_IA32_PAT), 8);
  store<u64>(l2Saved, vmx.vmread(V.GUEST_DR7), 16);
  store<u64>(l2Saved, vmx.vmread(V.GUEST_IA32_DEBUGCTL), 24);
}

// offset: vmcs01's TSC offset (L1's TSC = host TSC + offset).
function writeNested(vcpu: Vcpu, w: Writer, runPending: bool, offset: u64): void {
  if (!config.nested[vcpu.vm.guest]) return;
  const n = vcpu.nested;
  w.section(V.SNAP_SEC_NESTED);
  const p = w.here();
  w.zeros(V.SNAP_NESTED_BYTES);
  if (w.failed) return;
  let flags: u32 = 0;
  if (n.inL2) flags |= V.SNAP_FLAG_GUEST_MODE | (runPending ? V.SNAP_FLAG_RUN_PENDING : 0);
  // The cache is a copy of the eVMCS an enlightened entry made current
  // (seed 002: not "eVMCS enabled"; an L1 that never entered through one has
  // no EVMCS flag): VMCS12 names the eVMCS (no VMPTRLD'ed VMCS is current
  // then, nested/evmcs.ts).
  const evmcs = n.evmcs != state.INVALID;
  if (evmcs) flags |= V.SNAP_FLAG_EVMCS;
  store<u32>(p, flags, V.SNAP_NESTED_FLAGS);
  store<u64>(p, n.vmxOn ? n.vmxonPtr : NONE, V.SNAP_NESTED_VMXON);
  store<u64>(p, evmcs ? n.evmcs : n.current, V.SNAP_NESTED_VMCS12); // INVALID is all ones: none
  // L1's timer for L2, absolute in L1's TSC (ptimer.ts keeps host TSC
  // >> rate).
  const timer = n.inL2 && ptimer.active(n);
  store<u64>(p, timer ? (n.ptimerDeadline << ptimer.rate()) + offset : NONE, V.SNAP_NESTED_PREEMPTION_DEADLINE);
  if (n.inL2) memory.copy(p + V.SNAP_NESTED_L2_EFER, l2Saved, 32);
  w.end();
  if (n.current == state.INVALID && !evmcs) return;
  w.section(V.SNAP_SEC_VMCS12);
  const page = w.here();
  w.bytes(n.vmcs12, V.VMCS12_PAGE_SIZE);
  // A copy of an eVMCS has no revision identifier of its own (the cache's
  // word is whatever the entry that filled it left, and nothing reads it):
  // ours, so that the same state is the same bytes.
  if (evmcs && !w.failed) store<u32>(page + V.VMCS12_REVISION_ID_OFFSET, caps.REVISION_ID);
  w.end();
  if (!n.inL2 || !shadowing12(vcpu)) return;
  // The shadow vmcs12 is L1's page (L0 keeps no copy, shadow12.ts).
  w.section(V.SNAP_SEC_SHADOW_VMCS12);
  const link = state.get(n, V.VMCS_LINK_POINTER);
  const q = w.here();
  w.zeros(V.VMCS12_PAGE_SIZE);
  if (!w.failed && guestmem.isRam(link, V.VMCS12_PAGE_SIZE)) guestmem.copyOut(q, link, V.VMCS12_PAGE_SIZE);
  w.end();
}

// HYPERV (a guest with hyperv=on): the synthetic MSRs that keep a value
// (vm/exit/hyperv.ts): the partition's, held by the Vm (one vCPU per VM, so
// its blob carries them), and the vCPU's VP assist page.
function writeHyperv(vcpu: Vcpu, w: Writer): void {
  const vm = vcpu.vm;
  if (!vm.hvOffered) return;
  w.section(V.SNAP_SEC_HYPERV);
  w.u64(vm.hvGuestOsId);
  w.u64(vm.hvHypercall);
  w.u64(vm.hvTscInvariantControl);
  w.u64(vcpu.hv.vpAssistPage);
  w.zeros(V.SNAP_HYPERV_BYTES - V.SNAP_HYPERV_RESERVED);
  w.end();
}

// The largest blob this machine's vCPUs make: the buffer size to allocate
// once (nested sections included, so that the nested part fits later).
export function maxBytes(): u64 {
  let n: u64 = 64 + 16 * V.SNAP_MAX_SECTIONS; // header, table, alignment
  n += V.REGS_BYTES + 8;
  n += <u64>V.SNAP_PAIR_BYTES * (V.SNAP_VMCS01_FIELD_COUNT + V.SNAP_MSR_COUNT);
  n += V.SNAP_APIC_BYTES + V.SNAP_EVENTS_BYTES + V.SNAP_TIMERS_BYTES + V.SNAP_DEBUG_BYTES;
  n += <u64>V.SNAP_XSTATE_BYTES + <u64>xstate.areaBytes() + 8;
  n += V.SNAP_NESTED_BYTES + 2 * <u64>V.VMCS12_PAGE_SIZE;
  n += V.SNAP_HYPERV_BYTES;
  return n;
}

// Write vcpu's blob into [base, base + capacity); its size, or 0 when it
// did not fit (or vmcs01 could not be made current). w: the caller's
// Writer. runPending: L1's VMLAUNCH/VMRESUME was emulated on the exit just
// handled and L2 not entered since (RUN_PENDING).
export function save(vcpu: Vcpu, w: Writer, base: usize, capacity: u64, runPending: bool): u64 {
  const n = vcpu.nested;
  const inL2 = n.inL2;
  let l2Info: u32 = 0;
  let l2Error: u32 = 0;
  let l2Length: u32 = 0;
  if (inL2) {
    reflect.syncForSnapshot(vcpu);
    l2Info = <u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO);
    if ((l2Info & V.INTR_INFO_VALID) != 0) {
      l2Error = <u32>vmx.vmread(V.VM_ENTRY_EXCEPTION_ERROR_CODE);
      l2Length = <u32>vmx.vmread(V.VM_ENTRY_INSTRUCTION_LENGTH);
    } else {
      l2Info = 0;
    }
    captureL2();
    if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) {
      print.say("snapshot: VMPTRLD of vmcs01 failed");
      return 0;
    }
  } else if (n.vmxOn && n.evmcs == state.INVALID) {
    // What L1 wrote through L0's shadow VMCS, into the cache. (Not with an
    // eVMCS in use: L1 writes that in its memory, and its enlightened
    // entries read it, launch.ts.)
    shadow.pull(vcpu);
  }
  // L2's rare guest-state fields that the last exit left in vmcs02
  // (nested/guestsync.ts): the blob's vmcs12 is whole.
  if (!inL2) guestsync.syncRare(vcpu);
  const size = write(vcpu, w, base, capacity, runPending, l2Info, l2Error, l2Length);
  if (inL2 && vmx.vmptrld(n.vmcs02.page) != vmx.VMX_SUCCEED) {
    print.say("snapshot: VMPTRLD of vmcs02 failed");
    return 0;
  }
  return size;
}

function write(vcpu: Vcpu, w: Writer, base: usize, capacity: u64, runPending: bool,
  l2Info: u32, l2Error: u32, l2Length: u32): u64 {
  const hasX = xstate.offered != 0;
  const count: u32 = 7 + (hasX ? 1 : 0) + nestedSections(vcpu) + (vcpu.vm.hvOffered ? 1 : 0);
  w.begin(base, capacity, count, vcpu.index);
  const now = cpu.rdtsc();
  // L1's TSC offset: vmcs01's, plus what L2's writes of the TSC moved it by
  // while vmcs02 was current (vm/tsc.ts pendingL1, added to vmcs01 at the
  // exit to L1).
  const offset = vmx.vmread(V.TSC_OFFSET) + (vcpu.nested.inL2 ? vcpu.tsc.pendingL1 : 0);

  // REGS: the block as it is, but for what is the hypervisor's (launch
  // state, exit count: not the guest's, and restore keeps its own).
  w.section(V.SNAP_SEC_REGS);
  const regs = w.here();
  w.bytes(vcpu.regs, V.REGS_BYTES);
  if (!w.failed) {
    store<u64>(regs, 0, V.REGS_LAUNCHED);
    store<u64>(regs, 0, V.REGS_EXITS);
  }
  w.end();

  w.section(V.SNAP_SEC_VMCS01);
  const items = w.here();
  for (let i: u32 = 0; i < V.SNAP_VMCS01_FIELD_COUNT; i++) w.pair(unchecked(V.SNAP_VMCS01_FIELDS[i]), 0);
  if (!w.failed) vmx.readfields(changetype<usize>(VMCS01_LIST), V.SNAP_VMCS01_FIELD_COUNT, items, vmcs01Mask());
  w.end();

  w.section(V.SNAP_SEC_MSRS);
  for (let i: u32 = 0; i < V.SNAP_MSR_COUNT; i++) {
    const msr = unchecked(V.SNAP_MSRS[i]);
    w.pair(msr, msrValue(vcpu, msr));
  }
  w.end();

  w.section(V.SNAP_SEC_APIC);
  const apic = w.here();
  w.zeros(V.SNAP_APIC_BYTES);
  if (!w.failed) {
    store<u64>(apic, vcpu.apic.apicBaseRead(), V.SNAP_APIC_BASE);
    store<u32>(apic, vcpu.apic.esrPending, V.SNAP_APIC_ESR_PENDING);
    vcpu.apic.saveRegisters(apic + V.SNAP_APIC_PAGE, now);
  }
  w.end();

  // EVENTS: what vmcs01's next entry injects; a not-valid event has no
  // error code or length (so that the same state is the same bytes).
  w.section(V.SNAP_SEC_EVENTS);
  const info = <u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO);
  const pending = (info & V.INTR_INFO_VALID) != 0;
  w.u32(pending ? info : 0);
  w.u32(pending ? <u32>vmx.vmread(V.VM_ENTRY_EXCEPTION_ERROR_CODE) : 0);
  w.u32(pending ? <u32>vmx.vmread(V.VM_ENTRY_INSTRUCTION_LENGTH) : 0);
  // An NMI the vCPU took and has not delivered yet (vm/irq.ts: blocked, or
  // waiting for L1): lost otherwise.
  w.u32(vcpu.irq.nmiPending ? 1 : 0);
  // vmcs02's, while L2 runs (none outside GUEST_MODE).
  w.u32(l2Info);
  w.u32(l2Error);
  w.u32(l2Length);
  w.u32(0);
  w.end();

  // TIMERS in L1's TSC: host TSC + vmcs01's offset.
  w.section(V.SNAP_SEC_TIMERS);
  w.u64(now + offset);
  const d = vcpu.apic.timerDeadline();
  w.u64(d == NONE ? NONE : d + offset);
  w.zeros(V.SNAP_TIMERS_BYTES - V.SNAP_TIMERS_RESERVED);
  w.end();

  w.section(V.SNAP_SEC_DEBUG);
  w.u64(cpu.readdr(0));
  w.u64(cpu.readdr(1));
  w.u64(cpu.readdr(2));
  w.u64(cpu.readdr(3));
  w.u64(cpu.readdr(6));
  w.zeros(V.SNAP_DEBUG_BYTES - V.SNAP_DEBUG_RESERVED);
  w.end();

  if (hasX) {
    // The components above SSE through the vCPU's own (aligned) area;
    // x87/SSE are REGS's FXSAVE image.
    const x = vcpu.xstate;
    xstate.save(vcpu);
    cpu.xsetbv(0, x.xcr0);
    w.section(V.SNAP_SEC_XSTATE);
    w.u64(x.xcr0);
    w.u32(x.areaSize);
    w.zeros(V.SNAP_XSTATE_AREA - V.SNAP_XSTATE_RESERVED);
    w.bytes(x.area, x.areaSize);
    w.end();
  }
  writeNested(vcpu, w, runPending, offset);
  writeHyperv(vcpu, w);
  return w.finish();
}

// An MSR of the MSRS section (SNAP_MSRS): the pass-through ones from the
// processor, the emulated ones from the vCPU's MSR and TSC state.
function msrValue(vcpu: Vcpu, msr: u32): u64 {
  switch (msr) {
    case V.MSR_IA32_FEATURE_CONTROL: return vcpu.msrs.featureControl;
    case V.MSR_IA32_TSC_ADJUST: return vcpu.tsc.adjust;
    case V.MSR_IA32_MTRR_DEF_TYPE: return vcpu.msrs.mtrrDefType;
  }
  const f = msrExit.fixedMtrr(msr);
  if (f >= 0) return load<u64>(vcpu.msrs.mtrrFixed(f));
  return cpu.rdmsr(msr);
}
