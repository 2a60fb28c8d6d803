// Save and restore with the enlightened VMCS (issue 11 item 3; docs/snapshot.md "HYPERV",
// seeds 000 and 002) on kernel.wasm: a scripted 64-bit L1 on a guest with hyperv=on and
// nested=on (shadow-vmcs=off) enables its VP assist page, keeps its VMCS for L2 in an eVMCS
// and enters L2 through it (as tests/unit/evmcs.test.ts; the helpers are repeated here so that
// each file stands alone). Checked:
//   - snapshot=1 (every exit saves, destroys and restores the vCPU) is invisible to that L1:
//     it sees, step for step, what it sees without snapshots — in L2 (GUEST_MODE | EVMCS), in
//     L1 after a nested exit (EVMCS alone: the clean-bit contract and the launch state carry
//     over, so a field changed under a set clean bit is still not picked up, and VMLAUNCH of
//     the launched eVMCS is still VMfailValid(4)), after VMCLEAR of the eVMCS; with the HYPERV
//     section (the VP assist page MSR) restored after the nested state, and before it;
//   - the blob: no EVMCS flag before the first enlightened entry and after VMCLEAR (seed 002),
//     EVMCS with the eVMCS address in NESTED's VMCS12 while one is in use, the synthetic MSRs
//     in HYPERV; the snapshot line counts the snapshots with an eVMCS;
//   - after a GUEST_MODE restore the restored vmcs12 is in the eVMCS (L2's RIP there before L2
//     exits to L1: seed 000's copy), and an eVMCS that cannot be mapped (revision changed,
//     EnlightenVmEntry 0, CurrentNestedVmcs elsewhere or outside RAM, the VP assist page
//     disabled) is reported with the guest and the reason, the guest stopped, nothing else.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, buildBootInfo, loadKernel, type Machine, type Kernel } from '../model/index.ts';
import { fieldName } from '../model/vmcs-fields.ts';
import * as V from '../model/vmx-consts.ts';
import { NONE, table } from '../model/snapshot.ts';
import { tinyKernel, produceExit, RAX, RCX, RDX, RBX, type Exit } from './guest-script.ts';
import {
  type L1Ctx, type Script, B, ALL1, ADDR, L1_PML4, L1_PDPT, L1_PD, VMXON_REGION, EVMCS, ASSIST, DATA, HOST_RIP12, L2_RIP, OUTSIDE,
  field, l1hpa, w64, w32, r32, l1ToVmxon, fillEvmcs, CR0, CR4, EFER64, evWrite, evRead, clean, setClean, ARITH, FLAGS_ALL, LEN, memInfo, l1Insn, ptrInsn, rdmsr, wrmsr,
} from './evmcs-script.ts';

// ---- L1's memory -------------------------------------------------------------------
const OTHER = 0x23000;
const GUEST_OS_ID = 0x8100_0000_0001_0000n;

interface Ctx extends L1Ctx { k: Kernel; ept: bigint; buf: number }
const FINAL: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };

/** Run the scripted L1 with the command line's extra options; `hypervFirst`: the restore loads
 * HYPERV before NESTED. Returns the console and how the run ended; `finished`: the script ran
 * to its end (a guest the hypervisor stopped does not). */
