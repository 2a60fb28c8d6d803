// A vCPU's nested-VMX part (design.md, "The state model"): what L1's VMX
// operation has — VMXON pointer, current vmcs12 and its cache, vmcs02,
// shadow VMCS, shadow-EPT roots, VPID state. Made with its Vcpu.
@unmanaged export class Nested {
  // Back to the state of a vCPU that never executed VMXON.
  clear(): void {}
}
