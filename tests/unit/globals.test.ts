// State lives in objects (issue 10, design.md "The state model"): a VM's and
// a vCPU's state in the Vm, the Vcpu and its Nested, passed to the code that
// uses them. A module-level variable — a top-level `let`, or a top-level
// `const` made with `new` or `memory.data` (mutable storage all the same) —
// is allowed only for what is the machine's rather than a guest's, and says
// so on its line:
//   // machine-wide: <why>       hardware capabilities, the page allocator,
//                                the console, the parsed command line,
//                                constants computed at start, scratch of
//                                one call
//   // rebuildable cache: <of>   a copy of a running guest's state that is
//                                rebuilt whenever that guest is (re)entered
//   // test hooks only: <why>    kernel/hooks/, the model tests' entry points
// This test reads every kernel source (kernel/arch/ is generated constants)
// and fails on a module variable without one of those marks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const KERNEL = path.join(REPO, 'kernel');

const MODULE_VARIABLE = /^(export )?(let|var) |^(export )?const \w+ *(: *[^=]+)?= *(new |memory\.data)/;
const MARK = /\/\/ (machine-wide|rebuildable cache|test hooks only)\b/;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

export function unmarked(src: string, file: string): string[] {
  const found: string[] = [];
  src.split('\n').forEach((line, i) => {
    if (MODULE_VARIABLE.test(line) && !MARK.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return found;
}

test('every module variable of the kernel says why it is not in a Vm or Vcpu object', () => {
  const files = sources(KERNEL).filter((f) => !f.startsWith(path.join(KERNEL, 'arch') + path.sep));
  assert.ok(files.length > 80, `${files.length} kernel sources`);
  const bad = files.flatMap((f) => unmarked(fs.readFileSync(f, 'utf8'), path.relative(REPO, f)));
  assert.equal(bad, [], 'module variables without a "machine-wide", "rebuildable cache" or "test hooks only" mark');
});

test('the scan finds what it must (a per-guest variable would fail)', () => {
  assert.equal(unmarked('let exitsOfTheGuest: u64 = 0;\nconst x: u32 = 5;\n', 'f.ts').length, 1);
  assert.equal(unmarked('export const buf: usize = memory.data(64);\n', 'f.ts').length, 1);
  assert.equal(unmarked('const counts = new StaticArray<u64>(4);\n', 'f.ts').length, 1);
  assert.equal(unmarked('let n: u32 = 0; // machine-wide: the CPU count\n', 'f.ts').length, 0);
});

test.run();
