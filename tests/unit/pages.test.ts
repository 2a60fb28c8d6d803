// The physical page allocator (kernel/mm/pages.ts) built from the boot map,
// exercised through kernel.wasm's test hooks on the model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, buildBootInfo } from '../model/index.ts';

const MiB = 0x100000;
const PAGE = 4096;

function setup(spec: Parameters<typeof buildBootInfo>[1]) {
  const m = tigerlake();
  const layout = buildBootInfo(m, spec);
  const k = loadKernel(m);
  const p = k.call<number>('boot_parse', layout.bootinfo);
  assert.is(p.value, 1, 'boot info parses');
  assert.not.ok(p.ended);
  k.call('pages_init');
  const ranges = (): [number, number][] => {
    const n = k.call<number>('pages_count').value!;
    const out: [number, number][] = [];
    for (let i = 0; i < n; i++)
      out.push([Number(k.call<bigint>('pages_rangeStart', i).value), Number(k.call<bigint>('pages_rangeEnd', i).value)]);
    return out;
  };
  return { m, k, layout, ranges };
}

const overlaps = (a: [number, number], b0: number, b1: number): boolean => a[0] < b1 && a[1] > b0;

test('free list = available minus everything else, page aligned, above 1 MiB', () => {
  const mmap = [
    { base: 0, length: 0x9fc00, type: 1 },
    { base: 0x9fc00, length: 0x60400, type: 2 },
    { base: MiB, length: 31 * MiB, type: 1 },
    { base: 20 * MiB + 0x800, length: 0x1000, type: 2 }, // unaligned reserved hole inside RAM
    { base: 32 * MiB, length: 16 * MiB, type: 3 }, // ACPI
    { base: 48 * MiB, length: 16 * MiB - PAGE, type: 1 },
  ];
  const { ranges, layout } = setup({ mmap, files: [{ name: '/f', data: new Uint8Array(3 * PAGE + 5) }] });
  const r = ranges();
  assert.ok(r.length > 0);
  for (const x of r) {
    assert.is(x[0] % PAGE, 0);
    assert.is(x[1] % PAGE, 0);
    assert.ok(x[0] >= MiB, 'nothing below 1 MiB');
    assert.ok(x[1] > x[0]);
    assert.not.ok(overlaps(x, 20 * MiB, 20 * MiB + 0x2000), 'reserved hole widened to whole pages');
    assert.not.ok(overlaps(x, 32 * MiB, 48 * MiB), 'ACPI range');
    assert.not.ok(overlaps(x, layout.image.base, layout.image.end), 'hypervisor image');
    assert.not.ok(overlaps(x, layout.data.base, layout.data.end), 'boot data');
    for (const f of layout.files) assert.not.ok(overlaps(x, f.base, f.base + f.length), 'boot file');
  }
  for (let i = 1; i < r.length; i++) assert.ok(r[i - 1][1] < r[i][0], 'sorted, disjoint, merged');
  assert.is(r[r.length - 1][1], 64 * MiB - PAGE);
});

test('overlapping available entries are merged, reserved wins over available', () => {
  const mmap = [
    { base: MiB, length: 20 * MiB, type: 1 },
    { base: 10 * MiB, length: 30 * MiB, type: 1 },
    { base: 30 * MiB, length: MiB, type: 2 },
  ];
  const { ranges, layout } = setup({ mmap, imageBase: 2 * MiB, imageSize: 2 * MiB });
  const r = ranges();
  const total = r.reduce((s, x) => s + x[1] - x[0], 0);
  // 1..40 MiB minus image (2 MiB) minus reserved (1 MiB) minus boot data
  const data = layout.data.end - layout.data.base;
  assert.is(total, 39 * MiB - 2 * MiB - MiB - data);
  assert.ok(r.some((x) => x[1] === 30 * MiB));
  assert.ok(r.some((x) => x[0] === 31 * MiB && x[1] === 40 * MiB));
});

test('alloc: first fit, zeroed, respects a limit, and free merges back', () => {
  const { m, k, ranges } = setup({});
  const before = ranges();
  const first = before[0][0];
  m.phys.write32(first, 0xdeadbeef);
  const a = Number(k.call<bigint>('pages_alloc', 1, 0n).value);
  assert.is(a, first, 'lowest free page');
  assert.is(m.phys.read32(a), 0, 'handed out zeroed');
  const b = Number(k.call<bigint>('pages_alloc', 4, 0n).value);
  assert.is(b, a + PAGE);
  k.call('pages_free', BigInt(a), 1);
  k.call('pages_free', BigInt(b), 4);
  assert.equal(ranges(), before, 'freeing restores the exact list');
  const big = k.call<bigint>('pages_alloc', 1 << 20, 0n).value;
  assert.is(big, 0n, 'an impossible request returns 0');
  const low = k.call<bigint>('pages_alloc', 1, BigInt(first + PAGE)).value;
  assert.is(Number(low), first, 'page below the limit');
  const none = k.call<bigint>('pages_alloc', 2, BigInt(first + PAGE)).value;
  assert.is(none, 0n, 'no two pages below a one-page limit');
});

test('double free is a hypervisor bug: abort, never a corrupted list', () => {
  const { k } = setup({});
  const a = k.call<bigint>('pages_alloc', 1, 0n).value!;
  k.call('pages_free', a, 1);
  const r = k.call('pages_free', a, 1);
  assert.ok(r.ended);
  assert.is(r.status, 5);
  assert.match(r.trap ?? '', /pages.free: double free/);
});

test.run();
