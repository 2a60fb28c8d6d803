// What the machine a snapshot is restored on allows: the inputs of
// validate.ts besides the blob. Filled once per guest by the caller.
// docs/snapshot.md "Limits" lists where each value comes from.
@unmanaged export class Limits {
  vcpu: u32 = 0; // the vCPU the blob is for (SNAP_HDR_VCPU)
  ramBytes: u64 = 0; // L1's RAM: guest-physical [0, ramBytes)
  physAddrBits: u32 = 36; // MAXPHYADDR (CPUID.80000008H:EAX[7:0]) as L1 sees it
  linearBits: u32 = 48; // canonical width of linear addresses (57 with LA57)
  nested: bool = false; // nested=on: VMX offered to L1
  shadowVmcs: bool = false; // L1 is offered VMCS shadowing (a vmcs12 may be a shadow VMCS)
  vmcs12Revision: u32 = 0; // the revision identifier L1 is given (nested/caps.ts)
  mxcsrMask: u32 = 0xffbf; // the processor's MXCSR_MASK (FXSAVE byte 28; 0 there means FFBFH)
  xcr0Offered: u64 = 0; // XCR0 bits a guest may set; 0: no XSAVE
  xsaveBytes: u32 = 0; // the XSAVE area (CPUID.(0DH,0):ECX); 0: no XSTATE section
  anyErrorCode: bool = false; // IA32_VMX_BASIC[56] of the processor
  zeroLengthInjection: bool = false; // IA32_VMX_MISC[30] of the processor
  mtf: bool = false; // the processor allows "monitor trap flag" (event type 7)
}

