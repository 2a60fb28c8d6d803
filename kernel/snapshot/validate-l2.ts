// NESTED's L2_* values (docs/snapshot.md "NESTED"): L2's IA32_EFER,
// IA32_PAT, DR7 and IA32_DEBUGCTL while L2 runs. vmcs12 holds them only when
// its VM-exit controls save them (SDM Vol. 3C 28.3.1), so a snapshot taken
// in L2 carries them here; restore writes them into vmcs02 as L2's state.
// They must be values a VM entry would load (27.3.1.1, the same rules
// nested/entry-checks-guest.ts applies to vmcs12's fields): EFER's bits
// those L1 is offered, EFER.LMA = "IA-32e mode guest" and, with CR0.PG,
// EFER.LME = LMA; every PAT entry a memory type; DR7 bits 63:32 zero;
// DEBUGCTL bits those this processor's WRMSR takes. Outside GUEST_MODE
// all four are zero.
import * as V from "../arch/vmx";
import * as msrExit from "../vm/exit/msr";
import { EFER_DEFINED, patOk } from "../nested/entry-checks-host";
import { Reader } from "./blob";
import * as R from "./rules";
import { Verdict } from "./rules";
import { sectionOffset, field12 } from "./find";

const NONE: u64 = u64.MAX_VALUE;

export function l2State(r: Reader, v: Verdict): u32 {
  const sec = V.SNAP_SEC_NESTED;
  const off = sectionOffset(r, sec);
  if (off == NONE) return R.OK;
  const efer = r.u64(off + V.SNAP_NESTED_L2_EFER);
  const pat = r.u64(off + V.SNAP_NESTED_L2_PAT);
  const dr7 = r.u64(off + V.SNAP_NESTED_L2_DR7);
  const debugctl = r.u64(off + V.SNAP_NESTED_L2_DEBUGCTL);
  if ((r.u32(off + V.SNAP_NESTED_FLAGS) & V.SNAP_FLAG_GUEST_MODE) == 0) {
    if (efer != 0) return v.fail(R.NESTED_L2_OUTSIDE_L2, sec, V.SNAP_NESTED_L2_EFER, efer);
    if (pat != 0) return v.fail(R.NESTED_L2_OUTSIDE_L2, sec, V.SNAP_NESTED_L2_PAT, pat);
    if (dr7 != 0) return v.fail(R.NESTED_L2_OUTSIDE_L2, sec, V.SNAP_NESTED_L2_DR7, dr7);
    if (debugctl != 0) return v.fail(R.NESTED_L2_OUTSIDE_L2, sec, V.SNAP_NESTED_L2_DEBUGCTL, debugctl);
    return R.OK;
  }
  // GUEST_MODE: validate-nested.ts made sure the vmcs12 page is there.
  const page = sectionOffset(r, V.SNAP_SEC_VMCS12);
  const ia32e = (<u32>field12(r, page, V.VM_ENTRY_CONTROL) & V.ENTRY_IA32E_MODE_GUEST) != 0;
  const pg = (field12(r, page, V.GUEST_CR0) & V.X86_CR0_PG) != 0;
  if ((efer & ~EFER_DEFINED) != 0 || ((efer & V.X86_EFER_LMA) != 0) != ia32e ||
    (pg && ((efer & V.X86_EFER_LME) != 0) != ia32e)) return v.fail(R.NESTED_L2_STATE, sec, V.SNAP_NESTED_L2_EFER, efer);
  if (!patOk(pat)) return v.fail(R.NESTED_L2_STATE, sec, V.SNAP_NESTED_L2_PAT, pat);
  if ((dr7 >> 32) != 0) return v.fail(R.NESTED_L2_STATE, sec, V.SNAP_NESTED_L2_DR7, dr7);
  if ((debugctl & ~msrExit.debugctlDefined) != 0) return v.fail(R.NESTED_L2_STATE, sec, V.SNAP_NESTED_L2_DEBUGCTL, debugctl);
  return R.OK;
}
