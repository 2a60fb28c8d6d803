// The Linux boot protocol (kernel/guest/bzimage.ts, Linux's
// Documentation/x86/boot.rst) and the guest's ACPI tables (kernel/vm/acpi.ts,
// ACPI 6.4 chapter 5), on the model: synthetic bzImages built here, loaded
// through the loader's test hooks (zero page, e820 map, command line,
// initrd, tables, refusals) and through a whole kernel run (the entry state
// in vmcs01, args= escaping, initrd=).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, buildBootInfo, runKernel, type BootFile, type Machine } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';
import { produceExit, guestHpa, tinyKernel } from './guest-script.ts';

const MiB = 1024 * 1024;
const PAGE = 4096;
const ZP = 0x9000;
const CMDLINE = 0xa000;
const GDT = 0x9fc00;
const RSDP = 0xe0000;
const ascii = (s: string) => new TextEncoder().encode(s);
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff || 1);

interface BzSpec {
  setupSects?: number; // the field; 0 means 4
  version?: number;
  bootFlag?: number;
  jump?: number; // byte at 0x201: the header ends at 0x202 + jump
  loadflags?: number;
  relocatable?: number;
  align?: number;
  pref?: number;
  initSize?: number;
  initrdMax?: number;
  cmdlineSize?: number;
  pm?: Uint8Array; // the protected-mode kernel
}

// A bzImage: boot sector with the setup header, setup sectors (a pattern,
// so that a copy past the header shows), then the protected-mode kernel.
// Its "kernel" is 32-bit code that would read boot_params.hdr.version
// through ESI and write 0 to isa-debug-exit (the model does not execute it;
// the whole-run test plays that exit).
const PM = Uint8Array.of(
  0x0f, 0xb7, 0x86, 0x06, 0x02, 0x00, 0x00, // movzx eax, word [esi+0x206]
  0x31, 0xc0, // xor eax, eax
  0xe6, 0xf4, // out 0xf4, al
  0xf4, // hlt
  ...pattern(0x3000, 5));
function bzImage(s: BzSpec = {}): Uint8Array {
  const ss = s.setupSects ?? 3;
  const pmOff = ((ss === 0 ? 4 : ss) + 1) * 512;
  const pm = s.pm ?? PM;
  const f = new Uint8Array(pmOff + pm.length);
  f.set(pattern(pmOff, 9), 0);
  const v = new DataView(f.buffer);
  v.setUint8(0x1f1, ss);
  v.setUint16(0x1fe, s.bootFlag ?? 0xaa55, true);
  v.setUint8(0x200, 0xeb);
  v.setUint8(0x201, s.jump ?? 0x6a);
  f.set(ascii('HdrS'), 0x202);
  v.setUint16(0x206, s.version ?? 0x020f, true);
  v.setUint8(0x210, 0); // type_of_loader
  v.setUint8(0x211, s.loadflags ?? 0x01);
  v.setUint32(0x214, 0x100000, true); // code32_start
  v.setUint32(0x218, 0, true);
  v.setUint32(0x21c, 0, true);
  v.setUint16(0x224, 0, true);
  v.setUint32(0x228, 0, true);
  v.setUint32(0x22c, s.initrdMax ?? 0x7fffffff, true);
  v.setUint32(0x230, s.align ?? 0x200000, true);
  v.setUint8(0x234, s.relocatable ?? 1);
  v.setUint32(0x238, s.cmdlineSize ?? 2047, true);
  v.setBigUint64(0x258, BigInt(s.pref ?? 0x400000), true);
  v.setUint32(0x260, s.initSize ?? 0x20000, true);
  f.set(pm, pmOff);
  return f;
}

// ---- the loader's hooks --------------------------------------------------------

