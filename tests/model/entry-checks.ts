// The VM-entry checks the model can make without running a guest: checks on
// the VMX controls (SDM Vol. 3C 27.2.1, failure = VMfailValid 7) and on the
// host-state area (27.2.2 and 27.2.3, failure = VMfailValid 8). Each returns
// the list of broken rules, worded after the SDM, so a test failure says
// which check failed. checkGuestState adds the checks on the guest-state
// area (27.3.1, failure = VM-entry failure, exit reason 33), with "enable
// EPT" and "unrestricted guest" 0 or 1: it is the oracle the unit tests hold the
// hypervisor's own checks on a vmcs12 against (kernel/nested/entry-checks*),
// written from the SDM text, not from that code.
import type { VmxCaps } from './vmcs-fields.ts';

export interface EntryEnv {
  caps: VmxCaps;
  read(enc: number): bigint; // current VMCS field (0 when never written)
  readPhys32(pa: number): number; // for the TPR-threshold and VMCS-link-pointer checks
  linearBits: number; // CPUID.80000008H:EAX[15:8]
  ia32eMode: boolean; // IA32_EFER.LMA of the processor doing the VM entry
  // The VMCS holds the state of a guest that has run since its entry (a
  // snapshot of it): "IA-32e mode guest" is then what the last VM exit
  // stored (28.2), the guest's own mode, not a control the entry obeyed.
  l2Ran?: boolean;
  inSmm: boolean;
  // ---- optional, for the checks a hypervisor makes on its guest's VMCS (vmcs12) ----
  // Memory the VMCS structures may lie in: physical addresses [0, ramSize).
  // Not an SDM rule: a hypervisor that reads the structures in software
  // refuses any outside its guest's RAM. Absent: no such limit.
  ramSize?: bigint;
  anyErrorCode?: boolean; // IA32_VMX_BASIC[56], default false
  readPhys64?(pa: number): bigint; // the PDPTE check (27.3.1.6)
  currentVmcs?: bigint; // the current-VMCS pointer (link-pointer check)
  rtm?: boolean; // CPUID.(EAX=07H,ECX=0):EBX.RTM[bit 11]
  sgx?: boolean; // CPUID.(EAX=07H,ECX=0):EBX.SGX[bit 2] (and usable)
  debugctlAllowed?: bigint; // IA32_DEBUGCTL bits the processor has (default: the architectural ones)
  eferAllowed?: bigint; // IA32_EFER bits the processor has (default SCE, LME, LMA, NXE)
}

