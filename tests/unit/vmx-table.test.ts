// The VMX constant table (tools/vmx/table.mjs) and its three generated versions.
// Expected values are written here from the Intel SDM, independently of the table:
// Vol. 3D Appendix B (field encodings), Appendix C (exit reasons), Vol. 3C 31.4 (VM-instruction
// errors), 25.6-25.8 (controls), Appendix A (capability MSRs and default1 masks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as V from '../model/vmx-consts.ts';
// @ts-ignore: plain ESM without type declarations
import { buildModel, decodeEncoding } from '../../tools/vmx/gen.mjs';
// @ts-ignore: plain ESM without type declarations
import * as table from '../../tools/vmx/table.mjs';
import { lookupField, type VmxCaps } from '../model/vmcs-fields.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GEN = join(REPO, 'tools/vmx/gen.mjs');
const GENERATED = ['kernel/arch/vmx.ts', 'boot/include/vmx-consts.h', 'tests/model/vmx-consts.ts'];

function gen(...args: string[]) {
  return spawnSync(process.execPath, [GEN, ...args], { cwd: REPO, encoding: 'utf8' });
}

// ---- the table, through the TypeScript version ------------------------------------------

test('encodings of well-known fields (Appendix B)', () => {
  const expected: Record<string, number> = {
    VIRTUAL_PROCESSOR_ID: 0x0000,
    GUEST_ES_SELECTOR: 0x0800,
    HOST_TR_SELECTOR: 0x0c0c,
    IO_BITMAP_A: 0x2000,
    MSR_BITMAPS: 0x2004,
    TSC_OFFSET: 0x2010,
    VM_FUNCTION_CONTROL: 0x2018,
    EPT_POINTER: 0x201a,
    EPTP_LIST_ADDRESS: 0x2024,
    VMREAD_BITMAP: 0x2026,
    VMWRITE_BITMAP: 0x2028,
    XSS_EXITING_BITMAP: 0x202c,
    ENCLS_EXITING_BITMAP: 0x202e,
    TSC_MULTIPLIER: 0x2032,
    SECONDARY_VM_EXIT_CONTROL: 0x2044,
    GUEST_PHYSICAL_ADDRESS: 0x2400,
    VMCS_LINK_POINTER: 0x2800,
    GUEST_IA32_DEBUGCTL: 0x2802,
    GUEST_IA32_EFER: 0x2806,
    GUEST_PDPTE3: 0x2810,
    GUEST_IA32_BNDCFGS: 0x2812,
    HOST_IA32_PERF_GLOBAL_CTRL: 0x2c04,
    PIN_BASED_VM_EXEC_CONTROL: 0x4000,
    PRIMARY_PROC_BASED_VM_EXEC_CONTROL: 0x4002,
    EXCEPTION_BITMAP: 0x4004,
    VM_EXIT_CONTROL: 0x400c,
    VM_ENTRY_CONTROL: 0x4012,
    VM_ENTRY_INTERRUPTION_INFO: 0x4016,
    SECONDARY_PROC_BASED_VM_EXEC_CONTROL: 0x401e,
    VM_INSTRUCTION_ERROR: 0x4400,
    VM_EXIT_REASON: 0x4402,
    IDT_VECTORING_INFO: 0x4408,
    VM_EXIT_INSTRUCTION_INFO: 0x440e,
    GUEST_INTERRUPTIBILITY_STATE: 0x4824,
    VMX_PREEMPTION_TIMER_VALUE: 0x482e,
    HOST_IA32_SYSENTER_CS: 0x4c00,
    CR0_GUEST_HOST_MASK: 0x6000,
    CR3_TARGET_VALUE3: 0x600e,
    EXIT_QUALIFICATION: 0x6400,
    GUEST_LINEAR_ADDRESS: 0x640a,
    GUEST_CR0: 0x6800,
    GUEST_RSP: 0x681c,
    GUEST_RIP: 0x681e,
    GUEST_RFLAGS: 0x6820,
    HOST_RSP: 0x6c14,
    HOST_RIP: 0x6c16,
  };
  const consts = V as unknown as Record<string, unknown>;
  for (const [name, enc] of Object.entries(expected)) {
    assert.is(consts[name], enc, name);
    assert.is(V.VMCS_FIELD_BY_ENCODING.get(enc)?.name, name, `${name} in VMCS_FIELDS`);
  }
  assert.is(V.EPT_POINTER_HIGH, 0x201b);
  assert.is(V.VMCS_LINK_POINTER_HIGH, 0x2801);
});

test('names and encodings are unique; encodings are well-formed full encodings', () => {
  const names = new Set(V.VMCS_FIELDS.map((f) => f.name));
  const encs = new Set(V.VMCS_FIELDS.map((f) => f.encoding));
  assert.is(names.size, V.VMCS_FIELDS.length);
  assert.is(encs.size, V.VMCS_FIELDS.length);
  assert.is(V.VMCS_FIELD_COUNT, V.VMCS_FIELDS.length);
  assert.ok(V.VMCS_FIELDS.length >= 190, `only ${V.VMCS_FIELDS.length} fields`);
  for (const f of V.VMCS_FIELDS) {
    assert.is(f.encoding >>> 15, 0, `${f.name}: bits 31:15`);
    assert.is(f.encoding & 0x1000, 0, `${f.name}: bit 12`);
    assert.is(f.encoding & 1, 0, `${f.name}: declared with the full encoding`);
  }
});

