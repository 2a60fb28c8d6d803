// The RAM snapshot (kernel/snapshot/ram.ts, issue 10 item 6) on the model,
// through kernel.wasm's ramsnap_* hooks (kernel/hooks/ramsnap.ts). The model
// runs no guest code, so the test plays the processor: a guest write is a
// write to model memory plus what SDM Vol. 3C 29.3.5 says the processor
// does with EPT accessed/dirty flags enabled (EPTP bit 6): the accessed
// flag (bit 8) set in every EPT entry the translation uses, the dirty flag
// (bit 9) in the leaf; a read sets the accessed flags only. With write
// protection (no EPTP bit 6) a write to a leaf without write permission is
// an EPT violation, which the test hands to the hypervisor's handler
// (writeFault) before writing. Everything is checked against the test's own
// record of the RAM's content at each take() and of which pages were
// written since: what restore() must copy back, and nothing else.
//
//   SDM Vol. 3C 29.3.5    accessed and dirty flags for EPT; EPTP bit 6
//   SDM Vol. 3C 25.6.11   the EPTP (memory type 6, walk length 4 - 1, bit 6)
//   SDM Vol. 3C 29.3.2    the walk (Tables 29-1 .. 29-6: 4-KiB leaves)
//   SDM Vol. 3C 29.4.3.4  after clearing a flag or a permission: INVEPT
//   SDM Vol. 3D A.10      IA32_VMX_EPT_VPID_CAP bit 21 (accessed/dirty flags),
//                         25 and 26 (INVEPT single-/all-context)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, buildBootInfo, type Machine } from '../model/index.ts';
import * as C from '../model/vmx-consts.ts';
import { prng } from './prng.ts';

const MiB = 0x100000;
const PAGE = 4096;
const ADDR = 0x000ffffffffff000n;
const R = 1n, W = 2n, X = 4n;
const A = 1n << 8n, D = 1n << 9n;
const LARGE = 1n << 7n;
const TIGERLAKE_EPT_CAP = 0x00000f0106334141n; // tests/model/presets.ts

interface Walk { pml4e: number; pdpte: number; pde: number; leaf: number; value: bigint; large: boolean }

