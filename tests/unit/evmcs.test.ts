// Enlightened VM entry (issue 11 item 2; kernel/nested/evmcs.ts) end to end on kernel.wasm: a
// scripted 64-bit L1 on a guest with hyperv=on and nested=on (shadow-vmcs=off) enables its VP
// assist page, keeps its VMCS for L2 in an enlightened VMCS in its memory and enters L2 with
// EnlightenVmEntry set. Each outcome is checked against the TLFS ("Enlightened VMCS", "Clean
// Fields", "Virtual Processor Assist Page") and the SDM, not against the kernel:
//   - VMLAUNCH through the eVMCS runs L2 with the eVMCS's fields; L0 sets every clean bit;
//   - a nested exit writes the exit information and L2's state back into the eVMCS;
//   - a field L1 changes while its group's clean bit is 1 is not picked up, clearing the bit
//     makes it count (the TLFS contract);
//   - revision other than 1 (or our VMCS revision id): VMfailInvalid; an eVMCS address that is
//     not L1 RAM: VMfailInvalid (this hypervisor's choice; KVM injects #UD);
//   - VMCLEAR of the eVMCS ends its use: the next VMLAUNCH reads every group again;
//   - controls whose fields eVMCS v1 lacks are not offered (capability MSRs) and fail the entry
//     with VMfailValid(7) (SDM 27.2.1.1 against what the guest is offered).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, buildBootInfo, loadKernel, type Machine } from '../model/index.ts';
import { fieldName } from '../model/vmcs-fields.ts';
import * as V from '../model/vmx-consts.ts';
import { tinyKernel, produceExit, RAX, RCX, RDX, RBX, type Exit } from './guest-script.ts';
import {
  type L1Ctx, type Script, B, ALL1, ADDR, L1_PML4, L1_PDPT, L1_PD, VMXON_REGION, EVMCS, ASSIST, DATA, HOST_RIP12, L2_RIP, OUTSIDE,
  field, l1hpa, w64, w32, r32, l1ToVmxon, fillEvmcs, CR0, CR4, EFER64, evField, evWrite, evRead, clean, setClean, ARITH, FLAGS_ALL, LEN, memInfo, l1Insn, ptrInsn, rdmsr, wrmsr,
} from './evmcs-script.ts';

// ---- L1's memory -------------------------------------------------------------------
const BITMAP = 0x23000;

interface Ctx extends L1Ctx { vmcs01: bigint; vmcs02: bigint }
const FINAL: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };

function runOk(script: (c: Ctx) => Script): void {
  const m = tigerlake();
  const c: Ctx = {
    m, vmcs01: -1n, vmcs02: -1n,
    l1Root: () => c.m.vmx.field(V.EPT_POINTER, c.vmcs01) & ADDR,
    l1Runs: () => c.m.vmx.currentVmcs === c.vmcs01,
  };
  const gen = script(c);
  let finished = false;
  m.vmx.guest = (vmx) => {
    if (c.vmcs01 < 0n) c.vmcs01 = vmx.currentVmcs!;
    let exit = FINAL;
    if (!finished) {
      const r = gen.next();
      if (r.done) finished = true;
      else exit = r.value;
    }
    produceExit(m, vmx, exit, 0);
  };
  buildBootInfo(m, { cmdline: 'caps=off guest=/g nested=on shadow-vmcs=off hyperv=on', files: [{ name: '/g', data: tinyKernel() }] });
  const k = loadKernel(m);
  const r = k.call('kmain', m.bootInfo);
  assert.ok(r.ended, `kmain returned without ending the run: ${m.console.slice(-2000)}`);
  assert.equal(m.faults, [], m.console.slice(-3000));
  assert.is(r.trap, null, m.console.slice(-3000));
  assert.ok(finished, `the kernel ended the guest before the script finished: ${m.console.slice(-3000)}`);
  assert.is(m.faults.length ? -1 : (m.exitStatus ?? -1), 0, m.console.slice(-3000));
}

