// The walk of L1's EPT (kernel/nested/ept12.ts, issue 5 item 8) through
// kernel.wasm's ept_* hooks (kernel/hooks/ept.ts), on the tigerlake model:
// hand-built EPT paging structures in L1's RAM (model physical memory), each
// walk's result (translation, EPT violation, EPT misconfiguration), L1-
// physical address, permissions and page size compared with an independent
// walker written here from the SDM:
//
//   SDM Vol. 3C 29.3.2    EPT translation: 4-level walk, entry formats
//                         (Tables 29-1 .. 29-6), 1-GByte and 2-MByte pages
//   SDM Vol. 3C 29.3.3.1  EPT misconfigurations
//   SDM Vol. 3C 29.3.3.2  EPT violations (the AND of bits 2:0 of every entry
//                         used; a not-present entry: bits 2:0 all 0)
//   SDM Vol. 3C 28.2.1    exit qualification of an EPT violation, bits 5:3:
//                         the AND of bits 0/1/2 of the entries used
//   SDM Vol. 3D A.10      IA32_VMX_EPT_VPID_CAP: execute-only (bit 0), 2-MByte
//                         (16) and 1-GByte (17) pages, as offered to L1 (with
//                         the VPID bits 32, 40-43, "enable VPID" being offered)
//
// One rule is the hypervisor's, not the SDM's: a paging structure L1 puts
// outside its RAM reads as all ones (nothing answers there), so the walk
// reports a misconfiguration and never touches memory that is not L1's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, type Machine } from '../model/index.ts';
import * as C from '../model/vmx-consts.ts';
import { prng, type Rng } from './prng.ts';

// ept12.ts results and access kinds (the exit qualification's bits 2:0, 28.2.1).
const OK = 0, VIOLATION = 1, MISCONFIG = 2;
const RESULT = ['translation', 'violation', 'misconfiguration'];
const R = 1, W = 2, X = 4;
const ACCESSES = [R, W, X];

const MiB = 0x100000;
const HOST_BASE = 16 * MiB; // L1's RAM in the model's physical memory
const RAM = 32 * MiB; // guest-physical [0, RAM)
const ALL1 = (1n << 64n) - 1n;
const ADDR = 0x000ffffffffff000n; // bits 51:12
const WB = 6n << 3n; // leaf memory type WB (bits 5:3)
const LARGE = 1n << 7n;
const KiB4 = 1n << 12n, MiB2 = 1n << 21n, GiB1 = 1n << 30n;

const TIGERLAKE_EPT_CAP = 0x00000f0106334141n; // tests/model/presets.ts (measured)
// What the hypervisor implements for L1 (the brief of issue 5; caps.ts
// comment): execute-only, 4-level walks, UC, WB, 2M, 1G, INVEPT + both types,
// accessed and dirty flags.
const EPT_CAP_MASK = (1n << 0n) | (1n << 6n) | (1n << 8n) | (1n << 14n) | (1n << 16n) | (1n << 17n) |
  (1n << 20n) | (1n << 21n) | (1n << 25n) | (1n << 26n);
// ... and, L1 being offered "enable VPID", INVVPID (bit 32) and its four types (40-43).
const VPID_CAP_MASK = (1n << 32n) | (0xfn << 40n);

// ---- the kernel ----------------------------------------------------------------

interface Rig {
  m: Machine;
  cap: bigint; // IA32_VMX_EPT_VPID_CAP as offered to L1
  maxPhys: number;
  walk(eptp: bigint, gpa: bigint, access: number): Result;
  w64(gpa: bigint | number, v: bigint): void;
  r64(gpa: bigint): bigint;
  clear(gpa: bigint | number): void; // zero a 4-KiB page of L1's RAM
}
interface Result { kind: number; gpa1?: bigint; perms?: number; size?: bigint }

function rig(opts: { hwCap?: bigint; maxPhys?: number } = {}): Rig {
  const hwCap = opts.hwCap ?? TIGERLAKE_EPT_CAP;
  const m = tigerlake({ msrs: { [C.MSR_IA32_VMX_EPT_VPID_CAP]: hwCap }, maxPhysAddr: opts.maxPhys });
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  call('ept_setup');
  call('ept_setupRam', BigInt(HOST_BASE), BigInt(RAM));
  const cap = BigInt.asUintN(64, call<bigint>('ept_cap'));
  // A.10 as caps.ts offers it: the processor's bits the hypervisor implements.
  assert.is(cap, hwCap & (EPT_CAP_MASK | VPID_CAP_MASK), 'IA32_VMX_EPT_VPID_CAP offered to L1');
  const inRam = (gpa: bigint) => gpa >= 0n && gpa + 8n <= BigInt(RAM);
  return {
    m, cap, maxPhys: m.maxPhysAddr(),
    walk(eptp, gpa, access) {
      const kind = call<number>('ept_walk', BigInt.asUintN(64, eptp), BigInt.asUintN(64, gpa), access);
      return {
        kind,
        gpa1: BigInt.asUintN(64, call<bigint>('ept_gpa1')),
        perms: call<number>('ept_perms') >>> 0,
        size: BigInt.asUintN(64, call<bigint>('ept_pageSize')),
      };
    },
    w64(gpa, v) {
      const g = BigInt(gpa);
      if (!inRam(g)) throw new Error(`test bug: ${g.toString(16)} is outside L1's RAM`);
      m.phys.write64(HOST_BASE + Number(g), BigInt.asUintN(64, v));
    },
    r64(gpa) {
      return inRam(gpa) ? m.phys.read64(HOST_BASE + Number(gpa)) : ALL1;
    },
    clear(gpa) {
      m.phys.write(HOST_BASE + Number(gpa), new Uint8Array(4096));
    },
  };
}

// ---- the SDM walker ------------------------------------------------------------------

// 29.3.2: EPT translation with a 4-level walk. The paging structures are read
// through `read` (L1-physical; all ones outside L1's RAM). Returns what the
// SDM says of an access of kind `access` to guest-physical `gpa`.
function sdmWalk(read: (gpa: bigint) => bigint, cap: bigint, maxPhys: number, eptp: bigint, gpa: bigint, access: number): Result {
  const has = (b: bigint) => ((cap >> b) & 1n) === 1n;
  // Bits 51:MAXPHYADDR are reserved in every entry (29.3.3.1: "a bit in the
  // range 51:12 that is beyond the logical processor's physical-address width").
  const beyond = maxPhys < 52 ? ((1n << 52n) - 1n) & ~((1n << BigInt(maxPhys)) - 1n) : 0n;
  const bits = (hi: number, lo: number) => ((1n << BigInt(hi + 1)) - 1n) & ~((1n << BigInt(lo)) - 1n);
  let table = eptp & ADDR; // 29.3.2: the EPTP's bits N-1:12 locate the EPT PML4 table
  let and = 7;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = read(table + ((gpa >> shift) & 511n) * 8n);
    const rwx = Number(e & 7n);
    // 29.3.2: an entry with bits 2:0 all 0 is not present: EPT violation
    // (29.3.3.2), the AND of the bits of the entries used is 0 (28.2.1).
    if (rwx === 0) return { kind: VIOLATION, perms: 0 };
    // 29.3.3.1: write without read (010b, 110b); execute-only (100b) without
    // IA32_VMX_EPT_VPID_CAP[0].
    if (rwx === 2 || rwx === 6 || (rwx === 4 && !has(0n))) return { kind: MISCONFIG };
    let reserved = beyond;
    let leaf = false;
    const ps = (e & LARGE) !== 0n;
    if (level === 4) reserved |= bits(7, 3); // Table 29-1: PML4E bits 7:3 reserved
    else if (level === 3 || level === 2) {
      if (ps) {
        // Tables 29-2 / 29-4: bit 7 set maps a 1-GByte / 2-MByte page, which
        // only a processor that allows it (A.10 bits 17 / 16) reads as such:
        // otherwise bit 7 is a reserved bit set.
        if (!has(level === 3 ? 17n : 16n)) return { kind: MISCONFIG };
        leaf = true;
        reserved |= level === 3 ? bits(29, 12) : bits(20, 12); // the page's offset bits in the address field
      } else reserved |= bits(6, 3); // Tables 29-3 / 29-5: bits 6:3 reserved, bit 7 = 0
    } else leaf = true; // Table 29-6: PTE (bit 7 ignored)
    if ((e & reserved) !== 0n) return { kind: MISCONFIG };
    // 29.3.3.1: the last entry used (the leaf) with memory type 2, 3 or 7.
    if (leaf && [2, 3, 7].includes(Number((e >> 3n) & 7n))) return { kind: MISCONFIG };
    and &= rwx;
    if (leaf) {
      const size = 1n << shift;
      const gpa1 = (e & ADDR & ~(size - 1n)) | (gpa & (size - 1n));
      // 29.3.3.2: a read needs bit 0, a write bit 1, an instruction fetch bit 2
      // in every entry used.
      return (access & ~and) !== 0 ? { kind: VIOLATION, perms: and } : { kind: OK, gpa1, perms: and, size };
    }
    table = e & ADDR;
  }
  throw new Error('unreachable: a PTE is always a leaf');
}

