// Running the guests of the command line, one after another: guest RAM and
// its EPT, the loaded multiboot kernel, vmcs01, the VM-entry/exit loop, and
// the report when the guest ends.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as mem from "../hw/mem";
import * as pages from "../mm/pages";
import * as print from "../lib/print";
import * as boot from "../boot/bootinfo";
import * as caps from "../vmx/caps";
import * as vmfail from "../vmx/vmfail";
import * as evmcs from "../vmx/evmcs";
import * as ept from "../ept/ept";
import * as loader from "../guest/loader";
import * as bz from "../guest/bzimage";
import * as ports from "../devices/ports";
import * as V from "../arch/vmx";
import * as config from "./config";
import * as guestmem from "./guestmem";
import * as R from "./vcpu";
import * as vcpus from "./vcpu";
import * as vms from "./vm";
import { Vcpu } from "./vcpu";
import { Vm } from "./vm";
import * as xstate from "./xstate";
import * as vmcs01 from "./vmcs01";
import * as events from "./events";
import * as exits from "./exits";
import * as cpuidExit from "./exit/cpuid";
import * as msrExit from "./exit/msr";
import * as crExit from "./exit/cr";
import * as ioExit from "./exit/io";
import * as vmcallExit from "./exit/vmcall";
import * as hyperv from "./exit/hyperv";
import * as misc from "./exit/misc";
import * as irq from "./irq";
import * as apicv from "./apicv";
import * as migrate from "./migrate";
import * as sched from "./sched";
import * as cycle from "../snapshot/cycle";
import * as vmram from "../snapshot/vmram";
import * as nesting from "./nesting";
import * as ramsnap from "../snapshot/testcall";
import { RamSnapshot } from "../snapshot/ram";

const SIZE_2M: u64 = 0x200000;

function registerHandlers(): void {
  exits.register(V.EXIT_REASON_EXCEPTION_NMI, misc.handleExceptionOrNmi);
  exits.register(V.EXIT_REASON_EXTERNAL_INTERRUPT, misc.handleExternalInterrupt);
  exits.register(V.EXIT_REASON_TRIPLE_FAULT, misc.handleTripleFault);
  exits.register(V.EXIT_REASON_TASK_SWITCH, misc.handleTaskSwitch);
  exits.register(V.EXIT_REASON_CPUID, cpuidExit.handle);
  exits.register(V.EXIT_REASON_GETSEC, misc.handleUD);
  exits.register(V.EXIT_REASON_HLT, misc.handleHlt);
  exits.register(V.EXIT_REASON_INVD, misc.handleWbinvd);
  exits.register(V.EXIT_REASON_RDTSC, misc.handleRdtsc);
  exits.register(V.EXIT_REASON_VMCALL, vmcallExit.handle);
  exits.register(V.EXIT_REASON_CR_ACCESS, crExit.handle);
  exits.register(V.EXIT_REASON_IO_INSTRUCTION, ioExit.handle);
  exits.register(V.EXIT_REASON_RDMSR, msrExit.handleRead);
  exits.register(V.EXIT_REASON_WRMSR, msrExit.handleWrite);
  exits.register(V.EXIT_REASON_MWAIT, misc.handleUD);
  exits.register(V.EXIT_REASON_MONITOR, misc.handleUD);
  exits.register(V.EXIT_REASON_EPT_VIOLATION, misc.handleEptViolation);
  exits.register(V.EXIT_REASON_EPT_MISCONFIG, misc.handleEptMisconfig);
  exits.register(V.EXIT_REASON_RDTSCP, misc.handleRdtsc);
  exits.register(V.EXIT_REASON_WBINVD, misc.handleWbinvd);
  exits.register(V.EXIT_REASON_XSETBV, misc.handleXsetbv);
  exits.register(V.EXIT_REASON_VMFUNC, misc.handleUD);
  exits.register(V.EXIT_REASON_INTERRUPT_WINDOW, irq.handleWake);
  exits.register(V.EXIT_REASON_PREEMPTION_TIMER, irq.handleWake);
  exits.register(V.EXIT_REASON_NMI_WINDOW, irq.handleWake);
  exits.register(V.EXIT_REASON_APIC_ACCESS, apicv.handleApicAccess);
  exits.register(V.EXIT_REASON_VIRTUALIZED_EOI, apicv.handleVirtualizedEoi);
  exits.register(V.EXIT_REASON_APIC_WRITE, apicv.handleApicWrite);
  // The VMX instructions' exits are nested/'s (nested/install.ts).
}

