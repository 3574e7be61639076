/* Runtime choice of instruction set for the sketch kernels.
 *
 * Model: xxHash's xxh_x86dispatch.c. The scalar reference of every kernel is
 * always built; each instruction set has its own file (name_avx2.c, compiled
 * with -mavx2 -mbmi2 -mpopcnt by CMake) and the CPU is probed once, the first
 * time a level is asked for. Every variant produces byte-identical results to
 * the scalar reference, so forcing a level changes speed, never answers.
 *
 * The active level is process-wide (an atomic int; reads are relaxed and cheap
 * enough to do on every kernel call). It starts at the best level the CPU
 * supports; bg_simd_force() lowers (or restores) it, e.g. from BG_SIMD in the
 * worker (worker/simd_env.c). A module without kernels for the active level
 * uses its best variant below it (AVX-512 falls back to AVX2, then scalar).
 *
 * x86-64 only, like the rest of the build (GCC/Clang __builtin_cpu_supports,
 * which also checks that the OS saves the wide registers). */
#ifndef BG_SIMD_H
#define BG_SIMD_H

#include <stdbool.h>

#include "err.h"

/* Ordered: a higher level implies every lower one. Numbers are stable. */
typedef enum bg_simd_isa {
    BG_SIMD_SCALAR = 0, /* portable C, the reference */
    BG_SIMD_AVX2 = 1,   /* AVX2 + BMI2 + POPCNT */
    BG_SIMD_AVX512 = 2, /* AVX-512 F + BW (on top of AVX2) */
} bg_simd_isa;

#define BG_SIMD_COUNT 3

/* --- Detection and selection ---------------------------------------------- */

/* Best level this CPU (and OS) supports; probed once, then cached. */
bg_simd_isa bg_simd_detect(void);
/* True when the CPU supports isa (scalar always). */
bool bg_simd_supported(bg_simd_isa isa);
/* The level the kernels use now. */
bg_simd_isa bg_simd_level(void);
/* Use isa from now on. BG_ERR_INVALID (level unchanged) when isa is not a
 * level or the CPU lacks it. Meant for start-up and tests: kernels already
 * running on another thread finish with the level they started with. */
bg_err bg_simd_force(bg_simd_isa isa);

/* --- Names ------------------------------------------------------------------- */

/* "scalar", "avx2", "avx512"; "unknown" for anything else. Never NULL. */
const char *bg_simd_name(bg_simd_isa isa);
/* Inverse of bg_simd_name (exact, lower case). BG_ERR_INVALID for other
 * strings, including NULL; *out untouched then. */
bg_err bg_simd_parse(const char *name, bg_simd_isa *out);

/* --- Worker side ---------------------------------------------------------- */

/* Defined in worker/simd_env.c (the detectors never read the environment).
 * Reads BG_SIMD=scalar|avx2|avx512 and forces that level. Unset or empty:
 * BG_OK, automatic choice. An unknown value or one the CPU lacks: a warning
 * naming the value and the level kept, and BG_ERR_CONFIG (the caller may treat
 * it as fatal or carry on with the automatic level). */
bg_err bg_simd_init_from_env(void);

#endif
