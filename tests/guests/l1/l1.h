/* The test L1's shared infrastructure: what the capability MSRs say, L1's
 * paging and GDT, VMXON, a fresh VMCS for L2, running L2 and reading its
 * exit, L1's EPT tables (setup.c, which snapfuzz.elf links too); bitmaps and
 * L1's APIC timer (l1.c). Each area of cases lives in a file of its own
 * (l1.c for the original ones; one file per newer area) with one entry
 * point `test_<area>()` called from guest_main in l1.c, in order. L2 code
 * for a case is a global label in run.asm or in a top-level __asm__ block
 * of the case's file (a snippet ends with VMCALL, then `jmp l2_stray`). */
#ifndef L1_L1_H
#define L1_L1_H

#include "guest.h"
#include "vmx.h"

struct l1_caps {
    u64 basic, pin, proc, exit, entry, misc, cr0f0, cr0f1, cr4f0, cr4f1, vmcs_enum;
    u64 proc2, ept_vpid;
    bool true_ctls, has_proc2, has_ept_vpid, read_ok;
    u32 rev, maxphy;
    u32 missing; /* the first of 480H-48AH that #GPs (0: none) */
};

#define PA(p) ((u64)(u32)(uintptr_t)(p))
#define ADDR(x) ((u32)(uintptr_t)(x))
#define HOLE 0x40000000u /* a 4-MiB linear range left unmapped (#PF checks) */
#define L2_STACK_TOP ((u32)(uintptr_t)(l2_stack + sizeof l2_stack))
#define SEL_FLAT2 0x30   /* a second flat ring-0 data segment */
#define SEL_BASED 0x38   /* data segment with base 0x10000 */
#define SEL_SMALL 0x40   /* data segment with limit 0xFFF (bytes) */
#define SEL_TSS 0x28
#define CR0_NE (1u << 5)
#define CR0_TS (1u << 3)
#define CR4_PGE (1u << 7)
#define LOW_SCRATCH 0x7000u /* conventional memory for the 16-bit addressing form */

extern u64 gdt[];
extern u8 tss[];

struct idt_gate { u16 off_lo, sel; u8 zero, type; u16 off_hi; };

#define L1_TIMER_VECTOR 0x40

/* A check of an SDM rule that Bochs 2.7 does not follow: strict under our
 * hypervisor and wherever the machine agrees; elsewhere a disagreement is
 * `ok N - ... # SKIP <the known deviation>`. */
#define CHECK_SDM(cond, deviation, ...) \
    ((under_hv() || (cond)) ? check((cond), __VA_ARGS__) : (skip((deviation), __VA_ARGS__), true))

struct exitinfo { u32 reason, qual, len, info, intr, intr_err, idt_vec, rip; };

#define NOT_RESUMED 0xC0000001u /* last_run when there was no exit to resume after */

#define TIMER_COUNT 20000
#define SPIN 2000000 /* L2 loop iterations: 100 times the timer count */

#define EPT_R 1ull
#define EPT_W 2ull
#define EPT_X 4ull
#define EPT_RWX 7ull
#define EPT_WB (6ull << 3)
#define EPT_LARGE (1ull << 7)
#define EXIT_EPT_VIOLATION 48
#define EXIT_EPT_MISCONFIG 49
#define F_EPT_POINTER 0x201Au

/* ---- state (setup.c; msr_area, exit_store_area, exit_load_area, l1_irqs: l1.c) ---- */
extern struct l1_caps cap;
extern bool vmx_cpuid, in_root, l2_launched;
extern u32 cr0_vmx, cr4_vmx;
extern u8 vmxon_region[4096], vmcs_a[4096], vmcs_b[4096], vmcs_l2[4096];
extern u8 io_bitmap_a[4096], io_bitmap_b[4096], msr_bitmap[4096];
extern u32 pd[1024], pd_alt[1024];
extern u8 l2_stack[4096];
extern u32 msr_area[4], exit_store_area[4], exit_load_area[4];
extern u64 l1_gdt[10];
extern struct idt_gate l2_idt[0x41];
extern struct l2regs regs;     /* L2's GPRs: set before a run, read after it */
extern struct exitinfo ex;     /* the last exit's information */
extern u32 last_run;           /* what vmx_run returned (0: a VM exit came back) */
extern u32 last_exc;           /* the exception the VM-entry instruction raised (NO_EXC if none) */
extern u32 vmcs_ctl_pin, vmcs_ctl_proc, vmcs_ctl_proc2, vmcs_ctl_exit, vmcs_ctl_entry; /* as l2_setup_ex wrote them */
extern volatile u32 l1_irqs;   /* L1's APIC-timer interrupts taken (vector L1_TIMER_VECTOR) */

