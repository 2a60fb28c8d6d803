/* l1bench.elf: nested-VMX costs measured in the guest with RDTSC (issue 4,
 * "benchmark additions"). The guest is a small L1 hypervisor:
 *
 *   l1-vmread-guest-rip, l1-vmread-exit-reason, l1-vmwrite-guest-rip
 *       one VMREAD/VMWRITE of the current VMCS (L2's, after L2 has run),
 *       timed in L1 exactly as tests/guests/bench.c times an operation;
 *   l2-cpuid-via-l1
 *       measured inside L2: the round trip of a CPUID that exits to L1,
 *       whose exit handler (lb_exit_fast below) is the minimum a real L1
 *       needs: VMREAD exit reason, VMREAD exit-instruction length, VMREAD
 *       GUEST_RIP, VMWRITE GUEST_RIP (+ length), VMRESUME, with the three
 *       registers it uses saved and restored (16 instructions and VMRESUME);
 *   l1-handler
 *       that handler's own cost, timed by L1 around its body (RDTSC at its
 *       entry and just before its VMRESUME, minus the same stamps around
 *       nothing): round trip - handler = what the VM exit, the VMRESUME and
 *       everything below L1 (our L0, or Bochs's own VMX) cost;
 *   l2-exit-to-l1-handler, l1-vmresume-to-l2
 *       the two legs of those round trips (same run as l1-handler): L2's
 *       stamp before CPUID to the handler's first stamp, and the handler's
 *       last stamp to L2's stamp after CPUID. L1 and L2 read the same TSC
 *       (no TSC offsetting at either level). Raw stamp-to-stamp ticks: on
 *       bare Bochs they are just the instructions around the stamps (8, 17);
 *   l0-exits-per-l2-cpuid
 *       under our hypervisor only: its "VM exits so far" hypercall (VMCALL
 *       RAX=2, RBX=1) read around a loop of K L2 CPUIDs and around the same
 *       sequence with no CPUID (the overhead): (delta - overhead) / K.
 *
 * Timing method (as bench.c): each sample is `lfence; rdtsc` before and
 * after the operation, minus the minimum of an empty pair measured the same
 * way in the same mode (L1 for L1 figures, L2 for L2's); 16 warm-up samples,
 * then N (1000, or the command line's n=N, 1..1000); min and median. On Bochs
 * with `clock: sync=none` the ticks are emulated instructions.
 *
 * args=evmcs: L2's VMCS is a Hyper-V enlightened VMCS v1 (TLFS "Enlightened VMCS"; needs
 * hyperv=on nested=on, docs/guest-interface.md "Enlightened VM entry"). L1 checks CPUID
 * (40000000H "Microsoft Hv", 40000001H "Hv#1", 40000004H EAX bit 14, 4000000AH EAX[7:0] <= 1 <=
 * EAX[15:8]), enables its VP assist page (MSR 40000073H) with EnlightenVmEntry = 1 and
 * CurrentNestedVmcs = a zeroed page whose VersionNumber is 1, and never executes VMPTRLD, VMREAD
 * or VMWRITE: the set-up writes the eVMCS members (clearing the clean bit of each group it
 * changes), VMLAUNCH and VMRESUME enter through the eVMCS, and the exit handler (LB_EV_BODY)
 * loads the exit reason, the instruction length and the guest RIP from it and stores the new RIP
 * (in no clean group: L0 reads it at every entry), then sets every clean bit as KVM does as L1.
 * The l1-vmread/vmwrite figures and the VMFUNC ones (eVMCS v1 has no VM-function fields) are
 * `skipped` lines; the others are measured as above. Without the interface the guest fails
 * (RESULT: FAIL) with the reason. The layout comes from l1bench_evmcs.c (the generated
 * boot/include/vmx-consts.h).
 *
 * Capabilities come from the VMX MSRs (TRUE_* when VMX_BASIC bit 55 says so),
 * so the same image runs on bare Bochs, where L1 is the OS and Bochs's own VMX
 * handles L2's exits (the reference figures), and under our hypervisor with
 * nested=on. L1 is 32-bit with paging (4 MiB pages, identity); L2 runs in
 * L1's address space at CPL 0 with paging on (no EPT, no unrestricted guest).
 * The VMX instruction wrappers come from tests/guests/l1/vmx.c.
 *
 * Output: `bench: <op> min=<n> median=<n> n=<N>` per figure,
 * `bench: l0-exits-per-l2-cpuid value=<x.xx> ...` (or a `skipped` line when
 * not under our hypervisor), `RESULT: PASS`; then isa-debug-exit 0 (our
 * hypervisor) or, on bare Bochs, the magic breakpoint (xchg bx,bx: Bochs
 * exits 0). A failure prints `RESULT: FAIL` and ends with code 1 (bare
 * Bochs: port 8900H "Shutdown"). */
#include "guest.h"
#include "l1/vmx.h"

#define MAX_N 1000
#define WARMUP 16
#define SLOTS (MAX_N + WARMUP)
#define ADDR(x) ((u32)(uintptr_t)(x))
#define PA(p) ((u64)ADDR(p))

static u8 vmxon_region[4096] ALIGNED(4096);
static u8 vmcs[4096] ALIGNED(4096);
static u32 pd[1024] ALIGNED(4096); /* L1's and L2's page directory */
static u8 l2_stack[256] ALIGNED(16);
static u32 sorted[SLOTS];
static int N = MAX_N;

/* ---- the VM entry, the exit handlers and L2's code ----------------------------------
 * lb_enter(launch): HOST_RSP := its own ESP (HOST_RIP, the handler, is chosen
 * by the caller), L2's EBP and EDI from lb_l2_ebp/lb_l2_edi, the other GPRs 0,
 * then VMLAUNCH or VMRESUME. Returns 0 after an exit that is not a CPUID
 * (L2's final VMCALL), with L2's EBP and EDI stored back, 0x80000000 | EFLAGS
 * if the VM-entry instruction failed, 0x40000000 | EFLAGS if a handler's
 * VMRESUME failed.
 *
 * LB_BODY is the exit handler proper: for a CPUID exit, GUEST_RIP += the
 * instruction length (CPUID's results stay what L2 had: no emulation);
 * anything else goes to lb_exit_slow. lb_exit_fast = LB_BODY + VMRESUME;
 * lb_exit_timed wraps LB_BODY in LB_T0/LB_T1 and records the delta in
 * lb_hsamples; lb_stamps_only is LB_T0/LB_T1 around nothing (the overhead).
 * With the eVMCS (args=evmcs): lb_ev_enter (HOST_RSP into the eVMCS's HostRsp),
 * LB_EV_BODY, lb_ev_exit_fast and lb_ev_exit_timed, the same with memory accesses. */
