// Saving and restoring a running vCPU (kernel/snapshot/save.ts, restore.ts,
// cycle.ts, hypercall.ts) on the model, with kernel.wasm running one
// scripted guest:
//  - save -> restore -> save gives the same blob: a guest with state in
//    every section (registers, FXSAVE image, vmcs01's guest state, emulated
//    and pass-through MSRs, local APIC with a pending vector and a counting
//    timer, debug registers, XCR0) goes through snapshot=1 on 1 and on 2
//    processors; the vCPU object, its VMCS and (2 CPUs) its processor
//    change, the blob does not (but for the TSC's value at the moment);
//  - snapshot=1 is invisible: a script of exits gives the guest the same
//    answers with and without it;
//  - a rejected blob leaves the vCPU as it was (same object, same VMCS,
//    same blob when saved again), with the rule named on the console;
//  - the snapshot hypercalls (functions 3 and 4): RAX/RBX at the snapshot
//    point, registers, MSRs, APIC and RAM back after each restore, errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, buildBootInfo, type Machine, type Kernel } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';
import { NONE, table, frame, set12 } from '../model/snapshot.ts';
import { tinyKernel, produceExit, type Exit, RAX, RBX, RCX, RDX, GP, injected } from './guest-script.ts';

interface Ctx { m: Machine; k: Kernel; buf: number }
type Script = (c: Ctx) => Generator<Exit, void, void>;

const FINAL: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };

/** Run one guest whose exits the generator yields; the code between two
 * yields runs at the VM entry after the handler (the kernel is inside
 * vmx.enter: hooks may be called). After the last yield the guest ends
 * itself with isa-debug-exit 0. */
function run(cmdline: string, cpus: number, script: Script) {
  const m = tigerlake();
  m.cpuCount = cpus;
  m.crs.set(4, m.cr(4) | (1n << 18n)); // CR4.OSXSAVE: guests get XSAVE (the XSTATE section)
  buildBootInfo(m, { cmdline: `caps=off guest=/g ${cmdline}`, files: [{ name: '/g', data: tinyKernel() }] });
  const k = loadKernel(m);
  const buf = Number(k.call<number>('snap_buffer', 64 * 1024).value) >>> 0;
  const gen = script({ m, k, buf });
  m.vmx.guest = (vmx) => {
    const n = gen.next();
    produceExit(m, vmx, n.done ? FINAL : n.value, 2);
  };
  k.call('kmain', m.bootInfo);
  return { status: m.exitStatus, console: m.console, faults: m.faults };
}

