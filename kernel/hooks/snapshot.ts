// Test hooks of the snapshot blob code (tests/unit/snapshot-*.test.ts). See
// kernel/testhooks.ts. snap_buffer gives the test a buffer in linear memory
// (allocated once, grown only by a larger request); the test fills it and
// asks snap_validate, or builds a blob in it through the kernel's Writer
// (snap_w_*). Objects are made on first use, never again.
import * as cycle from "../snapshot/cycle";
import { Writer, Reader } from "../snapshot/blob";
import { Limits, fill } from "../snapshot/limits";
import * as vms from "../vm/vm";
import { Verdict, ruleName, report, RULE_COUNT } from "../snapshot/rules";
import { validate } from "../snapshot/validate";
import * as save from "../snapshot/save";
import * as restore from "../snapshot/restore";
import * as evmcsRestore from "../nested/evmcs-restore";

let buf: usize = 0; // machine-wide: the one test buffer
let cap: u64 = 0; // machine-wide: its size
let writer: Writer | null = null; // machine-wide: test objects, made once
let reader: Reader | null = null; // machine-wide
let limits: Limits | null = null; // machine-wide
let verdict: Verdict | null = null; // machine-wide
const mapFound = new StaticArray<u64>(1); // test hooks only: snap_mapEvmcs's scratch

function objects(): void {
  if (writer != null) return;
  writer = new Writer();
  reader = new Reader();
  limits = new Limits();
  verdict = new Verdict();
}

export function snap_buffer(bytes: u32): usize {
  objects();
  if (<u64>bytes > cap) {
    buf = (heap.alloc(<usize>bytes + 64) + 63) & ~(<usize>63);
    cap = bytes;
  }
  return buf;
}

export function snap_setLimits(vcpu: u32, ramBytes: u64, physAddrBits: u32, linearBits: u32, nested: bool,
  shadowVmcs: bool, vmcs12Revision: u32, mxcsrMask: u32, xcr0Offered: u64, xsaveBytes: u32, anyErrorCode: bool,
  zeroLengthInjection: bool, mtf: bool, hyperv: bool): void {
  objects();
  const l = changetype<Limits>(limits);
  l.vcpu = vcpu;
  l.ramBytes = ramBytes;
  l.physAddrBits = physAddrBits;
  l.linearBits = linearBits;
  l.nested = nested;
  l.shadowVmcs = shadowVmcs;
  l.vmcs12Revision = vmcs12Revision;
  l.mxcsrMask = mxcsrMask;
  l.xcr0Offered = xcr0Offered;
  l.xsaveBytes = xsaveBytes;
  l.anyErrorCode = anyErrorCode;
  l.zeroLengthInjection = zeroLengthInjection;
  l.mtf = mtf;
  l.hyperv = hyperv;
}

// Limits from this machine (snapshot/limits.ts fill) for vCPU 0 of a VM of
// guest 0 with ramBytes of RAM; returns the MXCSR mask it chose (the rest
// the test sees through snap_validate).
export function snap_fillLimits(ramBytes: u64, mxcsrMask: u32): u32 {
  objects();
  const vm = vms.create(0);
  vm.ramBytes = ramBytes;
  const l = changetype<Limits>(limits);
  fill(l, vm, 0, mxcsrMask);
  return l.mxcsrMask;
}

// Validate the first `length` bytes of the buffer: the rule number (0 ok).
export function snap_validate(length: u64): u32 {
  objects();
  return validate(buf, length, changetype<Limits>(limits), changetype<Verdict>(verdict), changetype<Reader>(reader));
}
// The error message of the last verdict, on the console.
export function snap_report(): void {
  report(changetype<Verdict>(verdict));
}
export function snap_verdictSection(): u32 {
  return changetype<Verdict>(verdict).section;
}
export function snap_verdictItem(): i32 {
  return changetype<Verdict>(verdict).item;
}
export function snap_verdictValue(): u64 {
  return changetype<Verdict>(verdict).value;
}
// The failed entry check's name of a vmcs12.entry-checks verdict ("" else).
export function snap_verdictCheck(): string {
  return changetype<Verdict>(verdict).check;
}
export function snap_ruleName(rule: u32): string {
  return ruleName(rule);
}
export function snap_ruleCount(): u32 {
  return RULE_COUNT;
}

// The kernel's Writer on the buffer.
export function snap_w_begin(capacity: u64, sections: u32, vcpu: u32): void {
  objects();
  changetype<Writer>(writer).begin(buf, min<u64>(capacity, cap), sections, vcpu);
}
export function snap_w_section(id: u32): void {
  changetype<Writer>(writer).section(id);
}
export function snap_w_u32(v: u32): void {
  changetype<Writer>(writer).u32(v);
}
export function snap_w_u64(v: u64): void {
  changetype<Writer>(writer).u64(v);
}
export function snap_w_zeros(n: u32): void {
  changetype<Writer>(writer).zeros(n);
}
export function snap_w_pair(key: u32, value: u64): void {
  changetype<Writer>(writer).pair(key, value);
}
export function snap_w_end(): void {
  changetype<Writer>(writer).end();
}
export function snap_w_finish(): u64 {
  return changetype<Writer>(writer).finish();
}

// The running guest's vCPU (the kernel is inside vmx.enter: its vmcs01 is
// current), saved into the buffer: the blob's size (0: not savable or no room).
export function snap_saveLive(): u64 {
  objects();
  const vm = vms.running();
  if (vm == null) return 0;
  return save.save(vm.vcpu0, changetype<Writer>(writer), buf, cap, false);
}
// The first `length` bytes of the buffer restored in place of the running
// vCPU, for blobs restore must reject: the rule it broke (the vCPU then
// unchanged), or 0 when it restored one (the exit loop would then run a
// vCPU that is gone: a test that gets 0 has failed already).
export function snap_restoreLive(length: u64): u32 {
  objects();
  const vm = vms.running();
  if (vm == null) return 0;
  if (restore.restore(vm.vcpu0, buf, length, restore.KEEP_DEADLINES, -1) != null) return 0;
  return restore.lastRule();
}

// Load the HYPERV section before NESTED (true) or after (false, the
// kernel's order) in every restore from now on (snapshot/restore.ts): the
// tests show both give the same vCPU.
export function snap_setHypervFirst(first: bool): void {
  restore.setHypervFirst(first);
}

// snapshot=N: an NMI arrives for the vCPU right after each restore (true)
// or not (false, the kernel's way) from now on (snapshot/cycle.ts).
export function snap_nmiAfterRestore(on: bool): void {
  cycle.setNmiAfterRestore(on);
}

// The running vCPU's eVMCS checked against its VP assist page and written
// as at the end of a GUEST_MODE | EVMCS restore (nested/evmcs-restore.ts):
// its answer (MAPPED 0, or why not; nothing changed then).
export function snap_mapEvmcs(): u32 {
  const vm = vms.running();
  if (vm == null) return 0xffffffff;
  return evmcsRestore.mapRestored(vm.vcpu0, mapFound);
}

// Which level the running guest's vCPU runs: 1 L2 (vmcs02 current), 0 L1,
// -1 no guest (a restore replaces the vCPU and its VMCSs: the tests ask
// the kernel rather than compare VMCS addresses).
export function snap_inL2(): i32 {
  const vm = vms.running();
  if (vm == null) return -1;
  return vm.vcpu0.nested.inL2 ? 1 : 0;
}
