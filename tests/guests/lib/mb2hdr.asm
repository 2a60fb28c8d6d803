; Multiboot 2 header, architecture 0 (i386, 32-bit protected-mode entry).
; An ELF kernel needs no address tag: the loader uses the ELF headers and the
; ELF entry point. Only the end tag follows.
MB2_MAGIC equ 0xE85250D6
MB2_ARCH equ 0

section .multiboot
align 8
mb2_header:
    dd MB2_MAGIC
    dd MB2_ARCH
    dd mb2_header_end - mb2_header
    dd -(MB2_MAGIC + MB2_ARCH + (mb2_header_end - mb2_header))
    dw 0                        ; end tag: type 0
    dw 0                        ; flags
    dd 8                        ; size
mb2_header_end:
