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
import * as ept from "../ept/ept";
import * as loader from "../guest/loader";
import * as ports from "../devices/ports";
import * as V from "../arch/vmx";
import * as config from "./config";
import * as guestmem from "./guestmem";
import * as R from "./vcpu";
import * as vcpus from "./vcpu";
import * as vms from "./vm";
import { Vcpu } from "./vcpu";
import * as xstate from "./xstate";
import * as vmcs01 from "./vmcs01";
import * as events from "./events";
import * as exits from "./exits";
import * as cpuidExit from "./exit/cpuid";
import * as msrExit from "./exit/msr";
import * as crExit from "./exit/cr";
import * as ioExit from "./exit/io";
import * as vmcallExit from "./exit/vmcall";
import * as misc from "./exit/misc";
import * as irq from "./irq";
import * as migrate from "./migrate";
import * as nestedInsn from "../nested/handlers";
import * as l2exit from "../nested/l2exit";
import * as launch from "../nested/launch";
import * as l2irq from "../nested/l2irq";
import * as entryChecks from "../nested/entry-checks";
import * as vmcs02 from "../nested/vmcs02";
import * as shadow from "../nested/shadow";
import * as shadowept from "../nested/shadowept";
import { RamSnapshot } from "../snapshot/ram";
import * as ramsnap from "../snapshot/testcall";

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
  exits.register(V.EXIT_REASON_VMLAUNCH, launch.handle);
  exits.register(V.EXIT_REASON_VMRESUME, launch.handle);
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
  // VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, INVEPT,
  // INVVPID: emulated with nested=on, #UD otherwise.
  nestedInsn.register();
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

// The VM-entry/exit loop. Returns when a handler stops the VM.
// Every exit passes here: what it reads and writes of the objects costs a
// bounds-checked access each in the wasm2c build, so the loop keeps the
// address of the exit counters in a local, and the launch state and exit
// count are the entry wrapper's to keep (vmx.enter). The level that runs,
// the Nested's inL2, is read once after each handler that may change it
// and kept in l2.
function loop(vcpu: Vcpu): void {
  const counts = vcpu.vm.exitCounts;
  const n = vcpu.nested;
  let l2 = n.inL2;
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
      if (l2) print.say("nested: the processor refused vmcs02 that the hypervisor's entry checks passed (a hypervisor bug)");
      misc.reportEntryFailure(vcpu, reason);
      exits.stop(vcpu, config.OUTCOME_STOPPED);
      return;
    }
    events.reinjectVectoring();
    if (l2) {
      if (l2exit.handle(vcpu, reason & 0xffff) == exits.STOP) return;
    } else {
      if (exits.dispatchCounted(vcpu, reason & 0xffff, counts) == exits.STOP) return;
    }
    l2 = n.inL2;
    // Interrupts: L2's (l2irq.ts may reflect an exit to L1 for one), then
    // L1's, also right after such a reflection. One call site for
    // irq.deliver keeps it inlined in this loop (a second one cost every
    // exit 17 ticks).
    if (l2) {
      if (l2irq.deliver(vcpu) == exits.STOP) return;
      l2 = n.inL2;
    }
    if (!l2) irq.deliver(vcpu);
    if (migrate.due(vcpu) && !migrate.move(vcpu)) {
      exits.stop(vcpu, config.OUTCOME_STOPPED);
      return;
    }
  }
}

// Run guest g; returns whether it ended as expected.
function runOne(g: i32): bool {
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
  print.str(", expecting ");
  print.str(config.outcomeName(config.expect[g]));
  if (config.expect[g] == config.OUTCOME_EXIT) {
    print.str(":");
    print.dec(config.expectCode[g]);
  }
  print.nl();

  const vm = vms.create(g);
  const vcpu = vcpus.create(vm, 0);
  vcpu.nested.enabled = config.nested[g]; // nested=on: VMX offered to L1
  vm.vcpu0 = vcpu;
  vm.vcpuCount = 1;
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
  // A RAM snapshot (ramsnap=): made now, with the tables it needs.
  let snap: RamSnapshot | null = null;
  if (ok && config.ramSnapshot[g] != config.RAMSNAP_OFF) {
    snap = ramsnap.setup(ram, bytes, root, config.ramSnapshot[g] == config.RAMSNAP_WP);
    ok = snap !== null;
    // L2's writes through shadow EPT bypass L0's EPT flags: the snapshot
    // revokes their write access (one vCPU per guest today).
    if (snap !== null) snap.shadow = vcpu.nested.shadowEpt;
  }
  vm.ramSnapshot = snap;
  guestmem.use(vm);
  if (ok) {
    ok = loader.load(vm.entry, config.file[g], boot.cmdline + <usize>config.argsStart[g], config.argsLen[g],
      config.modulesOf(g), config.moduleCount[g]);
  }
  if (ok) ok = vmcs01.create(vcpu, snap !== null ? snap.eptp() : ept.eptp(root), vm.entry.eip, config.vpid[g]);
  if (ok) ok = shadow.setup(vcpu, config.nested[g] && config.shadowVmcs[g]);
  if (ok) {
    vcpu.setReg(R.RAX, vm.entry.eax);
    vcpu.setReg(R.RBX, vm.entry.ebx);
    // Cached translations of an earlier guest must not survive into this
    // one: the same EPTP or VPID may have been used before (SDM 29.4.3).
    if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) vmx.invept(2, 0);
    if (vmcs01.vpidEnabled && (caps.eptVpidCap & V.EPT_VPID_CAP_INVVPID_SINGLE_CONTEXT) != 0)
      vmx.invvpid(1, vmcs01.GUEST_VPID, 0);
    // The vCPU's extended state onto this processor (VM entry loads none).
    xstate.restore(vcpu);
    loop(vcpu);
    ports.flushConsole(vm);
    vmx.vmclear(vcpu.vmcs);
    // A nested guest's vmcs02 is active here too; clear it before its page
    // is reused (a VMCS region is not written while active, 25.11.1).
    vmcs02.vmclear(vcpu.nested);
    shadow.vmclear(vcpu.nested);
    vcpu.setLaunched(false);
    scrubPassThroughMsrs(vcpu);
    // The next guest starts where the first did.
    if (cpu.index() != 0) {
      cpu.migrate(0);
      scrubPassThroughMsrs(vcpu);
    }
  } else {
    exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  vm.ramSnapshot = null;
  guestmem.use(vm);
  if (snap !== null) RamSnapshot.destroy(snap);
  ept.destroy(root);
  pages.free(ram, <u32>(bytes >> 12));
  const pass = report(vcpu, g);
  vcpus.destroy(vcpu);
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
  exits.report(vcpu.vm);
  if (config.nested[g]) reportNested(vcpu);
  vcpu.vm.profile.report();
  return pass;
}

// The L2 exits: reflected to L1 by reason, and those L0 handled itself.
function reportNested(vcpu: Vcpu): void {
  const n = vcpu.nested;
  const counts = n.counts;
  let total: u64 = 0;
  for (let i = 0; i < exits.REASONS; i++) total += counts.reflected(i);
  print.str("hv: L2 exits: ");
  print.dec(total);
  print.str(" reflected to L1, ");
  print.dec(counts.handledByL0);
  print.str(" handled by L0; ");
  print.dec(counts.launches);
  print.str(" nested entries; vmcs02 constant state written ");
  print.dec(n.vmcs02.constantWrites);
  print.str(" time(s); shadow VMCS ");
  if (n.shadow.enabled) {
    print.dec(n.shadow.pushes);
    print.str(" pushes, ");
    print.dec(n.shadow.pulls);
    print.str(" pulls");
  } else {
    print.str("off");
  }
  print.nl();
  // What the change tracking of nested/state.ts saved.
  print.str("hv: nested entries: control/host checks skipped ");
  print.dec(entryChecks.skipped(n));
  print.str(", guest-state checks partial ");
  print.dec(entryChecks.partialGuest(n));
  print.str(", vmcs02 merged whole ");
  print.dec(n.vmcs02.wholeMerges);
  print.str("; L1 host state computed ");
  print.dec(n.host.stagings);
  print.str(" time(s)");
  print.nl();
  shadowept.report(n.shadowEpt);
  for (let i = 0; i < exits.REASONS; i++) {
    if (counts.reflected(i) == 0) continue;
    print.str("hv:   L2 -> L1 ");
    const name = V.exitReasonName(<u32>i);
    print.str(name);
    // At least one space: ENTRY_FAILURE_GUEST_STATE is 25 characters.
    for (let pad = name.length; pad < 24 || pad == name.length; pad++) print.chr(0x20);
    print.dec(counts.reflected(i));
    print.nl();
  }
}

// Run every guest; returns whether all ended as expected.
export function runAll(): bool {
  if (!handlersReady) {
    registerHandlers();
    exits.register(V.EXIT_REASON_RDPMC, handleRdpmc);
    handlersReady = true;
  }
  let all = true;
  for (let g = 0; g < config.count; g++) {
    if (!runOne(g)) all = false;
  }
  print.str("hv: guests: ");
  print.dec(config.count);
  print.str(all ? " run, all as expected" : " run, some NOT as expected");
  print.nl();
  return all;
}