function expectFor(r: Rig, eptp: bigint, gpa: bigint, access: number): Result {
  return sdmWalk((a) => r.r64(a), r.cap, r.maxPhys, eptp, gpa, access);
}

// Compare the kernel with the SDM walker; `want` (optional) pins the kind the
// case is written for, so a walker bug cannot make a case vacuous.
function agree(r: Rig, what: string, eptp: bigint, gpa: bigint, access: number, want?: number): Result {
  const k = r.walk(eptp, gpa, access);
  const s = expectFor(r, eptp, gpa, access);
  const label = `${what} (EPTP 0x${eptp.toString(16)}, gpa 0x${gpa.toString(16)}, access ${access})`;
  if (want !== undefined) assert.is(RESULT[s.kind], RESULT[want], `${label}: the case is written for a ${RESULT[want]}`);
  assert.is(RESULT[k.kind], RESULT[s.kind], `${label}: kernel ${RESULT[k.kind] ?? k.kind}, SDM ${RESULT[s.kind]}`);
  if (s.kind === OK) {
    assert.is(k.gpa1, s.gpa1, `${label}: L1-physical address`);
    assert.is(k.size, s.size, `${label}: page size`);
    assert.is(k.perms, s.perms, `${label}: permissions`);
  } else if (s.kind === VIOLATION) {
    assert.is(k.perms, s.perms, `${label}: permissions (exit qualification bits 5:3)`);
  }
  return k;
}

// ---- hand-built tables ---------------------------------------------------------------

// L1-physical pages of the tables (inside L1's RAM).
const PML4 = 0x100000n, PDPT = 0x101000n, PD = 0x102000n, PT = 0x103000n;
const PDPT2 = 0x104000n, PD2 = 0x105000n;

// gpa whose walk uses index i4/i3/i2/i1 at each level, plus offset.
const gpaOf = (i4: number, i3: number, i2: number, i1: number, off = 0n) =>
  (BigInt(i4) << 39n) | (BigInt(i3) << 30n) | (BigInt(i2) << 21n) | (BigInt(i1) << 12n) | off;

// A chain PML4[0] -> PDPT[0] -> PD[0] -> PT[*] with RWX 7 everywhere; PT maps
// 4-KiB pages at 0x1000000 + i * 4 KiB (leaf type WB). PML4[1] -> PDPT2:
// PDPT2[0] a 1-GByte page at 3 GiB, PDPT2[1] -> PD2 with 2-MByte pages.
function build(r: Rig): void {
  for (const p of [PML4, PDPT, PD, PT, PDPT2, PD2]) r.clear(p);
  r.w64(PML4, PDPT | 7n);
  r.w64(PDPT, PD | 7n);
  r.w64(PD, PT | 7n);
  for (let i = 0; i < 512; i++) r.w64(PT + BigInt(i * 8), (0x1000000n + BigInt(i) * KiB4) | WB | 7n);
  r.w64(PML4 + 8n, PDPT2 | 7n);
  r.w64(PDPT2, (3n * GiB1) | LARGE | WB | 7n);
  r.w64(PDPT2 + 8n, PD2 | 7n);
  for (let i = 0; i < 512; i++) r.w64(PD2 + BigInt(i * 8), (BigInt(i) * MiB2 + 0x40000000n) | LARGE | WB | 7n);
}

const main = rig();

