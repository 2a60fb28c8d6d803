// Nested VMX on Bochs (issue 4): the minimal test L1 (tests/guests/l1)
// checks one SDM-defined behaviour at a time. It runs first on bare Bochs
// — a real VMX implementation, which validates the test itself — and then
// as a guest of this hypervisor with nested=on, on one CPU and on two with
// the vCPU moving every 50 exits (VMCLEAR of vmcs01 and vmcs02 each time:
// vmcs02's constant state must still be written only once, seeds/003).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { snapshotLine, type SnapshotLine } from './guestboot.ts';

const L1 = path.join(REPO, 'build', 'guests', 'l1.elf');
const ELF = path.join(REPO, 'build', 'hv.elf');

// L1_RUNS=bare,hv1,hv1-noshadow,hv2,turtles selects runs (while working on
// one case: the reference on bare Bochs and one run under the hypervisor);
// unset, every run.
const ONLY = process.env.L1_RUNS ? new Set(process.env.L1_RUNS.split(',')) : null;
const run = (key: string, name: string, fn: () => Promise<void>) => {
  if (!ONLY || ONLY.has(key)) test(name, fn);
};

function iso(runDir: string, kernel: string, args: string[]): string {
  for (const f of [kernel, L1]) if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} does not exist: run make all`);
  const out = path.join(runDir, 'boot.iso');
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), kernel, out, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

function tap(serial: string, prefix: string) {
  const lines = serial.split('\n').map((l) => l.replace(/\r$/, ''));
  const ok = lines.filter((l) => l.startsWith(`${prefix}ok `)).length;
  const notOk = lines.filter((l) => l.startsWith(`${prefix}not ok `));
  return { ok, notOk };
}

run('bare', 'the test L1 on bare Bochs (reference: Bochs\'s own VMX)', async () => {
  const name = 'test-l1-bare';
  const runDir = freshRunDir(name);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso(runDir, L1, []), runDir, timeoutMs: 120_000 });
  // The guest ends itself through isa-debug-exit (absent on Bochs), then
  // halts; the run ends by its result line, not by the hypervisor's.
  const t = tap(r.serial, '');
  assert.equal(t.notOk, [], 'every case passes on Bochs');
  assert.ok(t.ok > 100, `${t.ok} cases`);
  assert.match(r.serial, /^RESULT: PASS$/m);
});

// VMCS shadowing on (the default: L1's VMREAD/VMWRITE of the shadowed
// fields do not exit) and off (every one is emulated), and on with two CPUs;
// each with snapshot=N (docs/snapshot.md), which replaces the vCPU every N
// exits, nested state included: five N on 1 and 2 CPUs, each small enough
// to land in L2, in a nested VM entry (RUN_PENDING) and between L1's
// VMPTRLD/VMCLEAR and VMLAUNCH (the run checks it did).
const RUNS = [
  { cpus: 1, shadow: true, snapshot: 9 },
  { cpus: 1, shadow: false, snapshot: 4 },
  { cpus: 1, shadow: true, snapshot: 2 },
  { cpus: 2, shadow: true, snapshot: 11 },
  { cpus: 2, shadow: false, snapshot: 7 },
];
/** The snapshot=N line of the (last) L0 guest: snapshots taken, most in VMX
 * operation, some while L2 ran; `where` names the other places that must
 * have been hit (RUN_PENDING: L1's VMLAUNCH/VMRESUME emulated, L2 not yet
 * entered; beforeLaunch: a current vmcs12 not yet launched). */
function expectSnapshots(serial: string, n: number, cpus: number, where: ('runPending' | 'beforeLaunch')[] = []): SnapshotLine {
  const lines = serial.split('\n').map((l) => snapshotLine(l.replace(/\r$/, ''))).filter((s): s is SnapshotLine => s !== null);
  assert.is(lines.length, 1, `one snapshot=${n} line`);
  const s = lines[0];
  assert.equal([s.every, s.cpus], [n, cpus]);
  assert.ok(s.taken > 10, `${s.taken} snapshots`);
  assert.ok(s.inVmx > 0 && s.inVmx <= s.taken, `${s.inVmx} of them in VMX operation`);
  assert.ok(s.inL2 > 0, `${s.inL2} of them while L2 ran`);
  for (const w of where) assert.ok(s[w] > 0, `${s[w]} of them ${w}`);
  console.log(`  snapshot=${n}: ${JSON.stringify(s)}`);
  return s;
}
for (const { cpus, shadow, snapshot } of RUNS) {
  run(`hv${cpus}${shadow ? '' : '-noshadow'}${snapshot === 2 ? '-n2' : ''}`, `the test L1 under this hypervisor, nested=on, shadow-vmcs=${shadow ? 'on' : 'off'}, ${cpus} CPU(s)${cpus > 1 ? ', migrate=50' : ''}, snapshot=${snapshot}`, async () => {
    const name = `test-l1-nested-${cpus}${shadow ? '' : '-noshadow'}-n${snapshot}`;
    const runDir = freshRunDir(name);
    const cmdline = `caps=off ${cpus > 1 ? 'migrate=50 ' : ''}guest=l1.elf nested=on shadow-vmcs=${shadow ? 'on' : 'off'} max-ticks=1600000000 snapshot=${snapshot}`;
    const r = await runBochs({ name, boot: 'bios-cdrom', image: iso(runDir, ELF, ['--cmdline', cmdline, '--module', L1, 'l1.elf']),
      runDir, cpus, timeoutMs: 240_000 });
    expectRun(r, { status: 0, exitCode: 0, lines: [/^L1\| RESULT: PASS$/, /^hv: guest 1 \(l1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/] });
    const t = tap(r.serial, 'L1| ');
    assert.equal(t.notOk, []);
    assert.ok(t.ok > 100, `${t.ok} cases`);
    const m = /^hv: L2 exits: (\d+) reflected to L1, (\d+) handled by L0; (\d+) nested entries \(0 enlightened\); vmcs02 constant state written (\d+) time\(s\); shadow VMCS (off|(\d+) pushes, (\d+) pulls)$/m.exec(r.serial);
    assert.ok(m, 'nested summary line');
    assert.ok(Number(m![1]) > 20, 'L2 exits reached L1');
    assert.ok(Number(m![3]) > 20, 'nested entries');
    const writes = Number(m![4]);
    if (shadow) {
      // Every reflected exit and every VMPTRLD refreshes the shadow; every
      // nested entry reads it back.
      assert.ok(m![6] !== undefined, 'shadowing was used');
      assert.ok(Number(m![6]) >= Number(m![1]), `pushes (${m![6]}) >= reflected exits (${m![1]})`);
      assert.ok(Number(m![7]) >= Number(m![3]), `pulls (${m![7]}) >= nested entries (${m![3]})`);
    } else {
      assert.is(m![5], 'off');
    }
    // L1's VMREADs and VMWRITEs: with shadowing most never reach L0.
    const rw = /^hv:\s+VMREAD\s+(\d+)/m.exec(r.serial);
    if (!shadow) assert.ok(rw && Number(rw[1]) > 100, 'without shadowing every VMREAD exits');
    if (cpus > 1) {
      const mig = /^hv: vcpu migrations: (\d+)/m.exec(r.serial);
      assert.ok(mig && Number(mig[1]) > 10, 'the vCPU moved');
    }
    const s = expectSnapshots(r.serial, snapshot, cpus, ['runPending', 'beforeLaunch']);
    // Constant state once per vmcs02 (seeds/003): a migration keeps vmcs02,
    // a restore builds a new one (docs/snapshot.md: rebuilt, not saved).
    assert.ok(writes >= 1 && writes <= 1 + s.inVmx, `vmcs02 constant state written ${writes} times, ${s.inVmx} restores in VMX operation`);
  });
}

// Turtles (issue 5): L0 = this hypervisor, L1 = this hypervisor booted as
// its guest (its VMX bring-up, EPT and guest loading all through L0's
// nested VMX, with EPT, unrestricted guest and the shadow EPT), L2 = the
// benchmark guest (which passes) and the triple-fault guest (which L1 must
// see end in a triple fault). Lines are marked by level: L1's own with
// "L1| ", L2's with "L1| L2| ".
// Turtles with snapshot=N: five N, on 1 and 2 CPUs (L0's; L1 has one vCPU).
const TURTLES = [
  { cpus: 1, snapshot: 13 },
  { cpus: 1, snapshot: 5 },
  { cpus: 1, snapshot: 3 },
  { cpus: 2, snapshot: 17 },
  { cpus: 2, snapshot: 8 },
];
for (const { cpus, snapshot } of TURTLES) {
run(cpus === 1 && snapshot === 13 ? 'turtles' : `turtles${cpus}-n${snapshot}`, `turtles: this hypervisor as L1 on itself runs L2 guests, ${cpus} CPU(s), snapshot=${snapshot}`, async () => {
  const name = `test-turtles-${cpus}-n${snapshot}`;
  const runDir = freshRunDir(name);
  const l1 = path.join(runDir, 'hvl1.elf');
  fs.copyFileSync(ELF, l1);
  const guests = path.join(REPO, 'build', 'guests');
  const out = path.join(runDir, 'boot.iso');
  const cmdline = `caps=off guest=hvl1.elf mem=160M nested=on snapshot=${snapshot} ` +
    `args=caps=off,guest=bench.elf,args=n=20,guest=triple.elf,expect=triple-fault module=bench.elf module=triple.elf`;
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), ELF, out, '--cmdline', cmdline,
    '--module', l1, 'hvl1.elf', '--module', path.join(guests, 'bench.elf'), 'bench.elf',
    '--module', path.join(guests, 'triple.elf'), 'triple.elf'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const r = await runBochs({ name, boot: 'bios-cdrom', image: out, runDir, cpus, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^L1\| hv: vmxon ok: cpu 0, revision 0x41534856/, // L1's VMXON, on L0's emulated VMX (our revision id)
      /^L1\| hv: smp: no ACPI MADT; fw_cfg: 1 processor, no start-up/,
      /^L1\| L2\| bench: cpuid min=\d+ median=\d+ n=20$/,
      /^L1\| L2\| RESULT: PASS$/,
      /^L1\| hv: guest 2 \(triple\.elf\) ended: triple-fault, .*: as expected$/,
      /^L1\| hv: guests: 2 run, all as expected$/,
      /^hv: guest 1 \(hvl1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/,
      /^hv: shadow EPT: \d+ roots built, \d+ reused, \d+ pages filled$/,
    ],
  });
  // L2 ran under L1's EPT: L1's guests are unrestricted guests under EPT.
  const fills = /^hv: shadow EPT: (\d+) roots built, (\d+) reused, (\d+) pages filled$/m.exec(r.serial)!;
  assert.ok(Number(fills[3]) > 5, `shadow EPT pages filled: ${fills[3]}`);
  assert.not.match(r.serial, /not ok /);
  expectSnapshots(r.serial, snapshot, cpus, ['runPending', 'beforeLaunch']);
});
}

test.run();
