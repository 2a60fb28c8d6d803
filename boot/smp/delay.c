/* Delays for the start-up protocol (10 ms after INIT, 200 us after SIPI),
 * counted with the TSC. Its rate, in order of preference:
 *  1. measured against the 8254 PIT (channel 2, gated through port 0x61,
 *     mode 0: OUT rises at terminal count) over 5 ms. This is what runs on
 *     Bochs, where with `clock: sync=none` the TSC counts instructions and
 *     the PIT follows the emulated time (ips), so the two agree, while the
 *     frequency CPUID reports does not;
 *  2. CPUID 0x15 (TSC/crystal ratio times the crystal frequency) or 0x16
 *     (base frequency in MHz), where the PIT does not answer (hardware
 *     without a legacy PIT);
 *  3. a guess of 5 GHz: too high a rate only lengthens the waits. */
#include "smp.h"

#define PIT_HZ 1193182ull
#define CAL_COUNT 5966u         /* 5 ms of PIT ticks */
#define GUESS_HZ 5000000000ull

static u64 tsc_hz;

static u64 pit_measure(void) {
    u8 p61 = inb(0x61);
    outb(0x61, (p61 & ~0x02) | 0x01);   /* speaker off, channel 2 gate on */
    outb(0x43, 0xb0);                   /* channel 2, lobyte/hibyte, mode 0, binary */
    outb(0x42, CAL_COUNT & 0xff);
    outb(0x42, CAL_COUNT >> 8);
    u64 t0 = rdtsc();
    bool early = (inb(0x61) & 0x20) != 0; /* OUT already high: no PIT here */
    u32 polls = 0;
    while (!early && !(inb(0x61) & 0x20) && ++polls < 2000000)
        ;
    u64 t1 = rdtsc();
    outb(0x61, p61);
    if (early || polls >= 2000000 || t1 - t0 < 1000) return 0;
    return (t1 - t0) * PIT_HZ / CAL_COUNT;
}

static u64 cpuid_hz(void) {
    u32 r[4];
    cpuid(0, 0, r);
    u32 max = r[0];
    if (max >= 0x15) {
        cpuid(0x15, 0, r);
        if (r[0] && r[1] && r[2]) return (u64)r[2] * r[1] / r[0];
    }
    if (max >= 0x16) {
        cpuid(0x16, 0, r);
        if (r[0] & 0xffff) return (u64)(r[0] & 0xffff) * 1000000;
    }
    return 0;
}

const char *smp_delay_init(void) {
    const char *how = "PIT";
    tsc_hz = pit_measure();
    if (!tsc_hz) {
        how = "CPUID";
        tsc_hz = cpuid_hz();
    }
    if (!tsc_hz) {
        how = "guessed";
        tsc_hz = GUESS_HZ;
    }
    return how;
}

u64 smp_tsc_khz(void) { return tsc_hz / 1000; }

u64 smp_tsc_after_us(u64 us) {
    return rdtsc() + us * (tsc_hz / 1000) / 1000 + 1;
}

void smp_delay_us(u64 us) {
    u64 end = smp_tsc_after_us(us);
    while ((i64)(rdtsc() - end) < 0) __asm__ volatile("pause");
}