test('IA32_VMX_EPT_VPID_CAP offered: the processor\'s EPT bits that the walk implements (A.10)', () => {
  assert.is(main.cap, 0x00000f0106334141n, 'execute-only, walk 4, UC, WB, 2M, 1G, INVEPT, A/D, single, all; INVVPID and its 4 types');
  assert.is(main.maxPhys, 39);
});

test('4-KiB, 2-MByte and 1-GByte translations: L1-physical address, page size, permissions', () => {
  build(main);
  const eptp = PML4 | 6n | (3n << 3n);
  for (const access of ACCESSES) {
    for (const [i1, off] of [[0, 0n], [5, 0x123n], [511, 0xfffn]] as [number, bigint][]) {
      const k = agree(main, '4-KiB page', eptp, gpaOf(0, 0, 0, i1, off), access, OK);
      assert.is(k.gpa1, 0x1000000n + BigInt(i1) * KiB4 + off);
      assert.is(k.size, KiB4);
      assert.is(k.perms, 7);
    }
    const k1 = agree(main, '1-GByte page', eptp, gpaOf(1, 0, 0, 0, 0x2345678n), access, OK);
    assert.is(k1.gpa1, 3n * GiB1 + 0x2345678n);
    assert.is(k1.size, GiB1);
    const k2 = agree(main, '2-MByte page', eptp, gpaOf(1, 1, 7, 0, 0x12345n), access, OK);
    assert.is(k2.gpa1, 7n * MiB2 + 0x40000000n + 0x12345n);
    assert.is(k2.size, MiB2);
  }
  // Only bits 47:0 of the address select entries (4-level walk); the leaf
  // maps outside L1's RAM: the translation is still what the tables say.
  agree(main, 'leaf beyond L1 RAM', eptp, gpaOf(1, 0, 0, 0, 0x3fffffffn), R, OK);
  // Ignored bits of every entry (Tables 29-1 .. 29-6): bit 8 (accessed, A/D
  // flags not enabled), 9, 10 (no mode-based execute control), 11, 62:52,
  // 63 (suppress #VE: EPT-violation #VE not offered); bit 6 (ignore PAT) and
  // bit 7 of a PTE.
  const ignored = (1n << 8n) | (1n << 9n) | (1n << 10n) | (1n << 11n) | (0x7ffn << 52n) | (1n << 63n);
  build(main);
  main.w64(PML4, PDPT | 7n | ignored);
  main.w64(PDPT, PD | 7n | ignored);
  main.w64(PD, PT | 7n | ignored);
  main.w64(PT + 8n, 0x1001000n | WB | 7n | ignored | (1n << 6n) | LARGE);
  for (const access of ACCESSES) agree(main, 'ignored bits set', eptp, gpaOf(0, 0, 0, 1, 8n), access, OK);
  main.w64(PDPT2, (3n * GiB1) | LARGE | WB | 7n | ignored | (1n << 6n));
  agree(main, '1-GByte page, ignored bits', eptp, gpaOf(1, 0, 0, 0), X, OK);
  // Leaf memory types 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB) are valid.
  for (const t of [0n, 1n, 4n, 5n, 6n]) {
    main.w64(PT + 16n, 0x1002000n | (t << 3n) | 7n);
    agree(main, `memory type ${t}`, eptp, gpaOf(0, 0, 0, 2), R, OK);
  }
  // The EPTP's memory type and walk length are not the walk's business
  // (VM entry checked them, 27.2.1.1): only bits 51:12 locate the PML4.
  agree(main, 'EPTP with other low bits', PML4 | 0x7fn, gpaOf(0, 0, 0, 3), R, OK);
});

