/* Issue 9 item 7: protection keys in L2 and the guest's whole extended state
 * (XCR0 components: x87, SSE, AVX, AVX-512, PKRU). On a processor VM entry
 * and VM exit switch neither XCR0 nor any XSAVE-managed register (SDM Vol. 3C
 * 26.3, 27.5: no such fields in the VMCS), so L1 sees after an exit what L2
 * left in YMM/ZMM and PKRU, and L2 sees what L1 left; an L0 must keep exactly
 * that, across its own exits and across vCPU migration. Protection keys are
 * checked only with 4-level paging (SDM Vol. 3A 4.6.2): L2 switches itself
 * into IA-32e mode (compatibility mode; unrestricted guest under L1's EPT),
 * since a 32-bit L1 may not enter an IA-32e guest (26.2.4: with "host
 * address-space size" 0 the "IA-32e mode guest" control must be 0). */
#include "l1.h"

#define CR4_PAE (1u << 5)
#define CR4_OSFXSR (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define CR4_OSXSAVE (1u << 18)
#define CR4_PKE (1u << 22)
#define CR0_PG (1u << 31)
#define CR0_WP (1u << 16)
#define EXIT_XSETBV 55
#define PF_P 1u
#define PF_W 2u
#define PF_U 4u
#define PF_PK (1u << 5)
#define PK_KEY 5u /* the protection key of the test page */
#define LOOPS 200 /* L2 CPUIDs (each exits to L1) while state must survive */

