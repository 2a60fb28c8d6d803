// The Hyper-V hypercall path of a hyperv=on guest (kernel/vm/exit/hyperv.ts) in 64-bit
// mode, on the model: the emulator test guest (tests/guests/hyperv.c) runs in 32-bit
// protected mode only. TLFS "Hypercall Interface": a 64-bit caller (EFER.LMA and CS.L) puts
// the hypercall input value in RCX and gets the result value in RAX; any other protected-mode
// caller uses EDX:EAX for both; a hypercall at CPL > 0 is #UD. This hypervisor tells a
// Hyper-V hypercall from its own VMCALL by the guest-physical page of the VMCALL
// (docs/guest-interface.md "Hyper-V interface"), found here through 4-level paging.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as V from '../model/vmx-consts.ts';
import type { Machine } from '../model/index.ts';
import { play, guestHpa, injected, GP, UD, RAX, RCX, RDX, RBX, type Exit } from './guest-script.ts';

const T = 0x800000; // PML4, PDPT, PD, PT (one page each)
const [PML4, PDPT, PD, PT] = [0, 1, 2, 3].map((i) => T + i * 0x1000);
const HCPAGE = 0x820000; // the hypercall page (guest-physical)
const OTHER = 0x821000; // another page
// Linear addresses in the upper half: PML4 256, PDPT 0, PD 0, PT 1 and 2; below 4 GiB (for
// compatibility mode, whose addresses are 32 bits) the same tables through PML4 0.
const LIN_HC = 0xffff800000001000n;
const LIN_OTHER = 0xffff800000002000n;
const LIN_HC32 = 0x1000n;
const P = 1n, RW = 2n, US = 4n;
const AR_CODE64 = 0xa09bn, AR_CODE32 = 0xc09bn, AR_DATA = 0xc093n, DPL3 = 3n << 5n;
const LONG: Record<number, bigint> = {
  [V.GUEST_CR0]: 0x80010031n, [V.CR0_READ_SHADOW]: 0x80010031n,
  [V.GUEST_CR4]: BigInt(V.X86_CR4_PAE), [V.CR4_READ_SHADOW]: BigInt(V.X86_CR4_PAE),
  [V.GUEST_CR3]: BigInt(PML4), [V.GUEST_IA32_EFER]: 0xd00n,
  [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA,
};
const COMPAT = { ...LONG, [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE32 }; // IA-32e mode, CS.L = 0
const CPL3 = { ...LONG, [V.GUEST_CS_ACCESS_RIGHTS]: AR_CODE64 | DPL3, [V.GUEST_SS_ACCESS_RIGHTS]: AR_DATA | DPL3 };

function build(m: Machine): void {
  const w64 = (gpa: number, v: bigint) => m.phys.write64(guestHpa(m, gpa), v);
  for (const t of [PML4, PDPT, PD, PT]) m.phys.write(guestHpa(m, t), new Uint8Array(4096));
  w64(PML4 + 256 * 8, BigInt(PDPT) | P | RW | US);
  w64(PML4, BigInt(PDPT) | P | RW | US);
  w64(PDPT, BigInt(PD) | P | RW | US);
  w64(PD, BigInt(PT) | P | RW | US);
  w64(PT + 1 * 8, BigInt(HCPAGE) | P | RW | US);
  w64(PT + 2 * 8, BigInt(OTHER) | P | RW | US);
}

const wrmsr = (msr: number, v: bigint): Exit => ({
  reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: BigInt(msr), [RAX]: v & 0xffffffffn, [RDX]: v >> 32n },
});
const vmcall = (rip: bigint, mode: Record<number, bigint>, regs: Record<number, bigint>): Exit => ({
  reason: V.EXIT_REASON_VMCALL, len: 3, regs, fields: { ...mode, [V.GUEST_RIP]: rip },
});

test('64-bit hypercall through the page: RCX in, RAX out; compatibility mode: EDX:EAX; ours elsewhere; #UD at CPL 3', () => {
  const r = play([
    { exit: wrmsr(V.MSR_HV_GUEST_OS_ID, 0x8100000000060100n) },
    { exit: wrmsr(V.MSR_HV_HYPERCALL, BigInt(HCPAGE) | 1n), before: build,
      check: (m) => {
        const code = [...m.phys.read(guestHpa(m, HCPAGE), 5)];
        assert.equal(code, [0x0f, 0x01, 0xc1, 0xc3, 0xcc], 'VMCALL; RET; INT3 written into the page');
      } },
    // 64-bit: input value 2 (with RAX = 2, RBX = 2 our VMCALL would answer the RAM size).
    { exit: vmcall(LIN_HC, LONG, { [RAX]: 2n, [RBX]: 2n, [RCX]: 2n, [RDX]: 0x1234n }),
      check: (m) => {
        assert.is(m.guestReg(RAX), 2n, 'HV_STATUS_INVALID_HYPERCALL_CODE in RAX');
        assert.is(m.guestReg(RDX), 0x1234n, 'RDX (input GPA) untouched');
        assert.is(m.guestReg(RCX), 2n, 'RCX untouched');
        assert.is(m.vmx.field(V.GUEST_RIP), LIN_HC + 3n, 'past the VMCALL');
      } },
    // Compatibility mode: the input value is EDX:EAX, the result EDX:EAX.
    { exit: vmcall(LIN_HC32, COMPAT, { [RAX]: 2n, [RDX]: 0x77n, [RBX]: 2n, [RCX]: 0n }),
      check: (m) => {
        assert.is(m.guestReg(RAX), 2n, 'status in EAX');
        assert.is(m.guestReg(RDX), 0n, 'reps completed (EDX) 0');
      } },
    // A VMCALL at offset 0 of another page is this hypervisor's: query 2, the RAM size.
    { exit: vmcall(LIN_OTHER, LONG, { [RAX]: 2n, [RBX]: 2n, [RCX]: 2n }),
      check: (m) => assert.is(m.guestReg(RAX), 32n << 20n, 'our query') },
    // The page at CPL 3: #UD (TLFS "Legal Hypercall Environments"), RIP unchanged.
    { exit: vmcall(LIN_HC, CPL3, { [RAX]: 2n, [RCX]: 2n }),
      check: (m) => {
        assert.is(injected(m), UD);
        assert.is(m.vmx.field(V.GUEST_RIP), LIN_HC, 'RIP at the VMCALL');
        for (const [f, v] of Object.entries(LONG)) m.vmx.setField(Number(f), v);
      } },
    // VP_INDEX is read-only: #GP.
    { exit: wrmsr(V.MSR_HV_VP_INDEX, 1n), check: (m) => assert.is(injected(m), GP) },
  ], 'hyperv=on');
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.match(r.console, /^hv: hyper-v: 2 hypercalls /m);
});

test('without hyperv=on the same VMCALL is ours and the synthetic MSRs are #GP', () => {
  const r = play([
    { exit: wrmsr(V.MSR_HV_GUEST_OS_ID, 1n), check: (m) => assert.is(injected(m), GP, 'GUEST_OS_ID #GP') },
    { exit: vmcall(LIN_HC, LONG, { [RAX]: 2n, [RBX]: 2n, [RCX]: 2n }), before: build,
      check: (m) => assert.is(m.guestReg(RAX), 32n << 20n, 'our query') },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.not.match(r.console, /hyper-v/);
});

// TLFS "Feature and Interface Discovery": 40000004H EAX bit 14 recommends the enlightened
// VMCS; "Nested Hypervisor Feature Identification" (4000000AH): EAX[7:0] and EAX[15:8] the
// lowest and highest eVMCS version (1), bit 19 the enlightened MSR bitmap. Offered with
// nested=on (enlightened entry, kernel/nested/evmcs.ts); a hyperv=on guest without VMX has no
// VM entry to enlighten and sees neither.
const cpuid = (leaf: number): Exit => ({ reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: BigInt(leaf), [RCX]: 0n } });
for (const nested of [true, false]) {
  test(`CPUID 40000004H bit 14 and 4000000AH with hyperv=on, nested=${nested ? 'on' : 'off'}`, () => {
    const r = play([
      { exit: cpuid(0x40000004), check: (m) => {
        assert.is((m.guestReg(RAX) >> 14n) & 1n, nested ? 1n : 0n, '40000004H EAX bit 14 (eVMCS recommended)');
        assert.is(m.guestReg(RBX), 0xffffffffn, '40000004H EBX: never notify a long spin wait');
      } },
      { exit: cpuid(0x4000000a), check: (m) => {
        const eax = m.guestReg(RAX);
        assert.is(eax, nested ? (1n | (1n << 8n) | (1n << 19n)) : 0n, '4000000AH EAX: eVMCS version 1..1, enlightened MSR bitmap');
        assert.equal([m.guestReg(RBX), m.guestReg(RCX), m.guestReg(RDX)], [0n, 0n, 0n], '4000000AH EBX/ECX/EDX: nothing else');
      } },
    ], nested ? 'hyperv=on nested=on' : 'hyperv=on');
    assert.equal(r.faults, []);
    assert.is(r.status, 0, r.console);
  });
}

test.run();