test('not present at each level: EPT violation, permissions 0, whatever the other bits', () => {
  const eptp = PML4 | 6n | (3n << 3n);
  const junk = 0x000ffffffffffff8n | (0xfffn << 52n); // every bit but 2:0: not present wins (29.3.2)
  const cases: [string, bigint, bigint][] = [
    ['PML4E', PML4, gpaOf(0, 0, 0, 0)], ['PDPTE', PDPT, gpaOf(0, 0, 0, 0)], ['PDE', PD, gpaOf(0, 0, 0, 0)],
    ['PTE', PT, gpaOf(0, 0, 0, 0)], ['PDPTE (1G slot)', PDPT2, gpaOf(1, 0, 0, 0)], ['PDE (2M slot)', PD2 + 8n, gpaOf(1, 1, 1, 0)],
  ];
  for (const [name, at, gpa] of cases) {
    for (const v of [0n, junk, PDPT | LARGE]) {
      build(main);
      main.w64(at, v);
      for (const access of ACCESSES) {
        const k = agree(main, `${name} not present (0x${v.toString(16)})`, eptp, gpa, access, VIOLATION);
        assert.is(k.perms, 0, `${name}: no permission`);
      }
    }
  }
  // An empty PML4: every address is a violation.
  main.clear(PML4);
  agree(main, 'empty PML4', eptp, 0x12345678n, R, VIOLATION);
});

test('permissions: a read, write or fetch needs its bit in every entry used (the AND), for 4K, 2M and 1G leaves', () => {
  const eptp = PML4 | 6n | (3n << 3n);
  // Present RWX settings that are not misconfigurations (execute-only offered).
  const P = [1n, 3n, 4n, 5n, 7n];
  let n = 0;
  build(main);
  for (const a of P) for (const b of P) for (const c of P) for (const d of P) {
    main.w64(PML4, PDPT | a);
    main.w64(PDPT, PD | b);
    main.w64(PD, PT | c);
    main.w64(PT + 4n * 8n, 0x1004000n | WB | d);
    const and = Number(a & b & c & d);
    for (const access of ACCESSES) {
      const k = agree(main, `4K RWX ${a}/${b}/${c}/${d}`, eptp, gpaOf(0, 0, 0, 4, 0x10n), access);
      assert.is(k.kind, (access & and) === access ? OK : VIOLATION);
      assert.is(k.perms, and, 'AND of bits 2:0');
      n++;
    }
  }
  for (const a of P) for (const b of P) for (const c of P) {
    main.w64(PML4 + 8n, PDPT2 | a);
    main.w64(PDPT2 + 8n, PD2 | b);
    main.w64(PD2 + 9n * 8n, (9n * MiB2) | LARGE | WB | c);
    main.w64(PDPT2, (3n * GiB1) | LARGE | WB | c);
    for (const access of ACCESSES) {
      const k2 = agree(main, `2M RWX ${a}/${b}/${c}`, eptp, gpaOf(1, 1, 9, 3), access);
      assert.is(k2.perms, Number(a & b & c));
      const k1 = agree(main, `1G RWX ${a}/${c}`, eptp, gpaOf(1, 0, 5, 3), access);
      assert.is(k1.perms, Number(a & c));
      n += 2;
    }
  }
  assert.ok(n > 2000);
});