/* L2 code (32-bit; l2x_pk runs on into IA-32e compatibility mode). */
__asm__(".text\n"
        "xs_stray: cli; hlt; jmp xs_stray\n"
        /* EBX = PKRU to write; returns ESI = PKRU found at entry (RDPKRU). */
        ".globl l2x_pkru\n"
        "l2x_pkru:\n"
        "  xor %ecx, %ecx\n"
        "  .byte 0x0f, 0x01, 0xee\n" /* RDPKRU */
        "  mov %eax, %esi\n"
        "  mov %ebx, %eax\n"
        "  xor %ecx, %ecx\n"
        "  xor %edx, %edx\n"
        "  .byte 0x0f, 0x01, 0xef\n" /* WRPKRU */
        ".globl l2x_pkru_done\n"
        "l2x_pkru_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        /* MOV to CR4 setting PKE (L2's own write), then as l2x_pkru. */
        ".globl l2x_cr4_pke\n"
        "l2x_cr4_pke:\n"
        "  mov %cr4, %eax\n"
        "  or $0x400000, %eax\n"
        "  mov %eax, %cr4\n"
        "  jmp l2x_pkru\n"
        /* MOV to CR4 of EBX (a bit L1's processor lacks: #GP). */
        ".globl l2x_mov_cr4\n"
        "l2x_mov_cr4:\n"
        "  mov %ebx, %cr4\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        /* XSETBV with EDX:EAX = XCR0 wanted (exits to L1, 26.1.2); XGETBV. */
        ".globl l2x_xsetbv\n"
        "l2x_xsetbv:\n"
        "  xor %ecx, %ecx\n"
        "  xsetbv\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        ".globl l2x_xgetbv\n"
        "l2x_xgetbv:\n"
        "  xor %ecx, %ecx\n"
        "  xgetbv\n"
        ".globl l2x_xgetbv_done\n"
        "l2x_xgetbv_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        /* YMM0-7 from [EBP]; EDI times: YMM0-7 to [ESI], CPUID (exits to
         * L1, which checks and sets them); then YMM0-7 to [ESI]. */
        ".globl l2x_ymm_loop\n"
        "l2x_ymm_loop:\n"
        "  vmovdqu 0(%ebp), %ymm0\n  vmovdqu 32(%ebp), %ymm1\n  vmovdqu 64(%ebp), %ymm2\n  vmovdqu 96(%ebp), %ymm3\n"
        "  vmovdqu 128(%ebp), %ymm4\n  vmovdqu 160(%ebp), %ymm5\n  vmovdqu 192(%ebp), %ymm6\n  vmovdqu 224(%ebp), %ymm7\n"
        "1: call xs_ymm_store_esi\n"
        "  xor %eax, %eax\n  xor %ecx, %ecx\n  cpuid\n  dec %edi\n  jnz 1b\n"
        "  call xs_ymm_store_esi\n"
        ".globl l2x_ymm_done\n"
        "l2x_ymm_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        "xs_ymm_store_esi:\n"
        "  vmovdqu %ymm0, 0(%esi)\n  vmovdqu %ymm1, 32(%esi)\n  vmovdqu %ymm2, 64(%esi)\n  vmovdqu %ymm3, 96(%esi)\n"
        "  vmovdqu %ymm4, 128(%esi)\n  vmovdqu %ymm5, 160(%esi)\n  vmovdqu %ymm6, 192(%esi)\n  vmovdqu %ymm7, 224(%esi)\n"
        "  ret\n"
        /* The same with ZMM0-7 and K1-K7 (512 + 56 bytes). */
        ".globl l2x_zmm_loop\n"
        "l2x_zmm_loop:\n"
        "  mov %ebp, %eax\n  call xs_zmm_load_eax\n"
        "1: mov %esi, %eax\n  call xs_zmm_store_eax\n"
        "  xor %eax, %eax\n  xor %ecx, %ecx\n  cpuid\n  dec %edi\n  jnz 1b\n"
        "  mov %esi, %eax\n  call xs_zmm_store_eax\n"
        ".globl l2x_zmm_done\n"
        "l2x_zmm_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        "xs_zmm_load_eax:\n"
        "  vmovdqu64 0(%eax), %zmm0\n  vmovdqu64 64(%eax), %zmm1\n  vmovdqu64 128(%eax), %zmm2\n  vmovdqu64 192(%eax), %zmm3\n"
        "  vmovdqu64 256(%eax), %zmm4\n  vmovdqu64 320(%eax), %zmm5\n  vmovdqu64 384(%eax), %zmm6\n  vmovdqu64 448(%eax), %zmm7\n"
        "  kmovq 512(%eax), %k1\n  kmovq 520(%eax), %k2\n  kmovq 528(%eax), %k3\n  kmovq 536(%eax), %k4\n"
        "  kmovq 544(%eax), %k5\n  kmovq 552(%eax), %k6\n  kmovq 560(%eax), %k7\n"
        "  ret\n"
        "xs_zmm_store_eax:\n"
        "  vmovdqu64 %zmm0, 0(%eax)\n  vmovdqu64 %zmm1, 64(%eax)\n  vmovdqu64 %zmm2, 128(%eax)\n  vmovdqu64 %zmm3, 192(%eax)\n"
        "  vmovdqu64 %zmm4, 256(%eax)\n  vmovdqu64 %zmm5, 320(%eax)\n  vmovdqu64 %zmm6, 384(%eax)\n  vmovdqu64 %zmm7, 448(%eax)\n"
        "  kmovq %k1, 512(%eax)\n  kmovq %k2, 520(%eax)\n  kmovq %k3, 528(%eax)\n  kmovq %k4, 536(%eax)\n"
        "  kmovq %k5, 544(%eax)\n  kmovq %k6, 552(%eax)\n  kmovq %k7, 560(%eax)\n"
        "  ret\n"
        /* PKRU = EBX; EDI times: RDPKRU to [ESI], CPUID; then RDPKRU to [ESI]. */
        ".globl l2x_pkru_loop\n"
        "l2x_pkru_loop:\n"
        "  mov %ebx, %eax\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
        "  .byte 0x0f, 0x01, 0xef\n" /* WRPKRU */
        "1: xor %ecx, %ecx\n"
        "  .byte 0x0f, 0x01, 0xee\n" /* RDPKRU */
        "  mov %eax, (%esi)\n"
        "  xor %eax, %eax\n  xor %ecx, %ecx\n  cpuid\n  dec %edi\n  jnz 1b\n"
        "  xor %ecx, %ecx\n"
        "  .byte 0x0f, 0x01, 0xee\n" /* RDPKRU */
        "  mov %eax, (%esi)\n"
        ".globl l2x_pkru_loop_done\n"
        "l2x_pkru_loop_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        /* Paging off at entry (CR4.PAE|PKE, CR3 = 4-level tables): EFER.LME,
         * CR0.PG|WP -> IA-32e compatibility mode; PKRU = ESI unless EDI bit
         * 2; to CPL 3 (IRET) if EDI bit 1; then a read (EDI bit 0 = 0) or a
         * write of EBP (bit 0 = 1) at EBX. */
        ".globl l2x_pk\n"
        "l2x_pk:\n"
        "  mov $0xC0000080, %ecx\n"
        "  rdmsr\n"
        "  or $0x100, %eax\n"
        "  wrmsr\n"
        "  mov %cr0, %eax\n"
        "  or $0x80010000, %eax\n"
        "  mov %eax, %cr0\n"
        "  jmp 1f\n"
        "1: test $8, %edi\n"
        "  jz 6f\n"
        /* EDI bit 3: first a CPL-0 read with PKRU = 0 (the translation is
         * then cached), and an exit that L0 handles alone (RDMSR/WRMSR of
         * EFER, L1's bitmap is clear), before PKRU = ESI. */
        "  xor %eax, %eax\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
        "  .byte 0x0f, 0x01, 0xef\n" /* WRPKRU */
        "  mov (%ebx), %eax\n"
        "  mov $0xC0000080, %ecx\n  rdmsr\n  wrmsr\n"
        "6: test $4, %edi\n"
        "  jnz 4f\n"
        "  mov %esi, %eax\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
        "  .byte 0x0f, 0x01, 0xef\n" /* WRPKRU */
        "4: test $2, %edi\n"
        "  jz 3f\n"
        "  mov $0x23, %eax\n  mov %eax, %ds\n  mov %eax, %es\n"
        "  push $0x23\n  push $xs_user_stack_top\n  push $2\n  push $0x1b\n  push $3f\n"
        "  iret\n"
        "3: test $1, %edi\n"
        "  jnz 2f\n"
        ".globl l2x_pk_read\n"
        "l2x_pk_read:\n"
        "  mov (%ebx), %eax\n"
        ".globl l2x_pk_read_done\n"
        "l2x_pk_read_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        ".globl l2x_pk_write\n"
        "l2x_pk_write:\n"
        "2: mov %ebp, (%ebx)\n"
        ".globl l2x_pk_write_done\n"
        "l2x_pk_write_done:\n"
        "  vmcall\n"
        "  jmp xs_stray\n"
        /* L1's own vector registers (cdecl: the buffer at 4(%esp)). */
        ".globl xs_ymm_get\n"
        "xs_ymm_get:\n"
        "  mov 4(%esp), %eax\n"
        "  vmovdqu %ymm0, 0(%eax)\n  vmovdqu %ymm1, 32(%eax)\n  vmovdqu %ymm2, 64(%eax)\n  vmovdqu %ymm3, 96(%eax)\n"
        "  vmovdqu %ymm4, 128(%eax)\n  vmovdqu %ymm5, 160(%eax)\n  vmovdqu %ymm6, 192(%eax)\n  vmovdqu %ymm7, 224(%eax)\n"
        "  ret\n"
        /* cdecl entry points for L1: ZMM0-7/K1-K7 from / to a buffer. */
        ".globl xs_zmm_get\n"
        "xs_zmm_get:\n"
        "  mov 4(%esp), %eax\n"
        "  jmp xs_zmm_store_eax\n"
        ".globl xs_zmm_set\n"
        "xs_zmm_set:\n"
        "  mov 4(%esp), %eax\n"
        "  jmp xs_zmm_load_eax\n"
        ".globl xs_ymm_set\n"
        "xs_ymm_set:\n"
        "  mov 4(%esp), %eax\n"
        "  vmovdqu 0(%eax), %ymm0\n  vmovdqu 32(%eax), %ymm1\n  vmovdqu 64(%eax), %ymm2\n  vmovdqu 96(%eax), %ymm3\n"
        "  vmovdqu 128(%eax), %ymm4\n  vmovdqu 160(%eax), %ymm5\n  vmovdqu 192(%eax), %ymm6\n  vmovdqu 224(%eax), %ymm7\n"
        "  ret\n"
        ".bss\n"
        ".balign 16\n"
        "  .skip 256\n"
        "xs_user_stack_top:\n"
        ".text\n");

