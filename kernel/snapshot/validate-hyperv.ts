// Snapshot validation of the HYPERV section (docs/snapshot.md "HYPERV"):
// the synthetic MSRs of a guest with hyperv=on, as vm/exit/hyperv.ts keeps
// them. A value is accepted exactly when it is one the guest's WRMSRs could
// have left there (Hyper-V TLFS: reserved bits #GP; a page that is enabled
// must be guest RAM, hyperv.ts's rule, since the hypervisor reads and writes
// those pages in software), so that restore never holds a state the
// emulation cannot reach. Whether the section may be there at all (exactly
// for hyperv=on) is validate.ts's framing.
import * as V from "../arch/vmx";
import * as hyperv from "../vm/exit/hyperv";
import { Reader } from "./blob";
import * as R from "./rules";
import { Verdict } from "./rules";
import { Limits } from "./limits";
import { sectionOffset } from "./find";

const NONE: u64 = u64.MAX_VALUE;
const PAGE: u64 = 4096;
const PAGE_MASK: u64 = ~(PAGE - 1);

// Is the page of MSR value v, when v enables it, a whole page of the guest's
// RAM [0, ramBytes)? (A disabled page may name anything: the guest may
// write any address with the enable bit clear.)
function pageOk(v: u64, enable: u64, lim: Limits): bool {
  if ((v & enable) == 0) return true;
  const p = v & PAGE_MASK;
  return PAGE <= lim.ramBytes && p <= lim.ramBytes - PAGE;
}

export function hypervState(r: Reader, lim: Limits, v: Verdict): u32 {
  const sec = V.SNAP_SEC_HYPERV;
  const off = sectionOffset(r, sec);
  if (off == NONE) return R.OK;
  if (!r.zero(off + V.SNAP_HYPERV_RESERVED, V.SNAP_HYPERV_BYTES - V.SNAP_HYPERV_RESERVED))
    return v.fail(R.HYPERV_RESERVED, sec, V.SNAP_HYPERV_RESERVED, 0);
  const osId = r.u64(off + V.SNAP_HYPERV_GUEST_OS_ID);
  const hypercall = r.u64(off + V.SNAP_HYPERV_HYPERCALL);
  const tsc = r.u64(off + V.SNAP_HYPERV_TSC_INVARIANT_CONTROL);
  const assist = r.u64(off + V.SNAP_HYPERV_VP_ASSIST_PAGE);
  // TLFS "Virtual Processor Assist Page": bits 11:1 reserved (#GP);
  // HV_X64_MSR_TSC_INVARIANT_CONTROL: bits 63:1 reserved (#GP). (The
  // hypercall MSR's bits 11:2 are "reserved, preserved": kept as written.)
  if ((assist & hyperv.VP_ASSIST_RESERVED) != 0) return v.fail(R.HYPERV_RESERVED_BITS, sec, V.SNAP_HYPERV_VP_ASSIST_PAGE, assist);
  if ((tsc & ~hyperv.TSC_INVARIANT_EXPOSE) != 0) return v.fail(R.HYPERV_RESERVED_BITS, sec, V.SNAP_HYPERV_TSC_INVARIANT_CONTROL, tsc);
  if (!pageOk(assist, hyperv.VP_ASSIST_ENABLE, lim)) return v.fail(R.HYPERV_PAGE_OUTSIDE_RAM, sec, V.SNAP_HYPERV_VP_ASSIST_PAGE, assist);
  if (!pageOk(hypercall, hyperv.HYPERCALL_ENABLE, lim)) return v.fail(R.HYPERV_PAGE_OUTSIDE_RAM, sec, V.SNAP_HYPERV_HYPERCALL, hypercall);
  // The hypercall page is enabled only with a guest OS identity (TLFS
  // "Reporting the Guest OS Identity": writing 0 disables it; enabling
  // without one leaves the bit 0).
  if ((hypercall & hyperv.HYPERCALL_ENABLE) != 0 && osId == 0)
    return v.fail(R.HYPERV_HYPERCALL_WITHOUT_OS_ID, sec, V.SNAP_HYPERV_HYPERCALL, hypercall);
  return R.OK;
}
