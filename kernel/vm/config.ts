// The guests named on the command line, in order:
//   guest=FILE [mem=SIZE] [vpid=on|off] [ept=on] [shadow-vmcs=on|off] [nested=on|off]
//              [args=A,B,...] [module=FILE]... [expect=OUTCOME] [max-ticks=N] [snapshot=N]
//              [ramsnap=on|wp|off] [hyperv=on|off] [vcpus=N] [spread=on|off] [apicv=on|off]
//              [initrd=FILE]
// Options after a guest= apply to that guest. FILE is the first word of a
// boot file's name (UEFI: the ESP path as written; multiboot: the module
// string). SIZE is a number with K, M or G. OUTCOME is pass (the default:
// the guest ends itself with isa-debug-exit value 0 or hypercall exit 0),
// exit:N (that exit code), triple-fault, ept-violation, halt or timeout.
// max-ticks=N stops the guest once it has run N TSC ticks (0: no limit).
// snapshot=N (a test option, docs/snapshot.md): every N exits the running
// vCPU is saved to a blob, destroyed, and made again from the blob; before
// any guest= it applies to every guest that follows.
// ramsnap=on|wp (a test option) gives the guest a RAM snapshot
// (snapshot/ram.ts) and the test hypercall that drives it: dirty tracking
// by the processor's EPT accessed/dirty flags where it has them (on), or by
// write protection either way (wp).
// hyperv=on gives the guest the Hyper-V interface (vm/exit/hyperv.ts,
// docs/guest-interface.md "Hyper-V interface"): the TLFS CPUID leaves at
// 40000000H (ours move to 40000100H), the synthetic MSRs and the hypercall
// page.
// args=: a comma stands for a space, two commas for one comma (so that
// Linux's console=ttyS0,115200 is written console=ttyS0,,115200; the rule
// survives GRUB and the UEFI front-end, which pass commas through, where a
// backslash would not: GRUB doubles it). Nested, each level halves the
// commas.
// initrd=FILE (a Linux bzImage guest only): the boot file loaded as its
// initial RAM disk (kernel/guest/bzimage.ts).
// vcpus=N (1 to MAX_VCPUS, default 1) gives the guest N virtual processors:
// vCPU 0 is the bootstrap processor, the others wait for INIT and SIPI
// (vm/apstart.ts). spread=on (the default) runs them on different
// processors at once when the machine has several (vCPU i on processor
// i mod P, vm/runqueue.ts); spread=off, or one processor, has them share
// the processor the guest runs on (vm/sched.ts).
// apicv=on (the default) runs the guest's local APICs on the processor's
// APIC virtualization where it has all of it (vm/apicv.ts: TPR shadow,
// virtualized APIC accesses and registers, virtual-interrupt delivery);
// apicv=off, or a processor without it, keeps the software path alone.
import * as boot from "../boot/bootinfo";
import * as mem from "../hw/mem";

export const MAX_GUESTS: i32 = 16;
export const MAX_MODULES: i32 = 8;
const NAME_MAX: i32 = 256;

export const OUTCOME_PASS: i32 = 0;
export const OUTCOME_EXIT: i32 = 1;
export const OUTCOME_TRIPLE_FAULT: i32 = 2;
export const OUTCOME_EPT_VIOLATION: i32 = 3;
export const OUTCOME_HALT: i32 = 4;
export const OUTCOME_STOPPED: i32 = 5; // stopped by the hypervisor for another reason
export const OUTCOME_TIMEOUT: i32 = 6; // ran past its max-ticks= budget