function run(options: string, script: (c: Ctx) => Script, hypervFirst = false) {
  const m = tigerlake();
  buildBootInfo(m, { cmdline: `caps=off guest=/g nested=on shadow-vmcs=off hyperv=on ${options}`, files: [{ name: '/g', data: tinyKernel() }] });
  const k = loadKernel(m);
  const buf = Number(k.call<number>('snap_buffer', 64 * 1024).value) >>> 0;
  k.call('snap_setHypervFirst', hypervFirst);
  const c: Ctx = { m, k, ept: -1n, buf, l1Root: () => c.ept, l1Runs: () => inL1(c) };
  const gen = script(c);
  let finished = false;
  m.vmx.guest = (vmx) => {
    // L1's EPT: the restore gives every new vmcs01 the same pointer.
    if (c.ept < 0n) c.ept = vmx.field(V.EPT_POINTER) & ADDR;
    let exit = FINAL;
    if (!finished) {
      const r = gen.next();
      if (r.done) finished = true;
      else exit = r.value;
    }
    produceExit(m, vmx, exit, 0);
  };
  const r = k.call('kmain', m.bootInfo);
  assert.ok(r.ended, `kmain returned without ending the run: ${m.console.slice(-2000)}`);
  assert.equal(m.faults, [], m.console.slice(-3000));
  assert.is(r.trap, null, m.console.slice(-3000));
  return { console: m.console, status: m.exitStatus, finished };
}
function runOk(options: string, script: (c: Ctx) => Script, hypervFirst = false): string {
  const r = run(options, script, hypervFirst);
  assert.ok(r.finished, `the kernel ended the guest before the script finished: ${r.console.slice(-3000)}`);
  assert.is(r.status, 0, r.console.slice(-3000));
  return r.console;
}