// ---- L1's instructions -----------------------------------------------------------------
const inL1 = (c: Ctx) => c.l1Runs();
const CF = 1n;
// VMLAUNCH/VMRESUME; the outcome is the caller's to check.
function* enter(c: Ctx, launch: boolean): Script {
  yield { reason: launch ? V.EXIT_REASON_VMLAUNCH : V.EXIT_REASON_VMRESUME, len: LEN,
    fields: { [V.VM_EXIT_INSTRUCTION_INFO]: 0n, [V.GUEST_RFLAGS]: FLAGS_ALL } };
  if (!inL1(c) && c.vmcs02 < 0n) c.vmcs02 = c.m.vmx.currentVmcs!;
}
function* failsInvalid(c: Ctx, launch: boolean, what: string): Script {
  const rip = field(c, V.GUEST_RIP);
  yield* enter(c, launch);
  assert.ok(inL1(c), `${what}: L1 continues`);
  assert.is(field(c, V.GUEST_RFLAGS) & ARITH, CF, `${what}: VMfailInvalid (CF only)`);
  assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), `${what}: completed`);
}
// L2 runs; its HLT exits to L1 (HLT exiting in vmcs12), which is then at vmcs12's host RIP.
function* hltToL1(c: Ctx, what: string): Script {
  assert.ok(!inL1(c), `${what}: L2 runs (console: ${c.m.console.slice(-300)})`);
  yield { reason: V.EXIT_REASON_HLT, len: 1 };
  assert.ok(inL1(c), `${what}: HLT exits to L1`);
  assert.is(field(c, V.GUEST_RIP), HOST_RIP12, `${what}: L1 at vmcs12's host RIP`);
}

// ---- L1 from reset to a launchable eVMCS --------------------------------------------------
function* bootL1(c: Ctx, revision = 1): Script {
  const ctls = yield* l1ToVmxon(c, BITMAP);
  yield* wrmsr(c, V.MSR_HV_VP_ASSIST_PAGE, BigInt(ASSIST) | 1n);
  fillEvmcs(c, ctls, revision);
}

test('enlightened VMLAUNCH runs L2 from the eVMCS; all clean bits set; a nested exit writes exit information and L2 state back', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    yield* enter(c, true);
    assert.ok(!inL1(c), `VMLAUNCH through the eVMCS: L2 runs (console: ${c.m.console.slice(-500)})`);
    assert.is(field(c, V.GUEST_RIP), L2_RIP, 'vmcs02 RIP = the eVMCS guest RIP');
    assert.is(field(c, V.GUEST_RSP), 0x9000n, 'vmcs02 RSP = the eVMCS guest RSP');
    assert.is(clean(c), 0xffff, 'L0 set every clean bit after the entry');
    yield* hltToL1(c, 'HLT');
    assert.is(evRead(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_HLT), 'eVMCS exit reason = HLT');
    assert.is(evRead(c, V.VM_EXIT_INSTRUCTION_LENGTH), 1n, 'eVMCS exit instruction length = 1');
    assert.is(evRead(c, V.GUEST_RIP), L2_RIP, 'eVMCS guest RIP = L2\'s RIP at the HLT');
    // VMRESUME continues L2 (launch state kept with the eVMCS in use).
    evWrite(c, V.GUEST_RIP, L2_RIP + 1n);
    yield* enter(c, false);
    assert.ok(!inL1(c), 'VMRESUME: L2 runs');
    assert.is(field(c, V.GUEST_RIP), L2_RIP + 1n, 'guest RIP is read at every entry, whatever the clean bits');
    yield* hltToL1(c, 'second HLT');
    // VMLAUNCH of the launched eVMCS: VMfailValid(4), the error in the eVMCS.
    const rip = field(c, V.GUEST_RIP);
    yield* enter(c, true);
    assert.ok(inL1(c), 'VMLAUNCH of a launched eVMCS: L1 continues');
    assert.is(field(c, V.GUEST_RFLAGS) & ARITH, B(V.X86_RFLAGS_ZF), 'VMfailValid');
    assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), 'completed');
    assert.is(evRead(c, V.VM_INSTRUCTION_ERROR), B(V.VMXERR_VMLAUNCH_NONCLEAR_VMCS), 'eVMCS VM-instruction error = 4');
  });
});

