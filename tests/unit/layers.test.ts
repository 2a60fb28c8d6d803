// Which kernel layer may import which (ARCHITECTURE.md, "Layers"): vm/ is
// below nested/. nested/ imports vm/ as it needs; vm/ never imports
// nested/, and reaches nested VMX only through kernel/vm/nesting.ts (the
// references nested/install.ts sets at start) and the exit loop's type
// parameter that kmain supplies. This test reads every import and export
// ... from ... of kernel/**/*.ts and fails on an import a rule forbids.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const KERNEL = path.join(REPO, 'kernel');

// [importing directory, imported directory, why], both under kernel/.
const FORBIDDEN: [string, string, string][] = [
  ['vm', 'nested', 'vm/ is the lower layer: it reaches nested/ through vm/nesting.ts'],
];
// Imports a rule would forbid but that are allowed, as [file, imported
// file] under kernel/, each with its reason in a comment.
const ALLOWED: [string, string][] = [
  // The Vcpu owns its nested-VMX part (design.md, "The state model"): the
  // Nested class, made and cleared with the Vcpu. Data of the vCPU, not a
  // way into nested/'s code.
  ['vm/vcpu.ts', 'nested/nested'],
];

// The module specifiers a source imports or re-exports from.
function specifiers(src: string): string[] {
  const out: string[] = [];
  const code = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of code.matchAll(/\b(?:import|export)\s+(?:[^'";]*?\s+from\s+)?["']([^"']+)["']/g)) out.push(m[1]);
  return out;
}

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

// The forbidden imports of `file` (path under kernel/) with source `src`.
function violations(file: string, src: string): string[] {
  const out: string[] = [];
  for (const spec of specifiers(src)) {
    if (!spec.startsWith('.')) continue;
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
    for (const [from, to, why] of FORBIDDEN) {
      if (!file.startsWith(from + '/') || !(target === to || target.startsWith(to + '/'))) continue;
      if (ALLOWED.some(([f, t]) => f === file && t === target)) continue;
      out.push(`kernel/${file} imports "${spec}" (kernel/${target}): ${why}`);
    }
  }
  return out;
}

test('the scanner sees every import form', () => {
  const src = [
    'import * as a from "../nested/state";',
    "import { b, c } from '../../nested/caps';",
    'import {\n  d,\n} from "../nested/launch";',
    'export * from "../nested/vmcs02";',
    'export { e } from "../nested/reflect";',
    'import "../nested/shadow";',
    '// import * as f from "../nested/commented";',
    '/* import * as g from "../nested/commented"; */',
    'import * as h from "./guestmem";',
  ].join('\n');
  assert.equal(specifiers(src), ['../nested/state', '../../nested/caps', '../nested/launch', '../nested/vmcs02',
    '../nested/reflect', '../nested/shadow', './guestmem']);
  // A file in vm/exit/ reaching nested/ two levels up is caught too; vm/'s own
  // imports and nested/'s imports of vm/ are not.
  assert.equal(violations('vm/exit/cr.ts', "import { b } from '../../nested/caps';").length, 1);
  // (From vm/guest.ts, '../../nested/caps' is outside kernel/: not nested/.)
  assert.equal(violations('vm/guest.ts', src).length, 5);
  assert.equal(violations('nested/l2exit.ts', 'import * as exits from "../vm/exits";'), []);
});

test('vm/ does not import nested/', () => {
  const bad = tsFiles(KERNEL).flatMap((f) => {
    const rel = path.relative(KERNEL, f).split(path.sep).join('/');
    return violations(rel, fs.readFileSync(f, 'utf8'));
  });
  assert.equal(bad, [], bad.join('\n'));
});

test.run();
