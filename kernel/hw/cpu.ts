// CPU imports: the instructions of the processor the kernel runs on.
// Callers read only MSRs the capability checks say exist (RDMSR of an absent
// MSR is #GP(0), SDM Vol. 2B RDMSR), so these have no failure path.

// CPUID leaf/subleaf; EAX, EBX, ECX, EDX stored as four u32 at out.
@external("cpu", "cpuid")
export declare function cpuid(leaf: u32, subleaf: u32, out: usize): void;

@external("cpu", "rdmsr")
export declare function rdmsr(msr: u32): u64;

@external("cpu", "wrmsr")
export declare function wrmsr(msr: u32, value: u64): void;

// Control register n (0, 2, 3, 4 or 8).
@external("cpu", "readcr")
export declare function readcr(n: u32): u64;

@external("cpu", "writecr")
export declare function writecr(n: u32, value: u64): void;

// Debug register n (0-3, 6 or 7). The hypervisor never uses DR0-DR3 or
// DR6, and MOV DR does not exit, so while it runs they hold the guest's
// values (VM exits switch only DR7, SDM Vol. 3C 28.5.1): a snapshot reads
// them here and a restore writes them (a value for DR6 or DR7 with bits
// 63:32 set is #GP(0): the caller checks).
@external("cpu", "readdr")
export declare function readdr(n: u32): u64;

@external("cpu", "writedr")
export declare function writedr(n: u32, value: u64): void;

@external("cpu", "rdtsc")
export declare function rdtsc(): u64;

// Index of the executing processor (0 = the boot processor).
@external("cpu", "index")
export declare function index(): u32;

// Number of processors the hypervisor runs on (started and in its idle loop).
@external("cpu", "count")
export declare function count(): u32;

// Continue the calling kernel thread on processor `target`: returns there.
// The kernel has one thread of execution; it moves between processors for
// per-CPU work (VMXON on each) and for vCPU migration. Returns false if the
// target is not running.
@external("cpu", "migrate")
export declare function migrate(target: u32): bool;

// Several kernel threads (boot/smp/threads.c): a new one on idle processor
// `target`, on the stack of `stackBytes` ending at `stackTop` (16-byte
// aligned; the kernel's stack bound is its bottom plus a margin), running
// the kernel's vcpuThread(arg). From the first one on, the kernel runs
// under one lock, which a thread lets go of in VM entry and in wait(), so
// that the kernel runs on one processor at a time. False if the target is
// this processor or not running.
@external("cpu", "spawn")
export declare function spawn(target: u32, stackTop: u64, stackBytes: u32, arg: u32): bool;

// Processor `target` looks at its vCPUs soon: a VM exit if it runs a guest,
// the end of its wait() if it waits.
@external("cpu", "kick")
export declare function kick(target: u32): void;

// Without the lock until a kick since the last wait, or until the TSC
// reaches `deadline` (u64.MAX_VALUE: none); may return early. Whatever the
// caller looked at before may have changed.
@external("cpu", "wait")
export declare function wait(deadline: u64): void;

// Every spawned thread has ended: the caller goes on alone, without the
// lock. False (nothing changed) while a thread still runs.
@external("cpu", "solo")
export declare function solo(): bool;

// The executing processor's host state for the VMCS host-state area, stored
// at out as little-endian u64: [0] CR3, [1] GDTR base, [2] IDTR base,
// [3] TR base, [4] FS base, [5] GS base, [6] selectors CS | SS << 16 |
// DS << 32 | TR << 48 (ES = FS = GS = DS, or 0 when null).
@external("cpu", "hoststate")
export declare function hoststate(out: usize): void;

// XSETBV: write extended control register `index` (0 = XCR0). The caller
// has checked the value against the SDM's #GP rules.
@external("cpu", "xsetbv")
export declare function xsetbv(index: u32, value: u64): void;

// XSAVE / XRSTOR (64-bit forms) of the state components in `mask` (SDM
// Vol. 1 13.7, 13.8) to / from the XSAVE area at `area` (`size` bytes,
// 64-byte aligned, standard format); the requested-feature bitmap is
// XCR0 & mask, so the caller sets XCR0 first.
@external("cpu", "xsave")
export declare function xsave(area: usize, size: u32, mask: u64): void;

@external("cpu", "xrstor")
export declare function xrstor(area: usize, size: u32, mask: u64): void;

// End of interrupt on the executing processor's local APIC, for an
// interrupt the processor acknowledged on a VM exit.
@external("cpu", "eoi")
export declare function eoi(): void;

// WBINVD: write back and invalidate the caches.
@external("cpu", "wbinvd")
export declare function wbinvd(): void;
