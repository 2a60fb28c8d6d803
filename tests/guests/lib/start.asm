; Entry of every test guest (32-bit protected mode, paging off, as both
; multiboot specifications leave the machine), the GDT with ring-0 and ring-3
; flat segments and a TSS, the 256 interrupt stubs, and the ring-3 round trip.
;
; The multiboot header itself lives in mb1hdr.asm or mb2hdr.asm (one per
; guest); both use the ELF entry point _start.
bits 32

section .text
global _start
extern guest_main
extern isr_dispatch
extern entry
extern exit_debug

; struct entry_state offsets (guest.h)
ES_EAX equ 0
ES_EBX equ 4
ES_ECX equ 8
ES_EDX equ 12
ES_ESI equ 16
ES_EDI equ 20
ES_EBP equ 24
ES_ESP equ 28
ES_EFLAGS equ 32
ES_CR0 equ 36
ES_CR4 equ 40
ES_CS equ 44
ES_DS equ 48
ES_ES equ 52
ES_FS equ 56
ES_GS equ 60
ES_SS equ 64
ES_TSC equ 68

_start:
    ; Record the registers before touching any of them. DS is flat by the
    ; multiboot contract; ESP may be anything (the contract says undefined),
    ; so nothing is pushed until our own stack is loaded.
    mov [entry + ES_EAX], eax
    mov [entry + ES_EBX], ebx
    mov [entry + ES_ECX], ecx
    mov [entry + ES_EDX], edx
    mov [entry + ES_ESI], esi
    mov [entry + ES_EDI], edi
    mov [entry + ES_EBP], ebp
    mov [entry + ES_ESP], esp
    rdtsc                       ; Bochs (clock sync=none): instructions since reset
    mov [entry + ES_TSC], eax
    mov [entry + ES_TSC + 4], edx
    mov esp, stack_top
    pushfd
    pop eax
    mov [entry + ES_EFLAGS], eax
    mov eax, cr0
    mov [entry + ES_CR0], eax
    mov eax, cr4
    mov [entry + ES_CR4], eax
    xor eax, eax
    mov ax, cs
    mov [entry + ES_CS], eax
    mov ax, ds
    mov [entry + ES_DS], eax
    mov ax, es
    mov [entry + ES_ES], eax
    mov ax, fs
    mov [entry + ES_FS], eax
    mov ax, gs
    mov [entry + ES_GS], eax
    mov ax, ss
    mov [entry + ES_SS], eax

    lgdt [gdt_desc]
    jmp 0x08:.flat
.flat:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, stack_top
    cld
    call guest_main
    ; guest_main never returns; if it does, that is a failure
    push dword 1
    call exit_debug
.hang:
    cli
    hlt
    jmp .hang

; ---- the 256 interrupt stubs -----------------------------------------------
; Each pushes a dummy error code where the CPU pushes none, then its vector,
; and joins isr_common, which hands struct frame (guest.h) to isr_dispatch.
%assign i 0
%rep 256
isr_ %+ i:
%if i == 8 || (i >= 10 && i <= 14) || i == 17 || i == 21 || i == 29 || i == 30
%else
    push dword 0
%endif
    push dword i
    jmp isr_common
%assign i i+1
%endrep

isr_common:
    pushad
    mov eax, esp
    push eax
    call isr_dispatch
    add esp, 4
    popad
    add esp, 8          ; vector, error code
    iretd

section .rodata
global isr_table
align 4
isr_table:
%assign i 0
%rep 256
    dd isr_ %+ i
%assign i i+1
%endrep

section .text
; ---- ring 3 ----------------------------------------------------------------
; u32 enter_user(void (*fn)(void)): IRET to fn at CPL 3 with its own stack.
; fn ends with `int 0x80` (a DPL-3 interrupt gate to user_return), which drops
; the ring-0 frame, restores the stack saved here and returns fn's EAX.
global enter_user
global user_return
enter_user:
    push ebp
    push ebx
    push esi
    push edi
    mov [user_saved_esp], esp
    mov eax, [esp + 20]         ; fn
    mov cx, 0x23                ; ring-3 data: ring-0 data selectors would be nulled by the IRET
    mov ds, cx
    mov es, cx
    mov fs, cx
    mov gs, cx
    push dword 0x23             ; SS
    push dword user_stack_top   ; ESP
    push dword 0x2              ; EFLAGS: IF=0, IOPL=0
    push dword 0x1B             ; CS
    push eax                    ; EIP
    iretd

user_return:                    ; vector 0x80, from ring 3 (SS:ESP from the TSS)
    mov cx, 0x10
    mov ds, cx
    mov es, cx
    mov fs, cx
    mov gs, cx
    mov esp, [user_saved_esp]
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

; ---- GDT ---------------------------------------------------------------------
section .data
global gdt
global tss
align 8
gdt:
    dq 0                        ; 0x00 null
    dq 0x00CF9A000000FFFF       ; 0x08 ring-0 code, flat 32-bit
    dq 0x00CF92000000FFFF       ; 0x10 ring-0 data, flat
    dq 0x00CFFA000000FFFF       ; 0x18 ring-3 code, flat 32-bit (selector 0x1B)
    dq 0x00CFF2000000FFFF       ; 0x20 ring-3 data, flat (selector 0x23)
    dq 0                        ; 0x28 TSS, filled in by idt_init (its base is only known at link time)
gdt_end:
gdt_desc:
    dw gdt_end - gdt - 1
    dd gdt

align 4
tss:                            ; 104 bytes, 32-bit TSS; only SS0:ESP0 and the I/O map base matter
    dd 0                        ; link
    dd int_stack_top            ; ESP0
    dd 0x10                     ; SS0
    times 22 dd 0
    dw 0                        ; T flag
    dw 104                      ; I/O map base = limit + 1: no I/O bitmap
tss_end:

section .bss
global stack_top
global user_saved_esp
alignb 16
stack:
    resb 16384
stack_top:
int_stack:                      ; ring-0 stack for interrupts taken at ring 3
    resb 4096
int_stack_top:
user_stack:
    resb 4096
user_stack_top:
user_saved_esp:
    resd 1
