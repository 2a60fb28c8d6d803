/* snapfuzz.elf: a fuzzing-style L1 hypervisor for guest-requested snapshots
 * (issue 10 item 7 and "What it must show"). Built on the test L1's VMX
 * library (l1/setup.c, vmx.c, run.asm).
 *
 * Set-up: VMXON, a vmcs12 for L2 with L1's EPT (and a VPID when offered),
 * known values in every VMCS field this processor has, L2 run once (so the
 * vmcs12 is launched and its exit-information fields are filled), patterns in
 * three memory regions: L1 pages that L2 reaches through L1's identity EPT,
 * L2's own pages (L1 memory that L1's EPT maps only at L2-physical 32 MiB),
 * and an L1 page only L1 writes. What is then recorded as "the reference":
 * every VMCS field (VMREAD), L1's CR0/2/3/4, DR0-3/6/7, GDTR/IDTR, FS/GS,
 * XMM0-7, x87 FCW, MXCSR, the MSRs the snapshot must cover (SYSENTER, PAT,
 * EFER, STAR/LSTAR/CSTAR/FMASK, FS/GS/KERNEL_GS base, TSC_AUX, DEBUGCTL,
 * MTRRs) and local APIC registers, each one only if this machine lets it hold
 * another value and back.
 *
 * Then the snapshot (docs/guest-interface.md "Snapshots": VMCALL RAX =
 * HC_SNAPSHOT_TAKE, RBX = 0): RAX = 0, the snapshot is taken; RAX =
 * HC_SNAPSHOT_RESTORED, RBX = n: execution came back through the n-th
 * restore. Each cycle n: L2 scribbles (xorshift seeded per cycle) over its
 * pages and L1's, ends with random registers and a VMCALL or CPUID exit; L1
 * VMWRITEs random values into a random quarter of the writable VMCS fields,
 * sometimes makes another VMCS current, VMCLEARs its vmcs12 or leaves VMX
 * operation (VMXOFF), and changes all its registers, MSRs and APIC registers
 * above; every change is read back (a scribble that did not take would let a
 * restore that does nothing pass). Then it asks for the restore (VMCALL RAX =
 * HC_SNAPSHOT_RESTORE with the other GPRs, ESP, DS/ES/SS and EFLAGS also
 * scrambled) and, back at the snapshot point, checks that everything is as
 * recorded: memory, VMCS pointer and fields, registers, MSRs, APIC, GPRs and
 * EFLAGS of the take; the next cycle's VMRESUME checks the launch state. A
 * mismatch ends the run at once (`not ok`, RESULT: FAIL): what a check found
 * after a restore cannot survive the next restore.
 *
 * L2 asks too ("any level may ask": L2's VMCALL always exits to L1, SDM Vol.
 * 3C 26.1.2, and L1 makes the same call from its exit handler, so the
 * snapshot point is in that handler, L2's state in vmcs12): with take=l2, L2
 * asks for the snapshot; L1 hands L2 the result (RAX, RBX, RIP past the
 * VMCALL) and L2 reports back with a second VMCALL, its other registers
 * intact. With restore=mixed, every other restore (chosen per cycle) is asked
 * by L2, running from a second VMCS since vmcs12's fields are scribbled.
 *
 * Command line: cycles=N (default 1000), take=l1|l2, restore=l1|mixed;
 * selftest: instead of the hypercalls, L1 puts everything back itself
 * (software restore; L2's requests still travel to L1): checks the scribbling
 * and the checks; the default where our hypervisor is absent (the snapshot
 * hypercall line is then a SKIP). console=vmcall, verbose.
 *
 * Output: `# cycle N/M` every 100 cycles, `ok`/`not ok` lines, RESULT line;
 * ends like l1.elf (l1_end). Unavailable hypercall (RAX = 2, HC_UNKNOWN):
 * `not ok N - snapshot hypercall unavailable`, RESULT: FAIL. */
#include "guest.h"
#include "l1/vmx.h"
#include "l1/l1.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- memory the cycles scribble on ------------------------------------------------- */
#define SF_PAGES 2
#define SF_BYTES 8192       /* SF_PAGES pages: a power of two (L2 masks its offsets) */
#define SF_L2_WIN 0x2000000 /* L2-physical = L2-linear address of L2's own pages */
#define SF_WRITES 48        /* L2's random writes per region and cycle */
u8 sf_l1_area[SF_BYTES] ALIGNED(4096);
u8 sf_l2_area[SF_BYTES] ALIGNED(4096);
static u8 sf_own_area[4096] ALIGNED(4096);
static u64 sf_win_pt[512] ALIGNED(4096); /* L1's EPT for L2-physical [32 MiB, 34 MiB) */

struct region { const char *name; u32 *p; u32 words; u32 salt; };
static const struct region regions[] = {
    { "L1 memory L2 writes", (u32 *)sf_l1_area, SF_BYTES / 4, 0x11 },
    { "L2 memory (L1 pages at L2-physical 32 MiB)", (u32 *)sf_l2_area, SF_BYTES / 4, 0x22 },
    { "L1 memory L1 writes", (u32 *)sf_own_area, 1024, 0x33 },
};
#define NREG (sizeof regions / sizeof regions[0])

static u32 mix(u32 x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}
/* Cheap (three passes over 20 KiB a cycle) and never the same word twice in a region. */
static u32 pattern(const struct region *r, u32 i) { return (r->salt * 0x01010101u) ^ (i * 0x9E3779B9u); }
static u32 seed_of(u32 c) { return mix(c * 0x9E3779B9u + 0x5F3759DFu) | 1; }
static u32 rng;
static u32 rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void fill(const struct region *r) {
    for (u32 i = 0; i < r->words; i++) r->p[i] = pattern(r, i);
}
/* Words that differ from the pattern (the first in *first), and pages with one. */
static u32 differ(const struct region *r, u32 *first, u32 *pages) {
    u32 n = 0, page_seen = ~0u;
    *pages = 0;
    for (u32 i = 0; i < r->words; i++) {
        if (r->p[i] == pattern(r, i)) continue;
        if (!n++) *first = i;
        if (i / 1024 != page_seen) {
            page_seen = i / 1024;
            ++*pages;
        }
    }
    return n;
}

