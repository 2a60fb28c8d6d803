// I/O instruction exits (reason 30; SDM Vol. 3C 26.1.3, qualification in
// 28.2.1 Table 28-5). Every port exits (the I/O bitmaps are all ones) and is
// emulated or denied by kernel/devices/ports.ts; no guest reaches a real port.
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as ports from "../../devices/ports";
import * as print from "../../lib/print";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import * as events from "../events";
import * as config from "../config";
import { RESUME, STOP, stop, stopWithCode } from "../exits";

export function handle(vcpu: Vcpu, reason: u32): i32 {
  const q = <u32>vmx.vmread(V.EXIT_QUALIFICATION);
  const size = (q & 7) + 1;
  const port = q >> 16;
  if ((q & (1 << 4)) != 0) {
    // INS/OUTS need the guest's linear-to-physical translation: not yet.
    print.str("hv: guest: string I/O (");
    print.str((q & (1 << 3)) != 0 ? "INS" : "OUTS");
    print.str(") to port ");
    print.hex(port);
    print.str(" is not supported");
    print.nl();
    return stop(vcpu, config.OUTCOME_STOPPED);
  }
  if ((q & (1 << 3)) != 0) {
    const v = ports.ioIn(vcpu.vm, port, size);
    const rax = vcpu.reg(R.RAX);
    // IN writes AL, AX or EAX; a 32-bit write zero-extends into RAX.
    if (size == 4) vcpu.setReg(R.RAX, <u64>v);
    else {
      const mask: u64 = size == 1 ? 0xff : 0xffff;
      vcpu.setReg(R.RAX, (rax & ~mask) | (<u64>v & mask));
    }
  } else {
    const mask: u64 = size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffff;
    if (ports.ioOut(vcpu.vm, port, size, <u32>(vcpu.reg(R.RAX) & mask))) {
      events.skipInstruction();
      return stopWithCode(vcpu, vcpu.vm.ports.exitCode);
    }
  }
  events.skipInstruction();
  return RESUME;
}