// RDPMC exits only when intercepted: a guest without a PMU gets #GP
// (SDM Vol. 2B RDPMC: invalid counter).
function handleRdpmc(vcpu: Vcpu, reason: u32): i32 {
  events.injectGP();
  return exits.RESUME;
}

let handlersReady = false; // machine-wide: the exit table is filled once

// Pass-through MSRs that VMX does not switch keep the guest's values in the
// processor: clear them so that the next guest does not see this one's.
function scrubPassThroughMsrs(vcpu: Vcpu): void {
  for (let i = 0; i < vmcs01.UNSWITCHED.length; i++) cpu.wrmsr(unchecked(vmcs01.UNSWITCHED[i]), 0);
  // Nor are XCR0 and the extended state: initial values, the host's XCR0.
  xstate.scrub(vcpu);
}

function printName(g: i32): void {
  const f = config.file[g];
  const tmp = memory.data(64);
  const n = <u32>min<u32>(boot.fileNameLen(f), 64);
  mem.copyin(tmp, boot.fileNameAddr(f), n);
  let w = 0;
  while (w < <i32>n && load<u8>(tmp + <usize>w) != 0x20) w++;
  print.bytes(tmp, w);
}

// The VM-entry/exit loop. Returns when a handler stops the VM. Exits while
// L2 runs, and then L2's interrupts, go to `l2`: nested VMX's exit path
// (nested/install.ts L2Path), which kmain passes down. vm/ does not import
// nested/ (vm/nesting.ts); as a type parameter rather than a function
// reference, L2's path is compiled into this loop and inlined as before
// (two calls through references cost every L2 exit about 60 ticks).
// Every exit passes here: what it reads and writes of the objects costs a
// bounds-checked access each in the wasm2c build, so the loop keeps the
// address of the exit counters in a local, and the launch state and exit
// count are the entry wrapper's to keep (vmx.enter). The level that runs,
// the Nested's inL2, is read once after each handler that may change it
// and kept in l2run.
// What happens every N exits (migrate=N, snapshot=N) is out of line
// (periodicWork()), behind one test of a local when neither option is on,
// before the interrupts are delivered. snapshot=N replaces the vCPU, and so
// may a handler (the restore hypercall returns exits.SWITCHED): the loop
// goes on with the vCPU they leave in vm.vcpu0, delivering its interrupts
// as for any other (one call site each for l2.deliver and irq.deliver:
// binaryen inlines them here, a second caller cost every L2 exit 30-40
// ticks).
function loop<L2>(vcpu: Vcpu, l2: L2): void {
  const counts = vcpu.vm.exitCounts;
  const every = <u64>config.snapshotEvery[vcpu.vm.guest];
  // Several vCPUs: the scheduler runs there too (sched.ts).
  const periodic = every != 0 || migrate.every != 0 || vcpu.vm.vcpuCount > 1;
  let l2run = vcpu.nested.inL2;
  while (true) {
    const r = vmx.enter(vcpu.regs);
    if (r != vmx.VMX_SUCCEED) {
      print.str("hv: guest: VM entry failed: ");
      vmfail.describe(r);
      print.nl();
      exits.stop(vcpu, config.OUTCOME_STOPPED);
      return;
    }
    const reason = <u32>vmx.vmread(V.VM_EXIT_REASON);
    if ((reason & V.EXIT_REASON_FLAG_ENTRY_FAILURE) != 0) {
      if (l2run) print.say("nested: the processor refused vmcs02 that the hypervisor's entry checks passed (a hypervisor bug)");
      misc.reportEntryFailure(vcpu, reason);
      exits.stop(vcpu, config.OUTCOME_STOPPED);
      return;
    }
    events.reinjectVectoring();
    const fromL1 = !l2run;
    if (l2run) {
      if (l2.exit(vcpu, reason & 0xffff) == exits.STOP) return;
    } else {
      const a = exits.dispatchCounted(vcpu, reason & 0xffff, counts);
      if (a != exits.RESUME) {
        if (a == exits.STOP) return;
        vcpu = vcpu.vm.vcpu0; // SWITCHED: the restored vCPU
      }
    }
    l2run = vcpu.nested.inL2;
    if (periodic) {
      // An exit of L1's that left L2 to run: L1's VMLAUNCH/VMRESUME, whose
      // entry into L2 is pending (a snapshot records RUN_PENDING).
      const v = periodicWork(vcpu, every, fromL1 && l2run);
      if (v == null) return;
      vcpu = v;
      l2run = v.nested.inL2;
    }
    // Interrupts: L2's (nested/l2irq.ts may reflect an exit to L1 for one),
    // then L1's, also right after such a reflection. One call site for
    // irq.deliver keeps it inlined in this loop (a second one cost every
    // exit 17 ticks). (A restored vCPU's interrupt window and preemption
    // timer are rebuilt here too.)
    if (l2run) {
      if (l2.deliver(vcpu) == exits.STOP) return;
      l2run = vcpu.nested.inL2;
    }
    if (!l2run) irq.deliver(vcpu);
  }
}

