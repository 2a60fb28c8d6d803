/* QEMU fw_cfg, traditional I/O interface: a 16-bit write of the key to 0x510,
 * then the item byte by byte from 0x511 (little-endian numbers). */
#include "guest.h"

void fwcfg_read(u16 key, void *buf, u32 len) {
    u8 *p = buf;
    outw(FWCFG_SEL, key);
    for (u32 i = 0; i < len; i++) p[i] = inb(FWCFG_DATA);
}

u64 fwcfg_u64(u16 key) {
    u8 b[8];
    fwcfg_read(key, b, 8);
    u64 v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

u32 fwcfg_u32(u16 key) {
    u8 b[4];
    fwcfg_read(key, b, 4);
    return b[0] | (u32)b[1] << 8 | (u32)b[2] << 16 | (u32)b[3] << 24;
}

u16 fwcfg_u16(u16 key) {
    u8 b[2];
    fwcfg_read(key, b, 2);
    return (u16)(b[0] | b[1] << 8);
}
