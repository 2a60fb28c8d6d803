// The test driver behind `make test`:
//   node --import tsx tools/test.ts [DIR|FILE ...]     (default: tests/unit tests/qemu)
// Runs every *.test.ts file as its own `node --import tsx FILE` process, one
// after the other (emulator tests are heavy, and uvu has no isolation of its
// own: a hang or process.exit in one file would end all the others), streams
// its output, and reads uvu's summary (Total / Passed / Skipped). A file that
// dies before printing its summary, or exits non-zero without reporting a
// failure, counts as one failed test. The last line of output is
//   N passed, N failed            (", N skipped" appended when any were skipped)
// and the exit status is 0 only when nothing failed and at least one test ran.
// Files in OPT_IN are left out of a directory's files (with a line saying so)
// and run only when named.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_TARGETS = ['tests/unit', 'tests/qemu'];
/** A file that runs longer than this is killed (its tests have their own,
 * shorter limits; this only stops a runaway). HV_TEST_FILE_TIMEOUT=seconds. */
const FILE_TIMEOUT_MS = Number(process.env.HV_TEST_FILE_TIMEOUT ?? 1800) * 1000;
/** Test files that wait for a feature: not in `make test` until it lands
 * (then delete the entry), run by naming the file. Path -> why. */
const OPT_IN = new Map<string, string>([]);
const leftOut: string[] = [];

function collect(target: string): string[] {
  const abs = path.resolve(REPO, target);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new Error(`no such file or directory: ${target}`);
  }
  if (st.isFile()) return [abs];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(p);
      } else if (e.name.endsWith('.test.ts')) {
        const rel = path.relative(REPO, p);
        if (OPT_IN.has(rel)) leftOut.push(`${rel} (${OPT_IN.get(rel)}; run it by naming it)`);
        else out.push(p);
      }
    }
  };
  walk(abs);
  return out;
}

const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;

interface FileResult {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  seconds: number;
  note: string;
}

/** uvu's closing summary, or null when the output holds none. */
export function parseUvuSummary(text: string): { total: number; passed: number; skipped: number } | null {
  const clean = text.replace(ANSI, '');
  const num = (label: string): number | null => {
    const all = [...clean.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)\\s*$`, 'gm'))];
    return all.length ? Number(all[all.length - 1][1]) : null;
  };
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  if (total === null || passed === null) return null;
  return { total, passed, skipped: skipped ?? 0 };
}

let current: number | null = null;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (current !== null) {
      try {
        process.kill(-current, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

function runFile(file: string): Promise<FileResult> {
  const rel = path.relative(REPO, file);
  const start = Date.now();
  return new Promise((resolve) => {
    let output = '';
    const env = { ...process.env };
    if (process.stdout.isTTY && env.NO_COLOR === undefined) env.FORCE_COLOR = '1';
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout takes its emulators too
    });
    current = child.pid ?? null;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGTERM'); // lets the runner kill its emulators
        } catch {
          /* gone */
        }
        setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, 5000).unref();
      }
    }, FILE_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString('utf8');
      process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    const done = (code: number | null, signal: string | null, spawnError?: Error): void => {
      clearTimeout(timer);
      current = null;
      const seconds = (Date.now() - start) / 1000;
      const s = parseUvuSummary(output);
      let passed = 0;
      let failed = 0;
      let skipped = 0;
      let note = '';
      if (spawnError) {
        failed = 1;
        note = `could not start: ${spawnError.message}`;
      } else if (!s) {
        failed = 1;
        note = timedOut ? `killed after ${FILE_TIMEOUT_MS / 1000}s` : `no uvu summary (exit ${code ?? signal})`;
      } else {
        passed = s.passed;
        failed = Math.max(0, s.total - s.passed);
        skipped = s.skipped;
        if (code !== 0 && failed === 0) {
          failed = 1;
          note = timedOut ? `killed after ${FILE_TIMEOUT_MS / 1000}s` : `exit ${code ?? signal} after its summary`;
        }
      }
      resolve({ file: rel, passed, failed, skipped, seconds, note });
    };
    child.on('error', (e) => done(null, null, e));
    child.on('close', (code, signal) => done(code, signal));
  });
}

function counts(r: { passed: number; failed: number; skipped: number }): string {
  return `${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}`;
}

async function main(): Promise<number> {
  const targets = process.argv.slice(2);
  const files: string[] = [];
  for (const t of targets.length ? targets : DEFAULT_TARGETS) {
    try {
      files.push(...collect(t));
    } catch (e) {
      if (targets.length) {
        console.error(`test: ${(e as Error).message}`);
        console.log('0 passed, 1 failed');
        return 1;
      }
      // a default directory that does not exist yet simply holds no tests
    }
  }
  for (const l of leftOut) console.log(`test: left out ${l}`);
  const results: FileResult[] = [];
  for (const f of files) {
    console.log(`\n== ${path.relative(REPO, f)}`);
    results.push(await runFile(f));
  }
  const total = { passed: 0, failed: 0, skipped: 0 };
  if (results.length) console.log('');
  for (const r of results) {
    total.passed += r.passed;
    total.failed += r.failed;
    total.skipped += r.skipped;
    console.log(`${r.file}: ${counts(r)} (${r.seconds.toFixed(1)}s)${r.note ? ` [${r.note}]` : ''}`);
  }
  if (files.length === 0) console.error('test: no *.test.ts files found');
  console.log(counts(total));
  return total.failed === 0 && total.passed + total.failed > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
