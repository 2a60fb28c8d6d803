// The one declaration of the VMX constants this project uses.
//
// Everything here is plain data taken from the Intel SDM (Intel 64 and IA-32 Architectures
// Software Developer's Manual, Vol. 3C chapters 25-31 and Vol. 3D appendices A-C, plus Vol. 4
// for MSR numbers). tools/vmx/gen.mjs checks it and writes three versions of it:
//   kernel/arch/vmx.ts        AssemblyScript, for the kernel
//   boot/include/vmx-consts.h C and assembly, for boot/
//   tests/model/vmx-consts.ts TypeScript, for the software VMX model and the Node tests
// Edit this file, run `make gen`, commit the table and the generated files together
// (`make check-gen` fails when they drift).
//
// Naming convention (the same names in all three languages):
// - VMCS fields: the SDM Appendix B field name in UPPER_SNAKE ("Guest RIP" -> GUEST_RIP,
//   "VM-exit instruction length" -> VM_EXIT_INSTRUCTION_LENGTH), with these fixed rules:
//     * "information" -> INFO; "processor-based" -> PROC_BASED; "VM-execution" -> VM_EXEC;
//     * a field holding a word of control bits is <name>_CONTROL, singular
//       (PIN_BASED_VM_EXEC_CONTROL, PRIMARY_PROC_BASED_VM_EXEC_CONTROL, VM_EXIT_CONTROL,
//       VM_ENTRY_CONTROL, VM_FUNCTION_CONTROL, SECONDARY_VM_EXIT_CONTROL);
//     * "Address of X bitmap" is named for the bitmap: IO_BITMAP_A, MSR_BITMAPS,
//       VMREAD_BITMAP, VMWRITE_BITMAP; other address fields keep _ADDRESS (EPTP_LIST_ADDRESS);
//     * "Exit reason" is VM_EXIT_REASON, so it does not read like one of the EXIT_REASON_*
//       numbers; the SDM's newest names for the event fields ("injected-event identification",
//       "original-event identification", ...) are kept as `sdm` text while the names use the
//       long-standing ones (VM_ENTRY_INTERRUPTION_INFO, IDT_VECTORING_INFO, ...).
//   Only the full encoding of a 64-bit field is declared; the generator adds <NAME>_HIGH
//   (encoding | 1). Width and type are derived from the encoding, never declared.
// - Exit reasons: EXIT_REASON_<NAME>; VM-instruction errors: VMXERR_<NAME>.
// - Control bits, as masks: a prefix per control word + the SDM control name:
//   PIN_ (pin-based), PROC_ (primary processor-based), PROC2_ (secondary), PROC3_ (tertiary),
//   EXIT_ (primary VM-exit), EXIT2_ (secondary VM-exit), ENTRY_ (VM-entry) and VMFUNC_CTL_
//   (VM-function controls; VMFUNC_ alone names the VM function numbers), e.g.
//   PROC2_ENABLE_EPT, EXIT_HOST_ADDRESS_SPACE_SIZE. The "default1" (reserved, must be 1)
//   masks are PIN_DEFAULT1, PROC_DEFAULT1, EXIT_DEFAULT1, ENTRY_DEFAULT1.
// - MSR numbers: MSR_<SDM MSR name> (MSR_IA32_VMX_BASIC). Bit masks inside an MSR or register
//   use a prefix per register (VMX_BASIC_, VMX_MISC_, EPT_VPID_CAP_, FEATURE_CONTROL_,
//   X86_CR0_, X86_CR4_, X86_RFLAGS_, X86_EFER_). A single bit is a mask; a multi-bit field
//   is <NAME>_SHIFT plus <NAME>_MASK (the mask already shifted into place).
//
// Entries carry an `sdm` string with the SDM wording; the generator puts it in comments and in
// the TypeScript metadata, and the name lookups return the `name` (without prefix).

// ---------------------------------------------------------------------------------------------
// 1. VMCS fields (Vol. 3D Appendix B; encoding layout in Vol. 3C 25.11.2)
//    bits 31:15 reserved (0) | 14:13 width | 12 reserved (0) | 11:10 type | 9:1 index | 0 high
//    width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural-width
//    type:  0 control, 1 VM-exit information (read-only data), 2 guest state, 3 host state
//
//    `shadow: true` marks the fields the hypervisor will let L1 VMREAD/VMWRITE through a
//    shadow VMCS (VMCS shadowing, 25.10): the exit-information and guest-state fields an L1
//    hypervisor touches on nearly every exit (reason, qualification, instruction length and
//    information, event information, RIP/RSP/RFLAGS, interruptibility, entry event injection),
//    and three that Linux KVM as L1 reads or writes around every L2 exit it handles (found
//    by counting the VMREAD/VMWRITE exits of its L2 round trip): the PML index (it flushes
//    the PML log at each exit), guest CS base (its linear RIP) and host RSP (written when
//    its stack moved, which a trip through user space does). Each costs the minimal L1 of
//    `make bench` ~25 ticks per L2 round trip (copies at push/pull, CS base read at exit)
//    and saves KVM one exit (~1,000 ticks) each.
//    Writing the read-only ones into a shadow VMCS needs IA32_VMX_MISC bit 29 ("VMWRITE to
//    any supported field"); code that enables shadowing checks it.
// ---------------------------------------------------------------------------------------------
export const VMCS_FIELDS = [
  // B.1.1 16-bit control fields
  { name: 'VIRTUAL_PROCESSOR_ID', encoding: 0x0000, sdm: 'Virtual-processor identifier (VPID)' },
  { name: 'POSTED_INTERRUPT_NOTIFICATION_VECTOR', encoding: 0x0002, sdm: 'Posted-interrupt notification vector' },
  { name: 'EPTP_INDEX', encoding: 0x0004, sdm: 'EPTP index' },
  { name: 'HLAT_PREFIX_SIZE', encoding: 0x0006, sdm: 'HLAT prefix size' },
  { name: 'LAST_PID_POINTER_INDEX', encoding: 0x0008, sdm: 'Last PID-pointer index' },

  // B.1.2 16-bit guest-state fields
  { name: 'GUEST_ES_SELECTOR', encoding: 0x0800, sdm: 'Guest ES selector' },
  { name: 'GUEST_CS_SELECTOR', encoding: 0x0802, sdm: 'Guest CS selector', shadow: true },
  { name: 'GUEST_SS_SELECTOR', encoding: 0x0804, sdm: 'Guest SS selector' },
  { name: 'GUEST_DS_SELECTOR', encoding: 0x0806, sdm: 'Guest DS selector' },
  { name: 'GUEST_FS_SELECTOR', encoding: 0x0808, sdm: 'Guest FS selector' },
  { name: 'GUEST_GS_SELECTOR', encoding: 0x080a, sdm: 'Guest GS selector' },
  { name: 'GUEST_LDTR_SELECTOR', encoding: 0x080c, sdm: 'Guest LDTR selector' },
  { name: 'GUEST_TR_SELECTOR', encoding: 0x080e, sdm: 'Guest TR selector' },
  { name: 'GUEST_INTERRUPT_STATUS', encoding: 0x0810, sdm: 'Guest interrupt status' },
  { name: 'PML_INDEX', encoding: 0x0812, sdm: 'PML index', shadow: true },
  { name: 'GUEST_UINV', encoding: 0x0814, sdm: 'Guest UINV' },

  // B.1.3 16-bit host-state fields
  { name: 'HOST_ES_SELECTOR', encoding: 0x0c00, sdm: 'Host ES selector' },
  { name: 'HOST_CS_SELECTOR', encoding: 0x0c02, sdm: 'Host CS selector' },
  { name: 'HOST_SS_SELECTOR', encoding: 0x0c04, sdm: 'Host SS selector' },
  { name: 'HOST_DS_SELECTOR', encoding: 0x0c06, sdm: 'Host DS selector' },
  { name: 'HOST_FS_SELECTOR', encoding: 0x0c08, sdm: 'Host FS selector' },
  { name: 'HOST_GS_SELECTOR', encoding: 0x0c0a, sdm: 'Host GS selector' },
  { name: 'HOST_TR_SELECTOR', encoding: 0x0c0c, sdm: 'Host TR selector' },

  // B.2.1 64-bit control fields
  { name: 'IO_BITMAP_A', encoding: 0x2000, sdm: 'Address of I/O bitmap A' },
  { name: 'IO_BITMAP_B', encoding: 0x2002, sdm: 'Address of I/O bitmap B' },
  { name: 'MSR_BITMAPS', encoding: 0x2004, sdm: 'Address of MSR bitmaps' },
  { name: 'VM_EXIT_MSR_STORE_ADDRESS', encoding: 0x2006, sdm: 'VM-exit MSR-store address' },
  { name: 'VM_EXIT_MSR_LOAD_ADDRESS', encoding: 0x2008, sdm: 'VM-exit MSR-load address' },
  { name: 'VM_ENTRY_MSR_LOAD_ADDRESS', encoding: 0x200a, sdm: 'VM-entry MSR-load address' },
  { name: 'EXECUTIVE_VMCS_POINTER', encoding: 0x200c, sdm: 'Executive-VMCS pointer' },
  { name: 'PML_ADDRESS', encoding: 0x200e, sdm: 'PML address' },
  { name: 'TSC_OFFSET', encoding: 0x2010, sdm: 'TSC offset' },
  { name: 'VIRTUAL_APIC_ADDRESS', encoding: 0x2012, sdm: 'Virtual-APIC address' },
  { name: 'APIC_ACCESS_ADDRESS', encoding: 0x2014, sdm: 'APIC-access address' },
  { name: 'POSTED_INTERRUPT_DESCRIPTOR_ADDRESS', encoding: 0x2016, sdm: 'Posted-interrupt descriptor address' },
  { name: 'VM_FUNCTION_CONTROL', encoding: 0x2018, sdm: 'VM-function controls' },
  { name: 'EPT_POINTER', encoding: 0x201a, sdm: 'EPT pointer (EPTP)' },
  { name: 'EOI_EXIT_BITMAP_0', encoding: 0x201c, sdm: 'EOI-exit bitmap 0 (EOI_EXIT0)' },
  { name: 'EOI_EXIT_BITMAP_1', encoding: 0x201e, sdm: 'EOI-exit bitmap 1 (EOI_EXIT1)' },
  { name: 'EOI_EXIT_BITMAP_2', encoding: 0x2020, sdm: 'EOI-exit bitmap 2 (EOI_EXIT2)' },
  { name: 'EOI_EXIT_BITMAP_3', encoding: 0x2022, sdm: 'EOI-exit bitmap 3 (EOI_EXIT3)' },
  { name: 'EPTP_LIST_ADDRESS', encoding: 0x2024, sdm: 'EPTP-list address' },
  { name: 'VMREAD_BITMAP', encoding: 0x2026, sdm: 'VMREAD-bitmap address' },
  { name: 'VMWRITE_BITMAP', encoding: 0x2028, sdm: 'VMWRITE-bitmap address' },
  { name: 'VIRTUALIZATION_EXCEPTION_INFO_ADDRESS', encoding: 0x202a, sdm: 'Virtualization-exception information address' },
  { name: 'XSS_EXITING_BITMAP', encoding: 0x202c, sdm: 'XSS-exiting bitmap' },
  { name: 'ENCLS_EXITING_BITMAP', encoding: 0x202e, sdm: 'ENCLS-exiting bitmap' },
  { name: 'SUB_PAGE_PERMISSION_TABLE_POINTER', encoding: 0x2030, sdm: 'Sub-page-permission-table pointer' },
  { name: 'TSC_MULTIPLIER', encoding: 0x2032, sdm: 'TSC multiplier' },
  { name: 'TERTIARY_PROC_BASED_VM_EXEC_CONTROL', encoding: 0x2034, sdm: 'Tertiary processor-based VM-execution controls' },
  // Listed in the SDM editions that document ENCLV (index 27); newer editions leave it out.
  { name: 'ENCLV_EXITING_BITMAP', encoding: 0x2036, sdm: 'ENCLV-exiting bitmap' },
  { name: 'LOW_PASID_DIRECTORY_ADDRESS', encoding: 0x2038, sdm: 'Low PASID directory address' },
  { name: 'HIGH_PASID_DIRECTORY_ADDRESS', encoding: 0x203a, sdm: 'High PASID directory address' },
  { name: 'SHARED_EPT_POINTER', encoding: 0x203c, sdm: 'SEAM shared EPT pointer' },
  { name: 'PCONFIG_EXITING_BITMAP', encoding: 0x203e, sdm: 'PCONFIG-exiting bitmap' },
  { name: 'HLAT_POINTER', encoding: 0x2040, sdm: 'Hypervisor-managed linear-address translation pointer (HLATP)' },
  { name: 'PID_POINTER_TABLE_ADDRESS', encoding: 0x2042, sdm: 'PID-pointer table address' },
  { name: 'SECONDARY_VM_EXIT_CONTROL', encoding: 0x2044, sdm: 'Secondary VM-exit controls' },
  { name: 'IA32_SPEC_CTRL_MASK', encoding: 0x204a, sdm: 'IA32_SPEC_CTRL mask' },
  { name: 'IA32_SPEC_CTRL_SHADOW', encoding: 0x204c, sdm: 'IA32_SPEC_CTRL shadow' },
  { name: 'INJECTED_EVENT_DATA', encoding: 0x2052, sdm: 'Injected-event data (FRED)' },

  // B.2.2 64-bit read-only data fields
  { name: 'GUEST_PHYSICAL_ADDRESS', encoding: 0x2400, sdm: 'Guest-physical address', shadow: true },
  { name: 'VM_EXIT_MSR_DATA', encoding: 0x2402, sdm: 'MSR data (MSR-list instructions)' },
  { name: 'ORIGINAL_EVENT_DATA', encoding: 0x2404, sdm: 'Original-event data (FRED)' },

  // B.2.3 64-bit guest-state fields
  { name: 'VMCS_LINK_POINTER', encoding: 0x2800, sdm: 'VMCS link pointer' },
  { name: 'GUEST_IA32_DEBUGCTL', encoding: 0x2802, sdm: 'Guest IA32_DEBUGCTL' },
  { name: 'GUEST_IA32_PAT', encoding: 0x2804, sdm: 'Guest IA32_PAT' },
  { name: 'GUEST_IA32_EFER', encoding: 0x2806, sdm: 'Guest IA32_EFER' },
  { name: 'GUEST_IA32_PERF_GLOBAL_CTRL', encoding: 0x2808, sdm: 'Guest IA32_PERF_GLOBAL_CTRL' },
  { name: 'GUEST_PDPTE0', encoding: 0x280a, sdm: 'Guest PDPTE0' },
  { name: 'GUEST_PDPTE1', encoding: 0x280c, sdm: 'Guest PDPTE1' },
  { name: 'GUEST_PDPTE2', encoding: 0x280e, sdm: 'Guest PDPTE2' },
  { name: 'GUEST_PDPTE3', encoding: 0x2810, sdm: 'Guest PDPTE3' },
  { name: 'GUEST_IA32_BNDCFGS', encoding: 0x2812, sdm: 'Guest IA32_BNDCFGS' },
  { name: 'GUEST_IA32_RTIT_CTL', encoding: 0x2814, sdm: 'Guest IA32_RTIT_CTL' },
  { name: 'GUEST_IA32_LBR_CTL', encoding: 0x2816, sdm: 'Guest IA32_LBR_CTL' },
  { name: 'GUEST_IA32_PKRS', encoding: 0x2818, sdm: 'Guest IA32_PKRS' },
  { name: 'GUEST_IA32_FRED_CONFIG', encoding: 0x281a, sdm: 'Guest IA32_FRED_CONFIG' },
  { name: 'GUEST_IA32_FRED_RSP1', encoding: 0x281c, sdm: 'Guest IA32_FRED_RSP1' },
  { name: 'GUEST_IA32_FRED_RSP2', encoding: 0x281e, sdm: 'Guest IA32_FRED_RSP2' },
  { name: 'GUEST_IA32_FRED_RSP3', encoding: 0x2820, sdm: 'Guest IA32_FRED_RSP3' },
  { name: 'GUEST_IA32_FRED_STKLVLS', encoding: 0x2822, sdm: 'Guest IA32_FRED_STKLVLS' },
  { name: 'GUEST_IA32_FRED_SSP1', encoding: 0x2824, sdm: 'Guest IA32_FRED_SSP1' },
  { name: 'GUEST_IA32_FRED_SSP2', encoding: 0x2826, sdm: 'Guest IA32_FRED_SSP2' },
  { name: 'GUEST_IA32_FRED_SSP3', encoding: 0x2828, sdm: 'Guest IA32_FRED_SSP3' },

  // B.2.4 64-bit host-state fields
  { name: 'HOST_IA32_PAT', encoding: 0x2c00, sdm: 'Host IA32_PAT' },
  { name: 'HOST_IA32_EFER', encoding: 0x2c02, sdm: 'Host IA32_EFER' },
  { name: 'HOST_IA32_PERF_GLOBAL_CTRL', encoding: 0x2c04, sdm: 'Host IA32_PERF_GLOBAL_CTRL' },
  { name: 'HOST_IA32_PKRS', encoding: 0x2c06, sdm: 'Host IA32_PKRS' },
  { name: 'HOST_IA32_FRED_CONFIG', encoding: 0x2c08, sdm: 'Host IA32_FRED_CONFIG' },
  { name: 'HOST_IA32_FRED_RSP1', encoding: 0x2c0a, sdm: 'Host IA32_FRED_RSP1' },
  { name: 'HOST_IA32_FRED_RSP2', encoding: 0x2c0c, sdm: 'Host IA32_FRED_RSP2' },
  { name: 'HOST_IA32_FRED_RSP3', encoding: 0x2c0e, sdm: 'Host IA32_FRED_RSP3' },
  { name: 'HOST_IA32_FRED_STKLVLS', encoding: 0x2c10, sdm: 'Host IA32_FRED_STKLVLS' },
  { name: 'HOST_IA32_FRED_SSP1', encoding: 0x2c12, sdm: 'Host IA32_FRED_SSP1' },
  { name: 'HOST_IA32_FRED_SSP2', encoding: 0x2c14, sdm: 'Host IA32_FRED_SSP2' },
  { name: 'HOST_IA32_FRED_SSP3', encoding: 0x2c16, sdm: 'Host IA32_FRED_SSP3' },

  // B.3.1 32-bit control fields
  { name: 'PIN_BASED_VM_EXEC_CONTROL', encoding: 0x4000, sdm: 'Pin-based VM-execution controls' },
  { name: 'PRIMARY_PROC_BASED_VM_EXEC_CONTROL', encoding: 0x4002, sdm: 'Primary processor-based VM-execution controls' },
  { name: 'EXCEPTION_BITMAP', encoding: 0x4004, sdm: 'Exception bitmap' },
  { name: 'PAGE_FAULT_ERROR_CODE_MASK', encoding: 0x4006, sdm: 'Page-fault error-code mask' },
  { name: 'PAGE_FAULT_ERROR_CODE_MATCH', encoding: 0x4008, sdm: 'Page-fault error-code match' },
  { name: 'CR3_TARGET_COUNT', encoding: 0x400a, sdm: 'CR3-target count' },
  { name: 'VM_EXIT_CONTROL', encoding: 0x400c, sdm: '(Primary) VM-exit controls' },
  { name: 'VM_EXIT_MSR_STORE_COUNT', encoding: 0x400e, sdm: 'VM-exit MSR-store count' },
  { name: 'VM_EXIT_MSR_LOAD_COUNT', encoding: 0x4010, sdm: 'VM-exit MSR-load count' },
  { name: 'VM_ENTRY_CONTROL', encoding: 0x4012, sdm: 'VM-entry controls' },
  { name: 'VM_ENTRY_MSR_LOAD_COUNT', encoding: 0x4014, sdm: 'VM-entry MSR-load count' },
  { name: 'VM_ENTRY_INTERRUPTION_INFO', encoding: 0x4016, sdm: 'VM-entry interruption-information field (injected-event identification)', shadow: true },
  { name: 'VM_ENTRY_EXCEPTION_ERROR_CODE', encoding: 0x4018, sdm: 'VM-entry exception error code (injected-event error code)', shadow: true },
  { name: 'VM_ENTRY_INSTRUCTION_LENGTH', encoding: 0x401a, sdm: 'VM-entry instruction length', shadow: true },
  { name: 'TPR_THRESHOLD', encoding: 0x401c, sdm: 'TPR threshold' },
  { name: 'SECONDARY_PROC_BASED_VM_EXEC_CONTROL', encoding: 0x401e, sdm: 'Secondary processor-based VM-execution controls' },
  { name: 'PLE_GAP', encoding: 0x4020, sdm: 'PLE_Gap' },
  { name: 'PLE_WINDOW', encoding: 0x4022, sdm: 'PLE_Window' },
  { name: 'INSTRUCTION_TIMEOUT_CONTROL', encoding: 0x4024, sdm: 'Instruction-timeout control' },
  { name: 'SEAM_GUEST_KEYID', encoding: 0x4026, sdm: 'SEAM-guest KeyID' },

  // B.3.2 32-bit read-only data fields
  { name: 'VM_INSTRUCTION_ERROR', encoding: 0x4400, sdm: 'VM-instruction error' },
  { name: 'VM_EXIT_REASON', encoding: 0x4402, sdm: 'Exit reason', shadow: true },
  { name: 'VM_EXIT_INTERRUPTION_INFO', encoding: 0x4404, sdm: 'VM-exit interruption information (exiting-event identification)', shadow: true },
  { name: 'VM_EXIT_INTERRUPTION_ERROR_CODE', encoding: 0x4406, sdm: 'VM-exit interruption error code (exiting-event error code)', shadow: true },
  { name: 'IDT_VECTORING_INFO', encoding: 0x4408, sdm: 'IDT-vectoring information (original-event identification)', shadow: true },
  { name: 'IDT_VECTORING_ERROR_CODE', encoding: 0x440a, sdm: 'IDT-vectoring error code (original-event error code)', shadow: true },
  { name: 'VM_EXIT_INSTRUCTION_LENGTH', encoding: 0x440c, sdm: 'VM-exit instruction length', shadow: true },
  { name: 'VM_EXIT_INSTRUCTION_INFO', encoding: 0x440e, sdm: 'VM-exit instruction information', shadow: true },

  // B.3.3 32-bit guest-state fields (index 22, encoding 482CH, is not used)
  { name: 'GUEST_ES_LIMIT', encoding: 0x4800, sdm: 'Guest ES limit' },
  { name: 'GUEST_CS_LIMIT', encoding: 0x4802, sdm: 'Guest CS limit' },
  { name: 'GUEST_SS_LIMIT', encoding: 0x4804, sdm: 'Guest SS limit' },
  { name: 'GUEST_DS_LIMIT', encoding: 0x4806, sdm: 'Guest DS limit' },
  { name: 'GUEST_FS_LIMIT', encoding: 0x4808, sdm: 'Guest FS limit' },
  { name: 'GUEST_GS_LIMIT', encoding: 0x480a, sdm: 'Guest GS limit' },
  { name: 'GUEST_LDTR_LIMIT', encoding: 0x480c, sdm: 'Guest LDTR limit' },
  { name: 'GUEST_TR_LIMIT', encoding: 0x480e, sdm: 'Guest TR limit' },
  { name: 'GUEST_GDTR_LIMIT', encoding: 0x4810, sdm: 'Guest GDTR limit' },
  { name: 'GUEST_IDTR_LIMIT', encoding: 0x4812, sdm: 'Guest IDTR limit' },
  { name: 'GUEST_ES_ACCESS_RIGHTS', encoding: 0x4814, sdm: 'Guest ES access rights' },
  { name: 'GUEST_CS_ACCESS_RIGHTS', encoding: 0x4816, sdm: 'Guest CS access rights', shadow: true },
  { name: 'GUEST_SS_ACCESS_RIGHTS', encoding: 0x4818, sdm: 'Guest SS access rights', shadow: true },
  { name: 'GUEST_DS_ACCESS_RIGHTS', encoding: 0x481a, sdm: 'Guest DS access rights' },
  { name: 'GUEST_FS_ACCESS_RIGHTS', encoding: 0x481c, sdm: 'Guest FS access rights' },
  { name: 'GUEST_GS_ACCESS_RIGHTS', encoding: 0x481e, sdm: 'Guest GS access rights' },
  { name: 'GUEST_LDTR_ACCESS_RIGHTS', encoding: 0x4820, sdm: 'Guest LDTR access rights' },
  { name: 'GUEST_TR_ACCESS_RIGHTS', encoding: 0x4822, sdm: 'Guest TR access rights' },
  { name: 'GUEST_INTERRUPTIBILITY_STATE', encoding: 0x4824, sdm: 'Guest interruptibility state', shadow: true },
  { name: 'GUEST_ACTIVITY_STATE', encoding: 0x4826, sdm: 'Guest activity state' },
  { name: 'GUEST_SMBASE', encoding: 0x4828, sdm: 'Guest SMBASE' },
  { name: 'GUEST_IA32_SYSENTER_CS', encoding: 0x482a, sdm: 'Guest IA32_SYSENTER_CS' },
  { name: 'VMX_PREEMPTION_TIMER_VALUE', encoding: 0x482e, sdm: 'VMX-preemption timer value' },

  // B.3.4 32-bit host-state field
  { name: 'HOST_IA32_SYSENTER_CS', encoding: 0x4c00, sdm: 'Host IA32_SYSENTER_CS' },

  // B.4.1 natural-width control fields
  { name: 'CR0_GUEST_HOST_MASK', encoding: 0x6000, sdm: 'CR0 guest/host mask' },
  { name: 'CR4_GUEST_HOST_MASK', encoding: 0x6002, sdm: 'CR4 guest/host mask' },
  { name: 'CR0_READ_SHADOW', encoding: 0x6004, sdm: 'CR0 read shadow' },
  { name: 'CR4_READ_SHADOW', encoding: 0x6006, sdm: 'CR4 read shadow' },
  { name: 'CR3_TARGET_VALUE0', encoding: 0x6008, sdm: 'CR3-target value 0' },
  { name: 'CR3_TARGET_VALUE1', encoding: 0x600a, sdm: 'CR3-target value 1' },
  { name: 'CR3_TARGET_VALUE2', encoding: 0x600c, sdm: 'CR3-target value 2' },
  { name: 'CR3_TARGET_VALUE3', encoding: 0x600e, sdm: 'CR3-target value 3' },

  // B.4.2 natural-width read-only data fields
  { name: 'EXIT_QUALIFICATION', encoding: 0x6400, sdm: 'Exit qualification', shadow: true },
  { name: 'IO_RCX', encoding: 0x6402, sdm: 'I/O RCX' },
  { name: 'IO_RSI', encoding: 0x6404, sdm: 'I/O RSI' },
  { name: 'IO_RDI', encoding: 0x6406, sdm: 'I/O RDI' },
  { name: 'IO_RIP', encoding: 0x6408, sdm: 'I/O RIP' },
  { name: 'GUEST_LINEAR_ADDRESS', encoding: 0x640a, sdm: 'Guest-linear address', shadow: true },

  // B.4.3 natural-width guest-state fields
  { name: 'GUEST_CR0', encoding: 0x6800, sdm: 'Guest CR0', shadow: true },
  { name: 'GUEST_CR3', encoding: 0x6802, sdm: 'Guest CR3', shadow: true },
  { name: 'GUEST_CR4', encoding: 0x6804, sdm: 'Guest CR4', shadow: true },
  { name: 'GUEST_ES_BASE', encoding: 0x6806, sdm: 'Guest ES base' },
  { name: 'GUEST_CS_BASE', encoding: 0x6808, sdm: 'Guest CS base', shadow: true },
  { name: 'GUEST_SS_BASE', encoding: 0x680a, sdm: 'Guest SS base' },
  { name: 'GUEST_DS_BASE', encoding: 0x680c, sdm: 'Guest DS base' },
  { name: 'GUEST_FS_BASE', encoding: 0x680e, sdm: 'Guest FS base' },
  { name: 'GUEST_GS_BASE', encoding: 0x6810, sdm: 'Guest GS base' },
  { name: 'GUEST_LDTR_BASE', encoding: 0x6812, sdm: 'Guest LDTR base' },
  { name: 'GUEST_TR_BASE', encoding: 0x6814, sdm: 'Guest TR base' },
  { name: 'GUEST_GDTR_BASE', encoding: 0x6816, sdm: 'Guest GDTR base' },
  { name: 'GUEST_IDTR_BASE', encoding: 0x6818, sdm: 'Guest IDTR base' },
  { name: 'GUEST_DR7', encoding: 0x681a, sdm: 'Guest DR7' },
  { name: 'GUEST_RSP', encoding: 0x681c, sdm: 'Guest RSP', shadow: true },
  { name: 'GUEST_RIP', encoding: 0x681e, sdm: 'Guest RIP', shadow: true },
  { name: 'GUEST_RFLAGS', encoding: 0x6820, sdm: 'Guest RFLAGS', shadow: true },
  { name: 'GUEST_PENDING_DEBUG_EXCEPTIONS', encoding: 0x6822, sdm: 'Guest pending debug exceptions' },
  { name: 'GUEST_IA32_SYSENTER_ESP', encoding: 0x6824, sdm: 'Guest IA32_SYSENTER_ESP' },
  { name: 'GUEST_IA32_SYSENTER_EIP', encoding: 0x6826, sdm: 'Guest IA32_SYSENTER_EIP' },
  { name: 'GUEST_IA32_S_CET', encoding: 0x6828, sdm: 'Guest IA32_S_CET' },
  { name: 'GUEST_SSP', encoding: 0x682a, sdm: 'Guest SSP' },
  { name: 'GUEST_IA32_INTERRUPT_SSP_TABLE_ADDR', encoding: 0x682c, sdm: 'Guest IA32_INTERRUPT_SSP_TABLE_ADDR' },

  // B.4.4 natural-width host-state fields
  { name: 'HOST_CR0', encoding: 0x6c00, sdm: 'Host CR0' },
  { name: 'HOST_CR3', encoding: 0x6c02, sdm: 'Host CR3' },
  { name: 'HOST_CR4', encoding: 0x6c04, sdm: 'Host CR4' },
  { name: 'HOST_FS_BASE', encoding: 0x6c06, sdm: 'Host FS base' },
  { name: 'HOST_GS_BASE', encoding: 0x6c08, sdm: 'Host GS base' },
  { name: 'HOST_TR_BASE', encoding: 0x6c0a, sdm: 'Host TR base' },
  { name: 'HOST_GDTR_BASE', encoding: 0x6c0c, sdm: 'Host GDTR base' },
  { name: 'HOST_IDTR_BASE', encoding: 0x6c0e, sdm: 'Host IDTR base' },
  { name: 'HOST_IA32_SYSENTER_ESP', encoding: 0x6c10, sdm: 'Host IA32_SYSENTER_ESP' },
  { name: 'HOST_IA32_SYSENTER_EIP', encoding: 0x6c12, sdm: 'Host IA32_SYSENTER_EIP' },
  { name: 'HOST_RSP', encoding: 0x6c14, sdm: 'Host RSP', shadow: true },
  { name: 'HOST_RIP', encoding: 0x6c16, sdm: 'Host RIP' },
  { name: 'HOST_IA32_S_CET', encoding: 0x6c18, sdm: 'Host IA32_S_CET' },
  { name: 'HOST_SSP', encoding: 0x6c1a, sdm: 'Host SSP' },
  { name: 'HOST_IA32_INTERRUPT_SSP_TABLE_ADDR', encoding: 0x6c1c, sdm: 'Host IA32_INTERRUPT_SSP_TABLE_ADDR' },
];

