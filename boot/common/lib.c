/* The few C library functions compiled code needs in a freestanding image.
 * clang turns struct copies and wasm2c's loads/stores into calls to these. */
#include "hv.h"

void *memcpy(void *d, const void *s, size_t n) {
    void *ret = d;
    /* Quadwords first: an emulator counts each iteration of a string
     * instruction as one instruction, so byte copies cost 8x the ticks. */
    size_t q = n >> 3;
    n &= 7;
    if (q) __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(q) :: "memory");
    if (n) __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
    return ret;
}

void *memmove(void *d, const void *s, size_t n) {
    u8 *dp = d;
    const u8 *sp = s;
    if (dp <= sp || dp >= sp + n) return memcpy(d, s, n);
    /* Overlapping with the destination above the source: copy backwards. */
    while (n--) dp[n] = sp[n];
    return d;
}

void *memset(void *d, int c, size_t n) {
    void *ret = d;
    /* Whole quadwords first: an emulator counts every iteration of a string
     * instruction, so clearing the 4 MiB linear memory byte by byte would
     * cost 4M ticks of boot time on Bochs. */
    if (n >= 64 && ((u64)d & 7) == 0) {
        u64 q = n / 8, v = 0x0101010101010101ull * (u8)c;
        __asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(v) : "memory");
        n &= 7;
    }
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return ret;
}

int memcmp(const void *a, const void *b, size_t n) {
    const u8 *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

_Noreturn void abort(void) {
    hv_puts("hv: trap: abort() called\n");
    hv_exit(HV_STATUS_TRAP);
}