// Every N exits: the vCPU moves to the next processor (migrate=N), is
// replaced by one restored from its snapshot (snapshot=N, every; on the
// next processor when there are several). The vCPU to go on with, or null
// when the guest stopped. runPending: see loop.
function periodicWork(vcpu: Vcpu, every: u64, runPending: bool): Vcpu | null {
  // With several vCPUs: the one to run next (sched.ts). Guests with
  // snapshot= or migrate= have one (runOne).
  if (vcpu.vm.vcpuCount > 1) return sched.next(vcpu);
  if (migrate.due(vcpu) && !migrate.move(vcpu)) {
    exits.stop(vcpu, config.OUTCOME_STOPPED);
    return null;
  }
  if (every == 0 || vcpu.exits % every != 0) return vcpu;
  const v = cycle.cycle(vcpu, runPending);
  if (v == null) {
    exits.stop(vcpu, config.OUTCOME_STOPPED);
    return null;
  }
  return v;
}

// Run guest g (L2's exits to `l2`, see loop); returns whether it ended as
// expected.
function runOne<L2>(g: i32, l2: L2): bool {
  const bytes = config.memBytes[g];
  print.str("hv: guest ");
  print.dec(g + 1);
  print.str(" (");
  printName(g);
  print.str("): ");
  print.dec(bytes >> 20);
  print.str(" MiB, vpid ");
  print.str(config.vpid[g] ? "on" : "off");
  if (config.nested[g]) print.str(", nested VMX");
  if (config.hyperv[g]) print.str(", Hyper-V interface");
  if (evmcs.inUse) print.str(", enlightened VMCS");
  print.str(", expecting ");
  print.str(config.outcomeName(config.expect[g]));
  if (config.expect[g] == config.OUTCOME_EXIT) {
    print.str(":");
    print.dec(config.expectCode[g]);
  }
  print.nl();

  // Several vCPUs (sched.ts, runqueue.ts); what cannot handle them
  // yet is refused rather than run wrong: a snapshot holds one vCPU
  // (snapshot=, ramsnap=, whose shadow-EPT link is vCPU 0's), and a
  // migration moves only the running vCPU's VMCSs (migrate=).
  const n = config.vcpus[g];
  if (n > 1 && (config.snapshotEvery[g] != 0 || config.ramSnapshot[g] != config.RAMSNAP_OFF || migrate.every != 0)) {
    print.say("guest: vcpus= above 1 cannot be combined with snapshot=, ramsnap= or migrate= yet (a snapshot and a migration hold one vCPU): refused");
    return false;
  }
  const vm = vms.create(g);
  vm.vcpuCount = n;
  for (let i = 0; i < n; i++) {
    const v = vcpus.create(vm, <u32>i);
    // vCPU 0 is the bootstrap processor; the APs wait for INIT and SIPI
    // (apstart.ts).
    if (i > 0) v.runState = R.RUN_WAIT_SIPI;
    vm.setVcpu(i, v);
  }
  sched.place(vm, config.spread[g]);
  let vcpu = vm.vcpu0;
  // HLT: with several vCPUs it gives the processor to another (sched.ts).
  exits.register(V.EXIT_REASON_HLT, n > 1 ? sched.handleHlt : misc.handleHlt);
  // PAUSE loops: only such guests' vmcs01 exits on them (vmcs01.ts).
  if (n > 1) exits.register(V.EXIT_REASON_PAUSE, sched.handlePause);
  const ram = pages.allocAligned(<u32>(bytes >> 12), SIZE_2M);
  if (ram == 0) {
    print.say("guest: not enough free memory for its RAM");
    return false;
  }
  const root = ept.create();
  vm.ramHpa = ram;
  vm.ramBytes = bytes;
  vm.eptRoot = root;
  let ok = root != 0 && ept.map(root, 0, ram, bytes, ept.EPT_RWX);
  if (!ok) print.say("guest: out of memory for its EPT tables");
  // A RAM snapshot (ramsnap=): made now, with the tables it needs. Nested
  // VMX's set-up (nesting.start) links it to the vCPU's shadow EPT.
  let snap: RamSnapshot | null = null;
  if (ok && config.ramSnapshot[g] != config.RAMSNAP_OFF) {
    snap = ramsnap.setup(ram, bytes, root, config.ramSnapshot[g] == config.RAMSNAP_WP);
    ok = snap !== null;
  }
  vm.ramSnapshot = snap;
  guestmem.use(vm);
  if (ok) {
    ok = loader.load(vm.entry, config.file[g], boot.cmdline + <usize>config.argsStart[g], config.argsLen[g],
      config.modulesOf(g), config.moduleCount[g], config.initrd[g], n);
  }
  if (ok) ok = apicv.startVm(vm);
  // The Hyper-V interface first: what nested VMX offers depends on it.
  hyperv.start(vm, config.hyperv[g]);
  // Each vCPU's vmcs01 and nested part, vCPU 0's last so that its vmcs01
  // is current for the first entry.
  for (let i = n - 1; ok && i >= 0; i--) {
    const v = vm.vcpu(i);
    ok = vmcs01.create(v, snap !== null ? snap.eptp() : ept.eptp(root), vm.entry.eip, config.vpid[g]);
    // The Linux boot protocol's GDT and selectors (guest/bzimage.ts).
    if (ok && i == 0 && vm.entry.gdtLimit != 0) vmcs01.bootGdt(vm.entry.gdtBase, vm.entry.gdtLimit, bz.BOOT_CS, bz.BOOT_DS);
    if (ok) ok = nesting.start(v, config.nested[g], config.shadowVmcs[g]);
  }
  if (ok) {
    vcpu.setReg(R.RAX, vm.entry.eax);
    vcpu.setReg(R.RBX, vm.entry.ebx);
    vcpu.setReg(R.RSI, vm.entry.esi);
    // Cached translations of an earlier guest must not survive into this
    // one: the same EPTP or VPID may have been used before (SDM 29.4.3).
    if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) vmx.invept(2, 0);
    if (vmcs01.vpidEnabled && (caps.eptVpidCap & V.EPT_VPID_CAP_INVVPID_SINGLE_CONTEXT) != 0)
      vmx.invvpid(1, vmcs01.GUEST_VPID, 0);
    // The vCPU's extended state onto this processor (VM entry loads none).
    xstate.restore(vcpu);
    if (vm.queueCount == 1 || startThreads(vm)) loop<L2>(vcpu, l2);
    if (vm.queueCount > 1) endThreads(vm);
    vcpu = vm.vcpu0; // snapshot=N and the restore hypercall replace it
    ports.flushConsole(vm);
    for (let i = 0; i < n; i++) {
      const v = vm.vcpu(i);
      vmx.vmclear(v.vmcs);
      nesting.tearDown(v);
      v.setLaunched(false);
    }
    scrubPassThroughMsrs(vcpu);
    // The next guest starts where the first did.
    if (cpu.index() != 0) {
      cpu.migrate(0);
      scrubPassThroughMsrs(vcpu);
    }
  } else {
    exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  // The RAM snapshot (ramsnap=, or the snapshot hypercalls') and its copy
  // go back to the allocator.
  vmram.release(vm);
  apicv.endVm(vm);
  ept.destroy(root);
  pages.free(ram, <u32>(bytes >> 12));
  const pass = report(vcpu, g);
  for (let i = n - 1; i >= 0; i--) vcpus.destroy(vm.vcpu(i));
  return pass;
}