test('misconfigurations (29.3.3.1): write without read, reserved bits, memory types', () => {
  const eptp = PML4 | 6n | (3n << 3n);
  const levels: [string, bigint, bigint, bigint][] = [ // name, entry address, normal value, gpa
    ['PML4E', PML4, PDPT | 7n, gpaOf(0, 0, 0, 6)],
    ['PDPTE', PDPT, PD | 7n, gpaOf(0, 0, 0, 6)],
    ['PDE', PD, PT | 7n, gpaOf(0, 0, 0, 6)],
    ['PTE', PT + 6n * 8n, 0x1006000n | WB | 7n, gpaOf(0, 0, 0, 6)],
    ['1G PDPTE', PDPT2, (3n * GiB1) | LARGE | WB | 7n, gpaOf(1, 0, 0, 6)],
    ['2M PDE', PD2 + 8n, MiB2 | LARGE | WB | 7n, gpaOf(1, 1, 1, 6)],
  ];
  const mis = (name: string, at: bigint, v: bigint, gpa: bigint) => {
    build(main);
    main.w64(at, v);
    for (const access of ACCESSES) agree(main, name, eptp, gpa, access, MISCONFIG);
  };
  for (const [name, at, v, gpa] of levels) {
    // Bits 2:0 = 010b (write-only) or 110b (write/execute).
    mis(`${name} write-only`, at, (v & ~7n) | 2n, gpa);
    mis(`${name} write/execute`, at, (v & ~7n) | 6n, gpa);
    // Bits 51:MAXPHYADDR (39): each one.
    for (let b = 39; b <= 51; b++) mis(`${name} bit ${b} beyond MAXPHYADDR`, at, v | (1n << BigInt(b)), gpa);
    // Execute-only is offered: 100b is a valid, fetch-only entry.
    build(main);
    main.w64(at, (v & ~7n) | 4n);
    const k = agree(main, `${name} execute-only`, eptp, gpa, X, OK);
    assert.is(k.perms, 4);
    agree(main, `${name} execute-only, read`, eptp, gpa, R, VIOLATION);
  }
  // PML4E bits 7:3 (Table 29-1).
  for (let b = 3; b <= 7; b++) mis(`PML4E bit ${b}`, PML4, PDPT | 7n | (1n << BigInt(b)), gpaOf(0, 0, 0, 6));
  // Non-leaf PDPTE / PDE bits 6:3 (Tables 29-3, 29-5).
  for (let b = 3; b <= 6; b++) {
    mis(`PDPTE bit ${b}`, PDPT, PD | 7n | (1n << BigInt(b)), gpaOf(0, 0, 0, 6));
    mis(`PDE bit ${b}`, PD, PT | 7n | (1n << BigInt(b)), gpaOf(0, 0, 0, 6));
  }
  // Large pages: the address field's bits below the page size are reserved
  // (Table 29-2: 29:12 of a 1-GByte PDPTE; Table 29-4: 20:12 of a 2-MByte PDE).
  for (let b = 12; b <= 29; b++) mis(`1G PDPTE bit ${b}`, PDPT2, (3n * GiB1) | LARGE | WB | 7n | (1n << BigInt(b)), gpaOf(1, 0, 0, 6));
  for (let b = 12; b <= 20; b++) mis(`2M PDE bit ${b}`, PD2 + 8n, MiB2 | LARGE | WB | 7n | (1n << BigInt(b)), gpaOf(1, 1, 1, 6));
  // Leaf memory types 2, 3, 7 (reserved) for each page size.
  for (const t of [2n, 3n, 7n]) {
    mis(`PTE memory type ${t}`, PT + 6n * 8n, 0x1006000n | (t << 3n) | 7n, gpaOf(0, 0, 0, 6));
    mis(`2M PDE memory type ${t}`, PD2 + 8n, MiB2 | LARGE | (t << 3n) | 7n, gpaOf(1, 1, 1, 6));
    mis(`1G PDPTE memory type ${t}`, PDPT2, (3n * GiB1) | LARGE | (t << 3n) | 7n, gpaOf(1, 0, 0, 6));
  }
  // A misconfiguration below an entry that would already deny the access:
  // misconfiguration, not violation (29.3.3.2: violations are only for
  // translations that do not cause a misconfiguration).
  build(main);
  main.w64(PML4, PDPT | 1n);
  main.w64(PT + 6n * 8n, 0x1006000n | (2n << 3n) | 7n);
  agree(main, 'read-only PML4E, bad PTE memory type, write', eptp, gpaOf(0, 0, 0, 6), W, MISCONFIG);
  // A misconfigured entry that is not used (another index) does not matter.
  build(main);
  main.w64(PT + 7n * 8n, 0x1007000n | (7n << 3n) | 2n);
  agree(main, 'misconfigured neighbour', eptp, gpaOf(0, 0, 0, 6), R, OK);
});