extern char l2x_mov_cr4[];
extern char l2x_pkru[], l2x_pkru_done[], l2x_cr4_pke[], l2x_xsetbv[], l2x_xgetbv[], l2x_xgetbv_done[], l2x_ymm_loop[],
    l2x_ymm_done[], l2x_zmm_loop[], l2x_zmm_done[], l2x_pkru_loop[], l2x_pkru_loop_done[], l2x_pk[], l2x_pk_read[], l2x_pk_read_done[], l2x_pk_write[],
    l2x_pk_write_done[];
void xs_ymm_get(void *out);
void xs_ymm_set(const void *in);
void xs_zmm_get(void *out);
void xs_zmm_set(const void *in);

static u32 cr4_l1_before;
static u64 xcr0_l1_before;
static bool has_pku, has_xsave, has_avx, has_avx512;
static u64 xcr0_supported;

static inline u32 rdpkru(void) {
    u32 a, d;
    __asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(a), "=d"(d) : "c"(0));
    return a;
}
static inline void wrpkru(u32 v) { __asm__ volatile(".byte 0x0f, 0x01, 0xef" ::"a"(v), "c"(0), "d"(0) : "memory"); }
static inline u64 xgetbv0(void) {
    u32 a, d;
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return ((u64)d << 32) | a;
}

static u8 pattern_in[576] ALIGNED(64), pattern_out[576] ALIGNED(64), l1_regs[576] ALIGNED(64);

static void fill(u8 *p, u32 n, u32 seed) {
    for (u32 i = 0; i < n; i++) p[i] = (u8)(seed + i * 7 + (i >> 5));
}