function report(vcpu: Vcpu, g: i32): bool {
  const o = vcpu.vm.outcome;
  const want = config.expect[g];
  let pass: bool;
  if (want == config.OUTCOME_PASS) {
    // isa-debug-exit value 0 is code 1; hypercall exit status 0 is code 0.
    pass = o == config.OUTCOME_EXIT && (vcpu.vm.exitCode == 0 || (vcpu.vm.ports.exitRequested && vcpu.vm.exitCode == 1));
  } else if (want == config.OUTCOME_EXIT) {
    pass = o == config.OUTCOME_EXIT && vcpu.vm.exitCode == config.expectCode[g];
  } else {
    pass = o == want;
  }
  print.str("hv: guest ");
  print.dec(g + 1);
  print.str(" (");
  printName(g);
  print.str(") ended: ");
  print.str(config.outcomeName(o));
  if (o == config.OUTCOME_EXIT) {
    print.str(vcpu.vm.ports.exitRequested ? " via isa-debug-exit, code " : " via hypercall, status ");
    print.dec(vcpu.vm.exitCode);
  }
  print.str(", ");
  print.dec(vcpu.exits);
  print.str(" exits, denied port reads ");
  print.dec(vcpu.vm.ports.deniedReads);
  print.str(" writes ");
  print.dec(vcpu.vm.ports.deniedWrites);
  print.str(pass ? ": as expected" : ": NOT as expected");
  print.nl();
  if (migrate.every != 0) {
    print.str("hv: vcpu migrations: ");
    print.dec(vcpu.vm.migrations);
    print.str(" (every ");
    print.dec(migrate.every);
    print.str(" exits, ");
    print.dec(cpu.count());
    print.str(" processors)");
    print.nl();
  }
  if (config.snapshotEvery[g] != 0) {
    print.str("hv: snapshots: ");
    print.dec(vcpu.vm.snapshots);
    print.str(" taken (in VMX operation ");
    print.dec(vcpu.vm.snapshotsInVmx);
    print.str(", with a current vmcs12 not launched ");
    print.dec(vcpu.vm.snapshotsBeforeLaunch);
    print.str(", in L2 ");
    print.dec(vcpu.vm.snapshotsInL2);
    print.str(", in a nested VM entry ");
    print.dec(vcpu.vm.snapshotsRunPending);
    print.str(", with an eVMCS ");
    print.dec(vcpu.vm.snapshotsWithEvmcs);
    print.str("); every ");
    print.dec(config.snapshotEvery[g]);
    print.str(" exits, ");
    print.dec(cpu.count());
    print.str(" processor(s)");
    print.nl();
    if (vcpu.vm.snapshots != 0) {
      print.str("hv: snapshot cycles: ");
      print.dec(vcpu.vm.snapshotTicks / <u64>vcpu.vm.snapshots);
      print.str(" ticks each (save + restore; L1's TSC stood still meanwhile)");
      print.nl();
    }
  }
  if (config.hyperv[g]) {
    print.str("hv: hyper-v: ");
    print.dec(vcpu.vm.hvHypercalls);
    print.str(" hypercalls (every call code answered HV_STATUS_INVALID_HYPERCALL_CODE)");
    print.nl();
  }
  if (vcpu.vm.vcpuCount > 1) reportVcpus(vcpu.vm);
  if (vcpu.vm.uart.firstLineTsc != 0) {
    print.str("hv: console: the guest's first line ended at tick ");
    print.dec(vcpu.vm.uart.firstLineTsc);
    print.nl();
  }
  const io = vcpu.vm.ioapic;
  if (io.sent != 0) {
    print.str("hv: ioapic: ");
    print.dec(io.sent);
    print.str(" interrupts sent, ");
    print.dec(io.dropped);
    print.str(" taken by no local APIC");
    print.nl();
  }
  exits.report(vcpu.vm);
  if (config.nested[g]) {
    // Each vCPU's nested VMX has its own counts (vcpu.nested): one block
    // per vCPU, headed by its number when there are several.
    const vm = vcpu.vm;
    for (let i = 0; i < vm.vcpuCount; i++) {
      if (vm.vcpuCount > 1) {
        print.str("hv: nested VMX of vcpu ");
        print.dec(i);
        print.str(":");
        print.nl();
      }
      nesting.report(vm.vcpu(i));
    }
  }
  vcpu.vm.profile.report();
  return pass;
}