// The private vmcs12 page: the in-memory form of a VMCS that L1 created (its VMCS region,
// 4 KiB). Only the first 8 bytes are architectural (25.2: bits 30:0 revision identifier,
// bit 31 shadow-VMCS indicator, then the VMX-abort indicator); the rest of the format is ours.
// The generator lays the fields out after this header: all 8-byte slots (64-bit and
// natural-width fields), then 4-byte, then 2-byte, each group in encoding order, so every
// slot is naturally aligned.
export const VMCS12 = {
  pageSize: 4096,
  headerSize: 16,
  header: [
    { name: 'VMCS12_REVISION_ID_OFFSET', offset: 0, size: 4, sdm: 'VMCS revision identifier + shadow-VMCS indicator (25.2)' },
    { name: 'VMCS12_ABORT_INDICATOR_OFFSET', offset: 4, size: 4, sdm: 'VMX-abort indicator (25.2)' },
    { name: 'VMCS12_LAUNCH_STATE_OFFSET', offset: 8, size: 4, sdm: 'launch state, private: 0 clear, 1 launched (25.1)' },
  ],
};

// ---------------------------------------------------------------------------------------------
// 2. Basic exit reasons (Vol. 3D Appendix C, Table C-1). 35, 38, 42 and 71 are not used.
// ---------------------------------------------------------------------------------------------
export const EXIT_REASONS = [
  { number: 0, name: 'EXCEPTION_NMI', sdm: 'Exception or non-maskable interrupt (NMI)' },
  { number: 1, name: 'EXTERNAL_INTERRUPT', sdm: 'External interrupt' },
  { number: 2, name: 'TRIPLE_FAULT', sdm: 'Triple fault' },
  { number: 3, name: 'INIT_SIGNAL', sdm: 'INIT signal' },
  { number: 4, name: 'SIPI', sdm: 'Start-up IPI (SIPI)' },
  { number: 5, name: 'IO_SMI', sdm: 'I/O system-management interrupt (SMI)' },
  { number: 6, name: 'OTHER_SMI', sdm: 'Other SMI' },
  { number: 7, name: 'INTERRUPT_WINDOW', sdm: 'Interrupt window' },
  { number: 8, name: 'NMI_WINDOW', sdm: 'NMI window' },
  { number: 9, name: 'TASK_SWITCH', sdm: 'Task switch' },
  { number: 10, name: 'CPUID', sdm: 'CPUID' },
  { number: 11, name: 'GETSEC', sdm: 'GETSEC' },
  { number: 12, name: 'HLT', sdm: 'HLT' },
  { number: 13, name: 'INVD', sdm: 'INVD' },
  { number: 14, name: 'INVLPG', sdm: 'INVLPG' },
  { number: 15, name: 'RDPMC', sdm: 'RDPMC' },
  { number: 16, name: 'RDTSC', sdm: 'RDTSC' },
  { number: 17, name: 'RSM', sdm: 'RSM' },
  { number: 18, name: 'VMCALL', sdm: 'VMCALL' },
  { number: 19, name: 'VMCLEAR', sdm: 'VMCLEAR' },
  { number: 20, name: 'VMLAUNCH', sdm: 'VMLAUNCH' },
  { number: 21, name: 'VMPTRLD', sdm: 'VMPTRLD' },
  { number: 22, name: 'VMPTRST', sdm: 'VMPTRST' },
  { number: 23, name: 'VMREAD', sdm: 'VMREAD' },
  { number: 24, name: 'VMRESUME', sdm: 'VMRESUME' },
  { number: 25, name: 'VMWRITE', sdm: 'VMWRITE' },
  { number: 26, name: 'VMXOFF', sdm: 'VMXOFF' },
  { number: 27, name: 'VMXON', sdm: 'VMXON' },
  { number: 28, name: 'CR_ACCESS', sdm: 'Control-register accesses' },
  { number: 29, name: 'MOV_DR', sdm: 'MOV DR' },
  { number: 30, name: 'IO_INSTRUCTION', sdm: 'I/O instruction' },
  { number: 31, name: 'RDMSR', sdm: 'RDMSR' },
  { number: 32, name: 'WRMSR', sdm: 'WRMSR' },
  { number: 33, name: 'ENTRY_FAILURE_GUEST_STATE', sdm: 'VM-entry failure due to invalid guest state' },
  { number: 34, name: 'ENTRY_FAILURE_MSR_LOADING', sdm: 'VM-entry failure due to MSR loading' },
  { number: 36, name: 'MWAIT', sdm: 'MWAIT' },
  { number: 37, name: 'MONITOR_TRAP_FLAG', sdm: 'Monitor trap flag' },
  { number: 39, name: 'MONITOR', sdm: 'MONITOR' },
  { number: 40, name: 'PAUSE', sdm: 'PAUSE' },
  { number: 41, name: 'ENTRY_FAILURE_MACHINE_CHECK', sdm: 'VM-entry failure due to machine-check event' },
  { number: 43, name: 'TPR_BELOW_THRESHOLD', sdm: 'TPR below threshold' },
  { number: 44, name: 'APIC_ACCESS', sdm: 'APIC access' },
  { number: 45, name: 'VIRTUALIZED_EOI', sdm: 'Virtualized EOI' },
  { number: 46, name: 'GDTR_IDTR_ACCESS', sdm: 'Access to GDTR or IDTR' },
  { number: 47, name: 'LDTR_TR_ACCESS', sdm: 'Access to LDTR or TR' },
  { number: 48, name: 'EPT_VIOLATION', sdm: 'EPT violation' },
  { number: 49, name: 'EPT_MISCONFIG', sdm: 'EPT misconfiguration' },
  { number: 50, name: 'INVEPT', sdm: 'INVEPT' },
  { number: 51, name: 'RDTSCP', sdm: 'RDTSCP' },
  { number: 52, name: 'PREEMPTION_TIMER', sdm: 'VMX-preemption timer expired' },
  { number: 53, name: 'INVVPID', sdm: 'INVVPID' },
  { number: 54, name: 'WBINVD', sdm: 'WBINVD or WBNOINVD' },
  { number: 55, name: 'XSETBV', sdm: 'XSETBV' },
  { number: 56, name: 'APIC_WRITE', sdm: 'APIC write' },
  { number: 57, name: 'RDRAND', sdm: 'RDRAND' },
  { number: 58, name: 'INVPCID', sdm: 'INVPCID' },
  { number: 59, name: 'VMFUNC', sdm: 'VMFUNC' },
  { number: 60, name: 'ENCLS', sdm: 'ENCLS' },
  { number: 61, name: 'RDSEED', sdm: 'RDSEED' },
  { number: 62, name: 'PML_FULL', sdm: 'Page-modification log full' },
  { number: 63, name: 'XSAVES', sdm: 'XSAVES' },
  { number: 64, name: 'XRSTORS', sdm: 'XRSTORS' },
  { number: 65, name: 'PCONFIG', sdm: 'PCONFIG' },
  { number: 66, name: 'SPP_EVENT', sdm: 'SPP-related event' },
  { number: 67, name: 'UMWAIT', sdm: 'UMWAIT' },
  { number: 68, name: 'TPAUSE', sdm: 'TPAUSE' },
  { number: 69, name: 'LOADIWKEY', sdm: 'LOADIWKEY' },
  { number: 70, name: 'ENCLV', sdm: 'ENCLV' },
  { number: 72, name: 'ENQCMD_PASID_FAILURE', sdm: 'ENQCMD PASID translation failure' },
  { number: 73, name: 'ENQCMDS_PASID_FAILURE', sdm: 'ENQCMDS PASID translation failure' },
  { number: 74, name: 'BUS_LOCK', sdm: 'Bus lock' },
  { number: 75, name: 'INSTRUCTION_TIMEOUT', sdm: 'Instruction timeout' },
  { number: 76, name: 'SEAMCALL', sdm: 'SEAMCALL' },
  { number: 77, name: 'TDCALL', sdm: 'TDCALL' },
  { number: 78, name: 'RDMSRLIST', sdm: 'RDMSRLIST' },
  { number: 79, name: 'WRMSRLIST', sdm: 'WRMSRLIST' },
];

