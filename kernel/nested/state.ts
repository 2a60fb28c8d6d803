// L1's VMX state as the hypervisor emulates it (SDM Vol. 3C 24, 25.1, 31):
// whether L1 is in VMX operation, its VMXON pointer, its current VMCS
// (vmcs12) and whether L2 is running. The current vmcs12 is cached here in
// linear memory in the private layout of kernel/arch/vmx.ts (vmcs12Offset,
// derived from the field table); the cache is written back to L1's memory
// (the same layout, in L1's VMCS region) when it stops being current:
// VMCLEAR of it, VMPTRLD of another, VMXOFF.
//
//   vmcs12 page (private layout, VMCS12_PAGE_SIZE bytes)
//   +0   revision id (bits 30:0) | shadow-VMCS indicator (bit 31)
//   +4   VMX-abort indicator
//   +8   launch state: 0 clear, 1 launched
//   +16  field slots (vmcs12Offset(encoding)), 8/4/2 bytes by width
import * as V from "../arch/vmx";
import * as guestmem from "../vm/guestmem";

export const INVALID: u64 = u64.MAX_VALUE; // "FFFFFFFF_FFFFFFFFH": no current VMCS (31.3)

// nested=on for this guest: VMX is offered (CPUID.1:ECX.VMX, the capability
// MSRs, VMX instructions emulated instead of #UD).
export let enabled: bool = false;
export let vmxOn: bool = false; // L1 executed VMXON
export let vmxonPtr: u64 = INVALID; // guest-physical
export let current: u64 = INVALID; // guest-physical address of the current vmcs12
export let inL2: bool = false; // L2 is running (vmcs02 is current on the processor)

// The current vmcs12, cached.
export const cache: usize = memory.data(V.VMCS12_PAGE_SIZE, 64);

export function reset(on: bool): void {
  enabled = on;
  vmxOn = false;
  vmxonPtr = INVALID;
  current = INVALID;
  inL2 = false;
  dirty = DIRTY_ALL;
  memory.fill(cache, 0, V.VMCS12_PAGE_SIZE);
}

export function setVmxOn(on: bool, ptr: u64): void {
  vmxOn = on;
  vmxonPtr = ptr;
}

export function setInL2(v: bool): void {
  inL2 = v;
}

// Field access on the cached current vmcs12, by encoding. The caller has
// checked that the encoding is supported (vmcs12Offset >= 0). A 64-bit
// field's "high" encoding addresses bits 63:32 (vmcs12Offset gives +4).
export function read(enc: u32): u64 {
  const off = <usize>V.vmcs12Offset(enc);
  if ((enc & V.VMCS_ENC_HIGH) != 0) return <u64>load<u32>(cache + off);
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) return <u64>load<u16>(cache + off);
  if (w == V.VMCS_WIDTH_32) return <u64>load<u32>(cache + off);
  return load<u64>(cache + off);
}

// Which groups of the current vmcs12 changed since the VM-entry checks last
// passed on it. Every change of the cache goes through write() (L1's
// VMWRITE, the hypervisor's own updates) or load12() (VMPTRLD: all of it),
// so a clear bit PROVES that group is what the last successful check saw;
// entry-checks.ts skips only such groups. The read-only exit-information
// fields belong to no group (no entry check reads them).
export const DIRTY_CONTROLS: u32 = 1;
export const DIRTY_HOST: u32 = 2;
export const DIRTY_GUEST: u32 = 4;
export const DIRTY_ALL: u32 = 7;
export let dirty: u32 = DIRTY_ALL;
export function markClean(): void {
  dirty = 0;
}
export function markAllDirty(): void {
  dirty = DIRTY_ALL;
}

function dirtyBit(enc: u32): u32 {
  const t = V.vmcsEncodingType(enc);
  if (t == V.VMCS_TYPE_CONTROL) return DIRTY_CONTROLS;
  if (t == V.VMCS_TYPE_HOST) return DIRTY_HOST;
  if (t == V.VMCS_TYPE_GUEST) return DIRTY_GUEST;
  return 0;
}

// Store v truncated to the field's width.
export function write(enc: u32, v: u64): void {
  dirty |= dirtyBit(enc);
  writeQuiet(enc, v);
}

// Store without marking the group changed: only for updates that cannot
// change what an entry check would conclude (the caller says why).
export function writeQuiet(enc: u32, v: u64): void {
  const off = <usize>V.vmcs12Offset(enc);
  if ((enc & V.VMCS_ENC_HIGH) != 0) {
    store<u32>(cache + off, <u32>v);
    return;
  }
  const w = V.vmcsEncodingWidth(enc);
  if (w == V.VMCS_WIDTH_16) store<u16>(cache + off, <u16>v);
  else if (w == V.VMCS_WIDTH_32) store<u32>(cache + off, <u32>v);
  else store<u64>(cache + off, v);
}

export function launchState(): u32 {
  return load<u32>(cache, V.VMCS12_LAUNCH_STATE_OFFSET);
}
export function setLaunchState(v: u32): void {
  store<u32>(cache, v, V.VMCS12_LAUNCH_STATE_OFFSET);
}

// Make the vmcs12 at gpa current: read it from L1's memory into the cache.
// The caller checked gpa (aligned, in RAM, revision).
export function load12(gpa: u64): void {
  guestmem.copyOut(cache, gpa, <u32>V.VMCS12_PAGE_SIZE);
  current = gpa;
  dirty = DIRTY_ALL;
}

// Write the cache back to L1's memory and forget it (VMCLEAR of the current
// VMCS, VMPTRLD of another, VMXOFF).
export function flush(): void {
  if (current == INVALID) return;
  guestmem.copyIn(current, cache, <u32>V.VMCS12_PAGE_SIZE);
  current = INVALID;
}
