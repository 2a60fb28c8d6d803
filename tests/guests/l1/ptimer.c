/* The VMX-preemption timer for L2 (SDM Vol. 3C 26.5.1: counts down while L2
 * runs, by one each time TSC bit X changes, X = IA32_VMX_MISC[4:0]; exit 52
 * at 0, also from the HLT state; 27.7.4: loaded from the VMCS at every VM
 * entry, a value of 0 exits before any instruction; 28.3.4: "save
 * VMX-preemption timer value" stores what is left at every VM exit).
 * Times are TSC ticks measured by L1 around the run, so the bounds are
 * relative: never earlier than the programmed value, and far sooner than
 * L2's own work would end. */
#include "l1.h"

#define PIN_PREEMPT_TIMER (1u << 6)
#define EXIT_SAVE_PREEMPT (1u << 22)
#define F_PREEMPT_TIMER 0x482Eu
#define EXIT_PREEMPT_TIMER 52
#define ACT_HLT 1

#define TIMER_TICKS 100000u     /* the timer value, in TSC ticks */
#define LONG_SPIN (40 * TIMER_TICKS) /* L2 loop iterations: far beyond the timer */

extern char l2_pt_segments[];
extern char l2_hlt_wake[]; /* hlt.c */
/* L2: EDI times (ESI iterations of a loop, then CPUID), then VMCALL. */
__asm__(".text\n"
    ".globl l2_pt_segments\n"
    "l2_pt_segments:\n"
    "    mov %esi, %ecx\n"
    "1:  dec %ecx\n"
    "    jnz 1b\n"
    "    cpuid\n"
    "    dec %edi\n"
    "    jnz l2_pt_segments\n"
    "    vmcall\n"
    "    jmp l2_stray\n");

static u32 rate;
static u32 ticks_to_value(u32 ticks) {
    u32 v = ticks >> rate;
    return v ? v : 1;
}

static void pt_expiry(bool save) {
    const char *name = save ? "preemption timer with \"save VMX-preemption timer value\"" : "preemption timer";
    if (!l2_setup_ex(PIN_PREEMPT_TIMER, 0, 0, save ? EXIT_SAVE_PREEMPT : 0, name)) return;
    u32 v = ticks_to_value(TIMER_TICKS);
    u64 want = (u64)v << rate;
    diag("L2 spins with the VMX-preemption timer at %u (rate %u: %llu TSC ticks)%s", v, rate, want,
         save ? ", saving its value" : "");
    vw(F_PREEMPT_TIMER, v);
    regs.ecx = LONG_SPIN;
    u64 t0 = rdtsc();
    l2_run(ADDR(l2_spin));
    u64 dt = rdtsc() - t0;
    bool hit = exit_is(EXIT_PREEMPT_TIMER);
    check(hit && ex.qual == 0 && regs.ecx != 0 && regs.ecx < LONG_SPIN,
          "%s: exit 52 (qualification 0) while L2 is busy|%s, ECX %u", name, run_str(), regs.ecx);
    check(hit && dt + (1ull << rate) >= want && dt <= 4 * want + 500000,
          "%s: exit 52 after about the programmed time|%llu ticks, programmed %llu", name, dt, want);
    if (save) {
        u32 left = vr(F_PREEMPT_TIMER);
        check(hit && left == 0, "exit 52 with \"save VMX-preemption timer value\": value saved as 0|%s, value %u", run_str(), left);
    } else {
        u32 left = vr(F_PREEMPT_TIMER);
        check(hit && left == v, "exit 52 without \"save VMX-preemption timer value\": the field keeps L1's value|value %u, "
              "written %u", left, v);
    }
}

static void pt_zero(void) {
    if (!l2_setup_ex(PIN_PREEMPT_TIMER, 0, 0, 0, "preemption timer value 0")) return;
    vw(F_PREEMPT_TIMER, 0);
    regs.ecx = LONG_SPIN;
    l2_run(ADDR(l2_spin));
    check(exit_is(EXIT_PREEMPT_TIMER) && ex.rip == ADDR(l2_spin) && regs.ecx == LONG_SPIN,
          "preemption timer value 0 at VM entry: exit 52 before any instruction of L2 (27.7.4)|%s, ECX %u", run_str(),
          regs.ecx);
}

