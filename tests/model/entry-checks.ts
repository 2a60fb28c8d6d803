// The VM-entry checks the model can make without running a guest: checks on
// the VMX controls (SDM Vol. 3C 27.2.1, failure = VMfailValid 7) and on the
// host-state area (27.2.2 and 27.2.3, failure = VMfailValid 8). Each returns
// the list of broken rules, worded after the SDM, so a test failure says
// which check failed. Guest-state checks (27.3) are not modelled yet.
import type { VmxCaps } from './vmcs-fields.ts';

export interface EntryEnv {
  caps: VmxCaps;
  read(enc: number): bigint; // current VMCS field (0 when never written)
  readPhys32(pa: number): number; // for the TPR-threshold check
  linearBits: number; // CPUID.80000008H:EAX[15:8]
  ia32eMode: boolean; // IA32_EFER.LMA of the processor doing the VM entry
  inSmm: boolean;
}

const F = {
  VPID: 0x0000, IO_A: 0x2000, IO_B: 0x2002, MSR_BITMAP: 0x2004, EXIT_MSR_STORE: 0x2006,
  EXIT_MSR_LOAD: 0x2008, ENTRY_MSR_LOAD: 0x200a, PML: 0x200e, VAPIC: 0x2012, APIC_ACCESS: 0x2014,
  VMFUNC: 0x2018, EPTP: 0x201a, EPTP_LIST: 0x2024, VMREAD_BITMAP: 0x2026, VMWRITE_BITMAP: 0x2028,
  VE_INFO: 0x202a, SPPTP: 0x2030, HOST_PAT: 0x2c00, HOST_EFER: 0x2c02,
  PIN: 0x4000, PROC: 0x4002, CR3_COUNT: 0x400a, EXIT: 0x400c, EXIT_STORE_COUNT: 0x400e,
  EXIT_LOAD_COUNT: 0x4010, ENTRY: 0x4012, ENTRY_LOAD_COUNT: 0x4014, ENTRY_INTR: 0x4016,
  ENTRY_ERRCODE: 0x4018, ENTRY_INSN_LEN: 0x401a, TPR_THRESHOLD: 0x401c, PROC2: 0x401e,
  HOST_ES: 0x0c00, HOST_CS: 0x0c02, HOST_SS: 0x0c04, HOST_DS: 0x0c06, HOST_FS: 0x0c08,
  HOST_GS: 0x0c0a, HOST_TR: 0x0c0c,
  HOST_CR0: 0x6c00, HOST_CR3: 0x6c02, HOST_CR4: 0x6c04, HOST_FS_BASE: 0x6c06,
  HOST_GS_BASE: 0x6c08, HOST_TR_BASE: 0x6c0a, HOST_GDTR_BASE: 0x6c0c, HOST_IDTR_BASE: 0x6c0e,
  HOST_SYSENTER_ESP: 0x6c10, HOST_SYSENTER_EIP: 0x6c12, HOST_RIP: 0x6c16,
} as const;

const bit = (v: number, b: number): boolean => ((v >>> b) & 1) === 1;
const hex = (v: bigint | number): string => `0x${(typeof v === 'bigint' ? v : v >>> 0).toString(16)}`;

// An address is a valid "physical address" field when it sets no bit at or
// beyond MAXPHYADDR; `align` is the required alignment.
function addrProblem(name: string, v: bigint, caps: VmxCaps, align = 4096n): string | null {
  if (v % align !== 0n) return `${name} ${hex(v)} is not ${align}-byte aligned`;
  if (v >> BigInt(caps.maxPhysAddr) !== 0n) return `${name} ${hex(v)} sets bits beyond the physical-address width (${caps.maxPhysAddr})`;
  return null;
}

export function canonical(v: bigint, linearBits: number): boolean {
  const top = BigInt.asUintN(64, v) >> BigInt(linearBits - 1);
  return top === 0n || top === (1n << BigInt(65 - linearBits)) - 1n;
}