function rig(opts: { bytes?: number; wp?: boolean; cap?: bigint } = {}) {
  const bytes = opts.bytes ?? 8 * MiB;
  const m = tigerlake({ msrs: { [C.MSR_IA32_VMX_EPT_VPID_CAP]: opts.cap ?? TIGERLAKE_EPT_CAP } });
  const layout = buildBootInfo(m, { mmap: [{ base: 0, length: 0x9fc00, type: 1 }, { base: MiB, length: 63 * MiB, type: 1 }] });
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  assert.is(call('boot_parse', layout.bootinfo), 1);
  call('pages_init');
  call('ramsnap_setup');
  // INVEPT needs VMX operation, which kmain would have entered (VMXON):
  // the model is put there directly, and every INVEPT is recorded.
  m.vmx.inVmxOperation = true;
  const invepts: [number, bigint][] = [];
  const invept = m.vmx.invept.bind(m.vmx);
  m.vmx.invept = (type: number, eptp: bigint) => {
    invepts.push([type, eptp]);
    return invept(type, eptp);
  };
  const root = BigInt.asUintN(64, call<bigint>('ramsnap_create', BigInt(bytes), opts.wp ? 1 : 0));
  assert.ok(root !== 0n, 'ramsnap_create');
  const ram = Number(BigInt.asUintN(64, call<bigint>('ramsnap_ram')));
  const copy = Number(BigInt.asUintN(64, call<bigint>('ramsnap_copy')));
  const eptp = BigInt.asUintN(64, call<bigint>('ramsnap_eptp'));
  const ad = call<number>('ramsnap_accessedDirty') === 1;
  const pages = bytes / PAGE;

  // 29.3.2: the walk of guest-physical gpa from the root.
  const walk = (gpa: number, top = root): Walk => {
    const g = BigInt(gpa);
    const ent = (t: bigint, shift: bigint) => Number(t + ((g >> shift) & 511n) * 8n);
    const pml4e = ent(top, 39n);
    const pdpte = ent(m.phys.read64(pml4e) & ADDR, 30n);
    const pde = ent(m.phys.read64(pdpte) & ADDR, 21n);
    const pdeValue = m.phys.read64(pde);
    if (pdeValue & LARGE) return { pml4e, pdpte, pde, leaf: pde, value: pdeValue, large: true };
    const leaf = ent(pdeValue & ADDR, 12n);
    return { pml4e, pdpte, pde, leaf, value: m.phys.read64(leaf), large: false };
  };
  const setBits = (pa: number, bits: bigint) => m.phys.write64(pa, m.phys.read64(pa) | bits);
  const page = (pa: number) => m.phys.read(pa, PAGE);

  // The record the checks use: the RAM's content at the last take(), and
  // the pages written since the last take()/restore().
  let saved: Uint8Array[] = [];
  const written = new Set<number>();
  const guestWrite = (gpa: number, data: Uint8Array) => {
    const p = Math.floor(gpa / PAGE);
    const w = walk(gpa);
    if (!ad && (w.value & W) === 0n) {
      // An EPT violation: the hypervisor's handler must take it.
      assert.ok(call<number>('ramsnap_writeFault', BigInt(gpa)) === 1, `write fault at ${gpa.toString(16)} taken`);
      assert.ok((walk(gpa).value & W) !== 0n, 'write permission given back');
    }
    if (ad) {
      for (const e of [w.pml4e, w.pdpte, w.pde]) setBits(e, A);
      setBits(w.leaf, A | D);
    }
    m.phys.write(ram + gpa, data);
    written.add(p);
  };
  const guestRead = (gpa: number) => {
    const w = walk(gpa);
    if (ad) for (const e of [w.pml4e, w.pdpte, w.pde, w.leaf]) setBits(e, A);
    return m.phys.read(ram + gpa, 8);
  };
  const take = () => {
    invepts.length = 0;
    const n = call<number>('ramsnap_take');
    saved = Array.from({ length: pages }, (_, p) => page(ram + p * PAGE));
    written.clear();
    return n;
  };
  const restore = () => {
    invepts.length = 0;
    const n = call<number>('ramsnap_restore');
    written.clear();
    return n;
  };
  // After a take() or restore(): the RAM as at the last take(), every leaf
  // armed, every RAM PDE's accessed flag clear, INVEPT for this EPTP.
  const checkArmed = (what: string) => {
    for (let p = 0; p < pages; p++) {
      if (!Buffer.from(page(ram + p * PAGE)).equals(Buffer.from(saved[p]))) assert.unreachable(`${what}: page ${p} differs from the snapshot`);
      const w = walk(p * PAGE);
      assert.not.ok(w.large, `${what}: page ${p} has a 4-KiB leaf`);
      if (w.value & D) assert.unreachable(`${what}: page ${p}'s dirty flag still set`);
      if (!ad && (w.value & W)) assert.unreachable(`${what}: page ${p} still writable`);
      if ((w.value & (R | X)) !== (R | X)) assert.unreachable(`${what}: page ${p} lost read or execute`);
      if (m.phys.read64(w.pde) & A) assert.unreachable(`${what}: the PDE above page ${p} still accessed`);
    }
    assert.equal(invepts, [[C.INVEPT_TYPE_SINGLE_CONTEXT, eptp]], `${what}: INVEPT single-context for the EPTP`);
  };
  return { m, k, call, root, ram, copy, eptp, ad, pages, bytes, walk, guestWrite, guestRead, take, restore, checkArmed, written, invepts, page };
}

const fill = (rng: ReturnType<typeof prng>, n: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 8) {
    const v = rng.next();
    for (let j = 0; j < 8 && i + j < n; j++) b[i + j] = Number((v >> BigInt(8 * j)) & 0xffn);
  }
  return b;
};

test('set-up: 4-KiB leaves mapping the same RAM, EPTP with the accessed/dirty bit when the processor has it', () => {
  const r = rig();
  assert.ok(r.ad, 'tigerlake has IA32_VMX_EPT_VPID_CAP bit 21');
  // 25.6.11: WB (6), walk length 4 (3 << 3), bit 6, the root.
  assert.is(r.eptp, r.root | 0x5en);
  assert.is(r.call<number>('ramsnap_tablePages'), 4, '8 MiB: four page tables for 4-KiB leaves');
  for (let p = 0; p < r.pages; p++) {
    const w = r.walk(p * PAGE);
    assert.not.ok(w.large);
    assert.is(w.value & ADDR, BigInt(r.ram + p * PAGE), `page ${p} maps its RAM page`);
    assert.is(w.value & 0x7fn, 0x37n, `page ${p}: RWX, WB`);
  }
  // Beyond the RAM nothing is mapped.
  assert.is(r.m.phys.read64(Number(r.walk(0).pdpte)) & LARGE, 0n);
  const pd = Number(r.m.phys.read64(r.walk(0).pdpte) & ADDR);
  assert.is(r.m.phys.read64(pd + 4 * 8), 0n, 'PDE of [8 MiB, 10 MiB) absent');
  assert.is(r.call<number>('ramsnap_restore'), 0, 'restore before take copies nothing');
});

