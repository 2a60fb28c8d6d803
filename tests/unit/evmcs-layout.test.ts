// The Hyper-V enlightened VMCS v1 layout and clean-field groups as tools/vmx/table.mjs declares
// them and the generator emits them (tests/model/vmx-consts.ts, kernel/arch/vmx.ts).
//
// The expectations below are written here from the sources, independently of the table:
// - offsets: the TLFS data type HV_VMX_ENLIGHTENED_VMCS ("Hypervisor Top-Level Functional
//   Specification", datatypes/hv_vmx_enlightened_vmcs) laid out with natural alignment, which
//   Linux's struct hv_enlightened_vmcs (arch/x86/include/asm/hyperv-tlfs.h, __packed with
//   explicit padding16_1/padding32_2 members) reproduces byte for byte; the fields the TLFS
//   first left reserved are placed as Linux's 2022 revision of the struct places them;
// - clean groups: the TLFS table "Physical VMCS Encoding" (GuestRip/TprThreshold NONE,
//   GuestRsp/GuestRflags/GuestInterruptibility GUEST_BASIC, host selectors HOST_GRP1, ...) and
//   Linux's vmcs_field_to_evmcs_1 (arch/x86/kvm/vmx/hyperv_evmcs.c) for the rest;
// - the VP assist page: TLFS HV_VP_ASSIST_PAGE (EnlightenVmEntry BOOLEAN after ApicAssist,
//   ReservedZ0, VtlControl (24 bytes) and NestedEnlightenmentsControl (8 bytes); then 7 reserved
//   bytes and CurrentNestedVmcs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as V from '../model/vmx-consts.ts';
// @ts-ignore: plain ESM without type declarations
import { buildModel } from '../../tools/vmx/gen.mjs';
// @ts-ignore: plain ESM without type declarations
import * as table from '../../tools/vmx/table.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const byName = new Map(V.EVMCS_FIELDS.map((f) => [f.name, f]));
function field(name: string) {
  const f = byName.get(name);
  if (!f) throw new Error(`no eVMCS field ${name}`);
  return f;
}