// An EPTP value that VM entry (and INVEPT single-context) accepts (27.2.1.1).
export function eptpProblem(eptp: bigint, caps: VmxCaps): string | null {
  const cap = caps.eptVpidCap;
  const type = Number(eptp & 7n);
  if (!((type === 0 && (cap >> 8n) & 1n) || (type === 6 && (cap >> 14n) & 1n))) {
    return `EPTP memory type ${type} is not supported (IA32_VMX_EPT_VPID_CAP bits 8/14)`;
  }
  const walk = Number((eptp >> 3n) & 7n) + 1;
  if (!((walk === 4 && (cap >> 6n) & 1n) || (walk === 5 && (cap >> 7n) & 1n))) {
    return `EPTP page-walk length ${walk} is not supported (IA32_VMX_EPT_VPID_CAP bits 6/7)`;
  }
  if ((eptp >> 6n) & 1n && !((cap >> 21n) & 1n)) return 'EPTP enables accessed/dirty flags, which IA32_VMX_EPT_VPID_CAP bit 21 does not offer';
  if ((eptp >> 7n) & 0x1fn) return `EPTP reserved bits 11:7 are set (${hex(eptp)})`;
  if (eptp >> BigInt(caps.maxPhysAddr) !== 0n) return `EPTP ${hex(eptp)} sets bits beyond the physical-address width`;
  return null;
}

// The control value must have every allowed-0 bit set and no bit outside allowed-1.
function ctlProblem(name: string, v: number, must1: number, may1: number): string | null {
  const missing = (must1 & ~v) >>> 0;
  const extra = (v & ~may1) >>> 0;
  if (missing) return `${name} ${hex(v)} clears bits the capability MSR requires (${hex(missing)})`;
  if (extra) return `${name} ${hex(v)} sets bits the capability MSR does not allow (${hex(extra)})`;
  return null;
}

