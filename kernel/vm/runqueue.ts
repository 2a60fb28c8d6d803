// Which processor runs which vCPU of a VM (issue 12; docs/guest-interface.md
// "Several vCPUs"). A VM with vcpus=N on a machine with P processors gets
// Q = min(N, P) run queues with spread=on (the default), one with
// spread=off or on one processor: vCPU i belongs to queue i mod Q, and
// queue q runs on processor q. Each queue's processor runs its own kernel
// thread (the boot processor's for queue 0, one started with cpu.spawn
// for each other: vm/guest.ts), which takes the vCPUs of its queue in
// turn (vm/sched.ts). The threads hold the kernel's lock while they run
// kernel code (boot/smp/threads.c): the kernel runs on one processor at a
// time, the guests on all of them.
//
// A queue's state is its processor's business: only its own thread reads
// or writes it, except `mail`, which the others set, and `asleep`, which
// the VM's threads count together (vm.queuesAsleep) to see that no vCPU
// can ever run again.
@unmanaged export class RunQueue {
  number: i32 = 0; // q: vCPUs q, q + Q, q + 2Q, ...
  cpu: u32 = 0; // the processor that runs them
  // The vCPU that has the processor, the one an IPI or interrupt just made
  // runnable (-1: none), and the host TSC at which the time slice ends (0:
  // the processor changes hands at the next exit: it halted, or another
  // vCPU was made runnable).
  running: i32 = 0;
  wake: i32 = -1;
  sliceEnd: u64 = 0;
  // Another processor posted something for one of its vCPUs (vm/ipi.ts
  // post), or the guest ended (vm.ending): the one test each exit makes.
  mail: bool = false;
  // Every vCPU of the queue sleeps with nothing of its own to wake it (no
  // APIC timer armed): its thread waits for a kick (sched.ts).
  asleep: bool = false;
  // The kernel thread's stack (pages: the thread's, freed after it ends;
  // 0 for queue 0, which runs on the boot processor's thread).
  stack: u64 = 0;

  reset(number: i32, cpu: u32): void {
    this.number = number;
    this.cpu = cpu;
    this.running = number;
    this.wake = -1;
    this.sliceEnd = 0;
    this.mail = false;
    this.asleep = false;
    this.stack = 0;
  }
}
