// L2's guest state into vmcs12 at a reflected VM exit (SDM Vol. 3C 28.3
// "Saving Guest State"), in two parts:
//   hot   the fields L1 reads or changes on nearly every exit — RIP, RSP,
//         RFLAGS, CR3, interruptibility, activity, pending debug
//         exceptions, the segment fields the shadow VMCS serves (CS
//         selector, CS and SS access rights) — and EFER, PAT and the debug
//         controls (which the exit controls decide): read at every exit;
//   rare  the other segment fields, GDTR/IDTR and the SYSENTER MSRs:
//         thirty-six VMREADs that most exits would spend for nothing. They
//         stay in vmcs02 — which holds them until its next VM entry, and
//         only L0 runs it — and reach vmcs12 when something reads or writes
//         vmcs12 beyond the hot fields (n.rareUnsynced): L1's VMREAD or
//         VMWRITE of a guest-state field that exits, an entry whose checks
//         or merge read the guest-state area whole, the vmcs12 leaving the
//         cache (VMCLEAR, VMPTRLD, VMXOFF), a snapshot. None of them is
//         shadowed (shadow.ts pushes only hot ones), so L1 never sees a
//         stale one. With an enlightened VMCS in use every field is written
//         back at the exit (L1 reads them from memory, evmcs.ts): all are
//         read then.
// KVM's L0 makes the same split (its "rare" vmcs02 fields).
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";
import { Vcpu } from "../vm/vcpu";
import * as state from "./state";
import * as fields from "./fields";
import { FieldList } from "./fieldlist";
import { Nested } from "./nested";

export const guestList = new FieldList(fields.GUEST_STATE, true, V.READLIST_GUEST_SAVE); // machine-wide: a constant field list
export const exitInfoList = new FieldList(fields.EXIT_INFO, true, V.READLIST_EXIT_INFO); // machine-wide: a constant field list

// The entries of guestList that are rare (see the top), and the same as a
// set of encodings: bit (width * 32 + index) of rareKeys (Appendix B: a
// guest-state encoding is its width, bits 14:13, and index, bits 9:1;
// every guest-state index is below 32).
export let rareMask: u64 = 0; // machine-wide: a constant computed at start
const rareKeys = new StaticArray<u64>(2); // machine-wide: a constant computed at start
@inline function rareKey(enc: u32): u32 {
  return ((enc >> 13) & 3) * 32 + ((enc >> 1) & 31);
}
for (let i = 0; i < fields.GUEST_STATE.length; i++) {
  const f = fields.GUEST_STATE[i];
  const hot = V.vmcsFieldIsShadowed(f) || f == V.GUEST_RIP || f == V.GUEST_RSP || f == V.GUEST_RFLAGS ||
    f == V.GUEST_CR3 || f == V.GUEST_INTERRUPTIBILITY_STATE || f == V.GUEST_ACTIVITY_STATE ||
    f == V.GUEST_PENDING_DEBUG_EXCEPTIONS || f == V.GUEST_IA32_EFER || f == V.GUEST_IA32_PAT ||
    f == V.GUEST_DR7 || f == V.GUEST_IA32_DEBUGCTL;
  if (!hot) {
    rareMask |= <u64>1 << <u64>i;
    assert(((f >> 1) & 0x1ff) < 32);
    const k = rareKey(f);
    rareKeys[k >> 6] |= <u64>1 << <u64>(k & 63);
  }
}

// Is enc (full or high encoding) a rare guest-state field?
export function isRare(enc: u32): bool {
  if (V.vmcsEncodingType(enc) != V.VMCS_TYPE_GUEST || ((enc >> 1) & 0x1ff) >= 32) return false;
  const k = rareKey(enc);
  return ((unchecked(rareKeys[k >> 6]) >> <u64>(k & 63)) & 1) != 0;
}

// vmcs02 is current (L2's exit, or a nested entry after vmcs02's load).
export function syncRareCurrent(n: Nested): void {
  if (!n.rareUnsynced) return;
  n.shadowGuestStale |= state.readFields(n, guestList, rareMask, true);
  n.rareUnsynced = false;
}

// vmcs01 is current (L1 runs): vmcs02 is made current for the copy.
// A failing VMPTRLD of our own VMCS is a hypervisor bug: reported, and the
// cache keeps its values.
export function syncRare(vcpu: Vcpu): void {
  const n = vcpu.nested;
  if (!n.rareUnsynced) return;
  if (vmx.vmptrld(n.vmcs02.page) != vmx.VMX_SUCCEED) {
    print.say("nested: VMPTRLD of vmcs02 failed (syncing L2's state)");
    return;
  }
  syncRareCurrent(n);
  if (vmx.vmptrld(vcpu.vmcs) != vmx.VMX_SUCCEED) print.say("nested: VMPTRLD of vmcs01 failed (syncing L2's state)");
}