export let count: i32 = 0; // machine-wide: the parsed command line
export const file = new StaticArray<u32>(MAX_GUESTS); // machine-wide: the parsed command line
export const memBytes = new StaticArray<u64>(MAX_GUESTS); // machine-wide: the parsed command line
export const vpid = new StaticArray<bool>(MAX_GUESTS); // machine-wide: the parsed command line
export const shadowVmcs = new StaticArray<bool>(MAX_GUESTS); // machine-wide: the parsed command line
export const nested = new StaticArray<bool>(MAX_GUESTS); // machine-wide: the parsed command line; nested=on: VMX offered to the guest
export const hyperv = new StaticArray<bool>(MAX_GUESTS); // machine-wide: the parsed command line; hyperv=on: the Hyper-V interface offered
export const vcpus = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line; vcpus=N
export const apicv = new StaticArray<bool>(MAX_GUESTS); // machine-wide: the parsed command line; apicv=on|off
export const spread = new StaticArray<bool>(MAX_GUESTS); // machine-wide: the parsed command line; spread=on|off
export const MAX_VCPUS: i32 = 8;
export const expect = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line
export const expectCode = new StaticArray<u32>(MAX_GUESTS); // machine-wide: the parsed command line
export const maxTicks = new StaticArray<u64>(MAX_GUESTS); // machine-wide: the parsed command line; 0 = no budget
export const snapshotEvery = new StaticArray<u32>(MAX_GUESTS); // machine-wide: the parsed command line; snapshot=N, 0 = never
export let snapshotDefault: u32 = 0; // machine-wide: snapshot=N given before any guest=
// snapshot=N runs (kernel/snapshot/cycle.ts); while it was being built the
// command line refused it, so that a test asking for snapshots could not
// pass without taking any.
export const SNAPSHOT_RUNS: bool = true;
export const RAMSNAP_OFF: i32 = 0;
export const RAMSNAP_ON: i32 = 1; // EPT accessed/dirty flags when offered, else write protection
export const RAMSNAP_WP: i32 = 2; // write protection
export const ramSnapshot = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line
export const argsStart = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line; into boot.cmdline
export const argsLen = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line
export const moduleCount = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line
export const initrd = new StaticArray<i32>(MAX_GUESTS); // machine-wide: the parsed command line; initrd=FILE's boot file, -1 none
// Module boot-file indices, MAX_MODULES per guest, as u32 in linear memory
// (the loader takes a pointer).
export const modules: usize = memory.data(MAX_GUESTS * MAX_MODULES * 4, 4); // machine-wide: the parsed command line

export const DEFAULT_MEM: u64 = 32 << 20;

export function modulesOf(g: i32): usize {
  return modules + <usize>(g * MAX_MODULES * 4);
}

// A boot file whose name's first word is [p, p+n), or -1.
const nameBuf: usize = memory.data(NAME_MAX); // machine-wide: the parsed command line
export function findFile(p: usize, n: i32): i32 {
  for (let i: u32 = 0; i < boot.fileCount; i++) {
    const len = <i32>boot.fileNameLen(i);
    if (len < n) continue;
    mem.copyin(nameBuf, boot.fileNameAddr(i), <u32>min(len, NAME_MAX));
    let same = true;
    for (let k = 0; k < n && same; k++) same = load<u8>(nameBuf + <usize>k) == load<u8>(p + <usize>k);
    if (!same) continue;
    if (len == n || load<u8>(nameBuf + <usize>n) == 0x20) return <i32>i;
  }
  return -1;
}

export function addGuest(f: u32): i32 {
  if (count == MAX_GUESTS) return -1;
  const g = count++;
  file[g] = f;
  memBytes[g] = DEFAULT_MEM;
  vpid[g] = true;
  shadowVmcs[g] = true;
  nested[g] = false;
  hyperv[g] = false;
  vcpus[g] = 1;
  spread[g] = true;
  apicv[g] = true;
  expect[g] = OUTCOME_PASS;
  expectCode[g] = 0;
  argsStart[g] = 0;
  maxTicks[g] = 0;
  snapshotEvery[g] = snapshotDefault;
  ramSnapshot[g] = RAMSNAP_OFF;
  argsLen[g] = 0;
  moduleCount[g] = 0;
  initrd[g] = -1;
  return g;
}

// snapshot=N: for guest g, or (g < 0, before any guest=) for every guest
// that follows.
export function setSnapshotEvery(g: i32, n: u32): void {
  if (g < 0) snapshotDefault = n;
  else snapshotEvery[g] = n;
}

export function addModule(g: i32, f: u32): bool {
  if (moduleCount[g] == MAX_MODULES) return false;
  store<u32>(modulesOf(g) + <usize>(moduleCount[g] * 4), f);
  moduleCount[g]++;
  return true;
}

export function outcomeName(o: i32): string {
  switch (o) {
    case OUTCOME_PASS: return "pass";
    case OUTCOME_EXIT: return "exit";
    case OUTCOME_TRIPLE_FAULT: return "triple-fault";
    case OUTCOME_EPT_VIOLATION: return "ept-violation";
    case OUTCOME_HALT: return "halt";
    case OUTCOME_TIMEOUT: return "timeout";
  }
  return "stopped";
}
