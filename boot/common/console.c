/* The hypervisor's console: COM1 (a 16550 UART at 0x3F8), and the debug port
 * 0xE9 when an emulator offers it (Bochs's port_e9_hack and QEMU's debugcon
 * read back 0xE9 from it; on real hardware the port is unused and reads 0xFF). */
#include "hv.h"

#define COM1 0x3f8
static bool e9_present;
static bool console_ready;

void hv_console_init(void) {
    outb(COM1 + 1, 0x00);       /* no interrupts: we poll */
    outb(COM1 + 3, 0x80);       /* DLAB on */
    outb(COM1 + 0, 0x01);       /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);       /* 8N1, DLAB off */
    outb(COM1 + 2, 0xc7);       /* FIFOs on and cleared */
    outb(COM1 + 4, 0x03);       /* DTR, RTS */
    e9_present = inb(0xe9) == 0xe9;
    console_ready = true;
}

bool hv_console_e9(void) { return e9_present; }

void hv_putc(char c) {
    if (!console_ready) hv_console_init();
    if (c == '\n') hv_putc('\r');
    /* Wait for the transmit holding register, but never forever: a missing
     * UART (LSR reads 0xFF) or a stuck one must not hang the hypervisor. */
    for (u32 spin = 0; spin < 100000; spin++)
        if (inb(COM1 + 5) & 0x20) break;
    outb(COM1, (u8)c);
    if (e9_present && c != '\r') outb(0xe9, (u8)c);
}

/* Wait until the UART has sent everything (LSR bit 6, transmitter empty), so
 * that stopping the machine right after the last line does not cut it off. */
void hv_console_flush(void) {
    for (u32 spin = 0; spin < 1000000; spin++)
        if (inb(COM1 + 5) & 0x40) break;
}

void hv_puts(const char *s) {
    while (*s) hv_putc(*s++);
}

void hv_put_hex(u64 v) {
    char buf[19];
    int i = 18;
    buf[i] = 0;
    do {
        u32 d = v & 0xf;
        buf[--i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v >>= 4;
    } while (v);
    buf[--i] = 'x';
    buf[--i] = '0';
    hv_puts(&buf[i]);
}

void hv_put_dec(u64 v) {
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hv_puts(&buf[i]);
}
