// Exit statuses passed to sys.exit; the same numbers as HV_STATUS_* in
// boot/include/hv.h. The final console line of every run names one of them.
export const STATUS_OK: u32 = 0;
export const STATUS_FAIL: u32 = 1;
export const STATUS_NO_VTX: u32 = 2;
export const STATUS_VMX_LOCKED: u32 = 3;
export const STATUS_VMX_SETUP: u32 = 4;
export const STATUS_TRAP: u32 = 5;
export const STATUS_EXCEPTION: u32 = 6;
export const STATUS_BOOT: u32 = 7;
