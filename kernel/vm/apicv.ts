// APIC virtualization for a guest's own local APICs (SDM Vol. 3C ch. 30,
// "APIC Virtualization and Virtual Interrupts"): with apicv=on (config.ts)
// and a processor that has "use TPR shadow", "virtualize APIC accesses",
// "APIC-register virtualization" and "virtual-interrupt delivery", vmcs01
// runs L1 with all four, so that L1's TPR writes, its register reads, the
// EOIs of edge-triggered interrupts, its self-IPIs and the delivery of its
// interrupts cost no VM exit:
//   - each vCPU has a virtual-APIC page (30.1) holding its register image,
//     which apic/lapic.ts keeps in step with its model (pull/push there);
//   - the VM has one APIC-access page (30.4), mapped by the EPT at the
//     APIC's guest-physical page FEE00000H and never read or written by
//     anyone: accesses to it are APIC accesses;
//   - interrupts the model accepts (I/O APIC, IPIs, the timer) go into vIRR;
//     before the vCPU's next entry as L1 the guest interrupt status (RVI,
//     SVI; 30.1.1) is recomputed, and the processor delivers (30.2);
//   - what still exits: reads of the current count and reserved offsets
//     (APIC access, 44), writes of the other registers (APIC write, 56, after
//     the processor stored the value in the page), and the EOIs of the
//     vectors in the EOI-exit bitmap (virtualized EOI, 45): exactly the
//     vectors the I/O APIC sends this vCPU level-triggered, whose EOI the
//     I/O APIC must see (remote IRR).
// The EOI-exit bitmap is computed when the I/O APIC's redirection table or
// the APIC's destination registers change ("scan", for every vCPU at once:
// the set is what decides at once) and loaded into vmcs01 only before the
// vCPU's next entry as L1 — never into vmcs02 while the vCPU runs L2, whose
// bitmap is vmcs12's (nested/vmcs02.ts; seeds/001).
// Without the controls (apicv=off, or a processor that lacks one) the
// software path of irq.ts injects every interrupt and every APIC access exits.
import * as cpu from "../hw/cpu";
import * as mem from "../hw/mem";
import * as vmx from "../hw/vmx";
import * as V from "../arch/vmx";
import * as caps from "../vmx/caps";
import * as pages from "../mm/pages";
import * as print from "../lib/print";
import * as ept from "../ept/ept";
import * as lapic from "../apic/lapic";
import * as ioapic from "../devices/ioapic";
import * as config from "./config";
import * as vmcs01 from "./vmcs01";
import * as mmio from "./mmio";
import * as irq from "./irq";
import { stop } from "./exits";
import { Vm } from "./vm";
import { Vcpu } from "./vcpu";

export const PROC2: u32 = V.PROC2_VIRTUALIZE_APIC_ACCESSES | V.PROC2_APIC_REGISTER_VIRTUALIZATION |
  V.PROC2_VIRTUAL_INTERRUPT_DELIVERY;

// Does the processor allow all four controls (allowed-1 settings, A.3)?
export function available(): bool {
  return (<u32>(caps.proc >> 32) & V.PROC_USE_TPR_SHADOW) != 0 &&
    (<u32>(caps.proc2 >> 32) & PROC2) == PROC2;
}

// At the start of guest g: whether its APICs run virtualized (vm.apicv),
// with the VM's APIC-access page mapped at FEE00000H in its EPT. False only
// when out of memory.
export function startVm(vm: Vm): bool {
  vm.apicv = false;
  if (!config.apicv[vm.guest]) return true;
  if (!available()) {
    print.say("apicv: this processor lacks TPR shadow, virtualized APIC accesses, APIC-register virtualization or virtual-interrupt delivery: the software APIC runs this guest");
    return true;
  }
  const page = pages.alloc(1);
  if (page == 0) {
    print.say("apicv: out of memory for the APIC-access page");
    return false;
  }
  mem.zero(page, 4096);
  // Read/write (an instruction fetch from the page is an APIC access too,
  // 30.4, and exits); the memory type does not matter: nothing reaches it.
  if (!ept.map(vm.eptRoot, lapic.BASE_ADDRESS, page, 4096, ept.EPT_RWX)) {
    pages.free(page, 1);
    print.say("apicv: out of memory for the EPT table of the APIC-access page");
    return false;
  }
  vm.apicAccessPage = page;
  vm.apicAccessMapped = true;
  vm.apicv = true;
  return true;
}

