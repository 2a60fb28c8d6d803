// The hypervisor's VM-entry checks on a vmcs12 (kernel/nested/entry-checks*.ts,
// SDM Vol. 3C 27.2-27.3) through kernel.wasm's entry_* hooks (kernel/hooks/
// entry.ts), on the tigerlake model with the capabilities the hypervisor OFFERS
// L1 (read back through entry_capMsr). First a consistent 64-bit vmcs12 that
// must pass; then one mutation per row with the expected class and check name;
// then random multi-field mutations where the kernel's class must match the
// model's own oracle (tests/model/entry-checks.ts) and the kernel never traps.
// L1 is offered EPT and unrestricted guest (issue 5): the EPT-pointer checks
// (27.2.1.1), "unrestricted guest" without "enable EPT", the relaxed guest
// checks of an unrestricted guest (27.3.1) and, for a PAE guest with EPT, the
// PDPTE fields (27.3.1.6) have rows and are reached by the random mutations.
// L1 is offered VPID too: "enable VPID" with a VPID of 0000H fails (27.2.1.1),
// in rows and in the random mutations. Where a vmcs12 breaks more than one
// rule, 27.2 lets VM entry report any of them ("These checks may be
// performed in any order"): such rows accept each.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, type Machine } from '../model/index.ts';
import { checkControls, checkHostState, checkGuestState, type EntryEnv } from '../model/entry-checks.ts';
import type { VmxCaps } from '../model/vmcs-fields.ts';
import * as C from '../model/vmx-consts.ts';
import { prng, type Rng } from './prng.ts';

// A number is a 32-bit pattern (JS bitwise results are signed); a bigint is 64 bits.
const B = (v: number | bigint): bigint => (typeof v === 'number' ? BigInt(v >>> 0) : BigInt.asUintN(64, v));
const MiB = 0x100000;
const HOST_BASE = 16 * MiB; // L1's RAM in the model's physical memory
const RAM = 32 * MiB; // L1's RAM size: guest-physical [0, RAM)
const VMCS12 = 0x10000; // guest-physical address of the current vmcs12
const OTHER_VMCS = 0x11000; // a second VMCS region (link-pointer cases)
const SHADOW_VMCS = 0x12000; // a region with the shadow-VMCS indicator set
const PDPT = 0x31000; // PAE page-directory-pointer table (32-bit PAE cases)
const ALL1 = 0xffffffffffffffffn;

const OK = 0, CONTROLS = 1, HOST = 2, GUEST = 3;
const CLASS_NAMES = ['ok', 'controls', 'host', 'guest'];

// ---- the kernel -----------------------------------------------------------------------

type Fields = Map<number, bigint>;

const width = new Map<number, number>(C.VMCS_FIELDS.map((f) => [f.encoding, f.width === 'natural' ? 64 : f.width]));
const truncate = (enc: number, v: bigint): bigint => BigInt.asUintN(width.get(enc) ?? 64, v);

interface Rig {
  m: Machine;
  call<T = number>(name: string, ...args: unknown[]): T;
  caps: VmxCaps;
  offered: { pin0: number; proc0: number; exit0: number; entry0: number; basic: bigint };
  run(f: Fields, l1Ia32e?: boolean): { cls: number; name: string; qual: bigint };
  // The outcome of the check that just returned class cls.
  outcome(cls: number): { cls: number; name: string; qual: bigint };
  // cls, problems: the first failing class (controls, then host state, then
  // guest state) and its broken rules; all: the broken rules of every class.
  model(f: Fields, l1Ia32e?: boolean): { cls: number; problems: string[]; quals: number[]; all: string[][] };
}

function rig(): Rig {
  const m = tigerlake();
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  call('entry_setup');
  call('entry_setupRam', B(HOST_BASE), B(RAM));
  // L1's VMCS regions carry our revision id (VMPTRLD checked it for the current one).
  const rev = Number(call<bigint>('entry_capMsr', C.MSR_IA32_VMX_BASIC) & 0x7fffffffn);
  m.phys.write32(HOST_BASE + VMCS12, rev);
  m.phys.write32(HOST_BASE + OTHER_VMCS, rev);
  m.phys.write32(HOST_BASE + SHADOW_VMCS, (rev | 0x80000000) >>> 0);
  call('entry_makeCurrent', B(VMCS12));

  const msr = (n: number): bigint => call<bigint>('entry_capMsr', n);
  const basic = msr(C.MSR_IA32_VMX_BASIC);
  const trueCtls = ((basic >> 55n) & 1n) === 1n;
  const lo = (v: bigint): number => Number(v & 0xffffffffn);
  const hi = (v: bigint): number => Number(v >> 32n);
  const pin = msr(trueCtls ? C.MSR_IA32_VMX_TRUE_PINBASED_CTLS : C.MSR_IA32_VMX_PINBASED_CTLS);
  const proc = msr(trueCtls ? C.MSR_IA32_VMX_TRUE_PROCBASED_CTLS : C.MSR_IA32_VMX_PROCBASED_CTLS);
  const exit = msr(trueCtls ? C.MSR_IA32_VMX_TRUE_EXIT_CTLS : C.MSR_IA32_VMX_EXIT_CTLS);
  const entry = msr(trueCtls ? C.MSR_IA32_VMX_TRUE_ENTRY_CTLS : C.MSR_IA32_VMX_ENTRY_CTLS);
  const caps: VmxCaps = {
    revision: rev, regionSize: Number((basic >> 32n) & 0x1fffn), addr32: ((basic >> 48n) & 1n) === 1n, trueCtls,
    pin0: lo(pin), pin1: hi(pin), proc0: lo(proc), proc1: hi(proc),
    proc2_1: (hi(proc) >>> 31) & 1 ? hi(msr(C.MSR_IA32_VMX_PROCBASED_CTLS2)) : 0,
    exit0: lo(exit), exit1: hi(exit), entry0: lo(entry), entry1: hi(entry),
    misc: msr(C.MSR_IA32_VMX_MISC),
    cr0Fixed0: msr(C.MSR_IA32_VMX_CR0_FIXED0), cr0Fixed1: msr(C.MSR_IA32_VMX_CR0_FIXED1),
    cr4Fixed0: msr(C.MSR_IA32_VMX_CR4_FIXED0), cr4Fixed1: msr(C.MSR_IA32_VMX_CR4_FIXED1),
    // entry_capMsr gives 0 for an MSR L1 would get #GP on (A.10, A.11).
    eptVpidCap: msr(C.MSR_IA32_VMX_EPT_VPID_CAP), vmfunc: msr(C.MSR_IA32_VMX_VMFUNC), maxPhysAddr: m.maxPhysAddr(),
  };
  const inRam = (pa: number, n: number): boolean => pa >= 0 && pa + n <= RAM;
  const rtm = ((m.cpuidRaw(7, 0)[1] >>> 11) & 1) === 1;

  // The outcome of the last check: class, check name, qualification, and
  // the answer (VM-instruction error 7/8, or exit reason 33 | bit 31).
  const outcome = (cls: number) => {
    const n = call<number>('entry_failedName');
    const buf = call<number>('entry_nameBuf');
    const name = Buffer.from(new Uint8Array(k.exports.memory.buffer, buf, n)).toString('latin1');
    const answer = call<number>('entry_answer') >>> 0;
    assert.is(answer, [0, C.VMXERR_ENTRY_INVALID_CONTROL_FIELD, C.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD,
      (C.EXIT_REASON_ENTRY_FAILURE_GUEST_STATE | C.EXIT_REASON_FLAG_ENTRY_FAILURE) >>> 0][cls], `answer of class ${cls}`);
    return { cls, name, qual: call<bigint>('entry_qualification') };
  };

  return {
    m, call, caps, outcome,
    offered: { pin0: caps.pin0, proc0: caps.proc0, exit0: caps.exit0, entry0: caps.entry0, basic },
    run(f, l1Ia32e = true) {
      call('entry_clear');
      for (const [enc, v] of f) assert.ok(call<number>('entry_setField', enc, v), `vmcs12 has field ${enc.toString(16)}`);
      call('entry_setL1Ia32e', l1Ia32e ? 1 : 0);
      // The full, pure check a restore runs on a vmcs12 (entry-checks.ts
      // checkAll) first: the same outcome as VMLAUNCH's checks of a vmcs12
      // whose every field changed, and the Nested's record of what to
      // check again untouched (entry_clear made it "everything").
      const dirty = call<number>('entry_dirty');
      const all = outcome(call<number>('entry_checkAll'));
      assert.is(call<number>('entry_dirty'), dirty, 'checkAll changed the Nested');
      const launch = outcome(call<number>('entry_check', 1));
      assert.equal(all, launch, 'checkAll = VMLAUNCH checks');
      return launch;
    },
    model(f, l1Ia32e = true) {
      const env: EntryEnv = {
        caps,
        read: (e) => f.get(e) ?? 0n,
        readPhys32: (pa) => (inRam(pa, 4) ? m.phys.read32(HOST_BASE + pa) : 0xffffffff),
        readPhys64: (pa) => (inRam(pa, 8) ? m.phys.read64(HOST_BASE + pa) : ALL1),
        linearBits: (m.cpuidRaw(0x80000008, 0)[0] >>> 8) & 0xff,
        ia32eMode: l1Ia32e,
        inSmm: false,
        ramSize: B(RAM),
        anyErrorCode: ((basic >> 56n) & 1n) === 1n,
        currentVmcs: B(VMCS12),
        rtm,
        sgx: false, // L1 cannot enable SGX (its IA32_FEATURE_CONTROL)
        debugctlAllowed: B(C.X86_DEBUGCTL_LBR | C.X86_DEBUGCTL_BTF), // no IA32_DEBUGCTL access, no perfmon for L1
        eferAllowed: B(C.X86_EFER_SCE | C.X86_EFER_LME | C.X86_EFER_LMA | C.X86_EFER_NXE),
      };
      const ctl = checkControls(env), host = checkHostState(env), g = checkGuestState(env);
      const all = [[], ctl, host, g.map((p) => p.rule)];
      if (ctl.length) return { cls: CONTROLS, problems: ctl, quals: [], all };
      if (host.length) return { cls: HOST, problems: host, quals: [], all };
      if (g.length) return { cls: GUEST, problems: g.map((p) => p.rule), quals: g.map((p) => p.qualification), all };
      return { cls: OK, problems: [], quals: [], all };
    },
  };
}

// ---- a consistent vmcs12: 64-bit L1 host, 64-bit L2 -------------------------------------

const AR_CODE64 = 0xa09b; // G, L, P, S, type 11
const AR_CODE32 = 0xc09b; // G, D/B, P, S, type 11
const AR_DATA = 0xc093; // G, D/B, P, S, type 3
const AR_TSS_BUSY = 0x8b; // P, type 11
const AR_UNUSABLE = 0x10000;
const GOOD_EPTP = 0x40000n | 6n | (3n << 3n); // WB (6), page-walk length 4 (bits 5:3 = 3)
const PDPTE_FIELDS = [C.GUEST_PDPTE0, C.GUEST_PDPTE1, C.GUEST_PDPTE2, C.GUEST_PDPTE3];
const PAT = 0x0007040600070406n;
const EFER64 = B(C.X86_EFER_SCE | C.X86_EFER_LME | C.X86_EFER_LMA | C.X86_EFER_NXE);
const CR0 = B(C.X86_CR0_PG | C.X86_CR0_WP | C.X86_CR0_NE | C.X86_CR0_ET | C.X86_CR0_MP | C.X86_CR0_PE);
const CR4 = B(C.X86_CR4_PAE | C.X86_CR4_PGE | C.X86_CR4_OSFXSR | C.X86_CR4_OSXMMEXCPT | C.X86_CR4_VMXE);
const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
const seg = (name: (typeof SEGS)[number], what: 'SELECTOR' | 'BASE' | 'LIMIT' | 'ACCESS_RIGHTS'): number =>
  (C as any)[`GUEST_${name}_${what}`] as number;

