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
import * as guestsync from "./guestsync";
import * as evmcs from "./evmcs";
import * as vpid from "./vpid";
import * as ptimer from "./ptimer";
import * as initsipi from "./initsipi";
import * as tsc from "../vm/tsc";

function logFailed(what: string, check: string): void {
  print.str("hv: nested: ");
  print.str(what);
  print.str(" failed check ");
  print.str(check);
  print.nl();
}

// VMfailValid of the entry; with an enlightened VMCS in use L1 reads the
// error there too (evmcs.ts). (Here, not in vmfail.ts: the other VMX
// instructions keep their path.)
function failValid(vcpu: Vcpu, error: u32): i32 {
  const n = vcpu.nested;
  if (n.evmcs != state.INVALID) evmcs.pushError(n, error);
  return vmfail.failValid(vcpu, error);
}

// Not an exit reason (those are 16 bits): a vCPU restored from a snapshot
// taken while L2 ran goes back into L2 through handle() (nested/resume.ts),
// so that the functions of the entry keep this one caller (binaryen inlines
// them here; a second caller cost the VMRESUME round trip 110 ticks).
export const RESTORED: u32 = 0x10000;

export function handle(vcpu: Vcpu, reason: u32): i32 {
  const n = vcpu.nested;
  const launch = reason == V.EXIT_REASON_VMLAUNCH;
  const restored = reason == RESTORED;
  const l1Efer = vmx.vmread(V.GUEST_IA32_EFER);
  // A restored entry is one that happened before the snapshot: its checks
  // were made then (and the restore validated the vmcs12 with them).
  if (!restored) {
    if (!n.enabled) {
      events.injectUD();
      return exits.RESUME;
    }
    const c = common.check(vcpu, reason, false);
    if (c != common.PROCEED) return c;
    // hyperv=on with the VP assist page enabled (its MSR is 0 otherwise):
    // an enlightened entry takes vmcs12 from the eVMCS the page names
    // (evmcs.ts), one test of the MSR value for every other guest.
    let ev = evmcs.NOT_ENLIGHTENED;
    if (vcpu.hv.vpAssistPage != 0) ev = evmcs.enter(vcpu, launch);
    if (ev != evmcs.NOT_ENLIGHTENED) {
      if (ev != common.PROCEED) return ev;
    } else {
      // 27.1: no current VMCS, or a current VMCS that is a shadow VMCS (bit 31
      // of its first dword, 25.2) → VMfailInvalid.
      if (n.current == state.INVALID) return vmfail.failInvalid(vcpu);
      if ((load<u32>(n.vmcs12, V.VMCS12_REVISION_ID_OFFSET) & V.VMCS_SHADOW_INDICATOR) != 0) return vmfail.failInvalid(vcpu);
      // What L1 wrote through the shadow VMCS, before anything reads vmcs12.
      shadow.pull(vcpu);
    }
    // Events blocked by MOV SS → VMfailValid(26).
    if ((<u32>vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE) & V.INTERRUPTIBILITY_BLOCKING_BY_MOV_SS) != 0)
      return failValid(vcpu, V.VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS);
    if (launch && state.launchState(n) != 0) return failValid(vcpu, V.VMXERR_VMLAUNCH_NONCLEAR_VMCS);
    if (!launch && state.launchState(n) != 1) return failValid(vcpu, V.VMXERR_VMRESUME_NONLAUNCHED_VMCS);

    // 27.2-27.3, against what L1 was offered. L1's IA-32e mode decides some
    // host-state rules. Checks that read the guest-state area whole
    // (entry-checks.ts checksWholeGuest) want L2's rare fields in vmcs12
    // (guestsync.ts); checks of the hot fields alone do not read them.
    if (n.rareUnsynced && entry.checksWholeGuest(n, (l1Efer & V.X86_EFER_LMA) != 0)) guestsync.syncRare(vcpu);
    const r = entry.check(n, launch, (l1Efer & V.X86_EFER_LMA) != 0);
    if (r != entry.ENTRY_OK) {
      const f = n.check;
      if (r == entry.FAIL_GUEST) {
        logFailed("VM entry (guest state)", f.failName);
        return reflect.reflectSynthetic(vcpu, f.exitReason, f.failQual, 0);
      }
      logFailed(r == entry.FAIL_CONTROLS ? "VM entry (controls)" : "VM entry (host state)", f.failName);
      return failValid(vcpu, f.error);
    }
  }
  // Into L2: vmcs02 becomes current and the next VM entry runs it. What
  // L2's VMCS inherits from L1's is read while vmcs01 is current: vmcs01's
  // controls, and L1's EFER (above), PAT, DR7 and DEBUGCTL (merge() uses
  // them for what vmcs12 does not load, 27.3.2.1).
  vmcs02.captureVmcs01(n);
  const l1Pat = vmx.vmread(V.GUEST_IA32_PAT);
  const l1Dr7 = vmx.vmread(V.GUEST_DR7);
  const l1Debugctl = vmx.vmread(V.GUEST_IA32_DEBUGCTL);
  n.vmcs02.l1Launched = vcpu.launched;
  if (!vmcs02.load(n)) {
    n.entry.unfinished++;
    print.say("nested: loading vmcs02 failed");
    return exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  if (!vmcs02.merge(vcpu, l1Efer, l1Pat, l1Dr7, l1Debugctl)) {
    n.entry.unfinished++;
    print.say("nested: out of memory for shadow EPT tables");
    return exits.stop(vcpu, config.OUTCOME_STOPPED);
  }
  // 27.4: the VM-entry MSR-load list, after the guest state, into L2's
  // state; a failure is a failed VM entry with the entry's 1-based index.
  // (Not for a restored entry: those MSRs were restored as MSRs, with the
  // values L2 gave them since.)
  const loadCount = <u32>state.get(n, V.VM_ENTRY_MSR_LOAD_COUNT); // (an empty list costs no call)
  const failed = restored || loadCount == 0 ? 0 : msrlists.loadList(vcpu, state.get(n, V.VM_ENTRY_MSR_LOAD_ADDRESS), loadCount, true);
  if (failed != 0) {
    n.entry.unfinished++;
    print.str("hv: nested: VM entry failed loading MSR-load entry ");
    print.dec(failed);
    print.nl();
    if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) return exits.stop(vcpu, config.OUTCOME_STOPPED);
    // What the entries before the failing one loaded stays (26.4 loads in
    // order; 27.8 then loads host state as a VM exit would).
    msrlists.carryToL1(n);
    tsc.toVmcs01(vcpu);
    return reflect.reflectSynthetic(vcpu, V.EXIT_REASON_ENTRY_FAILURE_MSR_LOADING | V.EXIT_REASON_FLAG_ENTRY_FAILURE,
      <u64>failed, 0);
  }
  vcpu.setLaunched(n.vmcs02.launched);
  l2irq.entered(n);
  ptimer.entered(n); // (a restored entry's deadline is the snapshot's: resume.ts)
  if (launch) state.setLaunchState(n, 1);
  n.inL2 = true;
  n.counts.launches++;
  // The TLB flushes this entry means for L1's processor (vpid.ts).
  vpid.entered(n);
  // L2 entered in HLT or wait-for-SIPI (initsipi.ts).
  const activity = <u32>state.get(n, V.GUEST_ACTIVITY_STATE);
  if (activity != V.ACTIVITY_STATE_ACTIVE) return initsipi.afterEntry(vcpu, activity);
  return exits.RESUME;
}