const F = {
  VPID: 0x0000, PI_VECTOR: 0x0002, PI_DESC: 0x2016, IO_A: 0x2000, IO_B: 0x2002, MSR_BITMAP: 0x2004, EXIT_MSR_STORE: 0x2006,
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
function addrProblem(name: string, v: bigint, caps: VmxCaps, align = 4096n, ramSize?: bigint, len = 4096n): string | null {
  if (v % align !== 0n) return `${name} ${hex(v)} is not ${align}-byte aligned`;
  if (v >> BigInt(caps.maxPhysAddr) !== 0n) return `${name} ${hex(v)} sets bits beyond the physical-address width (${caps.maxPhysAddr})`;
  if (ramSize !== undefined && v + len > ramSize) return `${name} ${hex(v)} (+${len} bytes) is not inside the guest's RAM`;
  return null;
}

// An MSR-load/store area of `count` 16-byte entries (27.2.1.2, 27.2.1.3):
// 16-byte aligned; neither the address nor that of its last byte beyond the
// physical-address width.
function msrAreaProblem(name: string, v: bigint, count: bigint, caps: VmxCaps, ramSize?: bigint): string | null {
  const p = addrProblem(name, v, caps, 16n, ramSize, count * 16n);
  if (p) return p;
  const last = v + count * 16n - 1n;
  if (last >> BigInt(caps.maxPhysAddr) !== 0n) return `${name} area ends at ${hex(last)}, beyond the physical-address width`;
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
    p.push(addrProblem('I/O-bitmap A address', r(F.IO_A), caps, 4096n, env.ramSize));
    p.push(addrProblem('I/O-bitmap B address', r(F.IO_B), caps, 4096n, env.ramSize));
  }
  if (bit(proc, 28)) p.push(addrProblem('MSR-bitmap address', r(F.MSR_BITMAP), caps, 4096n, env.ramSize));
  const tprShadow = bit(proc, 21);
  if (tprShadow) {
    const vapic = r(F.VAPIC);
    // (In the guest's RAM: this hypervisor's rule, as for the bitmaps: vmcs02 needs the page's host address.)
    const bad = addrProblem('virtual-APIC address', vapic, caps, 4096n, env.ramSize);
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
  if (bit(proc2, 0)) p.push(addrProblem('APIC-access address', r(F.APIC_ACCESS), caps, 4096n, env.ramSize));
  if (bit(proc2, 4) && bit(proc2, 0)) p.push('"virtualize x2APIC mode" and "virtualize APIC accesses" are both 1');
  if (bit(proc2, 9) && !bit(pin, 0)) p.push('"virtual-interrupt delivery" requires "external-interrupt exiting"');
  if (bit(pin, 7)) {
    if (!bit(proc2, 9)) p.push('"process posted interrupts" requires "virtual-interrupt delivery"');
    if (!bit(exit, 15)) p.push('"process posted interrupts" requires "acknowledge interrupt on exit"');
    if ((r(F.PI_VECTOR) & 0xff00n) !== 0n) p.push('posted-interrupt notification vector sets bits 15:8');
    // (In the guest's RAM: this hypervisor's rule, it processes the descriptor itself.)
    p.push(addrProblem('posted-interrupt descriptor address', r(F.PI_DESC), caps, 64n, env.ramSize, 64n));
  }
  // "If the 'enable VPID' VM-execution control is 1, the value of the VPID
  // VM-execution control field must not be 0000H." (27.2.1.1)
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
      // (env.ramSize: a hypervisor reads the list in software, like the bitmaps.)
      p.push(addrProblem('EPTP-list address', r(F.EPTP_LIST), caps, 4096n, env.ramSize));
    }
  }
  if (bit(proc2, 14)) {
    p.push(addrProblem('VMREAD-bitmap address', r(F.VMREAD_BITMAP), caps, 4096n, env.ramSize));
    p.push(addrProblem('VMWRITE-bitmap address', r(F.VMWRITE_BITMAP), caps, 4096n, env.ramSize));
  }
  if (bit(proc2, 18)) p.push(addrProblem('virtualization-exception information address', r(F.VE_INFO), caps));

  // 27.2.1.2 VM-exit control fields
  p.push(ctlProblem('VM-exit controls', exit, caps.exit0, caps.exit1));
  if (!bit(pin, 6) && bit(exit, 22)) p.push('"save VMX-preemption-timer value" requires "activate VMX-preemption timer"');
  if (r(F.EXIT_STORE_COUNT) !== 0n) p.push(msrAreaProblem('VM-exit MSR-store address', r(F.EXIT_MSR_STORE), r(F.EXIT_STORE_COUNT), caps, env.ramSize));
  if (r(F.EXIT_LOAD_COUNT) !== 0n) p.push(msrAreaProblem('VM-exit MSR-load address', r(F.EXIT_MSR_LOAD), r(F.EXIT_LOAD_COUNT), caps, env.ramSize));

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
    // Deliver-error-code: 1 if and only if ("unrestricted guest" is 0 or the
    // guest CR0.PE is 1) and a hardware exception that pushes an error code
    // is injected; IA32_VMX_BASIC[56] lifts the vector condition.
    const peOrRestricted = !bit(proc2, 7) || (r(0x6800) & 1n) === 1n;
    const pushes = [8, 10, 11, 12, 13, 14, 17, 21].includes(vector);
    if (bit(info, 11)) {
      if (type !== 3) p.push('deliver-error-code set for an event that is not a hardware exception');
      else if (!peOrRestricted) p.push('deliver-error-code set for an unrestricted guest with CR0.PE = 0');
      else if (!pushes && !env.anyErrorCode) p.push(`deliver-error-code set for vector ${vector}, which has no error code`);
      if ((r(F.ENTRY_ERRCODE) >> 16n) !== 0n) p.push('VM-entry exception error code sets bits 31:16');
    } else if (type === 3 && peOrRestricted && pushes && !env.anyErrorCode) {
      p.push(`deliver-error-code clear for vector ${vector}, which pushes an error code`);
    }
    if (type === 4 || type === 5 || type === 6) {
      const len = Number(r(F.ENTRY_INSN_LEN));
      const zeroOk = ((caps.misc >> 30n) & 1n) === 1n;
      if (len > 15 || (len === 0 && !zeroOk)) p.push(`VM-entry instruction length ${len} for a software event`);
    }
  }
  if (r(F.ENTRY_LOAD_COUNT) !== 0n) p.push(msrAreaProblem('VM-entry MSR-load address', r(F.ENTRY_MSR_LOAD), r(F.ENTRY_LOAD_COUNT), caps, env.ramSize));
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
  if ((cr4 >> 23n) & 1n && !((cr0 >> 16n) & 1n)) p.push('host CR4.CET is 1 with CR0.WP 0');
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
    if (e & ~(env.eferAllowed ?? 0xd01n)) p.push(`host IA32_EFER ${hex(e)} sets reserved bits`);
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
    if (bit(Number(r(F.ENTRY)), 9) && !env.l2Ran) p.push('"IA-32e mode guest" requires "host address-space size"');
    if ((cr4 >> 17n) & 1n) p.push('host CR4.PCIDE is 1 with "host address-space size" 0');
    if (r(F.HOST_RIP) >> 32n) p.push(`host RIP ${hex(r(F.HOST_RIP))} sets bits 63:32 with "host address-space size" 0`);
  }
  return p.filter((x): x is string => x !== null);
}