// Bits of the 32-bit exit-reason field around the basic exit reason (25.9.1, Table 25-17).
export const EXIT_REASON_FIELD = {
  prefix: 'EXIT_REASON_',
  bitsName: 'EXIT_REASON_FLAG_BITS', // TypeScript metadata array
  width: 32,
  sdm: '25.9.1 exit-reason field',
  fields: [{ name: 'BASIC', lsb: 0, msb: 15, sdm: 'basic exit reason' }],
  bits: [
    { bit: 26, name: 'FLAG_BUS_LOCK', sdm: 'bus lock asserted (with "VMM bus-lock detection")' },
    { bit: 27, name: 'FLAG_ENCLAVE_MODE', sdm: 'VM exit incident to enclave mode' },
    { bit: 28, name: 'FLAG_PENDING_MTF', sdm: 'pending MTF VM exit' },
    { bit: 29, name: 'FLAG_FROM_VMX_ROOT', sdm: 'VM exit from VMX root operation (SMM)' },
    { bit: 31, name: 'FLAG_ENTRY_FAILURE', sdm: 'VM-entry failure' },
  ],
};

// ---------------------------------------------------------------------------------------------
// 3. VM-execution, VM-exit and VM-entry controls (Vol. 3C 25.6-25.8) with the capability MSRs
//    that report their allowed settings (Appendix A.3-A.5, A.11) and the default1 masks
//    (A.2: the bits that are reserved and must be 1 when the TRUE MSRs are not used; a few
//    named controls are also "default1" - marked here with default1: true, and the generator
//    checks that these are exactly the named bits inside the mask).
// ---------------------------------------------------------------------------------------------
export const CONTROLS = [
  {
    key: 'pin', prefix: 'PIN_', nameFn: 'pinCtlName', width: 32,
    field: 'PIN_BASED_VM_EXEC_CONTROL', capMsr: 'IA32_VMX_PINBASED_CTLS', trueCapMsr: 'IA32_VMX_TRUE_PINBASED_CTLS',
    defaults1: 0x00000016, sdm: '25.6.1 pin-based VM-execution controls',
    bits: [
      { bit: 0, name: 'EXTERNAL_INTERRUPT_EXITING', sdm: 'External-interrupt exiting' },
      { bit: 3, name: 'NMI_EXITING', sdm: 'NMI exiting' },
      { bit: 5, name: 'VIRTUAL_NMIS', sdm: 'Virtual NMIs' },
      { bit: 6, name: 'ACTIVATE_VMX_PREEMPTION_TIMER', sdm: 'Activate VMX-preemption timer' },
      { bit: 7, name: 'PROCESS_POSTED_INTERRUPTS', sdm: 'Process posted interrupts' },
    ],
  },
  {
    key: 'proc', prefix: 'PROC_', nameFn: 'procCtlName', width: 32,
    field: 'PRIMARY_PROC_BASED_VM_EXEC_CONTROL', capMsr: 'IA32_VMX_PROCBASED_CTLS', trueCapMsr: 'IA32_VMX_TRUE_PROCBASED_CTLS',
    defaults1: 0x0401e172, sdm: '25.6.2 primary processor-based VM-execution controls',
    bits: [
      { bit: 2, name: 'INTERRUPT_WINDOW_EXITING', sdm: 'Interrupt-window exiting' },
      { bit: 3, name: 'USE_TSC_OFFSETTING', sdm: 'Use TSC offsetting' },
      { bit: 7, name: 'HLT_EXITING', sdm: 'HLT exiting' },
      { bit: 9, name: 'INVLPG_EXITING', sdm: 'INVLPG exiting' },
      { bit: 10, name: 'MWAIT_EXITING', sdm: 'MWAIT exiting' },
      { bit: 11, name: 'RDPMC_EXITING', sdm: 'RDPMC exiting' },
      { bit: 12, name: 'RDTSC_EXITING', sdm: 'RDTSC exiting' },
      { bit: 15, name: 'CR3_LOAD_EXITING', sdm: 'CR3-load exiting', default1: true },
      { bit: 16, name: 'CR3_STORE_EXITING', sdm: 'CR3-store exiting', default1: true },
      { bit: 17, name: 'ACTIVATE_TERTIARY_CONTROLS', sdm: 'Activate tertiary controls' },
      { bit: 19, name: 'CR8_LOAD_EXITING', sdm: 'CR8-load exiting' },
      { bit: 20, name: 'CR8_STORE_EXITING', sdm: 'CR8-store exiting' },
      { bit: 21, name: 'USE_TPR_SHADOW', sdm: 'Use TPR shadow' },
      { bit: 22, name: 'NMI_WINDOW_EXITING', sdm: 'NMI-window exiting' },
      { bit: 23, name: 'MOV_DR_EXITING', sdm: 'MOV-DR exiting' },
      { bit: 24, name: 'UNCONDITIONAL_IO_EXITING', sdm: 'Unconditional I/O exiting' },
      { bit: 25, name: 'USE_IO_BITMAPS', sdm: 'Use I/O bitmaps' },
      { bit: 27, name: 'MONITOR_TRAP_FLAG', sdm: 'Monitor trap flag' },
      { bit: 28, name: 'USE_MSR_BITMAPS', sdm: 'Use MSR bitmaps' },
      { bit: 29, name: 'MONITOR_EXITING', sdm: 'MONITOR exiting' },
      { bit: 30, name: 'PAUSE_EXITING', sdm: 'PAUSE exiting' },
      { bit: 31, name: 'ACTIVATE_SECONDARY_CONTROLS', sdm: 'Activate secondary controls' },
    ],
  },
  {
    key: 'proc2', prefix: 'PROC2_', nameFn: 'proc2CtlName', width: 32,
    field: 'SECONDARY_PROC_BASED_VM_EXEC_CONTROL', capMsr: 'IA32_VMX_PROCBASED_CTLS2', trueCapMsr: null,
    defaults1: 0, sdm: '25.6.2 secondary processor-based VM-execution controls',
    bits: [
      { bit: 0, name: 'VIRTUALIZE_APIC_ACCESSES', sdm: 'Virtualize APIC accesses' },
      { bit: 1, name: 'ENABLE_EPT', sdm: 'Enable EPT' },
      { bit: 2, name: 'DESCRIPTOR_TABLE_EXITING', sdm: 'Descriptor-table exiting' },
      { bit: 3, name: 'ENABLE_RDTSCP', sdm: 'Enable RDTSCP' },
      { bit: 4, name: 'VIRTUALIZE_X2APIC_MODE', sdm: 'Virtualize x2APIC mode' },
      { bit: 5, name: 'ENABLE_VPID', sdm: 'Enable VPID' },
      { bit: 6, name: 'WBINVD_EXITING', sdm: 'WBINVD exiting' },
      { bit: 7, name: 'UNRESTRICTED_GUEST', sdm: 'Unrestricted guest' },
      { bit: 8, name: 'APIC_REGISTER_VIRTUALIZATION', sdm: 'APIC-register virtualization' },
      { bit: 9, name: 'VIRTUAL_INTERRUPT_DELIVERY', sdm: 'Virtual-interrupt delivery' },
      { bit: 10, name: 'PAUSE_LOOP_EXITING', sdm: 'PAUSE-loop exiting' },
      { bit: 11, name: 'RDRAND_EXITING', sdm: 'RDRAND exiting' },
      { bit: 12, name: 'ENABLE_INVPCID', sdm: 'Enable INVPCID' },
      { bit: 13, name: 'ENABLE_VM_FUNCTIONS', sdm: 'Enable VM functions' },
      { bit: 14, name: 'VMCS_SHADOWING', sdm: 'VMCS shadowing' },
      { bit: 15, name: 'ENABLE_ENCLS_EXITING', sdm: 'Enable ENCLS exiting' },
      { bit: 16, name: 'RDSEED_EXITING', sdm: 'RDSEED exiting' },
      { bit: 17, name: 'ENABLE_PML', sdm: 'Enable PML' },
      { bit: 18, name: 'EPT_VIOLATION_VE', sdm: 'EPT-violation #VE' },
      { bit: 19, name: 'CONCEAL_VMX_FROM_PT', sdm: 'Conceal VMX from PT' },
      { bit: 20, name: 'ENABLE_XSAVES_XRSTORS', sdm: 'Enable XSAVES/XRSTORS' },
      { bit: 21, name: 'PASID_TRANSLATION', sdm: 'PASID translation' },
      { bit: 22, name: 'MODE_BASED_EXECUTE_CONTROL', sdm: 'Mode-based execute control for EPT' },
      { bit: 23, name: 'SUB_PAGE_WRITE_PERMISSIONS', sdm: 'Sub-page write permissions for EPT' },
      { bit: 24, name: 'PT_USES_GUEST_PHYSICAL_ADDRESSES', sdm: 'Intel PT uses guest physical addresses' },
      { bit: 25, name: 'USE_TSC_SCALING', sdm: 'Use TSC scaling' },
      { bit: 26, name: 'ENABLE_USER_WAIT_AND_PAUSE', sdm: 'Enable user wait and pause' },
      { bit: 27, name: 'ENABLE_PCONFIG', sdm: 'Enable PCONFIG' },
      { bit: 28, name: 'ENABLE_ENCLV_EXITING', sdm: 'Enable ENCLV exiting' },
      { bit: 30, name: 'VMM_BUS_LOCK_DETECTION', sdm: 'VMM bus-lock detection' },
      { bit: 31, name: 'INSTRUCTION_TIMEOUT', sdm: 'Instruction timeout' },
    ],
  },
  {
    key: 'proc3', prefix: 'PROC3_', nameFn: 'proc3CtlName', width: 64,
    field: 'TERTIARY_PROC_BASED_VM_EXEC_CONTROL', capMsr: 'IA32_VMX_PROCBASED_CTLS3', trueCapMsr: null,
    defaults1: 0, sdm: '25.6.2 tertiary processor-based VM-execution controls',
    bits: [
      { bit: 0, name: 'LOADIWKEY_EXITING', sdm: 'LOADIWKEY exiting' },
      { bit: 1, name: 'ENABLE_HLAT', sdm: 'Enable HLAT' },
      { bit: 2, name: 'EPT_PAGING_WRITE_CONTROL', sdm: 'EPT paging-write control' },
      { bit: 3, name: 'GUEST_PAGING_VERIFICATION', sdm: 'Guest-paging verification' },
      { bit: 4, name: 'IPI_VIRTUALIZATION', sdm: 'IPI virtualization' },
      { bit: 7, name: 'VIRTUALIZE_IA32_SPEC_CTRL', sdm: 'Virtualize IA32_SPEC_CTRL' },
    ],
  },
  {
    key: 'exit', prefix: 'EXIT_', nameFn: 'exitCtlName', width: 32,
    field: 'VM_EXIT_CONTROL', capMsr: 'IA32_VMX_EXIT_CTLS', trueCapMsr: 'IA32_VMX_TRUE_EXIT_CTLS',
    defaults1: 0x00036dff, sdm: '25.7.1 (primary) VM-exit controls',
    bits: [
      { bit: 2, name: 'SAVE_DEBUG_CONTROLS', sdm: 'Save debug controls', default1: true },
      { bit: 9, name: 'HOST_ADDRESS_SPACE_SIZE', sdm: 'Host address-space size' },
      { bit: 12, name: 'LOAD_IA32_PERF_GLOBAL_CTRL', sdm: 'Load IA32_PERF_GLOBAL_CTRL' },
      { bit: 15, name: 'ACKNOWLEDGE_INTERRUPT_ON_EXIT', sdm: 'Acknowledge interrupt on exit' },
      { bit: 18, name: 'SAVE_IA32_PAT', sdm: 'Save IA32_PAT' },
      { bit: 19, name: 'LOAD_IA32_PAT', sdm: 'Load IA32_PAT' },
      { bit: 20, name: 'SAVE_IA32_EFER', sdm: 'Save IA32_EFER' },
      { bit: 21, name: 'LOAD_IA32_EFER', sdm: 'Load IA32_EFER' },
      { bit: 22, name: 'SAVE_VMX_PREEMPTION_TIMER_VALUE', sdm: 'Save VMX-preemption timer value' },
      { bit: 23, name: 'CLEAR_IA32_BNDCFGS', sdm: 'Clear IA32_BNDCFGS' },
      { bit: 24, name: 'CONCEAL_VMX_FROM_PT', sdm: 'Conceal VMX from PT' },
      { bit: 25, name: 'CLEAR_IA32_RTIT_CTL', sdm: 'Clear IA32_RTIT_CTL' },
      { bit: 26, name: 'CLEAR_IA32_LBR_CTL', sdm: 'Clear IA32_LBR_CTL' },
      { bit: 27, name: 'CLEAR_UINV', sdm: 'Clear UINV' },
      { bit: 28, name: 'LOAD_CET_STATE', sdm: 'Load CET state' },
      { bit: 29, name: 'LOAD_PKRS', sdm: 'Load PKRS' },
      { bit: 30, name: 'SAVE_IA32_PERF_GLOBAL_CTL', sdm: 'Save IA32_PERF_GLOBAL_CTL' },
      { bit: 31, name: 'ACTIVATE_SECONDARY_CONTROLS', sdm: 'Activate secondary controls' },
    ],
  },
  {
    key: 'exit2', prefix: 'EXIT2_', nameFn: 'exit2CtlName', width: 64,
    field: 'SECONDARY_VM_EXIT_CONTROL', capMsr: 'IA32_VMX_EXIT_CTLS2', trueCapMsr: null,
    defaults1: 0, sdm: '25.7.1 secondary VM-exit controls',
    bits: [
      { bit: 0, name: 'SAVE_FRED', sdm: 'Save FRED' },
      { bit: 1, name: 'LOAD_FRED', sdm: 'Load FRED' },
    ],
  },
  {
    key: 'entry', prefix: 'ENTRY_', nameFn: 'entryCtlName', width: 32,
    field: 'VM_ENTRY_CONTROL', capMsr: 'IA32_VMX_ENTRY_CTLS', trueCapMsr: 'IA32_VMX_TRUE_ENTRY_CTLS',
    defaults1: 0x000011ff, sdm: '25.8.1 VM-entry controls',
    bits: [
      { bit: 2, name: 'LOAD_DEBUG_CONTROLS', sdm: 'Load debug controls', default1: true },
      { bit: 9, name: 'IA32E_MODE_GUEST', sdm: 'IA-32e mode guest' },
      { bit: 10, name: 'ENTRY_TO_SMM', sdm: 'Entry to SMM' },
      { bit: 11, name: 'DEACTIVATE_DUAL_MONITOR_TREATMENT', sdm: 'Deactivate dual-monitor treatment' },
      { bit: 13, name: 'LOAD_IA32_PERF_GLOBAL_CTRL', sdm: 'Load IA32_PERF_GLOBAL_CTRL' },
      { bit: 14, name: 'LOAD_IA32_PAT', sdm: 'Load IA32_PAT' },
      { bit: 15, name: 'LOAD_IA32_EFER', sdm: 'Load IA32_EFER' },
      { bit: 16, name: 'LOAD_IA32_BNDCFGS', sdm: 'Load IA32_BNDCFGS' },
      { bit: 17, name: 'CONCEAL_VMX_FROM_PT', sdm: 'Conceal VMX from PT' },
      { bit: 18, name: 'LOAD_IA32_RTIT_CTL', sdm: 'Load IA32_RTIT_CTL' },
      { bit: 19, name: 'LOAD_UINV', sdm: 'Load UINV' },
      { bit: 20, name: 'LOAD_CET_STATE', sdm: 'Load CET state' },
      { bit: 21, name: 'LOAD_GUEST_IA32_LBR_CTL', sdm: 'Load guest IA32_LBR_CTL' },
      { bit: 22, name: 'LOAD_PKRS', sdm: 'Load PKRS' },
      { bit: 23, name: 'LOAD_FRED', sdm: 'Load FRED' },
    ],
  },
  {
    // VM-function controls: bit n enables VM function n (25.6.14, 26.5.6).
    key: 'vmfunc', prefix: 'VMFUNC_CTL_', nameFn: 'vmfuncCtlName', width: 64,
    field: 'VM_FUNCTION_CONTROL', capMsr: 'IA32_VMX_VMFUNC', trueCapMsr: null,
    defaults1: 0, sdm: '25.6.14 VM-function controls',
    bits: [
      { bit: 0, name: 'EPTP_SWITCHING', sdm: 'EPTP switching' },
    ],
  },
];

