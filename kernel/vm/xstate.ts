// The vCPU's extended processor state: XCR0 and the XSAVE-managed state
// components (SDM Vol. 1 ch. 13: x87, SSE, AVX, AVX-512 opmask/ZMM, PKRU, ...).
//
// VM entry and VM exit switch none of it (SDM Vol. 3C 26.3, 27.5: the VMCS
// has no field for XCR0, the vector registers or PKRU), so on one processor
// it simply stays in the registers while the hypervisor runs, as it stays
// there across L1/L2 switches on a processor. The hypervisor's compiled code
// touches only what legacy SSE code touches — the x87 and SSE components
// (XMM0-15 bits 127:0, MXCSR) — and the entry stub (boot/entry/vmenter.S)
// keeps those in the register block with FXSAVE/FXRSTOR on every exit and
// entry. Legacy SSE instructions leave bits 255:128 and above of the vector
// registers unchanged (SDM Vol. 1 14.1.4 / 15.5), and nothing in the
// hypervisor depends on XCR0 (no VEX/EVEX code, no XSAVE outside this file),
// so the guest's XCR0 stays loaded while the hypervisor runs: an exit costs
// no XSETBV and no XSAVE of the upper components.
//
// The rest moves with XSAVE/XRSTOR only when the vCPU leaves the processor
// (migrate.ts) and is initialised when a guest starts, through the per-vCPU
// XSAVE area below (standard format, 64-byte aligned, SDM Vol. 1 13.4).
import * as cpu from "../hw/cpu";
import * as V from "../arch/vmx";
import { Vcpu } from "./vcpu";

// XCR0 components a guest may enable: every user state component the
// processor supports (CPUID.(EAX=0DH,ECX=0):EDX:EAX); 0 without XSAVE
// (CR4.OSXSAVE clear in the hypervisor: XSETBV is then #UD for guests too).
export let offered: u64 = 0; // machine-wide: the processor's XSAVE support (learn())
let size: u32 = 0; // machine-wide: the XSAVE area's size for every supported component

const regs: usize = memory.data(16, 16); // machine-wide: CPUID's output (scratch)

// Component i's size in bytes (bits 30:0) and its "64-byte aligned in the
// compacted format" flag (bit 31), for the offered components (0 for others).
const compBytes: usize = memory.data(64 * 4, 4); // machine-wide: the processor's XSAVE layout

// Learn what the processor offers (it does not change; vmx/caps.ts asks
// first, for CR4.PKE).
export function learn(): void {
  if ((cpu.readcr(4) & V.X86_CR4_OSXSAVE) == 0) {
    offered = 0;
    return;
  }
  cpu.cpuid(0xd, 0, regs);
  offered = (<u64>load<u32>(regs, 12) << 32) | <u64>load<u32>(regs);
  // Each user component i >= 2 is placed by CPUID.(EAX=0DH,ECX=i): EAX its
  // size, EBX its offset in the standard format (SDM Vol. 1 13.2). A
  // component the processor supports but describes with size 0 (Bochs 2.7's
  // PKRU, leaf 0DH sub-leaf 9 all zero) cannot be laid out by a guest: Linux
  // warns "misordered xstate" and sizes its buffers wrong. It is not offered
  // (and CR4.PKE is withheld with PKRU: vmx/caps.ts). The area ends where the
  // last offered component ends.
  size = 576; // legacy area + header
  for (let i: u32 = 2; i < 64; i++) {
    store<u32>(compBytes + (i << 2), 0);
    if (((offered >> <u64>i) & 1) == 0) continue;
    cpu.cpuid(0xd, i, regs);
    const bytes = load<u32>(regs);
    if (bytes == 0) {
      offered &= ~(<u64>1 << <u64>i);
      continue;
    }
    // ECX bit 1: in the compacted format the component starts 64-byte aligned.
    store<u32>(compBytes + (i << 2), bytes | ((load<u32>(regs, 8) & 2) << 30));
    const end = load<u32>(regs, 4) + bytes;
    if (end > size) size = end;
  }
}