test('width and type are derived from encoding bits 14:13 and 11:10', () => {
  const widths = [16, 64, 32, 'natural'];
  const types = ['control', 'ro', 'guest', 'host'];
  for (const f of V.VMCS_FIELDS) {
    assert.is(f.width, widths[(f.encoding >> 13) & 3], f.name);
    assert.is(f.type, types[(f.encoding >> 10) & 3], f.name);
    assert.is(f.name.startsWith('HOST_'), f.type === 'host', f.name);
  }
  const w = (enc: number) => V.VMCS_FIELD_BY_ENCODING.get(enc)!;
  assert.equal([w(V.GUEST_RIP).width, w(V.GUEST_RIP).type], ['natural', 'guest']);
  assert.equal([w(V.VM_EXIT_REASON).width, w(V.VM_EXIT_REASON).type], [32, 'ro']);
  assert.equal([w(V.EPT_POINTER).width, w(V.EPT_POINTER).type], [64, 'control']);
  assert.equal([w(V.GUEST_ES_SELECTOR).width, w(V.GUEST_ES_SELECTOR).type], [16, 'guest']);
  assert.equal([w(V.HOST_IA32_SYSENTER_CS).width, w(V.HOST_IA32_SYSENTER_CS).type], [32, 'host']);
  assert.equal([w(V.GUEST_PHYSICAL_ADDRESS).width, w(V.GUEST_PHYSICAL_ADDRESS).type], [64, 'ro']);
  // high access only for 64-bit fields
  assert.is(V.vmcsFieldOf(V.EPT_POINTER | 1)?.name, 'EPT_POINTER');
  assert.is(V.vmcsFieldOf(V.GUEST_RIP | 1), undefined);
  assert.is(V.vmcsFieldOf(V.VM_EXIT_REASON | 1), undefined);
});

test('exit reasons (Appendix C)', () => {
  const expected: Record<string, number> = {
    EXCEPTION_NMI: 0, EXTERNAL_INTERRUPT: 1, TRIPLE_FAULT: 2, INIT_SIGNAL: 3, SIPI: 4, INTERRUPT_WINDOW: 7,
    NMI_WINDOW: 8, TASK_SWITCH: 9, CPUID: 10, GETSEC: 11, HLT: 12, INVD: 13, INVLPG: 14, RDPMC: 15, RDTSC: 16,
    RSM: 17, VMCALL: 18, VMCLEAR: 19, VMLAUNCH: 20, VMPTRLD: 21, VMPTRST: 22, VMREAD: 23, VMRESUME: 24,
    VMWRITE: 25, VMXOFF: 26, VMXON: 27, CR_ACCESS: 28, MOV_DR: 29, IO_INSTRUCTION: 30, RDMSR: 31, WRMSR: 32,
    ENTRY_FAILURE_GUEST_STATE: 33, ENTRY_FAILURE_MSR_LOADING: 34, MWAIT: 36, MONITOR_TRAP_FLAG: 37,
    MONITOR: 39, PAUSE: 40, ENTRY_FAILURE_MACHINE_CHECK: 41, TPR_BELOW_THRESHOLD: 43, APIC_ACCESS: 44,
    VIRTUALIZED_EOI: 45, GDTR_IDTR_ACCESS: 46, LDTR_TR_ACCESS: 47, EPT_VIOLATION: 48, EPT_MISCONFIG: 49,
    INVEPT: 50, RDTSCP: 51, PREEMPTION_TIMER: 52, INVVPID: 53, WBINVD: 54, XSETBV: 55, APIC_WRITE: 56,
    RDRAND: 57, INVPCID: 58, VMFUNC: 59, ENCLS: 60, RDSEED: 61, PML_FULL: 62, XSAVES: 63, XRSTORS: 64,
    PCONFIG: 65, BUS_LOCK: 74, INSTRUCTION_TIMEOUT: 75, TDCALL: 77,
  };
  const consts = V as unknown as Record<string, unknown>;
  for (const [name, n] of Object.entries(expected)) {
    assert.is(consts['EXIT_REASON_' + name], n, name);
    assert.is(V.EXIT_REASONS.find((r) => r.number === n)?.name, name);
  }
  const numbers = V.EXIT_REASONS.map((r) => r.number);
  assert.is(new Set(numbers).size, numbers.length);
  assert.is(new Set(V.EXIT_REASONS.map((r) => r.name)).size, numbers.length);
  for (const unused of [35, 38, 42, 71]) assert.not.ok(numbers.includes(unused), `${unused} is not an exit reason`);
  assert.is(V.EXIT_REASON_MAX, Math.max(...numbers));
  assert.ok(V.EXIT_REASON_MAX >= 77);
  assert.is(V.EXIT_REASON_FLAG_ENTRY_FAILURE, 0x80000000);
  assert.is(V.EXIT_REASON_BASIC_MASK, 0xffff);
});