// At the end of the guest: the page goes back (the EPT goes with the VM).
export function endVm(vm: Vm): void {
  if (vm.apicAccessPage != 0) pages.free(vm.apicAccessPage, 1);
  vm.apicAccessPage = 0;
  vm.apicAccessMapped = false;
  vm.apicv = false;
}

// vmcs01 (current) was just built for vcpu with PROC2 and TPR shadow
// (vmcs01.create): its pages and the interrupt status. False when out of
// memory.
export function startVcpu(vcpu: Vcpu): bool {
  if (vcpu.vapicPage == 0) {
    vcpu.vapicPage = pages.alloc(1);
    if (vcpu.vapicPage == 0) {
      print.say("apicv: out of memory for a virtual-APIC page");
      return false;
    }
    // Zeroed once: the push below writes the register image (000H-3FFH),
    // all the processor uses without virtualize x2APIC mode (30.1).
    mem.zero(vcpu.vapicPage, 4096);
  }
  vmx.vmwrite(V.VIRTUAL_APIC_ADDRESS, vcpu.vapicPage);
  vmx.vmwrite(V.APIC_ACCESS_ADDRESS, vcpu.vm.apicAccessPage);
  // With virtual-interrupt delivery the TPR threshold is not used (30.1.2).
  vmx.vmwrite(V.TPR_THRESHOLD, 0);
  vcpu.apic.useVirtualApicPage(vcpu.vapicPage);
  vmx.vmwrite(V.GUEST_INTERRUPT_STATUS, vcpu.apic.guestInterruptStatus());
  const s = vcpu.irq;
  s.vapic = true;
  s.quiet = false;
  s.eoiExit0 = 0;
  s.eoiExit1 = 0;
  s.eoiExit2 = 0;
  s.eoiExit3 = 0;
  s.eoiGuard = 0;
  writeEoiExitBitmap(vcpu);
  // A restored vCPU (snapshot/restore.ts) meets an I/O APIC already set up.
  scanVcpu(vcpu);
  return true;
}

// vmcs01's EOI-exit bitmap: the I/O APIC's level-triggered vectors (scan)
// and the guard's (below).
function writeEoiExitBitmap(vcpu: Vcpu): void {
  const s = vcpu.irq;
  const g = s.eoiGuard;
  vmx.vmwrite(V.EOI_EXIT_BITMAP_0, s.eoiExit0 | guardBits(g, 0));
  vmx.vmwrite(V.EOI_EXIT_BITMAP_1, s.eoiExit1 | guardBits(g, 1));
  vmx.vmwrite(V.EOI_EXIT_BITMAP_2, s.eoiExit2 | guardBits(g, 2));
  vmx.vmwrite(V.EOI_EXIT_BITMAP_3, s.eoiExit3 | guardBits(g, 3));
  s.eoiExitLoad = false;
}

// The bit of bitmap word `word` (vectors 64*word to 64*word+63) for the
// guard's vector g (0 for none: vectors 0-15 are never delivered as
// interrupts, 11.5.2).
@inline function guardBits(g: u32, word: u32): u64 {
  return g != 0 && (g >> 6) == word ? <u64>1 << (g & 63) : 0;
}

