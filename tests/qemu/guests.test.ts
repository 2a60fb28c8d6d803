// Guests under the hypervisor on Bochs (issue 3): one boot runs every test
// guest of tests/guests/ in turn — the guest-interface suite, the
// multiboot2 guest, the four guests that must be contained, and the
// benchmark guest — and the hypervisor must report each as expected and
// end with status 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir } from '../../tools/emu/runner.ts';
import { GUESTS_CMDLINE, guestIso, endings } from './guestboot.ts';

test('Bochs, 1 CPU: every test guest ends as expected, the hypervisor stays up', async () => {
  const name = 'test-guests';
  const runDir = freshRunDir(name);
  const iso = guestIso(runDir, GUESTS_CMDLINE);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, { status: 0, exitCode: 0, lines: [/^hv: guests: 8 run, all as expected$/] });
  const e = endings(r.serial);
  assert.equal(e.map((x) => x[0]), ['suite.elf', 'mb2.elf', 'triple.elf', 'unbacked.elf', 'badmsr.elf', 'halt.elf', 'spin.elf', 'bench.elf']);
  assert.ok(e.every((x) => x[2]), JSON.stringify(e));
  assert.match(e[0][1], /^exit via isa-debug-exit, code 1, \d+ exits/);
  assert.match(e[1][1], /^exit via hypercall, status 0/);
  assert.match(e[2][1], /^triple-fault/);
  assert.match(e[3][1], /^ept-violation/);
  assert.match(e[5][1], /^halt/);
  assert.match(e[6][1], /^timeout/);
  assert.match(r.serial, /^hv: guest: ran past its max-ticks= budget$/m);
  // The suite's and mb2's own verdicts, and no failed check.
  assert.is((r.serial.match(/^L1\| RESULT: PASS$/gm) ?? []).length, 3, 'suite, mb2 and bench pass');
  assert.not.match(r.serial, /^L1\| not ok /m);
  // The contained failures were reported with what the SDM calls them.
  assert.match(r.serial, /^hv: guest: write to unbacked guest-physical address 0xc0000000 \(outside its RAM\)/m);
  assert.match(r.serial, /^hv: guest: halted with interrupts disabled and nothing pending: halted forever$/m);
  // Exit tables were printed.
  assert.match(r.serial, /^hv: exits: \d+ in all\nhv:   IO_INSTRUCTION +\d+$/m);
});

test('Bochs, 2 CPUs, vCPU migration every 7 exits: the suite still passes and the vCPU really moved', async () => {
  const name = 'test-guests-smp-migrate';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off migrate=7 guest=suite.elf args=mods=1,tag=suite-args-ok module=module.txt ' +
    'guest=mb2.elf args=mods=1,tag=mb2-args-ok module=module.txt guest=triple.elf expect=triple-fault';
  const iso = guestIso(runDir, cmdline);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, cpus: 2, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [/^hv: VMX root operation on all 2 processors$/, /^hv: guests: 3 run, all as expected$/],
  });
  const e = endings(r.serial);
  assert.equal(e.map((x) => x[0]), ['suite.elf', 'mb2.elf', 'triple.elf']);
  assert.ok(e.every((x) => x[2]), JSON.stringify(e));
  const moves = [...r.serial.matchAll(/^hv: vcpu migrations: (\d+) \(every 7 exits, 2 processors\)$/gm)].map((m) => Number(m[1]));
  assert.is(moves.length, 3);
  // Each guest moved about once per 7 exits (VMCLEAR, VMPTRLD, VMLAUNCH each time).
  const exitsOf = [...r.serial.matchAll(/^hv: guest \d+ \(\S+\) ended: .*?, (\d+) exits,/gm)].map((m) => Number(m[1]));
  // (the last exit ends the guest, so it never moves)
  moves.forEach((m, i) => assert.is(m, Math.floor((exitsOf[i] - 1) / 7), `guest ${i + 1}: ${m} moves for ${exitsOf[i]} exits`));
  assert.is((r.serial.match(/^L1\| RESULT: PASS$/gm) ?? []).length, 2);
  assert.not.match(r.serial, /^L1\| not ok /m);
});

test.run();
