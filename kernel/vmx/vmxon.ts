// Entering VMX root operation on this processor (SDM Vol. 3C 24.7 "Enabling
// and entering VMX operation", 24.8 "Restrictions on VMX operation", and the
// VMXON pseudocode in ch. 31).
import * as cpu from "../hw/cpu";
import * as mem from "../hw/mem";
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as ident from "../cpu/ident";
import * as pages from "../mm/pages";
import * as caps from "./caps";
import * as vmfail from "./vmfail";
import * as evmcs from "./evmcs";
import * as cmdline from "../boot/cmdline";
import * as V from "../arch/vmx";
import { STATUS_OK, STATUS_NO_VTX, STATUS_VMX_LOCKED, STATUS_VMX_SETUP, STATUS_BOOT } from "../lib/status";

const FC_LOCK: u64 = 1 << 0;
const FC_VMX_OUTSIDE_SMX: u64 = 1 << 2;
const CR4_VMXE: u64 = 1 << 13;
const FOUR_GIB: u64 = 0x100000000;

// One VMXON region per processor (24.11.5: each logical processor needs
// its own), indexed by cpu.index().
export const MAX_CPUS: i32 = 64;
export const vmxonRegions = new StaticArray<u64>(MAX_CPUS); // machine-wide: one VMXON region per processor
let capsRead = false; // machine-wide: capability MSRs, read once

// Bring CR0 or CR4 to a value VMX operation allows: set what FIXED0 requires
// and check nothing FIXED1 forbids is set. A forbidden bit that is set is not
// cleared behind the back of the code that set it: that is reported instead.
function applyFixed(n: u32, extra: u64, fixed0: u64, fixed1: u64): bool {
  const cur = cpu.readcr(n);
  const impossible = fixed0 & ~fixed1;
  if (impossible != 0) {
    print.str("hv: vmx: CR");
    print.dec(n);
    print.str(" fixed bits are contradictory: FIXED0 ");
    print.hex(fixed0);
    print.str(" requires bits FIXED1 ");
    print.hex(fixed1);
    print.str(" forbids (");
    print.hex(impossible);
    print.str(")");
    print.nl();
    return false;
  }
  const want = cur | fixed0 | extra;
  const forbidden = want & ~fixed1;
  if (forbidden != 0) {
    print.str("hv: vmx: CR");
    print.dec(n);
    print.str(" = ");
    print.hex(cur);
    print.str(" has bits set that VMX operation forbids (IA32_VMX_CR");
    print.dec(n);
    print.str("_FIXED1 ");
    print.hex(fixed1);
    print.str(", offending ");
    print.hex(forbidden);
    print.str(")");
    print.nl();
    return false;
  }
  if (want != cur) cpu.writecr(n, want);
  return true;
}

// Check and enable VMX, then execute VMXON. Returns a status (lib/status.ts).
export function enable(): u32 {
  if (<i32>cpu.index() >= MAX_CPUS) {
    print.say("vmx: more processors than the hypervisor supports");
    return STATUS_VMX_SETUP;
  }
  // 24.6: VMX is present iff CPUID.1:ECX.VMX[bit 5] = 1.
  if ((ident.leaf1Ecx & ident.CPUID1_ECX_VMX) == 0) {
    print.say("no VT-x: CPUID.1:ECX.VMX[bit 5] is 0, this processor (or emulator) does not offer VMX");
    print.say("no VT-x: on QEMU use -enable-kvm -cpu host on an Intel host with nested VMX enabled; on Bochs use cpu: model=tigerlake");
    return STATUS_NO_VTX;
  }

  // 24.7: VMXON is #GP unless IA32_FEATURE_CONTROL is locked with VMX
  // enabled outside SMX. Firmware may leave it unlocked (OVMF does): then
  // we set and lock it. Locked with VMX off can only be changed in firmware.
  const fc = cpu.rdmsr(V.MSR_IA32_FEATURE_CONTROL);
  if ((fc & FC_LOCK) != 0) {
    if ((fc & FC_VMX_OUTSIDE_SMX) == 0) {
      print.str("hv: VMX disabled by firmware: IA32_FEATURE_CONTROL = ");
      print.hex(fc);
      print.str(" is locked with 'VMX outside SMX' (bit 2) clear; enable Intel Virtualization Technology in the firmware setup");
      print.nl();
      return STATUS_VMX_LOCKED;
    }
    print.str("hv: vmx: IA32_FEATURE_CONTROL ");
    print.hex(fc);
    print.str(" locked by firmware with VMX enabled");
    print.nl();
  } else {
    const v = fc | FC_LOCK | FC_VMX_OUTSIDE_SMX;
    cpu.wrmsr(V.MSR_IA32_FEATURE_CONTROL, v);
    print.str("hv: vmx: IA32_FEATURE_CONTROL was unlocked (");
    print.hex(fc);
    print.str("), set to ");
    print.hex(v);
    print.str(" and locked");
    print.nl();
  }

  // The capability MSRs describe every processor alike; read and show them once.
  if (!capsRead) {
    caps.read();
    // With an enlightened VMCS (kernel/vmx/evmcs.ts) the kernel uses fewer
    // controls: chosen before the summary, which shows what is used.
    evmcs.choose();
    if (cmdline.showCaps) caps.report();
    capsRead = true;
  }

  // 24.8: CR0 and CR4 must satisfy the FIXED MSRs; CR4.VMXE enables VMXON.
  const vmxeBefore = (cpu.readcr(4) & CR4_VMXE) != 0;
  if (!applyFixed(0, 0, caps.cr0Fixed0, caps.cr0Fixed1)) return STATUS_VMX_SETUP;
  if (!applyFixed(4, CR4_VMXE, caps.cr4Fixed0, caps.cr4Fixed1)) return STATUS_VMX_SETUP;

  // 24.11.5: the VMXON region is page aligned, of the size VMX_BASIC gives,
  // and starts with the VMCS revision identifier (bit 31 clear).
  const size = caps.regionSize();
  if (size == 0 || size > 4096) {
    print.str("hv: vmx: unsupported VMXON region size ");
    print.dec(size);
    print.nl();
    return STATUS_VMX_SETUP;
  }
  const region = pages.alloc(1, caps.physAddr32() ? FOUR_GIB : 0);
  if (region == 0) {
    print.say("out of memory for the VMXON region");
    return STATUS_BOOT;
  }
  mem.write32(region, caps.revisionId());

  const r = vmx.vmxon(region);
  if (r != vmx.VMX_SUCCEED) {
    print.str("hv: vmx: VMXON failed: ");
    vmfail.describe(r);
    print.nl();
    // Undo only what we did: if VMXE was already set, something else (a
    // previous VMM, firmware) may be in VMX operation, where clearing it #GPs.
    if (!vmxeBefore) cpu.writecr(4, cpu.readcr(4) & ~CR4_VMXE);
    pages.free(region, 1);
    return STATUS_VMX_SETUP;
  }
  vmxonRegions[<i32>cpu.index()] = region;
  if (!evmcs.startHere()) return STATUS_VMX_SETUP;
  print.str("hv: vmxon ok: cpu ");
  print.dec(cpu.index());
  print.str(", revision ");
  print.hex(caps.revisionId());
  print.str(", region ");
  print.hex(region);
  print.str(", tsc=");
  print.dec(cpu.rdtsc());
  print.nl();
  return STATUS_OK;
}