function setup(files: BootFile[], ramSize = 16 * MiB) {
  const m = tigerlake();
  const layout = buildBootInfo(m, { files });
  const k = loadKernel(m);
  assert.is(k.call<number>('boot_parse', layout.bootinfo).value, 1, 'boot info parses');
  k.call('pages_init');
  const ram = Number(k.call<bigint>('pages_alloc', ramSize / PAGE, 0n).value);
  assert.ok(ram > 0, 'guest RAM allocated');
  k.call('loader_setupRam', BigInt(ram), BigInt(ramSize));
  m.phys.fill(ram, ramSize, 0xaa);
  m.phys.watchers.push((b, len) =>
    b >= ram && b + len <= ram + ramSize ? null : `write [0x${b.toString(16)}, +0x${len.toString(16)}) outside guest RAM`);
  const g = {
    read: (gpa: number, n: number) => m.phys.read(ram + gpa, n),
    u8: (gpa: number) => m.phys.read(ram + gpa, 1)[0],
    u16: (gpa: number) => Number(m.phys.readInt(ram + gpa, 2)),
    u32: (gpa: number) => m.phys.read32(ram + gpa) >>> 0,
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
  const load = (file: number, cmdline = '', initrd = -1, vcpus = 1, modules: number[] = []) => {
    const mem = new Uint8Array((k.exports.memory as WebAssembly.Memory).buffer);
    mem.set(ascii(cmdline), k.call<number>('loader_cmdlineBuf').value!);
    const dv = new DataView(mem.buffer);
    const mbuf = k.call<number>('loader_modulesBuf').value!;
    modules.forEach((x, i) => dv.setUint32(mbuf + i * 4, x, true));
    const before = m.console.length;
    const r = k.call<number>('loader_loadWith', file, cmdline.length, modules.length, initrd, vcpus);
    return { ok: r.value === 1, out: m.console.slice(before), faults: [...r.faults], ended: r.ended };
  };
  const entry = () => ({
    eip: k.call<number>('loader_entryEip').value! >>> 0,
    eax: k.call<number>('loader_entryEax').value! >>> 0,
    ebx: k.call<number>('loader_entryEbx').value! >>> 0,
    esi: k.call<number>('loader_entryEsi').value! >>> 0,
    gdtBase: k.call<number>('loader_entryGdtBase').value! >>> 0,
    gdtLimit: k.call<number>('loader_entryGdtLimit').value! >>> 0,
    kernelEnd: Number(k.call<bigint>('loader_kernelEnd').value),
    modulesEnd: Number(k.call<bigint>('loader_modulesEnd').value),
  });
  return { m, g, ram, ramSize, load, entry };
}

type G = ReturnType<typeof setup>['g'];

function loadOk(files: BootFile[], cmdline = '', initrd = -1, vcpus = 1, ramSize = 16 * MiB) {
  const s = setup(files, ramSize);
  const r = s.load(0, cmdline, initrd, vcpus);
  assert.equal(r.faults, [], 'no machine fault');
  assert.not.ok(r.ended, 'no trap');
  assert.is(r.out, '', 'nothing printed on success');
  assert.ok(r.ok, 'loaded');
  return { ...s, e: s.entry() };
}

function loadFails(files: BootFile[], expect: RegExp, initrd = -1, ramSize = 16 * MiB, modules: number[] = []) {
  const s = setup(files, ramSize);
  const r = s.load(0, '', initrd, 1, modules);
  assert.equal(r.faults, [], 'no machine fault (nothing written outside guest RAM)');
  assert.not.ok(r.ended, 'no trap');
  assert.not.ok(r.ok, 'refused');
  const lines = r.out.split('\n').filter((l) => l !== '');
  assert.is(lines.length, 1, `exactly one line: ${JSON.stringify(r.out)}`);
  assert.ok(lines[0].startsWith(`hv: guest: ${files[0].name}: `), lines[0]);
  assert.match(lines[0], expect);
  assert.is(s.entry().eip, 0, 'no entry state on failure');
  assert.is(s.g.u32(ZP + 0x202), 0xaaaaaaaa, 'the zero page is not written');
  assert.is(s.g.u8(RSDP), 0xaa, 'no ACPI tables written');
}

function e820(g: G): [number, number, number][] {
  const n = g.u8(ZP + 0x1e8);
  return Array.from({ length: n }, (_, i) => {
    const p = ZP + 0x2d0 + 20 * i;
    return [Number(g.u64(p)), Number(g.u64(p + 8)), g.u32(p + 16)] as [number, number, number];
  });
}

// Sum of a table's bytes, mod 256.
const sum = (b: Uint8Array) => b.reduce((a, x) => (a + x) & 0xff, 0);
const sig = (g: G, at: number) => String.fromCharCode(...g.read(at, 4));

// Walk RSDP -> XSDT -> FADT (-> DSDT), MADT, checking every checksum.
function acpiTables(g: G, rsdp: number) {
  assert.is(String.fromCharCode(...g.read(rsdp, 8)), 'RSD PTR ', 'RSDP signature');
  assert.is(rsdp % 16, 0, 'RSDP 16-byte aligned');
  assert.ok(rsdp >= 0xe0000 && rsdp < 0x100000, 'RSDP where the legacy scan looks');
  assert.is(sum(g.read(rsdp, 20)), 0, 'RSDP checksum (first 20 bytes)');
  assert.is(g.u8(rsdp + 15), 2, 'RSDP revision 2');
  assert.is(g.u32(rsdp + 20), 36, 'RSDP length');
  assert.is(sum(g.read(rsdp, 36)), 0, 'RSDP extended checksum');
  const xsdt = Number(g.u64(rsdp + 24));
  const table = (at: number, s: string) => {
    assert.is(sig(g, at), s, `${s} signature`);
    const len = g.u32(at + 4);
    assert.ok(len >= 36, `${s} length`);
    assert.is(sum(g.read(at, len)), 0, `${s} checksum`);
    return len;
  };
  const xlen = table(xsdt, 'XSDT');
  const entries = Array.from({ length: (xlen - 36) / 8 }, (_, i) => Number(g.u64(xsdt + 36 + 8 * i)));
  const bySig = Object.fromEntries(entries.map((a) => [sig(g, a), a]));
  assert.equal(Object.keys(bySig).sort(), ['APIC', 'FACP']);
  const fadt = bySig.FACP;
  assert.is(table(fadt, 'FACP'), 276, 'FADT length (revision 6)');
  const madt = bySig.APIC;
  table(madt, 'APIC');
  const dsdt = Number(g.u64(fadt + 140));
  assert.is(g.u32(fadt + 40), dsdt, 'DSDT and X_DSDT agree');
  const dlen = table(dsdt, 'DSDT');
  dsdtCom1(g.read(dsdt + 36, dlen - 36));
  return { fadt, madt, dsdt, xsdt };
}

// The DSDT's AML (ACPI 6.4 chapter 20; resource descriptors 6.4.2) decoded by
// the grammar's rules, not compared with the bytes the loader writes:
// Scope (\_SB) { Device (COM1) { _HID EisaId PNP0501, _UID 0, _CRS with
// the 8 ports at 0x3F8 and IRQ 4 (edge, active high) } }, nothing else.
function dsdtCom1(aml: Uint8Array) {
  let p = 0;
  // PkgLength (20.2.4): bits 7:6 of the lead byte = count of following bytes.
  const pkgLength = (): [number, number] => {
    const at = p;
    const lead = aml[p++];
    const n = lead >> 6;
    let len = n === 0 ? lead & 0x3f : lead & 0x0f;
    for (let i = 0; i < n; i++) len |= aml[p++] << (4 + 8 * i);
    return [at, at + len];
  };
  const seg = () => String.fromCharCode(...aml.slice(p, (p += 4)));
  assert.is(aml[p++], 0x10, 'ScopeOp');
  const [, scopeEnd] = pkgLength();
  assert.is(scopeEnd, aml.length, 'the Scope is the whole body');
  assert.is(aml[p++], 0x5c, 'root prefix');
  assert.is(seg(), '_SB_');
  assert.equal([aml[p++], aml[p++]], [0x5b, 0x82], 'DeviceOp');
  const [, devEnd] = pkgLength();
  assert.is(devEnd, scopeEnd, 'the Device ends the Scope');
  assert.is(seg(), 'COM1');
  const names: Record<string, number | Uint8Array> = {};
  while (p < devEnd) {
    assert.is(aml[p++], 0x08, 'NameOp');
    const n = seg();
    const op = aml[p++];
    if (op === 0x00) names[n] = 0;
    else if (op === 0x0c) names[n] = new DataView(aml.buffer, aml.byteOffset + p, 4).getUint32(0, true), p += 4;
    else if (op === 0x11) {
      const [, bufEnd] = pkgLength();
      assert.is(aml[p++], 0x0a, 'BufferSize: ByteConst');
      const size = aml[p++];
      assert.is(p + size, bufEnd, 'buffer size matches its PkgLength');
      names[n] = aml.slice(p, bufEnd);
      p = bufEnd;
    } else assert.unreachable(`data object 0x${op.toString(16)}`);
  }
  assert.is(p, devEnd);
  // EISA ID (compressed): three 5-bit letters big-endian, then the product number.
  const id = names._HID as number;
  const b = [id & 0xff, (id >> 8) & 0xff, (id >> 16) & 0xff, id >>> 24];
  const w = (b[0] << 8) | b[1];
  const letters = [(w >> 10) & 31, (w >> 5) & 31, w & 31].map((c) => String.fromCharCode(64 + c)).join('');
  assert.is(letters + ((b[2] << 8) | b[3]).toString(16).padStart(4, '0').toUpperCase(), 'PNP0501', '_HID');
  assert.is(names._UID, 0, '_UID');
  const crs = names._CRS as Uint8Array;
  // Small resource items (6.4.2): tag byte = type << 3 | length.
  let q = 0;
  const items: [number, Uint8Array][] = [];
  while (q < crs.length) {
    const tag = crs[q];
    assert.is(tag & 0x80, 0, 'small items only');
    const len = tag & 7;
    items.push([tag >> 3, crs.slice(q + 1, q + 1 + len)]);
    q += 1 + len;
  }
  assert.is(q, crs.length);
  assert.equal(items.map(([t]) => t), [0x08, 0x04, 0x0f], 'I/O port, IRQ, end tag');
  assert.equal([...items[0][1]], [1, 0xf8, 0x03, 0xf8, 0x03, 1, 8], 'I/O: 16-bit decode, 0x3F8..0x3F8, align 1, 8 ports');
  assert.equal([...items[1][1]], [0x10, 0x00], 'IRQ 4, 2-byte form: edge, active high');
}

// MADT → its entries.
function madtEntries(g: G, madt: number) {
  const len = g.u32(madt + 4);
  const out: { type: number; bytes: Uint8Array }[] = [];
  for (let p = madt + 44; p < madt + len;) {
    const l = g.u8(p + 1);
    assert.ok(l >= 2, 'entry length');
    out.push({ type: g.u8(p), bytes: g.read(p, l) });
    p += l;
  }
  return out;
}

test('zero page: the setup header copied, loader fields, e820 map, entry state', () => {
  const img = bzImage();
  const s = loadOk([{ name: 'vmlinuz', data: img }], 'console=ttyS0,115200 quiet');
  const { g, e } = s;
  // Kernel at pref_address (0x400000 is 2 MiB aligned), entry there.
  assert.is(e.eip, 0x400000);
  assert.equal(g.read(0x400000, PM.length), PM, 'protected-mode kernel copied from (setup_sects + 1) * 512');
  assert.is(e.esi, ZP, 'ESI = the zero page');
  assert.is(e.eax, 0);
  assert.is(e.ebx, 0);
  assert.is(e.gdtBase, GDT);
  assert.is(e.gdtLimit, 31);
  // The header: bytes 0x1F1 .. 0x202 + 0x6A as the file has them, except
  // the loader's fields.
  const hdrEnd = 0x202 + 0x6a;
  const zp = g.read(ZP, PAGE);
  const want = img.slice(0, hdrEnd);
  want[0x210] = 0xff; // type_of_loader
  want[0x211] = 0x81; // LOADED_HIGH | CAN_USE_HEAP
  new DataView(want.buffer).setUint32(0x214, 0x400000, true); // code32_start
  new DataView(want.buffer).setUint16(0x224, 0xde00, true); // heap_end_ptr
  new DataView(want.buffer).setUint32(0x228, CMDLINE, true); // cmd_line_ptr
  assert.equal(zp.slice(0x1f1, hdrEnd), want.slice(0x1f1, hdrEnd), 'setup header');
  assert.is(g.u32(ZP + 0x218), 0, 'no ramdisk_image');
  assert.is(g.u32(ZP + 0x21c), 0, 'no ramdisk_size');
  assert.ok(zp.slice(hdrEnd, 0x2d0).every((b) => b === 0), 'nothing of the setup sectors past the header');
  assert.ok(zp.slice(0, 0x70).every((b) => b === 0) && zp.slice(0x78, 0x1e8).every((b) => b === 0), 'the rest 0');
  assert.is(Number(g.u64(ZP + 0x70)), RSDP, 'acpi_rsdp_addr');
  assert.is(g.str(CMDLINE), 'console=ttyS0,115200 quiet', 'command line at cmd_line_ptr');
  assert.equal(e820(g), [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x60400, 2],
    [0x100000, 16 * MiB - 0x100000, 1],
    [0xfec00000, 0x1000, 2],
    [0xfee00000, 0x1000, 2],
  ]);
  assert.ok(zp.slice(0x2d0 + 5 * 20).every((b) => b === 0), 'no more e820 entries');
  // The boot GDT: 0x10 flat 32-bit code, 0x18 flat 32-bit data.
  assert.is(g.u64(GDT), 0n);
  assert.is(g.u64(GDT + 8), 0n);
  assert.is(g.u64(GDT + 0x10), 0x00cf9b000000ffffn);
  assert.is(g.u64(GDT + 0x18), 0x00cf93000000ffffn);
  // The reset vector (0xFFFF0, where a real-mode restart jumps): MOV AL,
  // 0x52; OUT 0xF4, AL (the FADT's reset register and value); HLT; JMP -3.
  assert.equal(g.read(0xffff0, 16), Uint8Array.of(0xb0, 0x52, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0));
});

