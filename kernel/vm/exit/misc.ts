// The remaining exit handlers: HLT, INVD/WBINVD, XSETBV, RDTSC(P), triple
// fault, EPT violation/misconfiguration, external interrupts and NMIs, and
// the VMX and SMX instructions a guest without nested VMX may not use.
import * as cpu from "../../hw/cpu";
import * as vmx from "../../hw/vmx";
import * as V from "../../arch/vmx";
import * as print from "../../lib/print";
import * as R from "../vcpu";
import { Vcpu } from "../vcpu";
import * as events from "../events";
import * as config from "../config";
import * as guestmem from "../guestmem";
import * as irq from "../irq";
import * as xstate from "../xstate";
import * as mmio from "../mmio";
import { RESUME, stop } from "../exits";


// INVD (13) exits unconditionally; WBINVD (54) with WBINVD exiting. Both are
// done as WBINVD: dropping the guest's dirty lines (INVD) could lose
// hypervisor data sharing those lines.
export function handleWbinvd(vcpu: Vcpu, reason: u32): i32 {
  cpu.wbinvd();
  events.skipInstruction();
  return RESUME;
}

// XSETBV (55; SDM Vol. 2C XSETBV): #GP unless ECX = 0, bit 0 set, only
// supported bits (CPUID.(EAX=0DH,ECX=0):EDX:EAX), AVX (2) only with SSE
// (1), AVX-512 (5-7) all together and only with AVX.
export function handleXsetbv(vcpu: Vcpu, reason: u32): i32 {
  const idx = <u32>vcpu.reg(R.RCX);
  const v = (vcpu.reg(R.RDX) << 32) | (vcpu.reg(R.RAX) & 0xffffffff);
  const supported = xstate.offered;
  let ok = idx == 0 && (v & 1) != 0 && (v & ~supported) == 0;
  if ((v & 4) != 0 && (v & 2) == 0) ok = false;
  const avx512 = v & 0xe0;
  if (avx512 != 0 && (avx512 != 0xe0 || (v & 4) == 0)) ok = false;
  if (!ok) {
    events.injectGP();
    return RESUME;
  }
  xstate.setXcr0(vcpu, v);
  events.skipInstruction();
  return RESUME;
}

// RDTSC (16) / RDTSCP (51): only when intercepted; TSC + offset.
export function handleRdtsc(vcpu: Vcpu, reason: u32): i32 {
  const t = cpu.rdtsc() + vmx.vmread(V.TSC_OFFSET);
  vcpu.setReg(R.RAX, t & 0xffffffff);
  vcpu.setReg(R.RDX, t >> 32);
  if (reason == V.EXIT_REASON_RDTSCP) vcpu.setReg(R.RCX, cpu.rdmsr(V.MSR_IA32_TSC_AUX) & 0xffffffff);
  events.skipInstruction();
  return RESUME;
}

// VMX instructions (reasons 19-27, 50, 53, 59) and GETSEC (11) exit
// unconditionally in VMX non-root operation; without nested VMX the guest
// sees #UD, as on a processor without VMX/SMX (CPUID hides both).
export function handleUD(vcpu: Vcpu, reason: u32): i32 {
  events.injectUD();
  return RESUME;
}

function dumpRegisters(vcpu: Vcpu): void {
  print.str("hv: guest regs: rip=");
  print.hex(vmx.vmread(V.GUEST_RIP));
  print.str(" rsp=");
  print.hex(vmx.vmread(V.GUEST_RSP));
  print.str(" rflags=");
  print.hex(vmx.vmread(V.GUEST_RFLAGS));
  print.str(" cr0=");
  print.hex(vmx.vmread(V.CR0_READ_SHADOW));
  print.str(" cr3=");
  print.hex(vmx.vmread(V.GUEST_CR3));
  print.str(" cr4=");
  print.hex(vmx.vmread(V.CR4_READ_SHADOW));
  print.nl();
  print.str("hv: guest regs: rax=");
  print.hex(vcpu.reg(R.RAX));
  print.str(" rbx=");
  print.hex(vcpu.reg(R.RBX));
  print.str(" rcx=");
  print.hex(vcpu.reg(R.RCX));
  print.str(" rdx=");
  print.hex(vcpu.reg(R.RDX));
  print.str(" rsi=");
  print.hex(vcpu.reg(R.RSI));
  print.str(" rdi=");
  print.hex(vcpu.reg(R.RDI));
  print.str(" rbp=");
  print.hex(vcpu.reg(R.RBP));
  print.nl();
  print.str("hv: guest regs: cs=");
  print.hex(vmx.vmread(V.GUEST_CS_SELECTOR));
  print.str(" ss=");
  print.hex(vmx.vmread(V.GUEST_SS_SELECTOR));
  print.str(" gdtr=");
  print.hex(vmx.vmread(V.GUEST_GDTR_BASE));
  print.str("/");
  print.hex(vmx.vmread(V.GUEST_GDTR_LIMIT));
  print.str(" idtr=");
  print.hex(vmx.vmread(V.GUEST_IDTR_BASE));
  print.str("/");
  print.hex(vmx.vmread(V.GUEST_IDTR_LIMIT));
  print.str(" efer=");
  print.hex(vmx.vmread(V.GUEST_IA32_EFER));
  print.nl();
}

// Triple fault (2): the guest would shut down; the VM stops with a dump.
export function handleTripleFault(vcpu: Vcpu, reason: u32): i32 {
  print.say("guest: triple fault");
  dumpRegisters(vcpu);
  return stop(vcpu, config.OUTCOME_TRIPLE_FAULT);
}

