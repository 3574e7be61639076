/* ns per element of every sketch kernel (detectors/hll*.c, cms*.c), scalar
 * reference against each SIMD variant the CPU runs, on the same inputs, in the
 * same run, one core. Each figure is the median of 5 passes; before each pass
 * the kernel's output is reset to the same starting state, and the output of
 * the last pass is hashed (XXH64) into the checksum column, which must be
 * equal for every variant of a kernel (the program exits 1 otherwise).
 *
 * Inputs: 1M distinct hashes; 1M CMS keys drawn skewed (id = 100000 u^3, the
 * top id takes 2%) and 1M uniform ones; registers and counters random.
 *
 * Usage: bench_sketch [scale]   (default 1; inputs are scale x the sizes below) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "bench/bench_util.h"
#include "detectors/cms.h"
#include "detectors/hash.h"
#include "detectors/hll.h"

#define PASSES 5

/* inputs */
static size_t n_hash, n_keys;
static uint64_t *hashes, *keys, *ukeys;
static uint8_t *regs, *regs_src, *regs_in;
static uint32_t *ctr, *ctr_src, *ctr_in, *qout;
#define HLL_P 14
#define CMS_W 2719u
#define CMS_D 5u

typedef struct run {
    const char *kernel;
    const char *what; /* element the ns are per */
    size_t elems;     /* elements per pass */
    /* one pass on variant v: returns seconds; writes its output */
    double (*pass)(int v);
    /* checksum of the output */
    uint64_t (*sum)(void);
} run;

static const bg_hll_kernels *hk[BG_SIMD_COUNT];
static const bg_cms_kernels *ck[BG_SIMD_COUNT];

static double p_hll_add(int v) {
    memset(regs, 0, (size_t)1 << HLL_P);
    double t = now();
    hk[v]->add(regs, HLL_P, hashes, n_hash);
    return now() - t;
}
static uint64_t s_regs(void) { return XXH64(regs, (size_t)1 << HLL_P, 0); }

#define MERGE_M 1024u /* p = 10: the per-identity size */
static size_t merge_reps;
static double p_hll_merge(int v) {
    memcpy(regs, regs_in, (size_t)1 << HLL_P);
    double t = now();
    for (size_t r = 0; r < merge_reps; r++) /* 16 sketches of 1024, walked in turn */
        hk[v]->merge(regs + (r % 16) * MERGE_M, regs_src + (r % 13) * MERGE_M, MERGE_M);
    return now() - t;
}

static uint64_t regsum_acc;
static double p_hll_regsum(int v) {
    regsum_acc = 0;
    double t = now();
    for (size_t r = 0; r < merge_reps; r++) {
        bg_hll_regsum rs;
        hk[v]->regsum(regs_in + (r % 16) * MERGE_M, MERGE_M, 54, &rs);
        regsum_acc = regsum_acc * 31 + rs.sum + rs.zeros + ((uint64_t)rs.top << 32);
    }
    return now() - t;
}
static uint64_t s_regsum(void) { return regsum_acc; }

static double p_cms_update(int v) {
    memset(ctr, 0, CMS_W * CMS_D * 4);
    double t = now();
    ck[v]->update(ctr, CMS_W, CMS_D, keys, NULL, n_keys);
    return now() - t;
}
/* uniform keys: no run of hot keys re-reading counters just stored */
static double p_cms_update_u(int v) {
    memset(ctr, 0, CMS_W * CMS_D * 4);
    double t = now();
    ck[v]->update(ctr, CMS_W, CMS_D, ukeys, NULL, n_keys);
    return now() - t;
}
static uint64_t s_ctr(void) { return XXH64(ctr, CMS_W * CMS_D * 4, 0); }

static double p_cms_query(int v) {
    double t = now();
    ck[v]->query(ctr_in, CMS_W, CMS_D, keys, n_keys, qout);
    return now() - t;
}
static uint64_t s_query(void) { return XXH64(qout, n_keys * 4, 0); }

static double p_cms_merge(int v) {
    memcpy(ctr, ctr_in, CMS_W * CMS_D * 4);
    double t = now();
    for (size_t r = 0; r < merge_reps / 16; r++)
        ck[v]->merge(ctr, ctr_src, CMS_W * CMS_D);
    return now() - t;
}

