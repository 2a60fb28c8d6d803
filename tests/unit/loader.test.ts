// The multiboot guest loader (kernel/guest/) through kernel.wasm's test hooks
// (kernel/hooks/loader.ts), on the model. Kernels are synthesized here: ELF32 /
// ELF64 executables and raw a.out-kludge images carrying Multiboot 1 or 2
// headers; guest RAM is host pages from the kernel's own allocator, read back
// through m.phys.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, buildBootInfo, type BootFile } from '../model/index.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 4096;
const MB1_MAGIC = 0x1badb002;
const MB2_MAGIC = 0xe85250d6;
const MB1_EAX = 0x2badb002;
const MB2_EAX = 0x36d76289;
const INFO = 0x9000;

// ---- little-endian byte building ---------------------------------------------

class Bytes {
  b: Uint8Array;
  v: DataView;
  constructor(n: number) {
    this.b = new Uint8Array(n);
    this.v = new DataView(this.b.buffer);
  }
  u8(o: number, x: number) { this.v.setUint8(o, x); return this; }
  u16(o: number, x: number) { this.v.setUint16(o, x, true); return this; }
  u32(o: number, x: number) { this.v.setUint32(o, x >>> 0, true); return this; }
  u64(o: number, x: number | bigint) { this.v.setBigUint64(o, BigInt.asUintN(64, BigInt(x)), true); return this; }
  set(o: number, d: Uint8Array) { this.b.set(d, o); return this; }
}

const ascii = (s: string) => new TextEncoder().encode(s);
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff || 1);

// Multiboot 1 header: magic, flags, checksum, then `extra` u32 fields.
function mb1Header(flags: number, extra: number[] = [], checksumDelta = 0): Uint8Array {
  const h = new Bytes(12 + extra.length * 4);
  h.u32(0, MB1_MAGIC).u32(4, flags).u32(8, (-(MB1_MAGIC + flags) + checksumDelta) >>> 0);
  extra.forEach((x, i) => h.u32(12 + i * 4, x));
  return h.b;
}

interface Tag { type: number; flags?: number; body?: number[] } // body: u32 words
// Multiboot2 header with the given tags and the end tag.
function mb2Header(tags: Tag[] = [], checksumDelta = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const t of [...tags, { type: 0, body: [] }]) {
    const size = 8 + (t.body ?? []).length * 4;
    const b = new Bytes((size + 7) & ~7);
    b.u16(0, t.type).u16(2, t.flags ?? 0).u32(4, size);
    (t.body ?? []).forEach((x, i) => b.u32(8 + i * 4, x));
    parts.push(b.b);
  }
  const len = 16 + parts.reduce((s, p) => s + p.length, 0);
  const h = new Bytes(len);
  h.u32(0, MB2_MAGIC).u32(4, 0).u32(8, len).u32(12, (-(MB2_MAGIC + len) + checksumDelta) >>> 0);
  let o = 16;
  for (const p of parts) { h.set(o, p); o += p.length; }
  return h.b;
}

interface Seg { paddr: number | bigint; vaddr?: number | bigint; data?: Uint8Array; memsz?: number | bigint; type?: number; offset?: number | bigint; filesz?: number | bigint }
interface ElfSpec {
  cls: 32 | 64;
  entry: number | bigint;
  segs: Seg[];
  headers?: { at: number; bytes: Uint8Array }[]; // multiboot headers at file offsets
  machine?: number;
  type?: number;
  phoff?: number | bigint; // override
  phnum?: number;
  phentsize?: number;
  truncate?: number; // cut the file to this length
}

// An ELF executable: header, program headers, multiboot header(s) at their
// offsets, segment data from 0x1000 on, each segment's data page-aligned.
function elf(s: ElfSpec): Uint8Array {
  const is64 = s.cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phent = is64 ? 56 : 32;
  let off = 0x1000;
  const offs = s.segs.map((g) => {
    const o = off;
    off = Math.ceil((off + (g.data?.length ?? 0)) / PAGE) * PAGE;
    return o;
  });
  const f = new Bytes(off);
  f.set(0, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1));
  f.u16(16, s.type ?? 2).u16(18, s.machine ?? (is64 ? 62 : 3)).u32(20, 1);
  const phoff = s.phoff ?? ehsize;
  if (is64) {
    f.u64(24, s.entry).u64(32, phoff).u16(52, ehsize).u16(54, s.phentsize ?? phent).u16(56, s.phnum ?? s.segs.length);
  } else {
    f.u32(24, Number(s.entry)).u32(28, Number(phoff)).u16(40, ehsize).u16(42, s.phentsize ?? phent).u16(44, s.phnum ?? s.segs.length);
  }
  s.segs.forEach((g, i) => {
    const p = ehsize + i * phent;
    const fo = g.offset ?? offs[i];
    const fs = g.filesz ?? g.data?.length ?? 0;
    const ms = g.memsz ?? fs;
    const va = g.vaddr ?? g.paddr;
    if (is64) {
      f.u32(p, g.type ?? 1).u32(p + 4, 5).u64(p + 8, fo).u64(p + 16, va).u64(p + 24, g.paddr).u64(p + 32, fs).u64(p + 40, ms).u64(p + 48, PAGE);
    } else {
      f.u32(p, g.type ?? 1).u32(p + 4, Number(fo)).u32(p + 8, Number(va)).u32(p + 12, Number(g.paddr)).u32(p + 16, Number(fs)).u32(p + 20, Number(ms)).u32(p + 24, 5).u32(p + 28, PAGE);
    }
    if (g.data) f.set(offs[i], g.data);
  });
  for (const h of s.headers ?? []) f.set(h.at, h.bytes);
  return s.truncate !== undefined ? f.b.slice(0, s.truncate) : f.b;
}