/* With "save", each exit stores what is left, and the next entry goes on
 * from there; without, each entry starts again from L1's value. */
static void pt_save_and_reload(void) {
    if (l2_setup_ex(PIN_PREEMPT_TIMER, 0, 0, EXIT_SAVE_PREEMPT, "\"save VMX-preemption timer value\" at CPUID exits")) {
        u32 v = ticks_to_value(10 * TIMER_TICKS);
        vw(F_PREEMPT_TIMER, v);
        regs.esi = 1000;
        regs.edi = 3;
        l2_run(ADDR(l2_pt_segments));
        u32 v1 = vr(F_PREEMPT_TIMER);
        bool first = exit_is(EXIT_CPUID);
        l2_resume_after_insn();
        u32 v2 = vr(F_PREEMPT_TIMER);
        check(first && exit_is(EXIT_CPUID) && v1 > 0 && v1 < v && v2 > 0 && v2 < v1,
              "\"save VMX-preemption timer value\": each exit stores a smaller remaining value|%s; %u, then %u (from %u)",
              run_str(), v1, v2, v);
    }
    /* Three stretches of about 2/3 of the timer each: without "save" the
     * timer starts again at each entry and never runs out; with it, it
     * runs out in the second stretch. */
    for (int save = 0; save < 2; save++) {
        const char *name = save ? "preemption timer saved across entries runs out" : "preemption timer reloaded at every entry";
        if (!l2_setup_ex(PIN_PREEMPT_TIMER, 0, 0, save ? EXIT_SAVE_PREEMPT : 0, name)) continue;
        u32 v = ticks_to_value(3 * TIMER_TICKS);
        vw(F_PREEMPT_TIMER, v);
        regs.esi = TIMER_TICKS; /* iterations: at least 2 TIMER_TICKS ticks on Bochs */
        regs.edi = 3;
        u32 cpuids = 0;
        l2_run(ADDR(l2_pt_segments));
        while (exit_is(EXIT_CPUID) && cpuids < 5) {
            cpuids++;
            l2_resume_after_insn();
        }
        if (save)
            check(exit_is(EXIT_PREEMPT_TIMER) && cpuids >= 1 && cpuids < 3,
                  "%s: exit 52 after %u of 3 stretches|%s", name, cpuids, run_str());
        else
            check(exit_is(EXIT_VMCALL) && cpuids == 3, "%s: 3 stretches, each shorter than the timer, end without exit 52|"
                  "%s after %u CPUID exits", name, run_str(), cpuids);
    }
}

/* The timer counts in the HLT state too, and its exit leaves it. */
static void pt_halted(void) {
    if (!(cap.misc & MISC_ACTIVITY_HLT)) return;
    if (!l2_setup_ex(PIN_PREEMPT_TIMER, 0, 0, 0, "preemption timer wakes a halted L2")) return;
    u32 v = ticks_to_value(TIMER_TICKS);
    vw(F_PREEMPT_TIMER, v);
    vw(F_GUEST_RFLAGS, 0x2); /* IF = 0: nothing else ends the HLT */
    l2_run(ADDR(l2_hlt_wake));
    u32 act = vr(F_GUEST_ACTIVITY);
    check(exit_is(EXIT_PREEMPT_TIMER) && ex.rip == ADDR(l2_hlt_wake) + 1 && act == ACT_HLT,
          "L2 halted (no HLT exiting, IF = 0): the preemption timer exits from HLT, RIP past the HLT, activity HLT|%s, "
          "activity %u", run_str(), act);
}

void test_l2_preemption_timer(void) {
    if (!(allowed1(cap.pin) & PIN_PREEMPT_TIMER)) {
        skip("not offered", "VMX-preemption timer");
        return;
    }
    rate = (u32)cap.misc & 0x1F;
    pt_expiry(false);
    if (allowed1(cap.exit) & EXIT_SAVE_PREEMPT) pt_expiry(true);
    pt_zero();
    pt_save_and_reload();
    pt_halted();
}
