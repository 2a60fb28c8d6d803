// MMIO emulation for the devices a guest reaches through memory: the
// pages that are absent from its EPT and belong to a device model. Each
// access is an EPT violation (29.3.3.2); the MOV at RIP is decoded
// (decode.ts) and performed on the device the page belongs to (deviceAt):
//
//   FEE00000H  the vCPU's local APIC (apic/lapic.ts; nothing in x2APIC mode)
//   FEC00000H  the VM's I/O APIC (devices/ioapic.ts)
//
// A new memory-mapped device is a new DEVICE_* with its page here and its
// read/write in perform().
//
// L2 reaches the same devices: an L2 access that lands on L1-physical
// device page (through L1's EPT, or directly when vmcs12 does not enable
// EPT) is L1's own device access, performed here with L2's registers and RIP
// (vmcs02 is current) and L2's instruction bytes, fetched through L2's
// paging and `stage2` (L1's EPT; paging.ts). Its side effects (EOI, timer,
// IPIs, I/O APIC messages) are L1's, as on a processor whose L1 maps the
// page into L2's EPT.
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
import * as intbus from "./intbus";
import * as irq from "./irq";
import * as apicv from "./apicv";
import * as lapic from "../apic/lapic";
import * as ioapic from "../devices/ioapic";
import { Vcpu } from "./vcpu";

export const APIC_PAGE: u64 = lapic.BASE_ADDRESS;

export const NOT_A_DEVICE: i32 = -1;
export const DEVICE_APIC: i32 = 0;
export const DEVICE_IOAPIC: i32 = 1;

// The device whose page holds guest-physical gpa, or NOT_A_DEVICE.
export function deviceAt(gpa: u64): i32 {
  const page = gpa & ~<u64>0xfff;
  if (page == APIC_PAGE) return DEVICE_APIC;
  if (page == ioapic.BASE_ADDRESS) return DEVICE_IOAPIC;
  return NOT_A_DEVICE;
}

export function isApic(gpa: u64): bool {
  return deviceAt(gpa) == DEVICE_APIC;
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

// Emulate the access at gpa (inside device's page; L1-physical for L2).
// False when the instruction cannot be decoded; the caller stops the VM.
export function emulate(vcpu: Vcpu, device: i32, gpa: u64, stage2: paging.Stage2 = paging.direct): bool {
  const d = vcpu.decoded;
  if (!decode.decode(vcpu, d, stage2)) {
    print.str(device == DEVICE_APIC ? "hv: guest: cannot decode the instruction accessing the local APIC at " :
      "hv: guest: cannot decode the instruction accessing the I/O APIC at ");
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
  if (device == DEVICE_APIC) {
    // The APIC's registers are 32 bits wide on 16-byte boundaries (SDM Vol.
    // 3A 11.4.1); other accesses are undefined: reads give 0, writes are
    // dropped.
    const aligned = (off & 3) == 0 && d.size == 4;
    if (d.isWrite) {
      if (aligned) {
        vcpu.apic.pageWrite(off, <u32>regValue(vcpu, d), cpu.rdtsc());
      }
    } else {
      setRegValue(vcpu, d, aligned ? <u64>vcpu.apic.pageRead(off, cpu.rdtsc()) : 0);
    }
  } else {
    const io = vcpu.vm.ioapic;
    if (d.isWrite) {
      io.write(off, d.size, <u32>regValue(vcpu, d));
      // A write of IOWIN may have changed a redirection entry: the EOI-exit
      // bitmaps of APIC virtualization follow (apicv.ts). IOREGSEL and EOI
      // writes change none.
      if ((off & ~3) == ioapic.IOWIN) apicv.scan(vcpu.vm);
      intbus.route(vcpu.vm);
    } else {
      setRegValue(vcpu, d, <u64>io.read(off, d.size));
    }
  }
  // An EPT violation reports no instruction length (28.2.5): the decoded one.
  events.completeInstruction(<u64>d.length);
  return true;
}

// A guest access to guest-physical gpa outside its RAM, reported by an EPT
// violation (L1's own, L2's without EPT in vmcs12, or L2's that L1's EPT
// sends to L1-physical gpa; stage2 as for emulate): a device's access
// handled here (RESUME, or STOP when its instruction cannot be decoded), or
// NOT_A_DEVICE for the caller to report. A device access made while
// delivering an event (IDT-vectoring information valid: the IDT, a stack or
// a TSS in a device page) is not an instruction to emulate: NOT_A_DEVICE.
export function access(vcpu: Vcpu, gpa: u64, stage2: paging.Stage2 = paging.direct): i32 {
  const device = deviceAt(gpa);
  if (device == NOT_A_DEVICE) return NOT_A_DEVICE;
  if ((<u32>vmx.vmread(V.IDT_VECTORING_INFO) & V.INTR_INFO_VALID) != 0) return NOT_A_DEVICE;
  if (!emulate(vcpu, device, gpa, stage2)) return stop(vcpu, config.OUTCOME_STOPPED);
  // What an APIC write sent on: a level EOI, a self-NMI (nothing after a
  // read); after the instruction, which is done.
  return device == DEVICE_APIC ? irq.apicWritten(vcpu) : RESUME;
}
