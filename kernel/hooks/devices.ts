// Test hooks of the device models (tests/unit). See kernel/testhooks.ts.
// dev_*: the guest's port devices (kernel/devices/ports.ts);
// apic_*: the guest's local APIC (kernel/apic/lapic.ts).
// ioapic_*: the guest's I/O APIC (kernel/devices/ioapic.ts).
import * as ports from "../devices/ports";
import * as vms from "../vm/vm";
import { Vm } from "../vm/vm";
import * as lapic from "../apic/lapic";

// The VM whose devices the dev_* hooks drive; dev_reset makes it anew.
let vm: Vm = changetype<Vm>(0); // test hooks only: state of the model tests' calls, not in the guest paths; test hooks only

// A fresh VM with ramSize bytes of RAM (as fw_cfg reports it) and cpuCount
// vCPUs; making it resets its devices.
export function dev_reset(ramSize: u64, cpuCount: u32): void {
  vm = vms.create(0);
  vm.ramBytes = ramSize;
  vm.vcpuCount = <i32>cpuCount;
}
export function dev_in(port: u32, size: u32): u32 {
  return ports.ioIn(vm, port, size);
}
export function dev_out(port: u32, size: u32, value: u32): void {
  ports.ioOut(vm, port, size, value);
}
export function dev_exitRequested(): bool {
  return vm.ports.exitRequested;
}
export function dev_exitCode(): u32 {
  return vm.ports.exitCode;
}
export function dev_deniedReads(): u32 {
  return vm.ports.deniedReads;
}
export function dev_deniedWrites(): u32 {
  return vm.ports.deniedWrites;
}
export function dev_lastDenied(): u32 {
  return vm.ports.lastDenied;
}
export function dev_flushConsole(): void {
  ports.flushConsole(vm);
}
export function dev_uartPending(): i32 {
  return vm.uart.pending();
}

// The APIC the apic_* hooks work on: one of its own, not a vCPU's.
let apic: lapic.Lapic | null = null; // test hooks only: state of the model tests' calls, not in the guest paths
function theApic(): lapic.Lapic {
  let a = apic;
  if (a == null) {
    a = lapic.alloc();
    apic = a;
  }
  return a;
}

export function apic_reset(apicId: u32, tscNow: u64): void {
  theApic().reset(apicId, tscNow);
}
export function apic_baseRead(): u64 {
  return theApic().apicBaseRead();
}
export function apic_baseWrite(v: u64): bool {
  return theApic().apicBaseWrite(v);
}
// The APIC on a virtual-APIC page at physical `page` (vm/apicv.ts).
export function apic_useVirtualApicPage(page: u64): void {
  theApic().useVirtualApicPage(page);
}
export function apic_enabled(): bool {
  return theApic().enabled();
}
// apic_read/apic_write: accesses to the APIC page (vm/mmio.ts).
export function apic_read(offset: u32, tscNow: u64): u32 {
  return theApic().pageRead(offset, tscNow);
}
export function apic_write(offset: u32, value: u32, tscNow: u64): void {
  theApic().pageWrite(offset, value, tscNow);
}
export function apic_pendingVector(tscNow: u64): i32 {
  return theApic().pendingVector(tscNow);
}
export function apic_acknowledge(vector: u32): void {
  theApic().acknowledge(vector);
}
export function apic_nextTimerDeadline(): u64 {
  return theApic().nextTimerDeadline();
}
export function apic_ipisDropped(): u32 {
  return theApic().ipisDropped;
}
export function apic_ipisDelivered(): u32 {
  return theApic().ipisDelivered;
}

// ioapic_*: the I/O APIC of the VM dev_reset made (kernel/devices/ioapic.ts).
export function ioapic_read(offset: u32, size: u32): u32 {
  return vm.ioapic.read(offset, size);
}
export function ioapic_write(offset: u32, size: u32, value: u32): void {
  vm.ioapic.write(offset, size, value);
}
export function ioapic_setLine(n: u32, high: bool): void {
  vm.ioapic.setLine(n, high);
}
export function ioapic_queued(): u32 {
  return vm.ioapic.queued;
}
export function ioapic_takeMessage(): u64 {
  return vm.ioapic.takeMessage();
}
export function ioapic_sent(): u32 {
  return vm.ioapic.sent;
}
export function apic_acceptFromBus(vector: u32, level: bool): bool {
  return theApic().acceptFromBus(vector, level);
}
export function apic_takeLevelEoi(): i32 {
  return theApic().takeLevelEoi();
}
export function apic_matchesDestination(dest: u32, logical: bool): bool {
  return theApic().matchesDestination(dest, logical);
}
export function apic_takeNmi(): bool {
  return theApic().takeNmi();
}
// x2APIC mode (lapic.ts x2Read/x2Write): false is #GP(0); the value read
// is apic_x2Value's.
export function apic_x2Read(msr: u32, tscNow: u64): bool {
  return theApic().x2Read(msr, tscNow);
}
export function apic_x2Value(): u64 {
  return theApic().x2Value;
}
export function apic_x2Write(msr: u32, v: u64, tscNow: u64): bool {
  return theApic().x2Write(msr, v, tscNow);
}
export function apic_matchesIpi(dest: u32, logical: bool, wide: bool): bool {
  return theApic().matchesIpi(dest, logical, wide);
}
