/* ramsnap.elf: the RAM snapshot (kernel/snapshot/ram.ts, docs/snapshot.md
 * "Memory") seen from the guest, through the test hypercall of a guest
 * started with ramsnap=on or ramsnap=wp:
 *   VMCALL RAX = 0x100, RBX = 0 take / 1 restore / 2 count dirty pages
 *   -> RAX = 0, RBX = pages copied (counted); RAX = 2 without ramsnap=.
 * A restore copies back every page written since the take, this guest's
 * stack included. So each take .. restore sequence is one asm block that
 * writes only the pages under test and keeps everything in registers: the
 * C code around it finds its stack as it left it.
 *
 * Paging is off: no guest page-table accesses, so exactly the pages the
 * block writes are dirty. Test area: guest-physical [8 MiB, 12 MiB), 1,024
 * pages across two 2-MiB regions; each page's first dword is written by the
 * tests, its last dword never.
 *
 * Command-line words: mode=ad|wp (what the hypervisor was told: the EPT
 * accessed/dirty flags, or write protection; only the exit counts differ),
 * bench (also print `bench: ramsnap-<mode>-<op> min= median= n=` figures in
 * RDTSC ticks), n=N (samples per figure, default 8). */
#include "guest.h"

#define HC_RAM_SNAPSHOT 0x100
#define OP_TAKE 0
#define OP_RESTORE 1
#define OP_DIRTY 2

#define AREA (8 * MiB)
#define AREA_PAGES 1024
#define PAGE 4096u

static inline volatile u32 *first_dword(u32 page) { return (volatile u32 *)(AREA + page * PAGE); }
static inline volatile u32 *last_dword(u32 page) { return (volatile u32 *)(AREA + page * PAGE + PAGE - 4); }
static u32 pattern(u32 page) { return 0x5a000000u ^ (page * 0x9e37u); }
static u32 untouched(u32 page) { return 0xa5000000u ^ page; }

/* RAX status, RBX result (a C-level call: only where the stack cannot be
 * reverted: before the first take, or for a take). */
static u32 snap(u32 op, u32 *result) {
    u32 st, r;
    __asm__ volatile("vmcall" : "=a"(st), "=b"(r) : "a"(HC_RAM_SNAPSHOT), "b"(op) : "memory");
    *result = r;
    return st;
}

struct cycle { u32 status, dirty, restored; };

/* take; write `value` to the first dword of n pages from `addr`, `stride`
 * bytes apart; count the dirty pages; restore. No stack access in between. */
static struct cycle cycle(u32 addr, u32 n, u32 stride, u32 value) {
    u32 st, restored, dirty;
    __asm__ volatile(
        "movl %[hc], %%eax\n\txorl %%ebx, %%ebx\n\tvmcall\n\t"
        "testl %%eax, %%eax\n\tjnz 9f\n\t"
        "jecxz 2f\n"
        "1:\n\tmovl %%edx, (%%edi)\n\taddl %%esi, %%edi\n\tdecl %%ecx\n\tjnz 1b\n"
        "2:\n\tmovl %[hc], %%eax\n\tmovl $2, %%ebx\n\tvmcall\n\t"
        "testl %%eax, %%eax\n\tjnz 9f\n\t"
        "movl %%ebx, %%esi\n\t"
        "movl %[hc], %%eax\n\tmovl $1, %%ebx\n\tvmcall\n"
        "9:"
        : "=a"(st), "=b"(restored), "+S"(stride), "+D"(addr), "+c"(n), "+d"(value)
        : [hc] "i"(HC_RAM_SNAPSHOT)
        : "memory");
    dirty = stride;
    return (struct cycle){st, dirty, restored};
}

/* take; write n pages; then time one operation (take or restore) with
 * RDTSC. Returns the ticks; *count = what the operation reported. */