test('VM-instruction error numbers (31.4)', () => {
  const expected: Record<string, number> = {
    VMCALL_IN_VMX_ROOT_OPERATION: 1, VMCLEAR_INVALID_ADDRESS: 2, VMCLEAR_VMXON_POINTER: 3,
    VMLAUNCH_NONCLEAR_VMCS: 4, VMRESUME_NONLAUNCHED_VMCS: 5, VMRESUME_AFTER_VMXOFF: 6,
    ENTRY_INVALID_CONTROL_FIELD: 7, ENTRY_INVALID_HOST_STATE_FIELD: 8, VMPTRLD_INVALID_ADDRESS: 9,
    VMPTRLD_VMXON_POINTER: 10, VMPTRLD_INCORRECT_REVISION_ID: 11, UNSUPPORTED_VMCS_COMPONENT: 12,
    VMWRITE_READ_ONLY_VMCS_COMPONENT: 13, VMXON_IN_VMX_ROOT_OPERATION: 15, ENTRY_EVENTS_BLOCKED_BY_MOV_SS: 26,
    INVALID_OPERAND_TO_INVEPT_INVVPID: 28,
  };
  const consts = V as unknown as Record<string, unknown>;
  for (const [name, n] of Object.entries(expected)) assert.is(consts['VMXERR_' + name], n, name);
  const numbers = V.VMX_ERRORS.map((e) => e.number);
  assert.is(new Set(numbers).size, numbers.length);
  for (const unused of [0, 14, 21, 27]) assert.not.ok(numbers.includes(unused), `${unused} is not an error number`);
  assert.ok(numbers.every((n) => n >= 1 && n <= 28));
});

test('control bits and default1 masks (25.6-25.8, A.2)', () => {
  assert.is(V.PIN_EXTERNAL_INTERRUPT_EXITING, 1 << 0);
  assert.is(V.PIN_NMI_EXITING, 1 << 3);
  assert.is(V.PIN_VIRTUAL_NMIS, 1 << 5);
  assert.is(V.PIN_ACTIVATE_VMX_PREEMPTION_TIMER, 1 << 6);
  assert.is(V.PROC_HLT_EXITING, 1 << 7);
  assert.is(V.PROC_USE_MSR_BITMAPS, 1 << 28);
  assert.is(V.PROC_ACTIVATE_SECONDARY_CONTROLS, 0x80000000);
  assert.is(V.PROC2_ENABLE_EPT, 1 << 1);
  assert.is(V.PROC2_ENABLE_VPID, 1 << 5);
  assert.is(V.PROC2_UNRESTRICTED_GUEST, 1 << 7);
  assert.is(V.PROC2_ENABLE_VM_FUNCTIONS, 1 << 13);
  assert.is(V.PROC2_VMCS_SHADOWING, 1 << 14);
  assert.is(V.EXIT_HOST_ADDRESS_SPACE_SIZE, 1 << 9);
  assert.is(V.EXIT_ACKNOWLEDGE_INTERRUPT_ON_EXIT, 1 << 15);
  assert.is(V.EXIT_LOAD_IA32_EFER, 1 << 21);
  assert.is(V.ENTRY_IA32E_MODE_GUEST, 1 << 9);
  assert.is(V.ENTRY_LOAD_IA32_EFER, 1 << 15);
  assert.is(V.VMFUNC_CTL_EPTP_SWITCHING, 1);
  assert.is(V.VMFUNC_EPTP_SWITCHING, 0);
  assert.is(V.PIN_DEFAULT1, 0x16);
  assert.is(V.PROC_DEFAULT1, 0x0401e172);
  assert.is(V.EXIT_DEFAULT1, 0x00036dff);
  assert.is(V.ENTRY_DEFAULT1, 0x000011ff);
  for (const w of V.CONTROL_WORDS) {
    const bits = w.bits.map((b) => b.bit);
    assert.is(new Set(bits).size, bits.length, w.key);
    for (const b of w.bits) {
      assert.ok(b.bit < w.width, `${w.key} ${b.name}`);
      assert.is(BigInt(b.mask), 1n << BigInt(b.bit), `${w.key} ${b.name}`);
    }
    assert.ok(V.VMCS_FIELD_BY_ENCODING.has(w.field), `${w.key} field`);
  }
  const proc = V.CONTROL_WORDS.find((w) => w.key === 'proc')!;
  assert.is(proc.capMsr, 0x482);
  assert.is(proc.trueCapMsr, 0x48e);
});

