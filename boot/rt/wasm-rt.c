/* A freestanding runtime for wasm2c 1.0.32 output (the API in wasm-rt.h).
 *
 * - Linear memory is HV_LINEAR_MAX bytes of RAM that hv_start chose, seen
 *   at the fixed virtual window HV_LINEAR_VA (linear.h; hv_linear_memory),
 *   never moved, all of it from the start. The generated loads and stores
 *   use the window's address as a constant (the Makefile's edits of
 *   kernel.c), so allocate_memory refuses anything else.
 * - Every linear-memory access is bounds-checked by the generated code
 *   (built with WASM_RT_MEMCHECK_SIGNAL_HANDLER=0: there are no signals here):
 *   one compare of the address with the constant bound less the access size.
 * - Runaway recursion traps ("call stack exhausted") instead of
 *   overflowing the stack: every kernel function compares RSP with
 *   hv_stack_limit (boot/include/stack.h; the Makefile's FUNC_PROLOGUE
 *   edit), which the boot stack's bottom sets here and each kernel thread's
 *   on taking the kernel (boot/smp/threads.c).
 * - A trap prints its kind and stops the machine with HV_STATUS_TRAP: the
 *   hypervisor's state can no longer be trusted after one. */
#include "hv.h"
#include <stdarg.h>
#include "wasm-rt.h"
#include "stack.h"

unsigned long long hv_stack_limit; /* machine-wide: the running kernel thread's (stack.h) */

static bool initialized;
static u32 linear_allocated;

void wasm_rt_init(void) { initialized = true; }
bool wasm_rt_is_initialized(void) { return initialized; }
void wasm_rt_free(void) { initialized = false; }

const char *wasm_rt_strerror(wasm_rt_trap_t trap) {
    switch (trap) {
    case WASM_RT_TRAP_NONE: return "no trap";
    case WASM_RT_TRAP_OOB: return "out-of-bounds linear memory or table access";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_RT_TRAP_INVALID_CONVERSION: return "invalid float-to-integer conversion";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable executed";
    case WASM_RT_TRAP_CALL_INDIRECT: return "bad indirect call";
    case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return "uncaught exception";
#if !WASM_RT_MERGED_OOB_AND_EXHAUSTION_TRAPS
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
#endif
    }
    return "unknown trap";
}

_Noreturn void wasm_rt_trap(wasm_rt_trap_t trap) {
    hv_puts("hv: trap: wasm ");
    hv_puts(wasm_rt_strerror(trap));
    hv_puts("\n");
    hv_exit(HV_STATUS_TRAP);
}

/* Function types are compared by index; the kernel has few. */
#define MAX_FUNC_TYPES 256
static struct { u32 params, results; u8 types[16]; } func_types[MAX_FUNC_TYPES];
static u32 func_type_count;

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
    u8 types[16] = {0};
    va_list ap;
    va_start(ap, results);
    for (u32 i = 0; i < params + results; i++) {
        u32 t = va_arg(ap, u32);
        if (i < 16) types[i] = (u8)t;
    }
    va_end(ap);
    for (u32 i = 0; i < func_type_count; i++) {
        if (func_types[i].params == params && func_types[i].results == results &&
            memcmp(func_types[i].types, types, sizeof types) == 0)
            return i;
    }
    if (func_type_count == MAX_FUNC_TYPES || params + results > 16) {
        hv_puts("hv: trap: too many wasm function types\n");
        hv_exit(HV_STATUS_TRAP);
    }
    func_types[func_type_count].params = params;
    func_types[func_type_count].results = results;
    memcpy(func_types[func_type_count].types, types, sizeof types);
    return func_type_count++;
}

/* The kernel is built without wasm exceptions. */
uint32_t wasm_rt_register_tag(uint32_t size) { (void)size; return 0; }
void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void *values) {
    (void)tag; (void)size; (void)values;
    wasm_rt_trap(WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
}
_Noreturn void wasm_rt_throw(void) { wasm_rt_trap(WASM_RT_TRAP_UNCAUGHT_EXCEPTION); }

void wasm_rt_allocate_memory(wasm_rt_memory_t *m, uint32_t initial_pages, uint32_t max_pages) {
    u64 limit = HV_LINEAR_MAX / 65536;
    if (linear_allocated || initial_pages > limit) {
        hv_puts("hv: trap: the kernel asks for more linear memory than the image reserves\n");
        hv_exit(HV_STATUS_TRAP);
    }
    /* The generated bounds checks compare with HV_LINEAR_MAX, not m->size
     * (the Makefile's RANGE_CHECK edit): that is right only for a memory
     * that is all of the region from the start and never grows. */
    if ((u64)initial_pages * 65536u != HV_LINEAR_MAX || max_pages != initial_pages) {
        hv_puts("hv: trap: the kernel's linear memory is not exactly HV_LINEAR_MAX (asc --initialMemory/--maximumMemory)\n");
        hv_exit(HV_STATUS_TRAP);
    }
    /* The generated accesses use HV_LINEAR_VA itself (the Makefile's
     * LINEAR_BASE edit), not m->data: they must be the same. */
    if (hv_linear_memory != (u8 *)HV_LINEAR_VA) {
        hv_puts("hv: trap: the kernel's linear memory is not mapped at HV_LINEAR_VA\n");
        hv_exit(HV_STATUS_TRAP);
    }
    linear_allocated = 1;
    m->data = hv_linear_memory;
    m->pages = initial_pages;
    m->max_pages = max_pages < limit ? max_pages : (u32)limit;
    m->size = initial_pages * 65536u;
    memset(m->data, 0, m->size);
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *m, uint32_t delta) {
    u32 old = m->pages;
    if (delta > m->max_pages - old) return (uint32_t)-1;
    memset(m->data + m->size, 0, (size_t)delta * 65536u);
    m->pages = old + delta;
    m->size = m->pages * 65536u;
    return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t *m) { (void)m; }

#define MAX_TABLE 1024
static wasm_rt_funcref_t table_store[MAX_TABLE];
static u32 table_used;

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *t, uint32_t elements, uint32_t max_elements) {
    if (elements > MAX_TABLE - table_used) {
        hv_puts("hv: trap: wasm table too large\n");
        hv_exit(HV_STATUS_TRAP);
    }
    t->data = &table_store[table_used];
    table_used += elements;
    t->size = elements;
    t->max_size = elements; /* tables do not grow here */
    (void)max_elements;
    for (u32 i = 0; i < elements; i++) t->data[i] = wasm_rt_funcref_null_value;
}
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *t) { (void)t; }
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t *t, uint32_t delta, wasm_rt_funcref_t init) {
    (void)t; (void)delta; (void)init;
    return (uint32_t)-1;
}
void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t *t, uint32_t elements, uint32_t max_elements) {
    (void)max_elements;
    if (elements != 0) {
        hv_puts("hv: trap: externref tables are not supported\n");
        hv_exit(HV_STATUS_TRAP);
    }
    t->data = NULL;
    t->size = t->max_size = 0;
}
void wasm_rt_free_externref_table(wasm_rt_externref_table_t *t) { (void)t; }
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t *t, uint32_t delta, wasm_rt_externref_t init) {
    (void)t; (void)delta; (void)init;
    return (uint32_t)-1;
}
