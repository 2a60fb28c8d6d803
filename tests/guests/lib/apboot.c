/* Starting an application processor (SDM Vol. 3A 9.4 "Multiple-Processor
 * (MP) Initialization": INIT, then a start-up IPI whose vector names the
 * 4-KiB page below 1 MiB where the AP starts in real mode at CS = vector << 8,
 * IP 0). apboot_prepare() copies a real-mode trampoline to such a page; the
 * trampoline loads the GDT the caller runs with (its base may be above 1 MiB:
 * o32 LGDT), enters protected mode with paging off and flat segments
 * (SEL_KCODE, SEL_KDATA) and calls the function given, on apboot_stack, with
 * interrupts off. It leaves the CS it started with in the page (apboot_cs).
 * Physical addresses are the caller's linear ones (guests identity-map what
 * they use). */
#include "guest.h"

extern const u8 apboot_start[], apboot_end[], apboot_cs_at[], apboot_gdtr[];
void (*volatile apboot_fn)(void);
u8 apboot_stack[16384] ALIGNED(16);
__asm__(".section .rodata\n"
        ".globl apboot_start, apboot_end, apboot_cs_at, apboot_gdtr\n"
        "apboot_start:\n"
        ".code16\n"
        "cli\n"
        "movw %cs, %ax\n"
        "movw %ax, %ds\n"
        "movw %ax, (apboot_cs_at - apboot_start)\n"
        "lgdtl (apboot_gdtr - apboot_start)\n"
        "movl %cr0, %eax\n"
        "andl $0x9fffffff, %eax\n" /* CD, NW clear (INIT leaves them set) */
        "orl $1, %eax\n"
        "movl %eax, %cr0\n"
        "ljmpl $0x08, $apboot_entry32\n"
        ".p2align 2\n"
        "apboot_cs_at: .word 0\n"
        "apboot_gdtr: .word 0\n .long 0\n"
        ".code32\n"
        "apboot_end:\n"
        ".text\n"
        "apboot_entry32:\n"
        "movw $0x10, %ax\n"
        "movw %ax, %ds\n"
        "movw %ax, %es\n"
        "movw %ax, %fs\n"
        "movw %ax, %gs\n"
        "movw %ax, %ss\n"
        "movl $apboot_stack + 16384, %esp\n"
        "call *apboot_fn\n"
        "1: cli\n hlt\n jmp 1b\n");

struct __attribute__((packed)) apboot_dtr { u16 limit; u32 base; };

u32 apboot_prepare(u32 page, void (*fn)(void)) {
    /* The start-up page must not hold what the loader left (boot info). */
    if (boot.lowest < page + 4096 && boot.highest > page) fail_stop("boot info overlaps the start-up page");
    struct apboot_dtr g;
    __asm__ volatile("sgdt %0" : "=m"(g));
    memcpy((void *)(uintptr_t)page, apboot_start, (size_t)(apboot_end - apboot_start));
    memcpy((void *)(uintptr_t)(page + (u32)(apboot_gdtr - apboot_start)), &g, sizeof g);
    apboot_fn = fn;
    return page >> 12;
}

/* An IPI through the xAPIC's ICR (11.6.1): destination in ICR high first,
 * the write of ICR low sends; waits for the delivery status to go idle. */
void apic_ipi(u32 dest, u32 lo) {
    for (u32 i = 0; i < 100000 && (apic_read(APIC_ICR_LO) & (1u << 12)); i++) __asm__ volatile("pause");
    apic_write(APIC_ICR_HI, dest << 24);
    apic_write(APIC_ICR_LO, lo);
    for (u32 i = 0; i < 100000 && (apic_read(APIC_ICR_LO) & (1u << 12)); i++) __asm__ volatile("pause");
}

u16 apboot_cs(u32 page) { return *(volatile u16 *)(uintptr_t)(page + (u32)(apboot_cs_at - apboot_start)); }

bool apboot_start_ap(u32 apic_id, u32 page, void (*fn)(void), volatile u32 *started) {
    u32 vector = apboot_prepare(page, fn);
    u32 was = *started;
    apic_ipi(apic_id, (5u << 8) | (1u << 14)); /* INIT, level assert */
    apic_ipi(apic_id, (5u << 8) | (1u << 15)); /* INIT level de-assert */
    for (u32 tries = 0; tries < 2 && *started == was; tries++) {
        apic_ipi(apic_id, (6u << 8) | vector); /* start-up */
        for (u32 i = 0; i < 2000000 && *started == was; i++) __asm__ volatile("pause" ::: "memory");
    }
    return *started != was;
}
