// The vmcs12 fields that move between vmcs12 and vmcs02 (or vmcs01) on
// nested VM entries and exits, as lists of encodings. Guest state is copied
// to vmcs02 at every nested entry and back to vmcs12 at every reflected
// exit; the exit-information fields go from vmcs02 to vmcs12.
import * as V from "../arch/vmx";

// Guest-state area fields the processor keeps for L2 (SDM Vol. 3C 25.4)
// without EPT (no PDPTEs) and without the features not offered to L1: the
// field table's READ_LISTS GUEST_SAVE (tools/vmx/table.mjs), whose
// straight-line reader (vmx.readlist) copies them at a reflected exit.
export const GUEST_STATE: StaticArray<u32> = V.READLIST_GUEST_SAVE_FIELDS;

// VM-exit information fields (25.9) copied to vmcs12 when an exit is
// reflected: READ_LISTS EXIT_INFO.
export const EXIT_INFO: StaticArray<u32> = V.READLIST_EXIT_INFO_FIELDS;
