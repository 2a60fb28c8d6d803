// Boot media for runs of the test guests (tests/guests/) under the
// hypervisor: shared by tests/qemu/guests.test.ts and smp.test.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO } from '../../tools/emu/runner.ts';

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
  'guest=spin.elf max-ticks=20000000 expect=timeout',
  'guest=bench.elf args=n=50',
].join(' ');
const MODULES = ['suite', 'mb2', 'triple', 'unbacked', 'badmsr', 'halt', 'spin', 'bench'].flatMap((g) => ['--module', path.join(G, `${g}.elf`), `${g}.elf`]);

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