/* ---- (1) PKRU and CR4.PKE in L2 -------------------------------------------------- */
static void pkru_cases(void) {
    u32 o = try_write_cr4(read_cr4() | CR4_PKE);
    check(o == NO_EXC && (read_cr4() & CR4_PKE), "L1 sets CR4.PKE (CPUID.7:ECX.PKU = 1)|vector %d", (i32)o);
    struct cpuid c7 = cpuid(7, 0);
    check(c7.ecx & (1u << 4), "CPUID.(EAX=7,ECX=0):ECX.OSPKE = 1 with CR4.PKE = 1 (SDM Vol. 2A CPUID)|ECX 0x%x", c7.ecx);
    wrpkru(0x0000000C);
    u32 p = rdpkru();
    check(p == 0x0000000C, "L1 WRPKRU 0000000CH, RDPKRU reads it back|0x%x", p);

    if (!l2_setup_ex(0, 0, 0, 0, "L2 WRPKRU/RDPKRU with CR4.PKE in vmcs12's guest CR4")) return;
    vw(F_EXCEPTION_BITMAP, 1u << 6);
    vw(F_GUEST_CR4, read_cr4() | CR4_PKE);
    wrpkru(0x55550004);
    regs.ebx = 0x0000AA30;
    regs.esi = 0;
    l2_run(ADDR(l2x_pkru));
    p = rdpkru();
    check(vmcall_at(l2x_pkru_done, 0) && regs.esi == 0x55550004,
          "L2 RDPKRU at its first entry reads what L1 wrote (no PKRU switch on VM entry)|%s L2 read 0x%x", run_str(), regs.esi);
    check(exit_is(EXIT_VMCALL) && p == 0x0000AA30,
          "after the exit L1 RDPKRU reads what L2 wrote (no PKRU switch on VM exit)|%s L1 reads 0x%x", run_str(), p);
    wrpkru(0x12340000);
    regs.ebx = 0x00000300;
    l2_run(ADDR(l2x_pkru));
    p = rdpkru();
    check(vmcall_at(l2x_pkru_done, 0) && regs.esi == 0x12340000 && p == 0x300,
          "again with VMRESUME: L2 reads L1's 12340000H, L1 then reads L2's 300H|%s L2 read 0x%x, L1 0x%x", run_str(),
          regs.esi, p);

    /* vmcs12's guest CR4 without PKE: WRPKRU is #UD in L2 even though L1 has PKE. */
    vw(F_GUEST_CR4, read_cr4() & ~CR4_PKE);
    l2_run(ADDR(l2x_pkru));
    check(exit_is(EXIT_EXCEPTION) && (ex.intr & 0x800007FF) == (INTR_VALID | INTR_TYPE_HW_EXCEPTION | 6) &&
              ex.rip == ADDR(l2x_pkru) + 2,
          "guest CR4.PKE = 0 in vmcs12 (L1's CR4.PKE = 1): L2 RDPKRU -> #UD|%s", run_str());

    /* L2 sets CR4.PKE itself (L1's CR4 mask does not own PKE): it takes effect. */
    wrpkru(0x40);
    regs.ebx = 0x80;
    l2_run(ADDR(l2x_cr4_pke));
    u32 cr4_12 = vr(F_GUEST_CR4);
    p = rdpkru();
    check(vmcall_at(l2x_pkru_done, 0) && regs.esi == 0x40 && p == 0x80 && (cr4_12 & CR4_PKE),
          "L2 MOV to CR4 setting PKE: RDPKRU/WRPKRU work, vmcs12 guest CR4 has PKE on exit|%s L2 read 0x%x, L1 0x%x, CR4 0x%x",
          run_str(), regs.esi, p, cr4_12);
    wrpkru(0);
}

/* ---- CR4 bits and the CPUID features that enable them --------------------------- */
/* A MOV to CR4 that sets a bit of a feature CPUID does not enumerate is
 * #GP (SDM Vol. 3A 2.5, Vol. 2B MOV); a bit of an enumerated feature can be
 * set (in VMX operation: CR4_FIXED1 has it, A.8). Checked both ways. (Not
 * SMEP and SMAP: L1 runs from user pages, its next fetch or access would
 * fault.) */
static void cr4_feature_cases(void) {
    static const struct { const char *name; u32 bit, leaf, reg, cpuid_bit; } f[] = {
        { "FSGSBASE", 16, 7, 1, 0 }, { "UMIP", 11, 7, 2, 2 }, { "PKE", 22, 7, 2, 3 },      { "CET", 23, 7, 2, 7 },
        { "PKS", 24, 7, 2, 31 },     { "KL", 19, 7, 2, 23 },  { "OSXSAVE", 18, 1, 2, 26 },
    };
    u32 cr0 = read_cr0(), cr4 = read_cr4();
    write_cr0(cr0 | CR0_WP); /* CR4.CET needs CR0.WP = 1 */
    for (u32 i = 0; i < sizeof f / sizeof f[0]; i++) {
        struct cpuid c = cpuid(f[i].leaf, 0);
        u32 r = f[i].reg == 1 ? c.ebx : c.ecx;
        bool has = (r >> f[i].cpuid_bit) & 1;
        u32 o = try_write_cr4(cr4 | (1u << f[i].bit));
        bool set = o == NO_EXC && (read_cr4() & (1u << f[i].bit));
        write_cr4(cr4);
        check(has ? set : o == 13, "CR4.%s (bit %u): %s|CPUID.%u:%s[%u] = %d, MOV to CR4 vector %d", f[i].name, f[i].bit,
              has ? "CPUID enumerates the feature and the bit can be set" : "CPUID does not enumerate it: setting it is #GP",
              f[i].leaf, f[i].reg == 1 ? "EBX" : "ECX", f[i].cpuid_bit, has, (i32)o);
    }
    write_cr0(cr0);
    /* The same in L2, with #GP in L1's exception bitmap: the fault is an
     * exception exit to L1 (exit 0, #GP(0), RIP at the MOV; 26.2, 28.2.2),
     * whether the processor raises it or (under our L0, for a bit L0
     * withholds from L1) the hypervisor that completes L2's MOV. */
    u32 i = 0;
    while (i < sizeof f / sizeof f[0]) {
        struct cpuid c = cpuid(f[i].leaf, 0);
        if (!(((f[i].reg == 1 ? c.ebx : c.ecx) >> f[i].cpuid_bit) & 1)) break;
        i++;
    }
    if (i == sizeof f / sizeof f[0]) {
        skip("CPUID enumerates every feature of the table", "L2's MOV to CR4 of a missing feature's bit");
    } else if (l2_setup_ex(0, 0, 0, 0, "L2's MOV to CR4 of a missing feature's bit")) {
        vw(F_EXCEPTION_BITMAP, 1u << 13);
        regs.ebx = read_cr4() | (1u << f[i].bit);
        l2_run(ADDR(l2x_mov_cr4));
        check(exit_is(EXIT_EXCEPTION) && ex.intr == (INTR_VALID | INTR_TYPE_HW_EXCEPTION | INTR_ERROR_VALID | 13) && ex.intr_err == 0 &&
                  ex.rip == ADDR(l2x_mov_cr4),
              "L2's MOV to CR4 setting %s (bit %u, not enumerated), #GP in L1's exception bitmap: exit 0 to L1, #GP(0) at the "
              "MOV|%s err 0x%x",
              f[i].name, f[i].bit, run_str(), ex.intr_err);
    }
}

