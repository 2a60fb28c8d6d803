/* Freestanding <assert.h>: wasm2c output includes it; assertions in the
 * runtime glue are not used (traps report through wasm_rt_trap). */
#ifndef HV_ASSERT_H
#define HV_ASSERT_H
#define assert(x) ((void)0)
#define static_assert _Static_assert
#endif