// A guest with several vCPUs: each one's exits, how it ended, and how
// often the processor changed hands.
function reportVcpus(vm: Vm): void {
  printPlacement(vm);
  print.str(", ");
  print.dec(vm.switches);
  print.str(" switches");
  print.nl();
  for (let i = 0; i < vm.vcpuCount; i++) {
    const v = vm.vcpu(i);
    print.str("hv:   vcpu ");
    print.dec(i);
    print.str(": ");
    print.dec(v.exits);
    print.str(" exits, ");
    print.str(v.runState == R.RUN_ACTIVE ? "running" : v.runState == R.RUN_HALTED ? "halted" : "waiting for SIPI");
    print.str(", IPIs taken ");
    print.dec(v.apic.ipisDelivered);
    print.nl();
  }
}

// The kernel threads of a VM whose vCPUs run on several processors
// (vm/runqueue.ts, boot/smp/threads.c): one for each run queue after the
// first, which is this thread's. Each queue's VMCSs are made current on its
// own processor only (SDM Vol. 3C 25.11.1: a VMCS is active on one
// processor at a time), so they are cleared here first. False (the guest
// stopped) if a thread cannot be started.
const THREAD_STACK_PAGES: u32 = 64; // 256 KiB, as the boot processor's (boot/common/start.c)