// HLT (12). Without a pending interrupt source, a halt with interrupts
// disabled (RFLAGS.IF = 0) can never end: the VM stops.
export function handleHlt(vcpu: Vcpu, reason: u32): i32 {
  const ifSet = (vmx.vmread(V.GUEST_RFLAGS) & (1 << 9)) != 0;
  if (!ifSet) {
    print.say("guest: halted with interrupts disabled and nothing pending: halted forever");
    dumpRegisters(vcpu);
    return stop(vcpu, config.OUTCOME_HALT);
  }
  if (irq.haltUntilInterrupt(vcpu)) {
    events.skipInstruction();
    return RESUME;
  }
  print.say("guest: halted with no interrupt source that could wake it: halted forever");
  return stop(vcpu, config.OUTCOME_HALT);
}

// EPT violation (48; qualification 28.2.1 Table 28-7): the guest touched
// guest-physical memory that is not its RAM, or wrote a page of RAM that a
// snapshot write-protects. Also L2's, when vmcs12 does
// not enable EPT: L2-physical addresses are L1-physical ones then.
const Q_NMI_UNBLOCKING: u64 = 1 << 12; // exit qualification (28.2.1 Table 28-7)
export function handleEptViolation(vcpu: Vcpu, reason: u32): i32 {
  const q = vmx.vmread(V.EXIT_QUALIFICATION);
  const gpa = vmx.vmread(V.GUEST_PHYSICAL_ADDRESS);
  // A write to RAM that a snapshot's write protection stopped: recorded and
  // made writable (snapshot/ram.ts); the instruction runs again.
  const s = guestmem.snapshot;
  if ((q & 2) != 0 && s !== null && s.writeFault(gpa)) {
    // An IRET that unblocked NMIs before the fault is executed again: NMIs
    // blocked again first (SDM Vol. 3C 28.2.3).
    if ((q & Q_NMI_UNBLOCKING) != 0) {
      const b = vmx.vmread(V.GUEST_INTERRUPTIBILITY_STATE);
      vmx.vmwrite(V.GUEST_INTERRUPTIBILITY_STATE, b | V.INTERRUPTIBILITY_BLOCKING_BY_NMI);
    }
    return RESUME;
  }
  // A device's access (the APIC page) is emulated; anything else stops.
  const d = mmio.access(vcpu, gpa);
  if (d != mmio.NOT_A_DEVICE) return d;
  print.str("hv: guest: ");
  print.str((q & 2) != 0 ? "write to" : (q & 4) != 0 ? "instruction fetch from" : "read of");
  print.str(" unbacked guest-physical address ");
  print.hex(gpa);
  print.str(guestmem.isRam(gpa, 1) ? " (inside RAM: a hypervisor bug)" : " (outside its RAM)");
  if ((q & (1 << 7)) != 0) {
    print.str(", linear address ");
    print.hex(vmx.vmread(V.GUEST_LINEAR_ADDRESS));
  }
  print.nl();
  dumpRegisters(vcpu);
  return stop(vcpu, config.OUTCOME_EPT_VIOLATION);
}

// EPT misconfiguration (49): our EPT tables are wrong. Never the guest's fault.
export function handleEptMisconfig(vcpu: Vcpu, reason: u32): i32 {
  print.str("hv: guest: EPT misconfiguration at guest-physical ");
  print.hex(vmx.vmread(V.GUEST_PHYSICAL_ADDRESS));
  print.str(": a hypervisor bug");
  print.nl();
  return stop(vcpu, config.OUTCOME_STOPPED);
}

// External interrupt (1): with "acknowledge interrupt on exit" the vector
// is in the exit interruption information (27.2.2). The host does not use
// interrupts while a guest runs; one arriving is counted and dropped.
export function handleExternalInterrupt(vcpu: Vcpu, reason: u32): i32 {
  vcpu.vm.hostInterrupts++;
  // Acknowledged by the exit, so in service at the local APIC: without an
  // EOI it would block every interrupt of equal or lower priority.
  cpu.eoi();
  return RESUME;
}

// Exception or NMI (0): the exception bitmap is 0, so only NMIs exit here
// (NMI exiting). An NMI belongs to the host; there is no NMI source the
// hypervisor uses, so it is counted.
export function handleExceptionOrNmi(vcpu: Vcpu, reason: u32): i32 {
  const info = <u32>vmx.vmread(V.VM_EXIT_INTERRUPTION_INFO);
  const type = (info & V.INTR_INFO_TYPE_MASK) >> V.INTR_INFO_TYPE_SHIFT;
  if (type == V.INTR_TYPE_NMI) {
    vcpu.vm.hostNmis++;
    return RESUME;
  }
  print.str("hv: guest: unexpected exception exit, interruption info ");
  print.hex(info);
  print.nl();
  return stop(vcpu, config.OUTCOME_STOPPED);
}

// Task switch (9): a hardware task switch in the guest; not emulated.
export function handleTaskSwitch(vcpu: Vcpu, reason: u32): i32 {
  print.say("guest: hardware task switches are not supported");
  dumpRegisters(vcpu);
  return stop(vcpu, config.OUTCOME_STOPPED);
}

// VM-entry failures (33, 34, 41 with bit 31): the guest state or MSR list
// the hypervisor built is invalid.
export function reportEntryFailure(vcpu: Vcpu, reason: u32): void {
  print.str("hv: guest: VM entry failed: ");
  print.str(V.exitReasonName(reason & 0xffff));
  print.str(", qualification ");
  print.hex(vmx.vmread(V.EXIT_QUALIFICATION));
  print.nl();
  dumpRegisters(vcpu);
}
