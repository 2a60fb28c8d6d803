// Guests under the hypervisor on Bochs (issue 3): one boot runs every test
// guest of tests/guests/ in turn — the guest-interface suite, the
// multiboot2 guest, the four guests that must be contained, and the
// benchmark guest — and the hypervisor must report each as expected and
// end with status 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir } from '../../tools/emu/runner.ts';
import { GUESTS_CMDLINE, guestIso, endings, snapshotLines } from './guestboot.ts';

test('Bochs, 1 CPU: every test guest ends as expected (six with snapshot=N, N = 7, 1, 2, 3, 4, 6), the hypervisor stays up', async () => {
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
  expectSnapshots(r.serial, [[1, 7], [2, 1], [3, 2], [4, 3], [5, 4], [6, 6]], 1);
});

/** Guest g with snapshot=N had its vCPU replaced after every N-th exit that
 * it went on from (the last exit ends it), none in VMX operation. */
function expectSnapshots(serial: string, every: [number, number][], cpus: number) {
  const lines = snapshotLines(serial);
  const exits = [...serial.matchAll(/^hv: guest (\d+) \(\S+\) ended: .*?, (\d+) exits,/gm)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal([...lines.keys()], every.map(([g]) => g), 'a snapshot line for each guest with snapshot=N');
  for (const [g, n] of every) {
    const s = lines.get(g)!;
    const e = exits.find(([x]) => x === g)![1];
    assert.equal(s, { taken: Math.floor((e - 1) / n), inVmx: 0, beforeLaunch: 0, inL2: 0, runPending: 0, evmcs: 0, every: n, cpus }, `guest ${g}: ${e} exits, snapshot=${n}`);
  }
}

test('Bochs, 2 CPUs, vCPU migration every 7 exits and snapshot=5, 1, 3: the suite still passes and the vCPU really moved', async () => {
  const name = 'test-guests-smp-migrate';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off migrate=7 guest=suite.elf args=mods=1,tag=suite-args-ok module=module.txt snapshot=5 ' +
    'guest=mb2.elf args=mods=1,tag=mb2-args-ok module=module.txt snapshot=1 guest=triple.elf expect=triple-fault snapshot=3';
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
  // ... and snapshot=N replaced it (on the other processor) every N exits.
  expectSnapshots(r.serial, [[1, 5], [2, 1], [3, 3]], 2);
});

test.run();