function startThreads(vm: Vm): bool {
  for (let i = 0; i < vm.vcpuCount; i++) {
    const v = vm.vcpu(i);
    if (v.queue.number != 0 && !migrate.leaveCpu(v)) {
      print.say("guest: VMCLEAR of a vCPU's VMCS failed");
      exits.stop(vm.vcpu0, config.OUTCOME_STOPPED);
      return false;
    }
  }
  if (vmx.vmptrld(vm.vcpu0.vmcs) != vmx.VMX_SUCCEED) {
    print.say("guest: VMPTRLD of vCPU 0's VMCS failed");
    exits.stop(vm.vcpu0, config.OUTCOME_STOPPED);
    return false;
  }
  for (let q = 1; q < vm.queueCount; q++) {
    const rq = vm.queue(q);
    const stack = pages.allocAligned(THREAD_STACK_PAGES, 4096);
    if (stack == 0 || !cpu.spawn(rq.cpu, stack + (<u64>THREAD_STACK_PAGES << 12), THREAD_STACK_PAGES << 12, <u32>changetype<usize>(vm.vcpu(q)))) {
      if (stack != 0) pages.free(stack, THREAD_STACK_PAGES);
      print.str("hv: guest: cannot start the kernel thread of processor ");
      print.dec(rq.cpu);
      print.str(stack == 0 ? " (no memory for its stack)" : " (not running)");
      print.nl();
      exits.stop(vm.vcpu0, config.OUTCOME_STOPPED);
      return false;
    }
    rq.stack = stack;
    vm.threadsLive++;
  }
  printPlacement(vm);
  print.nl();
  return true;
}