// VM function numbers (the value of EAX for VMFUNC, 26.5.6).
export const VMFUNCS = [
  { number: 0, name: 'EPTP_SWITCHING', sdm: 'EPTP switching' },
];

// ---------------------------------------------------------------------------------------------
// 4. MSR numbers (Vol. 4 Table 2-2; the VMX capability MSRs are described in Vol. 3D App. A)
// ---------------------------------------------------------------------------------------------
export const MSRS = [
  { name: 'IA32_TIME_STAMP_COUNTER', number: 0x10 },
  { name: 'IA32_PLATFORM_ID', number: 0x17 },
  { name: 'IA32_APIC_BASE', number: 0x1b },
  { name: 'IA32_FEATURE_CONTROL', number: 0x3a },
  { name: 'IA32_TSC_ADJUST', number: 0x3b },
  { name: 'IA32_SPEC_CTRL', number: 0x48 },
  { name: 'IA32_BIOS_UPDT_TRIG', number: 0x79 },
  { name: 'IA32_BIOS_SIGN_ID', number: 0x8b },
  { name: 'IA32_SMM_MONITOR_CTL', number: 0x9b },
  { name: 'IA32_SMBASE', number: 0x9e },
  { name: 'IA32_MTRRCAP', number: 0xfe },
  { name: 'IA32_SYSENTER_CS', number: 0x174 },
  { name: 'IA32_SYSENTER_ESP', number: 0x175 },
  { name: 'IA32_SYSENTER_EIP', number: 0x176 },
  { name: 'IA32_MISC_ENABLE', number: 0x1a0 },
  { name: 'IA32_DEBUGCTL', number: 0x1d9 },
  { name: 'IA32_MTRR_FIX64K_00000', number: 0x250 },
  { name: 'IA32_MTRR_FIX16K_80000', number: 0x258 },
  { name: 'IA32_MTRR_FIX16K_A0000', number: 0x259 },
  { name: 'IA32_MTRR_FIX4K_C0000', number: 0x268 }, // the first of eight, 268H-26FH
  { name: 'IA32_PAT', number: 0x277 },
  { name: 'IA32_MTRR_DEF_TYPE', number: 0x2ff },
  { name: 'IA32_PERF_GLOBAL_CTRL', number: 0x38f },
  { name: 'IA32_VMX_BASIC', number: 0x480, sdm: 'A.1' },
  { name: 'IA32_VMX_PINBASED_CTLS', number: 0x481, sdm: 'A.3.1' },
  { name: 'IA32_VMX_PROCBASED_CTLS', number: 0x482, sdm: 'A.3.2' },
  { name: 'IA32_VMX_EXIT_CTLS', number: 0x483, sdm: 'A.4.1' },
  { name: 'IA32_VMX_ENTRY_CTLS', number: 0x484, sdm: 'A.5' },
  { name: 'IA32_VMX_MISC', number: 0x485, sdm: 'A.6' },
  { name: 'IA32_VMX_CR0_FIXED0', number: 0x486, sdm: 'A.7' },
  { name: 'IA32_VMX_CR0_FIXED1', number: 0x487, sdm: 'A.7' },
  { name: 'IA32_VMX_CR4_FIXED0', number: 0x488, sdm: 'A.8' },
  { name: 'IA32_VMX_CR4_FIXED1', number: 0x489, sdm: 'A.8' },
  { name: 'IA32_VMX_VMCS_ENUM', number: 0x48a, sdm: 'A.9' },
  { name: 'IA32_VMX_PROCBASED_CTLS2', number: 0x48b, sdm: 'A.3.3' },
  { name: 'IA32_VMX_EPT_VPID_CAP', number: 0x48c, sdm: 'A.10' },
  { name: 'IA32_VMX_TRUE_PINBASED_CTLS', number: 0x48d, sdm: 'A.3.1' },
  { name: 'IA32_VMX_TRUE_PROCBASED_CTLS', number: 0x48e, sdm: 'A.3.2' },
  { name: 'IA32_VMX_TRUE_EXIT_CTLS', number: 0x48f, sdm: 'A.4.1' },
  { name: 'IA32_VMX_TRUE_ENTRY_CTLS', number: 0x490, sdm: 'A.5' },
  { name: 'IA32_VMX_VMFUNC', number: 0x491, sdm: 'A.11' },
  { name: 'IA32_VMX_PROCBASED_CTLS3', number: 0x492, sdm: 'A.3.4' },
  { name: 'IA32_VMX_EXIT_CTLS2', number: 0x493, sdm: 'A.4.2' },
  { name: 'IA32_RTIT_CTL', number: 0x570 },
  { name: 'IA32_S_CET', number: 0x6a2 },
  { name: 'IA32_INTERRUPT_SSP_TABLE_ADDR', number: 0x6a8 },
  { name: 'IA32_TSC_DEADLINE', number: 0x6e0 },
  { name: 'IA32_PKRS', number: 0x6e1 },
  { name: 'IA32_BNDCFGS', number: 0xd90 },
  { name: 'IA32_XSS', number: 0xda0 },
  { name: 'IA32_LBR_CTL', number: 0x14ce },
  { name: 'IA32_EFER', number: 0xc0000080 },
  { name: 'IA32_STAR', number: 0xc0000081 },
  { name: 'IA32_LSTAR', number: 0xc0000082 },
  { name: 'IA32_CSTAR', number: 0xc0000083 },
  { name: 'IA32_FMASK', number: 0xc0000084 },
  { name: 'IA32_FS_BASE', number: 0xc0000100 },
  { name: 'IA32_GS_BASE', number: 0xc0000101 },
  { name: 'IA32_KERNEL_GS_BASE', number: 0xc0000102 },
  { name: 'IA32_TSC_AUX', number: 0xc0000103 },
  // Hyper-V synthetic MSRs (TLFS "Feature and Interface Discovery" and "Hypercall Interface";
  // docs/guest-interface.md "Hyper-V interface"): present only for a guest with hyperv=on.
  { name: 'HV_GUEST_OS_ID', number: 0x40000000, tlfs: 'HV_X64_MSR_GUEST_OS_ID' },
  { name: 'HV_HYPERCALL', number: 0x40000001, tlfs: 'HV_X64_MSR_HYPERCALL' },
  { name: 'HV_VP_INDEX', number: 0x40000002, tlfs: 'HV_X64_MSR_VP_INDEX' },
  { name: 'HV_VP_ASSIST_PAGE', number: 0x40000073, tlfs: 'HV_X64_MSR_VP_ASSIST_PAGE' },
  { name: 'HV_TSC_INVARIANT_CONTROL', number: 0x40000118, tlfs: 'HV_X64_MSR_TSC_INVARIANT_CONTROL' },
];

