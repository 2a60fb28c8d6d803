// This hypervisor's own use of the enlightened VMCS as L1 (issue 11 item 4) switches its VMX
// imports by patching code once (boot/imports/vmx.c evmcs_patch): every recorded site becomes
// a 5-byte JMP rel32 to the import's eVMCS code. Checked here on the built images, both of them
// (build/hv.elf, build/BOOTX64.EFI), since a wrong record would only show when the mode starts:
// - each record's site and target lie in .text, no two sites overlap (a JMP written over
//   another site would break it), no site is recorded twice, and the code goes on after each
//   site (no INT3 padding there: the PE build once split functions at the record's section
//   switch);
// - each site is what the patch may overwrite (SDM Vol. 2 instruction formats): a 5-byte NOP
//   (0F 1F 44 00 00), or VMREAD (0F 78 /r) / VMWRITE (0F 79 /r), with an optional REX prefix,
//   followed directly by JBE (76 cb or 0F 86 cd): the 5 bytes of the JMP cover only that pair;
// - there are sites of both kinds (the imports are inlined at many places by LTO).
// And the generated eVMCS map the eVMCS code reads (boot/include/vmx-consts.h hv_evmcs_map)
// gives every eVMCS v1 field of tools/vmx/table.mjs its TLFS offset and clean-field mask, and
// nothing for the fields eVMCS v1 lacks or has only in the 2022 update.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as V from '../model/vmx-consts.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Section { name: string; addr: number; size: number; off: number }
interface Image { bytes: Buffer; sections: Section[] }

function need(rel: string): Buffer {
  const p = join(REPO, rel);
  if (!existsSync(p)) throw new Error(`${rel} does not exist: run make all first`);
  return readFileSync(p);
}

// ELF64 section headers (with names from the section-name string table).
function elf(rel: string): Image {
  const b = need(rel);
  assert.is(b.toString('latin1', 1, 4), 'ELF', `${rel} is an ELF file`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a), shnum = b.readUInt16LE(0x3c), shstrndx = b.readUInt16LE(0x3e);
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    raw.push({ nameOff: b.readUInt32LE(o), addr: Number(b.readBigUInt64LE(o + 0x10)), off: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)) });
  }
  const strs = raw[shstrndx];
  const name = (n: number) => b.toString('latin1', strs.off + n, b.indexOf(0, strs.off + n));
  return { bytes: b, sections: raw.map((s) => ({ name: name(s.nameOff), addr: s.addr, size: s.size, off: s.off })) };
}

// PE32+ section table (names up to 8 bytes; addresses as image base + RVA).
function pe(rel: string): Image {
  const b = need(rel);
  const peOff = b.readUInt32LE(0x3c);
  assert.is(b.toString('latin1', peOff, peOff + 4), 'PE\0\0', `${rel} is a PE file`);
  const nsec = b.readUInt16LE(peOff + 6), optSize = b.readUInt16LE(peOff + 20);
  const opt = peOff + 24;
  const base = Number(b.readBigUInt64LE(opt + 24));
  const sections: Section[] = [];
  for (let i = 0; i < nsec; i++) {
    const o = opt + optSize + i * 40;
    const n = b.toString('latin1', o, o + 8).replace(/\0+$/, '');
    sections.push({ name: n, addr: base + b.readUInt32LE(o + 12), size: b.readUInt32LE(o + 8), off: b.readUInt32LE(o + 20) });
  }
  return { bytes: b, sections };
}

function section(img: Image, name: string): Section {
  const s = img.sections.find((x) => x.name === name);
  if (!s) throw new Error(`no section ${name}`);
  return s;
}
function at(img: Image, addr: number, n: number): Buffer {
  for (const s of img.sections) {
    if (s.off !== 0 && addr >= s.addr && addr + n <= s.addr + s.size) return img.bytes.subarray(s.off + addr - s.addr, s.off + addr - s.addr + n);
  }
  throw new Error(`address 0x${addr.toString(16)} is in no section with contents`);
}

// Length of VMREAD/VMWRITE at p with its ModRM addressing (SDM Vol. 2A 2.1.5), or 0 if the
// bytes are not one.
function vmrwLength(p: Buffer): number {
  let i = (p[0] & 0xf0) === 0x40 ? 1 : 0;
  if (p[i] !== 0x0f || (p[i + 1] !== 0x78 && p[i + 1] !== 0x79)) return 0;
  const modrm = p[i + 2];
  i += 3;
  const mod = modrm >> 6, rm = modrm & 7;
  if (mod !== 3) {
    if (rm === 4) {
      const base = p[i] & 7;
      i++;
      if (mod === 0 && base === 5) i += 4;
    }
    if (mod === 0 && rm === 5) i += 4;
    if (mod === 1) i += 1;
    if (mod === 2) i += 4;
  }
  return i;
}