test('MSR numbers and capability bits (Vol. 4, Appendix A)', () => {
  assert.is(V.MSR_IA32_FEATURE_CONTROL, 0x3a);
  assert.is(V.FEATURE_CONTROL_LOCK, 1);
  assert.is(V.FEATURE_CONTROL_VMX_INSIDE_SMX, 2);
  assert.is(V.FEATURE_CONTROL_VMX_OUTSIDE_SMX, 4);
  const vmxMsrs = ['BASIC', 'PINBASED_CTLS', 'PROCBASED_CTLS', 'EXIT_CTLS', 'ENTRY_CTLS', 'MISC', 'CR0_FIXED0',
    'CR0_FIXED1', 'CR4_FIXED0', 'CR4_FIXED1', 'VMCS_ENUM', 'PROCBASED_CTLS2', 'EPT_VPID_CAP', 'TRUE_PINBASED_CTLS',
    'TRUE_PROCBASED_CTLS', 'TRUE_EXIT_CTLS', 'TRUE_ENTRY_CTLS', 'VMFUNC', 'PROCBASED_CTLS3', 'EXIT_CTLS2'];
  const consts = V as unknown as Record<string, unknown>;
  vmxMsrs.forEach((n, i) => assert.is(consts['MSR_IA32_VMX_' + n], 0x480 + i, n));
  assert.is(V.MSR_IA32_EFER, 0xc0000080);
  assert.is(V.MSR_IA32_PAT, 0x277);
  assert.is(V.MSR_IA32_DEBUGCTL, 0x1d9);
  assert.is(V.MSR_IA32_SYSENTER_CS, 0x174);
  assert.is(V.MSR_IA32_FS_BASE, 0xc0000100);
  assert.is(V.MSR_IA32_KERNEL_GS_BASE, 0xc0000102);
  assert.is(V.MSR_IA32_APIC_BASE, 0x1b);
  assert.is(V.MSR_IA32_BNDCFGS, 0xd90);
  assert.is(V.MSR_IA32_XSS, 0xda0);
  assert.is(V.VMX_BASIC_TRUE_CONTROLS, 1n << 55n);
  assert.is(V.VMX_BASIC_VMCS_SIZE_SHIFT, 32);
  assert.is(V.VMX_MISC_VMWRITE_ANY_FIELD, 1 << 29);
  assert.is(V.EPT_VPID_CAP_PAGE_WALK_LENGTH_4, 1 << 6);
  assert.is(V.EPT_VPID_CAP_MEMTYPE_WB, 1 << 14);
  assert.is(V.EPT_VPID_CAP_INVEPT, 1 << 20);
  assert.is(V.EPT_VPID_CAP_INVVPID, 2 ** 32);
  assert.is(V.X86_CR0_PE, 1);
  assert.is(V.X86_CR0_NE, 1 << 5);
  assert.is(V.X86_CR0_PG, 0x80000000);
  assert.is(V.X86_CR4_VMXE, 1 << 13);
  assert.is(V.X86_RFLAGS_CF, 1);
  assert.is(V.X86_RFLAGS_ZF, 1 << 6);
});

test('shadowed fields: the per-exit set, and nothing L0 must see at once', () => {
  const shadowed = new Set(V.VMCS_FIELDS.filter((f) => f.shadow).map((f) => f.name));
  for (const n of ['VM_EXIT_REASON', 'EXIT_QUALIFICATION', 'VM_EXIT_INSTRUCTION_LENGTH', 'VM_EXIT_INSTRUCTION_INFO',
    'VM_EXIT_INTERRUPTION_INFO', 'IDT_VECTORING_INFO', 'GUEST_PHYSICAL_ADDRESS', 'GUEST_LINEAR_ADDRESS', 'GUEST_RIP',
    'GUEST_RSP', 'GUEST_RFLAGS', 'GUEST_INTERRUPTIBILITY_STATE', 'VM_ENTRY_INTERRUPTION_INFO',
    'VM_ENTRY_EXCEPTION_ERROR_CODE', 'VM_ENTRY_INSTRUCTION_LENGTH']) {
    assert.ok(shadowed.has(n), n);
  }
  // Host state is used only at a nested VM exit, which follows an entry,
  // and every entry pulls the shadow first (shadow.ts pull, recording the
  // change): a shadowed host field is never stale when L0 needs it. Only
  // HOST_RSP is shadowed (Linux KVM writes it around every L2 run).
  for (const f of V.VMCS_FIELDS) {
    if (!f.shadow) continue;
    if (f.type === 'host') assert.is(f.name, 'HOST_RSP', f.name);
    assert.not.ok(/_CONTROL$|POINTER|BITMAP|ADDRESS$/.test(f.name) && f.type === 'control', f.name);
  }
});

test('vmcs12 layout: aligned, non-overlapping, after the header, inside VMCS12_SIZE', () => {
  assert.ok(V.VMCS12_SIZE <= 4096 && V.VMCS12_SIZE === V.VMCS12_SIZE >>> 0);
  assert.is(V.VMCS12_PAGE_SIZE, 4096);
  assert.is(V.VMCS12_REVISION_ID_OFFSET, 0);
  assert.is(V.VMCS12_ABORT_INDICATOR_OFFSET, 4);
  const size = (f: V.VmcsFieldInfo) => (f.width === 16 ? 2 : f.width === 32 ? 4 : 8);
  const spans = V.VMCS_FIELDS.map((f) => ({ name: f.name, start: f.vmcs12Offset, end: f.vmcs12Offset + size(f) }));
  spans.sort((a, b) => a.start - b.start);
  for (const s of spans) {
    assert.ok(s.start >= V.VMCS12_HEADER_SIZE, `${s.name} inside the header`);
    assert.ok(s.end <= V.VMCS12_SIZE, `${s.name} beyond VMCS12_SIZE`);
    assert.is(s.start % (s.end - s.start), 0, `${s.name} misaligned`);
  }
  for (let i = 1; i < spans.length; i++) {
    assert.ok(spans[i].start >= spans[i - 1].end, `${spans[i - 1].name} overlaps ${spans[i].name}`);
  }
  assert.is(V.vmcs12Offset(V.EPT_POINTER_HIGH), V.vmcs12Offset(V.EPT_POINTER) + 4);
  assert.is(V.vmcs12Offset(V.GUEST_RIP | 1), -1);
  assert.is(V.vmcs12Offset(0x482c), -1); // unused index in the 32-bit guest-state group
});