test('EPT accessed/dirty flags: restore copies back exactly the pages the processor marked dirty', () => {
  const r = rig();
  const rng = prng(1n);
  r.m.phys.write(r.ram, fill(rng, r.bytes));
  // The loader's writes (through guestmem) marked pages before the first take.
  r.call('ramsnap_hvWrite', 1, 0x9000n, 8n);
  assert.is(r.take(), r.pages, 'the first take copies every page');
  assert.ok(Buffer.from(r.m.phys.read(r.copy, r.bytes)).equals(Buffer.from(r.m.phys.read(r.ram, r.bytes))), 'copy = RAM');
  r.checkArmed('first take');
  assert.is(r.call<number>('ramsnap_dirtyCount'), 0);

  // Nothing written: nothing copied (reads only set accessed flags).
  for (let i = 0; i < 20; i++) r.guestRead(rng.int(r.pages) * PAGE);
  assert.is(r.call<number>('ramsnap_dirtyCount'), 0);
  assert.is(r.restore(), 0);
  r.checkArmed('restore of nothing');

  for (const n of [1, 16, 300, 2048]) {
    const set = new Set<number>();
    while (set.size < n) set.add(rng.int(r.pages));
    for (const p of set) r.guestWrite(p * PAGE + rng.int(PAGE / 8) * 8, fill(rng, 8));
    // Writing a page twice counts once.
    for (const p of [...set].slice(0, 5)) r.guestWrite(p * PAGE, fill(rng, 16));
    assert.is(r.call<number>('ramsnap_dirtyCount'), n, `${n} pages dirty`);
    assert.is(r.restore(), n, `${n} pages copied back`);
    r.checkArmed(`restore of ${n} pages`);
  }
});

test('the hypervisor\'s own writes to guest RAM (guestmem) are recorded and restored', () => {
  for (const wp of [false, true]) {
    const r = rig({ wp });
    r.take();
    // write8, write64 across a page boundary, setBits64, zero over three
    // pages, copyIn of 5000 bytes: 1 + 2 + 1 + 3 + 2 distinct pages.
    r.call('ramsnap_hvWrite', 0, 0x1000n, 1n);
    r.call('ramsnap_hvWrite', 1, 0x2ffcn, 8n);
    r.call('ramsnap_hvWrite', 2, 0x5008n, 8n);
    r.call('ramsnap_hvWrite', 3, 0x100800n, 3n * 4096n - 0x800n);
    r.call('ramsnap_hvWrite', 4, 0x7ff000n - 904n, 5000n);
    const expect = [0x1, 0x2, 0x3, 0x5, 0x100, 0x101, 0x102, 0x7fe, 0x7ff];
    for (const p of expect) {
      assert.ok((r.walk(p * PAGE).value & D) !== 0n, `page ${p.toString(16)} marked dirty (wp=${wp})`);
      assert.ok((r.m.phys.read64(r.walk(p * PAGE).pde) & A) !== 0n, `its PDE marked accessed`);
    }
    assert.is(r.call<number>('ramsnap_dirtyCount'), expect.length);
    assert.is(r.restore(), expect.length);
    r.checkArmed(`hypervisor writes (wp=${wp})`);
  }
});

test('a later take copies only what changed since, and restore returns to it', () => {
  const r = rig();
  const rng = prng(2n);
  r.take();
  for (const p of [3, 4, 1000]) r.guestWrite(p * PAGE, fill(rng, 64));
  assert.is(r.take(), 3, 'second take: three pages');
  r.checkArmed('second take');
  assert.ok(Buffer.from(r.page(r.copy + 1000 * PAGE)).equals(Buffer.from(r.page(r.ram + 1000 * PAGE))), 'the copy has the new content');
  for (const p of [4, 5, 2047]) r.guestWrite(p * PAGE + 8, fill(rng, 64));
  assert.is(r.restore(), 3);
  r.checkArmed('restore after the second take');
});