#define TIMED(name, OP)                                                                         \
    static u32 name(u32 n, u32 value, u32 *count, u32 *status) {                                \
        u32 st, t, c, addr = AREA;                                                              \
        __asm__ volatile(                                                                       \
            "movl %[hc], %%eax\n\txorl %%ebx, %%ebx\n\tvmcall\n\t"                              \
            "testl %%eax, %%eax\n\tjnz 9f\n\t"                                                  \
            "jecxz 2f\n"                                                                        \
            "1:\n\tmovl %%edx, (%%edi)\n\taddl $4096, %%edi\n\tdecl %%ecx\n\tjnz 1b\n"          \
            "2:\n\tlfence\n\trdtsc\n\tmovl %%eax, %%esi\n\t"                                    \
            "movl %[hc], %%eax\n\tmovl %[op], %%ebx\n\tvmcall\n\t"                              \
            "movl %%eax, %%edi\n\t"                                                             \
            "lfence\n\trdtsc\n\tsubl %%esi, %%eax\n\tmovl %%eax, %%esi\n\tmovl %%edi, %%eax\n"  \
            "9:"                                                                                \
            : "=a"(st), "=b"(c), "=S"(t), "+D"(addr), "+c"(n), "+d"(value)                      \
            : [hc] "i"(HC_RAM_SNAPSHOT), [op] "i"(OP)                                           \
            : "memory");                                                                        \
        *count = c;                                                                             \
        *status = st;                                                                           \
        return t;                                                                               \
    }
TIMED(timed_take, OP_TAKE)
TIMED(timed_restore, OP_RESTORE)

/* take; time the writes of n (>= 1) fresh pages (each an EPT violation
 * with write protection); restore. */
static u32 timed_writes(u32 n, u32 *status) {
    u32 st, t, c, d, addr = AREA;
    __asm__ volatile(
        "movl %[hc], %%eax\n\txorl %%ebx, %%ebx\n\tvmcall\n\t"
        "testl %%eax, %%eax\n\tjnz 9f\n\t"
        "lfence\n\trdtsc\n\tmovl %%eax, %%esi\n\t"
        "movl $0x77777777, %%ebx\n"
        "1:\n\tmovl %%ebx, (%%edi)\n\taddl $4096, %%edi\n\tdecl %%ecx\n\tjnz 1b\n\t"
        "lfence\n\trdtsc\n\tsubl %%esi, %%eax\n\tmovl %%eax, %%esi\n\t"
        "movl %[hc], %%eax\n\tmovl $1, %%ebx\n\tvmcall\n"
        "9:"
        : "=a"(st), "=b"(c), "=S"(t), "+D"(addr), "+c"(n), "=d"(d)
        : [hc] "i"(HC_RAM_SNAPSHOT)
        : "memory");
    (void)c;
    (void)d;
    *status = st;
    return t;
}

static bool area_intact(u32 *bad) {
    for (u32 p = 0; p < AREA_PAGES; p++) {
        if (*first_dword(p) != pattern(p) || *last_dword(p) != untouched(p)) {
            *bad = p;
            return false;
        }
    }
    return true;
}

static void check_cycle(const char *what, u32 first, u32 n, u32 stride_pages) {
    struct cycle c = cycle(AREA + first * PAGE, n, stride_pages * PAGE, 0xdeadbeefu);
    u32 bad = 0;
    bool intact = area_intact(&bad);
    check(c.status == 0 && c.dirty == n && c.restored == n && intact,
          "%s: %u pages written, %u dirty, %u restored, area as before|status %u, first bad page %u", what, n, c.dirty,
          c.restored, c.status, intact ? 0 : bad);
}

static u32 exits_so_far(void) { return vmcall(HC_QUERY, 1, 0); }

/* ---- figures ---------------------------------------------------------------- */
#define MAX_N 64
static u32 samples[MAX_N];
static int N = 8;
static const char *mode = "ad";

static void report(const char *op, u32 pages) {
    for (int i = 1; i < N; i++) { /* insertion sort: N is small */
        u32 v = samples[i];
        int j = i;
        for (; j > 0 && samples[j - 1] > v; j--) samples[j] = samples[j - 1];
        samples[j] = v;
    }
    printf("bench: ramsnap-%s-%s-%u min=%u median=%u n=%d\n", mode, op, pages, samples[0], samples[N / 2], N);
}

static void bench(void) {
    static const u32 sizes[] = {0, 16, 1024};
    for (u32 k = 0; k < 3; k++) {
        u32 n = sizes[k], count, st;
        bool ok = true;
        for (int i = 0; i < N; i++) {
            samples[i] = timed_take(n, 0x1000u + i, &count, &st);
            ok = ok && st == 0 && count == n;
        }
        report("take", n);
        check(ok, "bench: take after %u dirty pages copies %u pages", n, n);
        for (int i = 0; i < N; i++) {
            samples[i] = timed_restore(n, 0x2000u + i, &count, &st);
            ok = ok && st == 0 && count == n;
        }
        report("restore", n);
        check(ok, "bench: restore of %u dirty pages copies %u pages", n, n);
    }
    u32 st = 0;
    for (int i = 0; i < N; i++) samples[i] = timed_writes(16, &st);
    report("write", 16);
    check(st == 0, "bench: 16 first writes after a take");
}

