// Machines to run the kernel on.
//
// tigerlake(): Bochs 2.7 `cpu: model=tigerlake` as measured in
// /work/shared/platform.md, completed where platform.md is silent with values
// derived from the SDM definitions of the features Bochs emulates. Where each
// value comes from:
//   measured (platform.md): VMX_BASIC revision id 4, true controls;
//     pin-based allowed-1 0x7f (no posted interrupts); PROCBASED_CTLS2
//     allowed-1 0x02977fff; VMFUNC = 1; EPT_VPID_CAP 0x00000f0106334141;
//     VMX_MISC bit 29 and preemption-timer rate 0; CR4_FIXED0 with VMXE;
//     FEATURE_CONTROL 5 (legacy BIOS) or 0 (OVMF); capability MSRs of absent
//     features raise #GP.
//   SDM-derived (Vol. 3D Appendix A): default1 bits of the control MSRs
//     (A.3.1-A.5: pin 0x16, primary 0x0401e172, exit 0x00036dff, entry
//     0x11ff; the TRUE_ MSRs let bits 15/16 of primary, bit 2 of exit and
//     entry be 0); primary allowed-1 = every defined control except bit 17
//     (tertiary controls); exit/entry allowed-1 = bits 0-22 / 0-15 without
//     "load IA32_PERF_GLOBAL_CTRL" (Bochs emulates no architectural perfmon,
//     so CPUID.0AH is 0 and that MSR is absent); CR0_FIXED0 0x80000021 (PE,
//     NE, PG), FIXED1 0xffffffff; CR4_FIXED1 = the CR4 bits this CPU
//     implements; VMCS_ENUM 0x32 = highest field index 0x19 (TSC multiplier);
//     VMX_MISC: 4 CR3 targets, activity states HLT/shutdown/wait-for-SIPI,
//     bit 5 (LMA stored on exit), bit 30 (zero-length software injection).
//   chosen (realistic, not measured): VMCS region size 4096, memory type WB
//     (6), INS/OUTS information (bit 54); CPUID family 6 model 0x8c stepping 1
//     (Tiger Lake), feature bits of a Tiger Lake client part without CET, TSX,
//     LA57 or perfmon; MAXPHYADDR 39 and 48 linear bits (CPUID 80000008H);
//     CR0 0x80010033 and CR4 0x6a0 as a 64-bit loader leaves them; EFER 0xd01.
//
// noVmx(): CPUID.1:ECX.VMX clear; the VMX capability MSRs and
// IA32_FEATURE_CONTROL are absent (#GP), CR4.VMXE is reserved (#GP).
// lockedOff(): IA32_FEATURE_CONTROL locked with VMX off (1).
import { Machine, type CpuidEntry, type MsrDef, type Regs } from './machine.ts';
import { CR4, EFER, FC_LOCK, FC_VMX_OUTSIDE_SMX, MSR, hex } from './consts.ts';
import { canonical } from './entry-checks.ts';

export interface PresetOptions {
  memSize?: number; // bytes, default 64 MiB
  featureControl?: number | bigint; // IA32_FEATURE_CONTROL at hand-over, default 5
  vmx?: boolean; // CPUID.1:ECX.VMX, default true
  vmwriteAnyField?: boolean; // IA32_VMX_MISC bit 29, default true
  maxPhysAddr?: number; // default 39
  msrs?: Record<number, bigint>; // override or add MSR values
  name?: string;
}

export const TIGERLAKE_VMX: Record<number, bigint> = {
  [MSR.IA32_VMX_BASIC]: 0x00d8100000000004n,
  [MSR.IA32_VMX_PINBASED_CTLS]: 0x0000007f00000016n,
  [MSR.IA32_VMX_PROCBASED_CTLS]: 0xfff9fffe0401e172n,
  [MSR.IA32_VMX_EXIT_CTLS]: 0x007fefff00036dffn,
  [MSR.IA32_VMX_ENTRY_CTLS]: 0x0000dfff000011ffn,
  [MSR.IA32_VMX_MISC]: 0x00000000600401e0n,
  [MSR.IA32_VMX_CR0_FIXED0]: 0x80000021n,
  [MSR.IA32_VMX_CR0_FIXED1]: 0xffffffffn,
  [MSR.IA32_VMX_CR4_FIXED0]: 0x2000n,
  [MSR.IA32_VMX_CR4_FIXED1]: 0x772fffn,
  [MSR.IA32_VMX_VMCS_ENUM]: 0x32n,
  [MSR.IA32_VMX_PROCBASED_CTLS2]: 0x02977fff00000000n,
  [MSR.IA32_VMX_EPT_VPID_CAP]: 0x00000f0106334141n,
  [MSR.IA32_VMX_TRUE_PINBASED_CTLS]: 0x0000007f00000016n,
  [MSR.IA32_VMX_TRUE_PROCBASED_CTLS]: 0xfff9fffe04006172n,
  [MSR.IA32_VMX_TRUE_EXIT_CTLS]: 0x007fefff00036dfbn,
  [MSR.IA32_VMX_TRUE_ENTRY_CTLS]: 0x0000dfff000011fbn,
  [MSR.IA32_VMX_VMFUNC]: 1n,
};

