/* Console output: COM1 (polling LSR.THRE), or, when a guest asks for it under
 * our hypervisor, one VMCALL print per line (one exit per line instead of one
 * or two per character: cheaper on Bochs). And a small printf: %s %c %d %u %x
 * %p, the ll (64-bit) forms of d/u/x, width and zero padding. */
#include "guest.h"

static bool use_hypercall;
static char line[257];
static int line_len;

void con_init(void) {
    outb(COM1 + 1, 0x00); /* IER: no interrupts */
    outb(COM1 + 3, 0x80); /* LCR: DLAB on */
    outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1, DLAB off */
    outb(COM1 + 4, 0x03); /* MCR: DTR, RTS */
}

static void flush_line(void) {
    if (line_len) vmcall(HC_PRINT, (u32)(uintptr_t)line, (u32)line_len);
    line_len = 0;
}

void con_use_hypercall(bool on) {
    if (!on) flush_line();
    use_hypercall = on && under_hv();
}

static void com1_putc(char c) {
    /* Under hv the LSR always reads 0x60 (contract): skip the poll, one exit less per byte. */
    if (!under_hv()) {
        for (int i = 0; i < 1000000 && !(inb(COM1 + 5) & 0x20); i++) {
        }
    }
    outb(COM1, (u8)c);
}

void putc_(char c) {
    if (use_hypercall) {
        if (c == '\n') {
            flush_line();
            return;
        }
        line[line_len++] = c;
        if (line_len == 256) flush_line();
        return;
    }
    if (c == '\n') com1_putc('\r');
    com1_putc(c);
}

void puts_(const char *s) {
    while (*s) putc_(*s++);
}

/* ---- formatting ------------------------------------------------------------------ */
struct sink { char *buf; int size, n; bool console; };

static void emit(struct sink *s, char c) {
    if (s->console) putc_(c);
    else if (s->n < s->size - 1) s->buf[s->n] = c;
    s->n++;
}

/* 64-bit division without libgcc: shift and subtract. */
u64 u64_div(u64 n, u64 d, u64 *rem) {
    u64 q = 0, r = 0;
    for (int i = 63; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1);
        if (r >= d) {
            r -= d;
            q |= (u64)1 << i;
        }
    }
    if (rem) *rem = r;
    return q;
}
u64 __udivdi3(u64 n, u64 d) { return u64_div(n, d, 0); }
u64 __umoddi3(u64 n, u64 d) { u64 r; u64_div(n, d, &r); return r; }

static void emit_num(struct sink *s, u64 v, unsigned base, bool neg, int width, bool zero) {
    char tmp[24];
    int n = 0;
    do {
        u64 r;
        v = u64_div(v, base, &r);
        tmp[n++] = "0123456789abcdef"[r];
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (neg && zero) emit(s, '-');
    for (; len < width; len++) emit(s, zero ? '0' : ' ');
    if (neg && !zero) emit(s, '-');
    while (n) emit(s, tmp[--n]);
}

static void format(struct sink *s, const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(s, *fmt);
            continue;
        }
        fmt++;
        bool zero = false;
        int width = 0, longs = 0;
        if (*fmt == '0') {
            zero = true;
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str) str = "(null)";
            int len = (int)strlen(str);
            for (; len < width; len++) emit(s, ' ');
            while (*str) emit(s, *str++);
            break;
        }
        case 'c': emit(s, (char)va_arg(ap, int)); break;
        case 'd': {
            i64 v = longs >= 2 ? va_arg(ap, i64) : va_arg(ap, i32);
            emit_num(s, v < 0 ? (u64)-v : (u64)v, 10, v < 0, width, zero);
            break;
        }
        case 'u': emit_num(s, longs >= 2 ? va_arg(ap, u64) : va_arg(ap, u32), 10, false, width, zero); break;
        case 'x': emit_num(s, longs >= 2 ? va_arg(ap, u64) : va_arg(ap, u32), 16, false, width, zero); break;
        case 'p': emit(s, '0'); emit(s, 'x'); emit_num(s, (u32)(uintptr_t)va_arg(ap, void *), 16, false, 8, true); break;
        case '%': emit(s, '%'); break;
        case 0: return;
        default: emit(s, '%'); emit(s, *fmt); break;
        }
    }
}

void vprintf_(const char *fmt, va_list ap) {
    struct sink s = { 0, 0, 0, true };
    format(&s, fmt, ap);
}

void printf_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf_(fmt, ap);
    va_end(ap);
}

static int vsnprintf_(char *buf, int size, const char *fmt, va_list ap) {
    struct sink s = { buf, size, 0, false };
    format(&s, fmt, ap);
    if (size > 0) buf[s.n < size ? s.n : size - 1] = 0;
    return s.n;
}

int snprintf_(char *buf, int size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf_(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- TAP --------------------------------------------------------------------------- */
static u32 tap_n;
static bool tap_bad;

bool tap_verbose;

/* The text after a '|' in a check's format is its details: printed, in
 * parentheses, only when the check fails (or with tap_verbose). Output is
 * what a guest spends most of its time on under Bochs (COM1 at 115200 baud
 * costs ~4,300 instructions a byte), so passing lines stay short. */
static bool report(bool pass, const char *skip_reason, const char *fmt, va_list ap) {
    char text[320];
    vsnprintf_(text, sizeof text, fmt, ap);
    char *bar = text;
    while (*bar && *bar != '|') bar++;
    bool details = *bar && (!pass || tap_verbose);
    if (*bar) *bar = 0;
    tap_n++;
    if (!pass) tap_bad = true;
    printf("%sok %u - %s", pass ? "" : "not ", tap_n, text);
    if (details) printf(" (%s)", bar + 1);
    if (skip_reason) printf(" # SKIP %s", skip_reason);
    putc_('\n');
    return pass;
}

bool check(bool cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(cond, 0, fmt, ap);
    va_end(ap);
    return cond;
}

bool check_hv(bool cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (under_hv() || cond) report(cond, 0, fmt, ap);
    else report(true, "not under hv", fmt, ap);
    va_end(ap);
    return cond;
}

void skip(const char *reason, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(true, reason, fmt, ap);
    va_end(ap);
}

void diag(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    puts_("# ");
    vprintf_(fmt, ap);
    putc_('\n');
    va_end(ap);
}

bool tap_failed(void) { return tap_bad; }
u32 tap_count(void) { return tap_n; }

void finish_result(void) {
    printf("# %s: %llu TSC ticks since entry\n", guest_name, rdtsc() - entry.tsc);
    printf("1..%u\n", tap_n);
    printf("RESULT: %s\n", tap_bad ? "FAIL" : "PASS");
    con_use_hypercall(false);
}

/* ---- ending ------------------------------------------------------------------------ */
NORETURN void halt_forever(void) {
    for (;;) __asm__ volatile("cli; hlt");
}

NORETURN void exit_debug(u32 code) {
    con_use_hypercall(false);
    outl(0xF4, code);
    printf("%s: isa-debug-exit (port 0xf4) did not end the guest\n", guest_name);
    halt_forever();
}

NORETURN void exit_guest(u32 status) {
    con_use_hypercall(false);
    if (under_hv()) {
        vmcall(HC_EXIT, status, 0);
        printf("%s: hypercall exit did not end the guest\n", guest_name);
        halt_forever();
    }
    exit_debug(status);
}

NORETURN void fail_stop(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    con_use_hypercall(false);
    printf("%s: ", guest_name);
    vprintf_(fmt, ap);
    putc_('\n');
    va_end(ap);
    printf("RESULT: FAIL\n");
    exit_debug(1);
}
