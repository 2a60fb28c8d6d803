/* UEFI front-end: efi_main gathers what the kernel needs while boot services
 * still run (command line, files, memory map), leaves boot services and hands
 * a struct hv_bootinfo to hv_start().
 *
 * Order matters: every allocation happens before the final GetMemoryMap(),
 * because allocating changes the map and would make its key stale
 * (UEFI 2.10 §7.4 ExitBootServices). COM1 output goes straight to the UART
 * (hv_puts), never through ConOut, so it keeps working after boot services. */
#include "uefi.h"

void *uefi_alloc(struct uefi *u, u64 bytes)
{
    /* AllocatePages (§7.2) with EfiLoaderData: after ExitBootServices such
     * pages stay ours, and memmap.c marks them HV_MEM_HYPERVISOR. */
    u64 pages = (bytes + EFI_PAGE_SIZE - 1) / EFI_PAGE_SIZE;
    u64 addr = 0;
    if (pages == 0)
        pages = 1;
    efi_status s = u->bs->allocate_pages(EFI_ALLOCATE_ANY_PAGES, EfiLoaderData, pages, &addr);
    if (EFI_ERROR(s))
        uefi_fail("cannot allocate memory", 0, s);
    memset((void *)addr, 0, pages * EFI_PAGE_SIZE);
    return (void *)addr;
}

void uefi_free(struct uefi *u, void *p, u64 bytes)
{
    u64 pages = (bytes + EFI_PAGE_SIZE - 1) / EFI_PAGE_SIZE;
    u->bs->free_pages((u64)p, pages ? pages : 1);
}

void uefi_put_status(efi_status s)
{
    hv_puts("EFI status ");
    hv_put_hex(s);
}

/* "hv: uefi: WHAT[ ARG]: EFI status 0x...", then stop with HV_STATUS_BOOT. */
_Noreturn void uefi_fail(const char *what, const char *arg, efi_status s)
{
    hv_puts("hv: uefi: ");
    hv_puts(what);
    if (arg) {
        hv_puts(" ");
        hv_puts(arg);
    }
    hv_puts(": ");
    uefi_put_status(s);
    hv_puts("\n");
    hv_exit(HV_STATUS_BOOT);
}

/* The ACPI RSDP from the configuration table (§4.6), for boot/smp's MADT
 * search: legacy BIOS areas hold no RSDP under UEFI. 0 if absent. */
static u64 uefi_rsdp(efi_system_table *st)
{
    static const efi_guid acpi20 = EFI_ACPI_20_TABLE_GUID, acpi10 = EFI_ACPI_10_TABLE_GUID;
    u64 rsdp = 0;
    for (u64 i = 0; i < st->number_of_table_entries; i++) {
        const efi_configuration_table *t = &st->configuration_table[i];
        if (memcmp(&t->vendor_guid, &acpi20, sizeof acpi20) == 0)
            return (u64)t->vendor_table;
        if (memcmp(&t->vendor_guid, &acpi10, sizeof acpi10) == 0)
            rsdp = (u64)t->vendor_table;
    }
    return rsdp;
}

/* Entry point named by the linker (/entry:efi_main); UEFI calls it with the
 * image handle and the system table (§4.1 EFI_IMAGE_ENTRY_POINT). */
efi_status efi_main(efi_handle image, efi_system_table *st)
{
    u64 tsc_at_entry = rdtsc();
    struct uefi u = { .image = image, .st = st, .bs = st->boot_services };
    struct uefi_map map;
    efi_status s;

    hv_console_init();
    hv_puts("hv: uefi: started\n");

    /* The boot manager arms a 5-minute watchdog before starting an image
     * (§3.1.2); a hypervisor runs for longer. Timeout 0 disables it (§7.5). */
    s = u.bs->set_watchdog_timer(0, 0, 0, 0);
    if (EFI_ERROR(s)) {
        hv_puts("hv: uefi: cannot disable the watchdog: ");
        uefi_put_status(s);
        hv_puts("\n");
    }

    /* Every image gets a Loaded Image protocol on its handle (§9.1). */
    static const efi_guid loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
    s = u.bs->handle_protocol(image, &loaded_image_guid, (void **)&u.loaded_image);
    if (EFI_ERROR(s))
        uefi_fail("no loaded image protocol", 0, s);

    uefi_open_esp(&u);
    char *cmdline = uefi_cmdline(&u);

    struct hv_bootinfo *bi = uefi_alloc(&u, sizeof *bi);
    bi->magic = HV_BOOTINFO_MAGIC;
    bi->version = HV_BOOTINFO_VERSION;
    bi->source = HV_BOOT_SOURCE_UEFI;
    bi->cmdline = (u64)cmdline;
    bi->cmdline_len = strlen(cmdline);
    bi->tsc_at_entry = tsc_at_entry;
    bi->cpu_count = 0; /* not counted yet */
    bi->rsdp = uefi_rsdp(st);
    /* linear_base/linear_size: left 0, hv_start fills them in. */

    struct hv_file *files;
    bi->file_count = uefi_load_files(&u, cmdline, &files);
    bi->files = (u64)files;

    /* Last use of boot services; the map's room for the entries appended
     * to it (the image and one per file) is allocated here too. */
    uefi_exit_boot_services(&u, &map, bi->file_count + 8);
    bi->mmap_count = uefi_translate_map(&map, files, bi->file_count);
    bi->mmap = (u64)map.out;
    bi->mmap_capacity = map.out_cap;

    hv_start(bi);
}
