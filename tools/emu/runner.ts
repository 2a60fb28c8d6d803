// Shared machinery for emulator runs (Bochs, QEMU): start the emulator in its
// own process group under a hard timeout, follow its serial log file while it
// runs, and turn what it printed into a result the tests and the demo check.
//
// Every hypervisor run ends with exactly one console line
//   hv: exit status=N (name)
// and the emulator's own exit code says how the machine was stopped (Bochs: 0
// after the magic breakpoint, 1 after the shutdown port; QEMU: N*2+1 from
// isa-debug-exit). A guest can fake either signal alone, so a run passes only
// when both agree with what was expected (expectRun).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RUNS_DIR = path.join(REPO, 'build', 'runs');

/** Exit statuses (boot/include/hv.h, kernel/lib/status.ts). */
export const STATUS_NAMES: readonly string[] = [
  'ok', 'fail', 'no-vtx', 'vmx-locked', 'vmx-setup', 'trap', 'exception', 'boot',
];

export interface RunResult {
  name: string;
  /** Shell command line that reproduces the run, starting with `cd <cwd> &&`. */
  command: string;
  /** Emulator exit code; null when it was killed by a signal. */
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
  /** COM1 output, with CR and terminal escape sequences removed. */
  serial: string;
  /** N of the last `hv: exit status=N (name)` line, null when there is none. */
  status: number | null;
  statusName: string | null;
  /** How many `hv: exit status=` lines the serial log holds (1 when sane). */
  exitLines: number;
  runDir: string;
  serialPath: string;
  /** Why the runner stopped the emulator early, or could not start it. */
  error: string | null;
}

export interface RunSpec {
  name: string;
  /** Program and arguments. */
  argv: string[];
  /** Extra environment variables (also written into `command`). */
  env?: Record<string, string>;
  cwd?: string;
  runDir: string;
  /** File the emulator writes COM1 to. */
  serialPath: string;
  timeoutMs: number;
  /** Copy the serial output to stdout as it arrives (the demo). */
  live?: boolean;
  /** Progress lines on stderr every ~5 s (default: on). */
  progress?: boolean;
  /** Emulator stdout/stderr text that means the machine is stuck for good
   * (e.g. "KVM internal error", after which QEMU waits forever): stop at once. */
  abortOn?: { pattern: RegExp; reason: string }[];
}

/** Quote one word for a POSIX shell. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Remove terminal escape sequences (OVMF clears the screen over serial),
 * carriage returns and other control characters except newline and tab. */
export function cleanSerial(raw: string): string {
  return raw
    .replace(/\x1b\[[0-9;=?]*[ -\/]*[@-~]/g, '')
    .replace(/\x1b[@-_]/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

const EXIT_LINE = /^hv: exit status=(\d+) \(([^)]*)\)\s*$/;

export function parseStatus(serial: string): { status: number | null; statusName: string | null; exitLines: number } {
  let status: number | null = null;
  let statusName: string | null = null;
  let exitLines = 0;
  for (const line of serial.split('\n')) {
    const m = EXIT_LINE.exec(line);
    if (m) {
      exitLines++;
      status = Number(m[1]);
      statusName = m[2];
    }
  }
  return { status, statusName, exitLines };
}

/** A fresh, empty build/runs/<name>/. */
export function freshRunDir(name: string): string {
  const dir = path.join(RUNS_DIR, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// Emulators still running: killed (whole process group) when this process
// ends or is interrupted, so no Bochs outlives the test that started it.
const running = new Set<number>();
let handlersInstalled = false;
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const pid of running) killGroup(pid);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      for (const pid of running) killGroup(pid);
      process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[sig]);
    });
  }
}

function lastLine(text: string): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1] : '';
}