// ---- 27.3.1 checks on the guest-state area ------------------------------------------------
//
// Each broken rule is reported with the exit qualification a VM-entry
// failure for it carries (27.8): 0, 2 (PDPTEs), 3 (NMI injection with
// blocking by STI: this model is a processor that makes that requirement),
// 4 (VMCS link pointer). The PDPTEs of a PAE guest come from memory with
// "enable EPT" 0 and from the PDPTE fields with it 1 (27.3.1.6). Written for
// a processor outside SMM.
export interface GuestProblem {
  rule: string;
  qualification: number;
}

const G = {
  SEL: 0x0800, LIMIT: 0x4800, AR: 0x4814, BASE: 0x6806, // + 2 * segment number (ES CS SS DS FS GS LDTR TR)
  GDTR_LIMIT: 0x4810, IDTR_LIMIT: 0x4812, INTERRUPTIBILITY: 0x4824, ACTIVITY: 0x4826,
  CR0: 0x6800, CR3: 0x6802, CR4: 0x6804, GDTR_BASE: 0x6816, IDTR_BASE: 0x6818, DR7: 0x681a,
  RIP: 0x681e, RFLAGS: 0x6820, PENDING_DBG: 0x6822, SYSENTER_ESP: 0x6824, SYSENTER_EIP: 0x6826,
  LINK: 0x2800, DEBUGCTL: 0x2802, PAT: 0x2804, EFER: 0x2806, PDPTE0: 0x280a, // PDPTE1..3: + 2, 4, 6
} as const;

const SEGMENTS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
type SegName = (typeof SEGMENTS)[number];

interface Seg {
  name: SegName;
  selector: bigint;
  base: bigint;
  limit: bigint;
  ar: number;
  // access-rights sub-fields (Table 25-2)
  type: number; s: boolean; dpl: number; p: boolean; l: boolean; db: boolean; g: boolean; unusable: boolean;
}

function segment(env: EntryEnv, i: number): Seg {
  const ar = Number(env.read(G.AR + 2 * i) & 0xffffffffn);
  return {
    name: SEGMENTS[i], selector: env.read(G.SEL + 2 * i) & 0xffffn, base: env.read(G.BASE + 2 * i),
    limit: env.read(G.LIMIT + 2 * i) & 0xffffffffn, ar,
    type: ar & 15, s: bit(ar, 4), dpl: (ar >>> 5) & 3, p: bit(ar, 7), l: bit(ar, 13), db: bit(ar, 14),
    g: bit(ar, 15), unusable: bit(ar, 16),
  };
}

