// VMLAUNCH and VMRESUME by L1 (SDM Vol. 3C 31.3 VMLAUNCH/VMRESUME, 27 "VM
// Entries"): the instruction's own checks, the VM-entry checks on vmcs12
// (entry-checks.ts), then the switch to vmcs02 (vmcs02.ts) so that the next
// VM entry runs L2. A failed check is answered as the processor would:
// VMfailInvalid, VMfailValid(4, 5, 7, 8, 26), or a failed VM entry to L1
// (exit reason 33 | bit 31 with its qualification).
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as events from "../vm/events";
import * as exits from "../vm/exits";
import * as config from "../vm/config";
import * as state from "./state";
import * as common from "./common";
import * as vmfail from "./vmfail";
import * as entry from "./entry-checks";
import * as vmcs02 from "./vmcs02";
import * as reflect from "./reflect";
import * as msrlists from "./msrlists";
import * as l2irq from "./l2irq";
import * as shadow from "./shadow";
import * as vpid from "./vpid";
import * as ptimer from "./ptimer";
import * as l2halt from "./l2halt";
import * as tsc from "../vm/tsc";
import * as nesting from "../vm/nesting";

export let launches: u64 = 0; // nested VM entries into L2
export function resetCounts(): void {
  launches = 0;
}

function logFailed(what: string): void {
  print.str("hv: nested: ");
  print.str(what);
  print.str(" failed check ");
  print.str(entry.failedCheck);
  print.nl();
}

export function handle(vcpu: Vcpu, reason: u32): i32 {
  if (!nesting.offered) {
    events.injectUD();
    return exits.RESUME;
  }
  const c = common.check(vcpu, reason, false);
  if (c != common.PROCEED) return c;
  const launch = reason == V.EXIT_REASON_VMLAUNCH;
  // 27.1: no current VMCS, or a current VMCS that is a shadow VMCS (bit 31
  // of its first dword, 25.2) → VMfailInvalid.
  if (state.current == state.INVALID) return vmfail.failInvalid();
  if ((load<u32>(state.cache, V.VMCS12_REVISION_ID_OFFSET) & V.VMCS_SHADOW_INDICATOR) != 0) return vmfail.failInvalid();
  // What L1 wrote through the shadow VMCS, before anything reads vmcs12.
  shadow.pull(vcpu);
  // Events blocked by MOV SS → VMfailValid(26).
  if ((<u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE) & V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS) != 0)
    return vmfail.failValid(V.VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS);
  if (launch && state.launchState() != 0) return vmfail.failValid(V.VMXERR_VMLAUNCH_NONCLEAR_VMCS);
  if (!launch && state.launchState() != 1) return vmfail.failValid(V.VMXERR_VMRESUME_NONLAUNCHED_VMCS);

  // 27.2-27.3, against what L1 was offered. L1's IA-32e mode decides some
  // host-state rules.
  entry.setL1Ia32e((vmx.vmread(V.GUEST_IA32_EFER) & V.X86_EFER_LMA) != 0);
  const r = entry.check(launch);
  if (r == entry.FAIL_CONTROLS) {
    logFailed("VM entry (controls)");
    return vmfail.failValid(V.VMXERR_ENTRY_INVALID_CONTROL_FIELD);
  }
  if (r == entry.FAIL_HOST) {
    logFailed("VM entry (host state)");
    return vmfail.failValid(V.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD);
  }
  if (r == entry.FAIL_GUEST) {
    logFailed("VM entry (guest state)");
    return reflect.reflectSynthetic(vcpu, V.EXIT_REASON_ENTRY_FAILURE_GUEST_STATE | V.EXIT_REASON_FLAG_ENTRY_FAILURE,
      entry.exitQualification, 0);
  }
  // Into L2: vmcs02 becomes current and the next VM entry runs it.
  vmcs02.captureVmcs01();
  vmcs02.captureL1Msrs();
  vmcs02.setL1Launched(vcpu.launched);
  if (!vmcs02.load()) {
    print.say("nested: loading vmcs02 failed");
    return exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  if (!vmcs02.merge(vcpu)) {
    print.say("nested: out of memory for shadow EPT tables");
    return exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  // 27.4: the VM-entry MSR-load list, after the guest state, into L2's
  // state; a failure is a failed VM entry with the entry's 1-based index.
  const failed = msrlists.loadList(vcpu, state.get(V.VM_ENTRY_MSR_LOAD_ADDRESS), <u32>state.get(V.VM_ENTRY_MSR_LOAD_COUNT), true);
  if (failed != 0) {
    print.str("hv: nested: VM entry failed loading MSR-load entry ");
    print.dec(failed);
    print.nl();
    if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) return exits.stop(vcpu, config.OUTCOME_STOPPED);
    // What the entries before the failing one loaded stays (26.4 loads in
    // order; 27.8 then loads host state as a VM exit would).
    msrlists.carryToL1();
    tsc.toVmcs01(vcpu);
    return reflect.reflectSynthetic(vcpu, V.EXIT_REASON_ENTRY_FAILURE_MSR_LOADING | V.EXIT_REASON_FLAG_ENTRY_FAILURE,
      <u64>failed, 0);
  }
  vcpu.setLaunched(vmcs02.launched);
  const nested = vcpu.nested;
  l2irq.entered(nested);
  ptimer.entered(nested);
  if (launch) state.setLaunchState(1);
  nesting.setInL2(true);
  launches++;
  // The TLB flushes this entry means for L1's processor (vpid.ts).
  vpid.entered(nested);
  // L2 entered in the HLT state that nothing can end (27.7.2).
  if (l2halt.enteredHalted() && !l2halt.canWake(vcpu)) return l2halt.haltedForever(vcpu);
  return exits.RESUME;
}