// ---------------------------------------------------------------------------------------------
// 5 and 7. Bits and fields inside MSRs, control registers and flags.
//    bits:   { bit, name }            -> <prefix><name> = 1 << bit
//    fields: { lsb, msb, name }       -> <prefix><name>_SHIFT = lsb, <prefix><name>_MASK
//    nameFn: also generate a name lookup by bit number (AssemblyScript)
// ---------------------------------------------------------------------------------------------
export const REGISTERS = [
  {
    key: 'featureControl', prefix: 'FEATURE_CONTROL_', width: 64, sdm: 'IA32_FEATURE_CONTROL (Vol. 3C 24.7, Vol. 4 Table 2-2)',
    bits: [
      { bit: 0, name: 'LOCK', sdm: 'Lock bit' },
      { bit: 1, name: 'VMX_INSIDE_SMX', sdm: 'Enable VMX inside SMX operation' },
      { bit: 2, name: 'VMX_OUTSIDE_SMX', sdm: 'Enable VMX outside SMX operation' },
      { bit: 15, name: 'SENTER_GLOBAL_ENABLE', sdm: 'SENTER global enable' },
      { bit: 17, name: 'SGX_LAUNCH_CONTROL', sdm: 'SGX launch control enable' },
      { bit: 18, name: 'SGX_GLOBAL_ENABLE', sdm: 'SGX global enable' },
      { bit: 20, name: 'LMCE_ON', sdm: 'LMCE on' },
    ],
    fields: [{ lsb: 8, msb: 14, name: 'SENTER_LOCAL_FUNCTIONS', sdm: 'SENTER local function enables' }],
  },
  {
    key: 'vmxBasic', prefix: 'VMX_BASIC_', width: 64, sdm: 'IA32_VMX_BASIC (A.1)',
    fields: [
      { lsb: 0, msb: 30, name: 'REVISION_ID', sdm: 'VMCS revision identifier' },
      { lsb: 32, msb: 44, name: 'VMCS_SIZE', sdm: 'bytes to allocate for the VMXON region and any VMCS region' },
      { lsb: 50, msb: 53, name: 'MEMORY_TYPE', sdm: 'memory type for VMCS, VMCS data structures and MSEG (VMX_MEMTYPE_*)' },
    ],
    bits: [
      { bit: 48, name: 'PHYS_ADDR_32BIT', sdm: 'VMXON/VMCS/structure addresses limited to 32 bits' },
      { bit: 49, name: 'DUAL_MONITOR', sdm: 'dual-monitor treatment of SMIs and SMM supported' },
      { bit: 54, name: 'INS_OUTS_INFO', sdm: 'VM-exit instruction information reported for INS/OUTS' },
      { bit: 55, name: 'TRUE_CONTROLS', sdm: 'default1 controls may be 0: the IA32_VMX_TRUE_*_CTLS MSRs exist' },
      { bit: 56, name: 'ANY_ERROR_CODE', sdm: 'VM entry may deliver a hardware exception with or without an error code, for any vector' },
    ],
  },
  {
    key: 'vmxMisc', prefix: 'VMX_MISC_', width: 64, sdm: 'IA32_VMX_MISC (A.6)',
    fields: [
      { lsb: 0, msb: 4, name: 'PREEMPTION_TIMER_RATE', sdm: 'timer counts down when TSC bit X changes, X = this value' },
      { lsb: 16, msb: 24, name: 'CR3_TARGET_COUNT', sdm: 'number of CR3-target values supported' },
      { lsb: 25, msb: 27, name: 'MAX_MSR_LIST', sdm: 'recommended maximum MSR-list entries is 512 * (N + 1)' },
      { lsb: 32, msb: 63, name: 'MSEG_REVISION_ID', sdm: 'MSEG revision identifier' },
    ],
    bits: [
      { bit: 5, name: 'STORE_EFER_LMA', sdm: 'VM exits store EFER.LMA into the "IA-32e mode guest" VM-entry control' },
      { bit: 6, name: 'ACTIVITY_HLT', sdm: 'activity state HLT supported' },
      { bit: 7, name: 'ACTIVITY_SHUTDOWN', sdm: 'activity state shutdown supported' },
      { bit: 8, name: 'ACTIVITY_WAIT_FOR_SIPI', sdm: 'activity state wait-for-SIPI supported' },
      { bit: 14, name: 'PT_IN_VMX', sdm: 'Intel PT can be used in VMX operation' },
      { bit: 15, name: 'RDMSR_SMBASE_IN_SMM', sdm: 'RDMSR can read IA32_SMBASE in SMM' },
      { bit: 28, name: 'SMM_VMXOFF_BLOCKS_SMI', sdm: 'bit 2 of IA32_SMM_MONITOR_CTL can be set (VMXOFF unblocks SMIs)' },
      { bit: 29, name: 'VMWRITE_ANY_FIELD', sdm: 'VMWRITE can write any supported field, including VM-exit information fields' },
      { bit: 30, name: 'ZERO_LENGTH_INJECTION', sdm: 'VM entry allows injection of software interrupts/exceptions with instruction length 0' },
    ],
  },
  {
    key: 'vmcsEnum', prefix: 'VMX_VMCS_ENUM_', width: 64, sdm: 'IA32_VMX_VMCS_ENUM (A.9)',
    fields: [{ lsb: 1, msb: 9, name: 'MAX_INDEX', sdm: 'highest index value used in any VMCS field encoding' }],
    bits: [],
  },
  {
    key: 'eptVpidCap', prefix: 'EPT_VPID_CAP_', nameFn: 'eptVpidCapName', width: 64, sdm: 'IA32_VMX_EPT_VPID_CAP (A.10)',
    bits: [
      { bit: 0, name: 'EXECUTE_ONLY', sdm: 'execute-only EPT translations' },
      { bit: 6, name: 'PAGE_WALK_LENGTH_4', sdm: 'page-walk length of 4' },
      { bit: 7, name: 'PAGE_WALK_LENGTH_5', sdm: 'page-walk length of 5' },
      { bit: 8, name: 'MEMTYPE_UC', sdm: 'EPT paging-structure memory type uncacheable (UC)' },
      { bit: 14, name: 'MEMTYPE_WB', sdm: 'EPT paging-structure memory type write-back (WB)' },
      { bit: 16, name: 'PDE_2MB_PAGES', sdm: 'EPT PDE can map a 2-MByte page' },
      { bit: 17, name: 'PDPTE_1GB_PAGES', sdm: 'EPT PDPTE can map a 1-GByte page' },
      { bit: 20, name: 'INVEPT', sdm: 'INVEPT instruction supported' },
      { bit: 21, name: 'ACCESSED_DIRTY_FLAGS', sdm: 'accessed and dirty flags for EPT' },
      { bit: 22, name: 'ADVANCED_EPT_VIOLATION_INFO', sdm: 'advanced VM-exit information for EPT violations' },
      { bit: 23, name: 'SUPERVISOR_SHADOW_STACK_CONTROL', sdm: 'supervisor shadow-stack control' },
      { bit: 25, name: 'INVEPT_SINGLE_CONTEXT', sdm: 'single-context INVEPT type' },
      { bit: 26, name: 'INVEPT_ALL_CONTEXT', sdm: 'all-context INVEPT type' },
      { bit: 32, name: 'INVVPID', sdm: 'INVVPID instruction supported' },
      { bit: 40, name: 'INVVPID_INDIVIDUAL_ADDRESS', sdm: 'individual-address INVVPID type' },
      { bit: 41, name: 'INVVPID_SINGLE_CONTEXT', sdm: 'single-context INVVPID type' },
      { bit: 42, name: 'INVVPID_ALL_CONTEXT', sdm: 'all-context INVVPID type' },
      { bit: 43, name: 'INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS', sdm: 'single-context-retaining-globals INVVPID type' },
    ],
    fields: [{ lsb: 48, msb: 53, name: 'MAX_HLAT_PREFIX_SIZE', sdm: 'maximum HLAT prefix size' }],
  },
  {
    key: 'eptp', prefix: 'EPTP_', width: 64, sdm: 'extended-page-table pointer (25.6.11, Table 25-9)',
    bits: [
      { bit: 6, name: 'ACCESSED_DIRTY', sdm: 'enable accessed and dirty flags for EPT (29.3.5)' },
    ],
  },
  {
    key: 'eptEntry', prefix: 'EPT_ENTRY_', width: 64, sdm: 'EPT paging-structure entry (29.3.2, Tables 29-1 to 29-6)',
    bits: [
      { bit: 8, name: 'ACCESSED', sdm: 'accessed flag, when enabled by EPTP bit 6 (29.3.5)' },
      { bit: 9, name: 'DIRTY', sdm: 'dirty flag of an entry that maps a page, when enabled by EPTP bit 6 (29.3.5)' },
    ],
  },
  {
    key: 'cr0', prefix: 'X86_CR0_', width: 32, sdm: 'CR0 (Vol. 3A 2.5)',
    bits: [
      { bit: 0, name: 'PE', sdm: 'Protection Enable' },
      { bit: 1, name: 'MP', sdm: 'Monitor Coprocessor' },
      { bit: 2, name: 'EM', sdm: 'Emulation' },
      { bit: 3, name: 'TS', sdm: 'Task Switched' },
      { bit: 4, name: 'ET', sdm: 'Extension Type' },
      { bit: 5, name: 'NE', sdm: 'Numeric Error' },
      { bit: 16, name: 'WP', sdm: 'Write Protect' },
      { bit: 18, name: 'AM', sdm: 'Alignment Mask' },
      { bit: 29, name: 'NW', sdm: 'Not Write-through' },
      { bit: 30, name: 'CD', sdm: 'Cache Disable' },
      { bit: 31, name: 'PG', sdm: 'Paging' },
    ],
  },
  {
    key: 'cr4', prefix: 'X86_CR4_', width: 32, sdm: 'CR4 (Vol. 3A 2.5)',
    bits: [
      { bit: 0, name: 'VME', sdm: 'Virtual-8086 Mode Extensions' },
      { bit: 1, name: 'PVI', sdm: 'Protected-Mode Virtual Interrupts' },
      { bit: 2, name: 'TSD', sdm: 'Time Stamp Disable' },
      { bit: 3, name: 'DE', sdm: 'Debugging Extensions' },
      { bit: 4, name: 'PSE', sdm: 'Page Size Extensions' },
      { bit: 5, name: 'PAE', sdm: 'Physical Address Extension' },
      { bit: 6, name: 'MCE', sdm: 'Machine-Check Enable' },
      { bit: 7, name: 'PGE', sdm: 'Page Global Enable' },
      { bit: 8, name: 'PCE', sdm: 'Performance-Monitoring Counter Enable' },
      { bit: 9, name: 'OSFXSR', sdm: 'OS support for FXSAVE and FXRSTOR' },
      { bit: 10, name: 'OSXMMEXCPT', sdm: 'OS support for unmasked SIMD FP exceptions' },
      { bit: 11, name: 'UMIP', sdm: 'User-Mode Instruction Prevention' },
      { bit: 12, name: 'LA57', sdm: '57-bit linear addresses' },
      { bit: 13, name: 'VMXE', sdm: 'VMX-Enable' },
      { bit: 14, name: 'SMXE', sdm: 'SMX-Enable' },
      { bit: 16, name: 'FSGSBASE', sdm: 'FSGSBASE-Enable' },
      { bit: 17, name: 'PCIDE', sdm: 'PCID-Enable' },
      { bit: 18, name: 'OSXSAVE', sdm: 'XSAVE and Processor Extended States-Enable' },
      { bit: 19, name: 'KL', sdm: 'Key-Locker-Enable' },
      { bit: 20, name: 'SMEP', sdm: 'SMEP-Enable' },
      { bit: 21, name: 'SMAP', sdm: 'SMAP-Enable' },
      { bit: 22, name: 'PKE', sdm: 'Enable protection keys for user-mode pages' },
      { bit: 23, name: 'CET', sdm: 'Control-flow Enforcement Technology' },
      { bit: 24, name: 'PKS', sdm: 'Enable protection keys for supervisor-mode pages' },
      { bit: 25, name: 'UINTR', sdm: 'User Interrupts Enable' },
    ],
  },
  {
    key: 'xcr0', prefix: 'X86_XCR0_', width: 32, sdm: 'XCR0, the XSAVE state components (Vol. 1 13.1, 13.3)',
    bits: [
      { bit: 0, name: 'X87', sdm: 'x87 state' },
      { bit: 1, name: 'SSE', sdm: 'SSE state' },
      { bit: 2, name: 'AVX', sdm: 'AVX state (upper halves of YMM0-15)' },
      { bit: 9, name: 'PKRU', sdm: 'PKRU state' },
    ],
  },
  {
    key: 'rflags', prefix: 'X86_RFLAGS_', width: 32, sdm: 'RFLAGS (Vol. 1 3.4.3, Vol. 3A 2.3); VMX status: 31.2',
    bits: [
      { bit: 0, name: 'CF', sdm: 'Carry flag (VMfailInvalid)' },
      { bit: 1, name: 'FIXED1', sdm: 'reserved, always 1' },
      { bit: 2, name: 'PF', sdm: 'Parity flag' },
      { bit: 4, name: 'AF', sdm: 'Auxiliary carry flag' },
      { bit: 6, name: 'ZF', sdm: 'Zero flag (VMfailValid)' },
      { bit: 7, name: 'SF', sdm: 'Sign flag' },
      { bit: 8, name: 'TF', sdm: 'Trap flag' },
      { bit: 9, name: 'IF', sdm: 'Interrupt enable flag' },
      { bit: 10, name: 'DF', sdm: 'Direction flag' },
      { bit: 11, name: 'OF', sdm: 'Overflow flag' },
      { bit: 14, name: 'NT', sdm: 'Nested task' },
      { bit: 16, name: 'RF', sdm: 'Resume flag' },
      { bit: 17, name: 'VM', sdm: 'Virtual-8086 mode' },
      { bit: 18, name: 'AC', sdm: 'Alignment check / access control' },
      { bit: 19, name: 'VIF', sdm: 'Virtual interrupt flag' },
      { bit: 20, name: 'VIP', sdm: 'Virtual interrupt pending' },
      { bit: 21, name: 'ID', sdm: 'ID flag' },
    ],
    fields: [{ lsb: 12, msb: 13, name: 'IOPL', sdm: 'I/O privilege level' }],
  },
  {
    key: 'efer', prefix: 'X86_EFER_', width: 32, sdm: 'IA32_EFER (Vol. 3A 2.2.1)',
    bits: [
      { bit: 0, name: 'SCE', sdm: 'SYSCALL enable' },
      { bit: 8, name: 'LME', sdm: 'IA-32e mode enable' },
      { bit: 10, name: 'LMA', sdm: 'IA-32e mode active' },
      { bit: 11, name: 'NXE', sdm: 'Execute-disable bit enable' },
    ],
  },
  {
    key: 'interruptibility', prefix: 'INTERRUPTIBILITY_', width: 32, sdm: 'guest interruptibility state (25.4.2, Table 25-3)',
    bits: [
      { bit: 0, name: 'BLOCKING_BY_STI', sdm: 'Blocking by STI' },
      { bit: 1, name: 'BLOCKING_BY_MOV_SS', sdm: 'Blocking by MOV SS' },
      { bit: 2, name: 'BLOCKING_BY_SMI', sdm: 'Blocking by SMI' },
      { bit: 3, name: 'BLOCKING_BY_NMI', sdm: 'Blocking by NMI' },
      { bit: 4, name: 'ENCLAVE_INTERRUPTION', sdm: 'Enclave interruption' },
    ],
  },
  {
    key: 'segAr', prefix: 'SEG_AR_', width: 32,
    sdm: 'guest segment access-rights fields (25.4.1, Table 25-2); bits 11:8 and 31:17 reserved',
    fields: [
      { lsb: 0, msb: 3, name: 'TYPE', sdm: 'segment type' },
      { lsb: 5, msb: 6, name: 'DPL', sdm: 'descriptor privilege level' },
    ],
    bits: [
      { bit: 4, name: 'S', sdm: 'descriptor type (0 = system; 1 = code or data)' },
      { bit: 7, name: 'P', sdm: 'segment present' },
      { bit: 12, name: 'AVL', sdm: 'available for use by system software' },
      { bit: 13, name: 'L', sdm: '64-bit mode active (CS only)' },
      { bit: 14, name: 'DB', sdm: 'default operation size (0 = 16-bit segment; 1 = 32-bit segment)' },
      { bit: 15, name: 'G', sdm: 'granularity' },
      { bit: 16, name: 'UNUSABLE', sdm: 'segment unusable (0 = usable; 1 = unusable)' },
    ],
  },
  {
    key: 'pendingDbg', prefix: 'PENDING_DBG_', width: 64,
    sdm: 'guest pending debug exceptions (25.4.2, Table 25-4); bits 11:4, 13, 15 and 63:17 reserved',
    fields: [{ lsb: 0, msb: 3, name: 'B3_B0', sdm: 'breakpoint conditions met' }],
    bits: [
      { bit: 12, name: 'ENABLED_BREAKPOINT', sdm: 'at least one enabled data or I/O breakpoint met its condition' },
      { bit: 14, name: 'BS', sdm: 'single-step debug exception' },
      { bit: 16, name: 'RTM', sdm: 'debug exception or breakpoint inside an RTM region' },
    ],
  },
  {
    key: 'debugctl', prefix: 'X86_DEBUGCTL_', width: 64, sdm: 'IA32_DEBUGCTL (Vol. 3B 18.4.1, Vol. 4 Table 2-2)',
    bits: [
      { bit: 0, name: 'LBR', sdm: 'last branch record' },
      { bit: 1, name: 'BTF', sdm: 'single-step on branches' },
      { bit: 15, name: 'RTM', sdm: 'advanced debugging of RTM regions (if CPUID.(EAX=07H,ECX=0):EBX[11])' },
    ],
  },
  {
    key: 'intrInfo', prefix: 'INTR_INFO_', width: 32,
    sdm: 'interruption-information format shared by the VM-entry, VM-exit and IDT-vectoring fields (25.8.3, 25.9.2, 25.9.3)',
    fields: [
      { lsb: 0, msb: 7, name: 'VECTOR', sdm: 'vector of interrupt or exception' },
      { lsb: 8, msb: 10, name: 'TYPE', sdm: 'interruption type (INTR_TYPE_*)' },
    ],
    bits: [
      { bit: 11, name: 'DELIVER_ERROR_CODE', sdm: 'deliver (entry) / error code valid (exit)' },
      { bit: 12, name: 'NMI_UNBLOCKING_IRET', sdm: 'NMI unblocking due to IRET (exit information)' },
      { bit: 31, name: 'VALID', sdm: 'valid' },
    ],
  },
  {
    key: 'insnInfo', prefix: 'INSN_INFO_', width: 32,
    sdm: 'VM-exit instruction-information field for INVEPT/INVPCID/INVVPID (28.2.5 Table 28-9), VMCLEAR/VMPTRLD/VMPTRST/VMXON/XRSTORS/XSAVES (Table 28-13) and VMREAD/VMWRITE (Table 28-14)',
    fields: [
      { lsb: 0, msb: 1, name: 'SCALING', sdm: 'index scaling: 0 none, 1 by 2, 2 by 4, 3 by 8' },
      { lsb: 3, msb: 6, name: 'REG1', sdm: 'VMREAD/VMWRITE register operand (with REG_OPERAND)' },
      { lsb: 7, msb: 9, name: 'ADDR_SIZE', sdm: 'address size: 0 16-bit, 1 32-bit, 2 64-bit' },
      { lsb: 15, msb: 17, name: 'SEGMENT', sdm: 'segment register: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS' },
      { lsb: 18, msb: 21, name: 'INDEX_REG', sdm: 'index register (register-number order RAX..R15)' },
      { lsb: 23, msb: 26, name: 'BASE_REG', sdm: 'base register' },
      { lsb: 28, msb: 31, name: 'REG2', sdm: 'INVEPT/INVVPID type register, VMREAD/VMWRITE field-encoding register' },
    ],
    bits: [
      { bit: 10, name: 'REG_OPERAND', sdm: 'VMREAD/VMWRITE: register operand (0 = memory); 0 for the others' },
      { bit: 22, name: 'INDEX_INVALID', sdm: 'no index register' },
      { bit: 27, name: 'BASE_INVALID', sdm: 'no base register' },
    ],
  },
  {
    key: 'crQual', prefix: 'CR_QUAL_', width: 32,
    sdm: 'exit qualification of a control-register access, exit 28 (28.2.1, Table 28-3); bits 7, 15:12 and 63:32 not defined',
    fields: [
      { lsb: 0, msb: 3, name: 'CR', sdm: 'number of the control register (0 for CLTS and LMSW)' },
      { lsb: 4, msb: 5, name: 'ACCESS', sdm: 'access type (CR_ACCESS_*)' },
      { lsb: 8, msb: 11, name: 'REG', sdm: 'MOV CR: the general-purpose register (register-number order RAX..R15)' },
      { lsb: 16, msb: 31, name: 'LMSW_SOURCE', sdm: 'LMSW: the source data' },
    ],
    bits: [
      { bit: 6, name: 'LMSW_MEMORY', sdm: 'LMSW operand type: 0 register, 1 memory' },
    ],
  },
];

// Small enumerations: named values that are not bit masks.
export const VALUES = [
  { group: 'VMX-abort indicator, written at offset 4 of the VMCS region (28.7)', prefix: 'VMX_ABORT_', values: [
    { name: 'SAVE_GUEST_MSR', value: 1, sdm: 'failure saving guest MSRs (28.4)' },
    { name: 'HOST_PDPTE', value: 2, sdm: 'host checking of the PDPTEs failed' },
    { name: 'VMCS_CORRUPT', value: 3, sdm: 'the current VMCS has been corrupted' },
    { name: 'LOAD_HOST_MSR', value: 4, sdm: 'failure loading host MSRs (28.6)' },
    { name: 'MACHINE_CHECK', value: 5, sdm: 'machine-check event during VM exit' },
    { name: 'HOST_LONG_MODE', value: 6, sdm: 'IA-32e mode before the VM exit and "host address-space size" 0' },
  ] },
  { group: 'memory types for VMX structures and EPT (A.1, 29.3.7)', prefix: 'VMX_MEMTYPE_', values: [
    { name: 'UC', value: 0, sdm: 'uncacheable' },
    { name: 'WB', value: 6, sdm: 'write-back' },
  ] },
  { group: 'guest activity state (25.4.2)', prefix: 'ACTIVITY_STATE_', values: [
    { name: 'ACTIVE', value: 0, sdm: 'Active' },
    { name: 'HLT', value: 1, sdm: 'HLT' },
    { name: 'SHUTDOWN', value: 2, sdm: 'Shutdown' },
    { name: 'WAIT_FOR_SIPI', value: 3, sdm: 'Wait-for-SIPI' },
  ] },
  { group: 'interruption type, bits 10:8 of INTR_INFO (25.8.3)', prefix: 'INTR_TYPE_', values: [
    { name: 'EXTERNAL_INTERRUPT', value: 0, sdm: 'External interrupt' },
    { name: 'NMI', value: 2, sdm: 'Non-maskable interrupt (NMI)' },
    { name: 'HARDWARE_EXCEPTION', value: 3, sdm: 'Hardware exception' },
    { name: 'SOFTWARE_INTERRUPT', value: 4, sdm: 'Software interrupt' },
    { name: 'PRIVILEGED_SOFTWARE_EXCEPTION', value: 5, sdm: 'Privileged software exception' },
    { name: 'SOFTWARE_EXCEPTION', value: 6, sdm: 'Software exception' },
    { name: 'OTHER_EVENT', value: 7, sdm: 'Other event' },
  ] },
  { group: 'access type, bits 5:4 of a control-register access exit qualification (28.2.1, Table 28-3)', prefix: 'CR_ACCESS_', values: [
    { name: 'MOV_TO_CR', value: 0, sdm: 'MOV to CR' },
    { name: 'MOV_FROM_CR', value: 1, sdm: 'MOV from CR' },
    { name: 'CLTS', value: 2, sdm: 'CLTS' },
    { name: 'LMSW', value: 3, sdm: 'LMSW' },
  ] },
  { group: 'INVEPT types (31.3 INVEPT)', prefix: 'INVEPT_TYPE_', values: [
    { name: 'SINGLE_CONTEXT', value: 1, sdm: 'Single-context invalidation' },
    { name: 'ALL_CONTEXT', value: 2, sdm: 'Global (all-context) invalidation' },
  ] },
  { group: 'INVVPID types (31.3 INVVPID)', prefix: 'INVVPID_TYPE_', values: [
    { name: 'INDIVIDUAL_ADDRESS', value: 0, sdm: 'Individual-address invalidation' },
    { name: 'SINGLE_CONTEXT', value: 1, sdm: 'Single-context invalidation' },
    { name: 'ALL_CONTEXT', value: 2, sdm: 'All-contexts invalidation' },
    { name: 'SINGLE_CONTEXT_RETAINING_GLOBALS', value: 3, sdm: 'Single-context invalidation, retaining global translations' },
  ] },
  { group: 'exit qualification of a VM-entry failure due to invalid guest state (27.8)', prefix: 'ENTRY_FAIL_QUAL_', values: [
    { name: 'DEFAULT', value: 0, sdm: 'in most cases' },
    { name: 'PDPTE', value: 2, sdm: 'failure was due to a problem loading the PDPTEs (27.3.1.6)' },
    { name: 'NMI_STI', value: 3, sdm: 'attempt to inject an NMI into a guest that is blocking events through the STI blocking bit (27.3.1.5)' },
    { name: 'VMCS_LINK_POINTER', value: 4, sdm: 'failure was due to an invalid VMCS link pointer (27.3.1.5)' },
  ] },
  { group: 'VMCS region (25.2)', prefix: 'VMCS_', values: [
    { name: 'SHADOW_INDICATOR', value: 0x80000000, sdm: 'bit 31 of the first dword of a VMCS region: shadow VMCS' },
  ] },
  // Not an SDM structure: the vCPU's register block in linear memory that boot/entry/vmenter.S,
  // boot/imports/vmx.c and kernel/vm/vcpu.ts share. General registers in hardware register-number
  // order so that an instruction-information register number indexes it directly.
  { group: 'vCPU register block (boot/entry/vmenter.S; 64-byte aligned)', prefix: 'REGS_', values: [
    { name: 'RAX', value: 0, sdm: 'guest RAX, register number 0 (exit-qualification order)' },
    { name: 'RCX', value: 8, sdm: 'guest RCX, register number 1 (exit-qualification order)' },
    { name: 'RDX', value: 16, sdm: 'guest RDX, register number 2 (exit-qualification order)' },
    { name: 'RBX', value: 24, sdm: 'guest RBX, register number 3 (exit-qualification order)' },
    { name: 'RSP', value: 32, sdm: 'unused: RSP is GUEST_RSP in the VMCS (25.4.1)' },
    { name: 'RBP', value: 40, sdm: 'guest RBP, register number 5 (exit-qualification order)' },
    { name: 'RSI', value: 48, sdm: 'guest RSI, register number 6 (exit-qualification order)' },
    { name: 'RDI', value: 56, sdm: 'guest RDI, register number 7 (exit-qualification order)' },
    { name: 'R8', value: 64, sdm: 'guest R8, register number 8 (exit-qualification order)' },
    { name: 'R9', value: 72, sdm: 'guest R9, register number 9 (exit-qualification order)' },
    { name: 'R10', value: 80, sdm: 'guest R10, register number 10 (exit-qualification order)' },
    { name: 'R11', value: 88, sdm: 'guest R11, register number 11 (exit-qualification order)' },
    { name: 'R12', value: 96, sdm: 'guest R12, register number 12 (exit-qualification order)' },
    { name: 'R13', value: 104, sdm: 'guest R13, register number 13 (exit-qualification order)' },
    { name: 'R14', value: 112, sdm: 'guest R14, register number 14 (exit-qualification order)' },
    { name: 'R15', value: 120, sdm: 'guest R15, register number 15 (exit-qualification order)' },
    { name: 'CR2', value: 128, sdm: 'guest CR2 (VMX does not switch CR2)' },
    { name: 'LAUNCHED', value: 136, sdm: 'u64: 1 once VMLAUNCH succeeded on the current VMCS (VMRESUME next), 0 after VMCLEAR; set by the entry wrapper (vmx.c)' },
    { name: 'EXITS', value: 144, sdm: 'u64: VM exits of the vCPU, counted by the entry wrapper (vmx.c)' },
    { name: 'FX', value: 256, sdm: 'the guest\'s 512-byte FXSAVE area (16-byte aligned)' },
    { name: 'BYTES', value: 768, sdm: 'size of the block' },
  ] },
  // Not an SDM structure: a field list for the bulk copies between the current VMCS and linear
  // memory (boot/imports/vmx.c readfields/writefields, kernel/nested/fieldlist.ts). Three
  // parallel arrays indexed by entry, so that the copy loops load what they need with one
  // instruction each instead of decoding a packed entry (those loops run ~100 times per nested
  // round trip).
  { group: 'VMCS field list for the bulk copies (boot/imports/vmx.c; at most 64 entries)', prefix: 'FL_', values: [
    { name: 'MAX', value: 64, sdm: 'entries at most (the selection is a u64 mask)' },
    { name: 'ENC', value: 0, sdm: 'u16[64]: the field encoding of each entry (a full encoding, Appendix B)' },
    { name: 'OFF', value: 128, sdm: 'u16[64]: the byte offset of each entry\'s value from the copy\'s base (below 4096)' },
    { name: 'WMASK', value: 256, sdm: 'u64[64]: the mask of each entry\'s width (16, 32 or 64 bits; natural width 64)' },
    { name: 'BYTES', value: 768, sdm: 'size of a list' },
  ] },
];

