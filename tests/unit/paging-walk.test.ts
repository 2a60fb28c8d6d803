// The guest's page walk (kernel/vm/paging.ts) as MMIO emulation uses it:
// the instruction behind an EPT violation on the local APIC page is read at
// the guest's RIP through the guest's own paging, as the instruction fetch
// the processor has just made (kernel/vm/decode.ts). The data accesses of
// the same walk (the memory operands of VMX instructions: supervisor reads
// and writes, CR0.WP, SMAP, PAE, reserved bits, accessed and dirty flags)
// are tested in nested-insn.test.ts.
//
//   SDM Vol. 3A 4.5    4-level and 5-level paging: with CR4.LA57 the table
//                      at CR3 is a PML5 table, indexed by linear bits 56:48
//   SDM Vol. 3A 4.6.1  rights of instruction fetches: at CPL 3 (user mode)
//                      U/S = 1 in every entry; XD = 1 in any entry (EFER.NXE)
//                      forbids fetching; with CR4.SMEP a supervisor-mode
//                      fetch from a user-mode address is forbidden
//   SDM Vol. 3A 4.8    accessed flags: the processor set them when it
//                      fetched; the hypervisor reading again sets none
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as V from '../model/vmx-consts.ts';
import type { Machine } from '../model/index.ts';
import { play, guestHpa, RAX, RBX, type Exit } from './guest-script.ts';

const T = 0x800000; // paging structures: PML5, PML4, PDPT, PD, PT (one page each)
const [PML5, PML4, PDPT, PD, PT] = [0, 1, 2, 3, 4].map((i) => T + i * 0x1000);
const CODE = 0x810000; // the code page: MOV EAX, [RBX] (8B 03) at offset 0
const LIN4 = 0x401000n; // 4-level: PML4 0, PDPT 0, PD 2, PT 1
const LIN5 = (1n << 48n) | LIN4; // 5-level: PML5 1, then as LIN4 (not canonical with 4 levels)
const APIC_VERSION = 0xfee00030n;