function valid(r: Rig): Fields {
  const f: Fields = new Map();
  const set = (e: number, v: number | bigint) => f.set(e, truncate(e, B(v)));
  // Controls.
  set(C.PIN_BASED_VM_EXEC_CONTROL, r.offered.pin0 | C.PIN_EXTERNAL_INTERRUPT_EXITING | C.PIN_NMI_EXITING);
  set(C.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, (r.offered.proc0 | C.PROC_HLT_EXITING | C.PROC_USE_IO_BITMAPS |
    C.PROC_USE_MSR_BITMAPS | C.PROC_ACTIVATE_SECONDARY_CONTROLS) >>> 0);
  set(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_ENABLE_RDTSCP);
  set(C.CR3_TARGET_COUNT, 0);
  set(C.IO_BITMAP_A, 0x20000);
  set(C.IO_BITMAP_B, 0x21000);
  set(C.MSR_BITMAPS, 0x22000);
  set(C.VM_EXIT_CONTROL, r.offered.exit0 | C.EXIT_HOST_ADDRESS_SPACE_SIZE | C.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT |
    C.EXIT_SAVE_IA32_PAT | C.EXIT_LOAD_IA32_PAT | C.EXIT_SAVE_IA32_EFER | C.EXIT_LOAD_IA32_EFER);
  set(C.VM_EXIT_MSR_STORE_COUNT, 2);
  set(C.VM_EXIT_MSR_STORE_ADDRESS, 0x23000);
  set(C.VM_EXIT_MSR_LOAD_COUNT, 1);
  set(C.VM_EXIT_MSR_LOAD_ADDRESS, 0x23100);
  set(C.VM_ENTRY_CONTROL, r.offered.entry0 | C.ENTRY_IA32E_MODE_GUEST | C.ENTRY_LOAD_DEBUG_CONTROLS |
    C.ENTRY_LOAD_IA32_PAT | C.ENTRY_LOAD_IA32_EFER);
  set(C.VM_ENTRY_MSR_LOAD_COUNT, 1);
  set(C.VM_ENTRY_MSR_LOAD_ADDRESS, 0x23200);
  set(C.VM_ENTRY_INTERRUPTION_INFO, 0);
  set(C.VM_ENTRY_EXCEPTION_ERROR_CODE, 0);
  set(C.VM_ENTRY_INSTRUCTION_LENGTH, 0);
  // Host state (L1 in 64-bit mode).
  set(C.HOST_CR0, CR0);
  set(C.HOST_CR3, 0x100000);
  set(C.HOST_CR4, CR4);
  set(C.HOST_ES_SELECTOR, 0x10);
  set(C.HOST_CS_SELECTOR, 0x08);
  set(C.HOST_SS_SELECTOR, 0x10);
  set(C.HOST_DS_SELECTOR, 0x10);
  set(C.HOST_FS_SELECTOR, 0);
  set(C.HOST_GS_SELECTOR, 0);
  set(C.HOST_TR_SELECTOR, 0x18);
  set(C.HOST_FS_BASE, 0);
  set(C.HOST_GS_BASE, 0xffff800000001000n);
  set(C.HOST_TR_BASE, 0x1000);
  set(C.HOST_GDTR_BASE, 0x2000);
  set(C.HOST_IDTR_BASE, 0x3000);
  set(C.HOST_IA32_SYSENTER_ESP, 0);
  set(C.HOST_IA32_SYSENTER_EIP, 0);
  set(C.HOST_IA32_PAT, PAT);
  set(C.HOST_IA32_EFER, EFER64);
  set(C.HOST_RSP, 0x8000);
  set(C.HOST_RIP, 0x101000);
  // Guest state (L2 in 64-bit mode, CPL 0).
  set(C.GUEST_CR0, CR0);
  set(C.GUEST_CR3, 0x30000);
  set(C.GUEST_CR4, CR4);
  set(C.GUEST_DR7, 0x400);
  set(C.GUEST_IA32_DEBUGCTL, 0);
  set(C.GUEST_IA32_PAT, PAT);
  set(C.GUEST_IA32_EFER, EFER64);
  set(C.GUEST_IA32_SYSENTER_ESP, 0);
  set(C.GUEST_IA32_SYSENTER_EIP, 0);
  for (const s of SEGS) {
    const [sel, ar, lim, base] =
      s === 'CS' ? [0x08, AR_CODE64, 0xffffffff, 0] :
      s === 'TR' ? [0x18, AR_TSS_BUSY, 0x67, 0x5000] :
      s === 'LDTR' ? [0, AR_UNUSABLE, 0, 0] : [0x10, AR_DATA, 0xffffffff, 0];
    set(seg(s, 'SELECTOR'), sel);
    set(seg(s, 'ACCESS_RIGHTS'), ar);
    set(seg(s, 'LIMIT'), lim);
    set(seg(s, 'BASE'), base);
  }
  set(C.GUEST_GDTR_BASE, 0x6000);
  set(C.GUEST_GDTR_LIMIT, 0x7f);
  set(C.GUEST_IDTR_BASE, 0x7000);
  set(C.GUEST_IDTR_LIMIT, 0xfff);
  set(C.GUEST_RSP, 0x9000);
  set(C.GUEST_RIP, 0x401000);
  set(C.GUEST_RFLAGS, C.X86_RFLAGS_FIXED1 | C.X86_RFLAGS_IF);
  set(C.GUEST_ACTIVITY_STATE, C.ACTIVITY_STATE_ACTIVE);
  set(C.GUEST_INTERRUPTIBILITY_STATE, 0);
  set(C.GUEST_PENDING_DEBUG_EXCEPTIONS, 0);
  set(C.VMCS_LINK_POINTER, ALL1);
  // EPT's fields, used once a mutation turns "enable EPT" on.
  set(C.EPT_POINTER, GOOD_EPTP);
  // The VPID, used once a mutation turns "enable VPID" on.
  set(C.VIRTUAL_PROCESSOR_ID, 1);
  PDPTE_FIELDS.forEach((e, i) => set(e, [0x32001n, 0x33001n, 0n, 0x34001n][i]));
  return f;
}

// Mutation helpers.
type Mut = (f: Fields, r: Rig) => void;
const put = (e: number, v: number | bigint): Mut => (f) => void f.set(e, truncate(e, B(v)));
const or = (e: number, v: number | bigint): Mut => (f) => void f.set(e, truncate(e, (f.get(e) ?? 0n) | B(v)));
const andNot = (e: number, v: number | bigint): Mut => (f) => void f.set(e, (f.get(e) ?? 0n) & ~B(v));
const all = (...ms: Mut[]): Mut => (f, r) => ms.forEach((m) => m(f, r));
const inject = (type: number, vector: number, ec = false): Mut =>
  put(C.VM_ENTRY_INTERRUPTION_INFO, (C.INTR_INFO_VALID | (type << 8) | vector | (ec ? C.INTR_INFO_DELIVER_ERROR_CODE : 0)) >>> 0);

// L1 in legacy protected mode: 32-bit host state, no "load IA32_EFER" on exit.
const legacyHost: Mut = all(
  andNot(C.VM_EXIT_CONTROL, C.EXIT_HOST_ADDRESS_SPACE_SIZE | C.EXIT_LOAD_IA32_EFER),
  put(C.HOST_GS_BASE, 0),
);
// L2 as a 32-bit protected-mode guest with paging (CR4.PAE kept: PAE paging).
const guest32: Mut = all(
  andNot(C.VM_ENTRY_CONTROL, C.ENTRY_IA32E_MODE_GUEST),
  put(C.GUEST_IA32_EFER, C.X86_EFER_NXE),
  put(seg('CS', 'ACCESS_RIGHTS'), AR_CODE32),
  put(C.GUEST_CR3, PDPT),
);
// ... with 32-bit (non-PAE) paging.
const guest32NoPae: Mut = all(guest32, andNot(C.GUEST_CR4, C.X86_CR4_PAE), put(C.GUEST_CR3, 0x30000));
// A virtual-8086 guest (CR4.PAE off; the segments as real-mode-like values).
const v86: Mut = all(guest32NoPae, or(C.GUEST_RFLAGS, C.X86_RFLAGS_VM), (f) => {
  const sels = { ES: 0x1000, CS: 0x2000, SS: 0x3000, DS: 0x1000, FS: 0, GS: 0 } as const;
  for (const [s, v] of Object.entries(sels)) {
    f.set(seg(s as any, 'SELECTOR'), B(v));
    f.set(seg(s as any, 'BASE'), B(v << 4));
    f.set(seg(s as any, 'LIMIT'), 0xffffn);
    f.set(seg(s as any, 'ACCESS_RIGHTS'), 0xf3n);
  }
});
// "enable EPT" with a valid EPT pointer; and "unrestricted guest".
const ept: Mut = all(or(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_ENABLE_EPT), put(C.EPT_POINTER, GOOD_EPTP));
// "VMCS shadowing" with bitmaps in L1's RAM (the link pointer stays FFFFFFFF_FFFFFFFFH).
const shadowing: Mut = all(or(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_VMCS_SHADOWING), put(C.VMREAD_BITMAP, 0x30000),
  put(C.VMWRITE_BITMAP, 0x31000));
const eptp = (v: bigint): Mut => all(ept, put(C.EPT_POINTER, v));
const ug: Mut = all(ept, or(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_UNRESTRICTED_GUEST));
const tpr = (vapic: number | bigint, threshold: number): Mut =>
  all(or(C.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC_USE_TPR_SHADOW), put(C.VIRTUAL_APIC_ADDRESS, vapic), put(C.TPR_THRESHOLD, threshold));
const vid: Mut = all(or(C.PIN_BASED_VM_EXEC_CONTROL, C.PIN_EXTERNAL_INTERRUPT_EXITING),
  or(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_VIRTUAL_INTERRUPT_DELIVERY));
const posted = (vector: number, desc: number | bigint): Mut => all(tpr(0x40000, 0), vid,
  or(C.PIN_BASED_VM_EXEC_CONTROL, C.PIN_PROCESS_POSTED_INTERRUPTS), or(C.VM_EXIT_CONTROL, C.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT),
  put(C.POSTED_INTERRUPT_NOTIFICATION_VECTOR, vector), put(C.POSTED_INTERRUPT_DESCRIPTOR_ADDRESS, desc));
const vaa = (page: number | bigint): Mut =>
  all(or(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_VIRTUALIZE_APIC_ACCESSES), put(C.APIC_ACCESS_ADDRESS, page));