// ---- the generator's own checks -----------------------------------------------------------

test('decodeEncoding rejects malformed encodings', () => {
  assert.equal(decodeEncoding(0x681e), { widthCode: 3, typeCode: 2, index: 15, high: false, width: 'natural', type: 'guest' });
  assert.is(decodeEncoding(0x2801).high, true);
  assert.throws(() => decodeEncoding(0x1000 | 0x0800), /bit 12/);
  assert.throws(() => decodeEncoding(0x8000), /31:15/);
  assert.throws(() => decodeEncoding(0x4403), /only valid for 64-bit/);
  assert.throws(() => decodeEncoding(0x681f), /only valid for 64-bit/);
});

test('buildModel rejects bad tables', () => {
  const withFields = (extra: object[]) => ({ ...table, VMCS_FIELDS: [...table.VMCS_FIELDS, ...extra] });
  assert.not.throws(() => buildModel(table));
  assert.throws(() => buildModel(withFields([{ name: 'BAD_FIELD', encoding: 0x1802 }])), /bit 12/);
  assert.throws(() => buildModel(withFields([{ name: 'BAD_FIELD', encoding: 0x2053 }])), /full encoding/);
  assert.throws(() => buildModel(withFields([{ name: 'DUP_FIELD', encoding: 0x681e }])), /share encoding/);
  assert.throws(() => buildModel(withFields([{ name: 'GUEST_RIP', encoding: 0x6830 }])), /declared twice/);
  assert.throws(() => buildModel(withFields([{ name: 'HOST_THING', encoding: 0x6830 }])), /type bits/);
  const badDefault1 = table.CONTROLS.map((c: { key: string }) => (c.key === 'pin' ? { ...c, defaults1: 0x17 } : c));
  assert.throws(() => buildModel({ ...table, CONTROLS: badDefault1 }), /default1/);
});

test('the straight-line copy lists (HOST_LOAD, READ_LISTS): checked, with vmcs12 offsets and widths from the table', () => {
  // HOST_LOAD: unknown and repeated names, more than 64, a segment's fields out of order.
  assert.throws(() => buildModel({ ...table, HOST_LOAD: [...table.HOST_LOAD, 'NO_SUCH_FIELD'] }), /not a field/);
  assert.throws(() => buildModel({ ...table, HOST_LOAD: [...table.HOST_LOAD, 'GUEST_RIP'] }), /listed twice/);
  const swapped = table.HOST_LOAD.map((f: unknown) => (f === 'GUEST_SS_BASE' ? 'GUEST_SS_LIMIT' : f === 'GUEST_SS_LIMIT' ? 'GUEST_SS_BASE' : f));
  assert.throws(() => buildModel({ ...table, HOST_LOAD: swapped }), /GUEST_SS_BASE must follow/);
  // 28.5.2/28.5.3: every guest field a VM exit loads from the host-state area is there (LDTR's
  // base and limit are left as they were: the SDM loads only its selector and unusability).
  const slots = V.HOSTLOAD_FIELDS.map((f) => f.encoding);
  for (const enc of [V.GUEST_RIP, V.GUEST_RSP, V.GUEST_RFLAGS, V.GUEST_CR0, V.GUEST_CR3, V.GUEST_CR4, V.CR0_READ_SHADOW,
    V.CR4_READ_SHADOW, V.GUEST_DR7, V.GUEST_IA32_DEBUGCTL, V.GUEST_IA32_SYSENTER_CS, V.GUEST_IA32_SYSENTER_ESP,
    V.GUEST_IA32_SYSENTER_EIP, V.GUEST_IA32_PAT, V.GUEST_TR_BASE, V.GUEST_GDTR_BASE, V.GUEST_IDTR_LIMIT,
    V.GUEST_INTERRUPTIBILITY_STATE, V.GUEST_ACTIVITY_STATE, V.GUEST_PENDING_DEBUG_EXCEPTIONS]) {
    assert.ok(slots.includes(enc), `HOST_LOAD has ${enc.toString(16)}`);
  }
  assert.is(V.HOSTLOAD_FIELDS.filter((f) => f.optional).map((f) => f.encoding).join(), String(V.GUEST_IA32_PAT), 'only PAT is optional');
  assert.is(BigInt(V.HOSTLOAD_OPTIONAL), 1n << BigInt(V.HOSTLOAD_SLOT_GUEST_IA32_PAT));
  // READ_LISTS: unknown names fail; each entry's offset is the field's vmcs12 slot.
  const bad = table.READ_LISTS.map((l: { name: string }) => (l.name === 'EXIT_INFO' ? { ...l, fields: ['VM_EXIT_REASON', 'NOPE'] } : l));
  assert.throws(() => buildModel({ ...table, READ_LISTS: bad }), /NOPE is not a field/);
  const byEnc = new Map(V.VMCS_FIELDS.map((f) => [f.encoding, f]));
  for (const [id, l] of V.READLISTS.entries()) {
    assert.ok(l.fields.length <= 64, `${l.name}: at most 64`);
    for (const f of l.fields) assert.is(f.offset, byEnc.get(f.encoding)!.vmcs12Offset, `${l.name} ${f.encoding.toString(16)}: vmcs12 offset`);
    assert.is(id, (V as Record<string, unknown>)[`READLIST_${l.name}`], `${l.name}: id`);
  }
  // SHADOW_RW is exactly the read/write fields flagged shadow.
  const rw = V.VMCS_FIELDS.filter((f) => f.shadow && f.type !== 'ro').map((f) => f.encoding);
  assert.equal(V.READLISTS[V.READLIST_SHADOW_RW].fields.map((f) => f.encoding), rw);
});