// ---------------------------------------------------------------------------------------------
// 6. VM-instruction error numbers (Vol. 3C 31.4, Table 31-1). 14, 21 and 27 are not used.
// ---------------------------------------------------------------------------------------------
export const VMX_ERRORS = [
  { number: 1, name: 'VMCALL_IN_VMX_ROOT_OPERATION', sdm: 'VMCALL executed in VMX root operation' },
  { number: 2, name: 'VMCLEAR_INVALID_ADDRESS', sdm: 'VMCLEAR with invalid physical address' },
  { number: 3, name: 'VMCLEAR_VMXON_POINTER', sdm: 'VMCLEAR with VMXON pointer' },
  { number: 4, name: 'VMLAUNCH_NONCLEAR_VMCS', sdm: 'VMLAUNCH with non-clear VMCS' },
  { number: 5, name: 'VMRESUME_NONLAUNCHED_VMCS', sdm: 'VMRESUME with non-launched VMCS' },
  { number: 6, name: 'VMRESUME_AFTER_VMXOFF', sdm: 'VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)' },
  { number: 7, name: 'ENTRY_INVALID_CONTROL_FIELD', sdm: 'VM entry with invalid control field(s)' },
  { number: 8, name: 'ENTRY_INVALID_HOST_STATE_FIELD', sdm: 'VM entry with invalid host-state field(s)' },
  { number: 9, name: 'VMPTRLD_INVALID_ADDRESS', sdm: 'VMPTRLD with invalid physical address' },
  { number: 10, name: 'VMPTRLD_VMXON_POINTER', sdm: 'VMPTRLD with VMXON pointer' },
  { number: 11, name: 'VMPTRLD_INCORRECT_REVISION_ID', sdm: 'VMPTRLD with incorrect VMCS revision identifier' },
  { number: 12, name: 'UNSUPPORTED_VMCS_COMPONENT', sdm: 'VMREAD/VMWRITE from/to unsupported VMCS component' },
  { number: 13, name: 'VMWRITE_READ_ONLY_VMCS_COMPONENT', sdm: 'VMWRITE to read-only VMCS component' },
  { number: 15, name: 'VMXON_IN_VMX_ROOT_OPERATION', sdm: 'VMXON executed in VMX root operation' },
  { number: 16, name: 'ENTRY_INVALID_EXECUTIVE_VMCS_POINTER', sdm: 'VM entry with invalid executive-VMCS pointer' },
  { number: 17, name: 'ENTRY_NONLAUNCHED_EXECUTIVE_VMCS', sdm: 'VM entry with non-launched executive VMCS' },
  { number: 18, name: 'ENTRY_EXECUTIVE_VMCS_POINTER_NOT_VMXON_POINTER', sdm: 'VM entry with executive-VMCS pointer not VMXON pointer (when attempting to deactivate the dual-monitor treatment of SMIs and SMM)' },
  { number: 19, name: 'VMCALL_NONCLEAR_VMCS', sdm: 'VMCALL with non-clear VMCS (when attempting to activate the dual-monitor treatment of SMIs and SMM)' },
  { number: 20, name: 'VMCALL_INVALID_VM_EXIT_CONTROL_FIELDS', sdm: 'VMCALL with invalid VM-exit control fields' },
  { number: 22, name: 'VMCALL_INCORRECT_MSEG_REVISION_ID', sdm: 'VMCALL with incorrect MSEG revision identifier (when attempting to activate the dual-monitor treatment of SMIs and SMM)' },
  { number: 23, name: 'VMXOFF_UNDER_DUAL_MONITOR_TREATMENT', sdm: 'VMXOFF under dual-monitor treatment of SMIs and SMM' },
  { number: 24, name: 'VMCALL_INVALID_SMM_MONITOR_FEATURES', sdm: 'VMCALL with invalid SMM-monitor features (when attempting to activate the dual-monitor treatment of SMIs and SMM)' },
  { number: 25, name: 'ENTRY_INVALID_EXECUTIVE_VMCS_EXEC_CONTROLS', sdm: 'VM entry with invalid VM-execution control fields in executive VMCS (when attempting to return from SMM)' },
  { number: 26, name: 'ENTRY_EVENTS_BLOCKED_BY_MOV_SS', sdm: 'VM entry with events blocked by MOV SS' },
  { number: 28, name: 'INVALID_OPERAND_TO_INVEPT_INVVPID', sdm: 'Invalid operand to INVEPT/INVVPID' },
];

// ---------------------------------------------------------------------------------------------
// 6b. Hyper-V enlightened VMCS, version 1 (Hyper-V TLFS, "Nested Virtualization" / "Enlightened
//    VMCS" and the data type HV_VMX_ENLIGHTENED_VMCS; Linux calls it struct hv_enlightened_vmcs,
//    arch/x86/include/asm/hyperv-tlfs.h, whose 2022 revision names the fields the TLFS first left
//    reserved). An L1 that uses it keeps its VMCS for L2 in this 1024-byte layout in its own
//    memory; L0 reads only the groups whose clean-field bit (HvCleanFields, offset 824) is 0.
//
//    fields: every field of the structure, in structure order, with its byte offset and size as
//      the TLFS gives them (natural alignment: the TLFS declares the structure with plain
//      UINT16/32/64 members, so a UINT64 after an odd number of UINT16s starts at the next
//      multiple of 8 — e.g. HostPat at 24 after HostTrSelector at 20):
//      - vmcs: the VMCS field it stands for (a name of VMCS_FIELDS; its width must be `size`),
//        or name: a synthetic field (no VMCS encoding) named EVMCS_<name>;
//      - clean: the clean-field group whose bit covers it (cleanGroups below), or
//          'NONE' — in no group: read at every enlightened entry (guest RIP, the TPR threshold;
//                   the exit-information fields, which L0 writes and L1 only reads), or
//          'ALL'  — the TLFS names no group (Linux's table gives HV_VMX_ENLIGHTENED_CLEAN_FIELD_ALL:
//                   the MSR-load/store lists, the #PF error-code mask/match, the CR3 targets,
//                   which Hyper-V does not support): read whenever any clean bit is 0;
//      - update2022: a field the TLFS first listed as reserved (Rsvd5/6/7), named by the 2022
//        update that Hyper-V announces with CPUID 4000000AH EBX bit 0; not offered here.
//    reserved: the padding and reserved members (ReservedZ), so that fields + reserved tile the
//      structure exactly (the generator checks it).
//    vpAssist: the part of the VP assist page (HV_VP_ASSIST_PAGE, TLFS "Virtual Processor Assist
//      Page") that enlightened entry uses: EnlightenVmEntry (a BOOLEAN at 28H) and
//      CurrentNestedVmcs (the eVMCS's GPA at 30H); Linux's struct hv_vp_assist_page puts
//      enlighten_vmentry at 28H as a u32 and current_nested_vmcs at 30H.
// ---------------------------------------------------------------------------------------------
export const EVMCS = {
  version: 1, // 4000000AH EAX[7:0] and [15:8]: lowest and highest eVMCS version
  bytes: 1024,
  cleanGroups: [
    { name: 'IO_BITMAP', bit: 0 },
    { name: 'MSR_BITMAP', bit: 1 },
    { name: 'CONTROL_GRP2', bit: 2 },
    { name: 'CONTROL_GRP1', bit: 3 },
    { name: 'CONTROL_PROC', bit: 4 },
    { name: 'CONTROL_EVENT', bit: 5 },
    { name: 'CONTROL_ENTRY', bit: 6 },
    { name: 'CONTROL_EXCPN', bit: 7 },
    { name: 'CRDR', bit: 8 },
    { name: 'CONTROL_XLAT', bit: 9 },
    { name: 'GUEST_BASIC', bit: 10 },
    { name: 'GUEST_GRP1', bit: 11 },
    { name: 'GUEST_GRP2', bit: 12 },
    { name: 'HOST_POINTER', bit: 13 },
    { name: 'HOST_GRP1', bit: 14 },
    { name: 'ENLIGHTENMENTSCONTROL', bit: 15 },
  ],
  // The bits of EnlightenmentsControl (offset 836; TLFS HV_VMX_ENLIGHTENED_VMCS, Linux's
  // hv_enlightenments_control): bit 0 NestedFlushVirtualHypercall (not offered: no TLB-flush
  // hypercalls), bit 1 MsrBitmap, the enlightened MSR bitmap (TLFS "Enlightened MSR Bitmap":
  // "When enabled, the L0 hypervisor does not monitor the MSR bitmaps for changes. Instead, the
  // L1 hypervisor must invalidate the corresponding clean field after making changes to one of
  // the MSR bitmaps"; offered through CPUID 4000000AH EAX bit 19).
  enlightenments: [
    { name: 'NESTED_FLUSH_VIRTUAL_HYPERCALL', bit: 0 },
    { name: 'MSR_BITMAP', bit: 1 },
  ],
  fields: [
    { name: 'REVISION_ID', offset: 0, size: 4, clean: 'NONE', tlfs: 'VersionNumber' },
    { name: 'ABORT', offset: 4, size: 4, clean: 'NONE', tlfs: 'AbortIndicator' },
    { vmcs: 'HOST_ES_SELECTOR', offset: 8, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_CS_SELECTOR', offset: 10, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_SS_SELECTOR', offset: 12, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_DS_SELECTOR', offset: 14, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_FS_SELECTOR', offset: 16, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_GS_SELECTOR', offset: 18, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_TR_SELECTOR', offset: 20, size: 2, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_IA32_PAT', offset: 24, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_IA32_EFER', offset: 32, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_CR0', offset: 40, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_CR3', offset: 48, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_CR4', offset: 56, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_IA32_SYSENTER_ESP', offset: 64, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_IA32_SYSENTER_EIP', offset: 72, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_RIP', offset: 80, size: 8, clean: 'HOST_GRP1' },
    { vmcs: 'HOST_IA32_SYSENTER_CS', offset: 88, size: 4, clean: 'HOST_GRP1' },
    { vmcs: 'PIN_BASED_VM_EXEC_CONTROL', offset: 92, size: 4, clean: 'CONTROL_GRP1' },
    { vmcs: 'VM_EXIT_CONTROL', offset: 96, size: 4, clean: 'CONTROL_GRP1' },
    { vmcs: 'SECONDARY_PROC_BASED_VM_EXEC_CONTROL', offset: 100, size: 4, clean: 'CONTROL_GRP1' },
    { vmcs: 'IO_BITMAP_A', offset: 104, size: 8, clean: 'IO_BITMAP' },
    { vmcs: 'IO_BITMAP_B', offset: 112, size: 8, clean: 'IO_BITMAP' },
    { vmcs: 'MSR_BITMAPS', offset: 120, size: 8, clean: 'MSR_BITMAP' },
    { vmcs: 'GUEST_ES_SELECTOR', offset: 128, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_CS_SELECTOR', offset: 130, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_SS_SELECTOR', offset: 132, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_DS_SELECTOR', offset: 134, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_FS_SELECTOR', offset: 136, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_GS_SELECTOR', offset: 138, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_LDTR_SELECTOR', offset: 140, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_TR_SELECTOR', offset: 142, size: 2, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_ES_LIMIT', offset: 144, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_CS_LIMIT', offset: 148, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_SS_LIMIT', offset: 152, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_DS_LIMIT', offset: 156, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_FS_LIMIT', offset: 160, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_GS_LIMIT', offset: 164, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_LDTR_LIMIT', offset: 168, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_TR_LIMIT', offset: 172, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_GDTR_LIMIT', offset: 176, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_IDTR_LIMIT', offset: 180, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_ES_ACCESS_RIGHTS', offset: 184, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_CS_ACCESS_RIGHTS', offset: 188, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_SS_ACCESS_RIGHTS', offset: 192, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_DS_ACCESS_RIGHTS', offset: 196, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_FS_ACCESS_RIGHTS', offset: 200, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_GS_ACCESS_RIGHTS', offset: 204, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_LDTR_ACCESS_RIGHTS', offset: 208, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_TR_ACCESS_RIGHTS', offset: 212, size: 4, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_ES_BASE', offset: 216, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_CS_BASE', offset: 224, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_SS_BASE', offset: 232, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_DS_BASE', offset: 240, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_FS_BASE', offset: 248, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_GS_BASE', offset: 256, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_LDTR_BASE', offset: 264, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_TR_BASE', offset: 272, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_GDTR_BASE', offset: 280, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'GUEST_IDTR_BASE', offset: 288, size: 8, clean: 'GUEST_GRP2' },
    { vmcs: 'VM_EXIT_MSR_STORE_ADDRESS', offset: 320, size: 8, clean: 'ALL' },
    { vmcs: 'VM_EXIT_MSR_LOAD_ADDRESS', offset: 328, size: 8, clean: 'ALL' },
    { vmcs: 'VM_ENTRY_MSR_LOAD_ADDRESS', offset: 336, size: 8, clean: 'ALL' },
    { vmcs: 'CR3_TARGET_VALUE0', offset: 344, size: 8, clean: 'ALL' },
    { vmcs: 'CR3_TARGET_VALUE1', offset: 352, size: 8, clean: 'ALL' },
    { vmcs: 'CR3_TARGET_VALUE2', offset: 360, size: 8, clean: 'ALL' },
    { vmcs: 'CR3_TARGET_VALUE3', offset: 368, size: 8, clean: 'ALL' },
    { vmcs: 'PAGE_FAULT_ERROR_CODE_MASK', offset: 376, size: 4, clean: 'ALL' },
    { vmcs: 'PAGE_FAULT_ERROR_CODE_MATCH', offset: 380, size: 4, clean: 'ALL' },
    { vmcs: 'CR3_TARGET_COUNT', offset: 384, size: 4, clean: 'ALL' },
    { vmcs: 'VM_EXIT_MSR_STORE_COUNT', offset: 388, size: 4, clean: 'ALL' },
    { vmcs: 'VM_EXIT_MSR_LOAD_COUNT', offset: 392, size: 4, clean: 'ALL' },
    { vmcs: 'VM_ENTRY_MSR_LOAD_COUNT', offset: 396, size: 4, clean: 'ALL' },
    { vmcs: 'TSC_OFFSET', offset: 400, size: 8, clean: 'CONTROL_GRP2' },
    { vmcs: 'VIRTUAL_APIC_ADDRESS', offset: 408, size: 8, clean: 'CONTROL_GRP2' },
    { vmcs: 'VMCS_LINK_POINTER', offset: 416, size: 8, clean: 'GUEST_GRP1', tlfs: 'GuestWorkingVmcsPtr' },
    { vmcs: 'GUEST_IA32_DEBUGCTL', offset: 424, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_IA32_PAT', offset: 432, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_IA32_EFER', offset: 440, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_PDPTE0', offset: 448, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_PDPTE1', offset: 456, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_PDPTE2', offset: 464, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_PDPTE3', offset: 472, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_PENDING_DEBUG_EXCEPTIONS', offset: 480, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_IA32_SYSENTER_ESP', offset: 488, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_IA32_SYSENTER_EIP', offset: 496, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_ACTIVITY_STATE', offset: 504, size: 4, clean: 'GUEST_GRP1', tlfs: 'GuestSleepState' },
    { vmcs: 'GUEST_IA32_SYSENTER_CS', offset: 508, size: 4, clean: 'GUEST_GRP1' },
    { vmcs: 'CR0_GUEST_HOST_MASK', offset: 512, size: 8, clean: 'CRDR' },
    { vmcs: 'CR4_GUEST_HOST_MASK', offset: 520, size: 8, clean: 'CRDR' },
    { vmcs: 'CR0_READ_SHADOW', offset: 528, size: 8, clean: 'CRDR' },
    { vmcs: 'CR4_READ_SHADOW', offset: 536, size: 8, clean: 'CRDR' },
    { vmcs: 'GUEST_CR0', offset: 544, size: 8, clean: 'CRDR' },
    { vmcs: 'GUEST_CR3', offset: 552, size: 8, clean: 'CRDR' },
    { vmcs: 'GUEST_CR4', offset: 560, size: 8, clean: 'CRDR' },
    { vmcs: 'GUEST_DR7', offset: 568, size: 8, clean: 'CRDR' },
    { vmcs: 'HOST_FS_BASE', offset: 576, size: 8, clean: 'HOST_POINTER' },
    { vmcs: 'HOST_GS_BASE', offset: 584, size: 8, clean: 'HOST_POINTER' },
    { vmcs: 'HOST_TR_BASE', offset: 592, size: 8, clean: 'HOST_POINTER' },
    { vmcs: 'HOST_GDTR_BASE', offset: 600, size: 8, clean: 'HOST_POINTER' },
    { vmcs: 'HOST_IDTR_BASE', offset: 608, size: 8, clean: 'HOST_POINTER' },
    { vmcs: 'HOST_RSP', offset: 616, size: 8, clean: 'HOST_POINTER' },
    { vmcs: 'EPT_POINTER', offset: 624, size: 8, clean: 'CONTROL_XLAT', tlfs: 'EptRoot' },
    { vmcs: 'VIRTUAL_PROCESSOR_ID', offset: 632, size: 2, clean: 'CONTROL_XLAT' },
    { vmcs: 'GUEST_PHYSICAL_ADDRESS', offset: 680, size: 8, clean: 'NONE', tlfs: 'ExitEptFaultGpa' },
    { vmcs: 'VM_INSTRUCTION_ERROR', offset: 688, size: 4, clean: 'NONE' },
    { vmcs: 'VM_EXIT_REASON', offset: 692, size: 4, clean: 'NONE' },
    { vmcs: 'VM_EXIT_INTERRUPTION_INFO', offset: 696, size: 4, clean: 'NONE' },
    { vmcs: 'VM_EXIT_INTERRUPTION_ERROR_CODE', offset: 700, size: 4, clean: 'NONE' },
    { vmcs: 'IDT_VECTORING_INFO', offset: 704, size: 4, clean: 'NONE' },
    { vmcs: 'IDT_VECTORING_ERROR_CODE', offset: 708, size: 4, clean: 'NONE' },
    { vmcs: 'VM_EXIT_INSTRUCTION_LENGTH', offset: 712, size: 4, clean: 'NONE' },
    { vmcs: 'VM_EXIT_INSTRUCTION_INFO', offset: 716, size: 4, clean: 'NONE' },
    { vmcs: 'EXIT_QUALIFICATION', offset: 720, size: 8, clean: 'NONE' },
    { vmcs: 'IO_RCX', offset: 728, size: 8, clean: 'NONE' },
    { vmcs: 'IO_RSI', offset: 736, size: 8, clean: 'NONE' },
    { vmcs: 'IO_RDI', offset: 744, size: 8, clean: 'NONE' },
    { vmcs: 'IO_RIP', offset: 752, size: 8, clean: 'NONE' },
    { vmcs: 'GUEST_LINEAR_ADDRESS', offset: 760, size: 8, clean: 'NONE' },
    { vmcs: 'GUEST_RSP', offset: 768, size: 8, clean: 'GUEST_BASIC' },
    { vmcs: 'GUEST_RFLAGS', offset: 776, size: 8, clean: 'GUEST_BASIC' },
    { vmcs: 'GUEST_INTERRUPTIBILITY_STATE', offset: 784, size: 4, clean: 'GUEST_BASIC' },
    { vmcs: 'PRIMARY_PROC_BASED_VM_EXEC_CONTROL', offset: 788, size: 4, clean: 'CONTROL_PROC' },
    { vmcs: 'EXCEPTION_BITMAP', offset: 792, size: 4, clean: 'CONTROL_EXCPN' },
    { vmcs: 'VM_ENTRY_CONTROL', offset: 796, size: 4, clean: 'CONTROL_ENTRY' },
    { vmcs: 'VM_ENTRY_INTERRUPTION_INFO', offset: 800, size: 4, clean: 'CONTROL_EVENT' },
    { vmcs: 'VM_ENTRY_EXCEPTION_ERROR_CODE', offset: 804, size: 4, clean: 'CONTROL_EVENT' },
    { vmcs: 'VM_ENTRY_INSTRUCTION_LENGTH', offset: 808, size: 4, clean: 'CONTROL_EVENT' },
    { vmcs: 'TPR_THRESHOLD', offset: 812, size: 4, clean: 'NONE' },
    { vmcs: 'GUEST_RIP', offset: 816, size: 8, clean: 'NONE' },
    { name: 'CLEAN_FIELDS', offset: 824, size: 4, clean: 'NONE', tlfs: 'CleanFields' },
    { name: 'SYNTHETIC_CONTROLS', offset: 832, size: 4, clean: 'ALL', tlfs: 'SyntheticControls' },
    { name: 'ENLIGHTENMENTS_CONTROL', offset: 836, size: 4, clean: 'ENLIGHTENMENTSCONTROL', tlfs: 'EnlightenmentsControl (bit 0 NestedFlushVirtualHypercall, bit 1 MsrBitmap)' },
    { name: 'VP_ID', offset: 840, size: 4, clean: 'ENLIGHTENMENTSCONTROL', tlfs: 'VpId' },
    { name: 'VM_ID', offset: 848, size: 8, clean: 'ENLIGHTENMENTSCONTROL', tlfs: 'VmId' },
    { name: 'PARTITION_ASSIST_PAGE', offset: 856, size: 8, clean: 'ENLIGHTENMENTSCONTROL', tlfs: 'PartitionAssistPage' },
    { vmcs: 'GUEST_IA32_BNDCFGS', offset: 896, size: 8, clean: 'GUEST_GRP1' },
    { vmcs: 'GUEST_IA32_PERF_GLOBAL_CTRL', offset: 904, size: 8, clean: 'GUEST_GRP1', update2022: true },
    { vmcs: 'GUEST_IA32_S_CET', offset: 912, size: 8, clean: 'GUEST_GRP1', update2022: true },
    { vmcs: 'GUEST_SSP', offset: 920, size: 8, clean: 'GUEST_BASIC', update2022: true },
    { vmcs: 'GUEST_IA32_INTERRUPT_SSP_TABLE_ADDR', offset: 928, size: 8, clean: 'GUEST_GRP1', update2022: true },
    { vmcs: 'GUEST_IA32_LBR_CTL', offset: 936, size: 8, clean: 'GUEST_GRP1', update2022: true },
    { vmcs: 'XSS_EXITING_BITMAP', offset: 960, size: 8, clean: 'CONTROL_GRP2' },
    { vmcs: 'ENCLS_EXITING_BITMAP', offset: 968, size: 8, clean: 'CONTROL_GRP2' },
    { vmcs: 'HOST_IA32_PERF_GLOBAL_CTRL', offset: 976, size: 8, clean: 'HOST_GRP1', update2022: true },
    { vmcs: 'TSC_MULTIPLIER', offset: 984, size: 8, clean: 'CONTROL_GRP2', update2022: true },
    { vmcs: 'HOST_IA32_S_CET', offset: 992, size: 8, clean: 'HOST_GRP1', update2022: true },
    { vmcs: 'HOST_SSP', offset: 1000, size: 8, clean: 'HOST_GRP1', update2022: true },
    { vmcs: 'HOST_IA32_INTERRUPT_SSP_TABLE_ADDR', offset: 1008, size: 8, clean: 'HOST_GRP1', update2022: true },
  ],
  reserved: [
    { offset: 22, size: 2, tlfs: 'alignment of HostPat' },
    { offset: 296, size: 24, tlfs: 'Rsvd1[3]' },
    { offset: 634, size: 6, tlfs: 'Rsvd2[3]' },
    { offset: 640, size: 40, tlfs: 'Rsvd3[5]' },
    { offset: 828, size: 4, tlfs: 'Rsvd4' },
    { offset: 844, size: 4, tlfs: 'alignment of VmId' },
    { offset: 864, size: 32, tlfs: 'Rsvd5[4]' },
    { offset: 944, size: 16, tlfs: 'Rsvd6 after the 2022 update' },
    { offset: 1016, size: 8, tlfs: 'Rsvd7 after the 2022 update' },
  ],
  vpAssist: [
    { name: 'APIC_ASSIST', offset: 0x00, size: 4, tlfs: 'ApicAssist' },
    { name: 'VTL_CONTROL', offset: 0x08, size: 24, tlfs: 'VtlControl (HV_VP_VTL_CONTROL)' },
    { name: 'NESTED_CONTROL', offset: 0x20, size: 8, tlfs: 'NestedEnlightenmentsControl (HV_NESTED_ENLIGHTENMENTS_CONTROL)' },
    { name: 'ENLIGHTEN_VMENTRY', offset: 0x28, size: 1, tlfs: 'EnlightenVmEntry (BOOLEAN)' },
    { name: 'CURRENT_NESTED_VMCS', offset: 0x30, size: 8, tlfs: 'CurrentNestedVmcs (HV_GPA)' },
  ],
};