extern char lb_exit_fast[], lb_exit_timed[], lb_l2_time[], lb_l2_empty[], lb_l2_loop[];
extern char lb_ev_exit_fast[], lb_ev_exit_timed[];
extern u32 lb_enter(u32 launch), lb_ev_enter(u32 launch);
extern u32 lb_stamps_only(void);
extern volatile u32 lb_l2_ebp, lb_l2_edi, lb_hidx;
extern u32 lb_hsamples[SLOTS], lb_h_t0[SLOTS], lb_h_t1[SLOTS];
static u32 l2_stamps[2 * SLOTS]; /* L2's (start, end) RDTSC pairs */
static u32 deltas[SLOTS];

__asm__(
    ".macro LB_BODY\n"
    "    pushl %eax\n"
    "    pushl %ecx\n"
    "    pushl %edx\n"
    "    movl $0x4402, %eax\n"       /* VM_EXIT_REASON */
    "    vmread %eax, %ecx\n"
    "    cmpl $10, %ecx\n"           /* CPUID */
    "    jne lb_exit_slow\n"
    "    movl $0x440C, %eax\n"       /* VM_EXIT_INSTRUCTION_LEN */
    "    vmread %eax, %edx\n"
    "    movl $0x681E, %eax\n"       /* GUEST_RIP */
    "    vmread %eax, %ecx\n"
    "    addl %edx, %ecx\n"
    "    vmwrite %ecx, %eax\n"
    "    popl %edx\n"
    "    popl %ecx\n"
    "    popl %eax\n"
    ".endm\n"
    /* The same with the eVMCS (args=evmcs): the exit reason, the instruction length and the
     * guest RIP are loads from the eVMCS in memory, the new RIP a store there (GuestRip is in
     * no clean group: L0 reads it at every entry); then every clean bit is set, as KVM does as
     * L1 after each exit (TLFS "Clean Fields"; L0 has set them already). */
    ".macro LB_EV_BODY\n"
    "    pushl %ecx\n"
    "    pushl %edx\n"
    "    movl lb_ev_exit_reason, %ecx\n"
    "    cmpl $10, %ecx\n"           /* CPUID */
    "    jne lb_ev_exit_slow\n"
    "    movl lb_ev_insn_len, %edx\n"
    "    movl lb_ev_guest_rip, %ecx\n"
    "    addl %edx, %ecx\n"
    "    movl %ecx, lb_ev_guest_rip\n"
    "    orl $lb_ev_clean_all, lb_ev_clean\n"
    "    popl %edx\n"
    "    popl %ecx\n"
    ".endm\n"
    /* EDX:EAX are L2's: kept in memory around the stamps. */
    ".macro LB_T0\n"
    "    movl %eax, lb_sv_eax\n"
    "    movl %edx, lb_sv_edx\n"
    "    lfence\n"
    "    rdtsc\n"
    "    movl %eax, lb_t0\n"
    "    movl lb_sv_eax, %eax\n"
    "    movl lb_sv_edx, %edx\n"
    ".endm\n"
    /* L2's timed loops: sample k's start stamp at (EDI), its end stamp at
     * 4(EDI); EBP samples; VMCALL at the end (never resumed). */
    ".macro LB_L2_SAMPLE_BEGIN\n"
    "    lfence\n"
    "    rdtsc\n"
    "    movl %eax, (%edi)\n"
    ".endm\n"
    ".macro LB_L2_SAMPLE_END\n"
    "    lfence\n"
    "    rdtsc\n"
    "    movl %eax, 4(%edi)\n"
    "    addl $8, %edi\n"
    "    decl %ebp\n"
    "    jnz 1b\n"
    "    vmcall\n"
    "    jmp lb_l2_stray\n"
    ".endm\n"
    /* After LB_T1: the sample (EAX) and both stamps into lb_hsamples, lb_h_t0, lb_h_t1
     * (index lb_hidx, below SLOTS), L2's EAX and EDX back. */
    ".macro LB_RECORD\n"
    "    movl lb_hidx, %edx\n"
    "    cmpl $" "1016" ", %edx\n"   /* SLOTS */
    "    jae 3f\n"
    "    movl %eax, lb_hsamples(,%edx,4)\n"
    "    movl lb_t0, %eax\n"
    "    movl %eax, lb_h_t0(,%edx,4)\n"
    "    movl lb_t1, %eax\n"
    "    movl %eax, lb_h_t1(,%edx,4)\n"
    "    incl %edx\n"
    "    movl %edx, lb_hidx\n"
    "3:  movl lb_sv_eax, %eax\n"
    "    movl lb_sv_edx, %edx\n"
    ".endm\n"
    ".macro LB_T1\n"
    "    movl %eax, lb_sv_eax\n"
    "    movl %edx, lb_sv_edx\n"
    "    lfence\n"
    "    rdtsc\n"
    "    movl %eax, lb_t1\n"        /* after the stamp: not in the delta */
    "    subl lb_t0, %eax\n"
    ".endm\n"
    /* Both entries: the callee-saved registers, and L1's GDTR and IDTR (the
     * exit sets both limits to FFFFH, SDM 27.5.2; lb_exit_slow restores them). */
    ".macro LB_ENTER_PROLOGUE\n"
    "    pushl %ebp\n"
    "    pushl %ebx\n"
    "    pushl %esi\n"
    "    pushl %edi\n"
    "    sgdt lb_gdtr\n"
    "    sidt lb_idtr\n"
    ".endm\n"
    ".text\n"
    ".globl lb_enter, lb_ev_enter, lb_exit_fast, lb_exit_timed, lb_stamps_only, lb_ev_exit_fast, lb_ev_exit_timed\n"
    /* lb_ev_enter: as lb_enter, on the eVMCS: HOST_RSP is HostRsp in memory, and a new value
     * clears the HOST_POINTER clean bit (TLFS "Clean Fields"). */
    "lb_ev_enter:\n"
    "    LB_ENTER_PROLOGUE\n"
    "    cmpl %esp, lb_ev_host_rsp\n"
    "    jne 1f\n"
    "    cmpl $0, lb_ev_host_rsp+4\n"
    "    je lb_enter_l2\n"
    "1:  movl %esp, lb_ev_host_rsp\n"
    "    movl $0, lb_ev_host_rsp+4\n"
    "    andl $lb_ev_keep_host_pointer, lb_ev_clean\n"
    "    jmp lb_enter_l2\n"
    "lb_enter:\n"
    "    LB_ENTER_PROLOGUE\n"
    "    movl $0x6C14, %eax\n"       /* HOST_RSP */
    "    vmwrite %esp, %eax\n"
    "lb_enter_l2:\n"
    "    movl 20(%esp), %eax\n"      /* launch */
    "    movl lb_l2_ebp, %ebp\n"
    "    movl lb_l2_edi, %edi\n"
    "    movl lb_l2_ebx, %ebx\n"       /* L2's other GPRs as its last exit to C left them */
    "    movl lb_l2_ecx, %ecx\n"
    "    movl lb_l2_edx, %edx\n"
    "    movl lb_l2_esi, %esi\n"
    "    testl %eax, %eax\n"
    "    movl lb_l2_eax, %eax\n"     /* MOV keeps the flags of TEST */
    "    jz 1f\n"
    "    vmlaunch\n"
    "    jmp 2f\n"
    "1:  vmresume\n"
    "2:  pushfl\n"                   /* the VM-entry instruction failed */
    "    popl %eax\n"
    "    orl $0x80000000, %eax\n"
    "    jmp lb_out\n"
    "lb_exit_fast:\n"                /* ESP = HOST_RSP, registers = L2's */
    "    LB_BODY\n"
    "    vmresume\n"
    "    jmp lb_resume_failed\n"
    "lb_exit_timed:\n"
    "    LB_T0\n"
    "    LB_BODY\n"
    "    LB_T1\n"
    "    LB_RECORD\n"
    "    vmresume\n"
    "lb_resume_failed:\n"
    "    pushfl\n"
    "    popl %eax\n"
    "    orl $0x40000000, %eax\n"
    "    jmp lb_out\n"
    "lb_ev_exit_fast:\n"             /* as lb_exit_fast, on the eVMCS */
    "    LB_EV_BODY\n"
    "    vmresume\n"
    "    jmp lb_resume_failed\n"
    "lb_ev_exit_timed:\n"
    "    LB_T0\n"
    "    LB_EV_BODY\n"
    "    LB_T1\n"
    "    LB_RECORD\n"
    "    vmresume\n"
    "    jmp lb_resume_failed\n"
    "lb_ev_exit_slow:\n"
    "    popl %edx\n"
    "    popl %ecx\n"
    "    jmp lb_l2_save\n"
    "lb_exit_slow:\n"                /* not a CPUID: back to C */
    "    popl %edx\n"
    "    popl %ecx\n"
    "    popl %eax\n"
    "lb_l2_save:\n"
    "    movl %ebp, lb_l2_ebp\n"
    "    movl %edi, lb_l2_edi\n"
    "    movl %eax, lb_l2_eax\n"
    "    movl %ebx, lb_l2_ebx\n"
    "    movl %ecx, lb_l2_ecx\n"
    "    movl %edx, lb_l2_edx\n"
    "    movl %esi, lb_l2_esi\n"
    "    lgdt lb_gdtr\n"             /* the exit set both limits to FFFFH (SDM 27.5.2) */
    "    lidt lb_idtr\n"
    "    xorl %eax, %eax\n"
    "lb_out:\n"
    "    popl %edi\n"
    "    popl %esi\n"
    "    popl %ebx\n"
    "    popl %ebp\n"
    "    ret\n"
    "lb_stamps_only:\n"
    "    LB_T0\n"
    "    LB_T1\n"
    "    ret\n"
    /* L2. EBP = iterations (> 0 for the two timed loops), EDI = where the
     * samples go. Each ends with VMCALL (exit 18: back to C), never resumed. */
    ".globl lb_l2_time, lb_l2_empty, lb_l2_loop\n"
    "lb_l2_time:\n"                  /* CPUID round trips, as bench.c's s_cpuid */
    "1:  lfence\n"
    "    rdtsc\n"
    "    movl %eax, %esi\n"
    "    xorl %eax, %eax\n"
    "    xorl %ecx, %ecx\n"
    "    cpuid\n"
    "    lfence\n"
    "    rdtsc\n"
    "    movl %esi, (%edi)\n"       /* both stamps (low 32 bits) */
    "    movl %eax, 4(%edi)\n"
    "    addl $8, %edi\n"
    "    decl %ebp\n"
    "    jnz 1b\n"
    "    vmcall\n"
    "    jmp lb_l2_stray\n"
    "lb_l2_empty:\n"                 /* empty pairs: L2's own overhead */
    "1:  lfence\n"
    "    rdtsc\n"
    "    movl %eax, %esi\n"
    "    lfence\n"
    "    rdtsc\n"
    "    movl %esi, (%edi)\n"
    "    movl %eax, 4(%edi)\n"
    "    addl $8, %edi\n"
    "    decl %ebp\n"
    "    jnz 1b\n"
    "    vmcall\n"
    "    jmp lb_l2_stray\n"
    /* EBP timed EPTP switches: VMFUNC 0 to EPTP-list entry (lb_view + 1) &
     * lb_view_mask, then reads of 16 pages 4 KiB apart from lb_buf; the
     * stamps (EDI) around both. */
    ".globl lb_l2_vmfunc\n"
    "lb_l2_vmfunc:\n"
    "1:  LB_L2_SAMPLE_BEGIN\n"
    "    movl lb_view, %ecx\n"
    "    incl %ecx\n"
    "    andl lb_view_mask, %ecx\n"
    "    movl %ecx, lb_view\n"
    "    xorl %eax, %eax\n"
    "    .byte 0x0f, 0x01, 0xd4\n"     /* VMFUNC */
    "    movl lb_buf, %ebx\n"
    "    movl $16, %ecx\n"
    "2:  movl (%ebx), %eax\n"
    "    addl $4096, %ebx\n"
    "    decl %ecx\n"
    "    jnz 2b\n"
    "    LB_L2_SAMPLE_END\n"
    /* EBP timed first touches of page lb_eptv_base + EBP * 4 KiB, which
     * L1's EPT does not map yet: an EPT violation L1 handles (it maps the
     * page and resumes L2 at the same instruction). */
    ".globl lb_l2_eptv\n"
    "lb_l2_eptv:\n"
    "1:  LB_L2_SAMPLE_BEGIN\n"
    "    movl %ebp, %eax\n"
    "    shll $12, %eax\n"
    "    addl lb_eptv_base, %eax\n"
    "    movl (%eax), %eax\n"
    "    LB_L2_SAMPLE_END\n"
    "lb_l2_loop:\n"                  /* EBP CPUIDs (0: none), untimed */
    "    testl %ebp, %ebp\n"
    "    jz 2f\n"
    "1:  xorl %eax, %eax\n"
    "    xorl %ecx, %ecx\n"
    "    cpuid\n"
    "    decl %ebp\n"
    "    jnz 1b\n"
    "2:  vmcall\n"
    "lb_l2_stray:\n"
    "    cli\n"
    "    hlt\n"
    "    jmp lb_l2_stray\n"
    ".data\n"
    ".balign 4\n"
    ".globl lb_l2_ebp, lb_l2_edi, lb_hidx, lb_hsamples, lb_h_t0, lb_h_t1\n"
    "lb_l2_ebp: .long 0\n"
    "lb_l2_eax: .long 0\n"
    "lb_l2_ebx: .long 0\n"
    "lb_l2_ecx: .long 0\n"
    "lb_l2_edx: .long 0\n"
    "lb_l2_esi: .long 0\n"
    "lb_l2_edi: .long 0\n"
    "lb_hidx: .long 0\n"

    "lb_sv_eax: .long 0\n"
    "lb_sv_edx: .long 0\n"
    "lb_t0: .long 0\n"
    "lb_t1: .long 0\n"
    ".globl lb_view, lb_view_mask, lb_buf\n"
    "lb_view: .long 0\n"
    "lb_view_mask: .long 0\n"
    "lb_buf: .long 0\n"
    ".globl lb_eptv_base\n"
    "lb_eptv_base: .long 0\n"
    "lb_gdtr: .word 0\n"
    "    .long 0\n"
    "lb_idtr: .word 0\n"
    "    .long 0\n"
    ".bss\n"
    ".balign 4\n"
    "lb_hsamples: .skip 4064\n"      /* SLOTS * 4 */
    "lb_h_t0: .skip 4064\n"
    "lb_h_t1: .skip 4064\n"
    ".text\n");