function checkSites(img: Image, records: { addr: number; site: number; target: number }[], what: string): void {
  const text = section(img, '.text');
  const inText = (a: number) => a >= text.addr && a < text.addr + text.size;
  let nops = 0, vmrw = 0;
  const sites = new Set<number>();
  for (const r of records) {
    const where = `${what}: record at 0x${r.addr.toString(16)}, site 0x${r.site.toString(16)}`;
    assert.ok(inText(r.site) && inText(r.site + 4), `${where}: site outside .text`);
    assert.ok(inText(r.target), `${where}: target 0x${r.target.toString(16)} outside .text`);
    assert.not.ok(sites.has(r.site), `${where}: recorded twice`);
    sites.add(r.site);
    const p = at(img, r.site, 16);
    if (p.subarray(0, 5).equals(Buffer.from([0x0f, 0x1f, 0x44, 0x00, 0x00]))) {
      // The function goes on after the site (not INT3 padding: code split off
      // by a section switch of the record, as a COMDAT function would be).
      assert.is.not(p[5], 0xcc, `${where}: INT3 after the NOP`);
      nops++;
      continue;
    }
    const n = vmrwLength(p);
    assert.ok(n > 0, `${where}: neither the 5-byte NOP nor VMREAD/VMWRITE (${p.subarray(0, 6).toString('hex')})`);
    const jbe = p[n] === 0x76 ? 2 : p[n] === 0x0f && p[n + 1] === 0x86 ? 6 : 0;
    assert.ok(jbe > 0, `${where}: VMREAD/VMWRITE not followed by JBE (${p.subarray(0, n + 2).toString('hex')})`);
    assert.ok(n + jbe >= 5, `${where}: the pair is ${n + jbe} bytes, the JMP needs 5`);
    assert.is.not(p[n + jbe], 0xcc, `${where}: INT3 after the pair`);
    vmrw++;
  }
  const sorted = [...sites].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i] >= sorted[i - 1] + 5, `${what}: sites 0x${sorted[i - 1].toString(16)} and 0x${sorted[i].toString(16)} overlap`);
  }
  assert.ok(vmrw >= 100, `${what}: ${vmrw} VMREAD/VMWRITE sites (the imports are inlined at many places)`);
  assert.ok(nops >= 5, `${what}: ${nops} NOP sites (VMPTRLD, VMCLEAR, VMPTRST, the field lists)`);
}

// Records are pairs of 32-bit offsets: site - &record, target - &record.target.
function decode(img: Image, start: number, end: number) {
  const out = [];
  for (let a = start; a + 8 <= end; a += 8) {
    const b = at(img, a, 8);
    const s = b.readInt32LE(0), t = b.readInt32LE(4);
    if (s === 0 && t === 0) continue; // alignment padding (evmcs_patch skips it too)
    out.push({ addr: a, site: a + s, target: a + 4 + t });
  }
  return out;
}

test('hv.elf: every eVMCS patch site is a NOP or a VMREAD/VMWRITE with its JBE', () => {
  const img = elf('build/hv.elf');
  const k = section(img, 'hv_evmcs_keys');
  assert.ok(k.size > 0 && k.size % 8 === 0, `hv_evmcs_keys: ${k.size} bytes`);
  checkSites(img, decode(img, k.addr, k.addr + k.size), 'hv.elf');
});

test('BOOTX64.EFI: the same between the HVKEYS markers of .rdata', () => {
  const img = pe('build/BOOTX64.EFI');
  const rd = section(img, '.rdata');
  const data = img.bytes.subarray(rd.off, rd.off + rd.size);
  const s = data.indexOf('HVKEYS<<', 0, 'latin1'), e = data.indexOf('HVKEYS>>', 0, 'latin1');
  assert.ok(s >= 0 && e > s, 'the markers are in .rdata, in order');
  assert.is(data.indexOf('HVKEYS<<', s + 1, 'latin1'), -1, 'one start marker');
  checkSites(img, decode(img, rd.addr + s + 8, rd.addr + e), 'BOOTX64.EFI');
});

test('hv_evmcs_map: each eVMCS v1 field at its offset with its clean mask, no others', () => {
  const h = readFileSync(join(REPO, 'boot/include/vmx-consts.h'), 'utf8');
  const init = h.slice(h.indexOf('hv_evmcs_map[1024] = {'), h.indexOf('};', h.indexOf('hv_evmcs_map[1024] = {')));
  const map = new Map<number, number>();
  for (const m of init.matchAll(/\[(\d+)\] = (0x[0-9a-f]+)/g)) map.set(Number(m[1]), Number(m[2]));
  // The key: width (14:13), type (11:10), index (6:1) of the encoding (SDM Vol. 3C 25.11.2).
  const key = (enc: number) => (((enc >> 13) & 3) << 8) | (((enc >> 10) & 3) << 6) | ((enc >> 1) & 63);
  let n = 0;
  for (const f of V.EVMCS_FIELDS) {
    if (f.encoding === null) continue;
    if (f.update2022) {
      assert.is(map.get(key(f.encoding)), undefined, `${f.name}: 2022 update, not used`);
      continue;
    }
    assert.is(map.get(key(f.encoding)), (f.offset | (f.cleanMask << 16)) >>> 0, f.name);
    n++;
  }
  assert.is(map.size, n, 'no entry for a field eVMCS v1 lacks');
  // Spot checks against the TLFS structure: GuestRip at 816 in no group, HostRsp at 616 in
  // HOST_POINTER (bit 13), the CR3 targets in no TLFS group (every bit).
  assert.is(map.get(key(V.GUEST_RIP)), 816);
  assert.is(map.get(key(V.HOST_RSP)), 616 | (0x2000 << 16));
  assert.is(map.get(key(V.CR3_TARGET_VALUE0)), (344 | (0xffff << 16)) >>> 0);
  assert.is(map.get(key(V.VMX_PREEMPTION_TIMER_VALUE)), undefined, 'no preemption timer in eVMCS v1');
});

test.run();