// "enable VPID" with the VPID `v`.
const vpid = (v: number): Mut => all(or(C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, C.PROC2_ENABLE_VPID), put(C.VIRTUAL_PROCESSOR_ID, v));
const vpid0 = vpid(0);
const pdpteFields = (es: bigint[]): Mut => (f) => es.forEach((e, i) => f.set(PDPTE_FIELDS[i], e));
// An unrestricted guest in real-address mode: CR0.PE = PG = 0, segments as
// after reset (CS F000H:FFF0H), TR a busy 32-bit TSS, LDTR unusable.
const realMode: Mut = all(ug, andNot(C.VM_ENTRY_CONTROL, C.ENTRY_IA32E_MODE_GUEST), put(C.GUEST_IA32_EFER, 0),
  put(C.GUEST_CR0, C.X86_CR0_NE | C.X86_CR0_ET), andNot(C.GUEST_CR4, C.X86_CR4_PAE), put(C.GUEST_RIP, 0xfff0), (f) => {
    const sels = { ES: 0, CS: 0xf000, SS: 0, DS: 0x1000, FS: 0, GS: 0 } as const;
    for (const [s, v] of Object.entries(sels)) {
      f.set(seg(s as any, 'SELECTOR'), B(v));
      f.set(seg(s as any, 'BASE'), B(v << 4));
      f.set(seg(s as any, 'LIMIT'), 0xffffn);
      f.set(seg(s as any, 'ACCESS_RIGHTS'), s === 'CS' ? 0x9bn : 0x93n);
    }
  });

// Blocking by STI (needs RFLAGS.IF, which the valid state has).
const sti = put(C.GUEST_INTERRUPTIBILITY_STATE, C.INTERRUPTIBILITY_BLOCKING_BY_STI);

// The PDPT of the 32-bit PAE cases: four present entries.
function writePdpt(r: Rig, entries: bigint[]): void {
  entries.forEach((e, i) => r.m.phys.write64(HOST_BASE + PDPT + 8 * i, e));
}

interface Row {
  what: string;
  mut: Mut;
  cls: number;
  name?: string;
  // Other results the SDM permits for a vmcs12 that breaks more than one
  // rule (27.2: the checks "may be performed in any order").
  alts?: [cls: number, name: string][];
  qual?: number;
  l1Legacy?: boolean;
  pdpt?: bigint[];
}

const NONCANON = 0x0000800000000000n;
const E = C; // brevity in the table