_Static_assert(SLOTS == 1016, "lb_exit_timed and lb_hsamples use SLOTS literally");

/* ---- ending ----------------------------------------------------------------------- */
static NORETURN void end(u32 code) {
    printf("RESULT: %s\n", code ? "FAIL" : "PASS");
    outl(0xF4, code); /* isa-debug-exit: our hypervisor (and QEMU) end the guest here */
    if (!under_hv()) {
        /* Bare Bochs: magic breakpoint (exit 0) for PASS, port 8900H "Shutdown" (exit 1) for FAIL. */
        if (!code) __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
        for (const char *s = "Shutdown"; *s; s++) outb(0x8900, (u8)*s);
    }
    halt_forever();
}

static NORETURN void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("l1bench: ");
    vprintf_(fmt, ap);
    putc_('\n');
    va_end(ap);
    end(1);
}

/* ---- statistics ------------------------------------------------------------------- */
/* Shell sort (gaps 3x+1) of a copy; returns min and median of n samples minus `minus`. */
static void stats(const u32 *s, int n, u32 minus, u32 *min, u32 *median) {
    for (int i = 0; i < n; i++) sorted[i] = s[i] > minus ? s[i] - minus : 0;
    int h = 1;
    while (h < n / 3) h = 3 * h + 1;
    for (; h; h /= 3)
        for (int i = h; i < n; i++) {
            u32 v = sorted[i];
            int j = i;
            while (j >= h && sorted[j - h] > v) {
                sorted[j] = sorted[j - h];
                j -= h;
            }
            sorted[j] = v;
        }
    *min = sorted[0];
    *median = sorted[n / 2];
}