/* ---- the cycle's verdicts ------------------------------------------------------------ */
static u32 cycles = 1000;
static bool selftest, take_l2, restore_mixed;

/* A failed check ends the run: the next restore would erase what it found. */
#define FAIL(...) (check(false, __VA_ARGS__), l1_end())

/* ---- VMCS fields (SDM Vol. 3D Appendix B): every one this processor has ---------------- */
static const u16 fields[] = {
    0x0000, 0x0800, 0x0802, 0x0804, 0x0806, 0x0808, 0x080A, 0x080C, 0x080E,
    0x0C00, 0x0C02, 0x0C04, 0x0C06, 0x0C08, 0x0C0A, 0x0C0C,
    0x2000, 0x2002, 0x2004, 0x2006, 0x2008, 0x200A, 0x2010, 0x2012, 0x2014, 0x2018, 0x201A, 0x2024, 0x2026, 0x2028,
    0x2400, 0x2800, 0x2802, 0x2804, 0x2806,
    0x2C00, 0x2C02,
    0x4000, 0x4002, 0x4004, 0x4006, 0x4008, 0x400A, 0x400C, 0x400E, 0x4010, 0x4012, 0x4014, 0x4016, 0x4018,
    0x401A, 0x401C, 0x401E,
    0x4400, 0x4402, 0x4404, 0x4406, 0x4408, 0x440A, 0x440C, 0x440E,
    0x4800, 0x4802, 0x4804, 0x4806, 0x4808, 0x480A, 0x480C, 0x480E, 0x4810, 0x4812, 0x4814, 0x4816, 0x4818,
    0x481A, 0x481C, 0x481E, 0x4820, 0x4822, 0x4824, 0x4826, 0x482A, 0x4C00,
    0x6000, 0x6002, 0x6004, 0x6006, 0x6008, 0x600A, 0x600C, 0x600E,
    0x6400, 0x6402, 0x6404, 0x6406, 0x6408, 0x640A,
    0x6800, 0x6802, 0x6804, 0x6806, 0x6808, 0x680A, 0x680C, 0x680E, 0x6810, 0x6812, 0x6814, 0x6816, 0x6818,
    0x681A, 0x681C, 0x681E, 0x6820, 0x6822, 0x6824, 0x6826,
    0x6C00, 0x6C02, 0x6C04, 0x6C06, 0x6C08, 0x6C0A, 0x6C0C, 0x6C0E, 0x6C10, 0x6C12, 0x6C14, 0x6C16,
};
#define NF (sizeof fields / sizeof fields[0])
enum { F_ABSENT, F_RO, F_RW };
static u8 f_state[NF];
static u64 f_ref[NF], f_new[NF];
static u32 nf_rw, nf_ro;

/* Encoding bits 14:13 = width (0: 16-bit, 1: 64-bit, 2: 32-bit, 3: natural, 32
 * bits here); bits 11:10 = 1: VM-exit information, read-only (SDM 24.11.2). */
static bool is64(u32 f) { return ((f >> 13) & 3) == 1; }
static u64 fmask(u32 f) { return ((f >> 13) & 3) == 0 ? 0xFFFF : is64(f) ? ~0ull : 0xFFFFFFFFull; }
static bool exit_info(u32 f) { return ((f >> 10) & 3) == 1; }
static u32 fread(u32 f, u64 *v) {
    u32 lo = 0, hi = 0, o = vmread(f, &lo);
    if (o == VM_OK && is64(f)) o = vmread(f | 1, &hi);
    *v = (u64)hi << 32 | lo;
    return o;
}
static u32 fwrite(u32 f, u64 v) {
    u32 o = vmwrite(f, (u32)v);
    if (o == VM_OK && is64(f)) o = vmwrite(f | 1, (u32)(v >> 32));
    return o;
}
/* Whether cycle checks compare field i: software restore cannot put back the
 * exit-information fields without "VMWRITE to any field" (MISC bit 29). */
static bool compared(u32 i) {
    if (f_state[i] == F_ABSENT) return false;
    return !(selftest && f_state[i] == F_RO);
}

/* ---- L1's own state: registers, MSRs, APIC registers -------------------------------- */
enum { K_CR, K_DR, K_DTR, K_SEG, K_MSR, K_APIC, K_FPU };
struct knob { const char *name; u8 kind; u32 id; };
static const struct knob knobs[] = {
    { "FS", K_SEG, 4 }, { "GS", K_SEG, 5 },
    { "SYSENTER_CS", K_MSR, 0x174 }, { "SYSENTER_ESP", K_MSR, 0x175 }, { "SYSENTER_EIP", K_MSR, 0x176 },
    { "DEBUGCTL", K_MSR, 0x1D9 }, { "MTRR_FIX64K_00000", K_MSR, 0x250 }, { "MTRR_FIX4K_C0000", K_MSR, 0x268 },
    { "PAT", K_MSR, 0x277 }, { "MTRR_DEF_TYPE", K_MSR, 0x2FF }, { "EFER", K_MSR, 0xC0000080 },
    { "STAR", K_MSR, 0xC0000081 }, { "LSTAR", K_MSR, 0xC0000082 }, { "CSTAR", K_MSR, 0xC0000083 },
    { "FMASK", K_MSR, 0xC0000084 }, { "FS_BASE", K_MSR, 0xC0000100 }, { "GS_BASE", K_MSR, 0xC0000101 },
    { "KERNEL_GS_BASE", K_MSR, 0xC0000102 }, { "TSC_AUX", K_MSR, 0xC0000103 },
    /* The FXSAVE state before CR0 (whose TS bit would make them #NM): */
    { "XMM0", K_FPU, 0 }, { "XMM1", K_FPU, 1 }, { "XMM2", K_FPU, 2 }, { "XMM3", K_FPU, 3 }, { "XMM4", K_FPU, 4 },
    { "XMM5", K_FPU, 5 }, { "XMM6", K_FPU, 6 }, { "XMM7", K_FPU, 7 }, { "x87 FCW", K_FPU, 8 }, { "MXCSR", K_FPU, 9 },
    { "CR2", K_CR, 2 }, { "DR0", K_DR, 0 }, { "DR1", K_DR, 1 }, { "DR2", K_DR, 2 }, { "DR3", K_DR, 3 },
    { "DR6", K_DR, 6 }, { "DR7", K_DR, 7 }, { "CR0", K_CR, 0 }, { "CR4", K_CR, 4 }, { "CR3", K_CR, 3 },
    { "GDTR", K_DTR, 0 }, { "IDTR", K_DTR, 1 },
    { "APIC TPR", K_APIC, 0x80 }, { "APIC LVT timer", K_APIC, 0x320 }, { "APIC LVT LINT0", K_APIC, 0x350 },
    { "APIC timer divide", K_APIC, 0x3E0 },
};
#define NK (sizeof knobs / sizeof knobs[0])
static bool k_used[NK];
static u64 k_ref[NK], k_new[NK];
static u32 nk_used;

