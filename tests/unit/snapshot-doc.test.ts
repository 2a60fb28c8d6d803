// docs/snapshot.md against the generated layout and the kernel's rules: the
// document is the format's definition for readers, so its tables must say
// what tools/vmx/table.mjs declares and kernel/snapshot/rules.ts checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as V from '../model/vmx-consts.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = readFileSync(join(REPO, 'docs/snapshot.md'), 'utf8');
const consts = V as unknown as Record<string, number>;
const rows = doc.split('\n').filter((l) => l.startsWith('|')).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));

test('every offset row names a generated constant with that offset', () => {
  let n = 0;
  for (const r of rows) {
    const m = /^`(SNAP_[A-Z0-9_]+)`$/.exec(r[2] ?? '');
    if (!m || !/^\d+$/.test(r[0])) continue;
    assert.ok(m[1] in consts, `${m[1]} is not generated`);
    assert.is(consts[m[1]], Number(r[0]), `${m[1]}: the document says offset ${r[0]}`);
    n++;
  }
  assert.ok(n >= 40, `only ${n} offset rows found`);
});

test('the section table has every id with its name', () => {
  for (const s of V.SNAP_SECTIONS) {
    const row = rows.find((r) => r[0] === String(s.id) && r[1] === s.name);
    assert.ok(row, `section ${s.id} ${s.name} is not in the table`);
  }
});

test('the flags table gives each flag its value', () => {
  for (const [name, value] of [['SNAP_FLAG_GUEST_MODE', V.SNAP_FLAG_GUEST_MODE], ['SNAP_FLAG_RUN_PENDING', V.SNAP_FLAG_RUN_PENDING], ['SNAP_FLAG_EVMCS', V.SNAP_FLAG_EVMCS]] as const) {
    const row = rows.find((r) => r[0] === '`' + name + '`');
    assert.ok(row, name);
    assert.is(parseInt(row![1], 16), value, name);
  }
});

test('every rule the kernel names is explained in "Validation"', () => {
  const src = readFileSync(join(REPO, 'kernel/snapshot/rules.ts'), 'utf8');
  const names = [...src.matchAll(/case [A-Z0-9_]+: return "([a-z0-9.-]+)";/g)].map((m) => m[1]).filter((n) => n !== 'ok');
  assert.ok(names.length >= 70, `${names.length} rule names`);
  const validation = doc.slice(doc.indexOf('## Validation'), doc.indexOf('## Limits'));
  for (const n of names) assert.ok(validation.includes('`' + n + '`'), `${n} is not in docs/snapshot.md "Validation"`);
});

test.run();
