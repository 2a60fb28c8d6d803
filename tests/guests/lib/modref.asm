; A copy of tests/guests/data/module.txt inside the guest, to compare the
; module the loader delivered against (assembled with -I tests/guests/data/).
section .rodata
global module_ref
global module_ref_end
module_ref:
    incbin "module.txt"
module_ref_end:
