// The kernel's entry point. A boot front-end (boot/uefi or boot/multiboot)
// has set up the machine and built the boot information; kmain runs the
// hypervisor on the boot processor and ends the run through sys.exit.
import * as cpu from "./hw/cpu";
import * as sys from "./hw/sys";
import * as print from "./lib/print";
import * as boot from "./boot/bootinfo";
import * as pages from "./mm/pages";
import * as ident from "./cpu/ident";
import * as vmxon from "./vmx/vmxon";
import * as evmcs from "./vmx/evmcs";
import * as cmdline from "./boot/cmdline";
import * as config from "./vm/config";
import * as guest from "./vm/guest";
import * as nested from "./nested/install";
import { L2Path } from "./nested/install";
import { Vcpu } from "./vm/vcpu";
import { STATUS_OK, STATUS_BOOT, STATUS_FAIL } from "./lib/status";
import { MSR_IA32_FS_BASE } from "./arch/vmx";

export function kmain(bootInfo: u64): void {
  print.str("hv: kernel start tsc=");
  print.dec(cpu.rdtsc());
  print.nl();
  if (!boot.parse(bootInfo)) {
    sys.exit(STATUS_BOOT);
    return;
  }
  boot.report();
  if (!cmdline.parse()) {
    sys.exit(STATUS_BOOT);
    return;
  }
  if (cmdline.crash != cmdline.CRASH_NONE) crashNow(cmdline.crash);
  pages.init();
  pages.report();
  ident.identify();
  ident.report();
  const status = enableVmxEverywhere();
  if (status != STATUS_OK) {
    sys.exit(status);
    return;
  }
  if (config.count == 0) {
    print.say("no guest on the command line (guest=FILE): nothing to run");
    sys.exit(STATUS_OK);
    return;
  }
  // Nested VMX joins the exit path before any guest runs: vm/ reaches it
  // through vm/nesting.ts and, for L2's exits, the loop's type parameter.
  nested.install();
  sys.exit(guest.runAll<L2Path>(nested.l2Path) ? STATUS_OK : STATUS_FAIL);
}

// The first code of a kernel thread started on another processor for a
// guest's vCPUs (vm/guest.ts startThreads, boot/smp/threads.c): `first`
// is the first vCPU of the run queue it runs.
export function vcpuThread(first: u32): void {
  guest.runThread<L2Path>(changetype<Vcpu>(<usize>first), nested.l2Path);
}

// VMX root operation on every processor: the kernel thread visits each in
// turn (cpu.migrate) and executes VMXON there, then returns to the boot
// processor. Every processor is then in VMX root and idles in HLT.
function enableVmxEverywhere(): u32 {
  let status = vmxon.enable();
  const n = cpu.count();
  for (let c: u32 = 1; c < n && status == STATUS_OK; c++) {
    if (!cpu.migrate(c)) {
      print.str("hv: cpu ");
      print.dec(c);
      print.str(" is not running");
      print.nl();
      status = STATUS_BOOT;
      break;
    }
    status = vmxon.enable();
  }
  cpu.migrate(0);
  if (status == STATUS_OK && n > 1) {
    print.str("hv: VMX root operation on all ");
    print.dec(n);
    print.str(" processors");
    print.nl();
  }
  if (status == STATUS_OK) evmcs.report();
  return status;
}

// crash=: take the requested failure path. None of them returns.
function crashNow(kind: i32): void {
  print.say("crash requested on the command line");
  if (kind == cmdline.CRASH_TRAP) {
    // Beyond the end of linear memory: the bounds check traps.
    const p: usize = <usize>memory.size() << 16;
    print.dec(load<u32>(p + 16));
  } else if (kind == cmdline.CRASH_ABORT) {
    abort("crash=abort requested");
  } else {
    // WRMSR of a non-canonical address to IA32_FS_BASE is #GP(0) on every
    // Intel 64 processor (SDM Vol. 2B WRMSR).
    cpu.wrmsr(MSR_IA32_FS_BASE, 0x8000000000000000);
  }
}

// Test hooks for tests/unit: the allocator and boot-info parser are
// exercised directly by the Node model tests.
export { pages_alloc, pages_free, pages_count, pages_rangeStart, pages_rangeEnd, boot_parse, pages_init } from "./testhooks";
export * from "./hooks/loader";
export * from "./hooks/devices";
export * from "./hooks/smp";
export * from "./hooks/snapshot";
export * from "./hooks/entry";
export * from "./hooks/ept";
export * from "./hooks/ramsnap";
