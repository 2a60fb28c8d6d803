// Port I/O imports. size is 1, 2 or 4 bytes.
@external("io", "inp")
export declare function inp(port: u32, size: u32): u32;

@external("io", "outp")
export declare function outp(port: u32, size: u32, value: u32): void;