struct __attribute__((packed)) dtr { u16 limit; u32 base; };

static u32 read_dr(u32 n) {
    u32 v = 0;
    switch (n) {
    case 0: __asm__ volatile("mov %%dr0, %0" : "=r"(v)); break;
    case 1: __asm__ volatile("mov %%dr1, %0" : "=r"(v)); break;
    case 2: __asm__ volatile("mov %%dr2, %0" : "=r"(v)); break;
    case 3: __asm__ volatile("mov %%dr3, %0" : "=r"(v)); break;
    case 6: __asm__ volatile("mov %%dr6, %0" : "=r"(v)); break;
    case 7: __asm__ volatile("mov %%dr7, %0" : "=r"(v)); break;
    }
    return v;
}
static void write_dr(u32 n, u32 v) {
    switch (n) {
    case 0: __asm__ volatile("mov %0, %%dr0" ::"r"(v)); break;
    case 1: __asm__ volatile("mov %0, %%dr1" ::"r"(v)); break;
    case 2: __asm__ volatile("mov %0, %%dr2" ::"r"(v)); break;
    case 3: __asm__ volatile("mov %0, %%dr3" ::"r"(v)); break;
    case 6: __asm__ volatile("mov %0, %%dr6" ::"r"(v)); break;
    case 7: __asm__ volatile("mov %0, %%dr7" ::"r"(v)); break;
    }
}

/* XMMn's low quadword (MOVQ: a load clears the high one), x87 FCW, MXCSR. */
#define XMM_CASE(n, insn) case n: __asm__ volatile(insn : : "r"(p) : "memory"); break;
static void fpu_access(u32 id, u64 *p, bool write) {
    if (write) {
        switch (id) {
        XMM_CASE(0, "movq (%0), %%xmm0") XMM_CASE(1, "movq (%0), %%xmm1") XMM_CASE(2, "movq (%0), %%xmm2")
        XMM_CASE(3, "movq (%0), %%xmm3") XMM_CASE(4, "movq (%0), %%xmm4") XMM_CASE(5, "movq (%0), %%xmm5")
        XMM_CASE(6, "movq (%0), %%xmm6") XMM_CASE(7, "movq (%0), %%xmm7")
        XMM_CASE(8, "fldcw (%0)") XMM_CASE(9, "ldmxcsr (%0)")
        }
    } else {
        *p = 0;
        switch (id) {
        XMM_CASE(0, "movq %%xmm0, (%0)") XMM_CASE(1, "movq %%xmm1, (%0)") XMM_CASE(2, "movq %%xmm2, (%0)")
        XMM_CASE(3, "movq %%xmm3, (%0)") XMM_CASE(4, "movq %%xmm4, (%0)") XMM_CASE(5, "movq %%xmm5, (%0)")
        XMM_CASE(6, "movq %%xmm6, (%0)") XMM_CASE(7, "movq %%xmm7, (%0)")
        XMM_CASE(8, "fnstcw (%0)") XMM_CASE(9, "stmxcsr (%0)")
        }
    }
}

static bool sse; /* CPUID FXSR and SSE2: CR4.OSFXSR set, the K_FPU knobs exist */

static bool knob_read(const struct knob *k, u64 *v) {
    struct dtr d;
    u32 s = 0;
    switch (k->kind) {
    case K_CR:
        *v = k->id == 0 ? read_cr0() : k->id == 2 ? read_cr2() : k->id == 3 ? read_cr3() : read_cr4();
        return true;
    case K_DR: *v = read_dr(k->id); return true;
    case K_DTR:
        if (k->id) __asm__ volatile("sidt %0" : "=m"(d));
        else __asm__ volatile("sgdt %0" : "=m"(d));
        *v = (u64)d.limit << 32 | d.base;
        return true;
    case K_SEG:
        if (k->id == 4) __asm__ volatile("mov %%fs, %0" : "=r"(s));
        else __asm__ volatile("mov %%gs, %0" : "=r"(s));
        *v = s & 0xFFFF;
        return true;
    case K_MSR: return try_rdmsr(k->id, v) == NO_EXC;
    case K_APIC: *v = apic_read(k->id); return true;
    case K_FPU:
        if (sse) fpu_access(k->id, v, false);
        return sse;
    }
    return false;
}

static bool knob_write(const struct knob *k, u64 v) {
    struct dtr d = { (u16)(v >> 32), (u32)v };
    switch (k->kind) {
    case K_CR:
        if (k->id == 0) write_cr0((u32)v);
        else if (k->id == 2) __asm__ volatile("mov %0, %%cr2" ::"r"((u32)v));
        else if (k->id == 3) write_cr3((u32)v);
        else return try_write_cr4((u32)v) == NO_EXC;
        return true;
    case K_DR: write_dr(k->id, (u32)v); return true;
    case K_DTR:
        if (k->id) __asm__ volatile("lidt %0" ::"m"(d));
        else __asm__ volatile("lgdt %0" ::"m"(d));
        return true;
    case K_SEG:
        if (k->id == 4) __asm__ volatile("mov %0, %%fs" ::"r"((u32)v));
        else __asm__ volatile("mov %0, %%gs" ::"r"((u32)v));
        return true;
    case K_MSR: return try_wrmsr(k->id, v) == NO_EXC;
    case K_APIC: apic_write(k->id, (u32)v); return true;
    case K_FPU:
        if (sse) fpu_access(k->id, &v, true);
        return sse;
    }
    return false;
}

