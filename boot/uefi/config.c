/* The command line and the files it names.
 *
 * Source of the command line, in order of precedence:
 *   1. the image's LoadOptions (UEFI 2.10 §9.1), when they hold text: the
 *      UEFI shell passes the whole command as typed, image name first;
 *   2. the file \EFI\BOOT\hv.cfg on the ESP the image came from: lines
 *      starting with '#' are comments, the others are joined with spaces;
 *   3. otherwise empty.
 * Each token key=/path (or key=\path) names a file on the same ESP, which
 * is read into EfiLoaderData pages and listed in bootinfo.files. */
#include "uefi.h"

#define CONFIG_PATH "\\EFI\\BOOT\\hv.cfg"
#define MAX_PATH 256

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* LoadedImage->DeviceHandle is the volume the image was read from (§9.1);
 * its Simple File System protocol (§13.4) opens that volume's root. */
void uefi_open_esp(struct uefi *u)
{
    static const efi_guid sfs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;
    efi_simple_file_system *fs;
    efi_status s = u->bs->handle_protocol(u->loaded_image->device_handle, &sfs_guid, (void **)&fs);
    if (!EFI_ERROR(s))
        s = fs->open_volume(fs, &u->root);
    if (EFI_ERROR(s)) {
        u->root = 0;
        hv_puts("hv: uefi: boot volume has no file system: ");
        uefi_put_status(s);
        hv_puts("\n");
    }
}

/* ASCII path to the UTF-16 form EFI_FILE_PROTOCOL.Open() takes (§13.5),
 * with '/' turned into the '\' separator UEFI file names use. */
static bool to_path16(const char *p, u32 len, char16 *out)
{
    if (len >= MAX_PATH)
        return false;
    for (u32 i = 0; i < len; i++)
        out[i] = p[i] == '/' ? '\\' : (u8)p[i];
    out[len] = 0;
    return true;
}

/* Read a whole file into fresh EfiLoaderData pages, with `extra` zeroed
 * bytes after it. The size comes from EFI_FILE_PROTOCOL.SetPosition(~0),
 * which moves to the end of the file, and GetPosition() (§13.5); on a
 * directory SetPosition() fails, so directories are refused here as well. */
static efi_status read_file(struct uefi *u, const char16 *path, u8 **data, u64 *size, u64 extra)
{
    efi_file *f;
    u64 len = 0, done = 0;
    if (!u->root)
        return EFI_NOT_FOUND;
    efi_status s = u->root->open(u->root, &f, path, EFI_FILE_MODE_READ, 0);
    if (EFI_ERROR(s))
        return s;
    s = f->set_position(f, ~0ull);
    if (!EFI_ERROR(s))
        s = f->get_position(f, &len);
    if (!EFI_ERROR(s))
        s = f->set_position(f, 0);
    if (!EFI_ERROR(s)) {
        u8 *buf = uefi_alloc(u, len + extra);
        /* Read() returns fewer bytes only at the end of the file (§13.5);
         * loop anyway rather than trust one call with a large buffer. */
        while (done < len) {
            u64 n = len - done;
            s = f->read(f, &n, buf + done);
            if (EFI_ERROR(s) || n == 0)
                break;
            done += n;
        }
        if (!EFI_ERROR(s) && done != len)
            s = EFI_NOT_FOUND; /* the file shrank under us */
        if (EFI_ERROR(s)) {
            uefi_free(u, buf, len + extra);
        } else {
            *data = buf;
            *size = len;
        }
    }
    f->close(f);
    return s;
}

/* Turn the configuration file's text into the command line in place: drop
 * comment and blank lines, trim each line, join with single spaces. The
 * output never overtakes the input, so one buffer serves both. */
static u64 config_to_cmdline(char *s, u64 n)
{
    u64 out = 0, i = 0;
    if (n >= 3 && (u8)s[0] == 0xef && (u8)s[1] == 0xbb && (u8)s[2] == 0xbf)
        i = 3; /* UTF-8 byte-order mark some editors write */
    while (i < n) {
        u64 a = i, b;
        while (i < n && s[i] != '\n')
            i++;
        b = i++;
        while (a < b && is_space(s[a]))
            a++;
        while (b > a && is_space(s[b - 1]))
            b--;
        if (a == b || s[a] == '#')
            continue;
        if (out)
            s[out++] = ' ';
        /* The kernel takes printable ASCII only (kernel/boot/bootinfo.ts):
         * tabs and other control bytes become spaces, anything else '?'. */
        for (; a < b; a++) {
            u8 c = s[a];
            s[out++] = c < 0x20 ? ' ' : c > 0x7e ? '?' : c;
        }
    }
    s[out] = 0;
    return out;
}