static void report(const char *name, const u32 *s, u32 minus) {
    u32 min, median;
    stats(s, N, minus, &min, &median);
    printf("bench: %s min=%u median=%u n=%d\n", name, min, median, N);
}

/* ---- timing in L1 (as bench.c: the field register is loaded before the first RDTSC) -- */
#define T_START "lfence\n\trdtsc\n\tmovl %%eax, %%esi\n\t"
#define T_END "lfence\n\trdtsc\n\tsubl %%esi, %%eax\n\t"
static u32 s_empty(u32 unused) {
    u32 t;
    __asm__ volatile(T_START T_END : "=a"(t)::"edx", "esi", "memory");
    return t;
}
static u32 s_vmread(u32 field) {
    u32 t, v;
    __asm__ volatile(T_START "vmread %%ecx, %%ebx\n\t" T_END : "=a"(t), "=b"(v) : "c"(field) : "edx", "esi", "memory", "cc");
    return t;
}
static u32 vmwrite_value;
static u32 s_vmwrite(u32 field) {
    u32 t;
    __asm__ volatile(T_START "vmwrite %%ebx, %%ecx\n\t" T_END
                     : "=a"(t) : "b"(vmwrite_value), "c"(field) : "edx", "esi", "memory", "cc");
    return t;
}
static u32 l1_samples[SLOTS];
static void l1_sample(u32 (*fn)(u32), u32 arg) {
    for (int i = 0; i < WARMUP + N; i++) l1_samples[i] = fn(arg);
}

/* ---- the enlightened VMCS (args=evmcs; l1bench_evmcs.c) ----------------------------------- */
extern const char *lb_ev_start(void);
extern bool lb_ev_write(u32 field, u64 value);
extern bool lb_ev_read(u32 field, u64 *value);
extern void lb_ev_all_clean(void);
extern u64 lb_ev_address(void);
static bool ev_mode; /* args=evmcs: L2's VMCS is the eVMCS in memory: no VMPTRLD, VMREAD, VMWRITE */
static char *h_fast = lb_exit_fast, *h_timed = lb_exit_timed; /* the exit handlers of the mode */

/* Field access for the set-up and the exits handled in C: VMWRITE/VMREAD of the current VMCS,
 * or with the eVMCS its member in memory. A failure is counted in vmcs_errors (l1/vmx.c's vw/vr);
 * with the eVMCS the only one is a field eVMCS v1 has no member for. */
static void ev_missing(u32 field) {
    if (!vmcs_errors++) vmcs_error_field = field;
}
static void set(u32 field, u32 v) {
    if (!ev_mode) vw(field, v);
    else if (!lb_ev_write(field, v)) ev_missing(field);
}
static void set64(u32 field, u64 v) {
    if (!ev_mode) vw64(field, v);
    else if (!lb_ev_write(field, v)) ev_missing(field);
}
static u64 get64(u32 field) {
    u64 v = 0;
    if (!ev_mode) return vr64(field);
    if (!lb_ev_read(field, &v)) ev_missing(field);
    return v;
}
static u32 get(u32 field) { return ev_mode ? (u32)get64(field) : vr(field); }
static const char *field_error(void) { return ev_mode ? "no eVMCS v1 member" : vm_str(vmcs_error_outcome); }
/* The VM-instruction error of a failed entry (with the eVMCS L0 writes it there, 688). */
static u32 entry_error(void) { return ev_mode ? get(F_VM_INSTRUCTION_ERROR) : vm_error(); }

