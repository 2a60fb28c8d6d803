; The minimal L1's VM entry and VM exit path, and the L2 code it runs.
;
; vmx_run (called from C, cdecl) writes HOST_RSP and HOST_RIP, loads the
; guest's general-purpose registers from a struct l2regs and executes
; VMLAUNCH or VMRESUME. If the instruction fails (VMfailInvalid,
; VMfailValid, or an exception such as #UD, recovered through __ex_table)
; execution falls through and vmx_run returns 0x80000000 | EFLAGS. If the
; entry happens, the next VM exit (or a VM-entry failure that loads host
; state, SDM 26.7) arrives at vmx_exit_entry with ESP = HOST_RSP, which
; stores the guest's registers, records the host state the processor loaded
; (SDM 27.5) in exit_snap, restores the descriptor-table limits that the exit
; set to FFFFH, and returns 0 from vmx_run.
;
; L2 runs in the same address space (L1's page tables, GDT and TSS), at CPL
; 0, 32-bit protected mode with paging: no unrestricted guest is needed.
; Each L2 snippet below starts at a global label that L1 puts in GUEST_RIP
; and ends with VMCALL (exit reason 18), L1's "done" signal.
bits 32

; struct l2regs (vmx.h)
R_EAX equ 0
R_EBX equ 4
R_ECX equ 8
R_EDX equ 12
R_ESI equ 16
R_EDI equ 20
R_EBP equ 24
; struct exit_snap (vmx.h)
S_ESP equ 0
S_EFLAGS equ 4
S_CR0 equ 8
S_CR3 equ 12
S_CR4 equ 16
S_DR7 equ 20
S_CS equ 24
S_SS equ 28
S_DS equ 32
S_ES equ 36
S_FS equ 40
S_GS equ 44
S_TR equ 48
S_FS0 equ 52
S_GS0 equ 56
S_GDTR equ 62        ; limit (16 bits) then base (32 bits), base 4-aligned
S_IDTR equ 70
S_COUNT equ 76

HOST_RSP equ 0x6C14
HOST_RIP equ 0x6C16
SEL_KDATA equ 0x10
; The enlightened VMCS (Hyper-V TLFS HV_VMX_ENLIGHTENED_VMCS): HostRsp (UINT64 at 616) in the
; clean-field group HOST_POINTER (bit 13) of CleanFields (UINT32 at 824).
EV_HOST_RSP equ 616
EV_CLEAN_FIELDS equ 824
EV_CLEAN_HOST_POINTER equ 0x2000

section .text
global vmx_run
global vmx_run_evmcs
global vmx_exit_entry

vmx_run:
    push ebp
    push ebx
    push esi
    push edi
    mov eax, [esp + 20]
    mov [run_regs], eax
    mov eax, [esp + 24]
    mov [run_launch], eax
    sgdt [l1_gdtr]
    sidt [l1_idtr]
    mov [run_host_rsp], esp
    mov eax, HOST_RSP
.w_rsp:
    vmwrite eax, esp
    mov eax, HOST_RIP
    mov edx, vmx_exit_entry
.w_rip:
    vmwrite eax, edx
.load:
    mov eax, [run_regs]
    mov ebx, [eax + R_EBX]
    mov ecx, [eax + R_ECX]
    mov edx, [eax + R_EDX]
    mov esi, [eax + R_ESI]
    mov edi, [eax + R_EDI]
    mov ebp, [eax + R_EBP]
    cmp dword [run_launch], 0   ; the flags survive the MOV below
    mov eax, [eax + R_EAX]
    je .resume
.launch:
    vmlaunch
    jmp .fell_through
.resume:
    vmresume
.fell_through:                  ; VMfail, or resumed here after an exception
    pushfd
    pop eax
    or eax, 0x80000000
    jmp .out
.write_failed:                  ; the VMWRITE of HOST_RSP/RIP raised an exception
    mov eax, 0xC0000000
.out:
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

; vmx_run_evmcs(regs, launch, evmcs) (evmcs.c): as vmx_run, for an L1 whose VMLAUNCH/VMRESUME
; use the enlightened VMCS at evmcs (linear = physical): HOST_RSP goes into the eVMCS's HostRsp
; in memory, not through VMWRITE (TLFS: VMREAD/VMWRITE are not for an eVMCS in use), and when it
; changes the HOST_POINTER clean bit is cleared, as the TLFS asks of an L1 that changes a
; field. HostRip (vmx_exit_entry) is the caller's to fill in.
vmx_run_evmcs:
    push ebp
    push ebx
    push esi
    push edi
    mov eax, [esp + 20]
    mov [run_regs], eax
    mov eax, [esp + 24]
    mov [run_launch], eax
    sgdt [l1_gdtr]
    sidt [l1_idtr]
    mov [run_host_rsp], esp
    mov eax, [esp + 28]
    cmp [eax + EV_HOST_RSP], esp
    jne .new_rsp
    cmp dword [eax + EV_HOST_RSP + 4], 0
    je vmx_run.load
.new_rsp:
    mov [eax + EV_HOST_RSP], esp
    mov dword [eax + EV_HOST_RSP + 4], 0
    and dword [eax + EV_CLEAN_FIELDS], ~EV_CLEAN_HOST_POINTER
    jmp vmx_run.load

vmx_exit_entry:
    ; ESP = HOST_RSP, RFLAGS = 2 (SDM 27.5.3); record before changing anything
    mov [exit_snap + S_ESP], esp
    pushfd
    pop dword [exit_snap + S_EFLAGS]
    push eax
    mov eax, [run_regs]
    mov [eax + R_EBX], ebx
    mov [eax + R_ECX], ecx
    mov [eax + R_EDX], edx
    mov [eax + R_ESI], esi
    mov [eax + R_EDI], edi
    mov [eax + R_EBP], ebp
    pop dword [eax + R_EAX]
    mov eax, cr0
    mov [exit_snap + S_CR0], eax
    mov eax, cr3
    mov [exit_snap + S_CR3], eax
    mov eax, cr4
    mov [exit_snap + S_CR4], eax
    mov eax, dr7
    mov [exit_snap + S_DR7], eax
    xor eax, eax
    mov ax, cs
    mov [exit_snap + S_CS], eax
    mov ax, ss
    mov [exit_snap + S_SS], eax
    mov ax, ds
    mov [exit_snap + S_DS], eax
    mov ax, es
    mov [exit_snap + S_ES], eax
    mov ax, fs
    mov [exit_snap + S_FS], eax
    mov ax, gs
    mov [exit_snap + S_GS], eax
    str ax
    mov [exit_snap + S_TR], eax
    mov eax, [fs:0]
    mov [exit_snap + S_FS0], eax
    mov eax, [gs:0]
    mov [exit_snap + S_GS0], eax
    sgdt [exit_snap + S_GDTR]
    sidt [exit_snap + S_IDTR]
    inc dword [exit_snap + S_COUNT]
    ; back to L1's own environment: the exit set both limits to FFFFH
    ; (SDM 27.5.2), and a test may have loaded other data selectors
    lgdt [l1_gdtr]
    lidt [l1_idtr]
    mov ax, SEL_KDATA
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    xor eax, eax
    jmp vmx_run.out

section __ex_table progbits alloc noexec nowrite align=4
    dd vmx_run.w_rsp, vmx_run.write_failed
    dd vmx_run.w_rip, vmx_run.write_failed
    dd vmx_run.launch, vmx_run.fell_through
    dd vmx_run.resume, vmx_run.fell_through

; ---- L2 ------------------------------------------------------------------------
; After its VMCALL a snippet is never resumed: L1 always gives L2 a new RIP.
; If a hypervisor below resumed it anyway, L2 stops in l2_stray (HLT with
; interrupts off) instead of running on, so that the run still ends.
section .text
%macro L2 1
global %1
%1:
%endmacro

global l2_stray
l2_stray:
    cli
    hlt
    jmp l2_stray

L2 l2_vmcall
    vmcall
    jmp l2_stray
L2 l2_esp_vmcall                ; records its ESP in l2_esp, then exit 18
    mov [l2_esp], esp
    vmcall
    jmp l2_stray
L2 l2_cpuid                     ; exit 10, length 2
    cpuid
    vmcall
    jmp l2_stray
L2 l2_hlt                       ; exit 12, length 1
    hlt
    vmcall
    jmp l2_stray
L2 l2_rdtsc                     ; exit 16 with "RDTSC exiting", else EDX:EAX = TSC + offset
    rdtsc
    vmcall
    jmp l2_stray
L2 l2_in_imm                    ; IN AL, imm8: qualification bit 6 (immediate)
    in al, 0xE0
    vmcall
    jmp l2_stray
L2 l2_out_dx_ax                 ; OUT DX, AX (66 EF): 2 bytes
    out dx, ax
    vmcall
    jmp l2_stray
L2 l2_in_dx_eax                 ; IN EAX, DX (ED): 1 byte
    in eax, dx
    vmcall
    jmp l2_stray
L2 l2_in_dx_ax                  ; IN AX, DX (66 ED): ports DX and DX+1
    in ax, dx
    vmcall
    jmp l2_stray
L2 l2_scratch                   ; OUT DX, AL; IN AL, DX (DX = a port L1 does not mark)
    out dx, al
    xor eax, eax
    in al, dx
    vmcall
    jmp l2_stray
L2 l2_rdmsr
    rdmsr
    vmcall
    jmp l2_stray
L2 l2_wrmsr
    wrmsr
    vmcall
    jmp l2_stray
L2 l2_ud2                       ; #UD (hardware exception, vector 6)
    ud2
    vmcall
    jmp l2_stray
L2 l2_int3                      ; #BP (software exception, vector 3), 1 byte
    int3
    vmcall
    jmp l2_stray
L2 l2_load_ss                   ; MOV SS, BX with BX = a code selector: #GP(BX)
    mov ss, bx
    vmcall
    jmp l2_stray
L2 l2_write                     ; MOV [EBX], EAX (2 bytes)
    mov [ebx], eax
    vmcall
    jmp l2_stray
; VMFUNC is 0F 01 D4 (3 bytes).
%define VMFUNC db 0x0F, 0x01, 0xD4
L2 l2_vmfunc                    ; EPTP switch to entry ECX, then read [EBX] into EAX
    xor eax, eax
global l2_vmfunc_insn
l2_vmfunc_insn:
    VMFUNC
    mov eax, [ebx]
    vmcall
    jmp l2_stray
L2 l2_vmfunc_eax                ; VMFUNC with EAX and ECX as L1 set them
    VMFUNC
    vmcall
    jmp l2_stray
L2 l2_vmfunc_loop               ; EDX times: switch to entry 1, then to entry 0; then to
.again:                         ; entry ESI and read [EBX] into EAX
    xor eax, eax
    mov ecx, 1
    VMFUNC
    xor eax, eax
    xor ecx, ecx
    VMFUNC
    dec edx
    jnz .again
    xor eax, eax
    mov ecx, esi
    VMFUNC
    mov eax, [ebx]
    vmcall
    jmp l2_stray
L2 l2_pf_read                   ; read of an unmapped linear address in EBX: #PF
    mov eax, [ebx]
    vmcall
    jmp l2_stray
L2 l2_triple                    ; no usable IDT: #UD -> #GP -> #DF -> triple fault
    lidt [l2_null_idtr]
    ud2
    vmcall
    jmp l2_stray
L2 l2_mov_cr3                   ; MOV CR3, EBX: qualification CR3, MOV to CR, RBX
    mov cr3, ebx
    vmcall
    jmp l2_stray
L2 l2_read_cr0                  ; MOV EAX, CR0: masked bits come from the read shadow
    mov eax, cr0
    vmcall
    jmp l2_stray
L2 l2_clear_ts                  ; MOV CR0, ECX with CR0.TS cleared
    mov ecx, cr0
    and ecx, ~8
global l2_clear_ts_write
l2_clear_ts_write:
    mov cr0, ecx
    vmcall
    jmp l2_stray
L2 l2_sgdt                      ; SGDT [EBX+4] (0F 01 43 04): 4 bytes
    sgdt [ebx + 4]
    vmcall
    jmp l2_stray
L2 l2_vmptrst                   ; VMPTRST [EBX+ESI*4+10H] (0F C7 7C B3 10): 5 bytes
    vmptrst [ebx + esi * 4 + 0x10]
    vmcall
    jmp l2_stray
L2 l2_vmptrst_ebp               ; VMPTRST [EBP+8] (0F C7 7D 08): segment SS
    vmptrst [ebp + 8]
    vmcall
    jmp l2_stray
L2 l2_vmread                    ; VMREAD EAX, ECX (0F 78 C8): 3 bytes
    vmread eax, ecx
    vmcall
    jmp l2_stray
L2 l2_spin                      ; ECX iterations (interrupts as RFLAGS.IF says), then VMCALL
.again:
    dec ecx
    jnz .again
    vmcall
    jmp l2_stray
L2 l2_end

; L2's exception handlers (its IDT is built by l1.c from l2_exc_table): each
; records what it saw in l2_seen, then tells L1 with VMCALL.
%assign i 0
%rep 32
l2_exc_ %+ i:
%if i == 8 || (i >= 10 && i <= 14) || i == 17 || i == 21 || i == 29 || i == 30
    pop dword [l2_seen + 8]     ; error code
%else
    mov dword [l2_seen + 8], 0xFFFFFFFF
%endif
    mov dword [l2_seen + 0], i
    jmp l2_exc_common
%assign i i+1
%endrep

; L2's handler for vector 40H (L1's APIC timer vector, when L1 lets the
; interrupt go to L2): recorded like an exception without error code.
global l2_irq40
l2_irq40:
    mov dword [l2_seen + 8], 0xFFFFFFFF
    mov dword [l2_seen + 0], 0x40
    jmp l2_exc_common

l2_exc_common:
    pop dword [l2_seen + 4]     ; EIP
    pop dword [l2_seen + 12]    ; CS
    pop dword [l2_seen + 16]    ; EFLAGS
    mov eax, cr2
    mov [l2_seen + 20], eax
    inc dword [l2_seen + 24]
    vmcall
    jmp l2_stray

section .rodata
global l2_exc_table
align 4
l2_exc_table:
%assign i 0
%rep 32
    dd l2_exc_ %+ i
%assign i i+1
%endrep
l2_null_idtr:
    dw 0
    dd 0

section .data
global exit_snap
global run_host_rsp
global l2_seen
global l2_esp
align 4
exit_snap:
    times 20 dd 0
l2_seen:
    times 7 dd 0
l2_esp:
    dd 0
run_regs:
    dd 0
run_launch:
    dd 0
run_host_rsp:
    dd 0
l1_gdtr:
    dw 0
    dd 0
l1_idtr:
    dw 0
    dd 0