/* ---- L1 owns CR4.PKE in L2's guest/host mask ------------------------------------ */
/* L2's MOV to CR4 setting PKE exits to L1 (26.1.3); L1 sets PKE in vmcs12's
 * guest CR4 and the read shadow and resumes: PKE must then be in L2's real
 * CR4 (WRPKRU works, no #UD). */
static void cr4_owned_cases(void) {
    if (!l2_setup_ex(0, 0, 0, 0, "L1 owns CR4.PKE in L2's CR4 mask")) return;
    vw(F_EXCEPTION_BITMAP, 1u << 6);
    vw(F_CR4_MASK, CR4_PKE);
    vw(F_CR4_SHADOW, 0);
    vw(F_GUEST_CR4, read_cr4() & ~CR4_PKE);
    wrpkru(0x10);
    regs.ebx = 0x20;
    l2_run(ADDR(l2x_cr4_pke));
    bool exited = exit_is(EXIT_CR_ACCESS) && ex.rip == ADDR(l2x_cr4_pke) + 8 && (ex.qual & 0xF) == 4;
    check(exited, "L2's MOV to CR4 setting PKE (owned by L1, shadow 0) exits to L1: reason 28, CR4|%s", run_str());
    if (!exited) return;
    vw(F_GUEST_CR4, vr(F_GUEST_CR4) | CR4_PKE);
    vw(F_CR4_SHADOW, CR4_PKE);
    l2_resume_after_insn();
    u32 p = rdpkru();
    check(vmcall_at(l2x_pkru_done, 0) && regs.esi == 0x10 && p == 0x20,
          "L1 sets PKE in vmcs12's guest CR4 and resumes: L2's RDPKRU/WRPKRU work|%s L2 read 0x%x, L1 0x%x", run_str(), regs.esi,
          p);
    /* L1 takes PKE away again with a VMWRITE: the next RDPKRU in L2 is #UD. */
    vw(F_GUEST_CR4, vr(F_GUEST_CR4) & ~CR4_PKE);
    l2_run(ADDR(l2x_pkru));
    check(exit_is(EXIT_EXCEPTION) && (ex.intr & 0x7FF) == (INTR_TYPE_HW_EXCEPTION | 6),
          "L1 clears PKE in vmcs12's guest CR4 (VMWRITE only): L2's RDPKRU -> #UD|%s", run_str());
    wrpkru(0);
}

/* ---- XCR0 in L2 ------------------------------------------------------------------- */
static void xcr0_cases(void) {
    if (!l2_setup_ex(0, 0, 0, 0, "L2 XSETBV and XGETBV")) return;
    u64 x = xgetbv0();
    regs.eax = (u32)(x & ~4ull); /* asks for AVX off */
    regs.edx = 0;
    l2_run(ADDR(l2x_xsetbv));
    u64 after = xgetbv0();
    check(exit_is(EXIT_XSETBV) && ex.rip == ADDR(l2x_xsetbv) + 2 && ex.len == 3 && after == x,
          "L2 XSETBV exits to L1 (reason 55, length 3); XCR0 unchanged for L1|%s XCR0 0x%llx (was 0x%llx)", run_str(), after, x);
    regs.eax = regs.edx = 0;
    l2_run(ADDR(l2x_xgetbv));
    check(vmcall_at(l2x_xgetbv_done, 0) && regs.eax == (u32)x && regs.edx == (u32)(x >> 32),
          "L2 XGETBV (no exit) reads L1's XCR0|%s L2 read 0x%x:%x", run_str(), regs.edx, regs.eax);
}

/* ---- (2) YMM, ZMM/opmask and PKRU survive many exits (and migration) --------------- */
/* L2 loads its registers once, then stores them and executes CPUID (an exit
 * to L1) LOOPS times. At every exit L1 checks that it sees L2's values in
 * its own registers and that L2 stored the values L1 left at the previous
 * exit, then sets new values of its own: each exit and entry, and (hv2) each
 * vCPU migration in between, must keep them. */