// The usual test kernel: text at 1 MiB, data + bss after it.
const TEXT = pattern(0x1234, 3);
const DATA = pattern(0x300, 11);
function kernel(cls: 32 | 64, headers: { at: number; bytes: Uint8Array }[], more: Partial<ElfSpec> = {}): Uint8Array {
  return elf({
    cls,
    entry: 0x100010,
    segs: [
      { paddr: 0x100000, data: TEXT },
      { paddr: 0x102000, data: DATA, memsz: 0x5000 },
    ],
    headers,
    ...more,
  });
}

// ---- running the loader -----------------------------------------------------------

interface LoadResult { ok: boolean; out: string; faults: string[]; ended: boolean }

function setup(files: BootFile[], ramSize = 8 * MiB) {
  const m = tigerlake();
  const layout = buildBootInfo(m, { files });
  const k = loadKernel(m);
  assert.is(k.call<number>('boot_parse', layout.bootinfo).value, 1, 'boot info parses');
  k.call('pages_init');
  const ram = Number(k.call<bigint>('pages_alloc', ramSize / PAGE, 0n).value);
  assert.ok(ram > 0, 'guest RAM allocated');
  k.call('loader_setupRam', BigInt(ram), BigInt(ramSize));
  // Fill guest RAM with a pattern, so that zeroing is visible.
  m.phys.fill(ram, ramSize, 0xaa);
  // Every write through mem.* from now on must land in guest RAM.
  m.phys.watchers.push((b, len) =>
    b >= ram && b + len <= ram + ramSize ? null : `write [0x${b.toString(16)}, +0x${len.toString(16)}) outside guest RAM`);
  const g = {
    read: (gpa: number, n: number) => m.phys.read(ram + gpa, n),
    u8: (gpa: number) => m.phys.read(ram + gpa, 1)[0],
    u16: (gpa: number) => Number(m.phys.readInt(ram + gpa, 2)),
    u32: (gpa: number) => m.phys.read32(ram + gpa),
    u64: (gpa: number) => m.phys.read64(ram + gpa),
    str: (gpa: number) => {
      let s = '';
      for (let a = gpa; ; a++) {
        const c = m.phys.read(ram + a, 1)[0];
        if (c === 0) return s;
        s += String.fromCharCode(c);
      }
    },
  };
  const load = (file: number, cmdline = '', modules: number[] = []): LoadResult => {
    const mem = new Uint8Array((k.exports.memory as WebAssembly.Memory).buffer);
    const cb = k.call<number>('loader_cmdlineBuf').value!;
    mem.set(ascii(cmdline), cb);
    const mbuf = k.call<number>('loader_modulesBuf').value!;
    const dv = new DataView(mem.buffer);
    modules.forEach((x, i) => dv.setUint32(mbuf + i * 4, x, true));
    const before = m.console.length;
    const r = k.call<number>('loader_load', file, cmdline.length, modules.length);
    return { ok: r.value === 1, out: m.console.slice(before), faults: [...r.faults], ended: r.ended };
  };
  const entry = () => ({
    eip: k.call<number>('loader_entryEip').value! >>> 0,
    eax: k.call<number>('loader_entryEax').value! >>> 0,
    ebx: k.call<number>('loader_entryEbx').value! >>> 0,
    kernelEnd: Number(k.call<bigint>('loader_kernelEnd').value),
    modulesEnd: Number(k.call<bigint>('loader_modulesEnd').value),
  });
  return { m, k, g, ram, ramSize, load, entry, layout };
}