function hook<T>(c: Ctx, name: string, ...args: unknown[]): T {
  const r = c.k.call<T>(name, ...args);
  if (r.ended) throw new Error(`${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
  return r.value as T;
}
const inL2 = (c: Ctx) => hook<number>(c, 'snap_inL2') === 1;
const inL1 = (c: Ctx) => hook<number>(c, 'snap_inL2') === 0;
function* enter(launch: boolean): Script {
  yield { reason: launch ? V.EXIT_REASON_VMLAUNCH : V.EXIT_REASON_VMRESUME, len: LEN,
    fields: { [V.VM_EXIT_INSTRUCTION_INFO]: 0n, [V.GUEST_RFLAGS]: FLAGS_ALL } };
}
// L2 runs; its HLT exits to L1 (HLT exiting in vmcs12), which is then at vmcs12's host RIP.
function* hltToL1(c: Ctx, what: string): Script {
  assert.ok(inL2(c), `${what}: L2 runs (console: ${c.m.console.slice(-300)})`);
  yield { reason: V.EXIT_REASON_HLT, len: 1 };
  assert.ok(inL1(c), `${what}: HLT exits to L1`);
  assert.is(field(c, V.GUEST_RIP), HOST_RIP12, `${what}: L1 at vmcs12's host RIP`);
}
// An exit L0 handles for itself while L2 runs (its own preemption-timer slice: vmcs12 does not
// activate L1's timer): with snapshot=1 a snapshot in L2, nothing for L1 to see.
function* l0Exit(c: Ctx, what: string): Script {
  assert.ok(inL2(c), `${what}: L2 runs`);
  yield { reason: V.EXIT_REASON_PREEMPTION_TIMER, len: 0 };
  assert.ok(inL2(c), `${what}: L2 runs on`);
}

// ---- L1 from reset to a launchable eVMCS --------------------------------------------------
function* bootL1(c: Ctx, atVmxon: () => void = () => {}): Script {
  const ctls = yield* l1ToVmxon(c, OTHER);
  atVmxon();
  // The partition's identity (TLFS "Reporting the Guest OS Identity"), the invariant TSC
  // exposed, the VP assist page.
  yield* wrmsr(c, V.MSR_HV_GUEST_OS_ID, GUEST_OS_ID);
  yield* wrmsr(c, V.MSR_HV_TSC_INVARIANT_CONTROL, 1n);
  yield* wrmsr(c, V.MSR_HV_VP_ASSIST_PAGE, BigInt(ASSIST) | 1n);
  fillEvmcs(c, ctls, 1);
}

// ---- the blob ------------------------------------------------------------------------------
function saveLive(c: Ctx): Uint8Array {
  const n = Number(hook<bigint>(c, 'snap_saveLive'));
  assert.ok(n > 0, 'the running vCPU is savable');
  return new Uint8Array((c.k.exports.memory as WebAssembly.Memory).buffer, c.buf, n).slice();
}
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
function nestedOf(b: Uint8Array): { flags: number; vmcs12: bigint } {
  const e = table(b).find((x) => x.id === V.SNAP_SEC_NESTED)!;
  return { flags: dv(b).getUint32(e.offset + V.SNAP_NESTED_FLAGS, true), vmcs12: dv(b).getBigUint64(e.offset + V.SNAP_NESTED_VMCS12, true) };
}
function hypervOf(b: Uint8Array): bigint[] {
  const e = table(b).find((x) => x.id === V.SNAP_SEC_HYPERV);
  assert.ok(e, 'a HYPERV section');
  return [V.SNAP_HYPERV_GUEST_OS_ID, V.SNAP_HYPERV_HYPERCALL, V.SNAP_HYPERV_TSC_INVARIANT_CONTROL, V.SNAP_HYPERV_VP_ASSIST_PAGE]
    .map((o) => dv(b).getBigUint64(e!.offset + o, true));
}
const SNAPLINE = /^hv: snapshots: (\d+) taken \(in VMX operation (\d+), with a current vmcs12 not launched \d+, in L2 (\d+), in a nested VM entry (\d+), with an eVMCS (\d+)\); every (\d+) exits/m;

// ---- the scenario ---------------------------------------------------------------------------

/** The whole life of an eVMCS, recording what L1 can see at each step (the same with and
 * without snapshots) in `seen`; what differs by design is asserted by the caller. */
function* life(c: Ctx, seen: string[], blobs: boolean): Script {
  const look = (what: string) => seen.push(`${what}: ${inL2(c) ? 'L2' : 'L1'} rip ${field(c, V.GUEST_RIP).toString(16)} ` +
    `rsp ${field(c, V.GUEST_RSP).toString(16)} rflags ${field(c, V.GUEST_RFLAGS).toString(16)} clean ${clean(c).toString(16)} ` +
    `ev.reason ${evRead(c, V.VM_EXIT_REASON)} ev.rip ${evRead(c, V.GUEST_RIP).toString(16)} ev.error ${evRead(c, V.VM_INSTRUCTION_ERROR)}`);
  yield* bootL1(c, () => {
    // Seed 002: in VMX operation, eVMCS possible (hyperv=on) but never used: no EVMCS flag.
    if (blobs) {
      const n = nestedOf(saveLive(c));
      assert.is(n.flags, 0, 'after VMXON, before any enlightened entry: no EVMCS flag');
      assert.is(n.vmcs12, NONE, 'and no current VMCS');
    }
  });
  if (blobs) assert.equal(hypervOf(saveLive(c)), [GUEST_OS_ID, 0n, 1n, BigInt(ASSIST) | 1n], 'HYPERV: the synthetic MSRs written');
  look('booted');
  yield* enter(true);
  assert.ok(inL2(c), `VMLAUNCH through the eVMCS: L2 runs (console: ${c.m.console.slice(-500)})`);
  assert.is(field(c, V.GUEST_RIP), L2_RIP, 'L2 at the eVMCS guest RIP');
  look('launched');
  // L2 moves on without exits to L1; L0's own exits in between.
  c.m.vmx.setField(V.GUEST_RIP, L2_RIP + 0x10n);
  c.m.vmx.setField(V.GUEST_RSP, 0x8ff0n);
  if (blobs) {
    const n = nestedOf(saveLive(c));
    assert.is(n.flags, V.SNAP_FLAG_GUEST_MODE | V.SNAP_FLAG_EVMCS, 'L2 runs from the eVMCS: GUEST_MODE | EVMCS');
    assert.is(n.vmcs12, BigInt(EVMCS), "NESTED's VMCS12 is the eVMCS's address");
  }
  yield* l0Exit(c, 'L0 exit 1');
  yield* l0Exit(c, 'L0 exit 2');
  assert.is(field(c, V.GUEST_RIP), L2_RIP + 0x10n, "L2's RIP kept");
  assert.is(field(c, V.GUEST_RSP), 0x8ff0n, "L2's RSP kept");
  const evRip = evRead(c, V.GUEST_RIP);
  yield* hltToL1(c, 'HLT');
  look('HLT to L1');
  assert.is(evRead(c, V.VM_EXIT_REASON), B(V.EXIT_REASON_HLT), 'eVMCS exit reason = HLT');
  assert.is(evRead(c, V.GUEST_RIP), L2_RIP + 0x10n, "eVMCS guest RIP = L2's RIP at the HLT");
  assert.is(evRead(c, V.GUEST_RSP), 0x8ff0n, "eVMCS guest RSP = L2's RSP at the HLT");
  if (blobs) {
    const n = nestedOf(saveLive(c));
    assert.is(n.flags, V.SNAP_FLAG_EVMCS, 'L1 runs, the eVMCS still in use: EVMCS alone');
    assert.is(n.vmcs12, BigInt(EVMCS));
  }
  // L1 changes RSP leaving GUEST_BASIC clean (the TLFS contract: not picked up), sets RIP
  // (read at every entry), then runs on for a few exits of its own (snapshots while L1 runs).
  evWrite(c, V.GUEST_RSP, 0x7770n);
  evWrite(c, V.GUEST_RIP, L2_RIP);
  for (let i = 0; i < 3; i++) {
    yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n } };
    assert.ok(inL1(c), 'CPUID: L1 continues');
  }
  yield* enter(false);
  assert.ok(inL2(c), 'VMRESUME: L2 runs');
  look('VMRESUME, RSP changed under a set clean bit');
  assert.is(field(c, V.GUEST_RSP), 0x8ff0n, 'RSP changed under a set GUEST_BASIC bit is not picked up');
  assert.is(field(c, V.GUEST_RIP), L2_RIP, 'guest RIP is read at every entry');
  yield* l0Exit(c, 'L0 exit 3');
  yield* hltToL1(c, 'HLT 2');
  // Clearing the bit makes it count.
  evWrite(c, V.GUEST_RSP, 0x7770n);
  setClean(c, 0xffff & ~V.EVMCS_CLEAN_GUEST_BASIC);
  yield* enter(false);
  assert.ok(inL2(c), 'VMRESUME: L2 runs');
  assert.is(field(c, V.GUEST_RSP), 0x7770n, 'RSP with GUEST_BASIC cleared is picked up');
  look('VMRESUME, GUEST_BASIC not clean');
  yield* hltToL1(c, 'HLT 3');
  // The launch state: VMLAUNCH of the launched eVMCS is VMfailValid(4).
  const rip = field(c, V.GUEST_RIP);
  yield* enter(true);
  assert.ok(inL1(c), 'VMLAUNCH of a launched eVMCS: L1 continues');
  assert.is(field(c, V.GUEST_RFLAGS) & ARITH, B(V.X86_RFLAGS_ZF), 'VMfailValid');
  assert.is(field(c, V.GUEST_RIP), rip + BigInt(LEN), 'completed');
  assert.is(evRead(c, V.VM_INSTRUCTION_ERROR), B(V.VMXERR_VMLAUNCH_NONCLEAR_VMCS), 'eVMCS VM-instruction error = 4');
  look('VMLAUNCH of the launched eVMCS');
  // VMCLEAR ends its use: no EVMCS flag any more.
  yield* ptrInsn(c, 'VMCLEAR of the eVMCS', V.EXIT_REASON_VMCLEAR, BigInt(EVMCS));
  if (blobs) {
    const n = nestedOf(saveLive(c));
    assert.is(n.flags, 0, 'after VMCLEAR of the eVMCS: no EVMCS flag');
    assert.is(n.vmcs12, NONE, 'and no current VMCS');
  }
  yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n } };
  look('after VMCLEAR');
  // A new use reads every group again.
  evWrite(c, V.GUEST_RSP, 0x6660n);
  yield* enter(true);
  assert.ok(inL2(c), 'VMLAUNCH after VMCLEAR: L2 runs');
  assert.is(field(c, V.GUEST_RSP), 0x6660n, 'every group read after VMCLEAR');
  yield* hltToL1(c, 'HLT after VMCLEAR');
  look('end');
}