/* ---- helpers (setup.c, except where marked) ----------------------------------------- */
bool caps_read(void);                     /* cap from the capability MSRs; false: no VMX */
void setup_l1(void);                      /* L1's paging (pd), l1_gdt, L2's IDT */
u32 allowed1(u64 c);
bool ctl_value(u64 c, u32 want, u32 *out);
const char *out_str(u32 o);
bool fail_valid(u32 o, u32 err);
void init_region(u8 *r, u32 rev);
bool enter_root(void);
bool need_root(const char *name);
bool make_current(u8 *r);
bool msr_exists(u32 msr, u64 *v);
/* A fresh, valid VMCS in vmcs_l2 (current, launch state clear) with the
 * controls wanted plus those the MSRs force; SKIP (false) when a wanted
 * control is not offered. Guest = L2 in L1's address space at l2_vmcall. */
bool l2_setup_ex(u32 pin_want, u32 proc_want, u32 proc2_want, u32 exit_want, const char *name);
bool l2_setup(u32 proc_want, u32 proc2_want, const char *name);
const char *run_str(void);                /* the last run, for a check's details */
bool l2_run_at(u32 rip, u32 launch);      /* enter L2 at rip (0: GUEST_RIP as it is) */
bool l2_run(u32 rip);                     /* VMLAUNCH or VMRESUME as the launch state needs */
bool l2_resume_after_insn(void);          /* RIP += exit instruction length, VMRESUME */
bool exit_is(u32 reason);
bool vmcall_at(const char *label, u32 off);
NORETURN void l1_end(void);               /* VMXOFF, RESULT line, isa-debug-exit (bare Bochs: its own ways) */

/* ---- helpers (l1.c) -------------------------------------------------------------- */
bool user_gp(void (*fn)(void), const char *what);
bool entry_fails(u32 err);                /* VMfailValid(err) from the last VM entry */
u32 bad_pin_bit(void);
void bitmap_set(u8 *bm, u32 bit);
void io_mark(u16 port);
void msr_mark(u32 msr, bool write);
void l1_timer_isr(struct frame *f);
void l1_spurious_isr(struct frame *f);
void apic_arm(u32 count);                 /* L1's APIC timer, one-shot, vector L1_TIMER_VECTOR */
void apic_disarm(void);
void l1_window(void);                     /* a few STI windows for a pending interrupt */

/* ---- areas of cases, one file each --------------------------------------------------- */
void test_msr(void);                      /* msr.c: DEBUGCTL, unknown MSRs, IA32_TSC, MSR lists */

/* L1's EPT, setup.c (one-to-one, first 32 MiB; ept_page's 2 MiB mapped with 4-KByte pages) */
extern u64 ept_pml4[512], ept_pdpt[512], ept_pd[512], ept_pt[512];
extern u8 ept_page[4096], ept_alt[4096];
u32 ept_pt_index(void);
void ept_build(void);
void ept_set(u64 entry);
u32 invept_single(void);
bool ept_offered(void);
bool ept_exit(u32 reason, u32 access, u32 perms);

/* ---- areas of cases in files of their own ----------------------------------------- */
void test_l2_hlt_state(void);        /* hlt.c: L2's HLT activity state */
void test_l2_preemption_timer(void); /* ptimer.c: the VMX-preemption timer */
void test_l2_controls(void);          /* controls.c: instruction enables and exiting controls */
void test_vmcs_fields(void);          /* fields.c: CR3-target value fields, the CR3-target list */
void test_l2_ept_ad(void);            /* eptad.c: EPT accessed/dirty flags, PML */
void test_l2_vmcs_shadowing(void);    /* shadow12.c: VMCS shadowing for L1's L2 */
void test_xstate(void);               /* xstate.c: protection keys, XCR0, vector registers in L2 */
void test_l2_apic_passthrough(void);  /* apicpass.c: L2 reaching L1's local APIC (issue 9 item 5) */
void test_l2_apic_virtualization(void); /* apicv.c: TPR shadow, APIC-access page, APIC-register virtualization for L2 */
void ept_with_apic(u64 perm);         /* apicpass.c: ept_build() plus L1's APIC page for L2, memory type UC */
void test_eoi_exit_bitmap(bool concurrent); /* eoiexit.c: seeds/001 on two processors (command-line word eoiexit;
                                                with `concurrent`, the hypervisor runs the vCPUs at once) */

#endif
