// The CMOS real-time clock at ports 0x70 (index) / 0x71 (data): a stopped
// MC146818 whose clock reads 2026-01-01 00:00:00, for an OS's one read of
// the wall-clock time at boot. Without it every read is all ones: the
// update-in-progress bit (register A bit 7) never clears and Linux 6.1
// (mach_get_cmos_time -> mc146818_get_time(.., 1000)) waits 1000 x mdelay(1)
// before "Unable to read current time from RTC": a second of guest time,
// 2.4e9 instructions on Bochs.
//
// MC146818 datasheet register map: 0 seconds, 2 minutes, 4 hours, 6 day of
// week (1 = Sunday), 7 day of month, 8 month, 9 year (two digits); A: UIP
// (7), divider (6:4) 010b = 32.768 kHz time base, rate (3:0) 0110b =
// 1024 Hz; B: 24-hour (1), BCD (bit 2 DM = 0), no interrupt enables, SET
// clear; C: no interrupt flags; D: VRT (7) = the time and RAM are valid.
// The clock does not tick (guest time is the TSC's; the RTC is read once),
// UIP is never set, nothing interrupts (no IRQ 8), and the other CMOS bytes
// read 0. Writes to the data port are ignored: the date cannot be set and
// the divider, rate and interrupt enables stay as above. Bit 7 of an index
// write masks NMIs on a PC; there are no NMI sources, so only bits 6:0
// select.
export const INDEX_PORT: u32 = 0x70;
export const DATA_PORT: u32 = 0x71;

// Register index -> value (BCD for the time and date).
export function read(index: u32): u32 {
  switch (index & 0x7f) {
    case 0x06: return 0x05; // Thursday
    case 0x07: return 0x01; // 1st
    case 0x08: return 0x01; // January
    case 0x09: return 0x26; // (20)26
    case 0x0a: return 0x26;
    case 0x0b: return 0x02;
    case 0x0d: return 0x80;
    // 0x00/0x02/0x04 (00:00:00), the alarms, C, and the CMOS RAM: 0.
    default: return 0;
  }
}