test('clean bits: a field changed with its group clean is ignored; clearing the bit makes it count', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    yield* enter(c, true);
    yield* hltToL1(c, 'HLT');
    assert.is(clean(c), 0xffff, 'clean bits all set');
    evWrite(c, V.GUEST_RSP, 0x7770n); // GUEST_BASIC, its bit left set
    evWrite(c, V.GUEST_RIP, L2_RIP);
    yield* enter(c, false);
    assert.ok(!inL1(c), 'VMRESUME: L2 runs');
    assert.is(field(c, V.GUEST_RSP), 0x9000n, 'RSP changed under a set GUEST_BASIC bit is not picked up');
    c.m.vmx.setField(V.GUEST_RFLAGS, field(c, V.GUEST_RFLAGS) ^ B(V.X86_RFLAGS_ZF)); // L2 changes a flag
    const l2Rflags = field(c, V.GUEST_RFLAGS);
    yield* hltToL1(c, 'HLT 2');
    // L2's RSP did not change: the exit rewrites only what changed, so L1's write under the set
    // bit stays (docs/guest-interface.md, "Enlightened VM entry"); its RFLAGS changed and is written.
    assert.is(evRead(c, V.GUEST_RSP), 0x7770n, 'an unchanged field L1 wrote under a set bit is not rewritten by the exit');
    assert.is(evRead(c, V.GUEST_RFLAGS), l2Rflags, 'the exit wrote L2\'s changed RFLAGS back');
    evWrite(c, V.GUEST_RSP, 0x7770n);
    setClean(c, 0xffff & ~V.EVMCS_CLEAN_GUEST_BASIC);
    yield* enter(c, false);
    assert.ok(!inL1(c), 'VMRESUME: L2 runs');
    assert.is(field(c, V.GUEST_RSP), 0x7770n, 'RSP with GUEST_BASIC cleared is picked up');
    assert.is(clean(c), 0xffff, 'L0 set every clean bit again');
    yield* hltToL1(c, 'HLT 3');
    // A control: HLT exiting cleared under a set CONTROL_PROC bit still exits; cleared bit: it counts.
    const proc = evRead(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
    evWrite(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, proc & ~B(V.PROC_HLT_EXITING));
    yield* enter(c, false);
    assert.is(field(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, c.vmcs02) & B(V.PROC_HLT_EXITING), B(V.PROC_HLT_EXITING),
      'vmcs02 keeps HLT exiting: the change under a set CONTROL_PROC bit is ignored');
    yield* hltToL1(c, 'HLT 4');
    assert.is(evRead(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL), proc & ~B(V.PROC_HLT_EXITING), 'the exit does not overwrite L1\'s control');
    setClean(c, 0xffff & ~V.EVMCS_CLEAN_CONTROL_PROC);
    yield* enter(c, false);
    assert.ok(!inL1(c), 'VMRESUME: L2 runs');
    assert.is(evRead(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL), proc & ~B(V.PROC_HLT_EXITING), 'L1\'s control stays');
  });
});

test('revision other than 1 or ours, an eVMCS outside RAM or not aligned: VMfailInvalid; VMCLEAR ends its use', () => {
  runOk(function* (c) {
    yield* bootL1(c, 5);
    yield* failsInvalid(c, true, 'revision 5');
    w32(c, EVMCS + V.EVMCS_REVISION_ID, 0x41534856);
    yield* enter(c, true);
    assert.ok(!inL1(c), 'our VMCS revision id in the eVMCS: L2 runs');
    yield* hltToL1(c, 'HLT');
    w32(c, EVMCS + V.EVMCS_REVISION_ID, 1);
    w64(c, ASSIST + V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, OUTSIDE);
    yield* failsInvalid(c, false, 'eVMCS outside L1 RAM');
    w64(c, ASSIST + V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, BigInt(EVMCS + 8));
    yield* failsInvalid(c, false, 'eVMCS not 4-KiB aligned');
    w64(c, ASSIST + V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, BigInt(EVMCS));
    // VMCLEAR of the eVMCS in use: no launch state written into it (offset 8 is a host selector).
    const hostEs = evRead(c, V.HOST_ES_SELECTOR);
    yield* ptrInsn(c, 'VMCLEAR of the eVMCS', V.EXIT_REASON_VMCLEAR, BigInt(EVMCS));
    assert.is(evRead(c, V.HOST_ES_SELECTOR), hostEs, 'VMCLEAR wrote nothing into the eVMCS');
    // The clean bits are all set, but a new use reads every group: L1's RSP counts.
    evWrite(c, V.GUEST_RSP, 0x6660n);
    evWrite(c, V.GUEST_RIP, L2_RIP);
    yield* enter(c, true);
    assert.ok(!inL1(c), 'VMLAUNCH after VMCLEAR: L2 runs');
    assert.is(field(c, V.GUEST_RSP), 0x6660n, 'every group read after VMCLEAR, whatever the clean bits');
    yield* hltToL1(c, 'HLT after VMCLEAR');
  });
});

