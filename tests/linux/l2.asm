; The L2 guest that tests/linux/vmm.c runs under Linux KVM (issue 13): a flat
; binary loaded at 1000H, started in real mode (CS = 0, IP = 1000H). Every
; step leaves a trace the VMM checks: port I/O (KVM_EXIT_IO), CPUID (answered
; by KVM from the VMM's KVM_SET_CPUID2 table), MMIO outside every memory slot
; (KVM_EXIT_MMIO: an EPT violation in L1's EPT for L2), a run of 1,000 port
; writes (1,000 nested round trips L2 -> L0 -> L1 -> L1's user space), then
; protected mode with 4-MiB paging: a write through an alias mapping must land
; in the page the identity mapping reads (L2's page walk through two EPTs).
; Ends with HLT (KVM_EXIT_HLT: no in-kernel irqchip).
bits 16
org 0x1000

PORT_HELLO  equ 0x10
PORT_SUM    equ 0x11
PORT_CPUID  equ 0x12
PORT_ASK    equ 0x13
PORT_ANSWER equ 0x14
PORT_MMIO   equ 0x15
PORT_LOOP   equ 0x16
PORT_ALIAS  equ 0x17
LOOPS       equ 1000

start:
    cli
    mov al, 'L'
    out PORT_HELLO, al

    ; 32-bit sum of the 1,024 dwords the VMM put at 2000H
    xor eax, eax
    mov si, 0x2000
    mov cx, 1024
.sum:
    add eax, [si]
    add si, 4
    loop .sum
    mov dx, PORT_SUM
    out dx, eax

    ; CPUID leaf 0: the vendor string of the VMM's table, EBX EDX ECX
    xor eax, eax
    cpuid
    mov esi, edx
    mov dx, PORT_CPUID
    mov eax, ebx
    out dx, eax
    mov eax, esi
    out dx, eax
    mov eax, ecx
    out dx, eax

    ; IN: the VMM gives a number, L2 answers 3n + 1
    mov dx, PORT_ASK
    in eax, dx
    imul eax, eax, 3
    inc eax
    mov dx, PORT_ANSWER
    out dx, eax

    ; MMIO at E0000H (no memory slot): a write, then a read sent back
    mov ax, 0xe000
    mov ds, ax
    mov dword [0], 0xcafef00d
    mov ebx, [4]
    xor ax, ax
    mov ds, ax
    mov eax, ebx
    mov dx, PORT_MMIO
    out dx, eax

    ; 1,000 exits in a row: 0, 1, ..., 999 to PORT_LOOP
    xor ecx, ecx
    mov dx, PORT_LOOP
.loop:
    mov eax, ecx
    out dx, eax
    inc ecx
    cmp ecx, LOOPS
    jne .loop

    ; protected mode, flat segments
    lgdt [gdtr]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp dword 0x08:pm32

bits 32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x9000
    ; page directory at 10000H: PDE 0 and PDE 1 both map the 4-MiB page at 0
    ; (P, RW, PS), the other 1,022 entries not present
    mov edi, 0x10000
    mov eax, 0x83
    stosd
    stosd
    xor eax, eax
    mov ecx, 1022
    rep stosd
    mov eax, 0x10000
    mov cr3, eax
    mov eax, cr4
    or eax, 0x10            ; CR4.PSE
    mov cr4, eax
    mov eax, cr0
    or eax, 0x80000000      ; CR0.PG
    mov cr0, eax
    ; write through the alias (linear 403800H), read through the identity map
    mov dword [0x403800], 0x5a5aa5a5
    mov eax, [0x3800]
    mov dx, PORT_ALIAS
    out dx, eax
    ; the pattern the VMM checks after HLT: dword i at 3000H = 7i + 11H
    mov edi, 0x3000
    xor ecx, ecx
.fill:
    lea eax, [ecx * 8]
    sub eax, ecx
    add eax, 0x11
    stosd
    inc ecx
    cmp ecx, 256
    jne .fill
    hlt
    jmp $

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff   ; 08H: code, base 0, 4 GiB, 32-bit
    dq 0x00cf92000000ffff   ; 10H: data, base 0, 4 GiB
gdtr:
    dw gdtr - gdt - 1
    dd gdt
