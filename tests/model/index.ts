// tests/model in one import: machines, boot information, running the kernel.
export { Machine, MachineFault, ExitSignal, STATUS_NAMES } from './machine.ts';
export type { MachineConfig, MsrDef, CpuidEntry, Regs, IoEvent, PortHandler, MmioHandler } from './machine.ts';
export { tigerlake, noVmx, lockedOff, pruneVmxMsrs, TIGERLAKE_VMX } from './presets.ts';
export type { PresetOptions } from './presets.ts';
export { buildBootInfo, defaultMmap, HV_MEM } from './bootinfo.ts';
export type { BootSpec, BootFile, MmapEntry, BootLayout } from './bootinfo.ts';
export { runKernel, loadKernel, kernelModule, KERNEL_WASM, REPO_ROOT } from './run.ts';
export type { RunOptions, RunResult, CallResult, Kernel } from './run.ts';
export { Vmx, INVALID_VMCS_POINTER } from './vmx.ts';
export type { Vmcs, VmxEvent, GuestScript } from './vmx.ts';
export { lookupField, fieldName, fieldByName } from './vmcs-fields.ts';