// TLFS "Enlightened MSR Bitmap": "When enabled, the L0 hypervisor does not monitor the MSR
// bitmaps for changes. Instead, the L1 hypervisor must invalidate the corresponding clean field
// after making changes to one of the MSR bitmaps." Shown on vmcs02's MSR bitmap (L0's OR L1's,
// 25.6.9): its read bit for IA32_SYSENTER_CS (174H), an MSR L0 lets L2 read directly, so that
// the bit in vmcs02 alone decides whether L2's RDMSR exits. L1 sets its own bit with the
// MSR_BITMAP clean bit set: ignored; cleared: it counts. Without the enlightenment every entry
// takes L1's bitmap as it is (SDM: the processor reads the bitmap at each access).
const SYSENTER_CS_READ_BYTE = 0x174 >> 3, SYSENTER_CS_READ_BIT = 1 << (0x174 & 7);
function* setL1Bit(c: Ctx, on: boolean): Script {
  const a = l1hpa(c, BITMAP + SYSENTER_CS_READ_BYTE);
  const b = c.m.phys.read(a, 1)[0];
  c.m.phys.write(a, new Uint8Array([on ? b | SYSENTER_CS_READ_BIT : b & ~SYSENTER_CS_READ_BIT]));
}
const vmcs02Bit = (c: Ctx) => {
  const bitmap = Number(field(c, V.MSR_BITMAPS, c.vmcs02));
  return (c.m.phys.read(bitmap + SYSENTER_CS_READ_BYTE, 1)[0] & SYSENTER_CS_READ_BIT) !== 0;
};
test('enlightened MSR bitmap: a change of L1\'s bitmap is ignored while MSR_BITMAP is clean and counts once it is cleared', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    evWrite(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, evRead(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) | B(V.PROC_USE_MSR_BITMAPS));
    evWrite(c, V.MSR_BITMAPS, BigInt(BITMAP));
    w32(c, EVMCS + V.EVMCS_ENLIGHTENMENTS_CONTROL, V.EVMCS_ENLIGHTENMENT_MSR_BITMAP);
    yield* enter(c, true);
    assert.ok(!inL1(c), 'VMLAUNCH: L2 runs');
    assert.ok(!vmcs02Bit(c), 'vmcs02: RDMSR 174H does not exit (neither L0 nor L1 asks)');
    yield* hltToL1(c, 'HLT');
    yield* setL1Bit(c, true);
    yield* enter(c, false);
    assert.ok(!vmcs02Bit(c), 'L1 set its bit with MSR_BITMAP clean: vmcs02 unchanged (ignored)');
    yield* hltToL1(c, 'HLT 2');
    setClean(c, 0xffff & ~V.EVMCS_CLEAN_MSR_BITMAP);
    yield* enter(c, false);
    assert.ok(vmcs02Bit(c), 'MSR_BITMAP cleared: L1\'s bit counts');
    assert.is(clean(c), 0xffff, 'L0 set every clean bit again');
    yield* hltToL1(c, 'HLT 3');
    // Enlightenment off (its group's bit cleared so that the change is read): L1's bitmap is
    // merged at every entry, clean bit or not.
    w32(c, EVMCS + V.EVMCS_ENLIGHTENMENTS_CONTROL, 0);
    setClean(c, 0xffff & ~V.EVMCS_CLEAN_ENLIGHTENMENTSCONTROL);
    yield* setL1Bit(c, false);
    yield* enter(c, false);
    assert.ok(!vmcs02Bit(c), 'without the enlightenment L1\'s cleared bit counts at once');
    yield* hltToL1(c, 'HLT 4');
    // EnlightenmentsControl changed under its set clean bit is not picked up either.
    w32(c, EVMCS + V.EVMCS_ENLIGHTENMENTS_CONTROL, V.EVMCS_ENLIGHTENMENT_MSR_BITMAP);
    yield* setL1Bit(c, true);
    yield* enter(c, false);
    assert.ok(vmcs02Bit(c), 'the enlightenment set under a clean ENLIGHTENMENTSCONTROL bit is ignored: merged');
    yield* hltToL1(c, 'HLT 5');
  });
});

