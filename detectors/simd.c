/* CPU probe and process-wide kernel level; see simd.h. */
#include "simd.h"

#include <stdatomic.h>
#include <string.h>

/* -1 until probed. Probing twice is harmless (same answer), so a race between
 * two first callers needs no lock. */
static atomic_int detected = -1;
/* -1 until first asked for, then a bg_simd_isa. */
static atomic_int active = -1;

static int probe(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
                __builtin_cpu_supports("popcnt");
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        return BG_SIMD_AVX512;
    if (avx2)
        return BG_SIMD_AVX2;
#endif
    return BG_SIMD_SCALAR;
}

bg_simd_isa bg_simd_detect(void) {
    int d = atomic_load_explicit(&detected, memory_order_relaxed);
    if (d < 0) {
        d = probe();
        atomic_store_explicit(&detected, d, memory_order_relaxed);
    }
    return (bg_simd_isa)d;
}

bool bg_simd_supported(bg_simd_isa isa) {
    return (unsigned)isa < BG_SIMD_COUNT && (int)isa <= (int)bg_simd_detect();
}

bg_simd_isa bg_simd_level(void) {
    int a = atomic_load_explicit(&active, memory_order_relaxed);
    if (a < 0) {
        a = (int)bg_simd_detect();
        int expected = -1;
        /* a concurrent bg_simd_force() wins over the default */
        if (!atomic_compare_exchange_strong(&active, &expected, a))
            a = expected;
    }
    return (bg_simd_isa)a;
}

bg_err bg_simd_force(bg_simd_isa isa) {
    if (!bg_simd_supported(isa))
        return BG_ERR_INVALID;
    atomic_store_explicit(&active, (int)isa, memory_order_relaxed);
    return BG_OK;
}

static const char *const names[BG_SIMD_COUNT] = {"scalar", "avx2", "avx512"};

const char *bg_simd_name(bg_simd_isa isa) {
    return (unsigned)isa < BG_SIMD_COUNT ? names[isa] : "unknown";
}

bg_err bg_simd_parse(const char *name, bg_simd_isa *out) {
    if (!name || !out)
        return BG_ERR_INVALID;
    for (unsigned i = 0; i < BG_SIMD_COUNT; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (bg_simd_isa)i;
            return BG_OK;
        }
    return BG_ERR_INVALID;
}
