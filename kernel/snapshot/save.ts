// Writing one vCPU's snapshot blob (docs/snapshot.md) from the objects and
// the processor: the register block, vmcs01's guest state, the MSRs no VMCS
// field holds (pass-through ones with RDMSR: the processor has the guest's
// values while the hypervisor runs; emulated ones from vcpu.msrs and
// vcpu.tsc), the local APIC, the pending events, the timers in L1's TSC,
// the debug registers the processor holds, the extended state. Nothing of
// the vCPU changes (the XSAVE of the extended state goes through its own
// area and the guest's XCR0 is put back).
//
// vmcs01 must be the current VMCS. The nested part (NESTED with a VMXON
// pointer, VMCS12, SHADOW_VMCS12: docs/snapshot.md "NESTED") is not written
// yet: a vCPU in VMX operation is not savable() (callers skip it and say
// so); a nested=on guest outside VMX operation gets a NESTED section saying
// "never in VMX operation". Hook for the nested part: nestedSections() and
// writeNested() below; while L2 runs it must first make vmcs01 current
// (syncing vmcs02 into vmcs12 and pulling the shadow VMCS, docs/snapshot.md
// "Whose state").
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as config from "../vm/config";
import * as xstate from "../vm/xstate";
import { Vcpu } from "../vm/vcpu";
import * as msrExit from "../vm/exit/msr";
import { Writer } from "./blob";

const NONE: u64 = u64.MAX_VALUE;

// vmcs01's fields for vmx.readfields/writefields straight into and out of
// the blob's VMCS01 items: entry i is the encoding with, in bits 27:16, the
// offset of item i's value from the section's start (hw/vmx.ts). A value
// narrower than 64 bits fills the low bytes of a slot the Writer zeroed.
export const VMCS01_LIST: StaticArray<u32> = vmcs01List(); // machine-wide: a constant list
function vmcs01List(): StaticArray<u32> {
  const n = <i32>V.SNAP_VMCS01_FIELD_COUNT;
  const l = new StaticArray<u32>(n);
  for (let i = 0; i < n; i++) l[i] = V.SNAP_VMCS01_FIELDS[i] | (<u32>(i * V.SNAP_PAIR_BYTES + V.SNAP_PAIR_VALUE) << 16);
  return l;
}
@inline export function vmcs01Mask(): u64 {
  return V.SNAP_VMCS01_FIELD_COUNT >= 64 ? NONE : (<u64>1 << <u64>V.SNAP_VMCS01_FIELD_COUNT) - 1;
}

// Can this vCPU be saved now? Not in VMX operation until the nested part
// is written (its VMXON region, vmcs12 and vmcs02 would be lost).
export function savable(vcpu: Vcpu): bool {
  return !vcpu.nested.vmxOn;
}

// The NESTED section (and, with the nested part, VMCS12 / SHADOW_VMCS12):
// how many sections they add.
function nestedSections(vcpu: Vcpu): u32 {
  return config.nested[vcpu.vm.guest] ? 1 : 0;
}
function writeNested(vcpu: Vcpu, w: Writer): void {
  if (!config.nested[vcpu.vm.guest]) return;
  w.section(V.SNAP_SEC_NESTED);
  const p = w.here();
  w.zeros(V.SNAP_NESTED_BYTES);
  if (w.failed) return;
  store<u64>(p, NONE, V.SNAP_NESTED_VMXON);
  store<u64>(p, NONE, V.SNAP_NESTED_VMCS12);
  store<u64>(p, NONE, V.SNAP_NESTED_PREEMPTION_DEADLINE);
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
  return n;
}

// Write vcpu's blob into [base, base + capacity); its size, or 0 when it
// did not fit or the vCPU is not savable(). w: the caller's Writer.
export function save(vcpu: Vcpu, w: Writer, base: usize, capacity: u64): u64 {
  if (!savable(vcpu)) return 0;
  const hasX = xstate.offered != 0;
  const count: u32 = 7 + (hasX ? 1 : 0) + nestedSections(vcpu);
  w.begin(base, capacity, count, vcpu.index);
  const now = cpu.rdtsc();
  const offset = vmx.vmread(V.TSC_OFFSET);

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
  w.zeros(20); // L1 reserved, and no L2 event outside GUEST_MODE
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
  writeNested(vcpu, w);
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
