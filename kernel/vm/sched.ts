// The vCPUs of one run queue share its processor (vm/runqueue.ts: with
// spread=on one queue per processor, vCPU i in queue i mod P; with
// spread=off or one processor every vCPU of the guest in one; docs/
// guest-interface.md "Several vCPUs"). Each queue's processor runs this on
// its own kernel thread: one vCPU runs at a time, the others wait with their VMCS active on the
// same processor (SDM Vol. 3C 25.11.1: a processor may keep several VMCSs
// active; VMPTRLD makes one current, and the launch state stays in each).
// The processor changes hands, at an exit of the running vCPU, when
//   - it halts (HLT, handleHlt: registered for such guests only) or waits
//     for SIPI (INIT from another vCPU),
//   - an IPI or an I/O APIC message makes another vCPU runnable (a halted
//     one woken, one started by SIPI: the queue's wake, set by ipi.ts),
//   - its time slice is over: irq.SLICE ticks of the VMX-preemption timer
//     (the timer irq.ts always runs, which brings an exit at least that
//     often, so a vCPU that never exits still gives the processor up),
//     counted in host TSC ticks from when it got the processor (the timer
//     counts at the TSC rate divided by 2^IA32_VMX_MISC[4:0], 26.5.1; on
//     Bochs 2^0: 16.8 million ticks).
// A halted vCPU's APIC timer ends the running one's slice early (seen at
// its first exit after the deadline). When every vCPU of the queue sleeps,
// the processor waits (cpu.wait, without the kernel's lock) for the
// earliest APIC timer among them or for another processor's message
// (ipi.post); none armed on any queue is "halted forever".
// This is called from the exit loop's out-of-line periodic work
// (guest.ts periodicWork, for guests with several vCPUs only), so a
// one-vCPU guest's exit path is what it was.
//
// What the processor holds of the outgoing vCPU and VMX does not switch is
// carried as for a migration (migrate.ts): the pass-through MSRs without a
// VMCS field (vmcs01.UNSWITCHED) and the XSAVE-managed state. The vCPUs of
// a guest share VPIDs (vmcs01.GUEST_VPID for L1, nested/'s for L2) and
// the EPT: a switch flushes the VPIDs' linear mappings (29.4.3), since
// the next vCPU has its own CR3 (the EPT's guest-physical mappings are
// the same for all).
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as caps from "../vmx/caps";
import * as config from "./config";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";
import { Vm } from "./vm";
import { RunQueue } from "./runqueue";
import * as vmcs01 from "./vmcs01";
import * as migrate from "./migrate";
import * as events from "./events";
import * as irq from "./irq";
import * as ipi from "./ipi";
import * as apstart from "./apstart";
import { RESUME, STOP, stop } from "./exits";

// The run queues of a new VM's n vCPUs (vm/runqueue.ts): one per
// processor up to n with spread=on on a machine with several, else one.
export function place(vm: Vm, spread: bool): void {
  const n = vm.vcpuCount;
  const count = spread ? min<i32>(n, <i32>cpu.count()) : 1;
  vm.queueCount = count;
  vm.queuesAsleep = 0;
  vm.threadsLive = 0;
  vm.ending = false;
  for (let q = 0; q < count; q++) vm.queue(q).reset(q, <u32>q);
  for (let i = 0; i < n; i++) vm.vcpu(i).queue = vm.queue(i % count);
}

// Host TSC ticks a vCPU runs before a runnable other gets the processor.
@inline function sliceTicks(): u64 {
  return irq.SLICE << <u64>(<u32>caps.misc & 0x1f);
}

// HLT of a vCPU of a vcpus=N guest (SDM Vol. 2A HLT): the instruction
// completes, the vCPU sleeps (runState HALTED) and gives up the processor;
// an NMI, or with RFLAGS.IF set an interrupt its local APIC delivers,
// wakes it (ipi.wakeIfRunnable), to resume after the HLT. With IF clear
// only an NMI or INIT can; the guest stops only when no vCPU can ever run
// again (next()).
export function handleHlt(vcpu: Vcpu, reason: u32): i32 {
  vcpu.haltIf = (vmx.vmread(V.GUEST_RFLAGS) & (1 << 9)) != 0;
  events.skipInstruction();
  vcpu.runState = R.RUN_HALTED;
  vcpu.queue.sliceEnd = 0;
  return RESUME;
}

