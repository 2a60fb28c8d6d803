/* l1bench.elf's enlightened-VMCS mode (args=evmcs; tests/guests/l1bench.c): the Hyper-V
 * interface it needs, the eVMCS page and field access by VMCS encoding.
 *
 * The eVMCS layout (HV_VMX_ENLIGHTENED_VMCS v1: byte offset, clean-field group) comes from the
 * generated boot/include/vmx-consts.h (tools/vmx/table.mjs EVMCS, the one declaration, whose
 * offsets tests/unit/evmcs-layout.test.ts checks against the TLFS): hv_evmcs_map by encoding for
 * the set-up code here, and the few offsets the exit handler in l1bench.c uses as link-time
 * symbols (below), because l1bench.c's l1/vmx.h and vmx-consts.h name some controls alike. This
 * file includes only guest.h and that header.
 *
 * TLFS references: "Feature and Interface Discovery" (40000000H-40000004H), "Nested
 * Virtualization" / "Nested Hypervisor Feature Identification" (4000000AH), "Virtual Processor
 * Assist Page" (HV_X64_MSR_VP_ASSIST_PAGE, HV_VP_ASSIST_PAGE), "Enlightened VMCS" and "Clean
 * Fields". */
#include "guest.h"
#include "vmx-consts.h"

#define XSTR_(x) #x
#define XSTR(x) XSTR_(x)

/* CPUID leaves and values (TLFS "Feature and Interface Discovery"). */
#define HV_CPUID_VENDOR 0x40000000u      /* EBX:ECX:EDX "Microsoft Hv", EAX the highest leaf */
#define HV_CPUID_INTERFACE 0x40000001u   /* EAX "Hv#1" */
#define HV_CPUID_RECOMMENDATIONS 0x40000004u
#define HV_CPUID_NESTED_FEATURES 0x4000000Au
#define HV_INTERFACE_HV1 0x31237648u     /* "Hv#1" */
#define HV_REC_ENLIGHTENED_VMCS (1u << 14) /* 40000004H EAX */

/* The eVMCS (an ordinary 4-KiB page of L1's, linear = physical) and the VP assist page. */
u8 lb_evmcs[4096] ALIGNED(4096);
static u8 assist[4096] ALIGNED(4096);

/* What the asm handler of l1bench.c touches, as symbols the linker resolves: the addresses of
 * the eVMCS members (lb_evmcs + offset) and the clean-field masks. */
__asm__(".globl lb_ev_exit_reason, lb_ev_insn_len, lb_ev_guest_rip, lb_ev_clean, lb_ev_host_rsp\n"
        ".globl lb_ev_clean_all, lb_ev_keep_host_pointer\n"
        ".set lb_ev_exit_reason, lb_evmcs + " XSTR(EVMCS_VM_EXIT_REASON) "\n"
        ".set lb_ev_insn_len, lb_evmcs + " XSTR(EVMCS_VM_EXIT_INSTRUCTION_LENGTH) "\n"
        ".set lb_ev_guest_rip, lb_evmcs + " XSTR(EVMCS_GUEST_RIP) "\n"
        ".set lb_ev_clean, lb_evmcs + " XSTR(EVMCS_CLEAN_FIELDS) "\n"
        ".set lb_ev_host_rsp, lb_evmcs + " XSTR(EVMCS_HOST_RSP) "\n"
        ".set lb_ev_clean_all, " XSTR(EVMCS_CLEAN_ALL) "\n"
        ".set lb_ev_keep_host_pointer, ~" XSTR(EVMCS_CLEAN_HOST_POINTER) "\n");

static u32 clean_fields(void) { return *(volatile u32 *)(lb_evmcs + EVMCS_CLEAN_FIELDS); }
static void set_clean_fields(u32 v) { *(volatile u32 *)(lb_evmcs + EVMCS_CLEAN_FIELDS) = v; }

/* Whether CPUID offers eVMCS v1, and with it enable the VP assist page and make the zeroed eVMCS
 * the one L1's VMLAUNCH/VMRESUME use: NULL, or why not. (TLFS "Enlightened VMCS": "No VMPTRLD
 * instruction must be executed to make an enlightened VMCS active or current"; the VP assist
 * page's EnlightenVmEntry and CurrentNestedVmcs name it.) */
