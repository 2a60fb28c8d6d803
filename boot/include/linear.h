/* Where the kernel's wasm linear memory is (hv.h has the rest): included by
 * the generated kernel.c too (the Makefile's LINEAR_BASE edit), so that its
 * loads and stores and the runtime agree on one constant. */
#ifndef HV_LINEAR_H
#define HV_LINEAR_H
/* The fixed virtual address of the 16 MiB (paging.c maps them there; the
 * physical RAM stays identity-mapped too): the top 1 GiB, reachable as a
 * sign-extended 32-bit displacement, so that a generated access is one
 * instruction with the wasm address in a register. */
#define HV_LINEAR_VA 0xFFFFFFFFC0000000ull
#endif
