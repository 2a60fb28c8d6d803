// Exit handling of kernel.wasm against the model (issue 3): a scripted guest
// produces one VM exit after another; each step checks what the handler did
// with the previous exit (registers, RIP, injected events, console) against
// the SDM and docs/guest-interface.md.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as V from '../model/vmx-consts.ts';
import { play, injected, GP, UD, RAX, RCX, RDX, RBX } from './guest-script.ts';

test('first entry: multiboot state, RIP at the entry point, EAX magic, EBX info', () => {
  const r = play([{ exit: { reason: V.EXIT_REASON_CPUID, regs: { [RAX]: 0n } }, check: () => {} }], '', {});
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.match(r.console, /hv: guest 1 \(\/g\) ended: exit via isa-debug-exit, code 1, 2 exits.*: as expected/);
});

test('CPUID: hypervisor leaves, hidden features, RIP advanced by the instruction length', () => {
  const r = play([
    { exit: { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0x40000000n, [RCX]: 0n } },
      check: (m, b) => {
        assert.is(m.guestReg(RAX), 0x40000001n);
        const sig = [m.guestReg(RBX), m.guestReg(RCX), m.guestReg(RDX)]
          .map((v) => Buffer.from(new Uint32Array([Number(v)]).buffer).toString('latin1')).join('');
        assert.is(sig, 'ASHypervisor');
        assert.is(m.vmx.field(V.GUEST_RIP), b.rip + 2n);
      } },
    { exit: { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 1n, [RCX]: 0n } },
      check: (m) => {
        const ecx = m.guestReg(RCX);
        assert.is(ecx & (1n << 5n), 0n, 'VMX hidden');
        assert.is(ecx & (1n << 21n), 1n << 21n, 'x2APIC offered (the software APIC has it, SDM 11.12)');
        assert.is(ecx & (1n << 17n), 1n << 17n, 'PCID passes (CR4.PCIDE is the guest\'s)');
        assert.is(ecx & (1n << 31n), 1n << 31n, 'hypervisor bit');
        assert.is(m.guestReg(RBX) >> 24n, 0n, 'APIC ID 0');
      } },
    { exit: { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0x40000001n } },
      check: (m) => assert.is(m.guestReg(RAX), 2n, 'interface version') },
    { exit: { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 7n, [RCX]: 0n } },
      check: (m) => {
        // INVPCID shown because the guest's VMCS enables it (it then runs natively).
        assert.is(m.guestReg(RBX) & (1n << 10n), 1n << 10n, 'INVPCID');
        assert.is(m.vmx.field(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL) & BigInt(V.PROC2_ENABLE_INVPCID),
          BigInt(V.PROC2_ENABLE_INVPCID), '"enable INVPCID" in the guest\'s VMCS');
        assert.is(m.vmx.field(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & BigInt(V.PROC_INVLPG_EXITING), 0n, 'no INVLPG exiting');
        assert.is(m.guestReg(RCX) & (1n << 5n), 0n, 'WAITPKG hidden');
      } },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('RDMSR/WRMSR: emulated values, #GP for unknown MSRs without completing the instruction', () => {
  const r = play([
    { exit: { reason: V.EXIT_REASON_RDMSR, regs: { [RCX]: 0x12345n } },
      check: (m, b) => {
        assert.is(injected(m), GP);
        assert.is(m.vmx.field(V.VM_ENTRY_EXCEPTION_ERROR_CODE), 0n);
        assert.is(m.vmx.field(V.GUEST_RIP), b.rip, 'a faulting RDMSR does not complete');
      } },
    { exit: { reason: V.EXIT_REASON_RDMSR, regs: { [RCX]: BigInt(V.MSR_IA32_FEATURE_CONTROL) } },
      check: (m, b) => {
        assert.is(injected(m), 0n);
        assert.is(m.guestReg(RAX), 1n, 'locked, VMX off');
        assert.is(m.guestReg(RDX), 0n);
        assert.is(m.vmx.field(V.GUEST_RIP), b.rip + 2n);
      } },
    { exit: { reason: V.EXIT_REASON_RDMSR, regs: { [RCX]: BigInt(V.MSR_IA32_APIC_BASE) } },
      check: (m) => assert.is(m.guestReg(RAX), 0xfee00900n) },
    { exit: { reason: V.EXIT_REASON_WRMSR, regs: { [RCX]: BigInt(V.MSR_IA32_FEATURE_CONTROL), [RAX]: 5n, [RDX]: 0n } },
      check: (m) => assert.is(injected(m), GP, 'FEATURE_CONTROL is locked') },
    { exit: { reason: V.EXIT_REASON_WRMSR, regs: { [RCX]: BigInt(V.MSR_IA32_EFER), [RAX]: 1n << 9n, [RDX]: 0n } },
      check: (m) => assert.is(injected(m), GP, 'EFER bit 9 is reserved') },
    { exit: { reason: V.EXIT_REASON_WRMSR, regs: { [RCX]: BigInt(V.MSR_IA32_EFER), [RAX]: 0x901n, [RDX]: 0n } },
      check: (m) => {
        assert.is(injected(m), 0n);
        assert.is(m.vmx.field(V.GUEST_IA32_EFER), 0x901n, 'SCE, LME, NXE');
      } },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

const io = (port: number, size: 1 | 2 | 4, isIn: boolean) =>
  (BigInt(port) << 16n) | (isIn ? 8n : 0n) | BigInt(size === 4 ? 3 : size - 1);

test('I/O: denied ports read all ones and keep the rest of RAX; COM1 output is a guest line', () => {
  const r = play([
    { exit: { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: io(0x2f0, 1, true), len: 1, regs: { [RAX]: 0x1122334455667700n } },
      check: (m) => assert.is(m.guestReg(RAX), 0x11223344556677ffn) },
    { exit: { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: io(0x2f0, 4, true), len: 1, regs: { [RAX]: 0x1122334455667700n } },
      check: (m) => assert.is(m.guestReg(RAX), 0xffffffffn, 'a 32-bit IN zero-extends') },
    { exit: { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: io(0x3f8, 1, false), len: 1, regs: { [RAX]: 0x41n } } },
    { exit: { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: io(0x3f8, 1, false), len: 1, regs: { [RAX]: 0x0an } } },
    { exit: { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: io(0x511, 1, true), len: 1, regs: { [RAX]: 0n } },
      check: (m) => assert.is(m.guestReg(RAX), 0x51n, "fw_cfg key 0 starts with 'Q'") },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.match(r.console, /^L1\| A$/m);
  assert.match(r.console, /denied port reads 2 writes 0/);
  // Nothing the guest did reached a real port.
  assert.equal(r.machine.ioLog.filter((e: any) => e.port !== 0x3f8 && e.port !== 0xe9), []);
});

test('VMCALL: print, bad argument, unknown function, query, and #UD at CPL 3', () => {
  const r = play([
    { exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 0n, [RBX]: 0x3fffff00n, [RCX]: 16n } },
      check: (m) => assert.is(m.guestReg(RAX), 1n, 'GPA beyond RAM') },
    { exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 7n } },
      check: (m) => assert.is(m.guestReg(RAX), 2n, 'unknown function') },
    { exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 2n, [RBX]: 2n } },
      check: (m) => assert.is(m.guestReg(RAX), 32n << 20n, 'RAM size') },
    { exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 2n, [RBX]: 1n } },
      check: (m) => assert.is(m.guestReg(RAX), 4n, 'exits so far') },
    { exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 2n, [RBX]: 0n },
      fields: { [V.GUEST_SS_ACCESS_RIGHTS]: 0xc0f3n } },
      check: (m, b) => {
        assert.is(injected(m), UD);
        assert.is(m.vmx.field(V.GUEST_RIP), b.rip);
        m.vmx.setField(V.GUEST_SS_ACCESS_RIGHTS, 0xc093n);
      } },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('VMCALL exit ends the guest with its status; expect=exit:N compares it', () => {
  const ok = play([{ exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 1n, [RBX]: 7n } } }], 'expect=exit:7');
  assert.is(ok.status, 0, ok.console);
  assert.match(ok.console, /ended: exit via hypercall, status 7, 1 exits.*: as expected/);
  const bad = play([{ exit: { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 1n, [RBX]: 7n } } }]);
  assert.is(bad.status, 1);
  assert.match(bad.console, /NOT as expected/);
  assert.match(bad.console, /hv: exit status=1 \(fail\)/);
});