/* lb_enter or lb_ev_enter; after an exit every clean bit of the eVMCS is set (lb_ev_all_clean). */
static u32 enter(u32 launch) {
    u32 r = ev_mode ? lb_ev_enter(launch) : lb_enter(launch);
    if (ev_mode && r == 0) lb_ev_all_clean();
    return r;
}

/* ---- capabilities, VMX operation, the VMCS ------------------------------------------- */
static u64 msr(u32 m) {
    u64 v;
    if (try_rdmsr(m, &v) != NO_EXC) die("RDMSR 0x%x: #%u", m, exc.vector);
    return v;
}

/* A control word: the bits the capability MSR makes 1 plus `want`, which must be allowed (A.3-A.5). */
static u32 ctl(u32 m, u32 want) {
    u64 c = msr(m);
    u32 v = ((u32)c | want) & (u32)(c >> 32);
    if ((v & want) != want) die("control MSR 0x%x (0x%llx) does not allow 0x%x", m, c, want);
    return v;
}

struct __attribute__((packed)) dtr { u16 limit; u32 base; };
extern u8 tss[];

static void setup_vmx(void) {
    if (!(cpuid(1, 0).ecx & (1u << 5))) die("no VMX (CPUID.1:ECX bit 5 clear)");
    u64 fc = msr(MSR_FEATURE_CONTROL);
    if (!(fc & FC_LOCK)) {
        if (try_wrmsr(MSR_FEATURE_CONTROL, fc | FC_LOCK | FC_VMX_OUTSIDE_SMX) != NO_EXC) die("cannot lock IA32_FEATURE_CONTROL");
        fc = msr(MSR_FEATURE_CONTROL);
    }
    if (!(fc & FC_VMX_OUTSIDE_SMX)) die("IA32_FEATURE_CONTROL 0x%llx: VMX outside SMX off", fc);

    /* Paging (VMX operation needs CR0.PG): 4 MiB identity pages over 4 GiB. */
    for (u32 i = 0; i < 1024; i++) pd[i] = (i << 22) | 0x87;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3(ADDR(pd));
    write_cr0(read_cr0() | CR0_PG | (1u << 5) /* NE */);
    write_cr0((read_cr0() | (u32)msr(MSR_VMX_CR0_FIXED0)) & (u32)msr(MSR_VMX_CR0_FIXED1));
    write_cr4((read_cr4() | (u32)msr(MSR_VMX_CR4_FIXED0)) & (u32)msr(MSR_VMX_CR4_FIXED1));

    u64 basic = msr(MSR_VMX_BASIC);
    bool tru = basic & BASIC_TRUE_CTLS;
    u32 rev = BASIC_REVISION(basic);
    *(u32 *)vmxon_region = rev;
    *(u32 *)vmcs = rev;
    u32 o;
    if ((o = vmxon(PA(vmxon_region))) != VM_OK) die("VMXON: %s", vm_str(o));
    if (ev_mode) {
        /* The eVMCS replaces VMCLEAR/VMPTRLD: the VP assist page names it (TLFS). */
        const char *why = lb_ev_start();
        if (why) die("args=evmcs: the Hyper-V enlightened VMCS v1 is not offered: %s", why);
    } else if ((o = vmclear(PA(vmcs))) != VM_OK || (o = vmptrld(PA(vmcs))) != VM_OK) {
        die("VMCLEAR/VMPTRLD: %s", vm_str(o));
    }

    u32 pin = ctl(tru ? MSR_VMX_TRUE_PINBASED : MSR_VMX_PINBASED, 0);
    u32 proc = ctl(tru ? MSR_VMX_TRUE_PROCBASED : MSR_VMX_PROCBASED, 0);
    u32 exitc = ctl(tru ? MSR_VMX_TRUE_EXIT : MSR_VMX_EXIT, 0);
    u32 entry = ctl(tru ? MSR_VMX_TRUE_ENTRY : MSR_VMX_ENTRY, 0);
    if (proc & PROC_SECONDARY) die("secondary controls forced on: not expected");
    diag("VMX_BASIC 0x%llx (revision 0x%x); controls pin 0x%x proc 0x%x exit 0x%x entry 0x%x", basic, rev, pin, proc,
         exitc, entry);

    struct dtr g, i;
    __asm__ volatile("sgdt %0\n\tsidt %1" : "=m"(g), "=m"(i));
    u16 tr;
    __asm__ volatile("str %0" : "=r"(tr));
    const struct { u32 f, v; } t[] = {
        { F_PIN_CTLS, pin }, { F_PROC_CTLS, proc }, { F_EXIT_CTLS, exitc }, { F_ENTRY_CTLS, entry },
        { F_EXCEPTION_BITMAP, 0 }, { F_CR3_TARGET_COUNT, 0 }, { F_EXIT_MSR_STORE_COUNT, 0 },
        { F_EXIT_MSR_LOAD_COUNT, 0 }, { F_ENTRY_MSR_LOAD_COUNT, 0 }, { F_ENTRY_INTR_INFO, 0 },
        { F_VMCS_LINK_PTR, ~0u }, { F_VMCS_LINK_PTR | 1, ~0u }, { F_GUEST_DEBUGCTL, 0 }, { F_GUEST_DEBUGCTL | 1, 0 },
        /* host = L1 as it is now */
        { F_HOST_CR0, read_cr0() }, { F_HOST_CR3, read_cr3() }, { F_HOST_CR4, read_cr4() },
        { F_HOST_CS_SEL, SEL_KCODE }, { F_HOST_SS_SEL, SEL_KDATA }, { F_HOST_DS_SEL, SEL_KDATA },
        { F_HOST_ES_SEL, SEL_KDATA }, { F_HOST_FS_SEL, SEL_KDATA }, { F_HOST_GS_SEL, SEL_KDATA },
        { F_HOST_TR_SEL, tr }, { F_HOST_TR_BASE, ADDR(tss) }, { F_HOST_GDTR_BASE, g.base },
        { F_HOST_IDTR_BASE, i.base }, { F_HOST_FS_BASE, 0 }, { F_HOST_GS_BASE, 0 }, { F_HOST_SYSENTER_CS, 0 },
        { F_HOST_SYSENTER_ESP, 0 }, { F_HOST_SYSENTER_EIP, 0 },
        /* guest = L2 in L1's address space, CPL 0, interrupts off */
        { F_GUEST_CR0, read_cr0() }, { F_GUEST_CR3, read_cr3() }, { F_GUEST_CR4, read_cr4() }, { F_GUEST_DR7, 0x400 },
        { F_GUEST_CS_SEL, SEL_KCODE }, { F_GUEST_CS_BASE, 0 }, { F_GUEST_CS_LIMIT, ~0u }, { F_GUEST_CS_AR, AR_CODE32 },
        { F_GUEST_LDTR_SEL, 0 }, { F_GUEST_LDTR_BASE, 0 }, { F_GUEST_LDTR_LIMIT, 0 }, { F_GUEST_LDTR_AR, AR_UNUSABLE },
        { F_GUEST_TR_SEL, tr }, { F_GUEST_TR_BASE, ADDR(tss) }, { F_GUEST_TR_LIMIT, 0x67 }, { F_GUEST_TR_AR, AR_TSS32_BUSY },
        { F_GUEST_GDTR_BASE, g.base }, { F_GUEST_GDTR_LIMIT, g.limit }, { F_GUEST_IDTR_BASE, i.base },
        { F_GUEST_IDTR_LIMIT, i.limit }, { F_GUEST_RSP, ADDR(l2_stack + sizeof l2_stack) }, { F_GUEST_RFLAGS, 0x2 },
        { F_GUEST_PENDING_DBG, 0 }, { F_GUEST_INTERRUPTIBILITY, 0 }, { F_GUEST_ACTIVITY, 0 },
        { F_GUEST_SYSENTER_CS, 0 }, { F_GUEST_SYSENTER_ESP, 0 }, { F_GUEST_SYSENTER_EIP, 0 },
    };
    vmcs_errors = 0;
    for (u32 k = 0; k < sizeof t / sizeof t[0]; k++) set(t[k].f, t[k].v);
    /* ES, SS, DS, FS, GS: flat data; each group (selector, base, limit, AR) at the same index. */
    for (u32 s = F_GUEST_ES_SEL; s <= F_GUEST_GS_SEL; s += 2) {
        if (s == F_GUEST_CS_SEL) continue;
        u32 x = s - F_GUEST_ES_SEL;
        set(s, SEL_KDATA);
        set(F_GUEST_ES_BASE + x, 0);
        set(F_GUEST_ES_LIMIT + x, ~0u);
        set(F_GUEST_ES_AR + x, AR_DATA32);
    }
    if (vmcs_errors) die("VMCS set-up: %u writes failed, first 0x%x: %s", vmcs_errors, vmcs_error_field, field_error());
}

