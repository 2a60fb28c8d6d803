// Debian's own Linux 6.1 as a guest, and Linux KVM in it as an L1 hypervisor
// running an L2 (issue 13; docs/guest-interface.md "Linux guests"). The
// kernel, busybox and KVM's modules come from Debian's packages
// (tools/linux-fetch.sh), the initramfs from tools/mkinitramfs.sh: its /init
// (tools/linux-init.sh) loads kvm and kvm_intel and runs our VMM
// (tests/linux/vmm.c), which starts the L2 of tests/linux/l2.asm through
// KVM's ioctls and checks 15 things it does (port I/O both ways, CPUID from
// the VMM's table, MMIO both ways, 1,000 exits in a row, paging with an alias
// mapping, HLT, memory it wrote), printing "RESULT: PASS". Then /init
// restarts the machine (exit code 165 through the ACPI reset register).
//
// One boot per configuration (nested=on; with hyperv=on; with vcpus=2),
// each checked in full: the command line is
// lean (`quiet`: only warnings reach the console), and any kernel warning,
// oops or call trace fails the run. `make test` builds the parts first
// (make linux-initrd).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO, RunResult } from '../../tools/emu/runner.ts';
import { hvIso, LINUX_ARGS } from './guestboot.ts';

const L = path.join(REPO, 'build', 'linux');
const MODULES: [string, string][] = [[path.join(L, 'vmlinuz'), 'vmlinuz'], [path.join(L, 'initrd.cpio'), 'initrd.cpio']];
const ARGS = LINUX_ARGS; // guestboot.ts
const VMM_CHECKS = 15;

for (const f of MODULES) {
  if (!fs.existsSync(f[0])) throw new Error(`${path.relative(REPO, f[0])} does not exist: run make linux-initrd first`);
}

async function boot(name: string, opts: string, cpus = 1): Promise<RunResult> {
  const runDir = freshRunDir(name);
  const cmdline = `guest=vmlinuz mem=256M ${opts} initrd=initrd.cpio expect=exit:165 args=${ARGS}`;
  const image = hvIso(runDir, cmdline, MODULES);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus, megs: 512, timeoutMs: 900_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^hv: guest 1 \(vmlinuz\) ended: exit via isa-debug-exit, code 165, .*: as expected$/,
      /^hv: exits: \d+ in all$/,
      /^hv: guests: 1 run, all as expected$/,
    ],
  });
  return r;
}