// Lists of VMCS fields read from the current VMCS into the vmcs12 cache by straight-line code
// (boot/imports/vmx.c vmx.readlist: per field one VMREAD, a compare with the cached value under
// the field's width and, when it differs, the store and its bit in the returned mask; about two
// thirds of the instructions of the field-list loop). kernel/nested/fieldlist.ts builds the same
// lists as FieldLists with these ids, so a list's entry k is bit k on both sides. `fields`: names,
// or 'shadow-rw': the fields flagged `shadow` that are not read-only, in table order (what L1
// can VMWRITE through the shadow VMCS).
export const READ_LISTS = [
  // (GUEST_CR0/CR4 are not here: reflect.ts computes L2's view of them.) The fields
  // nested/guestsync.ts reads at every exit ("hot") come first, the "rare" ones after:
  // the generated reader tests the mask once per 8 entries before testing each, so the rare
  // blocks an exit leaves in vmcs02 cost one test each.
  { name: 'GUEST_SAVE', doc: "L2's guest state saved into vmcs12 at a reflected exit (SDM 28.3; nested/guestsync.ts)", fields: [
    'GUEST_RIP', 'GUEST_RSP', 'GUEST_RFLAGS', 'GUEST_INTERRUPTIBILITY_STATE',
    'GUEST_ACTIVITY_STATE', 'GUEST_PENDING_DEBUG_EXCEPTIONS', 'GUEST_CR3',
    'GUEST_CS_SELECTOR', 'GUEST_CS_BASE', 'GUEST_CS_ACCESS_RIGHTS',
    'GUEST_SS_ACCESS_RIGHTS', 'GUEST_DR7', 'GUEST_IA32_DEBUGCTL', 'GUEST_IA32_PAT', 'GUEST_IA32_EFER',
    'GUEST_ES_SELECTOR', 'GUEST_SS_SELECTOR', 'GUEST_DS_SELECTOR',
    'GUEST_FS_SELECTOR', 'GUEST_GS_SELECTOR', 'GUEST_LDTR_SELECTOR', 'GUEST_TR_SELECTOR',
    'GUEST_ES_LIMIT', 'GUEST_CS_LIMIT', 'GUEST_SS_LIMIT', 'GUEST_DS_LIMIT',
    'GUEST_FS_LIMIT', 'GUEST_GS_LIMIT', 'GUEST_LDTR_LIMIT', 'GUEST_TR_LIMIT',
    'GUEST_GDTR_LIMIT', 'GUEST_IDTR_LIMIT',
    'GUEST_ES_ACCESS_RIGHTS', 'GUEST_DS_ACCESS_RIGHTS',
    'GUEST_FS_ACCESS_RIGHTS', 'GUEST_GS_ACCESS_RIGHTS', 'GUEST_LDTR_ACCESS_RIGHTS', 'GUEST_TR_ACCESS_RIGHTS',
    'GUEST_ES_BASE', 'GUEST_SS_BASE', 'GUEST_DS_BASE',
    'GUEST_FS_BASE', 'GUEST_GS_BASE', 'GUEST_LDTR_BASE', 'GUEST_TR_BASE',
    'GUEST_GDTR_BASE', 'GUEST_IDTR_BASE',
    'GUEST_IA32_SYSENTER_CS', 'GUEST_IA32_SYSENTER_ESP', 'GUEST_IA32_SYSENTER_EIP',
  ] },
  // The five read at every reflected exit first, then those read for some exits, so that an
  // exit that needs none of the second run skips it with one test (reflect.ts syncExitInfo).
  { name: 'EXIT_INFO', doc: 'the VM-exit information fields (25.9) copied into vmcs12 at a reflected exit (nested/reflect.ts)', fields: [
    'VM_EXIT_REASON', 'EXIT_QUALIFICATION', 'VM_EXIT_INTERRUPTION_INFO', 'IDT_VECTORING_INFO',
    'VM_EXIT_INSTRUCTION_LENGTH', 'VM_EXIT_INSTRUCTION_INFO', 'GUEST_LINEAR_ADDRESS', 'GUEST_PHYSICAL_ADDRESS',
    'VM_EXIT_INTERRUPTION_ERROR_CODE', 'IDT_VECTORING_ERROR_CODE',
    'IO_RCX', 'IO_RSI', 'IO_RDI', 'IO_RIP',
  ] },
  { name: 'SHADOW_RW', doc: "what L1 can VMWRITE through the shadow VMCS, pulled into vmcs12 before L0 reads it (nested/shadow.ts)", fields: 'shadow-rw' },
];

// The fields every VMX processor has: SDM Vol. 3C 25.4-25.9 and Vol. 3D Appendix B give them
// no "exists only on processors that support ..." condition (full encodings; the high access
// of a 64-bit one follows it). A VMREAD or VMWRITE of one of them fails only when there is no
// current VMCS (31.3 VMREAD/VMWRITE: VMfailValid(12) is for an unsupported component), so
// boot/imports/vmx.c's straight-line lists test the flags of their first access and of the
// fields not listed here, not of every one. tests/unit/vmx-table.test.ts checks this list
// against the Appendix B oracle of tests/model/vmcs-fields.ts.
export const ALWAYS_PRESENT = [
  'GUEST_ES_SELECTOR', 'GUEST_CS_SELECTOR', 'GUEST_SS_SELECTOR', 'GUEST_DS_SELECTOR',
  'GUEST_FS_SELECTOR', 'GUEST_GS_SELECTOR', 'GUEST_LDTR_SELECTOR', 'GUEST_TR_SELECTOR',
  'HOST_ES_SELECTOR', 'HOST_CS_SELECTOR', 'HOST_SS_SELECTOR', 'HOST_DS_SELECTOR',
  'HOST_FS_SELECTOR', 'HOST_GS_SELECTOR', 'HOST_TR_SELECTOR', 'IO_BITMAP_A', 'IO_BITMAP_B',
  'VM_EXIT_MSR_STORE_ADDRESS', 'VM_EXIT_MSR_LOAD_ADDRESS', 'VM_ENTRY_MSR_LOAD_ADDRESS',
  'EXECUTIVE_VMCS_POINTER', 'TSC_OFFSET', 'VMCS_LINK_POINTER', 'GUEST_IA32_DEBUGCTL',
  'PIN_BASED_VM_EXEC_CONTROL', 'PRIMARY_PROC_BASED_VM_EXEC_CONTROL', 'EXCEPTION_BITMAP',
  'PAGE_FAULT_ERROR_CODE_MASK', 'PAGE_FAULT_ERROR_CODE_MATCH', 'CR3_TARGET_COUNT',
  'VM_EXIT_CONTROL', 'VM_EXIT_MSR_STORE_COUNT', 'VM_EXIT_MSR_LOAD_COUNT', 'VM_ENTRY_CONTROL',
  'VM_ENTRY_MSR_LOAD_COUNT', 'VM_ENTRY_INTERRUPTION_INFO', 'VM_ENTRY_EXCEPTION_ERROR_CODE',
  'VM_ENTRY_INSTRUCTION_LENGTH', 'VM_INSTRUCTION_ERROR', 'VM_EXIT_REASON',
  'VM_EXIT_INTERRUPTION_INFO', 'VM_EXIT_INTERRUPTION_ERROR_CODE', 'IDT_VECTORING_INFO',
  'IDT_VECTORING_ERROR_CODE', 'VM_EXIT_INSTRUCTION_LENGTH', 'VM_EXIT_INSTRUCTION_INFO',
  'GUEST_ES_LIMIT', 'GUEST_CS_LIMIT', 'GUEST_SS_LIMIT', 'GUEST_DS_LIMIT', 'GUEST_FS_LIMIT',
  'GUEST_GS_LIMIT', 'GUEST_LDTR_LIMIT', 'GUEST_TR_LIMIT', 'GUEST_GDTR_LIMIT', 'GUEST_IDTR_LIMIT',
  'GUEST_ES_ACCESS_RIGHTS', 'GUEST_CS_ACCESS_RIGHTS', 'GUEST_SS_ACCESS_RIGHTS',
  'GUEST_DS_ACCESS_RIGHTS', 'GUEST_FS_ACCESS_RIGHTS', 'GUEST_GS_ACCESS_RIGHTS',
  'GUEST_LDTR_ACCESS_RIGHTS', 'GUEST_TR_ACCESS_RIGHTS', 'GUEST_INTERRUPTIBILITY_STATE',
  'GUEST_ACTIVITY_STATE', 'GUEST_SMBASE', 'GUEST_IA32_SYSENTER_CS', 'HOST_IA32_SYSENTER_CS',
  'CR0_GUEST_HOST_MASK', 'CR4_GUEST_HOST_MASK', 'CR0_READ_SHADOW', 'CR4_READ_SHADOW',
  'EXIT_QUALIFICATION', 'IO_RCX', 'IO_RSI', 'IO_RDI', 'IO_RIP', 'GUEST_LINEAR_ADDRESS',
  'GUEST_CR0', 'GUEST_CR3', 'GUEST_CR4', 'GUEST_ES_BASE', 'GUEST_CS_BASE', 'GUEST_SS_BASE',
  'GUEST_DS_BASE', 'GUEST_FS_BASE', 'GUEST_GS_BASE', 'GUEST_LDTR_BASE', 'GUEST_TR_BASE',
  'GUEST_GDTR_BASE', 'GUEST_IDTR_BASE', 'GUEST_DR7', 'GUEST_RSP', 'GUEST_RIP', 'GUEST_RFLAGS',
  'GUEST_PENDING_DEBUG_EXCEPTIONS', 'GUEST_IA32_SYSENTER_ESP', 'GUEST_IA32_SYSENTER_EIP',
  'HOST_CR0', 'HOST_CR3', 'HOST_CR4', 'HOST_FS_BASE', 'HOST_GS_BASE', 'HOST_TR_BASE',
  'HOST_GDTR_BASE', 'HOST_IDTR_BASE', 'HOST_IA32_SYSENTER_ESP', 'HOST_IA32_SYSENTER_EIP',
  'HOST_RSP', 'HOST_RIP',
];

