// Processor identification from CPUID (SDM Vol. 2A, CPUID).
import * as cpu from "../hw/cpu";
import * as print from "../lib/print";

const regs: usize = memory.data(16); // machine-wide: CPUID identity

export let maxBasicLeaf: u32 = 0; // machine-wide: CPUID identity
export let maxExtLeaf: u32 = 0; // machine-wide: CPUID identity
export let family: u32 = 0; // machine-wide: CPUID identity
export let model: u32 = 0; // machine-wide: CPUID identity
export let stepping: u32 = 0; // machine-wide: CPUID identity
export let leaf1Ecx: u32 = 0; // machine-wide: CPUID identity
export let leaf1Edx: u32 = 0; // machine-wide: CPUID identity
export let physAddrBits: u32 = 36; // machine-wide: CPUID identity
export let hypervisorPresent: bool = false; // machine-wide: CPUID identity
// How deep this hypervisor runs: 0 on the machine itself, 1 as a guest of
// ASHypervisor (its CPUID leaf 40000001H EBX tells its guests their level),
// and so on. Its guests are level + 1: their console lines are marked so.
export let nestingLevel: u32 = 0; // machine-wide: CPUID identity
// A parent that offers the Hyper-V interface (TLFS "Feature and Interface
// Discovery": the interface signature "Hv#1" in 40000001H EAX, whatever the
// vendor string), and its leaves this hypervisor uses (kernel/vmx/evmcs.ts):
// privileges (40000003H EAX), recommendations (40000004H EAX) and nested
// features (4000000AH EAX), 0 where the parent's highest leaf stops short.
export let hvInterface: bool = false; // machine-wide: CPUID identity
export let hvPrivileges: u32 = 0; // machine-wide: CPUID identity
export let hvRecommendations: u32 = 0; // machine-wide: CPUID identity
export let hvNestedFeatures: u32 = 0; // machine-wide: CPUID identity
const HV_INTERFACE_SIGNATURE: u32 = 0x31237648; // "Hv#1"
const vendor: usize = memory.data(13); // machine-wide: CPUID identity
const brand: usize = memory.data(49); // machine-wide: CPUID identity
const hvVendor: usize = memory.data(13); // machine-wide: CPUID identity

export function eax(): u32 { return load<u32>(regs); }
export function ebx(): u32 { return load<u32>(regs, 4); }
export function ecx(): u32 { return load<u32>(regs, 8); }
export function edx(): u32 { return load<u32>(regs, 12); }

export function query(leaf: u32, subleaf: u32 = 0): void {
  cpu.cpuid(leaf, subleaf, regs);
}

// CPUID.1:ECX bit 5: VMX (SDM Vol. 3C 24.6 "Discovering support for VMX").
export const CPUID1_ECX_VMX: u32 = 1 << 5;
export const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

export function identify(): void {
  query(0);
  maxBasicLeaf = eax();
  store<u32>(vendor, ebx());
  store<u32>(vendor, edx(), 4);
  store<u32>(vendor, ecx(), 8);
  query(1);
  const sig = eax();
  leaf1Ecx = ecx();
  leaf1Edx = edx();
  // Display family/model per the CPUID leaf 1 signature rules.
  const baseFamily = (sig >> 8) & 0xf;
  family = baseFamily == 0xf ? baseFamily + ((sig >> 20) & 0xff) : baseFamily;
  model = (sig >> 4) & 0xf;
  if (baseFamily == 0x6 || baseFamily == 0xf) model |= ((sig >> 16) & 0xf) << 4;
  stepping = sig & 0xf;
  hypervisorPresent = (leaf1Ecx & CPUID1_ECX_HYPERVISOR) != 0;
  query(0x80000000);
  maxExtLeaf = eax();
  store<u8>(brand, 0);
  if (maxExtLeaf >= 0x80000004) {
    for (let i: u32 = 0; i < 3; i++) {
      query(0x80000002 + i);
      store<u32>(brand + 16 * i, eax());
      store<u32>(brand + 16 * i + 4, ebx());
      store<u32>(brand + 16 * i + 8, ecx());
      store<u32>(brand + 16 * i + 12, edx());
    }
    store<u8>(brand, 0, 48);
  }
  if (maxExtLeaf >= 0x80000008) {
    query(0x80000008);
    physAddrBits = eax() & 0xff;
  }
  store<u8>(hvVendor, 0);
  if (hypervisorPresent) {
    query(0x40000000);
    const max = eax();
    store<u32>(hvVendor, ebx());
    store<u32>(hvVendor, ecx(), 4);
    store<u32>(hvVendor, edx(), 8);
    // "ASHypervisor": our own parent, at 40000000H, or at 40000100H when
    // it also offers the Hyper-V interface (hyperv=on: "Microsoft Hv" at
    // 40000000H), as other hypervisors that speak Hyper-V move theirs.
    if (!ownLeaves(0x40000000, max)) {
      query(0x40000100);
      ownLeaves(0x40000100, eax());
    }
    hyperV(max);
  }
}

// The Hyper-V leaves at 40000000H (highest leaf max), if that is the
// interface there.
function hyperV(max: u32): void {
  if (max < 0x40000001 || max > 0x400000ff) return;
  query(0x40000001);
  if (eax() != HV_INTERFACE_SIGNATURE) return;
  hvInterface = true;
  if (max >= 0x40000003) {
    query(0x40000003);
    hvPrivileges = eax();
  }
  if (max >= 0x40000004) {
    query(0x40000004);
    hvRecommendations = eax();
  }
  if (max >= 0x4000000a) {
    query(0x4000000a);
    hvNestedFeatures = eax();
  }
}

// Our parent's signature in the last query (leaf `base`, whose EAX said
// `max`): take the nesting level from leaf base + 1.
function ownLeaves(base: u32, max: u32): bool {
  if (ebx() != 0x79485341 || ecx() != 0x76726570 || edx() != 0x726f7369 || max < base + 1 || max > base + 0xff) return false;
  query(base + 1);
  nestingLevel = ebx();
  return true;
}

function cstrlen(p: usize, max: i32): i32 {
  let n = 0;
  while (n < max && load<u8>(p + <usize>n) != 0) n++;
  return n;
}

export function report(): void {
  print.str("hv: cpu: ");
  print.bytes(vendor, 12);
  print.str(" family ");
  print.hex(family);
  print.str(" model ");
  print.hex(model);
  print.str(" stepping ");
  print.dec(stepping);
  print.str(", ");
  print.dec(physAddrBits);
  print.str("-bit physical addresses");
  if (hypervisorPresent) {
    print.str(", under hypervisor \"");
    print.bytes(hvVendor, cstrlen(hvVendor, 12));
    print.str("\"");
  }
  print.nl();
  let b = brand;
  let n = cstrlen(brand, 48);
  while (n > 0 && load<u8>(b) == 0x20) { b++; n--; }
  if (n > 0) {
    print.str("hv: cpu: ");
    print.bytes(b, n);
    print.nl();
  }
}
