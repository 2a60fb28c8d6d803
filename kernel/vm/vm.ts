// A guest: what it has once, whatever its number of vCPUs (design.md, "The
// state model"): its RAM, the EPT that maps it, its configuration (the
// guest= entry it was made from), how it ended, and its vCPUs. Made when
// the guest is set up.
import * as config from "./config";
import { Vcpu } from "./vcpu";
import { RamSnapshot } from "../snapshot/ram";
import { REASONS } from "./exits";
import { Profile } from "./profile";
import * as devices from "../devices/ports";
import { Ports } from "../devices/ports";
import { Uart } from "../devices/uart";
import { FwCfg } from "../devices/fwcfg";
import { Ioapic } from "../devices/ioapic";
import { Entry } from "../guest/loader";
import { RunQueue } from "./runqueue";

export const MAX_VCPUS: i32 = config.MAX_VCPUS;

@unmanaged export class Vm {
  guest: i32 = 0; // index of its guest= entry (config.*[guest])
  ramHpa: u64 = 0; // host-physical base of guest RAM (guest-physical 0)
  ramBytes: u64 = 0;
  eptRoot: u64 = 0; // PML4 of the EPT that maps the RAM
  // APIC virtualization runs its vCPUs' APICs (vm/apicv.ts), with this
  // APIC-access page mapped at FEE00000H.
  apicv: bool = false;
  apicAccessPage: u64 = 0;
  apicAccessMapped: bool = false; // by the EPT at FEE00000H (until an APIC enters x2APIC mode)
  // Its RAM snapshot, when it has one (snapshot/ram.ts; vm/guestmem.ts
  // records the hypervisor's writes in it).
  ramSnapshot: RamSnapshot | null = null;
  // How the guest ended (config.OUTCOME_*) and its exit code when it ended
  // itself.
  outcome: i32 = config.OUTCOME_STOPPED;
  exitCode: u32 = 0;
  vcpuCount: i32 = 0;
  vcpu0: Vcpu = changetype<Vcpu>(0);
  // With several vCPUs: the processors they run on (vm/runqueue.ts: one
  // queue per processor, queueCount of them); the queues whose vCPUs all
  // sleep with nothing to wake them; the kernel threads started for the
  // queues that have not ended; set when the guest has ended and every
  // thread is to stop at its vCPU's next exit; switches made (sched.ts).
  queueCount: i32 = 0;
  queuesAsleep: i32 = 0;
  threadsLive: i32 = 0;
  ending: bool = false;
  switches: u64 = 0;
  // Statistics of the guest's run.
  migrations: u32 = 0; // moves of a vCPU to another processor (migrate=N)
  hostInterrupts: u32 = 0; // the host's interrupts that arrived while it ran
  hostNmis: u32 = 0; // the host's NMIs likewise
  // snapshot=N (snapshot/cycle.ts): vCPU snapshots made and restored.
  snapshots: u32 = 0;
  // Of those: taken in VMX operation, with a current vmcs12 not yet
  // launched (between L1's VMPTRLD/VMCLEAR and VMLAUNCH), while L2 ran, and
  // with L1's VMLAUNCH/VMRESUME emulated but L2 not yet entered, and with
  // an enlightened VMCS in use (the EVMCS flag: the tests show that
  // snapshot=N lands in each of these places).
  snapshotsInVmx: u32 = 0;
  snapshotsBeforeLaunch: u32 = 0;
  snapshotsInL2: u32 = 0;
  snapshotsRunPending: u32 = 0;
  snapshotsWithEvmcs: u32 = 0;
  snapshotTicks: u64 = 0; // host ticks spent in them (L1's TSC stood still)
  // The guest's own snapshot (the snapshot hypercalls, snapshot/hypercall.ts):
  // the blob's size (0: none taken) and the restores of it (the RAM's part
  // is ramSnapshot, snapshot/vmram.ts).
  snapBytes: u64 = 0;
  snapRestores: u64 = 0;
  // The partition-wide Hyper-V MSRs of a guest with hyperv=on (TLFS
  // "Reporting the Guest OS Identity", "Establishing the Hypercall
  // Interface": shared by all virtual processors; vm/exit/hyperv.ts).
  hvOffered: bool = false; // hyperv=on (exit/hyperv.ts)
  hvGuestOsId: u64 = 0; // HV_X64_MSR_GUEST_OS_ID
  hvHypercall: u64 = 0; // HV_X64_MSR_HYPERCALL
  hvTscInvariantControl: u64 = 0; // HV_X64_MSR_TSC_INVARIANT_CONTROL
  hvHypercalls: u64 = 0; // Hyper-V hypercalls made (statistics)
  // How its boot vCPU starts, as the loader returned it (rebuildable:
  // loading the kernel again gives the same). Made with the object.
  entry: Entry = changetype<Entry>(0);