const CR4_IMPLEMENTED = 0x770fffn; // VME..UMIP, FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP, PKE (+ VMXE with VMX)

function str4(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) >>> 0;
}
function brand(part: number): Regs {
  const s = '11th Gen Intel(R) Core(TM) (model: tigerlake)'.padEnd(48, '\0');
  const q = s.slice(part * 16, part * 16 + 16);
  return [str4(q.slice(0, 4)), str4(q.slice(4, 8)), str4(q.slice(8, 12)), str4(q.slice(12, 16))];
}

function cpuidTable(vmx: boolean, maxPhys: number): Map<number, CpuidEntry> {
  const t = new Map<number, CpuidEntry>();
  t.set(0, [0x16, str4('Genu'), str4('ntel'), str4('ineI')]);
  // Leaf 1: signature 0x806c1; CLFLUSH line 8*8 bytes; ECX: SSE3 PCLMULQDQ MONITOR SSSE3 FMA
  // CX16 PCID SSE4.1 SSE4.2 x2APIC MOVBE POPCNT TSC-deadline AES XSAVE AVX F16C RDRAND
  // (+ VMX bit 5, + OSXSAVE bit 27 from CR4); EDX: FPU..SSE2 without PSN, DS, ACPI, SS, HTT, TM, PBE.
  t.set(1, (_sub, m) => [0x000806c1, 0x00010800,
    0x77fa320b | (vmx ? 1 << 5 : 0) | (m.cr(4) & CR4.OSXSAVE ? 1 << 27 : 0), 0x078bfbff]);
  t.set(6, [0x4, 0, 0, 0]); // ARAT
  // Leaf 7.0: EBX FSGSBASE TSC_ADJUST BMI1 AVX2 SMEP BMI2 ERMS INVPCID AVX512F/DQ RDSEED ADX SMAP
  // AVX512IFMA CLFLUSHOPT CLWB AVX512CD SHA AVX512BW/VL; ECX AVX512VBMI UMIP PKU (OSPKE from
  // CR4) VBMI2 GFNI VAES VPCLMULQDQ VNNI BITALG VPOPCNTDQ RDPID MOVDIRI MOVDIR64B; EDX FSRM
  // VP2INTERSECT MD_CLEAR. No CET, TSX, LA57, SGX.
  t.set(7, (sub, m) => (sub === 0
    ? [0, 0xf1bf07ab, 0x18405f4e | (m.cr(4) & CR4.PKE ? 1 << 4 : 0), 0x00000510] : [0, 0, 0, 0]));
  t.set(0xa, [0, 0, 0, 0]); // no architectural performance monitoring
  t.set(0xb, (sub) => (sub === 0 ? [0, 1, 0x100, 0] : sub === 1 ? [0, 1, 0x201, 0] : [0, 0, sub & 0xff, 0]));
  // XSAVE: x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM PKRU; XCR0 = x87 at hand-over (576 bytes).
  const xsave: Record<number, Regs> = {
    0: [0x2e7, 0x240, 0xa88, 0], 1: [0xf, 0x240, 0, 0], 2: [256, 576, 0, 0],
    5: [64, 1088, 0, 0], 6: [512, 1152, 0, 0], 7: [1024, 1664, 0, 0], 9: [8, 2688, 0, 0],
  };
  t.set(0xd, (sub) => xsave[sub] ?? [0, 0, 0, 0]);
  t.set(0x15, [2, 146, 38400000, 0]); // TSC = 38.4 MHz crystal * 146/2
  t.set(0x16, [2800, 4700, 100, 0]); // base / max / bus MHz
  t.set(0x80000000, [0x80000008, 0, 0, 0]);
  t.set(0x80000001, [0, 0, 0x121, 0x2c100800]); // LAHF LZCNT PREFETCHW; SYSCALL NX 1G-pages RDTSCP LM
  t.set(0x80000002, brand(0));
  t.set(0x80000003, brand(1));
  t.set(0x80000004, brand(2));
  t.set(0x80000006, [0, 0, 0x05006040, 0]);
  t.set(0x80000007, [0, 0, 0, 0x100]); // invariant TSC
  t.set(0x80000008, [(48 << 8) | maxPhys, 0, 0, 0]);
  return t;
}