/* Run L2 at `rip` with handler `host_rip` until its VMCALL: EBP = iterations,
 * EDI = where its (start, end) stamp pairs go. */
static bool launched;
static void l2_run(char *rip, char *host_rip, u32 iterations, u32 *out) {
    vmcs_errors = 0;
    set(F_GUEST_RIP, ADDR(rip));
    set(F_HOST_RIP, ADDR(host_rip));
    if (vmcs_errors) die("write of GUEST_RIP/HOST_RIP failed: %s", field_error());
    lb_l2_ebp = iterations;
    lb_l2_edi = ADDR(out);
    u32 r = enter(!launched);
    if (r & 0x80000000u) die("VM entry (%s) failed: flags 0x%x, error %u", launched ? "VMRESUME" : "VMLAUNCH", r & 0xFFFF, entry_error());
    if (r & 0x40000000u) die("the exit handler's VMRESUME failed: flags 0x%x, error %u", r & 0xFFFF, entry_error());
    launched = true;
    u32 reason = get(F_EXIT_REASON), rip_now = get(F_GUEST_RIP);
    if (reason != EXIT_VMCALL) die("L2 at 0x%x: exit reason 0x%x at 0x%x, expected its VMCALL", ADDR(rip), reason, rip_now);
    /* The loop ran to its end with EBP and EDI intact across every exit. */
    if (lb_l2_ebp != 0 || (out && lb_l2_edi != ADDR(out + 2 * iterations)))
        die("L2 at 0x%x: EBP %u, EDI 0x%x after the loop (expected 0, 0x%x): the handler lost L2's registers",
            ADDR(rip), lb_l2_ebp, lb_l2_edi, ADDR(out + 2 * iterations));
}

/* deltas[i] = L2's end stamp - start stamp of its sample i. */
static u32 *l2_deltas(void) {
    for (int i = 0; i < WARMUP + N; i++) deltas[i] = l2_stamps[2 * i + 1] - l2_stamps[2 * i];
    return deltas;
}

static u32 query_exits(void) { return vmcall(HC_QUERY, 1, 0); }

/* ---- EPTP switching (VMFUNC 0) in L2 ---------------------------------------------------
 * Eight EPT views of the same memory (L1's first 32 MiB, one to one, 2-MByte pages): each
 * its own PML4, sharing the rest. Cached: L2 switches between views 0 and 1 (a hypervisor
 * that caches its tables per EPTP keeps both); cold: L2 cycles through all eight, so a
 * cache of fewer than eight roots never has the next one. Each sample is the switch plus
 * reads of 16 pages 4 KiB apart (on a cold root, their first touch). */
extern u32 lb_view, lb_view_mask, lb_buf, lb_eptv_base;
extern char lb_l2_eptv[];
extern char lb_l2_vmfunc[];
#define VIEWS 8
static u64 ept_pml4s[VIEWS][512] ALIGNED(4096);
static u64 ept_pdpt[512] ALIGNED(4096);
static u64 ept_pd[512] ALIGNED(4096);
static u64 eptp_list[512] ALIGNED(4096);
static u8 touch_buf[16 * 4096] ALIGNED(4096);
#define F_EPT_POINTER 0x201Au
#define F_VMFUNC_CTLS 0x2018u
#define F_EPTP_LIST 0x2024u

/* L2 EPT violations that L1 handles: L2 reads pages 16-20 MiB, which L1's
 * EPT maps through two page tables that start empty; L1's C handler maps the
 * faulting page (one PTE, no INVEPT: not present -> present) and resumes L2
 * at the same instruction. Each sample is one such round trip. */
static u64 eptv_pt[2][512] ALIGNED(4096);
/* L1's side of the EPT-violation round trips until L2's VMCALL: the violations handled. Made
 * once per mode (ev constant), so that the VMCS mode's code is what it was before the eVMCS
 * mode existed (its figure stays comparable). */
