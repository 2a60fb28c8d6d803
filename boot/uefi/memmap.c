/* Leaving boot services, and the firmware memory map in bootinfo form.
 *
 * UEFI 2.10 §7.4 ExitBootServices(): the caller passes the key of the
 * current memory map; if the map changed since (any allocation, or the
 * firmware's own timer work), the call fails with EFI_INVALID_PARAMETER and
 * the loader must get the map again and retry. After the first call only
 * the memory allocation services may be used, so every buffer is allocated
 * before it, with room to spare: the retry cannot allocate. */
#include "uefi.h"

/* Room left in the map buffer for descriptors that appear between sizing
 * the map and reading it (our own two allocations split at most two free
 * ranges each; the firmware may allocate too). */
#define MAP_SLACK_DESCRIPTORS 16u

static void alloc_map(struct uefi *u, struct uefi_map *m, u64 needed, u32 extra_entries)
{
    u64 desc = m->desc_size ? m->desc_size : sizeof(efi_memory_descriptor);
    if (m->buf) {
        uefi_free(u, m->buf, m->cap);
        uefi_free(u, m->out, (u64)m->out_cap * sizeof *m->out);
    }
    m->cap = needed + MAP_SLACK_DESCRIPTORS * desc;
    m->buf = uefi_alloc(u, m->cap);
    /* Descriptors are at least sizeof(efi_memory_descriptor) bytes (§7.2),
     * so this bounds the number of entries the buffer can return. */
    m->out_cap = m->cap / sizeof(efi_memory_descriptor) + extra_entries;
    m->out = uefi_alloc(u, (u64)m->out_cap * sizeof *m->out);
}

static efi_status get_map(struct uefi *u, struct uefi_map *m)
{
    m->size = m->cap;
    return u->bs->get_memory_map(&m->size, (efi_memory_descriptor *)m->buf, &m->key,
                                 &m->desc_size, &m->desc_version);
}

void uefi_exit_boot_services(struct uefi *u, struct uefi_map *m, u32 extra_entries)
{
    efi_status s;
    memset(m, 0, sizeof *m);
    hv_puts("hv: uefi: exiting boot services\n");

    /* GetMemoryMap() (§7.2) with a too-small buffer reports the size it
     * needs; grow until a read succeeds, which also gives the map key. */
    while ((s = get_map(u, m)) == EFI_BUFFER_TOO_SMALL)
        alloc_map(u, m, m->size, extra_entries);
    if (EFI_ERROR(s))
        uefi_fail("GetMemoryMap failed", 0, s);

    s = u->bs->exit_boot_services(u->image, m->key);
    if (s == EFI_INVALID_PARAMETER) {
        /* Stale key: the map changed after we read it. Read it again (no
         * allocation, the buffer has slack) and retry once. */
        s = get_map(u, m);
        if (!EFI_ERROR(s))
            s = u->bs->exit_boot_services(u->image, m->key);
    }
    if (EFI_ERROR(s))
        uefi_fail("ExitBootServices failed", 0, s);

    /* Boot services are gone, and with them the firmware's interrupt
     * handlers; keep interrupts off until hv_start loads its own IDT. */
    __asm__ volatile("cli");
}

/* UEFI memory types to bootinfo types. Boot-services code and data are
 * free once boot services have exited (§7.2 Table "Memory Type Usage after
 * ExitBootServices()"); our own stack is still in them, but hv_start moves
 * to a stack in the image before it allocates anything. The firmware loads
 * our image as EfiLoaderCode (ImageCodeType of an application, §9.1), and
 * everything uefi_alloc() returns is EfiLoaderData: the bootinfo, this map,
 * the command line, the file table and the files. The kernel must read the
 * latter, so they are boot data (not allocatable, not refused by mem.*);
 * the image is appended as HV_MEM_HYPERVISOR in any case, and where a range
 * carries both types the hypervisor's one wins (boot/common/protect.c). */
static u32 hv_type(u32 efi_type)
{
    switch (efi_type) {
    case EfiConventionalMemory:
    case EfiBootServicesCode:
    case EfiBootServicesData:
        return HV_MEM_AVAILABLE;
    case EfiLoaderCode:
        return HV_MEM_HYPERVISOR;
    case EfiLoaderData:
        return HV_MEM_BOOTDATA;
    case EfiACPIReclaimMemory:
        return HV_MEM_ACPI;
    case EfiACPIMemoryNVS:
        return HV_MEM_NVS;
    case EfiUnusableMemory:
        return HV_MEM_BAD;
    default: /* runtime services, MMIO, reserved, persistent, unaccepted, ... */
        return HV_MEM_RESERVED;
    }
}

static void append(const struct uefi_map *m, u32 *n, u64 base, u64 length, u32 type)
{
    if (*n >= m->out_cap || length == 0)
        return; /* cannot happen: out_cap counts every descriptor plus the extras */
    m->out[*n] = (struct hv_mmap_entry){ .base = base, .length = length, .type = type };
    (*n)++;
}

/* Fill m->out from the final firmware map: translated, sorted by address
 * (the spec does not promise an order), adjacent ranges of one type
 * merged; then the image and the files, which overlap the entries above
 * and take precedence over them. Returns the entry count. Runs after
 * ExitBootServices(): no boot services here. */
u32 uefi_translate_map(const struct uefi_map *m, const struct hv_file *files, u32 file_count)
{
    struct hv_mmap_entry *e = m->out;
    u32 n = 0, merged = 0;
    u64 available = 0;

    for (u64 off = 0; off + m->desc_size <= m->size; off += m->desc_size) {
        const efi_memory_descriptor *d = (const efi_memory_descriptor *)(m->buf + off);
        append(m, &n, d->physical_start, d->number_of_pages * EFI_PAGE_SIZE, hv_type(d->type));
    }

    for (u32 i = 1; i < n; i++) { /* insertion sort: the map is short and nearly sorted */
        struct hv_mmap_entry x = e[i];
        u32 j = i;
        for (; j > 0 && e[j - 1].base > x.base; j--)
            e[j] = e[j - 1];
        e[j] = x;
    }

    for (u32 i = 0; i < n; i++) {
        struct hv_mmap_entry *last = merged ? &e[merged - 1] : 0;
        if (last && last->type == e[i].type && last->base + last->length == e[i].base)
            last->length += e[i].length;
        else
            e[merged++] = e[i];
        if (e[i].type == HV_MEM_AVAILABLE)
            available += e[i].length;
    }
    n = merged;

    u64 image_base, image_end;
    hv_image_range(&image_base, &image_end);
    append(m, &n, image_base, image_end - image_base, HV_MEM_HYPERVISOR);
    for (u32 i = 0; i < file_count; i++)
        append(m, &n, files[i].base, files[i].length, HV_MEM_BOOTFILE);

    hv_puts("hv: uefi: memory map: ");
    hv_put_dec(n);
    hv_puts(" entries, ");
    hv_put_dec(available >> 20);
    hv_puts(" MiB available\n");
    return n;
}