static void vector_loop(const char *name, u32 bytes, void (*get)(void *), void (*set)(const void *), const char *start,
                        const char *done) {
    if (!l2_setup_ex(0, 0, 0, 0, name)) return;
    fill(pattern_in, bytes, 0x31);
    memset(pattern_out, 0, sizeof pattern_out);
    static u8 expect[576] ALIGNED(64);
    memcpy(expect, pattern_in, bytes);
    regs.ebp = ADDR(pattern_in);
    regs.esi = ADDR(pattern_out);
    regs.edi = LOOPS;
    memcpy(&regs.ebx, pattern_in, 4); /* l2x_pkru_loop: the first PKRU */
    l2_run(ADDR(start));
    u32 n = 0, seen_bad = 0, stored_bad = 0;
    while (exit_is(EXIT_CPUID) && n < 2 * LOOPS) {
        n++;
        get(l1_regs);
        if (memcmp(l1_regs, expect, bytes) != 0) seen_bad++;
        if (memcmp(pattern_out, expect, bytes) != 0) stored_bad++;
        fill(expect, bytes, 0x40 + n);
        set(expect);
        l2_resume_after_insn();
    }
    check(n == LOOPS && seen_bad == 0 && stored_bad == 0 && vmcall_at(done, 0) && memcmp(pattern_out, expect, bytes) == 0,
          "%s, %u exits: L1 sees L2's values after each exit, L2 sees L1's after each entry|"
          "%s; wrong for L1 %u, for L2 %u", name, n, run_str(), seen_bad, stored_bad);
}

static void pkru_get(void *out) { *(u32 *)out = rdpkru(); }
static void pkru_set(const void *in) { wrpkru(*(const u32 *)in); }

static void vector_cases(void) {
    if (has_avx) {
        vector_loop("YMM0-7 (AVX)", 256, xs_ymm_get, xs_ymm_set, l2x_ymm_loop, l2x_ymm_done);
    } else {
        skip("no AVX", "YMM0-7 (AVX) across exits to L1 and entries to L2");
    }
    if (has_avx512) {
        vector_loop("ZMM0-7 and K1-K7 (AVX-512)", 568, xs_zmm_get, xs_zmm_set, l2x_zmm_loop, l2x_zmm_done);
    } else {
        skip("no AVX-512", "ZMM0-7 and K1-K7 (AVX-512) across exits to L1 and entries to L2");
    }
    if (has_pku) {
        /* L2's CR4 has PKE (l2_setup takes L1's CR4, which has it here). */
        vector_loop("PKRU", 4, pkru_get, pkru_set, l2x_pkru_loop, l2x_pkru_loop_done);
        wrpkru(0);
    } else {
        skip("no PKU", "PKRU across exits to L1 and entries to L2");
    }
}

/* ---- (3) protection keys enforced for L2 in IA-32e mode -------------------------- */
static u64 pk_pml4[512] ALIGNED(4096), pk_pdpt[512] ALIGNED(4096), pk_pd[512] ALIGNED(4096), pk_pt[512] ALIGNED(4096);
static u8 pk_page[4096] ALIGNED(4096);

/* L2's own 4-level tables: the first 32 MiB one to one with 2-MByte user
 * pages of key 0 (CPL-3 code of L2 runs there), except that pk_page is a
 * 4-KByte user page with key PK_KEY (bits 62:59 of the PTE, SDM Vol. 3A
 * 4.5.5). */
static void pk_tables(void) {
    memset(pk_pml4, 0, sizeof pk_pml4);
    memset(pk_pdpt, 0, sizeof pk_pdpt);
    memset(pk_pd, 0, sizeof pk_pd);
    pk_pml4[0] = PA(pk_pdpt) | 7;
    pk_pdpt[0] = PA(pk_pd) | 7;
    for (u32 i = 0; i < 16; i++) pk_pd[i] = ((u64)i << 21) | 0x87;
    u32 big = PA(pk_page) >> 21;
    for (u32 i = 0; i < 512; i++) pk_pt[i] = (((u64)big << 21) + ((u64)i << 12)) | 7;
    pk_pt[(PA(pk_page) >> 12) & 511] = PA(pk_page) | 7 | ((u64)PK_KEY << 59);
    pk_pd[big] = PA(pk_pt) | 7;
}

static u8 pk_msr_bitmap[4096] ALIGNED(4096); /* zero: L2's RDMSR/WRMSR of EFER do not exit */

#define PK_WRITE 1u
#define PK_USER 2u
#define PK_NO_WRPKRU 4u
#define PK_CACHED 8u

/* One L2 run from paging off at CPL 0 (the last run may have left L2 in
 * IA-32e mode at CPL 3): enables IA-32e mode, PKRU = pkru, then reads or
 * writes pk_page, at CPL 3 with PK_USER. */
