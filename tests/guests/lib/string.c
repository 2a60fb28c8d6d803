/* The few string functions the guests need (clang may also call the mem*
 * ones for struct copies), and command-line word helpers. */
#include "guest.h"

void *memset(void *d, int c, size_t n) {
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n) {
    u8 *p = d;
    const u8 *q = s;
    while (n--) *p++ = *q++;
    return d;
}

void *memmove(void *d, const void *s, size_t n) {
    u8 *p = d;
    const u8 *q = s;
    if (p < q) {
        while (n--) *p++ = *q++;
    } else {
        while (n--) p[n] = q[n];
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n) {
    const u8 *p = a, *q = b;
    for (; n; n--, p++, q++) {
        if (*p != *q) return *p < *q ? -1 : 1;
    }
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (u8)*a - (u8)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a) return (u8)*a - (u8)*b;
    }
    return 0;
}

static bool is_sep(char c) { return c == ' ' || c == '\t' || c == ','; }

/* Calls fn for each word; stops when fn returns true. */
static bool each_word(const char *line, bool (*fn)(const char *w, int n, void *ctx), void *ctx) {
    const char *p = line;
    while (*p) {
        while (*p && is_sep(*p)) p++;
        const char *w = p;
        while (*p && !is_sep(*p)) p++;
        if (p > w && fn(w, (int)(p - w), ctx)) return true;
    }
    return false;
}

static bool word_is(const char *w, int n, void *ctx) {
    const char *want = ctx;
    return (int)strlen(want) == n && !strncmp(w, want, n);
}

bool has_word(const char *line, const char *word) { return each_word(line, word_is, (void *)word); }

struct kv { const char *key; char *buf; int size; };
static bool word_kv(const char *w, int n, void *ctx) {
    struct kv *kv = ctx;
    int k = (int)strlen(kv->key);
    if (n <= k || w[k] != '=' || strncmp(w, kv->key, k)) return false;
    int len = n - k - 1;
    if (len > kv->size - 1) len = kv->size - 1;
    memcpy(kv->buf, w + k + 1, len);
    kv->buf[len] = 0;
    return true;
}

bool word_value(const char *line, const char *key, char *buf, int size) {
    struct kv kv = { key, buf, size };
    return each_word(line, word_kv, &kv);
}

u32 parse_u32(const char *s, bool *ok) {
    u32 v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { /* hexadecimal */
        *ok = s[2] != 0;
        for (s += 2; *s; s++) {
            u32 d = *s >= '0' && *s <= '9' ? (u32)(*s - '0') : (u32)((*s | 0x20) - 'a') + 10;
            if (d > 15) {
                *ok = false;
                break;
            }
            v = v * 16 + d;
        }
        return v;
    }
    *ok = *s != 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            *ok = false;
            break;
        }
        v = v * 10 + (u32)(*s - '0');
    }
    return v;
}

/* The last path component of the first `len` bytes of path. */
const char *basename_(const char *path, int len, int *outlen) {
    int start = 0;
    for (int i = 0; i < len; i++) {
        if (path[i] == '/' || path[i] == '\\') start = i + 1;
    }
    *outlen = len - start;
    return path + start;
}