function loadOk(files: BootFile[], cmdline = '', modules: number[] = [], ramSize = 8 * MiB) {
  const s = setup(files, ramSize);
  const r = s.load(0, cmdline, modules);
  assert.equal(r.faults, [], 'no machine fault');
  assert.not.ok(r.ended, 'no trap');
  assert.is(r.out, '', 'nothing printed on success');
  assert.ok(r.ok, 'loaded');
  return { ...s, e: s.entry() };
}

// Expect a failure with one specific line, no fault, no trap.
function loadFails(data: Uint8Array, expect: RegExp, ramSize = 8 * MiB, name = 'bad.elf') {
  const s = setup([{ name, data }], ramSize);
  const r = s.load(0);
  assert.equal(r.faults, [], 'no machine fault');
  assert.not.ok(r.ended, 'no trap');
  assert.not.ok(r.ok, 'refused');
  const lines = r.out.split('\n').filter((l) => l !== '');
  assert.is(lines.length, 1, `exactly one line: ${JSON.stringify(r.out)}`);
  assert.ok(lines[0].startsWith(`hv: guest: ${name}: `), lines[0]);
  assert.match(lines[0], expect);
  assert.is(s.entry().eax, 0, 'no entry state on failure');
}

function checkImage(s: ReturnType<typeof setup>) {
  assert.equal(s.g.read(0x100000, TEXT.length), TEXT, 'text copied');
  assert.equal(s.g.read(0x102000, DATA.length), DATA, 'data copied');
  assert.ok(s.g.read(0x102000 + DATA.length, 0x5000 - DATA.length).every((b) => b === 0), 'bss zeroed');
  assert.is(s.g.u8(0x107000), 0xaa, 'nothing written past the bss');
  assert.is(s.g.u8(0x100000 + TEXT.length), 0xaa, 'nothing written between segments');
}

const MMAP = (ram: number) => [
  [0n, 0x9fc00n, 1],
  [0x9fc00n, 0x60400n, 2],
  [0x100000n, BigInt(ram - MiB), 1],
];

// Multiboot 1 information structure → plain object.
function mb1Info(g: ReturnType<typeof setup>['g'], at: number) {
  const flags = g.u32(at);
  const mmap: [bigint, bigint, number][] = [];
  const mmapLen = g.u32(at + 44);
  const mmapAddr = g.u32(at + 48);
  for (let p = mmapAddr; p < mmapAddr + mmapLen; p += g.u32(p) + 4) mmap.push([g.u64(p + 4), g.u64(p + 12), g.u32(p + 20)]);
  const mods = [];
  for (let i = 0; i < g.u32(at + 20); i++) {
    const p = g.u32(at + 24) + 16 * i;
    mods.push({ start: g.u32(p), end: g.u32(p + 4), string: g.str(g.u32(p + 8)), reserved: g.u32(p + 12) });
  }
  return {
    flags, memLower: g.u32(at + 4), memUpper: g.u32(at + 8), cmdline: g.str(g.u32(at + 16)), mods, mmap,
    mmapEntrySizes: Array.from({ length: mmapLen / 24 }, (_, i) => g.u32(mmapAddr + 24 * i)),
    loader: g.str(g.u32(at + 64)), modsAddr: g.u32(at + 24), mmapAddr,
  };
}

// Multiboot2 information structure → list of tags.
function mb2Tags(g: ReturnType<typeof setup>['g'], at: number) {
  const total = g.u32(at);
  assert.is(g.u32(at + 4), 0, 'reserved');
  const tags: { type: number; size: number; at: number }[] = [];
  let p = at + 8;
  for (;;) {
    assert.is(p % 8, 0, 'tag 8-aligned');
    const type = g.u32(p);
    const size = g.u32(p + 4);
    tags.push({ type, size, at: p });
    if (type === 0) { assert.is(size, 8); p += 8; break; }
    p += (size + 7) & ~7;
    assert.ok(p - at <= total, 'tags inside total_size');
  }
  assert.is(p - at, total, 'total_size ends with the end tag');
  return tags;
}

// ---- successful loads -----------------------------------------------------------

