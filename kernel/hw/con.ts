// Console import: the only way the kernel prints. Bytes are ASCII, taken from
// linear memory. boot/imports/con.c writes them to COM1 (and port 0xE9 when an
// emulator offers it); tests/model collects them.
@external("con", "write")
export declare function write(ptr: usize, len: u32): void;
