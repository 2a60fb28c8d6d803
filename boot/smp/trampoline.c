/* The start-up trampoline (SDM Vol. 3A 8.4.4.1, 9.9 "Mode switching",
 * 9.8.5 "Initializing IA-32e mode"). A STARTUP IPI with vector VV starts a
 * waiting application processor in real mode at VV00:0000, so the code is
 * copied to a page below 1 MiB (bringup.c takes one from the boot map),
 * followed by a page holding a copy of the boot processor's PML4: in 32-bit
 * mode CR3 holds only 32 bits, and the hypervisor's own PML4 may lie above
 * 4 GiB (UEFI). Its entries point at the same PDPT, so the copy maps what
 * the real one does.
 *
 *   16-bit: DS = CS, EBX = linear base, LGDT (flat 32-bit code/data and a
 *           64-bit code segment), CR0.PE, far jump to 32-bit code;
 *   32-bit: CR4.PAE (+ OSFXSR, OSXMMEXCPT: the C code uses SSE), CR3 = the
 *           PML4 copy, EFER = the boot processor's with LME, CR0.PG (and
 *           CD/NW off: after INIT the caches are disabled), far jump to
 *   64-bit: CR3 = the real page tables; take a slot n with LOCK XADD on
 *           the data block's counter (the SDM's COUNT); n < max: RDI =
 *           blocks + n * SMP_AP_BLOCK, RSP = the end of that block (its
 *           idle stack), call smp_ap_entry(RDI) (bringup.c); otherwise
 *           park in cli; hlt.
 * One slot (max 1) when bringup.c starts processors one at a time from the
 * MADT; max = all blocks after a broadcast start-up.
 *
 * The code is position-independent apart from the far-jump targets and the
 * GDT base, which smp_tramp_install writes into the data block (at offset
 * 8, right after the first jump) together with everything else the
 * processor needs; smp_tramp_arm sets the blocks and resets the counter
 * before each STARTUP IPI. */
#include "smp.h"

/* Offsets from the start of the trampoline (the asm below uses them). */
#define TD_GDTR   8
#define TD_FAR32  16
#define TD_FAR64  24
#define TD_CR3LO  32
#define TD_EFER   36
#define TD_CR3    40
#define TD_COUNT  48
#define TD_MAX    52
#define TD_ENTRY  56
#define TD_BLOCKS 64
#define TD_GDT    72
#define TD_END    104

struct __attribute__((packed)) tramp_data {
    u16 gdt_limit;
    u32 gdt_base;
    u16 pad0;
    u32 far32_off;
    u16 far32_sel;
    u16 pad1;
    u32 far64_off;
    u16 far64_sel;
    u16 pad2;
    u32 cr3_low;
    u32 efer;
    u64 cr3;
    u32 count, max;
    u64 entry, blocks;
    u64 gdt[4];
};
#define OFF(f) (TD_GDTR + __builtin_offsetof(struct tramp_data, f))
_Static_assert(OFF(far32_off) == TD_FAR32 && OFF(far64_off) == TD_FAR64, "tramp_data");
_Static_assert(OFF(cr3_low) == TD_CR3LO && OFF(efer) == TD_EFER && OFF(cr3) == TD_CR3, "tramp_data");
_Static_assert(OFF(count) == TD_COUNT && OFF(max) == TD_MAX, "tramp_data");
_Static_assert(OFF(entry) == TD_ENTRY && OFF(blocks) == TD_BLOCKS, "tramp_data");
_Static_assert(OFF(gdt) == TD_GDT && TD_GDTR + sizeof(struct tramp_data) == TD_END, "tramp_data");

#define STR_(x) #x
#define STR(x) STR_(x)