test('Multiboot 1, ELF32: segments, bss, entry state, the exact information structure', () => {
  const data = kernel(32, [{ at: 0x100, bytes: mb1Header(0x3) }]);
  const s = loadOk([{ name: '/boot/k32.elf', args: 'a=1 b', data }], 'x=y');
  checkImage(s);
  assert.equal(s.e, { eip: 0x100010, eax: MB1_EAX, ebx: INFO, kernelEnd: 0x107000, modulesEnd: 0 });
  const i = mb1Info(s.g, s.e.ebx);
  assert.is(i.flags, 0x1 | 0x4 | 0x8 | 0x40 | 0x200);
  assert.is(i.memLower, 639);
  assert.is(i.memUpper, (8 * MiB - MiB) / KiB);
  assert.is(i.cmdline, '/boot/k32.elf a=1 b x=y');
  assert.equal(i.mods, []);
  assert.is(i.modsAddr, 0);
  assert.equal(i.mmap, MMAP(8 * MiB));
  assert.equal(i.mmapEntrySizes, [20, 20, 20]);
  assert.is(i.mmapAddr, 0x9078, 'documented layout: map right after the 116-byte structure, 8-aligned');
  assert.is(i.loader, 'hv');
  for (const off of [12, 28, 32, 36, 40, 52, 56, 60, 68, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112]) {
    assert.is(s.g.u32(INFO + off), 0, `unused field at +${off} is zero`);
  }
});

test('Multiboot 1, ELF64: physical addresses, virtual e_entry translated', () => {
  const data = elf({
    cls: 64,
    entry: 0xffffffff80100020n, // virtual, inside the first segment
    segs: [
      { paddr: 0x100000, vaddr: 0xffffffff80100000n, data: TEXT },
      { paddr: 0x102000, vaddr: 0xffffffff80102000n, data: DATA, memsz: 0x5000 },
      { paddr: 0, type: 4, data: new Uint8Array(8) }, // PT_NOTE: ignored
    ],
    headers: [{ at: 0x200, bytes: mb1Header(0x2) }],
  });
  const s = loadOk([{ name: 'k64.elf', data }]);
  checkImage(s);
  assert.is(s.e.eip, 0x100020);
  assert.is(s.e.eax, MB1_EAX);
  assert.is(mb1Info(s.g, s.e.ebx).cmdline, 'k64.elf');
});

function checkMb2(s: ReturnType<typeof setup>, cmdline: string, mods: { start: number; end: number; string: string }[] = []) {
  const tags = mb2Tags(s.g, s.e.ebx);
  const types = tags.map((t) => t.type);
  assert.equal(types, [1, 2, ...mods.map(() => 3), 4, 6, 0]);
  const t = (type: number) => tags.find((x) => x.type === type)!;
  assert.is(s.g.str(t(1).at + 8), cmdline);
  assert.is(t(1).size, 8 + cmdline.length + 1);
  assert.is(s.g.str(t(2).at + 8), 'hv');
  assert.is(t(2).size, 11);
  tags.filter((x) => x.type === 3).forEach((x, i) => {
    assert.equal({ start: s.g.u32(x.at + 8), end: s.g.u32(x.at + 12), string: s.g.str(x.at + 16) }, mods[i]);
    assert.is(x.size, 16 + mods[i].string.length + 1);
  });
  assert.is(t(4).size, 16);
  assert.is(s.g.u32(t(4).at + 8), 639);
  assert.is(s.g.u32(t(4).at + 12), (s.ramSize - MiB) / KiB);
  const mm = t(6);
  assert.is(s.g.u32(mm.at + 8), 24, 'entry_size');
  assert.is(s.g.u32(mm.at + 12), 0, 'entry_version');
  assert.is(mm.size, 16 + 3 * 24);
  const entries = [0, 1, 2].map((j) => {
    const e = mm.at + 16 + 24 * j;
    assert.is(s.g.u32(e + 20), 0, 'reserved');
    return [s.g.u64(e), s.g.u64(e + 8), s.g.u32(e + 16)];
  });
  assert.equal(entries, MMAP(s.ramSize));
}

test('Multiboot2, ELF32: tags, command line without the file name', () => {
  const hdr = mb2Header([{ type: 1, body: [1, 2, 3, 4, 6] }, { type: 6, flags: 1 }]);
  const data = kernel(32, [{ at: 0x108, bytes: hdr }]);
  const s = loadOk([{ name: '/boot/k2.elf', args: 'console=com1 quiet', data }], 'extra=1');
  checkImage(s);
  assert.equal(s.e, { eip: 0x100010, eax: MB2_EAX, ebx: INFO, kernelEnd: 0x107000, modulesEnd: 0 });
  checkMb2(s, 'console=com1 quiet extra=1');
});

test('Multiboot2, ELF64, no args: empty command line; entry address tag overrides e_entry', () => {
  const hdr = mb2Header([{ type: 3, body: [0x100100, 0] }]);
  const data = kernel(64, [{ at: 0x400, bytes: hdr }]);
  const s = loadOk([{ name: 'k.elf', data }]);
  checkImage(s);
  assert.is(s.e.eip, 0x100100);
  assert.is(s.e.eax, MB2_EAX);
  checkMb2(s, '');
});