static inline __attribute__((always_inline)) u32 eptv_loop(bool ev) {
    u32 handled = 0;
    for (;;) {
        u32 r = ev ? enter(0) : lb_enter(0);
        if (r & 0xC0000000u) die("EPT-violation bench: VM entry failed: flags 0x%x, error %u", r & 0xFFFF, entry_error());
        u32 reason = ev ? get(F_EXIT_REASON) : vr(F_EXIT_REASON);
        if (reason == EXIT_VMCALL) break;
        if (reason != 48) die("EPT-violation bench: exit reason %u at 0x%x", reason, get(F_GUEST_RIP));
        u32 gpa = (u32)(ev ? get64(F_GUEST_PHYS_ADDR) : vr64(F_GUEST_PHYS_ADDR));
        u32 page = (gpa >> 12) - (8u << 9);
        if (page >= 1024) die("EPT-violation bench: guest-physical 0x%x outside the test pages", gpa);
        eptv_pt[page >> 9][page & 511] = (u64)(gpa & ~0xFFFu) | 7 | (6 << 3);
        handled++;
    }
    return handled;
}
static void eptv_bench(u32 l2_over) {
    const u32 T = WARMUP + N;
    memset(eptv_pt, 0, sizeof eptv_pt);
    ept_pd[8] = PA(eptv_pt[0]) | 7;
    ept_pd[9] = PA(eptv_pt[1]) | 7;
    static u64 desc[2] ALIGNED(16);
    desc[0] = desc[1] = 0;
    if (invept(2, desc) != VM_OK) die("INVEPT all-context failed");
    lb_eptv_base = 8u << 21; /* EBP runs T..1: the pages at 16 MiB + EBP * 4 KiB */
    vmcs_errors = 0;
    set64(F_EPT_POINTER, eptp_list[0]);
    set(F_GUEST_RIP, ADDR(lb_l2_eptv));
    set(F_HOST_RIP, ADDR(h_fast));
    if (vmcs_errors) die("EPT-violation bench: write of 0x%x failed: %s", vmcs_error_field, field_error());
    lb_l2_ebp = T;
    lb_l2_edi = ADDR(l2_stamps);
    u32 handled = ev_mode ? eptv_loop(true) : eptv_loop(false);
    if (handled != T) die("EPT-violation bench: %u violations for %u samples", handled, T);
    report("l2-ept-violation-via-l1", l2_deltas() + WARMUP, l2_over);
    printf("# l2-ept-violation-via-l1: L2's first read of a page L1's EPT does not map; L1 maps it in C (%s exit "
           "reason and guest-physical address, one PTE) and resumes L2 (%u violations)\n",
           ev_mode ? "reads from the eVMCS the" : "VMREAD", handled);
}

/* EPT for L2 (L1's first 32 MiB in 2-MByte pages, views as above), with `vmfunc` also VMFUNC
 * EPTP switching; false if not offered. */
static bool setup_ept(bool vmfunc) {
    u64 basic = msr(MSR_VMX_BASIC), p2 = 0, vf = 0, ev = 0;
    u64 procm = msr((basic & BASIC_TRUE_CTLS) ? MSR_VMX_TRUE_PROCBASED : MSR_VMX_PROCBASED);
    if (!((procm >> 32) & PROC_SECONDARY) || try_rdmsr(MSR_VMX_PROCBASED2, &p2) != NO_EXC) return false;
    u32 want = PROC2_EPT | (vmfunc ? PROC2_VMFUNC : 0);
    if (((u32)(p2 >> 32) & want) != want) return false;
    if (vmfunc && (try_rdmsr(MSR_VMX_VMFUNC, &vf) != NO_EXC || !(vf & 1))) return false;
    if (try_rdmsr(MSR_VMX_EPT_VPID_CAP, &ev) != NO_EXC || !(ev & (1ull << 6)) || !(ev & (1ull << 14)) || !(ev & (1ull << 16)))
        return false;
    for (u32 i = 0; i < 512; i++) ept_pd[i] = i < 16 ? ((u64)i << 21) | 7 | (6 << 3) | (1 << 7) : 0;
    ept_pdpt[0] = PA(ept_pd) | 7;
    for (u32 v = 0; v < VIEWS; v++) {
        ept_pml4s[v][0] = PA(ept_pdpt) | 7;
        eptp_list[v] = PA(ept_pml4s[v]) | (3 << 3) | 6;
    }
    vmcs_errors = 0;
    set(F_PROC_CTLS, get(F_PROC_CTLS) | PROC_SECONDARY);
    set(F_PROC2_CTLS, ((u32)p2 | want) & (u32)(p2 >> 32));
    set64(F_EPT_POINTER, eptp_list[0]);
    if (vmfunc) {
        set64(F_VMFUNC_CTLS, 1);
        set64(F_EPTP_LIST, PA(eptp_list));
    }
    if (vmcs_errors) die("EPT/VMFUNC set-up: write of 0x%x failed: %s", vmcs_error_field, field_error());
    lb_buf = ADDR(touch_buf);
    return true;
}