/* A value for knob k that the architecture accepts and that differs from ref. */
static u64 knob_value(const struct knob *k, u64 ref) {
    static const u8 pat_types[6] = { 0, 1, 4, 5, 6, 7 }, mtrr_types[5] = { 0, 1, 4, 5, 6 };
    static const u16 sels[3] = { SEL_FLAT2, SEL_BASED, SEL_UDATA };
    for (int tries = 0;; tries++) {
        u32 r = rnd(), r2 = rnd();
        u64 v = r;
        switch (k->kind) {
        case K_CR:
            if (k->id == 0) {
                u32 m = (1u << 1) | (1u << 3) | (1u << 16) | (1u << 18); /* MP, TS, WP, AM */
                v = ref ^ ((r & m) ? (r & m) : (1u << 3));
            } else if (k->id == 3) {
                v = ((u32)ref & ~0xFFFu) == ADDR(pd) ? ADDR(pd_alt) : ADDR(pd);
                v |= r & 0x18; /* PWT, PCD */
            } else if (k->id == 4) {
                u32 m = ((1u << 2) | (1u << 3) | (1u << 7) | (1u << 8)) & (u32)cap.cr4f1 & ~(u32)cap.cr4f0;
                v = ref ^ ((r & m) ? (r & m) : (m & -m)); /* TSD, DE, PGE, PCE */
            }
            break;
        case K_DR:
            if (k->id == 6) v = 0xFFFF0FF0u | (r & 0xF);          /* B0-B3 */
            else if (k->id == 7) v = 0x10400u | (r & 0x55550000u); /* R/W, LEN 0/1; no L/G enables */
            break;
        case K_DTR: v = ((u64)((k->id ? 0x807 : 0x87) + (r & 0x7F8)) << 32) | (u32)ref; break;
        case K_SEG: v = sels[r % 3]; break;
        case K_MSR:
            switch (k->id) {
            case 0x174: v = r & 0xFFFF; break;
            case 0x1D9:
            case 0xC0000080: v = ref ^ 1; break; /* LBR; SCE */
            case 0x250:
            case 0x268:
            case 0x277:
                v = 0;
                for (int b = 0; b < 8; b++) {
                    u32 t = k->id == 0x277 ? pat_types[(r >> (4 * b)) % 6] : mtrr_types[(r >> (4 * b)) % 5];
                    v |= (u64)t << (8 * b);
                }
                break;
            case 0x2FF: v = 0x800 | (r & 0x400) | mtrr_types[(r >> 16) % 5]; break;
            case 0xC0000081: v = (u64)r2 << 32 | r; break;
            }
            break;
        case K_FPU:
            if (k->id < 8) v = (u64)r2 << 32 | r;
            else if (k->id == 8) v = (r & 0x0F3F) | 0x40; /* IM-PM masks, precision, rounding; bit 6 reads 1 */
            else v = r & 0xFFBF;                          /* MXCSR without DAZ (not every processor has it) */
            break;
        case K_APIC:
            switch (k->id) {
            case 0x80: v = r & 0xFF; break;
            case 0x320: v = 0x10000 | (r & 0x20000) | (0x20 + (r >> 8) % 0xD0); break;
            case 0x350: v = 0x10000 | (0x20 + (r >> 8) % 0xD0); break;
            case 0x3E0: v = r & 0xB; break;
            }
            break;
        }
        if (v != ref || tries > 8) return v;
    }
}

/* ---- the snapshot point and the restore request (assembly) -------------------------- */
struct sf_regs { u32 eax, ebx, ecx, edx, esi, edi, ebp, esp, eflags, cs, ds, es, ss, esp0, eflags0; };
struct sf_regs sf_r;   /* sf_take: what the registers were after the VMCALL, and before it */
u32 sf_junk[6];        /* sf_restore: ECX, EDX, ESI, EDI, EBP, ESP for the restore request */
u32 sf_saved_esp;
u32 sf_take(void);     /* VMCALL take with known ECX/EDX/ESI/EDI/EBP; returns RAX */
u32 sf_restore(void);  /* VMCALL restore, the other registers scrambled; returns only if it failed */
extern char sf_l2_hello[], sf_l2_scribble[], sf_l2_ask[];
#define K_ECX 0x1C0FFEE1
#define K_EDX 0x2C0FFEE2
#define K_ESI 0x3C0FFEE3
#define K_EDI 0x4C0FFEE4
#define K_EBP 0x5C0FFEE5