export function checkControls(env: EntryEnv): string[] {
  const { caps } = env;
  const p: (string | null)[] = [];
  const r = (e: number): bigint => env.read(e);
  const pin = Number(r(F.PIN)), proc = Number(r(F.PROC));
  const proc2 = bit(proc, 31) ? Number(r(F.PROC2)) : 0;
  const exit = Number(r(F.EXIT)), entry = Number(r(F.ENTRY));

  // 27.2.1.1 VM-execution control fields
  p.push(ctlProblem('pin-based controls', pin, caps.pin0, caps.pin1));
  p.push(ctlProblem('primary processor-based controls', proc, caps.proc0, caps.proc1));
  if (bit(proc, 31)) p.push(ctlProblem('secondary processor-based controls', proc2, 0, caps.proc2_1));
  const cr3Max = Number((caps.misc >> 16n) & 0x1ffn);
  if (r(F.CR3_COUNT) > BigInt(cr3Max)) p.push(`CR3-target count ${r(F.CR3_COUNT)} exceeds ${cr3Max} (IA32_VMX_MISC bits 24:16)`);
  if (bit(proc, 25)) {
    p.push(addrProblem('I/O-bitmap A address', r(F.IO_A), caps));
    p.push(addrProblem('I/O-bitmap B address', r(F.IO_B), caps));
  }
  if (bit(proc, 28)) p.push(addrProblem('MSR-bitmap address', r(F.MSR_BITMAP), caps));
  const tprShadow = bit(proc, 21);
  if (tprShadow) {
    const vapic = r(F.VAPIC);
    const bad = addrProblem('virtual-APIC address', vapic, caps);
    p.push(bad);
    const thr = Number(r(F.TPR_THRESHOLD));
    if (!bit(proc2, 9) && thr >>> 4 !== 0) p.push(`TPR threshold ${hex(thr)} sets bits 31:4`);
    if (!bad && !bit(proc2, 0) && !bit(proc2, 9)) {
      const vtpr = (env.readPhys32(Number(vapic) + 0x80) >>> 4) & 0xf;
      if ((thr & 0xf) > vtpr) p.push(`TPR threshold ${thr & 0xf} exceeds VTPR[7:4] = ${vtpr}`);
    }
  } else {
    if (bit(proc2, 4)) p.push('"virtualize x2APIC mode" requires "use TPR shadow"');
    if (bit(proc2, 8)) p.push('"APIC-register virtualization" requires "use TPR shadow"');
    if (bit(proc2, 9)) p.push('"virtual-interrupt delivery" requires "use TPR shadow"');
  }
  if (!bit(pin, 3) && bit(pin, 5)) p.push('"virtual NMIs" requires "NMI exiting"');
  if (!bit(pin, 5) && bit(proc, 22)) p.push('"NMI-window exiting" requires "virtual NMIs"');
  if (bit(proc2, 0)) p.push(addrProblem('APIC-access address', r(F.APIC_ACCESS), caps));
  if (bit(proc2, 4) && bit(proc2, 0)) p.push('"virtualize x2APIC mode" and "virtualize APIC accesses" are both 1');
  if (bit(proc2, 9) && !bit(pin, 0)) p.push('"virtual-interrupt delivery" requires "external-interrupt exiting"');
  if (bit(pin, 7)) p.push('"process posted interrupts" is not modelled');
  if (bit(proc2, 5) && (r(F.VPID) & 0xffffn) === 0n) p.push('"enable VPID" with VPID 0');
  if (bit(proc2, 1)) {
    const e = eptpProblem(r(F.EPTP), caps);
    if (e) p.push(e);
  }
  if (bit(proc2, 17)) {
    if (!bit(proc2, 1)) p.push('"enable PML" requires "enable EPT"');
    p.push(addrProblem('PML address', r(F.PML), caps));
  }
  if (bit(proc2, 7) && !bit(proc2, 1)) p.push('"unrestricted guest" requires "enable EPT"');
  if (bit(proc2, 23)) {
    if (!bit(proc2, 1)) p.push('"sub-page write permissions" requires "enable EPT"');
    p.push(addrProblem('SPP-table pointer', r(F.SPPTP), caps));
  }
  if (bit(proc2, 13)) {
    const fn = r(F.VMFUNC);
    if ((fn & ~caps.vmfunc) !== 0n) p.push(`VM-function controls ${hex(fn)} set bits IA32_VMX_VMFUNC ${hex(caps.vmfunc)} does not allow`);
    if (fn & 1n) {
      if (!bit(proc2, 1)) p.push('EPTP switching requires "enable EPT"');
      p.push(addrProblem('EPTP-list address', r(F.EPTP_LIST), caps));
    }
  }
  if (bit(proc2, 14)) {
    p.push(addrProblem('VMREAD-bitmap address', r(F.VMREAD_BITMAP), caps));
    p.push(addrProblem('VMWRITE-bitmap address', r(F.VMWRITE_BITMAP), caps));
  }
  if (bit(proc2, 18)) p.push(addrProblem('virtualization-exception information address', r(F.VE_INFO), caps));

  // 27.2.1.2 VM-exit control fields
  p.push(ctlProblem('VM-exit controls', exit, caps.exit0, caps.exit1));
  if (!bit(pin, 6) && bit(exit, 22)) p.push('"save VMX-preemption-timer value" requires "activate VMX-preemption timer"');
  if (r(F.EXIT_STORE_COUNT) !== 0n) p.push(addrProblem('VM-exit MSR-store address', r(F.EXIT_MSR_STORE), caps, 16n));
  if (r(F.EXIT_LOAD_COUNT) !== 0n) p.push(addrProblem('VM-exit MSR-load address', r(F.EXIT_MSR_LOAD), caps, 16n));

  // 27.2.1.3 VM-entry control fields
  p.push(ctlProblem('VM-entry controls', entry, caps.entry0, caps.entry1));
  const info = Number(r(F.ENTRY_INTR));
  if (bit(info, 31)) {
    const type = (info >>> 8) & 7, vector = info & 0xff;
    if (type === 1) p.push('VM-entry interruption type 1 is reserved');
    if (type === 7 && !bit(caps.proc1, 27)) p.push('interruption type 7 (other event) needs monitor-trap-flag support');
    if (type === 2 && vector !== 2) p.push(`NMI injection with vector ${vector}`);
    if (type === 3 && vector > 31) p.push(`hardware exception with vector ${vector}`);
    if (type === 7 && vector !== 0) p.push(`"other event" injection with vector ${vector}`);
    if ((info & 0x7ffff000) !== 0) p.push('VM-entry interruption-information bits 30:12 are reserved');
    if (bit(info, 11)) {
      if (type !== 3) p.push('deliver-error-code set for an event that is not a hardware exception');
      if (![8, 10, 11, 12, 13, 14, 17, 21].includes(vector)) p.push(`deliver-error-code set for vector ${vector}, which has no error code`);
      if ((r(F.ENTRY_ERRCODE) >> 16n) !== 0n) p.push('VM-entry exception error code sets bits 31:16');
    }
    if (type === 4 || type === 5 || type === 6) {
      const len = Number(r(F.ENTRY_INSN_LEN));
      const zeroOk = ((caps.misc >> 30n) & 1n) === 1n;
      if (len > 15 || (len === 0 && !zeroOk)) p.push(`VM-entry instruction length ${len} for a software event`);
    }
  }
  if (r(F.ENTRY_LOAD_COUNT) !== 0n) p.push(addrProblem('VM-entry MSR-load address', r(F.ENTRY_MSR_LOAD), caps, 16n));
  if (!env.inSmm && (bit(entry, 10) || bit(entry, 11))) p.push('"entry to SMM" / "deactivate dual-monitor treatment" set outside SMM');
  return p.filter((x): x is string => x !== null);
}

