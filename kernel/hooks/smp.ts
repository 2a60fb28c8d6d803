// Test hooks of the messages between vCPUs that run on different
// processors (tests/unit/smp-post.test.ts; kernel/vm/ipi.ts post and
// takePosted): a VM with n vCPUs placed in run queues as spread=on or off
// places them on the model's processors (vm/sched.ts place). The hooks run
// on the model's processor 0, which runs queue 0: a message for a vCPU of
// another queue is posted to it, not applied, until smp_take.
import * as vms from "../vm/vm";
import * as vcpus from "../vm/vcpu";
import * as R from "../vm/vcpu";
import { Vm } from "../vm/vm";
import * as sched from "../vm/sched";
import * as ipi from "../vm/ipi";
import * as irq from "../vm/irq";
import * as intbus from "../vm/intbus";
import * as apicv from "../vm/apicv";
import * as lapic from "../apic/lapic";
import * as ident from "../cpu/ident";
import * as hwcaps from "../vmx/caps";
import * as vmxon from "../vmx/vmxon";
import * as pages from "../mm/pages";
import * as mem from "../hw/mem";
import * as vmx from "../hw/vmx";

let vm: Vm = changetype<Vm>(0); // test hooks only: state of the model tests' calls, not in the guest paths

// n vCPUs (vCPU 0 running, the others waiting for SIPI); the run queues made.
export function smp_setup(n: u32, spread: bool): i32 {
  vm = vms.create(0);
  vm.vcpuCount = <i32>n;
  for (let i = 0; i < <i32>n; i++) {
    const v = vcpus.create(vm, <u32>i);
    if (i > 0) v.runState = R.RUN_WAIT_SIPI;
    vm.setVcpu(i, v);
  }
  sched.place(vm, spread);
  return vm.queueCount;
}
export function smp_queueCpu(i: i32): u32 {
  return vm.vcpu(i).queue.cpu;
}
export function smp_mail(q: i32): bool {
  return vm.queue(q).mail;
}
// vCPU i writes its APIC page at offset (an ICR write sends its IPI, as
// the APIC-write follow-up of vm/irq.ts does).
export function smp_apicWrite(i: i32, offset: u32, value: u32, tscNow: u64): void {
  const v = vm.vcpu(i);
  v.apic.pageWrite(offset, value, tscNow);
  irq.apicWritten(v);
}
export function smp_apicRead(i: i32, offset: u32, tscNow: u64): u32 {
  return vm.vcpu(i).apic.pageRead(offset, tscNow);
}
export function smp_posted(i: i32): bool {
  return vm.vcpu(i).posted;
}
// vCPU i's processor takes what was posted to it.
export function smp_take(i: i32): void {
  ipi.takePosted(vm.vcpu(i));
}
export function smp_runState(i: i32): u32 {
  return vm.vcpu(i).runState;
}
export function smp_startPending(i: i32): bool {
  return vm.vcpu(i).startPending;
}
export function smp_sipiVector(i: i32): u32 {
  return vm.vcpu(i).sipiVector;
}
export function smp_ipiNmi(i: i32): bool {
  return vm.vcpu(i).ipiNmi;
}
export function smp_ipisDelivered(i: i32): u32 {
  return vm.vcpu(i).apic.ipisDelivered;
}
export function smp_ipisDropped(i: i32): u32 {
  return vm.vcpu(i).apic.ipisDropped;
}
// The VM's I/O APIC: a register write, an input's level; its messages go
// out (vm/intbus.ts route, as after an I/O APIC access or a device's line).
export function smp_ioapicWrite(offset: u32, value: u32): void {
  vm.ioapic.write(offset, 4, value);
  apicv.scan(vm);
  intbus.route(vm);
}
export function smp_ioapicLine(n: u32, high: bool): void {
  vm.ioapic.setLine(n, high);
  intbus.route(vm);
}

// ---- the guard of vm/apicv.ts (tests/unit/apicv-guard.test.ts) ------------
// vCPU i gets a vmcs01 made current on the model (after VMXON) with APIC
// virtualization's fields (apicv.startVcpu: its virtual-APIC page, RVI/SVI,
// the EOI-exit bitmap); the test then plays the processor on that page and
// in the guest interrupt status, and runs the L1 entry's interrupt step.
let vmxOn = false; // test hooks only: state of the model tests' calls, not in the guest paths
export function smp_vmcsSetup(i: i32): bool {
  if (!vmxOn) {
    ident.identify();
    hwcaps.read();
    if (vmxon.enable() != 0) return false;
    vmxOn = true;
  }
  const region = pages.alloc(1);
  if (region == 0) return false;
  mem.zero(region, 4096);
  mem.write32(region, hwcaps.revisionId());
  if (vmx.vmclear(region) != vmx.VMX_SUCCEED || vmx.vmptrld(region) != vmx.VMX_SUCCEED) return false;
  const v = vm.vcpu(i);
  v.apic.write(lapic.REG_SVR, 0x1ff, 0);
  vm.apicv = true; // (apicv.startVm's EPT mapping is not needed here)
  return apicv.startVcpu(v);
}
// Write a register of vCPU i's virtual-APIC page, as the processor does.
export function smp_vapicWrite(i: i32, offset: u32, value: u32): void {
  mem.write32(vm.vcpu(i).vapicPage + <u64>offset, value);
}
export function smp_vmwrite(enc: u32, value: u64): void {
  vmx.vmwrite(enc, value);
}
export function smp_vmread(enc: u32): u64 {
  return vmx.vmread(enc);
}
// vCPU i's APIC takes a fixed, edge-triggered message (into vIRR, as from an
// IPI or the I/O APIC), and an EOI-induced exit for vector (apicv.ts).
export function smp_accept(i: i32, vector: u32): bool {
  return vm.vcpu(i).apic.acceptFromBus(vector, false);
}
export function smp_virtualEoi(i: i32, vector: u32): void {
  vm.vcpu(i).apic.virtualEoi(vector);
}
// vCPU i's interrupt step before an entry as L1 (vm/irq.ts deliver): whether
// it asks for the interrupt window.
export function smp_deliver(i: i32): bool {
  const v = vm.vcpu(i);
  irq.deliver(v);
  return v.irq.windowExiting;
}