test('CR access: CR4.VMXE #GP, CR0 write keeps the guest view in the shadow, CR8 is the virtual TPR', () => {
  const movToCr = (cr: number, gpr: number) => BigInt(cr | (gpr << 8));
  const r = play([
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(4, RAX), len: 3, regs: { [RAX]: BigInt(V.X86_CR4_VMXE) } },
      check: (m) => assert.is(injected(m), GP) },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(0, RBX), len: 3, regs: { [RBX]: 0x80000011n } },
      check: (m) => {
        assert.is(injected(m), 0n);
        assert.is(m.vmx.field(V.CR0_READ_SHADOW), 0x80000011n);
        assert.is(m.vmx.field(V.GUEST_CR0) & 0x80000031n, 0x80000031n, 'NE forced on, PG as written');
      } },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(8, RCX), len: 4, regs: { [RCX]: 9n } } },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: 8n | (1n << 4n) | (BigInt(RDX) << 8n), len: 4, regs: { [RDX]: 0n } },
      check: (m) => assert.is(m.guestReg(RDX), 9n, 'MOV from CR8 reads back the TPR') },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(8, RCX), len: 4, regs: { [RCX]: 16n } },
      check: (m) => assert.is(injected(m), GP, 'CR8 bits 63:4 are reserved') },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('CR access: CR4.PCIDE only in IA-32e mode with CR3[11:0] = 0; CR0.PG not cleared while PCIDE = 1 (#GP(0))', () => {
  const movToCr = (cr: number, gpr: number) => BigInt(cr | (gpr << 8));
  const PCIDE = BigInt(V.X86_CR4_PCIDE), PAE = BigInt(V.X86_CR4_PAE), VMXE = BigInt(V.X86_CR4_VMXE);
  // 64-bit mode: paging with PAE, EFER.LME/LMA, IA-32e mode guest, 64-bit CS.
  const long64 = {
    [V.GUEST_CR0]: 0x80010031n, [V.CR0_READ_SHADOW]: 0x80010031n, [V.GUEST_CR4]: PAE, [V.CR4_READ_SHADOW]: PAE,
    [V.GUEST_IA32_EFER]: 0x500n, [V.GUEST_CS_ACCESS_RIGHTS]: 0xa09bn,
  };
  const r = play([
    // nested=on: setting CR4.VMXE (owned by the hypervisor) brings the write here.
    // Protected mode, paging off: setting PCIDE is #GP.
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(4, RAX), len: 3, regs: { [RAX]: PCIDE | VMXE } },
      check: (m) => assert.is(injected(m), GP, 'PCIDE outside IA-32e mode') },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(4, RAX), len: 3, regs: { [RAX]: VMXE } },
      check: (m) => assert.is(injected(m), 0n, 'VMXE alone is taken (nested=on)') },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(4, RAX), len: 3, regs: { [RAX]: VMXE | PAE | PCIDE },
      fields: { ...long64, [V.GUEST_CR3]: 0x100005n } },
      check: (m) => assert.is(injected(m), GP, 'PCIDE with CR3[11:0] != 0') },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(4, RAX), len: 3, regs: { [RAX]: VMXE | PAE | PCIDE },
      fields: { ...long64, [V.GUEST_CR3]: 0x100000n } },
      check: (m) => {
        assert.is(injected(m), 0n, 'PCIDE in IA-32e mode, CR3[11:0] = 0');
        assert.is(m.vmx.field(V.GUEST_CR4) & PCIDE, PCIDE);
      } },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(0, RBX), len: 3, regs: { [RBX]: 0x00010031n } },
      check: (m) => assert.is(injected(m), GP, 'clearing CR0.PG with CR4.PCIDE = 1') },
  ], 'nested=on');
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('CR access: MOV to CR writes the register\'s low 32 bits outside 64-bit mode, all 64 in it', () => {
  // SDM Vol. 2B "MOV—Move to/from Control Registers": the operand is 32 bits
  // outside 64-bit mode, so bits 63:32 of the register (left from an earlier
  // 64-bit mode) are not written to CR0; in 64-bit mode they are, and set
  // CR0[63:32] bits are reserved: #GP(0).
  const movCr0Rbx = BigInt(0 | (RBX << 8));
  const v = 0xdead000080000011n;
  const long64 = {
    [V.GUEST_CR0]: 0x80010031n, [V.CR0_READ_SHADOW]: 0x80010031n, [V.GUEST_CR4]: BigInt(V.X86_CR4_PAE),
    [V.CR4_READ_SHADOW]: BigInt(V.X86_CR4_PAE), [V.GUEST_IA32_EFER]: 0x500n, [V.GUEST_CS_ACCESS_RIGHTS]: 0xa09bn,
  };
  const r = play([
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movCr0Rbx, len: 3, regs: { [RBX]: v } },
      check: (m) => {
        assert.is(injected(m), 0n, 'protected mode: the upper half is not part of the operand');
        assert.is(m.vmx.field(V.CR0_READ_SHADOW), 0x80000011n);
      } },
    { exit: { reason: V.EXIT_REASON_CR_ACCESS, qual: movCr0Rbx, len: 3, regs: { [RBX]: v }, fields: long64 },
      check: (m) => assert.is(injected(m), GP, '64-bit mode: CR0[63:32] reserved') },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('XSETBV: #GP for bad values, applied otherwise', () => {
  const r = play([
    { exit: { reason: V.EXIT_REASON_XSETBV, len: 3, regs: { [RCX]: 0n, [RAX]: 0n, [RDX]: 0n } },
      check: (m) => assert.is(injected(m), GP, 'x87 bit must be set') },
    { exit: { reason: V.EXIT_REASON_XSETBV, len: 3, regs: { [RCX]: 1n, [RAX]: 1n, [RDX]: 0n } },
      check: (m) => assert.is(injected(m), GP, 'only XCR0') },
    { exit: { reason: V.EXIT_REASON_XSETBV, len: 3, regs: { [RCX]: 0n, [RAX]: 5n, [RDX]: 0n } },
      check: (m) => assert.is(injected(m), GP, 'AVX without SSE') },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('an event interrupted by an exit is re-injected (IDT-vectoring information)', () => {
  const vectoring = 0x80000b0en; // #PF with error code, being delivered
  const r = play([
    { exit: { reason: V.EXIT_REASON_EXTERNAL_INTERRUPT, fields: {
        [V.IDT_VECTORING_INFO]: vectoring | (1n << 12n), [V.IDT_VECTORING_ERROR_CODE]: 6n,
        [V.VM_EXIT_INTERRUPTION_INFO]: 0x800000f0n } },
      check: (m) => {
        assert.is(m.eois, 1, 'the acknowledged host interrupt is ended at the local APIC');
        assert.is(injected(m), vectoring, 'same event, NMI-unblocking bit dropped');
        assert.is(m.vmx.field(V.VM_ENTRY_EXCEPTION_ERROR_CODE), 6n);
      } },
  ]);
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
});

test('contained guest failures: triple fault, unbacked memory, halt with IF=0, unknown exit', () => {
  const tf = play([{ exit: { reason: V.EXIT_REASON_TRIPLE_FAULT } }], 'expect=triple-fault');
  assert.is(tf.status, 0, tf.console);
  assert.match(tf.console, /hv: guest: triple fault\nhv: guest regs: rip=0x100020 /);
  const ept = play([{ exit: { reason: V.EXIT_REASON_EPT_VIOLATION, qual: 2n,
    fields: { [V.GUEST_PHYSICAL_ADDRESS]: 0xc0000000n } } }], 'expect=ept-violation');
  assert.is(ept.status, 0, ept.console);
  assert.match(ept.console, /write to unbacked guest-physical address 0xc0000000 \(outside its RAM\)/);
  const halt = play([{ exit: { reason: V.EXIT_REASON_HLT, len: 1 } }], 'expect=halt');
  assert.is(halt.status, 0, halt.console);
  assert.match(halt.console, /halted with interrupts disabled and nothing pending: halted forever/);
  const unk = play([{ exit: { reason: V.EXIT_REASON_ENCLS, qual: 0x55n } }]);
  assert.is(unk.status, 1);
  assert.match(unk.console, /exit reason 60 \(ENCLS\) has no handler; qualification 0x55, rip 0x100020/);
  for (const r of [tf, ept, halt, unk]) assert.equal(r.faults, []);
});

test('max-ticks= budget: a guest that only ever reaches the preemption timer is stopped', () => {
  const steps = Array.from({ length: 50 }, () => ({ exit: { reason: V.EXIT_REASON_PREEMPTION_TIMER } }));
  const r = play(steps, 'max-ticks=2000 expect=timeout', { noFinalExit: true });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.match(r.console, /ran past its max-ticks= budget\nhv: guest 1 \(\/g\) ended: timeout, \d+ exits.*: as expected/);
  assert.ok(r.steps < 50, 'stopped before the script ran out');
  // the preemption timer was armed in the guest's VMCS (cleared, no longer current)
  const vmcs = [...r.machine.vmx.vmcs.values()][0];
  assert.ok(((vmcs.fields.get(V.PIN_BASED_VM_EXEC_CONTROL) ?? 0n) & BigInt(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER)) !== 0n);
  assert.ok((vmcs.fields.get(V.VMX_PREEMPTION_TIMER_VALUE) ?? 0n) > 0n);
});

test('exit table: counts by reason, most frequent first', () => {
  const r = play([
    { exit: { reason: V.EXIT_REASON_CPUID, regs: { [RAX]: 0n } } },
    { exit: { reason: V.EXIT_REASON_CPUID, regs: { [RAX]: 0n } } },
    { exit: { reason: V.EXIT_REASON_RDMSR, regs: { [RCX]: BigInt(V.MSR_IA32_APIC_BASE) } } },
  ]);
  assert.match(r.console, /hv: exits: 4 in all\nhv:   CPUID +2\nhv:   (IO_INSTRUCTION +1\nhv:   RDMSR +1|RDMSR +1\nhv:   IO_INSTRUCTION +1)\n/);
});

test.run();