const ROWS: Row[] = [
  // ---- 27.2.1.1 execution controls
  { what: 'preemption timer is offered', mut: or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_ACTIVATE_VMX_PREEMPTION_TIMER), cls: OK },
  // "process posted interrupts" is offered (emulated by L0, nested/posted.ts) with virtual-interrupt delivery.
  { what: 'posted interrupts with VID, acknowledge on exit, vector F2H, descriptor in RAM', mut: posted(0xf2, 0x42000), cls: OK },
  { what: 'posted interrupts without virtual-interrupt delivery', mut: or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_PROCESS_POSTED_INTERRUPTS), cls: CONTROLS, name: 'ctls.posted.without-vid' },
  { what: 'posted interrupts without acknowledge interrupt on exit', mut: all(posted(0xf2, 0x42000), andNot(E.VM_EXIT_CONTROL, E.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT)), cls: CONTROLS, name: 'ctls.posted.without-acknowledge' },
  { what: 'posted interrupts, notification vector bits 15:8 set', mut: posted(0x1f2, 0x42000), cls: CONTROLS, name: 'ctls.posted.vector' },
  { what: 'posted interrupts, descriptor not 64-byte aligned', mut: posted(0xf2, 0x42020), cls: CONTROLS, name: 'ctls.posted.descriptor-align' },
  { what: 'posted interrupts, descriptor beyond MAXPHYADDR', mut: posted(0xf2, 1n << 39n), cls: CONTROLS, name: 'ctls.posted.descriptor-width' },
  { what: 'posted interrupts, descriptor outside L1 RAM', mut: posted(0xf2, RAM), cls: CONTROLS, name: 'ctls.posted.descriptor-ram' },
  { what: 'pin default1 bit cleared', mut: andNot(E.PIN_BASED_VM_EXEC_CONTROL, 0x2), cls: CONTROLS, name: 'ctls.pin.reserved' },
  // "use TPR shadow", "virtualize APIC accesses" and "APIC-register virtualization" are offered
  // (the processor's, vmcs12's pages in vmcs02); L1's RAM is zero, so VTPR is 0.
  { what: 'use TPR shadow, virtual-APIC page in RAM, TPR threshold 0', mut: tpr(0x40000, 0), cls: OK },
  { what: 'use TPR shadow, virtual-APIC address misaligned', mut: tpr(0x40010, 0), cls: CONTROLS, name: 'ctls.virtual-apic.align' },
  { what: 'use TPR shadow, virtual-APIC address beyond MAXPHYADDR', mut: tpr(1n << 39n, 0), cls: CONTROLS, name: 'ctls.virtual-apic.width' },
  { what: 'use TPR shadow, virtual-APIC page outside L1 RAM', mut: tpr(0xfee00000, 0), cls: CONTROLS, name: 'ctls.virtual-apic.ram' },
  { what: 'use TPR shadow, TPR threshold bits 31:4 set', mut: tpr(0x40000, 0x10), cls: CONTROLS, name: 'ctls.tpr-threshold.reserved' },
  { what: 'use TPR shadow, TPR threshold 1 above VTPR[7:4] 0', mut: tpr(0x40000, 1), cls: CONTROLS, name: 'ctls.tpr-threshold.vtpr' },
  { what: 'use TPR shadow and virtualize APIC accesses: threshold 1 not compared with VTPR', mut: all(tpr(0x40000, 1), vaa(0x41000)), cls: OK },
  { what: 'virtualize APIC accesses, APIC-access address misaligned', mut: vaa(0x41008), cls: CONTROLS, name: 'ctls.apic-access.align' },
  { what: 'virtualize APIC accesses, APIC-access address beyond MAXPHYADDR', mut: vaa(1n << 39n), cls: CONTROLS, name: 'ctls.apic-access.width' },
  { what: 'virtualize APIC accesses, APIC-access page outside L1 RAM (the APIC\'s own page)', mut: vaa(0xfee00000), cls: CONTROLS, name: 'ctls.apic-access.ram' },
  { what: 'APIC-register virtualization without use TPR shadow', mut: or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_APIC_REGISTER_VIRTUALIZATION), cls: CONTROLS, name: 'ctls.apic-register-virtualization-without-tpr-shadow' },
  { what: 'APIC-register virtualization with use TPR shadow', mut: all(tpr(0x40000, 0), or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_APIC_REGISTER_VIRTUALIZATION)), cls: OK },
  { what: 'virtual-interrupt delivery with TPR shadow and external-interrupt exiting, threshold bits 31:4 set (no check then)', mut: all(tpr(0x40000, 0x1234), vid), cls: OK },
  { what: 'virtual-interrupt delivery without external-interrupt exiting', mut: all(tpr(0x40000, 0), vid, andNot(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_EXTERNAL_INTERRUPT_EXITING)), cls: CONTROLS, name: 'ctls.vid.without-external-interrupt-exiting' },
  { what: 'virtualize x2APIC mode without use TPR shadow', mut: or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_VIRTUALIZE_X2APIC_MODE), cls: CONTROLS, name: 'ctls.x2apic.without-tpr-shadow' },
  { what: 'virtualize x2APIC mode with use TPR shadow', mut: all(tpr(0x40000, 0), or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_VIRTUALIZE_X2APIC_MODE)), cls: OK },
  { what: 'virtualize x2APIC mode and virtualize APIC accesses', mut: all(tpr(0x40000, 0), vaa(0x41000), or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_VIRTUALIZE_X2APIC_MODE)), cls: CONTROLS, name: 'ctls.x2apic.with-apic-accesses' },
  { what: 'virtualize x2APIC mode, APIC-register virtualization and virtual-interrupt delivery with use TPR shadow', mut: all(tpr(0x40000, 0), vid, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_VIRTUALIZE_X2APIC_MODE | E.PROC2_APIC_REGISTER_VIRTUALIZATION)), cls: OK },
  { what: 'virtual-interrupt delivery without use TPR shadow', mut: all(or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_EXTERNAL_INTERRUPT_EXITING), or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_VIRTUAL_INTERRUPT_DELIVERY)), cls: CONTROLS, name: 'ctls.vid.without-tpr-shadow' },
  { what: 'monitor trap flag is not offered', mut: or(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_MONITOR_TRAP_FLAG), cls: CONTROLS, name: 'ctls.proc.reserved' },
  // "enable EPT" is offered: its EPT pointer is checked (a pointer of 0 is UC with walk length 1).
  { what: 'enable EPT with an EPT pointer of 0', mut: all(ept, put(E.EPT_POINTER, 0)), cls: CONTROLS, name: 'ctls.eptp.walk-length' },
  { what: 'mode-based execute control for EPT is not offered', mut: all(ept, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_MODE_BASED_EXECUTE_CONTROL)), cls: CONTROLS, name: 'ctls.proc2.reserved' },
  // "enable PML" is offered (emulated, kernel/nested/eptad.ts): it needs EPT and a 4-KiB-aligned PML address within MAXPHYADDR.
  { what: 'enable PML with EPT, PML address 0', mut: all(ept, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_ENABLE_PML)), cls: OK },
  { what: 'enable PML with EPT, PML address outside L1 RAM (a value, not a structure VM entry reads)', mut: all(ept, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_ENABLE_PML), put(E.PML_ADDRESS, 0x7f000000)), cls: OK },
  { what: 'enable PML without enable EPT', mut: or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_ENABLE_PML), cls: CONTROLS, name: 'ctls.pml.without-ept' },
  { what: 'PML address misaligned', mut: all(ept, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_ENABLE_PML), put(E.PML_ADDRESS, 0x22008)), cls: CONTROLS, name: 'ctls.pml-address.align' },
  { what: 'PML address beyond MAXPHYADDR', mut: all(ept, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_ENABLE_PML), put(E.PML_ADDRESS, 1n << 39n)), cls: CONTROLS, name: 'ctls.pml-address.width' },
  { what: 'PML address unchecked with enable PML 0', mut: all(ept, put(E.PML_ADDRESS, 0x123)), cls: OK },
  { what: 'secondary controls ignored when not activated', mut: all(andNot(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_ACTIVATE_SECONDARY_CONTROLS), put(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, 0xffffffff)), cls: OK },
  // tigerlake has 4 CR3-target values; all 4 are offered (caps.ts cr3TargetCount).
  { what: 'CR3-target count 4 (as offered)', mut: put(E.CR3_TARGET_COUNT, 4), cls: OK },
  { what: 'CR3-target count 5 (more than offered)', mut: put(E.CR3_TARGET_COUNT, 5), cls: CONTROLS, name: 'ctls.cr3-target-count' },
  { what: 'CR3-target count 256', mut: put(E.CR3_TARGET_COUNT, 256), cls: CONTROLS, name: 'ctls.cr3-target-count' },
  { what: 'I/O bitmap A misaligned', mut: put(E.IO_BITMAP_A, 0x20800), cls: CONTROLS, name: 'ctls.io-bitmap-a.align' },
  { what: 'I/O bitmap B beyond MAXPHYADDR', mut: put(E.IO_BITMAP_B, 1n << 39n), cls: CONTROLS, name: 'ctls.io-bitmap-b.width' },
  { what: 'I/O bitmap A outside L1 RAM', mut: put(E.IO_BITMAP_A, RAM), cls: CONTROLS, name: 'ctls.io-bitmap-a.ram' },
  { what: 'I/O bitmaps not checked when unused', mut: all(andNot(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_USE_IO_BITMAPS), put(E.IO_BITMAP_A, 0x123)), cls: OK },
  { what: 'MSR bitmap misaligned', mut: put(E.MSR_BITMAPS, 0x22008), cls: CONTROLS, name: 'ctls.msr-bitmap.align' },
  { what: 'MSR bitmap outside L1 RAM', mut: put(E.MSR_BITMAPS, 0xfee00000), cls: CONTROLS, name: 'ctls.msr-bitmap.ram' },
  // ---- 27.2.1.1 the EPT pointer, with "enable EPT" 1, against the offered IA32_VMX_EPT_VPID_CAP
  { what: 'enable EPT, WB EPT pointer', mut: ept, cls: OK },
  { what: 'enable EPT, UC EPT pointer', mut: eptp(0x40000n | (3n << 3n)), cls: OK },
  { what: 'EPT pointer beyond L1 RAM (a value, not a structure VM entry reads)', mut: eptp(0x7f000000n | 0x1en), cls: OK },
  { what: 'EPT pointer at the top of the 39-bit width', mut: eptp(((1n << 39n) - 4096n) | 0x1en), cls: OK },
  ...[1, 2, 3, 4, 5, 7].map((t): Row => ({ what: `EPT pointer memory type ${t}`, mut: eptp((GOOD_EPTP & ~7n) | BigInt(t)), cls: CONTROLS, name: 'ctls.eptp.memory-type' })),
  ...[0, 1, 2, 4, 7].map((l): Row => ({ what: `EPT pointer walk length ${l + 1}`, mut: eptp((GOOD_EPTP & ~0x38n) | (BigInt(l) << 3n)), cls: CONTROLS, name: 'ctls.eptp.walk-length' })),
  { what: 'EPT pointer bit 6: accessed/dirty flags offered', mut: eptp(GOOD_EPTP | 0x40n), cls: OK },
  ...[7, 8, 9, 10, 11].map((b): Row => ({ what: `EPT pointer reserved bit ${b}`, mut: eptp(GOOD_EPTP | (1n << BigInt(b))), cls: CONTROLS, name: 'ctls.eptp.reserved' })),
  ...[39, 45, 51, 52, 63].map((b): Row => ({ what: `EPT pointer bit ${b} beyond MAXPHYADDR`, mut: eptp(GOOD_EPTP | (1n << BigInt(b))), cls: CONTROLS, name: 'ctls.eptp.reserved' })),
  { what: 'EPT pointer unchecked with enable EPT 0', mut: put(E.EPT_POINTER, ALL1), cls: OK },
  { what: 'EPT pointer unchecked when secondary controls are not activated', mut: all(eptp(ALL1), andNot(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_ACTIVATE_SECONDARY_CONTROLS)), cls: OK },
  // ---- 27.2.1.1 "If the 'enable VPID' VM-execution control is 1, the value
  // of the VPID VM-execution control field must not be 0000H."
  { what: 'enable VPID with VPID 0', mut: vpid0, cls: CONTROLS, name: 'ctls.vpid.zero' },
  { what: 'enable VPID with VPID 1', mut: vpid(1), cls: OK },
  { what: 'enable VPID with VPID FFFFH', mut: vpid(0xffff), cls: OK },
  { what: 'enable VPID with VPID 0 and EPT', mut: all(ept, vpid0), cls: CONTROLS, name: 'ctls.vpid.zero' },
  { what: 'enable VPID with VPID 0, unrestricted guest with EPT', mut: all(ug, vpid0), cls: CONTROLS, name: 'ctls.vpid.zero' },
  { what: 'enable VPID, VPID 0 and a real-mode unrestricted guest', mut: all(realMode, vpid0), cls: CONTROLS, name: 'ctls.vpid.zero' },
  { what: 'enable VPID, EPT and unrestricted guest with VPID 8000H', mut: all(ug, vpid(0x8000)), cls: OK },
  { what: 'VPID 0 unchecked with enable VPID 0', mut: put(E.VIRTUAL_PROCESSOR_ID, 0), cls: OK },
  { what: 'VPID 0 unchecked when secondary controls are not activated', mut: all(vpid0, andNot(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_ACTIVATE_SECONDARY_CONTROLS)), cls: OK },
  // VPID 0 together with another broken control: either may be reported (27.2).
  { what: 'VPID 0 and unrestricted guest without EPT', mut: all(vpid0, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_UNRESTRICTED_GUEST)),
    cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.proc2.unrestricted-without-ept']] },
  { what: 'VPID 0 and an EPT pointer of 0', mut: all(eptp(0n), vpid0), cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.eptp.walk-length']] },
  { what: 'VPID 0 and EPT pointer reserved bit 7', mut: all(eptp(GOOD_EPTP | 0x80n), vpid0), cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.eptp.reserved']] },
  { what: 'VPID 0 and a secondary control not offered (mode-based execute control)', mut: all(ept, vpid0, or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_MODE_BASED_EXECUTE_CONTROL)),
    cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.proc2.reserved']] },
  { what: 'VPID 0 and a pin-based control not offered', mut: all(vpid0, or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_PROCESS_POSTED_INTERRUPTS)),
    cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.pin.reserved']] },
  { what: 'VPID 0 and I/O bitmap A misaligned', mut: all(vpid0, put(E.IO_BITMAP_A, 0x20800)), cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.io-bitmap-a.align']] },
  { what: 'VPID 0 and NMI-window exiting without virtual NMIs', mut: all(vpid0, or(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_NMI_WINDOW_EXITING)),
    cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.proc.nmi-window-without-virtual-nmis']] },
  { what: 'VPID 0 and an exit control not offered', mut: all(vpid0, or(E.VM_EXIT_CONTROL, E.EXIT_LOAD_IA32_PERF_GLOBAL_CTRL)),
    cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.exit.reserved']] },
  { what: 'VPID 0 and #GP injected without an error code', mut: all(vpid0, inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 13)),
    cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[CONTROLS, 'ctls.entry.intr.errcode-missing']] },
  // ... or a broken host state: controls and host state "may be performed in any order" too.
  { what: 'VPID 0 and host CR0.PE clear', mut: all(vpid0, andNot(E.HOST_CR0, E.X86_CR0_PE)), cls: CONTROLS, name: 'ctls.vpid.zero', alts: [[HOST, 'host.cr0.fixed']] },
  // A broken guest state is checked only after the controls and host state (27.3: VM entry fails there with exit reason 33).
  { what: 'VPID 0 and guest CR0.NE clear', mut: all(vpid0, andNot(E.GUEST_CR0, E.X86_CR0_NE)), cls: CONTROLS, name: 'ctls.vpid.zero' },
  // ---- 27.2.1.1 "unrestricted guest" requires "enable EPT"
  { what: 'unrestricted guest without enable EPT', mut: or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_UNRESTRICTED_GUEST), cls: CONTROLS, name: 'ctls.proc2.unrestricted-without-ept' },
  { what: 'unrestricted guest without enable EPT, bad EPT pointer', mut: all(or(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_UNRESTRICTED_GUEST), put(E.EPT_POINTER, 7)), cls: CONTROLS, name: 'ctls.proc2.unrestricted-without-ept' },
  { what: 'unrestricted guest with enable EPT', mut: ug, cls: OK },
  // ---- unrestricted guest: the relaxed checks (27.2.1.3, 27.3.1.1, 27.3.1.2)
  { what: 'unrestricted guest in real-address mode (CR0.PE = PG = 0)', mut: realMode, cls: OK },
  { what: 'real-address mode without unrestricted guest', mut: all(realMode, andNot(E.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC2_UNRESTRICTED_GUEST)), cls: GUEST, name: 'guest.cr0.fixed' },
  { what: 'unrestricted guest, CR0.PG 1 with CR0.PE 0', mut: all(realMode, or(E.GUEST_CR0, E.X86_CR0_PG)), cls: GUEST, name: 'guest.cr0.pg-without-pe' },
  { what: 'unrestricted guest, CR0.NE 0 (still fixed)', mut: all(realMode, put(E.GUEST_CR0, E.X86_CR0_ET)), cls: GUEST, name: 'guest.cr0.fixed' },
  { what: 'unrestricted guest, real mode, CS type 3 with DPL 0', mut: all(realMode, put(seg('CS', 'ACCESS_RIGHTS'), 0x93)), cls: OK },
  { what: 'unrestricted guest, CS type 3 with DPL 3', mut: all(realMode, put(seg('CS', 'ACCESS_RIGHTS'), 0xf3)), cls: GUEST, name: 'guest.cs.dpl-data' },
  { what: 'unrestricted guest, CR0.PE 0 with SS.DPL 3', mut: all(realMode, put(seg('CS', 'ACCESS_RIGHTS'), 0xff), put(seg('SS', 'ACCESS_RIGHTS'), 0xf3)), cls: GUEST, name: 'guest.ss.dpl-not-0' },
  { what: 'unrestricted guest, SS.RPL differs from CS.RPL', mut: all(ug, put(seg('SS', 'SELECTOR'), 0x13)), cls: OK },
  { what: 'unrestricted guest, DS.DPL below its RPL', mut: all(ug, put(seg('DS', 'SELECTOR'), 0x13)), cls: OK },
  { what: 'unrestricted guest, CR0.PE 0: #GP injected with an error code', mut: all(realMode, inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 13, true)), cls: CONTROLS, name: 'ctls.entry.intr.errcode-not-allowed' },
  { what: 'unrestricted guest, CR0.PE 0: #GP injected without an error code', mut: all(realMode, inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 13)), cls: OK },
  { what: 'unrestricted guest, CR0.PE 1: #GP without an error code', mut: all(ug, inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 13)), cls: CONTROLS, name: 'ctls.entry.intr.errcode-missing' },
  { what: 'virtual NMIs without NMI exiting', mut: all(andNot(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_NMI_EXITING), or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_VIRTUAL_NMIS)), cls: CONTROLS, name: 'ctls.pin.virtual-nmis-without-nmi-exiting' },
  { what: 'NMI-window exiting without virtual NMIs', mut: or(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_NMI_WINDOW_EXITING), cls: CONTROLS, name: 'ctls.proc.nmi-window-without-virtual-nmis' },
  { what: 'NMI-window exiting with virtual NMIs', mut: all(or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_VIRTUAL_NMIS), or(E.PRIMARY_PROC_BASED_VM_EXEC_CONTROL, E.PROC_NMI_WINDOW_EXITING)), cls: OK },
  // ---- 27.2.1.2 exit controls
  { what: 'save preemption timer value without the timer', mut: or(E.VM_EXIT_CONTROL, E.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE), cls: CONTROLS, name: 'ctls.exit.save-preemption-timer-without-timer' },
  { what: 'save preemption timer value with the timer', mut: all(or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_ACTIVATE_VMX_PREEMPTION_TIMER), or(E.VM_EXIT_CONTROL, E.EXIT_SAVE_VMX_PREEMPTION_TIMER_VALUE)), cls: OK },
  { what: 'load PERF_GLOBAL_CTRL on exit is not offered', mut: or(E.VM_EXIT_CONTROL, E.EXIT_LOAD_IA32_PERF_GLOBAL_CTRL), cls: CONTROLS, name: 'ctls.exit.reserved' },
  { what: 'exit MSR-store area misaligned', mut: put(E.VM_EXIT_MSR_STORE_ADDRESS, 0x23008), cls: CONTROLS, name: 'ctls.exit-msr-store.align' },
  { what: 'exit MSR-load area ends beyond MAXPHYADDR', mut: all(put(E.VM_EXIT_MSR_LOAD_ADDRESS, (1n << 39n) - 16n), put(E.VM_EXIT_MSR_LOAD_COUNT, 2)), cls: CONTROLS, name: 'ctls.exit-msr-load.width' },
  { what: 'exit MSR-load area runs out of L1 RAM', mut: put(E.VM_EXIT_MSR_LOAD_ADDRESS, RAM - 16), cls: OK },
  { what: 'exit MSR-load area of 2 entries runs out of L1 RAM', mut: all(put(E.VM_EXIT_MSR_LOAD_ADDRESS, RAM - 16), put(E.VM_EXIT_MSR_LOAD_COUNT, 2)), cls: CONTROLS, name: 'ctls.exit-msr-load.ram' },
  // ---- 27.2.1.3 entry controls and event injection
  { what: 'entry MSR-load address unchecked with count 0', mut: all(put(E.VM_ENTRY_MSR_LOAD_COUNT, 0), put(E.VM_ENTRY_MSR_LOAD_ADDRESS, 0x7)), cls: OK },
  { what: 'entry MSR-load area misaligned', mut: put(E.VM_ENTRY_MSR_LOAD_ADDRESS, 0x23204), cls: CONTROLS, name: 'ctls.entry-msr-load.align' },
  { what: 'entry to SMM is not offered', mut: or(E.VM_ENTRY_CONTROL, E.ENTRY_ENTRY_TO_SMM), cls: CONTROLS, name: 'ctls.entry.reserved' },
  { what: 'interruption type 1', mut: inject(1, 32), cls: CONTROLS, name: 'ctls.entry.intr.type-reserved' },
  { what: 'interruption type 7 without MTF offered', mut: inject(E.INTR_TYPE_OTHER_EVENT, 0), cls: CONTROLS, name: 'ctls.entry.intr.type-reserved' },
  { what: 'NMI with vector 3', mut: inject(E.INTR_TYPE_NMI, 3), cls: CONTROLS, name: 'ctls.entry.intr.nmi-vector' },
  { what: 'hardware exception vector 32', mut: inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 32), cls: CONTROLS, name: 'ctls.entry.intr.exception-vector' },
  { what: '#GP without error code', mut: inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 13), cls: CONTROLS, name: 'ctls.entry.intr.errcode-missing' },
  { what: '#UD with error code', mut: inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 6, true), cls: CONTROLS, name: 'ctls.entry.intr.errcode-not-allowed' },
  { what: 'external interrupt with error code', mut: inject(E.INTR_TYPE_EXTERNAL_INTERRUPT, 0x30, true), cls: CONTROLS, name: 'ctls.entry.intr.errcode-not-allowed' },
  { what: 'interruption-information bit 12', mut: all(inject(E.INTR_TYPE_EXTERNAL_INTERRUPT, 0x30), or(E.VM_ENTRY_INTERRUPTION_INFO, 0x1000)), cls: CONTROLS, name: 'ctls.entry.intr.reserved' },
  { what: '#PF error code bit 16', mut: all(inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 14, true), put(E.VM_ENTRY_EXCEPTION_ERROR_CODE, 0x10000)), cls: CONTROLS, name: 'ctls.entry.errcode.reserved' },
  { what: 'software interrupt of length 0 (misc bit 30 not offered)', mut: inject(E.INTR_TYPE_SOFTWARE_INTERRUPT, 0x80), cls: CONTROLS, name: 'ctls.entry.insn-len' },
  { what: 'software exception of length 16', mut: all(inject(E.INTR_TYPE_SOFTWARE_EXCEPTION, 3), put(E.VM_ENTRY_INSTRUCTION_LENGTH, 16)), cls: CONTROLS, name: 'ctls.entry.insn-len' },
  { what: '#PF with error code FFFFH', mut: all(inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 14, true), put(E.VM_ENTRY_EXCEPTION_ERROR_CODE, 0xffff)), cls: OK },
  { what: 'INT 80H of length 2', mut: all(inject(E.INTR_TYPE_SOFTWARE_INTERRUPT, 0x80), put(E.VM_ENTRY_INSTRUCTION_LENGTH, 2)), cls: OK },
  { what: 'NMI injection', mut: inject(E.INTR_TYPE_NMI, 2), cls: OK },
  // ---- 27.2.2 host control registers and MSRs
  { what: 'host CR0.PE clear', mut: andNot(E.HOST_CR0, E.X86_CR0_PE), cls: HOST, name: 'host.cr0.fixed' },
  { what: 'host CR4.VMXE clear', mut: andNot(E.HOST_CR4, E.X86_CR4_VMXE), cls: HOST, name: 'host.cr4.fixed' },
  { what: 'host CR3 beyond MAXPHYADDR', mut: put(E.HOST_CR3, 1n << 40n), cls: HOST, name: 'host.cr3.width' },
  { what: 'host SYSENTER_ESP not canonical', mut: put(E.HOST_IA32_SYSENTER_ESP, NONCANON), cls: HOST, name: 'host.sysenter-esp.canonical' },
  { what: 'host PAT byte 2 reserved type', mut: put(E.HOST_IA32_PAT, 0x0007040600070402n), cls: HOST, name: 'host.pat.invalid' },
  { what: 'host PAT unchecked without load PAT', mut: all(andNot(E.VM_EXIT_CONTROL, E.EXIT_LOAD_IA32_PAT), put(E.HOST_IA32_PAT, 0x08n)), cls: OK },
  { what: 'host EFER reserved bit', mut: or(E.HOST_IA32_EFER, 2), cls: HOST, name: 'host.efer.reserved' },
  { what: 'host EFER.LMA clear with a 64-bit host', mut: andNot(E.HOST_IA32_EFER, E.X86_EFER_LMA), cls: HOST, name: 'host.efer.lma' },
  // ---- 27.2.3 host segment and descriptor-table registers
  { what: 'host CS selector RPL 3', mut: put(E.HOST_CS_SELECTOR, 0x0b), cls: HOST, name: 'host.cs.rpl-ti' },
  { what: 'host TR selector TI', mut: put(E.HOST_TR_SELECTOR, 0x1c), cls: HOST, name: 'host.tr.rpl-ti' },
  { what: 'host CS null', mut: put(E.HOST_CS_SELECTOR, 0), cls: HOST, name: 'host.cs.null' },
  { what: 'host TR null', mut: put(E.HOST_TR_SELECTOR, 0), cls: HOST, name: 'host.tr.null' },
  { what: 'host SS null with a 64-bit host', mut: put(E.HOST_SS_SELECTOR, 0), cls: OK },
  { what: 'host SS null with a 32-bit host', mut: all(legacyHost, guest32NoPae, put(E.HOST_SS_SELECTOR, 0)), l1Legacy: true, cls: HOST, name: 'host.ss.null' },
  { what: 'host GS base not canonical', mut: put(E.HOST_GS_BASE, 0x0000800000001000n), cls: HOST, name: 'host.gs.base-canonical' },
  { what: 'host GDTR base not canonical', mut: put(E.HOST_GDTR_BASE, NONCANON), cls: HOST, name: 'host.gdtr.base-canonical' },
  // ---- 27.2.4 address-space size
  { what: '64-bit L1 with a 32-bit host', mut: andNot(E.VM_EXIT_CONTROL, E.EXIT_HOST_ADDRESS_SPACE_SIZE | E.EXIT_LOAD_IA32_EFER), cls: HOST, name: 'host.l1-ia32e.host-32' },
  { what: '32-bit L1 with a 64-bit guest', mut: legacyHost, l1Legacy: true, cls: HOST, name: 'host.l1-legacy.ia32e-guest' },
  { what: '32-bit L1 with a 64-bit host', mut: all(guest32NoPae, andNot(E.VM_EXIT_CONTROL, E.EXIT_LOAD_IA32_EFER)), l1Legacy: true, cls: HOST, name: 'host.l1-legacy.host-64' },
  { what: '32-bit L1, 32-bit host, 32-bit guest', mut: all(legacyHost, guest32NoPae), l1Legacy: true, cls: OK },
  { what: '32-bit host RIP above 4G', mut: all(legacyHost, guest32NoPae, put(E.HOST_RIP, 0x100000000n)), l1Legacy: true, cls: HOST, name: 'host.rip.high' },
  { what: '32-bit host with CR4.PCIDE', mut: all(legacyHost, guest32NoPae, or(E.HOST_CR4, E.X86_CR4_PCIDE)), l1Legacy: true, cls: HOST, name: 'host.cr4.pcide-host-32' },
  { what: '64-bit host with CR4.PAE clear', mut: andNot(E.HOST_CR4, E.X86_CR4_PAE), cls: HOST, name: 'host.cr4.pae-host-64' },
  { what: '64-bit host RIP not canonical', mut: put(E.HOST_RIP, NONCANON), cls: HOST, name: 'host.rip.canonical' },
  // ---- 27.3.1.1 guest control registers, debug registers, MSRs
  { what: 'guest CR0.PG clear (no unrestricted guest)', mut: andNot(E.GUEST_CR0, E.X86_CR0_PG), cls: GUEST, name: 'guest.cr0.fixed', qual: 0 },
  { what: 'guest CR0.NE clear', mut: andNot(E.GUEST_CR0, E.X86_CR0_NE), cls: GUEST, name: 'guest.cr0.fixed' },
  { what: 'guest CR4.VMXE clear', mut: andNot(E.GUEST_CR4, E.X86_CR4_VMXE), cls: GUEST, name: 'guest.cr4.fixed' },
  { what: 'guest DEBUGCTL bit 6 with load debug controls', mut: put(E.GUEST_IA32_DEBUGCTL, 0x40), cls: GUEST, name: 'guest.debugctl.reserved' },
  { what: 'guest DEBUGCTL unchecked without load debug controls', mut: all(andNot(E.VM_ENTRY_CONTROL, E.ENTRY_LOAD_DEBUG_CONTROLS), put(E.GUEST_IA32_DEBUGCTL, 0x40)), cls: OK },
  { what: 'IA-32e guest with CR4.PAE clear', mut: andNot(E.GUEST_CR4, E.X86_CR4_PAE), cls: GUEST, name: 'guest.ia32e.pae' },
  { what: '32-bit guest with CR4.PCIDE', mut: all(guest32, or(E.GUEST_CR4, E.X86_CR4_PCIDE)), cls: GUEST, name: 'guest.cr4.pcide-outside-ia32e' },
  { what: 'guest CR3 beyond MAXPHYADDR', mut: put(E.GUEST_CR3, 1n << 39n), cls: GUEST, name: 'guest.cr3.width' },
  { what: 'guest DR7 bits 63:32', mut: put(E.GUEST_DR7, 0x100000400n), cls: GUEST, name: 'guest.dr7.high' },
  { what: 'guest SYSENTER_EIP not canonical', mut: put(E.GUEST_IA32_SYSENTER_EIP, NONCANON), cls: GUEST, name: 'guest.sysenter-eip.canonical' },
  { what: 'guest PAT type 3', mut: put(E.GUEST_IA32_PAT, 0x0300000000000000n), cls: GUEST, name: 'guest.pat.invalid' },
  { what: 'guest EFER reserved bit 9', mut: or(E.GUEST_IA32_EFER, 0x200), cls: GUEST, name: 'guest.efer.reserved' },
  { what: 'guest EFER.LMA clear for an IA-32e guest', mut: andNot(E.GUEST_IA32_EFER, E.X86_EFER_LMA), cls: GUEST, name: 'guest.efer.lma' },
  { what: 'guest EFER.LME clear for an IA-32e guest with paging', mut: andNot(E.GUEST_IA32_EFER, E.X86_EFER_LME), cls: GUEST, name: 'guest.efer.lme' },
  // ---- 27.3.1.2 segment registers
  { what: 'guest TR selector TI', mut: put(seg('TR', 'SELECTOR'), 0x1c), cls: GUEST, name: 'guest.tr.sel-ti' },
  { what: 'guest SS.RPL differs from CS.RPL', mut: put(seg('SS', 'SELECTOR'), 0x13), cls: GUEST, name: 'guest.ss.sel-rpl' },
  { what: 'guest FS base not canonical', mut: put(seg('FS', 'BASE'), NONCANON), cls: GUEST, name: 'guest.fs.base-canonical' },
  { what: 'guest CS base above 4G', mut: put(seg('CS', 'BASE'), 0x100000000n), cls: GUEST, name: 'guest.cs.base-high' },
  { what: 'unusable DS may have any base', mut: all(put(seg('DS', 'ACCESS_RIGHTS'), AR_UNUSABLE), put(seg('DS', 'BASE'), 0x100000000n)), cls: OK },
  { what: 'guest CS type 3 (data)', mut: put(seg('CS', 'ACCESS_RIGHTS'), 0xa093), cls: GUEST, name: 'guest.cs.type' },
  { what: 'guest SS type 11 (code)', mut: put(seg('SS', 'ACCESS_RIGHTS'), 0xc09b), cls: GUEST, name: 'guest.ss.type' },
  { what: 'guest DS not accessed', mut: put(seg('DS', 'ACCESS_RIGHTS'), 0xc092), cls: GUEST, name: 'guest.ds.type-accessed' },
  { what: 'guest ES execute-only code', mut: put(seg('ES', 'ACCESS_RIGHTS'), 0xc099), cls: GUEST, name: 'guest.es.type-unreadable-code' },
  { what: 'guest GS system segment', mut: put(seg('GS', 'ACCESS_RIGHTS'), 0xc083), cls: GUEST, name: 'guest.gs.s' },
  { what: 'guest CS.DPL 3 with SS.DPL 0', mut: put(seg('CS', 'ACCESS_RIGHTS'), AR_CODE64 | 0x60), cls: GUEST, name: 'guest.cs.dpl-nonconforming' },
  { what: 'guest SS.DPL 3 with RPL 0 (conforming CS)', mut: all(put(seg('CS', 'ACCESS_RIGHTS'), 0xa09f), put(seg('SS', 'ACCESS_RIGHTS'), AR_DATA | 0x60)), cls: GUEST, name: 'guest.ss.dpl' },
  { what: 'guest DS.DPL below its RPL', mut: put(seg('DS', 'SELECTOR'), 0x13), cls: GUEST, name: 'guest.ds.dpl' },
  { what: 'guest FS not present', mut: put(seg('FS', 'ACCESS_RIGHTS'), AR_DATA & ~0x80), cls: GUEST, name: 'guest.fs.p' },
  { what: 'guest CS access-rights bit 8', mut: put(seg('CS', 'ACCESS_RIGHTS'), AR_CODE64 | 0x100), cls: GUEST, name: 'guest.cs.ar-reserved' },
  { what: 'guest CS with L and D/B', mut: put(seg('CS', 'ACCESS_RIGHTS'), AR_CODE64 | 0x4000), cls: GUEST, name: 'guest.cs.db-with-l' },
  { what: 'guest SS.G with limit bits 11:0 not all 1', mut: put(seg('SS', 'LIMIT'), 0xffff0), cls: GUEST, name: 'guest.ss.g' },
  { what: 'guest ES limit 4G without G', mut: put(seg('ES', 'ACCESS_RIGHTS'), AR_DATA & ~0x8000), cls: GUEST, name: 'guest.es.g' },
  { what: 'guest DS access-rights bit 17', mut: put(seg('DS', 'ACCESS_RIGHTS'), AR_DATA | 0x20000), cls: GUEST, name: 'guest.ds.ar-reserved' },
  { what: 'guest TR 16-bit busy TSS in IA-32e mode', mut: put(seg('TR', 'ACCESS_RIGHTS'), 0x83), cls: GUEST, name: 'guest.tr.type' },
  { what: 'guest TR unusable', mut: put(seg('TR', 'ACCESS_RIGHTS'), AR_TSS_BUSY | AR_UNUSABLE), cls: GUEST, name: 'guest.tr.unusable' },
  { what: 'guest LDTR usable with type 3', mut: put(seg('LDTR', 'ACCESS_RIGHTS'), 0x83), cls: GUEST, name: 'guest.ldtr.type' },
  { what: 'guest LDTR usable LDT', mut: put(seg('LDTR', 'ACCESS_RIGHTS'), 0x82), cls: OK },
  { what: 'virtual-8086 guest', mut: v86, cls: OK },
  { what: 'virtual-8086 CS base not selector * 16', mut: all(v86, put(seg('CS', 'BASE'), 0x20010)), cls: GUEST, name: 'guest.cs.v86-base' },
  { what: 'virtual-8086 DS limit', mut: all(v86, put(seg('DS', 'LIMIT'), 0xfffff)), cls: GUEST, name: 'guest.ds.v86-limit' },
  { what: 'virtual-8086 SS access rights', mut: all(v86, put(seg('SS', 'ACCESS_RIGHTS'), 0xf7)), cls: GUEST, name: 'guest.ss.v86-ar' },
  // ---- 27.3.1.3 descriptor-table registers
  { what: 'guest GDTR limit above FFFFH', mut: put(E.GUEST_GDTR_LIMIT, 0x10000), cls: GUEST, name: 'guest.gdtr.limit' },
  { what: 'guest IDTR base not canonical', mut: put(E.GUEST_IDTR_BASE, NONCANON), cls: GUEST, name: 'guest.idtr.base-canonical' },
  // ---- 27.3.1.4 RIP and RFLAGS
  { what: '64-bit RIP with bit 47 set and 63:48 clear (bits 63:48 identical)', mut: put(E.GUEST_RIP, 0x0000800000000000n), cls: OK },
  { what: '64-bit RIP with bits 63:48 not identical', mut: put(E.GUEST_RIP, 0x0001000000000000n), cls: GUEST, name: 'guest.rip.high-bits' },
  { what: '32-bit guest RIP above 4G', mut: all(guest32NoPae, put(E.GUEST_RIP, 0x100000000n)), cls: GUEST, name: 'guest.rip.high' },
  { what: 'RFLAGS bit 3', mut: or(E.GUEST_RFLAGS, 0x8), cls: GUEST, name: 'guest.rflags.reserved' },
  { what: 'RFLAGS bit 1 clear', mut: andNot(E.GUEST_RFLAGS, E.X86_RFLAGS_FIXED1), cls: GUEST, name: 'guest.rflags.fixed1' },
  { what: 'RFLAGS.VM with 64-bit segments: virtual-8086 segment rules', mut: or(E.GUEST_RFLAGS, E.X86_RFLAGS_VM), cls: GUEST, name: 'guest.es.v86-base' },
  { what: 'RFLAGS.VM in IA-32e mode', mut: all(v86, or(E.VM_ENTRY_CONTROL, E.ENTRY_IA32E_MODE_GUEST), put(E.GUEST_IA32_EFER, EFER64), or(E.GUEST_CR4, E.X86_CR4_PAE)), cls: GUEST, name: 'guest.rflags.vm' },
  { what: 'external interrupt with RFLAGS.IF 0', mut: all(inject(E.INTR_TYPE_EXTERNAL_INTERRUPT, 0x30), andNot(E.GUEST_RFLAGS, E.X86_RFLAGS_IF)), cls: GUEST, name: 'guest.rflags.if-extint' },
  // ---- 27.3.1.5 non-register state
  { what: 'shutdown activity state not offered', mut: put(E.GUEST_ACTIVITY_STATE, E.ACTIVITY_STATE_SHUTDOWN), cls: GUEST, name: 'guest.activity.unsupported' },
  { what: 'HLT activity state', mut: put(E.GUEST_ACTIVITY_STATE, E.ACTIVITY_STATE_HLT), cls: OK },
  { what: 'HLT at CPL 3', mut: all(put(E.GUEST_ACTIVITY_STATE, E.ACTIVITY_STATE_HLT), put(seg('CS', 'SELECTOR'), 0x0b), put(seg('SS', 'SELECTOR'), 0x13), put(seg('CS', 'ACCESS_RIGHTS'), AR_CODE64 | 0x60), put(seg('SS', 'ACCESS_RIGHTS'), AR_DATA | 0x60)), cls: GUEST, name: 'guest.activity.hlt-cpl' },
  { what: 'HLT with blocking by STI', mut: all(put(E.GUEST_ACTIVITY_STATE, E.ACTIVITY_STATE_HLT), sti), cls: GUEST, name: 'guest.activity.blocking-not-active' },
  { what: 'HLT with #GP injection', mut: all(put(E.GUEST_ACTIVITY_STATE, E.ACTIVITY_STATE_HLT), inject(E.INTR_TYPE_HARDWARE_EXCEPTION, 13, true)), cls: GUEST, name: 'guest.activity.event-blocked' },
  { what: 'HLT with external-interrupt injection', mut: all(put(E.GUEST_ACTIVITY_STATE, E.ACTIVITY_STATE_HLT), inject(E.INTR_TYPE_EXTERNAL_INTERRUPT, 0x30)), cls: OK },
  { what: 'interruptibility bit 5', mut: put(E.GUEST_INTERRUPTIBILITY_STATE, 0x20), cls: GUEST, name: 'guest.intr.reserved' },
  { what: 'enclave interruption without SGX', mut: put(E.GUEST_INTERRUPTIBILITY_STATE, E.INTERRUPTIBILITY_ENCLAVE_INTERRUPTION), cls: GUEST, name: 'guest.intr.enclave' },
  { what: 'blocking by STI and MOV SS', mut: put(E.GUEST_INTERRUPTIBILITY_STATE, 3), cls: GUEST, name: 'guest.intr.sti-and-mov-ss' },
  { what: 'blocking by STI with IF 0', mut: all(sti, andNot(E.GUEST_RFLAGS, E.X86_RFLAGS_IF)), cls: GUEST, name: 'guest.intr.sti-without-if' },
  { what: 'MOV-SS blocking with external-interrupt injection', mut: all(put(E.GUEST_INTERRUPTIBILITY_STATE, E.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS), inject(E.INTR_TYPE_EXTERNAL_INTERRUPT, 0x30)), cls: GUEST, name: 'guest.intr.blocking-with-extint' },
  { what: 'MOV-SS blocking with NMI injection', mut: all(put(E.GUEST_INTERRUPTIBILITY_STATE, E.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS), inject(E.INTR_TYPE_NMI, 2)), cls: GUEST, name: 'guest.intr.mov-ss-with-nmi' },
  { what: 'blocking by SMI outside SMM', mut: put(E.GUEST_INTERRUPTIBILITY_STATE, E.INTERRUPTIBILITY_BLOCKING_BY_SMI), cls: GUEST, name: 'guest.intr.smi-outside-smm' },
  { what: 'NMI injection with blocking by STI', mut: all(sti, inject(E.INTR_TYPE_NMI, 2)), cls: GUEST, name: 'guest.intr.sti-with-nmi', qual: 3 },
  { what: 'NMI injection, virtual NMIs, blocking by NMI', mut: all(or(E.PIN_BASED_VM_EXEC_CONTROL, E.PIN_VIRTUAL_NMIS), put(E.GUEST_INTERRUPTIBILITY_STATE, E.INTERRUPTIBILITY_BLOCKING_BY_NMI), inject(E.INTR_TYPE_NMI, 2)), cls: GUEST, name: 'guest.intr.nmi-blocked-virtual-nmi' },
  { what: 'NMI injection with blocking by NMI, no virtual NMIs', mut: all(put(E.GUEST_INTERRUPTIBILITY_STATE, E.INTERRUPTIBILITY_BLOCKING_BY_NMI), inject(E.INTR_TYPE_NMI, 2)), cls: OK },
  { what: 'pending debug exceptions bit 4', mut: put(E.GUEST_PENDING_DEBUG_EXCEPTIONS, 0x10), cls: GUEST, name: 'guest.pending-dbg.reserved' },
  { what: 'STI blocking, TF 1, BS 0', mut: all(sti, or(E.GUEST_RFLAGS, E.X86_RFLAGS_TF)), cls: GUEST, name: 'guest.pending-dbg.bs-missing' },
  { what: 'STI blocking, TF 0, BS 1', mut: all(sti, put(E.GUEST_PENDING_DEBUG_EXCEPTIONS, E.PENDING_DBG_BS)), cls: GUEST, name: 'guest.pending-dbg.bs-unexpected' },
  { what: 'STI blocking, TF 1, BS 1', mut: all(sti, or(E.GUEST_RFLAGS, E.X86_RFLAGS_TF), put(E.GUEST_PENDING_DEBUG_EXCEPTIONS, E.PENDING_DBG_BS)), cls: OK },
  { what: 'STI blocking, TF 1, BTF 1, BS 1', mut: all(sti, or(E.GUEST_RFLAGS, E.X86_RFLAGS_TF), put(E.GUEST_IA32_DEBUGCTL, E.X86_DEBUGCTL_BTF), put(E.GUEST_PENDING_DEBUG_EXCEPTIONS, E.PENDING_DBG_BS)), cls: GUEST, name: 'guest.pending-dbg.bs-unexpected' },
  { what: 'pending RTM without bit 12', mut: put(E.GUEST_PENDING_DEBUG_EXCEPTIONS, E.PENDING_DBG_RTM), cls: GUEST, name: 'guest.pending-dbg.rtm-bits' },
  { what: 'pending RTM on a processor without RTM', mut: put(E.GUEST_PENDING_DEBUG_EXCEPTIONS, B(E.PENDING_DBG_RTM) | B(E.PENDING_DBG_ENABLED_BREAKPOINT)), cls: GUEST, name: 'guest.pending-dbg.rtm-unsupported' },
  { what: 'VMCS link pointer misaligned', mut: put(E.VMCS_LINK_POINTER, OTHER_VMCS + 8), cls: GUEST, name: 'guest.link.align', qual: 4 },
  { what: 'VMCS link pointer beyond MAXPHYADDR', mut: put(E.VMCS_LINK_POINTER, 1n << 39n), cls: GUEST, name: 'guest.link.width', qual: 4 },
  { what: 'VMCS link pointer outside L1 RAM', mut: put(E.VMCS_LINK_POINTER, RAM), cls: GUEST, name: 'guest.link.ram', qual: 4 },
  { what: 'VMCS link pointer to a page without our revision', mut: put(E.VMCS_LINK_POINTER, 0x40000), cls: GUEST, name: 'guest.link.revision', qual: 4 },
  { what: 'VMCS link pointer to a VMCS (shadowing 0)', mut: put(E.VMCS_LINK_POINTER, OTHER_VMCS), cls: OK },
  { what: 'VMCS link pointer to a shadow VMCS without VMCS shadowing', mut: put(E.VMCS_LINK_POINTER, SHADOW_VMCS), cls: GUEST, name: 'guest.link.shadow-indicator', qual: 4 },
  { what: 'VMCS link pointer is the current VMCS', mut: put(E.VMCS_LINK_POINTER, VMCS12), cls: GUEST, name: 'guest.link.current', qual: 4 },
  // "VMCS shadowing" (offered for L1's L2): bitmap addresses (27.2.1.1), a
  // link pointer to a shadow VMCS or FFFFFFFF_FFFFFFFFH (27.3.1.5).
  { what: 'VMCS shadowing, link pointer to a shadow VMCS', mut: all(shadowing, put(E.VMCS_LINK_POINTER, SHADOW_VMCS)), cls: OK },
  { what: 'VMCS shadowing, link pointer FFFFFFFF_FFFFFFFFH', mut: shadowing, cls: OK },
  { what: 'VMCS shadowing, link pointer to an ordinary VMCS', mut: all(shadowing, put(E.VMCS_LINK_POINTER, OTHER_VMCS)), cls: GUEST, name: 'guest.link.shadow-indicator', qual: 4 },
  { what: 'VMCS shadowing, VMREAD bitmap misaligned', mut: all(shadowing, put(E.VMREAD_BITMAP, 0x30800)), cls: CONTROLS, name: 'ctls.vmread-bitmap.align' },
  { what: 'VMCS shadowing, VMWRITE bitmap beyond MAXPHYADDR', mut: all(shadowing, put(E.VMWRITE_BITMAP, 1n << 39n)), cls: CONTROLS, name: 'ctls.vmwrite-bitmap.width' },
  { what: 'VMCS shadowing, VMREAD bitmap outside L1 RAM', mut: all(shadowing, put(E.VMREAD_BITMAP, RAM)), cls: CONTROLS, name: 'ctls.vmread-bitmap.ram' },
  { what: 'VMCS shadowing, VMWRITE bitmap outside L1 RAM', mut: all(shadowing, put(E.VMWRITE_BITMAP, 0xfee00000)), cls: CONTROLS, name: 'ctls.vmwrite-bitmap.ram' },
  { what: 'bitmaps unchecked without VMCS shadowing', mut: all(put(E.VMREAD_BITMAP, 0x123), put(E.VMWRITE_BITMAP, ALL1)), cls: OK },
  // ---- 27.3.1.6 PDPTEs (EPT off: loaded from L1 memory)
  { what: 'PAE guest with valid PDPTEs', mut: guest32, pdpt: [0x32001n, 0x33001n, 0n, 0x34001n], cls: OK },
  { what: 'PAE guest, not-present PDPTE with reserved bits', mut: guest32, pdpt: [0x32001n, 0xfffffffffffffffen, 0n, 0n], cls: OK },
  { what: 'PAE guest, PDPTE with bit 7 set', mut: guest32, pdpt: [0x32001n, 0x33081n, 0n, 0n], cls: GUEST, name: 'guest.pdpte.reserved', qual: 2 },
  { what: 'PAE guest, PDPTE beyond MAXPHYADDR', mut: guest32, pdpt: [0n, 0n, 0n, (1n << 39n) | 1n], cls: GUEST, name: 'guest.pdpte.reserved', qual: 2 },
  { what: 'PAE guest, PDPT outside L1 RAM', mut: all(guest32, put(E.GUEST_CR3, 0xfee00000)), cls: GUEST, name: 'guest.pdpte.ram', qual: 2 },
  // ---- 27.3.1.6 PDPTEs with "enable EPT" 1: the PDPTE fields, not memory.
  // A failure is "a problem loading the PDPTEs" (27.8: exit qualification 2,
  // pointing at 27.3.1.6, which covers both cases).
  { what: 'EPT, PAE guest, valid PDPTE fields', mut: all(guest32, ept), cls: OK },
  { what: 'EPT, PAE guest: the PDPT in memory is not read', mut: all(guest32, ept), pdpt: [0x33081n, ALL1, ALL1, ALL1], cls: OK },
  { what: 'EPT, PAE guest: CR3 outside L1 RAM is not read', mut: all(guest32, ept, put(E.GUEST_CR3, 0xfee00000)), cls: OK },
  { what: 'EPT, PAE guest, not-present PDPTE field with reserved bits', mut: all(guest32, ept, pdpteFields([0x32001n, 0xfffffffffffffffen, 0n, 0n])), cls: OK },
  ...[1, 2, 5, 6, 7, 8, 39, 51, 52, 63].map((b): Row => ({ what: `EPT, PAE guest, PDPTE2 field bit ${b}`, mut: all(guest32, ept, pdpteFields([0x32001n, 0x33001n, 0x34001n | (1n << BigInt(b)), 0n])),
    cls: GUEST, name: 'guest.pdpte-field.reserved', qual: 2 })),
  { what: 'EPT, PAE guest, PDPTE0 field bit 7', mut: all(guest32, ept, pdpteFields([0x32081n, 0n, 0n, 0n])), cls: GUEST, name: 'guest.pdpte-field.reserved', qual: 2 },
  { what: 'EPT, PAE guest, PDPTE3 field beyond MAXPHYADDR', mut: all(guest32, ept, pdpteFields([0n, 0n, 0n, (1n << 39n) | 1n])), cls: GUEST, name: 'guest.pdpte-field.reserved', qual: 2 },
  { what: 'EPT, 64-bit guest: PDPTE fields not checked', mut: all(ept, pdpteFields([ALL1, ALL1, ALL1, ALL1])), cls: OK },
  { what: 'EPT, 32-bit guest without PAE: PDPTE fields not checked', mut: all(guest32NoPae, ept, pdpteFields([ALL1, ALL1, ALL1, ALL1])), cls: OK },
  { what: 'EPT, unrestricted PAE guest without paging: PDPTE fields not checked', mut: all(guest32, ug, andNot(E.GUEST_CR0, E.X86_CR0_PG), pdpteFields([ALL1, ALL1, ALL1, ALL1])), cls: OK },
  { what: 'no EPT, PAE guest: PDPTE fields not checked (memory is)', mut: all(guest32, pdpteFields([ALL1, ALL1, ALL1, ALL1])), pdpt: [0x32001n, 0n, 0n, 0n], cls: OK },
];

