// Exits while L2 runs (vmcs02 current): reflected to L1 when L1 asked for
// them (reflect-decide.ts), otherwise handled by L0 as it would handle the
// same exit from L1 — on vmcs02, so that L2 continues. Control-register
// writes need the merged mask/shadow of vmcs02, and an HLT that L1 does
// not intercept puts L2 in the HLT state (l2halt.ts).
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as caps from "../vmx/caps";
import * as R from "../vm/vcpu";
import { Vcpu } from "../vm/vcpu";
import * as events from "../vm/events";
import * as exits from "../vm/exits";
import * as crExit from "../vm/exit/cr";
import * as crqual from "../vm/exit/crqual";
import * as decide from "./reflect-decide";
import * as reflect from "./reflect";
import * as state from "./state";
import * as eptfault from "./eptfault";
import * as vmfunc from "./vmfunc";
import * as vmcs02 from "./vmcs02";
import * as l2halt from "./l2halt";
import * as shadow12 from "./shadow12";
import * as nestedCaps from "./caps";

// MOV to CR0/CR4 by L2 that L1 does not intercept: only bits L0 owns
// changed (vmcs01's mask: VMX's fixed bits and the withheld CR4 bits). The
// processor's view gets the fixed bits, L2's view (the vmcs02 shadow) shows
// what it wrote for the bits L1 does not own and L1's shadow for those it
// does; a CR4 bit the processor offered to L1 lacks is #GP.
function crWrite(vcpu: Vcpu, q: u32): i32 {
  const crn = crqual.cr(q);
  if (crn == 8 || crqual.access(q) != V.CR_ACCESS_MOV_TO_CR || (crn != 0 && crn != 4)) return crExit.handle(vcpu, V.EXIT_REASON_CR_ACCESS);
  const v = crqual.source(vcpu, q);
  // A CR4 bit the processor offered to L1 lacks (CR4_FIXED1 there) is #GP.
  if ((v >> 32) != 0 || (crn == 4 && (v & ~nestedCaps.cr4Fixed1()) != 0)) {
    events.injectGP();
    return exits.RESUME;
  }
  const n = vcpu.nested;
  const mask12 = state.read(n, crn == 0 ? V.CR0_GUEST_HOST_MASK : V.CR4_GUEST_HOST_MASK);
  const shadow12 = state.read(n, crn == 0 ? V.CR0_READ_SHADOW : V.CR4_READ_SHADOW);
  // Bits L1 owns keep the value L1 gave L2's real CR0/CR4 (vmcs12's guest
  // CR0/CR4): L2's write matched L1's shadow there, or it would have exited
  // to L1 (26.1.3), and L1's guest value may differ from its shadow.
  const live = vmx.vmread(crn == 0 ? V.GUEST_CR0 : V.GUEST_CR4);
  const want = (live & mask12) | (v & ~mask12);
  const real = crn == 0 ? vmcs02.realCr0(n, want) : (want | caps.cr4Fixed0) & caps.cr4Guest();
  vmx.vmwrite(crn == 0 ? V.GUEST_CR0 : V.GUEST_CR4, real);
  vmx.vmwrite(crn == 0 ? V.CR0_READ_SHADOW : V.CR4_READ_SHADOW, (shadow12 & mask12) | (v & ~mask12));
  events.skipInstruction();
  return exits.RESUME;
}

// Rare L2 exits, and those L0 completes itself, are handled through these
// references, not direct calls: binaryen inlines a function called once,
// and inlined here their code and locals cost every L2 exit (+30 ticks on
// an L2 VMFUNC, measured twice).
let shadow12Handle: (vcpu: Vcpu, reason: u32) => i32 = shadow12.handle; // machine-wide: a code reference
let hltHandle: (vcpu: Vcpu) => i32 = l2halt.handleHlt; // machine-wide: a code reference
let l0Handle: (vcpu: Vcpu, reason: u32) => i32 = l0Handles; // machine-wide: a code reference

export function handle(vcpu: Vcpu, reason: u32): i32 {
  // With EPT in vmcs12, L2 runs on shadow tables: L1's walk decides.
  if (reason == V.EXIT_REASON_EPT_VIOLATION && state.eptEnabled(vcpu.nested)) return eptfault.handle(vcpu);
  // VMFUNC: L0 emulates EPTP switching for L2 (vmfunc.ts).
  if (reason == V.EXIT_REASON_VMFUNC) return vmfunc.handle(vcpu);
  // VMREAD/VMWRITE: reflected, or performed on L1's shadow VMCS (shadow12.ts).
  if (reason == V.EXIT_REASON_VMREAD || reason == V.EXIT_REASON_VMWRITE) return shadow12Handle(vcpu, reason);
  if (decide.l1Wants(vcpu, reason)) return reflect.reflect(vcpu, reason);
  reflect.countL0(vcpu);
  if (reason == V.EXIT_REASON_HLT) return hltHandle(vcpu);
  return l0Handle(vcpu, reason);
}

// L0 completes the exit for L2 as for L1 (vmcs02 current). An exception it
// raises doing so (#GP of a WRMSR L1 lets through, of a MOV to CR4 setting
// a bit L1's processor lacks) is L2's exception: L1's if L1's exception
// bitmap wants it (reflect.injectedException). Only a new injection counts:
// an event already being delivered (re-injected, events.ts) is not one.
function l0Handles(vcpu: Vcpu, reason: u32): i32 {
  const pending = (<u32>vmx.vmread(V.VM_ENTRY_INTERRUPTION_INFO) & V.INTR_INFO_VALID) != 0;
  const cr2 = vcpu.cr2();
  const r = reason == V.EXIT_REASON_CR_ACCESS ? crWrite(vcpu, <u32>vmx.vmread(V.EXIT_QUALIFICATION)) : exits.dispatch(vcpu, reason);
  return pending ? r : reflect.injectedException(vcpu, r, cr2);
}
