// Inter-processor interrupts between the vCPUs of a guest (SDM Vol. 3A
// 11.6 "Issuing Interprocessor Interrupts"), and whether a vCPU can run.
// A local APIC (apic/lapic.ts) handles what it sends itself — a fixed or
// lowest-priority IPI that names it, an NMI to itself — and latches
// `ipiOut` for an IPI whose destination may name another APIC; the APIC
// write's follow-up (irq.apicWritten) then calls send() here, which
// delivers it to the VM's other vCPUs:
//   - destination: shorthand (01 self: nobody else; 10 all including self,
//     11 all excluding self: every other vCPU) or the ICR's destination
//     field, physical (APIC ID, FFH broadcast) or logical (flat model, and
//     the cluster model that apic/lapic.ts matchesDestination decodes);
//     from a sender in x2APIC mode a 32-bit field (11.12.9): physical
//     x2APIC ID, logical cluster in 31:16 and a bitmap in 15:0
//     (11.12.10.2), FFFFFFFFH broadcast (lapic.ts matchesIpi);
//   - fixed: into each target's IRR (a software-disabled APIC accepts
//     none, 11.4.7.2); lowest priority: one target only, the sender itself
//     when it is one, else the lowest-numbered vCPU the destination names
//     (11.6.2.4 leaves the choice to the platform; priorities are not
//     compared);
//   - NMI: the target's NMI (raised when it next runs, sched.ts);
//   - INIT (level assert; the level de-assert of 11.6.1 does nothing) and
//     start-up: vm/apstart.ts (in VMX operation: held while VMX root blocks
//     INIT, or VM exits to L1 while L2 runs or waits for SIPI);
//   - SMI, ExtINT and the reserved modes: not acted on.
// Delivery is immediate: the ICR's delivery status (bit 12) always reads
// 0, idle, as once a real APIC has sent the message.
// A target that the IPI makes runnable (halted, and now with something to
// wake it; or started by SIPI) is handed the processor next (vm.wake).
import * as cpu from "../hw/cpu";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import { Vm } from "./vm";
import * as apstart from "./apstart";

const MODE_FIXED: u32 = 0;
const MODE_LOWEST: u32 = 1;
const MODE_NMI: u32 = 4;
const MODE_INIT: u32 = 5;
const MODE_SIPI: u32 = 6;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_TRIGGER_LEVEL: u32 = 1 << 15;
const ICR_LOGICAL: u32 = 1 << 11;

// The IPI from's ICR describes, to the VM's other vCPUs.
export function send(from: Vcpu): void {
  const vm = from.vm;
  const n = vm.vcpuCount;
  if (n < 2) return;
  const a = from.apic;
  const lo = a.icrLo;
  const mode = (lo >> 8) & 7;
  const vector = lo & 0xff;
  const shorthand = (lo >> 18) & 3;
  if (shorthand == 1) return;
  // A fixed or lowest-priority IPI with an illegal vector was refused by
  // the sender (send illegal vector, 11.5.3).
  if ((mode == MODE_FIXED || mode == MODE_LOWEST) && vector < 16) return;
  if (mode == MODE_LOWEST && a.icrNamesSelf()) return; // the sender took it
  if (mode == MODE_INIT && (lo & ICR_LEVEL_ASSERT) == 0 && (lo & ICR_TRIGGER_LEVEL) != 0) return; // INIT level de-assert
  // 8 bits from an APIC in xAPIC mode, 32 from one in x2APIC mode
  // (11.12.9; lapic.ts matchesIpi).
  const dest = a.icrDestination();
  const wide = a.x2apicMode();
  const logical = (lo & ICR_LOGICAL) != 0;
  for (let i = 0; i < n; i++) {
    const t = vm.vcpu(i);
    if (t === from) continue;
    if (shorthand == 0 && !t.apic.matchesIpi(dest, logical, wide)) continue;
    deliver(vm, t, mode, vector);
    if (mode == MODE_LOWEST) break;
  }
}

function deliver(vm: Vm, t: Vcpu, mode: u32, vector: u32): void {
  if (mode == MODE_FIXED || mode == MODE_LOWEST) {
    if (!t.apic.acceptFromBus(vector, false)) {
      t.apic.ipisDropped++;
      return;
    }
    t.apic.ipisDelivered++;
    kick(t);
  } else if (mode == MODE_NMI) {
    t.ipiNmi = true;
    t.apic.ipisDelivered++;
    kick(t);
  } else if (mode == MODE_INIT) {
    const r = apstart.init(t);
    if (r == apstart.INIT_DROPPED) {
      t.apic.ipisDropped++;
      return;
    }
    t.apic.ipisDelivered++;
    // The INIT-signal exit of a vCPU whose L2 runs: it runs next.
    if (r == apstart.INIT_RUN && vm.running != <i32>t.index) {
      vm.wake = <i32>t.index;
      vm.sliceEnd = 0;
    }
  } else if (mode == MODE_SIPI) {
    if (apstart.sipi(t, vector)) {
      t.apic.ipisDelivered++;
      vm.wake = <i32>t.index;
      vm.sliceEnd = 0;
    } else {
      t.apic.ipisDropped++;
    }
  } else {
    t.apic.ipisDropped++;
  }
}

// t may have something to wake it now (an interrupt in its IRR, an NMI):
// if it was halted, it runs next.
export function kick(t: Vcpu): void {
  if (t.runState != R.RUN_HALTED) return;
  const vm = t.vm;
  if (vm.running == <i32>t.index) return;
  if (!wakeIfRunnable(t, cpu.rdtsc())) return;
  vm.wake = <i32>t.index;
  vm.sliceEnd = 0;
}

// Can v run now? A halted vCPU wakes on an NMI, or with RFLAGS.IF set on
// an interrupt its APIC would deliver (SDM Vol. 2A HLT: "an enabled
// interrupt (including NMI ...) ... will resume execution"); one waiting
// for SIPI cannot.
export function wakeIfRunnable(v: Vcpu, now: u64): bool {
  const s = v.runState;
  if (s == R.RUN_ACTIVE) return true;
  if (s != R.RUN_HALTED) return false;
  if (v.ipiNmi || v.irq.nmiPending || (v.haltIf && v.apic.pendingVector(now) >= 0)) {
    v.runState = R.RUN_ACTIVE;
    return true;
  }
  return false;
}