const rw = (value: bigint, check?: (v: bigint) => string | null): MsrDef => ({ value, write: check ?? (() => null) });
const ro = (value: bigint): MsrDef => ({ value, write: null });
const canon = (v: bigint): string | null => (canonical(v, 48) ? null : 'non-canonical address');
const mask = (allowed: bigint) => (v: bigint): string | null =>
  v & ~allowed ? `reserved bits ${hex(v & ~allowed)} set` : null;
const PAT_TYPES = new Set([0, 1, 4, 5, 6, 7]);

function msrTable(o: Required<Pick<PresetOptions, 'vmx' | 'featureControl' | 'vmwriteAnyField' | 'maxPhysAddr'>>) {
  const msrs = new Map<number, MsrDef>();
  const absent = new Map<number, string>();
  const physMask = (1n << BigInt(o.maxPhysAddr)) - 1n;
  msrs.set(MSR.IA32_TSC, { value: 0n, read: (m) => m.tsc, write: () => null, store: (v, m) => ((m.tsc = v), v) });
  msrs.set(MSR.IA32_APIC_BASE, rw(0xfee00900n, (v) => mask((physMask & ~0xfffn) | 0xc00n | 0x100n)(v)));
  msrs.set(MSR.IA32_TSC_ADJUST, rw(0n));
  msrs.set(MSR.IA32_MTRRCAP, ro(0x508n)); // 8 variable ranges, fixed ranges, WC
  msrs.set(MSR.IA32_MTRR_DEF_TYPE, rw(0xc06n, mask(0xcffn)));
  for (let i = 0; i < 16; i++) msrs.set(MSR.IA32_MTRR_PHYSBASE0 + i, rw(0n));
  for (const n of [0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f]) {
    msrs.set(n, rw(0x0606060606060606n));
  }
  msrs.set(MSR.IA32_SYSENTER_CS, rw(0n, mask(0xffffn)));
  msrs.set(MSR.IA32_SYSENTER_ESP, rw(0n, canon));
  msrs.set(MSR.IA32_SYSENTER_EIP, rw(0n, canon));
  msrs.set(MSR.IA32_MISC_ENABLE, rw(0x1800n)); // fast strings clear (platform.md quirk)
  msrs.set(MSR.IA32_DEBUGCTL, rw(0n, mask(0x7803n)));
  msrs.set(MSR.IA32_PAT, rw(0x0007040600070406n, (v) => {
    for (let i = 0n; i < 8n; i++) if (!PAT_TYPES.has(Number((v >> (8n * i)) & 0xffn))) return `invalid memory type in byte ${i}`;
    return null;
  }));
  msrs.set(MSR.IA32_TSC_DEADLINE, rw(0n));
  msrs.set(MSR.IA32_XSS, rw(0n, mask(0n)));
  msrs.set(MSR.IA32_EFER, {
    value: EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE,
    write: (v, m) => {
      if (v & ~(EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE)) return `reserved bits ${hex(v & ~0xd01n)} set`;
      if ((m.cr(0) & (1n << 31n)) && ((v ^ m.efer()) & EFER.LME)) return 'changing LME with paging enabled';
      return null;
    },
    store: (v, m) => (v & ~EFER.LMA) | (m.efer() & EFER.LMA), // LMA is not written by WRMSR
  });
  msrs.set(MSR.IA32_STAR, rw(0n));
  msrs.set(MSR.IA32_LSTAR, rw(0n, canon));
  msrs.set(MSR.IA32_CSTAR, rw(0n, canon));
  msrs.set(MSR.IA32_FMASK, rw(0n, mask(0xffffffffn)));
  msrs.set(MSR.IA32_FS_BASE, rw(0n, canon));
  msrs.set(MSR.IA32_GS_BASE, rw(0n, canon));
  msrs.set(MSR.IA32_KERNEL_GS_BASE, rw(0n, canon));
  msrs.set(MSR.IA32_TSC_AUX, rw(0n, mask(0xffffffffn)));
  absent.set(MSR.IA32_PERF_GLOBAL_CTRL, 'CPUID.0AH:EAX reports no architectural performance monitoring');

  if (!o.vmx) {
    absent.set(MSR.IA32_FEATURE_CONTROL, 'CPUID.1:ECX reports neither VMX nor SMX');
    for (let n = MSR.IA32_VMX_BASIC; n <= MSR.IA32_VMX_EXIT_CTLS2; n++) absent.set(n, 'CPUID.1:ECX.VMX[bit 5] = 0');
    return { msrs, absent };
  }
  const fc = BigInt(o.featureControl);
  msrs.set(MSR.IA32_FEATURE_CONTROL, {
    value: fc,
    write: (v, m) => {
      if ((m.msrPeek(MSR.IA32_FEATURE_CONTROL) ?? 0n) & FC_LOCK) return 'the lock bit (bit 0) is set (SDM 24.7)';
      if (v & 2n) return 'bit 1 (VMX in SMX) needs SMX, which CPUID.1:ECX[bit 6] does not report';
      return mask(FC_LOCK | FC_VMX_OUTSIDE_SMX)(v);
    },
  });
  const vmxMsrs = { ...TIGERLAKE_VMX };
  if (!o.vmwriteAnyField) vmxMsrs[MSR.IA32_VMX_MISC] &= ~(1n << 29n);
  for (const [n, v] of Object.entries(vmxMsrs)) msrs.set(Number(n), ro(v));
  absent.set(MSR.IA32_VMX_PROCBASED_CTLS3, 'needs IA32_VMX_PROCBASED_CTLS bit 49 (tertiary controls) allowed-1');
  absent.set(MSR.IA32_VMX_EXIT_CTLS2, 'needs IA32_VMX_EXIT_CTLS bit 63 (secondary exit controls) allowed-1');
  return { msrs, absent };
}

