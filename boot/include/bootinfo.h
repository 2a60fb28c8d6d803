/* Boot information handed from a boot front-end (UEFI or multiboot2) to the
 * kernel. Both front-ends build the same structure in physical memory; the
 * kernel reads it through the mem.* imports (kernel/boot/bootinfo.ts mirrors
 * these offsets). All integers little-endian; all addresses physical. */
#ifndef HV_BOOTINFO_H
#define HV_BOOTINFO_H
#include "types.h"

#define HV_BOOTINFO_MAGIC   0x49425648u /* "HVBI" */
#define HV_BOOTINFO_VERSION 1u

#define HV_BOOT_SOURCE_UEFI      1u
#define HV_BOOT_SOURCE_MULTIBOOT 2u

/* Memory-map entry types. 1-5 follow the multiboot/E820 meaning. */
#define HV_MEM_AVAILABLE  1u
#define HV_MEM_RESERVED   2u
#define HV_MEM_ACPI       3u
#define HV_MEM_NVS        4u
#define HV_MEM_BAD        5u
/* The hypervisor's own memory (image, stacks, page tables, wasm linear
 * memory): never allocated, never given to a guest, and refused by the mem.*
 * imports (boot/common/protect.c). */
#define HV_MEM_HYPERVISOR 0x100u
/* A file handed to the kernel (guest kernel, module): readable, not allocatable. */
#define HV_MEM_BOOTFILE   0x101u
/* Boot data (this structure, the map, the file table, strings, firmware
 * hand-over data such as the multiboot information): readable, not allocatable. */
#define HV_MEM_BOOTDATA   0x102u

struct hv_mmap_entry {      /* 24 bytes */
    u64 base;
    u64 length;
    u32 type;
    u32 reserved;
};

struct hv_file {            /* 32 bytes */
    u64 base;               /* file contents */
    u64 length;
    u64 name;               /* NUL-terminated ASCII: the file name, then optional
                               space-separated arguments (multiboot module string) */
    u32 name_len;
    u32 reserved;           /* 0 */
};

struct hv_bootinfo {        /* 88 bytes */
    u32 magic;              /*  0 */
    u32 version;            /*  4 */
    u32 source;             /*  8 HV_BOOT_SOURCE_* */
    u32 mmap_count;         /* 12 */
    u64 mmap;               /* 16 struct hv_mmap_entry[mmap_count] */
    u64 cmdline;            /* 24 NUL-terminated ASCII */
    u32 cmdline_len;        /* 32 */
    u32 file_count;         /* 36 */
    u64 files;              /* 40 struct hv_file[file_count] */
    u64 tsc_at_entry;       /* 48 RDTSC when the front-end got control */
    u64 linear_base;        /* 56 wasm linear memory region */
    u64 linear_size;        /* 64 */
    u32 cpu_count;          /* 72 processors the firmware reported (0 = unknown) */
    u32 mmap_capacity;      /* 76 entries the map array has room for (hv_start
                               appends the linear memory's range) */
    u64 rsdp;               /* 80 ACPI RSDP (UEFI: from the configuration table);
                               0 = unknown: boot/smp searches the BIOS areas */
};

_Static_assert(sizeof(struct hv_mmap_entry) == 24, "mmap entry layout");
_Static_assert(sizeof(struct hv_file) == 32, "file layout");
_Static_assert(sizeof(struct hv_bootinfo) == 88, "bootinfo layout");

#endif
