// Seed 001 (../shared/seeds/001_*, issue 12): the EOI-exit bitmap while a
// vCPU runs L2. The test L1 (tests/guests/l1/eoiexit.c, command-line word
// `eoiexit`) runs L2 on its BSP while its AP rewrites COM1's I/O APIC entry
// to a new level-triggered vector, 1,000 rounds; the line must fire again
// every round (remote IRR cleared by L1's or L2's EOI). First on bare Bochs
// with two CPUs (the reference: Bochs's VMX, APICs and I/O APIC), then as a
// vcpus=2 guest of the hypervisor with APIC virtualization (apicv=on: the
// bitmap is vmcs01's, loaded only when the vCPU is back in L1) and without,
// on one physical CPU (the vCPUs share it) and on two (they run at once:
// the I/O APIC write and the interrupt's delivery happen on different
// processors; the L1 then allows L2 to see the AP's answer before the
// interrupt, command-line word `concurrent`, as on bare Bochs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { isoOf, hvIso, tapLines } from './guestboot.ts';

const L1 = path.join(REPO, 'build', 'guests', 'l1.elf');
const SEED = /^(not )?ok \d+ - seed 001: /;

function seedLines(serial: string, prefix: string): string[] {
  return tapLines(serial, prefix).filter((l) => SEED.test(l));
}

test('Bochs: seed 001 on bare Bochs with two CPUs (reference)', async () => {
  const name = 'test-eoiexit-bare';
  const runDir = freshRunDir(name);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: isoOf(runDir, L1, ['--cmdline', 'eoiexit']), runDir, cpus: 2, timeoutMs: 600_000 });
  const where = `(reproduce: ${r.command}; serial ${r.serialPath})`;
  assert.not.ok(r.timedOut, `timed out ${where}`);
  assert.is(r.exitCode, 0, `Bochs exit code ${where}`);
  const lines = tapLines(r.serial, '');
  assert.equal(lines.filter((l) => l.startsWith('not ok')), [], where);
  const seed = seedLines(r.serial, '');
  assert.is(seed.length, 5, `the five seed 001 checks ran: ${seed.join(' | ')}`);
  // Bochs's I/O APIC keeps no remote IRR: that check is the hypervisor's.
  assert.equal(seed.filter((l) => / # SKIP/.test(l)).map((l) => l.replace(/^ok \d+ - /, '')),
    ['seed 001: remote IRR clear after every EOI, L1\'s (virtualized) and L2\'s # SKIP not under hv']);
  assert.match(r.serial, /^RESULT: PASS\r?$/m);
});

for (const [apicv, cpus] of [['on', 1], ['off', 1], ['on', 2], ['off', 2]] as const) {
  test(`Bochs: seed 001 under the hypervisor, vcpus=2, apicv=${apicv}, ${cpus} physical CPU(s)`, async () => {
    const name = `test-eoiexit-hv-apicv-${apicv}-cpus${cpus}`;
    const runDir = freshRunDir(name);
    const words = cpus === 2 ? 'eoiexit,concurrent' : 'eoiexit';
    const image = hvIso(runDir, `caps=off guest=l1.elf nested=on vcpus=2 apicv=${apicv} args=${words}`, [[L1, 'l1.elf']]);
    const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus, timeoutMs: 600_000 });
    expectRun(r, {
      status: 0, exitCode: 0,
      lines: [
        /^hv: guest 1 \(l1\.elf\) ended: exit via isa-debug-exit, code 1, \d+ exits, .*: as expected$/,
        // 1,000 level-triggered interrupts, each taken.
        /^hv: ioapic: 1000 interrupts sent, 0 taken by no local APIC$/,
        cpus === 1 ? /^hv: vcpus: 2 sharing one processor, \d+ switches$/ : /^hv: vcpus: 2 on 2 processors, 0 switches$/,
        /^hv: guests: 1 run, all as expected$/,
      ],
    });
    const lines = tapLines(r.serial, 'L1| ');
    assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
    assert.not.match(r.serial, /# SKIP/);
    assert.is(seedLines(r.serial, 'L1| ').length, 5);
    // With APIC virtualization L1's 500 EOIs of the level-triggered vectors
    // are virtualized and exit only through the EOI-exit bitmap (reason 45);
    // without it every EOI is an APIC-page access.
    const eoiExits = Number(/^hv: {3}VIRTUALIZED_EOI +(\d+)$/m.exec(r.serial)?.[1] ?? 0);
    if (apicv === 'on') assert.is(eoiExits, 500, 'one EOI-induced exit per round L1 took');
    else assert.is(eoiExits, 0);
  });
}

test.run();
