// VMX control words from the capability MSRs (SDM Vol. 3D A.3-A.5): a bit
// may be 0 only if allowed-0 (bits 31:0) is 0, and 1 only if allowed-1
// (bits 63:32) is 1. Required features that the processor lacks are
// reported by name, never silently dropped.
import * as print from "../lib/print";
import * as V from "../arch/vmx";

export const KIND_PIN: i32 = 0;
export const KIND_PROC: i32 = 1;
export const KIND_PROC2: i32 = 2;
export const KIND_EXIT: i32 = 3;
export const KIND_ENTRY: i32 = 4;

function bitName(kind: i32, b: u32): string {
  switch (kind) {
    case KIND_PIN: return V.pinCtlName(b);
    case KIND_PROC: return V.procCtlName(b);
    case KIND_PROC2: return V.proc2CtlName(b);
    case KIND_EXIT: return V.exitCtlName(b);
  }
  return V.entryCtlName(b);
}

// The control word with every `required` bit, every `optional` bit the
// processor allows, and every bit it forces to 1. A required bit it does not
// allow is printed and missing from the word (has() tells).
export function adjust(cap: u64, kind: i32, required: u32, optional: u32): u32 {
  const allowed0 = <u32>cap;
  const allowed1 = <u32>(cap >> 32);
  const lacking = required & ~allowed1;
  if (lacking != 0) {
    print.str("hv: vmx: this processor lacks required VMX controls:");
    for (let b: u32 = 0; b < 32; b++) {
      if ((lacking & (1 << b)) == 0) continue;
      print.str(" ");
      print.str(bitName(kind, b));
    }
    print.nl();
  }
  return (required | (optional & allowed1) | allowed0) & allowed1;
}

// Does control word w have every required bit?
@inline export function has(w: u32, required: u32): bool {
  return (w & required) == required;
}