const r0 = rig();

test('the valid vmcs12 passes, in the kernel and in the model', () => {
  const f = valid(r0);
  const k = r0.run(f);
  assert.equal(k, { cls: OK, name: '', qual: 0n });
  assert.equal(r0.model(f).problems, []);
  // VMRESUME makes the same checks.
  assert.is(r0.call<number>('entry_check', 0), OK);
});

// A restore copies a whole vmcs12 into a scratch Nested, with no record of
// what changed: checkAll must check everything whatever the record says,
// where VMRESUME's checks skip what their record proves unchanged.
test('checkAll checks a vmcs12 copied in without a record; VMRESUME skips what its record says is unchanged', () => {
  const f = valid(r0);
  assert.is(r0.run(f).cls, OK);
  assert.is(r0.call<number>('entry_dirty'), 0, 'the passing checks leave nothing to check again');
  const cases: [number, bigint, number, string][] = [
    [C.HOST_CR0, CR0 & ~B(C.X86_CR0_PE), HOST, 'host.cr0.fixed'],
    [C.VM_EXIT_MSR_LOAD_ADDRESS, 0x23108n, CONTROLS, 'ctls.exit-msr-load.align'],
    [C.GUEST_TR_ACCESS_RIGHTS, B(AR_UNUSABLE | AR_TSS_BUSY), GUEST, 'guest.tr.unusable'],
  ];
  for (const [enc, v, cls, name] of cases) {
    const old = f.get(enc)!;
    assert.ok(r0.call<number>('entry_setFieldRaw', enc, v));
    assert.is(r0.call<number>('entry_check', 0), OK, `VMRESUME's checks skip ${name}`);
    const all = r0.outcome(r0.call<number>('entry_checkAll'));
    assert.equal([all.cls, all.name], [cls, name], `checkAll finds ${name}`);
    assert.is(r0.call<number>('entry_dirty'), 0, 'checkAll changed the Nested');
    assert.ok(r0.call<number>('entry_setFieldRaw', enc, old));
  }
});