test('snapshot=1 and 2 are invisible to an L1 using an eVMCS, with HYPERV restored after NESTED and before it', () => {
  const want: string[] = [];
  const plain = runOk('', function* (c) { yield* life(c, want, false); });
  assert.not.match(plain, /^hv: snapshots:/m);
  assert.is(want.length, 8);
  for (const [options, hypervFirst] of [['snapshot=1', false], ['snapshot=1', true], ['snapshot=2', false]] as const) {
    const seen: string[] = [];
    const out = runOk(options, function* (c) { yield* life(c, seen, options === 'snapshot=1'); }, hypervFirst);
    const what = `${options}${hypervFirst ? ', HYPERV first' : ''}`;
    assert.equal(seen, want, what);
    const m = SNAPLINE.exec(out);
    assert.ok(m, `${what}: the snapshot line`);
    const [taken, inVmx, l2, , evmcs] = m!.slice(1).map(Number);
    console.log(`  ${what}: ${m![0]}`);
    assert.ok(taken > 10 && inVmx > 8, `${what}: ${taken} snapshots, ${inVmx} in VMX operation`);
    assert.ok(l2 >= 3, `${what}: ${l2} of them in L2`);
    assert.ok(evmcs >= 6 && evmcs < inVmx, `${what}: ${evmcs} with an eVMCS (in L2 and in L1), not all in VMX operation`);
    assert.not.match(out, /cannot be mapped/, what);
  }
});