__asm__(
    "    .text\n"
    "    .balign 16\n"
    "    .globl smp_tramp_start, smp_tramp_data, smp_tramp32, smp_tramp64, smp_tramp_end\n"
    "smp_tramp_start:\n"
    "    .code16\n"
    "    jmp 1f\n"
    "    .balign 8, 0\n"
    "smp_tramp_data:\n"
    "    .skip " STR(TD_END) " - 8, 0\n"
    "1:  cli\n"
    "    cld\n"
    "    movw %cs, %ax\n"
    "    movw %ax, %ds\n"
    "    movzwl %ax, %ebx\n"
    "    shll $4, %ebx\n"
    "    lgdtl " STR(TD_GDTR) "\n"
    "    movl %cr0, %eax\n"
    "    orl $1, %eax\n"
    "    movl %eax, %cr0\n"
    "    ljmpl *" STR(TD_FAR32) "\n"
    "    .code32\n"
    "smp_tramp32:\n"
    "    movw $0x10, %ax\n"
    "    movw %ax, %ds\n"
    "    movw %ax, %es\n"
    "    movw %ax, %ss\n"
    "    movl %cr4, %eax\n"
    "    orl $0x620, %eax\n"                 /* PAE, OSFXSR, OSXMMEXCPT */
    "    movl %eax, %cr4\n"
    "    movl " STR(TD_CR3LO) "(%ebx), %eax\n"
    "    movl %eax, %cr3\n"
    "    movl $0xc0000080, %ecx\n"          /* IA32_EFER */
    "    movl " STR(TD_EFER) "(%ebx), %eax\n"
    "    xorl %edx, %edx\n"
    "    wrmsr\n"
    "    movl %cr0, %eax\n"
    "    andl $0x9ffffffb, %eax\n"           /* CD, NW, EM off */
    "    orl $0x80000023, %eax\n"            /* PG, NE, MP, PE */
    "    movl %eax, %cr0\n"
    "    ljmpl *" STR(TD_FAR64) "(%ebx)\n"
    "    .code64\n"
    "smp_tramp64:\n"
    "    movl %ebx, %ebx\n"                  /* bits 63:32 are undefined after the switch */
    "    movq " STR(TD_CR3) "(%rbx), %rax\n"
    "    movq %rax, %cr3\n"
    "    movl $1, %eax\n"                   /* take a slot */
    "    lock xaddl %eax, " STR(TD_COUNT) "(%rbx)\n"
    "    cmpl " STR(TD_MAX) "(%rbx), %eax\n"
    "    jae 2f\n"                          /* none left: park */
    "    imulq $" STR(SMP_AP_BLOCK) ", %rax, %rdi\n"
    "    addq " STR(TD_BLOCKS) "(%rbx), %rdi\n"
    "    leaq " STR(SMP_AP_BLOCK) "(%rdi), %rsp\n" /* its idle stack */
    "    movq " STR(TD_ENTRY) "(%rbx), %rax\n"
    "    xorl %ebp, %ebp\n"
    "    callq *%rax\n"
    "2:  cli\n"
    "    hlt\n"
    "    jmp 2b\n"
    "smp_tramp_end:\n");

extern const u8 smp_tramp_start[], smp_tramp_data[], smp_tramp32[], smp_tramp64[], smp_tramp_end[];
__attribute__((sysv_abi, noreturn)) void smp_ap_entry(struct smp_cpu *c); /* bringup.c */

void smp_tramp_install(u64 page) {
    u64 size = (u64)(smp_tramp_end - smp_tramp_start);
    if (smp_tramp_data - smp_tramp_start != TD_GDTR || size > 0x1000) {
        hv_puts("hv: smp: trampoline layout is wrong\n");
        hv_exit(HV_STATUS_BOOT);
    }
    memcpy((void *)page, smp_tramp_start, size);
    struct tramp_data *d = (struct tramp_data *)(page + TD_GDTR);
    d->gdt[0] = 0;
    d->gdt[1] = 0x00cf9a000000ffffull; /* 0x08: 32-bit code, flat */
    d->gdt[2] = 0x00cf92000000ffffull; /* 0x10: data, flat */
    d->gdt[3] = 0x00af9a000000ffffull; /* 0x18: 64-bit code */
    d->gdt_limit = sizeof d->gdt - 1;
    d->gdt_base = (u32)(page + TD_GDT);
    d->far32_off = (u32)(page + (u64)(smp_tramp32 - smp_tramp_start));
    d->far32_sel = 0x08;
    d->far64_off = (u32)(page + (u64)(smp_tramp64 - smp_tramp_start));
    d->far64_sel = 0x18;

    u64 cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    memcpy((void *)(page + 0x1000), (const void *)(cr3 & ~0xfffull), 0x1000);
    d->cr3_low = (u32)(page + 0x1000);
    d->cr3 = cr3;
    d->efer = (u32)rdmsr(0xc0000080) & ~(1u << 10); /* as ours, LMA is read-only */
    d->entry = (u64)smp_ap_entry;
}

void smp_tramp_arm(u64 page, u64 blocks, u32 max) {
    struct tramp_data *d = (struct tramp_data *)(page + TD_GDTR);
    d->blocks = blocks;
    d->max = max;
    __atomic_store_n((u32 *)(page + TD_COUNT), 0, __ATOMIC_RELEASE); /* 4-byte aligned */
}

u32 smp_tramp_taken(u64 page) {
    return __atomic_load_n((u32 *)(page + TD_COUNT), __ATOMIC_ACQUIRE);
}
