/* Freestanding <setjmp.h> for wasm-rt.h: the hypervisor never unwinds with
 * longjmp (a trap stops the machine), but the runtime header names the type. */
#ifndef HV_SETJMP_H
#define HV_SETJMP_H
typedef unsigned long jmp_buf[8];
int setjmp(jmp_buf env);
_Noreturn void longjmp(jmp_buf env, int val);
#endif