function hook<T>(c: Ctx, name: string, ...args: unknown[]): T {
  const r = c.k.call<T>(name, ...args);
  if (r.ended) throw new Error(`${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
  return r.value as T;
}
/** The running vCPU's blob (snap_saveLive). */
function saveLive(c: Ctx): Uint8Array {
  const n = Number(hook<bigint>(c, 'snap_saveLive'));
  assert.ok(n > 0, 'the running vCPU is savable');
  return new Uint8Array((c.k.exports.memory as WebAssembly.Memory).buffer, c.buf, n).slice();
}
function restoreLive(c: Ctx, blob: Uint8Array): string {
  new Uint8Array((c.k.exports.memory as WebAssembly.Memory).buffer, c.buf, blob.length).set(blob);
  const rule = hook<number>(c, 'snap_restoreLive', BigInt(blob.length));
  const p = hook<number>(c, 'snap_ruleName', rule) >>> 0;
  const mem = (c.k.exports.memory as WebAssembly.Memory).buffer;
  const len = new Uint32Array(mem, p - 4, 1)[0];
  return Buffer.from(new Uint8Array(mem, p, len)).toString('utf16le');
}

const sec = (b: Uint8Array, id: number) => {
  const e = table(b).find((x) => x.id === id);
  if (!e) throw new Error(`no section ${id}`);
  return e;
};
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const pairOf = (b: Uint8Array, id: number, key: number): bigint => {
  const s = sec(b, id);
  for (let o = s.offset; o < s.offset + s.size; o += 16) if (dv(b).getUint32(o, true) === key) return dv(b).getBigUint64(o + 8, true);
  throw new Error(`no item ${key.toString(16)}`);
};
/** The blob without what moves on by itself: L1's TSC at the snapshot point
 * and the APIC timer's current count (both computed from the TSC). */
function timeless(b: Uint8Array): Uint8Array {
  const c = b.slice();
  c.fill(0, sec(c, V.SNAP_SEC_TIMERS).offset + V.SNAP_TIMERS_L1_TSC, sec(c, V.SNAP_SEC_TIMERS).offset + V.SNAP_TIMERS_L1_TSC + 8);
  dv(c).setUint32(sec(c, V.SNAP_SEC_APIC).offset + V.SNAP_APIC_PAGE + 0x390, 0, true);
  return c;
}
function sameBlob(a: Uint8Array, b: Uint8Array, what: string) {
  const x = timeless(a), y = timeless(b);
  assert.is(y.length, x.length, `${what}: blob size`);
  const at = x.findIndex((v, i) => v !== y[i]);
  if (at >= 0) {
    const s = table(x).find((e) => at >= e.offset && at < e.offset + Math.max(e.size, 8));
    assert.unreachable(`${what}: blobs differ at byte ${at} (section ${s?.id}, offset ${s ? at - s.offset : '-'}): ${x[at]} vs ${y[at]}`);
  }
}

/** Host-physical address of guest-physical gpa (the guest's EPT). */
function hpa(m: Machine, gpa: bigint): number {
  let t = m.vmx.field(V.EPT_POINTER) & 0x000ffffffffff000n;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = m.phys.read64(Number(t + ((gpa >> shift) & 511n) * 8n));
    if ((e & 7n) === 0n) throw new Error(`gpa ${gpa.toString(16)} not mapped`);
    if (level === 1 || (e & 0x80n) !== 0n) return Number((e & 0x000ffffffffff000n & ~((1n << shift) - 1n)) | (gpa & ((1n << shift) - 1n)));
    t = e & 0x000ffffffffff000n;
  }
  throw new Error('unreachable');
}

/** The guest writes bytes at guest-physical gpa, as the processor would with
 * EPT accessed/dirty flags enabled (EPTP bit 6, the RAM snapshot's
 * tracking: SDM Vol. 3C 29.3.5): the accessed flag of every entry on the
 * way, the dirty flag of the leaf. */
function guestWrite(m: Machine, gpa: bigint, bytes: Uint8Array) {
  const eptp = m.vmx.field(V.EPT_POINTER);
  assert.ok((eptp & 0x40n) !== 0n, 'EPTP enables the accessed/dirty flags (the model has them)');
  let t = eptp & 0x000ffffffffff000n;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const at = Number(t + ((gpa >> shift) & 511n) * 8n);
    const e = m.phys.read64(at);
    const leaf = level === 1 || (e & 0x80n) !== 0n;
    m.phys.write64(at, e | (1n << 8n) | (leaf ? 1n << 9n : 0n));
    if (leaf) break;
    t = e & 0x000ffffffffff000n;
  }
  m.phys.write(hpa(m, gpa), bytes);
}

const APIC = 0xfee00000n;
const CODE = 0x200000n; // guest-physical: a MOV [EBX], EAX for APIC writes
/** The guest writes `value` to APIC register `off` (MOV at CODE, an EPT
 * violation the hypervisor emulates). */
function* apicWrite(c: Ctx, off: number, value: bigint): Generator<Exit, void, void> {
  c.m.phys.write(hpa(c.m, CODE), Uint8Array.of(0x89, 0x03));
  yield { reason: V.EXIT_REASON_EPT_VIOLATION, qual: 2n, len: 0, regs: { [RBX]: APIC + BigInt(off), [RAX]: value },
    fields: { [V.GUEST_PHYSICAL_ADDRESS]: APIC + BigInt(off), [V.GUEST_RIP]: CODE } };
  assert.is(c.m.vmx.field(V.GUEST_RIP), CODE + 2n, `APIC write at ${off.toString(16)} completed`);
}
const wrmsr = (msr: number, v: bigint): Exit => ({ reason: V.EXIT_REASON_WRMSR, len: 2, regs: { [RCX]: BigInt(msr), [RAX]: v & 0xffffffffn, [RDX]: v >> 32n } });
const rdmsr = (msr: number): Exit => ({ reason: V.EXIT_REASON_RDMSR, len: 2, regs: { [RCX]: BigInt(msr) } });
const movToCr = (cr: number, gpr: number) => BigInt(cr | (gpr << 8));

const DRS = [0x401000n, 0xffff800000001000n, 0x7ff000n, 0x8000n];
const DR6 = 0xffff4ff1n;
const LOCAL: [number, bigint][] = [[V.MSR_IA32_STAR, 0x0023001000000000n], [V.MSR_IA32_LSTAR, 0xffffffff81000000n],
  [V.MSR_IA32_CSTAR, 0xffffffff81000100n], [V.MSR_IA32_FMASK, 0x47700n], [V.MSR_IA32_KERNEL_GS_BASE, 0xffff888000000000n],
  [V.MSR_IA32_TSC_AUX, 3n]];
const FIELDS: [number, bigint][] = [[V.GUEST_RFLAGS, 0x2d7n], [V.GUEST_DS_SELECTOR, 0x18n], [V.GUEST_DS_BASE, 0x10000n],
  [V.GUEST_FS_BASE, 0x7f0000001000n], [V.GUEST_GS_BASE, 0x5000n], [V.GUEST_GDTR_BASE, 0x9000n], [V.GUEST_GDTR_LIMIT, 0x3fn],
  [V.GUEST_IDTR_BASE, 0xa000n], [V.GUEST_IDTR_LIMIT, 0x7ffn], [V.GUEST_DR7, 0x40dn], [V.GUEST_IA32_DEBUGCTL, 1n],
  [V.GUEST_IA32_SYSENTER_CS, 0x10n], [V.GUEST_IA32_SYSENTER_ESP, 0x8000n], [V.GUEST_IA32_SYSENTER_EIP, 0x101234n],
  [V.GUEST_IA32_PAT, 0x0007010600070106n], [V.GUEST_CR3, 0x3000n], [V.GUEST_RSP, 0x9ff0n]];

/** Give the guest state in every section of the blob. */
function* richState(c: Ctx): Generator<Exit, void, void> {
  // Local APIC: software-enabled, TPR 0xF0 (through CR8: nothing gets
  // delivered), a self-IPI pending in IRR, a periodic timer counting.
  yield* apicWrite(c, 0xf0, 0x1ffn);
  yield { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(8, RCX), len: 4, regs: { [RCX]: 15n } };
  yield* apicWrite(c, 0x300, 0x40040n); // self shorthand, fixed, vector 40H
  yield* apicWrite(c, 0x3e0, 0x3n);
  yield* apicWrite(c, 0x320, 0x20031n); // periodic, vector 31H
  yield* apicWrite(c, 0x380, 0x10000000n);
  // Emulated MSRs, XCR0.
  yield wrmsr(V.MSR_IA32_MTRR_DEF_TYPE, 0xc05n);
  yield wrmsr((V.MSR_IA32_MTRR_FIX4K_C0000 + 1), 0x0504010006050401n);
  yield wrmsr(V.MSR_IA32_TSC_ADJUST, 12345n);
  yield { reason: V.EXIT_REASON_XSETBV, len: 3, regs: { [RCX]: 0n, [RAX]: 7n, [RDX]: 0n } };
  assert.is(injected(c.m), 0n, 'XSETBV 7 accepted');
  // What the guest changes without exits: registers, FXSAVE image, vmcs01's
  // guest state, the pass-through MSRs and the debug registers.
  for (const [f, v] of FIELDS) c.m.vmx.setField(f, v);
  for (let r = 0; r < 16; r++) if (r !== 4) c.m.setGuestReg(r, 0x1111111111111111n * BigInt(r + 1));
  const mem = (c.k.exports.memory as WebAssembly.Memory).buffer;
  const fx = new DataView(mem, c.m.regsPtr + V.REGS_FX, 512);
  fx.setUint16(0, 0x27f, true);
  fx.setUint32(24, 0x1fa0, true);
  for (let i = 160; i < 288; i += 4) fx.setUint32(i, 0xa5a50000 + i, true); // XMM0-7
  c.m.setGuestReg(V.REGS_CR2 / 8, 0xdead000n);
  for (const [n, v] of LOCAL) c.m.setMsr(n, v);
  DRS.forEach((v, i) => (c.m.drs[i] = v));
  c.m.drs[6] = DR6;
}

/** The rich state is in blob b (so that comparing two blobs means something). */
function hasRichState(b: Uint8Array) {
  const d = sec(b, V.SNAP_SEC_DEBUG);
  DRS.forEach((v, i) => assert.is(dv(b).getBigUint64(d.offset + 8 * i, true), v, `DR${i}`));
  assert.is(dv(b).getBigUint64(d.offset + V.SNAP_DEBUG_DR6, true), DR6);
  for (const [n, v] of LOCAL) assert.is(pairOf(b, V.SNAP_SEC_MSRS, n), v, `MSR ${n.toString(16)}`);
  assert.is(pairOf(b, V.SNAP_SEC_MSRS, V.MSR_IA32_MTRR_DEF_TYPE), 0xc05n);
  assert.is(pairOf(b, V.SNAP_SEC_MSRS, (V.MSR_IA32_MTRR_FIX4K_C0000 + 1)), 0x0504010006050401n);
  assert.is(pairOf(b, V.SNAP_SEC_MSRS, V.MSR_IA32_TSC_ADJUST), 12345n);
  for (const [f, v] of FIELDS) assert.is(pairOf(b, V.SNAP_SEC_VMCS01, f), v, `field ${f.toString(16)}`);
  const a = sec(b, V.SNAP_SEC_APIC).offset + V.SNAP_APIC_PAGE;
  const reg = (r: number) => dv(b).getUint32(a + r, true);
  assert.is(reg(0x80), 0xf0, 'TPR');
  assert.is(reg(0xf0), 0x1ff, 'SVR');
  assert.is(reg(0x200 + 0x20), 1, 'IRR vector 40H');
  assert.is(reg(0x320), 0x20031, 'LVT timer');
  assert.is(reg(0x380), 0x10000000, 'initial count');
  assert.is(reg(0x3e0), 3, 'DCR');
  assert.not.equal(dv(b).getBigUint64(sec(b, V.SNAP_SEC_TIMERS).offset + V.SNAP_TIMERS_APIC_DEADLINE, true), NONE, 'timer counting');
  const r = sec(b, V.SNAP_SEC_REGS).offset;
  assert.is(dv(b).getBigUint64(r + 8 * 13, true), BigInt.asUintN(64, 0x1111111111111111n * 14n), 'R13');
  assert.is(dv(b).getBigUint64(r + V.REGS_CR2, true), 0xdead000n, 'CR2');
  assert.is(dv(b).getUint32(r + V.REGS_FX + 24, true), 0x1fa0, 'MXCSR');
  assert.is(dv(b).getBigUint64(sec(b, V.SNAP_SEC_XSTATE).offset + V.SNAP_XSTATE_XCR0, true), 7n, 'XCR0');
}

for (const cpus of [1, 2]) {
  test(`save -> restore -> save: the same blob (snapshot=1, ${cpus} CPU${cpus > 1 ? 's' : ''}); a new vCPU object, VMCS${cpus > 1 ? ' and processor' : ''} each time`, () => {
    let rounds = 0;
    const r = run('snapshot=1', cpus, function* (c) {
      yield* richState(c);
      for (let i = 0; i < 6; i++) {
        const a = saveLive(c);
        if (i === 0) hasRichState(a);
        const before = { regs: c.m.regsPtr, vmcs: c.m.vmx.currentVmcs, cpu: c.m.cpuIndex };
        // An exit whose handler changes nothing of the guest (the
        // preemption timer's): what differs afterwards, the restore did.
        yield { reason: V.EXIT_REASON_PREEMPTION_TIMER, len: 0 };
        sameBlob(a, saveLive(c), `round ${i}`);
        assert.not.equal(c.m.regsPtr, before.regs, 'another Vcpu object');
        assert.not.equal(c.m.vmx.currentVmcs, before.vmcs, 'another VMCS');
        if (cpus > 1) assert.not.equal(c.m.cpuIndex, before.cpu, 'another processor');
        rounds++;
      }
    });
    assert.equal(r.faults, []);
    assert.is(r.status, 0, r.console);
    assert.is(rounds, 6);
    assert.match(r.console, new RegExp(`^hv: snapshots: \\d+ taken \\(in VMX operation 0, with a current vmcs12 not launched 0, in L2 0, in a nested VM entry 0, with an eVMCS 0\\); every 1 exits, ${cpus} processor`, 'm'));
  });
}

// ---- hyperv=on: the HYPERV section ----------------------------------------------------------------

// The synthetic MSRs that keep a value (vm/exit/hyperv.ts), with the guest's values: an identity,
// the hypercall page enabled (written into RAM when enabled), the invariant TSC exposed, the VP
// assist page enabled.
const HV_MSRS: [number, bigint][] = [[V.MSR_HV_GUEST_OS_ID, 0x8100_0000_0001_0000n], [V.MSR_HV_HYPERCALL, 0x240000n | 0x5n],
  [V.MSR_HV_TSC_INVARIANT_CONTROL, 1n], [V.MSR_HV_VP_ASSIST_PAGE, 0x241000n | 1n]];
const hvSection = (b: Uint8Array): bigint[] => [V.SNAP_HYPERV_GUEST_OS_ID, V.SNAP_HYPERV_HYPERCALL, V.SNAP_HYPERV_TSC_INVARIANT_CONTROL,
  V.SNAP_HYPERV_VP_ASSIST_PAGE].map((o) => dv(b).getBigUint64(sec(b, V.SNAP_SEC_HYPERV).offset + o, true));
function* readHv(c: Ctx): Generator<Exit, bigint[], void> {
  const out: bigint[] = [];
  for (const [msr] of HV_MSRS) {
    yield rdmsr(msr);
    assert.is(injected(c.m), 0n, `RDMSR ${msr.toString(16)}: no #GP`);
    out.push((c.m.guestReg(RDX) << 32n) | (c.m.guestReg(RAX) & 0xffffffffn));
  }
  return out;
}