/** Run an emulator to completion (or its timeout) and collect the result. */
export function runEmulator(spec: RunSpec): Promise<RunResult> {
  installHandlers();
  const cwd = spec.cwd ?? REPO;
  const envWords = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`);
  const command = `cd ${shellQuote(cwd)} && ${[...envWords, ...spec.argv.map(shellQuote)].join(' ')} </dev/null`;
  fs.mkdirSync(spec.runDir, { recursive: true });
  fs.writeFileSync(path.join(spec.runDir, 'command.sh'), `#!/bin/sh\n${command}\n`, { mode: 0o755 });
  fs.rmSync(spec.serialPath, { force: true });
  const outPath = path.join(spec.runDir, 'emulator.out');
  const outFd = fs.openSync(outPath, 'w');

  const start = Date.now();
  return new Promise<RunResult>((resolve) => {
    let timedOut = false;
    let error: string | null = null;
    let rawSerial = '';
    let serialOffset = 0;
    let liveAtLineStart = true;
    let emulatorText = '';

    // Follow the serial file: the emulators write it as the guest prints.
    const pump = (): void => {
      let fd: number;
      try {
        fd = fs.openSync(spec.serialPath, 'r');
      } catch {
        return; // not created yet
      }
      try {
        const buf = Buffer.alloc(65536);
        for (;;) {
          const n = fs.readSync(fd, buf, 0, buf.length, serialOffset);
          if (n <= 0) break;
          serialOffset += n;
          const chunk = buf.subarray(0, n).toString('latin1');
          rawSerial += chunk;
          if (spec.live) {
            const text = cleanSerial(chunk);
            if (text) {
              process.stdout.write(text);
              liveAtLineStart = text.endsWith('\n');
            }
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    };

    const child = spawn(spec.argv[0], spec.argv.slice(1), {
      cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group: the timeout kills everything it started
    });
    if (child.pid !== undefined) running.add(child.pid);

    const onOutput = (data: Buffer): void => {
      fs.writeSync(outFd, data);
      if (!spec.abortOn?.length || error) return;
      emulatorText = (emulatorText + data.toString('latin1')).slice(-65536);
      for (const a of spec.abortOn) {
        if (a.pattern.test(emulatorText)) {
          error = a.reason;
          if (child.pid !== undefined) killGroup(child.pid);
          break;
        }
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);

    const poll = setInterval(pump, 100);
    const progress = spec.progress === false ? null : setInterval(() => {
      pump();
      const secs = Math.round((Date.now() - start) / 1000);
      const last = lastLine(cleanSerial(rawSerial)).slice(0, 120) || '(nothing yet)';
      const lead = spec.live && !liveAtLineStart ? '\n' : '';
      process.stderr.write(`${lead}[${spec.name}] ${secs}s, serial: ${last}\n`);
      liveAtLineStart = true;
    }, 5000);
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid);
    }, spec.timeoutMs);

    let finished = false;
    const finish = (exitCode: number | null): void => {
      if (finished) return;
      finished = true;
      clearInterval(poll);
      if (progress) clearInterval(progress);
      clearTimeout(timer);
      if (child.pid !== undefined) {
        killGroup(child.pid); // anything it left behind in its group
        running.delete(child.pid);
      }
      pump();
      if (spec.live && !liveAtLineStart) process.stdout.write('\n');
      fs.closeSync(outFd);
      const serial = cleanSerial(rawSerial);
      const parsed = parseStatus(serial);
      resolve({
        name: spec.name,
        command,
        exitCode,
        timedOut,
        durationMs: Date.now() - start,
        serial,
        status: parsed.status,
        statusName: parsed.statusName,
        exitLines: parsed.exitLines,
        runDir: spec.runDir,
        serialPath: spec.serialPath,
        error,
      });
    };
    child.on('error', (e) => {
      error = `could not start ${spec.argv[0]}: ${e.message}`;
      finish(null);
    });
    child.on('close', (code) => finish(code));
  });
}

export interface Expectation {
  /** Expected hypervisor exit status (the `hv: exit status=N` line). */
  status: number;
  /** Expected emulator exit code. */
  exitCode: number;
  /** Lines that must each match some serial line. */
  lines?: RegExp[];
}

/** Why a run does not meet the expectation, as a list of problems (empty = pass). */
export function runProblems(r: RunResult, e: Expectation): string[] {
  const problems: string[] = [];
  if (r.error) problems.push(r.error);
  if (r.timedOut) problems.push(`timed out after ${(r.durationMs / 1000).toFixed(1)}s and was killed`);
  if (r.status === null) {
    problems.push('no "hv: exit status=N (name)" line');
  } else {
    if (r.status !== e.status) problems.push(`hypervisor status ${r.status} (${r.statusName}), expected ${e.status} (${STATUS_NAMES[e.status] ?? '?'})`);
    else if (STATUS_NAMES[r.status] !== undefined && r.statusName !== STATUS_NAMES[r.status]) {
      problems.push(`status ${r.status} is named "${r.statusName}", expected "${STATUS_NAMES[r.status]}"`);
    }
    if (r.exitLines > 1) problems.push(`${r.exitLines} "hv: exit status=" lines, expected exactly one`);
    if (!EXIT_LINE.test(lastLine(r.serial))) problems.push('the "hv: exit status=" line is not the last serial line');
  }
  if (!r.timedOut && r.exitCode !== e.exitCode) problems.push(`emulator exit code ${r.exitCode ?? 'none (killed)'}, expected ${e.exitCode}`);
  const lines = r.serial.split('\n');
  for (const re of e.lines ?? []) {
    if (!lines.some((l) => re.test(l))) problems.push(`no serial line matches ${re}`);
  }
  return problems;
}

/** The serial log's last n lines. */
export function tailLines(serial: string, n = 30): string[] {
  const lines = serial.replace(/\n+$/, '').split('\n');
  return lines.slice(-n);
}

/** A readable report of a failed run: expected vs seen, the serial tail and
 * the command that reproduces it. */
export function describeFailure(r: RunResult, e: Expectation, problems: string[]): string {
  const expected = [`status=${e.status} (${STATUS_NAMES[e.status] ?? '?'})`, `emulator exit code ${e.exitCode}`,
    ...(e.lines ?? []).map((re) => `a line matching ${re}`)].join(', ');
  const seen = [r.status === null ? 'no exit status line' : `status=${r.status} (${r.statusName})`,
    r.timedOut ? 'timed out' : `emulator exit code ${r.exitCode ?? 'none'}`,
    `${(r.durationMs / 1000).toFixed(1)}s`].join(', ');
  return [
    `run ${r.name} failed: ${problems.join('; ')}`,
    `  expected: ${expected}`,
    `  seen:     ${seen}`,
    `  last serial lines (${r.serialPath}):`,
    ...tailLines(r.serial, 30).map((l) => `    | ${l}`),
    `  emulator output: ${path.join(r.runDir, 'emulator.out')}`,
    `  reproduce: ${r.command}`,
  ].join('\n');
}

/** Throws an Error saying what was expected, what was seen, the last 30
 * serial lines and the command to reproduce, unless the run passed. */
export function expectRun(r: RunResult, e: Expectation): void {
  const problems = runProblems(r, e);
  if (!problems.length) return;
  const err = new Error(describeFailure(r, e, problems));
  // Test reporters (uvu) print the message and then the stack: keep only the
  // first line of the message in the stack so the report is not printed twice.
  const frames = (err.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  err.stack = [`Error: run ${r.name} failed`, ...frames].join('\n');
  throw err;
}

/** The `tsc=N` value of the first serial line matching `prefix`. */
export function tscOf(serial: string, prefix: RegExp): number | null {
  for (const line of serial.split('\n')) {
    if (!prefix.test(line)) continue;
    const m = /\btsc=(\d+)/.exec(line);
    if (m) return Number(m[1]);
  }
  return null;
}