// PAUSE-loop exit (reason 40; SDM Vol. 3C 26.1.3, "PAUSE-loop exiting" in
// vmcs01 for such guests, vmcs01.ts): the vCPU spins in a PAUSE loop,
// most likely waiting for another vCPU — a lock it holds, an answer to an
// IPI, a rendezvous — that cannot make progress while this one holds the
// processor. The PAUSE completes (a PAUSE exit is instruction-like: RIP
// names the PAUSE, 28.2.5 gives its length) and the vCPU's slice ends:
// another runnable vCPU gets the processor (next()), or, with none, this
// one goes on.
export function handlePause(vcpu: Vcpu, reason: u32): i32 {
  events.skipInstruction();
  vcpu.queue.sliceEnd = 0;
  return RESUME;
}

// After an exit of cur: the vCPU to go on with (cur, or another of its run
// queue made current), or null when the guest stopped (no vCPU can ever run
// again, its max-ticks= budget, a VMCS that cannot be loaded, another
// processor's vCPU ended it).
export function next(cur: Vcpu): Vcpu | null {
  const vm = cur.vm;
  const q = cur.queue;
  // With several processors: what the others posted (and the guest's end).
  const mail = q.mail;
  if (mail && takeMail(vm, q)) return null;
  // The one test every exit of such a guest makes: a halt, a wake-up or
  // the end of the slice (all of which zero or pass sliceEnd).
  let now = cpu.rdtsc();
  if (now < q.sliceEnd) return mail ? goOn(cur) : cur;
  const spread = vm.queueCount > 1;
  // One an IPI or interrupt just made runnable; else the halted vCPU itself
  // when something wakes it already (HLT with an interrupt pending); else
  // the next runnable of the queue after cur, cur last.
  let t = woken(vm, q, now);
  if (t == null && cur.runState == R.RUN_HALTED && ipi.wakeIfRunnable(cur, now)) t = cur;
  while (t == null) {
    t = roundRobin(cur, now);
    if (t != null) break;
    // Every vCPU of the queue sleeps: the earliest APIC timer among those
    // it would wake.
    let d = u64.MAX_VALUE;
    for (let i = q.number; i < vm.vcpuCount; i += vm.queueCount) {
      const v = vm.vcpu(i);
      if (v.runState == R.RUN_HALTED && v.haltIf) d = min(d, v.apic.nextTimerDeadline());
    }
    const end = cur.irq.budgetEnd;
    if (now >= end) {
      print.say("guest: ran past its max-ticks= budget");
      stop(cur, config.OUTCOME_TIMEOUT);
      return null;
    }
    if (d == u64.MAX_VALUE) {
      // Nothing here can wake one. On one processor nothing else can
      // either; with several, another processor's vCPU may send an IPI,
      // unless every queue is asleep too.
      if (!spread || vm.queuesAsleep + 1 == vm.queueCount) {
        print.say("guest: every vCPU halted or waiting for SIPI, with nothing that could wake one: halted forever");
        stop(cur, config.OUTCOME_HALT);
        return null;
      }
      q.asleep = true;
      vm.queuesAsleep++;
    }
    // Without the kernel's lock (another processor's thread may run it
    // meanwhile: everything is looked at again after).
    cpu.wait(min(d, end));
    if (q.asleep) {
      q.asleep = false;
      vm.queuesAsleep--;
    }
    if (q.mail && takeMail(vm, q)) return null;
    now = cpu.rdtsc();
    t = woken(vm, q, now);
  }
  q.sliceEnd = sliceEnd(vm, q, changetype<Vcpu>(t), now);
  if (t === cur) return spread ? goOn(cur) : cur;
  const n = changetype<Vcpu>(t);
  return switchTo(cur, n) ? n : null;
}