// L1's state after a nested VM exit (SDM Vol. 3C 28.5 "Loading Host State"), as vmcs01's
// guest-state fields: kernel/nested/hoststate.ts computes the values into slots (slot k at byte
// 8 * k of its staging area) and boot/imports/vmx.c (vmx.loadhoststate) writes them with one
// VMWRITE each, straight-line code generated from this list: about a third of the instructions
// of the field-list loop, for the ~45 fields every reflected exit writes. Per segment the four
// fields are in the order selector, base, limit, access rights (hoststate.ts relies on it; the
// generator checks it). `optional`: written only when its bit is set in the call's mask.
// EFER is not here: it depends on L1's EFER at the exit (hoststate.ts writes it).
export const HOST_LOAD = [
  'GUEST_RIP', 'GUEST_RSP', 'GUEST_RFLAGS',
  'CR0_READ_SHADOW', 'GUEST_CR0', 'CR4_READ_SHADOW', 'GUEST_CR4', 'GUEST_CR3',
  'GUEST_DR7', 'GUEST_IA32_DEBUGCTL',
  'GUEST_IA32_SYSENTER_CS', 'GUEST_IA32_SYSENTER_ESP', 'GUEST_IA32_SYSENTER_EIP',
  { name: 'GUEST_IA32_PAT', optional: true },
  'GUEST_ES_SELECTOR', 'GUEST_ES_BASE', 'GUEST_ES_LIMIT', 'GUEST_ES_ACCESS_RIGHTS',
  'GUEST_CS_SELECTOR', 'GUEST_CS_BASE', 'GUEST_CS_LIMIT', 'GUEST_CS_ACCESS_RIGHTS',
  'GUEST_SS_SELECTOR', 'GUEST_SS_BASE', 'GUEST_SS_LIMIT', 'GUEST_SS_ACCESS_RIGHTS',
  'GUEST_DS_SELECTOR', 'GUEST_DS_BASE', 'GUEST_DS_LIMIT', 'GUEST_DS_ACCESS_RIGHTS',
  'GUEST_FS_SELECTOR', 'GUEST_FS_BASE', 'GUEST_FS_LIMIT', 'GUEST_FS_ACCESS_RIGHTS',
  'GUEST_GS_SELECTOR', 'GUEST_GS_BASE', 'GUEST_GS_LIMIT', 'GUEST_GS_ACCESS_RIGHTS',
  'GUEST_LDTR_SELECTOR', 'GUEST_LDTR_ACCESS_RIGHTS',
  'GUEST_TR_SELECTOR', 'GUEST_TR_BASE', 'GUEST_TR_LIMIT', 'GUEST_TR_ACCESS_RIGHTS',
  'GUEST_GDTR_BASE', 'GUEST_GDTR_LIMIT', 'GUEST_IDTR_BASE', 'GUEST_IDTR_LIMIT',
  'GUEST_INTERRUPTIBILITY_STATE', 'GUEST_ACTIVITY_STATE', 'GUEST_PENDING_DEBUG_EXCEPTIONS',
  'VM_ENTRY_INTERRUPTION_INFO',
];

// ---------------------------------------------------------------------------------------------
// 8. The snapshot blob: one vCPU's state in the documented, versioned format of
//    docs/snapshot.md. Not an SDM structure; declared here, next to the VMCS tables it is
//    built from, so that the kernel (kernel/snapshot/), the C side and the model tests share
//    one layout. Every structure is little-endian; the generator checks that its fields are
//    naturally aligned, do not overlap and fit its size (a field of size 0 is the variable
//    tail and must come last), and emits SNAP_<STRUCT>_<FIELD> (byte offset) and
//    SNAP_<STRUCT>_BYTES (fixed size). Change anything here that changes a byte of a blob, and
//    bump `version` (blob.version rejects the other versions; the vmcs12 layout has its own
//    fingerprint, SNAP_VMCS12_LAYOUT, derived from the field table above).
// ---------------------------------------------------------------------------------------------
export const SNAPSHOT = {
  magic: 0x4e534856, // the bytes "VHSN"
  version: 2, // 2: EVENTS NMI_PENDING (was a reserved zero word)
  maxSections: 16,
  structs: [
    { prefix: 'HDR', bytes: 32, doc: 'blob header, at offset 0', fields: [
      { name: 'MAGIC', offset: 0, size: 4, doc: 'SNAP_MAGIC' },
      { name: 'VERSION', offset: 4, size: 2, doc: 'SNAP_VERSION' },
      { name: 'HEADER_BYTES', offset: 6, size: 2, doc: 'SNAP_HDR_BYTES' },
      { name: 'TOTAL_BYTES', offset: 8, size: 4, doc: 'the whole blob, header included' },
      { name: 'SECTION_COUNT', offset: 12, size: 4, doc: 'entries in the section table (1 to SNAP_MAX_SECTIONS)' },
      { name: 'VCPU', offset: 16, size: 4, doc: 'index of the vCPU in its VM' },
      { name: 'VMCS12_LAYOUT', offset: 20, size: 4, doc: 'SNAP_VMCS12_LAYOUT of the writer' },
      { name: 'RESERVED', offset: 24, size: 8, doc: 'zero' },
    ] },
    { prefix: 'ENTRY', bytes: 16, doc: 'section table entry; the table follows the header', fields: [
      { name: 'ID', offset: 0, size: 4, doc: 'SNAP_SEC_*' },
      { name: 'OFFSET', offset: 4, size: 4, doc: 'from the start of the blob, 8-byte aligned' },
      { name: 'SIZE', offset: 8, size: 4, doc: 'bytes of the section, padding excluded' },
      { name: 'RESERVED', offset: 12, size: 4, doc: 'zero' },
    ] },
    { prefix: 'PAIR', bytes: 16, doc: 'key/value item of the VMCS01 and MSRS sections', fields: [
      { name: 'KEY', offset: 0, size: 4, doc: 'VMCS field encoding or MSR index' },
      { name: 'RESERVED', offset: 4, size: 4, doc: 'zero' },
      { name: 'VALUE', offset: 8, size: 8, doc: 'the value, zero-extended' },
    ] },
    { prefix: 'APIC', bytes: 1088, doc: 'APIC section', fields: [
      { name: 'BASE', offset: 0, size: 8, doc: 'IA32_APIC_BASE' },
      { name: 'ESR_PENDING', offset: 8, size: 4, doc: 'errors detected since the last write of the ESR (11.5.3)' },
      { name: 'RESERVED', offset: 12, size: 52, doc: 'zero' },
      { name: 'PAGE', offset: 64, size: 1024, doc: 'registers 000H-3F0H at their offsets in the APIC page, 32 bits each' },
    ] },
    { prefix: 'EVENTS', bytes: 32, doc: 'EVENTS section: what the next VM entry injects (26.6)', fields: [
      { name: 'L1_INFO', offset: 0, size: 4, doc: "vmcs01's VM-entry interruption information" },
      { name: 'L1_ERROR', offset: 4, size: 4, doc: "vmcs01's VM-entry exception error code" },
      { name: 'L1_LENGTH', offset: 8, size: 4, doc: "vmcs01's VM-entry instruction length" },
      { name: 'NMI_PENDING', offset: 12, size: 4, doc: "1: an NMI the vCPU took is not delivered yet (it waits for L1, vm/irq.ts; KVM's nmi.pending); 0: none" },
      { name: 'L2_INFO', offset: 16, size: 4, doc: "vmcs02's VM-entry interruption information (GUEST_MODE)" },
      { name: 'L2_ERROR', offset: 20, size: 4, doc: "vmcs02's VM-entry exception error code" },
      { name: 'L2_LENGTH', offset: 24, size: 4, doc: "vmcs02's VM-entry instruction length" },
      { name: 'L2_RESERVED', offset: 28, size: 4, doc: 'zero' },
    ] },
    { prefix: 'TIMERS', bytes: 32, doc: "TIMERS section: times in L1's TSC", fields: [
      { name: 'L1_TSC', offset: 0, size: 8, doc: "L1's TSC at the snapshot point" },
      { name: 'APIC_DEADLINE', offset: 8, size: 8, doc: "L1's TSC when the APIC timer count reaches 0; all ones: not counting" },
      { name: 'RESERVED', offset: 16, size: 16, doc: 'zero' },
    ] },
    { prefix: 'DEBUG', bytes: 64, doc: 'DEBUG section: the debug registers VM entry and exit do not switch', fields: [
      { name: 'DR0', offset: 0, size: 8, doc: 'DR0 (breakpoint linear address 0)' },
      { name: 'DR1', offset: 8, size: 8, doc: 'DR1' },
      { name: 'DR2', offset: 16, size: 8, doc: 'DR2' },
      { name: 'DR3', offset: 24, size: 8, doc: 'DR3' },
      { name: 'DR6', offset: 32, size: 8, doc: 'DR6 (debug status); bits 63:32 zero' },
      { name: 'RESERVED', offset: 40, size: 24, doc: 'zero' },
    ] },
    { prefix: 'XSTATE', bytes: 64, doc: 'XSTATE section: fixed part, then the XSAVE area', fields: [
      { name: 'XCR0', offset: 0, size: 8, doc: "the guest's XCR0" },
      { name: 'AREA_BYTES', offset: 8, size: 4, doc: 'size of the XSAVE area that follows' },
      { name: 'RESERVED', offset: 12, size: 52, doc: 'zero' },
      { name: 'AREA', offset: 64, size: 0, doc: 'XSAVE area, standard format (SDM Vol. 1 13.4)' },
    ] },
    { prefix: 'NESTED', bytes: 64, doc: "NESTED section: after KVM's kvm_nested_state (VMX)", fields: [
      { name: 'FLAGS', offset: 0, size: 4, doc: 'SNAP_FLAG_GUEST_MODE | SNAP_FLAG_RUN_PENDING | SNAP_FLAG_EVMCS' },
      { name: 'RESERVED0', offset: 4, size: 4, doc: 'zero' },
      { name: 'VMXON', offset: 8, size: 8, doc: 'VMXON pointer (L1-physical); all ones: not in VMX operation' },
      { name: 'VMCS12', offset: 16, size: 8, doc: 'current-VMCS pointer (L1-physical); all ones: none' },
      { name: 'PREEMPTION_DEADLINE', offset: 24, size: 8, doc: "L1's TSC when L1's VMX-preemption timer for L2 expires; all ones: not running" },
      { name: 'L2_EFER', offset: 32, size: 8, doc: "with GUEST_MODE: L2's IA32_EFER (vmcs02's; vmcs12 holds it only when its exit controls save it); else zero" },
      { name: 'L2_PAT', offset: 40, size: 8, doc: "with GUEST_MODE: L2's IA32_PAT; else zero" },
      { name: 'L2_DR7', offset: 48, size: 8, doc: "with GUEST_MODE: L2's DR7; else zero" },
      { name: 'L2_DEBUGCTL', offset: 56, size: 8, doc: "with GUEST_MODE: L2's IA32_DEBUGCTL; else zero" },
    ] },
    { prefix: 'HYPERV', bytes: 64, doc: 'HYPERV section: the synthetic MSRs of a hyperv=on guest (Hyper-V TLFS)', fields: [
      { name: 'GUEST_OS_ID', offset: 0, size: 8, doc: 'HV_X64_MSR_GUEST_OS_ID (partition-wide)' },
      { name: 'HYPERCALL', offset: 8, size: 8, doc: 'HV_X64_MSR_HYPERCALL (partition-wide)' },
      { name: 'TSC_INVARIANT_CONTROL', offset: 16, size: 8, doc: 'HV_X64_MSR_TSC_INVARIANT_CONTROL (partition-wide)' },
      { name: 'VP_ASSIST_PAGE', offset: 24, size: 8, doc: "HV_X64_MSR_VP_ASSIST_PAGE (this vCPU's)" },
      { name: 'RESERVED', offset: 32, size: 32, doc: 'zero' },
    ] },
  ],
  // Section ids in the order a blob holds them. bytes: fixed size (a number, or the name of a
  // constant); item: size of each item of a list section.
  sections: [
    { name: 'REGS', id: 1, bytes: 'REGS_BYTES', doc: 'the register block (REGS_*): GPRs, CR2, FXSAVE area' },
    { name: 'VMCS01', id: 2, item: 'SNAP_PAIR_BYTES', doc: "vmcs01's guest state: SNAP_VMCS01_FIELDS as encoding/value pairs" },
    { name: 'MSRS', id: 3, item: 'SNAP_PAIR_BYTES', doc: 'MSRs no VMCS field holds: SNAP_MSRS as index/value pairs' },
    { name: 'APIC', id: 4, bytes: 'SNAP_APIC_BYTES', doc: 'the local APIC' },
    { name: 'EVENTS', id: 5, bytes: 'SNAP_EVENTS_BYTES', doc: 'pending event injection' },
    { name: 'TIMERS', id: 6, bytes: 'SNAP_TIMERS_BYTES', doc: 'TSC and timer deadlines' },
    { name: 'DEBUG', id: 7, bytes: 'SNAP_DEBUG_BYTES', doc: 'DR0-DR3 and DR6 (the processor holds them: MOV DR does not exit)' },
    { name: 'XSTATE', id: 8, doc: 'XCR0 and the XSAVE area (present when the processor has XSAVE)' },
    { name: 'NESTED', id: 9, bytes: 'SNAP_NESTED_BYTES', doc: "L1's VMX operation (absent: never entered)" },
    { name: 'VMCS12', id: 10, bytes: 'VMCS12_PAGE_SIZE', doc: 'the current vmcs12 (private layout)' },
    { name: 'SHADOW_VMCS12', id: 11, bytes: 'VMCS12_PAGE_SIZE', doc: "the shadow VMCS vmcs12's link pointer names (GUEST_MODE with VMCS shadowing)" },
    { name: 'HYPERV', id: 12, bytes: 'SNAP_HYPERV_BYTES', doc: 'the Hyper-V synthetic MSRs (exactly for a guest with hyperv=on)' },
  ],
  nestedFlags: [
    { name: 'GUEST_MODE', bit: 0, doc: 'L2 was running (vmcs02 current): KVM_STATE_NESTED_GUEST_MODE' },
    { name: 'RUN_PENDING', bit: 1, doc: "L1's VMLAUNCH/VMRESUME emulated, L2 not yet entered: KVM_STATE_NESTED_RUN_PENDING" },
    { name: 'EVMCS', bit: 2, doc: 'vmcs12 was copied from the eVMCS an enlightened entry made current; NESTED VMCS12 is its address (KVM_STATE_NESTED_EVMCS)' },
  ],
  // vmcs01's fields in the VMCS01 section: every guest-state field of VMCS_FIELDS except these
  // (rebuildable, or of features no guest is offered, so that they hold what vmcs01.ts wrote),
  // plus the extra fields that hold guest-visible state outside the guest-state area.
  vmcs01Exclude: {
    GUEST_INTERRUPT_STATUS: 'virtual-interrupt delivery is not used',
    PML_INDEX: "PML is not used in vmcs01 (L2's is emulated)",
    GUEST_UINV: 'user interrupts are not offered',
    VMCS_LINK_POINTER: "L0's own: the shadow VMCS it links (rebuildable)",
    GUEST_IA32_PERF_GLOBAL_CTRL: 'performance monitoring is not offered',
    GUEST_IA32_BNDCFGS: 'MPX is not offered',
    GUEST_IA32_RTIT_CTL: 'Intel PT is not offered',
    GUEST_IA32_LBR_CTL: 'arch LBR is not offered',
    GUEST_IA32_PKRS: 'PKS is not offered',
    GUEST_IA32_FRED_CONFIG: 'FRED is not offered',
    GUEST_IA32_FRED_RSP1: 'FRED is not offered',
    GUEST_IA32_FRED_RSP2: 'FRED is not offered',
    GUEST_IA32_FRED_RSP3: 'FRED is not offered',
    GUEST_IA32_FRED_STKLVLS: 'FRED is not offered',
    GUEST_IA32_FRED_SSP1: 'FRED is not offered',
    GUEST_IA32_FRED_SSP2: 'FRED is not offered',
    GUEST_IA32_FRED_SSP3: 'FRED is not offered',
    GUEST_SMBASE: 'SMM is not offered',
    VMX_PREEMPTION_TIMER_VALUE: "L0's own time slice (rebuildable from TIMERS)",
    GUEST_IA32_S_CET: 'CET is not offered',
    GUEST_SSP: 'CET is not offered',
    GUEST_IA32_INTERRUPT_SSP_TABLE_ADDR: 'CET is not offered',
  },
  vmcs01Extra: {
    CR0_READ_SHADOW: 'what the guest reads of the CR0 bits L0 owns (25.6.6)',
    CR4_READ_SHADOW: 'what the guest reads of the CR4 bits L0 owns (25.6.6)',
  },
  // The MSRS section: MSRs with guest state that no VMCS field holds: the pass-through MSRs
  // VM entry/exit do not switch (vmcs01.UNSWITCHED) and the emulated MSRs that keep a value.
  // count: consecutive MSRs from the named one.
  msrs: [
    { name: 'IA32_FEATURE_CONTROL' },
    { name: 'IA32_TSC_ADJUST' },
    { name: 'IA32_MTRR_FIX64K_00000' },
    { name: 'IA32_MTRR_FIX16K_80000' },
    { name: 'IA32_MTRR_FIX16K_A0000' },
    { name: 'IA32_MTRR_FIX4K_C0000', count: 8 },
    { name: 'IA32_MTRR_DEF_TYPE' },
    { name: 'IA32_STAR' },
    { name: 'IA32_LSTAR' },
    { name: 'IA32_CSTAR' },
    { name: 'IA32_FMASK' },
    { name: 'IA32_KERNEL_GS_BASE' },
    { name: 'IA32_TSC_AUX' },
  ],
};