// boot/imports/vmx.c's straight-line lists test the VMfail flags only of their first access
// and of fields some processors lack (table.mjs ALWAYS_PRESENT): the list must be exactly the
// fields Appendix B gives no "exists only on processors that support" condition, which the
// model's oracle (tests/model/vmcs-fields.ts, written from Appendix B on its own) says by
// finding them on a processor with no optional control, no CR3-target value, no VM function.
test('ALWAYS_PRESENT: the fields of every VMX processor (Appendix B), and what the C lists test', () => {
  const bare: VmxCaps = {
    revision: 1, regionSize: 4096, pin0: 0, pin1: 0, proc0: 0, proc1: 0, proc2_1: 0, exit0: 0, exit1: 0,
    entry0: 0, entry1: 0, misc: 0n, cr0Fixed0: 0n, cr0Fixed1: 0n, cr4Fixed0: 0n, cr4Fixed1: 0n,
    eptVpidCap: 0n, vmfunc: 0n, maxPhysAddr: 36,
  };
  const always = new Set<string>(table.ALWAYS_PRESENT);
  let n = 0;
  for (const f of table.VMCS_FIELDS as { name: string; encoding: number }[]) {
    if (f.encoding & 1) continue;
    const everywhere = lookupField(f.encoding, bare) !== null;
    assert.is(always.has(f.name), everywhere, `${f.name} (${f.encoding.toString(16)}): ALWAYS_PRESENT ${always.has(f.name)}, Appendix B ${everywhere}`);
    if (everywhere) n++;
  }
  assert.is(n, always.size);
  assert.ok(always.has('GUEST_RIP') && !always.has('GUEST_IA32_PAT') && !always.has('PML_INDEX') && !always.has('GUEST_PHYSICAL_ADDRESS'));
  assert.throws(() => buildModel({ ...table, ALWAYS_PRESENT: [...table.ALWAYS_PRESENT, 'NOPE'] }), /ALWAYS_PRESENT: NOPE is not a field/);
  // The generated C lists carry the flag of each field; entry 0 of each list (the access vmx.c
  // tests when it is selected) and HOST_LOAD's slot 0 (written at every call) are present
  // everywhere, and so is VM_EXIT_REASON (vmx.c's tested read when entry 0 is not selected).
  const h = readFileSync(join(REPO, 'boot/include/vmx-consts.h'), 'utf8');
  const byEnc = new Map((table.VMCS_FIELDS as { name: string; encoding: number }[]).map((f) => [f.encoding, f.name]));
  let rows = 0;
  for (const m of h.matchAll(/^    X\((\d+), (0x[0-9a-f]+), (?:\d+, \S+|[01]), ([01])\) \/\* (\w+) \*\//gm)) {
    const name = byEnc.get(Number(m[2]))!;
    assert.is(m[3] === '1', always.has(name), `vmx-consts.h ${m[4]}: always flag`);
    if (m[1] === '0') assert.ok(always.has(name), `${name}: entry 0 of a list is present everywhere`);
    rows++;
  }
  assert.is(rows, V.READLISTS.reduce((s, l) => s + l.fields.length, 0) + V.HOSTLOAD_FIELDS.length, 'every list entry checked');
  assert.ok(!V.HOSTLOAD_FIELDS[0].optional);
  assert.ok(always.has('VM_EXIT_REASON'));
});

test('the snapshot declaration: checked, and its lists derived from the field table', () => {
  const S = table.SNAPSHOT;
  const withSnap = (over: object) => ({ ...table, SNAPSHOT: { ...S, ...over } });
  const hdr = S.structs[0];
  const overlapping = { ...hdr, fields: [...hdr.fields, { name: 'EXTRA', offset: 20, size: 4, doc: '' }] };
  assert.throws(() => buildModel(withSnap({ structs: [overlapping, ...S.structs.slice(1)] })), /overlaps/);
  const misaligned = { ...hdr, fields: [{ name: 'ODD', offset: 2, size: 4, doc: '' }] };
  assert.throws(() => buildModel(withSnap({ structs: [misaligned, ...S.structs.slice(1)] })), /aligned/);
  assert.throws(() => buildModel(withSnap({ vmcs01Exclude: { ...S.vmcs01Exclude, HOST_RIP: 'x' } })), /not a guest-state field/);
  assert.throws(() => buildModel(withSnap({ vmcs01Extra: { GUEST_RIP: 'x' } })), /outside the guest-state area/);
  assert.throws(() => buildModel(withSnap({ msrs: [...S.msrs, { name: 'IA32_STAR' }] })), /listed twice/);
  assert.throws(() => buildModel(withSnap({ sections: [...S.sections].reverse() })), /ascending/);
  // Every guest-state field is either in the VMCS01 list or excluded with a reason; the list is
  // ascending; the read shadows are in it; the vmcs12 fingerprint changes with the layout.
  const m = buildModel(table);
  for (const f of m.fields.filter((f: { type: string }) => f.type === 'guest')) {
    assert.is(V.SNAP_VMCS01_FIELDS.includes(f.encoding), !(f.name in S.vmcs01Exclude), f.name);
  }
  assert.ok(V.SNAP_VMCS01_FIELDS.includes(V.CR0_READ_SHADOW) && V.SNAP_VMCS01_FIELDS.includes(V.CR4_READ_SHADOW));
  assert.ok(V.SNAP_VMCS01_FIELDS.every((e, i, a) => i === 0 || a[i - 1] < e));
  assert.ok(V.SNAP_MSRS.every((e, i, a) => i === 0 || a[i - 1] < e));
  assert.is(V.SNAP_VMCS01_FIELDS.length, V.SNAP_VMCS01_FIELD_COUNT);
  assert.is(V.SNAP_MSRS.length, V.SNAP_MSR_COUNT);
  const layoutOf = (t: typeof table) => buildModel(t).sections.flatMap((s: { consts: { name: string; value: bigint }[] }) => s.consts)
    .find((c: { name: string }) => c.name === 'SNAP_VMCS12_LAYOUT').value;
  assert.is(layoutOf(table), BigInt(V.SNAP_VMCS12_LAYOUT));
  const oneMore = { ...table, VMCS_FIELDS: [...table.VMCS_FIELDS, { name: 'GUEST_NEW_THING', encoding: 0x6830 }] };
  assert.is.not(layoutOf(oneMore), BigInt(V.SNAP_VMCS12_LAYOUT));
});

// ---- the three generated files ------------------------------------------------------------

/** NAME -> value (BigInt) from one generated file. */
function constsOf(path: string, re: RegExp): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of readFileSync(join(REPO, path), 'utf8').split('\n')) {
    const m = re.exec(line);
    if (m) out.set(m[1], BigInt(m[2]));
  }
  return out;
}