__asm__(".text\n"
        ".globl sf_take\n"
        "sf_take:\n"
        "    pushl %ebp\n    pushl %ebx\n    pushl %esi\n    pushl %edi\n"
        "    xorl %ebx, %ebx\n" /* before the EFLAGS image: XOR writes flags */
        "    movl %esp, sf_r+52\n"
        "    pushfl\n    popl sf_r+56\n" /* EFLAGS at the VMCALL (MOV leaves them) */
        "    movl $" STR(K_ECX) ", %ecx\n    movl $" STR(K_EDX) ", %edx\n    movl $" STR(K_ESI) ", %esi\n"
        "    movl $" STR(K_EDI) ", %edi\n    movl $" STR(K_EBP) ", %ebp\n"
        "    movl $" STR(HC_SNAPSHOT_TAKE) ", %eax\n"
        "    vmcall\n"
        /* record before anything changes: ESP first, then the GPRs, EFLAGS, selectors */
        "    movl %esp, sf_r+28\n    movl %eax, sf_r+0\n    movl %ebx, sf_r+4\n    movl %ecx, sf_r+8\n"
        "    movl %edx, sf_r+12\n    movl %esi, sf_r+16\n    movl %edi, sf_r+20\n    movl %ebp, sf_r+24\n"
        "    pushfl\n    popl sf_r+32\n"
        "    xorl %eax, %eax\n"
        "    movw %cs, %ax\n    movl %eax, sf_r+36\n    movw %ds, %ax\n    movl %eax, sf_r+40\n"
        "    movw %es, %ax\n    movl %eax, sf_r+44\n    movw %ss, %ax\n    movl %eax, sf_r+48\n"
        "    movl $" STR(SEL_KDATA) ", %eax\n    movw %ax, %ds\n    movw %ax, %es\n"
        "    cld\n"
        "    movl sf_r+0, %eax\n"
        "    popl %edi\n    popl %esi\n    popl %ebx\n    popl %ebp\n    ret\n"
        ".globl sf_restore\n"
        "sf_restore:\n"
        "    pushl %ebp\n    pushl %ebx\n    pushl %esi\n    pushl %edi\n"
        "    movl %esp, sf_saved_esp\n"
        "    xorl %ebx, %ebx\n" /* RBX = 0: no flags */
        "    movl sf_junk+0, %ecx\n    movl sf_junk+4, %edx\n    movl sf_junk+8, %esi\n"
        "    movl sf_junk+12, %edi\n    movl sf_junk+16, %ebp\n"
        "    movl $" STR(SEL_FLAT2) ", %eax\n    movw %ax, %ds\n    movw %ax, %es\n    movw %ax, %ss\n"
        "    movl sf_junk+20, %esp\n" /* no stack from here: interrupts are off */
        "    movl $0x80000000, %eax\n    addl %eax, %eax\n    std\n" /* CF ZF PF OF DF = 1 */
        "    movl $" STR(HC_SNAPSHOT_RESTORE) ", %eax\n"
        "    vmcall\n"
        "    movl $" STR(SEL_KDATA) ", %edx\n    movw %dx, %ss\n    movl sf_saved_esp, %esp\n"
        "    movw %dx, %ds\n    movw %dx, %es\n    cld\n"
        "    popl %edi\n    popl %esi\n    popl %ebx\n    popl %ebp\n    ret\n"
        /* ---- L2 ---- */
        ".globl sf_l2_hello\n"
        "sf_l2_hello:\n"
        "    vmcall\n    jmp l2_stray\n"
        /* EAX = seed, ESI = 0: end with VMCALL, else CPUID. First every page's first
         * word inverted (each page changes), then SF_WRITES xorshift words in each region. */
        ".globl sf_l2_scribble\n"
        "sf_l2_scribble:\n"
        "    movl $sf_l1_area, %ebx\n    movl $" STR(SF_L2_WIN) ", %ebp\n    movl $" STR(SF_PAGES) ", %ecx\n"
        "0:  notl (%ebx)\n    notl (%ebp)\n    addl $4096, %ebx\n    addl $4096, %ebp\n    decl %ecx\n    jnz 0b\n"
        "    movl $" STR(SF_WRITES) ", %edi\n"
        "1:  movl %eax, %edx\n    shll $13, %edx\n    xorl %edx, %eax\n"
        "    movl %eax, %edx\n    shrl $17, %edx\n    xorl %edx, %eax\n"
        "    movl %eax, %edx\n    shll $5, %edx\n    xorl %edx, %eax\n"
        "    movl %eax, %ecx\n    andl $(" STR(SF_BYTES) " - 4), %ecx\n    movl %eax, sf_l1_area(%ecx)\n"
        "    movl %eax, %ecx\n    roll $16, %ecx\n    andl $(" STR(SF_BYTES) " - 4), %ecx\n"
        "    movl %eax, " STR(SF_L2_WIN) "(%ecx)\n"
        "    decl %edi\n    jnz 1b\n"
        "    movl %eax, %ebx\n    notl %ebx\n    movl %eax, %ecx\n    roll $8, %ecx\n    movl %eax, %edx\n"
        "    roll $16, %edx\n    movl %eax, %edi\n    roll $24, %edi\n    movl %eax, %ebp\n    negl %ebp\n"
        "    testl %esi, %esi\n    movl %eax, %esi\n    jnz 2f\n"
        "    vmcall\n    jmp l2_stray\n"
        "2:  cpuid\n    jmp l2_stray\n"
        /* L2 asks L1 (EAX = function); resumed after it, it tells L1 what it got. */
        ".globl sf_l2_ask\n"
        "sf_l2_ask:\n"
        "    vmcall\n    vmcall\n    jmp l2_stray\n");

/* ---- set-up --------------------------------------------------------------------------- */
static void setup_vmcs(void) {
    u32 p2 = PROC2_EPT | ((allowed1(cap.proc2) & PROC2_VPID) ? PROC2_VPID : 0);
    if (!ept_offered()) FAIL("L1's EPT offered (secondary controls, WB, 4-level, INVEPT)|PROCBASED_CTLS2 0x%llx", cap.proc2);
    if (!l2_setup(0, p2, "vmcs12 for L2")) l1_end();
    ept_build();
    /* L2's own pages: L2-physical 32 MiB, beyond the identity-mapped 32 MiB. */
    ept_pd[SF_L2_WIN >> 21] = PA(sf_win_pt) | EPT_RWX;
    for (u32 i = 0; i < SF_PAGES; i++) sf_win_pt[i] = PA(sf_l2_area + 4096 * i) | EPT_RWX | EPT_WB;
    vw64(F_EPT_POINTER, PA(ept_pml4) | (3 << 3) | 6);
    if (p2 & PROC2_VPID) vw(F_VPID, 1);
    /* Values other than 0 in fields nothing else sets, all valid for VM entry
     * (the counts they go with are 0, the controls that use them are off). */
    vw(F_EXCEPTION_BITMAP, (1u << 4) | (1u << 5));
    vw(F_PF_ERR_MASK, 0x1F);
    vw(F_PF_ERR_MATCH, 0x5);
    vw(F_CR0_MASK, CR0_TS);
    vw(F_CR0_SHADOW, CR0_TS);
    vw(F_CR4_MASK, 1u << 8);
    vw64(F_TSC_OFFSET, 0x0000123456789ABCull);
    vw64(F_EXIT_MSR_STORE_ADDR, 0x12340);
    vw64(F_EXIT_MSR_LOAD_ADDR, 0x23450);
    vw64(F_ENTRY_MSR_LOAD_ADDR, 0x34560);
    vw(F_GUEST_SYSENTER_CS, SEL_KCODE);
    vw(F_GUEST_SYSENTER_ESP, 0x00123450);
    vw(F_GUEST_SYSENTER_EIP, 0x00765430);
    if (vmcs_errors)
        FAIL("vmcs12 set-up|%u VMWRITEs failed, first 0x%x: %s", vmcs_errors, vmcs_error_field, vm_str(vmcs_error_outcome));
}