test('kernel placement: pref_address aligned up for a relocatable kernel; 1 MiB for one that is not', () => {
  let s = loadOk([{ name: 'vmlinuz', data: bzImage({ pref: 0x500000, align: 0x200000, initSize: 0x1000 }) }]);
  assert.is(s.e.eip, 0x600000, 'aligned up to kernel_alignment');
  assert.is(s.g.u32(ZP + 0x214), 0x600000, 'code32_start');
  assert.is(s.e.kernelEnd, 0x600000 + PM.length, 'end: the image (init_size smaller)');
  s = loadOk([{ name: 'vmlinuz', data: bzImage({ pref: 0x1000000, initSize: 0x800000 }) }], '', -1, 1, 32 * MiB);
  assert.is(s.e.eip, 0x1000000);
  assert.is(s.e.kernelEnd, 0x1800000, 'init_size counted');
  s = loadOk([{ name: 'vmlinuz', data: bzImage({ relocatable: 0, pref: 0x1000000, initSize: 0x400000 }) }], '', -1, 1, 32 * MiB);
  assert.is(s.e.eip, 0x100000, 'not relocatable: at 0x100000');
  assert.is(s.e.kernelEnd, 0x1400000, 'its runtime area [pref_address, + init_size) counted');
  // setup_sects 0 means 4.
  s = loadOk([{ name: 'vmlinuz', data: bzImage({ setupSects: 0 }) }]);
  assert.equal(s.g.read(s.e.eip, PM.length), PM, 'kernel from 5 * 512');
});