test('both headers: Multiboot2 preferred', () => {
  const data = kernel(32, [{ at: 0x100, bytes: mb1Header(0) }, { at: 0x200, bytes: mb2Header() }]);
  const s = loadOk([{ name: 'both', args: 'p', data }]);
  assert.is(s.e.eax, MB2_EAX);
  checkMb2(s, 'p');
});

test('Multiboot 1 a.out kludge: raw image, load_end_addr, bss_end_addr, entry_addr', () => {
  // File: 0x40 bytes of junk, the header at 0x40 (header_addr 0x200040), code after it.
  const code = pattern(0x2000, 5);
  const f = new Bytes(0x40 + 32 + code.length + 0x100); // 0x100 bytes past load_end are not loaded
  f.set(0, pattern(0x40, 9));
  f.set(0x40, mb1Header(0x10003, [0x200040, 0x200000, 0x200000 + 0x60 + code.length, 0x200000 + 0x8000, 0x200060]));
  f.set(0x60, code);
  f.set(0x60 + code.length, new Uint8Array(0x100).fill(0x55));
  const s = loadOk([{ name: 'aout', data: f.b }]);
  assert.equal(s.g.read(0x200000, 0x60 + code.length), f.b.slice(0, 0x60 + code.length), 'file from offset 0 at load_addr');
  assert.ok(s.g.read(0x200060 + code.length, 0x8000 - 0x60 - code.length).every((b) => b === 0), 'bss zeroed');
  assert.is(s.g.u8(0x208000), 0xaa, 'nothing past bss_end_addr');
  assert.equal(s.e, { eip: 0x200060, eax: MB1_EAX, ebx: INFO, kernelEnd: 0x208000, modulesEnd: 0 });
});

test('Multiboot 1 a.out kludge with load_end_addr 0: the rest of the file', () => {
  const f = new Bytes(0x3000);
  f.set(0, pattern(0x3000, 1));
  f.set(0x1000, mb1Header(0x10000, [0x101000, 0x100800, 0, 0, 0x100900]));
  const s = loadOk([{ name: 'aout0', data: f.b }]);
  assert.equal(s.g.read(0x100800, 0x2800), f.b.slice(0x800), 'file from offset 0x800 to the end');
  assert.is(s.e.kernelEnd, 0x103000);
  assert.is(s.e.eip, 0x100900);
});

test('Multiboot2 address tag with load_addr -1 and an entry tag', () => {
  const hdr = mb2Header([{ type: 2, body: [0x300100, 0xffffffff, 0, 0x304000] }, { type: 3, body: [0x300200, 0] }]);
  const f = new Bytes(0x1000);
  f.set(0, pattern(0x1000, 2));
  f.set(0x100, hdr);
  const s = loadOk([{ name: 'raw2', data: f.b }]);
  assert.equal(s.g.read(0x300000, 0x1000), f.b);
  assert.ok(s.g.read(0x301000, 0x3000).every((b) => b === 0), 'bss');
  assert.equal(s.e, { eip: 0x300200, eax: MB2_EAX, ebx: INFO, kernelEnd: 0x304000, modulesEnd: 0 });
});

test('modules: page-aligned above the kernel, copied whole, listed with their strings (MB1 and MB2)', () => {
  const m1 = pattern(5000, 4);
  const m2 = pattern(10, 8);
  for (const version of [1, 2]) {
    const hdr = version === 1 ? mb1Header(1) : mb2Header([{ type: 6 }]);
    const k = elf({ cls: 32, entry: 0x180000, segs: [{ paddr: 0x180000, data: TEXT, memsz: 0x1800 }], headers: [{ at: 0x100, bytes: hdr }] });
    const files = [
      { name: 'kern', args: 'k=v', data: k },
      { name: 'initrd.img', args: 'root=1 ro', data: m1 },
      { name: 'second', data: m2 },
    ];
    const s = loadOk(files, '', [1, 2]);
    const a = 0x182000; // kernelEnd 0x181800, rounded up
    const b = a + 2 * PAGE; // 5000 bytes take two pages
    assert.equal(s.g.read(a, m1.length), m1);
    assert.equal(s.g.read(b, m2.length), m2);
    assert.is(s.g.u8(a + m1.length), 0xaa, 'the module is copied, not padded');
    assert.is(s.e.kernelEnd, 0x181800);
    assert.is(s.e.modulesEnd, b + m2.length);
    const mods = [
      { start: a, end: a + m1.length, string: 'initrd.img root=1 ro' },
      { start: b, end: b + m2.length, string: 'second' },
    ];
    if (version === 1) {
      const i = mb1Info(s.g, s.e.ebx);
      assert.equal(i.mods, mods.map((x) => ({ ...x, reserved: 0 })));
      assert.is(i.modsAddr % 16, 0);
      assert.is(i.cmdline, 'kern k=v');
    } else {
      checkMb2(s, 'k=v', mods);
    }
  }
});

