/* Freestanding <stdlib.h>: only what wasm2c's output and runtime header use. */
#ifndef HV_STDLIB_H
#define HV_STDLIB_H
#include <stddef.h>
_Noreturn void abort(void);
#endif