void guest_main(void) {
    guest_init("l1bench");
    char buf[16];
    bool okn;
    if (word_value(boot.cmdline, "n", buf, sizeof buf)) {
        u32 n = parse_u32(buf, &okn);
        if (!okn || n < 1 || n > MAX_N) die("n=%s: want 1..%d", buf, MAX_N);
        N = (int)n;
    }
    ev_mode = has_word(boot.cmdline, "evmcs");
    if (ev_mode) {
        h_fast = lb_ev_exit_fast;
        h_timed = lb_ev_exit_timed;
    }
    printf("bench: nested VMX in RDTSC ticks (Bochs sync=none: instructions), lfence;rdtsc pairs, %s%s\n",
           under_hv() ? "L1 under ASHypervisor (nested)" : "L1 on bare metal/Bochs (reference: its own VMX)",
           ev_mode ? ", L2's VMCS an enlightened VMCS (Hyper-V eVMCS v1)" : "");
    setup_vmx();
    const u32 T = WARMUP + N;

    /* L1's empty pair (subtracted from L1 figures, as bench.c does). */
    l1_sample(s_empty, 0);
    u32 l1_over, med;
    stats(l1_samples + WARMUP, N, 0, &l1_over, &med);
    printf("bench: overhead min=%u median=%u n=%d (subtracted: the min)\n", l1_over, med, N);

    /* L2's empty pair, measured in L2 (subtracted from the L2 figure); this also launches L2. */
    l2_run(lb_l2_empty, h_fast, T, l2_stamps);
    u32 l2_over;
    stats(l2_deltas() + WARMUP, N, 0, &l2_over, &med);
    printf("bench: l2-overhead min=%u median=%u n=%d (L2's empty pair; subtracted from the L2 figure: the min)\n",
           l2_over, med, N);

    /* L1 VMREAD/VMWRITE of L2's VMCS (launched, current). With the eVMCS there is none: L1
     * reads and writes the eVMCS in memory (TLFS "Enlightened VMCS": "Any VMREAD or VMWRITE
     * instructions while an enlightened VMCS is active is unsupported"). */
    if (ev_mode) {
        static const char *const names[] = { "l1-vmread-guest-rip", "l1-vmread-exit-reason", "l1-vmwrite-guest-rip" };
        for (u32 k = 0; k < 3; k++)
            printf("bench: %s skipped (eVMCS: L1 reads and writes L2's VMCS in memory, no VMREAD/VMWRITE)\n", names[k]);
    } else {
        u32 v;
        if (vmread(F_GUEST_RIP, &v) != VM_OK || vmread(F_EXIT_REASON, &v) != VM_OK) die("VMREAD fails");
        vmwrite_value = vr(F_GUEST_RIP);
        if (vmwrite(F_GUEST_RIP, vmwrite_value) != VM_OK || vr(F_GUEST_RIP) != vmwrite_value) die("VMWRITE of GUEST_RIP fails");
        l1_sample(s_vmread, F_GUEST_RIP);
        report("l1-vmread-guest-rip", l1_samples + WARMUP, l1_over);
        l1_sample(s_vmread, F_EXIT_REASON);
        report("l1-vmread-exit-reason", l1_samples + WARMUP, l1_over);
        l1_sample(s_vmwrite, F_GUEST_RIP);
        report("l1-vmwrite-guest-rip", l1_samples + WARMUP, l1_over);
    }

    /* L2 CPUID round trips through L1's minimal handler, timed in L2. */
    l2_run(lb_l2_time, h_fast, T, l2_stamps);
    report("l2-cpuid-via-l1", l2_deltas() + WARMUP, l2_over);

    /* The same handler body timed by L1 around it. */
    static u32 stamps[SLOTS];
    for (u32 k = 0; k < T; k++) stamps[k] = lb_stamps_only();
    u32 h_over;
    stats(stamps + WARMUP, N, 0, &h_over, &med);
    lb_hidx = 0;
    l2_run(lb_l2_time, h_timed, T, l2_stamps);
    if (lb_hidx != T) die("timed handler: %u samples, expected %u", lb_hidx, T);
    report("l1-handler", lb_hsamples + WARMUP, h_over);
    /* The two legs of the same round trips: L1 and L2 read one TSC (no TSC
     * offsetting at either level), so L2's stamps and the handler's compare.
     * Raw stamp-to-stamp ticks: they include the few instructions around the
     * stamps (see the bare-Bochs figures, where nothing else is in them). */
    for (u32 k = 0; k < T; k++) deltas[k] = lb_h_t0[k] - l2_stamps[2 * k];
    report("l2-exit-to-l1-handler", deltas + WARMUP, 0);
    for (u32 k = 0; k < T; k++) deltas[k] = l2_stamps[2 * k + 1] - lb_h_t1[k];
    report("l1-vmresume-to-l2", deltas + WARMUP, 0);
    printf("# l1-handler: the %u instructions between the stamps (stamps alone: min %u, subtracted); "
           "VMRESUME is after them\n", ev_mode ? 12 : 16, h_over);
    if (ev_mode)
        printf("# l1-handler: PUSH ECX/EDX; MOV exit reason from the eVMCS; CMP, JNE; MOV exit-instruction length; "
               "MOV guest RIP; ADD; MOV guest RIP into the eVMCS; OR every clean bit; POP EDX/ECX\n");
    else
        printf("# l1-handler: PUSH EAX/ECX/EDX; MOV, VMREAD exit reason; CMP, JNE; MOV, VMREAD exit-instruction length; "
               "MOV, VMREAD GUEST_RIP; ADD; VMWRITE GUEST_RIP; POP EDX/ECX/EAX\n");

    /* VM exits L0 takes per L2 CPUID round trip: the hypervisor's exit count
     * around K CPUIDs, minus the same around none (entry, VMCALL exit, these
     * VMWRITEs and VMREADs, the query itself). */
    if (under_hv()) {
        u32 K = (u32)N;
        l2_run(lb_l2_loop, h_fast, 0, 0); /* the same path once before counting */
        u32 q0 = query_exits();
        l2_run(lb_l2_loop, h_fast, 0, 0);
        u32 q1 = query_exits();
        l2_run(lb_l2_loop, h_fast, K, 0);
        u32 q2 = query_exits();
        u32 over = q1 - q0, delta = q2 - q1;
        if (delta < over) die("exit counts: %u around %u CPUIDs, %u around none", delta, K, over);
        u32 per100 = (u32)(((u64)(delta - over) * 100 + K / 2) / K);
        printf("bench: l0-exits-per-l2-cpuid value=%u.%02u (exits %u around K=%u L2 CPUIDs, overhead %u around none)\n",
               per100 / 100, per100 % 100, delta, K, over);
    } else {
        printf("bench: l0-exits-per-l2-cpuid skipped (not under ASHypervisor: no exit-count hypercall)\n");
    }

    /* EPTP switching, last: it turns on EPT for L2. eVMCS v1 has no member for the VM-function
     * controls or the EPTP-list address (and hyperv=on does not offer VM functions,
     * docs/guest-interface.md): with it only the EPT violations are measured. */
    if (ev_mode) {
        printf("bench: l2-vmfunc-switch skipped (eVMCS v1 has no VM-function controls or EPTP-list address)\n");
        if (setup_ept(false)) eptv_bench(l2_over);
        else printf("bench: l2-ept-violation-via-l1 skipped (EPT with 2-MByte pages not offered)\n");
    } else if (setup_ept(true)) {
        lb_view = 0;
        lb_view_mask = 1;
        l2_run(lb_l2_vmfunc, h_fast, T, l2_stamps);
        report("l2-vmfunc-switch-cached", l2_deltas() + WARMUP, l2_over);
        lb_view = 0;
        lb_view_mask = VIEWS - 1;
        l2_run(lb_l2_vmfunc, h_fast, T, l2_stamps);
        report("l2-vmfunc-switch-cold", l2_deltas() + WARMUP, l2_over);
        printf("# l2-vmfunc-switch-*: VMFUNC 0 (EPTP switch) + reads of 16 pages 4 KiB apart; cached: views 0 and 1 "
               "alternately, cold: 8 views in turn\n");
        eptv_bench(l2_over);
    } else {
        printf("bench: l2-vmfunc-switch skipped (EPT with 2-MByte pages and VMFUNC EPTP switching not offered)\n");
    }

    if (vmclear(ev_mode ? lb_ev_address() : PA(vmcs)) != VM_OK || vmxoff() != VM_OK) die("VMCLEAR/VMXOFF failed");
    printf("# bench: %llu TSC ticks since entry\n", rdtsc() - entry.tsc);
    end(0);
}
