/* Shared between the UEFI front-end's files (main.c, config.c, memmap.c). */
#ifndef HV_UEFI_H
#define HV_UEFI_H
#include "hv.h"
#include "efi.h"

#define UEFI_MAX_FILES 32u

/* What the front-end knows about its firmware while boot services run. */
struct uefi {
    efi_handle image;
    efi_system_table *st;
    efi_boot_services *bs;
    efi_loaded_image *loaded_image;
    efi_file *root;              /* root directory of the ESP we came from; NULL if unreachable */
};

/* The firmware map and the storage its translation goes to; both are
 * allocated before ExitBootServices(). */
struct uefi_map {
    u8 *buf;                     /* EFI_MEMORY_DESCRIPTORs, desc_size bytes apart */
    u64 cap;                     /* bytes allocated at buf */
    u64 size;                    /* bytes the last GetMemoryMap() returned */
    u64 key;
    u64 desc_size;
    u32 desc_version;
    struct hv_mmap_entry *out;
    u32 out_cap;                 /* entries allocated at out */
};

/* main.c */
void *uefi_alloc(struct uefi *u, u64 bytes);              /* EfiLoaderData pages, zeroed; stops on failure */
void uefi_free(struct uefi *u, void *p, u64 bytes);
void uefi_put_status(efi_status s);                       /* "EFI status 0x..." */
_Noreturn void uefi_fail(const char *what, const char *arg, efi_status s);

/* config.c */
void uefi_open_esp(struct uefi *u);
char *uefi_cmdline(struct uefi *u);
u32 uefi_load_files(struct uefi *u, const char *cmdline, struct hv_file **files);

/* memmap.c */
void uefi_exit_boot_services(struct uefi *u, struct uefi_map *m, u32 extra_entries);
u32 uefi_translate_map(const struct uefi_map *m, const struct hv_file *files, u32 file_count);

#endif