/* Which fields exist, which a VMWRITE accepts, and their values now (the reference). */
static void probe_fields(void) {
    bool any = cap.misc & MISC_VMWRITE_ANY;
    nf_rw = nf_ro = 0;
    for (u32 i = 0; i < NF; i++) {
        u64 v;
        f_state[i] = F_ABSENT;
        if (fread(fields[i], &v) != VM_OK) continue;
        f_ref[i] = v;
        f_state[i] = exit_info(fields[i]) && !any ? F_RO : fwrite(fields[i], v) == VM_OK ? F_RW : F_RO;
        if (f_state[i] == F_RW) nf_rw++;
        else nf_ro++;
    }
}

/* Which of L1's registers can hold another value and get the old one back. */
static void probe_knobs(void) {
    nk_used = 0;
    rng = seed_of(0);
    char missing[400] = "";
    int len = 0;
    for (u32 i = 0; i < NK; i++) {
        const struct knob *k = &knobs[i];
        u64 ref = 0, v = 0, back = 0;
        bool readable = knob_read(k, &ref);
        k_used[i] = readable && (v = knob_value(k, ref)) != ref && knob_write(k, v) && knob_read(k, &back) && back == v &&
                    knob_write(k, ref) && knob_read(k, &back) && back == ref;
        if (k_used[i]) {
            nk_used++;
        } else {
            if (readable) knob_write(k, ref);
            len += snprintf(missing + len, (int)sizeof missing - len, " %s", k->name);
        }
        k_ref[i] = ref;
    }
    if (len) diag("not covered here (no such register, or it does not keep a value):%s", missing);
}

/* ---- one cycle ------------------------------------------------------------------------ */
enum { V_NONE, V_OTHER, V_CLEAR, V_OFF };
static const char *const vnames[] = { "none", "VMPTRLD of another VMCS", "VMCLEAR", "VMXOFF" };

/* Everything the snapshot covers changes, and is seen to change. */
static void scribble(u32 c, u32 vaction) {
    u32 s = seed_of(c);
    rng = s;
    regs = (struct l2regs){ .eax = s, .esi = s & 2 };
    l2_run(ADDR(sf_l2_scribble));
    u32 want = (s & 2) ? EXIT_CPUID : EXIT_VMCALL;
    if (!exit_is(want)) FAIL("cycle %u: L2 scribbles and exits (reason %u)|%s", c, want, run_str());
    u32 *own = (u32 *)sf_own_area;
    for (u32 p = 0; p < 4096 / 4; p += 1024) own[p] = ~own[p];
    for (u32 i = 0; i < SF_WRITES; i++) own[rnd() % 1024] = rng;
    for (u32 r = 0; r < NREG; r++) {
        u32 first = 0, pages;
        differ(&regions[r], &first, &pages);
        if (pages != regions[r].words / 1024)
            FAIL("cycle %u: every page of %s scribbled|%u pages changed", c, regions[r].name, pages);
    }

    for (u32 i = 0; i < NF; i++) {
        f_new[i] = f_ref[i];
        /* A quarter of the fields per cycle: each one still ~250 times in 1,000
         * cycles, and under our hypervisor most VMWRITEs/VMREADs are exits. */
        if (f_state[i] != F_RW || (rnd() & 3)) continue;
        u64 m = fmask(fields[i]), v = ((u64)rnd() << 32 | rnd()) & m, back = 0;
        if (v == f_ref[i]) v ^= 1;
        f_new[i] = v;
        u32 o = fwrite(fields[i], v);
        if (o != VM_OK || fread(fields[i], &back) != VM_OK || back != v)
            FAIL("cycle %u: VMWRITE of a random value to field 0x%x reads back|%s, wrote 0x%llx, read 0x%llx", c, fields[i],
                 out_str(o), v, back);
    }

    u64 cur = 0;
    u32 o = VM_OK;
    if (vaction == V_OTHER) o = vmptrld(PA(vmcs_a));
    else if (vaction == V_CLEAR) o = vmclear(PA(vmcs_l2));
    else if (vaction == V_OFF) o = vmxoff();
    u32 st = vmptrst(&cur);
    u64 cur_want = vaction == V_OTHER ? PA(vmcs_a) : vaction == V_CLEAR ? ~0ull : PA(vmcs_l2);
    bool ok = vaction == V_OFF ? st == VM_UD : st == VM_OK && cur == cur_want;
    if (o != VM_OK || !ok)
        FAIL("cycle %u: %s before the restore|%s, VMPTRST %s 0x%llx", c, vnames[vaction], out_str(o), vm_str(st), cur);

    for (u32 i = 0; i < NK; i++) {
        if (!k_used[i]) continue;
        u64 back = 0;
        k_new[i] = knob_value(&knobs[i], k_ref[i]);
        if (!knob_write(&knobs[i], k_new[i]) || !knob_read(&knobs[i], &back) || back != k_new[i])
            FAIL("cycle %u: %s takes a new value|wrote 0x%llx, read 0x%llx", c, knobs[i].name, k_new[i], back);
    }
    for (u32 i = 0; i < 5; i++) sf_junk[i] = rnd();
    sf_junk[5] = 0x00100000 + (rnd() & 0xFFFFC); /* ESP: somewhere in the image */
}

/* selftest: L1 undoes its scribbles itself. */
static void software_restore(u32 vaction) {
    for (u32 i = NK; i-- > 0;)
        if (k_used[i]) knob_write(&knobs[i], k_ref[i]);
    if (vaction == V_OTHER) vmptrld(PA(vmcs_l2));
    for (u32 i = 0; i < NF; i++)
        if (f_state[i] == F_RW) fwrite(fields[i], f_ref[i]); /* L2's run changed some too */
    for (u32 r = 0; r < NREG; r++) fill(&regions[r]);
}

