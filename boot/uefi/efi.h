/* The few UEFI definitions the front-end uses, written from the UEFI
 * Specification 2.10. Only the members we call are typed; every other
 * function pointer is a plain `void *` kept so the offsets stay right.
 * The offsets are checked by the _Static_asserts at the end.
 *
 * Calling convention (UEFI 2.10 §2.3.4.2): UEFI functions use the Microsoft
 * x64 ABI. The front-end is compiled for x86_64-unknown-windows-gnu, where
 * that is already the default, so EFIAPI only documents it. */
#ifndef HV_UEFI_EFI_H
#define HV_UEFI_EFI_H
#include "types.h"

#define EFIAPI __attribute__((ms_abi))

typedef u64 efi_status;
typedef void *efi_handle;
typedef u16 char16;

/* Status codes (UEFI 2.10 Appendix D): errors have the top bit set. */
#define EFI_SUCCESS              0ull
#define EFI_ERROR_BIT            (1ull << 63)
#define EFI_ERROR(s)             (((s) & EFI_ERROR_BIT) != 0)
#define EFI_INVALID_PARAMETER    (EFI_ERROR_BIT | 2)
#define EFI_BUFFER_TOO_SMALL     (EFI_ERROR_BIT | 5)
#define EFI_NOT_FOUND            (EFI_ERROR_BIT | 14)

typedef struct {
    u32 data1;
    u16 data2;
    u16 data3;
    u8 data4[8];
} efi_guid;

/* §4.2 EFI_TABLE_HEADER */
typedef struct {
    u64 signature;
    u32 revision;
    u32 header_size;
    u32 crc32;
    u32 reserved;
} efi_table_header;

/* §7.2 EFI_ALLOCATE_TYPE and EFI_MEMORY_TYPE */
#define EFI_ALLOCATE_ANY_PAGES 0u

enum {
    EfiReservedMemoryType = 0,
    EfiLoaderCode = 1,
    EfiLoaderData = 2,
    EfiBootServicesCode = 3,
    EfiBootServicesData = 4,
    EfiRuntimeServicesCode = 5,
    EfiRuntimeServicesData = 6,
    EfiConventionalMemory = 7,
    EfiUnusableMemory = 8,
    EfiACPIReclaimMemory = 9,
    EfiACPIMemoryNVS = 10,
    EfiMemoryMappedIO = 11,
    EfiMemoryMappedIOPortSpace = 12,
    EfiPalCode = 13,
    EfiPersistentMemory = 14,
    EfiUnacceptedMemoryType = 15,
};

#define EFI_PAGE_SIZE 4096ull

/* §7.2 EFI_MEMORY_DESCRIPTOR. The firmware may return larger descriptors
 * than this struct: always step through a map by the DescriptorSize that
 * GetMemoryMap() reports. */
typedef struct {
    u32 type;
    u32 pad;
    u64 physical_start;
    u64 virtual_start;
    u64 number_of_pages;
    u64 attribute;
} efi_memory_descriptor;

/* §4.4 EFI_BOOT_SERVICES, up to the last member we use. */
typedef struct {
    efi_table_header hdr;
    void *raise_tpl;
    void *restore_tpl;
    efi_status (EFIAPI *allocate_pages)(u32 type, u32 memory_type, u64 pages, u64 *memory);
    efi_status (EFIAPI *free_pages)(u64 memory, u64 pages);
    efi_status (EFIAPI *get_memory_map)(u64 *map_size, efi_memory_descriptor *map, u64 *map_key,
                                        u64 *descriptor_size, u32 *descriptor_version);
    void *allocate_pool;
    void *free_pool;
    void *create_event;
    void *set_timer;
    void *wait_for_event;
    void *signal_event;
    void *close_event;
    void *check_event;
    void *install_protocol_interface;
    void *reinstall_protocol_interface;
    void *uninstall_protocol_interface;
    efi_status (EFIAPI *handle_protocol)(efi_handle handle, const efi_guid *protocol, void **iface);
    void *reserved;
    void *register_protocol_notify;
    void *locate_handle;
    void *locate_device_path;
    void *install_configuration_table;
    void *load_image;
    void *start_image;
    void *exit;
    void *unload_image;
    efi_status (EFIAPI *exit_boot_services)(efi_handle image, u64 map_key);
    void *get_next_monotonic_count;
    void *stall;
    efi_status (EFIAPI *set_watchdog_timer)(u64 timeout, u64 code, u64 data_size, char16 *data);
} efi_boot_services;