test('modules of a kernel loaded below 1 MiB start at 1 MiB', () => {
  const k = elf({ cls: 32, entry: 0x20000, segs: [{ paddr: 0x20000, data: TEXT }], headers: [{ at: 0x100, bytes: mb1Header(0) }] });
  const s = loadOk([{ name: 'low', data: k }, { name: 'm', data: pattern(100, 1) }], '', [1]);
  assert.is(mb1Info(s.g, s.e.ebx).mods[0].start, 0x100000);
});

test('optional information request and optional unsupported tags are ignored', () => {
  const hdr = mb2Header([{ type: 1, flags: 1, body: [8, 9, 17] }, { type: 5, flags: 1, body: [1024, 768, 32] }, { type: 7, flags: 1 }, { type: 42, flags: 1 }]);
  const s = loadOk([{ name: 'opt', data: kernel(32, [{ at: 0x100, bytes: hdr }]) }]);
  assert.is(s.e.eax, MB2_EAX);
});

// ---- malformed kernels: one line, false, no fault ----------------------------------

const hdr1 = [{ at: 0x100, bytes: mb1Header(0) }];

test('not a multiboot kernel', () =>
  loadFails(elf({ cls: 32, entry: 0x100000, segs: [{ paddr: 0x100000, data: TEXT }] }), /not a multiboot kernel \(no Multiboot2 header in the first 32 KiB, no Multiboot header in the first 8 KiB\)$/));

test('empty file', () => loadFails(new Uint8Array(0), /not a multiboot kernel/));

test('Multiboot 1 header beyond the first 8 KiB', () => {
  const data = kernel(32, [{ at: 0x2000, bytes: mb1Header(0) }], { segs: [{ paddr: 0x100000, data: pattern(0x3000, 1) }] });
  loadFails(data, /Multiboot header at offset 0x2000 is beyond the first 8 KiB$/);
});

test('Multiboot2 header beyond the first 32 KiB', () => {
  const data = elf({ cls: 64, entry: 0x100000, segs: [{ paddr: 0x100000, data: pattern(0x9000, 1) }], headers: [{ at: 0x8008, bytes: mb2Header() }] });
  loadFails(data, /Multiboot2 header at offset 0x8008 is beyond the first 32 KiB$/);
});

test('bad checksums', () => {
  loadFails(kernel(32, [{ at: 0x104, bytes: mb1Header(0, [], 1) }]), /Multiboot header at offset 0x104 has a bad checksum 0x[0-9a-f]+ \(magic \+ flags \+ checksum must be 0\)$/);
  loadFails(kernel(32, [{ at: 0x108, bytes: mb2Header([], 1) }]), /Multiboot2 header at offset 0x108 has a bad checksum/);
});

test('truncated file: segment data past the end', () => {
  const data = kernel(32, hdr1, { truncate: 0x3000 + 0x100 });
  loadFails(data, /segment 1: file data at offset 0x3000 size 0x300 extends past the end of the file \(12544 bytes\)$/);
});

test('truncated file: ELF header cut off', () => {
  const f = new Bytes(0x200);
  f.set(0, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1));
  f.set(0x30, mb1Header(0));
  loadFails(f.b.slice(0, 0x3c), /ELF file truncated: 60 bytes, the ELF header needs 64$/);
});

test('program header table past the end of the file', () => {
  const data = kernel(32, hdr1);
  loadFails(kernel(32, hdr1, { phoff: data.length - 10 }), /ELF program header table \[0x[0-9a-f]+, 0x[0-9a-f]+\) extends past the end of the file \(\d+ bytes\)$/);
  loadFails(kernel(64, hdr1, { phoff: 0x7fffffffffffffffn }), /ELF program header table at e_phoff 0x7fffffffffffffff extends past the end of the file/);
});

test('segment outside guest RAM', () => {
  const data = elf({ cls: 32, entry: 0x7f0000, segs: [{ paddr: 0x7f0000, data: TEXT, memsz: 0x20000 }], headers: hdr1 });
  loadFails(data, /segment 0 \[0x7f0000, 0x810000\) is outside guest RAM \[0x0, 0x800000\)$/);
});

test('huge p_memsz: overflow and wrap', () => {
  loadFails(elf({ cls: 64, entry: 0x100000, segs: [{ paddr: 0x100000, data: TEXT, memsz: 0xfffffffffffff000n }], headers: hdr1 }),
    /segment 0: p_paddr 0x100000 \+ p_memsz 0xfffffffffffff000 overflows 64 bits$/);
  loadFails(elf({ cls: 32, entry: 0x100000, segs: [{ paddr: 0x100000, data: TEXT, memsz: 0xffffffff }], headers: hdr1 }),
    /segment 0: p_paddr 0x100000 \+ p_memsz 0xffffffff wraps past 4 GiB$/);
});