/* After restore c: everything as recorded at the snapshot. */
static void verify(u32 c) {
    u64 cur = 0;
    u32 st = vmptrst(&cur);
    if (st != VM_OK || cur != PA(vmcs_l2))
        FAIL("restore %u: VMX operation, current VMCS = vmcs12|VMPTRST %s 0x%llx", c, vm_str(st), cur);
    for (u32 r = 0; r < NREG; r++) {
        u32 first = 0, pages, n = differ(&regions[r], &first, &pages);
        if (n)
            FAIL("restore %u: %s back|%u words differ, first at +0x%x: 0x%x, pattern 0x%x", c, regions[r].name, n, first * 4,
                 regions[r].p[first], pattern(&regions[r], first));
    }
    for (u32 i = 0; i < NF; i++) {
        u64 v = 0;
        if (!compared(i)) continue;
        u32 o = fread(fields[i], &v);
        if (o != VM_OK || v != f_ref[i])
            FAIL("restore %u: vmcs12 field 0x%x back|%s, 0x%llx, was 0x%llx, scribbled 0x%llx", c, fields[i], out_str(o), v,
                 f_ref[i], f_new[i]);
    }
    /* The FXSAVE state last: with CR0.TS not back, reading it would be #NM. */
    for (u32 pass = 0; pass < 2; pass++) {
        for (u32 i = 0; i < NK; i++) {
            u64 v = 0;
            if (!k_used[i] || (knobs[i].kind == K_FPU) != (pass == 1)) continue;
            if (!knob_read(&knobs[i], &v) || v != k_ref[i])
                FAIL("restore %u: L1's %s back|0x%llx, was 0x%llx, scribbled 0x%llx", c, knobs[i].name, v, k_ref[i], k_new[i]);
        }
    }
    if (c % 100 == 0 || c == cycles) diag("cycle %u/%u: restored and checked", c, cycles);
}

/* The GPRs, ESP, EFLAGS and selectors the take saw (taken: RAX = RBX = 0;
 * restored: RAX = HC_SNAPSHOT_RESTORED, RBX = c). */
static void verify_take_regs(u32 c, u32 eax) {
    struct sf_regs *r = &sf_r;
    bool ok = r->eax == eax && r->ebx == c && r->ecx == K_ECX && r->edx == K_EDX && r->esi == K_ESI &&
              r->edi == K_EDI && r->ebp == K_EBP && r->esp == r->esp0 && ((r->eflags ^ r->eflags0) & ~0x10000u) == 0 &&
              r->cs == SEL_KCODE && r->ds == SEL_KDATA && r->es == SEL_KDATA && r->ss == SEL_KDATA;
    if (!ok)
        FAIL("%s %u: L1's registers at the snapshot point|eax 0x%x ebx 0x%x ecx 0x%x edx 0x%x esi 0x%x edi 0x%x ebp 0x%x "
             "esp 0x%x (0x%x) eflags 0x%x (0x%x) cs 0x%x ds 0x%x es 0x%x ss 0x%x",
             c ? "restore" : "take", c, r->eax, r->ebx, r->ecx, r->edx, r->esi, r->edi, r->ebp, r->esp, r->esp0, r->eflags,
             r->eflags0, r->cs, r->ds, r->es, r->ss);
}
/* take=l2: L1's handler of L2's VMCALL gives L2 the take's result (RAX, RBX,
 * RIP past the VMCALL); L2 reports back with its next VMCALL: what it got,
 * and its other registers as they were when it asked. */
static struct l2regs l2_asked; /* L2's registers when it asked (selftest puts them back) */
static void answer_l2(u32 c, u32 eax) {
    regs.eax = eax;
    regs.ebx = c;
    vw(F_GUEST_RIP, ADDR(sf_l2_ask) + 3); /* past the VMCALL (0F 01 C1) */
    l2_run_at(0, 0);
    struct l2regs w = l2_asked;
    bool ok = vmcall_at(sf_l2_ask, 3) && regs.eax == eax && regs.ebx == c && regs.ecx == w.ecx && regs.edx == w.edx &&
              regs.esi == w.esi && regs.edi == w.edi && regs.ebp == w.ebp;
    if (!ok)
        FAIL("%s %u: L2 goes on after its snapshot VMCALL with the result, its registers kept|%s eax 0x%x ebx 0x%x ecx 0x%x "
             "edx 0x%x esi 0x%x edi 0x%x ebp 0x%x",
             c ? "restore" : "take", c, run_str(), regs.eax, regs.ebx, regs.ecx, regs.edx, regs.esi, regs.edi, regs.ebp);
}

/* L2 asks L1 for function fn (VMCALL) from the second VMCS, since vmcs12's
 * fields are scribbled: a launch of vmcs_a. True when the exit is that VMCALL. */
static bool l2_asks(u32 fn) {
    vmclear(PA(vmcs_a));
    vmptrld(PA(vmcs_a));
    regs = (struct l2regs){ fn, 0, K_ECX, K_EDX, K_ESI, K_EDI, K_EBP };
    l2_run_at(ADDR(sf_l2_ask), 1);
    return vmcall_at(sf_l2_ask, 0) && regs.eax == fn;
}

static NORETURN void request_restore(u32 c, u32 vaction, bool by_l2) {
    if (by_l2 && !l2_asks(HC_SNAPSHOT_RESTORE))
        FAIL("cycle %u: L2 asks for the restore: VMCALL exit to L1|%s", c, run_str());
    /* L1 itself, or its handler of L2's request: the same call (it does not return). */
    u32 r = sf_restore();
    FAIL("cycle %u: VMCALL restore%s (after %s) restores|RAX = %u%s", c, by_l2 ? " asked by L2" : "", vnames[vaction], r,
         r == HC_UNKNOWN ? " (HC_UNKNOWN)" : r == HC_NO_SNAPSHOT ? " (no snapshot)" : "");
}

static u32 vaction_of(u32 c) {
    u32 v = (seed_of(c) >> 2) & 3;
    return selftest && v >= V_CLEAR ? v - V_CLEAR : v; /* software cannot undo VMCLEAR, VMXOFF */
}
static bool by_l2_of(u32 c) { return restore_mixed && (seed_of(c) & 0x10); }

static NORETURN void summary(void) {
    check(true, "%u %s restores: %u bytes in %u regions, %u vmcs12 fields, %u of L1's registers/MSRs back each time", cycles,
          selftest ? "software" : "snapshot", (u32)(2 * SF_BYTES + 4096), (u32)NREG, nf_rw + nf_ro, nk_used);
    /* The launch state came back too: VMRESUME of the restored vmcs12. */
    regs = (struct l2regs){ 0 };
    l2_run(ADDR(sf_l2_hello));
    check(vmcall_at(sf_l2_hello, 0), "L2 resumes after the last restore (launch state, guest state back)|%s", run_str());
    l1_end();
}

