/* The multiboot2 front-end: turn GRUB's boot information (Multiboot2
 * specification 3.6) into struct hv_bootinfo and start the kernel. */
#include "hv.h"

#define MB2_BOOTLOADER_MAGIC 0x36d76289u
#define MB2_TAG_END     0
#define MB2_TAG_CMDLINE 1
#define MB2_TAG_MODULE  3
#define MB2_TAG_MMAP    6

#define MMAP_MAX  256
#define FILES_MAX 32

/* Boot data lives in its own section after the image (entry.asm, linker.ld):
 * the kernel reads it through mem.*, which refuses the image itself. */
struct mb_bootdata {
    struct hv_bootinfo bi;
    struct hv_mmap_entry mmap[MMAP_MAX];
    struct hv_file files[FILES_MAX];
};
_Static_assert(sizeof(struct mb_bootdata) <= 16384, "entry.asm reserves 16 KiB");
extern struct mb_bootdata mb_bootdata;
#define bootdata mb_bootdata

extern const u8 __bootdata_start[], __bootdata_end[];

static void add_range(u64 base, u64 len, u32 type) {
    struct hv_bootinfo *bi = &bootdata.bi;
    if (bi->mmap_count == MMAP_MAX) {
        hv_puts("hv: multiboot: memory map too large\n");
        hv_exit(HV_STATUS_BOOT);
    }
    bootdata.mmap[bi->mmap_count].base = base;
    bootdata.mmap[bi->mmap_count].length = len;
    bootdata.mmap[bi->mmap_count].type = type;
    bootdata.mmap[bi->mmap_count].reserved = 0;
    bi->mmap_count++;
}

static u32 e820_type(u32 t) {
    switch (t) {
    case 1: return HV_MEM_AVAILABLE;
    case 3: return HV_MEM_ACPI;
    case 4: return HV_MEM_NVS;
    case 5: return HV_MEM_BAD;
    }
    return HV_MEM_RESERVED;
}

__attribute__((sysv_abi)) void mb_main(u32 magic, u32 info) {
    u64 tsc = rdtsc();
    hv_console_init();
    /* The legacy PIC is left unmasked by the BIOS; mask it until the
     * hypervisor has interrupt vectors of its own. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    if (magic != MB2_BOOTLOADER_MAGIC) {
        hv_puts("hv: multiboot: not started by a multiboot2 loader (magic ");
        hv_put_hex(magic);
        hv_puts(")\n");
        hv_exit(HV_STATUS_BOOT);
    }
    struct hv_bootinfo *bi = &bootdata.bi;
    memset(&bootdata, 0, sizeof bootdata);
    bi->magic = HV_BOOTINFO_MAGIC;
    bi->version = HV_BOOTINFO_VERSION;
    bi->source = HV_BOOT_SOURCE_MULTIBOOT;
    bi->tsc_at_entry = tsc;
    bi->mmap = (u64)bootdata.mmap;
    bi->mmap_capacity = MMAP_MAX;
    bi->files = (u64)bootdata.files;

    u32 total = *(const u32 *)(u64)info;
    const u8 *tag = (const u8 *)(u64)info + 8;
    const u8 *end = (const u8 *)(u64)info + total;
    while (tag + 8 <= end) {
        u32 type = *(const u32 *)tag;
        u32 size = *(const u32 *)(tag + 4);
        if (type == MB2_TAG_END) break;
        if (type == MB2_TAG_CMDLINE) {
            const char *s = (const char *)(tag + 8);
            bi->cmdline = (u64)s;
            bi->cmdline_len = (u32)strlen(s);
        } else if (type == MB2_TAG_MODULE) {
            if (bi->file_count == FILES_MAX) {
                hv_puts("hv: multiboot: too many modules\n");
                hv_exit(HV_STATUS_BOOT);
            }
            struct hv_file *f = &bootdata.files[bi->file_count++];
            u32 start = *(const u32 *)(tag + 8), stop = *(const u32 *)(tag + 12);
            const char *s = (const char *)(tag + 16);
            f->base = start;
            f->length = stop - start;
            f->name = (u64)s;
            f->name_len = (u32)strlen(s);
        } else if (type == MB2_TAG_MMAP) {
            u32 esize = *(const u32 *)(tag + 8);
            for (const u8 *e = tag + 16; e + esize <= tag + size; e += esize)
                add_range(*(const u64 *)e, *(const u64 *)(e + 8), e820_type(*(const u32 *)(e + 16)));
        }
        tag += (size + 7) & ~7u;
    }
    if (bi->mmap_count == 0) {
        hv_puts("hv: multiboot: the loader gave no memory map\n");
        hv_exit(HV_STATUS_BOOT);
    }
    /* Our own ranges: the image, the boot data, the loader's information
     * structure (the command line and module strings point into it), and
     * each module. */
    u64 ib, ie;
    hv_image_range(&ib, &ie);
    add_range(ib, ie - ib, HV_MEM_HYPERVISOR);
    add_range((u64)__bootdata_start, (u64)(__bootdata_end - __bootdata_start), HV_MEM_BOOTDATA);
    add_range(info, total, HV_MEM_BOOTDATA);
    for (u32 i = 0; i < bi->file_count; i++)
        add_range(bootdata.files[i].base, bootdata.files[i].length, HV_MEM_BOOTFILE);
    hv_start(bi);
}