test('p_filesz larger than p_memsz', () =>
  loadFails(elf({ cls: 32, entry: 0x100000, segs: [{ paddr: 0x100000, data: TEXT, memsz: 0x10 }], headers: hdr1 }), /segment 0: p_filesz 0x1234 is larger than p_memsz 0x10$/));

test('entry point outside every segment', () => {
  loadFails(kernel(32, hdr1, { entry: 0x500000 }), /ELF entry point \(e_entry\) is not inside a loaded segment: 0x500000$/);
  loadFails(kernel(32, [{ at: 0x100, bytes: mb2Header([{ type: 3, body: [0x1000, 0] }]) }]), /entry address tag 0x1000 is not inside the loaded image$/);
});

test('ELF64 segment above 4 GiB, outside guest RAM', () => {
  const data = elf({ cls: 64, entry: 0x100000000n, segs: [{ paddr: 0x100000000n, data: TEXT }], headers: hdr1 });
  loadFails(data, /segment 0 \[0x100000000, 0x100001234\) is outside guest RAM \[0x0, 0x800000\)$/);
});

test('segments overlapping page 0, the boot information area, each other', () => {
  loadFails(elf({ cls: 32, entry: 0x800, segs: [{ paddr: 0x800, data: TEXT }], headers: hdr1 }), /segment 0 \[0x800, 0x1a34\) overlaps page 0, which hv keeps free: \[0x0, 0x1000\)$/);
  loadFails(elf({ cls: 32, entry: 0x8000, segs: [{ paddr: 0x8000, data: TEXT }], headers: hdr1 }), /segment 0 \[0x8000, 0x9234\) overlaps the boot information area \[0x9000, 0x10000\)$/);
  loadFails(elf({ cls: 32, entry: 0x100000, segs: [{ paddr: 0x100000, data: TEXT }, { paddr: 0x101000, data: DATA }], headers: hdr1 }), /segment 0 \[0x100000, 0x101234\) and segment 1 \[0x101000, 0x101300\) overlap$/);
});

test('Multiboot2: a required information request hv does not provide', () => {
  const hdr = mb2Header([{ type: 1, body: [1, 8] }]);
  loadFails(kernel(32, [{ at: 0x100, bytes: hdr }]), /requires Multiboot2 information tag 8 \(framebuffer info\), which hv does not provide$/);
});

test('Multiboot2: required framebuffer, EFI boot services, unknown tag; bad architecture; no end tag', () => {
  loadFails(kernel(32, [{ at: 0x100, bytes: mb2Header([{ type: 5, body: [0, 0, 0] }]) }]), /Multiboot2 header tag type 5 at offset 0x110: requires a framebuffer, which hv does not set up$/);
  loadFails(kernel(32, [{ at: 0x100, bytes: mb2Header([{ type: 7 }]) }]), /tag type 7 .* requires EFI boot services/);
  loadFails(kernel(32, [{ at: 0x100, bytes: mb2Header([{ type: 42 }]) }]), /tag type 42 .* unknown tag that is not optional$/);
  const arch = mb2Header();
  new DataView(arch.buffer).setUint32(4, 4, true);
  new DataView(arch.buffer).setUint32(12, (-(MB2_MAGIC + 4 + arch.length)) >>> 0, true);
  loadFails(kernel(32, [{ at: 0x100, bytes: arch }]), /Multiboot2 header architecture 0x4 is not i386 \(0\)$/);
  const noEnd = new Bytes(24);
  noEnd.u32(0, MB2_MAGIC).u32(8, 24).u32(12, (-(MB2_MAGIC + 24)) >>> 0).u16(16, 6).u16(18, 1).u32(20, 8);
  loadFails(kernel(32, [{ at: 0x100, bytes: noEnd.b }]), /Multiboot2 header has no end tag within header_length$/);
});

test('Multiboot 1: video mode required; unknown required flag', () => {
  loadFails(kernel(32, [{ at: 0x100, bytes: mb1Header(0x4, [0, 0, 0, 0, 0, 0, 80, 25, 0]) }]), /requires a video mode \(Multiboot flags bit 2\), which hv does not set up$/);
  loadFails(kernel(32, [{ at: 0x100, bytes: mb1Header(0x8) }]), /requires unknown Multiboot features \(flags bits 0x8\)$/);
});

