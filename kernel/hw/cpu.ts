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

@external("cpu", "rdtsc")
export declare function rdtsc(): u64;

// Index of the executing processor (0 = the boot processor).
@external("cpu", "index")
export declare function index(): u32;