// [field, byte offset, size], counted by hand from the TLFS structure.
const OFFSETS: [string, number, number][] = [
  ['REVISION_ID', 0, 4], // VersionNumber
  ['ABORT', 4, 4], // AbortIndicator
  ['HOST_ES_SELECTOR', 8, 2],
  ['HOST_TR_SELECTOR', 20, 2],
  ['HOST_IA32_PAT', 24, 8], // 8-byte aligned after seven UINT16s (22 -> 24)
  ['HOST_RIP', 80, 8],
  ['HOST_IA32_SYSENTER_CS', 88, 4],
  ['PIN_BASED_VM_EXEC_CONTROL', 92, 4],
  ['SECONDARY_PROC_BASED_VM_EXEC_CONTROL', 100, 4],
  ['IO_BITMAP_A', 104, 8],
  ['MSR_BITMAPS', 120, 8],
  ['GUEST_ES_SELECTOR', 128, 2],
  ['GUEST_TR_SELECTOR', 142, 2],
  ['GUEST_ES_LIMIT', 144, 4],
  ['GUEST_IDTR_LIMIT', 180, 4],
  ['GUEST_ES_ACCESS_RIGHTS', 184, 4],
  ['GUEST_TR_ACCESS_RIGHTS', 212, 4],
  ['GUEST_ES_BASE', 216, 8],
  ['GUEST_IDTR_BASE', 288, 8],
  ['VM_EXIT_MSR_STORE_ADDRESS', 320, 8], // after Rsvd1[3] (296..319)
  ['CR3_TARGET_VALUE3', 368, 8],
  ['PAGE_FAULT_ERROR_CODE_MASK', 376, 4],
  ['VM_ENTRY_MSR_LOAD_COUNT', 396, 4],
  ['TSC_OFFSET', 400, 8],
  ['VMCS_LINK_POINTER', 416, 8], // GuestWorkingVmcsPtr
  ['GUEST_PDPTE0', 448, 8],
  ['GUEST_ACTIVITY_STATE', 504, 4], // GuestSleepState
  ['GUEST_IA32_SYSENTER_CS', 508, 4],
  ['CR0_GUEST_HOST_MASK', 512, 8],
  ['GUEST_CR3', 552, 8],
  ['GUEST_DR7', 568, 8],
  ['HOST_FS_BASE', 576, 8],
  ['HOST_RSP', 616, 8],
  ['EPT_POINTER', 624, 8], // EptRoot
  ['VIRTUAL_PROCESSOR_ID', 632, 2], // Vpid, then Rsvd2[3] and Rsvd3[5]
  ['GUEST_PHYSICAL_ADDRESS', 680, 8], // ExitEptFaultGpa
  ['VM_INSTRUCTION_ERROR', 688, 4],
  ['VM_EXIT_REASON', 692, 4],
  ['VM_EXIT_INSTRUCTION_INFO', 716, 4],
  ['EXIT_QUALIFICATION', 720, 8],
  ['IO_RCX', 728, 8],
  ['GUEST_LINEAR_ADDRESS', 760, 8],
  ['GUEST_RSP', 768, 8],
  ['GUEST_RFLAGS', 776, 8],
  ['GUEST_INTERRUPTIBILITY_STATE', 784, 4],
  ['PRIMARY_PROC_BASED_VM_EXEC_CONTROL', 788, 4],
  ['TPR_THRESHOLD', 812, 4],
  ['GUEST_RIP', 816, 8],
  ['CLEAN_FIELDS', 824, 4],
  ['SYNTHETIC_CONTROLS', 832, 4],
  ['ENLIGHTENMENTS_CONTROL', 836, 4],
  ['VP_ID', 840, 4],
  ['VM_ID', 848, 8], // 8-byte aligned after VpId (844 -> 848)
  ['PARTITION_ASSIST_PAGE', 856, 8],
  ['GUEST_IA32_BNDCFGS', 896, 8], // after Rsvd5[4]
  ['XSS_EXITING_BITMAP', 960, 8],
  ['ENCLS_EXITING_BITMAP', 968, 8],
  ['TSC_MULTIPLIER', 984, 8],
  ['HOST_IA32_INTERRUPT_SSP_TABLE_ADDR', 1008, 8],
];

test('offsets and sizes of a selection of fields (TLFS HV_VMX_ENLIGHTENED_VMCS)', () => {
  for (const [name, offset, size] of OFFSETS) {
    const f = field(name);
    assert.is(f.offset, offset, `${name} offset`);
    assert.is(f.size, size, `${name} size`);
    // The generated offset constant agrees with the metadata.
    assert.is((V as unknown as Record<string, number>)['EVMCS_' + name], offset, `EVMCS_${name}`);
  }
});

test('the structure is 1024 bytes, version 1', () => {
  assert.is(V.EVMCS_BYTES, 1024);
  assert.is(V.EVMCS_VERSION, 1);
  assert.is(V.EVMCS_FIELD_COUNT, V.EVMCS_FIELDS.length);
});

test('fields do not overlap and, with the reserved bytes, cover the structure exactly', () => {
  const owner = new Array<string | null>(V.EVMCS_BYTES).fill(null);
  const claim = (what: string, offset: number, size: number) => {
    assert.ok(offset >= 0 && offset + size <= V.EVMCS_BYTES, `${what} inside the structure`);
    for (let i = offset; i < offset + size; i++) {
      assert.is(owner[i], null, `byte ${i} claimed by ${what} and ${owner[i]}`);
      owner[i] = what;
    }
  };
  for (const f of V.EVMCS_FIELDS) {
    assert.is(f.offset % f.size, 0, `${f.name} naturally aligned`);
    claim(f.name, f.offset, f.size);
  }
  for (const r of V.EVMCS_RESERVED) claim(`reserved@${r.offset}`, r.offset, r.size);
  assert.is(owner.indexOf(null), -1, 'every byte is a field or reserved');
});