test(`table: ${ROWS.length} single mutations → class and check name`, () => {
  assert.ok(ROWS.length >= 60);
  const failing = new Set<string>();
  const wrong: string[] = []; // every row is checked; the failures are listed together
  for (const row of ROWS) {
    const f = valid(r0);
    row.mut(f, r0);
    writePdpt(r0, row.pdpt ?? [0n, 0n, 0n, 0n]);
    const k = r0.run(f, !row.l1Legacy);
    const label = `${row.what}: kernel ${CLASS_NAMES[k.cls]} ${k.name || '-'}`;
    const problems: string[] = [];
    const allowed: [number, string][] = [[row.cls, row.name ?? ''], ...(row.alts ?? [])];
    if (!allowed.some(([c, n]) => k.cls === c && k.name === n)) {
      problems.push(`expected ${allowed.map(([c, n]) => `${CLASS_NAMES[c]} ${n || '-'}`).join(' or ')}`);
    }
    const wantQual = row.cls === GUEST ? B(row.qual ?? 0) : 0n;
    if (k.qual !== wantQual) problems.push(`exit qualification ${k.qual}, expected ${wantQual}`);
    const mo = r0.model(f, !row.l1Legacy);
    if (mo.cls !== row.cls) problems.push(`model oracle says ${CLASS_NAMES[mo.cls]} (${mo.problems.join('; ')})`);
    if (row.cls === GUEST && !mo.quals.includes(row.qual ?? 0)) problems.push(`model qualifications ${mo.quals}`);
    // A row with alternatives breaks that many rules, by the model too.
    if (row.alts) {
      for (const c of [CONTROLS, HOST, GUEST]) {
        const want = allowed.filter(([ac]) => ac === c).length;
        if (mo.all[c].length < want) problems.push(`model finds ${mo.all[c].length} broken ${CLASS_NAMES[c]} rule(s), not ${want}: ${mo.all[c].join('; ')}`);
      }
    }
    if (row.name === 'ctls.vpid.zero' && !mo.all[CONTROLS].some((p) => /"enable VPID" with VPID 0/.test(p))) {
      problems.push(`model does not find the VPID-0 rule broken (${mo.all[CONTROLS].join('; ')})`);
    }
    if (problems.length) wrong.push(`${label}: ${problems.join('; ')}`);
    if (row.name) failing.add(row.name.split('.')[0]);
  }
  writePdpt(r0, [0n, 0n, 0n, 0n]);
  assert.equal(wrong, [], `${wrong.length} of ${ROWS.length} rows disagree`);
  assert.equal([...failing].sort(), ['ctls', 'guest', 'host']);
});