test('initrd: page-aligned, as high as RAM and initrd_addr_max allow; ramdisk fields', () => {
  const rd = pattern(10000, 77);
  const files = [{ name: 'vmlinuz', data: bzImage() }, { name: 'initrd.cpio', data: rd }];
  let s = loadOk(files, '', 1);
  const top = 16 * MiB;
  const start = (top - rd.length) & ~(PAGE - 1);
  assert.is(s.g.u32(ZP + 0x218), start, 'ramdisk_image');
  assert.is(s.g.u32(ZP + 0x21c), rd.length, 'ramdisk_size');
  assert.equal(s.g.read(start, rd.length), rd, 'initrd copied');
  assert.is(s.e.modulesEnd, start + rd.length);
  // initrd_addr_max below RAM's end: the initrd ends at or below it + 1.
  s = loadOk([{ name: 'vmlinuz', data: bzImage({ initrdMax: 0x7fffff }) }, files[1]], '', 1);
  assert.is(s.g.u32(ZP + 0x218), (0x800000 - rd.length) & ~(PAGE - 1));
  // Exactly the room between the kernel's area (ending at 0x420000:
  // init_size 0x20000) and initrd_addr_max + 1.
  s = loadOk([{ name: 'vmlinuz', data: bzImage({ initrdMax: 0x42ffff }) }, { name: 'rd', data: new Uint8Array(0x10000) }], '', 1);
  assert.is(s.g.u32(ZP + 0x218), 0x420000);
});

