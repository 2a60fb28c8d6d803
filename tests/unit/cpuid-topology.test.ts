// The processor topology a guest's CPUID describes (kernel/vm/exit/cpuid.ts
// idSpan and leaves 1, 4, 0BH): the N vCPUs of a vcpus=N guest are the N
// cores of one package, one thread each, APIC ID = core number (SDM Vol. 2A
// CPUID 01H EBX[23:16] and EDX[28] HTT, 04H EAX[31:26] and [25:14], 0BH
// levels SMT and Core; Vol. 3A 9.9.1 "Hierarchical Mapping of Shared
// Resources": package ID = APIC ID >> the Core level's shift). The
// processor's own leaves (Bochs with one CPU: one logical processor) would
// make every vCPU a package of its own, and Linux then calibrates the delay
// loop again on each (calibrate_delay_is_known finds no sibling).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as V from '../model/vmx-consts.ts';
import { tigerlake } from '../model/index.ts';
import { play, RAX, RBX, RCX, RDX, type Exit } from './guest-script.ts';

type Regs = [number, number, number, number];
const cpuid = (leaf: number, sub: number): Exit =>
  ({ reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: BigInt(leaf), [RCX]: BigInt(sub) } });

// Bochs tigerlake's leaf 4: L1d, L1i, L2 (each "shared by 2 threads", 8
// cores), L3 ("shared by 16"), then type 0.
const BOCHS_LEAF4: Regs[] = [
  [0x1c004121, 0x02c0003f, 0x3f, 0],
  [0x1c004122, 0x01c0003f, 0x3f, 0],
  [0x1c004143, 0x04c0003f, 0x3ff, 0],
  [0x1c03c163, 0x01c0003f, 0x3fff, 4],
];

// What vCPU 0 of a vcpus=n guest reads for each (leaf, sub-leaf).
function read(n: number, queries: [number, number][]): Regs[] {
  const m = tigerlake();
  m.cpuid.set(4, (sub: number) => BOCHS_LEAF4[sub] ?? [0, 0, 0, 0]);
  const got: Regs[] = [];
  const steps = queries.map(([leaf, sub]) => ({
    exit: cpuid(leaf, sub),
    check: (mm: typeof m) => { got.push([RAX, RBX, RCX, RDX].map((x) => Number(mm.guestReg(x))) as Regs); },
  }));
  const r = play(steps, `vcpus=${n}`, { machine: m });
  assert.equal(r.faults, []);
  assert.is(got.length, queries.length, r.console);
  return got;
}

for (const [n, span, shift] of [[1, 1, 0], [2, 2, 1], [3, 4, 2], [8, 8, 3]]) {
  test(`vcpus=${n}: one package of ${n} core(s), ID span ${span}`, () => {
    const [l1, c0, c1, c2, c3, c4, b0, b1, b2] = read(n, [
      [1, 0], [4, 0], [4, 1], [4, 2], [4, 3], [4, 4], [0xb, 0], [0xb, 1], [0xb, 2],
    ]);
    // Leaf 1: EBX[7:0] brand and [15:8] CLFLUSH size kept, [23:16] the span,
    // [31:24] vCPU 0's initial APIC ID; HTT says [23:16] is valid.
    assert.is(l1[1] & 0xffff, 0x0800, 'leaf 1 EBX[15:0] as the processor has it');
    assert.is((l1[1] >>> 16) & 0xff, span, 'leaf 1 EBX[23:16]');
    assert.is(l1[1] >>> 24, 0, 'leaf 1 EBX[31:24]: APIC ID 0');
    if (n > 1) assert.is((l1[3] >>> 28) & 1, 1, 'leaf 1 EDX[28] HTT');
    // Leaf 4: L1 and L2 per core, L3 shared by the package; [13:0] and EBX-EDX kept.
    for (const [i, c] of [c0, c1, c2].entries()) {
      assert.is(c[0] & 0x3fff, BOCHS_LEAF4[i][0] & 0x3fff, `leaf 4.${i} EAX[13:0]`);
      assert.is((c[0] >>> 14) & 0xfff, 0, `leaf 4.${i}: one logical processor per cache`);
      assert.is(c[0] >>> 26, span - 1, `leaf 4.${i} EAX[31:26]`);
      assert.equal(c.slice(1), BOCHS_LEAF4[i].slice(1), `leaf 4.${i} EBX-EDX`);
    }
    assert.is((c3[0] >>> 14) & 0xfff, span - 1, 'leaf 4.3 (L3): shared by the package');
    assert.is(c3[0] >>> 26, span - 1, 'leaf 4.3 EAX[31:26]');
    assert.equal(c4, [0, 0, 0, 0], 'leaf 4.4: no more caches');
    // Leaf 0BH: SMT (shift 0, 1), Core (shift to the package, n), invalid.
    assert.equal(b0, [0, 1, 0x100, 0], 'leaf 0BH.0: SMT level');
    assert.equal(b1, [shift, n, 0x201, 0], 'leaf 0BH.1: Core level');
    assert.equal(b2, [0, 0, 2, 0], 'leaf 0BH.2: invalid level');
  });
}

test.run();
