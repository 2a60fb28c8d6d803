// What the machine a snapshot is restored on allows: the inputs of
// validate.ts besides the blob. Filled once per guest by the caller.
// docs/snapshot.md "Limits" lists where each value comes from; fill() takes
// them from this machine.
import * as V from "../arch/vmx";
import * as ident from "../cpu/ident";
import * as hw from "../vmx/caps";
import * as nestedCaps from "../nested/caps";
import * as config from "../vm/config";
import * as xstate from "../vm/xstate";
import { Vm } from "../vm/vm";

@unmanaged export class Limits {
  vcpu: u32 = 0; // the vCPU the blob is for (SNAP_HDR_VCPU)
  ramBytes: u64 = 0; // L1's RAM: guest-physical [0, ramBytes)
  physAddrBits: u32 = 36; // MAXPHYADDR (CPUID.80000008H:EAX[7:0]) as L1 sees it
  linearBits: u32 = 48; // canonical width of linear addresses (57 with LA57)
  nested: bool = false; // nested=on: VMX offered to L1
  hyperv: bool = false; // hyperv=on: the Hyper-V interface offered (a HYPERV section; an eVMCS possible)
  shadowVmcs: bool = false; // L1 is offered VMCS shadowing (a vmcs12 may be a shadow VMCS)
  vmcs12Revision: u32 = 0; // the revision identifier L1 is given (nested/caps.ts)
  mxcsrMask: u32 = 0xffbf; // the processor's MXCSR_MASK (FXSAVE byte 28; 0 there means FFBFH)
  xcr0Offered: u64 = 0; // XCR0 bits a guest may set; 0: no XSAVE
  xsaveBytes: u32 = 0; // the XSAVE area (CPUID.(0DH,0):ECX); 0: no XSTATE section
  anyErrorCode: bool = false; // IA32_VMX_BASIC[56] of the processor
  zeroLengthInjection: bool = false; // IA32_VMX_MISC[30] of the processor
  mtf: bool = false; // the processor allows "monitor trap flag" (event type 7)
}


// The limits of this machine for vCPU `vcpuIndex` of `vm`. mxcsrMask: bytes
// 28-31 of an FXSAVE image made on this processor (a vCPU's register block
// after an exit has one, V.REGS_FX + 28); 0 there means FFBFH (SDM Vol. 1
// 11.6.6).
export function fill(l: Limits, vm: Vm, vcpuIndex: u32, mxcsrMask: u32): void {
  l.vcpu = vcpuIndex;
  l.ramBytes = vm.ramBytes;
  l.physAddrBits = ident.physAddrBits;
  // Guests get LA57 where the processor has it and VMX allows CR4.LA57
  // (exit/cpuid.ts hides it otherwise).
  let la57 = false;
  if (ident.maxBasicLeaf >= 7) {
    ident.query(7, 0);
    la57 = (ident.ecx() & (1 << 16)) != 0 && (hw.cr4Fixed1 & V.X86_CR4_LA57) != 0;
  }
  l.linearBits = la57 ? 57 : 48;
  l.nested = config.nested[vm.guest];
  l.hyperv = config.hyperv[vm.guest];
  const secondary = (<u32>(nestedCaps.proc(true) >> 32) & V.PROC_ACTIVATE_SECONDARY_CONTROLS) != 0;
  // (hyperv=on offers no VMCS shadowing: nested/caps.ts EVMCS1_PROC2_HIDDEN.)
  l.shadowVmcs = secondary && (<u32>(nestedCaps.proc2(vm.hvOffered) >> 32) & V.PROC2_VMCS_SHADOWING) != 0;
  l.vmcs12Revision = nestedCaps.REVISION_ID;
  l.mxcsrMask = mxcsrMask == 0 ? 0xffbf : mxcsrMask;
  l.xcr0Offered = xstate.offered;
  l.xsaveBytes = xstate.offered == 0 ? 0 : xstate.areaBytes();
  l.anyErrorCode = (hw.basic & V.VMX_BASIC_ANY_ERROR_CODE) != 0;
  l.zeroLengthInjection = (hw.misc & V.VMX_MISC_ZERO_LENGTH_INJECTION) != 0;
  l.mtf = (<u32>(hw.proc >> 32) & V.PROC_MONITOR_TRAP_FLAG) != 0;
}
