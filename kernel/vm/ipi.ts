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
// wake it; or started by SIPI) is handed the processor next (its run
// queue's `wake`). A target that another processor runs (vm/runqueue.ts)
// is changed only there: the message is posted to it (post) and that
// processor kicked; it takes what was posted at its next exit, or when it
// wakes from waiting (takePosted, from vm/sched.ts), as the processor's
// local APIC takes a message from the bus while its core runs on.
import * as cpu from "../hw/cpu";
import * as v256 from "../apic/vec256";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import { Vm } from "./vm";
import * as apstart from "./apstart";

export const MODE_FIXED: u32 = 0;
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
    if (elsewhere(t)) {
      // Counted as the target's APIC takes it (INIT and SIPI when taken).
      if (!post(t, mode, vector, false)) {
        t.apic.ipisDropped++;
        continue;
      }
      if (mode == MODE_FIXED || mode == MODE_LOWEST || mode == MODE_NMI) t.apic.ipisDelivered++;
    } else {
      deliver(vm, t, mode, vector);
    }
    if (mode == MODE_LOWEST) break;
  }
}

// Does another processor run t (it has a run queue of its own)?
@inline export function elsewhere(t: Vcpu): bool {
  return t.vm.queueCount > 1 && t.queue.cpu != cpu.index();
}

// A message for t, which another processor runs: kept in t (vm/vcpu.ts
// `posted*`) for that processor, which is kicked (boot/smp/threads.c: an
// external-interrupt VM exit if it runs t, the end of its wait if it
// waits). A queue asleep is not any more: what was posted may wake it.
// False (nothing posted) for a fixed or lowest-priority message to a
// software-disabled APIC, which does not accept one (11.4.7.2), and for a
// mode that has no receiver.
export function post(t: Vcpu, mode: u32, vector: u32, level: bool): bool {
  const base = changetype<usize>(t);
  if (mode == MODE_FIXED || mode == MODE_LOWEST) {
    if (!t.apic.softwareEnabled()) return false;
    v256.set(base + offsetof<Vcpu>("postedIrr0"), vector);
    const tmr = base + offsetof<Vcpu>("postedTmr0");
    if (level) v256.set(tmr, vector);
    else v256.clear(tmr, vector);
  } else if (mode == MODE_NMI) {
    t.postedNmi = true;
  } else if (mode == MODE_INIT) {
    t.postedInit = true;
    t.postedSipi = 0; // an earlier SIPI is undone by the INIT after it
  } else if (mode == MODE_SIPI) {
    t.postedSipi = SIPI_POSTED | (vector & 0xff);
  } else {
    return false;
  }
  t.posted = true;
  const q = t.queue;
  q.mail = true;
  if (q.asleep) {
    q.asleep = false;
    t.vm.queuesAsleep--;
  }
  cpu.kick(q.cpu);
  return true;
}
const SIPI_POSTED: u32 = 0x100;

// On t's own processor: what post() kept for it, delivered now in the
// order it was sent (an INIT before the SIPI that follows it).
export function takePosted(t: Vcpu): void {
  const vm = t.vm;
  t.posted = false;
  if (t.postedInit) {
    t.postedInit = false;
    deliver(vm, t, MODE_INIT, 0);
  }
  if (t.postedSipi != 0) {
    const v = t.postedSipi & 0xff;
    t.postedSipi = 0;
    deliver(vm, t, MODE_SIPI, v);
  }
  if (t.postedNmi) {
    t.postedNmi = false;
    t.ipiNmi = true;
    kick(t);
  }
  const base = changetype<usize>(t);
  const irr = base + offsetof<Vcpu>("postedIrr0");
  const tmr = base + offsetof<Vcpu>("postedTmr0");
  let v = v256.highest(irr);
  while (v >= 0) {
    v256.clear(irr, <u32>v);
    if (t.apic.acceptFromBus(<u32>v, v256.test(tmr, <u32>v))) kick(t);
    v = v256.highest(irr);
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
    if (r == apstart.INIT_RUN && t.queue.running != <i32>t.index) {
      t.queue.wake = <i32>t.index;
      t.queue.sliceEnd = 0;
    }
  } else if (mode == MODE_SIPI) {
    if (apstart.sipi(t, vector)) {
      t.apic.ipisDelivered++;
      t.queue.wake = <i32>t.index;
      t.queue.sliceEnd = 0;
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
  const q = t.queue;
  if (q.running == <i32>t.index) return;
  if (!wakeIfRunnable(t, cpu.rdtsc())) return;
  q.wake = <i32>t.index;
  q.sliceEnd = 0;
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
