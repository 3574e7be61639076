/* BG_SIMD=scalar|avx2|avx512: the operator's override of the sketch kernels'
 * instruction set (detectors/simd.h). Lives in worker/ because the detectors
 * never read the environment. */
#include <stdlib.h>

#include "detectors/simd.h"
#include "worker/log.h"

bg_err bg_simd_init_from_env(void) {
    const char *v = getenv("BG_SIMD");
    if (!v || !*v)
        return BG_OK;
    bg_simd_isa isa;
    if (bg_simd_parse(v, &isa) != BG_OK) {
        bg_warn("BG_SIMD=%s is not one of scalar, avx2, avx512; keeping %s", v,
                bg_simd_name(bg_simd_level()));
        return BG_ERR_CONFIG;
    }
    if (bg_simd_force(isa) != BG_OK) {
        bg_warn("BG_SIMD=%s: this CPU lacks it (best: %s); keeping %s", v,
                bg_simd_name(bg_simd_detect()), bg_simd_name(bg_simd_level()));
        return BG_ERR_CONFIG;
    }
    bg_debug("sketch kernels: %s (BG_SIMD)", bg_simd_name(isa));
    return BG_OK;
}