test("seed 000: after a restore in L2 the restored vmcs12 is in the eVMCS (L2's RIP before it exits to L1)", () => {
  for (const hypervFirst of [false, true]) {
    let checked = false;
    runOk('snapshot=1', function* (c) {
      yield* bootL1(c);
      yield* enter(true);
      assert.ok(inL2(c), 'L2 runs');
      c.m.vmx.setField(V.GUEST_RIP, L2_RIP + 0x20n);
      c.m.vmx.setField(V.GUEST_RFLAGS, 0x46n);
      assert.is(evRead(c, V.GUEST_RIP), L2_RIP, 'the eVMCS holds what L1 wrote');
      yield* l0Exit(c, 'L0 exit (a snapshot in L2)');
      assert.is(evRead(c, V.GUEST_RIP), L2_RIP + 0x20n, "the restore wrote L2's RIP into the eVMCS");
      assert.is(evRead(c, V.GUEST_RFLAGS), 0x46n, "and L2's RFLAGS");
      assert.is(evRead(c, V.HOST_RIP), HOST_RIP12, "L1's host state as L1 wrote it");
      assert.is(clean(c), 0xffff, 'clean bits as the entry left them');
      yield* hltToL1(c, 'HLT');
      checked = true;
    }, hypervFirst);
    assert.ok(checked);
  }
});