test('the AssemblyScript, C and TypeScript files define the same names and values', () => {
  const asConsts = constsOf('kernel/arch/vmx.ts', /^export const ([A-Z0-9_]+): [iu](?:32|64) = (-?(?:0x)?[0-9a-f]+);/);
  const cConsts = constsOf('boot/include/vmx-consts.h', /^#define ([A-Z0-9_]+) \(?(?:VMX_U64\()?(-?(?:0x)?[0-9a-f]+)/);
  const tsConsts = new Map<string, bigint>();
  for (const [k, v] of Object.entries(V)) if (typeof v === 'number' || typeof v === 'bigint') tsConsts.set(k, BigInt(v));
  cConsts.delete('HV_VMX_CONSTS_H');
  assert.ok(asConsts.size > 700, `${asConsts.size} constants`);
  assert.equal([...asConsts.keys()].sort(), [...tsConsts.keys()].sort());
  assert.equal([...cConsts.keys()].sort(), [...tsConsts.keys()].sort());
  for (const [k, v] of tsConsts) {
    assert.is(asConsts.get(k), v, `AssemblyScript ${k}`);
    assert.is(cConsts.get(k), v, `C ${k}`);
  }
  for (const p of GENERATED) {
    assert.ok(readFileSync(join(REPO, p), 'utf8').split('\n', 1)[0].includes('GENERATED by tools/vmx/gen.mjs'), p);
  }
});

test('the C header compiles as C', () => {
  const r = spawnSync('clang-16', ['-ffreestanding', '-fsyntax-only', '-Wall', '-Wextra', '-x', 'c', 'boot/include/vmx-consts.h'], { cwd: REPO, encoding: 'utf8' });
  if (r.error) return; // no clang-16 here: the build itself checks the header
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
});

/** Reads an AssemblyScript string (UTF-16, byte length in the header word before it). */
function asString(mem: WebAssembly.Memory, ptr: number): string {
  const len = new Uint32Array(mem.buffer, ptr - 4, 1)[0];
  return Buffer.from(new Uint8Array(mem.buffer, ptr, len)).toString('utf16le');
}

test('kernel/arch/vmx.ts compiles (--runtime stub) and its lookups agree with the table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmx-as-'));
  try {
    const wasmPath = join(dir, 'vmx.wasm');
    const asc = join(REPO, 'node_modules/assemblyscript/bin/asc.js');
    const r = spawnSync(process.execPath, [asc, 'kernel/arch/vmx.ts', '--runtime', 'stub', '-O3', '-o', wasmPath], { cwd: REPO, encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    const mod = new WebAssembly.Module(readFileSync(wasmPath));
    assert.equal(WebAssembly.Module.imports(mod), [], 'no imports: nothing aborts or allocates');
    const e = new WebAssembly.Instance(mod, {}).exports as Record<string, any>;
    const mem = e.memory as WebAssembly.Memory;
    const str = (fn: string, arg: number) => asString(mem, e[fn](arg));

    assert.is(e.VMCS_FIELD_COUNT.value, V.VMCS_FIELDS.length);
    assert.is(e.VMCS12_SIZE.value, V.VMCS12_SIZE);
    V.VMCS_FIELDS.forEach((f, i) => {
      assert.is(e.vmcsFieldEncodingAt(i) >>> 0, f.encoding, `field ${i}`);
      assert.is(e.vmcs12Offset(f.encoding), f.vmcs12Offset, f.name);
      assert.is(e.vmcs12Offset(f.encoding | 1), f.width === 64 ? f.vmcs12Offset + 4 : -1, `${f.name} high`);
      assert.is(e.vmcsFieldIsShadowed(f.encoding), f.shadow ? 1 : 0, `${f.name} shadow`);
      assert.is(str('vmcsFieldName', f.encoding), f.name);
      if (f.width === 64) assert.is(str('vmcsFieldName', f.encoding | 1), f.name + '_HIGH');
    });
    assert.is(e.vmcsFieldEncodingAt(-1) >>> 0, 0xffffffff);
    assert.is(e.vmcsFieldEncodingAt(V.VMCS_FIELDS.length) >>> 0, 0xffffffff);
    // every 15-bit encoding that is not a declared field (and a few wider ones) is unknown
    let unknown = 0;
    for (let enc = 0; enc < 0x8000; enc++) {
      const f = V.vmcsFieldOf(enc);
      assert.is(e.vmcs12Offset(enc), V.vmcs12Offset(enc));
      if (!f) {
        unknown++;
        assert.is(e.vmcsFieldIsShadowed(enc), 0);
      }
    }
    assert.ok(unknown > 0x7000);
    for (const enc of [0x1681e, 0x8000681e, 0xffffffff, 0x781e]) assert.is(e.vmcs12Offset(enc | 0), -1, enc.toString(16));
    assert.is(str('vmcsFieldName', 0x482c), '');

    for (const r of V.EXIT_REASONS) assert.is(str('exitReasonName', r.number), r.name);
    assert.is(str('exitReasonName', 0x80000000 | V.EXIT_REASON_ENTRY_FAILURE_GUEST_STATE), 'ENTRY_FAILURE_GUEST_STATE');
    assert.is(str('exitReasonName', 35), '');
    for (const x of V.VMX_ERRORS) assert.is(str('vmxErrorName', x.number), x.name);
    assert.is(str('vmxErrorName', 14), '');
    const fns: Record<string, string> = { pin: 'pinCtlName', proc: 'procCtlName', proc2: 'proc2CtlName', proc3: 'proc3CtlName',
      exit: 'exitCtlName', exit2: 'exit2CtlName', entry: 'entryCtlName', vmfunc: 'vmfuncCtlName' };
    for (const w of V.CONTROL_WORDS) {
      for (let bit = 0; bit < w.width; bit++) assert.is(str(fns[w.key], bit), w.bits.find((b) => b.bit === bit)?.name ?? '', `${w.key} bit ${bit}`);
    }
    for (let bit = 0; bit < 64; bit++) assert.is(str('eptVpidCapName', bit), V.EPT_VPID_CAP_BITS.find((b) => b.bit === bit)?.name ?? '');
    assert.is(str('vmfuncName', 0), 'EPTP_SWITCHING');

    // exported globals are the same numbers (u32 read back unsigned, u64 as bigint)
    assert.is(e.GUEST_RIP.value >>> 0, 0x681e);
    assert.is(e.PROC_ACTIVATE_SECONDARY_CONTROLS.value >>> 0, 0x80000000);
    assert.is(BigInt.asUintN(64, e.VMX_BASIC_TRUE_CONTROLS.value), 1n << 55n);
    assert.is(e.MSR_IA32_EFER.value >>> 0, 0xc0000080);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- gen.mjs --check ----------------------------------------------------------------------

test('gen.mjs --check passes on the committed files', () => {
  const r = gen('--check');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /up to date/);
  assert.is(r.stdout.trim().split('\n').length, 1);
});

test('gen.mjs --check fails, naming the file, when a generated file is altered or missing', () => {
  const root = mkdtempSync(join(tmpdir(), 'vmx-gen-'));
  try {
    let r = gen('--root', root);
    assert.is(r.status, 0, r.stderr);
    for (const p of GENERATED) assert.is(readFileSync(join(root, p), 'utf8'), readFileSync(join(REPO, p), 'utf8'), `${p} deterministic`);
    r = gen('--check', '--root', root);
    assert.is(r.status, 0, r.stderr);

    const victim = join(root, 'kernel/arch/vmx.ts');
    writeFileSync(victim, readFileSync(victim, 'utf8').replace('export const GUEST_RIP: u32 = 0x681e;', 'export const GUEST_RIP: u32 = 0x681c;'));
    r = gen('--check', '--root', root);
    assert.is(r.status, 1);
    assert.match(r.stderr, 'generated file kernel/arch/vmx.ts is out of date: run make gen');
    assert.not.match(r.stderr, 'vmx-consts');

    unlinkSync(join(root, 'boot/include/vmx-consts.h'));
    r = gen('--check', '--root', root);
    assert.is(r.status, 1);
    assert.match(r.stderr, 'generated file boot/include/vmx-consts.h is out of date');
    assert.match(r.stderr, 'generated file kernel/arch/vmx.ts is out of date');

    r = gen('--root', root);
    assert.is(r.status, 0, r.stderr);
    r = gen('--check', '--root', root);
    assert.is(r.status, 0, r.stderr);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