/* LoadOptions as ASCII, or NULL when there are none or they are not text.
 * Besides the shell's command line, a boot option (Boot####) may carry
 * binary OptionalData here (§3.1.3 Load Options), not meant for us. */
static char *options_to_cmdline(struct uefi *u)
{
    const char16 *w = u->loaded_image->load_options;
    u32 n = u->loaded_image->load_options_size / 2, len = 0, i = 0;
    if (!w || n == 0)
        return 0;
    char *buf = uefi_alloc(u, n + 1);
    for (; i < n && w[i]; i++) {
        char16 c = w[i];
        if (c == '\t' || c == '\r' || c == '\n')
            c = ' ';
        if (c < 0x20 || c > 0x7e) {
            hv_puts("hv: uefi: load options are not text, ignored\n");
            uefi_free(u, buf, n + 1);
            return 0;
        }
        buf[len++] = (char)c;
    }
    /* The shell passes the image's own name first: drop a first word
     * ending in ".efi" (any case). */
    u32 a = 0, e;
    while (a < len && buf[a] == ' ')
        a++;
    e = a;
    while (e < len && buf[e] != ' ')
        e++;
    if (e - a >= 4 && buf[e - 4] == '.' && (buf[e - 3] | 0x20) == 'e' &&
        (buf[e - 2] | 0x20) == 'f' && (buf[e - 1] | 0x20) == 'i')
        a = e;
    while (a < len && buf[a] == ' ')
        a++;
    while (len > a && buf[len - 1] == ' ')
        len--;
    if (a == len) {
        uefi_free(u, buf, n + 1);
        return 0;
    }
    memmove(buf, buf + a, len - a);
    buf[len - a] = 0;
    return buf;
}

char *uefi_cmdline(struct uefi *u)
{
    char *cmdline = options_to_cmdline(u);
    if (cmdline) {
        hv_puts("hv: uefi: command line from load options\n");
    } else {
        char16 path[MAX_PATH];
        u8 *data;
        u64 size;
        to_path16(CONFIG_PATH, sizeof CONFIG_PATH - 1, path);
        efi_status s = read_file(u, path, &data, &size, 1);
        if (!EFI_ERROR(s)) {
            cmdline = (char *)data;
            config_to_cmdline(cmdline, size);
            hv_puts("hv: uefi: command line from " CONFIG_PATH "\n");
        } else {
            /* A missing file is normal; anything else is worth a word. */
            if (s != EFI_NOT_FOUND) {
                hv_puts("hv: uefi: cannot read " CONFIG_PATH ": ");
                uefi_put_status(s);
                hv_puts("\n");
            }
            cmdline = uefi_alloc(u, 1);
            hv_puts("hv: uefi: command line empty\n");
        }
    }
    hv_puts("hv: uefi: cmdline: ");
    hv_puts(cmdline);
    hv_puts("\n");
    return cmdline;
}

/* Load every file the command line names; returns how many. */
u32 uefi_load_files(struct uefi *u, const char *cmdline, struct hv_file **files_out)
{
    u64 cmdline_len = strlen(cmdline);
    struct hv_file *files = uefi_alloc(u, UEFI_MAX_FILES * sizeof *files);
    /* Names are copies of parts of the command line, so they fit in its
     * length plus one terminator each. */
    char *names = uefi_alloc(u, cmdline_len + UEFI_MAX_FILES);
    u32 count = 0;
    const char *p = cmdline;

    for (;;) {
        while (is_space(*p))
            p++;
        if (!*p)
            break;
        const char *tok = p, *eq = 0;
        while (*p && !is_space(*p)) {
            if (!eq && *p == '=')
                eq = p;
            p++;
        }
        if (!eq || eq == tok || (eq[1] != '/' && eq[1] != '\\'))
            continue;

        const char *path = eq + 1;
        u32 len = p - path;
        if (count == UEFI_MAX_FILES) {
            hv_puts("hv: uefi: more than 32 files on the command line\n");
            hv_exit(HV_STATUS_BOOT);
        }
        struct hv_file *f = &files[count++];
        memcpy(names, path, len);
        names[len] = 0;
        f->name = (u64)names;
        f->name_len = len;
        f->reserved = 0;

        char16 path16[MAX_PATH];
        u8 *data = 0;
        efi_status s = to_path16(path, len, path16) ? read_file(u, path16, &data, &f->length, 0)
                                                    : EFI_INVALID_PARAMETER;
        if (EFI_ERROR(s))
            uefi_fail("cannot open", names, s);
        f->base = (u64)data;
        names += len + 1;

        hv_puts("hv: uefi: loaded ");
        hv_puts((const char *)f->name);
        hv_puts(" (");
        hv_put_dec(f->length);
        hv_puts(" bytes at ");
        hv_put_hex(f->base);
        hv_puts(")\n");
    }
    *files_out = files;
    return count;
}