test('every field has a clean-field group; field widths match their VMCS encodings', () => {
  const groups = new Set(V.EVMCS_CLEAN_GROUPS.map((g) => g.name));
  assert.is(groups.size, 16);
  const seen = new Set<number>();
  for (const f of V.EVMCS_FIELDS) {
    assert.ok(f.clean === 'NONE' || f.clean === 'ALL' || groups.has(f.clean), `${f.name}: clean group ${f.clean}`);
    if (f.encoding === null) continue;
    assert.not.ok(seen.has(f.encoding), `${f.name} once`);
    seen.add(f.encoding);
    const width = (f.encoding >> 13) & 3; // SDM 25.11.2: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural
    assert.is(f.size, [2, 8, 4, 8][width], `${f.name} size vs. its encoding's width`);
  }
});

test('clean-field group bits (TLFS HV_VMX_ENLIGHTENED_CLEAN_FIELD_*)', () => {
  const expected: Record<string, number> = {
    IO_BITMAP: 0, MSR_BITMAP: 1, CONTROL_GRP2: 2, CONTROL_GRP1: 3, CONTROL_PROC: 4, CONTROL_EVENT: 5,
    CONTROL_ENTRY: 6, CONTROL_EXCPN: 7, CRDR: 8, CONTROL_XLAT: 9, GUEST_BASIC: 10, GUEST_GRP1: 11,
    GUEST_GRP2: 12, HOST_POINTER: 13, HOST_GRP1: 14, ENLIGHTENMENTSCONTROL: 15,
  };
  for (const [name, bit] of Object.entries(expected)) {
    assert.is((V as unknown as Record<string, number>)['EVMCS_CLEAN_' + name], 1 << bit, name);
  }
  assert.is(V.EVMCS_CLEAN_ALL, 0xffff);
});

test('clean-field group of a selection of fields (TLFS table; Linux vmcs_field_to_evmcs_1)', () => {
  const expected: [string, string][] = [
    ['GUEST_RIP', 'NONE'], ['TPR_THRESHOLD', 'NONE'], ['VM_EXIT_REASON', 'NONE'], ['EXIT_QUALIFICATION', 'NONE'],
    ['GUEST_RSP', 'GUEST_BASIC'], ['GUEST_RFLAGS', 'GUEST_BASIC'], ['GUEST_INTERRUPTIBILITY_STATE', 'GUEST_BASIC'],
    ['PRIMARY_PROC_BASED_VM_EXEC_CONTROL', 'CONTROL_PROC'], ['EXCEPTION_BITMAP', 'CONTROL_EXCPN'],
    ['VM_ENTRY_CONTROL', 'CONTROL_ENTRY'], ['VM_ENTRY_INTERRUPTION_INFO', 'CONTROL_EVENT'],
    ['VM_ENTRY_INSTRUCTION_LENGTH', 'CONTROL_EVENT'], ['HOST_ES_SELECTOR', 'HOST_GRP1'], ['HOST_IA32_PAT', 'HOST_GRP1'],
    ['HOST_CR3', 'HOST_GRP1'], ['HOST_IA32_SYSENTER_CS', 'HOST_GRP1'], ['PIN_BASED_VM_EXEC_CONTROL', 'CONTROL_GRP1'],
    ['VM_EXIT_CONTROL', 'CONTROL_GRP1'], ['SECONDARY_PROC_BASED_VM_EXEC_CONTROL', 'CONTROL_GRP1'],
    ['IO_BITMAP_A', 'IO_BITMAP'], ['IO_BITMAP_B', 'IO_BITMAP'], ['MSR_BITMAPS', 'MSR_BITMAP'],
    ['GUEST_ES_BASE', 'GUEST_GRP2'], ['GUEST_TR_ACCESS_RIGHTS', 'GUEST_GRP2'], ['GUEST_CS_SELECTOR', 'GUEST_GRP2'],
    ['TSC_OFFSET', 'CONTROL_GRP2'], ['VIRTUAL_APIC_ADDRESS', 'CONTROL_GRP2'], ['VMCS_LINK_POINTER', 'GUEST_GRP1'],
    ['GUEST_IA32_EFER', 'GUEST_GRP1'], ['GUEST_ACTIVITY_STATE', 'GUEST_GRP1'], ['CR0_READ_SHADOW', 'CRDR'],
    ['GUEST_CR3', 'CRDR'], ['GUEST_DR7', 'CRDR'], ['HOST_RSP', 'HOST_POINTER'], ['HOST_GDTR_BASE', 'HOST_POINTER'],
    ['EPT_POINTER', 'CONTROL_XLAT'], ['VIRTUAL_PROCESSOR_ID', 'CONTROL_XLAT'],
    ['ENLIGHTENMENTS_CONTROL', 'ENLIGHTENMENTSCONTROL'], ['VM_EXIT_MSR_LOAD_COUNT', 'ALL'],
  ];
  for (const [name, group] of expected) assert.is(field(name).clean, group, name);
});