/* §4.6 EFI_CONFIGURATION_TABLE and the ACPI entries' GUIDs (the table
 * holds the RSDP: ACPI 2.0+ preferred, else 1.0). */
typedef struct {
    efi_guid vendor_guid;
    void *vendor_table;
} efi_configuration_table;
#define EFI_ACPI_20_TABLE_GUID \
    { 0x8868e871, 0xe4f1, 0x11d3, { 0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81 } }
#define EFI_ACPI_10_TABLE_GUID \
    { 0xeb9d2d30, 0x2d88, 0x11d3, { 0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d } }

/* §4.3 EFI_SYSTEM_TABLE, up to the configuration table. */
typedef struct {
    efi_table_header hdr;
    char16 *firmware_vendor;
    u32 firmware_revision;
    efi_handle console_in_handle;
    void *con_in;
    efi_handle console_out_handle;
    void *con_out;
    efi_handle standard_error_handle;
    void *std_err;
    void *runtime_services;
    efi_boot_services *boot_services;
    u64 number_of_table_entries;
    efi_configuration_table *configuration_table;
} efi_system_table;

/* §9.1 EFI_LOADED_IMAGE_PROTOCOL, up to LoadOptions. */
#define EFI_LOADED_IMAGE_PROTOCOL_GUID \
    { 0x5b1b31a1, 0x9562, 0x11d2, { 0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
typedef struct {
    u32 revision;
    efi_handle parent_handle;
    efi_system_table *system_table;
    efi_handle device_handle;  /* the device (here: the ESP) the image was loaded from */
    void *file_path;
    void *reserved;
    u32 load_options_size;     /* in bytes */
    void *load_options;
} efi_loaded_image;

/* §13.5 EFI_FILE_PROTOCOL, up to SetPosition. */
#define EFI_FILE_MODE_READ 1ull
typedef struct efi_file efi_file;
struct efi_file {
    u64 revision;
    efi_status (EFIAPI *open)(efi_file *self, efi_file **new_handle, const char16 *name,
                              u64 open_mode, u64 attributes);
    efi_status (EFIAPI *close)(efi_file *self);
    void *delete_;
    efi_status (EFIAPI *read)(efi_file *self, u64 *size, void *buffer);
    void *write;
    efi_status (EFIAPI *get_position)(efi_file *self, u64 *position);
    efi_status (EFIAPI *set_position)(efi_file *self, u64 position);
};

/* §13.4 EFI_SIMPLE_FILE_SYSTEM_PROTOCOL */
#define EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID \
    { 0x964e5b22, 0x6459, 0x11d2, { 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
typedef struct {
    u64 revision;
    efi_status (EFIAPI *open_volume)(void *self, efi_file **root);
} efi_simple_file_system;

_Static_assert(__builtin_offsetof(efi_system_table, boot_services) == 96, "EFI_SYSTEM_TABLE");
_Static_assert(__builtin_offsetof(efi_system_table, configuration_table) == 112, "EFI_SYSTEM_TABLE");
_Static_assert(__builtin_offsetof(efi_boot_services, allocate_pages) == 40, "AllocatePages");
_Static_assert(__builtin_offsetof(efi_boot_services, get_memory_map) == 56, "GetMemoryMap");
_Static_assert(__builtin_offsetof(efi_boot_services, handle_protocol) == 152, "HandleProtocol");
_Static_assert(__builtin_offsetof(efi_boot_services, exit_boot_services) == 232, "ExitBootServices");
_Static_assert(__builtin_offsetof(efi_boot_services, set_watchdog_timer) == 256, "SetWatchdogTimer");
_Static_assert(__builtin_offsetof(efi_loaded_image, device_handle) == 24, "DeviceHandle");
_Static_assert(__builtin_offsetof(efi_loaded_image, load_options_size) == 48, "LoadOptionsSize");
_Static_assert(__builtin_offsetof(efi_loaded_image, load_options) == 56, "LoadOptions");
_Static_assert(__builtin_offsetof(efi_file, read) == 32, "EFI_FILE_PROTOCOL.Read");
_Static_assert(__builtin_offsetof(efi_file, set_position) == 56, "EFI_FILE_PROTOCOL.SetPosition");
_Static_assert(sizeof(efi_memory_descriptor) == 40, "EFI_MEMORY_DESCRIPTOR");

#endif