void guest_main(void) {
    guest_init("snapfuzz");
    con_use_hypercall(has_word(boot.cmdline, "console=vmcall"));
    char buf[32];
    bool ok;
    if (word_value(boot.cmdline, "cycles", buf, sizeof buf) && ((cycles = parse_u32(buf, &ok)), !ok || !cycles))
        fail_stop("cycles=%s: a number >= 1", buf);
    take_l2 = word_value(boot.cmdline, "take", buf, sizeof buf) && !strcmp(buf, "l2");
    if (word_value(boot.cmdline, "take", buf, sizeof buf) && strcmp(buf, "l1") && strcmp(buf, "l2"))
        fail_stop("take=%s: l1 or l2", buf);
    restore_mixed = word_value(boot.cmdline, "restore", buf, sizeof buf) && !strcmp(buf, "mixed");
    if (word_value(boot.cmdline, "restore", buf, sizeof buf) && strcmp(buf, "l1") && strcmp(buf, "mixed"))
        fail_stop("restore=%s: l1 or mixed", buf);
    selftest = has_word(boot.cmdline, "selftest") || !under_hv();
    printf("snapfuzz: %u cycles, snapshot asked by %s, restores by %s, %s\n", cycles, take_l2 ? "L2" : "L1",
           restore_mixed ? "L1 and L2" : "L1", selftest ? "software restore (selftest)" : "hypercalls");

    setup_l1();
    if (!caps_read()) FAIL("VMX and its capability MSRs|CPUID.1:ECX.VMX %d, first missing MSR 0x%x", vmx_cpuid, cap.missing);
    if (!enter_root()) FAIL("VMXON|CR4 0x%x", cr4_vmx);
    /* x87 and SSE usable (SDM Vol. 3A 13.1.3): CR0.EM = TS = 0, MP = 1,
     * CR4.OSFXSR/OSXMMEXCPT; before the vmcs12 copies CR0/CR4 for L2 and L1. */
    struct cpuid c1 = cpuid(1, 0);
    sse = (c1.edx & (1u << 24)) && (c1.edx & (1u << 26)) && try_write_cr4(read_cr4() | (3u << 9)) == NO_EXC;
    if (sse) {
        write_cr0((read_cr0() & ~((1u << 2) | (1u << 3))) | (1u << 1));
        __asm__ volatile("fninit");
    }
    setup_vmcs();
    for (u32 r = 0; r < NREG; r++) fill(&regions[r]);
    regs = (struct l2regs){ 0 };
    l2_run(ADDR(sf_l2_hello));
    if (!vmcall_at(sf_l2_hello, 0)) FAIL("L2 runs under L1's EPT|%s", run_str());
    if (take_l2) {
        /* L2 asks for the snapshot: its VMCALL exits here, and this handler
         * makes the same call below (the snapshot point), then answers L2. */
        regs = (struct l2regs){ HC_SNAPSHOT_TAKE, 0, K_ECX, K_EDX, K_ESI, K_EDI, K_EBP };
        l2_run(ADDR(sf_l2_ask));
        if (!vmcall_at(sf_l2_ask, 0) || regs.eax != HC_SNAPSHOT_TAKE)
            FAIL("L2 asks for a snapshot: VMCALL exit to L1|%s", run_str());
        l2_asked = regs;
    }
    probe_fields();
    probe_knobs();
    /* The second VMCS: L2 from the same values, for L2's restore requests and
     * the "another VMCS is current" scribble. */
    if (!make_current(vmcs_a)) FAIL("a second VMCS|VMCLEAR/VMPTRLD failed");
    for (u32 i = 0; i < NF; i++)
        if (f_state[i] == F_RW) fwrite(fields[i], f_ref[i]);
    vmclear(PA(vmcs_a));
    if (vmptrld(PA(vmcs_l2)) != VM_OK) FAIL("VMPTRLD vmcs12 again");
    check(true, "set-up: VMX, vmcs12 with EPT, L2 ran; %u vmcs12 fields (%u writable), %u of L1's registers/MSRs/APIC registers",
          nf_rw + nf_ro, nf_rw, nk_used);

    if (selftest) {
        skip(under_hv() ? "selftest" : "not under hv", "snapshot hypercalls take and restore");
        if (take_l2) answer_l2(0, HC_OK);
        for (u32 c = 1; c <= cycles; c++) {
            bool by_l2 = by_l2_of(c);
            u32 va = by_l2 ? V_NONE : vaction_of(c);
            scribble(c, va);
            if (by_l2 && !l2_asks(HC_SNAPSHOT_RESTORE))
                FAIL("cycle %u: L2 asks for the restore: VMCALL exit to L1|%s", c, run_str());
            software_restore(by_l2 ? V_OTHER : va);
            verify(c);
            if (take_l2) {
                regs = l2_asked;
                answer_l2(c, HC_SNAPSHOT_RESTORED);
            }
        }
        summary();
    }

    /* The snapshot point (take=l2: in L1's handler of L2's VMCALL). */
    u32 r = sf_take(), count = sf_r.ebx;
    if (r == HC_OK) {
        verify_take_regs(0, HC_OK);
        if (take_l2) answer_l2(0, HC_OK);
        diag("snapshot taken");
    } else if (r == HC_SNAPSHOT_RESTORED && count >= 1 && count <= cycles) {
        verify_take_regs(count, HC_SNAPSHOT_RESTORED);
        verify(count);
        if (take_l2) answer_l2(count, HC_SNAPSHOT_RESTORED);
        if (count == cycles) {
            check(true, "snapshot hypercalls%s: taken with RAX = RBX = 0, registers kept; back with RAX = %u, RBX = n "
                  "after restore n", take_l2 ? " (asked by L2)" : "", HC_SNAPSHOT_RESTORED);
            summary();
        }
    } else if (r == HC_UNKNOWN) {
        FAIL("snapshot hypercall unavailable|VMCALL RAX = %u returned 2 (HC_UNKNOWN); interface version %u", HC_SNAPSHOT_TAKE,
             vmcall(HC_QUERY, 0, 0));
    } else {
        FAIL("snapshot take returns 0, or %u with RBX in 1..%u|RAX 0x%x RBX %u", HC_SNAPSHOT_RESTORED, cycles, r, count);
    }
    u32 c = (r == HC_OK ? 0 : count) + 1, va = vaction_of(c);
    bool by_l2 = by_l2_of(c);
    scribble(c, by_l2 ? V_NONE : va);
    request_restore(c, va, by_l2);
}