static void pk_run(u32 pkru, u32 how, bool pke) {
    vw(F_GUEST_CR0, read_cr0() & ~(CR0_PG | CR0_WP));
    vw(F_GUEST_CR3, PA(pk_pml4));
    vw(F_GUEST_CR4, (read_cr4() | CR4_PAE | (pke ? CR4_PKE : 0)) & ~(pke ? 0 : CR4_PKE));
    vw(F_ENTRY_CTLS, vmcs_ctl_entry & ~ENTRY_IA32E_MODE_GUEST);
    vw(F_GUEST_RFLAGS, 2);
    vw(F_GUEST_CS_SEL, SEL_KCODE);
    vw(F_GUEST_CS_AR, AR_CODE32);
    static const u32 dsegs[] = { F_GUEST_ES_SEL, F_GUEST_SS_SEL, F_GUEST_DS_SEL };
    for (int i = 0; i < 3; i++) {
        u32 idx = dsegs[i] - F_GUEST_ES_SEL;
        vw(dsegs[i], SEL_KDATA);
        vw(F_GUEST_ES_BASE + idx, 0);
        vw(F_GUEST_ES_LIMIT + idx, 0xFFFFFFFF);
        vw(F_GUEST_ES_AR + idx, AR_DATA32);
    }
    regs.esi = pkru;
    regs.edi = how;
    regs.ebx = PA(pk_page) + 0x40;
    regs.ebp = 0xBEEF0000 | pkru >> 16;
    regs.eax = 0;
    l2_run(ADDR(l2x_pk));
}

static bool pf_is(u32 err, u32 rip) {
    return exit_is(EXIT_EXCEPTION) && (ex.intr & 0x800007FF) == (INTR_VALID | INTR_TYPE_HW_EXCEPTION | 14) &&
           (ex.intr & (1u << 11)) && ex.intr_err == err && ex.qual == PA(pk_page) + 0x40 && ex.rip == rip;
}

/* PKRU.AD is checked here from CPL 3 only: Bochs 2.7 applies AD to user-mode
 * accesses alone, while the SDM (Vol. 3A 4.6.1) applies it to supervisor
 * reads of user-mode addresses too; under a hypervisor on Bochs the processor
 * is still Bochs, so no L0 could make such a case pass. */