int main(int argc, char **argv) {
    size_t scale = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1;
    if (scale < 1)
        scale = 1;
    n_hash = n_keys = 1000000 * scale;
    merge_reps = 20000 * scale;
    hashes = malloc(n_hash * 8);
    keys = malloc(n_keys * 8);
    ukeys = malloc(n_keys * 8);
    regs = malloc((size_t)1 << HLL_P);
    regs_src = malloc((size_t)1 << HLL_P);
    regs_in = malloc((size_t)1 << HLL_P);
    ctr = malloc(CMS_W * CMS_D * 4);
    ctr_src = malloc(CMS_W * CMS_D * 4);
    ctr_in = malloc(CMS_W * CMS_D * 4);
    qout = malloc(n_keys * 4);
    for (size_t i = 0; i < n_hash; i++)
        hashes[i] = bg_hash64(&i, sizeof i, BG_SEED_SKETCH);
    for (size_t i = 0; i < n_keys; i++) { /* skewed: id = 100000 u^3 */
        double u = (double)(next() >> 11) / 9007199254740992.0;
        uint64_t id = (uint64_t)(u * u * u * 100000.0);
        keys[i] = bg_hash64(&id, sizeof id, BG_SEED_SKETCH);
        ukeys[i] = next();
    }
    for (size_t i = 0; i < ((size_t)1 << HLL_P); i++) {
        regs_in[i] = (uint8_t)(next() % 12);
        regs_src[i] = (uint8_t)(next() % 12);
    }
    for (size_t i = 0; i < CMS_W * CMS_D; i++) {
        ctr_in[i] = (uint32_t)(next() % 5000);
        ctr_src[i] = (uint32_t)(next() % 5000);
    }
    int nv = 0;
    int vs[BG_SIMD_COUNT];
    for (int v = 0; v < BG_SIMD_COUNT; v++) {
        hk[v] = bg_hll_kernels_for((bg_simd_isa)v);
        ck[v] = bg_cms_kernels_for((bg_simd_isa)v);
        if ((hk[v] || ck[v]) && bg_simd_supported((bg_simd_isa)v))
            vs[nv++] = v;
    }

    const run runs[] = {
        {"hll_add p=14", "hash", n_hash, p_hll_add, s_regs},
        {"hll_merge m=1024", "register", merge_reps * MERGE_M, p_hll_merge, s_regs},
        {"hll_regsum m=1024", "register", merge_reps * MERGE_M, p_hll_regsum, s_regsum},
        {"cms_update w=2719 d=5", "key", n_keys, p_cms_update, s_ctr},
        {"cms_update uniform", "key", n_keys, p_cms_update_u, s_ctr},
        {"cms_query w=2719 d=5", "key", n_keys, p_cms_query, s_query},
        {"cms_merge 13595 ctr", "counter", merge_reps / 16 * CMS_W * CMS_D, p_cms_merge, s_ctr},
    };
    printf("CPU best level: %s; median of %d passes\n", bg_simd_name(bg_simd_detect()), PASSES);
    printf("%-22s %-8s %10s %9s %8s  %s\n", "kernel", "variant", "ns/elem", "elem", "speedup",
           "checksum");
    int bad = 0;
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        double base = 0;
        uint64_t sum0 = 0;
        for (int j = 0; j < nv; j++) {
            int v = vs[j];
            int is_hll = r < 3;
            if ((is_hll && !hk[v]) || (!is_hll && !ck[v]))
                continue;
            double t[PASSES];
            for (int k = 0; k < PASSES; k++)
                t[k] = runs[r].pass(v);
            qsort(t, PASSES, sizeof t[0], cmp_d);
            double ns = t[PASSES / 2] * 1e9 / (double)runs[r].elems;
            uint64_t sum = runs[r].sum();
            if (j == 0) {
                base = ns;
                sum0 = sum;
            }
            bad |= sum != sum0;
            printf("%-22s %-8s %10.3f %9s %7.2fx  %016" PRIx64 "%s\n", runs[r].kernel,
                   bg_simd_name((bg_simd_isa)v), ns, runs[r].what, base / ns, sum,
                   sum != sum0 ? "  MISMATCH" : "");
        }
    }
    for (int v = 0; v < BG_SIMD_COUNT; v++)
        if (!hk[v] && !ck[v])
            printf("%s: no variant in this build\n", bg_simd_name((bg_simd_isa)v));
        else if (!bg_simd_supported((bg_simd_isa)v))
            printf("%s: not supported by this CPU\n", bg_simd_name((bg_simd_isa)v));
    free(hashes);
    free(keys);
    free(ukeys);
    free(regs);
    free(regs_src);
    free(regs_in);
    free(ctr);
    free(ctr_src);
    free(ctr_in);
    free(qout);
    return bad;
}