test('ACPI tables: checksums, FADT hardware-reduced with the reset register, MADT per vCPU', () => {
  for (const vcpus of [1, 2]) {
    const s = loadOk([{ name: 'vmlinuz', data: bzImage() }], '', -1, vcpus);
    const g = s.g;
    const t = acpiTables(g, Number(g.u64(ZP + 0x70)));
    // FADT: revision 6, flags WBINVD | RESET_REG_SUP | HW_REDUCED_ACPI.
    assert.is(g.u8(t.fadt + 8), 6, 'FADT revision');
    const flags = g.u32(t.fadt + 112);
    assert.is(flags, (1 << 0) | (1 << 10) | (1 << 20));
    assert.is(g.u16(t.fadt + 109), (1 << 2) | (1 << 5), 'IAPC_BOOT_ARCH: VGA and CMOS RTC not present, no 8042, no legacy devices');
    assert.equal([...g.read(t.fadt + 116, 4)], [1, 8, 0, 1], 'RESET_REG: System I/O, 8 bits, byte access');
    assert.is(Number(g.u64(t.fadt + 120)), 0xf4, 'reset port: isa-debug-exit');
    assert.is(g.u8(t.fadt + 128), 0x52, 'RESET_VALUE');
    assert.is(g.u32(t.fadt + 76), 0, 'no PM timer block');
    assert.is(g.u32(t.fadt + 56), 0, 'no PM1a event block');
    assert.is(g.u16(t.fadt + 46), 9, 'SCI_INT');
    // MADT.
    assert.is(g.u32(t.madt + 36), 0xfee00000, 'local APIC address');
    assert.is(g.u32(t.madt + 40), 0, 'no PCAT_COMPAT');
    const es = madtEntries(g, t.madt);
    const lapics = es.filter((x) => x.type === 0);
    assert.is(lapics.length, vcpus, 'one Processor Local APIC per vCPU');
    lapics.forEach((x, i) => assert.equal([...x.bytes], [0, 8, i, i, 1, 0, 0, 0], `vCPU ${i}: UID, APIC ID, enabled`));
    const io = es.filter((x) => x.type === 1);
    assert.is(io.length, 1);
    assert.equal([...io[0].bytes], [1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0], 'I/O APIC ID 0 at 0xFEC00000, GSI base 0');
    assert.is(es.length, vcpus + 1, 'no interrupt source override (IRQ 4 is GSI 4)');
    assert.is(g.u32(t.madt + 4), 44 + 8 * vcpus + 12, 'MADT length');
  }
});