// What every boot must show: /init reached, KVM loaded, the VMM's checks
// all passed, no kernel warning, L2's exits reached L1 through L0.
function common(r: RunResult, runs = 1): { reflected: number; enlightened: number } {
  const s = r.serial.replace(/\r/g, '');
  const where = `(reproduce: ${r.command}; serial ${r.serialPath})`;
  assert.match(s, /^L1\| INIT: reached/m, `/init ran ${where}`);
  for (const m of ['irqbypass', 'kvm', 'kvm-intel']) assert.match(s, new RegExp(`^L1\\| INIT: insmod ${m}: status 0$`, 'm'), `insmod ${m} ${where}`);
  assert.match(s, /^L1\| INIT: kvm_intel loaded$/m);
  assert.not.match(s, /WARNING: CPU:|Call Trace:|Oops|Kernel panic|BUG:/, `a kernel warning ${where}`);
  const ok = s.match(/^L1\| VMM: ok /gm) ?? [];
  const bad = s.match(/^L1\| VMM: FAIL .*$/gm) ?? [];
  assert.equal(bad, [], `VMM checks failed ${where}`);
  assert.is(ok.length, VMM_CHECKS * runs, `${ok.length} VMM checks passed ${where}`);
  assert.is((s.match(/^L1\| RESULT: PASS$/gm) ?? []).length, runs, 'RESULT: PASS from every VMM run');
  assert.match(s, /^L1\| INIT: vmm status 0,/m);
  // L0's report of L1's nested VMX: the 1,000 port writes and the other
  // exits of L2 reflected to L1 (KVM), and as many nested entries.
  // (One summary per vCPU with vcpus=N: each vCPU's nested VMX counts its own.)
  const sums = [...s.matchAll(/^hv: L2 exits: (\d+) reflected to L1, (\d+) handled by L0; (\d+) nested entries \((\d+) enlightened\)/gm)];
  assert.ok(sums.length > 0, `the nested summary line ${where}`);
  const total = (k: number) => sums.reduce((a, x) => a + Number(x[k]), 0);
  const reflected = total(1);
  const runsOn = sums.filter((x) => Number(x[1]) >= 1010).length;
  assert.is(runsOn, runs, `vCPUs that ran the L2 (>= 1,010 reflected exits each): ${sums.map((x) => x[1]).join(', ')}`);
  assert.ok(total(3) >= reflected, 'a nested entry after each');
  const io = [...s.matchAll(/^hv: {3}L2 -> L1 IO_INSTRUCTION +(\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
  assert.ok(io >= 1009 * runs, `L2's port I/O reflected: ${io}`);
  // The figures for the issue note (TSC = Bochs ticks).
  const line = /^hv: console: the guest's first line ended at tick (\d+)$/m.exec(s)?.[1];
  const init = /^L1\| INIT: reached, .*, TSC (\d+)$/m.exec(s)?.[1];
  const first = /^L1\| VMM: ok first exit: .*\(TSC (\d+),/m.exec(s)?.[1];
  const trip = /^L1\| VMM: one L2 port-write round trip through user space: (\d+) TSC ticks/m.exec(s)?.[1];
  assert.ok(line && init && first && trip, 'the timeline figures');
  assert.ok(Number(init) < Number(first), '/init before L2');
  // (With `quiet` the first console line is the first warning or error.)
  console.log(`  ${r.name} (ticks since reset): first console line ${line}, /init ${init}, ` +
    `L2's first exit ${first}; L2 port-write round trip ${trip}; ${reflected} L2 exits reflected, ` +
    `${total(4)} enlightened entries`);
  return { reflected, enlightened: total(4) };
}

test('Linux: Debian 6.1 boots, kvm_intel loads, its L2 passes (nested=on)', async () => {
  const r = await boot('test-linux-nested', 'vcpus=1 nested=on');
  const { enlightened } = common(r);
  assert.is(enlightened, 0, 'no Hyper-V interface: no enlightened entries');
  assert.not.match(r.serial, /Hyper-V/);
  // The platform as Linux sees it: one CPU, COM1 on the I/O APIC.
  assert.match(r.serial, /^L1\| INIT: cpus: 0\r?$/m);
  assert.match(r.serial, /^L1\| INIT: interrupts: +\d+: +[1-9]\d* +IO-APIC +4-edge +ttyS0/m);
  assert.match(r.serial, /^L1\| INIT: serial: 0: uart:16550A port:000003F8/m);
});

test('Linux: with hyperv=on, kvm_intel uses the enlightened VMCS and its L2 passes', async () => {
  const r = await boot('test-linux-hyperv', 'vcpus=1 nested=on hyperv=on');
  const { reflected, enlightened } = common(r);
  // Linux finds the Hyper-V interface, and KVM the eVMCS it recommends
  // (kvm_intel says "KVM: vmx: using Hyper-V Enlightened VMCS").
  assert.match(r.serial, /^L1\| INIT: dmesg: .*Hypervisor detected: Microsoft Hyper-V/m);
  assert.match(r.serial, /^L1\| INIT: dmesg: .*KVM: vmx: using Hyper-V Enlightened VMCS/m);
  assert.ok(enlightened >= reflected, `${enlightened} enlightened entries for ${reflected} reflected exits`);
});

// Two vCPUs on Bochs's two processors, one each, running at once
// (docs/guest-interface.md "Several vCPUs"): Linux brings up the AP with
// INIT/SIPI, KVM turns VMX on in both when the VMM creates its VM, and the
// L2 runs once on each CPU (pinned with taskset): each vCPU's nested VMX
// reflects its 1,000 port writes. (Sharing one processor is what the
// smaller guests' tests also cover: tests/qemu/smp-guest.test.ts.)
test('Linux: with vcpus=2 on two processors both CPUs come up and KVM runs the L2 on each', async () => {
  const r = await boot('test-linux-smp', 'vcpus=2 nested=on', 2);
  common(r, 2);
  const s = r.serial.replace(/\r/g, '');
  assert.match(s, /^hv: vcpus: 2 on 2 processors, 0 switches$/m, 'one vCPU on each processor');
  assert.match(s, /^L1\| INIT: cpus: 0-1$/m);
  assert.match(s, /^L1\| INIT: dmesg: .*smp: Brought up 1 node, 2 CPUs$/m);
  assert.match(s, /^L1\| INIT: vmm on CPU 1 status 0,/m);
  // Linux 6.1's KVM turns VMX on in every CPU when a VM is created and off
  // when the last one is destroyed: two VMM runs, two CPUs.
  assert.match(s, /^hv: {3}VMXON +4$/m, 'VMXON on both vCPUs for each VMM run');
  assert.match(s, /^hv: {3}VMXOFF +4$/m, 'and VMXOFF');
});

test.run();