const char *lb_ev_start(void) {
    static char why[96];
    struct cpuid r = cpuid(HV_CPUID_VENDOR, 0);
    if (r.ebx != 0x7263694du || r.ecx != 0x666f736fu || r.edx != 0x76482074u) return "CPUID 40000000H is not \"Microsoft Hv\"";
    if (r.eax < HV_CPUID_NESTED_FEATURES) {
        snprintf(why, sizeof why, "CPUID 40000000H: highest leaf 0x%x, below 4000000AH", r.eax);
        return why;
    }
    if (cpuid(HV_CPUID_INTERFACE, 0).eax != HV_INTERFACE_HV1) return "CPUID 40000001H is not \"Hv#1\"";
    r = cpuid(HV_CPUID_RECOMMENDATIONS, 0);
    if (!(r.eax & HV_REC_ENLIGHTENED_VMCS)) {
        snprintf(why, sizeof why, "CPUID 40000004H EAX 0x%x: bit 14 (enlightened VMCS recommended) clear", r.eax);
        return why;
    }
    /* EAX[7:0] the lowest, EAX[15:8] the highest eVMCS version supported: 1 must lie between. */
    r = cpuid(HV_CPUID_NESTED_FEATURES, 0);
    u32 low = r.eax & 0xFF, high = (r.eax >> 8) & 0xFF;
    if (low > EVMCS_VERSION || high < EVMCS_VERSION) {
        snprintf(why, sizeof why, "CPUID 4000000AH EAX 0x%x: eVMCS versions %u..%u, not 1", r.eax, low, high);
        return why;
    }
    /* HV_X64_MSR_VP_ASSIST_PAGE: bit 0 enable, bits 63:12 the page's GPFN. */
    u64 v = 0;
    if (try_wrmsr(MSR_HV_VP_ASSIST_PAGE, (u64)(uintptr_t)assist | 1) != NO_EXC ||
        try_rdmsr(MSR_HV_VP_ASSIST_PAGE, &v) != NO_EXC || v != ((u64)(uintptr_t)assist | 1)) {
        snprintf(why, sizeof why, "the VP assist page MSR (40000073H) did not take the page: reads 0x%llx", v);
        return why;
    }
    memset(lb_evmcs, 0, sizeof lb_evmcs);
    *(volatile u32 *)(lb_evmcs + EVMCS_REVISION_ID) = EVMCS_VERSION;
    set_clean_fields(0); /* nothing cached yet: L0 reads every group at VMLAUNCH anyway */
    *(volatile u64 *)(assist + HV_VP_ASSIST_CURRENT_NESTED_VMCS) = (u64)(uintptr_t)lb_evmcs;
    *(volatile u8 *)(assist + HV_VP_ASSIST_ENLIGHTEN_VMENTRY) = 1;
    return 0;
}

/* The map entry of a VMCS field (byte offset | clean mask << 16), 0: no eVMCS v1 member. */
static u32 map_entry(u32 field) { return (field & ~(u32)EVMCS_MAP_BITS) ? 0 : hv_evmcs_map[EVMCS_MAP_KEY(field)]; }

/* Where a field's value is and its bytes: by the encoding's width (SDM Vol. 3D Appendix B,
 * bits 14:13): 16-bit 2, 64-bit 8, 32-bit 4, natural width 8 (eVMCS members are UINT64); the
 * high access of a 64-bit field (bit 0) is its upper 4 bytes. */
static u8 *where(u32 field, u32 e, u32 *size) {
    static const u8 bytes[4] = { 2, 8, 4, 8 };
    *size = (field & 1) ? 4 : bytes[(field >> 13) & 3];
    return lb_evmcs + (e & 0xFFFF) + ((field & 1) ? 4 : 0);
}

/* Write a field as a VMWRITE from 32-bit L1 would (the value zero-extended to the field's width;
 * a 64-bit field's full access clears its high half, SDM 25.11.2); a changed value clears the
 * clean bit of its group (TLFS "Clean Fields": "The L1 hypervisor must clear the corresponding
 * VMCS clean fields every time it modifies the enlightened VMCS"). false: no such member. */
bool lb_ev_write(u32 field, u64 value) {
    u32 e = map_entry(field), size;
    if (!e) return false;
    u8 *p = where(field, e, &size);
    u64 old = 0;
    memcpy(&old, p, size);
    if (size < 8) value &= (1ull << (8 * size)) - 1;
    if (old == value) return true;
    memcpy(p, &value, size);
    set_clean_fields(clean_fields() & ~(e >> 16));
    return true;
}

/* Read a field (what L1 wrote, or what L0 wrote back at the last exit); false: no member. */
bool lb_ev_read(u32 field, u64 *value) {
    u32 e = map_entry(field), size;
    if (!e) return false;
    u8 *p = where(field, e, &size);
    *value = 0;
    memcpy(value, p, size);
    return true;
}

/* After each VM exit every clean bit is set, as KVM does as L1 on Hyper-V: L0 has read what the
 * entry needed, and what L1 changes from here on clears its group's bit (lb_ev_write). */
void lb_ev_all_clean(void) { set_clean_fields(clean_fields() | EVMCS_CLEAN_ALL); }

/* The eVMCS's address, for VMCLEAR (TLFS: it makes the eVMCS inactive). */
u64 lb_ev_address(void) { return (u64)(uintptr_t)lb_evmcs; }