// ---- the guard: no virtual interrupt pending while IF = 0 -----------------
// SDM Vol. 3C 30.2.2: a pending virtual interrupt is delivered only when
// RFLAGS.IF is 1 (and nothing blocks it). Bochs 2.7 does not keep this when
// a physical interrupt arrives while the guest runs with IF = 0 and a
// virtual interrupt is pending (RVI above VPPR): its interrupt acknowledge
// (cpu/event.cc, InterruptAcknowledge) delivers the virtual interrupt into
// the guest instead of making the external-interrupt VM exit. A VM whose
// vCPUs run on several processors gets such physical interrupts while it
// runs — the kicks with which another processor's vCPU posts it an IPI or
// an I/O APIC message (vm/ipi.ts) — and Linux deadlocked on its runqueue
// lock when an IPI reached it that way inside the handler of another (the
// issue-12 hang, tools/stress/linux-smp.ts). So for such a VM a vCPU never
// runs where a virtual interrupt could become pending while IF = 0 without
// an exit first:
//   - entering with IF = 0 and a vIRR vector its PPR lets through: interrupt-
//     window exiting, with which no virtual interrupt is pending (30.2.1);
//     the window exit comes when IF is 1, and the next entry lets the
//     processor deliver;
//   - a vIRR vector that waits for an EOI (behind the vISR one, or behind the
//     vector delivered first): that EOI exits (EOI-exit bitmap, 30.1.4),
//     so the entry after it decides as above.
// Both are SDM behaviour any VMM may ask for; on a processor that keeps
// 30.2.2 they only cost exits, and only when interrupts queue up. (Not
// covered: a TPR lowered while IF = 0, which Linux does not do; virtualized
// x2APIC self-IPIs sent while IF = 0; L2 running on vmcs02 with vmcs12's
// virtual-interrupt delivery.) Returns whether the entry needs the
// interrupt window.
function guard(vcpu: Vcpu): bool {
  const status = <u32>vmx.vmread(V.GUEST_INTERRUPT_STATUS);
  const rvi = status & 0xff;
  let want: u32 = 0;
  let wait = false;
  if (rvi != 0) {
    const svi = (status >> 8) & 0xff;
    const page = vcpu.vapicPage;
    // VPPR's priority class (30.1.3): VTPR's or SVI's, the higher.
    const tprClass = mem.read32(page + lapic.REG_TPR) & 0xf0;
    const pprClass = max(tprClass, svi & 0xf0);
    if ((rvi & 0xf0) > pprClass) {
      wait = (vmx.vmread(V.GUEST_RFLAGS) & V.X86_RFLAGS_IF) == 0;
      // (The model's IRR, not the page's: it holds at least vIRR's vectors.)
      if (vcpu.apic.irrHasOtherThan(rvi)) want = rvi;
    } else {
      want = svi;
    }
  }
  const s = vcpu.irq;
  if (want != s.eoiGuard) {
    s.eoiGuard = want;
    writeEoiExitBitmap(vcpu);
  }
  return wait;
}

// ---- the EOI-exit bitmap: which EOIs the I/O APIC must see ---------------
// The vectors of the redirection entries that are level-triggered and
// name vcpu's APIC, whether masked or not (an entry may be unmasked by a
// write that is not a scan's business to foresee; a masked entry's vector
// costs an exit per EOI at most).
function scanVcpu(vcpu: Vcpu): void {
  const io = vcpu.vm.ioapic;
  let b0: u64 = 0, b1: u64 = 0, b2: u64 = 0, b3: u64 = 0;
  for (let i: u32 = 0; i < ioapic.ENTRIES; i++) {
    const e = io.entry(i);
    if ((e & ioapic.RTE_LEVEL) == 0) continue;
    const mode = <u32>(e >> ioapic.RTE_DELIVERY_MODE_SHIFT) & 7;
    if (mode != ioapic.MODE_FIXED && mode != ioapic.MODE_LOWEST_PRIORITY) continue;
    if (!vcpu.apic.matchesDestination(<u32>(e >> ioapic.RTE_DEST_SHIFT), (e & ioapic.RTE_DEST_LOGICAL) != 0)) continue;
    const v = <u32>(e & ioapic.RTE_VECTOR);
    const bit: u64 = <u64>1 << (v & 63);
    if (v < 64) b0 |= bit;
    else if (v < 128) b1 |= bit;
    else if (v < 192) b2 |= bit;
    else b3 |= bit;
  }
  const s = vcpu.irq;
  if (b0 == s.eoiExit0 && b1 == s.eoiExit1 && b2 == s.eoiExit2 && b3 == s.eoiExit3) return;
  s.eoiExit0 = b0;
  s.eoiExit1 = b1;
  s.eoiExit2 = b2;
  s.eoiExit3 = b3;
  // Loaded into vmcs01 before the vCPU's next entry as L1 (update), which
  // may be much later if it runs L2 now: never into the current VMCS here.
  s.eoiExitLoad = true;
  s.quiet = false;
}

