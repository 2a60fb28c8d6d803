// Boot information and command line as kernel.wasm reads them
// (boot/include/bootinfo.h), run on the model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, runKernel, buildBootInfo } from '../model/index.ts';

test('summary: source, command line, files', () => {
  const data = new TextEncoder().encode('guest kernel bytes');
  const r = runKernel(tigerlake(), {
    boot: { source: 'uefi', cmdline: 'caps=off', files: [{ name: '/EFI/hv/guest.elf', data }] },
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0);
  assert.match(r.console, /^hv: kernel start tsc=\d+\n/);
  assert.match(r.console, /hv: boot: uefi, \d+ memory map entries, 1 files, front-end entry tsc=\d+/);
  assert.match(r.console, /hv: command line: "caps=off"/);
  assert.match(r.console, new RegExp(`hv: file /EFI/hv/guest.elf: ${data.length} bytes at 0x[0-9a-f]+`));
});

test('unknown option: named, status 7, never ignored', () => {
  const r = runKernel(tigerlake(), { boot: { cmdline: 'caps=off  frobnicate=3' } });
  assert.equal(r.faults, []);
  assert.is(r.status, 7);
  assert.match(r.console, /hv: command line: unknown option 'frobnicate=3'/);
  assert.not.match(r.console, /vmxon ok/);
});

test('bad option value: named, status 7', () => {
  const r = runKernel(tigerlake(), { boot: { cmdline: 'caps=maybe' } });
  assert.is(r.status, 7);
  assert.match(r.console, /caps= takes on or off, not 'maybe'/);
});

test('snapshot=N: a number of exits (status 7 for anything else); accepted before and after guest=', () => {
  for (const bad of ['snapshot=0', 'snapshot=x', 'snapshot=']) {
    const r = runKernel(tigerlake(), { boot: { cmdline: `caps=off ${bad}` } });
    assert.is(r.status, 7, bad);
    assert.match(r.console, /snapshot= needs a number of exits \(1 or more\)/, bad);
  }
  const r = runKernel(tigerlake(), { boot: { cmdline: 'caps=off snapshot=25' } });
  assert.equal(r.faults, []);
  assert.not.match(r.console, /snapshot= (cannot|needs)/);
  assert.match(r.console, /vmxon ok/);
});

test('hyperv=on|off per guest; with snapshot=N accepted (the blob holds the Hyper-V state: docs/snapshot.md "HYPERV")', () => {
  const data = new TextEncoder().encode('not a kernel');
  const files = [{ name: '/g.elf', data }];
  const bad = runKernel(tigerlake(), { boot: { cmdline: 'caps=off guest=/g.elf hyperv=maybe', files } });
  assert.is(bad.status, 7);
  assert.match(bad.console, /hyperv= takes on or off, not 'maybe'/);
  // Accepted with and without snapshot= (the guest then fails to load: not a kernel).
  for (const cmdline of ['caps=off guest=/g.elf hyperv=on', 'caps=off guest=/g.elf hyperv=off snapshot=3',
    'caps=off guest=/g.elf hyperv=on snapshot=3', 'caps=off snapshot=2 guest=/g.elf hyperv=on']) {
    const r = runKernel(tigerlake(), { boot: { cmdline, files } });
    assert.not.equal(r.status, 7, cmdline);
    assert.not.match(r.console, /takes on or off|cannot run yet|unknown option|refused/, cmdline);
    assert.match(r.console, /vmxon ok/, cmdline);
  }
});

// Corrupt one field of a well-formed structure and expect the named check.
function corrupt(offset: number, width: 32 | 64, value: bigint | number, expect: RegExp): void {
  const m = tigerlake();
  const layout = buildBootInfo(m, { cmdline: '' });
  const at = Number(layout.bootinfo) + offset;
  if (width === 32) m.phys.write32(at, Number(value));
  else m.phys.write64(at, BigInt(value));
  const r = runKernel(m);
  assert.equal(r.faults, [], 'the kernel must not follow a bad pointer');
  assert.is(r.status, 7);
  assert.match(r.console, expect);
}

test('bad magic', () => corrupt(0, 32, 0x12345678, /boot info invalid: magic \(0x12345678\)/));
test('bad version', () => corrupt(4, 32, 9, /boot info invalid: version \(0x9\)/));
test('bad source', () => corrupt(8, 32, 3, /boot info invalid: source/));
test('no memory map', () => corrupt(12, 32, 0, /boot info invalid: memory map entry count \(0x0\)/));
test('huge memory map', () => corrupt(12, 32, 100000, /memory map entry count \(0x186a0\)/));
test('command line too long', () => corrupt(32, 32, 5000, /command line length \(0x1388\)/));
test('too many files', () => corrupt(36, 32, 65, /file count \(0x41\)/));

test('file table with a wrapping range', () => {
  const m = tigerlake();
  const layout = buildBootInfo(m, { files: [{ name: '/g', data: new Uint8Array(16) }] });
  const table = Number(m.phys.read64(Number(layout.bootinfo) + 40));
  m.phys.write64(table + 8, 0xffffffffffff0000n);
  const r = runKernel(m);
  assert.equal(r.faults, []);
  assert.is(r.status, 7);
  assert.match(r.console, /boot info invalid: file wraps/);
});

test('non-ASCII byte in the command line', () => {
  const m = tigerlake();
  const layout = buildBootInfo(m, { cmdline: 'caps=on' });
  const cmd = Number(m.phys.read64(Number(layout.bootinfo) + 24));
  m.phys.write(cmd + 2, new Uint8Array([0xff]));
  const r = runKernel(m);
  assert.is(r.status, 7);
  assert.match(r.console, /command line byte \(0xff\)/);
});

test('crash=trap: a wasm out-of-bounds access is reported as a trap, status 5', () => {
  const r = runKernel(tigerlake(), { boot: { cmdline: 'crash=trap' } });
  assert.is(r.status, 5);
  assert.match(r.console, /hv: trap: wasm out-of-bounds linear memory or table access\nhv: exit status=5 \(trap\)\n$/);
});

test('crash=abort: an AssemblyScript abort prints its message, status 5', () => {
  const r = runKernel(tigerlake(), { boot: { cmdline: 'crash=abort' } });
  assert.is(r.status, 5);
  assert.match(r.console, /hv: trap: abort: crash=abort requested at \S+\nhv: exit status=5 \(trap\)\n$/);
});

test('crash=exception: the #GP reaches the machine (on hardware the IDT reports it)', () => {
  const r = runKernel(tigerlake(), { boot: { cmdline: 'crash=exception' } });
  assert.match(r.faults.join('\n'), /#GP/);
  assert.match(r.console, /crash requested on the command line/);
});

test('vcpus=N per guest: 1 to 8 (status 7 for anything else); above 1 with snapshot=/ramsnap=/migrate= refused at start', () => {
  const data = new TextEncoder().encode('not a kernel');
  const files = [{ name: '/g.elf', data }];
  for (const bad of ['vcpus=0', 'vcpus=9', 'vcpus=x', 'vcpus=']) {
    const r = runKernel(tigerlake(), { boot: { cmdline: `caps=off guest=/g.elf ${bad}`, files } });
    assert.is(r.status, 7, bad);
    assert.match(r.console, /vcpus= needs a number of vCPUs from 1 to 8/, bad);
  }
  const before = runKernel(tigerlake(), { boot: { cmdline: 'caps=off vcpus=2 guest=/g.elf', files } });
  assert.is(before.status, 7);
  assert.match(before.console, /vcpus= must follow a guest= option/);
  // Accepted (the guest then fails to load: not a kernel).
  for (const n of [1, 2, 8]) {
    const r = runKernel(tigerlake(), { boot: { cmdline: `caps=off guest=/g.elf vcpus=${n}`, files } });
    assert.not.equal(r.status, 7, `vcpus=${n}`);
    assert.not.match(r.console, /vcpus= needs|refused/, `vcpus=${n}`);
    assert.match(r.console, /vmxon ok/);
  }
  // Several vCPUs and a snapshot of one, or a migration of one: refused
  // before the guest is set up, with the reason.
  for (const extra of ['snapshot=5', 'ramsnap=on', 'migrate=7']) {
    const r = runKernel(tigerlake(), { boot: { cmdline: `caps=off ${extra === 'migrate=7' ? extra + ' ' : ''}guest=/g.elf vcpus=2 ${extra === 'migrate=7' ? '' : extra}`, files } });
    assert.match(r.console, /guest: vcpus= above 1 cannot be combined with snapshot=, ramsnap= or migrate= yet .*: refused/, extra);
    assert.match(r.console, /hv: guests: 1 run, some NOT as expected/, extra);
    assert.not.equal(r.status, 0, extra);
  }
});

test.run();
