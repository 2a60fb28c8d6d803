// make bench: run the benchmark guest (tests/guests/bench.c) under the
// hypervisor on Bochs with ONE CPU (with several, Bochs's RDTSC is no longer
// an exact instruction count) and report its round-trip figures: a table on
// stdout and bench/results.json. The figures are measured in the guest with
// RDTSC; on Bochs with `clock: sync=none` they are exact instruction counts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBochs } from './emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from './emu/runner.ts';

const guest = path.join(REPO, 'build', 'guests', 'bench.elf');

// One Bochs run of the benchmark guest under image `elf`.
async function run(name: string, elf: string) {
  const runDir = freshRunDir(name);
  const iso = path.join(runDir, 'hv.iso');
  for (const f of [elf, guest]) if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} is missing: run make bench`);
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), elf, iso, '--cmdline', 'caps=off guest=/bench.elf',
    '--module', guest, '/bench.elf'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, cpus: 1, timeoutMs: 300_000, progress: true });
  expectRun(r, { status: 0, exitCode: 0, lines: [/^L1\| RESULT: PASS$/] });
  return r;
}

// The figures come from the ordinary image; the profile (where a CPUID
// round trip's ticks go) from the profiling build, whose stamps add ticks.
let r, p;
try {
  r = await run('bench', path.join(REPO, 'build', 'hv.elf'));
  p = await run('bench-profile', path.join(REPO, 'build', 'prof', 'hv.elf'));
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}

interface Figure { min: number; median: number; n: number }
const figures: Record<string, Figure> = {};
for (const m of r.serial.matchAll(/^L1\| bench: (\S+) min=(\d+) median=(\d+) n=(\d+)$/gm)) {
  figures[m[1]] = { min: Number(m[2]), median: Number(m[3]), n: Number(m[4]) };
}
if (Object.keys(figures).length === 0) throw new Error('the benchmark guest printed no figures');

// The hypervisor's own profile of a CPUID round trip, when it printed one.
const profile: Record<string, number> = {};
for (const m of p.serial.matchAll(/^hv: profile: (\S+) (\d+)$/gm)) profile[m[1]] = Number(m[2]);
const cpuid = figures['cpuid']?.min;
if (cpuid !== undefined && Object.keys(profile).length) {
  // What the software parts leave of the ordinary build's round trip is the
  // processor's VM exit + VM entry (and the guest's CPUID/RDTSC placement).
  profile['vm-exit+entry (rest)'] = cpuid - (profile['stub'] ?? 0) - (profile['c'] ?? 0) - (profile['assemblyscript'] ?? 0);
}

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
} catch {
  /* not a git checkout */
}
const result = {
  what: 'round trips measured in the guest with RDTSC; Bochs 2.7, cpu: model=tigerlake, count=1, clock: sync=none (1 tick = 1 emulated instruction)',
  commit,
  date: new Date().toISOString(),
  figures,
  profile,
};
fs.mkdirSync(path.join(REPO, 'bench'), { recursive: true });
fs.writeFileSync(path.join(REPO, 'bench', 'results.json'), JSON.stringify(result, null, 2) + '\n');

const w = Math.max(...Object.keys(figures).map((k) => k.length), 9);
console.log(`\n${'operation'.padEnd(w)}  ${'min'.padStart(8)}  ${'median'.padStart(8)}  ${'n'.padStart(6)}`);
for (const [k, f] of Object.entries(figures)) {
  console.log(`${k.padEnd(w)}  ${String(f.min).padStart(8)}  ${String(f.median).padStart(8)}  ${String(f.n).padStart(6)}`);
}
if (Object.keys(profile).length) {
  console.log('\nCPUID round trip, where the ticks go (hypervisor profile):');
  for (const [k, v] of Object.entries(profile)) console.log(`  ${k.padEnd(24)} ${v}`);
}
console.log(`\nwritten: bench/results.json (commit ${commit})`);