test('hyperv=on: the synthetic MSRs in HYPERV, the same blob after each snapshot=1 cycle, read back as written', () => {
  let rounds = 0;
  const r = run('hyperv=on snapshot=1', 1, function* (c) {
    assert.equal(hvSection(saveLive(c)), [0n, 0n, 0n, 0n], 'a guest that wrote none: all 0');
    for (const [msr, v] of HV_MSRS) {
      yield wrmsr(msr, v);
      assert.is(injected(c.m), 0n, `WRMSR ${msr.toString(16)}: no #GP`);
    }
    yield* richState(c);
    const a = saveLive(c);
    assert.equal(hvSection(a), HV_MSRS.map(([, v]) => v), 'HYPERV holds what the guest wrote');
    assert.is(table(a).at(-1)!.id, V.SNAP_SEC_HYPERV, 'the last section');
    for (let i = 0; i < 3; i++) {
      yield { reason: V.EXIT_REASON_PREEMPTION_TIMER, len: 0 };
      sameBlob(a, saveLive(c), `round ${i}`);
      rounds++;
    }
    assert.equal(yield* readHv(c), HV_MSRS.map(([, v]) => v), 'RDMSR after the cycles');
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.is(rounds, 3);
  assert.match(r.console, /^hv: snapshots: \d+ taken \(in VMX operation 0, with a current vmcs12 not launched 0, in L2 0, in a nested VM entry 0, with an eVMCS 0\); every 1 exits/m);
});

test('an NMI the vCPU took but could not deliver yet (blocking by NMI) is in EVENTS and survives snapshot=1', () => {
  // The guest is in its NMI handler (blocking by NMI, 24.4.2) when it sends
  // itself an NMI through the Hyper-V ICR MSR: the NMI must wait for the NMI
  // window (26.3.1.5). snapshot=1 saves, destroys and restores the vCPU
  // after every exit: the NMI must come through the EVENTS section.
  const NMI = (V.INTR_INFO_VALID | (V.INTR_TYPE_NMI << 8) | 2) >>> 0;
  const nmiPending = (b: Uint8Array) => dv(b).getUint32(sec(b, V.SNAP_SEC_EVENTS).offset + V.SNAP_EVENTS_NMI_PENDING, true);
  let checked = false;
  const r = run('hyperv=on snapshot=1', 1, function* (c) {
    assert.is(nmiPending(saveLive(c)), 0, 'no NMI yet: NMI_PENDING 0');
    yield { ...wrmsr(0x40000071 /* HV_X64_MSR_ICR (TLFS; kernel/vm/exit/hyperv.ts) */, 0x00040400n),
      fields: { [V.GUEST_INTERRUPTIBILITY_STATE]: BigInt(V.INTERRUPTIBILITY_BLOCKING_BY_NMI) } };
    assert.is(injected(c.m), 0n, 'blocked by NMI: not injected');
    assert.ok((Number(c.m.vmx.field(V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL)) & V.PROC_NMI_WINDOW_EXITING) !== 0,
      'the restored vCPU waits for the NMI window');
    assert.is(nmiPending(saveLive(c)), 1, 'EVENTS: NMI_PENDING 1');
    yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n },
      fields: { [V.GUEST_INTERRUPTIBILITY_STATE]: BigInt(V.INTERRUPTIBILITY_BLOCKING_BY_NMI) } };
    assert.is(injected(c.m), 0n, 'another exit and cycle, still blocked');
    // The handler's IRET ends the blocking: the NMI window opens.
    yield { reason: V.EXIT_REASON_NMI_WINDOW, len: 0, fields: { [V.GUEST_INTERRUPTIBILITY_STATE]: 0n } };
    assert.is(injected(c.m), BigInt(NMI), 'the NMI injected at the window');
    assert.is(nmiPending(saveLive(c)), 0, 'delivered: NMI_PENDING 0');
    checked = true;
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.ok(checked);
});

test('hyperv=on: hypercalls 3 and 4 take and put back the synthetic MSRs (no longer refused)', () => {
  let checked = false;
  const r = run('mem=8M hyperv=on', 1, function* (c) {
    for (const [msr, v] of HV_MSRS) yield wrmsr(msr, v);
    yield vmcall(3n, 0n);
    assert.is(c.m.guestReg(RAX), 0n, 'taken: RAX = 0');
    // Scribble: the identity cleared (which disables the hypercall page), the VP assist page
    // moved, the invariant TSC hidden again.
    yield wrmsr(V.MSR_HV_GUEST_OS_ID, 0n);
    yield wrmsr(V.MSR_HV_VP_ASSIST_PAGE, 0x300000n | 1n);
    yield wrmsr(V.MSR_HV_TSC_INVARIANT_CONTROL, 0n);
    assert.equal(yield* readHv(c), [0n, 0x240000n | 0x4n, 0n, 0x300000n | 1n], 'scribbled');
    yield vmcall(4n, 0n);
    assert.is(c.m.guestReg(RAX), 3n, 'restored: RAX = 3');
    assert.equal(yield* readHv(c), HV_MSRS.map(([, v]) => v), 'the MSRs as at the take');
    checked = true;
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.ok(checked);
  assert.not.match(r.console, /refused/);
});

// ---- snapshot=N is invisible -------------------------------------------------------------------

/** What the guest sees at each entry of a script of exits with visible answers. */
function observe(cmdline: string, cpus: number): string[] {
  const seen: string[] = [];
  const look = (c: Ctx, what: string) => seen.push(`${what}: rip ${c.m.vmx.field(V.GUEST_RIP).toString(16)} rax ${c.m.guestReg(RAX).toString(16)} ` +
    `rbx ${c.m.guestReg(RBX).toString(16)} rcx ${c.m.guestReg(RCX).toString(16)} rdx ${c.m.guestReg(RDX).toString(16)} ` +
    `inj ${injected(c.m).toString(16)} cr0 ${c.m.vmx.field(V.CR0_READ_SHADOW).toString(16)} act ${c.m.vmx.field(V.GUEST_ACTIVITY_STATE)}`);
  const r = run(cmdline, cpus, function* (c) {
    yield { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(4, RAX), len: 3, regs: { [RAX]: BigInt(V.X86_CR4_VMXE) } };
    look(c, 'CR4.VMXE: #GP pending');
    assert.is(injected(c.m), GP);
    yield { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(0, RBX), len: 3, regs: { [RBX]: 0x33n } };
    look(c, 'CR0');
    yield { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(8, RCX), len: 4, regs: { [RCX]: 9n } };
    yield { reason: V.EXIT_REASON_CR_ACCESS, qual: 8n | (1n << 4n) | (BigInt(RDX) << 8n), len: 4, regs: { [RDX]: 0n } };
    look(c, 'CR8');
    yield rdmsr(V.MSR_IA32_MTRR_DEF_TYPE);
    look(c, 'MTRR default');
    yield wrmsr(V.MSR_IA32_MTRR_DEF_TYPE, 0x806n);
    yield rdmsr(V.MSR_IA32_MTRR_DEF_TYPE);
    look(c, 'MTRR default written');
    yield wrmsr(V.MSR_IA32_MTRR_DEF_TYPE, 0x2n);
    look(c, 'MTRR type 2: #GP');
    yield rdmsr(V.MSR_IA32_APIC_BASE);
    look(c, 'APIC base');
    yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 1n, [RCX]: 0n } };
    look(c, 'CPUID 1');
    yield { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 2n, [RBX]: 1n } };
    look(c, 'exits so far');
    yield { reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: 2n, [RBX]: 0n } };
    look(c, 'interface version');
    yield* apicWrite(c, 0x80, 0x20n);
    yield { reason: V.EXIT_REASON_CR_ACCESS, qual: 8n | (1n << 4n) | (BigInt(RDX) << 8n), len: 4, regs: { [RDX]: 0n } };
    look(c, 'TPR through MMIO, read through CR8');
    yield { reason: V.EXIT_REASON_XSETBV, len: 3, regs: { [RCX]: 0n, [RAX]: 5n, [RDX]: 0n } };
    look(c, 'XSETBV AVX without SSE: #GP');
  });
  assert.equal(r.faults, [], cmdline);
  assert.is(r.status, 0, r.console);
  if (cmdline.includes('snapshot=')) assert.match(r.console, /^hv: snapshots: [1-9]\d* taken \(in VMX operation 0,/m);
  return seen;
}

test('snapshot=1, 2, 3 on 1 and 2 CPUs: the guest gets the same answers as without', () => {
  const want = observe('', 1);
  assert.is(want.length, 12);
  for (const cpus of [1, 2]) for (const n of [1, 2, 3]) assert.equal(observe(`snapshot=${n}`, cpus), want, `snapshot=${n}, ${cpus} CPU(s)`);
});

// ---- rejection -------------------------------------------------------------------------------------

test('a rejected blob: the rule on the console, and the vCPU as it was (same object, VMCS, blob); the guest goes on', () => {
  const cases: [string, (b: Uint8Array) => void][] = [
    ['debug.dr6', (b) => dv(b).setUint32(sec(b, V.SNAP_SEC_DEBUG).offset + V.SNAP_DEBUG_DR6 + 4, 1, true)],
    ['msr.value', (b) => {
      const s = sec(b, V.SNAP_SEC_MSRS);
      for (let o = s.offset; o < s.offset + s.size; o += 16) if (dv(b).getUint32(o, true) === V.MSR_IA32_LSTAR) dv(b).setBigUint64(o + 8, 0x0000800000000000n, true);
    }],
    ['apic.base', (b) => dv(b).setBigUint64(sec(b, V.SNAP_SEC_APIC).offset + V.SNAP_APIC_BASE, 0xfec00900n, true)],
    ['blob.magic', (b) => (b[0] ^= 0xff)],
    ['regs.mxcsr', (b) => dv(b).setUint32(sec(b, V.SNAP_SEC_REGS).offset + V.REGS_FX + 24, 0x1f80 | (1 << 20), true)],
    ['blob.truncated', () => {}],
  ];
  let done = 0;
  const r = run('', 1, function* (c) {
    yield* richState(c);
    for (const [rule, mutate] of cases) {
      const a = saveLive(c);
      const b = rule === 'blob.truncated' ? a.slice(0, a.length - 8) : a.slice();
      mutate(b);
      const before = { regs: c.m.regsPtr, vmcs: c.m.vmx.currentVmcs, console: c.m.console.length };
      assert.is(restoreLive(c, b), rule);
      assert.match(c.m.console.slice(before.console), new RegExp(`^hv: snapshot rejected: ${rule.replace('.', '\\.')} `, 'm'));
      assert.is(c.m.vmx.currentVmcs, before.vmcs, `${rule}: vmcs01 still current`);
      sameBlob(a, saveLive(c), `${rule}: the vCPU unchanged`);
      yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n } };
      assert.is(c.m.regsPtr, before.regs, `${rule}: the same vCPU runs on`);
      done++;
    }
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.is(done, cases.length);
});

test('a GUEST_MODE blob whose vmcs12 fails a VM-entry check: rejected naming the check, the vCPU as it was', () => {
  // The running vCPU's own blob made to say L2 was running: L1 in VMX
  // operation with a current vmcs12 whose controls lack the pin-based
  // must-be-1 bits (SDM 27.2.1.1). Everything before the entry checks holds.
  const REV = 0x41534856; // kernel/nested/caps.ts REVISION_ID
  let done = false;
  const r = run('nested=on', 1, function* (c) {
    yield* richState(c);
    const a = saveLive(c);
    const secs: [number, Uint8Array][] = table(a).filter((e) => e.id < V.SNAP_SEC_NESTED).map((e) => [e.id, a.slice(e.offset, e.offset + e.size)]);
    const nested = new Uint8Array(V.SNAP_NESTED_BYTES);
    const nv = new DataView(nested.buffer);
    nv.setUint32(V.SNAP_NESTED_FLAGS, V.SNAP_FLAG_GUEST_MODE, true);
    nv.setBigUint64(V.SNAP_NESTED_VMXON, 0x20000n, true);
    nv.setBigUint64(V.SNAP_NESTED_VMCS12, 0x21000n, true);
    nv.setBigUint64(V.SNAP_NESTED_PREEMPTION_DEADLINE, NONE, true);
    const page = new Uint8Array(V.VMCS12_PAGE_SIZE);
    new DataView(page.buffer).setUint32(V.VMCS12_REVISION_ID_OFFSET, REV, true);
    new DataView(page.buffer).setUint32(V.VMCS12_LAUNCH_STATE_OFFSET, 1, true);
    set12(page, V.VMCS_LINK_POINTER, NONE);
    const b = frame(0, [...secs, [V.SNAP_SEC_NESTED, nested], [V.SNAP_SEC_VMCS12, page]]);
    const before = { regs: c.m.regsPtr, vmcs: c.m.vmx.currentVmcs, console: c.m.console.length };
    assert.is(restoreLive(c, b), 'vmcs12.entry-checks');
    assert.match(c.m.console.slice(before.console), /^hv: snapshot rejected: vmcs12\.entry-checks \(section VMCS12, value 0x1\): vmcs12 failed the VM-entry checks: VM-execution, exit and entry controls \(SDM 27\.2\.1\): ctls\.pin\.reserved$/m);
    assert.is(c.m.vmx.currentVmcs, before.vmcs, 'vmcs01 still current');
    sameBlob(a, saveLive(c), 'the vCPU unchanged');
    yield { reason: V.EXIT_REASON_CPUID, len: 2, regs: { [RAX]: 0n, [RCX]: 0n } };
    assert.is(c.m.regsPtr, before.regs, 'the same vCPU runs on');
    done = true;
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.ok(done);
});

// ---- the snapshot hypercalls -------------------------------------------------------------------

// COM1's scratch register (3FFH): device state that the restore puts back.
const outScr = (v: bigint): Exit => ({ reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0x3ffn << 16n), len: 1, regs: { [RAX]: v } });
const inScr: Exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0x3ffn << 16n) | 8n, len: 1, regs: { [RAX]: 0n } };
const vmcall = (fn: bigint, rbx = 0n, more: Record<number, bigint> = {}): Exit => ({ reason: V.EXIT_REASON_VMCALL, len: 3, regs: { [RAX]: fn, [RBX]: rbx, ...more } });