// Issue 11: "an NMI delivered right after a restore while L2 runs: L2 exits to L1 with reason
// 0 and L1's VMRESUME continues at the right RIP" (as KVM's selftest injects one with
// KVM_SET_VCPU_EVENTS after restoring the nested state). vmcs12 has NMI exiting (bootL1):
// SDM Vol. 3C 26.2 (exit 0, interruption information valid, type NMI, vector 2) and 28.5.5
// (NMIs blocked after a VM exit caused by an NMI).
test('an NMI right after a restore while L2 runs from the eVMCS: exit 0 to L1 with L2\'s RIP; VMRESUME continues there', () => {
  for (const hypervFirst of [false, true]) {
    let checked = false;
    runOk('snapshot=1', function* (c) {
      yield* bootL1(c);
      yield* enter(true);
      assert.ok(inL2(c), 'L2 runs');
      c.m.vmx.setField(V.GUEST_RIP, L2_RIP + 0x30n);
      hook(c, 'snap_nmiAfterRestore', true);
      yield { reason: V.EXIT_REASON_PREEMPTION_TIMER, len: 0 }; // L0's own exit: a snapshot in L2, then the NMI
      hook(c, 'snap_nmiAfterRestore', false);
      assert.ok(inL1(c), 'the NMI exits to L1 (NMI exiting)');
      assert.is(field(c, V.GUEST_RIP), HOST_RIP12, "L1 at vmcs12's host RIP");
      assert.is(evRead(c, V.VM_EXIT_REASON), 0n, 'exit reason 0 in the eVMCS');
      assert.is(evRead(c, V.VM_EXIT_INTERRUPTION_INFO), 0x80000202n, 'interruption information: valid, NMI, vector 2');
      assert.is(evRead(c, V.GUEST_RIP), L2_RIP + 0x30n, "L2's RIP where the NMI arrived");
      assert.is(field(c, V.GUEST_INTERRUPTIBILITY_STATE) & B(V.INTERRUPTIBILITY_BLOCKING_BY_NMI),
        B(V.INTERRUPTIBILITY_BLOCKING_BY_NMI), 'NMIs blocked in L1 after the NMI exit');
      yield* enter(false);
      assert.ok(inL2(c), 'VMRESUME enters L2');
      assert.is(field(c, V.GUEST_RIP), L2_RIP + 0x30n, 'L2 continues at that RIP');
      yield* hltToL1(c, 'HLT');
      checked = true;
    }, hypervFirst);
    assert.ok(checked);
  }
});

/** L2 runs from the eVMCS; `spoil` changes L1's memory as L2 could (then a snapshot in L2). */
function failing(spoil: (c: Ctx) => void, hypervFirst = false) {
  let spoiled = false;
  const r = run('snapshot=1', function* (c) {
    yield* bootL1(c);
    yield* enter(true);
    assert.ok(inL2(c), 'L2 runs');
    yield* l0Exit(c, 'a snapshot in L2 before the change');
    spoil(c);
    spoiled = true;
    yield { reason: V.EXIT_REASON_PREEMPTION_TIMER, len: 0 };
    throw new Error('test bug: the guest went on');
  }, hypervFirst);
  assert.ok(spoiled, r.console.slice(-2000));
  assert.not.ok(r.finished);
  return r;
}