const P = 1n, RW = 2n, US = 4n, A = 0x20n, XD = 1n << 63n;
const AR_CODE64 = 0xa09bn, AR_DATA = 0xc093n, DPL3 = 3n << 5n;
const CR4_PAE = BigInt(V.X86_CR4_PAE), CR4_LA57 = BigInt(V.X86_CR4_LA57), CR4_SMEP = BigInt(V.X86_CR4_SMEP);
// 64-bit mode: PG WP NE ET PE; EFER LME LMA NXE.
const LONG: Record<number, bigint> = {
  [V.GUEST_CR0]: 0x80010031n, [V.CR0_READ_SHADOW]: 0x80010031n,
  [V.GUEST_CR4]: CR4_PAE, [V.CR4_READ_SHADOW]: CR4_PAE,
  [V.GUEST_CR3]: BigInt(PML4), [V.GUEST_IA32_EFER]: 0xd00n,
  [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA,
};
const LA57 = { ...LONG, [V.GUEST_CR4]: CR4_PAE | CR4_LA57, [V.CR4_READ_SHADOW]: CR4_PAE | CR4_LA57, [V.GUEST_CR3]: BigInt(PML5) };
const CPL3 = { [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64 | DPL3, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA | DPL3 };

// The paging structures, every entry with `flags` (accessed flags clear);
// the code page's entry with `leaf` instead.
function build(m: Machine, flags: bigint, leaf: bigint = flags): void {
  const w64 = (gpa: number, v: bigint) => m.phys.write64(guestHpa(m, gpa), BigInt.asUintN(64, v));
  for (const t of [PML5, PML4, PDPT, PD, PT]) m.phys.write(guestHpa(m, t), new Uint8Array(4096));
  w64(PML5 + 1 * 8, BigInt(PML4) | flags);
  w64(PML4, BigInt(PDPT) | flags);
  w64(PDPT, BigInt(PD) | flags);
  w64(PD + 2 * 8, BigInt(PT) | flags);
  w64(PT + 1 * 8, BigInt(CODE) | leaf);
  m.phys.write(guestHpa(m, CODE), new Uint8Array([0x8b, 0x03]));
}
const entries = (m: Machine) =>
  [PML5 + 8, PML4, PDPT, PD + 16, PT + 8].map((gpa) => m.phys.read64(guestHpa(m, gpa)));

// The guest reads the APIC version register with the MOV at `rip`: an EPT
// violation (read, linear address valid) at FEE00030H.
const apicRead = (rip: bigint, mode: Record<number, bigint>): Exit => ({
  reason: V.EXIT_REASON_EPT_VIOLATION, qual: 1n | (1n << 7n) | (1n << 8n), len: 0,
  regs: { [RBX]: APIC_VERSION, [RAX]: 0xdeadbeefdeadbeefn },
  fields: { ...mode, [V.GUEST_PHYSICAL_ADDRESS]: APIC_VERSION, [V.GUEST_LINEAR_ADDRESS]: APIC_VERSION, [V.GUEST_RIP]: rip },
});
// The MOV was emulated: EAX holds the version (an integrated APIC, 1xH; a
// 32-bit destination zero-extends) and RIP is past the MOV's two bytes.
function emulated(m: Machine, rip: bigint, what: string): void {
  const rax = m.guestReg(RAX);
  assert.is(rax >> 32n, 0n, `${what}: EAX zero-extended into RAX`);
  assert.is(rax & 0xf0n, 0x10n, `${what}: EAX is the APIC version (${rax.toString(16)})`);
  assert.is(m.vmx.field(V.GUEST_RIP), rip + 2n, `${what}: the MOV completed`);
}

test('the instruction is read through the tables CR4.LA57 selects (4-level, 5-level); no accessed flag is set', () => {
  const r = play([
    { exit: apicRead(LIN4, LONG), before: (m) => build(m, P | RW),
      check: (m) => {
        emulated(m, LIN4, '4-level paging');
        assert.equal(entries(m).map((e) => e & A), [0n, 0n, 0n, 0n, 0n], 'accessed flags as the guest left them');
      } },
    { exit: apicRead(LIN5, LA57),
      check: (m) => {
        emulated(m, LIN5, '5-level paging');
        assert.equal(entries(m).map((e) => e & A), [0n, 0n, 0n, 0n, 0n], 'accessed flags as the guest left them');
      } },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('at CPL 3 the fetch is a user-mode one: decoded from a user-mode address', () => {
  const r = play([
    { exit: apicRead(LIN4, { ...LONG, ...CPL3 }), before: (m) => build(m, P | RW | US),
      check: (m) => emulated(m, LIN4, 'CPL 3, U/S = 1 everywhere') },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

// Bytes at an address the processor could not have fetched from (the
// guest's tables changed under it, or a hypervisor bug) are not decoded:
// the VM stops with the report, the instruction is not guessed.
const cases: [string, bigint, bigint, Record<number, bigint>][] = [
  ['CPL 3, the code page supervisor-only (U/S = 0 in its PTE)', P | RW | US, P | RW, { ...LONG, ...CPL3 }],
  ['execute-disable (XD = 1 in its PTE, EFER.NXE = 1)', P | RW, P | RW | XD, LONG],
  ['CR4.SMEP, CPL 0, a user-mode address', P | RW | US, P | RW | US,
    { ...LONG, [V.GUEST_CR4]: CR4_PAE | CR4_SMEP, [V.CR4_READ_SHADOW]: CR4_PAE | CR4_SMEP }],
];
for (const [what, flags, leaf, mode] of cases) {
  test(`no fetch, no decode: ${what}`, () => {
    const r = play([{ exit: apicRead(LIN4, mode), before: (m) => build(m, flags, leaf) }], '', { noFinalExit: true });
    assert.is(r.steps, 1);
    assert.match(r.console, /hv: guest: cannot decode the instruction accessing the local APIC at 0xfee00030: rip 0x401000, bytes\n/);
    assert.match(r.console, /ended: stopped/);
  });
}

test.run();
