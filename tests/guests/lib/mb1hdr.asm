; Multiboot 1 header (ELF kernel: the loader takes addresses and the entry
; point from the ELF headers, so no a.out kludge). Flags: bit 0 = modules
; page-aligned, bit 1 = memory information (mem_lower/mem_upper and the map).
MB1_MAGIC equ 0x1BADB002
MB1_FLAGS equ 0x00000003

section .multiboot
align 4
    dd MB1_MAGIC
    dd MB1_FLAGS
    dd -(MB1_MAGIC + MB1_FLAGS)
