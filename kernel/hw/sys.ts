// Machine control imports.

// Print the final line "hv: exit status=N (name)" and stop the machine: on an
// emulator through its exit device, on hardware by halting. Never returns.
@external("sys", "exit")
export declare function exit(status: u32): void;

// HLT until the next interrupt.
@external("sys", "halt")
export declare function halt(): void;