void guest_main(void) {
    guest_init("ramsnap");
    char buf[16];
    if (word_value(boot.cmdline, "mode", buf, sizeof buf)) mode = strcmp(buf, "wp") == 0 ? "wp" : "ad";
    bool wp = strcmp(mode, "wp") == 0;
    if (word_value(boot.cmdline, "n", buf, sizeof buf)) {
        bool okn;
        u32 n = parse_u32(buf, &okn);
        if (!okn || n < 1 || n > MAX_N) fail_stop("n=%s: want 1..%d", buf, MAX_N);
        N = (int)n;
    }
    if (!under_hv()) {
        printf("ramsnap: not under hv: nothing to test\n");
        finish_result();
        exit_debug(0);
    }
    u32 ram = vmcall(HC_QUERY, 2, 0);
    if (ram < 16 * MiB) fail_stop("ramsnap: needs 16 MiB of RAM, has %u", ram);

    u32 r = 0;
    u32 st = snap(OP_RESTORE, &r);
    check(st == 0 && r == 0, "restore before any take copies nothing|status %u, %u pages", st, r);
    for (u32 p = 0; p < AREA_PAGES; p++) {
        *first_dword(p) = pattern(p);
        *last_dword(p) = untouched(p);
    }
    u64 t0 = rdtsc_fenced();
    st = snap(OP_TAKE, &r);
    u32 full = (u32)(rdtsc_fenced() - t0);
    check(st == 0 && r == ram / PAGE, "first take copies all %u pages of RAM|status %u, %u pages", ram / PAGE, st, r);

    check_cycle("nothing written", 0, 0, 1);
    check_cycle("one page", 5, 1, 1);
    check_cycle("16 pages", 0, 16, 1);
    check_cycle("1,024 pages (4 MiB)", 0, AREA_PAGES, 1);
    check_cycle("100 pages, every third, across a 2-MiB boundary", 400, 100, 3);
    check_cycle("the last page before a 2-MiB boundary and the next", 511, 2, 1);
    for (int i = 0; i < 3; i++) check_cycle("16 pages again (tracking re-armed)", 100, 16, 1);

    /* A later take copies only what changed since, into the snapshot: the
     * next restore goes back to the new content. */
    for (u32 p = 0; p < 8; p++) *first_dword(p) = 0x0b0b0000u + p;
    st = snap(OP_TAKE, &r);
    check(st == 0 && r >= 8 && r <= 16, "second take copies the pages written since (8, the stack, the guest's data)|status %u, %u pages", st, r);
    struct cycle c = cycle(AREA, 8, PAGE, 0xc0c0c0c0u);
    bool back = true;
    for (u32 p = 0; p < 8; p++) back = back && *first_dword(p) == 0x0b0b0000u + p;
    check(c.status == 0 && c.restored == 8 && back, "restore returns to the second take's content|restored %u", c.restored);
    for (u32 p = 0; p < 8; p++) *first_dword(p) = pattern(p);

    if (has_word(boot.cmdline, "bench")) {
        printf("bench: ramsnap-%s-take-full min=%u median=%u n=1\n", mode, full, full);
        bench();
    }

    /* How the pages are found: with the EPT accessed/dirty flags a write
     * costs no exit; with write protection the first write to each page is
     * one EPT violation (and the query's own VMCALL is one exit). */
    st = snap(OP_TAKE, &r);
    u32 e0 = exits_so_far();
    for (u32 p = 0; p < 64; p++) *first_dword(p * 2) = 0x77u;
    u32 e1 = exits_so_far();
    u32 d = e1 - e0;
    if (wp) check(d >= 65 && d <= 67, "write protection: 64 first writes are 64 EPT violations|%u exits", d);
    else check(d <= 2, "EPT accessed/dirty flags: 64 first writes cause no exit|%u exits", d);
    finish_result();
    exit_debug(tap_failed() ? 1 : 0);
}