  // Exits handled by the exit table (exits.ts), per basic exit reason:
  // REASONS u64 counters, after the fields.
  @inline get exitCounts(): usize {
    return changetype<usize>(this) + COUNTS_AT;
  }
  // Where its CPUID round trips' ticks go (profiling build).
  @inline get profile(): Profile {
    return changetype<Profile>(changetype<usize>(this) + PROFILE_AT);
  }
  // Its devices, in the device area after the counters and profile
  // (layout: kernel/devices/ports.ts); create() resets them.
  @inline get uart(): Uart {
    return changetype<Uart>(changetype<usize>(this) + DEVICES_AT + devices.UART_AT);
  }
  @inline get ports(): Ports {
    return changetype<Ports>(changetype<usize>(this) + DEVICES_AT + devices.PORTS_AT);
  }
  @inline get fwcfg(): FwCfg {
    return changetype<FwCfg>(changetype<usize>(this) + DEVICES_AT + devices.FWCFG_AT);
  }
  // vCPU i (0 <= i < vcpuCount): vcpu0, or the table after the devices.
  vcpu(i: i32): Vcpu {
    if (i == 0) return this.vcpu0;
    return changetype<Vcpu>(load<usize>(changetype<usize>(this) + VCPUS_AT + (<usize>i << alignof<usize>())));
  }
  setVcpu(i: i32, v: Vcpu): void {
    if (i == 0) this.vcpu0 = v;
    store<usize>(changetype<usize>(this) + VCPUS_AT + (<usize>i << alignof<usize>()), changetype<usize>(v));
  }
  // Run queue q (0 <= q < queueCount; vm/runqueue.ts).
  queue(q: i32): RunQueue {
    return changetype<RunQueue>(changetype<usize>(this) + QUEUES_AT + <usize>q * QUEUE_BYTES);
  }
  @inline get ioapic(): Ioapic {
    return changetype<Ioapic>(changetype<usize>(this) + DEVICES_AT + devices.IOAPIC_AT);
  }
}

const COUNTS_AT: usize = (offsetof<Vm>() + 7) & ~(<usize>7);
const PROFILE_AT: usize = COUNTS_AT + (<usize>REASONS << 3);
const DEVICES_AT: usize = (PROFILE_AT + offsetof<Profile>() + 7) & ~(<usize>7);
const VCPUS_AT: usize = (DEVICES_AT + devices.AREA_BYTES + 7) & ~(<usize>7);
const QUEUE_BYTES: usize = (offsetof<RunQueue>() + 7) & ~(<usize>7);
const QUEUES_AT: usize = VCPUS_AT + (<usize>MAX_VCPUS << alignof<usize>());
const VM_BYTES: usize = QUEUES_AT + <usize>MAX_VCPUS * QUEUE_BYTES;

let theVm: Vm | null = null; // machine-wide: the one Vm object, reused (guests run one after another)

// The VM of the guest running now, or of the last one (the tests' hooks).
export function running(): Vm | null {
  return theVm;
}

// The VM for guest= entry g. Guests run one after another, so one object
// serves them all; everything in it is set here.
export function create(g: i32): Vm {
  let vm = theVm;
  if (vm == null) {
    vm = changetype<Vm>(heap.alloc(VM_BYTES));
    vm.entry = new Entry();
    theVm = vm;
  }
  const entry = vm.entry;
  memory.fill(changetype<usize>(vm), 0, VM_BYTES);
  vm.entry = entry;
  vm.guest = g;
  vm.outcome = config.OUTCOME_STOPPED;
  vm.profile.reset();
  devices.reset(vm);
  return vm;
}