// The redirection table or an APIC's destination changed: every vCPU's set
// at once (vm/mmio.ts after an I/O APIC write, the APIC-write exit below).
export function scan(vm: Vm): void {
  if (!vm.apicv) return;
  for (let i = 0; i < vm.vcpuCount; i++) scanVcpu(vm.vcpu(i));
}

// Before vcpu's entry as L1 (vmcs01 current; irq.deliver): a new EOI-exit
// bitmap, and RVI/SVI after the model changed vIRR or vISR.
export function update(vcpu: Vcpu): void {
  const s = vcpu.irq;
  if (s.eoiExitLoad) writeEoiExitBitmap(vcpu);
  const apic = vcpu.apic;
  if (apic.statusStale) vmx.vmwrite(V.GUEST_INTERRUPT_STATUS, apic.guestInterruptStatus());
}

// Before vcpu's entry as L1 with its APIC enabled: the APIC timer (its
// interrupt into vIRR when due), the bitmap and RVI/SVI, and the
// preemption timer for the APIC timer's next deadline. The processor
// delivers what vIRR holds (30.2.1): no interrupt window is needed.
// Returns whether the entry needs the interrupt window (the guard above,
// for a VM whose vCPUs run on several processors).
export function deliver(vcpu: Vcpu, now: u64): bool {
  const apic = vcpu.apic;
  const deadline = apic.nextTimerDeadline();
  if (deadline <= now) apic.pendingVector(now);
  update(vcpu);
  vcpu.irq.setPreemption(apic.nextTimerDeadline(), now);
  return vcpu.vm.queueCount > 1 && guard(vcpu);
}

// IA32_APIC_BASE was written (exit/msr.ts, an exit of L1's: vmcs01 is
// current); ok: the write was accepted. vmcs01 follows the APIC's mode.
export function apicBaseWritten(vcpu: Vcpu, ok: bool): bool {
  if (ok) modeChanged(vcpu);
  return ok;
}

// vmcs01 (current) for the mode of vcpu's APIC (after IA32_APIC_BASE was
// written, and after a restore: snapshot/restore.ts). In x2APIC mode the
// APIC page decodes nothing (SDM Vol. 3A 11.12): vmcs01 stops virtualizing
// APIC accesses, which the processor would serve from the virtual-APIC
// page, and the VM's EPT stops mapping the page, so that every access
// comes to the model (vm/mmio.ts), as without APIC virtualization; the
// vCPUs still in xAPIC mode are then served that way too. (The page stays
// unmapped for the rest of the guest.) Instead, where the processor has
// it, "virtualize x2APIC mode" (30.5) with vmcs01.msrBitmapX2: the guest's
// TPR reads and writes, EOIs and self-IPIs through the x2APIC MSRs are
// virtualized on the virtual-APIC page as the xAPIC ones were (with the
// EOI-exit bitmap as before); its other x2APIC MSRs exit to the model.
// Outside x2APIC mode (the APIC disabled from it) the control is 0 again
// and every x2APIC MSR exits (the model answers #GP).
export function modeChanged(vcpu: Vcpu): void {
  if (!vcpu.vm.apicv) return;
  const x2 = vcpu.apic.x2apicMode();
  const p2 = <u32>vmx.vmread(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL);
  let want = p2 & ~V.PROC2_VIRTUALIZE_X2APIC_MODE;
  if (x2) {
    want &= ~V.PROC2_VIRTUALIZE_APIC_ACCESSES;
    if (x2apicAvailable()) want |= V.PROC2_VIRTUALIZE_X2APIC_MODE;
    const vm = vcpu.vm;
    if (vm.apicAccessMapped) {
      ept.map(vm.eptRoot, lapic.BASE_ADDRESS, 0, 4096, 0, 0);
      vm.apicAccessMapped = false;
      if ((caps.eptVpidCap & V.EPT_VPID_CAP_INVEPT_ALL_CONTEXT) != 0) vmx.invept(V.INVEPT_TYPE_ALL_CONTEXT, 0);
    }
  }
  if (want != p2) {
    vmcs01.writeControl(V.SECONDARY_PROC_BASED_VM_EXEC_CONTROL, want);
  }
  // (Written with the control: the bitmap that passes x2APIC MSRs through
  // is in vmcs01 only while the processor virtualizes them.)
  vmx.vmwrite(V.MSR_BITMAPS, (want & V.PROC2_VIRTUALIZE_X2APIC_MODE) != 0 ? vmcs01.msrBitmapX2 : vmcs01.msrBitmap);
}