test('hypercalls 3 and 4: RAX = 0 at the take, RAX = 3 and RBX = n after restore n, with registers, MSRs, APIC, RAM, devices and timers back', () => {
  const DATA = 0x300000n;
  let checked = 0;
  // 8 MiB of RAM: the RAM snapshot's copy (snapshot/vmram.ts, ram.ts) needs as much again.
  // The first take makes it (the RAM is mapped with 4-KiB leaves from then on).
  const r = run('mem=8M', 1, function* (c) {
    yield vmcall(2n, 0n);
    assert.is(c.m.guestReg(RAX), 2n, 'interface version 2');
    yield vmcall(4n);
    assert.is(c.m.guestReg(RAX), 4n, 'restore without a snapshot: RAX = 4');
    yield vmcall(3n, 1n);
    assert.is(c.m.guestReg(RAX), 1n, 'snapshot with RBX != 0: RAX = 1');
    yield* richState(c);
    c.m.phys.write(hpa(c.m, DATA), Uint8Array.of(1, 2, 3, 4));
    yield outScr(0x5an);
    const beforeTake = saveLive(c);
    yield vmcall(3n, 0n, { [R15]: 0x1515n });
    const point = c.m.vmx.field(V.GUEST_RIP);
    assert.is(c.m.guestReg(RAX), 0n, 'taken: RAX = 0');
    assert.is(c.m.guestReg(RBX), 0n, 'taken: RBX = 0');
    const atTake = saveLive(c);
    const deadline0 = dv(atTake).getBigUint64(sec(atTake, V.SNAP_SEC_TIMERS).offset + V.SNAP_TIMERS_APIC_DEADLINE, true);
    // (L1's TSC before the take: the take's own is between this and atTake's.)
    const tsc0 = dv(beforeTake).getBigUint64(sec(beforeTake, V.SNAP_SEC_TIMERS).offset + V.SNAP_TIMERS_L1_TSC, true);
    let lastTsc = tsc0;
    for (let n = 1n; n <= 3n; n++) {
      // Scribble: memory, registers, an emulated MSR, the TPR, a
      // pass-through MSR, a debug register; let time pass.
      guestWrite(c.m, DATA, Uint8Array.of(9, 9, 9, 9));
      yield wrmsr(V.MSR_IA32_MTRR_DEF_TYPE, 0x806n);
      yield { reason: V.EXIT_REASON_CR_ACCESS, qual: movToCr(8, RCX), len: 4, regs: { [RCX]: 3n } };
      c.m.setMsr(V.MSR_IA32_LSTAR, 0xffffffff82000000n);
      c.m.drs[0] = 0x5000n;
      c.m.tsc += 100000n;
      yield outScr(0xa5n);
      yield vmcall(4n, 0n, { [R15]: 0xbadn, [RCX]: 0x77n });
      assert.is(c.m.vmx.field(V.GUEST_RIP), point, `restore ${n}: back at the snapshot point`);
      assert.is(c.m.guestReg(RAX), 3n, `restore ${n}: RAX = 3`);
      assert.is(c.m.guestReg(RBX), n, `restore ${n}: RBX = ${n}`);
      assert.is(c.m.guestReg(R15), 0x1515n, `restore ${n}: R15 as at the take`);
      assert.equal([...c.m.phys.read(hpa(c.m, DATA), 4)], [1, 2, 3, 4], `restore ${n}: RAM back`);
      const now = saveLive(c);
      yield inScr;
      assert.is(c.m.guestReg(RAX) & 0xffn, 0x5an, `restore ${n}: COM1's scratch register back`);
      hasRichState(now);
      // The TSC went on; the APIC timer is as far from its deadline as at the take.
      const t = sec(now, V.SNAP_SEC_TIMERS).offset;
      const tsc = dv(now).getBigUint64(t + V.SNAP_TIMERS_L1_TSC, true);
      assert.ok(tsc > lastTsc, `restore ${n}: the TSC never goes back`);
      lastTsc = tsc;
      const moved = dv(now).getBigUint64(t + V.SNAP_TIMERS_APIC_DEADLINE, true) - deadline0;
      assert.ok(moved > 0n && moved <= tsc - tsc0, `restore ${n}: the deadline moved on with the time since the take (${moved})`);
      checked++;
    }
    yield vmcall(4n, 2n);
    assert.is(c.m.guestReg(RAX), 1n, 'restore with RBX != 0: RAX = 1');
  });
  assert.equal(r.faults, []);
  assert.is(r.status, 0, r.console);
  assert.is(checked, 3);
});

const R15 = 15;

test.run();