test('the kernel lookup of eVMCS offsets by encoding agrees (kernel/arch/vmx.ts evmcsOffset)', () => {
  // Read the generated switch rather than run the kernel: every case line is (encoding, offset).
  const src = readFileSync(join(REPO, 'kernel/arch/vmx.ts'), 'utf8');
  const body = src.slice(src.indexOf('export function evmcsOffset('));
  const cases = new Map<number, number>();
  for (const m of body.slice(0, body.indexOf('return -1;')).matchAll(/case (0x[0-9a-f]+): return (\d+);/g)) {
    cases.set(Number(m[1]), Number(m[2]));
  }
  for (const f of V.EVMCS_FIELDS) {
    if (f.encoding === null) continue;
    assert.is(cases.get(f.encoding), f.offset, `${f.name}`);
    if (f.size === 8 && ((f.encoding >> 13) & 3) === 1) assert.is(cases.get(f.encoding | 1), f.offset + 4, `${f.name}_HIGH`);
  }
  assert.is(cases.get(V.GUEST_RIP), 816);
  assert.is(cases.get(V.POSTED_INTERRUPT_NOTIFICATION_VECTOR), undefined, 'eVMCS v1 has no posted interrupts');
});

test('VP assist page: EnlightenVmEntry at 28H, CurrentNestedVmcs at 30H (TLFS HV_VP_ASSIST_PAGE)', () => {
  assert.is(V.HV_VP_ASSIST_APIC_ASSIST, 0x00);
  assert.is(V.HV_VP_ASSIST_NESTED_CONTROL, 0x20);
  assert.is(V.HV_VP_ASSIST_ENLIGHTEN_VMENTRY, 0x28);
  assert.is(V.HV_VP_ASSIST_CURRENT_NESTED_VMCS, 0x30);
});

test('the generator refuses a broken eVMCS declaration', () => {
  const mutate = (f: (e: any) => void) => {
    const t = structuredClone({ ...table }) as any;
    f(t.EVMCS);
    return () => buildModel(t);
  };
  assert.not.throws(mutate(() => {}));
  assert.throws(mutate((e) => (e.fields.find((x: any) => x.vmcs === 'GUEST_RIP').offset = 812)), /overlaps|aligned/);
  assert.throws(mutate((e) => (e.fields.find((x: any) => x.vmcs === 'GUEST_RIP').size = 4)), /VMCS field is/);
  assert.throws(mutate((e) => (e.fields.find((x: any) => x.vmcs === 'GUEST_RSP').clean = 'GUEST_BASICS')), /not declared/);
  assert.throws(mutate((e) => delete e.fields.find((x: any) => x.vmcs === 'GUEST_RSP').clean), /no clean-field group/);
  assert.throws(mutate((e) => e.reserved.pop()), /end at|neither/);
  assert.throws(mutate((e) => (e.fields.find((x: any) => x.vmcs === 'GUEST_CR0').vmcs = 'GUEST_CR9')), /not in VMCS_FIELDS/);
});

test.run();
