// Guests under the hypervisor on Bochs (issue 3): one boot runs every test
// guest of tests/guests/ in turn — the guest-interface suite, the
// multiboot2 guest, the four guests that must be contained, and the
// benchmark guest — and the hypervisor must report each as expected and
// end with status 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';

const G = path.join(REPO, 'build', 'guests');
const ELF = path.join(REPO, 'build', 'hv.elf');

// The command line and modules of the all-guests boot.
export const GUESTS_CMDLINE = [
  'caps=off',
  'guest=suite.elf args=mods=1,tag=suite-args-ok module=module.txt',
  'guest=mb2.elf args=mods=1,tag=mb2-args-ok module=module.txt',
  'guest=triple.elf expect=triple-fault',
  'guest=unbacked.elf expect=ept-violation',
  'guest=badmsr.elf expect=triple-fault',
  'guest=halt.elf expect=halt',
  'guest=bench.elf args=n=50',
].join(' ');
const MODULES = ['suite', 'mb2', 'triple', 'unbacked', 'badmsr', 'halt', 'bench'].flatMap((g) => ['--module', path.join(G, `${g}.elf`), `${g}.elf`]);

export function guestIso(runDir: string, cmdline: string): string {
  for (const f of [ELF, path.join(G, 'suite.elf'), path.join(G, 'module.txt')])
    if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} does not exist: run make all first`);
  const iso = path.join(runDir, 'hv.iso');
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), ELF, iso, '--cmdline', cmdline, ...MODULES,
    '--module', path.join(G, 'module.txt'), 'module.txt modarg=1'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  return iso;
}

// Each guest's "ended" line, in order: [guest, how it ended, as expected?].
export function endings(serial: string): [string, string, boolean][] {
  return [...serial.matchAll(/^hv: guest \d+ \((\S+)\) ended: (.*?): (as expected|NOT as expected)$/gm)]
    .map((m) => [m[1], m[2], m[3] === 'as expected']);
}

test('Bochs, 1 CPU: every test guest ends as expected, the hypervisor stays up', async () => {
  const name = 'test-guests';
  const runDir = freshRunDir(name);
  const iso = guestIso(runDir, GUESTS_CMDLINE);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, { status: 0, exitCode: 0, lines: [/^hv: guests: 7 run, all as expected$/] });
  const e = endings(r.serial);
  assert.equal(e.map((x) => x[0]), ['suite.elf', 'mb2.elf', 'triple.elf', 'unbacked.elf', 'badmsr.elf', 'halt.elf', 'bench.elf']);
  assert.ok(e.every((x) => x[2]), JSON.stringify(e));
  assert.match(e[0][1], /^exit via isa-debug-exit, code 1, \d+ exits/);
  assert.match(e[1][1], /^exit via hypercall, status 0/);
  assert.match(e[2][1], /^triple-fault/);
  assert.match(e[3][1], /^ept-violation/);
  assert.match(e[5][1], /^halt/);
  // The suite's and mb2's own verdicts, and no failed check.
  assert.is((r.serial.match(/^L1\| RESULT: PASS$/gm) ?? []).length, 3, 'suite, mb2 and bench pass');
  assert.not.match(r.serial, /^L1\| not ok /m);
  // The contained failures were reported with what the SDM calls them.
  assert.match(r.serial, /^hv: guest: write to unbacked guest-physical address 0xc0000000 \(outside its RAM\)/m);
  assert.match(r.serial, /^hv: guest: halted with interrupts disabled and nothing pending: halted forever$/m);
  // Exit tables were printed.
  assert.match(r.serial, /^hv: exits: \d+ in all\nhv:   IO_INSTRUCTION +\d+$/m);
});

test.run();