static void pk_cases(void) {
    const char *name = "protection keys in L2 (IA-32e mode entered by L2 itself)";
    if (!ept_offered() || !(allowed1(cap.proc2) & (1u << 7))) {
        skip("no EPT or unrestricted guest for L1", "%s", name);
        return;
    }
    if (!l2_setup_ex(0, PROC_USE_MSR_BITMAPS, PROC2_EPT | (1u << 7), 0, name)) return;
    ept_build();
    vw64(F_EPT_POINTER, PA(ept_pml4) | (3 << 3) | 6);
    vw64(F_MSR_BITMAP, PA(pk_msr_bitmap));
    vw(F_EXCEPTION_BITMAP, (1u << 6) | (1u << 13) | (1u << 14));
    pk_tables();
    volatile u32 *word = (volatile u32 *)(pk_page + 0x40);
    *word = 0x600DDA7A;
    diag("%s", name);

    pk_run(0, 0, true);
    u32 entry12 = vr(F_ENTRY_CTLS);
    check(vmcall_at(l2x_pk_read_done, 0) && regs.eax == 0x600DDA7A && (entry12 & ENTRY_IA32E_MODE_GUEST),
          "L2 enables IA-32e mode (4-level paging, PKRU 0) and reads the page of key 5; exit stores IA-32e mode guest = 1|"
          "%s eax 0x%x entry controls 0x%x", run_str(), regs.eax, entry12);
    u32 ad = 1u << (2 * PK_KEY), wd = 2u << (2 * PK_KEY);
    pk_run(ad, PK_USER, true);
    check(pf_is(PF_P | PF_U | PF_PK, ADDR(l2x_pk_read)),
          "PKRU.AD5 = 1: L2's CPL-3 read of a key-5 page -> #PF, error code 25H (P, U, PK), address in the qualification|%s err 0x%x",
          run_str(), ex.intr_err);
    pk_run(ad, PK_USER | PK_CACHED, true);
    check(pf_is(PF_P | PF_U | PF_PK, ADDR(l2x_pk_read)),
          "PKRU.AD5 set after a read cached the page's translation (and an exit L0 handles): the CPL-3 read -> #PF 25H|%s err 0x%x",
          run_str(), ex.intr_err);
    pk_run(ad, PK_USER | PK_WRITE, true);
    check(pf_is(PF_P | PF_W | PF_U | PF_PK, ADDR(l2x_pk_write)) && *word == 0x600DDA7A,
          "PKRU.AD5 = 1: L2's CPL-3 write -> #PF, error code 27H (P, W, U, PK), nothing written|%s err 0x%x word 0x%x", run_str(),
          ex.intr_err, *word);
    pk_run(wd, PK_USER, true);
    check(vmcall_at(l2x_pk_read_done, 0) && regs.eax == 0x600DDA7A, "PKRU.WD5 = 1: L2's CPL-3 read succeeds|%s eax 0x%x",
          run_str(), regs.eax);
    pk_run(wd, PK_USER | PK_WRITE, true);
    check(pf_is(PF_P | PF_W | PF_U | PF_PK, ADDR(l2x_pk_write)) && *word == 0x600DDA7A,
          "PKRU.WD5 = 1: L2's CPL-3 write -> #PF, error code 27H, nothing written|%s err 0x%x word 0x%x", run_str(),
          ex.intr_err, *word);
    pk_run(wd, PK_WRITE, true);
    check(pf_is(PF_P | PF_W | PF_PK, ADDR(l2x_pk_write)) && *word == 0x600DDA7A,
          "PKRU.WD5 = 1, CR0.WP = 1: L2's supervisor write -> #PF, error code 23H (P, W, PK), nothing written|%s err 0x%x word 0x%x",
          run_str(), ex.intr_err, *word);
    u32 others = 0xFFFFFFFF & ~(3u << (2 * PK_KEY)) & ~3u; /* keys 1-4, 6-15 */
    pk_run(others, PK_USER | PK_WRITE, true);
    check(vmcall_at(l2x_pk_write_done, 0) && *word == (0xBEEF0000 | others >> 16),
          "AD and WD for every key but 0 and 5: L2's CPL-3 write to the key-5 page succeeds|%s word 0x%x", run_str(), *word);
    /* CR4.PKE = 0 in L2: PKRU (L1's, AD5) does not apply. */
    *word = 0x600DDA7A;
    wrpkru(ad);
    pk_run(0, PK_USER | PK_NO_WRPKRU, false);
    check(vmcall_at(l2x_pk_read_done, 0) && regs.eax == 0x600DDA7A,
          "CR4.PKE = 0 in L2 with PKRU.AD5 = 1: its CPL-3 read of the key-5 page succeeds|%s eax 0x%x", run_str(), regs.eax);
    wrpkru(0);
}
void test_xstate(void) {
    struct cpuid c1 = cpuid(1, 0), c7 = cpuid(7, 0);
    has_xsave = (c1.ecx >> 26) & 1;
    has_pku = (c7.ecx >> 3) & 1;
    if (!need_root("extended state and protection keys")) return;
    cr4_l1_before = read_cr4();
    if (has_xsave) {
        struct cpuid d = cpuid(0xD, 0);
        xcr0_supported = ((u64)d.edx << 32) | d.eax;
        u32 o = try_write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE);
        check(o == NO_EXC, "L1 sets CR4.OSFXSR, OSXMMEXCPT, OSXSAVE|vector %d", (i32)o);
        xcr0_l1_before = xgetbv0();
        struct cpuid c1b = cpuid(1, 0);
        check(c1b.ecx & (1u << 27), "CPUID.1:ECX.OSXSAVE = 1 with CR4.OSXSAVE = 1|ECX 0x%x", c1b.ecx);
        has_avx = ((c1.ecx >> 28) & 1) && (xcr0_supported & 7) == 7;
        has_avx512 = has_avx && ((c7.ebx >> 16) & 1) && (xcr0_supported & 0xE0) == 0xE0;
        u64 want = 3 | (has_avx ? 4 : 0) | (has_avx512 ? 0xE0 : 0);
        o = try_xsetbv(0, want);
        u64 now = xgetbv0();
        check(o == NO_EXC && now == want, "L1 XSETBV XCR0 = %llx (x87, SSE%s)|vector %d, XCR0 0x%llx", want,
              has_avx512 ? ", AVX, AVX-512" : has_avx ? ", AVX" : "", (i32)o, now);
        if (o != NO_EXC) has_avx = has_avx512 = false;
        struct cpuid dd = cpuid(0xD, 0);
        /* The size of the standard format for XCR0 = want: the end of the
         * highest enabled component (SDM Vol. 1 13.4.3), 576 at least. */
        u32 want_size = 576;
        for (u32 i = 2; i < 32; i++) {
            if (!(want >> i & 1)) continue;
            struct cpuid ci = cpuid(0xD, i);
            if (ci.eax + ci.ebx > want_size) want_size = ci.eax + ci.ebx;
        }
        check(dd.ebx == want_size, "CPUID.(EAX=0DH,ECX=0):EBX = XSAVE size for XCR0 %llx = %u|EBX %u", want, want_size,
              dd.ebx);
    } else {
        skip("no XSAVE", "XCR0 and vector registers in L2");
    }
    cr4_feature_cases();
    if (has_pku) {
        pkru_cases();
        cr4_owned_cases();
    } else {
        skip("no PKU (CPUID.7:ECX[3])", "PKRU and CR4.PKE in L2");
    }
    if (has_xsave) {
        xcr0_cases();
        vector_cases();
    }
    if (has_pku) {
        pk_cases();
        /* CR4.PKE cleared: CPUID.7:ECX.OSPKE follows. */
        write_cr4(read_cr4() & ~CR4_PKE);
        struct cpuid c = cpuid(7, 0);
        check(!(c.ecx & (1u << 4)), "CPUID.7:ECX.OSPKE = 0 once CR4.PKE is cleared|ECX 0x%x", c.ecx);
    }
    if (has_xsave) try_xsetbv(0, xcr0_l1_before);
    write_cr4(cr4_l1_before);
}