test('features not offered: execute-only, 1-GByte and 2-MByte pages become misconfigurations (A.10)', () => {
  const eptp = PML4 | 6n | (3n << 3n);
  const noXo = rig({ hwCap: TIGERLAKE_EPT_CAP & ~1n });
  assert.is(noXo.cap & 1n, 0n);
  for (const [name, at, v, gpa] of [
    ['PML4E', PML4, PDPT, gpaOf(0, 0, 0, 6)], ['PDPTE', PDPT, PD, gpaOf(0, 0, 0, 6)], ['PDE', PD, PT, gpaOf(0, 0, 0, 6)],
    ['PTE', PT + 6n * 8n, 0x1006000n | WB, gpaOf(0, 0, 0, 6)], ['1G PDPTE', PDPT2, 3n * GiB1 | LARGE | WB, gpaOf(1, 0, 0, 0)],
  ] as [string, bigint, bigint, bigint][]) {
    build(noXo);
    noXo.w64(at, v | 4n);
    for (const access of ACCESSES) agree(noXo, `${name} execute-only without IA32_VMX_EPT_VPID_CAP[0]`, eptp, gpa, access, MISCONFIG);
    noXo.w64(at, v | 5n);
    agree(noXo, `${name} read/execute`, eptp, gpa, X, OK);
  }
  const no1g = rig({ hwCap: TIGERLAKE_EPT_CAP & ~(1n << 17n) });
  build(no1g);
  for (const access of ACCESSES) agree(no1g, '1-GByte page not offered', eptp, gpaOf(1, 0, 3, 3), access, MISCONFIG);
  agree(no1g, '2-MByte pages still offered', eptp, gpaOf(1, 1, 3, 3), R, OK);
  agree(no1g, '4-KiB pages', eptp, gpaOf(0, 0, 0, 3), R, OK);
  const no2m = rig({ hwCap: TIGERLAKE_EPT_CAP & ~(1n << 16n) });
  build(no2m);
  for (const access of ACCESSES) agree(no2m, '2-MByte page not offered', eptp, gpaOf(1, 1, 3, 3), access, MISCONFIG);
  agree(no2m, '1-GByte pages still offered', eptp, gpaOf(1, 0, 3, 3), W, OK);
});

test('another physical-address width (46 bits): reserved bits 51:46 only', () => {
  const r46 = rig({ maxPhys: 46 });
  assert.is(r46.maxPhys, 46);
  const eptp = PML4 | 6n | (3n << 3n);
  build(r46);
  r46.w64(PT + 6n * 8n, (1n << 45n) | 0x6000n | WB | 7n);
  const k = agree(r46, 'leaf at bit 45', eptp, gpaOf(0, 0, 0, 6), R, OK);
  assert.is(k.gpa1, (1n << 45n) | 0x6000n);
  for (let b = 46; b <= 51; b++) {
    r46.w64(PT + 6n * 8n, (1n << BigInt(b)) | 0x6000n | WB | 7n);
    agree(r46, `PTE bit ${b}`, eptp, gpaOf(0, 0, 0, 6), R, MISCONFIG);
  }
});

test('paging structures outside L1\'s RAM: a misconfiguration, never a read of other memory, never a trap', () => {
  const eptp = (root: bigint) => root | 6n | (3n << 3n);
  const outside = [BigInt(RAM), BigInt(RAM) + 0x1000n, 0x7fff000n, 0xfee00000n, (1n << 39n) - 4096n, BigInt(HOST_BASE + RAM)];
  // Host memory right after L1's RAM (guest-physical RAM would be there if
  // the RAM check were off by a page) holds valid-looking entries: they
  // must never be read.
  for (let i = 0; i < 512; i++) main.m.phys.write64(HOST_BASE + RAM + i * 8, PDPT | 7n);
  for (const o of outside) {
    build(main);
    for (const access of ACCESSES) agree(main, `PML4 at 0x${o.toString(16)}`, eptp(o), gpaOf(0, 0, 0, 1), access, MISCONFIG);
    main.w64(PML4, o | 7n);
    agree(main, `PDPT at 0x${o.toString(16)}`, eptp(PML4), gpaOf(0, 0, 0, 1), R, MISCONFIG);
    build(main);
    main.w64(PDPT, o | 7n);
    agree(main, `PD at 0x${o.toString(16)}`, eptp(PML4), gpaOf(0, 0, 0, 1), W, MISCONFIG);
    build(main);
    main.w64(PD, o | 7n);
    agree(main, `PT at 0x${o.toString(16)}`, eptp(PML4), gpaOf(0, 0, 0, 1), X, MISCONFIG);
  }
  // The last page of L1's RAM is RAM: a table there works.
  const last = BigInt(RAM) - 4096n;
  build(main);
  main.clear(last);
  main.w64(last + 511n * 8n, 0x1234000n | WB | 7n);
  main.w64(PD, last | 7n);
  const k = agree(main, 'PT in the last page of RAM', eptp(PML4), gpaOf(0, 0, 0, 511, 0x10n), R, OK);
  assert.is(k.gpa1, 0x1234010n);
  // An EPTP whose address bits are all ones (bits 51:12).
  agree(main, 'EPTP all ones', ALL1, 0n, R, MISCONFIG);
});