const VALID_PAT_TYPES = new Set([0, 1, 4, 5, 6, 7]);

export function checkHostState(env: EntryEnv): string[] {
  const { caps } = env;
  const p: (string | null)[] = [];
  const r = (e: number): bigint => env.read(e);
  const exit = Number(r(F.EXIT));
  const hostLong = bit(exit, 9);
  // 27.2.2 host control registers and MSRs
  const cr0 = r(F.HOST_CR0), cr4 = r(F.HOST_CR4), cr3 = r(F.HOST_CR3);
  if ((~cr0 & caps.cr0Fixed0) || (cr0 & ~caps.cr0Fixed1)) p.push(`host CR0 ${hex(cr0)} violates IA32_VMX_CR0_FIXED0/1`);
  if ((~cr4 & caps.cr4Fixed0) || (cr4 & ~caps.cr4Fixed1)) p.push(`host CR4 ${hex(cr4)} violates IA32_VMX_CR4_FIXED0/1`);
  if (cr3 >> BigInt(caps.maxPhysAddr) !== 0n) p.push(`host CR3 ${hex(cr3)} sets bits beyond the physical-address width`);
  if (!canonical(r(F.HOST_SYSENTER_ESP), env.linearBits)) p.push('host IA32_SYSENTER_ESP is not canonical');
  if (!canonical(r(F.HOST_SYSENTER_EIP), env.linearBits)) p.push('host IA32_SYSENTER_EIP is not canonical');
  if (bit(exit, 19)) {
    const pat = r(F.HOST_PAT);
    for (let i = 0n; i < 8n; i++) {
      if (!VALID_PAT_TYPES.has(Number((pat >> (8n * i)) & 0xffn))) p.push(`host IA32_PAT ${hex(pat)} has an invalid memory type in byte ${i}`);
    }
  }
  if (bit(exit, 21)) {
    const e = r(F.HOST_EFER);
    if (e & ~0xd01n) p.push(`host IA32_EFER ${hex(e)} sets reserved bits`);
    if (((e >> 10n) & 1n) !== (hostLong ? 1n : 0n) || ((e >> 8n) & 1n) !== (hostLong ? 1n : 0n)) {
      p.push('host IA32_EFER.LMA/LME differ from "host address-space size"');
    }
  }
  // 27.2.3 host segment and descriptor-table registers
  const sels: [string, number][] = [['ES', F.HOST_ES], ['CS', F.HOST_CS], ['SS', F.HOST_SS], ['DS', F.HOST_DS],
    ['FS', F.HOST_FS], ['GS', F.HOST_GS], ['TR', F.HOST_TR]];
  for (const [n, e] of sels) if (r(e) & 7n) p.push(`host ${n} selector ${hex(r(e))} has RPL or TI set`);
  if (r(F.HOST_CS) === 0n) p.push('host CS selector is 0');
  if (r(F.HOST_TR) === 0n) p.push('host TR selector is 0');
  if (r(F.HOST_SS) === 0n && !hostLong) p.push('host SS selector is 0 with "host address-space size" 0');
  for (const [n, e] of [['FS', F.HOST_FS_BASE], ['GS', F.HOST_GS_BASE], ['TR', F.HOST_TR_BASE],
    ['GDTR', F.HOST_GDTR_BASE], ['IDTR', F.HOST_IDTR_BASE]] as [string, number][]) {
    if (!canonical(r(e), env.linearBits)) p.push(`host ${n} base ${hex(r(e))} is not canonical`);
  }
  // 27.2.4 address-space size
  if (env.ia32eMode) {
    if (!hostLong) p.push('the processor is in IA-32e mode but "host address-space size" is 0');
  } else if (hostLong) p.push('"host address-space size" is 1 outside IA-32e mode');
  if (hostLong) {
    if (!(cr4 & 0x20n)) p.push('"host address-space size" is 1 but host CR4.PAE is 0');
    if (!canonical(r(F.HOST_RIP), env.linearBits)) p.push(`host RIP ${hex(r(F.HOST_RIP))} is not canonical`);
  } else {
    if (bit(Number(r(F.ENTRY)), 9)) p.push('"IA-32e mode guest" requires "host address-space size"');
  }
  return p.filter((x): x is string => x !== null);
}