// VMREAD/VMWRITE/VMPTRST while the eVMCS is in use. TLFS "Enlightened VMCS": "No VMPTRLD
// instruction must be executed to make an enlightened VMCS active or current ... Any VMREAD or
// VMWRITE instructions while an enlightened VMCS is active is unsupported and can result in
// unexpected behavior." This hypervisor's answer (docs/guest-interface.md): VMREAD reads the
// eVMCS (KVM's, for L1s that do it anyway), a field the eVMCS lacks is VMfailValid(12) with
// the error in the eVMCS; VMWRITE is VMfailInvalid and VMPTRST stores FFFFFFFF_FFFFFFFFH, as
// with no current VMCS (SDM 31.3).
const regInfo = (reg1: number, reg2: number) =>
  BigInt((V.INSN_INFO_REG_OPERAND | reg1 << V.INSN_INFO_REG1_SHIFT | reg2 << V.INSN_INFO_REG2_SHIFT) >>> 0);
function* vmxInsn(c: Ctx, reason: number, info: bigint, regs: Record<number, bigint>): Generator<Exit, bigint, void> {
  const rip = field(c, V.GUEST_RIP);
  yield { reason, len: LEN, regs, fields: { [V.VM_EXIT_INSTRUCTION_INFO]: info, [V.GUEST_RFLAGS]: FLAGS_ALL } };
  assert.ok(inL1(c), 'L1 continues');
  assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), 'completed');
  return field(c, V.GUEST_RFLAGS) & ARITH;
}
test('eVMCS in use: VMREAD reads it (12 for a field it lacks), VMWRITE VMfailInvalid, VMPTRST all ones', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    yield* enter(c, true);
    yield* hltToL1(c, 'HLT');
    let f = yield* vmxInsn(c, V.EXIT_REASON_VMREAD, regInfo(RAX, RCX), { [RCX]: B(V.VM_EXIT_REASON), [RAX]: 0x5555n });
    assert.is(f, 0n, 'VMREAD of the exit reason: VMsucceed');
    assert.is(c.m.guestReg(RAX), B(V.EXIT_REASON_HLT), 'VMREAD gives the eVMCS exit reason');
    evWrite(c, V.GUEST_RSP, 0x4321n);
    f = yield* vmxInsn(c, V.EXIT_REASON_VMREAD, regInfo(RAX, RCX), { [RCX]: B(V.GUEST_RSP) });
    assert.is(c.m.guestReg(RAX), 0x4321n, 'VMREAD reads what L1 wrote into the eVMCS memory');
    f = yield* vmxInsn(c, V.EXIT_REASON_VMREAD, regInfo(RAX, RCX), { [RCX]: B(V.PLE_GAP) });
    assert.is(f, B(V.X86_RFLAGS_ZF), 'VMREAD of a field the eVMCS lacks: VMfailValid');
    assert.is(evRead(c, V.VM_INSTRUCTION_ERROR), 12n, 'error 12 in the eVMCS');
    f = yield* vmxInsn(c, V.EXIT_REASON_VMWRITE, regInfo(RDX, RCX), { [RCX]: B(V.GUEST_RSP), [RDX]: 0x1111n });
    assert.is(f, CF, 'VMWRITE: VMfailInvalid');
    assert.is(evRead(c, V.GUEST_RSP), 0x4321n, 'VMWRITE changed nothing');
    w64(c, DATA, 0x1234n);
    f = yield* vmxInsn(c, V.EXIT_REASON_VMPTRST, memInfo(), { [RBX]: BigInt(DATA) });
    assert.is(f, 0n, 'VMPTRST: VMsucceed');
    assert.is(c.m.phys.read64(l1hpa(c, DATA)), ALL1, 'VMPTRST: FFFFFFFF_FFFFFFFFH (no VMCS made current by VMPTRLD)');
  });
});