// ---- random mutations against the model's oracle ----------------------------------------

// (prng.ts: a fixed seed gives the same cases every run.)

const AR_POOL = [AR_UNUSABLE, AR_DATA, AR_CODE64, AR_CODE32, AR_TSS_BUSY, 0x83, 0x82, 0xf3, 0x93, 0xc0f3, 0x9b, 0x9f,
  0xa093, 0x409b, 0xc09f, 0xa0fb, 0xc097, 0x8093, 0x1c093, 0xc193, 0x1008b, 0x808b, 0x8b | 0x20000];
const PDPTE_POOL = [0n, 1n, 0x33001n, 0x33003n, 0x33021n, 0x33101n, 0x33201n, (1n << 38n) | 1n, (1n << 39n) | 1n,
  (1n << 63n) | 1n, ALL1 - 1n, ALL1];
const AR_FIELDS = new Set(SEGS.map((s) => seg(s, 'ACCESS_RIGHTS')));
const VALUE_POOL = [0n, 1n, 2n, 3n, 0x10n, 0xfffn, 0x1000n, 0xffffn, 0x10000n, 0xffffffffn, 0x100000000n, NONCANON,
  0xffff800000000000n, 1n << 39n, 1n << 63n, ALL1, B(RAM), B(RAM - 4096), B(VMCS12), B(OTHER_VMCS), B(SHADOW_VMCS)];