// "If any bit in the limit field in the range 11:0 is 0, G must be 0. If
// any bit in the limit field in the range 31:20 is 1, G must be 1."
function granularityBroken(sg: Seg): boolean {
  return ((sg.limit & 0xfffn) !== 0xfffn && sg.g) || ((sg.limit >> 20n) !== 0n && !sg.g);
}

const PAT_OK = new Set([0, 1, 4, 5, 6, 7]);
const ERROR_CODE_VECTORS_HLT = new Set([1, 18]); // #DB, #MC may be injected in HLT

export function checkGuestState(env: EntryEnv): GuestProblem[] {
  const { caps } = env;
  const out: GuestProblem[] = [];
  const broken = (rule: string, qualification = 0): void => { out.push({ rule, qualification }); };
  const r = (e: number): bigint => env.read(e);
  const linear = env.linearBits;
  const canon = (v: bigint): boolean => canonical(v, linear);
  const maxPhys = BigInt(caps.maxPhysAddr);

  const pin = Number(r(F.PIN)), proc = Number(r(F.PROC)), entry = Number(r(F.ENTRY));
  const proc2 = bit(proc, 31) ? Number(r(F.PROC2)) : 0;
  const unrestricted = bit(proc2, 7);
  const ia32e = bit(entry, 9); // "the guest will be IA-32e mode"
  const loadDebug = bit(entry, 2);
  const cr0 = r(G.CR0), cr3 = r(G.CR3), cr4 = r(G.CR4), rflags = r(G.RFLAGS);
  const pe = (cr0 & 1n) === 1n, pg = ((cr0 >> 31n) & 1n) === 1n;
  const debugctl = r(G.DEBUGCTL);

  // 27.3.1.1 control registers, debug registers, MSRs
  let fixed0 = caps.cr0Fixed0;
  if (unrestricted) fixed0 &= ~0x80000001n; // PE and PG are not checked
  if ((~cr0 & fixed0) || (cr0 & ~caps.cr0Fixed1)) broken(`CR0 ${hex(cr0)} is not allowed in VMX operation`);
  if (pg && !pe) broken('CR0.PG is 1 and CR0.PE is 0');
  if ((~cr4 & caps.cr4Fixed0) || (cr4 & ~caps.cr4Fixed1)) broken(`CR4 ${hex(cr4)} is not allowed in VMX operation`);
  if (((cr4 >> 23n) & 1n) && !((cr0 >> 16n) & 1n)) broken('CR4.CET is 1 with CR0.WP 0');
  const debugctlOk = env.debugctlAllowed ?? 0xffc3n; // bits 0, 1, 6-15
  if (loadDebug && (debugctl & ~debugctlOk)) broken(`IA32_DEBUGCTL ${hex(debugctl)} sets reserved bits`);
  if (ia32e && !pg) broken('"IA-32e mode guest" with CR0.PG 0');
  if (ia32e && !((cr4 >> 5n) & 1n)) broken('"IA-32e mode guest" with CR4.PAE 0');
  if (!ia32e && ((cr4 >> 17n) & 1n)) broken('CR4.PCIDE is 1 outside IA-32e mode');
  if (cr3 >> maxPhys) broken(`CR3 ${hex(cr3)} sets bits beyond the physical-address width`);
  if (loadDebug && (r(G.DR7) >> 32n)) broken('DR7 bits 63:32 are not 0');
  if (!canon(r(G.SYSENTER_ESP))) broken('IA32_SYSENTER_ESP is not canonical');
  if (!canon(r(G.SYSENTER_EIP))) broken('IA32_SYSENTER_EIP is not canonical');
  if (bit(entry, 14)) {
    const pat = r(G.PAT);
    for (let i = 0n; i < 8n; i++) if (!PAT_OK.has(Number((pat >> (8n * i)) & 0xffn))) broken(`IA32_PAT byte ${i} is not a memory type`);
  }
  if (bit(entry, 15)) {
    const efer = r(G.EFER);
    if (efer & ~(env.eferAllowed ?? 0xd01n)) broken(`IA32_EFER ${hex(efer)} sets reserved bits`);
    const lma = ((efer >> 10n) & 1n) === 1n, lme = ((efer >> 8n) & 1n) === 1n;
    if (lma !== ia32e) broken('IA32_EFER.LMA differs from "IA-32e mode guest"');
    if (pg && lme !== ia32e) broken('IA32_EFER.LME differs from "IA-32e mode guest" with CR0.PG 1');
  }

  // 27.3.1.2 segment registers
  const seg = SEGMENTS.map((_, i) => segment(env, i));
  const [es, cs, ss, ds, fs, gs, ldtr, tr] = seg;
  const v86 = ((rflags >> 17n) & 1n) === 1n;
  const usable = (sg: Seg): boolean => !sg.unusable;
  const codeData = [es, cs, ss, ds, fs, gs];
  if (tr.selector & 4n) broken('TR selector TI is 1');
  if (usable(ldtr) && (ldtr.selector & 4n)) broken('LDTR selector TI is 1');
  if (!v86 && !unrestricted && (ss.selector & 3n) !== (cs.selector & 3n)) broken('SS.RPL differs from CS.RPL');
  if (v86) for (const sg of codeData) if (sg.base !== sg.selector << 4n) broken(`${sg.name} base is not selector * 16 (virtual-8086)`);
  for (const sg of [tr, fs, gs]) if (!canon(sg.base)) broken(`${sg.name} base is not canonical`);
  if (usable(ldtr) && !canon(ldtr.base)) broken('LDTR base is not canonical');
  if (cs.base >> 32n) broken('CS base bits 63:32 are not 0');
  for (const sg of [ss, ds, es]) if (usable(sg) && (sg.base >> 32n)) broken(`${sg.name} base bits 63:32 are not 0`);
  if (v86) {
    for (const sg of codeData) {
      if (sg.limit !== 0xffffn) broken(`${sg.name} limit is not FFFFH (virtual-8086)`);
      if (sg.ar !== 0xf3) broken(`${sg.name} access rights are not F3H (virtual-8086)`);
    }
  } else {
    // CS checks apply whatever its unusable bit says; the others' only when usable.
    const checked = codeData.filter((sg) => sg === cs || usable(sg));
    if (![9, 11, 13, 15].includes(cs.type) && !(unrestricted && cs.type === 3)) broken(`CS type ${cs.type}`);
    if (usable(ss) && ss.type !== 3 && ss.type !== 7) broken(`SS type ${ss.type}`);
    for (const sg of [ds, es, fs, gs]) {
      if (!usable(sg)) continue;
      if (!(sg.type & 1)) broken(`${sg.name} type ${sg.type} is not accessed`);
      if ((sg.type & 8) && !(sg.type & 2)) broken(`${sg.name} is an execute-only code segment`);
    }
    for (const sg of checked) if (!sg.s) broken(`${sg.name}.S is 0`);
    if (cs.type === 3 && cs.dpl !== 0) broken('CS type 3 with DPL not 0');
    if ((cs.type === 9 || cs.type === 11) && cs.dpl !== ss.dpl) broken('non-conforming CS.DPL differs from SS.DPL');
    if ((cs.type === 13 || cs.type === 15) && cs.dpl > ss.dpl) broken('conforming CS.DPL above SS.DPL');
    if (!unrestricted && BigInt(ss.dpl) !== (ss.selector & 3n)) broken('SS.DPL differs from SS.RPL');
    if ((cs.type === 3 || !pe) && ss.dpl !== 0) broken('SS.DPL is not 0 (CS type 3 or CR0.PE 0)');
    for (const sg of [ds, es, fs, gs]) {
      if (!unrestricted && usable(sg) && sg.type <= 11 && BigInt(sg.dpl) < (sg.selector & 3n)) broken(`${sg.name}.DPL below its RPL`);
    }
    for (const sg of checked) {
      if (!sg.p) broken(`${sg.name}.P is 0`);
      if (sg.ar & 0xf00) broken(`${sg.name} access-rights bits 11:8 are not 0`);
      if (granularityBroken(sg)) broken(`${sg.name}.G does not fit its limit`);
      if (sg.ar >>> 17) broken(`${sg.name} access-rights bits 31:17 are not 0`);
    }
    if (ia32e && cs.l && cs.db) broken('CS.L and CS.D/B both 1 in IA-32e mode');
  }
  if (ia32e ? tr.type !== 11 : tr.type !== 3 && tr.type !== 11) broken(`TR type ${tr.type}`);
  if (tr.s) broken('TR.S is 1');
  if (!tr.p) broken('TR.P is 0');
  if (tr.ar & 0xf00) broken('TR access-rights bits 11:8 are not 0');
  if (granularityBroken(tr)) broken('TR.G does not fit its limit');
  if (tr.unusable) broken('TR is unusable');
  if (tr.ar >>> 17) broken('TR access-rights bits 31:17 are not 0');
  if (usable(ldtr)) {
    if (ldtr.type !== 2) broken(`LDTR type ${ldtr.type}`);
    if (ldtr.s) broken('LDTR.S is 1');
    if (!ldtr.p) broken('LDTR.P is 0');
    if (ldtr.ar & 0xf00) broken('LDTR access-rights bits 11:8 are not 0');
    if (granularityBroken(ldtr)) broken('LDTR.G does not fit its limit');
    if (ldtr.ar >>> 17) broken('LDTR access-rights bits 31:17 are not 0');
  }

  // 27.3.1.3 GDTR, IDTR
  if (!canon(r(G.GDTR_BASE))) broken('GDTR base is not canonical');
  if (!canon(r(G.IDTR_BASE))) broken('IDTR base is not canonical');
  if (r(G.GDTR_LIMIT) >> 16n) broken('GDTR limit bits 31:16 are not 0');
  if (r(G.IDTR_LIMIT) >> 16n) broken('IDTR limit bits 31:16 are not 0');

  // 27.3.1.4 RIP, RFLAGS
  const rip = r(G.RIP);
  if (!ia32e || !cs.l) {
    if (rip >> 32n) broken(`RIP ${hex(rip)} bits 63:32 are not 0`);
  } else if (linear < 64) {
    const top = rip >> BigInt(linear);
    if (top !== 0n && top !== (1n << BigInt(64 - linear)) - 1n) broken(`RIP ${hex(rip)} bits 63:${linear} are not identical`);
  }
  if (rflags & ~0x3f7fd7n) broken(`RFLAGS ${hex(rflags)} sets reserved bits (63:22, 15, 5, 3)`);
  if (!(rflags & 2n)) broken('RFLAGS bit 1 is 0');
  if (v86 && (ia32e || !pe)) broken('RFLAGS.VM is 1 in IA-32e mode or with CR0.PE 0');
  const info = Number(r(F.ENTRY_INTR) & 0xffffffffn);
  const injecting = bit(info, 31);
  const itype = (info >>> 8) & 7, ivec = info & 0xff;
  const ifFlag = ((rflags >> 9n) & 1n) === 1n;
  if (injecting && itype === 0 && !ifFlag) broken('external-interrupt injection with RFLAGS.IF 0');

  // 27.3.1.5 non-register state
  const activity = Number(r(G.ACTIVITY) & 0xffffffffn);
  const supported = activity === 0 || (activity >= 1 && activity <= 3 && ((caps.misc >> BigInt(5 + activity)) & 1n) === 1n);
  if (!supported) broken(`activity state ${activity} is not supported (IA32_VMX_MISC bits 8:6)`);
  if (activity === 1 && ss.dpl !== 0) broken('HLT activity state with SS.DPL not 0');
  const intr = Number(r(G.INTERRUPTIBILITY) & 0xffffffffn);
  const sti = bit(intr, 0), movss = bit(intr, 1);
  if ((sti || movss) && activity !== 0) broken('blocking by STI or MOV SS outside the active state');
  if (injecting) {
    const allowed =
      activity === 0 ||
      (activity === 1 && (itype === 0 || itype === 2 || (itype === 3 && ERROR_CODE_VECTORS_HLT.has(ivec)) || (itype === 7 && ivec === 0))) ||
      (activity === 2 && (itype === 2 || (itype === 3 && ivec === 18)));
    if (!allowed) broken(`event type ${itype} vector ${ivec} cannot be injected in activity state ${activity}`);
  }
  if (intr >>> 5) broken('interruptibility-state bits 31:5 are not 0');
  if (bit(intr, 4) && (movss || !env.sgx)) broken('enclave interruption without SGX or with blocking by MOV SS');
  if (sti && movss) broken('blocking by both STI and MOV SS');
  if (sti && !ifFlag) broken('blocking by STI with RFLAGS.IF 0');
  if (injecting && itype === 0 && (sti || movss)) broken('external-interrupt injection with blocking by STI or MOV SS');
  if (injecting && itype === 2 && movss) broken('NMI injection with blocking by MOV SS');
  if (bit(intr, 2) && !env.inSmm) broken('blocking by SMI outside SMM');
  if (injecting && itype === 2 && sti) broken('NMI injection with blocking by STI', 3);
  if (injecting && itype === 2 && bit(pin, 5) && bit(intr, 3)) broken('NMI injection with "virtual NMIs" and blocking by NMI');
  const pdbg = r(G.PENDING_DBG);
  if (pdbg & ~0x1500fn) broken(`pending debug exceptions ${hex(pdbg)} set reserved bits (11:4, 13, 15, 63:17)`);
  if (sti || movss || activity === 1) {
    const tf = ((rflags >> 8n) & 1n) === 1n, btf = ((debugctl >> 1n) & 1n) === 1n, bs = ((pdbg >> 14n) & 1n) === 1n;
    if (tf && !btf && !bs) broken('pending BS is 0 with RFLAGS.TF 1 and IA32_DEBUGCTL.BTF 0');
    if ((!tf || btf) && bs) broken('pending BS is 1 with RFLAGS.TF 0 or IA32_DEBUGCTL.BTF 1');
  }
  if ((pdbg >> 16n) & 1n) {
    if ((pdbg & 0xefffn) || !((pdbg >> 12n) & 1n)) broken('pending RTM with bits 11:0, 15:13 not 0 or bit 12 not 1');
    if (!env.rtm) broken('pending RTM on a processor without RTM');
    if (movss) broken('pending RTM with blocking by MOV SS');
  }
  const link = r(G.LINK);
  if (link !== 0xffffffffffffffffn) {
    if (link & 0xfffn) broken('VMCS link pointer bits 11:0 are not 0', 4);
    else if (link >> maxPhys) broken('VMCS link pointer beyond the physical-address width', 4);
    else if (env.ramSize !== undefined && link + 4096n > env.ramSize) broken('VMCS link pointer outside the guest\'s RAM', 4);
    else {
      const first = env.readPhys32(Number(link)) >>> 0;
      if ((first & 0x7fffffff) !== caps.revision) broken('VMCS link pointer: wrong VMCS revision identifier', 4);
      if (((first >>> 31) === 1) !== bit(proc2, 14)) broken('VMCS link pointer: shadow-VMCS indicator differs from "VMCS shadowing"', 4);
      if (!env.inSmm && link === env.currentVmcs) broken('VMCS link pointer is the current-VMCS pointer', 4);
    }
  }

  // 27.3.1.6 PDPTEs of a guest that will use PAE paging (CR0.PG, CR4.PAE,
  // not IA-32e mode): with "enable EPT" 0 those CR3 references in memory,
  // with "enable EPT" 1 the four PDPTE fields of the guest-state area; the
  // checks of MOV to CR3 (Vol. 3A 4.4.1: a present PDPTE must have bits 2:1,
  // 8:5 and 63:MAXPHYADDR clear). A failure has exit qualification 2 (27.8:
  // "a problem loading the PDPTEs (see Section 27.3.1.6)").
  if (pg && ((cr4 >> 5n) & 1n) && !ia32e) {
    const reserved = 0x1e6n | (0xffffffffffffffffn >> maxPhys << maxPhys);
    const bad = (e: bigint): boolean => (e & 1n) === 1n && (e & reserved) !== 0n;
    if (bit(proc2, 1)) {
      for (let i = 0; i < 4; i++) {
        const e = r(G.PDPTE0 + 2 * i);
        if (bad(e)) broken(`PDPTE${i} field ${hex(e)} is present with reserved bits set`, 2);
      }
    } else {
      const table = cr3 & 0xffffffe0n;
      if (env.ramSize !== undefined && table + 32n > env.ramSize) broken('PDPTE table outside the guest\'s RAM', 2);
      else if (env.readPhys64) {
        for (let i = 0; i < 4; i++) {
          const e = env.readPhys64(Number(table) + 8 * i);
          if (bad(e)) broken(`PDPTE${i} ${hex(e)} is present with reserved bits set`, 2);
        }
      }
    }
  }
  return out;
}
