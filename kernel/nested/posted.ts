// Posted-interrupt processing for L2 (SDM Vol. 3C 29.6), emulated: the
// processor may lack it (Bochs 2.7 does), and L1's notification is L1's
// interrupt, which only L0 sees. When L1's local APIC has the notification
// vector of vmcs12 for L1's processor while L2 runs with "process posted
// interrupts" (l2irq.ts), L0 does what the processor would instead of an
// external-interrupt exit to L1:
//   1. the interrupt is acknowledged at L1's APIC (the vector is the
//      notification vector);
//   2. the outstanding-notification bit (ON, descriptor bit 256) is cleared;
//   3. 0 is written to the EOI register of L1's APIC (the notification is
//      dismissed);
//   4. the PIR (descriptor bits 255:0) is ORed into VIRR (the IRR of
//      vmcs12's virtual-APIC page) and cleared, each quadword read and
//      cleared atomically (other vCPUs of L1 may be posting);
//   5. RVI becomes the highest PIR vector if that is above it;
//   6. pending virtual interrupts are evaluated: the VM entry that follows
//      does it (29.2.1), with vmcs02's RVI.
// The entry checks made sure the descriptor and the virtual-APIC page are
// L1 RAM (ctls.posted.descriptor-ram, ctls.virtual-apic.ram).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";
import * as state from "./state";
import { Vcpu } from "../vm/vcpu";

const ON: u64 = 1; // bit 256 of the descriptor: bit 0 of its quadword 4
const VIRR: u64 = 0x200; // 29.1.1: IRR at 200H of the virtual-APIC page, 32 bits every 10H

export function process(vcpu: Vcpu, vector: u32): void {
  const n = vcpu.nested;
  vcpu.apic.acknowledge(vector);
  const desc = state.get(n, V.POSTED_INTERRUPT_DESCRIPTOR_ADDRESS);
  const control = guestmem.read64(desc + 32);
  guestmem.write64(desc + 32, control & ~ON);
  vcpu.apic.writeEoi();
  const vapic = state.get(n, V.VIRTUAL_APIC_ADDRESS);
  let highest: i32 = -1;
  for (let q: u32 = 0; q < 4; q++) {
    const pir = guestmem.swap64(desc + <u64>q * 8, 0);
    if (pir == 0) continue;
    for (let half: u32 = 0; half < 2; half++) {
      const bits = <u32>(pir >> (<u64>half * 32));
      if (bits == 0) continue;
      const reg = vapic + VIRR + <u64>(q * 2 + half) * 0x10;
      guestmem.write32(reg, guestmem.read32(reg) | bits);
      highest = <i32>(q * 64 + half * 32 + 31 - clz(bits));
    }
  }
  if (highest < 0) return;
  const status = <u32>vmx.vmread(V.GUEST_INTERRUPT_STATUS);
  if (<u32>highest > (status & 0xff)) vmx.vmwrite(V.GUEST_INTERRUPT_STATUS, (status & 0xff00) | <u32>highest);
}