test('loops: an entry that points back at its own table is walked at most four levels', () => {
  const eptp = PML4 | 6n | (3n << 3n);
  main.clear(PML4);
  // PML4[0] -> PML4 (as PDPT) -> PML4 (as PD) -> PML4 (as PT): the PTE is
  // PML4[0] itself, a leaf with memory type 0 mapping page PML4.
  main.w64(PML4, PML4 | 7n);
  const k = agree(main, 'self-referencing table', eptp, 0x123n, R, OK);
  assert.is(k.gpa1, PML4 | 0x123n);
});

// ---- random tables ----------------------------------------------------------------

// (prng.ts: a fixed seed gives the same tables every run.)

const FUZZ_TABLES = 60, FUZZ_WALKS = 400;
test(`random tables: ${FUZZ_TABLES} sets x ${FUZZ_WALKS} walks, never a trap, always one of the three results, as the SDM walker says`, () => {
  const rnd = prng(20251122n);
  const rigs = [main, rig({ hwCap: TIGERLAKE_EPT_CAP & ~1n & ~(1n << 17n) })];
  const pages = Array.from({ length: 8 }, (_, i) => 0x200000n + BigInt(i) * 4096n);
  const counts = [0, 0, 0];
  for (let t = 0; t < FUZZ_TABLES; t++) {
    const r = rnd.pick(rigs);
    // Few entries differ per table, so the walks reach the lower levels.
    for (const p of pages) r.clear(p);
    const entry = (): bigint => {
      const target = rnd.int(10) === 0 ? rnd.pick([BigInt(RAM), 0xfee00000n, rnd.next() & ADDR, BigInt(RAM) - 4096n]) : rnd.pick(pages);
      let e = target | BigInt(rnd.int(4) === 0 ? rnd.int(8) : rnd.pick([7, 7, 7, 5, 3, 1, 4]));
      switch (rnd.int(24)) {
        case 0: e |= LARGE | (BigInt(rnd.int(8)) << 3n); break; // a large page, any memory type
        case 1: e |= BigInt(rnd.int(8)) << 3n; break; // memory type / reserved bits 5:3
        case 2: case 3: e ^= 1n << BigInt(rnd.int(64)); break; // one bit anywhere
        case 4: e = rnd.next(); break;
        case 5: case 6: e |= LARGE | WB; break; // 1G / 2M page (reserved in a PML4E)
        case 7: e |= WB; break; // a leaf's type (reserved bits in a non-leaf)
        default: break; // memory type UC at a leaf, a clean non-leaf entry
      }
      return e;
    };
    for (const p of pages) {
      const fill = rnd.int(3) === 0 ? 512 : 4; // mostly the first few slots
      for (let i = 0; i < fill; i++) r.w64(p + BigInt(i) * 8n, entry());
    }
    for (let n = 0; n < FUZZ_WALKS; n++) {
      const root = rnd.int(12) === 0 ? rnd.next() : rnd.pick(pages) | BigInt(rnd.int(0x1000));
      const idx = () => BigInt(rnd.int(8) === 0 ? rnd.int(512) : rnd.int(4));
      const gpa = rnd.int(10) === 0 ? rnd.next() & ((1n << 48n) - 1n)
        : (idx() << 39n) | (idx() << 30n) | (idx() << 21n) | (idx() << 12n) | BigInt(rnd.int(4096));
      const access = rnd.pick(ACCESSES);
      const k = agree(r, `random table ${t} walk ${n}`, root, gpa, access);
      assert.ok(k.kind === OK || k.kind === VIOLATION || k.kind === MISCONFIG, `result ${k.kind}`);
      counts[k.kind]++;
    }
  }
  if (process.env.HV_EPT_VERBOSE) console.log(`translation/violation/misconfiguration: ${counts.join('/')}`);
  for (let c = 0; c < 3; c++) assert.ok(counts[c] >= 300, `${RESULT[c]}: ${counts[c]} walks (${counts.join('/')})`);
});

test.run();