test('refused with one line, nothing written: old protocol, absurd setup_sects, bad header, no room', () => {
  loadFails([{ name: 'old.bz', data: bzImage({ version: 0x020b }) }], /Linux boot protocol 2\.11 is older than 2\.12/);
  // 255 setup sectors: the setup would end past the file's end.
  const img = bzImage();
  img[0x1f1] = 255;
  loadFails([{ name: 'sects.bz', data: img }], /setup_sects 255 leaves no protected-mode kernel: the setup ends at 0x20000, the file at 0x/);
  loadFails([{ name: 'flag.bz', data: bzImage({ bootFlag: 0x1234 }) }], /without boot_flag 0xAA55/);
  loadFails([{ name: 'jump.bz', data: bzImage({ jump: 0xf0 }) }], /setup header ends at 0x2f2/);
  loadFails([{ name: 'zimage.bz', data: bzImage({ loadflags: 0 }) }], /a zImage/);
  loadFails([{ name: 'align.bz', data: bzImage({ align: 0x300000 }) }], /kernel_alignment 0x300000 is not a power of two/);
  loadFails([{ name: 'big.bz', data: bzImage({ pref: 0x1000000, initSize: 0x2000000 }) }], /the kernel \(\d+ bytes, init_size 33554432\) does not fit in guest RAM: it needs \[0x1000000, 0x3000000\), RAM is \[0x0, 0x1000000\)/);
  // The initrd: larger than the room between the kernel and RAM's end.
  const kernel = { name: 'rd.bz', data: bzImage() };
  loadFails([kernel, { name: 'initrd.big', data: new Uint8Array(12 * MiB) }],
    /initrd initrd\.big \(12582912 bytes\) does not fit between the kernel and the lower of RAM's end and initrd_addr_max \+ 1: \[0x420000, 0x1000000\)/, 1);
  // ... or below initrd_addr_max.
  loadFails([{ name: 'rdmax.bz', data: bzImage({ initrdMax: 0x42fffe }) }, { name: 'initrd', data: new Uint8Array(0x10000) }],
    /initrd initrd \(65536 bytes\) does not fit/, 1);
  loadFails([kernel, { name: 'm', data: new Uint8Array(16) }], /module= is for multiboot kernels; a Linux kernel takes initrd=/, -1, 16 * MiB, [1]);
});

test('command line: longer than cmdline_size refused; the file name string\'s words come first', () => {
  const s = setup([{ name: 'short.bz', data: bzImage({ cmdlineSize: 10 }) }]);
  const r = s.load(0, 'console=ttyS0');
  assert.not.ok(r.ok);
  assert.match(r.out, /^hv: guest: short\.bz: command line too long: 13 bytes \(the kernel's cmdline_size allows 10\)\n$/);
  const t = loadOk([{ name: 'vmlinuz root=/dev/ram0', data: bzImage() }], 'quiet');
  assert.is(t.g.str(CMDLINE), 'root=/dev/ram0 quiet');
});

test('initrd= with a multiboot kernel is refused', () => {
  const mb = new Uint8Array(0x1000);
  const dv = new DataView(mb.buffer);
  const flags = 0x00010003;
  [0x1badb002, flags, (-(0x1badb002 + flags)) >>> 0, 0x100000, 0x100000, 0, 0, 0x100020].forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  const s = setup([{ name: 'mb.elf', data: mb }, { name: 'rd', data: new Uint8Array(8) }]);
  const r = s.load(0, '', 1);
  assert.not.ok(r.ok);
  assert.match(r.out, /^hv: guest: mb\.elf: initrd= is for Linux kernels \(bzImage\); a multiboot kernel takes module=\n$/);
});

// ---- a whole run --------------------------------------------------------------

// The kernel runs the bzImage guest; at its first entry the test reads the
// entry state from vmcs01 and guest memory, then plays the guest's OUT to
// isa-debug-exit (value 0: a pass).
function runBz(cmdline: string, files: BootFile[]) {
  const m = tigerlake();
  let seen: Record<string, bigint> | null = null;
  let mem: { cmdline: string; rdImage: number; rdSize: number; rsdp: bigint; version: number } | null = null;
  let entries = 0;
  m.vmx.guest = (vmx) => {
    entries++;
    if (!seen) {
      const f = (x: number) => vmx.field(x);
      seen = {
        rip: f(V.GUEST_RIP), rsi: m.guestReg(6), rax: m.guestReg(0), rbx: m.guestReg(3), rdi: m.guestReg(7), rbp: m.guestReg(5),
        cs: f(V.GUEST_CS_SELECTOR), csAr: f(V.GUEST_CS_ACCESS_RIGHTS), csBase: f(V.GUEST_CS_BASE), csLimit: f(V.GUEST_CS_LIMIT),
        ds: f(V.GUEST_DS_SELECTOR), dsAr: f(V.GUEST_DS_ACCESS_RIGHTS), es: f(V.GUEST_ES_SELECTOR), ss: f(V.GUEST_SS_SELECTOR),
        fs: f(V.GUEST_FS_SELECTOR), gs: f(V.GUEST_GS_SELECTOR),
        gdtrBase: f(V.GUEST_GDTR_BASE), gdtrLimit: f(V.GUEST_GDTR_LIMIT), cr0: f(V.GUEST_CR0), cr0Shadow: f(V.CR0_READ_SHADOW),
        rflags: f(V.GUEST_RFLAGS), efer: f(V.GUEST_IA32_EFER),
      };
      const rd = (gpa: number, n: number) => m.phys.read(guestHpa(m, gpa), n);
      const u32 = (gpa: number) => new DataView(rd(gpa, 4).buffer.slice(0)).getUint32(0, true);
      let s = '';
      for (let a = u32(ZP + 0x228); ; a++) {
        const c = rd(a, 1)[0];
        if (c === 0) break;
        s += String.fromCharCode(c);
      }
      mem = { cmdline: s, rdImage: u32(ZP + 0x218), rdSize: u32(ZP + 0x21c), rsdp: BigInt(u32(ZP + 0x70)), version: u32(ZP + 0x206) & 0xffff };
    }
    produceExit(m, vmx, { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 2, regs: { 0: 0n } }, 2);
  };
  const r = runKernel(m, { boot: { cmdline: `caps=off ${cmdline}`, files } });
  return { r, seen: seen as Record<string, bigint> | null, mem: mem as typeof mem, entries };
}

test('whole run: the 32-bit boot protocol entry state; args= escaping; initrd=', () => {
  const rd = pattern(5000, 3);
  const { r, seen, mem, entries } = runBz('guest=vmlinuz mem=32M initrd=initrd.img args=console=ttyS0,,115200,quiet,a,,,b',
    [{ name: 'vmlinuz', data: bzImage() }, { name: 'initrd.img', data: rd }]);
  assert.equal(r.faults, []);
  assert.is(entries, 1, 'one entry, one exit');
  assert.ok(seen, 'the guest was entered');
  const s = seen!;
  assert.is(s.rip, 0x400000n, 'EIP = the protected-mode kernel');
  assert.is(s.rsi, BigInt(ZP), 'ESI = boot_params');
  for (const k of ['rax', 'rbx', 'rdi', 'rbp']) assert.is(s[k], 0n, `${k} 0`);
  assert.is(s.cs, 0x10n, 'CS = __BOOT_CS');
  for (const k of ['ds', 'es', 'ss', 'fs', 'gs']) assert.is(s[k], 0x18n, `${k} = __BOOT_DS`);
  assert.is(s.csAr, 0xc09bn, 'CS flat 32-bit execute/read');
  assert.is(s.csBase, 0n);
  assert.is(s.csLimit, 0xffffffffn);
  assert.is(s.dsAr, 0xc093n, 'DS flat 32-bit read/write');
  assert.is(s.gdtrBase, BigInt(GDT));
  assert.is(s.gdtrLimit, 31n);
  assert.is(s.cr0Shadow & 1n, 1n, 'CR0.PE = 1 (as the guest reads it)');
  assert.is(s.cr0Shadow & 0x80000000n, 0n, 'CR0.PG = 0');
  assert.is(s.cr0 & 0x80000001n, 1n, 'and so it runs: PE 1, PG 0');
  assert.is(s.rflags & 0x200n, 0n, 'IF = 0');
  assert.is(s.efer, 0n);
  assert.is(mem!.cmdline, 'console=ttyS0,115200 quiet a, b', 'a comma is a space, two are a comma');
  assert.is(mem!.rdSize, rd.length);
  assert.is(mem!.rdImage, (32 * MiB - rd.length) & ~(PAGE - 1));
  assert.is(mem!.rsdp, BigInt(RSDP));
  assert.is(mem!.version, 0x020f);
  assert.match(r.console, /hv: guest 1 \(vmlinuz\) ended: exit via isa-debug-exit, code 1, 1 exits.*: as expected/);
  assert.match(r.console, /hv: guests: 1 run, all as expected/);
});

test('whole run: a refused bzImage is not run, the next guest is', () => {
  const m: Machine = tigerlake();
  let entries = 0;
  m.vmx.guest = (vmx) => {
    entries++;
    produceExit(m, vmx, { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 2, regs: { 0: 0n } }, 2);
  };
  const r = runKernel(m, {
    boot: {
      cmdline: 'caps=off guest=old.bz guest=vmlinuz',
      files: [{ name: 'old.bz', data: bzImage({ version: 0x0209 }) }, { name: 'vmlinuz', data: bzImage() }],
    },
  });
  assert.equal(r.faults, []);
  assert.match(r.console, /hv: guest: old\.bz: Linux boot protocol 2\.9 is older than 2\.12/);
  assert.match(r.console, /hv: guest 1 \(old\.bz\) ended: stopped.*NOT as expected/);
  assert.match(r.console, /hv: guest 2 \(vmlinuz\) ended: exit via isa-debug-exit, code 1.*: as expected/);
  assert.is(entries, 1, 'only the second guest entered');
});

test('args= escaping is the same for a multiboot guest; the rest of the hypervisor\'s line still parses', () => {
  const m = tigerlake();
  let cmd = '';
  m.vmx.guest = (vmx) => {
    if (cmd === '') {
      const ebx = Number(m.guestReg(3));
      const u32 = (gpa: number) => new DataView(m.phys.read(guestHpa(m, gpa), 4).buffer.slice(0)).getUint32(0, true);
      for (let a = u32(ebx + 16); ; a++) {
        const c = m.phys.read(guestHpa(m, a), 1)[0];
        if (c === 0) break;
        cmd += String.fromCharCode(c);
      }
    }
    produceExit(m, vmx, { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 2, regs: { 0: 0n } }, 2);
  };
  const r = runKernel(m, { boot: { cmdline: 'caps=off guest=/g args=x=1,,2,,,,3,y vpid=off', files: [{ name: '/g', data: tinyKernel() }] } });
  assert.equal(r.faults, []);
  assert.is(cmd, '/g x=1,2,,3 y', 'MB1: the file name, then args= with ,, -> , and , -> space');
  assert.match(r.console, /hv: guest 1 \(\/g\): \d+ MiB, vpid off/, 'the option after args= still applies');
  assert.match(r.console, /hv: guests: 1 run, all as expected/);
});

test('command line: initrd= names a boot file, once; args= escaping keeps the rest of the line', () => {
  const files = [{ name: 'vmlinuz', data: bzImage() }];
  let r = runKernel(tigerlake(), { boot: { cmdline: 'caps=off guest=vmlinuz initrd=nope', files } });
  assert.is(r.status, 7);
  assert.match(r.console, /hv: command line: no boot file named 'nope'/);
  r = runKernel(tigerlake(), { boot: { cmdline: 'caps=off initrd=vmlinuz', files } });
  assert.is(r.status, 7);
  assert.match(r.console, /initrd= must follow a guest= option/);
  r = runKernel(tigerlake(), { boot: { cmdline: 'caps=off guest=vmlinuz initrd=vmlinuz initrd=vmlinuz', files } });
  assert.is(r.status, 7);
  assert.match(r.console, /a second initrd= for the same guest/);
});

test.run();
