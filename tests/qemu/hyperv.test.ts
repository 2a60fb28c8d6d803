// The Hyper-V interface (hyperv=on; issue 11 item 1, docs/guest-interface.md "Hyper-V
// interface") on Bochs: tests/guests/hyperv.c checks the CPUID leaves, every synthetic MSR
// with its #GP cases, the hypercall page and hypercalls through it against the TLFS, once
// with hyperv=on and once without (leaves as before, the MSRs #GP). Then turtles with
// hyperv=on: this hypervisor as L1 must find its parent's leaves at 40000100H (L1's lines
// marked "L1| ", its guest's "L1| L2| ", and the L2 guest told level 2).
// Both with snapshot=N on the hyperv=on guest (docs/snapshot.md "HYPERV"): the guest's vCPU is
// saved, destroyed and restored every N exits, its synthetic MSRs with it (hyperv.c reads back
// what it wrote across those cycles), and for turtles L1's nested state too, in VMX operation and
// while L2 runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { endings, snapshotLines, hvIso, tapLines } from './guestboot.ts';

const G = path.join(REPO, 'build', 'guests');



test('Bochs: the Hyper-V interface with hyperv=on, and the same guest without it', async () => {
  const name = 'test-hyperv';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=hyperv.elf hyperv=on snapshot=3 args=hv=on guest=hyperv.elf args=hv=off';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hyperv.elf'), 'hyperv.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 120_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^hv: guest 1 \(hyperv\.elf\): 32 MiB, vpid on, Hyper-V interface, expecting pass$/,
      /^hv: guest 2 \(hyperv\.elf\): 32 MiB, vpid on, expecting pass$/,
      // Four hypercalls reached the page (the first, our function numbers, the locked page,
      // the page at another linear address).
      /^hv: hyper-v: 4 hypercalls \(every call code answered HV_STATUS_INVALID_HYPERCALL_CODE\)$/,
      /^hv: guests: 2 run, all as expected$/,
    ],
  });
  assert.equal(endings(r.serial).map((x) => [x[0], x[2]]), [['hyperv.elf', true], ['hyperv.elf', true]]);
  const lines = tapLines(r.serial, 'L1| ');
  assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
  // Both halves ran their checks (no SKIP, a line for each).
  assert.ok(lines.filter((l) => l.includes('hyperv=off:')).length >= 10, 'the hyperv=off checks ran');
  assert.ok(lines.some((l) => /hypercall through the page answers HV_STATUS_INVALID_HYPERCALL_CODE/.test(l)));
  assert.ok(lines.some((l) => /VMCALL at offset 0 of another page is ours/.test(l)));
  assert.not.match(r.serial, /# SKIP/);
  assert.is((r.serial.match(/^L1\| RESULT: PASS$/gm) ?? []).length, 2);
  // The hyperv=on guest went through snapshots (outside VMX operation: it has no nested=on).
  const snaps = snapshotLines(r.serial.replace(/\r/g, ''));
  const s = snaps.get(1);
  assert.ok(s, 'the snapshot line of guest 1');
  assert.ok(s!.taken >= 10, `${s!.taken} snapshots`);
  assert.equal([s!.inVmx, s!.evmcs, s!.every], [0, 0, 3]);
  assert.not.ok(snaps.has(2), 'guest 2 has no snapshot=');
});

test('Bochs: turtles with hyperv=on: L1 (this hypervisor) finds its parent at 40000100H', async () => {
  const name = 'test-hyperv-turtles';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=hvl1.elf mem=96M nested=on hyperv=on args=caps=off,guest=hyperv.elf,args=level=2 ' +
    'module=hyperv.elf';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hvl1.elf'), 'hvl1.elf'], [path.join(G, 'hyperv.elf'), 'hyperv.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^L1\| hv: cpu: .*under hypervisor "Microsoft Hv"$/,
      /^L1\| L2\| ok \d+ - hyperv=off: 40000001H = version 2, level 2$/,
      /^L1\| L2\| RESULT: PASS$/,
      /^L1\| hv: guests: 1 run, all as expected$/,
      /^hv: guest 1 \(hvl1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/,
    ],
  });
  assert.not.match(r.serial, /not ok /);
});

test('Bochs: turtles with hyperv=on and snapshot=7: L1 (this hypervisor) is snapshotted in VMX operation and while its L2 runs', async () => {
  const name = 'test-hyperv-turtles-snapshot';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=hvl1.elf mem=96M nested=on hyperv=on snapshot=7 args=caps=off,guest=hyperv.elf,args=level=2 ' +
    'module=hyperv.elf';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hvl1.elf'), 'hvl1.elf'], [path.join(G, 'hyperv.elf'), 'hyperv.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^L1\| hv: cpu: .*under hypervisor "Microsoft Hv"$/,
      /^L1\| L2\| RESULT: PASS$/,
      /^L1\| hv: guests: 1 run, all as expected$/,
      /^hv: guest 1 \(hvl1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/,
    ],
  });
  assert.not.match(r.serial, /not ok /);
  assert.not.match(r.serial, /snapshot rejected|cannot be mapped/);
  const s = snapshotLines(r.serial.replace(/\r/g, '')).get(1);
  assert.ok(s, 'the snapshot line');
  assert.is(s!.every, 7);
  assert.ok(s!.taken > 100, `${s!.taken} snapshots`);
  assert.ok(s!.inVmx > 50 && s!.inVmx <= s!.taken, `${s!.inVmx} of them in VMX operation`);
  assert.ok(s!.inL2 > 10, `${s!.inL2} of them while L1's guest ran`);
  // With an eVMCS: counted when L1 enters its L2 through one (an L1 that uses the eVMCS gives
  // E > 0; this one uses VMPTRLD'ed VMCSs while the eVMCS is not advertised, so E = 0 then).
  assert.ok(s!.evmcs <= s!.inVmx, `${s!.evmcs} with an eVMCS`);
  console.log(`  turtles, hyperv=on, snapshot=7: ${JSON.stringify(s)}`);
});

test.run();
