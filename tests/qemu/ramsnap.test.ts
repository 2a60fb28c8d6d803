// The RAM snapshot (kernel/snapshot/ram.ts, docs/snapshot.md "Memory") on
// Bochs: tests/guests/ramsnap.c takes snapshots, writes pages and restores
// through the test hypercall, and checks that exactly the pages it wrote
// were copied back and that its memory is as it was. Once with the
// processor's EPT accessed/dirty flags (Bochs's tigerlake has them:
// IA32_VMX_EPT_VPID_CAP bit 21), once with the write-protection fallback,
// and once as L2 of this hypervisor running as L1 (turtles), where L1's
// snapshot reads the accessed/dirty flags that L0 emulates in L1's EPT
// (kernel/nested/eptad.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { endings, hvIso, tapLines } from './guestboot.ts';

const G = path.join(REPO, 'build', 'guests');
const ELF = path.join(REPO, 'build', 'hv.elf');



test('Bochs: RAM snapshots with EPT accessed/dirty flags and with write protection', async () => {
  const name = 'test-ramsnap';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=ramsnap.elf ramsnap=on args=mode=ad guest=ramsnap.elf ramsnap=wp args=mode=wp';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'ramsnap.elf'), 'ramsnap.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, { status: 0, exitCode: 0, lines: [/^hv: guests: 2 run, all as expected$/] });
  const e = endings(r.serial);
  assert.equal(e.map((x) => x[0]), ['ramsnap.elf', 'ramsnap.elf']);
  // The hypervisor said how each tracks: 32 MiB = 16 page tables for 4-KiB leaves.
  const made = [...r.serial.matchAll(/^hv: ram snapshot: 32 MiB, (\d+) EPT page tables added for 4-KiB pages \(\d+ ticks\), dirty pages by (.*)$/gm)];
  assert.equal(made.map((m) => [Number(m[1]), m[2]]), [[16, 'EPT accessed/dirty flags'], [16, 'write protection']]);
  const lines = tapLines(r.serial, 'L1| ');
  assert.ok(lines.length >= 2 * 12, `${lines.length} TAP lines`);
  assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
  assert.is((r.serial.match(/^L1\| RESULT: PASS$/gm) ?? []).length, 2);
  assert.match(r.serial, /^L1\| ok \d+ - EPT accessed\/dirty flags: 64 first writes cause no exit$/m);
  assert.match(r.serial, /^L1\| ok \d+ - write protection: 64 first writes are 64 EPT violations$/m);
});

test('Bochs, turtles: L1 (this hypervisor) snapshots its L2 with the EPT flags L0 emulates', async () => {
  const name = 'test-ramsnap-turtles';
  const runDir = freshRunDir(name);
  const l1 = path.join(runDir, 'hvl1.elf');
  fs.copyFileSync(ELF, l1);
  const cmdline = 'caps=off guest=hvl1.elf mem=160M nested=on args=caps=off,guest=ramsnap.elf,ramsnap=on,args=mode=ad module=ramsnap.elf';
  const image = hvIso(runDir, cmdline, [[l1, 'hvl1.elf'], [path.join(G, 'ramsnap.elf'), 'ramsnap.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 400_000 });
  expectRun(r, { status: 0, exitCode: 0, lines: [/^hv: guests: 1 run, all as expected$/, /^L1\| L2\| RESULT: PASS$/] });
  assert.match(r.serial, /^L1\| hv: ram snapshot: 32 MiB, 16 EPT page tables added for 4-KiB pages \(\d+ ticks\), dirty pages by EPT accessed\/dirty flags$/m);
  const lines = tapLines(r.serial, 'L1| L2| ');
  assert.ok(lines.length >= 12, `${lines.length} TAP lines`);
  assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
});

test.run();
