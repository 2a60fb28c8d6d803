// The interrupt messages between a VM's I/O APIC and its vCPUs' local
// APICs (the APIC bus / system bus of SDM Vol. 3A 11.1, 82093AA 3.2.4):
// the I/O APIC's interrupt messages go to the local APICs their
// destination names; the EOI of a level-triggered interrupt goes back to
// the I/O APIC (11.8.5).
//
// Delivery modes: fixed goes to every local APIC the destination names;
// lowest priority to one of them (the lowest-numbered). NMI, SMI, INIT
// and ExtINT messages have no receiver in this platform yet (no NMI
// injection into L1, no SMM, no 8259 PIC, INIT only by IPI): they are
// counted in the I/O APIC's `dropped`, with messages no local APIC
// accepted, and reported with the guest's exits (vm/guest.ts).
import * as ioapic from "../devices/ioapic";
import { Vm } from "./vm";
import { Vcpu } from "./vcpu";
import * as ipi from "./ipi";

// Send every message the VM's I/O APIC has queued.
// A VM whose vCPU is not made yet (and the device model tests' VM, which
// has none) keeps them queued.
export function route(vm: Vm): void {
  if (changetype<usize>(vm.vcpu0) == 0) return;
  const io = vm.ioapic;
  while (io.queued > 0) {
    const m = io.takeMessage();
    const vector = <u32>(m & ioapic.RTE_VECTOR);
    const mode = <u32>(m >> ioapic.RTE_DELIVERY_MODE_SHIFT) & 7;
    const logical = (m & ioapic.RTE_DEST_LOGICAL) != 0;
    const level = (m & ioapic.RTE_LEVEL) != 0;
    const dest = <u32>(m >> ioapic.RTE_DEST_SHIFT);
    // Every local APIC the destination names takes a fixed message; a
    // lowest-priority one goes to the first of them, the lowest-numbered
    // vCPU (the platform's choice, 11.6.2.4; priorities are not compared).
    // A halted vCPU it wakes runs next (ipi.kick).
    let taken = false;
    for (let i = 0; i < vm.vcpuCount; i++) {
      const vcpu = vm.vcpu(i);
      if (!vcpu.apic.matchesDestination(dest, logical)) continue;
      if (mode != ioapic.MODE_FIXED && mode != ioapic.MODE_LOWEST_PRIORITY) continue;
      // Not accepted (software-disabled APIC): a level-triggered entry's
      // remote IRR would then never clear, as on hardware; the I/O APIC's
      // EOI register is the guest's way out. A vCPU that another processor
      // runs gets the message there (ipi.post).
      if (ipi.elsewhere(vcpu)) {
        if (!ipi.post(vcpu, ipi.MODE_FIXED, vector, level)) continue;
      } else {
        if (!vcpu.apic.acceptFromBus(vector, level)) continue;
        ipi.kick(vcpu);
      }
      taken = true;
      if (mode == ioapic.MODE_LOWEST_PRIORITY) break;
    }
    if (!taken) io.dropped++;
  }
}

// After vcpu's local APIC took an EOI: a level-triggered interrupt's EOI
// goes to the I/O APIC, which may send its interrupt again.
export function broadcastEoi(vcpu: Vcpu): void {
  const v = vcpu.apic.takeLevelEoi();
  if (v < 0) return;
  const vm = vcpu.vm;
  vm.ioapic.eoi(<u32>v);
  route(vm);
}