test('an eVMCS that cannot be mapped after a restore: the guest and the reason on the console, the guest stopped', () => {
  const cases: [string, (c: Ctx) => void, RegExp][] = [
    ['revision', (c) => w32(c, EVMCS + V.EVMCS_REVISION_ID, 5), /the eVMCS's VersionNumber 0x5 is neither 1 nor the VMCS revision id$/],
    ['EnlightenVmEntry', (c) => c.m.phys.write(l1hpa(c, ASSIST + V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY), new Uint8Array([0])), /the VP assist page's EnlightenVmEntry is 0$/],
    ['another eVMCS', (c) => w64(c, ASSIST + V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, BigInt(OTHER)), /CurrentNestedVmcs 0x23000 is not the snapshot's eVMCS 0x21000$/],
    ['outside RAM', (c) => w64(c, ASSIST + V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, OUTSIDE), /CurrentNestedVmcs 0x7ff000000000 is not a 4-KiB aligned page of L1's RAM$/],
  ];
  for (const [what, spoil, why] of cases) {
    for (const hypervFirst of [false, true]) {
      const r = failing(spoil, hypervFirst);
      const line = r.console.split('\n').find((l) => l.startsWith('hv: snapshot: guest 1: the eVMCS L2 ran from cannot be mapped after the restore: '));
      assert.ok(line, `${what}: the line (console: ${r.console.slice(-1500)})`);
      assert.match(line!, why, what);
      assert.match(r.console, /^hv: guest 1 \(\/g\) ended: stopped, \d+ exits.*: NOT as expected$/m, `${what}: the guest stopped`);
      assert.match(r.console, /^hv: guests: 1 run, some NOT as expected$/m, `${what}: the hypervisor went on to its end`);
    }
  }
});

test('the mapping itself (snap_mapEvmcs): the VP assist page disabled is refused and changes nothing; mapped, L2 state in the eVMCS', () => {
  runOk('', function* (c) {
    yield* bootL1(c);
    yield* enter(true);
    assert.ok(inL2(c), 'L2 runs');
    c.m.vmx.setField(V.GUEST_RIP, L2_RIP + 0x30n);
    yield* l0Exit(c, 'L0 exit');
    // (Without snapshot=N nothing wrote L2's RIP into the eVMCS yet.)
    assert.is(evRead(c, V.GUEST_RIP), L2_RIP);
    assert.is(hook<number>(c, 'snap_mapEvmcs'), 0, 'MAPPED');
    yield* l0Exit(c, 'L0 exit after the mapping');
    yield* hltToL1(c, 'HLT');
    // L1 disables its VP assist page while the eVMCS is still in use (legal while L1 runs).
    yield* wrmsr(c, V.MSR_HV_VP_ASSIST_PAGE, 0n);
    const before = c.m.phys.read(l1hpa(c, EVMCS), 4096).slice();
    assert.is(hook<number>(c, 'snap_mapEvmcs'), 1, 'VP_ASSIST_DISABLED');
    assert.equal([...c.m.phys.read(l1hpa(c, EVMCS), 4096)], [...before], 'nothing written into the eVMCS');
    yield* wrmsr(c, V.MSR_HV_VP_ASSIST_PAGE, BigInt(ASSIST) | 1n);
  });
});

test('a guest-requested snapshot (hypercalls 3, 4) of an L1 with an eVMCS in use: the MSRs, the eVMCS use and the launch state come back', () => {
  runOk('mem=8M', function* (c) {
    yield* bootL1(c);
    yield* enter(true);
    yield* hltToL1(c, 'HLT');
    yield { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 3n, [RBX]: 0n } };
    assert.is(c.m.guestReg(RAX), 0n, 'taken');
    const point = field(c, V.GUEST_RIP);
    // Scribble: the VP assist page disabled, the identity cleared, the eVMCS forgotten (VMCLEAR).
    yield* wrmsr(c, V.MSR_HV_VP_ASSIST_PAGE, 0n);
    yield* wrmsr(c, V.MSR_HV_GUEST_OS_ID, 0n);
    yield* ptrInsn(c, 'VMCLEAR of the eVMCS', V.EXIT_REASON_VMCLEAR, BigInt(EVMCS));
    yield { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 4n, [RBX]: 0n } };
    assert.is(field(c, V.GUEST_RIP), point, 'back at the snapshot point');
    assert.is(c.m.guestReg(RAX), 3n, 'restored');
    assert.is(yield* rdmsr(c, V.MSR_HV_VP_ASSIST_PAGE), BigInt(ASSIST) | 1n, 'VP assist page MSR back');
    assert.is(yield* rdmsr(c, V.MSR_HV_GUEST_OS_ID), GUEST_OS_ID, 'guest OS identity back');
    assert.is(yield* rdmsr(c, V.MSR_HV_TSC_INVARIANT_CONTROL), 1n, 'TSC invariant control back');
    // The eVMCS is in use again, launched: VMLAUNCH fails with 4, VMRESUME runs L2.
    yield* enter(true);
    assert.ok(inL1(c), 'VMLAUNCH of the launched eVMCS: L1 continues');
    assert.is(evRead(c, V.VM_INSTRUCTION_ERROR), B(V.VMXERR_VMLAUNCH_NONCLEAR_VMCS), 'VMfailValid(4) in the eVMCS');
    evWrite(c, V.GUEST_RIP, L2_RIP);
    yield* enter(false);
    assert.ok(inL2(c), 'VMRESUME: L2 runs');
    yield* hltToL1(c, 'HLT after the restore');
  });
});

test.run();