// Does the processor allow "virtualize x2APIC mode" (allowed-1, A.3.3)?
function x2apicAvailable(): bool {
  return (<u32>(caps.proc2 >> 32) & V.PROC2_VIRTUALIZE_X2APIC_MODE) != 0;
}

// ---- exits ---------------------------------------------------------------
// APIC access (44; 28.2.1 Table 28-6: bits 11:0 the offset, 15:12 the access
// type): a linear read or write the processor does not virtualize (the
// current count, reserved offsets, accesses that are not 32-bit aligned
// ones); fault-like, so the instruction is emulated on the model (mmio.ts).
// Other access types (an instruction fetch from the APIC page, an access
// during event delivery, a guest-physical access by the page walk) are not
// emulated: reported, the guest stopped.
export function handleApicAccess(vcpu: Vcpu, reason: u32): i32 {
  const q = vmx.vmread(V.EXIT_QUALIFICATION);
  const type = <u32>(q >> 12) & 0xf;
  const gpa = lapic.BASE_ADDRESS + (q & 0xfff);
  if (type <= 1) {
    const r = mmio.access(vcpu, gpa);
    if (r != mmio.NOT_A_DEVICE) return r;
  }
  print.str("hv: guest: APIC access of type ");
  print.dec(type);
  print.str(" at ");
  print.hex(gpa);
  print.str(" (an instruction fetch, or an access while delivering an event) is not emulated");
  print.nl();
  return stop(vcpu, config.OUTCOME_STOPPED);
}

// APIC write (56): trap-like, after the processor stored the written value
// at the offset (30.4.3.2): the model takes it (masking what the register
// cannot hold; the page gets the model's value back) and acts on it.
export function handleApicWrite(vcpu: Vcpu, reason: u32): i32 {
  const off = <u32>vmx.vmread(V.EXIT_QUALIFICATION) & 0xff0;
  const value = mem.read32(vcpu.vapicPage + off);
  vcpu.apic.write(off, value, cpu.rdtsc());
  // A new APIC ID or logical destination changes which redirection entries
  // name this APIC.
  if (off == lapic.REG_ID || off == lapic.REG_LDR || off == lapic.REG_DFR) scan(vcpu.vm);
  return irq.apicWritten(vcpu);
}

// Virtualized EOI (45): trap-like, the processor has done the EOI on the
// page (30.1.4); the vector is in the qualification. A level-triggered
// interrupt's EOI goes to the I/O APIC.
export function handleVirtualizedEoi(vcpu: Vcpu, reason: u32): i32 {
  vcpu.apic.virtualEoi(<u32>vmx.vmread(V.EXIT_QUALIFICATION) & 0xff);
  return irq.apicWritten(vcpu);
}
