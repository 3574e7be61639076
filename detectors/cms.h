/* Count-Min sketch with conservative update: approximate counts of keys
 * (destinations per partition, tool bigrams parent_tool -> tool) for rarity.
 *
 * Algorithm (Cormode and Muthukrishnan 2005; conservative update after Estan
 * and Varghese 2002). depth rows of width uint32 counters. A key's 64-bit hash
 * h (bg_hash64) gives one counter per row by double hashing and Lemire's
 * multiply-shift range reduction:
 *     a = (uint32)h, b = (uint32)(h >> 32) | 1,
 *     col_i = ((uint64)(uint32)(a + i*b) * width) >> 32,   i = 0..depth-1
 * A point query is the minimum over the rows: never below the true count, and
 * with width = ceil(e/eps), depth = ceil(ln(1/delta)) above it by more than
 * eps*N (N = total added) with probability at most delta. Conservative update
 * adds c to a key by raising each of its counters to max(counter, min + c)
 * instead of adding c to all: the same guarantee, much less overestimate on
 * skewed streams. It makes updates order dependent, so batches are applied in
 * order, key by key, by every kernel.
 *
 * Counters saturate at UINT32_MAX (a saturated counter stays there: still
 * never an underestimate). Merging adds counters (saturating): the result
 * bounds the union of both streams from above, like any CM sketch, though it
 * may be looser than conservative updates of the union would have been.
 *
 * Layout: one heap block, depth x width counters, row-major; memory is
 * 4*width*depth bytes plus a 24-byte header (eps = 0.001, delta = 0.01:
 * width 2719, depth 5, 54 KiB). Opaque; one writer at a time. */
#ifndef BG_CMS_H
#define BG_CMS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "hash.h"
#include "simd.h"

#define BG_CMS_MAX_DEPTH 8          /* delta >= e^-8 ~ 3.4e-4; one AVX2 vector of rows */
#define BG_CMS_MAX_WIDTH (1u << 24) /* 64 MiB per row */

typedef struct bg_cms bg_cms;

/* --- Life cycle ------------------------------------------------------------- */

/* A zeroed sketch with width = ceil(e/eps) and depth = ceil(ln(1/delta)).
 * BG_ERR_INVALID unless 0 < eps < 1 and 0 < delta < 1 and the sizes fit the
 * caps above; BG_ERR_NOMEM. */
bg_err bg_cms_new(double eps, double delta, bg_cms **out);
/* Same with explicit sizes (1..BG_CMS_MAX_WIDTH, 1..BG_CMS_MAX_DEPTH). */
bg_err bg_cms_new_dims(uint32_t width, uint32_t depth, bg_cms **out);
void bg_cms_free(bg_cms *c); /* NULL is a no-op */
/* Zeroes every counter and the total. */
void bg_cms_reset(bg_cms *c);

/* --- Updates ------------------------------------------------------------------ */

/* Adds count to the key with hash h (conservative update). */
void bg_cms_add_hash(bg_cms *c, uint64_t h, uint32_t count);
/* Adds a key hashed with bg_hash64(data, len, BG_SEED_SKETCH). */
void bg_cms_add(bg_cms *c, const void *data, size_t len, uint32_t count);
/* Adds counts[i] (1 for each when counts is NULL) to hashes[i], in order, as
 * n calls of bg_cms_add_hash would; on the active SIMD kernel. */
void bg_cms_add_batch(bg_cms *c, const uint64_t *hashes, const uint32_t *counts, size_t n);
/* dst += src counter by counter (saturating), totals too. Same width and
 * depth, else BG_ERR_INVALID (dst unchanged). src == dst doubles dst. */
bg_err bg_cms_merge(bg_cms *dst, const bg_cms *src);

/* --- Queries ------------------------------------------------------------------ */

/* Estimated count of the key with hash h: >= the true count. */
uint32_t bg_cms_query_hash(const bg_cms *c, uint64_t h);
uint32_t bg_cms_query(const bg_cms *c, const void *data, size_t len);
/* out[i] = bg_cms_query_hash(c, hashes[i]) for i < n; on the active kernel. */
void bg_cms_query_batch(const bg_cms *c, const uint64_t *hashes, size_t n, uint32_t *out);
/* Share of the stream the key took: estimate / total, in [0, 1] (an upper
 * bound of the true share). 0 while the sketch is empty. */
double bg_cms_rarity(const bg_cms *c, uint64_t h);
/* Sum of all counts added (saturating at UINT64_MAX). */
uint64_t bg_cms_total(const bg_cms *c);
uint32_t bg_cms_width(const bg_cms *c);
uint32_t bg_cms_depth(const bg_cms *c);
/* Bytes held: header + counters. */
size_t bg_cms_bytes(const bg_cms *c);
/* The counters, row-major, width*depth of them (for tests and snapshots). */
const uint32_t *bg_cms_counters(const bg_cms *c);
/* Replaces the counters (n = width*depth of them, row-major) and the total:
 * a snapshot read back. BG_ERR_INVALID when n does not match (c unchanged). */
bg_err bg_cms_load(bg_cms *c, const uint32_t *counters, size_t n, uint64_t total);

/* Key of a pair, e.g. the bigram parent_tool -> tool from the two tools'
 * hashes; order matters (a->b differs from b->a). */
static inline uint64_t bg_cms_pair(uint64_t a, uint64_t b) {
    uint64_t k[2] = {a, b};
    return bg_hash64(k, sizeof k, BG_SEED_SKETCH);
}

/* --- Kernels -------------------------------------------------------------------
 * One table per instruction set; the API dispatches on bg_simd_level().
 * counters: depth x width row-major; all pointers may be unaligned and n 0. */
typedef struct bg_cms_kernels {
    const char *name;
    /* conservative update of n keys in order (counts NULL: 1 each) */
    void (*update)(uint32_t *counters, uint32_t width, uint32_t depth, const uint64_t *hashes,
                   const uint32_t *counts, size_t n);
    /* out[i] = min over rows of the key's counters */
    void (*query)(const uint32_t *counters, uint32_t width, uint32_t depth, const uint64_t *hashes,
                  size_t n, uint32_t *out);
    /* dst[i] = min(dst[i] + src[i], UINT32_MAX) for i < len */
    void (*merge)(uint32_t *dst, const uint32_t *src, size_t len);
} bg_cms_kernels;

/* The table for isa, or NULL when the build has none (no AVX-512 variant);
 * does not check the CPU (bg_simd_supported()). */
const bg_cms_kernels *bg_cms_kernels_for(bg_simd_isa isa);
extern const bg_cms_kernels bg_cms_kernels_scalar;
extern const bg_cms_kernels bg_cms_kernels_avx2;

#endif