// The capability MSRs must describe each other consistently; after changing
// one (opts.msrs), remove the ones the SDM says no longer exist.
export function pruneVmxMsrs(m: Machine): void {
  const basic = m.msrPeek(MSR.IA32_VMX_BASIC);
  if (basic === undefined) return;
  const proc1 = (m.msrPeek(MSR.IA32_VMX_PROCBASED_CTLS) ?? 0n) >> 32n;
  if (!((basic >> 55n) & 1n)) {
    for (const n of [MSR.IA32_VMX_TRUE_PINBASED_CTLS, MSR.IA32_VMX_TRUE_PROCBASED_CTLS, MSR.IA32_VMX_TRUE_EXIT_CTLS, MSR.IA32_VMX_TRUE_ENTRY_CTLS]) {
      m.removeMsr(n, 'needs IA32_VMX_BASIC bit 55 (true controls)');
    }
  }
  if (!((proc1 >> 31n) & 1n)) m.removeMsr(MSR.IA32_VMX_PROCBASED_CTLS2, 'needs IA32_VMX_PROCBASED_CTLS bit 63 (secondary controls) allowed-1');
  const p2 = (m.msrPeek(MSR.IA32_VMX_PROCBASED_CTLS2) ?? 0n) >> 32n;
  if (!(p2 & 0x22n)) m.removeMsr(MSR.IA32_VMX_EPT_VPID_CAP, 'needs PROCBASED_CTLS2 bit 1 (EPT) or bit 5 (VPID) allowed-1');
  if (!((p2 >> 13n) & 1n)) m.removeMsr(MSR.IA32_VMX_VMFUNC, 'IA32_VMX_VMFUNC needs PROCBASED_CTLS2 bit 13 allowed-1');
}

export function tigerlake(opts: PresetOptions = {}): Machine {
  const o = {
    vmx: opts.vmx ?? true,
    featureControl: opts.featureControl ?? 5,
    vmwriteAnyField: opts.vmwriteAnyField ?? true,
    maxPhysAddr: opts.maxPhysAddr ?? 39,
  };
  const { msrs, absent } = msrTable(o);
  const m = new Machine({
    name: opts.name ?? (o.vmx ? 'tigerlake' : 'tigerlake-novmx'),
    memSize: opts.memSize ?? 64 << 20,
    cpuid: cpuidTable(o.vmx, o.maxPhysAddr),
    msrs,
    absentMsrReasons: absent,
    cr0: 0x80010033n, // PG WP NE ET MP PE
    cr3: 0x101000n, // the loader's page tables, inside the hypervisor image (bootinfo.ts)
    cr4: 0x6a0n, // PAE PGE OSFXSR OSXMMEXCPT
    cr4Supported: CR4_IMPLEMENTED | (o.vmx ? CR4.VMXE : 0n),
  });
  for (const [n, v] of Object.entries(opts.msrs ?? {})) m.setMsr(Number(n), v);
  pruneVmxMsrs(m);
  return m;
}

export function noVmx(opts: PresetOptions = {}): Machine {
  return tigerlake({ ...opts, vmx: false });
}

export function lockedOff(opts: PresetOptions = {}): Machine {
  return tigerlake({ ...opts, featureControl: 1, name: opts.name ?? 'tigerlake-locked-off' });
}