// The queue's mail: what the other processors sent its vCPUs (vm/ipi.ts
// post), into their APICs and states now, on their own processor; true
// when the guest has ended instead.
function takeMail(vm: Vm, q: RunQueue): bool {
  q.mail = false;
  if (vm.ending) return true;
  for (let i = q.number; i < vm.vcpuCount; i += vm.queueCount) {
    const v = vm.vcpu(i);
    if (v.posted) ipi.takePosted(v);
  }
  return false;
}

// The vCPU an IPI or interrupt made runnable (the queue's wake), if it
// still is.
function woken(vm: Vm, q: RunQueue, now: u64): Vcpu | null {
  if (q.wake < 0) return null;
  const w = vm.vcpu(q.wake);
  q.wake = -1;
  return ipi.wakeIfRunnable(w, now) ? w : null;
}

// cur runs on with its VMCS current: with several processors, what
// another one sent it may be due now (a SIPI, an INIT, an NMI: as when
// switchTo gives a vCPU the processor). Null when that stopped the guest.
function goOn(cur: Vcpu): Vcpu | null {
  if (!cur.startPending && !cur.initPending && !cur.ipiNmi) return cur;
  return signals(cur) ? cur : null;
}

// The end of t's slice, or earlier the first APIC timer deadline among the
// queue's halted vCPUs it may wake (so that it is seen at t's first exit
// after it; a t that does not exit is stopped by the preemption timer at
// its slice).
function sliceEnd(vm: Vm, q: RunQueue, t: Vcpu, now: u64): u64 {
  let end = now + sliceTicks();
  for (let i = q.number; i < vm.vcpuCount; i += vm.queueCount) {
    const v = vm.vcpu(i);
    if (v !== t && v.runState == R.RUN_HALTED && v.haltIf) end = min(end, v.apic.nextTimerDeadline());
  }
  return end;
}

// The next vCPU of cur's queue after cur (cur last) that can run.
function roundRobin(cur: Vcpu, now: u64): Vcpu | null {
  const vm = cur.vm;
  const stride = <u32>vm.queueCount;
  const count = <u32>vm.vcpuCount;
  // The queue's vCPUs are q, q + stride, ...: k steps of the stride.
  const mine = (count - <u32>cur.queue.number + stride - 1) / stride;
  for (let k: u32 = 1; k <= mine; k++) {
    const at = (cur.index / stride + k) % mine;
    const v = vm.vcpu(<i32>(at * stride + <u32>cur.queue.number));
    if (ipi.wakeIfRunnable(v, now)) return v;
  }
  return null;
}

// The processor goes from cur to t.
function switchTo(cur: Vcpu, t: Vcpu): bool {
  const vm = cur.vm;
  migrate.carryOut(cur);
  // The VMCS t runs on: vmcs02 while its L2 runs (nested/), else vmcs01.
  const n = t.nested;
  const vmcs = n.inL2 ? n.vmcs02.page : t.vmcs;
  if (vmx.vmptrld(vmcs) != vmx.VMX_SUCCEED) {
    print.say("sched: VMPTRLD of the next vCPU's VMCS failed");
    stop(cur, config.OUTCOME_STOPPED);
    return false;
  }
  if (vmcs01.vpidEnabled) {
    if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVVPID_ALL_CONTEXT) != 0) vmx.invvpid(V.INVVPID_TYPE_ALL_CONTEXT, 0, 0);
    else vmx.invvpid(V.INVVPID_TYPE_SINGLE_CONTEXT, vmcs01.GUEST_VPID, 0);
  }
  migrate.carryIn(t);
  t.queue.running = <i32>t.index;
  vm.switches++;
  t.switchedIn++;
  return signals(t);
}

// t has the processor with its VMCS current: a SIPI to start it, or an
// INIT or SIPI that is a VM exit to its L1; an NMI IPI. False when that
// stopped the guest.
function signals(t: Vcpu): bool {
  if ((t.startPending || t.initPending) && apstart.arrive(t) == STOP) return false;
  if (t.ipiNmi) {
    t.ipiNmi = false;
    if (irq.raiseNmi(t) == STOP) return false;
  }
  return true;
}