// CPUID.(EAX=0DH,ECX=1):EBX as the guest must see it: the size of an area in
// the compacted format (XSAVEC, SDM Vol. 1 13.4.3) holding the components of
// the guest's XCR0 (IA32_XSS is not offered, so nothing else). A processor
// computes it for its own XCR0 | IA32_XSS; Bochs 2.7 reports the standard
// format's size there, which Linux (compacted format with XSAVEC) rejects.
export function compactedBytes(xcr0: u64): u32 {
  let n: u32 = 576;
  for (let i: u32 = 2; i < 64; i++) {
    if (((xcr0 >> <u64>i) & 1) == 0) continue;
    const c = load<u32>(compBytes + (i << 2));
    if ((c & 0x80000000) != 0) n = (n + 63) & ~63;
    n += c & 0x7fffffff;
  }
  return n;
}

// The XSAVE area's size for every offered component (CPUID.(EAX=0DH,ECX=0)
// ECX as guests see it; 0 before the first guest's set-up): the XSTATE
// section of a snapshot holds one (kernel/snapshot/).
export function areaBytes(): u32 {
  return size;
}

// Components that travel through the XSAVE area: all but x87 (bit 0) and
// SSE (bit 1), which the entry stub keeps in the register block.
function moved(): u64 {
  return offered & ~(<u64>3);
}

// A vCPU's extended state (vcpu.xstate).
@unmanaged export class XState {
  // The guest's XCR0 (its XSETBV exits record it); what the processor has
  // whenever this vCPU's state is loaded on it.
  xcr0: u64 = 1;
  // The XSAVE area (CPUID.(EAX=0DH,ECX=0):ECX bytes, 64-byte aligned),
  // allocated once per vCPU object, at its first reset with XSAVE.
  area: usize = 0;
  areaSize: u32 = 0;

  // The state a processor has after RESET (SDM Vol. 1 13.6: XCR0 = 1;
  // every component in its initial configuration, PKRU = 0), in the
  // object; restore() puts it on the processor.
  reset(): void {
    learn();
    this.xcr0 = 1;
    if (offered == 0) return;
    if (this.area == 0 || this.areaSize < size) {
      this.areaSize = size;
      this.area = (heap.alloc(<usize>size + 64) + 63) & ~(<usize>63);
    }
    this.initial();
  }

  // An area whose header (bytes 512-575) is zero holds every component in
  // its initial configuration: XRSTOR initialises what XSTATE_BV lacks
  // (13.8.1). MXCSR (byte 24) is loaded whenever AVX is restored: 1F80H.
  initial(): void {
    memory.fill(this.area, 0, this.areaSize);
    store<u32>(this.area + 24, 0x1f80);
  }
}

// The guest's XSETBV passed the SDM's checks (exit/misc.ts): it takes
// effect on the processor, and stays there while the hypervisor runs.
export function setXcr0(vcpu: Vcpu, v: u64): void {
  vcpu.xstate.xcr0 = v;
  cpu.xsetbv(0, v);
}

// Before the vCPU leaves this processor: its components (but x87/SSE) into
// the area. XCR0 is widened to every offered component for the XSAVE, so
// that state the guest keeps with the component disabled in XCR0 (PKRU is
// used with CR4.PKE whatever XCR0[9] says) moves too.
export function save(vcpu: Vcpu): void {
  if (offered == 0) return;
  const x = vcpu.xstate;
  cpu.xsetbv(0, offered);
  cpu.xsave(x.area, x.areaSize, moved());
}

// On the processor it arrives at (or starts on): the components back, then
// the guest's XCR0.
export function restore(vcpu: Vcpu): void {
  if (offered == 0) return;
  loadState(vcpu.xstate, moved());
  cpu.xsetbv(0, vcpu.xstate.xcr0);
}

function loadState(x: XState, mask: u64): void {
  if (mask == 0) return;
  cpu.xsetbv(0, offered);
  cpu.xrstor(x.area, x.areaSize, mask);
}

// After the guest ends: its state must not reach the next guest, nor its
// XCR0 (the hypervisor's own is x87 + SSE where XSAVE knows SSE).
export function scrub(vcpu: Vcpu): void {
  if (offered == 0) return;
  const x = vcpu.xstate;
  x.initial();
  loadState(x, moved());
  cpu.xsetbv(0, offered & 3);
}