// "hv: vcpus: N on P processors" or "... sharing one processor" (no newline).
function printPlacement(vm: Vm): void {
  print.str("hv: vcpus: ");
  print.dec(vm.vcpuCount);
  if (vm.queueCount > 1) {
    print.str(" on ");
    print.dec(vm.queueCount);
    print.str(" processors");
  } else {
    print.str(" sharing one processor");
  }
}

// The guest has ended: the threads of the queues but `mine` stop at their
// vCPU's next exit (kicked, so at once) or wait (sched.ts takeMail).
function endGuest(vm: Vm, mine: i32): void {
  vm.ending = true;
  for (let q = 0; q < vm.queueCount; q++) {
    if (q == mine) continue;
    vm.queue(q).mail = true;
    cpu.kick(vm.queue(q).cpu);
  }
}

// The guest has ended (or could not start): the other threads end; then
// this one goes on alone.
function endThreads(vm: Vm): void {
  endGuest(vm, 0);
  while (vm.threadsLive > 0) cpu.wait(u64.MAX_VALUE);
  if (!cpu.solo()) print.say("guest: a kernel thread has not ended (boot/smp/threads.c counts one more)");
  for (let q = 1; q < vm.queueCount; q++) {
    const rq = vm.queue(q);
    if (rq.stack != 0) pages.free(rq.stack, THREAD_STACK_PAGES);
    rq.stack = 0;
  }
}

// A run queue's kernel thread (started by startThreads, on the queue's
// processor; `first` is its first vCPU): its VMCSs take this processor's
// host state, it waits until one of its vCPUs can run (an AP waits for
// SIPI) and runs them until the guest ends, then clears its VMCSs here and
// leaves this processor's pass-through MSRs clean, as the boot processor's
// thread does.
export function runThread<L2>(first: Vcpu, l2: L2): void {
  const vm = first.vm;
  const q = first.queue;
  // The queue's vCPUs onto this processor, `first` last: its VMCS is
  // current then.
  let ok = true;
  const last = q.number + ((vm.vcpuCount - 1 - q.number) / vm.queueCount) * vm.queueCount;
  for (let i = last; ok && i >= q.number; i -= vm.queueCount) ok = migrate.arriveCpu(vm.vcpu(i));
  // This processor may cache translations from an earlier guest with the
  // same EPTP or VPID (SDM 29.4.3).
  if (ok) {
    if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);
    if (vmcs01.vpidEnabled && (caps.eptVpidCap & V.EPT_VPID_CAP_INVVPID_ALL_CONTEXT) != 0)
      vmx.invvpid(V.INVVPID_TYPE_ALL_CONTEXT, 0, 0);
  }
  if (!ok) {
    print.str("hv: guest: the VMCSs of vCPU ");
    print.dec(first.index);
    print.str(" and its queue cannot be loaded on processor ");
    print.dec(cpu.index());
    print.nl();
    exits.stop(first, config.OUTCOME_STOPPED);
  } else {
    migrate.carryIn(first);
    const v = sched.next(first);
    if (v != null) loop<L2>(v, l2);
  }
  endGuest(vm, q.number);
  for (let i = q.number; i < vm.vcpuCount; i += vm.queueCount) migrate.leaveCpu(vm.vcpu(i));
  scrubPassThroughMsrs(first);
  vm.threadsLive--;
}

// Run every guest (L2's exits to `l2`, see loop); returns whether all ended
// as expected.
export function runAll<L2>(l2: L2): bool {
  if (!handlersReady) {
    registerHandlers();
    exits.register(V.EXIT_REASON_RDPMC, handleRdpmc);
    handlersReady = true;
  }
  let all = true;
  for (let g = 0; g < config.count; g++) {
    if (!runOne<L2>(g, l2)) all = false;
  }
  print.str("hv: guests: ");
  print.dec(config.count);
  print.str(all ? " run, all as expected" : " run, some NOT as expected");
  print.nl();
  return all;
}
