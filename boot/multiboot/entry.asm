; Multiboot2 entry (Multiboot2 specification 3.2/3.3): GRUB loads hv.elf and
; jumps to _start in 32-bit protected mode, paging off, EAX = 0x36d76289 and
; EBX = the physical address of the boot information. We build a temporary
; identity map of the low 4 GiB, enter long mode (SDM Vol. 3A 9.8.5) and call
; mb_main(magic, info) on a small boot stack; boot/common then switches to
; its own tables and stack.

MB2_MAGIC    equ 0xe85250d6
MB2_ARCH_X86 equ 0

section .multiboot2 progbits alloc noexec nowrite align=8
mb2_header:
    dd MB2_MAGIC
    dd MB2_ARCH_X86
    dd mb2_header_end - mb2_header
    dd -(MB2_MAGIC + MB2_ARCH_X86 + (mb2_header_end - mb2_header))
    ; end tag
    dw 0, 0
    dd 8
mb2_header_end:

section .text.entry progbits alloc exec nowrite align=16
bits 32
global _start
extern mb_main
_start:
    cli
    mov edi, eax                ; keep magic and info for mb_main
    mov esi, ebx
    mov esp, boot32_stack_top

    ; zero the temporary tables (a loader need not clear them)
    push edi
    mov edi, tmp_pml4
    mov ecx, (6 * 4096) / 4
    xor eax, eax
    rep stosd
    pop edi

    ; PML4[0] -> PDPT; PDPT[0..3] -> four PDs of 2 MiB pages = 4 GiB
    mov dword [tmp_pml4], tmp_pdpt + 3
    mov eax, tmp_pd + 3
    mov dword [tmp_pdpt + 0], eax
    add eax, 4096
    mov dword [tmp_pdpt + 8], eax
    add eax, 4096
    mov dword [tmp_pdpt + 16], eax
    add eax, 4096
    mov dword [tmp_pdpt + 24], eax
    mov ebx, tmp_pd
    xor ecx, ecx
.fill:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83                ; present, writable, 2 MiB page
    mov [ebx + ecx * 8], eax
    mov eax, ecx
    shr eax, 11                 ; bits 63:32 of the page address
    mov [ebx + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne .fill

    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10) ; PAE, OSFXSR, OSXMMEXCPT (compiled C uses SSE)
    mov cr4, eax
    mov eax, tmp_pml4
    mov cr3, eax
    mov ecx, 0xc0000080         ; IA32_EFER
    rdmsr
    or eax, 1 << 8              ; LME
    wrmsr
    mov eax, cr0
    and eax, ~(1 << 2)          ; EM off
    or eax, (1 << 31) | (1 << 1) | 1 ; PG, MP, PE
    mov cr0, eax
    lgdt [gdt_ptr]
    jmp 0x08:long_mode

bits 64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, boot32_stack_top
    mov edi, edi                ; zero-extend the arguments
    mov esi, esi
    call mb_main
.halt:
    cli
    hlt
    jmp .halt

section .rodata
align 8
gdt:
    dq 0
    dq 0x00af9a000000ffff       ; 64-bit code
    dq 0x00cf92000000ffff       ; data
gdt_ptr:
    dw gdt_ptr - gdt - 1
    dq gdt

section .bss nobits alloc noexec write align=4096
tmp_pml4: resb 4096
tmp_pdpt: resb 4096
tmp_pd:   resb 4 * 4096
boot32_stack: resb 16384
boot32_stack_top:

; Boot data for the kernel (struct hv_bootinfo, map, file table: mb.c). It
; lies after the image (linker.ld), outside the ranges mem.* refuses, and is
; NOBITS so the ELF file does not carry the image's .bss as zeros.
section .bootdata nobits alloc noexec write align=4096
global mb_bootdata
mb_bootdata: resb 16384