// TLFS HV_VMX_ENLIGHTENED_VMCS has no fields for these controls' values (the PLE gap and
// window, the VMX-preemption timer value, the VM-function controls, the VMREAD/VMWRITE bitmaps,
// the PML address, ...): a guest with hyperv=on is not offered them (kernel/nested/caps.ts
// EVMCS1_*_HIDDEN), so a processor with its capability MSRs would fail VMLAUNCH with one of them
// set: VMfailValid(7) (SDM 27.2.1.1: reserved control bits), the error in the eVMCS too.
test('hyperv=on: controls eVMCS v1 cannot express are not in the capability MSRs; setting one is VMfailValid(7)', () => {
  runOk(function* (c) {
    yield* bootL1(c);
    const proc2caps = yield* rdmsr(c, V.MSR_IA32_VMX_PROCBASED_CTLS2);
    for (const [bit, name] of [[V.PROC2_PAUSE_LOOP_EXITING, 'PAUSE-loop exiting'], [V.PROC2_ENABLE_VM_FUNCTIONS, 'VM functions'],
      [V.PROC2_VMCS_SHADOWING, 'VMCS shadowing'], [V.PROC2_ENABLE_PML, 'PML'], [V.PROC2_APIC_REGISTER_VIRTUALIZATION, 'APIC-register virtualization'],
      [V.PROC2_VIRTUAL_INTERRUPT_DELIVERY, 'virtual-interrupt delivery'], [V.PROC2_USE_TSC_SCALING, 'TSC scaling']] as const) {
      assert.is((proc2caps >> 32n) & B(bit), 0n, `${name} not offered with hyperv=on`);
    }
    assert.ok((proc2caps >> 32n) & B(V.PROC2_ENABLE_EPT), 'EPT still offered');
    const pin = yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_PINBASED_CTLS);
    assert.is((pin >> 32n) & B(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER | V.PIN_PROCESS_POSTED_INTERRUPTS), 0n, 'no timer, no posted interrupts');
    const exit = yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_EXIT_CTLS);
    assert.is((exit >> 32n) & B(V.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE | V.EXIT_LOAD_IA32_PERF_GLOBAL_CTRL), 0n, 'exit: no timer save, no PERF_GLOBAL_CTRL');
    const entry = yield* rdmsr(c, V.MSR_IA32_VMX_TRUE_ENTRY_CTLS);
    assert.is((entry >> 32n) & B(V.ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL), 0n, 'entry: no PERF_GLOBAL_CTRL');
    // IA32_VMX_VMFUNC exists only if "enable VM functions" may be 1 (A.11): #GP(0).
    yield { reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: B(V.MSR_IA32_VMX_VMFUNC) } };
    assert.is(field(c, V.VM_ENTRY_INTERRUPTION_INFO), 0x80000b0dn, 'RDMSR IA32_VMX_VMFUNC: #GP(0)');
    for (const [ctl, v] of [[V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, B(V.PROC2_PAUSE_LOOP_EXITING)],
      [V.PIN_BASED_VM_EXEC_CONTROL, evRead(c, V.PIN_BASED_VM_EXEC_CONTROL) | B(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER)]] as const) {
      const before = evRead(c, ctl);
      const proc = evRead(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL);
      evWrite(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, proc | B(V.PROC_ACTIVATE_SECONDARY_CONTROLS));
      evWrite(c, ctl, v);
      setClean(c, 0);
      const rip = field(c, V.GUEST_RIP);
      yield* enter(c, true);
      assert.ok(inL1(c), `${fieldName(ctl)} = ${v.toString(16)} through the eVMCS: L1 continues`);
      assert.is(field(c, V.GUEST_RFLAGS) & ARITH, B(V.X86_RFLAGS_ZF), 'VMfailValid');
      assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), 'completed');
      assert.is(evRead(c, V.VM_INSTRUCTION_ERROR), 7n, 'eVMCS VM-instruction error = 7');
      evWrite(c, ctl, before);
      evWrite(c, V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, proc);
    }
    // Without them (CONTROL_GRP1 holds the pin-based and secondary controls: its bit cleared) the launch works.
    setClean(c, 0xffff & ~(V.EVMCS_CLEAN_CONTROL_GRP1 | V.EVMCS_CLEAN_CONTROL_PROC));
    yield* enter(c, true);
    assert.ok(!inL1(c), 'without them: L2 runs');
    yield* hltToL1(c, 'HLT');
  });
});

test.run();
