// VMCALL exits (reason 18): the hypercall interface of docs/guest-interface.md.
// RAX = function; arguments RBX, RCX; result in RAX.
import * as cpu from "../../hw/cpu";
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as print from "../../lib/print";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import * as guestmem from "../guestmem";
import * as events from "../events";
import { RESUME, stopWithCode } from "../exits";
import * as snap from "../../snapshot/hypercall";
import * as cpuidExit from "./cpuid";
import * as ramsnap from "../../snapshot/testcall";

export const HC_PRINT: u64 = 0;
export const HC_EXIT: u64 = 1;
export const HC_QUERY: u64 = 2;
// Snapshots (docs/guest-interface.md "Snapshots"; snapshot/hypercall.ts):
// interface version 2.
export const HC_SNAPSHOT: u64 = 3;
export const HC_RESTORE: u64 = 4;

export const HC_OK: u64 = snap.HC_OK;
export const HC_BAD_ARGUMENT: u64 = snap.HC_BAD_ARGUMENT;
export const HC_UNKNOWN: u64 = snap.HC_UNKNOWN;
export const HC_RESTORED: u64 = snap.HC_RESTORED; // HC_SNAPSHOT returning at the snapshot point after a restore
export const HC_NO_SNAPSHOT: u64 = snap.HC_NO_SNAPSHOT; // HC_RESTORE without a snapshot

export const PRINT_MAX: u64 = 256;
const text: usize = memory.data(<i32>PRINT_MAX); // machine-wide: the text being printed (scratch)

function query(vcpu: Vcpu, what: u64): u64 {
  if (what == 0) return cpuidExit.HV_INTERFACE_VERSION; // as CPUID 40000001H:EAX
  if (what == 1) return vcpu.exits;
  if (what == 2) return vcpu.vm.ramBytes;
  if (what == 3) return cpu.rdtsc() + vmx.vmread(V.TSC_OFFSET); // the guest's TSC, read by the hypervisor

  return u64.MAX_VALUE;
}

export function handle(vcpu: Vcpu, reason: u32): i32 {
  // VMCALL at CPL > 0 is refused with #UD: the interface is for the guest
  // kernel only.
  if (events.guestCpl() != 0) {
    events.injectUD();
    return RESUME;
  }
  const fn = vcpu.reg(R.RAX);
  const a = vcpu.reg(R.RBX);
  const b = vcpu.reg(R.RCX);
  let result = HC_OK;
  if (fn == HC_PRINT) {
    if (b > PRINT_MAX || !guestmem.isRam(a, b)) {
      result = HC_BAD_ARGUMENT;
    } else {
      guestmem.copyOut(text, a, <u32>b);
      print.levelPrefix();
      print.bytes(text, <i32>b);
      print.nl();
    }
  } else if (fn == HC_EXIT) {
    events.skipInstruction();
    return stopWithCode(vcpu, <u32>a);
  } else if (fn == HC_QUERY) {
    const v = query(vcpu, a);
    result = v == u64.MAX_VALUE ? HC_BAD_ARGUMENT : v;
  } else if (fn == HC_SNAPSHOT) {
    return snap.take(vcpu, a);
  } else if (fn == HC_RESTORE) {
    return snap.restoreVm(vcpu, a);
  } else if (fn == ramsnap.HC_RAM_SNAPSHOT) {
    // A test hypercall (ramsnap= guests): RBX = pages copied or counted.
    const n = ramsnap.call(vcpu, a);
    if (n >= 0) vcpu.setReg(R.RBX, <u64>n);
    result = n >= 0 ? HC_OK : n == -1 ? HC_UNKNOWN : HC_BAD_ARGUMENT;
  } else {
    result = HC_UNKNOWN;
  }
  vcpu.setReg(R.RAX, result);
  events.skipInstruction();
  return RESUME;
}
