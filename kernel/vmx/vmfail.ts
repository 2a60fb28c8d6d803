// Describing a failed VMX instruction (SDM Vol. 3C 31.2): VMfailInvalid,
// or VMfailValid with the VM-instruction error number (31.4) read from the
// current VMCS.
import * as vmx from "../hw/vmx";
import * as print from "../lib/print";
import * as V from "../arch/vmx";

// Append "VMfailInvalid" or "VMfailValid, error N (name)" to the line.
export function describe(status: i32): void {
  if (status == vmx.VMX_FAIL_INVALID) {
    print.str("VMfailInvalid");
    return;
  }
  const err = <u32>vmx.vmread(V.VM_INSTRUCTION_ERROR);
  print.str("VMfailValid, error ");
  print.dec(err);
  print.str(" (");
  print.str(V.vmxErrorName(err));
  print.str(")");
}