test('write protection: every leaf read-only after take, the first write to a page faults once, restore copies those', () => {
  // The fallback both where the processor lacks the flags and when asked for.
  for (const o of [{ cap: TIGERLAKE_EPT_CAP & ~(1n << 21n) }, { wp: true }]) {
    const r = rig(o);
    const rng = prng(3n);
    assert.not.ok(r.ad);
    assert.is(r.eptp, r.root | 0x1en, 'EPTP without bit 6');
    r.m.phys.write(r.ram, fill(rng, r.bytes));
    assert.is(r.take(), r.pages);
    r.checkArmed('take');
    // Not this RAM's: the handler goes on to its other cases.
    assert.is(r.call<number>('ramsnap_writeFault', BigInt(r.bytes)), 0);
    assert.is(r.call<number>('ramsnap_writeFault', 0xfee00000n), 0);
    for (let round = 0; round < 4; round++) {
      const n = [0, 1, 16, 700][round];
      const set = new Set<number>();
      while (set.size < n) set.add(rng.int(r.pages));
      for (const p of set) r.guestWrite(p * PAGE + 16, fill(rng, 32));
      // A second fault for a page already writable (a stale cached
      // translation) is resumed and changes nothing.
      if (n > 0) {
        const p = [...set][0];
        assert.is(r.call<number>('ramsnap_writeFault', BigInt(p * PAGE)), 1);
      }
      assert.is(r.call<number>('ramsnap_dirtyCount'), n);
      assert.is(r.restore(), n, `round ${round}: ${n} pages`);
      r.checkArmed(`round ${round}`);
    }
  }
});

test('with EPT accessed/dirty flags a write fault is never the snapshot\'s', () => {
  const r = rig();
  r.take();
  assert.is(r.call<number>('ramsnap_writeFault', 0x3000n), 0);
  assert.is(r.walk(0x3000).value & D, 0n);
});

test('RAM not a multiple of 2 MiB: the tail keeps its 4-KiB leaves, the last page is tracked', () => {
  const bytes = 6 * MiB + 3 * PAGE;
  for (const wp of [false, true]) {
    const r = rig({ bytes, wp });
    assert.is(r.call<number>('ramsnap_tablePages'), 3, 'three 2-MiB leaves split; the tail had its table');
    assert.is(r.take(), bytes / PAGE);
    r.guestWrite(bytes - 8, new Uint8Array(8).fill(0x42));
    r.guestWrite(6 * MiB - PAGE, new Uint8Array(8).fill(0x43));
    assert.is(r.restore(), 2);
    r.checkArmed(`tail (wp=${wp})`);
  }
});

test('take and restore take write access away from shadow EPT leaves (L2 writes past L0\'s EPT)', () => {
  for (const wp of [false, true]) {
    const r = rig({ wp });
    r.take();
    // L1's EPTP for a shadow root, and a leaf mapping an L2 page to L1's page 7.
    const eptp12 = 0x200000n | 0x1en;
    const shadowRoot = BigInt.asUintN(64, r.call<bigint>('ramsnap_shadowFill', eptp12, 0x40000000n, BigInt(r.ram + 7 * PAGE)));
    assert.ok(shadowRoot !== 0n);
    assert.is(r.walk(0x40000000, shadowRoot).value & 7n, 7n, 'filled RWX');
    for (const op of ['take', 'restore'] as const) {
      if (op === 'take') r.take();
      else r.restore();
      const leaf = r.walk(0x40000000, shadowRoot);
      assert.is(leaf.value & 7n, 5n, `${op}: shadow leaf R-X`);
      assert.is(leaf.value & ADDR, BigInt(r.ram + 7 * PAGE), `${op}: still maps the page`);
      assert.ok(r.invepts.some(([t, e]) => t === C.INVEPT_TYPE_SINGLE_CONTEXT && (e & ADDR) === shadowRoot), `${op}: INVEPT for the shadow root`);
      // Fill again with write access for the next round.
      r.call('ramsnap_shadowFill', eptp12, 0x40000000n, BigInt(r.ram + 7 * PAGE));
    }
  }
});

test('random rounds: writes by the guest and by the hypervisor, takes and restores, against the record', () => {
  for (const wp of [false, true]) {
    const r = rig({ wp });
    const rng = prng(wp ? 5n : 4n);
    r.m.phys.write(r.ram, fill(rng, r.bytes));
    r.take();
    for (let round = 0; round < 60; round++) {
      const n = rng.pick([0, 1, 2, 7, 33, 128]);
      for (let i = 0; i < n; i++) {
        const gpa = rng.int(r.pages) * PAGE + rng.int(PAGE / 8) * 8;
        if (rng.int(4) === 0) {
          r.call('ramsnap_hvWrite', 1, BigInt(gpa), 8n);
          r.written.add(Math.floor(gpa / PAGE));
        } else r.guestWrite(gpa, fill(rng, 8));
      }
      const expect = r.written.size;
      assert.is(r.call<number>('ramsnap_dirtyCount'), expect, `round ${round}: dirty count`);
      if (rng.int(3) === 0) {
        assert.is(r.take(), expect, `round ${round}: take`);
        r.checkArmed(`round ${round} take`);
      } else {
        assert.is(r.restore(), expect, `round ${round}: restore`);
        r.checkArmed(`round ${round} restore`);
      }
    }
  }
});

test.run();