const EPT_MUTATED = [C.EPT_POINTER, C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, ...PDPTE_FIELDS, C.VIRTUAL_PROCESSOR_ID];
const CASES = 5000;
test(`random: ${CASES} multi-field mutations, kernel class = model class, no trap`, () => {
  const rnd = prng(20240604n);
  const base = valid(r0);
  const fields = [...base.keys()];
  const counts = [0, 0, 0, 0];
  const names = new Map<string, number>(); // kernel check names reached
  const disagreements: string[] = [];
  for (let n = 0; n < CASES; n++) {
    const f = new Map(base);
    const l1Ia32e = rnd.int(10) !== 0;
    // Start from a 64-bit, a 32-bit PAE or a virtual-8086 guest, with or
    // without EPT and unrestricted guest (an unrestricted guest sometimes
    // in real-address mode); L1 64-bit or 32-bit.
    const start = rnd.int(8);
    const paging = rnd.int(3); // 0: no EPT, 1: EPT, 2: EPT + unrestricted guest
    if (start === 0) guest32(f, r0);
    if (start === 1) v86(f, r0);
    if (paging === 1) ept(f, r0);
    if (paging === 2) (start === 2 ? realMode : ug)(f, r0);
    if (!l1Ia32e && rnd.int(2) === 0) legacyHost(f, r0);
    // "enable VPID" now and then, usually with a VPID that is not 0.
    const vpidStart = rnd.int(16);
    if (vpidStart < 4) vpid(rnd.pick([1, 2, 0x8000, 0xffff]))(f, r0);
    if (vpidStart === 4) vpid0(f, r0);
    // The PDPTEs a PAE guest would load (from memory without EPT, from the
    // PDPTE fields with it): mostly valid, sometimes not.
    const pdpte = (): bigint => (rnd.int(4) === 0 ? rnd.pick(PDPTE_POOL) : 0x32001n);
    writePdpt(r0, [pdpte(), pdpte(), pdpte(), pdpte()]);
    pdpteFields([pdpte(), pdpte(), pdpte(), pdpte()])(f, r0);
    const k = 1 + rnd.int(4);
    const log: string[] = [];
    for (let i = 0; i < k; i++) {
      // Now and then aim at what EPT, unrestricted guest and VPID added.
      const enc = i === 0 && rnd.int(6) === 0 ? rnd.pick(EPT_MUTATED) : rnd.pick(fields);
      const old = f.get(enc) ?? 0n;
      const w = width.get(enc) ?? 64;
      let v: bigint;
      switch (rnd.int(8)) {
        case 0: v = old ^ (1n << BigInt(rnd.int(w))); break; // one bit
        case 1: v = old ^ (1n << BigInt(rnd.int(Math.min(w, 24)))); break; // a low bit
        case 2: v = rnd.next(); break;
        case 3: v = rnd.pick(VALUE_POOL); break;
        case 4: v = AR_FIELDS.has(enc) ? B(rnd.pick(AR_POOL)) : old ^ B(rnd.int(16)); break;
        case 5: v = enc === C.VM_ENTRY_INTERRUPTION_INFO
          ? B((0x80000000 | (rnd.int(8) << 8) | rnd.pick([0, 1, 2, 3, 6, 8, 13, 14, 18, 32, 0x80]) | (rnd.int(2) << 11)) >>> 0)
          : enc === C.EPT_POINTER ? rnd.pick([(GOOD_EPTP & ~0x7fn) | BigInt(rnd.int(0x80)), // memory type, walk length, A/D
            GOOD_EPTP | 0x40n, GOOD_EPTP | (1n << BigInt(7 + rnd.int(5))), GOOD_EPTP | (1n << BigInt(39 + rnd.int(25))), GOOD_EPTP])
          : enc === C.SECONDARY_PROC_BASED_VM_EXEC_CONTROL ? old ^ B(rnd.pick([C.PROC2_ENABLE_EPT, C.PROC2_UNRESTRICTED_GUEST, C.PROC2_ENABLE_VPID]))
          : enc === C.VIRTUAL_PROCESSOR_ID ? B(rnd.pick([0, 0, 1, 0xffff, rnd.int(0x10000)]))
          : PDPTE_FIELDS.includes(enc) ? rnd.pick(PDPTE_POOL)
          : B(rnd.int(6)); break;
        case 6: v = old & ~(1n << BigInt(rnd.int(w))); break;
        default: v = old | (1n << BigInt(rnd.int(w))); break;
      }
      f.set(enc, truncate(enc, v));
      log.push(`${enc.toString(16)}=${truncate(enc, v).toString(16)}`);
    }
    const kr = r0.run(f, l1Ia32e);
    const mr = r0.model(f, l1Ia32e);
    counts[kr.cls]++;
    if (kr.name) names.set(kr.name, (names.get(kr.name) ?? 0) + 1);
    if (kr.cls !== mr.cls) {
      disagreements.push(`#${n} [${log.join(' ')}] L1 ${l1Ia32e ? '64' : '32'}: kernel ${CLASS_NAMES[kr.cls]} ${kr.name}, ` +
        `model ${CLASS_NAMES[mr.cls]} ${mr.problems.join('; ')}`);
    } else if (kr.cls === GUEST && !mr.quals.includes(Number(kr.qual))) {
      disagreements.push(`#${n} [${log.join(' ')}]: kernel ${kr.name} qualification ${kr.qual}, model ${mr.quals}`);
    }
  }
  writePdpt(r0, [0n, 0n, 0n, 0n]);
  if (process.env.HV_ENTRY_VERBOSE) {
    console.log(`classes ok/controls/host/guest: ${counts.join('/')}\n` +
      [...names].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', '));
  }
  // Grouped by what the kernel said, so one systematic difference does not hide others.
  const kinds = new Map<string, number>();
  for (const d of disagreements) {
    const k = /kernel (\S+ \S*)/.exec(d)?.[1] ?? '?';
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  assert.equal(disagreements.slice(0, 10), [], `${disagreements.length} disagreements, by kernel result: ` +
    [...kinds].map(([k, n]) => `${k} x${n}`).join(', '));
  // The mutations reach every class, and the checks EPT, unrestricted guest and VPID bring.
  for (let c = 0; c < 4; c++) assert.ok(counts[c] >= 60, `class ${CLASS_NAMES[c]}: ${counts[c]} cases (${counts.join('/')})`);
  for (const n of ['ctls.eptp.memory-type', 'ctls.eptp.walk-length', 'ctls.eptp.reserved',
    'ctls.proc2.unrestricted-without-ept', 'guest.pdpte-field.reserved', 'guest.pdpte.reserved', 'ctls.vpid.zero']) {
    assert.ok((names.get(n) ?? 0) >= 5, `random mutations reach ${n}: ${names.get(n) ?? 0} cases`);
  }
});

test.run();