test('ELF: wrong machine, not executable, big-endian, no segments, no program headers', () => {
  loadFails(kernel(32, hdr1, { machine: 62 }), /ELF32 file is not for i386 \(e_machine is not EM_386\): 0x3e$/);
  loadFails(kernel(64, hdr1, { type: 3 }), /not an executable ELF file \(e_type is not ET_EXEC\): 0x3$/);
  const be = kernel(32, hdr1);
  be[5] = 2;
  loadFails(be, /ELF data encoding \(EI_DATA\) is not little-endian: 0x2$/);
  loadFails(elf({ cls: 32, entry: 0, segs: [{ paddr: 0, type: 4, data: TEXT }], headers: hdr1 }), /ELF file has no loadable \(PT_LOAD\) segment$/);
  loadFails(kernel(32, hdr1, { phnum: 0 }), /ELF file has no program headers \(e_phnum is 0\)$/);
  loadFails(kernel(32, hdr1, { phentsize: 16 }), /e_phentsize is too small: 0x10$/);
});

test('not ELF and no address fields', () => {
  const f = new Bytes(0x1000);
  f.set(0x40, mb1Header(0));
  loadFails(f.b, /not an ELF file, and the Multiboot header has no a.out kludge \(flags bit 16\)$/);
  const g = new Bytes(0x1000);
  g.set(0x40, mb2Header());
  loadFails(g.b, /not an ELF file, and the Multiboot2 header has no address tag$/);
});

test('a.out kludge: inconsistent addresses', () => {
  const mk = (fields: number[]) => {
    const f = new Bytes(0x1000);
    f.set(0x40, mb1Header(0x10000, fields));
    return f.b;
  };
  loadFails(mk([0x100040, 0x100080, 0, 0, 0x100080]), /a.out kludge: load_addr 0x100080 is above header_addr$/);
  loadFails(mk([0x100040, 0x0ff000, 0, 0, 0x100080]), /loading would start before the file$/);
  loadFails(mk([0x100040, 0x100000, 0x102000, 0, 0x100080]), /load_end_addr 0x102000 needs file bytes up to offset 0x2000, past the end of the file \(4096 bytes\)$/);
  loadFails(mk([0x100040, 0x100000, 0x100800, 0x100400, 0x100080]), /bss_end_addr 0x100400 is below the end of the loaded data$/);
  loadFails(mk([0x100040, 0x100000, 0, 0, 0x200000]), /entry_addr 0x200000 is not inside the loaded image$/);
  const g = new Bytes(0x1000);
  g.set(0x40, mb2Header([{ type: 2, body: [0x100040, 0x100000, 0, 0] }]));
  loadFails(g.b, /Multiboot2 address tag without an entry address tag: no entry point$/);
});

test('a module that does not fit in guest RAM', () => {
  const k = kernel(32, hdr1);
  const s = setup([{ name: 'k', data: k }, { name: 'big.img', args: 'x', data: new Uint8Array(7 * MiB) }]);
  const r = s.load(0, '', [1]);
  assert.equal(r.faults, []);
  assert.not.ok(r.ok);
  assert.match(r.out, /^hv: guest: k: module big.img \(7340032 bytes\) does not fit \[0x107000, 0x807000\) in guest RAM \[0x0, 0x800000\)\n$/);
});

test('bad arguments: no such boot file, module index, RAM below 1 MiB, command line too long', () => {
  const k = kernel(32, hdr1);
  let s = setup([{ name: 'k', data: k }]);
  let r = s.load(3);
  assert.match(r.out, /^hv: guest: boot file 3: no such file \(there are 1\)\n$/);
  r = s.load(0, '', [5]);
  assert.match(r.out, /^hv: guest: k: module list names boot file 0x5, which does not exist\n$/);
  r = s.load(0, 'x'.repeat(4094));
  assert.match(r.out, /^hv: guest: k: command line too long: 0x1000 bytes \(at most 4095\)\n$/);
  assert.ok(s.load(0, 'x'.repeat(4093)).ok, '"k" + space + 4093 = 4095 bytes fits');
  s = setup([{ name: 'k', data: k }], 512 * KiB);
  r = s.load(0);
  assert.match(r.out, /^hv: guest: k: guest RAM is 0x80000 bytes; at least 1 MiB is needed\n$/);
  assert.equal(r.faults, []);
});

test('a failed load leaves no entry state; a later good load works', () => {
  const s = setup([{ name: 'bad', data: new Uint8Array(100) }, { name: 'good', data: kernel(32, hdr1) }]);
  assert.not.ok(s.load(0).ok);
  assert.equal(s.entry().eax, 0);
  assert.ok(s.load(1).ok);
  assert.is(s.entry().eax, MB1_EAX);
});

test.run();
