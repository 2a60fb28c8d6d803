// VMX instruction imports (SDM Vol. 3C ch. 31). Instructions that can fail
// return a VMX status: VMX_SUCCEED, VMX_FAIL_INVALID (CF=1) or VMX_FAIL_VALID
// (ZF=1; the error number is in the VM-instruction error field, read with
// vmread). vmread/vmwrite of fields the kernel itself chose cannot fail on a
// correct kernel; the implementation stops the machine with a report if one does.
export const VMX_SUCCEED: i32 = 0;
export const VMX_FAIL_INVALID: i32 = 1;
export const VMX_FAIL_VALID: i32 = 2;

@external("vmx", "vmxon")
export declare function vmxon(pa: u64): i32;
@external("vmx", "vmxoff")
export declare function vmxoff(): i32;
@external("vmx", "vmclear")
export declare function vmclear(pa: u64): i32;
@external("vmx", "vmptrld")
export declare function vmptrld(pa: u64): i32;
// VMCLEAR of `clear` (none when 0), then VMPTRLD of `load`: VMCSs of the
// hypervisor's own, whose failure is a hypervisor bug that stops the
// machine with a report (no status to test).
@external("vmx", "vmcsswitch")
export declare function vmcsswitch(clear: u64, load: u64): void;
@external("vmx", "vmptrst")
export declare function vmptrst(): u64;
@external("vmx", "vmread")
export declare function vmread(field: u32): u64;
@external("vmx", "vmwrite")
export declare function vmwrite(field: u32, value: u64): void;
// Many fields of the current VMCS at once, to or from a 4-KiB area of
// linear memory at base (see kernel/nested/fieldlist.ts for the list
// format: the FL_* block, at most 64 entries). Only entries whose bit is
// set in mask are copied.
// readfields returns the mask of the entries whose value changed.
@external("vmx", "readfields")
export declare function readfields(list: usize, n: u32, base: usize, mask: u64): u64;
@external("vmx", "writefields")
export declare function writefields(list: usize, n: u32, base: usize, mask: u64): void;
// The selected entries of a generated field list (the field table's
// READ_LISTS, id V.READLIST_*) into the vmcs12 cache at base, at their
// vmcs12 offsets; returns the mask of the entries whose value changed.
@external("vmx", "readlist")
export declare function readlist(id: u32, base: usize, mask: u64): u64;
// L1's state after a nested VM exit into the current VMCS (vmcs01): the
// fields of the field table's HOST_LOAD list, field k from base + 8 * k
// (HOSTLOAD_SLOT_*); an optional one only when its bit is set in mask.
@external("vmx", "loadhoststate")
export declare function loadhoststate(base: usize, mask: u64): void;
// This processor's Hyper-V VP assist page, already enabled through
// HV_X64_MSR_VP_ASSIST_PAGE (kernel/vmx/evmcs.ts): from the first call on,
// the VMX imports use the enlightened VMCS (boot/imports/vmx.c: VMPTRLD
// makes an eVMCS page current through the VP assist page, VMREAD/VMWRITE
// become accesses to it, VM entry stores the host RSP/RIP there). Returns
// 0 if the page cannot be one (unaligned, the hypervisor's own), else 1.
@external("vmx", "enlighten")
export declare function enlighten(assist: u64): i32;
@external("vmx", "invept")
export declare function invept(type: u32, eptp: u64): i32;
@external("vmx", "invvpid")
export declare function invvpid(type: u32, vpid: u32, linear: u64): i32;

// Enter the guest whose register block is at regs (boot/entry/vmenter.S:
// GPRs in hardware order, CR2, FXSAVE area at +256; 768 bytes, 16-byte
// aligned) with VMRESUME if the block's REGS_LAUNCHED is set, else
// VMLAUNCH. Returns VMX_SUCCEED when the guest has exited (the block then
// holds its registers, REGS_LAUNCHED is 1 and REGS_EXITS one more), or the
// VMfail status of the entry instruction (the block unchanged).
// The timestamps of the last VM round trip (12 x u64 at out: stub start,
// stub before entry, stub after exit, stub return, C wrapper entry, C
// wrapper return, previous C return, 1 = profiling build, then two pairs of
// back-to-back stamps, asm and C, for calibration). All zero except in the
// profiling build (make bench).
@external("vmx", "profile")
export declare function profile(out: usize): void;

@external("vmx", "enter")
export declare function enter(regs: usize): i32;
