// MMIO emulation for the devices a guest reaches through memory: its local
// APIC page at 0xFEE00000. The page is absent from the guest's EPT, so each
// access is an EPT violation (29.3.3.2); the MOV at RIP is decoded
// (decode.ts) and performed on the vCPU's software local APIC (apic/lapic.ts).
//
// L2 reaches the same devices: an L2 access that lands on L1-physical
// FEE00000H (through L1's EPT, or directly when vmcs12 does not enable
// EPT) is L1's own APIC access, performed here with L2's registers and RIP
// (vmcs02 is current) and L2's instruction bytes, fetched through L2's
// paging and `stage2` (L1's EPT; paging.ts). Its side effects (EOI, timer,
// IPIs) are L1's APIC's, as on a processor whose L1 maps its APIC page
// into L2's EPT.
import * as cpu from "../hw/cpu";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as print from "../lib/print";
import * as decode from "./decode";
import * as events from "./events";
import * as paging from "./paging";
import * as config from "./config";
import { RESUME, stop } from "./exits";
import * as R from "./vcpu";
import { Vcpu } from "./vcpu";

export const APIC_PAGE: u64 = 0xfee00000;

export function isApic(gpa: u64): bool {
  return (gpa & ~<u64>0xfff) == APIC_PAGE;
}

function regValue(vcpu: Vcpu, d: decode.Decoded): u64 {
  if (d.hasImm) return d.imm;
  if (d.highByte) return (vcpu.reg(<u32>d.reg - 4) >> 8) & 0xff;
  return vcpu.gpr(<u32>d.reg);
}

function setRegValue(vcpu: Vcpu, d: decode.Decoded, v: u64): void {
  const r = <u32>d.reg;
  if (d.highByte) {
    const q = vcpu.reg(r - 4);
    vcpu.setReg(r - 4, (q & ~<u64>0xff00) | ((v & 0xff) << 8));
    return;
  }
  const old = vcpu.gpr(r);
  let nv: u64;
  // A 32-bit destination zero-extends into the 64-bit register; 8- and
  // 16-bit ones keep the rest (SDM Vol. 1 3.4.1.1).
  if (d.size == 8) nv = v;
  else if (d.size == 4) nv = v & 0xffffffff;
  else if (d.size == 2) nv = (old & ~<u64>0xffff) | (v & 0xffff);
  else nv = (old & ~<u64>0xff) | (v & 0xff);
  vcpu.setGpr(r, nv);
}

// Emulate the access at gpa (inside the APIC page; L1-physical for L2).
// False when the instruction cannot be decoded; the caller stops the VM.
export function emulateApic(vcpu: Vcpu, gpa: u64, stage2: paging.Stage2 = paging.direct): bool {
  const d = vcpu.decoded;
  if (!decode.decode(vcpu, d, stage2)) {
    print.str("hv: guest: cannot decode the instruction accessing the local APIC at ");
    print.hex(gpa);
    print.str(": rip ");
    print.hex(vmx.vmread(V.GUEST_RIP));
    print.str(", bytes");
    for (let k: u32 = 0; k < d.fetched; k++) {
      print.str(" ");
      print.hexw(<u64>d.byte(k), 2);
    }
    print.nl();
    return false;
  }
  const off = <u32>(gpa & 0xfff);
  // The APIC's registers are 32 bits wide on 16-byte boundaries (SDM Vol.
  // 3A 11.4.1); other accesses are undefined: reads give 0, writes are
  // dropped.
  const aligned = (off & 3) == 0 && d.size == 4;
  if (d.isWrite) {
    if (aligned) vcpu.apic.write(off, <u32>regValue(vcpu, d), cpu.rdtsc());
  } else {
    setRegValue(vcpu, d, aligned ? <u64>vcpu.apic.read(off, cpu.rdtsc()) : 0);
  }
  // An EPT violation reports no instruction length (28.2.5): the decoded one.
  events.completeInstruction(<u64>d.length);
  return true;
}

// A guest access to guest-physical gpa outside its RAM, reported by an EPT
// violation (L1's own, L2's without EPT in vmcs12, or L2's that L1's EPT
// sends to L1-physical gpa; stage2 as for emulateApic): a device's access
// handled here (RESUME, or STOP when its instruction cannot be decoded), or
// NOT_A_DEVICE for the caller to report. An APIC access made while
// delivering an event (IDT-vectoring information valid: the IDT, a stack or
// a TSS in the APIC page) is not an instruction to emulate: NOT_A_DEVICE.
export const NOT_A_DEVICE: i32 = -1;
export function access(vcpu: Vcpu, gpa: u64, stage2: paging.Stage2 = paging.direct): i32 {
  const vectoring = (<u32>vmx.vmread(V.IDT_VECTORING_INFO) & V.INTR_INFO_VALID) != 0;
  if (!isApic(gpa) || vectoring) return NOT_A_DEVICE;
  return emulateApic(vcpu, gpa, stage2) ? RESUME : stop(vcpu, config.OUTCOME_STOPPED);
}
